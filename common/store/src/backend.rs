//! Opening the database: SQLite (a file, WAL mode, one writer connection and a pool of readers) or
//! PostgreSQL (one pool), with the embedded migrations applied.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::Error;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static SQLITE_EVENT_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/sqlite-events");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How to open the store. Build it with [`StoreOptions::new`] or [`StoreOptions::sqlite_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// `sqlite:PATH`, `sqlite::memory:` or `postgres://user:pass@host:port/db`.
    pub url: String,
    /// Reader connections (SQLite; 1 means reads share the single writer connection) or the
    /// pool size (PostgreSQL).
    pub max_connections: u32,
    /// How long an SQLite connection waits for a lock held by another process (the CLI) before
    /// failing with "database is locked".
    pub busy_timeout: Duration,
    /// SQLite `synchronous=FULL` instead of `NORMAL`. `NORMAL` in WAL mode never loses a commit
    /// when the process is killed; `FULL` also survives a power cut, at a large cost per write.
    pub sqlite_synchronous_full: bool,
}

impl StoreOptions {
    /// Options for `url` with the defaults: 8 connections, 5 s busy timeout, `synchronous=NORMAL`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
            sqlite_synchronous_full: false,
        }
    }

    /// Options for an SQLite file, created if missing.
    pub fn sqlite_file(path: &Path) -> Self {
        Self::new(format!("sqlite://{}", path.display()))
    }

    /// Options from the `store:` configuration section; without `url`, the SQLite file
    /// `imslab.db` in `data_dir`.
    pub fn from_config(cfg: &imslab_config::StoreConfig, data_dir: &Path) -> Self {
        let mut o = match &cfg.url {
            Some(url) => Self::new(url.clone()),
            None => Self::sqlite_file(&data_dir.join("imslab.db")),
        };
        o.max_connections = cfg.max_connections;
        o.busy_timeout = Duration::from_millis(cfg.busy_timeout_ms);
        o.sqlite_synchronous_full = cfg.sqlite_synchronous_full();
        o
    }
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// `write` has a single connection: SQLite admits one writer at a time, and queueing writers
    /// in-process is much cheaper than retrying on SQLITE_BUSY. `read` serves concurrent readers.
    /// `events` holds the per-UE timeline in its own file (`<store>-events.db`) with its own
    /// writer, so recording events never holds the lock Cx needs.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
        events: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the reader pool of the backend.
macro_rules! read {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.backend {
            $crate::backend::Backend::Sqlite { read: $p, .. } => $body,
            $crate::backend::Backend::Postgres($p) => $body,
        }
    };
}

/// Runs `$body` with `$p` bound to the writer pool of the backend.
macro_rules! write {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.backend {
            $crate::backend::Backend::Sqlite { write: $p, .. } => $body,
            $crate::backend::Backend::Postgres($p) => $body,
        }
    };
}

/// Runs `$body` with `$p` bound to the pool of the per-UE timeline.
macro_rules! events {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.backend {
            $crate::backend::Backend::Sqlite { events: $p, .. } => $body,
            $crate::backend::Backend::Postgres($p) => $body,
        }
    };
}

/// Runs `$body` inside a write transaction `$tx` (SQLite: `BEGIN IMMEDIATE`, so the write lock is
/// taken up front and a concurrent writer in another process waits instead of failing). `$body`
/// evaluates to `Result<T, Error>`; the transaction commits on `Ok` and rolls back on `Err`.
macro_rules! transaction {
    ($store:expr, $op:expr, |$tx:ident| $body:expr) => {
        match &$store.backend {
            $crate::backend::Backend::Sqlite { write, .. } => {
                let mut $tx = write
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err($crate::Error::query($op))?;
                let out = $body;
                if out.is_ok() {
                    $tx.commit().await.map_err($crate::Error::query($op))?;
                }
                out
            }
            $crate::backend::Backend::Postgres(pool) => {
                let mut $tx = pool.begin().await.map_err($crate::Error::query($op))?;
                let out = $body;
                if out.is_ok() {
                    $tx.commit().await.map_err($crate::Error::query($op))?;
                }
                out
            }
        }
    };
}

pub(crate) use {events, read, transaction, write};

/// The subscriber and registration store. Cheap to clone: clones share the connection pools.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
}

impl Store {
    /// Opens (creating an SQLite file if missing) and migrates the store.
    pub async fn open(opts: &StoreOptions) -> Result<Self, Error> {
        let url = redact(&opts.url);
        if opts.url.starts_with("sqlite:") {
            Self::open_sqlite(opts, url).await
        } else if opts.url.starts_with("postgres://") || opts.url.starts_with("postgresql://") {
            Self::open_postgres(opts, url).await
        } else {
            Err(Error::UnsupportedUrl { url })
        }
    }

    async fn open_sqlite(opts: &StoreOptions, url: String) -> Result<Self, Error> {
        let connect = |source| Error::Connect {
            url: url.clone(),
            source,
        };
        let base = SqliteConnectOptions::from_str(&opts.url)
            .map_err(connect)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(opts.busy_timeout)
            .foreign_keys(true)
            .synchronous(if opts.sqlite_synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            });
        let memory = opts.url.contains(":memory:") || opts.url.contains("mode=memory");
        // No ping before each acquire (sqlx's default): the connection is in this process and
        // cannot hang up, and on SQLite every ping is one more round trip to the connection's
        // worker thread (two thread wake-ups) per statement.
        let write = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(base.clone())
            .await
            .map_err(connect)?;
        SQLITE_MIGRATIONS.run(&write).await?;
        // An in-memory database exists only on its one connection: readers share it. With
        // `max_connections` 1, reads share the writer too: no cross-connection locking, and its
        // page cache stays valid across its own writes (the fastest setting for write-heavy
        // loads such as MAR).
        let read = if memory || opts.max_connections <= 1 {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(opts.max_connections.max(1))
                .connect_with(base.clone().read_only(true))
                .await
                .map_err(connect)?
        };
        let events = if memory {
            write.clone()
        } else {
            let path = base.get_filename().to_path_buf();
            let mut name = path
                .file_stem()
                .map(|s| s.to_os_string())
                .unwrap_or_default();
            name.push("-events.db");
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(1)
                .connect_with(base.clone().filename(path.with_file_name(name)))
                .await
                .map_err(connect)?
        };
        let mut events_migrator = sqlx::migrate::Migrator::with_migrations(
            SQLITE_EVENT_MIGRATIONS.iter().cloned().collect(),
        );
        // In memory both sets share one `_sqlx_migrations` table.
        events_migrator.set_ignore_missing(true);
        events_migrator.run(&events).await?;
        Ok(Self {
            backend: Backend::Sqlite {
                read,
                write,
                events,
            },
        })
    }

    async fn open_postgres(opts: &StoreOptions, url: String) -> Result<Self, Error> {
        let connect = |source| Error::Connect {
            url: url.clone(),
            source,
        };
        let pg = PgConnectOptions::from_str(&opts.url).map_err(connect)?;
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.busy_timeout.max(Duration::from_secs(1)))
            .connect_with(pg)
            .await
            .map_err(connect)?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Self {
            backend: Backend::Postgres(pool),
        })
    }

    /// Which database this is.
    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite { .. } => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Closes every connection, waiting for running queries.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite {
                read,
                write,
                events,
            } => {
                read.close().await;
                write.close().await;
                events.close().await;
            }
            Backend::Postgres(p) => p.close().await,
        }
    }
}

/// `url` with the password (between `:` and `@` in the authority) replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Unix milliseconds of `t`, saturating (times before 1970 become 0).
pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `ms` Unix milliseconds denote.
pub(crate) fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://hss:secret@db:5432/imslab"),
            "postgres://hss:***@db:5432/imslab"
        );
        assert_eq!(
            redact("postgres://hss@db/imslab"),
            "postgres://hss@db/imslab"
        );
        assert_eq!(
            redact("sqlite:///var/lib/imslab.db"),
            "sqlite:///var/lib/imslab.db"
        );
    }

    #[test]
    fn unix_ms_round_trips() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(from_unix_ms(unix_ms(t)), t);
    }
}
