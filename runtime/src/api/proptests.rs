//! Property tests of the deploy form, the one multipart body the admin API
//! parses. Any body under a multipart content type: no panic, and a refusal
//! is a 4xx in the API's error shape with a hint. Forms written with one
//! `component` and at most one `config` part read back as written; any
//! other set of parts is refused, naming the part.
//!
//! `PROPTEST_CASES=N` runs N cases per property (`bench/fuzz.sh`).

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::Request;
use proptest::prelude::*;

use super::ApiError;
use super::functions::{DeployParts, read_deploy_form};
use crate::config::FunctionConfig;

const BOUNDARY: &str = "kumo-proptest-boundary";

fn read(content_type: &str, body: Vec<u8>) -> Result<DeployParts, ApiError> {
    let request = Request::builder()
        .method("POST")
        .uri("/v1/functions/f/versions")
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let form = Multipart::from_request(request, &()).await;
        read_deploy_form(form).await
    })
}

fn check_refusal(error: &ApiError) -> Result<(), TestCaseError> {
    prop_assert!(error.status.is_client_error(), "{:?}", error);
    prop_assert!(
        ["invalid_request", "invalid_config", "payload_too_large"].contains(&error.code),
        "{:?}",
        error
    );
    prop_assert!(error.message.contains("hint:"), "{:?}", error);
    Ok(())
}

/// One part as written: its name (or none), an optional file name, bytes.
#[derive(Debug, Clone)]
struct Part {
    name: Option<String>,
    file_name: Option<String>,
    bytes: Vec<u8>,
}

fn config_json() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"{}".to_vec()),
        (1u64..2048, any::<bool>(), "[A-Z]{1,4}", "[ -~]{0,8}").prop_map(
            |(memory_mb, reuse, key, value)| {
                serde_json::to_vec(&serde_json::json!({
                    "memory_mb": memory_mb, "reuse": reuse, "env": { key: value }
                }))
                .unwrap()
            }
        ),
        Just(br#"{"memroy_mb": 5}"#.to_vec()),
        Just(br#"{"memory_mb": "lots"}"#.to_vec()),
        "[{}\\[\\]\":,a-z0-9 ]{0,16}".prop_map(String::into_bytes),
    ]
}

fn part() -> impl Strategy<Value = Part> {
    let name = prop_oneof![
        4 => Just(Some("component".to_owned())),
        3 => Just(Some("config".to_owned())),
        1 => Just(None),
        1 => "[a-zA-Z; =é]{0,8}".prop_map(Some),
    ];
    let file_name = proptest::option::of("[a-z.é ]{0,10}");
    (
        name,
        file_name,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        config_json(),
    )
        .prop_map(|(name, file_name, json, raw, config)| {
            let bytes = if json && name.as_deref() == Some("config") {
                config
            } else {
                raw
            };
            Part {
                name,
                file_name,
                bytes,
            }
        })
}

fn write_form(parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data").as_bytes(),
        );
        if let Some(name) = &part.name {
            body.extend_from_slice(format!("; name=\"{name}\"").as_bytes());
        }
        if let Some(file_name) = &part.file_name {
            body.extend_from_slice(format!("; filename=\"{file_name}\"").as_bytes());
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(&part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

proptest! {
    #[test]
    fn any_body_is_a_form_or_a_4xx_with_a_hint(
        content_type in prop_oneof![
            Just(format!("multipart/form-data; boundary={BOUNDARY}")),
            Just("multipart/form-data".to_owned()),
            Just("application/json".to_owned()),
            "multipart/form-data; boundary=[a-z\"-]{0,12}",
            "[ -~]{0,30}",
        ],
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            proptest::collection::vec(part(), 0..4).prop_map(|parts| write_form(&parts)),
        ],
        cut in any::<prop::sample::Index>(),
        truncate: bool,
    ) {
        let body = if truncate { body[..cut.index(body.len() + 1)].to_vec() } else { body };
        if let Err(error) = read(&content_type, body) {
            check_refusal(&error)?;
        }
    }

    #[test]
    fn written_forms_read_back_or_name_the_part(parts in proptest::collection::vec(part(), 0..4)) {
        let result = read(&format!("multipart/form-data; boundary={BOUNDARY}"), write_form(&parts));
        let named = |wanted: &str| parts.iter().filter(|part| part.name.as_deref() == Some(wanted)).count();
        let unexpected = parts.iter().position(|part| !matches!(part.name.as_deref(), Some("component" | "config")));
        match result {
            Ok(read) => {
                prop_assert_eq!(named("component"), 1);
                prop_assert!(named("config") <= 1);
                prop_assert!(unexpected.is_none());
                let component = parts.iter().find(|part| part.name.as_deref() == Some("component")).unwrap();
                prop_assert_eq!(&read.component[..], &component.bytes[..]);
                prop_assert_eq!(
                    read.file_name,
                    component.file_name.clone().unwrap_or_else(|| "component.wasm".to_owned())
                );
                let config = match parts.iter().find(|part| part.name.as_deref() == Some("config")) {
                    Some(part) => serde_json::from_slice::<FunctionConfig>(&part.bytes).unwrap(),
                    None => FunctionConfig::default(),
                };
                prop_assert_eq!(read.config, config);
            }
            Err(error) => {
                check_refusal(&error)?;
                let well_formed = named("component") == 1 && named("config") <= 1 && unexpected.is_none();
                if well_formed {
                    // Then only the config's JSON (or a name the multipart
                    // parser reads differently) can be wrong.
                    prop_assert!(
                        error.code == "invalid_config" || error.message.contains("file") || error.message.contains("part"),
                        "{:?} for {:?}", error, parts
                    );
                }
            }
        }
    }
}
