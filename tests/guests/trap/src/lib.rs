//! Test guest that panics on every request, so the instance traps.

use kumo_sdk::Request;

/// Panics; never answers.
fn handle(_request: Request) -> &'static str {
    panic!("trap guest: deliberate panic")
}

kumo_sdk::http_handler!(handle);
