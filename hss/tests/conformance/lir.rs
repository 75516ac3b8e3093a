use imslab_diameter::ExperimentalResultCode as E;
use imslab_diameter::enums::UserAuthorizationType as T;
use imslab_hss::cx::Lookup;
use imslab_hss::cx::lir as handler;
use imslab_store::RegState;

use crate::common::*;

#[test]
fn lir_answers_follow_ts_29_228_6_1_4() {
    let registered = with_state(subscription(), &[ALICE], RegState::Registered, Some(SCSCF));
    let unregistered = with_state(
        subscription(),
        &[UNREG_SERVICES],
        RegState::Unregistered,
        Some(SCSCF),
    );
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Lookup, &str, Option<T>, Want, Option<&str>, bool)> = vec![
        (
            "unknown identity",
            unknown(),
            BOB,
            None,
            Want::Exp(E::DIAMETER_ERROR_USER_UNKNOWN),
            None,
            false,
        ),
        (
            "registered identity returns its s-cscf",
            lookup(registered.clone()),
            ALICE_TEL,
            None,
            SUCCESS,
            Some(SCSCF),
            false,
        ),
        (
            "registered identity with capabilities asked",
            lookup(registered),
            ALICE,
            Some(T::REGISTRATION_AND_CAPABILITIES),
            SUCCESS,
            None,
            true,
        ),
        (
            "unregistered identity returns the s-cscf keeping its profile",
            lookup(unregistered),
            UNREG_SERVICES,
            None,
            SUCCESS,
            Some(SCSCF),
            false,
        ),
        (
            "not registered with unregistered services needs an s-cscf",
            lookup(subscription()),
            UNREG_SERVICES,
            None,
            Want::Exp(E::DIAMETER_UNREGISTERED_SERVICE),
            None,
            true,
        ),
        (
            "not registered without services is not registered",
            lookup(subscription()),
            ALICE,
            None,
            Want::Exp(E::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED),
            None,
            false,
        ),
    ];
    for (name, lookup, who, kind, want, server, caps) in cases {
        let req = lir(who, kind);
        let out = handler::handle(&req, &lookup, &settings(), now());
        assert!(
            want.matches(&out.answer.result),
            "{name}: {:?}",
            out.answer.result
        );
        assert_eq!(out.answer.server_name.as_deref(), server, "{name}");
        assert_eq!(out.answer.server_capabilities.is_some(), caps, "{name}");
        assert!(out.changes.is_empty());
        assert_eq!(out.events[0].step, "lir");
    }
}
