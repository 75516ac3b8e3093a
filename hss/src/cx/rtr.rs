//! HSS-initiated de-registration: Registration-Termination-Request (TS 29.228 §6.1.3, TS 29.229
//! §6.1.9/§6.1.10), for a whole subscriber or one public identity (with its implicit set).

use std::time::SystemTime;

use imslab_diameter::cx::{CxResult, DeregistrationReason, Rta, Rtr};
use imslab_diameter::enums::ReasonCode;
use imslab_store::{HssChange, PublicIdentity, RegState, Subscription};
use imslab_types::{DiameterIdentity, Impu, Outcome, Realm, UeEvent};

use super::{CxSettings, event, impus_text, result_text};
use crate::Error;

/// What to de-register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtrScope {
    /// Every public identity of the subscriber (no Public-Identity AVP: all identities of the
    /// private identity, TS 29.228 §6.1.3).
    Subscriber,
    /// One public identity and the rest of its implicit registration set.
    Impu(Impu),
}

/// An RTR ready to send, and what to do when the RTA arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct RtrPlan {
    /// The request (Session-Id as given; hop-by-hop and end-to-end ids set by the peer layer).
    pub request: Rtr,
    /// The subscriber.
    pub subscriber_id: i64,
    /// The IMSI, for messages.
    pub imsi: String,
    /// The identities de-registered.
    pub impus: Vec<Impu>,
    /// State changes to apply when the S-CSCF confirms.
    pub on_success: Vec<HssChange>,
}

/// What an RTA means for the HSS.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// State changes to apply (empty on failure).
    pub changes: Vec<HssChange>,
    /// The event for the timeline.
    pub events: Vec<UeEvent>,
    /// The failure to report to whoever asked, if any.
    pub failure: Option<String>,
}

/// Builds the RTR toward the S-CSCF serving `sub`. Fails when the subscriber (or the identity)
/// is not registered or the S-CSCF's Diameter host is unknown.
///
/// After a successful RTA the identities become not registered and the S-CSCF name is cleared
/// once no identity is left with it, for reasons PERMANENT_TERMINATION, SERVER_CHANGE and
/// REMOVE_S_CSCF; NEW_SERVER_ASSIGNED only informs the old S-CSCF (the HSS already stores the
/// new one) and changes nothing.
pub fn request(
    sub: &Subscription,
    scope: &RtrScope,
    reason: ReasonCode,
    reason_info: Option<String>,
    settings: &CxSettings,
    session_id: String,
) -> Result<RtrPlan, Error> {
    let s = &sub.subscriber;
    let fail = |why: String| Error::Initiate {
        command: "RTR",
        subscriber: s.imsi.to_string(),
        reason: why,
    };
    let scscf = s
        .scscf
        .as_ref()
        .ok_or_else(|| fail("no S-CSCF is assigned: not registered".into()))?;
    let host = scscf
        .origin_host
        .as_deref()
        .and_then(|h| DiameterIdentity::new(h).ok())
        .ok_or_else(|| fail(format!("the Diameter host of {} is unknown", scscf.name)))?;
    let realm = scscf
        .origin_realm
        .as_deref()
        .and_then(|r| Realm::new(r).ok())
        .unwrap_or_else(|| settings.origin.realm.clone());
    let targets: Vec<&PublicIdentity> = match scope {
        RtrScope::Subscriber => s
            .impus
            .iter()
            .filter(|p| p.reg_state != RegState::NotRegistered)
            .collect(),
        RtrScope::Impu(impu) => {
            let p = s
                .public_identity(impu)
                .ok_or_else(|| fail(format!("{impu} is not one of its identities")))?;
            if p.reg_state == RegState::NotRegistered {
                return Err(fail(format!("{impu} is not registered")));
            }
            s.implicit_set(impu)
        }
    };
    if targets.is_empty() {
        return Err(fail("no identity is registered".into()));
    }
    let impus: Vec<Impu> = targets.iter().map(|p| p.impu.clone()).collect();
    let request = Rtr {
        session_id,
        origin_host: settings.origin.host.clone(),
        origin_realm: settings.origin.realm.clone(),
        destination_host: host,
        destination_realm: realm,
        user_name: s.impi.clone(),
        associated_identities: None,
        supported_features: Vec::new(),
        public_identities: match scope {
            RtrScope::Subscriber => Vec::new(),
            RtrScope::Impu(_) => impus.clone(),
        },
        deregistration_reason: DeregistrationReason {
            reason_code: reason,
            reason_info,
            extra: Vec::new(),
        },
        rtr_flags: None,
        extra: Vec::new(),
        proxy_info: Vec::new(),
        route_record: Vec::new(),
    };
    let mut on_success = Vec::new();
    if reason != ReasonCode::NEW_SERVER_ASSIGNED {
        on_success.push(HssChange::SetRegState {
            impus: impus.clone(),
            state: RegState::NotRegistered,
        });
        let others = s
            .impus
            .iter()
            .filter(|p| !impus.contains(&p.impu))
            .any(|p| p.reg_state != RegState::NotRegistered);
        if !others {
            on_success.push(HssChange::SetScscf(None));
        }
    }
    Ok(RtrPlan {
        request,
        subscriber_id: s.id,
        imsi: s.imsi.to_string(),
        impus,
        on_success,
    })
}

/// What the RTA (or its absence, `None`: timeout or lost connection) means.
pub fn on_answer(
    plan: &RtrPlan,
    sub: &Subscription,
    rta: Option<&Rta>,
    now: SystemTime,
) -> Completion {
    let impu = plan.impus.first();
    let reason_code = plan.request.deregistration_reason.reason_code;
    match rta.map(|a| a.result) {
        Some(r) if r.is_success() => Completion {
            changes: plan.on_success.clone(),
            events: vec![event(
                now,
                Some(sub),
                None,
                impu,
                "rtr",
                Outcome::Ok,
                Some(format!(
                    "{} de-registered ({reason_code})",
                    impus_text(&plan.impus)
                )),
            )],
            failure: None,
        },
        other => {
            let why = match other {
                Some(r) => format!("RTA {}", result_text(&r)),
                None => "no RTA (timeout or connection lost)".to_owned(),
            };
            Completion {
                changes: Vec::new(),
                events: vec![event(
                    now,
                    Some(sub),
                    None,
                    impu,
                    "rtr",
                    Outcome::Failed,
                    Some(why.clone()),
                )],
                failure: Some(why),
            }
        }
    }
}

/// The RTA result the S-CSCF is expected to send for success, for tests and tools.
pub const RTA_SUCCESS: CxResult = CxResult::SUCCESS;
