//! The wire vocabulary Kumo's runtime and its guest SDK share, so the two
//! cannot drift: the runtime serializes these types and writes these names,
//! the SDK (`kumo-sdk`) reads them.
//!
//! - [`header`]: the HTTP header names on both sides of a call.
//! - [`event`]: the event documents (OSS, S3, structured CloudEvent, timer,
//!   file) and the CloudEvents attribute values Kumo sends.
//! - [`log`]: the level words of a guest's standard error lines.
//!
//! The crate builds for the host and for `wasm32-wasip2`; it depends on
//! `serde` only.

pub mod event;
pub mod header;
pub mod log;

#[cfg(test)]
mod proptests;
