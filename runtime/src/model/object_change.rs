//! An object created or removed in Kumo's object storage: what storage
//! reports and storage triggers match.

use chrono::{DateTime, Utc};

/// One object created or removed in Kumo's object storage, reported by
/// `storage` after the change is on disk and before the S3 call is
/// answered (so an acknowledged upload is never without its event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectChange {
    /// The bucket holding the object.
    pub bucket: String,
    /// The object's key, not URL-encoded.
    pub key: String,
    /// The object's size in bytes (0 for a removal).
    pub size: u64,
    /// The object's MD5 as lowercase hex (S3's eTag without quotes);
    /// empty for a removal.
    pub etag: String,
    /// The S3/OSS event name, such as `ObjectCreated:PutObject`,
    /// `ObjectCreated:CompleteMultipartUpload` or `ObjectRemoved:DeleteObject`.
    pub event_name: String,
    /// When the change was committed to disk.
    pub time: DateTime<Utc>,
    /// The client's address, when known.
    pub source_ip: Option<String>,
    /// The S3 request's id.
    pub request_id: String,
}
