//! Multimedia-Auth-Request (TS 29.228 §6.3, TS 29.229 §6.1.7/§6.1.8): authentication vectors,
//! SIP Digest data and AKA resynchronisation.

use std::time::SystemTime;

use bytes::Bytes;
use imslab_aka::{Auc, Ha1, Milenage, RandSource, generate_vector, parse_resync_authorization};
use imslab_diameter::cx::{CxResult, Maa, Mar, SipAuthDataItem, SipDigestAuthenticate};
use imslab_diameter::{ExperimentalResultCode as Exp, ResultCode};
use imslab_store::{
    AuthScheme, DigestSecret, HssChange, OperatorKey, ServingScscf, Subscriber, Subscription,
};
use imslab_types::{Outcome, Sqn, UeEvent};

use super::{CxOutcome, CxSettings, Lookup, Refusal, event, resolve, result_text};

/// The first step's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum MarStep {
    /// The answer is ready: a refusal, or SIP Digest data.
    Done(Box<CxOutcome<Maa>>),
    /// AKA: reserve SQNs in the store, then call [`vectors`].
    NeedVectors(VectorPlan),
}

/// What the store must do before AKA vectors can be built.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorPlan {
    /// The subscriber.
    pub subscriber_id: i64,
    /// The scheme named in the answer.
    pub scheme: AuthScheme,
    /// How many vectors (SIP-Number-Auth-Items, capped by `hss.max_auth_items`).
    pub count: u32,
    /// Resynchronisation: set the stored SQN to this before taking new ones (TS 33.102 §6.3.5).
    pub reset_sqn: Option<Sqn>,
    /// Other changes (the S-CSCF name), applied with the answer.
    pub changes: Vec<HssChange>,
    /// Events so far (resync).
    pub events: Vec<UeEvent>,
}

fn scheme_from_cx(name: &str) -> Option<AuthScheme> {
    match name {
        SipAuthDataItem::SCHEME_AKAV1_MD5 => Some(AuthScheme::AkaV1Md5),
        SipAuthDataItem::SCHEME_AKAV2_MD5 => Some(AuthScheme::AkaV2Md5),
        SipAuthDataItem::SCHEME_SIP_DIGEST => Some(AuthScheme::SipDigest),
        _ => AuthScheme::parse(name).filter(|_| !name.eq_ignore_ascii_case("unknown")),
    }
}

pub(crate) fn milenage(s: &Subscriber) -> Milenage {
    match &s.operator_key {
        OperatorKey::Opc(opc) => Milenage::new(&s.k, opc),
        OperatorKey::Op(op) => Milenage::with_op(&s.k, op),
    }
}

/// The SIP Digest item (TS 29.229 §6.3.36): realm, algorithm MD5, the QoP offered and
/// H(A1) = MD5(IMPI ":" realm ":" password) (TS 33.203 Annex N, RFC 2617 §3.2.2.2).
pub(crate) fn digest_item(sub: &Subscriber, settings: &CxSettings) -> Option<SipAuthDataItem> {
    let realm = sub.digest_realm().to_owned();
    let ha1 = match sub.digest.as_ref()? {
        DigestSecret::Ha1(h) => h.clone(),
        DigestSecret::Password(p) => Ha1::new(sub.impi.as_str(), &realm, p.as_bytes()).expose_hex(),
    };
    Some(SipAuthDataItem {
        item_number: Some(1),
        authentication_scheme: Some(SipAuthDataItem::SCHEME_SIP_DIGEST.to_owned()),
        digest_authenticate: Some(SipDigestAuthenticate {
            digest_realm: realm,
            digest_algorithm: Some("MD5".to_owned()),
            digest_qop: settings.digest_qop.clone(),
            digest_ha1: ha1,
            extra: Vec::new(),
        }),
        ..SipAuthDataItem::default()
    })
}

fn scscf_of(req: &Mar) -> ServingScscf {
    ServingScscf {
        name: req.server_name.clone(),
        origin_host: Some(req.origin_host.to_string()),
        origin_realm: Some(req.origin_realm.to_string()),
    }
}

/// First step of a MAR, in the order of TS 29.228 §6.3.1:
///
/// 1. the identities exist (5001) and belong together (5002);
/// 2. the scheme: `Unknown` (sent by an S-CSCF whose REGISTER had no Authorization header, TS
///    24.229 §5.4.1.2.1) means the one provisioned for the user, as a real HSS does (FHoSS uses
///    the IMPI's default scheme): SIP Digest when provisioned (a UE without Authorization header is
///    not an IMS AKA UE, TS 24.229 §5.1.1.2), else AKAv1, else AKAv2; a named scheme must be
///    provisioned for the user; otherwise 5006 DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED;
/// 3. a synchronisation failure (SIP-Authorization = RAND ‖ AUTS) from the S-CSCF whose name
///    is stored is processed (TS 33.102 §6.3.5); from another S-CSCF the AUTS is ignored and the
///    name kept, and fresh vectors are returned;
/// 4. otherwise the received S-CSCF name is stored when it differs (authentication pending for a
///    not registered identity; a new S-CSCF for a registered one);
/// 5. SIP Digest data is answered at once; AKA needs SQNs ([`MarStep::NeedVectors`]).
///
/// An AUTS whose MAC-S does not verify is answered with DIAMETER_AUTHENTICATION_REJECTED (4001).
pub fn check(req: &Mar, lookup: &Lookup, settings: &CxSettings, now: SystemTime) -> MarStep {
    let impu = &req.public_identity;
    let impi = &req.user_name;
    let refuse = |sub: Option<&Subscription>, r: Refusal, step: &'static str| {
        let reason = format!("{}: {}", result_text(&r.result), r.reason);
        MarStep::Done(Box::new(CxOutcome {
            answer: Maa::new(req, &settings.origin, r.result),
            subscriber_id: sub.map(|s| s.subscriber.id),
            changes: Vec::new(),
            events: vec![event(
                now,
                sub,
                Some(impi),
                Some(impu),
                step,
                Outcome::Failed,
                Some(reason),
            )],
        }))
    };
    let sub = match resolve(lookup, Some(impi), std::slice::from_ref(impu)) {
        Ok(s) => s,
        Err(r) => return refuse(lookup.subscription.as_ref(), r, "mar"),
    };
    let s = &sub.subscriber;
    let item = &req.sip_auth_data_item;
    let requested = item
        .authentication_scheme
        .as_deref()
        .unwrap_or(SipAuthDataItem::SCHEME_UNKNOWN);
    let scheme = if requested.eq_ignore_ascii_case(SipAuthDataItem::SCHEME_UNKNOWN) {
        let provisioned = [
            AuthScheme::SipDigest,
            AuthScheme::AkaV1Md5,
            AuthScheme::AkaV2Md5,
        ]
        .into_iter()
        .find(|sc| s.auth_schemes.contains(*sc));
        match provisioned {
            Some(sc) => sc,
            None => {
                return refuse(
                    Some(sub),
                    Refusal::exp(
                        Exp::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED,
                        format!("scheme Unknown, but {impi} has no scheme provisioned"),
                    ),
                    "mar",
                );
            }
        }
    } else {
        match scheme_from_cx(requested) {
            Some(sc) if s.auth_schemes.contains(sc) => sc,
            _ => {
                return refuse(
                    Some(sub),
                    Refusal::exp(
                        Exp::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED,
                        format!(
                            "scheme {requested:?} is not provisioned for {impi} (allowed: {})",
                            schemes_text(s)
                        ),
                    ),
                    "mar",
                );
            }
        }
    };

    let stored_name = s.scscf.as_ref().map(|x| x.name.as_str());
    let same_scscf = stored_name == Some(req.server_name.as_str());
    let mut events = Vec::new();
    let mut changes = Vec::new();
    let mut reset_sqn = None;
    let resync = item.authorization.as_ref().filter(|a| !a.is_empty());
    if let (Some(auth), true) = (resync, scheme != AuthScheme::SipDigest) {
        let (rand, auts) = match parse_resync_authorization(auth) {
            Ok(v) => v,
            Err(e) => {
                return refuse(
                    Some(sub),
                    Refusal::base(
                        ResultCode::DIAMETER_INVALID_AVP_VALUE,
                        format!("SIP-Authorization is not RAND ‖ AUTS: {e}"),
                    ),
                    "aka-resync",
                );
            }
        };
        if same_scscf {
            let auc = Auc::new(settings.sqn, imslab_aka::AmfPolicy::Any);
            match auc.resync(&milenage(s), s.sqn, &rand, &auts) {
                Ok(r) => {
                    if r.reset {
                        reset_sqn = Some(r.sqn_he);
                    }
                    events.push(event(
                        now,
                        Some(sub),
                        Some(impi),
                        Some(impu),
                        "aka-resync",
                        Outcome::Info,
                        Some(format!(
                            "SQN_MS {} (SEQ {}), SQN_HE {} {}",
                            r.sqn_ms.value(),
                            settings.sqn.seq(r.sqn_ms),
                            r.sqn_he.value(),
                            if r.reset {
                                "reset to SQN_MS"
                            } else {
                                "kept: already ahead"
                            }
                        )),
                    ));
                }
                Err(e) => {
                    return refuse(
                        Some(sub),
                        Refusal::base(
                            ResultCode::DIAMETER_AUTHENTICATION_REJECTED,
                            format!("AUTS rejected: {e} (wrong K/OPc on the card or in the HSS?)"),
                        ),
                        "aka-resync",
                    );
                }
            }
        } else {
            events.push(event(
                now,
                Some(sub),
                Some(impi),
                Some(impu),
                "aka-resync",
                Outcome::Info,
                Some(format!(
                    "AUTS from {} ignored: the stored S-CSCF is {}",
                    req.server_name,
                    stored_name.unwrap_or("none")
                )),
            ));
        }
    }
    let keep_stored = resync.is_some() && stored_name.is_some();
    if !same_scscf && !keep_stored {
        changes.push(HssChange::SetScscf(Some(scscf_of(req))));
    }

    if scheme == AuthScheme::SipDigest {
        let Some(item) = digest_item(s, settings) else {
            return refuse(
                Some(sub),
                Refusal::exp(
                    Exp::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED,
                    format!("{impi} has no SIP Digest password or HA1"),
                ),
                "mar",
            );
        };
        let mut answer = Maa::new(req, &settings.origin, CxResult::SUCCESS);
        answer.sip_number_auth_items = Some(1);
        answer.sip_auth_data_items = vec![item];
        events.push(event(
            now,
            Some(sub),
            Some(impi),
            Some(impu),
            "mar",
            Outcome::Ok,
            Some(format!("SIP Digest data for realm {}", s.digest_realm())),
        ));
        return MarStep::Done(Box::new(CxOutcome {
            answer,
            subscriber_id: Some(s.id),
            changes,
            events,
        }));
    }
    let count = req.sip_number_auth_items.clamp(1, settings.max_auth_items);
    MarStep::NeedVectors(VectorPlan {
        subscriber_id: s.id,
        scheme,
        count,
        reset_sqn,
        changes,
        events,
    })
}

fn schemes_text(s: &Subscriber) -> String {
    let v: Vec<&str> = s.auth_schemes.iter().map(AuthScheme::cx_name).collect();
    if v.is_empty() {
        "nothing".to_owned()
    } else {
        v.join(", ")
    }
}

/// Second step: the MAA with one AKA vector per SQN reserved by the store (TS 33.102 §6.3.2):
/// SIP-Authenticate = RAND ‖ AUTN, SIP-Authorization = XRES, Confidentiality-Key = CK,
/// Integrity-Key = IK (TS 29.229 §6.3.13).
pub fn vectors(
    req: &Mar,
    sub: &Subscription,
    plan: VectorPlan,
    sqns: &[Sqn],
    rand: &mut impl RandSource,
    settings: &CxSettings,
    now: SystemTime,
) -> CxOutcome<Maa> {
    let s = &sub.subscriber;
    let m = milenage(s);
    let items: Vec<SipAuthDataItem> = sqns
        .iter()
        .enumerate()
        .map(|(i, sqn)| {
            let v = generate_vector(&m, rand.next_rand(), *sqn, s.amf);
            SipAuthDataItem {
                item_number: Some(u32::try_from(i + 1).unwrap_or(u32::MAX)),
                authentication_scheme: Some(plan.scheme.cx_name().to_owned()),
                authenticate: Some(Bytes::copy_from_slice(&v.sip_authenticate())),
                authorization: Some(Bytes::copy_from_slice(v.xres.expose())),
                confidentiality_key: Some(v.ck.clone()),
                integrity_key: Some(v.ik.clone()),
                ..SipAuthDataItem::default()
            }
        })
        .collect();
    let mut answer = Maa::new(req, &settings.origin, CxResult::SUCCESS);
    answer.sip_number_auth_items = Some(u32::try_from(items.len()).unwrap_or(u32::MAX));
    answer.sip_auth_data_items = items;
    let mut events = plan.events;
    let sqn_text: Vec<String> = sqns
        .iter()
        .map(|q| {
            format!(
                "{} (SEQ {}, IND {})",
                q.value(),
                settings.sqn.seq(*q),
                settings.sqn.ind(*q)
            )
        })
        .collect();
    events.push(event(
        now,
        Some(sub),
        Some(&req.user_name),
        Some(&req.public_identity),
        "mar",
        Outcome::Ok,
        Some(format!(
            "{} {} vector(s), SQN {}",
            sqns.len(),
            plan.scheme.cx_name(),
            sqn_text.join(", ")
        )),
    ));
    CxOutcome {
        answer,
        subscriber_id: Some(s.id),
        changes: plan.changes,
        events,
    }
}
