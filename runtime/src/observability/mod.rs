//! What an operator watches while Kumo runs, apart from billing: the guests'
//! own output and the failure line of each failed invocation ([`logs`]: one
//! [`LogLine`] type from the engine's sink to the API's follow stream), the
//! Prometheus metrics ([`metrics`]), the guest lines every node of a
//! cluster writes to the shared database ([`shared_logs`]), and the tracing span every invocation
//! runs in ([`invocation_span`]).
//!
//! Nothing here knows about invocation records: metering uses this module
//! (to send `REPORT` lines to followers and to feed the metrics), never the
//! other way round.

pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod shared_logs;

pub(crate) use logs::{GuestLogStore, LogLevel, LogLine, LogStream};
pub(crate) use metrics::MetricsHandle;

/// The span one invocation runs in, from the pool's acquire to the end of
/// its response body: guest output and host events inside it carry its
/// function, version, request id and trigger kind without naming them.
///
/// At level `error`: a span's level only decides whether it is enabled,
/// and a span a filter disables takes its fields away from the lines inside
/// it. At `error` every filter that lets one of its lines through
/// (`KUMO_LOG=warn` included) keeps the fields.
/// Without a subscriber interested in it, it costs one check of a cached
/// interest.
pub(crate) fn invocation_span(
    function: &str,
    version: u32,
    request_id: &str,
    trigger: &'static str,
) -> tracing::Span {
    tracing::error_span!(
        "invocation",
        function = %function,
        version,
        request_id = %request_id,
        trigger = %trigger
    )
}
