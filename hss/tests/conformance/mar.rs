use bytes::Bytes;
use imslab_aka::{
    AmfPolicy, Autn, Ha1, Milenage, SqnConfig, Usim, generate_auts, resync_authorization,
};
use imslab_diameter::ExperimentalResultCode as E;
use imslab_diameter::ResultCode as B;
use imslab_diameter::cx::{Mar, SipAuthDataItem};
use imslab_hss::cx::Lookup;
use imslab_hss::cx::mar::{self, MarStep};
use imslab_store::{AuthScheme, AuthSchemes, DigestSecret, HssChange, RegState};
use imslab_types::{K, Opc, Rand, Sqn};

use crate::common::*;

const AKAV1: &str = SipAuthDataItem::SCHEME_AKAV1_MD5;
const AKAV2: &str = SipAuthDataItem::SCHEME_AKAV2_MD5;
const DIGEST: &str = SipAuthDataItem::SCHEME_SIP_DIGEST;
const UNKNOWN: &str = SipAuthDataItem::SCHEME_UNKNOWN;

fn aka_only() -> imslab_store::Subscription {
    let mut s = subscription();
    s.subscriber.auth_schemes = AuthSchemes::of(&[AuthScheme::AkaV1Md5]);
    s.subscriber.digest = None;
    s
}

fn done(step: MarStep) -> imslab_hss::cx::CxOutcome<imslab_diameter::cx::Maa> {
    match step {
        MarStep::Done(o) => *o,
        MarStep::NeedVectors(p) => panic!("expected an answer, got a vector plan {p:?}"),
    }
}

#[test]
fn mar_refusals_follow_ts_29_228_6_3() {
    let cases: Vec<(&str, Lookup, Mar, Want)> = vec![
        (
            "unknown private identity",
            unknown(),
            mar("x@ims.example", ALICE, AKAV1, 1, SCSCF),
            Want::Exp(E::DIAMETER_ERROR_USER_UNKNOWN),
        ),
        (
            "unprovisioned public identity",
            lookup_foreign(subscription(), BOB, None),
            mar(IMPI, BOB, AKAV1, 1, SCSCF),
            Want::Exp(E::DIAMETER_ERROR_USER_UNKNOWN),
        ),
        (
            "identity of another subscriber",
            lookup_foreign(subscription(), BOB, Some("001010000000009")),
            mar(IMPI, BOB, AKAV1, 1, SCSCF),
            Want::Exp(E::DIAMETER_ERROR_IDENTITIES_DONT_MATCH),
        ),
        (
            "NASS-Bundled is not supported",
            lookup(subscription()),
            mar(IMPI, ALICE, "NASS-Bundled", 1, SCSCF),
            Want::Exp(E::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED),
        ),
        (
            "scheme not provisioned for the user",
            lookup(aka_only()),
            mar(IMPI, ALICE, AKAV2, 1, SCSCF),
            Want::Exp(E::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED),
        ),
        (
            "SIP Digest not provisioned",
            lookup(aka_only()),
            mar(IMPI, ALICE, DIGEST, 1, SCSCF),
            Want::Exp(E::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED),
        ),
        (
            "Unknown for a user with no scheme provisioned",
            lookup({
                let mut s = aka_only();
                s.subscriber.auth_schemes = AuthSchemes::of(&[]);
                s
            }),
            mar(IMPI, ALICE, UNKNOWN, 1, SCSCF),
            Want::Exp(E::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED),
        ),
    ];
    for (name, lookup, req, want) in cases {
        let out = done(mar::check(&req, &lookup, &settings(), now()));
        assert!(
            want.matches(&out.answer.result),
            "{name}: {:?}",
            out.answer.result
        );
        assert!(out.answer.sip_auth_data_items.is_empty(), "{name}");
        assert!(out.changes.is_empty(), "{name}");
        assert_eq!(
            out.events[0].outcome,
            imslab_types::Outcome::Failed,
            "{name}"
        );
    }
}

#[test]
fn sip_digest_mar_returns_realm_algorithm_qop_and_ha1() {
    for scheme in [DIGEST, UNKNOWN] {
        let out = done(mar::check(
            &mar(IMPI, ALICE, scheme, 3, SCSCF),
            &lookup(subscription()),
            &settings(),
            now(),
        ));
        assert!(SUCCESS.matches(&out.answer.result));
        assert_eq!(out.answer.sip_number_auth_items, Some(1));
        let item = &out.answer.sip_auth_data_items[0];
        assert_eq!(item.authentication_scheme.as_deref(), Some(DIGEST));
        let d = item.digest_authenticate.as_ref().unwrap();
        assert_eq!(d.digest_realm, "ims.example");
        assert_eq!(d.digest_algorithm.as_deref(), Some("MD5"));
        assert_eq!(d.digest_qop, "auth");
        let expected = Ha1::new(IMPI, "ims.example", b"secret").expose_hex();
        assert_eq!(d.digest_ha1, expected);
        // The MAR stored the S-CSCF name (authentication pending).
        assert!(matches!(&out.changes[..], [HssChange::SetScscf(Some(s))] if s.name == SCSCF));
    }
}

/// `Unknown` means the scheme provisioned for the user (TS 24.229 §5.4.1.2.1; FHoSS answers with
/// the IMPI's default scheme): an AKA-only user gets AKA vectors, not 5006.
#[test]
fn unknown_scheme_for_an_aka_only_user_gets_the_provisioned_aka_scheme() {
    for (schemes, want) in [
        (vec![AuthScheme::AkaV1Md5], AuthScheme::AkaV1Md5),
        (vec![AuthScheme::AkaV2Md5], AuthScheme::AkaV2Md5),
        (
            vec![AuthScheme::AkaV1Md5, AuthScheme::AkaV2Md5],
            AuthScheme::AkaV1Md5,
        ),
    ] {
        let mut s = aka_only();
        s.subscriber.auth_schemes = AuthSchemes::of(&schemes);
        match mar::check(
            &mar(IMPI, ALICE, UNKNOWN, 2, SCSCF),
            &lookup(s),
            &settings(),
            now(),
        ) {
            MarStep::NeedVectors(plan) => {
                assert_eq!(plan.scheme, want, "{schemes:?}");
                assert_eq!(plan.count, 2);
            }
            MarStep::Done(o) => panic!("{schemes:?}: expected vectors, got {:?}", o.answer.result),
        }
    }
}

#[test]
fn stored_ha1_and_digest_realm_are_sent_as_provisioned() {
    let mut s = subscription();
    s.subscriber.digest = Some(DigestSecret::Ha1("0123456789abcdef0123456789abcdef".into()));
    s.subscriber.digest_realm = Some("lab.example".into());
    let out = done(mar::check(
        &mar(IMPI, ALICE, DIGEST, 1, SCSCF),
        &lookup(s),
        &settings(),
        now(),
    ));
    let d = out.answer.sip_auth_data_items[0]
        .digest_authenticate
        .clone()
        .unwrap();
    assert_eq!(
        (d.digest_realm.as_str(), d.digest_ha1.as_str()),
        ("lab.example", "0123456789abcdef0123456789abcdef")
    );
}

fn plan(step: MarStep) -> mar::VectorPlan {
    match step {
        MarStep::NeedVectors(p) => p,
        MarStep::Done(o) => panic!("expected a vector plan, got {:?}", o.answer.result),
    }
}

#[test]
fn aka_mar_caps_items_and_stores_the_scscf_name_only_when_it_changes() {
    let p = plan(mar::check(
        &mar(IMPI, ALICE, AKAV1, 9, SCSCF),
        &lookup(subscription()),
        &settings(),
        now(),
    ));
    assert_eq!(
        (p.count, p.scheme, p.reset_sqn),
        (4, AuthScheme::AkaV1Md5, None)
    );
    assert!(
        matches!(&p.changes[..], [HssChange::SetScscf(Some(s))] if s.name == SCSCF && s.origin_host.as_deref() == Some("scscf.ims.example"))
    );
    let zero = plan(mar::check(
        &mar(IMPI, ALICE, AKAV2, 0, SCSCF),
        &lookup(subscription()),
        &settings(),
        now(),
    ));
    assert_eq!(zero.count, 1);
    let same = with_state(subscription(), &[ALICE], RegState::Registered, Some(SCSCF));
    let p = plan(mar::check(
        &mar(IMPI, ALICE, AKAV1, 1, SCSCF),
        &lookup(same.clone()),
        &settings(),
        now(),
    ));
    assert!(p.changes.is_empty());
    let p = plan(mar::check(
        &mar(IMPI, ALICE, AKAV1, 1, OTHER_SCSCF),
        &lookup(same),
        &settings(),
        now(),
    ));
    assert!(matches!(&p.changes[..], [HssChange::SetScscf(Some(s))] if s.name == OTHER_SCSCF));
}

fn usim() -> Usim {
    let m = Milenage::new(
        &K::from_hex(K_HEX).unwrap(),
        &Opc::from_hex(OPC_HEX).unwrap(),
    );
    Usim::with_config(m, SqnConfig::default(), AmfPolicy::Any)
}

#[test]
fn aka_vectors_are_accepted_by_the_card_and_carry_its_keys() {
    let sub = subscription();
    let req = mar(IMPI, ALICE, AKAV1, 2, SCSCF);
    let p = plan(mar::check(&req, &lookup(sub.clone()), &settings(), now()));
    let sqns = [
        Sqn::new((1 << 5) | 1).unwrap(),
        Sqn::new((2 << 5) | 2).unwrap(),
    ];
    let mut n = 0u8;
    let mut rands = || {
        n += 1;
        [n; 16]
    };
    let out = mar::vectors(&req, &sub, p, &sqns, &mut rands, &settings(), now());
    assert!(SUCCESS.matches(&out.answer.result));
    assert_eq!(out.answer.sip_number_auth_items, Some(2));
    let mut card = usim();
    for (i, item) in out.answer.sip_auth_data_items.iter().enumerate() {
        assert_eq!(item.item_number, Some(i as u32 + 1));
        assert_eq!(item.authentication_scheme.as_deref(), Some(AKAV1));
        let auth = item.authenticate.as_ref().unwrap();
        assert_eq!(auth.len(), 32);
        let rand = Rand(auth[..16].try_into().unwrap());
        assert_eq!(rand.0, [i as u8 + 1; 16]);
        let autn = Autn(auth[16..].try_into().unwrap());
        let r = card
            .authenticate(&rand, &autn)
            .expect("the card accepts the vector");
        assert_eq!(item.authorization.as_deref(), Some(r.res.expose()));
        assert_eq!(
            item.confidentiality_key.as_ref().unwrap().expose(),
            r.ck.expose()
        );
        assert_eq!(item.integrity_key.as_ref().unwrap().expose(), r.ik.expose());
    }
    assert!(
        out.events
            .iter()
            .any(|e| e.step == "mar" && e.reason.as_deref().unwrap().contains("SEQ 2, IND 2"))
    );
}

fn resync_mar(rand: &Rand, sqn_ms: Sqn, server: &str, k: &str) -> Mar {
    let m = Milenage::new(&K::from_hex(k).unwrap(), &Opc::from_hex(OPC_HEX).unwrap());
    let auts = generate_auts(&m, rand, sqn_ms);
    let mut req = mar(IMPI, ALICE, AKAV1, 1, server);
    req.sip_auth_data_item.authorization =
        Some(Bytes::copy_from_slice(&resync_authorization(rand, &auts)));
    req
}

#[test]
fn resync_from_the_stored_scscf_resets_sqn_to_sqn_ms() {
    let sub = with_state(subscription(), &[], RegState::NotRegistered, Some(SCSCF));
    let sqn_ms = Sqn::new(5000 << 5).unwrap();
    let req = resync_mar(&Rand([9; 16]), sqn_ms, SCSCF, K_HEX);
    let p = plan(mar::check(&req, &lookup(sub), &settings(), now()));
    assert_eq!(p.reset_sqn, Some(sqn_ms));
    assert!(p.changes.is_empty());
    assert!(
        p.events
            .iter()
            .any(|e| e.step == "aka-resync" && e.reason.as_deref().unwrap().contains("reset"))
    );
}

#[test]
fn resync_from_another_scscf_is_ignored_and_keeps_the_name() {
    let sub = with_state(subscription(), &[], RegState::NotRegistered, Some(SCSCF));
    let req = resync_mar(
        &Rand([9; 16]),
        Sqn::new(5000 << 5).unwrap(),
        OTHER_SCSCF,
        K_HEX,
    );
    let p = plan(mar::check(&req, &lookup(sub), &settings(), now()));
    assert_eq!(p.reset_sqn, None);
    assert!(
        p.changes.is_empty(),
        "the stored S-CSCF name must not be overwritten"
    );
}

#[test]
fn auts_with_a_bad_mac_is_rejected() {
    let sub = with_state(subscription(), &[], RegState::NotRegistered, Some(SCSCF));
    let req = resync_mar(
        &Rand([9; 16]),
        Sqn::new(5000 << 5).unwrap(),
        SCSCF,
        "00000000000000000000000000000001",
    );
    let out = done(mar::check(&req, &lookup(sub), &settings(), now()));
    assert!(Want::Base(B::DIAMETER_AUTHENTICATION_REJECTED).matches(&out.answer.result));
    assert_eq!(out.events[0].step, "aka-resync");
    let mut bad = mar(IMPI, ALICE, AKAV1, 1, SCSCF);
    bad.sip_auth_data_item.authorization = Some(Bytes::from_static(&[1, 2, 3]));
    let out = done(mar::check(
        &bad,
        &lookup(subscription()),
        &settings(),
        now(),
    ));
    assert!(Want::Base(B::DIAMETER_INVALID_AVP_VALUE).matches(&out.answer.result));
}
