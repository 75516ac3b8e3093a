use imslab_diameter::ExperimentalResultCode as E;
use imslab_diameter::ResultCode as B;
use imslab_diameter::cx::Sar;
use imslab_diameter::enums::{ServerAssignmentType as T, UserDataAlreadyAvailable};
use imslab_hss::cx::{Lookup, sar};
use imslab_store::{HssChange, RegState, Subscription};

use crate::common::*;

fn set_scscf(name: &str) -> HssChange {
    let host = name.trim_start_matches("sip:").split(':').next().unwrap();
    HssChange::SetScscf(Some(imslab_store::ServingScscf {
        name: name.into(),
        origin_host: Some(host.into()),
        origin_realm: Some("ims.example".into()),
    }))
}

fn state(impus: &[&str], s: RegState) -> HssChange {
    HssChange::SetRegState {
        impus: impus.iter().map(|i| impu(i)).collect(),
        state: s,
    }
}

struct Case {
    name: &'static str,
    lookup: Lookup,
    req: Sar,
    want: Want,
    changes: Vec<HssChange>,
    user_data: bool,
}

fn reg(sub: Subscription, impus: &[&str], scscf: &str) -> Subscription {
    with_state(sub, impus, RegState::Registered, Some(scscf))
}

fn cases() -> Vec<Case> {
    let alice_set = [ALICE, ALICE_TEL];
    let registered = || reg(subscription(), &[ALICE], SCSCF);
    let pending = || with_state(subscription(), &[], RegState::NotRegistered, Some(SCSCF));
    let mut already = sar(Some(IMPI), &[ALICE], T::RE_REGISTRATION, SCSCF);
    already.user_data_already_available = UserDataAlreadyAvailable::USER_DATA_ALREADY_AVAILABLE;
    let two_sets = || {
        let s = reg(subscription(), &[ALICE], SCSCF);
        with_state(s, &[PEER_OF_BARRED], RegState::Registered, Some(SCSCF))
    };
    let all: Vec<&str> = vec![
        ALICE,
        ALICE_TEL,
        BARRED_ALONE,
        BARRED_WITH_PEER,
        PEER_OF_BARRED,
        UNREG_SERVICES,
    ];
    vec![
        Case {
            name: "no identity at all is missing user id",
            lookup: unknown(),
            req: sar(None, &[], T::REGISTRATION, SCSCF),
            want: Want::Exp(E::DIAMETER_MISSING_USER_ID),
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "unknown user",
            lookup: unknown(),
            req: sar(Some("x@ims.example"), &[ALICE], T::REGISTRATION, SCSCF),
            want: Want::Exp(E::DIAMETER_ERROR_USER_UNKNOWN),
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "identity of another subscriber",
            lookup: lookup_foreign(subscription(), BOB, Some("001010000000002")),
            req: sar(Some(IMPI), &[BOB], T::REGISTRATION, SCSCF),
            want: Want::Exp(E::DIAMETER_ERROR_IDENTITIES_DONT_MATCH),
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "0 no assignment from the assigned s-cscf downloads the profile",
            lookup: lookup(registered()),
            req: sar(Some(IMPI), &[ALICE], T::NO_ASSIGNMENT, SCSCF),
            want: SUCCESS,
            changes: vec![],
            user_data: true,
        },
        Case {
            name: "0 no assignment from another s-cscf is unable to comply",
            lookup: lookup(registered()),
            req: sar(Some(IMPI), &[ALICE], T::NO_ASSIGNMENT, OTHER_SCSCF),
            want: Want::Base(B::DIAMETER_UNABLE_TO_COMPLY),
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "1 registration registers the implicit set and stores the name",
            lookup: lookup(pending()),
            req: sar(Some(IMPI), &[ALICE], T::REGISTRATION, SCSCF),
            want: SUCCESS,
            changes: vec![state(&alice_set, RegState::Registered)],
            user_data: true,
        },
        Case {
            name: "1 registration without a stored name stores it",
            lookup: lookup(subscription()),
            req: sar(Some(IMPI), &[ALICE_TEL], T::REGISTRATION, SCSCF),
            want: SUCCESS,
            changes: vec![set_scscf(SCSCF), state(&alice_set, RegState::Registered)],
            user_data: true,
        },
        Case {
            name: "1 registration at a new s-cscf overwrites the name",
            lookup: lookup(registered()),
            req: sar(Some(IMPI), &[ALICE], T::REGISTRATION, OTHER_SCSCF),
            want: SUCCESS,
            changes: vec![
                set_scscf(OTHER_SCSCF),
                state(&alice_set, RegState::Registered),
            ],
            user_data: true,
        },
        Case {
            name: "2 re-registration with data already available sends no profile",
            lookup: lookup(registered()),
            req: already,
            want: SUCCESS,
            changes: vec![state(&alice_set, RegState::Registered)],
            user_data: false,
        },
        Case {
            name: "3 unregistered user stores the name and the unregistered state",
            lookup: lookup(subscription()),
            req: sar(None, &[UNREG_SERVICES], T::UNREGISTERED_USER, SCSCF),
            want: SUCCESS,
            changes: vec![
                set_scscf(SCSCF),
                state(&[UNREG_SERVICES], RegState::Unregistered),
            ],
            user_data: true,
        },
        Case {
            name: "3 unregistered user for an identity registered here is error in assignment type",
            lookup: lookup(registered()),
            req: sar(None, &[ALICE], T::UNREGISTERED_USER, SCSCF),
            want: Want::Exp(E::DIAMETER_ERROR_IN_ASSIGNMENT_TYPE),
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "3 unregistered user for an identity registered elsewhere is already registered",
            lookup: lookup(registered()),
            req: sar(None, &[ALICE], T::UNREGISTERED_USER, OTHER_SCSCF),
            want: Want::Exp(E::DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED),
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "3 unregistered user while another set is registered elsewhere is already registered",
            lookup: lookup(registered()),
            req: sar(None, &[UNREG_SERVICES], T::UNREGISTERED_USER, OTHER_SCSCF),
            want: Want::Exp(E::DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED),
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "4 timeout deregistration clears state and name",
            lookup: lookup(registered()),
            req: sar(Some(IMPI), &[ALICE], T::TIMEOUT_DEREGISTRATION, SCSCF),
            want: SUCCESS,
            changes: vec![
                state(&alice_set, RegState::NotRegistered),
                HssChange::SetScscf(None),
            ],
            user_data: false,
        },
        Case {
            name: "5 user deregistration keeps the name while another set is registered",
            lookup: lookup(two_sets()),
            req: sar(Some(IMPI), &[ALICE], T::USER_DEREGISTRATION, SCSCF),
            want: SUCCESS,
            changes: vec![state(&alice_set, RegState::NotRegistered)],
            user_data: false,
        },
        Case {
            name: "5 user deregistration without public identity covers every identity",
            lookup: lookup(two_sets()),
            req: sar(Some(IMPI), &[], T::USER_DEREGISTRATION, SCSCF),
            want: SUCCESS,
            changes: vec![
                state(&all, RegState::NotRegistered),
                HssChange::SetScscf(None),
            ],
            user_data: false,
        },
        Case {
            name: "8 administrative deregistration clears state and name",
            lookup: lookup(registered()),
            req: sar(
                Some(IMPI),
                &[ALICE],
                T::ADMINISTRATIVE_DEREGISTRATION,
                SCSCF,
            ),
            want: SUCCESS,
            changes: vec![
                state(&alice_set, RegState::NotRegistered),
                HssChange::SetScscf(None),
            ],
            user_data: false,
        },
        Case {
            name: "11 deregistration too much data clears state and name",
            lookup: lookup(registered()),
            req: sar(Some(IMPI), &[ALICE], T::DEREGISTRATION_TOO_MUCH_DATA, SCSCF),
            want: SUCCESS,
            changes: vec![
                state(&alice_set, RegState::NotRegistered),
                HssChange::SetScscf(None),
            ],
            user_data: false,
        },
        Case {
            name: "5 deregistration from another s-cscf is unable to comply",
            lookup: lookup(registered()),
            req: sar(Some(IMPI), &[ALICE], T::USER_DEREGISTRATION, OTHER_SCSCF),
            want: Want::Base(B::DIAMETER_UNABLE_TO_COMPLY),
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "6 timeout deregistration store server name keeps it for unregistered services",
            lookup: lookup(reg(subscription(), &[UNREG_SERVICES], SCSCF)),
            req: sar(
                Some(IMPI),
                &[UNREG_SERVICES],
                T::TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME,
                SCSCF,
            ),
            want: SUCCESS,
            changes: vec![state(&[UNREG_SERVICES], RegState::Unregistered)],
            user_data: false,
        },
        Case {
            name: "7 user deregistration store server name without services is name not stored",
            lookup: lookup(registered()),
            req: sar(
                Some(IMPI),
                &[ALICE],
                T::USER_DEREGISTRATION_STORE_SERVER_NAME,
                SCSCF,
            ),
            want: Want::Exp(E::DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED),
            changes: vec![
                state(&alice_set, RegState::NotRegistered),
                HssChange::SetScscf(None),
            ],
            user_data: false,
        },
        Case {
            name: "9 authentication failure clears the name stored by the mar",
            lookup: lookup(pending()),
            req: sar(Some(IMPI), &[ALICE], T::AUTHENTICATION_FAILURE, SCSCF),
            want: SUCCESS,
            changes: vec![HssChange::SetScscf(None)],
            user_data: false,
        },
        Case {
            name: "10 authentication timeout of a registered user changes nothing",
            lookup: lookup(registered()),
            req: sar(Some(IMPI), &[ALICE], T::AUTHENTICATION_TIMEOUT, SCSCF),
            want: SUCCESS,
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "12 aaa user data request is not a cx assignment type",
            lookup: lookup(registered()),
            req: sar(Some(IMPI), &[ALICE], T::AAA_USER_DATA_REQUEST, SCSCF),
            want: Want::Exp(E::DIAMETER_ERROR_IN_ASSIGNMENT_TYPE),
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "13 pgw update is not a cx assignment type",
            lookup: lookup(registered()),
            req: sar(Some(IMPI), &[ALICE], T::PGW_UPDATE, SCSCF),
            want: Want::Exp(E::DIAMETER_ERROR_IN_ASSIGNMENT_TYPE),
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "14 restoration moves the name and sends the profile",
            lookup: lookup(registered()),
            req: sar(Some(IMPI), &[ALICE], T::RESTORATION, OTHER_SCSCF),
            want: SUCCESS,
            changes: vec![set_scscf(OTHER_SCSCF)],
            user_data: true,
        },
        Case {
            name: "14 restoration of a not registered identity is error in assignment type",
            lookup: lookup(subscription()),
            req: sar(Some(IMPI), &[ALICE], T::RESTORATION, SCSCF),
            want: Want::Exp(E::DIAMETER_ERROR_IN_ASSIGNMENT_TYPE),
            changes: vec![],
            user_data: false,
        },
        Case {
            name: "undefined assignment type is an invalid avp value",
            lookup: lookup(registered()),
            req: sar(Some(IMPI), &[ALICE], T(99), SCSCF),
            want: Want::Base(B::DIAMETER_INVALID_AVP_VALUE),
            changes: vec![],
            user_data: false,
        },
    ]
}

#[test]
fn sar_covers_every_server_assignment_type_of_ts_29_228_6_1_2() {
    let settings = settings();
    let mut types_seen = std::collections::BTreeSet::new();
    for c in cases() {
        types_seen.insert(c.req.server_assignment_type.0);
        let out = sar::handle(&c.req, &c.lookup, &settings, now());
        assert!(
            c.want.matches(&out.answer.result),
            "{}: got {:?}",
            c.name,
            out.answer.result
        );
        assert_eq!(out.changes, c.changes, "{}", c.name);
        assert_eq!(
            out.answer.user_data.is_some(),
            c.user_data,
            "{}: User-Data",
            c.name
        );
        assert_eq!(
            out.answer.charging_information.is_some(),
            c.user_data,
            "{}: Charging-Information",
            c.name
        );
        assert_eq!(out.events[0].step, "sar");
        let wire =
            imslab_diameter::Message::decode(out.answer.to_message().encode().unwrap()).unwrap();
        assert_eq!(
            imslab_diameter::cx::Saa::decode(&wire).unwrap(),
            out.answer,
            "{}",
            c.name
        );
    }
    assert_eq!(
        types_seen
            .into_iter()
            .filter(|t| *t <= 14)
            .collect::<Vec<_>>(),
        (0..=14).collect::<Vec<_>>()
    );
}

#[test]
fn registration_profile_lists_the_implicit_set_default_first_with_charging() {
    let out = sar::handle(
        &sar(Some(IMPI), &[ALICE_TEL], T::REGISTRATION, SCSCF),
        &lookup(subscription()),
        &settings(),
        now(),
    );
    let xml = String::from_utf8(out.answer.user_data.unwrap().to_vec()).unwrap();
    let a = xml.find(ALICE).unwrap();
    let t = xml.find(ALICE_TEL).unwrap();
    assert!(a < t, "default identity first: {xml}");
    assert!(
        !xml.contains(BARRED_ALONE),
        "other implicit sets are not sent"
    );
    assert!(xml.contains("<PrivateID>001010000000001@ims.example</PrivateID>"));
    let ci = out.answer.charging_information.unwrap();
    assert_eq!(
        ci.primary_charging_collection_function_name.unwrap().fqdn,
        "ccf.ims.example"
    );
}

#[test]
fn effective_changes_leave_out_what_the_subscriber_already_has() {
    let sub = reg(subscription(), &[ALICE], SCSCF);
    let re_registration = [
        set_scscf(SCSCF),
        state(&[ALICE, ALICE_TEL], RegState::Registered),
    ];
    assert_eq!(
        imslab_hss::cx::effective_changes(&re_registration, &sub.subscriber),
        vec![]
    );
    let mixed = [
        set_scscf("sip:other.ims.example:6060"),
        state(&[ALICE, PEER_OF_BARRED], RegState::Registered),
        state(&[ALICE], RegState::NotRegistered),
    ];
    assert_eq!(
        imslab_hss::cx::effective_changes(&mixed, &sub.subscriber),
        vec![
            set_scscf("sip:other.ims.example:6060"),
            state(&[PEER_OF_BARRED], RegState::Registered),
            state(&[ALICE], RegState::NotRegistered),
        ]
    );
}
