//! The cross-site check of every state-changing console request, on top
//! of the session's CSRF token: a browser says where a request comes from
//! (`Sec-Fetch-Site`, and `Origin` on every POST), and a request from
//! another site is refused before anything is read or changed. A client
//! that sends neither (curl) is not a browser carrying someone's cookie;
//! it still needs the session's token.

use axum::http::{HeaderMap, header};

/// Why a request looks cross-site, for the refusal.
pub(crate) fn cross_site_problem(headers: &HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && site != "same-origin"
    {
        return Some(format!(
            "the browser says this form was sent from another site (`Sec-Fetch-Site: {site}`)"
        ));
    }
    let origin = headers.get(header::ORIGIN)?;
    let Some(host) = text(header::HOST.as_str()) else {
        return Some("the request has an `Origin` but no `Host` to compare it with".to_string());
    };
    let origin = origin.to_str().unwrap_or("");
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    if authority.is_some_and(|authority| authority.eq_ignore_ascii_case(host)) {
        None
    } else {
        Some(format!(
            "the form was sent from `{origin}`, not from this console (`{host}`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_same_origin_requests_pass() {
        let host = "127.0.0.1:5001";
        // (Sec-Fetch-Site, Origin, passes)
        let cases = [
            (None, None, true),
            (Some("same-origin"), Some("http://127.0.0.1:5001"), true),
            (None, Some("http://127.0.0.1:5001"), true),
            (None, Some("https://127.0.0.1:5001"), true),
            (Some("same-origin"), None, true),
            (Some("cross-site"), Some("http://evil.example"), false),
            (Some("same-site"), Some("http://127.0.0.1:5000"), false),
            (Some("none"), None, false),
            (None, Some("http://evil.example"), false),
            (None, Some("http://127.0.0.1:5001.evil.example"), false),
            (None, Some("null"), false),
        ];
        for (site, origin, passes) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_static(host));
            if let Some(site) = site {
                headers.insert("sec-fetch-site", HeaderValue::from_static(site));
            }
            if let Some(origin) = origin {
                headers.insert(header::ORIGIN, HeaderValue::from_static(origin));
            }
            let problem = cross_site_problem(&headers);
            assert_eq!(
                problem.is_none(),
                passes,
                "{site:?} {origin:?}: {problem:?}"
            );
        }
    }
}
