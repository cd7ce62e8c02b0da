//! The [`Meter`]: the request path's handle, and the writer task behind it.
//!
//! [`Meter::record`] never waits: it `try_send`s into a bounded channel.
//! When the channel is full the record is dropped, counted
//! ([`Meter::dropped`], the `kumo_metering_dropped_records_total` metric)
//! and logged at most once per [`DROP_LOG_INTERVAL`]. The writer task wakes
//! every [`BATCH_INTERVAL`] (100 ms), takes everything queued, and stores it
//! in one transaction; then it prints the batch's `REPORT` lines and updates
//! the metrics. So a record reaches the database at most ~100 ms (plus the
//! write) after its invocation ended, and a hard kill loses at most that
//! window. [`MeterTask::shutdown`] stores everything still queued.
//!
//! Every [`MeterOptions::rollup_interval`] the task also folds records
//! older than [`MeterOptions::retention`] into hourly aggregates
//! ([`super::rollup`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::{QueryBuilder, Sqlite};
use tokio::sync::{mpsc, oneshot};

use super::{InvocationRecord, metrics as names, rollup};
use crate::database::Database;

/// The longest a record waits in the channel before it is written.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Records the channel holds (about 0.9 s at 74k invocations/s).
pub const CHANNEL_CAPACITY: usize = 65_536;

/// Default retention of raw records before they are rolled up.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often old records are rolled up.
pub const ROLLUP_INTERVAL: Duration = Duration::from_secs(600);

/// At most one log line about dropped records per this interval.
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Rows per `INSERT` statement (14 columns each, under SQLite's 32,766
/// bound parameters).
const ROWS_PER_STATEMENT: usize = 500;

/// The writer's settings.
#[derive(Debug, Clone)]
pub struct MeterOptions {
    /// The channel's capacity in records.
    pub channel_capacity: usize,
    /// How often queued records are written (at most [`BATCH_INTERVAL`]
    /// is the documented promise).
    pub batch_interval: Duration,
    /// How long raw records are kept before being rolled up.
    pub retention: Duration,
    /// How often the roll-up runs.
    pub rollup_interval: Duration,
    /// Whether to print a `REPORT` line per invocation (when the log filter
    /// also enables the `kumo::report` target at `info`).
    pub report_lines: bool,
}

impl Default for MeterOptions {
    fn default() -> Self {
        Self {
            channel_capacity: CHANNEL_CAPACITY,
            batch_interval: BATCH_INTERVAL,
            retention: DEFAULT_RETENTION,
            rollup_interval: ROLLUP_INTERVAL,
            report_lines: true,
        }
    }
}

/// The request path's handle: cheap to clone, never blocks. A disabled
/// meter ([`Meter::disabled`]) records nothing.
#[derive(Clone)]
pub struct Meter {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    sender: mpsc::Sender<InvocationRecord>,
    dropped: AtomicU64,
    created: Instant,
    /// Milliseconds after `created` of the last drop log line, plus one (0:
    /// never logged).
    last_drop_log: AtomicU64,
}

/// The running writer; [`MeterTask::shutdown`] flushes and stops it.
pub struct MeterTask {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<WriterStats>,
    meter: Meter,
}

/// What the writer did over its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records stored.
    pub written: u64,
    /// Records lost because a write failed (logged).
    pub failed: u64,
    /// Records dropped because the channel was full.
    pub dropped: u64,
}

impl Meter {
    /// A meter that records nothing (`kumo up --no-metering`, tests).
    pub fn disabled() -> Self {
        Self { shared: None }
    }

    /// Whether records are kept.
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Starts the writer task on `database` (opened with
    /// [`crate::database::open`]). Call inside the tokio runtime.
    pub fn start(database: Database, options: MeterOptions) -> (Meter, MeterTask) {
        let (sender, receiver) = mpsc::channel(options.channel_capacity.max(1));
        let meter = Meter {
            shared: Some(Arc::new(Shared {
                sender,
                dropped: AtomicU64::new(0),
                created: Instant::now(),
                last_drop_log: AtomicU64::new(0),
            })),
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run_writer(database, receiver, options, stopped));
        (
            meter.clone(),
            MeterTask {
                stop,
                task,
                meter: meter.clone(),
            },
        )
    }

    /// Queues `record` for the writer, without waiting. When the channel
    /// is full (or the writer stopped) the record is dropped and counted.
    pub fn record(&self, record: InvocationRecord) {
        let Some(shared) = &self.shared else { return };
        if shared.sender.try_send(record).is_err() {
            shared.record_dropped();
        }
    }

    /// Records dropped so far because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |shared| shared.dropped.load(Ordering::Relaxed))
    }
}

impl Shared {
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
                "metering records dropped: the writer's channel is full; invocations are still served. \
                 hint: the disk may be too slow for this load"
            );
        }
    }
}

impl MeterTask {
    /// Stops the writer after it stored every record queued so far (call
    /// it once the server stopped serving), and says what it did.
    pub async fn shutdown(self) -> WriterStats {
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
    mut receiver: mpsc::Receiver<InvocationRecord>,
    options: MeterOptions,
    mut stop: oneshot::Receiver<()>,
) -> WriterStats {
    let mut stats = WriterStats::default();
    let mut ticks = tokio::time::interval(options.batch_interval.min(BATCH_INTERVAL));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_rollup = Instant::now();
    let mut batch = Vec::new();
    let mut last_failure_log: Option<Instant> = None;
    loop {
        let stopping = tokio::select! {
            biased;
            _ = &mut stop => true,
            _ = ticks.tick() => false,
        };
        // Everything queued now; on shutdown, everything there is.
        let limit = options.channel_capacity.max(1);
        while batch.len() < limit || stopping {
            match receiver.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            match write_batch(&database, &batch).await {
                Ok(()) => stats.written += batch.len() as u64,
                Err(error) => {
                    stats.failed += batch.len() as u64;
                    if last_failure_log.is_none_or(|at| at.elapsed() >= DROP_LOG_INTERVAL) {
                        last_failure_log = Some(Instant::now());
                        tracing::error!(
                            records = batch.len(),
                            failed_total = stats.failed,
                            "cannot store metering records: {error:#}; hint: is the disk full?"
                        );
                    }
                }
            }
            if options.report_lines {
                print_report_lines(&batch);
            }
            update_metrics(&batch);
            batch.clear();
        }
        if stopping {
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
                Err(error) => tracing::warn!("metering roll-up failed: {error:#}"),
            }
        }
    }
}

/// Stores `records` in one transaction.
///
/// # Errors
///
/// The database's error; nothing of the batch is stored then.
pub async fn write_batch(database: &Database, records: &[InvocationRecord]) -> sqlx::Result<()> {
    let mut transaction = database.begin().await?;
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO invocations (request_id, function, version, trigger_kind, started_at_us, \
             duration_us, init_duration_us, billed_ms, memory_mb, peak_memory_bytes, cold_start, \
             outcome, bytes_in, bytes_out) ",
        );
        insert.push_values(chunk, |mut row, record| {
            row.push_bind(record.request_id.as_str())
                .push_bind(record.function.as_str())
                .push_bind(i64::from(record.version))
                .push_bind(record.trigger.as_str())
                .push_bind(record.started_at.timestamp_micros())
                .push_bind(to_i64(record.duration_us))
                .push_bind(record.init_duration_us.map(to_i64))
                .push_bind(to_i64(record.billed_ms))
                .push_bind(to_i64(record.memory_mb))
                .push_bind(to_i64(record.peak_memory_bytes))
                .push_bind(record.cold_start)
                .push_bind(record.outcome.as_str())
                .push_bind(to_i64(record.bytes_in))
                .push_bind(to_i64(record.bytes_out));
        });
        insert.build().execute(&mut *transaction).await?;
    }
    transaction.commit().await
}

/// SQLite integers are signed 64-bit.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Prints the batch's `REPORT` lines to stderr in one write, when the log
/// filter enables `kumo::report` at `info`. They are plain lines, as
/// Lambda prints them, not `tracing` events: formatting and writing one
/// event per invocation costs the request rate measurably.
fn print_report_lines(batch: &[InvocationRecord]) {
    if !tracing::enabled!(target: "kumo::report", tracing::Level::INFO) {
        return;
    }
    let mut text = String::with_capacity(batch.len() * 160);
    for record in batch {
        text.push_str(&record.report_line());
        text.push('\n');
    }
    use std::io::Write;
    // The stderr lock keeps the batch whole among the log's own lines.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Updates the invocation metrics for a batch, one update per function and
/// label set (plus one histogram sample per record).
fn update_metrics(batch: &[InvocationRecord]) {
    use std::collections::HashMap;
    let mut outcomes: HashMap<(&str, &'static str), u64> = HashMap::new();
    let mut per_function: HashMap<&str, (u64, u64, Vec<f64>)> = HashMap::new();
    for record in batch {
        *outcomes
            .entry((record.function.as_str(), record.outcome.as_str()))
            .or_default() += 1;
        let entry = per_function.entry(record.function.as_str()).or_default();
        entry.0 += u64::from(record.cold_start);
        entry.1 += super::billing::mb_ms(record.memory_mb, record.billed_ms);
        entry.2.push(record.duration_us as f64 / 1e6);
    }
    for ((function, outcome), count) in outcomes {
        metrics::counter!(names::INVOCATIONS, "function" => function.to_string(), "outcome" => outcome)
            .increment(count);
    }
    for (function, (cold_starts, mb_ms, durations)) in per_function {
        if cold_starts > 0 {
            metrics::counter!(names::COLD_STARTS, "function" => function.to_string())
                .increment(cold_starts);
        }
        metrics::gauge!(names::BILLED_GB_SECONDS, "function" => function.to_string())
            .increment(super::billing::gb_seconds(mb_ms));
        let histogram =
            metrics::histogram!(names::DURATION_SECONDS, "function" => function.to_string());
        for seconds in durations {
            histogram.record(seconds);
        }
    }
}
