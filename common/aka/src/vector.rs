//! The network side (HE/AuC): authentication vectors, the SIP-Authenticate/nonce encodings and
//! resynchronisation (TS 33.102 §6.3.2 and §6.3.5, TS 29.229 §6.3, RFC 3310 §3.2).

use base64::Engine as _;
use imslab_types::{Amf, Ck, Ik, Rand, Sqn};

use crate::milenage::Milenage;
use crate::sqn::SqnConfig;
use crate::values::{Autn, Auts, BASE64, Res};
use crate::{Error, ct_eq};

/// Where RAND comes from. The HSS passes its CSPRNG; tests pass a seeded one.
/// Any `FnMut() -> [u8; 16]` is a source.
pub trait RandSource {
    /// A fresh, unpredictable 128-bit challenge.
    fn next_rand(&mut self) -> Rand;
}

impl<F: FnMut() -> [u8; 16]> RandSource for F {
    fn next_rand(&mut self) -> Rand {
        Rand(self())
    }
}

/// One authentication vector (quintet) for IMS AKA (TS 33.203 §6.1, TS 33.102 §6.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthVector {
    /// The challenge.
    pub rand: Rand,
    /// AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A.
    pub autn: Autn,
    /// The expected response.
    pub xres: Res,
    /// The cipher key (IPsec encryption key source, TS 33.203 Annex I).
    pub ck: Ck,
    /// The integrity key (IPsec integrity key source, TS 33.203 Annex I).
    pub ik: Ik,
}

/// RFC 3310 §3.2 caps nothing, but a nonce longer than this is not ours.
pub const MAX_NONCE_LEN: usize = 512;

impl AuthVector {
    /// The Cx SIP-Authenticate AVP value: RAND ‖ AUTN (TS 29.229 §6.3, AVP code 609; TS 33.203 §6.1).
    pub fn sip_authenticate(&self) -> [u8; 32] {
        sip_authenticate(&self.rand, &self.autn)
    }

    /// The Cx SIP-Authorization AVP value: XRES (TS 29.229 §6.3, AVP code 610).
    pub fn sip_authorization(&self) -> &Res {
        &self.xres
    }

    /// The digest `nonce`: base64(RAND ‖ AUTN) (RFC 3310 §3.2).
    pub fn nonce(&self) -> String {
        BASE64.encode(self.sip_authenticate())
    }

    /// The digest `nonce` with server-specific data appended: base64(RAND ‖ AUTN ‖ data)
    /// (RFC 3310 §3.2). `data` is cut so that the nonce stays within [`MAX_NONCE_LEN`].
    pub fn nonce_with_server_data(&self, data: &[u8]) -> String {
        encode_nonce(&self.rand, &self.autn, data)
    }
}

/// RAND ‖ AUTN.
pub fn sip_authenticate(rand: &Rand, autn: &Autn) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&rand.0);
    b[16..].copy_from_slice(&autn.0);
    b
}

/// base64(RAND ‖ AUTN ‖ server data), the data cut to keep the nonce within [`MAX_NONCE_LEN`].
pub fn encode_nonce(rand: &Rand, autn: &Autn, server_data: &[u8]) -> String {
    let max_data = MAX_NONCE_LEN / 4 * 3 - 32;
    let data = &server_data[..server_data.len().min(max_data)];
    let mut b = Vec::with_capacity(32 + data.len());
    b.extend_from_slice(&sip_authenticate(rand, autn));
    b.extend_from_slice(data);
    BASE64.encode(b)
}

/// A decoded AKA nonce (RFC 3310 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce {
    /// RAND.
    pub rand: Rand,
    /// AUTN.
    pub autn: Autn,
    /// Server-specific data after AUTN, often empty.
    pub server_data: Vec<u8>,
}

impl Nonce {
    /// Decodes `nonce` (the unquoted parameter value). Never panics; rejects more than
    /// [`MAX_NONCE_LEN`] characters.
    pub fn parse(nonce: &str) -> Result<Self, Error> {
        if nonce.len() > MAX_NONCE_LEN {
            return Err(Error::MalformedNonce {
                what: "longer than 512 characters",
            });
        }
        let b = BASE64
            .decode(nonce)
            .map_err(|_| Error::MalformedNonce { what: "not base64" })?;
        let (ra, rest) = b.split_first_chunk::<16>().ok_or(Error::MalformedNonce {
            what: "shorter than RAND ‖ AUTN",
        })?;
        let (au, data) = rest
            .split_first_chunk::<16>()
            .ok_or(Error::MalformedNonce {
                what: "shorter than RAND ‖ AUTN",
            })?;
        Ok(Self {
            rand: Rand(*ra),
            autn: Autn(*au),
            server_data: data.to_vec(),
        })
    }

    /// Encodes back to base64.
    pub fn encode(&self) -> String {
        let mut b = Vec::with_capacity(32 + self.server_data.len());
        b.extend_from_slice(&sip_authenticate(&self.rand, &self.autn));
        b.extend_from_slice(&self.server_data);
        BASE64.encode(b)
    }
}

/// Which AMF separation bit a vector or challenge must carry (TS 33.401 §6.1.1, TS 33.102
/// Annex H): IMS and UTRAN vectors keep it 0, E-UTRAN vectors set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AmfPolicy {
    /// The separation bit must be 0 (IMS AKA). The default.
    #[default]
    Ims,
    /// The separation bit must be 1 (EPS AKA).
    Eutran,
    /// No check.
    Any,
}

impl AmfPolicy {
    /// Checks an AMF against the policy.
    pub fn check(self, amf: Amf) -> Result<(), Error> {
        let expected = match self {
            Self::Ims => false,
            Self::Eutran => true,
            Self::Any => return Ok(()),
        };
        if amf.separation_bit() == expected {
            Ok(())
        } else {
            Err(Error::AmfInvalid {
                amf,
                expected: u8::from(expected),
            })
        }
    }
}

/// The outcome of a resynchronisation (TS 33.102 §6.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resync {
    /// SQN_MS recovered from AUTS: the highest SQN the USIM accepted.
    pub sqn_ms: Sqn,
    /// The SQN_HE to store (the "last used" SQN); the next vector uses
    /// `config.next_sqn(sqn_he)`.
    pub sqn_he: Sqn,
    /// True when SQN_HE was reset to SQN_MS; false when SQN_HE was already in range.
    pub reset: bool,
}

/// The HE/AuC logic the HSS calls: vector generation with SQN management, and resync.
/// Stateless: the HSS stores SQN_HE per subscriber and passes it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Auc {
    /// SQN layout and the UE's Δ, assumed for the range check.
    pub sqn: SqnConfig,
    /// Which AMF values the AuC may issue.
    pub amf_policy: AmfPolicy,
}

impl Auc {
    /// An AuC with this SQN layout and AMF policy.
    pub fn new(sqn: SqnConfig, amf_policy: AmfPolicy) -> Self {
        Self { sqn, amf_policy }
    }

    /// One vector with the next SQN after `sqn_he`; returns it with the SQN used, which the
    /// HSS stores as the new SQN_HE.
    pub fn generate_vector(
        &self,
        m: &Milenage,
        rand: &mut impl RandSource,
        sqn_he: Sqn,
        amf: Amf,
    ) -> Result<(AuthVector, Sqn), Error> {
        self.amf_policy.check(amf)?;
        let sqn = self.sqn.next_sqn(sqn_he)?;
        Ok((generate_vector(m, rand.next_rand(), sqn, amf), sqn))
    }

    /// `n` vectors (Cx SIP-Number-Auth-Items), with consecutive SQNs and cycling IND.
    /// Returns them with the last SQN used.
    pub fn generate_vectors(
        &self,
        m: &Milenage,
        rand: &mut impl RandSource,
        sqn_he: Sqn,
        amf: Amf,
        n: usize,
    ) -> Result<(Vec<AuthVector>, Sqn), Error> {
        self.amf_policy.check(amf)?;
        let mut sqn = sqn_he;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            sqn = self.sqn.next_sqn(sqn)?;
            out.push(generate_vector(m, rand.next_rand(), sqn, amf));
        }
        Ok((out, sqn))
    }

    /// Handles AUTS received for `rand` (TS 33.102 §6.3.5): recovers SQN_MS = (SQN_MS ⊕ AK*) ⊕
    /// f5*(RAND), verifies MAC-S = f1*(SQN_MS, RAND, AMF = 0000), then keeps SQN_HE if the
    /// next SQN would be accepted by the USIM, otherwise resets SQN_HE to SQN_MS.
    ///
    /// MAC-S is verified before the range check (the spec verifies only when out of range), so
    /// a forged or mismatched AUTS is always reported as [`Error::AutsMacFailure`].
    pub fn resync(
        &self,
        m: &Milenage,
        sqn_he: Sqn,
        rand: &Rand,
        auts: &Auts,
    ) -> Result<Resync, Error> {
        let sqn_ms = verify_auts(m, rand, auts)?;
        let in_range = self
            .sqn
            .next_sqn(sqn_he)
            .is_ok_and(|next| self.sqn.in_range(next, sqn_ms));
        Ok(if in_range {
            Resync {
                sqn_ms,
                sqn_he,
                reset: false,
            }
        } else {
            Resync {
                sqn_ms,
                sqn_he: sqn_ms,
                reset: true,
            }
        })
    }
}

/// The Cx SIP-Authorization AVP of a resynchronisation MAR: RAND ‖ AUTS (TS 29.228 §6.3,
/// TS 33.203 §6.3), with the RAND of the challenge that failed.
pub fn resync_authorization(rand: &Rand, auts: &Auts) -> [u8; 30] {
    let mut b = [0u8; 30];
    b[..16].copy_from_slice(&rand.0);
    b[16..].copy_from_slice(&auts.0);
    b
}

/// Splits a resynchronisation SIP-Authorization AVP into RAND and AUTS (exactly 30 bytes).
pub fn parse_resync_authorization(b: &[u8]) -> Result<(Rand, Auts), Error> {
    const WRONG: Error = Error::MalformedAuts {
        what: "RAND ‖ AUTS is not 30 bytes",
    };
    let (rand, auts) = b.split_first_chunk::<16>().ok_or(WRONG)?;
    let auts: [u8; 14] = auts.try_into().map_err(|_| WRONG)?;
    Ok((Rand(*rand), Auts(auts)))
}

/// The AMF used for MAC-S: all zeros (TS 33.102 §6.3.3).
pub const RESYNC_AMF: Amf = Amf([0, 0]);

/// A vector for a given RAND, SQN and AMF (TS 33.102 §6.3.2): AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A.
pub fn generate_vector(m: &Milenage, rand: Rand, sqn: Sqn, amf: Amf) -> AuthVector {
    let (mac_a, out) = m.vector_outputs(&rand, sqn, amf);
    let autn = Autn::new(out.ak.conceal(sqn), amf, mac_a);
    AuthVector {
        rand,
        autn,
        xres: out.res,
        ck: out.ck,
        ik: out.ik,
    }
}

/// Verifies AUTS for `rand` and returns SQN_MS (TS 33.102 §6.3.5 steps 1 and 4).
pub fn verify_auts(m: &Milenage, rand: &Rand, auts: &Auts) -> Result<Sqn, Error> {
    let sqn_ms = m.f5_star(rand).reveal(auts.sqn_ms_xor_ak_star());
    let xmac_s = m.f1_star(rand, sqn_ms, RESYNC_AMF);
    if ct_eq(&xmac_s.0, &auts.mac_s().0) {
        Ok(sqn_ms)
    } else {
        Err(Error::AutsMacFailure)
    }
}

/// AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S (TS 33.102 §6.3.3), as the USIM builds it.
pub fn generate_auts(m: &Milenage, rand: &Rand, sqn_ms: Sqn) -> Auts {
    let ak_star = m.f5_star(rand);
    let mac_s = m.f1_star(rand, sqn_ms, RESYNC_AMF);
    Auts::new(ak_star.conceal(sqn_ms), mac_s)
}
