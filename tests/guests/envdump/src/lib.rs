//! Test guest for output capture and environment isolation: writes one line
//! to stdout and one `info` line to stderr, then answers a JSON object of
//! every environment variable it sees.

use kumo_sdk::{Json, Request};
use serde_json::{Map, Value};

/// Writes the two marker lines and answers the environment as JSON.
fn handle(_request: Request) -> Json<Value> {
    println!("envdump stdout line");
    kumo_sdk::info!("envdump stderr line");
    let variables: Map<String, Value> = kumo_sdk::env::vars()
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    Json(Value::Object(variables))
}

kumo_sdk::http_handler!(handle);
