//! Kumo: a serverless runtime for WebAssembly functions.
//!
//! The flow of one request: [`triggers::http`] matches a route and hands the
//! request to the function's [`pool::Pool`], which finds it a warm instance
//! (or creates one, or queues it, or pushes back with 429), and the
//! [`engine`] runs it under the function's limits. [`manifest`] reads
//! `kumo.toml`, [`server`] wires a running process together, and [`cli`] is
//! the `kumo` command. [`metering`] records every invocation for billing,
//! logs and metrics. See `ARCHITECTURE.md` for the map.

pub mod api;
pub mod cli;
pub mod database;
pub mod engine;
pub mod events;
pub mod live;
pub mod manifest;
pub mod metering;
pub mod observability;
pub mod pool;
pub mod registry;
pub mod request_id;
pub mod server;
pub mod storage;
pub mod triggers;
