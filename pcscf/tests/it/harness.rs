//! A lab on loopback: the P-CSCF server, a scripted I-CSCF/S-CSCF (an AKA registrar and
//! reg-event notifier) and scripted phones with a USIM and userspace ESP.
//!
//! Each lab uses its own pair of loopback addresses (127.77.N.1 for the network, 127.77.N.2
//! for phones), so raw ESP sockets of labs running in parallel never see each other's packets.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use imslab_aka::{
    DigestAlgorithm, DigestRequest, Ha1, Milenage, NonceCount, Qop, QopParams, Usim, digest,
    generate_vector,
};
use imslab_config::{Config, IpsecMode};
use imslab_ipsec::socket::{EspSocket, Incoming};
use imslab_ipsec::{CipherSuite, Endpoint, EspKeys, SaBundle, Spi};
use imslab_pcscf::{Deps, Server, Status, StatusHandle};
use imslab_sip::header::Auth;
use imslab_sip::{HeaderName, Message, Method, StatusCode};
use imslab_store::{Store, StoreOptions};
use imslab_types::{Amf, K, Opc, Rand, Sqn, UeEvent, UeEventSink};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) const DOMAIN: &str = "ims.mnc001.mcc001.3gppnetwork.org";
pub(crate) const K_HEX: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
pub(crate) const OPC_HEX: &str = "cd63cb71954a9f4e48a5994e37a02baf";
const WAIT: Duration = Duration::from_secs(5);

static NEXT_NET: AtomicU8 = AtomicU8::new(1);
static LOCK: std::sync::LazyLock<tokio::sync::RwLock<()>> =
    std::sync::LazyLock::new(|| tokio::sync::RwLock::new(()));

/// Labs may run in parallel (each on its own addresses)...
pub(crate) async fn lab_lock() -> tokio::sync::RwLockReadGuard<'static, ()> {
    LOCK.read().await
}

/// ...except the leak test, which counts the process's file descriptors.
pub(crate) async fn lab_lock_exclusive() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    LOCK.write().await
}

/// Collects the per-UE events.
#[derive(Default)]
pub(crate) struct Collector(Mutex<Vec<UeEvent>>);

impl UeEventSink for Collector {
    fn emit(&self, event: UeEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collector {
    pub(crate) fn steps(&self) -> Vec<(String, String, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e.step.to_owned(),
                    format!("{:?}", e.outcome),
                    e.reason.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    pub(crate) fn has(&self, step: &str, outcome: &str, reason_part: &str) -> bool {
        self.steps()
            .iter()
            .any(|(s, o, r)| s == step && o == outcome && r.contains(reason_part))
    }
}

/// What the scripted core saw.
#[derive(Default)]
pub(crate) struct CoreLog {
    pub(crate) registers: Vec<Message>,
    pub(crate) requests: Vec<Message>,
    pub(crate) subscribes: Vec<Message>,
    pub(crate) notify_answers: Vec<Message>,
}

pub(crate) struct Lab {
    pub(crate) net: u8,
    pub(crate) pcscf: SocketAddr,
    pub(crate) ws: Option<SocketAddr>,
    pub(crate) pcscf_ip: IpAddr,
    pub(crate) core_addr: SocketAddr,
    pub(crate) core_log: Arc<Mutex<CoreLog>>,
    core_cmd: mpsc::UnboundedSender<(Message, SocketAddr)>,
    pub(crate) status: StatusHandle,
    pub(crate) events: Arc<Collector>,
    pub(crate) store: Store,
    pub(crate) owner: String,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) cfg: Config,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), imslab_pcscf::Error>>>,
}

pub(crate) fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 77, net, host))
}

impl Lab {
    pub(crate) async fn start(mode: IpsecMode) -> Self {
        Self::start_with(mode, |_| {}).await
    }

    pub(crate) async fn start_with(mode: IpsecMode, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::try_start_with(mode, tweak).await.unwrap()
    }

    pub(crate) async fn try_start(mode: IpsecMode) -> Result<Self, imslab_pcscf::Error> {
        Self::try_start_with(mode, |_| {}).await
    }

    pub(crate) async fn try_start_with(
        mode: IpsecMode,
        tweak: impl FnOnce(&mut Config),
    ) -> Result<Self, imslab_pcscf::Error> {
        let mut lab = Self::unlaunched(mode).await;
        tweak(&mut lab.cfg);
        lab.launch().await?;
        Ok(lab)
    }

    /// A lab whose P-CSCF is not started yet: provision, start other functions, edit `cfg`,
    /// then [`Lab::launch`].
    pub(crate) async fn unlaunched(mode: IpsecMode) -> Self {
        let net = NEXT_NET.fetch_add(1, Ordering::Relaxed);
        let pcscf_ip = ip(net, 1);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::sqlite_file(&dir.path().join("store.db")))
            .await
            .unwrap();
        let core_sock = UdpSocket::bind(SocketAddr::new(pcscf_ip, 0)).await.unwrap();
        let core_addr = core_sock.local_addr().unwrap();
        let core_log = Arc::new(Mutex::new(CoreLog::default()));
        let (core_cmd, cmd_rx) = mpsc::unbounded_channel();
        tokio::spawn(fake_core(core_sock, Arc::clone(&core_log), cmd_rx));
        let mut cfg = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        cfg.pcscf.listen = SocketAddr::new(pcscf_ip, 0);
        cfg.pcscf.icscf = core_addr;
        cfg.pcscf.ipsec.mode = mode;
        Self {
            net,
            pcscf: cfg.pcscf.listen,
            ws: None,
            pcscf_ip,
            core_addr,
            core_log,
            core_cmd,
            status: StatusHandle::default(),
            events: Arc::new(Collector::default()),
            store,
            owner: String::new(),
            dir,
            cfg,
            shutdown: CancellationToken::new(),
            task: None,
        }
    }

    pub(crate) async fn launch(&mut self) -> Result<(), imslab_pcscf::Error> {
        let server = Server::bind(
            &self.cfg,
            Deps {
                store: self.store.clone(),
                events: self.events.clone(),
                data_dir: self.dir.path().to_owned(),
            },
        )
        .await?;
        self.pcscf = server.local_addrs()[0].1;
        self.ws = server
            .local_addrs()
            .into_iter()
            .find(|(what, _)| what.contains("WS"))
            .map(|(_, a)| a);
        self.owner = format!("sip:pcscf@{}", self.pcscf);
        self.status = server.status();
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn(server.run(self.shutdown.clone())));
        Ok(())
    }

    /// Stops the P-CSCF and starts it again on the same address, store and data directory.
    pub(crate) async fn restart(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        self.cfg.pcscf.listen = self.pcscf;
        self.launch().await.unwrap();
    }

    /// The core sends a NOTIFY in the reg-event dialog of `impu` saying its registration and
    /// `contact` are terminated with `event`.
    pub(crate) async fn notify_terminated(&self, impu: &str, contact: &str, event: &str) {
        let mut sub = None;
        for _ in 0..300 {
            sub = self
                .core_log
                .lock()
                .unwrap()
                .subscribes
                .iter()
                .rev()
                .find(|m| m.request_uri_str() == Some(impu))
                .cloned();
            if sub.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let sub = sub.expect("the P-CSCF subscribed");
        let call_id = sub.call_id().unwrap().as_str().to_owned();
        let tag = sub.from_header().unwrap().tag().unwrap().to_owned();
        let target = sub
            .contacts()
            .next()
            .unwrap()
            .unwrap()
            .addr()
            .unwrap()
            .uri
            .to_string();
        let body = format!(
            "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" \
             version=\"1\" state=\"full\"><registration aor=\"{impu}\" id=\"a1\" \
             state=\"terminated\"><contact id=\"c1\" state=\"terminated\" event=\"{event}\">\
             <uri>{contact}</uri></contact></registration></reginfo>"
        );
        let m = Message::parse(
            format!(
                "NOTIFY {target} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKnotify1\r\n\
                 Max-Forwards: 70\r\nFrom: <{impu}>;tag=notifier1\r\nTo: <{target}>;tag={tag}\r\n\
                 Call-ID: {call_id}\r\nCSeq: 2 NOTIFY\r\nEvent: reg\r\n\
                 Subscription-State: terminated;reason=deactivated\r\n\
                 Contact: <sip:scscf@{}>\r\nContent-Type: application/reginfo+xml\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                self.core_addr,
                self.core_addr,
                body.len()
            )
            .into_bytes(),
        )
        .unwrap();
        self.core_sends(m);
    }

    pub(crate) fn status(&self) -> Status {
        self.status.get()
    }

    /// Waits until `f` holds for the status (the loop publishes after each event).
    pub(crate) async fn wait_status(&self, what: &str, f: impl Fn(&Status) -> bool) -> Status {
        for _ in 0..500 {
            let s = self.status();
            if f(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}: {:?}", self.status());
    }

    /// Makes the core send `msg` to the P-CSCF.
    pub(crate) fn core_sends(&self, msg: Message) {
        self.core_cmd.send((msg, self.pcscf)).unwrap();
    }

    pub(crate) async fn stop(&mut self) -> Duration {
        let started = std::time::Instant::now();
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        started.elapsed()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The scripted I-CSCF + S-CSCF: challenges REGISTER with AKA vectors (ck/ik included, as the
/// S-CSCF sends them to the P-CSCF), verifies the digest, registers; accepts SUBSCRIBE and
/// anything else with 200; sends what the test asks.
async fn fake_core(
    sock: UdpSocket,
    log: Arc<Mutex<CoreLog>>,
    mut cmds: mpsc::UnboundedReceiver<(Message, SocketAddr)>,
) {
    let milenage = Milenage::new(
        &K::from_hex(K_HEX).unwrap(),
        &Opc::from_hex(OPC_HEX).unwrap(),
    );
    let mut seq = 1u64;
    let mut challenges: HashMap<String, imslab_aka::AuthVector> = HashMap::new();
    let me = sock.local_addr().unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            cmd = cmds.recv() => {
                let Some((m, to)) = cmd else { return };
                let _ = sock.send_to(&m.to_bytes(), to).await;
            }
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { return };
                let Ok(msg) = Message::parse(Bytes::copy_from_slice(&buf[..n])) else { continue };
                if !msg.is_request() {
                    log.lock().unwrap().notify_answers.push(msg);
                    continue;
                }
                let resp = match msg.method() {
                    Some(Method::Register) => {
                        log.lock().unwrap().registers.push(msg.clone());
                        register(&msg, &milenage, &mut seq, &mut challenges, me)
                    }
                    Some(Method::Subscribe) => {
                        log.lock().unwrap().subscribes.push(msg.clone());
                        let mut r = msg.response(StatusCode::OK, Some("notifier1")).unwrap();
                        r.push_header(HeaderName::CONTACT, format!("<sip:scscf@{me}>")).unwrap();
                        r.push_header(HeaderName::EXPIRES, "600000").unwrap();
                        r
                    }
                    Some(Method::Ack) => continue,
                    _ => {
                        log.lock().unwrap().requests.push(msg.clone());
                        msg.response(StatusCode::OK, Some("core1")).unwrap()
                    }
                };
                let _ = sock.send_to(&resp.to_bytes(), from).await;
            }
        }
    }
}

fn register(
    msg: &Message,
    milenage: &Milenage,
    seq: &mut u64,
    challenges: &mut HashMap<String, imslab_aka::AuthVector>,
    me: SocketAddr,
) -> Message {
    let auth: Auth<'_> = msg.required(&HeaderName::AUTHORIZATION).unwrap();
    let protected = auth.integrity_protected() == Some("yes");
    let response = auth.response().unwrap_or("").to_owned();
    let expires = msg
        .contacts()
        .next()
        .and_then(Result::ok)
        .and_then(|c| c.expires().ok().flatten())
        .or_else(|| msg.expires().ok().flatten())
        .unwrap_or(3600);
    let verified = auth
        .nonce()
        .and_then(|n| challenges.get(n))
        .is_some_and(|v| {
            let ha1 = Ha1::aka(
                DigestAlgorithm::AkaV1Md5,
                auth.username().unwrap(),
                auth.realm().unwrap(),
                &v.xres,
                &v.ik,
                &v.ck,
            )
            .unwrap();
            let req = DigestRequest {
                nonce: auth.nonce().unwrap(),
                method: "REGISTER",
                uri: auth.uri().unwrap(),
                qop: Some(QopParams {
                    qop: Qop::Auth,
                    nc: NonceCount::new(auth.nc().unwrap().unwrap_or(1)),
                    cnonce: auth.cnonce().unwrap_or(""),
                }),
                body: b"",
            };
            digest::verify(&ha1, &req, &response).is_ok()
        });
    if (protected && expires == 0) || verified {
        let mut r = msg.response(StatusCode::OK, Some("reg1")).unwrap();
        for p in msg.values(&HeaderName::PATH) {
            r.push_header(HeaderName::PATH, Bytes::copy_from_slice(p))
                .unwrap();
        }
        r.push_header(HeaderName::SERVICE_ROUTE, format!("<sip:orig@{me};lr>"))
            .unwrap();
        let impu = msg.to_header().unwrap().uri.to_string();
        r.push_header(
            HeaderName::P_ASSOCIATED_URI,
            format!("<{impu}>, <tel:+15550100>"),
        )
        .unwrap();
        if expires > 0 {
            let c = msg.contacts().next().unwrap().unwrap();
            r.push_header(
                HeaderName::CONTACT,
                format!("<{}>;expires={expires}", c.addr().unwrap().uri),
            )
            .unwrap();
        }
        return r;
    }
    if !response.is_empty() {
        return msg.response(StatusCode::FORBIDDEN, Some("reg1")).unwrap();
    }
    *seq += 1;
    let mut rand = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut rand);
    let v = generate_vector(
        milenage,
        Rand(rand),
        Sqn::new(*seq * 32).unwrap(),
        Amf([0x00, 0x00]),
    );
    let nonce = v.nonce();
    let mut r = msg
        .response(StatusCode::UNAUTHORIZED, Some("reg1"))
        .unwrap();
    r.push_header(
        HeaderName::WWW_AUTHENTICATE,
        format!(
            "Digest realm=\"{DOMAIN}\", nonce=\"{nonce}\", algorithm=AKAv1-MD5, qop=\"auth\", \
             ck=\"{}\", ik=\"{}\"",
            v.ck.expose_hex(),
            v.ik.expose_hex()
        ),
    )
    .unwrap();
    challenges.insert(nonce, v);
    r
}

/// A phone: a USIM, an unprotected UDP socket and a userspace ESP socket on 127.77.N.2.
pub(crate) struct TestUe {
    pub(crate) ip: IpAddr,
    pub(crate) plain: UdpSocket,
    pub(crate) esp: EspSocket,
    usim: Usim,
    pub(crate) impu: String,
    pub(crate) impi: String,
    pcscf: SocketAddr,
    pub(crate) port_c: u16,
    pub(crate) port_s: u16,
    next_spi: u32,
    pub(crate) bundle: Option<SaBundle>,
    pub(crate) security_server: Option<String>,
    pub(crate) security_client: String,
    pub(crate) suite: CipherSuite,
    cseq: u32,
    calls: u32,
    pub(crate) contact: String,
    last_auth: String,
}

impl TestUe {
    pub(crate) async fn new(lab: &Lab, msin: u32) -> Self {
        let ip = ip(lab.net, 2);
        let plain = UdpSocket::bind(SocketAddr::new(ip, 0)).await.unwrap();
        let esp = EspSocket::bind(ip).unwrap();
        let usim = Usim::new(
            &K::from_hex(K_HEX).unwrap(),
            &Opc::from_hex(OPC_HEX).unwrap(),
        );
        let user = format!("00101{msin:010}");
        let port_s = 7000 + (msin % 1000) as u16 * 2;
        Self {
            ip,
            plain,
            esp,
            usim,
            impu: format!("sip:{user}@{DOMAIN}"),
            impi: format!("{user}@{DOMAIN}"),
            pcscf: lab.pcscf,
            port_c: port_s + 1,
            port_s,
            next_spi: 10_000 + msin * 100,
            bundle: None,
            security_server: None,
            security_client: String::new(),
            suite: CipherSuite::new(
                imslab_ipsec::IntegrityAlg::HmacSha1_96,
                imslab_ipsec::EncryptionAlg::AesCbc,
            ),
            cseq: 0,
            calls: 0,
            contact: format!("sip:{user}@{ip}:{port_s}"),
            last_auth: String::new(),
        }
    }

    fn fresh_offer(&mut self) {
        let (spi_c, spi_s) = (self.next_spi, self.next_spi + 1);
        self.next_spi += 2;
        self.security_client = format!(
            "ipsec-3gpp;alg={};ealg={};prot=esp;mod=trans;spi-c={spi_c};spi-s={spi_s};\
             port-c={};port-s={}",
            self.suite.integrity.token(),
            self.suite.encryption.token(),
            self.port_c,
            self.port_s
        );
    }

    fn offer_spis(&self) -> (u32, u32) {
        let p = |n: &str| -> u32 {
            self.security_client
                .split(';')
                .find_map(|x| x.strip_prefix(&format!("{n}=")))
                .unwrap()
                .parse()
                .unwrap()
        };
        (p("spi-c"), p("spi-s"))
    }

    /// A REGISTER; `auth` is the Authorization (credentials or empty response).
    pub(crate) fn register_msg(
        &mut self,
        expires: u32,
        auth: &str,
        sec: bool,
        verify: bool,
        via_port: u16,
    ) -> Message {
        self.cseq += 1;
        let mut sec_headers = String::new();
        if sec {
            sec_headers.push_str(&format!(
                "Require: sec-agree\r\nProxy-Require: sec-agree\r\nSecurity-Client: {}\r\n",
                self.security_client
            ));
            if verify && let Some(v) = &self.security_server {
                sec_headers.push_str(&format!("Security-Verify: {v}\r\n"));
            }
        }
        Message::parse(
            format!(
                "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {}:{via_port};branch=z9hG4bK{}r{};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <{}>;tag=ue{}\r\nTo: <{}>\r\n\
                 Call-ID: reg-{}@{}\r\nCSeq: {} REGISTER\r\n\
                 Contact: <{}>;expires={expires}\r\n\
                 Authorization: {auth}\r\nSupported: path, sec-agree\r\n{sec_headers}\
                 Content-Length: 0\r\n\r\n",
                self.ip,
                self.impi.len(),
                self.cseq,
                self.impu,
                self.cseq,
                self.impu,
                self.impi,
                self.ip,
                self.cseq,
                self.contact
            )
            .into_bytes(),
        )
        .unwrap()
    }

    fn empty_auth(&self) -> String {
        format!(
            "Digest username=\"{}\", realm=\"{DOMAIN}\", nonce=\"\", uri=\"sip:{DOMAIN}\", response=\"\"",
            self.impi
        )
    }

    pub(crate) async fn send_plain(&self, m: &Message) {
        self.plain.send_to(&m.to_bytes(), self.pcscf).await.unwrap();
    }

    pub(crate) async fn recv_plain(&self) -> Message {
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(WAIT, self.plain.recv_from(&mut buf))
            .await
            .expect("no answer on the unprotected port")
            .unwrap();
        Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap()
    }

    pub(crate) async fn send_protected(&self, m: &Message) {
        let pcscf_s = SocketAddr::new(self.pcscf.ip(), 6100);
        self.esp
            .send_udp(self.port_c, pcscf_s, &m.to_bytes())
            .await
            .unwrap();
    }

    /// The next SIP message over ESP (drops are skipped and counted by the socket).
    pub(crate) async fn recv_protected(&self) -> (SocketAddr, SocketAddr, Message) {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.esp.recv().await.unwrap() {
                    Incoming::Udp(u) => {
                        return (
                            u.from,
                            u.to,
                            Message::parse(Bytes::from(u.payload)).unwrap(),
                        );
                    }
                    Incoming::Tcp(_) | Incoming::Dropped(_) => {}
                }
            }
        })
        .await
        .expect("no answer over ESP")
    }

    /// Runs AKA on the 401 and installs the SAs it agreed; returns the Authorization.
    fn on_challenge(&mut self, resp: &Message) -> String {
        let www: Auth<'_> = resp.required(&HeaderName::WWW_AUTHENTICATE).unwrap();
        assert!(
            www.ck().is_none() && www.ik().is_none(),
            "ck/ik reached the phone"
        );
        let nonce = www.nonce().unwrap().to_owned();
        let aka = self.usim.authenticate_nonce(&nonce).unwrap();
        let ss = resp
            .header_str(&HeaderName::SECURITY_SERVER)
            .unwrap()
            .unwrap()
            .to_owned();
        let mech = &imslab_ipsec::header::parse_value(&ss).unwrap()[0];
        let offer = imslab_ipsec::IpsecMechanism::from_mechanism(mech).unwrap();
        assert_eq!(offer.suite, self.suite);
        let (spi_c, spi_s) = self.offer_spis();
        let local = Endpoint {
            ip: self.ip,
            spi_c: Spi(spi_c),
            spi_s: Spi(spi_s),
            port_c: self.port_c,
            port_s: self.port_s,
        };
        let remote = Endpoint {
            ip: self.pcscf.ip(),
            spi_c: offer.spi_c,
            spi_s: offer.spi_s,
            port_c: offer.port_c,
            port_s: offer.port_s,
        };
        let bundle = SaBundle::new(local, remote, EspKeys::derive(self.suite, &aka.ik, &aka.ck));
        self.esp.install(&bundle).unwrap();
        self.bundle = Some(bundle);
        self.security_server = Some(ss);
        let ha1 = Ha1::aka(
            DigestAlgorithm::AkaV1Md5,
            &self.impi,
            DOMAIN,
            &aka.res,
            &aka.ik,
            &aka.ck,
        )
        .unwrap();
        let uri = format!("sip:{DOMAIN}");
        let response = digest::response(
            &ha1,
            &DigestRequest {
                nonce: &nonce,
                method: "REGISTER",
                uri: &uri,
                qop: Some(QopParams {
                    qop: Qop::Auth,
                    nc: NonceCount::new(1),
                    cnonce: "0a4f113b",
                }),
                body: b"",
            },
        );
        format!(
            "Digest username=\"{}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=AKAv1-MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"",
            self.impi
        )
    }

    /// Initial registration: unprotected REGISTER, 401, protected REGISTER, 200.
    pub(crate) async fn register(&mut self) -> Message {
        self.reg_until_challenge().await;
        self.send_protected_register().await
    }

    /// The unprotected REGISTER with sec-agree, and its first answer.
    pub(crate) async fn first_register_plain(&mut self) -> Message {
        self.fresh_offer();
        self.security_server = None;
        let port = self.plain.local_addr().unwrap().port();
        let m = self.register_msg(600, &self.empty_auth(), true, false, port);
        self.send_plain(&m).await;
        self.recv_plain().await
    }

    /// The unprotected REGISTER and its 401; the SAs are installed.
    pub(crate) async fn reg_until_challenge(&mut self) {
        let resp = self.first_register_plain().await;
        assert_eq!(resp.status(), Some(StatusCode::UNAUTHORIZED), "{resp:?}");
        self.last_auth = self.on_challenge(&resp);
    }

    /// The protected REGISTER with the credentials of the last challenge, and its answer.
    pub(crate) async fn send_protected_register(&mut self) -> Message {
        let auth = self.last_auth.clone();
        let m = self.register_msg(600, &auth, true, true, self.port_c);
        self.send_protected(&m).await;
        self.recv_protected().await.2
    }

    /// Re-registration over the current SAs with a new offer (new SPIs, new port-c): 401 over
    /// the old SAs, then the protected REGISTER over the new ones.
    pub(crate) async fn reregister(&mut self) -> Message {
        let old = self.bundle.clone().unwrap();
        self.port_c += 100;
        self.fresh_offer();
        let m = self.register_msg(600, &self.empty_auth(), true, true, old.local.port_c);
        self.esp
            .send_udp(
                old.local.port_c,
                SocketAddr::new(self.pcscf.ip(), 6100),
                &m.to_bytes(),
            )
            .await
            .unwrap();
        let (_, _, resp) = self.recv_protected().await;
        assert_eq!(resp.status(), Some(StatusCode::UNAUTHORIZED), "{resp:?}");
        let auth = self.on_challenge(&resp);
        let m = self.register_msg(600, &auth, true, true, self.port_c);
        self.send_protected(&m).await;
        let (_, _, ok) = self.recv_protected().await;
        self.esp.remove(&old);
        ok
    }

    /// De-registration over the SAs.
    pub(crate) async fn deregister(&mut self) -> Message {
        let m = self.register_msg(0, &self.empty_auth(), true, true, self.port_c);
        self.send_protected(&m).await;
        let (_, _, ok) = self.recv_protected().await;
        if let Some(b) = self.bundle.take() {
            self.esp.remove(&b);
        }
        ok
    }

    /// A MESSAGE to another phone.
    pub(crate) fn message_to(&mut self, to: &str) -> Message {
        let m = self.message(None);
        let text = String::from_utf8(m.to_bytes().to_vec())
            .unwrap()
            .replace(&format!("sip:bob@{DOMAIN}"), to);
        Message::parse(text.into_bytes()).unwrap()
    }

    /// Answers a request that came over the SAs (from the P-CSCF's port-c to our port-s).
    pub(crate) async fn answer(&self, req: &Message, status: StatusCode) {
        let resp = req.response(status, Some("ue-answer")).unwrap();
        self.esp
            .send_udp(
                self.port_s,
                SocketAddr::new(self.pcscf.ip(), 5100),
                &resp.to_bytes(),
            )
            .await
            .unwrap();
    }

    /// A re-registration over the SAs that the network accepts without a new challenge.
    pub(crate) async fn refresh(&mut self) -> Message {
        let m = self.register_msg(600, &self.empty_auth(), true, true, self.port_c);
        self.send_protected(&m).await;
        self.recv_protected().await.2
    }

    /// A MESSAGE over the SAs.
    pub(crate) fn message(&mut self, ppi: Option<&str>) -> Message {
        self.calls += 1;
        let ppi = ppi
            .map(|p| format!("P-Preferred-Identity: <{p}>\r\n"))
            .unwrap_or_default();
        Message::parse(
            format!(
                "MESSAGE sip:bob@{DOMAIN} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {}:{};branch=z9hG4bKmsg{}x{}\r\nMax-Forwards: 70\r\n\
                 Route: <sip:{}:6100;lr>\r\n\
                 From: <{}>;tag=m{}\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: msg{}-{}@{}\r\n\
                 CSeq: 1 MESSAGE\r\n{ppi}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
                self.ip,
                self.port_c,
                self.calls,
                self.port_c,
                self.pcscf.ip(),
                self.impu,
                self.calls,
                self.calls,
                self.port_c,
                self.ip
            )
            .into_bytes(),
        )
        .unwrap()
    }
}

/// The Authorization answering the AKA challenge of `resp` (RFC 3310), computed by `usim`.
pub(crate) fn aka_authorization(usim: &mut Usim, impi: &str, resp: &Message) -> String {
    let www: Auth<'_> = resp.required(&HeaderName::WWW_AUTHENTICATE).unwrap();
    assert!(
        www.ck().is_none() && www.ik().is_none(),
        "ck/ik reached the phone"
    );
    let nonce = www.nonce().unwrap().to_owned();
    let aka = usim.authenticate_nonce(&nonce).unwrap();
    let ha1 = Ha1::aka(
        DigestAlgorithm::AkaV1Md5,
        impi,
        DOMAIN,
        &aka.res,
        &aka.ik,
        &aka.ck,
    )
    .unwrap();
    let uri = format!("sip:{DOMAIN}");
    let response = digest::response(
        &ha1,
        &DigestRequest {
            nonce: &nonce,
            method: "REGISTER",
            uri: &uri,
            qop: Some(QopParams {
                qop: Qop::Auth,
                nc: NonceCount::new(1),
                cnonce: "c0ffee",
            }),
            body: b"",
        },
    );
    format!(
        "Digest username=\"{impi}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=AKAv1-MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\""
    )
}

/// A fresh USIM with the lab's K and OPc.
pub(crate) fn usim() -> Usim {
    Usim::new(
        &K::from_hex(K_HEX).unwrap(),
        &Opc::from_hex(OPC_HEX).unwrap(),
    )
}

/// A phone without sec-agree (for `pcscf.ipsec.mode: off`).
pub(crate) struct PlainUe {
    sock: UdpSocket,
    usim: Usim,
    pub(crate) impu: String,
    impi: String,
    pub(crate) pcscf: SocketAddr,
    cseq: u32,
}

impl PlainUe {
    pub(crate) async fn new(lab: &Lab, msin: u32) -> Self {
        let sock = UdpSocket::bind(SocketAddr::new(ip(lab.net, 2), 0))
            .await
            .unwrap();
        let user = format!("00101{msin:010}");
        Self {
            sock,
            usim: Usim::new(
                &K::from_hex(K_HEX).unwrap(),
                &Opc::from_hex(OPC_HEX).unwrap(),
            ),
            impu: format!("sip:{user}@{DOMAIN}"),
            impi: format!("{user}@{DOMAIN}"),
            pcscf: lab.pcscf,
            cseq: 0,
        }
    }

    async fn exchange(&self, m: &Message) -> Message {
        self.sock.send_to(&m.to_bytes(), self.pcscf).await.unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(WAIT, self.sock.recv_from(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap()
    }

    fn register_msg(&mut self, expires: u32, auth: &str) -> Message {
        self.cseq += 1;
        let local = self.sock.local_addr().unwrap();
        Message::parse(
            format!(
                "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKp{};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <{}>;tag=p{}\r\nTo: <{}>\r\nCall-ID: preg@{}\r\n\
                 CSeq: {} REGISTER\r\nContact: <sip:{}@{local}>;expires={expires}\r\n\
                 Authorization: {auth}\r\nSupported: path\r\nContent-Length: 0\r\n\r\n",
                self.cseq,
                self.impu,
                self.cseq,
                self.impu,
                local.ip(),
                self.cseq,
                self.impi.split('@').next().unwrap()
            )
            .into_bytes(),
        )
        .unwrap()
    }

    /// REGISTER, 401, AKA, REGISTER, 200.
    pub(crate) async fn register(&mut self, expires: u32) -> Message {
        let empty = format!(
            "Digest username=\"{}\", realm=\"{DOMAIN}\", nonce=\"\", uri=\"sip:{DOMAIN}\", response=\"\"",
            self.impi
        );
        let m = self.register_msg(expires, &empty);
        let resp = self.exchange(&m).await;
        assert_eq!(resp.status(), Some(StatusCode::UNAUTHORIZED), "{resp:?}");
        assert!(!resp.has_header(&HeaderName::SECURITY_SERVER));
        let auth = aka_authorization(&mut self.usim, &self.impi, &resp);
        let m = self.register_msg(expires, &auth);
        self.exchange(&m).await
    }

    /// A MESSAGE and its answer.
    pub(crate) async fn message(&mut self) -> Message {
        self.cseq += 1;
        let local = self.sock.local_addr().unwrap();
        let m = Message::parse(
            format!(
                "MESSAGE sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKpm{};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <{}>;tag=pm\r\nTo: <sip:bob@{DOMAIN}>\r\n\
                 Call-ID: pmsg{}@{}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
                self.cseq,
                self.impu,
                self.cseq,
                local.ip()
            )
            .into_bytes(),
        )
        .unwrap();
        self.exchange(&m).await
    }
}
