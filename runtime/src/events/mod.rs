//! Events: what object storage, watched folders and timers hand to the
//! durable queue for delivery to functions.
//!
//! - [`document`]: the event documents (OSS, S3, CloudEvents, timer, file).
//! - [`queue`]: the durable queue in SQLite, with its dead-letter list and
//!   replay.
//! - [`retry`]: where a retry is decided: after each attempt, done, retried
//!   when (exponential backoff with jitter), or dead.
//! - [`delivery`]: the task that delivers due events through the
//!   functions' pools.
//! - [`invocation`]: asynchronous calls, queued as events of kind
//!   `invocation` with the request to replay, and their status.
//! - [`destination`]: where a finished call's record goes (a function, a
//!   bucket, a URL), and the record itself.
//! - [`writer`]: the group commit of the frequent writes (an upload's
//!   events, a delivery's attempt): concurrent callers share a
//!   transaction, each answered once it is committed.
//!
//! The document types and header names are the wire protocol shared with
//! the SDK, in the `kumo-protocol` crate.
//!
//! [`Events`] ties them together for the producers: storage calls
//! [`Events::on_object_change`] before answering an S3 call, and the
//! watchers and timers of `triggers` enqueue through it too.

pub(crate) mod delivery;
pub(crate) mod destination;
pub(crate) mod document;
pub(crate) mod invocation;
pub(crate) mod queue;
pub(crate) mod retry;
pub(crate) mod writer;

use std::sync::{Arc, RwLock};

use anyhow::Context;
use chrono::Utc;
use tokio::sync::Notify;

use crate::database::Database;
use crate::model::StorageTrigger;
use queue::{Attempt, CallEnd, EventKind, NewEvent, NextState};
use writer::{FinishedAttempt, Write, Writer};

pub(crate) use delivery::{Delivery, DeliverySettings, Resolver, start_delivery};
pub use invocation::{CallStatus, InvocationStatus};
pub(crate) use queue::ReplayError;
pub use queue::{AttemptRecord, EventState, EventSummary, list_attempts, list_events};

/// The hop count at which an event is not delivered: a chain of functions
/// writing into buckets that trigger them stops here. The event is stored
/// dead, with the reason, so it can be inspected and replayed.
const MAX_HOPS: u32 = 8;

pub use crate::model::ObjectChange;

/// The event queue's producers' side: the database, the storage triggers,
/// and the delivery task's wake-up.
pub struct Events {
    database: Database,
    storage_triggers: RwLock<Arc<[StorageTrigger]>>,
    /// Woken on every enqueue, so delivery does not wait for its poll.
    wake: Notify,
    /// The group commit of enqueues and attempts.
    writer: Writer,
}

impl Events {
    /// The queue in `database` (opened with [`crate::database::open`]),
    /// matching object changes against `storage_triggers` (validated).
    pub fn new(database: Database, storage_triggers: Vec<StorageTrigger>) -> Arc<Self> {
        Arc::new(Self {
            writer: Writer::new(database.clone()),
            database,
            storage_triggers: RwLock::new(storage_triggers.into()),
            wake: Notify::new(),
        })
    }

    /// The database holding the queue.
    pub(crate) fn database(&self) -> &Database {
        &self.database
    }

    /// Replaces the storage triggers (when the registry changes them).
    pub(crate) fn set_storage_triggers(&self, triggers: Vec<StorageTrigger>) {
        *self
            .storage_triggers
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = triggers.into();
    }

    fn storage_triggers(&self) -> Arc<[StorageTrigger]> {
        self.storage_triggers
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Matches an object change made by a client against the storage
    /// triggers and durably enqueues one event per matching trigger, all
    /// in one transaction, before returning. Call it after the change is
    /// on disk and before answering the S3 call.
    ///
    /// # Errors
    ///
    /// The database failed: nothing was enqueued, and the S3 call should
    /// fail (500) so the client retries.
    pub async fn on_object_change(&self, change: ObjectChange) -> anyhow::Result<()> {
        self.on_object_change_caused_by(change, None).await?;
        Ok(())
    }

    /// As [`Events::on_object_change`], for a change made while handling
    /// an event with hop count `cause_hops` (the hops header the writer
    /// sent): the new events have one hop more, and at [`MAX_HOPS`] they
    /// are stored dead instead of delivered. Returns how many events were
    /// stored.
    ///
    /// # Errors
    ///
    /// As [`Events::on_object_change`].
    pub(crate) async fn on_object_change_caused_by(
        &self,
        change: ObjectChange,
        cause_hops: Option<u32>,
    ) -> anyhow::Result<usize> {
        let hops = cause_hops.map_or(0, |hops| hops.saturating_add(1));
        let triggers = self.storage_triggers();
        let events: Vec<NewEvent> = crate::model::matching_storage_triggers(&triggers, &change)
            .map(|trigger| {
                let id = queue::new_event_id();
                let document = document::object_event(&change, &trigger.name, trigger.format, &id);
                NewEvent {
                    trigger_id: queue::trigger_id(EventKind::Storage, &trigger.name),
                    target: trigger.function.to_string(),
                    kind: EventKind::Storage,
                    document,
                    retry: trigger.retry(),
                    hops,
                    dead_reason: hop_limit_reason(hops),
                    call: None,
                    id,
                }
            })
            .collect();
        if events.is_empty() {
            return Ok(0);
        }
        for event in &events {
            if let Some(reason) = &event.dead_reason {
                tracing::warn!(event = %event.id, bucket = %change.bucket, key = %change.key, "{reason}");
            }
        }
        let count = events.len();
        self.writer
            .write(Write::Insert {
                events,
                now_ms: Utc::now().timestamp_millis(),
            })
            .await
            .with_context(|| {
                format!(
                    "cannot enqueue the events of {}/{}; hint: check the data directory's disk",
                    change.bucket, change.key
                )
            })?;
        self.wake.notify_one();
        Ok(count)
    }

    /// Records a delivery attempt and moves its event on, as
    /// [`queue::finish_attempt`] does, through the group commit: returns
    /// once it is committed.
    ///
    /// # Errors
    ///
    /// A database error; then nothing of it is stored.
    pub(crate) async fn finish_attempt(
        &self,
        event_id: &str,
        attempt: Attempt,
        counted: bool,
        next: NextState,
        end: Option<CallEnd>,
    ) -> Result<(), sqlx::Error> {
        self.writer
            .write(Write::Finish(Box::new(FinishedAttempt {
                event_id: event_id.to_string(),
                attempt,
                counted,
                next,
                end,
            })))
            .await
    }

    /// Claims up to `limit` due events for `lease`, as
    /// [`queue::claim_due`] does, in the group commit's next transaction
    /// (see `writer.rs` for why not beside it).
    ///
    /// # Errors
    ///
    /// A database error; then nothing is claimed.
    pub(crate) async fn claim_due(
        &self,
        now_ms: i64,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<queue::ClaimedEvent>, sqlx::Error> {
        self.writer.claim(now_ms, lease, limit).await
    }

    /// Moves a dead event back to pending and wakes delivery, so it goes
    /// out at once (the API's replay; [`replay`] does the same without the
    /// wake-up, and delivery finds it within a second).
    ///
    /// # Errors
    ///
    /// [`ReplayError`].
    pub(crate) async fn replay(&self, event_id: &str) -> Result<EventSummary, ReplayError> {
        let event = replay(&self.database, event_id).await?;
        self.wake.notify_one();
        Ok(event)
    }

    /// Tells the delivery task that an event was enqueued.
    pub(crate) fn wake_delivery(&self) {
        self.wake.notify_one();
    }
}

/// Why an event with `hops` is not delivered, if it is not.
fn hop_limit_reason(hops: u32) -> Option<String> {
    (hops >= MAX_HOPS).then(|| {
        format!(
            "hop limit reached: this event is the {hops}th in a chain of function writes (limit {MAX_HOPS}); \
             hint: a function writing into a bucket that triggers it loops; narrow the trigger's prefix or suffix"
        )
    })
}

/// Lists events for the API and CLI: see [`queue::list_events`].
///
/// # Errors
///
/// A database error.
pub(crate) async fn list(
    database: &Database,
    state: Option<EventState>,
    limit: u32,
) -> Result<Vec<EventSummary>, sqlx::Error> {
    queue::list_events(database, state, limit).await
}

/// Moves a dead event back to pending, due now: see [`queue::replay`].
///
/// # Errors
///
/// [`ReplayError`].
pub(crate) async fn replay(
    database: &Database,
    event_id: &str,
) -> Result<EventSummary, ReplayError> {
    queue::replay(database, event_id, Utc::now().timestamp_millis()).await
}

#[cfg(test)]
mod tests;
