//! The smallest Kumo function: answers every request with a greeting.

use kumo_sdk::Request;

/// Answers `200 Hello from Kumo` as plain text, whatever the request.
fn handle(_request: Request) -> &'static str {
    "Hello from Kumo"
}

kumo_sdk::http_handler!(handle);
