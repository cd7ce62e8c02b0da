//! The database: SQLite in the data directory (the default, one node), or
//! PostgreSQL shared by every node of a cluster (`--database postgres://...`).
//! Opened once per process; the schema migrations of the chosen dialect
//! (`runtime/migrations/sqlite/`, `runtime/migrations/postgres/`) are
//! embedded at compile time and applied at start.
//!
//! One database holds the registry, the metering records and the event
//! queue; on PostgreSQL it also holds the component bytes (`artifacts`),
//! the registry generation that tells nodes to reload, and every node's
//! guest log lines (`guest_log_lines`). Every query goes
//! through sqlx's `Any` driver, written once in the SQL both dialects
//! accept: `$1` placeholders (SQLite reads `$N` as the N-th argument),
//! `ON CONFLICT` upserts, 64-bit integers. The few statements that must
//! differ ask [`dialect`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sqlx::ConnectOptions;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

pub use sqlx::AnyPool as Database;

/// A transaction on the database, whichever dialect it speaks.
pub(crate) type Transaction = sqlx::Transaction<'static, sqlx::Any>;

/// Where the database is: `--database` / `KUMO_DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// `<data-dir>/kumo.db` (the default, also written `sqlite:`).
    DataDirectory,
    /// A SQLite file elsewhere (`sqlite:///path/kumo.db`).
    SqliteFile(PathBuf),
    /// A PostgreSQL server (`postgres://user@host:5432/database`), shared by
    /// the nodes of a cluster.
    Postgres(String),
}

impl DatabaseLocation {
    /// Parses a database URL.
    ///
    /// # Errors
    ///
    /// A scheme other than `sqlite:` or `postgres://` (`postgresql://`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || text == "sqlite:" || text == "sqlite://" {
            return Ok(Self::DataDirectory);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(text.to_string()));
        }
        if let Some(path) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            return Ok(Self::SqliteFile(PathBuf::from(path)));
        }
        Err(format!(
            "`{}` is not a database URL Kumo knows; hint: leave it out for SQLite in the data directory, or pass postgres://user@host:5432/database",
            without_password(text)
        ))
    }

    /// The URL as it may be shown: a PostgreSQL password is masked.
    pub fn display(&self) -> String {
        match self {
            Self::DataDirectory => "sqlite: (in the data directory)".to_string(),
            Self::SqliteFile(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => without_password(url),
        }
    }
}

/// `url` with its password (if any) replaced by `***`.
pub(crate) fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Which SQL dialect a database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// The embedded SQLite.
    Sqlite,
    /// A PostgreSQL server, possibly shared with other nodes.
    Postgres,
}

/// The dialect of an open database.
pub(crate) fn dialect(database: &Database) -> Dialect {
    if database
        .connect_options()
        .database_url
        .scheme()
        .starts_with("postgres")
    {
        Dialect::Postgres
    } else {
        Dialect::Sqlite
    }
}

/// The dialect of the database `transaction` is on.
pub(crate) fn transaction_dialect(transaction: &Transaction) -> Dialect {
    if transaction.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
        Dialect::Postgres
    } else {
        Dialect::Sqlite
    }
}

/// Begins a transaction that will write. On SQLite: `BEGIN IMMEDIATE`,
/// which takes the write lock at once (waiting out the busy timeout if
/// another connection holds it); a plain `BEGIN` reads first and upgrades
/// at its first write, and that upgrade fails at once with "database is
/// locked" when another connection wrote in between, without waiting. On
/// PostgreSQL a plain `BEGIN` (row locks are taken as rows are written).
///
/// # Errors
///
/// The database's error, or the write lock still held by another
/// connection after the busy timeout.
pub(crate) async fn begin_write(database: &Database) -> sqlx::Result<Transaction> {
    match dialect(database) {
        Dialect::Sqlite => database.begin_with("BEGIN IMMEDIATE").await,
        Dialect::Postgres => database.begin().await,
    }
}

/// Whether an I/O error says the file system (or the user's quota) is full.
pub(crate) fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Whether the database refused a write because its disk is full
/// (SQLite's `SQLITE_FULL`, which it also reports for `ENOSPC`, or
/// PostgreSQL's `disk_full`, 53100).
pub(crate) fn is_database_full(error: &sqlx::Error) -> bool {
    const SQLITE_FULL: i32 = 13;
    match error {
        sqlx::Error::Database(database) => database.code().is_some_and(|code| {
            code == "53100"
                || code
                    .parse::<i32>()
                    .is_ok_and(|code| code & 0xff == SQLITE_FULL)
        }),
        sqlx::Error::Io(io) => is_disk_full(io),
        _ => false,
    }
}

/// Whether an error says the database cannot be reached (a connection
/// refused or dropped, the pool out of connections), as opposed to a
/// statement the database refused: what a node answers 503 for.
pub(crate) fn is_unreachable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    )
}

/// The database file's name inside the data directory.
pub(crate) const FILE_NAME: &str = "kumo.db";

/// How long a request waits for a PostgreSQL connection before it fails
/// (and an admin write answers 503): short, so a database that went away
/// is reported rather than waited for.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens (creating if needed) the database and migrates it.
///
/// # Errors
///
/// Fails when the database cannot be opened, created or reached, or a
/// migration fails (for example a database written by a newer Kumo); the
/// message is one line naming the database (without its password) with a
/// hint.
pub async fn open(data_dir: &Path, location: &DatabaseLocation) -> anyhow::Result<Database> {
    sqlx::any::install_default_drivers();
    match location {
        DatabaseLocation::DataDirectory => open_sqlite(&data_dir.join(FILE_NAME)).await,
        DatabaseLocation::SqliteFile(path) => open_sqlite(path).await,
        DatabaseLocation::Postgres(url) => open_postgres(url).await,
    }
}

async fn open_sqlite(path: &Path) -> anyhow::Result<Database> {
    let url = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .to_url_lossy();
    let options = AnyConnectOptions::from_url(&url)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    let database = AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(|connection, _| {
            Box::pin(async move {
                // WAL with NORMAL is durable against a process kill (the OS
                // keeps the written pages); only a power loss may lose the
                // last commits.
                sqlx::raw_sql(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                )
                .execute(connection)
                .await?;
                Ok(())
            })
        })
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
    sqlx::migrate!("./migrations/sqlite")
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

async fn open_postgres(url: &str) -> anyhow::Result<Database> {
    let shown = without_password(url);
    let options: AnyConnectOptions = url.parse().with_context(|| {
        format!("`{shown}` is not a PostgreSQL URL; hint: write postgres://user:password@host:5432/database")
    })?;
    let unreachable = |error: sqlx::Error| {
        anyhow::anyhow!(
            "cannot connect to the database {shown}: {}; hint: is PostgreSQL running there, and do the user, password and database name exist?",
            one_line(&error.to_string())
        )
    };
    // One connection first: its error says why (refused, unknown
    // database, bad password), where the pool's would say it timed out.
    let probe = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options)
        .await
        .map_err(unreachable)?;
    let _ = sqlx::Connection::close(probe).await;
    let database = AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
        .after_release(|connection, _| {
            Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(connection)) })
        })
        .connect_with(options)
        .await
        .map_err(unreachable)?;
    // sqlx's migrator holds a PostgreSQL advisory lock while it migrates,
    // so nodes starting together apply each migration once.
    sqlx::migrate!("./migrations/postgres")
        .run(&database)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "cannot migrate the database {shown}: {}; hint: was it written by a newer Kumo, or is it another program's database?",
                one_line(&error.to_string())
            )
        })?;
    Ok(database)
}

/// An error's text on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Fresh PostgreSQL databases for tests (the unit tests' [`testing`] and
/// the cluster integration tests): each test creates its own database on
/// the server [`scratch::POSTGRES_URL_VARIABLE`] names and drops it.
#[doc(hidden)]
pub mod scratch {
    /// The environment variable naming the PostgreSQL server the tests
    /// create their databases on (`.ci/run` sets it).
    pub const POSTGRES_URL_VARIABLE: &str = "KUMO_TEST_POSTGRES_URL";

    /// A fresh database of its own on the test PostgreSQL server, dropped
    /// by [`ScratchPostgres::drop_database`].
    pub struct ScratchPostgres {
        server: String,
        name: String,
        /// The URL of the fresh database.
        pub url: String,
    }

    impl ScratchPostgres {
        /// Creates a database on the server of [`POSTGRES_URL_VARIABLE`],
        /// or `None` (printing that `test` was skipped, and why) when the
        /// variable is not set.
        ///
        /// # Panics
        ///
        /// The variable names a server that cannot be reached.
        pub async fn create(test: &str) -> Option<Self> {
            let Ok(server) = std::env::var(POSTGRES_URL_VARIABLE) else {
                println!(
                    "{test}: skipped on PostgreSQL: {POSTGRES_URL_VARIABLE} is not set (.ci/run sets it)"
                );
                return None;
            };
            let name = format!("kumo_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = connect(&server).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("the test server creates a database");
            let mut url = url::Url::parse(&server).expect("a PostgreSQL URL");
            url.set_path(&name);
            Some(Self {
                server,
                name,
                url: url.to_string(),
            })
        }

        /// Drops the database (closing its connections first).
        pub async fn drop_database(self) {
            let mut admin = connect(&self.server).await;
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
        }
    }

    async fn connect(url: &str) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        <sqlx::AnyConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap_or_else(|error| panic!("cannot reach {POSTGRES_URL_VARIABLE} ({url}): {error}"))
    }
}

/// Running a test against every backend: SQLite in a temp dir always, and
/// PostgreSQL when [`scratch::POSTGRES_URL_VARIABLE`] names a server.
#[cfg(test)]
pub(crate) mod testing {
    use std::panic::AssertUnwindSafe;

    use futures_util::FutureExt;

    use super::scratch::ScratchPostgres;
    use super::{Database, DatabaseLocation};

    /// Runs `test` on a fresh SQLite database, then on a fresh PostgreSQL
    /// database when one is configured (dropped afterwards, also when the
    /// test fails).
    pub(crate) async fn each_backend<F>(name: &str, test: F)
    where
        F: AsyncFn(Database),
    {
        let dir = tempfile::tempdir().unwrap();
        let database = super::open(dir.path(), &DatabaseLocation::DataDirectory)
            .await
            .unwrap();
        test(database).await;
        let Some(scratch) = ScratchPostgres::create(name).await else {
            return;
        };
        let location = DatabaseLocation::Postgres(scratch.url.clone());
        let outcome = AssertUnwindSafe(async {
            let database = super::open(dir.path(), &location).await.unwrap();
            test(database.clone()).await;
            database.close().await;
        })
        .catch_unwind()
        .await;
        scratch.drop_database().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}
