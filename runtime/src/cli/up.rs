//! `kumo up`: load a manifest, optionally build, compile, and serve.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use super::UpArgs;
use crate::engine::{Engine, EngineOptions};
use crate::manifest::Manifest;
use crate::server;

pub(super) async fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut manifest = Manifest::load(&args.manifest)?;
    if manifest.http_triggers.is_empty() {
        tracing::warn!(
            manifest = %args.manifest.display(),
            "the manifest has no [[trigger.http]] routes: every request will be answered 404"
        );
    }
    if args.build {
        let manifest = manifest.clone();
        tokio::task::spawn_blocking(move || super::build::run_builds(&manifest))
            .await
            .context("the build task failed")??;
    }

    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}; hint: pass a writable --data-dir",
            args.data_dir.display()
        )
    })?;
    // wasmtime's compile cache wants an absolute path.
    let data_dir = std::fs::canonicalize(&args.data_dir).with_context(|| {
        format!(
            "cannot resolve the data directory {}",
            args.data_dir.display()
        )
    })?;
    super::storage::resolve_mounts(&data_dir, &mut manifest)?;
    let engine = Engine::new(&EngineOptions {
        cache_dir: data_dir.join("cache"),
        pooling: !args.no_pooling,
    })?;
    let functions = server::compile_functions(&engine, &manifest).await?;
    let pools = server::start_pools(&manifest, &functions)
        .await
        .map_err(|(function, error)| {
            anyhow::anyhow!("function `{function}`: cannot create its min_instances: {error}")
        })?;
    let routes = Arc::new(server::route_table(&manifest, &pools));

    let listener = TcpListener::bind(&args.listen).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot listen on {}: {error}; hint: is another server using that port? pass --listen 127.0.0.1:0 for any free port",
            args.listen
        )
    })?;
    let address = listener.local_addr()?;
    let shutdown = server::shutdown_signal().context("cannot listen for SIGTERM and Ctrl-C")?;
    // Object storage stops with the gateway. Its change hook is where the
    // event queue plugs in; until then changes are only stored.
    let (stop_storage, storage_stopping) = tokio::sync::watch::channel(false);
    let storage = super::storage::start(
        &args.storage,
        &data_dir,
        crate::storage::ignore_changes(),
        async move {
            let mut stopping = storage_stopping;
            let _ = stopping.wait_for(|stop| *stop).await;
        },
    )
    .await?;
    tracing::info!(
        app = %manifest.app_name,
        functions = functions.len(),
        pooling = engine.uses_pooling_allocator(),
        "ready in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    println!("kumo: serving http://{address}");
    for trigger in &manifest.http_triggers {
        println!("  {} -> {}", trigger.route, trigger.function);
    }

    // Once shutdown begins, pools stop keeping and pre-warming instances;
    // queued and in-flight requests are still served.
    let draining = pools.values().cloned().collect::<Vec<_>>();
    let shutdown = async move {
        shutdown.await;
        let _ = stop_storage.send(true);
        for pool in &draining {
            pool.drain();
        }
    };
    server::serve(
        listener,
        routes,
        shutdown,
        Duration::from_millis(args.shutdown_timeout_ms),
    )
    .await?;
    match storage.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(error = %format!("{error:#}"), "object storage failed"),
        Err(error) => tracing::error!(%error, "object storage task failed"),
    }
    tracing::info!("stopped");
    Ok(())
}
