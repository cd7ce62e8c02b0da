//! Property tests of the wire encodings both sides parse: CloudEvents
//! header values (`ce-subject`), S3 notification keys, and the event
//! documents. Any text decodes without panic; any value encodes to text
//! that decodes back to it; any document read back is the one written.
//!
//! `PROPTEST_CASES=N` runs N cases per property (`bench/fuzz.sh`).

use proptest::prelude::*;

use crate::event::{
    CloudEventData, FileEvent, OssBucket, OssDocument, OssEntity, OssObject, OssRecord, S3Bucket,
    S3Document, S3Entity, S3Object, S3Record, StructuredCloudEvent, TimerEvent, s3_decode_key,
    s3_encode_key,
};
use crate::header::{decode_value, encode_value, percent_decode};

/// Text with what encodings trip on: `%`, `+`, spaces, quotes, control
/// characters, multi-byte characters, and broken escapes.
fn awkward_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z/%+ \"'\\\\\n\t\u{7f}é€𝄞0-9A-F]{0,24}",
        1 => "(%[0-9A-Fa-fg]{0,2}){1,6}",
        1 => any::<String>(),
    ]
}

proptest! {
    #[test]
    fn header_values_are_visible_ascii_and_decode_back(value in awkward_text()) {
        let encoded = encode_value(&value);
        // A valid HTTP header value: visible ASCII and spaces only.
        prop_assert!(encoded.bytes().all(|b| (0x20..0x7f).contains(&b)), "{:?}", encoded);
        prop_assert!(!encoded.contains('"'));
        prop_assert_eq!(decode_value(&encoded), value);
    }

    #[test]
    fn any_header_value_decodes_without_panic(text in awkward_text(), plus: bool) {
        let decoded = percent_decode(&text, plus);
        // Nothing to decode leaves the text as it was.
        let escapes = text.contains('%') || (plus && text.contains('+'));
        if !escapes {
            prop_assert_eq!(decoded, text);
        }
    }

    #[test]
    fn s3_keys_encode_to_url_safe_text_and_decode_back(key in awkward_text()) {
        let encoded = s3_encode_key(&key);
        prop_assert!(
            encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~/+%".contains(&b)),
            "{:?}", encoded
        );
        prop_assert_eq!(s3_decode_key(&encoded), key);
    }

    #[test]
    fn object_documents_read_back_what_was_written(
        bucket in awkward_text(),
        key in awkward_text(),
        event_name in awkward_text(),
        size: u64,
        etag in "[0-9a-fA-F]{0,32}",
        rule in proptest::option::of(awkward_text()),
        source_ip in proptest::option::of(awkward_text()),
    ) {
        let oss = OssDocument {
            events: vec![OssRecord {
                event_name: event_name.clone(),
                event_time: "2026-11-23T06:45:43.120Z".into(),
                oss: OssEntity {
                    bucket: OssBucket { name: bucket.clone(), ..OssBucket::default() },
                    object: OssObject { key: key.clone(), size, delta_size: size, etag: etag.clone() },
                    rule_id: rule.clone(),
                    ..OssEntity::default()
                },
                ..OssRecord::default()
            }],
        };
        let bytes = serde_json::to_vec(&oss).unwrap();
        prop_assert_eq!(serde_json::from_slice::<OssDocument>(&bytes).unwrap(), oss);

        let s3 = S3Document {
            records: vec![S3Record {
                event_name: event_name.clone(),
                s3: S3Entity {
                    bucket: S3Bucket { name: bucket.clone(), ..S3Bucket::default() },
                    configuration_id: rule,
                    object: S3Object { key: s3_encode_key(&key), etag: Some(etag.clone()), size: Some(size), ..S3Object::default() },
                    ..S3Entity::default()
                },
                ..S3Record::default()
            }],
        };
        let bytes = serde_json::to_vec(&s3).unwrap();
        let read: S3Document = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(s3_decode_key(&read.records[0].s3.object.key), key.clone());
        prop_assert_eq!(read, s3);

        let cloudevent = StructuredCloudEvent {
            data: CloudEventData { bucket, etag, event_name, key, size, source_ip_address: source_ip, ..CloudEventData::default() },
            specversion: "1.0".into(),
            ..StructuredCloudEvent::default()
        };
        let bytes = serde_json::to_vec(&cloudevent).unwrap();
        prop_assert_eq!(serde_json::from_slice::<StructuredCloudEvent>(&bytes).unwrap(), cloudevent);
    }

    #[test]
    fn timer_and_file_documents_read_back(name in awkward_text(), payload in awkward_text(), path in awkward_text(), size: u64) {
        let timer = TimerEvent { payload, trigger_name: name.clone(), trigger_time: "2026-11-23T06:45:00Z".into() };
        let bytes = serde_json::to_vec(&timer).unwrap();
        prop_assert_eq!(serde_json::from_slice::<TimerEvent>(&bytes).unwrap(), timer);
        let file = FileEvent { path, size, trigger_name: name, ..FileEvent::default() };
        let bytes = serde_json::to_vec(&file).unwrap();
        prop_assert_eq!(serde_json::from_slice::<FileEvent>(&bytes).unwrap(), file);
    }
}
