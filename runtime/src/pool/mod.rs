//! Instance pools: one per function (version), between the triggers and the
//! engine.
//!
//! A request takes an idle warm instance, else a free slot below
//! `max_instances` (a cold start), else waits in a bounded FIFO queue for up
//! to `queue_timeout`; past either bound it is answered 429 with
//! `Retry-After` (backpressure, never an unbounded queue). With `reuse` an
//! instance serves request after request; an instance that trapped, timed
//! out or hit its memory limit is never reused. Once a second a maintenance
//! tick samples the load for the autoscaler (Knative's KPA, see
//! [`autoscaler`]), pre-warms instances up to its desired count while load
//! is rising, and releases instances idle past `idle_timeout`, never below
//! `min_instances`; at `min_instances = 0` an idle pool holds nothing.

pub mod autoscaler;
mod slots;

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;

use crate::engine::{Function, Instance, InvocationEnd, InvokeError, ResponseBody};
use crate::metering::billing::{billed_ms, micros_ceil};
use crate::metering::{
    Answer, AnswerOutcome, InvocationRecord, Meter, Outcome, TriggerKind, outcome_of_parts,
};
use autoscaler::{Autoscaler, AutoscalerSettings, ScaleDecision};
use slots::{Acquire, Slots};

pub use slots::SlotCounts;

/// How often the pool samples its load and releases idle instances.
const MAINTENANCE_TICK: Duration = Duration::from_secs(1);
/// The autoscaler decides every this many ticks (2 s, as Knative).
const TICKS_PER_DECISION: u64 = 2;

/// A pool's settings (the manifest's scaling keys).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// Instances kept warm at all times (provisioned); 0 allows scale to zero.
    pub min_instances: u32,
    /// The most instances at once.
    pub max_instances: u32,
    /// Whether an instance serves more than one request.
    pub reuse: bool,
    /// An instance idle this long is released (down to `min_instances`).
    pub idle_timeout: Duration,
    /// The most requests waiting for an instance.
    pub max_queue: u32,
    /// The longest a request waits for an instance.
    pub queue_timeout: Duration,
    /// Requests one instance should serve at once (1 for WASI 0.2).
    pub target_concurrency: f64,
    /// The share of that target the autoscaler aims for.
    pub target_utilization: f64,
}

/// Defaults, in one place so the docs and the code agree.
pub mod defaults {
    /// `min_instances`.
    pub const MIN_INSTANCES: u32 = 0;
    /// `max_instances`.
    pub const MAX_INSTANCES: u32 = 100;
    /// `reuse`.
    pub const REUSE: bool = true;
    /// `idle_timeout_s`.
    pub const IDLE_TIMEOUT_S: u64 = 300;
    /// `max_queue`.
    pub const MAX_QUEUE: u32 = 100;
    /// `queue_timeout_ms`.
    pub const QUEUE_TIMEOUT_MS: u64 = 10_000;
    /// `target_concurrency`.
    pub const TARGET_CONCURRENCY: f64 = 1.0;
    /// `target_utilization`.
    pub const TARGET_UTILIZATION: f64 = 0.7;
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

/// The instances of one function.
pub struct Pool {
    function: Arc<Function>,
    /// The function version this pool runs (for metering).
    version: u32,
    meter: Meter,
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
    pub fn start(
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
        let pool = Arc::new(Pool {
            function,
            version,
            meter,
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

    fn lock(&self) -> MutexGuard<'_, PoolInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Creates the `min_instances` (provisioned) instances and waits for
    /// them.
    ///
    /// # Errors
    ///
    /// The first instance that cannot be created says why (its start
    /// traps, its initial memory is over `memory_mb`, no capacity).
    pub async fn prewarm_min(self: &Arc<Self>) -> Result<(), InvokeError> {
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
    async fn start_one(&self) -> Result<(), InvokeError> {
        let (instance, result) = match self.function.prewarm().await {
            Ok(instance) => (Some(instance), Ok(())),
            Err(error) => (None, Err(error)),
        };
        self.lock().slots.started(instance, Instant::now());
        result
    }

    /// Runs one request on an instance of this pool: warm if one is idle,
    /// cold if a slot is free, after a wait in the queue otherwise. The
    /// invocation is recorded on the pool's meter whatever its outcome (a
    /// rejected one included), once the guest stopped, the answer is known
    /// and the response body is done.
    ///
    /// # Errors
    ///
    /// [`InvokeError::Overloaded`] when the queue is full or the wait passes
    /// `queue_timeout`; otherwise whatever the invocation itself fails with.
    pub async fn invoke<B>(
        self: &Arc<Self>,
        request: http::Request<B>,
        request_id: Arc<str>,
        trigger: TriggerKind,
    ) -> Result<http::Response<ResponseBody>, InvokeError>
    where
        B: Body<Data = Bytes> + Send + 'static,
    {
        if !self.meter.is_enabled() {
            let instance = self.acquire().await?;
            if !instance.is_instantiated() {
                self.cold_starts.fetch_add(1, Ordering::Relaxed);
            }
            let pool = Arc::clone(self);
            return self
                .function
                .invoke(instance, request, request_id, move |end| {
                    pool.release(end.instance);
                })
                .await;
        }
        let started_at = chrono::Utc::now();
        let instance = match self.acquire().await {
            Ok(instance) => instance,
            Err(error) => {
                let draft = self.draft(request_id, trigger, started_at, false);
                draft.answered(Answer::Error(&error));
                return Err(error);
            }
        };
        let cold_start = !instance.is_instantiated();
        if cold_start {
            self.cold_starts.fetch_add(1, Ordering::Relaxed);
        }
        // The record is finished by whichever of the guest's exit, the
        // answer and the response body comes last (`RecordDraft`'s drop).
        let draft = self.draft(Arc::clone(&request_id), trigger, started_at, cold_start);
        let exit_draft = Arc::clone(&draft);
        let result = self
            .function
            .invoke(instance, request, request_id, move |mut end| {
                let instance = end.instance.take();
                exit_draft.guest_exited(end);
                exit_draft.pool.release(instance);
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
                draft.answered(Answer::Error(&error));
                Err(error)
            }
        }
    }

    fn draft(
        self: &Arc<Self>,
        request_id: Arc<str>,
        trigger: TriggerKind,
        started_at: chrono::DateTime<chrono::Utc>,
        cold_start: bool,
    ) -> Arc<RecordDraft> {
        Arc::new(RecordDraft {
            pool: Arc::clone(self),
            request_id,
            trigger,
            started_at,
            cold_start,
            duration_us: AtomicU64::new(0),
            init_duration_us: AtomicU64::new(NO_INIT),
            peak_memory_bytes: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            exit_error: AtomicU8::new(0),
            answer: AtomicU32::new(0),
        })
    }

    async fn acquire(&self) -> Result<Instance, InvokeError> {
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

    fn overloaded(&self, waited: Option<Duration>) -> InvokeError {
        InvokeError::Overloaded {
            function: self.function.name().to_string(),
            max_instances: self.settings.max_instances,
            waited,
            retry_after: Duration::from_secs(1),
        }
    }

    fn release(&self, instance: Option<Instance>) {
        // An instance that never ran (its request was refused before the
        // guest started) holds nothing worth keeping.
        let instance = instance.filter(Instance::is_instantiated);
        let discarded = {
            let mut inner = self.lock();
            // Draining keeps no instance, except to hand it straight to a
            // request still waiting in the queue.
            let keep = self.settings.reuse && (!inner.draining || inner.slots.counts().queued > 0);
            inner.slots.release(instance, keep, Instant::now())
        };
        // Dropping a store frees its memory: done outside the lock.
        drop(discarded);
    }

    /// How many instances are idle, busy and starting, and requests queued.
    pub fn counts(&self) -> SlotCounts {
        self.lock().slots.counts()
    }

    /// The function version this pool runs.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Stops keeping instances: idle ones are released now, busy ones when
    /// they finish; queued requests are still served.
    pub fn drain(&self) {
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
                let pool = Arc::clone(self);
                tokio::spawn(async move {
                    if let Err(error) = pool.start_one().await {
                        tracing::warn!(function = %pool.function.name(), "pre-warm failed: {error}");
                    }
                });
            }
        }
        {
            let counts = self.lock().slots.counts();
            crate::metering::metrics::set_pool_gauges(
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

/// An invocation's record while its parts arrive: the guest's end (from the
/// engine's `on_exit`), the answer (from `Function::invoke`'s result) and
/// the response body's size (from its `when_done`). Each part holds an
/// `Arc` and writes its own atomics; the last one to let go completes the
/// record (the `Arc`'s release and acquire order those writes before the
/// drop) and hands it to the meter, exactly once.
struct RecordDraft {
    /// The pool (its meter, function, version and memory size); also what
    /// the guest's instance is released to.
    pool: Arc<Pool>,
    request_id: Arc<str>,
    trigger: TriggerKind,
    started_at: chrono::DateTime<chrono::Utc>,
    cold_start: bool,
    duration_us: AtomicU64,
    /// [`NO_INIT`] on a warm start.
    init_duration_us: AtomicU64,
    peak_memory_bytes: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// The guest's error: 0 for none, else 1 + its index in [`Outcome::ALL`].
    exit_error: AtomicU8,
    /// The answer: 0 unknown, 1 + the status for a response,
    /// [`ANSWER_ERROR`] + the index in [`Outcome::ALL`] for an error.
    answer: AtomicU32,
}

const NO_INIT: u64 = u64::MAX;
const ANSWER_ERROR: u32 = 0x2_0000;

impl RecordDraft {
    fn guest_exited(&self, end: InvocationEnd) {
        self.duration_us
            .store(micros_ceil(end.duration), Ordering::Relaxed);
        self.init_duration_us
            .store(end.init.map_or(NO_INIT, micros_ceil), Ordering::Relaxed);
        self.peak_memory_bytes
            .store(end.peak_memory_bytes, Ordering::Relaxed);
        self.bytes_in.store(end.request_bytes, Ordering::Relaxed);
        if let Err(error) = &end.result {
            let index = Outcome::of_error(error).index();
            self.exit_error.store(1 + index as u8, Ordering::Relaxed);
        }
    }

    fn answered(&self, answer: Answer<'_>) {
        let code = match answer {
            Answer::Status(status) => 1 + u32::from(status),
            Answer::Error(error) => ANSWER_ERROR + Outcome::of_error(error).index() as u32,
            Answer::Unknown => 0,
        };
        self.answer.store(code, Ordering::Relaxed);
    }

    fn body_sent(&self, bytes: u64) {
        self.bytes_out.store(bytes, Ordering::Relaxed);
    }
}

impl Drop for RecordDraft {
    fn drop(&mut self) {
        let exit_error = match *self.exit_error.get_mut() {
            0 => None,
            code => Outcome::ALL.get(usize::from(code) - 1).copied(),
        };
        let answer = match *self.answer.get_mut() {
            0 => AnswerOutcome::Unknown,
            code if code >= ANSWER_ERROR => AnswerOutcome::Error(
                Outcome::ALL
                    .get((code - ANSWER_ERROR) as usize)
                    .copied()
                    .unwrap_or(Outcome::Error),
            ),
            code => AnswerOutcome::Status(u16::try_from(code - 1).unwrap_or(u16::MAX)),
        };
        let duration_us = *self.duration_us.get_mut();
        let init_duration_us = match *self.init_duration_us.get_mut() {
            NO_INIT => None,
            init => Some(init),
        };
        let pool = &self.pool;
        pool.meter.record(&InvocationRecord {
            request_id: Arc::clone(&self.request_id),
            function: Arc::clone(pool.function.shared_name()),
            version: pool.version,
            trigger: self.trigger,
            started_at: self.started_at,
            duration_us,
            init_duration_us,
            billed_ms: billed_ms(duration_us, init_duration_us),
            memory_mb: pool.function.settings().memory_mb,
            peak_memory_bytes: *self.peak_memory_bytes.get_mut(),
            cold_start: self.cold_start,
            outcome: outcome_of_parts(exit_error, answer),
            bytes_in: *self.bytes_in.get_mut(),
            bytes_out: *self.bytes_out.get_mut(),
        });
    }
}
