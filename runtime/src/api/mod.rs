//! The wire types of Kumo's HTTP surfaces.
//!
//! Today that is the one error shape every Kumo-made HTTP answer uses,
//! `{"error":{"code","message"}}`. The admin API (deploy, versions,
//! aliases) is not built yet; when it is, it lives here too.

mod error;

pub use error::ApiError;
