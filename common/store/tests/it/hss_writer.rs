//! `HssState::apply_many` and the `HssStateWriter` group commit: the same rows as applying each
//! Cx transaction's changes one by one.

use std::time::SystemTime;

use imslab_store::{HssChange, HssStateWriter, RegState, ServingScscf, Store, SubscriberKey};
use imslab_types::{Imsi, Sqn};

use crate::{new_subscriber, on_both, t0};

/// What the HSS state of one subscriber is: serving S-CSCF, SQN, state of each identity.
type State = (Option<ServingScscf>, u64, Vec<RegState>);

async fn state(store: &Store, imsi: &str) -> State {
    let s = store
        .subscribers()
        .require(&SubscriberKey::Imsi(Imsi::new(imsi).unwrap()))
        .await
        .unwrap();
    (
        s.scscf,
        s.sqn.value(),
        s.impus.iter().map(|p| p.reg_state).collect(),
    )
}

/// Subscribers `prefix`0..3, each with its identities, returning (id, identities).
async fn provision(store: &Store, prefix: &str) -> Vec<(i64, Vec<imslab_types::Impu>)> {
    let mut out = Vec::new();
    for n in 0..3 {
        let imsi = format!("{prefix}{n}");
        let msisdn = format!("15550{}{n}", &prefix[prefix.len() - 1..]);
        let sub = new_subscriber(&imsi, Some(&msisdn));
        store.subscribers().insert(&sub, t0()).await.unwrap();
        let s = store
            .subscribers()
            .require(&SubscriberKey::Imsi(Imsi::new(imsi).unwrap()))
            .await
            .unwrap();
        out.push((s.id, s.impus.into_iter().map(|p| p.impu).collect()));
    }
    out
}

/// The changes of request `r` for a subscriber with identities `impus`: a fixed mixture of
/// every kind of change, revisiting the same keys.
fn changes(r: usize, impus: &[imslab_types::Impu]) -> Vec<HssChange> {
    let scscf = |k: usize| ServingScscf {
        name: format!("sip:scscf{k}.ims.example"),
        origin_host: k.is_multiple_of(2).then(|| format!("scscf{k}.ims.example")),
        origin_realm: Some("ims.example".into()),
    };
    let states = [
        RegState::Registered,
        RegState::Unregistered,
        RegState::NotRegistered,
    ];
    let some: Vec<_> = impus.iter().take(1 + r % impus.len()).cloned().collect();
    match r % 5 {
        0 => vec![
            HssChange::SetScscf(Some(scscf(r))),
            HssChange::SetRegState {
                impus: some,
                state: states[r % 3],
            },
        ],
        1 => vec![HssChange::SetRegState {
            impus: some,
            state: states[(r / 2) % 3],
        }],
        2 => vec![HssChange::SetScscf(None)],
        3 => vec![HssChange::SetSqn(Sqn::new(1000 + r as u64).unwrap())],
        _ => vec![
            HssChange::SetRegState {
                impus: some,
                state: states[(r + 1) % 3],
            },
            HssChange::SetScscf(Some(scscf(r + 7))),
        ],
    }
}

async fn apply_many_matches_one_by_one(store: Store) {
    let one = provision(&store, "00101000000001").await;
    let many = provision(&store, "00101000000002").await;
    // Request r goes to subscriber r % 3 in both sets.
    let requests: Vec<(usize, Vec<HssChange>)> = (0..40)
        .map(|r| (r % 3, changes(r, &one[r % 3].1)))
        .collect();
    for (i, c) in &requests {
        store
            .hss_state()
            .apply(one[*i].0, c, SystemTime::now())
            .await
            .unwrap();
    }
    // The second set's identities differ in name: rebuild the changes for them.
    let batched: Vec<(i64, Vec<HssChange>)> = (0..40)
        .map(|r| (many[r % 3].0, changes(r, &many[r % 3].1)))
        .collect();
    for part in batched.chunks(13) {
        let items: Vec<(i64, &[HssChange])> =
            part.iter().map(|(id, c)| (*id, c.as_slice())).collect();
        store
            .hss_state()
            .apply_many(&items, SystemTime::now())
            .await
            .unwrap();
    }
    for n in 0..3 {
        let a = state(&store, &format!("00101000000001{n}")).await;
        let b = state(&store, &format!("00101000000002{n}")).await;
        assert_eq!(a, b, "subscriber {n}");
    }
    // The writer (concurrent requests for different subscribers) lands every change.
    let writer = HssStateWriter::spawn(store.clone());
    let mut tasks = Vec::new();
    for (id, _) in &many {
        let w = writer.clone();
        let id = *id;
        tasks.push(tokio::spawn(async move {
            w.apply(
                id,
                vec![HssChange::SetScscf(Some(ServingScscf {
                    name: format!("sip:last{id}"),
                    origin_host: None,
                    origin_realm: None,
                }))],
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for (n, (id, _)) in many.iter().enumerate() {
        let (scscf, _, _) = state(&store, &format!("00101000000002{n}")).await;
        assert_eq!(scscf.map(|s| s.name), Some(format!("sip:last{id}")));
    }
}
on_both!(
    apply_many_matches_one_by_one_on,
    apply_many_matches_one_by_one
);

/// Registration states are not part of the revision (migration 0003): a SAR keeps the HSS's MAR
/// cache current. The serving S-CSCF is.
async fn registration_state_leaves_the_revision_alone(store: Store) {
    let subs = provision(&store, "00101000000003").await;
    let (id, impus) = subs[0].clone();
    let key = SubscriberKey::Imsi(Imsi::new("001010000000030").unwrap());
    let revision = |store: Store, key: SubscriberKey| async move {
        store
            .subscribers()
            .get_with_revision(&key)
            .await
            .unwrap()
            .unwrap()
            .1
    };
    let r0 = revision(store.clone(), key.clone()).await;
    let registered = [HssChange::SetRegState {
        impus: impus.clone(),
        state: RegState::Registered,
    }];
    store
        .hss_state()
        .apply(id, &registered, SystemTime::now())
        .await
        .unwrap();
    store
        .hss_state()
        .apply_many(&[(id, &registered)], SystemTime::now())
        .await
        .unwrap();
    assert_eq!(revision(store.clone(), key.clone()).await, r0);
    assert!(
        state(&store, "001010000000030")
            .await
            .2
            .iter()
            .all(|s| *s == RegState::Registered)
    );
    let moved = [HssChange::SetScscf(Some(ServingScscf {
        name: "sip:other".into(),
        origin_host: None,
        origin_realm: None,
    }))];
    store
        .hss_state()
        .apply(id, &moved, SystemTime::now())
        .await
        .unwrap();
    assert_ne!(revision(store.clone(), key).await, r0);
}
on_both!(
    registration_state_leaves_the_revision_alone_on,
    registration_state_leaves_the_revision_alone
);
