//! The per-UE diagnosis timeline: [`UeEvent`]s persisted in batches, read back per phone, and
//! pruned to a size and age bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use imslab_types::{Function, Impi, Impu, Imsi, Outcome, UeEvent, UeEventSink, UeRef};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backend::{events, from_unix_ms, unix_ms};
use crate::{Error, Store};

/// An event read back from the store (its step is an owned string).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredUeEvent {
    /// Row id; increases with insertion order.
    pub id: i64,
    /// When it happened.
    pub at: SystemTime,
    /// The function that reported it, as its kebab-case name (`hss`, `scscf`...).
    pub function: String,
    /// Which phone.
    pub ue: UeRef,
    /// Step name.
    pub step: String,
    /// `ok`, `failed` or `info`.
    pub outcome: String,
    /// Why, for failures.
    pub reason: Option<String>,
}

/// Which events to read: those matching any of the given identities, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Match this IMSI.
    pub imsi: Option<Imsi>,
    /// Match this IMPI.
    pub impi: Option<Impi>,
    /// Match this IMPU.
    pub impu: Option<Impu>,
    /// Only events at or after this time.
    pub since: Option<SystemTime>,
    /// At most this many (default 200).
    pub limit: Option<i64>,
}

/// How much of the timeline to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many events (the newest).
    pub max_rows: u64,
    /// Drop events older than this.
    pub max_age: Duration,
}

fn function_name(f: Function) -> String {
    serde_json::to_value(f)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{f:?}").to_ascii_lowercase())
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Failed => "failed",
        Outcome::Info => "info",
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    at: i64,
    function: String,
    imsi: Option<String>,
    impi: Option<String>,
    impu: Option<String>,
    step: String,
    outcome: String,
    reason: Option<String>,
}

/// The timeline repository: `store.ue_events()`.
#[derive(Debug, Clone, Copy)]
pub struct UeEvents<'a> {
    pub(crate) store: &'a Store,
}

impl UeEvents<'_> {
    /// Inserts `events` atomically: on PostgreSQL one statement over arrays (one prepared
    /// statement whatever the count: a VALUES list per batch size made the server parse and plan
    /// a new statement for most batches); on SQLite one statement per 100 events, in one
    /// transaction.
    pub async fn insert(&self, events: &[UeEvent]) -> Result<(), Error> {
        const OP: &str = "ue_events.insert";
        if events.is_empty() {
            return Ok(());
        }
        if let crate::backend::Backend::Postgres(p) = &self.store.backend {
            let text = |f: fn(&UeEvent) -> Option<String>| events.iter().map(f).collect::<Vec<_>>();
            return sqlx::query(
                "INSERT INTO ue_events (at, function, imsi, impi, impu, step, outcome, reason) \
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], \
                 $5::text[], $6::text[], $7::text[], $8::text[])",
            )
            .bind(events.iter().map(|e| unix_ms(e.at)).collect::<Vec<i64>>())
            .bind(text(|e| Some(function_name(e.function))))
            .bind(text(|e| e.ue.imsi.as_ref().map(|v| v.as_str().to_owned())))
            .bind(text(|e| e.ue.impi.as_ref().map(|v| v.as_str().to_owned())))
            .bind(text(|e| e.ue.impu.as_ref().map(|v| v.as_str().to_owned())))
            .bind(text(|e| Some(e.step.to_owned())))
            .bind(text(|e| Some(outcome_name(e.outcome).to_owned())))
            .bind(text(|e| e.reason.clone()))
            .execute(p)
            .await
            .map(|_| ())
            .map_err(Error::query(OP));
        }
        events!(self.store, |p| {
            async {
                let mut tx = p.begin().await.map_err(Error::query(OP))?;
                for chunk in events.chunks(100) {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO ue_events (at, function, imsi, impi, impu, step, outcome, reason) ",
                    );
                    qb.push_values(chunk, |mut b, e| {
                        b.push_bind(unix_ms(e.at))
                            .push_bind(function_name(e.function))
                            .push_bind(e.ue.imsi.as_ref().map(|v| v.as_str().to_owned()))
                            .push_bind(e.ue.impi.as_ref().map(|v| v.as_str().to_owned()))
                            .push_bind(e.ue.impu.as_ref().map(|v| v.as_str().to_owned()))
                            .push_bind(e.step)
                            .push_bind(outcome_name(e.outcome))
                            .push_bind(e.reason.clone());
                    });
                    qb.build().execute(&mut *tx).await.map_err(Error::query(OP))?;
                }
                tx.commit().await.map_err(Error::query(OP))
            }
            .await
        })
    }

    /// Events matching `filter`, newest first.
    pub async fn query(&self, filter: &EventFilter) -> Result<Vec<StoredUeEvent>, Error> {
        let rows: Vec<Row> = events!(self.store, |p| {
            sqlx::query_as(
                "SELECT id, at, function, imsi, impi, impu, step, outcome, reason FROM ue_events \
                 WHERE (imsi = $1 OR impi = $2 OR impu = $3 OR ($1 IS NULL AND $2 IS NULL AND $3 IS NULL)) \
                 AND at >= $4 ORDER BY id DESC LIMIT $5",
            )
            .bind(filter.imsi.as_ref().map(|v| v.as_str().to_owned()))
            .bind(filter.impi.as_ref().map(|v| v.as_str().to_owned()))
            .bind(filter.impu.as_ref().map(|v| v.as_str().to_owned()))
            .bind(filter.since.map_or(0, unix_ms))
            .bind(filter.limit.unwrap_or(200))
            .fetch_all(p)
            .await
        })
        .map_err(Error::query("ue_events.query"))?;
        Ok(rows
            .into_iter()
            .map(|r| StoredUeEvent {
                id: r.id,
                at: from_unix_ms(r.at),
                function: r.function,
                ue: UeRef {
                    imsi: r.imsi.and_then(|v| Imsi::new(v).ok()),
                    impi: r.impi.and_then(|v| Impi::new(v).ok()),
                    impu: r.impu.and_then(|v| Impu::new(v).ok()),
                },
                step: r.step,
                outcome: r.outcome,
                reason: r.reason,
            })
            .collect())
    }

    /// Deletes events older than `now - retention.max_age` and all but the newest
    /// `retention.max_rows`. Returns how many were deleted.
    pub async fn prune(&self, retention: Retention, now: SystemTime) -> Result<u64, Error> {
        const OP: &str = "ue_events.prune";
        let cutoff = now.checked_sub(retention.max_age).map_or(0, unix_ms);
        let keep = i64::try_from(retention.max_rows).unwrap_or(i64::MAX);
        let by_age = events!(self.store, |p| {
            sqlx::query("DELETE FROM ue_events WHERE at < $1")
                .bind(cutoff)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(Error::query(OP))?;
        let by_count = events!(self.store, |p| {
            sqlx::query(
                "DELETE FROM ue_events WHERE id <= \
                 (SELECT id FROM ue_events ORDER BY id DESC LIMIT 1 OFFSET $1)",
            )
            .bind(keep)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(Error::query(OP))?;
        Ok(by_age + by_count)
    }

    /// Number of stored events.
    pub async fn count(&self) -> Result<i64, Error> {
        events!(self.store, |p| {
            sqlx::query_scalar("SELECT COUNT(*) FROM ue_events")
                .fetch_one(p)
                .await
        })
        .map_err(Error::query("ue_events.count"))
    }
}

/// Settings of an [`EventRecorder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderOptions {
    /// Events queued before new ones are dropped (and counted).
    pub capacity: usize,
    /// At most this long between an event and its insertion.
    pub flush_interval: Duration,
    /// The timeline bound, applied every `prune_interval`.
    pub retention: Retention,
    /// How often to prune.
    pub prune_interval: Duration,
}

impl RecorderOptions {
    /// The defaults with the retention of the `store:` configuration section.
    pub fn from_config(cfg: &imslab_config::StoreConfig) -> Self {
        Self {
            retention: Retention {
                max_rows: cfg.ue_events_max_rows,
                max_age: Duration::from_secs(cfg.ue_events_max_age_hours.saturating_mul(3600)),
            },
            ..Self::default()
        }
    }
}

impl Default for RecorderOptions {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            flush_interval: Duration::from_millis(200),
            retention: Retention {
                max_rows: 100_000,
                max_age: Duration::from_secs(7 * 86_400),
            },
            prune_interval: Duration::from_secs(60),
        }
    }
}

/// A [`UeEventSink`] that never blocks: events go to a bounded queue that a background task
/// writes to the store in batches. When the queue is full the event is dropped and counted
/// ([`EventRecorder::dropped`]); a timeline must not slow down Cx or SIP.
#[derive(Debug, Clone)]
pub struct EventRecorder {
    tx: mpsc::Sender<UeEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventRecorder {
    /// Starts the writer task on the current tokio runtime. It ends, after a last flush, when
    /// every clone of the recorder is dropped.
    pub fn spawn(store: Store, opts: RecorderOptions) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(opts.capacity.max(1));
        let handle = tokio::spawn(run_recorder(store, rx, opts));
        (
            Self {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            handle,
        )
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl UeEventSink for EventRecorder {
    fn emit(&self, event: UeEvent) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn run_recorder(store: Store, mut rx: mpsc::Receiver<UeEvent>, opts: RecorderOptions) {
    let mut batch = Vec::with_capacity(1024);
    let mut last_prune = tokio::time::Instant::now();
    loop {
        let Some(first) = rx.recv().await else { break };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + opts.flush_interval;
        while batch.len() < 4096 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                Ok(None) | Err(_) => break,
            }
        }
        if let Err(e) = store.ue_events().insert(&batch).await {
            tracing::warn!(error = %e, events = batch.len(), "cannot record UE events");
        }
        batch.clear();
        if last_prune.elapsed() >= opts.prune_interval {
            last_prune = tokio::time::Instant::now();
            if let Err(e) = store
                .ue_events()
                .prune(opts.retention, SystemTime::now())
                .await
            {
                tracing::warn!(error = %e, "cannot prune UE events");
            }
        }
    }
}
