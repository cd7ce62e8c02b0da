//! The roll-up: records older than the retention period are folded into
//! hourly aggregates per (function, version, hour) and deleted, so the
//! database does not grow without bound.
//!
//! Sums are exact (invocations, each outcome, cold starts, billed ms,
//! MB·ms, duration and init sums, bytes), so reports over rolled-up hours
//! give the same invocations, errors, billed ms, GB-s and cost as the raw
//! records did. Percentiles are not: each aggregate keeps a histogram of
//! durations over the fixed [`BUCKET_BOUNDS_US`], and a percentile over
//! rolled-up data is the upper bound of the bucket it falls in (capped at
//! the largest duration seen): accurate to the bucket, never below the
//! true value.
//!
//! The cutoff is the start of the hour containing `now - retention`, so an
//! hour is rolled up whole. Records are stored a writer batch per row
//! ([`super::store`]), and a batch is rolled up once all its records
//! started before the cutoff; a record stored later for an already
//! rolled-up hour (a long invocation, or one sharing a batch with a newer
//! one) is merged into its aggregate by a later run.
//!
//! Nodes sharing a PostgreSQL database each run the roll-up; each chunk's
//! transaction first takes an advisory lock ([`ROLLUP_LOCK`]) without
//! waiting, and a node that does not get it stops: one node folds at a
//! time, a chunk is never folded twice, and when that node dies the next
//! node's run does the work.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{InvocationRecord, Outcome, billing, store};
use crate::database::{Database, Dialect};

/// Upper bounds (inclusive, µs) of the duration histogram's buckets; one
/// more bucket holds everything above the last.
pub(crate) const BUCKET_BOUNDS_US: [u64; 19] = [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
];

/// Stored batches rolled up per transaction.
const BATCHES_PER_CHUNK: i64 = 16;

/// µs in an hour.
pub(crate) const HOUR_US: i64 = 3_600_000_000;

/// What one roll-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RollUpSummary {
    /// Raw records folded and deleted.
    pub records: u64,
    /// Aggregate rows written or updated (an hour touched by two chunks
    /// counts twice).
    pub hours: u64,
}

/// The index of the histogram bucket holding `duration_us`.
pub(crate) fn bucket_of(duration_us: u64) -> usize {
    BUCKET_BOUNDS_US.partition_point(|&bound| bound < duration_us)
}

/// The start (µs since the epoch) of the hour holding `time_us`.
pub(crate) fn hour_start_us(time_us: i64) -> i64 {
    time_us.div_euclid(HOUR_US) * HOUR_US
}

/// Exact sums over some invocations, and their duration histogram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Totals {
    /// Invocations (every outcome).
    pub invocations: u64,
    /// Per outcome, in [`Outcome::ALL`]'s order.
    pub outcomes: [u64; 6],
    pub cold_starts: u64,
    /// Σ billed ms.
    pub billed_ms: u64,
    /// Σ memory_mb × billed_ms.
    pub mb_ms: u64,
    /// Σ duration µs.
    pub duration_us: u64,
    /// Σ init duration µs.
    pub init_duration_us: u64,
    /// The largest duration µs.
    pub max_duration_us: u64,
    /// Σ request bytes.
    pub bytes_in: u64,
    /// Σ response bytes.
    pub bytes_out: u64,
    /// Counts per bucket of [`BUCKET_BOUNDS_US`] (plus the overflow bucket).
    pub histogram: Vec<u64>,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            invocations: 0,
            outcomes: [0; 6],
            cold_starts: 0,
            billed_ms: 0,
            mb_ms: 0,
            duration_us: 0,
            init_duration_us: 0,
            max_duration_us: 0,
            bytes_in: 0,
            bytes_out: 0,
            histogram: vec![0; BUCKET_BOUNDS_US.len() + 1],
        }
    }
}

/// The fields of one stored record the sums need.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordFigures {
    pub outcome: Outcome,
    pub cold_start: bool,
    pub duration_us: u64,
    pub init_duration_us: u64,
    pub billed_ms: u64,
    pub memory_mb: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl RecordFigures {
    /// The figures of `record`.
    pub(super) fn of(record: &InvocationRecord) -> Self {
        Self {
            outcome: record.outcome,
            cold_start: record.cold_start,
            duration_us: record.duration_us,
            init_duration_us: record.init_duration_us.unwrap_or(0),
            billed_ms: record.billed_ms,
            memory_mb: record.memory_mb,
            bytes_in: record.bytes_in,
            bytes_out: record.bytes_out,
        }
    }
}

impl Totals {
    /// Adds one invocation.
    pub(super) fn add(&mut self, record: &RecordFigures) {
        self.invocations += 1;
        self.outcomes[record.outcome.index()] += 1;
        self.cold_starts += u64::from(record.cold_start);
        self.billed_ms += record.billed_ms;
        self.mb_ms += billing::mb_ms(record.memory_mb, record.billed_ms);
        self.duration_us += record.duration_us;
        self.init_duration_us += record.init_duration_us;
        self.max_duration_us = self.max_duration_us.max(record.duration_us);
        self.bytes_in += record.bytes_in;
        self.bytes_out += record.bytes_out;
        self.histogram[bucket_of(record.duration_us)] += 1;
    }

    /// Adds another group's sums.
    pub(crate) fn merge(&mut self, other: &Totals) {
        self.invocations += other.invocations;
        for (mine, theirs) in self.outcomes.iter_mut().zip(other.outcomes) {
            *mine += theirs;
        }
        self.cold_starts += other.cold_starts;
        self.billed_ms += other.billed_ms;
        self.mb_ms += other.mb_ms;
        self.duration_us += other.duration_us;
        self.init_duration_us += other.init_duration_us;
        self.max_duration_us = self.max_duration_us.max(other.max_duration_us);
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        for (mine, theirs) in self.histogram.iter_mut().zip(&other.histogram) {
            *mine += theirs;
        }
    }

    /// The count of one outcome.
    pub(crate) fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome.index()]
    }

    /// The `p`-th percentile (0 < p ≤ 1) of durations from the histogram,
    /// in µs: the upper bound of the bucket holding the nearest-rank
    /// sample, capped at the largest duration. `None` when empty.
    pub(crate) fn percentile_from_histogram(&self, p: f64) -> Option<u64> {
        let count: u64 = self.histogram.iter().sum();
        if count == 0 {
            return None;
        }
        let rank = nearest_rank(count, p);
        let mut seen = 0;
        for (bucket, &in_bucket) in self.histogram.iter().enumerate() {
            seen += in_bucket;
            if seen >= rank {
                let bound = BUCKET_BOUNDS_US
                    .get(bucket)
                    .copied()
                    .unwrap_or(self.max_duration_us);
                return Some(bound.min(self.max_duration_us));
            }
        }
        Some(self.max_duration_us)
    }
}

/// The advisory lock a roll-up chunk holds on PostgreSQL (a constant no
/// other lock of Kumo uses).
const ROLLUP_LOCK: i64 = 0x6b75_6d6f_0002;

/// The 1-based nearest rank of the `p`-th percentile among `count` values.
pub(crate) fn nearest_rank(count: u64, p: f64) -> u64 {
    ((p * count as f64).ceil() as u64).clamp(1, count)
}

/// Folds stored batches whose records all started before the hour of
/// `now - retention` into hourly aggregates and deletes them, a chunk of
/// batches per transaction. `now` is
/// passed in so tests control the clock.
///
/// # Errors
///
/// The database's error; each chunk is all-or-nothing, so a failure leaves
/// every record counted exactly once.
pub(crate) async fn roll_up(
    database: &Database,
    now: DateTime<Utc>,
    retention: Duration,
) -> anyhow::Result<RollUpSummary> {
    let retention_us = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
    let cutoff = hour_start_us(now.timestamp_micros().saturating_sub(retention_us));
    let mut summary = RollUpSummary::default();
    loop {
        let mut transaction = crate::database::begin_write(database).await?;
        if crate::database::dialect(database) == Dialect::Postgres {
            let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(ROLLUP_LOCK)
                .fetch_one(&mut *transaction)
                .await?;
            if !ours {
                break;
            }
        }
        let Some((last_id, records)) =
            store::batches_before(&mut transaction, cutoff, BATCHES_PER_CHUNK).await?
        else {
            break;
        };
        let mut hours: BTreeMap<(&str, u32, i64), Totals> = BTreeMap::new();
        for record in &records {
            let key = (
                &*record.function,
                record.version,
                hour_start_us(record.started_at.timestamp_micros()),
            );
            hours
                .entry(key)
                .or_default()
                .add(&RecordFigures::of(record));
        }
        for ((function, version, hour), totals) in &hours {
            let version = i64::from(*version);
            let existing = sqlx::query(
                "SELECT * FROM invocation_hours WHERE function = $1 AND version = $2 AND hour_start_us = $3",
            )
            .bind(function)
            .bind(version)
            .bind(hour)
            .fetch_optional(&mut *transaction)
            .await?;
            let mut merged = match existing {
                Some(row) => totals_of_aggregate(&row)?,
                None => Totals::default(),
            };
            merged.merge(totals);
            write_aggregate(&mut transaction, function, version, *hour, &merged).await?;
        }
        store::delete_batches_through(&mut transaction, last_id, cutoff).await?;
        transaction.commit().await?;
        summary.records += records.len() as u64;
        summary.hours += hours.len() as u64;
    }
    Ok(summary)
}

async fn write_aggregate(
    transaction: &mut crate::database::Transaction,
    function: &str,
    version: i64,
    hour: i64,
    totals: &Totals,
) -> anyhow::Result<()> {
    let histogram = serde_json::to_string(&totals.histogram)?;
    let mut query = sqlx::query(
        "INSERT INTO invocation_hours (function, version, hour_start_us, invocations, \
         ok, error, trap, timeout, out_of_memory, rejected, cold_starts, billed_ms, mb_ms, \
         duration_us, init_duration_us, max_duration_us, bytes_in, bytes_out, duration_histogram) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
         ON CONFLICT (function, version, hour_start_us) DO UPDATE SET \
         invocations = excluded.invocations, ok = excluded.ok, error = excluded.error, \
         trap = excluded.trap, timeout = excluded.timeout, out_of_memory = excluded.out_of_memory, \
         rejected = excluded.rejected, cold_starts = excluded.cold_starts, \
         billed_ms = excluded.billed_ms, mb_ms = excluded.mb_ms, duration_us = excluded.duration_us, \
         init_duration_us = excluded.init_duration_us, max_duration_us = excluded.max_duration_us, \
         bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, \
         duration_histogram = excluded.duration_histogram",
    )
    .bind(function)
    .bind(version)
    .bind(hour)
    .bind(signed(totals.invocations));
    for count in totals.outcomes {
        query = query.bind(signed(count));
    }
    query
        .bind(signed(totals.cold_starts))
        .bind(signed(totals.billed_ms))
        .bind(signed(totals.mb_ms))
        .bind(signed(totals.duration_us))
        .bind(signed(totals.init_duration_us))
        .bind(signed(totals.max_duration_us))
        .bind(signed(totals.bytes_in))
        .bind(signed(totals.bytes_out))
        .bind(histogram)
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The sums of a row of `invocation_hours`.
pub(super) fn totals_of_aggregate(row: &sqlx::any::AnyRow) -> anyhow::Result<Totals> {
    let mut outcomes = [0; 6];
    for (slot, outcome) in outcomes.iter_mut().zip(Outcome::ALL) {
        *slot = unsigned(row.try_get(outcome.as_str())?);
    }
    let histogram: String = row.try_get("duration_histogram")?;
    let mut histogram: Vec<u64> =
        serde_json::from_str(&histogram).context("a malformed duration histogram")?;
    histogram.resize(BUCKET_BOUNDS_US.len() + 1, 0);
    Ok(Totals {
        invocations: unsigned(row.try_get("invocations")?),
        outcomes,
        cold_starts: unsigned(row.try_get("cold_starts")?),
        billed_ms: unsigned(row.try_get("billed_ms")?),
        mb_ms: unsigned(row.try_get("mb_ms")?),
        duration_us: unsigned(row.try_get("duration_us")?),
        init_duration_us: unsigned(row.try_get("init_duration_us")?),
        max_duration_us: unsigned(row.try_get("max_duration_us")?),
        bytes_in: unsigned(row.try_get("bytes_in")?),
        bytes_out: unsigned(row.try_get("bytes_out")?),
        histogram,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_inclusive_upper_bound() {
        let cases = [
            (0, 0),
            (100, 0),
            (101, 1),
            (250, 1),
            (999, 3),
            (1_000, 3),
            (1_001, 4),
            (300_000_000, 18),
            (300_000_001, 19),
            (u64::MAX, 19),
        ];
        for (duration, bucket) in cases {
            assert_eq!(bucket_of(duration), bucket, "{duration} µs");
        }
    }

    #[test]
    fn hours_start_on_the_hour_before_and_after_the_epoch() {
        let cases = [
            (0, 0),
            (1, 0),
            (HOUR_US - 1, 0),
            (HOUR_US, HOUR_US),
            (-1, -HOUR_US),
        ];
        for (time, start) in cases {
            assert_eq!(hour_start_us(time), start, "{time}");
        }
    }

    #[test]
    fn histogram_percentiles_are_bucket_upper_bounds_never_below_the_truth() {
        let mut totals = Totals::default();
        // 98 fast (80 µs), one of 2 ms, one of 7 s.
        let fast = RecordFigures {
            outcome: Outcome::Ok,
            cold_start: false,
            duration_us: 80,
            init_duration_us: 0,
            billed_ms: 1,
            memory_mb: 128,
            bytes_in: 0,
            bytes_out: 0,
        };
        for _ in 0..98 {
            totals.add(&fast);
        }
        totals.add(&RecordFigures {
            duration_us: 2_000,
            ..fast
        });
        totals.add(&RecordFigures {
            duration_us: 7_000_000,
            ..fast
        });
        let cases = [(0.5, 100), (0.98, 100), (0.99, 2_500), (1.0, 7_000_000)];
        for (p, expected) in cases {
            assert_eq!(totals.percentile_from_histogram(p), Some(expected), "p{p}");
        }
        assert_eq!(Totals::default().percentile_from_histogram(0.5), None);
        assert_eq!(totals.outcome(Outcome::Ok), 100);
    }

    #[test]
    fn nearest_ranks() {
        let cases = [
            (1, 0.5, 1),
            (2, 0.5, 1),
            (3, 0.5, 2),
            (100, 0.99, 99),
            (101, 0.99, 100),
            (10, 0.0, 1),
        ];
        for (count, p, rank) in cases {
            assert_eq!(nearest_rank(count, p), rank, "{count} {p}");
        }
    }
}
