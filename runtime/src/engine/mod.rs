//! The only place that touches wasmtime: compiling components and running
//! one invocation of a `wasi:http` component.
//!
//! The lifecycle follows wasmtime's own advice. One [`Engine`] (one wasmtime
//! `Engine` and one `Linker`) per process; each function is validated and
//! compiled once into a [`Function`] holding a `ProxyPre` (a pre-linked
//! `InstancePre`); each [`Instance`] is its own `Store`, serving one request
//! at a time (a pool decides whether it serves again). Compiled code is
//! cached on disk by wasmtime's compilation cache, keyed by a hash of the
//! wasm bytes, the compiler settings and the wasmtime version, so a restart
//! on the same data directory does not recompile; `cache_guard` checks each
//! entry against a keyed digest before wasmtime may load it.
//!
//! This module knows nothing about routes, triggers, the manifest format or
//! billing. It takes an `http::Request` and gives back an `http::Response`
//! or an [`InvokeError`] that says what went wrong with the guest.

mod body;
mod cache_guard;
mod compile;
mod instance;
mod invoke;
mod outbound;
mod scope;

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{
    Cache, CacheConfig, Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig,
};

pub(crate) use body::ResponseBody;
pub(crate) use compile::{CompileError, CompileReport, ComponentSource};
pub(crate) use instance::{GuestLogSink, InstanceState, LogSource};
pub(crate) use invoke::{DirMount, Instance, InvocationEnd, InvokeError};
pub(crate) use outbound::OutboundRule;

/// How often the epoch advances. A running guest yields to the async
/// executor once per tick, so other requests keep being served even while a
/// guest burns CPU, and timeouts fire on time.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The largest `memory_mb` a function may ask for (wasm32's 4 GiB).
pub(crate) const MAX_MEMORY_MB: u64 = 4096;

/// How many instances may exist at once across all functions when the
/// pooling allocator is in use. Each slot reserves virtual (not resident)
/// memory up front. One function's `max_instances` may not exceed it.
pub(crate) const MAX_POOLED_INSTANCES: u32 = 1000;

/// Engine-wide settings, chosen once at start.
#[derive(Debug, Clone)]
pub(crate) struct EngineOptions {
    /// Where wasmtime's compilation cache lives (`<data-dir>/cache`); an
    /// absolute path.
    pub(crate) cache_dir: std::path::PathBuf,
    /// The key of the cache entries' digests (`<data-dir>/cache-key`),
    /// kept outside the cache folder; made at the first start.
    pub(crate) cache_key_file: std::path::PathBuf,
    /// Try the pooling allocator first (falls back to on-demand allocation
    /// with a warning when its virtual memory cannot be reserved).
    pub(crate) pooling: bool,
    /// Where guests' stdout/stderr lines and invocations' failure lines go
    /// besides the log; `None` for the log only.
    pub(crate) guest_log_sink: Option<GuestLogSink>,
}

/// The per-process wasmtime engine and linker.
///
/// Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub(crate) struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasmtime: wasmtime::Engine,
    linker: Linker<InstanceState>,
    cache: Cache,
    cache_guard: cache_guard::CacheGuard,
    pooling: bool,
    guest_log_sink: Option<GuestLogSink>,
}

impl Engine {
    /// Builds the engine and linker and starts the epoch ticker.
    ///
    /// # Errors
    ///
    /// Fails when wasmtime rejects the configuration or the cache directory
    /// cannot be created.
    pub(crate) fn new(options: &EngineOptions) -> anyhow::Result<Self> {
        let dir = &options.cache_dir;
        std::fs::create_dir_all(dir).map_err(|error| {
            anyhow::anyhow!(
                "cannot create compile cache directory {}: {error}",
                dir.display()
            )
        })?;
        let mut cache_config = CacheConfig::new();
        // An entry rewritten in the background would no longer match the
        // digest `cache_guard` keeps of it.
        cache_config
            .with_directory(dir)
            .with_optimized_compression_usage_counter_threshold(u64::MAX);
        let cache = Cache::new(cache_config)?;
        let cache_guard = cache_guard::CacheGuard::open(dir, &options.cache_key_file)?;
        let removed = cache_guard.remove_bad_entries();
        if removed > 0 {
            tracing::warn!(
                removed,
                "removed compile cache entries that failed their check; their components compile again"
            );
        }

        let (wasmtime, pooling) = if options.pooling {
            // Memory reset in place needs a recent kernel: without it, the
            // pooling allocator resets memory as wasmtime does by default.
            let engine =
                wasmtime::Engine::new(&engine_config(cache.clone(), true, MemoryReset::InPlace))
                    .or_else(|_| {
                        wasmtime::Engine::new(&engine_config(
                            cache.clone(),
                            true,
                            MemoryReset::Decommit,
                        ))
                    });
            match engine {
                Ok(engine) => (engine, true),
                Err(error) => {
                    tracing::warn!(
                        error = %format!("{error:#}"),
                        "cannot reserve virtual memory for the pooling allocator; \
                         falling back to on-demand allocation (slower instantiation). \
                         hint: raise `ulimit -v` or the vm.overcommit settings"
                    );
                    (
                        wasmtime::Engine::new(&engine_config(
                            cache.clone(),
                            false,
                            MemoryReset::Decommit,
                        ))?,
                        false,
                    )
                }
            }
        } else {
            (
                wasmtime::Engine::new(&engine_config(cache.clone(), false, MemoryReset::Decommit))?,
                false,
            )
        };

        // All of WASI 0.2 plus wasi:http, as `wasmtime serve` links: real
        // components import `wasi:cli/environment` and friends beyond the
        // bare proxy world. Filesystem and sockets are linked but powerless:
        // an instance gets no socket permission, and no preopened directory
        // but its function's `mounts`.
        let mut linker = Linker::new(&wasmtime);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;

        start_epoch_ticker(&wasmtime);
        Ok(Self {
            inner: Arc::new(EngineInner {
                wasmtime,
                linker,
                cache,
                cache_guard,
                pooling,
                guest_log_sink: options.guest_log_sink.clone(),
            }),
        })
    }

    pub(crate) fn uses_pooling_allocator(&self) -> bool {
        self.inner.pooling
    }

    /// Compilation cache hits so far.
    fn cache_hits(&self) -> usize {
        self.inner.cache.cache_hits()
    }
}

/// How a pooled instance's freed linear memory is reset.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MemoryReset {
    /// In place, with the `PAGEMAP_SCAN` ioctl (Linux 6.7 and later).
    InPlace,
    /// With `madvise`, wasmtime's default.
    Decommit,
}

/// The bytes at the start of a pooled linear memory that stay resident
/// after the instance is freed (reset in place; see [`MemoryReset`]).
/// Kept small: a free slot's resident pages stay in the server's RSS after
/// its function scales down (1 MiB measured +17 % requests per CPU-second
/// for fresh instances; 8 MiB a little more, once; docs/scaling.md).
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;

fn engine_config(cache: Cache, pooling: bool, reset: MemoryReset) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Only WASI 0.2 guests are served: one request per instance at a time.
    // Without the component-model-async machinery in each store, a call
    // takes wasmtime's direct path (measured: ~20% more requests/s with
    // instance reuse).
    config.concurrency_support(false);
    config.cache(Some(cache));
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(MAX_POOLED_INSTANCES);
        pool.total_stacks(MAX_POOLED_INSTANCES);
        // A Rust component has a handful of core instances, memories and
        // tables (the module, the WASI adapter, shims); leave headroom.
        pool.total_core_instances(MAX_POOLED_INSTANCES * 8);
        pool.total_memories(MAX_POOLED_INSTANCES * 2);
        pool.total_tables(MAX_POOLED_INSTANCES * 4);
        pool.max_memory_size((MAX_MEMORY_MB as usize) << 20);
        // Keep some freed slots warm so reinstantiating the same function
        // reuses already-initialised memory.
        pool.max_unused_warm_slots(100);
        // Return freed memory to the OS 32 slots at a time: one madvise
        // call instead of one per instance (measured: fresh instances
        // +16% requests/s).
        pool.decommit_batch_size(32);
        // Tables are small: clearing them beats decommitting and
        // re-faulting their pages on the next instantiation.
        pool.table_keep_resident(64 << 10);
        if reset == MemoryReset::InPlace {
            // A freed memory is reset in place: the kernel's PAGEMAP_SCAN
            // finds the pages the instance wrote within its first
            // MEMORY_KEEP_RESIDENT bytes, which are restored with memset
            // and stay mapped, instead of madvise and page faults on the
            // next instantiation (measured: fresh instances +15 to 19 %
            // requests per CPU-second, docs/scaling.md).
            pool.linear_memory_keep_resident(MEMORY_KEEP_RESIDENT);
            pool.pagemap_scan(Enabled::Yes);
        }

        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a plain thread, until
/// the engine is dropped.
fn start_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("kumo-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("the OS refused to start the epoch thread");
}

/// A compiled, pre-linked function, ready to be instantiated per request.
pub(crate) use invoke::Function;
/// Per-function limits and environment, fixed at compile time.
pub(crate) use invoke::FunctionSettings;
