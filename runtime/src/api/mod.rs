//! The wire types and handlers of Kumo's own HTTP surfaces: the error shape
//! every Kumo-made answer uses (`{"error":{"code","message"}}`), and the
//! admin API ([`admin`], with its metering endpoints in [`metering`]). Only
//! this module (and the CLI client, which reads these types) defines admin
//! wire types.

pub mod admin;
mod error;
pub mod events;
pub mod metering;

pub use error::{ApiError, ErrorBody, ErrorDetail};
