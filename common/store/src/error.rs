//! The store's error type.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database URL is neither `sqlite:` nor `postgres://`/`postgresql://`.
    #[error("unsupported store URL {url:?}: expected sqlite:PATH or postgres://...")]
    UnsupportedUrl {
        /// The URL with any password removed.
        url: String,
    },
    /// Connecting to or opening the database failed.
    #[error("cannot open the store at {url}: {source}")]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("applying store migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("store query `{op}` failed: {source}")]
    Query {
        /// The repository operation, for example `subscribers.next_sqn`.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A batched statement failed; every request of the batch gets this error.
    #[error("store batch `{op}` failed: {source}")]
    Batch {
        /// The operation.
        op: &'static str,
        /// The driver's error, shared by the batch.
        #[source]
        source: std::sync::Arc<sqlx::Error>,
    },
    /// A batching task (SQN allocator, subscriber loader) is gone: the runtime is shutting down.
    #[error("the {what} has stopped")]
    BatcherStopped {
        /// Which one.
        what: &'static str,
    },
    /// A row that must exist was not found.
    #[error("{what} {key:?} not found")]
    NotFound {
        /// What was looked up (subscriber, public identity, profile...).
        what: &'static str,
        /// The key used.
        key: String,
    },
    /// Inserting would violate a uniqueness rule.
    #[error("{what} {key:?} already exists")]
    Duplicate {
        /// What is duplicated (IMSI, IMPI, IMPU, profile name).
        what: &'static str,
        /// The duplicated value.
        key: String,
    },
    /// A stored value no longer parses into its type (hand-edited database, older schema).
    #[error("stored {column} of row {row} is invalid: {reason}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// The row's key.
        row: String,
        /// What is wrong.
        reason: String,
    },
    /// Provisioning input was invalid; every problem is listed.
    #[error("invalid subscriber: {}", join(.errors))]
    InvalidSubscriber {
        /// The problems, in field order.
        errors: Vec<crate::provision::FieldError>,
    },
    /// A CSV import had invalid lines; nothing was changed.
    #[error("{} invalid line(s), nothing imported: {}", .lines.len(), join(.lines))]
    InvalidImport {
        /// Every bad line with its problems.
        lines: Vec<crate::provision::LineError>,
    },
    /// A CSV file could not be read as CSV or has no recognisable layout.
    #[error("CSV line {line}: {message}")]
    CsvFormat {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The SQN space of a subscriber is exhausted (2^48 values, TS 33.102 Annex C).
    #[error("SQN of {impi} would pass 2^48")]
    SqnExhausted {
        /// The private identity.
        impi: String,
    },
}

impl Error {
    pub(crate) fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { op, source }
    }

    pub(crate) fn corrupt(
        column: &'static str,
        row: impl Into<String>,
        reason: impl ToString,
    ) -> Self {
        Self::Corrupt {
            column,
            row: row.into(),
            reason: reason.to_string(),
        }
    }
}

/// Maps a unique-constraint violation to [`Error::Duplicate`], everything else to [`Error::Query`].
pub(crate) fn unique_or_query(
    op: &'static str,
    what: &'static str,
    key: impl Into<String>,
) -> impl FnOnce(sqlx::Error) -> Error {
    let key = key.into();
    move |source| match &source {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Duplicate { what, key },
        _ => Error::Query { op, source },
    }
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
