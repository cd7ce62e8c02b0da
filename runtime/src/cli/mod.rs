//! The `kumo` command line: argument parsing and the verbs.
//!
//! Service verbs (`up`, `server`, `dev`) run Kumo in this process; client
//! verbs (`deploy`, `functions`, `alias`, `invoke`, `triggers`, `bill`,
//! `logs`) talk to a running server's admin API; `new` and `wit` write
//! files for building functions. Verbs print what a person needs on stdout
//! (tables, or JSON with `--output json`) and log to stderr through
//! `tracing` (`KUMO_LOG` or `RUST_LOG` set the filter). Errors are one
//! clear line and a non-zero exit.

mod build;
mod client;
mod dev;
mod metering;
mod new;
mod up;
mod version_changes;
mod wit;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::server::{ServerOptions, StorageSettings};

/// Kumo: a serverless runtime for WebAssembly functions.
#[derive(Debug, Parser)]
#[command(name = "kumo", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deploy a manifest into the registry, then serve everything it holds.
    Up(UpArgs),
    /// Serve whatever the registry holds (no manifest).
    Server(ServeArgs),
    /// Like `up`, and redeploy a function whenever its source changes.
    Dev(UpArgs),
    /// Upload a manifest's functions and routes to a running server.
    Deploy(DeployArgs),
    /// List, show or delete functions on a running server.
    #[command(subcommand)]
    Functions(FunctionsCommand),
    /// Point an alias at a version (or two, with weights).
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Invoke a function once and print its response.
    Invoke(InvokeArgs),
    /// List, create, retarget or delete triggers (HTTP routes and event
    /// triggers) on a running server.
    #[command(subcommand)]
    Triggers(TriggersCommand),
    /// List queued, retrying and dead events, and replay dead ones.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Show where an asynchronous invocation is (`kumo invoke --async`).
    #[command(subcommand)]
    Invocations(InvocationsCommand),
    /// A billing report: invocations, errors, cold starts, billed ms, GB-s,
    /// cost and p50/p99 duration per function, version or hour.
    Bill(BillArgs),
    /// Print a function's output lines (stdout/stderr) with their request
    /// ids; `--follow` keeps printing new ones.
    Logs(LogsArgs),
    /// Start a function project in Rust, Python or JavaScript.
    New(NewArgs),
    /// Write the WIT of the world Kumo functions are built against (for
    /// componentize-py and componentize-js).
    Wit(WitArgs),
}

/// Arguments of `kumo new`.
#[derive(Debug, clap::Args)]
struct NewArgs {
    /// The function's name (lowercase letters, digits and `-`).
    name: String,
    /// The language of the project.
    #[arg(long, value_enum)]
    lang: new::Language,
    /// The folder to create [default: ./NAME]; it must not exist.
    #[arg(long)]
    path: Option<PathBuf>,
}

/// Arguments of `kumo wit`.
#[derive(Debug, clap::Args)]
struct WitArgs {
    /// The folder to write `world.wit` and `deps/` into.
    #[arg(default_value = "wit")]
    folder: PathBuf,
    /// Write the WASI packages under this 0.2 version instead of Kumo's
    /// own (componentize-js needs 0.2.10).
    #[arg(long, value_name = "VERSION")]
    wasi_version: Option<String>,
}

/// Where the service listens and keeps its state.
#[derive(Debug, Clone, clap::Args)]
struct ServeArgs {
    /// Moves all three listeners, to run beside another server: the
    /// gateway to 127.0.0.1:PORT, the admin API to PORT+1, storage to
    /// PORT+2 (0: three free ports); --listen, --admin-listen and
    /// --storage-listen still win.
    #[arg(long, env = "KUMO_PORT_BASE", value_name = "PORT", value_parser = clap::value_parser!(u16).range(0..=65533))]
    port_base: Option<u16>,
    /// Address of the function gateway (port 0 picks a free port)
    /// [default: 127.0.0.1:3000, or 127.0.0.1:PORT with --port-base].
    #[arg(long, env = "KUMO_LISTEN")]
    listen: Option<String>,
    /// Address of the admin API; keep it private [default: 127.0.0.1:3001,
    /// or PORT+1 with --port-base].
    #[arg(long, env = "KUMO_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// The admin API's bearer token (default: `<data-dir>/admin-token`,
    /// generated at the first start).
    #[arg(long, env = "KUMO_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Where Kumo keeps its state: the registry, components, compile cache.
    #[arg(long, default_value = ".kumo", env = "KUMO_DATA_DIR")]
    data_dir: PathBuf,
    /// The database: SQLite in the data directory (the default, `sqlite:`),
    /// or `postgres://user:password@host:5432/database`, shared by the
    /// nodes of a cluster (each keeps its own --data-dir).
    #[arg(long = "database", env = "KUMO_DATABASE_URL", hide_env_values = true, value_name = "URL", default_value = "sqlite:", value_parser = crate::database::DatabaseLocation::parse)]
    database: crate::database::DatabaseLocation,
    /// This node's name, the `node` label of every metric [default: the
    /// host name when --database is PostgreSQL; no label otherwise].
    #[arg(long, env = "KUMO_NODE_NAME", value_name = "NAME")]
    node_name: Option<String>,
    /// How long in-flight requests may run on after Ctrl-C or SIGTERM.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    shutdown_timeout_ms: u64,
    /// Allocate instances on demand instead of from the pooling allocator.
    #[arg(long)]
    no_pooling: bool,
    /// Keep no invocation records (no billing, no REPORT lines); for
    /// measuring metering's cost.
    #[arg(long, env = "KUMO_NO_METERING")]
    no_metering: bool,
    /// Also print each invocation's REPORT line on this process's stderr
    /// (they are always in the function's log, `kumo logs NAME`).
    #[arg(long, env = "KUMO_REPORT_LINES")]
    report_lines: bool,
    /// Address of the S3-compatible storage endpoint (port 0 picks a free
    /// port) [default: 127.0.0.1:9000, or PORT+2 with --port-base].
    #[arg(long, env = "KUMO_STORAGE_LISTEN")]
    storage_listen: Option<String>,
    /// Access key S3 requests are signed with (default: generated once and
    /// kept in <data-dir>/storage-credentials).
    #[arg(long, env = "KUMO_STORAGE_ACCESS_KEY", hide_env_values = true)]
    storage_access_key: Option<String>,
    /// Secret key S3 requests are signed with (set with the access key).
    #[arg(long, env = "KUMO_STORAGE_SECRET_KEY", hide_env_values = true)]
    storage_secret_key: Option<String>,
    /// The object storage folder [default: <data-dir>/storage]; the nodes
    /// of a cluster point it at one shared file system.
    #[arg(long, env = "KUMO_STORAGE_DIR", value_name = "DIR")]
    storage_dir: Option<PathBuf>,
    /// The largest object accepted, in bytes (simple and multipart uploads).
    #[arg(long, default_value_t = crate::storage::DEFAULT_MAX_OBJECT_BYTES, value_name = "BYTES")]
    storage_max_object_bytes: u64,
    /// Dollars per million invocations, for billing reports.
    #[arg(long, default_value_t = 0.20, env = "KUMO_PRICE_PER_MILLION_INVOCATIONS", value_name = "DOLLARS", value_parser = parse_price)]
    price_per_million_invocations: f64,
    /// Dollars per GB-second (memory_mb / 1024 × billed_ms / 1000).
    #[arg(long, default_value_t = 0.000_016_666_7, env = "KUMO_PRICE_PER_GB_SECOND", value_name = "DOLLARS", value_parser = parse_price)]
    price_per_gb_second: f64,
    /// Invocations free per billing report (applied once to its totals).
    #[arg(
        long,
        default_value_t = 0,
        env = "KUMO_FREE_INVOCATIONS",
        value_name = "N"
    )]
    free_invocations: u64,
    /// GB-seconds free per billing report (applied once to its totals).
    #[arg(long, default_value_t = 0.0, env = "KUMO_FREE_GB_SECONDS", value_name = "GB_S", value_parser = parse_price)]
    free_gb_seconds: f64,
    /// Days raw invocation records are kept before being rolled up into
    /// hourly aggregates (reports stay exact).
    #[arg(long, default_value_t = 7, env = "KUMO_METERING_RETENTION_DAYS", value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    metering_retention_days: u32,
    /// A folder under which watch triggers may watch (repeat for several;
    /// default: the working directory, and for `kumo up` and `kumo dev` the
    /// manifest's folder too). Kumo never creates a watched folder.
    #[arg(
        long = "watch-root",
        env = "KUMO_WATCH_ROOTS",
        value_name = "DIR",
        value_delimiter = ':'
    )]
    watch_roots: Vec<PathBuf>,
    /// Time a client has to send a request's line and headers, on every
    /// listener; also how long an idle kept-alive connection stays open.
    #[arg(long, default_value_t = crate::connections::DEFAULT_HEADER_TIMEOUT.as_millis() as u64, env = "KUMO_HEADER_TIMEOUT_MS", value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_ms: u64,
    /// Open connections per listener (gateway, admin API, storage); more
    /// wait until one closes [default: a third of the open-file limit,
    /// less 256 kept for files].
    #[arg(long, env = "KUMO_MAX_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
}

/// This machine's host name (a Kubernetes pod's name), if it has one.
fn host_name() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

/// A price or allowance: a finite number, zero or more.
fn parse_price(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!(
            "`{text}` is not an amount of zero or more; hint: write dollars as a decimal, such as 0.20"
        )),
    }
}

/// Where a listener goes: its own flag, else its place after
/// `--port-base` (on loopback; base 0 gives every listener a free port),
/// else its default.
fn listen_address(
    explicit: Option<&str>,
    port_base: Option<u16>,
    offset: u16,
    default: &str,
) -> String {
    match (explicit, port_base) {
        (Some(address), _) => address.to_string(),
        (None, Some(0)) => "127.0.0.1:0".to_string(),
        (None, Some(base)) => format!("127.0.0.1:{}", base.saturating_add(offset)),
        (None, None) => default.to_string(),
    }
}

impl ServeArgs {
    fn options(&self) -> ServerOptions {
        let address = |explicit: &Option<String>, offset, default| {
            listen_address(explicit.as_deref(), self.port_base, offset, default)
        };
        ServerOptions {
            listen: address(&self.listen, 0, "127.0.0.1:3000"),
            admin_listen: address(&self.admin_listen, 1, "127.0.0.1:3001"),
            port_base: self.port_base,
            admin_token: self.admin_token.clone(),
            data_dir: self.data_dir.clone(),
            database: self.database.clone(),
            node_name: self.node_name.clone().or_else(|| match self.database {
                crate::database::DatabaseLocation::Postgres(_) => host_name(),
                _ => None,
            }),
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms),
            pooling: !self.no_pooling,
            metering: !self.no_metering,
            report_lines: self.report_lines,
            storage: StorageSettings {
                listen: address(&self.storage_listen, 2, "127.0.0.1:9000"),
                access_key: self.storage_access_key.clone(),
                secret_key: self.storage_secret_key.clone(),
                max_object_bytes: self.storage_max_object_bytes,
                dir: self.storage_dir.clone(),
            },
            metering_retention: Duration::from_secs(
                u64::from(self.metering_retention_days) * 24 * 3600,
            ),
            prices: crate::metering::Prices {
                per_million_invocations: self.price_per_million_invocations,
                per_gb_second: self.price_per_gb_second,
                free_invocations: self.free_invocations,
                free_gb_seconds: self.free_gb_seconds,
            },
            watch_roots: self.watch_roots.clone(),
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            max_connections: self
                .max_connections
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }
}

/// Arguments of `kumo up` and `kumo dev`.
#[derive(Debug, clap::Args)]
struct UpArgs {
    /// The manifest.
    #[arg(short = 'f', long = "file", default_value = "kumo.toml")]
    manifest: PathBuf,
    /// Run each function's `build` command first.
    #[arg(long)]
    build: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

/// Where a client verb finds the admin API and its token.
#[derive(Debug, Clone, clap::Args)]
struct AdminArgs {
    /// The admin API's URL [default: the one the server wrote into
    /// <data-dir>/admin-url, else http://127.0.0.1:3001].
    #[arg(
        long = "admin-url",
        visible_alias = "server",
        env = "KUMO_SERVER",
        value_name = "URL"
    )]
    server: Option<String>,
    /// The data directory to read the admin token (and the admin API's
    /// URL) from, when KUMO_ADMIN_TOKEN (and --admin-url) is not set.
    #[arg(long, default_value = ".kumo", env = "KUMO_DATA_DIR")]
    data_dir: PathBuf,
}

/// How a client verb reaches the admin API, and prints what it gets.
#[derive(Debug, Clone, clap::Args)]
struct ClientArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// `table` (readable) or `json`.
    #[arg(long, short = 'o', default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

/// Arguments of `kumo deploy`.
#[derive(Debug, clap::Args)]
struct DeployArgs {
    /// The manifest.
    #[arg(short = 'f', long = "file", default_value = "kumo.toml")]
    manifest: PathBuf,
    /// Run each function's `build` command first.
    #[arg(long)]
    build: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum FunctionsCommand {
    /// List the functions.
    List(ClientArgs),
    /// Show a function's versions, aliases, triggers and instances.
    Show {
        /// The function.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a function with its versions and aliases.
    Delete {
        /// The function.
        name: String,
        /// Also delete the triggers that point at it.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AliasCommand {
    /// Point ALIAS of NAME at VERSION (with `--weight V=N`, send N% to V).
    Set {
        /// The function.
        name: String,
        /// The alias, such as `live`.
        alias: String,
        /// The version receiving the traffic.
        version: u32,
        /// A second version and its share, such as `2=10`.
        #[arg(long, value_name = "VERSION=N")]
        weight: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete an alias.
    Delete {
        /// The function.
        name: String,
        /// The alias.
        alias: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Arguments of `kumo invoke`.
#[derive(Debug, clap::Args)]
struct InvokeArgs {
    /// The function: `name`, `name:3` or `name:alias`.
    target: String,
    /// The request body.
    #[arg(long, short = 'd', conflicts_with = "data_file")]
    data: Option<String>,
    /// Read the request body from a file.
    #[arg(long, value_name = "PATH")]
    data_file: Option<PathBuf>,
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "K:V")]
    headers: Vec<String>,
    /// The path the function sees.
    #[arg(long, default_value = "/")]
    path: String,
    /// Send a sample event instead of a request: the document and headers
    /// a real event of this kind delivers (an upload in a storage
    /// trigger's format, a timer firing, a file in a watched folder).
    #[arg(long, value_enum, value_name = "KIND", conflicts_with_all = ["data", "data_file", "headers", "path"])]
    event: Option<crate::api::invoke::SampleEventKind>,
    /// With --event: the object's bucket [default: the bucket of the
    /// function's storage trigger].
    #[arg(long, requires = "event")]
    bucket: Option<String>,
    /// With --event: the object's key, or the file's path in the watched
    /// folder [default: `example` with the trigger's prefix and suffix].
    #[arg(long, requires = "event")]
    key: Option<String>,
    /// Queue the call and print its invocation id at once, instead of
    /// waiting for the answer (`X-Kumo-Invocation-Type: Event`).
    #[arg(long = "async", conflicts_with = "event")]
    asynchronous: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum InvocationsCommand {
    /// Where an asynchronous invocation is: queued, running, succeeded,
    /// failed or dead, with its attempts.
    Show {
        /// The invocation id `kumo invoke --async` printed.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Arguments of `kumo bill` (its own `--output`, which also takes `csv`).
#[derive(Debug, clap::Args)]
struct BillArgs {
    /// From this time (RFC 3339, such as 2026-11-01T00:00:00Z), inclusive.
    #[arg(long)]
    from: Option<String>,
    /// Until this time (RFC 3339), exclusive.
    #[arg(long)]
    to: Option<String>,
    /// Only this function.
    #[arg(long)]
    function: Option<String>,
    /// One row per `function`, `version` or `hour`.
    #[arg(long, default_value = "function", value_parser = ["function", "version", "hour"])]
    group_by: String,
    #[command(flatten)]
    admin: AdminArgs,
    /// `table` (readable), `json` (the API's answer) or `csv` (the rows).
    #[arg(long, short = 'o', default_value = "table", value_parser = ["table", "json", "csv"])]
    output: String,
}

/// Arguments of `kumo logs`.
#[derive(Debug, clap::Args)]
struct LogsArgs {
    /// The function.
    name: String,
    /// Keep printing new lines as they arrive (until Ctrl-C or the server
    /// stops).
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only lines from this long ago (`30s`, `10m`, `2h`, `1d`) or since
    /// this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// At most the last N stored lines.
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// List events, newest first.
    List {
        /// Only events in this state: pending, retrying, dead or done.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Deliver a dead event again, now.
    Replay {
        /// The event's id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TriggersCommand {
    /// List the triggers.
    List(ClientArgs),
    /// Route requests to a function: `--route /greet/... --function greet:live`.
    Create {
        /// `/exact` or `/prefix/...`.
        #[arg(long, value_parser = parse_route)]
        route: crate::model::Route,
        /// What it invokes: `name`, `name:3` or `name:alias`.
        #[arg(long, value_name = "TARGET", value_parser = parse_target)]
        function: crate::model::Target,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Point an existing route (or any trigger, by id) at another target,
    /// in place: no moment without it.
    Update {
        /// The route (`/greet/...`) or the trigger's id (`trg_...`).
        #[arg(value_parser = client::TriggerSelector::parse)]
        trigger: client::TriggerSelector,
        /// The new target: `name`, `name:3` or `name:alias`.
        #[arg(long, value_name = "TARGET", value_parser = parse_target)]
        function: crate::model::Target,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a route (or any trigger, by id).
    Delete {
        /// The route (`/greet/...`) or the trigger's id (`trg_...`).
        #[arg(value_parser = client::TriggerSelector::parse)]
        trigger: client::TriggerSelector,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn parse_route(text: &str) -> Result<crate::model::Route, String> {
    crate::model::Route::try_from(text.to_string())
}

fn parse_target(text: &str) -> Result<crate::model::Target, String> {
    crate::model::Target::parse(text).map_err(|invalid| invalid.0)
}

/// Runs the command line; the process exits with the returned code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::up(args).await,
            Command::Server(args) => up::server(args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Deploy(args) => client::deploy(args).await,
            Command::Functions(command) => client::functions(command).await,
            Command::Alias(command) => client::alias(command).await,
            Command::Invoke(args) => client::invoke(args).await,
            Command::Triggers(command) => client::triggers(command).await,
            Command::Events(command) => client::events(command).await,
            Command::Invocations(command) => client::invocations(command).await,
            Command::Bill(args) => metering::bill(args).await,
            Command::Logs(args) => metering::logs(args).await,
            Command::New(args) => new::new_project(&args.name, args.lang, args.path.as_deref())
                .map(|folder| print!("{}", new::next_steps(&args.name, args.lang, &folder))),
            Command::Wit(args) => {
                wit::write_wit(&args.folder, args.wasi_version.as_deref()).map(|_| ())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    const DEFAULT_FILTER: &str = "info,wasmtime=warn,cranelift=warn";
    let requested = std::env::var("KUMO_LOG").or_else(|_| std::env::var("RUST_LOG"));
    if let Ok(text) = &requested {
        let lowercase = text.to_ascii_lowercase();
        let names_a_level = ["trace", "debug", "info", "warn", "error", "off"]
            .iter()
            .any(|level| lowercase.contains(level));
        if !names_a_level {
            eprintln!(
                "kumo: warning: the log filter `{text}` names no level (trace, debug, info, warn, error, off), \
                 so it only enables logs whose target is `{text}`; hint: write it like `info` or `info,kumo::pool=debug`"
            );
        }
    }
    let filter = match &requested {
        Ok(text) => EnvFilter::try_new(text).unwrap_or_else(|error| {
            eprintln!(
                "kumo: warning: ignoring the log filter `{text}` ({error}); hint: write it like `info` or `info,kumo::pool=debug`"
            );
            EnvFilter::new(DEFAULT_FILTER)
        }),
        Err(_) => EnvFilter::new(DEFAULT_FILTER),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listener_takes_its_flag_else_its_place_after_the_port_base_else_its_default() {
        // (explicit, port base, offset, default, expected)
        let cases = [
            (None, None, 0, "127.0.0.1:3000", "127.0.0.1:3000"),
            (None, Some(4000), 0, "127.0.0.1:3000", "127.0.0.1:4000"),
            (None, Some(4000), 1, "127.0.0.1:3001", "127.0.0.1:4001"),
            (None, Some(4000), 2, "127.0.0.1:9000", "127.0.0.1:4002"),
            (None, Some(65533), 2, "127.0.0.1:9000", "127.0.0.1:65535"),
            (None, Some(0), 1, "127.0.0.1:3001", "127.0.0.1:0"),
            (
                Some("0.0.0.0:8080"),
                Some(4000),
                0,
                "127.0.0.1:3000",
                "0.0.0.0:8080",
            ),
            (
                Some("127.0.0.1:0"),
                None,
                2,
                "127.0.0.1:9000",
                "127.0.0.1:0",
            ),
        ];
        for (explicit, base, offset, default, expected) in cases {
            assert_eq!(
                listen_address(explicit, base, offset, default),
                expected,
                "{explicit:?} {base:?} +{offset}"
            );
        }
    }

    #[test]
    fn port_base_moves_every_listener_the_flags_do_not_name() {
        let parsed = Cli::try_parse_from([
            "kumo",
            "server",
            "--port-base",
            "4000",
            "--admin-listen",
            "127.0.0.1:5555",
        ])
        .unwrap();
        let Command::Server(args) = parsed.command else {
            panic!("parsed another verb");
        };
        let options = args.options();
        assert_eq!(options.listen, "127.0.0.1:4000");
        assert_eq!(options.admin_listen, "127.0.0.1:5555");
        assert_eq!(options.storage.listen, "127.0.0.1:4002");
        assert!(Cli::try_parse_from(["kumo", "server", "--port-base", "65534"]).is_err());
    }
}
