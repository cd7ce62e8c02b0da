//! What applying a manifest does to the triggers a registry holds: which
//! are created, left as they are, pointed at another target or given other
//! settings, which keep a target set through the API, and which stored
//! triggers the manifest does not mention. A pure function of the two
//! lists, shared by `kumo up` (through control) and `kumo deploy` (through
//! the admin API), so both decide alike and say the same.
//!
//! The one rule beyond "the manifest wins": a manifest that names a
//! function's newest version (`function = "greet"`) does not undo a
//! trigger pointed at one of that function's aliases or versions through
//! the API (`greet:live`, a canary); the stored target is kept, and the
//! line says so. Stored triggers the manifest does not mention are left
//! alone (the registry may hold other manifests' triggers and triggers
//! made through the API), and reported.

use crate::model::{Qualifier, Target, Trigger, TriggerSpec};

/// One trigger and what applying the manifest does to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedTrigger {
    /// The trigger as the registry holds it afterwards.
    pub(crate) spec: TriggerSpec,
    pub(crate) change: TriggerChange,
}

/// What happens to one trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TriggerChange {
    /// Nothing holds its route (or kind and name): it is added.
    Create,
    /// The stored trigger is as the manifest writes it.
    Unchanged { id: String },
    /// Only the target differs: the stored trigger is pointed at the
    /// manifest's (it pointed at `from`).
    Retarget { id: String, from: Target },
    /// Its settings differ (and maybe its target): rewritten as written.
    Update { id: String },
    /// The manifest names the function's newest version, the stored trigger
    /// one of its aliases or versions: that target is kept. With
    /// `settings_changed`, the trigger's other settings are rewritten.
    KeepTarget { id: String, settings_changed: bool },
    /// A stored trigger the manifest does not mention: left as it is.
    NotInManifest { id: String },
}

impl TriggerChange {
    /// The stored trigger this is about (`None` for a new one).
    pub(crate) fn stored_id(&self) -> Option<&str> {
        match self {
            Self::Create => None,
            Self::Unchanged { id }
            | Self::Retarget { id, .. }
            | Self::Update { id }
            | Self::KeepTarget { id, .. }
            | Self::NotInManifest { id } => Some(id),
        }
    }

    /// Whether the registry must be written for it.
    pub(crate) fn writes(&self) -> bool {
        match self {
            Self::Create | Self::Retarget { .. } | Self::Update { .. } => true,
            Self::KeepTarget {
                settings_changed, ..
            } => *settings_changed,
            Self::Unchanged { .. } | Self::NotInManifest { .. } => false,
        }
    }

    /// One word for scripts: `created`, `unchanged`, `retargeted`,
    /// `updated`, `kept` or `not_in_manifest`.
    pub(crate) fn status(&self) -> &'static str {
        match self {
            Self::Create => "created",
            Self::Unchanged { .. } => "unchanged",
            Self::Retarget { .. } => "retargeted",
            Self::Update { .. } => "updated",
            Self::KeepTarget {
                settings_changed: false,
                ..
            } => "kept",
            Self::KeepTarget {
                settings_changed: true,
                ..
            } => "updated",
            Self::NotInManifest { .. } => "not_in_manifest",
        }
    }
}

impl PlannedTrigger {
    /// The line `kumo deploy` and `kumo up` print for it; `manifest` is the
    /// manifest's file name, as the person wrote it (`kumo.toml`).
    pub(crate) fn line(&self, manifest: &str) -> String {
        let subject = trigger_subject(&self.spec);
        let target = self.spec.function();
        match &self.change {
            TriggerChange::Create => format!("{subject}: created"),
            TriggerChange::Unchanged { .. } => format!("{subject}: unchanged"),
            TriggerChange::Retarget { from, .. } => {
                format!("{subject}: retargeted (was {from})")
            }
            TriggerChange::Update { .. } => format!("{subject}: updated"),
            TriggerChange::KeepTarget {
                settings_changed, ..
            } => {
                let pointing = match &target.qualifier {
                    Qualifier::Alias(_) => format!("an alias of {}", target.function),
                    Qualifier::Version(number) => {
                        format!("version {number} of {}", target.function)
                    }
                    Qualifier::Latest => target.function.clone(),
                };
                let why = format!(
                    "points at {pointing}; write function = \"{target}\" in {manifest} to make it explicit"
                );
                if *settings_changed {
                    format!("{subject}: updated (kept the target: {why})")
                } else {
                    format!("{subject} (kept: {why})")
                }
            }
            TriggerChange::NotInManifest { id } => {
                let handle = match &self.spec {
                    TriggerSpec::Http { route, .. } => route.to_string(),
                    _ => id.clone(),
                };
                format!(
                    "{subject}: not in {manifest}, left as is (`kumo triggers delete {handle}` removes it)"
                )
            }
        }
    }
}

/// `route /hello -> hello`, or `timer trigger cron 0 * * * * * -> report`.
pub(crate) fn trigger_subject(spec: &TriggerSpec) -> String {
    let (kind, source, target) = (spec.kind(), spec.describe(), spec.function());
    if kind == "http" {
        format!("route {source} -> {target}")
    } else {
        format!("{kind} trigger {source} -> {target}")
    }
}

/// What writing `wanted` (the manifest's triggers, in its order) over
/// `stored` (the registry's) does: the manifest's triggers in order, then
/// the stored triggers it does not mention.
pub(crate) fn plan_triggers(wanted: Vec<TriggerSpec>, stored: &[Trigger]) -> Vec<PlannedTrigger> {
    let mut plan: Vec<PlannedTrigger> = wanted
        .into_iter()
        .map(|mut spec| {
            let Some(existing) = stored
                .iter()
                .find(|existing| existing.spec.same_slot(&spec))
            else {
                return PlannedTrigger {
                    spec,
                    change: TriggerChange::Create,
                };
            };
            let id = existing.id.clone();
            let stored_target = existing.spec.function().clone();
            let change = if keeps_stored_target(spec.function(), &stored_target) {
                *spec.function_mut() = stored_target;
                TriggerChange::KeepTarget {
                    id,
                    settings_changed: spec != existing.spec,
                }
            } else if spec == existing.spec {
                TriggerChange::Unchanged { id }
            } else {
                let mut retargeted_only = spec.clone();
                *retargeted_only.function_mut() = stored_target.clone();
                if retargeted_only == existing.spec {
                    TriggerChange::Retarget {
                        id,
                        from: stored_target,
                    }
                } else {
                    TriggerChange::Update { id }
                }
            };
            PlannedTrigger { spec, change }
        })
        .collect();
    let left_alone: Vec<PlannedTrigger> = stored
        .iter()
        .filter(|existing| {
            !plan
                .iter()
                .any(|planned| planned.change.stored_id() == Some(existing.id.as_str()))
        })
        .map(|existing| PlannedTrigger {
            spec: existing.spec.clone(),
            change: TriggerChange::NotInManifest {
                id: existing.id.clone(),
            },
        })
        .collect();
    plan.extend(left_alone);
    plan
}

/// A manifest naming a function's newest version keeps a stored target
/// that names an alias or a version of the same function.
fn keeps_stored_target(wanted: &Target, stored: &Target) -> bool {
    wanted.qualifier == Qualifier::Latest
        && stored.qualifier != Qualifier::Latest
        && wanted.function == stored.function
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Route;

    fn http(route: &str, target: &str) -> TriggerSpec {
        TriggerSpec::Http {
            route: Route::parse(route).unwrap(),
            function: Target::parse(target).unwrap(),
        }
    }

    fn timer(name: &str, cron: &str, target: &str) -> TriggerSpec {
        let toml = format!("name = \"{name}\"\ncron = \"{cron}\"\nfunction = \"{target}\"\n");
        TriggerSpec::Timer(toml::from_str(&toml).unwrap())
    }

    fn stored(id: &str, spec: TriggerSpec) -> Trigger {
        Trigger {
            id: id.into(),
            spec,
            created_at: String::new(),
        }
    }

    #[test]
    fn the_manifest_wins_except_over_an_alias_or_version_of_the_same_function() {
        let registry = [
            stored("trg_same", http("/same", "greet")),
            stored("trg_canary", http("/greet/...", "greet:live")),
            stored("trg_pinned", http("/pinned", "greet:3")),
            stored("trg_moved", http("/moved", "greet:live")),
            stored("trg_other", http("/other", "old")),
            stored("trg_api", http("/api-made", "greet")),
            stored("trg_nightly", timer("nightly", "0 0 3 * * *", "greet:live")),
            stored("trg_hourly", timer("hourly", "0 0 * * * *", "greet")),
        ];
        let manifest = vec![
            http("/same", "greet"),
            http("/greet/...", "greet"),
            http("/pinned", "greet"),
            http("/moved", "greet:2"),
            http("/other", "greet"),
            http("/new", "greet:live"),
            timer("nightly", "0 0 4 * * *", "greet"),
            timer("hourly", "0 30 * * * *", "greet"),
        ];
        let plan = plan_triggers(manifest, &registry);
        let expected: &[(&str, &str, &str)] = &[
            ("unchanged", "greet", "route /same -> greet: unchanged"),
            (
                "kept",
                "greet:live",
                "route /greet/... -> greet:live (kept: points at an alias of greet; write function = \"greet:live\" in kumo.toml to make it explicit)",
            ),
            (
                "kept",
                "greet:3",
                "route /pinned -> greet:3 (kept: points at version 3 of greet; write function = \"greet:3\" in kumo.toml to make it explicit)",
            ),
            (
                "retargeted",
                "greet:2",
                "route /moved -> greet:2: retargeted (was greet:live)",
            ),
            (
                "retargeted",
                "greet",
                "route /other -> greet: retargeted (was old)",
            ),
            ("created", "greet:live", "route /new -> greet:live: created"),
            (
                "updated",
                "greet:live",
                "timer trigger cron 0 0 4 * * * -> greet:live: updated (kept the target: points at an alias of greet; write function = \"greet:live\" in kumo.toml to make it explicit)",
            ),
            (
                "updated",
                "greet",
                "timer trigger cron 0 30 * * * * -> greet: updated",
            ),
            (
                "not_in_manifest",
                "greet",
                "route /api-made -> greet: not in kumo.toml, left as is (`kumo triggers delete /api-made` removes it)",
            ),
        ];
        assert_eq!(plan.len(), expected.len(), "{plan:#?}");
        for (planned, (status, target, line)) in plan.iter().zip(expected) {
            assert_eq!(planned.change.status(), *status, "{planned:?}");
            assert_eq!(planned.spec.function().to_string(), *target, "{planned:?}");
            assert_eq!(planned.line("kumo.toml"), *line);
        }
        let writes: Vec<Option<&str>> = plan
            .iter()
            .filter(|planned| planned.change.writes())
            .map(|planned| planned.change.stored_id())
            .collect();
        assert_eq!(
            writes,
            [
                Some("trg_moved"),
                Some("trg_other"),
                None,
                Some("trg_nightly"),
                Some("trg_hourly")
            ]
        );
    }

    #[test]
    fn an_event_trigger_the_manifest_does_not_mention_is_named_by_its_id() {
        let registry = [stored("trg_1", timer("old", "0 0 * * * *", "report"))];
        let plan = plan_triggers(Vec::new(), &registry);
        assert_eq!(
            plan[0].line("app.toml"),
            "timer trigger cron 0 0 * * * * -> report: not in app.toml, left as is (`kumo triggers delete trg_1` removes it)"
        );
    }
}
