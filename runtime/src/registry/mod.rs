//! The registry: functions, their immutable numbered versions (code sha256
//! plus full configuration), aliases and triggers, persisted in the
//! database; component files stored once under
//! `<data-dir>/artifacts/<sha256>.wasm`, and on PostgreSQL also in the
//! shared `artifacts` table, from which any node fetches a version it has
//! not seen ([`Registry::ensure_artifact`]).
//!
//! The registry only stores: it checks nothing a caller could get wrong
//! (that is `control`'s job, under its one-change-at-a-time lock), compiles
//! nothing and serves nothing. Each write is one transaction, which also
//! bumps the registry generation ([`Registry::generation`]); on PostgreSQL
//! it holds an advisory lock, so writes from several nodes take turns, and
//! announces the new generation with `NOTIFY` ([`CHANGES_CHANNEL`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::config::FunctionConfig;
use crate::database::{Database, Dialect, Transaction};
use crate::model::{Trigger, TriggerSpec};

/// The PostgreSQL channel a registry write notifies, with the new
/// generation as its payload.
pub(crate) const CHANGES_CHANNEL: &str = "kumo_registry";

/// The advisory lock key registry writes hold on PostgreSQL (any constant
/// no other lock of Kumo uses).
const REGISTRY_WRITE_LOCK: i64 = 0x6b75_6d6f_0001;

/// Alias routing weights add up to this.
pub(crate) const TOTAL_WEIGHT: u32 = 100;

/// The database or the artifact store failed.
#[derive(Debug, thiserror::Error)]
#[error("registry storage failed: {0:#}")]
pub(crate) struct RegistryError(#[from] anyhow::Error);

impl RegistryError {
    /// Whether the write failed because the disk is full (the artifact
    /// store's file, or SQLite's `SQLITE_FULL`).
    pub(crate) fn is_disk_full(&self) -> bool {
        self.0.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(crate::database::is_disk_full)
                || cause
                    .downcast_ref::<sqlx::Error>()
                    .is_some_and(crate::database::is_database_full)
        })
    }
}

impl RegistryError {
    /// Whether the database could not be reached (down, or every
    /// connection busy past the wait), rather than refusing the write.
    pub(crate) fn is_unreachable(&self) -> bool {
        self.0.chain().any(|cause| {
            cause
                .downcast_ref::<sqlx::Error>()
                .is_some_and(crate::database::is_unreachable)
        })
    }
}

impl From<sqlx::Error> for RegistryError {
    fn from(error: sqlx::Error) -> Self {
        Self(error.into())
    }
}

/// One immutable version of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Version {
    /// The function's name.
    pub(crate) function: String,
    /// 1, 2, 3 ... per function.
    pub(crate) version: u32,
    /// The component's sha256, hex.
    pub(crate) sha256: String,
    /// The component's size.
    pub(crate) wasm_bytes: u64,
    /// The full configuration.
    pub(crate) config: FunctionConfig,
    /// RFC 3339, UTC.
    pub(crate) created_at: String,
}

/// One version an alias routes to, with its share of the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct WeightedVersion {
    /// The version.
    pub(crate) version: u32,
    /// Its share out of 100.
    pub(crate) weight: u32,
}

/// A movable name for one version, or two with weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Alias {
    /// The alias's name (`live`).
    pub(crate) name: String,
    /// One entry of weight 100, or two whose weights add up to 100.
    pub(crate) versions: Vec<WeightedVersion>,
    /// RFC 3339, UTC.
    pub(crate) updated_at: String,
}

/// A function with everything the registry holds of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct FunctionRecord {
    /// The function's name.
    pub(crate) name: String,
    /// RFC 3339, UTC.
    pub(crate) created_at: String,
    /// Every version, oldest first.
    pub(crate) versions: Vec<Version>,
    /// Its aliases, by name.
    pub(crate) aliases: Vec<Alias>,
}

impl FunctionRecord {
    /// The newest version's number.
    pub(crate) fn latest(&self) -> Option<u32> {
        self.versions.last().map(|version| version.version)
    }

    /// The numbered version.
    pub(crate) fn version(&self, number: u32) -> Option<&Version> {
        self.versions
            .iter()
            .find(|version| version.version == number)
    }

    /// The named alias.
    pub(crate) fn alias(&self, name: &str) -> Option<&Alias> {
        self.aliases.iter().find(|alias| alias.name == name)
    }
}

/// Everything in the registry, read at once.
#[derive(Debug, Clone, Default)]
pub(crate) struct RegistryState {
    /// Functions by name.
    pub(crate) functions: BTreeMap<String, FunctionRecord>,
    /// Every trigger, oldest first.
    pub(crate) triggers: Vec<Trigger>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The sha256 of a component, hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The registry: a database and an artifact folder.
#[derive(Clone)]
pub(crate) struct Registry {
    database: Database,
    artifacts: PathBuf,
}

impl Registry {
    /// A registry over `database`, keeping components in
    /// `<data_dir>/artifacts`.
    ///
    /// # Errors
    ///
    /// Fails when the artifact folder cannot be created.
    pub(crate) fn new(database: Database, data_dir: &Path) -> anyhow::Result<Self> {
        let artifacts = data_dir.join("artifacts");
        std::fs::create_dir_all(&artifacts)
            .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", artifacts.display()))?;
        Ok(Self {
            database,
            artifacts,
        })
    }

    /// Where a component with this sha256 is kept.
    pub(crate) fn artifact_path(&self, sha256: &str) -> PathBuf {
        self.artifacts.join(format!("{sha256}.wasm"))
    }

    /// Stores a component once, by content: in this node's artifact folder,
    /// and on PostgreSQL in the shared `artifacts` table too.
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be written or the database fails.
    pub(crate) async fn store_artifact(
        &self,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        if crate::database::dialect(&self.database) == Dialect::Postgres {
            sqlx::query(
                "INSERT INTO artifacts (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(sha256)
            .bind(bytes)
            .execute(&self.database)
            .await?;
        }
        self.write_artifact_file(sha256, bytes).await
    }

    /// Makes sure the component `sha256` is in this node's artifact folder:
    /// on PostgreSQL, a version deployed through another node is fetched
    /// from the shared `artifacts` table.
    ///
    /// # Errors
    ///
    /// The database fails, it has no such component, or the file cannot be
    /// written.
    pub(crate) async fn ensure_artifact(&self, sha256: &str) -> Result<(), RegistryError> {
        if crate::database::dialect(&self.database) != Dialect::Postgres
            || tokio::fs::try_exists(self.artifact_path(sha256))
                .await
                .unwrap_or(false)
        {
            return Ok(());
        }
        let bytes: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT bytes FROM artifacts WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&self.database)
                .await?;
        let bytes = bytes.ok_or_else(|| {
            RegistryError(anyhow::anyhow!(
                "the component {sha256} is not in the database; hint: redeploy the function"
            ))
        })?;
        self.write_artifact_file(sha256, &bytes).await
    }

    /// The generation of the stored registry: bumped by every write.
    ///
    /// # Errors
    ///
    /// The database fails.
    pub(crate) async fn generation(&self) -> Result<i64, RegistryError> {
        Ok(
            sqlx::query_scalar("SELECT generation FROM registry_generation")
                .fetch_one(&self.database)
                .await?,
        )
    }

    /// Begins a registry write: on PostgreSQL it waits for the writes of
    /// other nodes (an advisory lock held until the transaction ends).
    async fn begin(&self) -> Result<Transaction, RegistryError> {
        let mut transaction = crate::database::begin_write(&self.database).await?;
        if crate::database::dialect(&self.database) == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(REGISTRY_WRITE_LOCK)
                .execute(&mut *transaction)
                .await?;
        }
        Ok(transaction)
    }

    /// Bumps the generation and commits; on PostgreSQL every node listening
    /// hears of it when the commit lands.
    async fn commit(&self, mut transaction: Transaction) -> Result<(), RegistryError> {
        let generation: i64 = sqlx::query_scalar(
            "UPDATE registry_generation SET generation = generation + 1 RETURNING generation",
        )
        .fetch_one(&mut *transaction)
        .await?;
        if crate::database::dialect(&self.database) == Dialect::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(generation.to_string())
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Writes a component file once: to a temporary file renamed into
    /// place, so a crash never leaves half a component.
    async fn write_artifact_file(&self, sha256: &str, bytes: &[u8]) -> Result<(), RegistryError> {
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
            return Err(RegistryError(anyhow::anyhow!(
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
    pub(crate) async fn load(&self) -> Result<RegistryState, RegistryError> {
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
                RegistryError(anyhow::anyhow!(
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
                RegistryError(anyhow::anyhow!(
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
                RegistryError(anyhow::anyhow!(
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
    /// The database fails.
    pub(crate) async fn publish(
        &self,
        function: &str,
        sha256: &str,
        wasm_bytes: u64,
        config: &FunctionConfig,
    ) -> Result<(Version, bool), RegistryError> {
        let config_json = config.canonical_json();
        let mut transaction = self.begin().await?;
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
        self.commit(transaction).await?;
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

    /// Deletes a function with its versions and aliases, and the triggers
    /// `trigger_ids`, in one transaction.
    ///
    /// # Errors
    ///
    /// The database fails.
    pub(crate) async fn delete_function(
        &self,
        name: &str,
        trigger_ids: &[&str],
    ) -> Result<(), RegistryError> {
        let mut transaction = self.begin().await?;
        for id in trigger_ids {
            sqlx::query("DELETE FROM triggers WHERE id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await?;
        }
        sqlx::query("DELETE FROM functions WHERE name = $1")
            .bind(name)
            .execute(&mut *transaction)
            .await?;
        self.commit(transaction).await?;
        Ok(())
    }

    /// Points `alias` of `function` at one version, or two with weights.
    ///
    /// # Errors
    ///
    /// The database fails.
    pub(crate) async fn put_alias(
        &self,
        function: &str,
        alias: &str,
        versions: &[WeightedVersion],
    ) -> Result<Alias, RegistryError> {
        let updated_at = now();
        let routing = serde_json::to_string(versions).expect("weights serialize");
        let mut transaction = self.begin().await?;
        sqlx::query(
            "INSERT INTO aliases (function, name, routing, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (function, name) DO UPDATE SET routing = excluded.routing, updated_at = excluded.updated_at",
        )
        .bind(function)
        .bind(alias)
        .bind(&routing)
        .bind(&updated_at)
        .execute(&mut *transaction)
        .await?;
        self.commit(transaction).await?;
        Ok(Alias {
            name: alias.to_string(),
            versions: versions.to_vec(),
            updated_at,
        })
    }

    /// Deletes an alias.
    ///
    /// # Errors
    ///
    /// The database fails.
    pub(crate) async fn delete_alias(
        &self,
        function: &str,
        alias: &str,
    ) -> Result<(), RegistryError> {
        let mut transaction = self.begin().await?;
        sqlx::query("DELETE FROM aliases WHERE function = $1 AND name = $2")
            .bind(function)
            .bind(alias)
            .execute(&mut *transaction)
            .await?;
        self.commit(transaction).await?;
        Ok(())
    }

    /// Deletes the triggers `remove` and adds `add`, in one transaction, so
    /// a replaced trigger is never missing and never there twice.
    ///
    /// # Errors
    ///
    /// The database fails; then nothing changed.
    pub(crate) async fn replace_triggers(
        &self,
        remove: &[&str],
        add: Vec<TriggerSpec>,
    ) -> Result<Vec<Trigger>, RegistryError> {
        self.write_triggers(remove, &[], add).await
    }

    /// Deletes the triggers `remove`, stores the new settings of the
    /// triggers `update` (each keeps its id and creation time) and adds
    /// `add`, in one transaction. Returns the added triggers.
    ///
    /// # Errors
    ///
    /// The database fails; then nothing changed.
    pub(crate) async fn write_triggers(
        &self,
        remove: &[&str],
        update: &[Trigger],
        add: Vec<TriggerSpec>,
    ) -> Result<Vec<Trigger>, RegistryError> {
        let mut transaction = self.begin().await?;
        for id in remove {
            sqlx::query("DELETE FROM triggers WHERE id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await?;
        }
        for trigger in update {
            sqlx::query("UPDATE triggers SET kind = $2, target = $3, config = $4 WHERE id = $1")
                .bind(&trigger.id)
                .bind(trigger.spec.kind())
                .bind(trigger.spec.function().to_string())
                .bind(serde_json::to_string(&trigger.spec).expect("a trigger serializes"))
                .execute(&mut *transaction)
                .await?;
        }
        let mut added = Vec::with_capacity(add.len());
        for spec in add {
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
            .bind(trigger.spec.function().to_string())
            .bind(serde_json::to_string(&trigger.spec).expect("a trigger serializes"))
            .bind(&trigger.created_at)
            .execute(&mut *transaction)
            .await?;
            added.push(trigger);
        }
        self.commit(transaction).await?;
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Route, Target};

    #[tokio::test]
    async fn versions_are_numbered_and_identical_deploys_return_the_existing_one() {
        crate::database::testing::each_backend(
            "versions_are_numbered_and_identical_deploys_return_the_existing_one",
            async |database| versions_are_numbered(database).await,
        )
        .await;
    }

    async fn versions_are_numbered(database: Database) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(database, dir.path()).unwrap();
        let generation = registry.generation().await.unwrap();
        let config = FunctionConfig::default();
        let (first, created) = registry.publish("hello", "aa", 10, &config).await.unwrap();
        assert_eq!((first.version, created), (1, true));
        let after_publish = registry.generation().await.unwrap();
        assert_eq!(
            after_publish,
            generation + 1,
            "a write bumps the generation"
        );
        let (again, created) = registry.publish("hello", "aa", 10, &config).await.unwrap();
        assert_eq!((again.version, created), (1, false));
        assert_eq!(
            registry.generation().await.unwrap(),
            after_publish,
            "an unchanged deploy writes nothing"
        );
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

        let live = [WeightedVersion {
            version: 1,
            weight: 100,
        }];
        registry.put_alias("hello", "live", &live).await.unwrap();
        let http = |route: &str, target: &str| TriggerSpec::Http {
            route: Route::parse(route).unwrap(),
            function: Target::parse(target).unwrap(),
        };
        let added = registry
            .replace_triggers(&[], vec![http("/hello", "hello:live")])
            .await
            .unwrap();
        // Replacing is one step: the old trigger goes, the new one comes.
        let replaced = registry
            .replace_triggers(&[added[0].id.as_str()], vec![http("/hello", "hello:2")])
            .await
            .unwrap();

        let state = registry.load().await.unwrap();
        let hello = &state.functions["hello"];
        assert_eq!(hello.versions.len(), 4);
        assert_eq!(hello.latest(), Some(4));
        assert_eq!(hello.version(2).unwrap().config.memory_mb, 256);
        assert_eq!(hello.alias("live").unwrap().versions, live);
        assert_eq!(state.triggers, replaced);
        // An update keeps the id and the creation time, in the same step
        // as an addition.
        let retargeted = Trigger {
            spec: http("/hello", "hello:live"),
            ..replaced[0].clone()
        };
        let added = registry
            .write_triggers(
                &[],
                std::slice::from_ref(&retargeted),
                vec![http("/v4", "hello:4")],
            )
            .await
            .unwrap();
        let state = registry.load().await.unwrap();
        // (Both may have the same creation millisecond: no order asserted.)
        assert_eq!(state.triggers.len(), 2);
        assert!(state.triggers.contains(&retargeted), "{:?}", state.triggers);
        assert!(state.triggers.contains(&added[0]), "{:?}", state.triggers);
        registry
            .replace_triggers(&[added[0].id.as_str()], Vec::new())
            .await
            .unwrap();

        registry
            .delete_function("hello", &[replaced[0].id.as_str()])
            .await
            .unwrap();
        let state = registry.load().await.unwrap();
        assert!(state.functions.is_empty() && state.triggers.is_empty());
    }

    /// A component stored through one node reaches a node that never saw
    /// it: through the shared database on PostgreSQL.
    #[tokio::test]
    async fn another_node_fetches_a_stored_component() {
        crate::database::testing::each_backend(
            "another_node_fetches_a_stored_component",
            async |database| {
                let (one, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
                let writer = Registry::new(database.clone(), one.path()).unwrap();
                let reader = Registry::new(database.clone(), other.path()).unwrap();
                let bytes = b"\0asm component bytes";
                let sha256 = sha256_hex(bytes);
                writer.store_artifact(&sha256, bytes).await.unwrap();
                let fetched = reader.ensure_artifact(&sha256).await;
                match crate::database::dialect(&database) {
                    Dialect::Postgres => {
                        fetched.unwrap();
                        let copied = std::fs::read(reader.artifact_path(&sha256)).unwrap();
                        assert_eq!(copied, bytes);
                        let missing = reader.ensure_artifact(&sha256_hex(b"other")).await;
                        let error = missing.unwrap_err().to_string();
                        assert!(error.contains("not in the database"), "{error}");
                    }
                    // One node: nothing to fetch, nothing fetched.
                    Dialect::Sqlite => {
                        fetched.unwrap();
                        assert!(!reader.artifact_path(&sha256).exists());
                    }
                }
            },
        )
        .await;
    }
}
