//! Event trigger definitions (`[[trigger.storage]]`, `[[trigger.watch]]`,
//! `[[trigger.timer]]`): serde structs with defaults, their validation, and
//! the pure matching of an [`ObjectChange`] against storage triggers.
//!
//! The structs deserialize from the manifest (strictly: unknown keys are
//! errors) and serialize to JSON, so the registry can keep them as a
//! trigger's configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ObjectChange, Target};

/// Defaults, in one place so the docs and the code agree.
pub mod defaults {
    /// `max_retries`: retries after the first attempt.
    pub(crate) const MAX_RETRIES: u32 = 3;
    /// `retry_base_ms`: the first retry's delay before jitter.
    pub(crate) const RETRY_BASE_MS: u64 = 1000;
    /// `max_event_age_s`: 24 hours.
    pub(crate) const MAX_EVENT_AGE_S: u64 = 86_400;
    /// The most `max_retries` accepted.
    pub(crate) const MAX_MAX_RETRIES: u32 = 100;
}

/// A trigger's configuration that does not hold: which key, what is wrong,
/// and a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}; hint: {hint}")]
pub struct TriggerError {
    /// The offending key.
    pub key: &'static str,
    /// What is wrong, naming the value.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl TriggerError {
    fn new(key: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// How often and how long an event is retried: the three retry keys every
/// trigger table has, typed. One value from the trigger to the queue and
/// back to delivery; `events::retry` decides with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; the event is dead after
    /// `max_retries + 1` failed attempts.
    pub max_retries: u32,
    /// The first retry's delay (`retry_base_ms`); each further retry
    /// doubles it (then jitter).
    pub retry_base: Duration,
    /// An event older than this (`max_event_age_s`) is not retried again:
    /// it goes dead.
    pub max_event_age: Duration,
}

fn default_max_retries() -> u32 {
    defaults::MAX_RETRIES
}
fn default_retry_base_ms() -> u64 {
    defaults::RETRY_BASE_MS
}
fn default_max_event_age_s() -> u64 {
    defaults::MAX_EVENT_AGE_S
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: defaults::MAX_RETRIES,
            retry_base: Duration::from_millis(defaults::RETRY_BASE_MS),
            max_event_age: Duration::from_secs(defaults::MAX_EVENT_AGE_S),
        }
    }
}

impl RetryPolicy {
    /// Checks the ranges.
    ///
    /// # Errors
    ///
    /// The first key out of range.
    pub(crate) fn validate(&self) -> Result<(), TriggerError> {
        if self.max_retries > defaults::MAX_MAX_RETRIES {
            return Err(TriggerError::new(
                "max_retries",
                format!(
                    "{} is more than {}",
                    self.max_retries,
                    defaults::MAX_MAX_RETRIES
                ),
                "a few retries with exponential backoff cover hours; use max_event_age_s for longer",
            ));
        }
        let retry_base_ms = self.retry_base.as_millis();
        if !(1..=3_600_000).contains(&retry_base_ms) {
            return Err(TriggerError::new(
                "retry_base_ms",
                format!("{retry_base_ms} is outside 1..=3600000"),
                "the default is 1000 (one second)",
            ));
        }
        let max_event_age_s = self.max_event_age.as_secs();
        if !(1..=30 * 86_400).contains(&max_event_age_s) {
            return Err(TriggerError::new(
                "max_event_age_s",
                format!("{max_event_age_s} is outside 1..=2592000 (30 days)"),
                "the default is 86400 (one day)",
            ));
        }
        Ok(())
    }
}

/// The shape of an object event's document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ObjectEventFormat {
    /// Function Compute's OSS trigger shape (`{"events":[...]}`).
    #[default]
    Oss,
    /// Amazon S3's notification shape (`{"Records":[...]}`).
    S3,
    /// A structured CloudEvent (`application/cloudevents+json`).
    Cloudevents,
}

/// One `[[trigger.storage]]`: object changes in a bucket invoke a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageTrigger {
    /// The trigger's name (OSS `ruleId`, S3 `configurationId`); by default
    /// `storage-N`, N counting `[[trigger.storage]]` entries from 1.
    #[serde(default)]
    pub name: String,
    /// The bucket watched.
    pub bucket: String,
    /// Event patterns such as `ObjectCreated:*` or
    /// `ObjectRemoved:DeleteObject` (an `oss:` or `s3:` prefix is allowed).
    pub events: Vec<String>,
    /// Only keys starting with this.
    #[serde(default)]
    pub prefix: String,
    /// Only keys ending with this.
    #[serde(default)]
    pub suffix: String,
    /// The function target (`name`, `name:3`, `name:alias`).
    #[schema(value_type = String)]
    pub function: Target,
    /// The event document's shape.
    #[serde(default)]
    pub format: ObjectEventFormat,
    /// Retries after the first attempt.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The first retry's delay in milliseconds.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// An event older than this many seconds is not retried again.
    #[serde(default = "default_max_event_age_s")]
    pub max_event_age_s: u64,
}

/// One `[[trigger.watch]]`: files written into a host folder invoke a
/// function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WatchTrigger {
    /// The trigger's name; by default `watch-N`.
    #[serde(default)]
    pub name: String,
    /// The folder (relative paths are relative to the manifest's folder).
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// A glob for file names (`*` any run of characters, `?` one); all
    /// files when absent.
    #[serde(default)]
    pub pattern: Option<String>,
    /// The function target (`name`, `name:3`, `name:alias`).
    #[schema(value_type = String)]
    pub function: Target,
    /// Whether files already in the folder at start become events.
    #[serde(default)]
    pub process_existing: bool,
    /// Retries after the first attempt.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The first retry's delay in milliseconds.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// An event older than this many seconds is not retried again.
    #[serde(default = "default_max_event_age_s")]
    pub max_event_age_s: u64,
}

/// One `[[trigger.timer]]`: a cron schedule invokes a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimerTrigger {
    /// The trigger's name (the FC event's `triggerName`); by default
    /// `timer-N`.
    #[serde(default)]
    pub name: String,
    /// A cron expression: five fields, or six with seconds first.
    pub cron: String,
    /// The function target (`name`, `name:3`, `name:alias`).
    #[schema(value_type = String)]
    pub function: Target,
    /// The string handed to the function as `payload`.
    #[serde(default)]
    pub payload: String,
    /// Retries after the first attempt.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The first retry's delay in milliseconds.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// An event older than this many seconds is not retried again.
    #[serde(default = "default_max_event_age_s")]
    pub max_event_age_s: u64,
}

/// Trigger names: 1 to 64 of `a-z`, `A-Z`, `0-9`, `-`, `_`, `.`.
fn validate_name(name: &str) -> Result<(), TriggerError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(TriggerError::new(
            "name",
            format!("invalid trigger name `{name}`"),
            "use 1 to 64 letters, digits, `-`, `_` and `.`",
        ))
    }
}

/// An event pattern, normalized: `ObjectCreated:*` or
/// `ObjectRemoved:DeleteObject`, without any `oss:`/`s3:` prefix.
fn normalize_event_pattern(pattern: &str) -> Result<String, TriggerError> {
    let bare = pattern
        .strip_prefix("oss:")
        .or_else(|| pattern.strip_prefix("s3:"))
        .unwrap_or(pattern);
    let valid = match bare.split_once(':') {
        Some(("ObjectCreated" | "ObjectRemoved", rest)) => {
            rest == "*" || (!rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()))
        }
        _ => false,
    };
    if valid {
        Ok(bare.to_string())
    } else {
        Err(TriggerError::new(
            "events",
            format!("invalid event pattern `{pattern}`"),
            "write `ObjectCreated:*`, `ObjectRemoved:*`, or a name such as `ObjectCreated:PutObject` or `ObjectRemoved:DeleteObject`",
        ))
    }
}

/// The retry keys of a trigger table as a [`RetryPolicy`].
macro_rules! retry_policy_of {
    ($trigger:ty) => {
        impl $trigger {
            /// The trigger's retry keys.
            pub(crate) fn retry(&self) -> RetryPolicy {
                RetryPolicy {
                    max_retries: self.max_retries,
                    retry_base: Duration::from_millis(self.retry_base_ms),
                    max_event_age: Duration::from_secs(self.max_event_age_s),
                }
            }
        }
    };
}
retry_policy_of!(StorageTrigger);
retry_policy_of!(WatchTrigger);
retry_policy_of!(TimerTrigger);

impl StorageTrigger {
    /// Checks the trigger and normalizes its event patterns (drops an
    /// `oss:`/`s3:` prefix).
    ///
    /// # Errors
    ///
    /// The first key that does not hold.
    pub fn validate(&mut self) -> Result<(), TriggerError> {
        validate_name(&self.name)?;
        if let Some(problem) = super::bucket_name_problem(&self.bucket) {
            return Err(TriggerError::new(
                "bucket",
                format!("invalid bucket name `{}`: {problem}", self.bucket),
                "use 3 to 63 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit",
            ));
        }
        if self.events.is_empty() {
            return Err(TriggerError::new(
                "events",
                "no event patterns",
                "list at least one, such as `events = [\"ObjectCreated:*\"]`",
            ));
        }
        self.events = self
            .events
            .iter()
            .map(|pattern| normalize_event_pattern(pattern))
            .collect::<Result<_, _>>()?;
        self.retry().validate()
    }

    /// Whether `change` is one this trigger wants: same bucket, an event
    /// pattern matching its event name, the key within prefix and suffix.
    pub(crate) fn matches(&self, change: &ObjectChange) -> bool {
        self.bucket == change.bucket
            && change.key.starts_with(&self.prefix)
            && change.key.ends_with(&self.suffix)
            && change.key.len() >= self.prefix.len() + self.suffix.len()
            && self
                .events
                .iter()
                .any(|pattern| event_pattern_matches(pattern, &change.event_name))
    }
}

/// `ObjectCreated:*` matches every `ObjectCreated:...` name; any other
/// pattern matches its exact name.
pub(crate) fn event_pattern_matches(pattern: &str, event_name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event_name.starts_with(prefix),
        None => pattern == event_name,
    }
}

/// The storage triggers among `triggers` that want `change`, in order.
pub(crate) fn matching_storage_triggers<'a>(
    triggers: &'a [StorageTrigger],
    change: &'a ObjectChange,
) -> impl Iterator<Item = &'a StorageTrigger> + 'a {
    triggers
        .iter()
        .filter(move |trigger| trigger.matches(change))
}

impl WatchTrigger {
    /// Checks the trigger.
    ///
    /// # Errors
    ///
    /// The first key that does not hold.
    pub(crate) fn validate(&self) -> Result<(), TriggerError> {
        validate_name(&self.name)?;
        if self.path.as_os_str().is_empty() {
            return Err(TriggerError::new(
                "path",
                "the folder is empty",
                "set `path` to a folder on the host, such as `./inbox`",
            ));
        }
        if let Some(pattern) = &self.pattern
            && (pattern.is_empty() || pattern.contains('/'))
        {
            return Err(TriggerError::new(
                "pattern",
                format!("invalid file name pattern `{pattern}`"),
                "write a glob for file names, such as `*.txt`; folders below the watched one are not watched",
            ));
        }
        self.retry().validate()
    }

    /// Whether a file called `name` (no folder) is one this trigger wants:
    /// it matches `pattern`, and it is not hidden (a name starting with
    /// `.`, as tools use for partial uploads before renaming into place).
    pub(crate) fn wants_file_name(&self, name: &str) -> bool {
        !name.starts_with('.')
            && self
                .pattern
                .as_deref()
                .is_none_or(|pattern| glob_matches(pattern, name))
    }
}

impl TimerTrigger {
    /// Checks the trigger and parses its schedule.
    ///
    /// # Errors
    ///
    /// The first key that does not hold; a cron expression that does not
    /// parse is named with croner's reason.
    pub(crate) fn validate(&self) -> Result<croner::Cron, TriggerError> {
        validate_name(&self.name)?;
        let cron = parse_cron(&self.cron)?;
        self.retry().validate()?;
        Ok(cron)
    }
}

/// Parses a cron expression: five fields (minute first) or six (seconds
/// first), as croner reads them.
///
/// # Errors
///
/// A [`TriggerError`] on `cron` naming the expression and croner's reason.
pub(crate) fn parse_cron(expression: &str) -> Result<croner::Cron, TriggerError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|error| {
            TriggerError::new(
                "cron",
                format!("cron expression `{expression}` does not parse: {error}"),
                "write five fields `min hour day month weekday` or six with seconds first, such as `0 */5 * * * *`",
            )
        })
}

/// Glob matching for file names: `*` matches any run of characters
/// (possibly empty), `?` exactly one; everything else matches itself.
pub(crate) fn glob_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Iterative matching with backtracking to the last `*`.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(bucket: &str, key: &str, event_name: &str) -> ObjectChange {
        ObjectChange {
            bucket: bucket.into(),
            key: key.into(),
            size: 1,
            etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
            event_name: event_name.into(),
            time: chrono::Utc::now(),
            source_ip: None,
            request_id: "r".into(),
        }
    }

    fn storage(events: &[&str], prefix: &str, suffix: &str) -> StorageTrigger {
        let mut trigger = StorageTrigger {
            name: "t".into(),
            bucket: "photos".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            prefix: prefix.into(),
            suffix: suffix.into(),
            function: Target::latest("f"),
            format: ObjectEventFormat::Oss,
            max_retries: defaults::MAX_RETRIES,
            retry_base_ms: defaults::RETRY_BASE_MS,
            max_event_age_s: defaults::MAX_EVENT_AGE_S,
        };
        trigger.validate().unwrap();
        trigger
    }

    /// (events, prefix, suffix, bucket, key, event name, matches)
    type MatchCase = (
        &'static [&'static str],
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        bool,
    );

    #[test]
    fn storage_triggers_match_bucket_event_prefix_and_suffix() {
        #[rustfmt::skip]
        let cases: &[MatchCase] = &[
            (&["ObjectCreated:*"], "", "", "photos", "a.png", "ObjectCreated:PutObject", true),
            (&["ObjectCreated:*"], "", "", "other", "a.png", "ObjectCreated:PutObject", false),
            (&["ObjectCreated:*"], "", "", "photos", "a.png", "ObjectRemoved:DeleteObject", false),
            (&["ObjectCreated:*"], "", "", "photos", "a", "ObjectCreated:CompleteMultipartUpload", true),
            (&["ObjectRemoved:DeleteObject"], "", "", "photos", "a", "ObjectRemoved:DeleteObject", true),
            (&["ObjectRemoved:DeleteObject"], "", "", "photos", "a", "ObjectRemoved:DeleteObjects", false),
            (&["oss:ObjectCreated:PutObject"], "", "", "photos", "a", "ObjectCreated:PutObject", true),
            (&["s3:ObjectRemoved:*"], "", "", "photos", "a", "ObjectRemoved:DeleteObject", true),
            (&["ObjectCreated:PutObject", "ObjectRemoved:*"], "", "", "photos", "a", "ObjectRemoved:DeleteObject", true),
            (&["ObjectCreated:*"], "in/", "", "photos", "in/a.png", "ObjectCreated:PutObject", true),
            (&["ObjectCreated:*"], "in/", "", "photos", "out/in/a.png", "ObjectCreated:PutObject", false),
            (&["ObjectCreated:*"], "in/", ".png", "photos", "in/a.png", "ObjectCreated:PutObject", true),
            (&["ObjectCreated:*"], "in/", ".png", "photos", "in/a.jpg", "ObjectCreated:PutObject", false),
            (&["ObjectCreated:*"], "", ".png", "photos", "A.PNG", "ObjectCreated:PutObject", false),
            // prefix and suffix may not overlap: "aba" is not "ab" + ... + "ba".
            (&["ObjectCreated:*"], "ab", "ba", "photos", "aba", "ObjectCreated:PutObject", false),
            (&["ObjectCreated:*"], "ab", "ba", "photos", "abba", "ObjectCreated:PutObject", true),
        ];
        for (events, prefix, suffix, bucket, key, event_name, expected) in cases {
            let trigger = storage(events, prefix, suffix);
            assert_eq!(
                trigger.matches(&change(bucket, key, event_name)),
                *expected,
                "{events:?} {prefix:?} {suffix:?} vs {bucket}/{key} {event_name}"
            );
        }
    }

    #[test]
    fn only_the_matching_triggers_are_selected_in_order() {
        let mut png = storage(&["ObjectCreated:*"], "", ".png");
        png.name = "png".into();
        let mut all = storage(&["ObjectCreated:*", "ObjectRemoved:*"], "", "");
        all.name = "all".into();
        let mut removed = storage(&["ObjectRemoved:*"], "", "");
        removed.name = "removed".into();
        let triggers = [png, all, removed];
        let names = |c: &ObjectChange| -> Vec<String> {
            matching_storage_triggers(&triggers, c)
                .map(|t| t.name.clone())
                .collect()
        };
        assert_eq!(
            names(&change("photos", "a.png", "ObjectCreated:PutObject")),
            ["png", "all"]
        );
        assert_eq!(
            names(&change("photos", "a.png", "ObjectRemoved:DeleteObject")),
            ["all", "removed"]
        );
        assert!(names(&change("nope", "a.png", "ObjectCreated:PutObject")).is_empty());
    }

    /// (how to break a good trigger, the key named, words in the message)
    type BreakCase = (fn(&mut StorageTrigger), &'static str, &'static str);

    #[test]
    fn bad_storage_triggers_name_the_key_and_the_value() {
        let cases: &[BreakCase] = &[
            (|t| t.bucket = "Photos".into(), "bucket", "`Photos`"),
            (|t| t.bucket = "ab".into(), "bucket", "`ab`"),
            (|t| t.events = vec![], "events", "no event patterns"),
            (
                |t| t.events = vec!["ObjectMade:*".into()],
                "events",
                "`ObjectMade:*`",
            ),
            (
                |t| t.events = vec!["ObjectCreated:".into()],
                "events",
                "`ObjectCreated:`",
            ),
            (|t| t.name = "a b".into(), "name", "`a b`"),
            (|t| t.max_retries = 1000, "max_retries", "1000"),
            (|t| t.retry_base_ms = 0, "retry_base_ms", "0"),
            (|t| t.max_event_age_s = 0, "max_event_age_s", "0"),
        ];
        for (break_it, key, words) in cases {
            let mut trigger = storage(&["ObjectCreated:*"], "", "");
            break_it(&mut trigger);
            let error = trigger.validate().unwrap_err();
            assert_eq!(error.key, *key);
            assert!(error.to_string().contains(words), "{error}");
            assert!(error.to_string().contains("hint: "), "{error}");
        }
    }

    #[test]
    fn storage_trigger_defaults_fill_in_from_toml() {
        let trigger: StorageTrigger =
            toml::from_str("bucket = \"b-1\"\nevents = [\"ObjectCreated:*\"]\nfunction = \"f\"\n")
                .unwrap();
        assert_eq!(trigger.format, ObjectEventFormat::Oss);
        assert_eq!(trigger.retry(), RetryPolicy::default());
        assert_eq!(trigger.prefix, "");
        let error = toml::from_str::<StorageTrigger>(
            "bucket = \"b-1\"\nevents = []\nfunction = \"f\"\nmax_retrys = 2\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("max_retrys"), "{error}");
        let s3: StorageTrigger = toml::from_str(
            "bucket = \"b-1\"\nevents = []\nfunction = \"f\"\nformat = \"s3\"\nmax_retries = 0\n",
        )
        .unwrap();
        assert_eq!(s3.format, ObjectEventFormat::S3);
        assert_eq!(s3.retry().max_retries, 0);
    }

    #[test]
    fn cron_expressions_parse_with_or_without_seconds_or_say_why_not() {
        for good in ["*/5 * * * *", "0 */5 * * * *", "* * * * * *", "0 0 * * MON"] {
            parse_cron(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "every minute",
            "* * * * * * 2030",
        ] {
            let error = parse_cron(bad).unwrap_err();
            assert_eq!(error.key, "cron");
            assert!(
                error.message.contains(&format!("`{bad}`")),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn globs_match_file_names() {
        let cases = [
            ("*", "a.txt", true),
            ("*.txt", "a.txt", true),
            ("*.txt", "a.txt.bak", false),
            ("*.txt", ".txt", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
            ("report-*.csv", "report-2026.csv", true),
            ("report-*.csv", "report.csv", false),
            ("", "", true),
            ("", "a", false),
            ("**", "", true),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(glob_matches(pattern, name), expected, "{pattern} vs {name}");
        }
    }

    #[test]
    fn watch_triggers_skip_hidden_files_and_filter_by_pattern() {
        let mut trigger = WatchTrigger {
            name: "w".into(),
            path: "inbox".into(),
            pattern: Some("*.txt".into()),
            function: Target::latest("f"),
            process_existing: false,
            max_retries: defaults::MAX_RETRIES,
            retry_base_ms: defaults::RETRY_BASE_MS,
            max_event_age_s: defaults::MAX_EVENT_AGE_S,
        };
        assert!(trigger.wants_file_name("a.txt"));
        assert!(!trigger.wants_file_name("a.csv"));
        assert!(!trigger.wants_file_name(".a.txt"));
        trigger.pattern = None;
        assert!(trigger.wants_file_name("a.csv"));
        trigger.pattern = Some("in/*.txt".into());
        assert_eq!(trigger.validate().unwrap_err().key, "pattern");
    }
}
