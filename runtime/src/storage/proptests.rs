//! Property tests of the names storage takes from clients: bucket names and
//! object keys. For any text: no panic; an accepted key is a relative path
//! of plain segments inside its bucket; a refused name gets a message
//! naming it, with a hint; and a bucket a storage trigger accepts is one
//! storage accepts (one rule, `model::bucket_name_problem`).
//!
//! `PROPTEST_CASES=N` runs N cases per property (`bench/fuzz.sh`).

use std::path::{Component, Path};

use proptest::prelude::*;

use super::names::{MAX_KEY_BYTES, NameError, check_bucket_name, check_object_key};
use crate::model::{StorageTrigger, Target};

/// Bucket-like text: mostly the allowed alphabet, with the prefixes,
/// suffixes and shapes the rules single out.
fn bucket_like() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9.-]{1,70}",
        1 => "(xn--|sthree-)?[a-z0-9]{1,10}(-s3alias|--ol-s3)?",
        1 => "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        1 => any::<String>(),
    ]
}

/// Key-like text: segments of any characters (`.`, `..`, empty, very long
/// multi-byte ones included) joined by `/`.
fn key_like() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        4 => "[a-zA-Z0-9 ._%+-]{0,12}",
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
        1 => "[é€𝄞\\\\\u{0}]{1,4}",
        1 => "[a-zé]{250,260}",
        1 => any::<String>(),
    ];
    prop_oneof![
        8 => proptest::collection::vec(segment, 1..6).prop_map(|segments| segments.join("/")),
        1 => "[ab/é]{1000,1100}",
        1 => any::<String>(),
    ]
}

proptest! {
    #[test]
    fn bucket_names_are_checked_without_panic_and_named_when_refused(name in bucket_like()) {
        match check_bucket_name(&name) {
            Ok(()) => {
                prop_assert!((3..=63).contains(&name.len()));
                prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
                // A bucket is one folder under the storage root.
                prop_assert_eq!(Path::new(&name).components().count(), 1);
                prop_assert!(matches!(Path::new(&name).components().next(), Some(Component::Normal(_))));
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.contains(&format!("`{name}`")), "{}", message);
                prop_assert!(message.contains("hint:"), "{}", message);
            }
        }
    }

    #[test]
    fn a_bucket_a_storage_trigger_accepts_is_one_storage_accepts(name in bucket_like()) {
        let mut trigger = StorageTrigger {
            name: "t".to_owned(),
            bucket: name.clone(),
            events: vec!["ObjectCreated:*".to_owned()],
            prefix: String::new(),
            suffix: String::new(),
            function: Target::latest("f"),
            format: Default::default(),
            max_retries: 3,
            retry_base_ms: 1000,
            max_event_age_s: 3600,
        };
        prop_assert_eq!(trigger.validate().is_ok(), check_bucket_name(&name).is_ok(), "bucket {:?}", name);
    }

    #[test]
    fn accepted_keys_stay_inside_their_bucket(key in key_like()) {
        match check_object_key(&key) {
            Ok(()) => {
                prop_assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES);
                prop_assert!(!key.contains('\0') && !key.contains('\\'));
                let path = Path::new(&key);
                prop_assert!(path.components().all(|part| matches!(part, Component::Normal(_))), "{:?}", key);
                // Every segment is kept: none is dropped or merged on the way to a path.
                prop_assert_eq!(path.components().count(), key.split('/').count());
                prop_assert!(key.split('/').all(|segment| segment.len() <= 255));
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.contains("hint:"), "{}", message);
                match error {
                    // Long keys are shortened in the message, at a character boundary.
                    NameError::KeyTooLong { key: shown, .. } => prop_assert!(shown.ends_with("...")),
                    NameError::InvalidKey { key: shown, .. } => prop_assert_eq!(shown, key.escape_debug().to_string()),
                    NameError::InvalidBucketName { .. } => prop_assert!(false, "a key is not a bucket"),
                }
            }
        }
    }

    #[test]
    fn mount_paths_are_clean_or_refused(path in "(/|//)?([a-z]{1,3}|\\.|\\.\\.|)(/([a-z]{1,3}|\\.|\\.\\.|)){0,3}") {
        if super::is_clean_mount_path(&path) {
            prop_assert!(Path::new(&path).is_absolute());
            prop_assert!(Path::new(&path).components().skip(1).all(|part| matches!(part, Component::Normal(_))), "{:?}", path);
            prop_assert!(path == "/" || !path.ends_with('/'));
        }
    }
}
