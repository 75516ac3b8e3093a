//! Digest: the RFC 2617 / RFC 7616 MD5 examples, and AKAv1-MD5 / AKAv2-MD5 / MD5 with qop auth
//! and auth-int cross-checked against an independent Python implementation (hashlib, hmac).

use std::io::Write as _;
use std::process::{Command, Stdio};

use imslab_aka::{
    DigestAlgorithm, DigestRequest, Error, Ha1, IntegrityProtected, NonceCount, Password, Qop,
    QopParams, Res, akav2_password, digest,
};
use imslab_types::{Ck, Ik};
use rand::Rng;
use serde_json::{Value, json};

use crate::rng;

const EXAMPLES: &str = include_str!("../../testdata/digest_examples.json");
const ORACLE: &str = include_str!("digest_oracle.py");

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("missing {k} in {v}"))
}

#[test]
fn md5_digest_matches_the_rfc2617_and_rfc7616_examples() {
    let doc: Value = serde_json::from_str(EXAMPLES).unwrap();
    let examples = doc["examples"].as_array().unwrap();
    assert_eq!(examples.len(), 2);
    for e in examples {
        let ha1 = Ha1::new(s(e, "username"), s(e, "realm"), s(e, "password").as_bytes());
        let req = DigestRequest {
            nonce: s(e, "nonce"),
            method: s(e, "method"),
            uri: s(e, "uri"),
            qop: Some(QopParams {
                qop: s(e, "qop").parse().unwrap(),
                nc: s(e, "nc").parse().unwrap(),
                cnonce: s(e, "cnonce"),
            }),
            body: b"",
        };
        assert_eq!(
            digest::response(&ha1, &req).to_hex(),
            s(e, "response"),
            "{}",
            s(e, "source")
        );
        assert_eq!(digest::verify(&ha1, &req, s(e, "response")), Ok(()));
        assert_eq!(
            digest::verify(&ha1, &req, &s(e, "response").to_uppercase()),
            Ok(()),
            "hex is case-insensitive"
        );
        // HA1 storage: the stored hex form verifies without the password.
        let stored = Ha1::from_hex(&ha1.expose_hex()).unwrap();
        assert_eq!(digest::verify(&stored, &req, s(e, "response")), Ok(()));
        let wrong = Ha1::new(s(e, "username"), s(e, "realm"), b"Circle of life!");
        assert_eq!(
            digest::verify(&wrong, &req, s(e, "response")),
            Err(Error::DigestMismatch)
        );
    }
}

struct Case {
    alg: DigestAlgorithm,
    username: String,
    res: Vec<u8>,
    ik: [u8; 16],
    ck: [u8; 16],
    password: String,
    nonce: String,
    uri: String,
    qop: Option<Qop>,
    nc: u32,
    cnonce: String,
    body: Vec<u8>,
}

fn run_oracle(cases: &[Value]) -> Vec<Value> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(ORACLE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("this test needs python3 (package python3) as the digest oracle: {e}")
        });
    let input = serde_json::to_vec(cases).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 digest oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn aka_and_md5_digests_agree_with_an_independent_python_implementation() {
    let mut rng = rng(3310);
    let algs = [
        DigestAlgorithm::AkaV1Md5,
        DigestAlgorithm::AkaV2Md5,
        DigestAlgorithm::Md5,
    ];
    let qops = [Some(Qop::Auth), Some(Qop::AuthInt), None];
    let mut cases = Vec::new();
    for i in 0..300usize {
        let res_len = [8, 4, 16, 12][i % 4];
        let mut res: Vec<u8> = (0..res_len).map(|_| rng.random()).collect();
        if i % 5 == 0 {
            res[1] = 0; // a NUL inside RES must be hashed, not end the password (SIPp 3.6.1 bug)
        }
        cases.push(Case {
            alg: algs[i % 3],
            username: format!("00101{i:010}@ims.mnc001.mcc001.3gppnetwork.org"),
            res,
            ik: rng.random(),
            ck: rng.random(),
            password: format!("pw-{}", rng.random::<u32>()),
            nonce: format!("{:032x}", rng.random::<u128>()),
            uri: "sip:ims.mnc001.mcc001.3gppnetwork.org".to_owned(),
            qop: qops[(i / 3) % 3],
            nc: rng.random_range(1..300),
            cnonce: format!("{:x}", rng.random::<u64>()),
            body: (0..(i % 40)).map(|_| rng.random()).collect(),
        });
    }
    let json_cases: Vec<Value> = cases
        .iter()
        .map(|c| {
            let mut v = json!({
                "algorithm": c.alg.as_str(), "username": c.username, "realm": "ims.mnc001.mcc001.3gppnetwork.org",
                "password": c.password, "res": hex::encode(&c.res), "ik": hex::encode(c.ik), "ck": hex::encode(c.ck),
                "method": "REGISTER", "uri": c.uri, "nonce": c.nonce, "body": hex::encode(&c.body),
            });
            if let Some(q) = c.qop {
                v["qop"] = q.as_str().into();
                v["nc"] = NonceCount::new(c.nc).as_str().into();
                v["cnonce"] = c.cnonce.clone().into();
            }
            v
        })
        .collect();
    let expected = run_oracle(&json_cases);
    assert_eq!(expected.len(), cases.len());
    for (c, want) in cases.iter().zip(&expected) {
        let res = Res::from_slice(&c.res).unwrap();
        let (ik, ck) = (Ik::from_bytes(c.ik), Ck::from_bytes(c.ck));
        let ha1 = match c.alg {
            DigestAlgorithm::Md5 => Ha1::new(
                &c.username,
                "ims.mnc001.mcc001.3gppnetwork.org",
                c.password.as_bytes(),
            ),
            aka => Ha1::aka(
                aka,
                &c.username,
                "ims.mnc001.mcc001.3gppnetwork.org",
                &res,
                &ik,
                &ck,
            )
            .unwrap(),
        };
        let nc = NonceCount::new(c.nc);
        let req = DigestRequest {
            nonce: &c.nonce,
            method: "REGISTER",
            uri: &c.uri,
            qop: c.qop.map(|qop| QopParams {
                qop,
                nc,
                cnonce: &c.cnonce,
            }),
            body: &c.body,
        };
        let what = format!("{} qop={:?} res_len={}", c.alg, c.qop, c.res.len());
        assert_eq!(ha1.expose_hex(), s(want, "ha1"), "HA1 {what}");
        assert_eq!(
            digest::response(&ha1, &req).to_hex(),
            s(want, "response"),
            "response {what}"
        );
        assert_eq!(
            digest::rspauth(&ha1, &req).to_hex(),
            s(want, "rspauth"),
            "rspauth {what}"
        );
        assert_eq!(
            digest::verify(&ha1, &req, s(want, "response")),
            Ok(()),
            "verify {what}"
        );
    }
}

#[test]
fn akav2_password_is_base64_of_hmac_md5_over_res_ik_ck() {
    let res = Res::from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    let pw = akav2_password(
        &res,
        &Ik::from_bytes([0x11; 16]),
        &Ck::from_bytes([0x22; 16]),
    );
    assert_eq!(pw.expose().len(), 24, "base64 of a 16-byte HMAC-MD5");
    assert!(pw.expose().ends_with(b"=="));
    assert_eq!(format!("{pw:?}"), "Password(..)");
    let other = akav2_password(
        &res,
        &Ik::from_bytes([0x11; 16]),
        &Ck::from_bytes([0x23; 16]),
    );
    assert_ne!(pw, other, "CK is part of the key");
    assert_ne!(Password::new(res.expose()), pw);
}

#[test]
fn auth_int_hashes_the_body_and_auth_does_not() {
    let ha1 = Ha1::new("alice@example.org", "example.org", b"secret");
    let q = |qop| {
        Some(QopParams {
            qop,
            nc: NonceCount::new(1),
            cnonce: "abc",
        })
    };
    let with = |qop, body| DigestRequest {
        nonce: "n",
        method: "REGISTER",
        uri: "sip:example.org",
        qop: q(qop),
        body,
    };
    let a = digest::response(&ha1, &with(Qop::Auth, b"v=0"));
    assert_eq!(a, digest::response(&ha1, &with(Qop::Auth, b"other")));
    let i = digest::response(&ha1, &with(Qop::AuthInt, b"v=0"));
    assert_ne!(i, digest::response(&ha1, &with(Qop::AuthInt, b"v=1")));
    assert_ne!(a, i);
    assert_eq!(
        digest::verify(&ha1, &with(Qop::AuthInt, b"v=1"), &i.to_hex()),
        Err(Error::DigestMismatch)
    );
}

#[test]
fn sync_failure_response_uses_the_empty_password() {
    let req = DigestRequest {
        nonce: "n",
        method: "REGISTER",
        uri: "sip:x",
        qop: None,
        body: b"",
    };
    let empty = Ha1::empty_password("u@x", "x");
    assert_eq!(empty, Ha1::new("u@x", "x", b""));
    assert_eq!(
        digest::verify(&empty, &req, &digest::response(&empty, &req).to_hex()),
        Ok(())
    );
}

#[test]
fn malformed_responses_and_tokens_are_rejected_without_panicking() {
    let ha1 = Ha1::new("u", "r", b"p");
    let req = DigestRequest {
        nonce: "n",
        method: "REGISTER",
        uri: "sip:r",
        qop: None,
        body: b"",
    };
    assert_eq!(
        digest::verify(&ha1, &req, ""),
        Err(Error::MalformedResponse { len: 0 })
    );
    assert_eq!(
        digest::verify(&ha1, &req, &"z".repeat(32)),
        Err(Error::MalformedResponse { len: 32 })
    );
    assert_eq!(
        digest::verify(&ha1, &req, "é".repeat(16).as_str()),
        Err(Error::MalformedResponse { len: 32 })
    );
    assert!("0000001".parse::<NonceCount>().is_err());
    assert!("+0000001".parse::<NonceCount>().is_err());
    assert_eq!(
        "0000000A"
            .parse::<NonceCount>()
            .map(|n| (n.value(), n.to_string())),
        Ok((10, "0000000A".into()))
    );
    assert_eq!("akav1-md5".parse(), Ok(DigestAlgorithm::AkaV1Md5));
    assert!("SHA-256".parse::<DigestAlgorithm>().is_err());
    assert!("auth-conf".parse::<Qop>().is_err());
    assert!(
        Ha1::aka(
            DigestAlgorithm::Md5,
            "u",
            "r",
            &Res::from_slice(&[0; 8]).unwrap(),
            &Ik::from_bytes([0; 16]),
            &Ck::from_bytes([0; 16])
        )
        .is_err()
    );
    assert!(Res::from_slice(&[0; 3]).is_err());
    assert!(Res::from_slice(&[0; 17]).is_err());
}

#[test]
fn integrity_protected_values_of_ts24229_parse_and_unknown_ones_are_kept() {
    for (text, v, protected) in [
        ("yes", IntegrityProtected::Yes, true),
        ("no", IntegrityProtected::No, false),
        ("tls-pending", IntegrityProtected::TlsPending, false),
        ("tls-yes", IntegrityProtected::TlsYes, true),
        (
            "ip-assoc-pending",
            IntegrityProtected::IpAssocPending,
            false,
        ),
        ("ip-assoc-yes", IntegrityProtected::IpAssocYes, true),
        ("auth-done", IntegrityProtected::AuthDone, true),
    ] {
        assert_eq!(IntegrityProtected::parse(text), v);
        assert_eq!(v.as_str(), text);
        assert_eq!(v.is_protected(), protected, "{text}");
    }
    let odd = IntegrityProtected::parse("Yes");
    assert_eq!(odd, IntegrityProtected::Other("Yes".into()));
    assert_eq!(odd.to_string(), "Yes");
}

#[test]
fn secrets_of_the_digest_never_show_in_debug() {
    let ha1 = Ha1::new("u", "r", b"p");
    let res = Res::from_slice(&[0xab; 8]).unwrap();
    let shown = format!("{ha1:?} {res:?}");
    assert_eq!(shown, "Ha1(..) Res(..)");
}
