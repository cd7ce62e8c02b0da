//! The registry: functions, their immutable numbered versions (code sha256
//! plus full configuration), aliases and triggers, persisted in SQLite;
//! component files stored once under `<data-dir>/artifacts/<sha256>.wasm`.
//!
//! The registry only stores and checks; it compiles nothing and serves
//! nothing. `server` reads it (see [`Registry::load`]) to decide which
//! versions get pools and where routes go.

pub mod config;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::database::Database;
use crate::events::trigger::{StorageTrigger, TimerTrigger, WatchTrigger};
pub use config::{ConfigError, FunctionConfig};

/// Alias routing weights add up to this.
pub const TOTAL_WEIGHT: u32 = 100;

/// Why a registry call was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The named function, version, alias or trigger does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The call contradicts the registry's state (a trigger still points at
    /// the function, a route is taken).
    #[error("{0}")]
    Conflict(String),
    /// The input is malformed (a bad name, weights that do not add up).
    #[error("{0}")]
    Invalid(String),
    /// The database or the artifact store failed.
    #[error("registry storage failed: {0}")]
    Storage(#[from] anyhow::Error),
}

impl From<sqlx::Error> for RegistryError {
    fn from(error: sqlx::Error) -> Self {
        Self::Storage(error.into())
    }
}

/// One immutable version of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Version {
    /// The function's name.
    pub function: String,
    /// 1, 2, 3 ... per function.
    pub version: u32,
    /// The component's sha256, hex.
    pub sha256: String,
    /// The component's size.
    pub wasm_bytes: u64,
    /// The full configuration.
    pub config: FunctionConfig,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// One version an alias routes to, with its share of the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WeightedVersion {
    /// The version.
    pub version: u32,
    /// Its share out of 100.
    pub weight: u32,
}

/// A movable name for one version, or two with weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alias {
    /// The alias's name (`live`).
    pub name: String,
    /// One entry of weight 100, or two whose weights add up to 100.
    pub versions: Vec<WeightedVersion>,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// What a trigger is and what it invokes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TriggerSpec {
    /// An HTTP route on the function gateway.
    Http {
        /// `/hello` (exact) or `/api/...` (prefix).
        route: String,
        /// `name`, `name:3` (a version) or `name:alias`.
        function: String,
    },
    /// Objects created or removed in a bucket of Kumo's object storage.
    Storage(StorageTrigger),
    /// Files written into a folder on the host.
    Watch(WatchTrigger),
    /// A cron schedule.
    Timer(TimerTrigger),
}

impl TriggerSpec {
    /// The target it invokes, as written.
    pub fn function(&self) -> &str {
        match self {
            Self::Http { function, .. } => function,
            Self::Storage(trigger) => &trigger.function,
            Self::Watch(trigger) => &trigger.function,
            Self::Timer(trigger) => &trigger.function,
        }
    }

    /// `http`, `storage`, `watch` or `timer`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::Storage(_) => "storage",
            Self::Watch(_) => "watch",
            Self::Timer(_) => "timer",
        }
    }

    /// The event trigger's name (unique per kind); `None` for HTTP.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Http { .. } => None,
            Self::Storage(trigger) => Some(&trigger.name),
            Self::Watch(trigger) => Some(&trigger.name),
            Self::Timer(trigger) => Some(&trigger.name),
        }
    }

    /// Whether `other` would take this trigger's place: the same HTTP
    /// route, or the same kind and name of an event trigger.
    pub fn same_slot(&self, other: &TriggerSpec) -> bool {
        match (self, other) {
            (Self::Http { route, .. }, Self::Http { route: other, .. }) => route == other,
            _ => self.kind() == other.kind() && self.name() == other.name(),
        }
    }

    /// What fires it, in a few words: the route, the bucket and filter,
    /// the folder, or the schedule.
    pub fn describe(&self) -> String {
        match self {
            Self::Http { route, .. } => route.clone(),
            Self::Storage(trigger) => format!(
                "{} {}*{} {}",
                trigger.bucket,
                trigger.prefix,
                trigger.suffix,
                trigger.events.join(",")
            ),
            Self::Watch(trigger) => format!(
                "{}{}",
                trigger.path.display(),
                trigger
                    .pattern
                    .as_ref()
                    .map(|pattern| format!(" ({pattern})"))
                    .unwrap_or_default()
            ),
            Self::Timer(trigger) => format!("cron {}", trigger.cron),
        }
    }

    fn name_mut(&mut self) -> Option<&mut String> {
        match self {
            Self::Http { .. } => None,
            Self::Storage(trigger) => Some(&mut trigger.name),
            Self::Watch(trigger) => Some(&mut trigger.name),
            Self::Timer(trigger) => Some(&mut trigger.name),
        }
    }
}

/// A stored trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Trigger {
    /// Its id (`trg_...`).
    pub id: String,
    /// Its kind and settings.
    #[serde(flatten)]
    pub spec: TriggerSpec,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// A function with everything the registry holds of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FunctionRecord {
    /// The function's name.
    pub name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Every version, oldest first.
    pub versions: Vec<Version>,
    /// Its aliases, by name.
    pub aliases: Vec<Alias>,
}

impl FunctionRecord {
    /// The newest version's number.
    pub fn latest(&self) -> Option<u32> {
        self.versions.last().map(|version| version.version)
    }

    /// The numbered version.
    pub fn version(&self, number: u32) -> Option<&Version> {
        self.versions
            .iter()
            .find(|version| version.version == number)
    }

    /// The named alias.
    pub fn alias(&self, name: &str) -> Option<&Alias> {
        self.aliases.iter().find(|alias| alias.name == name)
    }
}

/// Everything in the registry, read at once.
#[derive(Debug, Clone, Default)]
pub struct RegistryState {
    /// Functions by name.
    pub functions: BTreeMap<String, FunctionRecord>,
    /// Every trigger, oldest first.
    pub triggers: Vec<Trigger>,
}

/// What a trigger's `function` names: a function's newest version, one
/// version, or an alias.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The function's name.
    pub function: String,
    /// Which of its versions.
    pub qualifier: Qualifier,
}

/// The part after `:` in `name:3` or `name:live`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// No qualifier: the newest version.
    Latest,
    /// `name:3`.
    Version(u32),
    /// `name:live`.
    Alias(String),
}

impl Target {
    /// Parses `name`, `name:3` or `name:alias`.
    ///
    /// # Errors
    ///
    /// A message naming the malformed part.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let (function, qualifier) = match text.split_once(':') {
            None => (text, Qualifier::Latest),
            Some((function, qualifier)) => {
                let qualifier = if let Ok(number) = qualifier.parse::<u32>() {
                    if number == 0 {
                        return Err(RegistryError::Invalid(format!(
                            "invalid target `{text}`: versions start at 1; hint: write `{function}:1`"
                        )));
                    }
                    Qualifier::Version(number)
                } else if is_valid_alias_name(qualifier) {
                    Qualifier::Alias(qualifier.to_string())
                } else {
                    return Err(RegistryError::Invalid(format!(
                        "invalid target `{text}`: `{qualifier}` is neither a version number nor an alias name; \
                         hint: write `{function}`, `{function}:3` or `{function}:live`"
                    )));
                };
                (function, qualifier)
            }
        };
        check_function_name(function)?;
        Ok(Self {
            function: function.to_string(),
            qualifier,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.qualifier {
            Qualifier::Latest => write!(f, "{}", self.function),
            Qualifier::Version(number) => write!(f, "{}:{number}", self.function),
            Qualifier::Alias(alias) => write!(f, "{}:{alias}", self.function),
        }
    }
}

/// Function names: 1 to 64 of `a-z`, `0-9`, `-`, starting with a letter.
pub fn is_valid_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Alias names: like function names, and `_` allowed; never all digits
/// (that would read as a version).
pub fn is_valid_alias_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn check_function_name(name: &str) -> Result<(), RegistryError> {
    if is_valid_function_name(name) {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "invalid function name `{name}`; hint: use 1 to 64 lowercase letters, digits and `-`, starting with a letter"
        )))
    }
}

fn check_alias_name(name: &str) -> Result<(), RegistryError> {
    if is_valid_alias_name(name) {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "invalid alias name `{name}`; hint: use 1 to 64 lowercase letters, digits, `-` and `_`, starting with a letter (like `live`)"
        )))
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The sha256 of a component, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The registry: a database and an artifact folder.
#[derive(Clone)]
pub struct Registry {
    database: Database,
    artifacts: PathBuf,
    /// Changes check the state, then write: one at a time, so two deploys
    /// never take the same version number and a check is never stale.
    writes: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Registry {
    /// A registry over `database`, keeping components in
    /// `<data_dir>/artifacts`.
    ///
    /// # Errors
    ///
    /// Fails when the artifact folder cannot be created.
    pub fn new(database: Database, data_dir: &Path) -> anyhow::Result<Self> {
        let artifacts = data_dir.join("artifacts");
        std::fs::create_dir_all(&artifacts)
            .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", artifacts.display()))?;
        Ok(Self {
            database,
            artifacts,
            writes: Default::default(),
        })
    }

    /// Where a component with this sha256 is kept.
    pub fn artifact_path(&self, sha256: &str) -> PathBuf {
        self.artifacts.join(format!("{sha256}.wasm"))
    }

    /// Stores a component once, by content: written to a temporary file and
    /// renamed into place, so a crash never leaves half a component.
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be written.
    pub async fn store_artifact(&self, sha256: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let path = self.artifact_path(sha256);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(());
        }
        let temporary = self
            .artifacts
            .join(format!(".{sha256}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let write = async {
            tokio::fs::write(&temporary, bytes).await?;
            tokio::fs::File::open(&temporary).await?.sync_all().await?;
            tokio::fs::rename(&temporary, &path).await
        };
        if let Err(error) = write.await {
            let _ = tokio::fs::remove_file(&temporary).await;
            return Err(RegistryError::Storage(anyhow::anyhow!(
                "cannot store the component {}: {error}",
                path.display()
            )));
        }
        Ok(())
    }

    /// Reads everything: functions with versions and aliases, and triggers.
    ///
    /// # Errors
    ///
    /// Fails when the database cannot be read.
    pub async fn load(&self) -> Result<RegistryState, RegistryError> {
        let mut state = RegistryState::default();
        for row in sqlx::query("SELECT name, created_at FROM functions ORDER BY name")
            .fetch_all(&self.database)
            .await?
        {
            let name: String = row.get("name");
            state.functions.insert(
                name.clone(),
                FunctionRecord {
                    name,
                    created_at: row.get("created_at"),
                    versions: Vec::new(),
                    aliases: Vec::new(),
                },
            );
        }
        for row in sqlx::query(
            "SELECT function, number, sha256, wasm_bytes, config, created_at FROM versions ORDER BY function, number",
        )
        .fetch_all(&self.database)
        .await?
        {
            let function: String = row.get("function");
            let config: String = row.get("config");
            let config = serde_json::from_str(&config).map_err(|error| {
                RegistryError::Storage(anyhow::anyhow!(
                    "stored configuration of `{function}` is unreadable: {error}"
                ))
            })?;
            let version = Version {
                function: function.clone(),
                version: row.get::<i64, _>("number") as u32,
                sha256: row.get("sha256"),
                wasm_bytes: row.get::<i64, _>("wasm_bytes") as u64,
                config,
                created_at: row.get("created_at"),
            };
            if let Some(record) = state.functions.get_mut(&function) {
                record.versions.push(version);
            }
        }
        for row in sqlx::query(
            "SELECT function, name, routing, updated_at FROM aliases ORDER BY function, name",
        )
        .fetch_all(&self.database)
        .await?
        {
            let function: String = row.get("function");
            let routing: String = row.get("routing");
            let versions = serde_json::from_str(&routing).map_err(|error| {
                RegistryError::Storage(anyhow::anyhow!(
                    "stored alias of `{function}` is unreadable: {error}"
                ))
            })?;
            if let Some(record) = state.functions.get_mut(&function) {
                record.aliases.push(Alias {
                    name: row.get("name"),
                    versions,
                    updated_at: row.get("updated_at"),
                });
            }
        }
        for row in
            sqlx::query("SELECT id, config, created_at FROM triggers ORDER BY created_at, id")
                .fetch_all(&self.database)
                .await?
        {
            let id: String = row.get("id");
            let config: String = row.get("config");
            let spec = serde_json::from_str(&config).map_err(|error| {
                RegistryError::Storage(anyhow::anyhow!(
                    "stored trigger `{id}` is unreadable: {error}"
                ))
            })?;
            state.triggers.push(Trigger {
                id,
                spec,
                created_at: row.get("created_at"),
            });
        }
        Ok(state)
    }

    /// Adds a version of `function` (creating the function), unless its
    /// newest version has the same code and configuration: then that one is
    /// returned. The component must already be stored.
    ///
    /// Returns the version and whether it is new.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Invalid`] for a bad name; storage failures.
    pub async fn publish(
        &self,
        function: &str,
        sha256: &str,
        wasm_bytes: u64,
        config: &FunctionConfig,
    ) -> Result<(Version, bool), RegistryError> {
        let _one_change_at_a_time = self.writes.lock().await;
        check_function_name(function)?;
        let config_json = config.canonical_json();
        let mut transaction = crate::database::begin_write(&self.database).await?;
        // Like Lambda's PublishVersion: only the newest version counts as
        // "the same", so redeploying older code makes it current again.
        let latest = sqlx::query(
            "SELECT number, sha256, config, created_at FROM versions WHERE function = $1 ORDER BY number DESC LIMIT 1",
        )
        .bind(function)
        .fetch_optional(&mut *transaction)
        .await?;
        let unchanged = latest.filter(|row| {
            row.get::<String, _>("sha256") == sha256
                && row.get::<String, _>("config") == config_json
        });
        if let Some(row) = unchanged {
            return Ok((
                Version {
                    function: function.to_string(),
                    version: row.get::<i64, _>("number") as u32,
                    sha256: sha256.to_string(),
                    wasm_bytes,
                    config: config.clone(),
                    created_at: row.get("created_at"),
                },
                false,
            ));
        }
        let created_at = now();
        sqlx::query("INSERT INTO functions (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(function)
            .bind(&created_at)
            .execute(&mut *transaction)
            .await?;
        let next: i64 = sqlx::query(
            "SELECT COALESCE(MAX(number), 0) + 1 AS next FROM versions WHERE function = $1",
        )
        .bind(function)
        .fetch_one(&mut *transaction)
        .await?
        .get("next");
        sqlx::query(
            "INSERT INTO versions (function, number, sha256, wasm_bytes, config, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(function)
        .bind(next)
        .bind(sha256)
        .bind(wasm_bytes as i64)
        .bind(&config_json)
        .bind(&created_at)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok((
            Version {
                function: function.to_string(),
                version: next as u32,
                sha256: sha256.to_string(),
                wasm_bytes,
                config: config.clone(),
                created_at,
            },
            true,
        ))
    }

    /// Deletes a function with its versions and aliases. Refused while
    /// triggers point at it, unless `force`, which deletes those triggers
    /// too. Returns the triggers deleted.
    ///
    /// # Errors
    ///
    /// [`RegistryError::NotFound`], [`RegistryError::Conflict`].
    pub async fn delete_function(
        &self,
        name: &str,
        force: bool,
    ) -> Result<Vec<Trigger>, RegistryError> {
        let _one_change_at_a_time = self.writes.lock().await;
        let state = self.load().await?;
        if !state.functions.contains_key(name) {
            return Err(unknown_function(name, &state));
        }
        let pointing: Vec<Trigger> = state
            .triggers
            .iter()
            .filter(|trigger| {
                Target::parse(trigger.spec.function()).is_ok_and(|target| target.function == name)
            })
            .cloned()
            .collect();
        if !pointing.is_empty() && !force {
            let ids: Vec<&str> = pointing.iter().map(|t| t.id.as_str()).collect();
            return Err(RegistryError::Conflict(format!(
                "function `{name}` is still the target of {} trigger(s): {}; hint: delete them first, or pass force=true to delete them with the function",
                pointing.len(),
                ids.join(", ")
            )));
        }
        let mut transaction = crate::database::begin_write(&self.database).await?;
        for trigger in &pointing {
            sqlx::query("DELETE FROM triggers WHERE id = $1")
                .bind(&trigger.id)
                .execute(&mut *transaction)
                .await?;
        }
        sqlx::query("DELETE FROM functions WHERE name = $1")
            .bind(name)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(pointing)
    }

    /// Points `alias` of `function` at one version, or two with weights.
    ///
    /// # Errors
    ///
    /// [`RegistryError::NotFound`] for an unknown function or version,
    /// [`RegistryError::Invalid`] for a bad name or weights.
    pub async fn set_alias(
        &self,
        function: &str,
        alias: &str,
        versions: &[WeightedVersion],
    ) -> Result<Alias, RegistryError> {
        let _one_change_at_a_time = self.writes.lock().await;
        check_alias_name(alias)?;
        let state = self.load().await?;
        let record = state
            .functions
            .get(function)
            .ok_or_else(|| unknown_function(function, &state))?;
        check_weights(alias, versions)?;
        for entry in versions {
            if record.version(entry.version).is_none() {
                return Err(RegistryError::NotFound(format!(
                    "function `{function}` has no version {}; hint: its versions are 1..={}",
                    entry.version,
                    record.latest().unwrap_or(0)
                )));
            }
        }
        let updated_at = now();
        let routing = serde_json::to_string(versions).expect("weights serialize");
        sqlx::query(
            "INSERT INTO aliases (function, name, routing, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (function, name) DO UPDATE SET routing = excluded.routing, updated_at = excluded.updated_at",
        )
        .bind(function)
        .bind(alias)
        .bind(&routing)
        .bind(&updated_at)
        .execute(&self.database)
        .await?;
        Ok(Alias {
            name: alias.to_string(),
            versions: versions.to_vec(),
            updated_at,
        })
    }

    /// Deletes an alias. Refused while a trigger targets it.
    ///
    /// # Errors
    ///
    /// [`RegistryError::NotFound`], [`RegistryError::Conflict`].
    pub async fn delete_alias(&self, function: &str, alias: &str) -> Result<(), RegistryError> {
        let _one_change_at_a_time = self.writes.lock().await;
        let state = self.load().await?;
        let record = state
            .functions
            .get(function)
            .ok_or_else(|| unknown_function(function, &state))?;
        if record.alias(alias).is_none() {
            return Err(RegistryError::NotFound(format!(
                "function `{function}` has no alias `{alias}`; hint: `kumo functions show {function}` lists its aliases"
            )));
        }
        let target = format!("{function}:{alias}");
        if let Some(trigger) = state
            .triggers
            .iter()
            .find(|trigger| trigger.spec.function() == target)
        {
            return Err(RegistryError::Conflict(format!(
                "alias `{target}` is the target of trigger {}; hint: delete or retarget the trigger first",
                trigger.id
            )));
        }
        sqlx::query("DELETE FROM aliases WHERE function = $1 AND name = $2")
            .bind(function)
            .bind(alias)
            .execute(&self.database)
            .await?;
        Ok(())
    }

    /// Adds a trigger after checking that its target exists and, for HTTP,
    /// that its route is valid and free.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Invalid`], [`RegistryError::NotFound`] (the target),
    /// [`RegistryError::Conflict`] (the route is taken).
    pub async fn create_trigger(&self, mut spec: TriggerSpec) -> Result<Trigger, RegistryError> {
        let _one_change_at_a_time = self.writes.lock().await;
        let state = self.load().await?;
        check_target(&state, spec.function())?;
        let kind = spec.kind();
        if let Some(name) = spec.name_mut()
            && name.is_empty()
        {
            let taken = |candidate: &str| {
                state
                    .triggers
                    .iter()
                    .any(|t| t.spec.kind() == kind && t.spec.name() == Some(candidate))
            };
            let number = (1..).find(|n| !taken(&format!("{kind}-{n}"))).unwrap_or(1);
            *name = format!("{kind}-{number}");
        }
        let invalid = |error: crate::events::trigger::TriggerError| {
            RegistryError::Invalid(format!("{kind} trigger: {error}"))
        };
        match &mut spec {
            TriggerSpec::Http { .. } => {}
            TriggerSpec::Storage(trigger) => trigger.validate().map_err(invalid)?,
            TriggerSpec::Watch(trigger) => {
                trigger.validate().map_err(invalid)?;
                if trigger.path.is_relative() {
                    return Err(RegistryError::Invalid(format!(
                        "watch trigger: `path` {} is relative; hint: give an absolute folder (the manifest resolves relative paths against its own folder)",
                        trigger.path.display()
                    )));
                }
            }
            TriggerSpec::Timer(trigger) => {
                trigger.validate().map_err(invalid)?;
            }
        }
        if let Some(name) = spec.name()
            && let Some(taken) = state
                .triggers
                .iter()
                .find(|t| t.spec.kind() == kind && t.spec.name() == Some(name))
        {
            return Err(RegistryError::Conflict(format!(
                "a {kind} trigger named `{name}` exists ({}); hint: pick another `name`, or delete that trigger first",
                taken.id
            )));
        }
        match &spec {
            TriggerSpec::Http { route, .. } => {
                crate::triggers::http::Route::parse(route).map_err(|problem| {
                    RegistryError::Invalid(format!(
                        "invalid route `{route}`: {problem}; hint: write an exact route like `/hello`, or a prefix like `/api/...`"
                    ))
                })?;
                if let Some(taken) = state.triggers.iter().find(|trigger| {
                    matches!(&trigger.spec, TriggerSpec::Http { route: other, .. } if other == route)
                }) {
                    return Err(RegistryError::Conflict(format!(
                        "route `{route}` is already used by trigger {} (to `{}`); hint: delete that trigger first",
                        taken.id,
                        taken.spec.function()
                    )));
                }
            }
            TriggerSpec::Storage(_) | TriggerSpec::Watch(_) | TriggerSpec::Timer(_) => {}
        }
        let trigger = Trigger {
            id: format!("trg_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
            spec,
            created_at: now(),
        };
        sqlx::query(
            "INSERT INTO triggers (id, kind, target, config, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&trigger.id)
        .bind(trigger.spec.kind())
        .bind(trigger.spec.function())
        .bind(serde_json::to_string(&trigger.spec).expect("a trigger serializes"))
        .bind(&trigger.created_at)
        .execute(&self.database)
        .await?;
        Ok(trigger)
    }

    /// Deletes a trigger.
    ///
    /// # Errors
    ///
    /// [`RegistryError::NotFound`].
    pub async fn delete_trigger(&self, id: &str) -> Result<(), RegistryError> {
        let _one_change_at_a_time = self.writes.lock().await;
        let deleted = sqlx::query("DELETE FROM triggers WHERE id = $1")
            .bind(id)
            .execute(&self.database)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(RegistryError::NotFound(format!(
                "no trigger `{id}`; hint: `kumo triggers list` shows the ids"
            )));
        }
        Ok(())
    }
}

fn check_weights(alias: &str, versions: &[WeightedVersion]) -> Result<(), RegistryError> {
    let problem = match versions {
        [] => Some("names no version".to_string()),
        [_] | [_, _] => {
            let total: u32 = versions.iter().map(|entry| entry.weight).sum();
            if versions.len() == 2 && versions[0].version == versions[1].version {
                Some(format!("names version {} twice", versions[0].version))
            } else if versions.iter().any(|entry| entry.weight == 0) && versions.len() == 2 {
                Some("gives a version weight 0".to_string())
            } else if total != TOTAL_WEIGHT {
                Some(format!(
                    "has weights adding up to {total}, not {TOTAL_WEIGHT}"
                ))
            } else {
                None
            }
        }
        _ => Some(format!(
            "names {} versions; at most 2 are allowed",
            versions.len()
        )),
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(RegistryError::Invalid(format!(
            "alias `{alias}` {problem}; hint: give one version (weight 100), or two whose weights add up to 100, like 90 and 10"
        ))),
    }
}

fn unknown_function(name: &str, state: &RegistryState) -> RegistryError {
    let known: Vec<&str> = state.functions.keys().map(String::as_str).collect();
    RegistryError::NotFound(if known.is_empty() {
        format!("no function `{name}`; hint: the registry is empty, deploy one with `kumo deploy`")
    } else {
        format!(
            "no function `{name}`; hint: the functions are: {}",
            known.join(", ")
        )
    })
}

/// Checks that a target names an existing function, version or alias.
///
/// # Errors
///
/// [`RegistryError::Invalid`] when malformed, [`RegistryError::NotFound`]
/// when what it names does not exist.
pub fn check_target(state: &RegistryState, text: &str) -> Result<Target, RegistryError> {
    let target = Target::parse(text)?;
    let record = state
        .functions
        .get(&target.function)
        .ok_or_else(|| unknown_function(&target.function, state))?;
    match &target.qualifier {
        Qualifier::Latest => {}
        Qualifier::Version(number) => {
            if record.version(*number).is_none() {
                return Err(RegistryError::NotFound(format!(
                    "function `{}` has no version {number}; hint: its versions are 1..={}",
                    target.function,
                    record.latest().unwrap_or(0)
                )));
            }
        }
        Qualifier::Alias(alias) => {
            if record.alias(alias).is_none() {
                return Err(RegistryError::NotFound(format!(
                    "function `{}` has no alias `{alias}`; hint: create it with `kumo alias set {} {alias} VERSION`",
                    target.function, target.function
                )));
            }
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_or_say_why_not() {
        type Expected = Result<(&'static str, Qualifier), &'static str>;
        let cases: &[(&str, Expected)] = &[
            ("hello", Ok(("hello", Qualifier::Latest))),
            ("hello:3", Ok(("hello", Qualifier::Version(3)))),
            ("hello:live", Ok(("hello", Qualifier::Alias("live".into())))),
            ("hello:0", Err("versions start at 1")),
            ("hello:Live", Err("neither a version number nor an alias")),
            ("Hello", Err("invalid function name `Hello`")),
            ("", Err("invalid function name ``")),
        ];
        for (text, expected) in cases {
            match (Target::parse(text), expected) {
                (Ok(target), Ok((function, qualifier))) => {
                    assert_eq!(target.function, *function, "{text}");
                    assert_eq!(&target.qualifier, qualifier, "{text}");
                    assert_eq!(target.to_string(), *text);
                }
                (Err(error), Err(needle)) => {
                    assert!(error.to_string().contains(needle), "{text}: {error}")
                }
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn alias_weights_must_add_up() {
        let w = |version, weight| WeightedVersion { version, weight };
        let cases: &[(&[WeightedVersion], Option<&str>)] = &[
            (&[w(1, 100)], None),
            (&[w(1, 90), w(2, 10)], None),
            (&[], Some("names no version")),
            (&[w(1, 50)], Some("adding up to 50")),
            (&[w(1, 90), w(2, 20)], Some("adding up to 110")),
            (&[w(1, 100), w(2, 0)], Some("weight 0")),
            (&[w(2, 50), w(2, 50)], Some("version 2 twice")),
            (&[w(1, 30), w(2, 30), w(3, 40)], Some("at most 2")),
        ];
        for (versions, expected) in cases {
            match (check_weights("live", versions), expected) {
                (Ok(()), None) => {}
                (Err(error), Some(needle)) => {
                    assert!(error.to_string().contains(needle), "{versions:?}: {error}")
                }
                (got, want) => panic!("{versions:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[tokio::test]
    async fn versions_are_numbered_and_identical_deploys_return_the_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let database = crate::database::open(dir.path()).await.unwrap();
        let registry = Registry::new(database, dir.path()).unwrap();
        let config = FunctionConfig::default();
        let (first, created) = registry.publish("hello", "aa", 10, &config).await.unwrap();
        assert_eq!((first.version, created), (1, true));
        let (again, created) = registry.publish("hello", "aa", 10, &config).await.unwrap();
        assert_eq!((again.version, created), (1, false));
        let bigger = FunctionConfig {
            memory_mb: 256,
            ..config.clone()
        };
        let (second, created) = registry.publish("hello", "aa", 10, &bigger).await.unwrap();
        assert_eq!((second.version, created), (2, true));
        let (third, _) = registry.publish("hello", "bb", 10, &config).await.unwrap();
        assert_eq!(third.version, 3);
        // Older code deployed again becomes the newest version.
        let (rollback, created) = registry.publish("hello", "aa", 10, &config).await.unwrap();
        assert_eq!((rollback.version, created), (4, true));

        registry
            .set_alias(
                "hello",
                "live",
                &[WeightedVersion {
                    version: 1,
                    weight: 100,
                }],
            )
            .await
            .unwrap();
        let missing = registry
            .set_alias(
                "hello",
                "live",
                &[WeightedVersion {
                    version: 9,
                    weight: 100,
                }],
            )
            .await
            .unwrap_err();
        assert!(matches!(missing, RegistryError::NotFound(_)), "{missing}");
        let trigger = registry
            .create_trigger(TriggerSpec::Http {
                route: "/hello".into(),
                function: "hello:live".into(),
            })
            .await
            .unwrap();
        let taken = registry
            .create_trigger(TriggerSpec::Http {
                route: "/hello".into(),
                function: "hello".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(taken, RegistryError::Conflict(_)), "{taken}");
        assert!(matches!(
            registry.delete_alias("hello", "live").await,
            Err(RegistryError::Conflict(_))
        ));
        assert!(matches!(
            registry.delete_function("hello", false).await,
            Err(RegistryError::Conflict(_))
        ));

        let state = registry.load().await.unwrap();
        let hello = &state.functions["hello"];
        assert_eq!(hello.versions.len(), 4);
        assert_eq!(hello.latest(), Some(4));
        assert_eq!(hello.version(2).unwrap().config.memory_mb, 256);
        assert_eq!(state.triggers, vec![trigger]);

        let deleted = registry.delete_function("hello", true).await.unwrap();
        assert_eq!(deleted.len(), 1);
        let state = registry.load().await.unwrap();
        assert!(state.functions.is_empty() && state.triggers.is_empty());
    }
}
