//! What is live: the registry's state made servable, as one immutable
//! [`Snapshot`]: for every version something can reach (a function's newest
//! version, an alias's versions, a trigger naming a version) its pool, and
//! the HTTP route table. Readers resolve targets and routes against it.
//!
//! Only `control` builds snapshots, and it swaps each in whole
//! ([`Live::swap`]): a new request sees either the old snapshot or the new
//! one, and a request already running keeps the pool it started on, so it
//! finishes on its version.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::model::{AsyncPolicy, Qualifier, RouteTable, Target, TriggerSpec};
use crate::pool::{Pool, SlotCounts};
use crate::registry::{FunctionRecord, RegistryState, TOTAL_WEIGHT};

/// A function version: its name and number.
pub(crate) type VersionKey = (String, u32);

/// The registry's state and the pools serving it, as of one reload.
pub(crate) struct Snapshot {
    pub(crate) registry: RegistryState,
    pools: HashMap<VersionKey, Arc<Pool>>,
    /// The same pools by function name, then version: what a request's
    /// [`Snapshot::resolve`] looks up without making a key (a `String`).
    /// Hashed with foldhash: looked up on every request, and only names
    /// of deployed functions are ever inserted.
    versions: HashMap<String, Vec<(u32, Arc<Pool>)>, foldhash::fast::RandomState>,
    routes: RouteTable<Target>,
    /// What an asynchronous call of each live version is queued with.
    async_policies: HashMap<VersionKey, Arc<AsyncPolicy>>,
}

/// Why a target cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
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

impl Snapshot {
    /// The snapshot of `registry` served by `pools`; the route table is
    /// built from its HTTP triggers.
    pub(crate) fn new(registry: RegistryState, pools: HashMap<VersionKey, Arc<Pool>>) -> Self {
        let routes =
            RouteTable::new(
                registry
                    .triggers
                    .iter()
                    .filter_map(|trigger| match &trigger.spec {
                        TriggerSpec::Http { route, function } => {
                            Some((route.clone(), function.clone()))
                        }
                        _ => None,
                    }),
            );
        let async_policies = pools
            .keys()
            .filter_map(|key| {
                let config = &registry.functions.get(&key.0)?.version(key.1)?.config;
                match config.async_policy() {
                    Ok(policy) => Some((key.clone(), Arc::new(policy))),
                    Err(error) => {
                        tracing::error!(function = %key.0, version = key.1, error = %error, "a stored version's `async` table does not hold");
                        None
                    }
                }
            })
            .collect();
        let mut versions: HashMap<String, Vec<(u32, Arc<Pool>)>, foldhash::fast::RandomState> =
            HashMap::default();
        for ((function, version), pool) in &pools {
            versions
                .entry(function.clone())
                .or_default()
                .push((*version, Arc::clone(pool)));
        }
        Self {
            registry,
            pools,
            versions,
            routes,
            async_policies,
        }
    }

    /// The pool of one version, if it is live.
    pub(crate) fn pool(&self, key: &VersionKey) -> Option<&Arc<Pool>> {
        self.pools.get(key)
    }

    /// Every live pool.
    pub(crate) fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.pools.values()
    }

    /// Every live pool with its version.
    pub(crate) fn pools_by_version(&self) -> impl Iterator<Item = (&VersionKey, &Arc<Pool>)> {
        self.pools.iter()
    }

    /// The target an HTTP path routes to, if a route matches.
    pub(crate) fn route_target(&self, path: &str) -> Option<&Target> {
        self.routes.lookup(path)
    }

    /// What an asynchronous call of `target` is queued with: the policy of
    /// the version it resolves to now (a weighted alias picks one).
    ///
    /// # Errors
    ///
    /// As [`Snapshot::resolve`].
    pub(crate) fn async_policy(&self, target: &Target) -> Result<Arc<AsyncPolicy>, ResolveError> {
        let pool = self.resolve(target)?;
        let key = (target.function.clone(), pool.version());
        self.async_policies
            .get(&key)
            .cloned()
            .ok_or_else(|| ResolveError::Unavailable(format!("{}:{}", key.0, key.1)))
    }

    /// The pool that serves a target now: a weighted alias picks one of
    /// its versions at random, by weight.
    ///
    /// # Errors
    ///
    /// [`ResolveError::NotFound`] when the target does not exist,
    /// [`ResolveError::Unavailable`] when its version has no pool.
    pub(crate) fn resolve(&self, target: &Target) -> Result<Arc<Pool>, ResolveError> {
        let record = self
            .registry
            .functions
            .get(&target.function)
            .ok_or_else(|| ResolveError::NotFound(format!("no function `{}`", target.function)))?;
        let version = pick_version(record, &target.qualifier, fastrand::u32(0..TOTAL_WEIGHT))
            .ok_or_else(|| ResolveError::NotFound(format!("`{target}` does not exist")))?;
        self.versions
            .get(&target.function)
            .and_then(|pools| pools.iter().find(|(number, _)| *number == version))
            .map(|(_, pool)| Arc::clone(pool))
            .ok_or_else(|| ResolveError::Unavailable(format!("{}:{version}", target.function)))
    }
}

/// The current snapshot, swapped whole.
pub(crate) struct Live {
    snapshot: RwLock<Arc<Snapshot>>,
}

impl Live {
    /// Nothing deployed yet.
    pub(crate) fn new() -> Self {
        Self {
            snapshot: RwLock::new(Arc::new(Snapshot::new(
                RegistryState::default(),
                HashMap::new(),
            ))),
        }
    }

    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `snapshot` current and returns it.
    pub(crate) fn swap(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        let snapshot = Arc::new(snapshot);
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = snapshot.clone();
        snapshot
    }

    /// The pool that serves an HTTP path, if a route matches.
    pub(crate) fn route(&self, path: &str) -> Option<Result<Arc<Pool>, ResolveError>> {
        let snapshot = self.snapshot();
        let target = snapshot.routes.lookup(path)?;
        Some(snapshot.resolve(target))
    }

    /// The pool serving a target right now (event delivery; a version
    /// nothing routes to is not served).
    pub(crate) fn resolve_now(&self, target: &Target) -> Option<Arc<Pool>> {
        self.snapshot().resolve(target).ok()
    }

    /// Instance counts of each live version of `function`, newest first.
    pub(crate) fn instances(&self, function: &str) -> Vec<(u32, SlotCounts)> {
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
