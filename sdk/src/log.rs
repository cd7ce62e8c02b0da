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

/// Writes `message` to standard error at the `debug` level.
pub fn debug(message: &str) {
    write_log_line("debug", message);
}

/// Writes `message` to standard error at the `info` level.
pub fn info(message: &str) {
    write_log_line("info", message);
}

/// Writes `message` to standard error at the `warn` level.
pub fn warn(message: &str) {
    write_log_line("warn", message);
}

/// Writes `message` to standard error at the `error` level.
pub fn error(message: &str) {
    write_log_line("error", message);
}

/// Writes one formatted log line to standard error in a single write.
///
/// Failures are ignored: there is nowhere left to report them.
fn write_log_line(level: &str, message: &str) {
    let line = format_log_line(level, message);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Formats `"<level> <message>\n"`, replacing line breaks (`\n` and `\r`)
/// inside the message with spaces.
pub(crate) fn format_log_line(level: &str, message: &str) -> String {
    let mut line = String::with_capacity(level.len() + message.len() + 2);
    line.push_str(level);
    line.push(' ');
    line.extend(message.chars().map(|character| match character {
        '\n' | '\r' => ' ',
        other => other,
    }));
    line.push('\n');
    line
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

#[cfg(test)]
mod tests {
    use super::format_log_line;

    #[test]
    fn formats_level_message_and_newline() {
        assert_eq!(
            format_log_line("info", "server ready"),
            "info server ready\n"
        );
    }

    #[test]
    fn replaces_line_breaks_inside_the_message() {
        assert_eq!(
            format_log_line("error", "first\nsecond\r\nthird"),
            "error first second  third\n"
        );
    }

    #[test]
    fn keeps_an_empty_message_on_one_line() {
        assert_eq!(format_log_line("warn", ""), "warn \n");
    }
}
