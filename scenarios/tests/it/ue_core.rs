//! The pure UE core against a scripted network on a virtual clock: no sockets.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use imslab_ipsec::{CipherSuite, EncryptionAlg, IntegrityAlg, SaBundle};
use imslab_scenarios::ue::{
    AuthHint, CallOptions, CallState, Credentials, Event, IpsecSettings, Link, OperatorKey, Output,
    Profile, Purpose, UeConfig, UeCore, UePorts, UeTransport,
};
use imslab_sip::header::Transport;
use imslab_sip::transaction::Peer;
use imslab_sip::{HeaderName, Message};
use imslab_types::{Impi, Impu, Imsi, K, Opc, Realm, Sqn};

use crate::fake::{DOMAIN, FakeNet, IMSI, K_HEX, NetOut, OPC_HEX, Scheme};

const UE_PORT: u16 = 5070;

fn ue_ip() -> IpAddr {
    "127.0.0.2".parse().unwrap()
}

fn pcscf() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

pub(crate) fn config(name: &str, ipsec: Option<Vec<CipherSuite>>, k: &str) -> UeConfig {
    UeConfig {
        name: name.into(),
        imsi: Some(Imsi::new(IMSI).unwrap()),
        impi: Impi::new(format!("{IMSI}@{DOMAIN}")).unwrap(),
        impu: Impu::new(format!("sip:{IMSI}@{DOMAIN}")).unwrap(),
        domain: Realm::new(DOMAIN).unwrap(),
        credentials: Credentials {
            aka: Some((
                K::from_hex(k).unwrap(),
                OperatorKey::Opc(Opc::from_hex(OPC_HEX).unwrap()),
            )),
            amf: None,
            sqn_ms: None,
            password: Some("secret".into()),
        },
        profile: Profile::samsung(),
        auth_hint: AuthHint::None,
        transport: UeTransport::Udp,
        ipsec: ipsec.map(|offers| IpsecSettings {
            offers,
            ports: UePorts {
                port_c: 31000,
                port_c_alt: 31001,
                port_s: 31002,
            },
        }),
        local_ip: ue_ip(),
        local_port: UE_PORT,
        pcscf: pcscf(),
        expires: Some(600),
        ignore_mac_failure: false,
        auto_refresh: false,
        serial: 1,
    }
}

struct Harness {
    ue: UeCore,
    net: FakeNet,
    now: Instant,
    events: Vec<Event>,
    ue_sas: Vec<SaBundle>,
    net_sas: Vec<SaBundle>,
    responses_from_ue: Vec<Message>,
}

impl Harness {
    fn new(cfg: UeConfig) -> Self {
        Self {
            ue: UeCore::new(cfg, 42),
            net: FakeNet::new(pcscf()),
            now: Instant::now(),
            events: Vec::new(),
            ue_sas: Vec::new(),
            net_sas: Vec::new(),
            responses_from_ue: Vec::new(),
        }
    }

    fn deliver(&mut self, msg: Message, protected_from: Option<SocketAddr>, ue_port: u16) {
        let peer = match protected_from {
            Some(from) => Link::protected_peer(from, ue_port, Transport::Udp),
            None => Peer::new(Transport::Udp, pcscf()),
        };
        self.ue.handle_message(self.now, msg, peer);
    }

    fn pump(&mut self) {
        while let Some(o) = self.ue.poll_output() {
            match o {
                Output::Transmit { link, to, bytes } => {
                    let msg = Message::parse(bytes).unwrap();
                    let (protected, src_port) = match link {
                        Link::Protected { src_port, .. } => (true, src_port),
                        Link::Plain { .. } => (false, UE_PORT),
                    };
                    if protected {
                        assert_eq!(to.ip(), pcscf().ip());
                    } else {
                        assert_eq!(to, pcscf());
                    }
                    if !msg.is_request() {
                        self.responses_from_ue.push(msg);
                        continue;
                    }
                    let from = SocketAddr::new(ue_ip(), src_port);
                    for out in self.net.handle(&msg, from, protected) {
                        match out {
                            NetOut::Respond(r) => {
                                self.deliver(r, protected.then_some(to), src_port);
                            }
                            NetOut::Request(r) => self.net_request(r),
                            NetOut::Install(b) => self.net_sas.push(b),
                        }
                    }
                }
                Output::InstallSa(b) => self.ue_sas.push(*b),
                Output::RemoveSa(b) => self.ue_sas.retain(|x| *x != *b),
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    fn net_request(&mut self, r: Message) {
        match self.net.ue_server() {
            Some(server) => {
                let from = SocketAddr::new(pcscf().ip(), self.net.ports.port_c);
                self.deliver(r, Some(from), server.port());
            }
            None => self.deliver(r, None, UE_PORT),
        }
    }

    fn registered(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::Registered { .. }))
    }

    fn failure(&self) -> Option<(Option<u16>, String)> {
        self.events.iter().find_map(|e| match e {
            Event::RegistrationFailed { status, reason } => Some((*status, reason.clone())),
            _ => None,
        })
    }
}

fn all_suites() -> Vec<CipherSuite> {
    CipherSuite::all().collect()
}

#[test]
fn aka_registration_with_ipsec_installs_the_mirror_of_the_pcscf_sas_for_every_suite() {
    for suite in all_suites() {
        let mut h = Harness::new(config("alice", Some(vec![suite]), K_HEX));
        h.ue.register(h.now, None).unwrap();
        h.pump();
        assert!(h.registered(), "{suite:?}: {:?}", h.events);
        assert_eq!(h.net.seen, ["REGISTER", "REGISTER (protected)"]);
        assert_eq!(h.ue_sas.len(), 1);
        let net = h.net.sa.clone().unwrap();
        assert_eq!(h.ue_sas[0], net.mirrored(), "{suite:?}");
        assert_eq!(h.ue_sas[0].suite(), suite);
        assert!(h.ue.is_registered());
        assert_eq!(
            h.ue.service_route(),
            [format!("<sip:orig@scscf.{DOMAIN}:6060;lr>")]
        );
    }
}

#[test]
fn first_register_carries_empty_authorization_security_client_and_sec_agree() {
    let mut h = Harness::new(config("alice", Some(Vec::new()), K_HEX));
    h.ue.register(h.now, None).unwrap();
    let Some(Output::Transmit { bytes, .. }) = h.ue.poll_output() else {
        panic!("no REGISTER")
    };
    let m = Message::parse(bytes).unwrap();
    let auth = m.header_str(&HeaderName::AUTHORIZATION).unwrap().unwrap();
    assert!(
        auth.contains("response=\"\"") && auth.contains("nonce=\"\""),
        "{auth}"
    );
    assert!(auth.contains(&format!("username=\"{IMSI}@{DOMAIN}\"")));
    assert_eq!(
        m.header_str(&HeaderName::REQUIRE).unwrap().unwrap(),
        "sec-agree"
    );
    assert_eq!(
        m.header_str(&HeaderName::PROXY_REQUIRE).unwrap().unwrap(),
        "sec-agree"
    );
    // The Samsung profile offers six alg/ealg pairs.
    assert_eq!(m.values(&HeaderName::SECURITY_CLIENT).count(), 6);
    let contact = m.header_str(&HeaderName::CONTACT).unwrap().unwrap();
    assert!(
        contact.contains(":31002>"),
        "Contact uses port-s: {contact}"
    );
    assert!(
        contact.contains("+sip.instance=\"<urn:gsma:imei:"),
        "{contact}"
    );
    assert!(
        m.header_str(&HeaderName::USER_AGENT)
            .unwrap()
            .unwrap()
            .contains("Samsung")
    );
}

#[test]
fn sqn_out_of_range_sends_auts_and_registers_after_the_resynchronised_challenge() {
    let mut cfg = config("alice", Some(all_suites()), K_HEX);
    cfg.credentials.sqn_ms = Some(Sqn::new(32 * 5000).unwrap());
    let mut h = Harness::new(cfg);
    h.ue.register(h.now, None).unwrap();
    h.pump();
    assert!(h.registered(), "{:?}", h.events);
    assert_eq!(h.net.resyncs, 1);
    assert_eq!(
        h.net.seen,
        ["REGISTER", "REGISTER", "REGISTER (protected)"],
        "initial, AUTS, protected answer"
    );
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::Diagnosis { step: "resync", .. }))
    );
}

#[test]
fn wrong_k_fails_the_mac_check_and_the_network_rejects_the_empty_response() {
    let mut h = Harness::new(config(
        "alice",
        Some(all_suites()),
        "00112233445566778899aabbccddeeff",
    ));
    h.ue.register(h.now, None).unwrap();
    h.pump();
    assert!(!h.registered());
    assert_eq!(h.failure().map(|f| f.0), Some(Some(403)));
    assert_eq!(h.net.mac_failures, 1);
    assert!(h.ue_sas.is_empty(), "no SAs after a failed registration");
}

#[test]
fn md5_digest_registration_without_ipsec_answers_qop_auth() {
    let mut h = Harness::new(config("alice", None, K_HEX));
    h.net.scheme = Scheme::Md5;
    h.net.ipsec = false;
    h.ue.register(h.now, None).unwrap();
    h.pump();
    assert!(h.registered(), "{:?}", h.events);
    assert_eq!(h.net.seen, ["REGISTER", "REGISTER"]);
    assert!(h.ue_sas.is_empty());
}

#[test]
fn akav2_registration_succeeds_with_the_akav2_password() {
    let mut h = Harness::new(config("alice", Some(all_suites()), K_HEX));
    h.net.scheme = Scheme::AkaV2;
    h.ue.register(h.now, None).unwrap();
    h.pump();
    assert!(h.registered(), "{:?}", h.events);
}

#[test]
fn wrong_password_is_rejected_with_403() {
    let mut cfg = config("alice", None, K_HEX);
    cfg.credentials.password = Some("wrong".into());
    let mut h = Harness::new(cfg);
    h.net.scheme = Scheme::Md5;
    h.net.ipsec = false;
    h.ue.register(h.now, None).unwrap();
    h.pump();
    assert_eq!(h.failure().map(|f| f.0), Some(Some(403)));
}

#[test]
fn barred_impu_is_rejected() {
    let mut h = Harness::new(config("alice", Some(all_suites()), K_HEX));
    h.net.barred.push(format!("sip:{IMSI}@{DOMAIN}"));
    h.ue.register(h.now, None).unwrap();
    h.pump();
    assert_eq!(h.failure().map(|f| f.0), Some(Some(403)));
}

#[test]
fn reregistration_goes_over_the_sas_with_a_new_offer_and_deregistration_drops_them() {
    let mut h = Harness::new(config("alice", Some(all_suites()), K_HEX));
    h.ue.register(h.now, None).unwrap();
    h.pump();
    h.events.clear();
    h.ue.register(h.now, None).unwrap();
    h.pump();
    assert!(h.registered());
    assert_eq!(h.net.seen.last().unwrap(), "REGISTER (protected)");
    assert_eq!(h.ue_sas.len(), 1, "the SA set stays when no challenge came");
    h.ue.deregister(h.now).unwrap();
    h.pump();
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::Deregistered { .. }))
    );
    assert!(h.ue_sas.is_empty());
    assert!(!h.ue.is_registered());
}

#[test]
fn registration_expires_on_the_virtual_clock() {
    let mut cfg = config("alice", Some(all_suites()), K_HEX);
    cfg.expires = Some(60);
    let mut h = Harness::new(cfg);
    h.ue.register(h.now, None).unwrap();
    h.pump();
    assert!(h.ue.is_registered());
    let due = h.ue.poll_timeout().unwrap();
    assert!(due <= h.now + Duration::from_secs(60));
    h.now += Duration::from_secs(61);
    h.ue.handle_timeout(h.now);
    h.pump();
    assert!(!h.ue.is_registered());
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::Deregistered { reason } if reason == "expired"))
    );
}

#[test]
fn reg_event_notify_terminated_ends_the_registration_and_removes_the_sas() {
    let mut h = Harness::new(config("alice", Some(all_suites()), K_HEX));
    h.ue.register(h.now, None).unwrap();
    h.pump();
    h.ue.subscribe_reg(h.now, 600_000).unwrap();
    h.pump();
    assert_eq!(h.net.seen.last().unwrap(), "SUBSCRIBE (protected)");
    // The NOTIFY (active) came over the SAs to port-s and was answered 200 from port-s.
    assert!(
        h.responses_from_ue
            .iter()
            .any(|r| r.status().map(|s| s.as_u16()) == Some(200))
    );
    assert!(h.ue.is_registered());
    let notify = h.net.notify("terminated", "deactivated");
    h.net_request(notify);
    h.pump();
    assert!(!h.ue.is_registered());
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::Deregistered { reason } if reason == "deactivated"))
    );
    assert!(h.ue_sas.is_empty());
}

#[test]
fn sms_over_ip_and_options_get_their_200() {
    let mut h = Harness::new(config("alice", Some(all_suites()), K_HEX));
    h.ue.register(h.now, None).unwrap();
    h.pump();
    h.ue.message_sms(
        h.now,
        &format!("sip:smsc@{DOMAIN}"),
        "491701234567",
        "hello",
    )
    .unwrap();
    h.ue.options(h.now, &format!("sip:bob@{DOMAIN}")).unwrap();
    h.pump();
    let finals: Vec<(Purpose, u16)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Response { purpose, response } => {
                Some((purpose.clone(), response.status()?.as_u16()))
            }
            _ => None,
        })
        .filter(|(p, _)| matches!(p, Purpose::Message | Purpose::Options))
        .collect();
    assert_eq!(finals, [(Purpose::Message, 200), (Purpose::Options, 200)]);
}

/// Two UEs back to back (the "network" forwards every message unchanged).
fn call_flow(preconditions: bool) -> (Vec<String>, Vec<CallState>, Vec<CallState>) {
    let a_addr: SocketAddr = "127.0.0.2:5070".parse().unwrap();
    let b_addr: SocketAddr = "127.0.0.3:5070".parse().unwrap();
    let mut a_cfg = config("alice", None, K_HEX);
    a_cfg.pcscf = b_addr;
    let mut b_cfg = config("bob", None, K_HEX);
    b_cfg.local_ip = b_addr.ip();
    b_cfg.pcscf = a_addr;
    b_cfg.impu = Impu::new(format!("sip:bob@{DOMAIN}")).unwrap();
    let mut a = UeCore::new(a_cfg, 1);
    let mut b = UeCore::new(b_cfg, 2);
    let now = Instant::now();
    let mut wire = Vec::new();
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    let call = a
        .invite(
            now,
            &format!("sip:bob@{DOMAIN}"),
            CallOptions {
                preconditions,
                ..CallOptions::default()
            },
        )
        .unwrap();
    let mut answered = false;
    let mut hung_up = false;
    for _ in 0..50 {
        let mut moved = false;
        while let Some(o) = a.poll_output() {
            match o {
                Output::Transmit { bytes, .. } => {
                    moved = true;
                    let m = Message::parse(bytes).unwrap();
                    wire.push(format!("A>{}", first_line(&m)));
                    b.handle_message(now, m, Peer::new(Transport::Udp, a_addr));
                }
                Output::Event(Event::Call { state, .. }) => sa.push(state),
                _ => {}
            }
        }
        while let Some(o) = b.poll_output() {
            match o {
                Output::Transmit { bytes, .. } => {
                    moved = true;
                    let m = Message::parse(bytes).unwrap();
                    wire.push(format!("B>{}", first_line(&m)));
                    a.handle_message(now, m, Peer::new(Transport::Udp, b_addr));
                }
                Output::Event(Event::Call { state, .. }) => sb.push(state),
                _ => {}
            }
        }
        if !moved && !answered && sb.contains(&CallState::Ringing) {
            let id = b.any_call().unwrap();
            b.answer(now, &id).unwrap();
            answered = true;
        } else if !moved && answered && !hung_up && sa.contains(&CallState::Confirmed) {
            a.hangup(now, &call).unwrap();
            hung_up = true;
        } else if !moved {
            break;
        }
    }
    (wire, sa, sb)
}

fn first_line(m: &Message) -> String {
    match m.method() {
        Some(me) => me.as_str().to_owned(),
        None => {
            let s = m.status().unwrap().as_u16();
            format!("{s} {}", m.cseq().unwrap().method.as_str())
        }
    }
}

#[test]
fn call_with_preconditions_runs_183_prack_update_180_200_ack_bye() {
    let (wire, a, b) = call_flow(true);
    assert_eq!(
        wire,
        [
            "A>INVITE",
            "B>100 INVITE",
            "B>183 INVITE",
            "A>PRACK",
            "B>200 PRACK",
            "A>UPDATE",
            "B>200 UPDATE",
            "B>180 INVITE",
            "B>200 INVITE",
            "A>ACK",
            "A>BYE",
            "B>200 BYE",
        ]
    );
    assert_eq!(
        a,
        [
            CallState::Early,
            CallState::Ringing,
            CallState::Confirmed,
            CallState::Terminated
        ]
    );
    assert_eq!(
        b,
        [
            CallState::Early,
            CallState::Ringing,
            CallState::Confirmed,
            CallState::Terminated
        ]
    );
}

#[test]
fn call_without_preconditions_rings_and_is_answered() {
    let (wire, a, _) = call_flow(false);
    assert_eq!(
        wire,
        [
            "A>INVITE",
            "B>100 INVITE",
            "B>180 INVITE",
            "B>200 INVITE",
            "A>ACK",
            "A>BYE",
            "B>200 BYE"
        ]
    );
    assert_eq!(a.last(), Some(&CallState::Terminated));
}

#[test]
fn cancel_before_answer_ends_the_call_with_487() {
    let a_addr: SocketAddr = "127.0.0.2:5070".parse().unwrap();
    let b_addr: SocketAddr = "127.0.0.3:5070".parse().unwrap();
    let mut a_cfg = config("alice", None, K_HEX);
    a_cfg.pcscf = b_addr;
    let mut b_cfg = config("bob", None, K_HEX);
    b_cfg.local_ip = b_addr.ip();
    b_cfg.pcscf = a_addr;
    let mut a = UeCore::new(a_cfg, 1);
    let mut b = UeCore::new(b_cfg, 2);
    let now = Instant::now();
    let call = a.invite(now, "sip:bob@x", CallOptions::default()).unwrap();
    let mut statuses = Vec::new();
    let mut cancelled = false;
    for _ in 0..20 {
        let mut moved = false;
        while let Some(o) = a.poll_output() {
            if let Output::Transmit { bytes, .. } = o {
                moved = true;
                b.handle_message(
                    now,
                    Message::parse(bytes).unwrap(),
                    Peer::new(Transport::Udp, a_addr),
                );
            }
        }
        while let Some(o) = b.poll_output() {
            if let Output::Transmit { bytes, .. } = o {
                moved = true;
                let m = Message::parse(bytes).unwrap();
                if let Some(s) = m.status() {
                    statuses.push((s.as_u16(), m.cseq().unwrap().method.as_str().to_owned()));
                }
                a.handle_message(now, m, Peer::new(Transport::Udp, b_addr));
            }
        }
        if !moved && !cancelled {
            a.hangup(now, &call).unwrap();
            cancelled = true;
        } else if !moved {
            break;
        }
    }
    assert!(statuses.contains(&(200, "CANCEL".into())), "{statuses:?}");
    assert!(statuses.contains(&(487, "INVITE".into())), "{statuses:?}");
}

#[test]
fn handset_profiles_differ_in_user_agent_and_offers() {
    let uas: Vec<&str> = ["samsung-s23", "pixel-7", "iphone-14"]
        .iter()
        .map(|n| Profile::by_name(n).unwrap().user_agent)
        .collect();
    assert_eq!(uas.len(), 3);
    assert!(uas[0] != uas[1] && uas[1] != uas[2]);
    let iphone = Profile::iphone();
    assert_eq!(
        iphone.security_offers[0],
        CipherSuite::new(IntegrityAlg::HmacSha1_96, EncryptionAlg::Null)
    );
}
