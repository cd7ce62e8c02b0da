//! What changed from one version of a function to the next, for the
//! CHANGES column of `kumo functions show`: the configuration keys whose
//! values differ, and the code when its sha256 does.
//!
//! Values are compared as the API sends them (JSON), key by key, so a key
//! added to `FunctionConfig` is compared without a change here. The
//! environment is compared per variable, and names only the variables:
//! their values may be secrets.

use serde_json::Value;

use crate::registry::Version;

/// How many hex digits of a sha256 are shown.
const SHA256_SHOWN: usize = 8;

/// What `current` changed from `previous` (the version before it), in a
/// few words: `first version`, or the differences joined with `; `.
pub(super) fn describe_version_change(previous: Option<&Version>, current: &Version) -> String {
    let Some(previous) = previous else {
        return "first version".to_string();
    };
    let mut changes = config_changes(
        &config_json(&previous.config),
        &config_json(&current.config),
    );
    if previous.sha256 != current.sha256 {
        changes.push(format!(
            "code changed (sha256 {}.. -> {}..)",
            short_sha256(&previous.sha256),
            short_sha256(&current.sha256)
        ));
    }
    if changes.is_empty() {
        return format!("same as version {}", previous.version);
    }
    changes.join("; ")
}

fn config_json(config: &crate::config::FunctionConfig) -> Value {
    serde_json::to_value(config).expect("a configuration serializes")
}

fn short_sha256(sha256: &str) -> &str {
    sha256.get(..SHA256_SHOWN).unwrap_or(sha256)
}

/// The differing keys of two configurations (JSON objects), by key name:
/// `key old -> new`, and for `env` one entry per variable added, removed
/// or changed.
fn config_changes(previous: &Value, current: &Value) -> Vec<String> {
    let (Some(previous), Some(current)) = (previous.as_object(), current.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = previous.keys().chain(current.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changes = Vec::new();
    for key in keys {
        let (before, after) = (previous.get(key), current.get(key));
        if before == after {
            continue;
        }
        if key == "env" {
            changes.extend(env_changes(before, after));
            continue;
        }
        changes.push(format!("{key} {} -> {}", shown(before), shown(after)));
    }
    changes
}

/// `env.NAME added`, `env.NAME removed`, `env.NAME changed`: names only.
fn env_changes(previous: Option<&Value>, current: Option<&Value>) -> Vec<String> {
    let empty = serde_json::Map::new();
    let previous = previous.and_then(Value::as_object).unwrap_or(&empty);
    let current = current.and_then(Value::as_object).unwrap_or(&empty);
    let mut names: Vec<&String> = previous.keys().chain(current.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| match (previous.get(name), current.get(name)) {
            (None, Some(_)) => Some(format!("env.{name} added")),
            (Some(_), None) => Some(format!("env.{name} removed")),
            (Some(before), Some(after)) if before != after => Some(format!("env.{name} changed")),
            _ => None,
        })
        .collect()
}

/// A value as compact JSON (`-` when absent).
fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "-".to_string(), Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FunctionConfig;

    fn version(number: u32, sha256: &str, config: FunctionConfig) -> Version {
        Version {
            function: "hello".into(),
            version: number,
            sha256: sha256.into(),
            wasm_bytes: 100,
            config,
            created_at: "2026-11-23T14:02:11.305Z".into(),
        }
    }

    const CODE_A: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";
    const CODE_B: &str = "cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34";

    #[test]
    fn a_version_is_described_by_what_differs_from_the_one_before() {
        let base = FunctionConfig::default;
        let with = |change: fn(&mut FunctionConfig)| {
            let mut config = base();
            change(&mut config);
            config
        };
        // (previous, current, expected)
        let cases: Vec<(Option<Version>, Version, &str)> = vec![
            (None, version(1, CODE_A, base()), "first version"),
            (
                Some(version(1, CODE_A, with(|c| c.memory_mb = 64))),
                version(2, CODE_A, with(|c| c.memory_mb = 128)),
                "memory_mb 64 -> 128",
            ),
            (
                Some(version(1, CODE_A, base())),
                version(2, CODE_B, base()),
                "code changed (sha256 ab12ab12.. -> cd34cd34..)",
            ),
            (
                Some(version(1, CODE_A, with(|c| c.timeout_ms = 1000))),
                version(
                    2,
                    CODE_B,
                    with(|c| {
                        c.timeout_ms = 2000;
                        c.reuse = false;
                    }),
                ),
                "reuse true -> false; timeout_ms 1000 -> 2000; code changed (sha256 ab12ab12.. -> cd34cd34..)",
            ),
            (
                Some(version(
                    1,
                    CODE_A,
                    with(|c| {
                        c.env.insert("KEPT".into(), "same".into());
                        c.env.insert("SECRET".into(), "old-value".into());
                        c.env.insert("GONE".into(), "x".into());
                    }),
                )),
                version(
                    2,
                    CODE_A,
                    with(|c| {
                        c.env.insert("KEPT".into(), "same".into());
                        c.env.insert("SECRET".into(), "new-value".into());
                        c.env.insert("ADDED".into(), "y".into());
                    }),
                ),
                "env.ADDED added; env.GONE removed; env.SECRET changed",
            ),
            (
                Some(version(1, CODE_A, base())),
                version(
                    2,
                    CODE_A,
                    with(|c| c.allowed_outbound_hosts = vec!["https://api.example.com".into()]),
                ),
                r#"allowed_outbound_hosts [] -> ["https://api.example.com"]"#,
            ),
            (
                Some(version(3, CODE_A, base())),
                version(4, CODE_A, base()),
                "same as version 3",
            ),
        ];
        for (previous, current, expected) in cases {
            assert_eq!(
                describe_version_change(previous.as_ref(), &current),
                expected
            );
        }
    }

    #[test]
    fn env_values_are_never_shown() {
        let mut before = FunctionConfig::default();
        before.env.insert("TOKEN".into(), "hunter2".into());
        let mut after = FunctionConfig::default();
        after.env.insert("TOKEN".into(), "correct-horse".into());
        let text = describe_version_change(
            Some(&version(1, CODE_A, before)),
            &version(2, CODE_A, after),
        );
        assert!(
            !text.contains("hunter2") && !text.contains("correct-horse"),
            "{text}"
        );
    }
}
