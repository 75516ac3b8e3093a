//! A lab on loopback: the real HSS (SQLite store), the I-CSCF and the S-CSCF, and a test
//! client that plays the UE and its P-CSCF over UDP, recording what it sees in a pcap.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use imslab_aka::{
    AmfPolicy, DigestAlgorithm, DigestRequest, Ha1, Milenage, NonceCount, Qop, QopParams,
    SqnConfig, Usim,
};
use imslab_config::{Config, ScscfEntry};
use imslab_hss::Hss;
use imslab_pcap::PcapWriter;
use imslab_sip::header::Auth;
use imslab_sip::{HeaderName, Message, Method, StatusCode, TypedHeader as _};
use imslab_store::Store;
use imslab_store::provision::{ImpuInput, NewSubscriber, ProvisionDefaults, SubscriberInput};
use imslab_types::{K, Opc, UeEvent, UeEventSink};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) const DOMAIN: &str = "ims.mnc001.mcc001.3gppnetwork.org";
pub(crate) const K_HEX: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
pub(crate) const OPC_HEX: &str = "cd63cb71954a9f4e48a5994e37a02baf";
const HSS_HOST: &str = "hss.ims.mnc001.mcc001.3gppnetwork.org";

pub(crate) fn imsi(n: u32) -> String {
    format!("00101{n:010}")
}
pub(crate) fn impi(n: u32) -> String {
    format!("{}@{DOMAIN}", imsi(n))
}
pub(crate) fn impu(n: u32) -> String {
    format!("sip:{}@{DOMAIN}", imsi(n))
}

/// Collects per-UE events from every function.
#[derive(Default)]
pub(crate) struct Events(pub(crate) Mutex<Vec<UeEvent>>);

impl UeEventSink for Events {
    fn emit(&self, e: UeEvent) {
        self.0.lock().expect("lock").push(e);
    }
}

impl Events {
    pub(crate) fn has(&self, step: &str, reason_part: &str) -> bool {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .any(|e| e.step == step && e.reason.as_deref().is_some_and(|r| r.contains(reason_part)))
    }
}

/// A free port for both UDP and TCP on 127.0.0.1.
pub(crate) async fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
        let port = u.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).await.is_ok() {
            return port;
        }
    }
}

pub(crate) struct Running {
    pub(crate) stop: CancellationToken,
    pub(crate) task: JoinHandle<()>,
}

impl Running {
    pub(crate) async fn shut(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_millis(1500), self.task)
            .await
            .expect("stops within 1.5 s")
            .expect("task");
    }
}

pub(crate) struct Lab {
    pub(crate) store: Store,
    _db: tempfile::TempDir,
    pub(crate) hss: Hss,
    pub(crate) config: Config,
    pub(crate) events: Arc<Events>,
    pub(crate) icscf: SocketAddr,
    pub(crate) scscf: SocketAddr,
    pub(crate) icscf_run: Option<Running>,
    pub(crate) scscf_run: Option<Running>,
}

pub(crate) async fn provision(
    store: &Store,
    n: u32,
    password: Option<&str>,
    schemes: Option<&[&str]>,
) {
    let defaults = ProvisionDefaults::new(imslab_types::Realm::new(DOMAIN).expect("realm"));
    let input = SubscriberInput {
        imsi: imsi(n),
        k: K_HEX.into(),
        opc: Some(OPC_HEX.into()),
        msisdn: Some(format!("1555000{n}")),
        password: password.map(str::to_owned),
        auth_schemes: schemes.map(|s| s.iter().map(|x| (*x).to_owned()).collect()),
        impus: vec![
            ImpuInput::Uri(impu(n)),
            ImpuInput::Uri(format!("tel:+1555000{n}")),
        ],
        ..SubscriberInput::default()
    };
    let new = NewSubscriber::from_input(&input, &defaults).expect("valid subscriber");
    store
        .subscribers()
        .insert_all(&[new], SystemTime::now())
        .await
        .expect("provisioned");
}

impl Lab {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A lab whose configuration `edit` adjusts before the functions start.
    pub(crate) async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let (store, db) = imslab_store::testing::sqlite_store().await;
        let events = Arc::new(Events::default());
        let mut config = Config::default();
        let hss_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("hss listener");
        config.hss.listen = hss_listener.local_addr().expect("addr");
        config.hss.request_timeout_ms = 3000;
        let hss = Hss::start(
            &config.hss,
            &config.network.domain,
            store.clone(),
            hss_listener,
            events.clone(),
        )
        .expect("HSS starts");
        let scscf_port = free_port().await;
        let scscf = SocketAddr::from(([127, 0, 0, 1], scscf_port));
        config.scscf.listen = scscf;
        config.scscf.uri = format!("sip:127.0.0.1:{scscf_port}");
        config.scscf.hss = config.hss.listen;
        config.icscf.listen = SocketAddr::from(([127, 0, 0, 1], free_port().await));
        // Originating requests for the home domain go through the I-CSCF (LIR) and come
        // back for the terminating case.
        config.scscf.icscf = Some(format!("sip:{}", config.icscf.listen));
        // `edit` may list S-CSCFs ahead of the lab's own, which comes last.
        config.icscf.scscfs.clear();
        edit(&mut config);
        config.icscf.hss = config.hss.listen;
        config.icscf.scscfs.push(ScscfEntry {
            uri: config.scscf.uri.clone(),
            address: None,
            capabilities: vec![],
        });
        let mut lab = Self {
            store,
            _db: db,
            hss,
            icscf: config.icscf.listen,
            scscf,
            config,
            events,
            icscf_run: None,
            scscf_run: None,
        };
        lab.start_icscf().await;
        lab.start_scscf().await;
        lab
    }

    pub(crate) async fn start_scscf(&mut self) {
        let server = imslab_scscf::Server::bind(
            &self.config,
            self.store.clone(),
            self.events.clone(),
            &PathBuf::from("."),
        )
        .await
        .expect("S-CSCF binds");
        server
            .diameter()
            .wait_peer_up(HSS_HOST, Duration::from_secs(10))
            .await
            .expect("S-CSCF connected to the HSS");
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            server.run(s).await.expect("S-CSCF runs");
        });
        self.scscf_run = Some(Running { stop, task });
    }

    pub(crate) async fn start_icscf(&mut self) {
        let server = imslab_icscf::Server::bind(
            &self.config,
            self.store.clone(),
            self.events.clone(),
            &PathBuf::from("."),
        )
        .await
        .expect("I-CSCF binds");
        server
            .diameter()
            .wait_peer_up(HSS_HOST, Duration::from_secs(10))
            .await
            .expect("I-CSCF connected to the HSS");
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            server.run(s).await.expect("I-CSCF runs");
        });
        self.icscf_run = Some(Running { stop, task });
    }

    pub(crate) async fn stop(mut self) {
        if let Some(r) = self.scscf_run.take() {
            r.shut().await;
        }
        if let Some(r) = self.icscf_run.take() {
            r.shut().await;
        }
        self.hss.shutdown().await;
    }
}

/// The UE and its P-CSCF in one UDP socket: sends REGISTER and SUBSCRIBE, answers NOTIFY.
pub(crate) struct Ue {
    sock: UdpSocket,
    pub(crate) addr: SocketAddr,
    pcap: PcapWriter<File>,
    pub(crate) pcap_path: PathBuf,
    pub(crate) notifies: Vec<Message>,
    pub(crate) n: u32,
    pub(crate) usim: Usim,
    call_id: String,
    cseq: u32,
    branch: u32,
    nc: u32,
    last: Option<(Auth<'static>, Ha1, String)>,
}

impl Ue {
    pub(crate) async fn new(n: u32, dir: &std::path::Path, k: &str) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = sock.local_addr().expect("addr");
        let pcap_path = dir.join(format!("ue{n}.pcap"));
        let pcap = PcapWriter::new(File::create(&pcap_path).expect("pcap file")).expect("pcap");
        let usim = Usim::with_config(
            Milenage::new(
                &K::from_hex(k).expect("k"),
                &Opc::from_hex(OPC_HEX).expect("opc"),
            ),
            SqnConfig::default(),
            AmfPolicy::Any,
        );
        Self {
            sock,
            addr,
            pcap,
            pcap_path,
            notifies: Vec::new(),
            n,
            usim,
            call_id: format!("reg-{n}@{addr}"),
            cseq: 0,
            branch: 0,
            nc: 0,
            last: None,
        }
    }

    pub(crate) fn path(&self) -> String {
        format!("<sip:term@{};lr>", self.addr)
    }

    pub(crate) fn contact(&self) -> String {
        format!("<sip:ue{}@{}>", self.n, self.addr)
    }

    async fn send(&mut self, to: SocketAddr, bytes: &[u8]) {
        self.pcap
            .udp(SystemTime::now(), self.addr, to, bytes)
            .expect("pcap");
        self.sock.send_to(bytes, to).await.expect("send");
    }

    /// The next response from the network; NOTIFYs are answered 200 and kept (or returned
    /// when `want_notify`).
    async fn recv(&mut self, want_notify: bool) -> Message {
        let mut buf = vec![0u8; 65536];
        loop {
            let (len, from) =
                tokio::time::timeout(Duration::from_secs(10), self.sock.recv_from(&mut buf))
                    .await
                    .expect("a message within 10 s")
                    .expect("recv");
            let bytes = &buf[..len];
            self.pcap
                .udp(SystemTime::now(), from, self.addr, bytes)
                .expect("pcap");
            let m = Message::parse(bytes.to_vec()).expect("the network sends valid SIP");
            if m.method() == Some(&Method::Notify) {
                let ok = m.response(StatusCode::OK, None).expect("200");
                self.send(from, &ok.to_bytes()).await;
                if want_notify {
                    return m;
                }
                self.notifies.push(m);
                continue;
            }
            if m.status().is_some_and(|s| s.is_provisional()) {
                continue;
            }
            return m;
        }
    }

    /// Waits for the next NOTIFY.
    pub(crate) async fn next_notify(&mut self) -> Message {
        if !self.notifies.is_empty() {
            return self.notifies.remove(0);
        }
        let m = self.recv(true).await;
        assert_eq!(
            m.method(),
            Some(&Method::Notify),
            "expected a NOTIFY, got {:?}",
            m.status()
        );
        m
    }

    pub(crate) fn register_text(&mut self, auth: &str, expires: u32) -> String {
        self.cseq += 1;
        self.branch += 1;
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {a};branch=z9hG4bKue{n}x{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <{u}>;tag=ue{n}\r\n\
             To: <{u}>\r\n\
             Call-ID: {call}\r\n\
             CSeq: {c} REGISTER\r\n\
             Contact: {contact};expires={expires}\r\n\
             Path: {path}\r\n\
             Supported: path\r\n\
             P-Visited-Network-ID: \"{DOMAIN}\"\r\n\
             {auth}\
             User-Agent: imslab-test-ue\r\n\
             Content-Length: 0\r\n\r\n",
            a = self.addr,
            n = self.n,
            b = self.branch,
            u = impu(self.n),
            call = self.call_id,
            c = self.cseq,
            contact = self.contact(),
            path = self.path(),
        )
    }

    pub(crate) async fn request(&mut self, to: SocketAddr, text: String) -> Message {
        self.send(to, text.as_bytes()).await;
        self.recv(false).await
    }

    pub(crate) fn initial_auth(&self) -> String {
        format!(
            "Authorization: Digest username=\"{}\", realm=\"{DOMAIN}\", nonce=\"\", \
             uri=\"sip:{DOMAIN}\", response=\"\", algorithm=AKAv1-MD5\r\n",
            impi(self.n)
        )
    }

    pub(crate) fn reset_nc(&mut self) {
        self.nc = 0;
    }

    /// The answer to the last challenge again, with the next nonce count (RFC 2617 §3.2.2).
    pub(crate) fn reuse_last_answer(&mut self) -> String {
        let (ch, ha1, alg) = self.last.clone().expect("a challenge was answered before");
        self.answer(&ch, &ha1, &alg)
    }

    pub(crate) fn answer(&mut self, challenge: &Auth<'_>, ha1: &Ha1, algorithm: &str) -> String {
        self.last = Some((
            challenge.clone().into_owned(),
            ha1.clone(),
            algorithm.to_owned(),
        ));
        self.nc += 1;
        let nonce = challenge.nonce().expect("nonce");
        let realm = challenge.realm().expect("realm");
        let uri = format!("sip:{DOMAIN}");
        let resp = imslab_aka::digest::response(
            ha1,
            &DigestRequest {
                nonce,
                method: "REGISTER",
                uri: &uri,
                qop: Some(QopParams {
                    qop: Qop::Auth,
                    nc: NonceCount::new(self.nc),
                    cnonce: "6b8b4567",
                }),
                body: b"",
            },
        );
        format!(
            "Authorization: Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{resp}\", algorithm={algorithm}, qop=auth, \
             nc={:08x}, cnonce=\"6b8b4567\"\r\n",
            impi(self.n),
            self.nc
        )
    }

    /// The AKA answer to a 401 (RES from this USIM).
    pub(crate) fn aka_answer(&mut self, r401: &Message) -> String {
        let ch = challenge(r401);
        let nonce = ch.nonce().expect("nonce").to_owned();
        let aka = self
            .usim
            .authenticate_nonce(&nonce)
            .expect("the network authenticates");
        let ha1 = Ha1::aka(
            DigestAlgorithm::AkaV1Md5,
            &impi(self.n),
            ch.realm().expect("realm"),
            &aka.res,
            &aka.ik,
            &aka.ck,
        )
        .expect("ha1");
        self.nc = 0;
        self.answer(&ch, &ha1, "AKAv1-MD5")
    }

    pub(crate) fn subscribe_text(&mut self) -> String {
        self.branch += 1;
        format!(
            "SUBSCRIBE {u} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {a};branch=z9hG4bKsub{n}x{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:pcscf@{a}>;tag=p{n}x{b}\r\n\
             To: <{u}>\r\n\
             Call-ID: sub-{n}-{b}@{a}\r\n\
             CSeq: 1 SUBSCRIBE\r\n\
             Event: reg\r\n\
             Expires: 600000\r\n\
             Contact: <sip:pcscf@{a}>\r\n\
             P-Asserted-Identity: <sip:pcscf@{a}>\r\n\
             Content-Length: 0\r\n\r\n",
            u = impu(self.n),
            a = self.addr,
            n = self.n,
            b = self.branch,
        )
    }

    /// Sends raw SIP text to `to`.
    pub(crate) async fn send_text(&mut self, to: SocketAddr, text: &str) {
        self.send(to, text.as_bytes()).await;
    }

    /// Sends a message to `to`.
    pub(crate) async fn send_msg(&mut self, to: SocketAddr, m: &Message) {
        self.send(to, &m.to_bytes()).await;
    }

    /// The next SIP message of any kind (NOTIFYs answered and kept aside), with its source.
    pub(crate) async fn next_message(&mut self) -> (Message, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        loop {
            let (len, from) =
                tokio::time::timeout(Duration::from_secs(10), self.sock.recv_from(&mut buf))
                    .await
                    .expect("a message within 10 s")
                    .expect("recv");
            let bytes = &buf[..len];
            self.pcap
                .udp(SystemTime::now(), from, self.addr, bytes)
                .expect("pcap");
            let m = Message::parse(bytes.to_vec()).expect("the network sends valid SIP");
            if m.method() == Some(&Method::Notify) {
                let ok = m.response(StatusCode::OK, None).expect("200");
                self.send(from, &ok.to_bytes()).await;
                self.notifies.push(m);
                continue;
            }
            return (m, from);
        }
    }

    /// The next request with `method` (others are dropped), with its source.
    pub(crate) async fn next_request(&mut self, method: &Method) -> (Message, SocketAddr) {
        loop {
            let (m, from) = self.next_message().await;
            if m.method() == Some(method) {
                return (m, from);
            }
        }
    }

    /// The next final response (provisional ones are skipped, retransmissions included).
    pub(crate) async fn next_final(&mut self) -> Message {
        loop {
            let (m, _) = self.next_message().await;
            if m.status().is_some_and(|s| !s.is_provisional()) {
                return m;
            }
        }
    }

    pub(crate) fn finish_pcap(&mut self) {
        self.pcap.flush().expect("flush");
    }
}

pub(crate) fn challenge(r401: &Message) -> Auth<'static> {
    assert_eq!(r401.status(), Some(StatusCode::UNAUTHORIZED), "{r401:?}");
    let v = r401
        .header_str(&HeaderName::WWW_AUTHENTICATE)
        .expect("WWW-Authenticate")
        .expect("utf-8");
    Auth::parse_value(v, "WWW-Authenticate")
        .expect("parses")
        .into_owned()
}

pub(crate) fn values(m: &Message, name: &HeaderName) -> Vec<String> {
    m.values(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

pub(crate) fn body(m: &Message) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}
