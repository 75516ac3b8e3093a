use serde::{Deserialize, Serialize};

/// SQLite durability (`PRAGMA synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// No commit is lost when a process is killed; one may be lost on a power cut. Fast.
    Normal,
    /// Every commit survives a power cut too, at the cost of an fsync per write.
    Full,
}

/// The subscriber and registration store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://...`; null means `imslab.db` in the data directory.
    pub url: Option<String>,
    /// Reader connections (SQLite; writes use one connection) or the pool size (PostgreSQL).
    pub max_connections: u32,
    /// How long SQLite waits for a lock held by another process (the CLI), milliseconds.
    pub busy_timeout_ms: u64,
    /// SQLite durability: `normal` or `full`.
    pub sqlite_synchronous: SqliteSynchronous,
    /// The per-UE diagnosis timeline keeps at most this many events (the newest).
    pub ue_events_max_rows: u64,
    /// The per-UE diagnosis timeline drops events older than this many hours.
    pub ue_events_max_age_hours: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 8,
            busy_timeout_ms: 5000,
            sqlite_synchronous: SqliteSynchronous::Normal,
            ue_events_max_rows: 100_000,
            ue_events_max_age_hours: 168,
        }
    }
}

impl StoreConfig {
    /// True for `sqlite_synchronous: full`.
    pub fn sqlite_synchronous_full(&self) -> bool {
        self.sqlite_synchronous == SqliteSynchronous::Full
    }
}

pub(crate) const YAML: &str = r#"
# The subscriber and registration store (SQL through sqlx).
store:
  # sqlite://PATH or postgres://user:pass@host/db. null: SQLite file imslab.db in data_dir.
  url: null
  # Reader connections for SQLite (writes go through one connection), pool size for PostgreSQL.
  max_connections: 8
  # How long SQLite waits for a lock held by another process (the CLI), milliseconds.
  busy_timeout_ms: 5000
  # SQLite durability: normal (a killed process never loses a commit) or full (also power cuts,
  # much slower writes).
  sqlite_synchronous: normal
  # The per-UE diagnosis timeline keeps at most this many events, the newest.
  ue_events_max_rows: 100000
  # ...and drops events older than this many hours.
  ue_events_max_age_hours: 168
"#;
