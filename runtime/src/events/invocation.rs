//! Asynchronous invocations: a call queued in the event queue (kind
//! `invocation`) instead of run while the caller waits. The request
//! (method, path and query, headers, body) is stored as it came and
//! replayed to the function on every attempt, with the retries of
//! `retry.rs` and the function's `async` policy; the outcome goes to the
//! function's destinations (`destination.rs`).
//!
//! A function has at most `max_queued` calls pending or retrying; past it
//! [`enqueue`] refuses with [`EnqueueError::Full`] (the caller answers
//! 429). [`status`] tells where a call is: queued, running, succeeded,
//! failed (every attempt failed) or dead (given up for another reason).

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use kumo_protocol::header;

use super::Events;
use super::document::EventDocument;
use super::queue::{self, Call, EventKind, NewEvent, QueuedRequest};
use crate::database::Database;
use crate::model::{AsyncPolicy, Target};

/// What a caller of a full queue is told to wait before trying again.
pub(crate) const FULL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The trigger id of a function's asynchronous calls, shared by all its
/// versions: the queue's bound counts them.
pub(crate) fn trigger_id(function: &str) -> String {
    queue::trigger_id(EventKind::Invocation, function)
}

/// Why a call was not queued.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnqueueError {
    /// `max_queued` calls of the function are already waiting.
    #[error(
        "function `{function}` already has {queued} asynchronous calls queued (max_queued = {max_queued}); hint: retry after a moment, or raise `async.max_queued`"
    )]
    Full {
        function: String,
        queued: u64,
        max_queued: u32,
    },
    /// The database failed.
    #[error("the event queue failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// The headers of a request in HTTP/1 form: one `name: value` line per
/// field, each ending in CRLF, values as the bytes that came (a header
/// value holds no CR or LF).
pub(crate) fn encode_headers(headers: &http::HeaderMap) -> Vec<u8> {
    let mut encoded = Vec::new();
    for (name, value) in headers {
        encoded.extend_from_slice(name.as_str().as_bytes());
        encoded.extend_from_slice(b": ");
        encoded.extend_from_slice(value.as_bytes());
        encoded.extend_from_slice(b"\r\n");
    }
    encoded
}

/// Reads [`encode_headers`]'s form back, in order, repeated names kept.
///
/// # Errors
///
/// A line that is no header field, named.
pub(crate) fn decode_headers(encoded: &[u8]) -> Result<http::HeaderMap, String> {
    let mut headers = http::HeaderMap::new();
    for line in encoded
        .split(|&byte| byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
    {
        let colon = line.iter().position(|&byte| byte == b':').ok_or_else(|| {
            format!(
                "stored header line {:?} has no `:`",
                String::from_utf8_lossy(line)
            )
        })?;
        let name = http::HeaderName::from_bytes(&line[..colon])
            .map_err(|error| format!("stored header name: {error}"))?;
        let value = line[colon + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&line[colon + 1..]);
        let value = http::HeaderValue::from_bytes(value)
            .map_err(|error| format!("stored value of `{name}`: {error}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Queues a call of `target` (which resolved to a version whose policy is
/// `policy`): the request's method, path and query, headers and `body`.
/// Returns the invocation id, the event's id.
///
/// # Errors
///
/// [`EnqueueError::Full`] past the function's bound, or a database error.
pub(crate) async fn enqueue(
    events: &Events,
    target: &Target,
    policy: &AsyncPolicy,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<String, EnqueueError> {
    let id = queue::new_event_id();
    let uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |path| path.as_str().to_string());
    let event = NewEvent {
        id: id.clone(),
        trigger_id: trigger_id(&target.function),
        target: target.to_string(),
        kind: EventKind::Invocation,
        document: EventDocument {
            source: format!("/kumo/functions/{}", target.function),
            event_type: "kumo.invocation".to_string(),
            subject: uri.clone(),
            time: Utc::now(),
            content_type: "",
            body: body.to_vec(),
        },
        retry: policy.retry,
        hops: 0,
        dead_reason: None,
        call: Some(Call::Invocation(Box::new(QueuedRequest {
            method: parts.method.to_string(),
            uri,
            headers: encode_headers(&parts.headers),
            on_success: policy.on_success.clone(),
            on_failure: policy.on_failure.clone(),
        }))),
    };
    let now_ms = Utc::now().timestamp_millis();
    match queue::insert_event_bounded(events.database(), &event, policy.max_queued, now_ms).await? {
        Ok(()) => {
            events.wake_delivery();
            Ok(id)
        }
        Err(queued) => Err(EnqueueError::Full {
            function: target.function.clone(),
            queued,
            max_queued: policy.max_queued,
        }),
    }
}

/// The request of an asynchronous call's attempt number `attempt_number`:
/// the stored one, as it came, with `kumo-attempt` and
/// `x-kumo-invocation-id` set.
///
/// # Errors
///
/// A stored value that does not read back.
pub(crate) fn attempt_request(
    invocation_id: &str,
    request: &QueuedRequest,
    body: &[u8],
    attempt_number: u32,
) -> Result<http::Request<Full<Bytes>>, String> {
    let method = http::Method::from_bytes(request.method.as_bytes())
        .map_err(|error| format!("stored method `{}`: {error}", request.method))?;
    let mut headers = decode_headers(&request.headers)?;
    headers.insert(header::ATTEMPT, http::HeaderValue::from(attempt_number));
    headers.insert(
        header::INVOCATION_ID,
        http::HeaderValue::from_str(invocation_id)
            .map_err(|error| format!("invocation id: {error}"))?,
    );
    if !headers.contains_key(http::header::HOST) {
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
    }
    let mut built = http::Request::builder()
        .method(method)
        .uri(request.uri.as_str())
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|error| format!("stored request: {error}"))?;
    *built.headers_mut() = headers;
    Ok(built)
}

/// Where an asynchronous call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    /// Waiting for its first attempt or its next retry.
    Queued,
    /// An attempt is running.
    Running,
    /// The function answered 2xx.
    Succeeded,
    /// Every attempt failed (`max_retries + 1` of them); its record went to
    /// `on_failure`.
    Failed,
    /// Given up without a last failed attempt: too old
    /// (`max_event_age_s`), or its function is gone.
    Dead,
}

/// An asynchronous call as `GET /v1/invocations/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvocationStatus {
    /// The invocation id.
    pub id: String,
    /// What was called: `name`, `name:3` or `name:alias`.
    pub function: String,
    /// queued | running | succeeded | failed | dead.
    pub status: CallStatus,
    /// The method and path the function gets.
    pub method: String,
    /// The path and query the function gets.
    pub path: String,
    /// Attempts that ended (throttled ones not counted).
    pub attempts: u32,
    /// Retries allowed after the first attempt.
    pub max_retries: u32,
    /// The function's HTTP status on the last attempt that got an answer.
    pub final_status: Option<u16>,
    /// How it ended: `Success`, `RetriesExhausted`, `EventAgeExceeded` or
    /// `FunctionNotFound`; the record's `condition`.
    pub condition: Option<String>,
    /// The last error, when an attempt failed.
    pub last_error: Option<String>,
    /// When it was queued (or replayed).
    #[schema(value_type = String, format = DateTime)]
    pub queued_at: DateTime<Utc>,
    /// When its first attempt started.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it succeeded, failed or died.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Its attempts, oldest first.
    pub attempt_log: Vec<super::AttemptRecord>,
}

#[derive(FromRow)]
struct StatusRow {
    id: String,
    target: String,
    state: String,
    attempts: i64,
    max_retries: i64,
    request_method: Option<String>,
    request_uri: Option<String>,
    final_status: Option<i64>,
    condition: Option<String>,
    last_error: Option<String>,
    first_seen_ms: i64,
    updated_ms: i64,
    lease_until_ms: Option<i64>,
}

fn time_of_millis(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The status a stored row of an asynchronous call shows at `now_ms`.
fn call_status(
    state: &str,
    condition: Option<&str>,
    lease_until_ms: Option<i64>,
    now_ms: i64,
) -> CallStatus {
    match state {
        "done" => CallStatus::Succeeded,
        "dead" if condition == Some("RetriesExhausted") => CallStatus::Failed,
        "dead" => CallStatus::Dead,
        _ if lease_until_ms.is_some_and(|until| until > now_ms) => CallStatus::Running,
        _ => CallStatus::Queued,
    }
}

/// An asynchronous call's status at `now_ms`, or `None` when no call has
/// this id (events of triggers are not calls). A succeeded call is kept
/// for an hour (`queue::DONE_RETENTION`).
///
/// # Errors
///
/// A database error.
pub(crate) async fn status(
    database: &Database,
    id: &str,
    now_ms: i64,
) -> Result<Option<InvocationStatus>, sqlx::Error> {
    let row: Option<StatusRow> = sqlx::query_as(
        "SELECT id, target, state, attempts, max_retries, request_method, request_uri,
                final_status, condition, last_error, first_seen_ms, updated_ms, lease_until_ms
         FROM events WHERE id = $1 AND kind = 'invocation'",
    )
    .bind(id)
    .fetch_optional(database)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let attempt_log = super::list_attempts(database, id).await?;
    let status = call_status(
        &row.state,
        row.condition.as_deref(),
        row.lease_until_ms,
        now_ms,
    );
    let ended = matches!(
        status,
        CallStatus::Succeeded | CallStatus::Failed | CallStatus::Dead
    );
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(Some(InvocationStatus {
        id: row.id,
        function: row.target,
        status,
        method: row.request_method.unwrap_or_default(),
        path: row.request_uri.unwrap_or_default(),
        attempts: count(row.attempts),
        max_retries: count(row.max_retries),
        final_status: row
            .final_status
            .and_then(|status| u16::try_from(status).ok()),
        condition: if ended { row.condition } else { None },
        last_error: row.last_error,
        queued_at: time_of_millis(row.first_seen_ms),
        started_at: attempt_log
            .first()
            .map(|attempt| time_of_millis(attempt.started_ms)),
        finished_at: ended.then(|| time_of_millis(row.updated_ms)),
        attempt_log,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_come_back_as_they_went_in() {
        let mut headers = http::HeaderMap::new();
        headers.append("content-type", "application/json".parse().unwrap());
        headers.append("x-tag", "one".parse().unwrap());
        headers.append("x-tag", "two: with a colon".parse().unwrap());
        headers.append(
            "x-bytes",
            http::HeaderValue::from_bytes(b"caf\xc3\xa9 \xff").unwrap(),
        );
        headers.append("x-empty", http::HeaderValue::from_static(""));
        let decoded = decode_headers(&encode_headers(&headers)).unwrap();
        assert_eq!(decoded, headers);
        let tags: Vec<_> = decoded.get_all("x-tag").iter().collect();
        assert_eq!(tags, ["one", "two: with a colon"]);
        assert!(decode_headers(b"no colon here\r\n").is_err());
    }

    #[test]
    fn an_attempt_replays_the_stored_request() {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.insert("kumo-attempt", "99".parse().unwrap());
        let request = QueuedRequest {
            method: "PUT".into(),
            uri: "/orders/7?dry=1".into(),
            headers: encode_headers(&headers),
            on_success: None,
            on_failure: None,
        };
        let built = attempt_request("abc", &request, b"body", 2).unwrap();
        assert_eq!(built.method(), http::Method::PUT);
        assert_eq!(built.uri(), "/orders/7?dry=1");
        assert_eq!(built.headers()["content-type"], "text/plain");
        assert_eq!(built.headers()["kumo-attempt"], "2");
        assert_eq!(built.headers()["x-kumo-invocation-id"], "abc");
        assert_eq!(built.headers()["host"], "localhost");
    }

    #[test]
    fn a_calls_status_follows_its_row() {
        let cases = [
            ("pending", None, None, CallStatus::Queued),
            ("retrying", None, Some(50), CallStatus::Queued),
            ("pending", None, Some(200), CallStatus::Running),
            (
                "retrying",
                Some("RetriesExhausted"),
                Some(200),
                CallStatus::Running,
            ),
            ("done", Some("Success"), None, CallStatus::Succeeded),
            ("dead", Some("RetriesExhausted"), None, CallStatus::Failed),
            ("dead", Some("EventAgeExceeded"), None, CallStatus::Dead),
            ("dead", None, None, CallStatus::Dead),
        ];
        for (state, condition, lease, expected) in cases {
            assert_eq!(
                call_status(state, condition, lease, 100),
                expected,
                "{state} {condition:?} {lease:?}"
            );
        }
    }
}
