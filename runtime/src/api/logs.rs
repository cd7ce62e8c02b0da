//! The admin API's function log: `GET /v1/functions/{name}/logs`, the
//! guest's output and the `REPORT` line of each invocation, optionally
//! followed as newline-delimited JSON. On SQLite the guest lines come from
//! this process's memory; on PostgreSQL from the table every node writes
//! ([`crate::observability::shared_logs`]), polled when followed.

use std::convert::Infallible;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::ApiError;
use super::ApiState;
use super::billing::{bad_parameter, parse_limit};
use super::extract::ApiQuery;
use crate::metering::report_log_line;
use crate::observability::logs::{Followed, Follower, LINES_PER_FUNCTION};
use crate::observability::shared_logs::{FOLLOW_POLL_INTERVAL, PolledLog};
use crate::observability::{LogLine, LogStream};

/// Lines `GET /v1/functions/{name}/logs` answers when no `limit` is given.
pub const DEFAULT_LOG_LIMIT: usize = 1_000;
/// A followed log with nothing to send sends an empty line this often:
/// proxies keep the connection, and a reader that went away is noticed
/// (the write fails and the follower is dropped).
pub const FOLLOW_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);

/// Query of `GET /v1/functions/{name}/logs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    /// Lines from this long ago (`30s`, `10m`, `2h`, `1d`) or since this
    /// time (RFC 3339); all stored lines when absent.
    #[param(
        pattern = "^([0-9]{1,6}[smhd]|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z)$"
    )]
    pub since: Option<String>,
    /// At most the last this many stored lines (default 1,000).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 10000)]
    pub limit: Option<String>,
    /// `true`: keep the answer open and send new lines as they arrive, as
    /// newline-delimited JSON.
    #[param(value_type = Option<bool>)]
    pub follow: Option<String>,
}

/// `GET /v1/functions/{name}/logs` without `follow`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogList {
    /// The function.
    pub function: String,
    /// Oldest first.
    pub lines: Vec<LogLine>,
}

/// A line of a followed log stream: a log line, or how many lines this
/// follower missed because it fell too far behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FollowedLine {
    /// A guest output line, or a `REPORT` line.
    Line(LogLine),
    /// Lines skipped: the follower read too slowly.
    Missed {
        /// How many.
        missed: u64,
    },
}

/// The log route, merged into the admin router (behind its token).
pub(crate) fn routes() -> Router<ApiState> {
    Router::new().route("/v1/functions/{name}/logs", get(function_logs))
}

#[derive(OpenApi)]
#[openapi(paths(function_logs))]
pub(crate) struct LogsApiDoc;

/// The start of a `since` window: `now` minus a duration (`30s`, `10m`,
/// `2h`, `1d`, a bare number is seconds) or an RFC 3339 time.
///
/// # Errors
///
/// Neither a duration nor a time, described for the caller.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let hint = "give a duration such as `30s`, `10m`, `2h`, `1d` or an RFC 3339 time";
    let (number, unit_seconds) = match text.char_indices().last() {
        Some((index, 's')) => (&text[..index], 1),
        Some((index, 'm')) => (&text[..index], 60),
        Some((index, 'h')) => (&text[..index], 3_600),
        Some((index, 'd')) => (&text[..index], 86_400),
        Some(_) => (text, 1),
        None => return Err(format!("empty; {hint}")),
    };
    let amount: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is neither a duration nor a time; {hint}"))?;
    let seconds = amount
        .checked_mul(unit_seconds)
        .filter(|seconds| *seconds >= 0)
        .ok_or_else(|| format!("`{text}` is out of range; {hint}"))?;
    chrono::TimeDelta::try_seconds(seconds)
        .and_then(|delta| now.checked_sub_signed(delta))
        .ok_or_else(|| format!("`{text}` is out of range; {hint}"))
}

#[utoipa::path(get, path = "/v1/functions/{name}/logs", tag = "metering",
    params(("name" = String, Path, description = "The function"), LogsParams),
    responses(
        (status = 200, description = "The stored lines, oldest first; with `follow=true`, newline-delimited JSON (`application/x-ndjson`): one `LogLine` per line, the stored ones first, then new ones as they arrive, or `{\"missed\": N}` when the reader fell behind; an empty line every 30 s while nothing happens", body = LogList),
        (status = 400, description = "A bad `since`, `limit` or `follow`", body = super::ErrorBody),
        (status = 404, description = "No such function", body = super::ErrorBody)))]
pub(crate) async fn function_logs(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<LogsParams>,
) -> Result<Response, ApiError> {
    // A function's log starts when it was created: a function deleted and
    // created again under the same name does not show its predecessor's.
    let born = match state.live.snapshot().registry.functions.get(&name) {
        Some(function) => DateTime::parse_from_rfc3339(&function.created_at)
            .ok()
            .map(|time| time.with_timezone(&Utc)),
        None => return Err(ApiError::unknown_function(&name)),
    };
    let asked_since = params
        .since
        .as_deref()
        .map(|value| {
            parse_since(value, Utc::now()).map_err(|problem| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("bad query parameter `since={value}`: {problem}"),
                )
            })
        })
        .transpose()?;
    let since = asked_since.max(born);
    let limit = parse_limit(
        params.limit.as_deref(),
        DEFAULT_LOG_LIMIT,
        LINES_PER_FUNCTION,
        0,
    )?;
    let follow = match params.follow.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(value) => return Err(bad_parameter("follow", value, "use true or false")),
    };
    // Subscribe before reading the history, so no line falls in between.
    let receiver = follow.then(|| state.guest_logs.follow(&name));
    let shared = state.guest_logs.shared();
    let mut polled = match (shared, follow) {
        (Some(shared), true) => Some(shared.follow(&name).await.map_err(unreadable)?),
        _ => None,
    };
    // The REPORT lines of invocations that already ended are stored first.
    state.meter.settled(super::billing::SETTLE_WAIT).await;
    let guest_lines = match shared {
        // On PostgreSQL every node's lines, from the shared table, once
        // this node's own lines so far are in it.
        Some(shared) => {
            shared.settled(super::billing::SETTLE_WAIT).await;
            let stored = shared
                .since(&name, since, limit)
                .await
                .map_err(unreadable)?;
            if let Some(polled) = &mut polled {
                polled.sent(stored.iter().map(|(id, _)| *id));
            }
            stored.into_iter().map(|(_, line)| line).collect()
        }
        None => state.guest_logs.since(&name, since, limit),
    };
    let report_lines = stored_report_lines(&state.database, &name, since, limit).await?;
    let history = newest_of_both(guest_lines, report_lines, limit);
    let Some(receiver) = receiver else {
        return Ok(Json(LogList {
            function: name,
            lines: history,
        })
        .into_response());
    };
    let stored: Vec<Bytes> = history
        .iter()
        .map(|line| ndjson(&FollowedLine::Line(line.clone())))
        .collect();
    let live = FollowStream {
        follower: Follower::new(receiver, history),
        stopping: state.stopping.clone(),
        polled: polled.map(|polled| {
            let mut interval = tokio::time::interval(FOLLOW_POLL_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            (polled, interval)
        }),
        queued: std::collections::VecDeque::new(),
        last_sent: tokio::time::Instant::now(),
    };
    let live = futures_util::stream::unfold(live, |mut live| async move {
        live.next().await.map(|bytes| (bytes, live))
    });
    let stream = futures_util::StreamExt::map(
        futures_util::StreamExt::chain(futures_util::stream::iter(stored), live),
        Ok::<_, Infallible>,
    );
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// A read of the shared guest lines failed: logged, answered 500.
fn unreadable(error: sqlx::Error) -> ApiError {
    tracing::error!(error = %error, "cannot read guest log lines");
    ApiError::internal()
}

/// The `REPORT` lines of `function`'s stored invocation records that end
/// at or after `since`, of its `limit` newest records, in no particular
/// order ([`newest_of_both`] orders them).
async fn stored_report_lines(
    database: &crate::database::Database,
    function: &str,
    since: Option<DateTime<Utc>>,
    limit: usize,
) -> Result<Vec<LogLine>, ApiError> {
    let records = crate::metering::store::newest_records(database, Some(function), limit)
        .await
        .map_err(|error| {
            tracing::error!(error = %format!("{error:#}"), "cannot read invocation records");
            ApiError::internal()
        })?;
    Ok(records
        .iter()
        .map(report_log_line)
        .filter(|line| since.is_none_or(|since| line.time >= since))
        .collect())
}

/// The last `limit` lines of guest output (oldest first) and `REPORT`
/// lines (in any order), merged in time order. An invocation's `REPORT`
/// line comes after its other lines, as Lambda's does, even when one of
/// them (the failure line of a timeout, written as the answer is made) is
/// timed a little after the run's end.
fn newest_of_both(guest: Vec<LogLine>, reports: Vec<LogLine>, limit: usize) -> Vec<LogLine> {
    let mut last_of_request: std::collections::HashMap<&str, DateTime<Utc>> =
        std::collections::HashMap::new();
    for line in &guest {
        let last = last_of_request
            .entry(line.request_id.as_str())
            .or_insert(line.time);
        *last = (*last).max(line.time);
    }
    let reports: Vec<(DateTime<Utc>, LogLine)> = reports
        .into_iter()
        .map(|report| {
            let after = last_of_request
                .get(report.request_id.as_str())
                .map_or(report.time, |last| report.time.max(*last));
            (after, report)
        })
        .collect();
    let mut lines: Vec<(DateTime<Utc>, LogLine)> =
        guest.into_iter().map(|line| (line.time, line)).collect();
    lines.extend(reports);
    // Stable: lines of the same time keep guest output before REPORT.
    lines.sort_by_key(|(time, _)| *time);
    let skip = lines.len().saturating_sub(limit);
    lines
        .split_off(skip)
        .into_iter()
        .map(|(_, line)| line)
        .collect()
}

/// The live part of a followed log: the follower's lines as NDJSON, an
/// empty line when nothing was sent for [`FOLLOW_HEARTBEAT`], until the
/// server stops. On PostgreSQL the guest lines come from polling the shared
/// table (every node's), and the follower gives only `REPORT` lines.
struct FollowStream {
    follower: Follower,
    stopping: watch::Receiver<bool>,
    /// On PostgreSQL: the shared table's reader, and when it reads next.
    polled: Option<(PolledLog, tokio::time::Interval)>,
    /// Polled lines not sent yet.
    queued: std::collections::VecDeque<LogLine>,
    last_sent: tokio::time::Instant,
}

/// What woke a followed log.
enum Woken {
    Followed(Followed),
    PollDue,
    /// Nothing sent for [`FOLLOW_HEARTBEAT`].
    Quiet,
}

impl FollowStream {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.queued.pop_front() {
                return Some(self.sent(ndjson(&FollowedLine::Line(line))));
            }
            let polled = &mut self.polled;
            let poll_due = async move {
                match polled {
                    Some((_, interval)) => {
                        interval.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let woken = tokio::select! {
                _ = self.stopping.wait_for(|stopping| *stopping) => return None,
                () = tokio::time::sleep_until(self.last_sent + FOLLOW_HEARTBEAT) => Woken::Quiet,
                followed = self.follower.next() => Woken::Followed(followed?),
                () = poll_due => Woken::PollDue,
            };
            match woken {
                Woken::Quiet => return Some(self.sent(Bytes::from_static(b"\n"))),
                Woken::Followed(Followed::Line(line))
                    if self.polled.is_some() && line.stream != LogStream::Report => {}
                Woken::Followed(Followed::Line(line)) => {
                    return Some(self.sent(ndjson(&FollowedLine::Line(line))));
                }
                Woken::Followed(Followed::Missed(missed)) => {
                    return Some(self.sent(ndjson(&FollowedLine::Missed { missed })));
                }
                Woken::PollDue => {
                    if let Some((polled, _)) = &mut self.polled {
                        match polled.poll().await {
                            Ok(lines) => self.queued.extend(lines),
                            // The database is away: the follow waits for it.
                            Err(error) => {
                                tracing::debug!(%error, "cannot poll guest log lines");
                            }
                        }
                    }
                }
            }
        }
    }

    fn sent(&mut self, bytes: Bytes) -> Bytes {
        self.last_sent = tokio::time::Instant::now();
        bytes
    }
}

fn ndjson(line: &FollowedLine) -> Bytes {
    let mut text = serde_json::to_vec(line).expect("log lines serialize");
    text.push(b'\n');
    Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::{GuestLogStore, LogLevel};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn since_takes_durations_and_times() {
        let cases = [
            ("30s", Some("2026-11-23T11:59:30+00:00")),
            ("10m", Some("2026-11-23T11:50:00+00:00")),
            ("2h", Some("2026-11-23T10:00:00+00:00")),
            ("1d", Some("2026-11-22T12:00:00+00:00")),
            ("90", Some("2026-11-23T11:58:30+00:00")),
            ("0s", Some("2026-11-23T12:00:00+00:00")),
            (
                "2026-11-23T09:00:00+09:00",
                Some("2026-11-23T00:00:00+00:00"),
            ),
            ("", None),
            ("m", None),
            ("10x", None),
            ("-5m", None),
            ("ten minutes", None),
            ("99999999999999999d", None),
        ];
        for (text, expected) in cases {
            let parsed = parse_since(text, now()).map(|time| time.to_rfc3339());
            match expected {
                Some(expected) => assert_eq!(parsed.as_deref(), Ok(expected), "{text}"),
                None => assert!(parsed.is_err(), "{text}: {parsed:?}"),
            }
        }
    }

    fn line(seconds: i64, text: &str) -> LogLine {
        LogLine {
            time: DateTime::from_timestamp(seconds, 0).unwrap(),
            function: "f".into(),
            request_id: format!("r{seconds}"),
            stream: LogStream::Stdout,
            level: LogLevel::Info,
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn a_followed_log_sends_new_lines_then_ends_when_the_server_stops() {
        let store = GuestLogStore::new();
        let (stop, stopping) = watch::channel(false);
        let mut live = FollowStream {
            follower: Follower::new(store.follow("f"), Vec::new()),
            stopping,
            polled: None,
            queued: std::collections::VecDeque::new(),
            last_sent: tokio::time::Instant::now(),
        };
        store.push(line(4, "new"));
        let bytes = live.next().await.unwrap();
        match serde_json::from_slice::<FollowedLine>(&bytes).unwrap() {
            FollowedLine::Line(line) => assert_eq!(line.text, "new"),
            FollowedLine::Missed { missed } => panic!("missed {missed}"),
        }
        stop.send(true).unwrap();
        assert_eq!(live.next().await, None);
    }

    #[test]
    fn a_log_read_keeps_the_newest_lines_of_both_kinds_in_time_order() {
        let report = |second: i64| LogLine {
            stream: LogStream::Report,
            ..line(second, &format!("report {second}"))
        };
        let guest = vec![line(1, "g1"), line(3, "g3"), line(5, "g5")];
        let reports = vec![report(2), report(3), report(6)];
        let texts = |lines: Vec<LogLine>| lines.into_iter().map(|l| l.text).collect::<Vec<_>>();
        let cases: [(usize, &[&str]); 4] = [
            (10, &["g1", "report 2", "g3", "report 3", "g5", "report 6"]),
            (3, &["report 3", "g5", "report 6"]),
            (1, &["report 6"]),
            (0, &[]),
        ];
        for (limit, expected) in cases {
            assert_eq!(
                texts(newest_of_both(guest.clone(), reports.clone(), limit)),
                expected,
                "limit {limit}"
            );
        }
    }

    #[test]
    fn a_report_line_follows_its_invocations_later_lines() {
        let at = |millis: i64| DateTime::from_timestamp_millis(millis).unwrap();
        let of = |request: &str, millis: i64, stream: LogStream, text: &str| LogLine {
            time: at(millis),
            request_id: request.into(),
            stream,
            ..line(0, text)
        };
        // A timeout: the run ends at 2000, its failure line is written at
        // 2003; another invocation logs at 2001.
        let guest = vec![
            of("a", 0, LogStream::Stderr, "start a"),
            of("b", 2001, LogStream::Stdout, "b"),
            of("a", 2003, LogStream::Failure, "a timed out"),
        ];
        let reports = vec![of("a", 2000, LogStream::Report, "report a")];
        let texts: Vec<String> = newest_of_both(guest, reports, 10)
            .into_iter()
            .map(|line| line.text)
            .collect();
        assert_eq!(texts, ["start a", "b", "a timed out", "report a"]);
    }
}
