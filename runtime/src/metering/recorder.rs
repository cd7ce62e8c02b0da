//! The pool's side of metering: a [`Recorder`] per pool, and a [`Draft`]
//! per invocation that gathers the record while its parts arrive.
//!
//! Three parts finish at their own times, on their own tasks: the guest's
//! end (the engine's `on_exit`: durations, peak memory, bytes read, its
//! error), the answer (the status, or the error the caller got) and the
//! response body (bytes sent, when it is done or dropped). Each part holds
//! the draft's `Arc` and sets its own field once; the last one to let go
//! completes the record (the `Arc`'s release and acquire order those
//! writes before the drop) and hands it to the [`Meter`], exactly once.
//! Setting a part is uncontended (each part has one writer): an atomic
//! store, or an uncontended lock of the part's own mutex, which costs a
//! third of a `OnceLock`'s set. Nothing is allocated beyond the draft
//! itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::billing::{billed_ms, micros_ceil};
use super::{Answer, InvocationRecord, Meter, Outcome, TriggerKind, outcome_of};
use crate::engine::InvocationEnd;

/// Records the invocations of one function version. Cheap to clone. A
/// disabled recorder (metering off) hands out drafts that do nothing and
/// cost nothing: no clock read, no allocation.
#[derive(Clone)]
pub(crate) struct Recorder(Option<Arc<Subject>>);

/// What every record of one recorder shares.
struct Subject {
    meter: Meter,
    function: Arc<str>,
    version: u32,
    /// The configured memory size (the billing size).
    memory_mb: u64,
}

impl Recorder {
    /// A recorder of `function`'s `version` onto `meter` (disabled when the
    /// meter is).
    pub(crate) fn new(meter: &Meter, function: Arc<str>, version: u32, memory_mb: u64) -> Self {
        Self(meter.is_enabled().then(|| {
            Arc::new(Subject {
                meter: meter.clone(),
                function,
                version,
                memory_mb,
            })
        }))
    }

    /// Starts the record of an invocation arriving now.
    pub(crate) fn begin(&self, request_id: &Arc<str>, trigger: TriggerKind) -> Draft {
        Draft(self.0.as_ref().map(|subject| {
            Arc::new(RecordDraft {
                subject: Arc::clone(subject),
                request_id: Arc::clone(request_id),
                trigger,
                started_at: Utc::now(),
                cold_start: AtomicBool::new(false),
                guest: Mutex::new(None),
                answer: Mutex::new(None),
                bytes_out: AtomicU64::new(0),
            })
        }))
    }
}

/// One invocation's record while its parts arrive; clone it for each part.
/// The record is stored when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct Draft(Option<Arc<RecordDraft>>);

struct RecordDraft {
    subject: Arc<Subject>,
    request_id: Arc<str>,
    trigger: TriggerKind,
    started_at: DateTime<Utc>,
    cold_start: AtomicBool,
    /// Set by the guest's end; unset when the guest never ran.
    guest: Mutex<Option<GuestEnd>>,
    /// Set when the caller is answered; unset when it went away first.
    answer: Mutex<Option<Answer>>,
    bytes_out: AtomicU64,
}

/// What the guest's end tells the record.
#[derive(Debug, Clone, Copy, Default)]
struct GuestEnd {
    duration_us: u64,
    /// `None` on a warm start.
    init_duration_us: Option<u64>,
    peak_memory_bytes: u64,
    bytes_in: u64,
    /// The outcome of the guest's error, if it ended with one.
    error: Option<Outcome>,
}

impl Draft {
    /// The invocation had to create its instance first.
    pub(crate) fn cold_start(&self) {
        if let Some(draft) = &self.0 {
            draft.cold_start.store(true, Ordering::Relaxed);
        }
    }

    /// The guest stopped running.
    pub(crate) fn guest_exited(&self, end: &InvocationEnd) {
        if let Some(draft) = &self.0 {
            let mut guest = draft.guest.lock().unwrap_or_else(PoisonError::into_inner);
            guest.get_or_insert(GuestEnd {
                duration_us: micros_ceil(end.duration),
                init_duration_us: end.init.map(micros_ceil),
                peak_memory_bytes: end.peak_memory_bytes,
                bytes_in: end.request_bytes,
                error: end.result.as_ref().err().map(Outcome::of_error),
            });
        }
    }

    /// The caller got `answer`.
    pub(crate) fn answered(&self, answer: Answer) {
        if let Some(draft) = &self.0 {
            draft
                .answer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(answer);
        }
    }

    /// The response body is done, after `bytes` were sent.
    pub(crate) fn body_sent(&self, bytes: u64) {
        if let Some(draft) = &self.0 {
            draft.bytes_out.store(bytes, Ordering::Relaxed);
        }
    }
}

impl Drop for RecordDraft {
    fn drop(&mut self) {
        let guest = self
            .guest
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        let answer = self
            .answer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or(Answer::Unknown);
        let subject = &self.subject;
        subject.meter.record(&InvocationRecord {
            request_id: Arc::clone(&self.request_id),
            function: Arc::clone(&subject.function),
            version: subject.version,
            trigger: self.trigger,
            started_at: self.started_at,
            duration_us: guest.duration_us,
            init_duration_us: guest.init_duration_us,
            billed_ms: billed_ms(guest.duration_us, guest.init_duration_us),
            memory_mb: subject.memory_mb,
            peak_memory_bytes: guest.peak_memory_bytes,
            cold_start: *self.cold_start.get_mut(),
            outcome: outcome_of(guest.error, answer),
            bytes_in: guest.bytes_in,
            bytes_out: *self.bytes_out.get_mut(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::engine::InvokeError;

    fn end(result: Result<(), InvokeError>) -> InvocationEnd {
        InvocationEnd {
            result,
            instance: None,
            init: Some(Duration::from_micros(1_500)),
            duration: Duration::from_nanos(2_000_001),
            peak_memory_bytes: 3 << 20,
            request_bytes: 7,
        }
    }

    /// The record a draft stores after `parts` ran, in any order.
    async fn recorded(parts: impl FnOnce(&Draft)) -> InvocationRecord {
        let dir = tempfile::tempdir().unwrap();
        let database = crate::database::open(
            dir.path(),
            &crate::database::DatabaseLocation::DataDirectory,
        )
        .await
        .unwrap();
        let (meter, task) = Meter::start(database.clone(), Default::default());
        let recorder = Recorder::new(&meter, Arc::from("f"), 4, 128);
        let draft = recorder.begin(&Arc::from("r1"), TriggerKind::Http);
        parts(&draft);
        drop(draft);
        task.shutdown().await;
        let mut records = super::super::store::newest_records(&database, None, 10)
            .await
            .unwrap();
        assert_eq!(records.len(), 1);
        records.remove(0)
    }

    /// A read after `settled` sees every invocation that ended before it,
    /// without stopping the writer.
    #[tokio::test]
    async fn records_are_readable_once_settled() {
        let dir = tempfile::tempdir().unwrap();
        let database = crate::database::open(
            dir.path(),
            &crate::database::DatabaseLocation::DataDirectory,
        )
        .await
        .unwrap();
        let (meter, task) = Meter::start(database.clone(), Default::default());
        let recorder = Recorder::new(&meter, Arc::from("f"), 4, 128);
        let invoke = |id: &str| {
            let draft = recorder.begin(&Arc::from(id), TriggerKind::Http);
            draft.answered(Answer::Status(200));
            draft.guest_exited(&end(Ok(())));
        };
        // The writer's first store is right after it starts; after it, the
        // writer sleeps for its batch interval.
        invoke("r0");
        meter.settled(Duration::from_secs(30)).await;
        for id in ["r1", "r2", "r3"] {
            invoke(id);
        }
        meter.settled(Duration::from_secs(30)).await;
        let records = super::super::store::newest_records(&database, None, 10)
            .await
            .unwrap();
        assert_eq!(records.len(), 4);
        task.shutdown().await;
    }

    #[tokio::test]
    async fn the_last_part_to_finish_stores_one_whole_record() {
        let record = recorded(|draft| {
            draft.cold_start();
            let exit = draft.clone();
            let body = draft.clone();
            draft.answered(Answer::Status(200));
            body.body_sent(11);
            drop(body);
            exit.guest_exited(&end(Ok(())));
        })
        .await;
        assert_eq!(
            (
                &*record.function,
                record.version,
                record.outcome,
                record.cold_start,
                record.duration_us,
                record.init_duration_us,
                record.billed_ms,
                record.bytes_in,
                record.bytes_out,
                record.memory_mb,
            ),
            ("f", 4, Outcome::Ok, true, 2_001, Some(1_500), 4, 7, 11, 128)
        );
    }

    #[tokio::test]
    async fn a_rejected_invocation_is_recorded_without_a_guest() {
        let record = recorded(|draft| draft.answered(Answer::Error(Outcome::Rejected))).await;
        assert_eq!(
            (record.outcome, record.duration_us, record.cold_start),
            (Outcome::Rejected, 0, false)
        );
    }

    #[tokio::test]
    async fn a_guest_error_wins_over_the_answer_as_the_table_says() {
        let timeout = InvokeError::Timeout {
            timeout: Duration::from_secs(1),
        };
        let record = recorded(|draft| {
            draft.answered(Answer::Status(200));
            draft.guest_exited(&end(Err(timeout)));
        })
        .await;
        assert_eq!(record.outcome, Outcome::Timeout);
    }

    #[test]
    fn a_disabled_recorder_hands_out_empty_drafts() {
        let recorder = Recorder::new(&Meter::disabled(), Arc::from("f"), 1, 128);
        let draft = recorder.begin(&Arc::from("r"), TriggerKind::Http);
        assert!(draft.0.is_none());
        draft.answered(Answer::Unknown);
    }
}
