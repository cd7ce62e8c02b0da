//! Wiring a running Kumo: the data directory, the database, the registry
//! made live, the admin token, and the two listeners (the public function
//! gateway and the private admin API), served until asked to stop.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::connections::ConnectionLimits;
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
    /// `--port-base`, when the addresses came from it (for the hint when
    /// one is taken).
    pub(crate) port_base: Option<u16>,
    /// The admin token; read from or generated into the data directory
    /// when absent.
    pub(crate) admin_token: Option<String>,
    /// Where Kumo keeps its state.
    pub(crate) data_dir: PathBuf,
    /// The database: in the data directory, or shared by a cluster.
    pub(crate) database: crate::database::DatabaseLocation,
    /// This node's name, as the `node` label of its metrics (none: no
    /// label).
    pub(crate) node_name: Option<String>,
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
    /// The folders watch triggers may watch (`--watch-root`); the working
    /// directory when empty.
    pub(crate) watch_roots: Vec<PathBuf>,
    /// Time a client has to send a request's head (and the idle keep-alive
    /// timeout).
    pub(crate) header_timeout: Duration,
    /// Open connections per listener; by default a share of the open-file
    /// limit.
    pub(crate) max_connections: Option<usize>,
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
    /// The storage folder, when not `<data-dir>/storage`: in a cluster, a
    /// folder every node mounts from one shared file system.
    pub(crate) dir: Option<PathBuf>,
}

/// A server whose state is loaded and whose listeners are bound, not yet
/// serving.
pub(crate) struct Prepared {
    /// Every change to what is deployed goes through it.
    pub(crate) control: Arc<Control>,
    /// The data directory, absolute.
    pub(crate) data_dir: PathBuf,
    /// Held locked while the server runs: one server per data directory.
    _data_dir_lock: std::fs::File,
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
    /// On PostgreSQL, the writer of the guest lines every node reads.
    shared_logs_task: Option<crate::observability::shared_logs::SharedLogsTask>,
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
    /// What every listener allows its clients.
    connection_limits: ConnectionLimits,
}

/// The admin token's file in the data directory.
pub(crate) const ADMIN_TOKEN_FILE: &str = "admin-token";

/// The file in the data directory holding the admin API's URL, written at
/// every start, so client verbs run beside that data directory find the
/// server without `--admin-url`.
pub(crate) const ADMIN_URL_FILE: &str = "admin-url";

/// The three listeners of a server, bound before anything else happens.
pub(crate) struct Listeners {
    gateway: TcpListener,
    admin: TcpListener,
    storage: TcpListener,
}

/// Binds the gateway, the admin API and the storage endpoint, first thing:
/// when any address cannot be had, nothing else has happened yet (no data
/// directory, no compile), and the error names every address that failed.
///
/// # Errors
///
/// One error naming each address that cannot be bound, with its flag and
/// a `--port-base` that is free now.
pub(crate) async fn bind_listeners(options: &ServerOptions) -> anyhow::Result<Listeners> {
    let bind = |address: &str, what: &'static str, flag: &'static str| {
        let address = address.to_string();
        async move {
            TcpListener::bind(address.as_str())
                .await
                .map_err(|error| ListenFailure {
                    address,
                    what,
                    flag,
                    error,
                })
        }
    };
    let gateway = bind(&options.listen, "the gateway", "--listen").await;
    let admin = bind(&options.admin_listen, "the admin api", "--admin-listen").await;
    let storage = bind(&options.storage.listen, "storage", "--storage-listen").await;
    match (gateway, admin, storage) {
        (Ok(gateway), Ok(admin), Ok(storage)) => Ok(Listeners {
            gateway,
            admin,
            storage,
        }),
        (gateway, admin, storage) => {
            let failures: Vec<ListenFailure> = [gateway.err(), admin.err(), storage.err()]
                .into_iter()
                .flatten()
                .collect();
            // What was bound is closed by now, so it is free to suggest.
            let suggestion = free_port_base(options.port_base).await;
            Err(anyhow::anyhow!(
                "{}",
                describe_listen_failures(&failures, options.port_base, suggestion)
            ))
        }
    }
}

/// An address that could not be bound.
struct ListenFailure {
    address: String,
    /// `the gateway`, `the admin api` or `storage`.
    what: &'static str,
    flag: &'static str,
    error: std::io::Error,
}

/// One line naming every failed address, and a way out: a free
/// `--port-base` when one was found, or port 0.
fn describe_listen_failures(
    failures: &[ListenFailure],
    port_base: Option<u16>,
    suggestion: Option<u16>,
) -> String {
    let in_use = |failure: &ListenFailure| failure.error.kind() == std::io::ErrorKind::AddrInUse;
    let listed: Vec<String> = failures
        .iter()
        .map(|failure| {
            let reason = if in_use(failure) {
                "in use".to_string()
            } else {
                failure.error.to_string()
            };
            format!(
                "{} ({}, {}: {reason})",
                failure.address, failure.what, failure.flag
            )
        })
        .collect();
    let addresses = match listed.as_slice() {
        [one] => one.clone(),
        [first @ .., last] => format!("{} and {last}", first.join(", ")),
        [] => String::new(),
    };
    let cause = if failures.iter().all(in_use) {
        "another kumo (or another program) is listening there"
    } else {
        "check the addresses"
    };
    let another = if port_base.is_some() { "another " } else { "" };
    let move_all = match suggestion {
        Some(base) => format!(
            "pass {another}--port-base {base} (gateway {base}, admin api {}, storage {}: free now)",
            base + 1,
            base + 2
        ),
        None => format!(
            "pass {another}--port-base PORT (gateway PORT, admin api PORT+1, storage PORT+2)"
        ),
    };
    format!(
        "cannot listen on {addresses}; hint: {cause}; to run beside it, {move_all}, or give --listen, --admin-listen and --storage-listen port 0 for any free ports"
    )
}

/// A `--port-base` whose three loopback ports are free right now (other
/// than `current`), to suggest in the error; `None` when none of the few
/// tried is.
async fn free_port_base(current: Option<u16>) -> Option<u16> {
    for base in (4000..=9000).step_by(1000) {
        if Some(base) == current {
            continue;
        }
        let mut all_free = true;
        for port in base..base + 3 {
            if TcpListener::bind(("127.0.0.1", port)).await.is_err() {
                all_free = false;
                break;
            }
        }
        if all_free {
            return Some(base);
        }
    }
    None
}

/// The URL clients should use for the admin API bound at `address`: a
/// wildcard address (`0.0.0.0`, `::`) is reached through loopback.
fn admin_url(address: std::net::SocketAddr) -> String {
    let ip = match address.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, address.port()))
}

/// Opens the data directory, the database and the registry, and loads
/// every live version (from the compile cache when it can), behind
/// `listeners` (bound first, with [`bind_listeners`]).
///
/// # Errors
///
/// A data directory that cannot be created, a database that cannot be
/// opened.
pub(crate) async fn prepare(
    options: &ServerOptions,
    listeners: Listeners,
) -> anyhow::Result<Prepared> {
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
    let data_dir_lock = lock_data_dir(&data_dir)?;
    let guest_logs = GuestLogStore::new();
    let metrics = crate::observability::metrics::install_recorder(options.node_name.as_deref())?;
    let engine = Engine::new(&EngineOptions {
        cache_dir: data_dir.join("cache"),
        cache_key_file: data_dir.join("cache-key"),
        pooling: options.pooling,
        guest_log_sink: Some(guest_logs.sink()),
    })?;
    let storage_root = options
        .storage
        .dir
        .clone()
        .unwrap_or_else(|| crate::storage::storage_root(&data_dir));
    let database = crate::database::open(&data_dir, &options.database).await?;
    // A cluster's nodes write their guest lines where every node reads them.
    let shared_logs_task =
        (crate::database::dialect(&database) == crate::database::Dialect::Postgres).then(|| {
            let (shared, task) =
                crate::observability::shared_logs::SharedLogs::start(database.clone());
            guest_logs.share(shared);
            task
        });
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
    let control = Control::start(engine, registry, meter, storage_root.clone())
        .await
        .context("cannot load the registry")?;
    if let crate::database::DatabaseLocation::Postgres(url) = &options.database {
        crate::control::follow_cluster(&control, url.clone());
    }
    let weak_live = Arc::downgrade(control.live());
    let resolve: crate::events::Resolver =
        Arc::new(move |target| weak_live.upgrade()?.resolve_now(target));
    let watch_roots = if options.watch_roots.is_empty() {
        vec![std::env::current_dir().context("cannot read the working directory")?]
    } else {
        options.watch_roots.clone()
    };
    let watch_roots = crate::triggers::watch::WatchRoots::new(&watch_roots)?;
    let event_triggers = crate::triggers::start_event_triggers(
        database_for_events,
        resolve,
        storage_root.clone(),
        watch_roots,
    )
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
    let Listeners {
        gateway,
        admin,
        storage,
    } = listeners;
    let storage_options = crate::storage::StorageOptions {
        root: storage_root.clone(),
        credentials,
        max_object_bytes: options.storage.max_object_bytes,
    };
    let url_file = data_dir.join(ADMIN_URL_FILE);
    let url = admin_url(admin.local_addr()?);
    if let Err(error) = std::fs::write(&url_file, format!("{url}\n")) {
        tracing::warn!(
            file = %url_file.display(),
            %error,
            "cannot record the admin api's address; client verbs need --admin-url"
        );
    }
    let descriptors = crate::connections::raise_descriptor_limit();
    let connection_limits = ConnectionLimits::for_descriptors(
        descriptors,
        3,
        options.header_timeout,
        options.max_connections,
    );
    tracing::debug!(
        open_files = descriptors,
        max_connections = connection_limits.max_connections,
        header_timeout_ms = connection_limits.header_timeout.as_millis() as u64,
        "connection limits per listener"
    );
    Ok(Prepared {
        control,
        data_dir,
        _data_dir_lock: data_dir_lock,
        gateway,
        admin,
        token: token.into(),
        grace: options.shutdown_timeout,
        started,
        app: None,
        pooling,
        meter_task,
        shared_logs_task,
        guest_logs,
        metrics,
        storage,
        storage_options,
        events,
        database,
        prices: options.prices,
        connection_limits,
    })
}

/// How long a clean shutdown waits for guests that answered and are still
/// running, so their records are written.
const RUNNING_GUESTS_WAIT: Duration = Duration::from_secs(2);

/// The file in the data directory that one server holds locked while it
/// runs, with its process id.
const LOCK_FILE: &str = "lock";

/// Locks the data directory for this process (released when the returned
/// file is dropped, or the process ends however it ends). Two servers on
/// one directory would each keep their own view of the registry and
/// deliver the same events twice.
///
/// # Errors
///
/// Another process holds the lock (the error names its pid), or the lock
/// file cannot be opened.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                pid => format!("another kumo (pid {pid})"),
            };
            anyhow::bail!(
                "the data directory {} is in use by {holder}; hint: stop that server first, or give this one its own --data-dir",
                data_dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(file)
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
        let storage_root = self.storage_options.root.clone();
        // One object store for the S3 endpoint and the console's uploads.
        let objects = crate::storage::Objects::open(
            &storage_root,
            self.storage_options.max_object_bytes,
            on_change,
        )
        .await?;
        let storage = tokio::spawn({
            let objects = objects.clone();
            let credentials = self.storage_options.credentials.clone();
            let shutdown = stopped(stop_rx.clone());
            let limits = self.connection_limits;
            async move {
                crate::storage::serve_objects(self.storage, objects, &credentials, limits, shutdown)
                    .await
            }
        });
        let gateway =
            crate::gateway::Gateway::new(self.control.live().clone(), self.events.clone());
        let api_state = crate::api::ApiState {
            control: self.control.clone(),
            live: self.control.live().clone(),
            token: self.token.clone(),
            database: self.database.clone(),
            guest_logs: self.guest_logs.clone(),
            metrics: self.metrics.clone(),
            prices: self.prices,
            meter: self.control.meter().clone(),
            stopping: stop_rx.clone(),
            storage_root,
            events: self.events.clone(),
        };
        let console = crate::console::state(api_state.clone(), objects, self.started);
        let admin = crate::api::router(api_state).merge(crate::console::router(console));
        let limits = self.connection_limits;
        let (gateway_listener, admin_listener) = (self.gateway, self.admin);
        let (gateway, admin) = tokio::join!(
            serve(
                "gateway",
                |stop| {
                    crate::connections::serve(
                        gateway_listener,
                        move |_peer| gateway.clone(),
                        limits,
                        stop,
                    )
                },
                stopped(stop_rx.clone()),
                self.grace
            ),
            serve(
                "admin api",
                |stop| {
                    let admin = crate::connections::axum_app(admin);
                    crate::connections::serve(admin_listener, admin, limits, stop)
                },
                stopped(stop_rx),
                self.grace
            ),
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
        // Every answered invocation's record is written before exiting:
        // first the guests still running after their answer end (briefly,
        // and not when requests were cut off or a second signal came).
        if gateway.is_ok() && admin.is_ok() {
            self.control
                .wait_for_running_invocations(self.grace.min(RUNNING_GUESTS_WAIT))
                .await;
        }
        if let Some(task) = self.meter_task {
            let stats = task.shutdown().await;
            tracing::info!(
                written = stats.written,
                dropped = stats.dropped,
                failed = stats.failed,
                "metering records flushed"
            );
        }
        if let Some(task) = self.shared_logs_task {
            task.shutdown().await;
        }
        gateway?;
        admin?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// What tells a listener's server to stop accepting connections.
pub(crate) type StopAccepting = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs a listener's server (the gateway or the admin API, named by `what`
/// in the log): `serve_until` starts it with the future that tells it to
/// stop accepting, which resolves once `shutdown` does. Then in-flight
/// requests finish for up to `grace`, and it returns.
///
/// # Errors
///
/// Fails when the listener fails, and when requests were still running
/// after `grace` or a second signal (so the process exits non-zero).
pub(crate) async fn serve<Server>(
    what: &'static str,
    serve_until: impl FnOnce(StopAccepting) -> Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()>
where
    Server: Future<Output = std::io::Result<()>>,
{
    type SecondSignal = Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>;
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<SecondSignal>();
    let server = serve_until(Box::pin(async move {
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
    }));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(
        address: &str,
        what: &'static str,
        flag: &'static str,
        kind: std::io::ErrorKind,
    ) -> ListenFailure {
        ListenFailure {
            address: address.into(),
            what,
            flag,
            error: std::io::Error::from(kind),
        }
    }

    #[test]
    fn one_error_names_every_address_that_cannot_be_bound() {
        use std::io::ErrorKind::{AddrInUse, PermissionDenied};
        let gateway = || failure("127.0.0.1:3000", "the gateway", "--listen", AddrInUse);
        let storage = || failure("127.0.0.1:9000", "storage", "--storage-listen", AddrInUse);
        let admin = || {
            failure(
                "127.0.0.1:3001",
                "the admin api",
                "--admin-listen",
                AddrInUse,
            )
        };
        // (failures, --port-base, suggestion, expected start, expected hint)
        let cases = [
            (
                vec![gateway()],
                None,
                Some(4000),
                "cannot listen on 127.0.0.1:3000 (the gateway, --listen: in use); hint: another kumo",
                "pass --port-base 4000 (gateway 4000, admin api 4001, storage 4002: free now)",
            ),
            (
                vec![gateway(), storage()],
                None,
                Some(5000),
                "cannot listen on 127.0.0.1:3000 (the gateway, --listen: in use) and 127.0.0.1:9000 (storage, --storage-listen: in use);",
                "pass --port-base 5000 (gateway 5000",
            ),
            (
                vec![gateway(), admin(), storage()],
                Some(3000),
                None,
                "cannot listen on 127.0.0.1:3000 (the gateway, --listen: in use), 127.0.0.1:3001 (the admin api, --admin-listen: in use) and 127.0.0.1:9000",
                "pass another --port-base PORT (gateway PORT, admin api PORT+1, storage PORT+2)",
            ),
            (
                vec![failure(
                    "127.0.0.1:80",
                    "the gateway",
                    "--listen",
                    PermissionDenied,
                )],
                None,
                Some(4000),
                "cannot listen on 127.0.0.1:80 (the gateway, --listen: permission denied); hint: check the addresses;",
                "--port-base 4000",
            ),
        ];
        for (failures, port_base, suggestion, start, hint) in cases {
            let text = describe_listen_failures(&failures, port_base, suggestion);
            assert!(text.starts_with(start), "{text}");
            assert!(text.contains(hint), "{text}");
            assert!(text.ends_with("port 0 for any free ports"), "{text}");
            assert_eq!(text.lines().count(), 1, "{text}");
        }
    }

    #[test]
    fn clients_reach_a_wildcard_admin_listener_through_loopback() {
        let cases = [
            ("127.0.0.1:3001", "http://127.0.0.1:3001"),
            ("0.0.0.0:4001", "http://127.0.0.1:4001"),
            ("[::]:4001", "http://[::1]:4001"),
            ("192.168.1.5:3001", "http://192.168.1.5:3001"),
        ];
        for (address, expected) in cases {
            assert_eq!(admin_url(address.parse().unwrap()), expected);
        }
    }
}
