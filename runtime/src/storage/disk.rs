//! The on-disk layout of object storage, and the file operations on it.
//!
//! ```text
//! <root>/                      (<data-dir>/storage)
//!   <bucket>/<key>             the objects, as plain files (what mounts see),
//!                              each with its metadata (eTag, size, type, user
//!                              metadata) in the extended attribute `user.kumo.meta`
//!   .meta/<bucket>/<key>.json  the metadata as a sidecar file instead, where the
//!                              file system keeps no extended attributes (and for
//!                              objects stored by Kumo before they were used)
//!   .tmp/<uuid>                uploads in progress, renamed into place
//!   .uploads/<id>/             multipart uploads: upload.json, part-00001, ...
//! ```
//!
//! Bucket names cannot start with `.`, so the hidden folders never clash
//! with a bucket. Neither form of metadata is visible to a guest mounting
//! a bucket (WASI has no extended attributes; sidecars live outside the
//! bucket folders). An upload creates one file: its metadata is set on the
//! temp file before the rename (a new file per upload is the costly part
//! of a small upload: ext4 allocating an inode). A file without metadata,
//! or whose metadata no longer matches its size and modification time (a
//! guest wrote it through a read-write mount), gets its eTag recomputed
//! when it is next read.
//!
//! Writes follow one rule: the whole file is written and flushed under
//! `.tmp/`, then renamed into place (with its sidecar, if any) under one
//! lock, so a reader never sees half an object. The folder is synced after
//! the lock is released, in rounds that concurrent commits share
//! ([`FolderSyncs`]); the upload is answered after it. Paths are walked segment by
//! segment without following symbolic links, so a link a guest planted
//! cannot lead a request out of its bucket.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::names::check_object_key;

/// An object's metadata (its attribute, or its sidecar file): what S3
/// returns besides the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ObjectMeta {
    /// MD5 of the whole object, lowercase hex.
    pub etag: String,
    /// Size in bytes when the metadata was written.
    pub size: u64,
    /// The file's modification time (ns since the epoch) when the metadata
    /// was written: a mismatch means the file changed behind S3's back.
    pub modified_ns: u64,
    /// `Content-Type` given at upload.
    #[serde(default)]
    pub content_type: Option<String>,
    /// `x-amz-meta-*` user metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// The extended attribute holding an object's [`ObjectMeta`] on its file.
const META_ATTRIBUTE: &str = "user.kumo.meta";

/// The first byte of the compact form of [`META_ATTRIBUTE`] (JSON starts
/// with `{`).
const COMPACT_META: u8 = 1;

impl ObjectMeta {
    /// The bytes of [`META_ATTRIBUTE`]: 33 bytes for the usual object (an
    /// MD5 eTag, no content type, no user metadata), small enough that
    /// ext4 keeps it inside the inode, not in a block of its own; JSON
    /// otherwise.
    fn to_attribute(&self) -> io::Result<Vec<u8>> {
        let md5 = (self.etag.len() == 32
            && self
                .etag
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| hex::decode(&self.etag).ok())
        .flatten();
        match md5 {
            Some(md5) if self.content_type.is_none() && self.metadata.is_empty() => {
                let mut bytes = Vec::with_capacity(33);
                bytes.push(COMPACT_META);
                bytes.extend_from_slice(&md5);
                bytes.extend_from_slice(&self.size.to_le_bytes());
                bytes.extend_from_slice(&self.modified_ns.to_le_bytes());
                Ok(bytes)
            }
            _ => serde_json::to_vec(self).map_err(io::Error::other),
        }
    }

    /// Reads [`ObjectMeta::to_attribute`]'s bytes; `None` for anything
    /// else.
    fn from_attribute(bytes: &[u8]) -> Option<Self> {
        match bytes.first() {
            Some(&COMPACT_META) if bytes.len() == 33 => Some(Self {
                etag: hex::encode(&bytes[1..17]),
                size: u64::from_le_bytes(bytes[17..25].try_into().ok()?),
                modified_ns: u64::from_le_bytes(bytes[25..33].try_into().ok()?),
                content_type: None,
                metadata: BTreeMap::new(),
            }),
            Some(b'{') => serde_json::from_slice(bytes).ok(),
            _ => None,
        }
    }

    /// Whether this describes the file whose metadata is `file` (same
    /// size and modification time).
    fn describes(&self, file: &fs::Metadata) -> bool {
        self.size == file.len() && self.modified_ns == modified_ns(file)
    }
}

/// The metadata stored for the file at `path` (`file` is its metadata
/// now), from its attribute or else from its `sidecar`, when it still
/// describes the file.
fn stored_meta(path: &Path, sidecar: &Path, file: &fs::Metadata) -> Option<ObjectMeta> {
    let mut buffer = [0u8; 4096];
    rustix::fs::lgetxattr(path, META_ATTRIBUTE, &mut buffer[..])
        .ok()
        .and_then(|length| ObjectMeta::from_attribute(&buffer[..length]))
        .filter(|meta| meta.describes(file))
        .or_else(|| {
            fs::read(sidecar)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<ObjectMeta>(&bytes).ok())
                .filter(|meta| meta.describes(file))
        })
}

/// What the caller of [`Disk::commit`] knows about a new object.
#[derive(Debug, Clone)]
pub(super) struct NewObject {
    pub etag: String,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A stored object found by [`Disk::object`].
#[derive(Debug, Clone)]
pub(super) struct FoundObject {
    pub path: PathBuf,
    pub meta: ObjectMeta,
    pub last_modified: SystemTime,
}

/// A multipart upload's record (`.uploads/<id>/upload.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Upload {
    pub bucket: String,
    pub key: String,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A file operation that failed for a reason the client can act on, or an
/// I/O error.
#[derive(Debug, thiserror::Error)]
pub(super) enum DiskError {
    /// The key needs a folder where a file is (or a file where a folder
    /// is): `a` and `a/b` cannot both be objects on a file system.
    #[error(
        "object key `{key}` clashes with `{other}`: on disk one would have to be both a file and a folder; \
         hint: delete `{other}` first, or choose another key"
    )]
    KeyConflict { key: String, other: String },
    /// Any other I/O failure.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The lock that makes commits, deletes and metadata refreshes atomic with
/// respect to each other within a process, shared by every [`Disk`] (the
/// S3 endpoint's and Kumo's own writes). Across processes (the nodes of a
/// cluster sharing one storage folder) [`Disk::commit_lock`] also holds
/// an exclusive file lock on [`COMMIT_LOCK_FILE`].
static COMMIT_LOCK: Mutex<()> = Mutex::new(());

/// The file in the storage root whose lock the nodes sharing the folder
/// take around a commit (a dot name: never a bucket).
const COMMIT_LOCK_FILE: &str = ".commit-lock";

/// Both commit locks, released when dropped.
pub(super) struct CommitGuard {
    _file: fs::File,
    _process: std::sync::MutexGuard<'static, ()>,
}

/// How long a temp file goes untouched before a starting node removes it
/// as a crash's leftover.
const ABANDONED_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Object storage's root folder.
pub(super) struct Disk {
    root: PathBuf,
    /// Whether to keep metadata in [`META_ATTRIBUTE`]: until the file
    /// system says it has no extended attributes (then sidecar files).
    attributes: AtomicBool,
    /// The syncs of folders after renames, shared by concurrent commits.
    folder_syncs: FolderSyncs,
}

/// Folder syncs shared by concurrent commits (a group commit of `fsync`).
/// A commit needs a sync of its folder that begins after its rename. The
/// first to ask syncs every folder asked for so far, one round; those who
/// ask meanwhile wait for the next round, which one of them then runs for
/// all of them. Under load a round serves many commits: on this project's
/// test machine each `fsync` of a folder cost a device flush and a trip
/// to the hypervisor, one per upload before.
#[derive(Default)]
struct FolderSyncs {
    state: Mutex<FolderSyncState>,
    round_finished: Condvar,
}

#[derive(Default)]
struct FolderSyncState {
    /// Folders asked for since the last round began.
    wanted: Vec<PathBuf>,
    /// Rounds begun so far, and ended: a round is running while they
    /// differ.
    begun: u64,
    finished: u64,
}

impl FolderSyncs {
    /// Returns after a sync of `folder` that began after this call did.
    /// A failed sync is logged, not returned (the rename is done; the next
    /// sync of the folder, or the kernel's writeback, makes it durable).
    fn sync(&self, folder: &Path) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.wanted.iter().any(|wanted| wanted == folder) {
            state.wanted.push(folder.to_path_buf());
        }
        // The running round, if any, took its folders before this one was
        // added: the next round is the one to wait for.
        let round = state.begun + 1;
        while state.finished < round {
            if state.begun > state.finished {
                state = self
                    .round_finished
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.begun += 1;
            let this_round = state.begun;
            let folders = std::mem::take(&mut state.wanted);
            drop(state);
            for folder in &folders {
                if let Err(error) = fs::File::open(folder).and_then(|dir| dir.sync_all()) {
                    tracing::warn!(folder = %folder.display(), %error, "storage: cannot sync a folder after a rename");
                }
            }
            state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.finished = this_round;
            self.round_finished.notify_all();
        }
    }
}

impl Disk {
    /// Opens (creating when needed) the storage root and its hidden
    /// folders, and removes temp files a crash left behind.
    ///
    /// # Errors
    ///
    /// When the folders cannot be created.
    pub fn open(root: &Path) -> io::Result<Self> {
        for dir in [".tmp", ".meta", ".uploads"] {
            fs::create_dir_all(root.join(dir))?;
        }
        // Another node sharing the folder may be writing a temp file right
        // now: only those untouched for an hour are a crash's leftovers.
        for entry in fs::read_dir(root.join(".tmp"))?.flatten() {
            let abandoned = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .is_ok_and(|modified| modified.elapsed().unwrap_or_default() > ABANDONED_TEMP_AGE);
            if abandoned {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            attributes: AtomicBool::new(true),
            folder_syncs: FolderSyncs::default(),
        })
    }

    /// The storage root of a running server, opened by [`Disk::open`]
    /// already: its hidden folders are made if missing, and nothing is
    /// cleaned (uploads may be in progress).
    ///
    /// # Errors
    ///
    /// When the hidden folders cannot be created.
    pub fn at(root: &Path) -> io::Result<Self> {
        for dir in [".tmp", ".meta"] {
            fs::create_dir_all(root.join(dir))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            attributes: AtomicBool::new(true),
            folder_syncs: FolderSyncs::default(),
        })
    }

    /// The folder of a bucket (whose name was checked).
    pub(crate) fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    /// Whether the bucket exists.
    pub(crate) fn bucket_exists(&self, bucket: &str) -> bool {
        fs::symlink_metadata(self.bucket_dir(bucket)).is_ok_and(|m| m.is_dir())
    }

    /// Whether `bucket/key` is an object now (a file, not a folder).
    pub(crate) fn is_object(&self, bucket: &str, key: &str) -> bool {
        fs::symlink_metadata(self.bucket_dir(bucket).join(key)).is_ok_and(|m| m.is_file())
    }

    /// Creates a bucket; `Ok(false)` when it already existed.
    pub(crate) fn create_bucket(&self, bucket: &str) -> io::Result<bool> {
        match fs::create_dir(self.bucket_dir(bucket)) {
            Ok(()) => {
                fs::create_dir_all(self.root.join(".meta").join(bucket))?;
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Every bucket with its creation (or, where the file system does not
    /// know it, modification) time, in name order.
    pub(crate) fn list_buckets(&self) -> io::Result<Vec<(String, SystemTime)>> {
        let mut buckets = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !entry.file_type()?.is_dir() {
                continue;
            }
            let metadata = entry.metadata()?;
            let created = metadata
                .created()
                .or_else(|_| metadata.modified())
                .unwrap_or(UNIX_EPOCH);
            buckets.push((name, created));
        }
        buckets.sort();
        Ok(buckets)
    }

    /// Takes the commit lock of this process, then the storage folder's
    /// file lock, which other processes sharing the folder take too.
    ///
    /// # Errors
    ///
    /// The lock file cannot be opened or locked.
    pub(super) fn commit_lock(&self) -> io::Result<CommitGuard> {
        let process = COMMIT_LOCK
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(COMMIT_LOCK_FILE))?;
        file.lock()?;
        Ok(CommitGuard {
            _file: file,
            _process: process,
        })
    }

    /// A fresh path under `.tmp/` for an upload in progress.
    pub(crate) fn temp_path(&self) -> PathBuf {
        self.root
            .join(".tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    fn sidecar_path(&self, bucket: &str, key: &str) -> PathBuf {
        sidecar_path(&self.root, bucket, key)
    }

    /// Moves a fully written (and flushed) temp file into place as
    /// `bucket/key`, with its metadata. Returns the metadata written.
    ///
    /// # Errors
    ///
    /// [`DiskError::KeyConflict`] when a folder or file is in the way.
    pub(crate) fn commit(
        &self,
        bucket: &str,
        key: &str,
        temp: &Path,
        object: NewObject,
    ) -> Result<ObjectMeta, DiskError> {
        let file = fs::metadata(temp)?;
        let meta = ObjectMeta {
            etag: object.etag,
            size: file.len(),
            modified_ns: modified_ns(&file),
            content_type: object.content_type,
            metadata: object.metadata,
        };
        // The metadata travels with the file; where the file system keeps
        // no extended attributes, in a sidecar file renamed with it.
        let sidecar_temp = if self.set_attribute(temp, &meta)? {
            None
        } else {
            let sidecar_temp = self.temp_path();
            fs::write(
                &sidecar_temp,
                serde_json::to_vec(&meta).map_err(io::Error::other)?,
            )?;
            Some(sidecar_temp)
        };

        let result = (|| {
            let guard = self.commit_lock()?;
            let bucket_dir = self.bucket_dir(bucket);
            let target = make_parent_dirs(&bucket_dir, key)?;
            let sidecar = self.sidecar_path(bucket, key);
            let placed = (|| {
                // A folder left empty (by a client writing through a
                // mount, say) holds no object: it does not block the key.
                if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir())
                    && fs::remove_dir(&target).is_err()
                {
                    return Err(DiskError::KeyConflict {
                        key: key.to_string(),
                        other: format!("{key}/..."),
                    });
                }
                if let Some(sidecar_temp) = &sidecar_temp {
                    if let Some(parent) = sidecar.parent() {
                        fs::create_dir_all(parent)?;
                    }
                    fs::rename(sidecar_temp, &sidecar)?;
                }
                fs::rename(temp, &target)?;
                Ok(())
            })();
            if placed.is_err() {
                // Leave no folder behind that only this failed write made.
                remove_empty_parents(&target, &bucket_dir);
                remove_empty_parents(&sidecar, &self.root.join(".meta").join(bucket));
                return placed;
            }
            drop(guard);
            // Make the rename itself durable. Outside the lock, and shared:
            // this returns after a sync of the folder that began after the
            // rename, which concurrent commits share.
            if let Some(parent) = target.parent() {
                self.folder_syncs.sync(parent);
            }
            Ok(())
        })();
        if result.is_err()
            && let Some(sidecar_temp) = &sidecar_temp
        {
            let _ = fs::remove_file(sidecar_temp);
        }
        result.map(|()| meta)
    }

    /// Sets `meta` as the attribute of the file at `path`. `Ok(false)`
    /// when the file system refuses it (then the caller writes a sidecar
    /// file; after "not supported", every later caller does).
    ///
    /// # Errors
    ///
    /// The disk is full.
    fn set_attribute(&self, path: &Path, meta: &ObjectMeta) -> io::Result<bool> {
        if !self.attributes.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let bytes = meta.to_attribute()?;
        match rustix::fs::lsetxattr(
            path,
            META_ATTRIBUTE,
            &bytes,
            rustix::fs::XattrFlags::empty(),
        ) {
            Ok(()) => Ok(true),
            Err(errno) if errno == rustix::io::Errno::NOSPC => Err(errno.into()),
            Err(errno) => {
                if errno == rustix::io::Errno::NOTSUP {
                    self.attributes.store(false, Ordering::Relaxed);
                    tracing::info!(
                        folder = %self.root.display(),
                        "storage: the file system keeps no extended attributes; objects' metadata goes in sidecar files"
                    );
                }
                Ok(false)
            }
        }
    }

    /// Finds an object and its metadata, recomputing the metadata when the
    /// file changed behind S3's back. `Ok(None)` when there is no such
    /// object (or the path is a folder or a symbolic link).
    pub(crate) fn object(&self, bucket: &str, key: &str) -> io::Result<Option<FoundObject>> {
        let Some(path) = existing_file(&self.bucket_dir(bucket), key)? else {
            return Ok(None);
        };
        let file = fs::symlink_metadata(&path)?;
        let last_modified = file.modified().unwrap_or(UNIX_EPOCH);
        let sidecar = self.sidecar_path(bucket, key);
        if let Some(meta) = stored_meta(&path, &sidecar, &file) {
            return Ok(Some(FoundObject {
                path,
                meta,
                last_modified,
            }));
        }
        // Written by something other than S3 (a guest through a mount):
        // hash it, and remember the result if the file did not change
        // meanwhile.
        let etag = md5_of_file(&path)?;
        let meta = ObjectMeta {
            etag,
            size: file.len(),
            modified_ns: modified_ns(&file),
            content_type: None,
            metadata: BTreeMap::new(),
        };
        let _guard = self.commit_lock()?;
        let now = fs::symlink_metadata(&path)?;
        if meta.describes(&now) && !self.set_attribute(&path, &meta)? {
            if let Some(parent) = sidecar.parent() {
                fs::create_dir_all(parent)?;
            }
            let temp = self.temp_path();
            fs::write(&temp, serde_json::to_vec(&meta).map_err(io::Error::other)?)?;
            fs::rename(&temp, &sidecar)?;
        }
        Ok(Some(FoundObject {
            path,
            meta,
            last_modified,
        }))
    }

    /// Deletes an object and its sidecar, and the folders it leaves empty;
    /// `Ok(false)` when there was no such object.
    pub(crate) fn delete(&self, bucket: &str, key: &str) -> io::Result<bool> {
        let bucket_dir = self.bucket_dir(bucket);
        let _guard = self.commit_lock()?;
        let Some(path) = existing_file(&bucket_dir, key)? else {
            return Ok(false);
        };
        fs::remove_file(&path)?;
        let sidecar = self.sidecar_path(bucket, key);
        let _ = fs::remove_file(&sidecar);
        remove_empty_parents(&path, &bucket_dir);
        remove_empty_parents(&sidecar, &self.root.join(".meta").join(bucket));
        Ok(true)
    }

    /// Every key in the bucket that starts with `prefix`, sorted by their
    /// UTF-8 bytes (S3's order). Files whose names are not valid keys
    /// (written through a mount) and symbolic links are left out.
    pub(crate) fn list_keys(&self, bucket: &str, prefix: &str) -> io::Result<Vec<String>> {
        let bucket_dir = self.bucket_dir(bucket);
        // Start at the deepest folder the prefix names, when it names one.
        let (start_key, start_dir) = match prefix.rfind('/') {
            Some(slash) if check_object_key(&prefix[..slash]).is_ok() => {
                let folder = &prefix[..slash];
                match existing_dir(&bucket_dir, folder)? {
                    Some(dir) => (format!("{folder}/"), dir),
                    None => return Ok(Vec::new()),
                }
            }
            _ => (String::new(), bucket_dir),
        };
        let mut keys = Vec::new();
        let mut folders = vec![(start_key, start_dir)];
        while let Some((key_prefix, dir)) = folders.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            for entry in entries {
                let entry = entry?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let key = format!("{key_prefix}{name}");
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    let folder = format!("{key}/");
                    if folder.starts_with(prefix) || prefix.starts_with(&folder) {
                        folders.push((folder, entry.path()));
                    }
                } else if kind.is_file()
                    && key.starts_with(prefix)
                    && check_object_key(&key).is_ok()
                {
                    keys.push(key);
                }
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    fn upload_dir(&self, upload_id: &str) -> Option<PathBuf> {
        // Upload ids are ours: 32 hex digits. Anything else is unknown.
        let ours = upload_id.len() == 32 && upload_id.bytes().all(|b| b.is_ascii_hexdigit());
        ours.then(|| self.root.join(".uploads").join(upload_id))
    }

    /// Starts a multipart upload and returns its id.
    pub(crate) fn create_upload(&self, upload: &Upload) -> io::Result<String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.root.join(".uploads").join(&id);
        fs::create_dir(&dir)?;
        fs::write(
            dir.join("upload.json"),
            serde_json::to_vec(upload).map_err(io::Error::other)?,
        )?;
        Ok(id)
    }

    /// A multipart upload's record, or `None` when there is no such upload.
    pub(crate) fn upload(&self, upload_id: &str) -> io::Result<Option<Upload>> {
        let Some(dir) = self.upload_dir(upload_id) else {
            return Ok(None);
        };
        match fs::read(dir.join("upload.json")) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).map_err(io::Error::other)?,
            )),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Where part `number` of an upload is kept (the upload exists).
    pub(crate) fn part_path(&self, upload_id: &str, number: u32) -> Option<PathBuf> {
        self.upload_dir(upload_id)
            .map(|dir| dir.join(format!("part-{number:05}")))
    }

    /// The parts uploaded so far: (number, size in bytes).
    pub(crate) fn parts(&self, upload_id: &str) -> io::Result<Vec<(u32, u64)>> {
        let Some(dir) = self.upload_dir(upload_id) else {
            return Ok(Vec::new());
        };
        let mut parts = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|name| name.strip_prefix("part-"))
                .and_then(|number| number.parse().ok())
            else {
                continue;
            };
            parts.push((number, entry.metadata()?.len()));
        }
        parts.sort_unstable();
        Ok(parts)
    }

    /// Forgets a multipart upload and its parts; `Ok(false)` when there
    /// was no such upload.
    pub(crate) fn remove_upload(&self, upload_id: &str) -> io::Result<bool> {
        let Some(dir) = self.upload_dir(upload_id) else {
            return Ok(false);
        };
        match fs::remove_dir_all(dir) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }
}

fn modified_ns(metadata: &fs::Metadata) -> u64 {
    metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Where the sidecar of `bucket/key` is kept under the storage root.
fn sidecar_path(root: &Path, bucket: &str, key: &str) -> PathBuf {
    let (folders, name) = key.rsplit_once('/').unwrap_or(("", key));
    let mut path = root.join(".meta").join(bucket);
    if !folders.is_empty() {
        path.push(folders);
    }
    // `<name>.json` must fit the file system's 255 bytes per name; a key
    // segment that long gets its sidecar under a digest of the name.
    if name.len() + ".json".len() <= 255 {
        path.push(format!("{name}.json"));
    } else {
        use sha2::Digest;
        path.push(format!(
            "{}.long.json",
            hex::encode(sha2::Sha256::digest(name.as_bytes()))
        ));
    }
    path
}

/// The size and eTag of `bucket/key` (names checked) as S3 reports them,
/// without writing anything: the sidecar's when it is current, else the
/// file's size and MD5. `Ok(None)` when there is no such object.
///
/// # Errors
///
/// When the file cannot be read.
pub(super) fn object_size_and_etag(
    root: &Path,
    bucket: &str,
    key: &str,
) -> io::Result<Option<(u64, String)>> {
    let Some(path) = existing_file(&root.join(bucket), key)? else {
        return Ok(None);
    };
    let file = fs::symlink_metadata(&path)?;
    if let Some(meta) = stored_meta(&path, &sidecar_path(root, bucket, key), &file) {
        return Ok(Some((meta.size, meta.etag)));
    }
    Ok(Some((file.len(), md5_of_file(&path)?)))
}

/// The MD5 of `bytes` as lowercase hex: an object's eTag.
pub(super) fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// MD5 of a file's bytes, lowercase hex.
pub(super) fn md5_of_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Creates the folders above `bucket_dir/key` one segment at a time,
/// refusing to go through a file or a symbolic link. Returns the object's
/// path.
fn make_parent_dirs(bucket_dir: &Path, key: &str) -> Result<PathBuf, DiskError> {
    let mut path = bucket_dir.to_path_buf();
    let segments: Vec<&str> = key.split('/').collect();
    let (last, folders) = segments.split_last().expect("split yields one segment");
    for (index, segment) in folders.iter().enumerate() {
        path.push(segment);
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(DiskError::KeyConflict {
                    key: key.to_string(),
                    other: segments[..=index].join("/"),
                });
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => fs::create_dir(&path)?,
            Err(error) => return Err(error.into()),
        }
    }
    path.push(last);
    Ok(path)
}

/// The path of `key` when every folder on the way is a real folder and the
/// key itself a regular file; `None` otherwise.
fn existing_file(bucket_dir: &Path, key: &str) -> io::Result<Option<PathBuf>> {
    walk_no_links(bucket_dir, key, |metadata| metadata.is_file())
}

/// The path of folder `key` when every segment is a real folder.
fn existing_dir(bucket_dir: &Path, key: &str) -> io::Result<Option<PathBuf>> {
    walk_no_links(bucket_dir, key, |metadata| metadata.is_dir())
}

fn walk_no_links(
    bucket_dir: &Path,
    key: &str,
    last_ok: impl Fn(&fs::Metadata) -> bool,
) -> io::Result<Option<PathBuf>> {
    let mut path = bucket_dir.to_path_buf();
    let mut segments = key.split('/').peekable();
    while let Some(segment) = segments.next() {
        path.push(segment);
        let metadata = match fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let fits = if segments.peek().is_some() {
            metadata.is_dir()
        } else {
            last_ok(&metadata)
        };
        if !fits {
            return Ok(None);
        }
    }
    Ok(Some(path))
}

/// Removes the now-empty folders between `path` and `stop` (exclusive).
fn remove_empty_parents(path: &Path, stop: &Path) {
    let mut current = path.parent();
    while let Some(dir) = current {
        if dir == stop || !dir.starts_with(stop) || fs::remove_dir(dir).is_err() {
            break;
        }
        current = dir.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> (tempfile::TempDir, Disk) {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::open(&dir.path().join("storage")).unwrap();
        assert!(disk.create_bucket("photos").unwrap());
        assert!(!disk.create_bucket("photos").unwrap());
        (dir, disk)
    }

    fn put(disk: &Disk, key: &str, bytes: &[u8]) -> Result<ObjectMeta, DiskError> {
        let temp = disk.temp_path();
        fs::write(&temp, bytes).unwrap();
        let result = disk.commit(
            "photos",
            key,
            &temp,
            NewObject {
                etag: hex::encode(Md5::digest(bytes)),
                content_type: Some("text/plain".into()),
                metadata: BTreeMap::from([("owner".into(), "ann".into())]),
            },
        );
        if result.is_err() {
            fs::remove_file(&temp).unwrap();
        }
        result
    }

    #[test]
    fn committed_objects_are_found_listed_and_deleted() {
        let (_dir, disk) = disk();
        for key in ["b.txt", "a/1.txt", "a/2.txt", "a/deep/3.txt", "ab"] {
            put(&disk, key, key.as_bytes()).unwrap();
        }
        let found = disk.object("photos", "a/1.txt").unwrap().unwrap();
        assert_eq!(found.meta.size, 7);
        assert_eq!(found.meta.etag, hex::encode(Md5::digest(b"a/1.txt")));
        assert_eq!(found.meta.content_type.as_deref(), Some("text/plain"));
        assert_eq!(found.meta.metadata["owner"], "ann");
        assert_eq!(
            disk.list_keys("photos", "").unwrap(),
            ["a/1.txt", "a/2.txt", "a/deep/3.txt", "ab", "b.txt"]
        );
        assert_eq!(
            disk.list_keys("photos", "a/").unwrap(),
            ["a/1.txt", "a/2.txt", "a/deep/3.txt"]
        );
        assert_eq!(disk.list_keys("photos", "a/d").unwrap(), ["a/deep/3.txt"]);
        assert_eq!(disk.list_keys("photos", "a").unwrap().len(), 4);
        assert!(disk.list_keys("photos", "zz/").unwrap().is_empty());

        assert!(disk.delete("photos", "a/deep/3.txt").unwrap());
        assert!(!disk.delete("photos", "a/deep/3.txt").unwrap());
        assert!(!disk.bucket_dir("photos").join("a/deep").exists());
        assert!(disk.object("photos", "a/deep/3.txt").unwrap().is_none());
        assert!(disk.object("photos", "a").unwrap().is_none(), "a folder");
    }

    #[test]
    fn a_key_and_a_folder_of_the_same_name_clash() {
        let (_dir, disk) = disk();
        put(&disk, "a/b", b"x").unwrap();
        let error = put(&disk, "a", b"y").unwrap_err().to_string();
        assert!(error.contains("clashes with `a/...`"), "{error}");
        put(&disk, "f", b"x").unwrap();
        let error = put(&disk, "f/g", b"y").unwrap_err().to_string();
        assert!(error.contains("clashes with `f`"), "{error}");
    }

    #[test]
    fn segments_of_up_to_255_bytes_are_stored_found_and_deleted() {
        let (_dir, disk) = disk();
        for length in [250, 251, 255] {
            let key = format!("a/{}", "k".repeat(length));
            put(&disk, &key, b"long").unwrap();
            let found = disk.object("photos", &key).unwrap().unwrap();
            assert_eq!(found.meta.content_type.as_deref(), Some("text/plain"));
            assert_eq!(
                disk.list_keys("photos", "a/").unwrap(),
                std::slice::from_ref(&key)
            );
            assert!(disk.delete("photos", &key).unwrap());
        }
        assert!(!disk.bucket_dir("photos").join("a").exists());
        put(&disk, "a", b"the key a is free").unwrap();
    }

    #[test]
    fn metadata_round_trips_through_the_attribute_in_either_form() {
        let compact = ObjectMeta {
            etag: hex::encode(Md5::digest(b"abc")),
            size: 3,
            modified_ns: 1_700_000_000_123_456_789,
            content_type: None,
            metadata: BTreeMap::new(),
        };
        let bytes = compact.to_attribute().unwrap();
        assert_eq!(bytes.len(), 33, "the usual object's fits inside an inode");
        assert_eq!(ObjectMeta::from_attribute(&bytes), Some(compact.clone()));
        // A content type, user metadata, or an eTag that is no plain
        // lowercase MD5 (a multipart upload's): JSON.
        let mut typed = compact.clone();
        typed.content_type = Some("image/png".into());
        let mut tagged = compact.clone();
        tagged.metadata.insert("owner".into(), "ann".into());
        let mut multipart = compact.clone();
        multipart.etag = format!("{}-2", compact.etag);
        let mut upper = compact.clone();
        upper.etag = compact.etag.to_uppercase();
        for meta in [typed, tagged, multipart, upper] {
            let bytes = meta.to_attribute().unwrap();
            assert_eq!(bytes[0], b'{', "{meta:?}");
            assert_eq!(ObjectMeta::from_attribute(&bytes), Some(meta));
        }
        for junk in [&b""[..], b"\x01short", b"x", b"{not json"] {
            assert_eq!(ObjectMeta::from_attribute(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn an_upload_makes_one_file_with_its_metadata_attached() {
        let (dir, disk) = disk();
        put(&disk, "a/b.txt", b"hello").unwrap();
        if !disk.attributes.load(Ordering::Relaxed) {
            eprintln!(
                "SKIPPED an_upload_makes_one_file_with_its_metadata_attached: this file system keeps no extended attributes"
            );
            return;
        }
        let storage = dir.path().join("storage");
        assert!(!storage.join(".meta/photos/a").exists(), "no sidecar");
        assert_eq!(fs::read_dir(storage.join(".tmp")).unwrap().count(), 0);
        let found = disk.object("photos", "a/b.txt").unwrap().unwrap();
        assert_eq!(found.meta.content_type.as_deref(), Some("text/plain"));
        assert_eq!(found.meta.metadata["owner"], "ann");
        assert_eq!(
            object_size_and_etag(&storage, "photos", "a/b.txt").unwrap(),
            Some((5, hex::encode(Md5::digest(b"hello"))))
        );
        assert!(disk.delete("photos", "a/b.txt").unwrap());
        assert!(disk.object("photos", "a/b.txt").unwrap().is_none());
    }

    #[test]
    fn without_extended_attributes_metadata_goes_in_sidecar_files() {
        let (dir, disk) = disk();
        disk.attributes.store(false, Ordering::Relaxed);
        put(&disk, "a/b.txt", b"hello").unwrap();
        let storage = dir.path().join("storage");
        let sidecar = storage.join(".meta/photos/a/b.txt.json");
        assert!(sidecar.is_file());
        let found = disk.object("photos", "a/b.txt").unwrap().unwrap();
        assert_eq!(found.meta.content_type.as_deref(), Some("text/plain"));
        // A disk that uses attributes reads sidecars too (objects stored
        // before attributes were used).
        let later = Disk::at(&storage).unwrap();
        let found = later.object("photos", "a/b.txt").unwrap().unwrap();
        assert_eq!(found.meta.metadata["owner"], "ann");
        assert!(later.delete("photos", "a/b.txt").unwrap());
        assert!(!sidecar.exists());
        assert!(!storage.join(".meta/photos/a").exists());
    }

    #[test]
    fn a_failed_commit_leaves_no_folder_and_an_empty_folder_blocks_no_key() {
        let (dir, disk) = disk();
        // Sidecar files (a file system without extended attributes).
        disk.attributes.store(false, Ordering::Relaxed);
        // The sidecar's folder cannot be made: a file is in its way.
        let meta = dir.path().join("storage/.meta/photos");
        fs::create_dir_all(&meta).unwrap();
        fs::write(meta.join("a"), b"in the way").unwrap();
        assert!(put(&disk, "a/b/c", b"x").is_err());
        assert!(!disk.bucket_dir("photos").join("a").exists());
        fs::remove_file(meta.join("a")).unwrap();
        // An empty folder (a mount's leftover) gives way to an object.
        fs::create_dir_all(disk.bucket_dir("photos").join("empty")).unwrap();
        put(&disk, "empty", b"y").unwrap();
        assert_eq!(disk.list_keys("photos", "").unwrap(), ["empty"]);
    }

    #[test]
    fn a_file_changed_behind_s3s_back_gets_a_fresh_etag() {
        let (_dir, disk) = disk();
        put(&disk, "note", b"old").unwrap();
        fs::write(disk.bucket_dir("photos").join("note"), b"brand new").unwrap();
        fs::write(disk.bucket_dir("photos").join("guest-made"), b"hi").unwrap();
        let found = disk.object("photos", "note").unwrap().unwrap();
        assert_eq!(found.meta.etag, hex::encode(Md5::digest(b"brand new")));
        assert_eq!(found.meta.size, 9);
        let found = disk.object("photos", "guest-made").unwrap().unwrap();
        assert_eq!(found.meta.etag, hex::encode(Md5::digest(b"hi")));
        assert_eq!(found.meta.content_type, None);
    }

    #[cfg(unix)]
    #[test]
    fn concurrent_folder_syncs_share_rounds_and_all_return() {
        let dir = tempfile::tempdir().unwrap();
        let folders = [dir.path().join("a"), dir.path().join("b")];
        for folder in &folders {
            fs::create_dir(folder).unwrap();
        }
        let syncs = FolderSyncs::default();
        let calls = 8 * 25;
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let (syncs, folders) = (&syncs, &folders);
                scope.spawn(move || {
                    for call in 0..25 {
                        syncs.sync(&folders[(thread + call) % 2]);
                    }
                });
            }
        });
        let state = syncs.state.lock().unwrap();
        assert!(state.wanted.is_empty());
        assert_eq!(state.begun, state.finished, "no round left running");
        assert!(
            (1..=calls).contains(&state.finished),
            "{} rounds for {calls} calls",
            state.finished
        );
    }

    #[test]
    fn symbolic_links_are_not_followed() {
        let (dir, disk) = disk();
        let secret = dir.path().join("secret");
        fs::write(&secret, b"top secret").unwrap();
        let bucket = disk.bucket_dir("photos");
        std::os::unix::fs::symlink(&secret, bucket.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), bucket.join("up")).unwrap();
        assert!(disk.object("photos", "link").unwrap().is_none());
        assert!(disk.object("photos", "up/secret").unwrap().is_none());
        assert!(disk.list_keys("photos", "").unwrap().is_empty());
        assert!(disk.list_keys("photos", "up/").unwrap().is_empty());
        let error = put(&disk, "up/secret", b"overwrite")
            .unwrap_err()
            .to_string();
        assert!(error.contains("clashes with `up`"), "{error}");
        assert_eq!(fs::read(&secret).unwrap(), b"top secret");
    }
}
