//! Property tests of the manifest parser. Any text, and any small edit of
//! a good manifest: no panic, and a refusal names the file, a line that
//! exists, and a hint. Manifests written from generated functions and
//! routes parse back to what was written.
//!
//! `PROPTEST_CASES=N` runs N cases per property (`bench/fuzz.sh`).

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

use super::Manifest;
use crate::model::{Qualifier, Route, Target};

const GOOD: &str = r#"[app]
name = "demo"

[function.hello]
source = "hello.wasm"
memory_mb = 64
timeout_ms = 1000
env = { GREETING = "hi" }
allowed_outbound_hosts = ["https://api.example.com"]
files = [{ bucket = "photos", path = "/data" }]

[function.thumb]
source = "thumb.wasm"

[[trigger.http]]
route = "/hello/..."
function = "hello:live"

[[trigger.storage]]
bucket = "photos"
events = ["ObjectCreated:*"]
prefix = "in/"
function = "thumb"
format = "s3"

[[trigger.timer]]
cron = "0 */5 * * * *"
function = "thumb:2"
payload = "sweep"

[[trigger.watch]]
path = "./inbox"
pattern = "*.txt"
function = "hello"
"#;

/// A TOML string literal holding `text` exactly.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// Checks the shape of a refusal: `kumo.toml[:line:column]: message` and a
/// hint, the line one of the text's.
fn check_refusal(text: &str, message: &str) -> Result<(), TestCaseError> {
    let (location, rest) = message
        .split_once(": ")
        .ok_or_else(|| TestCaseError::fail(format!("no location in {message:?}")))?;
    prop_assert!(location.starts_with("kumo.toml"), "{}", message);
    if let Some(position) = location.strip_prefix("kumo.toml:") {
        let (line, column) = position
            .split_once(':')
            .ok_or_else(|| TestCaseError::fail(format!("no column in {message:?}")))?;
        let line: usize = line
            .parse()
            .map_err(|_| TestCaseError::fail(message.to_owned()))?;
        let column: usize = column
            .parse()
            .map_err(|_| TestCaseError::fail(message.to_owned()))?;
        prop_assert!(
            line >= 1 && line <= text.split('\n').count(),
            "line {} of {:?}",
            line,
            text
        );
        prop_assert!(column >= 1);
    }
    prop_assert!(rest.contains("\n  hint: "), "{}", message);
    Ok(())
}

/// One edit of a text: delete, insert or replace a few characters.
fn edit() -> impl Strategy<Value = (prop::sample::Index, usize, String)> {
    (
        any::<prop::sample::Index>(),
        0usize..12,
        prop_oneof![
            Just(String::new()),
            "[\\[\\]{}=\".,#'\n a-z0-9_:*/-]{1,6}",
            any::<String>(),
        ],
    )
}

fn apply(text: &str, (at, remove, insert): &(prop::sample::Index, usize, String)) -> String {
    let chars: Vec<char> = text.chars().collect();
    let start = at.index(chars.len() + 1);
    let end = (start + remove).min(chars.len());
    let mut edited: String = chars[..start].iter().collect();
    edited.push_str(insert);
    edited.extend(&chars[end..]);
    edited
}

/// A `[function.NAME]` table as generated: its keys as written.
#[derive(Debug, Clone)]
struct WrittenFunction {
    name: String,
    source: String,
    memory_mb: Option<u64>,
    timeout_ms: Option<u64>,
    max_instances: Option<u64>,
    reuse: Option<bool>,
    env: BTreeMap<String, String>,
}

fn written_function() -> impl Strategy<Value = WrittenFunction> {
    (
        "[a-z][a-z0-9-]{0,10}",
        "[a-zA-Z0-9_./é-][a-zA-Z0-9_./ é-]{0,15}",
        proptest::option::of(prop_oneof![1u64..=4096, any::<u64>()]),
        proptest::option::of(prop_oneof![1u64..=60_000, any::<u64>()]),
        proptest::option::of(prop_oneof![1u64..=100, any::<u64>()]),
        proptest::option::of(any::<bool>()),
        proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,6}", any::<String>(), 0..3),
    )
        .prop_map(
            |(name, source, memory_mb, timeout_ms, max_instances, reuse, env)| WrittenFunction {
                name,
                source,
                memory_mb,
                timeout_ms,
                max_instances,
                reuse,
                env,
            },
        )
}

fn render(functions: &[WrittenFunction], routes: &[(String, String)]) -> String {
    let mut text = String::new();
    for function in functions {
        text.push_str(&format!(
            "[function.{}]\nsource = {}\n",
            function.name,
            quoted(&function.source)
        ));
        let numbers = [
            ("memory_mb", function.memory_mb),
            ("timeout_ms", function.timeout_ms),
            ("max_instances", function.max_instances),
        ];
        for (key, value) in numbers {
            if let Some(value) = value {
                // TOML integers are i64; larger ones are written anyway.
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        if let Some(reuse) = function.reuse {
            text.push_str(&format!("reuse = {reuse}\n"));
        }
        if !function.env.is_empty() {
            let pairs: Vec<String> = function
                .env
                .iter()
                .map(|(key, value)| format!("{key} = {}", quoted(value)))
                .collect();
            text.push_str(&format!("env = {{ {} }}\n", pairs.join(", ")));
        }
        text.push('\n');
    }
    for (route, target) in routes {
        text.push_str(&format!(
            "[[trigger.http]]\nroute = {}\nfunction = {}\n\n",
            quoted(route),
            quoted(target)
        ));
    }
    text
}

proptest! {
    #[test]
    fn any_text_is_a_manifest_or_a_located_refusal(text in prop_oneof![
        any::<String>(),
        "(\\[{1,2}(function|trigger)\\.[a-z]{1,5}\\]{1,2}\n|[a-z_]{1,10} = (\"[a-z./]{0,6}\"|[0-9]{1,3}|\\[\\]|\\{\\})\n){0,8}",
    ]) {
        if let Err(error) = Manifest::parse(Path::new("kumo.toml"), &text) {
            check_refusal(&text, &error.to_string())?;
        }
    }

    #[test]
    fn edits_of_a_good_manifest_load_or_are_located_refusals(edits in proptest::collection::vec(edit(), 1..4)) {
        let text = edits.iter().fold(GOOD.to_owned(), |text, one| apply(&text, one));
        if let Err(error) = Manifest::parse(Path::new("kumo.toml"), &text) {
            check_refusal(&text, &error.to_string())?;
        }
    }

    #[test]
    fn written_functions_and_routes_load_as_written(
        functions in proptest::collection::btree_map("[a-z][a-z0-9-]{0,10}", written_function(), 1..4),
        routes in proptest::collection::btree_map("(/[a-z0-9]{1,5}){1,3}(/\\.\\.\\.)?", (any::<prop::sample::Index>(), prop_oneof![Just(String::new()), Just(":live".to_owned()), (1u32..50).prop_map(|v| format!(":{v}"))]), 0..4),
    ) {
        let functions: Vec<WrittenFunction> = functions
            .into_iter()
            .map(|(name, function)| WrittenFunction { name, ..function })
            .collect();
        let routes: Vec<(String, String)> = routes
            .into_iter()
            .map(|(route, (pick, qualifier))| {
                (route, format!("{}{qualifier}", functions[pick.index(functions.len())].name))
            })
            .collect();
        let text = render(&functions, &routes);
        let manifest = match Manifest::parse(Path::new("/srv/app/kumo.toml"), &text) {
            Ok(manifest) => manifest,
            Err(error) => {
                let message = error.to_string();
                // Only out-of-range numbers and values may be refused, and
                // then the message names the key.
                let named = ["memory_mb", "timeout_ms", "max_instances", "env", "integer"]
                    .iter()
                    .any(|key| message.contains(key));
                prop_assert!(named, "{}\n---\n{}", message, text);
                return Ok(());
            }
        };
        prop_assert_eq!(manifest.functions.len(), functions.len());
        for function in &functions {
            let loaded = &manifest.functions[&function.name];
            prop_assert_eq!(&loaded.source, &Path::new("/srv/app").join(&function.source));
            if let Some(memory_mb) = function.memory_mb {
                prop_assert_eq!(loaded.config.memory_mb, memory_mb);
            }
            if let Some(timeout_ms) = function.timeout_ms {
                prop_assert_eq!(loaded.config.timeout_ms, timeout_ms);
            }
            if let Some(max_instances) = function.max_instances {
                prop_assert_eq!(u64::from(loaded.config.max_instances), max_instances);
            }
            if let Some(reuse) = function.reuse {
                prop_assert_eq!(loaded.config.reuse, reuse);
            }
            prop_assert_eq!(&loaded.config.env, &function.env);
        }
        prop_assert_eq!(manifest.http_triggers.len(), routes.len());
        for (trigger, (route, target)) in manifest.http_triggers.iter().zip(&routes) {
            prop_assert_eq!(&trigger.route, &Route::parse(route).unwrap());
            prop_assert_eq!(&trigger.function, &Target::parse(target).unwrap());
            if target.ends_with(":live") {
                prop_assert_eq!(&trigger.function.qualifier, &Qualifier::Alias("live".to_owned()));
            }
        }
    }
}
