//! Write Kumo functions in Rust.
//!
//! A Kumo function is a WebAssembly component for the `wasi:http/proxy` world,
//! built for the `wasm32-wasip2` target. With this crate a function is one
//! plain Rust function from [`Request`] (the [`http`] crate's request with
//! the whole body as bytes) to anything [`IntoResponse`], and one line that
//! exports it:
//!
//! ```no_run
//! use kumo_sdk::{Request, StatusCode};
//!
//! fn handle(request: Request) -> (StatusCode, String) {
//!     kumo_sdk::info!("{} {}", request.method(), request.uri());
//!     let greeting = kumo_sdk::env::var("GREETING").unwrap_or_else(|| "hello".to_owned());
//!     (StatusCode::OK, format!("{greeting} from {}", request.uri().path()))
//! }
//!
//! kumo_sdk::http_handler!(handle);
//! ```
//!
//! A handler answers with a [`Response`], text (`&'static str`, `String`),
//! bytes (`Vec<u8>`), [`Json`] of any `Serialize` value, a [`StatusCode`],
//! a `(StatusCode, T)` pair, or a `Result` of those: an `Err` answers a
//! 500 with the error's message (an [`Error`] its own status) and is
//! logged, so `?` works in handlers:
//!
//! ```no_run
//! use kumo_sdk::{Json, Request};
//!
//! #[derive(serde::Serialize)]
//! struct Listing {
//!     names: Vec<String>,
//! }
//!
//! fn handle(_request: Request) -> Result<Json<Listing>, std::io::Error> {
//!     let mut names = Vec::new();
//!     for entry in std::fs::read_dir("/data")? {
//!         names.push(entry?.file_name().to_string_lossy().into_owned());
//!     }
//!     Ok(Json(Listing { names }))
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
//! # Not published on crates.io: depend on a checkout of Kumo by path (or git).
//! kumo-sdk = { path = "../kumo/sdk" }
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
//! HTTP, random numbers, clocks, streaming bodies). [`protocol`] is the wire
//! vocabulary shared with the Kumo runtime (event documents, header names,
//! log levels).

pub mod env;
pub mod event;
pub mod log;
mod response;
mod serve;

pub use http;
pub use http::StatusCode;
pub use kumo_protocol as protocol;
pub use response::{Error, IntoResponse, Json};
pub use wasip2;

/// An HTTP request with its whole body.
pub type Request = http::Request<Vec<u8>>;

/// An HTTP response with its whole body.
pub type Response = http::Response<Vec<u8>>;

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

/// Exports a handler function as the component's `wasi:http/incoming-handler`.
///
/// The argument is a function (or any expression callable once) from
/// [`Request`] to any [`IntoResponse`]. Use it once per crate, at module
/// level:
///
/// ```no_run
/// fn handle(_request: kumo_sdk::Request) -> &'static str {
///     "Hello from Kumo"
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
