//! HSS-initiated profile update: Push-Profile-Request (TS 29.228 §6.2.2, TS 29.229
//! §6.1.11/§6.1.12), with changed User-Data and/or SIP Digest authentication data.

use std::time::SystemTime;

use bytes::Bytes;
use imslab_diameter::cx::{Ppa, Ppr};
use imslab_store::{PublicIdentity, RegState, Subscription};
use imslab_types::{DiameterIdentity, Outcome, Realm};

use super::mar::digest_item;
use super::rtr::Completion;
use super::sar::charging_for;
use super::{CxSettings, event, result_text};
use crate::Error;
use crate::user_data::ims_subscription;

/// What a PPR carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PprContent {
    /// The service profiles of the identities the S-CSCF holds, and Charging-Information.
    UserData,
    /// SIP Digest data (SIP-Auth-Data-Item with SIP-Digest-Authenticate, TS 29.228 §6.5.2.4).
    AuthData,
    /// Both.
    Both,
}

/// A PPR ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct PprPlan {
    /// The request.
    pub request: Ppr,
    /// The subscriber.
    pub subscriber_id: i64,
}

/// Builds the PPR toward the S-CSCF serving `sub`: User-Data for every identity that S-CSCF
/// holds (registered or unregistered), and/or the SIP Digest data. Fails when no S-CSCF is
/// assigned, its Diameter host is unknown, or there is nothing to push.
pub fn request(
    sub: &Subscription,
    content: PprContent,
    settings: &CxSettings,
    session_id: String,
) -> Result<PprPlan, Error> {
    let s = &sub.subscriber;
    let fail = |why: String| Error::Initiate {
        command: "PPR",
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
    let held: Vec<&PublicIdentity> = {
        let mut v: Vec<&PublicIdentity> = s
            .impus
            .iter()
            .filter(|p| p.reg_state != RegState::NotRegistered)
            .collect();
        v.sort_by_key(|p| (p.irs, !p.is_default));
        v
    };
    let (user_data, charging) = if matches!(content, PprContent::UserData | PprContent::Both) {
        if held.is_empty() {
            return Err(fail(
                "no identity is registered or unregistered at the S-CSCF".into(),
            ));
        }
        (
            Some(Bytes::from(ims_subscription(sub, &held))),
            charging_for(sub, settings),
        )
    } else {
        (None, None)
    };
    let auth = if matches!(content, PprContent::AuthData | PprContent::Both) {
        Some(
            digest_item(s, settings)
                .ok_or_else(|| fail("no SIP Digest password or HA1 is provisioned".into()))?,
        )
    } else {
        None
    };
    Ok(PprPlan {
        request: Ppr {
            session_id,
            origin_host: settings.origin.host.clone(),
            origin_realm: settings.origin.realm.clone(),
            destination_host: host,
            destination_realm: realm,
            user_name: s.impi.clone(),
            supported_features: Vec::new(),
            user_data,
            charging_information: charging,
            sip_auth_data_item: auth,
            allowed_waf_wwsf_identities: None,
            extra: Vec::new(),
            proxy_info: Vec::new(),
            route_record: Vec::new(),
        },
        subscriber_id: s.id,
    })
}

/// What the PPA (or its absence) means: nothing changes in the HSS either way; a failure is
/// reported (DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA, DIAMETER_ERROR_TOO_MUCH_DATA, ...).
pub fn on_answer(sub: &Subscription, ppa: Option<&Ppa>, now: SystemTime) -> Completion {
    match ppa.map(|a| a.result) {
        Some(r) if r.is_success() => Completion {
            changes: Vec::new(),
            events: vec![event(
                now,
                Some(sub),
                None,
                None,
                "ppr",
                Outcome::Ok,
                Some("profile pushed".into()),
            )],
            failure: None,
        },
        other => {
            let why = match other {
                Some(r) => format!("PPA {}", result_text(&r)),
                None => "no PPA (timeout or connection lost)".to_owned(),
            };
            Completion {
                changes: Vec::new(),
                events: vec![event(
                    now,
                    Some(sub),
                    None,
                    None,
                    "ppr",
                    Outcome::Failed,
                    Some(why.clone()),
                )],
                failure: Some(why),
            }
        }
    }
}
