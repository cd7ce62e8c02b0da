//! Test guest for instance reuse: counts requests per instance. Each answer
//! is `{"instance":"<random id as hex>","count":<n>}`; the id is drawn on the
//! instance's first request, so two answers with the same id came from the
//! same instance.
//!
//! `?sleep_ms=N` sleeps N ms before answering (slow requests that still
//! say which instance served them); `?trap=1` panics instead of answering.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kumo_sdk::wasip2::random::random::get_random_u64;
use kumo_sdk::{Json, Request};
use serde::Serialize;

/// Requests this instance has handled.
static REQUEST_COUNT: AtomicU64 = AtomicU64::new(0);

/// This instance's random id, drawn on the first request.
static INSTANCE_ID: OnceLock<u64> = OnceLock::new();

/// The answer.
#[derive(Serialize)]
struct Counted {
    /// The instance's id as 16 hex digits.
    instance: String,
    /// Requests this instance has handled, this one included.
    count: u64,
}

/// Counts the request and answers the instance id and count.
fn handle(request: Request) -> Json<Counted> {
    let instance_id = *INSTANCE_ID.get_or_init(get_random_u64);
    let count = REQUEST_COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    if kumo_sdk::query_param(&request, "trap").as_deref() == Some("1") {
        panic!("counter guest: asked to trap on request {count}");
    }
    if let Some(milliseconds) =
        kumo_sdk::query_param(&request, "sleep_ms").and_then(|v| v.parse().ok())
    {
        std::thread::sleep(Duration::from_millis(milliseconds));
    }
    Json(Counted {
        instance: format!("{instance_id:016x}"),
        count,
    })
}

kumo_sdk::http_handler!(handle);
