//! Location-Info-Request (TS 29.228 §6.1.4, TS 29.229 §6.1.5/§6.1.6): which S-CSCF serves a
//! public identity, for terminating requests.

use std::time::SystemTime;

use imslab_diameter::ExperimentalResultCode as Exp;
use imslab_diameter::cx::{CxResult, Lia, Lir};
use imslab_diameter::enums::UserAuthorizationType;
use imslab_store::{RegState, Subscription};
use imslab_types::Outcome;

use super::uar::capabilities_for;
use super::{CxOutcome, CxSettings, Lookup, Refusal, event, resolve, result_text};
use crate::user_data::has_unregistered_services;

/// Answers a LIR per TS 29.228 §6.1.4.1:
///
/// 1. the identity must exist (else 5001 DIAMETER_ERROR_USER_UNKNOWN);
/// 2. registered, or unregistered with an S-CSCF keeping its profile: that S-CSCF as
///    Server-Name with DIAMETER_SUCCESS (Server-Capabilities instead when the I-CSCF asks with
///    User-Authorization-Type REGISTRATION_AND_CAPABILITIES);
/// 3. not registered but with services for the unregistered state: Server-Capabilities (or the
///    S-CSCF still stored) with 2003 DIAMETER_UNREGISTERED_SERVICE;
/// 4. otherwise 5003 DIAMETER_ERROR_IDENTITY_NOT_REGISTERED.
pub fn handle(
    req: &Lir,
    lookup: &Lookup,
    settings: &CxSettings,
    now: SystemTime,
) -> CxOutcome<Lia> {
    let impu = &req.public_identity;
    let refuse = |sub: Option<&Subscription>, r: Refusal| {
        let reason = format!("{}: {}", result_text(&r.result), r.reason);
        CxOutcome {
            answer: Lia::new(req, &settings.origin, r.result),
            subscriber_id: sub.map(|s| s.subscriber.id),
            changes: Vec::new(),
            events: vec![event(
                now,
                sub,
                None,
                Some(impu),
                "lir",
                Outcome::Failed,
                Some(reason),
            )],
        }
    };
    let sub = match resolve(lookup, None, std::slice::from_ref(impu)) {
        Ok(s) => s,
        Err(r) => return refuse(lookup.subscription.as_ref(), r),
    };
    let Some(p) = sub.subscriber.public_identity(impu) else {
        return refuse(
            Some(sub),
            Refusal::exp(
                Exp::DIAMETER_ERROR_USER_UNKNOWN,
                format!("{impu} is not provisioned"),
            ),
        );
    };
    let capabilities_wanted =
        req.user_authorization_type == Some(UserAuthorizationType::REGISTRATION_AND_CAPABILITIES);
    let stored = sub.subscriber.scscf.as_ref().map(|s| s.name.clone());
    let mut answer;
    let reason;
    match (p.reg_state, &stored) {
        (RegState::Registered | RegState::Unregistered, Some(name)) => {
            answer = Lia::new(req, &settings.origin, CxResult::SUCCESS);
            if capabilities_wanted {
                answer.server_capabilities = Some(capabilities_for(sub, settings));
                reason = format!("{} at {name}; capabilities asked for", p.reg_state.as_str());
            } else {
                answer.server_name = Some(name.clone());
                reason = format!("{} at {name}", p.reg_state.as_str());
            }
        }
        _ if has_unregistered_services(sub, p) => {
            answer = Lia::new(
                req,
                &settings.origin,
                CxResult::experimental(Exp::DIAMETER_UNREGISTERED_SERVICE),
            );
            match (&stored, capabilities_wanted) {
                (Some(name), false) => {
                    answer.server_name = Some(name.clone());
                    reason = format!("not registered, unregistered services at {name}");
                }
                _ => {
                    answer.server_capabilities = Some(capabilities_for(sub, settings));
                    reason = "not registered, unregistered services: select an S-CSCF".to_owned();
                }
            }
        }
        _ => {
            return refuse(
                Some(sub),
                Refusal::exp(
                    Exp::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED,
                    format!("{impu} is not registered and has no unregistered services"),
                ),
            );
        }
    }
    CxOutcome {
        answer,
        subscriber_id: Some(sub.subscriber.id),
        changes: Vec::new(),
        events: vec![event(
            now,
            Some(sub),
            None,
            Some(impu),
            "lir",
            Outcome::Ok,
            Some(reason),
        )],
    }
}
