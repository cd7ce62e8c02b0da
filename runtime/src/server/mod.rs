//! Wiring a running Kumo: compile a manifest's functions, start their
//! pools, build the route table, and serve the gateway until asked to stop.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::engine::{CompileError, ComponentSource, Engine, Function, InvokeError};
use crate::manifest::Manifest;
use crate::metering::Meter;
use crate::pool::Pool;
use crate::triggers::http::{FunctionRoutes, Route, RouteTable};

/// Compiles every function of the manifest, one after the other (wasmtime
/// already spreads one compilation over all cores), off the async threads.
///
/// # Errors
///
/// The first [`CompileError`]: it names the function and the file.
pub async fn compile_functions(
    engine: &Engine,
    manifest: &Manifest,
) -> Result<BTreeMap<String, Arc<Function>>, CompileError> {
    let mut functions = BTreeMap::new();
    for spec in manifest.functions.values() {
        let engine = engine.clone();
        let spec = spec.clone();
        let (function, report) = tokio::task::spawn_blocking(move || {
            engine.compile_file(
                ComponentSource {
                    function: &spec.name,
                    path: &spec.source,
                },
                spec.settings.clone(),
            )
        })
        .await
        .expect("the compile task does not panic")?;
        let sha256 = &report.sha256[..12];
        let millis = report.elapsed.as_secs_f64() * 1000.0;
        if report.from_cache {
            tracing::info!(
                function = %function.name(),
                %sha256,
                "loaded function from the compile cache in {millis:.1} ms"
            );
        } else {
            tracing::info!(
                function = %function.name(),
                %sha256,
                wasm_bytes = report.wasm_bytes,
                "compiled function in {millis:.1} ms"
            );
        }
        functions.insert(function.name().to_string(), Arc::new(function));
    }
    Ok(functions)
}

/// Starts a pool per function, metered on `meter`, and creates its
/// `min_instances`.
///
/// # Errors
///
/// The function whose provisioned instances cannot be created, and why.
pub async fn start_pools(
    manifest: &Manifest,
    functions: &BTreeMap<String, Arc<Function>>,
    meter: &Meter,
) -> Result<BTreeMap<String, Arc<Pool>>, (String, InvokeError)> {
    let mut pools = BTreeMap::new();
    for (name, function) in functions {
        let settings = manifest.functions[name].pool.clone();
        // A manifest's functions are served as version 1.
        let pool = Pool::start(function.clone(), 1, settings, meter.clone());
        pool.prewarm_min()
            .await
            .map_err(|error| (name.clone(), error))?;
        pools.insert(name.clone(), pool);
    }
    Ok(pools)
}

/// The gateway's routes for a manifest and its pools.
pub fn route_table(manifest: &Manifest, pools: &BTreeMap<String, Arc<Pool>>) -> FunctionRoutes {
    RouteTable::new(manifest.http_triggers.iter().map(|trigger| {
        let route = Route::parse(&trigger.route).expect("the manifest validated its routes");
        (route, pools[&trigger.function].clone())
    }))
}

/// Serves the gateway on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish for up to `grace`, and returns.
///
/// # Errors
///
/// Fails when the listener fails, and when requests were still running
/// after `grace` or a second signal (so the process exits non-zero).
pub async fn serve(
    listener: TcpListener,
    routes: Arc<FunctionRoutes>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let app = crate::triggers::http::router(routes);
    // Responses stream (headers, then body frames): without TCP_NODELAY,
    // Nagle's algorithm holds the body until the client's delayed ACK,
    // adding ~40 ms to some responses.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        let _ = stopping_tx.send(());
    });
    // Once shutdown began: the grace period, or a second Ctrl-C/SIGTERM,
    // ends the wait for in-flight requests.
    let forced = async move {
        if stopping_rx.await.is_err() {
            return std::future::pending::<Forced>().await;
        }
        let again = match shutdown_signal() {
            Ok(signal) => signal,
            Err(_) => {
                tokio::time::sleep(grace).await;
                return Forced::GraceOver;
            }
        };
        tokio::select! {
            () = tokio::time::sleep(grace) => Forced::GraceOver,
            () = again => Forced::SecondSignal,
        }
    };
    tokio::select! {
        result = server => result,
        forced = forced => {
            let (reason, hint) = match forced {
                Forced::GraceOver => (
                    "requests still running after the shutdown grace period",
                    "raise --shutdown-timeout-ms",
                ),
                Forced::SecondSignal => (
                    "a second signal arrived",
                    "send one SIGTERM to let in-flight requests finish",
                ),
            };
            tracing::warn!(grace_ms = grace.as_millis() as u64, "{reason}; stopping without waiting for them");
            Err(std::io::Error::other(format!(
                "{reason}: in-flight requests were cut off; hint: {hint}"
            )))
        }
    }
}

/// Why shutdown stopped waiting for in-flight requests.
enum Forced {
    GraceOver,
    SecondSignal,
}

/// Listens for Ctrl-C (SIGINT) and SIGTERM from now on, and returns a
/// future that resolves when either arrives. Call it before announcing the
/// server, so an early signal is not lost to the default handler.
///
/// # Errors
///
/// Fails when the signal handlers cannot be installed.
#[cfg(unix)]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
    })
}

/// Listens for Ctrl-C; see the Unix version.
///
/// # Errors
///
/// Never, here.
#[cfg(not(unix))]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
