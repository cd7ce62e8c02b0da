//! The frame every console page shares (landmarks, navigation, the
//! sign-out form, the message the last form left), the error page, and
//! how numbers and times are written.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::ConsoleState;
use super::session::{Notice, Session};
use crate::api::ApiError;
use crate::storage::ObjectError;

/// The console's sections, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Functions,
    Billing,
    Events,
    Storage,
}

const SECTIONS: [(Section, &str, &str); 4] = [
    (Section::Overview, "/console/", "Overview"),
    (Section::Billing, "/console/billing", "Billing"),
    (Section::Events, "/console/events", "Events"),
    (Section::Storage, "/console/storage", "Storage"),
];

/// A whole page: the frame around `content`, with the message the last
/// form left for this session.
pub(crate) fn page(
    state: &ConsoleState,
    session: &Session,
    section: Section,
    title: &str,
    content: Markup,
) -> Response {
    let notice = state.sessions.take_notice(&session.id);
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Console" {
                        a.brand href="/console/" { "Kumo" }
                        ul {
                            @for (target, href, label) in SECTIONS {
                                li {
                                    a href=(href) aria-current=[(target == section || (target == Section::Overview && section == Section::Functions)).then_some("page")] { (label) }
                                }
                            }
                        }
                        form.sign-out method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf_token);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    @if let Some(notice) = notice {
                        @if notice.is_error {
                            p.notice.error role="alert" { (notice.text) }
                        } @else {
                            p.notice role="status" { (notice.text) }
                        }
                    }
                    (content)
                }
            }
        }
    };
    html_response(StatusCode::OK, markup)
}

/// The `<head>` of every page: no inline script or style, so the content
/// security policy can forbid both.
pub(crate) fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Kumo console" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// An HTML answer that is never cached (it shows live state).
pub(crate) fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Where a handled form sends the browser, with a message for that page
/// (post, redirect, get: a reload does not send the form again).
pub(crate) fn redirect_with_notice(
    state: &ConsoleState,
    session: &Session,
    to: &str,
    notice: Notice,
) -> Response {
    state.sessions.tell(&session.id, notice);
    Redirect::to(to).into_response()
}

/// A console request that failed: a page with the status, the message
/// and a way back.
#[derive(Debug)]
pub(crate) struct ConsoleError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ConsoleError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        Self::new(error.status, error.message)
    }
}

impl From<ObjectError> for ConsoleError {
    fn from(error: ObjectError) -> Self {
        // Storage's 5xx messages name no internals (those are logged).
        Self::new(error.status, error.message)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                (head(reason))
                body {
                    main #main {
                        h1 { (self.status.as_u16()) " " (reason) }
                        p.notice.error role="alert" { (self.message) }
                        p { a href="/console/" { "Back to the console" } }
                    }
                }
            }
        };
        html_response(self.status, markup)
    }
}

/// A time, readable and machine-readable.
pub(crate) fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (at.format("%Y-%m-%d %H:%M:%S"))
        }
    }
}

/// An RFC 3339 time from the registry, shown like [`time`].
pub(crate) fn stored_time(text: &str) -> Markup {
    match DateTime::parse_from_rfc3339(text) {
        Ok(at) => time(at.with_timezone(&Utc)),
        Err(_) => html! { (text) },
    }
}

/// Microseconds as milliseconds with two decimals.
pub(crate) fn millis(us: u64) -> String {
    format!("{}.{:02} ms", us / 1000, us % 1000 / 10)
}

/// A size in bytes, in the largest unit that keeps it above one.
pub(crate) fn bytes(size: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if size < 1024 {
        return format!("{size} B");
    }
    let mut value = size as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// A duration in days, hours, minutes and seconds (`2d 3h 4m 5s`).
pub(crate) fn uptime(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (days, hours, minutes, seconds) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m {seconds}s"),
        _ => format!("{days}d {hours}h {minutes}m {seconds}s"),
    }
}

/// Dollars with as many decimals as small bills need.
pub(crate) fn dollars(amount: f64) -> String {
    format!("${amount:.6}")
}

/// What a path segment or query value keeps as it is: RFC 3986's
/// unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A path segment or query value, percent-encoded.
pub(crate) fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_written_for_people() {
        assert_eq!(millis(3_217), "3.21 ms");
        assert_eq!(millis(50), "0.05 ms");
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(uptime(Duration::from_secs(5)), "5s");
        assert_eq!(uptime(Duration::from_secs(65)), "1m 5s");
        assert_eq!(uptime(Duration::from_secs(3_725)), "1h 2m 5s");
        assert_eq!(uptime(Duration::from_secs(90_061)), "1d 1h 1m 1s");
        assert_eq!(encode("in/a b.png"), "in%2Fa%20b.png");
        assert_eq!(encode("my-fn_2.x~"), "my-fn_2.x~");
    }

    #[test]
    fn text_is_escaped_by_construction() {
        let hostile = "<script>alert(1)</script>\"'&";
        let markup = html! { p title=(hostile) { (hostile) } }.into_string();
        assert!(!markup.contains("<script>"), "{markup}");
        assert!(markup.contains("&lt;script&gt;"), "{markup}");
        assert!(markup.contains("&quot;"), "{markup}");
    }
}
