//! Environment variables configured for the function by the host.
//!
//! A Kumo function sees only the variables its host configuration gives it,
//! never the host process environment.

/// Returns the value of the environment variable `name`, or `None` when it is
/// not set (or is not valid UTF-8).
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Returns every environment variable as `(name, value)` pairs, in the order
/// the host provided them. Variables that are not valid UTF-8 are left out.
pub fn vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}
