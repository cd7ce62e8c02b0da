//! Kumo's integration tests: the real `kumo` binary, real components built
//! in this test run, real HTTP on loopback.

mod harness;

mod admin_api;
mod async_calls;
mod bad_guests;
mod cli;
mod cluster;
mod console;
mod deploy_manifests;
mod deploys;
mod docs;
mod events;
mod failure_lines;
mod faults;
mod gateway;
mod languages;
mod layering;
mod lifecycle;
mod manifest_errors;
mod metering;
mod metering_api;
mod mounts;
mod range_headers;
mod route_targets;
mod scaling;
mod schemathesis;
mod storage;
mod streaming;
