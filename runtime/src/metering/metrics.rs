//! Prometheus metrics through the `metrics` crate: the names, and the
//! recorder (`metrics-exporter-prometheus` without its HTTP listener: the
//! admin API serves [`MetricsHandle::render`] on `/metrics`).
//!
//! Invocation metrics are fed by the metering writer task, per batch, so
//! the request path pays nothing for them; pool gauges by each pool's
//! maintenance tick (once a second). Without an installed recorder every
//! update is a no-op.

use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter: invocations, labels `function`, `outcome`.
pub const INVOCATIONS: &str = "kumo_invocations_total";
/// Histogram: execution duration in seconds (instantiation excluded),
/// label `function`.
pub const DURATION_SECONDS: &str = "kumo_invocation_duration_seconds";
/// Counter: cold starts, label `function`.
pub const COLD_STARTS: &str = "kumo_cold_starts_total";
/// Billed GB-seconds since start, label `function`: a running total that
/// never decreases, exported as a gauge because the `metrics` crate's
/// counters are integers.
pub const BILLED_GB_SECONDS: &str = "kumo_billed_gb_seconds";
/// Gauge: instances, labels `function`, `state` (`idle`, `busy`, `starting`).
pub const INSTANCES: &str = "kumo_instances";
/// Gauge: requests waiting for an instance, label `function`.
pub const QUEUE_DEPTH: &str = "kumo_queue_depth";
/// Counter: metering records dropped because the writer's channel was full.
pub const DROPPED_RECORDS: &str = "kumo_metering_dropped_records_total";

/// The duration histogram's buckets, in seconds.
pub const DURATION_BUCKETS_SECONDS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Renders the installed recorder's metrics. Cheap to clone.
#[derive(Clone)]
pub struct MetricsHandle(PrometheusHandle);

impl MetricsHandle {
    /// The metrics in Prometheus text format (for `GET /metrics`).
    pub fn render(&self) -> String {
        self.0.render()
    }
}

/// Installs the process-wide Prometheus recorder and starts its upkeep
/// (draining histogram buffers every 5 s). Call once, inside the runtime.
///
/// # Errors
///
/// Fails when a recorder is already installed in this process.
pub fn install_recorder() -> anyhow::Result<MetricsHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(DURATION_SECONDS.to_string()),
            &DURATION_BUCKETS_SECONDS,
        )
        .context("the duration buckets are not empty")?
        .install_recorder()
        .context(
            "cannot install the metrics recorder; hint: it can be installed once per process",
        )?;
    // Exported from the start (at 0), so an alert on it needs no `absent()`.
    metrics::counter!(DROPPED_RECORDS).increment(0);
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticks.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(MetricsHandle(handle))
}

/// Sets a pool's gauges (called by its maintenance tick).
pub fn set_pool_gauges(function: &str, idle: u32, busy: u32, starting: u32, queued: u32) {
    for (state, count) in [("idle", idle), ("busy", busy), ("starting", starting)] {
        metrics::gauge!(INSTANCES, "function" => function.to_string(), "state" => state)
            .set(f64::from(count));
    }
    metrics::gauge!(QUEUE_DEPTH, "function" => function.to_string()).set(f64::from(queued));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_recorder_renders_the_names() {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(DURATION_SECONDS.to_string()),
                &DURATION_BUCKETS_SECONDS,
            )
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!(INVOCATIONS, "function" => "hello", "outcome" => "ok").increment(3);
            metrics::histogram!(DURATION_SECONDS, "function" => "hello").record(0.002);
            set_pool_gauges("hello", 1, 2, 0, 4);
        });
        let text = handle.render();
        for needle in [
            "kumo_invocations_total{function=\"hello\",outcome=\"ok\"} 3",
            "kumo_invocation_duration_seconds_bucket{function=\"hello\",le=\"0.0025\"} 1",
            "kumo_instances{function=\"hello\",state=\"busy\"} 2",
            "kumo_queue_depth{function=\"hello\"} 4",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
