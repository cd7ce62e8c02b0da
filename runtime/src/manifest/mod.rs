//! `kumo.toml`: the application manifest, parsed strictly and validated.
//!
//! Every error names the file, the line and the key, and carries a hint.
//! Unknown keys are errors (a typo must not silently fall back to a
//! default). Relative paths in the manifest are relative to its folder.
//! [`trigger_plan`] says what applying it does to the stored triggers.

#[cfg(test)]
mod proptests;
mod trigger_plan;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::FunctionConfig;
use crate::model::{
    Route, StorageTrigger, Target, TimerTrigger, Trigger, TriggerError, TriggerSpec, WatchTrigger,
    is_valid_function_name,
};
use crate::storage::FileMount;

pub(crate) use trigger_plan::{PlannedTrigger, TriggerChange, trigger_subject};

/// A loaded, validated manifest.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    /// The manifest file.
    pub(crate) path: PathBuf,
    /// `[app] name`, or the manifest's folder name.
    pub(crate) app_name: String,
    /// Functions by name, in name order.
    pub(crate) functions: BTreeMap<String, FunctionSpec>,
    /// `[[trigger.http]]` entries, in file order.
    pub(crate) http_triggers: Vec<HttpTrigger>,
    /// `[[trigger.storage]]` entries, validated, in file order.
    pub(crate) storage_triggers: Vec<StorageTrigger>,
    /// `[[trigger.watch]]` entries, validated, `path` joined to the
    /// manifest's folder, in file order.
    pub(crate) watch_triggers: Vec<WatchTrigger>,
    /// `[[trigger.timer]]` entries, validated, in file order.
    pub(crate) timer_triggers: Vec<TimerTrigger>,
}

/// One `[function.NAME]` table, resolved.
#[derive(Debug, Clone)]
pub(crate) struct FunctionSpec {
    /// The function's name.
    pub(crate) name: String,
    /// Absolute (or manifest-relative, joined) path of the component.
    pub(crate) source: PathBuf,
    /// The build command, run in the manifest's folder by `--build`.
    pub(crate) build: Option<String>,
    /// Limits, environment and scaling: what a version stores.
    pub(crate) config: FunctionConfig,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpTrigger {
    pub(crate) route: Route,
    /// What it invokes: a function of the manifest (its newest version),
    /// one of its versions (`name:3`) or an alias (`name:live`).
    pub(crate) function: Target,
}

/// A manifest that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}\n  hint: {hint}")]
pub(crate) struct ManifestError {
    location: String,
    message: String,
    hint: String,
}

impl ManifestError {
    fn at(
        file: &Path,
        text: &str,
        span: Option<Range<usize>>,
        message: String,
        hint: &str,
    ) -> Self {
        let location = match span {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                format!("{}:{line}:{column}", file.display())
            }
            None => file.display().to_string(),
        };
        Self {
            location,
            message,
            hint: hint.to_string(),
        }
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    app: Option<RawApp>,
    #[serde(default)]
    function: BTreeMap<Spanned<String>, Spanned<RawFunction>>,
    #[serde(default)]
    trigger: Option<RawTriggers>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    source: Spanned<String>,
    build: Option<String>,
    memory_mb: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
    max_request_bytes: Option<Spanned<u64>>,
    max_response_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    files: Vec<Spanned<RawFileMount>>,
    min_instances: Option<Spanned<u64>>,
    max_instances: Option<Spanned<u64>>,
    reuse: Option<bool>,
    idle_timeout_s: Option<Spanned<u64>>,
    max_queue: Option<Spanned<u64>>,
    queue_timeout_ms: Option<Spanned<u64>>,
    target_concurrency: Option<Spanned<f64>>,
    target_utilization: Option<Spanned<f64>>,
    #[serde(rename = "async")]
    async_calls: Option<Spanned<crate::config::AsyncConfig>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileMount {
    bucket: Option<Spanned<String>>,
    dir: Option<Spanned<String>>,
    path: Spanned<String>,
    read_only: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
    #[serde(default)]
    storage: Vec<Spanned<StorageTrigger>>,
    #[serde(default)]
    watch: Vec<Spanned<WatchTrigger>>,
    #[serde(default)]
    timer: Vec<Spanned<TimerTrigger>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    route: Spanned<String>,
    function: Spanned<String>,
}

impl Manifest {
    /// Reads and validates a manifest file.
    ///
    /// # Errors
    ///
    /// A [`ManifestError`] naming the file, line and key, with a hint.
    pub(crate) fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ManifestError::at(
                path,
                "",
                None,
                format!("cannot read the manifest: {error}"),
                "pass the manifest with `-f path/to/kumo.toml`",
            )
        })?;
        Self::parse(path, &text)
    }

    /// Validates manifest text; `path` is used for messages and to resolve
    /// relative `source` paths.
    ///
    /// # Errors
    ///
    /// As for [`Manifest::load`].
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        let fail = |span: Option<Range<usize>>, message: String, hint: &str| {
            ManifestError::at(path, text, span, message, hint)
        };
        let raw: RawManifest = toml::from_str(text).map_err(|error| {
            let message = error.message().trim();
            // A value's own message may carry its hint (an invalid target).
            if let Some((message, hint)) = message.split_once("; hint: ") {
                return fail(error.span(), message.to_string(), hint);
            }
            if message.starts_with("invalid type: map, expected a sequence")
                && let Some(kind) = error.span().and_then(|span| single_bracket_trigger(text, &span))
            {
                let entry = if kind == "http" { "route" } else { "trigger" };
                return fail(
                    error.span(),
                    format!("`[trigger.{kind}]` is a single table, but triggers are a list"),
                    &format!(
                        "write [[trigger.{kind}]] (double brackets): each {entry} is one entry of a list"
                    ),
                );
            }
            let message = message.to_string();
            let hint = if message.starts_with("unknown field") {
                "check the spelling; every key is listed in docs/manifest.md"
            } else if message.starts_with("missing field") {
                "add the key; docs/manifest.md lists what each table needs"
            } else if message.starts_with("invalid type") {
                "docs/manifest.md gives each key's type and an example"
            } else {
                "see docs/manifest.md for the format"
            };
            fail(error.span(), message, hint)
        })?;

        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let app_name = raw
            .app
            .and_then(|app| app.name)
            .or_else(|| {
                std::fs::canonicalize(folder)
                    .ok()?
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "app".to_string());

        let mut functions = BTreeMap::new();
        for (name, function) in raw.function {
            let name_span = name.span();
            let name = name.into_inner();
            if !is_valid_function_name(&name) {
                return Err(fail(
                    Some(name_span),
                    format!("invalid function name `{name}`"),
                    "use 1 to 64 lowercase letters, digits and `-`, starting with a letter",
                ));
            }
            let function = function.into_inner();
            let source = function.source.get_ref();
            if source.trim().is_empty() {
                return Err(fail(
                    Some(function.source.span()),
                    format!("function `{name}`: `source` is empty"),
                    "set `source` to the component's .wasm path",
                ));
            }
            let files = file_mounts(&name, &function.files, folder, &fail)?;
            let config = FunctionConfig {
                files,
                ..function_config(&function)
            };
            if let Err(error) = config.validate() {
                return Err(fail(
                    config_error_span(&function, &error),
                    format!("function `{name}`: {error}"),
                    error.hint,
                ));
            }
            let spec = FunctionSpec {
                name: name.clone(),
                source: folder.join(source),
                build: function.build,
                config,
            };
            functions.insert(name, spec);
        }

        let raw_triggers = raw.trigger.unwrap_or(RawTriggers {
            http: Vec::new(),
            storage: Vec::new(),
            watch: Vec::new(),
            timer: Vec::new(),
        });
        let event_triggers = event_triggers(&raw_triggers, folder, &functions, text, &fail)?;
        let mut http_triggers = Vec::new();
        let mut seen_routes: BTreeMap<String, usize> = BTreeMap::new();
        for trigger in raw_triggers.http {
            let route = trigger.route.get_ref();
            let parsed = Route::parse(route).map_err(|problem| {
                fail(
                    Some(trigger.route.span()),
                    format!("invalid route `{route}`: {problem}"),
                    "write an exact route like `/hello`, or a prefix like `/api/...`",
                )
            })?;
            let written = trigger.function.get_ref();
            let target = Target::parse(written).map_err(|invalid| {
                let (message, hint) = invalid
                    .0
                    .split_once("; hint: ")
                    .unwrap_or((&invalid.0, "write `NAME`, `NAME:3` or `NAME:live`"));
                fail(
                    Some(trigger.function.span()),
                    format!("trigger for route `{route}`: {message}"),
                    hint,
                )
            })?;
            if !functions.contains_key(&target.function) {
                let known: Vec<&str> = functions.keys().map(String::as_str).collect();
                return Err(fail(
                    Some(trigger.function.span()),
                    format!(
                        "trigger for route `{route}` names unknown function `{}`{}",
                        target.function,
                        written_in(&target)
                    ),
                    &if known.is_empty() {
                        "define it in a `[function.NAME]` table".to_string()
                    } else {
                        format!("the functions in this manifest are: {}", known.join(", "))
                    },
                ));
            }
            let (clash_line, _) = line_and_column(text, trigger.route.span().start);
            if let Some(first_line) = seen_routes.insert(route.clone(), clash_line) {
                return Err(fail(
                    Some(trigger.route.span()),
                    format!("route `{route}` is already used by the trigger on line {first_line}"),
                    "each route may appear once; remove or rename one of them",
                ));
            }
            http_triggers.push(HttpTrigger {
                route: parsed,
                function: target,
            });
        }

        Ok(Self {
            path: path.to_path_buf(),
            app_name,
            functions,
            http_triggers,
            storage_triggers: event_triggers.storage,
            watch_triggers: event_triggers.watch,
            timer_triggers: event_triggers.timer,
        })
    }

    /// Every trigger of the manifest as the registry stores it (watched
    /// folders as absolute paths).
    pub(crate) fn trigger_specs(&self) -> Vec<TriggerSpec> {
        let mut specs: Vec<TriggerSpec> = self
            .http_triggers
            .iter()
            .map(|trigger| TriggerSpec::Http {
                route: trigger.route.clone(),
                function: trigger.function.clone(),
            })
            .collect();
        specs.extend(
            self.storage_triggers
                .iter()
                .cloned()
                .map(TriggerSpec::Storage),
        );
        specs.extend(self.watch_triggers.iter().cloned().map(|mut trigger| {
            trigger.path = std::path::absolute(&trigger.path).unwrap_or(trigger.path);
            TriggerSpec::Watch(trigger)
        }));
        specs.extend(self.timer_triggers.iter().cloned().map(TriggerSpec::Timer));
        specs
    }

    /// What applying this manifest does to the registry's triggers
    /// `stored`; see [`trigger_plan`].
    pub(crate) fn plan_triggers(&self, stored: &[Trigger]) -> Vec<PlannedTrigger> {
        trigger_plan::plan_triggers(self.trigger_specs(), stored)
    }

    /// The manifest's file name (`kumo.toml`), for messages.
    pub(crate) fn file_name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        )
    }

    /// The manifest's folder, where build commands run.
    pub(crate) fn folder(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }
}

/// ` (in `greet:live`)` for a target naming a version or an alias, to
/// show what was written; empty for a plain function name.
fn written_in(target: &Target) -> String {
    match target.qualifier {
        crate::model::Qualifier::Latest => String::new(),
        _ => format!(" (in `{target}`)"),
    }
}

/// The trigger kind of a `[trigger.KIND]` table written with single
/// brackets, when the error at `span` is about one.
fn single_bracket_trigger(text: &str, span: &Range<usize>) -> Option<String> {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |index| index + 1);
    let line = text[line_start..].lines().next()?.trim();
    let kind = line.strip_prefix("[trigger.")?.split(']').next()?.trim();
    ["http", "storage", "watch", "timer"]
        .contains(&kind)
        .then(|| kind.to_string())
}

/// The validated storage, watch and timer triggers.
struct EventTriggers {
    storage: Vec<StorageTrigger>,
    watch: Vec<WatchTrigger>,
    timer: Vec<TimerTrigger>,
}

/// Where `key = ...` is written in the table starting at `table` (its
/// `[[...]]` header or first key), to point an error at its line; the
/// table's start when it is not found (a default).
fn key_span(text: &str, table: &Range<usize>, key: &str) -> Range<usize> {
    let start = table.start.min(text.len());
    let mut offset = start;
    for (index, line) in text[start..].split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') && index > 0 {
            break;
        }
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            let key_start = offset + (line.len() - trimmed.len());
            return key_start..key_start + key.len();
        }
        offset += line.len();
    }
    table.clone()
}

/// Validates `[[trigger.storage]]`, `[[trigger.watch]]` and
/// `[[trigger.timer]]`: default names (`storage-1`, ...), unique names per
/// kind, known functions, valid keys and cron expressions.
fn event_triggers(
    raw: &RawTriggers,
    folder: &Path,
    functions: &BTreeMap<String, FunctionSpec>,
    text: &str,
    fail: &impl Fn(Option<Range<usize>>, String, &str) -> ManifestError,
) -> Result<EventTriggers, ManifestError> {
    let known: Vec<&str> = functions.keys().map(String::as_str).collect();
    let problem = |kind: &str, name: &str, span: &Range<usize>, error: TriggerError| {
        fail(
            Some(key_span(text, span, error.key)),
            format!(
                "[[trigger.{kind}]] `{name}`: `{}`: {}",
                error.key, error.message
            ),
            &error.hint,
        )
    };
    let check_function = |kind: &str, name: &str, span: &Range<usize>, target: &Target| {
        if functions.contains_key(&target.function) {
            return Ok(());
        }
        Err(fail(
            Some(key_span(text, span, "function")),
            format!(
                "[[trigger.{kind}]] `{name}` names unknown function `{}`{}",
                target.function,
                written_in(target)
            ),
            &if known.is_empty() {
                "define it in a `[function.NAME]` table".to_string()
            } else {
                format!("the functions in this manifest are: {}", known.join(", "))
            },
        ))
    };
    let check_unique = |kind: &str,
                        names: &mut BTreeMap<String, usize>,
                        name: &str,
                        span: &Range<usize>| {
        let (line, _) = line_and_column(text, span.start);
        match names.insert(name.to_string(), line) {
            Some(first) => Err(fail(
                Some(key_span(text, span, "name")),
                format!(
                    "[[trigger.{kind}]] name `{name}` is already used by the trigger on line {first}"
                ),
                "give each trigger of a kind its own `name`",
            )),
            None => Ok(()),
        }
    };

    let mut storage = Vec::new();
    let mut names = BTreeMap::new();
    for (index, entry) in raw.storage.iter().enumerate() {
        let span = entry.span();
        let mut trigger = entry.get_ref().clone();
        if trigger.name.is_empty() {
            trigger.name = format!("storage-{}", index + 1);
        }
        let name = trigger.name.clone();
        trigger
            .validate()
            .map_err(|error| problem("storage", &name, &span, error))?;
        check_function("storage", &name, &span, &trigger.function)?;
        check_unique("storage", &mut names, &name, &span)?;
        storage.push(trigger);
    }
    let mut watch = Vec::new();
    let mut names = BTreeMap::new();
    for (index, entry) in raw.watch.iter().enumerate() {
        let span = entry.span();
        let mut trigger = entry.get_ref().clone();
        if trigger.name.is_empty() {
            trigger.name = format!("watch-{}", index + 1);
        }
        let name = trigger.name.clone();
        trigger
            .validate()
            .map_err(|error| problem("watch", &name, &span, error))?;
        check_function("watch", &name, &span, &trigger.function)?;
        check_unique("watch", &mut names, &name, &span)?;
        trigger.path = folder.join(&trigger.path);
        watch.push(trigger);
    }
    let mut timer = Vec::new();
    let mut names = BTreeMap::new();
    for (index, entry) in raw.timer.iter().enumerate() {
        let span = entry.span();
        let mut trigger = entry.get_ref().clone();
        if trigger.name.is_empty() {
            trigger.name = format!("timer-{}", index + 1);
        }
        let name = trigger.name.clone();
        trigger
            .validate()
            .map_err(|error| problem("timer", &name, &span, error))?;
        check_function("timer", &name, &span, &trigger.function)?;
        check_unique("timer", &mut names, &name, &span)?;
        timer.push(trigger);
    }
    Ok(EventTriggers {
        storage,
        watch,
        timer,
    })
}

fn file_mounts(
    name: &str,
    raw: &[Spanned<RawFileMount>],
    folder: &Path,
    fail: &impl Fn(Option<Range<usize>>, String, &str) -> ManifestError,
) -> Result<Vec<FileMount>, ManifestError> {
    let mut mounts: Vec<FileMount> = Vec::new();
    for spanned in raw {
        let entry = spanned.get_ref();
        let (bucket, dir) = match (&entry.bucket, &entry.dir) {
            (Some(bucket), None) => {
                if let Err(error) = crate::storage::check_bucket_name(bucket.get_ref()) {
                    return Err(fail(
                        Some(bucket.span()),
                        format!("function `{name}`: `files`: {error}"),
                        "name a bucket of the storage endpoint; docs/storage.md gives the rules",
                    ));
                }
                (Some(bucket.get_ref().clone()), None)
            }
            (None, Some(dir)) => {
                // Relative to the manifest's folder, made absolute so the
                // stored configuration does not depend on where kumo ran.
                let joined = folder.join(dir.get_ref());
                let absolute = std::path::absolute(&joined).unwrap_or(joined);
                (None, Some(absolute.to_string_lossy().into_owned()))
            }
            _ => {
                return Err(fail(
                    Some(spanned.span()),
                    format!(
                        "function `{name}`: `files`: a mount names both or neither of `bucket` and `dir`"
                    ),
                    "mount either a bucket (`bucket = \"photos\"`) or a folder (`dir = \"./inbox\"`)",
                ));
            }
        };
        let path = entry.path.get_ref();
        if !crate::storage::is_clean_mount_path(path) {
            return Err(fail(
                Some(entry.path.span()),
                format!(
                    "function `{name}`: `files`: mount path `{path}` is not a clean absolute path"
                ),
                "write the guest path like `/data` (absolute, no `.`, `..` or `//`)",
            ));
        }
        if mounts.iter().any(|mount| mount.path == *path) {
            return Err(fail(
                Some(entry.path.span()),
                format!("function `{name}`: `files`: two mounts at `{path}`"),
                "give each mount its own path",
            ));
        }
        mounts.push(FileMount {
            bucket,
            dir,
            path: path.clone(),
            read_only: entry.read_only.unwrap_or(true),
        });
    }
    Ok(mounts)
}

/// The configuration a `[function.NAME]` table gives, defaults filled in.
fn function_config(function: &RawFunction) -> FunctionConfig {
    let defaults = FunctionConfig::default();
    let count = |value: &Option<Spanned<u64>>, default: u32| {
        value.as_ref().map_or(default, |value| {
            u32::try_from(*value.get_ref()).unwrap_or(u32::MAX)
        })
    };
    let number = |value: &Option<Spanned<u64>>, default: u64| {
        value.as_ref().map_or(default, |value| *value.get_ref())
    };
    let fraction = |value: &Option<Spanned<f64>>, default: f64| {
        value.as_ref().map_or(default, |value| *value.get_ref())
    };
    FunctionConfig {
        memory_mb: number(&function.memory_mb, defaults.memory_mb),
        timeout_ms: number(&function.timeout_ms, defaults.timeout_ms),
        max_request_bytes: number(&function.max_request_bytes, defaults.max_request_bytes),
        max_response_bytes: number(&function.max_response_bytes, defaults.max_response_bytes),
        env: function.env.clone(),
        allowed_outbound_hosts: function
            .allowed_outbound_hosts
            .iter()
            .map(|entry| entry.get_ref().clone())
            .collect(),
        min_instances: count(&function.min_instances, defaults.min_instances),
        max_instances: count(&function.max_instances, defaults.max_instances),
        reuse: function.reuse.unwrap_or(defaults.reuse),
        idle_timeout_s: number(&function.idle_timeout_s, defaults.idle_timeout_s),
        max_queue: count(&function.max_queue, defaults.max_queue),
        queue_timeout_ms: number(&function.queue_timeout_ms, defaults.queue_timeout_ms),
        target_concurrency: fraction(&function.target_concurrency, defaults.target_concurrency),
        target_utilization: fraction(&function.target_utilization, defaults.target_utilization),
        files: Vec::new(),
        async_calls: function
            .async_calls
            .as_ref()
            .map(|calls| calls.get_ref().clone())
            .unwrap_or_default(),
    }
}

/// Where in the file the key a [`crate::config::ConfigError`] names was written.
fn config_error_span(
    function: &RawFunction,
    error: &crate::config::ConfigError,
) -> Option<Range<usize>> {
    let span = |value: &Option<Spanned<u64>>| value.as_ref().map(Spanned::span);
    match error.key {
        "memory_mb" => span(&function.memory_mb),
        "timeout_ms" => span(&function.timeout_ms),
        "max_request_bytes" => span(&function.max_request_bytes),
        "max_response_bytes" => span(&function.max_response_bytes),
        "min_instances" => span(&function.min_instances),
        "max_instances" => span(&function.max_instances),
        "idle_timeout_s" => span(&function.idle_timeout_s),
        "max_queue" => span(&function.max_queue),
        "queue_timeout_ms" => span(&function.queue_timeout_ms),
        "target_concurrency" => function.target_concurrency.as_ref().map(Spanned::span),
        "target_utilization" => function.target_utilization.as_ref().map(Spanned::span),
        "allowed_outbound_hosts" => error
            .index
            .and_then(|index| function.allowed_outbound_hosts.get(index))
            .map(Spanned::span),
        "files" => error
            .index
            .and_then(|index| function.files.get(index))
            .map(Spanned::span),
        "async" => function.async_calls.as_ref().map(Spanned::span),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[app]
name = "demo"

[function.hello]
source = "hello.wasm"
memory_mb = 64
timeout_ms = 1000
env = { GREETING = "hi" }
allowed_outbound_hosts = ["https://api.example.com"]
min_instances = 1
max_instances = 4
reuse = false
idle_timeout_s = 60
files = [{ bucket = "photos", path = "/data" }, { bucket = "thumbs", path = "/out", read_only = false }, { dir = "./inbox", path = "/inbox" }]
async = { max_retries = 1, max_queued = 50, on_success = { function = "echo" }, on_failure = { bucket = "failures", prefix = "hello/" } }

[function.echo]
source = "/abs/echo.wasm"

[[trigger.http]]
route = "/hello"
function = "hello"

[[trigger.http]]
route = "/echo/..."
function = "echo"
"#;

    #[test]
    fn a_good_manifest_loads_with_defaults_filled_in() {
        let manifest = Manifest::parse(Path::new("/srv/app/kumo.toml"), GOOD).unwrap();
        assert_eq!(manifest.app_name, "demo");
        let hello = &manifest.functions["hello"];
        assert_eq!(hello.source, Path::new("/srv/app/hello.wasm"));
        assert_eq!(hello.config.memory_mb, 64);
        assert_eq!(hello.config.timeout_ms, 1000);
        assert_eq!(
            hello.config.env,
            BTreeMap::from([("GREETING".to_string(), "hi".to_string())])
        );
        let echo = &manifest.functions["echo"];
        assert_eq!(echo.source, Path::new("/abs/echo.wasm"));
        assert_eq!(echo.config, FunctionConfig::default());
        assert_eq!(hello.config.min_instances, 1);
        assert_eq!(hello.config.max_instances, 4);
        assert!(!hello.config.reuse);
        assert_eq!(hello.config.idle_timeout_s, 60);
        assert_eq!(manifest.http_triggers.len(), 2);
        assert_eq!(
            hello.config.files,
            [
                FileMount {
                    bucket: Some("photos".into()),
                    dir: None,
                    path: "/data".into(),
                    read_only: true
                },
                FileMount {
                    bucket: Some("thumbs".into()),
                    dir: None,
                    path: "/out".into(),
                    read_only: false
                },
                FileMount {
                    bucket: None,
                    dir: Some("/srv/app/inbox".into()),
                    path: "/inbox".into(),
                    read_only: true
                },
            ]
        );
        let policy = hello.config.async_policy().unwrap();
        assert_eq!(policy.retry.max_retries, 1);
        assert_eq!(policy.max_queued, 50);
        assert_eq!(
            policy.on_success,
            Some(crate::model::Destination::Function(
                crate::model::Target::latest("echo")
            ))
        );
        assert_eq!(
            policy.on_failure,
            Some(crate::model::Destination::Bucket {
                bucket: "failures".into(),
                prefix: "hello/".into()
            })
        );
        assert_eq!(
            echo.config.async_policy().unwrap().retry,
            crate::model::RetryPolicy::default()
        );
        assert!(echo.config.files.is_empty());
        assert_eq!(manifest.http_triggers[1].route.to_string(), "/echo/...");
    }

    #[test]
    fn errors_name_the_line_the_key_and_give_a_hint() {
        // (manifest, expected line, words the message must contain)
        let cases: &[(&str, usize, &[&str])] = &[
            (
                "[function.a]\nsource = \"a.wasm\"\nmemroy_mb = 5\n",
                3,
                &["unknown field `memroy_mb`", "hint: check the spelling"],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\nmemory_mb = \"lots\"\n",
                3,
                &["invalid type", "hint:"],
            ),
            (
                "[function.a]\nbuild = \"make\"\n",
                1,
                &["missing field `source`", "hint: add the key"],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\n[[trigger.http]]\nroute = \"/x\"\nfunction = \"a\"\n[[trigger.http]]\nroute = \"/x\"\nfunction = \"a\"\n",
                7,
                &["route `/x` is already used by the trigger on line 4"],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\n[[trigger.http]]\nroute = \"/x\"\nfunction = \"b\"\n",
                5,
                &[
                    "unknown function `b`",
                    "the functions in this manifest are: a",
                ],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\n[[trigger.http]]\nroute = \"x\"\nfunction = \"a\"\n",
                4,
                &["invalid route `x`", "must start with `/`"],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\nmemory_mb = 99999\n",
                3,
                &["`memory_mb` is 99999, outside 1..=4096"],
            ),
            (
                "[function.Bad_Name]\nsource = \"a.wasm\"\n",
                1,
                &["invalid function name `Bad_Name`"],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\nallowed_outbound_hosts = [\"example.com\"]\n",
                3,
                &["invalid allowed_outbound_hosts entry `example.com`"],
            ),
            (
                "[functions.a]\nsource = \"a.wasm\"\n",
                1,
                &["unknown field `functions`"],
            ),
            (
                "[function.a\nsource = \"a.wasm\"\n",
                1,
                &["hint: see docs/manifest.md"],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\nfiles = [{ bucket = \"Bad_Bucket\", path = \"/data\" }]\n",
                3,
                &["invalid bucket name `Bad_Bucket`", "hint:"],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\nfiles = [{ bucket = \"photos\", path = \"data/../x\" }]\n",
                3,
                &["mount path `data/../x` is not a clean absolute path"],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\nfiles = [\n  { bucket = \"photos\", path = \"/d\" },\n  { bucket = \"other\", path = \"/d\" },\n]\n",
                5,
                &["two mounts at `/d`"],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\nfiles = [{ bucket = \"photos\", path = \"/d\", mode = \"rw\" }]\n",
                3,
                &["unknown field `mode`"],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\n[trigger.http]\nroute = \"/x\"\nfunction = \"a\"\n",
                3,
                &[
                    "`[trigger.http]` is a single table, but triggers are a list",
                    "hint: write [[trigger.http]] (double brackets): each route is one entry of a list",
                ],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\n\n[trigger.timer]\ncron = \"* * * * *\"\nfunction = \"a\"\n",
                4,
                &[
                    "hint: write [[trigger.timer]] (double brackets): each trigger is one entry of a list",
                ],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\n[[trigger.http]]\nroute = \"/x\"\nfunction = \"b:live\"\n",
                5,
                &[
                    "trigger for route `/x` names unknown function `b` (in `b:live`)",
                    "hint: the functions in this manifest are: a",
                ],
            ),
            (
                "[function.a]\nsource = \"a.wasm\"\n[[trigger.http]]\nroute = \"/x\"\nfunction = \"a:Live\"\n",
                5,
                &[
                    "trigger for route `/x`: invalid target `a:Live`: `Live` is neither a version number nor an alias name",
                    "\n  hint: write `a`, `a:3` or `a:live`",
                ],
            ),
        ];
        for (text, line, words) in cases {
            let error = Manifest::parse(Path::new("dir/kumo.toml"), text)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("dir/kumo.toml:{line}:")),
                "expected line {line} in: {error}\nmanifest:\n{text}"
            );
            for word in *words {
                assert!(error.contains(word), "expected {word:?} in: {error}");
            }
        }
    }

    #[test]
    fn triggers_may_name_a_version_or_an_alias_of_a_manifest_function() {
        let text = "[function.greet]\nsource = \"g.wasm\"\n\
                    [[trigger.http]]\nroute = \"/greet/...\"\nfunction = \"greet:live\"\n\
                    [[trigger.http]]\nroute = \"/v3\"\nfunction = \"greet:3\"\n\
                    [[trigger.timer]]\ncron = \"* * * * *\"\nfunction = \"greet:live\"\n";
        let manifest = Manifest::parse(Path::new("kumo.toml"), text).unwrap();
        let targets: Vec<String> = manifest
            .trigger_specs()
            .iter()
            .map(|spec| spec.function().to_string())
            .collect();
        assert_eq!(targets, ["greet:live", "greet:3", "greet:live"]);
    }

    const EVENTS: &str = r#"
[function.thumb]
source = "thumb.wasm"

[[trigger.storage]]
bucket = "photos"
events = ["oss:ObjectCreated:*"]
prefix = "in/"
suffix = ".png"
function = "thumb"
format = "s3"

[[trigger.storage]]
name = "removals"
bucket = "photos"
events = ["ObjectRemoved:DeleteObject"]
function = "thumb"
max_retries = 0

[[trigger.watch]]
path = "inbox"
pattern = "*.txt"
function = "thumb"
process_existing = true

[[trigger.timer]]
name = "nightly"
cron = "0 0 3 * * *"
function = "thumb"
payload = "sweep"
retry_base_ms = 50
"#;

    #[test]
    fn event_triggers_load_with_names_defaults_and_resolved_paths() {
        use crate::model::{ObjectEventFormat, RetryPolicy};
        let manifest = Manifest::parse(Path::new("/srv/app/kumo.toml"), EVENTS).unwrap();
        let [first, second] = &manifest.storage_triggers[..] else {
            panic!("two storage triggers: {:?}", manifest.storage_triggers)
        };
        assert_eq!(first.name, "storage-1");
        assert_eq!(first.events, ["ObjectCreated:*"]);
        assert_eq!(first.format, ObjectEventFormat::S3);
        assert_eq!(first.retry(), RetryPolicy::default());
        assert_eq!(second.name, "removals");
        assert_eq!(second.format, ObjectEventFormat::Oss);
        assert_eq!(second.max_retries, 0);
        let watch = &manifest.watch_triggers[0];
        assert_eq!(watch.name, "watch-1");
        assert_eq!(watch.path, Path::new("/srv/app/inbox"));
        assert!(watch.process_existing);
        let timer = &manifest.timer_triggers[0];
        assert_eq!(
            (
                timer.name.as_str(),
                timer.payload.as_str(),
                timer.retry_base_ms
            ),
            ("nightly", "sweep", 50)
        );
    }

    #[test]
    fn event_trigger_errors_point_at_the_key() {
        let head = "[function.a]\nsource = \"a.wasm\"\n";
        // (triggers after `head` (2 lines), expected line, words)
        let cases: &[(&str, usize, &[&str])] = &[
            (
                "[[trigger.timer]]\ncron = \"every day\"\nfunction = \"a\"\n",
                4,
                &[
                    "cron expression `every day` does not parse",
                    "hint: write five fields",
                ],
            ),
            (
                "[[trigger.timer]]\ncron = \"* * * * *\"\nfunction = \"b:live\"\n",
                5,
                &["[[trigger.timer]] `timer-1` names unknown function `b` (in `b:live`)"],
            ),
            (
                "[[trigger.timer]]\ncron = \"* * * * *\"\nfunction = \"a:0\"\n",
                5,
                &[
                    "invalid target `a:0`: versions start at 1",
                    "\n  hint: write `a:1`",
                ],
            ),
            (
                "[[trigger.timer]]\ncron = \"* * * * *\"\nfunction = \"b\"\n",
                5,
                &[
                    "[[trigger.timer]] `timer-1` names unknown function `b`",
                    "the functions in this manifest are: a",
                ],
            ),
            (
                "[[trigger.storage]]\nbucket = \"x\"\nevents = [\"ObjectCreated:*\"]\nfunction = \"a\"\n",
                4,
                &["invalid bucket name `x`"],
            ),
            (
                "[[trigger.storage]]\nbucket = \"photos\"\nevents = [\"Created\"]\nfunction = \"a\"\n",
                5,
                &["invalid event pattern `Created`"],
            ),
            (
                "[[trigger.storage]]\nbucket = \"photos\"\nevents = [\"ObjectCreated:*\"]\nfunction = \"a\"\nformat = \"xml\"\n",
                7,
                &["unknown variant `xml`"],
            ),
            (
                "[[trigger.watch]]\npath = \"in\"\nfunction = \"a\"\nretries = 3\n",
                6,
                &["unknown field `retries`", "hint: check the spelling"],
            ),
            (
                "[[trigger.watch]]\npath = \"in\"\nfunction = \"a\"\nmax_event_age_s = 0\n",
                6,
                &["`max_event_age_s`", "0 is outside"],
            ),
            (
                "[[trigger.timer]]\nname = \"t\"\ncron = \"* * * * *\"\nfunction = \"a\"\n[[trigger.timer]]\nname = \"t\"\ncron = \"* * * * *\"\nfunction = \"a\"\n",
                8,
                &["name `t` is already used by the trigger on line 3"],
            ),
        ];
        for (triggers, line, words) in cases {
            let text = format!("{head}{triggers}");
            let error = Manifest::parse(Path::new("dir/kumo.toml"), &text)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("dir/kumo.toml:{line}:")),
                "expected line {line} in: {error}\nmanifest:\n{text}"
            );
            for word in *words {
                assert!(error.contains(word), "expected {word:?} in: {error}");
            }
        }
    }
}
