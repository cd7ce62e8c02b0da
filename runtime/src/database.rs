//! The SQLite database in the data directory: opened once per process,
//! in WAL mode, with the schema migrations in `runtime/migrations/`
//! embedded at compile time and applied at start.
//!
//! One file (`<data-dir>/kumo.db`) holds the registry, the metering records
//! and the event queue. Queries are plain `sqlx` calls, so the same SQL can
//! later run on PostgreSQL, for several nodes sharing one database (not
//! built yet).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use sqlx::SqlitePool as Database;

/// Begins a transaction that will write: `BEGIN IMMEDIATE`, which takes
/// SQLite's write lock at once (waiting out the busy timeout if another
/// connection holds it). A plain `BEGIN` reads first and upgrades at its
/// first write, and that upgrade fails at once with "database is locked"
/// when another connection wrote in between, without waiting.
///
/// # Errors
///
/// The database's error, or the write lock still held by another
/// connection after the busy timeout.
pub(crate) async fn begin_write(
    database: &Database,
) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    database.begin_with("BEGIN IMMEDIATE").await
}

/// Whether an I/O error says the file system (or the user's quota) is full.
pub(crate) fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Whether SQLite refused a write because its disk is full (`SQLITE_FULL`,
/// which SQLite also reports for `ENOSPC`).
pub(crate) fn is_database_full(error: &sqlx::Error) -> bool {
    const SQLITE_FULL: i32 = 13;
    match error {
        sqlx::Error::Database(database) => database
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_FULL),
        sqlx::Error::Io(io) => is_disk_full(io),
        _ => false,
    }
}

/// The database file's name inside the data directory.
pub(crate) const FILE_NAME: &str = "kumo.db";

/// Opens (creating if needed) `<data_dir>/kumo.db` and migrates it.
///
/// # Errors
///
/// Fails when the file cannot be opened or created, or a migration fails
/// (for example a database written by a newer Kumo).
pub async fn open(data_dir: &Path) -> anyhow::Result<Database> {
    let path = data_dir.join(FILE_NAME);
    let options = SqliteConnectOptions::from_str("sqlite://")
        .expect("a constant URL parses")
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL with NORMAL is durable against a process kill (the OS keeps
        // the written pages); only a power loss may lose the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let database = SqlitePoolOptions::new()
        .max_connections(4)
        // A transaction whose COMMIT failed (disk full, an unwritable
        // file) can leave its connection believing it is still inside one,
        // and every later `BEGIN` on it fails: close such a connection
        // rather than hand it out again, so the pool recovers by itself
        // once the disk does.
        .after_release(|connection, _| {
            Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(connection)) })
        })
        .connect_with(options)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}; hint: is the data directory writable?",
                path.display()
            )
        })?;
    sqlx::migrate!("./migrations")
        .run(&database)
        .await
        .with_context(|| {
            format!(
                "cannot migrate the database {}; hint: was it written by a newer Kumo?",
                path.display()
            )
        })?;
    Ok(database)
}
