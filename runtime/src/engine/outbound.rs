//! Outbound HTTP from guests: denied unless the function's
//! `allowed_outbound_hosts` lists the destination.
//!
//! A rule is `scheme://host[:port]`. The scheme may be `*`; the host may be
//! `*` (any host) or start with `*.` (any subdomain); the port may be `*`,
//! and when left out it is the scheme's default (80 for http, 443 for https).

use std::sync::Arc;

use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use super::scope::CurrentInvocation;

/// One entry of `allowed_outbound_hosts`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboundRule {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    Subdomain(String),
}

/// Why an `allowed_outbound_hosts` entry did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid allowed_outbound_hosts entry `{entry}`: {reason}")]
pub(crate) struct OutboundRuleError {
    entry: String,
    reason: &'static str,
}

impl OutboundRule {
    /// Parses `scheme://host[:port]`.
    ///
    /// # Errors
    ///
    /// Fails with a message naming the entry when the scheme is missing or
    /// unknown, the host is empty, or the port is not a number or `*`.
    pub(crate) fn parse(entry: &str) -> Result<Self, OutboundRuleError> {
        let fail = |reason| OutboundRuleError {
            entry: entry.to_string(),
            reason,
        };
        let (scheme, rest) = entry.split_once("://").ok_or_else(|| {
            fail("expected `scheme://host[:port]`, for example `https://api.example.com`")
        })?;
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_string()),
            _ => return Err(fail("the scheme must be `http`, `https` or `*`")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(fail(
                "a rule names a host, not a path; drop everything after the host",
            ));
        }
        // An IPv6 address is written in brackets: `http://[::1]:8080`.
        let (host, port_text) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (address, after) = bracketed
                .split_once(']')
                .ok_or_else(|| fail("an IPv6 address needs its closing `]`"))?;
            match after {
                "" => (address, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (address, Some(port)),
                    None => return Err(fail("expected `:port` after the `]`")),
                },
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let (host, port) = match port_text {
            Some("*") => (host, None),
            Some(port) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| fail("the port must be a number from 1 to 65535 or `*`"))?;
                (host, Some(port))
            }
            None => {
                let default = match scheme.as_deref() {
                    Some("http") => Some(80),
                    Some("https") => Some(443),
                    _ => None,
                };
                (host, default)
            }
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() {
                return Err(fail("`*.` must be followed by a domain"));
            }
            HostPattern::Subdomain(domain.to_string())
        } else if host.is_empty() || host.contains('*') {
            return Err(fail("the host must be a name, `*`, or `*.domain`"));
        } else {
            HostPattern::Exact(host)
        };
        Ok(Self { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` is allowed by this rule.
    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(exact) => host.eq_ignore_ascii_case(exact),
            HostPattern::Subdomain(domain) => {
                let host = host.to_ascii_lowercase();
                host.strip_suffix(domain.as_str())
                    .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1)
            }
        }
    }
}

/// The `wasi:http` hooks of one instance: outgoing requests are checked
/// against the function's rules, then sent by wasmtime's default client.
pub(super) struct OutboundPolicy {
    pub(super) rules: Arc<[OutboundRule]>,
    /// Whose request a denial is logged for.
    pub(super) current: CurrentInvocation,
}

impl OutboundPolicy {
    fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        self.rules
            .iter()
            .any(|rule| rule.allows(scheme, host, port))
    }
}

type SendRequestFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendRequestFuture {
        if !self.allows(request.uri()) {
            self.current.get().in_scope(|| {
                tracing::warn!(
                    uri = %request.uri(),
                    "outbound request denied; hint: add the destination to the function's allowed_outbound_hosts"
                )
            });
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        // Allowed: send with wasmtime's own client, as the default hooks do.
        drop(fut);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_allow_what_they_name_and_nothing_else() {
        // (rule, scheme, host, port, allowed)
        let cases = [
            (
                "https://api.example.com",
                "https",
                "api.example.com",
                443,
                true,
            ),
            (
                "https://api.example.com",
                "http",
                "api.example.com",
                80,
                false,
            ),
            (
                "https://api.example.com",
                "https",
                "api.example.com",
                8443,
                false,
            ),
            (
                "https://api.example.com",
                "https",
                "API.Example.com",
                443,
                true,
            ),
            ("https://api.example.com", "https", "evil.com", 443, false),
            ("http://127.0.0.1:8080", "http", "127.0.0.1", 8080, true),
            ("http://127.0.0.1:8080", "http", "127.0.0.1", 8081, false),
            ("http://127.0.0.1:*", "http", "127.0.0.1", 1234, true),
            ("*://example.com:*", "http", "example.com", 1, true),
            ("*://example.com", "https", "example.com", 9999, true),
            ("https://*.example.com", "https", "a.example.com", 443, true),
            (
                "https://*.example.com",
                "https",
                "a.b.example.com",
                443,
                true,
            ),
            ("https://*.example.com", "https", "example.com", 443, false),
            (
                "https://*.example.com",
                "https",
                "badexample.com",
                443,
                false,
            ),
            ("https://*", "https", "anything.org", 443, true),
            ("https://*", "https", "anything.org", 80, false),
            ("http://[::1]:8080", "http", "::1", 8080, true),
            ("http://[::1]:8080", "http", "::1", 8081, false),
            ("http://[::1]", "http", "::1", 80, true),
            ("http://[::1]:*", "http", "::1", 9, true),
        ];
        for (rule, scheme, host, port, allowed) in cases {
            let parsed = OutboundRule::parse(rule).unwrap();
            assert_eq!(
                parsed.allows(scheme, host, port),
                allowed,
                "rule {rule} against {scheme}://{host}:{port}"
            );
        }
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        let cases = [
            ("api.example.com", "expected `scheme://host[:port]`"),
            ("ftp://example.com", "the scheme must be"),
            ("https://example.com:http", "the port must be a number"),
            ("https://", "the host must be"),
            ("https://ex*ample.com", "the host must be"),
            ("https://*.", "`*.` must be followed"),
            ("https://example.com/path", "not a path"),
            ("https://example.com:0", "the port must be a number from 1"),
            ("http://[::1", "closing `]`"),
            ("http://[::1]8080", "expected `:port`"),
        ];
        for (rule, reason) in cases {
            let error = OutboundRule::parse(rule).unwrap_err().to_string();
            assert!(error.contains(reason), "{rule}: {error}");
            assert!(error.contains(rule), "{rule}: {error}");
        }
    }

    #[test]
    fn no_rules_means_no_outbound_http() {
        let policy = OutboundPolicy {
            rules: Arc::from(Vec::new()),
            current: Default::default(),
        };
        assert!(!policy.allows(&"https://example.com/".parse().unwrap()));
        let policy = OutboundPolicy {
            rules: Arc::from(vec![OutboundRule::parse("http://127.0.0.1:*").unwrap()]),
            current: Default::default(),
        };
        assert!(policy.allows(&"http://127.0.0.1:9/x".parse().unwrap()));
        assert!(!policy.allows(&"http://localhost:9/x".parse().unwrap()));
        assert!(!policy.allows(&"/relative".parse().unwrap()));
        let policy = OutboundPolicy {
            rules: Arc::from(vec![OutboundRule::parse("http://[::1]:8097").unwrap()]),
            current: Default::default(),
        };
        assert!(policy.allows(&"http://[::1]:8097/x".parse().unwrap()));
    }
}
