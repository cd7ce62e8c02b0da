//! Kumo: a serverless runtime for WebAssembly functions.
//!
//! The flow of one request: `gateway` matches a route to a target, `live`
//! resolves it to the pool of one version, the pool finds it a warm instance
//! (or creates one, or queues it, or pushes back with 429), the [`engine`]
//! runs it under the function's limits, and [`metering`] records it. Every
//! change to what is deployed goes through `control`. The modules form
//! layers that only point down; `ARCHITECTURE.md` draws them.
//!
//! The public surface is what the `kumo` binary ([`cli::run`]) and the
//! integration tests use; everything else is crate-private.

pub(crate) mod api;
pub mod cli;
pub(crate) mod config;
pub mod connections;
pub(crate) mod console;
pub(crate) mod control;
pub mod database;
pub(crate) mod engine;
pub mod events;
pub(crate) mod gateway;
pub(crate) mod live;
pub(crate) mod manifest;
pub mod metering;
pub mod model;
pub(crate) mod observability;
pub(crate) mod pool;
pub(crate) mod registry;
pub(crate) mod request_id;
pub(crate) mod server;
pub mod storage;
pub(crate) mod triggers;
