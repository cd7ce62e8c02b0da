//! Watched folders: `notify` watches a host folder (not its subfolders);
//! a file becomes one event once it is completely written.
//!
//! "Completely written" means: renamed into the folder (the safe way to
//! drop a file: write elsewhere or under a hidden `.name`, then rename), or
//! its size and modification time unchanged for [`QUIET_PERIOD`] (checked
//! by polling the file's metadata, so a writer that pauses longer than
//! that is taken as done). Names starting with `.` are ignored, as are
//! names the trigger's `pattern` does not match.
//!
//! Each version of a file (path, size, modification time) becomes an event
//! once, across restarts: the queue remembers it in the same transaction
//! as the event. Files already in the folder at start are left alone
//! unless `process_existing = true`. Reading a file, or changing only its
//! permissions, is not a change ([`seen_change`]).
//!
//! A watched folder must exist (Kumo never creates one) and lie under one
//! of the roots the operator allows ([`WatchRoots`], `--watch-root`), so a
//! trigger made through the admin API cannot watch, or list the names in,
//! any folder of the host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use chrono::{DateTime, Utc};
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};

use crate::events::Events;
use crate::events::document::{self, FileChange};
use crate::events::queue::{self, FileVersion, NewEvent};
use crate::model::WatchTrigger;

/// How long a file's size and modification time must stay the same before
/// it counts as written.
pub(crate) const QUIET_PERIOD: Duration = Duration::from_millis(500);

/// How often files still being written are looked at.
const POLL: Duration = Duration::from_millis(100);

/// The folders under which watch triggers may watch, canonical (symbolic
/// links resolved), from `--watch-root` (by default the server's working
/// directory and, for `kumo up`, the manifest's folder).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WatchRoots(Vec<PathBuf>);

/// Why a folder cannot be watched.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WatchFolderError {
    #[error(
        "the folder {path} does not exist; hint: create it first (Kumo never creates a watched folder)"
    )]
    Missing { path: PathBuf },
    #[error("{path} is not a folder; hint: point `path` at a folder")]
    NotAFolder { path: PathBuf },
    #[error(
        "the folder {path} is outside the folders Kumo may watch ({roots}); hint: start the server with --watch-root {path} to allow it"
    )]
    OutsideRoots { path: PathBuf, roots: String },
}

impl WatchRoots {
    /// The roots, each resolved to its canonical path.
    ///
    /// # Errors
    ///
    /// A root that does not exist or cannot be resolved, named.
    pub(crate) fn new(roots: &[PathBuf]) -> anyhow::Result<Self> {
        let mut canonical = Vec::new();
        for root in roots {
            let resolved = std::fs::canonicalize(root).with_context(|| {
                format!(
                    "--watch-root {}: no such folder; hint: create it, or leave the flag out to allow the working directory",
                    root.display()
                )
            })?;
            if !canonical.contains(&resolved) {
                canonical.push(resolved);
            }
        }
        Ok(Self(canonical))
    }

    /// The folder `path` resolves to, if it is an existing folder under one
    /// of the roots (after symbolic links are followed, so a link cannot
    /// lead out).
    ///
    /// # Errors
    ///
    /// [`WatchFolderError`]: missing, not a folder, or outside every root.
    pub(crate) fn check(&self, path: &Path) -> Result<PathBuf, WatchFolderError> {
        let folder = std::fs::canonicalize(path).map_err(|_| WatchFolderError::Missing {
            path: path.to_path_buf(),
        })?;
        if !folder.is_dir() {
            return Err(WatchFolderError::NotAFolder {
                path: path.to_path_buf(),
            });
        }
        if self.0.iter().any(|root| folder.starts_with(root)) {
            Ok(folder)
        } else {
            Err(WatchFolderError::OutsideRoots {
                path: path.to_path_buf(),
                roots: self
                    .0
                    .iter()
                    .map(|root| root.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
}

/// What a file-system event says about a file in a watched folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeenChange {
    /// Created or written: complete once quiet.
    Written,
    /// Renamed into the folder: complete at once.
    RenamedIn,
    /// Gone from the folder (removed, or renamed away).
    Gone,
    /// Not a change of the file's content: read, opened, closed after
    /// reading, permissions or owner changed.
    Nothing,
}

/// Classifies a `notify` event. Only creates, writes and renames into the
/// folder count: `cat` on an old file reports an open, a read and a close,
/// and none of them is a change.
pub(crate) fn seen_change(kind: &EventKind) -> SeenChange {
    match kind {
        EventKind::Create(_) => SeenChange::Written,
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
            SeenChange::RenamedIn
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
            SeenChange::Gone
        }
        EventKind::Modify(ModifyKind::Metadata(_)) => SeenChange::Nothing,
        EventKind::Modify(_) => SeenChange::Written,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => SeenChange::Written,
        EventKind::Access(_) | EventKind::Other => SeenChange::Nothing,
        // A backend that cannot say what happened: look at the file.
        EventKind::Any => SeenChange::Written,
    }
}

/// What is known of a file's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    pub(crate) size: u64,
    /// Its modification time.
    pub(crate) modified: SystemTime,
}

#[derive(Debug)]
struct Settling {
    stat: FileStat,
    /// When the metadata last changed.
    since: Instant,
    /// Renamed into the folder: complete at once.
    renamed: bool,
}

/// Files being written, until they are quiet: a pure state machine driven
/// by observations and an injected clock.
#[derive(Debug)]
pub(crate) struct Debouncer {
    quiet: Duration,
    files: HashMap<PathBuf, Settling>,
}

impl Debouncer {
    /// Files count as written after `quiet` without a change.
    pub(crate) fn new(quiet: Duration) -> Self {
        Self {
            quiet,
            files: HashMap::new(),
        }
    }

    /// `path` was seen with `stat` at `now` (an event, or a poll).
    pub(crate) fn observe(&mut self, path: &Path, stat: FileStat, now: Instant) {
        match self.files.get_mut(path) {
            Some(settling) if settling.stat == stat => {}
            Some(settling) => {
                settling.stat = stat;
                settling.since = now;
            }
            None => {
                self.files.insert(
                    path.to_path_buf(),
                    Settling {
                        stat,
                        since: now,
                        renamed: false,
                    },
                );
            }
        }
    }

    /// `path` was renamed into the folder with `stat`: complete.
    pub(crate) fn renamed_in(&mut self, path: &Path, stat: FileStat, now: Instant) {
        self.files.insert(
            path.to_path_buf(),
            Settling {
                stat,
                since: now,
                renamed: true,
            },
        );
    }

    /// `path` is gone.
    pub(crate) fn forget(&mut self, path: &Path) {
        self.files.remove(path);
    }

    /// The files being watched, to poll their metadata.
    pub(crate) fn pending(&self) -> Vec<PathBuf> {
        self.files.keys().cloned().collect()
    }

    /// Removes and returns the files that are complete at `now`.
    pub(crate) fn take_ready(&mut self, now: Instant) -> Vec<(PathBuf, FileStat)> {
        let quiet = self.quiet;
        let ready: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(_, settling)| {
                settling.renamed || now.saturating_duration_since(settling.since) >= quiet
            })
            .map(|(path, _)| path.clone())
            .collect();
        let mut ready: Vec<(PathBuf, FileStat)> = ready
            .into_iter()
            .map(|path| {
                let settling = self.files.remove(&path).expect("listed just above");
                (path, settling.stat)
            })
            .collect();
        ready.sort_by(|a, b| a.0.cmp(&b.0));
        ready
    }
}

/// The running watchers.
pub(crate) struct Watchers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watchers {
    /// One set of watchers out of several.
    pub(crate) fn join(parts: Vec<Watchers>) -> Watchers {
        Watchers {
            tasks: parts.into_iter().flat_map(|part| part.tasks).collect(),
        }
    }

    /// Stops every watcher.
    pub(crate) fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Starts watching each trigger's folder, which must exist under one of
/// `roots` (`path` is absolute: control resolves it).
///
/// # Errors
///
/// A folder that is missing, outside the roots, or cannot be watched,
/// named.
pub(crate) fn start_watchers(
    events: Arc<Events>,
    roots: &WatchRoots,
    triggers: Vec<WatchTrigger>,
) -> anyhow::Result<Watchers> {
    let mut tasks = Vec::new();
    for trigger in triggers {
        let folder = roots
            .check(&trigger.path)
            .with_context(|| format!("watch trigger `{}`", trigger.name))?;
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = sender.send(event);
        })
        .with_context(|| format!("watch trigger `{}`: cannot start a watcher", trigger.name))?;
        watcher
            .watch(&folder, RecursiveMode::NonRecursive)
            .with_context(|| {
                format!(
                    "watch trigger `{}`: cannot watch {}; hint: check the folder's permissions and the inotify limits",
                    trigger.name,
                    folder.display()
                )
            })?;
        tracing::info!(trigger = %trigger.name, folder = %folder.display(), function = %trigger.function, "watching folder");
        let events = events.clone();
        tasks.push(tokio::spawn(async move {
            // The watcher lives as long as its task.
            let _watcher = watcher;
            run_watch(events, trigger, folder, receiver).await;
        }));
    }
    Ok(Watchers { tasks })
}

fn stat(path: &Path) -> Option<FileStat> {
    let metadata = std::fs::metadata(path).ok()?;
    metadata.is_file().then(|| FileStat {
        size: metadata.len(),
        modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    })
}

async fn run_watch(
    events: Arc<Events>,
    trigger: WatchTrigger,
    folder: PathBuf,
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
) {
    let mut debouncer = Debouncer::new(QUIET_PERIOD);
    let wanted = |path: &Path| {
        path.parent() == Some(folder.as_path())
            && path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| trigger.wants_file_name(name))
    };
    if trigger.process_existing
        && let Ok(entries) = std::fs::read_dir(&folder)
    {
        let now = Instant::now();
        for entry in entries.flatten() {
            let path = entry.path();
            if wanted(&path)
                && let Some(stat) = stat(&path)
            {
                debouncer.observe(&path, stat, now);
            }
        }
    }
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = receiver.recv() => {
                let Some(event) = event else { return };
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::warn!(trigger = %trigger.name, %error, "watch error");
                        continue;
                    }
                };
                let now = Instant::now();
                let change = seen_change(&event.kind);
                if change == SeenChange::Nothing {
                    continue;
                }
                // For a rename within the folder (`Both`), the last path is
                // the new name.
                let paths: Vec<&PathBuf> = if matches!(event.kind, EventKind::Modify(ModifyKind::Name(RenameMode::Both))) {
                    event.paths.last().into_iter().collect()
                } else {
                    event.paths.iter().collect()
                };
                for path in paths {
                    if !wanted(path) {
                        continue;
                    }
                    match (change, stat(path)) {
                        (SeenChange::Gone, _) | (_, None) => debouncer.forget(path),
                        (SeenChange::RenamedIn, Some(stat)) => debouncer.renamed_in(path, stat, now),
                        (_, Some(stat)) => debouncer.observe(path, stat, now),
                    }
                }
            }
            _ = poll.tick() => {
                let now = Instant::now();
                for path in debouncer.pending() {
                    match stat(&path) {
                        Some(stat) => debouncer.observe(&path, stat, now),
                        None => debouncer.forget(&path),
                    }
                }
                for (path, stat) in debouncer.take_ready(now) {
                    enqueue(&events, &trigger, &folder, &path, stat).await;
                }
            }
        }
    }
}

async fn enqueue(
    events: &Events,
    trigger: &WatchTrigger,
    folder: &Path,
    path: &Path,
    stat: FileStat,
) {
    let relative = path
        .strip_prefix(folder)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/");
    let modified: DateTime<Utc> = stat.modified.into();
    let file = FileChange {
        folder: folder.display().to_string(),
        path: relative.clone(),
        size: stat.size,
        modified,
        time: Utc::now(),
    };
    let event = NewEvent {
        id: queue::new_event_id(),
        trigger_id: queue::trigger_id(queue::EventKind::Watch, &trigger.name),
        target: trigger.function.to_string(),
        kind: queue::EventKind::Watch,
        document: document::file_event(&trigger.name, &file),
        retry: trigger.retry(),
        hops: 0,
        dead_reason: None,
        call: None,
    };
    let version = FileVersion {
        path: relative,
        size: stat.size,
        mtime_ns: modified.timestamp_nanos_opt().unwrap_or_default(),
    };
    match queue::insert_file_event_once(
        events.database(),
        &event,
        &version,
        Utc::now().timestamp_millis(),
    )
    .await
    {
        Ok(true) => {
            tracing::info!(trigger = %trigger.name, path = %version.path, size = stat.size, event = %event.id, "file event enqueued");
            events.wake_delivery();
        }
        Ok(false) => {
            tracing::debug!(trigger = %trigger.name, path = %version.path, "file already had its event")
        }
        Err(error) => {
            tracing::error!(trigger = %trigger.name, path = %version.path, %error, "cannot enqueue the file's event")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind};

    #[test]
    fn only_creates_writes_and_renames_in_are_changes() {
        let cases = [
            (EventKind::Create(CreateKind::File), SeenChange::Written),
            (
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                SeenChange::Written,
            ),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                SeenChange::Written,
            ),
            (
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                SeenChange::RenamedIn,
            ),
            (
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                SeenChange::RenamedIn,
            ),
            (
                EventKind::Modify(ModifyKind::Name(RenameMode::From)),
                SeenChange::Gone,
            ),
            (EventKind::Remove(RemoveKind::File), SeenChange::Gone),
            // `cat`: open, read, close after reading.
            (
                EventKind::Access(AccessKind::Open(AccessMode::Read)),
                SeenChange::Nothing,
            ),
            (EventKind::Access(AccessKind::Read), SeenChange::Nothing),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                SeenChange::Nothing,
            ),
            // `chmod`, `chown`.
            (
                EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
                SeenChange::Nothing,
            ),
            (EventKind::Other, SeenChange::Nothing),
        ];
        for (kind, expected) in cases {
            assert_eq!(seen_change(&kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn a_watched_folder_must_exist_under_a_root_after_links_are_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("inbox")).unwrap();
        std::fs::write(root.path().join("file"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        std::os::unix::fs::symlink(root.path().join("inbox"), outside.path().join("in")).unwrap();
        let roots = WatchRoots::new(&[root.path().to_path_buf()]).unwrap();
        let inbox = root.path().join("inbox");
        assert_eq!(
            roots.check(&inbox).unwrap(),
            std::fs::canonicalize(&inbox).unwrap()
        );
        // A link from outside into the root is fine: where it leads counts.
        assert!(roots.check(&outside.path().join("in")).is_ok());
        let cases: [(PathBuf, &str); 5] = [
            (root.path().join("missing"), "does not exist"),
            (root.path().join("file"), "is not a folder"),
            (root.path().join("out"), "outside the folders"),
            (root.path().join("inbox/../out"), "outside the folders"),
            ("/etc".into(), "--watch-root /etc"),
        ];
        for (path, expected) in cases {
            let error = roots.check(&path).unwrap_err().to_string();
            assert!(error.contains(expected), "{}: {error}", path.display());
        }
        assert!(!root.path().join("missing").exists());
        assert!(WatchRoots::new(&[root.path().join("nope")]).is_err());
    }

    fn stat(size: u64, modified_s: u64) -> FileStat {
        FileStat {
            size,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(modified_s),
        }
    }

    #[test]
    fn a_file_is_ready_once_quiet_for_the_period() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut debouncer = Debouncer::new(Duration::from_millis(500));
        let a = Path::new("/in/a.txt");
        debouncer.observe(a, stat(10, 1), ms(0));
        assert!(debouncer.take_ready(ms(499)).is_empty());
        // Still growing: the quiet period starts over.
        debouncer.observe(a, stat(20, 1), ms(400));
        assert!(debouncer.take_ready(ms(600)).is_empty());
        // Same metadata seen again does not reset it.
        debouncer.observe(a, stat(20, 1), ms(800));
        // A touch (same size, new time) does.
        debouncer.observe(a, stat(20, 2), ms(850));
        assert!(debouncer.take_ready(ms(1300)).is_empty());
        assert_eq!(
            debouncer.take_ready(ms(1350)),
            vec![(a.to_path_buf(), stat(20, 2))]
        );
        // Taken once.
        assert!(debouncer.take_ready(ms(5000)).is_empty());
        assert!(debouncer.pending().is_empty());
    }

    #[test]
    fn a_rename_into_the_folder_is_ready_at_once_and_a_removal_is_dropped() {
        let start = Instant::now();
        let mut debouncer = Debouncer::new(Duration::from_millis(500));
        let (a, b) = (Path::new("/in/a.txt"), Path::new("/in/b.txt"));
        debouncer.renamed_in(a, stat(5, 1), start);
        debouncer.observe(b, stat(5, 1), start);
        assert_eq!(
            debouncer.take_ready(start),
            vec![(a.to_path_buf(), stat(5, 1))]
        );
        debouncer.forget(b);
        assert!(
            debouncer
                .take_ready(start + Duration::from_secs(10))
                .is_empty()
        );
    }

    #[test]
    fn ready_files_come_out_in_path_order() {
        let start = Instant::now();
        let mut debouncer = Debouncer::new(Duration::ZERO);
        for name in ["c", "a", "b"] {
            debouncer.observe(Path::new(name), stat(1, 1), start);
        }
        let ready: Vec<PathBuf> = debouncer
            .take_ready(start)
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert_eq!(ready, [Path::new("a"), Path::new("b"), Path::new("c")]);
    }
}
