//! HSS-initiated RTR and PPR toward a connected S-CSCF, with state updates and failures.

use std::sync::{Arc, Mutex};

use imslab_diameter::cx::{CxRequest, CxResult, Maa, Ppa, Rta, Saa};
use imslab_diameter::enums::{ReasonCode, ServerAssignmentType};
use imslab_diameter::{Message, Origin, ResultCode};
use imslab_diameter_io::PeerInfo;
use imslab_hss::Error;
use imslab_hss::cx::ppr::PprContent;
use imslab_hss::cx::rtr::RtrScope;
use imslab_store::{RegState, SubscriberKey};
use imslab_types::{DiameterIdentity, Imsi};

use crate::support::*;

fn origin() -> Origin {
    Origin {
        host: DiameterIdentity::new(SCSCF_HOST).unwrap(),
        realm: realm(),
    }
}

/// An S-CSCF that answers RTR and PPR with `result` and remembers what it got.
fn answering(
    result: CxResult,
    seen: Arc<Mutex<Vec<String>>>,
) -> impl Fn(Message, PeerInfo) -> std::future::Ready<Message> + Send + Sync + 'static {
    move |m: Message, _| {
        let answer = match CxRequest::decode(&m) {
            Ok(CxRequest::Rtr(r)) => {
                seen.lock().unwrap().push(format!(
                    "RTR {} {}",
                    r.user_name, r.deregistration_reason.reason_code
                ));
                Rta::new(&r, &origin(), result).to_message()
            }
            Ok(CxRequest::Ppr(r)) => {
                seen.lock().unwrap().push(format!(
                    "PPR {} user-data={}",
                    r.user_name,
                    r.user_data.is_some()
                ));
                Ppa::new(&r, &origin(), result).to_message()
            }
            other => panic!("unexpected request at the S-CSCF: {other:?}"),
        };
        std::future::ready(answer)
    }
}

async fn register(node: &imslab_diameter_io::DiameterNode) {
    let maa = Maa::decode(&ask(node, mar(1, 1, 1).to_message()).await).unwrap();
    assert!(maa.result.is_success());
    let saa = Saa::decode(
        &ask(
            node,
            sar(1, ServerAssignmentType::REGISTRATION).to_message(),
        )
        .await,
    )
    .unwrap();
    assert!(saa.result.is_success());
}

fn key() -> SubscriberKey {
    SubscriberKey::Imsi(Imsi::new(imsi(1)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtr_deregisters_at_the_serving_scscf_and_clears_the_state() {
    let (store, _db) = store("sqlite", "rtr").await;
    provision(&store, 1).await;
    let (hss, addr, events) = start_hss(store.clone()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let node = scscf(addr, answering(CxResult::SUCCESS, seen.clone())).await;
    register(&node).await;
    let s = store.subscribers().require(&key()).await.unwrap();
    assert_eq!(s.impus[0].reg_state, RegState::Registered);

    let done = hss
        .deregister(
            &key(),
            RtrScope::Subscriber,
            ReasonCode::PERMANENT_TERMINATION,
            Some("lab reset".into()),
        )
        .await
        .unwrap();
    assert_eq!(done, [impu(1)]);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [format!("RTR {} 0 (PERMANENT_TERMINATION)", impi(1))]
    );
    let s = store.subscribers().require(&key()).await.unwrap();
    assert_eq!(s.impus[0].reg_state, RegState::NotRegistered);
    assert!(s.scscf.is_none());
    assert!(
        events
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.step == "rtr" && e.outcome == imslab_types::Outcome::Ok)
    );
    node.shutdown().await;
    hss.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_rtr_is_reported_and_keeps_the_registration() {
    let (store, _db) = store("sqlite", "rtr_refused").await;
    provision(&store, 1).await;
    let (hss, addr, _) = start_hss(store.clone()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let node = scscf(
        addr,
        answering(CxResult::Base(ResultCode::DIAMETER_UNABLE_TO_COMPLY), seen),
    )
    .await;
    register(&node).await;
    let err = hss
        .deregister(
            &key(),
            RtrScope::Impu(impu(1)),
            ReasonCode::SERVER_CHANGE,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Refused { command: "RTA", result, .. } if result.contains("DIAMETER_UNABLE_TO_COMPLY")),
        "{err}"
    );
    let s = store.subscribers().require(&key()).await.unwrap();
    assert_eq!(s.impus[0].reg_state, RegState::Registered);
    node.shutdown().await;
    hss.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtr_to_a_vanished_scscf_fails_without_changing_state() {
    let (store, _db) = store("sqlite", "rtr_gone").await;
    provision(&store, 1).await;
    let (hss, addr, _) = start_hss(store.clone()).await;
    let node = scscf(
        addr,
        answering(CxResult::SUCCESS, Arc::new(Mutex::new(Vec::new()))),
    )
    .await;
    register(&node).await;
    node.shutdown().await;
    let err = hss
        .deregister(
            &key(),
            RtrScope::Subscriber,
            ReasonCode::PERMANENT_TERMINATION,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Initiate { command: "RTR", .. }),
        "{err}"
    );
    let s = store.subscribers().require(&key()).await.unwrap();
    assert_eq!(s.impus[0].reg_state, RegState::Registered);
    hss.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ppr_pushes_the_profile_to_the_serving_scscf() {
    let (store, _db) = store("sqlite", "ppr").await;
    provision(&store, 1).await;
    let (hss, addr, _) = start_hss(store.clone()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let node = scscf(addr, answering(CxResult::SUCCESS, seen.clone())).await;
    let err = hss
        .push_profile(&key(), PprContent::UserData)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not registered"), "{err}");
    register(&node).await;
    hss.push_profile(&key(), PprContent::UserData)
        .await
        .unwrap();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [format!("PPR {} user-data=true", impi(1))]
    );
    node.shutdown().await;
    hss.shutdown().await;
}
