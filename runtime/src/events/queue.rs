//! The durable event queue (`migrations/*/0003_events.sql`), in SQLite or
//! shared by the nodes of a cluster in PostgreSQL.
//!
//! An event is `pending` until its first attempt, `retrying` after a failed
//! one, `done` once acknowledged, `dead` when it gave up (the dead-letter
//! list). A worker claims due events by setting a lease
//! (`lease_until_ms`); a claim whose worker died is claimable again when the
//! lease expires. On SQLite a starting process releases every lease at
//! once (one process owns the data directory); on PostgreSQL nodes claim
//! with `FOR UPDATE SKIP LOCKED` (a row one node is claiming is skipped by
//! the others) under a short lease each node renews while it delivers, so
//! a killed node's events are claimed again once their lease runs out. Acknowledged (`done`) events are
//! kept for [`DONE_RETENTION`] for inspection, then deleted.
//!
//! Every function takes the time as an argument (milliseconds since the
//! epoch), so tests drive the clock.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use sqlx::FromRow;

use super::document::EventDocument;
use crate::database::{Database, Dialect};
use crate::model::{Destination, RetryPolicy, Target};

/// How long acknowledged events stay in the table.
pub(crate) const DONE_RETENTION: Duration = Duration::from_secs(3600);

/// What produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// An object created or removed in a bucket.
    Storage,
    /// A file written into a watched folder.
    Watch,
    /// A timer firing.
    Timer,
    /// An asynchronous call of a function (HTTP or the admin API).
    Invocation,
    /// The record of a finished asynchronous call, for its destination.
    Destination,
}

impl EventKind {
    /// The name stored in the database.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventKind::Storage => "storage",
            EventKind::Watch => "watch",
            EventKind::Timer => "timer",
            EventKind::Invocation => "invocation",
            EventKind::Destination => "destination",
        }
    }
}

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    /// Waiting for its first attempt.
    Pending,
    /// Failed at least once; waiting for its next attempt.
    Retrying,
    /// Gave up; in the dead-letter list.
    Dead,
    /// Acknowledged by the function.
    Done,
}

impl EventState {
    /// The name stored in the database.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Retrying => "retrying",
            EventState::Dead => "dead",
            EventState::Done => "done",
        }
    }

    /// Parses a stored or user-given name.
    ///
    /// # Errors
    ///
    /// Names the value and the accepted ones.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text {
            "pending" => Ok(EventState::Pending),
            "retrying" => Ok(EventState::Retrying),
            "dead" => Ok(EventState::Dead),
            "done" => Ok(EventState::Done),
            other => Err(format!(
                "unknown event state `{other}`; hint: use pending, retrying, dead or done"
            )),
        }
    }
}

/// An event to store.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    /// The CloudEvent's `id`.
    pub(crate) id: String,
    /// `<kind>:<trigger name>`.
    pub(crate) trigger_id: String,
    pub(crate) target: String,
    pub(crate) kind: EventKind,
    /// Its document and CloudEvents attributes.
    pub(crate) document: EventDocument,
    pub(crate) retry: RetryPolicy,
    /// Function writes that led to it.
    pub(crate) hops: u32,
    /// Stored dead right away with this reason (the hop limit).
    pub(crate) dead_reason: Option<String>,
    /// What an asynchronous call or a destination record carries; `None`
    /// for a trigger's event.
    pub(crate) call: Option<Call>,
}

/// What a row of an asynchronous call, or of its outcome's record,
/// carries beyond an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    /// An asynchronous invocation (kind `invocation`): the request replayed
    /// on each attempt (its body is the event's body), and where its outcome
    /// goes.
    Invocation(Box<QueuedRequest>),
    /// A destination record (the event's body, kind `destination`) on its
    /// way to a destination.
    Record(Destination),
}

/// The request of an asynchronous invocation, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueuedRequest {
    /// `GET`, `POST`, ...
    pub(crate) method: String,
    /// The path and query, such as `/orders?id=3`.
    pub(crate) uri: String,
    /// The headers in HTTP/1 form (`invocation::encode_headers`).
    pub(crate) headers: Vec<u8>,
    /// Where a success's record goes.
    pub(crate) on_success: Option<Destination>,
    /// Where a failure's record goes.
    pub(crate) on_failure: Option<Destination>,
}

/// The columns of a [`Call`].
#[derive(Default)]
struct CallColumns {
    request_method: Option<String>,
    request_uri: Option<String>,
    request_headers: Option<Vec<u8>>,
    on_success: Option<String>,
    on_failure: Option<String>,
    destination: Option<String>,
}

impl CallColumns {
    fn of(call: Option<&Call>) -> Self {
        match call {
            None => Self::default(),
            Some(Call::Invocation(request)) => Self {
                request_method: Some(request.method.clone()),
                request_uri: Some(request.uri.clone()),
                request_headers: Some(request.headers.clone()),
                on_success: request.on_success.as_ref().map(Destination::to_stored),
                on_failure: request.on_failure.as_ref().map(Destination::to_stored),
                destination: None,
            },
            Some(Call::Record(destination)) => Self {
                destination: Some(destination.to_stored()),
                ..Self::default()
            },
        }
    }

    /// The call a row of `kind` carries.
    fn into_call(self, kind: &str) -> Result<Option<Call>, String> {
        let destination = |text: Option<String>| {
            text.map(|text| Destination::from_stored(&text).map_err(|error| error.0))
                .transpose()
        };
        match kind {
            "invocation" => {
                let (Some(method), Some(uri), Some(headers)) =
                    (self.request_method, self.request_uri, self.request_headers)
                else {
                    return Err("an invocation without its request".to_string());
                };
                Ok(Some(Call::Invocation(Box::new(QueuedRequest {
                    method,
                    uri,
                    headers,
                    on_success: destination(self.on_success)?,
                    on_failure: destination(self.on_failure)?,
                }))))
            }
            "destination" => match destination(self.destination)? {
                Some(destination) => Ok(Some(Call::Record(destination))),
                None => Err("a destination record without its destination".to_string()),
            },
            _ => Ok(None),
        }
    }
}

/// A new event id: a random UUID, as 32 hex digits.
pub(crate) fn new_event_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The trigger id stored with events: `<kind>:<trigger name>`.
pub(crate) fn trigger_id(kind: EventKind, trigger_name: &str) -> String {
    format!("{}:{trigger_name}", kind.as_str())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds since the epoch as a UTC time.
fn time_of_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A [`RetryPolicy`] as the `events` table keeps it: the columns
/// `max_retries`, `retry_base_ms` and `max_age_ms`. The policy is
/// converted to and from them here and nowhere else; a value that does not
/// fit is an error, never a zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RetryColumns {
    max_retries: i64,
    retry_base_ms: i64,
    max_age_ms: i64,
}

impl TryFrom<RetryPolicy> for RetryColumns {
    type Error = String;

    fn try_from(policy: RetryPolicy) -> Result<Self, String> {
        let ms = |name: &str, duration: Duration| {
            i64::try_from(duration.as_millis())
                .map_err(|_| format!("{name} of {duration:?} does not fit the events table"))
        };
        Ok(Self {
            max_retries: i64::from(policy.max_retries),
            retry_base_ms: ms("retry_base", policy.retry_base)?,
            max_age_ms: ms("max_event_age", policy.max_event_age)?,
        })
    }
}

impl TryFrom<RetryColumns> for RetryPolicy {
    type Error = String;

    fn try_from(columns: RetryColumns) -> Result<Self, String> {
        let out_of_range =
            |name: &str, value: i64| format!("the stored {name} {value} is out of range");
        let ms = |name: &str, value: i64| {
            u64::try_from(value)
                .map(Duration::from_millis)
                .map_err(|_| out_of_range(name, value))
        };
        Ok(Self {
            max_retries: u32::try_from(columns.max_retries)
                .map_err(|_| out_of_range("max_retries", columns.max_retries))?,
            retry_base: ms("retry_base_ms", columns.retry_base_ms)?,
            max_event_age: ms("max_age_ms", columns.max_age_ms)?,
        })
    }
}

/// Inserts one event inside `transaction`.
///
/// # Errors
///
/// A database error, or a retry policy that does not fit the table.
async fn insert_event(
    transaction: &mut crate::database::Transaction,
    event: &NewEvent,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let state = if event.dead_reason.is_some() {
        EventState::Dead
    } else {
        EventState::Pending
    };
    let retry =
        RetryColumns::try_from(event.retry).map_err(|error| sqlx::Error::Encode(error.into()))?;
    let call = CallColumns::of(event.call.as_ref());
    sqlx::query(
        "INSERT INTO events (id, trigger_id, target, kind, ce_source, ce_type, ce_subject, ce_time,
             content_type, body, state, attempts, max_retries, retry_base_ms, max_age_ms, hops,
             first_seen_ms, next_attempt_ms, lease_until_ms, last_error, updated_ms,
             request_method, request_uri, request_headers, on_success, on_failure, destination)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $13, $14, $15, $16, $17, NULL, $18, $19, $20, $21, $22, $23, $24, $25)",
    )
    .bind(&event.id)
    .bind(&event.trigger_id)
    .bind(&event.target)
    .bind(event.kind.as_str())
    .bind(&event.document.source)
    .bind(&event.document.event_type)
    .bind(&event.document.subject)
    .bind(stored_time(&event.document.time))
    .bind(event.document.content_type)
    .bind(&event.document.body)
    .bind(state.as_str())
    .bind(retry.max_retries)
    .bind(retry.retry_base_ms)
    .bind(retry.max_age_ms)
    .bind(i64::from(event.hops))
    .bind(now_ms)
    .bind(now_ms)
    .bind(&event.dead_reason)
    .bind(now_ms)
    .bind(call.request_method)
    .bind(call.request_uri)
    .bind(call.request_headers)
    .bind(call.on_success)
    .bind(call.on_failure)
    .bind(call.destination)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// An event's time as stored, and sent as `ce-time`: RFC 3339 with
/// milliseconds, `Z`.
pub(crate) fn stored_time(time: &chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Stores `events` in one transaction: all or none. (The server goes
/// through the group commit of `writer.rs`; tests store directly.)
///
/// # Errors
///
/// A database error; then none is stored.
#[cfg(test)]
pub(crate) async fn insert_events(
    database: &Database,
    events: &[NewEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let mut transaction = crate::database::begin_write(database).await?;
    insert_events_in(&mut transaction, events, now_ms).await?;
    transaction.commit().await
}

/// Stores `events` inside `transaction` (the group commit of `writer.rs`
/// puts several callers' writes in one).
///
/// # Errors
///
/// A database error; the transaction should then be rolled back.
pub(crate) async fn insert_events_in(
    transaction: &mut crate::database::Transaction,
    events: &[NewEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    for event in events {
        insert_event(transaction, event, now_ms).await?;
    }
    Ok(())
}

/// What became of a timer's firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerFiring {
    /// Its event is stored.
    Stored,
    /// Another node (or an earlier run of this one) already recorded this
    /// firing.
    AlreadyFired,
    /// The timer's previous event is still pending or retrying: this
    /// firing is skipped.
    Outstanding,
}

/// Records a timer's firing for `scheduled_ms` and stores its event,
/// unless that firing was already recorded (every node of a cluster runs
/// every timer; the first to record a firing enqueues it) or the timer
/// has an event pending or retrying (no pile-up).
///
/// # Errors
///
/// A database error.
pub(crate) async fn insert_timer_event_once(
    database: &Database,
    event: &NewEvent,
    scheduled_ms: i64,
    now_ms: i64,
) -> Result<TimerFiring, sqlx::Error> {
    let mut transaction = crate::database::begin_write(database).await?;
    let recorded = sqlx::query(
        "INSERT INTO timer_firings (trigger_id, scheduled_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(&event.trigger_id)
    .bind(scheduled_ms)
    .execute(&mut *transaction)
    .await?
    .rows_affected();
    if recorded == 0 {
        return Ok(TimerFiring::AlreadyFired);
    }
    let outstanding: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE trigger_id = $1 AND state IN ('pending', 'retrying')",
    )
    .bind(&event.trigger_id)
    .fetch_one(&mut *transaction)
    .await?;
    let firing = if outstanding > 0 {
        TimerFiring::Outstanding
    } else {
        insert_event(&mut transaction, event, now_ms).await?;
        TimerFiring::Stored
    };
    transaction.commit().await?;
    Ok(firing)
}

/// Stores an asynchronous call unless `max_queued` calls of its trigger id
/// (`invocation:<function>`) are already pending or retrying. Returns
/// `Err(queued)` with that count when the queue is full.
///
/// # Errors
///
/// A database error.
pub(crate) async fn insert_event_bounded(
    database: &Database,
    event: &NewEvent,
    max_queued: u32,
    now_ms: i64,
) -> Result<Result<(), u64>, sqlx::Error> {
    let mut transaction = crate::database::begin_write(database).await?;
    let queued: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE trigger_id = $1 AND state IN ('pending', 'retrying')",
    )
    .bind(&event.trigger_id)
    .fetch_one(&mut *transaction)
    .await?;
    if queued >= i64::from(max_queued) {
        return Ok(Err(u64::try_from(queued).unwrap_or(0)));
    }
    insert_event(&mut transaction, event, now_ms).await?;
    transaction.commit().await?;
    Ok(Ok(()))
}

/// A file version of a watched folder: it becomes an event once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileVersion {
    /// The path relative to the folder.
    pub(crate) path: String,
    pub(crate) size: u64,
    /// Its modification time in nanoseconds since the epoch.
    pub(crate) mtime_ns: i64,
}

/// Stores a watched file's event unless this version of the file (path,
/// size, modification time) already had one. Returns whether it was
/// stored.
///
/// # Errors
///
/// A database error.
pub(crate) async fn insert_file_event_once(
    database: &Database,
    event: &NewEvent,
    file: &FileVersion,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let mut transaction = crate::database::begin_write(database).await?;
    let inserted = sqlx::query(
        "INSERT INTO watched_files (trigger_id, path, size, mtime_ns, event_id)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(&event.trigger_id)
    .bind(&file.path)
    .bind(i64::try_from(file.size).unwrap_or(i64::MAX))
    .bind(file.mtime_ns)
    .bind(&event.id)
    .execute(&mut *transaction)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    insert_event(&mut transaction, event, now_ms).await?;
    transaction.commit().await?;
    Ok(true)
}

/// An event claimed for delivery.
#[derive(Debug, Clone)]
pub(crate) struct ClaimedEvent {
    pub(crate) id: String,
    pub(crate) target: Target,
    pub(crate) ce_source: String,
    pub(crate) ce_type: String,
    pub(crate) ce_subject: String,
    pub(crate) ce_time: String,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
    /// Attempts so far, not counting this one (throttled ones not counted).
    pub(crate) attempts: u32,
    /// The trigger's, as it was when the event was stored.
    pub(crate) retry: RetryPolicy,
    /// Function writes that led to it.
    pub(crate) hops: u32,
    /// When it was stored (or replayed), ms since the epoch.
    pub(crate) first_seen_ms: i64,
    /// An asynchronous call's request, or a record's destination.
    pub(crate) call: Option<Call>,
}

/// A claimed row as stored.
#[derive(FromRow)]
struct ClaimedRow {
    id: String,
    kind: String,
    target: String,
    ce_source: String,
    ce_type: String,
    ce_subject: String,
    ce_time: String,
    content_type: String,
    body: Vec<u8>,
    attempts: i64,
    max_retries: i64,
    retry_base_ms: i64,
    max_age_ms: i64,
    hops: i64,
    first_seen_ms: i64,
    request_method: Option<String>,
    request_uri: Option<String>,
    request_headers: Option<Vec<u8>>,
    on_success: Option<String>,
    on_failure: Option<String>,
    destination: Option<String>,
}

impl TryFrom<ClaimedRow> for ClaimedEvent {
    type Error = String;

    fn try_from(row: ClaimedRow) -> Result<Self, String> {
        let count = |name: &str, value: i64| {
            u32::try_from(value).map_err(|_| format!("the stored {name} {value} is out of range"))
        };
        let call = CallColumns {
            request_method: row.request_method,
            request_uri: row.request_uri,
            request_headers: row.request_headers,
            on_success: row.on_success,
            on_failure: row.on_failure,
            destination: row.destination,
        }
        .into_call(&row.kind)?;
        Ok(Self {
            call,
            attempts: count("attempts", row.attempts)?,
            hops: count("hops", row.hops)?,
            retry: RetryPolicy::try_from(RetryColumns {
                max_retries: row.max_retries,
                retry_base_ms: row.retry_base_ms,
                max_age_ms: row.max_age_ms,
            })?,
            target: Target::parse(&row.target).map_err(|error| {
                format!("the stored target `{}` does not parse: {error}", row.target)
            })?,
            id: row.id,
            ce_source: row.ce_source,
            ce_type: row.ce_type,
            ce_subject: row.ce_subject,
            ce_time: row.ce_time,
            content_type: row.content_type,
            body: row.body,
            first_seen_ms: row.first_seen_ms,
        })
    }
}

/// Releases every lease: run once at start, when no worker of this data
/// directory is alive. Returns how many events were held.
///
/// # Errors
///
/// A database error.
pub(crate) async fn release_all_leases(database: &Database) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE events SET lease_until_ms = NULL WHERE lease_until_ms IS NOT NULL")
            .execute(database)
            .await?
            .rows_affected(),
    )
}

/// Claims up to `limit` due events (pending or retrying, due by `now_ms`,
/// not leased or with an expired lease), oldest due first, leasing them
/// until `now_ms + lease`. A claimed row whose stored values do not read
/// back (its retry policy, attempts or hops out of range) is not delivered
/// with made-up values: it goes dead, saying why.
///
/// # Errors
///
/// A database error.
#[cfg(test)]
pub(crate) async fn claim_due(
    database: &Database,
    now_ms: i64,
    lease: Duration,
    limit: u32,
) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
    let mut transaction = crate::database::begin_write(database).await?;
    let claimed = claim_due_in(&mut transaction, now_ms, lease, limit).await?;
    transaction.commit().await?;
    Ok(claimed)
}

/// [`claim_due`] inside `transaction` (the server's claims go through the
/// group commit of `writer.rs`, in the transaction of a batch).
///
/// # Errors
///
/// A database error; the transaction should then be rolled back.
pub(crate) async fn claim_due_in(
    transaction: &mut crate::database::Transaction,
    now_ms: i64,
    lease: Duration,
    limit: u32,
) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
    let dialect = crate::database::transaction_dialect(transaction);
    // On PostgreSQL several nodes claim at once: a row another node is
    // claiming right now is skipped, not waited for (SQLite has one writer
    // and no such clause).
    let skip_locked = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
    };
    // `LIMIT $3 + 0`, not `LIMIT $3`: SQLite plans with the value bound to
    // a bare `LIMIT` parameter, so every new binding of it expires the
    // prepared statement and the next step parses and plans it again
    // (seen as `sqlite3Reprepare` in the profile of every claim). An
    // expression is not read at planning time.
    let rows: Vec<ClaimedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE events SET lease_until_ms = $1
         WHERE id IN (
             SELECT id FROM events
             WHERE state IN ('pending', 'retrying') AND next_attempt_ms <= $2
               AND (lease_until_ms IS NULL OR lease_until_ms <= $2)
             ORDER BY next_attempt_ms LIMIT $3 + 0 {skip_locked})
         RETURNING id, kind, target, ce_source, ce_type, ce_subject, ce_time, content_type, body,
                   attempts, max_retries, retry_base_ms, max_age_ms, hops, first_seen_ms,
                   request_method, request_uri, request_headers, on_success, on_failure,
                   destination",
    )))
    .bind(now_ms.saturating_add(millis(lease)))
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(&mut **transaction)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id = row.id.clone();
        match ClaimedEvent::try_from(row) {
            Ok(event) => claimed.push(event),
            Err(why) => {
                let reason = format!(
                    "the stored event does not read back: {why}; hint: the database was changed by hand or by another program"
                );
                tracing::error!(event = %id, "{reason}");
                mark_dead_in(transaction, &id, &reason, now_ms, None).await?;
            }
        }
    }
    Ok(claimed)
}

/// Extends the lease of an event still being delivered to `until_ms`
/// (nothing when it was finished meanwhile).
///
/// # Errors
///
/// A database error.
pub(crate) async fn renew_lease(
    database: &Database,
    event_id: &str,
    until_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE events SET lease_until_ms = $1
         WHERE id = $2 AND lease_until_ms IS NOT NULL AND state IN ('pending', 'retrying')",
    )
    .bind(until_ms)
    .bind(event_id)
    .execute(database)
    .await?;
    Ok(())
}

/// When the next pending or retrying event not held by a lease is due, if
/// any (an expired lease is found by the next poll).
///
/// # Errors
///
/// A database error.
pub(crate) async fn next_due_ms(database: &Database) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MIN(next_attempt_ms) FROM events
         WHERE state IN ('pending', 'retrying') AND lease_until_ms IS NULL",
    )
    .fetch_one(database)
    .await
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    /// The function answered 2xx.
    Ok,
    /// An error, trap, timeout or non-2xx answer.
    Failed,
    /// The function's pool pushed back (429); not counted as an attempt.
    Throttled,
}

impl AttemptOutcome {
    fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Ok => "ok",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Throttled => "throttled",
        }
    }
}

/// One delivery attempt, as recorded.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) started_ms: i64,
    pub(crate) finished_ms: i64,
    pub(crate) outcome: AttemptOutcome,
    /// The function's HTTP status, when it answered.
    pub(crate) status: Option<u16>,
    /// What went wrong.
    pub(crate) error: Option<String>,
    /// The invocation's request id.
    pub(crate) request_id: String,
}

/// Where the event goes after an attempt (decided in `retry.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NextState {
    /// Acknowledged.
    Done,
    /// Try again at this time.
    RetryAt(i64),
    /// Give up with this reason.
    Dead(String),
}

/// How an asynchronous call's row ends an attempt, or ends: its last
/// status, how it ended once it did, and its destination record, stored in
/// the same transaction, so an outcome is never lost.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallEnd {
    /// The function's HTTP status on this attempt, when it answered.
    pub(crate) final_status: Option<u16>,
    /// `Success`, `RetriesExhausted`, ... once the call ended.
    pub(crate) condition: Option<&'static str>,
    /// The destination record to queue.
    pub(crate) record: Option<NewEvent>,
}

/// Stores what `end` says about an asynchronous call's row.
async fn store_call_end(
    transaction: &mut crate::database::Transaction,
    event_id: &str,
    end: &CallEnd,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE events SET final_status = COALESCE($1, final_status),
             condition = COALESCE($2, condition) WHERE id = $3",
    )
    .bind(end.final_status.map(i64::from))
    .bind(end.condition)
    .bind(event_id)
    .execute(&mut **transaction)
    .await?;
    if let Some(record) = &end.record {
        insert_event(transaction, record, now_ms).await?;
    }
    Ok(())
}

/// Records an attempt and moves the event on, in one transaction, and
/// drops its lease. `counted` says whether the attempt counts against the
/// retry budget (a throttled one does not). An asynchronous call's `end`
/// (its status, condition and destination record) goes in the same
/// transaction. (The server goes through the group commit of `writer.rs`,
/// [`super::Events::finish_attempt`]; tests store directly.)
///
/// # Errors
///
/// A database error.
#[cfg(test)]
pub(crate) async fn finish_attempt(
    database: &Database,
    event_id: &str,
    attempt: &Attempt,
    counted: bool,
    next: &NextState,
    end: Option<&CallEnd>,
) -> Result<(), sqlx::Error> {
    let mut transaction = crate::database::begin_write(database).await?;
    finish_attempt_in(&mut transaction, event_id, attempt, counted, next, end).await?;
    transaction.commit().await
}

/// [`finish_attempt`] inside `transaction` (the group commit of
/// `writer.rs` puts several callers' writes in one).
///
/// # Errors
///
/// A database error; the transaction should then be rolled back.
pub(crate) async fn finish_attempt_in(
    transaction: &mut crate::database::Transaction,
    event_id: &str,
    attempt: &Attempt,
    counted: bool,
    next: &NextState,
    end: Option<&CallEnd>,
) -> Result<(), sqlx::Error> {
    if let Some(end) = end {
        store_call_end(transaction, event_id, end, attempt.finished_ms).await?;
    }
    sqlx::query(
        "INSERT INTO event_attempts (event_id, started_ms, finished_ms, outcome, status, error, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(event_id)
    .bind(attempt.started_ms)
    .bind(attempt.finished_ms)
    .bind(attempt.outcome.as_str())
    .bind(attempt.status.map(i64::from))
    .bind(&attempt.error)
    .bind(&attempt.request_id)
    .execute(&mut **transaction)
    .await?;
    let (state, next_ms, error) = match next {
        NextState::Done => ("done", attempt.finished_ms, None),
        NextState::RetryAt(at) => (
            if counted { "retrying" } else { "keep" },
            *at,
            attempt.error.clone(),
        ),
        NextState::Dead(reason) => ("dead", attempt.finished_ms, Some(reason.clone())),
    };
    sqlx::query(
        "UPDATE events SET
             state = CASE WHEN $1 = 'keep' THEN state ELSE $1 END,
             attempts = attempts + $2,
             next_attempt_ms = $3,
             last_error = COALESCE($4, last_error),
             lease_until_ms = NULL,
             updated_ms = $5
         WHERE id = $6",
    )
    .bind(state)
    .bind(i64::from(counted))
    .bind(next_ms)
    .bind(error)
    .bind(attempt.finished_ms)
    .bind(event_id)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// Moves an event to the dead-letter list without an attempt (its
/// function is gone, or it is too old to try); an asynchronous call's
/// `end` goes in the same transaction.
///
/// # Errors
///
/// A database error.
pub(crate) async fn mark_dead(
    database: &Database,
    event_id: &str,
    reason: &str,
    now_ms: i64,
    end: Option<&CallEnd>,
) -> Result<(), sqlx::Error> {
    let mut transaction = crate::database::begin_write(database).await?;
    mark_dead_in(&mut transaction, event_id, reason, now_ms, end).await?;
    transaction.commit().await
}

/// [`mark_dead`] inside `transaction`.
async fn mark_dead_in(
    transaction: &mut crate::database::Transaction,
    event_id: &str,
    reason: &str,
    now_ms: i64,
    end: Option<&CallEnd>,
) -> Result<(), sqlx::Error> {
    if let Some(end) = end {
        store_call_end(transaction, event_id, end, now_ms).await?;
    }
    sqlx::query(
        "UPDATE events SET state = 'dead', last_error = $1, lease_until_ms = NULL, updated_ms = $2
         WHERE id = $3",
    )
    .bind(reason)
    .bind(now_ms)
    .bind(event_id)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// Deletes acknowledged events finished before `before_ms`, and the
/// timer firings scheduled before it. Returns how many events.
///
/// # Errors
///
/// A database error.
pub(crate) async fn purge_done(database: &Database, before_ms: i64) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM timer_firings WHERE scheduled_ms < $1")
        .bind(before_ms)
        .execute(database)
        .await?;
    Ok(
        sqlx::query("DELETE FROM events WHERE state = 'done' AND updated_ms < $1")
            .bind(before_ms)
            .execute(database)
            .await?
            .rows_affected(),
    )
}

/// An event as the API and CLI show it (the body is left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EventSummary {
    /// The event's id, sent as `ce-id`.
    pub id: String,
    /// `<kind>:<trigger name>`.
    pub trigger: String,
    /// The target it is delivered to (`name`, `name:3` or `name:alias`).
    pub function: String,
    /// storage | watch | timer | invocation | destination.
    pub kind: String,
    /// pending | retrying | dead | done.
    pub state: String,
    /// `ce-type`.
    pub event_type: String,
    /// `ce-source`.
    pub source: String,
    /// `ce-subject`.
    pub subject: String,
    /// `ce-time`.
    pub time: String,
    /// Attempts that ended (throttled ones not counted).
    pub attempts: u32,
    /// Retries allowed after the first attempt.
    pub max_retries: u32,
    /// Function writes that led to it.
    pub hops: u32,
    /// When it was stored (or replayed), RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    pub first_seen: DateTime<Utc>,
    /// When it is next tried (pending, retrying) or when it ended.
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt: DateTime<Utc>,
    /// The last error, for a retrying or dead event.
    pub last_error: Option<String>,
}

#[derive(FromRow)]
struct SummaryRow {
    id: String,
    trigger_id: String,
    target: String,
    kind: String,
    state: String,
    ce_type: String,
    ce_source: String,
    ce_subject: String,
    ce_time: String,
    attempts: i64,
    max_retries: i64,
    hops: i64,
    first_seen_ms: i64,
    next_attempt_ms: i64,
    last_error: Option<String>,
}

impl From<SummaryRow> for EventSummary {
    fn from(row: SummaryRow) -> Self {
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            id: row.id,
            trigger: row.trigger_id,
            function: row.target,
            kind: row.kind,
            state: row.state,
            event_type: row.ce_type,
            source: row.ce_source,
            subject: row.ce_subject,
            time: row.ce_time,
            attempts: count(row.attempts),
            max_retries: count(row.max_retries),
            hops: count(row.hops),
            first_seen: time_of_millis(row.first_seen_ms),
            next_attempt: time_of_millis(row.next_attempt_ms),
            last_error: row.last_error,
        }
    }
}

const SUMMARY_COLUMNS: &str = "id, trigger_id, target, kind, state, ce_type, ce_source, ce_subject,
    ce_time, attempts, max_retries, hops, first_seen_ms, next_attempt_ms, last_error";

/// Events in `state` (all states when `None`), oldest first, at most
/// `limit`.
///
/// # Errors
///
/// A database error.
pub async fn list_events(
    database: &Database,
    state: Option<EventState>,
    limit: u32,
) -> Result<Vec<EventSummary>, sqlx::Error> {
    let rows: Vec<SummaryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM events WHERE ($1 IS NULL OR state = $1)
         ORDER BY first_seen_ms DESC, rowid DESC LIMIT $2"
    )))
    .bind(state.map(EventState::as_str))
    .bind(i64::from(limit))
    .fetch_all(database)
    .await?;
    Ok(rows.into_iter().map(EventSummary::from).collect())
}

/// One event, with its body, or `None`.
///
/// # Errors
///
/// A database error.
pub(crate) async fn get_event(
    database: &Database,
    event_id: &str,
) -> Result<Option<EventSummary>, sqlx::Error> {
    let row: Option<SummaryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM events WHERE id = $1"
    )))
    .bind(event_id)
    .fetch_optional(database)
    .await?;
    Ok(row.map(EventSummary::from))
}

/// One recorded delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, FromRow, utoipa::ToSchema)]
pub struct AttemptRecord {
    /// When it started, ms since the epoch.
    pub started_ms: i64,
    /// When it ended, ms since the epoch.
    pub finished_ms: i64,
    /// ok | failed | throttled.
    pub outcome: String,
    /// The function's HTTP status, when it answered.
    pub status: Option<i64>,
    /// What went wrong.
    pub error: Option<String>,
    /// The invocation's request id.
    pub request_id: String,
}

/// An event's delivery attempts, in order.
///
/// # Errors
///
/// A database error.
pub async fn list_attempts(
    database: &Database,
    event_id: &str,
) -> Result<Vec<AttemptRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT started_ms, finished_ms, outcome, status, error, request_id
         FROM event_attempts WHERE event_id = $1 ORDER BY started_ms, rowid",
    )
    .bind(event_id)
    .fetch_all(database)
    .await
}

/// Why an event cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReplayError {
    /// No such event.
    #[error("no event `{0}`; hint: `kumo events list --state dead` lists the dead ones")]
    NotFound(String),
    /// Only dead events are replayed.
    #[error("event `{id}` is {state}, not dead; hint: only dead events can be replayed")]
    NotDead { id: String, state: String },
    /// The database failed.
    #[error("the event queue failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// Moves a dead event back to `pending`, due now, with its attempts and
/// age starting over (its last error is kept until the next attempt).
///
/// # Errors
///
/// [`ReplayError::NotFound`], [`ReplayError::NotDead`], or a database
/// error.
pub(crate) async fn replay(
    database: &Database,
    event_id: &str,
    now_ms: i64,
) -> Result<EventSummary, ReplayError> {
    let updated = sqlx::query(
        "UPDATE events SET state = 'pending', attempts = 0, first_seen_ms = $1,
             next_attempt_ms = $1, lease_until_ms = NULL, updated_ms = $1
         WHERE id = $2 AND state = 'dead'",
    )
    .bind(now_ms)
    .bind(event_id)
    .execute(database)
    .await?
    .rows_affected();
    let event = get_event(database, event_id)
        .await?
        .ok_or_else(|| ReplayError::NotFound(event_id.to_string()))?;
    if updated == 0 {
        return Err(ReplayError::NotDead {
            id: event.id,
            state: event.state,
        });
    }
    Ok(event)
}
