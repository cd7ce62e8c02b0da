//! Reading metering back: [`billing_report`] (sums, cost and percentiles
//! per group over a time range, from raw records and hourly aggregates
//! alike) and [`recent_invocations`]. Both return plain serializable
//! structs for the admin API and the CLI.
//!
//! Time ranges are half-open, `[from, to)`, on an invocation's start time.
//! Rolled-up data only knows its hour: an aggregate counts when its hour's
//! start lies in `[from, to)`. Percentiles are exact (nearest rank over the
//! raw durations) when a group has no rolled-up data, and bucket-accurate
//! otherwise (see [`super::rollup`]); [`BillingRow::percentiles_exact`]
//! says which.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::billing::{self, Charge, Prices, Usage};
use super::rollup::{self, RecordFigures, Totals};
use super::{InvocationRecord, Outcome, store};
use crate::database::Database;

/// How a report's rows are grouped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One row per function.
    #[default]
    Function,
    /// One row per function version.
    Version,
    /// One row per function and hour (UTC).
    Hour,
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "function" => Ok(GroupBy::Function),
            "version" => Ok(GroupBy::Version),
            "hour" => Ok(GroupBy::Hour),
            other => Err(format!(
                "unknown grouping `{other}`; hint: use function, version or hour"
            )),
        }
    }
}

/// What a billing report covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BillingQuery {
    /// Invocations that started at or after this time (`None`: from the
    /// beginning).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub from: Option<DateTime<Utc>>,
    /// Invocations that started before this time (`None`: until now).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub to: Option<DateTime<Utc>>,
    /// Only this function (`None`: all).
    pub function: Option<String>,
    /// How rows are grouped.
    pub group_by: GroupBy,
}

/// Invocations per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutcomeCounts {
    /// `ok`.
    pub ok: u64,
    /// `error`.
    pub error: u64,
    /// `trap`.
    pub trap: u64,
    /// `timeout`.
    pub timeout: u64,
    /// `out_of_memory`.
    pub out_of_memory: u64,
    /// `rejected`.
    pub rejected: u64,
}

impl OutcomeCounts {
    fn of(totals: &Totals) -> Self {
        Self {
            ok: totals.outcome(Outcome::Ok),
            error: totals.outcome(Outcome::Error),
            trap: totals.outcome(Outcome::Trap),
            timeout: totals.outcome(Outcome::Timeout),
            out_of_memory: totals.outcome(Outcome::OutOfMemory),
            rejected: totals.outcome(Outcome::Rejected),
        }
    }

    /// The function's failures: error + trap + timeout + out_of_memory
    /// (not `rejected`, which the function never saw).
    pub(crate) fn errors(&self) -> u64 {
        self.error + self.trap + self.timeout + self.out_of_memory
    }
}

/// One group of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BillingRow {
    /// The function.
    pub function: String,
    /// The version, when grouped by version.
    pub version: Option<u32>,
    /// The hour's start, when grouped by hour.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub hour: Option<DateTime<Utc>>,
    /// Invocations, every outcome included.
    pub invocations: u64,
    /// Failures of the function: see [`OutcomeCounts::errors`].
    pub errors: u64,
    /// Per outcome.
    pub outcomes: OutcomeCounts,
    /// Cold starts.
    pub cold_starts: u64,
    /// Σ billed ms.
    pub billed_ms: u64,
    /// Σ memory_mb × billed_ms (exact; GB-s = mb_ms / 1,024,000).
    pub mb_ms: u64,
    /// GB-seconds.
    pub gb_seconds: f64,
    /// Gross cost in dollars (no free tier: that applies to the total).
    pub cost: f64,
    /// Median execution duration, ms (`None` without invocations).
    pub p50_duration_ms: Option<f64>,
    /// 99th percentile execution duration, ms.
    pub p99_duration_ms: Option<f64>,
    /// Whether the percentiles are exact (no rolled-up data in the group).
    pub percentiles_exact: bool,
    /// Σ request bytes.
    pub bytes_in: u64,
    /// Σ response bytes.
    pub bytes_out: u64,
}

/// The whole report's totals, with the free tier applied once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BillingTotals {
    /// Invocations, every outcome included.
    pub invocations: u64,
    /// Invocations charged per request (all but `rejected`), before the
    /// free tier.
    pub billable_invocations: u64,
    /// Failures of the function.
    pub errors: u64,
    /// Rejected invocations.
    pub rejected: u64,
    /// Cold starts.
    pub cold_starts: u64,
    /// Σ billed ms.
    pub billed_ms: u64,
    /// Σ memory_mb × billed_ms.
    pub mb_ms: u64,
    /// GB-seconds.
    pub gb_seconds: f64,
    /// The gross cost (the sum of the rows' costs, up to rounding).
    pub gross_cost: f64,
    /// The charge after the free tier.
    pub charge: Charge,
}

/// A billing report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BillingReport {
    /// What it covers.
    pub query: BillingQuery,
    /// The prices applied.
    pub prices: Prices,
    /// One row per group, ordered by function, then version or hour.
    pub rows: Vec<BillingRow>,
    /// Totals over all rows.
    pub total: BillingTotals,
}

#[derive(Default)]
struct Group {
    totals: Totals,
    raw_durations: Vec<u64>,
    rolled_up: bool,
}

type GroupKey = (String, Option<u32>, Option<i64>);

fn group_key(group_by: GroupBy, function: String, version: u32, hour_us: i64) -> GroupKey {
    match group_by {
        GroupBy::Function => (function, None, None),
        GroupBy::Version => (function, Some(version), None),
        GroupBy::Hour => (function, None, Some(hour_us)),
    }
}

/// Builds the billing report for `query` at `prices`.
///
/// # Errors
///
/// The database's error, or a malformed stored row.
pub async fn billing_report(
    database: &Database,
    query: &BillingQuery,
    prices: &Prices,
) -> anyhow::Result<BillingReport> {
    let from = query.from.map_or(i64::MIN, |time| time.timestamp_micros());
    let to = query.to.map_or(i64::MAX, |time| time.timestamp_micros());
    let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();

    let raw = store::records_between(database, from, to, query.function.as_deref())
        .await
        .context("cannot read invocation records")?;
    for record in &raw {
        let key = group_key(
            query.group_by,
            record.function.to_string(),
            record.version,
            rollup::hour_start_us(record.started_at.timestamp_micros()),
        );
        let group = groups.entry(key).or_default();
        group.totals.add(&RecordFigures::of(record));
        group.raw_durations.push(record.duration_us);
    }

    let aggregates = sqlx::query(
        "SELECT * FROM invocation_hours \
         WHERE hour_start_us >= $1 AND hour_start_us < $2 AND ($3 IS NULL OR function = $4)",
    )
    .bind(from)
    .bind(to)
    .bind(query.function.as_deref())
    .bind(query.function.as_deref())
    .fetch_all(database)
    .await
    .context("cannot read hourly aggregates")?;
    for row in &aggregates {
        let key = group_key(
            query.group_by,
            row.try_get("function")?,
            u32::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0),
            row.try_get("hour_start_us")?,
        );
        let group = groups.entry(key).or_default();
        group.totals.merge(&rollup::totals_of_aggregate(row)?);
        group.rolled_up = true;
    }

    let mut all = Totals::default();
    let rows: Vec<BillingRow> = groups
        .into_iter()
        .map(|((function, version, hour), mut group)| {
            all.merge(&group.totals);
            row_of(function, version, hour, &mut group, prices)
        })
        .collect();
    let outcomes = OutcomeCounts::of(&all);
    let usage = Usage {
        billable_invocations: all.invocations - outcomes.rejected,
        mb_ms: all.mb_ms,
    };
    let total = BillingTotals {
        invocations: all.invocations,
        billable_invocations: usage.billable_invocations,
        errors: outcomes.errors(),
        rejected: outcomes.rejected,
        cold_starts: all.cold_starts,
        billed_ms: all.billed_ms,
        mb_ms: all.mb_ms,
        gb_seconds: billing::gb_seconds(all.mb_ms),
        gross_cost: billing::charge(usage, prices, false).total,
        charge: billing::charge(usage, prices, true),
    };
    Ok(BillingReport {
        query: query.clone(),
        prices: *prices,
        rows,
        total,
    })
}

fn row_of(
    function: String,
    version: Option<u32>,
    hour: Option<i64>,
    group: &mut Group,
    prices: &Prices,
) -> BillingRow {
    let totals = &group.totals;
    let outcomes = OutcomeCounts::of(totals);
    let usage = Usage {
        billable_invocations: totals.invocations - outcomes.rejected,
        mb_ms: totals.mb_ms,
    };
    let (p50, p99) = if group.rolled_up {
        (
            totals.percentile_from_histogram(0.5),
            totals.percentile_from_histogram(0.99),
        )
    } else {
        group.raw_durations.sort_unstable();
        let exact = |p: f64| {
            let count = group.raw_durations.len() as u64;
            (count > 0).then(|| group.raw_durations[(rollup::nearest_rank(count, p) - 1) as usize])
        };
        (exact(0.5), exact(0.99))
    };
    let to_ms = |us: Option<u64>| us.map(|us| us as f64 / 1000.0);
    BillingRow {
        function,
        version,
        hour: hour.and_then(DateTime::from_timestamp_micros),
        invocations: totals.invocations,
        errors: outcomes.errors(),
        outcomes,
        cold_starts: totals.cold_starts,
        billed_ms: totals.billed_ms,
        mb_ms: totals.mb_ms,
        gb_seconds: billing::gb_seconds(totals.mb_ms),
        cost: billing::charge(usage, prices, false).total,
        p50_duration_ms: to_ms(p50),
        p99_duration_ms: to_ms(p99),
        percentiles_exact: !group.rolled_up,
        bytes_in: totals.bytes_in,
        bytes_out: totals.bytes_out,
    }
}

/// The most recent raw records, newest first: of `function` (all when
/// `None`), at most `limit`. Rolled-up invocations are no longer listed.
///
/// # Errors
///
/// The database's error, or a malformed stored row.
pub async fn recent_invocations(
    database: &Database,
    function: Option<&str>,
    limit: u32,
) -> anyhow::Result<Vec<InvocationRecord>> {
    store::newest_records(database, function, limit as usize)
        .await
        .context("cannot read invocation records")
}

/// A CSV field of a billing report, quoted when it holds a comma, a quote
/// or a line break (RFC 4180). Function names never do; the rule keeps the
/// file valid anyway. `kumo bill --output csv` and the console's download
/// both use it.
pub(crate) fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metering::TriggerKind;
    use crate::metering::billing::billed_ms;
    use crate::metering::rollup::{HOUR_US, roll_up};
    use crate::metering::store::write_batch;
    use crate::metering::writer::{Meter, MeterOptions};

    const T0: i64 = 1_700_000_000_000_000 / HOUR_US * HOUR_US; // on the hour

    fn at(us: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(us).unwrap()
    }

    fn record(
        function: &str,
        version: u32,
        start_us: i64,
        duration_us: u64,
        init_us: Option<u64>,
        memory_mb: u64,
        outcome: Outcome,
    ) -> InvocationRecord {
        InvocationRecord {
            request_id: format!("{function}-{start_us}-{duration_us}").into(),
            function: function.into(),
            version,
            trigger: TriggerKind::Http,
            started_at: at(start_us),
            duration_us,
            init_duration_us: init_us,
            billed_ms: billed_ms(duration_us, init_us),
            memory_mb,
            peak_memory_bytes: 1 << 20,
            cold_start: init_us.is_some(),
            outcome,
            bytes_in: 10,
            bytes_out: 20,
        }
    }

    fn query(
        from: Option<i64>,
        to: Option<i64>,
        function: Option<&str>,
        group_by: GroupBy,
    ) -> BillingQuery {
        BillingQuery {
            from: from.map(at),
            to: to.map(at),
            function: function.map(str::to_string),
            group_by,
        }
    }

    #[tokio::test]
    async fn the_writer_stores_every_record_and_flushes_on_shutdown() {
        crate::database::testing::each_backend(
            "the_writer_stores_every_record_and_flushes_on_shutdown",
            async |database| {
                let (meter, task) = Meter::start(database.clone(), MeterOptions::default());
                for i in 0..1_000 {
                    meter.record(&record("f", 1, T0 + i, 100, None, 128, Outcome::Ok));
                }
                let stats = task.shutdown().await;
                assert_eq!((stats.written, stats.dropped, stats.failed), (1_000, 0, 0));
                let recent = recent_invocations(&database, Some("f"), 5_000)
                    .await
                    .unwrap();
                assert_eq!(recent.len(), 1_000);
                assert_eq!(recent[0].started_at, at(T0 + 999), "newest first");
                assert_eq!(
                    recent[0],
                    record("f", 1, T0 + 999, 100, None, 128, Outcome::Ok)
                );
                assert_eq!(
                    recent_invocations(&database, Some("g"), 10).await.unwrap(),
                    vec![]
                );
                assert_eq!(
                    recent_invocations(&database, None, 3).await.unwrap().len(),
                    3
                );
            },
        )
        .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        crate::database::testing::each_backend(
            "a_full_queue_drops_and_counts_without_waiting",
            async |database| {
                let options = MeterOptions {
                    queue_capacity: 2,
                    ..MeterOptions::default()
                };
                let (meter, task) = Meter::start(database.clone(), options);
                // On a current-thread runtime the writer cannot run before the
                // next await: the third to fifth records find the queue full.
                for i in 0..5 {
                    meter.record(&record("f", 1, T0 + i, 100, None, 128, Outcome::Ok));
                }
                assert_eq!(meter.dropped(), 3);
                let stats = task.shutdown().await;
                assert_eq!((stats.written, stats.dropped), (2, 3));
                // A disabled meter keeps nothing and drops nothing.
                let disabled = Meter::disabled();
                disabled.record(&record("f", 1, T0, 100, None, 128, Outcome::Ok));
                assert_eq!((disabled.is_enabled(), disabled.dropped()), (false, 0));
            },
        )
        .await;
    }

    #[tokio::test]
    async fn time_ranges_are_half_open_and_filters_and_groups_apply() {
        crate::database::testing::each_backend(
            "time_ranges_are_half_open_and_filters_and_groups_apply",
            async |database| {
                let records = [
                    record("a", 1, T0 - 1, 1_000, None, 128, Outcome::Ok), // before `from`
                    record("a", 1, T0, 1_000, None, 128, Outcome::Ok),     // at `from`: in
                    record("a", 2, T0 + HOUR_US, 2_500, Some(500), 256, Outcome::Trap),
                    record(
                        "a",
                        2,
                        T0 + 2 * HOUR_US - 1,
                        200,
                        None,
                        256,
                        Outcome::Rejected,
                    ),
                    record("b", 1, T0 + 10, 1_001, None, 1024, Outcome::Error),
                    record("a", 1, T0 + 2 * HOUR_US, 1_000, None, 128, Outcome::Ok), // at `to`: out
                ];
                write_batch(&database, &records).await.unwrap();
                let prices = Prices::default();
                let from = Some(T0);
                let to = Some(T0 + 2 * HOUR_US);

                let by_function = billing_report(
                    &database,
                    &query(from, to, None, GroupBy::Function),
                    &prices,
                )
                .await
                .unwrap();
                let summary: Vec<_> = by_function
                    .rows
                    .iter()
                    .map(|row| {
                        (
                            row.function.as_str(),
                            row.invocations,
                            row.errors,
                            row.outcomes.rejected,
                            row.cold_starts,
                            row.billed_ms,
                            row.mb_ms,
                        )
                    })
                    .collect();
                // a: 1 ms×128 + 3 ms×256 + 1 ms×256; b: 2 ms×1024.
                assert_eq!(
                    summary,
                    vec![
                        ("a", 3, 1, 1, 1, 5, 128 + 768 + 256),
                        ("b", 1, 1, 0, 0, 2, 2048)
                    ]
                );
                assert_eq!(by_function.total.invocations, 4);
                assert_eq!(by_function.total.billable_invocations, 3);
                assert_eq!(by_function.total.mb_ms, 128 + 768 + 256 + 2048);
                let expected_cost = 3.0 * 0.2 / 1e6 + (3200.0 / 1_024_000.0) * 0.000_016_666_7;
                assert!((by_function.total.charge.total - expected_cost).abs() < 1e-15);

                let by_version = billing_report(
                    &database,
                    &query(from, to, Some("a"), GroupBy::Version),
                    &prices,
                )
                .await
                .unwrap();
                let versions: Vec<_> = by_version
                    .rows
                    .iter()
                    .map(|row| (row.version, row.invocations))
                    .collect();
                assert_eq!(versions, vec![(Some(1), 1), (Some(2), 2)]);

                let by_hour = billing_report(
                    &database,
                    &query(None, None, Some("a"), GroupBy::Hour),
                    &prices,
                )
                .await
                .unwrap();
                let hours: Vec<_> = by_hour
                    .rows
                    .iter()
                    .map(|row| (row.hour.unwrap().timestamp_micros(), row.invocations))
                    .collect();
                assert_eq!(
                    hours,
                    vec![
                        (T0 - HOUR_US, 1),
                        (T0, 1),
                        (T0 + HOUR_US, 2),
                        (T0 + 2 * HOUR_US, 1)
                    ]
                );

                // Exact percentiles over raw records: a's durations 200, 1000, 2500.
                let a = &by_function.rows[0];
                assert_eq!(
                    (a.p50_duration_ms, a.p99_duration_ms, a.percentiles_exact),
                    (Some(1.0), Some(2.5), true)
                );

                let empty = billing_report(
                    &database,
                    &query(Some(T0 + 100 * HOUR_US), None, None, GroupBy::Function),
                    &prices,
                )
                .await
                .unwrap();
                assert!(empty.rows.is_empty());
                assert_eq!(empty.total.charge.total, 0.0);
            },
        )
        .await;
    }

    #[tokio::test]
    async fn a_batch_straddling_the_cutoff_waits_whole_and_is_counted_once() {
        crate::database::testing::each_backend(
            "a_batch_straddling_the_cutoff_waits_whole_and_is_counted_once",
            async |database| {
                // One writer batch: a record in the hour before the cutoff and one
                // just after it (the cutoff is T0 + 1 h at T0 + 3.5 h with 2.5 h of
                // retention).
                let batch = [
                    record("f", 1, T0 + 10, 1_000, None, 128, Outcome::Ok),
                    record("f", 1, T0 + HOUR_US + 10, 2_000, None, 128, Outcome::Ok),
                ];
                write_batch(&database, &batch).await.unwrap();
                let totals = |database: Database| async move {
                    let report = billing_report(
                        &database,
                        &query(None, None, None, GroupBy::Hour),
                        &Prices::default(),
                    )
                    .await
                    .unwrap();
                    let hours: Vec<(i64, u64, bool)> = report
                        .rows
                        .iter()
                        .map(|row| {
                            (
                                row.hour.unwrap().timestamp_micros(),
                                row.invocations,
                                row.percentiles_exact,
                            )
                        })
                        .collect();
                    (report.total.invocations, report.total.billed_ms, hours)
                };
                let retention = Duration::from_secs(9_000);
                let now = at(T0 + 3 * HOUR_US + HOUR_US / 2);
                assert_eq!(roll_up(&database, now, retention).await.unwrap().records, 0);
                assert_eq!(
                    totals(database.clone()).await,
                    (2, 3, vec![(T0, 1, true), (T0 + HOUR_US, 1, true)])
                );
                // An hour later both records are past the cutoff: the batch is
                // folded whole, and the sums do not change.
                let later = at(T0 + 4 * HOUR_US + HOUR_US / 2);
                assert_eq!(
                    roll_up(&database, later, retention).await.unwrap().records,
                    2
                );
                assert_eq!(
                    totals(database.clone()).await,
                    (2, 3, vec![(T0, 1, false), (T0 + HOUR_US, 1, false)])
                );
            },
        )
        .await;
    }

    #[tokio::test]
    async fn reports_stay_exact_across_the_roll_up() {
        crate::database::testing::each_backend(
            "reports_stay_exact_across_the_roll_up",
            async |database| {
                let mut records = Vec::new();
                for i in 0..300u64 {
                    let hour = (i % 3) as i64;
                    let outcome = Outcome::ALL[(i % 6) as usize];
                    let init = (i % 7 == 0).then_some(1_000 + i);
                    let memory = [128, 256, 1024][(i % 3) as usize];
                    records.push(record(
                        "f",
                        1 + (i % 2) as u32,
                        T0 + hour * HOUR_US + i as i64,
                        50 + i * 37,
                        init,
                        memory,
                        outcome,
                    ));
                }
                records.push(record(
                    "g",
                    1,
                    T0 + 5 * HOUR_US,
                    999,
                    None,
                    512,
                    Outcome::Ok,
                ));
                // Stored as the writer stores them: a batch per stretch of time
                // (here, per hour), since a batch is rolled up whole.
                for hour in 0..6 {
                    let in_hour: Vec<InvocationRecord> = records
                        .iter()
                        .filter(|record| {
                            rollup::hour_start_us(record.started_at.timestamp_micros())
                                == T0 + hour * HOUR_US
                        })
                        .cloned()
                        .collect();
                    if !in_hour.is_empty() {
                        write_batch(&database, &in_hour).await.unwrap();
                    }
                }
                let prices = Prices {
                    free_invocations: 10,
                    free_gb_seconds: 0.001,
                    ..Prices::default()
                };
                let report = |group_by| {
                    let database = database.clone();
                    async move {
                        billing_report(&database, &query(None, None, None, group_by), &prices)
                            .await
                            .unwrap()
                    }
                };
                let before = [
                    report(GroupBy::Function).await,
                    report(GroupBy::Version).await,
                    report(GroupBy::Hour).await,
                ];

                // Retention 2 h at T0 + 4.5 h: hours T0 and T0 + 1 h are rolled up
                // (cutoff T0 + 2 h), T0 + 2 h and g's T0 + 5 h stay raw.
                let now = at(T0 + 4 * HOUR_US + HOUR_US / 2);
                let summary = roll_up(&database, now, Duration::from_secs(2 * 3600))
                    .await
                    .unwrap();
                assert_eq!(summary.records, 200);
                assert_eq!(
                    roll_up(&database, now, Duration::from_secs(2 * 3600))
                        .await
                        .unwrap()
                        .records,
                    0
                );
                assert_eq!(
                    recent_invocations(&database, None, 1_000)
                        .await
                        .unwrap()
                        .len(),
                    101
                );

                // A late record for a rolled-up hour is merged by the next run.
                let late = record("f", 1, T0 + 5, 10, None, 128, Outcome::Ok);
                write_batch(&database, std::slice::from_ref(&late))
                    .await
                    .unwrap();
                assert_eq!(
                    roll_up(&database, now, Duration::from_secs(2 * 3600))
                        .await
                        .unwrap()
                        .records,
                    1
                );

                let after = [
                    report(GroupBy::Function).await,
                    report(GroupBy::Version).await,
                    report(GroupBy::Hour).await,
                ];
                for (before, after) in before.iter().zip(&after) {
                    assert_eq!(before.rows.len(), after.rows.len());
                    for (old, new) in before.rows.iter().zip(&after.rows) {
                        let late_here = new.function == "f"
                            && new.version != Some(2)
                            && new.hour.is_none_or(|hour| hour == at(T0));
                        let extra = u64::from(late_here);
                        assert_eq!(new.invocations, old.invocations + extra, "{new:?}");
                        assert_eq!(new.outcomes.ok, old.outcomes.ok + extra);
                        assert_eq!(
                            (new.errors, new.outcomes.rejected, new.cold_starts),
                            (old.errors, old.outcomes.rejected, old.cold_starts)
                        );
                        assert_eq!(new.billed_ms, old.billed_ms + extra);
                        assert_eq!(new.mb_ms, old.mb_ms + 128 * extra);
                        assert_eq!(
                            (new.bytes_in, new.bytes_out),
                            (old.bytes_in + 10 * extra, old.bytes_out + 20 * extra)
                        );
                        let rolled = new.function == "f"
                            && new.hour.is_none_or(|hour| hour < at(T0 + 2 * HOUR_US));
                        assert_eq!(new.percentiles_exact, !rolled, "{new:?}");
                        if rolled && extra == 0 {
                            // Bucket-accurate: never below the exact value.
                            assert!(
                                new.p50_duration_ms >= old.p50_duration_ms,
                                "{old:?} {new:?}"
                            );
                            assert!(
                                new.p99_duration_ms >= old.p99_duration_ms,
                                "{old:?} {new:?}"
                            );
                        }
                    }
                    assert_eq!(
                        after.total.billable_invocations,
                        before.total.billable_invocations + 1
                    );
                    assert_eq!(after.total.mb_ms, before.total.mb_ms + 128);
                }
            },
        )
        .await;
    }
}
