//! Gateway routes: `/hello` (exact) or `/api/...` (a prefix, matching `/api`
//! and everything under `/api/`), parsed once where they enter Kumo (the
//! manifest, the admin API) and looked up in a [`RouteTable`]: the longest
//! match wins, and an exact route beats a prefix of the same path.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A parsed route. Serialized as the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub(crate) enum Route {
    /// Matches this path only.
    Exact(String),
    /// Matches this path and everything below it (`""` matches all).
    Prefix(String),
}

impl Route {
    /// Parses `/exact` or `/prefix/...`.
    ///
    /// # Errors
    ///
    /// Says what is wrong: a route must start with `/`, and `...` may only
    /// stand as the whole last segment.
    pub(crate) fn parse(route: &str) -> Result<Self, &'static str> {
        if !route.starts_with('/') {
            return Err("a route must start with `/`");
        }
        if route.contains(['?', '#']) {
            return Err("a route is a path; it cannot hold `?` or `#`");
        }
        if let Some(prefix) = route.strip_suffix("/...") {
            if prefix.contains("...") {
                return Err("`...` may only appear once, as the last segment");
            }
            return Ok(Route::Prefix(prefix.to_string()));
        }
        if route.contains("...") {
            return Err("`...` may only appear as the whole last segment, as in `/api/...`");
        }
        Ok(Route::Exact(route.to_string()))
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Exact(path) => f.write_str(path),
            Route::Prefix(prefix) => write!(f, "{prefix}/..."),
        }
    }
}

impl TryFrom<String> for Route {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Route::parse(&text).map_err(|problem| {
            format!(
                "invalid route `{text}`: {problem}; hint: write an exact route like `/hello`, or a prefix like `/api/...`"
            )
        })
    }
}

impl From<Route> for String {
    fn from(route: Route) -> Self {
        route.to_string()
    }
}

/// Routes to targets, ready for lookups.
pub(crate) struct RouteTable<T> {
    /// Hashed with foldhash, not SipHash: every request looks a path up
    /// here, and only the operator's routes are ever inserted, so no
    /// client can flood the table with colliding keys.
    exact: HashMap<String, T, foldhash::fast::RandomState>,
    /// Longest prefix first.
    prefixes: Vec<(String, T)>,
}

impl<T> RouteTable<T> {
    /// Builds a table; later duplicates of a route replace earlier ones
    /// (the registry refuses duplicates before this point).
    pub fn new(routes: impl IntoIterator<Item = (Route, T)>) -> Self {
        let mut exact = HashMap::default();
        let mut prefixes = Vec::new();
        for (route, target) in routes {
            match route {
                Route::Exact(path) => {
                    exact.insert(path, target);
                }
                Route::Prefix(prefix) => prefixes.push((prefix, target)),
            }
        }
        prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Self { exact, prefixes }
    }

    /// The target serving `path`, if any.
    pub(crate) fn lookup(&self, path: &str) -> Option<&T> {
        if let Some(target) = self.exact.get(path) {
            return Some(target);
        }
        self.prefixes
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, path))
            .map(|(_, target)| target)
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_or_say_why_not() {
        let cases: &[(&str, Result<Route, &str>)] = &[
            ("/hello", Ok(Route::Exact("/hello".into()))),
            ("/", Ok(Route::Exact("/".into()))),
            ("/api/...", Ok(Route::Prefix("/api".into()))),
            ("/...", Ok(Route::Prefix("".into()))),
            ("hello", Err("a route must start with `/`")),
            (
                "/a/.../b",
                Err("`...` may only appear as the whole last segment, as in `/api/...`"),
            ),
            (
                "/a...",
                Err("`...` may only appear as the whole last segment, as in `/api/...`"),
            ),
            (
                "/a?x=1",
                Err("a route is a path; it cannot hold `?` or `#`"),
            ),
        ];
        for (text, expected) in cases {
            let parsed = Route::parse(text);
            assert_eq!(&parsed, expected, "route {text:?}");
            if let Ok(route) = parsed {
                assert_eq!(route.to_string(), *text, "routes print as written");
                let json = serde_json::to_string(&route).unwrap();
                assert_eq!(serde_json::from_str::<Route>(&json).unwrap(), route);
            }
        }
        let error = serde_json::from_str::<Route>("\"hello\"").unwrap_err();
        assert!(
            error.to_string().contains("invalid route `hello`"),
            "{error}"
        );
    }

    #[test]
    fn the_longest_match_wins_and_exact_beats_prefix() {
        let table = RouteTable::new(
            [
                "/...",
                "/api/...",
                "/api/v2/...",
                "/api/v2/status",
                "/hello",
            ]
            .map(|route| (Route::parse(route).unwrap(), route)),
        );
        let cases = [
            ("/hello", Some("/hello")),
            ("/hello/x", Some("/...")),
            ("/api", Some("/api/...")),
            ("/api/users", Some("/api/...")),
            ("/api/v2", Some("/api/v2/...")),
            ("/api/v2/users", Some("/api/v2/...")),
            ("/api/v2/status", Some("/api/v2/status")),
            ("/api/v2/status/deep", Some("/api/v2/...")),
            ("/", Some("/...")),
        ];
        for (path, expected) in cases {
            assert_eq!(table.lookup(path).copied(), expected, "path {path}");
        }
        let no_catch_all = RouteTable::new([(Route::parse("/api/...").unwrap(), 1)]);
        assert_eq!(no_catch_all.lookup("/apix"), None);
        assert_eq!(no_catch_all.lookup("/"), None);
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        let cases = [
            ("/api", "/api", true),
            ("/api", "/api/", true),
            ("/api", "/api/users/1", true),
            ("/api", "/apix", false),
            ("/api", "/", false),
            ("", "/anything", true),
            ("", "/", true),
        ];
        for (prefix, path, matches) in cases {
            assert_eq!(
                prefix_matches(prefix, path),
                matches,
                "{prefix:?} vs {path:?}"
            );
        }
    }
}
