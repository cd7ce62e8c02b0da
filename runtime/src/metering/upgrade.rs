//! The start-up step that leaves one storage format for invocation records.
//!
//! Version 0.1 of Kumo stored records three ways over its life: a row per
//! record in the `invocations` table, then batches in `format` 1 (request
//! ids as text), then batches in `format` 2 (request ids as sequence steps,
//! the current format of [`super::store`]). [`upgrade_records`] rewrites the
//! first two into the third, so that every reader knows only one format and
//! every record of an older database stays billable. It runs before the
//! server serves or meters anything; each chunk is rewritten in one
//! transaction, so a crash part-way leaves every record in exactly one
//! place, and the next start finishes the job.
//!
//! This file is the only one that knows the older formats; delete it (and
//! the `invocations` table, in a migration) once no 0.1 database is left.

use std::sync::Arc;

use anyhow::Context;
use chrono::DateTime;
use sqlx::Row;

use super::store::{self, Batch, FORMAT, StoredRecord};
use super::{InvocationRecord, Outcome, TriggerKind};
use crate::database::Database;

/// The `format` of batches written by Kumo before request ids were packed.
const FORMAT_TEXT_IDS: i64 = 1;

/// Older rows rewritten per transaction.
const ROWS_PER_STEP: i64 = 10_000;
/// Older batches rewritten per transaction (each up to a writer batch).
const BATCHES_PER_STEP: i64 = 16;

/// What [`upgrade_records`] rewrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UpgradeSummary {
    /// Rows of older formats rewritten (per-record rows and format-1
    /// batches).
    pub rows: u64,
    /// Records in them.
    pub records: u64,
}

/// Rewrites every record stored in an older format into the current one.
/// A database without any is left as it is.
///
/// # Errors
///
/// The database's error, or a malformed older row; what was rewritten
/// before stays rewritten.
pub(crate) async fn upgrade_records(database: &Database) -> anyhow::Result<UpgradeSummary> {
    // The per-record table only ever existed on SQLite.
    let mut summary = match crate::database::dialect(database) {
        crate::database::Dialect::Sqlite => move_per_record_rows(database).await?,
        crate::database::Dialect::Postgres => UpgradeSummary::default(),
    };
    let batches = rewrite_text_id_batches(database).await?;
    summary.rows += batches.rows;
    summary.records += batches.records;
    Ok(summary)
}

/// Moves the rows of the `invocations` table (a record per row) into
/// batches and drops the table.
async fn move_per_record_rows(database: &Database) -> anyhow::Result<UpgradeSummary> {
    let mut summary = UpgradeSummary::default();
    loop {
        let mut transaction = crate::database::begin_write(database).await?;
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'invocations'",
        )
        .fetch_one(&mut *transaction)
        .await?;
        if exists == 0 {
            return Ok(summary);
        }
        let rows = sqlx::query("SELECT rowid, * FROM invocations ORDER BY rowid LIMIT $1")
            .bind(ROWS_PER_STEP)
            .fetch_all(&mut *transaction)
            .await
            .context("cannot read the per-record invocations table")?;
        let Some(last_rowid) = rows.last().map(|row| row.get::<i64, _>("rowid")) else {
            sqlx::query("DROP TABLE invocations")
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await?;
            return Ok(summary);
        };
        let records = rows
            .iter()
            .map(record_of_row)
            .collect::<anyhow::Result<Vec<_>>>()?;
        store::insert_records(&mut transaction, &records).await?;
        sqlx::query("DELETE FROM invocations WHERE rowid <= $1")
            .bind(last_rowid)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        summary.rows += records.len() as u64;
        summary.records += records.len() as u64;
    }
}

fn record_of_row(row: &sqlx::any::AnyRow) -> anyhow::Result<InvocationRecord> {
    let unsigned = |name: &str| -> anyhow::Result<u64> {
        Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
    };
    let trigger: String = row.try_get("trigger_kind")?;
    let outcome: String = row.try_get("outcome")?;
    Ok(InvocationRecord {
        request_id: Arc::from(row.try_get::<&str, _>("request_id")?),
        function: Arc::from(row.try_get::<&str, _>("function")?),
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
        cold_start: row.try_get::<i64, _>("cold_start")? != 0,
        outcome: Outcome::parse(&outcome)
            .with_context(|| format!("unknown outcome `{outcome}` in the invocations table"))?,
        bytes_in: unsigned("bytes_in")?,
        bytes_out: unsigned("bytes_out")?,
    })
}

/// Re-encodes the format-1 batches in place (same id, same time range).
async fn rewrite_text_id_batches(database: &Database) -> anyhow::Result<UpgradeSummary> {
    let mut summary = UpgradeSummary::default();
    let mut batch = Batch::default();
    loop {
        let mut transaction = crate::database::begin_write(database).await?;
        let rows = sqlx::query(
            "SELECT id, functions, data FROM invocation_batches WHERE format = $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(FORMAT_TEXT_IDS)
        .bind(BATCHES_PER_STEP)
        .fetch_all(&mut *transaction)
        .await
        .context("cannot read invocation batches")?;
        if rows.is_empty() {
            return Ok(summary);
        }
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let records = decode_text_ids(row.try_get("functions")?, row.try_get("data")?)
                .with_context(|| format!("invocation batch {id} (format 1)"))?;
            batch.clear();
            for record in &records {
                batch.push(record);
            }
            sqlx::query(
                "UPDATE invocation_batches SET format = $1, functions = $2, data = $3 \
                 WHERE id = $4",
            )
            .bind(FORMAT)
            .bind(batch.functions_json()?)
            .bind(batch.data())
            .bind(id)
            .execute(&mut *transaction)
            .await?;
            summary.rows += 1;
            summary.records += records.len() as u64;
        }
        transaction.commit().await?;
    }
}

/// The records of a format-1 batch: [`StoredRecord`]s whose request id is
/// its text.
fn decode_text_ids(functions: &str, data: &[u8]) -> anyhow::Result<Vec<InvocationRecord>> {
    let functions = store::function_names(functions)?;
    let mut records = Vec::new();
    let mut rest = data;
    let mut started_at_us: i64 = 0;
    while !rest.is_empty() {
        let (stored, after) = postcard::take_from_bytes::<StoredRecord<&str>>(rest)
            .context("a malformed invocation batch")?;
        rest = after;
        started_at_us = started_at_us.wrapping_add(stored.started_at_delta_us);
        let request_id = Arc::from(stored.request_id);
        records.push(stored.into_record(request_id, &functions, started_at_us)?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::{BillingQuery, Prices, billing_report};

    /// A format-1 batch of two records, as Kumo 0.1 wrote it before request
    /// ids were packed: postcard of `StoredRecord<&str>`, field by field
    /// (varints, zigzag for the start steps), written out by hand from the
    /// format's definition so that it does not depend on this code:
    /// `0123456789abcdef0123456789abcdef`, `hello` v1, http, started at
    /// 1_700_000_000 s, 1234 µs, init 56 µs, billed 2 ms, 128 MB, peak
    /// 1 MiB, cold, ok, 7 in, 11 out; then `evt-9`, `thumb` v3, event,
    /// 1 s later, 250 ms, warm, billed 250 ms, 256 MB, peak 4096, trap.
    const FORMAT_1_DATA: &str = "2030313233343536373839616263646566303132333435363738396162636465\
        660001008080f28183898506d20901380280018080400100070b056576742d3901030180897a90a10f00fa01\
        8002802000020000";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
            .collect()
    }

    fn record(request_id: &str, function: &str, started_at_us: i64) -> InvocationRecord {
        InvocationRecord {
            request_id: Arc::from(request_id),
            function: Arc::from(function),
            version: 5,
            trigger: TriggerKind::Http,
            started_at: DateTime::from_timestamp_micros(started_at_us).unwrap(),
            duration_us: 900,
            init_duration_us: None,
            billed_ms: 1,
            memory_mb: 128,
            peak_memory_bytes: 2 << 20,
            cold_start: false,
            outcome: Outcome::Ok,
            bytes_in: 1,
            bytes_out: 2,
        }
    }

    /// A database as Kumo 0.1 leaves it: today's schema (its migrations),
    /// per-record rows, a format-1 batch and a format-2 batch written by
    /// the current writer.
    async fn database_of_version_0_1(dir: &std::path::Path) -> Database {
        let database =
            crate::database::open(dir, &crate::database::DatabaseLocation::DataDirectory)
                .await
                .unwrap();
        for (request_id, started_at_us, init) in [
            ("old-1", 1_600_000_000_000_000_i64, None),
            ("old-2", 1_600_000_000_000_200, Some(7_i64)),
        ] {
            sqlx::query(
                "INSERT INTO invocations (request_id, function, version, trigger_kind, started_at_us, \
                 duration_us, init_duration_us, billed_ms, memory_mb, peak_memory_bytes, cold_start, \
                 outcome, bytes_in, bytes_out) \
                 VALUES ($1, 'hello', 2, 'event', $2, 1500, $3, 2, 128, 4096, $4, 'trap', 3, 4)",
            )
            .bind(request_id)
            .bind(started_at_us)
            .bind(init)
            .bind(init.is_some())
            .execute(&database)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO invocation_batches \
             (format, first_started_at_us, last_started_at_us, records, functions, data) \
             VALUES (1, 1700000000000000, 1700000001000000, 2, '[\"hello\",\"thumb\"]', $1)",
        )
        .bind(hex(FORMAT_1_DATA))
        .execute(&database)
        .await
        .unwrap();
        store::write_batch(
            &database,
            &[
                record(
                    &crate::request_id::format(9, 41),
                    "hello",
                    1_800_000_000_000_000,
                ),
                record(
                    &crate::request_id::format(9, 42),
                    "hello",
                    1_800_000_000_000_100,
                ),
            ],
        )
        .await
        .unwrap();
        database
    }

    #[tokio::test]
    async fn a_database_of_version_0_1_is_rewritten_once_and_every_record_stays_billable() {
        let dir = tempfile::tempdir().unwrap();
        let database = database_of_version_0_1(dir.path()).await;

        let summary = upgrade_records(&database).await.unwrap();
        assert_eq!(
            summary,
            UpgradeSummary {
                rows: 3,
                records: 4
            }
        );
        let formats: Vec<i64> =
            sqlx::query_scalar("SELECT format FROM invocation_batches ORDER BY id")
                .fetch_all(&database)
                .await
                .unwrap();
        assert!(
            formats.iter().all(|&format| format == FORMAT),
            "{formats:?}"
        );
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'invocations'",
        )
        .fetch_one(&database)
        .await
        .unwrap();
        assert_eq!(tables, 0, "the per-record table is dropped");

        let records = store::newest_records(&database, None, 100).await.unwrap();
        type Row<'a> = (
            &'a str,
            &'a str,
            u32,
            TriggerKind,
            i64,
            Option<u64>,
            u64,
            Outcome,
        );
        let rows: Vec<Row<'_>> = records
            .iter()
            .map(|record| {
                (
                    &*record.request_id,
                    &*record.function,
                    record.version,
                    record.trigger,
                    record.started_at.timestamp_micros(),
                    record.init_duration_us,
                    record.billed_ms,
                    record.outcome,
                )
            })
            .collect();
        let hello_41 = crate::request_id::format(9, 41);
        let hello_42 = crate::request_id::format(9, 42);
        assert_eq!(
            rows,
            [
                (
                    &*hello_42,
                    "hello",
                    5,
                    TriggerKind::Http,
                    1_800_000_000_000_100,
                    None,
                    1,
                    Outcome::Ok
                ),
                (
                    &*hello_41,
                    "hello",
                    5,
                    TriggerKind::Http,
                    1_800_000_000_000_000,
                    None,
                    1,
                    Outcome::Ok
                ),
                (
                    "evt-9",
                    "thumb",
                    3,
                    TriggerKind::Event,
                    1_700_000_001_000_000,
                    None,
                    250,
                    Outcome::Trap
                ),
                (
                    "0123456789abcdef0123456789abcdef",
                    "hello",
                    1,
                    TriggerKind::Http,
                    1_700_000_000_000_000,
                    Some(56),
                    2,
                    Outcome::Ok
                ),
                (
                    "old-2",
                    "hello",
                    2,
                    TriggerKind::Event,
                    1_600_000_000_000_200,
                    Some(7),
                    2,
                    Outcome::Trap
                ),
                (
                    "old-1",
                    "hello",
                    2,
                    TriggerKind::Event,
                    1_600_000_000_000_000,
                    None,
                    2,
                    Outcome::Trap
                ),
            ]
        );
        let format_1 = &records[3];
        assert_eq!(
            (
                format_1.duration_us,
                format_1.memory_mb,
                format_1.peak_memory_bytes,
                format_1.cold_start,
                format_1.bytes_in,
                format_1.bytes_out
            ),
            (1234, 128, 1 << 20, true, 7, 11)
        );

        // Billable: the report counts every record, of every era.
        let report = billing_report(&database, &BillingQuery::default(), &Prices::default())
            .await
            .unwrap();
        assert_eq!(report.total.invocations, 6);
        assert_eq!(report.total.billed_ms, 1 + 1 + 250 + 2 + 2 + 2);

        assert_eq!(
            upgrade_records(&database).await.unwrap(),
            UpgradeSummary::default(),
            "a second start has nothing to rewrite"
        );
    }

    #[test]
    fn a_broken_format_1_batch_is_an_error_not_a_panic() {
        let data = hex(FORMAT_1_DATA);
        for cut in 1..data.len() {
            // Cut inside the second record, or anywhere in the first.
            let result = decode_text_ids(r#"["hello","thumb"]"#, &data[..cut]);
            assert!(
                result.is_err() || cut == 58,
                "cut at {cut} decoded: {result:?}"
            );
        }
        assert!(decode_text_ids(r#"["hello"]"#, &data).is_err());
    }
}
