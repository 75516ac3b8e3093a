//! MARs through the server: vectors a card accepts in order, never a repeated SQN under
//! concurrency, and resynchronisation.

use std::collections::HashSet;

use bytes::Bytes;
use imslab_aka::{AmfPolicy, Autn, Milenage, SqnConfig, Usim, generate_auts, resync_authorization};
use imslab_diameter::cx::{Maa, Saa};
use imslab_diameter::enums::ServerAssignmentType;
use imslab_store::provision::SubscriberUpdate;
use imslab_store::{Store, StoreOptions, SubscriberKey};
use imslab_types::{Imsi, K as Key, Opc, Rand, Sqn};

use crate::support::*;

fn card() -> Usim {
    let m = Milenage::new(&Key::from_hex(K).unwrap(), &Opc::from_hex(OPC).unwrap());
    Usim::with_config(m, SqnConfig::default(), AmfPolicy::Any)
}

fn sqn_of(maa: &Maa, i: usize) -> (Rand, Autn, Sqn) {
    let a = maa.sip_auth_data_items[i].authenticate.as_ref().unwrap();
    let rand = Rand(a[..16].try_into().unwrap());
    let autn = Autn(a[16..].try_into().unwrap());
    let m = Milenage::new(&Key::from_hex(K).unwrap(), &Opc::from_hex(OPC).unwrap());
    let sqn = m.f2345(&rand).ak.reveal(autn.sqn_xor_ak());
    (rand, autn, sqn)
}

async fn concurrent(backend: &str) {
    let (store, _db) = store(backend, "concurrent_mar").await;
    provision(&store, 4).await;
    let (hss, addr, _) = start_hss(store.clone()).await;
    let node = scscf(
        addr,
        imslab_diameter_io::RefuseRequests(imslab_diameter::Origin {
            host: imslab_types::DiameterIdentity::new(SCSCF_HOST).unwrap(),
            realm: realm(),
        }),
    )
    .await;
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..10u64 {
                let n = (t % 4) as u32 + 1;
                let maa =
                    Maa::decode(&ask(&node, mar(n, t * 100 + i, 2).to_message()).await).unwrap();
                assert!(maa.result.is_success(), "{:?}", maa.result);
                for j in 0..maa.sip_auth_data_items.len() {
                    got.push((n, sqn_of(&maa, j).2.value()));
                }
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), 64 * 10 * 2);
    let unique: HashSet<(u32, u64)> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "an SQN was handed out twice to concurrent MARs"
    );
    node.shutdown().await;
    hss.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mars_never_get_the_same_sqn_on_sqlite() {
    concurrent("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mars_never_get_the_same_sqn_on_postgres() {
    concurrent("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successive_vectors_are_accepted_by_the_card_and_resync_recovers() {
    let (store, _db) = store("sqlite", "resync").await;
    provision(&store, 1).await;
    let (hss, addr, events) = start_hss(store.clone()).await;
    let node = scscf(
        addr,
        imslab_diameter_io::RefuseRequests(imslab_diameter::Origin {
            host: imslab_types::DiameterIdentity::new(SCSCF_HOST).unwrap(),
            realm: realm(),
        }),
    )
    .await;
    let mut usim = card();
    for i in 0..3 {
        let maa = Maa::decode(&ask(&node, mar(1, i, 1).to_message()).await).unwrap();
        let (rand, autn, _) = sqn_of(&maa, 0);
        usim.authenticate(&rand, &autn)
            .expect("each new vector is fresh for the card");
    }
    // The card is far ahead (another HSS used it): it refuses, the S-CSCF resyncs.
    let sqn_ms = Sqn::new(100_000 << 5).unwrap();
    let m = Milenage::new(&Key::from_hex(K).unwrap(), &Opc::from_hex(OPC).unwrap());
    let rand = Rand([7; 16]);
    let auts = generate_auts(&m, &rand, sqn_ms);
    let mut req = mar(1, 10, 1);
    req.sip_auth_data_item.authorization =
        Some(Bytes::copy_from_slice(&resync_authorization(&rand, &auts)));
    let maa = Maa::decode(&ask(&node, req.to_message()).await).unwrap();
    assert!(maa.result.is_success(), "{:?}", maa.result);
    let (_, _, sqn) = sqn_of(&maa, 0);
    assert_eq!(sqn.value() >> 5, 100_001, "the next SQN follows SQN_MS");
    assert!(
        events
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.step == "aka-resync")
    );
    node.shutdown().await;
    hss.shutdown().await;
}

/// MAR keeps subscribers in memory; a change made through the store (the CLI or the REST API,
/// here a second store handle on the same database) takes effect at the next MAR, and a deleted
/// subscriber is unknown at once.
async fn provisioning_changes_reach_the_next_mar(backend: &str) {
    let (store, db) = store(backend, "mar_provisioning").await;
    provision(&store, 1).await;
    let (hss, addr, _) = start_hss(store.clone()).await;
    let node = scscf(
        addr,
        imslab_diameter_io::RefuseRequests(imslab_diameter::Origin {
            host: imslab_types::DiameterIdentity::new(SCSCF_HOST).unwrap(),
            realm: realm(),
        }),
    )
    .await;
    let mut old_card = card();
    let mut last = 0;
    for i in 0..3 {
        let maa = Maa::decode(&ask(&node, mar(1, i, 1).to_message()).await).unwrap();
        let (rand, autn, sqn) = sqn_of(&maa, 0);
        old_card.authenticate(&rand, &autn).unwrap();
        last = sqn.value();
    }
    let cli = match &db {
        Db::Sqlite(dir) => Store::open(&StoreOptions::sqlite_file(
            &imslab_store::testing::sqlite_path(dir.path()),
        ))
        .await
        .unwrap(),
        Db::Pg(pg) => pg.store().await,
    };
    const NEW_K: &str = "000102030405060708090a0b0c0d0e0f";
    cli.subscribers()
        .update(
            &Imsi::new(imsi(1)).unwrap(),
            &SubscriberUpdate {
                k: Some(Key::from_hex(NEW_K).unwrap()),
                ..SubscriberUpdate::default()
            },
            std::time::SystemTime::now(),
        )
        .await
        .unwrap();
    let maa = Maa::decode(&ask(&node, mar(1, 10, 1).to_message()).await).unwrap();
    assert!(maa.result.is_success(), "{:?}", maa.result);
    let a = maa.sip_auth_data_items[0].authenticate.as_ref().unwrap();
    let rand = Rand(a[..16].try_into().unwrap());
    let autn = Autn(a[16..].try_into().unwrap());
    assert!(
        old_card.authenticate(&rand, &autn).is_err(),
        "the vector was made with the old K"
    );
    let new_milenage =
        || Milenage::new(&Key::from_hex(NEW_K).unwrap(), &Opc::from_hex(OPC).unwrap());
    let mut new_card = Usim::with_config(new_milenage(), SqnConfig::default(), AmfPolicy::Any);
    new_card
        .authenticate(&rand, &autn)
        .expect("the vector is made with the new K");
    let sqn = new_milenage().f2345(&rand).ak.reveal(autn.sqn_xor_ak());
    assert!(sqn.value() > last, "SQNs keep increasing across the change");

    assert!(
        cli.subscribers()
            .delete(&Imsi::new(imsi(1)).unwrap())
            .await
            .unwrap()
    );
    let maa = Maa::decode(&ask(&node, mar(1, 11, 1).to_message()).await).unwrap();
    assert_eq!(
        maa.result,
        imslab_diameter::cx::CxResult::experimental(
            imslab_diameter::ExperimentalResultCode::DIAMETER_ERROR_USER_UNKNOWN
        )
    );
    cli.close().await;
    node.shutdown().await;
    hss.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_changes_reach_the_next_mar_on_sqlite() {
    provisioning_changes_reach_the_next_mar("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_changes_reach_the_next_mar_on_postgres() {
    provisioning_changes_reach_the_next_mar("postgres").await;
}

/// The MAR cache never hides a state change made by a SAR: after a de-registration cleared the
/// S-CSCF name, a MAR from the same S-CSCF (whose cached copy still names it) stores it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mar_after_a_deregistration_stores_the_scscf_name_again() {
    let (store, _db) = store("sqlite", "mar_after_dereg").await;
    provision(&store, 1).await;
    // Assigned before the HSS starts, so its first MAR caches a copy naming the S-CSCF.
    let id = store
        .subscribers()
        .require(&SubscriberKey::Impi(impi(1)))
        .await
        .unwrap()
        .id;
    let assigned = imslab_store::ServingScscf {
        name: SCSCF_NAME.into(),
        origin_host: Some(SCSCF_HOST.into()),
        origin_realm: Some(REALM.into()),
    };
    store
        .hss_state()
        .apply(
            id,
            &[imslab_store::HssChange::SetScscf(Some(assigned))],
            std::time::SystemTime::now(),
        )
        .await
        .unwrap();
    let (hss, addr, _) = start_hss(store.clone()).await;
    let node = scscf(
        addr,
        imslab_diameter_io::RefuseRequests(imslab_diameter::Origin {
            host: imslab_types::DiameterIdentity::new(SCSCF_HOST).unwrap(),
            realm: realm(),
        }),
    )
    .await;
    let stored_scscf = || async {
        store
            .subscribers()
            .require(&SubscriberKey::Impi(impi(1)))
            .await
            .unwrap()
            .scscf
            .map(|s| s.name)
    };
    for i in 0..2 {
        let maa = Maa::decode(&ask(&node, mar(1, i, 1).to_message()).await).unwrap();
        assert!(maa.result.is_success(), "{:?}", maa.result);
    }
    for t in [
        ServerAssignmentType::REGISTRATION,
        ServerAssignmentType::USER_DEREGISTRATION,
    ] {
        let saa = Saa::decode(&ask(&node, sar(1, t).to_message()).await).unwrap();
        assert!(saa.result.is_success(), "{t:?}: {:?}", saa.result);
    }
    assert_eq!(stored_scscf().await, None, "the de-registration cleared it");
    let maa = Maa::decode(&ask(&node, mar(1, 5, 1).to_message()).await).unwrap();
    assert!(maa.result.is_success(), "{:?}", maa.result);
    assert_eq!(stored_scscf().await.as_deref(), Some(SCSCF_NAME));
    node.shutdown().await;
    hss.shutdown().await;
}
