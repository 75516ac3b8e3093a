//! User-Authorization-Request (TS 29.228 §6.1.1.1, TS 29.229 §6.1.1/§6.1.2): may this user
//! register, and which S-CSCF serves it.

use std::time::SystemTime;

use imslab_diameter::cx::{CxResult, ServerCapabilities, Uaa, Uar};
use imslab_diameter::enums::UserAuthorizationType;
use imslab_diameter::{ExperimentalResultCode as Exp, ResultCode};
use imslab_store::{RegState, Subscription};
use imslab_types::Outcome;

use super::{CxOutcome, CxSettings, Lookup, Refusal, event, implicit_set, resolve, result_text};

/// UAR-Flags bit 0: IMS emergency registration (TS 29.229 §6.3.44).
const EMERGENCY: u32 = 1;

/// The Server-Capabilities for `sub`: the configured capabilities, with the subscriber's fixed
/// S-CSCF as the preferred Server-Name when it has one (TS 29.228 §6.7).
pub(crate) fn capabilities_for(sub: &Subscription, settings: &CxSettings) -> ServerCapabilities {
    let mut caps = settings.capabilities.clone();
    if let Some(fixed) = &sub.subscriber.fixed_scscf {
        caps.server_names.retain(|n| n != fixed);
        caps.server_names.insert(0, fixed.clone());
    }
    caps
}

/// Answers a UAR, in the order of TS 29.228 §6.1.1.1:
///
/// 1. both identities exist (else 5001 DIAMETER_ERROR_USER_UNKNOWN) and belong together (else
///    5002 DIAMETER_ERROR_IDENTITIES_DONT_MATCH);
/// 2. unless de-registering or registering for emergency: an identity barred together with its
///    whole implicit registration set is refused with DIAMETER_AUTHORIZATION_REJECTED (5003);
/// 3. registration: the visited network must be allowed (else 5004
///    DIAMETER_ERROR_ROAMING_NOT_ALLOWED);
/// 4. by User-Authorization-Type and state:
///    - REGISTRATION: an assigned S-CSCF (registered, unregistered, or stored by a MAR) is
///      returned as Server-Name with 2002 DIAMETER_SUBSEQUENT_REGISTRATION; otherwise
///      Server-Capabilities with 2001 DIAMETER_FIRST_REGISTRATION;
///    - REGISTRATION_AND_CAPABILITIES (the I-CSCF must select an S-CSCF anew, TS 24.229
///      §5.3.1.2): Server-Capabilities with 2001 DIAMETER_FIRST_REGISTRATION;
///    - DE_REGISTRATION: the S-CSCF of a registered or unregistered identity with
///      DIAMETER_SUCCESS, else 5003 DIAMETER_ERROR_IDENTITY_NOT_REGISTERED.
pub fn handle(
    req: &Uar,
    lookup: &Lookup,
    settings: &CxSettings,
    now: SystemTime,
) -> CxOutcome<Uaa> {
    let impu = &req.public_identity;
    let refuse = |sub: Option<&Subscription>, r: Refusal| {
        let reason = format!("{}: {}", result_text(&r.result), r.reason);
        CxOutcome {
            answer: Uaa::new(req, &settings.origin, r.result),
            subscriber_id: sub.map(|s| s.subscriber.id),
            changes: Vec::new(),
            events: vec![event(
                now,
                sub,
                Some(&req.user_name),
                Some(impu),
                "uar",
                Outcome::Failed,
                Some(reason),
            )],
        }
    };
    let sub = match resolve(lookup, Some(&req.user_name), std::slice::from_ref(impu)) {
        Ok(s) => s,
        Err(r) => return refuse(lookup.subscription.as_ref(), r),
    };
    let Some(identity) = sub.subscriber.public_identity(impu) else {
        return refuse(
            Some(sub),
            Refusal::exp(
                Exp::DIAMETER_ERROR_USER_UNKNOWN,
                format!("{impu} is not provisioned"),
            ),
        );
    };
    let kind = req
        .user_authorization_type
        .unwrap_or(UserAuthorizationType::REGISTRATION);
    if !matches!(
        kind,
        UserAuthorizationType::REGISTRATION
            | UserAuthorizationType::DE_REGISTRATION
            | UserAuthorizationType::REGISTRATION_AND_CAPABILITIES
    ) {
        return refuse(
            Some(sub),
            Refusal::base(
                ResultCode::DIAMETER_INVALID_AVP_VALUE,
                format!("User-Authorization-Type {} is not defined", kind.0),
            ),
        );
    }
    let emergency = req.uar_flags.is_some_and(|f| f & EMERGENCY != 0);
    if kind != UserAuthorizationType::DE_REGISTRATION && !emergency && identity.barred {
        let set = implicit_set(sub, impu);
        if set.iter().all(|p| p.barred) {
            return refuse(
                Some(sub),
                Refusal::base(
                    ResultCode::DIAMETER_AUTHORIZATION_REJECTED,
                    format!(
                        "{impu} is barred and its implicit registration set has no other identity"
                    ),
                ),
            );
        }
    }
    if kind != UserAuthorizationType::DE_REGISTRATION && !emergency {
        let visited = String::from_utf8_lossy(&req.visited_network_identifier);
        let home = visited.eq_ignore_ascii_case(settings.origin.realm.as_str());
        let allowed = settings.allowed_visited_networks.is_empty()
            || home
            || settings
                .allowed_visited_networks
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&visited));
        if !allowed {
            return refuse(
                Some(sub),
                Refusal::exp(
                    Exp::DIAMETER_ERROR_ROAMING_NOT_ALLOWED,
                    format!("visited network {visited:?} is not allowed"),
                ),
            );
        }
    }

    let assigned = sub.subscriber.scscf.as_ref().map(|s| s.name.clone());
    let mut answer;
    let reason;
    match kind {
        UserAuthorizationType::DE_REGISTRATION => {
            if identity.reg_state == RegState::NotRegistered || assigned.is_none() {
                return refuse(
                    Some(sub),
                    Refusal::exp(
                        Exp::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED,
                        format!("{impu} is not registered"),
                    ),
                );
            }
            answer = Uaa::new(req, &settings.origin, CxResult::SUCCESS);
            answer.server_name = assigned.clone();
            reason = format!("de-registration via {}", assigned.unwrap_or_default());
        }
        UserAuthorizationType::REGISTRATION if assigned.is_some() => {
            answer = Uaa::new(
                req,
                &settings.origin,
                CxResult::experimental(Exp::DIAMETER_SUBSEQUENT_REGISTRATION),
            );
            answer.server_name = assigned.clone();
            reason = format!(
                "subsequent registration at {}",
                assigned.unwrap_or_default()
            );
        }
        _ => {
            answer = Uaa::new(
                req,
                &settings.origin,
                CxResult::experimental(Exp::DIAMETER_FIRST_REGISTRATION),
            );
            answer.server_capabilities = Some(capabilities_for(sub, settings));
            reason = "first registration: the I-CSCF selects an S-CSCF".to_owned();
        }
    }
    CxOutcome {
        answer,
        subscriber_id: Some(sub.subscriber.id),
        changes: Vec::new(),
        events: vec![event(
            now,
            Some(sub),
            Some(&req.user_name),
            Some(impu),
            "uar",
            Outcome::Ok,
            Some(reason),
        )],
    }
}
