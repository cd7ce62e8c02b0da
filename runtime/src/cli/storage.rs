//! The object storage part of `kumo up`: its flags, its credentials, the
//! `files` mounts of the manifest's functions, and its listener.

use std::future::Future;
use std::path::Path;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::manifest::Manifest;
use crate::storage::{self, ChangeHook, StorageOptions};

/// Flags of `kumo up` for the S3 endpoint.
#[derive(Debug, clap::Args)]
pub(super) struct StorageArgs {
    /// Address of the S3-compatible storage endpoint (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9000", env = "KUMO_STORAGE_LISTEN")]
    storage_listen: String,
    /// Access key S3 requests are signed with (default: generated once and
    /// kept in <data-dir>/storage-credentials).
    #[arg(long, env = "KUMO_STORAGE_ACCESS_KEY", hide_env_values = true)]
    storage_access_key: Option<String>,
    /// Secret key S3 requests are signed with (set with the access key).
    #[arg(long, env = "KUMO_STORAGE_SECRET_KEY", hide_env_values = true)]
    storage_secret_key: Option<String>,
    /// The largest object accepted, in bytes (simple and multipart uploads).
    #[arg(long, default_value_t = storage::DEFAULT_MAX_OBJECT_BYTES, value_name = "BYTES")]
    storage_max_object_bytes: u64,
}

/// Points each function's `files` mounts at its bucket folders (creating
/// missing buckets). Call before compiling the functions.
///
/// # Errors
///
/// When a bucket folder cannot be created.
pub(super) fn resolve_mounts(data_dir: &Path, manifest: &mut Manifest) -> anyhow::Result<()> {
    let root = storage::storage_root(data_dir);
    for function in manifest.functions.values_mut() {
        function.settings.mounts = storage::mount_dirs(&root, &function.files)
            .with_context(|| format!("function `{}`", function.name))?;
    }
    Ok(())
}

/// Binds the S3 endpoint, prints its address (and, once, generated
/// credentials), and serves it on a task until `shutdown` resolves.
///
/// # Errors
///
/// When the address cannot be bound or the credentials cannot be read or
/// created.
pub(super) async fn start(
    args: &StorageArgs,
    data_dir: &Path,
    on_change: ChangeHook,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let (credentials, created) = storage::load_or_create_credentials(
        data_dir,
        args.storage_access_key.clone(),
        args.storage_secret_key.clone(),
    )?;
    let listener = TcpListener::bind(&args.storage_listen).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot listen on {} for object storage: {error}; hint: is another server using that port? \
             pass --storage-listen 127.0.0.1:0 for any free port",
            args.storage_listen
        )
    })?;
    let address = listener.local_addr()?;
    if created {
        println!(
            "kumo: storage credentials generated and kept in {} (shown once):\n  access key: {}\n  secret key: {}",
            data_dir.join(storage::CREDENTIALS_FILE).display(),
            credentials.access_key,
            credentials.secret_key
        );
    }
    println!(
        "kumo: storage http://{address} (S3, path-style, access key {})",
        credentials.access_key
    );
    let options = StorageOptions {
        root: storage::storage_root(data_dir),
        credentials,
        max_object_bytes: args.storage_max_object_bytes,
    };
    Ok(tokio::spawn(storage::serve(
        listener, options, on_change, shutdown,
    )))
}
