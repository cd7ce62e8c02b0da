//! Kumo: a serverless runtime for WebAssembly functions.
//!
//! The flow of one request: [`triggers::http`] matches a route and hands the
//! request to the function's [`pool::Pool`], which finds it a warm instance
//! (or creates one, or queues it, or pushes back with 429), and the
//! [`engine`] runs it under the function's limits. [`manifest`] reads
//! `kumo.toml`, [`server`] wires a running process together, and [`cli`] is
//! the `kumo` command. [`metering`] records every invocation for billing,
//! logs and metrics. See `ARCHITECTURE.md` for the map.

pub(crate) mod api;
pub mod cli;
pub(crate) mod config;
pub(crate) mod control;
pub mod database;
pub mod engine;
pub mod events;
pub(crate) mod gateway;
pub(crate) mod live;
pub(crate) mod manifest;
pub mod metering;
pub mod model;
pub mod pool;
pub(crate) mod registry;
pub mod request_id;
pub(crate) mod server;
pub mod storage;
pub(crate) mod triggers;
