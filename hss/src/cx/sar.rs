//! Server-Assignment-Request (TS 29.228 §6.1.2, TS 29.229 §6.1.3/§6.1.4): the S-CSCF tells the
//! HSS what it did, and downloads the user profile.

use std::collections::HashSet;
use std::time::SystemTime;

use bytes::Bytes;
use imslab_diameter::cx::{ChargingInformation, CxResult, Saa, Sar};
use imslab_diameter::enums::{ServerAssignmentType as Sat, UserDataAlreadyAvailable};
use imslab_diameter::types::DiameterUri;
use imslab_diameter::{ExperimentalResultCode as Exp, ResultCode};
use imslab_store::{HssChange, PublicIdentity, RegState, ServingScscf, Subscription};
use imslab_types::{Impu, Outcome};

use super::{CxOutcome, CxSettings, Lookup, Refusal, event, impus_text, resolve, result_text};
use crate::user_data::{has_unregistered_services, ims_subscription};

/// The Charging-Information for `sub`: its own addresses where set, else the configured ones.
pub(crate) fn charging_for(
    sub: &Subscription,
    settings: &CxSettings,
) -> Option<ChargingInformation> {
    let c = &sub.subscriber.charging;
    let d = &settings.default_charging;
    let pick = |own: &Option<String>, default: &Option<DiameterUri>| {
        own.as_deref()
            .and_then(|s| DiameterUri::parse(s).ok())
            .or_else(|| default.clone())
    };
    let info = ChargingInformation {
        primary_event_charging_function_name: pick(
            &c.ecf_primary,
            &d.primary_event_charging_function_name,
        ),
        secondary_event_charging_function_name: pick(
            &c.ecf_secondary,
            &d.secondary_event_charging_function_name,
        ),
        primary_charging_collection_function_name: pick(
            &c.ccf_primary,
            &d.primary_charging_collection_function_name,
        ),
        secondary_charging_collection_function_name: pick(
            &c.ccf_secondary,
            &d.secondary_charging_collection_function_name,
        ),
        extra: Vec::new(),
    };
    let empty = info.primary_event_charging_function_name.is_none()
        && info.secondary_event_charging_function_name.is_none()
        && info.primary_charging_collection_function_name.is_none()
        && info.secondary_charging_collection_function_name.is_none();
    (!empty).then_some(info)
}

/// The identities a SAR acts on: the implicit registration sets of the Public-Identities it
/// names, or, without any, every identity of the subscriber (TS 29.228 §6.5.1).
fn targets<'a>(sub: &'a Subscription, named: &[Impu]) -> Vec<&'a PublicIdentity> {
    let s = &sub.subscriber;
    if named.is_empty() {
        return s.impus.iter().collect();
    }
    let sets: HashSet<i64> = named
        .iter()
        .filter_map(|i| s.public_identity(i))
        .map(|p| p.irs)
        .collect();
    let mut out: Vec<&PublicIdentity> = s.impus.iter().filter(|p| sets.contains(&p.irs)).collect();
    out.sort_by_key(|p| (p.irs, !p.is_default));
    out
}

/// The User-Data and Charging-Information to attach.
fn with_profile(
    answer: &mut Saa,
    sub: &Subscription,
    ids: &[&PublicIdentity],
    settings: &CxSettings,
) {
    answer.user_data = Some(Bytes::from(ims_subscription(sub, ids)));
    answer.charging_information = charging_for(sub, settings);
}

/// State after a change: whether any identity outside `changed` still is registered or
/// unregistered (then the S-CSCF name must stay).
fn others_hold_scscf(sub: &Subscription, changed: &[&PublicIdentity]) -> bool {
    sub.subscriber
        .impus
        .iter()
        .filter(|p| !changed.iter().any(|c| c.impu == p.impu))
        .any(|p| p.reg_state != RegState::NotRegistered)
}

/// Answers a SAR per TS 29.228 §6.1.2.1, for every Server-Assignment-Type:
///
/// | type | state change | answer |
/// |---|---|---|
/// | 0 NO_ASSIGNMENT | none | User-Data if the requester is the assigned S-CSCF, else DIAMETER_UNABLE_TO_COMPLY |
/// | 1 REGISTRATION, 2 RE_REGISTRATION | implicit set registered, S-CSCF name stored | User-Data (unless already available) |
/// | 3 UNREGISTERED_USER | not registered → unregistered, S-CSCF name stored | User-Data; 5005 if registered at another S-CSCF, 5007 if registered at this one |
/// | 4, 5, 8, 11 de-registrations | not registered; S-CSCF name cleared when nothing is left | DIAMETER_SUCCESS |
/// | 6, 7 ..._STORE_SERVER_NAME | unregistered and name kept if the identities have unregistered services; else as 4/5 | DIAMETER_SUCCESS, or 2004 DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED |
/// | 9 AUTHENTICATION_FAILURE, 10 AUTHENTICATION_TIMEOUT | the S-CSCF name stored by the MAR is cleared for a not registered user | DIAMETER_SUCCESS |
/// | 12 AAA_USER_DATA_REQUEST, 13 PGW_UPDATE | none (not Cx) | 5007 DIAMETER_ERROR_IN_ASSIGNMENT_TYPE |
/// | 14 RESTORATION | S-CSCF name replaced | User-Data; 5007 if the identity is not registered |
///
/// De-registrations from an S-CSCF other than the assigned one change nothing and are answered
/// with DIAMETER_UNABLE_TO_COMPLY.
pub fn handle(
    req: &Sar,
    lookup: &Lookup,
    settings: &CxSettings,
    now: SystemTime,
) -> CxOutcome<Saa> {
    let first_impu = req.public_identities.first();
    let refuse = |sub: Option<&Subscription>, r: Refusal| {
        let reason = format!(
            "{} {}: {}",
            req.server_assignment_type.name().unwrap_or("SAR"),
            result_text(&r.result),
            r.reason
        );
        CxOutcome {
            answer: Saa::new(req, &settings.origin, r.result),
            subscriber_id: sub.map(|s| s.subscriber.id),
            changes: Vec::new(),
            events: vec![event(
                now,
                sub,
                req.user_name.as_ref(),
                first_impu,
                "sar",
                Outcome::Failed,
                Some(reason),
            )],
        }
    };
    if req.user_name.is_none() && req.public_identities.is_empty() {
        return refuse(
            None,
            Refusal::exp(
                Exp::DIAMETER_MISSING_USER_ID,
                "neither User-Name nor Public-Identity",
            ),
        );
    }
    let sub = match resolve(lookup, req.user_name.as_ref(), &req.public_identities) {
        Ok(s) => s,
        Err(r) => return refuse(lookup.subscription.as_ref(), r),
    };
    let s = &sub.subscriber;
    let name = req.server_name.as_str();
    let stored = s.scscf.as_ref().map(|x| x.name.as_str());
    let same = stored == Some(name);
    let ids = targets(sub, &req.public_identities);
    let impus: Vec<Impu> = ids.iter().map(|p| p.impu.clone()).collect();
    let scscf = ServingScscf {
        name: name.to_owned(),
        origin_host: Some(req.origin_host.to_string()),
        origin_realm: Some(req.origin_realm.to_string()),
    };
    let any_registered = ids.iter().any(|p| p.reg_state == RegState::Registered);
    let all_not_registered = ids.iter().all(|p| p.reg_state == RegState::NotRegistered);
    let not_assigned = |what: &str| {
        Refusal::base(
            ResultCode::DIAMETER_UNABLE_TO_COMPLY,
            format!(
                "{what} from {name}, but the assigned S-CSCF is {}",
                stored.unwrap_or("none")
            ),
        )
    };

    let mut answer = Saa::new(req, &settings.origin, CxResult::SUCCESS);
    let mut changes = Vec::new();
    let reason: String;
    match req.server_assignment_type {
        Sat::NO_ASSIGNMENT => {
            if !same {
                return refuse(Some(sub), not_assigned("profile download"));
            }
            with_profile(&mut answer, sub, &ids, settings);
            reason = format!("profile download for {}", impus_text(&impus));
        }
        Sat::REGISTRATION | Sat::RE_REGISTRATION => {
            if !same {
                changes.push(HssChange::SetScscf(Some(scscf)));
            }
            changes.push(HssChange::SetRegState {
                impus: impus.clone(),
                state: RegState::Registered,
            });
            if req.user_data_already_available
                != UserDataAlreadyAvailable::USER_DATA_ALREADY_AVAILABLE
            {
                with_profile(&mut answer, sub, &ids, settings);
            }
            reason = match stored {
                Some(old) if !same => {
                    format!("{} registered at {name} (was at {old})", impus_text(&impus))
                }
                _ => format!("{} registered at {name}", impus_text(&impus)),
            };
        }
        Sat::UNREGISTERED_USER => {
            let held_elsewhere = !same
                && stored.is_some()
                && s.impus.iter().any(|p| p.reg_state == RegState::Registered);
            if any_registered && same {
                return refuse(
                    Some(sub),
                    Refusal::exp(
                        Exp::DIAMETER_ERROR_IN_ASSIGNMENT_TYPE,
                        format!("{} is registered at this S-CSCF", impus_text(&impus)),
                    ),
                );
            }
            if any_registered || held_elsewhere {
                return refuse(
                    Some(sub),
                    Refusal::exp(
                        Exp::DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED,
                        format!("registered at {}", stored.unwrap_or("another S-CSCF")),
                    ),
                );
            }
            if !same {
                changes.push(HssChange::SetScscf(Some(scscf)));
            }
            changes.push(HssChange::SetRegState {
                impus: impus.clone(),
                state: RegState::Unregistered,
            });
            with_profile(&mut answer, sub, &ids, settings);
            reason = format!("{} unregistered, served by {name}", impus_text(&impus));
        }
        Sat::TIMEOUT_DEREGISTRATION
        | Sat::USER_DEREGISTRATION
        | Sat::ADMINISTRATIVE_DEREGISTRATION
        | Sat::DEREGISTRATION_TOO_MUCH_DATA => {
            if stored.is_some() && !same {
                return refuse(Some(sub), not_assigned("de-registration"));
            }
            changes.push(HssChange::SetRegState {
                impus: impus.clone(),
                state: RegState::NotRegistered,
            });
            if stored.is_some() && !others_hold_scscf(sub, &ids) {
                changes.push(HssChange::SetScscf(None));
            }
            reason = format!("{} de-registered", impus_text(&impus));
        }
        Sat::TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME
        | Sat::USER_DEREGISTRATION_STORE_SERVER_NAME => {
            if stored.is_some() && !same {
                return refuse(Some(sub), not_assigned("de-registration"));
            }
            let keep = ids.iter().any(|p| has_unregistered_services(sub, p));
            if keep {
                changes.push(HssChange::SetRegState {
                    impus: impus.clone(),
                    state: RegState::Unregistered,
                });
                reason = format!(
                    "{} de-registered; {name} kept for unregistered services",
                    impus_text(&impus)
                );
            } else {
                changes.push(HssChange::SetRegState {
                    impus: impus.clone(),
                    state: RegState::NotRegistered,
                });
                if stored.is_some() && !others_hold_scscf(sub, &ids) {
                    changes.push(HssChange::SetScscf(None));
                }
                answer.result =
                    CxResult::experimental(Exp::DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED);
                reason = format!(
                    "{} de-registered; S-CSCF name not stored (no unregistered services)",
                    impus_text(&impus)
                );
            }
        }
        Sat::AUTHENTICATION_FAILURE | Sat::AUTHENTICATION_TIMEOUT => {
            if all_not_registered && stored.is_some() && !others_hold_scscf(sub, &ids) {
                changes.push(HssChange::SetScscf(None));
            }
            reason = format!(
                "{}: {} keep their state",
                req.server_assignment_type
                    .name()
                    .unwrap_or("authentication failure"),
                impus_text(&impus)
            );
        }
        Sat::RESTORATION => {
            if all_not_registered {
                return refuse(
                    Some(sub),
                    Refusal::exp(
                        Exp::DIAMETER_ERROR_IN_ASSIGNMENT_TYPE,
                        format!(
                            "restoration of {}, which is not registered",
                            impus_text(&impus)
                        ),
                    ),
                );
            }
            if !same {
                changes.push(HssChange::SetScscf(Some(scscf)));
            }
            with_profile(&mut answer, sub, &ids, settings);
            reason = format!("{} restored at {name}", impus_text(&impus));
        }
        Sat::AAA_USER_DATA_REQUEST | Sat::PGW_UPDATE => {
            return refuse(
                Some(sub),
                Refusal::exp(
                    Exp::DIAMETER_ERROR_IN_ASSIGNMENT_TYPE,
                    format!(
                        "{} is a non-3GPP access (SWx) assignment type, not for Cx",
                        req.server_assignment_type.name().unwrap_or("this")
                    ),
                ),
            );
        }
        other => {
            return refuse(
                Some(sub),
                Refusal::base(
                    ResultCode::DIAMETER_INVALID_AVP_VALUE,
                    format!("Server-Assignment-Type {} is not defined", other.0),
                ),
            );
        }
    }
    let outcome = if answer.result.is_success() {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    CxOutcome {
        answer,
        subscriber_id: Some(s.id),
        changes,
        events: vec![event(
            now,
            Some(sub),
            req.user_name.as_ref(),
            first_impu,
            "sar",
            outcome,
            Some(format!(
                "{}: {reason}",
                req.server_assignment_type.name().unwrap_or("SAR")
            )),
        )],
    }
}
