//! Event documents: the JSON body a function receives, and the CloudEvents
//! attributes sent beside it as `ce-*` headers (DESIGN §3).
//!
//! - Object events: Function Compute's OSS shape (default), Amazon S3's
//!   shape (the key URL-encoded, as S3 does), or a structured CloudEvent.
//! - Timer events: Function Compute's timer shape.
//! - File events (watched folders): Kumo's own small shape,
//!   `{"triggerName","folder","path","size","modifiedTime","eventTime"}`,
//!   where `path` is relative to the watched folder.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::ObjectChange;
use crate::model::ObjectEventFormat;

/// The CloudEvents attributes of one event (binary mode: sent as `ce-*`
/// headers, the document as the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDocument {
    /// `ce-source`: where the event happened, as a URI reference.
    pub source: String,
    /// `ce-type`.
    pub event_type: String,
    /// `ce-subject`: the object key, the file path, or the timer name.
    pub subject: String,
    /// `ce-time`.
    pub time: DateTime<Utc>,
    /// The body's `content-type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// `content-type` of OSS, S3, timer and file documents.
pub const JSON: &str = "application/json";
/// `content-type` of a structured CloudEvent.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// The region every document names.
const REGION: &str = "local";
/// The owner and principal every document names.
const PRINCIPAL: &str = "kumo";

fn millis(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `ce-type` of an object event: `kumo.storage.` and the event name,
/// such as `kumo.storage.ObjectCreated:PutObject`.
pub fn object_event_type(change: &ObjectChange) -> String {
    format!("kumo.storage.{}", change.event_name)
}

/// `ce-source` of an object event: `/kumo/storage/<bucket>`.
pub fn object_event_source(bucket: &str) -> String {
    format!("/kumo/storage/{bucket}")
}

/// The document for `change` seen by the trigger `trigger_name`, in
/// `format`; `event_id` is the CloudEvent's id.
pub fn object_event(
    change: &ObjectChange,
    trigger_name: &str,
    format: ObjectEventFormat,
    event_id: &str,
) -> EventDocument {
    let (content_type, body) = match format {
        ObjectEventFormat::Oss => (JSON, oss_object_event(change, trigger_name)),
        ObjectEventFormat::S3 => (JSON, s3_object_event(change, trigger_name)),
        ObjectEventFormat::Cloudevents => (CLOUDEVENTS_JSON, cloudevent(change, event_id)),
    };
    EventDocument {
        source: object_event_source(&change.bucket),
        event_type: object_event_type(change),
        subject: change.key.clone(),
        time: change.time,
        content_type,
        body: serde_json::to_vec(&body).expect("a JSON value serializes"),
    }
}

/// Function Compute's OSS trigger shape. `eTag` is upper-case hex, as OSS
/// writes it; `deltaSize` is the object's size for a creation (Kumo does
/// not track the size replaced by an overwrite) and 0 for a removal.
fn oss_object_event(change: &ObjectChange, trigger_name: &str) -> Value {
    json!({"events": [{
        "eventName": change.event_name,
        "eventSource": "acs:oss",
        "eventTime": millis(&change.time),
        "eventVersion": "1.0",
        "oss": {
            "bucket": {
                "name": change.bucket,
                "arn": format!("acs:oss:{REGION}:{PRINCIPAL}:{}", change.bucket),
                "ownerIdentity": PRINCIPAL,
            },
            "object": {
                "key": change.key,
                "size": change.size,
                "deltaSize": change.size,
                "eTag": change.etag.to_ascii_uppercase(),
            },
            "ossSchemaVersion": "1.0",
            "ruleId": trigger_name,
        },
        "region": REGION,
        "requestParameters": {"sourceIPAddress": change.source_ip.as_deref().unwrap_or("")},
        "responseElements": {"requestId": change.request_id},
        "userIdentity": {"principalId": PRINCIPAL},
    }]})
}

/// S3's event name for an OSS-style one: `ObjectCreated:PutObject` is
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
                encoded.push(byte as char);
            }
            b' ' => encoded.push('+'),
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}

/// Amazon S3's notification shape (`eventVersion` 2.1).
fn s3_object_event(change: &ObjectChange, trigger_name: &str) -> Value {
    let sequencer = format!(
        "{:016X}",
        change.time.timestamp_nanos_opt().unwrap_or_default()
    );
    let mut object = json!({
        "key": s3_encode_key(&change.key),
        "sequencer": sequencer,
    });
    if change.event_name.starts_with("ObjectCreated") {
        object["size"] = json!(change.size);
        object["eTag"] = json!(change.etag);
    }
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": millis(&change.time),
        "eventName": s3_event_name(&change.event_name),
        "userIdentity": {"principalId": PRINCIPAL},
        "requestParameters": {"sourceIPAddress": change.source_ip.as_deref().unwrap_or("")},
        "responseElements": {"x-amz-request-id": change.request_id},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": trigger_name,
            "bucket": {
                "name": change.bucket,
                "ownerIdentity": {"principalId": PRINCIPAL},
                "arn": format!("arn:aws:s3:::{}", change.bucket),
            },
            "object": object,
        },
    }]})
}

/// A structured CloudEvent (JSON format) whose `data` describes the object.
fn cloudevent(change: &ObjectChange, event_id: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": event_id,
        "source": object_event_source(&change.bucket),
        "type": object_event_type(change),
        "subject": change.key,
        "time": millis(&change.time),
        "datacontenttype": JSON,
        "data": {
            "bucket": change.bucket,
            "key": change.key,
            "size": change.size,
            "eTag": change.etag,
            "eventName": change.event_name,
            "sourceIPAddress": change.source_ip,
            "requestId": change.request_id,
        },
    })
}

/// Function Compute's timer event; `trigger_time` is the scheduled time
/// (whole seconds, `Z`).
pub fn timer_event(
    trigger_name: &str,
    trigger_time: DateTime<Utc>,
    payload: &str,
) -> EventDocument {
    let body = json!({
        "triggerTime": trigger_time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "triggerName": trigger_name,
        "payload": payload,
    });
    EventDocument {
        source: format!("/kumo/timer/{trigger_name}"),
        event_type: "kumo.timer".to_string(),
        subject: trigger_name.to_string(),
        time: trigger_time,
        content_type: JSON,
        body: serde_json::to_vec(&body).expect("a JSON value serializes"),
    }
}

/// A file that became complete in a watched folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The watched folder, absolute.
    pub folder: String,
    /// The file's path relative to the folder (`/`-separated).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time.
    pub modified: DateTime<Utc>,
    /// When Kumo saw it complete.
    pub time: DateTime<Utc>,
}

/// Kumo's file event for a watched folder.
pub fn file_event(trigger_name: &str, file: &FileChange) -> EventDocument {
    let body = json!({
        "triggerName": trigger_name,
        "folder": file.folder,
        "path": file.path,
        "size": file.size,
        "modifiedTime": millis(&file.modified),
        "eventTime": millis(&file.time),
    });
    EventDocument {
        source: format!("/kumo/watch/{trigger_name}"),
        event_type: "kumo.file.created".to_string(),
        subject: file.path.clone(),
        time: file.time,
        content_type: JSON,
        body: serde_json::to_vec(&body).expect("a JSON value serializes"),
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(body(&document), expected);
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
        assert_eq!(body(&document), expected);
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
    fn s3_event_names_and_keys() {
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
        let keys = [
            ("a/b.txt", "a/b.txt"),
            ("a b", "a+b"),
            ("a+b", "a%2Bb"),
            ("100%", "100%25"),
            ("ü", "%C3%BC"),
            ("x=y&z", "x%3Dy%26z"),
        ];
        for (key, encoded) in keys {
            assert_eq!(s3_encode_key(key), encoded);
        }
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
        assert_eq!(body(&document), expected);
        assert_eq!(document.content_type, CLOUDEVENTS_JSON);
    }

    #[test]
    fn timer_documents_have_function_computes_shape() {
        let document = timer_event("nightly", "2026-11-23T06:45:00Z".parse().unwrap(), "sweep");
        assert_eq!(
            body(&document),
            json!({"triggerTime":"2026-11-23T06:45:00Z","triggerName":"nightly","payload":"sweep"})
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
        assert_eq!(
            body(&document),
            json!({"triggerName":"inbox","folder":"/srv/inbox","path":"notes.txt","size":42,
                   "modifiedTime":"2026-11-23T06:45:40.000Z","eventTime":"2026-11-23T06:45:43.120Z"})
        );
        assert_eq!(document.event_type, "kumo.file.created");
        assert_eq!(document.subject, "notes.txt");
    }
}
