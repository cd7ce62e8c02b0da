//! The event documents the runtime writes, from what happened: an object
//! change, a timer firing, a file in a watched folder. The document types
//! and the attribute values are the wire protocol shared with the SDK
//! (`kumo_protocol::event`); this module fills them in and keeps the
//! CloudEvents attributes that go beside the body as `ce-*` headers.

use chrono::{DateTime, SecondsFormat, Utc};
use kumo_protocol::event::{
    self as wire, CLOUDEVENTS_JSON, CloudEventData, FileEvent, JSON, OssBucket, OssDocument,
    OssEntity, OssObject, OssRecord, OssResponseElements, RequestParameters, S3Bucket, S3Document,
    S3Entity, S3Object, S3Record, S3ResponseElements, StructuredCloudEvent, TimerEvent,
    UserIdentity,
};
use serde::Serialize;

use super::ObjectChange;
use crate::model::ObjectEventFormat;

/// The CloudEvents attributes of one event (binary mode: sent as `ce-*`
/// headers, the document as the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventDocument {
    pub(crate) source: String,
    pub(crate) event_type: String,
    /// The object key, the file path, or the timer name.
    pub(crate) subject: String,
    pub(crate) time: DateTime<Utc>,
    /// The body's `content-type`.
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
}

/// The region every document names.
const REGION: &str = "local";
/// The owner and principal every document names.
const PRINCIPAL: &str = "kumo";

fn millis(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn to_json(document: &impl Serialize) -> Vec<u8> {
    // The documents are structs of strings, numbers and options: they
    // always serialize.
    serde_json::to_vec(document).expect("an event document serializes")
}

fn principal() -> UserIdentity {
    UserIdentity {
        principal_id: PRINCIPAL.to_owned(),
    }
}

fn request_parameters(change: &ObjectChange) -> RequestParameters {
    RequestParameters {
        source_ip_address: change.source_ip.clone().unwrap_or_default(),
    }
}

/// The document for `change` seen by the trigger `trigger_name`, in
/// `format`; `event_id` is the CloudEvent's id.
pub(crate) fn object_event(
    change: &ObjectChange,
    trigger_name: &str,
    format: ObjectEventFormat,
    event_id: &str,
) -> EventDocument {
    let (content_type, body) = match format {
        ObjectEventFormat::Oss => (JSON, to_json(&oss_object_event(change, trigger_name))),
        ObjectEventFormat::S3 => (JSON, to_json(&s3_object_event(change, trigger_name))),
        ObjectEventFormat::Cloudevents => {
            (CLOUDEVENTS_JSON, to_json(&cloudevent(change, event_id)))
        }
    };
    EventDocument {
        source: wire::storage_source(&change.bucket),
        event_type: wire::storage_type(&change.event_name),
        subject: change.key.clone(),
        time: change.time,
        content_type,
        body,
    }
}

/// Function Compute's OSS trigger shape. `eTag` is upper-case hex, as OSS
/// writes it; `deltaSize` is the object's size for a creation (Kumo does
/// not track the size replaced by an overwrite) and 0 for a removal.
fn oss_object_event(change: &ObjectChange, trigger_name: &str) -> OssDocument {
    OssDocument {
        events: vec![OssRecord {
            event_name: change.event_name.clone(),
            event_source: "acs:oss".to_owned(),
            event_time: millis(&change.time),
            event_version: "1.0".to_owned(),
            oss: OssEntity {
                bucket: OssBucket {
                    arn: format!("acs:oss:{REGION}:{PRINCIPAL}:{}", change.bucket),
                    name: change.bucket.clone(),
                    owner_identity: PRINCIPAL.to_owned(),
                },
                object: OssObject {
                    delta_size: change.size,
                    etag: change.etag.to_ascii_uppercase(),
                    key: change.key.clone(),
                    size: change.size,
                },
                oss_schema_version: "1.0".to_owned(),
                rule_id: Some(trigger_name.to_owned()),
            },
            region: REGION.to_owned(),
            request_parameters: request_parameters(change),
            response_elements: OssResponseElements {
                request_id: change.request_id.clone(),
            },
            user_identity: principal(),
        }],
    }
}

/// Amazon S3's notification shape (`eventVersion` 2.1); a removal has no
/// `size` and `eTag`.
fn s3_object_event(change: &ObjectChange, trigger_name: &str) -> S3Document {
    let sequencer = format!(
        "{:016X}",
        change.time.timestamp_nanos_opt().unwrap_or_default()
    );
    let created = change.event_name.starts_with("ObjectCreated");
    S3Document {
        records: vec![S3Record {
            aws_region: REGION.to_owned(),
            event_name: wire::s3_event_name(&change.event_name),
            event_source: "aws:s3".to_owned(),
            event_time: millis(&change.time),
            event_version: "2.1".to_owned(),
            request_parameters: request_parameters(change),
            response_elements: S3ResponseElements {
                request_id: change.request_id.clone(),
            },
            s3: S3Entity {
                bucket: S3Bucket {
                    arn: format!("arn:aws:s3:::{}", change.bucket),
                    name: change.bucket.clone(),
                    owner_identity: principal(),
                },
                configuration_id: Some(trigger_name.to_owned()),
                object: S3Object {
                    etag: created.then(|| change.etag.clone()),
                    key: wire::s3_encode_key(&change.key),
                    sequencer,
                    size: created.then_some(change.size),
                },
                s3_schema_version: "1.0".to_owned(),
            },
            user_identity: principal(),
        }],
    }
}

/// A structured CloudEvent (JSON format) whose `data` describes the object.
fn cloudevent(change: &ObjectChange, event_id: &str) -> StructuredCloudEvent {
    StructuredCloudEvent {
        data: CloudEventData {
            bucket: change.bucket.clone(),
            etag: change.etag.clone(),
            event_name: change.event_name.clone(),
            key: change.key.clone(),
            request_id: change.request_id.clone(),
            size: change.size,
            source_ip_address: change.source_ip.clone(),
        },
        datacontenttype: JSON.to_owned(),
        id: event_id.to_owned(),
        source: wire::storage_source(&change.bucket),
        specversion: wire::SPEC_VERSION.to_owned(),
        subject: change.key.clone(),
        time: millis(&change.time),
        event_type: wire::storage_type(&change.event_name),
    }
}

/// Function Compute's timer event; `trigger_time` is the scheduled time
/// (whole seconds, `Z`).
pub(crate) fn timer_event(
    trigger_name: &str,
    trigger_time: DateTime<Utc>,
    payload: &str,
) -> EventDocument {
    let body = TimerEvent {
        payload: payload.to_owned(),
        trigger_name: trigger_name.to_owned(),
        trigger_time: trigger_time.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    EventDocument {
        source: wire::timer_source(trigger_name),
        event_type: wire::TIMER_TYPE.to_owned(),
        subject: trigger_name.to_owned(),
        time: trigger_time,
        content_type: JSON,
        body: to_json(&body),
    }
}

/// A file that became complete in a watched folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileChange {
    /// The watched folder, absolute.
    pub(crate) folder: String,
    /// The file's path relative to the folder (`/`-separated).
    pub(crate) path: String,
    pub(crate) size: u64,
    /// Its modification time.
    pub(crate) modified: DateTime<Utc>,
    /// When Kumo saw it complete.
    pub(crate) time: DateTime<Utc>,
}

/// Kumo's file event for a watched folder.
pub(crate) fn file_event(trigger_name: &str, file: &FileChange) -> EventDocument {
    let body = FileEvent {
        event_time: millis(&file.time),
        folder: file.folder.clone(),
        modified_time: millis(&file.modified),
        path: file.path.clone(),
        size: file.size,
        trigger_name: trigger_name.to_owned(),
    };
    EventDocument {
        source: wire::watch_source(trigger_name),
        event_type: wire::FILE_CREATED_TYPE.to_owned(),
        subject: file.path.clone(),
        time: file.time,
        content_type: JSON,
        body: to_json(&body),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn time() -> DateTime<Utc> {
        "2026-11-23T06:45:43.120Z".parse().unwrap()
    }

    fn change(key: &str, event_name: &str) -> ObjectChange {
        ObjectChange {
            bucket: "photos".into(),
            key: key.into(),
            size: 122_539,
            etag: "688a7bf4ef1e2a3b4c5d6e7f80911223".into(),
            event_name: event_name.into(),
            time: time(),
            source_ip: Some("127.0.0.1".into()),
            request_id: "req-1".into(),
        }
    }

    fn body(document: &EventDocument) -> Value {
        serde_json::from_slice(&document.body).unwrap()
    }

    /// The document is `expected`, and byte for byte what serializing
    /// `expected` gives: the bytes the runtime wrote when it built its
    /// documents as `serde_json::Value`s.
    fn assert_document(document: &EventDocument, expected: &Value) {
        assert_eq!(&body(document), expected);
        assert_eq!(
            String::from_utf8_lossy(&document.body),
            serde_json::to_string(expected).unwrap()
        );
    }

    #[test]
    fn oss_documents_have_function_computes_shape() {
        let document = object_event(
            &change("in/a.png", "ObjectCreated:PutObject"),
            "thumbs",
            ObjectEventFormat::Oss,
            "ev-1",
        );
        let expected = json!({"events":[{
            "eventName":"ObjectCreated:PutObject","eventSource":"acs:oss",
            "eventTime":"2026-11-23T06:45:43.120Z","eventVersion":"1.0",
            "oss":{"bucket":{"name":"photos","arn":"acs:oss:local:kumo:photos","ownerIdentity":"kumo"},
                   "object":{"key":"in/a.png","size":122539,"deltaSize":122539,"eTag":"688A7BF4EF1E2A3B4C5D6E7F80911223"},
                   "ossSchemaVersion":"1.0","ruleId":"thumbs"},
            "region":"local","requestParameters":{"sourceIPAddress":"127.0.0.1"},
            "responseElements":{"requestId":"req-1"},"userIdentity":{"principalId":"kumo"}}]});
        assert_document(&document, &expected);
        assert_eq!(document.content_type, JSON);
        assert_eq!(document.source, "/kumo/storage/photos");
        assert_eq!(document.event_type, "kumo.storage.ObjectCreated:PutObject");
        assert_eq!(document.subject, "in/a.png");
    }

    #[test]
    fn s3_documents_encode_the_key_and_use_s3_event_names() {
        let document = object_event(
            &change("in/my photo+1é.png", "ObjectCreated:PutObject"),
            "thumbs",
            ObjectEventFormat::S3,
            "ev-1",
        );
        let expected = json!({"Records":[{
            "eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"local",
            "eventTime":"2026-11-23T06:45:43.120Z","eventName":"ObjectCreated:Put",
            "userIdentity":{"principalId":"kumo"},
            "requestParameters":{"sourceIPAddress":"127.0.0.1"},
            "responseElements":{"x-amz-request-id":"req-1"},
            "s3":{"s3SchemaVersion":"1.0","configurationId":"thumbs",
                  "bucket":{"name":"photos","ownerIdentity":{"principalId":"kumo"},"arn":"arn:aws:s3:::photos"},
                  "object":{"key":"in/my+photo%2B1%C3%A9.png","size":122539,
                            "eTag":"688a7bf4ef1e2a3b4c5d6e7f80911223","sequencer":"18EA99A6CB993400"}}}]});
        assert_document(&document, &expected);
        let removed = object_event(
            &change("a", "ObjectRemoved:DeleteObject"),
            "t",
            ObjectEventFormat::S3,
            "ev-2",
        );
        let removed = body(&removed);
        assert_eq!(removed["Records"][0]["eventName"], "ObjectRemoved:Delete");
        assert!(removed["Records"][0]["s3"]["object"].get("size").is_none());
    }

    #[test]
    fn structured_cloudevents_carry_the_object_as_data() {
        let document = object_event(
            &change("in/a.png", "ObjectCreated:PutObject"),
            "thumbs",
            ObjectEventFormat::Cloudevents,
            "ev-1",
        );
        let expected = json!({
            "specversion":"1.0","id":"ev-1","source":"/kumo/storage/photos",
            "type":"kumo.storage.ObjectCreated:PutObject","subject":"in/a.png",
            "time":"2026-11-23T06:45:43.120Z","datacontenttype":"application/json",
            "data":{"bucket":"photos","key":"in/a.png","size":122539,
                    "eTag":"688a7bf4ef1e2a3b4c5d6e7f80911223","eventName":"ObjectCreated:PutObject",
                    "sourceIPAddress":"127.0.0.1","requestId":"req-1"}});
        assert_document(&document, &expected);
        assert_eq!(document.content_type, CLOUDEVENTS_JSON);
    }

    #[test]
    fn timer_documents_have_function_computes_shape() {
        let document = timer_event("nightly", "2026-11-23T06:45:00Z".parse().unwrap(), "sweep");
        assert_document(
            &document,
            &json!({"triggerTime":"2026-11-23T06:45:00Z","triggerName":"nightly","payload":"sweep"}),
        );
        assert_eq!(document.event_type, "kumo.timer");
        assert_eq!(document.source, "/kumo/timer/nightly");
        assert_eq!(document.subject, "nightly");
    }

    #[test]
    fn file_documents_give_the_path_relative_to_the_folder() {
        let document = file_event(
            "inbox",
            &FileChange {
                folder: "/srv/inbox".into(),
                path: "notes.txt".into(),
                size: 42,
                modified: "2026-11-23T06:45:40Z".parse().unwrap(),
                time: time(),
            },
        );
        assert_document(
            &document,
            &json!({"triggerName":"inbox","folder":"/srv/inbox","path":"notes.txt","size":42,
                   "modifiedTime":"2026-11-23T06:45:40.000Z","eventTime":"2026-11-23T06:45:43.120Z"}),
        );
        assert_eq!(document.event_type, "kumo.file.created");
        assert_eq!(document.subject, "notes.txt");
    }
}

#[cfg(test)]
mod proptests {
    //! Any object change, in every format: the body is JSON of the shape
    //! its format names, carrying the bucket and key exactly (S3's key
    //! URL-encoded and decoding back), and the `ce-subject` header value
    //! encodes and decodes back to the key.
    //! `PROPTEST_CASES=N` runs N cases (`bench/fuzz.sh`).

    use chrono::TimeZone;
    use kumo_protocol::event::{OssDocument, S3Document, StructuredCloudEvent, s3_decode_key};
    use kumo_protocol::header;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn object_documents_carry_any_key_exactly(
            bucket in "[a-z0-9.-]{3,63}",
            key in any::<String>(),
            size: u64,
            etag in "[0-9a-f]{0,32}",
            event_name in "(ObjectCreated|ObjectRemoved):[A-Za-z]{0,12}",
            seconds in 0i64..4_102_444_800,
            source_ip in proptest::option::of("[0-9.:a-f]{0,20}"),
            trigger in "[a-zA-Z0-9._-]{1,64}",
            event_id in "[a-z0-9_-]{1,40}",
        ) {
            let change = ObjectChange {
                bucket: bucket.clone(),
                key: key.clone(),
                size,
                etag,
                event_name,
                time: Utc.timestamp_opt(seconds, 0).unwrap(),
                source_ip,
                request_id: "r".to_owned(),
            };
            for format in [ObjectEventFormat::Oss, ObjectEventFormat::S3, ObjectEventFormat::Cloudevents] {
                let document = object_event(&change, &trigger, format, &event_id);
                prop_assert_eq!(&document.subject, &key);
                prop_assert_eq!(header::decode_value(&header::encode_value(&document.subject)), key.clone());
                let (read_bucket, read_key) = match format {
                    ObjectEventFormat::Oss => {
                        let oss: OssDocument = serde_json::from_slice(&document.body).unwrap();
                        prop_assert_eq!(oss.events[0].oss.rule_id.as_deref(), Some(trigger.as_str()));
                        (oss.events[0].oss.bucket.name.clone(), oss.events[0].oss.object.key.clone())
                    }
                    ObjectEventFormat::S3 => {
                        let s3: S3Document = serde_json::from_slice(&document.body).unwrap();
                        (s3.records[0].s3.bucket.name.clone(), s3_decode_key(&s3.records[0].s3.object.key))
                    }
                    ObjectEventFormat::Cloudevents => {
                        let event: StructuredCloudEvent = serde_json::from_slice(&document.body).unwrap();
                        prop_assert_eq!(&event.id, &event_id);
                        (event.data.bucket, event.data.key)
                    }
                };
                prop_assert_eq!(read_bucket, bucket.clone());
                prop_assert_eq!(read_key, key.clone());
            }
        }
    }
}
