//! Test guest for event delivery. Each delivery logs one line:
//!
//! `eventsink id=<ce-id> attempt=<n> type=<ce-type> subject=<ce-subject> summary=<...>`
//!
//! and answers 500 while the attempt number (Kumo's `kumo-attempt` header)
//! is at most `FAIL_FIRST` (an environment variable; `all` fails every
//! attempt, absent or `0` fails none), then 200. Using the attempt header
//! keeps the guest stateless, so it behaves the same whether or not
//! instances are reused. `SLEEP_MS` makes each delivery take that long
//! (before logging), for tests that stop the host mid-delivery.

use kumo_sdk::event::{Event, EventBody, EventError};
use kumo_sdk::{Request, StatusCode};

/// Logs the event and answers 500 or 200 as configured (400 when the
/// request is no event).
fn handle(request: Request) -> Result<(StatusCode, String), EventError> {
    let event = Event::from_request(&request)?;
    let attempt = event.attempt().unwrap_or(0);
    if let Some(milliseconds) = kumo_sdk::env::var("SLEEP_MS").and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(milliseconds));
    }
    let summary = match event.body() {
        Ok(EventBody::Objects(objects)) => objects
            .iter()
            .map(|o| {
                format!(
                    "{}:{}/{}:{}:{}",
                    o.event_name, o.bucket, o.key, o.size, o.etag
                )
            })
            .collect::<Vec<_>>()
            .join(","),
        Ok(EventBody::Timer(timer)) => {
            format!(
                "timer:{}:{}:{}",
                timer.trigger_name, timer.trigger_time, timer.payload
            )
        }
        Ok(EventBody::File(file)) => format!("file:{}:{}", file.path, file.size),
        Err(error) => format!("unparsed:{error}"),
    };
    let attributes = event.attributes();
    kumo_sdk::info!(
        "eventsink id={} attempt={attempt} hops={} type={} subject={} summary={summary}",
        attributes.id,
        event.hops(),
        attributes.event_type,
        attributes.subject.as_deref().unwrap_or("")
    );
    let fail_first = kumo_sdk::env::var("FAIL_FIRST").unwrap_or_default();
    let fails = match fail_first.as_str() {
        "all" => true,
        number => attempt <= number.parse::<u32>().unwrap_or(0),
    };
    Ok(if fails {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("eventsink: failing attempt {attempt} on purpose"),
        )
    } else {
        (StatusCode::OK, "ok".to_owned())
    })
}

kumo_sdk::http_handler!(handle);
