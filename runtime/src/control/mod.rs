//! The control service: every change to what is deployed goes through
//! here. It checks the change against the registry's state (see
//! [`checks`]), compiles what a deploy brings, writes the registry, and
//! reloads: pools for every reachable version, the route table, the running
//! event triggers, one swap of the live snapshot. Checks, writes and
//! reloads run one at a time (a deploy compiles before it takes its turn),
//! so a check is never stale when its write lands.
//!
//! Nothing else writes the registry; readers use [`Live`]'s snapshot.
//!
//! In a cluster (PostgreSQL) other nodes write the same registry:
//! [`follow_cluster`] reloads when the stored registry generation differs
//! from the one last loaded, woken by the registry's `NOTIFY` and, since
//! notifications are lost while the listening connection is down, by a
//! check every 500 ms (`cluster.rs`).

mod checks;
mod cluster;

pub(crate) use cluster::follow_cluster;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::config::{ConfigError, FunctionConfig};
use crate::engine::{CompileError, CompileReport, ComponentSource, Engine, Function};
use crate::live::{Live, ResolveError, Snapshot, VersionKey};
use crate::manifest::{Manifest, PlannedTrigger};
use crate::metering::Meter;
use crate::model::{Invalid, Qualifier, Target, Trigger, TriggerSpec};
use crate::pool::{Pool, PoolSettings};
use crate::registry::{Alias, Registry, RegistryError, RegistryState, Version, WeightedVersion};
use crate::triggers::EventTriggers;

/// Why a change was refused. The API maps each variant to a status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    /// The named function, version, alias or trigger does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change contradicts the registry's state (a trigger still points
    /// at the function, a route is taken).
    #[error("{0}")]
    Conflict(String),
    /// The input is malformed (a bad name, weights that do not add up).
    #[error("{0}")]
    Invalid(String),
    /// A configuration value is out of range.
    #[error("function `{function}`: {}", error.with_hint())]
    Config {
        function: String,
        error: ConfigError,
    },
    /// The file is not a usable component.
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Storage(#[from] RegistryError),
}

impl From<Invalid> for ControlError {
    fn from(Invalid(message): Invalid) -> Self {
        Self::Invalid(message)
    }
}

/// The outcome of [`Control::deploy`].
#[derive(Debug, Clone)]
pub(crate) struct Deployed {
    /// The version now holding this code and configuration.
    pub(crate) version: Version,
    /// False when an identical version existed and was returned.
    pub(crate) created: bool,
}

/// What applying a manifest did, for the CLI to print.
#[derive(Debug, Default)]
pub(crate) struct ManifestApplied {
    /// `(function, version, created)`.
    pub(crate) functions: Vec<(String, u32, bool)>,
    /// Every trigger of the manifest and every stored one it does not
    /// mention, with what was done to it.
    pub(crate) triggers: Vec<PlannedTrigger>,
}

/// Owns the registry's writes and keeps [`Live`] in step with them.
pub(crate) struct Control {
    engine: Engine,
    registry: Registry,
    live: Arc<Live>,
    meter: Meter,
    /// Where buckets live, for `files` mounts and storage triggers.
    storage_root: PathBuf,
    /// One change at a time: check, write, reload.
    changes: tokio::sync::Mutex<()>,
    /// Pools made on demand for versions nothing routes to (an admin
    /// invocation of `name:1`); drained at the next reload.
    on_demand: Mutex<HashMap<VersionKey, Arc<Pool>>>,
    draining: AtomicBool,
    /// Storage, watch and timer triggers, kept in step with the registry.
    event_triggers: tokio::sync::Mutex<Option<EventTriggers>>,
    /// The registry generation the live snapshot was loaded at.
    loaded_generation: AtomicI64,
}

impl Control {
    /// Loads the registry and makes it live.
    ///
    /// # Errors
    ///
    /// The registry cannot be read.
    pub(crate) async fn start(
        engine: Engine,
        registry: Registry,
        meter: Meter,
        storage_root: PathBuf,
    ) -> Result<Arc<Self>, ControlError> {
        let control = Arc::new(Self {
            engine,
            registry,
            live: Arc::new(Live::new()),
            meter,
            storage_root,
            changes: tokio::sync::Mutex::new(()),
            on_demand: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            event_triggers: tokio::sync::Mutex::new(None),
            loaded_generation: AtomicI64::new(-1),
        });
        {
            let _one_change_at_a_time = control.changes.lock().await;
            control.reload(None).await?;
        }
        Ok(control)
    }

    /// What is being served, for readers.
    pub(crate) fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Reloads when another node changed the registry since the last
    /// load. Returns whether it reloaded.
    ///
    /// # Errors
    ///
    /// The registry cannot be read.
    pub(crate) async fn reload_if_changed(&self) -> Result<bool, ControlError> {
        if self.registry.generation().await? == self.loaded_generation.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let _one_change_at_a_time = self.changes.lock().await;
        if self.registry.generation().await? == self.loaded_generation.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.reload(None).await?;
        Ok(true)
    }

    /// The metering handle every pool records into.
    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Validates, compiles and stores a component as a new version of
    /// `function` (or returns the identical newest version), then makes it
    /// live. `file_name` only names the upload in error messages.
    ///
    /// # Errors
    ///
    /// A bad name or configuration, a file that is not a `wasi:http`
    /// component, or a registry failure. Nothing is stored then.
    pub(crate) async fn deploy(
        &self,
        function: &str,
        file_name: &str,
        wasm: Bytes,
        config: FunctionConfig,
    ) -> Result<Deployed, ControlError> {
        crate::model::check_function_name(function)?;
        let (settings, _) = self.settings_of(function, &config)?;
        // The same code and configuration as the newest version: nothing
        // to compile or store.
        let sha256 = crate::registry::sha256_hex(&wasm);
        if let Some(latest) = self
            .live
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
        // Compiling took no lock (a large component takes seconds); numbering
        // the version and making it live is one change.
        let _one_change_at_a_time = self.changes.lock().await;
        let (version, created) = self
            .registry
            .publish(function, &report.sha256, wasm.len() as u64, &config)
            .await?;
        if created {
            let key = (function.to_string(), version.version);
            self.reload(Some((key, compiled))).await?;
        }
        Ok(Deployed { version, created })
    }

    /// Deletes a function with its versions and aliases. Refused while
    /// triggers point at it, unless `force`, which deletes those triggers
    /// too (in the same transaction). Returns the triggers deleted.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Conflict`], storage.
    pub(crate) async fn delete_function(
        &self,
        name: &str,
        force: bool,
    ) -> Result<Vec<Trigger>, ControlError> {
        let _one_change_at_a_time = self.changes.lock().await;
        let state = self.registry.load().await?;
        let pointing = checks::check_function_deletable(&state, name, force)?;
        let ids: Vec<&str> = pointing.iter().map(|trigger| trigger.id.as_str()).collect();
        self.registry.delete_function(name, &ids).await?;
        self.reload(None).await?;
        Ok(pointing)
    }

    /// Points `alias` of `function` at one version, or two with weights.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown function or version,
    /// [`ControlError::Invalid`] for a bad name or weights.
    pub(crate) async fn set_alias(
        &self,
        function: &str,
        alias: &str,
        versions: &[WeightedVersion],
    ) -> Result<Alias, ControlError> {
        let _one_change_at_a_time = self.changes.lock().await;
        let state = self.registry.load().await?;
        checks::check_alias(&state, function, alias, versions)?;
        let alias = self.registry.put_alias(function, alias, versions).await?;
        self.reload(None).await?;
        Ok(alias)
    }

    /// Deletes an alias. Refused while a trigger targets it.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Conflict`].
    pub(crate) async fn delete_alias(
        &self,
        function: &str,
        alias: &str,
    ) -> Result<(), ControlError> {
        let _one_change_at_a_time = self.changes.lock().await;
        let state = self.registry.load().await?;
        checks::check_alias_deletable(&state, function, alias)?;
        self.registry.delete_alias(function, alias).await?;
        self.reload(None).await
    }

    /// Adds a trigger after checking that its target exists, its settings
    /// hold and its route or name is free.
    ///
    /// # Errors
    ///
    /// [`ControlError::Invalid`], [`ControlError::NotFound`] (the target),
    /// [`ControlError::Conflict`] (the route or name is taken).
    pub(crate) async fn create_trigger(
        &self,
        mut spec: TriggerSpec,
    ) -> Result<Trigger, ControlError> {
        let _one_change_at_a_time = self.changes.lock().await;
        let state = self.registry.load().await?;
        checks::check_new_trigger(&state, &mut spec, None)?;
        self.check_watch_folder(&spec).await?;
        let mut added = self.registry.replace_triggers(&[], vec![spec]).await?;
        self.reload(None).await?;
        Ok(added.remove(0))
    }

    /// Rewrites a trigger in place (same id, same kind): another target,
    /// route or settings, checked as for a new trigger.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] (the id or the target),
    /// [`ControlError::Invalid`] (another kind, bad settings),
    /// [`ControlError::Conflict`] (the route or name is another's).
    pub(crate) async fn update_trigger(
        &self,
        id: &str,
        mut spec: TriggerSpec,
    ) -> Result<Trigger, ControlError> {
        let _one_change_at_a_time = self.changes.lock().await;
        let state = self.registry.load().await?;
        let stored = checks::check_trigger_update(&state, id, &spec)?;
        checks::check_new_trigger(&state, &mut spec, Some(id))?;
        self.check_watch_folder(&spec).await?;
        let trigger = Trigger {
            id: stored.id.clone(),
            spec,
            created_at: stored.created_at.clone(),
        };
        self.registry
            .write_triggers(&[], std::slice::from_ref(&trigger), Vec::new())
            .await?;
        self.reload(None).await?;
        Ok(trigger)
    }

    /// Deletes a trigger.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub(crate) async fn delete_trigger(&self, id: &str) -> Result<(), ControlError> {
        let _one_change_at_a_time = self.changes.lock().await;
        let state = self.registry.load().await?;
        if !state.triggers.iter().any(|trigger| trigger.id == id) {
            return Err(ControlError::NotFound(format!(
                "no trigger `{id}`; hint: `kumo triggers list` shows the ids"
            )));
        }
        self.registry.replace_triggers(&[id], Vec::new()).await?;
        self.reload(None).await
    }

    /// Deploys every function of a manifest (a new version only where code
    /// or configuration changed) and makes each of its triggers exist as
    /// written, in one transaction: a trigger in the same place (route, or
    /// kind and name) with other settings is rewritten in place, except
    /// that a target set through the API on an alias or version of the
    /// function the manifest names is kept (see
    /// [`crate::manifest::PlannedTrigger`]). Stored triggers the manifest
    /// does not mention stay; the outcome lists them.
    ///
    /// # Errors
    ///
    /// The first function or trigger that cannot be deployed, named.
    pub(crate) async fn apply_manifest(
        &self,
        manifest: &Manifest,
    ) -> anyhow::Result<ManifestApplied> {
        let mut outcome = ManifestApplied::default();
        for spec in manifest.functions.values() {
            let wasm = tokio::fs::read(&spec.source).await.map_err(|error| {
                anyhow::anyhow!(
                    "function `{}`: cannot read source `{}`: {error}; hint: check the path (relative paths are relative to the manifest), or build the function first (`--build`)",
                    spec.name,
                    spec.source.display()
                )
            })?;
            let deployed = self
                .deploy(
                    &spec.name,
                    &spec.source.display().to_string(),
                    wasm.into(),
                    spec.config.clone(),
                )
                .await?;
            outcome.functions.push((
                spec.name.clone(),
                deployed.version.version,
                deployed.created,
            ));
        }
        let _one_change_at_a_time = self.changes.lock().await;
        let state = self.registry.load().await?;
        let mut plan = manifest.plan_triggers(&state.triggers);
        let (mut update, mut add) = (Vec::new(), Vec::new());
        for planned in plan.iter_mut().filter(|planned| planned.change.writes()) {
            let replacing = planned.change.stored_id();
            checks::check_new_trigger(&state, &mut planned.spec, replacing).map_err(|error| {
                anyhow::anyhow!(
                    "{}: {}: {error}",
                    manifest.path.display(),
                    crate::manifest::trigger_subject(&planned.spec)
                )
            })?;
            self.check_watch_folder(&planned.spec)
                .await
                .map_err(|error| {
                    anyhow::anyhow!(
                        "{}: {}: {error}",
                        manifest.path.display(),
                        crate::manifest::trigger_subject(&planned.spec)
                    )
                })?;
            match replacing.and_then(|id| state.triggers.iter().find(|stored| stored.id == id)) {
                Some(stored) => update.push(Trigger {
                    id: stored.id.clone(),
                    spec: planned.spec.clone(),
                    created_at: stored.created_at.clone(),
                }),
                None => add.push(planned.spec.clone()),
            }
        }
        if !update.is_empty() || !add.is_empty() {
            self.registry.write_triggers(&[], &update, add).await?;
            self.reload(None).await?;
        }
        outcome.triggers = plan;
        Ok(outcome)
    }

    /// The pool that serves a target (`name`, `name:3`, `name:live`), for a
    /// direct invocation: a version nothing routes to gets a pool on
    /// demand, kept until the next reload.
    ///
    /// # Errors
    ///
    /// [`ResolveError::NotFound`] when the target does not exist,
    /// [`ResolveError::Unavailable`] when its version cannot be loaded.
    pub(crate) async fn pool_for_invoke(&self, target: &Target) -> Result<Arc<Pool>, ResolveError> {
        let snapshot = self.live.snapshot();
        match snapshot.resolve(target) {
            Err(ResolveError::Unavailable(_)) => {
                let Qualifier::Version(number) = target.qualifier else {
                    return snapshot.resolve(target);
                };
                let key = (target.function.clone(), number);
                if let Some(pool) = self.on_demand().get(&key) {
                    return Ok(pool.clone());
                }
                let pool = self
                    .start_pool(&snapshot.registry, &key, None)
                    .await
                    .ok_or_else(|| ResolveError::Unavailable(target.to_string()))?;
                Ok(self.on_demand().entry(key).or_insert(pool).clone())
            }
            other => other,
        }
    }

    /// Hands the event side to control: from now on every reload sets which
    /// storage, watch and timer triggers run.
    /// A watch trigger's folder must exist under the allowed roots (checked
    /// before the trigger is stored, so the caller hears why at once).
    async fn check_watch_folder(&self, spec: &TriggerSpec) -> Result<(), ControlError> {
        let TriggerSpec::Watch(trigger) = spec else {
            return Ok(());
        };
        let event_triggers = self.event_triggers.lock().await;
        let Some(event_triggers) = event_triggers.as_ref() else {
            return Ok(());
        };
        event_triggers
            .watch_roots()
            .check(&trigger.path)
            .map(|_| ())
            .map_err(|error| ControlError::Invalid(format!("watch trigger: {error}")))
    }

    pub(crate) async fn attach_event_triggers(&self, mut event_triggers: EventTriggers) {
        let _one_change_at_a_time = self.changes.lock().await;
        apply_event_triggers(&mut event_triggers, &self.live.snapshot().registry);
        *self.event_triggers.lock().await = Some(event_triggers);
    }

    /// The event queue's producer side, once attached.
    pub(crate) async fn events(&self) -> Option<Arc<crate::events::Events>> {
        self.event_triggers
            .lock()
            .await
            .as_ref()
            .map(|event_triggers| event_triggers.events.clone())
    }

    /// Takes the event side back (shutdown).
    pub(crate) async fn detach_event_triggers(&self) -> Option<EventTriggers> {
        self.event_triggers.lock().await.take()
    }

    /// Stops keeping instances everywhere (shutdown): idle ones go now,
    /// busy ones when they finish.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        for pool in self.live.snapshot().pools() {
            pool.drain();
        }
        for pool in self.on_demand().values() {
            pool.drain();
        }
    }

    /// Waits (at most `wait`) until no pool has a busy or starting
    /// instance: every invocation still running when the listeners closed
    /// (a guest that answered, then went on) has ended and handed its part
    /// of the record to the meter.
    pub(crate) async fn wait_for_running_invocations(&self, wait: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let pools: Vec<Arc<Pool>> = self
                .live
                .snapshot()
                .pools()
                .cloned()
                .chain(self.on_demand().values().cloned())
                .collect();
            let running = pools.iter().any(|pool| {
                let counts = pool.counts();
                counts.busy > 0 || counts.starting > 0
            });
            if !running || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn on_demand(&self) -> std::sync::MutexGuard<'_, HashMap<VersionKey, Arc<Pool>>> {
        self.on_demand
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The engine's and the pool's settings of a configuration, with the
    /// host folders of its `files` mounts.
    fn settings_of(
        &self,
        function: &str,
        config: &FunctionConfig,
    ) -> Result<(crate::engine::FunctionSettings, PoolSettings), ControlError> {
        let (mut settings, pool) = config.validate().map_err(|error| ControlError::Config {
            function: function.to_string(),
            error,
        })?;
        settings.mounts =
            crate::storage::mount_dirs(&self.storage_root, &config.files).map_err(|error| {
                if config.files.iter().any(|mount| mount.dir.is_some()) {
                    // A host folder the caller named: say which and why.
                    ControlError::Invalid(format!(
                        "function `{function}`: cannot prepare its `files` mounts: {error:#}"
                    ))
                } else {
                    RegistryError::from(error.context(format!(
                        "function `{function}`: cannot prepare its `files` mounts"
                    )))
                    .into()
                }
            })?;
        Ok((settings, pool))
    }

    /// Reads the registry and swaps in a new snapshot: pools for every
    /// reachable version (reusing the running ones; `just_compiled` is a
    /// version a deploy compiled a moment ago), and the routes. Pools no
    /// longer reachable are drained. Call with `changes` held.
    async fn reload(
        &self,
        mut just_compiled: Option<(VersionKey, Function)>,
    ) -> Result<(), ControlError> {
        // The generation first: a write landing between the two reads
        // makes the next check reload again, never miss it.
        let generation = self.registry.generation().await?;
        let registry = self.registry.load().await?;
        self.loaded_generation.store(generation, Ordering::SeqCst);
        let old = self.live.snapshot();
        let mut pools = HashMap::new();
        for key in reachable_versions(&registry) {
            if let Some(pool) = old.pool(&key) {
                pools.insert(key, pool.clone());
                continue;
            }
            let on_demand = self.on_demand().remove(&key);
            let compiled = match &just_compiled {
                Some((compiled_key, _)) if *compiled_key == key => {
                    just_compiled.take().map(|(_, function)| function)
                }
                _ => None,
            };
            let pool = match on_demand {
                Some(pool) => Some(pool),
                None => self.start_pool(&registry, &key, compiled).await,
            };
            if let Some(pool) = pool {
                pools.insert(key, pool);
            }
        }
        let new = self.live.swap(Snapshot::new(registry, pools));
        let dropped_on_demand: Vec<Arc<Pool>> =
            self.on_demand().drain().map(|(_, pool)| pool).collect();
        for (key, pool) in old.pools_by_version() {
            if new.pool(key).is_none() {
                tracing::info!(function = %key.0, version = key.1, "version no longer reachable: draining its pool");
                pool.drain();
            }
        }
        for pool in dropped_on_demand {
            pool.drain();
        }
        if self.draining.load(Ordering::SeqCst) {
            for pool in new.pools() {
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
                tracing::error!(trigger = %trigger.id, error = format!("{error:#}"), "cannot create the bucket of a storage trigger");
            }
        }
        if let Some(event_triggers) = self.event_triggers.lock().await.as_mut() {
            apply_event_triggers(event_triggers, &new.registry);
        }
        Ok(())
    }

    /// A pool for a stored version: compiled now (from the compile cache
    /// when it can), unless `compiled` already holds it. `None` when it
    /// cannot load (logged; its requests are answered 503).
    async fn start_pool(
        &self,
        registry: &RegistryState,
        key: &VersionKey,
        compiled: Option<Function>,
    ) -> Option<Arc<Pool>> {
        let (name, number) = key;
        let version = registry.functions.get(name)?.version(*number)?.clone();
        let (settings, pool_settings) = match self.settings_of(name, &version.config) {
            Ok(settings) => settings,
            Err(error) => {
                tracing::error!(function = %name, version = number, error = %error, "cannot load a stored version");
                return None;
            }
        };
        let function = match compiled {
            Some(function) => function,
            None => {
                if let Err(error) = self.registry.ensure_artifact(&version.sha256).await {
                    tracing::error!(function = %name, version = number, error = %error, "cannot fetch a stored component");
                    return None;
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
                match compiled {
                    Ok((function, report)) if report.sha256 == version.sha256 => {
                        log_compile(name, &report);
                        function
                    }
                    Ok(_) => {
                        tracing::error!(function = %name, version = number, "stored component does not match its sha256; it was changed on disk");
                        return None;
                    }
                    Err(error) => {
                        tracing::error!(function = %name, version = number, error = %error, "cannot load version");
                        return None;
                    }
                }
            }
        };
        let pool = Pool::start(
            Arc::new(function),
            *number,
            pool_settings,
            self.meter.clone(),
        );
        if let Err(error) = pool.prewarm_min().await {
            tracing::warn!(function = %name, version = number, error = %error, "cannot create its min_instances");
        }
        Some(pool)
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
/// version, and versions triggers name.
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
        let target = trigger.spec.function();
        if let Qualifier::Version(number) = target.qualifier {
            reachable.insert((target.function.clone(), number));
        }
    }
    reachable
}

/// Logs how a component was compiled (or loaded from the compile cache).
pub(crate) fn log_compile(function: &str, report: &CompileReport) {
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
