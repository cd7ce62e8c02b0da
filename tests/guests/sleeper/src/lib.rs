//! Test guest that sleeps before answering: `/?ms=200` sleeps 200 ms
//! (default 100) and answers `200 slept 200`.

use std::time::Duration;

use kumo_sdk::{Request, Response};

/// Sleep used when the query has no valid `ms`.
const DEFAULT_SLEEP_MILLISECONDS: u64 = 100;

/// Sleeps for the requested time, then answers how long it slept.
fn handle(request: Request) -> Response {
    let milliseconds = request
        .uri()
        .query()
        .and_then(|query| query_parameter(query, "ms"))
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(DEFAULT_SLEEP_MILLISECONDS);
    kumo_sdk::info!("sleeping {milliseconds} ms");
    std::thread::sleep(Duration::from_millis(milliseconds));
    kumo_sdk::text_response(200, format!("slept {milliseconds}"))
}

/// Returns the raw value of the first `name=value` pair in `query`.
fn query_parameter<'query>(query: &'query str, name: &str) -> Option<&'query str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

kumo_sdk::http_handler!(handle);
