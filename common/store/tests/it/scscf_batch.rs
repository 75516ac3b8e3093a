//! `Scscf::apply`: a batch of S-CSCF writes ends in the same rows as the same writes applied one
//! by one (the S-CSCF's store writer relies on it).

use std::time::Duration;

use imslab_store::{
    Binding, RegState, RegSubscription, ScscfRegistration, ScscfWrite, Store, SubscriptionRole,
};
use imslab_types::{Impi, Impu};
use proptest::prelude::*;

use crate::{on_both, t0};

fn impu(i: u8) -> Impu {
    Impu::new(format!("sip:user{}@ims.example", i % 2)).unwrap()
}

fn registration(i: u8, v: u16) -> ScscfRegistration {
    ScscfRegistration {
        impu: impu(i),
        impi: Impi::new(format!("user{}@ims.example", i % 2)).unwrap(),
        state: if v.is_multiple_of(3) {
            RegState::Unregistered
        } else {
            RegState::Registered
        },
        implicit_set: vec![impu(i)],
        user_data: v
            .is_multiple_of(2)
            .then(|| format!("<IMSSubscription v=\"{v}\"/>")),
        charging: None,
    }
}

/// One of four binding keys of identity `i`: two plain contacts, an instance with and without
/// reg-id (RFC 5626 §6).
fn binding(i: u8, which: u8, v: u16) -> Binding {
    let (instance, reg_id) = match which % 4 {
        0 | 1 => (None, None),
        2 => (Some("<urn:uuid:1>".to_owned()), Some(1)),
        _ => (Some("<urn:uuid:1>".to_owned()), None),
    };
    Binding {
        impu: impu(i),
        impi: Impi::new(format!("user{}@ims.example", i % 2)).unwrap(),
        contact: format!("sip:ue@10.0.0.{}:{}", which % 2, 5060 + v),
        expires_at: t0() + Duration::from_secs(u64::from(v)),
        q_milli: v.is_multiple_of(2).then_some(500),
        path: vec![format!("<sip:term@pcscf;lr;v={v}>")],
        instance_id: instance,
        reg_id,
        call_id: format!("call-{v}"),
        cseq: i64::from(v),
        pcscf_flow: Some("flow".into()),
        received: None,
        user_agent: Some("ue".into()),
        contact_params: None,
    }
}

fn subscription(which: u8, v: u16) -> RegSubscription {
    RegSubscription {
        role: SubscriptionRole::Notifier,
        impu: impu(which),
        watcher: "sip:pcscf".into(),
        call_id: format!("sub-{}", which % 2),
        local_tag: "t1".into(),
        remote_tag: format!("r{v}"),
        local_cseq: i64::from(v),
        remote_cseq: 1,
        remote_target: "sip:pcscf:5060".into(),
        route_set: vec![],
        version: i64::from(v),
        expires_at: t0() + Duration::from_secs(600),
    }
}

/// A write from small numbers, so that sequences revisit the same keys often.
fn write(kind: u8, i: u8, which: u8, v: u16) -> ScscfWrite {
    match kind % 6 {
        0 => ScscfWrite::PutRegistration(registration(i, v)),
        1 => ScscfWrite::DeleteRegistration(impu(i)),
        2 | 3 => ScscfWrite::PutBinding(binding(i, which, v)),
        4 => {
            let b = binding(i, which, v);
            ScscfWrite::RemoveBinding {
                key: b.key(),
                impu: b.impu,
            }
        }
        _ if v.is_multiple_of(2) => ScscfWrite::PutSubscription(subscription(which, v)),
        _ => ScscfWrite::RemoveSubscription {
            call_id: format!("sub-{}", which % 2),
            local_tag: "t1".into(),
        },
    }
}

type Rows = (
    Vec<ScscfRegistration>,
    Vec<(String, Binding)>,
    Vec<RegSubscription>,
);

async fn rows(store: &Store, owner: &str) -> Rows {
    let s = store.scscf(owner);
    let mut bindings: Vec<(String, Binding)> = s
        .all_bindings()
        .await
        .unwrap()
        .into_iter()
        .map(|b| (format!("{} {}", b.impu, b.key()), b))
        .collect();
    bindings.sort_by(|a, b| a.0.cmp(&b.0));
    (
        s.registrations().await.unwrap(),
        bindings,
        store.reg_subscriptions(owner).all().await.unwrap(),
    )
}

/// Applies `writes` one by one under `seq` and in batches of `batch` under `batched`.
async fn apply_both_ways(store: &Store, writes: &[ScscfWrite], batch: usize, tag: &str) {
    let (seq, batched) = (format!("seq-{tag}"), format!("batch-{tag}"));
    let s = store.scscf(&seq);
    let subs = store.reg_subscriptions(&seq);
    for w in writes {
        match w {
            ScscfWrite::PutRegistration(r) => s.put_registration(r, t0()).await.unwrap(),
            ScscfWrite::DeleteRegistration(i) => {
                s.delete_registration(i).await.unwrap();
            }
            ScscfWrite::PutBinding(b) => s.put_binding(b, t0()).await.unwrap(),
            ScscfWrite::RemoveBinding { impu, key } => {
                s.remove_binding(impu, key).await.unwrap();
            }
            ScscfWrite::PutSubscription(x) => subs.put(x, t0()).await.unwrap(),
            ScscfWrite::RemoveSubscription { call_id, local_tag } => {
                subs.remove(call_id, local_tag).await.unwrap();
            }
        }
    }
    for chunk in writes.chunks(batch.max(1)) {
        store.scscf(&batched).apply(chunk, t0()).await.unwrap();
    }
    assert_eq!(
        rows(store, &batched).await,
        rows(store, &seq).await,
        "writes {writes:#?} in batches of {batch}"
    );
}

/// Every kind of write, keys revisited, deletes between puts: a fixed pseudo-random sequence.
async fn batch_apply_matches_sequential_apply(store: Store) {
    let mut x: u32 = 12345;
    let mut next = || {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 8) as u16
    };
    let writes: Vec<ScscfWrite> = (0..300)
        .map(|_| {
            let (k, i, w, v) = (next(), next(), next(), next());
            write(k as u8, i as u8, w as u8, v % 1000)
        })
        .collect();
    for batch in [1, 7, 64, 300] {
        apply_both_ways(&store, &writes, batch, &format!("fixed-{batch}")).await;
    }
    // More rows than one statement carries.
    let many: Vec<ScscfWrite> = (0..100u16)
        .map(|n| {
            let mut b = binding(0, 0, n);
            b.contact = format!("sip:ue{n}@10.0.0.1");
            ScscfWrite::PutBinding(b)
        })
        .collect();
    apply_both_ways(&store, &many, 100, "many").await;
    assert_eq!(rows(&store, "batch-many").await.1.len(), 100);
}
on_both!(
    batch_apply_matches_sequential_apply_on,
    batch_apply_matches_sequential_apply
);

fn write_strategy() -> impl Strategy<Value = ScscfWrite> {
    (any::<u8>(), any::<u8>(), any::<u8>(), 0u16..50).prop_map(|(k, i, w, v)| write(k, i, w, v))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_write_sequence_batched_ends_in_the_rows_of_sequential_apply(
        writes in proptest::collection::vec(write_strategy(), 0..40),
        batch in 1usize..40,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (store, _dir) = imslab_store::testing::sqlite_store().await;
            apply_both_ways(&store, &writes, batch, "prop").await;
            store.close().await;
        });
    }
}
