//! Guest logs: per function, the last [`LINES_PER_FUNCTION`] lines its
//! instances wrote on stdout/stderr, each with its time and request id, in
//! memory (a restart forgets them; the process log keeps them too, under the
//! `kumo::guest` target), and the one line of each failed invocation that
//! says why (stream [`LogStream::Failure`]; a Rust panic's report is in it
//! rather than on stderr).
//!
//! Fed by the engine's [`GuestLogSink`] (see [`GuestLogStore::sink`]); read
//! with [`GuestLogStore::since`] and followed live with
//! [`GuestLogStore::follow`] (a `tokio::sync::broadcast` receiver; a
//! follower that falls more than [`FOLLOW_BUFFER`] lines behind is told how
//! many it missed, by broadcast's `Lagged` error). [`Follower`] turns such a
//! receiver and the history read after subscribing into one stream without
//! repeats.
//!
//! A function's log also shows the `REPORT` line of each invocation, as
//! Lambda's does (stream [`LogStream::Report`]). Those are not kept here:
//! metering makes them from the stored invocation records when the log is
//! read, and sends them to followers ([`GuestLogStore::publish`]) as it
//! stores them, so an invocation spends nothing on its REPORT line, and the
//! writer formats lines only for the logs someone follows.
//!
//! On PostgreSQL the guest lines are also written to a table every node
//! reads ([`super::shared_logs`]); the API reads a function's log there.
//!
//! [`LogLine`] is the one shape of a log line, from the sink to the API's
//! answer and the CLI that reads it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::shared_logs::SharedLogs;
use crate::engine::{GuestLogSink, LogSource};

/// Lines kept per function.
pub(crate) const LINES_PER_FUNCTION: usize = 10_000;

/// Lines a follower may fall behind before it misses some.
pub(crate) const FOLLOW_BUFFER: usize = 1_024;

/// One line of a function's log: written by an instance on stdout or
/// stderr, the line saying why an invocation failed, or the `REPORT` line
/// Kumo adds after each invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct LogLine {
    /// When the host received it.
    #[schema(value_type = String, format = DateTime)]
    pub(crate) time: DateTime<Utc>,
    /// Whose log it is in. Not on the wire: an answer is one function's
    /// log (empty in a line read back from the API).
    #[serde(skip)]
    pub(crate) function: String,
    /// The request the instance was serving (empty during a pre-warm).
    pub(crate) request_id: String,
    /// Which stream it came from.
    pub(crate) stream: LogStream,
    /// From a leading level word (`info` for a `REPORT` line or none;
    /// `error` for a failure line).
    pub(crate) level: LogLevel,
    /// The text, without its level word and newline.
    pub(crate) text: String,
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogStream {
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error.
    Stderr,
    /// Why an invocation failed (a trap with the guest's panic message, a
    /// timeout, a memory limit, a refusal), written by Kumo, one line per
    /// failed invocation.
    Failure,
    /// A `REPORT` line, made by Kumo from an invocation record.
    Report,
}

impl LogStream {
    /// `stdout`, `stderr`, `failure` or `report`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::Failure => "failure",
            LogStream::Report => "report",
        }
    }

    /// The stream [`LogStream::as_str`] names.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        [Self::Stdout, Self::Stderr, Self::Failure, Self::Report]
            .into_iter()
            .find(|stream| stream.as_str() == text)
    }
}

impl std::fmt::Display for LogStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl From<LogSource> for LogStream {
    fn from(source: LogSource) -> Self {
        match source {
            LogSource::Stdout => LogStream::Stdout,
            LogSource::Stderr => LogStream::Stderr,
            LogSource::Failure => LogStream::Failure,
        }
    }
}

/// A log line's level (`trace` lines count as `debug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogLevel {
    /// A line starting with `debug` (or `trace`).
    Debug,
    /// A line starting with `info`, or with no level word.
    Info,
    /// A line starting with `warn`.
    Warn,
    /// A line starting with `error`.
    Error,
}

impl LogLevel {
    /// `debug`, `info`, `warn` or `error`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// The level [`LogLevel::as_str`] names.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        [Self::Debug, Self::Info, Self::Warn, Self::Error]
            .into_iter()
            .find(|level| level.as_str() == text)
    }
}

impl From<tracing::Level> for LogLevel {
    fn from(level: tracing::Level) -> Self {
        match level {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::DEBUG | tracing::Level::TRACE => LogLevel::Debug,
            tracing::Level::INFO => LogLevel::Info,
        }
    }
}

/// The per-function line buffers. Cheap to clone; clones share the store.
#[derive(Clone, Default, Debug)]
pub(crate) struct GuestLogStore {
    inner: Arc<Mutex<HashMap<String, FunctionLines>>>,
    capacity: Option<usize>,
    /// On PostgreSQL, where guest lines are also written for every node
    /// to read (set once, when the database is open).
    shared: Arc<OnceLock<SharedLogs>>,
}

#[derive(Debug)]
struct FunctionLines {
    lines: VecDeque<LogLine>,
    followers: broadcast::Sender<LogLine>,
}

impl FunctionLines {
    fn new() -> Self {
        Self {
            lines: VecDeque::new(),
            followers: broadcast::channel(FOLLOW_BUFFER).0,
        }
    }
}

impl GuestLogStore {
    /// An empty store keeping [`LINES_PER_FUNCTION`] lines per function.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping `capacity` lines per function (tests).
    #[cfg(test)]
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: Some(capacity),
            ..Self::default()
        }
    }

    fn capacity(&self) -> usize {
        self.capacity.unwrap_or(LINES_PER_FUNCTION)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, FunctionLines>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The engine sink that feeds this store.
    pub(crate) fn sink(&self) -> GuestLogSink {
        let store = self.clone();
        GuestLogSink::new(move |function, request_id, source, level, text| {
            store.push(LogLine {
                time: Utc::now(),
                function: function.to_string(),
                request_id: request_id.to_string(),
                stream: source.into(),
                level: level.into(),
                text: text.to_string(),
            });
        })
    }

    /// From now on, also writes guest lines to the cluster's shared table
    /// (once; a second call is ignored).
    pub(crate) fn share(&self, shared: SharedLogs) {
        let _ = self.shared.set(shared);
    }

    /// The cluster's shared lines, on PostgreSQL.
    pub(crate) fn shared(&self) -> Option<&SharedLogs> {
        self.shared.get()
    }

    /// Adds a line, dropping the function's oldest past the capacity, and
    /// sends it to the function's followers (and, on PostgreSQL, queues it
    /// for the shared table).
    pub(crate) fn push(&self, line: LogLine) {
        if let Some(shared) = self.shared.get()
            && line.stream != LogStream::Report
        {
            shared.push(line.clone());
        }
        let capacity = self.capacity();
        let mut functions = self.lock();
        let lines = functions
            .entry(line.function.clone())
            .or_insert_with(FunctionLines::new);
        // No follower is not an error.
        let _ = lines.followers.send(line.clone());
        if lines.lines.len() >= capacity {
            lines.lines.pop_front();
        }
        lines.lines.push_back(line);
    }

    /// The function's stored lines at or after `since` (all when `None`),
    /// oldest first, at most the last `limit`.
    pub(crate) fn since(
        &self,
        function: &str,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Vec<LogLine> {
        let functions = self.lock();
        let Some(lines) = functions.get(function) else {
            return Vec::new();
        };
        let start = match since {
            // Lines are appended in time order.
            Some(since) => lines.lines.partition_point(|line| line.time < since),
            None => 0,
        };
        let start = start.max(lines.lines.len().saturating_sub(limit));
        lines.lines.range(start..).cloned().collect()
    }

    /// Sends `line` to its function's followers without storing it (a
    /// `REPORT` line, which is read back from the invocation records).
    pub(crate) fn publish(&self, line: LogLine) {
        if let Some(lines) = self.lock().get(&line.function) {
            // No follower is not an error.
            let _ = lines.followers.send(line);
        }
    }

    /// Whether anyone follows `function`'s log right now.
    pub(crate) fn is_followed(&self, function: &str) -> bool {
        self.lock()
            .get(function)
            .is_some_and(|lines| lines.followers.receiver_count() > 0)
    }

    /// A receiver of the function's lines from now on. Read [`since`]
    /// after subscribing to get the history without a gap (a line may then
    /// come twice: compare times and request ids).
    ///
    /// [`since`]: GuestLogStore::since
    pub(crate) fn follow(&self, function: &str) -> broadcast::Receiver<LogLine> {
        self.lock()
            .entry(function.to_string())
            .or_insert_with(FunctionLines::new)
            .followers
            .subscribe()
    }
}

/// A followed log: lines from a receiver subscribed before `history` was
/// read, without the ones `history` already holds.
///
/// A line pushed between subscribing and reading the history reaches both;
/// only a prefix of the live lines of each kind (guest output, `REPORT`
/// lines) can repeat a stored one, so each kind stops being compared at its
/// first new line.
pub(crate) struct Follower {
    history: Vec<LogLine>,
    /// Whether live guest lines, and live `REPORT` lines, may still repeat
    /// stored ones.
    deduplicating: [bool; 2],
    receiver: broadcast::Receiver<LogLine>,
}

/// What a follower reads next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Followed {
    Line(LogLine),
    /// Lines skipped because the follower read too slowly.
    Missed(u64),
}

impl Follower {
    /// Follows `receiver`, which was subscribed before `history` was read.
    pub(crate) fn new(receiver: broadcast::Receiver<LogLine>, history: Vec<LogLine>) -> Self {
        Self {
            history,
            deduplicating: [true, true],
            receiver,
        }
    }

    /// The next line not already in the history; `None` once the log is
    /// gone. Cancel-safe: a line is taken from the receiver only when it is
    /// returned or skipped.
    pub(crate) async fn next(&mut self) -> Option<Followed> {
        loop {
            match self.receiver.recv().await {
                Ok(line) => {
                    let kind = usize::from(line.stream == LogStream::Report);
                    if self.deduplicating[kind] && self.history.contains(&line) {
                        continue;
                    }
                    self.deduplicating[kind] = false;
                    if self.deduplicating == [false, false] {
                        self.history = Vec::new();
                    }
                    return Some(Followed::Line(line));
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.deduplicating = [false, false];
                    self.history = Vec::new();
                    return Some(Followed::Missed(missed));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(function: &str, seconds: i64, text: &str) -> LogLine {
        LogLine {
            time: DateTime::from_timestamp(seconds, 0).unwrap(),
            function: function.into(),
            request_id: format!("r{seconds}"),
            stream: LogStream::Stdout,
            level: LogLevel::Info,
            text: text.into(),
        }
    }

    #[test]
    fn keeps_the_last_lines_per_function_and_filters_by_time() {
        let store = GuestLogStore::with_capacity(3);
        for second in 1..=5 {
            store.push(line("a", second, &format!("a{second}")));
        }
        store.push(line("b", 10, "b10"));
        let texts = |lines: Vec<LogLine>| lines.into_iter().map(|l| l.text).collect::<Vec<_>>();
        let at = |seconds| Some(DateTime::from_timestamp(seconds, 0).unwrap());
        let cases = [
            ("a", None, 100, vec!["a3", "a4", "a5"]),
            ("a", at(4), 100, vec!["a4", "a5"]),
            ("a", at(5), 100, vec!["a5"]),
            ("a", at(6), 100, vec![]),
            ("a", at(0), 100, vec!["a3", "a4", "a5"]),
            ("a", None, 2, vec!["a4", "a5"]),
            ("a", None, 0, vec![]),
            ("b", None, 100, vec!["b10"]),
            ("c", None, 100, vec![]),
        ];
        for (function, since, limit, expected) in cases {
            assert_eq!(
                texts(store.since(function, since, limit)),
                expected,
                "{function} {since:?} {limit}"
            );
        }
    }

    #[tokio::test]
    async fn followers_get_new_lines_of_their_function_only() {
        let store = GuestLogStore::new();
        store.push(line("a", 1, "before"));
        let mut follower = store.follow("a");
        store.push(line("b", 2, "other"));
        store.push(line("a", 3, "after"));
        assert_eq!(follower.recv().await.unwrap().text, "after");
        assert!(follower.try_recv().is_err());
    }

    #[test]
    fn the_engine_sink_stores_lines_with_their_request() {
        let store = GuestLogStore::new();
        let sink = store.sink();
        let before = Utc::now();
        sink_call(&sink, "f", "req-1", "hello");
        let lines = store.since("f", Some(before), 10);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (
                lines[0].request_id.as_str(),
                lines[0].text.as_str(),
                lines[0].level
            ),
            ("req-1", "hello", LogLevel::Warn)
        );
        assert_eq!(lines[0].stream, LogStream::Stderr);
    }

    fn sink_call(sink: &GuestLogSink, function: &str, request_id: &str, text: &str) {
        sink.call(
            &Arc::from(function),
            &Arc::from(request_id),
            LogSource::Stderr,
            tracing::Level::WARN,
            text,
        );
    }

    fn text_of(followed: Option<Followed>) -> String {
        match followed.unwrap() {
            Followed::Line(line) => line.text,
            Followed::Missed(missed) => format!("missed {missed}"),
        }
    }

    #[tokio::test]
    async fn a_follower_skips_the_lines_its_history_already_holds() {
        let store = GuestLogStore::new();
        store.push(line("f", 1, "old"));
        let receiver = store.follow("f");
        // A line pushed between subscribing and reading the history reaches
        // the follower twice; it is returned once.
        store.push(line("f", 2, "racing"));
        // So does a REPORT line of a batch stored then (read back from the
        // records, and published by the writer).
        let racing_report = LogLine {
            stream: LogStream::Report,
            ..line("f", 2, "REPORT RequestId: r2")
        };
        store.publish(racing_report.clone());
        let mut history = store.since("f", None, 100);
        history.push(racing_report);
        let mut follower = Follower::new(receiver, history);
        // A new REPORT line before a new guest line: each kind stops
        // deduplicating at its own first new line.
        store.publish(LogLine {
            stream: LogStream::Report,
            ..line("f", 3, "REPORT RequestId: r3")
        });
        store.push(line("f", 4, "new"));
        assert_eq!(text_of(follower.next().await), "REPORT RequestId: r3");
        assert_eq!(text_of(follower.next().await), "new");
    }

    #[tokio::test]
    async fn a_follower_that_fell_behind_is_told_how_many_lines_it_missed() {
        let store = GuestLogStore::new();
        let mut follower = Follower::new(store.follow("f"), Vec::new());
        for second in 0..FOLLOW_BUFFER + 5 {
            store.push(line("f", second as i64, &format!("l{second}")));
        }
        assert_eq!(text_of(follower.next().await), "missed 5");
        assert_eq!(text_of(follower.next().await), "l5");
    }
}
