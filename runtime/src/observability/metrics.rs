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
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Counter: invocations, labels `function`, `outcome`.
pub(crate) const INVOCATIONS: &str = "kumo_invocations_total";
/// Histogram: execution duration in seconds (instantiation excluded),
/// label `function`.
pub(crate) const DURATION_SECONDS: &str = "kumo_invocation_duration_seconds";
/// Counter: cold starts, label `function`.
pub(crate) const COLD_STARTS: &str = "kumo_cold_starts_total";
/// Counter: billed gigabyte-seconds since start, label `function`. Kept
/// and rendered here (like [`DURATION_SECONDS`]): the `metrics` crate's
/// counters are integers.
pub(crate) const BILLED_GIGABYTE_SECONDS: &str = "kumo_billed_gigabyte_seconds_total";
/// Gauge: instances, labels `function`, `state` (`idle`, `busy`, `starting`).
pub(crate) const INSTANCES: &str = "kumo_instances";
/// Gauge: requests waiting for an instance, label `function`.
pub(crate) const QUEUE_DEPTH: &str = "kumo_queue_depth";
/// Counter: metering records dropped because the pending batch was full.
pub(crate) const DROPPED_RECORDS: &str = "kumo_metering_dropped_records_total";

/// The duration histogram's buckets (inclusive upper bounds), in µs.
pub(crate) const DURATION_BUCKETS_US: [u64; 14] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 10_000_000,
];

/// [`DURATION_BUCKETS_US`] in seconds, as Prometheus has them.
pub(crate) fn duration_buckets_seconds() -> [f64; 14] {
    DURATION_BUCKETS_US.map(|us| us as f64 / 1e6)
}

/// The index of the duration bucket holding `duration_us` (the last index,
/// `DURATION_BUCKETS_US.len()`, is `+Inf`).
pub(crate) fn duration_bucket_of(duration_us: u64) -> usize {
    DURATION_BUCKETS_US.partition_point(|&bound| bound < duration_us)
}

/// Renders the installed recorder's metrics. Cheap to clone.
#[derive(Clone)]
pub(crate) struct MetricsHandle(PrometheusHandle);

impl MetricsHandle {
    /// The metrics in Prometheus text format (for `GET /metrics`).
    pub(crate) fn render(&self) -> String {
        let mut text = self.0.render();
        render_durations(&mut text);
        render_billed(&mut text);
        text
    }
}

/// The invocation duration histogram ([`DURATION_SECONDS`]), per function.
///
/// It is kept here, not in the recorder: the recorder's histograms store
/// every sample until the next upkeep, which cost about 60 ns per
/// invocation; these are bucket counts the metering writer adds once per
/// batch ([`add_durations`]). Process-wide, like the recorder.
static DURATIONS: Mutex<BTreeMap<String, DurationHistogram>> = Mutex::new(BTreeMap::new());

/// One function's duration histogram.
#[derive(Debug, Clone, Copy, Default)]
struct DurationHistogram {
    /// Counts per bucket of [`DURATION_BUCKETS_US`] (not cumulative), plus
    /// `+Inf`.
    counts: [u64; DURATION_BUCKETS_US.len() + 1],
    sum_us: u64,
}

/// Billed gigabyte-seconds per function, rendered as
/// [`BILLED_GIGABYTE_SECONDS`]. Process-wide, like the recorder.
static BILLED_GIGABYTE_SECONDS_SUMS: Mutex<BTreeMap<String, f64>> = Mutex::new(BTreeMap::new());

/// Adds a batch's billed gigabyte-seconds of `function` (as
/// `metering::billing` computes them).
pub(crate) fn add_billed(function: &str, gigabyte_seconds: f64) {
    let mut billed = BILLED_GIGABYTE_SECONDS_SUMS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match billed.get_mut(function) {
        Some(total) => *total += gigabyte_seconds,
        None => {
            billed.insert(function.to_string(), gigabyte_seconds);
        }
    }
}

/// Appends the billed gigabyte-seconds counter in Prometheus text format.
fn render_billed(out: &mut String) {
    use std::fmt::Write;
    let billed = BILLED_GIGABYTE_SECONDS_SUMS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if billed.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP {BILLED_GIGABYTE_SECONDS} Billed gigabyte-seconds since the server started (memory_mb / 1024 x billed_ms / 1000).\n# TYPE {BILLED_GIGABYTE_SECONDS} counter"
    );
    for (function, gigabyte_seconds) in billed.iter() {
        let function = function.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            out,
            "{BILLED_GIGABYTE_SECONDS}{{function=\"{function}\"}} {gigabyte_seconds}"
        );
    }
}

/// Adds a batch's durations of `function`: (count, Σ µs) per bucket of
/// [`DURATION_BUCKETS_US`], plus `+Inf`.
pub(crate) fn add_durations(function: &str, buckets: &[(u64, u64); DURATION_BUCKETS_US.len() + 1]) {
    let mut histograms = DURATIONS.lock().unwrap_or_else(PoisonError::into_inner);
    let histogram = match histograms.get_mut(function) {
        Some(histogram) => histogram,
        None => histograms.entry(function.to_string()).or_default(),
    };
    for (count, (added, sum_us)) in histogram.counts.iter_mut().zip(buckets) {
        *count += added;
        histogram.sum_us += sum_us;
    }
}

/// Appends the duration histograms in Prometheus text format.
fn render_durations(out: &mut String) {
    use std::fmt::Write;
    let histograms = DURATIONS.lock().unwrap_or_else(PoisonError::into_inner);
    if histograms.is_empty() {
        return;
    }
    let bounds = duration_buckets_seconds();
    let _ = writeln!(
        out,
        "# HELP {DURATION_SECONDS} Invocation execution time in seconds, init excluded.\n# TYPE {DURATION_SECONDS} histogram"
    );
    for (function, histogram) in histograms.iter() {
        let function = function.replace('\\', "\\\\").replace('"', "\\\"");
        let mut cumulative = 0;
        for (index, count) in histogram.counts.iter().enumerate() {
            cumulative += count;
            match bounds.get(index) {
                Some(bound) => {
                    let _ = writeln!(
                        out,
                        "{DURATION_SECONDS}_bucket{{function=\"{function}\",le=\"{bound}\"}} {cumulative}"
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{DURATION_SECONDS}_bucket{{function=\"{function}\",le=\"+Inf\"}} {cumulative}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "{DURATION_SECONDS}_sum{{function=\"{function}\"}} {}\n{DURATION_SECONDS}_count{{function=\"{function}\"}} {cumulative}",
            histogram.sum_us as f64 / 1e6
        );
    }
}

/// Installs the process-wide Prometheus recorder and starts its upkeep
/// (draining histogram buffers every 5 s). Call once, inside the runtime.
///
/// # Errors
///
/// Fails when a recorder is already installed in this process.
pub(crate) fn install_recorder(node: Option<&str>) -> anyhow::Result<MetricsHandle> {
    let mut builder = PrometheusBuilder::new();
    // In a cluster every series says which node it counts, so a sum over
    // the scrapes of all nodes adds each node once.
    if let Some(node) = node {
        builder = builder.add_global_label("node", node);
    }
    let handle = builder.install_recorder().context(
        "cannot install the metrics recorder; hint: it can be installed once per process",
    )?;
    metrics::describe_counter!(INVOCATIONS, "Invocations by function and outcome.");
    metrics::describe_counter!(
        COLD_STARTS,
        "Invocations that created their instance (cold starts)."
    );
    metrics::describe_gauge!(
        INSTANCES,
        "Instances of a function's pool, by state (idle, busy, starting)."
    );
    metrics::describe_gauge!(QUEUE_DEPTH, "Requests waiting for an instance.");
    metrics::describe_counter!(
        DROPPED_RECORDS,
        "Metering records dropped because the writer could not keep up."
    );
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
pub(crate) fn set_pool_gauges(function: &str, idle: u32, busy: u32, starting: u32, queued: u32) {
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
    fn durations_fall_in_the_bucket_of_their_inclusive_upper_bound() {
        let cases = [
            (0, 0),
            (250, 0),
            (251, 1),
            (1_000, 2),
            (10_000_000, 13),
            (10_000_001, 14),
            (u64::MAX, 14),
        ];
        for (duration_us, bucket) in cases {
            assert_eq!(duration_bucket_of(duration_us), bucket, "{duration_us} µs");
        }
        assert_eq!(duration_buckets_seconds()[0], 0.000_25);
        assert_eq!(duration_buckets_seconds()[13], 10.0);
    }

    #[test]
    fn a_local_recorder_renders_the_names() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = MetricsHandle(recorder.handle());
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!(INVOCATIONS, "function" => "hello", "outcome" => "ok").increment(3);
            set_pool_gauges("hello", 1, 2, 0, 4);
        });
        // Two batches: 250 µs and 251 µs, then 2 ms, 3 ms and 20 s. The
        // function name is this test's own: the histograms are process-wide.
        let mut first = [(0, 0); DURATION_BUCKETS_US.len() + 1];
        first[0] = (1, 250);
        first[1] = (1, 251);
        add_durations("metrics-test", &first);
        let mut second = [(0, 0); DURATION_BUCKETS_US.len() + 1];
        second[3] = (1, 2_000);
        second[4] = (1, 3_000);
        second[14] = (1, 20_000_000);
        add_durations("metrics-test", &second);
        let text = handle.render();
        for needle in [
            "kumo_invocations_total{function=\"hello\",outcome=\"ok\"} 3",
            "kumo_instances{function=\"hello\",state=\"busy\"} 2",
            "kumo_queue_depth{function=\"hello\"} 4",
            "# TYPE kumo_invocation_duration_seconds histogram\n",
            "kumo_invocation_duration_seconds_bucket{function=\"metrics-test\",le=\"0.00025\"} 1\n",
            "kumo_invocation_duration_seconds_bucket{function=\"metrics-test\",le=\"0.0005\"} 2\n",
            "kumo_invocation_duration_seconds_bucket{function=\"metrics-test\",le=\"0.001\"} 2\n",
            "kumo_invocation_duration_seconds_bucket{function=\"metrics-test\",le=\"0.0025\"} 3\n",
            "kumo_invocation_duration_seconds_bucket{function=\"metrics-test\",le=\"10\"} 4\n",
            "kumo_invocation_duration_seconds_bucket{function=\"metrics-test\",le=\"+Inf\"} 5\n",
            "kumo_invocation_duration_seconds_sum{function=\"metrics-test\"} 20.005501\n",
            "kumo_invocation_duration_seconds_count{function=\"metrics-test\"} 5\n",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
