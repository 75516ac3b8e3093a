//! The HSS/AuC and the USIM model against each other: round trips, SQN freshness,
//! resynchronisation, replay and MAC failures (TS 33.102 §6.3, Annex C).

use std::time::SystemTime;

use imslab_aka::{
    AmfPolicy, Auc, AuthVector, Auts, DigestAlgorithm, DigestRequest, Error, Ha1, Nonce,
    NonceCount, Qop, QopParams, SqnArray, SqnConfig, SqnRejection, Usim, digest,
    parse_resync_authorization, resync_authorization,
};
use imslab_types::{Amf, Function, Outcome, Rand, Sqn, UeRef};
use rand::Rng;
use rand::rngs::StdRng;

use crate::{milenage, rng, subscriber};

const IMS_AMF: Amf = Amf([0x00, 0x00]);
const REALM: &str = "ims.mnc001.mcc001.3gppnetwork.org";
const URI: &str = "sip:ims.mnc001.mcc001.3gppnetwork.org";

fn rand_source(rng: &mut StdRng) -> impl FnMut() -> [u8; 16] + '_ {
    move || rng.random()
}

/// The S-CSCF's side and the UE's side of one REGISTER digest exchange.
fn digest_exchange(
    alg: DigestAlgorithm,
    v: &AuthVector,
    r: &imslab_aka::AkaResult,
    user: &str,
    cnonce: &str,
) {
    let nonce = v.nonce();
    let req = DigestRequest {
        nonce: &nonce,
        method: "REGISTER",
        uri: URI,
        qop: Some(QopParams {
            qop: Qop::Auth,
            nc: NonceCount::new(1),
            cnonce,
        }),
        body: b"",
    };
    let ue_ha1 = Ha1::aka(alg, user, REALM, &r.res, &r.ik, &r.ck).expect("AKA algorithm");
    let sent = digest::response(&ue_ha1, &req).to_hex();
    let net_ha1 = Ha1::for_vector(alg, user, REALM, v).expect("AKA algorithm");
    assert_eq!(
        digest::verify(&net_ha1, &req, &sent),
        Ok(()),
        "{alg} response from {user}"
    );
    let rspauth = digest::rspauth(&net_ha1, &req).to_hex();
    assert_eq!(digest::verify_rspauth(&ue_ha1, &req, &rspauth), Ok(()));
}

#[test]
fn ten_thousand_random_subscribers_authenticate_and_resync_when_their_sqn_drifted() {
    let mut rng = rng(10_000);
    let mut rands = crate::rng(1);
    let auc = Auc::default();
    let (mut resyncs, mut expected_resyncs) = (0, 0);
    for i in 0..10_000u32 {
        let (k, opc) = subscriber(&mut rng);
        let m = milenage(&k, &opc);
        let mut usim = Usim::new(&k, &opc);
        // Even subscribers are freshly provisioned; odd ones carry an arbitrary SQN_HE.
        let sqn_he = if i % 2 == 0 {
            Sqn::default()
        } else {
            Sqn::new(rng.random_range(0..Sqn::MAX / 2)).unwrap()
        };
        let (mut v, mut sqn_he) = auc
            .generate_vector(&m, &mut rand_source(&mut rands), sqn_he, IMS_AMF)
            .unwrap();
        if auc.sqn.seq(sqn_he) > auc.sqn.delta() {
            expected_resyncs += 1;
        }
        let result = match usim.authenticate(&v.rand, &v.autn) {
            Ok(r) => r,
            Err(Error::SyncFailure { auts, reason }) => {
                assert!(
                    matches!(reason, SqnRejection::TooFarAhead { .. }),
                    "subscriber {i}: {reason}"
                );
                resyncs += 1;
                let rs = auc.resync(&m, sqn_he, &v.rand, &auts).unwrap();
                assert!(
                    rs.reset,
                    "subscriber {i}: SQN_HE out of range must be reset"
                );
                assert_eq!(rs.sqn_ms, usim.sqn_array().sqn_ms());
                (v, sqn_he) = auc
                    .generate_vector(&m, &mut rand_source(&mut rands), rs.sqn_he, IMS_AMF)
                    .unwrap();
                usim.authenticate(&v.rand, &v.autn)
                    .unwrap_or_else(|e| panic!("subscriber {i} after resync: {e}"))
            }
            Err(e) => panic!("subscriber {i}: {e}"),
        };
        assert_eq!(result.res, v.xres, "subscriber {i}: RES");
        assert_eq!(result.ck, v.ck, "subscriber {i}: CK");
        assert_eq!(result.ik, v.ik, "subscriber {i}: IK");
        assert_eq!(
            usim.sqn_array().sqn_ms(),
            sqn_he,
            "subscriber {i}: the USIM remembers the SQN used"
        );
        let alg = if i % 3 == 0 {
            DigestAlgorithm::AkaV2Md5
        } else {
            DigestAlgorithm::AkaV1Md5
        };
        let user = format!("00101{i:010}@{REALM}");
        digest_exchange(
            alg,
            &v,
            &result,
            &user,
            &format!("{:016x}", rng.random::<u64>()),
        );
    }
    assert_eq!(resyncs, expected_resyncs);
    assert!(
        resyncs > 4_900,
        "nearly every odd subscriber starts beyond delta: {resyncs}"
    );
}

/// A card whose every IND slot saw SEQ values just below `top` (it was used with another HSS).
fn card_that_saw(cfg: SqnConfig, top: u64) -> SqnArray {
    let mut a = SqnArray::new(cfg);
    for ind in 0..cfg.ind_count() as u32 {
        let sqn = cfg.compose(top - u64::from(ind), ind).unwrap();
        a.check_and_accept(sqn).unwrap();
    }
    a
}

#[test]
fn resync_recovers_from_a_ue_that_already_saw_a_sqn_2_pow_20_higher() {
    let mut rng = rng(20);
    let (k, opc) = subscriber(&mut rng);
    let m = milenage(&k, &opc);
    let auc = Auc::default();
    let mut usim = Usim::new(&k, &opc);
    let ue_top = 1000 + (1 << 20);
    usim.set_sqn_array(card_that_saw(auc.sqn, ue_top));
    let sqn_he = auc.sqn.compose(1000, 0).unwrap();

    let (v, sqn_he) = auc
        .generate_vector(&m, &mut rand_source(&mut rng), sqn_he, IMS_AMF)
        .unwrap();
    let Err(Error::SyncFailure { auts, reason }) = usim.authenticate(&v.rand, &v.autn) else {
        panic!("a SQN 2^20 below the card's must fail freshness")
    };
    assert!(matches!(reason, SqnRejection::NotFresh { .. }), "{reason}");
    let rs = auc.resync(&m, sqn_he, &v.rand, &auts).unwrap();
    assert!(rs.reset);
    assert_eq!(auc.sqn.seq(rs.sqn_ms), ue_top);
    let (v2, used) = auc
        .generate_vector(&m, &mut rand_source(&mut rng), rs.sqn_he, IMS_AMF)
        .unwrap();
    assert_eq!(auc.sqn.seq(used), ue_top + 1, "the next SQN follows SQN_MS");
    let r = usim
        .authenticate(&v2.rand, &v2.autn)
        .expect("accepted after resync");
    assert_eq!(r.res, v2.xres);
}

#[test]
fn resync_recovers_when_the_network_ran_2_pow_20_ahead_of_a_ue_with_a_small_delta() {
    let mut rng = rng(21);
    let (k, opc) = subscriber(&mut rng);
    let m = milenage(&k, &opc);
    let cfg = SqnConfig::new(5, 1 << 16, None).unwrap();
    let auc = Auc::new(cfg, AmfPolicy::Ims);
    let mut usim = Usim::with_config(milenage(&k, &opc), cfg, AmfPolicy::Ims);
    usim.set_sqn_array(card_that_saw(cfg, 500));
    let sqn_he = cfg.compose(500 + (1 << 20), 3).unwrap();

    let (v, sqn_he) = auc
        .generate_vector(&m, &mut rand_source(&mut rng), sqn_he, IMS_AMF)
        .unwrap();
    let Err(Error::SyncFailure { auts, reason }) = usim.authenticate(&v.rand, &v.autn) else {
        panic!("a jump of 2^20 must exceed delta 2^16")
    };
    assert!(
        matches!(reason, SqnRejection::TooFarAhead { delta: 65536, .. }),
        "{reason}"
    );
    let rs = auc.resync(&m, sqn_he, &v.rand, &auts).unwrap();
    assert!(rs.reset);
    assert_eq!(cfg.seq(rs.sqn_he), 500);
    let (v2, _) = auc
        .generate_vector(&m, &mut rand_source(&mut rng), rs.sqn_he, IMS_AMF)
        .unwrap();
    assert!(usim.authenticate(&v2.rand, &v2.autn).is_ok());
}

#[test]
fn a_network_2_pow_20_ahead_is_accepted_within_the_default_delta() {
    let mut rng = rng(22);
    let (k, opc) = subscriber(&mut rng);
    let auc = Auc::default();
    let mut usim = Usim::new(&k, &opc);
    usim.set_sqn_array(card_that_saw(auc.sqn, 500));
    let sqn_he = auc.sqn.compose(500 + (1 << 20), 0).unwrap();
    let (v, used) = auc
        .generate_vector(
            &milenage(&k, &opc),
            &mut rand_source(&mut rng),
            sqn_he,
            IMS_AMF,
        )
        .unwrap();
    assert!(usim.authenticate(&v.rand, &v.autn).is_ok());
    assert_eq!(usim.sqn_array().sqn_ms(), used);
}

#[test]
fn age_limit_l_rejects_an_old_sqn_in_an_unused_ind_slot() {
    let mut rng = rng(23);
    let (k, opc) = subscriber(&mut rng);
    let m = milenage(&k, &opc);
    let cfg = SqnConfig::new(5, 1 << 28, Some(1 << 10)).unwrap();
    let mut usim = Usim::with_config(milenage(&k, &opc), cfg, AmfPolicy::Ims);
    let mut seen = SqnArray::new(cfg);
    seen.check_and_accept(cfg.compose(1 << 20, 7).unwrap())
        .unwrap();
    usim.set_sqn_array(seen.clone());
    // IND 8 was never used, so without L this older SEQ would pass.
    let old = cfg.compose(5, 8).unwrap();
    assert!(SqnArray::new(SqnConfig::default()).check(old).is_ok());
    let v = imslab_aka::generate_vector(&m, Rand(rng.random()), old, IMS_AMF);
    let Err(Error::SyncFailure { reason, .. }) = usim.authenticate(&v.rand, &v.autn) else {
        panic!("L must apply")
    };
    assert!(
        matches!(reason, SqnRejection::TooOld { limit: 1024, .. }),
        "{reason}"
    );
    assert_eq!(usim.sqn_array(), &seen, "a rejection changes nothing");
}

#[test]
fn replayed_autn_is_rejected_and_the_network_keeps_its_sqn() {
    let mut rng = rng(30);
    let (k, opc) = subscriber(&mut rng);
    let m = milenage(&k, &opc);
    let auc = Auc::default();
    let mut usim = Usim::new(&k, &opc);
    let (v, sqn_he) = auc
        .generate_vector(&m, &mut rand_source(&mut rng), Sqn::default(), IMS_AMF)
        .unwrap();
    assert!(usim.authenticate(&v.rand, &v.autn).is_ok());
    let before = usim.sqn_array().clone();
    let Err(Error::SyncFailure { auts, reason }) = usim.authenticate(&v.rand, &v.autn) else {
        panic!("a replayed AUTN must not be accepted")
    };
    assert!(matches!(reason, SqnRejection::NotFresh { .. }), "{reason}");
    assert_eq!(usim.sqn_array(), &before);
    let rs = auc.resync(&m, sqn_he, &v.rand, &auts).unwrap();
    assert!(!rs.reset, "SQN_HE is already ahead of the card");
    assert_eq!(rs.sqn_he, sqn_he);
}

#[test]
fn wrong_mac_amf_or_key_is_detected_as_mac_failure() {
    let mut rng = rng(40);
    let (k, opc) = subscriber(&mut rng);
    let m = milenage(&k, &opc);
    let (v, _) = Auc::default()
        .generate_vector(&m, &mut rand_source(&mut rng), Sqn::default(), IMS_AMF)
        .unwrap();
    let mut usim = Usim::new(&k, &opc);
    for bit in 0..128 {
        let mut autn = v.autn;
        autn.0[bit / 8] ^= 0x80 >> (bit % 8);
        let r = usim.authenticate(&v.rand, &autn);
        assert_eq!(r, Err(Error::MacFailure), "AUTN bit {bit} flipped");
    }
    let mut other_rand = v.rand;
    other_rand.0[15] ^= 1;
    assert_eq!(
        usim.authenticate(&other_rand, &v.autn),
        Err(Error::MacFailure)
    );
    let (other_k, _) = subscriber(&mut rng);
    assert_eq!(
        Usim::new(&other_k, &opc).authenticate(&v.rand, &v.autn),
        Err(Error::MacFailure)
    );
    assert_eq!(
        usim.sqn_array(),
        &SqnArray::new(SqnConfig::default()),
        "failures change nothing"
    );
    assert!(
        usim.authenticate(&v.rand, &v.autn).is_ok(),
        "the genuine AUTN still works"
    );
}

#[test]
fn amf_separation_bit_is_refused_for_ims_on_both_sides() {
    let mut rng = rng(50);
    let (k, opc) = subscriber(&mut rng);
    let m = milenage(&k, &opc);
    let eps_amf = Amf([0x80, 0x00]);
    let ims = Auc::default();
    assert_eq!(
        ims.generate_vector(&m, &mut rand_source(&mut rng), Sqn::default(), eps_amf)
            .map(|_| ()),
        Err(Error::AmfInvalid {
            amf: eps_amf,
            expected: 0
        })
    );
    let eps = Auc::new(SqnConfig::default(), AmfPolicy::Eutran);
    let (v, _) = eps
        .generate_vector(&m, &mut rand_source(&mut rng), Sqn::default(), eps_amf)
        .unwrap();
    let mut usim = Usim::new(&k, &opc);
    assert_eq!(
        usim.authenticate(&v.rand, &v.autn),
        Err(Error::AmfInvalid {
            amf: eps_amf,
            expected: 0
        })
    );
    let mut lte = Usim::with_config(milenage(&k, &opc), SqnConfig::default(), AmfPolicy::Eutran);
    assert!(lte.authenticate(&v.rand, &v.autn).is_ok());
}

#[test]
fn outstanding_vectors_cycle_ind_and_are_accepted_in_any_order() {
    let mut rng = rng(60);
    let (k, opc) = subscriber(&mut rng);
    let m = milenage(&k, &opc);
    let auc = Auc::default();
    let (vs, last) = auc
        .generate_vectors(&m, &mut rand_source(&mut rng), Sqn::default(), IMS_AMF, 33)
        .unwrap();
    assert_eq!(auc.sqn.seq(last), 33);
    let mut usim = Usim::new(&k, &opc);
    // Vector 33 reuses IND 1 of vector 1: use it first, then 32..2 in reverse; vector 1 is then stale.
    assert!(usim.authenticate(&vs[32].rand, &vs[32].autn).is_ok());
    for (n, v) in vs.iter().enumerate().skip(1).take(31).rev() {
        usim.authenticate(&v.rand, &v.autn)
            .unwrap_or_else(|e| panic!("vector {}: {e}", n + 1));
    }
    let Err(Error::SyncFailure { reason, .. }) = usim.authenticate(&vs[0].rand, &vs[0].autn) else {
        panic!("vector 1 shares IND 1 with the already used vector 33")
    };
    assert_eq!(
        reason,
        SqnRejection::NotFresh {
            seq: 1,
            seq_ms_ind: 33,
            ind: 1
        }
    );
}

#[test]
fn auts_with_a_bad_mac_s_or_for_another_rand_is_rejected() {
    let mut rng = rng(70);
    let (k, opc) = subscriber(&mut rng);
    let m = milenage(&k, &opc);
    let usim = Usim::new(&k, &opc);
    let rand = Rand(rng.random());
    let auts = usim.auts(&rand);
    let auc = Auc::default();
    assert!(auc.resync(&m, Sqn::default(), &rand, &auts).is_ok());
    let mut bad = auts;
    bad.0[13] ^= 1;
    assert_eq!(
        auc.resync(&m, Sqn::default(), &rand, &bad),
        Err(Error::AutsMacFailure)
    );
    assert_eq!(
        auc.resync(&m, Sqn::default(), &Rand(rng.random()), &auts),
        Err(Error::AutsMacFailure)
    );
    assert_eq!(Auts::from_base64(&auts.to_base64()), Ok(auts));
    let avp = resync_authorization(&rand, &auts);
    assert_eq!(
        (&avp[..16], &avp[16..]),
        (&rand.0[..], &auts.0[..]),
        "SIP-Authorization = RAND ‖ AUTS"
    );
    assert_eq!(parse_resync_authorization(&avp), Ok((rand, auts)));
    assert!(parse_resync_authorization(&avp[..29]).is_err());
}

#[test]
fn sqn_generation_stops_at_seq_max() {
    let cfg = SqnConfig::default();
    let last = cfg.compose(cfg.seq_max(), 4).unwrap();
    assert_eq!(
        cfg.next_sqn(last),
        Err(Error::SqnExhausted { max: (1 << 43) - 1 })
    );
    let next = cfg.next_sqn(cfg.compose(7, 31).unwrap()).unwrap();
    assert_eq!(
        (cfg.seq(next), cfg.ind(next)),
        (8, 0),
        "IND wraps modulo 2^5"
    );
    assert!(SqnConfig::new(11, 1, None).is_err());
    assert!(SqnConfig::new(5, 0, None).is_err());
}

#[test]
fn nonce_carries_rand_and_autn_and_optional_server_data() {
    let mut rng = rng(80);
    let (k, opc) = subscriber(&mut rng);
    let v = imslab_aka::generate_vector(
        &milenage(&k, &opc),
        Rand(rng.random()),
        Sqn::new(42).unwrap(),
        IMS_AMF,
    );
    let n = Nonce::parse(&v.nonce()).unwrap();
    assert_eq!((n.rand, n.autn, n.server_data.len()), (v.rand, v.autn, 0));
    assert_eq!(v.nonce().len(), 44, "base64 of 32 bytes");
    let with = Nonce::parse(&v.nonce_with_server_data(b"scscf-1")).unwrap();
    assert_eq!(with.server_data, b"scscf-1");
    assert!(Nonce::parse("AAAA").is_err());
    assert!(Nonce::parse("not base64!").is_err());
    let mut usim = Usim::new(&k, &opc);
    assert_eq!(
        usim.authenticate_nonce(&v.nonce()).map(|r| r.res),
        Ok(v.xres)
    );
}

#[test]
fn usim_outcomes_map_to_ue_events() {
    let mac = Error::MacFailure.diagnosis();
    assert_eq!(
        (mac.step, mac.outcome, mac.reason.as_str()),
        ("aka-autn", Outcome::Failed, "AUTN rejected: MAC mismatch")
    );
    let sync = Error::SyncFailure {
        auts: Auts([0; 14]),
        reason: SqnRejection::NotFresh {
            seq: 3,
            seq_ms_ind: 9,
            ind: 2,
        },
    }
    .diagnosis();
    assert_eq!(sync.outcome, Outcome::Info);
    assert!(
        sync.reason.starts_with("SQN out of range"),
        "{}",
        sync.reason
    );
    assert!(sync.reason.ends_with(": resync"), "{}", sync.reason);
    assert!(
        sync.reason.contains("replayed or reused AUTN"),
        "{}",
        sync.reason
    );
    let ev = Error::AutsMacFailure.diagnosis().into_event(
        SystemTime::UNIX_EPOCH,
        Function::Hss,
        UeRef::default(),
    );
    assert_eq!(
        (ev.step, ev.outcome, ev.reason.as_deref()),
        (
            "aka-resync",
            Outcome::Failed,
            Some("AUTS rejected: MAC-S mismatch")
        )
    );
    let amf = Error::AmfInvalid {
        amf: Amf([0x80, 0]),
        expected: 0,
    }
    .diagnosis();
    assert!(
        amf.reason.contains("separation bit is 1, expected 0"),
        "{}",
        amf.reason
    );
}
