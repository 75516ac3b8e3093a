//! Requests other than REGISTER and reg-event SUBSCRIBE: session routing (TS 24.229 §5.4.3).
//!
//! - Originating case (§5.4.3.2): an initial request whose P-Asserted-Identity is registered
//!   here and that arrived on the Service-Route's `orig` marker: a consumed Route to this
//!   S-CSCF with the user part `orig` or an `orig` parameter ([`Registrar::handle_request_routed`]
//!   gets those from the proxy core). Without that marker (a P-CSCF that does not send the
//!   Service-Route, or a caller of [`Registrar::handle_request`]), the fallback heuristic: the
//!   previous hop is the P-CSCF on that registration's Path. Originating iFCs (session case 0); then the callee is normalised (tel URI,
//!   `user=phone` and digit-only user parts become `tel:+…`, which an implicit set here may
//!   hold) and the request goes to `scscf.icscf` for a home callee (or straight to the
//!   terminating case when no I-CSCF is configured), to `scscf.breakout` for a number or
//!   domain outside the lab, else along its own next hop.
//! - Terminating case (§5.4.3.3): terminating iFCs (session case 1 registered, 2 without
//!   contacts), then one parallel fork (P-Called-Party-ID, Record-Route for
//!   dialog-creating methods) to the contacts, one per `+sip.instance`: each with its own
//!   binding's Path as Route when they sit behind different one-hop Paths
//!   ([`Registrar::fork_routes`], the proxy core's per-target Route sets), else those sharing
//!   the most recently registered contact's Path, which is the request's Route. No contact:
//!   480; an identity unknown here in the home domain: 404; a barred one: 404.
//! - iFC hand-off: the request goes to the AS with a Route back to this S-CSCF carrying an
//!   original dialog identifier (`odi-…`). The returning request is recognised by that token
//!   among the consumed Route values (so an AS acting as a B2BUA may change the dialog
//!   identifiers); without consumed routes, by its Call-ID, From tag and CSeq. The pending hand-off is kept for Timer C (180 s) at most,
//!   and at most [`MAX_LEGS`] are kept (the oldest goes first). An AS the S-CSCF has no
//!   address for (not an IP literal, not in `scscf.hosts`) has failed: DefaultHandling
//!   SESSION_CONTINUED skips it, SESSION_TERMINATED answers 500. For an AS with an address and
//!   SESSION_CONTINUED, the decision to continue without it is computed at hand-off time
//!   ([`Registrar::take_as_fallback`], for `imslab_sip_node::Decided::fallback`): the proxy
//!   core applies it when the AS does not answer (408: nothing but 100 within
//!   `scscf.as_timeout`, [`AS_TIMEOUT`] by default) or fails (5xx, transport error, an ICMP
//!   port unreachable over UDP). Limit: when that continuation needs a lookup (another AS hand-off,
//!   a SAR, ENUM, a relayed breakout) none is prepared and the failure goes upstream as
//!   before. With SESSION_TERMINATED the failure goes upstream.
//! - Requests inside a dialog, 2xx ACKs, unmatched CANCELs and requests with a Route left
//!   follow their route; the S-CSCF stays on the path by Record-Route. The only dialog state
//!   is the CSeq offset of breakout calls whose INVITE the S-CSCF re-sent with the trunk's
//!   credentials ([`crate::dialogs`], applied by the server to the decided request).
//!   Session-Expires and Min-SE (RFC 4028) pass through untouched.

use std::net::IpAddr;
use std::time::Duration;

use imslab_sip::header::Transport;
use imslab_sip::proxy::{Decision, ForkMode, RecordRoute, Target};
use imslab_sip::transaction::Peer;
use imslab_sip::{HeaderName, Host, Message, Method, NameAddr, StatusCode, Uri};
use imslab_types::{Impu, Outcome};

use std::sync::Arc;

use imslab_diameter::cx::Sar;
use imslab_diameter::enums::{ServerAssignmentType, UserDataAlreadyAvailable};

use super::register::{aor_of, respond};
use super::{CxOut, CxReply, Now, Output, Registrar, ReqId, Task};
use crate::ifc::{ApplicationServer, ImsSubscription, RequestFacts};

/// Most iFC hand-offs to application servers awaited at once.
pub const MAX_LEGS: usize = 4096;
/// Most profiles of unregistered identities kept (the oldest goes first).
pub const MAX_UNREGISTERED: usize = 1024;
/// How long a hand-off to an AS is awaited (Timer C, RFC 3261 §16.6 step 11).
pub const LEG_LIFETIME: Duration = Duration::from_secs(180);

/// The session case of a pending AS hand-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Case {
    Orig,
    Term,
}

/// A request handed to an AS, awaited back.
#[derive(Debug)]
pub(super) struct Leg {
    case: Case,
    /// The served identity: the asserted caller (originating) or the called AOR (terminating).
    served: Impu,
    /// Index of the next iFC to evaluate.
    next: usize,
    /// The Request-URI as the terminating case first received it (P-Called-Party-ID).
    called: Option<String>,
    /// Which hand-off this is (a newer one with the same key replaces it).
    seq: u64,
    /// The original dialog identifier in the Route back here (`odi-<token>`).
    odi: String,
    /// DefaultHandling SESSION_CONTINUED: the request as it continues without the AS, for
    /// [`Registrar::take_as_fallback`].
    fallback: Option<Box<Decision>>,
    /// The fallback went to the proxy core: the continuation without the AS may come back
    /// here (terminating, with the same Call-ID, From tag and CSeq), so only the ODI token
    /// recognises the AS's return.
    continued: bool,
}

/// Call-ID, From tag and CSeq number: what an AS acting as a proxy keeps.
pub(super) type LegKey = (String, String, u32);

fn leg_key(msg: &Message) -> Option<LegKey> {
    let call = msg.call_id().ok()?.as_str().to_owned();
    let tag = msg.from_header().ok()?.tag()?.to_owned();
    let seq = msg.cseq().ok()?.seq;
    Some((call, tag, seq))
}

/// What the consumed Route values naming this S-CSCF say (TS 24.229 §5.4.3.2, §5.4.3.4).
#[derive(Debug, Default)]
struct Markers {
    /// A Route with the user part `orig` or an `orig` parameter: the originating case.
    orig: bool,
    /// The token of an `odi-<token>` user part: an AS hand-off returning.
    odi: Option<String>,
}

fn markers<B: AsRef<[u8]>>(consumed: &[B]) -> Markers {
    let mut m = Markers::default();
    for raw in consumed {
        let Some(na) = std::str::from_utf8(raw.as_ref())
            .ok()
            .and_then(|t| NameAddr::parse_header(t, "Route").ok())
        else {
            continue;
        };
        let Some(sip) = na.uri.as_sip() else {
            continue;
        };
        let user = sip.user.as_deref().unwrap_or_default();
        if user.eq_ignore_ascii_case("orig") || sip.params.contains("orig") {
            m.orig = true;
        }
        if let Some(token) = user.strip_prefix("odi-").filter(|t| !t.is_empty()) {
            m.odi = Some(token.to_owned());
        }
    }
    m
}

/// The per-UE step for a method.
fn step_of(m: Option<&Method>) -> &'static str {
    match m {
        Some(Method::Invite) => "call",
        Some(Method::Message) => "message",
        _ => "session",
    }
}

/// A number in a URI: a tel URI, or a SIP URI with `user=phone` or a user part of digits
/// (visual separators allowed). Returned in global form `+…` (the lab's numbers are global).
fn number_of(uri: &Uri<'_>) -> Option<String> {
    let raw = match uri {
        Uri::Tel(t) => t.number.to_string(),
        Uri::Sip(s) => {
            let user = s.user.as_deref()?;
            let phone = s
                .params
                .value("user")
                .is_some_and(|v| v.eq_ignore_ascii_case("phone"));
            let digits = user
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | '(' | ')'))
                && user.chars().any(|c| c.is_ascii_digit());
            if !(phone || digits) {
                return None;
            }
            user.split(';').next().unwrap_or(user).to_owned()
        }
        Uri::Other(_) => return None,
    };
    let mut n: String = raw
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    if n.is_empty() || n[1..].contains('+') {
        return None;
    }
    if !n.starts_with('+') {
        n.insert(0, '+');
    }
    Some(n)
}

/// Host and port of the URI in a Path or Route value.
fn hop_of(value: &str) -> Option<(String, u16)> {
    let na = NameAddr::parse_header(value, "Path").ok()?;
    let sip = na.uri.as_sip()?;
    Some((sip.host.to_string(), sip.port_or_default()))
}

fn host_is(host: &str, port: u16, want: &(String, u16)) -> bool {
    let h = host.trim_matches(['[', ']']);
    let w = want.0.trim_matches(['[', ']']);
    port == want.1
        && (h.eq_ignore_ascii_case(w)
            || matches!((h.parse::<IpAddr>(), w.parse::<IpAddr>()), (Ok(a), Ok(b)) if a == b))
}

/// Where the callee of an originating request lies.
enum Callee {
    /// An identity of a registration here (its key).
    Served(Impu),
    /// The home domain, not registered here.
    Home,
    /// A number no registration here holds.
    Number(String),
    /// Another domain.
    Foreign,
}

impl Registrar {
    /// Whether the Request-URI names this S-CSCF (its URI's host and port, no user part).
    fn is_own_uri(&self, msg: &Message) -> bool {
        let (Some(ruri), Ok(own)) = (
            msg.request_uri_str().and_then(|u| Uri::parse(u).ok()),
            Uri::parse(&self.s.uri),
        ) else {
            return false;
        };
        match (ruri.as_sip(), own.as_sip()) {
            (Some(r), Some(o)) => {
                r.user.is_none()
                    && r.host.to_string().eq_ignore_ascii_case(&o.host.to_string())
                    && r.port_or_default() == o.port_or_default()
            }
            _ => false,
        }
    }

    /// Number of hand-offs to application servers awaited back.
    pub fn pending_as_legs(&self) -> usize {
        self.legs.len()
    }

    /// Entries of the hand-off expiry queue (bounded; for memory checks).
    pub fn as_leg_queue_len(&self) -> usize {
        self.leg_order.len()
    }

    /// Routes a request that is not a REGISTER nor a reg-event SUBSCRIBE (see the module
    /// documentation): the originating or terminating case for initial requests, the route
    /// for everything else. `stateless` marks an ACK for a 2xx.
    pub fn handle_request(&mut self, now: Now, req: ReqId, msg: Message, stateless: bool) {
        self.handle_request_routed(now, req, msg, stateless, &[] as &[&[u8]]);
    }

    /// [`Registrar::handle_request`] with the Route values naming this S-CSCF that the proxy
    /// core removed (`imslab_sip_node::Incoming::consumed_routes`): the `orig` marker makes
    /// an initial request from a registered caller originating, and an `odi-<token>` one
    /// matches the AS hand-off it returns from.
    pub fn handle_request_routed<B: AsRef<[u8]>>(
        &mut self,
        now: Now,
        req: ReqId,
        msg: Message,
        stateless: bool,
        consumed: &[B],
    ) {
        if !stateless && msg.routes().next().is_none() && self.is_own_uri(&msg) {
            // Addressed to the S-CSCF itself: OPTIONS is a keep-alive probe (RFC 3261 §11).
            let r = if msg.method() == Some(&Method::Options) {
                let mut ok = respond(&msg, StatusCode::OK, None);
                let _ = ok.push_header(
                    HeaderName::ALLOW,
                    "REGISTER, SUBSCRIBE, NOTIFY, INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, \
                     PRACK, UPDATE, INFO, REFER",
                );
                ok
            } else {
                respond(&msg, StatusCode::NOT_FOUND, Some("No such user here"))
            };
            self.decide(req, Decision::Respond(r));
            return;
        }
        self.prune_legs(now);
        let in_dialog = msg.to_header().ok().is_some_and(|t| t.tag().is_some());
        let initial = !stateless
            && !in_dialog
            && !matches!(msg.method(), Some(Method::Ack | Method::Cancel) | None)
            && msg.routes().next().is_none();
        if !initial {
            self.decide(req, Decision::forward(msg, Target::next_hop()));
            return;
        }
        let marks = markers(consumed);
        if let Some(leg) = self.returning_leg(&msg, marks.odi.as_deref()) {
            match leg.case {
                Case::Orig => self.originate(now, req, msg, leg.served, leg.next),
                Case::Term => self.terminate(now, req, msg, leg.next, leg.called, None),
            }
            return;
        }
        let served = if marks.orig {
            self.asserted_user(&msg)
        } else {
            self.originating_user(&msg)
        };
        if let Some(served) = served {
            self.originate(now, req, msg, served, 0);
            return;
        }
        self.terminate(now, req, msg, 0, None, None);
    }

    /// The pending AS hand-off a request returns from: the one with its ODI token when the
    /// consumed routes carry one (looked up by dialog identifiers first, then among all
    /// pending hand-offs, at most [`MAX_LEGS`]), else the one with its Call-ID, From tag and
    /// CSeq. Removed from the table.
    fn returning_leg(&mut self, msg: &Message, odi: Option<&str>) -> Option<Leg> {
        let key = leg_key(msg);
        let Some(token) = odi else {
            let k = key.filter(|k| self.legs.get(k).is_some_and(|l| !l.continued))?;
            return self.legs.remove(&k);
        };
        let key = match key.filter(|k| self.legs.get(k).is_some_and(|l| l.odi == token)) {
            Some(k) => k,
            None => self
                .legs
                .iter()
                .find(|(_, l)| l.odi == token)
                .map(|(k, _)| k.clone())?,
        };
        self.legs.remove(&key)
    }

    /// The first P-Asserted-Identity registered here.
    fn asserted_user(&self, msg: &Message) -> Option<Impu> {
        let served = msg
            .typed_all::<NameAddr<'_>>(&HeaderName::P_ASSERTED_IDENTITY)
            .filter_map(Result::ok)
            .find_map(|n| aor_of(&n.uri))?;
        self.alias.contains_key(&served).then_some(served)
    }

    /// Fallback when no `orig` marker came: the asserted identity of a request that came
    /// along the Service-Route, registered here, and the previous hop is the first Path entry
    /// (the P-CSCF) of one of its contacts, or the contact itself when it registered without
    /// Path.
    fn originating_user(&self, msg: &Message) -> Option<Impu> {
        let served = self.asserted_user(msg)?;
        let key = self.alias.get(&served)?;
        let aor = self.aors.get(key)?;
        let via = msg.top_via().ok()?;
        let sent_by = (via.host.to_string(), via.port_or_default());
        let source = via
            .received()
            .map(|ip| (ip.to_string(), via.rport().flatten().unwrap_or(sent_by.1)));
        let from_hop = |hop: &(String, u16)| {
            host_is(&sent_by.0, sent_by.1, hop)
                || source.as_ref().is_some_and(|(h, p)| host_is(h, *p, hop))
        };
        aor.contacts
            .iter()
            .any(|c| {
                let first = match c.binding.path.first() {
                    Some(p) => hop_of(p),
                    None => hop_of(&format!("<{}>", c.binding.contact)),
                };
                first.is_some_and(|h| from_hop(&h))
            })
            .then_some(served)
    }

    /// Forgets hand-offs older than [`LEG_LIFETIME`], and the oldest ones beyond
    /// [`MAX_LEGS`]; the expiry queue itself stays under twice that.
    fn prune_legs(&mut self, now: Now) {
        while let Some((at, key, seq)) = self.leg_order.front() {
            let live = self.legs.get(key).is_some_and(|l| l.seq == *seq);
            let over = self.legs.len() > MAX_LEGS || self.leg_order.len() > 2 * MAX_LEGS;
            if live && *at > now.at && !over {
                break;
            }
            if live {
                self.legs.remove(key);
            }
            self.leg_order.pop_front();
        }
    }

    /// The first iFC at index `from` or later of `served`'s profile that the request triggers.
    fn next_ifc(
        &self,
        served: &Impu,
        msg: &Message,
        session_case: i64,
        registered: bool,
        from: usize,
    ) -> Option<(usize, ApplicationServer)> {
        let sub = match self.alias.get(served).and_then(|k| self.aors.get(k)) {
            Some(a) => a.profile.as_ref()?,
            None => self.unregistered_profile(served)?,
        };
        let profile = sub.profile_of(served.as_str())?;
        let lookup = |name: &str| -> Vec<String> {
            HeaderName::new(name.to_owned())
                .map(|h| {
                    msg.values(&h)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let method = msg
            .method()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let is_sdp = msg
            .header_str(&HeaderName::CONTENT_TYPE)
            .and_then(Result::ok)
            .is_some_and(|c| c.to_ascii_lowercase().contains("application/sdp"));
        let sdp = if is_sdp {
            String::from_utf8_lossy(msg.body()).into_owned()
        } else {
            String::new()
        };
        let facts = RequestFacts {
            method: &method,
            request_uri: msg.request_uri_str().unwrap_or_default(),
            headers: &lookup,
            sdp: &sdp,
            session_case,
            registration_type: None,
            registered,
        };
        profile
            .next_match(&facts, from)
            .map(|(i, ifc)| (i, ifc.application_server.clone()))
    }

    /// Hands the request to an AS (§5.4.3.2 step 4, §5.4.3.3 step 3): Route to the AS, then
    /// back here with an original dialog identifier.
    fn hand_to_as(
        &mut self,
        now: Now,
        req: ReqId,
        mut msg: Message,
        leg: (Case, Impu, usize, Option<String>),
        server: &ApplicationServer,
    ) {
        let (case, served, index, called) = leg;
        let step = step_of(msg.method());
        if !self.reachable(&server.server_name) {
            // TS 24.229 §5.4.3.2 step 4 / §5.4.3.3: the AS cannot be contacted, its
            // DefaultHandling decides.
            let as_uri = server.server_name.clone();
            if server.default_handling == 1 {
                self.refuse(
                    now,
                    req,
                    &msg,
                    Some(&served),
                    StatusCode::SERVER_INTERNAL_ERROR,
                    format!("iFC AS failed: no address for {as_uri} (SESSION_TERMINATED)"),
                );
                return;
            }
            self.event(
                now,
                None,
                Some(&served),
                step,
                Outcome::Info,
                Some(format!(
                    "iFC AS failed: no address for {as_uri}, SESSION_CONTINUED without it"
                )),
            );
            match case {
                Case::Orig => self.originate(now, req, msg, served, index + 1),
                Case::Term => {
                    let called = called.unwrap_or_default();
                    if self.alias.contains_key(&served) {
                        self.terminate(now, req, msg, index + 1, Some(called), None);
                    } else {
                        self.terminate_unregistered(now, req, msg, served, index + 1, called);
                    }
                }
            }
            return;
        }
        let Some(key) = leg_key(&msg) else {
            let r = respond(&msg, StatusCode::BAD_REQUEST, Some("No From tag"));
            self.decide(req, Decision::Respond(r));
            return;
        };
        let fallback = if server.default_handling == 1 {
            None
        } else {
            self.continuation(now, req, &msg, (case, &served, index, called.clone()))
        };
        let odi = self.token();
        let seq = self.id();
        let expires = now.at + LEG_LIFETIME;
        self.legs.insert(
            key.clone(),
            Leg {
                case,
                served: served.clone(),
                next: index + 1,
                called,
                seq,
                odi: odi.clone(),
                fallback: fallback.map(Box::new),
                continued: false,
            },
        );
        self.leg_order.push_back((expires, key, seq));
        let own = self.s.uri.trim_start_matches("sip:").to_owned();
        let _ = msg.prepend_header(HeaderName::ROUTE, format!("<sip:odi-{odi}@{own};lr>"));
        let as_uri = server.server_name.trim().trim_matches(['<', '>']);
        let as_route = if as_uri.contains(";lr") {
            format!("<{as_uri}>")
        } else {
            format!("<{as_uri};lr>")
        };
        let _ = msg.prepend_header(HeaderName::ROUTE, as_route);
        let which = if case == Case::Orig {
            "originating"
        } else {
            "terminating"
        };
        self.event(
            now,
            None,
            Some(&served),
            step,
            Outcome::Info,
            Some(format!(
                "{which} iFC matched: to the AS {as_uri} (default handling {})",
                if server.default_handling == 1 {
                    "SESSION_TERMINATED"
                } else {
                    "SESSION_CONTINUED"
                }
            )),
        );
        self.decide(req, Decision::forward(msg, Target::next_hop()));
    }

    /// The decision for `msg` as it would continue without the AS at iFC `index`, when it
    /// is reached at once (TS 24.229 §5.4.3.2 step 4 / §5.4.3.3, DefaultHandling
    /// SESSION_CONTINUED). The trial leaves no trace: its outputs, events, hand-offs, Cx or
    /// ENUM tasks and relay jobs are undone; when it needed any of those, `None`.
    fn continuation(
        &mut self,
        now: Now,
        req: ReqId,
        msg: &Message,
        leg: (Case, &Impu, usize, Option<String>),
    ) -> Option<Decision> {
        let (case, served, index, called) = leg;
        let mark = self.next_id;
        let out = self.out.len();
        let order = self.leg_order.len();
        let msg = msg.clone();
        match case {
            Case::Orig => self.originate(now, req, msg, served.clone(), index + 1),
            Case::Term => {
                let called = called.unwrap_or_default();
                if self.alias.contains_key(served) {
                    self.terminate(now, req, msg, index + 1, Some(called), None);
                } else {
                    self.terminate_unregistered(now, req, msg, served.clone(), index + 1, called);
                }
            }
        }
        let async_work = self.legs.values().any(|l| l.seq > mark)
            || self.leg_order.len() != order
            || self.tasks.keys().any(|t| t.0 > mark)
            || self.jobs.keys().any(|j| j.0 > mark);
        let trial: Vec<Output> = self.out.drain(out..).collect();
        self.legs.retain(|_, l| l.seq <= mark);
        self.leg_order.truncate(order);
        self.tasks.retain(|t, _| t.0 <= mark);
        self.jobs.retain(|j, _| j.0 <= mark);
        if async_work {
            return None;
        }
        let mut decision = None;
        for o in trial {
            match o {
                Output::Decide {
                    req: r,
                    decision: d,
                } if r == req && decision.is_none() => decision = Some(d),
                Output::Event(_) => {}
                _ => return None,
            }
        }
        decision
    }

    /// The decision to apply instead of a hand-off to an AS with DefaultHandling
    /// SESSION_CONTINUED when that AS does not answer or fails (408, 5xx, transport error):
    /// pass `forwarded`, the request of the [`Decision::Forward`] this registrar output, and
    /// give the result to the proxy core as the fallback (`imslab_sip_node::Decided`). `None`
    /// for any other forward, or when the continuation needed a lookup (see the module
    /// documentation). The AS returning the request later still finds its hand-off.
    pub fn take_as_fallback(&mut self, forwarded: &Message) -> Option<Decision> {
        if self.legs.is_empty() {
            return None;
        }
        let key = leg_key(forwarded)?;
        let leg = self.legs.get_mut(&key)?;
        let fallback = leg.fallback.take()?;
        leg.continued = true;
        Some(*fallback)
    }

    fn refuse(
        &mut self,
        now: Now,
        req: ReqId,
        msg: &Message,
        who: Option<&Impu>,
        status: StatusCode,
        reason: String,
    ) {
        let step = step_of(msg.method());
        self.event(now, None, who, step, Outcome::Failed, Some(reason));
        let r = respond(msg, status, None);
        self.decide(req, Decision::Respond(r));
    }

    /// Where the Request-URI's callee lies; a number held by a registration here becomes
    /// the tel URI of that identity in the Request-URI.
    fn classify(&self, msg: &mut Message) -> Callee {
        let Some(uri) = msg
            .request_uri_str()
            .and_then(|u| Uri::parse(u).ok())
            .map(Uri::into_owned)
        else {
            return Callee::Foreign;
        };
        if let Some(k) = aor_of(&uri).and_then(|a| self.alias.get(&a)) {
            return Callee::Served(k.clone());
        }
        if let Some(n) = number_of(&uri) {
            let tel = Impu::new(format!("tel:{n}")).ok();
            if let Some(t) = tel
                && let Some(k) = self.alias.get(&t)
            {
                // The identity dialled, as the implicit set holds it.
                let _ = msg.set_request_uri(t.as_str().to_owned());
                return Callee::Served(k.clone());
            }
            return Callee::Number(n);
        }
        match uri.as_sip().map(|s| &s.host) {
            Some(Host::Name(h)) if h.eq_ignore_ascii_case(&self.s.home_realm) => Callee::Home,
            _ => Callee::Foreign,
        }
    }

    /// The originating case for `served` from the iFC at `from` on.
    fn originate(&mut self, now: Now, req: ReqId, msg: Message, served: Impu, from: usize) {
        let barred = self
            .alias
            .get(&served)
            .and_then(|k| self.aors.get(k))
            .is_some_and(|a| a.implicit.iter().any(|(i, b)| *b && i == &served));
        if barred {
            self.refuse(
                now,
                req,
                &msg,
                Some(&served),
                StatusCode::FORBIDDEN,
                "originating identity is barred".into(),
            );
            return;
        }
        if let Some((i, server)) = self.next_ifc(&served, &msg, 0, true, from) {
            self.hand_to_as(now, req, msg, (Case::Orig, served, i, None), &server);
            return;
        }
        self.route_onward(now, req, msg, served, false);
    }

    /// After the originating iFCs: the callee normalised (and looked up in ENUM once when
    /// `enum_done` is false and ENUM is configured), then toward the I-CSCF, the trunk, or
    /// the terminating case here.
    pub(super) fn route_onward(
        &mut self,
        now: Now,
        req: ReqId,
        mut msg: Message,
        served: Impu,
        enum_done: bool,
    ) {
        let step = step_of(msg.method());
        let dialog = matches!(
            msg.method(),
            Some(Method::Invite | Method::Subscribe | Method::Refer)
        );
        let rr = dialog.then(|| RecordRoute {
            user: Some("orig".to_owned()),
        });
        let callee = self.classify(&mut msg);
        if let (Callee::Number(n), Some(suffix), false) = (&callee, &self.s.enum_domain, enum_done)
            && let Some(name) = crate::e164::enum_domain(n, suffix)
        {
            let number = n.clone();
            self.ask_enum(req, msg, served, number, name);
            return;
        }
        let ruri = msg.request_uri_str().unwrap_or_default().to_owned();
        let onward = match (&callee, &self.s.icscf, &self.s.breakout) {
            (Callee::Served(_) | Callee::Home, Some(icscf), _) => {
                Some((icscf.clone(), format!("to the I-CSCF {icscf} for {ruri}")))
            }
            (Callee::Number(_) | Callee::Foreign, _, Some(trunk)) => {
                Some((trunk.clone(), format!("breakout to {trunk} for {ruri}")))
            }
            (Callee::Number(_), Some(icscf), None) => Some((
                icscf.clone(),
                format!("number {ruri} to the I-CSCF {icscf}"),
            )),
            _ => None,
        };
        if let Some((hop, why)) = onward {
            let hop = hop.trim().trim_matches(['<', '>']).to_owned();
            let route = if hop.contains(";lr") {
                format!("<{hop}>")
            } else {
                format!("<{hop};lr>")
            };
            let _ = msg.prepend_header(HeaderName::ROUTE, route);
            let standalone = !matches!(
                msg.method(),
                Some(Method::Invite | Method::Subscribe | Method::Refer)
            );
            if why.starts_with("breakout") && standalone && self.s.breakout_credentials.is_some() {
                self.event(
                    now,
                    None,
                    Some(&served),
                    step,
                    Outcome::Ok,
                    Some(format!(
                        "originating: {why}, relayed with trunk credentials"
                    )),
                );
                self.out.push_back(Output::Relay {
                    req,
                    request: msg,
                    next_hop: hop,
                });
                return;
            }
            self.event(
                now,
                None,
                Some(&served),
                step,
                Outcome::Ok,
                Some(format!("originating: {why}")),
            );
            self.decide(
                req,
                Decision::Forward {
                    request: msg,
                    targets: vec![Target::next_hop()],
                    mode: ForkMode::Parallel,
                    record_route: rr,
                },
            );
            return;
        }
        match callee {
            Callee::Served(_) => {
                self.event(
                    now,
                    None,
                    Some(&served),
                    step,
                    Outcome::Ok,
                    Some(format!("originating: {ruri} is served here")),
                );
                self.terminate(now, req, msg, 0, None, Some(served));
            }
            // Without an I-CSCF the terminating case here asks the HSS (SAR
            // UNREGISTERED_USER): unknown is 404, known but unregistered without services 480
            // (TS 24.229 §5.4.3.3).
            Callee::Home => {
                self.event(
                    now,
                    None,
                    Some(&served),
                    step,
                    Outcome::Ok,
                    Some(format!(
                        "originating: {ruri} is not registered here and no scscf.icscf is set: \
                         terminating case here"
                    )),
                );
                self.terminate(now, req, msg, 0, None, Some(served));
            }
            Callee::Number(n) => self.refuse(
                now,
                req,
                &msg,
                Some(&served),
                StatusCode::NOT_FOUND,
                format!("originating: no phone holds {n} and no scscf.breakout is set"),
            ),
            Callee::Foreign => {
                self.event(
                    now,
                    None,
                    Some(&served),
                    step,
                    Outcome::Ok,
                    Some(format!(
                        "originating: {ruri} is outside the lab, its own next hop"
                    )),
                );
                self.decide(
                    req,
                    Decision::Forward {
                        request: msg,
                        targets: vec![Target::next_hop()],
                        mode: ForkMode::Parallel,
                        record_route: rr,
                    },
                );
            }
        }
    }

    /// The terminating case from the iFC at `from` on. `called` is the Request-URI as first
    /// received (after an AS hand-off); `caller` is set when the originating case of the same
    /// S-CSCF hands over directly.
    fn terminate(
        &mut self,
        now: Now,
        req: ReqId,
        mut msg: Message,
        from: usize,
        called: Option<String>,
        caller: Option<Impu>,
    ) {
        let step = step_of(msg.method());
        let called = called.unwrap_or_else(|| msg.request_uri_str().unwrap_or_default().to_owned());
        let key = match self.classify(&mut msg) {
            Callee::Served(k) => k,
            Callee::Home | Callee::Number(_) => {
                let who = Uri::parse(&called)
                    .ok()
                    .and_then(|u| match (&u, number_of(&u)) {
                        (Uri::Sip(s), _) if s.params.value("user") != Some("phone") => aor_of(&u),
                        (_, Some(n)) => Impu::new(format!("tel:{n}")).ok(),
                        _ => aor_of(&u),
                    });
                if let Some(w) = who.clone() {
                    if self.unregistered_profile(&w).is_some() {
                        self.terminate_unregistered(now, req, msg, w, from, called);
                        return;
                    }
                    if from == 0 {
                        self.start_unregistered_sar(req, msg, w, called);
                        return;
                    }
                }
                self.refuse(
                    now,
                    req,
                    &msg,
                    who.as_ref(),
                    StatusCode::NOT_FOUND,
                    format!("terminating: {called} is not registered here"),
                );
                return;
            }
            Callee::Foreign => {
                self.decide(req, Decision::forward(msg, Target::next_hop()));
                return;
            }
        };
        let identity = msg
            .request_uri_str()
            .and_then(|u| Uri::parse(u).ok())
            .and_then(|u| aor_of(&u))
            .unwrap_or_else(|| key.clone());
        let Some(aor) = self.aors.get(&key) else {
            self.refuse(
                now,
                req,
                &msg,
                Some(&identity),
                StatusCode::TEMPORARILY_UNAVAILABLE,
                format!("terminating: {called} has no registration"),
            );
            return;
        };
        if aor.implicit.iter().any(|(i, b)| *b && i == &identity) {
            self.refuse(
                now,
                req,
                &msg,
                Some(&identity),
                StatusCode::NOT_FOUND,
                format!("terminating: {called} is barred"),
            );
            return;
        }
        let registered = !aor.contacts.is_empty();
        let case = if registered { 1 } else { 2 };
        if let Some((i, server)) = self.next_ifc(&identity, &msg, case, registered, from) {
            self.hand_to_as(
                now,
                req,
                msg,
                (Case::Term, identity, i, Some(called)),
                &server,
            );
            return;
        }
        let Some(aor) = self.aors.get(&key) else {
            return;
        };
        let Some(fork) = fork_set(&aor.contacts) else {
            self.refuse(
                now,
                req,
                &msg,
                Some(&identity),
                StatusCode::TEMPORARILY_UNAVAILABLE,
                format!("terminating: {called} is not registered (callee not registered)"),
            );
            return;
        };
        let impi = aor.impi.clone();
        let targets = match fork {
            Fork::Along(path, targets) => {
                for p in path.iter().rev() {
                    let _ = msg.prepend_header(HeaderName::ROUTE, p.clone());
                }
                targets
            }
            Fork::Split(split) => split.into_iter().map(|(t, _)| t).collect(),
        };
        msg.remove_header(&HeaderName::P_CALLED_PARTY_ID);
        let _ = msg.push_header(HeaderName::P_CALLED_PARTY_ID, format!("<{called}>"));
        let dialog = matches!(
            msg.method(),
            Some(Method::Invite | Method::Subscribe | Method::Refer)
        );
        let from_who = caller.map(|c| format!(" from {c}")).unwrap_or_default();
        self.event(
            now,
            Some(&impi),
            Some(&identity),
            step,
            Outcome::Ok,
            Some(format!(
                "terminating: {called}{from_who} forked to {} contact(s)",
                targets.len()
            )),
        );
        self.decide(
            req,
            Decision::Forward {
                request: msg,
                targets,
                mode: ForkMode::Parallel,
                record_route: dialog.then(|| RecordRoute {
                    user: Some("term".to_owned()),
                }),
            },
        );
    }
}

/// Where a terminating request forks (TS 24.229 §5.4.3.3, RFC 3327 §5.3).
#[derive(Debug, PartialEq, Eq)]
enum Fork {
    /// Every target shares this Path, sent as the Route set.
    Along(Vec<String>, Vec<Target>),
    /// The targets sit behind different Paths: each target's copy carries its own binding's
    /// Path as Route ([`Registrar::fork_routes`] gives them to the proxy core). The target's
    /// destination is its Path's first hop when that is an IP address, so that without the
    /// Route sets the copy still reaches that P-CSCF, which then finds the phone's flow by
    /// the registered Contact in the Request-URI.
    Split(Vec<(Target, Vec<String>)>),
}

/// The address a one-hop Path sends to: an IP literal host, its port (5060) and transport.
fn path_hop(path: &[String]) -> Option<Peer> {
    let [only] = path else { return None };
    let text = only.trim();
    let text = text.strip_prefix('<').unwrap_or(text);
    let text = text.split('>').next().unwrap_or(text);
    let uri = Uri::parse(text).ok()?;
    let sip = uri.as_sip()?;
    let Host::Ip(ip) = sip.host else { return None };
    let transport = sip
        .params
        .value("transport")
        .map_or(Transport::Udp, Transport::from_token);
    Some(Peer::new(
        transport,
        std::net::SocketAddr::new(ip, sip.port.unwrap_or(5060)),
    ))
}

/// The targets of a terminating request: every current binding, but of several bindings of
/// one `+sip.instance` only the most recently registered (RFC 5626 §5.3: one flow per
/// instance). When the bindings' Paths differ and each is one hop (one P-CSCF flow per
/// phone), each target goes with its own Path as Route ([`Fork::Split`], TS 24.229
/// §5.4.3.3: the Path as Route, per contact); otherwise the most recently registered contact
/// decides the Path, which is the request's Route set, and only the contacts on it are
/// targets ([`Fork::Along`]), so a binding left over behind an older Path is never chosen
/// over a newer one. `None` without contacts.
fn fork_set(contacts: &[super::Contact]) -> Option<Fork> {
    // Ties (restored contacts) go to the later one in the list.
    let latest = contacts
        .iter()
        .max_by(|a, b| a.registered.cmp(&b.registered))?;
    let path = latest.binding.path.clone();
    let chosen = one_per_instance(contacts);
    let split = chosen.iter().any(|c| c.binding.path != path)
        && chosen.iter().all(|c| c.binding.path.len() == 1);
    if split {
        let targets = chosen
            .iter()
            .map(|c| {
                let mut t = Target::uri(c.binding.contact.clone());
                t.destination = path_hop(&c.binding.path);
                (t, c.binding.path.clone())
            })
            .collect();
        return Some(Fork::Split(targets));
    }
    let targets = chosen
        .iter()
        .filter(|c| c.binding.path == path)
        .map(|c| Target::uri(c.binding.contact.clone()))
        .collect();
    Some(Fork::Along(path, targets))
}

/// How long an application server handed a request by an iFC has to answer with a final
/// response or a provisional one above 100 before its DefaultHandling applies (TS 24.229
/// §5.4.3.2 step 4 and §5.4.3.3 leave this timer to the operator; without it only Timer C,
/// three minutes, would end the wait for an AS that answered 100 and died).
/// The default of `scscf.as_timeout`, which the server passes to [`Registrar::decided`]
/// (`imslab_sip_node::Decided::no_answer` for hand-offs, [`Registrar::is_as_handoff`]).
pub const AS_TIMEOUT: Duration = Duration::from_secs(4);

impl Registrar {
    /// Whether `forwarded`, the request of a [`Decision::Forward`] this registrar output, is
    /// an iFC hand-off to an application server (it carries the Route back here with an
    /// `odi-` token): the driver gives it [`AS_TIMEOUT`] (or `scscf.as_timeout`).
    pub fn is_as_handoff(&self, forwarded: &Message) -> bool {
        let own = self.s.uri.trim_start_matches("sip:");
        forwarded.routes().filter_map(Result::ok).any(|r| {
            r.uri.as_sip().is_some_and(|s| {
                s.user.as_deref().is_some_and(|u| u.starts_with("odi-"))
                    && hop_of(&format!("<sip:{own}>"))
                        .is_some_and(|me| host_is(&s.host.to_string(), s.port_or_default(), &me))
            })
        })
    }

    /// `decision`, as this registrar output it, with what the SIP node applies with it
    /// (`imslab_sip_node::Decided`): the DefaultHandling SESSION_CONTINUED fallback of an AS
    /// hand-off ([`Registrar::take_as_fallback`]) and `as_timeout` as its no-answer time
    /// ([`Registrar::is_as_handoff`]); the per-contact Route sets of a terminating fork
    /// ([`Registrar::fork_routes`]); challenge answering for an INVITE to the breakout trunk
    /// when trunk credentials are set ([`crate::breakout::is_trunk_invite`]).
    pub fn decided(
        &mut self,
        decision: Decision,
        as_timeout: Duration,
    ) -> imslab_sip_node::Decided {
        let Decision::Forward { request, .. } = &decision else {
            return decision.into();
        };
        let fallback = self.take_as_fallback(request);
        let no_answer = self.is_as_handoff(request).then_some(as_timeout);
        let challenges = self.s.breakout_credentials.is_some()
            && self
                .s
                .breakout
                .as_deref()
                .is_some_and(|t| crate::breakout::is_trunk_invite(t, request));
        let routes = self.fork_routes(&decision);
        let fallback_routes = fallback
            .as_ref()
            .map(|f| self.fork_routes(f))
            .unwrap_or_default();
        imslab_sip_node::Decided::from(decision)
            .with_fallback(fallback)
            .with_fallback_routes(fallback_routes)
            .with_routes(routes)
            .with_no_answer(no_answer)
            .with_answer_challenges(challenges)
    }

    /// The Route set of each target of `decision` when it is a terminating fork to contacts
    /// behind different one-hop Paths: each contact's own Path (TS 24.229
    /// §5.4.3.3, RFC 3327 §5.3), for `imslab_sip_node::Decided::routes`. Empty for any
    /// other decision (the request's own Route set then serves every target).
    pub fn fork_routes(&self, decision: &Decision) -> Vec<Option<Vec<bytes::Bytes>>> {
        let Decision::Forward {
            request, targets, ..
        } = decision
        else {
            return Vec::new();
        };
        if request.has_header(&HeaderName::ROUTE) || targets.iter().all(|t| t.uri.is_none()) {
            return Vec::new();
        }
        let Some(aor) = request
            .request_uri_str()
            .and_then(|u| Uri::parse(u).ok())
            .and_then(|u| aor_of(&u))
            .and_then(|i| self.alias.get(&i))
            .and_then(|k| self.aors.get(k))
        else {
            return Vec::new();
        };
        let Some(Fork::Split(split)) = fork_set(&aor.contacts) else {
            return Vec::new();
        };
        targets
            .iter()
            .map(|t| {
                let (_, path) = split.iter().find(|(s, _)| s.uri == t.uri)?;
                Some(
                    path.iter()
                        .map(|p| bytes::Bytes::from(p.trim().to_owned()))
                        .collect(),
                )
            })
            .collect()
    }
}

/// Of several contacts with one `+sip.instance`, the most recently registered (the later in
/// the list among equals); contacts without an instance all stay.
fn one_per_instance(contacts: &[super::Contact]) -> Vec<&super::Contact> {
    contacts
        .iter()
        .enumerate()
        .filter(|(i, c)| match &c.binding.instance_id {
            None => true,
            Some(inst) => contacts
                .iter()
                .enumerate()
                .filter(|(_, o)| o.binding.instance_id.as_ref() == Some(inst))
                .max_by(|(_, a), (_, b)| a.registered.cmp(&b.registered))
                .is_some_and(|(j, _)| j == *i),
        })
        .map(|(_, c)| c)
        .collect()
}

impl Registrar {
    /// Whether a URI's host can be sent to: an IP literal or a name in `scscf.hosts`.
    fn reachable(&self, uri: &str) -> bool {
        let text = uri.trim().trim_matches(['<', '>']);
        match Uri::parse(text)
            .ok()
            .as_ref()
            .and_then(Uri::as_sip)
            .map(|s| &s.host)
        {
            Some(Host::Ip(_)) => true,
            Some(Host::Name(n)) => self.s.known_hosts.contains(&n.to_ascii_lowercase()),
            None => false,
        }
    }

    fn unregistered_profile(&self, impu: &Impu) -> Option<&ImsSubscription> {
        self.unregistered
            .iter()
            .rev()
            .find(|(i, _)| i == impu)
            .map(|(_, s)| s.as_ref())
    }

    /// SAR UNREGISTERED_USER (TS 29.228 §6.1.2, TS 24.229 §5.4.3.3): the terminating request
    /// waits for the profile of an identity not registered here.
    fn start_unregistered_sar(&mut self, req: ReqId, msg: Message, impu: Impu, called: String) {
        let sar = Sar {
            session_id: self.session_id(),
            origin_host: self.s.origin.host.clone(),
            origin_realm: self.s.origin.realm.clone(),
            destination_host: self.s.hss_host.clone(),
            destination_realm: self.s.hss_realm.clone(),
            user_name: None,
            supported_features: Vec::new(),
            public_identities: vec![impu.clone()],
            wildcarded_public_identity: None,
            server_name: self.s.uri.clone(),
            server_assignment_type: ServerAssignmentType::UNREGISTERED_USER,
            user_data_already_available: UserDataAlreadyAvailable::USER_DATA_NOT_AVAILABLE,
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
            Task::SarUnregistered {
                req,
                msg: Box::new(msg),
                impu,
                called,
            },
            CxOut::Sar(Box::new(sar)),
        );
    }

    /// The SAA for an unregistered callee: its profile is kept, then the terminating iFCs for
    /// the unregistered case run; a refusal is 404 for an unknown user, 480 otherwise.
    pub(super) fn on_unregistered_saa(
        &mut self,
        now: Now,
        req: ReqId,
        msg: Message,
        impu: Impu,
        called: String,
        reply: CxReply,
    ) {
        let saa = match reply {
            CxReply::Saa(s) => *s,
            CxReply::Failed(why) => {
                self.refuse(
                    now,
                    req,
                    &msg,
                    Some(&impu),
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    format!("terminating: no SAA for the unregistered {impu}: {why}"),
                );
                return;
            }
            CxReply::Maa(_) => return,
        };
        if !saa.result.is_success() {
            let (_, _, why) = super::register::cx_failure(&saa.result, "SAR");
            let unknown = matches!(
                saa.result,
                imslab_diameter::cx::CxResult::Experimental { code, .. }
                    if code == imslab_diameter::ExperimentalResultCode::DIAMETER_ERROR_USER_UNKNOWN
            );
            let status = if unknown {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::TEMPORARILY_UNAVAILABLE
            };
            self.refuse(
                now,
                req,
                &msg,
                Some(&impu),
                status,
                format!("terminating: {called} is not registered: {why}"),
            );
            return;
        }
        let sub = saa
            .user_data
            .as_deref()
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|x| ImsSubscription::parse(x).ok());
        let Some(sub) = sub else {
            self.refuse(
                now,
                req,
                &msg,
                Some(&impu),
                StatusCode::TEMPORARILY_UNAVAILABLE,
                format!("terminating: {called} is not registered and the SAA has no profile"),
            );
            return;
        };
        self.unregistered.retain(|(i, _)| i != &impu);
        if self.unregistered.len() >= MAX_UNREGISTERED {
            self.unregistered.pop_front();
        }
        self.unregistered.push_back((impu.clone(), Arc::new(sub)));
        self.terminate_unregistered(now, req, msg, impu, 0, called);
    }

    /// Terminating iFCs for an identity without contacts (session case 2): to the AS of the
    /// first match, else 480.
    fn terminate_unregistered(
        &mut self,
        now: Now,
        req: ReqId,
        msg: Message,
        impu: Impu,
        from: usize,
        called: String,
    ) {
        if let Some((i, server)) = self.next_ifc(&impu, &msg, 2, false, from) {
            self.hand_to_as(now, req, msg, (Case::Term, impu, i, Some(called)), &server);
            return;
        }
        self.refuse(
            now,
            req,
            &msg,
            Some(&impu),
            StatusCode::TEMPORARILY_UNAVAILABLE,
            format!("terminating: {called} is not registered (callee not registered, no service for the unregistered state applies)"),
        );
    }
}

impl Registrar {
    /// Asks the driver for the NAPTR records of `name` (ENUM, RFC 6116); the answer comes
    /// back through [`Registrar::handle_enum_answer`].
    fn ask_enum(&mut self, req: ReqId, msg: Message, served: Impu, number: String, name: String) {
        let task = super::TaskId(self.id());
        self.tasks.insert(
            task,
            Task::Enum {
                req,
                msg: Box::new(msg),
                served,
                number,
            },
        );
        self.out.push_back(Output::Enum { task, name });
    }

    /// The NAPTR records for an ENUM query (an empty list for NXDOMAIN; `Err` when the
    /// server did not answer). A SIP URI found replaces the Request-URI; either way the
    /// request goes on (to the I-CSCF or the trunk as its new callee says, RFC 6116 §3.2).
    pub fn handle_enum_answer(
        &mut self,
        now: Now,
        task: super::TaskId,
        answer: Result<Vec<crate::e164::NaptrRecord>, String>,
    ) {
        let Some(Task::Enum {
            req,
            mut msg,
            served,
            number,
        }) = self.tasks.remove(&task)
        else {
            return;
        };
        let step = step_of(msg.method());
        let (uri, why) = match &answer {
            Ok(records) => match crate::e164::sip_uri_of(&number, records) {
                Some(u) => (Some(u.clone()), format!("ENUM: {number} is {u}")),
                None => (None, format!("ENUM: no SIP URI for {number}")),
            },
            Err(e) => (None, format!("ENUM: no answer for {number}: {e}")),
        };
        if let Some(u) = uri {
            let _ = msg.set_request_uri(u);
        }
        self.event(now, None, Some(&served), step, Outcome::Info, Some(why));
        self.route_onward(now, req, *msg, served, true);
    }
}

#[cfg(test)]
mod fork_tests {
    use std::time::{Duration, Instant, SystemTime};

    use imslab_store::Binding;
    use imslab_types::{Impi, Impu};

    use super::{Fork, fork_set};
    use crate::registrar::Contact;

    fn contact(uri: &str, path: &str, instance: Option<&str>, registered: Instant) -> Contact {
        Contact {
            binding: Binding {
                impu: Impu::new("sip:carol@ims.example").expect("impu"),
                impi: Impi::new("carol@ims.example").expect("impi"),
                contact: uri.to_owned(),
                expires_at: SystemTime::UNIX_EPOCH,
                q_milli: None,
                path: vec![path.to_owned()],
                instance_id: instance.map(str::to_owned),
                reg_id: Some(1),
                call_id: uri.to_owned(),
                cseq: 1,
                pcscf_flow: None,
                received: None,
                user_agent: None,
                contact_params: None,
            },
            expires: registered + Duration::from_secs(600),
            registered,
        }
    }

    fn uris(targets: &[imslab_sip::proxy::Target]) -> Vec<String> {
        targets
            .iter()
            .map(|t| String::from_utf8_lossy(t.uri.as_deref().unwrap_or_default()).into_owned())
            .collect()
    }

    #[test]
    fn phones_behind_their_own_pcscf_flow_are_each_reached_along_their_own_path() {
        let t0 = Instant::now();
        let phone = contact(
            "sip:carol@127.0.0.3:5060",
            "<sip:tokA@127.0.0.1:5070;lr>",
            Some("<urn:uuid:a>"),
            t0,
        );
        let tablet = contact(
            "sip:carol@127.0.0.4:5060",
            "<sip:tokB@127.0.0.1:5070;lr;transport=tcp>",
            Some("<urn:uuid:b>"),
            t0 + Duration::from_secs(1),
        );
        let Some(Fork::Split(split)) = fork_set(&[phone, tablet]) else {
            panic!("expected a split fork");
        };
        let paths: Vec<&[String]> = split.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(
            paths,
            [
                ["<sip:tokA@127.0.0.1:5070;lr>".to_owned()],
                ["<sip:tokB@127.0.0.1:5070;lr;transport=tcp>".to_owned()]
            ]
        );
        let targets: Vec<_> = split.into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            uris(&targets),
            ["sip:carol@127.0.0.3:5060", "sip:carol@127.0.0.4:5060"]
        );
        let dest: Vec<String> = targets
            .iter()
            .map(|t| {
                let p = t.destination.as_ref().expect("destination");
                format!("{:?} {}", p.transport, p.addr)
            })
            .collect();
        assert_eq!(dest, ["Udp 127.0.0.1:5070", "Tcp 127.0.0.1:5070"]);
    }

    #[test]
    fn an_older_flow_of_the_same_instance_is_not_forked_to() {
        let t0 = Instant::now();
        let old = contact(
            "sip:carol@127.0.0.3:5060",
            "<sip:tokA@127.0.0.1:5070;lr>",
            Some("<urn:uuid:a>"),
            t0,
        );
        let new = contact(
            "sip:carol@127.0.0.3:5062",
            "<sip:tokC@127.0.0.1:5070;lr>",
            Some("<urn:uuid:a>"),
            t0 + Duration::from_secs(5),
        );
        let Some(Fork::Along(path, targets)) = fork_set(&[old, new]) else {
            panic!("expected one path");
        };
        assert_eq!(path, ["<sip:tokC@127.0.0.1:5070;lr>"]);
        assert_eq!(uris(&targets), ["sip:carol@127.0.0.3:5062"]);
        assert_eq!(fork_set(&[]), None);
    }
}
