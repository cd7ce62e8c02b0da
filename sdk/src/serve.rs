//! Bridges a typed handler to the raw `wasi:http/incoming-handler` export.
//!
//! [`serve`] reads the whole incoming request into a [`Request`], calls the
//! handler and writes the [`Response`] it answers (anything
//! [`IntoResponse`]) back through the host's
//! `response-outparam`. The [`http_handler!`](crate::http_handler) macro
//! generates the export that calls it.

use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method as WasiMethod, OutgoingBody,
    OutgoingResponse, ResponseOutparam, Scheme as WasiScheme,
};
use wasip2::io::streams::StreamError;

use crate::{IntoResponse, Request, Response, log};

/// The most bytes asked of the request body stream in one read.
const REQUEST_BODY_READ_SIZE: u64 = 64 * 1024;

/// The most bytes `blocking-write-and-flush` accepts in one call.
const RESPONSE_BODY_WRITE_SIZE: usize = 4096;

/// Response headers that belong to the connection, not to the message; the
/// host forbids them (as does `wasmtime serve`), so they are dropped instead
/// of failing the response. `proxy-*` names are dropped too.
const CONNECTION_HEADER_NAMES: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "host",
    "te",
    "http2-settings",
];

/// Handles one incoming request with `handler` and sends its response.
///
/// A request the SDK cannot represent (for example an invalid URI) or whose
/// body cannot be read is answered with a `wasi:http` error code, which the
/// host turns into an error response; the handler is not called. A panic in
/// the handler is not caught: the instance traps.
pub fn serve<R: IntoResponse>(
    request: IncomingRequest,
    response_out: ResponseOutparam,
    handler: impl FnOnce(Request) -> R,
) {
    match read_request(&request) {
        Ok(typed_request) => {
            drop(request);
            send_response(response_out, handler(typed_request).into_response());
        }
        Err(error_code) => {
            log::error(&format!("kumo-sdk: cannot read request: {error_code:?}"));
            ResponseOutparam::set(response_out, Err(error_code));
        }
    }
}

/// Converts the incoming request (method, URI, headers and whole body).
fn read_request(request: &IncomingRequest) -> Result<Request, ErrorCode> {
    let method = http_method(&request.method()).ok_or(ErrorCode::HttpRequestMethodInvalid)?;
    let scheme = request.scheme().map(|scheme| match scheme {
        WasiScheme::Http => "http".to_owned(),
        WasiScheme::Https => "https".to_owned(),
        WasiScheme::Other(other) => other,
    });
    let uri = request_uri(
        scheme.as_deref(),
        request.authority().as_deref(),
        request.path_with_query().as_deref(),
    );
    let uri = Uri::try_from(uri).map_err(|_| ErrorCode::HttpRequestUriInvalid)?;

    let mut headers = HeaderMap::new();
    for (name, value) in request.headers().entries() {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => log::warn(&format!("kumo-sdk: skipping invalid request header {name}")),
        }
    }

    let body = if has_no_body(&method, &headers) {
        Vec::new()
    } else {
        read_request_body(request)?
    };
    let mut typed_request = Request::new(body);
    *typed_request.method_mut() = method;
    *typed_request.uri_mut() = uri;
    *typed_request.headers_mut() = headers;
    Ok(typed_request)
}

/// Whether the request certainly has no body, so reading it can be skipped:
/// a GET, HEAD or OPTIONS with no `content-length` and no
/// `transfer-encoding` carries none (RFC 9110 §8.6, RFC 9112 §6.3). Reading
/// an empty body still costs a wait for the host to say it is empty.
fn has_no_body(method: &Method, headers: &HeaderMap) -> bool {
    let declared_empty = headers
        .get(CONTENT_LENGTH)
        .is_some_and(|length| length.as_bytes() == b"0");
    let framed = headers.contains_key(CONTENT_LENGTH)
        || headers.contains_key(http::header::TRANSFER_ENCODING);
    declared_empty || (!framed && matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS))
}

/// Reads the request body stream until the host closes it.
fn read_request_body(request: &IncomingRequest) -> Result<Vec<u8>, ErrorCode> {
    let body = request
        .consume()
        .map_err(|()| internal_error("request body was already consumed"))?;
    let stream = body
        .stream()
        .map_err(|()| internal_error("request body stream was already taken"))?;
    let mut bytes = Vec::new();
    loop {
        // Read what is there without waiting; wait only when nothing is.
        // A request with no body is then one call, with no pollable.
        match stream.read(REQUEST_BODY_READ_SIZE) {
            Ok(chunk) if chunk.is_empty() => stream.subscribe().block(),
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(internal_error(&format!(
                    "failed to read request body: {}",
                    error.to_debug_string()
                )));
            }
        }
    }
    // The stream must be gone before the body is finished.
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok(bytes)
}

/// Sends `response`: status and headers first, then the body in chunks.
fn send_response(response_out: ResponseOutparam, response: Response) {
    let (parts, body) = response.into_parts();
    let entries = response_header_entries(parts.status, &parts.headers, body.len());
    // One call for all headers; header by header only when the host refuses
    // the list, so one bad header is skipped rather than all of them.
    let headers = Fields::from_list(&entries).unwrap_or_else(|_| {
        let headers = Fields::new();
        for (name, value) in &entries {
            if let Err(error) = headers.append(name, value) {
                log::warn(&format!(
                    "kumo-sdk: skipping response header {name}: {error:?}"
                ));
            }
        }
        headers
    });
    let outgoing_response = OutgoingResponse::new(headers);
    if outgoing_response
        .set_status_code(parts.status.as_u16())
        .is_err()
    {
        let message = format!("invalid response status code {}", parts.status.as_u16());
        log::error(&format!("kumo-sdk: {message}"));
        ResponseOutparam::set(response_out, Err(internal_error(&message)));
        return;
    }
    let Ok(outgoing_body) = outgoing_response.body() else {
        let message = "response body was already taken";
        log::error(&format!("kumo-sdk: {message}"));
        ResponseOutparam::set(response_out, Err(internal_error(message)));
        return;
    };
    ResponseOutparam::set(response_out, Ok(outgoing_response));

    if let Err(message) = write_response_body(&outgoing_body, &body) {
        // Dropping the body without finishing it tells the host it is incomplete.
        log::error(&format!("kumo-sdk: {message}"));
        return;
    }
    if let Err(error_code) = OutgoingBody::finish(outgoing_body, None) {
        log::error(&format!(
            "kumo-sdk: failed to finish response body: {error_code:?}"
        ));
    }
}

/// Writes the whole body to the outgoing body stream and drops the stream.
fn write_response_body(outgoing_body: &OutgoingBody, body: &[u8]) -> Result<(), String> {
    if body.is_empty() {
        return Ok(());
    }
    let stream = outgoing_body
        .write()
        .map_err(|()| "response body stream was already taken".to_owned())?;
    for chunk in body.chunks(RESPONSE_BODY_WRITE_SIZE) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|error| match error {
                StreamError::Closed => "response body stream closed early".to_owned(),
                StreamError::LastOperationFailed(error) => {
                    format!("failed to write response body: {}", error.to_debug_string())
                }
            })?;
    }
    Ok(())
}

/// Builds an `internal-error` code carrying `message`.
fn internal_error(message: &str) -> ErrorCode {
    ErrorCode::InternalError(Some(message.to_owned()))
}

/// Converts a `wasi:http` method; `None` when the method is not a valid token.
fn http_method(method: &WasiMethod) -> Option<Method> {
    Some(match method {
        WasiMethod::Get => Method::GET,
        WasiMethod::Head => Method::HEAD,
        WasiMethod::Post => Method::POST,
        WasiMethod::Put => Method::PUT,
        WasiMethod::Delete => Method::DELETE,
        WasiMethod::Connect => Method::CONNECT,
        WasiMethod::Options => Method::OPTIONS,
        WasiMethod::Trace => Method::TRACE,
        WasiMethod::Patch => Method::PATCH,
        WasiMethod::Other(other) => Method::from_bytes(other.as_bytes()).ok()?,
    })
}

/// Builds the request URI: `scheme://authority/path?query` when the host
/// gave both scheme and authority, otherwise just the path and query
/// (`/` when the host gave no path).
fn request_uri(
    scheme: Option<&str>,
    authority: Option<&str>,
    path_with_query: Option<&str>,
) -> String {
    let path_with_query = match path_with_query {
        Some(path) if !path.is_empty() => path,
        _ => "/",
    };
    match (scheme, authority) {
        (Some(scheme), Some(authority)) if !scheme.is_empty() && !authority.is_empty() => {
            format!("{scheme}://{authority}{path_with_query}")
        }
        _ => path_with_query.to_owned(),
    }
}

/// Whether the host forbids a guest to set the response header `name`
/// (lowercase).
fn is_forbidden_response_header(name: &str) -> bool {
    CONNECTION_HEADER_NAMES.contains(&name) || name.starts_with("proxy-")
}

/// Lists the response headers to send: the handler's headers minus forbidden
/// ones, plus `content-length` from the body when the handler set none (and
/// the status allows one).
fn response_header_entries(
    status: StatusCode,
    headers: &HeaderMap,
    body_length: usize,
) -> Vec<(String, Vec<u8>)> {
    let mut entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .filter(|(name, _)| !is_forbidden_response_header(name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let status_allows_content_length = !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED;
    if status_allows_content_length && !headers.contains_key(CONTENT_LENGTH) {
        entries.push((
            CONTENT_LENGTH.as_str().to_owned(),
            body_length.to_string().into_bytes(),
        ));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unframed_bodyless_methods_skip_the_body_read() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            map
        };
        let cases = [
            (Method::GET, headers(&[]), true),
            (Method::HEAD, headers(&[]), true),
            (Method::OPTIONS, headers(&[]), true),
            (Method::GET, headers(&[("content-length", "5")]), false),
            (
                Method::GET,
                headers(&[("transfer-encoding", "chunked")]),
                false,
            ),
            (Method::POST, headers(&[]), false),
            (
                Method::PUT,
                headers(&[("transfer-encoding", "chunked")]),
                false,
            ),
            (Method::POST, headers(&[("content-length", "0")]), true),
            (Method::DELETE, headers(&[]), false),
        ];
        for (method, headers, skip) in cases {
            assert_eq!(has_no_body(&method, &headers), skip, "{method} {headers:?}");
        }
    }

    fn header_map(entries: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in entries {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn entry(name: &str, value: &str) -> (String, Vec<u8>) {
        (name.to_owned(), value.as_bytes().to_vec())
    }

    #[test]
    fn adds_content_length_from_the_body() {
        let headers = header_map(&[("content-type", "text/plain")]);
        assert_eq!(
            response_header_entries(StatusCode::OK, &headers, 15),
            vec![
                entry("content-type", "text/plain"),
                entry("content-length", "15")
            ]
        );
    }

    #[test]
    fn keeps_a_content_length_set_by_the_handler() {
        let headers = header_map(&[("content-length", "0")]);
        assert_eq!(
            response_header_entries(StatusCode::OK, &headers, 0),
            vec![entry("content-length", "0")]
        );
    }

    #[test]
    fn adds_no_content_length_to_bodiless_statuses() {
        let headers = HeaderMap::new();
        assert!(response_header_entries(StatusCode::NO_CONTENT, &headers, 0).is_empty());
        assert!(response_header_entries(StatusCode::NOT_MODIFIED, &headers, 0).is_empty());
    }

    #[test]
    fn skips_forbidden_headers_and_keeps_repeated_ones() {
        let headers = header_map(&[
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("host", "example.com"),
            ("proxy-authenticate", "Basic"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ]);
        assert_eq!(
            response_header_entries(StatusCode::OK, &headers, 2),
            vec![
                entry("set-cookie", "a=1"),
                entry("set-cookie", "b=2"),
                entry("content-length", "2"),
            ]
        );
    }

    #[test]
    fn recognises_forbidden_header_names() {
        for name in [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
            "host",
            "te",
            "http2-settings",
            "proxy-connection",
        ] {
            assert!(is_forbidden_response_header(name), "{name}");
        }
        for name in [
            "content-type",
            "content-length",
            "x-proxy",
            "hostname",
            "tea",
        ] {
            assert!(!is_forbidden_response_header(name), "{name}");
        }
    }

    #[test]
    fn builds_absolute_uri_when_scheme_and_authority_are_known() {
        assert_eq!(
            request_uri(Some("https"), Some("example.com:8443"), Some("/a/b?c=1")),
            "https://example.com:8443/a/b?c=1"
        );
    }

    #[test]
    fn builds_origin_form_uri_otherwise() {
        assert_eq!(request_uri(None, Some("example.com"), Some("/a?b")), "/a?b");
        assert_eq!(request_uri(Some("http"), None, Some("/a")), "/a");
        assert_eq!(request_uri(Some("http"), Some(""), Some("/a")), "/a");
        assert_eq!(request_uri(None, None, None), "/");
        assert_eq!(
            request_uri(Some("http"), Some("localhost"), None),
            "http://localhost/"
        );
    }

    #[test]
    fn built_uris_parse() {
        let uri: Uri = request_uri(
            Some("http"),
            Some("localhost:8080"),
            Some("/echo/x?a=1&b=2"),
        )
        .parse()
        .expect("uri parses");
        assert_eq!(uri.path(), "/echo/x");
        assert_eq!(uri.query(), Some("a=1&b=2"));
        assert_eq!(uri.authority().map(|a| a.as_str()), Some("localhost:8080"));
    }

    #[test]
    fn converts_methods() {
        assert_eq!(http_method(&WasiMethod::Get), Some(Method::GET));
        assert_eq!(http_method(&WasiMethod::Patch), Some(Method::PATCH));
        assert_eq!(
            http_method(&WasiMethod::Other("PURGE".to_owned())),
            Some(Method::from_bytes(b"PURGE").expect("valid method"))
        );
        assert_eq!(
            http_method(&WasiMethod::Other("BAD METHOD".to_owned())),
            None
        );
    }
}
