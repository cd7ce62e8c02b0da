//! What lives inside one wasmtime `Store`: the WASI and `wasi:http` contexts,
//! the memory limiter, and the guest's stdout/stderr routed to `tracing` (in
//! the invocation's scope, whose span names the function and request) and
//! to the engine's [`GuestLogSink`], when one is set.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use kumo_protocol::log::LogLevel;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::outbound::OutboundPolicy;
use super::scope::CurrentInvocation;

/// The data of one instance's `Store`.
pub(crate) struct InstanceState {
    pub(super) current: CurrentInvocation,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    outbound: OutboundPolicy,
    pub(super) memory: MemoryLimiter,
}

impl InstanceState {
    pub(super) fn new(
        current: CurrentInvocation,
        wasi: WasiCtx,
        outbound: OutboundPolicy,
        memory_limit_bytes: usize,
    ) -> Self {
        Self {
            current,
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            outbound,
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

/// Which of the guest's output streams a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuestStream {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

impl GuestStream {
    /// `stdout` or `stderr`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GuestStream::Stdout => "stdout",
            GuestStream::Stderr => "stderr",
        }
    }
}

/// Where guest output lines go besides `tracing`: a callback set once per
/// engine ([`super::EngineOptions::guest_log_sink`]). It runs on the
/// guest's thread while the guest writes, so it must be quick and never
/// block (push to a bounded buffer, send on a channel).
///
/// It is called with the function, the request the instance was serving
/// (empty during a pre-warm), the stream, the level word the line started
/// with (`info` when none) and the text without its level word and newline.
#[derive(Clone)]
pub(crate) struct GuestLogSink(Arc<SinkFn>);

type SinkFn = dyn Fn(&Arc<str>, &Arc<str>, GuestStream, tracing::Level, &str) + Send + Sync;

impl GuestLogSink {
    /// A sink calling `sink` with each line.
    pub(crate) fn new(
        sink: impl Fn(&Arc<str>, &Arc<str>, GuestStream, tracing::Level, &str) + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(sink))
    }

    pub(crate) fn call(
        &self,
        function: &Arc<str>,
        request_id: &Arc<str>,
        stream: GuestStream,
        level: tracing::Level,
        text: &str,
    ) {
        (self.0)(function, request_id, stream, level, text);
    }
}

impl std::fmt::Debug for GuestLogSink {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("GuestLogSink")
    }
}

/// A guest's stdout or stderr: each complete line becomes one `tracing`
/// event (in the invocation's scope) and one call of the sink.
pub(super) struct GuestLog {
    pub(super) function: Arc<str>,
    pub(super) current: CurrentInvocation,
    pub(super) stream: GuestStream,
    pub(super) sink: Option<GuestLogSink>,
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(GuestLogWriter {
            function: self.function.clone(),
            current: self.current.clone(),
            stream: self.stream,
            sink: self.sink.clone(),
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
    function: Arc<str>,
    current: CurrentInvocation,
    stream: GuestStream,
    sink: Option<GuestLogSink>,
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
        let (level, message) = match self.continued_level {
            Some(level) => (level, text),
            None => split_log_level(text),
        };
        self.continued_level = Some(level);
        self.emit(level, message);
    }

    fn emit(&self, level: tracing::Level, message: &str) {
        let scope = self.current.get();
        if let Some(sink) = &self.sink {
            sink.call(
                &self.function,
                &scope.request_id(),
                self.stream,
                level,
                message,
            );
        }
        let stream = self.stream.as_str();
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
