//! Wiring a running Kumo: the data directory, the database, the registry
//! made live, the admin token, and the two listeners (the public function
//! gateway and the private admin API), served until asked to stop.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::control::Control;
use crate::engine::{Engine, EngineOptions};
use crate::metering::{Meter, MeterOptions, MeterTask, Prices};
use crate::model::TriggerSpec;
use crate::observability::GuestLogStore;
use crate::observability::metrics::MetricsHandle;
use crate::registry::Registry;

/// How to run the service (`kumo up`, `kumo server`, `kumo dev`).
#[derive(Debug, Clone)]
pub(crate) struct ServerOptions {
    /// The function gateway's address.
    pub(crate) listen: String,
    /// The admin API's address.
    pub(crate) admin_listen: String,
    /// The admin token; read from or generated into the data directory
    /// when absent.
    pub(crate) admin_token: Option<String>,
    /// Where Kumo keeps its state.
    pub(crate) data_dir: PathBuf,
    /// How long in-flight requests may run on after a stop signal.
    pub(crate) shutdown_timeout: Duration,
    /// Use the pooling allocator.
    pub(crate) pooling: bool,
    /// Record every invocation (billing, REPORT lines).
    pub(crate) metering: bool,
    /// Also print each invocation's REPORT line on stderr.
    pub(crate) report_lines: bool,
    /// How long raw invocation records are kept before being rolled up
    /// into hourly aggregates.
    pub(crate) metering_retention: Duration,
    /// The prices billing reports apply.
    pub(crate) prices: Prices,
    /// The S3 endpoint.
    pub(crate) storage: StorageSettings,
}

/// The S3 endpoint's settings.
#[derive(Debug, Clone)]
pub(crate) struct StorageSettings {
    /// Its address.
    pub(crate) listen: String,
    /// The access key; generated (with the secret) when absent.
    pub(crate) access_key: Option<String>,
    /// The secret key.
    pub(crate) secret_key: Option<String>,
    /// The largest object accepted.
    pub(crate) max_object_bytes: u64,
}

/// A server whose state is loaded and whose listeners are bound, not yet
/// serving.
pub(crate) struct Prepared {
    /// Every change to what is deployed goes through it.
    pub(crate) control: Arc<Control>,
    /// The data directory, absolute.
    pub(crate) data_dir: PathBuf,
    gateway: TcpListener,
    admin: TcpListener,
    token: Arc<str>,
    grace: Duration,
    started: Instant,
    /// The manifest's `[app] name`, for the `ready` line.
    pub(crate) app: Option<String>,
    pooling: bool,
    /// Flushed when serving ends.
    meter_task: Option<MeterTask>,
    /// Guest log lines per function, for the admin API.
    pub(crate) guest_logs: GuestLogStore,
    /// The Prometheus recorder, for `/metrics`.
    pub(crate) metrics: MetricsHandle,
    storage: TcpListener,
    storage_options: crate::storage::StorageOptions,
    events: Arc<crate::events::Events>,
    /// For the admin API's billing and records.
    database: crate::database::Database,
    prices: Prices,
}

/// The admin token's file in the data directory.
pub(crate) const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Opens the data directory, the database and the registry, loads every
/// live version (from the compile cache when it can), and binds both
/// listeners.
///
/// # Errors
///
/// A data directory that cannot be created, a database that cannot be
/// opened, a port in use.
pub(crate) async fn prepare(options: &ServerOptions) -> anyhow::Result<Prepared> {
    let started = Instant::now();
    std::fs::create_dir_all(&options.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}; hint: pass a writable --data-dir",
            options.data_dir.display()
        )
    })?;
    // wasmtime's compile cache wants an absolute path.
    let data_dir = std::fs::canonicalize(&options.data_dir).with_context(|| {
        format!(
            "cannot resolve the data directory {}",
            options.data_dir.display()
        )
    })?;
    let guest_logs = GuestLogStore::new();
    let metrics = crate::observability::metrics::install_recorder()?;
    let engine = Engine::new(&EngineOptions {
        cache_dir: data_dir.join("cache"),
        pooling: options.pooling,
        guest_log_sink: Some(guest_logs.sink()),
    })?;
    let database = crate::database::open(&data_dir).await?;
    let upgraded = crate::metering::upgrade_records(&database)
        .await
        .context("cannot rewrite older invocation records into the current format")?;
    if upgraded.records > 0 {
        tracing::info!(
            records = upgraded.records,
            rows = upgraded.rows,
            "rewrote older invocation records into the current format"
        );
    }
    let (meter, meter_task) = if options.metering {
        let meter_options = MeterOptions {
            retention: options.metering_retention,
            report_lines: options.report_lines,
            followed_logs: Some(guest_logs.clone()),
            ..MeterOptions::default()
        };
        let (meter, task) = Meter::start(database.clone(), meter_options);
        (meter, Some(task))
    } else {
        (Meter::disabled(), None)
    };
    let database_for_events = database.clone();
    let registry = Registry::new(database.clone(), &data_dir)?;
    let pooling = engine.uses_pooling_allocator();
    let control = Control::start(
        engine,
        registry,
        meter,
        crate::storage::storage_root(&data_dir),
    )
    .await
    .context("cannot load the registry")?;
    let weak_live = Arc::downgrade(control.live());
    let resolve: crate::events::Resolver =
        Arc::new(move |target| weak_live.upgrade()?.resolve_now(target));
    let event_triggers = crate::triggers::start_event_triggers(database_for_events, resolve)
        .await
        .context("cannot start event delivery")?;
    let events = event_triggers.events.clone();
    control.attach_event_triggers(event_triggers).await;
    let token = admin_token(&data_dir, options.admin_token.as_deref())?;
    let (credentials, created) = crate::storage::load_or_create_credentials(
        &data_dir,
        options.storage.access_key.clone(),
        options.storage.secret_key.clone(),
    )?;
    if created {
        println!(
            "kumo: storage credentials generated and kept in {} (shown once):\n  access key: {}\n  secret key: {}",
            data_dir.join(crate::storage::CREDENTIALS_FILE).display(),
            credentials.access_key,
            credentials.secret_key
        );
    }
    let storage = bind(&options.storage.listen, "--storage-listen").await?;
    let storage_options = crate::storage::StorageOptions {
        root: crate::storage::storage_root(&data_dir),
        credentials,
        max_object_bytes: options.storage.max_object_bytes,
    };
    let gateway = bind(&options.listen, "--listen").await?;
    let admin = bind(&options.admin_listen, "--admin-listen").await?;
    Ok(Prepared {
        control,
        data_dir,
        gateway,
        admin,
        token: token.into(),
        grace: options.shutdown_timeout,
        started,
        app: None,
        pooling,
        meter_task,
        guest_logs,
        metrics,
        storage,
        storage_options,
        events,
        database,
        prices: options.prices,
    })
}

async fn bind(address: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot listen on {address}: {error}; hint: is another server using that port? pass {flag} 127.0.0.1:0 for any free port"
        )
    })
}

/// The admin token: the one given, else the one stored in the data
/// directory, else a new one written there (mode 0600) and printed once.
///
/// # Errors
///
/// Fails when the token file cannot be read or written.
pub(crate) fn admin_token(data_dir: &Path, given: Option<&str>) -> anyhow::Result<String> {
    if let Some(token) = given.filter(|token| !token.is_empty()) {
        return Ok(token.to_string());
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(anyhow::anyhow!(
                "cannot read the admin token {}: {error}",
                path.display()
            ));
        }
    }
    let token = format!(
        "kumo_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &token)
        .with_context(|| format!("cannot write the admin token {}", path.display()))?;
    println!(
        "kumo: generated an admin token (saved in {}): {token}",
        path.display()
    );
    Ok(token)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

impl Prepared {
    /// Prints the addresses and routes, then serves the gateway and the
    /// admin API until Ctrl-C or SIGTERM; pools drain, in-flight requests
    /// finish (up to the grace period).
    ///
    /// # Errors
    ///
    /// A listener failure, or requests cut off by the grace period or a
    /// second signal.
    pub(crate) async fn serve(self) -> anyhow::Result<()> {
        let shutdown = shutdown_signal().context("cannot listen for SIGTERM and Ctrl-C")?;
        let snapshot = self.control.live().snapshot();
        tracing::info!(
            app = self.app.as_deref().map(tracing::field::display),
            functions = snapshot.registry.functions.len(),
            pooling = self.pooling,
            "ready in {:.0} ms",
            self.started.elapsed().as_secs_f64() * 1000.0
        );
        // The admin and storage lines first: scripts wait for `serving`.
        println!("kumo: admin api http://{}", self.admin.local_addr()?);
        println!(
            "kumo: storage http://{} (S3, path-style, access key {})",
            self.storage.local_addr()?,
            self.storage_options.credentials.access_key
        );
        println!("kumo: serving http://{}", self.gateway.local_addr()?);
        // Routes first, then the event triggers, each in name order: the
        // registry's order (creation time) is not the reader's.
        let mut lines: Vec<(bool, String)> = snapshot
            .registry
            .triggers
            .iter()
            .map(|trigger| match &trigger.spec {
                TriggerSpec::Http { route, function } => {
                    (false, format!("  {route} -> {function}"))
                }
                other => (
                    true,
                    format!(
                        "  {} {} -> {}",
                        other.kind(),
                        other.describe(),
                        other.function()
                    ),
                ),
            })
            .collect();
        lines.sort();
        for (_, line) in lines {
            println!("{line}");
        }
        if snapshot.registry.triggers.is_empty() {
            tracing::warn!(
                "no HTTP routes yet: every gateway request will be answered 404; hint: `kumo deploy` or POST /v1/triggers"
            );
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let control = self.control.clone();
        tokio::spawn(async move {
            shutdown.await;
            control.drain();
            let _ = stop_tx.send(true);
        });
        let stopped = |mut receiver: tokio::sync::watch::Receiver<bool>| async move {
            let _ = receiver.wait_for(|stop| *stop).await;
        };
        // An upload is answered only once its events are in the queue.
        let events = self.events.clone();
        let on_change: crate::storage::ChangeHook = Arc::new(move |change| {
            let events = events.clone();
            Box::pin(async move { events.on_object_change(change).await })
        });
        let storage = tokio::spawn(crate::storage::serve(
            self.storage,
            self.storage_options,
            on_change,
            stopped(stop_rx.clone()),
        ));
        let gateway = crate::gateway::router(self.control.live().clone());
        let admin = crate::api::router(crate::api::ApiState {
            control: self.control.clone(),
            live: self.control.live().clone(),
            token: self.token.clone(),
            database: self.database.clone(),
            guest_logs: self.guest_logs.clone(),
            metrics: self.metrics.clone(),
            prices: self.prices,
            meter: self.control.meter().clone(),
            stopping: stop_rx.clone(),
        });
        let (gateway, admin) = tokio::join!(
            serve(
                "gateway",
                self.gateway,
                gateway,
                stopped(stop_rx.clone()),
                self.grace
            ),
            serve("admin api", self.admin, admin, stopped(stop_rx), self.grace),
        );
        match storage.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(
                error = format!("{error:#}"),
                "object storage stopped with an error"
            ),
            Err(error) => tracing::error!(error = %error, "object storage task failed"),
        }
        // Deliveries in flight finish (or resume at the next start).
        if let Some(event_triggers) = self.control.detach_event_triggers().await {
            event_triggers.stop(self.grace).await;
        }
        // Every answered invocation's record is written before exiting.
        if let Some(task) = self.meter_task {
            let stats = task.shutdown().await;
            tracing::info!(
                written = stats.written,
                dropped = stats.dropped,
                failed = stats.failed,
                "metering records flushed"
            );
        }
        gateway?;
        admin?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Serves `app` (the gateway or the admin API, named by `what` in the
/// log) on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish for up to `grace`, and returns.
///
/// # Errors
///
/// Fails when the listener fails, and when requests were still running
/// after `grace` or a second signal (so the process exits non-zero).
pub(crate) async fn serve(
    what: &'static str,
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    type SecondSignal = Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>;
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<SecondSignal>();
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
        // Listen for a second signal before saying we are stopping, so a
        // signal sent right after that line is never missed.
        let again: SecondSignal = shutdown_signal()
            .ok()
            .map(|signal| Box::pin(signal) as std::pin::Pin<Box<_>>);
        tracing::info!(
            "shutting down the {what}: no new connections; finishing in-flight requests"
        );
        let _ = stopping_tx.send(again);
    });
    // Once shutdown began: the grace period, or a second Ctrl-C/SIGTERM,
    // ends the wait for in-flight requests.
    let forced = async move {
        let again = match stopping_rx.await {
            Err(_) => return std::future::pending::<Forced>().await,
            Ok(Some(signal)) => signal,
            Ok(None) => {
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
pub(crate) fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
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
pub(crate) fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
