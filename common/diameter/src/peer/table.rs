//! Every peer of a node: connection ownership, accepted connections until their CER, realm
//! routing with fail-over (RFC 6733 §6.1, §5.5.4), per-request deadlines and duplicate
//! detection (RFC 6733 §5.5.4, §6.2). Pure, like [`Peer`].
//!
//! The driver calls `handle_*` when the network does something and the application calls
//! [`PeerTable::send_request`] / [`PeerTable::send_answer`]; after each call it drains
//! [`PeerTable::poll_transmit`] and [`PeerTable::poll_event`] and sleeps until
//! [`PeerTable::poll_timeout`].
//!
//! Received requests are checked here before the application sees them: a malformed request
//! or one the dictionary rejects is answered at once (see [`crate::answer`]); a duplicate of a
//! request answered recently gets the cached answer again.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use imslab_types::{DiameterIdentity, Realm};

use super::dup::DuplicateCache;
use super::fsm::{
    CloseReason, ConnId, FailReason, Peer, PeerConfig, PeerEvent, RequestId, Timers, Transmit,
};
use super::ids::{EndToEndIds, SplitMix64};
use crate::answer::{Origin, error_answer_for_frame, result_answer, validate_request};
use crate::avp::Limits;
use crate::base::{Capabilities, Cer};
use crate::codes::{CommandCode, ResultCode};
use crate::dict;
use crate::enums::DisconnectCause;
use crate::error::Error;
use crate::header::CommandFlags;
use crate::message::Message;

/// Index of a peer in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub usize);

/// A configured peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// Its Origin-Host.
    pub host: DiameterIdentity,
    /// Its realm.
    pub realm: Realm,
    /// Whether this node connects to it (else it only accepts it).
    pub initiate: bool,
}

/// How the node behaves.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// What this node announces; Origin-Host/Realm of everything it sends.
    pub local: Capabilities,
    /// Peer timers.
    pub timers: Timers,
    /// Accept a CER from a host that is not configured (as a responder-only peer). When false,
    /// such a CER is answered with DIAMETER_UNKNOWN_PEER and the connection closed; so is the
    /// CER of a new host once 1024 hosts have been learned this way.
    pub accept_unknown_peers: bool,
    /// Deadline of a request when the caller gives none (default 10 s).
    pub request_timeout: Duration,
    /// Answers kept for duplicate detection (default 10 000).
    pub duplicate_capacity: usize,
    /// How long an answer is kept for duplicate detection (default 120 s).
    pub duplicate_ttl: Duration,
    /// Decoding limits for received messages.
    pub limits: Limits,
    /// Random seed.
    pub seed: u64,
    /// Node start time in seconds since the Unix epoch (End-to-End ids, RFC 6733 §3).
    pub start_unix_secs: u64,
}

impl NodeConfig {
    /// Defaults around the given capabilities, seed and start time.
    pub fn new(local: Capabilities, seed: u64, start_unix_secs: u64) -> Self {
        Self {
            local,
            timers: Timers::default(),
            accept_unknown_peers: false,
            request_timeout: Duration::from_secs(10),
            duplicate_capacity: 10_000,
            duplicate_ttl: Duration::from_secs(120),
            limits: Limits::default(),
            seed,
            start_unix_secs,
        }
    }
}

/// What the table tells its driver and application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// Open a connection to `peer`, then call [`PeerTable::handle_connected`] or
    /// [`PeerTable::handle_connect_failed`].
    Connect {
        /// Which peer.
        peer: PeerId,
        /// The attempt number to report back.
        attempt: u64,
    },
    /// Close `conn` and log `reason`.
    Close {
        /// Which connection.
        conn: ConnId,
        /// Its peer, when known.
        peer: Option<PeerId>,
        /// Why.
        reason: CloseReason,
    },
    /// A peer became usable.
    PeerUp {
        /// Which.
        peer: PeerId,
    },
    /// A peer stopped being usable.
    PeerDown {
        /// Which.
        peer: PeerId,
        /// Why.
        reason: CloseReason,
    },
    /// A valid request for the application; answer with [`PeerTable::send_answer`].
    Request {
        /// From which peer.
        peer: PeerId,
        /// The request.
        msg: Message,
    },
    /// The answer to [`PeerTable::send_request`].
    Answer {
        /// The request.
        id: RequestId,
        /// The answer.
        msg: Message,
    },
    /// A request sent with [`PeerTable::send_request`] will get no answer.
    RequestFailed {
        /// The request.
        id: RequestId,
        /// Why.
        reason: FailReason,
    },
    /// A received message was answered with an error or dropped; for the log.
    Rejected {
        /// Where it came from.
        conn: ConnId,
        /// What happened.
        reason: String,
    },
}

#[derive(Debug)]
struct Outstanding {
    request: Message,
    deadline: Instant,
    at: Option<(PeerId, u32)>,
    tried: Vec<PeerId>,
}

/// Most peers a table learns from CERs of unknown hosts (`accept_unknown_peers`); beyond it
/// such CERs are answered DIAMETER_UNKNOWN_PEER. Learned peers keep their slot for the node's
/// lifetime (answers in flight name them by [`PeerId`]), so this is what bounds the table.
pub(crate) const MAX_LEARNED_PEERS: usize = 1024;

/// All peers of a node. See the module documentation.
#[derive(Debug)]
pub struct PeerTable {
    cfg: NodeConfig,
    origin: Origin,
    peers: Vec<Peer>,
    specs: Vec<PeerSpec>,
    routes: Vec<(Realm, Vec<PeerId>)>,
    default_route: Vec<PeerId>,
    inbound: HashMap<ConnId, Instant>,
    owner: HashMap<ConnId, PeerId>,
    outstanding: HashMap<RequestId, Outstanding>,
    deadlines: BTreeSet<(Instant, RequestId)>,
    next_request: u64,
    e2e: EndToEndIds,
    dup: DuplicateCache,
    /// Requests passed to the application, by (peer, Hop-by-Hop): their Origin-Host and
    /// End-to-End id (to cache the answer) and the number of their record in `awaiting_order`.
    awaiting: HashMap<(PeerId, u32), (String, u32, u64)>,
    /// One record per request, oldest first; a record whose entry was answered is stale.
    awaiting_order: VecDeque<((PeerId, u32), u64)>,
    next_awaiting: u64,
    /// Peers added by `accept_unknown_peers`, at most [`MAX_LEARNED_PEERS`].
    learned: usize,
    transmits: VecDeque<Transmit>,
    events: VecDeque<NodeEvent>,
    rng: SplitMix64,
}

impl PeerTable {
    /// An empty table.
    pub fn new(cfg: NodeConfig) -> Self {
        let mut rng = SplitMix64::new(cfg.seed);
        let origin = Origin {
            host: cfg.local.origin_host.clone(),
            realm: cfg.local.origin_realm.clone(),
        };
        Self {
            e2e: EndToEndIds::new(cfg.start_unix_secs, rng.next_u64() as u32),
            dup: DuplicateCache::new(cfg.duplicate_capacity, cfg.duplicate_ttl),
            origin,
            cfg,
            peers: Vec::new(),
            specs: Vec::new(),
            routes: Vec::new(),
            default_route: Vec::new(),
            inbound: HashMap::new(),
            owner: HashMap::new(),
            outstanding: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_request: 1,
            awaiting: HashMap::new(),
            awaiting_order: VecDeque::new(),
            next_awaiting: 0,
            learned: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng,
        }
    }

    /// This node's Origin-Host and Origin-Realm.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Adds a configured peer. Initiating peers connect on [`PeerTable::start`].
    pub fn add_peer(&mut self, spec: PeerSpec) -> PeerId {
        let id = PeerId(self.peers.len());
        self.peers.push(Peer::new(PeerConfig {
            local: self.cfg.local.clone(),
            remote_host: Some(spec.host.clone()),
            initiate: spec.initiate,
            timers: self.cfg.timers,
            seed: self.rng.next_u64(),
            start_unix_secs: self.cfg.start_unix_secs,
        }));
        self.specs.push(spec);
        id
    }

    /// Routes requests for `realm` to `peers`, tried in order (RFC 6733 §2.7 realm routing).
    pub fn add_route(&mut self, realm: Realm, peers: Vec<PeerId>) {
        self.routes.push((realm, peers));
    }

    /// Routes requests for any other realm to `peers`.
    pub fn set_default_route(&mut self, peers: Vec<PeerId>) {
        self.default_route = peers;
    }

    /// The peer.
    pub fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(id.0)
    }

    /// The configured (or learned) spec of a peer.
    pub fn spec(&self, id: PeerId) -> Option<&PeerSpec> {
        self.specs.get(id.0)
    }

    /// All peer ids.
    pub fn peer_ids(&self) -> impl Iterator<Item = PeerId> + use<> {
        (0..self.peers.len()).map(PeerId)
    }

    /// The peer owning `conn`.
    pub fn owner(&self, conn: ConnId) -> Option<PeerId> {
        self.owner.get(&conn).copied()
    }

    /// How many requests await answers.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Starts every initiating peer.
    pub fn start(&mut self, now: Instant) {
        for p in &mut self.peers {
            p.start(now);
        }
        self.pump(now);
    }

    /// Sends DPR to every open peer and stops reconnecting (RFC 6733 §5.4).
    pub fn stop(&mut self, now: Instant) {
        for p in &mut self.peers {
            p.stop(now, DisconnectCause::REBOOTING);
        }
        let inbound: Vec<_> = self.inbound.drain().map(|(c, _)| c).collect();
        for conn in inbound {
            self.events.push_back(NodeEvent::Close {
                conn,
                peer: None,
                reason: CloseReason::Stopped,
            });
        }
        self.pump(now);
    }

    /// Bytes to write.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        self.peers.iter_mut().find_map(Peer::poll_transmit)
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    /// When [`PeerTable::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let peers = self.peers.iter().filter_map(Peer::poll_timeout).min();
        let inbound = self.inbound.values().min().copied();
        let requests = self.deadlines.first().map(|(t, _)| *t);
        [peers, inbound, requests].into_iter().flatten().min()
    }

    // ----- network -----

    /// A connection to `peer` came up.
    pub fn handle_connected(&mut self, now: Instant, peer: PeerId, attempt: u64, conn: ConnId) {
        if let Some(p) = self.peers.get_mut(peer.0) {
            self.owner.insert(conn, peer);
            p.handle_connected(now, attempt, conn);
        }
        self.pump(now);
    }

    /// A connection attempt to `peer` failed.
    pub fn handle_connect_failed(&mut self, now: Instant, peer: PeerId, attempt: u64) {
        if let Some(p) = self.peers.get_mut(peer.0) {
            p.handle_connect_failed(now, attempt);
        }
        self.pump(now);
    }

    /// A connection was accepted; its first message must be a CER within the CEA timeout.
    pub fn handle_accepted(&mut self, now: Instant, conn: ConnId) {
        self.inbound.insert(conn, now + self.cfg.timers.cea_timeout);
    }

    /// A connection closed (by the peer, or by the driver after a framing error).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        self.inbound.remove(&conn);
        if let Some(peer) = self.owner.remove(&conn)
            && let Some(p) = self.peers.get_mut(peer.0)
        {
            p.handle_closed(now, conn);
        }
        self.pump(now);
    }

    /// One whole message (from the framer) arrived on `conn`.
    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Bytes) {
        if self.inbound.contains_key(&conn) {
            self.first_frame(now, conn, frame);
        } else if let Some(peer) = self.owner.get(&conn).copied() {
            self.peer_frame(now, peer, conn, frame);
        } else {
            self.events.push_back(NodeEvent::Rejected {
                conn,
                reason: "frame on an unknown connection".into(),
            });
        }
        self.pump(now);
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<_> = self
            .inbound
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(c, _)| *c)
            .collect();
        for conn in expired {
            self.inbound.remove(&conn);
            self.events.push_back(NodeEvent::Close {
                conn,
                peer: None,
                reason: CloseReason::CerTimeout,
            });
        }
        for p in &mut self.peers {
            if p.poll_timeout().is_some_and(|t| t <= now) {
                p.handle_timeout(now);
            }
        }
        while let Some(&(t, id)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(o) = self.outstanding.remove(&id) {
                if let Some((peer, hbh)) = o.at
                    && let Some(p) = self.peers.get_mut(peer.0)
                {
                    p.cancel(hbh);
                }
                self.events.push_back(NodeEvent::RequestFailed {
                    id,
                    reason: FailReason::Timeout,
                });
            }
        }
        self.pump(now);
    }

    // ----- application -----

    /// Sends a request, routed by Destination-Host, then Destination-Realm, then the default
    /// route, to a usable peer. `timeout` overrides the default deadline. The outcome arrives as
    /// [`NodeEvent::Answer`] or [`NodeEvent::RequestFailed`]; a request whose peer fails is sent
    /// again to the next usable peer with the T bit (RFC 6733 §5.5.4).
    pub fn send_request(
        &mut self,
        now: Instant,
        mut msg: Message,
        timeout: Option<Duration>,
    ) -> Result<RequestId, Error> {
        if msg.header.end_to_end == 0 {
            msg.header.end_to_end = self.e2e.next_id();
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let deadline = now + timeout.unwrap_or(self.cfg.request_timeout);
        let mut o = Outstanding {
            request: msg,
            deadline,
            at: None,
            tried: Vec::new(),
        };
        self.dispatch(now, id, &mut o)?;
        self.deadlines.insert((deadline, id));
        self.outstanding.insert(id, o);
        self.pump(now);
        Ok(id)
    }

    /// Sends the answer to a [`NodeEvent::Request`] from `peer`, and remembers it for duplicate
    /// detection. Identifiers must be those of the request (see [`Message::answer_to`]).
    pub fn send_answer(
        &mut self,
        now: Instant,
        peer: PeerId,
        answer: &Message,
    ) -> Result<(), Error> {
        let p = self.peers.get_mut(peer.0).ok_or(Error::PeerUnavailable {
            peer: format!("#{}", peer.0),
            state: "unknown",
        })?;
        let bytes = p.send_answer(now, answer)?;
        if let Some((host, e2e, _)) = self.awaiting.remove(&(peer, answer.header.hop_by_hop)) {
            self.dup.insert(now, &host, e2e, bytes);
        }
        self.pump(now);
        Ok(())
    }

    // ----- internals -----

    fn first_frame(&mut self, now: Instant, conn: ConnId, frame: Bytes) {
        self.inbound.remove(&conn);
        let msg = match Message::decode_with(frame.clone(), &self.cfg.limits) {
            Ok(m) if m.header.code == CommandCode::CAPABILITIES_EXCHANGE && m.is_request() => m,
            Ok(_) => {
                self.events.push_back(NodeEvent::Close {
                    conn,
                    peer: None,
                    reason: CloseReason::NotCer,
                });
                return;
            }
            Err(e) => {
                if let Some(ans) = error_answer_for_frame(&frame, &e, &self.origin)
                    && let Ok(b) = ans.encode()
                {
                    self.transmits.push_back(Transmit { conn, bytes: b });
                }
                self.events.push_back(NodeEvent::Close {
                    conn,
                    peer: None,
                    reason: CloseReason::BadCer(e),
                });
                return;
            }
        };
        let host = match Cer::decode(&msg) {
            Ok(cer) => cer.capabilities,
            Err(e) => {
                let ans = crate::answer::error_answer(&msg.header, &msg.avps, &e, &self.origin);
                if let Ok(b) = ans.encode() {
                    self.transmits.push_back(Transmit { conn, bytes: b });
                }
                self.events.push_back(NodeEvent::Close {
                    conn,
                    peer: None,
                    reason: CloseReason::BadCer(e),
                });
                return;
            }
        };
        let known = self.specs.iter().position(|s| {
            s.host
                .as_str()
                .eq_ignore_ascii_case(host.origin_host.as_str())
        });
        let peer = match known {
            Some(i) => PeerId(i),
            None if self.cfg.accept_unknown_peers && self.learned < MAX_LEARNED_PEERS => {
                self.learned += 1;
                self.add_peer(PeerSpec {
                    host: host.origin_host.clone(),
                    realm: host.origin_realm.clone(),
                    initiate: false,
                })
            }
            None => {
                let ans = result_answer(
                    &msg.header,
                    &msg.avps,
                    ResultCode::DIAMETER_UNKNOWN_PEER,
                    None,
                    None,
                    &self.origin,
                );
                if let Ok(b) = ans.encode() {
                    self.transmits.push_back(Transmit { conn, bytes: b });
                }
                let reason = CloseReason::UnknownPeer(host.origin_host.to_string());
                self.events.push_back(NodeEvent::Close {
                    conn,
                    peer: None,
                    reason,
                });
                return;
            }
        };
        self.owner.insert(conn, peer);
        if let Some(p) = self.peers.get_mut(peer.0) {
            p.handle_incoming_cer(now, conn, msg);
        }
    }

    fn peer_frame(&mut self, now: Instant, peer: PeerId, conn: ConnId, frame: Bytes) {
        let msg = match Message::decode_with(frame.clone(), &self.cfg.limits) {
            Ok(m) => m,
            Err(e) => {
                if let Some(Ok(b)) =
                    error_answer_for_frame(&frame, &e, &self.origin).map(|a| a.encode())
                {
                    self.transmits.push_back(Transmit { conn, bytes: b });
                }
                self.events.push_back(NodeEvent::Rejected {
                    conn,
                    reason: format!("undecodable message: {e}"),
                });
                return;
            }
        };
        let base = matches!(
            msg.header.code,
            CommandCode::CAPABILITIES_EXCHANGE
                | CommandCode::DEVICE_WATCHDOG
                | CommandCode::DISCONNECT_PEER
        );
        if msg.is_request() && !base {
            let origin_host = msg
                .find(&dict::ORIGIN_HOST)
                .and_then(|a| a.as_utf8().ok())
                .unwrap_or_default()
                .to_owned();
            let (e2e, hbh) = (msg.header.end_to_end, msg.header.hop_by_hop);
            if let Some(cached) = self.dup.lookup(now, &origin_host, e2e, hbh) {
                if let Some(p) = self.peers.get_mut(peer.0) {
                    let _ = p.send_bytes(cached);
                }
                self.events.push_back(NodeEvent::Rejected {
                    conn,
                    reason: format!(
                        "duplicate request e2e {e2e:#010x} from {origin_host}: answered from cache"
                    ),
                });
                return;
            }
            if let Err(e) = validate_request(&msg) {
                let ans = crate::answer::error_answer(&msg.header, &msg.avps, &e, &self.origin);
                if let Some(p) = self.peers.get_mut(peer.0) {
                    let _ = p.send_answer(now, &ans);
                }
                self.events.push_back(NodeEvent::Rejected {
                    conn,
                    reason: format!("request answered {}: {e}", e.result_code()),
                });
                return;
            }
            self.remember_awaiting(peer, hbh, origin_host, e2e);
        }
        if let Some(p) = self.peers.get_mut(peer.0) {
            p.handle_message(now, conn, msg);
        }
    }

    /// Requests awaiting their answer, and the records kept to bound them (tests only).
    #[cfg(test)]
    pub(super) fn awaiting_bookkeeping(&self) -> (usize, usize) {
        (self.awaiting.len(), self.awaiting_order.len())
    }

    /// Notes a request handed to the application, so its answer can be cached. At most
    /// `duplicate_capacity` requests and twice as many records are kept: answered requests
    /// leave stale records, dropped from the front; beyond the bounds the oldest go.
    fn remember_awaiting(&mut self, peer: PeerId, hbh: u32, host: String, e2e: u32) {
        let cap = self.cfg.duplicate_capacity.max(1);
        while let Some((key, n)) = self.awaiting_order.front() {
            let current = self.awaiting.get(key).is_some_and(|(_, _, at)| at == n);
            let full = self.awaiting.len() >= cap || self.awaiting_order.len() >= 2 * cap;
            if current && !full {
                break;
            }
            if let Some((k, _)) = self.awaiting_order.pop_front()
                && current
            {
                self.awaiting.remove(&k);
            }
        }
        let n = self.next_awaiting;
        self.next_awaiting += 1;
        self.awaiting.insert((peer, hbh), (host, e2e, n));
        self.awaiting_order.push_back(((peer, hbh), n));
    }

    fn candidates(&self, msg: &Message) -> Vec<PeerId> {
        let mut out = Vec::new();
        if let Some(host) = msg
            .find(&dict::DESTINATION_HOST)
            .and_then(|a| a.as_utf8().ok())
        {
            out.extend(self.peer_ids().filter(|id| {
                self.peers[id.0]
                    .remote_host()
                    .is_some_and(|h| h.as_str().eq_ignore_ascii_case(host))
            }));
        }
        if let Some(realm) = msg
            .find(&dict::DESTINATION_REALM)
            .and_then(|a| a.as_utf8().ok())
        {
            for (r, peers) in &self.routes {
                if r.as_str().eq_ignore_ascii_case(realm) {
                    out.extend(peers.iter().copied());
                }
            }
        }
        out.extend(self.default_route.iter().copied());
        out
    }

    fn destination(msg: &Message) -> String {
        msg.find(&dict::DESTINATION_HOST)
            .or_else(|| msg.find(&dict::DESTINATION_REALM))
            .and_then(|a| a.as_utf8().ok())
            .unwrap_or("(none)")
            .to_owned()
    }

    /// Sends `o.request` to the first usable candidate not tried yet.
    fn dispatch(&mut self, now: Instant, id: RequestId, o: &mut Outstanding) -> Result<(), Error> {
        for peer in self.candidates(&o.request) {
            if o.tried.contains(&peer) || !self.peers[peer.0].is_available() {
                continue;
            }
            o.tried.push(peer);
            let mut msg = o.request.clone();
            if o.tried.len() > 1 {
                msg.header.flags = msg.header.flags.with(CommandFlags::RETRANSMIT, true);
            }
            if let Ok(hbh) = self.peers[peer.0].send_request(now, id, msg) {
                o.at = Some((peer, hbh));
                return Ok(());
            }
        }
        Err(Error::NoRoute {
            destination: Self::destination(&o.request),
        })
    }

    /// Moves peer events into table events, failing requests over.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            for i in 0..self.peers.len() {
                while let Some(ev) = self.peers[i].poll_event() {
                    progressed = true;
                    self.peer_event(now, PeerId(i), ev);
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn peer_event(&mut self, now: Instant, peer: PeerId, ev: PeerEvent) {
        match ev {
            PeerEvent::Connect { attempt } => {
                self.events.push_back(NodeEvent::Connect { peer, attempt })
            }
            PeerEvent::Close { conn, reason } => {
                self.owner.remove(&conn);
                self.events.push_back(NodeEvent::Close {
                    conn,
                    peer: Some(peer),
                    reason,
                });
            }
            PeerEvent::Up => self.events.push_back(NodeEvent::PeerUp { peer }),
            PeerEvent::Down { reason } => {
                self.events.push_back(NodeEvent::PeerDown { peer, reason })
            }
            PeerEvent::Request { msg } => self.events.push_back(NodeEvent::Request { peer, msg }),
            PeerEvent::Answer { id, msg } => {
                if let Some(o) = self.outstanding.remove(&id) {
                    self.deadlines.remove(&(o.deadline, id));
                    self.events.push_back(NodeEvent::Answer { id, msg });
                }
            }
            PeerEvent::Failed { id, reason, .. } => {
                let Some(mut o) = self.outstanding.remove(&id) else {
                    return;
                };
                o.at = None;
                if self.dispatch(now, id, &mut o).is_ok() {
                    self.outstanding.insert(id, o);
                } else {
                    self.deadlines.remove(&(o.deadline, id));
                    self.events
                        .push_back(NodeEvent::RequestFailed { id, reason });
                }
            }
            PeerEvent::Discarded { conn, reason } => {
                self.events.push_back(NodeEvent::Rejected {
                    conn,
                    reason: reason.to_owned(),
                });
            }
        }
    }
}
