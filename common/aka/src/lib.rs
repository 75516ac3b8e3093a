//! 3GPP AKA for both ends of IMS: MILENAGE, authentication vectors, SQN management and
//! resynchronisation, the IMS digest algorithms (AKAv1-MD5, AKAv2-MD5, MD5) and a USIM model.
//!
//! Pure code: no I/O, no clock, no randomness of its own (RAND comes from a [`RandSource`] the
//! caller passes). Keys, RES, AK, HA1 and passwords are secret types: `Debug` prints `Type(..)`
//! and they are zeroized on drop.
//!
//! # Who calls what
//!
//! **HSS (Cx MAR, TS 29.228 §6.3)**: per subscriber build a [`Milenage`] from K and OPc (or OP)
//! once, then
//! - [`Auc::generate_vector`] / [`Auc::generate_vectors`] with the stored SQN_HE; store the
//!   returned SQN as the new SQN_HE. The vector gives SIP-Authenticate
//!   ([`AuthVector::sip_authenticate`] = RAND ‖ AUTN), SIP-Authorization (XRES), CK and IK;
//! - on a MAR carrying SIP-Authorization = RAND ‖ AUTS ([`parse_resync_authorization`]),
//!   [`Auc::resync`]: it verifies MAC-S,
//!   recovers SQN_MS and returns the SQN_HE to store; then generate the new vectors from it.
//!
//! **S-CSCF (TS 24.229 §5.4.1.2)**: on the MAA, [`Ha1::for_vector`] with the algorithm,
//! username and realm; send `nonce` = [`AuthVector::nonce`] (base64(RAND ‖ AUTN), RFC 3310
//! §3.2) in the 401. On the next REGISTER, [`digest::verify`] the `response` with a
//! [`DigestRequest`] (constant-time comparison). For MD5 users, load [`Ha1`] from the store.
//! An `auts` parameter ([`Auts::from_base64`]) goes back to the HSS with the RAND of that
//! challenge as SIP-Authorization ([`resync_authorization`]).
//!
//! **Soft UE**: [`Usim::authenticate`] (or [`Usim::authenticate_nonce`]) returns an
//! [`AkaResult`] (RES, CK, IK), or [`Error::SyncFailure`] with AUTS, [`Error::MacFailure`],
//! [`Error::AmfInvalid`]. Then [`Ha1::aka`] and [`digest::response`]; after a sync failure send
//! `auts` with a response computed on [`Ha1::empty_password`] (RFC 3310 §3.4).
//!
//! Every [`Error`] maps to a per-UE event with [`Error::diagnosis`].
//!
//! # MILENAGE
//!
//! Implemented here on `aes` 0.9 ([`milenage`] module docs say why) and checked against all
//! TS 35.207 and TS 35.208 test sets (`testdata/`) and against the `milenage` crate.
//!
//! # SQN
//!
//! SQN = SEQ ‖ IND (TS 33.102 Annex C) with [`SqnConfig`]: IND length (default 5 bits), Δ
//! (default 2^28) and the optional age limit L. The network increments SEQ and cycles IND
//! ([`SqnConfig::next_sqn`]); the USIM keeps one SEQ_MS per IND ([`SqnArray`]).
//!
//! # Not here
//!
//! Header parsing and printing (the SIP crate does that; this crate takes unquoted values),
//! MD5-sess and SHA-256 digests, 5G RES*, TUAK.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod digest;
mod error;
pub mod fuzzing;
pub mod milenage;
pub mod sqn;
pub mod usim;
mod values;
pub mod vector;

pub use digest::{
    DigestAlgorithm, DigestRequest, DigestResponse, Ha1, IntegrityProtected, NonceCount, Password,
    Qop, QopParams, akav2_password,
};
pub use error::{Diagnosis, Error, SqnRejection};
pub use milenage::{F2345, Milenage};
pub use sqn::{SqnArray, SqnConfig};
pub use usim::{AkaResult, Usim};
pub use values::{Ak, Autn, Auts, MacA, MacS, Res};
pub use vector::{
    AmfPolicy, Auc, AuthVector, Nonce, RESYNC_AMF, RandSource, Resync, generate_auts,
    generate_vector, parse_resync_authorization, resync_authorization, verify_auts,
};

/// Constant-time equality of two byte strings (lengths are not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
