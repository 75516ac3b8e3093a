use imslab_store::provision::{ImpuInput, SubscriberUpdate, UpdateInput};
use imslab_store::{Error, OperatorKey, RegState, Store, SubscriberKey};
use imslab_types::{Impi, Impu, Imsi, Msisdn};

use crate::{K, OPC, new_subscriber, on_both, t0};

async fn insert_then_get_by_every_key(store: Store) {
    let new = new_subscriber("001010000000001", Some("15550001"));
    let id = store.subscribers().insert(&new, t0()).await.unwrap();
    let keys = [
        SubscriberKey::Imsi(Imsi::new("001010000000001").unwrap()),
        SubscriberKey::Impi(
            Impi::new("001010000000001@ims.mnc001.mcc001.3gppnetwork.org").unwrap(),
        ),
        SubscriberKey::Impu(Impu::new("tel:+15550001").unwrap()),
        SubscriberKey::Msisdn(Msisdn::new("15550001").unwrap()),
    ];
    for key in keys {
        let s = store.subscribers().get(&key).await.unwrap().expect("found");
        assert_eq!(s.id, id);
        assert_eq!(s.imsi, new.imsi);
        assert_eq!(s.k.expose_hex(), K);
        assert!(matches!(&s.operator_key, OperatorKey::Opc(o) if o.expose_hex() == OPC));
        assert_eq!(s.amf.to_hex(), "8000");
        assert_eq!(s.impus.len(), 3);
        assert_eq!(
            s.impus[0].impu.as_str(),
            "sip:15550001@ims.mnc001.mcc001.3gppnetwork.org"
        );
        assert!(s.impus[0].is_default);
        assert!(
            s.impus
                .iter()
                .all(|p| p.reg_state == RegState::NotRegistered)
        );
        assert!(s.scscf.is_none());
    }
    let missing = SubscriberKey::Imsi(Imsi::new("001010000000099").unwrap());
    assert!(store.subscribers().get(&missing).await.unwrap().is_none());
    assert!(matches!(
        store.subscribers().require(&missing).await,
        Err(Error::NotFound {
            what: "subscriber",
            ..
        })
    ));
}
on_both!(insert_then_get_by_every_key, insert_then_get_by_every_key);

async fn duplicates_are_refused_naming_the_identity(store: Store) {
    store
        .subscribers()
        .insert(&new_subscriber("001010000000001", Some("15550001")), t0())
        .await
        .unwrap();
    let again = store
        .subscribers()
        .insert(&new_subscriber("001010000000001", None), t0())
        .await;
    assert!(
        matches!(again, Err(Error::Duplicate { what: "IMSI", .. })),
        "{again:?}"
    );
    // Another IMSI, same MSISDN: its tel: identity is taken.
    let clash = store
        .subscribers()
        .insert(&new_subscriber("001010000000002", Some("15550001")), t0())
        .await;
    match clash {
        Err(Error::Duplicate { what: "IMPU", key }) => {
            assert_eq!(key, "sip:15550001@ims.mnc001.mcc001.3gppnetwork.org")
        }
        other => panic!("expected IMPU duplicate, got {other:?}"),
    }
    assert_eq!(store.subscribers().count().await.unwrap(), 1);
}
on_both!(
    duplicates_are_refused_naming_the_identity,
    duplicates_are_refused_naming_the_identity
);

async fn update_changes_fields_and_keeps_registration_state_of_kept_identities(store: Store) {
    let imsi = Imsi::new("001010000000001").unwrap();
    store
        .subscribers()
        .insert(&new_subscriber(imsi.as_str(), Some("15550001")), t0())
        .await
        .unwrap();
    let s = store
        .subscribers()
        .require(&SubscriberKey::Imsi(imsi.clone()))
        .await
        .unwrap();
    let tel = Impu::new("tel:+15550001").unwrap();
    store
        .hss_state()
        .apply(
            s.id,
            &[imslab_store::HssChange::SetRegState {
                impus: vec![tel.clone()],
                state: RegState::Registered,
            }],
            t0(),
        )
        .await
        .unwrap();
    let input = UpdateInput {
        msisdn: Some(String::new()),
        op: Some("cdc202d5123e20f62b6d676ac72cb318".into()),
        amf: Some("0000".into()),
        password: Some("pw".into()),
        auth_schemes: Some(vec!["SIP Digest".into(), "Digest-AKAv1-MD5".into()]),
        impus: Some(vec![
            ImpuInput::Uri("tel:+15550001".into()),
            ImpuInput::Uri("sip:new@ims.example".into()),
        ]),
        ..UpdateInput::default()
    };
    let update = SubscriberUpdate::from_input(&input, &s).unwrap();
    store
        .subscribers()
        .update(&imsi, &update, t0())
        .await
        .unwrap();
    let s = store
        .subscribers()
        .require(&SubscriberKey::Imsi(imsi.clone()))
        .await
        .unwrap();
    assert!(s.msisdn.is_none());
    assert!(matches!(s.operator_key, OperatorKey::Op(_)));
    assert_eq!(s.amf.to_hex(), "0000");
    assert!(matches!(s.digest, Some(imslab_store::DigestSecret::Password(ref p)) if p == "pw"));
    let states: Vec<(&str, RegState, bool)> = s
        .impus
        .iter()
        .map(|p| (p.impu.as_str(), p.reg_state, p.is_default))
        .collect();
    assert_eq!(
        states,
        [
            ("tel:+15550001", RegState::Registered, true),
            ("sip:new@ims.example", RegState::NotRegistered, false)
        ]
    );
    let missing = Imsi::new("001010000000099").unwrap();
    assert!(matches!(
        store.subscribers().update(&missing, &update, t0()).await,
        Err(Error::NotFound { .. })
    ));
}
on_both!(
    update_changes_fields_and_keeps_registration_state_of_kept_identities,
    update_changes_fields_and_keeps_registration_state_of_kept_identities
);

async fn delete_removes_subscriber_and_identities(store: Store) {
    let imsi = Imsi::new("001010000000001").unwrap();
    store
        .subscribers()
        .insert(&new_subscriber(imsi.as_str(), Some("15550001")), t0())
        .await
        .unwrap();
    assert!(store.subscribers().delete(&imsi).await.unwrap());
    assert!(!store.subscribers().delete(&imsi).await.unwrap());
    assert!(
        store
            .subscribers()
            .owner_of(&Impu::new("tel:+15550001").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // The identities are free again.
    store
        .subscribers()
        .insert(&new_subscriber("001010000000002", Some("15550001")), t0())
        .await
        .unwrap();
}
on_both!(
    delete_removes_subscriber_and_identities,
    delete_removes_subscriber_and_identities
);

async fn list_pages_in_imsi_order_with_identities(store: Store) {
    for i in (1..=5).rev() {
        store
            .subscribers()
            .insert(
                &new_subscriber(&format!("00101000000000{i}"), Some(&format!("1555000{i}"))),
                t0(),
            )
            .await
            .unwrap();
    }
    let page = store.subscribers().list(1, 3).await.unwrap();
    let imsis: Vec<&str> = page.iter().map(|s| s.imsi.as_str()).collect();
    assert_eq!(
        imsis,
        ["001010000000002", "001010000000003", "001010000000004"]
    );
    for s in &page {
        assert_eq!(s.impus.len(), 3);
        assert!(s.impus[1].impu.as_str().ends_with(&s.imsi.as_str()[14..]));
    }
}
on_both!(
    list_pages_in_imsi_order_with_identities,
    list_pages_in_imsi_order_with_identities
);

async fn hss_changes_apply_atomically_and_list_registrations(store: Store) {
    let imsi = Imsi::new("001010000000001").unwrap();
    let id = store
        .subscribers()
        .insert(&new_subscriber(imsi.as_str(), Some("15550001")), t0())
        .await
        .unwrap();
    let s = store
        .subscribers()
        .require(&SubscriberKey::Imsi(imsi.clone()))
        .await
        .unwrap();
    let all: Vec<Impu> = s.impus.iter().map(|p| p.impu.clone()).collect();
    let scscf = imslab_store::ServingScscf {
        name: "sip:scscf.ims.example:6060".into(),
        origin_host: Some("scscf.ims.example".into()),
        origin_realm: Some("ims.example".into()),
    };
    store
        .hss_state()
        .apply(
            id,
            &[
                imslab_store::HssChange::SetScscf(Some(scscf.clone())),
                imslab_store::HssChange::SetRegState {
                    impus: all.clone(),
                    state: RegState::Registered,
                },
            ],
            t0(),
        )
        .await
        .unwrap();
    let s = store
        .subscribers()
        .require(&SubscriberKey::Imsi(imsi.clone()))
        .await
        .unwrap();
    assert_eq!(s.scscf, Some(scscf));
    let regs = store.hss_state().registrations().await.unwrap();
    assert_eq!(regs.len(), 3);
    assert!(regs.iter().all(|r| r.state == RegState::Registered
        && r.scscf.as_deref() == Some("sip:scscf.ims.example:6060")));
    store
        .hss_state()
        .apply(
            id,
            &[
                imslab_store::HssChange::SetScscf(None),
                imslab_store::HssChange::SetRegState {
                    impus: all,
                    state: RegState::NotRegistered,
                },
            ],
            t0(),
        )
        .await
        .unwrap();
    assert!(store.hss_state().registrations().await.unwrap().is_empty());
}
on_both!(
    hss_changes_apply_atomically_and_list_registrations,
    hss_changes_apply_atomically_and_list_registrations
);

async fn batched_lookups_return_each_requester_its_subscriber(store: Store) {
    for i in 1..=5u32 {
        store
            .subscribers()
            .insert(
                &new_subscriber(&format!("00101000000000{i}"), Some(&format!("1555000{i}"))),
                t0(),
            )
            .await
            .unwrap();
    }
    let loader = imslab_store::SubscriberLoader::spawn(store.clone());
    let mut tasks = Vec::new();
    for t in 0..60u32 {
        let loader = loader.clone();
        tasks.push(tokio::spawn(async move {
            // 1..=5 exist, 6 and 7 do not.
            let i = t % 7 + 1;
            let impi = Impi::new(format!(
                "00101000000000{i}@ims.mnc001.mcc001.3gppnetwork.org"
            ))
            .unwrap();
            (i, loader.by_impi(&impi).await.unwrap())
        }));
    }
    for t in tasks {
        let (i, got) = t.await.unwrap();
        match got {
            Some(s) => {
                assert!(i <= 5);
                assert_eq!(s.imsi.as_str(), format!("00101000000000{i}"));
                assert_eq!(s.impus.len(), 3);
                let direct = store
                    .subscribers()
                    .require(&SubscriberKey::Imsi(s.imsi.clone()))
                    .await
                    .unwrap();
                assert_eq!(s, direct);
            }
            None => assert!(i > 5, "subscriber {i} exists but was not found"),
        }
    }
}
on_both!(
    batched_lookups_return_each_requester_its_subscriber,
    batched_lookups_return_each_requester_its_subscriber
);
