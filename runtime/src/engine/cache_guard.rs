//! Checking wasmtime's compile cache before its machine code runs.
//!
//! wasmtime's cache (`<cache>/modules/<compiler>/<key>`) holds compiled
//! code, zstd-compressed; wasmtime loads an entry as it is, so an entry
//! with flipped bits that still decompresses is executed, and crashes the
//! process (SIGSEGV, SIGTRAP) on every start. Kumo therefore keeps a keyed
//! digest (HMAC-SHA256) of every entry it saw written, apart from the entry
//! (`<cache>/digests/`), under a key of its own (`<data-dir>/cache-key`,
//! never in the cache folder). Before every compile, any entry whose digest
//! is missing or differs is logged and removed, and wasmtime compiles the
//! component again; after every compile, new entries get their digest.
//!
//! Entries are hashed once per process (again only when their size or
//! modification time change), so a compile costs one directory listing.
//! wasmtime's background recompression, which rewrites entries, is turned
//! off where the cache is configured (`engine/mod.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::Context;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The key's length in bytes.
const KEY_BYTES: usize = 32;

/// How far a file's modification time may lag the clock.
const CLOCK_SLACK: std::time::Duration = std::time::Duration::from_secs(2);

/// What was last verified of an entry: its size and modification time.
type Seen = (u64, SystemTime);

/// The compile cache's keeper: verifies entries before a compile and
/// records digests after it.
pub(super) struct CacheGuard {
    /// `<cache>/modules`: wasmtime's entries, one folder per compiler.
    modules: PathBuf,
    /// `<cache>/digests`: the same layout, one hex digest per entry.
    digests: PathBuf,
    key: [u8; KEY_BYTES],
    /// Entries verified (or written) by this process.
    verified: Mutex<HashMap<PathBuf, Seen>>,
    /// When this process started using the cache: an entry without a
    /// digest that is older was not written by it, and is not trusted.
    started: SystemTime,
}

impl CacheGuard {
    /// Opens the guard of `cache_dir`, reading the key from `key_file` (or
    /// making one there, readable by the owner only).
    ///
    /// # Errors
    ///
    /// The key file cannot be read or written.
    pub(super) fn open(cache_dir: &Path, key_file: &Path) -> anyhow::Result<Self> {
        let key = read_or_create_key(key_file)?;
        Ok(Self {
            modules: cache_dir.join("modules"),
            digests: cache_dir.join("digests"),
            key,
            verified: Mutex::new(HashMap::new()),
            // File times come from a coarser clock than `now()`: an entry
            // written a moment after this may carry an earlier time.
            started: SystemTime::now() - CLOCK_SLACK,
        })
    }

    /// Removes every entry that is not known good: a digest that differs,
    /// or no digest at all for an entry older than this process. Returns
    /// how many were removed.
    pub(super) fn remove_bad_entries(&self) -> usize {
        let mut removed = 0;
        for entry in self.entries() {
            let Some(seen) = seen(&entry) else { continue };
            if self.is_verified(&entry, seen) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&entry) else {
                continue;
            };
            match std::fs::read_to_string(self.digest_path(&entry)) {
                Ok(stored) if stored.trim() == self.digest(&bytes) => {
                    self.mark_verified(entry, seen);
                }
                Ok(_) => {
                    tracing::warn!(entry = %entry.display(), "compile cache entry does not match its digest (corrupted or changed on disk); removed, the component compiles again");
                    removed += usize::from(self.remove(&entry));
                }
                // An entry written since this process started is one of its
                // own compiles, whose digest is recorded when it returns.
                Err(_) if seen.1 >= self.started => {}
                Err(_) => {
                    tracing::warn!(entry = %entry.display(), "compile cache entry has no digest (written by another program, or cut short); removed, the component compiles again");
                    removed += usize::from(self.remove(&entry));
                }
            }
        }
        removed
    }

    /// Records the digest of every entry that has none (those a compile
    /// just wrote).
    pub(super) fn record_new_entries(&self) {
        for entry in self.entries() {
            let Some(seen) = seen(&entry) else { continue };
            let digest_path = self.digest_path(&entry);
            if digest_path.exists() {
                continue;
            }
            let Ok(bytes) = std::fs::read(&entry) else {
                continue;
            };
            let written = digest_path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| write_atomically(&digest_path, self.digest(&bytes).as_bytes()));
            match written {
                Ok(()) => self.mark_verified(entry, seen),
                Err(error) => {
                    tracing::warn!(entry = %entry.display(), %error, "cannot record the digest of a compile cache entry; it will be compiled again next time")
                }
            }
        }
    }

    /// The cache entries: files without an extension, one folder down
    /// (wasmtime's `.stats` files and `.wip-*` partial writes are not code).
    fn entries(&self) -> Vec<PathBuf> {
        let Ok(compilers) = std::fs::read_dir(&self.modules) else {
            return Vec::new();
        };
        let mut entries = Vec::new();
        for compiler in compilers.flatten() {
            let Ok(files) = std::fs::read_dir(compiler.path()) else {
                continue;
            };
            entries.extend(
                files
                    .flatten()
                    .map(|file| file.path())
                    .filter(|path| path.extension().is_none() && path.is_file()),
            );
        }
        entries
    }

    fn digest_path(&self, entry: &Path) -> PathBuf {
        let relative = entry.strip_prefix(&self.modules).unwrap_or(entry);
        self.digests.join(relative)
    }

    fn digest(&self, bytes: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(bytes);
        hex::encode(mac.finalize().into_bytes())
    }

    fn is_verified(&self, entry: &Path, seen: Seen) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(entry)
            == Some(&seen)
    }

    fn mark_verified(&self, entry: PathBuf, seen: Seen) {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(entry, seen);
    }

    /// Removes an entry, its statistics and its digest; whether it went.
    fn remove(&self, entry: &Path) -> bool {
        let _ = std::fs::remove_file(entry.with_extension("stats"));
        let _ = std::fs::remove_file(self.digest_path(entry));
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(entry);
        match std::fs::remove_file(entry) {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(entry = %entry.display(), %error, "cannot remove a bad compile cache entry; hint: delete the cache folder by hand");
                false
            }
        }
    }
}

fn seen(path: &Path) -> Option<Seen> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok()?))
}

fn read_or_create_key(key_file: &Path) -> anyhow::Result<[u8; KEY_BYTES]> {
    if let Ok(text) = std::fs::read_to_string(key_file)
        && let Ok(bytes) = hex::decode(text.trim())
        && let Ok(key) = <[u8; KEY_BYTES]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    // Two random UUIDs: 244 random bits.
    let mut key = [0u8; KEY_BYTES];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    write_atomically(key_file, hex::encode(key).as_bytes()).with_context(|| {
        format!(
            "cannot write the compile cache key {}; hint: is the data directory writable?",
            key_file.display()
        )
    })?;
    Ok(key)
}

/// Writes `contents` to a file beside `path` (owner-only) and renames it
/// into place, so a reader never sees half of it.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cache: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = cache.join("modules/wasmtime-48").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn entries_changed_on_disk_or_without_a_digest_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let key = dir.path().join("cache-key");
        let guard = CacheGuard::open(&cache, &key).unwrap();
        let good = entry(&cache, "aaaa", b"compiled code");
        let flipped = entry(&cache, "bbbb", b"other code");
        let stats = entry(&cache, "aaaa.stats", b"usage");
        // Written during this process: trusted until its digest is recorded.
        assert_eq!(guard.remove_bad_entries(), 0);
        guard.record_new_entries();
        assert!(cache.join("digests/wasmtime-48/aaaa").is_file());
        assert!(!cache.join("digests/wasmtime-48/aaaa.stats").exists());

        // A later process with the same key: one entry's bits flipped, one
        // dropped in by someone else (no digest).
        std::fs::write(&flipped, b"other codf").unwrap();
        let foreign = entry(&cache, "cccc", b"foreign code");
        let later = CacheGuard {
            started: SystemTime::now() + std::time::Duration::from_secs(3600),
            ..CacheGuard::open(&cache, &key).unwrap()
        };
        assert_eq!(later.remove_bad_entries(), 2);
        assert!(good.is_file() && stats.is_file());
        assert!(!flipped.exists() && !foreign.exists());
        assert!(!cache.join("digests/wasmtime-48/bbbb").exists());

        // A process with another key trusts nothing it cannot check.
        std::fs::remove_file(&key).unwrap();
        let other = CacheGuard {
            started: SystemTime::now() + std::time::Duration::from_secs(3600),
            ..CacheGuard::open(&cache, &key).unwrap()
        };
        assert_eq!(other.remove_bad_entries(), 1);
        assert!(!good.exists());
    }

    #[test]
    fn the_key_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cache-key");
        let first = read_or_create_key(&key).unwrap();
        assert_eq!(read_or_create_key(&key).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
