//! Logging to the host through standard error.
//!
//! Every call writes exactly one line, `"<level> <message>\n"`, to the guest's
//! standard error. The Kumo host reads guest standard error line by line and
//! maps the leading level word (`debug`, `info`, `warn` or `error`) to a
//! tracing level. Line breaks inside a message are replaced by spaces so that
//! one call always produces one line.
//!
//! The [`debug!`](crate::debug), [`info!`](crate::info),
//! [`warn!`](crate::warn) and [`error!`](crate::error) macros accept
//! `format!` arguments and forward to the functions in this module.
//!
//! ```
//! let path = "/orders/7";
//! kumo_sdk::info!("looking up {path}");
//! kumo_sdk::log::warn("cache miss\nfalling back");
//! // standard error now holds:
//! // info looking up /orders/7
//! // warn cache miss falling back
//! ```

use std::io::Write as _;

pub use kumo_protocol::log::LogLevel;

/// Writes `message` to standard error at the `debug` level.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message);
}

/// Writes `message` to standard error at the `info` level.
pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

/// Writes `message` to standard error at the `warn` level.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

/// Writes `message` to standard error at the `error` level.
pub fn error(message: &str) {
    log(LogLevel::Error, message);
}

/// Writes `message` to standard error at `level`, as one line in a single
/// write ([`LogLevel::format_line`]).
///
/// Failures are ignored: there is nowhere left to report them.
pub fn log(level: LogLevel, message: &str) {
    let line = level.format_line(message);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Logs a `format!`-style message at the `debug` level, see [`log::debug`](crate::log::debug).
#[macro_export]
macro_rules! debug {
    ($($argument:tt)+) => {
        $crate::log::debug(&::std::format!($($argument)+))
    };
}

/// Logs a `format!`-style message at the `info` level, see [`log::info`](crate::log::info).
#[macro_export]
macro_rules! info {
    ($($argument:tt)+) => {
        $crate::log::info(&::std::format!($($argument)+))
    };
}

/// Logs a `format!`-style message at the `warn` level, see [`log::warn`](crate::log::warn).
#[macro_export]
macro_rules! warn {
    ($($argument:tt)+) => {
        $crate::log::warn(&::std::format!($($argument)+))
    };
}

/// Logs a `format!`-style message at the `error` level, see [`log::error`](crate::log::error).
#[macro_export]
macro_rules! error {
    ($($argument:tt)+) => {
        $crate::log::error(&::std::format!($($argument)+))
    };
}
