//! Group commit of SQN handouts: concurrent MARs queue their request and one statement
//! reserves the SQNs of many subscribers at once.
//!
//! The SQN row is the hottest row of the HSS: every MAR advances it. On SQLite all writes go
//! through one connection and every statement costs two thread switches, so at thousands of
//! MARs per second the round trips, not SQLite, are the limit. The allocator takes whatever
//! requests are queued (up to [`MAX_BATCH`]), adds up the counts per private identity, and runs
//! one statement (SQLite: `UPDATE … FROM (VALUES …) RETURNING`; PostgreSQL: `UPDATE … WHERE
//! impi = ANY($4) RETURNING` over arrays): one transaction, durable before any requester gets
//! its SQNs. The SQNs of one identity are then dealt out in queue order, each requester getting
//! consecutive values, exactly as if the requests had run one by one. The statement also returns
//! each subscriber's [`Revision`], so a server that cached the subscriber learns in the same round
//! trip whether its copy is current ([`SqnAllocator::grant`]).

use std::collections::HashMap;

use imslab_types::{Impi, Sqn};
use tokio::sync::{mpsc, oneshot};

use crate::backend::Backend;
use crate::model::Revision;
use crate::repo::subscribers::batch_from_new;
use crate::{Error, Store};

/// Most requests one statement serves.
pub const MAX_BATCH: usize = 256;

struct Request {
    impi: Impi,
    count: u32,
    reply: oneshot::Sender<Result<SqnGrant, Error>>,
}

/// SQNs reserved for one request, and the subscriber's revision as the reserving statement saw
/// it: whoever read the subscriber at that revision read what is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqnGrant {
    /// The SQNs, consecutive, each handed out once.
    pub sqns: Vec<Sqn>,
    /// The subscriber's revision, when the batch statement served the request (`None` when the
    /// single-row path did).
    pub revision: Option<Revision>,
}

/// A handle to the allocator task. Cheap to clone; the task ends when every handle is dropped.
///
/// One task runs one statement at a time, on both backends: while it runs, the next batch
/// queues. Parallel lanes (one statement each) were tried on PostgreSQL: with the server on the
/// same two cores, four lanes cost twice the CPU per MAR of one (mar_load: 92 against 47 µs in
/// PostgreSQL, 66 against 45 µs in the HSS) for no more answers per second.
#[derive(Debug, Clone)]
pub struct SqnAllocator {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::write!(f, "Request({}, {})", self.impi, self.count)
    }
}

impl SqnAllocator {
    /// Starts the allocator on the current tokio runtime, for SQNs with `ind_bits` of IND.
    pub fn spawn(store: Store, ind_bits: u8) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, ind_bits.min(16), rx));
        Self { tx }
    }

    /// The next `count` SQNs of `impi`, with the guarantees of
    /// [`crate::Subscribers::next_sqns`] (which this is equivalent to, batched).
    pub async fn next_sqns(&self, impi: &Impi, count: u32) -> Result<Vec<Sqn>, Error> {
        Ok(self.grant(impi, count).await?.sqns)
    }

    /// Like [`Self::next_sqns`], with the subscriber's revision read by the same statement: a
    /// subscriber read at that revision (from a cache, say) is current.
    pub async fn grant(&self, impi: &Impi, count: u32) -> Result<SqnGrant, Error> {
        if count == 0 {
            return Ok(SqnGrant {
                sqns: Vec::new(),
                revision: None,
            });
        }
        let (reply, rx) = oneshot::channel();
        let req = Request {
            impi: impi.clone(),
            count,
            reply,
        };
        self.tx.send(req).await.map_err(|_| Error::BatcherStopped {
            what: "SQN allocator",
        })?;
        rx.await.map_err(|_| Error::BatcherStopped {
            what: "SQN allocator",
        })?
    }
}

/// The PostgreSQL connection the allocator keeps (its own, outside the pool, so that closing the
/// store never waits for it), set to use the generic plan of [`PG_STATEMENT`]: with the default
/// `plan_cache_mode` the server re-plans it for every batch (a custom plan looks cheaper for
/// small arrays), a sixth of its CPU under MAR load.
type PgConn = Option<sqlx::PgConnection>;

async fn run(store: Store, ind_bits: u8, mut rx: mpsc::Receiver<Request>) {
    let mut pg: PgConn = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        serve(&store, &mut pg, ind_bits, &mut batch).await;
    }
}

/// The PostgreSQL batch statement: `$4` the identities, `$5` how many SQNs each.
const PG_STATEMENT: &str = "UPDATE subscribers SET \
    sqn = ((((sqn >> $1) + ($5::bigint[])[array_position($4::text[], impi)]) << $1) \
    | ((sqn + ($5::bigint[])[array_position($4::text[], impi)]) & $2)) \
    WHERE impi = ANY($4::text[]) AND (sqn >> $1) + ($5::bigint[])[array_position($4::text[], impi)] < $3 \
    RETURNING impi, sqn, revision";

/// The SQLite batch statement for `n` distinct identities (n a power of two: few statements to
/// cache).
fn statement(n: usize) -> String {
    let mut values = String::new();
    for i in 0..n {
        if i > 0 {
            values.push_str(", ");
        }
        values.push_str(&format!("(${}, ${})", 4 + 2 * i, 5 + 2 * i));
    }
    format!(
        "UPDATE subscribers SET sqn = ((((sqn >> $1) + v.column2) << $1) | ((sqn + v.column2) & $2)) \
         FROM (VALUES {values}) AS v WHERE subscribers.impi = v.column1 \
         AND (subscribers.sqn >> $1) + v.column2 < $3 \
         RETURNING subscribers.impi, subscribers.sqn, subscribers.revision"
    )
}

async fn pg_statement(
    pool: &sqlx::PgPool,
    pg: &mut PgConn,
    ind_bits: u8,
    mask: i64,
    seq_limit: i64,
    impis: Vec<String>,
    counts: Vec<i64>,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    let conn = match pg {
        Some(c) => c,
        None => {
            let mut c =
                <sqlx::PgConnection as sqlx::Connection>::connect_with(&pool.connect_options())
                    .await?;
            sqlx::query("SET plan_cache_mode = force_generic_plan")
                .execute(&mut c)
                .await?;
            pg.insert(c)
        }
    };
    let out = sqlx::query_as(PG_STATEMENT)
        .bind(i32::from(ind_bits))
        .bind(mask)
        .bind(seq_limit)
        .bind(impis)
        .bind(counts)
        .fetch_all(&mut *conn)
        .await;
    if out.is_err() {
        // A broken connection is replaced at the next batch.
        *pg = None;
    }
    out
}

async fn serve(store: &Store, pg: &mut PgConn, ind_bits: u8, batch: &mut Vec<Request>) {
    // Totals per identity, in first-appearance order.
    let mut order: Vec<(String, u64)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for r in batch.iter() {
        match index.get(r.impi.as_str()) {
            Some(&i) => order[i].1 += u64::from(r.count),
            None => {
                index.insert(r.impi.as_str(), order.len());
                order.push((r.impi.to_string(), u64::from(r.count)));
            }
        }
    }
    let mask = (1i64 << ind_bits) - 1;
    let seq_limit = 1i64 << (48 - u32::from(ind_bits));
    let result: Result<Vec<(String, i64, i64)>, sqlx::Error> = match &store.backend {
        Backend::Postgres(p) => {
            // One statement for every batch size; the `= ANY` condition is an index scan even
            // in the generic plan (a join with VALUES or unnest() is planned as a hash join over a
            // sequential scan of every subscriber).
            let (impis, counts): (Vec<String>, Vec<i64>) = order
                .iter()
                .map(|(i, n)| (i.clone(), i64::try_from(*n).unwrap_or(i64::MAX)))
                .unzip();
            pg_statement(p, pg, ind_bits, mask, seq_limit, impis, counts).await
        }
        Backend::Sqlite { write: p, .. } => {
            let slots = order.len().next_power_of_two();
            let sql = statement(slots);
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(i32::from(ind_bits))
                .bind(mask)
                .bind(seq_limit);
            for i in 0..slots {
                // Padding rows name no identity and match nothing.
                let (impi, n) = order.get(i).map_or(("", 0), |(s, n)| (s.as_str(), *n));
                q = q
                    .bind(impi.to_owned())
                    .bind(i64::try_from(n).unwrap_or(i64::MAX));
            }
            q.fetch_all(p).await
        }
    };
    let finals: HashMap<String, (u64, Revision)> = match result {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|(impi, v, rev)| u64::try_from(v).ok().map(|v| (impi, (v, Revision(rev)))))
            .collect(),
        Err(e) => {
            let e = std::sync::Arc::new(e);
            for r in batch.drain(..) {
                let _ = r.reply.send(Err(Error::Batch {
                    op: "subscribers.next_sqns",
                    source: e.clone(),
                }));
            }
            return;
        }
    };
    // Deal the SQNs out in queue order.
    let mut dealt: HashMap<String, (std::vec::IntoIter<Sqn>, Revision)> = HashMap::new();
    for (impi, total) in &order {
        if let Some((new, revision)) = finals.get(impi) {
            let all = batch_from_new(*new, u32::try_from(*total).unwrap_or(u32::MAX), ind_bits);
            dealt.insert(impi.clone(), (all.into_iter(), *revision));
        }
    }
    for r in batch.drain(..) {
        match dealt.get_mut(r.impi.as_str()) {
            Some((it, revision)) => {
                let sqns: Vec<Sqn> = it.by_ref().take(r.count as usize).collect();
                let _ = r.reply.send(Ok(SqnGrant {
                    sqns,
                    revision: Some(*revision),
                }));
            }
            // Unknown or exhausted: the single-statement path names the precise error.
            None => {
                let _ = r.reply.send(
                    store
                        .subscribers()
                        .next_sqns(&r.impi, r.count, ind_bits)
                        .await
                        .map(|sqns| SqnGrant {
                            sqns,
                            revision: None,
                        }),
                );
            }
        }
    }
}
