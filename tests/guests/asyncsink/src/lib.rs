//! Test guest for asynchronous invocations and destinations. Each request
//! logs one line:
//!
//! `asyncsink {"method":..,"path":<path and query>,"attempt":..,"invocation":..,"tag":..,"body":..}`
//!
//! (`attempt` and `invocation` from Kumo's `kumo-attempt` and
//! `x-kumo-invocation-id` headers, `tag` from `x-test-tag`, `body` as text),
//! after sleeping `SLEEP_MS` (an environment variable) if set. It answers
//! 500 while the attempt number is at most `FAIL_FIRST` (`all` fails every
//! attempt, absent or `0` none), else 200 with
//! `{"handled":<body>,"attempt":<n>}`.

use kumo_sdk::{Request, StatusCode};
use serde_json::json;

fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Logs the request and answers as configured.
fn handle(request: Request) -> (StatusCode, String) {
    if let Some(milliseconds) = kumo_sdk::env::var("SLEEP_MS").and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(milliseconds));
    }
    let attempt: u32 = header(&request, "kumo-attempt")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let body = String::from_utf8_lossy(request.body()).into_owned();
    let line = json!({
        "method": request.method().as_str(),
        "path": request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str()),
        "attempt": attempt,
        "invocation": header(&request, "x-kumo-invocation-id"),
        "tag": header(&request, "x-test-tag"),
        "ce_type": header(&request, "ce-type"),
        "body": body,
    });
    kumo_sdk::info!("asyncsink {line}");
    let fail_first = kumo_sdk::env::var("FAIL_FIRST").unwrap_or_default();
    let fails = match fail_first.as_str() {
        "" => false,
        "all" => true,
        number => attempt <= number.parse::<u32>().unwrap_or(0),
    };
    if fails {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("asyncsink: failing attempt {attempt} on purpose"),
        )
    } else {
        (
            StatusCode::OK,
            json!({"handled": body, "attempt": attempt}).to_string(),
        )
    }
}

kumo_sdk::http_handler!(handle);
