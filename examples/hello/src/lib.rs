//! The smallest Kumo function: answers every request with a greeting.

use kumo_sdk::{Request, Response};

/// Answers `200 Hello from Kumo` as plain text, whatever the request.
fn handle(_request: Request) -> Response {
    kumo_sdk::text_response(200, "Hello from Kumo")
}

kumo_sdk::http_handler!(handle);
