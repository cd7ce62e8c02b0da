//! Bucket names and object keys: what S3 allows, narrowed to what is safe
//! to turn into a path under the storage directory.

/// Why a bucket name or an object key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    /// The bucket name breaks S3's naming rules.
    #[error(
        "invalid bucket name `{name}`: {problem}; hint: use 3 to 63 lowercase letters, digits, `-` and `.`, \
         starting and ending with a letter or digit"
    )]
    InvalidBucketName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        problem: &'static str,
    },
    /// The key is longer than S3's 1024 bytes, or has a path segment
    /// longer than the file system allows.
    #[error("object key `{key}` is too long: {problem}; hint: use a shorter key")]
    KeyTooLong {
        /// The key (possibly shortened for the message).
        key: String,
        /// Which limit it passes.
        problem: &'static str,
    },
    /// The key cannot be stored as a file inside its bucket.
    #[error("invalid object key `{key}`: {problem}; hint: {hint}")]
    InvalidKey {
        /// The key, with control characters escaped.
        key: String,
        /// What is wrong with it.
        problem: &'static str,
        /// What to do instead.
        hint: &'static str,
    },
}

/// The longest key S3 accepts, in UTF-8 bytes.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// The longest path segment (between `/`) most file systems store.
const MAX_SEGMENT_BYTES: usize = 255;

/// Whether a `files` mount's guest path is absolute and clean: `/`, or
/// `/a/b` with no empty, `.` or `..` segment.
pub(crate) fn is_clean_mount_path(path: &str) -> bool {
    path.starts_with('/')
        && (path == "/"
            || path[1..]
                .split('/')
                .all(|segment| !matches!(segment, "" | "." | "..")))
}

/// Checks a bucket name against S3's rules for general purpose buckets
/// ([`crate::model::bucket_name_problem`]).
///
/// # Errors
///
/// [`NameError::InvalidBucketName`] naming the rule broken.
pub(crate) fn check_bucket_name(name: &str) -> Result<(), NameError> {
    let problem = crate::model::bucket_name_problem(name);
    match problem {
        None => Ok(()),
        Some(problem) => Err(NameError::InvalidBucketName {
            name: name.to_string(),
            problem,
        }),
    }
}

/// Checks that a key names a file inside its bucket and nothing else: at
/// most 1024 bytes; no NUL or backslash; not absolute; no empty, `.` or
/// `..` segment; no trailing `/` (folder markers are not stored); no
/// segment longer than 255 bytes.
///
/// # Errors
///
/// [`NameError::InvalidKey`] or [`NameError::KeyTooLong`].
pub(crate) fn check_object_key(key: &str) -> Result<(), NameError> {
    let invalid = |problem, hint| {
        Err(NameError::InvalidKey {
            key: key.escape_debug().to_string(),
            problem,
            hint,
        })
    };
    if key.is_empty() {
        return invalid("it is empty", "name the object, like `in/photo.png`");
    }
    if key.len() > MAX_KEY_BYTES {
        let mut end = 64;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        return Err(NameError::KeyTooLong {
            key: format!("{}...", &key[..end]),
            problem: "S3 keys are at most 1024 bytes",
        });
    }
    if key.contains('\0') {
        return invalid("it holds a NUL character", "remove the NUL");
    }
    if key.contains('\\') {
        return invalid(
            "it holds a backslash",
            "separate folders with `/`, not `\\`",
        );
    }
    if key.starts_with('/') {
        return invalid(
            "it starts with `/` (an absolute path)",
            "drop the leading `/`",
        );
    }
    if key.ends_with('/') {
        return invalid(
            "it ends with `/` (a folder marker); folders exist implicitly here",
            "upload the files themselves; folders appear in listings with a delimiter",
        );
    }
    for segment in key.split('/') {
        match segment {
            "" => {
                return invalid(
                    "it holds an empty path segment (`//`)",
                    "use a single `/` between folders",
                );
            }
            "." | ".." => {
                return invalid(
                    "it holds a `.` or `..` path segment",
                    "keys may not climb out of their bucket; remove the segment",
                );
            }
            _ if segment.len() > MAX_SEGMENT_BYTES => {
                return Err(NameError::KeyTooLong {
                    key: key.chars().take(64).collect::<String>() + "...",
                    problem: "a segment between `/` is longer than 255 bytes",
                });
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        let good = ["photos", "abc", "my-bucket.v2", "0bucket9", &"a".repeat(63)];
        for name in good {
            assert_eq!(check_bucket_name(name), Ok(()), "{name}");
        }
        let bad = [
            ("ab", "3 to 63"),
            (&*"a".repeat(64), "3 to 63"),
            ("Photos", "lowercase"),
            ("my_bucket", "lowercase"),
            ("-bucket", "start and end"),
            ("bucket-", "start and end"),
            (".bucket", "start and end"),
            ("my..bucket", "adjacent periods"),
            ("192.168.1.1", "IP address"),
            ("xn--bucket", "xn--"),
            ("sthree-bucket", "sthree-"),
            ("bucket-s3alias", "-s3alias"),
            ("a/b", "lowercase"),
            ("..", "3 to 63"),
            ("...", "start and end"),
        ];
        for (name, problem) in bad {
            let error = check_bucket_name(name).unwrap_err().to_string();
            assert!(error.contains(problem), "{name}: {error}");
            assert!(error.contains("hint:"), "{error}");
        }
    }

    #[test]
    fn keys_that_escape_or_alias_are_refused() {
        let good = [
            "a",
            "in/photo.png",
            "deep/er/and/deeper.txt",
            ".hidden",
            "..dots..",
            "a..b/c",
            "spaces and ünïcödé/ok",
            "100%+plus=sign&more",
            &"k".repeat(255),
        ];
        for key in good {
            assert_eq!(check_object_key(key), Ok(()), "{key}");
        }
        let bad = [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../x", "`..`"),
            ("a/../../x", "`..`"),
            ("a/..", "`..`"),
            ("./a", "`.`"),
            ("a/./b", "`.`"),
            ("a//b", "empty path segment"),
            ("a\\..\\b", "backslash"),
            ("a\0b", "NUL"),
            ("folder/", "folder marker"),
            (&*"k".repeat(256), "longer than 255"),
            (&*"k/".repeat(513), "1024 bytes"),
        ];
        for (key, problem) in bad {
            let error = check_object_key(key).unwrap_err().to_string();
            assert!(error.contains(problem), "{key:?}: {error}");
            assert!(error.contains("hint:"), "{error}");
        }
    }
}
