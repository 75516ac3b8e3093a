//! TCP inside userspace ESP: a TCP endpoint for the segments that ESP transport mode carries
//! (RFC 4303 §3.1.1), so SIP over TCP can be protected like SIP over UDP (TS 33.203 §7.1,
//! TS 24.229 §5.2.2: "protect UDP and TCP").
//!
//! [`EspTcp`] is a pure state machine around [smoltcp](https://docs.rs/smoltcp)'s TCP: the
//! caller hands it each decrypted inner segment with the outer IP addresses
//! ([`EspTcp::handle_segment`]), opens connections ([`EspTcp::connect`]), queues stream bytes
//! ([`EspTcp::send`]) and fires its timer ([`EspTcp::poll_timeout`] /
//! [`EspTcp::handle_timeout`]); it answers with [`TcpEvent`]s: segments to protect with the
//! outbound SA of their port pair, and per-connection stream data. Time and the initial
//! sequence-number seed come in as arguments; nothing here sends, sleeps or reads a clock.
//!
//! ```
//! use std::time::Instant;
//! use imslab_ipsec::tcp::{EspTcp, EspTcpConfig, TcpEvent};
//! let now = Instant::now();
//! let mut pcscf = EspTcp::new("127.0.0.1".parse().unwrap(), EspTcpConfig::default(), 1, now);
//! let mut ue = EspTcp::new("127.0.0.2".parse().unwrap(), EspTcpConfig::default(), 2, now);
//! pcscf.listen(6100); // the P-CSCF's port-s
//! let conn = ue.connect(now, 5062, "127.0.0.1:6100".parse().unwrap()).unwrap();
//! ue.send(now, conn, b"REGISTER sip:ims.example SIP/2.0\r\n...").unwrap();
//! // Carry segments both ways (a real driver protects them with ESP in between).
//! let mut got = Vec::new();
//! for _ in 0..4 {
//!     for ev in ue.take_events() {
//!         if let TcpEvent::Segment { from, to, segment } = ev {
//!             pcscf.handle_segment(now, from, to, &segment).unwrap();
//!         }
//!     }
//!     for ev in pcscf.take_events() {
//!         match ev {
//!             TcpEvent::Segment { from, to, segment } => ue.handle_segment(now, from, to, &segment).unwrap(),
//!             TcpEvent::Data { data, .. } => got.extend(data),
//!             _ => {}
//!         }
//!     }
//! }
//! assert!(got.starts_with(b"REGISTER"));
//! ```
//!
//! Bounds: at most [`EspTcpConfig::max_per_peer`] connections per peer address (the ports of
//! one SA admit one connection at a time, so this bounds a phone's SA sets during a rekey) and
//! [`EspTcpConfig::max_total`] in all; a SYN beyond them is answered with RST and reported
//! ([`TcpEvent::Refused`]). A connection idle for [`EspTcpConfig::idle_timeout`] is reset.
//! When SAs go, [`EspTcp::retain`] resets the connections no remaining SA can carry.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};

use crate::esp::next_header;
use crate::inner::{self, TcpSegment, tcp_flags};

/// Limits and sizes of an [`EspTcp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspTcpConfig {
    /// Largest inner IP packet (header + TCP), so the ESP packet fits the path MTU after the
    /// ESP header, IV, padding and ICV (about 60 bytes with aes-cbc). Sets the MSS.
    pub mtu: usize,
    /// Most connections with one peer address.
    pub max_per_peer: usize,
    /// Most connections in all.
    pub max_total: usize,
    /// A connection without a segment either way for this long is reset.
    pub idle_timeout: Duration,
    /// Receive and send window buffer of each connection, bytes (at most 65,535: no window
    /// scaling needed).
    pub buffer: usize,
    /// Bytes [`EspTcp::send`] may queue per connection beyond the send buffer.
    pub max_pending: usize,
}

impl Default for EspTcpConfig {
    fn default() -> Self {
        Self {
            mtu: 1400,
            max_per_peer: 8,
            max_total: 1024,
            idle_timeout: Duration::from_secs(300),
            buffer: 32 * 1024,
            max_pending: 256 * 1024,
        }
    }
}

/// One TCP connection of an [`EspTcp`], numbered from 1 in opening order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tcp#{}", self.0)
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Closed by either side (FIN handshake done, or RST).
    Closed,
    /// Reset after [`EspTcpConfig::idle_timeout`] without a segment.
    Idle,
    /// Reset because its SAs were removed ([`EspTcp::retain`]) or the caller aborted it.
    Aborted,
}

/// Why a connection was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TcpError {
    /// The peer already has [`EspTcpConfig::max_per_peer`] connections.
    #[error("{peer} already has {limit} TCP connections inside ESP")]
    PeerLimit {
        /// The peer address.
        peer: IpAddr,
        /// The limit.
        limit: usize,
    },
    /// [`EspTcpConfig::max_total`] connections are open.
    #[error("{limit} TCP connections inside ESP already open")]
    TotalLimit {
        /// The limit.
        limit: usize,
    },
    /// No such connection (closed, or never opened).
    #[error("no TCP connection {0}")]
    NoConnection(ConnId),
    /// More than [`EspTcpConfig::max_pending`] bytes are waiting to be sent.
    #[error("{conn}: {pending} bytes already waiting to be sent")]
    SendQueueFull {
        /// The connection.
        conn: ConnId,
        /// Bytes waiting.
        pending: usize,
    },
    /// The local address family differs from the peer's, or a port is 0.
    #[error("cannot connect to {0}")]
    BadEndpoint(SocketAddr),
    /// The inner segment is malformed (truncated, bad checksum, not for our address).
    #[error("inner TCP segment: {0}")]
    Segment(#[from] inner::PacketError),
}

/// What an [`EspTcp`] tells its driver, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpEvent {
    /// A TCP segment (with its checksum over the outer addresses) to protect with the outbound
    /// SA from `from.port()` to `to` and send to `to.ip()`.
    Segment {
        /// Our address and port.
        from: SocketAddr,
        /// The peer's address and port.
        to: SocketAddr,
        /// The TCP segment.
        segment: Vec<u8>,
    },
    /// A connection is established (ours or the peer's).
    Opened {
        /// The connection.
        conn: ConnId,
        /// Our address and port.
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
    },
    /// Stream bytes arrived on a connection.
    Data {
        /// The connection.
        conn: ConnId,
        /// Our address and port.
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
        /// The bytes, in stream order.
        data: Vec<u8>,
    },
    /// A connection ended; its id is not used again.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Our address and port.
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
    /// A peer's SYN was answered with RST because of a limit.
    Refused {
        /// Our port it was for.
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
        /// Which limit.
        reason: TcpError,
    },
}

/// The in-memory "network device" smoltcp reads from and writes to: whole IP packets.
#[derive(Debug, Default)]
struct Wire {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
}

struct RxTok(Vec<u8>);
struct TxTok<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0; len];
        let r = f(&mut buf);
        self.0.push_back(buf);
        r
    }
}

impl Device for Wire {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(RxTok, TxTok<'_>)> {
        let p = self.rx.pop_front()?;
        Some((RxTok(p), TxTok(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<TxTok<'_>> {
        Some(TxTok(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        c
    }
}

#[derive(Debug)]
struct Conn {
    handle: SocketHandle,
    local: SocketAddr,
    remote: SocketAddr,
    last: Instant,
    pending: Vec<u8>,
    opened: bool,
    closing: bool,
}

/// A userspace TCP endpoint on one local address, for the segments inside ESP. See the
/// module documentation.
pub struct EspTcp {
    local: IpAddr,
    cfg: EspTcpConfig,
    epoch: Instant,
    iface: Interface,
    sockets: SocketSet<'static>,
    wire: Wire,
    listening: HashSet<u16>,
    conns: HashMap<ConnId, Conn>,
    by_tuple: HashMap<(u16, SocketAddr), ConnId>,
    next: u64,
    events: Vec<TcpEvent>,
    /// The stack's time at the last poll.
    at: smoltcp::time::Instant,
}

impl std::fmt::Debug for EspTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspTcp")
            .field("local", &self.local)
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

fn ip_address(ip: IpAddr) -> IpAddress {
    match ip {
        IpAddr::V4(a) => IpAddress::Ipv4(a),
        IpAddr::V6(a) => IpAddress::Ipv6(a),
    }
}

fn socket_addr(e: IpEndpoint) -> SocketAddr {
    let ip = match e.addr {
        IpAddress::Ipv4(a) => IpAddr::V4(a),
        IpAddress::Ipv6(a) => IpAddr::V6(a),
    };
    SocketAddr::new(ip, e.port)
}

impl EspTcp {
    /// A TCP endpoint for `local` (the address the ESP packets are exchanged on). `seed` seeds
    /// initial sequence numbers (RFC 9293 §3.4.1); `now` is the time base.
    pub fn new(local: IpAddr, cfg: EspTcpConfig, seed: u64, now: Instant) -> Self {
        let mut wire = Wire {
            mtu: cfg.mtu.clamp(576, 65_535),
            ..Wire::default()
        };
        let mut ic = IfaceConfig::new(HardwareAddress::Ip);
        ic.random_seed = seed;
        let mut iface = Interface::new(ic, &mut wire, smoltcp::time::Instant::ZERO);
        // Prefix 0: every peer is on-link (there is no neighbour discovery on an IP medium).
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(ip_address(local), 0));
        });
        Self {
            local,
            cfg,
            epoch: now,
            iface,
            sockets: SocketSet::new(Vec::new()),
            wire,
            listening: HashSet::new(),
            conns: HashMap::new(),
            by_tuple: HashMap::new(),
            next: 0,
            events: Vec::new(),
            at: smoltcp::time::Instant::ZERO,
        }
    }

    /// The local address.
    pub fn local_ip(&self) -> IpAddr {
        self.local
    }

    /// The configuration.
    pub fn config(&self) -> &EspTcpConfig {
        &self.cfg
    }

    /// Accepts connections to `port` (a protected server port).
    pub fn listen(&mut self, port: u16) {
        self.listening.insert(port);
    }

    /// Stops accepting connections to `port` (open ones stay).
    pub fn unlisten(&mut self, port: u16) {
        self.listening.remove(&port);
    }

    fn ts(&self, now: Instant) -> smoltcp::time::Instant {
        let us = now.saturating_duration_since(self.epoch).as_micros();
        smoltcp::time::Instant::from_micros(i64::try_from(us).unwrap_or(i64::MAX))
    }

    fn new_socket(&self) -> tcp::Socket<'static> {
        let size = self.cfg.buffer.clamp(1024, 65_535);
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; size]),
            tcp::SocketBuffer::new(vec![0; size]),
        );
        // SIP messages go out whole: no need to wait for small-segment coalescing.
        s.set_nagle_enabled(false);
        s
    }

    fn check_limits(&self, peer: IpAddr) -> Result<(), TcpError> {
        if self.conns.len() >= self.cfg.max_total {
            return Err(TcpError::TotalLimit {
                limit: self.cfg.max_total,
            });
        }
        let n = self
            .conns
            .values()
            .filter(|c| c.remote.ip() == peer)
            .count();
        if n >= self.cfg.max_per_peer {
            return Err(TcpError::PeerLimit {
                peer,
                limit: self.cfg.max_per_peer,
            });
        }
        Ok(())
    }

    fn add_conn(
        &mut self,
        now: Instant,
        handle: SocketHandle,
        local: u16,
        remote: SocketAddr,
    ) -> ConnId {
        self.next += 1;
        let id = ConnId(self.next);
        self.conns.insert(
            id,
            Conn {
                handle,
                local: SocketAddr::new(self.local, local),
                remote,
                last: now,
                pending: Vec::new(),
                opened: false,
                closing: false,
            },
        );
        self.by_tuple.insert((local, remote), id);
        id
    }

    /// A decrypted inner TCP segment from `from` to `to` (outer addresses, inner ports); its
    /// checksum must verify over those addresses. A SYN to a [`EspTcp::listen`] port opens
    /// a connection within the limits.
    pub fn handle_segment(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        segment: &[u8],
    ) -> Result<(), TcpError> {
        let seg = inner::parse_tcp(from.ip(), to.ip(), segment)?;
        if to.ip() != self.local || from.ip().is_ipv4() != self.local.is_ipv4() {
            return Err(TcpError::Segment(inner::PacketError::Unexpected(
                "destination address",
            )));
        }
        let from = SocketAddr::new(from.ip(), seg.src_port);
        let to = SocketAddr::new(to.ip(), seg.dst_port);
        self.accept_segment(now, from, to, &seg, segment)
    }

    /// [`EspTcp::handle_segment`] for a segment [`crate::socket::EspSocket::recv`] returned.
    pub fn handle_received(
        &mut self,
        now: Instant,
        r: &crate::socket::ReceivedTcp,
    ) -> Result<(), TcpError> {
        self.handle_segment(now, r.from, r.to, &r.segment_bytes())
    }

    fn accept_segment(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        seg: &TcpSegment<'_>,
        raw: &[u8],
    ) -> Result<(), TcpError> {
        let key = (to.port(), from);
        if let Some(id) = self.by_tuple.get(&key)
            && let Some(c) = self.conns.get_mut(id)
        {
            c.last = now;
        } else if seg.flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN
            && self.listening.contains(&to.port())
        {
            match self.check_limits(from.ip()) {
                Ok(()) => {
                    let mut s = self.new_socket();
                    // Cannot fail: the port is not 0 and the socket is new.
                    let _ = s.listen(IpListenEndpoint {
                        addr: Some(ip_address(self.local)),
                        port: to.port(),
                    });
                    let h = self.sockets.add(s);
                    self.add_conn(now, h, to.port(), from);
                }
                Err(reason) => self.events.push(TcpEvent::Refused {
                    local: to,
                    remote: from,
                    reason,
                }),
            }
        }
        let mut packet = Vec::with_capacity(raw.len() + 40);
        inner::build_ip_header(from.ip(), to.ip(), next_header::TCP, raw.len(), &mut packet);
        packet.extend_from_slice(raw);
        self.wire.rx.push_back(packet);
        self.pump(now);
        Ok(())
    }

    /// Opens a connection from our `local_port` to `remote` (the P-CSCF's port-c to a phone's
    /// port-s, or a phone's port-c to the P-CSCF's port-s). An open connection for the same
    /// ports is returned instead. Bytes can be queued with [`EspTcp::send`] at once.
    pub fn connect(
        &mut self,
        now: Instant,
        local_port: u16,
        remote: SocketAddr,
    ) -> Result<ConnId, TcpError> {
        if let Some(id) = self.find(local_port, remote) {
            return Ok(id);
        }
        if local_port == 0 || remote.port() == 0 || remote.is_ipv4() != self.local.is_ipv4() {
            return Err(TcpError::BadEndpoint(remote));
        }
        self.check_limits(remote.ip())?;
        let mut s = self.new_socket();
        s.connect(
            self.iface.context(),
            IpEndpoint::new(ip_address(remote.ip()), remote.port()),
            IpListenEndpoint {
                addr: Some(ip_address(self.local)),
                port: local_port,
            },
        )
        .map_err(|_| TcpError::BadEndpoint(remote))?;
        let h = self.sockets.add(s);
        let id = self.add_conn(now, h, local_port, remote);
        self.pump(now);
        Ok(id)
    }

    /// The open connection between our `local_port` and `remote`, if any (and not closing).
    pub fn find(&self, local_port: u16, remote: SocketAddr) -> Option<ConnId> {
        self.by_tuple
            .get(&(local_port, remote))
            .copied()
            .filter(|id| self.conns.get(id).is_some_and(|c| !c.closing))
    }

    /// Queues `data` on a connection (sent as soon as it is established and the window
    /// allows).
    pub fn send(&mut self, now: Instant, conn: ConnId, data: &[u8]) -> Result<(), TcpError> {
        let max = self.cfg.max_pending;
        let c = self
            .conns
            .get_mut(&conn)
            .filter(|c| !c.closing)
            .ok_or(TcpError::NoConnection(conn))?;
        if c.pending.len() + data.len() > max {
            return Err(TcpError::SendQueueFull {
                conn,
                pending: c.pending.len(),
            });
        }
        c.pending.extend_from_slice(data);
        c.last = now;
        self.pump(now);
        Ok(())
    }

    /// Closes a connection gracefully (FIN after the queued bytes).
    pub fn close(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.closing = true;
        }
        self.pump(now);
    }

    /// Resets every connection for which `keep(local, remote)` is false: call it after SAs
    /// were removed, with "an outbound SA from `local.port()` to `remote` is still installed".
    pub fn retain(&mut self, now: Instant, mut keep: impl FnMut(SocketAddr, SocketAddr) -> bool) {
        let gone: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !keep(c.local, c.remote))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.abort(id, CloseReason::Aborted);
        }
        self.pump(now);
    }

    /// Resets every connection (shutdown).
    pub fn abort_all(&mut self, now: Instant) {
        self.retain(now, |_, _| false);
    }

    fn abort(&mut self, id: ConnId, reason: CloseReason) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        self.by_tuple.remove(&(c.local.port(), c.remote));
        // Emit the RST now, then forget the socket.
        self.sockets.get_mut::<tcp::Socket<'_>>(c.handle).abort();
        self.iface.poll(self.at, &mut self.wire, &mut self.sockets);
        self.sockets.remove(c.handle);
        self.events.push(TcpEvent::Closed {
            conn: id,
            local: c.local,
            remote: c.remote,
            reason,
        });
    }

    /// When [`EspTcp::handle_timeout`] next has work (retransmission, delayed ACK, idle reset).
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        let t = self.ts(now);
        let stack = self.iface.poll_at(t, &self.sockets).map(|at| {
            self.epoch + Duration::from_micros(u64::try_from(at.total_micros()).unwrap_or(0))
        });
        let idle = self
            .conns
            .values()
            .map(|c| c.last + self.cfg.idle_timeout)
            .min();
        stack.into_iter().chain(idle).min()
    }

    /// Timers are due: retransmits, and resets connections idle too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        let idle: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.last + self.cfg.idle_timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.abort(id, CloseReason::Idle);
        }
        self.pump(now);
    }

    /// The events so far, oldest first.
    pub fn take_events(&mut self) -> Vec<TcpEvent> {
        std::mem::take(&mut self.events)
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True without connections.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Each connection's id, local and remote endpoint.
    pub fn connections(&self) -> impl Iterator<Item = (ConnId, SocketAddr, SocketAddr)> + '_ {
        self.conns.iter().map(|(id, c)| (*id, c.local, c.remote))
    }

    /// Runs the stack until it has nothing more to do now, then turns its output into events.
    fn pump(&mut self, now: Instant) {
        let t = self.ts(now).max(self.at);
        self.at = t;
        for _ in 0..16 {
            let mut progress = false;
            for c in self.conns.values_mut() {
                let s = self.sockets.get_mut::<tcp::Socket<'_>>(c.handle);
                if !c.pending.is_empty() && s.may_send() {
                    let n = s.send_slice(&c.pending).unwrap_or(0);
                    if n > 0 {
                        c.pending.drain(..n);
                        progress = true;
                    }
                }
                if c.closing
                    && c.pending.is_empty()
                    && s.is_open()
                    && s.state() != tcp::State::SynSent
                {
                    s.close();
                }
            }
            self.iface.poll(t, &mut self.wire, &mut self.sockets);
            let mut out = Vec::new();
            let mut ended = Vec::new();
            for (id, c) in &mut self.conns {
                let s = self.sockets.get_mut::<tcp::Socket<'_>>(c.handle);
                if !c.opened && s.may_send() {
                    c.opened = true;
                    progress = true; // queued bytes can go now
                    if let Some(r) = s.remote_endpoint() {
                        c.remote = socket_addr(r);
                    }
                    out.push(TcpEvent::Opened {
                        conn: *id,
                        local: c.local,
                        remote: c.remote,
                    });
                }
                let mut data = Vec::new();
                while s.can_recv() {
                    let got = s.recv(|b| (b.len(), b.to_vec())).unwrap_or_default();
                    if got.is_empty() {
                        break;
                    }
                    data.extend(got);
                }
                if !data.is_empty() {
                    c.last = now;
                    progress = true;
                    out.push(TcpEvent::Data {
                        conn: *id,
                        local: c.local,
                        remote: c.remote,
                        data,
                    });
                }
                // The peer closed its side: SIP has nothing more to say on it either.
                if s.state() == tcp::State::CloseWait && c.pending.is_empty() {
                    s.close();
                    progress = true;
                }
                match s.state() {
                    // A SYN that did not open it (malformed, or a retransmission).
                    tcp::State::Listen => ended.push((*id, false)),
                    tcp::State::Closed | tcp::State::TimeWait => ended.push((*id, true)),
                    _ => {}
                }
            }
            self.events.extend(out);
            for (id, report) in ended {
                if let Some(c) = self.conns.remove(&id) {
                    self.by_tuple.remove(&(c.local.port(), c.remote));
                    self.sockets.remove(c.handle);
                    if report {
                        self.events.push(TcpEvent::Closed {
                            conn: id,
                            local: c.local,
                            remote: c.remote,
                            reason: CloseReason::Closed,
                        });
                    }
                }
            }
            self.drain_wire();
            if !progress {
                break;
            }
        }
    }

    fn drain_wire(&mut self) {
        while let Some(p) = self.wire.tx.pop_front() {
            if let Some(ev) = self.segment_of(&p) {
                self.events.push(ev);
            }
        }
    }

    /// Splits an IP packet smoltcp built into its addresses and TCP segment.
    fn segment_of(&self, p: &[u8]) -> Option<TcpEvent> {
        let (src, dst, proto, payload) = match p.first()? >> 4 {
            4 => {
                let h = inner::parse_ipv4(p).ok()?;
                (
                    IpAddr::V4(h.src),
                    IpAddr::V4(h.dst),
                    h.protocol,
                    p.get(h.header_len..h.total_len)?,
                )
            }
            6 => {
                let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
                let dst: [u8; 16] = p.get(24..40)?.try_into().ok()?;
                (
                    IpAddr::from(src),
                    IpAddr::from(dst),
                    *p.get(6)?,
                    p.get(40..)?,
                )
            }
            _ => return None,
        };
        if proto != next_header::TCP {
            return None;
        }
        let ports = payload.get(..4)?;
        Some(TcpEvent::Segment {
            from: SocketAddr::new(src, u16::from_be_bytes([ports[0], ports[1]])),
            to: SocketAddr::new(dst, u16::from_be_bytes([ports[2], ports[3]])),
            segment: payload.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PCSCF: &str = "127.0.0.1";
    const UE: &str = "127.0.0.2";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn pair(now: Instant, cfg: EspTcpConfig) -> (EspTcp, EspTcp) {
        let mut p = EspTcp::new(PCSCF.parse().unwrap(), cfg, 11, now);
        p.listen(6100);
        let mut u = EspTcp::new(UE.parse().unwrap(), cfg, 22, now);
        u.listen(5064);
        (p, u)
    }

    /// Everything but segments, per side.
    #[derive(Default, Debug)]
    struct Seen {
        events: Vec<TcpEvent>,
        data: Vec<u8>,
        segments: Vec<Vec<u8>>,
    }

    /// Carries segments between the two ends until both are quiet; `drop` may discard one.
    fn exchange(
        now: Instant,
        a: &mut EspTcp,
        b: &mut EspTcp,
        sa_: &mut Seen,
        sb: &mut Seen,
        mut drop: impl FnMut(&[u8]) -> bool,
    ) {
        for _ in 0..200 {
            let ea = a.take_events();
            let eb = b.take_events();
            if ea.is_empty() && eb.is_empty() {
                return;
            }
            for (evs, to, seen) in [(ea, &mut *b, &mut *sa_), (eb, &mut *a, &mut *sb)] {
                for ev in evs {
                    match ev {
                        TcpEvent::Segment {
                            from,
                            to: dst,
                            segment,
                        } => {
                            seen.segments.push(segment.clone());
                            if !drop(&segment) {
                                to.handle_segment(now, from, dst, &segment).unwrap();
                            }
                        }
                        TcpEvent::Data { data, .. } => seen.data.extend(data),
                        other => seen.events.push(other),
                    }
                }
            }
        }
        panic!("the two stacks never went quiet");
    }

    fn big_message(len: usize) -> Vec<u8> {
        let mut m = b"NOTIFY sip:ue@127.0.0.2:5064 SIP/2.0\r\nContent-Length: ".to_vec();
        let body = vec![b'x'; len];
        m.extend(format!("{}\r\n\r\n", body.len()).bytes());
        m.extend(body);
        m
    }

    #[test]
    fn phone_connects_to_port_s_and_a_large_message_arrives_whole_in_mss_sized_segments() {
        let now = Instant::now();
        let (mut p, mut u) = pair(now, EspTcpConfig::default());
        let (mut sp, mut su) = (Seen::default(), Seen::default());
        let c = u.connect(now, 5062, sa("127.0.0.1:6100")).unwrap();
        let msg = big_message(5000);
        u.send(now, c, &msg).unwrap();
        exchange(now, &mut u, &mut p, &mut su, &mut sp, |_| false);
        assert!(sp.data == msg, "got {} bytes", sp.data.len());
        assert!(matches!(
            sp.events.first(),
            Some(TcpEvent::Opened { local, remote, .. })
                if *local == sa("127.0.0.1:6100") && *remote == sa("127.0.0.2:5062")
        ));
        assert!(su.segments.iter().all(|s| s.len() + 20 <= 1400));
        assert!(su.segments.iter().filter(|s| s.len() > 1000).count() >= 4);
        // The P-CSCF answers on the same connection.
        let pc = p.find(6100, sa("127.0.0.2:5062")).unwrap();
        p.send(now, pc, b"SIP/2.0 200 OK\r\n\r\n").unwrap();
        exchange(now, &mut p, &mut u, &mut sp, &mut su, |_| false);
        assert!(
            su.data == b"SIP/2.0 200 OK\r\n\r\n",
            "got {} bytes",
            su.data.len()
        );
        assert_eq!((p.len(), u.len()), (1, 1));
    }

    #[test]
    fn segments_carry_checksums_over_the_outer_addresses() {
        let now = Instant::now();
        let (mut p, mut u) = pair(now, EspTcpConfig::default());
        u.connect(now, 5062, sa("127.0.0.1:6100")).unwrap();
        let evs = u.take_events();
        let Some(TcpEvent::Segment { from, to, segment }) = evs.first() else {
            panic!("no SYN: {evs:?}");
        };
        let seg = inner::parse_tcp(from.ip(), to.ip(), segment).unwrap();
        assert_eq!(seg.flags & tcp_flags::SYN, tcp_flags::SYN);
        assert_eq!((seg.src_port, seg.dst_port), (5062, 6100));
        let mut bad = segment.clone();
        bad[4] ^= 1;
        assert!(p.handle_segment(now, *from, *to, &bad).is_err());
    }

    #[test]
    fn pcscf_connects_from_port_c_to_the_phones_port_s() {
        let now = Instant::now();
        let (mut p, mut u) = pair(now, EspTcpConfig::default());
        let (mut sp, mut su) = (Seen::default(), Seen::default());
        let c = p.connect(now, 5100, sa("127.0.0.2:5064")).unwrap();
        // Queued before the handshake completes.
        let msg = big_message(1400);
        p.send(now, c, &msg).unwrap();
        assert_eq!(p.connect(now, 5100, sa("127.0.0.2:5064")).unwrap(), c);
        exchange(now, &mut p, &mut u, &mut sp, &mut su, |_| false);
        assert!(su.data == msg, "got {} bytes", su.data.len());
        assert!(
            sp.events
                .iter()
                .any(|e| matches!(e, TcpEvent::Opened { conn, .. } if *conn == c))
        );
    }

    #[test]
    fn syn_to_a_port_nobody_listens_on_is_answered_with_rst() {
        let now = Instant::now();
        let (mut p, mut u) = pair(now, EspTcpConfig::default());
        let (mut sp, mut su) = (Seen::default(), Seen::default());
        u.connect(now, 5062, sa("127.0.0.1:7000")).unwrap();
        exchange(now, &mut u, &mut p, &mut su, &mut sp, |_| false);
        let rst = sp.segments.iter().any(|s| {
            inner::parse_tcp(sa("127.0.0.1:0").ip(), sa("127.0.0.2:0").ip(), s)
                .is_ok_and(|t| t.flags & tcp_flags::RST != 0)
        });
        assert!(rst, "{:?}", sp.segments);
        assert!(
            su.events
                .iter()
                .any(|e| matches!(e, TcpEvent::Closed { .. }))
        );
        assert!(p.is_empty() && u.is_empty());
    }

    #[test]
    fn syn_beyond_the_per_peer_limit_is_refused_and_reset() {
        let now = Instant::now();
        let cfg = EspTcpConfig {
            max_per_peer: 2,
            ..EspTcpConfig::default()
        };
        let (mut p, mut u) = pair(now, cfg);
        let mut u2 = EspTcp::new(UE.parse().unwrap(), EspTcpConfig::default(), 3, now);
        let (mut sp, mut su) = (Seen::default(), Seen::default());
        for port in [5062, 5063] {
            u.connect(now, port, sa("127.0.0.1:6100")).unwrap();
        }
        exchange(now, &mut u, &mut p, &mut su, &mut sp, |_| false);
        assert_eq!(p.len(), 2);
        u2.connect(now, 5070, sa("127.0.0.1:6100")).unwrap();
        let mut s2 = Seen::default();
        exchange(now, &mut u2, &mut p, &mut s2, &mut sp, |_| false);
        assert!(sp.events.iter().any(|e| matches!(
            e,
            TcpEvent::Refused { reason: TcpError::PeerLimit { limit: 2, .. }, remote, .. }
                if *remote == sa("127.0.0.2:5070")
        )));
        assert_eq!(p.len(), 2);
        assert!(u2.is_empty(), "the refused connection was reset");
        // Our own connects obey the limits too.
        let total = EspTcpConfig {
            max_total: 1,
            ..EspTcpConfig::default()
        };
        let mut q = EspTcp::new(PCSCF.parse().unwrap(), total, 5, now);
        q.connect(now, 5100, sa("127.0.0.2:5064")).unwrap();
        assert_eq!(
            q.connect(now, 5100, sa("127.0.0.3:5064")),
            Err(TcpError::TotalLimit { limit: 1 })
        );
    }

    #[test]
    fn idle_connection_is_reset_after_the_timeout() {
        let now = Instant::now();
        let cfg = EspTcpConfig {
            idle_timeout: Duration::from_secs(30),
            ..EspTcpConfig::default()
        };
        let (mut p, mut u) = pair(now, cfg);
        let (mut sp, mut su) = (Seen::default(), Seen::default());
        u.connect(now, 5062, sa("127.0.0.1:6100")).unwrap();
        exchange(now, &mut u, &mut p, &mut su, &mut sp, |_| false);
        let due = p.poll_timeout(now).unwrap();
        assert!(due <= now + Duration::from_secs(30));
        let later = now + Duration::from_secs(31);
        p.handle_timeout(later);
        u.handle_timeout(later);
        exchange(later, &mut p, &mut u, &mut sp, &mut su, |_| false);
        assert!(sp.events.iter().any(|e| matches!(
            e,
            TcpEvent::Closed {
                reason: CloseReason::Idle,
                ..
            }
        )));
        assert!(p.is_empty() && u.is_empty());
    }

    #[test]
    fn retain_resets_connections_whose_sas_are_gone() {
        let now = Instant::now();
        let (mut p, mut u) = pair(now, EspTcpConfig::default());
        let (mut sp, mut su) = (Seen::default(), Seen::default());
        u.connect(now, 5062, sa("127.0.0.1:6100")).unwrap();
        p.connect(now, 5100, sa("127.0.0.2:5064")).unwrap();
        exchange(now, &mut u, &mut p, &mut su, &mut sp, |_| false);
        assert_eq!(p.len(), 2);
        // The set with the phone's port-c 5062 was removed; port-s 5064 lives on (new set).
        p.retain(now, |_, remote| remote.port() != 5062);
        exchange(now, &mut p, &mut u, &mut sp, &mut su, |_| false);
        assert_eq!(p.len(), 1);
        assert_eq!(u.len(), 1, "the phone saw the RST");
        assert!(p.find(5100, sa("127.0.0.2:5064")).is_some());
        p.abort_all(now);
        exchange(now, &mut p, &mut u, &mut sp, &mut su, |_| false);
        assert!(p.is_empty() && u.is_empty());
    }

    #[test]
    fn lost_segment_is_retransmitted_when_the_timer_fires() {
        let now = Instant::now();
        let (mut p, mut u) = pair(now, EspTcpConfig::default());
        let (mut sp, mut su) = (Seen::default(), Seen::default());
        let c = u.connect(now, 5062, sa("127.0.0.1:6100")).unwrap();
        exchange(now, &mut u, &mut p, &mut su, &mut sp, |_| false);
        u.send(now, c, b"MESSAGE sip:x SIP/2.0\r\n\r\n").unwrap();
        let mut dropped = false;
        exchange(now, &mut u, &mut p, &mut su, &mut sp, |s| {
            let first = !dropped && s.len() > 20;
            dropped |= first;
            first
        });
        assert!(dropped && sp.data.is_empty());
        let at = u.poll_timeout(now).unwrap();
        assert!(
            at > now && at < now + Duration::from_secs(5),
            "{:?}",
            at - now
        );
        u.handle_timeout(at);
        exchange(at, &mut u, &mut p, &mut su, &mut sp, |_| false);
        assert!(
            sp.data == b"MESSAGE sip:x SIP/2.0\r\n\r\n",
            "got {} bytes",
            sp.data.len()
        );
    }

    #[test]
    fn graceful_close_ends_the_connection_on_both_sides() {
        let now = Instant::now();
        let (mut p, mut u) = pair(now, EspTcpConfig::default());
        let (mut sp, mut su) = (Seen::default(), Seen::default());
        let c = u.connect(now, 5062, sa("127.0.0.1:6100")).unwrap();
        u.send(now, c, b"BYE").unwrap();
        u.close(now, c);
        exchange(now, &mut u, &mut p, &mut su, &mut sp, |_| false);
        assert!(sp.data == b"BYE", "got {} bytes", sp.data.len());
        for s in [&sp, &su] {
            assert!(s.events.iter().any(|e| matches!(
                e,
                TcpEvent::Closed {
                    reason: CloseReason::Closed,
                    ..
                }
            )));
        }
        assert!(p.is_empty() && u.is_empty());
        assert_eq!(u.send(now, c, b"x"), Err(TcpError::NoConnection(c)));
    }

    #[test]
    fn ipv6_connection_carries_data() {
        let now = Instant::now();
        let cfg = EspTcpConfig::default();
        let mut p = EspTcp::new("fd00::1".parse().unwrap(), cfg, 1, now);
        p.listen(6100);
        let mut u = EspTcp::new("fd00::2".parse().unwrap(), cfg, 2, now);
        let (mut sp, mut su) = (Seen::default(), Seen::default());
        let c = u.connect(now, 5062, sa("[fd00::1]:6100")).unwrap();
        u.send(now, c, &big_message(3000)).unwrap();
        exchange(now, &mut u, &mut p, &mut su, &mut sp, |_| false);
        assert!(sp.data == big_message(3000), "got {} bytes", sp.data.len());
    }
}
