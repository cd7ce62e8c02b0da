//! The [`Meter`]: the request path's handle, and the writer task behind it.
//!
//! [`Meter::record`] never waits on the writer. Under a mutex that is only
//! ever held for one record or a swap, it encodes the record onto the
//! pending [`Batch`] and adds it to its function's metric sums (and, with
//! [`MeterOptions::report_lines`], appends its `REPORT` line): all of it
//! while the record is still in the cache, so that nothing touches it
//! again. When the batch is full ([`MeterOptions::queue_capacity`]
//! records) the record is dropped, counted ([`Meter::dropped`], the
//! `kumo_metering_dropped_records_total` metric) and logged at most once
//! per [`DROP_LOG_INTERVAL`]. The writer task wakes every
//! [`BATCH_INTERVAL`] (100 ms), swaps the pending batch for its own empty
//! one (both keep their buffers, so a steady load allocates nothing),
//! stores it as one row ([`super::store`]), sends the `REPORT` lines of
//! followed functions to their log's followers, prints the batch's
//! `REPORT` lines in one write when asked to, and updates the metrics. So
//! a record reaches the database at most ~100 ms (plus the write) after
//! its invocation ended, and a hard kill loses at most that window. A
//! batch the database refuses (a full disk, an unwritable file) is kept,
//! up to [`MAX_UNSTORED_RECORDS`], and stored again, oldest first, at the
//! next ticks: a database that fails for a while loses no record.
//! [`MeterTask::shutdown`] stores everything still pending.
//!
//! `REPORT` lines are not printed by default: at tens of thousands of
//! invocations a second they are megabytes of log a second, and writing
//! them cost 2 to 5% of the request rate on one core. Every function's
//! log ([`crate::observability::logs`]) shows them, made from the stored
//! records.
//!
//! A reader that must see every invocation that ended before it (a bill, a
//! function's log read right after a request) first awaits
//! [`Meter::settled`]: the writer's next store, at most ~100 ms away.
//!
//! Every [`MeterOptions::rollup_interval`] the task also folds records
//! older than [`MeterOptions::retention`] into hourly aggregates
//! ([`super::rollup`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::oneshot;

use super::store::{self, Batch};
use super::{InvocationRecord, Outcome, report_log_line, rollup};
use crate::database::Database;
use crate::observability::GuestLogStore;
use crate::observability::metrics as names;

/// The longest a record waits in the pending batch before it is written.
pub(crate) const BATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Records a pending batch holds (about 0.9 s at 74k invocations/s).
pub(crate) const QUEUE_CAPACITY: usize = 65_536;

/// Default retention of raw records before they are rolled up.
pub(crate) const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often old records are rolled up.
pub(crate) const ROLLUP_INTERVAL: Duration = Duration::from_secs(600);

/// Records kept in memory while the database refuses them (about 16 MB);
/// past it the oldest batches are lost, counted as failed.
pub(crate) const MAX_UNSTORED_RECORDS: u64 = 262_144;

/// At most one log line about dropped records per this interval.
pub(crate) const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The writer's settings.
#[derive(Debug, Clone)]
pub(crate) struct MeterOptions {
    /// The pending batch's capacity in records.
    pub queue_capacity: usize,
    /// How often queued records are written (at most [`BATCH_INTERVAL`]
    /// is the documented promise).
    pub batch_interval: Duration,
    /// How long raw records are kept before being rolled up.
    pub retention: Duration,
    /// How often the roll-up runs.
    pub rollup_interval: Duration,
    /// Whether to also print each invocation's `REPORT` line on stderr
    /// (when the log filter enables the `kumo::report` target at `info`).
    pub report_lines: bool,
    /// The function logs whose followers get each stored batch's `REPORT`
    /// lines.
    pub followed_logs: Option<GuestLogStore>,
}

impl Default for MeterOptions {
    fn default() -> Self {
        Self {
            queue_capacity: QUEUE_CAPACITY,
            batch_interval: BATCH_INTERVAL,
            retention: DEFAULT_RETENTION,
            rollup_interval: ROLLUP_INTERVAL,
            report_lines: false,
            followed_logs: None,
        }
    }
}

/// The request path's handle: cheap to clone, never blocks. A disabled
/// meter ([`Meter::disabled`]) records nothing.
#[derive(Clone)]
pub(crate) struct Meter {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    pending: Mutex<Pending>,
    capacity: usize,
    /// Whether `REPORT` lines are printed (the option, and the log filter
    /// enabling `kumo::report` at `info` when the meter started).
    report_lines: bool,
    dropped: AtomicU64,
    created: Instant,
    /// Milliseconds after `created` of the last drop log line, plus one (0:
    /// never logged).
    last_drop_log: AtomicU64,
    /// Records in the batches the writer has taken so far (changed only
    /// under the pending lock, with the swap).
    taken: AtomicU64,
    /// Of those, how many the writer has dealt with (stored, or failed and
    /// logged); [`Shared::settled_changed`] wakes the waiters.
    settled: AtomicU64,
    settled_changed: tokio::sync::Notify,
}

/// What the writer takes at each tick.
#[derive(Default)]
struct Pending {
    batch: Batch,
    /// The batch's `REPORT` lines, when printed.
    report: String,
    /// Metric sums per function, by the index in `batch.functions()`.
    tallies: Vec<Tally>,
    /// Set when the writer took its last batch: later records are dropped.
    closed: bool,
}

impl Pending {
    fn clear(&mut self) {
        self.batch.clear();
        self.report.clear();
        self.tallies.clear();
    }
}

/// One function's invocation metrics over a batch.
#[derive(Default, Clone)]
struct Tally {
    outcomes: [u64; Outcome::ALL.len()],
    cold_starts: u64,
    mb_ms: u64,
    /// (count, Σ µs) per bucket of [`names::DURATION_BUCKETS_US`], plus `+Inf`.
    durations: [(u64, u64); names::DURATION_BUCKETS_US.len() + 1],
}

impl Tally {
    fn add(&mut self, record: &InvocationRecord) {
        self.outcomes[record.outcome.index()] += 1;
        self.cold_starts += u64::from(record.cold_start);
        self.mb_ms += super::billing::mb_ms(record.memory_mb, record.billed_ms);
        let bucket = &mut self.durations[names::duration_bucket_of(record.duration_us)];
        bucket.0 += 1;
        bucket.1 += record.duration_us;
    }
}

/// The running writer; [`MeterTask::shutdown`] flushes and stops it.
pub(crate) struct MeterTask {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<WriterStats>,
    meter: Meter,
}

/// What the writer did over its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WriterStats {
    /// Records stored.
    pub written: u64,
    /// Records lost because the database refused them until the end, or
    /// more were waiting than [`MAX_UNSTORED_RECORDS`] (logged).
    pub failed: u64,
    /// Records dropped because the pending batch was full.
    pub dropped: u64,
}

impl Meter {
    /// A meter that records nothing (`kumo up --no-metering`, tests).
    pub(crate) fn disabled() -> Self {
        Self { shared: None }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Starts the writer task on `database` (opened with
    /// [`crate::database::open`]). Call inside the tokio runtime.
    pub(crate) fn start(database: Database, options: MeterOptions) -> (Meter, MeterTask) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            capacity: options.queue_capacity.max(1),
            report_lines: options.report_lines
                && tracing::enabled!(target: "kumo::report", tracing::Level::INFO),
            dropped: AtomicU64::new(0),
            created: Instant::now(),
            last_drop_log: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            settled_changed: tokio::sync::Notify::new(),
        });
        let meter = Meter {
            shared: Some(Arc::clone(&shared)),
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run_writer(database, shared, options, stopped));
        (
            meter.clone(),
            MeterTask {
                stop,
                task,
                meter: meter.clone(),
            },
        )
    }

    /// Adds `record` to the pending batch, without waiting on the writer.
    /// When the batch is full (or the writer stopped) the record is
    /// dropped and counted.
    pub(crate) fn record(&self, record: &InvocationRecord) {
        let Some(shared) = &self.shared else { return };
        let accepted = {
            let mut pending = shared.pending();
            let pending = &mut *pending;
            let accepted = !pending.closed && pending.batch.len() < shared.capacity;
            if accepted {
                let function = pending.batch.push(record);
                if function == pending.tallies.len() {
                    pending.tallies.push(Tally::default());
                }
                pending.tallies[function].add(record);
                if shared.report_lines {
                    record.push_report_line(&mut pending.report);
                    pending.report.push('\n');
                }
            }
            accepted
        };
        if !accepted {
            shared.record_dropped();
        }
    }

    /// Waits (at most `wait`) until every record accepted before the call
    /// has been stored, so that a read of the database sees them; returns
    /// at once for a disabled meter.
    pub(crate) async fn settled(&self, wait: Duration) {
        let Some(shared) = &self.shared else { return };
        // Everything taken so far, plus what is pending now.
        let target = {
            let pending = shared.pending();
            shared.taken.load(Ordering::Relaxed) + pending.batch.len() as u64
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = shared.settled_changed.notified();
            if shared.settled.load(Ordering::Acquire) >= target {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }

    /// Records dropped so far because the pending batch was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |shared| shared.dropped.load(Ordering::Relaxed))
    }
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Swaps the pending batch into `taken` (which must be cleared); with
    /// `close`, later records are refused. Returns how many records the
    /// batches taken so far held, this one included.
    fn take_pending(&self, taken: &mut Pending, close: bool) -> u64 {
        let mut pending = self.pending();
        std::mem::swap(&mut *pending, taken);
        pending.closed = taken.closed || close;
        let through = self.taken.load(Ordering::Relaxed) + taken.batch.len() as u64;
        self.taken.store(through, Ordering::Relaxed);
        through
    }

    /// Marks every record up to `through` as dealt with, and wakes the
    /// readers waiting for it.
    fn settle(&self, through: u64) {
        self.settled.store(through, Ordering::Release);
        self.settled_changed.notify_waiters();
    }

    fn record_dropped(&self) {
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::counter!(names::DROPPED_RECORDS).increment(1);
        let now = self.created.elapsed().as_millis() as u64 + 1;
        let last = self.last_drop_log.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= DROP_LOG_INTERVAL.as_millis() as u64;
        if due
            && self
                .last_drop_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped_total = total,
                "metering records dropped: the pending batch is full; invocations are still served. \
                 hint: the disk may be too slow for this load"
            );
        }
    }
}

impl MeterTask {
    /// Stops the writer after it stored every record queued so far (call
    /// it once the server stopped serving), and says what it did.
    pub(crate) async fn shutdown(self) -> WriterStats {
        let _ = self.stop.send(());
        let mut stats = match self.task.await {
            Ok(stats) => stats,
            Err(error) => {
                tracing::error!(%error, "the metering writer failed");
                WriterStats::default()
            }
        };
        stats.dropped = self.meter.dropped();
        stats
    }
}

async fn run_writer(
    database: Database,
    shared: Arc<Shared>,
    options: MeterOptions,
    mut stop: oneshot::Receiver<()>,
) -> WriterStats {
    let mut stats = WriterStats::default();
    let mut ticks = tokio::time::interval(options.batch_interval.min(BATCH_INTERVAL));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_rollup = Instant::now();
    let mut taken = Pending::default();
    let mut last_failure_log: Option<Instant> = None;
    // Batches the database refused, oldest first: stored again, in order,
    // before anything newer.
    let mut unstored = Unstored::default();
    loop {
        let stopping = tokio::select! {
            biased;
            _ = &mut stop => true,
            _ = ticks.tick() => false,
        };
        // Everything pending now; on shutdown, the last of it.
        let through = shared.take_pending(&mut taken, stopping);
        let recovered = unstored.retry(&database, &mut stats).await;
        if recovered > 0 && unstored.is_empty() {
            tracing::info!(
                records = recovered,
                "stored the metering records the database refused earlier"
            );
        }
        if !taken.batch.is_empty() {
            let records = taken.batch.len() as u64;
            let stored = if unstored.is_empty() {
                store::insert_batch(&database, &taken.batch).await
            } else {
                Err(anyhow::anyhow!(
                    "earlier records are still waiting to be stored"
                ))
            };
            print_report_lines(&taken.report);
            if let Some(logs) = &options.followed_logs {
                publish_report_lines(logs, &taken.batch);
            }
            update_metrics(taken.batch.functions(), &taken.tallies);
            match stored {
                Ok(()) => stats.written += records,
                Err(error) => {
                    unstored.keep(std::mem::take(&mut taken.batch), &mut stats);
                    if last_failure_log.is_none_or(|at| at.elapsed() >= DROP_LOG_INTERVAL) {
                        last_failure_log = Some(Instant::now());
                        tracing::error!(
                            waiting = unstored.records,
                            lost_total = stats.failed,
                            error = %format!("{error:#}"),
                            "cannot store metering records; they are kept and stored again when the database accepts them. hint: is the disk full?"
                        );
                    }
                }
            }
            taken.clear();
        }
        shared.settle(through);
        if stopping {
            if !unstored.is_empty() {
                stats.failed += unstored.records;
                tracing::error!(
                    records = unstored.records,
                    "stopping with metering records the database still refuses: they are lost"
                );
            }
            return stats;
        }
        if Instant::now() >= next_rollup {
            next_rollup = Instant::now() + options.rollup_interval;
            match rollup::roll_up(&database, Utc::now(), options.retention).await {
                Ok(summary) if summary.records > 0 => tracing::info!(
                    records = summary.records,
                    hours = summary.hours,
                    "rolled old metering records up into hourly aggregates"
                ),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "metering roll-up failed")
                }
            }
        }
    }
}

/// Batches waiting for the database to accept them again.
#[derive(Default)]
struct Unstored {
    batches: std::collections::VecDeque<Batch>,
    records: u64,
}

impl Unstored {
    fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Keeps `batch` for later; past [`MAX_UNSTORED_RECORDS`] the oldest
    /// batches are lost (counted in `stats.failed`).
    fn keep(&mut self, batch: Batch, stats: &mut WriterStats) {
        self.records += batch.len() as u64;
        self.batches.push_back(batch);
        while self.records > MAX_UNSTORED_RECORDS
            && let Some(oldest) = self.batches.pop_front()
        {
            self.records -= oldest.len() as u64;
            stats.failed += oldest.len() as u64;
        }
    }

    /// Stores the kept batches, oldest first, until one fails; returns how
    /// many records were stored.
    async fn retry(&mut self, database: &Database, stats: &mut WriterStats) -> u64 {
        let mut stored = 0;
        while let Some(batch) = self.batches.front() {
            if store::insert_batch(database, batch).await.is_err() {
                break;
            }
            let records = batch.len() as u64;
            self.records -= records;
            stored += records;
            stats.written += records;
            self.batches.pop_front();
        }
        stored
    }
}

/// Prints a batch's `REPORT` lines to stderr in one write. They are plain
/// lines, as Lambda prints them, not `tracing` events: formatting and
/// writing one event per invocation costs the request rate measurably.
fn print_report_lines(text: &str) {
    if text.is_empty() {
        return;
    }
    use std::io::Write;
    // The stderr lock keeps the batch whole among the log's own lines.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Sends the `REPORT` lines of a batch's followed functions to their
/// followers; decodes the batch only when some function is followed.
fn publish_report_lines(logs: &GuestLogStore, batch: &Batch) {
    let followed: Vec<&Arc<str>> = batch
        .functions()
        .iter()
        .filter(|function| logs.is_followed(function))
        .collect();
    if followed.is_empty() {
        return;
    }
    match batch.records() {
        Ok(records) => {
            for record in records
                .iter()
                .filter(|record| followed.contains(&&record.function))
            {
                logs.publish(report_log_line(record));
            }
        }
        Err(error) => tracing::error!(
            error = %format!("{error:#}"),
            "cannot decode a metering batch for its REPORT lines"
        ),
    }
}

/// Updates the invocation metrics for a batch: one update per function and
/// label set.
fn update_metrics(functions: &[Arc<str>], tallies: &[Tally]) {
    for (function, tally) in functions.iter().zip(tallies) {
        let label = function.to_string();
        for (outcome, count) in Outcome::ALL.iter().zip(tally.outcomes) {
            if count > 0 {
                metrics::counter!(names::INVOCATIONS, "function" => label.clone(), "outcome" => outcome.as_str())
                    .increment(count);
            }
        }
        if tally.cold_starts > 0 {
            metrics::counter!(names::COLD_STARTS, "function" => label.clone())
                .increment(tally.cold_starts);
        }
        names::add_billed(function, super::billing::gb_seconds(tally.mb_ms));
        names::add_durations(function, &tally.durations);
    }
}
