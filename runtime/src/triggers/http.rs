//! HTTP routes: the function gateway.
//!
//! A route is exact (`/hello`) or a prefix (`/api/...`, which matches `/api`
//! and everything under `/api/`). The longest match wins, and an exact route
//! beats a prefix of the same path. Method, path, query, headers and body
//! pass through to the function unchanged, and its response streams back.
//! Every answer carries `x-kumo-request-id`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;
use crate::live::Live;
use crate::metering::TriggerKind;

/// The response header carrying the invocation's request id.
pub use kumo_protocol::header::REQUEST_ID as REQUEST_ID_HEADER;

/// A parsed route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
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
    pub fn parse(route: &str) -> Result<Self, &'static str> {
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

/// Routes to targets (functions, in the gateway), ready for lookups.
pub struct RouteTable<T> {
    exact: HashMap<String, T>,
    /// Longest prefix first.
    prefixes: Vec<(String, T)>,
}

impl<T> RouteTable<T> {
    /// Builds a table; later duplicates of a route replace earlier ones
    /// (the manifest refuses duplicates before this point).
    pub fn new(routes: impl IntoIterator<Item = (Route, T)>) -> Self {
        let mut exact = HashMap::new();
        let mut prefixes = Vec::new();
        for (route, function) in routes {
            match route {
                Route::Exact(path) => {
                    exact.insert(path, function);
                }
                Route::Prefix(prefix) => prefixes.push((prefix, function)),
            }
        }
        prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Self { exact, prefixes }
    }

    /// The function serving `path`, if any.
    pub fn lookup(&self, path: &str) -> Option<&T> {
        if let Some(function) = self.exact.get(path) {
            return Some(function);
        }
        self.prefixes
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, path))
            .map(|(_, function)| function)
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The gateway's axum router: every request goes through the live route
/// table.
pub fn router(live: Arc<Live>) -> Router {
    Router::new().fallback(handle).with_state(live)
}

async fn handle(State(live): State<Arc<Live>>, mut request: Request) -> Response {
    let request_id: Arc<str> = crate::request_id::next();
    let mut response = match live.route(request.uri().path()) {
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no route matches `{}`; hint: `kumo up` lists the routes when it starts",
                request.uri().path()
            ),
        )
        .into_response(),
        Some(Err(error)) => ApiError::from(error).into_response(),
        Some(Ok(pool)) => {
            // wasi:http needs an authority, from the URI (HTTP/2) or the
            // host header; HTTP/1.0 clients may send neither.
            if request.uri().authority().is_none() && !request.headers().contains_key(header::HOST)
            {
                request
                    .headers_mut()
                    .insert(header::HOST, HeaderValue::from_static("localhost"));
            }
            match pool
                .invoke(request, request_id.clone(), TriggerKind::Http)
                .await
            {
                Ok(response) => response.map(Body::new),
                Err(error) => ApiError::from(error).into_response(),
            }
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
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
            assert_eq!(&Route::parse(text), expected, "route {text:?}");
        }
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
