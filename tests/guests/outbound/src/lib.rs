//! Test guest for outgoing HTTP: `/?url=http://127.0.0.1:1234/x` makes a GET
//! request to that URL through `wasi:http/outgoing-handler`.
//!
//! It answers `200` with the upstream's body on success, or `502` with
//! `outbound error: <ErrorCode debug text>` when the request fails or the
//! host denies it (for example `ErrorCode::HttpRequestDenied`). The URL is
//! everything after `url=` in the query, so it may carry its own query; it
//! is percent-decoded.

use kumo_sdk::http::Uri;
use kumo_sdk::wasip2::http::outgoing_handler;
use kumo_sdk::wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    Scheme, http_error_code,
};
use kumo_sdk::wasip2::io::streams::StreamError;
use kumo_sdk::{Error, Request, Response, StatusCode};

/// The most bytes asked of the upstream body stream in one read.
const READ_SIZE: u64 = 64 * 1024;

/// Fetches the URL from the query and answers its body (as it is, with no
/// content-type), or the error.
fn handle(request: Request) -> Result<Response, Error> {
    let url = request
        .uri()
        .query()
        .and_then(url_from_query)
        .ok_or_else(|| Error::new(StatusCode::BAD_REQUEST, "missing url query parameter"))?;
    let body = fetch(&url).map_err(|message| {
        Error::new(
            StatusCode::BAD_GATEWAY,
            format!("outbound error: {message}"),
        )
    })?;
    Ok(Response::new(body))
}

/// Returns the percent-decoded text after `url=` in `query`.
fn url_from_query(query: &str) -> Option<String> {
    let start = if query.starts_with("url=") {
        0
    } else {
        query.find("&url=")? + 1
    };
    Some(percent_decode(&query[start + "url=".len()..]))
}

/// Decodes `%XX` escapes; anything else is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Sends `GET url` and returns the whole response body.
fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let uri: Uri = url
        .parse()
        .map_err(|error| format!("invalid url {url}: {error}"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        Some(other) => Scheme::Other(other.to_owned()),
        None => return Err(format!("url {url} has no scheme")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("url {url} has no authority"))?;
    let path_with_query = uri.path_and_query().map_or("/", |path| path.as_str());

    let outgoing_request = OutgoingRequest::new(Fields::new());
    outgoing_request
        .set_method(&Method::Get)
        .map_err(|()| "cannot set method".to_owned())?;
    outgoing_request
        .set_scheme(Some(&scheme))
        .map_err(|()| format!("cannot set scheme {scheme:?}"))?;
    outgoing_request
        .set_authority(Some(authority.as_str()))
        .map_err(|()| format!("cannot set authority {authority}"))?;
    outgoing_request
        .set_path_with_query(Some(path_with_query))
        .map_err(|()| format!("cannot set path {path_with_query}"))?;
    let outgoing_body = outgoing_request
        .body()
        .map_err(|()| "request body was already taken".to_owned())?;

    let future_response =
        outgoing_handler::handle(outgoing_request, None).map_err(describe_error_code)?;
    OutgoingBody::finish(outgoing_body, None).map_err(describe_error_code)?;

    let response = loop {
        match future_response.get() {
            Some(Ok(result)) => break result.map_err(describe_error_code)?,
            Some(Err(())) => return Err("response was already taken".to_owned()),
            None => future_response.subscribe().block(),
        }
    };
    read_body(&response)
}

/// Reads an incoming response body until the stream closes.
fn read_body(response: &IncomingResponse) -> Result<Vec<u8>, String> {
    let body = response
        .consume()
        .map_err(|()| "response body was already taken".to_owned())?;
    let stream = body
        .stream()
        .map_err(|()| "response body stream was already taken".to_owned())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_SIZE) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(match http_error_code(&error) {
                    Some(error_code) => describe_error_code(error_code),
                    None => error.to_debug_string(),
                });
            }
        }
    }
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok(bytes)
}

/// Renders an error code as its `Debug` text, e.g. `ErrorCode::HttpRequestDenied`.
fn describe_error_code(error_code: ErrorCode) -> String {
    format!("{error_code:?}")
}

kumo_sdk::http_handler!(handle);
