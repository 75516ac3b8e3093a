//! Batched subscriber lookups by private identity, for servers under load.
//!
//! Every MAR and UAR starts by loading its subscriber. On SQLite each query costs two thread
//! switches, more than the query itself; the loader takes the lookups queued while the previous
//! batch ran and answers them with one `… WHERE impi IN (…)` query; up to four batches run at
//! once, on separate connections.

use std::collections::HashMap;

use imslab_types::Impi;
use tokio::sync::{mpsc, oneshot};

use crate::backend::read;
use crate::model::{Revision, Subscriber};
use crate::repo::subscribers::{JOINED_SELECT, JoinedRow, group_joined};
use crate::{Error, Store};

/// Most lookups one query serves.
pub const MAX_BATCH: usize = 128;

struct Request {
    impi: Impi,
    reply: oneshot::Sender<Result<Option<(Subscriber, Revision)>, Error>>,
}

/// A handle to the loader task. Cheap to clone; the task ends when every handle is dropped.
#[derive(Debug, Clone)]
pub struct SubscriberLoader {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::write!(f, "Request({})", self.impi)
    }
}

impl SubscriberLoader {
    /// Starts the loader on the current tokio runtime.
    pub fn spawn(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, rx));
        Self { tx }
    }

    /// The subscriber with private identity `impi`, with its identities (no profiles): what
    /// [`crate::Subscribers::get`] returns for [`crate::SubscriberKey::Impi`].
    pub async fn by_impi(&self, impi: &Impi) -> Result<Option<Subscriber>, Error> {
        Ok(self.by_impi_with_revision(impi).await?.map(|(s, _)| s))
    }

    /// Like [`Self::by_impi`], with the subscriber's [`Revision`].
    pub async fn by_impi_with_revision(
        &self,
        impi: &Impi,
    ) -> Result<Option<(Subscriber, Revision)>, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                impi: impi.clone(),
                reply,
            })
            .await
            .map_err(|_| Error::BatcherStopped {
                what: "subscriber loader",
            })?;
        rx.await.map_err(|_| Error::BatcherStopped {
            what: "subscriber loader",
        })?
    }
}

/// Batches run concurrently, up to this many (reads do not conflict).
const CONCURRENT_BATCHES: usize = 4;

async fn run(store: Store, mut rx: mpsc::Receiver<Request>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_BATCHES));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            serve(&store, &mut batch).await;
            drop(permit);
        });
    }
}

async fn serve(store: &Store, batch: &mut Vec<Request>) {
    let mut keys: Vec<&str> = batch.iter().map(|r| r.impi.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let slots = keys.len().next_power_of_two();
    let placeholders: Vec<String> = (1..=slots).map(|i| format!("${i}")).collect();
    let sql = format!(
        "{JOINED_SELECT} WHERE s.impi IN ({}) ORDER BY s.id, i.position",
        placeholders.join(", ")
    );
    let rows: Result<Vec<JoinedRow>, sqlx::Error> = read!(store, |p| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for i in 0..slots {
            // Padding repeats the first key: the IN list is a set.
            q = q.bind(
                keys.get(i)
                    .or_else(|| keys.first())
                    .map_or(String::new(), |k| (*k).to_owned()),
            );
        }
        q.fetch_all(p).await
    });
    let found = match rows {
        Ok(rows) => group_joined(rows),
        Err(e) => {
            let shared = std::sync::Arc::new(e);
            for r in batch.drain(..) {
                let _ = r.reply.send(Err(Error::Batch {
                    op: "subscribers.by_impi",
                    source: shared.clone(),
                }));
            }
            return;
        }
    };
    match found {
        Ok(subs) => {
            let mut by_impi: HashMap<String, (Subscriber, Revision)> = subs
                .into_iter()
                .map(|s| (s.0.impi.to_string(), s))
                .collect();
            // Several requests for one identity each get a copy.
            let mut wanted: HashMap<&str, usize> = HashMap::new();
            for r in batch.iter() {
                *wanted.entry(r.impi.as_str()).or_default() += 1;
            }
            let counts: HashMap<String, usize> =
                wanted.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let mut left = counts;
            for r in batch.drain(..) {
                let key = r.impi.to_string();
                let n = left.get_mut(&key).map_or(0, |n| {
                    *n -= 1;
                    *n
                });
                let sub = if n == 0 {
                    by_impi.remove(&key)
                } else {
                    by_impi.get(&key).cloned()
                };
                let _ = r.reply.send(Ok(sub));
            }
        }
        // A row that does not parse: let each lookup name its own error.
        Err(_) => {
            for r in batch.drain(..) {
                let key = crate::SubscriberKey::Impi(r.impi.clone());
                let _ = r
                    .reply
                    .send(store.subscribers().get_with_revision(&key).await);
            }
        }
    }
}
