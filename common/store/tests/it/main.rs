//! Store tests. Every behaviour runs on SQLite and on a real PostgreSQL server
//! (`imslab_store::testing`).

mod cscf_state;
mod events;
mod hss_writer;
mod profiles;
mod provisioning;
mod scscf_batch;
mod sqn;
mod subscribers;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imslab_store::Store;
use imslab_store::provision::{NewSubscriber, ProvisionDefaults, SubscriberInput};
use imslab_store::testing::{PgDatabase, sqlite_store};
use imslab_types::Realm;

/// A store of the given backend for one test, with whatever keeps it alive.
pub(crate) enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Pg(#[allow(dead_code)] PgDatabase),
}

pub(crate) async fn open(backend: &str, test: &str) -> (Store, Guard) {
    match backend {
        "sqlite" => {
            let (s, d) = sqlite_store().await;
            (s, Guard::Sqlite(d))
        }
        _ => {
            let db = PgDatabase::create(test).await;
            (db.store().await, Guard::Pg(db))
        }
    }
}

/// Defines `mod $name { sqlite, postgres }` running `$body(store)` on each backend.
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (store, _guard) = $crate::open("sqlite", stringify!($name)).await;
                super::$body(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let (store, _guard) = $crate::open("postgres", stringify!($name)).await;
                super::$body(store).await;
            }
        }
    };
}
pub(crate) use on_both;

pub(crate) fn defaults() -> ProvisionDefaults {
    ProvisionDefaults::new(Realm::new("ims.mnc001.mcc001.3gppnetwork.org").unwrap())
}

pub(crate) fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

pub(crate) const K: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
pub(crate) const OPC: &str = "cd63cb71954a9f4e48a5994e37a02baf";

pub(crate) fn new_subscriber(imsi: &str, msisdn: Option<&str>) -> NewSubscriber {
    let input = SubscriberInput {
        imsi: imsi.into(),
        msisdn: msisdn.map(Into::into),
        k: K.into(),
        opc: Some(OPC.into()),
        ..SubscriberInput::default()
    };
    NewSubscriber::from_input(&input, &defaults()).unwrap()
}
