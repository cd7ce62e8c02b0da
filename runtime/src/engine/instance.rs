//! What lives inside one wasmtime `Store`: the WASI and `wasi:http` contexts,
//! the memory limiter, and the guest's stdout/stderr routed to `tracing` (in
//! the invocation's scope, whose span names the function and request) and
//! to the engine's [`GuestLogSink`], when one is set, with a Rust panic's
//! report held back for the invocation's failure line ([`PanicCapture`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use kumo_protocol::log::LogLevel;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::outbound::OutboundPolicy;
use super::scope::{CurrentInvocation, InvocationScope};

/// The data of one instance's `Store`.
pub(crate) struct InstanceState {
    pub(super) current: CurrentInvocation,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    outbound: OutboundPolicy,
    pub(super) memory: MemoryLimiter,
    /// The panic report the guest's stderr is holding back, if any.
    pub(super) panic: PanicCapture,
}

impl InstanceState {
    pub(super) fn new(
        current: CurrentInvocation,
        wasi: WasiCtx,
        outbound: OutboundPolicy,
        memory_limit_bytes: usize,
        panic: PanicCapture,
    ) -> Self {
        Self {
            current,
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            outbound,
            panic,
            memory: MemoryLimiter {
                limit_bytes: memory_limit_bytes,
                peak: PeakMemory::default(),
                limit_hit: false,
            },
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Enforces `memory_mb` on the sum of an instance's linear memories and
/// remembers the peak, so a memory bomb is told apart from any other trap.
pub(super) struct MemoryLimiter {
    limit_bytes: usize,
    /// Total linear memory across the instance's memories, at its highest.
    pub(super) peak: PeakMemory,
    /// Set when a growth was refused because of the limit.
    pub(super) limit_hit: bool,
}

/// An instance's linear-memory high-water mark in bytes, readable from
/// outside the `Store` (an invocation's end reads it even when the guest's
/// task was dropped). Linear memory never shrinks, so this is also the
/// instance's memory size.
#[derive(Clone, Default)]
pub(super) struct PeakMemory(Arc<AtomicUsize>);

impl PeakMemory {
    pub(super) fn bytes(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn raise_to(&self, bytes: usize) {
        self.0.fetch_max(bytes, Ordering::Relaxed);
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.peak.bytes().saturating_sub(current) + desired;
        if total > self.limit_bytes {
            self.limit_hit = true;
            // An error (rather than `Ok(false)`) traps the guest right here:
            // most guests abort on a failed allocation anyway, and a trap
            // says plainly what happened.
            wasmtime::bail!(
                "memory limit of {} MiB exceeded (the guest asked for {} MiB)",
                self.limit_bytes >> 20,
                total.div_ceil(1 << 20)
            );
        }
        self.peak.raise_to(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million entries is far past
        // any real program and keeps a hostile guest from exhausting host
        // memory through them.
        Ok(desired <= 1_000_000)
    }
}

/// Where a line of a function's log comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogSource {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
    /// Not the guest's: Kumo's one line saying why an invocation failed
    /// ([`InvocationScope::report_failure`]).
    Failure,
}

impl LogSource {
    /// `stdout`, `stderr` or `failure`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogSource::Stdout => "stdout",
            LogSource::Stderr => "stderr",
            LogSource::Failure => "failure",
        }
    }
}

/// Where lines of a function's log go besides `tracing`: a callback set once per
/// engine ([`super::EngineOptions::guest_log_sink`]). It runs on the
/// guest's thread while the guest writes, so it must be quick and never
/// block (push to a bounded buffer, send on a channel).
///
/// It is called with the function, the request the instance was serving
/// (empty during a pre-warm), the source, the level (for guest output, the
/// level word the line started with, `info` when none; `error` for a
/// failure) and the text without its level word and newline.
#[derive(Clone)]
pub(crate) struct GuestLogSink(Arc<SinkFn>);

type SinkFn = dyn Fn(&Arc<str>, &Arc<str>, LogSource, tracing::Level, &str) + Send + Sync;

impl GuestLogSink {
    /// A sink calling `sink` with each line.
    pub(crate) fn new(
        sink: impl Fn(&Arc<str>, &Arc<str>, LogSource, tracing::Level, &str) + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(sink))
    }

    pub(crate) fn call(
        &self,
        function: &Arc<str>,
        request_id: &Arc<str>,
        source: LogSource,
        level: tracing::Level,
        text: &str,
    ) {
        (self.0)(function, request_id, source, level, text);
    }
}

impl std::fmt::Debug for GuestLogSink {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("GuestLogSink")
    }
}

/// One function's log: its name and the engine's sink. Shared (behind an
/// `Arc`) by the function, its instances' stdout and stderr, and the scope
/// of each of its invocations.
#[derive(Debug)]
pub(crate) struct FunctionLog {
    pub(super) function: Arc<str>,
    pub(super) sink: Option<GuestLogSink>,
}

impl FunctionLog {
    pub(super) fn new(function: Arc<str>, sink: Option<GuestLogSink>) -> Self {
        Self { function, sink }
    }

    /// Writes one line of guest output (its level word already split off)
    /// in `scope`: to the sink and as a `tracing` event under the
    /// `kumo::guest` target.
    fn write_guest_line(
        &self,
        scope: &InvocationScope,
        source: LogSource,
        level: tracing::Level,
        message: &str,
    ) {
        if let Some(sink) = &self.sink {
            sink.call(&self.function, &scope.request_id(), source, level, message);
        }
        let stream = source.as_str();
        scope.in_scope(|| match level {
            tracing::Level::ERROR => {
                tracing::error!(target: "kumo::guest", stream, "{message}")
            }
            tracing::Level::WARN => {
                tracing::warn!(target: "kumo::guest", stream, "{message}")
            }
            tracing::Level::DEBUG => {
                tracing::debug!(target: "kumo::guest", stream, "{message}")
            }
            _ => {
                tracing::info!(target: "kumo::guest", stream, "{message}")
            }
        });
    }

    /// Writes the lines of a panic report that was held back, as the
    /// stderr lines they were.
    fn write_held(&self, held: HeldPanic) {
        for line in &held.lines {
            let (level, message) = split_log_level(line);
            self.write_guest_line(&held.scope, LogSource::Stderr, level, message);
        }
    }

    /// Sends an invocation's failure line to the sink.
    pub(super) fn write_failure(&self, request_id: &Arc<str>, text: &str) {
        if let Some(sink) = &self.sink {
            sink.call(
                &self.function,
                request_id,
                LogSource::Failure,
                tracing::Level::ERROR,
                text,
            );
        }
    }
}

/// A guest's stdout or stderr: each complete line becomes one `tracing`
/// event (in the invocation's scope) and one call of the sink; on stderr,
/// a panic's report is held back first ([`PanicCapture`]).
pub(super) struct GuestLog {
    pub(super) log: Arc<FunctionLog>,
    pub(super) current: CurrentInvocation,
    pub(super) source: LogSource,
    /// Stderr's; `None` on stdout.
    pub(super) panic: Option<PanicCapture>,
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(GuestLogWriter {
            log: self.log.clone(),
            current: self.current.clone(),
            source: self.source,
            panic: self.panic.clone(),
            pending: Vec::new(),
            continued_level: None,
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp2 guests are served; p3's async streams are not wired.
        Box::new(tokio::io::sink())
    }
}

/// The longest line kept before it is emitted in pieces.
const MAX_LOG_LINE: usize = 16 * 1024;

struct GuestLogWriter {
    log: Arc<FunctionLog>,
    current: CurrentInvocation,
    source: LogSource,
    panic: Option<PanicCapture>,
    pending: Vec<u8>,
    /// The level of a long line already partly emitted: its later pieces
    /// keep it.
    continued_level: Option<tracing::Level>,
}

/// Splits `bytes` into pieces of at most `max` bytes.
fn pieces(bytes: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    bytes.chunks(max.max(1))
}

impl GuestLogWriter {
    /// Emits one complete line (without its newline), in pieces of at most
    /// [`MAX_LOG_LINE`] bytes.
    fn emit_line(&mut self, line: &[u8]) {
        for piece in pieces(line, MAX_LOG_LINE) {
            self.emit_piece(piece);
        }
        self.continued_level = None;
    }

    fn emit_piece(&mut self, piece: &[u8]) {
        let text = String::from_utf8_lossy(piece);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            return;
        }
        if let Some(panic) = &self.panic
            && self.continued_level.is_none()
            && panic.hold(&self.current, text)
        {
            return;
        }
        let (level, message) = match self.continued_level {
            Some(level) => (level, text),
            None => split_log_level(text),
        };
        self.continued_level = Some(level);
        self.log
            .write_guest_line(&self.current.get(), self.source, level, message);
    }
}

/// The most of a panic's report held back, in bytes; past it the report
/// ends and the rest goes to the log as it comes.
const MAX_PANIC_REPORT: usize = MAX_LOG_LINE;

/// A Rust guest's panic report on stderr, held back from the log while the
/// guest runs. Rust writes a panic as `thread '<unnamed>' panicked at
/// src/lib.rs:10:9:`, the message (one or more lines) and a `note:` line
/// on `RUST_BACKTRACE`, then aborts: the guest traps. The invocation's
/// failure line then carries the report as one line
/// ([`PanicCapture::take_message`]) instead of three lines of stderr. When
/// no trap follows (the guest wrote something that only looked like a
/// panic), the held lines go to the log as they were, in the invocation
/// that wrote them, when its run ends ([`PanicCapture::release`]) or the
/// instance is dropped.
///
/// A guest that does not panic pays one prefix comparison per stderr line
/// and one atomic load per invocation.
#[derive(Clone)]
pub(super) struct PanicCapture(Arc<CaptureShared>);

struct CaptureShared {
    log: Arc<FunctionLog>,
    /// Set while `held` has lines: read at the end of every run instead of
    /// taking the lock.
    holding: AtomicBool,
    held: Mutex<HeldPanic>,
}

#[derive(Default)]
struct HeldPanic {
    /// The invocation that wrote the lines.
    scope: InvocationScope,
    /// The report's lines, the `thread '…' panicked at …` line first.
    lines: Vec<String>,
    bytes: usize,
    /// The report ended (with its `note:` line, a backtrace, or its size).
    complete: bool,
}

impl HeldPanic {
    /// The report as one line: `panicked at src/lib.rs:10:9: <message>`,
    /// the message's own line breaks written `\n`.
    fn message(&self) -> Option<String> {
        let (header, rest) = self.lines.split_first()?;
        let at = header.find(PANICKED_AT).map_or(0, |index| index + 1);
        let mut message = header[at..].to_string();
        let mut first = true;
        for line in rest.iter().filter(|line| !is_backtrace_note(line)) {
            message.push_str(if first { " " } else { "\\n" });
            message.push_str(line);
            first = false;
        }
        Some(message)
    }
}

const PANICKED_AT: &str = " panicked at ";

/// Whether a line starts a Rust panic report: `thread 'NAME' panicked at
/// ...` (or `thread 'NAME' (ID) panicked at ...`, as recent Rust writes
/// it).
fn is_panic_header(line: &str) -> bool {
    line.starts_with("thread '") && line.contains(PANICKED_AT)
}

/// The line Rust writes after a panic's message when no backtrace is asked
/// for.
fn is_backtrace_note(line: &str) -> bool {
    line.starts_with("note: run with `RUST_BACKTRACE=")
}

impl PanicCapture {
    pub(super) fn new(log: Arc<FunctionLog>) -> Self {
        Self(Arc::new(CaptureShared {
            log,
            holding: AtomicBool::new(false),
            held: Mutex::new(HeldPanic::default()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, HeldPanic> {
        self.0.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `line` (a line of stderr) into the report when it starts or
    /// continues one; `false` when it goes to the log as usual.
    fn hold(&self, current: &CurrentInvocation, line: &str) -> bool {
        if !self.0.holding.load(Ordering::Relaxed) {
            if !is_panic_header(line) {
                return false;
            }
            let mut held = self.lock();
            held.scope = current.get();
            held.lines.push(line.to_string());
            held.bytes = line.len();
            held.complete = false;
            self.0.holding.store(true, Ordering::Relaxed);
            return true;
        }
        let mut held = self.lock();
        if held.complete {
            return false;
        }
        if line == "stack backtrace:" || held.bytes + line.len() > MAX_PANIC_REPORT {
            held.complete = true;
            return false;
        }
        held.complete = is_backtrace_note(line);
        held.bytes += line.len();
        held.lines.push(line.to_string());
        true
    }

    /// The held report as one line (see [`HeldPanic::message`]), no longer
    /// held; `None` when nothing is held.
    pub(super) fn take_message(&self) -> Option<String> {
        if !self.0.holding.load(Ordering::Relaxed) {
            return None;
        }
        let held = std::mem::take(&mut *self.lock());
        self.0.holding.store(false, Ordering::Relaxed);
        held.message()
    }

    /// Sends the held lines, if any, to the log as the stderr lines they
    /// were (the guest's run ended without the trap a panic brings).
    pub(super) fn release(&self) {
        if !self.0.holding.load(Ordering::Relaxed) {
            return;
        }
        let held = std::mem::take(&mut *self.lock());
        self.0.holding.store(false, Ordering::Relaxed);
        self.0.log.write_held(held);
    }
}

impl Drop for CaptureShared {
    fn drop(&mut self) {
        if *self.holding.get_mut() {
            let held = std::mem::take(self.held.get_mut().unwrap_or_else(PoisonError::into_inner));
            self.log.write_held(held);
        }
    }
}

/// A line that starts with a level word (`debug`, `info`, `warn`, `error`,
/// as the Rust SDK writes them) is logged at that level without the word.
pub(super) fn split_log_level(line: &str) -> (tracing::Level, &str) {
    let Some((level, rest)) = LogLevel::split_line(line) else {
        return (tracing::Level::INFO, line);
    };
    let level = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    (level, rest)
}

impl OutputStream for GuestLogWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.pending.extend_from_slice(&bytes);
        while let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=newline).collect();
            self.emit_line(&line[..line.len() - 1]);
        }
        // A line still growing past the cap goes out in capped pieces.
        while self.pending.len() > MAX_LOG_LINE {
            let piece: Vec<u8> = self.pending.drain(..MAX_LOG_LINE).collect();
            self.emit_piece(&piece);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestLogWriter {
    async fn ready(&mut self) {}
}

impl Drop for GuestLogWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.emit_line(&pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `stderr` through a stderr writer; returns the lines that
    /// reached the sink, and the capture.
    fn write_stderr(stderr: &str) -> (Arc<Mutex<Vec<String>>>, PanicCapture) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&lines);
        let sink = GuestLogSink::new(move |_, _, source, _, text| {
            assert_eq!(source, LogSource::Stderr);
            seen.lock().unwrap().push(text.to_string());
        });
        let log = Arc::new(FunctionLog::new(Arc::from("f"), Some(sink)));
        let panic = PanicCapture::new(Arc::clone(&log));
        let mut writer = GuestLogWriter {
            log,
            current: CurrentInvocation::default(),
            source: LogSource::Stderr,
            panic: Some(panic.clone()),
            pending: Vec::new(),
            continued_level: None,
        };
        writer.write(Bytes::from(stderr.to_string())).unwrap();
        drop(writer);
        (lines, panic)
    }

    #[test]
    fn a_panic_report_on_stderr_becomes_one_message() {
        let note = "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";
        let cases: [(String, &[&str], Option<&str>); 6] = [
            (
                format!(
                    "before\nthread '<unnamed>' (1) panicked at src/lib.rs:6:5:\ndeliberate panic\n{note}\nafter\n"
                ),
                &["before", "after"],
                Some("panicked at src/lib.rs:6:5: deliberate panic"),
            ),
            // Rust before 1.73: the message on the first line.
            (
                format!("thread 'main' panicked at 'boom', src/main.rs:2:5\n{note}\n"),
                &[],
                Some("panicked at 'boom', src/main.rs:2:5"),
            ),
            (
                format!(
                    "thread '<unnamed>' panicked at src/lib.rs:1:1:\nassertion `left == right` failed\n  left: 1\n right: 2\n{note}\n"
                ),
                &[],
                Some(
                    "panicked at src/lib.rs:1:1: assertion `left == right` failed\\n  left: 1\\n right: 2",
                ),
            ),
            // With RUST_BACKTRACE set in the function's environment, the
            // backtrace is ordinary output.
            (
                "thread '<unnamed>' panicked at src/lib.rs:1:1:\nboom\nstack backtrace:\n   0: <unknown>\n"
                    .to_string(),
                &["stack backtrace:", "   0: <unknown>"],
                Some("panicked at src/lib.rs:1:1: boom"),
            ),
            (
                "error no panic here\nthe thread 'x' panicked at nothing\n".to_string(),
                &["no panic here", "the thread 'x' panicked at nothing"],
                None,
            ),
            (
                format!("thread 'x' panicked at a.rs:1:1:\n{}\nlast\n", "y".repeat(MAX_PANIC_REPORT)),
                &[&"y".repeat(MAX_PANIC_REPORT), "last"],
                Some("panicked at a.rs:1:1:"),
            ),
        ];
        for (stderr, logged, message) in cases {
            let (lines, panic) = write_stderr(&stderr);
            assert_eq!(*lines.lock().unwrap(), logged, "{stderr:?}");
            assert_eq!(panic.take_message().as_deref(), message, "{stderr:?}");
            assert_eq!(panic.take_message(), None, "taken once");
        }
    }

    #[test]
    fn a_held_report_without_a_trap_goes_to_the_log_as_it_was() {
        let (lines, panic) = write_stderr("thread 'x' panicked at a.rs:1:1:\nwarn not really\n");
        assert!(lines.lock().unwrap().is_empty());
        panic.release();
        assert_eq!(
            *lines.lock().unwrap(),
            ["thread 'x' panicked at a.rs:1:1:", "not really"]
        );
        assert_eq!(panic.take_message(), None);
        // Held when the instance goes away: written then.
        let (lines, panic) = write_stderr("thread 'x' panicked at a.rs:1:1:\n");
        drop(panic);
        assert_eq!(*lines.lock().unwrap(), ["thread 'x' panicked at a.rs:1:1:"]);
    }

    #[test]
    fn log_level_words_are_recognised() {
        let cases = [
            ("info hello", tracing::Level::INFO, "hello"),
            (
                "warn disk almost full",
                tracing::Level::WARN,
                "disk almost full",
            ),
            ("error boom", tracing::Level::ERROR, "boom"),
            ("debug x=1", tracing::Level::DEBUG, "x=1"),
            (
                "plain println output",
                tracing::Level::INFO,
                "plain println output",
            ),
            (
                "warning is not a level word",
                tracing::Level::INFO,
                "warning is not a level word",
            ),
            ("", tracing::Level::INFO, ""),
        ];
        for (line, level, message) in cases {
            assert_eq!(split_log_level(line), (level, message), "line {line:?}");
        }
    }

    #[test]
    fn long_lines_are_cut_into_capped_pieces() {
        let cases = [(0, 0), (1, 1), (10, 1), (11, 2), (30, 3)];
        for (length, expected) in cases {
            let line = vec![b'x'; length];
            let split: Vec<_> = pieces(&line, 10).collect();
            assert_eq!(split.len(), expected, "length {length}");
            assert!(split.iter().all(|piece| piece.len() <= 10));
            assert_eq!(split.concat(), line);
        }
    }

    #[test]
    fn memory_limit_counts_all_memories_and_remembers_the_peak() {
        use wasmtime::ResourceLimiter;
        let mut limiter = MemoryLimiter {
            limit_bytes: 10 << 20,
            peak: PeakMemory::default(),
            limit_hit: false,
        };
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap());
        assert_eq!(limiter.peak.bytes(), 4 << 20);
        assert!(limiter.memory_growing(4 << 20, 8 << 20, None).unwrap());
        assert_eq!(limiter.peak.bytes(), 8 << 20);
        assert!(!limiter.limit_hit);
        let error = limiter.memory_growing(8 << 20, 11 << 20, None).unwrap_err();
        assert!(
            error.to_string().contains("memory limit of 10 MiB"),
            "{error}"
        );
        assert!(limiter.limit_hit);
        assert_eq!(limiter.peak.bytes(), 8 << 20);
    }
}
