//! Call behaviours of the pure UE core between soft UEs wired back to back (the "network"
//! forwards every message unchanged): rejection statuses, session timers and forking.

use std::net::SocketAddr;
use std::time::Instant;

use imslab_scenarios::ue::{
    CallOptions, CallState, Event, MIN_SE, Output, Rejection, Role, SessionTimer, UeCore,
};
use imslab_sip::header::Transport;
use imslab_sip::transaction::Peer;
use imslab_sip::{HeaderName, Message};
use imslab_types::Impu;

use crate::fake::{DOMAIN, K_HEX};
use crate::ue_core::config;

const A: &str = "127.0.0.2:5070";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ue(name: &str, ip: &str) -> UeCore {
    let mut cfg = config(name, None, K_HEX);
    cfg.local_ip = ip.parse().unwrap();
    cfg.pcscf = addr(A);
    cfg.impu = Impu::new(format!("sip:{name}@{DOMAIN}")).unwrap();
    UeCore::new(cfg, u64::from(name.as_bytes()[0]))
}

/// One caller and some callees. Requests of the caller's INVITE transaction go to every
/// callee (a forking proxy); its other requests go to the callee whose tag is in To.
struct Net {
    a: UeCore,
    callees: Vec<(String, UeCore)>,
    now: Instant,
    /// Every message on the wire: (sender, message).
    wire: Vec<(String, Message)>,
    /// Call states by UE name.
    states: Vec<(String, CallState)>,
}

impl Net {
    fn new(callees: &[(&str, &str)]) -> Self {
        let mut a_cfg = config("alice", None, K_HEX);
        a_cfg.pcscf = addr("127.0.0.3:5070");
        Self {
            a: UeCore::new(a_cfg, 1),
            callees: callees
                .iter()
                .map(|(n, ip)| ((*n).to_owned(), ue(n, ip)))
                .collect(),
            now: Instant::now(),
            wire: Vec::new(),
            states: Vec::new(),
        }
    }

    fn tag_of(&self, i: usize) -> Option<String> {
        let (_, c) = &self.callees[i];
        c.calls()
            .next()
            .map(|(_, call)| call.local_tag().to_owned())
    }

    /// Moves messages until nothing moves.
    fn settle(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(o) = self.a.poll_output() {
                match o {
                    Output::Transmit { bytes, .. } => {
                        moved = true;
                        let m = Message::parse(bytes).unwrap();
                        self.wire.push(("alice".into(), m.clone()));
                        let to_tag = m.to_header().ok().and_then(|t| t.tag().map(str::to_owned));
                        let targets: Vec<usize> = (0..self.callees.len())
                            .filter(|&i| to_tag.is_none() || to_tag == self.tag_of(i))
                            .collect();
                        for i in targets {
                            self.callees[i].1.handle_message(
                                self.now,
                                m.clone(),
                                Peer::new(Transport::Udp, addr(A)),
                            );
                        }
                    }
                    Output::Event(Event::Call { state, .. }) => {
                        self.states.push(("alice".into(), state));
                    }
                    _ => {}
                }
            }
            for (name, c) in &mut self.callees {
                while let Some(o) = c.poll_output() {
                    match o {
                        Output::Transmit { bytes, .. } => {
                            moved = true;
                            let m = Message::parse(bytes).unwrap();
                            self.wire.push((name.clone(), m.clone()));
                            let from = SocketAddr::new(c.config().local_ip, 5070);
                            self.a
                                .handle_message(self.now, m, Peer::new(Transport::Udp, from));
                        }
                        Output::Event(Event::Call { state, .. }) => {
                            self.states.push((name.clone(), state));
                        }
                        _ => {}
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("messages kept moving");
    }

    fn ringing(&self, i: usize) -> String {
        self.callees[i]
            .1
            .call_in_state(Role::Callee, &[CallState::Ringing, CallState::Early])
            .expect("the callee rings")
    }

    fn statuses_from(&self, who: &str) -> Vec<(u16, String)> {
        self.wire
            .iter()
            .filter(|(w, m)| w == who && !m.is_request())
            .map(|(_, m)| {
                (
                    m.status().unwrap().as_u16(),
                    m.cseq().unwrap().method.as_str().to_owned(),
                )
            })
            .collect()
    }

    fn requests_from(&self, who: &str, method: &str) -> Vec<Message> {
        self.wire
            .iter()
            .filter(|(w, m)| w == who && m.method().is_some_and(|me| me.as_str() == method))
            .map(|(_, m)| m.clone())
            .collect()
    }

    fn states_of(&self, who: &str) -> Vec<CallState> {
        self.states
            .iter()
            .filter(|(w, _)| w == who)
            .map(|(_, s)| *s)
            .collect()
    }
}

fn header(m: &Message, name: &HeaderName) -> String {
    m.header_str(name)
        .and_then(Result::ok)
        .unwrap_or_default()
        .to_owned()
}

fn reject_with(why: Rejection) -> Net {
    let mut net = Net::new(&[("bob", "127.0.0.3")]);
    let now = net.now;
    net.a
        .invite(now, &format!("sip:bob@{DOMAIN}"), CallOptions::default())
        .unwrap();
    net.settle();
    let id = net.ringing(0);
    net.callees[0].1.reject(now, &id, why).unwrap();
    net.settle();
    net
}

#[test]
fn callee_rejections_reach_the_caller_with_their_status_and_are_acknowledged() {
    for why in [Rejection::BUSY, Rejection::NO_ANSWER, Rejection::DECLINE] {
        let net = reject_with(why);
        assert!(
            net.statuses_from("bob")
                .contains(&(why.0, "INVITE".to_owned())),
            "{why:?}: {:?}",
            net.statuses_from("bob")
        );
        // The transaction layer ACKs a non-2xx final response (RFC 3261 §17.1.1.3).
        assert_eq!(net.requests_from("alice", "ACK").len(), 1, "{why:?}");
        assert_eq!(
            net.states_of("alice").last(),
            Some(&CallState::Terminated),
            "{why:?}"
        );
        assert_eq!(net.states_of("bob").last(), Some(&CallState::Terminated));
    }
}

#[test]
fn a_confirmed_call_cannot_be_rejected() {
    let mut net = Net::new(&[("bob", "127.0.0.3")]);
    let now = net.now;
    net.a
        .invite(now, &format!("sip:bob@{DOMAIN}"), CallOptions::default())
        .unwrap();
    net.settle();
    let id = net.ringing(0);
    net.callees[0].1.answer(now, &id).unwrap();
    net.settle();
    assert!(
        net.callees[0]
            .1
            .reject(now, &id, Rejection::DECLINE)
            .is_err()
    );
}

#[test]
fn session_timer_is_offered_and_the_callee_names_the_caller_as_refresher() {
    let mut net = Net::new(&[("bob", "127.0.0.3")]);
    let now = net.now;
    let opts = CallOptions {
        session_expires: Some(1800),
        ..CallOptions::default()
    };
    let call = net
        .a
        .invite(now, &format!("sip:bob@{DOMAIN}"), opts)
        .unwrap();
    net.settle();
    let invite = net.requests_from("alice", "INVITE").remove(0);
    assert_eq!(header(&invite, &HeaderName::SESSION_EXPIRES), "1800");
    assert_eq!(header(&invite, &HeaderName::MIN_SE), MIN_SE.to_string());
    assert!(header(&invite, &HeaderName::SUPPORTED).contains("timer"));
    let id = net.ringing(0);
    net.callees[0].1.answer(now, &id).unwrap();
    net.settle();
    let ok = net
        .wire
        .iter()
        .find(|(w, m)| w == "bob" && m.status().is_some_and(|s| s.as_u16() == 200))
        .map(|(_, m)| m.clone())
        .expect("200 to the INVITE");
    assert_eq!(
        header(&ok, &HeaderName::SESSION_EXPIRES),
        "1800;refresher=uac"
    );
    assert_eq!(header(&ok, &HeaderName::REQUIRE), "timer");
    let timer = net
        .a
        .calls()
        .find(|(id, _)| **id == call)
        .and_then(|(_, c)| c.session_timer());
    assert_eq!(
        timer,
        Some(SessionTimer {
            interval: 1800,
            local_refresher: true
        })
    );
    let timer = net.callees[0]
        .1
        .calls()
        .next()
        .and_then(|(_, c)| c.session_timer());
    assert_eq!(
        timer,
        Some(SessionTimer {
            interval: 1800,
            local_refresher: false
        })
    );
}

#[test]
fn session_interval_below_min_se_is_refused_with_422_naming_min_se() {
    let mut net = Net::new(&[("bob", "127.0.0.3")]);
    let now = net.now;
    let opts = CallOptions {
        session_expires: Some(30),
        ..CallOptions::default()
    };
    net.a
        .invite(now, &format!("sip:bob@{DOMAIN}"), opts)
        .unwrap();
    net.settle();
    let resp = net
        .wire
        .iter()
        .find(|(w, m)| w == "bob" && m.status().is_some_and(|s| s.as_u16() == 422))
        .map(|(_, m)| m.clone())
        .expect("422 Session Interval Too Small");
    assert_eq!(header(&resp, &HeaderName::MIN_SE), "90");
    assert_eq!(net.states_of("alice").last(), Some(&CallState::Terminated));
    assert!(net.states_of("bob").is_empty(), "no call at the callee");
}

#[test]
fn forked_call_is_confirmed_with_the_fork_that_answered_first() {
    let mut net = Net::new(&[("carol", "127.0.0.3"), ("carol", "127.0.0.4")]);
    let now = net.now;
    net.a
        .invite(now, &format!("sip:carol@{DOMAIN}"), CallOptions::default())
        .unwrap();
    net.settle();
    // Both forks ring: two early dialogs with different To tags.
    let ringing: Vec<Message> = net
        .wire
        .iter()
        .filter(|(_, m)| m.status().is_some_and(|s| s.as_u16() == 180))
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(ringing.len(), 2);
    let second_tag = net.tag_of(1).unwrap();
    let id = net.ringing(1);
    net.callees[1].1.answer(now, &id).unwrap();
    net.settle();
    let ack = net.requests_from("alice", "ACK").remove(0);
    assert_eq!(
        ack.to_header().unwrap().tag(),
        Some(second_tag.as_str()),
        "ACK goes to the dialog of the 2xx"
    );
    let call = net.a.any_call().unwrap();
    net.a.hangup(now, &call).unwrap();
    net.settle();
    let bye = net.requests_from("alice", "BYE").remove(0);
    assert_eq!(bye.to_header().unwrap().tag(), Some(second_tag.as_str()));
    assert!(
        net.wire.iter().any(|(w, m)| w == "carol"
            && m.status().is_some_and(|s| s.as_u16() == 200)
            && m.cseq().unwrap().method.as_str() == "BYE"),
        "the answering fork accepts the BYE"
    );
    assert_eq!(net.states_of("alice").last(), Some(&CallState::Terminated));
}

#[test]
fn callee_copies_the_invites_record_route_into_its_dialog_responses() {
    let mut net = Net::new(&[("bob", "127.0.0.3")]);
    let now = net.now;
    net.a
        .invite(now, &format!("sip:bob@{DOMAIN}"), CallOptions::default())
        .unwrap();
    // The proxies on the way record-route: the INVITE reaches bob with two Record-Route values.
    let bytes = loop {
        match net.a.poll_output() {
            Some(Output::Transmit { bytes, .. }) => break bytes,
            Some(_) => {}
            None => panic!("alice sent no INVITE"),
        }
    };
    let mut invite = Message::parse(bytes).unwrap();
    let recorded = [
        "<sip:pcscf-token@127.0.0.8:5060;lr>",
        "<sip:term@127.0.0.9:6060;lr>",
    ];
    for rr in recorded.iter().rev() {
        invite
            .prepend_header(HeaderName::RECORD_ROUTE, (*rr).to_owned())
            .unwrap();
    }
    let bob = &mut net.callees[0].1;
    bob.handle_message(now, invite, Peer::new(Transport::Udp, addr(A)));
    let id = bob
        .call_in_state(Role::Callee, &[CallState::Ringing, CallState::Early])
        .expect("bob rings");
    bob.answer(now, &id).unwrap();
    let mut responses = Vec::new();
    while let Some(o) = bob.poll_output() {
        if let Output::Transmit { bytes, .. } = o {
            let m = Message::parse(bytes).unwrap();
            if !m.is_request() {
                responses.push(m);
            }
        }
    }
    let record_route = |m: &Message| -> Vec<String> {
        m.values(&HeaderName::RECORD_ROUTE)
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
            .collect()
    };
    // RFC 3261 §12.1.1: every Record-Route value, in order, in the responses that make the dialog.
    for code in [180, 200] {
        let r = responses
            .iter()
            .find(|m| m.status().is_some_and(|s| s.as_u16() == code))
            .unwrap_or_else(|| panic!("bob sent no {code}"));
        assert_eq!(record_route(r), recorded, "{code}");
    }
}
