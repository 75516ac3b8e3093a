//! RFC 3261 §17 transactions as pure state machines, and a [`TransactionLayer`] that matches
//! messages to them.
//!
//! # Using the layer
//!
//! The transport driver (`imslab-sip-io`) owns one [`TransactionLayer`] per SIP endpoint and
//! calls, always passing the current time:
//!
//! - [`TransactionLayer::handle_message`] for every parsed message received, with the [`Peer`]
//!   it came from;
//! - [`TransactionLayer::send_request`] / [`TransactionLayer::send_response`] for what the
//!   transaction user (TU: a CSCF's proxy core, the soft UE) sends;
//! - [`TransactionLayer::handle_timeout`] when the clock reaches
//!   [`TransactionLayer::poll_timeout`] (spurious early calls are harmless);
//! - [`TransactionLayer::handle_transport_error`] when sending failed.
//!
//! Each returns the [`Output`]s to act on: bytes to transmit to a peer, and events for the TU.
//! Re-arm the timer from `poll_timeout` after every call.
//!
//! Retransmission timers run only on unreliable transports (UDP); on reliable ones timers D, I,
//! J and K are zero, so transactions end as soon as their final exchange is done (§17.1.1.2).
//! INVITE transactions include the Accepted state of RFC 6026 (timers L and M): after a 2xx the
//! server transaction absorbs INVITE retransmissions and the client transaction passes further
//! 2xx responses up, instead of both ending at once as RFC 3261 had it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::header::{CSeq, Transport, Via};
use crate::{Error, HeaderName, Message, Method};

mod fsm;

pub use fsm::{Action, ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite};

/// Transaction states, named as in RFC 3261 §17 (and RFC 6026 for Accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Client INVITE, request sent, no response yet.
    Calling,
    /// Client or server non-INVITE, no provisional response yet.
    Trying,
    /// A provisional response was received (client) or sent (server).
    Proceeding,
    /// A final non-2xx response was received or sent; absorbing retransmissions.
    Completed,
    /// Server INVITE: the ACK arrived.
    Confirmed,
    /// INVITE: a 2xx was received or sent (RFC 6026).
    Accepted,
    /// Done; the layer forgets the transaction.
    Terminated,
}

impl State {
    /// The RFC name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Calling => "Calling",
            Self::Trying => "Trying",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Confirmed => "Confirmed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

/// Timer base values (RFC 3261 §17.1.1.1, Table 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, default 500 ms. Timers A, E, G start at T1; B, F, H, J, L, M are 64×T1.
    pub t1: Duration,
    /// Maximum retransmission interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, default 5 s: timers I and K.
    pub t4: Duration,
    /// Timer D, how long a client INVITE transaction absorbs response retransmissions on an
    /// unreliable transport; at least 32 s (§17.1.1.2).
    pub timer_d: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
        }
    }
}

/// A transport-level connection or socket the driver knows by number, so responses and requests
/// back to the same flow reuse it (RFC 3261 §18.2.2, RFC 5626).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

/// Where a message came from or goes to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport.
    pub transport: Transport,
    /// The remote address.
    pub addr: SocketAddr,
    /// The flow it arrived on (stream connections, or the local socket for UDP).
    pub flow: Option<FlowId>,
}

impl Peer {
    /// A peer without flow.
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        Self {
            transport,
            addr,
            flow: None,
        }
    }
}

/// A client transaction's identifier within its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

/// A server transaction's identifier within its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(u64);

/// Either kind of transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxRef {
    /// A client transaction.
    Client(ClientId),
    /// A server transaction.
    Server(ServerId),
}

/// What the layer asks the driver and the TU to do.
#[derive(Debug)]
pub enum Output {
    /// Send `bytes` to `to`.
    Transmit {
        /// The destination.
        to: Peer,
        /// The encoded message.
        bytes: Bytes,
        /// The transaction sending it, if any.
        tx: Option<TxRef>,
    },
    /// A new request for the TU. `id` is its server transaction; `None` for an ACK that matched no
    /// transaction (the ACK of a 2xx, §17.1.1.3), which the TU handles or forwards statelessly.
    Request {
        /// The server transaction to answer through.
        id: Option<ServerId>,
        /// The request.
        request: Message,
        /// Where it came from.
        from: Peer,
        /// For a CANCEL: the INVITE server transaction it matches (§9.2), if any.
        cancels: Option<ServerId>,
    },
    /// A response for a client transaction.
    Response {
        /// The transaction.
        id: ClientId,
        /// The response.
        response: Message,
    },
    /// A response that matched no client transaction (§17.1.3); a proxy forwards 2xx statelessly.
    StrayResponse {
        /// The response.
        response: Message,
        /// Where it came from.
        from: Peer,
    },
    /// Timer B or F fired: treat as a 408 (§16.7 step 1; §8.1.3.1).
    Timeout {
        /// The transaction.
        id: ClientId,
    },
    /// Timer H fired: the ACK for a non-2xx final response never arrived.
    AckTimeout {
        /// The transaction.
        id: ServerId,
    },
    /// Sending failed (§17.1.4, §17.2.4); a client transaction's TU treats it as a 503.
    TransportError {
        /// The transaction.
        tx: TxRef,
    },
    /// The transaction reached Terminated and was removed.
    Terminated {
        /// The transaction.
        tx: TxRef,
    },
}

/// The method part of a transaction key: ACK and CANCEL have their own rules (§17.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum MethodKey {
    Invite,
    Cancel,
    Other(Method),
}

impl MethodKey {
    fn of(m: &Method) -> Self {
        match m {
            Method::Invite | Method::Ack => Self::Invite,
            Method::Cancel => Self::Cancel,
            other => Self::Other(other.clone()),
        }
    }
}

/// §17.2.3 server transaction key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ServerKey {
    /// Branch with the magic cookie, sent-by, method.
    Rfc3261 {
        branch: Box<str>,
        host: Box<str>,
        port: Option<u16>,
        method: MethodKey,
    },
    /// RFC 2543 matching: Request-URI, From tag, Call-ID, CSeq number, top Via, method.
    Rfc2543 {
        ruri: Bytes,
        from_tag: Option<Box<str>>,
        call_id: Box<str>,
        cseq: u32,
        via: Bytes,
        method: MethodKey,
    },
}

impl ServerKey {
    fn of(msg: &Message, method: &Method) -> Result<Self, Error> {
        let via: Via<'_> = msg.top_via()?;
        let cseq: CSeq = msg.cseq()?;
        let method = MethodKey::of(method);
        if via.has_rfc3261_branch() {
            return Ok(Self::Rfc3261 {
                branch: via.branch().unwrap_or_default().into(),
                host: via.host.to_string().to_ascii_lowercase().into(),
                port: via.port,
                method,
            });
        }
        let from = msg.from_header()?;
        Ok(Self::Rfc2543 {
            ruri: Bytes::copy_from_slice(msg.request_uri_raw().unwrap_or_default()),
            from_tag: from.tag().map(Into::into),
            call_id: msg.call_id()?.as_str().into(),
            cseq: cseq.seq,
            via: Bytes::copy_from_slice(msg.values(&HeaderName::VIA).next().unwrap_or_default()),
            method,
        })
    }

    fn with_method(&self, method: MethodKey) -> Self {
        let mut k = self.clone();
        match &mut k {
            Self::Rfc3261 { method: m, .. } | Self::Rfc2543 { method: m, .. } => *m = method,
        }
        k
    }
}

/// §17.1.3 client transaction key: branch and CSeq method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: Box<str>,
    method: MethodKey,
}

impl ClientKey {
    fn of(msg: &Message) -> Result<Self, Error> {
        let via: Via<'_> = msg.top_via()?;
        let cseq: CSeq = msg.cseq()?;
        let branch = via.branch().ok_or(Error::InvalidHeader {
            header: "Via",
            at: 0,
        })?;
        Ok(Self {
            branch: branch.into(),
            method: MethodKey::of(&cseq.method),
        })
    }
}

enum ClientFsm {
    Invite(Box<ClientInvite>),
    NonInvite(ClientNonInvite),
}

struct ClientTx {
    key: ClientKey,
    to: Peer,
    fsm: ClientFsm,
    /// The request as it would have gone over UDP, kept while a request moved to TCP by the
    /// size rule of §18.1.1 may still fall back to UDP.
    udp_fallback: Option<Box<Message>>,
}

enum ServerFsm {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

struct ServerTx {
    key: ServerKey,
    respond_to: Peer,
    /// The To tag of the last response sent, for RFC 2543 ACK matching.
    to_tag: Option<Box<str>>,
    fsm: ServerFsm,
}

impl ClientTx {
    fn state(&self) -> State {
        match &self.fsm {
            ClientFsm::Invite(f) => f.state(),
            ClientFsm::NonInvite(f) => f.state(),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match &self.fsm {
            ClientFsm::Invite(f) => f.poll_timeout(),
            ClientFsm::NonInvite(f) => f.poll_timeout(),
        }
    }
}

impl ServerTx {
    fn state(&self) -> State {
        match &self.fsm {
            ServerFsm::Invite(f) => f.state(),
            ServerFsm::NonInvite(f) => f.state(),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match &self.fsm {
            ServerFsm::Invite(f) => f.poll_timeout(),
            ServerFsm::NonInvite(f) => f.poll_timeout(),
        }
    }
}

/// All transactions of one SIP endpoint, matched by the rules of §17.1.3 and §17.2.3.
pub struct TransactionLayer {
    cfg: TimerConfig,
    auto_trying: bool,
    next_id: u64,
    clients: HashMap<ClientId, ClientTx>,
    servers: HashMap<ServerId, ServerTx>,
    client_index: HashMap<ClientKey, ClientId>,
    server_index: HashMap<ServerKey, ServerId>,
    timers: BinaryHeap<Reverse<(Instant, TxRef)>>,
    udp_limit: Option<usize>,
}

impl fmt::Debug for TransactionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionLayer")
            .field("clients", &self.clients.len())
            .field("servers", &self.servers.len())
            .finish()
    }
}

impl TransactionLayer {
    /// A layer with these timers. Server INVITE transactions answer `100 Trying` at once
    /// (§17.2.1); turn that off with [`TransactionLayer::set_auto_trying`].
    pub fn new(cfg: TimerConfig) -> Self {
        Self {
            cfg,
            auto_trying: true,
            next_id: 1,
            clients: HashMap::new(),
            servers: HashMap::new(),
            client_index: HashMap::new(),
            server_index: HashMap::new(),
            timers: BinaryHeap::new(),
            udp_limit: None,
        }
    }

    /// Turns on the message size rule of RFC 3261 §18.1.1 for requests toward UDP targets: a
    /// request longer than 1300 bytes, or within 200 bytes of `path_mtu` when it is known, goes
    /// over TCP instead (top Via transport TCP, no retransmission timers). Call it when the
    /// element can open TCP connections. If that connection then fails
    /// ([`TransactionLayer::handle_send_failure`]), the request is retried over UDP.
    pub fn set_udp_size_rule(&mut self, path_mtu: Option<usize>) {
        self.udp_limit = Some(path_mtu.map_or(1300, |m| m.saturating_sub(200)));
    }

    /// The size above which a request toward a UDP target goes over TCP, if the rule is on.
    pub fn udp_size_limit(&self) -> Option<usize> {
        self.udp_limit
    }

    /// Whether new INVITE server transactions send `100 Trying` themselves.
    pub fn set_auto_trying(&mut self, on: bool) {
        self.auto_trying = on;
    }

    /// The timer configuration.
    pub fn timers(&self) -> &TimerConfig {
        &self.cfg
    }

    /// Number of live client and server transactions.
    pub fn counts(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    /// The state of a transaction; `None` once it is gone.
    pub fn state(&self, tx: TxRef) -> Option<State> {
        match tx {
            TxRef::Client(id) => self.clients.get(&id).map(ClientTx::state),
            TxRef::Server(id) => self.servers.get(&id).map(ServerTx::state),
        }
    }

    /// The earliest instant at which [`TransactionLayer::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Starts a client transaction for `request`, whose top Via carries a fresh RFC 3261 branch
    /// (§8.1.1.7), and sends it to `to`. ACK is not a transaction: send it with
    /// [`TransactionLayer::send_stateless`].
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Message,
        to: Peer,
    ) -> Result<(ClientId, Vec<Output>), Error> {
        let method = request.method().cloned().ok_or(Error::WrongKind {
            expected: "request",
        })?;
        if method == Method::Ack {
            return Err(Error::TransactionState {
                state: "none (ACK has no transaction)",
            });
        }
        let key = ClientKey::of(&request)?;
        let id = ClientId(self.bump());
        let (request, to, udp_fallback) = self.apply_size_rule(request, to);
        let udp_fallback = udp_fallback.map(Box::new);
        let reliable = to.transport.is_reliable();
        let (fsm, actions) = if method == Method::Invite {
            let (f, a) = ClientInvite::new(now, request, reliable, self.cfg);
            (ClientFsm::Invite(Box::new(f)), a)
        } else {
            let (f, a) = ClientNonInvite::new(now, &request, reliable, self.cfg);
            (ClientFsm::NonInvite(f), a)
        };
        self.client_index.insert(key.clone(), id);
        self.clients.insert(
            id,
            ClientTx {
                key,
                to,
                fsm,
                udp_fallback,
            },
        );
        let mut out = Vec::new();
        self.client_actions(id, actions, &mut out);
        self.after(TxRef::Client(id), &mut out);
        Ok((id, out))
    }

    /// Sends a response through a server transaction.
    pub fn send_response(
        &mut self,
        now: Instant,
        id: ServerId,
        response: &Message,
    ) -> Result<Vec<Output>, Error> {
        let tx = self.servers.get_mut(&id).ok_or(Error::UnknownTransaction)?;
        let actions = match &mut tx.fsm {
            ServerFsm::Invite(f) => f.send_response(now, response)?,
            ServerFsm::NonInvite(f) => f.send_response(now, response)?,
        };
        if response.status().is_some_and(|c| c.is_final())
            && let Ok(to) = response.to_header()
        {
            tx.to_tag = to.tag().map(Into::into);
        }
        let mut out = Vec::new();
        self.server_actions(id, actions, &mut out);
        self.after(TxRef::Server(id), &mut out);
        Ok(out)
    }

    /// Sends a message outside any transaction: the ACK of a 2xx, a stateless response, or a
    /// 2xx forwarded statelessly by a proxy.
    pub fn send_stateless(&self, message: &Message, to: Peer) -> Output {
        Output::Transmit {
            to,
            bytes: message.to_bytes(),
            tx: None,
        }
    }

    /// Feeds a message received from `from`. Fails when the message lacks what matching needs
    /// (a parseable top Via and CSeq); answer such requests 400 statelessly.
    pub fn handle_message(
        &mut self,
        now: Instant,
        msg: Message,
        from: Peer,
    ) -> Result<Vec<Output>, Error> {
        let mut out = Vec::new();
        match msg.method().cloned() {
            Some(method) => self.handle_request(now, msg, method, from, &mut out)?,
            None => self.handle_response(now, msg, from, &mut out)?,
        }
        Ok(out)
    }

    fn handle_request(
        &mut self,
        now: Instant,
        msg: Message,
        method: Method,
        from: Peer,
        out: &mut Vec<Output>,
    ) -> Result<(), Error> {
        let key = ServerKey::of(&msg, &method)?;
        if method == Method::Ack {
            if let Some(&id) = self.server_index.get(&key)
                && let Some(tx) = self.servers.get_mut(&id)
                && let ServerFsm::Invite(f) = &mut tx.fsm
                && matches!(f.state(), State::Completed | State::Confirmed)
                && (matches!(key, ServerKey::Rfc3261 { .. }) || ack_to_tag(&msg) == tx.to_tag)
            {
                let actions = f.handle_ack(now);
                self.server_actions(id, actions, out);
                self.after(TxRef::Server(id), out);
                return Ok(());
            }
            out.push(Output::Request {
                id: None,
                request: msg,
                from,
                cancels: None,
            });
            return Ok(());
        }
        if let Some(&id) = self.server_index.get(&key) {
            let actions = match self.servers.get_mut(&id).map(|t| &mut t.fsm) {
                Some(ServerFsm::Invite(f)) => f.handle_request(),
                Some(ServerFsm::NonInvite(f)) => f.handle_request(),
                None => Vec::new(),
            };
            self.server_actions(id, actions, out);
            return Ok(());
        }
        let id = ServerId(self.bump());
        let reliable = from.transport.is_reliable();
        let respond_to = response_target(&msg, &from);
        let cancels = (method == Method::Cancel)
            .then(|| {
                self.server_index
                    .get(&key.with_method(MethodKey::Invite))
                    .copied()
            })
            .flatten();
        let fsm = if method == Method::Invite {
            ServerFsm::Invite(ServerInvite::new(reliable, self.cfg))
        } else {
            ServerFsm::NonInvite(ServerNonInvite::new(reliable, self.cfg))
        };
        self.server_index.insert(key.clone(), id);
        self.servers.insert(
            id,
            ServerTx {
                key,
                respond_to,
                to_tag: None,
                fsm,
            },
        );
        let trying = (method == Method::Invite && self.auto_trying)
            .then(|| msg.response(crate::StatusCode::TRYING, None).ok())
            .flatten();
        out.push(Output::Request {
            id: Some(id),
            request: msg,
            from,
            cancels,
        });
        if let Some(t) = trying {
            out.extend(self.send_response(now, id, &t)?);
        }
        Ok(())
    }

    fn handle_response(
        &mut self,
        now: Instant,
        msg: Message,
        from: Peer,
        out: &mut Vec<Output>,
    ) -> Result<(), Error> {
        let key = ClientKey::of(&msg)?;
        let Some(&id) = self.client_index.get(&key) else {
            out.push(Output::StrayResponse {
                response: msg,
                from,
            });
            return Ok(());
        };
        let actions = match self.clients.get_mut(&id).map(|t| &mut t.fsm) {
            Some(ClientFsm::Invite(f)) => f.handle_response(now, msg),
            Some(ClientFsm::NonInvite(f)) => f.handle_response(now, msg),
            None => Vec::new(),
        };
        self.client_actions(id, actions, out);
        self.after(TxRef::Client(id), out);
        Ok(())
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let mut due_now = Vec::new();
        while let Some(Reverse((at, tx))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            due_now.push((at, tx));
        }
        // New deadlines are pushed by `after` only once this batch is done, so a deadline that
        // is still due cannot loop.
        for (at, tx) in due_now {
            let due = match tx {
                TxRef::Client(id) => self.clients.get(&id).and_then(ClientTx::poll_timeout),
                TxRef::Server(id) => self.servers.get(&id).and_then(ServerTx::poll_timeout),
            };
            // Stale heap entries (the transaction moved its deadline or is gone) are skipped.
            if due != Some(at) {
                continue;
            }
            match tx {
                TxRef::Client(id) => {
                    let actions = match self.clients.get_mut(&id).map(|t| &mut t.fsm) {
                        Some(ClientFsm::Invite(f)) => f.handle_timeout(now),
                        Some(ClientFsm::NonInvite(f)) => f.handle_timeout(now),
                        None => Vec::new(),
                    };
                    self.client_actions(id, actions, &mut out);
                }
                TxRef::Server(id) => {
                    let actions = match self.servers.get_mut(&id).map(|t| &mut t.fsm) {
                        Some(ServerFsm::Invite(f)) => f.handle_timeout(now),
                        Some(ServerFsm::NonInvite(f)) => f.handle_timeout(now),
                        None => Vec::new(),
                    };
                    self.server_actions(id, actions, &mut out);
                }
            }
            self.after(tx, &mut out);
        }
        out
    }

    /// The transport could not deliver a message of this transaction.
    pub fn handle_transport_error(&mut self, tx: TxRef) -> Vec<Output> {
        let mut out = Vec::new();
        match tx {
            TxRef::Client(id) => {
                let actions = match self.clients.get_mut(&id).map(|t| &mut t.fsm) {
                    Some(ClientFsm::Invite(f)) => f.handle_transport_error(),
                    Some(ClientFsm::NonInvite(f)) => f.handle_transport_error(),
                    None => Vec::new(),
                };
                self.client_actions(id, actions, &mut out);
            }
            TxRef::Server(id) => {
                let actions = match self.servers.get_mut(&id).map(|t| &mut t.fsm) {
                    Some(ServerFsm::Invite(f)) => f.handle_transport_error(),
                    Some(ServerFsm::NonInvite(f)) => f.handle_transport_error(),
                    None => Vec::new(),
                };
                self.server_actions(id, actions, &mut out);
            }
        }
        self.after(tx, &mut out);
        out
    }

    /// A send failure with the time: like [`TransactionLayer::handle_transport_error`], except
    /// that a client transaction moved from UDP to TCP by the size rule (§18.1.1) whose
    /// connection could not be set up, and which has heard nothing yet, is restarted over UDP
    /// with its original Via (same branch, same id), as §18.1.1 says for a refused connection.
    pub fn handle_send_failure(&mut self, now: Instant, tx: TxRef) -> Vec<Output> {
        if let TxRef::Client(id) = tx
            && let Some(t) = self.clients.get_mut(&id)
            && matches!(t.state(), State::Calling | State::Trying)
            && let Some(request) = t.udp_fallback.take().map(|r| *r)
        {
            let (fsm, actions) = if request.method() == Some(&Method::Invite) {
                let (f, a) = ClientInvite::new(now, request, false, self.cfg);
                (ClientFsm::Invite(Box::new(f)), a)
            } else {
                let (f, a) = ClientNonInvite::new(now, &request, false, self.cfg);
                (ClientFsm::NonInvite(f), a)
            };
            t.fsm = fsm;
            t.to.transport = Transport::Udp;
            t.to.flow = None;
            let mut out = Vec::new();
            self.client_actions(id, actions, &mut out);
            self.after(tx, &mut out);
            return out;
        }
        self.handle_transport_error(tx)
    }

    /// §18.1.1: the request and destination to use, and the UDP original when it moved to TCP.
    pub(crate) fn apply_size_rule(
        &self,
        request: Message,
        to: Peer,
    ) -> (Message, Peer, Option<Message>) {
        let Some(limit) = self.udp_limit else {
            return (request, to, None);
        };
        // A request pinned to a flow (a phone's NAT binding or its IPsec SA, RFC 5626 §5.3,
        // TS 33.203 §7.1) stays on it whatever its size: TCP would reach nobody there.
        if to.transport != Transport::Udp || to.flow.is_some() || request.encoded_len() <= limit {
            return (request, to, None);
        }
        let mut tcp = request.clone();
        let Some(via) = request.top_via().ok().map(Via::into_owned) else {
            return (request, to, None);
        };
        let via = Via {
            transport: Transport::Tcp,
            ..via
        };
        tcp.pop_first_value(&HeaderName::VIA);
        if tcp.prepend_typed(HeaderName::VIA, &via).is_err() {
            return (request, to, None);
        }
        let to = Peer {
            transport: Transport::Tcp,
            addr: to.addr,
            flow: None,
        };
        (tcp, to, Some(request))
    }

    /// The request a client INVITE transaction sent (for building its CANCEL, §9.1).
    pub fn client_request(&self, id: ClientId) -> Option<&Message> {
        match &self.clients.get(&id)?.fsm {
            ClientFsm::Invite(f) => Some(f.request()),
            ClientFsm::NonInvite(_) => None,
        }
    }

    /// The peer a client transaction sends to.
    pub fn client_peer(&self, id: ClientId) -> Option<&Peer> {
        self.clients.get(&id).map(|t| &t.to)
    }

    fn bump(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn client_actions(&self, id: ClientId, actions: Vec<Action>, out: &mut Vec<Output>) {
        let Some(tx) = self.clients.get(&id) else {
            return;
        };
        for a in actions {
            out.push(match a {
                Action::Transmit(bytes) => Output::Transmit {
                    to: tx.to.clone(),
                    bytes,
                    tx: Some(TxRef::Client(id)),
                },
                Action::PassUp(response) => Output::Response { id, response },
                Action::Timeout => Output::Timeout { id },
                Action::TransportError => Output::TransportError {
                    tx: TxRef::Client(id),
                },
                Action::AckTimeout => continue,
            });
        }
    }

    fn server_actions(&self, id: ServerId, actions: Vec<Action>, out: &mut Vec<Output>) {
        let Some(tx) = self.servers.get(&id) else {
            return;
        };
        for a in actions {
            out.push(match a {
                Action::Transmit(bytes) => Output::Transmit {
                    to: tx.respond_to.clone(),
                    bytes,
                    tx: Some(TxRef::Server(id)),
                },
                Action::AckTimeout => Output::AckTimeout { id },
                Action::TransportError => Output::TransportError {
                    tx: TxRef::Server(id),
                },
                Action::PassUp(_) | Action::Timeout => continue,
            });
        }
    }

    /// After an input: drop a terminated transaction or re-arm its timer.
    fn after(&mut self, tx: TxRef, out: &mut Vec<Output>) {
        let (state, deadline) = match tx {
            TxRef::Client(id) => match self.clients.get(&id) {
                Some(t) => (t.state(), t.poll_timeout()),
                None => return,
            },
            TxRef::Server(id) => match self.servers.get(&id) {
                Some(t) => (t.state(), t.poll_timeout()),
                None => return,
            },
        };
        if state == State::Terminated {
            match tx {
                TxRef::Client(id) => {
                    if let Some(t) = self.clients.remove(&id) {
                        self.client_index.remove(&t.key);
                    }
                }
                TxRef::Server(id) => {
                    if let Some(t) = self.servers.remove(&id) {
                        self.server_index.remove(&t.key);
                    }
                }
            }
            out.push(Output::Terminated { tx });
        } else if let Some(at) = deadline {
            self.timers.push(Reverse((at, tx)));
        }
    }
}

fn ack_to_tag(ack: &Message) -> Option<Box<str>> {
    ack.to_header().ok().and_then(|t| t.tag().map(Into::into))
}

/// Where responses to a request go (§18.2.2, RFC 3581): the same flow on reliable transports; on
/// UDP the source address, with the source port when the top Via asks for `rport` and the
/// sent-by port otherwise.
pub fn response_target(request: &Message, from: &Peer) -> Peer {
    if from.transport.is_reliable() {
        return from.clone();
    }
    let port = match request.top_via() {
        Ok(v) if v.rport().is_none() => v.port_or_default(),
        _ => from.addr.port(),
    };
    Peer {
        transport: from.transport.clone(),
        addr: SocketAddr::new(from.addr.ip(), port),
        flow: from.flow,
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): Request-URI, Call-ID, From and CSeq number
/// of the INVITE, the To of the response, only the INVITE's top Via, and its Route headers.
pub fn build_ack(invite: &Message, response: &Message) -> Result<Message, Error> {
    let uri = Bytes::copy_from_slice(invite.request_uri_raw().ok_or(Error::WrongKind {
        expected: "request",
    })?);
    let mut ack = Message::new_request(Method::Ack, uri);
    let top_via = invite
        .values(&HeaderName::VIA)
        .next()
        .ok_or(Error::MissingHeader("Via"))?;
    ack.push_header(HeaderName::VIA, Bytes::copy_from_slice(top_via))?;
    copy_headers(
        invite,
        &mut ack,
        &[HeaderName::MAX_FORWARDS, HeaderName::FROM],
    )?;
    copy_headers(response, &mut ack, &[HeaderName::TO])?;
    copy_headers(invite, &mut ack, &[HeaderName::CALL_ID])?;
    let cseq = invite.cseq()?;
    ack.push_header(HeaderName::CSEQ, format!("{} ACK", cseq.seq))?;
    copy_headers(invite, &mut ack, &[HeaderName::ROUTE])?;
    ack.push_header(HeaderName::CONTENT_LENGTH, "0")?;
    Ok(ack)
}

/// The CANCEL for a request (§9.1): Request-URI, Call-ID, To, From and CSeq number of the
/// request, its top Via only (same branch), and its Route headers.
pub fn build_cancel(request: &Message) -> Result<Message, Error> {
    let uri = Bytes::copy_from_slice(request.request_uri_raw().ok_or(Error::WrongKind {
        expected: "request",
    })?);
    let mut cancel = Message::new_request(Method::Cancel, uri);
    let top_via = request
        .values(&HeaderName::VIA)
        .next()
        .ok_or(Error::MissingHeader("Via"))?;
    cancel.push_header(HeaderName::VIA, Bytes::copy_from_slice(top_via))?;
    copy_headers(
        request,
        &mut cancel,
        &[
            HeaderName::MAX_FORWARDS,
            HeaderName::FROM,
            HeaderName::TO,
            HeaderName::CALL_ID,
        ],
    )?;
    let cseq = request.cseq()?;
    cancel.push_header(HeaderName::CSEQ, format!("{} CANCEL", cseq.seq))?;
    copy_headers(request, &mut cancel, &[HeaderName::ROUTE])?;
    cancel.push_header(HeaderName::CONTENT_LENGTH, "0")?;
    Ok(cancel)
}

fn copy_headers(from: &Message, to: &mut Message, names: &[HeaderName]) -> Result<(), Error> {
    for name in names {
        for f in from.fields_named(name) {
            to.push_header(name.clone(), Bytes::copy_from_slice(f.value()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
