//! The wire types and handlers of Kumo's own HTTP surfaces: the error shape
//! every Kumo-made answer uses (`{"error":{"code","message"}}`), and the
//! admin API ([`admin`], with billing and records in [`billing`], function
//! logs in [`logs`] and the Prometheus metrics in [`metrics`]). Only
//! this module (and the CLI client, which reads these types) defines admin
//! wire types.

pub mod admin;
pub mod billing;
mod error;
pub mod events;
pub mod logs;
pub mod metrics;

pub use error::{ApiError, ErrorBody, ErrorDetail};
