//! Object storage as the rest of Kumo sees it (the web console): buckets
//! and objects listed and read, and uploads stored through the very path
//! of an S3 PutObject ([`super::s3::Backend::put`]: the same limit, the
//! same atomic commit, the same change hook), so an upload from the
//! console fires the bucket's triggers like any other.
//!
//! One [`Objects`] serves both the S3 endpoint and the console, so both
//! share the disk's commit lock.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use s3s::S3Error;

use super::ChangeHook;
use super::disk::{Disk, FoundObject};
use super::names::check_bucket_name;
use super::s3::{Backend, NewUpload, blocking, content_type_of};

/// Object storage opened over its folder, shared by the S3 endpoint and
/// the console.
#[derive(Clone)]
pub struct Objects {
    pub(super) backend: Backend,
}

/// A storage call that failed: the HTTP status S3 would answer and a
/// message for the person (S3's own message, which names the bucket or
/// key and gives a hint).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ObjectError {
    /// The status S3 answers for it (404 for no such bucket or key).
    pub(crate) status: StatusCode,
    /// What went wrong.
    pub(crate) message: String,
}

impl From<S3Error> for ObjectError {
    fn from(error: S3Error) -> Self {
        let status = error
            .status_code()
            .or_else(|| error.code().status_code())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = error
            .message()
            .map_or_else(|| error.code().as_str().to_string(), str::to_string);
        Self { status, message }
    }
}

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BucketInfo {
    /// Its name.
    pub(crate) name: String,
    /// When it was created (or its folder last changed).
    pub(crate) created: DateTime<Utc>,
}

/// An object, as S3 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectInfo {
    /// Its key.
    pub(crate) key: String,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// MD5 of its bytes, lowercase hex.
    pub(crate) etag: String,
    /// When it was last written.
    pub(crate) modified: DateTime<Utc>,
    /// Its `Content-Type`.
    pub(crate) content_type: String,
}

impl ObjectInfo {
    fn of(key: &str, found: &FoundObject) -> Self {
        Self {
            key: key.to_string(),
            size: found.meta.size,
            etag: found.meta.etag.clone(),
            modified: found.last_modified.into(),
            content_type: content_type_of(found),
        }
    }
}

impl Objects {
    /// Opens (creating when needed) the storage folder `root`; uploads
    /// larger than `max_object_bytes` are refused, and every change is
    /// told to `on_change` before it is acknowledged.
    ///
    /// # Errors
    ///
    /// When the storage folder cannot be created.
    pub async fn open(
        root: &Path,
        max_object_bytes: u64,
        on_change: ChangeHook,
    ) -> anyhow::Result<Self> {
        let folder = root.to_path_buf();
        let disk = tokio::task::spawn_blocking(move || Disk::open(&folder))
            .await
            .context("the storage start-up task failed")?
            .with_context(|| {
                format!(
                    "cannot create the storage folder {}; hint: pass a writable --data-dir",
                    root.display()
                )
            })?;
        Ok(Self {
            backend: Backend {
                disk: Arc::new(disk),
                max_object_bytes,
                on_change,
            },
        })
    }

    /// Every bucket, by name.
    ///
    /// # Errors
    ///
    /// When the storage folder cannot be read.
    pub(crate) async fn buckets(&self) -> Result<Vec<BucketInfo>, ObjectError> {
        let disk = self.backend.disk.clone();
        let buckets = blocking(move || disk.list_buckets())
            .await?
            .map_err(|error| internal("cannot list the buckets", &error))?;
        Ok(buckets
            .into_iter()
            .map(|(name, created)| BucketInfo {
                name,
                created: created.into(),
            })
            .collect())
    }

    /// The first `limit` objects of `bucket` in key order, and whether
    /// there are more.
    ///
    /// # Errors
    ///
    /// A bad bucket name (400), no such bucket (404), or an unreadable
    /// folder.
    pub(crate) async fn objects(
        &self,
        bucket: &str,
        limit: usize,
    ) -> Result<(Vec<ObjectInfo>, bool), ObjectError> {
        self.existing_bucket(bucket).await?;
        let disk = self.backend.disk.clone();
        let name = bucket.to_string();
        let listed = blocking(move || -> std::io::Result<(Vec<ObjectInfo>, bool)> {
            let keys = disk.list_keys(&name, "")?;
            let more = keys.len() > limit;
            let mut objects = Vec::with_capacity(keys.len().min(limit));
            for key in keys.iter().take(limit) {
                // A key deleted since it was listed is left out.
                if let Some(found) = disk.object(&name, key)? {
                    objects.push(ObjectInfo::of(key, &found));
                }
            }
            Ok((objects, more))
        })
        .await?;
        listed.map_err(|error| internal("cannot list a bucket", &error))
    }

    /// An object's description and its file, opened for reading.
    ///
    /// # Errors
    ///
    /// A bad name (400), no such bucket or key (404), or an unreadable
    /// file.
    pub(crate) async fn open_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(ObjectInfo, tokio::fs::File), ObjectError> {
        let (found, file) = self.backend.open_object(bucket, key).await?;
        Ok((ObjectInfo::of(key, &found), file))
    }

    /// Stores `body` as `bucket/key` exactly as an S3 PutObject does, and
    /// tells the change hook (so the bucket's triggers fire) before
    /// returning. Returns the size and the eTag.
    ///
    /// # Errors
    ///
    /// A bad name (400), no such bucket (404), a body over the size limit
    /// (400, as S3's EntityTooLarge), a key clashing with a folder (409), a body that broke off,
    /// or an event that could not be queued (503).
    pub(crate) async fn upload<E: std::fmt::Display>(
        &self,
        bucket: &str,
        key: &str,
        content_type: Option<String>,
        source_ip: Option<String>,
        body: impl futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    ) -> Result<(u64, String), ObjectError> {
        let upload = NewUpload {
            bucket,
            key,
            declared_size: None,
            content_md5: None,
            content_type,
            metadata: Default::default(),
            source_ip,
        };
        Ok(self.backend.put(upload, Some(body)).await?)
    }

    async fn existing_bucket(&self, bucket: &str) -> Result<(), ObjectError> {
        check_bucket_name(bucket).map_err(|error| ObjectError {
            status: StatusCode::BAD_REQUEST,
            message: error.to_string(),
        })?;
        let disk = self.backend.disk.clone();
        let name = bucket.to_string();
        if blocking(move || disk.bucket_exists(&name)).await? {
            Ok(())
        } else {
            Err(ObjectError {
                status: StatusCode::NOT_FOUND,
                message: format!(
                    "no bucket `{bucket}`; hint: a function's `files` mount creates its bucket, or create it with any S3 client"
                ),
            })
        }
    }
}

fn internal(context: &str, error: &std::io::Error) -> ObjectError {
    tracing::error!(error = %error, "storage: {context}");
    ObjectError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("{context}; the server log has the details"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording_hook(changes: Arc<std::sync::Mutex<Vec<String>>>) -> ChangeHook {
        Arc::new(move |change| {
            changes.lock().unwrap().push(format!(
                "{} {}/{}",
                change.event_name, change.bucket, change.key
            ));
            Box::pin(async { Ok(()) })
        })
    }

    #[tokio::test]
    async fn an_upload_is_committed_listed_read_and_reported_like_a_put_object() {
        let dir = tempfile::tempdir().unwrap();
        let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let root = dir.path().join("storage");
        let objects = Objects::open(&root, 10, recording_hook(changes.clone()))
            .await
            .unwrap();
        std::fs::create_dir(root.join("photos")).unwrap();
        let body = |bytes: &'static [u8]| {
            futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(bytes))])
        };

        let (size, etag) = objects
            .upload("photos", "in/a.txt", None, None, body(b"hello"))
            .await
            .unwrap();
        assert_eq!(
            (size, etag.as_str()),
            (5, "5d41402abc4b2a76b9719d911017c592")
        );
        assert_eq!(
            *changes.lock().unwrap(),
            ["ObjectCreated:PutObject photos/in/a.txt"]
        );
        let (listed, more) = objects.objects("photos", 10).await.unwrap();
        assert!(!more);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, "in/a.txt");
        assert_eq!(listed[0].content_type, "binary/octet-stream");
        let (info, _file) = objects.open_object("photos", "in/a.txt").await.unwrap();
        assert_eq!(info.size, 5);
        assert_eq!(
            objects.buckets().await.unwrap()[0].name,
            "photos",
            "hidden folders are no buckets"
        );

        // (bucket, key, body, the status refused with)
        let cases: [(&str, &str, &'static [u8], StatusCode); 4] = [
            ("nothere", "a", b"x", StatusCode::NOT_FOUND),
            ("Bad_Name", "a", b"x", StatusCode::BAD_REQUEST),
            // S3 answers EntityTooLarge with 400.
            (
                "photos",
                "big",
                b"more than ten bytes",
                StatusCode::BAD_REQUEST,
            ),
            ("photos", "in/a.txt/b", b"x", StatusCode::CONFLICT),
        ];
        for (bucket, key, bytes, status) in cases {
            let error = objects
                .upload(bucket, key, None, None, body(bytes))
                .await
                .unwrap_err();
            assert_eq!(error.status, status, "{bucket}/{key}: {error}");
        }
        assert_eq!(changes.lock().unwrap().len(), 1, "refusals report nothing");
        let missing = objects.open_object("photos", "nope").await.unwrap_err();
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }
}
