//! Userspace ESP for the soft UEs (RFC 4303 transport mode, TS 33.203): one raw IP socket per
//! local address, shared by every UE on it, on `imslab-ipsec`'s pure ESP codec.
//!
//! `imslab_ipsec::socket::EspSocket` is the P-CSCF's driver; the UEs use this hub instead
//! because it demultiplexes inbound packets to the UE owning the SPI and hands every ESP packet
//! (as sent and as received) and its decrypted content to the [`Capture`]. SIP over TCP inside
//! the SAs runs on the hub's [`EspTcp`] (one TCP endpoint per address, listening on each UE's
//! port-s); the capture keeps those ESP packets only (Wireshark decrypts them with the ESP SA
//! table written beside it).
//! Needs `CAP_NET_RAW`; the UE's address must differ from the P-CSCF's (each raw socket sees
//! all ESP to its address).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use imslab_ipsec::tcp::{ConnId, EspTcp, EspTcpConfig, TcpEvent};
use imslab_sip::header::Transport;
use imslab_sip::{Frame, StreamFramer};

use imslab_ipsec::esp::{InboundSa, OutboundSa, next_header, peek_spi};
use imslab_ipsec::inner;
use imslab_ipsec::{Direction, SaBundle, SecurityAssociation, Spi};
use rand::RngCore as _;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;

use crate::Error;
use crate::capture::Capture;

/// A decrypted UDP datagram for a UE.
#[derive(Debug)]
pub struct EspDatagram {
    /// The sender (the P-CSCF's protected port).
    pub from: SocketAddr,
    /// The UE's protected port it was sent to.
    pub to_port: u16,
    /// The SIP message.
    pub payload: Vec<u8>,
    /// UDP, or TCP inside the SAs.
    pub transport: Transport,
}

/// The TCP endpoint of a hub and what it needs to deliver stream messages.
struct HubTcp {
    tcp: EspTcp,
    streams: HashMap<ConnId, (StreamFramer, BytesMut)>,
    /// The UE owning each local protected port.
    owners: HashMap<u16, mpsc::Sender<EspDatagram>>,
}

type Inbound = (InboundSa, SecurityAssociation, mpsc::Sender<EspDatagram>);

#[derive(Default)]
struct Sad {
    inbound: HashMap<Spi, Inbound>,
    outbound: HashMap<(u16, SocketAddr), OutboundSa>,
}

/// The raw ESP socket of one local address.
pub struct EspHub {
    sock: tokio::net::UdpSocket,
    local: IpAddr,
    sad: Mutex<Sad>,
    capture: Option<Arc<Capture>>,
    next_port: AtomicU16,
    tcp: Mutex<HubTcp>,
}

impl std::fmt::Debug for EspHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspHub")
            .field("local", &self.local)
            .finish()
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        what: what.to_owned(),
        source,
    }
}

impl EspHub {
    /// Opens the raw socket on `local` and starts its receive task.
    pub fn bind(local: IpAddr, capture: Option<Arc<Capture>>) -> Result<Arc<Self>, Error> {
        let domain = if local.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let s = Socket::new(domain, Type::RAW, Some(Protocol::from(50)))
            .map_err(io("open raw ESP socket (needs CAP_NET_RAW)"))?;
        s.bind(&SocketAddr::new(local, 0).into())
            .map_err(io("bind raw ESP socket"))?;
        s.set_nonblocking(true)
            .map_err(io("raw socket non-blocking"))?;
        let std_sock: std::net::UdpSocket = s.into();
        let sock = tokio::net::UdpSocket::from_std(std_sock).map_err(io("register raw socket"))?;
        let base = 20_000 + (rand::rng().next_u32() % 2000) as u16 * 10;
        let tcp = EspTcp::new(
            local,
            EspTcpConfig::default(),
            rand::rng().next_u64(),
            Instant::now(),
        );
        let hub = Arc::new(Self {
            sock,
            local,
            sad: Mutex::new(Sad::default()),
            capture,
            next_port: AtomicU16::new(base),
            tcp: Mutex::new(HubTcp {
                tcp,
                streams: HashMap::new(),
                owners: HashMap::new(),
            }),
        });
        // The TCP timers (retransmission, delayed ACK, idle reset).
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            loop {
                let due = {
                    let Some(h) = weak.upgrade() else { break };
                    let now = Instant::now();
                    let due = h.tcp().tcp.poll_timeout(now);
                    due.map_or(Duration::from_millis(200), |d| {
                        d.saturating_duration_since(now)
                            .clamp(Duration::from_millis(1), Duration::from_millis(200))
                    })
                };
                tokio::time::sleep(due).await;
                let Some(h) = weak.upgrade() else { break };
                h.tcp().tcp.handle_timeout(Instant::now());
                h.drive_tcp().await;
            }
        });
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let Some(h) = weak.upgrade() else { break };
                let r =
                    tokio::time::timeout(Duration::from_millis(200), h.sock.recv_from(&mut buf))
                        .await;
                match r {
                    Ok(Ok((n, from))) => {
                        let data = buf.get(..n).unwrap_or_default().to_vec();
                        h.on_packet(data, from.ip()).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("ESP receive failed: {e}");
                        break;
                    }
                    Err(_) => {}
                }
            }
        });
        Ok(hub)
    }

    /// The local address.
    pub fn local_ip(&self) -> IpAddr {
        self.local
    }

    /// Three protected ports for one UE: port-c, the alternate port-c, port-s.
    pub fn allocate_ports(&self) -> (u16, u16, u16) {
        let p = self.next_port.fetch_add(3, Ordering::Relaxed);
        (p, p + 1, p + 2)
    }

    fn sad(&self) -> std::sync::MutexGuard<'_, Sad> {
        self.sad.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn tcp(&self) -> std::sync::MutexGuard<'_, HubTcp> {
        self.tcp.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Installs the four SAs of `bundle` (the UE's view); inbound datagrams go to `tx`.
    pub fn install(&self, bundle: &SaBundle, tx: mpsc::Sender<EspDatagram>) -> Result<(), Error> {
        let mut sad = self.sad();
        for sa in bundle.sas() {
            match sa.direction() {
                Direction::Inbound => {
                    sad.inbound.insert(
                        sa.spi,
                        (InboundSa::new(sa.spi, &bundle.keys)?, sa, tx.clone()),
                    );
                }
                Direction::Outbound => {
                    sad.outbound.insert(
                        (sa.src.port(), sa.dst),
                        OutboundSa::new(sa.spi, &bundle.keys)?,
                    );
                }
            }
        }
        drop(sad);
        let mut t = self.tcp();
        t.tcp.listen(bundle.local.port_s);
        for port in [bundle.local.port_c, bundle.local.port_s] {
            t.owners.insert(port, tx.clone());
        }
        drop(t);
        if let Some(c) = &self.capture {
            c.add_bundle(bundle);
        }
        Ok(())
    }

    /// Removes the SAs of `bundle` (an outbound SA a newer bundle replaced stays).
    pub fn remove(&self, bundle: &SaBundle) {
        let mut sad = self.sad();
        for sa in bundle.sas() {
            match sa.direction() {
                Direction::Inbound => {
                    if sad.inbound.get(&sa.spi).is_some_and(|(_, s, _)| *s == sa) {
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
        // Ports no inbound SA names any more lose their owner and listener; connections no
        // outbound SA can carry are reset.
        let used: Vec<u16> = sad.inbound.values().map(|(_, s, _)| s.dst.port()).collect();
        let outbound: Vec<(u16, SocketAddr)> = sad.outbound.keys().copied().collect();
        drop(sad);
        let mut t = self.tcp();
        for port in [bundle.local.port_c, bundle.local.port_s] {
            if !used.contains(&port) {
                t.owners.remove(&port);
                t.tcp.unlisten(port);
            }
        }
        t.tcp
            .retain(Instant::now(), |l, r| outbound.contains(&(l.port(), r)));
    }

    /// Sends `payload` over TCP inside ESP from our protected `src_port` to `dst`: on the open
    /// connection between them, else on a new one.
    pub async fn send_tcp(
        &self,
        src_port: u16,
        dst: SocketAddr,
        payload: &[u8],
    ) -> Result<(), Error> {
        {
            let mut t = self.tcp();
            let now = Instant::now();
            let conn = match t.tcp.find(src_port, dst) {
                Some(c) => c,
                None => t.tcp.connect(now, src_port, dst)?,
            };
            t.tcp.send(now, conn, payload)?;
        }
        self.drive_tcp().await;
        Ok(())
    }

    /// Runs the TCP endpoint until quiet: protects and sends its segments, frames the
    /// streams and hands each message to the UE owning the port.
    async fn drive_tcp(&self) {
        for _ in 0..64 {
            let mut packets = Vec::new();
            let mut deliver = Vec::new();
            {
                let mut t = self.tcp();
                let events = t.tcp.take_events();
                if events.is_empty() {
                    return;
                }
                for ev in events {
                    match ev {
                        TcpEvent::Segment { from, to, segment } => {
                            packets.push((from.port(), to, segment));
                        }
                        TcpEvent::Data {
                            conn,
                            local,
                            remote,
                            data,
                        } => {
                            let owner = t.owners.get(&local.port()).cloned();
                            let (framer, buf) = t.streams.entry(conn).or_insert_with(|| {
                                (
                                    StreamFramer::new(imslab_sip::Limits::default()),
                                    BytesMut::new(),
                                )
                            });
                            buf.extend_from_slice(&data);
                            let mut close = false;
                            loop {
                                match framer.decode(buf) {
                                    Ok(Some(Frame::Message(m))) => {
                                        if let Some(tx) = &owner {
                                            deliver.push((
                                                tx.clone(),
                                                EspDatagram {
                                                    from: remote,
                                                    to_port: local.port(),
                                                    payload: m.to_bytes().to_vec(),
                                                    transport: Transport::Tcp,
                                                },
                                            ));
                                        }
                                    }
                                    Ok(Some(_)) => {}
                                    Ok(None) => break,
                                    Err(e) => {
                                        tracing::warn!("TCP inside ESP from {remote}: {e}");
                                        close = true;
                                        break;
                                    }
                                }
                            }
                            if close {
                                t.tcp.close(Instant::now(), conn);
                            }
                        }
                        TcpEvent::Closed { conn, .. } => {
                            t.streams.remove(&conn);
                        }
                        TcpEvent::Refused { remote, reason, .. } => {
                            tracing::warn!("TCP from {remote} inside ESP refused: {reason}");
                        }
                        TcpEvent::Opened { .. } => {}
                    }
                }
            }
            for (src_port, dst, segment) in packets {
                if let Err(e) = self
                    .send_inner(src_port, dst, next_header::TCP, &segment)
                    .await
                {
                    tracing::warn!("TCP segment to {dst} inside ESP not sent: {e}");
                }
            }
            for (tx, d) in deliver {
                // The UE itself may be the caller (sending through `send_tcp`): never wait on
                // its own full channel.
                if let Err(mpsc::error::TrySendError::Full(d)) = tx.try_send(d) {
                    tokio::spawn(async move {
                        let _ = tx.send(d).await;
                    });
                }
            }
        }
    }

    /// Protects an inner UDP or TCP packet with the outbound SA from `src_port` to `dst`,
    /// records the ESP packet and sends it.
    async fn send_inner(
        &self,
        src_port: u16,
        dst: SocketAddr,
        nh: u8,
        inner: &[u8],
    ) -> Result<(), Error> {
        let packet = {
            let mut sad = self.sad();
            let sa = sad
                .outbound
                .get_mut(&(src_port, dst))
                .ok_or(imslab_ipsec::Error::NoOutboundSa { src_port, dst })?;
            let mut p = Vec::with_capacity(inner.len() + 64);
            sa.protect(nh, inner, |iv| rand::rng().fill_bytes(iv), &mut p)?;
            p
        };
        if let Some(c) = &self.capture {
            c.ip_packet(&with_ip_header(self.local, dst.ip(), &packet));
        }
        self.sock
            .send_to(&packet, SocketAddr::new(dst.ip(), 0))
            .await
            .map_err(io("send ESP packet"))?;
        Ok(())
    }

    /// Number of inbound and outbound SAs installed.
    pub fn sa_count(&self) -> (usize, usize) {
        let s = self.sad();
        (s.inbound.len(), s.outbound.len())
    }

    /// Sends `payload` as UDP from our protected `src_port` to `dst` inside ESP.
    pub async fn send_udp(
        &self,
        src_port: u16,
        dst: SocketAddr,
        payload: &[u8],
    ) -> Result<(), Error> {
        let src = SocketAddr::new(self.local, src_port);
        let mut udp = Vec::with_capacity(payload.len() + 8);
        inner::build_udp(src, dst, payload, &mut udp);
        let packet = {
            let mut sad = self.sad();
            let sa = sad
                .outbound
                .get_mut(&(src_port, dst))
                .ok_or(imslab_ipsec::Error::NoOutboundSa { src_port, dst })?;
            let mut p = Vec::with_capacity(udp.len() + 64);
            sa.protect(
                next_header::UDP,
                &udp,
                |iv| rand::rng().fill_bytes(iv),
                &mut p,
            )?;
            p
        };
        if let Some(c) = &self.capture {
            c.ip_packet(&with_ip_header(self.local, dst.ip(), &packet));
            c.udp(src, dst, payload);
        }
        self.sock
            .send_to(&packet, SocketAddr::new(dst.ip(), 0))
            .await
            .map_err(io("send ESP packet"))?;
        Ok(())
    }

    async fn on_packet(&self, mut data: Vec<u8>, from: IpAddr) {
        let (src, esp_start, esp_end) = if self.local.is_ipv4() {
            let Ok(h) = inner::parse_ipv4(&data) else {
                return;
            };
            if h.protocol != 50 || IpAddr::V4(h.dst) != self.local {
                return;
            }
            (IpAddr::V4(h.src), h.header_len, h.total_len.min(data.len()))
        } else {
            (from, 0, data.len())
        };
        let Some(spi) = data.get(esp_start..esp_end).and_then(peek_spi) else {
            return;
        };
        let wire = with_ip_header(
            src,
            self.local,
            data.get(esp_start..esp_end).unwrap_or_default(),
        );
        let delivered = {
            let mut sad = self.sad();
            let Some((sa, sel, tx)) = sad.inbound.get_mut(&spi) else {
                return; // another hub's (or the P-CSCF's) SPI
            };
            let (sel, tx) = (*sel, tx.clone());
            let Some(esp) = data.get_mut(esp_start..esp_end) else {
                return;
            };
            let u = match sa.unprotect(esp) {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(spi = spi.0, "ESP dropped: {e}");
                    return;
                }
            };
            if src != sel.src.ip() {
                return;
            }
            if u.next_header == next_header::TCP {
                let ports =
                    inner::parse_tcp(src, self.local, u.payload).map(|t| (t.src_port, t.dst_port));
                if ports != Ok((sel.src.port(), sel.dst.port())) {
                    return;
                }
                Inner::Tcp(
                    SocketAddr::new(src, sel.src.port()),
                    SocketAddr::new(self.local, sel.dst.port()),
                    u.payload.to_vec(),
                )
            } else {
                if u.next_header != next_header::UDP {
                    return;
                }
                let Ok(d) = inner::parse_udp(src, self.local, u.payload) else {
                    return;
                };
                Inner::Udp(
                    EspDatagram {
                        from: SocketAddr::new(src, d.src_port),
                        to_port: d.dst_port,
                        payload: d.payload.to_vec(),
                        transport: Transport::Udp,
                    },
                    tx,
                )
            }
        };
        let (dgram, tx) = match delivered {
            Inner::Udp(d, tx) => (d, tx),
            Inner::Tcp(from, to, seg) => {
                if let Some(c) = &self.capture {
                    c.ip_packet(&wire);
                }
                let r = self
                    .tcp()
                    .tcp
                    .handle_segment(Instant::now(), from, to, &seg);
                if let Err(e) = r {
                    tracing::warn!("TCP segment inside ESP from {from} dropped: {e}");
                }
                self.drive_tcp().await;
                return;
            }
        };
        if let Some(c) = &self.capture {
            c.ip_packet(&wire);
            c.udp(
                dgram.from,
                SocketAddr::new(self.local, dgram.to_port),
                &dgram.payload,
            );
        }
        let _ = tx.send(dgram).await;
    }
}

/// A decrypted inner packet: a datagram for a UE, or a TCP segment (from, to, bytes) for the
/// hub's TCP endpoint.
enum Inner {
    Udp(EspDatagram, mpsc::Sender<EspDatagram>),
    Tcp(SocketAddr, SocketAddr, Vec<u8>),
}

fn with_ip_header(src: IpAddr, dst: IpAddr, esp: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(esp.len() + 40);
    inner::build_ip_header(src, dst, 50, esp.len(), &mut p);
    p.extend_from_slice(esp);
    p
}

/// The hubs of a run, one per local address.
#[derive(Debug, Default)]
pub struct EspHubs {
    hubs: Mutex<HashMap<IpAddr, Arc<EspHub>>>,
    capture: Option<Arc<Capture>>,
}

impl EspHubs {
    /// Hubs recording into `capture`.
    pub fn new(capture: Option<Arc<Capture>>) -> Self {
        Self {
            hubs: Mutex::new(HashMap::new()),
            capture,
        }
    }

    /// The hub for `ip`, opened on first use.
    pub fn get(&self, ip: IpAddr) -> Result<Arc<EspHub>, Error> {
        let mut m = self.hubs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = m.get(&ip) {
            return Ok(Arc::clone(h));
        }
        let h = EspHub::bind(ip, self.capture.clone())?;
        m.insert(ip, Arc::clone(&h));
        Ok(h)
    }
}
