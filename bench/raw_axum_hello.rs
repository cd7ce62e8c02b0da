//! The baseline for `bench/gateway.sh`: the least an HTTP server can do to
//! answer `Hello from Kumo` with axum, on one tokio runtime like Kumo's.
//!
//! `cargo run --release -p kumo --example raw-axum-hello -- 127.0.0.1:0`
//! prints `serving http://ADDR` and serves until killed.

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("serving http://{}", listener.local_addr()?);
    let app = Router::new().fallback(get(|| async { "Hello from Kumo" }));
    axum::serve(listener, app).await
}
