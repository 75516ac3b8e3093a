//! The crate's error enum and its mapping to per-UE diagnosis events.

use std::time::SystemTime;

use imslab_types::{Amf, Function, Outcome, UeEvent, UeRef};

use crate::values::Auts;

/// Why the USIM refused the SQN carried in AUTN (TS 33.102 Annex C.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqnRejection {
    /// SEQ is not above the array entry for its IND: a replayed or reused AUTN (Annex C.2.2).
    NotFresh {
        /// The SEQ received.
        seq: u64,
        /// The array entry SEQ_MS(IND) it had to exceed.
        seq_ms_ind: u64,
        /// The IND of the received SQN.
        ind: u32,
    },
    /// SEQ jumped more than Δ above the highest accepted SEQ_MS (Annex C.2.1).
    TooFarAhead {
        /// The SEQ received.
        seq: u64,
        /// The highest accepted SEQ_MS.
        seq_ms: u64,
        /// The configured Δ.
        delta: u64,
    },
    /// SEQ lies L or more below the highest accepted SEQ_MS (Annex C.2.2, the optional limit L).
    TooOld {
        /// The SEQ received.
        seq: u64,
        /// The highest accepted SEQ_MS.
        seq_ms: u64,
        /// The configured L.
        limit: u64,
    },
}

impl std::fmt::Display for SqnRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFresh {
                seq,
                seq_ms_ind,
                ind,
            } => write!(
                f,
                "SEQ {seq} not above SEQ_MS({ind}) = {seq_ms_ind} (replayed or reused AUTN)"
            ),
            Self::TooFarAhead { seq, seq_ms, delta } => {
                write!(f, "SEQ {seq} more than delta {delta} above SEQ_MS {seq_ms}")
            }
            Self::TooOld { seq, seq_ms, limit } => {
                write!(f, "SEQ {seq} at least L = {limit} below SEQ_MS {seq_ms}")
            }
        }
    }
}

/// Every way an AKA or digest operation can fail. Protocol outcomes that a caller must act on
/// (a synchronisation failure carrying AUTS, a MAC failure) are variants too, so one `match`
/// covers them; [`Error::diagnosis`] turns any of them into a per-UE event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// XMAC computed by the USIM differs from MAC-A in AUTN (TS 33.102 §6.3.3): wrong K/OPc
    /// on one side, or a forged challenge.
    #[error("AUTN rejected: MAC mismatch")]
    MacFailure,
    /// The SQN in AUTN is not acceptable (TS 33.102 §6.3.3, Annex C.2); the UE answers with AUTS.
    #[error("SQN out of range ({reason}): resync")]
    SyncFailure {
        /// AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, for the network to resynchronise.
        auts: Auts,
        /// What the freshness check found.
        reason: SqnRejection,
    },
    /// The AMF separation bit does not match the access (TS 33.401 §6.1.1: set for E-UTRAN,
    /// clear for IMS and UTRAN).
    #[error("AUTN rejected: AMF {amf:?} separation bit is {}, expected {expected}", u8::from(amf.separation_bit()))]
    AmfInvalid {
        /// The AMF received.
        amf: Amf,
        /// The separation bit value the policy requires (0 or 1).
        expected: u8,
    },
    /// MAC-S in AUTS does not verify (TS 33.102 §6.3.5): the UE used another K/OPc, or AUTS
    /// was answered to another RAND.
    #[error("AUTS rejected: MAC-S mismatch")]
    AutsMacFailure,
    /// SEQ reached its maximum for the configured IND length (TS 33.102 Annex C.1.2).
    #[error("SQN exhausted: SEQ cannot exceed {max}")]
    SqnExhausted {
        /// The largest SEQ for the IND length.
        max: u64,
    },
    /// An SQN configuration value is out of its allowed range.
    #[error("invalid SQN configuration: {what}")]
    InvalidSqnConfig {
        /// Which rule was broken.
        what: &'static str,
    },
    /// The digest response did not match (wrong RES, password or request line).
    #[error("digest response mismatch")]
    DigestMismatch,
    /// The `response` parameter is not 32 hex digits.
    #[error("digest response is not 32 hex digits (got {len} characters)")]
    MalformedResponse {
        /// Length of what was received.
        len: usize,
    },
    /// A nonce is not base64 of RAND ‖ AUTN [‖ server data] (RFC 3310 §3.2).
    #[error("AKA nonce malformed: {what}")]
    MalformedNonce {
        /// What was wrong.
        what: &'static str,
    },
    /// An `auts` parameter is not base64 of 14 bytes (RFC 3310 §3.4).
    #[error("auts parameter malformed: {what}")]
    MalformedAuts {
        /// What was wrong.
        what: &'static str,
    },
    /// RES must be 4 to 16 bytes (TS 33.102 §6.3.7: 32 to 128 bits).
    #[error("RES must be 4 to 16 bytes, got {len}")]
    InvalidResLength {
        /// Length given.
        len: usize,
    },
    /// A digest token (algorithm, qop, nc) is not one this crate knows.
    #[error("unsupported digest {what}: {value:?}")]
    UnsupportedDigest {
        /// Which parameter.
        what: &'static str,
        /// The value received (public protocol text, never a secret).
        value: String,
    },
    /// A hex value had the wrong form or length.
    #[error("{what} must be {expected} hex digits")]
    InvalidHex {
        /// Which value.
        what: &'static str,
        /// Expected number of hex digits.
        expected: usize,
    },
}

/// The parts of an [`UeEvent`] this crate can decide: the caller adds time, function and phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// Stable step name: `aka-autn`, `aka-resync`, `digest`, `sqn`.
    pub step: &'static str,
    /// Failed for rejections, Info for a synchronisation failure (the normal start of a resync).
    pub outcome: Outcome,
    /// Human-readable reason, free of secrets.
    pub reason: String,
}

impl Diagnosis {
    /// Completes the event.
    pub fn into_event(self, at: SystemTime, function: Function, ue: UeRef) -> UeEvent {
        UeEvent {
            at,
            function,
            ue,
            step: self.step,
            outcome: self.outcome,
            reason: Some(self.reason),
        }
    }
}

impl Error {
    /// The per-UE event content for this outcome.
    pub fn diagnosis(&self) -> Diagnosis {
        let (step, outcome) = match self {
            Self::MacFailure | Self::AmfInvalid { .. } => ("aka-autn", Outcome::Failed),
            Self::SyncFailure { .. } => ("aka-autn", Outcome::Info),
            Self::AutsMacFailure => ("aka-resync", Outcome::Failed),
            Self::SqnExhausted { .. } | Self::InvalidSqnConfig { .. } => ("sqn", Outcome::Failed),
            Self::MalformedAuts { .. } => ("aka-resync", Outcome::Failed),
            Self::DigestMismatch
            | Self::MalformedResponse { .. }
            | Self::MalformedNonce { .. }
            | Self::InvalidResLength { .. }
            | Self::UnsupportedDigest { .. }
            | Self::InvalidHex { .. } => ("digest", Outcome::Failed),
        };
        Diagnosis {
            step,
            outcome,
            reason: self.to_string(),
        }
    }
}
