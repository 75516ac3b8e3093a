//! The Cx procedures of the HSS (TS 29.228 §6, TS 29.229 §6), as pure functions.
//!
//! Each handler takes the typed request, what the store holds about the identities in it
//! ([`Lookup`]), the [`CxSettings`] and the time, and returns a [`CxOutcome`]: the typed answer,
//! the state changes to apply atomically before the answer is sent, and the per-UE events. The
//! handlers never touch the store, the clock or randomness; the server ([`crate::server`]) does,
//! around them. MAR is split in two ([`mar::check`] then [`mar::vectors`]) so the SQNs are taken
//! from the store's atomic counter between the steps.
//!
//! HSS-initiated procedures ([`rtr`], [`ppr`]) build the request and, from the answer, the state
//! changes.
//!
//! # Where the specifications leave a choice
//!
//! Checked against TS 29.228/29.229 and a deployed HSS (FHoSS, the Open IMS Core HSS):
//!
//! - UAR REGISTRATION_AND_CAPABILITIES for a registered identity: 2001 with Server-Capabilities,
//!   no Server-Name (the I-CSCF asks because the assigned S-CSCF failed, TS 24.229 §5.3.1.2;
//!   TS 29.228 §6.1.1.1 step 6).
//! - UAA never carries 2003 DIAMETER_UNREGISTERED_SERVICE: TS 29.228 §6.1.1.1 answers an
//!   unregistered identity with its S-CSCF and 2002; 2003 is an LIA result (§6.1.4.1).
//! - SAR de-registration or NO_ASSIGNMENT from an S-CSCF other than the assigned one: 5012
//!   DIAMETER_UNABLE_TO_COMPLY, nothing changed (TS 29.228 §6.1.2.1).
//! - SAR types 12 AAA_USER_DATA_REQUEST and 13 PGW_UPDATE are SWx values (TS 29.273): 5007
//!   DIAMETER_ERROR_IN_ASSIGNMENT_TYPE on Cx.
//! - SAR with neither User-Name nor Public-Identity: experimental 5010 DIAMETER_MISSING_USER_ID
//!   (TS 29.229 §6.2.2; FHoSS answers the same).
//! - MAR scheme `Unknown`: the scheme provisioned for the user (see [`mar::check`]), as FHoSS
//!   does with the IMPI's default scheme; 5006 only when none is provisioned. (It used to be
//!   5006 for every user without SIP Digest.)
//! - MAR resynchronisation whose AUTS fails MAC-S: 4001 DIAMETER_AUTHENTICATION_REJECTED
//!   (TS 33.102 §6.3.5 leaves the answer open; FHoSS answers 5012).
//! - Resynchronisation from an S-CSCF other than the stored one: the AUTS is ignored and fresh
//!   vectors are sent (FHoSS does the same; TS 29.228 §6.3.1 processes AUTS only for the stored
//!   S-CSCF).
//! - The AMF separation bit (TS 33.102 Annex F) is not checked: vectors carry the provisioned
//!   AMF.
//! - One private identity per subscriber (TS 29.228 Annex B allows several per IMS
//!   subscription).
//! - A failed RTR (refused, timed out, no connection) changes nothing and is reported to the
//!   caller; the HSS does not de-register on its own (TS 29.228 §6.1.3.1 describes only the
//!   successful RTA).

pub mod lir;
pub mod mar;
pub mod ppr;
pub mod rtr;
pub mod sar;
pub mod uar;

use std::time::SystemTime;

use imslab_diameter::ExperimentalResultCode;
use imslab_diameter::ResultCode;
use imslab_diameter::cx::CxResult;
use imslab_store::{HssChange, PublicIdentity, Subscription};
use imslab_types::{Function, Impi, Impu, Imsi, Outcome, UeEvent, UeRef};

pub use crate::settings::CxSettings;

/// What the store holds about the identities of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// The subscriber found by the request's private identity (by its first public identity when
    /// the request has no private identity).
    pub subscription: Option<Subscription>,
    /// For each public identity of the request that `subscription` does not own: the IMSI of the
    /// subscriber that does, or `None` when nobody does.
    pub foreign: Vec<(Impu, Option<Imsi>)>,
}

impl Lookup {
    /// A lookup that found `sub`, owning every identity asked about.
    pub fn found(sub: Subscription) -> Self {
        Self {
            subscription: Some(sub),
            foreign: Vec::new(),
        }
    }
}

/// What a Cx procedure decided.
#[derive(Debug, Clone, PartialEq)]
pub struct CxOutcome<A> {
    /// The answer to send.
    pub answer: A,
    /// The subscriber the changes apply to.
    pub subscriber_id: Option<i64>,
    /// State changes to apply atomically (store first, then the answer).
    pub changes: Vec<HssChange>,
    /// Per-UE diagnosis events.
    pub events: Vec<UeEvent>,
}

/// The part of `changes` that changes something in `subscriber` as it was read: identities
/// already in the target state and an S-CSCF assignment already stored are left out, so a
/// re-registration's SAR writes nothing. `subscriber` is the snapshot the decision was made
/// on; an identity it does not hold is kept.
pub fn effective_changes(
    changes: &[HssChange],
    subscriber: &imslab_store::Subscriber,
) -> Vec<HssChange> {
    changes
        .iter()
        .filter_map(|c| match c {
            HssChange::SetScscf(s) if &subscriber.scscf == s => None,
            HssChange::SetRegState { impus, state } => {
                let moved: Vec<Impu> = impus
                    .iter()
                    .filter(|i| {
                        subscriber
                            .public_identity(i)
                            .is_none_or(|p| p.reg_state != *state)
                    })
                    .cloned()
                    .collect();
                (!moved.is_empty()).then_some(HssChange::SetRegState {
                    impus: moved,
                    state: *state,
                })
            }
            other => Some(other.clone()),
        })
        .collect()
}

/// A refusal: the result to answer with and why, for the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) result: CxResult,
    pub(crate) reason: String,
}

impl Refusal {
    pub(crate) fn exp(code: ExperimentalResultCode, reason: impl Into<String>) -> Self {
        Self {
            result: CxResult::experimental(code),
            reason: reason.into(),
        }
    }

    pub(crate) fn base(code: ResultCode, reason: impl Into<String>) -> Self {
        Self {
            result: CxResult::Base(code),
            reason: reason.into(),
        }
    }
}

/// The name of a result for messages: `5001 (DIAMETER_ERROR_USER_UNKNOWN)`.
pub fn result_text(r: &CxResult) -> String {
    match r {
        CxResult::Base(c) => c.to_string(),
        CxResult::Experimental { code, .. } => code.to_string(),
    }
}

/// TS 29.228 §6.1.1.1 steps 1-2 (and the same checks of §6.1.2.1, §6.3.1): every identity must
/// exist (else DIAMETER_ERROR_USER_UNKNOWN) and belong to the same subscriber (else
/// DIAMETER_ERROR_IDENTITIES_DONT_MATCH).
pub(crate) fn resolve<'a>(
    lookup: &'a Lookup,
    impi: Option<&Impi>,
    impus: &[Impu],
) -> Result<&'a Subscription, Refusal> {
    let Some(sub) = &lookup.subscription else {
        let who = impi
            .map(ToString::to_string)
            .or_else(|| impus.first().map(ToString::to_string));
        return Err(Refusal::exp(
            ExperimentalResultCode::DIAMETER_ERROR_USER_UNKNOWN,
            format!("no subscriber with identity {}", who.unwrap_or_default()),
        ));
    };
    for impu in impus {
        if sub.subscriber.public_identity(impu).is_some() {
            continue;
        }
        let owner = lookup
            .foreign
            .iter()
            .find(|(i, _)| i == impu)
            .and_then(|(_, o)| o.as_ref());
        return Err(match owner {
            None => Refusal::exp(
                ExperimentalResultCode::DIAMETER_ERROR_USER_UNKNOWN,
                format!("public identity {impu} is not provisioned"),
            ),
            Some(other) => Refusal::exp(
                ExperimentalResultCode::DIAMETER_ERROR_IDENTITIES_DONT_MATCH,
                format!(
                    "public identity {impu} belongs to subscriber {other}, not to {}",
                    sub.subscriber.impi
                ),
            ),
        });
    }
    if let Some(impi) = impi
        && impi != &sub.subscriber.impi
    {
        return Err(Refusal::exp(
            ExperimentalResultCode::DIAMETER_ERROR_IDENTITIES_DONT_MATCH,
            format!("private identity {impi} does not own {}", impus_text(impus)),
        ));
    }
    Ok(sub)
}

pub(crate) fn impus_text(impus: &[Impu]) -> String {
    impus
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The per-UE event of one procedure.
pub(crate) fn event(
    now: SystemTime,
    sub: Option<&Subscription>,
    impi: Option<&Impi>,
    impu: Option<&Impu>,
    step: &'static str,
    outcome: Outcome,
    reason: Option<String>,
) -> UeEvent {
    UeEvent {
        at: now,
        function: Function::Hss,
        ue: UeRef {
            imsi: sub.map(|s| s.subscriber.imsi.clone()),
            impi: impi
                .cloned()
                .or_else(|| sub.map(|s| s.subscriber.impi.clone())),
            impu: impu.cloned(),
        },
        step,
        outcome,
        reason,
    }
}

/// The identities of the implicit registration set of `impu` (default first).
pub(crate) fn implicit_set<'a>(sub: &'a Subscription, impu: &Impu) -> Vec<&'a PublicIdentity> {
    sub.subscriber.implicit_set(impu)
}
