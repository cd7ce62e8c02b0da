//! `kumo up` (deploy a manifest into the registry, say what it changed,
//! then serve) and `kumo server` (serve the registry as it is).

use anyhow::Context;

use super::{ServeArgs, UpArgs};
use crate::manifest::{Manifest, TriggerChange};
use crate::server::{self, Prepared};

pub(super) async fn up(args: UpArgs) -> anyhow::Result<()> {
    let (prepared, _) = start_with_manifest(&args).await?;
    prepared.serve().await
}

pub(super) async fn server(args: ServeArgs) -> anyhow::Result<()> {
    let options = args.options();
    let listeners = server::bind_listeners(&options).await?;
    server::prepare(&options, listeners).await?.serve().await
}

/// Binds the listeners (first, so a taken port is said before anything
/// else happens), loads (and optionally builds) the manifest, prepares the
/// server and deploys the manifest into its registry.
pub(super) async fn start_with_manifest(args: &UpArgs) -> anyhow::Result<(Prepared, Manifest)> {
    let mut options = args.serve.options();
    let listeners = server::bind_listeners(&options).await?;
    let manifest = Manifest::load(&args.manifest)?;
    // The manifest's own watch triggers may watch under its folder.
    if options.watch_roots.is_empty() {
        options
            .watch_roots
            .push(std::env::current_dir().context("cannot read the working directory")?);
    }
    options.watch_roots.push(manifest.folder().to_path_buf());
    if manifest.http_triggers.is_empty() {
        tracing::warn!(
            manifest = %args.manifest.display(),
            "the manifest has no [[trigger.http]] routes"
        );
    }
    if args.build {
        let manifest = manifest.clone();
        tokio::task::spawn_blocking(move || super::build::run_builds(&manifest))
            .await
            .context("the build task failed")??;
    }
    let mut prepared = server::prepare(&options, listeners).await?;
    prepared.app = Some(manifest.app_name.clone());
    let deployed = prepared.control.apply_manifest(&manifest).await?;
    for (function, version, created) in &deployed.functions {
        if *created {
            tracing::info!(%function, version, "deployed a new version from the manifest");
        }
    }
    // What the manifest changed, what it left to the API, and the triggers
    // of earlier deploys it does not mention (still served).
    let manifest_name = manifest.file_name();
    for planned in &deployed.triggers {
        if !matches!(planned.change, TriggerChange::Unchanged { .. }) {
            println!("kumo: {}", planned.line(&manifest_name));
        }
    }
    Ok((prepared, manifest))
}
