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
use super::rollup::{self, Totals};
use super::{InvocationRecord, Outcome, TriggerKind};
use crate::database::Database;

/// How a report's rows are grouped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingQuery {
    /// Invocations that started at or after this time (`None`: from the
    /// beginning).
    pub from: Option<DateTime<Utc>>,
    /// Invocations that started before this time (`None`: until now).
    pub to: Option<DateTime<Utc>>,
    /// Only this function (`None`: all).
    pub function: Option<String>,
    /// How rows are grouped.
    pub group_by: GroupBy,
}

/// Invocations per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    pub fn errors(&self) -> u64 {
        self.error + self.trap + self.timeout + self.out_of_memory
    }
}

/// One group of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingRow {
    /// The function.
    pub function: String,
    /// The version, when grouped by version.
    pub version: Option<u32>,
    /// The hour's start, when grouped by hour.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

    let raw = sqlx::query(
        "SELECT function, version, started_at_us, duration_us, init_duration_us, billed_ms, memory_mb, \
         cold_start, outcome, bytes_in, bytes_out FROM invocations \
         WHERE started_at_us >= ? AND started_at_us < ? AND (? IS NULL OR function = ?)",
    )
    .bind(from)
    .bind(to)
    .bind(query.function.as_deref())
    .bind(query.function.as_deref())
    .fetch_all(database)
    .await
    .context("cannot read invocation records")?;
    for row in &raw {
        let key = group_key(
            query.group_by,
            row.try_get("function")?,
            u32::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0),
            rollup::hour_start_us(row.try_get("started_at_us")?),
        );
        let figures = rollup::figures_of(row)?;
        let group = groups.entry(key).or_default();
        group.totals.add(&figures);
        group.raw_durations.push(figures.duration_us);
    }

    let aggregates = sqlx::query(
        "SELECT * FROM invocation_hours \
         WHERE hour_start_us >= ? AND hour_start_us < ? AND (? IS NULL OR function = ?)",
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
    let rows = sqlx::query(
        "SELECT * FROM invocations WHERE (? IS NULL OR function = ?) \
         ORDER BY started_at_us DESC, rowid DESC LIMIT ?",
    )
    .bind(function)
    .bind(function)
    .bind(i64::from(limit))
    .fetch_all(database)
    .await
    .context("cannot read invocation records")?;
    rows.iter().map(record_of).collect()
}

fn record_of(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<InvocationRecord> {
    let unsigned = |name: &str| -> anyhow::Result<u64> {
        Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
    };
    let trigger: String = row.try_get("trigger_kind")?;
    let outcome: String = row.try_get("outcome")?;
    Ok(InvocationRecord {
        request_id: row.try_get("request_id")?,
        function: row.try_get("function")?,
        version: u32::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0),
        trigger: TriggerKind::parse(&trigger).with_context(|| {
            format!("unknown trigger kind `{trigger}` in the invocations table")
        })?,
        started_at: DateTime::from_timestamp_micros(row.try_get("started_at_us")?)
            .context("a start time out of range")?,
        duration_us: unsigned("duration_us")?,
        init_duration_us: row
            .try_get::<Option<i64>, _>("init_duration_us")?
            .map(|us| u64::try_from(us).unwrap_or(0)),
        billed_ms: unsigned("billed_ms")?,
        memory_mb: unsigned("memory_mb")?,
        peak_memory_bytes: unsigned("peak_memory_bytes")?,
        cold_start: row.try_get("cold_start")?,
        outcome: Outcome::parse(&outcome)
            .with_context(|| format!("unknown outcome `{outcome}` in the invocations table"))?,
        bytes_in: unsigned("bytes_in")?,
        bytes_out: unsigned("bytes_out")?,
    })
}
