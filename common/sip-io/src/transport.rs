//! The transport handle: binding, the flow table, sending.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use imslab_sip::header::Transport;
use imslab_sip::transaction::Peer;
use imslab_sip::{HeaderName, Message};
use rustls::ServerConfig;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::types::FlowRepr;
use crate::{
    CloseReason, Config, Error, Event, FlowId, FlowInfo, Sent, Target, TransportKind, connect,
    listener, udp,
};

/// A set of SIP transports sharing one flow table and one event channel.
///
/// Create it with [`SipTransport::new`], hand it bound sockets and listeners
/// (`add_udp`, `add_tcp`, `add_tls`, `add_ws`, `add_wss`), read [`Event`]s from the returned
/// receiver and [`send`](SipTransport::send) messages. Clones share everything; the transport
/// stops (every socket closed, every task ended) on [`shutdown`](SipTransport::shutdown) or
/// when the last clone is dropped. Must be used inside a tokio runtime.
#[derive(Clone)]
pub struct SipTransport {
    shared: Arc<Shared>,
    _guard: Arc<DropGuard>,
}

impl std::fmt::Debug for SipTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipTransport")
            .field("bound", &self.local_addrs())
            .field("connections", &self.connection_count())
            .finish_non_exhaustive()
    }
}

/// State shared by the handle and every task.
pub(crate) struct Shared {
    pub(crate) config: Config,
    events: mpsc::Sender<Event>,
    udp: RwLock<Vec<UdpEndpoint>>,
    bound: Mutex<Vec<(TransportKind, SocketAddr)>>,
    flows: Mutex<FlowTable>,
    next_id: AtomicU64,
    connections: AtomicUsize,
    pub(crate) token: CancellationToken,
    /// One lock per destination being connected, so concurrent sends share one connection.
    connecting: Mutex<HashMap<(TransportKind, SocketAddr), Gate>>,
}

/// Serialises connection attempts to one destination.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// One caller's use of a destination's gate. Dropping it (success, failure, or the caller
/// abandoning the attempt) removes the gate from the map when nobody else holds it.
struct GateUse<'a> {
    shared: &'a Shared,
    key: (TransportKind, SocketAddr),
    gate: Gate,
}

impl Drop for GateUse<'_> {
    fn drop(&mut self) {
        let mut connecting = lock(&self.shared.connecting);
        // The map's reference and ours: nobody else waits for this destination.
        if Arc::strong_count(&self.gate) == 2 {
            connecting.remove(&self.key);
        }
    }
}

struct UdpEndpoint {
    id: u64,
    local: SocketAddr,
    socket: Arc<UdpSocket>,
}

#[derive(Default)]
struct FlowTable {
    conns: HashMap<u64, ConnHandle>,
    /// Destination → connection: the peer's own address, plus aliases (RFC 5923 style).
    aliases: HashMap<(TransportKind, SocketAddr), u64>,
}

/// What a connection task takes from the handle.
#[derive(Debug)]
pub(crate) enum Outbound {
    Message(Bytes),
    Ping,
    Close,
}

/// The sending side of a connection task.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    id: u64,
    info: FlowInfo,
    tx: mpsc::UnboundedSender<Outbound>,
    queued: Arc<AtomicUsize>,
}

/// One reserved place below [`Config::max_connections`].
pub(crate) struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection as its task sees it.
pub(crate) struct Conn {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: u64,
    pub(crate) info: FlowInfo,
    pub(crate) queued: Arc<AtomicUsize>,
    _slot: Slot,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn try_slot(self: &Arc<Self>) -> Option<Slot> {
        let max = self.config.max_connections;
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(self)))
    }

    /// The address an outgoing connection to `remote` leaves from: the IP of a bound socket
    /// (RFC 3261 §18.1.1: from the address the element is reachable at), that of `transport`'s
    /// listener first, then the others in the order added. Wildcards, another address family, and
    /// a loopback address toward a non-loopback peer are skipped; `None` leaves the choice to
    /// the kernel.
    pub(crate) fn source_ip(&self, transport: TransportKind, remote: SocketAddr) -> Option<IpAddr> {
        let bound = lock(&self.bound);
        let usable = |ip: &IpAddr| {
            !ip.is_unspecified()
                && ip.is_ipv4() == remote.is_ipv4()
                && (!ip.is_loopback() || remote.ip().is_loopback())
        };
        let own = bound.iter().filter(|(t, _)| *t == transport);
        let others = bound.iter().filter(|(t, _)| *t != transport);
        own.chain(others).map(|(_, a)| a.ip()).find(usable)
    }

    /// Adds a connection to the flow table, under its peer address too.
    pub(crate) fn register(
        self: &Arc<Self>,
        info: FlowInfo,
        slot: Slot,
    ) -> (Conn, ConnHandle, mpsc::UnboundedReceiver<Outbound>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let handle = ConnHandle {
            id,
            info,
            tx,
            queued: Arc::clone(&queued),
        };
        {
            let mut flows = lock(&self.flows);
            flows.conns.insert(id, handle.clone());
            flows.aliases.insert((info.transport, info.remote), id);
        }
        tracing::debug!(flow = id, transport = %info.transport, local = %info.local,
            remote = %info.remote, "connection open");
        let conn = Conn {
            shared: Arc::clone(self),
            id,
            info,
            queued,
            _slot: slot,
        };
        (conn, handle, rx)
    }

    fn unregister(&self, id: u64) {
        let mut flows = lock(&self.flows);
        flows.conns.remove(&id);
        flows.aliases.retain(|_, v| *v != id);
    }

    fn lookup(&self, transport: TransportKind, remote: SocketAddr) -> Option<ConnHandle> {
        let flows = lock(&self.flows);
        let id = flows.aliases.get(&(transport, remote))?;
        flows.conns.get(id).cloned()
    }

    /// Hands an event to the owner; false when the transport is shutting down or nobody
    /// listens any more.
    pub(crate) async fn emit(&self, event: Event) -> bool {
        tokio::select! {
            r = self.events.send(event) => r.is_ok(),
            () = self.token.cancelled() => false,
        }
    }

    /// Records a message in the pcap tap, if any.
    pub(crate) fn record(
        &self,
        transport: TransportKind,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) {
        let Some(tap) = &self.config.pcap else {
            return;
        };
        let now = SystemTime::now();
        let mut w = lock(tap);
        let r = match transport {
            TransportKind::Udp => w.udp(now, src, dst, payload),
            _ => w.tcp(now, src, dst, payload),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "pcap tap write failed");
        }
    }

    /// The UDP socket to send from: the one numbered `id`, or the first of the remote's
    /// address family.
    fn udp_socket(&self, id: Option<u64>, remote: SocketAddr) -> Result<UdpOut, Error> {
        let sockets = self.udp.read().unwrap_or_else(PoisonError::into_inner);
        let found = match id {
            Some(id) => sockets
                .iter()
                .find(|e| e.id == id)
                .ok_or(Error::FlowClosed(FlowId::datagram(id, remote)))?,
            None => sockets
                .iter()
                .find(|e| e.local.is_ipv4() == remote.is_ipv4())
                .ok_or(Error::NoUdpSocket { remote })?,
        };
        Ok(UdpOut {
            id: found.id,
            local: found.local,
            socket: Arc::clone(&found.socket),
        })
    }

    fn is_udp_socket(&self, id: u64) -> bool {
        let sockets = self.udp.read().unwrap_or_else(PoisonError::into_inner);
        sockets.iter().any(|e| e.id == id)
    }
}

/// A UDP socket chosen for sending.
struct UdpOut {
    id: u64,
    local: SocketAddr,
    socket: Arc<UdpSocket>,
}

/// How a target is reached.
enum Route {
    /// From a UDP socket (a flow's, or the default one).
    Udp {
        socket: Option<u64>,
        remote: SocketAddr,
    },
    /// Over an open connection.
    Conn(ConnHandle),
    /// Over a connection to be found or opened.
    Connect(TransportKind, SocketAddr),
}

impl Conn {
    /// The flow id.
    pub(crate) fn flow(&self) -> FlowId {
        FlowId::connection(self.id)
    }

    /// Removes the connection from the flow table and reports it closed.
    pub(crate) async fn finish(self, reason: CloseReason) {
        self.shared.unregister(self.id);
        match &reason {
            CloseReason::Framing(e) => tracing::warn!(flow = self.id,
                transport = %self.info.transport, remote = %self.info.remote, error = %e,
                "peer sent bytes that are not SIP; disconnected"),
            CloseReason::WebSocket | CloseReason::WriteTimeout | CloseReason::Io(_) => {
                tracing::info!(flow = self.id, transport = %self.info.transport,
                    remote = %self.info.remote, ?reason, "connection closed")
            }
            _ => tracing::debug!(flow = self.id, transport = %self.info.transport,
                remote = %self.info.remote, ?reason, "connection closed"),
        }
        let event = Event::FlowClosed {
            flow: self.flow(),
            transport: self.info.transport,
            remote: self.info.remote,
            reason,
        };
        self.shared.emit(event).await;
    }
}

impl SipTransport {
    /// A transport with nothing bound yet, and the receiver of its events.
    pub fn new(config: Config) -> (Self, mpsc::Receiver<Event>) {
        let (events, rx) = mpsc::channel(config.event_capacity.max(1));
        let token = CancellationToken::new();
        let shared = Arc::new(Shared {
            config,
            events,
            udp: RwLock::new(Vec::new()),
            bound: Mutex::new(Vec::new()),
            flows: Mutex::new(FlowTable::default()),
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            token: token.clone(),
            connecting: Mutex::new(HashMap::new()),
        });
        let t = Self {
            shared,
            _guard: Arc::new(token.drop_guard()),
        };
        (t, rx)
    }

    fn bind(&self, transport: TransportKind, local: SocketAddr) {
        lock(&self.shared.bound).push((transport, local));
        tracing::info!(%transport, %local, "SIP transport listening");
    }

    /// Starts receiving on a bound UDP socket. Its buffers are enlarged to
    /// [`Config::udp_socket_buffer`]. Returns the local address.
    pub fn add_udp(&self, socket: UdpSocket) -> Result<SocketAddr, Error> {
        let local = socket.local_addr().map_err(|source| Error::LocalAddr {
            transport: TransportKind::Udp,
            source,
        })?;
        let sock = socket2::SockRef::from(&socket);
        let size = self.shared.config.udp_socket_buffer;
        if let Err(e) = sock.set_recv_buffer_size(size) {
            tracing::warn!(%local, error = %e, "cannot enlarge the UDP receive buffer");
        }
        if let Err(e) = sock.set_send_buffer_size(size) {
            tracing::warn!(%local, error = %e, "cannot enlarge the UDP send buffer");
        }
        udp::report_icmp_errors(&socket, local);
        let socket = Arc::new(socket);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.shared
            .udp
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(UdpEndpoint {
                id,
                local,
                socket: Arc::clone(&socket),
            });
        self.bind(TransportKind::Udp, local);
        tokio::spawn(udp::run(Arc::clone(&self.shared), socket, id, local));
        Ok(local)
    }

    fn add_listener(
        &self,
        listener: TcpListener,
        mode: listener::Mode,
    ) -> Result<SocketAddr, Error> {
        let transport = mode.transport();
        let local = listener
            .local_addr()
            .map_err(|source| Error::LocalAddr { transport, source })?;
        self.bind(transport, local);
        tokio::spawn(listener::run(Arc::clone(&self.shared), listener, mode));
        Ok(local)
    }

    /// Accepts SIP over TCP on a bound listener. Returns the local address.
    pub fn add_tcp(&self, listener: TcpListener) -> Result<SocketAddr, Error> {
        self.add_listener(listener, listener::Mode::Tcp)
    }

    /// Accepts SIP over TLS on a bound listener ([`crate::tls::TlsIdentity::server_config`]).
    pub fn add_tls(
        &self,
        listener: TcpListener,
        tls: Arc<ServerConfig>,
    ) -> Result<SocketAddr, Error> {
        self.add_listener(listener, listener::Mode::Tls(tls.into()))
    }

    /// Accepts SIP over WebSocket (RFC 7118) on a bound listener. The upgrade is refused with
    /// 400 unless the client offers `Sec-WebSocket-Protocol: sip`.
    pub fn add_ws(&self, listener: TcpListener) -> Result<SocketAddr, Error> {
        self.add_listener(listener, listener::Mode::Ws)
    }

    /// Accepts SIP over secure WebSocket on a bound listener.
    pub fn add_wss(
        &self,
        listener: TcpListener,
        tls: Arc<ServerConfig>,
    ) -> Result<SocketAddr, Error> {
        self.add_listener(listener, listener::Mode::Wss(tls.into()))
    }

    /// Every bound socket and listener, in the order added.
    pub fn local_addrs(&self) -> Vec<(TransportKind, SocketAddr)> {
        lock(&self.shared.bound).clone()
    }

    /// The first bound address of a transport.
    pub fn local_addr(&self, transport: TransportKind) -> Option<SocketAddr> {
        lock(&self.shared.bound)
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// Open connections (incoming and outgoing, handshakes included).
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::Acquire)
    }

    /// The addresses of an open connection; `None` for UDP flows and closed connections.
    pub fn flow_info(&self, flow: FlowId) -> Option<FlowInfo> {
        let FlowRepr::Connection(id) = flow.0 else {
            return None;
        };
        lock(&self.shared.flows).conns.get(&id).map(|h| h.info)
    }

    /// The flow between the UDP socket bound at `local` and `remote`, to send from that socket
    /// (for example a P-CSCF's protected port).
    pub fn udp_flow(&self, local: SocketAddr, remote: SocketAddr) -> Result<FlowId, Error> {
        let sockets = self
            .shared
            .udp
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        sockets
            .iter()
            .find(|e| e.local == local)
            .map(|e| FlowId::datagram(e.id, remote))
            .ok_or(Error::UnknownUdpSocket { local })
    }

    /// The target for a transaction-layer destination: its flow when it has one (a connection
    /// or a UDP socket of this transport), its transport and address otherwise.
    pub fn target_for(&self, peer: &Peer) -> Result<Target, Error> {
        let transport = TransportKind::from_sip(&peer.transport).ok_or_else(|| {
            Error::UnsupportedTransport {
                transport: peer.transport.clone(),
            }
        })?;
        let Some(flow) = peer.flow else {
            return Ok(Target::address(transport, peer.addr));
        };
        if self.shared.is_udp_socket(flow.0) {
            return Ok(Target::Flow(FlowId::datagram(flow.0, peer.addr)));
        }
        Ok(Target::Flow(FlowId::connection(flow.0)))
    }

    fn route(&self, target: &Target) -> Result<Route, Error> {
        if self.shared.token.is_cancelled() {
            return Err(Error::Shutdown);
        }
        Ok(match *target {
            Target::Flow(flow) => match flow.0 {
                FlowRepr::Datagram { socket, remote } => Route::Udp {
                    socket: Some(socket),
                    remote,
                },
                FlowRepr::Connection(id) => Route::Conn(
                    lock(&self.shared.flows)
                        .conns
                        .get(&id)
                        .cloned()
                        .ok_or(Error::FlowClosed(flow))?,
                ),
            },
            Target::Address {
                transport: TransportKind::Udp,
                remote,
            } => Route::Udp {
                socket: None,
                remote,
            },
            Target::Address { transport, remote } => Route::Connect(transport, remote),
        })
    }

    /// Sends a message.
    ///
    /// - UDP: a request larger than [`Config::udp_request_limit`] goes over TCP to the same
    ///   address instead, with the top Via transport changed to TCP (RFC 3261 §18.1.1); when
    ///   TCP is refused it goes over UDP after all. The returned [`Sent`] says which transport
    ///   was used.
    /// - Connections: Content-Length is added when missing (RFC 3261 §18.3); WebSocket
    ///   messages go out as one WebSocket message each, text unless the peer last sent binary
    ///   or the message is not UTF-8 (RFC 7118 §4.2).
    ///
    /// The message is queued on the connection; a write that later fails closes it
    /// ([`Event::FlowClosed`]).
    pub async fn send(&self, target: &Target, mut message: Message) -> Result<Sent, Error> {
        match self.route(target)? {
            Route::Udp { socket, remote } => self.send_udp(socket, remote, message).await,
            Route::Conn(handle) => {
                message.ensure_content_length()?;
                self.enqueue(&handle, message.to_bytes())
            }
            Route::Connect(transport, remote) => {
                let handle = self.connection(transport, remote).await?;
                message.ensure_content_length()?;
                self.enqueue(&handle, message.to_bytes())
            }
        }
    }

    /// Sends an encoded message, as the transaction layer produces them (retransmissions
    /// included). Stream transports need it to carry Content-Length. A UDP request above
    /// [`Config::udp_request_limit`] is parsed and handled as in [`SipTransport::send`].
    pub async fn send_bytes(&self, target: &Target, bytes: Bytes) -> Result<Sent, Error> {
        match self.route(target)? {
            Route::Udp { socket, remote } => {
                let is_request = !bytes.starts_with(b"SIP/");
                if is_request && bytes.len() > self.shared.config.udp_request_limit {
                    let message = Message::parse_with(bytes, &self.shared.config.limits)?;
                    return self.send_udp(socket, remote, message).await;
                }
                self.send_datagram(socket, remote, &bytes).await
            }
            Route::Conn(handle) => self.enqueue(&handle, bytes),
            Route::Connect(transport, remote) => {
                let handle = self.connection(transport, remote).await?;
                self.enqueue(&handle, bytes)
            }
        }
    }

    /// Sends an encoded message exactly as given: a UDP request goes out as one datagram
    /// whatever its size. For a transaction layer that applies RFC 3261 §18.1.1 itself
    /// (`imslab_sip::transaction::TransactionLayer::set_udp_size_rule`): its UDP retry after a
    /// refused TCP connection must really go over UDP.
    pub async fn send_bytes_as_is(&self, target: &Target, bytes: Bytes) -> Result<Sent, Error> {
        match self.route(target)? {
            Route::Udp { socket, remote } => self.send_datagram(socket, remote, &bytes).await,
            Route::Conn(handle) => self.enqueue(&handle, bytes),
            Route::Connect(transport, remote) => {
                let handle = self.connection(transport, remote).await?;
                self.enqueue(&handle, bytes)
            }
        }
    }

    /// Carries out the transaction layer's `Output::Transmit { to, bytes, .. }`: [`send_bytes`]
    /// to [`target_for`]`(to)`. A failure should go back to the layer as a transport error
    /// (RFC 3261 §17.1.4, §18.4).
    ///
    /// [`send_bytes`]: SipTransport::send_bytes
    /// [`target_for`]: SipTransport::target_for
    pub async fn send_to_peer(&self, to: &Peer, bytes: Bytes) -> Result<Sent, Error> {
        let target = self.target_for(to)?;
        self.send_bytes(&target, bytes).await
    }

    async fn send_udp(
        &self,
        socket: Option<u64>,
        remote: SocketAddr,
        message: Message,
    ) -> Result<Sent, Error> {
        if message.is_request() && message.encoded_len() > self.shared.config.udp_request_limit {
            let mut over_tcp = message.clone();
            via_to_tcp(&mut over_tcp)?;
            tracing::debug!(%remote, len = over_tcp.encoded_len(),
                "request too large for UDP, sending over TCP (RFC 3261 §18.1.1)");
            match self.connection(TransportKind::Tcp, remote).await {
                Ok(handle) => {
                    over_tcp.ensure_content_length()?;
                    return self.enqueue(&handle, over_tcp.to_bytes());
                }
                // §18.1.1: a TCP reset (connection refused) means retry over UDP.
                Err(Error::Connect { source, .. })
                    if source.kind() == std::io::ErrorKind::ConnectionRefused =>
                {
                    tracing::debug!(%remote, "TCP refused, sending the large request over UDP");
                }
                Err(e) => return Err(e),
            }
        }
        self.send_datagram(socket, remote, &message.to_bytes())
            .await
    }

    async fn send_datagram(
        &self,
        socket: Option<u64>,
        remote: SocketAddr,
        bytes: &Bytes,
    ) -> Result<Sent, Error> {
        let out = self.shared.udp_socket(socket, remote)?;
        udp::send(&self.shared, &out.socket, out.local, remote, bytes).await?;
        Ok(Sent {
            flow: FlowId::datagram(out.id, remote),
            transport: TransportKind::Udp,
            local: out.local,
            remote,
        })
    }

    fn enqueue(&self, handle: &ConnHandle, bytes: Bytes) -> Result<Sent, Error> {
        let flow = FlowId::connection(handle.id);
        let limit = self.shared.config.limits.max_message;
        if bytes.len() > limit {
            return Err(Error::TooLarge {
                transport: handle.info.transport,
                len: bytes.len(),
                limit,
            });
        }
        let len = bytes.len();
        let max = self.shared.config.max_queued_bytes;
        let before = handle.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > max {
            handle.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(Error::QueueFull { flow, limit: max });
        }
        if handle.tx.send(Outbound::Message(bytes)).is_err() {
            handle.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(Error::FlowClosed(flow));
        }
        Ok(Sent {
            flow,
            transport: handle.info.transport,
            local: handle.info.local,
            remote: handle.info.remote,
        })
    }

    /// An open connection to `remote` (its own address or an alias), or a new one.
    async fn connection(
        &self,
        transport: TransportKind,
        remote: SocketAddr,
    ) -> Result<ConnHandle, Error> {
        if let Some(h) = self.shared.lookup(transport, remote) {
            return Ok(h);
        }
        let key = (transport, remote);
        let gate = GateUse {
            shared: &self.shared,
            key,
            gate: Arc::clone(lock(&self.shared.connecting).entry(key).or_default()),
        };
        let _held = gate.gate.lock().await;
        if let Some(h) = self.shared.lookup(transport, remote) {
            return Ok(h);
        }
        connect::open(&self.shared, transport, remote).await
    }

    /// Makes requests to `remote` over the flow's transport use this connection (RFC 5923-style
    /// alias, for example the sent-by address of a Via with `alias`, or a UE's protected port).
    pub fn alias(&self, flow: FlowId, remote: SocketAddr) -> Result<(), Error> {
        let FlowRepr::Connection(id) = flow.0 else {
            return Err(Error::FlowClosed(flow));
        };
        let mut flows = lock(&self.shared.flows);
        let transport = flows
            .conns
            .get(&id)
            .map(|h| h.info.transport)
            .ok_or(Error::FlowClosed(flow))?;
        flows.aliases.insert((transport, remote), id);
        Ok(())
    }

    /// Sends a CRLFCRLF keep-alive ping on a connection (RFC 5626 §3.5.1, §4.4.1); the pong
    /// arrives as [`Event::Pong`]. Errors with [`Error::FlowClosed`] for closed connections and
    /// UDP flows (UDP keep-alives use STUN, which this crate does not implement).
    pub fn ping(&self, flow: FlowId) -> Result<(), Error> {
        self.outbound(flow, Outbound::Ping)
    }

    /// Closes a connection; [`Event::FlowClosed`] follows with [`CloseReason::Local`].
    pub fn close(&self, flow: FlowId) -> Result<(), Error> {
        self.outbound(flow, Outbound::Close)
    }

    fn outbound(&self, flow: FlowId, what: Outbound) -> Result<(), Error> {
        let FlowRepr::Connection(id) = flow.0 else {
            return Err(Error::FlowClosed(flow));
        };
        let handle = lock(&self.shared.flows)
            .conns
            .get(&id)
            .cloned()
            .ok_or(Error::FlowClosed(flow))?;
        handle.tx.send(what).map_err(|_| Error::FlowClosed(flow))
    }

    /// Stops every listener, socket and connection. Pending events are still readable.
    pub fn shutdown(&self) {
        self.shared.token.cancel();
    }
}

/// Changes the transport of the top Via from UDP to TCP (RFC 3261 §18.1.1).
fn via_to_tcp(message: &mut Message) -> Result<(), Error> {
    let mut via = message.top_via()?.into_owned();
    if via.transport == Transport::Udp {
        via.transport = Transport::Tcp;
        message.pop_first_value(&HeaderName::VIA);
        message.prepend_typed(HeaderName::VIA, &via)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_abandoned_connection_attempt_leaves_no_gate_behind() {
        // A server that accepts TCP but never answers the WebSocket upgrade: connecting hangs.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let (t, _events) = SipTransport::new(Config::default());
        let attempt = t.connection(TransportKind::Ws, addr);
        // The caller gives up (a transaction timer, a dropped task).
        let gave_up = tokio::time::timeout(Duration::from_millis(200), attempt).await;
        assert!(gave_up.is_err(), "the upgrade was never answered");
        assert!(
            lock(&t.shared.connecting).is_empty(),
            "the gate of an abandoned attempt stays in the map forever"
        );
        assert_eq!(t.connection_count(), 0, "its connection slot is released");
        server.abort();
    }
}
