//! The reg-event notifier (RFC 3680, RFC 6665, TS 24.229 §5.4.2.1) and third-party
//! registration (TS 24.229 §5.4.1.7).

use std::cmp::Reverse;
use std::time::Duration;

use imslab_sip::header::Event as SipEvent;
use imslab_sip::proxy::Decision;
use imslab_sip::{HeaderName, Message, Method, StatusCode, Uri};
use imslab_store::{RegSubscription, SubscriptionRole};
use imslab_types::{Impu, Outcome};

use super::register::respond;
use super::{
    Aor, Contact, JobId, JobKind, Now, Persist, Registrar, ReqId, Sub, TimerKey, stable_id,
};
use crate::ifc::RequestFacts;
use crate::reg_event::{
    CONTENT_TYPE, ContactEvent, ContactInfo, RegistrationInfo, RegistrationState, reginfo,
};

/// RFC 3680 §5.1: the default subscription duration.
const DEFAULT_SUBSCRIPTION: u32 = 3761;
/// 489 Bad Event (RFC 6665 §8.3.2).
const BAD_EVENT: u16 = 489;

fn uri_host(text: &str) -> Option<String> {
    let t = text.trim().trim_start_matches('<');
    let t = t.split('>').next().unwrap_or(t);
    let u = Uri::parse(t).ok()?;
    Some(u.as_sip()?.host.to_string().to_ascii_lowercase())
}

fn contact_params(c: &Contact) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    if let Some(i) = &c.binding.instance_id {
        out.push(("+sip.instance".to_owned(), Some(format!("<{i}>"))));
    }
    if let Some(r) = c.binding.reg_id {
        out.push(("reg-id".to_owned(), Some(r.to_string())));
    }
    for p in c
        .binding
        .contact_params
        .as_deref()
        .unwrap_or_default()
        .split(';')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
            None => (p.trim(), None),
        };
        if name.starts_with('+') && !name.eq_ignore_ascii_case("+sip.instance") {
            out.push((name.to_owned(), value));
        }
    }
    out
}

impl Registrar {
    /// The reginfo registrations of `aor` plus contacts just terminated (TS 24.229
    /// §5.4.2.1.2: every non-barred identity of the implicit set, each with all contacts).
    fn registration_infos(
        now: Now,
        aor: Option<&Aor>,
        key: &Impu,
        terminated: &[(Contact, ContactEvent)],
        changed: &[(Contact, ContactEvent)],
    ) -> Vec<RegistrationInfo> {
        let ids: Vec<Impu> = match aor {
            Some(a) => a.associated(),
            None => vec![key.clone()],
        };
        let mut contacts: Vec<ContactInfo> = Vec::new();
        if let Some(a) = aor {
            for c in &a.contacts {
                let event = changed
                    .iter()
                    .find(|(x, _)| x.binding.key() == c.binding.key())
                    .map_or(ContactEvent::Registered, |(_, e)| *e);
                contacts.push(ContactInfo {
                    id: stable_id('c', &c.binding.key()),
                    uri: c.binding.contact.clone(),
                    event,
                    expires: Some(c.expires.saturating_duration_since(now.at).as_secs()),
                    params: contact_params(c),
                });
            }
        }
        for (c, e) in terminated {
            contacts.push(ContactInfo {
                id: stable_id('c', &c.binding.key()),
                uri: c.binding.contact.clone(),
                event: *e,
                expires: None,
                params: contact_params(c),
            });
        }
        let active = aor.is_some_and(|a| !a.contacts.is_empty());
        ids.iter()
            .map(|i| RegistrationInfo {
                aor: i.to_string(),
                id: stable_id('r', i.as_str()),
                state: if active {
                    RegistrationState::Active
                } else {
                    RegistrationState::Terminated
                },
                contacts: contacts.clone(),
            })
            .collect()
    }

    /// NOTIFYs every subscription to the registration `key` with full state. `events` are
    /// the contacts this change touched and what happened to them; terminated ones are listed
    /// once more. `terminate` ends the subscriptions with that reason.
    pub(super) fn notify_all(
        &mut self,
        now: Now,
        key: &Impu,
        events: &[(Contact, ContactEvent)],
        terminate: Option<&str>,
    ) {
        let keys: Vec<(String, String)> = self
            .subs
            .iter()
            .filter(|(_, s)| self.alias.get(&s.rs.impu) == Some(key) || s.rs.impu == *key)
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            return;
        }
        let (terminated, changed): (Vec<_>, Vec<_>) =
            events.iter().cloned().partition(|(_, e)| e.terminates());
        let aor = self.aors.get(key).cloned();
        let infos = Self::registration_infos(now, aor.as_ref(), key, &terminated, &changed);
        for k in keys {
            self.notify_one(now, &k, &infos, terminate);
        }
    }

    fn notify_one(
        &mut self,
        now: Now,
        key: &(String, String),
        infos: &[RegistrationInfo],
        terminate: Option<&str>,
    ) {
        let Some(sub) = self.subs.get_mut(key) else {
            return;
        };
        sub.rs.version += 1;
        sub.rs.local_cseq += 1;
        let left = sub.expires.saturating_duration_since(now.at).as_secs();
        let state = match terminate {
            Some(reason) => format!("terminated;reason={reason}"),
            None => format!("active;expires={left}"),
        };
        let version = u64::try_from(sub.rs.version).unwrap_or(0);
        let body = reginfo(version, infos);
        let rs = sub.rs.clone();
        let mut m = Message::new_request(Method::Notify, rs.remote_target.clone());
        for r in &rs.route_set {
            let _ = m.push_header(HeaderName::ROUTE, r.clone());
        }
        let _ = m.push_header(HeaderName::MAX_FORWARDS, "70");
        let _ = m.push_header(
            HeaderName::FROM,
            format!("<{}>;tag={}", rs.impu, rs.local_tag),
        );
        let _ = m.push_header(
            HeaderName::TO,
            format!("<{}>;tag={}", rs.watcher, rs.remote_tag),
        );
        let _ = m.push_header(HeaderName::CALL_ID, rs.call_id.clone());
        let _ = m.push_header(HeaderName::CSEQ, format!("{} NOTIFY", rs.local_cseq));
        let _ = m.push_header(HeaderName::CONTACT, format!("<{}>", self.s.uri));
        let _ = m.push_header(HeaderName::EVENT, "reg");
        let _ = m.push_header(HeaderName::SUBSCRIPTION_STATE, state);
        let _ = m.set_body(Some(CONTENT_TYPE), body);
        let next_hop = rs
            .route_set
            .first()
            .cloned()
            .unwrap_or_else(|| rs.remote_target.clone());
        if terminate.is_some() {
            self.subs.remove(key);
            self.persist(Persist::RemoveSubscription {
                call_id: rs.call_id.clone(),
                local_tag: rs.local_tag.clone(),
            });
        } else {
            self.persist(Persist::PutSubscription(rs.clone()));
        }
        self.send(
            JobKind::Notify(rs.call_id.clone(), rs.local_tag.clone()),
            m,
            next_hop,
        );
    }

    /// Removes the registration `key` after its last contact went: NOTIFYs with every
    /// registration terminated, which also terminates the subscriptions (TS 24.229
    /// §5.4.2.1.2), and deletes it from the store.
    pub(super) fn end_registration(
        &mut self,
        now: Now,
        key: &Impu,
        terminated: &[(Contact, ContactEvent)],
        reason: Option<&str>,
    ) {
        let Some(aor) = self.aors.get_mut(key) else {
            return;
        };
        aor.contacts.clear();
        let snapshot = aor.clone();
        self.notify_all(now, key, terminated, Some(reason.unwrap_or("noresource")));
        self.unindex(&snapshot);
        self.aors.remove(key);
        self.persist(Persist::DeleteRegistration(key.clone()));
    }

    /// A SUBSCRIBE for the reg event (RFC 3680 §5, TS 24.229 §5.4.2.1.1).
    pub fn handle_subscribe(&mut self, now: Now, req: ReqId, msg: Message) {
        let reply = |this: &mut Self, r: Message| this.decide(req, Decision::Respond(r));
        let is_reg = msg
            .typed::<SipEvent<'_>>(&HeaderName::EVENT)
            .and_then(Result::ok)
            .is_some_and(|e| e.package.eq_ignore_ascii_case("reg"));
        if !is_reg {
            let mut r = respond(
                &msg,
                StatusCode::new(BAD_EVENT).unwrap_or(StatusCode::BAD_REQUEST),
                Some("Bad Event"),
            );
            let _ = r.push_header(HeaderName::ALLOW_EVENTS, "reg");
            reply(self, r);
            return;
        }
        let requested = match msg.expires() {
            Ok(e) => e.unwrap_or(DEFAULT_SUBSCRIPTION),
            Err(_) => {
                reply(
                    self,
                    respond(&msg, StatusCode::BAD_REQUEST, Some("Bad Expires")),
                );
                return;
            }
        };
        let expires = requested.min(self.s.reg_event_expires_max);
        let (call_id, from_tag, from_uri, to_tag, cseq) = match (
            msg.call_id(),
            msg.from_header(),
            msg.to_header(),
            msg.cseq(),
        ) {
            (Ok(c), Ok(f), Ok(t), Ok(s)) => (
                c.as_str().to_owned(),
                f.tag().map(str::to_owned),
                f.uri.to_string(),
                t.tag().map(str::to_owned),
                s.seq,
            ),
            _ => {
                reply(
                    self,
                    respond(
                        &msg,
                        StatusCode::BAD_REQUEST,
                        Some("Missing dialog headers"),
                    ),
                );
                return;
            }
        };
        let Some(from_tag) = from_tag else {
            reply(
                self,
                respond(&msg, StatusCode::BAD_REQUEST, Some("From has no tag")),
            );
            return;
        };
        if let Some(tag) = to_tag {
            self.refresh_subscription(now, req, &msg, (call_id, tag), cseq, expires);
            return;
        }
        let target = msg
            .request_uri_str()
            .and_then(|u| Uri::parse(u).ok())
            .and_then(|u| super::register::aor_of(&u));
        let Some(impu) = target.filter(|i| self.alias.contains_key(i)) else {
            self.event(
                now,
                None,
                target_ref(&msg).as_ref(),
                "reg-subscribe",
                Outcome::Failed,
                Some("SUBSCRIBE to reg for an identity not registered here".into()),
            );
            reply(
                self,
                respond(&msg, StatusCode::NOT_FOUND, Some("Not registered here")),
            );
            return;
        };
        let Some(aor) = self
            .alias
            .get(&impu)
            .and_then(|k| self.aors.get(k))
            .cloned()
        else {
            reply(
                self,
                respond(&msg, StatusCode::NOT_FOUND, Some("Not registered here")),
            );
            return;
        };
        // TS 24.229 §5.4.2.1.1: the UE (an identity of the set), its P-CSCF (on the Path) or
        // an AS of its profile may watch.
        let watcher_id = msg
            .typed_all::<imslab_sip::NameAddr<'_>>(&HeaderName::P_ASSERTED_IDENTITY)
            .filter_map(Result::ok)
            .map(|n| n.uri.to_string())
            .next()
            .unwrap_or_else(|| from_uri.clone());
        let watcher_aor = Uri::parse(&watcher_id)
            .ok()
            .and_then(|u| super::register::aor_of(&u));
        let in_set = watcher_aor
            .as_ref()
            .is_some_and(|w| aor.implicit.iter().any(|(i, _)| i == w) || *w == aor.impu);
        // The watcher's hosts: its asserted identity, From, and the sender of the SUBSCRIBE
        // (top Via sent-by and received).
        let mut hosts: Vec<String> = [uri_host(&watcher_id), uri_host(&from_uri)]
            .into_iter()
            .flatten()
            .collect();
        if let Ok(v) = msg.top_via() {
            hosts.push(v.host.to_string().to_ascii_lowercase());
            if let Some(r) = v.received() {
                hosts.push(r.to_string());
            }
        }
        let on_path = aor
            .contacts
            .iter()
            .flat_map(|c| c.binding.path.iter())
            .filter_map(|p| uri_host(p))
            .any(|x| hosts.contains(&x));
        let is_as = aor.profile.as_ref().is_some_and(|p| {
            p.profiles
                .iter()
                .flat_map(|sp| sp.ifcs.iter())
                .filter_map(|i| uri_host(&i.application_server.server_name))
                .any(|x| hosts.contains(&x))
        });
        if !(in_set || on_path || is_as) {
            self.event(
                now,
                Some(&aor.impi),
                Some(&impu),
                "reg-subscribe",
                Outcome::Failed,
                Some(format!(
                    "watcher {watcher_id} is neither the user, its P-CSCF nor its AS"
                )),
            );
            reply(
                self,
                respond(&msg, StatusCode::FORBIDDEN, Some("Not allowed to watch")),
            );
            return;
        }
        let Some(remote_target) = msg
            .contacts()
            .filter_map(Result::ok)
            .find_map(|c| c.addr().map(|a| a.uri.to_string()))
        else {
            reply(
                self,
                respond(
                    &msg,
                    StatusCode::BAD_REQUEST,
                    Some("SUBSCRIBE without Contact"),
                ),
            );
            return;
        };
        let local_tag = self.token();
        let route_set: Vec<String> = msg
            .values(&HeaderName::RECORD_ROUTE)
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
            .collect();
        let mut ok = match msg.response(StatusCode::OK, Some(&local_tag)) {
            Ok(r) => r,
            Err(_) => Message::new_response(StatusCode::OK, None),
        };
        for rr in &route_set {
            let _ = ok.push_header(HeaderName::RECORD_ROUTE, rr.clone());
        }
        let _ = ok.push_header(HeaderName::EXPIRES, expires.to_string());
        let _ = ok.push_header(HeaderName::CONTACT, format!("<{}>", self.s.uri));
        reply(self, ok);
        let exp_at = now.at + Duration::from_secs(u64::from(expires));
        let rs = RegSubscription {
            role: SubscriptionRole::Notifier,
            impu: impu.clone(),
            watcher: from_uri,
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: from_tag,
            local_cseq: 0,
            remote_cseq: i64::from(cseq),
            remote_target,
            route_set,
            version: -1,
            expires_at: now.wall_in(exp_at),
        };
        let key = (call_id, local_tag);
        self.subs.insert(
            key.clone(),
            Sub {
                rs,
                expires: exp_at,
            },
        );
        self.timers.push(Reverse((
            exp_at,
            TimerKey::Sub(key.0.clone(), key.1.clone()),
        )));
        self.event(
            now,
            Some(&aor.impi),
            Some(&impu),
            "reg-subscribe",
            Outcome::Ok,
            Some(format!("{watcher_id} subscribed for {expires} s")),
        );
        let infos = Self::registration_infos(now, Some(&aor), &aor.impu, &[], &[]);
        // RFC 6665 §4.2.1: a fetch (Expires: 0) gets one NOTIFY that ends it.
        let terminate = (expires == 0).then_some("timeout");
        self.notify_one(now, &key, &infos, terminate);
    }

    fn refresh_subscription(
        &mut self,
        now: Now,
        req: ReqId,
        msg: &Message,
        key: (String, String),
        cseq: u32,
        expires: u32,
    ) {
        let Some(sub) = self.subs.get_mut(&key) else {
            let r = respond(msg, StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST, None);
            self.decide(req, Decision::Respond(r));
            return;
        };
        sub.rs.remote_cseq = i64::from(cseq);
        sub.expires = now.at + Duration::from_secs(u64::from(expires));
        sub.rs.expires_at = now.wall_in(sub.expires);
        let exp_at = sub.expires;
        let impu = sub.rs.impu.clone();
        let mut ok = match msg.response(StatusCode::OK, None) {
            Ok(r) => r,
            Err(_) => Message::new_response(StatusCode::OK, None),
        };
        let _ = ok.push_header(HeaderName::EXPIRES, expires.to_string());
        let _ = ok.push_header(HeaderName::CONTACT, format!("<{}>", self.s.uri));
        self.decide(req, Decision::Respond(ok));
        self.timers.push(Reverse((
            exp_at,
            TimerKey::Sub(key.0.clone(), key.1.clone()),
        )));
        let aor_key = self.alias.get(&impu).cloned().unwrap_or(impu);
        let aor = self.aors.get(&aor_key).cloned();
        let infos = Self::registration_infos(now, aor.as_ref(), &aor_key, &[], &[]);
        // RFC 6665 §4.2.1.2: an unsubscribe (Expires: 0) gets a final NOTIFY.
        let terminate = (expires == 0).then_some("timeout");
        self.notify_one(now, &key, &infos, terminate);
    }

    /// A subscription's timer fired: if it really expired, a final NOTIFY
    /// (`terminated;reason=timeout`, RFC 6665 §4.2.2).
    pub(super) fn expire_subscription(&mut self, now: Now, call_id: &str, tag: &str) {
        let key = (call_id.to_owned(), tag.to_owned());
        let Some(sub) = self.subs.get(&key) else {
            return;
        };
        if sub.expires > now.at {
            return;
        }
        let impu = sub.rs.impu.clone();
        let aor_key = self.alias.get(&impu).cloned().unwrap_or(impu);
        let aor = self.aors.get(&aor_key).cloned();
        let infos = Self::registration_infos(now, aor.as_ref(), &aor_key, &[], &[]);
        self.notify_one(now, &key, &infos, Some("timeout"));
    }

    /// The final status of a request the core originated (`None` when it got no response:
    /// Timer F or a transport failure).
    pub fn handle_sent(&mut self, now: Now, job: JobId, status: Option<StatusCode>) {
        let Some(kind) = self.jobs.remove(&job) else {
            return;
        };
        let ok = status.is_some_and(|s| s.is_success());
        match kind {
            JobKind::Notify(call_id, tag) => {
                // RFC 6665 §4.1.2.4: a NOTIFY rejected with 481, or lost, ends the subscription.
                let gone = matches!(status.map(StatusCode::as_u16), None | Some(481 | 408 | 410));
                if gone && let Some(sub) = self.subs.remove(&(call_id.clone(), tag.clone())) {
                    self.event(
                        now,
                        None,
                        Some(&sub.rs.impu),
                        "reg-notify",
                        Outcome::Failed,
                        Some(format!(
                            "NOTIFY to {} {}: subscription removed",
                            sub.rs.watcher,
                            status.map_or_else(
                                || "got no response".to_owned(),
                                |s| format!("answered {s}")
                            )
                        )),
                    );
                    self.persist(Persist::RemoveSubscription {
                        call_id,
                        local_tag: tag,
                    });
                }
            }
            JobKind::ThirdParty {
                impu,
                default_handling,
                server,
            } => {
                let text = status.map_or_else(|| "no response".to_owned(), |s| s.to_string());
                let impi = self.aors.get(&impu).map(|a| a.impi.clone());
                self.event(
                    now,
                    impi.as_ref(),
                    Some(&impu),
                    "third-party-register",
                    if ok { Outcome::Ok } else { Outcome::Failed },
                    Some(format!("{server} answered {text}")),
                );
                if !ok && default_handling == 1 {
                    // TS 24.229 §5.4.1.7A: DefaultHandling SESSION_TERMINATED de-registers.
                    self.network_deregister(
                        now,
                        &impu,
                        ContactEvent::Deactivated,
                        "deactivated",
                        format!("AS {server} failed and its iFC says SESSION_TERMINATED"),
                    );
                }
            }
        }
    }

    /// Third-party REGISTERs for the iFCs the REGISTER triggers (TS 24.229 §5.4.1.7).
    /// `reg_type`: 0 initial, 1 re-, 2 de-registration; `expires`: the registration's.
    pub(super) fn third_party(
        &mut self,
        _now: Now,
        aor: &Aor,
        register: Option<&Message>,
        reg_type: i64,
        expires: u64,
    ) {
        let Some(sub) = &aor.profile else { return };
        let Some(profile) = sub.profile_of(aor.impu.as_str()) else {
            return;
        };
        let lookup = |name: &str| -> Vec<String> {
            match (HeaderName::new(name.to_owned()), register) {
                (Some(h), Some(r)) => r
                    .values(&h)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect(),
                _ => Vec::new(),
            }
        };
        let home_uri = format!("sip:{}", self.s.home_realm);
        let facts = RequestFacts {
            method: "REGISTER",
            request_uri: register
                .and_then(Message::request_uri_str)
                .unwrap_or(&home_uri),
            headers: &lookup,
            sdp: "",
            session_case: 0,
            registration_type: Some(reg_type),
            registered: true,
        };
        let hits: Vec<crate::ifc::ApplicationServer> = profile
            .matching(&facts)
            .into_iter()
            .map(|i| i.application_server.clone())
            .collect();
        for a in hits {
            let call_id = format!("{}@{}", self.token(), self.s.origin.host);
            let tag = self.token();
            let mut m = Message::new_request(Method::Register, a.server_name.clone());
            let _ = m.push_header(HeaderName::MAX_FORWARDS, "70");
            let _ = m.push_header(HeaderName::FROM, format!("<{}>;tag={tag}", self.s.uri));
            let _ = m.push_header(HeaderName::TO, format!("<{}>", aor.impu));
            let _ = m.push_header(HeaderName::CALL_ID, call_id);
            let _ = m.push_header(HeaderName::CSEQ, "1 REGISTER");
            let _ = m.push_header(HeaderName::CONTACT, format!("<{}>", self.s.uri));
            let _ = m.push_header(HeaderName::EXPIRES, expires.to_string());
            let _ = m.push_header(
                HeaderName::P_CHARGING_VECTOR,
                format!("icid-value={}", self.token()),
            );
            let mut parts: Vec<(&str, Vec<u8>)> = Vec::new();
            if let Some(si) = &a.service_info {
                let mut x = String::from(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ims-3gpp version=\"1\"><service-info>",
                );
                for ch in si.chars() {
                    match ch {
                        '&' => x.push_str("&amp;"),
                        '<' => x.push_str("&lt;"),
                        '>' => x.push_str("&gt;"),
                        c => x.push(c),
                    }
                }
                x.push_str("</service-info></ims-3gpp>");
                parts.push(("application/3gpp-ims+xml", x.into_bytes()));
            }
            if let (true, Some(r)) = (a.include_register_request, register) {
                parts.push(("message/sip", r.to_bytes().to_vec()));
            }
            match parts.len() {
                0 => {}
                1 => {
                    if let Some((ct, b)) = parts.pop() {
                        let _ = m.set_body(Some(ct), b);
                    }
                }
                _ => {
                    let boundary = format!("imslab-{}", self.token());
                    let mut body = Vec::new();
                    for (ct, b) in &parts {
                        body.extend_from_slice(
                            format!("--{boundary}\r\nContent-Type: {ct}\r\n\r\n").as_bytes(),
                        );
                        body.extend_from_slice(b);
                        body.extend_from_slice(b"\r\n");
                    }
                    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
                    let _ = m.set_body(Some(&format!("multipart/mixed;boundary={boundary}")), body);
                }
            }
            self.send(
                JobKind::ThirdParty {
                    impu: aor.impu.clone(),
                    default_handling: a.default_handling,
                    server: a.server_name.clone(),
                },
                m,
                a.server_name.clone(),
            );
        }
    }
}

fn target_ref(msg: &Message) -> Option<Impu> {
    msg.request_uri_str()
        .and_then(|u| Uri::parse(u).ok())
        .and_then(|u| super::register::aor_of(&u))
}
