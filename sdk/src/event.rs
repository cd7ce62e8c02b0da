//! Typed events: what Kumo sends a function for an object upload or
//! removal, a timer, or a file in a watched folder.
//!
//! Kumo delivers every event as an HTTP `POST /` with CloudEvents 1.0
//! binary-mode headers (`ce-id`, `ce-source`, `ce-type`, `ce-time`,
//! `ce-subject`) and the event document as the body. [`Event::from_request`]
//! reads them; the raw [`Request`] stays reachable with [`Event::request`].
//!
//! ```
//! use kumo_sdk::event::{Event, EventBody, EventError};
//!
//! // An `EventError` answers 400: the request is not the event it should be.
//! fn handle(request: kumo_sdk::Request) -> Result<&'static str, EventError> {
//!     let event = Event::from_request(&request)?;
//!     match event.body()? {
//!         EventBody::Objects(objects) => {
//!             for object in objects {
//!                 kumo_sdk::info!("{} {}/{} ({} bytes)", object.event_name, object.bucket, object.key, object.size);
//!             }
//!         }
//!         EventBody::Timer(timer) => kumo_sdk::info!("timer {} at {}", timer.trigger_name, timer.trigger_time),
//!         EventBody::File(file) => kumo_sdk::info!("file {} in {}", file.path, file.folder),
//!     }
//!     Ok("ok")
//! }
//! # use kumo_sdk::IntoResponse;
//! # let request = kumo_sdk::http::Request::builder()
//! #     .method("POST").uri("/")
//! #     .header("ce-specversion", "1.0").header("ce-id", "1")
//! #     .header("ce-source", "/kumo/timer/t").header("ce-type", "kumo.timer")
//! #     .body(br#"{"triggerTime":"2026-01-01T00:00:00Z","triggerName":"t","payload":"p"}"#.to_vec())
//! #     .unwrap();
//! # assert_eq!(handle(request).into_response().status(), 200);
//! # let plain = kumo_sdk::http::Request::new(Vec::new());
//! # assert_eq!(handle(plain).into_response().status(), 400);
//! ```
//!
//! A 2xx answer acknowledges the event; any other answer, a trap or a
//! timeout makes Kumo retry it (see `docs/triggers.md`).

use kumo_protocol::event::{
    FILE_CREATED_TYPE, OssDocument, S3Document, STORAGE_TYPE_PREFIX, StructuredCloudEvent,
    TIMER_TYPE, s3_decode_key,
};
use kumo_protocol::header;

use crate::Request;

/// The event documents as Kumo writes them (the same types the runtime
/// serializes), for a function that wants a format's every field.
pub use kumo_protocol::event as document;
pub use kumo_protocol::event::{FileEvent, TimerEvent};
/// The header with the delivery attempt's number, 1 for the first.
pub use kumo_protocol::header::ATTEMPT as ATTEMPT_HEADER;
/// The header with the event's hop count. Send it, unchanged, on an S3
/// request made while handling the event, so a loop of functions
/// triggering each other stops.
pub use kumo_protocol::header::HOPS as HOPS_HEADER;

/// Why a request could not be read as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// The request has no `ce-specversion`, `ce-id`, `ce-source` or
    /// `ce-type` header: it is a plain HTTP request, not an event.
    NotAnEvent(&'static str),
    /// The body is not the document its `ce-type` announces.
    BadDocument(String),
    /// The `ce-type` is not one Kumo sends.
    UnknownType(String),
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventError::NotAnEvent(header) => write!(
                f,
                "not an event: the request has no `{header}` header; hint: events come as POST / from Kumo's triggers"
            ),
            EventError::BadDocument(why) => write!(f, "the event document does not parse: {why}"),
            EventError::UnknownType(event_type) => write!(
                f,
                "unknown event type `{event_type}`; hint: Kumo sends kumo.storage.*, kumo.timer and kumo.file.created"
            ),
        }
    }
}

impl std::error::Error for EventError {}

/// The CloudEvents attributes of an event (from the `ce-*` headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEventAttributes {
    /// `ce-specversion` (`1.0`).
    pub spec_version: String,
    /// `ce-id`: the same for every delivery attempt of one event, so a
    /// function can tell a retry from a new event.
    pub id: String,
    /// `ce-source`, such as `/kumo/storage/photos`.
    pub source: String,
    /// `ce-type`, such as `kumo.storage.ObjectCreated:PutObject`.
    pub event_type: String,
    /// `ce-time`, RFC 3339.
    pub time: Option<String>,
    /// `ce-subject` (the object key, the file path, the timer name),
    /// percent-decoded.
    pub subject: Option<String>,
    /// `content-type` of the body.
    pub data_content_type: Option<String>,
}

/// An event received by a function: its attributes, and the request it
/// came in.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    request: &'a Request,
    attributes: CloudEventAttributes,
}

/// One object created or removed, whichever format the trigger used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// The event name, OSS style: `ObjectCreated:PutObject`,
    /// `ObjectRemoved:DeleteObject`, ... (an S3 document's `ObjectCreated:Put`
    /// stays as written).
    pub event_name: String,
    /// The bucket.
    pub bucket: String,
    /// The key, decoded (S3 documents URL-encode it).
    pub key: String,
    /// The size in bytes (0 for a removal).
    pub size: u64,
    /// The MD5 as hex, as the document wrote it (OSS: upper case).
    pub etag: String,
    /// When it happened, RFC 3339.
    pub event_time: String,
    /// The trigger's name (OSS `ruleId`, S3 `configurationId`), when the
    /// format carries it.
    pub trigger_name: Option<String>,
}

/// An event's document, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    /// Object events (one per record; Kumo sends one).
    Objects(Vec<ObjectEvent>),
    /// A timer firing.
    Timer(TimerEvent),
    /// A file in a watched folder.
    File(FileEvent),
}

fn header_value(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

impl<'a> Event<'a> {
    /// Reads the CloudEvents attributes of `request`.
    ///
    /// # Errors
    ///
    /// [`EventError::NotAnEvent`] when a required `ce-*` header is missing.
    pub fn from_request(request: &'a Request) -> Result<Self, EventError> {
        let required =
            |name: &'static str| header_value(request, name).ok_or(EventError::NotAnEvent(name));
        let attributes = CloudEventAttributes {
            spec_version: required(header::CE_SPECVERSION)?,
            id: required(header::CE_ID)?,
            source: required(header::CE_SOURCE)?,
            event_type: required(header::CE_TYPE)?,
            time: header_value(request, header::CE_TIME),
            subject: header_value(request, header::CE_SUBJECT).map(|s| header::decode_value(&s)),
            data_content_type: header_value(request, "content-type"),
        };
        Ok(Self {
            request,
            attributes,
        })
    }

    /// The CloudEvents attributes.
    pub fn attributes(&self) -> &CloudEventAttributes {
        &self.attributes
    }

    /// The raw request (method, headers, body).
    pub fn request(&self) -> &'a Request {
        self.request
    }

    /// The delivery attempt's number (1 for the first), when sent.
    pub fn attempt(&self) -> Option<u32> {
        header_value(self.request, ATTEMPT_HEADER)?.parse().ok()
    }

    /// The event's hop count (0 unless a function's write caused it).
    pub fn hops(&self) -> u32 {
        header_value(self.request, HOPS_HEADER)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    }

    /// The event's document, parsed by its `ce-type`.
    ///
    /// # Errors
    ///
    /// [`EventError::BadDocument`] or [`EventError::UnknownType`].
    pub fn body(&self) -> Result<EventBody, EventError> {
        let event_type = self.attributes.event_type.as_str();
        let body = self.request.body();
        if event_type.starts_with(STORAGE_TYPE_PREFIX) {
            parse_object_events(body).map(EventBody::Objects)
        } else if event_type == TIMER_TYPE {
            parse_json(body).map(EventBody::Timer)
        } else if event_type == FILE_CREATED_TYPE {
            parse_json(body).map(EventBody::File)
        } else {
            Err(EventError::UnknownType(event_type.to_owned()))
        }
    }

    /// The object events of a storage trigger (any format).
    ///
    /// # Errors
    ///
    /// [`EventError::BadDocument`].
    pub fn objects(&self) -> Result<Vec<ObjectEvent>, EventError> {
        parse_object_events(self.request.body())
    }

    /// The timer event of a timer trigger.
    ///
    /// # Errors
    ///
    /// [`EventError::BadDocument`].
    pub fn timer(&self) -> Result<TimerEvent, EventError> {
        parse_json(self.request.body())
    }

    /// The file event of a watch trigger.
    ///
    /// # Errors
    ///
    /// [`EventError::BadDocument`].
    pub fn file(&self) -> Result<FileEvent, EventError> {
        parse_json(self.request.body())
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, EventError> {
    serde_json::from_slice(body).map_err(|error| EventError::BadDocument(error.to_string()))
}

/// Parses an object event document in any of the three formats: OSS
/// (`{"events":[...]}`), S3 (`{"Records":[...]}`, keys URL-decoded) or a
/// structured CloudEvent (`{"specversion":..., "data":{...}}`).
///
/// # Errors
///
/// [`EventError::BadDocument`] when it is none of them.
pub fn parse_object_events(body: &[u8]) -> Result<Vec<ObjectEvent>, EventError> {
    let value: serde_json::Value = parse_json(body)?;
    let bad = |error: serde_json::Error| EventError::BadDocument(error.to_string());
    if value.get("events").is_some() {
        let document: OssDocument = serde_json::from_value(value).map_err(bad)?;
        return Ok(document
            .events
            .into_iter()
            .map(|record| ObjectEvent {
                event_name: record.event_name,
                bucket: record.oss.bucket.name,
                key: record.oss.object.key,
                size: record.oss.object.size,
                etag: record.oss.object.etag,
                event_time: record.event_time,
                trigger_name: record.oss.rule_id,
            })
            .collect());
    }
    if value.get("Records").is_some() {
        let document: S3Document = serde_json::from_value(value).map_err(bad)?;
        return Ok(document
            .records
            .into_iter()
            .map(|record| ObjectEvent {
                event_name: record.event_name,
                bucket: record.s3.bucket.name,
                key: s3_decode_key(&record.s3.object.key),
                size: record.s3.object.size.unwrap_or(0),
                etag: record.s3.object.etag.unwrap_or_default(),
                event_time: record.event_time,
                trigger_name: record.s3.configuration_id,
            })
            .collect());
    }
    if value.get("specversion").is_some() {
        let event: StructuredCloudEvent = serde_json::from_value(value).map_err(bad)?;
        return Ok(vec![ObjectEvent {
            event_name: event.data.event_name,
            bucket: event.data.bucket,
            key: event.data.key,
            size: event.data.size,
            etag: event.data.etag,
            event_time: event.time,
            trigger_name: None,
        }]);
    }
    Err(EventError::BadDocument(
        "neither an OSS (`events`), an S3 (`Records`) nor a CloudEvents (`specversion`) document"
            .to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], body: &str) -> Request {
        let mut builder = http::Request::builder().method("POST").uri("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(body.as_bytes().to_vec()).unwrap()
    }

    const CE: [(&str, &str); 4] = [
        ("ce-specversion", "1.0"),
        ("ce-id", "ev-1"),
        ("ce-source", "/kumo/storage/photos"),
        ("ce-type", "kumo.storage.ObjectCreated:PutObject"),
    ];

    const OSS: &str = r#"{"events":[{"eventName":"ObjectCreated:PutObject","eventSource":"acs:oss","eventTime":"2026-11-23T06:45:43.120Z","eventVersion":"1.0","oss":{"bucket":{"name":"photos","arn":"acs:oss:local:kumo:photos","ownerIdentity":"kumo"},"object":{"key":"in/a b.png","size":122539,"deltaSize":122539,"eTag":"688A7BF4"},"ossSchemaVersion":"1.0","ruleId":"thumbs"},"region":"local","requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"requestId":"r"},"userIdentity":{"principalId":"kumo"}}]}"#;
    const S3: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"local","eventTime":"2026-11-23T06:45:43.120Z","eventName":"ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0","configurationId":"thumbs","bucket":{"name":"photos","arn":"arn:aws:s3:::photos"},"object":{"key":"in/a+b%2B%C3%A9.png","size":122539,"eTag":"688a7bf4","sequencer":"1"}}}]}"#;
    const CLOUDEVENT: &str = r#"{"specversion":"1.0","id":"ev-1","source":"/kumo/storage/photos","type":"kumo.storage.ObjectCreated:PutObject","subject":"in/a.png","time":"2026-11-23T06:45:43.120Z","datacontenttype":"application/json","data":{"bucket":"photos","key":"in/a.png","size":122539,"eTag":"688a7bf4","eventName":"ObjectCreated:PutObject","sourceIPAddress":null,"requestId":"r"}}"#;

    #[test]
    fn object_events_parse_in_every_format() {
        let expected =
            |key: &str, event_name: &str, etag: &str, trigger: Option<&str>| ObjectEvent {
                event_name: event_name.into(),
                bucket: "photos".into(),
                key: key.into(),
                size: 122_539,
                etag: etag.into(),
                event_time: "2026-11-23T06:45:43.120Z".into(),
                trigger_name: trigger.map(Into::into),
            };
        let cases = [
            (
                OSS,
                expected(
                    "in/a b.png",
                    "ObjectCreated:PutObject",
                    "688A7BF4",
                    Some("thumbs"),
                ),
            ),
            (
                S3,
                expected(
                    "in/a b+é.png",
                    "ObjectCreated:Put",
                    "688a7bf4",
                    Some("thumbs"),
                ),
            ),
            (
                CLOUDEVENT,
                expected("in/a.png", "ObjectCreated:PutObject", "688a7bf4", None),
            ),
        ];
        for (document, object) in cases {
            let request = request(&CE, document);
            let event = Event::from_request(&request).unwrap();
            assert_eq!(
                event.body().unwrap(),
                EventBody::Objects(vec![object.clone()])
            );
            assert_eq!(event.objects().unwrap(), vec![object]);
        }
        let error = parse_object_events(br#"{"hello":1}"#).unwrap_err();
        assert!(error.to_string().contains("neither an OSS"), "{error}");
        assert!(matches!(
            parse_object_events(b"not json"),
            Err(EventError::BadDocument(_))
        ));
    }

    #[test]
    fn attributes_come_from_the_headers_and_the_raw_request_stays() {
        let mut headers = CE.to_vec();
        headers.extend([
            ("ce-time", "2026-11-23T06:45:43.120Z"),
            ("ce-subject", "in/%C3%A4 b.png"),
            ("content-type", "application/json"),
            (ATTEMPT_HEADER, "2"),
            (HOPS_HEADER, "3"),
        ]);
        let request = request(&headers, OSS);
        let event = Event::from_request(&request).unwrap();
        assert_eq!(
            event.attributes(),
            &CloudEventAttributes {
                spec_version: "1.0".into(),
                id: "ev-1".into(),
                source: "/kumo/storage/photos".into(),
                event_type: "kumo.storage.ObjectCreated:PutObject".into(),
                time: Some("2026-11-23T06:45:43.120Z".into()),
                subject: Some("in/ä b.png".into()),
                data_content_type: Some("application/json".into()),
            }
        );
        assert_eq!(event.attempt(), Some(2));
        assert_eq!(event.hops(), 3);
        assert_eq!(event.request().body(), OSS.as_bytes());
    }

    #[test]
    fn plain_requests_are_not_events() {
        let plain = request(&[], "");
        assert_eq!(
            Event::from_request(&plain).unwrap_err(),
            EventError::NotAnEvent("ce-specversion")
        );
        let partial = request(&CE[..2], "");
        assert_eq!(
            Event::from_request(&partial).unwrap_err(),
            EventError::NotAnEvent("ce-source")
        );
    }

    #[test]
    fn timer_and_file_events_parse_by_type() {
        let timer = request(
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-source", "/kumo/timer/t"),
                ("ce-type", "kumo.timer"),
            ],
            r#"{"triggerTime":"2026-11-23T06:45:00Z","triggerName":"t","payload":"sweep"}"#,
        );
        let event = Event::from_request(&timer).unwrap();
        assert_eq!(
            event.body().unwrap(),
            EventBody::Timer(TimerEvent {
                trigger_time: "2026-11-23T06:45:00Z".into(),
                trigger_name: "t".into(),
                payload: "sweep".into(),
            })
        );
        assert_eq!(event.attempt(), None);
        assert_eq!(event.hops(), 0);
        let file = request(
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-source", "/kumo/watch/w"),
                ("ce-type", "kumo.file.created"),
            ],
            r#"{"triggerName":"w","folder":"/srv/in","path":"a.txt","size":4,"modifiedTime":"2026-11-23T06:45:40.000Z","eventTime":"2026-11-23T06:45:43.120Z"}"#,
        );
        let file = Event::from_request(&file).unwrap().file().unwrap();
        assert_eq!((file.path.as_str(), file.size), ("a.txt", 4));
        let odd = request(
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-source", "x"),
                ("ce-type", "com.example"),
            ],
            "{}",
        );
        assert_eq!(
            Event::from_request(&odd).unwrap().body().unwrap_err(),
            EventError::UnknownType("com.example".into())
        );
    }
}

#[cfg(test)]
mod proptests {
    //! Property tests of what the SDK reads from a request: the `ce-*`
    //! headers and the event documents. Any headers and any body: no panic,
    //! and a missing header or a bad document is an [`EventError`] saying
    //! which. Documents written as the runtime writes them read back whole.
    //! `PROPTEST_CASES=N` runs N cases per property (`bench/fuzz.sh`).

    use proptest::prelude::*;

    use super::*;
    use kumo_protocol::event::{
        OssBucket, OssEntity, OssObject, OssRecord, S3Bucket, S3Entity, S3Object, S3Record,
        s3_encode_key,
    };

    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(header::CE_SPECVERSION.to_owned()),
            Just(header::CE_ID.to_owned()),
            Just(header::CE_SOURCE.to_owned()),
            Just(header::CE_TYPE.to_owned()),
            Just(header::CE_TIME.to_owned()),
            Just(header::CE_SUBJECT.to_owned()),
            Just(ATTEMPT_HEADER.to_owned()),
            Just(HOPS_HEADER.to_owned()),
            Just("content-type".to_owned()),
            "x-[a-z]{1,6}",
        ]
    }

    /// Header values as bytes: visible ASCII, escapes, obs-text (bytes
    /// 0x80-0xff that `to_str` refuses).
    fn header_value_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "[ -~]{0,20}".prop_map(String::into_bytes),
            "(%[0-9A-Fa-fz]{0,2}|[a-z/+]){0,8}".prop_map(String::into_bytes),
            "kumo\\.(storage\\.ObjectCreated:Put|timer|file\\.created|x)"
                .prop_map(String::into_bytes),
            proptest::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..12),
        ]
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let json_like = prop_oneof![
            Just(r#"{"events":[]}"#.to_owned()),
            Just(r#"{"Records":[{}]}"#.to_owned()),
            Just(r#"{"specversion":1}"#.to_owned()),
            Just(r#"{"events":[{"eventName":"x","eventTime":"t","oss":{"bucket":{"name":"b"},"object":{"key":"%zz","size":-1}}}]}"#.to_owned()),
            Just(r#"{"Records":[{"eventName":"x","eventTime":"t","s3":{"bucket":{"name":"b"},"object":{"key":"%C3%28+%"}}}]}"#.to_owned()),
            Just(r#"{"triggerTime":"t","triggerName":"n","payload":null}"#.to_owned()),
            "[{}\\[\\]\":,a-z0-9 -]{0,40}",
        ];
        prop_oneof![
            3 => json_like.prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #[test]
        fn any_request_reads_as_an_event_or_says_which_header_is_missing(
            headers in proptest::collection::vec((header_name(), header_value_bytes()), 0..10),
            body in body(),
        ) {
            let mut request = http::Request::builder().method("POST").uri("/");
            for (name, value) in &headers {
                if let Ok(value) = http::HeaderValue::from_bytes(value) {
                    request = request.header(name.as_str(), value);
                }
            }
            let request = request.body(body).unwrap();
            match Event::from_request(&request) {
                Ok(event) => {
                    event.attempt();
                    event.hops();
                    match event.body() {
                        Ok(_) => {}
                        Err(EventError::UnknownType(event_type)) => prop_assert_eq!(&event_type, &event.attributes().event_type),
                        Err(EventError::BadDocument(why)) => prop_assert!(!why.is_empty()),
                        Err(EventError::NotAnEvent(_)) => prop_assert!(false, "headers were read already"),
                    }
                    event.objects().ok();
                    event.timer().ok();
                    event.file().ok();
                }
                Err(EventError::NotAnEvent(header)) => {
                    prop_assert!(request.headers().get(header).and_then(|value| value.to_str().ok()).is_none());
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        #[test]
        fn object_documents_read_back_in_both_shapes(
            bucket in "[a-z0-9.-]{3,20}",
            key in any::<String>(),
            size: u64,
            etag in "[0-9a-f]{32}",
        ) {
            let expected = |event_name: &str, etag: String| ObjectEvent {
                event_name: event_name.to_owned(),
                bucket: bucket.clone(),
                key: key.clone(),
                size,
                etag,
                event_time: "t".to_owned(),
                trigger_name: Some("rule".to_owned()),
            };
            let oss = OssDocument {
                events: vec![OssRecord {
                    event_name: "ObjectCreated:PutObject".into(),
                    event_time: "t".into(),
                    oss: OssEntity {
                        bucket: OssBucket { name: bucket.clone(), ..OssBucket::default() },
                        object: OssObject { key: key.clone(), size, delta_size: size, etag: etag.to_ascii_uppercase() },
                        rule_id: Some("rule".into()),
                        ..OssEntity::default()
                    },
                    ..OssRecord::default()
                }],
            };
            prop_assert_eq!(
                parse_object_events(&serde_json::to_vec(&oss).unwrap()).unwrap(),
                vec![expected("ObjectCreated:PutObject", etag.to_ascii_uppercase())]
            );
            let s3 = S3Document {
                records: vec![S3Record {
                    event_name: "ObjectCreated:Put".into(),
                    event_time: "t".into(),
                    s3: S3Entity {
                        bucket: S3Bucket { name: bucket.clone(), ..S3Bucket::default() },
                        configuration_id: Some("rule".into()),
                        object: S3Object { key: s3_encode_key(&key), size: Some(size), etag: Some(etag.clone()), ..S3Object::default() },
                        ..S3Entity::default()
                    },
                    ..S3Record::default()
                }],
            };
            prop_assert_eq!(
                parse_object_events(&serde_json::to_vec(&s3).unwrap()).unwrap(),
                vec![expected("ObjectCreated:Put", etag)]
            );
        }
    }
}
