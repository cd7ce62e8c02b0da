//! What a trigger or an invocation names: a function's newest version
//! (`name`), one version (`name:3`) or an alias (`name:live`), and the
//! rules for function and alias names. Parsed once where text enters Kumo.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

/// A function, and which of its versions. Serialized as `name`, `name:3`
/// or `name:alias`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Target {
    /// The function's name, checked by [`check_function_name`].
    pub function: String,
    /// Which of its versions.
    pub qualifier: Qualifier,
}

/// The part after `:` in `name:3` or `name:live`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// No qualifier: the newest version.
    Latest,
    /// `name:3`: that version, whatever is newer.
    Version(u32),
    /// `name:live`: the version (or the two, by weight) the alias names.
    Alias(String),
}

impl Target {
    /// Parses `name`, `name:3` or `name:alias`.
    ///
    /// # Errors
    ///
    /// A message naming the malformed part, with a hint.
    pub(crate) fn parse(text: &str) -> Result<Self, Invalid> {
        let (function, qualifier) = match text.split_once(':') {
            None => (text, Qualifier::Latest),
            Some((function, qualifier)) => {
                // Only plain digits are a version: `u32`'s parser would also
                // take `+3`, and `03` would print back as `3`.
                let qualifier = if !qualifier.is_empty()
                    && qualifier.bytes().all(|b| b.is_ascii_digit())
                {
                    match qualifier.parse::<u32>() {
                        Ok(0) => {
                            return Err(Invalid(format!(
                                "invalid target `{text}`: versions start at 1; hint: write `{function}:1`"
                            )));
                        }
                        Ok(number) if number.to_string() == qualifier => Qualifier::Version(number),
                        Ok(number) => {
                            return Err(Invalid(format!(
                                "invalid target `{text}`: a version has no leading zeros; hint: write `{function}:{number}`"
                            )));
                        }
                        Err(_) => {
                            return Err(Invalid(format!(
                                "invalid target `{text}`: version `{qualifier}` is too large; hint: versions are numbered from 1, see `kumo functions show {function}`"
                            )));
                        }
                    }
                } else if is_valid_alias_name(qualifier) {
                    Qualifier::Alias(qualifier.to_string())
                } else {
                    return Err(Invalid(format!(
                        "invalid target `{text}`: `{qualifier}` is neither a version number nor an alias name; \
                         hint: write `{function}`, `{function}:3` or `{function}:live`"
                    )));
                };
                (function, qualifier)
            }
        };
        check_function_name(function)?;
        Ok(Self {
            function: function.to_string(),
            qualifier,
        })
    }

    /// The newest version of `function` (a name already checked).
    pub fn latest(function: &str) -> Self {
        Self {
            function: function.to_string(),
            qualifier: Qualifier::Latest,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.qualifier {
            Qualifier::Latest => write!(f, "{}", self.function),
            Qualifier::Version(number) => write!(f, "{}:{number}", self.function),
            Qualifier::Alias(alias) => write!(f, "{}:{alias}", self.function),
        }
    }
}

impl TryFrom<String> for Target {
    type Error = Invalid;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Target::parse(&text)
    }
}

impl From<Target> for String {
    fn from(target: Target) -> Self {
        target.to_string()
    }
}

/// Function names: 1 to 64 of `a-z`, `0-9`, `-`, starting with a letter.
pub(crate) fn is_valid_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Alias names: like function names, and `_` allowed; never all digits
/// (that would read as a version).
pub(crate) fn is_valid_alias_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// # Errors
///
/// The name, with the rule as a hint.
pub(crate) fn check_function_name(name: &str) -> Result<(), Invalid> {
    if is_valid_function_name(name) {
        Ok(())
    } else {
        Err(Invalid(format!(
            "invalid function name `{name}`; hint: use 1 to 64 lowercase letters, digits and `-`, starting with a letter"
        )))
    }
}

/// # Errors
///
/// The name, with the rule as a hint.
pub(crate) fn check_alias_name(name: &str) -> Result<(), Invalid> {
    if is_valid_alias_name(name) {
        Ok(())
    } else {
        Err(Invalid(format!(
            "invalid alias name `{name}`; hint: use 1 to 64 lowercase letters, digits, `-` and `_`, starting with a letter (like `live`)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_or_say_why_not() {
        type Expected = Result<(&'static str, Qualifier), &'static str>;
        let cases: &[(&str, Expected)] = &[
            ("hello", Ok(("hello", Qualifier::Latest))),
            ("hello:3", Ok(("hello", Qualifier::Version(3)))),
            ("hello:live", Ok(("hello", Qualifier::Alias("live".into())))),
            ("hello:0", Err("versions start at 1")),
            ("hello:00", Err("versions start at 1")),
            ("hello:03", Err("no leading zeros; hint: write `hello:3`")),
            ("hello:+3", Err("neither a version number nor an alias")),
            ("hello:99999999999", Err("too large")),
            ("hello:Live", Err("neither a version number nor an alias")),
            ("Hello", Err("invalid function name `Hello`")),
            ("", Err("invalid function name ``")),
        ];
        for (text, expected) in cases {
            match (Target::parse(text), expected) {
                (Ok(target), Ok((function, qualifier))) => {
                    assert_eq!(target.function, *function, "{text}");
                    assert_eq!(&target.qualifier, qualifier, "{text}");
                    assert_eq!(target.to_string(), *text);
                    let json = serde_json::to_string(&target).unwrap();
                    assert_eq!(json, format!("\"{text}\""));
                    assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), target);
                }
                (Err(error), Err(needle)) => {
                    assert!(error.to_string().contains(needle), "{text}: {error}")
                }
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}
