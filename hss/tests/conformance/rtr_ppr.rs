use imslab_diameter::cx::{CxResult, Ppa, Rta};
use imslab_diameter::enums::ReasonCode;
use imslab_diameter::{ExperimentalResultCode, Origin, ResultCode};
use imslab_hss::Error;
use imslab_hss::cx::ppr::{self, PprContent};
use imslab_hss::cx::rtr::{self, RtrScope};
use imslab_store::{HssChange, RegState};
use imslab_types::{DiameterIdentity, Realm};

use crate::common::*;

fn scscf_origin() -> Origin {
    Origin {
        host: DiameterIdentity::new("scscf.ims.example").unwrap(),
        realm: Realm::new("ims.example").unwrap(),
    }
}

#[test]
fn rtr_for_one_identity_targets_its_implicit_set_at_the_serving_scscf() {
    let sub = with_state(
        subscription(),
        &[ALICE, UNREG_SERVICES],
        RegState::Registered,
        Some(SCSCF),
    );
    let plan = rtr::request(
        &sub,
        &RtrScope::Impu(impu(ALICE_TEL)),
        ReasonCode::PERMANENT_TERMINATION,
        Some("bye".into()),
        &settings(),
        "hss;1;1".into(),
    )
    .unwrap();
    let r = &plan.request;
    assert_eq!(r.destination_host.as_str(), "scscf.ims.example");
    assert_eq!(r.user_name.as_str(), IMPI);
    let ids: Vec<&str> = r.public_identities.iter().map(|i| i.as_str()).collect();
    assert_eq!(ids, [ALICE, ALICE_TEL]);
    assert_eq!(
        r.deregistration_reason.reason_code,
        ReasonCode::PERMANENT_TERMINATION
    );
    // Another set stays registered: the name stays.
    assert_eq!(
        plan.on_success,
        vec![HssChange::SetRegState {
            impus: vec![impu(ALICE), impu(ALICE_TEL)],
            state: RegState::NotRegistered
        }]
    );
    let rta = Rta::new(r, &scscf_origin(), CxResult::SUCCESS);
    let done = rtr::on_answer(&plan, &sub, Some(&rta), now());
    assert_eq!(done.changes, plan.on_success);
    assert!(done.failure.is_none());
    // Round trip on the wire.
    let wire = imslab_diameter::Message::decode(r.to_message().encode().unwrap()).unwrap();
    assert_eq!(&imslab_diameter::cx::Rtr::decode(&wire).unwrap(), r);
}

#[test]
fn rtr_for_the_whole_subscriber_clears_every_identity_and_the_name() {
    let sub = with_state(subscription(), &[ALICE], RegState::Registered, Some(SCSCF));
    let plan = rtr::request(
        &sub,
        &RtrScope::Subscriber,
        ReasonCode::SERVER_CHANGE,
        None,
        &settings(),
        "hss;1;2".into(),
    )
    .unwrap();
    assert!(
        plan.request.public_identities.is_empty(),
        "no Public-Identity: all of the IMPI"
    );
    assert_eq!(plan.on_success.last(), Some(&HssChange::SetScscf(None)));
    let new_server = rtr::request(
        &sub,
        &RtrScope::Subscriber,
        ReasonCode::NEW_SERVER_ASSIGNED,
        None,
        &settings(),
        "hss;1;3".into(),
    )
    .unwrap();
    assert!(
        new_server.on_success.is_empty(),
        "NEW_SERVER_ASSIGNED only informs the old S-CSCF"
    );
}

#[test]
fn failed_or_missing_rta_changes_nothing_and_is_reported() {
    let sub = with_state(subscription(), &[ALICE], RegState::Registered, Some(SCSCF));
    let plan = rtr::request(
        &sub,
        &RtrScope::Subscriber,
        ReasonCode::PERMANENT_TERMINATION,
        None,
        &settings(),
        "hss;1;4".into(),
    )
    .unwrap();
    let rta = Rta::new(
        &plan.request,
        &scscf_origin(),
        CxResult::Base(ResultCode::DIAMETER_UNABLE_TO_COMPLY),
    );
    let done = rtr::on_answer(&plan, &sub, Some(&rta), now());
    assert!(done.changes.is_empty());
    assert!(
        done.failure
            .unwrap()
            .contains("5012 (DIAMETER_UNABLE_TO_COMPLY)")
    );
    let lost = rtr::on_answer(&plan, &sub, None, now());
    assert!(lost.failure.unwrap().contains("timeout"));
    assert_eq!(lost.events[0].outcome, imslab_types::Outcome::Failed);
}

#[test]
fn rtr_and_ppr_need_a_registered_user_with_a_known_scscf() {
    let sub = subscription();
    let e = rtr::request(
        &sub,
        &RtrScope::Subscriber,
        ReasonCode::PERMANENT_TERMINATION,
        None,
        &settings(),
        "s".into(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Initiate { command: "RTR", reason, .. } if reason.contains("not registered")),
        "{e}"
    );
    let e = ppr::request(&sub, PprContent::UserData, &settings(), "s".into()).unwrap_err();
    assert!(matches!(&e, Error::Initiate { command: "PPR", .. }), "{e}");
    let reg = with_state(subscription(), &[ALICE], RegState::Registered, Some(SCSCF));
    let e = rtr::request(
        &reg,
        &RtrScope::Impu(impu(BARRED_ALONE)),
        ReasonCode::PERMANENT_TERMINATION,
        None,
        &settings(),
        "s".into(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("is not registered"), "{e}");
}

#[test]
fn ppr_pushes_the_profile_of_held_identities_and_digest_data() {
    let sub = with_state(subscription(), &[ALICE], RegState::Registered, Some(SCSCF));
    let plan = ppr::request(&sub, PprContent::Both, &settings(), "hss;2;1".into()).unwrap();
    let r = &plan.request;
    let xml = String::from_utf8(r.user_data.clone().unwrap().to_vec()).unwrap();
    assert!(xml.contains(ALICE) && xml.contains(ALICE_TEL) && !xml.contains(BARRED_ALONE));
    assert!(r.charging_information.is_some());
    let d = r
        .sip_auth_data_item
        .as_ref()
        .unwrap()
        .digest_authenticate
        .as_ref()
        .unwrap();
    assert_eq!(d.digest_realm, "ims.example");
    let ppa = Ppa::new(
        r,
        &scscf_origin(),
        CxResult::experimental(ExperimentalResultCode::DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA),
    );
    let done = ppr::on_answer(&sub, Some(&ppa), now());
    assert!(
        done.failure
            .unwrap()
            .contains("DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA")
    );
    let ok = ppr::on_answer(
        &sub,
        Some(&Ppa::new(r, &scscf_origin(), CxResult::SUCCESS)),
        now(),
    );
    assert!(ok.failure.is_none() && ok.changes.is_empty());
    let wire = imslab_diameter::Message::decode(r.to_message().encode().unwrap()).unwrap();
    assert_eq!(&imslab_diameter::cx::Ppr::decode(&wire).unwrap(), r);
}
