//! A Kumo function that describes the request it received as JSON.
//!
//! `POST /echo/x?a=1&b=2` with a 123-byte body answers
//! `{"method":"POST","path":"/echo/x","query":"a=1&b=2","headers":{...},"body_length":123}`.

use kumo_sdk::{Json, Request};
use serde_json::{Map, Value, json};

/// Answers `200` with the request's method, path, query, headers and body
/// length as a JSON object.
fn handle(request: Request) -> Json<Value> {
    Json(json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": request.uri().query().unwrap_or(""),
        "headers": header_object(request.headers()),
        "body_length": request.body().len(),
    }))
}

/// Maps each lowercase header name to its values, repeated values joined
/// with `", "`.
fn header_object(headers: &kumo_sdk::http::HeaderMap) -> Map<String, Value> {
    headers
        .keys()
        .map(|name| {
            let values: Vec<String> = headers
                .get_all(name)
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .collect();
            (name.as_str().to_owned(), Value::String(values.join(", ")))
        })
        .collect()
}

kumo_sdk::http_handler!(handle);
