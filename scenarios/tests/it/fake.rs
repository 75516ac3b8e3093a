//! A scripted P-CSCF + S-CSCF + HSS in one pure struct: enough of TS 24.229 and TS 33.203 to
//! register a UE with IMS AKA (or MD5) and IPsec, answer SUBSCRIBE with a reginfo NOTIFY,
//! accept MESSAGE and OPTIONS, and terminate the registration by NOTIFY. It checks what the UE
//! sends (Security-Verify, digest response) and records what it saw.

use std::net::SocketAddr;

use imslab_aka::milenage::Milenage;
use imslab_aka::{
    DigestAlgorithm, DigestRequest, Ha1, NonceCount, Qop, QopParams, digest, generate_vector,
    verify_auts,
};
use imslab_ipsec::header::{parse_value, print_list};
use imslab_ipsec::negotiate::{
    Advertise, LocalParams, Preference, ProtectedPorts, choose, security_server,
};
use imslab_ipsec::{CipherSuite, Endpoint, EspKeys, SaBundle, Spi};
use imslab_sip::header::Auth;
use imslab_sip::{HeaderName, Message, StatusCode};
use imslab_types::{Amf, K, Opc, Rand, Sqn};

pub(crate) const K_HEX: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
pub(crate) const OPC_HEX: &str = "cd63cb71954a9f4e48a5994e37a02baf";
pub(crate) const DOMAIN: &str = "ims.mnc001.mcc001.3gppnetwork.org";
pub(crate) const IMSI: &str = "001010000000001";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    AkaV1,
    AkaV2,
    Md5,
}

/// What the network sends.
#[derive(Debug)]
pub(crate) enum NetOut {
    /// A response, back the way the request came.
    Respond(Message),
    /// A request to the UE: over the SAs (P-CSCF port-c → UE port-s) when they exist.
    Request(Message),
    /// SAs the P-CSCF installs (its view).
    Install(SaBundle),
}

struct Pending {
    nonce: String,
    ha1: Ha1,
    rand: Rand,
    bundle: Option<SaBundle>,
    security_server: Option<String>,
}

pub(crate) struct FakeNet {
    pub(crate) pcscf: SocketAddr,
    pub(crate) ports: ProtectedPorts,
    pub(crate) scheme: Scheme,
    pub(crate) password: String,
    pub(crate) sqn: u64,
    pub(crate) ipsec: bool,
    pub(crate) barred: Vec<String>,
    pub(crate) suites: Vec<CipherSuite>,
    m: Milenage,
    pending: Option<Pending>,
    pub(crate) sa: Option<SaBundle>,
    pub(crate) security_server: Option<String>,
    pub(crate) contact: Option<String>,
    pub(crate) registered: bool,
    pub(crate) resyncs: u32,
    pub(crate) mac_failures: u32,
    pub(crate) seen: Vec<String>,
    counter: u32,
    sub: Option<(String, String, String)>,
    notify_version: u32,
}

fn hdr(m: &Message, n: &HeaderName) -> String {
    m.fields_named(n)
        .map(|f| String::from_utf8_lossy(f.value()).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FakeNet {
    pub(crate) fn new(pcscf: SocketAddr) -> Self {
        let k = K::from_hex(K_HEX).unwrap();
        let opc = Opc::from_hex(OPC_HEX).unwrap();
        Self {
            pcscf,
            ports: ProtectedPorts {
                port_c: 46100,
                port_s: 46200,
            },
            scheme: Scheme::AkaV1,
            password: "secret".into(),
            sqn: 32,
            ipsec: true,
            barred: Vec::new(),
            suites: CipherSuite::all().collect(),
            m: Milenage::new(&k, &opc),
            pending: None,
            sa: None,
            security_server: None,
            contact: None,
            registered: false,
            resyncs: 0,
            mac_failures: 0,
            seen: Vec::new(),
            counter: 0,
            sub: None,
            notify_version: 0,
        }
    }

    fn respond(&self, req: &Message, code: u16, extra: &[(&str, String)]) -> Message {
        let mut r = req
            .response(StatusCode::new(code).unwrap(), Some("net1"))
            .unwrap();
        for (n, v) in extra {
            r.push_header(HeaderName::new(n.to_string()).unwrap(), v.clone())
                .unwrap();
        }
        r
    }

    /// The UE's protected server address, once SAs exist.
    pub(crate) fn ue_server(&self) -> Option<SocketAddr> {
        self.sa
            .as_ref()
            .map(|b| SocketAddr::new(b.remote.ip, b.remote.port_s))
    }

    pub(crate) fn handle(
        &mut self,
        req: &Message,
        from: SocketAddr,
        protected: bool,
    ) -> Vec<NetOut> {
        let method = req
            .method()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        self.seen.push(format!(
            "{method}{}",
            if protected { " (protected)" } else { "" }
        ));
        match method.as_str() {
            "REGISTER" => self.register(req, from, protected),
            "SUBSCRIBE" => {
                let call_id = req.call_id().unwrap().as_str().to_owned();
                let from_hdr = hdr(req, &HeaderName::FROM);
                let contact = req
                    .contacts()
                    .flatten()
                    .find_map(|c| c.addr().map(|a| a.uri.to_string()))
                    .unwrap_or_default();
                self.sub = Some((call_id, from_hdr, contact));
                let ok = self.respond(req, 200, &[("Expires", "600000".into())]);
                vec![
                    NetOut::Respond(ok),
                    NetOut::Request(self.notify("active", "registered")),
                ]
            }
            "MESSAGE" | "OPTIONS" => vec![NetOut::Respond(self.respond(req, 200, &[]))],
            "ACK" => Vec::new(),
            _ => vec![NetOut::Respond(self.respond(req, 200, &[]))],
        }
    }

    /// A reg-event NOTIFY for the subscription: `state` of our contact and its `event`.
    pub(crate) fn notify(&mut self, state: &str, event: &str) -> Message {
        let (call_id, from, contact) = self.sub.clone().expect("subscribed");
        let impu = format!("sip:{IMSI}@{DOMAIN}");
        let reg_state = if state == "terminated" {
            "terminated"
        } else {
            "active"
        };
        let body = format!(
            "<?xml version=\"1.0\"?>\r\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" \
             version=\"{}\" state=\"full\">\r\n<registration aor=\"{impu}\" id=\"a1\" \
             state=\"{reg_state}\">\r\n<contact id=\"c1\" state=\"{state}\" event=\"{event}\">\
             \r\n<uri>{}</uri>\r\n</contact>\r\n</registration>\r\n</reginfo>\r\n",
            self.notify_version,
            self.contact.clone().unwrap_or_default()
        );
        self.notify_version += 1;
        self.counter += 1;
        let sub_state = if state == "terminated" {
            "terminated;reason=deactivated"
        } else {
            "active;expires=600000"
        };
        let via_port = if self.sa.is_some() {
            self.ports.port_c
        } else {
            self.pcscf.port()
        };
        let text = format!(
            "NOTIFY {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {}:{via_port};branch=z9hG4bKnotify{}\r\n\
             Max-Forwards: 70\r\nFrom: <{impu}>;tag=net1\r\nTo: {from}\r\nCall-ID: {call_id}\r\n\
             CSeq: {} NOTIFY\r\nContact: <sip:scscf.{DOMAIN}>\r\nEvent: reg\r\n\
             Subscription-State: {sub_state}\r\nContent-Type: application/reginfo+xml\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.pcscf.ip(),
            self.counter,
            self.counter,
            body.len()
        );
        Message::parse(text.into_bytes()).unwrap()
    }

    fn challenge(&mut self, req: &Message, from: SocketAddr) -> Vec<NetOut> {
        let impi = format!("{IMSI}@{DOMAIN}");
        let mut rand = [0u8; 16];
        rand[0] = self.counter as u8 + 1;
        self.counter += 1;
        let rand = Rand(rand);
        let (nonce, ha1, alg, ck_ik) = match self.scheme {
            Scheme::Md5 => (
                format!("md5nonce{}", self.counter),
                Ha1::new(&impi, DOMAIN, self.password.as_bytes()),
                DigestAlgorithm::Md5,
                None,
            ),
            s => {
                self.sqn += 32;
                let v = generate_vector(&self.m, rand, Sqn::new(self.sqn).unwrap(), Amf([0x80, 0]));
                let alg = if s == Scheme::AkaV2 {
                    DigestAlgorithm::AkaV2Md5
                } else {
                    DigestAlgorithm::AkaV1Md5
                };
                let ha1 = Ha1::for_vector(alg, &impi, DOMAIN, &v).unwrap();
                (v.nonce(), ha1, alg, Some((v.ck.clone(), v.ik.clone())))
            }
        };
        let mut extra = Vec::new();
        let mut www = format!(
            "Digest realm=\"{DOMAIN}\", nonce=\"{nonce}\", algorithm={}",
            alg.as_str()
        );
        if alg == DigestAlgorithm::Md5 {
            www.push_str(", qop=\"auth\"");
        }
        extra.push(("WWW-Authenticate", www));
        let (mut bundle, mut server) = (None, None);
        if self.ipsec
            && let Some((ck, ik)) = ck_ik
        {
            let client: Vec<_> = req
                .values(&HeaderName::SECURITY_CLIENT)
                .flat_map(|v| parse_value(std::str::from_utf8(v).unwrap()).unwrap())
                .collect();
            let pref = Preference::new(self.suites.clone());
            let chosen = choose(&client, &pref).expect("an acceptable offer");
            let local = LocalParams {
                spi_c: Spi(0x5000 + self.counter * 2),
                spi_s: Spi(0x5001 + self.counter * 2),
                ports: self.ports,
            };
            let ss = print_list(&security_server(
                &chosen,
                &local,
                &client,
                &pref,
                Advertise::ChosenOnly,
            ));
            let keys = EspKeys::derive(chosen.suite(), &ik, &ck);
            bundle = Some(SaBundle::new(
                Endpoint::local(self.pcscf.ip(), &local),
                Endpoint::from_offer(from.ip(), &chosen),
                keys,
            ));
            extra.push(("Security-Server", ss.clone()));
            server = Some(ss);
        }
        self.pending = Some(Pending {
            nonce,
            ha1,
            rand,
            bundle: bundle.clone(),
            security_server: server,
        });
        let mut out = vec![NetOut::Respond(self.respond(req, 401, &extra))];
        if let Some(b) = bundle {
            out.push(NetOut::Install(b));
        }
        out
    }

    fn register(&mut self, req: &Message, from: SocketAddr, protected: bool) -> Vec<NetOut> {
        let impu = req.to_header().unwrap().uri.to_string();
        if self.barred.contains(&impu) {
            return vec![NetOut::Respond(self.respond(req, 403, &[]))];
        }
        let expires = req.expires().unwrap().unwrap_or(3600);
        if protected && self.registered && self.pending.is_none() {
            // Re-registration or de-registration over the SAs: no new challenge.
            return vec![NetOut::Respond(self.ok(req, expires))];
        }
        let auth: Auth<'_> = req.required(&HeaderName::AUTHORIZATION).unwrap();
        let Some(p) = self.pending.take() else {
            return self.challenge(req, from);
        };
        if auth.nonce() != Some(p.nonce.as_str()) {
            return self.challenge(req, from);
        }
        if let Some(auts) = auth.auts() {
            let auts = imslab_aka::Auts::from_base64(auts).unwrap();
            let sqn_ms = verify_auts(&self.m, &p.rand, &auts).expect("AUTS MAC verifies");
            self.sqn = sqn_ms.value();
            self.resyncs += 1;
            return self.challenge(req, from);
        }
        if auth.response() == Some("") {
            self.mac_failures += 1;
            return vec![NetOut::Respond(self.respond(req, 403, &[]))];
        }
        if let Some(ss) = &p.security_server {
            assert!(
                protected,
                "the answer to an IPsec challenge must come over the SAs"
            );
            let verify = hdr(req, &HeaderName::SECURITY_VERIFY);
            assert_eq!(&verify, ss, "Security-Verify must repeat Security-Server");
        }
        let qop = auth.qop().map(|q| QopParams {
            qop: q.parse::<Qop>().unwrap(),
            nc: NonceCount::new(auth.nc().unwrap().unwrap_or(1)),
            cnonce: auth.cnonce().unwrap_or_default(),
        });
        let dreq = DigestRequest {
            nonce: &p.nonce,
            method: "REGISTER",
            uri: auth.uri().unwrap(),
            qop,
            body: b"",
        };
        if digest::verify(&p.ha1, &dreq, auth.response().unwrap_or_default()).is_err() {
            return vec![NetOut::Respond(self.respond(req, 403, &[]))];
        }
        if let Some(b) = p.bundle {
            self.sa = Some(b);
            self.security_server = p.security_server;
        }
        vec![NetOut::Respond(self.ok(req, expires))]
    }

    fn ok(&mut self, req: &Message, expires: u32) -> Message {
        let contact = req
            .contacts()
            .flatten()
            .find_map(|c| c.addr().map(|a| a.uri.to_string()))
            .unwrap_or_default();
        self.contact = Some(contact.clone());
        self.registered = expires > 0;
        self.respond(
            req,
            200,
            &[
                ("Contact", format!("<{contact}>;expires={expires}")),
                (
                    "Service-Route",
                    format!("<sip:orig@scscf.{DOMAIN}:6060;lr>"),
                ),
                (
                    "P-Associated-URI",
                    format!("<sip:{IMSI}@{DOMAIN}>, <tel:+491701234567>"),
                ),
            ],
        )
    }
}
