//! Test guest that panics on every request, so the instance traps.

use kumo_sdk::{Request, Response};

/// Panics; never answers.
fn handle(_request: Request) -> Response {
    panic!("trap guest: deliberate panic")
}

kumo_sdk::http_handler!(handle);
