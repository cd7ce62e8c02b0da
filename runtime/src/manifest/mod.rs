//! `kumo.toml`: the application manifest, parsed strictly and validated.
//!
//! Every error names the file, the line and the key, and carries a hint.
//! Unknown keys are errors (a typo must not silently fall back to a
//! default). Relative paths in the manifest are relative to its folder.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::engine::{FunctionSettings, MAX_MEMORY_MB, OutboundRule};
use crate::pool::PoolSettings;
use crate::storage::FileMount;

/// Defaults, in one place so the docs and the code agree.
pub mod defaults {
    /// `memory_mb`: Lambda's smallest size.
    pub const MEMORY_MB: u64 = 128;
    /// `timeout_ms`.
    pub const TIMEOUT_MS: u64 = 30_000;
    /// `max_request_bytes`: 6 MiB, Lambda's synchronous payload limit.
    pub const MAX_REQUEST_BYTES: u64 = 6 << 20;
    /// `max_response_bytes`: 6 MiB as well.
    pub const MAX_RESPONSE_BYTES: u64 = 6 << 20;
    /// The longest `timeout_ms` accepted: 15 minutes, as Lambda.
    pub const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;
}

/// A loaded, validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// `[app] name`, or the manifest's folder name.
    pub app_name: String,
    /// Functions by name, in name order.
    pub functions: BTreeMap<String, FunctionSpec>,
    /// `[[trigger.http]]` entries, in file order.
    pub http_triggers: Vec<HttpTrigger>,
}

/// One `[function.NAME]` table, resolved.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The function's name.
    pub name: String,
    /// Absolute (or manifest-relative, joined) path of the component.
    pub source: PathBuf,
    /// The build command, run in the manifest's folder by `--build`.
    pub build: Option<String>,
    /// Limits and environment handed to the engine.
    pub settings: FunctionSettings,
    /// Scaling: instance counts, reuse, queue.
    pub pool: PoolSettings,
    /// `files`: buckets mounted into the guest. The manifest does not know
    /// the data directory, so `settings.mounts` stays empty here; whoever
    /// does fills it with [`crate::storage::mount_dirs`].
    pub files: Vec<FileMount>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    /// The route as written (`/hello` or `/api/...`).
    pub route: String,
    /// The function it invokes.
    pub function: String,
}

/// A manifest that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}\n  hint: {hint}")]
pub struct ManifestError {
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileMount {
    bucket: Spanned<String>,
    path: Spanned<String>,
    read_only: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
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
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
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
    pub fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        let fail = |span: Option<Range<usize>>, message: String, hint: &str| {
            ManifestError::at(path, text, span, message, hint)
        };
        let raw: RawManifest = toml::from_str(text).map_err(|error| {
            let message = error.message().trim().to_string();
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
            let memory_mb = bounded(
                &function.memory_mb,
                defaults::MEMORY_MB,
                1..=MAX_MEMORY_MB,
                &format!("function `{name}`: `memory_mb`"),
                &fail,
            )?;
            let timeout_ms = bounded(
                &function.timeout_ms,
                defaults::TIMEOUT_MS,
                1..=defaults::MAX_TIMEOUT_MS,
                &format!("function `{name}`: `timeout_ms`"),
                &fail,
            )?;
            let max_request_bytes = bounded(
                &function.max_request_bytes,
                defaults::MAX_REQUEST_BYTES,
                0..=u64::from(u32::MAX),
                &format!("function `{name}`: `max_request_bytes`"),
                &fail,
            )?;
            let max_response_bytes = bounded(
                &function.max_response_bytes,
                defaults::MAX_RESPONSE_BYTES,
                0..=u64::from(u32::MAX),
                &format!("function `{name}`: `max_response_bytes`"),
                &fail,
            )?;
            let mut allowed_outbound_hosts = Vec::new();
            for entry in &function.allowed_outbound_hosts {
                let rule = OutboundRule::parse(entry.get_ref()).map_err(|error| {
                    fail(
                        Some(entry.span()),
                        format!("function `{name}`: {error}"),
                        "write entries as `https://api.example.com`, `http://127.0.0.1:8080` or `https://*.example.com`",
                    )
                })?;
                allowed_outbound_hosts.push(rule);
            }
            let pool = pool_settings(&name, &function, &fail)?;
            let files = file_mounts(&name, &function.files, &fail)?;
            let spec = FunctionSpec {
                name: name.clone(),
                source: folder.join(source),
                build: function.build,
                settings: FunctionSettings {
                    memory_mb,
                    timeout: Duration::from_millis(timeout_ms),
                    max_request_bytes,
                    max_response_bytes,
                    env: function.env.into_iter().collect(),
                    allowed_outbound_hosts: allowed_outbound_hosts.into(),
                    mounts: Vec::new(),
                },
                pool,
                files,
            };
            functions.insert(name, spec);
        }

        let mut http_triggers = Vec::new();
        let mut seen_routes: BTreeMap<String, usize> = BTreeMap::new();
        for trigger in raw.trigger.map(|t| t.http).unwrap_or_default() {
            let route = trigger.route.get_ref();
            if let Err(problem) = crate::triggers::http::Route::parse(route) {
                return Err(fail(
                    Some(trigger.route.span()),
                    format!("invalid route `{route}`: {problem}"),
                    "write an exact route like `/hello`, or a prefix like `/api/...`",
                ));
            }
            let function = trigger.function.get_ref();
            if !functions.contains_key(function) {
                let known: Vec<&str> = functions.keys().map(String::as_str).collect();
                return Err(fail(
                    Some(trigger.function.span()),
                    format!("trigger for route `{route}` names unknown function `{function}`"),
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
                route: route.clone(),
                function: function.clone(),
            });
        }

        Ok(Self {
            path: path.to_path_buf(),
            app_name,
            functions,
            http_triggers,
        })
    }

    /// The manifest's folder, where build commands run.
    pub fn folder(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }
}

fn bounded(
    value: &Option<Spanned<u64>>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    what: &str,
    fail: &impl Fn(Option<Range<usize>>, String, &str) -> ManifestError,
) -> Result<u64, ManifestError> {
    let Some(value) = value else {
        return Ok(default);
    };
    if range.contains(value.get_ref()) {
        Ok(*value.get_ref())
    } else {
        Err(fail(
            Some(value.span()),
            format!(
                "{what} is {}, outside {}..={}",
                value.get_ref(),
                range.start(),
                range.end()
            ),
            "pick a value inside the range; docs/manifest.md gives the defaults",
        ))
    }
}

fn file_mounts(
    name: &str,
    raw: &[Spanned<RawFileMount>],
    fail: &impl Fn(Option<Range<usize>>, String, &str) -> ManifestError,
) -> Result<Vec<FileMount>, ManifestError> {
    let mut mounts: Vec<FileMount> = Vec::new();
    for entry in raw {
        let entry = entry.get_ref();
        let bucket = entry.bucket.get_ref();
        if let Err(error) = crate::storage::check_bucket_name(bucket) {
            return Err(fail(
                Some(entry.bucket.span()),
                format!("function `{name}`: `files`: {error}"),
                "name a bucket of the storage endpoint; docs/storage.md gives the rules",
            ));
        }
        let path = entry.path.get_ref();
        let clean = path.starts_with('/')
            && (path == "/"
                || path[1..]
                    .split('/')
                    .all(|segment| !matches!(segment, "" | "." | "..")));
        if !clean {
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
                "give each mounted bucket its own path",
            ));
        }
        mounts.push(FileMount {
            bucket: bucket.clone(),
            path: path.clone(),
            read_only: entry.read_only.unwrap_or(true),
        });
    }
    Ok(mounts)
}

fn pool_settings(
    name: &str,
    function: &RawFunction,
    fail: &impl Fn(Option<Range<usize>>, String, &str) -> ManifestError,
) -> Result<PoolSettings, ManifestError> {
    use crate::pool::defaults as pool;
    let what = |key: &str| format!("function `{name}`: `{key}`");
    let count = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
    let max_instances = count(bounded(
        &function.max_instances,
        u64::from(pool::MAX_INSTANCES),
        1..=u64::from(crate::engine::MAX_POOLED_INSTANCES),
        &what("max_instances"),
        fail,
    )?);
    let min_instances = count(bounded(
        &function.min_instances,
        u64::from(pool::MIN_INSTANCES),
        0..=u64::from(max_instances),
        &what("min_instances"),
        fail,
    )?);
    let idle_timeout_s = bounded(
        &function.idle_timeout_s,
        pool::IDLE_TIMEOUT_S,
        1..=7 * 24 * 3600,
        &what("idle_timeout_s"),
        fail,
    )?;
    let max_queue = count(bounded(
        &function.max_queue,
        u64::from(pool::MAX_QUEUE),
        0..=100_000,
        &what("max_queue"),
        fail,
    )?);
    let queue_timeout_ms = bounded(
        &function.queue_timeout_ms,
        pool::QUEUE_TIMEOUT_MS,
        0..=defaults::MAX_TIMEOUT_MS,
        &what("queue_timeout_ms"),
        fail,
    )?;
    let fraction = |value: &Option<Spanned<f64>>, default: f64, max: f64, key: &str| {
        let Some(value) = value else {
            return Ok(default);
        };
        let number = *value.get_ref();
        if number > 0.0 && number <= max {
            Ok(number)
        } else {
            Err(fail(
                Some(value.span()),
                format!("{} is {number}, outside (0, {max}]", what(key)),
                "pick a positive value; docs/scaling.md explains the autoscaler",
            ))
        }
    };
    Ok(PoolSettings {
        min_instances,
        max_instances,
        reuse: function.reuse.unwrap_or(pool::REUSE),
        idle_timeout: Duration::from_secs(idle_timeout_s),
        max_queue,
        queue_timeout: Duration::from_millis(queue_timeout_ms),
        target_concurrency: fraction(
            &function.target_concurrency,
            pool::TARGET_CONCURRENCY,
            1000.0,
            "target_concurrency",
        )?,
        target_utilization: fraction(
            &function.target_utilization,
            pool::TARGET_UTILIZATION,
            1.0,
            "target_utilization",
        )?,
    })
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
files = [{ bucket = "photos", path = "/data" }, { bucket = "thumbs", path = "/out", read_only = false }]

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
        assert_eq!(hello.settings.memory_mb, 64);
        assert_eq!(hello.settings.timeout, Duration::from_millis(1000));
        assert_eq!(
            hello.settings.env,
            vec![("GREETING".to_string(), "hi".to_string())]
        );
        let echo = &manifest.functions["echo"];
        assert_eq!(echo.source, Path::new("/abs/echo.wasm"));
        assert_eq!(echo.settings.memory_mb, defaults::MEMORY_MB);
        assert_eq!(echo.settings.max_request_bytes, defaults::MAX_REQUEST_BYTES);
        assert!(echo.settings.allowed_outbound_hosts.is_empty());
        assert_eq!(echo.pool, PoolSettings::default());
        assert_eq!(hello.pool.min_instances, 1);
        assert_eq!(hello.pool.max_instances, 4);
        assert!(!hello.pool.reuse);
        assert_eq!(hello.pool.idle_timeout, Duration::from_secs(60));
        assert_eq!(manifest.http_triggers.len(), 2);
        assert_eq!(
            hello.files,
            [
                FileMount {
                    bucket: "photos".into(),
                    path: "/data".into(),
                    read_only: true
                },
                FileMount {
                    bucket: "thumbs".into(),
                    path: "/out".into(),
                    read_only: false
                },
            ]
        );
        assert!(echo.files.is_empty());
        assert_eq!(manifest.http_triggers[1].route, "/echo/...");
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
}
