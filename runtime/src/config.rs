//! A function version's configuration: what the manifest's
//! `[function.NAME]` table and the admin API's deploy call both carry, with
//! defaults and one validation for both, which also turns it into the
//! engine's and the pool's settings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{FunctionSettings, MAX_MEMORY_MB, MAX_POOLED_INSTANCES, OutboundRule};
use crate::model::{AsyncPolicy, Destination, DestinationTable, RetryPolicy, retry_defaults};
use crate::pool::{PoolSettings, defaults as pool_defaults};
use crate::storage::FileMount;

/// Defaults, in one place so the docs and the code agree.
pub(crate) mod defaults {
    /// `memory_mb`: Lambda's smallest size.
    pub(crate) const MEMORY_MB: u64 = 128;
    /// `timeout_ms`.
    pub(crate) const TIMEOUT_MS: u64 = 30_000;
    /// `max_request_bytes`: 6 MiB, Lambda's synchronous payload limit.
    pub(crate) const MAX_REQUEST_BYTES: u64 = 6 << 20;
    /// `max_response_bytes`: 6 MiB as well.
    pub(crate) const MAX_RESPONSE_BYTES: u64 = 6 << 20;
    /// The longest `timeout_ms` accepted: 15 minutes, as Lambda.
    pub(crate) const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;
    /// `async.max_queued`: asynchronous calls of one function waiting or
    /// running at once.
    pub(crate) const ASYNC_MAX_QUEUED: u32 = 1000;
    /// The most `async.max_queued` accepted.
    pub(crate) const ASYNC_MAX_MAX_QUEUED: u32 = 100_000;
    /// The largest request body an asynchronous call stores in the queue
    /// (and less when `max_request_bytes` is lower): 6 MiB.
    pub(crate) const ASYNC_MAX_BODY_BYTES: u64 = 6 << 20;
}

/// A function's full configuration. Every key has a default, so `{}` is a
/// valid configuration; unknown keys are refused. Stored with each version
/// as canonical JSON (keys in a fixed order), so two configurations are the
/// same exactly when their JSON is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FunctionConfig {
    /// Memory limit per instance in MiB; also the billed size.
    pub(crate) memory_mb: u64,
    /// Wall-clock limit of one invocation, in milliseconds.
    pub(crate) timeout_ms: u64,
    /// Largest request body accepted, in bytes.
    pub(crate) max_request_bytes: u64,
    /// Largest response body sent, in bytes.
    pub(crate) max_response_bytes: u64,
    /// The only environment variables the guest sees.
    pub(crate) env: BTreeMap<String, String>,
    /// Where the guest may send HTTP requests (`https://api.example.com`,
    /// `https://*.example.com`); empty means nowhere.
    pub(crate) allowed_outbound_hosts: Vec<String>,
    /// Instances kept warm at all times; 0 allows scale to zero.
    pub(crate) min_instances: u32,
    /// The most instances at once.
    pub(crate) max_instances: u32,
    /// Whether an instance serves more than one request.
    pub(crate) reuse: bool,
    /// An instance idle this long (seconds) is released.
    pub(crate) idle_timeout_s: u64,
    /// The most requests waiting for an instance.
    pub(crate) max_queue: u32,
    /// The longest a request waits for an instance, in milliseconds.
    pub(crate) queue_timeout_ms: u64,
    /// Requests one instance should serve at once (1 for WASI 0.2).
    pub(crate) target_concurrency: f64,
    /// The share of that target the autoscaler aims for.
    pub(crate) target_utilization: f64,
    /// Buckets of Kumo's object storage, or host folders, mounted into the
    /// guest (read-only unless `read_only = false`).
    pub(crate) files: Vec<FileMount>,
    /// Asynchronous calls: retries, age, the queue's bound, destinations.
    #[serde(rename = "async", skip_serializing_if = "AsyncConfig::is_default")]
    pub(crate) async_calls: AsyncConfig,
}

/// The `async` table of a function: how its asynchronous calls are
/// retried and bounded, and where their outcomes go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AsyncConfig {
    /// Retries after a failed first attempt.
    pub(crate) max_retries: u32,
    /// The first retry's delay in milliseconds (doubling, with jitter).
    pub(crate) retry_base_ms: u64,
    /// A call older than this (seconds) is not tried again.
    pub(crate) max_event_age_s: u64,
    /// The most calls of the function queued or running at once; past it
    /// a call is answered 429 with `Retry-After`.
    pub(crate) max_queued: u32,
    /// Where the record of a success goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DestinationTable>)]
    pub(crate) on_success: Option<Destination>,
    /// Where the record of a failure goes, after the last retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DestinationTable>)]
    pub(crate) on_failure: Option<Destination>,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        Self {
            max_retries: retry_defaults::MAX_RETRIES,
            retry_base_ms: retry_defaults::RETRY_BASE_MS,
            max_event_age_s: retry_defaults::MAX_EVENT_AGE_S,
            max_queued: defaults::ASYNC_MAX_QUEUED,
            on_success: None,
            on_failure: None,
        }
    }
}

impl AsyncConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for FunctionConfig {
    fn default() -> Self {
        Self {
            memory_mb: defaults::MEMORY_MB,
            timeout_ms: defaults::TIMEOUT_MS,
            max_request_bytes: defaults::MAX_REQUEST_BYTES,
            max_response_bytes: defaults::MAX_RESPONSE_BYTES,
            env: BTreeMap::new(),
            allowed_outbound_hosts: Vec::new(),
            min_instances: pool_defaults::MIN_INSTANCES,
            max_instances: pool_defaults::MAX_INSTANCES,
            reuse: pool_defaults::REUSE,
            idle_timeout_s: pool_defaults::IDLE_TIMEOUT_S,
            max_queue: pool_defaults::MAX_QUEUE,
            queue_timeout_ms: pool_defaults::QUEUE_TIMEOUT_MS,
            target_concurrency: pool_defaults::TARGET_CONCURRENCY,
            target_utilization: pool_defaults::TARGET_UTILIZATION,
            files: Vec::new(),
            async_calls: AsyncConfig::default(),
        }
    }
}

/// A configuration value out of range; `key` names it (and `index` the
/// entry of a list).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{key}` {message}")]
pub(crate) struct ConfigError {
    /// The offending key.
    pub(crate) key: &'static str,
    /// The entry of a list key, when the problem is one entry.
    pub(crate) index: Option<usize>,
    /// What is wrong, naming the value.
    pub(crate) message: String,
    /// How to fix it.
    pub(crate) hint: &'static str,
}

impl ConfigError {
    /// The message and the hint as one line.
    pub(crate) fn with_hint(&self) -> String {
        format!("{self}; hint: {}", self.hint)
    }
}

impl FunctionConfig {
    /// The canonical JSON stored with a version.
    pub(crate) fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a configuration always serializes")
    }

    /// Checks every value and gives the engine's and the pool's settings.
    ///
    /// # Errors
    ///
    /// The first value out of range, named.
    pub(crate) fn validate(&self) -> Result<(FunctionSettings, PoolSettings), ConfigError> {
        let range = |key: &'static str,
                     value: u64,
                     range: std::ops::RangeInclusive<u64>|
         -> Result<u64, ConfigError> {
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(ConfigError {
                    key,
                    index: None,
                    message: format!("is {value}, outside {}..={}", range.start(), range.end()),
                    hint: "pick a value inside the range; docs/manifest.md gives the defaults",
                })
            }
        };
        let fraction = |key: &'static str, value: f64, max: f64| {
            if value > 0.0 && value <= max {
                Ok(value)
            } else {
                Err(ConfigError {
                    key,
                    index: None,
                    message: format!("is {value}, outside (0, {max}]"),
                    hint: "pick a positive value; docs/scaling.md explains the autoscaler",
                })
            }
        };
        let memory_mb = range("memory_mb", self.memory_mb, 1..=MAX_MEMORY_MB)?;
        let timeout_ms = range("timeout_ms", self.timeout_ms, 1..=defaults::MAX_TIMEOUT_MS)?;
        let max_request_bytes = range(
            "max_request_bytes",
            self.max_request_bytes,
            0..=u64::from(u32::MAX),
        )?;
        let max_response_bytes = range(
            "max_response_bytes",
            self.max_response_bytes,
            0..=u64::from(u32::MAX),
        )?;
        let mut allowed_outbound_hosts = Vec::new();
        for (index, entry) in self.allowed_outbound_hosts.iter().enumerate() {
            let rule = OutboundRule::parse(entry).map_err(|error| ConfigError {
                key: "allowed_outbound_hosts",
                index: Some(index),
                message: format!("entry {index}: {error}"),
                hint: "write entries as `https://api.example.com`, `http://127.0.0.1:8080` or `https://*.example.com`",
            })?;
            allowed_outbound_hosts.push(rule);
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(ConfigError {
                    key: "env",
                    index: None,
                    message: format!("has an invalid variable name {name:?}"),
                    hint: "names are non-empty and hold no `=` or NUL",
                });
            }
            // A NUL would cut the value short in the guest, silently.
            if value.contains('\0') {
                return Err(ConfigError {
                    key: "env",
                    index: None,
                    message: format!("variable {name:?} has a NUL character in its value"),
                    hint: "values hold no NUL; encode binary data (base64, hex)",
                });
            }
        }
        for (index, mount) in self.files.iter().enumerate() {
            let source = match (&mount.bucket, &mount.dir) {
                (Some(bucket), None) => crate::storage::check_bucket_name(bucket)
                    .map_err(|error| (error.to_string(), "name a bucket of the storage endpoint; docs/storage.md gives the rules")),
                (None, Some(dir)) if std::path::Path::new(dir).is_absolute() => Ok(()),
                (None, Some(dir)) => Err((
                    format!("folder `{dir}` is relative"),
                    "give the folder as an absolute path on the server's file system (a manifest resolves relative folders against its own folder)",
                )),
                _ => Err((
                    "names both or neither of `bucket` and `dir`".to_string(),
                    "mount either a bucket (`bucket = \"photos\"`) or a host folder (`dir = \"./inbox\"`)",
                )),
            };
            if let Err((message, hint)) = source {
                return Err(ConfigError {
                    key: "files",
                    index: Some(index),
                    message: format!("entry {index}: {message}"),
                    hint,
                });
            }
            if !crate::storage::is_clean_mount_path(&mount.path)
                || self.files[..index]
                    .iter()
                    .any(|other| other.path == mount.path)
            {
                return Err(ConfigError {
                    key: "files",
                    index: Some(index),
                    message: format!(
                        "entry {index}: mount path `{}` is not a clean absolute path, or is used twice",
                        mount.path
                    ),
                    hint: "write the guest path like `/data` (absolute, no `.`, `..` or `//`), one mount per path",
                });
            }
        }
        let max_instances = range(
            "max_instances",
            u64::from(self.max_instances),
            1..=u64::from(MAX_POOLED_INSTANCES),
        )?;
        range(
            "min_instances",
            u64::from(self.min_instances),
            0..=max_instances,
        )?;
        let idle_timeout_s = range("idle_timeout_s", self.idle_timeout_s, 1..=7 * 24 * 3600)?;
        range("max_queue", u64::from(self.max_queue), 0..=100_000)?;
        let queue_timeout_ms = range(
            "queue_timeout_ms",
            self.queue_timeout_ms,
            0..=defaults::MAX_TIMEOUT_MS,
        )?;
        let target_concurrency = fraction("target_concurrency", self.target_concurrency, 1000.0)?;
        let target_utilization = fraction("target_utilization", self.target_utilization, 1.0)?;
        self.async_policy()?;
        let settings = FunctionSettings {
            memory_mb,
            timeout: Duration::from_millis(timeout_ms),
            max_request_bytes,
            max_response_bytes,
            env: self
                .env
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            allowed_outbound_hosts: allowed_outbound_hosts.into(),
            // The engine takes host folders; `live` fills them in from
            // `files` and the storage root.
            mounts: Vec::new(),
        };
        let pool = PoolSettings {
            min_instances: self.min_instances,
            max_instances: self.max_instances,
            reuse: self.reuse,
            idle_timeout: Duration::from_secs(idle_timeout_s),
            max_queue: self.max_queue,
            queue_timeout: Duration::from_millis(queue_timeout_ms),
            target_concurrency,
            target_utilization,
        };
        Ok((settings, pool))
    }
}

impl FunctionConfig {
    /// What an asynchronous call of this configuration is queued with.
    ///
    /// # Errors
    ///
    /// A key of the `async` table out of range, named.
    pub(crate) fn async_policy(&self) -> Result<AsyncPolicy, ConfigError> {
        let calls = &self.async_calls;
        let retry = RetryPolicy {
            max_retries: calls.max_retries,
            retry_base: Duration::from_millis(calls.retry_base_ms),
            max_event_age: Duration::from_secs(calls.max_event_age_s),
        };
        retry.validate().map_err(|error| ConfigError {
            key: "async",
            index: None,
            message: format!("`{}` {}", error.key, error.message),
            hint: "docs/async.md gives the range of each key of the `async` table",
        })?;
        if !(1..=defaults::ASYNC_MAX_MAX_QUEUED).contains(&calls.max_queued) {
            return Err(ConfigError {
                key: "async",
                index: None,
                message: format!(
                    "`max_queued` is {}, outside 1..={}",
                    calls.max_queued,
                    defaults::ASYNC_MAX_MAX_QUEUED
                ),
                hint: "the default is 1000; docs/async.md explains the bound",
            });
        }
        Ok(AsyncPolicy {
            retry,
            max_queued: calls.max_queued,
            max_body_bytes: self.max_request_bytes.min(defaults::ASYNC_MAX_BODY_BYTES),
            on_success: calls.on_success.clone(),
            on_failure: calls.on_failure.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_object_is_the_defaults_and_unknown_keys_are_refused() {
        let config: FunctionConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, FunctionConfig::default());
        let error = serde_json::from_str::<FunctionConfig>(r#"{"memory":128}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `memory`"),
            "{error}"
        );
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let cases: &[(&str, &str)] = &[
            (r#"{"memory_mb":0}"#, "`memory_mb` is 0, outside 1..=4096"),
            (r#"{"timeout_ms":0}"#, "`timeout_ms` is 0, outside"),
            (r#"{"max_instances":0}"#, "`max_instances` is 0"),
            (
                r#"{"min_instances":5,"max_instances":2}"#,
                "`min_instances` is 5, outside 0..=2",
            ),
            (
                r#"{"target_utilization":1.5}"#,
                "`target_utilization` is 1.5",
            ),
            (
                r#"{"allowed_outbound_hosts":["https://ok.example.com","ftp://x"]}"#,
                "`allowed_outbound_hosts` entry 1:",
            ),
            (
                r#"{"env":{"A=B":"x"}}"#,
                "`env` has an invalid variable name",
            ),
            (
                r#"{"env":{"A":"x\u0000y"}}"#,
                "`env` variable \"A\" has a NUL character in its value",
            ),
        ];
        for (json, expected) in cases {
            let config: FunctionConfig = serde_json::from_str(json).unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert!(error.starts_with(expected), "{json}: {error}");
        }
        assert!(FunctionConfig::default().validate().is_ok());
    }

    #[test]
    fn canonical_json_ignores_the_order_keys_were_written_in() {
        let a: FunctionConfig =
            serde_json::from_str(r#"{"env":{"B":"2","A":"1"},"memory_mb":256}"#).unwrap();
        let b: FunctionConfig =
            serde_json::from_str(r#"{"memory_mb":256,"env":{"A":"1","B":"2"}}"#).unwrap();
        assert_eq!(a.canonical_json(), b.canonical_json());
        let c = FunctionConfig {
            memory_mb: 512,
            ..a.clone()
        };
        assert_ne!(a.canonical_json(), c.canonical_json());
    }
}
