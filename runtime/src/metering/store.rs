//! How invocation records are kept in SQLite: one row of
//! `invocation_batches` per writer batch, its records encoded one after
//! another with postcard into one blob.
//!
//! A row per invocation cost about 1.7 µs of CPU per record in SQLite
//! (binding 14 values, the table and index B-trees), which at tens of
//! thousands of invocations a second on one core was over 10% of the
//! request rate. A [`Batch`] encodes each record as it arrives (while it is
//! still in the cache) into a growing buffer, so the writer inserts one row
//! per batch and touches no record again. Reads decode the batches they
//! need: [`records_between`] selects by each batch's range of start times
//! and by the function names it holds, [`newest_records`] walks batches
//! from the newest start time down and stops as soon as no older batch can
//! change the answer.
//!
//! A row's `data` is a sequence of [`StoredRecord`]s in postcard, in
//! `format` 2, the only format read here; each names its function by its
//! index in the row's `functions` (a JSON array), stores its start as the
//! difference from the previous record's, and its request id as the
//! difference of its sequence from the previous record's when both are Kumo
//! ids of the same process ([`crate::request_id`]): about 20 bytes a
//! record. Outcomes and trigger kinds are stored as their positions in
//! [`Outcome::ALL`] and [`TriggerKind::ALL`], so renaming a variant never
//! changes the format. What older releases stored is rewritten into this
//! format once, at start-up, by [`super::upgrade`].

use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::DateTime;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{InvocationRecord, Outcome, TriggerKind};
use crate::database::Database;

/// The `format` of the rows written and read.
pub(super) const FORMAT: i64 = 2;

/// Records per row at most when storing a slice of records, so that a row
/// stays well under a megabyte.
const RECORDS_PER_ROW: usize = 8_192;

/// A stored record; `Id` is a [`StoredRequestId`] (older rows, read only
/// by [`super::upgrade`], had the text there).
#[derive(Serialize, Deserialize)]
pub(super) struct StoredRecord<Id> {
    pub(super) request_id: Id,
    /// The index in the row's `functions`.
    function: u32,
    version: u32,
    trigger: u8,
    /// The start minus the previous record's (the first record's: minus 0).
    pub(super) started_at_delta_us: i64,
    duration_us: u64,
    init_duration_us: Option<u64>,
    billed_ms: u64,
    memory_mb: u64,
    peak_memory_bytes: u64,
    cold_start: bool,
    outcome: u8,
    bytes_in: u64,
    bytes_out: u64,
}

impl<Id> StoredRecord<Id> {
    /// `record` as stored, with its request id, function index and start
    /// step as the row encodes them.
    pub(super) fn of(
        record: &InvocationRecord,
        request_id: Id,
        function: u32,
        started_at_delta_us: i64,
    ) -> Self {
        StoredRecord {
            request_id,
            function,
            version: record.version,
            trigger: record.trigger.index() as u8,
            started_at_delta_us,
            duration_us: record.duration_us,
            init_duration_us: record.init_duration_us,
            billed_ms: record.billed_ms,
            memory_mb: record.memory_mb,
            peak_memory_bytes: record.peak_memory_bytes,
            cold_start: record.cold_start,
            outcome: record.outcome.index() as u8,
            bytes_in: record.bytes_in,
            bytes_out: record.bytes_out,
        }
    }
}

impl StoredRecord<StoredRequestId<'_>> {
    /// Appends the record to `out` byte for byte as postcard encodes it:
    /// integers as varints (LEB128; signed ones zigzagged first), `u8` and
    /// `bool` as one byte, an `Option` as a tag byte and its value, an enum
    /// as its variant's index and its fields, a string as its length and
    /// bytes. Written out because serde's generic path cost as much again
    /// for every invocation (docs/scaling.md); reading stays postcard's,
    /// and `hand_encoding_is_postcards` holds the two to the same bytes.
    fn encode_onto(&self, out: &mut Vec<u8>) {
        match self.request_id {
            StoredRequestId::Next(step) => {
                put_varint(out, 0);
                put_varint(out, zigzag(step));
            }
            StoredRequestId::Kumo { prefix, sequence } => {
                put_varint(out, 1);
                put_varint(out, prefix);
                put_varint(out, sequence);
            }
            StoredRequestId::Text(text) => {
                put_varint(out, 2);
                put_varint(out, text.len() as u64);
                out.extend_from_slice(text.as_bytes());
            }
        }
        put_varint(out, u64::from(self.function));
        put_varint(out, u64::from(self.version));
        out.push(self.trigger);
        put_varint(out, zigzag(self.started_at_delta_us));
        put_varint(out, self.duration_us);
        match self.init_duration_us {
            None => out.push(0),
            Some(init) => {
                out.push(1);
                put_varint(out, init);
            }
        }
        put_varint(out, self.billed_ms);
        put_varint(out, self.memory_mb);
        put_varint(out, self.peak_memory_bytes);
        out.push(u8::from(self.cold_start));
        out.push(self.outcome);
        put_varint(out, self.bytes_in);
        put_varint(out, self.bytes_out);
    }
}

/// Appends `value` as a varint: 7 bits a byte, lowest first, the high bit
/// set on every byte but the last.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A signed integer as postcard (and protobuf) store it: small magnitudes,
/// either sign, become small numbers.
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// A request id in format 2, against the row's previous Kumo id (that of
/// the last record before it whose id is not [`StoredRequestId::Text`]).
#[derive(Serialize, Deserialize)]
enum StoredRequestId<'a> {
    /// A Kumo id with the previous one's prefix: its sequence minus the
    /// previous one's.
    Next(i64),
    /// A Kumo id with another prefix (or the row's first).
    Kumo {
        /// The process's prefix.
        prefix: u64,
        /// The sequence within it.
        sequence: u64,
    },
    /// Any other id, as it is.
    Text(&'a str),
}

/// Records encoded as they arrive, for one row.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    data: Vec<u8>,
    functions: Vec<Arc<str>>,
    records: usize,
    first_started_at_us: i64,
    last_started_at_us: i64,
    previous_started_at_us: i64,
    /// The prefix and sequence of the last Kumo request id pushed.
    previous_request_id: Option<(u64, u64)>,
}

impl Batch {
    /// Encodes `record` onto the batch; returns the index of its function
    /// in [`Batch::functions`].
    pub(crate) fn push(&mut self, record: &InvocationRecord) -> usize {
        let known = self
            .functions
            .iter()
            .position(|name| Arc::ptr_eq(name, &record.function) || *name == record.function);
        let function = known.unwrap_or(self.functions.len());
        let started_at_us = record.started_at.timestamp_micros();
        let previous_us = if self.records == 0 {
            0
        } else {
            self.previous_started_at_us
        };
        let kumo_request_id = crate::request_id::parse(&record.request_id);
        let request_id = match (kumo_request_id, self.previous_request_id) {
            (Some((prefix, sequence)), Some((previous_prefix, previous_sequence)))
                if prefix == previous_prefix =>
            {
                StoredRequestId::Next(sequence.wrapping_sub(previous_sequence) as i64)
            }
            (Some((prefix, sequence)), _) => StoredRequestId::Kumo { prefix, sequence },
            (None, _) => StoredRequestId::Text(&record.request_id),
        };
        let stored = StoredRecord::of(
            record,
            request_id,
            function as u32,
            started_at_us.wrapping_sub(previous_us),
        );
        stored.encode_onto(&mut self.data);
        if known.is_none() {
            self.functions.push(Arc::clone(&record.function));
        }
        if self.records == 0 {
            self.first_started_at_us = started_at_us;
            self.last_started_at_us = started_at_us;
        } else {
            self.first_started_at_us = self.first_started_at_us.min(started_at_us);
            self.last_started_at_us = self.last_started_at_us.max(started_at_us);
        }
        self.previous_started_at_us = started_at_us;
        if kumo_request_id.is_some() {
            self.previous_request_id = kumo_request_id;
        }
        self.records += 1;
        function
    }

    /// Records in the batch.
    pub(crate) fn len(&self) -> usize {
        self.records
    }

    /// Whether the batch holds no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The function names the records refer to, by index.
    pub(crate) fn functions(&self) -> &[Arc<str>] {
        &self.functions
    }

    /// The records pushed so far, decoded again.
    ///
    /// # Errors
    ///
    /// None is expected: the batch decodes as it was encoded.
    pub(crate) fn records(&self) -> anyhow::Result<Vec<InvocationRecord>> {
        decode_records(&self.functions, &self.data)
    }

    /// [`Batch::functions`] as a row stores them, a JSON array.
    pub(super) fn functions_json(&self) -> serde_json::Result<String> {
        let names: Vec<&str> = self.functions.iter().map(|name| &**name).collect();
        serde_json::to_string(&names)
    }

    /// The encoded records, as a row stores them.
    pub(super) fn data(&self) -> &[u8] {
        &self.data
    }

    /// Empties the batch, keeping its buffers.
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.functions.clear();
        self.records = 0;
        self.previous_request_id = None;
    }
}

/// The records of one stored row.
///
/// # Errors
///
/// A row that is not a batch of the current format.
fn decode(format: i64, functions: &str, data: &[u8]) -> anyhow::Result<Vec<InvocationRecord>> {
    if format != FORMAT {
        bail!(
            "invocation batch format {format} is unknown; hint: was this database written by a newer kumo?"
        );
    }
    decode_records(&function_names(functions)?, data)
}

/// A row's `functions`.
pub(super) fn function_names(functions: &str) -> anyhow::Result<Vec<Arc<str>>> {
    Ok(serde_json::from_str::<Vec<&str>>(functions)
        .context("a malformed function list in an invocation batch")?
        .into_iter()
        .map(Arc::from)
        .collect())
}

/// The records of `data`, whose functions are `functions`.
fn decode_records(functions: &[Arc<str>], data: &[u8]) -> anyhow::Result<Vec<InvocationRecord>> {
    let mut records = Vec::new();
    let mut rest = data;
    let mut started_at_us: i64 = 0;
    let mut previous_request_id: Option<(u64, u64)> = None;
    while !rest.is_empty() {
        let (stored, after) = postcard::take_from_bytes::<StoredRecord<StoredRequestId<'_>>>(rest)
            .context("a malformed invocation batch")?;
        rest = after;
        let request_id = match stored.request_id {
            StoredRequestId::Next(delta) => {
                let (prefix, sequence) = previous_request_id
                    .context("an invocation batch's first Kumo request id is relative")?;
                let sequence = sequence.wrapping_add(delta as u64);
                previous_request_id = Some((prefix, sequence));
                crate::request_id::format(prefix, sequence)
            }
            StoredRequestId::Kumo { prefix, sequence } => {
                previous_request_id = Some((prefix, sequence));
                crate::request_id::format(prefix, sequence)
            }
            StoredRequestId::Text(text) => Arc::from(text),
        };
        started_at_us = started_at_us.wrapping_add(stored.started_at_delta_us);
        records.push(stored.into_record(request_id, functions, started_at_us)?);
    }
    Ok(records)
}

impl<Id> StoredRecord<Id> {
    /// The record, with its decoded request id and its start.
    pub(super) fn into_record(
        self,
        request_id: Arc<str>,
        functions: &[Arc<str>],
        started_at_us: i64,
    ) -> anyhow::Result<InvocationRecord> {
        Ok(InvocationRecord {
            request_id,
            function: functions
                .get(self.function as usize)
                .context("an invocation batch names a function it does not list")?
                .clone(),
            version: self.version,
            trigger: *TriggerKind::ALL
                .get(usize::from(self.trigger))
                .context("an unknown trigger kind in an invocation batch")?,
            started_at: DateTime::from_timestamp_micros(started_at_us)
                .context("a start time out of range in an invocation batch")?,
            duration_us: self.duration_us,
            init_duration_us: self.init_duration_us,
            billed_ms: self.billed_ms,
            memory_mb: self.memory_mb,
            peak_memory_bytes: self.peak_memory_bytes,
            cold_start: self.cold_start,
            outcome: *Outcome::ALL
                .get(usize::from(self.outcome))
                .context("an unknown outcome in an invocation batch")?,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
        })
    }
}

/// The records of a row selected with `format`, `functions` and `data`.
fn decode_row(row: &sqlx::any::AnyRow) -> anyhow::Result<Vec<InvocationRecord>> {
    decode(
        row.try_get("format")?,
        row.try_get("functions")?,
        row.try_get("data")?,
    )
}

/// Stores `batch` as one row, in one transaction.
///
/// # Errors
///
/// The database's error; nothing of the batch is stored then.
pub(crate) async fn insert_batch(database: &Database, batch: &Batch) -> anyhow::Result<()> {
    let mut connection = database.acquire().await?;
    insert_row(&mut connection, batch).await
}

async fn insert_row(connection: &mut sqlx::AnyConnection, batch: &Batch) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO invocation_batches \
         (format, first_started_at_us, last_started_at_us, records, functions, data) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(FORMAT)
    .bind(batch.first_started_at_us)
    .bind(batch.last_started_at_us)
    .bind(batch.records as i64)
    .bind(batch.functions_json()?)
    .bind(&batch.data[..])
    .execute(connection)
    .await?;
    Ok(())
}

/// Stores `records` in one transaction (a row per [`RECORDS_PER_ROW`]):
/// how tests put records in a database.
///
/// # Errors
///
/// The database's error; nothing of the slice is stored then.
#[cfg(test)]
pub(crate) async fn write_batch(
    database: &Database,
    records: &[InvocationRecord],
) -> anyhow::Result<()> {
    let mut transaction = crate::database::begin_write(database).await?;
    insert_records(&mut transaction, records).await?;
    transaction.commit().await?;
    Ok(())
}

pub(super) async fn insert_records(
    transaction: &mut crate::database::Transaction,
    records: &[InvocationRecord],
) -> anyhow::Result<()> {
    let mut batch = Batch::default();
    for chunk in records.chunks(RECORDS_PER_ROW) {
        batch.clear();
        for record in chunk {
            batch.push(record);
        }
        insert_row(transaction, &batch).await?;
    }
    Ok(())
}

/// A `LIKE` pattern matching a batch's `functions` (a JSON array of
/// names) when it holds `function`, in both SQL dialects. `_` in a name is
/// a wildcard to `LIKE`, so it may match a batch of a similar name: callers
/// filter the decoded records by name.
fn names_pattern(function: &str) -> String {
    let quoted = serde_json::to_string(function).expect("a string serializes");
    format!("%{}%", quoted.replace('%', "_"))
}

/// Every stored record of `function` (all when `None`) that started in
/// `[from_us, to_us)`, in no particular order.
///
/// # Errors
///
/// The database's error, or a malformed batch.
pub(crate) async fn records_between(
    database: &Database,
    from_us: i64,
    to_us: i64,
    function: Option<&str>,
) -> anyhow::Result<Vec<InvocationRecord>> {
    // Only batches whose function names mention the function are decoded
    // (the records are filtered below, so a near miss costs only time).
    let mut rows = sqlx::query(
        "SELECT format, functions, data FROM invocation_batches \
         WHERE last_started_at_us >= $1 AND first_started_at_us < $2 \
         AND ($3 IS NULL OR functions LIKE $3)",
    )
    .bind(from_us)
    .bind(to_us)
    .bind(function.map(names_pattern))
    .fetch(database);
    let mut records = Vec::new();
    while let Some(row) = rows.try_next().await? {
        records.extend(decode_row(&row)?.into_iter().filter(|record| {
            let started_at_us = record.started_at.timestamp_micros();
            (from_us..to_us).contains(&started_at_us)
                && function.is_none_or(|name| *record.function == *name)
        }));
    }
    Ok(records)
}

/// The `limit` most recent stored records of `function` (all when
/// `None`), newest start first.
///
/// # Errors
///
/// The database's error, or a malformed batch.
pub(crate) async fn newest_records(
    database: &Database,
    function: Option<&str>,
    limit: usize,
) -> anyhow::Result<Vec<InvocationRecord>> {
    let mut rows = sqlx::query(
        "SELECT last_started_at_us, format, functions, data FROM invocation_batches \
         WHERE ($1 IS NULL OR functions LIKE $1) \
         ORDER BY last_started_at_us DESC, id DESC",
    )
    .bind(function.map(names_pattern))
    .fetch(database);
    // Newest first; a batch's records are in the order they ended, so
    // later ones win ties.
    let mut newest: Vec<InvocationRecord> = Vec::new();
    while let Some(row) = rows.try_next().await? {
        let last_started_at_us: i64 = row.try_get("last_started_at_us")?;
        if limit == 0
            || (newest.len() >= limit
                && newest[limit - 1].started_at.timestamp_micros() > last_started_at_us)
        {
            // No record of this batch or an older one starts later than
            // the ones kept.
            break;
        }
        newest.extend(
            decode_row(&row)?
                .into_iter()
                .rev()
                .filter(|record| function.is_none_or(|name| *record.function == *name)),
        );
        newest.sort_by_key(|record| std::cmp::Reverse(record.started_at));
        newest.truncate(limit);
    }
    Ok(newest)
}

/// A chunk of batches whose records all started before `cutoff_us`, oldest
/// first, with the last batch's id (for [`delete_batches_through`]).
///
/// # Errors
///
/// The database's error, or a malformed batch.
pub(super) async fn batches_before(
    transaction: &mut crate::database::Transaction,
    cutoff_us: i64,
    batches: i64,
) -> anyhow::Result<Option<(i64, Vec<InvocationRecord>)>> {
    let rows = sqlx::query(
        "SELECT id, format, functions, data FROM invocation_batches \
         WHERE last_started_at_us < $1 ORDER BY id LIMIT $2",
    )
    .bind(cutoff_us)
    .bind(batches)
    .fetch_all(&mut **transaction)
    .await
    .context("cannot read invocation batches")?;
    let Some(last_id) = rows.last().map(|row| row.get::<i64, _>("id")) else {
        return Ok(None);
    };
    let mut records = Vec::new();
    for row in &rows {
        records.extend(decode_row(row)?);
    }
    Ok(Some((last_id, records)))
}

/// Deletes what [`batches_before`] returned.
///
/// # Errors
///
/// The database's error.
pub(super) async fn delete_batches_through(
    transaction: &mut crate::database::Transaction,
    last_id: i64,
    cutoff_us: i64,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM invocation_batches WHERE id <= $1 AND last_started_at_us < $2")
        .bind(last_id)
        .bind(cutoff_us)
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(request_id: &str, function: &str, started_at_us: i64) -> InvocationRecord {
        InvocationRecord {
            request_id: Arc::from(request_id),
            function: Arc::from(function),
            version: 3,
            trigger: TriggerKind::Event,
            started_at: DateTime::from_timestamp_micros(started_at_us).unwrap(),
            duration_us: 1_234,
            init_duration_us: Some(56),
            billed_ms: 2,
            memory_mb: 256,
            peak_memory_bytes: 1 << 20,
            cold_start: true,
            outcome: Outcome::Timeout,
            bytes_in: 7,
            bytes_out: u64::MAX,
        }
    }

    fn encoded(records: &[InvocationRecord]) -> Batch {
        let mut batch = Batch::default();
        for record in records {
            batch.push(record);
        }
        batch
    }

    fn functions_json(batch: &Batch) -> String {
        batch.functions_json().unwrap()
    }

    #[test]
    fn a_batch_decodes_to_the_records_it_was_encoded_from() {
        let mut records = vec![
            record("a", "hello", 1_700_000_000_000_000),
            record("0123456789abcdef0123456789abcdef", "echo", -5),
            record("0123456789ABCDEF0123456789ABCDEF", "hello", 0),
        ];
        records[1].outcome = Outcome::Ok;
        records[1].trigger = TriggerKind::Http;
        records[1].init_duration_us = None;
        let batch = encoded(&records);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.first_started_at_us, -5);
        assert_eq!(batch.last_started_at_us, 1_700_000_000_000_000);
        assert_eq!(functions_json(&batch), r#"["hello","echo"]"#);
        let decoded = decode(FORMAT, &functions_json(&batch), &batch.data).unwrap();
        assert_eq!(decoded, records);
    }

    #[test]
    fn broken_and_unknown_rows_are_errors_not_panics() {
        let batch = encoded(&[record("a", "f", 0)]);
        let functions = functions_json(&batch);
        for cut in 1..batch.data.len() {
            assert!(
                decode(FORMAT, &functions, &batch.data[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let cases = [
            (FORMAT + 1, functions.as_str(), "format 3 is unknown"),
            // Older rows are rewritten at start-up; never read here.
            (1, functions.as_str(), "format 1 is unknown"),
            (FORMAT, "[]", "does not list"),
            (FORMAT, "not json", "malformed function list"),
        ];
        for (format, functions, expected) in cases {
            let error = format!("{:#}", decode(format, functions, &batch.data).unwrap_err());
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn kumo_request_ids_are_stored_as_sequence_steps_and_come_back_exactly() {
        let kumo_id = |prefix: u64, sequence: u64| crate::request_id::format(prefix, sequence);
        let ids: Vec<Arc<str>> = vec![
            kumo_id(7, 100),
            kumo_id(7, 101),
            // Out of order (invocations end in any order), then ids that
            // are not Kumo's, then another process's, then back.
            kumo_id(7, 99),
            Arc::from("evt-42"),
            Arc::from("0123456789ABCDEF0123456789ABCDEF"),
            kumo_id(8, 5),
            kumo_id(7, 102),
            kumo_id(7, u64::MAX),
            kumo_id(7, 0),
        ];
        let records: Vec<InvocationRecord> = ids
            .iter()
            .enumerate()
            .map(|(index, id)| record(id, "f", index as i64))
            .collect();
        let batch = encoded(&records);
        let decoded = decode(FORMAT, &functions_json(&batch), &batch.data).unwrap();
        assert_eq!(decoded, records);
        assert_eq!(batch.records().unwrap(), records);

        // A run of one process's ids costs a byte or two each, not the 33
        // of the same ids as text.
        let run = |id: &dyn Fn(u64) -> Arc<str>| -> usize {
            let records: Vec<InvocationRecord> = (0..1_000)
                .map(|sequence| record(&id(1_000 + sequence), "f", sequence as i64))
                .collect();
            encoded(&records).data.len() / records.len()
        };
        let packed = run(&|sequence| kumo_id(u64::MAX / 3, sequence));
        let as_text = run(&|sequence| {
            let id = kumo_id(u64::MAX / 3, sequence);
            Arc::from(format!("x{}", &id[1..]))
        });
        assert!(
            packed + 31 <= as_text,
            "{packed} bytes a record packed, {as_text} as text"
        );
    }

    #[test]
    fn hand_encoding_is_postcards() {
        let ids = [
            StoredRequestId::Next(0),
            StoredRequestId::Next(1),
            StoredRequestId::Next(-1),
            StoredRequestId::Next(i64::MAX),
            StoredRequestId::Next(i64::MIN),
            StoredRequestId::Kumo {
                prefix: 0,
                sequence: 0x7f,
            },
            StoredRequestId::Kumo {
                prefix: u64::MAX,
                sequence: 0x80,
            },
            StoredRequestId::Text(""),
            StoredRequestId::Text("r1"),
            StoredRequestId::Text(&"é".repeat(100)),
        ];
        let values = [
            0,
            1,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        for (case, id) in ids.into_iter().enumerate() {
            let value = values[case % values.len()];
            let other = values[(case + 3) % values.len()];
            let stored = StoredRecord {
                request_id: id,
                function: value as u32,
                version: other as u32,
                trigger: case as u8,
                started_at_delta_us: if case % 2 == 0 {
                    -(value as i64)
                } else {
                    other as i64
                },
                duration_us: value,
                init_duration_us: (case % 3 != 0).then_some(other),
                billed_ms: other,
                memory_mb: value,
                peak_memory_bytes: u64::MAX - value,
                cold_start: case % 2 == 1,
                outcome: 255 - case as u8,
                bytes_in: other,
                bytes_out: value,
            };
            let mut hand = vec![7];
            stored.encode_onto(&mut hand);
            assert_eq!(
                hand[1..],
                postcard::to_allocvec(&stored).unwrap(),
                "case {case}"
            );
        }
    }

    #[test]
    fn a_row_whose_first_kumo_id_is_relative_is_an_error() {
        let stored = StoredRecord::of(&record("x", "f", 0), StoredRequestId::Next(1), 0, 0);
        let data = postcard::to_allocvec(&stored).unwrap();
        let error = format!("{:#}", decode(FORMAT, r#"["f"]"#, &data).unwrap_err());
        assert!(error.contains("is relative"), "{error}");
    }

    #[tokio::test]
    async fn newest_records_come_newest_first_across_batches() {
        crate::database::testing::each_backend(
            "newest_records_come_newest_first_across_batches",
            async |database| newest_first(&database).await,
        )
        .await;
    }

    async fn newest_first(database: &Database) {
        let database = database.clone();
        // Batches overlap in start time: a long invocation ends in a later
        // batch than a short one that started after it.
        write_batch(&database, &[record("1", "f", 10), record("4", "g", 40)])
            .await
            .unwrap();
        write_batch(&database, &[record("2", "f", 20), record("3", "f", 30)])
            .await
            .unwrap();
        write_batch(&database, &[record("0", "f", 5)])
            .await
            .unwrap();
        let ids = |records: Vec<InvocationRecord>| -> Vec<String> {
            records.iter().map(|r| r.request_id.to_string()).collect()
        };
        type Case = (Option<&'static str>, usize, &'static [&'static str]);
        let cases: &[Case] = &[
            (None, 10, &["4", "3", "2", "1", "0"]),
            (None, 2, &["4", "3"]),
            (Some("f"), 3, &["3", "2", "1"]),
            (Some("g"), 10, &["4"]),
            (Some("h"), 10, &[]),
            (None, 0, &[]),
        ];
        for (function, limit, expected) in cases {
            let got = ids(newest_records(&database, *function, *limit).await.unwrap());
            assert_eq!(got, *expected, "{function:?} limit {limit}");
        }
        let between = ids(records_between(&database, 10, 40, Some("f")).await.unwrap());
        let mut between = between;
        between.sort();
        assert_eq!(between, ["1", "2", "3"]);
    }
}
