//! [`SipNode`]: the task that owns the proxy core, and [`NodeHandle`] to talk to it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use imslab_sip::proxy::{
    ContextId, DecideOptions, Decision, Interface, InterfaceId, Proxy, ProxyConfig, ProxyEvent,
};
use imslab_sip::transaction::{ClientId, Peer, TxRef};
use imslab_sip::{HeaderName, Message};
use imslab_sip_io::{Event, Payload, SipTransport, Target, TransportKind};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::{Listen, NodeConfig, resolve_uri};
use crate::handler::{FlowClosed, Handler, Incoming, Outgoing};
use crate::order::{Admit, DecisionOrder, MAX_WAITING_PER_KEY};
use crate::{DnsResolver, Error};

/// Transport events handled per wake-up before timers and commands get a turn.
const EVENT_BATCH: usize = 64;

/// Retry-After (seconds) of the 500 refusing a request when too many of its Call-ID wait.
const OVERFLOW_RETRY_AFTER: &str = "1";

/// Tells the loop that a decision task ended without a decision, so the requests of its
/// Call-ID behind it are not stuck.
struct AbandonGuard {
    ctx: ContextId,
    /// Taken once the decision is sent.
    cmds: Option<mpsc::UnboundedSender<Cmd>>,
}

impl AbandonGuard {
    /// The decision is on its way: nothing to report.
    fn disarm(&mut self) {
        self.cmds = None;
    }
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if let Some(cmds) = self.cmds.take() {
            let _ = cmds.send(Cmd::Abandoned { ctx: self.ctx });
        }
    }
}

enum Cmd {
    Decide {
        ctx: ContextId,
        decision: Decision,
        /// Per forward target, the other servers DNS named (RFC 3263 §4.3).
        alternates: Vec<Vec<Peer>>,
        /// Applied when every branch fails (`Proxy::decide_with_fallback`).
        fallback: Option<Box<Decision>>,
        /// The rest of [`Decided`].
        routes: Vec<Option<Vec<Bytes>>>,
        fallback_routes: Vec<Option<Vec<Bytes>>>,
        no_answer: Option<std::time::Duration>,
        answer_challenges: bool,
    },
    Retry {
        ctx: ContextId,
        request: Message,
    },
    ForwardResponse {
        ctx: ContextId,
        response: Message,
    },
    Originate {
        request: Message,
        to: Peer,
        reply: oneshot::Sender<Result<Message, Error>>,
    },
    SendFailed {
        tx: TxRef,
    },
    /// A decision task ended without deciding (it panicked): the next request of its
    /// Call-ID may go.
    Abandoned {
        ctx: ContextId,
    },
}

struct Shared {
    cmds: mpsc::UnboundedSender<Cmd>,
    transport: SipTransport,
    interfaces: Vec<Interface>,
    hosts: HashMap<String, Peer>,
    dns: Option<DnsResolver>,
    /// Seeds the RFC 2782 weighted choice; moves on at every lookup.
    dns_seed: std::sync::atomic::AtomicU64,
    udp_request_limit: usize,
}

/// A cheap, cloneable handle to a running (or about to run) [`SipNode`]: originate requests,
/// resolve next hops, reach the transports.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("interfaces", &self.shared.interfaces)
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// Sends a request this element originates (a NOTIFY, a third-party REGISTER, a
    /// network-initiated de-registration) to `to` through a client transaction, and waits for
    /// its final response. The node adds the element's Via with a fresh branch; the caller
    /// builds everything else (Request-URI, Route, From with tag, To, Call-ID, CSeq,
    /// Max-Forwards, Contact, body). A timeout or transport failure is
    /// [`Error::NoResponse`] with 408 or 503.
    pub async fn request(&self, request: Message, to: Peer) -> Result<Message, Error> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .cmds
            .send(Cmd::Originate { request, to, reply })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Like [`NodeHandle::request`], resolving the destination from `next_hop` (the first
    /// Route URI, or the Request-URI) with [`NodeHandle::resolve`].
    pub async fn request_to_uri(&self, request: Message, next_hop: &str) -> Result<Message, Error> {
        let to = self
            .locate(next_hop)
            .await
            .ok_or_else(|| Error::Unresolvable {
                uri: next_hop.to_owned(),
            })?;
        self.request(request, to).await
    }

    /// The destination for a next-hop URI: an IP literal, or a name in
    /// [`NodeConfig::hosts`] (see [`crate::resolve_uri`]). No DNS: see [`NodeHandle::locate`].
    pub fn resolve(&self, uri: &str) -> Option<Peer> {
        resolve_uri(uri, &self.shared.hosts)
    }

    /// Like [`NodeHandle::resolve`], then RFC 3263 over DNS when [`NodeConfig::dns`] is set
    /// and the host is a name not in the hosts table: the first target in failover order.
    pub async fn locate(&self, uri: &str) -> Option<Peer> {
        if let Some(p) = self.resolve(uri) {
            return Some(p);
        }
        self.locate_all(uri).await.into_iter().next()
    }

    /// Fills in, by DNS, the destination of forward targets whose next hop is a host name the
    /// proxy core cannot resolve by itself (RFC 3263), with the other servers found as
    /// failover alternates per target (§4.3); other decisions pass unchanged.
    async fn locate_targets(
        &self,
        decision: Decision,
        routes: &[Option<Vec<Bytes>>],
    ) -> (Decision, Vec<Vec<Peer>>) {
        let Decision::Forward {
            request,
            mut targets,
            mode,
            record_route,
        } = decision
        else {
            return (decision, Vec::new());
        };
        let mut alternates = Vec::new();
        if self.shared.dns.is_some() {
            let route = request
                .values(&HeaderName::ROUTE)
                .next()
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(|v| v.split(',').next().unwrap_or(v).trim().to_owned());
            if targets.is_empty() {
                targets.push(imslab_sip::proxy::Target::next_hop());
            }
            for (i, t) in targets.iter_mut().enumerate() {
                let mut alt = Vec::new();
                let own = routes
                    .get(i)
                    .and_then(Option::as_ref)
                    .and_then(|r| r.first())
                    .map(|v| String::from_utf8_lossy(v).trim().to_owned());
                let hop = match (own.as_ref().or(route.as_ref()), &t.uri) {
                    (Some(r), _) => r.clone(),
                    (None, Some(u)) => String::from_utf8_lossy(u).into_owned(),
                    (None, None) => request.request_uri_str().unwrap_or_default().to_owned(),
                };
                if t.destination.is_none() && self.resolve(&hop).is_none() {
                    let mut found = self.locate_all(&hop).await.into_iter();
                    t.destination = found.next();
                    alt.extend(found);
                }
                alternates.push(alt);
            }
        }
        let decision = Decision::Forward {
            request,
            targets,
            mode,
            record_route,
        };
        (decision, alternates)
    }

    /// Every RFC 3263 target for a URI by DNS, in failover order (empty without DNS).
    async fn locate_all(&self, uri: &str) -> Vec<Peer> {
        let Some(dns) = self.shared.dns.as_ref() else {
            return Vec::new();
        };
        let seed = self
            .shared
            .dns_seed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        dns.locate_text(uri, seed)
            .await
            .into_iter()
            .map(|t| Peer::new(t.transport, t.addr))
            .collect()
    }

    /// The interfaces, in [`NodeConfig::listen`] order, with their bound addresses.
    pub fn interfaces(&self) -> &[Interface] {
        &self.shared.interfaces
    }

    /// The bound address of the first interface of a transport.
    pub fn local_addr(&self, transport: TransportKind) -> Option<SocketAddr> {
        self.shared
            .interfaces
            .iter()
            .find(|i| i.transport == transport.to_sip())
            .map(|i| i.addr)
    }

    /// A SIP URI for this element (`sip:host:port`, with `;transport=tcp` and so on for
    /// transports other than UDP): the advertised name or the bound address of the first
    /// interface of `transport`.
    pub fn uri(&self, transport: TransportKind) -> Option<String> {
        let i = self
            .shared
            .interfaces
            .iter()
            .find(|i| i.transport == transport.to_sip())?;
        let host = match &i.advertise {
            Some(h) => h.clone(),
            None if i.addr.is_ipv6() => format!("[{}]", i.addr.ip()),
            None => i.addr.ip().to_string(),
        };
        let param = match transport {
            TransportKind::Udp => String::new(),
            t => format!(";transport={}", t.via_token().to_ascii_lowercase()),
        };
        Some(format!("sip:{host}:{}{param}", i.addr.port()))
    }

    /// The transports, for connection aliases, keep-alive pings and closing flows.
    pub fn transport(&self) -> &SipTransport {
        &self.shared.transport
    }
}

/// One SIP element: its sockets, its RFC 3261 §16 proxy core and timers, driven by one task
/// that hands requests and responses to a [`Handler`].
pub struct SipNode {
    handle: NodeHandle,
    events: mpsc::Receiver<Event>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    proxy: Proxy,
    iface_by_local: HashMap<(TransportKind, SocketAddr), InterfaceId>,
}

impl std::fmt::Debug for SipNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipNode")
            .field("interfaces", &self.handle.shared.interfaces)
            .finish_non_exhaustive()
    }
}

async fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, Error> {
    UdpSocket::bind(addr).await.map_err(|source| Error::Bind {
        transport: TransportKind::Udp,
        addr,
        source,
    })
}

async fn bind_tcp(
    transport: TransportKind,
    addr: SocketAddr,
    prefer_port: Option<u16>,
) -> Result<TcpListener, Error> {
    if let Some(port) = prefer_port.filter(|_| addr.port() == 0)
        && let Ok(l) = TcpListener::bind(SocketAddr::new(addr.ip(), port)).await
    {
        return Ok(l);
    }
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        transport,
        addr,
        source,
    })
}

impl SipNode {
    /// Binds every socket of `cfg.listen` (errors name the address) and prepares the proxy
    /// core. Nothing is processed until [`SipNode::run`]; requests sent through
    /// [`SipNode::handle`] before that wait in a queue.
    pub async fn bind(cfg: NodeConfig) -> Result<Self, Error> {
        if cfg.listen.is_empty() {
            return Err(Error::NoListener);
        }
        let (transport, events) = SipTransport::new(cfg.transport.clone());
        let mut interfaces = Vec::new();
        let mut udp_ports: HashMap<std::net::IpAddr, u16> = HashMap::new();
        for l in &cfg.listen {
            let kind = l.transport();
            let addr = l.addr();
            let prefer = udp_ports.get(&addr.ip()).copied();
            let local = match l {
                Listen::Udp(a) => {
                    let local = transport.add_udp(bind_udp(*a).await?)?;
                    udp_ports.entry(local.ip()).or_insert_with(|| local.port());
                    local
                }
                Listen::Tcp(a) => transport.add_tcp(bind_tcp(kind, *a, prefer).await?)?,
                Listen::Tls(a, tls) => {
                    transport.add_tls(bind_tcp(kind, *a, prefer).await?, Arc::clone(tls))?
                }
                Listen::Ws(a) => transport.add_ws(bind_tcp(kind, *a, prefer).await?)?,
                Listen::Wss(a, tls) => {
                    transport.add_wss(bind_tcp(kind, *a, prefer).await?, Arc::clone(tls))?
                }
            };
            interfaces.push(Interface {
                transport: kind.to_sip(),
                addr: local,
                advertise: cfg.advertise.clone(),
            });
        }
        let iface_by_local = interfaces
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                TransportKind::from_sip(&f.transport).map(|k| ((k, f.addr), InterfaceId(i)))
            })
            .collect();
        let mut pc = ProxyConfig::new(interfaces[0].clone());
        pc.interfaces.clone_from(&interfaces);
        pc.aliases.clone_from(&cfg.aliases);
        pc.supported.clone_from(&cfg.supported);
        pc.hosts.clone_from(&cfg.hosts);
        pc.timer_c = cfg.timer_c;
        pc.loop_detection = cfg.loop_detection;
        let mut proxy = Proxy::new(pc, cfg.timers, cfg.seed);
        // The transaction layer applies §18.1.1 (large UDP requests over TCP, UDP again when
        // TCP is refused) with the transport's threshold.
        proxy.set_path_mtu(cfg.transport.udp_request_limit.saturating_add(200));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            cmds: cmd_tx,
            transport,
            interfaces,
            hosts: cfg.hosts,
            dns: cfg.dns.as_ref().map(DnsResolver::new),
            dns_seed: std::sync::atomic::AtomicU64::new(cfg.seed),
            udp_request_limit: cfg.transport.udp_request_limit,
        });
        Ok(Self {
            handle: NodeHandle { shared },
            events,
            cmds: cmd_rx,
            proxy,
            iface_by_local,
        })
    }

    /// A handle for originating requests and reading addresses.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Every bound socket, in [`NodeConfig::listen`] order.
    pub fn local_addrs(&self) -> Vec<(TransportKind, SocketAddr)> {
        self.handle.shared.transport.local_addrs()
    }

    /// Runs the element until `shutdown` is cancelled, then closes every socket and returns at
    /// once. Requests still waiting for a response fail with [`Error::Stopped`].
    pub async fn run<H: Handler>(
        self,
        handler: H,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let mut lp = Loop {
            handle: self.handle,
            proxy: self.proxy,
            handler: Arc::new(handler),
            iface_by_local: self.iface_by_local,
            uac: HashMap::new(),
            responses: HashMap::new(),
            order: DecisionOrder::new(MAX_WAITING_PER_KEY),
            work: VecDeque::new(),
        };
        let mut events = self.events;
        let mut cmds = self.cmds;
        loop {
            let deadline = lp.proxy.poll_timeout().map(tokio::time::Instant::from_std);
            // Each turn takes a batch of transport events and of commands, then fires due
            // timers, so that none of the three starves the others under load.
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                ev = events.recv() => {
                    let Some(ev) = ev else { break };
                    lp.on_transport(ev).await;
                    for _ in 0..EVENT_BATCH {
                        match events.try_recv() {
                            Ok(ev) => lp.on_transport(ev).await,
                            Err(_) => break,
                        }
                    }
                }
                cmd = cmds.recv() => {
                    // The loop holds a sender through its handle: never `None` here.
                    if let Some(cmd) = cmd {
                        lp.on_cmd(cmd).await;
                    }
                }
                () = sleep_until(deadline) => {}
            }
            for _ in 0..EVENT_BATCH {
                match cmds.try_recv() {
                    Ok(cmd) => lp.on_cmd(cmd).await,
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            if lp.proxy.poll_timeout().is_some_and(|t| t <= now) {
                let ev = lp.proxy.handle_timeout(now);
                lp.process(ev).await;
            }
        }
        lp.handle.shared.transport.shutdown();
        Ok(())
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct Loop<H> {
    handle: NodeHandle,
    proxy: Proxy,
    handler: Arc<H>,
    iface_by_local: HashMap<(TransportKind, SocketAddr), InterfaceId>,
    uac: HashMap<ClientId, oneshot::Sender<Result<Message, Error>>>,
    /// Responses waiting for [`Handler::on_response`], per context; the flag says one is being
    /// handled.
    responses: HashMap<ContextId, (bool, VecDeque<Message>)>,
    /// Requests of one Call-ID are decided one at a time, in arrival order.
    order: DecisionOrder<ContextId, Box<str>, Incoming>,
    work: VecDeque<ProxyEvent>,
}

impl<H: Handler> Loop<H> {
    fn iface_for(&self, transport: TransportKind, local: SocketAddr) -> InterfaceId {
        if let Some(i) = self.iface_by_local.get(&(transport, local)) {
            return *i;
        }
        self.handle
            .shared
            .interfaces
            .iter()
            .position(|i| i.transport == transport.to_sip() && i.addr.ip() == local.ip())
            .or_else(|| {
                self.handle
                    .shared
                    .interfaces
                    .iter()
                    .position(|i| i.transport == transport.to_sip())
            })
            .map_or(InterfaceId(0), InterfaceId)
    }

    async fn on_transport(&mut self, ev: Event) {
        match ev {
            Event::Received(rx) => {
                let iface = self.iface_for(rx.transport, rx.local);
                let peer = rx.peer();
                match rx.payload {
                    Payload::Message(msg) => {
                        let ev = self.proxy.handle_message(Instant::now(), msg, peer, iface);
                        self.process(ev).await;
                    }
                    Payload::Invalid {
                        parsed: Some(req),
                        error,
                        ..
                    } if req.is_request() => {
                        // Parsed but unusable (a stream message without Content-Length): 400.
                        if let Ok(resp) = req.response(error.status_code(), None) {
                            let target = Target::Flow(rx.flow);
                            if let Err(e) = self.handle.shared.transport.send(&target, resp).await {
                                tracing::debug!(error = %e, "cannot answer an invalid request");
                            }
                        }
                    }
                    Payload::Invalid {
                        raw,
                        parsed: None,
                        error,
                    } if rx.transport != TransportKind::Udp => {
                        // Framed but unparseable on a stream or WebSocket flow: 400 when the
                        // request names enough to be answered (RFC 3261 §16.3 step 1, §21.4.1).
                        match imslab_sip::validate::answer_unparseable(&raw) {
                            Some(resp) => {
                                let target = Target::Flow(rx.flow);
                                if let Err(e) =
                                    self.handle.shared.transport.send(&target, resp).await
                                {
                                    tracing::debug!(error = %e, "cannot answer an invalid request");
                                }
                            }
                            None => tracing::debug!(source = %rx.source, error = %error,
                                "dropped an undecodable message"),
                        }
                    }
                    Payload::Invalid { error, .. } => {
                        tracing::debug!(source = %rx.source, error = %error, "dropped an undecodable message");
                    }
                }
            }
            Event::FlowClosed {
                flow,
                transport,
                remote,
                reason,
            } => {
                if matches!(reason, imslab_sip_io::CloseReason::Unreachable(_)) {
                    let ev = self.proxy.handle_unreachable(Instant::now(), remote);
                    self.process(ev).await;
                }
                self.handler.on_flow_closed(FlowClosed {
                    flow: flow.transaction_flow(),
                    transport,
                    remote,
                    reason,
                });
            }
            Event::Pong { .. } => {}
        }
    }

    async fn on_cmd(&mut self, cmd: Cmd) {
        let now = Instant::now();
        match cmd {
            Cmd::Decide {
                ctx,
                decision,
                alternates,
                fallback,
                routes,
                fallback_routes,
                no_answer,
                answer_challenges,
            } => {
                let opts = DecideOptions::default()
                    .alternates(alternates)
                    .fallback(fallback.map(|f| *f))
                    .fallback_routes(fallback_routes)
                    .routes(routes)
                    .no_answer(no_answer)
                    .answer_challenges(answer_challenges);
                match self.proxy.decide_with(now, ctx, decision, opts) {
                    Ok(ev) => self.process(ev).await,
                    Err(e) => tracing::debug!(?ctx, error = %e, "decision for a finished context"),
                }
                self.next_decision(ctx);
            }
            Cmd::Retry { ctx, request } => match self.proxy.retry(now, ctx, request) {
                Ok(ev) => self.process(ev).await,
                Err(e) => tracing::debug!(?ctx, error = %e, "retry for a finished context"),
            },
            Cmd::ForwardResponse { ctx, response } => {
                match self.proxy.forward_response(now, ctx, response) {
                    Ok(ev) => self.process(ev).await,
                    Err(e) => tracing::debug!(?ctx, error = %e, "response for a finished context"),
                }
                self.next_response(ctx);
            }
            Cmd::Originate {
                mut request,
                to,
                reply,
            } => {
                let via = self.proxy.via_for(&to);
                if let Err(e) = request.prepend_typed(HeaderName::VIA, &via) {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
                if let Err(e) = request.ensure_content_length() {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
                match self.proxy.send_request(now, request, to) {
                    Ok((id, ev)) => {
                        self.uac.insert(id, reply);
                        self.process(ev).await;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Cmd::SendFailed { tx } => {
                let ev = self.proxy.handle_transport_error(now, tx);
                self.process(ev).await;
            }
            Cmd::Abandoned { ctx } => self.next_decision(ctx),
        }
    }

    /// Acts on proxy events until none are left (acting may produce more).
    async fn process(&mut self, events: Vec<ProxyEvent>) {
        self.work.extend(events);
        while let Some(ev) = self.work.pop_front() {
            match ev {
                ProxyEvent::Transmit { to, bytes, tx } => self.transmit(to, bytes, tx).await,
                ProxyEvent::Request {
                    ctx,
                    request,
                    from,
                    iface,
                    stateless,
                } => {
                    let interface = self
                        .handle
                        .shared
                        .interfaces
                        .get(iface.0)
                        .or_else(|| self.handle.shared.interfaces.first())
                        .cloned();
                    let Some(interface) = interface else { continue };
                    let incoming = Incoming {
                        ctx,
                        request,
                        consumed_routes: self.proxy.consumed_routes(ctx).to_vec(),
                        from,
                        iface,
                        interface,
                        stateless,
                    };
                    self.admit(incoming);
                }
                ProxyEvent::Response { ctx, response } => {
                    if let Some(status) = response.status().filter(|s| s.is_final()) {
                        self.handler.on_final_response(ctx, status);
                    }
                    if let Some(request) = self.proxy.challenge_pending(ctx) {
                        // The handler answers the challenge (a retry) or lets it go upstream.
                        let handler = Arc::clone(&self.handler);
                        let cmds = self.handle.shared.cmds.clone();
                        tokio::spawn(async move {
                            let cmd = match handler.on_challenge(ctx, request, &response) {
                                Some(request) => Cmd::Retry { ctx, request },
                                None => {
                                    let response = if handler.wants_responses() {
                                        handler.on_response(Outgoing { ctx, response }).await
                                    } else {
                                        response
                                    };
                                    Cmd::ForwardResponse { ctx, response }
                                }
                            };
                            let _ = cmds.send(cmd);
                        });
                    } else if self.handler.wants_responses() {
                        let entry = self.responses.entry(ctx).or_default();
                        entry.1.push_back(response);
                        if !entry.0 {
                            self.next_response_start(ctx);
                        }
                    } else {
                        match self.proxy.forward_response(Instant::now(), ctx, response) {
                            Ok(ev) => self.work.extend(ev),
                            Err(e) => tracing::debug!(?ctx, error = %e, "cannot forward response"),
                        }
                    }
                }
                ProxyEvent::Cancelled { ctx } => self.handler.on_cancelled(ctx),
                ProxyEvent::Rejected { status, error } => {
                    tracing::debug!(%status, error = %error, "request refused by the proxy core");
                    self.handler.on_rejected(status, &error);
                }
                ProxyEvent::UacResponse { id, response } => {
                    if response.status().is_some_and(|s| s.is_final())
                        && let Some(reply) = self.uac.remove(&id)
                    {
                        let _ = reply.send(Ok(response));
                    }
                }
                ProxyEvent::UacFailed { id, status } => {
                    if let Some(reply) = self.uac.remove(&id) {
                        let _ = reply.send(Err(Error::NoResponse { status }));
                    }
                }
                ProxyEvent::Finished { ctx } => {
                    if self.responses.get(&ctx).is_some_and(|(busy, _)| !busy) {
                        self.responses.remove(&ctx);
                    }
                }
            }
        }
        for (ctx, status) in self.proxy.take_fallbacks_applied() {
            self.handler.on_fallback_applied(ctx, status);
        }
    }

    /// A new request: to the handler now, or behind the request of its Call-ID being decided
    /// ([`DecisionOrder`]). A CANCEL never waits: the core answers a CANCEL of a known INVITE
    /// itself (§16.10), and one that matches nothing is hop-by-hop and unrelated to the
    /// requests of its Call-ID that are being decided.
    fn admit(&mut self, incoming: Incoming) {
        let key = match incoming.request.method() {
            Some(imslab_sip::Method::Cancel) | None => None,
            Some(_) => incoming
                .request
                .call_id()
                .ok()
                .map(|c| Box::<str>::from(c.as_str())),
        };
        let ctx = incoming.ctx;
        match self.order.admit(ctx, key, incoming) {
            Admit::Start(incoming) => self.spawn_decision(incoming),
            Admit::Queued => {}
            Admit::Full(incoming) => self.refuse_overflow(incoming),
        }
    }

    /// Too many requests of one Call-ID wait already: 500 with Retry-After (RFC 3261 §21.5.1,
    /// as §14.2 answers a request that cannot be taken now because of another one in the same
    /// dialog). Not 503: that would make the previous hop fail this whole server over (RFC 3263
    /// §4.3) for the doing of one call. An ACK is dropped (it cannot be answered).
    fn refuse_overflow(&mut self, incoming: Incoming) {
        let ctx = incoming.ctx;
        tracing::debug!(?ctx, call_id = ?incoming.request.call_id().ok().map(|c| c.as_str().to_owned()),
            "too many requests of one Call-ID waiting for a decision");
        // For an ACK the core drops the answer and the context ends: it is not forwarded.
        let Ok(mut resp) = incoming
            .request
            .response(imslab_sip::StatusCode::SERVER_INTERNAL_ERROR, None)
        else {
            return;
        };
        if resp
            .set_header(HeaderName::RETRY_AFTER, OVERFLOW_RETRY_AFTER)
            .is_err()
        {
            return;
        }
        match self
            .proxy
            .decide(Instant::now(), ctx, Decision::Respond(resp))
        {
            Ok(ev) => self.work.extend(ev),
            Err(e) => tracing::debug!(?ctx, error = %e, "cannot refuse a request"),
        }
    }

    /// The decision for `ctx` is applied: hand the next request of its Call-ID to the handler.
    fn next_decision(&mut self, ctx: ContextId) {
        if let Some((_, incoming)) = self.order.decided(ctx) {
            self.spawn_decision(incoming);
        }
    }

    /// Runs the handler (and DNS for its targets) on a request in a task of its own; the
    /// decision comes back as [`Cmd::Decide`], or [`Cmd::Abandoned`] if the task dies.
    fn spawn_decision(&self, incoming: Incoming) {
        let ctx = incoming.ctx;
        let handler = Arc::clone(&self.handler);
        let node = self.handle.clone();
        let mut guard = AbandonGuard {
            ctx,
            cmds: Some(node.shared.cmds.clone()),
        };
        tokio::spawn(async move {
            let decided = handler
                .on_request_with_fallback(incoming, node.clone())
                .await;
            let (decision, alternates) =
                node.locate_targets(decided.decision, &decided.routes).await;
            let fallback = match decided.fallback {
                Some(f) => Some(Box::new(
                    node.locate_targets(f, &decided.fallback_routes).await.0,
                )),
                None => None,
            };
            guard.disarm();
            let _ = node.shared.cmds.send(Cmd::Decide {
                ctx,
                decision,
                alternates,
                fallback,
                routes: decided.routes,
                fallback_routes: decided.fallback_routes,
                no_answer: decided.no_answer,
                answer_challenges: decided.answer_challenges,
            });
        });
    }

    /// Starts the handler on the next queued response of `ctx`.
    fn next_response_start(&mut self, ctx: ContextId) {
        let Some(entry) = self.responses.get_mut(&ctx) else {
            return;
        };
        let Some(response) = entry.1.pop_front() else {
            self.responses.remove(&ctx);
            return;
        };
        entry.0 = true;
        let handler = Arc::clone(&self.handler);
        let cmds = self.handle.shared.cmds.clone();
        tokio::spawn(async move {
            let response = handler.on_response(Outgoing { ctx, response }).await;
            let _ = cmds.send(Cmd::ForwardResponse { ctx, response });
        });
    }

    /// The handler finished a response of `ctx`: start the next one, if any.
    fn next_response(&mut self, ctx: ContextId) {
        if let Some(entry) = self.responses.get_mut(&ctx) {
            entry.0 = false;
        }
        self.next_response_start(ctx);
    }

    async fn transmit(&mut self, to: Peer, bytes: Bytes, tx: Option<TxRef>) {
        let transport = self.handle.shared.transport.clone();
        let target = match transport.target_for(&to) {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(to = %to.addr, error = %e, "cannot send");
                if let Some(tx) = tx {
                    let ev = self.proxy.handle_transport_error(Instant::now(), tx);
                    self.work.extend(ev);
                }
                return;
            }
        };
        // The proxy's transaction layer already chose TCP for requests too large for UDP
        // (§18.1.1); what it sends to a UDP target is meant as a datagram (its retry after a
        // refused connection included).
        let layer_sizes = self.proxy.layer().udp_size_limit().is_some();
        if layer_sizes && to.transport == imslab_sip::header::Transport::Udp {
            if let Err(e) = transport.send_bytes_as_is(&target, bytes).await {
                tracing::debug!(to = %to.addr, error = %e, "send failed");
                if let Some(tx) = tx {
                    let ev = self.proxy.handle_transport_error(Instant::now(), tx);
                    self.work.extend(ev);
                }
            }
            return;
        }
        // Sending over a flow or a small UDP datagram never waits for long; opening a
        // connection (also for a UDP request too large for UDP, RFC 3261 §18.1.1) may.
        let datagram_ok =
            bytes.len() <= self.handle.shared.udp_request_limit || bytes.starts_with(b"SIP/");
        let inline = match target {
            Target::Flow(f) => f.is_connection() || datagram_ok,
            Target::Address { transport: t, .. } => t == TransportKind::Udp && datagram_ok,
        };
        if inline {
            if let Err(e) = transport.send_bytes(&target, bytes).await {
                tracing::debug!(to = %to.addr, error = %e, "send failed");
                if let Some(tx) = tx {
                    let ev = self.proxy.handle_transport_error(Instant::now(), tx);
                    self.work.extend(ev);
                }
            }
            return;
        }
        let cmds = self.handle.shared.cmds.clone();
        tokio::spawn(async move {
            if let Err(e) = transport.send_bytes(&target, bytes).await {
                tracing::debug!(to = %to.addr, error = %e, "send failed");
                if let Some(tx) = tx {
                    let _ = cmds.send(Cmd::SendFailed { tx });
                }
            }
        });
    }
}
