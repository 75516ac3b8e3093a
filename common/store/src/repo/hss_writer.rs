//! Group commit of the HSS's registration-state writes: concurrent Cx transactions (SARs on
//! every registration, MARs assigning the S-CSCF) queue their changes and one transaction
//! writes them all ([`crate::HssState::apply_many`]).
//!
//! Each requester gets its answer only once the transaction holding its changes committed, so
//! the HSS still answers only what is stored. A failed batch is retried request by request, so
//! one failing request fails alone.

use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

use crate::model::HssChange;
use crate::{Error, Store};

/// Most requests one transaction serves.
pub const MAX_BATCH: usize = 256;

struct Request {
    subscriber_id: i64,
    changes: Vec<HssChange>,
    reply: oneshot::Sender<Result<(), Error>>,
}

/// A handle to the writer task. Cheap to clone; the task ends when every handle is dropped.
#[derive(Debug, Clone)]
pub struct HssStateWriter {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::write!(f, "Request({}, {:?})", self.subscriber_id, self.changes)
    }
}

impl HssStateWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn spawn(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, rx));
        Self { tx }
    }

    /// Applies `changes` to subscriber `subscriber_id`, as [`crate::HssState::apply`] does,
    /// batched with the other requests in flight; returns once they are committed.
    pub async fn apply(&self, subscriber_id: i64, changes: Vec<HssChange>) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        let stopped = |_| Error::BatcherStopped {
            what: "HSS state writer",
        };
        self.tx
            .send(Request {
                subscriber_id,
                changes,
                reply,
            })
            .await
            .map_err(|_| Error::BatcherStopped {
                what: "HSS state writer",
            })?;
        rx.await.map_err(stopped)?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let items: Vec<(i64, &[HssChange])> = batch
            .iter()
            .map(|r| (r.subscriber_id, r.changes.as_slice()))
            .collect();
        let now = SystemTime::now();
        let all = store.hss_state().apply_many(&items, now).await;
        drop(items);
        match all {
            Ok(()) => {
                for r in batch.drain(..) {
                    let _ = r.reply.send(Ok(()));
                }
            }
            Err(_) => {
                for r in batch.drain(..) {
                    let one = store
                        .hss_state()
                        .apply(r.subscriber_id, &r.changes, now)
                        .await;
                    let _ = r.reply.send(one);
                }
            }
        }
    }
}
