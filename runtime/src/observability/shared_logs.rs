//! Guest log lines shared by the nodes of a cluster: on PostgreSQL each
//! node also writes the guest lines it sees (stdout, stderr, failure; not
//! `REPORT` lines, which come from the shared invocation records) to the
//! `guest_log_lines` table (`migrations/postgres/0007_guest_log_lines.sql`),
//! so a function's log read through any node shows every node's lines.
//! SQLite serves one node and keeps its lines in memory only
//! ([`super::GuestLogStore`]).
//!
//! The invocation path never waits on the database: [`SharedLogs::push`]
//! appends a line to a bounded buffer under a mutex held for that push
//! only. A writer task takes the buffer every [`WRITE_INTERVAL`] and
//! writes it in multi-row inserts. While the database refuses them the
//! lines wait in the buffer; past [`MAX_UNWRITTEN_LINES`] the oldest are
//! dropped, counted, and logged at most once per [`PROBLEM_LOG_INTERVAL`].
//! Every [`PRUNE_INTERVAL`] the task deletes all but the newest
//! [`LINES_PER_FUNCTION`] lines of each function (by line time), the bound
//! the in-memory store keeps too.
//!
//! Reads: [`SharedLogs::since`] (a log's history) and [`PolledLog`] (a
//! followed log, which polls the table every [`FOLLOW_POLL_INTERVAL`] for
//! the lines written in the last [`LATE_WINDOW_SECONDS`] by the database's
//! clock, and skips those it already sent).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::Row;
use tokio::sync::oneshot;

use super::logs::{LINES_PER_FUNCTION, LogLevel, LogLine, LogStream};
use crate::database::Database;

/// The longest a line waits in the buffer before it is written.
pub(crate) const WRITE_INTERVAL: Duration = Duration::from_millis(100);

/// Lines the buffer holds while the database is slow or away; past it the
/// oldest are dropped.
pub(crate) const MAX_UNWRITTEN_LINES: usize = 65_536;

/// How often the table is pruned to [`LINES_PER_FUNCTION`] per function.
pub(crate) const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// How often a followed log reads the table.
pub(crate) const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A followed log reads the lines written this many seconds back, so a
/// write that commits a little after another node's later one is not
/// missed.
pub(crate) const LATE_WINDOW_SECONDS: i64 = 5;

/// At most one log line about failed writes or dropped lines per this long.
pub(crate) const PROBLEM_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Lines per insert statement (six parameters each).
const LINES_PER_INSERT: usize = 1_000;

/// Most lines one poll of a followed log reads.
const POLL_LIMIT: i64 = 10_000;

/// The handle the log store pushes to and the API reads through. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub(crate) struct SharedLogs {
    shared: Arc<Buffer>,
    database: Database,
}

/// The lines not written yet, and counts a reader waits on.
#[derive(Debug, Default)]
struct Buffer {
    unwritten: Mutex<VecDeque<LogLine>>,
    capacity: usize,
    /// Lines ever pushed (changed under the `unwritten` lock).
    pushed: AtomicU64,
    /// Of those, lines written or dropped.
    settled: AtomicU64,
    settled_changed: tokio::sync::Notify,
    dropped: AtomicU64,
}

impl Buffer {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<LogLine>> {
        self.unwritten
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: LogLine) {
        let mut unwritten = self.lock();
        if unwritten.len() >= self.capacity {
            unwritten.pop_front();
            self.drop_lines(1);
        }
        unwritten.push_back(line);
        self.pushed.fetch_add(1, Ordering::Relaxed);
    }

    fn take(&self) -> Vec<LogLine> {
        self.lock().drain(..).collect()
    }

    /// Puts back lines the database refused, before the ones pushed since,
    /// dropping the oldest past the capacity.
    fn put_back(&self, lines: Vec<LogLine>) {
        let mut unwritten = self.lock();
        let room = self.capacity.saturating_sub(unwritten.len());
        let skip = lines.len().saturating_sub(room);
        self.drop_lines(skip as u64);
        for line in lines.into_iter().skip(skip).rev() {
            unwritten.push_front(line);
        }
    }

    fn drop_lines(&self, count: u64) {
        if count > 0 {
            self.dropped.fetch_add(count, Ordering::Relaxed);
            self.settle(count);
        }
    }

    fn settle(&self, count: u64) {
        self.settled.fetch_add(count, Ordering::Release);
        self.settled_changed.notify_waiters();
    }
}

/// The writer task; [`SharedLogsTask::shutdown`] writes what is left.
pub(crate) struct SharedLogsTask {
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl SharedLogsTask {
    /// Stops the writer after one last write of the buffered lines.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.handle.await {
            tracing::error!(%error, "the guest log writer failed");
        }
    }
}

impl SharedLogs {
    /// Starts the writer task over `database` (PostgreSQL).
    pub(crate) fn start(database: Database) -> (Self, SharedLogsTask) {
        let logs = Self {
            shared: Arc::new(Buffer::with_capacity(MAX_UNWRITTEN_LINES)),
            database,
        };
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(write_until_stopped(logs.clone(), stopped));
        (logs, SharedLogsTask { stop, handle })
    }

    /// Queues a guest line for the table; never waits on the database.
    pub(crate) fn push(&self, line: LogLine) {
        self.shared.push(line);
    }

    /// Waits (at most `wait`) until the lines pushed before the call are
    /// written or dropped.
    pub(crate) async fn settled(&self, wait: Duration) {
        let target = self.shared.pushed.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.shared.settled_changed.notified();
            if self.shared.settled.load(Ordering::Acquire) >= target {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }

    /// The function's stored lines at or after `since` (all when `None`),
    /// oldest first, at most the last `limit`, with their row ids.
    ///
    /// # Errors
    ///
    /// The database's error.
    pub(crate) async fn since(
        &self,
        function: &str,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> sqlx::Result<Vec<(i64, LogLine)>> {
        let since_us = since.map_or(i64::MIN, |since| since.timestamp_micros());
        let rows = sqlx::query(
            "SELECT id, time_us, request_id, stream, level, text FROM guest_log_lines \
             WHERE function = $1 AND time_us >= $2 \
             ORDER BY time_us DESC, id DESC LIMIT $3",
        )
        .bind(function)
        .bind(since_us)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.database)
        .await?;
        let mut lines = decode_rows(function, &rows)?;
        lines.reverse();
        Ok(lines)
    }

    /// Starts following `function`'s lines: the lines written in the last
    /// [`LATE_WINDOW_SECONDS`] count as sent (read the history after this,
    /// and pass its ids to [`PolledLog::sent`]).
    ///
    /// # Errors
    ///
    /// The database's error.
    pub(crate) async fn follow(&self, function: &str) -> sqlx::Result<PolledLog> {
        let mut polled = PolledLog {
            logs: self.clone(),
            function: function.to_string(),
            sent: HashSet::new(),
        };
        let recent = polled.recent().await?;
        polled.sent(recent.iter().map(|(id, _)| *id));
        Ok(polled)
    }

    async fn write(&self, lines: &[LogLine]) -> sqlx::Result<()> {
        // `$N` placeholders written out: sqlx's query builder writes `?`
        // for the `Any` driver, which PostgreSQL refuses.
        let mut sql = String::from(
            "INSERT INTO guest_log_lines (function, time_us, request_id, stream, level, text) VALUES ",
        );
        for index in 0..lines.len() {
            let first = index * 6;
            if index > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${})",
                first + 1,
                first + 2,
                first + 3,
                first + 4,
                first + 5,
                first + 6
            ));
        }
        // Only placeholders are written into the text; values are bound.
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for line in lines {
            insert = insert
                .bind(line.function.as_str())
                .bind(line.time.timestamp_micros())
                .bind(line.request_id.as_str())
                .bind(line.stream.as_str())
                .bind(line.level.as_str())
                .bind(line.text.as_str());
        }
        insert.execute(&self.database).await?;
        Ok(())
    }

    /// Deletes all but the newest [`LINES_PER_FUNCTION`] lines of each
    /// function; returns how many.
    async fn prune(&self) -> sqlx::Result<u64> {
        let deleted = sqlx::query(
            "DELETE FROM guest_log_lines WHERE id IN (\
               SELECT id FROM (\
                 SELECT id, row_number() OVER (\
                   PARTITION BY function ORDER BY time_us DESC, id DESC) AS position \
                 FROM guest_log_lines) AS ranked \
               WHERE position > $1)",
        )
        .bind(LINES_PER_FUNCTION as i64)
        .execute(&self.database)
        .await?;
        Ok(deleted.rows_affected())
    }
}

/// A followed log's reads of the table.
pub(crate) struct PolledLog {
    logs: SharedLogs,
    function: String,
    /// Ids sent that may still be in the window.
    sent: HashSet<i64>,
}

impl PolledLog {
    /// Marks lines as sent (the history's).
    pub(crate) fn sent(&mut self, ids: impl IntoIterator<Item = i64>) {
        self.sent.extend(ids);
    }

    /// The lines written since the last poll, in line time order.
    ///
    /// # Errors
    ///
    /// The database's error.
    pub(crate) async fn poll(&mut self) -> sqlx::Result<Vec<LogLine>> {
        let recent = self.recent().await?;
        let mut still_recent = HashSet::with_capacity(recent.len());
        let mut new = Vec::new();
        for (id, line) in recent {
            still_recent.insert(id);
            if !self.sent.contains(&id) {
                new.push(line);
            }
        }
        // An id out of the window never comes back.
        self.sent = still_recent;
        Ok(new)
    }

    async fn recent(&self) -> sqlx::Result<Vec<(i64, LogLine)>> {
        let rows = sqlx::query(
            "SELECT id, time_us, request_id, stream, level, text FROM guest_log_lines \
             WHERE function = $1 AND stored_at >= now() - make_interval(secs => $2::float8) \
             ORDER BY time_us, id LIMIT $3",
        )
        .bind(self.function.as_str())
        .bind(LATE_WINDOW_SECONDS)
        .bind(POLL_LIMIT)
        .fetch_all(&self.logs.database)
        .await?;
        decode_rows(&self.function, &rows)
    }
}

fn decode_rows(function: &str, rows: &[sqlx::any::AnyRow]) -> sqlx::Result<Vec<(i64, LogLine)>> {
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        let stream: String = row.try_get("stream")?;
        let level: String = row.try_get("level")?;
        let (Some(stream), Some(level)) = (LogStream::parse(&stream), LogLevel::parse(&level))
        else {
            continue;
        };
        let time_us: i64 = row.try_get("time_us")?;
        lines.push((
            row.try_get("id")?,
            LogLine {
                time: DateTime::from_timestamp_micros(time_us).unwrap_or_default(),
                function: function.to_string(),
                request_id: row.try_get("request_id")?,
                stream,
                level,
                text: row.try_get("text")?,
            },
        ));
    }
    Ok(lines)
}

/// What the writer task logs at most once per [`PROBLEM_LOG_INTERVAL`].
#[derive(Default)]
struct Problems {
    last_logged: Option<Instant>,
    dropped_logged: u64,
}

impl Problems {
    fn may_log(&mut self) -> bool {
        let now = Instant::now();
        let due = self
            .last_logged
            .is_none_or(|last| now.duration_since(last) >= PROBLEM_LOG_INTERVAL);
        if due {
            self.last_logged = Some(now);
        }
        due
    }
}

async fn write_until_stopped(logs: SharedLogs, mut stopped: oneshot::Receiver<()>) {
    let mut writes = tokio::time::interval(WRITE_INTERVAL);
    writes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prunes = tokio::time::interval(PRUNE_INTERVAL);
    prunes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut problems = Problems::default();
    loop {
        tokio::select! {
            _ = &mut stopped => {
                write_buffered(&logs, &mut problems).await;
                return;
            }
            _ = writes.tick() => write_buffered(&logs, &mut problems).await,
            _ = prunes.tick() => match logs.prune().await {
                Ok(deleted) => tracing::debug!(deleted, "guest log lines pruned"),
                // Two nodes pruning at once may deadlock; one tries again later.
                Err(error) => tracing::debug!(%error, "cannot prune guest log lines"),
            },
        }
    }
}

/// Writes the buffered lines; what the database refuses goes back.
async fn write_buffered(logs: &SharedLogs, problems: &mut Problems) {
    let mut lines = logs.shared.take();
    while !lines.is_empty() {
        let rest = lines.split_off(lines.len().min(LINES_PER_INSERT));
        match logs.write(&lines).await {
            Ok(()) => logs.shared.settle(lines.len() as u64),
            Err(error) => {
                if problems.may_log() {
                    tracing::warn!(
                        %error,
                        waiting = lines.len() + rest.len(),
                        "cannot write guest log lines to the database; they wait, the oldest dropped past {MAX_UNWRITTEN_LINES}"
                    );
                }
                lines.extend(rest);
                logs.shared.put_back(lines);
                break;
            }
        }
        lines = rest;
    }
    let dropped = logs.shared.dropped.load(Ordering::Relaxed);
    if dropped > problems.dropped_logged && problems.may_log() {
        tracing::warn!(
            dropped = dropped - problems.dropped_logged,
            total_dropped = dropped,
            "guest log lines dropped: the database did not take them in time"
        );
        problems.dropped_logged = dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(number: i64) -> LogLine {
        LogLine {
            time: DateTime::from_timestamp(number, 0).unwrap(),
            function: "f".into(),
            request_id: format!("r{number}"),
            stream: LogStream::Stdout,
            level: LogLevel::Info,
            text: format!("l{number}"),
        }
    }

    fn texts(buffer: &Buffer) -> Vec<String> {
        buffer.lock().iter().map(|line| line.text.clone()).collect()
    }

    #[test]
    fn a_full_buffer_drops_its_oldest_lines_and_counts_them() {
        let buffer = Buffer::with_capacity(3);
        for number in 1..=5 {
            buffer.push(line(number));
        }
        assert_eq!(texts(&buffer), ["l3", "l4", "l5"]);
        assert_eq!(buffer.dropped.load(Ordering::Relaxed), 2);
        // Refused lines go back before newer ones, the oldest dropped past
        // the capacity.
        let refused = buffer.take();
        buffer.push(line(6));
        buffer.put_back(refused);
        assert_eq!(texts(&buffer), ["l4", "l5", "l6"]);
        assert_eq!(buffer.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(buffer.pushed.load(Ordering::Relaxed), 6);
        assert_eq!(buffer.settled.load(Ordering::Relaxed), 3);
    }
}
