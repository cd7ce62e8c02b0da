//! Metering: one [`InvocationRecord`] per invocation, whatever its outcome,
//! written to SQLite off the request path, rolled up into hourly
//! aggregates after a retention period, and read back as billing reports.
//!
//! The pieces:
//! - [`Recorder`] (in `recorder`): what the pool calls. It gathers one
//!   invocation's record from the guest's end, the answer and the response
//!   body, and hands it to the [`Meter`]; a disabled recorder does nothing.
//! - [`Meter`] (in `writer`): the non-blocking `record()`, which encodes
//!   each record onto a bounded pending batch, and the writer task that
//!   stores the batch (at most [`writer::BATCH_INTERVAL`] apart), sends its
//!   `REPORT` lines to followed logs and feeds the metrics.
//! - [`store`]: how records are kept, a batch per row, encoded together.
//! - [`upgrade_records`]: the start-up step that rewrites what older
//!   releases stored into the current format.
//! - [`rollup`]: folds old records into hourly aggregates with exact sums.
//! - [`report`]: [`billing_report`] and [`recent_invocations`], reading raw
//!   records and aggregates alike.
//! - [`billing`]: the pure math (billed duration, GB-seconds, cost).
//!
//! Guest logs and metrics are [`crate::observability`]'s; metering uses
//! them, they know nothing of records. Metering never blocks or fails an
//! invocation: when the pending batch is full a record is dropped, counted
//! and logged. The engine knows nothing of it: the recorder builds each
//! record from the engine's [`crate::engine::InvocationEnd`].

pub(crate) mod billing;
mod recorder;
pub(crate) mod report;
pub(crate) mod rollup;
pub(crate) mod store;
mod upgrade;
pub(crate) mod writer;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::InvokeError;
use crate::observability::{LogLevel, LogLine, LogStream};

pub use billing::{Charge, Prices};
pub(crate) use recorder::Recorder;
pub(crate) use report::csv_field;
pub use report::{
    BillingQuery, BillingReport, BillingRow, BillingTotals, GroupBy, OutcomeCounts, billing_report,
    recent_invocations,
};
pub(crate) use upgrade::upgrade_records;
pub(crate) use writer::{Meter, MeterOptions, MeterTask};

/// What invoked a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// An HTTP request on the gateway.
    Http,
    /// An event delivery (object storage, watched folder, timer).
    Event,
    /// A direct invocation (the admin API or CLI).
    Invoke,
}

impl TriggerKind {
    /// Every kind, in a fixed order (the stored format's order).
    pub(crate) const ALL: [TriggerKind; 3] =
        [TriggerKind::Http, TriggerKind::Event, TriggerKind::Invoke];

    /// The kind's position in [`TriggerKind::ALL`].
    pub(crate) fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|&kind| kind == self)
            .expect("every kind is in ALL")
    }

    /// The stored name: `http`, `event` or `invoke`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Http => "http",
            TriggerKind::Event => "event",
            TriggerKind::Invoke => "invoke",
        }
    }

    /// The kind a stored name stands for.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// How an invocation ended, for billing and reports.
///
/// The mapping from what the engine and the pool say (see [`outcome_of`];
/// the pool's own errors are its `PoolError::outcome`):
///
/// | outcome | from |
/// | --- | --- |
/// | `ok` | a response with a status below 500 |
/// | `error` | a response with a 5xx status from the function; `FunctionFailed`, `NoResponse`, `ResponseTooLarge`, `Cancelled`, `Internal` |
/// | `trap` | `Trap` (panic, `unreachable`, stack overflow, host call refused) |
/// | `timeout` | `Timeout` |
/// | `out_of_memory` | `OutOfMemory` |
/// | `rejected` | the pool's `Overloaded` (429) and `NoCapacity` (503, the engine's `InstanceUnavailable`), `PayloadTooLarge` (413), `BadRequest` and `UnreadableBody` (400): the caller's request or the host's capacity, not the function, decided it |
///
/// When the guest's own end and the answer disagree, the guest's trap,
/// timeout or out-of-memory wins (a 200 whose body was cut off by the
/// timeout is a `timeout`), then the answer's error, then the guest's other
/// errors, then the status.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered below 500.
    Ok,
    /// A 5xx answer from the function, or a failed function.
    Error,
    /// The guest trapped.
    Trap,
    /// The guest passed its timeout.
    Timeout,
    /// The guest passed its memory limit.
    OutOfMemory,
    /// Refused before (or instead of) running the function: overloaded,
    /// no capacity, payload too large, bad request.
    Rejected,
}

impl Outcome {
    /// Every outcome, in a fixed order (the aggregate columns' order, and
    /// the stored format's).
    pub(crate) const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Trap,
        Outcome::Timeout,
        Outcome::OutOfMemory,
        Outcome::Rejected,
    ];

    /// The outcome's position in [`Outcome::ALL`].
    pub(crate) fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|&outcome| outcome == self)
            .expect("every outcome is in ALL")
    }

    /// The stored name: `ok`, `error`, `trap`, `timeout`, `out_of_memory`,
    /// `rejected`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Trap => "trap",
            Outcome::Timeout => "timeout",
            Outcome::OutOfMemory => "out_of_memory",
            Outcome::Rejected => "rejected",
        }
    }

    /// The outcome a stored name stands for.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }

    /// What the `REPORT` line of an invocation with this outcome ends with,
    /// after a tab: nothing for `ok`; Lambda's words where Lambda has the
    /// case (`Status: timeout`; `Status: error` with an `Error Type` when
    /// the runtime died or ran out of memory), and `Status: rejected` for
    /// what Lambda has no line for (a refused invocation never ran).
    pub(crate) fn report_status(self) -> Option<&'static str> {
        match self {
            Outcome::Ok => None,
            Outcome::Error => Some("Status: error"),
            Outcome::Trap => Some("Status: error\tError Type: Runtime.ExitError"),
            Outcome::Timeout => Some("Status: timeout"),
            Outcome::OutOfMemory => Some("Status: error\tError Type: Runtime.OutOfMemory"),
            Outcome::Rejected => Some("Status: rejected"),
        }
    }

    /// The outcome of an engine error, by the table above.
    pub(crate) fn of_error(error: &InvokeError) -> Self {
        match error {
            InvokeError::Trap { .. } => Outcome::Trap,
            InvokeError::Timeout { .. } => Outcome::Timeout,
            InvokeError::OutOfMemory { .. } => Outcome::OutOfMemory,
            InvokeError::PayloadTooLarge { .. }
            | InvokeError::BadRequest { .. }
            | InvokeError::UnreadableBody
            | InvokeError::InstanceUnavailable => Outcome::Rejected,
            InvokeError::FunctionFailed { .. }
            | InvokeError::NoResponse
            | InvokeError::ResponseTooLarge { .. }
            | InvokeError::Cancelled
            | InvokeError::Internal => Outcome::Error,
        }
    }
}

/// What the caller was answered, as the pool saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The function's response, with this status.
    Status(u16),
    /// An error instead of a response, with the error's outcome.
    Error(Outcome),
    /// Unknown: the caller went away before the answer was ready.
    Unknown,
}

/// The outcome of an invocation from the outcome of the guest's error
/// (`None` when it ended without one, or never ran) and the answer; see
/// [`Outcome`] for the order.
pub(crate) fn outcome_of(exit_error: Option<Outcome>, answer: Answer) -> Outcome {
    if let Some(outcome @ (Outcome::Trap | Outcome::Timeout | Outcome::OutOfMemory)) = exit_error {
        return outcome;
    }
    match answer {
        Answer::Error(outcome) => outcome,
        _ if exit_error.is_some() => exit_error.unwrap_or(Outcome::Error),
        Answer::Status(status) if status >= 500 => Outcome::Error,
        Answer::Status(_) => Outcome::Ok,
        Answer::Unknown => Outcome::Error,
    }
}

/// One invocation, as stored and reported. Times are UTC; durations are
/// whole microseconds rounded up from the measured nanoseconds, so that the
/// billed duration can be recomputed by hand from the stored values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvocationRecord {
    /// The request id (also the `x-kumo-request-id` header).
    #[schema(value_type = String)]
    pub request_id: Arc<str>,
    /// The function.
    #[schema(value_type = String)]
    pub function: Arc<str>,
    /// The function version that ran.
    pub version: u32,
    /// What invoked it.
    pub trigger: TriggerKind,
    /// When the invocation arrived at the pool.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    /// Execution time, instantiation excluded, in µs (0 when the function
    /// never ran).
    pub duration_us: u64,
    /// Instantiation time on a cold start, in µs; `None` on a warm start.
    pub init_duration_us: Option<u64>,
    /// The billed duration in ms: see [`billing::billed_ms`].
    pub billed_ms: u64,
    /// The configured memory size (the billing size), in MiB.
    pub memory_mb: u64,
    /// The instance's linear memory high-water mark, in bytes.
    pub peak_memory_bytes: u64,
    /// Whether the invocation had to create its instance first.
    pub cold_start: bool,
    /// How it ended.
    pub outcome: Outcome,
    /// Request body bytes read by the function.
    pub bytes_in: u64,
    /// Response body bytes sent to the caller.
    pub bytes_out: u64,
}

impl InvocationRecord {
    /// The peak memory in MiB, rounded up (the `Max Memory Used` figure).
    pub(crate) fn peak_memory_mb(&self) -> u64 {
        self.peak_memory_bytes.div_ceil(1 << 20)
    }

    /// The Lambda-style `REPORT` line (without a trailing newline):
    /// `REPORT RequestId: <id>\tDuration: 3.21 ms\tBilled Duration: 4 ms\t
    /// Memory Size: 128 MB\tMax Memory Used: 18 MB`, on a cold start
    /// `\tInit Duration: 1.02 ms`, and for a failed invocation its
    /// [`Outcome::report_status`] (`\tStatus: timeout`).
    pub(crate) fn report_line(&self) -> String {
        let mut line = String::with_capacity(160);
        self.push_report_line(&mut line);
        line
    }

    /// Appends [`InvocationRecord::report_line`] to `out`. It runs once
    /// per invocation, so it formats with `itoa` rather than `fmt`.
    pub(crate) fn push_report_line(&self, out: &mut String) {
        let mut number = itoa::Buffer::new();
        // "12.34" for a µs figure, in ms to two decimals (truncated).
        let mut push_ms = |out: &mut String, us: u64| {
            out.push_str(number.format(us / 1000));
            let hundredths = (us % 1000 / 10) as u8;
            out.push('.');
            out.push(char::from(b'0' + hundredths / 10));
            out.push(char::from(b'0' + hundredths % 10));
        };
        out.push_str("REPORT RequestId: ");
        out.push_str(&self.request_id);
        out.push_str("\tDuration: ");
        push_ms(out, self.duration_us);
        out.push_str(" ms\tBilled Duration: ");
        out.push_str(itoa::Buffer::new().format(self.billed_ms));
        out.push_str(" ms\tMemory Size: ");
        out.push_str(itoa::Buffer::new().format(self.memory_mb));
        out.push_str(" MB\tMax Memory Used: ");
        out.push_str(itoa::Buffer::new().format(self.peak_memory_mb()));
        out.push_str(" MB");
        if let Some(init) = self.init_duration_us {
            out.push_str("\tInit Duration: ");
            push_ms(out, init);
            out.push_str(" ms");
        }
        if let Some(status) = self.outcome.report_status() {
            out.push('\t');
            out.push_str(status);
        }
    }
}

/// The `REPORT` line of `record` as a line of its function's log, timed
/// at the end of its run (its start, plus init and execution time).
pub(crate) fn report_log_line(record: &InvocationRecord) -> LogLine {
    let ran_us = record.init_duration_us.unwrap_or(0) + record.duration_us;
    LogLine {
        time: record.started_at + chrono::TimeDelta::microseconds(ran_us as i64),
        function: record.function.to_string(),
        request_id: record.request_id.to_string(),
        stream: LogStream::Report,
        level: LogLevel::Info,
        text: record.report_line(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn engine_errors_map_to_their_outcomes() {
        let cases = [
            (
                InvokeError::Trap {
                    message: "x".into(),
                },
                Outcome::Trap,
            ),
            (
                InvokeError::Timeout {
                    timeout: Duration::from_secs(1),
                },
                Outcome::Timeout,
            ),
            (
                InvokeError::OutOfMemory { limit_mb: 1 },
                Outcome::OutOfMemory,
            ),
            (InvokeError::PayloadTooLarge { limit: 1 }, Outcome::Rejected),
            (InvokeError::UnreadableBody, Outcome::Rejected),
            (
                InvokeError::BadRequest {
                    message: "x".into(),
                },
                Outcome::Rejected,
            ),
            (InvokeError::InstanceUnavailable, Outcome::Rejected),
            (
                InvokeError::FunctionFailed {
                    message: "x".into(),
                },
                Outcome::Error,
            ),
            (InvokeError::NoResponse, Outcome::Error),
            (InvokeError::ResponseTooLarge { limit: 1 }, Outcome::Error),
            (InvokeError::Cancelled, Outcome::Error),
            (InvokeError::Internal, Outcome::Error),
        ];
        for (error, expected) in cases {
            assert_eq!(Outcome::of_error(&error), expected, "{error:?}");
        }
    }

    #[test]
    fn the_guests_end_and_the_answer_make_the_outcome() {
        use Outcome::*;
        let cases = [
            (None, Answer::Status(200), Ok),
            (None, Answer::Status(404), Ok),
            (None, Answer::Status(499), Ok),
            (None, Answer::Status(500), Error),
            (None, Answer::Status(503), Error),
            (Some(Trap), Answer::Error(Trap), Trap),
            // A 200 whose body the timeout cut off.
            (Some(Timeout), Answer::Status(200), Timeout),
            (Some(OutOfMemory), Answer::Error(OutOfMemory), OutOfMemory),
            // Overloaded: the guest never ran.
            (None, Answer::Error(Rejected), Rejected),
            // The body overflowed mid-read: the host stopped the guest.
            (Some(Error), Answer::Error(Rejected), Rejected),
            (None, Answer::Error(Error), Error),
            // Cancelled after a 200.
            (Some(Error), Answer::Status(200), Error),
            (None, Answer::Unknown, Error),
            (Some(Trap), Answer::Unknown, Trap),
            (Some(Rejected), Answer::Error(Rejected), Rejected),
        ];
        for (exit_error, answer, expected) in cases {
            assert_eq!(
                outcome_of(exit_error, answer),
                expected,
                "{exit_error:?} {answer:?}"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
        for kind in TriggerKind::ALL {
            assert_eq!(TriggerKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Outcome::parse("okay"), None);
    }

    #[test]
    fn report_lines_of_failed_invocations_end_with_their_status() {
        let line = "REPORT RequestId: abc\tDuration: 3.21 ms\tBilled Duration: 4 ms\tMemory Size: 128 MB\tMax Memory Used: 18 MB";
        let cases = [
            (Outcome::Ok, None, line.to_string()),
            (Outcome::Timeout, None, format!("{line}\tStatus: timeout")),
            (
                Outcome::Timeout,
                Some(1_020),
                format!("{line}\tInit Duration: 1.02 ms\tStatus: timeout"),
            ),
            (
                Outcome::Trap,
                None,
                format!("{line}\tStatus: error\tError Type: Runtime.ExitError"),
            ),
            (
                Outcome::OutOfMemory,
                None,
                format!("{line}\tStatus: error\tError Type: Runtime.OutOfMemory"),
            ),
            (Outcome::Error, None, format!("{line}\tStatus: error")),
            (Outcome::Rejected, None, format!("{line}\tStatus: rejected")),
        ];
        for (outcome, init_duration_us, expected) in cases {
            let record = InvocationRecord {
                outcome,
                init_duration_us,
                ..record()
            };
            assert_eq!(record.report_line(), expected, "{outcome:?}");
        }
    }

    fn record() -> InvocationRecord {
        InvocationRecord {
            request_id: "abc".into(),
            function: "hello".into(),
            version: 1,
            trigger: TriggerKind::Http,
            started_at: DateTime::from_timestamp(0, 0).unwrap(),
            duration_us: 3_217,
            init_duration_us: None,
            billed_ms: 4,
            memory_mb: 128,
            peak_memory_bytes: (17 << 20) + 1,
            cold_start: false,
            outcome: Outcome::Ok,
            bytes_in: 0,
            bytes_out: 5,
        }
    }

    #[test]
    fn report_lines_have_lambdas_format() {
        let mut record = record();
        assert_eq!(
            record.report_line(),
            "REPORT RequestId: abc\tDuration: 3.21 ms\tBilled Duration: 4 ms\tMemory Size: 128 MB\tMax Memory Used: 18 MB"
        );
        record.init_duration_us = Some(1_020);
        record.duration_us = 50;
        assert_eq!(
            record.report_line(),
            "REPORT RequestId: abc\tDuration: 0.05 ms\tBilled Duration: 4 ms\tMemory Size: 128 MB\tMax Memory Used: 18 MB\tInit Duration: 1.02 ms"
        );
        record.init_duration_us = Some(12_345_999);
        record.duration_us = 7;
        record.billed_ms = 12_346;
        assert!(record.report_line().ends_with(
            "Duration: 0.00 ms\tBilled Duration: 12346 ms\tMemory Size: 128 MB\tMax Memory Used: 18 MB\tInit Duration: 12345.99 ms"
        ));
    }
}
