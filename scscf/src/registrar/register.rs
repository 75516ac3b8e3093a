//! REGISTER: parsing, authentication (TS 24.229 §5.4.1.2), MAR and SAR, bindings (RFC 3261
//! §10.3, RFC 5626 §6) and the 200 OK (TS 24.229 §5.4.1.2.2).

use std::net::SocketAddr;
use std::time::Duration;

use imslab_aka::{Auts, Nonce, resync_authorization};
use imslab_diameter::cx::{CxResult, Maa, Mar, Saa, Sar, SipAuthDataItem};
use imslab_diameter::enums::{ServerAssignmentType, UserDataAlreadyAvailable};
use imslab_diameter::{ExperimentalResultCode as Exp, ResultCode};
use imslab_sip::header::{Auth, Contact as SipContact};
use imslab_sip::proxy::Decision;
use imslab_sip::{HeaderName, Message, StatusCode, Uri};
use imslab_store::{Binding, ChargingInfo};
use imslab_types::{Impi, Impu, Outcome};

use super::{Aor, Contact, CxOut, CxReply, Now, Persist, Registrar, ReqId, Task, TaskId};
use crate::auth::{self, Scheme, Verdict};
use crate::ifc::ImsSubscription;
use crate::reg_event::ContactEvent;

/// Challenges kept per private identity.
const MAX_CHALLENGES: usize = 4;

/// A registration as the core holds it, for listings and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The registered identity.
    pub impu: Impu,
    /// The private identity.
    pub impi: Impi,
    /// The implicit registration set, barred identities included.
    pub implicit_set: Vec<Impu>,
    /// The contact bindings.
    pub bindings: Vec<Binding>,
}

impl Registration {
    pub(super) fn of(a: &Aor) -> Self {
        Self {
            impu: a.impu.clone(),
            impi: a.impi.clone(),
            implicit_set: a.implicit.iter().map(|(i, _)| i.clone()).collect(),
            bindings: a.contacts.iter().map(|c| c.binding.clone()).collect(),
        }
    }
}

/// Why a SAR is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SarKind {
    Registration,
    ReRegistration,
    UserDeregistration,
    TimeoutDeregistration,
    AdministrativeDeregistration,
}

impl SarKind {
    fn code(self) -> ServerAssignmentType {
        match self {
            Self::Registration => ServerAssignmentType::REGISTRATION,
            Self::ReRegistration => ServerAssignmentType::RE_REGISTRATION,
            Self::UserDeregistration => ServerAssignmentType::USER_DEREGISTRATION,
            Self::TimeoutDeregistration => ServerAssignmentType::TIMEOUT_DEREGISTRATION,
            Self::AdministrativeDeregistration => {
                ServerAssignmentType::ADMINISTRATIVE_DEREGISTRATION
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::ReRegistration => "re-registration",
            Self::UserDeregistration => "user de-registration",
            Self::TimeoutDeregistration => "timeout de-registration",
            Self::AdministrativeDeregistration => "administrative de-registration",
        }
    }
}

/// One Contact of a REGISTER.
#[derive(Debug, Clone)]
pub(super) struct ReqContact {
    uri: String,
    expires: u32,
    q_milli: Option<i64>,
    instance: Option<String>,
    reg_id: Option<i64>,
    params: Option<String>,
}

impl ReqContact {
    fn key(&self) -> String {
        match (&self.instance, self.reg_id) {
            (Some(i), Some(r)) => format!("{i}#{r}"),
            (Some(i), None) => i.clone(),
            _ => self.uri.clone(),
        }
    }
}

/// A REGISTER waiting for the HSS.
#[derive(Debug)]
pub(super) struct PendingRegister {
    pub(super) req: ReqId,
    msg: Message,
    pub(super) impu: Impu,
    pub(super) impi: Impi,
    call_id: String,
    cseq: u32,
    /// `None` for `Contact: *`.
    contacts: Option<Vec<ReqContact>>,
    path: Vec<String>,
    source: Option<SocketAddr>,
    user_agent: Option<String>,
    algorithm: Option<Scheme>,
    /// Why the next 401 is sent, for its `stale` parameter.
    stale: Stale,
}

/// Whether a new challenge says `stale=TRUE` (RFC 2617 §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stale {
    /// A first challenge, or one after a wrong response.
    No,
    /// The nonce is unknown (from before a restart) or its count was replayed: stale for
    /// digest only (an AKA nonce cannot be told from a forged one).
    Unknown,
    /// The response was right but its nonce is older than the nonce lifetime
    /// ([`super::Settings::challenge_lifetime`]): stale for every scheme.
    Expired,
}

/// The text of a stored binding's Contact (for 200 OK bodies after a restart).
pub(super) fn contact_text(b: &Binding) -> String {
    let mut t = format!("<{}>", b.contact);
    if let Some(p) = &b.contact_params {
        t.push_str(p);
    }
    t
}

fn header_text(msg: &Message, name: &HeaderName) -> Option<String> {
    msg.header(name)
        .map(|v| String::from_utf8_lossy(v).trim().to_owned())
}

/// The private identity derived from a public one when the REGISTER has no Authorization
/// (TS 24.229 §5.4.1.2.1: `sip:user@domain` gives `user@domain`).
fn derived_impi(impu: &Impu) -> Option<Impi> {
    let s = impu.as_str();
    let rest = s.strip_prefix("sip:").or_else(|| s.strip_prefix("sips:"))?;
    let rest = rest.split([';', '?', '>']).next().unwrap_or(rest);
    let (user, host) = rest.split_once('@')?;
    let host = host.split(':').next().unwrap_or(host);
    Impi::new(format!("{user}@{host}")).ok()
}

/// The AOR of a URI: scheme, user and host, without port or parameters (RFC 3261 §10.3
/// step 5, simplified to what IMS identities look like).
pub(super) fn aor_of(uri: &Uri<'_>) -> Option<Impu> {
    let text = match uri {
        Uri::Sip(s) => {
            let scheme = if s.secure { "sips" } else { "sip" };
            match &s.user {
                Some(u) => format!("{scheme}:{u}@{}", s.host),
                None => format!("{scheme}:{}", s.host),
            }
        }
        Uri::Tel(t) => format!("tel:{}", t.number),
        Uri::Other(_) => return None,
    };
    Impu::new(text).ok()
}

fn bad_request(msg: &Message, reason: &str) -> Box<Message> {
    Box::new(respond(msg, StatusCode::BAD_REQUEST, Some(reason)))
}

/// A response to `msg` with this status and reason phrase.
fn boxed_respond(msg: &Message, code: StatusCode, reason: Option<&str>) -> Box<Message> {
    Box::new(respond(msg, code, reason))
}

impl Registrar {
    /// Records `step` as failed for the REGISTER's identities and answers it with `status`.
    fn refuse_register(
        &mut self,
        now: Now,
        p: &PendingRegister,
        step: &'static str,
        reason: Option<String>,
        status: StatusCode,
        phrase: Option<&str>,
    ) {
        self.event(
            now,
            Some(&p.impi),
            Some(&p.impu),
            step,
            Outcome::Failed,
            reason,
        );
        let r = respond(&p.msg, status, phrase);
        self.decide(p.req, Decision::Respond(r));
    }
}

/// A response to `msg` with this status and reason phrase.
pub(super) fn respond(msg: &Message, code: StatusCode, reason: Option<&str>) -> Message {
    let mut r = match msg.response(code, None) {
        Ok(r) => r,
        Err(_) => Message::new_response(code, reason),
    };
    if let Some(reason) = reason {
        let mut fresh = Message::new_response(code, Some(reason));
        for f in r.fields() {
            let _ = fresh.push_header(f.name(), bytes::Bytes::copy_from_slice(f.value()));
        }
        r = fresh;
    }
    r
}

impl Registrar {
    fn parse_register(
        &self,
        req: ReqId,
        msg: Message,
        source: Option<SocketAddr>,
    ) -> Result<PendingRegister, Box<Message>> {
        let to = msg
            .to_header()
            .map_err(|_| bad_request(&msg, "To header missing or malformed"))?;
        let impu =
            aor_of(&to.uri).ok_or_else(|| bad_request(&msg, "To is not a SIP or tel URI"))?;
        let call_id = msg
            .call_id()
            .map_err(|_| bad_request(&msg, "Call-ID missing"))?
            .as_str()
            .to_owned();
        let cseq = msg
            .cseq()
            .map_err(|_| bad_request(&msg, "CSeq missing or malformed"))?
            .seq;
        let header_expires = msg
            .expires()
            .map_err(|_| bad_request(&msg, "Expires is not a number"))?;
        let creds = match msg.typed::<Auth<'_>>(&HeaderName::AUTHORIZATION) {
            None => None,
            Some(Ok(a)) if a.is_digest() => Some(a),
            Some(_) => {
                return Err(bad_request(
                    &msg,
                    "Authorization is not a Digest credential",
                ));
            }
        };
        let impi = match creds.as_ref().and_then(Auth::username) {
            Some(u) => Impi::new(u.to_owned())
                .map_err(|_| bad_request(&msg, "username is not a private identity"))?,
            None => derived_impi(&impu).ok_or_else(|| {
                boxed_respond(
                    &msg,
                    StatusCode::FORBIDDEN,
                    Some("No private identity: send Authorization with username"),
                )
            })?,
        };
        let algorithm = creds
            .as_ref()
            .and_then(|a| a.get("algorithm"))
            .and_then(Scheme::from_algorithm);
        let mut contacts = Some(Vec::new());
        let mut wildcard = false;
        let mut count = 0;
        for c in msg.contacts() {
            count += 1;
            let c = c.map_err(|_| bad_request(&msg, "Contact malformed"))?;
            let addr = match c {
                SipContact::Wildcard => {
                    wildcard = true;
                    continue;
                }
                SipContact::Addr(a) => a,
            };
            let expires = match c_expires(&addr) {
                Ok(Some(e)) => e,
                Ok(None) => header_expires.unwrap_or(self.s.expires_default),
                Err(()) => return Err(bad_request(&msg, "Contact expires is not a number")),
            };
            let instance = addr.params.value("+sip.instance").map(|v| {
                v.trim_matches('"')
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            });
            let reg_id = addr.params.value("reg-id").and_then(|v| v.parse().ok());
            let q_milli = addr
                .params
                .value("q")
                .and_then(|q| imslab_sip::header::QValue::parse(q).ok())
                .map(|q| i64::from(q.thousandths()));
            let mut plain = addr.clone().into_owned();
            plain.params.remove("expires");
            let uri = plain.uri.to_string();
            let params: String = plain
                .params
                .iter()
                .map(|p| match p.value() {
                    Some(v) if p.is_quoted() => format!(";{}=\"{v}\"", p.name()),
                    Some(v) => format!(";{}={v}", p.name()),
                    None => format!(";{}", p.name()),
                })
                .collect();
            contacts.get_or_insert_with(Vec::new).push(ReqContact {
                uri,
                expires: expires.min(self.s.expires_max),
                q_milli,
                instance,
                reg_id,
                params: (!params.is_empty()).then_some(params),
            });
        }
        if wildcard {
            // RFC 3261 §10.3 step 6: `*` only alone and with Expires: 0.
            if count != 1 || header_expires != Some(0) {
                return Err(bad_request(
                    &msg,
                    "Contact: * needs Expires: 0 and no other Contact",
                ));
            }
            contacts = None;
        }
        if let Some(cs) = &contacts
            && let Some(short) = cs
                .iter()
                .find(|c| c.expires > 0 && c.expires < self.s.expires_min)
        {
            let mut r = respond(&msg, StatusCode::INTERVAL_TOO_BRIEF, None);
            let _ = r.push_header(HeaderName::MIN_EXPIRES, self.s.expires_min.to_string());
            tracing::debug!(expires = short.expires, "423 Interval Too Brief");
            return Err(Box::new(r));
        }
        let path = msg
            .values(&HeaderName::PATH)
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
            .collect();
        let user_agent = header_text(&msg, &HeaderName::USER_AGENT);
        Ok(PendingRegister {
            req,
            msg,
            impu,
            impi,
            call_id,
            cseq,
            contacts,
            path,
            source,
            user_agent,
            algorithm,
            stale: Stale::No,
        })
    }

    /// A REGISTER arrived (TS 24.229 §5.4.1.2). `source` is where it came from (the P-CSCF),
    /// recorded with the bindings.
    pub fn handle_register(
        &mut self,
        now: Now,
        req: ReqId,
        msg: Message,
        source: Option<SocketAddr>,
    ) {
        let p = match self.parse_register(req, msg, source) {
            Ok(p) => p,
            Err(resp) => {
                let status = resp.status().map_or(400, |s| s.as_u16());
                let reason = resp
                    .reason_phrase()
                    .map(|r| String::from_utf8_lossy(r).into_owned());
                self.event(
                    now,
                    None,
                    None,
                    "register",
                    Outcome::Failed,
                    Some(format!("{status} {}", reason.unwrap_or_default())),
                );
                self.decide(req, Decision::Respond(*resp));
                return;
            }
        };
        self.authenticate(now, p);
    }

    fn authenticate(&mut self, now: Now, p: PendingRegister) {
        let creds = p
            .msg
            .typed::<Auth<'_>>(&HeaderName::AUTHORIZATION)
            .and_then(Result::ok)
            .map(Auth::into_owned);
        let registered_same = self.aors.get(&p.impu).is_some_and(|a| a.impi == p.impi);
        let protected = creds
            .as_ref()
            .and_then(|c| c.integrity_protected())
            .is_some_and(|v| imslab_aka::IntegrityProtected::parse(v).is_protected());
        if protected && registered_same {
            // TS 24.229 §5.4.1.2.1: a re-registration over the security association needs
            // no new challenge.
            self.authorized(now, p);
            return;
        }
        let Some(creds) = creds.filter(|c| c.nonce().is_some_and(|n| !n.is_empty())) else {
            self.new_challenge(now, p);
            return;
        };
        let nonce = creds.nonce().unwrap_or_default().to_owned();
        let st = self.auth.entry(p.impi.clone()).or_default();
        let lifetime = self.s.challenge_lifetime;
        let too_old = |c: &auth::Challenge| now.at.saturating_duration_since(c.issued) > lifetime;
        // A right answer to a nonce past its lifetime earns a stale 401, not a failure.
        let expired_but_right = creds.auts().is_none()
            && creds.response().is_some_and(|r| !r.is_empty())
            && st
                .challenges
                .iter_mut()
                .find(|c| c.nonce == nonce && too_old(c))
                .is_some_and(|c| c.verify(&creds, "REGISTER", p.msg.body()) == Verdict::Ok);
        st.challenges.retain(|c| !too_old(c));
        let found = st.challenges.iter().position(|c| c.nonce == nonce);
        if let Some(auts) = creds.auts() {
            // RFC 3310 §3.4, TS 33.203 §6.3: the UE's SQN is out of range.
            let rand = found
                .and_then(|i| st.challenges.get(i))
                .and_then(|c| c.rand)
                .or_else(|| Nonce::parse(&nonce).ok().map(|n| n.rand));
            let auts = Auts::from_base64(auts);
            match (rand, auts) {
                (Some(rand), Ok(auts)) => {
                    if let Some(i) = found {
                        st.challenges.remove(i);
                    }
                    st.spare.clear();
                    self.event(
                        now,
                        Some(&p.impi),
                        Some(&p.impu),
                        "aka-resync",
                        Outcome::Info,
                        Some("UE reported a synchronisation failure (AUTS): asking the HSS to resynchronise".into()),
                    );
                    let item = SipAuthDataItem {
                        authorization: Some(bytes::Bytes::copy_from_slice(&resync_authorization(
                            &rand, &auts,
                        ))),
                        ..SipAuthDataItem::with_scheme(
                            p.algorithm.unwrap_or(self.s.default_scheme).cx_name(),
                        )
                    };
                    let scheme = Some(p.algorithm.unwrap_or(self.s.default_scheme));
                    self.send_mar(now, p, item, scheme, true);
                }
                _ => {
                    self.refuse_register(
                        now,
                        &p,
                        "aka-resync",
                        Some("auts is malformed or answers no challenge we know".into()),
                        StatusCode::FORBIDDEN,
                        Some("Malformed AUTS"),
                    );
                }
            }
            return;
        }
        let Some(i) = found else {
            let (stale, why) = if expired_but_right {
                let why = format!(
                    "nonce older than its lifetime of {} s: a fresh challenge with stale=TRUE",
                    lifetime.as_secs()
                );
                (Stale::Expired, why)
            } else {
                let why = "unknown nonce (expired or from before a restart): challenging again";
                (Stale::Unknown, why.to_owned())
            };
            self.event(
                now,
                Some(&p.impi),
                Some(&p.impu),
                "auth-response",
                Outcome::Info,
                Some(why),
            );
            self.new_challenge(now, PendingRegister { stale, ..p });
            return;
        };
        let (scheme, verdict) = {
            let Some(ch) = st.challenges.get_mut(i) else {
                return;
            };
            if ch.scheme.is_aka() && creds.response() == Some("") {
                (ch.scheme, None)
            } else {
                let method = "REGISTER";
                (ch.scheme, Some(ch.verify(&creds, method, p.msg.body())))
            }
        };
        match verdict {
            None => {
                // TS 24.229 §5.4.1.2.3: an empty response without auts means the UE could not
                // authenticate the network (MAC failure).
                st.challenges.remove(i);
                self.refuse_register(now, &p, "auth-response", Some("the UE rejected the network's AUTN (MAC failure): K or OP/OPc on the SIM differ from the HSS".into()), StatusCode::FORBIDDEN, Some("Network authentication failed"));
            }
            Some(Verdict::Ok) => {
                st.failures = 0;
                // Keep the answered challenge alone (its nonce may serve refreshes), in as
                // little memory as a registered phone needs.
                if let Some(ch) = st.challenges.remove(i) {
                    st.challenges = std::collections::VecDeque::from([ch]);
                }
                self.event(
                    now,
                    Some(&p.impi),
                    Some(&p.impu),
                    "auth-response",
                    Outcome::Ok,
                    Some(format!("{scheme} response verified")),
                );
                self.authorized(now, p);
            }
            Some(Verdict::Replayed) => {
                self.event(
                    now,
                    Some(&p.impi),
                    Some(&p.impu),
                    "auth-response",
                    Outcome::Info,
                    Some("nonce count already used: challenging again".into()),
                );
                self.new_challenge(
                    now,
                    PendingRegister {
                        stale: Stale::Unknown,
                        ..p
                    },
                );
            }
            Some(v) => {
                st.challenges.remove(i);
                st.failures += 1;
                let failures = st.failures;
                let why = match v {
                    Verdict::Malformed(m) => format!("malformed credentials: {m}"),
                    _ if scheme.is_aka() => "wrong AKA response: RES does not match XRES (wrong K/OP on the SIM, or a client bug such as SIPp 3.6.1 cutting RES at a 0x00 byte)".to_owned(),
                    _ => "wrong digest response: wrong password".to_owned(),
                };
                self.event(
                    now,
                    Some(&p.impi),
                    Some(&p.impu),
                    "auth-response",
                    Outcome::Failed,
                    Some(format!(
                        "{why} (failure {failures} of {})",
                        self.s.max_auth_failures
                    )),
                );
                if failures >= self.s.max_auth_failures {
                    if let Some(st) = self.auth.get_mut(&p.impi) {
                        st.failures = 0;
                        st.challenges.clear();
                    }
                    let r = respond(&p.msg, StatusCode::FORBIDDEN, Some("Authentication failed"));
                    self.decide(p.req, Decision::Respond(r));
                } else {
                    self.new_challenge(now, p);
                }
            }
        }
    }

    /// Sends a 401 with a fresh challenge: from a spare vector, else after a MAR.
    fn new_challenge(&mut self, now: Now, p: PendingRegister) {
        let wanted = p.algorithm;
        let spare = self.auth.get_mut(&p.impi).and_then(|st| {
            let i = st.spare.iter().position(|it| {
                it.authentication_scheme
                    .as_deref()
                    .and_then(Scheme::from_cx)
                    .is_some_and(|s| wanted.is_none_or(|w| w == s))
            })?;
            st.spare.remove(i)
        });
        if let Some(item) = spare {
            self.challenge_with(now, p, &item);
            return;
        }
        let scheme_name = wanted.map_or(SipAuthDataItem::SCHEME_UNKNOWN, Scheme::cx_name);
        self.send_mar(
            now,
            p,
            SipAuthDataItem::with_scheme(scheme_name),
            wanted,
            false,
        );
    }

    fn send_mar(
        &mut self,
        _now: Now,
        p: PendingRegister,
        item: SipAuthDataItem,
        scheme: Option<Scheme>,
        resync: bool,
    ) {
        let mar = Mar {
            session_id: self.session_id(),
            origin_host: self.s.origin.host.clone(),
            origin_realm: self.s.origin.realm.clone(),
            destination_host: self.s.hss_host.clone(),
            destination_realm: self.s.hss_realm.clone(),
            user_name: p.impi.clone(),
            supported_features: Vec::new(),
            public_identity: p.impu.clone(),
            sip_auth_data_item: item,
            sip_number_auth_items: self.s.auth_vectors,
            server_name: self.s.uri.clone(),
            extra: Vec::new(),
            proxy_info: Vec::new(),
            route_record: Vec::new(),
        };
        self.cx(
            Task::Mar {
                reg: Box::new(p),
                scheme,
                resync,
            },
            CxOut::Mar(Box::new(mar)),
        );
    }

    fn challenge_with(&mut self, now: Now, p: PendingRegister, item: &SipAuthDataItem) {
        let stale = p.stale;
        let fresh = (self.rand)();
        match auth::challenge(item, &p.impi, &self.s.home_realm, fresh, now.at) {
            Ok(issued) => {
                let scheme = issued.challenge.scheme;
                let st = self.auth.entry(p.impi.clone()).or_default();
                st.challenges.push_back(issued.challenge);
                while st.challenges.len() > MAX_CHALLENGES {
                    st.challenges.pop_front();
                }
                let tag = self.token();
                let mut r = match p.msg.response(StatusCode::UNAUTHORIZED, Some(&tag)) {
                    Ok(r) => r,
                    Err(_) => Message::new_response(StatusCode::UNAUTHORIZED, None),
                };
                let mut www = issued.www_authenticate;
                if stale == Stale::Expired || (stale == Stale::Unknown && !scheme.is_aka()) {
                    www.push_str(", stale=TRUE");
                }
                let _ = r.push_header(HeaderName::WWW_AUTHENTICATE, www);
                self.event(
                    now,
                    Some(&p.impi),
                    Some(&p.impu),
                    "challenge",
                    Outcome::Ok,
                    Some(format!("401 with a {scheme} challenge")),
                );
                self.decide(p.req, Decision::Respond(r));
            }
            Err(e) => {
                self.refuse_register(
                    now,
                    &p,
                    "challenge",
                    Some(e.to_string()),
                    StatusCode::SERVER_INTERNAL_ERROR,
                    Some("Unusable authentication vector from the HSS"),
                );
            }
        }
    }

    /// An MAA, an SAA, or the failure to get one, for `task`.
    pub fn handle_cx_answer(&mut self, now: Now, task: TaskId, reply: CxReply) {
        let Some(t) = self.tasks.remove(&task) else {
            return;
        };
        match t {
            Task::Mar {
                reg,
                scheme,
                resync,
            } => self.on_maa(now, *reg, scheme, resync, reply),
            Task::Sar {
                kind,
                reg,
                impu,
                impi,
            } => self.on_saa(now, kind, reg.map(|r| *r), impu, impi, reply),
            Task::SarUnregistered {
                req,
                msg,
                impu,
                called,
            } => self.on_unregistered_saa(now, req, *msg, impu, called, reply),
            // ENUM answers come through handle_enum_answer.
            t @ Task::Enum { .. } => {
                self.tasks.insert(task, t);
            }
        }
    }

    fn on_maa(
        &mut self,
        now: Now,
        p: PendingRegister,
        scheme: Option<Scheme>,
        resync: bool,
        reply: CxReply,
    ) {
        let maa: Maa = match reply {
            CxReply::Maa(m) => *m,
            CxReply::Failed(why) => {
                self.refuse_register(
                    now,
                    &p,
                    "mar",
                    Some(format!("no MAA from the HSS: {why}")),
                    StatusCode::SERVER_TIMEOUT,
                    Some("HSS not reachable"),
                );
                return;
            }
            CxReply::Saa(_) => {
                let r = respond(&p.msg, StatusCode::SERVER_INTERNAL_ERROR, None);
                self.decide(p.req, Decision::Respond(r));
                return;
            }
        };
        if !maa.result.is_success() {
            let refused_unknown = scheme.is_none()
                && maa.result
                    == CxResult::experimental(Exp::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED);
            if refused_unknown {
                // The HSS would not pick the scheme: ask for the configured default.
                let s = self.s.default_scheme;
                self.send_mar(
                    now,
                    p,
                    SipAuthDataItem::with_scheme(s.cx_name()),
                    Some(s),
                    resync,
                );
                return;
            }
            let (code, phrase, why) = cx_failure(&maa.result, "MAR");
            self.event(
                now,
                Some(&p.impi),
                Some(&p.impu),
                if resync { "aka-resync" } else { "mar" },
                Outcome::Failed,
                Some(why),
            );
            let r = respond(&p.msg, code, Some(phrase));
            self.decide(p.req, Decision::Respond(r));
            return;
        }
        let mut items = maa.sip_auth_data_items.into_iter();
        let Some(first) = items.next() else {
            self.refuse_register(
                now,
                &p,
                "mar",
                Some("MAA has no SIP-Auth-Data-Item".into()),
                StatusCode::SERVER_INTERNAL_ERROR,
                Some("No authentication vector"),
            );
            return;
        };
        let st = self.auth.entry(p.impi.clone()).or_default();
        st.spare.extend(items);
        let scheme_name = first.authentication_scheme.clone().unwrap_or_default();
        self.event(
            now,
            Some(&p.impi),
            Some(&p.impu),
            if resync { "aka-resync" } else { "mar" },
            Outcome::Ok,
            Some(format!("MAA with a {scheme_name} vector")),
        );
        self.challenge_with(now, p, &first);
    }

    /// The REGISTER is authenticated: decide the SAR type.
    fn authorized(&mut self, now: Now, p: PendingRegister) {
        let registered = self.aors.contains_key(&p.impu);
        let Some(contacts) = p.contacts.as_ref() else {
            // Contact: * with Expires: 0.
            if registered {
                self.start_sar(now, SarKind::UserDeregistration, Some(p), None, None);
            } else {
                let r = self.ok_response(now, &p, None);
                self.decide(p.req, Decision::Respond(r));
            }
            return;
        };
        if contacts.is_empty() {
            // A query (RFC 3261 §10.2.3): the current bindings, no SAR.
            let r = self.ok_response(now, &p, self.aors.get(&p.impu).cloned().as_ref());
            self.decide(p.req, Decision::Respond(r));
            return;
        }
        let remaining = self.preview(&p);
        match (registered, remaining) {
            (false, 0) => {
                let r = self.ok_response(now, &p, None);
                self.decide(p.req, Decision::Respond(r));
            }
            (false, _) => self.start_sar(now, SarKind::Registration, Some(p), None, None),
            (true, 0) => self.start_sar(now, SarKind::UserDeregistration, Some(p), None, None),
            (true, _) => self.start_sar(now, SarKind::ReRegistration, Some(p), None, None),
        }
    }

    /// How many bindings the registration would have after `p`.
    fn preview(&self, p: &PendingRegister) -> usize {
        let existing: Vec<String> = self
            .aors
            .get(&p.impu)
            .map(|a| a.contacts.iter().map(|c| c.binding.key()).collect())
            .unwrap_or_default();
        let Some(cs) = &p.contacts else { return 0 };
        let mut keys = existing;
        for c in cs {
            let k = c.key();
            keys.retain(|x| *x != k);
            if c.expires > 0 {
                keys.push(k);
            }
        }
        keys.len()
    }

    pub(super) fn start_sar(
        &mut self,
        _now: Now,
        kind: SarKind,
        p: Option<PendingRegister>,
        impu: Option<Impu>,
        impi: Option<Impi>,
    ) {
        let (impu, impi) = match (&p, impu, impi) {
            (Some(p), _, _) => (p.impu.clone(), p.impi.clone()),
            (None, Some(u), Some(i)) => (u, i),
            _ => return,
        };
        let have_data = self.aors.get(&impu).is_some_and(|a| a.user_data.is_some());
        let sar = Sar {
            session_id: self.session_id(),
            origin_host: self.s.origin.host.clone(),
            origin_realm: self.s.origin.realm.clone(),
            destination_host: self.s.hss_host.clone(),
            destination_realm: self.s.hss_realm.clone(),
            user_name: Some(impi.clone()),
            supported_features: Vec::new(),
            public_identities: vec![impu.clone()],
            wildcarded_public_identity: None,
            server_name: self.s.uri.clone(),
            server_assignment_type: kind.code(),
            user_data_already_available: if have_data && kind == SarKind::ReRegistration {
                UserDataAlreadyAvailable::USER_DATA_ALREADY_AVAILABLE
            } else {
                UserDataAlreadyAvailable::USER_DATA_NOT_AVAILABLE
            },
            scscf_restoration_info: None,
            multiple_registration_indication: None,
            session_priority: None,
            sar_flags: None,
            failed_pcscf: None,
            extra: Vec::new(),
            proxy_info: Vec::new(),
            route_record: Vec::new(),
        };
        self.cx(
            Task::Sar {
                kind,
                reg: p.map(Box::new),
                impu,
                impi,
            },
            CxOut::Sar(Box::new(sar)),
        );
    }

    fn on_saa(
        &mut self,
        now: Now,
        kind: SarKind,
        p: Option<PendingRegister>,
        impu: Impu,
        impi: Impi,
        reply: CxReply,
    ) {
        let saa: Option<Saa> = match reply {
            CxReply::Saa(s) => Some(*s),
            CxReply::Failed(why) => {
                self.event(
                    now,
                    Some(&impi),
                    Some(&impu),
                    "sar",
                    Outcome::Failed,
                    Some(format!("{}: no SAA from the HSS: {why}", kind.name())),
                );
                None
            }
            CxReply::Maa(_) => None,
        };
        let ok = saa.as_ref().is_some_and(|s| s.result.is_success());
        if let Some(s) = &saa {
            if ok {
                self.event(
                    now,
                    Some(&impi),
                    Some(&impu),
                    "sar",
                    Outcome::Ok,
                    Some(format!("SAA for {}", kind.name())),
                );
            } else {
                let (_, _, why) = cx_failure(&s.result, "SAR");
                self.event(
                    now,
                    Some(&impi),
                    Some(&impu),
                    "sar",
                    Outcome::Failed,
                    Some(format!("{}: {why}", kind.name())),
                );
            }
        }
        match kind {
            SarKind::Registration | SarKind::ReRegistration => {
                let Some(p) = p else { return };
                if !ok {
                    let (code, phrase) = match &saa {
                        Some(s) => {
                            let (c, ph, _) = cx_failure(&s.result, "SAR");
                            (c, ph)
                        }
                        None => (StatusCode::SERVER_TIMEOUT, "HSS not reachable"),
                    };
                    let r = respond(&p.msg, code, Some(phrase));
                    self.decide(p.req, Decision::Respond(r));
                    return;
                }
                self.complete_registration(now, p, saa);
            }
            SarKind::UserDeregistration => {
                let Some(p) = p else { return };
                // The UE is de-registered whatever the HSS said (TS 24.229 §5.4.1.4).
                self.complete_registration(now, p, None);
            }
            SarKind::TimeoutDeregistration | SarKind::AdministrativeDeregistration => {}
        }
    }

    /// Applies the REGISTER's bindings after a successful SAA (or a user de-registration),
    /// answers 200, NOTIFYs and sends third-party REGISTERs.
    fn complete_registration(&mut self, now: Now, p: PendingRegister, saa: Option<Saa>) {
        let initial = !self.aors.contains_key(&p.impu);
        if let Some(saa) = &saa {
            let profile = match saa.user_data.as_ref() {
                Some(ud) => {
                    let text = String::from_utf8_lossy(ud).into_owned();
                    match ImsSubscription::parse(&text) {
                        Ok(prof) => Some((text, prof)),
                        Err(e) => {
                            self.refuse_register(
                                now,
                                &p,
                                "sar",
                                Some(e.to_string()),
                                StatusCode::SERVER_INTERNAL_ERROR,
                                Some("Unusable User-Data"),
                            );
                            return;
                        }
                    }
                }
                None => None,
            };
            if initial && profile.is_none() {
                self.refuse_register(
                    now,
                    &p,
                    "sar",
                    Some("SAA for a registration carries no User-Data".into()),
                    StatusCode::SERVER_INTERNAL_ERROR,
                    Some("No user profile"),
                );
                return;
            }
            if let Some((text, prof)) = &profile
                && prof
                    .identities()
                    .any(|i| i.barred && i.identity.eq_ignore_ascii_case(p.impu.as_str()))
            {
                // TS 24.229 §5.4.1.2.1: a barred identity cannot be registered.
                let _ = text;
                self.refuse_register(
                    now,
                    &p,
                    "register",
                    Some("the public identity is barred".into()),
                    StatusCode::FORBIDDEN,
                    Some("Public identity barred"),
                );
                return;
            }
            let charging = saa.charging_information.as_ref().map(|c| ChargingInfo {
                ccf_primary: c
                    .primary_charging_collection_function_name
                    .as_ref()
                    .map(ToString::to_string),
                ccf_secondary: c
                    .secondary_charging_collection_function_name
                    .as_ref()
                    .map(ToString::to_string),
                ecf_primary: c
                    .primary_event_charging_function_name
                    .as_ref()
                    .map(ToString::to_string),
                ecf_secondary: c
                    .secondary_event_charging_function_name
                    .as_ref()
                    .map(ToString::to_string),
            });
            // What the store holds for it: an unchanged registration is not written again.
            let stored = self.aors.get(&p.impu).map(Aor::record);
            let aor = self.aors.entry(p.impu.clone()).or_insert_with(|| Aor {
                impi: p.impi.clone(),
                impu: p.impu.clone(),
                implicit: Vec::new(),
                user_data: None,
                profile: None,
                charging: None,
                contacts: Vec::new(),
                timer_at: None,
            });
            aor.impi = p.impi.clone();
            if let Some((text, prof)) = profile {
                let implicit: Vec<(Impu, bool)> = prof
                    .identities()
                    .filter_map(|i| Impu::new(i.identity.clone()).ok().map(|u| (u, i.barred)))
                    .collect();
                aor.implicit = if implicit.is_empty() {
                    vec![(p.impu.clone(), false)]
                } else {
                    implicit
                };
                aor.user_data = Some(text);
                aor.profile = prof.with_ifcs();
            }
            if charging.is_some() {
                aor.charging = charging;
            }
            let record = aor.record();
            self.index_record(&record);
            if stored.as_ref() != Some(&record) {
                self.persist(Persist::PutRegistration(record));
            }
        }
        let Some(aor) = self.aors.get_mut(&p.impu) else {
            let r = self.ok_response(now, &p, None);
            self.decide(p.req, Decision::Respond(r));
            return;
        };
        // RFC 3261 §10.3 step 7, RFC 5626 §6: merge the bindings.
        let mut changed: Vec<(Contact, bool)> = Vec::new();
        let mut terminated: Vec<(Contact, ContactEvent)> = Vec::new();
        let mut added = 0usize;
        let reqs: Vec<ReqContact> = match &p.contacts {
            Some(cs) => cs.clone(),
            None => Vec::new(),
        };
        if p.contacts.is_none() {
            for c in std::mem::take(&mut aor.contacts) {
                terminated.push((c, ContactEvent::Unregistered));
            }
        }
        for rc in &reqs {
            let key = rc.key();
            let pos = aor.contacts.iter().position(|c| c.binding.key() == key);
            if let Some(i) = pos
                && let Some(old) = aor.contacts.get(i)
                && old.binding.call_id == p.call_id
                && i64::from(p.cseq) <= old.binding.cseq
            {
                // RFC 3261 §10.3 step 7: an out-of-order REGISTER.
                let r = respond(
                    &p.msg,
                    StatusCode::SERVER_INTERNAL_ERROR,
                    Some("Out of order REGISTER"),
                );
                self.decide(p.req, Decision::Respond(r));
                return;
            }
            if rc.expires == 0 {
                if let Some(i) = pos {
                    let c = aor.contacts.remove(i);
                    terminated.push((c, ContactEvent::Unregistered));
                }
                continue;
            }
            let expires = now.at + Duration::from_secs(u64::from(rc.expires));
            let binding = Binding {
                impu: p.impu.clone(),
                impi: p.impi.clone(),
                contact: rc.uri.clone(),
                expires_at: now.wall_in(expires),
                q_milli: rc.q_milli,
                path: p.path.clone(),
                instance_id: rc.instance.clone(),
                reg_id: rc.reg_id,
                call_id: p.call_id.clone(),
                cseq: i64::from(p.cseq),
                pcscf_flow: None,
                received: p.source.map(|s| s.to_string()),
                user_agent: p.user_agent.clone(),
                contact_params: rc.params.clone(),
            };
            let contact = Contact {
                binding,
                expires,
                registered: now.at,
            };
            match pos {
                Some(i) => {
                    if let Some(slot) = aor.contacts.get_mut(i) {
                        *slot = contact.clone();
                    }
                }
                None => {
                    added += 1;
                    aor.contacts.push(contact.clone());
                }
            }
            changed.push((contact, pos.is_some()));
        }
        let remaining = aor.contacts.len();
        let next = aor.contacts.iter().map(|c| c.expires).min();
        let aor_snapshot = aor.clone();
        for (c, _) in &terminated {
            self.persist(Persist::RemoveBinding {
                impu: p.impu.clone(),
                key: c.binding.key(),
            });
        }
        for (c, _) in &changed {
            self.persist(Persist::PutBinding(c.binding.clone()));
        }
        if next.is_some() {
            self.schedule(now, &p.impu);
        }
        if remaining == 0 {
            let r = self.ok_response(now, &p, None);
            self.decide(p.req, Decision::Respond(r));
            self.event(
                now,
                Some(&p.impi),
                Some(&p.impu),
                "deregistered",
                Outcome::Ok,
                Some("de-registered by the UE".into()),
            );
            self.third_party(now, &aor_snapshot, Some(&p.msg), 2, 0);
            self.end_registration(now, &p.impu, &terminated, None);
            if saa.is_some() {
                // A UE that de-registered its last contact in a refresh (RFC 3261 §10.2.2).
                self.start_sar(
                    now,
                    SarKind::UserDeregistration,
                    None,
                    Some(p.impu.clone()),
                    Some(p.impi.clone()),
                );
            }
            return;
        }
        let r = self.ok_response(now, &p, Some(&aor_snapshot));
        self.decide(p.req, Decision::Respond(r));
        let (step, text) = if initial {
            (
                "registered",
                format!("registered with {remaining} contact(s)"),
            )
        } else if added > 0 {
            (
                "re-registered",
                format!("{added} contact(s) added, {remaining} in all"),
            )
        } else {
            (
                "re-registered",
                format!("refreshed, {remaining} contact(s)"),
            )
        };
        self.event(
            now,
            Some(&p.impi),
            Some(&p.impu),
            step,
            Outcome::Ok,
            Some(text),
        );
        let mut events: Vec<(Contact, ContactEvent)> = terminated;
        for (c, existed) in changed {
            let ev = if existed {
                ContactEvent::Refreshed
            } else {
                ContactEvent::Registered
            };
            events.push((c, ev));
        }
        self.notify_all(now, &p.impu, &events, None);
        let expires = aor_snapshot
            .contacts
            .iter()
            .map(|c| c.expires.saturating_duration_since(now.at).as_secs())
            .max()
            .unwrap_or(0);
        self.third_party(
            now,
            &aor_snapshot,
            Some(&p.msg),
            i64::from(!initial),
            expires,
        );
    }

    /// The 200 OK to a REGISTER (TS 24.229 §5.4.1.2.2): Contact bindings with expiry, Path
    /// echoed, Service-Route, P-Associated-URI, P-Charging-Function-Addresses.
    fn ok_response(&mut self, now: Now, p: &PendingRegister, aor: Option<&Aor>) -> Message {
        let tag = self.token();
        let Ok(mut r) = p.msg.response(StatusCode::OK, Some(&tag)) else {
            return Message::new_response(StatusCode::OK, None);
        };
        if let Some(a) = aor {
            for c in &a.contacts {
                let left = c.expires.saturating_duration_since(now.at).as_secs();
                let _ = r.push_header(
                    HeaderName::CONTACT,
                    format!("{};expires={left}", contact_text(&c.binding)),
                );
            }
        }
        for v in &p.path {
            let _ = r.push_header(HeaderName::PATH, v.clone());
        }
        if aor.is_some() {
            let _ = r.push_header(HeaderName::SERVICE_ROUTE, self.s.service_route.clone());
        }
        if let Some(a) = aor {
            let uris: Vec<String> = a.associated().iter().map(|i| format!("<{i}>")).collect();
            let _ = r.push_header(HeaderName::P_ASSOCIATED_URI, uris.join(", "));
            if let Some(ch) = &a.charging
                && !ch.is_empty()
            {
                let mut parts = Vec::new();
                for v in [&ch.ccf_primary, &ch.ccf_secondary].into_iter().flatten() {
                    parts.push(format!("ccf=\"{v}\""));
                }
                for v in [&ch.ecf_primary, &ch.ecf_secondary].into_iter().flatten() {
                    parts.push(format!("ecf=\"{v}\""));
                }
                let _ = r.push_header(HeaderName::P_CHARGING_FUNCTION_ADDRESSES, parts.join(";"));
            }
        }
        r
    }
}

/// Maps a Cx failure to the SIP answer (TS 24.229 §5.4.1.2.1, §5.4.1.2.2) and a reason.
pub(super) fn cx_failure(result: &CxResult, command: &str) -> (StatusCode, &'static str, String) {
    let text = match result {
        CxResult::Base(c) => format!("{command} refused: Result-Code {}", c.0),
        CxResult::Experimental { code, .. } => {
            format!("{command} refused: Experimental-Result-Code {}", code.0)
        }
    };
    let (code, phrase, hint) = match result {
        CxResult::Experimental { code, .. } => match *code {
            Exp::DIAMETER_ERROR_USER_UNKNOWN => (
                StatusCode::FORBIDDEN,
                "User unknown",
                " (user unknown in the HSS)",
            ),
            Exp::DIAMETER_ERROR_IDENTITIES_DONT_MATCH => (
                StatusCode::FORBIDDEN,
                "Identities do not match",
                " (IMPI and IMPU do not belong together)",
            ),
            Exp::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED => (
                StatusCode::FORBIDDEN,
                "Authentication scheme not supported",
                " (scheme not provisioned for this user)",
            ),
            Exp::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED => {
                (StatusCode::FORBIDDEN, "Identity not registered", "")
            }
            Exp::DIAMETER_ERROR_IN_ASSIGNMENT_TYPE => (
                StatusCode::SERVER_INTERNAL_ERROR,
                "Server assignment refused",
                "",
            ),
            _ => (StatusCode::SERVER_INTERNAL_ERROR, "HSS error", ""),
        },
        CxResult::Base(c) => match *c {
            ResultCode::DIAMETER_AUTHENTICATION_REJECTED => (
                StatusCode::FORBIDDEN,
                "Authentication rejected",
                " (the HSS rejected the AUTS: K/OPc mismatch?)",
            ),
            ResultCode::DIAMETER_AUTHORIZATION_REJECTED => {
                (StatusCode::FORBIDDEN, "Authorization rejected", "")
            }
            _ => (StatusCode::SERVER_INTERNAL_ERROR, "HSS error", ""),
        },
    };
    (code, phrase, format!("{text}{hint}"))
}

fn c_expires(a: &imslab_sip::NameAddr<'_>) -> Result<Option<u32>, ()> {
    match a.params.value("expires") {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(|e| Some(u32::try_from(e).unwrap_or(u32::MAX)))
            .map_err(|_| ()),
    }
}
