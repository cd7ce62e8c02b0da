//! Where the outcome of an asynchronous invocation goes ([`Destination`]),
//! and what an asynchronous call of a function version is queued with
//! ([`AsyncPolicy`]). Written in `kumo.toml` and the admin API as a table
//! with one of `function`, `bucket` (and `prefix`) or `url`; typed here once.

use serde::{Deserialize, Serialize};

use super::bucket_name::bucket_name_problem;
use super::{Invalid, RetryPolicy, Target};

/// The longest bucket key prefix a destination accepts.
const MAX_PREFIX_BYTES: usize = 512;

/// Where a destination record goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DestinationTable", into = "DestinationTable")]
pub enum Destination {
    /// Another function (`name`, `name:3`, `name:alias`), invoked with the
    /// record as an event.
    Function(Target),
    /// A bucket of Kumo's object storage: one object per record, at
    /// `<prefix><invocation id>.json`.
    Bucket {
        /// The bucket.
        bucket: String,
        /// Prepended to every key (may be empty).
        prefix: String,
    },
    /// An `http://` or `https://` URL the record is POSTed to.
    Url(String),
}

/// A destination as written: exactly one of `function`, `bucket` (with an
/// optional `prefix`) or `url`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationTable {
    /// A function: `name`, `name:3` or `name:alias`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// A bucket of Kumo's object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// With `bucket`: the key prefix, such as `failures/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// An `http://` or `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl TryFrom<DestinationTable> for Destination {
    type Error = Invalid;

    fn try_from(table: DestinationTable) -> Result<Self, Invalid> {
        let hint = "hint: write `{ function = \"audit\" }`, `{ bucket = \"outcomes\", prefix = \"orders/\" }` or `{ url = \"https://example.com/hook\" }`";
        match (table.function, table.bucket, table.url) {
            (Some(function), None, None) if table.prefix.is_none() => {
                Ok(Destination::Function(Target::parse(&function)?))
            }
            (None, Some(bucket), None) => {
                if let Some(problem) = bucket_name_problem(&bucket) {
                    return Err(Invalid(format!(
                        "invalid destination bucket `{bucket}`: {problem}; hint: use 3 to 63 lowercase letters, digits, `-` and `.`"
                    )));
                }
                let prefix = table.prefix.unwrap_or_default();
                if prefix.len() > MAX_PREFIX_BYTES
                    || prefix.starts_with('/')
                    || prefix.split('/').any(|part| part == "..")
                    || prefix.chars().any(char::is_control)
                {
                    return Err(Invalid(format!(
                        "invalid destination prefix `{prefix}`; hint: a key prefix such as `outcomes/`, without a leading `/`, `..` or control characters, at most {MAX_PREFIX_BYTES} bytes"
                    )));
                }
                Ok(Destination::Bucket { bucket, prefix })
            }
            (None, None, Some(url)) if table.prefix.is_none() => {
                check_url(&url)?;
                Ok(Destination::Url(url))
            }
            (None, None, None) => Err(Invalid(format!("a destination names nothing; {hint}"))),
            _ => Err(Invalid(format!(
                "a destination names one of `function`, `bucket` (with `prefix`) or `url`; {hint}"
            ))),
        }
    }
}

impl From<Destination> for DestinationTable {
    fn from(destination: Destination) -> Self {
        match destination {
            Destination::Function(target) => DestinationTable {
                function: Some(target.to_string()),
                ..DestinationTable::default()
            },
            Destination::Bucket { bucket, prefix } => DestinationTable {
                bucket: Some(bucket),
                prefix: (!prefix.is_empty()).then_some(prefix),
                ..DestinationTable::default()
            },
            Destination::Url(url) => DestinationTable {
                url: Some(url),
                ..DestinationTable::default()
            },
        }
    }
}

/// An absolute `http://` or `https://` URL with a host.
fn check_url(url: &str) -> Result<(), Invalid> {
    let invalid = |why: &str| {
        Invalid(format!(
            "invalid destination url `{url}`: {why}; hint: write an absolute URL such as `https://example.com/hook`"
        ))
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid("it does not parse"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("only http and https are supported")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("it names no host"));
    }
    Ok(())
}

impl Destination {
    /// The stored form (the table as JSON), read back by
    /// [`Destination::from_stored`].
    pub(crate) fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("a destination always serializes")
    }

    /// Reads the stored form back.
    ///
    /// # Errors
    ///
    /// Text that is not a stored destination, named.
    pub(crate) fn from_stored(text: &str) -> Result<Self, Invalid> {
        serde_json::from_str(text).map_err(|error| {
            Invalid(format!(
                "the stored destination `{text}` does not read back: {error}"
            ))
        })
    }
}

/// What an asynchronous call of one function version is queued with, from
/// its configuration's `async` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncPolicy {
    /// Retries, backoff and age, as for an event trigger.
    pub retry: RetryPolicy,
    /// The most calls of the function queued (not yet finished) at once;
    /// past it a call is answered 429.
    pub max_queued: u32,
    /// The largest request body queued, in bytes.
    pub max_body_bytes: u64,
    /// Where a success's record goes.
    pub on_success: Option<Destination>,
    /// Where a failure's record goes (after the last retry, or when the
    /// call got too old).
    pub on_failure: Option<Destination>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<Destination, String> {
        toml::from_str::<DestinationTable>(toml_text)
            .map_err(|error| error.to_string())
            .and_then(|table| Destination::try_from(table).map_err(|error| error.0))
    }

    #[test]
    fn destinations_parse_from_their_tables_or_say_why_not() {
        let good = [
            (
                "function = \"audit\"",
                Destination::Function(Target::latest("audit")),
            ),
            (
                "bucket = \"outcomes\"\nprefix = \"orders/\"",
                Destination::Bucket {
                    bucket: "outcomes".into(),
                    prefix: "orders/".into(),
                },
            ),
            (
                "bucket = \"outcomes\"",
                Destination::Bucket {
                    bucket: "outcomes".into(),
                    prefix: String::new(),
                },
            ),
            (
                "url = \"http://127.0.0.1:9/hook\"",
                Destination::Url("http://127.0.0.1:9/hook".into()),
            ),
        ];
        for (text, expected) in good {
            let destination = parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(destination, expected, "{text}");
            let stored = destination.to_stored();
            assert_eq!(Destination::from_stored(&stored).unwrap(), expected);
        }
        let bad = [
            ("", "names nothing"),
            ("function = \"a\"\nurl = \"http://x\"", "one of"),
            ("function = \"a\"\nprefix = \"p/\"", "one of"),
            ("function = \"A!\"", "invalid"),
            ("bucket = \"X\"", "invalid destination bucket `X`"),
            (
                "bucket = \"outcomes\"\nprefix = \"/abs\"",
                "invalid destination prefix",
            ),
            (
                "bucket = \"outcomes\"\nprefix = \"a/../b\"",
                "invalid destination prefix",
            ),
            ("url = \"ftp://example.com\"", "only http and https"),
            ("url = \"/relative\"", "invalid destination url"),
            ("queue = \"q\"", "unknown field"),
        ];
        for (text, words) in bad {
            let error = parse(text).unwrap_err();
            assert!(error.contains(words), "{text}: {error}");
        }
    }
}
