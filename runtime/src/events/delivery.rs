//! Delivery: a task that claims due events from the queue and hands each
//! to its function's pool as an HTTP `POST /` with CloudEvents binary-mode
//! headers, then records how it went.
//!
//! - A 2xx answer (body read to its end) acknowledges the event.
//! - An error, trap, timeout, or any other status is a failed attempt.
//! - Backpressure from the pool (`429`: every instance busy and the queue
//!   full, or no capacity to start one) is a throttled attempt, with the
//!   pool's `Retry-After`.
//! - An event whose function no longer resolves goes dead with that reason.
//!
//! An asynchronous call (`invocation.rs`) is the same loop with the stored
//! request replayed instead of an event; when it ends, its destination
//! record is queued in the same transaction, and records are delivered
//! like events (to a function), or written to a bucket or POSTed to a URL
//! (`destination.rs`).
//!
//! What follows an attempt (done, a retry and when, or dead) is decided in
//! `retry.rs` ([`RetryPolicy::after_attempt`](crate::model::RetryPolicy)).
//!
//! The request carries the CloudEvents headers (`ce-specversion`, `ce-id`,
//! `ce-source`, `ce-type`, `ce-time`, `ce-subject`), `content-type`, and
//! Kumo's hop and attempt headers (`kumo_protocol::header`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use kumo_protocol::event::SPEC_VERSION;
use kumo_protocol::header;

use super::Events;
use super::destination::{self, Answer, Condition, ObjectWriter, Outcome};
use super::document::EventDocument;
use super::invocation;
use super::queue::{self, Attempt, AttemptOutcome, Call, CallEnd, ClaimedEvent, NextState};
use super::retry::Attempted;
use crate::model::{Destination, Target};
use crate::pool::{Pool, PoolError};

/// Finds a function target's pool: `name`, `name:3` or `name:alias`.
pub(crate) type Resolver = Arc<dyn Fn(&Target) -> Option<Arc<Pool>> + Send + Sync>;

/// How delivery runs.
#[derive(Debug, Clone)]
pub(crate) struct DeliverySettings {
    /// The most deliveries in flight at once, over all functions (each
    /// pool still applies its own `max_instances` and queue).
    pub(crate) concurrency: usize,
    /// How long a claim holds an event; past it, another worker may take
    /// it. Longer than the longest invocation (15 minutes) plus its wait
    /// in the pool's queue.
    pub(crate) lease: Duration,
    /// The longest the task sleeps without looking at the queue (it is
    /// also woken by every enqueue).
    pub(crate) poll: Duration,
    /// How often a delivery in flight extends its lease (to `lease` from
    /// then), or `None` to keep the first lease. A cluster uses a short
    /// lease renewed while the delivering node lives, so a killed node's
    /// events are claimed by another within `lease`.
    pub(crate) renew_every: Option<Duration>,
}

impl DeliverySettings {
    /// The settings for a cluster's shared queue (PostgreSQL): a lease of
    /// [`CLUSTER_LEASE`], renewed every [`CLUSTER_LEASE_RENEWAL`].
    pub(crate) fn cluster() -> Self {
        Self {
            lease: CLUSTER_LEASE,
            renew_every: Some(CLUSTER_LEASE_RENEWAL),
            ..Self::default()
        }
    }
}

/// How long a node's claim on an event lasts without renewal when nodes
/// share the queue: how long the events of a killed node wait.
pub(crate) const CLUSTER_LEASE: Duration = Duration::from_secs(10);

/// How often a node renews the leases of the events it is delivering:
/// often enough that two renewals may fail before the lease runs out.
pub(crate) const CLUSTER_LEASE_RENEWAL: Duration = Duration::from_secs(3);

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            concurrency: 64,
            lease: Duration::from_secs(20 * 60),
            poll: Duration::from_secs(1),
            renew_every: None,
        }
    }
}

/// Where records go that no function receives: buckets (through the
/// storage layer) and URLs.
struct Outlets {
    write_object: ObjectWriter,
    http: reqwest::Client,
}

/// The running delivery task.
pub(crate) struct Delivery {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The current time in milliseconds since the epoch.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Releases the leases a previous process left (it died mid-delivery:
/// those events are delivered again, at least once) and starts delivering;
/// destination records for buckets go through `write_object`.
///
/// # Errors
///
/// A database error while releasing the leases.
pub(crate) async fn start_delivery(
    events: Arc<Events>,
    resolve: Resolver,
    write_object: ObjectWriter,
    settings: DeliverySettings,
) -> Result<Delivery, sqlx::Error> {
    // One process owns a SQLite queue, so every lease is a dead process's;
    // nodes sharing a PostgreSQL queue wait for leases to expire instead.
    let released = match crate::database::dialect(events.database()) {
        crate::database::Dialect::Sqlite => queue::release_all_leases(events.database()).await?,
        crate::database::Dialect::Postgres => 0,
    };
    if released > 0 {
        tracing::info!(
            count = released,
            "resuming events whose delivery was cut off by a stop"
        );
    }
    let (stop, stopped) = watch::channel(false);
    let outlets = Arc::new(Outlets {
        write_object,
        http: reqwest::Client::new(),
    });
    let task = tokio::spawn(run(events, resolve, outlets, settings, stopped));
    Ok(Delivery { stop, task })
}

impl Delivery {
    /// Stops claiming events and waits up to `grace` for deliveries in
    /// flight; those still running keep their lease and are delivered
    /// again after a restart.
    pub(crate) async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            tracing::warn!(
                "event deliveries still running at shutdown; they resume at the next start"
            );
        }
    }
}

async fn run(
    events: Arc<Events>,
    resolve: Resolver,
    outlets: Arc<Outlets>,
    settings: DeliverySettings,
    mut stopped: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(settings.concurrency));
    let mut in_flight = JoinSet::new();
    let mut last_purge = 0i64;
    while !*stopped.borrow() {
        while in_flight.try_join_next().is_some() {}
        let now = now_ms();
        if now - last_purge > 60_000 {
            last_purge = now;
            let before = now - i64::try_from(queue::DONE_RETENTION.as_millis()).unwrap_or(0);
            if let Err(error) = queue::purge_done(events.database(), before).await {
                tracing::warn!(%error, "cannot purge delivered events");
            }
        }
        let available = permits.available_permits();
        if available == 0 {
            tokio::select! {
                permit = permits.clone().acquire_owned() => drop(permit),
                _ = stopped.changed() => {}
            }
            continue;
        }
        let limit = u32::try_from(available).unwrap_or(u32::MAX);
        let claimed = match events.claim_due(now, settings.lease, limit).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(%error, "cannot claim events; retrying shortly");
                Vec::new()
            }
        };
        let full = claimed.len() == available;
        for event in claimed {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let events = events.clone();
            let resolve = resolve.clone();
            let outlets = outlets.clone();
            let (lease, renew_every) = (settings.lease, settings.renew_every);
            in_flight.spawn(async move {
                let id = event.id.clone();
                let delivery = deliver(&events, &resolve, &outlets, event);
                match renew_every {
                    None => delivery.await,
                    Some(every) => {
                        let mut delivery = std::pin::pin!(delivery);
                        loop {
                            tokio::select! {
                                () = &mut delivery => break,
                                () = tokio::time::sleep(every) => {
                                    let until = now_ms().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
                                    if let Err(error) = queue::renew_lease(events.database(), &id, until).await {
                                        tracing::warn!(event = %id, %error, "cannot renew an event's lease; another node may deliver it too");
                                    }
                                }
                            }
                        }
                    }
                }
                drop(permit);
            });
        }
        if full {
            continue;
        }
        let sleep = match queue::next_due_ms(events.database()).await {
            Ok(Some(due)) => {
                Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0)).min(settings.poll)
            }
            _ => settings.poll,
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = events.wake.notified() => {}
            _ = stopped.changed() => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// What one attempt came to.
enum Delivered {
    Acknowledged(u16),
    Failed(Option<u16>, String),
    Throttled(Duration, String),
}

/// How much of a response body delivery keeps: an excerpt for an event's
/// error message, the record's payload for an asynchronous call.
const EVENT_EXCERPT_BYTES: usize = 200;

/// The end of an asynchronous call that never ran its last attempt
/// (`condition`, with `reason`): its record for `on_failure`, if any.
fn end_without_attempt(
    event: &ClaimedEvent,
    condition: Condition,
    reason: &str,
) -> Option<CallEnd> {
    let Some(Call::Invocation(request)) = &event.call else {
        return None;
    };
    let record = destination::destination_for(event, condition).map(|target| {
        let record = destination::record(
            &Outcome {
                condition,
                invocation_id: &event.id,
                function: &event.target.function,
                version: None,
                attempts: event.attempts,
                method: &request.method,
                path: &request.uri,
                request_body: &event.body,
                answer: None,
                error: Some(reason),
            },
            chrono::Utc::now(),
        );
        destination::record_event(event, &event.target.function, condition, target, &record)
    });
    Some(CallEnd {
        final_status: None,
        condition: Some(condition.as_str()),
        record,
    })
}

/// Moves an event that is not attempted to the dead-letter list, with an
/// asynchronous call's record for `on_failure`.
async fn give_up(
    events: &Events,
    event: &ClaimedEvent,
    condition: Condition,
    reason: &str,
    now: i64,
) {
    let end = end_without_attempt(event, condition, reason);
    if let Err(error) =
        queue::mark_dead(events.database(), &event.id, reason, now, end.as_ref()).await
    {
        tracing::error!(%error, event = %event.id, "cannot record a dead event");
    } else if end.is_some_and(|end| end.record.is_some()) {
        events.wake_delivery();
    }
}

/// Delivers one claimed event and records the outcome: a trigger's event
/// or a record for a function goes through the function's pool (as an
/// event), an asynchronous call replays its request there, and a record
/// for a bucket or a URL goes through `outlets`.
async fn deliver(events: &Events, resolve: &Resolver, outlets: &Outlets, event: ClaimedEvent) {
    let started = now_ms();
    if let Some(reason) = event.retry.expired(event.first_seen_ms, started) {
        give_up(
            events,
            &event,
            Condition::EventAgeExceeded,
            &reason,
            started,
        )
        .await;
        return;
    }
    let attempt_number = event.attempts.saturating_add(1);
    let request_id: Arc<str> = crate::request_id::next();
    let mut version = None;
    let mut answer = None;
    let delivered = match &event.call {
        Some(Call::Record(Destination::Bucket { bucket, prefix })) => {
            match destination::to_bucket(&outlets.write_object, &event, bucket, prefix).await {
                Ok(()) => Delivered::Acknowledged(200),
                Err(error) => Delivered::Failed(None, error),
            }
        }
        Some(Call::Record(Destination::Url(url))) => {
            match destination::to_url(&outlets.http, &event, url, attempt_number).await {
                Ok(status) => Delivered::Acknowledged(status),
                Err((status, error)) => Delivered::Failed(status, error),
            }
        }
        call => {
            let target = match call {
                Some(Call::Record(Destination::Function(target))) => target,
                _ => &event.target,
            };
            let Some(pool) = resolve(target) else {
                let reason = format!(
                    "the function `{target}` no longer exists; hint: deploy it again and replay the event"
                );
                tracing::warn!(event = %event.id, "{reason}");
                give_up(
                    events,
                    &event,
                    Condition::FunctionNotFound,
                    &reason,
                    started,
                )
                .await;
                return;
            };
            version = Some(pool.version());
            let (request, keep) = match call {
                Some(Call::Invocation(request)) => (
                    invocation::attempt_request(&event.id, request, &event.body, attempt_number),
                    destination::PAYLOAD_LIMIT,
                ),
                _ => (
                    event_request(&event, attempt_number).map_err(|error| error.to_string()),
                    EVENT_EXCERPT_BYTES,
                ),
            };
            match request {
                Ok(request) => {
                    let (delivered, kept) = invoke(&pool, request, request_id.clone(), keep).await;
                    answer = kept;
                    delivered
                }
                Err(error) => {
                    Delivered::Failed(None, format!("cannot build the event's request: {error}"))
                }
            }
        }
    };
    let finished = now_ms();

    let (outcome, status, error, attempted) = match &delivered {
        Delivered::Acknowledged(status) => (
            AttemptOutcome::Ok,
            Some(*status),
            None,
            Attempted::Acknowledged,
        ),
        Delivered::Failed(status, error) => (
            AttemptOutcome::Failed,
            *status,
            Some(error.clone()),
            Attempted::Failed { error },
        ),
        Delivered::Throttled(retry_after, error) => (
            AttemptOutcome::Throttled,
            None,
            Some(error.clone()),
            Attempted::Throttled {
                retry_after: *retry_after,
                error,
            },
        ),
    };
    let next = event.retry.after_attempt(
        attempt_number,
        attempted,
        event.first_seen_ms,
        finished,
        fastrand::f64(),
    );
    match &next {
        NextState::Done => {
            tracing::debug!(event = %event.id, function = %event.target, attempt = attempt_number, "event delivered");
        }
        NextState::RetryAt(at) => {
            tracing::info!(
                event = %event.id,
                function = %event.target,
                attempt = attempt_number,
                retry_in_ms = at - finished,
                "event delivery failed, will retry: {}",
                error.as_deref().unwrap_or_default()
            );
        }
        NextState::Dead(reason) => {
            tracing::warn!(event = %event.id, function = %event.target, "event is dead: {reason}");
        }
    }
    // A throttled attempt does not count against the retry budget.
    let counted = outcome != AttemptOutcome::Throttled;
    let end = match &event.call {
        Some(Call::Invocation(request)) => {
            let condition = match (&next, attempted) {
                (NextState::Done, _) => Some(Condition::Success),
                (NextState::RetryAt(_), _) => None,
                (NextState::Dead(_), Attempted::Failed { .. })
                    if attempt_number > event.retry.max_retries =>
                {
                    Some(Condition::RetriesExhausted)
                }
                (NextState::Dead(_), _) => Some(Condition::EventAgeExceeded),
            };
            let record = condition.and_then(|condition| {
                let target = destination::destination_for(&event, condition)?;
                let record = destination::record(
                    &Outcome {
                        condition,
                        invocation_id: &event.id,
                        function: &event.target.function,
                        version,
                        attempts: event.attempts.saturating_add(u32::from(counted)),
                        method: &request.method,
                        path: &request.uri,
                        request_body: &event.body,
                        answer: answer.as_ref(),
                        error: error.as_deref(),
                    },
                    chrono::Utc::now(),
                );
                Some(destination::record_event(
                    &event,
                    &event.target.function,
                    condition,
                    target,
                    &record,
                ))
            });
            Some(CallEnd {
                final_status: status.filter(|_| answer.is_some()),
                condition: condition.map(Condition::as_str),
                record,
            })
        }
        _ => None,
    };
    let queued_a_record = end.as_ref().is_some_and(|end| end.record.is_some());
    let attempt = Attempt {
        started_ms: started,
        finished_ms: finished,
        outcome,
        status,
        error,
        request_id: request_id.to_string(),
    };
    let retrying = matches!(next, NextState::RetryAt(_));
    if let Err(error) = events
        .finish_attempt(&event.id, attempt, counted, next, end)
        .await
    {
        // The lease stays: the event is delivered again once it expires
        // (or at the next start).
        tracing::error!(%error, event = %event.id, "cannot record a delivery attempt");
    }
    if retrying || queued_a_record {
        // The claiming loop did not count this event (it was leased) when
        // it chose how long to sleep: have it look again, so the retry
        // leaves on time (and a new record goes out at once).
        events.wake_delivery();
    }
}

/// The request the first attempt of a new event with `document` would
/// make (hops 0), built by the same code as every delivery: for a sample
/// event (`kumo invoke --event`), which a function must see exactly as it
/// sees a real one.
///
/// # Errors
///
/// An attribute that is no valid header value.
pub(crate) fn first_attempt_request(
    id: String,
    target: Target,
    document: EventDocument,
) -> Result<http::Request<Full<Bytes>>, http::Error> {
    let event = ClaimedEvent {
        id,
        target,
        ce_source: document.source,
        ce_type: document.event_type,
        ce_subject: document.subject,
        ce_time: queue::stored_time(&document.time),
        content_type: document.content_type.to_owned(),
        body: document.body,
        attempts: 0,
        retry: crate::model::RetryPolicy::default(),
        hops: 0,
        first_seen_ms: now_ms(),
        call: None,
    };
    event_request(&event, 1)
}

/// The HTTP request for an event's attempt number `attempt_number`.
fn event_request(
    event: &ClaimedEvent,
    attempt_number: u32,
) -> Result<http::Request<Full<Bytes>>, http::Error> {
    http::Request::builder()
        .method(http::Method::POST)
        .uri("/")
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, &event.content_type)
        .header(header::CE_SPECVERSION, SPEC_VERSION)
        .header(header::CE_ID, &event.id)
        .header(header::CE_SOURCE, &event.ce_source)
        .header(header::CE_TYPE, &event.ce_type)
        .header(header::CE_TIME, &event.ce_time)
        .header(header::CE_SUBJECT, header::encode_value(&event.ce_subject))
        .header(header::HOPS, event.hops)
        .header(header::ATTEMPT, attempt_number)
        .body(Full::new(Bytes::from(event.body.clone())))
}

/// Runs one attempt's request on `pool`; keeps the first `keep` bytes of
/// the answer's body (read to its end).
async fn invoke(
    pool: &Arc<Pool>,
    request: http::Request<Full<Bytes>>,
    request_id: Arc<str>,
    keep: usize,
) -> (Delivered, Option<Answer>) {
    match pool
        .invoke(request, request_id, crate::metering::TriggerKind::Event)
        .await
    {
        Ok(response) => {
            let status = response.status();
            let mut body = std::pin::pin!(response.into_body());
            let mut kept = Vec::new();
            let mut truncated = false;
            let mut broke_off = None;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Some(data) = frame.data_ref() {
                            let room = keep.saturating_sub(kept.len());
                            kept.extend_from_slice(&data[..data.len().min(room)]);
                            truncated |= data.len() > room;
                        }
                    }
                    Err(error) => {
                        broke_off = Some(error.to_string());
                        break;
                    }
                }
            }
            let answer = Answer {
                status: status.as_u16(),
                body: kept,
                truncated,
            };
            let delivered = match broke_off {
                Some(error) => Delivered::Failed(
                    Some(status.as_u16()),
                    format!("the function's response broke off: {error}"),
                ),
                None if status.is_success() => Delivered::Acknowledged(status.as_u16()),
                None => {
                    let excerpt = String::from_utf8_lossy(
                        &answer.body[..answer.body.len().min(EVENT_EXCERPT_BYTES)],
                    );
                    Delivered::Failed(
                        Some(status.as_u16()),
                        format!("the function answered {status}: {}", excerpt.trim()),
                    )
                }
            };
            (delivered, Some(answer))
        }
        Err(error @ PoolError::Overloaded { retry_after, .. }) => {
            (Delivered::Throttled(retry_after, error.to_string()), None)
        }
        Err(error @ PoolError::NoCapacity) => (
            Delivered::Throttled(Duration::from_secs(1), error.to_string()),
            None,
        ),
        Err(error) => (Delivered::Failed(None, error.to_string()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RetryPolicy;

    #[test]
    fn a_first_attempt_request_is_a_stored_events_first_delivery() {
        let document = crate::events::document::timer_event(
            "nightly",
            "2026-11-23T06:45:00Z".parse().unwrap(),
            "sweep",
        );
        let sample =
            first_attempt_request("ev-9".into(), Target::latest("f"), document.clone()).unwrap();
        // What delivery builds for the same document once stored and
        // claimed, before any attempt.
        let claimed = ClaimedEvent {
            id: "ev-9".into(),
            target: Target::latest("f"),
            ce_source: document.source.clone(),
            ce_type: document.event_type.clone(),
            ce_subject: document.subject.clone(),
            ce_time: "2026-11-23T06:45:00.000Z".into(),
            content_type: document.content_type.into(),
            body: document.body.clone(),
            attempts: 0,
            retry: RetryPolicy::default(),
            hops: 0,
            first_seen_ms: 0,
            call: None,
        };
        let delivered = event_request(&claimed, 1).unwrap();
        assert_eq!(sample.method(), delivered.method());
        assert_eq!(sample.uri(), delivered.uri());
        assert_eq!(sample.headers(), delivered.headers());
        assert_eq!(sample.headers()["kumo-attempt"], "1");
        assert_eq!(sample.headers()["kumo-event-hops"], "0");
    }

    #[test]
    fn event_requests_carry_cloudevents_headers() {
        let event = ClaimedEvent {
            id: "ev-1".into(),
            target: Target::latest("f"),
            ce_source: "/kumo/storage/photos".into(),
            ce_type: "kumo.storage.ObjectCreated:PutObject".into(),
            ce_subject: "in/ä.png".into(),
            ce_time: "2026-11-23T06:45:43.120Z".into(),
            content_type: "application/json".into(),
            body: b"{}".to_vec(),
            attempts: 2,
            retry: RetryPolicy::default(),
            hops: 4,
            first_seen_ms: 0,
            call: None,
        };
        let request = event_request(&event, 3).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), "/");
        let headers = request.headers();
        let expected = [
            ("ce-specversion", "1.0"),
            ("ce-id", "ev-1"),
            ("ce-source", "/kumo/storage/photos"),
            ("ce-type", "kumo.storage.ObjectCreated:PutObject"),
            ("ce-time", "2026-11-23T06:45:43.120Z"),
            ("ce-subject", "in/%C3%A4.png"),
            ("content-type", "application/json"),
            ("kumo-event-hops", "4"),
            ("kumo-attempt", "3"),
        ];
        for (name, value) in expected {
            assert_eq!(headers[name], value, "{name}");
        }
    }
}
