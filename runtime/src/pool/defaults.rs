//! The scaling keys' defaults, in one place for the pool, the autoscaler,
//! the configuration and the docs (docs/scaling.md lists the same values).

pub(crate) const MIN_INSTANCES: u32 = 0;
/// Kumo's ceiling on the instances of one function version.
pub(crate) const MAX_INSTANCES: u32 = 100;
pub(crate) const REUSE: bool = true;
pub(crate) const IDLE_TIMEOUT_S: u64 = 300;
pub(crate) const MAX_QUEUE: u32 = 100;
pub(crate) const QUEUE_TIMEOUT_MS: u64 = 10_000;
/// Knative's: one request per instance at a time.
pub(crate) const TARGET_CONCURRENCY: f64 = 1.0;
/// Knative's: aim for 70 % of the target.
pub(crate) const TARGET_UTILIZATION: f64 = 0.7;
