//! The tokio driver of the P-CSCF: binds the sockets, feeds the [`Pcscf`] core, carries out its
//! outputs (send over `imslab-sip-io` or over IPsec, install and remove SAs, write the store,
//! emit per-UE events) and fires its timers.
//!
//! ```no_run
//! # async fn demo(cfg: imslab_config::Config, store: imslab_store::Store,
//! #               events: std::sync::Arc<dyn imslab_types::UeEventSink>) -> Result<(), imslab_pcscf::Error> {
//! use imslab_pcscf::{Deps, Server};
//! let server = Server::bind(&cfg, Deps { store, events, data_dir: cfg.data_dir.clone() }).await?;
//! for (what, addr) in server.local_addrs() {
//!     println!("{what}: {addr}");
//! }
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! server.run(shutdown).await?;
//! # Ok(()) }
//! ```
//!
//! IPsec backends (`pcscf.ipsec.mode`):
//! - `userspace`: one raw ESP socket ([`EspSocket`]) on the listen address. The protected ports
//!   exist only inside the P-CSCF: a decrypted UDP datagram to port-s or port-c is a protected
//!   message; sends from those ports are encrypted with the phone's SAs. TCP segments inside
//!   ESP go through an [`EspTcp`] endpoint (phone port-c → port-s connections accepted,
//!   port-c → phone port-s opened on demand), SIP framed from the stream like any TCP flow;
//!   a connection is reset when no SA can carry it any more. Needs CAP_NET_RAW.
//! - `xfrm`: kernel SAs and policies; the protected ports are real UDP/TCP sockets. Refused at
//!   start, with [`Error::KernelHasNoEsp`], on a kernel without ESP.
//! - `off`: no sec-agree.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use imslab_config::{Config, IpsecMode};
use imslab_ipsec::Spi;
use imslab_ipsec::socket::{EspSocket, EspStats, Incoming};
use imslab_ipsec::tcp::{ConnId, EspTcp, EspTcpConfig, TcpEvent};
use imslab_ipsec::xfrm::{EspSupport, StoredSet, XfrmBackend, XfrmConfig};
use imslab_ipsec::{Diagnosis, SaAction};
use imslab_sip::header::Transport;
use imslab_sip::transaction::{Peer, TxRef};
use imslab_sip::{Frame, Message, StreamFramer};
use imslab_sip_io::{Event, Payload, PcapTap, SipTransport, Target, TransportKind};
use imslab_store::Store;
use imslab_types::{Function, UeEventSink, UeRef};
use rand::{Rng as _, RngCore as _};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::{Ingress, Output, Pcscf, Protection, Stats, StoreOp};
use crate::flow::{FlowKey, PROTECTED_CLIENT, PROTECTED_SERVER, is_protected};
use crate::{Error, Settings};

/// The flow-token key file in the data directory.
pub const FLOW_KEY_FILE: &str = "pcscf-flow.key";
/// The capture file written when `pcscf.pcap` is on.
pub const PCAP_FILE: &str = "pcscf.pcap";
/// Wireshark's ESP SA table for that capture (holds keys).
pub const ESP_SA_FILE: &str = "pcscf.esp_sa";

/// What the P-CSCF shares with the rest of the lab.
#[derive(Clone)]
pub struct Deps {
    /// The store (registrations and reg-event subscriptions survive restarts there).
    pub store: Store,
    /// Where per-UE events go.
    pub events: Arc<dyn UeEventSink>,
    /// The data directory (flow-token key, pcap).
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Counts of the running P-CSCF, refreshed after every event it handles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Registered contacts.
    pub registrations: usize,
    /// SA sets in the SA table.
    pub sa_sets: usize,
    /// Local SPIs allocated.
    pub spis_in_use: usize,
    /// Reg-event subscriptions.
    pub subscriptions: usize,
    /// Inbound and outbound SAs installed in the userspace ESP socket.
    pub esp_sas: (usize, usize),
    /// The userspace ESP socket's counters (packets, drops by reason).
    pub esp: Option<EspStats>,
    /// TCP connections inside userspace ESP.
    pub esp_tcp: usize,
    /// The core's counters.
    pub stats: Stats,
    /// Proxy contexts in progress.
    pub contexts: usize,
    /// INVITE dialogs in progress.
    pub dialogs: usize,
}

/// Reads the [`Status`] of a running [`Server`]. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct StatusHandle(Arc<Mutex<Status>>);

impl StatusHandle {
    /// The latest counts.
    pub fn get(&self) -> Status {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

enum Backend {
    Off,
    Userspace(Arc<EspSocket>),
    Xfrm(XfrmBackend),
}

/// A P-CSCF with its sockets bound, ready to [`Server::run`].
pub struct Server {
    core: Pcscf,
    transport: SipTransport,
    events: mpsc::Receiver<Event>,
    backend: Backend,
    sink: Arc<dyn UeEventSink>,
    store: Store,
    owner: String,
    pcap: Option<PcapTap>,
    esp_sa_path: Option<PathBuf>,
    addrs: Vec<(&'static str, SocketAddr)>,
    restored: Vec<Output>,
    status: StatusHandle,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::File {
        path: path.to_owned(),
        source,
    }
}

/// Reads the flow-token key, creating it (random, mode 0600) on first start.
fn flow_key(data_dir: &Path) -> Result<FlowKey, Error> {
    let path = data_dir.join(FLOW_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes = hex::decode(text.trim()).ok();
        if let Some(b) = bytes.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()) {
            return Ok(FlowKey::new(b));
        }
    }
    std::fs::create_dir_all(data_dir).map_err(file_err(data_dir))?;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    std::fs::write(&path, hex::encode(b)).map_err(file_err(&path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(file_err(&path))?;
    }
    Ok(FlowKey::new(b))
}

async fn bind_udp(what: &'static str, addr: SocketAddr) -> Result<UdpSocket, Error> {
    UdpSocket::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

async fn bind_tcp(what: &'static str, addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

impl Server {
    /// Binds every socket (an error names the address), prepares the IPsec backend (refusing
    /// `xfrm` on a kernel without ESP) and reloads the registrations kept in the store.
    pub async fn bind(config: &Config, deps: Deps) -> Result<Self, Error> {
        let mut pc = config.pcscf.clone();
        let mode = pc.ipsec.mode;
        if pc.listen.ip().is_unspecified() {
            return Err(Error::Config {
                field: "pcscf.listen",
                reason: "must be a specific address, not a wildcard: it goes into Path, \
                         Record-Route and Via, and the IPsec SAs are bound to it"
                    .into(),
            });
        }
        let key = flow_key(&deps.data_dir)?;
        let mut tcfg = imslab_sip_io::Config::default();
        let mut pcap = None;
        if pc.pcap {
            let path = deps.data_dir.join(PCAP_FILE);
            let f = std::fs::File::create(&path).map_err(file_err(&path))?;
            let tap = imslab_sip_io::pcap_tap(f).map_err(file_err(&path))?;
            tcfg.pcap = Some(tap.clone());
            pcap = Some(tap);
        }
        let (transport, events) = SipTransport::new(tcfg);
        let mut addrs = Vec::new();
        let udp = transport.add_udp(bind_udp("SIP over UDP", pc.listen).await?)?;
        pc.listen = udp;
        addrs.push(("P-CSCF SIP (UDP)", udp));
        addrs.push((
            "P-CSCF SIP (TCP)",
            transport.add_tcp(bind_tcp("SIP over TCP", udp).await?)?,
        ));
        if let Some(ws) = pc.ws_listen {
            let ws = transport.add_ws(bind_tcp("SIP over WebSocket", ws).await?)?;
            pc.ws_listen = Some(ws);
            addrs.push(("P-CSCF SIP (WS)", ws));
        }
        let ip = udp.ip();
        let backend = match mode {
            IpsecMode::Off => Backend::Off,
            IpsecMode::Userspace => {
                let esp = EspSocket::bind(ip)?;
                addrs.push((
                    "P-CSCF IPsec port-c (userspace ESP)",
                    (ip, pc.port_c).into(),
                ));
                addrs.push((
                    "P-CSCF IPsec port-s (userspace ESP)",
                    (ip, pc.port_s).into(),
                ));
                Backend::Userspace(Arc::new(esp))
            }
            IpsecMode::Xfrm => {
                let x = XfrmBackend::connect(XfrmConfig::default())?;
                if x.probe_esp().await? == EspSupport::Unavailable {
                    return Err(Error::KernelHasNoEsp);
                }
                for (what, port) in [("IPsec port-c", pc.port_c), ("IPsec port-s", pc.port_s)] {
                    let a = SocketAddr::new(ip, port);
                    transport.add_udp(bind_udp(what, a).await?)?;
                    transport.add_tcp(bind_tcp(what, a).await?)?;
                    addrs.push((what, a));
                }
                Backend::Xfrm(x)
            }
        };
        let boot: u32 = rand::rng().random();
        let settings = Settings::from_config(&pc, &config.network, key, boot)?;
        let owner = settings.uri();
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut core = Pcscf::new(settings, rand::rng().random(), now, wall)?;
        let regs = deps.store.pcscf(&owner).all().await?;
        let subs = deps.store.reg_subscriptions(&owner).all().await?;
        let mut restored = core.restore(now, wall, regs, subs);
        if let Backend::Xfrm(x) = &backend {
            // Kernel SAs survive a crash: keep those of the restored registrations, remove
            // the rest of what the earlier run left.
            let (sets, rest) = xfrm_restored_sets(restored);
            restored = rest;
            let r = x.reconcile(&sets).await?;
            tracing::info!(
                "pcscf: XFRM after restart: {} SAs and {} policies kept, {} and {} re-installed, \
                 {} and {} of an earlier run removed",
                r.states_kept,
                r.policies_kept,
                r.states_installed,
                r.policies_installed,
                r.states_removed,
                r.policies_removed
            );
        }
        let esp_sa_path =
            (pc.pcap && mode != IpsecMode::Off).then(|| deps.data_dir.join(ESP_SA_FILE));
        Ok(Self {
            core,
            transport,
            events,
            backend,
            sink: deps.events,
            store: deps.store,
            owner,
            pcap,
            esp_sa_path,
            addrs,
            restored,
            status: StatusHandle::default(),
        })
    }

    /// Every address the P-CSCF serves, named.
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        self.addrs.clone()
    }

    /// The core, for inspection before running.
    pub fn core(&self) -> &Pcscf {
        &self.core
    }

    /// A handle on the counts of the running server.
    pub fn status(&self) -> StatusHandle {
        self.status.clone()
    }

    /// Serves until `shutdown` is cancelled; then removes every SA, closes the sockets and
    /// returns (within about a second).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let Self {
            core,
            transport,
            mut events,
            backend,
            sink,
            store,
            owner,
            pcap,
            esp_sa_path,
            restored,
            status,
            ..
        } = self;
        let (store_tx, store_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(store_writer(store, owner, store_rx));
        let (esp_tx, mut esp_rx) = mpsc::channel(4096);
        let reader = match &backend {
            Backend::Userspace(esp) => Some(tokio::spawn(esp_reader(Arc::clone(esp), esp_tx))),
            _ => None,
        };
        let (fail_tx, mut fail_rx) = mpsc::unbounded_channel::<TxRef>();
        let mut d = Driver {
            core,
            transport,
            backend,
            sink,
            store_tx,
            pcap,
            esp_sa_path,
            fail_tx,
            ports: (0, 0),
            esp_tcp: None,
        };
        d.ports = (
            d.core.settings().ports.port_c,
            d.core.settings().ports.port_s,
        );
        if let Backend::Userspace(esp) = &d.backend {
            let mut tcp = EspTcp::new(
                esp.local_ip(),
                EspTcpConfig::default(),
                rand::rng().random(),
                Instant::now(),
            );
            tcp.listen(d.ports.1);
            d.esp_tcp = Some(InnerTcp {
                tcp,
                streams: HashMap::new(),
                spis: HashMap::new(),
                held: Vec::new(),
            });
        }
        d.execute(restored).await;
        loop {
            d.drive_tcp().await;
            d.publish(&status);
            let now = Instant::now();
            // At least 1 ms ahead, so a stack that is due at once cannot spin the loop.
            let tcp_due = d
                .esp_tcp
                .as_mut()
                .and_then(|t| t.tcp.poll_timeout(now))
                .map(|at| at.max(now + Duration::from_millis(1)));
            let deadline = d
                .core
                .poll_timeout()
                .into_iter()
                .chain(tcp_due)
                .min()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                ev = events.recv() => {
                    let Some(ev) = ev else { break };
                    d.on_transport(ev).await;
                }
                inc = esp_rx.recv(), if reader.is_some() => {
                    if let Some(inc) = inc {
                        d.on_esp(inc).await;
                    }
                }
                tx = fail_rx.recv() => {
                    if let Some(tx) = tx {
                        let outs = d.core.handle_transport_error(Instant::now(), tx);
                        d.execute(outs).await;
                    }
                }
                () = sleep_until(deadline) => {
                    let now = Instant::now();
                    if let Some(t) = d.esp_tcp.as_mut() {
                        t.tcp.handle_timeout(now);
                    }
                    let outs = d.core.handle_timeout(now);
                    d.execute(outs).await;
                }
            }
        }
        if let Some(t) = d.esp_tcp.as_mut() {
            t.tcp.abort_all(Instant::now());
        }
        d.drive_tcp().await;
        let outs = d.core.shutdown(Instant::now());
        d.execute(outs).await;
        d.publish(&status);
        if let Some(r) = reader {
            r.abort();
        }
        d.transport.shutdown();
        let Driver { store_tx, .. } = d;
        drop(store_tx);
        if tokio::time::timeout(Duration::from_millis(1000), writer)
            .await
            .is_err()
        {
            tracing::warn!("pcscf: store writes still pending at shutdown were abandoned");
        }
        Ok(())
    }
}

/// Splits the outputs of [`Pcscf::restore`] for the XFRM backend: the SA sets to keep in the
/// kernel (with the sequence base their outbound SAs continue after, if re-installed), and
/// everything else (events, store writes).
pub(crate) fn xfrm_restored_sets(outs: Vec<Output>) -> (Vec<StoredSet>, Vec<Output>) {
    let mut sets: Vec<StoredSet> = Vec::new();
    let mut rest = Vec::new();
    for o in outs {
        match o {
            Output::Sa(SaAction::Install { id, bundle }) => sets.push(StoredSet {
                id,
                bundle,
                resume_oseq: 0,
            }),
            Output::ResumeEsp { bundle, last } => {
                if let Some(s) = sets.iter_mut().find(|s| s.bundle == bundle) {
                    s.resume_oseq = last;
                }
            }
            other => rest.push(other),
        }
    }
    (sets, rest)
}

/// Writes a TCP segment carried inside ESP to the capture as its inner IP packet (the capture
/// holds what the P-CSCF sends and receives in the clear, as for UDP).
fn record_inner_tcp(pcap: Option<&PcapTap>, from: SocketAddr, to: SocketAddr, segment: &[u8]) {
    if let Some(tap) = pcap
        && let Ok(mut w) = tap.lock()
    {
        let mut p = Vec::with_capacity(segment.len() + 40);
        imslab_ipsec::inner::build_ip_header(
            from.ip(),
            to.ip(),
            imslab_ipsec::esp::next_header::TCP,
            segment.len(),
            &mut p,
        );
        p.extend_from_slice(segment);
        let _ = w.ip_packet(SystemTime::now(), &p);
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Reads the raw ESP socket and hands packets to the loop.
async fn esp_reader(esp: Arc<EspSocket>, tx: mpsc::Sender<Incoming>) {
    loop {
        match esp.recv().await {
            Ok(inc) => {
                if tx.send(inc).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("pcscf: ESP socket: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Writes the store in order, off the SIP loop.
async fn store_writer(store: Store, owner: String, mut rx: mpsc::UnboundedReceiver<StoreOp>) {
    while let Some(op) = rx.recv().await {
        let now = SystemTime::now();
        let r = match &op {
            StoreOp::PutRegistration(r) => store.pcscf(&owner).put(r, now).await,
            StoreOp::RemoveRegistration { impu, contact } => {
                store.pcscf(&owner).remove(impu, contact).await.map(|_| ())
            }
            StoreOp::PutSubscription(s) => store.reg_subscriptions(&owner).put(s, now).await,
            StoreOp::RemoveSubscription { call_id, local_tag } => store
                .reg_subscriptions(&owner)
                .remove(call_id, local_tag)
                .await
                .map(|_| ()),
        };
        if let Err(e) = r {
            tracing::warn!("pcscf: store: {e}");
        }
    }
}

struct Driver {
    core: Pcscf,
    transport: SipTransport,
    backend: Backend,
    sink: Arc<dyn UeEventSink>,
    store_tx: mpsc::UnboundedSender<StoreOp>,
    pcap: Option<PcapTap>,
    esp_sa_path: Option<PathBuf>,
    fail_tx: mpsc::UnboundedSender<TxRef>,
    /// port-c, port-s.
    ports: (u16, u16),
    /// TCP inside userspace ESP.
    esp_tcp: Option<InnerTcp>,
}

/// The TCP endpoint inside userspace ESP and the SIP framing of its connections.
struct InnerTcp {
    tcp: EspTcp,
    streams: HashMap<ConnId, (StreamFramer, BytesMut)>,
    /// The inbound SA each (our port, phone address and port) last arrived on.
    spis: HashMap<(u16, SocketAddr), Spi>,
    /// Events taken out early by [`Driver::flush_tcp_segments`], handled first next time.
    held: Vec<TcpEvent>,
}

impl Driver {
    fn publish(&self, status: &StatusHandle) {
        let t = self.core.sa_table();
        let (esp_sas, esp) = match &self.backend {
            Backend::Userspace(e) => (e.sa_count(), Some(e.stats())),
            _ => ((0, 0), None),
        };
        let s = Status {
            registrations: self.core.registrations().len(),
            sa_sets: t.map_or(0, |t| t.len()),
            spis_in_use: t.map_or(0, |t| t.spis_in_use()),
            subscriptions: self.core.subscription_count(),
            esp_sas,
            esp,
            esp_tcp: self.esp_tcp.as_ref().map_or(0, |t| t.tcp.len()),
            stats: self.core.stats(),
            contexts: self.core.proxy().context_count(),
            dialogs: self.core.dialogs().len(),
        };
        *status
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = s;
    }

    fn protection_of(&self, local: SocketAddr) -> Protection {
        match self.backend {
            Backend::Xfrm(_) if local.port() == self.ports.0 || local.port() == self.ports.1 => {
                Protection::Kernel
            }
            _ => Protection::None,
        }
    }

    async fn on_transport(&mut self, ev: Event) {
        match ev {
            Event::Received(rx) => match rx.payload {
                Payload::Message(msg) => {
                    let ingress = Ingress {
                        transport: rx.transport.to_sip(),
                        source: rx.source,
                        local: rx.local,
                        flow: Some(rx.flow.transaction_flow()),
                        protection: self.protection_of(rx.local),
                    };
                    let outs = self.core.handle_message(Instant::now(), msg, ingress);
                    self.execute(outs).await;
                }
                Payload::Invalid {
                    parsed: Some(req),
                    error,
                    ..
                } if req.is_request() => {
                    if let Ok(resp) = req.response(error.status_code(), None) {
                        let _ = self.transport.send(&Target::Flow(rx.flow), resp).await;
                    }
                }
                Payload::Invalid { error, .. } => {
                    tracing::debug!(
                        "pcscf: dropped an undecodable message from {}: {error}",
                        rx.source
                    );
                }
            },
            Event::FlowClosed { flow, remote, .. } => {
                tracing::debug!("pcscf: flow {flow} to {remote} closed");
            }
            Event::Pong { .. } => {}
        }
    }

    async fn on_esp(&mut self, inc: Incoming) {
        match inc {
            Incoming::Udp(m) => {
                if let Some(tap) = &self.pcap
                    && let Ok(mut w) = tap.lock()
                {
                    let _ = w.udp(SystemTime::now(), m.from, m.to, &m.payload);
                }
                let Ok(msg) = Message::parse(Bytes::from(m.payload)) else {
                    tracing::debug!("pcscf: undecodable SIP over ESP from {}", m.from);
                    return;
                };
                let ingress = Ingress {
                    transport: Transport::Udp,
                    source: m.from,
                    local: m.to,
                    flow: None,
                    protection: Protection::Esp { spi: m.spi },
                };
                let outs = self.core.handle_message(Instant::now(), msg, ingress);
                self.execute(outs).await;
            }
            Incoming::Tcp(t) => {
                let Some(x) = self.esp_tcp.as_mut() else {
                    return;
                };
                let segment = t.segment_bytes();
                record_inner_tcp(self.pcap.as_ref(), t.from, t.to, &segment);
                x.spis.insert((t.to.port(), t.from), t.spi);
                if let Err(e) = x.tcp.handle_segment(Instant::now(), t.from, t.to, &segment) {
                    tracing::debug!("pcscf: TCP segment inside ESP from {} dropped: {e}", t.from);
                }
            }
            Incoming::Dropped(d) => {
                let spi = d.reason.spi();
                let ue = self
                    .core
                    .sa_table()
                    .and_then(|t| t.by_inbound_spi(spi))
                    .map(|(set, _)| set.ue.impu.clone());
                match ue {
                    Some(impu) => self.sink.emit(Diagnosis::from(&d.reason).into_event(
                        SystemTime::now(),
                        Function::Pcscf,
                        UeRef::impu(impu),
                    )),
                    None => tracing::debug!("pcscf: ESP from {} dropped: {}", d.from, d.reason),
                }
            }
        }
    }

    /// Runs the TCP endpoint inside userspace ESP until it is quiet: protects and sends its
    /// segments, frames SIP out of its streams into the core, reports refused connections.
    async fn drive_tcp(&mut self) {
        for _ in 0..64 {
            let Some(x) = self.esp_tcp.as_mut() else {
                return;
            };
            let mut events = std::mem::take(&mut x.held);
            events.extend(x.tcp.take_events());
            if events.is_empty() {
                return;
            }
            let mut messages = Vec::new();
            let mut refused = Vec::new();
            let mut segments = Vec::new();
            for ev in events {
                match ev {
                    TcpEvent::Segment { from, to, segment } => {
                        segments.push((from, to, segment));
                    }
                    TcpEvent::Opened {
                        conn,
                        local,
                        remote,
                    } => {
                        tracing::debug!("pcscf: {conn} {local} <-> {remote} inside ESP open");
                    }
                    TcpEvent::Data {
                        conn,
                        local,
                        remote,
                        data,
                    } => {
                        // The inbound SA the bytes came on (taken now: the connection may end
                        // in this same batch).
                        let spi = x.spis.get(&(local.port(), remote)).copied();
                        let (framer, buf) = x.streams.entry(conn).or_insert_with(|| {
                            (
                                StreamFramer::new(imslab_sip::Limits::default()),
                                BytesMut::new(),
                            )
                        });
                        buf.extend_from_slice(&data);
                        loop {
                            match framer.decode(buf) {
                                Ok(Some(Frame::Message(m))) => {
                                    if let Some(spi) = spi {
                                        messages.push((local, remote, spi, m));
                                    }
                                }
                                Ok(Some(Frame::Ping)) => {
                                    // RFC 5626 §3.5.1: a CRLF keep-alive gets a CRLF pong.
                                    let _ = x.tcp.send(Instant::now(), conn, b"\r\n");
                                }
                                Ok(Some(_)) => {}
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::debug!("pcscf: {conn} from {remote}: {e}; closing");
                                    x.tcp.close(Instant::now(), conn);
                                    break;
                                }
                            }
                        }
                    }
                    TcpEvent::Closed {
                        conn,
                        remote,
                        reason,
                        ..
                    } => {
                        tracing::debug!("pcscf: {conn} with {remote} inside ESP ended: {reason:?}");
                        x.streams.remove(&conn);
                    }
                    TcpEvent::Refused {
                        local,
                        remote,
                        reason,
                    } => {
                        if let Some(spi) = x.spis.get(&(local.port(), remote)) {
                            refused.push((*spi, remote, reason.to_string()));
                        }
                    }
                }
            }
            let live: std::collections::HashSet<(u16, SocketAddr)> =
                x.tcp.connections().map(|(_, l, r)| (l.port(), r)).collect();
            x.spis.retain(|k, _| live.contains(k));
            for (from, to, segment) in segments {
                self.send_segment(from, to, &segment).await;
            }
            for (spi, from, why) in refused {
                let outs = self
                    .core
                    .handle_esp_tcp_refused(Instant::now(), spi, from, &why);
                self.execute(outs).await;
            }
            for (local, remote, spi, msg) in messages {
                let ingress = Ingress {
                    transport: Transport::Tcp,
                    source: remote,
                    local,
                    flow: None,
                    protection: Protection::Esp { spi },
                };
                let outs = self.core.handle_message(Instant::now(), msg, ingress);
                self.execute(outs).await;
            }
        }
    }

    /// Sends the segments the TCP endpoint has ready now (what was queued before SAs go must
    /// leave while they can still carry it); its other events wait for [`Driver::drive_tcp`].
    async fn flush_tcp_segments(&mut self) {
        let Some(x) = self.esp_tcp.as_mut() else {
            return;
        };
        let mut segments = Vec::new();
        for ev in x.tcp.take_events() {
            match ev {
                TcpEvent::Segment { from, to, segment } => segments.push((from, to, segment)),
                other => x.held.push(other),
            }
        }
        for (from, to, segment) in segments {
            self.send_segment(from, to, &segment).await;
        }
    }

    /// Records a TCP segment of the endpoint inside ESP in the capture (as the inner IP
    /// packet), protects it with the outbound SA of its ports and sends it.
    async fn send_segment(&self, from: SocketAddr, to: SocketAddr, segment: &[u8]) {
        record_inner_tcp(self.pcap.as_ref(), from, to, segment);
        if let Backend::Userspace(esp) = &self.backend
            && let Err(e) = esp.send_tcp_segment(from.port(), to, segment).await
        {
            tracing::debug!("pcscf: TCP segment to {to} inside ESP not sent: {e}");
        }
    }

    /// Queues `bytes` on the TCP connection inside ESP from our `src_port` to `to`: the
    /// phone's own connection for responses (port-s), opened on demand from port-c for
    /// requests (RFC 3261 §18.1.1, TS 24.229 §5.2.2).
    fn send_inner_tcp(&mut self, src_port: u16, to: SocketAddr, bytes: &[u8]) -> Result<(), ()> {
        let now = Instant::now();
        let port_c = self.ports.0;
        let x = self.esp_tcp.as_mut().ok_or(())?;
        let conn = match x.tcp.find(src_port, to) {
            Some(c) => c,
            None if src_port == port_c => x.tcp.connect(now, src_port, to).map_err(|e| {
                tracing::debug!("pcscf: no TCP connection to {to} inside ESP: {e}");
            })?,
            None => {
                tracing::debug!("pcscf: the phone's TCP connection from {to} inside ESP is gone");
                return Err(());
            }
        };
        x.tcp
            .send(now, conn, bytes)
            .map_err(|e| tracing::debug!("pcscf: TCP send to {to} inside ESP failed: {e}"))
    }

    /// Carries out outputs in order; failures feed back into the core.
    async fn execute(&mut self, outs: Vec<Output>) {
        let mut queue: std::collections::VecDeque<Output> = outs.into();
        while let Some(o) = queue.pop_front() {
            match o {
                Output::Transmit { to, bytes, tx } => {
                    if let Err(()) = self.transmit(&to, bytes, tx).await
                        && let Some(tx) = tx
                    {
                        queue.extend(self.core.handle_transport_error(Instant::now(), tx));
                    }
                }
                Output::Sa(a) => {
                    self.apply_sa(&a).await;
                    if let SaAction::Install { bundle, .. } = &a {
                        self.record_sa(bundle);
                    }
                }
                Output::Store(op) => {
                    let _ = self.store_tx.send(op);
                }
                Output::Event(e) => self.sink.emit(e),
                Output::ResumeEsp { bundle, last } => {
                    if let Backend::Userspace(esp) = &self.backend {
                        esp.resume_outbound(&bundle, last);
                    }
                }
            }
        }
    }

    /// Appends an installed bundle's four SAs to the Wireshark ESP SA file, so a capture of
    /// the whole run decrypts (removed SAs stay listed: their packets are in the capture).
    fn record_sa(&self, bundle: &imslab_ipsec::SaBundle) {
        let Some(path) = &self.esp_sa_path else {
            return;
        };
        let mut text = String::new();
        for sa in bundle.sas() {
            text.push_str(&imslab_ipsec::wireshark::esp_sa_line(&sa, bundle));
            text.push('\n');
        }
        let r = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
        if let Err(e) = r {
            tracing::warn!("pcscf: cannot write {}: {e}", path.display());
        }
    }

    async fn apply_sa(&mut self, a: &SaAction) {
        if matches!(a, SaAction::Remove { .. }) {
            self.flush_tcp_segments().await;
        }
        let r = match &self.backend {
            Backend::Userspace(esp) => esp.apply(a),
            Backend::Xfrm(x) => x.apply(a).await,
            Backend::Off => Ok(()),
        };
        if let Err(e) = r {
            tracing::warn!("pcscf: SA {a:?} failed: {e}");
        }
        // A TCP connection inside ESP lives as long as an SA can carry what it sends.
        if matches!(a, SaAction::Remove { .. })
            && let (Backend::Userspace(esp), Some(x)) = (&self.backend, self.esp_tcp.as_mut())
        {
            x.tcp.retain(Instant::now(), |local, remote| {
                esp.has_outbound(local.port(), remote)
            });
        }
    }

    async fn transmit(&mut self, to: &Peer, bytes: Bytes, tx: Option<TxRef>) -> Result<(), ()> {
        if is_protected(to.flow) {
            let src_port = if to.flow == Some(PROTECTED_SERVER) {
                self.ports.1
            } else {
                self.ports.0
            };
            debug_assert!(to.flow == Some(PROTECTED_SERVER) || to.flow == Some(PROTECTED_CLIENT));
            if to.transport == Transport::Tcp && matches!(self.backend, Backend::Userspace(_)) {
                return self.send_inner_tcp(src_port, to.addr, &bytes);
            }
            return match &self.backend {
                Backend::Userspace(esp) => {
                    let local = SocketAddr::new(esp.local_ip(), src_port);
                    if let Some(tap) = &self.pcap
                        && let Ok(mut w) = tap.lock()
                    {
                        let _ = w.udp(SystemTime::now(), local, to.addr, &bytes);
                    }
                    esp.send_udp(src_port, to.addr, &bytes).await.map_err(|e| {
                        tracing::debug!("pcscf: ESP send to {} failed: {e}", to.addr);
                    })
                }
                Backend::Xfrm(_) => {
                    let local = SocketAddr::new(self.local_ip(), src_port);
                    let target = self
                        .transport
                        .udp_flow(local, to.addr)
                        .map(Target::Flow)
                        .map_err(|e| tracing::debug!("pcscf: no protected socket: {e}"))?;
                    self.transport
                        .send_bytes(&target, bytes)
                        .await
                        .map(|_| ())
                        .map_err(|e| tracing::debug!("pcscf: send to {} failed: {e}", to.addr))
                }
                Backend::Off => Err(()),
            };
        }
        let target = self
            .transport
            .target_for(to)
            .map_err(|e| tracing::debug!("pcscf: cannot send to {}: {e}", to.addr))?;
        let connecting =
            matches!(target, Target::Address { transport, .. } if transport != TransportKind::Udp);
        if connecting {
            // Opening a connection may take a while: do it off the loop.
            let transport = self.transport.clone();
            let fail = self.fail_tx.clone();
            let addr = to.addr;
            tokio::spawn(async move {
                if let Err(e) = transport.send_bytes(&target, bytes).await {
                    tracing::debug!("pcscf: send to {addr} failed: {e}");
                    if let Some(tx) = tx {
                        let _ = fail.send(tx);
                    }
                }
            });
            return Ok(());
        }
        self.transport
            .send_bytes(&target, bytes)
            .await
            .map(|_| ())
            .map_err(|e| tracing::debug!("pcscf: send to {} failed: {e}", to.addr))
    }

    fn local_ip(&self) -> IpAddr {
        self.core.settings().listen.ip()
    }
}
