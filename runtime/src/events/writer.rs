//! Group commit of the queue's frequent writes: the events an upload
//! queues, the attempts delivery records, and delivery's claims.
//!
//! Callers hand their write to one task, which stores every write waiting
//! at that moment in one transaction and answers each caller only once
//! that transaction is committed. Concurrent uploads share a commit (on
//! SQLite they no longer queue for its one write lock, each waiting out
//! the busy timeout's sleeps), and an upload is still acknowledged only
//! after its event is stored. A lone write is its own batch, with no wait
//! for company. When a batch fails, its writes are stored again one
//! transaction each, so a bad write fails only its own caller.
//!
//! Delivery's claims are writes too (they set leases), so they join the
//! batch they arrive with, after its writes (so they see the events the
//! batch stores): one commit for both. Claiming on a connection of its own
//! instead, beside the group commit, made the two wait for SQLite's write
//! lock, and SQLite waits for a lock by sleeping 1, 2, 5, 10 ms and more:
//! hundreds of such sleeps a second under load, each holding up every
//! upload behind it.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::queue::{self, Attempt, CallEnd, ClaimedEvent, NewEvent, NextState};
use crate::database::Database;

/// The most writes one transaction carries.
const MAX_BATCH: usize = 256;

/// One write to the queue.
#[derive(Debug)]
pub(crate) enum Write {
    /// New events, all or none ([`queue::insert_events`]).
    Insert { events: Vec<NewEvent>, now_ms: i64 },
    /// A delivery attempt's record and what follows it
    /// ([`queue::finish_attempt`]).
    Finish(Box<FinishedAttempt>),
}

/// What [`queue::finish_attempt`] stores.
#[derive(Debug)]
pub(crate) struct FinishedAttempt {
    pub(crate) event_id: String,
    pub(crate) attempt: Attempt,
    pub(crate) counted: bool,
    pub(crate) next: NextState,
    pub(crate) end: Option<CallEnd>,
}

/// A claim of due events ([`queue::claim_due`]).
#[derive(Debug)]
struct Claim {
    now_ms: i64,
    lease: Duration,
    limit: u32,
}

/// Where a write's answer goes.
type WriteAnswer = oneshot::Sender<Result<(), sqlx::Error>>;

/// Where a claim's answer goes.
type ClaimAnswer = oneshot::Sender<Result<Vec<ClaimedEvent>, sqlx::Error>>;

/// What the writer task is handed, with where its answer goes.
enum Request {
    Write(Write, WriteAnswer),
    Claim(Claim, ClaimAnswer),
}

/// The queue's writer: a handle on the task that commits batches, started
/// at the first write (inside the runtime that makes it).
pub(crate) struct Writer {
    database: Database,
    sender: OnceLock<mpsc::UnboundedSender<Request>>,
}

impl Writer {
    pub(crate) fn new(database: Database) -> Self {
        Self {
            database,
            sender: OnceLock::new(),
        }
    }

    /// Stores `write`, with whatever other writes are waiting, and returns
    /// once it is committed.
    ///
    /// # Errors
    ///
    /// The database's error for this write (then nothing of it is
    /// stored), or [`sqlx::Error::WorkerCrashed`] when the writer task is
    /// gone (the runtime is shutting down).
    pub(crate) async fn write(&self, write: Write) -> Result<(), sqlx::Error> {
        let (answer, answered) = oneshot::channel();
        self.send(Request::Write(write, answer))?;
        answered.await.unwrap_or(Err(sqlx::Error::WorkerCrashed))
    }

    /// Claims up to `limit` events due at `now_ms` for `lease`, as
    /// [`queue::claim_due`] does, in the transaction of the next batch.
    ///
    /// # Errors
    ///
    /// As [`Writer::write`].
    pub(crate) async fn claim(
        &self,
        now_ms: i64,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
        let (answer, answered) = oneshot::channel();
        let claim = Claim {
            now_ms,
            lease,
            limit,
        };
        self.send(Request::Claim(claim, answer))?;
        answered.await.unwrap_or(Err(sqlx::Error::WorkerCrashed))
    }

    fn send(&self, request: Request) -> Result<(), sqlx::Error> {
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(run(self.database.clone(), receiver));
            sender
        });
        sender.send(request).map_err(|_| sqlx::Error::WorkerCrashed)
    }
}

/// Commits whatever is waiting, batch after batch, until every handle is
/// dropped. (Each caller waits for its answer, so the channel holds at
/// most one request per upload, delivery or claim in flight.)
async fn run(database: Database, mut receiver: mpsc::UnboundedReceiver<Request>) {
    let mut received = Vec::with_capacity(MAX_BATCH);
    let mut batch = Batch::default();
    while receiver.recv_many(&mut received, MAX_BATCH).await > 0 {
        for request in received.drain(..) {
            match request {
                Request::Write(write, answer) => batch.writes.push((write, answer)),
                Request::Claim(claim, answer) => batch.claims.push((claim, answer)),
            }
        }
        store(&database, &mut batch).await;
    }
}

/// The requests of one transaction: writes, then claims (which see the
/// events the writes stored).
#[derive(Default)]
struct Batch {
    writes: Vec<(Write, WriteAnswer)>,
    claims: Vec<(Claim, ClaimAnswer)>,
}

/// Stores `batch` in one transaction and answers every caller; when that
/// fails, stores each request on its own, so each caller gets its own
/// answer. Empties `batch`.
async fn store(database: &Database, batch: &mut Batch) {
    if batch.writes.len() + batch.claims.len() > 1 {
        let writes = batch.writes.iter().map(|(write, _)| write);
        let claims = batch.claims.iter().map(|(claim, _)| claim);
        match commit(database, writes, claims).await {
            Ok(claimed) => {
                for (_, answer) in batch.writes.drain(..) {
                    let _ = answer.send(Ok(()));
                }
                for ((_, answer), claimed) in batch.claims.drain(..).zip(claimed) {
                    let _ = answer.send(Ok(claimed));
                }
                return;
            }
            Err(error) => {
                tracing::debug!(%error, writes = batch.writes.len(), claims = batch.claims.len(), "a group commit of the event queue failed; storing its requests one by one");
            }
        }
    }
    for (write, answer) in batch.writes.drain(..) {
        let stored = commit(database, std::iter::once(&write), std::iter::empty()).await;
        let _ = answer.send(stored.map(drop));
    }
    for (claim, answer) in batch.claims.drain(..) {
        let claimed = commit(database, std::iter::empty(), std::iter::once(&claim)).await;
        let _ = answer.send(claimed.map(|mut claimed| claimed.pop().unwrap_or_default()));
    }
}

/// Stores `writes`, then makes `claims`, in one transaction. Returns what
/// each claim claimed.
async fn commit(
    database: &Database,
    writes: impl Iterator<Item = &Write>,
    claims: impl Iterator<Item = &Claim>,
) -> Result<Vec<Vec<ClaimedEvent>>, sqlx::Error> {
    let mut transaction = crate::database::begin_write(database).await?;
    for write in writes {
        match write {
            Write::Insert { events, now_ms } => {
                queue::insert_events_in(&mut transaction, events, *now_ms).await?;
            }
            Write::Finish(finished) => {
                queue::finish_attempt_in(
                    &mut transaction,
                    &finished.event_id,
                    &finished.attempt,
                    finished.counted,
                    &finished.next,
                    finished.end.as_ref(),
                )
                .await?;
            }
        }
    }
    let mut claimed = Vec::new();
    for claim in claims {
        claimed.push(
            queue::claim_due_in(&mut transaction, claim.now_ms, claim.lease, claim.limit).await?,
        );
    }
    transaction.commit().await?;
    Ok(claimed)
}
