//! The core on a virtual clock, with a fake HSS (real Milenage) and a USIM playing the UE.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use imslab_aka::{
    AmfPolicy, Auc, DigestAlgorithm, DigestRequest, Ha1, Milenage, NonceCount, Qop, QopParams,
    SqnConfig, Usim, generate_vector, parse_resync_authorization,
};
use imslab_diameter::cx::{
    CxResult, DeregistrationReason, Maa, Ppr, Rtr, Saa, SipAuthDataItem, SipDigestAuthenticate,
};
use imslab_diameter::enums::{ReasonCode, ServerAssignmentType};
use imslab_diameter::{ExperimentalResultCode as Exp, Origin};
use imslab_sip::header::Auth;
use imslab_sip::proxy::Decision;
use imslab_sip::{HeaderName, Message, StatusCode, TypedHeader as _};
use imslab_store::SubscriptionRole;
use imslab_types::{Amf, DiameterIdentity, Impi, Impu, K, Opc, Rand, Realm, Sqn};

use super::*;

const DOMAIN: &str = "ims.mnc001.mcc001.3gppnetwork.org";
const IMPI: &str = "001010000000001@ims.mnc001.mcc001.3gppnetwork.org";
const IMPU: &str = "sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org";
const TEL: &str = "tel:+15550001";
const PATH: &str = "<sip:term@127.0.0.1:5060;lr>";

fn k() -> K {
    K::from_bytes(*b"\x46\x5b\x5c\xe8\xb1\x99\xb4\x9f\xaa\x5f\x0a\x2e\xe2\x38\xa6\xbc")
}
fn opc() -> Opc {
    Opc::from_bytes(*b"\xcd\x63\xcb\x71\x95\x4a\x9f\x4e\x48\xa5\x99\x4e\x37\xa0\x2b\xaf")
}

fn settings() -> Settings {
    let cfg = imslab_config::ScscfConfig {
        reg_expires_min: 60,
        ..Default::default()
    };
    Settings::from_config(
        &cfg,
        &Realm::new(DOMAIN).expect("realm"),
        "hss.ims.mnc001.mcc001.3gppnetwork.org",
    )
    .expect("settings")
}

fn counter_rand() -> Box<dyn FnMut() -> [u8; 16] + Send> {
    let mut n = 0u8;
    Box::new(move || {
        n = n.wrapping_add(1);
        [n; 16]
    })
}

/// The HSS side of Cx, enough for the S-CSCF: AKA vectors (with SQN and resync), SIP Digest,
/// SAR with User-Data.
struct FakeHss {
    sqn_he: Sqn,
    digest: bool,
    password: &'static str,
    rand: u8,
    user_data: String,
    sars: Vec<ServerAssignmentType>,
    origin: Origin,
}

impl FakeHss {
    fn new() -> Self {
        Self {
            sqn_he: Sqn::new(0).expect("sqn"),
            digest: false,
            password: "secret",
            rand: 0x30,
            user_data: user_data(""),
            sars: Vec::new(),
            origin: Origin {
                host: DiameterIdentity::new("hss.ims.mnc001.mcc001.3gppnetwork.org").expect("host"),
                realm: Realm::new(DOMAIN).expect("realm"),
            },
        }
    }

    fn maa(&mut self, mar: &Mar) -> Maa {
        let m = Milenage::new(&k(), &opc());
        let scheme = mar
            .sip_auth_data_item
            .authentication_scheme
            .clone()
            .unwrap_or_default();
        if self.digest {
            if scheme != SipAuthDataItem::SCHEME_SIP_DIGEST
                && scheme != SipAuthDataItem::SCHEME_UNKNOWN
            {
                return Maa::new(
                    mar,
                    &self.origin,
                    CxResult::experimental(Exp::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED),
                );
            }
            let mut a = Maa::new(mar, &self.origin, CxResult::SUCCESS);
            a.sip_auth_data_items = vec![SipAuthDataItem {
                authentication_scheme: Some(SipAuthDataItem::SCHEME_SIP_DIGEST.to_owned()),
                digest_authenticate: Some(SipDigestAuthenticate {
                    digest_realm: DOMAIN.to_owned(),
                    digest_algorithm: Some("MD5".into()),
                    digest_qop: "auth".into(),
                    digest_ha1: Ha1::new(IMPI, DOMAIN, self.password.as_bytes()).expose_hex(),
                    extra: Vec::new(),
                }),
                ..SipAuthDataItem::default()
            }];
            return a;
        }
        if scheme == SipAuthDataItem::SCHEME_UNKNOWN {
            return Maa::new(
                mar,
                &self.origin,
                CxResult::experimental(Exp::DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED),
            );
        }
        if let Some(auth) = &mar.sip_auth_data_item.authorization {
            let (rand, auts) = parse_resync_authorization(auth).expect("RAND || AUTS");
            let auc = Auc::new(SqnConfig::default(), AmfPolicy::Any);
            let r = auc
                .resync(&m, self.sqn_he, &rand, &auts)
                .expect("AUTS verifies");
            self.sqn_he = r.sqn_he;
        }
        self.sqn_he = SqnConfig::default().next_sqn(self.sqn_he).expect("next");
        self.rand += 1;
        let v = generate_vector(&m, Rand([self.rand; 16]), self.sqn_he, Amf([0, 0]));
        let mut a = Maa::new(mar, &self.origin, CxResult::SUCCESS);
        a.sip_auth_data_items = vec![SipAuthDataItem {
            authentication_scheme: Some(scheme),
            authenticate: Some(Bytes::copy_from_slice(&v.sip_authenticate())),
            authorization: Some(Bytes::copy_from_slice(v.xres.expose())),
            confidentiality_key: Some(v.ck.clone()),
            integrity_key: Some(v.ik.clone()),
            ..SipAuthDataItem::default()
        }];
        a
    }

    fn saa(&mut self, sar: &Sar) -> Saa {
        self.sars.push(sar.server_assignment_type);
        let known = sar.public_identities.iter().all(|i| {
            self.user_data
                .contains(&format!("<Identity>{i}</Identity>"))
        });
        if sar.server_assignment_type == ServerAssignmentType::UNREGISTERED_USER && !known {
            return Saa::new(
                sar,
                &self.origin,
                CxResult::experimental(Exp::DIAMETER_ERROR_USER_UNKNOWN),
            );
        }
        let mut a = Saa::new(sar, &self.origin, CxResult::SUCCESS);
        if sar.server_assignment_type == ServerAssignmentType::REGISTRATION
            || sar.server_assignment_type == ServerAssignmentType::RE_REGISTRATION
            || sar.server_assignment_type == ServerAssignmentType::UNREGISTERED_USER
        {
            a.user_data = Some(Bytes::from(self.user_data.clone()));
        }
        a
    }
}

fn user_data(ifcs: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><IMSSubscription><PrivateID>{IMPI}</PrivateID><ServiceProfile>\
         <PublicIdentity><Identity>{IMPU}</Identity></PublicIdentity>\
         <PublicIdentity><Identity>{TEL}</Identity></PublicIdentity>\
         <PublicIdentity><BarringIndication>1</BarringIndication><Identity>sip:barred@{DOMAIN}</Identity></PublicIdentity>\
         {ifcs}</ServiceProfile></IMSSubscription>"
    )
}

struct Sent {
    job: JobId,
    request: Message,
    next_hop: String,
}

/// The core, the fake HSS, a USIM and a virtual clock.
struct Lab {
    r: Registrar,
    now: Now,
    hss: FakeHss,
    usim: Usim,
    next: u64,
    responses: Vec<(ReqId, Decision)>,
    sent: Vec<Sent>,
    persisted: Vec<Persist>,
    events: Vec<UeEvent>,
    answers: Vec<(AnswerId, imslab_diameter::Message)>,
    cx_count: usize,
    call_id: String,
    cseq: u32,
    last_nonce: Option<String>,
    nc: u32,
    /// When set, Cx requests are not answered (to look at them).
    hold_cx: bool,
    held: Vec<(TaskId, CxOut)>,
    /// Requests the core relays to the breakout trunk itself.
    relayed: Vec<(ReqId, Message, String)>,
    /// ENUM queries asked for.
    enum_queries: Vec<(TaskId, String)>,
}

impl Lab {
    fn new() -> Self {
        Self::with(Registrar::new(settings(), counter_rand(), 1))
    }

    fn with(r: Registrar) -> Self {
        Self {
            r,
            now: Now {
                at: Instant::now(),
                wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000),
            },
            hss: FakeHss::new(),
            usim: Usim::new(&k(), &opc()),
            next: 0,
            responses: Vec::new(),
            sent: Vec::new(),
            persisted: Vec::new(),
            events: Vec::new(),
            answers: Vec::new(),
            cx_count: 0,
            call_id: "reg-1@ue".into(),
            cseq: 0,
            last_nonce: None,
            nc: 0,
            hold_cx: false,
            held: Vec::new(),
            relayed: Vec::new(),
            enum_queries: Vec::new(),
        }
    }

    fn req_id(&mut self) -> ReqId {
        self.next += 1;
        ReqId(self.next)
    }

    /// Drains outputs; answers Cx requests with the fake HSS until none is left.
    fn pump(&mut self) {
        while let Some(o) = self.r.poll_output() {
            match o {
                Output::Decide { req, decision } => self.responses.push((req, decision)),
                Output::Cx { task, request } => {
                    self.cx_count += 1;
                    if self.hold_cx {
                        self.held.push((task, request));
                        continue;
                    }
                    let reply = match &request {
                        CxOut::Mar(m) => CxReply::Maa(Box::new(self.hss.maa(m))),
                        CxOut::Sar(s) => CxReply::Saa(Box::new(self.hss.saa(s))),
                    };
                    self.r.handle_cx_answer(self.now, task, reply);
                }
                Output::Send {
                    job,
                    request,
                    next_hop,
                } => self.sent.push(Sent {
                    job,
                    request,
                    next_hop,
                }),
                Output::Answer { id, answer } => self.answers.push((id, answer)),
                Output::Persist(p) => self.persisted.push(p),
                Output::Event(e) => self.events.push(e),
                Output::Relay {
                    req,
                    request,
                    next_hop,
                } => self.relayed.push((req, request, next_hop)),
                Output::Enum { task, name } => self.enum_queries.push((task, name)),
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
        if self.r.poll_timeout().is_some_and(|t| t <= self.now.at) {
            self.r.handle_timeout(self.now);
            self.pump();
        }
    }

    fn register_msg(&mut self, contact: &str, expires: u32, auth: &str, extra: &str) -> Message {
        self.cseq += 1;
        let text = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:4060;branch=z9hG4bKicscf{c}\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKpcscf{c}\r\n\
             Via: SIP/2.0/UDP 10.45.0.2:5060;branch=z9hG4bKue{c};rport\r\n\
             Max-Forwards: 68\r\n\
             From: <{IMPU}>;tag=ue1\r\n\
             To: <{IMPU}>\r\n\
             Call-ID: {call}\r\n\
             CSeq: {c} REGISTER\r\n\
             Contact: {contact}\r\n\
             Expires: {expires}\r\n\
             Path: {PATH}\r\n\
             {auth}{extra}\
             Content-Length: 0\r\n\r\n",
            c = self.cseq,
            call = self.call_id,
        );
        Message::parse(text.into_bytes()).expect("REGISTER parses")
    }

    fn send_register(&mut self, msg: Message) -> Message {
        let req = self.req_id();
        self.r.handle_register(self.now, req, msg, None);
        self.pump();
        self.response_to(req)
    }

    fn response_to(&mut self, req: ReqId) -> Message {
        let i = self
            .responses
            .iter()
            .position(|(r, _)| *r == req)
            .expect("the request was answered");
        match self.responses.remove(i).1 {
            Decision::Respond(m) => m,
            Decision::Forward { .. } => panic!("expected a response, got a forward"),
        }
    }

    fn initial_auth() -> String {
        format!(
            "Authorization: Digest username=\"{IMPI}\", realm=\"{DOMAIN}\", nonce=\"\", \
             uri=\"sip:{DOMAIN}\", response=\"\", algorithm=AKAv1-MD5\r\n"
        )
    }

    fn answer_auth(&mut self, nonce: &str, ha1: &Ha1) -> String {
        self.nc += 1;
        let resp = imslab_aka::digest::response(
            ha1,
            &DigestRequest {
                nonce,
                method: "REGISTER",
                uri: &format!("sip:{DOMAIN}"),
                qop: Some(QopParams {
                    qop: Qop::Auth,
                    nc: NonceCount::new(self.nc),
                    cnonce: "0a4f113b",
                }),
                body: b"",
            },
        );
        format!(
            "Authorization: Digest username=\"{IMPI}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", \
             uri=\"sip:{DOMAIN}\", response=\"{resp}\", algorithm=AKAv1-MD5, qop=auth, \
             nc={:08x}, cnonce=\"0a4f113b\"\r\n",
            self.nc
        )
    }

    fn challenge_of(resp: &Message) -> Auth<'static> {
        assert_eq!(resp.status(), Some(StatusCode::UNAUTHORIZED), "{resp:?}");
        let v = resp
            .header_str(&HeaderName::WWW_AUTHENTICATE)
            .expect("WWW-Authenticate")
            .expect("utf-8");
        Auth::parse_value(v, "WWW-Authenticate")
            .expect("parses")
            .into_owned()
    }

    /// A full IMS AKA registration of `contact`; returns the 200.
    fn aka_register(&mut self, contact: &str, expires: u32) -> Message {
        let first = self.register_msg(contact, expires, &Self::initial_auth(), "");
        let r401 = self.send_register(first);
        let ch = Self::challenge_of(&r401);
        let nonce = ch.nonce().expect("nonce").to_owned();
        let aka = self
            .usim
            .authenticate_nonce(&nonce)
            .expect("network authenticates");
        let ha1 = Ha1::aka(
            DigestAlgorithm::AkaV1Md5,
            IMPI,
            DOMAIN,
            &aka.res,
            &aka.ik,
            &aka.ck,
        )
        .expect("ha1");
        self.nc = 0;
        let auth = self.answer_auth(&nonce, &ha1);
        self.last_nonce = Some(nonce);
        let second = self.register_msg(contact, expires, &auth, "");
        self.send_register(second)
    }

    /// The answer to the last AKA challenge with the next nonce count.
    fn reuse_answer(&mut self) -> String {
        let nonce = self.last_nonce.clone().expect("a registration happened");
        let m = Milenage::new(&k(), &opc());
        let n = imslab_aka::Nonce::parse(&nonce).expect("nonce");
        let f = m.f2345(&n.rand);
        let ha1 = Ha1::aka(
            DigestAlgorithm::AkaV1Md5,
            IMPI,
            DOMAIN,
            &f.res,
            &f.ik,
            &f.ck,
        )
        .expect("ha1");
        self.answer_auth(&nonce, &ha1)
    }

    fn subscribe(&mut self, from: &str, pai: Option<&str>, expires: u32) -> (Message, ReqId) {
        self.subscribe_via(from, pai, expires, "127.0.0.1:5060")
    }

    fn subscribe_via(
        &mut self,
        from: &str,
        pai: Option<&str>,
        expires: u32,
        via: &str,
    ) -> (Message, ReqId) {
        let pai = pai
            .map(|p| format!("P-Asserted-Identity: <{p}>\r\n"))
            .unwrap_or_default();
        let text = format!(
            "SUBSCRIBE {IMPU} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {via};branch=z9hG4bKsub1\r\n\
             Max-Forwards: 69\r\n\
             From: <{from}>;tag=w1\r\n\
             To: <{IMPU}>\r\n\
             Call-ID: sub-1@pcscf\r\n\
             CSeq: 1 SUBSCRIBE\r\n\
             Event: reg\r\n\
             Expires: {expires}\r\n\
             Contact: <sip:127.0.0.1:5060>\r\n\
             Record-Route: <sip:127.0.0.1:5060;lr>\r\n\
             {pai}Content-Length: 0\r\n\r\n"
        );
        let req = self.req_id();
        self.r.handle_subscribe(
            self.now,
            req,
            Message::parse(text.into_bytes()).expect("parses"),
        );
        self.pump();
        (self.response_to(req), req)
    }

    fn take_notifies(&mut self) -> Vec<Sent> {
        let (n, rest): (Vec<Sent>, Vec<Sent>) = std::mem::take(&mut self.sent)
            .into_iter()
            .partition(|s| s.request.method() == Some(&imslab_sip::Method::Notify));
        self.sent = rest;
        n
    }

    fn steps(&self) -> Vec<(&'static str, Outcome)> {
        self.events.iter().map(|e| (e.step, e.outcome)).collect()
    }
}

fn header(m: &Message, name: &HeaderName) -> Vec<String> {
    m.values(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn body(m: &Message) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

fn sub_state(m: &Message) -> String {
    header(m, &HeaderName::SUBSCRIPTION_STATE).join(",")
}

#[test]
fn aka_registration_challenges_then_answers_200_with_route_path_and_identities() {
    let mut lab = Lab::new();
    let first = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &Lab::initial_auth(), "");
    let r401 = lab.send_register(first);
    let ch = Lab::challenge_of(&r401);
    assert_eq!(ch.realm(), Some(DOMAIN));
    assert_eq!(ch.get("algorithm"), Some("AKAv1-MD5"));
    assert_eq!(ch.qop(), Some("auth"));
    assert_eq!(ch.ck().map(str::len), Some(32), "ck for the P-CSCF");
    assert_eq!(ch.ik().map(str::len), Some(32), "ik for the P-CSCF");
    assert!(lab.steps().contains(&("mar", Outcome::Ok)));
    assert!(lab.steps().contains(&("challenge", Outcome::Ok)));

    let nonce = ch.nonce().expect("nonce").to_owned();
    let aka = lab.usim.authenticate_nonce(&nonce).expect("AUTN verifies");
    let ha1 = Ha1::aka(
        DigestAlgorithm::AkaV1Md5,
        IMPI,
        DOMAIN,
        &aka.res,
        &aka.ik,
        &aka.ck,
    )
    .expect("ha1");
    let auth = lab.answer_auth(&nonce, &ha1);
    let second = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &auth, "");
    let ok = lab.send_register(second);
    assert_eq!(ok.status(), Some(StatusCode::OK));
    assert_eq!(
        header(&ok, &HeaderName::CONTACT),
        ["<sip:ue@10.45.0.2:5060>;expires=600"]
    );
    assert_eq!(header(&ok, &HeaderName::PATH), [PATH]);
    assert_eq!(
        header(&ok, &HeaderName::SERVICE_ROUTE),
        ["<sip:orig@scscf.ims.mnc001.mcc001.3gppnetwork.org:6060;lr>"]
    );
    assert_eq!(
        header(&ok, &HeaderName::P_ASSOCIATED_URI),
        [format!("<{IMPU}>"), format!("<{TEL}>")],
        "the implicit set without the barred identity"
    );
    assert_eq!(lab.hss.sars, [ServerAssignmentType::REGISTRATION]);
    assert!(lab.steps().contains(&("auth-response", Outcome::Ok)));
    assert!(lab.steps().contains(&("registered", Outcome::Ok)));
    assert!(
        lab.persisted
            .iter()
            .any(|p| matches!(p, Persist::PutRegistration(r) if r.impu.as_str() == IMPU))
    );
    assert!(lab.persisted.iter().any(|p| matches!(p, Persist::PutBinding(b) if b.contact == "sip:ue@10.45.0.2:5060" && b.path == [PATH])));
    let reg = lab
        .r
        .registration(&Impu::new(TEL).expect("tel"))
        .expect("found by the tel alias");
    assert_eq!(reg.impu.as_str(), IMPU);
}

#[test]
fn wrong_response_is_challenged_again_then_refused_with_403() {
    let mut lab = Lab::new();
    let max = lab.r.settings().max_auth_failures;
    for attempt in 1..=max {
        let first = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &Lab::initial_auth(), "");
        let r401 = lab.send_register(first);
        let nonce = Lab::challenge_of(&r401).nonce().expect("nonce").to_owned();
        let wrong = Ha1::new(IMPI, DOMAIN, b"not-the-res");
        let auth = lab.answer_auth(&nonce, &wrong);
        let msg = lab_msg(&mut lab, &auth);
        let resp = lab.send_register(msg);
        if attempt < max {
            let again = Lab::challenge_of(&resp);
            assert_ne!(again.nonce(), Some(nonce.as_str()), "a fresh challenge");
        } else {
            assert_eq!(resp.status(), Some(StatusCode::FORBIDDEN));
        }
    }
    let failed = lab
        .events
        .iter()
        .filter(|e| e.step == "auth-response" && e.outcome == Outcome::Failed)
        .count();
    assert_eq!(failed, max as usize);
    assert!(lab.events.iter().any(|e| {
        e.reason
            .as_deref()
            .is_some_and(|r| r.contains("RES does not match XRES"))
    }));
    assert_eq!(lab.r.registration_count(), 0);
}

fn lab_msg(lab: &mut Lab, auth: &str) -> Message {
    lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, auth, "")
}

#[test]
fn auts_triggers_a_resync_mar_and_a_fresh_challenge() {
    let mut lab = Lab::new();
    // The card already accepted a much higher SQN than the HSS has.
    let m = Milenage::new(&k(), &opc());
    let high = SqnConfig::default().compose(5000, 1).expect("sqn");
    let v = generate_vector(&m, Rand([1; 16]), high, Amf([0, 0]));
    lab.usim.authenticate(&v.rand, &v.autn).expect("accepts");

    let first = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &Lab::initial_auth(), "");
    let nonce = Lab::challenge_of(&lab.send_register(first))
        .nonce()
        .expect("nonce")
        .to_owned();
    let auts = match lab.usim.authenticate_nonce(&nonce) {
        Err(imslab_aka::Error::SyncFailure { auts, .. }) => auts,
        other => panic!("expected a sync failure, got {other:?}"),
    };
    let empty = Ha1::empty_password(IMPI, DOMAIN);
    let auth = lab
        .answer_auth(&nonce, &empty)
        .replace("\r\n", &format!(", auts=\"{}\"\r\n", auts.to_base64()));
    let msg = lab_msg(&mut lab, &auth);
    let resync = lab.send_register(msg);
    let fresh = Lab::challenge_of(&resync);
    let fresh_nonce = fresh.nonce().expect("nonce").to_owned();
    assert_ne!(fresh_nonce, nonce);
    assert!(lab.steps().contains(&("aka-resync", Outcome::Info)));
    assert!(lab.steps().contains(&("aka-resync", Outcome::Ok)));
    let aka = lab
        .usim
        .authenticate_nonce(&fresh_nonce)
        .expect("in sync now");
    let ha1 = Ha1::aka(
        DigestAlgorithm::AkaV1Md5,
        IMPI,
        DOMAIN,
        &aka.res,
        &aka.ik,
        &aka.ck,
    )
    .expect("ha1");
    lab.nc = 0;
    let auth = lab.answer_auth(&fresh_nonce, &ha1);
    let msg = lab_msg(&mut lab, &auth);
    let ok = lab.send_register(msg);
    assert_eq!(ok.status(), Some(StatusCode::OK));
}

#[test]
fn empty_response_without_auts_is_a_network_authentication_failure() {
    let mut lab = Lab::new();
    let first = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &Lab::initial_auth(), "");
    let nonce = Lab::challenge_of(&lab.send_register(first))
        .nonce()
        .expect("nonce")
        .to_owned();
    let auth = format!(
        "Authorization: Digest username=\"{IMPI}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", \
         uri=\"sip:{DOMAIN}\", response=\"\", algorithm=AKAv1-MD5\r\n"
    );
    let msg = lab_msg(&mut lab, &auth);
    let resp = lab.send_register(msg);
    assert_eq!(resp.status(), Some(StatusCode::FORBIDDEN));
    assert!(lab.events.iter().any(|e| {
        e.reason
            .as_deref()
            .is_some_and(|r| r.contains("MAC failure"))
    }));
}

#[test]
fn expiry_below_the_minimum_is_answered_423_with_min_expires() {
    let mut lab = Lab::new();
    let m = lab.register_msg("<sip:ue@10.45.0.2:5060>", 30, &Lab::initial_auth(), "");
    let resp = lab.send_register(m);
    assert_eq!(resp.status(), Some(StatusCode::INTERVAL_TOO_BRIEF));
    assert_eq!(header(&resp, &HeaderName::MIN_EXPIRES), ["60"]);
    assert_eq!(lab.cx_count, 0, "no MAR for a refused interval");
}

#[test]
fn binding_expiry_ends_with_timeout_deregistration_and_expired_notify() {
    let mut lab = Lab::new();
    assert_eq!(
        lab.aka_register("<sip:ue@10.45.0.2:5060>", 600).status(),
        Some(StatusCode::OK)
    );
    let (ok, _) = lab.subscribe(IMPU, Some(IMPU), 600_000);
    assert_eq!(ok.status(), Some(StatusCode::OK));
    let first = lab.take_notifies();
    assert_eq!(first.len(), 1);
    lab.advance(Duration::from_secs(599));
    assert_eq!(lab.r.registration_count(), 1, "not yet");
    lab.advance(Duration::from_secs(2));
    assert_eq!(lab.r.registration_count(), 0);
    assert_eq!(
        lab.hss.sars.last(),
        Some(&ServerAssignmentType::TIMEOUT_DEREGISTRATION)
    );
    let n = lab.take_notifies();
    assert_eq!(n.len(), 1);
    let doc = body(&n[0].request);
    assert!(doc.contains("version=\"1\""), "{doc}");
    assert!(
        doc.contains("state=\"terminated\" event=\"expired\""),
        "{doc}"
    );
    assert!(sub_state(&n[0].request).starts_with("terminated"));
    assert!(
        lab.persisted
            .contains(&Persist::DeleteRegistration(Impu::new(IMPU).expect("impu")))
    );
    assert!(
        lab.events.iter().any(|e| e.step == "deregistered"
            && e.reason.as_deref().is_some_and(|r| r.contains("timeout")))
    );
    assert_eq!(lab.r.subscription_count(), 0);
}

#[test]
fn several_contacts_per_identity_keep_their_own_expiry() {
    let mut lab = Lab::new();
    let a = "<sip:ue@10.45.0.2:5060>;+sip.instance=\"<urn:gsma:imei:35876505-133788-0>\";reg-id=1";
    let b = "<sip:ue@10.45.0.3:5060>;+sip.instance=\"<urn:gsma:imei:35876505-133789-0>\";reg-id=1";
    assert_eq!(lab.aka_register(a, 600).status(), Some(StatusCode::OK));
    let nonce = lab.last_nonce.clone().expect("nonce");
    let aka_ha1 = {
        // The same challenge serves the next request with a higher nonce count.
        let m = Milenage::new(&k(), &opc());
        let n = imslab_aka::Nonce::parse(&nonce).expect("nonce");
        let f = m.f2345(&n.rand);
        Ha1::aka(
            DigestAlgorithm::AkaV1Md5,
            IMPI,
            DOMAIN,
            &f.res,
            &f.ik,
            &f.ck,
        )
        .expect("ha1")
    };
    let auth = lab.answer_auth(&nonce, &aka_ha1);
    let mfr = lab.register_msg(b, 1200, &auth, "");
    let ok = lab.send_register(mfr);
    assert_eq!(ok.status(), Some(StatusCode::OK));
    let contacts = header(&ok, &HeaderName::CONTACT);
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    assert!(
        contacts
            .iter()
            .any(|c| c.contains("10.45.0.2") && c.ends_with("expires=600"))
    );
    assert!(
        contacts
            .iter()
            .any(|c| c.contains("10.45.0.3") && c.ends_with("expires=1200"))
    );
    assert!(
        contacts
            .iter()
            .all(|c| c.contains("+sip.instance") && c.contains("reg-id=1"))
    );
    assert_eq!(
        lab.hss.sars,
        [
            ServerAssignmentType::REGISTRATION,
            ServerAssignmentType::RE_REGISTRATION
        ]
    );
    lab.advance(Duration::from_secs(601));
    let reg = lab
        .r
        .registration(&Impu::new(IMPU).expect("impu"))
        .expect("still registered");
    assert_eq!(reg.bindings.len(), 1);
    assert_eq!(reg.bindings[0].contact, "sip:ue@10.45.0.3:5060");
    assert_eq!(reg.bindings[0].reg_id, Some(1));
}

#[test]
fn reg_event_versions_grow_and_deregistration_terminates_with_unregistered() {
    let mut lab = Lab::new();
    assert_eq!(
        lab.aka_register("<sip:ue@10.45.0.2:5060>", 600).status(),
        Some(StatusCode::OK)
    );
    let (ok, _) = lab.subscribe("sip:pcscf.ims.example", Some("sip:127.0.0.1:5060"), 600_000);
    assert_eq!(ok.status(), Some(StatusCode::OK));
    assert_eq!(header(&ok, &HeaderName::EXPIRES), ["600000"]);
    let n0 = lab.take_notifies();
    assert_eq!(n0.len(), 1);
    let notify = &n0[0].request;
    assert_eq!(
        n0[0].next_hop, "<sip:127.0.0.1:5060;lr>",
        "NOTIFY follows the route set"
    );
    assert_eq!(header(notify, &HeaderName::EVENT), ["reg"]);
    assert!(sub_state(notify).starts_with("active;expires="));
    assert_eq!(
        header(notify, &HeaderName::CONTENT_TYPE),
        ["application/reginfo+xml"]
    );
    let doc = body(notify);
    assert!(doc.contains("version=\"0\" state=\"full\""), "{doc}");
    assert!(doc.contains(&format!("aor=\"{IMPU}\"")));
    assert!(
        doc.contains(&format!("aor=\"{TEL}\"")),
        "every identity of the set"
    );
    assert!(!doc.contains("barred"), "barred identities are not listed");
    assert!(doc.contains("<uri>sip:ue@10.45.0.2:5060</uri>"));
    lab.r.handle_sent(lab.now, n0[0].job, Some(StatusCode::OK));

    // Re-registration (over the SA: integrity-protected=yes, no challenge).
    let auth = format!(
        "Authorization: Digest username=\"{IMPI}\", realm=\"{DOMAIN}\", nonce=\"\", \
         uri=\"sip:{DOMAIN}\", response=\"\", integrity-protected=\"yes\"\r\n"
    );
    let cx_before = lab.cx_count;
    let m = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &auth, "");
    assert_eq!(lab.send_register(m).status(), Some(StatusCode::OK));
    assert_eq!(lab.cx_count, cx_before + 1, "only the SAR");
    let n1 = lab.take_notifies();
    assert!(body(&n1[0].request).contains("version=\"1\""));
    assert!(body(&n1[0].request).contains("event=\"refreshed\""));
    assert_eq!(header(&n1[0].request, &HeaderName::CSEQ), ["2 NOTIFY"]);

    // De-registration.
    let m = lab.register_msg("<sip:ue@10.45.0.2:5060>", 0, &auth, "");
    let ok = lab.send_register(m);
    assert_eq!(ok.status(), Some(StatusCode::OK));
    assert!(header(&ok, &HeaderName::CONTACT).is_empty());
    let n2 = lab.take_notifies();
    let doc = body(&n2[0].request);
    assert!(doc.contains("version=\"2\""));
    assert!(
        doc.contains("state=\"terminated\" event=\"unregistered\""),
        "{doc}"
    );
    assert!(doc.contains("<registration aor=") && doc.contains("state=\"terminated\">"));
    assert!(sub_state(&n2[0].request).starts_with("terminated"));
    assert_eq!(
        lab.hss.sars.last(),
        Some(&ServerAssignmentType::USER_DEREGISTRATION)
    );
    assert_eq!(lab.r.registration_count(), 0);
}

#[test]
fn subscribe_from_a_stranger_is_refused_and_for_an_unregistered_identity_not_found() {
    let mut lab = Lab::new();
    let (r, _) = lab.subscribe(IMPU, Some(IMPU), 600);
    assert_eq!(r.status(), Some(StatusCode::NOT_FOUND));
    lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    let (r, _) = lab.subscribe_via(
        "sip:mallory@evil.example",
        Some("sip:mallory@evil.example"),
        600,
        "192.0.2.66:5060",
    );
    assert_eq!(r.status(), Some(StatusCode::FORBIDDEN));
    let (r, _) = lab.subscribe(TEL, Some(TEL), 600);
    assert_eq!(
        r.status(),
        Some(StatusCode::OK),
        "an identity of the set may watch"
    );
}

#[test]
fn rtr_removes_bindings_notifies_and_answers_rta() {
    for (code, event) in [
        (ReasonCode::PERMANENT_TERMINATION, "rejected"),
        (ReasonCode::NEW_SERVER_ASSIGNED, "deactivated"),
    ] {
        let mut lab = Lab::new();
        lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
        lab.subscribe(IMPU, Some(IMPU), 600_000);
        lab.take_notifies();
        let rtr = Rtr {
            session_id: "hss;1;1".into(),
            origin_host: lab.hss.origin.host.clone(),
            origin_realm: lab.hss.origin.realm.clone(),
            destination_host: DiameterIdentity::new("scscf.ims.mnc001.mcc001.3gppnetwork.org")
                .expect("host"),
            destination_realm: Realm::new(DOMAIN).expect("realm"),
            user_name: Impi::new(IMPI).expect("impi"),
            associated_identities: None,
            supported_features: Vec::new(),
            public_identities: Vec::new(),
            deregistration_reason: DeregistrationReason {
                reason_code: code,
                reason_info: Some("operator".into()),
                extra: Vec::new(),
            },
            rtr_flags: None,
            extra: Vec::new(),
            proxy_info: Vec::new(),
            route_record: Vec::new(),
        };
        lab.r.handle_rtr(lab.now, AnswerId(7), rtr);
        lab.pump();
        assert_eq!(lab.r.registration_count(), 0);
        let (id, ans) = lab.answers.pop().expect("an RTA");
        assert_eq!(id, AnswerId(7));
        let rta = imslab_diameter::cx::Rta::decode(&ans).expect("RTA");
        assert_eq!(rta.result, CxResult::SUCCESS);
        let n = lab.take_notifies();
        let doc = body(&n[0].request);
        assert!(doc.contains(&format!("event=\"{event}\"")), "{doc}");
        assert!(sub_state(&n[0].request).contains(&format!("reason={event}")));
        assert!(lab.events.iter().any(|e| {
            e.step == "deregistered"
                && e.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("Registration-Termination"))
        }));
    }
}

fn ppr(user_data: Option<String>) -> Ppr {
    Ppr {
        session_id: "hss;1;2".into(),
        origin_host: DiameterIdentity::new("hss.ims.mnc001.mcc001.3gppnetwork.org").expect("host"),
        origin_realm: Realm::new(DOMAIN).expect("realm"),
        destination_host: DiameterIdentity::new("scscf.ims.mnc001.mcc001.3gppnetwork.org")
            .expect("host"),
        destination_realm: Realm::new(DOMAIN).expect("realm"),
        user_name: Impi::new(IMPI).expect("impi"),
        supported_features: Vec::new(),
        user_data: user_data.map(Bytes::from),
        charging_information: None,
        sip_auth_data_item: None,
        allowed_waf_wwsf_identities: None,
        extra: Vec::new(),
        proxy_info: Vec::new(),
        route_record: Vec::new(),
    }
}

#[test]
fn ppr_updates_the_profile_and_notifies_and_unknown_users_get_5001() {
    let mut lab = Lab::new();
    lab.r.handle_ppr(lab.now, AnswerId(1), ppr(None));
    lab.pump();
    let ppa = imslab_diameter::cx::Ppa::decode(&lab.answers.pop().expect("PPA").1).expect("PPA");
    assert_eq!(
        ppa.result,
        CxResult::experimental(Exp::DIAMETER_ERROR_USER_UNKNOWN)
    );

    lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    lab.subscribe(IMPU, Some(IMPU), 600_000);
    lab.take_notifies();
    let new = user_data("").replace(TEL, "tel:+15550009");
    lab.r.handle_ppr(lab.now, AnswerId(2), ppr(Some(new)));
    lab.pump();
    let ppa = imslab_diameter::cx::Ppa::decode(&lab.answers.pop().expect("PPA").1).expect("PPA");
    assert_eq!(ppa.result, CxResult::SUCCESS);
    assert!(
        lab.r
            .registration(&Impu::new("tel:+15550009").expect("tel"))
            .is_some()
    );
    let n = lab.take_notifies();
    assert!(body(&n[0].request).contains("tel:+15550009"));
}

const AS_IFC: &str = "<InitialFilterCriteria><Priority>0</Priority><TriggerPoint>\
    <ConditionTypeCNF>0</ConditionTypeCNF><SPT><ConditionNegated>0</ConditionNegated><Group>0</Group>\
    <Method>REGISTER</Method></SPT></TriggerPoint><ApplicationServer><ServerName>sip:127.0.0.1:5090</ServerName>\
    <DefaultHandling>1</DefaultHandling><ServiceInfo>vm</ServiceInfo></ApplicationServer></InitialFilterCriteria>";

#[test]
fn ifc_on_register_sends_third_party_register_and_as_failure_with_terminated_handling_deregisters()
{
    let mut lab = Lab::new();
    lab.hss.user_data = user_data(AS_IFC);
    assert_eq!(
        lab.aka_register("<sip:ue@10.45.0.2:5060>", 600).status(),
        Some(StatusCode::OK)
    );
    let tp: Vec<&Sent> = lab
        .sent
        .iter()
        .filter(|s| s.request.method() == Some(&imslab_sip::Method::Register))
        .collect();
    assert_eq!(tp.len(), 1);
    let reg = &tp[0].request;
    assert_eq!(reg.request_uri_str(), Some("sip:127.0.0.1:5090"));
    assert_eq!(tp[0].next_hop, "sip:127.0.0.1:5090");
    assert_eq!(header(reg, &HeaderName::TO), [format!("<{IMPU}>")]);
    assert_eq!(header(reg, &HeaderName::EXPIRES), ["600"]);
    assert!(body(reg).contains("<service-info>vm</service-info>"));
    let job = tp[0].job;
    lab.r
        .handle_sent(lab.now, job, Some(StatusCode::SERVICE_UNAVAILABLE));
    lab.pump();
    assert_eq!(
        lab.r.registration_count(),
        0,
        "SESSION_TERMINATED de-registers"
    );
    assert_eq!(
        lab.hss.sars.last(),
        Some(&ServerAssignmentType::ADMINISTRATIVE_DEREGISTRATION)
    );
}

#[test]
fn md5_digest_subscriber_registers_with_a_plain_digest_client() {
    let mut lab = Lab::new();
    lab.hss.digest = true;
    let first = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, "", "");
    let ch = Lab::challenge_of(&lab.send_register(first));
    assert_eq!(ch.get("algorithm"), Some("MD5"));
    assert!(ch.ck().is_none(), "no AKA keys for SIP Digest");
    let nonce = ch.nonce().expect("nonce").to_owned();
    let ha1 = Ha1::new(IMPI, DOMAIN, b"secret");
    let auth = lab
        .answer_auth(&nonce, &ha1)
        .replace("algorithm=AKAv1-MD5", "algorithm=MD5");
    let msg = lab_msg(&mut lab, &auth);
    let ok = lab.send_register(msg);
    assert_eq!(ok.status(), Some(StatusCode::OK));
}

#[test]
fn unknown_scheme_refused_by_the_hss_falls_back_to_the_default_scheme() {
    let mut lab = Lab::new();
    let no_alg = format!(
        "Authorization: Digest username=\"{IMPI}\", realm=\"{DOMAIN}\", nonce=\"\", \
         uri=\"sip:{DOMAIN}\", response=\"\"\r\n"
    );
    let m = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &no_alg, "");
    let ch = Lab::challenge_of(&lab.send_register(m));
    assert_eq!(ch.get("algorithm"), Some("AKAv1-MD5"));
    assert_eq!(lab.cx_count, 2, "MAR Unknown, then MAR Digest-AKAv1-MD5");
}

#[test]
fn hss_errors_and_silence_map_to_sip_answers() {
    let mut lab = Lab::new();
    lab.hold_cx = true;
    let m = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &Lab::initial_auth(), "");
    let req = lab.req_id();
    lab.r.handle_register(lab.now, req, m, None);
    lab.pump();
    let (task, out) = lab.held.pop().expect("a MAR");
    let CxOut::Mar(mar) = out else {
        panic!("MAR expected")
    };
    let unknown = Maa::new(
        &mar,
        &lab.hss.origin,
        CxResult::experimental(Exp::DIAMETER_ERROR_USER_UNKNOWN),
    );
    lab.r
        .handle_cx_answer(lab.now, task, CxReply::Maa(Box::new(unknown)));
    lab.pump();
    assert_eq!(lab.response_to(req).status(), Some(StatusCode::FORBIDDEN));
    assert!(lab.events.iter().any(|e| e.step == "mar"
        && e.outcome == Outcome::Failed
        && e.reason.as_deref().is_some_and(|r| r.contains("5001"))));

    let m = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &Lab::initial_auth(), "");
    let req = lab.req_id();
    lab.r.handle_register(lab.now, req, m, None);
    lab.pump();
    let (task, _) = lab.held.pop().expect("a MAR");
    lab.r
        .handle_cx_answer(lab.now, task, CxReply::Failed("timeout".into()));
    lab.pump();
    assert_eq!(
        lab.response_to(req).status(),
        Some(StatusCode::SERVER_TIMEOUT)
    );
}

#[test]
fn restart_restores_registrations_bindings_and_subscriptions_from_the_store() {
    let mut lab = Lab::new();
    lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    lab.subscribe(IMPU, Some(IMPU), 600_000);
    // Replay what the core persisted into a map, as the store would hold it.
    let mut regs = std::collections::BTreeMap::new();
    let mut binds = std::collections::BTreeMap::new();
    let mut subs = std::collections::BTreeMap::new();
    for p in &lab.persisted {
        match p {
            Persist::PutRegistration(r) => {
                regs.insert(r.impu.to_string(), r.clone());
            }
            Persist::DeleteRegistration(i) => {
                regs.remove(i.as_str());
            }
            Persist::PutBinding(b) => {
                binds.insert((b.impu.to_string(), b.key()), b.clone());
            }
            Persist::RemoveBinding { impu, key } => {
                binds.remove(&(impu.to_string(), key.clone()));
            }
            Persist::PutSubscription(s) => {
                subs.insert((s.call_id.clone(), s.local_tag.clone()), s.clone());
            }
            Persist::RemoveSubscription { call_id, local_tag } => {
                subs.remove(&(call_id.clone(), local_tag.clone()));
            }
        }
    }
    assert!(subs.values().all(|s| s.role == SubscriptionRole::Notifier));
    let mut restarted = Lab::with(Registrar::new(settings(), counter_rand(), 2));
    restarted.now = lab.now.after(Duration::from_secs(100));
    restarted.r.restore(
        restarted.now,
        regs.into_values().collect(),
        binds.into_values().collect(),
        subs.into_values().collect(),
    );
    let reg = restarted
        .r
        .registration(&Impu::new(IMPU).expect("impu"))
        .expect("still registered after the restart");
    assert_eq!(reg.bindings.len(), 1);
    assert_eq!(reg.implicit_set.len(), 3);
    assert_eq!(restarted.r.subscription_count(), 1);
    restarted.advance(Duration::from_secs(499));
    assert_eq!(restarted.r.registration_count(), 1);
    restarted.advance(Duration::from_secs(2));
    assert_eq!(
        restarted.r.registration_count(),
        0,
        "expires on the original schedule"
    );
    let n = restarted.take_notifies();
    assert!(body(&n[0].request).contains("event=\"expired\""));
}

#[test]
fn request_for_a_registered_identity_goes_to_its_contact_along_the_path() {
    let mut lab = Lab::new();
    lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    let text = format!(
        "INVITE {TEL} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:4060;branch=z9hG4bKinv\r\n\
         Max-Forwards: 69\r\nFrom: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{TEL}>\r\n\
         Call-ID: call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@10.0.0.9>\r\nContent-Length: 0\r\n\r\n"
    );
    let req = lab.req_id();
    lab.r.handle_request(
        lab.now,
        req,
        Message::parse(text.into_bytes()).expect("parses"),
        false,
    );
    lab.pump();
    let (_, d) = lab.responses.pop().expect("decided");
    let Decision::Forward {
        request,
        targets,
        record_route,
        ..
    } = d
    else {
        panic!("expected a forward");
    };
    assert_eq!(targets.len(), 1);
    assert_eq!(
        targets[0].uri.as_deref(),
        Some(&b"sip:ue@10.45.0.2:5060"[..])
    );
    assert_eq!(header(&request, &HeaderName::ROUTE), [PATH]);
    assert!(record_route.is_some());

    let text = format!(
        "MESSAGE sip:nobody@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:4060;branch=z9hG4bKmsg\r\n\
         Max-Forwards: 69\r\nFrom: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <sip:nobody@{DOMAIN}>\r\n\
         Call-ID: msg-1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    );
    let req = lab.req_id();
    lab.r.handle_request(
        lab.now,
        req,
        Message::parse(text.into_bytes()).expect("parses"),
        false,
    );
    lab.pump();
    assert_eq!(lab.response_to(req).status(), Some(StatusCode::NOT_FOUND));
}

#[test]
fn wildcard_deregistration_removes_every_contact() {
    let mut lab = Lab::new();
    lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    let nonce = lab.last_nonce.clone().expect("nonce");
    let m = Milenage::new(&k(), &opc());
    let n = imslab_aka::Nonce::parse(&nonce).expect("nonce");
    let f = m.f2345(&n.rand);
    let ha1 = Ha1::aka(
        DigestAlgorithm::AkaV1Md5,
        IMPI,
        DOMAIN,
        &f.res,
        &f.ik,
        &f.ck,
    )
    .expect("ha1");
    let auth = lab.answer_auth(&nonce, &ha1);
    let m = lab.register_msg("*", 0, &auth, "");
    let ok = lab.send_register(m);
    assert_eq!(ok.status(), Some(StatusCode::OK));
    assert_eq!(lab.r.registration_count(), 0);
    assert_eq!(
        lab.hss.sars.last(),
        Some(&ServerAssignmentType::USER_DEREGISTRATION)
    );
}

#[test]
fn timeout_deregistration_sends_a_third_party_deregister_to_the_as() {
    let mut lab = Lab::new();
    lab.hss.user_data = user_data(AS_IFC);
    lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    for s in std::mem::take(&mut lab.sent) {
        lab.r.handle_sent(lab.now, s.job, Some(StatusCode::OK));
    }
    lab.pump();
    lab.advance(Duration::from_secs(601));
    let tp: Vec<&Sent> = lab
        .sent
        .iter()
        .filter(|s| s.request.method() == Some(&imslab_sip::Method::Register))
        .collect();
    assert_eq!(tp.len(), 1);
    assert_eq!(header(&tp[0].request, &HeaderName::EXPIRES), ["0"]);
}

#[test]
fn options_to_the_scscf_itself_is_answered_200() {
    let mut lab = Lab::new();
    let text = "OPTIONS sip:scscf.ims.mnc001.mcc001.3gppnetwork.org:6060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKopt\r\nMax-Forwards: 70\r\n\
        From: <sip:pcscf@127.0.0.1>;tag=o\r\nTo: <sip:scscf.ims.mnc001.mcc001.3gppnetwork.org:6060>\r\n\
        Call-ID: opt-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let req = lab.req_id();
    lab.r.handle_request(
        lab.now,
        req,
        Message::parse(text.as_bytes().to_vec()).expect("parses"),
        false,
    );
    lab.pump();
    let r = lab.response_to(req);
    assert_eq!(r.status(), Some(StatusCode::OK));
    assert!(!header(&r, &HeaderName::ALLOW).is_empty());
}

#[test]
fn re_registration_with_the_same_profile_writes_the_binding_but_not_the_registration_again() {
    let mut lab = Lab::new();
    lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    let puts = |lab: &Lab| {
        lab.persisted
            .iter()
            .filter(|p| matches!(p, Persist::PutRegistration(_)))
            .count()
    };
    let bindings = |lab: &Lab| {
        lab.persisted
            .iter()
            .filter(|p| matches!(p, Persist::PutBinding(_)))
            .count()
    };
    let (regs_before, bindings_before) = (puts(&lab), bindings(&lab));
    assert_eq!(regs_before, 1);
    // A full AKA re-registration: the SAR answers the same profile.
    let ok = lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    assert_eq!(ok.status(), Some(StatusCode::OK));
    assert!(lab.hss.sars.len() >= 2, "{:?}", lab.hss.sars);
    assert_eq!(
        puts(&lab),
        regs_before,
        "unchanged registration not rewritten"
    );
    assert_eq!(
        bindings(&lab),
        bindings_before + 1,
        "the refreshed binding is"
    );
}

#[test]
fn refresh_moves_the_expiry_and_the_old_timer_does_nothing() {
    let mut lab = Lab::new();
    lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    lab.advance(Duration::from_secs(300));
    let auth = lab.reuse_answer();
    let m = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &auth, "");
    assert_eq!(lab.send_register(m).status(), Some(StatusCode::OK));
    lab.advance(Duration::from_secs(301));
    assert_eq!(
        lab.r.registration_count(),
        1,
        "the refresh counts from 300 s"
    );
    lab.advance(Duration::from_secs(300));
    assert_eq!(lab.r.registration_count(), 0);
}

mod session;

fn lab_with_nonce_lifetime(secs: u64) -> Lab {
    let mut s = settings();
    s.challenge_lifetime = Duration::from_secs(secs);
    Lab::with(Registrar::new(s, counter_rand(), 1))
}

fn www_authenticate(resp: &Message) -> String {
    resp.header_str(&HeaderName::WWW_AUTHENTICATE)
        .expect("WWW-Authenticate")
        .expect("utf-8")
        .to_owned()
}

#[test]
fn refresh_with_a_nonce_past_its_lifetime_gets_a_stale_401_then_registers_again() {
    let mut lab = lab_with_nonce_lifetime(60);
    let ok = lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    assert_eq!(ok.status(), Some(StatusCode::OK));
    let old = lab.last_nonce.clone().expect("nonce");
    lab.advance(Duration::from_secs(61));
    let auth = lab.reuse_answer();
    let m = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &auth, "");
    let r401 = lab.send_register(m);
    let ch = Lab::challenge_of(&r401);
    assert_ne!(ch.nonce(), Some(old.as_str()), "a fresh nonce");
    assert!(
        www_authenticate(&r401).contains("stale=TRUE"),
        "{}",
        www_authenticate(&r401)
    );
    assert_eq!(lab.r.registration_count(), 1, "the binding stays meanwhile");
    let again = lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    assert_eq!(again.status(), Some(StatusCode::OK));
}

#[test]
fn refresh_within_the_nonce_lifetime_reuses_the_nonce_without_a_401() {
    let mut lab = lab_with_nonce_lifetime(60);
    lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    lab.advance(Duration::from_secs(59));
    let auth = lab.reuse_answer();
    let m = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &auth, "");
    assert_eq!(lab.send_register(m).status(), Some(StatusCode::OK));
}

#[test]
fn wrong_answer_to_an_expired_aka_nonce_gets_a_401_without_stale() {
    let mut lab = lab_with_nonce_lifetime(60);
    lab.aka_register("<sip:ue@10.45.0.2:5060>", 600);
    let nonce = lab.last_nonce.clone().expect("nonce");
    lab.advance(Duration::from_secs(61));
    let wrong = Ha1::new(IMPI, DOMAIN, b"not the RES");
    let auth = lab.answer_auth(&nonce, &wrong);
    let m = lab.register_msg("<sip:ue@10.45.0.2:5060>", 600, &auth, "");
    let r401 = lab.send_register(m);
    Lab::challenge_of(&r401);
    assert!(
        !www_authenticate(&r401).contains("stale"),
        "{}",
        www_authenticate(&r401)
    );
}

#[test]
fn nonce_lifetime_defaults_to_five_minutes_capped_by_reg_expires_max() {
    assert_eq!(settings().challenge_lifetime, NONCE_LIFETIME);
    let cfg = imslab_config::ScscfConfig {
        reg_expires_min: 60,
        reg_expires_max: 120,
        reg_expires_default: 120,
        ..Default::default()
    };
    let s = Settings::from_config(
        &cfg,
        &Realm::new(DOMAIN).expect("realm"),
        "hss.ims.mnc001.mcc001.3gppnetwork.org",
    )
    .expect("settings");
    assert_eq!(s.challenge_lifetime, Duration::from_secs(120));
}

#[test]
fn nonce_lifetime_comes_from_scscf_nonce_lifetime() {
    let cfg = imslab_config::ScscfConfig {
        nonce_lifetime: 30,
        ..Default::default()
    };
    let s = Settings::from_config(
        &cfg,
        &Realm::new(DOMAIN).expect("realm"),
        "hss.ims.mnc001.mcc001.3gppnetwork.org",
    )
    .expect("settings");
    assert_eq!(s.challenge_lifetime, Duration::from_secs(30));
}

/// A terminating MESSAGE to the test identity and the registrar's decision.
fn terminating_message(lab: &mut Lab) -> Decision {
    let text = format!(
        "MESSAGE {IMPU} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:4060;branch=z9hG4bKmsg{n}\r\n\
         Max-Forwards: 69\r\nFrom: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{IMPU}>\r\n\
         Call-ID: msg-{n}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
        n = lab.cseq
    );
    let req = lab.req_id();
    lab.r.handle_request(
        lab.now,
        req,
        Message::parse(text.into_bytes()).expect("parses"),
        false,
    );
    lab.pump();
    let i = lab
        .responses
        .iter()
        .position(|(r, _)| *r == req)
        .expect("decided");
    lab.responses.remove(i).1
}

fn forked(d: Decision) -> (Vec<String>, Vec<String>) {
    let Decision::Forward {
        request, targets, ..
    } = d
    else {
        panic!("expected a forward, got {d:?}");
    };
    let uris = targets
        .iter()
        .map(|t| String::from_utf8_lossy(t.uri.as_deref().unwrap_or_default()).into_owned())
        .collect();
    (uris, header(&request, &HeaderName::ROUTE))
}

#[test]
fn terminating_request_goes_to_the_newest_binding_not_a_longer_lived_stale_one() {
    let mut lab = Lab::new();
    let stale = "<sip:ue@10.45.0.2:5060>";
    let fresh = "<sip:ue@10.45.0.7:5062>";
    // A binding left over with a long expiry, then the phone back behind another Path.
    lab.aka_register(stale, 3600);
    lab.advance(Duration::from_secs(5));
    let auth = lab.reuse_answer();
    let other_path = "Path: <sip:flow7@127.0.0.1:5060;lr>\r\n";
    let m = lab.register_msg(fresh, 600, &auth, other_path);
    assert_eq!(lab.send_register(m).status(), Some(StatusCode::OK));
    let reg = lab
        .r
        .registration(&Impu::new(IMPU).expect("impu"))
        .expect("registered");
    assert_eq!(reg.bindings.len(), 2, "both bindings are kept");

    let (uris, routes) = forked(terminating_message(&mut lab));
    assert_eq!(uris, ["sip:ue@10.45.0.7:5062"]);
    assert_eq!(
        routes,
        [PATH.to_owned(), "<sip:flow7@127.0.0.1:5060;lr>".to_owned()],
        "the newest binding's Path is the Route"
    );
}

#[test]
fn terminating_request_forks_to_every_instance_but_one_flow_per_instance() {
    let mut lab = Lab::new();
    let phone = "\"<urn:gsma:imei:35876505-133788-0>\"";
    let tablet = "\"<urn:gsma:imei:35876505-133789-0>\"";
    lab.aka_register(
        &format!("<sip:ue@10.45.0.2:5060>;+sip.instance={phone};reg-id=1"),
        3600,
    );
    for (contact, instance) in [
        ("<sip:ue@10.45.0.3:5060>", tablet),
        ("<sip:ue@10.45.0.4:5070>", phone),
    ] {
        lab.advance(Duration::from_secs(2));
        let auth = lab.reuse_answer();
        let c = format!("{contact};+sip.instance={instance};reg-id=2");
        let m = lab.register_msg(&c, 600, &auth, "");
        assert_eq!(lab.send_register(m).status(), Some(StatusCode::OK));
    }
    let reg = lab
        .r
        .registration(&Impu::new(IMPU).expect("impu"))
        .expect("registered");
    assert_eq!(reg.bindings.len(), 3);

    let (mut uris, routes) = forked(terminating_message(&mut lab));
    uris.sort();
    assert_eq!(
        uris,
        ["sip:ue@10.45.0.3:5060", "sip:ue@10.45.0.4:5070"],
        "the tablet and the phone's newer flow, not its older one"
    );
    assert_eq!(routes, [PATH]);
}
