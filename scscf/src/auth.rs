//! Authentication of REGISTER requests (TS 24.229 §5.4.1.2, TS 33.203 §6.1): the schemes, the
//! challenge built from a Multimedia-Auth-Answer, and the check of the client's response.
//!
//! Pure code. The S-CSCF keeps one [`Challenge`] per nonce it sent (HA1 only: it never needs
//! RES itself); CK and IK go out once, in the 401 toward the P-CSCF, and are not kept.

use std::fmt;
use std::time::Instant;

use base64::Engine as _;
use imslab_aka::{DigestAlgorithm, DigestRequest, Ha1, NonceCount, Qop, QopParams, Res};
use imslab_diameter::cx::SipAuthDataItem;
use imslab_sip::header::Auth;
use imslab_types::{Impi, Rand};

/// The digest schemes the S-CSCF runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// IMS AKA with MD5 digest (RFC 3310, TS 33.203).
    AkaV1Md5,
    /// IMS AKA version 2 (RFC 4169).
    AkaV2Md5,
    /// SIP Digest with MD5 (RFC 2617, TS 24.229 §5.4.1.2.1B), HA1 from the HSS.
    Md5,
}

impl Scheme {
    /// The SIP-Authentication-Scheme value (TS 29.229 §6.3.2).
    pub fn cx_name(self) -> &'static str {
        match self {
            Self::AkaV1Md5 => SipAuthDataItem::SCHEME_AKAV1_MD5,
            Self::AkaV2Md5 => SipAuthDataItem::SCHEME_AKAV2_MD5,
            Self::Md5 => SipAuthDataItem::SCHEME_SIP_DIGEST,
        }
    }

    /// From a SIP-Authentication-Scheme value, case-insensitively.
    pub fn from_cx(name: &str) -> Option<Self> {
        [Self::AkaV1Md5, Self::AkaV2Md5, Self::Md5]
            .into_iter()
            .find(|s| s.cx_name().eq_ignore_ascii_case(name.trim()))
    }

    /// From a digest `algorithm` token (`AKAv1-MD5`, `AKAv2-MD5`, `MD5`).
    pub fn from_algorithm(token: &str) -> Option<Self> {
        match token.parse::<DigestAlgorithm>().ok()? {
            DigestAlgorithm::AkaV1Md5 => Some(Self::AkaV1Md5),
            DigestAlgorithm::AkaV2Md5 => Some(Self::AkaV2Md5),
            DigestAlgorithm::Md5 => Some(Self::Md5),
        }
    }

    /// The digest algorithm.
    pub fn algorithm(self) -> DigestAlgorithm {
        match self {
            Self::AkaV1Md5 => DigestAlgorithm::AkaV1Md5,
            Self::AkaV2Md5 => DigestAlgorithm::AkaV2Md5,
            Self::Md5 => DigestAlgorithm::Md5,
        }
    }

    /// Whether the scheme is IMS AKA.
    pub fn is_aka(self) -> bool {
        self != Self::Md5
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.algorithm().as_str())
    }
}

/// A challenge the S-CSCF sent and will check the response to.
#[derive(Clone)]
pub struct Challenge {
    /// The scheme.
    pub scheme: Scheme,
    /// The nonce sent (for AKA, base64(RAND ‖ AUTN), RFC 3310 §3.2).
    pub nonce: String,
    /// The realm sent.
    pub realm: String,
    /// RAND, for a resynchronisation MAR (AKA only).
    pub rand: Option<Rand>,
    /// When it was sent.
    pub issued: Instant,
    ha1: Ha1,
    last_nc: u32,
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("scheme", &self.scheme)
            .field("nonce", &self.nonce)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// Why an authentication vector from the HSS cannot become a challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// The item names a scheme this S-CSCF does not run.
    #[error("the HSS answered scheme {0:?}, which this S-CSCF does not run")]
    Scheme(String),
    /// A field the scheme needs is missing or malformed.
    #[error("the HSS's {scheme} vector is unusable: {what}")]
    Vector {
        /// The scheme.
        scheme: Scheme,
        /// What is wrong.
        what: &'static str,
    },
}

/// A challenge ready to send: the state to keep and the WWW-Authenticate value.
pub struct Issued {
    /// Kept until the answer comes (or it is replaced).
    pub challenge: Challenge,
    /// The WWW-Authenticate header value of the 401. For AKA it carries `ck` and `ik` for the
    /// P-CSCF (TS 24.229 §5.4.1.2.1), so it is a secret: never log it.
    pub www_authenticate: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

/// Builds the challenge for one SIP-Auth-Data-Item of an MAA (TS 24.229 §5.4.1.2.1):
///
/// - AKA: nonce = base64(SIP-Authenticate) = base64(RAND ‖ AUTN); HA1 from XRES (and IK, CK
///   for AKAv2) with the IMPI as username and `home_realm` as realm; the 401 carries
///   `algorithm`, `qop="auth"`, and `ck`/`ik` in hex for the P-CSCF.
/// - SIP Digest: realm, algorithm and QoP from SIP-Digest-Authenticate, HA1 as given, and a
///   nonce made of `fresh` (16 random bytes from the caller).
pub fn challenge(
    item: &SipAuthDataItem,
    impi: &Impi,
    home_realm: &str,
    fresh: [u8; 16],
    now: Instant,
) -> Result<Issued, ChallengeError> {
    let name = item.authentication_scheme.as_deref().unwrap_or_default();
    let scheme = Scheme::from_cx(name).ok_or_else(|| ChallengeError::Scheme(name.to_owned()))?;
    let bad = |what| ChallengeError::Vector { scheme, what };
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut www = Auth::digest();
    if scheme.is_aka() {
        let authenticate = item
            .authenticate
            .as_ref()
            .filter(|a| a.len() >= 32)
            .ok_or_else(|| bad("SIP-Authenticate is not RAND ‖ AUTN"))?;
        let xres = item
            .authorization
            .as_ref()
            .and_then(|x| Res::from_slice(x).ok())
            .ok_or_else(|| bad("SIP-Authorization (XRES) is missing or not 4 to 16 bytes"))?;
        let ck = item
            .confidentiality_key
            .as_ref()
            .ok_or_else(|| bad("Confidentiality-Key is missing"))?;
        let ik = item
            .integrity_key
            .as_ref()
            .ok_or_else(|| bad("Integrity-Key is missing"))?;
        let mut rand = [0u8; 16];
        rand.copy_from_slice(
            authenticate
                .get(..16)
                .ok_or_else(|| bad("short SIP-Authenticate"))?,
        );
        let nonce = b64.encode(authenticate);
        let ha1 = Ha1::aka(scheme.algorithm(), impi.as_str(), home_realm, &xres, ik, ck)
            .map_err(|_| bad("no AKA password for this algorithm"))?;
        www.set_quoted("realm", home_realm.to_owned());
        www.set_quoted("nonce", nonce.clone());
        www.set_token("algorithm", scheme.algorithm().as_str());
        www.set_quoted("qop", "auth");
        www.set_quoted("ck", ck.expose_hex());
        www.set_quoted("ik", ik.expose_hex());
        return Ok(Issued {
            www_authenticate: www.to_string(),
            challenge: Challenge {
                scheme,
                nonce,
                realm: home_realm.to_owned(),
                rand: Some(Rand(rand)),
                issued: now,
                ha1,
                last_nc: 0,
            },
        });
    }
    let d = item
        .digest_authenticate
        .as_ref()
        .ok_or_else(|| bad("SIP-Digest-Authenticate is missing"))?;
    let ha1 = Ha1::from_hex(&d.digest_ha1).map_err(|_| bad("Digest-HA1 is not 32 hex digits"))?;
    if d.digest_algorithm
        .as_deref()
        .is_some_and(|a| !a.eq_ignore_ascii_case("MD5"))
    {
        return Err(bad("Digest-Algorithm other than MD5"));
    }
    let nonce = b64.encode(fresh);
    www.set_quoted("realm", d.digest_realm.clone());
    www.set_quoted("nonce", nonce.clone());
    www.set_token("algorithm", "MD5");
    let qop = d.digest_qop.trim();
    if !qop.is_empty() {
        www.set_quoted("qop", qop.to_owned());
    }
    Ok(Issued {
        www_authenticate: www.to_string(),
        challenge: Challenge {
            scheme,
            nonce,
            realm: d.digest_realm.clone(),
            rand: None,
            issued: now,
            ha1,
            last_nc: 0,
        },
    })
}

/// The outcome of checking a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The response is right.
    Ok,
    /// The response is wrong (wrong key, wrong password, or SIPp 3.6.1's NUL-byte RES bug).
    Wrong,
    /// A nonce count already used with this nonce (RFC 2617 §3.2.2: a replay).
    Replayed,
    /// The credentials are malformed; the text says how.
    Malformed(&'static str),
}

impl Challenge {
    /// Checks the `response` of credentials answering this challenge (RFC 2617 §3.2.2, RFC 3310
    /// §3.3) for a request with `method` and `body`. A right answer with `qop` moves the nonce
    /// count forward, so the same nonce may serve later requests with higher counts.
    pub fn verify(&mut self, creds: &Auth<'_>, method: &str, body: &[u8]) -> Verdict {
        let Some(response) = creds.response() else {
            return Verdict::Malformed("no response parameter");
        };
        let Some(uri) = creds.uri() else {
            return Verdict::Malformed("no uri parameter");
        };
        let qop = match creds.qop() {
            None => None,
            Some(q) => {
                let qop = if q.eq_ignore_ascii_case("auth") {
                    Qop::Auth
                } else if q.eq_ignore_ascii_case("auth-int") {
                    Qop::AuthInt
                } else {
                    return Verdict::Malformed("qop is neither auth nor auth-int");
                };
                let Ok(Some(nc)) = creds.nc() else {
                    return Verdict::Malformed("qop without a valid nc");
                };
                let Some(cnonce) = creds.cnonce() else {
                    return Verdict::Malformed("qop without cnonce");
                };
                Some((qop, nc, cnonce))
            }
        };
        if let Some((_, nc, _)) = qop
            && nc <= self.last_nc
        {
            return Verdict::Replayed;
        }
        let req = DigestRequest {
            nonce: &self.nonce,
            method,
            uri,
            qop: qop.map(|(qop, nc, cnonce)| QopParams {
                qop,
                nc: NonceCount::new(nc),
                cnonce,
            }),
            body,
        };
        match imslab_aka::digest::verify(&self.ha1, &req, response) {
            Ok(()) => {
                if let Some((_, nc, _)) = qop {
                    self.last_nc = nc;
                }
                Verdict::Ok
            }
            Err(imslab_aka::Error::DigestMismatch) => Verdict::Wrong,
            Err(_) => Verdict::Malformed("response is not 32 hex digits"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use imslab_aka::{Milenage, generate_vector};
    use imslab_diameter::cx::SipDigestAuthenticate;
    use imslab_types::{Amf, K, Opc, Sqn};

    fn impi() -> Impi {
        Impi::new("001010000000001@ims.example").expect("impi")
    }

    fn aka_item(scheme: Scheme) -> (SipAuthDataItem, imslab_aka::AuthVector) {
        let m = Milenage::new(&K::from_bytes([0x46; 16]), &Opc::from_bytes([0xcd; 16]));
        let v = generate_vector(
            &m,
            Rand([7; 16]),
            Sqn::new(32).expect("sqn"),
            Amf([0x80, 0]),
        );
        let item = SipAuthDataItem {
            authentication_scheme: Some(scheme.cx_name().to_owned()),
            authenticate: Some(Bytes::copy_from_slice(&v.sip_authenticate())),
            authorization: Some(Bytes::copy_from_slice(v.xres.expose())),
            confidentiality_key: Some(v.ck.clone()),
            integrity_key: Some(v.ik.clone()),
            ..SipAuthDataItem::default()
        };
        (item, v)
    }

    fn creds(text: &str) -> Auth<'_> {
        use imslab_sip::TypedHeader as _;
        Auth::parse_value(text, "Authorization").expect("parses")
    }

    #[test]
    fn aka_challenge_carries_nonce_algorithm_qop_and_keys() {
        let (item, v) = aka_item(Scheme::AkaV1Md5);
        let issued =
            challenge(&item, &impi(), "ims.example", [0; 16], Instant::now()).expect("challenge");
        let www = &issued.www_authenticate;
        assert!(www.starts_with("Digest realm=\"ims.example\""), "{www}");
        assert!(www.contains(&format!("nonce=\"{}\"", v.nonce())), "{www}");
        assert!(www.contains("algorithm=AKAv1-MD5"));
        assert!(www.contains("qop=\"auth\""));
        assert!(www.contains(&format!("ck=\"{}\"", v.ck.expose_hex())));
        assert!(www.contains(&format!("ik=\"{}\"", v.ik.expose_hex())));
        assert_eq!(issued.challenge.rand, Some(v.rand));
        assert!(!format!("{issued:?}").contains(&v.ck.expose_hex()));
    }

    fn ue_response(ha1: &Ha1, nonce: &str, nc: u32) -> String {
        let req = DigestRequest {
            nonce,
            method: "REGISTER",
            uri: "sip:ims.example",
            qop: Some(QopParams {
                qop: Qop::Auth,
                nc: NonceCount::new(nc),
                cnonce: "c0ffee",
            }),
            body: b"",
        };
        imslab_aka::digest::response(ha1, &req).to_hex()
    }

    fn answer(nonce: &str, response: &str, nc: u32) -> String {
        format!(
            "Digest username=\"001010000000001@ims.example\", realm=\"ims.example\", \
             nonce=\"{nonce}\", uri=\"sip:ims.example\", response=\"{response}\", \
             algorithm=AKAv1-MD5, qop=auth, nc={nc:08x}, cnonce=\"c0ffee\""
        )
    }

    #[test]
    fn right_aka_response_verifies_and_a_replayed_count_does_not() {
        for scheme in [Scheme::AkaV1Md5, Scheme::AkaV2Md5] {
            let (item, v) = aka_item(scheme);
            let mut ch = challenge(&item, &impi(), "ims.example", [0; 16], Instant::now())
                .expect("challenge")
                .challenge;
            let ha1 = Ha1::aka(
                scheme.algorithm(),
                impi().as_str(),
                "ims.example",
                &v.xres,
                &v.ik,
                &v.ck,
            )
            .expect("ha1");
            let text = answer(&v.nonce(), &ue_response(&ha1, &v.nonce(), 1), 1);
            assert_eq!(ch.verify(&creds(&text), "REGISTER", b""), Verdict::Ok);
            assert_eq!(ch.verify(&creds(&text), "REGISTER", b""), Verdict::Replayed);
            let next = answer(&v.nonce(), &ue_response(&ha1, &v.nonce(), 2), 2);
            assert_eq!(ch.verify(&creds(&next), "REGISTER", b""), Verdict::Ok);
        }
    }

    #[test]
    fn wrong_res_is_a_wrong_response() {
        let (item, v) = aka_item(Scheme::AkaV1Md5);
        let mut ch = challenge(&item, &impi(), "ims.example", [0; 16], Instant::now())
            .expect("challenge")
            .challenge;
        let wrong = Ha1::new(impi().as_str(), "ims.example", b"not-the-res");
        let text = answer(&v.nonce(), &ue_response(&wrong, &v.nonce(), 1), 1);
        assert_eq!(ch.verify(&creds(&text), "REGISTER", b""), Verdict::Wrong);
    }

    #[test]
    fn sip_digest_challenge_uses_the_hss_realm_qop_and_ha1() {
        let ha1 = Ha1::new(impi().as_str(), "digest.example", b"secret");
        let item = SipAuthDataItem {
            authentication_scheme: Some(SipAuthDataItem::SCHEME_SIP_DIGEST.to_owned()),
            digest_authenticate: Some(SipDigestAuthenticate {
                digest_realm: "digest.example".into(),
                digest_algorithm: Some("MD5".into()),
                digest_qop: "auth".into(),
                digest_ha1: ha1.expose_hex(),
                extra: Vec::new(),
            }),
            ..SipAuthDataItem::default()
        };
        let issued =
            challenge(&item, &impi(), "ims.example", [9; 16], Instant::now()).expect("challenge");
        assert!(issued.www_authenticate.contains("realm=\"digest.example\""));
        assert!(issued.www_authenticate.contains("algorithm=MD5"));
        assert!(!issued.www_authenticate.contains("ck="));
        let mut ch = issued.challenge;
        let nonce = ch.nonce.clone();
        let text = answer(&nonce, &ue_response(&ha1, &nonce, 1), 1)
            .replace("realm=\"ims.example\"", "realm=\"digest.example\"");
        assert_eq!(ch.verify(&creds(&text), "REGISTER", b""), Verdict::Ok);
    }

    #[test]
    fn vector_without_keys_is_refused() {
        let (mut item, _) = aka_item(Scheme::AkaV1Md5);
        item.integrity_key = None;
        let Err(err) = challenge(&item, &impi(), "ims.example", [0; 16], Instant::now()) else {
            panic!("refused");
        };
        assert!(err.to_string().contains("Integrity-Key"), "{err}");
    }

    #[test]
    fn scheme_names_map_both_ways() {
        for s in [Scheme::AkaV1Md5, Scheme::AkaV2Md5, Scheme::Md5] {
            assert_eq!(Scheme::from_cx(s.cx_name()), Some(s));
            assert_eq!(Scheme::from_algorithm(s.algorithm().as_str()), Some(s));
        }
        assert_eq!(Scheme::from_cx("NASS-Bundled"), None);
    }
}
