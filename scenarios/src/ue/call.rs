//! Voice calls of the soft UE as caller and callee (RFC 3261 dialogs, RFC 3262 reliable
//! provisional responses and PRACK, RFC 3311 UPDATE, RFC 3312 / TS 24.229 §5.1.3–5.1.4 QoS
//! preconditions): INVITE with an SDP offer, 183 with the answer and PRACK, UPDATE once
//! resources are reserved, 180, 200, ACK, BYE and CANCEL.
//!
//! Session timers (RFC 4028): the caller may ask for one (Session-Expires, Min-SE, Supported:
//! timer); the callee takes the interval, names the refresher (`uac`) and requires `timer` in
//! its 2xx. Forking (RFC 3261 §13.2.2.4): early dialogs with several To tags are accepted and
//! the 2xx that arrives first defines the confirmed dialog.
//!
//! Not done: retransmission of reliable provisional responses (RFC 3262 §3, the P-CSCF link is
//! loopback), re-INVITE and session refreshes (a scenario call lasts less than Min-SE), and
//! BYE to a second 2xx from another fork (it is ACKed only).

use std::time::Instant;

use imslab_sip::transaction::{ClientId, Peer, ServerId, build_cancel};
use imslab_sip::{HeaderName, Message, StatusCode};
use imslab_types::Outcome;

use super::core::{Draft, Event, Purpose, UeCore, host};
use super::sdp::{self, QosState, SdpParams};
use crate::Error;

/// Which end of the call the UE is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It sent the INVITE.
    Caller,
    /// It received the INVITE.
    Callee,
}

/// Call states (RFC 3261 §12: early and confirmed dialogs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// INVITE sent (caller) or received (callee), no dialog yet.
    Trying,
    /// An early dialog: 18x sent or received.
    Early,
    /// 180 Ringing sent or received.
    Ringing,
    /// 2xx sent or received; ACK pending or done.
    Confirmed,
    /// Over: BYE, CANCEL or a failure.
    Terminated,
}

/// Options of an outgoing call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallOptions {
    /// Use QoS preconditions (Require: precondition, 100rel).
    pub preconditions: bool,
    /// Ask for a session timer of this many seconds (RFC 4028 §7.1: Session-Expires, with
    /// Min-SE and `Supported: timer`).
    pub session_expires: Option<u32>,
}

/// The smallest session interval the soft UE accepts (RFC 4028 §4: Min-SE default 90 s).
pub const MIN_SE: u32 = 90;

/// How the callee turns down a ringing call (RFC 3261 §21.4 and §21.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection(pub u16);

impl Rejection {
    /// 486 Busy Here: the phone is on another call.
    pub const BUSY: Self = Self(486);
    /// 480 Temporarily Unavailable: nobody answered (the phone's no-answer timer).
    pub const NO_ANSWER: Self = Self(480);
    /// 603 Decline: the user pressed "reject".
    pub const DECLINE: Self = Self(603);
}

/// One call.
#[derive(Debug, Clone)]
pub struct Call {
    /// Caller or callee.
    pub role: Role,
    /// Its state.
    pub state: CallState,
    pub(crate) local_tag: String,
    pub(crate) remote_tag: Option<String>,
    pub(crate) local_uri: String,
    pub(crate) remote_uri: String,
    pub(crate) local_cseq: u32,
    pub(crate) remote_target: Option<String>,
    pub(crate) route_set: Vec<String>,
    pub(crate) invite_tx: Option<ClientId>,
    pub(crate) invite_server: Option<ServerId>,
    pub(crate) invite: Option<Message>,
    pub(crate) invite_peer: Option<Peer>,
    pub(crate) preconditions: bool,
    pub(crate) sdp_version: u32,
    pub(crate) session_id: u64,
    pub(crate) answered_reliably: bool,
    pub(crate) rseq: u32,
    pub(crate) last_rseq: Option<u32>,
    pub(crate) updated: bool,
    /// The negotiated session interval and whether this UE refreshes (RFC 4028).
    pub(crate) session_timer: Option<SessionTimer>,
}

/// A session timer agreed in the INVITE transaction (RFC 4028 §7 and §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// Session interval in seconds.
    pub interval: u32,
    /// Whether this UE is the refresher.
    pub local_refresher: bool,
}

/// `Session-Expires: 1800;refresher=uac` → (1800, Some("uac")).
fn session_expires(m: &Message) -> Option<(u32, Option<String>)> {
    let v = m
        .header_str(&HeaderName::SESSION_EXPIRES)
        .and_then(Result::ok)?;
    let mut parts = v.split(';').map(str::trim);
    let secs = parts.next()?.parse().ok()?;
    let refresher = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("refresher"))
        .map(|(_, v)| v.trim().to_ascii_lowercase());
    Some((secs, refresher))
}

impl Call {
    /// The session timer in force, if one was negotiated (RFC 4028).
    pub fn session_timer(&self) -> Option<SessionTimer> {
        self.session_timer
    }

    /// This end's dialog tag (From tag of the caller, To tag of the callee).
    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }
}

fn header_list(m: &Message, name: &HeaderName) -> Vec<String> {
    m.values(name)
        .map(|v| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
        .collect()
}

fn contact_uri_of(m: &Message) -> Option<String> {
    m.contacts()
        .flatten()
        .find_map(|c| c.addr().map(|a| a.uri.to_string()))
}

impl UeCore {
    fn sdp_for(&mut self, call_id: &str, qos: Option<(QosState, QosState)>) -> String {
        let ip = self.cfg.local_ip;
        let port = self.media_port;
        let Some(c) = self.calls.get_mut(call_id) else {
            return String::new();
        };
        c.sdp_version += 1;
        sdp::body(&SdpParams {
            ip,
            port,
            session_id: c.session_id,
            version: c.sdp_version,
            qos,
        })
    }

    fn set_state(&mut self, call_id: &str, state: CallState) {
        if let Some(c) = self.calls.get_mut(call_id)
            && c.state != state
        {
            c.state = state;
            self.emit(Event::Call {
                call_id: call_id.to_owned(),
                state,
            });
            if state == CallState::Terminated {
                self.calls.remove(call_id);
            }
        }
    }

    /// Calls `to` (a SIP or tel URI). Returns the Call-ID.
    pub fn invite(&mut self, now: Instant, to: &str, opts: CallOptions) -> Result<String, Error> {
        let call_id = format!("{}@{}", self.ids.token(), host(self.cfg.local_ip));
        let impu = self.cfg.impu.as_str().to_owned();
        let session_id = self.ids.next_u64() >> 16;
        let tag = self.ids.token();
        self.calls.insert(
            call_id.clone(),
            Call {
                role: Role::Caller,
                state: CallState::Trying,
                local_tag: tag.clone(),
                remote_tag: None,
                local_uri: format!("<{impu}>"),
                remote_uri: format!("<{to}>"),
                local_cseq: 1,
                remote_target: None,
                route_set: Vec::new(),
                invite_tx: None,
                invite_server: None,
                invite: None,
                invite_peer: None,
                preconditions: opts.preconditions,
                sdp_version: 0,
                session_id,
                answered_reliably: false,
                rseq: 0,
                last_rseq: None,
                updated: false,
                session_timer: None,
            },
        );
        let qos = opts
            .preconditions
            .then_some((QosState::None, QosState::None));
        let body = self.sdp_for(&call_id, qos);
        let peer = self.request_peer();
        let p = self.cfg.profile.clone();
        let mut d = Draft::request("INVITE", to)
            .h("Via", self.via(&peer))
            .h("Max-Forwards", 70);
        for r in self.initial_route() {
            d = d.h("Route", r);
        }
        d = d
            .h("From", format!("<{impu}>;tag={tag}"))
            .h("To", format!("<{to}>"))
            .h("Call-ID", &call_id)
            .h("CSeq", "1 INVITE")
            .h(
                "Contact",
                format!("<{}>;{}", self.contact_uri(), p.contact_params),
            )
            .h("P-Preferred-Identity", format!("<{impu}>"))
            .h(
                "P-Preferred-Service",
                "urn:urn-7:3gpp-service.ims.icsi.mmtel",
            )
            .h(
                "Accept-Contact",
                "*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\"",
            )
            .h("P-Access-Network-Info", p.access_network_info)
            .h("Allow", p.allow);
        d = match opts.session_expires {
            Some(se) => {
                let timer = p
                    .invite_supported
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("timer"));
                let supported = if timer {
                    p.invite_supported.to_owned()
                } else {
                    format!("{}, timer", p.invite_supported)
                };
                d.h("Supported", supported)
                    .h("Session-Expires", se)
                    .h("Min-SE", MIN_SE)
            }
            None => d.h("Supported", p.invite_supported),
        };
        d = d.h("User-Agent", p.user_agent);
        if opts.preconditions {
            d = d.h("Require", "precondition");
        }
        let msg = d.body("application/sdp", body).build()?;
        if let Some(c) = self.calls.get_mut(&call_id) {
            c.invite = Some(msg.clone());
            c.invite_peer = Some(peer.clone());
        }
        match self.layer.send_request(now, msg, peer) {
            Ok((id, outs)) => {
                self.pending.insert(id, Purpose::Invite(call_id.clone()));
                if let Some(c) = self.calls.get_mut(&call_id) {
                    c.invite_tx = Some(id);
                }
                self.tx_outputs(now, outs);
            }
            Err(e) => {
                self.calls.remove(&call_id);
                return Err(Error::BuildMessage { source: e });
            }
        }
        Ok(call_id)
    }

    /// A request inside the dialog of `call_id` (RFC 3261 §12.2.1.1).
    fn dialog_request(
        &mut self,
        call_id: &str,
        method: &str,
        cseq: Option<u32>,
        extra: &[(&str, String)],
        body: Option<(&str, String)>,
    ) -> Result<(Message, Peer), Error> {
        let peer = self.request_peer();
        let via = self.via(&peer);
        let contact = format!("<{}>", self.contact_uri());
        let c = self.calls.get_mut(call_id).ok_or(Error::NoSuchCall {
            call_id: call_id.to_owned(),
        })?;
        let seq = match cseq {
            Some(s) => s,
            None => {
                c.local_cseq += 1;
                c.local_cseq
            }
        };
        let target = c
            .remote_target
            .clone()
            .unwrap_or_else(|| c.remote_uri.trim_matches(['<', '>']).to_owned());
        let mut d = Draft::request(method, &target)
            .h("Via", via)
            .h("Max-Forwards", 70);
        for r in &c.route_set {
            d = d.h("Route", r);
        }
        let remote = match &c.remote_tag {
            Some(t) => format!("{};tag={t}", c.remote_uri),
            None => c.remote_uri.clone(),
        };
        d = d
            .h("From", format!("{};tag={}", c.local_uri, c.local_tag))
            .h("To", remote)
            .h("Call-ID", call_id)
            .h("CSeq", format!("{seq} {method}"));
        if matches!(method, "UPDATE" | "INVITE" | "PRACK") {
            d = d.h("Contact", contact);
        }
        for (n, v) in extra {
            d = d.h(n, v);
        }
        if let Some((ct, b)) = body {
            d = d.body(ct, b);
        }
        Ok((d.build()?, peer))
    }

    pub(crate) fn on_invite_response(
        &mut self,
        now: Instant,
        call_id: &str,
        id: ClientId,
        resp: Message,
    ) {
        let Some(status) = resp.status() else { return };
        let Some(call) = self.calls.get_mut(call_id) else {
            if status.is_success() {
                self.ack_2xx(now, call_id, &resp);
            }
            return;
        };
        let to_tag = resp
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned));
        // The first 2xx decides the dialog even when early dialogs of other forks came
        // first (RFC 3261 §13.2.2.4).
        let new_dialog = call.remote_tag.is_none()
            || (status.is_success()
                && call.state != CallState::Confirmed
                && to_tag != call.remote_tag);
        if (status.is_provisional() && to_tag.is_some()) || status.is_success() {
            if new_dialog {
                call.remote_tag = to_tag;
                // Caller's route set: Record-Route in reverse (§12.1.2).
                let mut rr: Vec<String> = resp
                    .values(&HeaderName::RECORD_ROUTE)
                    .map(|v| String::from_utf8_lossy(v).trim().to_owned())
                    .collect();
                rr.reverse();
                call.route_set = rr;
            }
            if let Some(t) = contact_uri_of(&resp) {
                call.remote_target = Some(t);
            }
        }
        if status.is_provisional() {
            if status == StatusCode::TRYING {
                return;
            }
            let reliable = header_list(&resp, &HeaderName::REQUIRE)
                .iter()
                .any(|t| t == "100rel");
            let rseq = resp
                .header_str(&HeaderName::RSEQ)
                .and_then(Result::ok)
                .and_then(|v| v.trim().parse::<u32>().ok());
            let state = if status == StatusCode::RINGING {
                CallState::Ringing
            } else {
                CallState::Early
            };
            self.set_state(call_id, state);
            if reliable && let Some(rseq) = rseq {
                let fresh = self
                    .calls
                    .get(call_id)
                    .is_some_and(|c| c.last_rseq.is_none_or(|l| rseq > l));
                if fresh {
                    if let Some(c) = self.calls.get_mut(call_id) {
                        c.last_rseq = Some(rseq);
                    }
                    let rack = format!("{rseq} 1 INVITE");
                    match self.dialog_request(call_id, "PRACK", None, &[("RAck", rack)], None) {
                        Ok((m, peer)) => {
                            self.send(now, m, peer, Purpose::Prack(call_id.to_owned()))
                        }
                        Err(e) => self.diag("prack", Outcome::Failed, e.to_string()),
                    }
                }
            }
            return;
        }
        if status.is_success() {
            self.pending.remove(&id);
            if let Some(c) = self.calls.get_mut(call_id) {
                c.session_timer =
                    session_expires(&resp).map(|(interval, refresher)| SessionTimer {
                        interval,
                        local_refresher: refresher.as_deref() != Some("uas"),
                    });
            }
            self.ack_2xx(now, call_id, &resp);
            self.set_state(call_id, CallState::Confirmed);
            return;
        }
        self.pending.remove(&id);
        let reason = format!(
            "{} {}",
            status.as_u16(),
            String::from_utf8_lossy(resp.reason_phrase().unwrap_or_default())
        );
        self.call_failed(call_id, &reason);
    }

    pub(crate) fn call_failed(&mut self, call_id: &str, reason: &str) {
        if self.calls.contains_key(call_id) {
            self.diag("call", Outcome::Failed, reason.to_owned());
            self.set_state(call_id, CallState::Terminated);
        }
    }

    pub(crate) fn on_prack_response(&mut self, now: Instant, call_id: &str, resp: &Message) {
        if !resp.status().is_some_and(StatusCode::is_success) {
            return;
        }
        // With preconditions, resources are "reserved" at once: tell the callee (UPDATE).
        let needs_update = self
            .calls
            .get(call_id)
            .is_some_and(|c| c.preconditions && !c.updated && c.role == Role::Caller);
        if needs_update {
            if let Some(c) = self.calls.get_mut(call_id) {
                c.updated = true;
            }
            let body = self.sdp_for(call_id, Some((QosState::SendRecv, QosState::None)));
            match self.dialog_request(
                call_id,
                "UPDATE",
                None,
                &[],
                Some(("application/sdp", body)),
            ) {
                Ok((m, peer)) => self.send(now, m, peer, Purpose::Update(call_id.to_owned())),
                Err(e) => self.diag("update", Outcome::Failed, e.to_string()),
            }
        }
    }

    /// ACK for a 2xx (§13.2.2.4): a new transaction-less request in the dialog.
    pub(crate) fn ack_2xx(&mut self, _now: Instant, call_id: &str, resp: &Message) {
        let cseq = resp.cseq().map(|c| c.seq).unwrap_or(1);
        if !self.calls.contains_key(call_id) {
            return;
        }
        if let Ok((ack, peer)) = self.dialog_request(call_id, "ACK", Some(cseq), &[], None) {
            self.send_stateless(&ack, peer);
        }
    }

    /// Hangs up: BYE when confirmed, CANCEL while the caller waits, 486 while the callee rings.
    pub fn hangup(&mut self, now: Instant, call_id: &str) -> Result<(), Error> {
        let c = self.calls.get(call_id).ok_or(Error::NoSuchCall {
            call_id: call_id.to_owned(),
        })?;
        match (c.role, c.state) {
            (_, CallState::Confirmed) => {
                let (m, peer) = self.dialog_request(call_id, "BYE", None, &[], None)?;
                self.send(now, m, peer, Purpose::Bye(call_id.to_owned()));
                self.set_state(call_id, CallState::Terminated);
            }
            (Role::Caller, _) => {
                let invite = c.invite.clone().ok_or(Error::NoSuchCall {
                    call_id: call_id.to_owned(),
                })?;
                let peer = c.invite_peer.clone().unwrap_or_else(|| self.request_peer());
                let cancel =
                    build_cancel(&invite).map_err(|source| Error::BuildMessage { source })?;
                self.send(now, cancel, peer, Purpose::Cancel(call_id.to_owned()));
            }
            (Role::Callee, _) => self.reject(now, call_id, Rejection::BUSY)?,
        }
        Ok(())
    }

    /// Turns down the incoming call `call_id` while it rings, with `why`'s final status
    /// (486 busy, 480 no answer, 603 declined...).
    pub fn reject(&mut self, now: Instant, call_id: &str, why: Rejection) -> Result<(), Error> {
        let c = self.calls.get(call_id).ok_or(Error::NoSuchCall {
            call_id: call_id.to_owned(),
        })?;
        let (Role::Callee, Some(inv), Some(id)) = (c.role, c.invite.clone(), c.invite_server)
        else {
            return Err(Error::NoSuchCall {
                call_id: call_id.to_owned(),
            });
        };
        if c.state == CallState::Confirmed {
            return Err(Error::NoSuchCall {
                call_id: call_id.to_owned(),
            });
        }
        let tag = c.local_tag.clone();
        if let Some(r) = self.response_to(&inv, why.0, Some(&tag), &[], None) {
            self.respond(now, id, &r);
        }
        self.set_state(call_id, CallState::Terminated);
        Ok(())
    }

    /// Answers an incoming call with 200 OK.
    pub fn answer(&mut self, now: Instant, call_id: &str) -> Result<(), Error> {
        let c = self.calls.get(call_id).ok_or(Error::NoSuchCall {
            call_id: call_id.to_owned(),
        })?;
        let (Some(inv), Some(id)) = (c.invite.clone(), c.invite_server) else {
            return Err(Error::NoSuchCall {
                call_id: call_id.to_owned(),
            });
        };
        let tag = c.local_tag.clone();
        let timer = c.session_timer;
        let body = if c.answered_reliably {
            None
        } else {
            let qos = c
                .preconditions
                .then_some((QosState::SendRecv, QosState::SendRecv));
            Some(("application/sdp", self.sdp_for(call_id, qos).into_bytes()))
        };
        let mut extra = vec![
            ("Contact", format!("<{}>", self.contact_uri())),
            ("Allow", self.cfg.profile.allow.to_owned()),
        ];
        if let Some(t) = timer {
            // RFC 4028 §9: the interval and refresher in the 2xx, and Require: timer.
            let who = if t.local_refresher { "uas" } else { "uac" };
            extra.push(("Session-Expires", format!("{};refresher={who}", t.interval)));
            extra.push(("Require", "timer".to_owned()));
        }
        if let Some(r) = self.response_to(&inv, 200, Some(&tag), &extra, body) {
            self.respond(now, id, &r);
        }
        self.set_state(call_id, CallState::Confirmed);
        Ok(())
    }

    pub(crate) fn on_invite(&mut self, now: Instant, id: ServerId, req: &Message) {
        let Ok(call_id) = req.call_id().map(|c| c.as_str().to_owned()) else {
            return;
        };
        if self.calls.contains_key(&call_id) {
            // A re-INVITE: accept it as it is.
            self.in_dialog_ok(now, id, req);
            return;
        }
        let from_hdr = req.from_header().ok();
        let remote_tag = from_hdr.as_ref().and_then(|f| f.tag().map(str::to_owned));
        let remote_uri = from_hdr.map(|f| format!("<{}>", f.uri)).unwrap_or_default();
        let local_uri = req
            .to_header()
            .map(|t| format!("<{}>", t.uri))
            .unwrap_or_default();
        let supported = header_list(req, &HeaderName::SUPPORTED);
        let require = header_list(req, &HeaderName::REQUIRE);
        let rel = supported.iter().chain(&require).any(|t| t == "100rel");
        let preconditions = sdp::has_preconditions(req.body())
            && supported
                .iter()
                .chain(&require)
                .any(|t| t == "precondition");
        // RFC 4028 §9: too small an interval gets 422 with our Min-SE.
        let timer = session_expires(req);
        if let Some((se, _)) = &timer
            && *se < MIN_SE
        {
            let extra = [("Min-SE", MIN_SE.to_string())];
            if let Some(r) = self.response_to(req, 422, None, &extra, None) {
                self.respond(now, id, &r);
            }
            self.diag(
                "call",
                Outcome::Failed,
                format!("Session-Expires {se} below Min-SE {MIN_SE}: 422"),
            );
            return;
        }
        let session_timer = timer.map(|(interval, refresher)| SessionTimer {
            interval,
            local_refresher: refresher.as_deref() == Some("uas"),
        });
        let tag = self.ids.token();
        let session_id = self.ids.next_u64() >> 16;
        let route_set = req
            .values(&HeaderName::RECORD_ROUTE)
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
            .collect();
        self.calls.insert(
            call_id.clone(),
            Call {
                role: Role::Callee,
                state: CallState::Trying,
                local_tag: tag.clone(),
                remote_tag,
                local_uri,
                remote_uri,
                local_cseq: 0,
                remote_target: contact_uri_of(req),
                route_set,
                invite_tx: None,
                invite_server: Some(id),
                invite: Some(req.clone()),
                invite_peer: None,
                preconditions,
                sdp_version: 0,
                session_id,
                answered_reliably: false,
                rseq: 0,
                last_rseq: None,
                updated: false,
                session_timer,
            },
        );
        let contact = ("Contact", format!("<{}>", self.contact_uri()));
        if preconditions && rel {
            // 183 with the SDP answer, reliably (TS 24.229 §5.1.4.1).
            let body = self.sdp_for(&call_id, Some((QosState::None, QosState::None)));
            if let Some(c) = self.calls.get_mut(&call_id) {
                c.rseq = 1;
                c.answered_reliably = true;
            }
            let extra = [
                contact,
                ("Require", "100rel, precondition".to_owned()),
                ("RSeq", "1".to_owned()),
                ("Allow", self.cfg.profile.allow.to_owned()),
            ];
            if let Some(r) = self.response_to(
                req,
                183,
                Some(&tag),
                &extra,
                Some(("application/sdp", body.into_bytes())),
            ) {
                self.respond(now, id, &r);
            }
            self.set_state(&call_id, CallState::Early);
        } else {
            if let Some(r) = self.response_to(req, 180, Some(&tag), &[contact], None) {
                self.respond(now, id, &r);
            }
            self.set_state(&call_id, CallState::Ringing);
        }
    }

    pub(crate) fn on_update(&mut self, now: Instant, id: ServerId, req: &Message) {
        let call_id = req
            .call_id()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        let Some(c) = self.calls.get(&call_id) else {
            if let Some(r) = self.response_to(req, 481, None, &[], None) {
                self.respond(now, id, &r);
            }
            return;
        };
        let ringing = c.state == CallState::Ringing;
        let qos = c
            .preconditions
            .then_some((QosState::SendRecv, QosState::SendRecv));
        let body = if req.body().is_empty() {
            None
        } else {
            Some(("application/sdp", self.sdp_for(&call_id, qos).into_bytes()))
        };
        let extra = [("Contact", format!("<{}>", self.contact_uri()))];
        if let Some(r) = self.response_to(req, 200, None, &extra, body) {
            self.respond(now, id, &r);
        }
        // Preconditions met: now alert (TS 24.229 §5.1.4.1).
        if !ringing
            && let Some(c) = self.calls.get(&call_id)
            && let (Some(inv), Some(sid)) = (c.invite.clone(), c.invite_server)
        {
            let tag = c.local_tag.clone();
            let contact = [("Contact", format!("<{}>", self.contact_uri()))];
            if let Some(r) = self.response_to(&inv, 180, Some(&tag), &contact, None) {
                self.respond(now, sid, &r);
            }
            self.set_state(&call_id, CallState::Ringing);
        }
    }

    pub(crate) fn on_bye(&mut self, now: Instant, id: ServerId, req: &Message) {
        let call_id = req
            .call_id()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        let code = if self.calls.contains_key(&call_id) {
            200
        } else {
            481
        };
        if let Some(r) = self.response_to(req, code, None, &[], None) {
            self.respond(now, id, &r);
        }
        self.set_state(&call_id, CallState::Terminated);
    }

    pub(crate) fn on_cancel(
        &mut self,
        now: Instant,
        id: ServerId,
        req: &Message,
        cancels: Option<ServerId>,
    ) {
        let call_id = req
            .call_id()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        let code = if cancels.is_some() { 200 } else { 481 };
        if let Some(r) = self.response_to(req, code, None, &[], None) {
            self.respond(now, id, &r);
        }
        if let (Some(inv_id), Some(c)) = (cancels, self.calls.get(&call_id))
            && let Some(inv) = c.invite.clone()
        {
            let tag = c.local_tag.clone();
            if let Some(r) = self.response_to(&inv, 487, Some(&tag), &[], None) {
                self.respond(now, inv_id, &r);
            }
            self.set_state(&call_id, CallState::Terminated);
        }
    }

    /// The Call-ID of the newest call in `state`, if any (for scenarios that answer "the
    /// incoming call").
    pub fn call_in_state(&self, role: Role, states: &[CallState]) -> Option<String> {
        self.calls
            .iter()
            .find(|(_, c)| c.role == role && states.contains(&c.state))
            .map(|(id, _)| id.clone())
    }

    /// The Call-ID of any live call.
    pub fn any_call(&self) -> Option<String> {
        self.calls.keys().next().cloned()
    }
}
