//! [`DiameterNode`]: the tokio driver around [`PeerTable`].
//!
//! One task owns the pure [`PeerTable`]; one task per connection reads frames and writes
//! messages; an accept task takes new connections from the caller's listener; handler calls
//! run in their own tasks so a slow answer never blocks the node. A misbehaving peer (garbage,
//! a message cut short, an impossible length, silence after connecting) costs one connection,
//! which is closed with a log line saying why.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use imslab_diameter::answer::{Origin, result_answer};
use imslab_diameter::header::CommandFlags;
use imslab_diameter::peer::{
    CloseReason, ConnId, NodeConfig, NodeEvent, PeerId, PeerSpec, PeerState, PeerTable, RequestId,
};
use imslab_diameter::types::Address;
use imslab_diameter::{Framer, Header, Message, ResultCode, dict};
use imslab_types::DiameterIdentity;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::Error;
use crate::conn::{self, ConnAddrs, ConnCmd, ConnEvent};
use crate::options::{NodeOptions, PeerOptions, Transport};

/// Who sent a request to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's Origin-Host from the capability exchange.
    pub host: Option<DiameterIdentity>,
}

/// Answers requests arriving at a node. The node sets the answer's header (command,
/// application, identifiers, P bit) from the request, keeping only the E bit the handler set;
/// use [`imslab_diameter::answer::error_answer`] for errors.
pub trait RequestHandler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Message, peer: PeerInfo) -> impl Future<Output = Message> + Send;
}

impl<F, Fut> RequestHandler for F
where
    F: Fn(Message, PeerInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Message> + Send + 'static,
{
    fn handle(&self, request: Message, peer: PeerInfo) -> impl Future<Output = Message> + Send {
        self(request, peer)
    }
}

/// A handler for nodes that only send requests: answers everything with
/// DIAMETER_UNABLE_TO_COMPLY.
#[derive(Debug, Clone)]
pub struct RefuseRequests(pub Origin);

impl RequestHandler for RefuseRequests {
    fn handle(&self, request: Message, _peer: PeerInfo) -> impl Future<Output = Message> + Send {
        let ans = result_answer(
            &request.header,
            &request.avps,
            ResultCode::DIAMETER_UNABLE_TO_COMPLY,
            None,
            None,
            &self.0,
        );
        std::future::ready(ans)
    }
}

/// A peer's state as the node last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its host (configured or learned).
    pub host: Option<DiameterIdentity>,
    /// RFC 6733 §5.6 state.
    pub state: PeerState,
    /// Usable for requests (open, watchdog OKAY).
    pub available: bool,
}

enum Command {
    Request {
        msg: Message,
        timeout: Option<Duration>,
        reply: oneshot::Sender<Result<Message, Error>>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

enum NetEvent {
    Conn(ConnEvent),
    Accepted {
        addrs: ConnAddrs,
        tx: mpsc::UnboundedSender<ConnCmd>,
    },
    Connected {
        peer: PeerId,
        attempt: u64,
        addrs: ConnAddrs,
        tx: mpsc::UnboundedSender<ConnCmd>,
    },
    ConnectFailed {
        peer: PeerId,
        attempt: u64,
        error: Error,
    },
    Answer {
        peer: PeerId,
        request: Header,
        answer: Message,
    },
}

/// A running Diameter node: a server (answers requests with a [`RequestHandler`]) and a client
/// ([`DiameterNode::request`]) at once. Cloning gives another handle to the same node.
#[derive(Clone)]
pub struct DiameterNode {
    cmds: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Vec<PeerStatus>>,
    local_addr: Option<SocketAddr>,
    origin: Origin,
}

impl std::fmt::Debug for DiameterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiameterNode")
            .field("origin", &self.origin)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl DiameterNode {
    /// Starts a node. `listener` (bound by the caller, any port) accepts peers; without one the
    /// node only connects out. Configured peers with an address are connected at once.
    pub fn start<H: RequestHandler>(
        opts: NodeOptions,
        handler: H,
        listener: Option<TcpListener>,
    ) -> Result<Self, Error> {
        let local_addr = match &listener {
            Some(l) => Some(l.local_addr().map_err(|source| Error::Io {
                what: "listener address",
                source,
            })?),
            None => None,
        };
        let mut local = opts.local.clone();
        if local.host_ip_addresses.is_empty() {
            let ip = local_addr
                .map(|a| a.ip())
                .filter(|ip| !ip.is_unspecified())
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            local.host_ip_addresses.push(Address::from(ip));
        }
        let origin = Origin {
            host: local.origin_host.clone(),
            realm: local.origin_realm.clone(),
        };
        let table = build_table(&opts, local)?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (net_tx, net_rx) = mpsc::channel(NET_EVENTS);
        let (status_tx, status_rx) = watch::channel(Vec::new());
        let next_conn = Arc::new(AtomicU64::new(1));
        let framer = Framer::new(opts.max_message_len);
        let opts = Arc::new(opts);
        let accept_task = listener.map(|l| {
            tokio::spawn(accept_loop(
                l,
                opts.clone(),
                framer,
                next_conn.clone(),
                net_tx.clone(),
            ))
        });
        let core = Core {
            table,
            handler: Arc::new(handler),
            opts,
            origin: origin.clone(),
            framer,
            conns: HashMap::new(),
            next_conn,
            pending: HashMap::new(),
            net_tx,
            status: status_tx,
            stopping: Vec::new(),
            stop_deadline: None,
            handling: 0,
            overloaded: false,
        };
        tokio::spawn(async move {
            core.run(cmd_rx, net_rx).await;
            if let Some(t) = accept_task {
                t.abort();
            }
        });
        Ok(Self {
            cmds: cmd_tx,
            status: status_rx,
            local_addr,
            origin,
        })
    }

    /// The listener's address, when the node has one.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// This node's Origin-Host and Origin-Realm.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Sends a request and waits for its answer, with the node's default deadline. Routing uses
    /// Destination-Host, then Destination-Realm, then the default route; a peer failing on the
    /// way means a retry on the next one (RFC 6733 §5.5.4).
    pub async fn request(&self, msg: Message) -> Result<Message, Error> {
        self.request_inner(msg, None).await
    }

    /// Like [`DiameterNode::request`] with an explicit deadline.
    pub async fn request_with_timeout(
        &self,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, Error> {
        self.request_inner(msg, Some(timeout)).await
    }

    async fn request_inner(
        &self,
        msg: Message,
        timeout: Option<Duration>,
    ) -> Result<Message, Error> {
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(Command::Request {
                msg,
                timeout,
                reply,
            })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// The peers' states.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.status.borrow().clone()
    }

    /// Waits until the peer `host` is usable, or `timeout` passes.
    pub async fn wait_peer_up(&self, host: &str, timeout: Duration) -> Result<(), Error> {
        let mut rx = self.status.clone();
        let up = |v: &Vec<PeerStatus>| {
            v.iter().any(|p| {
                p.available
                    && p.host
                        .as_ref()
                        .is_some_and(|h| h.as_str().eq_ignore_ascii_case(host))
            })
        };
        match tokio::time::timeout(timeout, rx.wait_for(up)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Io {
                what: "waiting for the peer to come up",
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{host} not up")),
            }),
        }
    }

    /// Sends DPR to every open peer, waits for the DPAs (or their timeout), closes every
    /// connection and stops the node.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self.cmds.send(Command::Shutdown { done }).is_ok() {
            let _ = rx.await;
        }
    }
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn build_table(
    opts: &NodeOptions,
    local: imslab_diameter::base::Capabilities,
) -> Result<PeerTable, Error> {
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut cfg = NodeConfig::new(local, random_u64(), start);
    cfg.timers = opts.timers;
    cfg.accept_unknown_peers = opts.accept_unknown_peers;
    cfg.request_timeout = opts.request_timeout;
    cfg.limits.max_message_len = opts.max_message_len;
    let mut table = PeerTable::new(cfg);
    let mut ids: Vec<(DiameterIdentity, PeerId)> = Vec::new();
    for p in &opts.peers {
        if ids
            .iter()
            .any(|(h, _)| h.as_str().eq_ignore_ascii_case(p.host.as_str()))
        {
            return Err(Error::Config(format!("peer {} configured twice", p.host)));
        }
        let id = table.add_peer(PeerSpec {
            host: p.host.clone(),
            realm: p.realm.clone(),
            initiate: p.connect.is_some(),
        });
        ids.push((p.host.clone(), id));
    }
    let lookup = |h: &DiameterIdentity| {
        ids.iter()
            .find(|(x, _)| x.as_str().eq_ignore_ascii_case(h.as_str()))
            .map(|(_, id)| *id)
            .ok_or_else(|| Error::Config(format!("route names unknown peer {h}")))
    };
    for (realm, hosts) in &opts.routes {
        let peers = hosts.iter().map(lookup).collect::<Result<Vec<_>, _>>()?;
        table.add_route(realm.clone(), peers);
    }
    let mut realms: Vec<&imslab_types::Realm> = Vec::new();
    for p in &opts.peers {
        if !realms.contains(&&p.realm) {
            realms.push(&p.realm);
        }
    }
    for realm in realms {
        let peers = opts
            .peers
            .iter()
            .filter(|p| &p.realm == realm)
            .map(|p| lookup(&p.host))
            .collect::<Result<Vec<_>, _>>()?;
        table.add_route(realm.clone(), peers);
    }
    let default = opts
        .default_route
        .iter()
        .map(lookup)
        .collect::<Result<Vec<_>, _>>()?;
    table.set_default_route(default);
    Ok(table)
}

fn tcp_addrs(id: ConnId, s: &TcpStream) -> Option<ConnAddrs> {
    Some(ConnAddrs {
        id,
        local: s.local_addr().ok()?,
        remote: s.peer_addr().ok()?,
    })
}

async fn accept_loop(
    listener: TcpListener,
    opts: Arc<NodeOptions>,
    framer: Framer,
    next_conn: Arc<AtomicU64>,
    net: mpsc::Sender<NetEvent>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = ConnId(next_conn.fetch_add(1, Ordering::Relaxed));
        let Some(addrs) = tcp_addrs(id, &stream) else {
            continue;
        };
        debug!(conn = id.0, %remote, "accepted Diameter connection");
        let (tx, rx) = mpsc::unbounded_channel();
        let events = conn_events(&net);
        let tap = opts.tap.clone();
        let tls = opts.tls_server.clone();
        let handshake = opts.timers.cea_timeout;
        let net = net.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let _ = net.send(NetEvent::Accepted { addrs, tx }).await;
                    conn::run(stream, addrs, framer, rx, events, tap).await;
                }
                Some(cfg) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = net.send(NetEvent::Accepted { addrs, tx }).await;
                            conn::run(tls, addrs, framer, rx, events, tap).await;
                        }
                        Ok(Err(e)) => {
                            warn!(%remote, error = %e, "closing Diameter connection: TLS handshake failed")
                        }
                        Err(_) => {
                            warn!(%remote, "closing Diameter connection: no TLS handshake before the timeout")
                        }
                    }
                }
            }
        });
    }
}

/// Events waiting for the node task, all sources together. Bounded so that a peer sending
/// faster than the node processes is slowed down by TCP instead of queued in memory: its
/// connection task stops reading while its events wait.
const NET_EVENTS: usize = 1024;
/// Messages one connection may have waiting for the node task.
const CONN_EVENTS: usize = 16;

/// A sender of connection events into the node's event channel.
fn conn_events(net: &mpsc::Sender<NetEvent>) -> mpsc::Sender<ConnEvent> {
    let (tx, mut rx) = mpsc::channel::<ConnEvent>(CONN_EVENTS);
    let net = net.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if net.send(NetEvent::Conn(ev)).await.is_err() {
                break;
            }
        }
    });
    tx
}

/// What a connection attempt needs from the node.
struct Dialer {
    opts: Arc<NodeOptions>,
    framer: Framer,
    next_conn: Arc<AtomicU64>,
    net: mpsc::Sender<NetEvent>,
}

async fn connect_peer(peer: PeerId, attempt: u64, conf: PeerOptions, addr: SocketAddr, d: Dialer) {
    let net = d.net.clone();
    if let Err(error) = dial(peer, attempt, &conf, addr, d).await {
        let _ = net
            .send(NetEvent::ConnectFailed {
                peer,
                attempt,
                error,
            })
            .await;
    }
}

/// Connects (TCP or SCTP, then TLS if configured), reports the connection to the node and runs
/// it until it closes. An error means no connection was made.
async fn dial(
    peer: PeerId,
    attempt: u64,
    conf: &PeerOptions,
    addr: SocketAddr,
    d: Dialer,
) -> Result<(), Error> {
    let Dialer {
        opts,
        framer,
        next_conn,
        net,
    } = d;
    let timeout = opts.timers.connect_timeout;
    let connected = match &conf.transport {
        #[cfg(feature = "sctp")]
        Transport::Sctp => tokio::time::timeout(timeout, crate::sctp::connect(addr)).await,
        _ => {
            tokio::time::timeout(timeout, async {
                TcpStream::connect(addr)
                    .await
                    .map_err(|source| Error::Connect { addr, source })
            })
            .await
        }
    };
    let stream = connected.map_err(|_| Error::Connect {
        addr,
        source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
    })??;
    let _ = stream.set_nodelay(true);
    let id = ConnId(next_conn.fetch_add(1, Ordering::Relaxed));
    let addrs = tcp_addrs(id, &stream).ok_or_else(|| Error::Connect {
        addr,
        source: std::io::Error::other("connection has no address"),
    })?;
    let (tx, rx) = mpsc::unbounded_channel();
    let up = NetEvent::Connected {
        peer,
        attempt,
        addrs,
        tx,
    };
    let tap = opts.tap.clone();
    match &conf.transport {
        Transport::Tls {
            config,
            server_name,
        } => {
            let name = rustls::pki_types::ServerName::try_from(server_name.clone())
                .map_err(|e| Error::Tls(format!("server name {server_name}: {e}")))?;
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let tls = tokio::time::timeout(timeout, connector.connect(name, stream))
                .await
                .map_err(|_| Error::Tls("handshake timed out".into()))?
                .map_err(|e| Error::Tls(e.to_string()))?;
            let _ = net.send(up).await;
            conn::run(tls, addrs, framer, rx, conn_events(&net), tap).await;
        }
        _ => {
            let _ = net.send(up).await;
            conn::run(stream, addrs, framer, rx, conn_events(&net), tap).await;
        }
    }
    Ok(())
}

struct ConnEntry {
    tx: mpsc::UnboundedSender<ConnCmd>,
    remote: SocketAddr,
}

struct Core<H> {
    table: PeerTable,
    handler: Arc<H>,
    opts: Arc<NodeOptions>,
    origin: Origin,
    framer: Framer,
    conns: HashMap<ConnId, ConnEntry>,
    next_conn: Arc<AtomicU64>,
    pending: HashMap<RequestId, oneshot::Sender<Result<Message, Error>>>,
    net_tx: mpsc::Sender<NetEvent>,
    status: watch::Sender<Vec<PeerStatus>>,
    stopping: Vec<oneshot::Sender<()>>,
    stop_deadline: Option<Instant>,
    /// Received requests in the handler now, at most `opts.max_handler_requests`.
    handling: usize,
    /// Whether the handler limit was hit since the last request left the handler (one log
    /// line per overload, not one per refused request).
    overloaded: bool,
}

impl<H: RequestHandler> Core<H> {
    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Command>,
        mut net: mpsc::Receiver<NetEvent>,
    ) {
        self.table.start(Instant::now());
        self.flush();
        let mut cmds_open = true;
        loop {
            let wake = [self.table.poll_timeout(), self.stop_deadline]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                ev = net.recv() => match ev {
                    Some(ev) => self.net_event(ev),
                    None => break,
                },
                cmd = cmds.recv(), if cmds_open => match cmd {
                    Some(c) => self.command(c),
                    None => {
                        cmds_open = false;
                        self.begin_stop();
                    }
                },
                () = sleep_until(wake), if wake.is_some() => {
                    let now = Instant::now();
                    self.table.handle_timeout(now);
                }
            }
            self.flush();
            if self.stop_complete() {
                break;
            }
        }
        for (id, c) in self.conns.drain() {
            debug!(conn = id.0, remote = %c.remote, "closing Diameter connection: node stopped");
            let _ = c.tx.send(ConnCmd::Close);
        }
        for p in self.pending.drain() {
            let _ = p.1.send(Err(Error::Stopped));
        }
        self.status.send_replace(Vec::new());
        for d in self.stopping.drain(..) {
            let _ = d.send(());
        }
    }

    fn begin_stop(&mut self) {
        if self.stop_deadline.is_none() {
            info!(origin = %self.origin.host, "Diameter node stopping: sending DPR to open peers");
            self.stop_deadline =
                Some(Instant::now() + self.opts.timers.dpa_timeout + Duration::from_millis(500));
            self.table.stop(Instant::now());
        }
    }

    fn stop_complete(&self) -> bool {
        let Some(deadline) = self.stop_deadline else {
            return false;
        };
        let all_closed = self.table.peer_ids().all(|p| {
            self.table
                .peer(p)
                .is_none_or(|x| x.state() == PeerState::Closed)
        });
        all_closed || Instant::now() >= deadline
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Request {
                msg,
                timeout,
                reply,
            } => {
                if self.stop_deadline.is_some() {
                    let _ = reply.send(Err(Error::Stopped));
                    return;
                }
                match self.table.send_request(Instant::now(), msg, timeout) {
                    Ok(id) => {
                        self.pending.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Command::Shutdown { done } => {
                self.stopping.push(done);
                self.begin_stop();
            }
        }
    }

    fn net_event(&mut self, ev: NetEvent) {
        let now = Instant::now();
        match ev {
            NetEvent::Accepted { addrs, tx } => {
                self.conns.insert(
                    addrs.id,
                    ConnEntry {
                        tx,
                        remote: addrs.remote,
                    },
                );
                if self.stop_deadline.is_some() {
                    self.close(addrs.id, "node is stopping");
                    return;
                }
                self.table.handle_accepted(now, addrs.id);
            }
            NetEvent::Connected {
                peer,
                attempt,
                addrs,
                tx,
            } => {
                debug!(conn = addrs.id.0, remote = %addrs.remote, "connected to Diameter peer");
                self.conns.insert(
                    addrs.id,
                    ConnEntry {
                        tx,
                        remote: addrs.remote,
                    },
                );
                self.table.handle_connected(now, peer, attempt, addrs.id);
            }
            NetEvent::ConnectFailed {
                peer,
                attempt,
                error,
            } => {
                let host = self.host_of(peer);
                info!(peer = %host, error = %error, "Diameter connection attempt failed");
                self.table.handle_connect_failed(now, peer, attempt);
            }
            NetEvent::Conn(ConnEvent::Frame(conn, bytes)) => {
                if self.conns.contains_key(&conn) {
                    self.table.handle_frame(now, conn, bytes);
                }
            }
            NetEvent::Conn(ConnEvent::Closed(conn, reason)) => {
                if let Some(c) = self.conns.remove(&conn) {
                    let peer = self.table.owner(conn).map(|p| self.host_of(p));
                    if reason.starts_with("peer closed the connection")
                        && !reason.contains("middle")
                    {
                        info!(conn = conn.0, remote = %c.remote, peer = peer.as_deref().unwrap_or("-"), "Diameter connection closed: {reason}");
                    } else {
                        warn!(conn = conn.0, remote = %c.remote, peer = peer.as_deref().unwrap_or("-"), "closing Diameter connection: {reason}");
                    }
                    self.table.handle_closed(now, conn);
                }
            }
            NetEvent::Answer {
                peer,
                request,
                answer,
            } => {
                self.handling = self.handling.saturating_sub(1);
                self.overloaded = false;
                self.answer(now, peer, &request, answer);
            }
        }
    }

    /// Sends the answer to a request from `peer`, with the request's header and the answer's
    /// E bit.
    fn answer(&mut self, now: Instant, peer: PeerId, request: &Header, mut answer: Message) {
        let e = answer.header.flags.error();
        answer.header = request.answer();
        answer.header.flags = answer.header.flags.with(CommandFlags::ERROR, e);
        if let Err(err) = self.table.send_answer(now, peer, &answer) {
            warn!(peer = %self.host_of(peer), error = %err, "answer not sent");
        }
    }

    fn host_of(&self, peer: PeerId) -> String {
        self.table
            .peer(peer)
            .and_then(|p| p.remote_host())
            .map_or_else(|| format!("#{}", peer.0), ToString::to_string)
    }

    fn close(&mut self, conn: ConnId, why: &str) {
        if let Some(c) = self.conns.remove(&conn) {
            info!(conn = conn.0, remote = %c.remote, "closing Diameter connection: {why}");
            let _ = c.tx.send(ConnCmd::Close);
        }
    }

    /// Drains transmits and events until both are empty, then publishes peer states.
    fn flush(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.table.poll_transmit() {
                moved = true;
                if let Some(c) = self.conns.get(&t.conn) {
                    let _ = c.tx.send(ConnCmd::Send(t.bytes));
                }
            }
            while let Some(ev) = self.table.poll_event() {
                moved = true;
                self.node_event(ev);
            }
            if !moved {
                break;
            }
        }
        let status: Vec<PeerStatus> = self
            .table
            .peer_ids()
            .filter_map(|id| self.table.peer(id))
            .map(|p| PeerStatus {
                host: p.remote_host().cloned(),
                state: p.state(),
                available: p.is_available(),
            })
            .collect();
        self.status.send_if_modified(|old| {
            if *old == status {
                false
            } else {
                *old = status;
                true
            }
        });
    }

    fn node_event(&mut self, ev: NodeEvent) {
        match ev {
            NodeEvent::Connect { peer, attempt } => {
                let conf = self.opts.peers.get(peer.0).cloned();
                match conf
                    .as_ref()
                    .and_then(|c| c.connect.map(|a| (c.clone(), a)))
                {
                    Some((conf, addr)) => {
                        debug!(peer = %conf.host, %addr, "connecting to Diameter peer");
                        let d = Dialer {
                            opts: self.opts.clone(),
                            framer: self.framer,
                            next_conn: self.next_conn.clone(),
                            net: self.net_tx.clone(),
                        };
                        tokio::spawn(connect_peer(peer, attempt, conf, addr, d));
                    }
                    None => self
                        .table
                        .handle_connect_failed(Instant::now(), peer, attempt),
                }
            }
            NodeEvent::Close { conn, peer, reason } => {
                let Some(c) = self.conns.remove(&conn) else {
                    return;
                };
                let peer = peer.map_or_else(|| "-".to_owned(), |p| self.host_of(p));
                if is_orderly(&reason) {
                    info!(conn = conn.0, remote = %c.remote, %peer, "closing Diameter connection: {reason}");
                } else {
                    warn!(conn = conn.0, remote = %c.remote, %peer, "closing Diameter connection: {reason}");
                }
                let _ = c.tx.send(ConnCmd::Close);
            }
            NodeEvent::PeerUp { peer } => info!(peer = %self.host_of(peer), "Diameter peer up"),
            NodeEvent::PeerDown { peer, reason } => {
                info!(peer = %self.host_of(peer), "Diameter peer down: {reason}")
            }
            NodeEvent::Request { peer, msg } => {
                if self.handling >= self.opts.max_handler_requests {
                    if !self.overloaded {
                        self.overloaded = true;
                        warn!(peer = %self.host_of(peer), limit = self.opts.max_handler_requests,
                            "answering Diameter requests DIAMETER_TOO_BUSY: handler limit reached");
                    }
                    let busy = result_answer(
                        &msg.header,
                        &msg.avps,
                        ResultCode::DIAMETER_TOO_BUSY,
                        None,
                        None,
                        &self.origin,
                    );
                    self.answer(Instant::now(), peer, &msg.header, busy);
                    return;
                }
                self.handling += 1;
                let handler = self.handler.clone();
                let net = self.net_tx.clone();
                let origin = self.origin.clone();
                let info = PeerInfo {
                    host: self.table.peer(peer).and_then(|p| p.remote_host()).cloned(),
                };
                tokio::spawn(async move {
                    let request = msg.header;
                    let sid: Vec<_> = msg.find(&dict::SESSION_ID).cloned().into_iter().collect();
                    let answer = match AssertUnwindSafe(handler.handle(msg, info))
                        .catch_unwind()
                        .await
                    {
                        Ok(a) => a,
                        Err(_) => {
                            warn!(
                                "Diameter request handler panicked; answering DIAMETER_UNABLE_TO_COMPLY"
                            );
                            result_answer(
                                &request,
                                &sid,
                                ResultCode::DIAMETER_UNABLE_TO_COMPLY,
                                None,
                                None,
                                &origin,
                            )
                        }
                    };
                    let _ = net
                        .send(NetEvent::Answer {
                            peer,
                            request,
                            answer,
                        })
                        .await;
                });
            }
            NodeEvent::Answer { id, msg } => {
                if let Some(tx) = self.pending.remove(&id) {
                    let _ = tx.send(Ok(msg));
                }
            }
            NodeEvent::RequestFailed { id, reason } => {
                if let Some(tx) = self.pending.remove(&id) {
                    let _ = tx.send(Err(Error::RequestFailed(reason)));
                }
            }
            NodeEvent::Rejected { conn, reason } => {
                let remote = self
                    .conns
                    .get(&conn)
                    .map(|c| c.remote.to_string())
                    .unwrap_or_default();
                warn!(conn = conn.0, %remote, "Diameter message rejected: {reason}");
            }
        }
    }
}

fn is_orderly(reason: &CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::Shutdown
            | CloseReason::Stopped
            | CloseReason::DisconnectRequested(_)
            | CloseReason::ElectionLost
    )
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}
