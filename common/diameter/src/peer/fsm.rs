//! One Diameter peer: the state machine of RFC 6733 §5.6 with capability exchange, election,
//! the RFC 3539 watchdog, DPR/DPA, reconnection with back-off and hop-by-hop answer matching.
//!
//! [`Peer`] does no I/O. Its methods fall in four groups:
//!
//! - getters: [`Peer::state`], [`Peer::is_available`], [`Peer::remote`];
//! - `handle_*`: report what the network did (a connection came up, a message arrived, a
//!   connection closed, time passed);
//! - commands from the application: [`Peer::start`], [`Peer::stop`], [`Peer::send_request`],
//!   [`Peer::send_answer`];
//! - `poll_*`: what to do next. After any call, drain [`Peer::poll_transmit`] (bytes to write on a
//!   connection) and [`Peer::poll_event`] (connect, close, requests and answers for the
//!   application), then sleep until [`Peer::poll_timeout`] and call [`Peer::handle_timeout`].
//!
//! Connections are identified by [`ConnId`]s the driver assigns. A peer uses at most two at once:
//! the one it initiated and the one it accepted, until the election of §5.6.4 keeps one.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use imslab_types::DiameterIdentity;

use super::ids::{EndToEndIds, HopByHopIds, SplitMix64};
use super::watchdog::{Watchdog, WatchdogAction, WatchdogState};
use crate::answer::{Origin, error_answer};
use crate::base::{Capabilities, Cea, Cer, Dpa, Dpr, Dwa, Dwr};
use crate::codes::{CommandCode, ResultCode};
use crate::enums::DisconnectCause;
use crate::error::Error;
use crate::header::CommandFlags;
use crate::message::Message;

/// A transport connection, numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// The application's handle on a request it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Peer states (RFC 6733 §5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// No connection.
    Closed,
    /// Connecting.
    WaitConnAck,
    /// Connected, CER sent, waiting for the CEA.
    WaitICea,
    /// Connecting, and a CER arrived on an accepted connection meanwhile.
    WaitConnAckElect,
    /// Both connections exist; the election was lost, waiting for our CEA.
    WaitReturns,
    /// Open on the accepted (responder) connection.
    ROpen,
    /// Open on the initiated connection.
    IOpen,
    /// DPR sent, waiting for the DPA.
    Closing,
}

impl PeerState {
    /// The RFC name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "Closed",
            Self::WaitConnAck => "Wait-Conn-Ack",
            Self::WaitICea => "Wait-I-CEA",
            Self::WaitConnAckElect => "Wait-Conn-Ack/Elect",
            Self::WaitReturns => "Wait-Returns",
            Self::ROpen => "R-Open",
            Self::IOpen => "I-Open",
            Self::Closing => "Closing",
        }
    }

    /// I-Open or R-Open.
    pub fn is_open(self) -> bool {
        matches!(self, Self::ROpen | Self::IOpen)
    }
}

/// Timer values. Defaults: Tw 30 s (RFC 3539), connect and CEA 10 s, DPA 5 s, reconnection
/// back-off from 1 s doubling up to Tc = 30 s (RFC 6733 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Watchdog interval Tw; values below 6 s are raised to 6 s (RFC 3539 §3.4.1).
    pub tw: Duration,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// How long to wait for the CEA after sending the CER, and for the CER on an accepted
    /// connection.
    pub cea_timeout: Duration,
    /// How long to wait for the DPA after sending the DPR.
    pub dpa_timeout: Duration,
    /// First reconnection delay.
    pub reconnect_min: Duration,
    /// Largest reconnection delay (Tc).
    pub reconnect_max: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            tw: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            cea_timeout: Duration::from_secs(10),
            dpa_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
        }
    }
}

/// How one peer is set up.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// What this node announces in CER/CEA; its Origin-Host/Realm are used in every message.
    pub local: Capabilities,
    /// The peer's Origin-Host, when configured: a CEA from another host is refused.
    pub remote_host: Option<DiameterIdentity>,
    /// Whether this node connects to the peer (and reconnects) or only accepts it.
    pub initiate: bool,
    /// Timers.
    pub timers: Timers,
    /// Random seed for Hop-by-Hop ids, End-to-End ids and watchdog jitter.
    pub seed: u64,
    /// Node start time in seconds since the Unix epoch, for End-to-End ids (RFC 6733 §3).
    pub start_unix_secs: u64,
}

/// Bytes to write on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where.
    pub conn: ConnId,
    /// One whole encoded message.
    pub bytes: Bytes,
}

/// Why a connection is closed. `Display` gives the log text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// No CEA within the timeout.
    CeaTimeout,
    /// No CER within the timeout on an accepted connection.
    CerTimeout,
    /// The connection attempt took too long.
    ConnectTimeout,
    /// Something other than a CEA arrived while waiting for it.
    NotCea,
    /// Something other than a CER arrived first on an accepted connection.
    NotCer,
    /// The CER could not be decoded.
    BadCer(Error),
    /// The CEA carried a failure.
    CeaRejected(ResultCode),
    /// The CEA came from another host than configured.
    UnexpectedPeer {
        /// The configured host.
        expected: String,
        /// The host that answered.
        got: String,
    },
    /// The CER came from a host this node does not know.
    UnknownPeer(String),
    /// No application in common (RFC 6733 §5.3).
    NoCommonApplication,
    /// The election (RFC 6733 §5.6.4) kept the other connection.
    ElectionLost,
    /// A CER arrived while the peer already has a connection.
    DuplicateConnection,
    /// The watchdog declared the peer down (RFC 3539).
    WatchdogExpired,
    /// The peer sent a DPR.
    DisconnectRequested(DisconnectCause),
    /// We sent a DPR and the DPA arrived.
    Shutdown,
    /// We sent a DPR and no DPA arrived in time.
    DpaTimeout,
    /// We were shutting down while this connection was being set up.
    Stopped,
    /// The connection is no longer wanted (a late connection attempt).
    Stale,
    /// The byte stream lost framing (reported by the driver).
    FramingLost(Error),
    /// The peer closed the connection.
    PeerClosed,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CeaTimeout => write!(f, "no CEA before the timeout"),
            Self::CerTimeout => write!(f, "no CER before the timeout"),
            Self::ConnectTimeout => write!(f, "connection attempt timed out"),
            Self::NotCea => write!(f, "received another message while waiting for the CEA"),
            Self::NotCer => write!(f, "first message on an accepted connection was not a CER"),
            Self::BadCer(e) => write!(f, "invalid CER: {e}"),
            Self::CeaRejected(rc) => write!(f, "CEA refused us with Result-Code {rc}"),
            Self::UnexpectedPeer { expected, got } => {
                write!(f, "CEA from {got}, expected {expected}")
            }
            Self::UnknownPeer(h) => write!(f, "CER from unknown peer {h}"),
            Self::NoCommonApplication => write!(f, "no common application"),
            Self::ElectionLost => write!(f, "connection election kept the other connection"),
            Self::DuplicateConnection => write!(f, "peer already has a connection"),
            Self::WatchdogExpired => write!(f, "watchdog: peer did not answer DWRs"),
            Self::DisconnectRequested(c) => write!(f, "peer sent DPR ({c:?})"),
            Self::Shutdown => write!(f, "shut down after DPR/DPA"),
            Self::DpaTimeout => write!(f, "no DPA before the timeout"),
            Self::Stopped => write!(f, "stopping"),
            Self::Stale => write!(f, "connection no longer wanted"),
            Self::FramingLost(e) => write!(f, "framing lost: {e}"),
            Self::PeerClosed => write!(f, "peer closed the connection"),
        }
    }
}

/// Why a sent request got no answer from this peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// The connection went down.
    PeerDown,
    /// The watchdog suspects the peer (RFC 3539 failover).
    Failover,
    /// No answer before the request's deadline.
    Timeout,
    /// No usable peer serves the destination (any more).
    NoRoute,
}

/// What the peer tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// Open a connection to the peer, then call [`Peer::handle_connected`] or
    /// [`Peer::handle_connect_failed`] with this attempt number.
    Connect {
        /// The attempt number.
        attempt: u64,
    },
    /// Close this connection.
    Close {
        /// Which.
        conn: ConnId,
        /// Why, for the log.
        reason: CloseReason,
    },
    /// The peer is now usable for requests (open, watchdog OKAY).
    Up,
    /// The peer is no longer usable.
    Down {
        /// Why.
        reason: CloseReason,
    },
    /// An application request arrived; answer it with [`Peer::send_answer`].
    Request {
        /// The request.
        msg: Message,
    },
    /// The answer to a request sent with [`Peer::send_request`].
    Answer {
        /// The request's id.
        id: RequestId,
        /// The answer.
        msg: Message,
    },
    /// A sent request will get no answer from this peer; it may be sent elsewhere.
    Failed {
        /// The request's id.
        id: RequestId,
        /// The request as sent.
        request: Message,
        /// Why.
        reason: FailReason,
    },
    /// A received message was dropped (for the log).
    Discarded {
        /// Where it came from.
        conn: ConnId,
        /// Why.
        reason: &'static str,
    },
}

/// One peer. See the module documentation for how to drive it.
#[derive(Debug)]
pub struct Peer {
    cfg: PeerConfig,
    origin: Origin,
    state: PeerState,
    i_conn: Option<ConnId>,
    r_conn: Option<ConnId>,
    /// The CER waiting for our CEA on the responder connection (election states).
    r_cer: Option<Message>,
    attempt: Option<u64>,
    next_attempt: u64,
    remote: Option<Capabilities>,
    wd: Watchdog,
    available: bool,
    state_deadline: Option<Instant>,
    reconnect_at: Option<Instant>,
    backoff: Duration,
    stopped: bool,
    hbh: HopByHopIds,
    e2e: EndToEndIds,
    pending: HashMap<u32, (RequestId, Message)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<PeerEvent>,
}

impl Peer {
    /// A peer in state Closed. Call [`Peer::start`] to connect (when `initiate`) or hand it
    /// accepted connections with [`Peer::handle_incoming_cer`].
    pub fn new(cfg: PeerConfig) -> Self {
        let mut rng = SplitMix64::new(cfg.seed);
        let origin = Origin {
            host: cfg.local.origin_host.clone(),
            realm: cfg.local.origin_realm.clone(),
        };
        Self {
            wd: Watchdog::new(cfg.timers.tw, rng.next_u64()),
            hbh: HopByHopIds::new(rng.next_u64() as u32),
            e2e: EndToEndIds::new(cfg.start_unix_secs, rng.next_u64() as u32),
            backoff: cfg.timers.reconnect_min,
            origin,
            cfg,
            state: PeerState::Closed,
            i_conn: None,
            r_conn: None,
            r_cer: None,
            attempt: None,
            next_attempt: 0,
            remote: None,
            available: false,
            state_deadline: None,
            reconnect_at: None,
            stopped: false,
            pending: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The state.
    pub fn state(&self) -> PeerState {
        self.state
    }

    /// The watchdog status.
    pub fn watchdog(&self) -> WatchdogState {
        self.wd.state()
    }

    /// Whether requests may be routed here: open and watchdog OKAY (RFC 3539).
    pub fn is_available(&self) -> bool {
        self.available
    }

    /// The peer's capabilities, once exchanged.
    pub fn remote(&self) -> Option<&Capabilities> {
        self.remote.as_ref()
    }

    /// The peer's host: as exchanged, else as configured.
    pub fn remote_host(&self) -> Option<&DiameterIdentity> {
        self.remote
            .as_ref()
            .map(|r| &r.origin_host)
            .or(self.cfg.remote_host.as_ref())
    }

    /// How many sent requests await an answer.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// The connection in use when open.
    pub fn open_conn(&self) -> Option<ConnId> {
        match self.state {
            PeerState::IOpen => self.i_conn,
            PeerState::ROpen => self.r_conn,
            PeerState::Closing => self.i_conn.or(self.r_conn),
            _ => None,
        }
    }

    /// Whether `conn` belongs to this peer.
    pub fn owns(&self, conn: ConnId) -> bool {
        self.i_conn == Some(conn) || self.r_conn == Some(conn)
    }

    /// Bytes to write, in order.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// When [`Peer::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let wd = if self.state.is_open() {
            self.wd.deadline()
        } else {
            None
        };
        [self.state_deadline, self.reconnect_at, wd]
            .into_iter()
            .flatten()
            .min()
    }

    // ----- commands -----

    /// Start: connect now if this node initiates (RFC 6733 §5.6 event Start).
    pub fn start(&mut self, now: Instant) {
        self.stopped = false;
        if self.cfg.initiate && self.state == PeerState::Closed {
            self.connect(now);
        }
    }

    /// Stop: send a DPR when open, else drop any connection; no reconnection afterwards
    /// (RFC 6733 §5.4).
    pub fn stop(&mut self, now: Instant, cause: DisconnectCause) {
        self.stopped = true;
        self.reconnect_at = None;
        match self.state {
            PeerState::IOpen | PeerState::ROpen => {
                let conn = self.open_conn();
                let dpr = Dpr {
                    origin_host: self.origin.host.clone(),
                    origin_realm: self.origin.realm.clone(),
                    disconnect_cause: cause,
                };
                if let Some(c) = conn {
                    self.send_base_request(c, dpr.to_message());
                }
                self.set_unavailable(CloseReason::Stopped);
                self.state = PeerState::Closing;
                self.state_deadline = Some(now + self.cfg.timers.dpa_timeout);
            }
            PeerState::Closed | PeerState::Closing => {}
            _ => self.enter_closed(now, CloseReason::Stopped),
        }
    }

    /// Sends a request, assigning its Hop-by-Hop Identifier (and End-to-End Identifier when
    /// zero). Returns the Hop-by-Hop Identifier. The answer comes back as
    /// [`PeerEvent::Answer`] with `id`.
    pub fn send_request(
        &mut self,
        _now: Instant,
        id: RequestId,
        mut msg: Message,
    ) -> Result<u32, Error> {
        let conn = match self.state {
            PeerState::IOpen | PeerState::ROpen => self.open_conn(),
            _ => None,
        };
        let Some(conn) = conn else {
            return Err(self.unavailable());
        };
        msg.header.flags = msg.header.flags.with(CommandFlags::REQUEST, true);
        msg.header.hop_by_hop = self.hbh.next_id();
        if msg.header.end_to_end == 0 {
            msg.header.end_to_end = self.e2e.next_id();
        }
        let bytes = msg.encode()?;
        let hbh = msg.header.hop_by_hop;
        self.transmits.push_back(Transmit { conn, bytes });
        self.pending.insert(hbh, (id, msg));
        Ok(hbh)
    }

    /// Forgets a sent request (its deadline passed, or it was answered elsewhere).
    pub fn cancel(&mut self, hop_by_hop: u32) -> Option<(RequestId, Message)> {
        self.pending.remove(&hop_by_hop)
    }

    /// Sends an answer to a request that arrived as [`PeerEvent::Request`]. Returns the encoded
    /// bytes (for a duplicate cache).
    pub fn send_answer(&mut self, _now: Instant, msg: &Message) -> Result<Bytes, Error> {
        let bytes = msg.encode()?;
        self.send_bytes(bytes.clone())?;
        Ok(bytes)
    }

    /// Sends an already encoded message on the open connection.
    pub fn send_bytes(&mut self, bytes: Bytes) -> Result<(), Error> {
        match self.open_conn() {
            Some(conn) => {
                self.transmits.push_back(Transmit { conn, bytes });
                Ok(())
            }
            None => Err(self.unavailable()),
        }
    }

    fn unavailable(&self) -> Error {
        Error::PeerUnavailable {
            peer: self
                .remote_host()
                .map_or_else(|| "?".to_owned(), ToString::to_string),
            state: self.state.name(),
        }
    }

    // ----- network events -----

    /// A connection attempt succeeded (I-Rcv-Conn-Ack).
    pub fn handle_connected(&mut self, now: Instant, attempt: u64, conn: ConnId) {
        if self.attempt != Some(attempt) {
            self.events.push_back(PeerEvent::Close {
                conn,
                reason: CloseReason::Stale,
            });
            return;
        }
        self.attempt = None;
        self.i_conn = Some(conn);
        match self.state {
            PeerState::WaitConnAck => {
                self.send_cer(conn);
                self.state = PeerState::WaitICea;
                self.state_deadline = Some(now + self.cfg.timers.cea_timeout);
            }
            PeerState::WaitConnAckElect => {
                if self.wins_election() {
                    self.close_conn(conn, CloseReason::ElectionLost);
                    self.accept_responder(now);
                } else {
                    self.send_cer(conn);
                    self.state = PeerState::WaitReturns;
                    self.state_deadline = Some(now + self.cfg.timers.cea_timeout);
                }
            }
            _ => self.close_conn(conn, CloseReason::Stale),
        }
    }

    /// A connection attempt failed (I-Rcv-Conn-Nack).
    pub fn handle_connect_failed(&mut self, now: Instant, attempt: u64) {
        if self.attempt != Some(attempt) {
            return;
        }
        self.attempt = None;
        match self.state {
            PeerState::WaitConnAck => self.enter_closed(now, CloseReason::PeerClosed),
            PeerState::WaitConnAckElect => self.accept_responder(now),
            _ => {}
        }
    }

    /// A CER arrived as the first message on an accepted connection (R-Conn-CER). The owner has
    /// matched its Origin-Host to this peer.
    pub fn handle_incoming_cer(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let cer = match Cer::decode(&msg) {
            Ok(c) => c,
            Err(e) => {
                let ans = error_answer(&msg.header, &msg.avps, &e, &self.origin);
                self.send_encoded(conn, &ans);
                self.events.push_back(PeerEvent::Close {
                    conn,
                    reason: CloseReason::BadCer(e),
                });
                return;
            }
        };
        if self.stopped {
            self.send_cea(conn, &msg, ResultCode::DIAMETER_UNABLE_TO_COMPLY);
            self.events.push_back(PeerEvent::Close {
                conn,
                reason: CloseReason::Stopped,
            });
            return;
        }
        match self.state {
            PeerState::Closed | PeerState::WaitConnAck | PeerState::WaitICea => {}
            _ => {
                self.send_cea(conn, &msg, ResultCode::ELECTION_LOST);
                self.events.push_back(PeerEvent::Close {
                    conn,
                    reason: CloseReason::DuplicateConnection,
                });
                return;
            }
        }
        if self
            .cfg
            .local
            .common_applications(&cer.capabilities)
            .is_empty()
        {
            self.send_cea(conn, &msg, ResultCode::DIAMETER_NO_COMMON_APPLICATION);
            self.events.push_back(PeerEvent::Close {
                conn,
                reason: CloseReason::NoCommonApplication,
            });
            return;
        }
        self.remote = Some(cer.capabilities);
        self.r_conn = Some(conn);
        self.r_cer = Some(msg);
        match self.state {
            PeerState::Closed => {
                self.reconnect_at = None;
                self.accept_responder(now);
            }
            PeerState::WaitConnAck => self.state = PeerState::WaitConnAckElect,
            PeerState::WaitICea => {
                if self.wins_election() {
                    if let Some(i) = self.i_conn.take() {
                        self.close_conn(i, CloseReason::ElectionLost);
                    }
                    self.accept_responder(now);
                } else {
                    self.state = PeerState::WaitReturns;
                }
            }
            _ => {}
        }
    }

    /// A message arrived on `conn`.
    pub fn handle_message(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let on_i = self.i_conn == Some(conn);
        let on_r = self.r_conn == Some(conn);
        if !on_i && !on_r {
            self.events.push_back(PeerEvent::Discarded {
                conn,
                reason: "connection not owned by this peer",
            });
            return;
        }
        let is_cea = msg.header.code == CommandCode::CAPABILITIES_EXCHANGE && !msg.is_request();
        match self.state {
            PeerState::WaitICea if on_i => {
                if is_cea {
                    self.process_cea(now, conn, &msg);
                } else {
                    self.enter_closed(now, CloseReason::NotCea);
                }
            }
            PeerState::WaitReturns if on_i => {
                if is_cea {
                    if let Some(r) = self.r_conn.take() {
                        self.close_conn(r, CloseReason::ElectionLost);
                    }
                    self.r_cer = None;
                    self.process_cea(now, conn, &msg);
                } else {
                    self.i_conn = None;
                    self.close_conn(conn, CloseReason::NotCea);
                    self.accept_responder(now);
                }
            }
            PeerState::IOpen | PeerState::ROpen if self.open_conn() == Some(conn) => {
                self.open_message(now, conn, msg);
            }
            PeerState::Closing => self.closing_message(now, conn, msg),
            _ => self.events.push_back(PeerEvent::Discarded {
                conn,
                reason: "not expected in this state",
            }),
        }
    }

    /// `conn` closed, or the driver closed it after an error.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        if self.i_conn == Some(conn) {
            self.i_conn = None;
            match self.state {
                PeerState::WaitICea | PeerState::IOpen | PeerState::Closing => {
                    self.enter_closed(now, CloseReason::PeerClosed);
                }
                PeerState::WaitReturns => self.accept_responder(now),
                _ => {}
            }
        } else if self.r_conn == Some(conn) {
            self.r_conn = None;
            self.r_cer = None;
            match self.state {
                PeerState::WaitConnAckElect => self.state = PeerState::WaitConnAck,
                PeerState::WaitReturns => self.state = PeerState::WaitICea,
                PeerState::ROpen | PeerState::Closing => {
                    self.enter_closed(now, CloseReason::PeerClosed)
                }
                _ => {}
            }
        }
    }

    /// Time passed: runs every timer that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state_deadline.is_some_and(|d| d <= now) {
            self.state_deadline = None;
            let reason = match self.state {
                PeerState::WaitConnAck | PeerState::WaitConnAckElect => CloseReason::ConnectTimeout,
                PeerState::WaitICea | PeerState::WaitReturns => CloseReason::CeaTimeout,
                PeerState::Closing => CloseReason::DpaTimeout,
                _ => CloseReason::Stale,
            };
            self.enter_closed(now, reason);
        }
        if self.reconnect_at.is_some_and(|d| d <= now) {
            self.reconnect_at = None;
            if self.state == PeerState::Closed && !self.stopped && self.cfg.initiate {
                self.connect(now);
            }
        }
        if self.state.is_open() && self.wd.deadline().is_some_and(|d| d <= now) {
            let action = self.wd.on_timeout(now);
            self.watchdog_action(now, action);
        }
    }

    // ----- internals -----

    fn connect(&mut self, now: Instant) {
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        self.attempt = Some(attempt);
        self.state = PeerState::WaitConnAck;
        self.state_deadline = Some(now + self.cfg.timers.connect_timeout);
        self.events.push_back(PeerEvent::Connect { attempt });
    }

    /// RFC 6733 §5.6.4: the higher Origin-Host, compared as octets, wins.
    fn wins_election(&self) -> bool {
        let theirs = self.remote.as_ref().map_or("", |r| r.origin_host.as_str());
        self.origin.host.as_str().as_bytes() > theirs.as_bytes()
    }

    /// R-Snd-CEA on the responder connection, then R-Open.
    fn accept_responder(&mut self, now: Instant) {
        let (Some(conn), Some(cer)) = (self.r_conn, self.r_cer.take()) else {
            self.enter_closed(now, CloseReason::Stale);
            return;
        };
        self.send_cea(conn, &cer, ResultCode::DIAMETER_SUCCESS);
        self.enter_open(now, PeerState::ROpen);
    }

    fn process_cea(&mut self, now: Instant, conn: ConnId, msg: &Message) {
        let Ok(cea) = Cea::decode(msg) else {
            self.enter_closed(now, CloseReason::NotCea);
            return;
        };
        if !cea.result_code.is_success() {
            self.enter_closed(now, CloseReason::CeaRejected(cea.result_code));
            return;
        }
        if let Some(expected) = &self.cfg.remote_host
            && !expected
                .as_str()
                .eq_ignore_ascii_case(cea.capabilities.origin_host.as_str())
        {
            let reason = CloseReason::UnexpectedPeer {
                expected: expected.to_string(),
                got: cea.capabilities.origin_host.to_string(),
            };
            self.enter_closed(now, reason);
            return;
        }
        if self
            .cfg
            .local
            .common_applications(&cea.capabilities)
            .is_empty()
        {
            self.enter_closed(now, CloseReason::NoCommonApplication);
            return;
        }
        self.remote = Some(cea.capabilities);
        self.i_conn = Some(conn);
        self.enter_open(now, PeerState::IOpen);
    }

    fn enter_open(&mut self, now: Instant, state: PeerState) {
        self.state = state;
        self.state_deadline = None;
        self.reconnect_at = None;
        self.backoff = self.cfg.timers.reconnect_min;
        let action = self.wd.connection_up(now);
        self.watchdog_action(now, action);
    }

    fn watchdog_action(&mut self, now: Instant, action: WatchdogAction) {
        match action {
            WatchdogAction::None => {}
            WatchdogAction::SendDwr => {
                if let Some(conn) = self.open_conn() {
                    let dwr = Dwr::new(&self.origin, self.cfg.local.origin_state_id);
                    self.send_base_request(conn, dwr.to_message());
                }
            }
            WatchdogAction::Failback => {
                if !self.available {
                    self.available = true;
                    self.events.push_back(PeerEvent::Up);
                }
            }
            WatchdogAction::Failover => {
                self.set_unavailable(CloseReason::WatchdogExpired);
                self.fail_pending(FailReason::Failover);
            }
            WatchdogAction::Close => self.enter_closed(now, CloseReason::WatchdogExpired),
        }
    }

    fn set_unavailable(&mut self, reason: CloseReason) {
        if self.available {
            self.available = false;
            self.events.push_back(PeerEvent::Down { reason });
        }
    }

    fn fail_pending(&mut self, reason: FailReason) {
        let mut pending: Vec<_> = self.pending.drain().collect();
        pending.sort_unstable_by_key(|(_, (id, _))| *id);
        for (_, (id, request)) in pending {
            self.events.push_back(PeerEvent::Failed {
                id,
                request,
                reason,
            });
        }
    }

    /// Cleanup: close every connection, fail pending requests, schedule reconnection.
    fn enter_closed(&mut self, now: Instant, reason: CloseReason) {
        for conn in [self.i_conn.take(), self.r_conn.take()]
            .into_iter()
            .flatten()
        {
            self.close_conn(conn, reason.clone());
        }
        self.r_cer = None;
        self.attempt = None;
        self.set_unavailable(reason.clone());
        if self.state.is_open() || self.state == PeerState::Closing {
            self.wd.connection_down();
        }
        self.fail_pending(FailReason::PeerDown);
        self.state = PeerState::Closed;
        self.state_deadline = None;
        if self.cfg.initiate && !self.stopped {
            let delay = match reason {
                CloseReason::DisconnectRequested(DisconnectCause::REBOOTING) => {
                    self.cfg.timers.reconnect_min
                }
                CloseReason::DisconnectRequested(_) => self.cfg.timers.reconnect_max,
                _ => self.backoff,
            };
            self.reconnect_at = Some(now + delay);
            self.backoff = (self.backoff * 2).min(self.cfg.timers.reconnect_max);
        }
    }

    fn close_conn(&mut self, conn: ConnId, reason: CloseReason) {
        if self.i_conn == Some(conn) {
            self.i_conn = None;
        }
        if self.r_conn == Some(conn) {
            self.r_conn = None;
        }
        self.events.push_back(PeerEvent::Close { conn, reason });
    }

    fn open_message(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let code = msg.header.code;
        let request = msg.is_request();
        match (code, request) {
            (CommandCode::DEVICE_WATCHDOG, true) => {
                let action = self.wd.on_traffic(now);
                let mut dwa =
                    Dwa::success(&self.origin, self.cfg.local.origin_state_id).to_message();
                dwa.header = msg.header.answer();
                self.send_encoded(conn, &dwa);
                self.watchdog_action(now, action);
            }
            (CommandCode::DEVICE_WATCHDOG, false) => {
                let action = self.wd.on_dwa(now);
                self.watchdog_action(now, action);
            }
            (CommandCode::DISCONNECT_PEER, true) => {
                let cause =
                    Dpr::decode(&msg).map_or(DisconnectCause::REBOOTING, |d| d.disconnect_cause);
                let mut dpa = Dpa::success(&self.origin).to_message();
                dpa.header = msg.header.answer();
                self.send_encoded(conn, &dpa);
                self.enter_closed(now, CloseReason::DisconnectRequested(cause));
            }
            (CommandCode::CAPABILITIES_EXCHANGE, true) => {
                self.send_cea(conn, &msg, ResultCode::DIAMETER_SUCCESS)
            }
            (CommandCode::CAPABILITIES_EXCHANGE | CommandCode::DISCONNECT_PEER, false) => {
                self.events.push_back(PeerEvent::Discarded {
                    conn,
                    reason: "unexpected base answer",
                });
            }
            (_, true) => {
                let action = self.wd.on_traffic(now);
                self.watchdog_action(now, action);
                self.events.push_back(PeerEvent::Request { msg });
            }
            (_, false) => {
                let action = self.wd.on_traffic(now);
                self.watchdog_action(now, action);
                self.deliver_answer(conn, msg);
            }
        }
    }

    fn closing_message(&mut self, now: Instant, conn: ConnId, msg: Message) {
        match (msg.header.code, msg.is_request()) {
            (CommandCode::DISCONNECT_PEER, false) => self.enter_closed(now, CloseReason::Shutdown),
            (CommandCode::DEVICE_WATCHDOG, true) => {
                let mut dwa =
                    Dwa::success(&self.origin, self.cfg.local.origin_state_id).to_message();
                dwa.header = msg.header.answer();
                self.send_encoded(conn, &dwa);
            }
            (_, false) => self.deliver_answer(conn, msg),
            (_, true) => self.events.push_back(PeerEvent::Discarded {
                conn,
                reason: "request while closing",
            }),
        }
    }

    fn deliver_answer(&mut self, conn: ConnId, msg: Message) {
        match self.pending.remove(&msg.header.hop_by_hop) {
            Some((id, _)) => self.events.push_back(PeerEvent::Answer { id, msg }),
            None => self.events.push_back(PeerEvent::Discarded {
                conn,
                reason: "answer with unknown Hop-by-Hop Identifier",
            }),
        }
    }

    fn send_cer(&mut self, conn: ConnId) {
        let cer = Cer {
            capabilities: self.cfg.local.clone(),
            extra: Vec::new(),
        };
        self.send_base_request(conn, cer.to_message());
    }

    fn send_cea(&mut self, conn: ConnId, cer: &Message, result_code: ResultCode) {
        let cea = Cea {
            result_code,
            capabilities: self.cfg.local.clone(),
            error_message: None,
            failed_avp: None,
            extra: Vec::new(),
        };
        let mut m = cea.to_message();
        m.header = cer.header.answer();
        if result_code.is_protocol_error() {
            m.header.flags = m.header.flags.with(CommandFlags::ERROR, true);
        }
        self.send_encoded(conn, &m);
    }

    fn send_base_request(&mut self, conn: ConnId, mut msg: Message) {
        msg.header.hop_by_hop = self.hbh.next_id();
        msg.header.end_to_end = self.e2e.next_id();
        self.send_encoded(conn, &msg);
    }

    fn send_encoded(&mut self, conn: ConnId, msg: &Message) {
        match msg.encode() {
            Ok(bytes) => self.transmits.push_back(Transmit { conn, bytes }),
            Err(_) => self.events.push_back(PeerEvent::Discarded {
                conn,
                reason: "could not encode a base message",
            }),
        }
    }
}
