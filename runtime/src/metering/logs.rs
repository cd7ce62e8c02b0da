//! The guest logs store: per function, the last [`LINES_PER_FUNCTION`]
//! lines its instances wrote on stdout/stderr, each with its time and
//! request id, in memory (a restart forgets them; the process log keeps
//! them too, under the `kumo::guest` target).
//!
//! Fed by the engine's [`crate::engine::GuestLogSink`] (see
//! [`GuestLogStore::sink`]); read with [`GuestLogStore::since`] and followed
//! live with [`GuestLogStore::follow`] (a `tokio::sync::broadcast`
//! receiver; a follower that falls more than [`FOLLOW_BUFFER`] lines behind
//! is told how many it missed, by broadcast's `Lagged` error).
//!
//! A function's log also shows the `REPORT` line of each invocation, as
//! Lambda's does ([`report_log_line`], stream [`REPORT_STREAM`]). Those are
//! not kept here: they are made from the stored invocation records when
//! the log is read, and sent to followers by the metering writer
//! ([`GuestLogStore::publish`]) as it stores them, so an invocation spends
//! nothing on its REPORT line, and the writer formats lines only for the
//! logs someone follows.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use super::InvocationRecord;
use crate::engine::{GuestLogLine, GuestLogSink};

/// The `stream` of the `REPORT` lines in a function's log.
pub const REPORT_STREAM: &str = "report";

/// Lines kept per function.
pub const LINES_PER_FUNCTION: usize = 10_000;

/// Lines a follower may fall behind before it misses some.
pub const FOLLOW_BUFFER: usize = 1_024;

/// One stored guest output line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// When the host received it.
    pub time: DateTime<Utc>,
    /// The function.
    pub function: String,
    /// The request the instance was serving (empty during a pre-warm).
    pub request_id: String,
    /// `stdout`, `stderr`, or [`REPORT_STREAM`] for a `REPORT` line.
    pub stream: &'static str,
    /// `debug`, `info`, `warn` or `error` (from a leading level word).
    pub level: &'static str,
    /// The text, without its level word and newline.
    pub text: String,
}

/// The `REPORT` line of `record` as a line of its function's log, timed
/// at the end of its run (its start, plus init and execution time).
pub fn report_log_line(record: &InvocationRecord) -> LogLine {
    let ran_us = record.init_duration_us.unwrap_or(0) + record.duration_us;
    LogLine {
        time: record.started_at + chrono::TimeDelta::microseconds(ran_us as i64),
        function: record.function.to_string(),
        request_id: record.request_id.to_string(),
        stream: REPORT_STREAM,
        level: "info",
        text: record.report_line(),
    }
}

/// The per-function line buffers. Cheap to clone; clones share the store.
#[derive(Clone, Default, Debug)]
pub struct GuestLogStore {
    inner: Arc<Mutex<HashMap<String, FunctionLines>>>,
    capacity: Option<usize>,
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
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping `capacity` lines per function (tests).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: Some(capacity),
            ..Self::default()
        }
    }

    fn capacity(&self) -> usize {
        self.capacity.unwrap_or(LINES_PER_FUNCTION)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, FunctionLines>> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The engine sink that feeds this store.
    pub fn sink(&self) -> GuestLogSink {
        let store = self.clone();
        GuestLogSink::new(move |line: GuestLogLine| {
            store.push(LogLine {
                time: Utc::now(),
                function: line.function.to_string(),
                request_id: line.request_id.to_string(),
                stream: line.stream.as_str(),
                level: level_name(line.level),
                text: line.text,
            });
        })
    }

    /// Adds a line, dropping the function's oldest past the capacity, and
    /// sends it to the function's followers.
    pub fn push(&self, line: LogLine) {
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
    pub fn since(
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
    pub fn publish(&self, line: LogLine) {
        if let Some(lines) = self.lock().get(&line.function) {
            // No follower is not an error.
            let _ = lines.followers.send(line);
        }
    }

    /// Whether anyone follows `function`'s log right now.
    pub fn is_followed(&self, function: &str) -> bool {
        self.lock()
            .get(function)
            .is_some_and(|lines| lines.followers.receiver_count() > 0)
    }

    /// A receiver of the function's lines from now on. Read [`since`]
    /// after subscribing to get the history without a gap (a line may then
    /// come twice: compare times and request ids).
    ///
    /// [`since`]: GuestLogStore::since
    pub fn follow(&self, function: &str) -> broadcast::Receiver<LogLine> {
        self.lock()
            .entry(function.to_string())
            .or_insert_with(FunctionLines::new)
            .followers
            .subscribe()
    }
}

fn level_name(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warn",
        tracing::Level::DEBUG | tracing::Level::TRACE => "debug",
        tracing::Level::INFO => "info",
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
            stream: "stdout",
            level: "info",
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
            ("req-1", "hello", "warn")
        );
    }

    fn sink_call(sink: &GuestLogSink, function: &str, request_id: &str, text: &str) {
        sink.call(GuestLogLine {
            function: Arc::from(function),
            request_id: Arc::from(request_id),
            stream: crate::engine::GuestStream::Stderr,
            level: tracing::Level::WARN,
            text: text.into(),
        });
    }
}
