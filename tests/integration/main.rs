//! Kumo's integration tests: the real `kumo` binary, real components built
//! in this test run, real HTTP on loopback.

mod harness;

mod bad_guests;
mod gateway;
mod lifecycle;
mod manifest_errors;
mod scaling;
mod storage;
