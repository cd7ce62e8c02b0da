//! Test guest that sleeps before answering: `/?ms=200` sleeps 200 ms
//! (default 100) and answers `200 slept 200`.

use std::time::Duration;

use kumo_sdk::Request;

/// Sleep used when the query has no valid `ms`.
const DEFAULT_SLEEP_MILLISECONDS: u64 = 100;

/// Sleeps for the requested time, then answers how long it slept.
fn handle(request: Request) -> String {
    let milliseconds = kumo_sdk::query_param(&request, "ms")
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(DEFAULT_SLEEP_MILLISECONDS);
    kumo_sdk::info!("sleeping {milliseconds} ms");
    std::thread::sleep(Duration::from_millis(milliseconds));
    format!("slept {milliseconds}")
}

kumo_sdk::http_handler!(handle);
