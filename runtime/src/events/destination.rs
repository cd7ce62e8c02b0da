//! Destinations: where the outcome of an asynchronous call goes. When a
//! call succeeds, or fails for the last time, delivery stores a record
//! shaped like Lambda's destination record as a new queue row (kind
//! `destination`), in the same transaction as the call's end, so an outcome
//! is never lost. That row is delivered like any event (retried, then
//! dead-lettered, and replayable): to another function (as an event), to
//! a bucket (one JSON object per outcome, through the storage layer, so
//! the bucket's triggers fire), or POSTed to an HTTP URL.
//!
//! The record (`docs/async.md`):
//!
//! ```json
//! {"version": "1.0", "timestamp": "...",
//!  "requestContext": {"requestId": "<invocation id>",
//!     "functionArn": "kumo:local:function:orders:3", "condition": "RetriesExhausted",
//!     "approximateInvokeCount": 3, "functionName": "orders", "functionVersion": "3",
//!     "method": "POST", "path": "/orders"},
//!  "requestPayload": ..., "responseContext": {"statusCode": 500, "executedVersion": "3",
//!     "functionError": "Handled"},
//!  "responsePayload": ...}
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::document::EventDocument;
use super::queue::{self, Call, ClaimedEvent, EventKind, NewEvent};
use crate::model::Destination;

/// The most bytes of the request and of the response a record carries;
/// past it the payload is the first this many bytes, as text, and the
/// record says `requestPayloadTruncated` / `responsePayloadTruncated`.
pub(crate) const PAYLOAD_LIMIT: usize = 256 << 10;

/// How long a POST to a URL destination may take.
const URL_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes an object into a bucket through the storage layer, with the hop
/// count of the write (so the bucket's triggers fire, and a loop stops):
/// `(bucket, key, bytes, hops)`. Built by `triggers`, which sees storage.
pub(crate) type ObjectWriter = Arc<
    dyn Fn(String, String, Vec<u8>, u32) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync,
>;

/// How an asynchronous call ended, as the record's `condition` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    /// The function answered 2xx.
    Success,
    /// `max_retries + 1` attempts failed.
    RetriesExhausted,
    /// The call passed `max_event_age_s` before it could succeed.
    EventAgeExceeded,
    /// Its function no longer exists.
    FunctionNotFound,
}

impl Condition {
    /// The record's word, also stored as the call's `condition`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
            Condition::FunctionNotFound => "FunctionNotFound",
        }
    }
}

/// The function's last answer to a call: its status and the first
/// [`PAYLOAD_LIMIT`] bytes of its body, and whether there were more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) truncated: bool,
}

/// What a record says about a call.
#[derive(Debug, Clone)]
pub(crate) struct Outcome<'a> {
    pub(crate) condition: Condition,
    pub(crate) invocation_id: &'a str,
    /// The function's name.
    pub(crate) function: &'a str,
    /// The version that ran the last attempt, when one ran.
    pub(crate) version: Option<u32>,
    /// Attempts that ended, this one included.
    pub(crate) attempts: u32,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) request_body: &'a [u8],
    /// The function's last answer, when it gave one.
    pub(crate) answer: Option<&'a Answer>,
    /// What went wrong, when the function gave no answer.
    pub(crate) error: Option<&'a str>,
}

/// A payload as a record carries it: JSON when the bytes are JSON, text
/// otherwise (invalid UTF-8 replaced); `null` when empty.
fn payload(bytes: &[u8], truncated: bool) -> Value {
    if bytes.is_empty() && !truncated {
        return Value::Null;
    }
    if !truncated && let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        return value;
    }
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

/// The record of `outcome`, at `timestamp`.
pub(crate) fn record(outcome: &Outcome<'_>, timestamp: chrono::DateTime<Utc>) -> Value {
    let version = outcome.version.map(|version| version.to_string());
    let function_arn = match &version {
        Some(version) => format!("kumo:local:function:{}:{version}", outcome.function),
        None => format!("kumo:local:function:{}", outcome.function),
    };
    let request_truncated = outcome.request_body.len() > PAYLOAD_LIMIT;
    let request_payload = payload(
        &outcome.request_body[..outcome.request_body.len().min(PAYLOAD_LIMIT)],
        request_truncated,
    );
    let mut request_context = json!({
        "requestId": outcome.invocation_id,
        "functionArn": function_arn,
        "condition": outcome.condition.as_str(),
        "approximateInvokeCount": outcome.attempts,
        "functionName": outcome.function,
        "functionVersion": version,
        "method": outcome.method,
        "path": outcome.path,
    });
    if request_truncated {
        request_context["requestPayloadTruncated"] = Value::Bool(true);
    }
    let function_error = match (outcome.condition, outcome.answer) {
        (Condition::Success, _) => None,
        (_, Some(_)) => Some("Handled"),
        (_, None) => Some("Unhandled"),
    };
    let mut response_context = json!({
        "statusCode": outcome.answer.map(|answer| answer.status),
        "executedVersion": version,
    });
    if let Some(function_error) = function_error {
        response_context["functionError"] = Value::String(function_error.to_string());
    }
    let response_payload = match (outcome.answer, outcome.error) {
        (Some(answer), _) => {
            if answer.truncated {
                response_context["responsePayloadTruncated"] = Value::Bool(true);
            }
            payload(&answer.body, answer.truncated)
        }
        (None, Some(error)) => json!({ "errorMessage": error }),
        (None, None) => Value::Null,
    };
    json!({
        "version": "1.0",
        "timestamp": timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
        "requestContext": request_context,
        "requestPayload": request_payload,
        "responseContext": response_context,
        "responsePayload": response_payload,
    })
}

/// The queue row that carries `record` to `destination`: retried with the
/// call's policy, one hop more than the call.
pub(crate) fn record_event(
    call: &ClaimedEvent,
    function: &str,
    condition: Condition,
    destination: Destination,
    record: &Value,
) -> NewEvent {
    NewEvent {
        id: queue::new_event_id(),
        trigger_id: queue::trigger_id(EventKind::Destination, function),
        target: call.target.to_string(),
        kind: EventKind::Destination,
        document: EventDocument {
            source: format!("/kumo/functions/{function}"),
            event_type: format!("kumo.destination.{}", condition.as_str()),
            subject: call.id.clone(),
            time: Utc::now(),
            content_type: "application/json",
            body: serde_json::to_vec(record).expect("a record always serializes"),
        },
        retry: call.retry,
        hops: call.hops.saturating_add(1),
        dead_reason: None,
        call: Some(Call::Record(destination)),
    }
}

/// The destination a call's outcome goes to, if it has one.
pub(crate) fn destination_for(call: &ClaimedEvent, condition: Condition) -> Option<Destination> {
    let Some(Call::Invocation(request)) = &call.call else {
        return None;
    };
    match condition {
        Condition::Success => request.on_success.clone(),
        _ => request.on_failure.clone(),
    }
}

/// The key of a record in a bucket destination.
pub(crate) fn object_key(prefix: &str, invocation_id: &str) -> String {
    format!("{prefix}{invocation_id}.json")
}

/// Writes a record row's body into its bucket.
///
/// # Errors
///
/// The storage layer's error, as text.
pub(crate) async fn to_bucket(
    write_object: &ObjectWriter,
    record_row: &ClaimedEvent,
    bucket: &str,
    prefix: &str,
) -> Result<(), String> {
    let key = object_key(prefix, &record_row.ce_subject);
    write_object(
        bucket.to_string(),
        key.clone(),
        record_row.body.clone(),
        record_row.hops,
    )
    .await
    .map_err(|error| format!("cannot write the record to {bucket}/{key}: {error:#}"))
}

/// POSTs a record row's body to a URL; a 2xx answer delivers it.
///
/// # Errors
///
/// The connection's error or the status, as text.
pub(crate) async fn to_url(
    client: &reqwest::Client,
    record_row: &ClaimedEvent,
    url: &str,
    attempt_number: u32,
) -> Result<u16, (Option<u16>, String)> {
    let response = client
        .post(url)
        .timeout(URL_TIMEOUT)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            kumo_protocol::header::CE_SPECVERSION,
            kumo_protocol::event::SPEC_VERSION,
        )
        .header(kumo_protocol::header::CE_ID, &record_row.id)
        .header(kumo_protocol::header::CE_SOURCE, &record_row.ce_source)
        .header(kumo_protocol::header::CE_TYPE, &record_row.ce_type)
        .header(kumo_protocol::header::CE_TIME, &record_row.ce_time)
        .header(kumo_protocol::header::CE_SUBJECT, &record_row.ce_subject)
        .header(kumo_protocol::header::ATTEMPT, attempt_number)
        .body(record_row.body.clone())
        .send()
        .await
        .map_err(|error| (None, format!("cannot POST the record to {url}: {error}")))?;
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err((
            Some(status.as_u16()),
            format!("the destination {url} answered {status}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome<'a>(condition: Condition, answer: Option<&'a Answer>) -> Outcome<'a> {
        Outcome {
            condition,
            invocation_id: "inv-1",
            function: "orders",
            version: Some(3),
            attempts: 3,
            method: "POST",
            path: "/orders?x=1",
            request_body: br#"{"order":7}"#,
            answer,
            error: Some("the guest trapped"),
        }
    }

    #[test]
    fn a_record_has_lambdas_fields() {
        let time = "2026-05-01T10:00:00.123Z".parse().unwrap();
        let answer = Answer {
            status: 500,
            body: b"out of stock".to_vec(),
            truncated: false,
        };
        let failed = record(&outcome(Condition::RetriesExhausted, Some(&answer)), time);
        assert_eq!(failed["version"], "1.0");
        assert_eq!(failed["timestamp"], "2026-05-01T10:00:00.123Z");
        let context = &failed["requestContext"];
        assert_eq!(context["requestId"], "inv-1");
        assert_eq!(context["functionArn"], "kumo:local:function:orders:3");
        assert_eq!(context["condition"], "RetriesExhausted");
        assert_eq!(context["approximateInvokeCount"], 3);
        assert_eq!(context["functionName"], "orders");
        assert_eq!(context["functionVersion"], "3");
        assert_eq!(context["method"], "POST");
        assert_eq!(context["path"], "/orders?x=1");
        assert_eq!(failed["requestPayload"], json!({"order": 7}));
        assert_eq!(failed["responseContext"]["statusCode"], 500);
        assert_eq!(failed["responseContext"]["executedVersion"], "3");
        assert_eq!(failed["responseContext"]["functionError"], "Handled");
        assert_eq!(failed["responsePayload"], "out of stock");

        let trapped = record(&outcome(Condition::RetriesExhausted, None), time);
        assert_eq!(trapped["responseContext"]["statusCode"], Value::Null);
        assert_eq!(trapped["responseContext"]["functionError"], "Unhandled");
        assert_eq!(
            trapped["responsePayload"],
            json!({"errorMessage": "the guest trapped"})
        );

        let ok = Answer {
            status: 200,
            body: br#"{"ok":true}"#.to_vec(),
            truncated: false,
        };
        let success = record(&outcome(Condition::Success, Some(&ok)), time);
        assert_eq!(success["requestContext"]["condition"], "Success");
        assert!(success["responseContext"].get("functionError").is_none());
        assert_eq!(success["responsePayload"], json!({"ok": true}));
    }

    #[test]
    fn payloads_past_the_limit_are_cut_and_say_so() {
        let time = Utc::now();
        let big = vec![b'a'; PAYLOAD_LIMIT + 10];
        let answer = Answer {
            status: 200,
            body: big[..PAYLOAD_LIMIT].to_vec(),
            truncated: true,
        };
        let outcome = Outcome {
            request_body: &big,
            ..outcome(Condition::Success, Some(&answer))
        };
        let record = record(&outcome, time);
        assert_eq!(
            record["requestPayload"].as_str().unwrap().len(),
            PAYLOAD_LIMIT
        );
        assert_eq!(record["requestContext"]["requestPayloadTruncated"], true);
        assert_eq!(
            record["responsePayload"].as_str().unwrap().len(),
            PAYLOAD_LIMIT
        );
        assert_eq!(record["responseContext"]["responsePayloadTruncated"], true);
        // A payload that is not JSON is text; an empty one is null.
        assert_eq!(payload(b"\xffx", false), "\u{fffd}x");
        assert_eq!(payload(b"", false), Value::Null);
    }
}
