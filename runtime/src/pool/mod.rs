//! Instance pools: one per function (version), between the triggers and the
//! engine.
//!
//! A request takes an idle warm instance, else a free slot below
//! `max_instances` (a cold start), else waits in a bounded FIFO queue for up
//! to `queue_timeout`; past either bound it is answered 429 with
//! `Retry-After` (backpressure, never an unbounded queue). With `reuse` an
//! instance serves request after request; an instance that trapped, timed
//! out or hit its memory limit is never reused. Without `reuse` an instance
//! serves one request, and its slot at once instantiates the next one in
//! the background, so a request finds an instance made before it arrived
//! (unless requests are already waiting: the first takes the slot and
//! starts its own). Once a second a maintenance
//! tick samples the load for the autoscaler (Knative's KPA, see
//! [`autoscaler`]), pre-warms instances up to its desired count while load
//! is rising, and releases instances idle past `idle_timeout`, never below
//! `min_instances`; at `min_instances = 0` an idle pool holds nothing.

pub(crate) mod autoscaler;
pub(crate) mod defaults;
mod slots;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;
use tracing::Instrument;

use crate::engine::{Function, Instance, InvokeError, ResponseBody};
use crate::metering::{Answer, Meter, Outcome, Recorder, TriggerKind};
use crate::observability::invocation_span;
use autoscaler::{Autoscaler, AutoscalerSettings, ScaleDecision};
use slots::{Acquire, Slots};

pub(crate) use slots::SlotCounts;

/// How often the pool samples its load and releases idle instances.
const MAINTENANCE_TICK: Duration = Duration::from_secs(1);
/// The autoscaler decides every this many ticks (2 s, as Knative).
const TICKS_PER_DECISION: u64 = 2;

/// A pool's settings (the manifest's scaling keys).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PoolSettings {
    /// Instances kept warm at all times (provisioned); 0 allows scale to zero.
    pub(crate) min_instances: u32,
    /// The most instances at once.
    pub(crate) max_instances: u32,
    /// Whether an instance serves more than one request.
    pub(crate) reuse: bool,
    /// An instance idle this long is released (down to `min_instances`).
    pub(crate) idle_timeout: Duration,
    /// The most requests waiting for an instance.
    pub(crate) max_queue: u32,
    /// The longest a request waits for an instance.
    pub(crate) queue_timeout: Duration,
    /// Requests one instance should serve at once (1 for WASI 0.2).
    pub(crate) target_concurrency: f64,
    /// The share of that target the autoscaler aims for.
    pub(crate) target_utilization: f64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            min_instances: defaults::MIN_INSTANCES,
            max_instances: defaults::MAX_INSTANCES,
            reuse: defaults::REUSE,
            idle_timeout: Duration::from_secs(defaults::IDLE_TIMEOUT_S),
            max_queue: defaults::MAX_QUEUE,
            queue_timeout: Duration::from_millis(defaults::QUEUE_TIMEOUT_MS),
            target_concurrency: defaults::TARGET_CONCURRENCY,
            target_utilization: defaults::TARGET_UTILIZATION,
        }
    }
}

/// Why a pool did not produce a response: its own limits, or the
/// invocation's failure.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum PoolError {
    /// Every instance is busy and the wait queue is full, or the wait was
    /// too long: back off and retry.
    #[error(
        "the function `{function}` is at its limit of {max_instances} busy instances and {}; \
         hint: retry after {} s, or raise `max_instances`, `max_queue` or `queue_timeout_ms`",
        match .waited { Some(waited) => format!("the request waited {} ms in its queue", waited.as_millis()), None => "its queue is full".to_string() },
        .retry_after.as_secs()
    )]
    Overloaded {
        /// The function's name.
        function: String,
        /// Its `max_instances`, all busy.
        max_instances: u32,
        /// How long the request waited in the queue before giving up, or
        /// `None` when the queue was full and it could not wait at all.
        waited: Option<Duration>,
        /// When a retry is likely to succeed.
        retry_after: Duration,
    },
    /// The host could not create another instance right now (the engine's
    /// [`InvokeError::InstanceUnavailable`]).
    #[error("no capacity to start another instance right now; hint: retry shortly")]
    NoCapacity,
    /// The invocation itself failed.
    #[error(transparent)]
    Invoke(InvokeError),
}

impl From<InvokeError> for PoolError {
    fn from(error: InvokeError) -> Self {
        match error {
            InvokeError::InstanceUnavailable => PoolError::NoCapacity,
            error => PoolError::Invoke(error),
        }
    }
}

impl PoolError {
    /// The metering outcome of an invocation answered with this error.
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            PoolError::Overloaded { .. } | PoolError::NoCapacity => Outcome::Rejected,
            PoolError::Invoke(error) => Outcome::of_error(error),
        }
    }
}

/// The instances of one function.
pub(crate) struct Pool {
    function: Arc<Function>,
    /// The function version this pool runs.
    version: u32,
    recorder: Recorder,
    settings: PoolSettings,
    inner: Mutex<PoolInner>,
    cold_starts: AtomicU64,
}

struct PoolInner {
    slots: Slots<Instance>,
    autoscaler: Autoscaler,
    decision: ScaleDecision,
    draining: bool,
    ticks: u64,
    last_logged: Option<(SlotCounts, ScaleDecision)>,
}

impl Pool {
    /// Creates the pool and starts its maintenance tick (which stops when
    /// the pool is dropped). Call [`Pool::prewarm_min`] to create the
    /// `min_instances` before serving. Every invocation is recorded on
    /// `meter` as of function `version`.
    pub(crate) fn start(
        function: Arc<Function>,
        version: u32,
        settings: PoolSettings,
        meter: Meter,
    ) -> Arc<Pool> {
        let autoscaler = Autoscaler::new(AutoscalerSettings {
            target_concurrency: settings.target_concurrency,
            target_utilization: settings.target_utilization,
            min_instances: settings.min_instances,
            max_instances: settings.max_instances,
            ..AutoscalerSettings::default()
        });
        let recorder = Recorder::new(
            &meter,
            Arc::clone(function.shared_name()),
            version,
            function.settings().memory_mb,
        );
        let pool = Arc::new(Pool {
            function,
            version,
            recorder,
            settings,
            inner: Mutex::new(PoolInner {
                slots: Slots::new(),
                autoscaler,
                decision: ScaleDecision {
                    desired: 0,
                    panicking: false,
                },
                draining: false,
                ticks: 0,
                last_logged: None,
            }),
            cold_starts: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&pool);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(MAINTENANCE_TICK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                let Some(pool) = weak.upgrade() else { break };
                pool.maintain(Instant::now());
            }
        });
        pool
    }

    /// The function version this pool runs.
    pub(crate) fn version(&self) -> u32 {
        self.version
    }

    fn lock(&self) -> MutexGuard<'_, PoolInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates the `min_instances` (provisioned) instances and waits for
    /// them.
    ///
    /// # Errors
    ///
    /// The first instance that cannot be created says why (its start
    /// traps, its initial memory is over `memory_mb`, no capacity).
    pub(crate) async fn prewarm_min(self: &Arc<Self>) -> Result<(), PoolError> {
        let missing = {
            let mut inner = self.lock();
            let missing = self
                .settings
                .min_instances
                .saturating_sub(inner.slots.total());
            inner.slots.start(missing);
            missing
        };
        let mut first_error = None;
        for _ in 0..missing {
            if let Err(error) = self.start_one().await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Creates an instance for a slot already counted as starting, and
    /// hands it to a waiting request or keeps it idle; a failure frees the
    /// slot.
    async fn start_one(&self) -> Result<(), PoolError> {
        let span = tracing::info_span!(
            "prewarm",
            function = %self.function.name(),
            version = self.version
        );
        let (instance, result) = match self.function.prewarm().instrument(span).await {
            Ok(instance) => (Some(instance), Ok(())),
            Err(error) => (None, Err(error.into())),
        };
        self.lock().slots.started(instance, Instant::now());
        result
    }

    /// Runs one request on an instance of this pool: warm if one is idle,
    /// cold if a slot is free, after a wait in the queue otherwise. The
    /// invocation is recorded on the pool's recorder whatever its outcome
    /// (a rejected one included), once the guest stopped, the answer is
    /// known and the response body is done. What it logs goes in its span
    /// ([`invocation_span`]), made only if it logs something. A failure is
    /// reported as the invocation's failure line: the pool's own refusals
    /// here, the rest by the engine.
    ///
    /// # Errors
    ///
    /// [`PoolError::Overloaded`] when the queue is full or the wait passes
    /// `queue_timeout`, [`PoolError::NoCapacity`] when no instance can be
    /// created; otherwise whatever the invocation itself fails with.
    pub(crate) async fn invoke<B>(
        self: &Arc<Self>,
        request: http::Request<B>,
        request_id: Arc<str>,
        trigger: TriggerKind,
    ) -> Result<http::Response<ResponseBody>, PoolError>
    where
        B: Body<Data = Bytes> + Send + 'static,
    {
        let scope = {
            let (version, trigger) = (self.version, trigger.as_str());
            self.function
                .invocation_scope(Arc::clone(&request_id), move |function, request_id| {
                    invocation_span(function, version, request_id, trigger)
                })
        };
        // The record is finished by whichever of the guest's exit, the
        // answer and the response body comes last (the draft's drop).
        let draft = self.recorder.begin(&request_id, trigger);
        let instance = match self.acquire().await {
            Ok(instance) => instance,
            Err(error) => {
                scope.report_failure(&error);
                draft.answered(Answer::Error(error.outcome()));
                return Err(error);
            }
        };
        if !instance.is_instantiated() {
            self.cold_starts.fetch_add(1, Ordering::Relaxed);
            draft.cold_start();
        }
        let pool = Arc::clone(self);
        let exit_draft = draft.clone();
        let result = self
            .function
            .invoke(instance, request, scope, move |mut end| {
                let instance = end.instance.take();
                exit_draft.guest_exited(&end);
                // Before the instance counts as free: once a pool has no
                // busy instance, every guest's part of its record is in
                // (shutdown waits for that before the last metering write).
                drop(exit_draft);
                pool.release(instance);
            })
            .await;
        match result {
            Ok(mut response) => {
                draft.answered(Answer::Status(response.status().as_u16()));
                response
                    .body_mut()
                    .when_done(move |bytes| draft.body_sent(bytes));
                Ok(response)
            }
            Err(error) => {
                let error = PoolError::from(error);
                draft.answered(Answer::Error(error.outcome()));
                Err(error)
            }
        }
    }

    async fn acquire(&self) -> Result<Instance, PoolError> {
        let acquired = {
            let mut inner = self.lock();
            inner
                .slots
                .acquire(self.settings.max_instances, self.settings.max_queue)
        };
        let grant = match acquired {
            Acquire::Warm(instance) => Some(instance),
            Acquire::Cold => None,
            Acquire::Rejected => return Err(self.overloaded(None)),
            Acquire::Wait(mut receiver) => {
                match tokio::time::timeout(self.settings.queue_timeout, &mut receiver).await {
                    Ok(Ok(grant)) => grant,
                    // The pool dropped its queue (it is going away).
                    Ok(Err(_)) => return Err(self.overloaded(None)),
                    Err(_elapsed) => {
                        // A grant may have been sent just as the wait ended:
                        // refuse further sends, then take it if it came, so
                        // the slot is not lost.
                        receiver.close();
                        match receiver.try_recv() {
                            Ok(grant) => grant,
                            Err(_) => {
                                self.lock().slots.forget_gone_waiters();
                                return Err(self.overloaded(Some(self.settings.queue_timeout)));
                            }
                        }
                    }
                }
            }
        };
        Ok(grant.unwrap_or_else(|| self.function.new_instance()))
    }

    fn overloaded(&self, waited: Option<Duration>) -> PoolError {
        PoolError::Overloaded {
            function: self.function.name().to_string(),
            max_instances: self.settings.max_instances,
            waited,
            retry_after: Duration::from_secs(1),
        }
    }

    fn release(self: &Arc<Self>, instance: Option<Instance>) {
        // An instance that never ran (its request was refused before the
        // guest started) holds nothing worth keeping.
        let instance = instance.filter(Instance::is_instantiated);
        let (discarded, replace) = {
            let mut inner = self.lock();
            if !self.settings.reuse && !inner.draining {
                // `reuse = false`: the instance goes, and its slot makes the
                // next request's instance now, so that request does not
                // instantiate on its own time.
                (instance, inner.slots.release_to_replace(Instant::now()))
            } else {
                // Draining keeps no instance, except to hand it straight to
                // a request still waiting in the queue.
                let keep =
                    self.settings.reuse && (!inner.draining || inner.slots.counts().queued > 0);
                (inner.slots.release(instance, keep, Instant::now()), false)
            }
        };
        // Dropping a store frees its memory: done outside the lock.
        drop(discarded);
        if replace {
            self.start_in_background();
        }
    }

    /// Creates an instance for a slot already counted as starting, in a
    /// task of its own; a failure is logged and frees the slot.
    fn start_in_background(self: &Arc<Self>) {
        let pool = Arc::clone(self);
        let start = async move {
            if let Err(error) = pool.start_one().await {
                tracing::warn!(function = %pool.function.name(), %error, "pre-warm failed");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(start)),
            // The runtime is shutting down: nothing will be served.
            Err(_) => self.lock().slots.started(None, Instant::now()),
        }
    }

    /// How many instances are idle, busy and starting, and requests queued.
    pub(crate) fn counts(&self) -> SlotCounts {
        self.lock().slots.counts()
    }

    /// Stops keeping instances: idle ones are released now, busy ones when
    /// they finish; queued requests are still served.
    pub(crate) fn drain(&self) {
        let idle = {
            let mut inner = self.lock();
            inner.draining = true;
            inner.slots.take_all_idle()
        };
        drop(idle);
    }

    /// One maintenance tick: sample, decide, release idle, pre-warm.
    fn maintain(self: &Arc<Self>, now: Instant) {
        let (released, prewarm, prewarm_for_load, log) = {
            let mut inner = self.lock();
            let counts = inner.slots.counts();
            let concurrency = counts.busy + counts.queued;
            inner.autoscaler.record(now, f64::from(concurrency));
            inner.ticks += 1;
            if inner.ticks.is_multiple_of(TICKS_PER_DECISION) {
                let ready = counts.idle + counts.busy + counts.starting;
                inner.decision = inner.autoscaler.decide(now, ready);
            }
            let (released, prewarm, prewarm_for_load) = if inner.draining {
                (inner.slots.take_all_idle(), 0, false)
            } else {
                let released = inner.slots.expire(
                    now,
                    self.settings.idle_timeout,
                    self.settings.min_instances,
                );
                // Pre-warm toward the autoscaler's desire only while there
                // is load (rising load); when it falls, idle instances go
                // by `idle_timeout`.
                let target = if concurrency > 0 {
                    inner.decision.desired.max(self.settings.min_instances)
                } else {
                    self.settings.min_instances
                }
                .min(self.settings.max_instances);
                let prewarm = target.saturating_sub(inner.slots.total());
                inner.slots.start(prewarm);
                (released, prewarm, target > self.settings.min_instances)
            };
            let snapshot = (inner.slots.counts(), inner.decision);
            let log = (inner.last_logged != Some(snapshot)).then_some(snapshot);
            inner.last_logged = Some(snapshot);
            (released, prewarm, prewarm_for_load, log)
        };
        let function = self.function.name();
        if !released.is_empty() {
            tracing::info!(function = %function, count = released.len(), "released idle instances");
        }
        drop(released);
        if prewarm > 0 {
            if prewarm_for_load {
                tracing::info!(function = %function, count = prewarm, "pre-warming instances");
            } else {
                // Restoring min_instances (with reuse = false, after every
                // request): routine, not a scaling event.
                tracing::debug!(function = %function, count = prewarm, "pre-warming instances");
            }
            for _ in 0..prewarm {
                self.start_in_background();
            }
        }
        {
            let counts = self.lock().slots.counts();
            crate::observability::metrics::set_pool_gauges(
                function,
                counts.idle,
                counts.busy,
                counts.starting,
                counts.queued,
            );
        }
        if let Some((counts, decision)) = log {
            tracing::debug!(
                function = %function,
                idle = counts.idle,
                busy = counts.busy,
                starting = counts.starting,
                queued = counts.queued,
                desired = decision.desired,
                panicking = decision.panicking,
                cold_starts = self.cold_starts.load(Ordering::Relaxed),
                "pool"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_become_pool_errors_with_their_outcomes() {
        let overloaded = PoolError::Overloaded {
            function: "f".into(),
            max_instances: 2,
            waited: Some(Duration::from_millis(200)),
            retry_after: Duration::from_secs(1),
        };
        let cases = [
            (overloaded, "waited 200 ms", Outcome::Rejected),
            (
                PoolError::from(InvokeError::InstanceUnavailable),
                "no capacity to start another instance right now; hint: retry shortly",
                Outcome::Rejected,
            ),
            (
                PoolError::from(InvokeError::Timeout {
                    timeout: Duration::from_millis(5),
                }),
                "within its timeout of 5 ms",
                Outcome::Timeout,
            ),
            (
                PoolError::from(InvokeError::PayloadTooLarge { limit: 1 }),
                "larger than the function's limit of 1 bytes",
                Outcome::Rejected,
            ),
        ];
        for (error, message, outcome) in cases {
            assert!(error.to_string().contains(message), "{error}");
            assert_eq!(error.outcome(), outcome, "{error}");
        }
        assert!(matches!(
            PoolError::from(InvokeError::InstanceUnavailable),
            PoolError::NoCapacity
        ));
    }
}
