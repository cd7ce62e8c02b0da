//! `kumo dev`: `kumo up`, plus a watcher that redeploys a function whenever
//! its component file changes (and, with `--build`, rebuilds first when a
//! source file under the manifest's folder changes). A failed build or a
//! broken component is printed and the previous version keeps serving.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};

use super::UpArgs;
use crate::control::Control;
use crate::manifest::Manifest;

/// How long the files must be quiet before a change is acted on (editors
/// and compilers write in several steps).
const QUIET: Duration = Duration::from_millis(150);

pub(super) async fn run(args: UpArgs) -> anyhow::Result<()> {
    let (prepared, manifest) = super::up::start_with_manifest(&args).await?;
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && is_write(&event.kind)
        {
            let _ = events_tx.send(event.paths);
        }
    })
    .map_err(|error| anyhow::anyhow!("cannot watch files: {error}"))?;
    let watched = watch_list(&manifest, args.build);
    for (path, mode) in &watched {
        watcher.watch(path, *mode).map_err(|error| {
            anyhow::anyhow!(
                "cannot watch {}: {error}; hint: does the folder exist? build the functions first",
                path.display()
            )
        })?;
    }
    println!(
        "kumo dev: watching {} for changes",
        watched
            .iter()
            .map(|(path, _)| std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let control = prepared.control.clone();
    let data_dir = prepared.data_dir.clone();
    let build = args.build;
    tokio::spawn(async move {
        redeploy_on_change(control, manifest, build, data_dir, events_rx, watcher).await;
    });
    prepared.serve().await
}

/// The folders to watch: each component's folder, and with `build` the
/// manifest's folder, recursively.
fn watch_list(manifest: &Manifest, build: bool) -> Vec<(PathBuf, RecursiveMode)> {
    let mut folders: BTreeSet<PathBuf> = manifest
        .functions
        .values()
        .filter_map(|spec| spec.source.parent().map(Path::to_path_buf))
        .collect();
    let mut list = Vec::new();
    if build && manifest.functions.values().any(|spec| spec.build.is_some()) {
        let root = manifest.folder().to_path_buf();
        folders.retain(|folder| !folder.starts_with(&root));
        list.push((root, RecursiveMode::Recursive));
    }
    list.extend(
        folders
            .into_iter()
            .map(|folder| (folder, RecursiveMode::NonRecursive)),
    );
    list
}

/// Whether a file event changed something. Reading a file is not a change:
/// a build reads every source file, and counting its reads would start the
/// next build, forever.
fn is_write(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// Folders that hold what builds and tools write, never sources.
const BUILD_OUTPUT_FOLDERS: [&str; 4] = ["target", ".git", "node_modules", "__pycache__"];

/// The extensions of source files: Rust, WIT, manifests, Python,
/// JavaScript and TypeScript.
const SOURCE_EXTENSIONS: [&str; 9] = ["rs", "wit", "toml", "py", "js", "mjs", "cjs", "ts", "mts"];

/// Whether a changed path is source code a build would read (not build
/// output, not Kumo's own data).
fn is_source_change(path: &Path, data_dir: &Path) -> bool {
    if path.starts_with(data_dir)
        || path.components().any(|part| {
            matches!(part, Component::Normal(name) if BUILD_OUTPUT_FOLDERS.iter().any(|folder| name == *folder))
        })
    {
        return false;
    }
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("");
    name == "Cargo.toml"
        || name == "Cargo.lock"
        || Path::new(name)
            .extension()
            .and_then(|extension| extension.to_str())
            .is_some_and(|extension| SOURCE_EXTENSIONS.contains(&extension))
}

async fn redeploy_on_change(
    control: Arc<Control>,
    manifest: Manifest,
    build: bool,
    data_dir: PathBuf,
    mut events: tokio::sync::mpsc::UnboundedReceiver<Vec<PathBuf>>,
    _watcher: notify::RecommendedWatcher,
) {
    let sources: BTreeSet<PathBuf> = manifest
        .functions
        .values()
        .map(|spec| std::path::absolute(&spec.source).unwrap_or_else(|_| spec.source.clone()))
        .collect();
    while let Some(first) = events.recv().await {
        // Gather the burst until the files are quiet.
        let mut changed: Vec<PathBuf> = first;
        while let Ok(Some(more)) = tokio::time::timeout(QUIET, events.recv()).await {
            changed.extend(more);
        }
        let source_changed = build && changed.iter().any(|path| is_source_change(path, &data_dir));
        let component_changed = changed.iter().any(|path| sources.contains(path));
        if !source_changed && !component_changed {
            continue;
        }
        if source_changed {
            let to_build = manifest.clone();
            let built =
                tokio::task::spawn_blocking(move || super::build::run_builds(&to_build)).await;
            match built {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    println!(
                        "kumo dev: build failed, still serving the previous versions: {error:#}; waiting for the next change"
                    );
                    continue;
                }
                Err(error) => {
                    println!("kumo dev: build task failed: {error}");
                    continue;
                }
            }
            // The build's own writes (under `target/`, and the components,
            // redeployed below) are not source changes; a save made during
            // the build is still queued and starts the next one.
        }
        for spec in manifest.functions.values() {
            let started = Instant::now();
            let wasm = match tokio::fs::read(&spec.source).await {
                Ok(wasm) => wasm,
                Err(error) => {
                    println!(
                        "kumo dev: {}: cannot read {}: {error}; still serving the previous version",
                        spec.name,
                        spec.source.display()
                    );
                    continue;
                }
            };
            match control
                .deploy(
                    &spec.name,
                    &spec.source.display().to_string(),
                    wasm.into(),
                    spec.config.clone(),
                )
                .await
            {
                Ok(deployed) if deployed.created => println!(
                    "kumo dev: {} redeployed as version {} in {:.0} ms",
                    spec.name,
                    deployed.version.version,
                    started.elapsed().as_secs_f64() * 1000.0
                ),
                Ok(_) => {}
                Err(error) => println!(
                    "kumo dev: {}: not deployed, still serving the previous version: {error}",
                    spec.name
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading a source file (as every build does) must not count as a
    /// change; writing one must. Uses the real watcher: the marker file is
    /// written last, so once its event arrives every event of the reads
    /// before it has arrived too.
    #[test]
    fn reads_are_not_changes_but_writes_are() {
        let folder = tempfile::tempdir().unwrap();
        let source = folder.path().join("lib.rs");
        std::fs::write(&source, "fn main() {}\n").unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let _ = sender.send(event.unwrap());
            })
            .unwrap();
        watcher
            .watch(folder.path(), RecursiveMode::Recursive)
            .unwrap();

        for _ in 0..3 {
            assert_eq!(std::fs::read_to_string(&source).unwrap(), "fn main() {}\n");
        }
        let marker = folder.path().join("marker.rs");
        std::fs::write(&marker, "// saved\n").unwrap();

        let mut seen_read = false;
        let mut changed = Vec::new();
        loop {
            let event = receiver
                .recv_timeout(Duration::from_secs(30))
                .expect("the watcher reports the marker's write");
            seen_read |= event.paths.contains(&source);
            if is_write(&event.kind) {
                changed.extend(event.paths.clone());
            }
            if is_write(&event.kind) && event.paths.contains(&marker) {
                break;
            }
        }
        assert!(seen_read, "the watcher saw no event for the reads at all");
        assert!(
            !changed.contains(&source),
            "reading {} counted as a change: {changed:?}",
            source.display()
        );
    }

    #[test]
    fn sources_of_every_language_are_changes_and_build_output_is_not() {
        let data = Path::new("/p/.kumo");
        let cases = [
            ("/p/src/lib.rs", true),
            ("/p/app.py", true),
            ("/p/app.js", true),
            ("/p/lib/util.mjs", true),
            ("/p/wit/world.wit", true),
            ("/p/kumo.toml", true),
            ("/p/Cargo.lock", true),
            ("/p/hi.wasm", false),
            ("/p/README.md", false),
            ("/p/package-lock.json", false),
            ("/p/target/debug/build.rs", false),
            ("/p/node_modules/x/index.js", false),
            ("/p/kumo/__pycache__/http.cpython-314.py", false),
            ("/p/.kumo/artifacts/a.toml", false),
        ];
        for (path, expected) in cases {
            assert_eq!(is_source_change(Path::new(path), data), expected, "{path}");
        }
    }

    #[test]
    fn event_kinds_that_are_changes() {
        use notify::event::{CreateKind, DataChange, ModifyKind, RemoveKind};
        let cases = [
            (EventKind::Create(CreateKind::File), true),
            (EventKind::Modify(ModifyKind::Data(DataChange::Any)), true),
            (EventKind::Remove(RemoveKind::File), true),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                true,
            ),
            (EventKind::Access(AccessKind::Open(AccessMode::Any)), false),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                false,
            ),
            (EventKind::Access(AccessKind::Read), false),
            (EventKind::Other, false),
        ];
        for (kind, expected) in cases {
            assert_eq!(is_write(&kind), expected, "{kind:?}");
        }
    }
}
