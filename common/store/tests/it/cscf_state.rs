use std::time::Duration;

use imslab_store::{
    Binding, ChargingInfo, PcscfRegistration, RegState, RegSubscription, ScscfRegistration, Store,
    SubscriptionRole,
};
use imslab_types::{Impi, Impu};

use crate::{on_both, t0};

const SCSCF: &str = "sip:scscf.ims.example:6060";

fn impu() -> Impu {
    Impu::new("sip:alice@ims.example").unwrap()
}

fn binding(contact: &str, instance: Option<&str>, reg_id: Option<i64>, ttl: u64) -> Binding {
    Binding {
        impu: impu(),
        impi: Impi::new("alice@ims.example").unwrap(),
        contact: contact.into(),
        expires_at: t0() + Duration::from_secs(ttl),
        q_milli: Some(1000),
        path: vec!["<sip:term@pcscf.ims.example;lr>".into()],
        instance_id: instance.map(Into::into),
        reg_id,
        call_id: "c1".into(),
        cseq: 1,
        pcscf_flow: Some("flow-1".into()),
        received: Some("10.0.0.1:5060".into()),
        user_agent: Some("ue".into()),
        contact_params: Some(
            "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\"".into(),
        ),
    }
}

async fn scscf_bindings_upsert_by_instance_and_expire(store: Store) {
    let s = store.scscf(SCSCF);
    let reg = ScscfRegistration {
        impu: impu(),
        impi: Impi::new("alice@ims.example").unwrap(),
        state: RegState::Registered,
        implicit_set: vec![impu(), Impu::new("tel:+15550001").unwrap()],
        user_data: Some("<IMSSubscription/>".into()),
        charging: Some(ChargingInfo {
            ccf_primary: Some("aaa://ccf".into()),
            ..ChargingInfo::default()
        }),
    };
    s.put_registration(&reg, t0()).await.unwrap();
    assert_eq!(s.registration(&impu()).await.unwrap(), Some(reg.clone()));
    s.put_binding(
        &binding("sip:a@10.0.0.1", Some("<urn:uuid:1>"), Some(1), 600),
        t0(),
    )
    .await
    .unwrap();
    // Same instance and reg-id, new contact: replaces (RFC 5626 §6).
    s.put_binding(
        &binding("sip:a@10.0.0.2", Some("<urn:uuid:1>"), Some(1), 600),
        t0(),
    )
    .await
    .unwrap();
    s.put_binding(&binding("sip:b@10.0.0.3", None, None, 30), t0())
        .await
        .unwrap();
    let all = s.bindings(&impu()).await.unwrap();
    let contacts: Vec<&str> = all.iter().map(|b| b.contact.as_str()).collect();
    assert_eq!(contacts, ["sip:a@10.0.0.2", "sip:b@10.0.0.3"]);
    assert_eq!(
        all[0],
        binding("sip:a@10.0.0.2", Some("<urn:uuid:1>"), Some(1), 600)
    );
    let expired = s
        .expired_bindings(t0() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert!(s.remove_binding(&impu(), &expired[0].key()).await.unwrap());
    // Another S-CSCF sees nothing.
    assert!(
        store
            .scscf("sip:other")
            .all_bindings()
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.all_bindings().await.unwrap().len(), 1);
    assert!(s.delete_registration(&impu()).await.unwrap());
    assert!(s.bindings(&impu()).await.unwrap().is_empty());
    assert!(s.registrations().await.unwrap().is_empty());
}
on_both!(
    scscf_bindings_upsert_by_instance_and_expire,
    scscf_bindings_upsert_by_instance_and_expire
);

async fn pcscf_registrations_survive_reopen_and_are_found_by_flow(store: Store) {
    let p = store.pcscf("sip:pcscf.ims.example");
    let reg = PcscfRegistration {
        impu: impu(),
        impi: Some(Impi::new("alice@ims.example").unwrap()),
        contact: "sip:alice@10.0.0.1:5060".into(),
        flow: Some("udp:10.0.0.1:5060".into()),
        received: Some("10.0.0.1:5060".into()),
        service_route: vec!["<sip:orig@scscf.ims.example:6060;lr>".into()],
        associated_uris: vec!["sip:alice@ims.example".into(), "tel:+15550001".into()],
        sa_info: Some("{\"spi_c\":1}".into()),
        call_id: Some("c1".into()),
        expires_at: t0() + Duration::from_secs(600),
    };
    p.put(&reg, t0()).await.unwrap();
    assert_eq!(
        p.get(&impu(), &reg.contact).await.unwrap(),
        Some(reg.clone())
    );
    assert_eq!(
        p.for_flow("udp:10.0.0.1:5060").await.unwrap(),
        std::slice::from_ref(&reg)
    );
    let tel = Impu::new("tel:+15550001").unwrap();
    assert_eq!(
        p.for_associated(&tel).await.unwrap(),
        std::slice::from_ref(&reg)
    );
    assert!(p.expired(t0()).await.unwrap().is_empty());
    assert_eq!(
        p.expired(t0() + Duration::from_secs(601))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(p.remove_impu(&impu()).await.unwrap(), 1);
    assert!(p.all().await.unwrap().is_empty());
}
on_both!(
    pcscf_registrations_survive_reopen_and_are_found_by_flow,
    pcscf_registrations_survive_reopen_and_are_found_by_flow
);

async fn reg_subscription_versions_increment_atomically(store: Store) {
    let r = store.reg_subscriptions(SCSCF);
    let sub = RegSubscription {
        role: SubscriptionRole::Notifier,
        impu: impu(),
        watcher: "sip:pcscf.ims.example".into(),
        call_id: "sub-1".into(),
        local_tag: "lt".into(),
        remote_tag: "rt".into(),
        local_cseq: 1,
        remote_cseq: 7,
        remote_target: "sip:pcscf.ims.example:5060".into(),
        route_set: vec![],
        version: 0,
        expires_at: t0() + Duration::from_secs(3600),
    };
    r.put(&sub, t0()).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .reg_subscriptions(SCSCF)
                .next_notify("sub-1", "lt")
                .await
                .unwrap()
                .unwrap()
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap().0);
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=20).collect::<Vec<i64>>());
    let got = r.get("sub-1", "lt").await.unwrap().unwrap();
    assert_eq!((got.version, got.local_cseq), (20, 21));
    assert_eq!(r.for_impu(&impu()).await.unwrap().len(), 1);
    assert_eq!(r.next_notify("nope", "lt").await.unwrap(), None);
    assert!(r.remove("sub-1", "lt").await.unwrap());
    assert!(r.all().await.unwrap().is_empty());
}
on_both!(
    reg_subscription_versions_increment_atomically,
    reg_subscription_versions_increment_atomically
);

/// Registration state written by one store instance is read back by a new one on the same
/// SQLite file: what a restarted S-CSCF/P-CSCF sees.
#[tokio::test]
async fn cscf_state_is_read_back_after_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let opts = imslab_store::StoreOptions::sqlite_file(&dir.path().join("imslab.db"));
    let first = Store::open(&opts).await.unwrap();
    first
        .scscf(SCSCF)
        .put_binding(&binding("sip:a@10.0.0.1", None, None, 600), t0())
        .await
        .unwrap();
    first.close().await;
    drop(first);
    let second = Store::open(&opts).await.unwrap();
    assert_eq!(
        second.scscf(SCSCF).all_bindings().await.unwrap(),
        [binding("sip:a@10.0.0.1", None, None, 600)]
    );
}
