//! Property tests of the parsers of the vocabulary: routes, targets,
//! function and alias names, event patterns, globs, cron expressions and
//! trigger specifications as JSON (the admin API's bodies and the stored
//! rows). For any input: no panic; an accepted value prints back as written
//! and parses back equal; a refused one gets a message naming it.
//!
//! Each property runs proptest's default 256 cases; `PROPTEST_CASES=N`
//! runs N (`bench/fuzz.sh` is the long run).

use proptest::prelude::*;

use super::event_trigger::{event_pattern_matches, glob_matches, parse_cron};
use super::target::{is_valid_alias_name, is_valid_function_name};
use super::{Qualifier, Route, RouteTable, StorageTrigger, Target, TriggerSpec};

/// Text that looks like what people write: path and name characters, the
/// separators the parsers split on, some Unicode and control characters.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9/._:*?#%+ -]{0,24}",
        1 => any::<String>(),
        1 => "(/[a-z.]{0,4}){0,4}(/\\.\\.\\.)?",
        1 => "[a-z]{1,8}:[0-9+_a-zA-Z-]{0,8}",
    ]
}

fn function_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,63}"
}

fn alias_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,63}"
}

fn target() -> impl Strategy<Value = Target> {
    let qualifier = prop_oneof![
        Just(Qualifier::Latest),
        (1..=u32::MAX).prop_map(Qualifier::Version),
        alias_name().prop_map(Qualifier::Alias),
    ];
    (function_name(), qualifier).prop_map(|(function, qualifier)| Target {
        function,
        qualifier,
    })
}

fn route() -> impl Strategy<Value = Route> {
    let segments = proptest::collection::vec("[a-zA-Z0-9._~%-]{1,8}", 0..5);
    (segments, any::<bool>()).prop_map(|(segments, prefix)| {
        let path: String = segments
            .iter()
            // `...` would read as the prefix marker.
            .map(|segment| {
                if segment.contains("...") {
                    "/x".to_owned()
                } else {
                    format!("/{segment}")
                }
            })
            .collect();
        if prefix {
            Route::Prefix(path)
        } else if path.is_empty() {
            Route::Exact("/".to_owned())
        } else {
            Route::Exact(path)
        }
    })
}

/// A JSON value of any shape, small.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        texty().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(texty(), inner, 0..4)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A trigger body as a client might send one: the real keys, mostly with
/// plausible values, sometimes with any JSON at all.
fn trigger_json() -> impl Strategy<Value = serde_json::Value> {
    let kind = prop_oneof![
        Just("http"),
        Just("storage"),
        Just("watch"),
        Just("timer"),
        Just("ftp")
    ];
    let plausible = prop_oneof![
        texty().prop_map(serde_json::Value::from),
        route().prop_map(|route| serde_json::Value::from(route.to_string())),
        target().prop_map(|target| serde_json::Value::from(target.to_string())),
        proptest::collection::vec(texty(), 0..3).prop_map(serde_json::Value::from),
        (0u64..5_000_000).prop_map(serde_json::Value::from),
        json_value(),
    ];
    let keys = proptest::collection::btree_map(
        prop_oneof![
            Just("route"),
            Just("function"),
            Just("bucket"),
            Just("events"),
            Just("prefix"),
            Just("suffix"),
            Just("format"),
            Just("path"),
            Just("pattern"),
            Just("cron"),
            Just("payload"),
            Just("name"),
            Just("max_retries"),
            Just("retry_base_ms"),
            Just("max_event_age_s"),
            Just("process_existing"),
        ],
        plausible,
        0..8,
    );
    (kind, keys).prop_map(|(kind, keys)| {
        let mut object: serde_json::Map<String, serde_json::Value> = keys
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect();
        object.insert("kind".to_owned(), kind.into());
        serde_json::Value::Object(object)
    })
}

/// What a route table should answer, the slow way: the exact route equal
/// to the path, else the longest prefix matching whole segments.
fn lookup_by_hand<'a>(routes: &'a [Route], path: &str) -> Option<&'a Route> {
    let exact = routes.iter().rev().find(|route| match route {
        Route::Exact(exact) => exact == path,
        Route::Prefix(_) => false,
    });
    exact.or_else(|| {
        routes
            .iter()
            .filter_map(|route| match route {
                Route::Prefix(prefix)
                    if path == prefix || path.starts_with(&format!("{prefix}/")) =>
                {
                    Some((prefix.len(), route))
                }
                _ => None,
            })
            .max_by_key(|(length, _)| *length)
            .map(|(_, route)| route)
    })
}

/// Glob matching the slow way: every split of the name tried.
fn glob_by_hand(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|skip| glob_by_hand(rest, &name[skip..])),
        Some((&first, rest)) => match name.split_first() {
            Some((&character, name_rest)) if first == '?' || first == character => {
                glob_by_hand(rest, name_rest)
            }
            _ => false,
        },
    }
}

proptest! {
    #[test]
    fn routes_parse_as_written_or_say_why_not(text in texty()) {
        match Route::parse(&text) {
            Ok(route) => {
                prop_assert_eq!(route.to_string(), text.clone(), "routes print as written");
                prop_assert_eq!(Route::parse(&route.to_string()), Ok(route));
            }
            Err(_) => {
                let error = Route::try_from(text.clone()).unwrap_err();
                prop_assert!(error.contains(&format!("invalid route `{text}`")), "{}", error);
                prop_assert!(error.contains("hint:"), "{}", error);
            }
        }
    }

    #[test]
    fn generated_routes_round_trip(route in route()) {
        prop_assert_eq!(Route::parse(&route.to_string()), Ok(route.clone()));
        let json = serde_json::to_string(&route).unwrap();
        prop_assert_eq!(serde_json::from_str::<Route>(&json).unwrap(), route);
    }

    #[test]
    fn the_route_table_picks_the_exact_route_or_the_longest_prefix(
        routes in proptest::collection::vec(route(), 0..8),
        probe in proptest::collection::vec(prop_oneof!["[a-z]{1,3}", "[a-zA-Z0-9._~%-]{1,8}"], 0..5),
        pick in any::<prop::sample::Index>(),
    ) {
        let table = RouteTable::new(routes.iter().cloned().map(|route| (route.clone(), route)));
        let mut paths: Vec<String> = vec![probe.iter().map(|segment| format!("/{segment}")).collect()];
        // Paths at and below a route the table holds, too.
        if !routes.is_empty() {
            let chosen = &routes[pick.index(routes.len())];
            let base = match chosen {
                Route::Exact(path) | Route::Prefix(path) => path.clone(),
            };
            paths.push(base.clone());
            paths.push(format!("{base}/x"));
            paths.push(format!("{base}x"));
        }
        for path in paths {
            let path = if path.is_empty() { "/".to_owned() } else { path };
            prop_assert_eq!(table.lookup(&path), lookup_by_hand(&routes, &path), "path {}", path);
        }
    }

    #[test]
    fn targets_parse_as_written_or_say_why_not(text in texty()) {
        match Target::parse(&text) {
            Ok(target) => {
                prop_assert_eq!(target.to_string(), text.clone(), "targets print as written");
                prop_assert!(is_valid_function_name(&target.function));
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.contains(&format!("`{}`", text.split_once(':').map_or(text.as_str(), |(name, _)| name)))
                    || message.contains(&format!("`{text}`")), "{}", message);
                prop_assert!(message.contains("hint:"), "{}", message);
            }
        }
    }

    #[test]
    fn generated_targets_round_trip(target in target()) {
        prop_assert_eq!(Target::parse(&target.to_string()), Ok(target.clone()));
        let json = serde_json::to_string(&target).unwrap();
        prop_assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), target);
    }

    #[test]
    fn names_follow_their_rules(text in texty()) {
        let rule = |extra: &[char]| {
            (1..=64).contains(&text.len())
                && text.starts_with(|c: char| c.is_ascii_lowercase())
                && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
        };
        prop_assert_eq!(is_valid_function_name(&text), rule(&['-']));
        prop_assert_eq!(is_valid_alias_name(&text), rule(&['-', '_']));
        prop_assert_eq!(super::check_function_name(&text).is_ok(), rule(&['-']));
        prop_assert_eq!(super::check_alias_name(&text).is_ok(), rule(&['-', '_']));
    }

    #[test]
    fn globs_match_as_the_slow_way_does(
        pattern in "[ab*?.]{0,8}",
        name in "[ab.]{0,10}",
    ) {
        let (pattern_chars, name_chars): (Vec<char>, Vec<char>) =
            (pattern.chars().collect(), name.chars().collect());
        prop_assert_eq!(glob_matches(&pattern, &name), glob_by_hand(&pattern_chars, &name_chars));
    }

    #[test]
    fn globs_and_event_patterns_take_any_text(pattern in any::<String>(), name in any::<String>()) {
        glob_matches(&pattern, &name);
        event_pattern_matches(&pattern, &name);
    }

    #[test]
    fn cron_expressions_parse_or_name_the_expression(
        fields in proptest::collection::vec(
            prop_oneof![
                "[0-9*/,?LW#-]{1,6}",
                "(MON|SUN|JAN|DEC|mon|@daily|@reboot)",
                "[0-9]{1,12}",
                any::<String>(),
            ],
            0..8,
        ),
        separator in prop_oneof![Just(" "), Just("  "), Just("\t")],
    ) {
        let expression = fields.join(separator);
        if let Err(error) = parse_cron(&expression) {
            prop_assert_eq!(error.key, "cron");
            prop_assert!(error.message.contains(&format!("`{expression}`")), "{}", error.message);
        }
    }

    #[test]
    fn trigger_bodies_parse_or_are_refused_without_panic(json in trigger_json()) {
        if let Ok(spec) = serde_json::from_value::<TriggerSpec>(json) {
            // What parsed is stored as JSON and read back the same.
            let stored = serde_json::to_string(&spec).unwrap();
            prop_assert_eq!(serde_json::from_str::<TriggerSpec>(&stored).unwrap(), spec.clone());
            if let TriggerSpec::Storage(mut storage) = spec
                && storage.validate().is_ok()
            {
                // Validation normalizes once; a second time changes nothing.
                let once = storage.clone();
                prop_assert!(storage.validate().is_ok());
                prop_assert_eq!(storage, once);
            }
        }
    }

    #[test]
    fn storage_trigger_checks_name_the_key(
        bucket in texty(),
        events in proptest::collection::vec(prop_oneof![texty(), Just("ObjectCreated:*".to_owned()), Just("s3:ObjectRemoved:Delete".to_owned())], 0..3),
        max_retries in 0u32..200,
        retry_base_ms in 0u64..4_000_000,
        max_event_age_s in 0u64..3_000_000,
    ) {
        let mut trigger = StorageTrigger {
            name: "t".to_owned(),
            bucket,
            events,
            prefix: String::new(),
            suffix: String::new(),
            function: Target::latest("f"),
            format: Default::default(),
            max_retries,
            retry_base_ms,
            max_event_age_s,
        };
        if let Err(error) = trigger.validate() {
            let message = error.to_string();
            prop_assert!(message.starts_with(&format!("`{}`", error.key)), "{}", message);
            prop_assert!(message.contains("hint:"), "{}", message);
        } else {
            for pattern in &trigger.events {
                prop_assert!(!pattern.starts_with("s3:") && !pattern.starts_with("oss:"));
                let name = pattern.replace('*', "Anything");
                prop_assert!(event_pattern_matches(pattern, &name));
            }
        }
    }
}
