//! What is live: the registry's state made servable. For every version
//! that something can reach (a function's newest version, an alias's
//! versions, a route naming a version) a compiled function and a pool; and
//! the HTTP route table.
//!
//! The state is an immutable snapshot swapped in one step after every
//! registry change ([`Live::reload`]): a new request sees either the old
//! snapshot or the new one, and a request already running keeps the pool
//! it started on, so it finishes on its version. Pools no longer reachable
//! are drained (their instances go when idle).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use crate::engine::{CompileError, CompileReport, ComponentSource, Engine, Function};
use crate::metering::Meter;
use crate::pool::{Pool, SlotCounts};
use crate::registry::{
    ConfigError, FunctionConfig, FunctionRecord, Qualifier, Registry, RegistryError, RegistryState,
    Target, TriggerSpec, Version,
};
use crate::triggers::EventTriggers;
use crate::triggers::http::{Route, RouteTable};

/// A function version: its name and number.
pub type VersionKey = (String, u32);

/// The registry's state and the pools serving it, as of one reload.
pub struct Snapshot {
    /// Everything the registry held.
    pub registry: RegistryState,
    pools: HashMap<VersionKey, Arc<Pool>>,
    routes: RouteTable<Target>,
}

/// Why a target cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The function, version or alias does not exist (any more).
    #[error("{0}")]
    NotFound(String),
    /// The version exists but could not be loaded (its component is
    /// missing or broken on disk); details are in the log.
    #[error(
        "function `{0}` is not available: its component could not be loaded; hint: deploy it again"
    )]
    Unavailable(String),
}

/// Why a deploy was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A configuration value is out of range.
    #[error("function `{function}`: {}", error.with_hint())]
    Config {
        /// The function.
        function: String,
        /// The problem.
        error: ConfigError,
    },
    /// The file is not a usable component.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The outcome of [`Live::deploy`].
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The version now holding this code and configuration.
    pub version: Version,
    /// False when an identical version existed and was returned.
    pub created: bool,
}

/// The live functions of this process.
pub struct Live {
    engine: Engine,
    registry: Registry,
    meter: Meter,
    /// Where buckets live, for `files` mounts.
    storage_root: PathBuf,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Pools made on demand for versions nothing routes to (an admin
    /// invocation of `name:1`); dropped at the next reload.
    on_demand: Mutex<HashMap<VersionKey, Arc<Pool>>>,
    /// Functions compiled by a deploy, taken by the reload that follows so
    /// a new version is compiled once.
    just_compiled: Mutex<HashMap<VersionKey, Function>>,
    reloading: tokio::sync::Mutex<()>,
    draining: AtomicBool,
    /// Storage, watch and timer triggers, kept in step with the registry.
    event_triggers: tokio::sync::Mutex<Option<EventTriggers>>,
}

impl Live {
    /// An empty live state; call [`Live::reload`] to load the registry.
    pub fn new(
        engine: Engine,
        registry: Registry,
        meter: Meter,
        storage_root: PathBuf,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            registry,
            meter,
            storage_root,
            snapshot: RwLock::new(Arc::new(Snapshot {
                registry: RegistryState::default(),
                pools: HashMap::new(),
                routes: RouteTable::new([]),
            })),
            on_demand: Mutex::new(HashMap::new()),
            just_compiled: Mutex::new(HashMap::new()),
            reloading: tokio::sync::Mutex::new(()),
            draining: AtomicBool::new(false),
            event_triggers: tokio::sync::Mutex::new(None),
        })
    }

    /// The registry this state serves.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().expect("not poisoned").clone()
    }

    /// Validates, compiles and stores a component as a new version of
    /// `function` (or returns the identical existing version), then makes
    /// it live. `file_name` only names the upload in error messages.
    ///
    /// # Errors
    ///
    /// [`DeployError`]: a bad configuration, a file that is not a
    /// `wasi:http` component, or a registry failure. Nothing is stored then.
    pub async fn deploy(
        &self,
        function: &str,
        file_name: &str,
        wasm: Bytes,
        config: FunctionConfig,
    ) -> Result<Deployed, DeployError> {
        if !crate::registry::is_valid_function_name(function) {
            return Err(RegistryError::Invalid(format!(
                "invalid function name `{function}`; hint: use 1 to 64 lowercase letters, digits and `-`, starting with a letter"
            ))
            .into());
        }
        let (mut settings, _) = config.validate().map_err(|error| DeployError::Config {
            function: function.to_string(),
            error,
        })?;
        settings.mounts =
            crate::storage::mount_dirs(&self.storage_root, &config.files).map_err(|error| {
                RegistryError::Storage(error.context(format!(
                    "function `{function}`: cannot prepare its `files` mounts"
                )))
            })?;
        // The same code and configuration as the newest version: nothing
        // to compile or store.
        let sha256 = crate::registry::sha256_hex(&wasm);
        if let Some(latest) = self
            .snapshot()
            .registry
            .functions
            .get(function)
            .and_then(|record| record.versions.last())
            .filter(|latest| latest.sha256 == sha256 && latest.config == config)
        {
            return Ok(Deployed {
                version: latest.clone(),
                created: false,
            });
        }
        let engine = self.engine.clone();
        let (name, file) = (function.to_string(), PathBuf::from(file_name));
        let compiled = {
            let wasm = wasm.clone();
            tokio::task::spawn_blocking(move || {
                engine.compile_bytes(
                    ComponentSource {
                        function: &name,
                        path: &file,
                    },
                    &wasm,
                    settings,
                )
            })
            .await
            .expect("the compile task does not panic")
        };
        let (compiled, report) = compiled?;
        log_compile(function, &report);
        self.registry.store_artifact(&report.sha256, &wasm).await?;
        let (version, created) = self
            .registry
            .publish(function, &report.sha256, wasm.len() as u64, &config)
            .await?;
        if created {
            self.just_compiled
                .lock()
                .expect("not poisoned")
                .insert((function.to_string(), version.version), compiled);
            self.reload().await?;
        }
        Ok(Deployed { version, created })
    }

    /// Reads the registry and swaps in a new snapshot: pools for every
    /// reachable version (reusing the running ones), and the routes. Pools
    /// no longer reachable are drained.
    ///
    /// # Errors
    ///
    /// Fails when the registry cannot be read; a version that cannot be
    /// loaded is logged and left out (its requests are answered 503).
    pub async fn reload(&self) -> Result<(), RegistryError> {
        let _one_at_a_time = self.reloading.lock().await;
        let registry = self.registry.load().await?;
        let old = self.snapshot();
        let mut pools = HashMap::new();
        for key in reachable_versions(&registry) {
            if let Some(pool) = old.pools.get(&key) {
                pools.insert(key, pool.clone());
                continue;
            }
            let on_demand = self.on_demand.lock().expect("not poisoned").remove(&key);
            let pool = match on_demand {
                Some(pool) => Some(pool),
                None => self.start_pool(&registry, &key).await,
            };
            if let Some(pool) = pool {
                pools.insert(key, pool);
            }
        }
        let mut routes = Vec::new();
        for trigger in &registry.triggers {
            let TriggerSpec::Http { route, function } = &trigger.spec else {
                continue;
            };
            match (Route::parse(route), Target::parse(function)) {
                (Ok(route), Ok(target)) => routes.push((route, target)),
                _ => {
                    tracing::warn!(trigger = %trigger.id, "skipping a stored trigger that no longer parses")
                }
            }
        }
        let new = Arc::new(Snapshot {
            registry,
            pools,
            routes: RouteTable::new(routes),
        });
        *self.snapshot.write().expect("not poisoned") = new.clone();
        let dropped_on_demand: Vec<Arc<Pool>> = self
            .on_demand
            .lock()
            .expect("not poisoned")
            .drain()
            .map(|(_, pool)| pool)
            .collect();
        for (key, pool) in old.pools.iter() {
            if !new.pools.contains_key(key) {
                tracing::info!(function = %key.0, version = key.1, "version no longer reachable: draining its pool");
                pool.drain();
            }
        }
        for pool in dropped_on_demand {
            pool.drain();
        }
        if self.draining.load(Ordering::SeqCst) {
            for pool in new.pools.values() {
                pool.drain();
            }
        }
        // A storage trigger on a bucket nobody created yet creates it, so
        // uploads to it are accepted and trigger.
        for trigger in &new.registry.triggers {
            if let TriggerSpec::Storage(storage) = &trigger.spec
                && let Err(error) = crate::storage::ensure_bucket(
                    &self.storage_root,
                    &storage.bucket,
                    "a storage trigger",
                )
            {
                tracing::error!(trigger = %trigger.id, "{error:#}");
            }
        }
        if let Some(event_triggers) = self.event_triggers.lock().await.as_mut() {
            apply_event_triggers(event_triggers, &new.registry);
        }
        Ok(())
    }

    /// Hands the event side to this state: from now on every reload sets
    /// which storage, watch and timer triggers run.
    pub async fn attach_event_triggers(&self, mut event_triggers: EventTriggers) {
        let _one_at_a_time = self.reloading.lock().await;
        apply_event_triggers(&mut event_triggers, &self.snapshot().registry);
        *self.event_triggers.lock().await = Some(event_triggers);
    }

    /// The event queue's producer side, once attached.
    pub async fn events(&self) -> Option<Arc<crate::events::Events>> {
        self.event_triggers
            .lock()
            .await
            .as_ref()
            .map(|event_triggers| event_triggers.events.clone())
    }

    /// Takes the event side back (shutdown).
    pub async fn detach_event_triggers(&self) -> Option<EventTriggers> {
        self.event_triggers.lock().await.take()
    }

    /// The pool serving a target right now, from the current snapshot
    /// (event delivery; a version nothing routes to is not served).
    pub fn resolve_now(&self, target: &str) -> Option<Arc<Pool>> {
        let target = Target::parse(target).ok()?;
        resolve_in(&self.snapshot(), &target).ok()
    }

    async fn start_pool(&self, registry: &RegistryState, key: &VersionKey) -> Option<Arc<Pool>> {
        let (name, number) = key;
        let version = registry.functions.get(name)?.version(*number)?.clone();
        let (mut settings, pool_settings) = match version.config.validate() {
            Ok(settings) => settings,
            Err(error) => {
                tracing::error!(function = %name, version = number, "stored configuration is invalid: {error}");
                return None;
            }
        };
        settings.mounts = match crate::storage::mount_dirs(
            &self.storage_root,
            &version.config.files,
        ) {
            Ok(mounts) => mounts,
            Err(error) => {
                tracing::error!(function = %name, version = number, "cannot prepare its `files` mounts: {error:#}");
                return None;
            }
        };
        let just_compiled = self.just_compiled.lock().expect("not poisoned").remove(key);
        if let Some(function) = just_compiled {
            return Some(
                self.start_pool_with(name, *number, function, pool_settings)
                    .await,
            );
        }
        let engine = self.engine.clone();
        let path = self.registry.artifact_path(&version.sha256);
        let function_name = name.clone();
        let compiled = tokio::task::spawn_blocking(move || {
            engine.compile_file(
                ComponentSource {
                    function: &function_name,
                    path: &path,
                },
                settings,
            )
        })
        .await
        .expect("the compile task does not panic");
        let function = match compiled {
            Ok((function, report)) => {
                if report.sha256 != version.sha256 {
                    tracing::error!(function = %name, version = number, "stored component does not match its sha256; it was changed on disk");
                    return None;
                }
                log_compile(name, &report);
                function
            }
            Err(error) => {
                tracing::error!(function = %name, version = number, "cannot load version: {error}");
                return None;
            }
        };
        Some(
            self.start_pool_with(name, *number, function, pool_settings)
                .await,
        )
    }

    async fn start_pool_with(
        &self,
        name: &str,
        number: u32,
        function: Function,
        settings: crate::pool::PoolSettings,
    ) -> Arc<Pool> {
        let pool = Pool::start(Arc::new(function), number, settings, self.meter.clone());
        if let Err(error) = pool.prewarm_min().await {
            tracing::warn!(function = %name, version = number, "cannot create its min_instances: {error}");
        }
        pool
    }

    /// The pool that serves an HTTP path, if a route matches.
    pub fn route(&self, path: &str) -> Option<Result<Arc<Pool>, ResolveError>> {
        let snapshot = self.snapshot();
        let target = snapshot.routes.lookup(path)?;
        Some(resolve_in(&snapshot, target))
    }

    /// The pool that serves a target (`name`, `name:3`, `name:live`); a
    /// version nothing routes to gets a pool on demand.
    ///
    /// # Errors
    ///
    /// [`ResolveError`] when the target does not exist or cannot load.
    pub async fn resolve(&self, target: &Target) -> Result<Arc<Pool>, ResolveError> {
        let snapshot = self.snapshot();
        match resolve_in(&snapshot, target) {
            Err(ResolveError::Unavailable(_))
                if matches!(target.qualifier, Qualifier::Version(_)) =>
            {
                let Qualifier::Version(number) = target.qualifier else {
                    unreachable!()
                };
                let key = (target.function.clone(), number);
                if let Some(pool) = self.on_demand.lock().expect("not poisoned").get(&key) {
                    return Ok(pool.clone());
                }
                let pool = self
                    .start_pool(&snapshot.registry, &key)
                    .await
                    .ok_or_else(|| ResolveError::Unavailable(target.to_string()))?;
                Ok(self
                    .on_demand
                    .lock()
                    .expect("not poisoned")
                    .entry(key)
                    .or_insert(pool)
                    .clone())
            }
            other => other,
        }
    }

    /// Instance counts of each live version of `function`, newest first.
    pub fn instances(&self, function: &str) -> Vec<(u32, SlotCounts)> {
        let snapshot = self.snapshot();
        let mut counts: Vec<(u32, SlotCounts)> = snapshot
            .pools
            .iter()
            .filter(|((name, _), _)| name == function)
            .map(|((_, version), pool)| (*version, pool.counts()))
            .collect();
        counts.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        counts
    }

    /// Stops keeping instances everywhere (shutdown): idle ones go now,
    /// busy ones when they finish.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        for pool in self.snapshot().pools.values() {
            pool.drain();
        }
        for pool in self.on_demand.lock().expect("not poisoned").values() {
            pool.drain();
        }
    }
}

fn apply_event_triggers(event_triggers: &mut EventTriggers, registry: &RegistryState) {
    let (mut storage, mut watch, mut timer) = (Vec::new(), Vec::new(), Vec::new());
    for trigger in &registry.triggers {
        match &trigger.spec {
            TriggerSpec::Http { .. } => {}
            TriggerSpec::Storage(spec) => storage.push(spec.clone()),
            TriggerSpec::Watch(spec) => watch.push(spec.clone()),
            TriggerSpec::Timer(spec) => timer.push(spec.clone()),
        }
    }
    event_triggers.apply(storage, watch, timer);
}

/// Every version something can reach: each function's newest, every alias
/// version, and versions routes name.
fn reachable_versions(registry: &RegistryState) -> BTreeSet<VersionKey> {
    let mut reachable = BTreeSet::new();
    for record in registry.functions.values() {
        if let Some(latest) = record.latest() {
            reachable.insert((record.name.clone(), latest));
        }
        for alias in &record.aliases {
            for entry in &alias.versions {
                reachable.insert((record.name.clone(), entry.version));
            }
        }
    }
    for trigger in &registry.triggers {
        if let Ok(Target {
            function,
            qualifier: Qualifier::Version(number),
        }) = Target::parse(trigger.spec.function())
        {
            reachable.insert((function, number));
        }
    }
    reachable
}

fn resolve_in(snapshot: &Snapshot, target: &Target) -> Result<Arc<Pool>, ResolveError> {
    let record = snapshot
        .registry
        .functions
        .get(&target.function)
        .ok_or_else(|| ResolveError::NotFound(format!("no function `{}`", target.function)))?;
    let version = pick_version(
        record,
        &target.qualifier,
        fastrand::u32(0..crate::registry::TOTAL_WEIGHT),
    )
    .ok_or_else(|| ResolveError::NotFound(format!("`{target}` does not exist")))?;
    snapshot
        .pools
        .get(&(target.function.clone(), version))
        .cloned()
        .ok_or_else(|| ResolveError::Unavailable(format!("{}:{version}", target.function)))
}

/// The version a qualifier picks; `roll` (0..100) splits a weighted alias.
fn pick_version(record: &FunctionRecord, qualifier: &Qualifier, roll: u32) -> Option<u32> {
    match qualifier {
        Qualifier::Latest => record.latest(),
        Qualifier::Version(number) => record.version(*number).map(|version| version.version),
        Qualifier::Alias(name) => {
            let alias = record.alias(name)?;
            let mut remaining = roll;
            for entry in &alias.versions {
                if remaining < entry.weight {
                    return Some(entry.version);
                }
                remaining -= entry.weight;
            }
            alias.versions.last().map(|entry| entry.version)
        }
    }
}

/// Logs how a component was compiled (or loaded from the compile cache).
pub fn log_compile(function: &str, report: &CompileReport) {
    let sha256 = &report.sha256[..12];
    let millis = report.elapsed.as_secs_f64() * 1000.0;
    if report.from_cache {
        tracing::info!(%function, %sha256, "loaded function from the compile cache in {millis:.1} ms");
    } else {
        tracing::info!(
            %function,
            %sha256,
            wasm_bytes = report.wasm_bytes,
            "compiled function in {millis:.1} ms"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Alias, WeightedVersion};

    #[test]
    fn weighted_aliases_split_by_their_weights() {
        let record = FunctionRecord {
            name: "f".into(),
            created_at: String::new(),
            versions: Vec::new(),
            aliases: vec![Alias {
                name: "live".into(),
                versions: vec![
                    WeightedVersion {
                        version: 1,
                        weight: 90,
                    },
                    WeightedVersion {
                        version: 2,
                        weight: 10,
                    },
                ],
                updated_at: String::new(),
            }],
        };
        let live = Qualifier::Alias("live".into());
        let cases = [(0, 1), (89, 1), (90, 2), (99, 2)];
        for (roll, version) in cases {
            assert_eq!(
                pick_version(&record, &live, roll),
                Some(version),
                "roll {roll}"
            );
        }
        let picks_1 = (0..100)
            .filter(|roll| pick_version(&record, &live, *roll) == Some(1))
            .count();
        assert_eq!(picks_1, 90);
        assert_eq!(
            pick_version(&record, &Qualifier::Alias("canary".into()), 0),
            None
        );
    }
}
