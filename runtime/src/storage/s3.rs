//! The S3 calls, on top of [`super::disk`]: s3s parses and authenticates
//! each request and hands the typed input to these methods.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use base64::Engine as _;
use futures::StreamExt;
use md5::{Digest, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, Bucket, CommonPrefix,
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CreateBucketInput,
    CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteObjectInput,
    DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, ETag,
    GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput,
    HeadObjectOutput, ListBucketsInput, ListBucketsOutput, ListObjectsV2Input, ListObjectsV2Output,
    Object, PutObjectInput, PutObjectOutput, StreamingBlob, Timestamp, UploadPartInput,
    UploadPartOutput,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::disk::{Disk, DiskError, FoundObject, NewObject, Upload};
use super::names::{NameError, check_bucket_name, check_object_key};
use super::{ChangeHook, MIN_PART_BYTES};
use crate::model::ObjectChange;

/// The most parts one multipart upload may have (S3's limit).
const MAX_PARTS: i32 = 10_000;

/// The S3 service: the disk, the size limit and the change hook.
#[derive(Clone)]
pub(super) struct Backend {
    pub disk: Arc<Disk>,
    pub max_object_bytes: u64,
    pub on_change: ChangeHook,
}

fn error(code: S3ErrorCode, message: impl Into<String>) -> S3Error {
    S3Error::with_message(code, message.into())
}

fn internal(context: &str, source: impl std::error::Error + 'static) -> S3Error {
    if let Some(io) = (&source as &dyn std::error::Error).downcast_ref::<std::io::Error>()
        && crate::database::is_disk_full(io)
    {
        tracing::error!(error = %source, "storage: {context}: the disk is full");
        let mut s3 = error(
            S3ErrorCode::Custom("XKumoStorageFull".into()),
            format!(
                "{context}: the disk holding Kumo's storage is full; nothing was stored. \
                 hint: free space in the data directory's file system, then retry"
            ),
        );
        s3.set_status_code(http::StatusCode::INSUFFICIENT_STORAGE);
        return s3;
    }
    tracing::error!(error = %source, "storage: {context}");
    error(
        S3ErrorCode::InternalError,
        format!("{context}; the server log has the details"),
    )
}

fn name_error(problem: NameError) -> S3Error {
    let code = match problem {
        NameError::InvalidBucketName { .. } => S3ErrorCode::InvalidBucketName,
        NameError::KeyTooLong { .. } => S3ErrorCode::KeyTooLongError,
        NameError::InvalidKey { .. } => S3ErrorCode::InvalidArgument,
    };
    error(code, problem.to_string())
}

fn disk_error(context: &str, problem: DiskError) -> S3Error {
    match problem {
        DiskError::KeyConflict { .. } => {
            let mut s3 = error(S3ErrorCode::InvalidArgument, problem.to_string());
            s3.set_status_code(http::StatusCode::CONFLICT);
            s3
        }
        DiskError::Io(io) => internal(context, io),
    }
}

/// Runs blocking file work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> S3Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| internal("a storage task failed", join))
}

impl Backend {
    /// Checks the bucket name and that the bucket exists.
    async fn existing_bucket(&self, bucket: &str) -> S3Result<()> {
        check_bucket_name(bucket).map_err(name_error)?;
        let disk = self.disk.clone();
        let name = bucket.to_string();
        if blocking(move || disk.bucket_exists(&name)).await? {
            Ok(())
        } else {
            Err(no_such_bucket(bucket))
        }
    }

    pub(super) async fn existing_object(&self, bucket: &str, key: &str) -> S3Result<FoundObject> {
        self.existing_bucket(bucket).await?;
        check_object_key(key).map_err(name_error)?;
        let disk = self.disk.clone();
        let (name, object_key) = (bucket.to_string(), key.to_string());
        blocking(move || disk.object(&name, &object_key))
            .await?
            .map_err(|io| internal("cannot read an object", io))?
            .ok_or_else(|| {
                error(
                    S3ErrorCode::NoSuchKey,
                    format!("no object `{key}` in bucket `{bucket}`"),
                )
            })
    }

    /// Finds an object and opens it, making sure the file opened is the
    /// one described (an overwrite may rename a new file into place in
    /// between; then the lookup is repeated).
    pub(super) async fn open_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> S3Result<(FoundObject, tokio::fs::File)> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let found = self.existing_object(bucket, key).await?;
            let file = match tokio::fs::File::open(&found.path).await {
                Ok(file) => file,
                Err(io) if io.kind() == std::io::ErrorKind::NotFound && attempts < 3 => continue,
                Err(io) => return Err(internal("cannot open an object", io)),
            };
            let opened = file
                .metadata()
                .await
                .map_err(|io| internal("cannot open an object", io))?;
            let same = opened.len() == found.meta.size
                && opened.modified().ok() == Some(found.last_modified);
            if same || attempts >= 3 {
                return Ok((found, file));
            }
        }
    }

    fn check_declared_size(&self, declared: Option<i64>) -> S3Result<()> {
        match declared {
            Some(length) if u64::try_from(length).unwrap_or(0) > self.max_object_bytes => {
                Err(too_large(self.max_object_bytes))
            }
            _ => Ok(()),
        }
    }

    /// Reports a new object; when its event cannot be queued, an object
    /// that did not exist before (`existed` false) is removed again, so
    /// none is left without its event. An overwrite keeps its new content;
    /// either way the client is told to retry.
    async fn report_or_undo(&self, change: ObjectChange, existed: bool) -> S3Result<()> {
        let (bucket, key) = (change.bucket.clone(), change.key.clone());
        let reported = self.report(change).await;
        if reported.is_err() && !existed {
            let disk = self.disk.clone();
            let (b, k) = (bucket.clone(), key.clone());
            match blocking(move || disk.delete(&b, &k)).await {
                Ok(Ok(_)) => {
                    tracing::info!(%bucket, %key, "storage: removed the new object whose event could not be queued")
                }
                Ok(Err(io)) => {
                    tracing::error!(%bucket, %key, error = %io, "storage: cannot remove the new object whose event could not be queued")
                }
                Err(_) => {}
            }
        }
        reported
    }

    /// Tells the hook; a failure fails the S3 call with 503 (the client
    /// retries, and the retry queues the event).
    async fn report(&self, change: ObjectChange) -> S3Result<()> {
        let (bucket, key) = (change.bucket.clone(), change.key.clone());
        (self.on_change)(change).await.map_err(|problem| {
            tracing::error!(%bucket, %key, error = %format!("{problem:#}"), "storage: cannot queue the object's event");
            let disk_full = problem.chain().any(|cause| {
                cause
                    .downcast_ref::<sqlx::Error>()
                    .is_some_and(crate::database::is_database_full)
                    || cause
                        .downcast_ref::<std::io::Error>()
                        .is_some_and(crate::database::is_disk_full)
            });
            if disk_full {
                let mut s3 = error(
                    S3ErrorCode::Custom("XKumoStorageFull".into()),
                    format!(
                        "the change to `{key}` in bucket `{bucket}` is on disk but its event could not be queued: the disk is full; \
                         hint: free space in the data directory's file system, then retry the request"
                    ),
                );
                s3.set_status_code(http::StatusCode::INSUFFICIENT_STORAGE);
                return s3;
            }
            error(
                S3ErrorCode::ServiceUnavailable,
                format!(
                    "the change to `{key}` in bucket `{bucket}` is on disk but its event could not be queued ({problem:#}); \
                     hint: retry the request"
                ),
            )
        })
    }
}

/// One upload, as S3's PutObject and the console's upload form give it.
pub(super) struct NewUpload<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    /// The `Content-Length` the client declared, checked before reading.
    pub declared_size: Option<i64>,
    /// A `Content-MD5` to check the body against.
    pub content_md5: Option<&'a str>,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// The uploader's address, for the event.
    pub source_ip: Option<String>,
}

impl Backend {
    /// Stores a new object from `body` and reports its creation to the
    /// change hook: the one path of a simple upload, whether S3's
    /// PutObject or the console's upload form. Returns the size and the
    /// eTag.
    pub(super) async fn put<E: std::fmt::Display>(
        &self,
        upload: NewUpload<'_>,
        body: Option<impl futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin>,
    ) -> S3Result<(u64, String)> {
        let (bucket, key) = (upload.bucket, upload.key);
        check_object_key(key).map_err(name_error)?;
        check_bucket_name(bucket).map_err(name_error)?;
        self.check_declared_size(upload.declared_size)?;
        // A body declared small is received before its bucket is looked
        // at: the look, the write and the commit then take one trip to the
        // blocking pool (a small upload's thread hops were a good part of
        // its cost). A larger one is refused before any of it is stored.
        let declared_small = upload
            .declared_size
            .and_then(|size| u64::try_from(size).ok())
            .is_some_and(|size| size <= HELD_BODY_BYTES);
        if !declared_small {
            self.existing_bucket(bucket).await?;
        }

        let temp = self.disk.temp_path();
        let (size, md5, held) = receive_body(&temp, body, self.max_object_bytes).await?;
        if let Err(problem) = check_content_md5(upload.content_md5, &md5) {
            if held.is_none() {
                let _ = tokio::fs::remove_file(&temp).await;
            }
            return Err(problem);
        }
        let etag = hex::encode(md5);
        let object = NewObject {
            etag: etag.clone(),
            content_type: upload.content_type,
            metadata: upload.metadata,
        };
        let existed = store_object(&self.disk, bucket, key, temp, held, object).await?;
        self.report_or_undo(
            change(
                upload.source_ip,
                bucket,
                key,
                size,
                &etag,
                "ObjectCreated:PutObject",
            ),
            existed,
        )
        .await?;
        Ok((size, etag))
    }
}

/// Stores a received body as `bucket/key` in one trip to the blocking
/// pool: checks the bucket, writes and flushes `held` (a body kept in
/// memory) to `temp` (else `temp` holds the body already), and commits it.
/// Returns whether the key was an object before. `temp` is removed on
/// failure.
async fn store_object(
    disk: &Arc<Disk>,
    bucket: &str,
    key: &str,
    temp: PathBuf,
    held: Option<Vec<bytes::Bytes>>,
    object: NewObject,
) -> S3Result<bool> {
    let disk = disk.clone();
    let (bucket, key) = (bucket.to_string(), key.to_string());
    blocking(move || {
        let stored = (|| {
            if !disk.bucket_exists(&bucket) {
                return Err(no_such_bucket(&bucket));
            }
            if let Some(held) = &held {
                write_held(&temp, held).map_err(|io| internal("cannot write an upload", io))?;
            }
            let existed = disk.is_object(&bucket, &key);
            disk.commit(&bucket, &key, &temp, object)
                .map_err(|problem| disk_error("cannot store an object", problem))?;
            Ok(existed)
        })();
        if stored.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        stored
    })
    .await?
}

/// Writes `parts` as the file `path` and flushes it to the disk.
fn write_held(path: &Path, parts: &[bytes::Bytes]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    for part in parts {
        file.write_all(part)?;
    }
    file.sync_all()
}

fn no_such_bucket(bucket: &str) -> S3Error {
    error(
        S3ErrorCode::NoSuchBucket,
        format!("no bucket `{bucket}`; hint: create it first (`aws s3 mb s3://{bucket}`)"),
    )
}

fn too_large(limit: u64) -> S3Error {
    error(
        S3ErrorCode::EntityTooLarge,
        format!(
            "the object is larger than this server's limit of {limit} bytes; \
             hint: raise --storage-max-object-bytes, or upload less"
        ),
    )
}

/// The client's address of an S3 request.
fn source_ip(request: &S3Request<impl Sized>) -> Option<String> {
    request
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_string())
}

fn change(
    source_ip: Option<String>,
    bucket: &str,
    key: &str,
    size: u64,
    etag: &str,
    event_name: &str,
) -> ObjectChange {
    ObjectChange {
        bucket: bucket.to_string(),
        key: key.to_string(),
        size,
        etag: etag.to_string(),
        event_name: event_name.to_string(),
        time: chrono::Utc::now(),
        source_ip,
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

/// Streams a request body into `path`, hashing it, refusing more than
/// `limit` bytes, and flushes the file. Returns the size and the raw MD5.
/// The file is removed on failure.
async fn write_body<E: std::fmt::Display>(
    path: &Path,
    body: Option<impl futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin>,
    limit: u64,
) -> S3Result<(u64, [u8; 16])> {
    let (size, md5, held) = receive_body(path, body, limit).await?;
    if let Some(held) = held {
        let path = path.to_path_buf();
        blocking(move || {
            let written = write_held(&path, &held);
            if written.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            written
        })
        .await?
        .map_err(|io| internal("cannot write an upload", io))?;
    }
    Ok((size, md5))
}

/// Receives a request body, hashing it, refusing more than `limit` bytes.
/// Returns the size, the raw MD5, and the body itself when it is held in
/// memory (up to [`HELD_BODY_BYTES`]); a larger body is streamed into
/// `path` as it arrives, and flushed, and `None` returned. The file is
/// removed on failure.
async fn receive_body<E: std::fmt::Display>(
    path: &Path,
    body: Option<impl futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin>,
    limit: u64,
) -> S3Result<(u64, [u8; 16], Option<Vec<bytes::Bytes>>)> {
    let result = receive_body_inner(path, body, limit).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
    result
}

/// Bodies up to this size are held in memory and written and flushed in
/// one call on the blocking pool (a small upload's file costs one hop
/// there, not one per chunk, plus the file's creation and its flush);
/// larger ones stream to the file as they arrive.
const HELD_BODY_BYTES: u64 = 256 * 1024;

async fn receive_body_inner<E: std::fmt::Display>(
    path: &Path,
    body: Option<impl futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin>,
    limit: u64,
) -> S3Result<(u64, [u8; 16], Option<Vec<bytes::Bytes>>)> {
    let mut hasher = Md5::new();
    let mut size = 0u64;
    let mut held: Vec<bytes::Bytes> = Vec::new();
    let mut streaming: Option<tokio::fs::File> = None;
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|problem| {
                error(
                    S3ErrorCode::IncompleteBody,
                    format!("the request body broke off: {problem}"),
                )
            })?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(too_large(limit));
            }
            hasher.update(&chunk);
            if let Some(file) = &mut streaming {
                file.write_all(&chunk)
                    .await
                    .map_err(|io| internal("cannot write an upload", io))?;
            } else if size <= HELD_BODY_BYTES {
                held.push(chunk);
            } else {
                // Too large to hold: stream it to the file from here on.
                let mut file = tokio::fs::File::create(path)
                    .await
                    .map_err(|io| internal("cannot create a temp file", io))?;
                for part in held.drain(..).chain(std::iter::once(chunk)) {
                    file.write_all(&part)
                        .await
                        .map_err(|io| internal("cannot write an upload", io))?;
                }
                streaming = Some(file);
            }
        }
    }
    let md5 = hasher.finalize().into();
    // Durable before it is acknowledged (and before its event is queued).
    let Some(mut file) = streaming else {
        return Ok((size, md5, Some(held)));
    };
    file.flush()
        .await
        .map_err(|io| internal("cannot write an upload", io))?;
    file.sync_all()
        .await
        .map_err(|io| internal("cannot flush an upload", io))?;
    Ok((size, md5, None))
}

/// Checks a `Content-MD5` header against what was received.
fn check_content_md5(declared: Option<&str>, md5: &[u8; 16]) -> S3Result<()> {
    let Some(declared) = declared else {
        return Ok(());
    };
    let expected = base64::engine::general_purpose::STANDARD.encode(md5);
    if declared.trim() == expected {
        Ok(())
    } else {
        Err(error(
            S3ErrorCode::BadDigest,
            format!(
                "the Content-MD5 you sent ({declared}) does not match the body received ({expected}); hint: resend"
            ),
        ))
    }
}

fn metadata_map(metadata: Option<s3s::dto::Metadata>) -> BTreeMap<String, String> {
    metadata.into_iter().flatten().collect()
}

fn stored_metadata(meta: &BTreeMap<String, String>) -> Option<s3s::dto::Metadata> {
    (!meta.is_empty()).then(|| meta.clone().into_iter().collect())
}

/// The stored content type, or S3's default for objects uploaded without
/// one.
pub(super) fn content_type_of(found: &FoundObject) -> String {
    found
        .meta
        .content_type
        .clone()
        .unwrap_or_else(|| "binary/octet-stream".to_string())
}

fn strong_etag(etag: &str) -> ETag {
    ETag::Strong(etag.to_string())
}

/// A stream of `length` bytes of a file from `start`.
fn file_stream(file: tokio::fs::File, length: u64) -> StreamingBlob {
    let stream = futures::stream::unfold((file, length), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left.min(256 * 1024)).unwrap_or(256 * 1024);
        let mut buffer = vec![0; want];
        match file.read(&mut buffer).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the object shrank while it was being read",
                )),
                (file, 0),
            )),
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(bytes::Bytes::from(buffer)), (file, left - read as u64)))
            }
            Err(io) => Some((Err(io), (file, 0))),
        }
    });
    StreamingBlob::wrap(stream)
}

#[async_trait::async_trait]
impl S3 for Backend {
    async fn create_bucket(
        &self,
        request: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = request.input.bucket;
        check_bucket_name(&bucket).map_err(name_error)?;
        let disk = self.disk.clone();
        let name = bucket.clone();
        let created = blocking(move || disk.create_bucket(&name))
            .await?
            .map_err(|io| internal("cannot create a bucket", io))?;
        if !created {
            return Err(error(
                S3ErrorCode::BucketAlreadyOwnedByYou,
                format!("bucket `{bucket}` already exists"),
            ));
        }
        tracing::info!(%bucket, "storage: bucket created");
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn head_bucket(
        &self,
        request: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.existing_bucket(&request.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn list_buckets(
        &self,
        _request: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let disk = self.disk.clone();
        let buckets = blocking(move || disk.list_buckets())
            .await?
            .map_err(|io| internal("cannot list buckets", io))?;
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(
                buckets
                    .into_iter()
                    .map(|(name, created)| Bucket {
                        name: Some(name),
                        creation_date: Some(Timestamp::from(created)),
                        bucket_region: None,
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        mut request: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let source_ip = source_ip(&request);
        let input = &mut request.input;
        let upload = NewUpload {
            bucket: &input.bucket,
            key: &input.key,
            declared_size: input.content_length,
            content_md5: input.content_md5.as_deref(),
            content_type: input.content_type.clone(),
            metadata: metadata_map(input.metadata.take()),
            source_ip,
        };
        let (size, etag) = self.put(upload, input.body.take()).await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(strong_etag(&etag)),
            size: i64::try_from(size).ok(),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        request: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = &request.input;
        let (found, mut file) = self.open_object(&input.bucket, &input.key).await?;
        let size = found.meta.size;
        let range = match &input.range {
            None => None,
            Some(range) => Some(range.check(size).map_err(|_| {
                error(
                    S3ErrorCode::InvalidRange,
                    format!(
                        "the range {} is outside the object's {size} bytes",
                        range.to_header_string()
                    ),
                )
            })?),
        };
        let (start, length) = match &range {
            Some(range) => (range.start, range.end - range.start),
            None => (0, size),
        };
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|io| internal("cannot read an object", io))?;
        }
        Ok(S3Response::new(GetObjectOutput {
            body: Some(file_stream(file, length)),
            accept_ranges: Some("bytes".to_string()),
            content_length: i64::try_from(length).ok(),
            content_range: range.map(|range| {
                format!(
                    "bytes {}-{}/{size}",
                    range.start,
                    range.end.saturating_sub(1)
                )
            }),
            content_type: Some(content_type_of(&found)),
            e_tag: Some(strong_etag(&found.meta.etag)),
            last_modified: Some(Timestamp::from(found.last_modified)),
            metadata: stored_metadata(&found.meta.metadata),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        request: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = &request.input;
        let found = self.existing_object(&input.bucket, &input.key).await?;
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".to_string()),
            content_length: i64::try_from(found.meta.size).ok(),
            content_type: Some(content_type_of(&found)),
            e_tag: Some(strong_etag(&found.meta.etag)),
            last_modified: Some(Timestamp::from(found.last_modified)),
            metadata: stored_metadata(&found.meta.metadata),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        request: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (request.input.bucket.clone(), request.input.key.clone());
        check_object_key(&key).map_err(name_error)?;
        self.existing_bucket(&bucket).await?;
        self.delete_one(&request, &bucket, &key, "ObjectRemoved:DeleteObject")
            .await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        request: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let bucket = request.input.bucket.clone();
        self.existing_bucket(&bucket).await?;
        let objects = &request.input.delete.objects;
        if objects.len() > 1000 {
            return Err(error(
                S3ErrorCode::MalformedXML,
                format!(
                    "{} keys in one DeleteObjects; hint: at most 1000 per request",
                    objects.len()
                ),
            ));
        }
        let quiet = request.input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in objects {
            let key = object.key.clone();
            let outcome = match check_object_key(&key) {
                Err(problem) => Err(name_error(problem)),
                Ok(()) => {
                    self.delete_one(&request, &bucket, &key, "ObjectRemoved:DeleteObjects")
                        .await
                }
            };
            match outcome {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(key),
                    ..Default::default()
                }),
                Err(problem) => errors.push(s3s::dto::Error {
                    code: Some(problem.code().as_str().to_string()),
                    message: problem.message().map(str::to_string),
                    key: Some(key),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        request: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = request.input;
        self.existing_bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        // S3 refuses a negative max-keys; more than 1000 is served as 1000.
        let max_keys = match input.max_keys.unwrap_or(1000) {
            negative if negative < 0 => {
                return Err(error(
                    S3ErrorCode::InvalidArgument,
                    format!(
                        "max-keys must be 0 or more, not {negative}; hint: leave it out for up to 1000 keys"
                    ),
                ));
            }
            max_keys => max_keys.min(1000),
        };
        let resume = match &input.continuation_token {
            Some(token) => Some(decode_token(token).ok_or_else(|| {
                error(
                    S3ErrorCode::InvalidArgument,
                    "the continuation token is not one this server gave out; hint: start the listing again",
                )
            })?),
            None => None,
        };

        let disk = self.disk.clone();
        let (bucket, list_prefix) = (input.bucket.clone(), prefix.clone());
        let keys = blocking(move || disk.list_keys(&bucket, &list_prefix))
            .await?
            .map_err(|io| internal("cannot list a bucket", io))?;
        let page = list_page(
            &keys,
            &ListQuery {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                start_after: input.start_after.as_deref(),
                resume: resume.as_ref(),
                max_keys: usize::try_from(max_keys).unwrap_or(0),
            },
        );

        let mut contents = Vec::with_capacity(page.keys.len());
        for key in &page.keys {
            let disk = self.disk.clone();
            let (bucket, object_key) = (input.bucket.clone(), key.clone());
            let Some(found) = blocking(move || disk.object(&bucket, &object_key))
                .await?
                .map_err(|io| internal("cannot read an object", io))?
            else {
                continue; // deleted since the listing
            };
            contents.push(Object {
                key: Some(key.clone()),
                size: i64::try_from(found.meta.size).ok(),
                e_tag: Some(strong_etag(&found.meta.etag)),
                last_modified: Some(Timestamp::from(found.last_modified)),
                storage_class: Some("STANDARD".to_string().into()),
                ..Default::default()
            });
        }
        let url_encode = input
            .encoding_type
            .as_ref()
            .is_some_and(|encoding| encoding.as_str() == "url");
        let encode = |text: &str| {
            if url_encode {
                url_encoded(text)
            } else {
                text.to_string()
            }
        };
        for object in &mut contents {
            object.key = object.key.as_deref().map(encode);
        }
        let key_count = contents.len() + page.common_prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encode(&prefix)),
            delimiter: delimiter.as_deref().map(encode),
            max_keys: Some(max_keys),
            key_count: i32::try_from(key_count).ok(),
            continuation_token: input.continuation_token,
            next_continuation_token: page.next.as_ref().map(encode_token),
            is_truncated: Some(page.next.is_some()),
            start_after: input.start_after.as_deref().map(encode),
            encoding_type: input.encoding_type,
            contents: Some(contents),
            common_prefixes: Some(
                page.common_prefixes
                    .iter()
                    .map(|prefix| CommonPrefix {
                        prefix: Some(encode(prefix)),
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        request: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = request.input;
        check_object_key(&input.key).map_err(name_error)?;
        self.existing_bucket(&input.bucket).await?;
        let upload = Upload {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            content_type: input.content_type,
            metadata: metadata_map(input.metadata),
        };
        let disk = self.disk.clone();
        let upload_id = blocking(move || disk.create_upload(&upload))
            .await?
            .map_err(|io| internal("cannot start a multipart upload", io))?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        mut request: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = &request.input;
        let upload_id = input.upload_id.clone();
        self.existing_upload(&input.bucket, &input.key, &upload_id)
            .await?;
        if !(1..=MAX_PARTS).contains(&input.part_number) {
            return Err(error(
                S3ErrorCode::InvalidArgument,
                format!(
                    "part number {} is outside 1..={MAX_PARTS}",
                    input.part_number
                ),
            ));
        }
        let number = u32::try_from(input.part_number).unwrap_or(1);
        self.check_declared_size(input.content_length)?;
        // Refuse early what could never complete within the limit.
        let disk = self.disk.clone();
        let id = upload_id.clone();
        let others: u64 = blocking(move || disk.parts(&id))
            .await?
            .map_err(|io| internal("cannot read a multipart upload", io))?
            .into_iter()
            .filter(|(n, _)| *n != number)
            .map(|(_, size)| size)
            .sum();
        let room = self.max_object_bytes.saturating_sub(others);

        let temp = self.disk.temp_path();
        let (_, md5) = write_body(&temp, request.input.body.take(), room).await?;
        if let Err(problem) = check_content_md5(request.input.content_md5.as_deref(), &md5) {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(problem);
        }
        let part = self
            .disk
            .part_path(&upload_id, number)
            .expect("the upload id was checked");
        let moved = tokio::fs::rename(&temp, &part).await;
        if let Err(io) = moved {
            let _ = tokio::fs::remove_file(&temp).await;
            // Aborted meanwhile: its folder is gone.
            return Err(if io.kind() == std::io::ErrorKind::NotFound {
                no_such_upload(&upload_id)
            } else {
                internal("cannot store a part", io)
            });
        }
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(strong_etag(&hex::encode(md5))),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        request: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = &request.input;
        let (bucket, key, upload_id) = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
        );
        let upload = self.existing_upload(&bucket, &key, &upload_id).await?;
        let listed: Vec<(i32, Option<String>)> = input
            .multipart_upload
            .as_ref()
            .and_then(|upload| upload.parts.as_ref())
            .map(|parts| {
                parts
                    .iter()
                    .map(|part| {
                        (
                            part.part_number.unwrap_or(0),
                            part.e_tag.as_ref().map(|etag| etag.value().to_string()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if listed.is_empty() {
            return Err(error(
                S3ErrorCode::InvalidRequest,
                "the completion lists no parts; hint: list every uploaded part with its number and eTag",
            ));
        }
        if listed.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return Err(error(
                S3ErrorCode::InvalidPartOrder,
                "the parts must be listed in ascending part-number order",
            ));
        }

        // Join the parts into one temp file, checking each against the
        // list and hashing the whole.
        let disk = self.disk.clone();
        let temp = self.disk.temp_path();
        let limit = self.max_object_bytes;
        let joined = {
            let temp = temp.clone();
            let upload_id = upload_id.clone();
            blocking(move || join_parts(&disk, &upload_id, &listed, &temp, limit)).await?
        };
        let (size, etag) = match joined {
            Ok(joined) => joined,
            Err(problem) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(problem);
            }
        };
        let object = NewObject {
            etag: etag.clone(),
            content_type: upload.content_type,
            metadata: upload.metadata,
        };
        let existed = store_object(&self.disk, &bucket, &key, temp, None, object).await?;
        let disk = self.disk.clone();
        let id = upload_id.clone();
        if let Err(io) = blocking(move || disk.remove_upload(&id)).await? {
            tracing::warn!(%upload_id, error = %io, "storage: cannot remove a completed upload's parts");
        }
        self.report_or_undo(
            change(
                source_ip(&request),
                &bucket,
                &key,
                size,
                &etag,
                "ObjectCreated:CompleteMultipartUpload",
            ),
            existed,
        )
        .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(bucket.clone()),
            key: Some(key.clone()),
            e_tag: Some(strong_etag(&etag)),
            location: Some(format!("/{bucket}/{key}")),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        request: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = &request.input;
        self.existing_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let disk = self.disk.clone();
        let id = input.upload_id.clone();
        let removed = blocking(move || disk.remove_upload(&id))
            .await?
            .map_err(|io| internal("cannot remove a multipart upload", io))?;
        if !removed {
            return Err(no_such_upload(&input.upload_id));
        }
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

impl Backend {
    /// Deletes one object (name and bucket checked) and reports it; a key
    /// that was not there is not an error and not an event (as S3).
    async fn delete_one<T>(
        &self,
        request: &S3Request<T>,
        bucket: &str,
        key: &str,
        event_name: &str,
    ) -> S3Result<()> {
        let disk = self.disk.clone();
        let (name, object_key) = (bucket.to_string(), key.to_string());
        let existed = blocking(move || disk.delete(&name, &object_key))
            .await?
            .map_err(|io| internal("cannot delete an object", io))?;
        if existed {
            self.report(change(source_ip(request), bucket, key, 0, "", event_name))
                .await?;
        }
        Ok(())
    }

    /// The upload's record, checked against the bucket and key it was
    /// started for.
    async fn existing_upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<Upload> {
        check_object_key(key).map_err(name_error)?;
        self.existing_bucket(bucket).await?;
        let disk = self.disk.clone();
        let id = upload_id.to_string();
        let upload = blocking(move || disk.upload(&id))
            .await?
            .map_err(|io| internal("cannot read a multipart upload", io))?;
        match upload {
            Some(upload) if upload.bucket == bucket && upload.key == key => Ok(upload),
            _ => Err(no_such_upload(upload_id)),
        }
    }
}

fn no_such_upload(upload_id: &str) -> S3Error {
    error(
        S3ErrorCode::NoSuchUpload,
        format!(
            "no multipart upload `{upload_id}` for this bucket and key (completed, aborted or never started)"
        ),
    )
}

/// Concatenates the listed parts into `temp`: each must exist with the
/// eTag listed, and all but the last must be at least 5 MiB. Returns the
/// size and the MD5 (hex) of the whole.
fn join_parts(
    disk: &Disk,
    upload_id: &str,
    listed: &[(i32, Option<String>)],
    temp: &Path,
    limit: u64,
) -> S3Result<(u64, String)> {
    use std::io::{Read, Write};
    let mut out =
        std::fs::File::create(temp).map_err(|io| internal("cannot create a temp file", io))?;
    let mut whole = Md5::new();
    let mut size = 0u64;
    let mut buffer = vec![0; 256 * 1024];
    for (index, (number, etag)) in listed.iter().enumerate() {
        let invalid_part = |why: &str| {
            error(
                S3ErrorCode::InvalidPart,
                format!(
                    "part {number}: {why}; hint: list the parts exactly as UploadPart answered"
                ),
            )
        };
        let path = u32::try_from(*number)
            .ok()
            .and_then(|number| disk.part_path(upload_id, number))
            .ok_or_else(|| invalid_part("no such part number"))?;
        let mut part = match std::fs::File::open(&path) {
            Ok(part) => part,
            Err(io) if io.kind() == std::io::ErrorKind::NotFound => {
                return Err(invalid_part("it was never uploaded"));
            }
            Err(io) => return Err(internal("cannot read a part", io)),
        };
        let mut part_md5 = Md5::new();
        let mut part_size = 0u64;
        loop {
            let read = part
                .read(&mut buffer)
                .map_err(|io| internal("cannot read a part", io))?;
            if read == 0 {
                break;
            }
            part_md5.update(&buffer[..read]);
            whole.update(&buffer[..read]);
            part_size += read as u64;
            size += read as u64;
            if size > limit {
                return Err(too_large(limit));
            }
            out.write_all(&buffer[..read])
                .map_err(|io| internal("cannot write an object", io))?;
        }
        let actual = hex::encode(part_md5.finalize());
        if let Some(etag) = etag
            && etag.trim_matches('"') != actual
        {
            return Err(invalid_part(&format!("its eTag is {actual}, not {etag}")));
        }
        if index + 1 < listed.len() && part_size < MIN_PART_BYTES {
            return Err(error(
                S3ErrorCode::EntityTooSmall,
                format!(
                    "part {number} is {part_size} bytes; every part but the last must be at least {MIN_PART_BYTES} bytes"
                ),
            ));
        }
    }
    out.sync_all()
        .map_err(|io| internal("cannot flush an object", io))?;
    Ok((size, hex::encode(whole.finalize())))
}

/// Where a listing resumes: after a key, or after a common prefix (and
/// every key under it).
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListPosition {
    AfterKey(String),
    AfterPrefix(String),
}

/// A continuation token: opaque to clients, `k` or `p` and the hex of the
/// last key or common prefix returned.
fn encode_token(position: &ListPosition) -> String {
    match position {
        ListPosition::AfterKey(key) => format!("k{}", hex::encode(key)),
        ListPosition::AfterPrefix(prefix) => format!("p{}", hex::encode(prefix)),
    }
}

fn decode_token(token: &str) -> Option<ListPosition> {
    let text = |hex_text: &str| String::from_utf8(hex::decode(hex_text).ok()?).ok();
    match token.split_at_checked(1)? {
        ("k", rest) => text(rest).map(ListPosition::AfterKey),
        ("p", rest) => text(rest).map(ListPosition::AfterPrefix),
        _ => None,
    }
}

struct ListQuery<'a> {
    prefix: &'a str,
    delimiter: Option<&'a str>,
    start_after: Option<&'a str>,
    resume: Option<&'a ListPosition>,
    max_keys: usize,
}

#[derive(Debug, PartialEq, Eq)]
struct ListPage {
    keys: Vec<String>,
    common_prefixes: Vec<String>,
    next: Option<ListPosition>,
}

/// One page of ListObjectsV2 over sorted `keys` (all starting with the
/// prefix): keys and common prefixes in order, at most `max_keys` of
/// them together.
fn list_page(keys: &[String], query: &ListQuery<'_>) -> ListPage {
    let mut page = ListPage {
        keys: Vec::new(),
        common_prefixes: Vec::new(),
        next: None,
    };
    let mut last: Option<ListPosition> = None;
    let mut emitted = 0;
    for key in keys {
        if !key.starts_with(query.prefix) {
            continue;
        }
        if query.start_after.is_some_and(|after| key.as_str() <= after) {
            continue;
        }
        match query.resume {
            Some(ListPosition::AfterKey(after)) if key <= after => continue,
            Some(ListPosition::AfterPrefix(after))
                if key <= after || key.starts_with(after.as_str()) =>
            {
                continue;
            }
            _ => {}
        }
        let rest = &key[query.prefix.len()..];
        let item = match query
            .delimiter
            .and_then(|d| rest.find(d).map(|at| at + d.len()))
        {
            Some(end) => {
                let common = format!("{}{}", query.prefix, &rest[..end]);
                if matches!(&last, Some(ListPosition::AfterPrefix(p)) if *p == common) {
                    continue;
                }
                ListPosition::AfterPrefix(common)
            }
            None => ListPosition::AfterKey(key.clone()),
        };
        if emitted == query.max_keys {
            page.next = last;
            return page;
        }
        emitted += 1;
        match &item {
            ListPosition::AfterKey(key) => page.keys.push(key.clone()),
            ListPosition::AfterPrefix(prefix) => page.common_prefixes.push(prefix.clone()),
        }
        last = Some(item);
    }
    page
}

/// Percent-encodes a key for `encoding-type=url` listings: everything but
/// unreserved characters and `/`.
fn url_encoded(text: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(text, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|key| key.to_string()).collect()
    }

    #[test]
    fn listing_pages_group_by_delimiter_and_resume_after_the_token() {
        let all = keys(&[
            "a.txt",
            "in/1.png",
            "in/2.png",
            "in/sub/3.png",
            "in/sub/4.png",
            "out/x",
            "z",
        ]);
        struct Case {
            prefix: &'static str,
            delimiter: Option<&'static str>,
            max_keys: usize,
            pages: Vec<(Vec<&'static str>, Vec<&'static str>)>,
        }
        let cases = [
            Case {
                prefix: "",
                delimiter: None,
                max_keys: 1000,
                pages: vec![(
                    vec![
                        "a.txt",
                        "in/1.png",
                        "in/2.png",
                        "in/sub/3.png",
                        "in/sub/4.png",
                        "out/x",
                        "z",
                    ],
                    vec![],
                )],
            },
            Case {
                prefix: "",
                delimiter: Some("/"),
                max_keys: 1000,
                pages: vec![(vec!["a.txt", "z"], vec!["in/", "out/"])],
            },
            Case {
                prefix: "in/",
                delimiter: Some("/"),
                max_keys: 1000,
                pages: vec![(vec!["in/1.png", "in/2.png"], vec!["in/sub/"])],
            },
            Case {
                prefix: "",
                delimiter: Some("/"),
                max_keys: 2,
                pages: vec![(vec!["a.txt"], vec!["in/"]), (vec!["z"], vec!["out/"])],
            },
            Case {
                prefix: "in/",
                delimiter: None,
                max_keys: 3,
                pages: vec![
                    (vec!["in/1.png", "in/2.png", "in/sub/3.png"], vec![]),
                    (vec!["in/sub/4.png"], vec![]),
                ],
            },
            Case {
                prefix: "in/",
                delimiter: Some("/"),
                max_keys: 1,
                pages: vec![
                    (vec!["in/1.png"], vec![]),
                    (vec!["in/2.png"], vec![]),
                    (vec![], vec!["in/sub/"]),
                ],
            },
            Case {
                prefix: "nothing/",
                delimiter: Some("/"),
                max_keys: 10,
                pages: vec![(vec![], vec![])],
            },
        ];
        for case in cases {
            let mut resume = None;
            let mut pages = Vec::new();
            loop {
                let token = resume.as_ref().map(encode_token);
                let position = token.as_deref().map(|t| decode_token(t).unwrap());
                let page = list_page(
                    &all,
                    &ListQuery {
                        prefix: case.prefix,
                        delimiter: case.delimiter,
                        start_after: None,
                        resume: position.as_ref(),
                        max_keys: case.max_keys,
                    },
                );
                pages.push((page.keys, page.common_prefixes));
                match page.next {
                    Some(next) => resume = Some(next),
                    None => break,
                }
                assert!(pages.len() < 20, "the listing does not end");
            }
            let expected: Vec<_> = case.pages.iter().map(|(k, p)| (keys(k), keys(p))).collect();
            assert_eq!(
                pages, expected,
                "prefix {:?} delimiter {:?} max {}",
                case.prefix, case.delimiter, case.max_keys
            );
        }
    }

    #[test]
    fn start_after_skips_keys_up_to_it() {
        let all = keys(&["a", "b", "c"]);
        let page = list_page(
            &all,
            &ListQuery {
                prefix: "",
                delimiter: None,
                start_after: Some("a"),
                resume: None,
                max_keys: 10,
            },
        );
        assert_eq!(page.keys, keys(&["b", "c"]));
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        for position in [
            ListPosition::AfterKey("in/ü x+%".into()),
            ListPosition::AfterPrefix("in/".into()),
        ] {
            assert_eq!(decode_token(&encode_token(&position)), Some(position));
        }
        for garbage in ["", "k", "x00", "kzz"] {
            let decoded = decode_token(garbage);
            assert!(
                decoded.is_none() || decoded == Some(ListPosition::AfterKey(String::new())),
                "{garbage}"
            );
        }
    }

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved_characters() {
        assert_eq!(url_encoded("in/a b+c%ü~._-"), "in/a%20b%2Bc%25%C3%BC~._-");
    }

    #[test]
    fn content_md5_is_checked_when_sent() {
        let md5: [u8; 16] = Md5::digest(b"hello").into();
        assert!(check_content_md5(None, &md5).is_ok());
        assert!(check_content_md5(Some("XUFAKrxLKna5cZ2REBfFkg=="), &md5).is_ok());
        let wrong = check_content_md5(Some("AAAAAAAAAAAAAAAAAAAAAA=="), &md5).unwrap_err();
        assert_eq!(wrong.code(), &S3ErrorCode::BadDigest);
    }
}

#[cfg(test)]
mod proptests;
