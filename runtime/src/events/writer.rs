//! Group commit of the queue's frequent writes: the events an upload
//! queues and the attempts delivery records.
//!
//! Callers hand their write to one task, which stores every write waiting
//! at that moment in one transaction and answers each caller only once
//! that transaction is committed. Concurrent uploads share a commit (on
//! SQLite they no longer queue for its one write lock, each waiting out
//! the busy timeout's sleeps), and an upload is still acknowledged only
//! after its event is stored. A lone write is its own batch, with no wait
//! for company. When a batch fails, its writes are stored again one
//! transaction each, so a bad write fails only its own caller.

use std::sync::OnceLock;

use tokio::sync::{mpsc, oneshot};

use super::queue::{self, Attempt, CallEnd, NewEvent, NextState};
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

type Request = (Write, oneshot::Sender<Result<(), sqlx::Error>>);

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
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(run(self.database.clone(), receiver));
            sender
        });
        let (answer, answered) = oneshot::channel();
        sender
            .send((write, answer))
            .map_err(|_| sqlx::Error::WorkerCrashed)?;
        answered.await.unwrap_or(Err(sqlx::Error::WorkerCrashed))
    }
}

/// Commits whatever is waiting, batch after batch, until every handle is
/// dropped. (Each caller waits for its answer, so the channel holds at
/// most one write per upload or delivery in flight.)
async fn run(database: Database, mut receiver: mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        store(&database, &mut batch).await;
    }
}

/// Stores `batch` in one transaction and answers every caller; when that
/// fails, stores each write on its own, so each caller gets its own
/// answer. Empties `batch`.
async fn store(database: &Database, batch: &mut Vec<Request>) {
    if batch.len() > 1 {
        match commit(database, batch.iter().map(|(write, _)| write)).await {
            Ok(()) => {
                for (_, answer) in batch.drain(..) {
                    let _ = answer.send(Ok(()));
                }
                return;
            }
            Err(error) => {
                tracing::debug!(%error, writes = batch.len(), "a group commit of the event queue failed; storing its writes one by one");
            }
        }
    }
    for (write, answer) in batch.drain(..) {
        let _ = answer.send(commit(database, std::iter::once(&write)).await);
    }
}

/// Stores `writes` in one transaction.
async fn commit(
    database: &Database,
    writes: impl Iterator<Item = &Write>,
) -> Result<(), sqlx::Error> {
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
    transaction.commit().await
}
