//! Write Kumo functions in Rust.
//!
//! A Kumo function is a WebAssembly component for the `wasi:http/proxy` world,
//! built for the `wasm32-wasip2` target. With this crate a function is one
//! plain Rust function from [`Request`] to [`Response`] (the [`http`] crate's
//! types with the whole body as bytes) and one line that exports it:
//!
//! ```no_run
//! use kumo_sdk::{Request, Response};
//!
//! fn handle(request: Request) -> Response {
//!     kumo_sdk::info!("{} {}", request.method(), request.uri());
//!     let greeting = kumo_sdk::env::var("GREETING").unwrap_or_else(|| "hello".to_owned());
//!     kumo_sdk::text_response(200, format!("{greeting} from {}", request.uri().path()))
//! }
//!
//! kumo_sdk::http_handler!(handle);
//! ```
//!
//! The crate must be a `cdylib` built for `wasm32-wasip2`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! kumo-sdk = "0.1"
//! ```
//!
//! ```sh
//! cargo build --release --target wasm32-wasip2
//! ```
//!
//! What the SDK does around the handler:
//!
//! - The request's method, URI (path and query, with scheme and authority when
//!   the host provides them), headers and whole body are read before the
//!   handler is called.
//! - The response's status, headers and body are sent after it returns.
//!   `content-length` is added from the body when the handler set none, and
//!   connection headers the host forbids (`connection`, `keep-alive`,
//!   `transfer-encoding`, `upgrade`, `host`, `te`, `http2-settings`,
//!   `proxy-*`) are dropped.
//! - A panic in the handler is not caught: its message goes to standard
//!   error and the instance traps, which the host reports as a failed request.
//!
//! [`event`] reads the events Kumo's storage, watch and timer triggers send
//! (object events in the OSS, S3 or CloudEvents format, timer and file
//! events, and the CloudEvents attributes).
//!
//! [`log`] writes level-tagged lines to standard error for the host to pick
//! up, [`env`](mod@env) reads the variables the host configured, and [`wasip2`] is
//! re-exported for the WASI interfaces this crate does not wrap (outgoing
//! HTTP, random numbers, clocks, streaming bodies).

pub mod env;
pub mod event;
pub mod log;
mod serve;

pub use http;
pub use wasip2;

/// An HTTP request with its whole body.
pub type Request = http::Request<Vec<u8>>;

/// An HTTP response with its whole body.
pub type Response = http::Response<Vec<u8>>;

/// Builds a response with a UTF-8 text body and
/// `content-type: text/plain; charset=utf-8`.
///
/// # Panics
///
/// Panics when `status` is not a valid HTTP status code (100 to 999).
pub fn text_response(status: u16, body: impl Into<String>) -> Response {
    response_with_content_type(
        status,
        "text/plain; charset=utf-8",
        body.into().into_bytes(),
    )
}

/// Builds a response with a JSON body (already serialized) and
/// `content-type: application/json`.
///
/// # Panics
///
/// Panics when `status` is not a valid HTTP status code (100 to 999).
pub fn json_response(status: u16, body: impl Into<String>) -> Response {
    response_with_content_type(status, "application/json", body.into().into_bytes())
}

/// The value of the first query parameter called `name`, decoded
/// (`%xx` escapes and `+` for space, as browsers send forms), or `None`
/// when the query has no such parameter.
///
/// ```
/// let request = kumo_sdk::http::Request::builder()
///     .uri("/search?q=hello+world&page=2&q=again")
///     .body(Vec::new())
///     .unwrap();
/// assert_eq!(kumo_sdk::query_param(&request, "q").as_deref(), Some("hello world"));
/// assert_eq!(kumo_sdk::query_param(&request, "page").as_deref(), Some("2"));
/// assert_eq!(kumo_sdk::query_param(&request, "missing"), None);
/// ```
pub fn query_param(request: &Request, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Builds a response with the given status, `content-type` and body.
fn response_with_content_type(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
    let status = http::StatusCode::from_u16(status)
        .unwrap_or_else(|_| panic!("invalid http status code {status}"));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// Exports a handler function as the component's `wasi:http/incoming-handler`.
///
/// The argument is a function (or any expression callable once) of type
/// `fn(kumo_sdk::Request) -> kumo_sdk::Response`. Use it once per crate, at
/// module level:
///
/// ```no_run
/// fn handle(_request: kumo_sdk::Request) -> kumo_sdk::Response {
///     kumo_sdk::text_response(200, "Hello from Kumo")
/// }
///
/// kumo_sdk::http_handler!(handle);
/// ```
#[macro_export]
macro_rules! http_handler {
    ($handler:expr $(,)?) => {
        const _: () = {
            struct KumoHttpHandler;

            impl $crate::__private::IncomingHandlerGuest for KumoHttpHandler {
                fn handle(
                    request: $crate::__private::IncomingRequest,
                    response_out: $crate::__private::ResponseOutparam,
                ) {
                    $crate::__private::serve(request, response_out, $handler);
                }
            }

            $crate::__private::wasip2::http::proxy::export!(KumoHttpHandler);
        };
    };
}

/// Items the exported macros expand to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::serve::serve;
    pub use wasip2;
    pub use wasip2::exports::http::incoming_handler::Guest as IncomingHandlerGuest;
    pub use wasip2::http::types::{IncomingRequest, ResponseOutparam};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_response_sets_status_content_type_and_body() {
        let response = text_response(404, "not found");
        assert_eq!(response.status(), http::StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.body(), b"not found");
    }

    #[test]
    fn json_response_sets_status_content_type_and_body() {
        let response = json_response(201, r#"{"ok":true}"#);
        assert_eq!(response.status(), http::StatusCode::CREATED);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
        assert_eq!(response.body(), br#"{"ok":true}"#);
    }

    #[test]
    #[should_panic(expected = "invalid http status code 42")]
    fn response_helpers_reject_invalid_status_codes() {
        let _ = text_response(42, "");
    }
}
