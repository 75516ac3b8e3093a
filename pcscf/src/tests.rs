//! Whole-flow tests of the pure core on a virtual clock: a scripted phone on one side, a
//! scripted I-CSCF/S-CSCF on the other, every message through [`Pcscf::handle_message`].

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use imslab_config::{IpsecMode, NetworkConfig, PcscfConfig};
use imslab_ipsec::{RemovalReason, SaAction, SaState, Spi};
use imslab_sip::header::Transport;
use imslab_sip::transaction::Peer;
use imslab_sip::{HeaderName, Message, Method, StatusCode};
use imslab_store::PcscfRegistration;
use imslab_types::Outcome;

use crate::flow::{FlowKey, PROTECTED_CLIENT, PROTECTED_SERVER};
use crate::{Ingress, Output, Pcscf, Protection, Settings, StoreOp};

const DOMAIN: &str = "ims.mnc001.mcc001.3gppnetwork.org";
const IMPU: &str = "sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org";
const IMPI: &str = "001010000000001@ims.mnc001.mcc001.3gppnetwork.org";
const SERVICE_ROUTE: &str = "<sip:orig@scscf.ims.mnc001.mcc001.3gppnetwork.org:6060;lr>";
const CK: &str = "b40ba9a3c58b2a05bbf0d987b21bf8cb";
const IK: &str = "f769bcd751044604127672711c6d3441";
const CK2: &str = "00112233445566778899aabbccddeeff";
const IK2: &str = "ffeeddccbbaa99887766554433221100";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn listen() -> SocketAddr {
    addr("127.0.0.1:5060")
}

fn icscf() -> SocketAddr {
    addr("127.0.0.1:4060")
}

fn scscf() -> SocketAddr {
    addr("127.0.0.1:6060")
}

fn settings(mode: IpsecMode, boot: u32) -> Settings {
    let mut cfg = PcscfConfig::default();
    cfg.ipsec.mode = mode;
    Settings::from_config(
        &cfg,
        &NetworkConfig::default(),
        FlowKey::new([9u8; 32]),
        boot,
    )
    .unwrap()
}

/// A UE: its address, protected ports and SPIs for one registration attempt.
#[derive(Clone, Copy)]
struct Ue {
    ip: &'static str,
    plain_port: u16,
    port_c: u16,
    port_s: u16,
    spi_c: u32,
    spi_s: u32,
}

const UE: Ue = Ue {
    ip: "127.0.0.2",
    plain_port: 5070,
    port_c: 5080,
    port_s: 5090,
    spi_c: 11111,
    spi_s: 22222,
};

impl Ue {
    fn plain(&self) -> SocketAddr {
        addr(&format!("{}:{}", self.ip, self.plain_port))
    }

    fn client(&self) -> SocketAddr {
        addr(&format!("{}:{}", self.ip, self.port_c))
    }

    fn server(&self) -> SocketAddr {
        addr(&format!("{}:{}", self.ip, self.port_s))
    }

    fn security_client(&self, suites: &[(&str, &str)]) -> String {
        suites
            .iter()
            .map(|(alg, ealg)| {
                format!(
                    "ipsec-3gpp;alg={alg};ealg={ealg};prot=esp;mod=trans;spi-c={};spi-s={};\
                     port-c={};port-s={}",
                    self.spi_c, self.spi_s, self.port_c, self.port_s
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn register(ue: &Ue, cseq: u32, via_port: u16, extra: &str) -> Message {
    let text = format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {}:{via_port};branch=z9hG4bKreg{cseq}x{via_port};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <{IMPU}>;tag=ue{cseq}\r\n\
         To: <{IMPU}>\r\n\
         Call-ID: reg-call-1\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:001010000000001@{}:{}>;expires=600\r\n\
         Authorization: Digest username=\"{IMPI}\", realm=\"{DOMAIN}\", nonce=\"\", \
         uri=\"sip:{DOMAIN}\", response=\"\"\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n",
        ue.ip, ue.ip, ue.port_s
    );
    Message::parse(text.into_bytes()).unwrap()
}

fn sec_agree_headers(ue: &Ue, suites: &[(&str, &str)], verify: Option<&str>) -> String {
    let mut s = format!(
        "Require: sec-agree\r\nProxy-Require: sec-agree\r\nSupported: path, sec-agree\r\n\
         Security-Client: {}\r\n",
        ue.security_client(suites)
    );
    if let Some(v) = verify {
        s.push_str(&format!("Security-Verify: {v}\r\n"));
    }
    s
}

/// A MESSAGE from `ue`'s port-c over its SAs (`transport` in the Via), carrying the
/// sec-agree headers with Security-Verify echoing `security_server`.
fn protected_message(
    ue: &Ue,
    transport: &str,
    call_id: &str,
    suites: &[(&str, &str)],
    security_server: &str,
) -> Message {
    Message::parse(
        format!(
            "MESSAGE sip:bob@{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {}:{};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n\
             From: <{IMPU}>;tag=m1\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 MESSAGE\r\n{}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
            ue.ip,
            ue.port_c,
            sec_agree_headers(ue, suites, Some(security_server)),
        )
        .into_bytes(),
    )
    .unwrap()
}

fn transmits(outs: &[Output]) -> Vec<(Peer, Message)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Transmit { to, bytes, .. } => {
                Some((to.clone(), Message::parse(bytes.clone()).unwrap()))
            }
            _ => None,
        })
        .collect()
}

fn sent_to(outs: &[Output], to: SocketAddr) -> Message {
    transmits(outs)
        .into_iter()
        .find(|(p, _)| p.addr == to)
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("nothing sent to {to}: {outs:#?}"))
}

fn events(outs: &[Output]) -> Vec<(&'static str, Outcome, String)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some((e.step, e.outcome, e.reason.clone().unwrap_or_default())),
            _ => None,
        })
        .collect()
}

fn header(m: &Message, name: &HeaderName) -> String {
    m.fields_named(name)
        .map(|f| String::from_utf8_lossy(f.value()).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

struct Lab {
    p: Pcscf,
    now: Instant,
}

impl Lab {
    fn new(mode: IpsecMode) -> Self {
        Self::with(settings(mode, 1))
    }

    fn with(s: Settings) -> Self {
        let now = Instant::now();
        let p = Pcscf::new(
            s,
            42,
            now,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
        .unwrap();
        Self { p, now }
    }

    fn ue_sends(&mut self, ue: &Ue, msg: Message) -> Vec<Output> {
        let ingress = Ingress::plain(Transport::Udp, ue.plain(), listen(), None);
        self.p.handle_message(self.now, msg, ingress)
    }

    fn ue_sends_protected(&mut self, ue: &Ue, msg: Message, spi: u32) -> Vec<Output> {
        let ingress = Ingress {
            transport: Transport::Udp,
            source: ue.client(),
            local: SocketAddr::new(listen().ip(), self.p.settings().ports.port_s),
            flow: None,
            protection: Protection::Esp { spi: Spi(spi) },
        };
        self.p.handle_message(self.now, msg, ingress)
    }

    fn core_sends(&mut self, from: SocketAddr, msg: Message) -> Vec<Output> {
        let ingress = Ingress::plain(Transport::Udp, from, listen(), None);
        self.p.handle_message(self.now, msg, ingress)
    }

    fn advance(&mut self, d: Duration) -> Vec<Output> {
        self.now += d;
        self.p.handle_timeout(self.now)
    }
}

/// The registrar's answer to a forwarded REGISTER.
fn answer(fwd: &Message, code: u16, extra: &[(HeaderName, String)]) -> Message {
    let mut r = fwd
        .response(StatusCode::new(code).unwrap(), Some("scscf-tag"))
        .unwrap();
    for (n, v) in extra {
        r.push_header(n.clone(), v.clone()).unwrap();
    }
    Message::parse(r.to_bytes()).unwrap()
}

fn challenge(fwd: &Message, ck: &str, ik: &str) -> Message {
    answer(
        fwd,
        401,
        &[(
            HeaderName::WWW_AUTHENTICATE,
            format!(
                "Digest realm=\"{DOMAIN}\", nonce=\"AAECAwQFBgcICQoLDA0ODw==\", \
                 algorithm=AKAv1-MD5, qop=\"auth\", ck=\"{ck}\", ik=\"{ik}\""
            ),
        )],
    )
}

fn ok_200(fwd: &Message, expires: u32) -> Message {
    let contact = fwd
        .contacts()
        .next()
        .unwrap()
        .unwrap()
        .addr()
        .unwrap()
        .uri
        .to_string();
    answer(
        fwd,
        200,
        &[
            (HeaderName::PATH, header(fwd, &HeaderName::PATH)),
            (HeaderName::SERVICE_ROUTE, SERVICE_ROUTE.into()),
            (
                HeaderName::P_ASSOCIATED_URI,
                format!("<{IMPU}>, <tel:+15550100>"),
            ),
            (
                HeaderName::CONTACT,
                format!("<{contact}>;expires={expires}"),
            ),
        ],
    )
}

/// What an IPsec registration left behind.
struct Registered {
    pcscf_spi_s: u32,
    security_server: String,
    /// What the P-CSCF did on the 200 OK (its reg-event SUBSCRIBE among them).
    outs: Vec<Output>,
}

fn security_server_spis(m: &Message) -> (u32, u32, String) {
    let ss = header(m, &HeaderName::SECURITY_SERVER);
    let param = |n: &str| -> u32 {
        ss.split(';')
            .find_map(|p| p.trim().strip_prefix(&format!("{n}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    (param("spi-c"), param("spi-s"), ss)
}

impl Lab {
    /// Initial REGISTER, 401, protected REGISTER, 200; returns the P-CSCF's SPIs.
    fn register_ipsec(&mut self, ue: &Ue, suites: &[(&str, &str)]) -> Registered {
        let outs = self.ue_sends(
            ue,
            register(ue, 1, ue.plain_port, &sec_agree_headers(ue, suites, None)),
        );
        let fwd = sent_to(&outs, icscf());
        let outs = self.core_sends(icscf(), challenge(&fwd, CK, IK));
        let to_ue = sent_to(&outs, ue.plain());
        let (_, spi_s, ss) = security_server_spis(&to_ue);
        let outs = self.ue_sends_protected(
            ue,
            register(ue, 2, ue.port_c, &sec_agree_headers(ue, suites, Some(&ss))),
            spi_s,
        );
        let fwd = sent_to(&outs, icscf());
        let outs = self.core_sends(icscf(), ok_200(&fwd, 600));
        let (peer, ok) = transmits(&outs)
            .into_iter()
            .find(|(p, m)| p.addr == ue.client() && m.status() == Some(StatusCode::OK))
            .expect("200 OK to the phone");
        assert_eq!(peer.flow, Some(PROTECTED_SERVER));
        assert_eq!(ok.status(), Some(StatusCode::OK));
        Registered {
            pcscf_spi_s: spi_s,
            security_server: ss,
            outs,
        }
    }

    /// Answers the reg-event SUBSCRIBE the last 200 OK triggered; returns (Call-ID, our tag).
    fn accept_subscribe(&mut self, outs: &[Output]) -> (String, String) {
        let sub = sent_to(outs, scscf());
        assert_eq!(sub.method(), Some(&Method::Subscribe));
        let mut ok = sub.response(StatusCode::OK, Some("notifier1")).unwrap();
        ok.push_header(HeaderName::CONTACT, "<sip:scscf@127.0.0.1:6060>")
            .unwrap();
        ok.push_header(HeaderName::EXPIRES, "600000").unwrap();
        let ok = Message::parse(ok.to_bytes()).unwrap();
        self.core_sends(scscf(), ok);
        let call_id = sub.call_id().unwrap().as_str().to_owned();
        let tag = sub.from_header().unwrap().tag().unwrap().to_owned();
        (call_id, tag)
    }
}

#[test]
fn register_is_forwarded_with_path_token_visited_network_charging_vector_and_require_path() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let outs = lab.ue_sends(
        &UE,
        register(
            &UE,
            1,
            5070,
            &sec_agree_headers(&UE, &[("hmac-sha-1-96", "aes-cbc")], None),
        ),
    );
    let fwd = sent_to(&outs, icscf());
    let path = header(&fwd, &HeaderName::PATH);
    let token = path
        .strip_prefix("<sip:")
        .and_then(|p| p.split('@').next())
        .unwrap();
    let flow = lab.p.settings().flow_key.decode(token, 1).unwrap();
    assert_eq!(
        flow,
        crate::flow::Flow::Protected { ue: UE.server() },
        "terminating requests go to the phone's protected server port"
    );
    assert!(path.ends_with("@127.0.0.1:5060;lr>"), "{path}");
    assert!(header(&fwd, &HeaderName::REQUIRE).contains("path"));
    assert!(!header(&fwd, &HeaderName::REQUIRE).contains("sec-agree"));
    assert!(!fwd.has_header(&HeaderName::PROXY_REQUIRE));
    assert!(!fwd.has_header(&HeaderName::SECURITY_CLIENT));
    assert_eq!(header(&fwd, &HeaderName::P_VISITED_NETWORK_ID), DOMAIN);
    assert!(header(&fwd, &HeaderName::P_CHARGING_VECTOR).starts_with("icid-value="));
    assert!(header(&fwd, &HeaderName::AUTHORIZATION).contains("integrity-protected=no"));
}

#[test]
fn ck_and_ik_are_removed_from_the_401_and_become_sas_with_security_server() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let outs = lab.ue_sends(
        &UE,
        register(
            &UE,
            1,
            5070,
            &sec_agree_headers(&UE, &[("hmac-sha-1-96", "aes-cbc")], None),
        ),
    );
    let fwd = sent_to(&outs, icscf());
    let outs = lab.core_sends(icscf(), challenge(&fwd, CK, IK));
    let to_ue = sent_to(&outs, UE.plain());
    let text = String::from_utf8(to_ue.to_bytes().to_vec()).unwrap();
    assert!(!text.contains(CK) && !text.contains(IK), "{text}");
    assert!(!text.contains("ck=") && !text.contains("ik="), "{text}");
    let (spi_c, spi_s, ss) = security_server_spis(&to_ue);
    assert!(
        ss.contains("alg=hmac-sha-1-96") && ss.contains("ealg=aes-cbc"),
        "{ss}"
    );
    assert!(
        ss.contains("port-c=5100") && ss.contains("port-s=6100"),
        "{ss}"
    );
    // The SAs are installed before the 401 leaves (a phone answering at once over them must
    // find them), and the install carries our SPIs.
    let tx_at = outs
        .iter()
        .position(|o| matches!(o, Output::Transmit { .. }))
        .unwrap();
    let (sa_at, bundle) = outs
        .iter()
        .enumerate()
        .find_map(|(i, o)| match o {
            Output::Sa(SaAction::Install { bundle, .. }) => Some((i, bundle.clone())),
            _ => None,
        })
        .unwrap();
    assert!(sa_at < tx_at);
    assert_eq!((bundle.local.spi_c.0, bundle.local.spi_s.0), (spi_c, spi_s));
    assert_eq!(
        (bundle.remote.spi_c.0, bundle.remote.port_s),
        (UE.spi_c, UE.port_s)
    );
    let t = lab.p.sa_table().unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t.iter().next().unwrap().state, SaState::Temporary);
    let ev = events(&outs);
    assert!(
        ev.iter().any(|(s, o, r)| *s == "challenge"
            && *o == Outcome::Info
            && r.contains("ck/ik removed"))
    );
    assert!(
        ev.iter()
            .any(|(s, o, _)| *s == "ipsec-sa" && *o == Outcome::Ok)
    );
}

#[test]
fn sec_agree_takes_the_configured_preference_not_the_phones_order() {
    let suites = [("hmac-md5-96", "null"), ("hmac-sha-1-96", "aes-cbc")];
    let mut lab = Lab::new(IpsecMode::Userspace);
    let reg = lab.register_ipsec(&UE, &suites);
    assert!(
        reg.security_server.contains("alg=hmac-sha-1-96"),
        "{}",
        reg.security_server
    );
    assert!(reg.security_server.contains("ealg=aes-cbc"));

    let mut cfg = PcscfConfig::default();
    cfg.ipsec.algorithms = vec!["hmac-md5-96".into()];
    cfg.ipsec.encryption = vec!["null".into(), "aes-cbc".into()];
    let s =
        Settings::from_config(&cfg, &NetworkConfig::default(), FlowKey::new([9; 32]), 1).unwrap();
    let mut lab = Lab::with(s);
    let reg = lab.register_ipsec(&UE, &suites);
    assert!(
        reg.security_server.contains("alg=hmac-md5-96"),
        "{}",
        reg.security_server
    );
    assert!(reg.security_server.contains("ealg=null"));
}

#[test]
fn nothing_acceptable_in_security_client_is_answered_494_with_our_capabilities() {
    let mut cfg = PcscfConfig::default();
    cfg.ipsec.algorithms = vec!["hmac-md5-96".into()];
    let s =
        Settings::from_config(&cfg, &NetworkConfig::default(), FlowKey::new([9; 32]), 1).unwrap();
    let mut lab = Lab::with(s);
    let outs = lab.ue_sends(
        &UE,
        register(
            &UE,
            1,
            5070,
            &sec_agree_headers(&UE, &[("hmac-sha-1-96", "aes-cbc")], None),
        ),
    );
    let resp = sent_to(&outs, UE.plain());
    assert_eq!(resp.status().unwrap().as_u16(), 494);
    assert_eq!(header(&resp, &HeaderName::REQUIRE), "sec-agree");
    assert!(header(&resp, &HeaderName::SECURITY_SERVER).contains("alg=hmac-md5-96"));
    assert!(transmits(&outs).iter().all(|(p, _)| p.addr != icscf()));
    assert!(
        events(&outs)
            .iter()
            .any(|(s, o, r)| *s == "sec-agree" && *o == Outcome::Failed && r.starts_with("494"))
    );
}

#[test]
fn register_without_sec_agree_gets_421_when_ipsec_is_required() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let outs = lab.ue_sends(&UE, register(&UE, 1, 5070, ""));
    let resp = sent_to(&outs, UE.plain());
    assert_eq!(resp.status(), Some(StatusCode::EXTENSION_REQUIRED));
    assert_eq!(header(&resp, &HeaderName::REQUIRE), "sec-agree");
    assert!(resp.has_header(&HeaderName::SECURITY_SERVER));
}

#[test]
fn with_ipsec_off_a_phone_requiring_sec_agree_gets_420_and_others_register() {
    let mut lab = Lab::new(IpsecMode::Off);
    let outs = lab.ue_sends(
        &UE,
        register(
            &UE,
            1,
            5070,
            &sec_agree_headers(&UE, &[("hmac-sha-1-96", "aes-cbc")], None),
        ),
    );
    let resp = sent_to(&outs, UE.plain());
    assert_eq!(resp.status(), Some(StatusCode::BAD_EXTENSION));
    assert_eq!(header(&resp, &HeaderName::UNSUPPORTED), "sec-agree");
    assert!(
        events(&outs)
            .iter()
            .any(|(s, o, _)| *s == "sec-agree" && *o == Outcome::Failed)
    );

    let outs = lab.ue_sends(&UE, register(&UE, 2, 5070, ""));
    let fwd = sent_to(&outs, icscf());
    let outs = lab.core_sends(icscf(), challenge(&fwd, CK, IK));
    let to_ue = sent_to(&outs, UE.plain());
    assert!(!String::from_utf8_lossy(&to_ue.to_bytes()).contains("ck="));
    assert!(!to_ue.has_header(&HeaderName::SECURITY_SERVER));
    assert!(outs.iter().all(|o| !matches!(o, Output::Sa(_))));
    let outs = lab.ue_sends(&UE, register(&UE, 3, 5070, ""));
    let fwd = sent_to(&outs, icscf());
    let outs = lab.core_sends(icscf(), ok_200(&fwd, 600));
    assert_eq!(sent_to(&outs, UE.plain()).status(), Some(StatusCode::OK));
    let reg = lab.p.registrations().iter().next().unwrap();
    assert_eq!(reg.flow, crate::flow::Flow::Udp { remote: UE.plain() });
    assert!(!reg.protected);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Store(StoreOp::PutRegistration(_))))
    );
}

#[test]
fn registration_over_ipsec_stores_service_route_identities_and_subscribes_to_reg_event() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let suites = [("hmac-sha-1-96", "aes-cbc")];
    let outs = lab.ue_sends(
        &UE,
        register(&UE, 1, 5070, &sec_agree_headers(&UE, &suites, None)),
    );
    let fwd = sent_to(&outs, icscf());
    let outs = lab.core_sends(icscf(), challenge(&fwd, CK, IK));
    let (_, spi_s, ss) = security_server_spis(&sent_to(&outs, UE.plain()));
    let outs = lab.ue_sends_protected(
        &UE,
        register(
            &UE,
            2,
            UE.port_c,
            &sec_agree_headers(&UE, &suites, Some(&ss)),
        ),
        spi_s,
    );
    let fwd = sent_to(&outs, icscf());
    assert!(header(&fwd, &HeaderName::AUTHORIZATION).contains("integrity-protected=yes"));
    assert!(!fwd.has_header(&HeaderName::SECURITY_VERIFY));
    let outs = lab.core_sends(icscf(), ok_200(&fwd, 600));
    let stored: Vec<&PcscfRegistration> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Store(StoreOp::PutRegistration(r)) => Some(r.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 1);
    let r = stored[0];
    assert_eq!(r.impu.as_str(), IMPU);
    assert_eq!(r.impi.as_ref().unwrap().as_str(), IMPI);
    assert_eq!(r.contact, format!("sip:001010000000001@{}", UE.server()));
    assert_eq!(r.service_route, vec![SERVICE_ROUTE.to_owned()]);
    assert_eq!(
        r.associated_uris,
        vec![IMPU.to_owned(), "tel:+15550100".into()]
    );
    assert!(r.sa_info.as_deref().unwrap().contains("\"suite\""));
    let t = lab.p.sa_table().unwrap();
    assert_eq!(t.iter().next().unwrap().state, SaState::Established);
    let ev = events(&outs);
    assert!(
        ev.iter()
            .any(|(s, o, _)| *s == "registered" && *o == Outcome::Ok)
    );
    let sub = sent_to(&outs, scscf());
    assert_eq!(sub.request_uri_str(), Some(IMPU));
    assert_eq!(header(&sub, &HeaderName::EVENT), "reg");
    assert_eq!(header(&sub, &HeaderName::ROUTE), SERVICE_ROUTE);
    assert_eq!(
        header(&sub, &HeaderName::P_ASSERTED_IDENTITY),
        "<sip:pcscf@127.0.0.1:5060>"
    );
    assert_eq!(header(&sub, &HeaderName::EXPIRES), "600000");
}

#[test]
fn security_verify_that_differs_from_security_server_is_rejected_and_the_new_sas_dropped() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let suites = [("hmac-sha-1-96", "aes-cbc")];
    let outs = lab.ue_sends(
        &UE,
        register(&UE, 1, 5070, &sec_agree_headers(&UE, &suites, None)),
    );
    let fwd = sent_to(&outs, icscf());
    let outs = lab.core_sends(icscf(), challenge(&fwd, CK, IK));
    let (_, spi_s, ss) = security_server_spis(&sent_to(&outs, UE.plain()));
    // A bid-down: the phone saw a weaker algorithm than the P-CSCF sent.
    let forged = ss.replace("hmac-sha-1-96", "hmac-md5-96");
    let outs = lab.ue_sends_protected(
        &UE,
        register(
            &UE,
            2,
            UE.port_c,
            &sec_agree_headers(&UE, &suites, Some(&forged)),
        ),
        spi_s,
    );
    let (peer, resp) = transmits(&outs).into_iter().next().unwrap();
    assert_eq!(resp.status().unwrap().as_u16(), 494);
    assert_eq!(peer.flow, Some(PROTECTED_SERVER));
    assert!(transmits(&outs).iter().all(|(p, _)| p.addr != icscf()));
    assert!(lab.p.sa_table().unwrap().is_empty());
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Sa(SaAction::Remove {
            reason: RemovalReason::Discarded,
            ..
        })
    )));
    assert!(
        events(&outs)
            .iter()
            .any(|(s, o, r)| *s == "sec-verify" && *o == Outcome::Failed && r.contains("bid-down"))
    );
}

#[test]
fn protected_register_with_a_changed_security_client_is_rejected() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let suites = [("hmac-sha-1-96", "aes-cbc")];
    let outs = lab.ue_sends(
        &UE,
        register(&UE, 1, 5070, &sec_agree_headers(&UE, &suites, None)),
    );
    let fwd = sent_to(&outs, icscf());
    let outs = lab.core_sends(icscf(), challenge(&fwd, CK, IK));
    let (_, spi_s, ss) = security_server_spis(&sent_to(&outs, UE.plain()));
    let outs = lab.ue_sends_protected(
        &UE,
        register(
            &UE,
            2,
            UE.port_c,
            &sec_agree_headers(&UE, &[("hmac-md5-96", "null")], Some(&ss)),
        ),
        spi_s,
    );
    assert_eq!(transmits(&outs)[0].1.status().unwrap().as_u16(), 494);
    assert!(lab.p.sa_table().unwrap().is_empty());
}

#[test]
fn requests_from_registered_phone_get_asserted_identity_and_follow_the_service_route() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let reg = lab.register_ipsec(&UE, &[("hmac-sha-1-96", "aes-cbc")]);
    let message = |ppi: &str| {
        Message::parse(
            format!(
                "MESSAGE sip:bob@{DOMAIN} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {}:{};branch=z9hG4bKm{}\r\nMax-Forwards: 70\r\n\
                 Route: <sip:127.0.0.1:6100;lr>, <sip:elsewhere.example;lr>\r\n\
                 From: <{IMPU}>;tag=m1\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: msg-{}\r\n\
                 CSeq: 1 MESSAGE\r\n{ppi}P-Asserted-Identity: <sip:forged@{DOMAIN}>\r\n\
                 Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
                UE.ip,
                UE.port_c,
                ppi.len(),
                ppi.len()
            )
            .into_bytes(),
        )
        .unwrap()
    };
    for (ppi, expected) in [
        (
            "P-Preferred-Identity: <tel:+15550100>\r\n",
            "<tel:+15550100>".to_owned(),
        ),
        ("", format!("<{IMPU}>")),
        (
            "P-Preferred-Identity: <sip:someone.else@ims.example>\r\n",
            format!("<{IMPU}>"),
        ),
    ] {
        let outs = lab.ue_sends_protected(&UE, message(ppi), reg.pcscf_spi_s);
        let fwd = sent_to(&outs, scscf());
        assert_eq!(header(&fwd, &HeaderName::P_ASSERTED_IDENTITY), expected);
        assert!(!fwd.has_header(&HeaderName::P_PREFERRED_IDENTITY));
        assert_eq!(
            header(&fwd, &HeaderName::ROUTE),
            SERVICE_ROUTE,
            "preloaded route replaced"
        );
        assert!(fwd.has_header(&HeaderName::P_CHARGING_VECTOR));
    }
}

#[test]
fn requests_from_unregistered_phones_get_403() {
    let mut lab = Lab::new(IpsecMode::Off);
    let msg = Message::parse(
        format!(
            "MESSAGE sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bKu1\r\n\
             Max-Forwards: 70\r\nFrom: <{IMPU}>;tag=u\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: u1\r\n\
             CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.core_sends(addr("127.0.0.9:5070"), msg);
    let resp = sent_to(&outs, addr("127.0.0.9:5070"));
    assert_eq!(resp.status(), Some(StatusCode::FORBIDDEN));
    assert_eq!(transmits(&outs).len(), 1);
    assert!(events(&outs).iter().any(|(s, o, r)| *s == "forbidden"
        && *o == Outcome::Failed
        && r.contains("not a registered phone")));
    assert_eq!(lab.p.stats().forbidden, 1);
}

#[test]
fn phone_registered_with_ipsec_is_refused_on_the_unprotected_port() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    lab.register_ipsec(&UE, &[("hmac-sha-1-96", "aes-cbc")]);
    let msg = Message::parse(
        format!(
            "MESSAGE sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {}:5070;branch=z9hG4bKu2\r\n\
             Max-Forwards: 70\r\nFrom: <{IMPU}>;tag=u\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: u2\r\n\
             CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
            UE.ip
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.ue_sends(&UE, msg);
    assert_eq!(
        sent_to(&outs, UE.plain()).status(),
        Some(StatusCode::FORBIDDEN)
    );
    assert!(
        events(&outs)
            .iter()
            .any(|(_, _, r)| r.contains("only on its SAs"))
    );
}

#[test]
fn terminating_request_via_path_token_goes_to_the_phones_protected_port_from_port_c() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    lab.register_ipsec(&UE, &[("hmac-sha-1-96", "aes-cbc")]);
    let token = lab
        .p
        .settings()
        .flow_key
        .encode(&crate::flow::Flow::Protected { ue: UE.server() }, 1);
    let invite = Message::parse(
        format!(
            "INVITE sip:001010000000001@{} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKt1\r\nMax-Forwards: 69\r\n\
             Route: <sip:{token}@127.0.0.1:5060;lr>\r\n\
             From: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{IMPU}>\r\nCall-ID: t1\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:bob@127.0.0.5:5060>\r\n\
             P-Charging-Vector: icid-value=abc\r\nContent-Length: 0\r\n\r\n",
            UE.server()
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.core_sends(scscf(), invite);
    let (peer, fwd) = transmits(&outs)
        .into_iter()
        .find(|(_, m)| m.method() == Some(&Method::Invite))
        .unwrap();
    assert_eq!(peer.addr, UE.server());
    assert_eq!(peer.flow, Some(PROTECTED_CLIENT));
    assert!(!fwd.has_header(&HeaderName::P_CHARGING_VECTOR));
    assert!(!fwd.has_header(&HeaderName::ROUTE));
    assert!(fwd.has_header(&HeaderName::RECORD_ROUTE));
}

#[test]
fn reg_event_notify_with_terminated_drops_the_registration_and_its_sas() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let suites = [("hmac-sha-1-96", "aes-cbc")];
    let outs = lab.register_ipsec(&UE, &suites).outs;
    let (call_id, tag) = lab.accept_subscribe(&outs);
    assert_eq!(lab.p.subscription_count(), 1);
    let body = format!(
        "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"1\" \
         state=\"full\"><registration aor=\"{IMPU}\" id=\"r1\" state=\"terminated\">\
         <contact id=\"c1\" state=\"terminated\" event=\"deactivated\">\
         <uri>sip:001010000000001@{}</uri></contact></registration></reginfo>",
        UE.server()
    );
    let notify = Message::parse(
        format!(
            "NOTIFY sip:pcscf@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKn1\r\nMax-Forwards: 70\r\n\
             From: <{IMPU}>;tag=notifier1\r\nTo: <sip:pcscf@127.0.0.1:5060>;tag={tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: 2 NOTIFY\r\nEvent: reg\r\n\
             Subscription-State: terminated;reason=deactivated\r\n\
             Contact: <sip:scscf@127.0.0.1:6060>\r\n\
             Content-Type: application/reginfo+xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.core_sends(scscf(), notify);
    assert_eq!(sent_to(&outs, scscf()).status(), Some(StatusCode::OK));
    assert!(lab.p.registrations().is_empty());
    // The SAs outlive the registration a little: the S-CSCF's NOTIFY to the phone crosses them.
    assert_eq!(lab.p.sa_table().unwrap().len(), 1);
    assert!(outs.iter().all(|o| !matches!(o, Output::Sa(_))));
    assert_eq!(lab.p.subscription_count(), 0);
    let later = lab.advance(crate::core::SA_LINGER);
    assert!(lab.p.sa_table().unwrap().is_empty());
    assert_eq!(lab.p.sa_table().unwrap().spis_in_use(), 0);
    assert!(later.iter().any(|o| matches!(
        o,
        Output::Sa(SaAction::Remove {
            reason: RemovalReason::NetworkDeregistered,
            ..
        })
    )));
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Store(StoreOp::RemoveRegistration { .. })))
    );
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Store(StoreOp::RemoveSubscription { .. })))
    );
    assert!(
        events(&outs)
            .iter()
            .any(|(s, _, r)| *s == "deregistered" && r.contains("deactivated"))
    );
    assert_eq!(lab.p.stats().network_deregistered, 1);
}

#[test]
fn notify_for_an_unknown_subscription_gets_481() {
    let mut lab = Lab::new(IpsecMode::Off);
    let notify = Message::parse(
        &b"NOTIFY sip:pcscf@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKn9\r\n\
        Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:pcscf@127.0.0.1:5060>;tag=2\r\n\
        Call-ID: nope\r\nCSeq: 1 NOTIFY\r\nEvent: reg\r\nSubscription-State: active\r\n\
        Content-Length: 0\r\n\r\n"[..],
    )
    .unwrap();
    let outs = lab.core_sends(scscf(), notify);
    assert_eq!(
        sent_to(&outs, scscf()).status(),
        Some(StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST)
    );
}

#[test]
fn reregistration_creates_new_sas_and_the_old_ones_go_once_the_phone_uses_the_new() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let suites = [("hmac-sha-1-96", "aes-cbc")];
    let first = lab.register_ipsec(&UE, &suites);
    // TS 33.203 §7.4: new SPIs and a new protected client port; port-s (the contact) stays.
    let next = Ue {
        port_c: 5082,
        spi_c: 33333,
        spi_s: 44444,
        ..UE
    };
    // Re-REGISTER over the established SAs with a fresh Security-Client.
    let extra = sec_agree_headers(&next, &suites, Some(&first.security_server));
    let rereg = register(&UE, 3, UE.port_c, &extra);
    let outs = lab.ue_sends_protected(&UE, rereg, first.pcscf_spi_s);
    let fwd = sent_to(&outs, icscf());
    let outs = lab.core_sends(icscf(), challenge(&fwd, CK2, IK2));
    let (peer, to_ue) = transmits(&outs).into_iter().next().unwrap();
    assert_eq!(
        peer.flow,
        Some(PROTECTED_SERVER),
        "the 401 goes back over the current SAs"
    );
    let (_, spi_s2, ss2) = security_server_spis(&to_ue);
    assert_ne!(spi_s2, first.pcscf_spi_s);
    assert_eq!(lab.p.sa_table().unwrap().len(), 2);
    // The protected REGISTER over the new SAs authenticates.
    let auth = register(
        &next,
        4,
        next.port_c,
        &sec_agree_headers(&next, &suites, Some(&ss2)),
    );
    let outs = lab.ue_sends_protected(&next, auth, spi_s2);
    let fwd = sent_to(&outs, icscf());
    lab.core_sends(icscf(), ok_200(&fwd, 600));
    let states: Vec<SaState> = lab.p.sa_table().unwrap().iter().map(|s| s.state).collect();
    assert_eq!(states, vec![SaState::Old, SaState::Established]);
    assert_eq!(
        lab.p.registrations().iter().next().unwrap().flow,
        crate::flow::Flow::Protected { ue: next.server() }
    );
    // The first packet over the new SAs retires the old set (TS 33.203 §7.4).
    let options = Message::parse(
        format!(
            "OPTIONS sip:127.0.0.1:6100 SIP/2.0\r\nVia: SIP/2.0/UDP {}:{};branch=z9hG4bKo1\r\n\
             Max-Forwards: 70\r\nFrom: <{IMPU}>;tag=o\r\nTo: <sip:127.0.0.1:6100>\r\nCall-ID: o1\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            next.ip, next.port_c
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.ue_sends_protected(&next, options, spi_s2);
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Sa(SaAction::Remove {
            reason: RemovalReason::Superseded,
            ..
        })
    )));
    let t = lab.p.sa_table().unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t.iter().next().unwrap().state, SaState::Established);
    assert_eq!(t.spis_in_use(), 2);
}

#[test]
fn deregistration_removes_the_registration_and_sas_after_the_200_is_sent() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let suites = [("hmac-sha-1-96", "aes-cbc")];
    let reg = lab.register_ipsec(&UE, &suites);
    let mut dereg = register(
        &UE,
        3,
        UE.port_c,
        &sec_agree_headers(&UE, &suites, Some(&reg.security_server)),
    );
    dereg
        .set_header(
            HeaderName::CONTACT,
            format!("<sip:001010000000001@{}>;expires=0", UE.server()),
        )
        .unwrap();
    let dereg = Message::parse(dereg.to_bytes()).unwrap();
    let outs = lab.ue_sends_protected(&UE, dereg, reg.pcscf_spi_s);
    let fwd = sent_to(&outs, icscf());
    let ok = answer(&fwd, 200, &[]);
    let outs = lab.core_sends(icscf(), ok);
    let tx = outs
        .iter()
        .position(|o| matches!(o, Output::Transmit { .. }))
        .unwrap();
    let rm = outs
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::Sa(SaAction::Remove {
                    reason: RemovalReason::Deregistered,
                    ..
                })
            )
        })
        .unwrap();
    assert!(tx < rm, "the 200 OK leaves over the SAs before they go");
    assert!(lab.p.registrations().is_empty());
    assert!(lab.p.sa_table().unwrap().is_empty());
    // The reg-event subscription lingers briefly for the final NOTIFY, then goes.
    lab.advance(Duration::from_secs(40));
    assert_eq!(lab.p.subscription_count(), 0);
}

#[test]
fn expired_registration_and_its_sas_are_removed_on_time() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    lab.register_ipsec(&UE, &[("hmac-md5-96", "des-ede3-cbc")]);
    let outs = lab.advance(Duration::from_secs(599));
    assert!(outs.iter().all(|o| !matches!(o, Output::Sa(_))));
    assert_eq!(lab.p.registrations().len(), 1);
    let outs = lab.advance(Duration::from_secs(2));
    assert!(lab.p.registrations().is_empty());
    let later = lab.advance(crate::core::SA_LINGER);
    assert!(lab.p.sa_table().unwrap().is_empty());
    assert!(later.iter().any(|o| matches!(
        o,
        Output::Sa(SaAction::Remove {
            reason: RemovalReason::Expired,
            ..
        })
    )));
    assert!(
        events(&outs)
            .iter()
            .any(|(s, _, r)| *s == "deregistered" && r.contains("expired"))
    );
}

#[test]
fn temporary_sas_without_a_protected_register_expire_after_reg_await_auth() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let outs = lab.ue_sends(
        &UE,
        register(
            &UE,
            1,
            5070,
            &sec_agree_headers(&UE, &[("hmac-sha-1-96", "null")], None),
        ),
    );
    let fwd = sent_to(&outs, icscf());
    lab.core_sends(icscf(), challenge(&fwd, CK, IK));
    assert_eq!(lab.p.sa_table().unwrap().len(), 1);
    lab.advance(Duration::from_secs(241));
    assert!(lab.p.sa_table().unwrap().is_empty());
}

#[test]
fn registrations_survive_a_restart_through_the_store_rows() {
    let mut lab = Lab::new(IpsecMode::Off);
    let outs = lab.ue_sends(&UE, register(&UE, 1, 5070, ""));
    let fwd = sent_to(&outs, icscf());
    let outs = lab.core_sends(icscf(), ok_200(&fwd, 600));
    let rows: Vec<PcscfRegistration> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Store(StoreOp::PutRegistration(r)) => Some((**r).clone()),
            _ => None,
        })
        .collect();
    let wall = lab.p.wall(lab.now + Duration::from_secs(100));
    let mut again = Lab::with(settings(IpsecMode::Off, 2));
    again.now += Duration::from_secs(100);
    again.p.restore(again.now, wall, rows, vec![]);
    let reg = again.p.registrations().iter().next().unwrap();
    assert_eq!(reg.flow, crate::flow::Flow::Udp { remote: UE.plain() });
    assert!(reg.expires > again.now + Duration::from_secs(490));
    let msg = Message::parse(
        format!(
            "MESSAGE sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {}:5070;branch=z9hG4bKr1\r\n\
             Max-Forwards: 70\r\nFrom: <{IMPU}>;tag=r\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: r1\r\n\
             CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
            UE.ip
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = again.ue_sends(&UE, msg);
    let fwd = sent_to(&outs, scscf());
    assert_eq!(
        header(&fwd, &HeaderName::P_ASSERTED_IDENTITY),
        format!("<{IMPU}>")
    );
}

#[test]
fn natted_phone_contact_is_aliased_toward_the_core_and_restored_toward_the_phone() {
    let mut lab = Lab::new(IpsecMode::Off);
    let natted = Ue {
        ip: "127.0.0.3",
        plain_port: 40000,
        ..UE
    };
    let mut reg = register(&natted, 1, 5060, "");
    reg.set_header(
        HeaderName::CONTACT,
        "<sip:001010000000001@10.0.0.5:5060>;expires=600",
    )
    .unwrap();
    let reg = Message::parse(reg.to_bytes()).unwrap();
    let outs = lab.ue_sends(&natted, reg);
    let fwd = sent_to(&outs, icscf());
    let contact = header(&fwd, &HeaderName::CONTACT);
    assert_eq!(
        contact,
        "<sip:001010000000001@10.0.0.5:5060;alias=127.0.0.3~40000~1>;expires=600"
    );
    let fwd_via = fwd.vias().nth(1).unwrap().unwrap();
    assert_eq!(fwd_via.received(), Some("127.0.0.3".parse().unwrap()));
    assert_eq!(fwd_via.rport(), Some(Some(40000)));
    let outs = lab.core_sends(icscf(), ok_200(&fwd, 600));
    let to_ue = sent_to(&outs, natted.plain());
    assert_eq!(
        header(&to_ue, &HeaderName::CONTACT),
        "<sip:001010000000001@10.0.0.5:5060>;expires=600"
    );
    // A request to the aliased contact, without a Path token, reaches the NAT binding.
    let invite = Message::parse(
        &b"INVITE sip:001010000000001@10.0.0.5:5060;alias=127.0.0.3~40000~1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKa1\r\nMax-Forwards: 69\r\n\
        From: <sip:bob@ims.mnc001.mcc001.3gppnetwork.org>;tag=b\r\n\
        To: <sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org>;tag=x\r\nCall-ID: a1\r\n\
        CSeq: 2 INVITE\r\nContent-Length: 0\r\n\r\n"[..],
    )
    .unwrap();
    let outs = lab.core_sends(scscf(), invite);
    let fwd = sent_to(&outs, natted.plain());
    assert_eq!(
        fwd.request_uri_str(),
        Some("sip:001010000000001@10.0.0.5:5060")
    );
}

#[test]
fn terminated_notify_overtaking_the_200_to_a_deregister_keeps_the_sas_for_that_200() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let suites = [("hmac-sha-1-96", "aes-cbc")];
    let Registered {
        pcscf_spi_s: spi_s,
        security_server: ss,
        outs,
    } = lab.register_ipsec(&UE, &suites);
    let (call_id, tag) = lab.accept_subscribe(&outs);
    let mut dereg = register(
        &UE,
        3,
        UE.port_c,
        &sec_agree_headers(&UE, &suites, Some(&ss)),
    );
    dereg
        .set_header(
            HeaderName::CONTACT,
            format!("<sip:001010000000001@{}>;expires=0", UE.server()),
        )
        .unwrap();
    let dereg = Message::parse(dereg.to_bytes()).unwrap();
    let outs = lab.ue_sends_protected(&UE, dereg, spi_s);
    let fwd = sent_to(&outs, icscf());
    // The S-CSCF's NOTIFY arrives before its 200 OK.
    let body = format!(
        "<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"1\" state=\"full\">\
         <registration aor=\"{IMPU}\" state=\"terminated\"><contact state=\"terminated\" \
         event=\"unregistered\"><uri>sip:001010000000001@{}</uri></contact></registration></reginfo>",
        UE.server()
    );
    let notify = Message::parse(
        format!(
            "NOTIFY sip:pcscf@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKn2\r\n\
             Max-Forwards: 70\r\nFrom: <{IMPU}>;tag=notifier1\r\nTo: <sip:pcscf@127.0.0.1:5060>;tag={tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: 3 NOTIFY\r\nEvent: reg\r\nSubscription-State: terminated\r\n\
             Content-Type: application/reginfo+xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.core_sends(scscf(), notify);
    assert!(lab.p.registrations().is_empty());
    assert!(
        outs.iter()
            .all(|o| !matches!(o, Output::Sa(SaAction::Remove { .. })))
    );
    let outs = lab.core_sends(icscf(), answer(&fwd, 200, &[]));
    let tx = outs
        .iter()
        .position(|o| matches!(o, Output::Transmit { to, .. } if to.flow == Some(PROTECTED_SERVER)))
        .expect("the 200 OK goes to the phone over its SAs");
    let rm = outs
        .iter()
        .position(|o| matches!(o, Output::Sa(SaAction::Remove { .. })))
        .expect("then the SAs go");
    assert!(tx < rm);
    assert!(lab.p.sa_table().unwrap().is_empty());
}

/// The P-CSCF's port-c SPI from a Security-Server value.
fn pcscf_spi_c(ss: &str) -> u32 {
    ss.split(';')
        .find_map(|p| p.trim().strip_prefix("spi-c="))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

impl Lab {
    /// The phone answers from its port-s to the P-CSCF's port-c, over the SAs.
    fn ue_answers_protected(&mut self, ue: &Ue, msg: Message, spi: u32) -> Vec<Output> {
        let ingress = Ingress {
            transport: Transport::Udp,
            source: ue.server(),
            local: SocketAddr::new(listen().ip(), self.p.settings().ports.port_c),
            flow: None,
            protection: Protection::Esp { spi: Spi(spi) },
        };
        self.p.handle_message(self.now, msg, ingress)
    }

    fn token(&self) -> String {
        self.p
            .settings()
            .flow_key
            .encode(&crate::flow::Flow::Protected { ue: UE.server() }, 1)
    }
}

fn terminating_invite(token: &str, body: &str) -> Message {
    Message::parse(
        format!(
            "INVITE sip:001010000000001@{} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKc1\r\nMax-Forwards: 69\r\n\
             Route: <sip:{token}@127.0.0.1:5060;lr>\r\n\
             Record-Route: <sip:term@127.0.0.1:6060;lr>\r\n\
             From: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{IMPU}>\r\nCall-ID: call1\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:bob@127.0.0.5:5060>\r\nSession-Expires: 1800\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            UE.server(),
            body.len()
        )
        .into_bytes(),
    )
    .unwrap()
}

#[test]
fn call_to_an_ipsec_phone_shows_protected_ports_is_tracked_and_released_by_bye() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let reg = lab.register_ipsec(&UE, &[("hmac-sha-1-96", "aes-cbc")]);
    let spi_c = pcscf_spi_c(&reg.security_server);
    let ports = lab.p.settings().ports;
    let token = lab.token();
    let outs = lab.core_sends(scscf(), terminating_invite(&token, "v=0\r\n"));
    let (peer, fwd) = transmits(&outs)
        .into_iter()
        .find(|(_, m)| m.method() == Some(&Method::Invite))
        .unwrap();
    assert_eq!(
        (peer.addr, peer.flow),
        (UE.server(), Some(PROTECTED_CLIENT))
    );
    let via = header(&fwd, &HeaderName::VIA);
    assert!(
        via.starts_with(&format!("SIP/2.0/UDP 127.0.0.1:{};", ports.port_c)),
        "Via toward the phone shows port-c: {via}"
    );
    let rr: Vec<String> = fwd
        .record_routes()
        .map(|r| r.unwrap().to_string())
        .collect();
    assert_eq!(
        rr[..2],
        [
            format!("<sip:{token}@127.0.0.1:{};lr>", ports.port_s),
            format!("<sip:{token}@127.0.0.1:5060;lr>"),
        ],
        "the phone's route set names port-s, the core's the unprotected port"
    );
    assert_eq!(lab.p.dialogs().len(), 1);
    // 183 with 100rel, then 200: relayed to the core; the 200 confirms the dialog.
    let mut ringing = fwd
        .response(StatusCode::new(183).unwrap(), Some("callee"))
        .unwrap();
    ringing.push_header(HeaderName::REQUIRE, "100rel").unwrap();
    ringing.push_header(HeaderName::RSEQ, "1").unwrap();
    let outs = lab.ue_answers_protected(&UE, ringing, spi_c);
    let relayed = sent_to(&outs, scscf());
    assert_eq!(relayed.status().map(|s| s.as_u16()), Some(183));
    assert_eq!(header(&relayed, &HeaderName::REQUIRE), "100rel");
    let outs = lab.ue_answers_protected(
        &UE,
        fwd.response(StatusCode::OK, Some("callee")).unwrap(),
        spi_c,
    );
    assert_eq!(sent_to(&outs, scscf()).status(), Some(StatusCode::OK));
    assert!(
        events(&outs)
            .iter()
            .any(|(s, o, r)| *s == "call" && *o == Outcome::Ok && r.contains("confirmed"))
    );
    // The caller hangs up: BYE along the recorded route reaches the phone over its SAs.
    let bye = Message::parse(
        format!(
            "BYE sip:001010000000001@{} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKc2\r\nMax-Forwards: 69\r\n\
             Route: <sip:{token}@127.0.0.1:5060;lr>, <sip:{token}@127.0.0.1:{};lr>\r\n\
             From: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{IMPU}>;tag=callee\r\nCall-ID: call1\r\n\
             CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            UE.server(),
            ports.port_s
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.core_sends(scscf(), bye);
    let (peer, fwd) = transmits(&outs)
        .into_iter()
        .find(|(_, m)| m.method() == Some(&Method::Bye))
        .expect("BYE forwarded to the phone");
    assert_eq!(
        (peer.addr, peer.flow),
        (UE.server(), Some(PROTECTED_CLIENT))
    );
    assert!(!fwd.has_header(&HeaderName::ROUTE));
    assert!(lab.p.dialogs().is_empty());
    assert!(
        events(&outs)
            .iter()
            .any(|(s, _, r)| *s == "call" && r.contains("BYE"))
    );
}

#[test]
fn call_from_a_phone_that_fails_releases_its_dialog() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let reg = lab.register_ipsec(&UE, &[("hmac-sha-1-96", "aes-cbc")]);
    let ports = lab.p.settings().ports;
    let invite = Message::parse(
        format!(
            "INVITE sip:bob@{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {}:{};branch=z9hG4bKo1\r\nMax-Forwards: 70\r\n\
             Route: <sip:127.0.0.1:{};lr>, {SERVICE_ROUTE}\r\n\
             From: <{IMPU}>;tag=a\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: call2\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:001010000000001@{}>\r\n{}Content-Length: 0\r\n\r\n",
            UE.ip,
            UE.port_c,
            ports.port_s,
            UE.client(),
            sec_agree_headers(
                &UE,
                &[("hmac-sha-1-96", "aes-cbc")],
                Some(&reg.security_server)
            ),
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.ue_sends_protected(&UE, invite, reg.pcscf_spi_s);
    let fwd = sent_to(&outs, scscf());
    assert_eq!(
        header(&fwd, &HeaderName::P_ASSERTED_IDENTITY),
        format!("<{IMPU}>")
    );
    let token = lab.token();
    let rr: Vec<String> = fwd
        .record_routes()
        .map(|r| r.unwrap().to_string())
        .collect();
    assert_eq!(
        rr,
        [
            format!("<sip:{token}@127.0.0.1:5060;lr>"),
            format!("<sip:{token}@127.0.0.1:{};lr>", ports.port_s),
        ],
        "toward the core the unprotected port, toward the phone port-s"
    );
    assert_eq!(lab.p.dialogs().len(), 1);
    let busy = fwd
        .response(StatusCode::new(486).unwrap(), Some("busy"))
        .unwrap();
    let outs = lab.core_sends(scscf(), busy);
    let (peer, resp) = transmits(&outs)
        .into_iter()
        .find(|(_, m)| m.status().is_some())
        .unwrap();
    assert_eq!(resp.status().map(|s| s.as_u16()), Some(486));
    assert_eq!(peer.flow, Some(PROTECTED_SERVER));
    assert!(lab.p.dialogs().is_empty());
    assert!(
        events(&outs)
            .iter()
            .any(|(s, _, r)| *s == "call" && r.contains("486"))
    );
}

fn large_terminating_invite(mode: IpsecMode) -> (Peer, Message) {
    let mut lab = Lab::new(mode);
    lab.register_ipsec(&UE, &[("hmac-sha-1-96", "aes-cbc")]);
    let token = lab.token();
    let sdp = "a=x\r\n".repeat(400);
    let outs = lab.core_sends(scscf(), terminating_invite(&token, &sdp));
    transmits(&outs)
        .into_iter()
        .find(|(_, m)| m.method() == Some(&Method::Invite))
        .unwrap()
}

#[test]
fn request_over_1300_bytes_to_an_ipsec_phone_goes_over_tcp_inside_userspace_esp() {
    let (peer, fwd) = large_terminating_invite(IpsecMode::Userspace);
    assert_eq!(peer.transport, Transport::Tcp);
    assert_eq!(
        (peer.addr, peer.flow),
        (UE.server(), Some(PROTECTED_CLIENT))
    );
    assert!(header(&fwd, &HeaderName::VIA).starts_with("SIP/2.0/TCP "));
    assert!(header(&fwd, &HeaderName::VIA).contains(":5100;"));
}

#[test]
fn request_over_1300_bytes_to_a_kernel_ipsec_phone_stays_on_its_sas_over_udp() {
    let (peer, fwd) = large_terminating_invite(IpsecMode::Xfrm);
    assert_eq!(peer.transport, Transport::Udp);
    assert_eq!(
        (peer.addr, peer.flow),
        (UE.server(), Some(PROTECTED_CLIENT))
    );
    assert!(header(&fwd, &HeaderName::VIA).starts_with("SIP/2.0/UDP "));
}

#[test]
fn phone_speaking_tcp_over_its_sas_gets_responses_and_requests_over_tcp() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let suites = [("hmac-sha-1-96", "aes-cbc")];
    let reg = lab.register_ipsec(&UE, &suites);
    let message = protected_message(&UE, "TCP", "tcp-1", &suites, &reg.security_server);
    let ingress = Ingress {
        transport: Transport::Tcp,
        source: UE.client(),
        local: SocketAddr::new(listen().ip(), lab.p.settings().ports.port_s),
        flow: None,
        protection: Protection::Esp {
            spi: Spi(reg.pcscf_spi_s),
        },
    };
    let outs = lab.p.handle_message(lab.now, message, ingress);
    let fwd = sent_to(&outs, scscf());
    let ok = answer(&fwd, 200, &[]);
    let outs = lab.core_sends(scscf(), ok);
    let (peer, _) = transmits(&outs)
        .into_iter()
        .find(|(_, m)| m.status() == Some(StatusCode::OK))
        .expect("200 toward the phone");
    assert_eq!(
        (peer.transport, peer.addr, peer.flow),
        (Transport::Tcp, UE.client(), Some(PROTECTED_SERVER))
    );
    // A small request to the phone now goes over TCP too, from port-c to its port-s.
    let token = lab.token();
    let outs = lab.core_sends(scscf(), terminating_invite(&token, "v=0\r\n"));
    let (peer, fwd) = transmits(&outs)
        .into_iter()
        .find(|(_, m)| m.method() == Some(&Method::Invite))
        .unwrap();
    assert_eq!(
        (peer.transport, peer.addr, peer.flow),
        (Transport::Tcp, UE.server(), Some(PROTECTED_CLIENT))
    );
    assert!(header(&fwd, &HeaderName::VIA).starts_with("SIP/2.0/TCP "));
}

#[test]
fn old_sas_stay_until_the_transactions_opened_over_them_complete() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let suites = [("hmac-sha-1-96", "aes-cbc")];
    let first = lab.register_ipsec(&UE, &suites);
    // A MESSAGE over the first SAs, not yet answered by the core.
    let message = protected_message(&UE, "UDP", "old-1", &suites, &first.security_server);
    let outs = lab.ue_sends_protected(&UE, message, first.pcscf_spi_s);
    let pending = sent_to(&outs, scscf());
    // Re-registration to a new SA set.
    let next = Ue {
        port_c: 5082,
        spi_c: 33333,
        spi_s: 44444,
        ..UE
    };
    let extra = sec_agree_headers(&next, &suites, Some(&first.security_server));
    let outs = lab.ue_sends_protected(&UE, register(&UE, 3, UE.port_c, &extra), first.pcscf_spi_s);
    let fwd = sent_to(&outs, icscf());
    let outs = lab.core_sends(icscf(), challenge(&fwd, CK2, IK2));
    let (_, to_ue) = transmits(&outs).into_iter().next().unwrap();
    let (_, spi_s2, ss2) = security_server_spis(&to_ue);
    let auth = register(
        &next,
        4,
        next.port_c,
        &sec_agree_headers(&next, &suites, Some(&ss2)),
    );
    let outs = lab.ue_sends_protected(&next, auth, spi_s2);
    let fwd = sent_to(&outs, icscf());
    lab.core_sends(icscf(), ok_200(&fwd, 600));
    // The phone uses the new SAs: the old set is out of the table but not removed yet.
    let options = Message::parse(
        format!(
            "OPTIONS sip:127.0.0.1:6100 SIP/2.0\r\nVia: SIP/2.0/UDP {}:{};branch=z9hG4bKo2\r\n\
             Max-Forwards: 70\r\nFrom: <{IMPU}>;tag=o\r\nTo: <sip:127.0.0.1:6100>\r\nCall-ID: o2\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            next.ip, next.port_c
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.ue_sends_protected(&next, options, spi_s2);
    assert!(
        outs.iter()
            .all(|o| !matches!(o, Output::Sa(SaAction::Remove { .. })))
    );
    assert!(
        events(&outs)
            .iter()
            .any(|(s, _, r)| *s == "ipsec-sa" && r.contains("1 open transaction"))
    );
    // The core answers the MESSAGE: the 200 goes back over the old SAs, then they go.
    let outs = lab.core_sends(
        scscf(),
        pending.response(StatusCode::OK, Some("b")).unwrap(),
    );
    let sent = outs
        .iter()
        .position(|o| matches!(o, Output::Transmit { to, .. } if to.addr == UE.client()))
        .expect("200 to the phone");
    let removed = outs
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::Sa(SaAction::Remove {
                    reason: RemovalReason::Superseded,
                    ..
                })
            )
        })
        .expect("old SAs removed");
    assert!(sent < removed, "the response leaves before its SAs go");
}

#[test]
fn tcp_connection_refused_for_a_limit_is_reported_once_per_sa_set() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let reg = lab.register_ipsec(&UE, &[("hmac-sha-1-96", "aes-cbc")]);
    let now = lab.now;
    let why = "127.0.0.2 already has 8 TCP connections inside ESP";
    let outs = lab
        .p
        .handle_esp_tcp_refused(now, Spi(reg.pcscf_spi_s), UE.client(), why);
    let ev = events(&outs);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].0, ev[0].1), ("esp", Outcome::Failed));
    assert!(ev[0].2.contains(why), "{}", ev[0].2);
    assert!(
        lab.p
            .handle_esp_tcp_refused(now, Spi(reg.pcscf_spi_s), UE.client(), why)
            .is_empty()
    );
    assert!(
        lab.p
            .handle_esp_tcp_refused(now, Spi(1), UE.client(), why)
            .is_empty()
    );
}

/// Registers `UE` without sec-agree (pcscf.ipsec.mode off).
fn register_plain(lab: &mut Lab) {
    let outs = lab.ue_sends(&UE, register(&UE, 1, 5070, ""));
    let fwd = sent_to(&outs, icscf());
    lab.core_sends(icscf(), challenge(&fwd, CK, IK));
    let outs = lab.ue_sends(&UE, register(&UE, 2, 5070, ""));
    let fwd = sent_to(&outs, icscf());
    let outs = lab.core_sends(icscf(), ok_200(&fwd, 600));
    assert_eq!(sent_to(&outs, UE.plain()).status(), Some(StatusCode::OK));
}

#[test]
fn with_ipsec_off_a_call_from_a_phone_routes_out_and_its_bye_is_not_turned_back() {
    let mut lab = Lab::new(IpsecMode::Off);
    register_plain(&mut lab);
    let token = lab
        .p
        .settings()
        .flow_key
        .encode(&crate::flow::Flow::Udp { remote: UE.plain() }, 1);
    let invite = Message::parse(
        format!(
            "INVITE sip:bob@{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {};branch=z9hG4bKp1\r\nMax-Forwards: 70\r\n\
             From: <{IMPU}>;tag=a\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: call3\r\nCSeq: 1 INVITE\r\n\
             P-Preferred-Identity: <tel:+15550100>\r\n\
             Contact: <sip:001010000000001@{}>\r\nContent-Length: 0\r\n\r\n",
            UE.plain(),
            UE.plain()
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.ue_sends(&UE, invite);
    let fwd = sent_to(&outs, scscf());
    assert_eq!(
        header(&fwd, &HeaderName::P_ASSERTED_IDENTITY),
        "<tel:+15550100>"
    );
    assert_eq!(header(&fwd, &HeaderName::ROUTE), SERVICE_ROUTE);
    assert!(fwd.has_header(&HeaderName::P_CHARGING_VECTOR));
    let rr: Vec<String> = fwd
        .record_routes()
        .map(|r| r.unwrap().to_string())
        .collect();
    assert_eq!(rr, [format!("<sip:{token}@127.0.0.1:5060;lr>")]);
    let ok = fwd.response(StatusCode::OK, Some("bob")).unwrap();
    let outs = lab.core_sends(scscf(), ok);
    let to_phone = sent_to(&outs, UE.plain());
    assert_eq!(to_phone.status(), Some(StatusCode::OK));
    assert!(!to_phone.has_header(&HeaderName::P_CHARGING_VECTOR));
    assert_eq!(lab.p.dialogs().len(), 1);
    // The phone hangs up along its route set: our Record-Route (its own flow token) first.
    let bye = Message::parse(
        format!(
            "BYE sip:bob@127.0.0.5:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {};branch=z9hG4bKp2\r\nMax-Forwards: 70\r\n\
             Route: <sip:{token}@127.0.0.1:5060;lr>, {SERVICE_ROUTE}\r\n\
             From: <{IMPU}>;tag=a\r\nTo: <sip:bob@{DOMAIN}>;tag=bob\r\nCall-ID: call3\r\n\
             CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            UE.plain()
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.ue_sends(&UE, bye);
    let fwd = sent_to(&outs, scscf());
    assert_eq!(fwd.method(), Some(&Method::Bye));
    assert!(lab.p.dialogs().is_empty());
}

#[test]
fn cancelled_call_to_an_ipsec_phone_reaches_it_with_the_invites_via_and_ends_the_dialog() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let reg = lab.register_ipsec(&UE, &[("hmac-sha-1-96", "aes-cbc")]);
    let spi_c = pcscf_spi_c(&reg.security_server);
    let token = lab.token();
    let outs = lab.core_sends(scscf(), terminating_invite(&token, "v=0\r\n"));
    let (_, invite) = transmits(&outs)
        .into_iter()
        .find(|(_, m)| m.method() == Some(&Method::Invite))
        .unwrap();
    let ringing = invite
        .response(StatusCode::RINGING, Some("callee"))
        .unwrap();
    lab.ue_answers_protected(&UE, ringing, spi_c);
    let cancel = Message::parse(
        format!(
            "CANCEL sip:001010000000001@{} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKc1\r\nMax-Forwards: 69\r\n\
             Route: <sip:{token}@127.0.0.1:5060;lr>\r\n\
             From: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{IMPU}>\r\nCall-ID: call1\r\nCSeq: 1 CANCEL\r\n\
             Content-Length: 0\r\n\r\n",
            UE.server()
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.core_sends(scscf(), cancel);
    let sent = transmits(&outs);
    let (_, ok) = sent
        .iter()
        .find(|(p, m)| p.addr == scscf() && m.status() == Some(StatusCode::OK))
        .expect("200 to the CANCEL");
    assert_eq!(ok.cseq().unwrap().method, Method::Cancel);
    let (peer, to_phone) = sent
        .iter()
        .find(|(_, m)| m.method() == Some(&Method::Cancel))
        .expect("CANCEL to the phone");
    assert_eq!(peer.flow, Some(PROTECTED_CLIENT));
    assert_eq!(
        header(to_phone, &HeaderName::VIA),
        header(&invite, &HeaderName::VIA)
            .split(',')
            .next()
            .unwrap()
            .trim(),
        "RFC 3261 §9.1: the CANCEL's Via is the INVITE's"
    );
    let terminated = invite
        .response(StatusCode::new(487).unwrap(), Some("callee"))
        .unwrap();
    let outs = lab.ue_answers_protected(&UE, terminated, spi_c);
    let relayed = sent_to(&outs, scscf());
    assert_eq!(relayed.status().map(|s| s.as_u16()), Some(487));
    assert!(lab.p.dialogs().is_empty());
}

#[test]
fn ack_for_a_2xx_from_the_core_reaches_the_ipsec_phone_over_its_sas() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    lab.register_ipsec(&UE, &[("hmac-sha-1-96", "aes-cbc")]);
    let token = lab.token();
    let ack = Message::parse(
        format!(
            "ACK sip:001010000000001@{} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKack1\r\nMax-Forwards: 69\r\n\
             Route: <sip:{token}@127.0.0.1:5060;lr>, <sip:{token}@127.0.0.1:6100;lr>\r\n\
             From: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{IMPU}>;tag=callee\r\nCall-ID: call9\r\n\
             CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            UE.server()
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.core_sends(scscf(), ack);
    let (peer, fwd) = transmits(&outs)
        .into_iter()
        .find(|(_, m)| m.method() == Some(&Method::Ack))
        .expect("ACK forwarded to the phone");
    assert_eq!(
        (peer.addr, peer.flow),
        (UE.server(), Some(PROTECTED_CLIENT))
    );
    assert!(!fwd.has_header(&HeaderName::ROUTE));
}

#[test]
fn in_dialog_request_between_two_phones_of_this_pcscf_goes_straight_to_the_peer_flow() {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let suites = [("hmac-sha-1-96", "aes-cbc")];
    let a = lab.register_ipsec(&UE, &suites);
    let bob = Ue {
        ip: "127.0.0.3",
        spi_c: 55555,
        spi_s: 66666,
        ..UE
    };
    lab.register_ipsec(&bob, &suites);
    let key = &lab.p.settings().flow_key;
    let tok_a = key.encode(&crate::flow::Flow::Protected { ue: UE.server() }, 1);
    let tok_b = key.encode(&crate::flow::Flow::Protected { ue: bob.server() }, 1);
    let port_s = lab.p.settings().ports.port_s;
    // The S-CSCF did not Record-Route: both phones' entries of this P-CSCF are adjacent.
    let bye = Message::parse(
        format!(
            "BYE sip:001010000000001@{} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {}:{};branch=z9hG4bKpp1\r\nMax-Forwards: 70\r\n\
             Route: <sip:{tok_a}@127.0.0.1:{port_s};lr>, <sip:{tok_a}@127.0.0.1:5060;lr>, \
             <sip:{tok_b}@127.0.0.1:5060;lr>, <sip:{tok_b}@127.0.0.1:{port_s};lr>\r\n\
             From: <{IMPU}>;tag=a\r\nTo: <sip:bob@{DOMAIN}>;tag=b\r\nCall-ID: pp1\r\n\
             CSeq: 2 BYE\r\n{}Content-Length: 0\r\n\r\n",
            bob.server(),
            UE.ip,
            UE.port_c,
            sec_agree_headers(&UE, &suites, Some(&a.security_server)),
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.ue_sends_protected(&UE, bye, a.pcscf_spi_s);
    let (peer, fwd) = transmits(&outs)
        .into_iter()
        .find(|(_, m)| m.method() == Some(&Method::Bye))
        .expect("BYE forwarded");
    assert_eq!(
        (peer.addr, peer.flow),
        (bob.server(), Some(PROTECTED_CLIENT))
    );
    assert!(!fwd.has_header(&HeaderName::ROUTE));
    assert_eq!(
        header(&fwd, &HeaderName::P_ASSERTED_IDENTITY),
        format!("<{IMPU}>")
    );
}

/// A call between two IPsec phones of this P-CSCF through an S-CSCF that Record-Routes
/// (`record_routes`) or not: the caller's 2xx ACK and BYE, routed by the recorded route set
/// (or by the Request-URI alone when the callee's 2xx lacked Record-Route, `callee_copies_rr`
/// false), reach the callee from port-c over its SAs, and the callee's UPDATE reaches the
/// caller the same way (TS 33.203 §7.1, TS 24.229 §5.2.6.3).
fn in_dialog_between_two_ipsec_phones(record_routes: bool, callee_copies_rr: bool) {
    let mut lab = Lab::new(IpsecMode::Userspace);
    let suites = [("hmac-sha-1-96", "aes-cbc")];
    let a = lab.register_ipsec(&UE, &suites);
    let bob = Ue {
        ip: "127.0.0.3",
        spi_c: 55555,
        spi_s: 66666,
        ..UE
    };
    let b = lab.register_ipsec(&bob, &suites);
    let tok_b = lab
        .p
        .settings()
        .flow_key
        .encode(&crate::flow::Flow::Protected { ue: bob.server() }, 1);
    let verify = sec_agree_headers(&UE, &suites, Some(&a.security_server));
    let invite = Message::parse(
        format!(
            "INVITE sip:bob@{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {}:{};branch=z9hG4bKab1\r\nMax-Forwards: 70\r\n\
             Route: <sip:127.0.0.1:{};lr>\r\n\
             From: <{IMPU}>;tag=a\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: ab1\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:alice@{}>\r\n{verify}Content-Length: 0\r\n\r\n",
            UE.ip,
            UE.port_c,
            lab.p.settings().ports.port_s,
            UE.server(),
        )
        .into_bytes(),
    )
    .unwrap();
    let outs = lab.ue_sends_protected(&UE, invite, a.pcscf_spi_s);
    let to_core = sent_to(&outs, scscf());
    // The S-CSCF (orig + term) sends it back toward bob's Path.
    let mut inv = to_core.clone();
    inv.remove_header(&HeaderName::ROUTE);
    inv.push_header(
        HeaderName::ROUTE,
        format!("<sip:{tok_b}@127.0.0.1:5060;lr>"),
    )
    .unwrap();
    if record_routes {
        inv.prepend_header(HeaderName::RECORD_ROUTE, "<sip:term@127.0.0.1:6060;lr>")
            .unwrap();
    }
    inv.prepend_header(
        HeaderName::VIA,
        "SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKterm1",
    )
    .unwrap();
    inv.set_request_uri(bytes::Bytes::from(format!("sip:bob@{}", bob.server())))
        .unwrap();
    let inv = Message::parse(inv.to_bytes()).unwrap();
    let outs = lab.core_sends(scscf(), inv.clone());
    let (peer, to_bob) = transmits(&outs)
        .into_iter()
        .find(|(_, m)| m.method() == Some(&Method::Invite))
        .expect("INVITE to bob");
    assert_eq!(peer.addr, bob.server());
    let mut ok = to_bob.response(StatusCode::OK, Some("b")).unwrap();
    // RFC 3261 §12.1.1: the UAS copies Record-Route into the 2xx.
    if callee_copies_rr {
        ok.push_header(
            HeaderName::RECORD_ROUTE,
            header(&to_bob, &HeaderName::RECORD_ROUTE),
        )
        .unwrap();
    }
    ok.push_header(HeaderName::CONTACT, format!("<sip:bob@{}>", bob.server()))
        .unwrap();
    let ok = Message::parse(ok.to_bytes()).unwrap();
    let ok_spi_c = pcscf_spi_c(&b.security_server);
    let outs = lab.ue_answers_protected(&bob, ok, ok_spi_c);
    let mut ok_core = sent_to(&outs, scscf());
    ok_core.pop_first_value(&HeaderName::VIA).unwrap();
    let ok_core = Message::parse(ok_core.to_bytes()).unwrap();
    let outs = lab.core_sends(scscf(), ok_core);
    let ok_alice = sent_to(&outs, UE.client());
    assert_eq!(ok_alice.status(), Some(StatusCode::OK));
    let routes: Vec<String> = ok_alice
        .record_routes()
        .map(|r| r.unwrap().to_string())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(routes.is_empty(), !callee_copies_rr);
    let route_line = |routes: &[String]| {
        if routes.is_empty() {
            String::new()
        } else {
            format!("Route: {}\r\n", routes.join(", "))
        }
    };
    // The callee's route set: the INVITE's Record-Route in order (its port-s twin on top).
    let bob_routes: Vec<String> = to_bob
        .record_routes()
        .map(|r| r.unwrap().to_string())
        .collect();
    let bob_verify = sec_agree_headers(&bob, &suites, Some(&b.security_server));
    // (CSeq, method, from the callee, its route set, sender, P-CSCF spi-s, receiver,
    // Request-URI user). Without a route, the ACK's Request-URI is bob's registered contact
    // (found by contact), the BYE's another user at his protected port (any request to a
    // phone's port-s is moved onto its SAs).
    let legs = [
        (
            1,
            "ACK",
            false,
            &routes,
            &UE,
            a.pcscf_spi_s,
            &bob,
            "001010000000001",
        ),
        (
            2,
            "UPDATE",
            true,
            &bob_routes,
            &bob,
            b.pcscf_spi_s,
            &UE,
            "alice",
        ),
        (2, "BYE", false, &routes, &UE, a.pcscf_spi_s, &bob, "bob"),
    ];
    for (n, method, from_callee, routes, sender, spi, receiver, user) in legs {
        let ruri = format!("sip:{user}@{}", receiver.server());
        let (from, to, verify) = if from_callee {
            (
                format!("<sip:bob@{DOMAIN}>;tag=b"),
                format!("<{IMPU}>;tag=a"),
                &bob_verify,
            )
        } else {
            (
                format!("<{IMPU}>;tag=a"),
                format!("<sip:bob@{DOMAIN}>;tag=b"),
                &verify,
            )
        };
        let req = Message::parse(
            format!(
                "{method} {ruri} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {}:{};branch=z9hG4bKab{method}\r\nMax-Forwards: 70\r\n\
                 {}From: {from}\r\nTo: {to}\r\nCall-ID: ab1\r\n\
                 CSeq: {n} {method}\r\n{verify}Content-Length: 0\r\n\r\n",
                sender.ip,
                sender.port_c,
                route_line(routes),
            )
            .into_bytes(),
        )
        .unwrap();
        let mut outs = lab.ue_sends_protected(sender, req, spi);
        if let Some(mut via_core) = transmits(&outs)
            .into_iter()
            .find(|(p, _)| p.addr == scscf())
            .map(|(_, m)| m)
        {
            assert!(
                record_routes && !routes.is_empty(),
                "{method} went to the S-CSCF, which is not on the route"
            );
            via_core.pop_first_value(&HeaderName::ROUTE);
            via_core
                .prepend_header(
                    HeaderName::VIA,
                    format!("SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKt{method}"),
                )
                .unwrap();
            let via_core = Message::parse(via_core.to_bytes()).unwrap();
            outs = lab.core_sends(scscf(), via_core);
        }
        let (peer, fwd) = transmits(&outs)
            .into_iter()
            .find(|(_, m)| m.method().map(|m| m.as_str()) == Some(method))
            .unwrap_or_else(|| panic!("{method} not forwarded: {outs:#?}"));
        assert_eq!(
            (peer.addr, peer.flow),
            (receiver.server(), Some(PROTECTED_CLIENT)),
            "{method} to the other phone over its SAs from port-c"
        );
        assert!(!fwd.has_header(&HeaderName::ROUTE), "{fwd:?}");
    }
}

#[test]
fn in_dialog_requests_between_ipsec_phones_through_a_record_routing_core_go_over_their_sas() {
    in_dialog_between_two_ipsec_phones(true, true);
}

#[test]
fn in_dialog_requests_between_ipsec_phones_when_the_core_did_not_record_route_go_over_their_sas() {
    in_dialog_between_two_ipsec_phones(false, true);
}

#[test]
fn in_dialog_requests_between_ipsec_phones_when_the_2xx_lacked_record_route_go_over_their_sas() {
    in_dialog_between_two_ipsec_phones(true, false);
}

#[test]
fn xfrm_restart_restores_the_sa_set_for_the_kernel_to_keep_and_accepts_the_phone_on_it() {
    let mut lab = Lab::new(IpsecMode::Xfrm);
    let reg = lab.register_ipsec(&UE, &[("hmac-sha-1-96", "aes-cbc")]);
    let rows: Vec<PcscfRegistration> = reg
        .outs
        .iter()
        .filter_map(|o| match o {
            Output::Store(StoreOp::PutRegistration(r)) => Some((**r).clone()),
            _ => None,
        })
        .collect();
    assert!(rows.iter().all(|r| r.sa_info.is_some()), "{rows:?}");
    let wall = lab.p.wall(lab.now + Duration::from_secs(10));
    let mut again = Lab::with(settings(IpsecMode::Xfrm, 2));
    again.now += Duration::from_secs(10);
    let outs = again.p.restore(again.now, wall, rows, vec![]);
    assert!(
        events(&outs)
            .iter()
            .any(|(s, _, r)| *s == "registered" && r.contains("with its IPsec SAs")),
        "{:?}",
        events(&outs)
    );
    let (sets, rest) = crate::server::xfrm_restored_sets(outs);
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].bundle.local.spi_s, Spi(reg.pcscf_spi_s));
    assert!(sets[0].resume_oseq >= 1 << 24);
    assert!(
        rest.iter()
            .all(|o| !matches!(o, Output::Sa(_) | Output::ResumeEsp { .. }))
    );
    // The phone goes on over the kept kernel SAs: its request on port-s is its own.
    let msg = Message::parse(
        format!(
            "MESSAGE sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {}:{};branch=z9hG4bKx1\r\n\
             Max-Forwards: 70\r\nFrom: <{IMPU}>;tag=x\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: x1\r\n\
             CSeq: 1 MESSAGE\r\n{}Content-Length: 0\r\n\r\n",
            UE.ip,
            UE.port_c,
            sec_agree_headers(
                &UE,
                &[("hmac-sha-1-96", "aes-cbc")],
                Some(&reg.security_server)
            ),
        )
        .into_bytes(),
    )
    .unwrap();
    let ingress = Ingress {
        transport: Transport::Udp,
        source: UE.client(),
        local: SocketAddr::new(listen().ip(), again.p.settings().ports.port_s),
        flow: None,
        protection: Protection::Kernel,
    };
    let outs = again.p.handle_message(again.now, msg, ingress);
    let fwd = sent_to(&outs, scscf());
    assert_eq!(
        header(&fwd, &HeaderName::P_ASSERTED_IDENTITY),
        format!("<{IMPU}>")
    );
}
