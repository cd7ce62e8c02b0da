//! Object storage: an S3-compatible endpoint over a folder of the data
//! directory, so real S3 clients (aws cli, boto3, rclone) can upload the
//! files that trigger functions.
//!
//! [`serve`] answers path-style S3 requests (`http://host:9000/bucket/key`)
//! authenticated with SigV4 against one access key pair. Objects are plain
//! files under `<data-dir>/storage/<bucket>/<key>`, which is also what a
//! function's `files` mount sees ([`mount_dirs`]); `disk` describes the
//! layout. After an object is committed or deleted, and before the S3 call
//! is answered, the `on_change` hook is told (an [`ObjectChange`]): if it
//! fails the call fails with 503, so an acknowledged upload always has its
//! event.
//!
//! [`Objects`] is the store behind the endpoint; the web console shares it
//! (listing, downloads, and uploads through the same path as PutObject).
//!
//! eTags are the MD5 of the whole object, lowercase hex, for multipart
//! uploads too (AWS uses `md5-of-part-md5s-N` there): one rule that
//! functions can check content against. See `docs/storage.md`.

mod disk;
mod lenient_range;
mod names;
mod objects;
#[cfg(test)]
mod proptests;
mod s3;

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use tokio::net::TcpListener;

use crate::engine::DirMount;
use crate::model::ObjectChange;

pub(crate) use names::{check_bucket_name, check_object_key, is_clean_mount_path};
pub(crate) use objects::ObjectError;
pub use objects::Objects;

/// The largest object accepted by default: 5 GiB, S3's PutObject limit.
pub(crate) const DEFAULT_MAX_OBJECT_BYTES: u64 = 5 << 30;

/// The smallest part of a multipart upload, except the last (S3's rule).
pub(crate) const MIN_PART_BYTES: u64 = 5 << 20;

/// The file under the data directory that keeps generated credentials.
pub(crate) const CREDENTIALS_FILE: &str = "storage-credentials";

/// What `storage` calls after an object was created or removed, before the
/// S3 call is answered. An error fails the S3 call with 503
/// `ServiceUnavailable`.
pub type ChangeHook =
    Arc<dyn Fn(ObjectChange) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// The one access key pair S3 requests are signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageCredentials {
    /// The access key id (`AWS_ACCESS_KEY_ID`).
    pub access_key: String,
    /// The secret (`AWS_SECRET_ACCESS_KEY`).
    pub secret_key: String,
}

impl std::fmt::Debug for StorageCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<hidden>")
            .finish()
    }
}

/// Where object storage keeps its files and what it accepts.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// The storage folder, `<data-dir>/storage`.
    pub root: PathBuf,
    /// The key pair requests must be signed with.
    pub credentials: StorageCredentials,
    /// The largest object accepted, in bytes (simple or multipart).
    pub max_object_bytes: u64,
}

/// The storage folder of a data directory.
pub(crate) fn storage_root(data_dir: &Path) -> PathBuf {
    data_dir.join("storage")
}

/// Serves the S3 endpoint on `listener` until `shutdown` resolves, then
/// lets in-flight requests finish and returns.
///
/// # Errors
///
/// When the storage folder cannot be created, or the listener fails.
pub async fn serve(
    listener: TcpListener,
    options: StorageOptions,
    on_change: ChangeHook,
    limits: crate::connections::ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let objects = Objects::open(&options.root, options.max_object_bytes, on_change).await?;
    serve_objects(listener, objects, &options.credentials, limits, shutdown).await
}

/// Serves the S3 endpoint for `objects` (opened by the caller, who may
/// share them) on `listener` until `shutdown` resolves.
///
/// # Errors
///
/// When the listener fails.
pub(crate) async fn serve_objects(
    listener: TcpListener,
    objects: Objects,
    credentials: &StorageCredentials,
    limits: crate::connections::ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let lenient = lenient_range::IgnoreMalformedRange {
        backend: objects.backend.clone(),
    };
    let mut builder = s3s::service::S3ServiceBuilder::new(objects.backend);
    builder.set_route(lenient);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(
        credentials.access_key.clone(),
        credentials.secret_key.clone(),
    ));
    let service = builder.build();
    let service =
        axum::error_handling::HandleError::new(service, |problem: s3s::HttpError| async move {
            tracing::warn!(error = ?problem, "storage: cannot answer a request");
            (http::StatusCode::BAD_REQUEST, "malformed S3 request\n")
        });
    let app = axum::Router::new().fallback_service(service);
    crate::connections::serve(
        listener,
        crate::connections::axum_app(app),
        limits,
        shutdown,
    )
    .await
    .context("the storage listener failed")
}

/// Picks the storage credentials: both given (flags or environment), or
/// the pair stored in `<data-dir>/storage-credentials`, or a new pair
/// written there (mode 0600). The flag is `true` when a pair was created,
/// so the caller prints it once.
///
/// # Errors
///
/// When only one of the two keys is given, or the file cannot be read or
/// written, or holds something else than a key pair.
pub(crate) fn load_or_create_credentials(
    data_dir: &Path,
    access_key: Option<String>,
    secret_key: Option<String>,
) -> anyhow::Result<(StorageCredentials, bool)> {
    match (access_key, secret_key) {
        (Some(access_key), Some(secret_key)) => {
            if access_key.is_empty() || secret_key.is_empty() {
                anyhow::bail!(
                    "the storage access key and secret key may not be empty; hint: set both, or neither to use generated ones"
                );
            }
            return Ok((
                StorageCredentials {
                    access_key,
                    secret_key,
                },
                false,
            ));
        }
        (None, None) => {}
        _ => anyhow::bail!(
            "only one of --storage-access-key and --storage-secret-key is set; \
             hint: set both (or KUMO_STORAGE_ACCESS_KEY and KUMO_STORAGE_SECRET_KEY), or neither to use generated ones"
        ),
    }
    let path = data_dir.join(CREDENTIALS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let credentials = parse_credentials(&text).with_context(|| {
                format!(
                    "{} does not hold a storage key pair; hint: delete it to generate a new pair",
                    path.display()
                )
            })?;
            return Ok((credentials, false));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    }
    let random = || uuid::Uuid::new_v4().simple().to_string();
    let credentials = StorageCredentials {
        access_key: format!("KUMO{}", random()[..16].to_ascii_uppercase()),
        secret_key: format!("{}{}", random(), &random()[..8]),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(
        format!(
            "access_key = {}\nsecret_key = {}\n",
            credentials.access_key, credentials.secret_key
        )
        .as_bytes(),
    )
    .and_then(|()| file.sync_all())
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((credentials, true))
}

fn parse_credentials(text: &str) -> Option<StorageCredentials> {
    let mut access_key = None;
    let mut secret_key = None;
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once('=')?;
        let value = value.trim().to_string();
        match name.trim() {
            "access_key" => access_key = Some(value),
            "secret_key" => secret_key = Some(value),
            _ => return None,
        }
    }
    Some(StorageCredentials {
        access_key: access_key.filter(|key| !key.is_empty())?,
        secret_key: secret_key.filter(|key| !key.is_empty())?,
    })
}

/// One `files` entry of a function: a bucket, or a folder of the host,
/// seen by the guest at `path`. Exactly one of `bucket` and `dir` is set
/// (checked by the configuration's validation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileMount {
    /// A bucket of Kumo's object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// A folder on the server's file system, absolute (a manifest resolves
    /// a relative one against its own folder). The guest cannot leave it:
    /// `..` and symbolic links pointing out of it are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Where the guest sees it (an absolute guest path such as `/data`).
    pub path: String,
    /// Whether the guest may only read (the default).
    #[serde(default = "read_only_by_default")]
    pub read_only: bool,
}

fn read_only_by_default() -> bool {
    true
}

/// The size and eTag (MD5, lowercase hex) of an object under the storage
/// folder `root`, read without changing anything; `Ok(None)` when there
/// is no such object.
///
/// # Errors
///
/// An invalid bucket name or key, or a file that cannot be read.
pub(crate) fn object_size_and_etag(
    root: &Path,
    bucket: &str,
    key: &str,
) -> anyhow::Result<Option<(u64, String)>> {
    check_bucket_name(bucket)?;
    check_object_key(key)?;
    disk::object_size_and_etag(root, bucket, key)
        .with_context(|| format!("cannot read object {bucket}/{key}"))
}

/// Creates a bucket (an empty folder) unless it exists, and returns its
/// folder; `why` names what needs it, for the log.
///
/// # Errors
///
/// When the folder cannot be created.
pub(crate) fn ensure_bucket(root: &Path, bucket: &str, why: &str) -> anyhow::Result<PathBuf> {
    let host_path = root.join(bucket);
    if !host_path.is_dir() {
        std::fs::create_dir_all(&host_path).with_context(|| {
            format!(
                "cannot create bucket `{bucket}` for {why} at {}",
                host_path.display()
            )
        })?;
        tracing::info!(%bucket, "storage: created bucket for {why}");
    }
    Ok(host_path)
}

/// The host folders behind a function's `files` mounts, for the engine.
/// A mounted bucket that does not exist yet is created (empty), so a
/// function can mount the bucket it writes into before anything was
/// uploaded. A mounted host folder is created when missing too (as a watch
/// trigger's folder is), then resolved (symbolic links followed) once
/// here; the guest is confined to what it finds.
///
/// # Errors
///
/// When a bucket folder or a host folder cannot be created, or the host
/// path is no folder.
pub(crate) fn mount_dirs(root: &Path, mounts: &[FileMount]) -> anyhow::Result<Vec<DirMount>> {
    mounts
        .iter()
        .map(|mount| {
            let host_path = match (&mount.bucket, &mount.dir) {
                (Some(bucket), _) => ensure_bucket(root, bucket, "a `files` mount")?,
                (None, Some(dir)) => {
                    let path = Path::new(dir);
                    if !path.exists() {
                        std::fs::create_dir_all(path).with_context(|| {
                            format!(
                                "cannot create folder {dir} to mount at {}; hint: point `dir` at a writable place",
                                mount.path
                            )
                        })?;
                    }
                    let folder = std::fs::canonicalize(path)
                        .with_context(|| format!("cannot resolve folder {dir}"))?;
                    if !folder.is_dir() {
                        anyhow::bail!(
                            "cannot mount {dir} at {}: it is no folder; hint: mount a folder, not a file",
                            mount.path
                        );
                    }
                    folder
                }
                (None, None) => anyhow::bail!(
                    "the mount at {} names neither a bucket nor a folder",
                    mount.path
                ),
            };
            Ok(DirMount {
                host_path,
                guest_path: mount.path.clone(),
                writable: !mount.read_only,
            })
        })
        .collect()
}

/// Writes an object into a bucket (created when missing) the way an S3
/// upload does (a temp file flushed, then renamed into place with its
/// eTag), for Kumo's own writes such as a destination record. Returns the
/// change, for the caller to hand to the event queue as S3 uploads do.
///
/// # Errors
///
/// An invalid bucket name or key, a folder in the key's way, or a disk
/// error.
pub(crate) async fn put_object(
    root: &Path,
    bucket: &str,
    key: &str,
    bytes: Vec<u8>,
    content_type: &str,
) -> anyhow::Result<ObjectChange> {
    check_bucket_name(bucket)?;
    check_object_key(key)?;
    let (root, bucket, key, content_type) = (
        root.to_path_buf(),
        bucket.to_string(),
        key.to_string(),
        content_type.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        ensure_bucket(&root, &bucket, "a destination")?;
        let disk = disk::Disk::at(&root)?;
        let etag = disk::md5_hex(&bytes);
        let temp = disk.temp_path();
        let written = (|| {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()
        })();
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(
                anyhow::Error::from(error).context(format!("cannot write object {bucket}/{key}"))
            );
        }
        let meta = disk
            .commit(
                &bucket,
                &key,
                &temp,
                disk::NewObject {
                    etag: etag.clone(),
                    content_type: Some(content_type),
                    metadata: std::collections::BTreeMap::new(),
                },
            )
            .map_err(|error| {
                let _ = std::fs::remove_file(&temp);
                anyhow::anyhow!("cannot store object {bucket}/{key}: {error}")
            })?;
        Ok(ObjectChange {
            bucket,
            key,
            size: meta.size,
            etag,
            event_name: "ObjectCreated:PutObject".to_string(),
            time: chrono::Utc::now(),
            source_ip: None,
            request_id: crate::request_id::next().to_string(),
        })
    })
    .await
    .context("the object write task failed")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = load_or_create_credentials(dir.path(), None, None).unwrap();
        assert!(created);
        assert!(first.access_key.starts_with("KUMO") && first.access_key.len() == 20);
        assert_eq!(first.secret_key.len(), 40);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CREDENTIALS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = load_or_create_credentials(dir.path(), None, None).unwrap();
        assert!(!created);
        assert_eq!(again, first);

        let given = load_or_create_credentials(dir.path(), Some("AK".into()), Some("SK".into()))
            .unwrap()
            .0;
        assert_eq!(given.access_key, "AK");
        let error = load_or_create_credentials(dir.path(), Some("AK".into()), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("only one of"), "{error}");
    }

    #[test]
    fn a_damaged_credentials_file_is_an_error_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CREDENTIALS_FILE), "nonsense\n").unwrap();
        let error = format!(
            "{:#}",
            load_or_create_credentials(dir.path(), None, None).unwrap_err()
        );
        assert!(
            error.contains("delete it to generate a new pair"),
            "{error}"
        );
    }

    #[test]
    fn mounts_create_missing_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let mounts = [
            FileMount {
                bucket: Some("photos".into()),
                dir: None,
                path: "/data".into(),
                read_only: true,
            },
            FileMount {
                bucket: Some("thumbs".into()),
                dir: None,
                path: "/out".into(),
                read_only: false,
            },
        ];
        let dirs = mount_dirs(dir.path(), &mounts).unwrap();
        assert!(dir.path().join("photos").is_dir());
        assert_eq!(dirs[0].guest_path, "/data");
        assert!(!dirs[0].writable);
        assert!(dirs[1].writable);
        assert_eq!(dirs[1].host_path, dir.path().join("thumbs"));
    }

    #[test]
    fn a_host_folder_mount_resolves_its_folder_or_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let mount = |folder: &Path| FileMount {
            bucket: None,
            dir: Some(folder.to_string_lossy().into_owned()),
            path: "/inbox".into(),
            read_only: true,
        };
        let dirs = mount_dirs(dir.path(), &[mount(&inbox)]).unwrap();
        assert_eq!(dirs[0].host_path, std::fs::canonicalize(&inbox).unwrap());
        assert!(!dirs[0].writable);
        // A missing folder is created, as a watch trigger's is.
        let created = mount_dirs(dir.path(), &[mount(&dir.path().join("new"))]).unwrap();
        assert!(created[0].host_path.is_dir());
        let file = format!(
            "{:#}",
            mount_dirs(dir.path(), &[mount(&dir.path().join("file"))]).unwrap_err()
        );
        assert!(file.contains("it is no folder"), "{file}");
    }

    #[tokio::test]
    async fn put_object_commits_an_object_with_its_etag() {
        let dir = tempfile::tempdir().unwrap();
        let change = put_object(
            dir.path(),
            "outcomes",
            "a/b.json",
            b"{}".to_vec(),
            "application/json",
        )
        .await
        .unwrap();
        assert_eq!(change.bucket, "outcomes");
        assert_eq!(change.size, 2);
        assert_eq!(change.etag, "99914b932bd37a50b983c5e7c90ae93b");
        assert_eq!(
            std::fs::read(dir.path().join("outcomes/a/b.json")).unwrap(),
            b"{}"
        );
        assert_eq!(
            object_size_and_etag(dir.path(), "outcomes", "a/b.json").unwrap(),
            Some((2, change.etag.clone()))
        );
        assert!(
            put_object(dir.path(), "outcomes", "../x", Vec::new(), "text/plain")
                .await
                .is_err()
        );
    }
}
