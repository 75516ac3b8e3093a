//! MILENAGE against TS 35.207 sets 1-6 and TS 35.208 sets 1-20 (testdata/), and against the
//! independent `milenage` crate on random inputs.

use imslab_aka::{
    AmfPolicy, Auc, Milenage, RESYNC_AMF, SqnConfig, generate_auts, generate_vector, verify_auts,
};
use imslab_types::{Amf, K, Op, Opc, Rand, Sqn};
use rand::Rng;
use serde_json::Value;

use crate::{rng, unhex};

const TS35208: &str = include_str!("../../testdata/ts35208_conformance.json");
const TS35207: &str = include_str!("../../testdata/ts35207_milenage.json");

struct Set {
    name: String,
    k: K,
    op: Op,
    opc: [u8; 16],
    rand: Rand,
    sqn: Sqn,
    amf: Amf,
    f1: [u8; 8],
    f1star: [u8; 8],
    f2: [u8; 8],
    f3: [u8; 16],
    f4: [u8; 16],
    f5: [u8; 6],
    f5star: [u8; 6],
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("test set lacks {name}: {v}"))
}

fn parse(v: &Value, name: String) -> Set {
    Set {
        name,
        k: K::from_bytes(unhex(field(v, "K"))),
        op: Op::from_bytes(unhex(field(v, "OP"))),
        opc: unhex(field(v, "OPc")),
        rand: Rand(unhex(field(v, "RAND"))),
        sqn: Sqn::from_bytes(unhex(field(v, "SQN"))),
        amf: Amf(unhex(field(v, "AMF"))),
        f1: unhex(field(v, "f1")),
        f1star: unhex(field(v, "f1star")),
        f2: unhex(field(v, "f2")),
        f3: unhex(field(v, "f3")),
        f4: unhex(field(v, "f4")),
        f5: unhex(field(v, "f5")),
        f5star: unhex(field(v, "f5star")),
    }
}

fn ts35208_sets() -> Vec<Set> {
    let doc: Value = serde_json::from_str(TS35208).expect("ts35208_conformance.json is JSON");
    let sets = doc["sets"].as_array().expect("sets array");
    sets.iter()
        .map(|v| parse(v, format!("TS 35.208 set {}", v["set"])))
        .collect()
}

fn ts35207_sets() -> Vec<Set> {
    let doc: Value = serde_json::from_str(TS35207).expect("ts35207_milenage.json is JSON");
    let sets = doc["vectors"].as_array().expect("vectors array");
    sets.iter()
        .map(|v| parse(v, format!("{} ({})", v["id"], v["labels"][0])))
        .collect()
}

/// Checks every function of one set, keyed both from OP and from OPc.
fn check(s: &Set) {
    assert_eq!(
        Milenage::derive_opc(&s.k, &s.op).expose(),
        &s.opc,
        "{}: OPc",
        s.name
    );
    for m in [
        Milenage::with_op(&s.k, &s.op),
        Milenage::new(&s.k, &Opc::from_bytes(s.opc)),
    ] {
        assert_eq!(m.f1(&s.rand, s.sqn, s.amf).0, s.f1, "{}: f1", s.name);
        assert_eq!(
            m.f1_star(&s.rand, s.sqn, s.amf).0,
            s.f1star,
            "{}: f1*",
            s.name
        );
        assert_eq!(m.f2(&s.rand).expose(), s.f2, "{}: f2", s.name);
        assert_eq!(m.f3(&s.rand).expose(), &s.f3, "{}: f3", s.name);
        assert_eq!(m.f4(&s.rand).expose(), &s.f4, "{}: f4", s.name);
        assert_eq!(m.f5(&s.rand).expose(), &s.f5, "{}: f5", s.name);
        assert_eq!(m.f5_star(&s.rand).expose(), &s.f5star, "{}: f5*", s.name);
        let all = m.f2345(&s.rand);
        assert_eq!(all.res.expose(), s.f2, "{}: f2345 res", s.name);
        assert_eq!(all.ck.expose(), &s.f3, "{}: f2345 ck", s.name);
        assert_eq!(all.ik.expose(), &s.f4, "{}: f2345 ik", s.name);
        assert_eq!(all.ak.expose(), &s.f5, "{}: f2345 ak", s.name);
    }
}

#[test]
fn milenage_matches_all_twenty_ts35208_conformance_sets() {
    let sets = ts35208_sets();
    assert_eq!(sets.len(), 20, "TS 35.208 §4.3 has 20 test sets");
    sets.iter().for_each(check);
}

#[test]
fn milenage_matches_the_six_ts35207_implementers_sets() {
    let sets = ts35207_sets();
    assert_eq!(sets.len(), 6);
    sets.iter().for_each(check);
}

#[test]
fn vector_fields_follow_ts33102_from_the_test_sets() {
    for s in ts35208_sets().iter().chain(&ts35207_sets()) {
        let m = Milenage::with_op(&s.k, &s.op);
        let v = generate_vector(&m, s.rand, s.sqn, s.amf);
        let sqn_xor_ak: [u8; 6] = std::array::from_fn(|i| s.sqn.to_bytes()[i] ^ s.f5[i]);
        let mut autn = Vec::from(sqn_xor_ak);
        autn.extend_from_slice(&s.amf.0);
        autn.extend_from_slice(&s.f1);
        assert_eq!(v.autn.0.as_slice(), autn, "{}: AUTN", s.name);
        assert_eq!(v.xres.expose(), s.f2, "{}: XRES", s.name);
        assert_eq!(v.ck.expose(), &s.f3, "{}: CK", s.name);
        assert_eq!(v.ik.expose(), &s.f4, "{}: IK", s.name);
        assert_eq!(
            &v.sip_authenticate()[..16],
            &s.rand.0,
            "{}: SIP-Authenticate RAND",
            s.name
        );
        assert_eq!(
            &v.sip_authenticate()[16..],
            &v.autn.0,
            "{}: SIP-Authenticate AUTN",
            s.name
        );
    }
}

#[test]
fn auts_from_test_sets_carries_sqn_under_f5_star_and_verifies() {
    for s in ts35208_sets() {
        let m = Milenage::with_op(&s.k, &s.op);
        let auts = generate_auts(&m, &s.rand, s.sqn);
        let concealed: [u8; 6] = std::array::from_fn(|i| s.sqn.to_bytes()[i] ^ s.f5star[i]);
        assert_eq!(auts.sqn_ms_xor_ak_star(), concealed, "{}", s.name);
        assert_eq!(
            auts.mac_s(),
            m.f1_star(&s.rand, s.sqn, RESYNC_AMF),
            "{}: MAC-S uses AMF 0000",
            s.name
        );
        assert_eq!(verify_auts(&m, &s.rand, &auts), Ok(s.sqn), "{}", s.name);
        let r = Auc::new(SqnConfig::default(), AmfPolicy::Any).resync(
            &m,
            Sqn::default(),
            &s.rand,
            &auts,
        );
        assert_eq!(r.map(|r| r.sqn_ms), Ok(s.sqn), "{}", s.name);
    }
}

#[test]
fn milenage_agrees_with_the_milenage_crate_on_random_inputs() {
    let mut rng = rng(35206);
    for _ in 0..2000 {
        let (k, op, rand): ([u8; 16], [u8; 16], [u8; 16]) =
            (rng.random(), rng.random(), rng.random());
        let (sqn, amf): ([u8; 6], [u8; 2]) = (rng.random(), rng.random());
        let ours = Milenage::with_op(&K::from_bytes(k), &Op::from_bytes(op));
        let mut theirs = milenage::Milenage::new_with_op(k, op);
        let r = Rand(rand);
        assert_eq!(ours.opc().expose(), theirs.opc());
        assert_eq!(
            ours.f1(&r, Sqn::from_bytes(sqn), Amf(amf)).0,
            theirs.f1(&rand, &sqn, &amf)
        );
        assert_eq!(
            ours.f1_star(&r, Sqn::from_bytes(sqn), Amf(amf)).0,
            theirs.f1star(&rand, &sqn, &amf)
        );
        let (res, ck, ik, ak) = theirs.f2345(&rand);
        let all = ours.f2345(&r);
        assert_eq!(all.res.expose(), res);
        assert_eq!(all.ck.expose(), &ck);
        assert_eq!(all.ik.expose(), &ik);
        assert_eq!(all.ak.expose(), &ak);
        assert_eq!(ours.f5_star(&r).expose(), &theirs.f5star(&rand));
    }
}

#[test]
fn milenage_debug_output_shows_no_key_material() {
    let s = &ts35208_sets()[0];
    let m = Milenage::with_op(&s.k, &s.op);
    let shown = format!("{m:?} {:?} {:?}", m.f2345(&s.rand), m.opc());
    assert!(
        shown.contains("Milenage(..)") && shown.contains("Ck(..)") && shown.contains("Res(..)"),
        "{shown}"
    );
    for secret in [
        hex::encode(s.k.expose()),
        hex::encode(s.opc),
        hex::encode(s.f2),
        hex::encode(s.f3),
    ] {
        assert!(!shown.contains(&secret), "{shown} leaks {secret}");
    }
}
