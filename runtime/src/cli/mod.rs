//! The `kumo` command line: argument parsing and the verbs.
//!
//! Verbs print what a person needs on stdout (the address, the routes) and
//! log to stderr through `tracing` (`KUMO_LOG` or `RUST_LOG` set the filter).
//! Errors are one clear line and a non-zero exit.

mod build;
mod storage;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Kumo: a serverless runtime for WebAssembly functions.
#[derive(Debug, Parser)]
#[command(name = "kumo", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the functions of a manifest over HTTP.
    Up(UpArgs),
}

/// Arguments of `kumo up`.
#[derive(Debug, clap::Args)]
struct UpArgs {
    /// The manifest.
    #[arg(short = 'f', long = "file", default_value = "kumo.toml")]
    manifest: PathBuf,
    /// Run each function's `build` command first.
    #[arg(long)]
    build: bool,
    /// Address of the function gateway (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:3000", env = "KUMO_LISTEN")]
    listen: String,
    /// Where Kumo keeps its state (the compile cache, today).
    #[arg(long, default_value = ".kumo", env = "KUMO_DATA_DIR")]
    data_dir: PathBuf,
    /// How long in-flight requests may run on after Ctrl-C or SIGTERM.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    shutdown_timeout_ms: u64,
    /// Allocate instances on demand instead of from the pooling allocator.
    #[arg(long)]
    no_pooling: bool,
    #[command(flatten)]
    storage: storage::StorageArgs,
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
    let result = match cli.command {
        Command::Up(args) => runtime.block_on(up::run(args)),
    };
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
