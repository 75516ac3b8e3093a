//! The userspace ESP driver: a raw IP socket for protocol 50 plus the ESP codec, so a P-CSCF
//! (or the soft UE) can send and receive SIP over IPsec without kernel ESP and without
//! `CAP_NET_ADMIN` (only `CAP_NET_RAW`, for the raw socket).
//!
//! ```no_run
//! # async fn demo(bundle: imslab_ipsec::SaBundle) -> Result<(), imslab_ipsec::Error> {
//! use imslab_ipsec::socket::{EspSocket, Incoming};
//! let esp = EspSocket::bind("127.0.0.1".parse().unwrap())?;
//! esp.install(&bundle)?; // the four SAs of one UE
//! // A request to the UE: from our port-c to its port-s.
//! let to_ue = bundle.sa(imslab_ipsec::SaRole::OutboundFromClient);
//! esp.send_udp(to_ue.src.port(), to_ue.dst, b"OPTIONS sip:ue SIP/2.0\r\n...").await?;
//! match esp.recv().await? {
//!     Incoming::Udp(m) => { /* m.from, m.to, m.payload: a SIP message */ }
//!     Incoming::Tcp(_) => { /* a TCP segment, for the caller's TCP handling */ }
//!     Incoming::Dropped(d) => { /* d.reason: count it, report it for the UE owning d.reason.spi() */ }
//! }
//! # Ok(()) }
//! ```
//!
//! How it works: a raw `AF_INET`/`AF_INET6` socket with protocol 50, bound to the local
//! address, receives every ESP packet sent to that address; IPv4 raw sockets deliver the IP
//! header, IPv6 ones only the payload. The socket is driven through tokio's `UdpSocket`
//! wrapper, which only issues `sendto`/`recvfrom` on the descriptor and works for raw
//! sockets unchanged (ports are 0). On a kernel with ESP support, a kernel that has XFRM
//! states for the same SPIs would also consume these packets: use one backend per host.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngCore;
use socket2::{Domain, Protocol, Socket, Type};

use crate::esp::{InboundSa, OutboundSa, next_header, peek_spi};
use crate::inner::{self, TcpSegment};
use crate::sa::{Direction, SaBundle, SecurityAssociation};
use crate::spi::Spi;
use crate::table::SaAction;
use crate::{Error, EspDrop};

/// IP protocol number of ESP.
pub const IPPROTO_ESP: i32 = 50;
const RECV_BUF: usize = 65_536;

/// A decrypted UDP datagram (normally one SIP message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedUdp {
    /// Sender address and port.
    pub from: SocketAddr,
    /// Our address and the destination port.
    pub to: SocketAddr,
    /// The inbound SA's SPI (for [`crate::SaTable::inbound_used`]).
    pub spi: Spi,
    /// The ESP sequence number.
    pub seq: u32,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// A decrypted TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedTcp {
    /// Sender address and port.
    pub from: SocketAddr,
    /// Our address and the destination port.
    pub to: SocketAddr,
    /// The inbound SA's SPI.
    pub spi: Spi,
    /// The ESP sequence number.
    pub esp_seq: u32,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP acknowledgment number.
    pub ack: u32,
    /// Reserved bits and flags ([`crate::inner::tcp_flags`]).
    pub flags: u16,
    /// Window.
    pub window: u16,
    /// Options.
    pub options: Vec<u8>,
    /// Data.
    pub payload: Vec<u8>,
}

impl ReceivedTcp {
    /// The segment as it was on the wire inside ESP (header, options, data; checksum over the
    /// outer addresses), for a TCP endpoint ([`crate::tcp::EspTcp::handle_segment`]) or a
    /// capture.
    pub fn segment_bytes(&self) -> Vec<u8> {
        let seg = TcpSegment {
            src_port: self.from.port(),
            dst_port: self.to.port(),
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            urgent: 0,
            options: &self.options,
            payload: &self.payload,
        };
        let mut bytes = Vec::with_capacity(self.payload.len() + 20 + self.options.len());
        // The options parsed from a valid segment are at most 40 bytes, in 4-byte words.
        let _ = inner::build_tcp(self.from.ip(), self.to.ip(), &seg, &mut bytes);
        bytes
    }
}

/// A packet the socket dropped, with the sender's address: the caller maps
/// `reason.spi()` to a UE and reports it ([`crate::Diagnosis`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Outer source address.
    pub from: IpAddr,
    /// Why.
    pub reason: EspDrop,
}

/// What [`EspSocket::recv`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A UDP datagram passed every check.
    Udp(ReceivedUdp),
    /// A TCP segment passed every check.
    Tcp(ReceivedTcp),
    /// A packet was dropped and counted.
    Dropped(Dropped),
}

/// Counters since the socket was bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EspStats {
    /// Packets protected and sent.
    pub sent: u64,
    /// Packets accepted.
    pub received: u64,
    /// Dropped: no SA for the SPI.
    pub unknown_spi: u64,
    /// Dropped: ICV failure.
    pub bad_icv: u64,
    /// Dropped: replayed or too old.
    pub replay: u64,
    /// Dropped: bad padding after decryption.
    pub bad_padding: u64,
    /// Dropped: malformed ESP or IP.
    pub malformed: u64,
    /// Dropped: bad inner UDP/TCP, or a packet outside the SA's selectors.
    pub bad_inner: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    unknown_spi: AtomicU64,
    bad_icv: AtomicU64,
    replay: AtomicU64,
    bad_padding: AtomicU64,
    malformed: AtomicU64,
    bad_inner: AtomicU64,
}

impl Counters {
    fn count(&self, d: &EspDrop) {
        let c = match d {
            EspDrop::UnknownSpi { .. } => &self.unknown_spi,
            EspDrop::BadIcv { .. } => &self.bad_icv,
            EspDrop::Replay { .. } => &self.replay,
            EspDrop::BadPadding { .. } => &self.bad_padding,
            EspDrop::Malformed { .. } => &self.malformed,
            EspDrop::BadInner { .. } | EspDrop::PolicyMismatch { .. } => &self.bad_inner,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Sad {
    inbound: HashMap<Spi, (InboundSa, SecurityAssociation)>,
    outbound: HashMap<(u16, SocketAddr), OutboundSa>,
}

/// Userspace ESP over a raw socket bound to one local address. Cheap to share behind an
/// `Arc`; all methods take `&self`.
pub struct EspSocket {
    sock: tokio::net::UdpSocket,
    local: IpAddr,
    sad: Mutex<Sad>,
    counters: Counters,
}

impl std::fmt::Debug for EspSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspSocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { op, source }
}

impl EspSocket {
    /// Opens a raw ESP socket bound to `local` (IPv4 or IPv6). Needs `CAP_NET_RAW` and a tokio
    /// runtime.
    pub fn bind(local: IpAddr) -> Result<Self, Error> {
        let domain = if local.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let s = Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_ESP)))
            .map_err(io("open raw ESP socket (needs CAP_NET_RAW)"))?;
        s.bind(&SocketAddr::new(local, 0).into())
            .map_err(io("bind raw ESP socket"))?;
        s.set_nonblocking(true)
            .map_err(io("set raw ESP socket non-blocking"))?;
        let std_sock: std::net::UdpSocket = s.into();
        let sock =
            tokio::net::UdpSocket::from_std(std_sock).map_err(io("register raw ESP socket"))?;
        Ok(Self {
            sock,
            local,
            sad: Mutex::new(Sad::default()),
            counters: Counters::default(),
        })
    }

    /// The bound address.
    pub fn local_ip(&self) -> IpAddr {
        self.local
    }

    fn sad(&self) -> std::sync::MutexGuard<'_, Sad> {
        // A panic while holding the lock cannot leave the maps inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.sad
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Installs the four SAs of `bundle` (seen from this side: `bundle.local.ip` must be this
    /// socket's address). A newer bundle for the same outbound ports replaces the older one.
    pub fn install(&self, bundle: &SaBundle) -> Result<(), Error> {
        if bundle.local.ip != self.local {
            return Err(Error::WrongLocalAddress {
                bundle: bundle.local.ip,
                socket: self.local,
            });
        }
        let mut entries = Vec::with_capacity(4);
        for sa in bundle.sas() {
            entries.push(match sa.direction() {
                Direction::Inbound => (sa, Some(InboundSa::new(sa.spi, &bundle.keys)?), None),
                Direction::Outbound => (sa, None, Some(OutboundSa::new(sa.spi, &bundle.keys)?)),
            });
        }
        let mut sad = self.sad();
        for (sa, inb, outb) in entries {
            if let Some(i) = inb {
                sad.inbound.insert(sa.spi, (i, sa));
            }
            if let Some(o) = outb {
                sad.outbound.insert((sa.src.port(), sa.dst), o);
            }
        }
        Ok(())
    }

    /// Continues the outbound SAs of an installed `bundle` after sequence number `last` (a
    /// set restored after a restart: the peer's anti-replay window has seen lower numbers).
    pub fn resume_outbound(&self, bundle: &SaBundle, last: u32) {
        let mut sad = self.sad();
        for sa in bundle.sas() {
            if sa.direction() == Direction::Outbound
                && let Some(o) = sad.outbound.get_mut(&(sa.src.port(), sa.dst))
                && o.spi() == sa.spi
            {
                o.resume_after(last);
            }
        }
    }

    /// Removes the SAs of `bundle`. An outbound SA that a newer bundle replaced stays.
    pub fn remove(&self, bundle: &SaBundle) {
        let mut sad = self.sad();
        for sa in bundle.sas() {
            match sa.direction() {
                Direction::Inbound => {
                    if sad.inbound.get(&sa.spi).is_some_and(|(_, s)| *s == sa) {
                        sad.inbound.remove(&sa.spi);
                    }
                }
                Direction::Outbound => {
                    let key = (sa.src.port(), sa.dst);
                    if sad.outbound.get(&key).is_some_and(|o| o.spi() == sa.spi) {
                        sad.outbound.remove(&key);
                    }
                }
            }
        }
    }

    /// Carries out a table action.
    pub fn apply(&self, action: &SaAction) -> Result<(), Error> {
        match action {
            SaAction::Install { bundle, .. } => self.install(bundle),
            SaAction::Remove { bundle, .. } => {
                self.remove(bundle);
                Ok(())
            }
        }
    }

    /// Number of installed inbound and outbound SAs.
    pub fn sa_count(&self) -> (usize, usize) {
        let sad = self.sad();
        (sad.inbound.len(), sad.outbound.len())
    }

    /// Counters so far.
    pub fn stats(&self) -> EspStats {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EspStats {
            sent: l(&c.sent),
            received: l(&c.received),
            unknown_spi: l(&c.unknown_spi),
            bad_icv: l(&c.bad_icv),
            replay: l(&c.replay),
            bad_padding: l(&c.bad_padding),
            malformed: l(&c.malformed),
            bad_inner: l(&c.bad_inner),
        }
    }

    fn protect(
        &self,
        src_port: u16,
        dst: SocketAddr,
        nh: u8,
        inner: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut sad = self.sad();
        let sa = sad
            .outbound
            .get_mut(&(src_port, dst))
            .ok_or(Error::NoOutboundSa { src_port, dst })?;
        let mut packet = Vec::with_capacity(inner.len() + 64);
        sa.protect(nh, inner, |iv| rand::rng().fill_bytes(iv), &mut packet)?;
        Ok(packet)
    }

    /// Sends `payload` as UDP from our `src_port` to `dst`, protected by the outbound SA for
    /// that port pair.
    pub async fn send_udp(
        &self,
        src_port: u16,
        dst: SocketAddr,
        payload: &[u8],
    ) -> Result<(), Error> {
        let mut udp = Vec::with_capacity(payload.len() + 8);
        inner::build_udp(
            SocketAddr::new(self.local, src_port),
            dst,
            payload,
            &mut udp,
        );
        let packet = self.protect(src_port, dst, next_header::UDP, &udp)?;
        self.send_raw(&packet, dst.ip()).await
    }

    /// Sends a TCP segment to `dst_ip`, protected by the outbound SA for its port pair. The
    /// caller runs the TCP state machine; this only frames, checksums and protects.
    pub async fn send_tcp(&self, dst_ip: IpAddr, seg: &TcpSegment<'_>) -> Result<(), Error> {
        let dst = SocketAddr::new(dst_ip, seg.dst_port);
        let mut tcp = Vec::with_capacity(seg.payload.len() + 60);
        inner::build_tcp(self.local, dst_ip, seg, &mut tcp)?;
        let packet = self.protect(seg.src_port, dst, next_header::TCP, &tcp)?;
        self.send_raw(&packet, dst_ip).await
    }

    /// Sends an already-built TCP segment (checksummed over our address and `dst`'s, as
    /// [`crate::tcp::TcpEvent::Segment`] carries it) from our `src_port` to `dst`, protected
    /// by the outbound SA for that port pair.
    pub async fn send_tcp_segment(
        &self,
        src_port: u16,
        dst: SocketAddr,
        segment: &[u8],
    ) -> Result<(), Error> {
        let packet = self.protect(src_port, dst, next_header::TCP, segment)?;
        self.send_raw(&packet, dst.ip()).await
    }

    /// True when an outbound SA from our `src_port` to `dst` is installed (a TCP connection
    /// between them can still be carried).
    pub fn has_outbound(&self, src_port: u16, dst: SocketAddr) -> bool {
        self.sad().outbound.contains_key(&(src_port, dst))
    }

    /// Sends an already-built ESP packet to `dst` (tools and tests: replays, corrupted packets).
    pub async fn send_raw(&self, esp_packet: &[u8], dst: IpAddr) -> Result<(), Error> {
        if dst.is_ipv4() != self.local.is_ipv4() {
            return Err(Error::AddressFamily(dst));
        }
        self.sock
            .send_to(esp_packet, SocketAddr::new(dst, 0))
            .await
            .map_err(io("send ESP packet"))?;
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Waits for the next ESP packet and returns it decrypted, or the reason it was dropped
    /// (also counted in [`EspSocket::stats`]).
    pub async fn recv(&self) -> Result<Incoming, Error> {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let (n, from) = self
                .sock
                .recv_from(&mut buf)
                .await
                .map_err(io("receive ESP packet"))?;
            let data = buf.get_mut(..n).unwrap_or_default();
            let (src, esp) = if self.local.is_ipv4() {
                let Ok(h) = inner::parse_ipv4(data) else {
                    continue; // not a well-formed IPv4 packet: nothing to attribute
                };
                if h.protocol != IPPROTO_ESP as u8 || IpAddr::V4(h.dst) != self.local {
                    continue;
                }
                let total = h.total_len;
                (
                    IpAddr::V4(h.src),
                    data.get_mut(h.header_len..total).unwrap_or_default(),
                )
            } else {
                (from.ip(), data)
            };
            let incoming = match self.unprotect(src, esp) {
                Ok(i) => {
                    self.counters.received.fetch_add(1, Ordering::Relaxed);
                    i
                }
                Err(reason) => {
                    self.counters.count(&reason);
                    Incoming::Dropped(Dropped { from: src, reason })
                }
            };
            return Ok(incoming);
        }
    }

    fn unprotect(&self, src: IpAddr, esp: &mut [u8]) -> Result<Incoming, EspDrop> {
        let spi = peek_spi(esp).ok_or(EspDrop::Malformed {
            spi: Spi(0),
            len: esp.len(),
        })?;
        let mut sad = self.sad();
        let (sa, selectors) = sad
            .inbound
            .get_mut(&spi)
            .ok_or(EspDrop::UnknownSpi { spi })?;
        let selectors = *selectors;
        let u = sa.unprotect(esp)?;
        drop(sad);
        let dst = self.local;
        if src != selectors.src.ip() {
            return Err(EspDrop::PolicyMismatch { spi });
        }
        let bad = |what| EspDrop::BadInner { spi, what };
        let (sport, dport, incoming) = match u.next_header {
            next_header::UDP => {
                let d = inner::parse_udp(src, dst, u.payload).map_err(|_| bad("UDP"))?;
                let m = ReceivedUdp {
                    from: SocketAddr::new(src, d.src_port),
                    to: SocketAddr::new(dst, d.dst_port),
                    spi,
                    seq: u.seq,
                    payload: d.payload.to_vec(),
                };
                (d.src_port, d.dst_port, Incoming::Udp(m))
            }
            next_header::TCP => {
                let t = inner::parse_tcp(src, dst, u.payload).map_err(|_| bad("TCP"))?;
                let m = ReceivedTcp {
                    from: SocketAddr::new(src, t.src_port),
                    to: SocketAddr::new(dst, t.dst_port),
                    spi,
                    esp_seq: u.seq,
                    seq: t.seq,
                    ack: t.ack,
                    flags: t.flags,
                    window: t.window,
                    options: t.options.to_vec(),
                    payload: t.payload.to_vec(),
                };
                (t.src_port, t.dst_port, Incoming::Tcp(m))
            }
            _ => return Err(bad("next header")),
        };
        if (sport, dport) != (selectors.src.port(), selectors.dst.port()) {
            return Err(EspDrop::PolicyMismatch { spi });
        }
        Ok(incoming)
    }
}
