//! The rules a change must pass before it is written, as pure functions of
//! the registry's state: targets exist, routes and trigger names are free,
//! alias weights add up, nothing still points at what is deleted. Each
//! error names the offending value and gives a hint.

use crate::model::{Qualifier, Target, Trigger, TriggerSpec};
use crate::registry::{RegistryState, TOTAL_WEIGHT, WeightedVersion};

use super::ControlError;

pub(super) fn unknown_function(name: &str, state: &RegistryState) -> ControlError {
    let known: Vec<&str> = state.functions.keys().map(String::as_str).collect();
    ControlError::NotFound(if known.is_empty() {
        format!("no function `{name}`; hint: the registry is empty, deploy one with `kumo deploy`")
    } else {
        format!(
            "no function `{name}`; hint: the functions are: {}",
            known.join(", ")
        )
    })
}

/// Checks that a target names an existing function, version or alias.
pub(super) fn check_target(state: &RegistryState, target: &Target) -> Result<(), ControlError> {
    let record = state
        .functions
        .get(&target.function)
        .ok_or_else(|| unknown_function(&target.function, state))?;
    match &target.qualifier {
        Qualifier::Latest => Ok(()),
        Qualifier::Version(number) => match record.version(*number) {
            Some(_) => Ok(()),
            None => Err(ControlError::NotFound(format!(
                "function `{}` has no version {number}; hint: its versions are 1..={}",
                target.function,
                record.latest().unwrap_or(0)
            ))),
        },
        Qualifier::Alias(alias) => match record.alias(alias) {
            Some(_) => Ok(()),
            None => Err(ControlError::NotFound(format!(
                "function `{}` has no alias `{alias}`; hint: create it with `kumo alias set {} {alias} VERSION`",
                target.function, target.function
            ))),
        },
    }
}

/// The triggers whose target is a version or alias of `function`.
pub(super) fn triggers_of<'a>(
    state: &'a RegistryState,
    function: &'a str,
) -> impl Iterator<Item = &'a Trigger> + 'a {
    state
        .triggers
        .iter()
        .filter(move |trigger| trigger.spec.function().function == function)
}

pub(super) fn check_function_deletable(
    state: &RegistryState,
    name: &str,
    force: bool,
) -> Result<Vec<Trigger>, ControlError> {
    if !state.functions.contains_key(name) {
        return Err(unknown_function(name, state));
    }
    let pointing: Vec<Trigger> = triggers_of(state, name).cloned().collect();
    if !pointing.is_empty() && !force {
        let ids: Vec<&str> = pointing.iter().map(|t| t.id.as_str()).collect();
        return Err(ControlError::Conflict(format!(
            "function `{name}` is still the target of {} trigger(s): {}; hint: delete them first, or pass force=true to delete them with the function",
            pointing.len(),
            ids.join(", ")
        )));
    }
    Ok(pointing)
}

pub(super) fn check_alias(
    state: &RegistryState,
    function: &str,
    alias: &str,
    versions: &[WeightedVersion],
) -> Result<(), ControlError> {
    crate::model::check_alias_name(alias)?;
    let record = state
        .functions
        .get(function)
        .ok_or_else(|| unknown_function(function, state))?;
    check_weights(alias, versions)?;
    for entry in versions {
        if record.version(entry.version).is_none() {
            return Err(ControlError::NotFound(format!(
                "function `{function}` has no version {}; hint: its versions are 1..={}",
                entry.version,
                record.latest().unwrap_or(0)
            )));
        }
    }
    Ok(())
}

pub(super) fn check_alias_deletable(
    state: &RegistryState,
    function: &str,
    alias: &str,
) -> Result<(), ControlError> {
    let record = state
        .functions
        .get(function)
        .ok_or_else(|| unknown_function(function, state))?;
    if record.alias(alias).is_none() {
        return Err(ControlError::NotFound(format!(
            "function `{function}` has no alias `{alias}`; hint: `kumo functions show {function}` lists its aliases"
        )));
    }
    let target = Target {
        function: function.to_string(),
        qualifier: Qualifier::Alias(alias.to_string()),
    };
    match state
        .triggers
        .iter()
        .find(|trigger| *trigger.spec.function() == target)
    {
        Some(trigger) => Err(ControlError::Conflict(format!(
            "alias `{target}` is the target of trigger {}; hint: delete or retarget the trigger first",
            trigger.id
        ))),
        None => Ok(()),
    }
}

fn check_weights(alias: &str, versions: &[WeightedVersion]) -> Result<(), ControlError> {
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
        Some(problem) => Err(ControlError::Invalid(format!(
            "alias `{alias}` {problem}; hint: give one version (weight 100), or two whose weights add up to 100, like 90 and 10"
        ))),
    }
}

/// Checks that trigger `id` exists and that `spec` keeps its kind; returns
/// the stored trigger. The rest is [`check_new_trigger`]'s.
pub(super) fn check_trigger_update<'a>(
    state: &'a RegistryState,
    id: &str,
    spec: &TriggerSpec,
) -> Result<&'a Trigger, ControlError> {
    let stored = state
        .triggers
        .iter()
        .find(|trigger| trigger.id == id)
        .ok_or_else(|| {
            ControlError::NotFound(format!(
                "no trigger `{id}`; hint: `kumo triggers list` shows the ids"
            ))
        })?;
    if stored.spec.kind() != spec.kind() {
        return Err(ControlError::Invalid(format!(
            "trigger {id} is of kind `{}`, the new settings are of kind `{}`; hint: an update keeps the kind: delete the trigger and create a new one",
            stored.spec.kind(),
            spec.kind()
        )));
    }
    Ok(stored)
}

/// Checks a trigger about to be added, in place of the stored trigger
/// `replacing` (whose route and name it may take over): its target exists,
/// its settings hold, its route or name is free. An event trigger without
/// a name gets `KIND-N`, the first free number.
pub(super) fn check_new_trigger(
    state: &RegistryState,
    spec: &mut TriggerSpec,
    replacing: Option<&str>,
) -> Result<(), ControlError> {
    check_target(state, spec.function())?;
    let others = || {
        state
            .triggers
            .iter()
            .filter(move |trigger| Some(trigger.id.as_str()) != replacing)
    };
    let kind = spec.kind();
    if let Some(name) = spec.name_mut()
        && name.is_empty()
    {
        let taken = |candidate: &str| {
            others().any(|t| t.spec.kind() == kind && t.spec.name() == Some(candidate))
        };
        let number = (1..).find(|n| !taken(&format!("{kind}-{n}"))).unwrap_or(1);
        *name = format!("{kind}-{number}");
    }
    let invalid = |error: crate::model::TriggerError| {
        ControlError::Invalid(format!("{kind} trigger: {error}"))
    };
    match spec {
        TriggerSpec::Http { route, .. } => {
            if let Some(taken) = others().find(|trigger| {
                matches!(&trigger.spec, TriggerSpec::Http { route: other, .. } if other == route)
            }) {
                return Err(ControlError::Conflict(format!(
                    "route `{route}` is already used by trigger {} (to `{}`); hint: point it elsewhere with `kumo triggers update {route} --function TARGET` (PUT /v1/triggers/{}), or delete that trigger first",
                    taken.id,
                    taken.spec.function(),
                    taken.id
                )));
            }
        }
        TriggerSpec::Storage(trigger) => trigger.validate().map_err(invalid)?,
        TriggerSpec::Watch(trigger) => {
            trigger.validate().map_err(invalid)?;
            if trigger.path.is_relative() {
                return Err(ControlError::Invalid(format!(
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
        && let Some(taken) = others().find(|t| t.spec.kind() == kind && t.spec.name() == Some(name))
    {
        return Err(ControlError::Conflict(format!(
            "a {kind} trigger named `{name}` exists ({}); hint: pick another `name`, or delete that trigger first",
            taken.id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Route;
    use crate::registry::{Alias, FunctionRecord, Version};

    fn state() -> RegistryState {
        let version = |number| Version {
            function: "hello".into(),
            version: number,
            sha256: "aa".into(),
            wasm_bytes: 1,
            config: Default::default(),
            created_at: String::new(),
        };
        let mut state = RegistryState::default();
        state.functions.insert(
            "hello".into(),
            FunctionRecord {
                name: "hello".into(),
                created_at: String::new(),
                versions: vec![version(1), version(2)],
                aliases: vec![Alias {
                    name: "live".into(),
                    versions: vec![WeightedVersion {
                        version: 1,
                        weight: 100,
                    }],
                    updated_at: String::new(),
                }],
            },
        );
        state.triggers.push(Trigger {
            id: "trg_1".into(),
            spec: http("/hello", "hello:live"),
            created_at: String::new(),
        });
        state
    }

    fn http(route: &str, target: &str) -> TriggerSpec {
        TriggerSpec::Http {
            route: Route::parse(route).unwrap(),
            function: Target::parse(target).unwrap(),
        }
    }

    /// `Ok(())` or the error's kind and words.
    fn outcome(result: Result<(), ControlError>) -> Result<(), (&'static str, String)> {
        result.map_err(|error| {
            let kind = match &error {
                ControlError::NotFound(_) => "not found",
                ControlError::Conflict(_) => "conflict",
                ControlError::Invalid(_) => "invalid",
                _ => "other",
            };
            (kind, error.to_string())
        })
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

    #[test]
    fn changes_are_checked_against_the_state() {
        let state = state();
        let w = |version| {
            [WeightedVersion {
                version,
                weight: 100,
            }]
        };
        type Case = (
            &'static str,
            Result<(), ControlError>,
            Option<(&'static str, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (
                "alias to an existing version",
                check_alias(&state, "hello", "beta", &w(2)),
                None,
            ),
            (
                "alias to a missing version",
                check_alias(&state, "hello", "beta", &w(9)),
                Some((
                    "not found",
                    "has no version 9; hint: its versions are 1..=2",
                )),
            ),
            (
                "alias of a missing function",
                check_alias(&state, "nope", "beta", &w(1)),
                Some((
                    "not found",
                    "no function `nope`; hint: the functions are: hello",
                )),
            ),
            (
                "a bad alias name",
                check_alias(&state, "hello", "Beta", &w(1)),
                Some(("invalid", "invalid alias name `Beta`")),
            ),
            (
                "deleting an alias a trigger targets",
                check_alias_deletable(&state, "hello", "live"),
                Some((
                    "conflict",
                    "alias `hello:live` is the target of trigger trg_1",
                )),
            ),
            (
                "deleting a missing alias",
                check_alias_deletable(&state, "hello", "beta"),
                Some(("not found", "has no alias `beta`")),
            ),
            (
                "deleting a function a trigger targets",
                check_function_deletable(&state, "hello", false).map(drop),
                Some(("conflict", "still the target of 1 trigger(s): trg_1")),
            ),
            (
                "deleting it with force",
                check_function_deletable(&state, "hello", true).map(drop),
                None,
            ),
            (
                "a taken route",
                check_new_trigger(&state, &mut http("/hello", "hello"), None),
                Some((
                    "conflict",
                    "route `/hello` is already used by trigger trg_1",
                )),
            ),
            (
                "a taken route, replacing its trigger",
                check_new_trigger(&state, &mut http("/hello", "hello:2"), Some("trg_1")),
                None,
            ),
            (
                "updating a trigger to another target",
                check_trigger_update(&state, "trg_1", &http("/hello", "hello:2")).map(drop),
                None,
            ),
            (
                "updating a missing trigger",
                check_trigger_update(&state, "trg_9", &http("/hello", "hello")).map(drop),
                Some(("not found", "no trigger `trg_9`")),
            ),
            (
                "updating a route into a timer",
                check_trigger_update(
                    &state,
                    "trg_1",
                    &TriggerSpec::Timer(
                        toml::from_str("cron = \"* * * * *\"\nfunction = \"hello\"").unwrap(),
                    ),
                )
                .map(drop),
                Some((
                    "invalid",
                    "trigger trg_1 is of kind `http`, the new settings are of kind `timer`",
                )),
            ),
            (
                "a missing version",
                check_new_trigger(&state, &mut http("/v9", "hello:9"), None),
                Some(("not found", "has no version 9")),
            ),
            (
                "a missing alias",
                check_new_trigger(&state, &mut http("/b", "hello:beta"), None),
                Some(("not found", "has no alias `beta`")),
            ),
        ];
        for (case, result, expected) in cases {
            match (outcome(result), expected) {
                (Ok(()), None) => {}
                (Err((kind, message)), Some((want_kind, words))) => {
                    assert_eq!(kind, want_kind, "{case}: {message}");
                    assert!(message.contains(words), "{case}: {message}");
                    assert!(message.contains("hint: "), "{case}: {message}");
                }
                (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
            }
        }
    }
}
