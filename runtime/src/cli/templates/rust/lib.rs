//! {{name}}: a Kumo function in Rust, written with kumo-sdk.
//!
//! `handle` gets every request to the function's routes; what it returns is
//! the answer (text, bytes, `Json`, `(StatusCode, T)`, a `Result` ...).

use kumo_sdk::Request;

fn handle(request: Request) -> String {
    kumo_sdk::info!("{} {}", request.method(), request.uri().path());
    let name = kumo_sdk::query_param(&request, "name").unwrap_or_else(|| "world".to_owned());
    format!("Hello, {name}, from {{name}} in Rust!\n")
}

kumo_sdk::http_handler!(handle);
