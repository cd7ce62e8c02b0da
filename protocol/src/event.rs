//! Event documents: the JSON body of the `POST /` that delivers an event to
//! a function, and the CloudEvents attribute values sent beside it as
//! `ce-*` headers ([`crate::header`]).
//!
//! - Object events: Function Compute's OSS shape ([`OssDocument`], the
//!   default), Amazon S3's shape ([`S3Document`], the key URL-encoded as S3
//!   does), or a structured CloudEvent ([`StructuredCloudEvent`]).
//! - Timer events: Function Compute's timer shape ([`TimerEvent`]).
//! - File events (watched folders): Kumo's own shape ([`FileEvent`]).
//!
//! The runtime serializes these structs; the SDK deserializes the same
//! ones. Fields are declared in the order the documents have always been
//! written in (sorted by name, as `serde_json`'s map wrote them), so the
//! bytes a function receives do not change. Reading is lenient: only what
//! a function needs to act on an event (names, times, bucket and key) is
//! required, the rest defaults when absent.

use serde::{Deserialize, Serialize};

/// CloudEvents' spec version Kumo sends.
pub const SPEC_VERSION: &str = "1.0";
/// `content-type` of OSS, S3, timer and file documents.
pub const JSON: &str = "application/json";
/// `content-type` of a structured CloudEvent.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// The start of every object event's `ce-type`.
pub const STORAGE_TYPE_PREFIX: &str = "kumo.storage.";
/// `ce-type` of a timer event.
pub const TIMER_TYPE: &str = "kumo.timer";
/// `ce-type` of a file event.
pub const FILE_CREATED_TYPE: &str = "kumo.file.created";

/// `ce-type` of an object event: `kumo.storage.` and the OSS event name,
/// such as `kumo.storage.ObjectCreated:PutObject`.
pub fn storage_type(event_name: &str) -> String {
    format!("{STORAGE_TYPE_PREFIX}{event_name}")
}

/// `ce-source` of an object event: `/kumo/storage/<bucket>`.
pub fn storage_source(bucket: &str) -> String {
    format!("/kumo/storage/{bucket}")
}

/// `ce-source` of a timer event: `/kumo/timer/<trigger>`.
pub fn timer_source(trigger_name: &str) -> String {
    format!("/kumo/timer/{trigger_name}")
}

/// `ce-source` of a file event: `/kumo/watch/<trigger>`.
pub fn watch_source(trigger_name: &str) -> String {
    format!("/kumo/watch/{trigger_name}")
}

/// Function Compute's OSS trigger document: `{"events":[...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OssDocument {
    /// One record per object change (Kumo sends one).
    pub events: Vec<OssRecord>,
}

/// One object change in an [`OssDocument`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OssRecord {
    /// `ObjectCreated:PutObject`, `ObjectRemoved:DeleteObject`, ...
    pub event_name: String,
    /// `acs:oss`.
    #[serde(default)]
    pub event_source: String,
    /// When it happened, RFC 3339 with milliseconds.
    pub event_time: String,
    /// `1.0`.
    #[serde(default)]
    pub event_version: String,
    /// The bucket, the object and the trigger.
    pub oss: OssEntity,
    /// `local`.
    #[serde(default)]
    pub region: String,
    /// The client's address.
    #[serde(default)]
    pub request_parameters: RequestParameters,
    /// The storage request's id.
    #[serde(default)]
    pub response_elements: OssResponseElements,
    /// Who made the change (`kumo`).
    #[serde(default)]
    pub user_identity: UserIdentity,
}

/// The `oss` part of an [`OssRecord`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OssEntity {
    /// The bucket.
    pub bucket: OssBucket,
    /// The object.
    pub object: OssObject,
    /// `1.0`.
    #[serde(default)]
    pub oss_schema_version: String,
    /// The trigger's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
}

/// The bucket of an [`OssEntity`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OssBucket {
    /// `acs:oss:<region>:<owner>:<bucket>`.
    #[serde(default)]
    pub arn: String,
    /// The bucket's name.
    pub name: String,
    /// The bucket's owner (`kumo`).
    #[serde(default)]
    pub owner_identity: String,
}

/// The object of an [`OssEntity`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OssObject {
    /// The size for a creation (Kumo does not track the size an overwrite
    /// replaced), 0 for a removal.
    #[serde(default)]
    pub delta_size: u64,
    /// The MD5 as upper-case hex, as OSS writes it; empty for a removal.
    #[serde(default, rename = "eTag")]
    pub etag: String,
    /// The key, not encoded.
    pub key: String,
    /// The size in bytes, 0 for a removal.
    #[serde(default)]
    pub size: u64,
}

/// Amazon S3's notification document (`eventVersion` 2.1):
/// `{"Records":[...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3Document {
    /// One record per object change (Kumo sends one).
    pub records: Vec<S3Record>,
}

/// One object change in an [`S3Document`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Record {
    /// `local`.
    #[serde(default)]
    pub aws_region: String,
    /// S3's event name: `ObjectCreated:Put`, `ObjectRemoved:Delete`, ...
    /// ([`s3_event_name`]).
    pub event_name: String,
    /// `aws:s3`.
    #[serde(default)]
    pub event_source: String,
    /// When it happened, RFC 3339 with milliseconds.
    pub event_time: String,
    /// `2.1`.
    #[serde(default)]
    pub event_version: String,
    /// The client's address.
    #[serde(default)]
    pub request_parameters: RequestParameters,
    /// The storage request's id.
    #[serde(default)]
    pub response_elements: S3ResponseElements,
    /// The bucket, the object and the trigger.
    pub s3: S3Entity,
    /// Who made the change (`kumo`).
    #[serde(default)]
    pub user_identity: UserIdentity,
}

/// The `s3` part of an [`S3Record`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Entity {
    /// The bucket.
    pub bucket: S3Bucket,
    /// The trigger's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_id: Option<String>,
    /// The object.
    pub object: S3Object,
    /// `1.0`.
    #[serde(default)]
    pub s3_schema_version: String,
}

/// The bucket of an [`S3Entity`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Bucket {
    /// `arn:aws:s3:::<bucket>`.
    #[serde(default)]
    pub arn: String,
    /// The bucket's name.
    pub name: String,
    /// The bucket's owner (`kumo`).
    #[serde(default)]
    pub owner_identity: UserIdentity,
}

/// The object of an [`S3Entity`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Object {
    /// The MD5 as lowercase hex; absent for a removal.
    #[serde(default, rename = "eTag", skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The key, URL-encoded as S3 does ([`s3_encode_key`]).
    pub key: String,
    /// A hex number that orders the changes of one key.
    #[serde(default)]
    pub sequencer: String,
    /// The size in bytes; absent for a removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// `requestParameters` of an OSS or S3 record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestParameters {
    /// The client's address; empty when unknown.
    #[serde(default, rename = "sourceIPAddress")]
    pub source_ip_address: String,
}

/// `responseElements` of an OSS record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OssResponseElements {
    /// The storage request's id.
    #[serde(default)]
    pub request_id: String,
}

/// `responseElements` of an S3 record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3ResponseElements {
    /// The storage request's id.
    #[serde(default, rename = "x-amz-request-id")]
    pub request_id: String,
}

/// `userIdentity` (and an S3 bucket's `ownerIdentity`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `kumo`.
    #[serde(default)]
    pub principal_id: String,
}

/// A structured CloudEvent (JSON format, `application/cloudevents+json`)
/// whose `data` describes an object change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructuredCloudEvent {
    /// The object change.
    pub data: CloudEventData,
    /// `application/json`: the type of `data`.
    #[serde(default)]
    pub datacontenttype: String,
    /// The event's id, as `ce-id`.
    #[serde(default)]
    pub id: String,
    /// As `ce-source`.
    #[serde(default)]
    pub source: String,
    /// [`SPEC_VERSION`].
    pub specversion: String,
    /// The object key.
    #[serde(default)]
    pub subject: String,
    /// When it happened, RFC 3339 with milliseconds.
    #[serde(default)]
    pub time: String,
    /// As `ce-type`.
    #[serde(default, rename = "type")]
    pub event_type: String,
}

/// The `data` of a [`StructuredCloudEvent`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudEventData {
    /// The bucket's name.
    pub bucket: String,
    /// The MD5 as lowercase hex; empty for a removal.
    #[serde(default, rename = "eTag")]
    pub etag: String,
    /// The OSS event name, such as `ObjectCreated:PutObject`.
    pub event_name: String,
    /// The key, not encoded.
    pub key: String,
    /// The storage request's id.
    #[serde(default)]
    pub request_id: String,
    /// The size in bytes, 0 for a removal.
    #[serde(default)]
    pub size: u64,
    /// The client's address, `null` when unknown.
    #[serde(default, rename = "sourceIPAddress")]
    pub source_ip_address: Option<String>,
}

/// A timer firing: Function Compute's timer event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerEvent {
    /// The trigger's configured payload.
    #[serde(default)]
    pub payload: String,
    /// The trigger's name.
    pub trigger_name: String,
    /// The scheduled time, RFC 3339 in whole seconds.
    pub trigger_time: String,
}

/// A file completely written into a watched folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEvent {
    /// When Kumo saw it complete, RFC 3339 with milliseconds.
    pub event_time: String,
    /// The watched folder on the host.
    pub folder: String,
    /// Its modification time, RFC 3339 with milliseconds.
    pub modified_time: String,
    /// Its path relative to the folder, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The trigger's name.
    pub trigger_name: String,
}

/// S3's event name for an OSS one: `ObjectCreated:PutObject` is
/// `ObjectCreated:Put` in S3, `ObjectRemoved:DeleteObject` is
/// `ObjectRemoved:Delete`; others keep their name.
pub fn s3_event_name(event_name: &str) -> String {
    let (kind, name) = event_name.split_once(':').unwrap_or((event_name, ""));
    let name = match name {
        "PutObject" => "Put",
        "PostObject" => "Post",
        "CopyObject" => "Copy",
        "DeleteObject" | "DeleteObjects" => "Delete",
        other => other,
    };
    format!("{kind}:{name}")
}

/// URL-encodes a key as S3 does in notifications: unreserved characters
/// and `/` stay, a space becomes `+`, every other byte is `%XX`.
pub fn s3_encode_key(key: &str) -> String {
    let mut encoded = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                encoded.push(char::from(byte));
            }
            b' ' => encoded.push('+'),
            other => crate::header::push_escape(&mut encoded, other),
        }
    }
    encoded
}

/// The key of an S3 document decoded: `+` is a space, `%XX` a byte; an
/// invalid escape is kept as it is.
pub fn s3_decode_key(key: &str) -> String {
    crate::header::percent_decode(key, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_event_names() {
        let names = [
            ("ObjectCreated:PutObject", "ObjectCreated:Put"),
            (
                "ObjectCreated:CompleteMultipartUpload",
                "ObjectCreated:CompleteMultipartUpload",
            ),
            ("ObjectCreated:CopyObject", "ObjectCreated:Copy"),
            ("ObjectRemoved:DeleteObject", "ObjectRemoved:Delete"),
            ("ObjectRemoved:DeleteObjects", "ObjectRemoved:Delete"),
        ];
        for (oss, s3) in names {
            assert_eq!(s3_event_name(oss), s3);
        }
    }

    #[test]
    fn s3_keys_encode_and_decode_back() {
        let keys = [
            ("a/b.txt", "a/b.txt"),
            ("a b", "a+b"),
            ("a+b", "a%2Bb"),
            ("100%", "100%25"),
            ("ü", "%C3%BC"),
            ("x=y&z", "x%3Dy%26z"),
            ("in/my photo+1é.png", "in/my+photo%2B1%C3%A9.png"),
        ];
        for (key, encoded) in keys {
            assert_eq!(s3_encode_key(key), encoded);
            assert_eq!(s3_decode_key(encoded), key);
        }
    }

    /// Serializing fills every field, and reading the bytes back gives the
    /// same value: what the runtime writes, the SDK reads whole.
    #[test]
    fn documents_read_back_what_was_written() {
        let oss = OssDocument {
            events: vec![OssRecord {
                event_name: "ObjectCreated:PutObject".into(),
                event_time: "2026-11-23T06:45:43.120Z".into(),
                oss: OssEntity {
                    bucket: OssBucket {
                        name: "photos".into(),
                        ..OssBucket::default()
                    },
                    object: OssObject {
                        key: "a.png".into(),
                        size: 3,
                        ..OssObject::default()
                    },
                    rule_id: Some("thumbs".into()),
                    ..OssEntity::default()
                },
                ..OssRecord::default()
            }],
        };
        let bytes = serde_json::to_vec(&oss).unwrap();
        assert_eq!(serde_json::from_slice::<OssDocument>(&bytes).unwrap(), oss);

        let s3 = S3Document {
            records: vec![S3Record {
                event_name: "ObjectRemoved:Delete".into(),
                s3: S3Entity {
                    object: S3Object {
                        key: "a".into(),
                        ..S3Object::default()
                    },
                    ..S3Entity::default()
                },
                ..S3Record::default()
            }],
        };
        let text = serde_json::to_string(&s3).unwrap();
        assert!(
            !text.contains("eTag") && !text.contains("\"size\""),
            "{text}"
        );
        assert!(!text.contains("configurationId"), "{text}");
        assert_eq!(serde_json::from_str::<S3Document>(&text).unwrap(), s3);
    }

    #[test]
    fn only_what_a_function_acts_on_is_required() {
        let minimal = r#"{"events":[{"eventName":"ObjectCreated:PutObject","eventTime":"t","oss":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        let document: OssDocument = serde_json::from_str(minimal).unwrap();
        assert_eq!(document.events[0].oss.object.size, 0);
        assert_eq!(document.events[0].oss.rule_id, None);
        let error = serde_json::from_str::<OssDocument>(
            r#"{"events":[{"eventName":"x","eventTime":"t","oss":{"bucket":{"name":"b"},"object":{}}}]}"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains("`key`"), "{error}");
        let timer: TimerEvent =
            serde_json::from_str(r#"{"triggerTime":"t","triggerName":"n"}"#).unwrap();
        assert_eq!(timer.payload, "");
    }
}
