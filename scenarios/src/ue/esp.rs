//! Userspace ESP for the soft UEs (RFC 4303 transport mode, TS 33.203): one raw IP socket per
//! local address, shared by every UE on it, on `imslab-ipsec`'s pure ESP codec.
//!
//! `imslab_ipsec::socket::EspSocket` is the P-CSCF's driver; the UEs use this hub instead
//! because it demultiplexes inbound packets to the UE owning the SPI and hands every ESP packet
//! (as sent and as received) and its decrypted content to the [`Capture`].
//! Needs `CAP_NET_RAW`; the UE's address must differ from the P-CSCF's (each raw socket sees
//! all ESP to its address).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

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
        let hub = Arc::new(Self {
            sock,
            local,
            sad: Mutex::new(Sad::default()),
            capture,
            next_port: AtomicU16::new(base),
        });
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let Some(h) = weak.upgrade() else { break };
                let r = tokio::time::timeout(
                    std::time::Duration::from_millis(200),
                    h.sock.recv_from(&mut buf),
                )
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
            if u.next_header != next_header::UDP || src != sel.src.ip() {
                return;
            }
            let Ok(d) = inner::parse_udp(src, self.local, u.payload) else {
                return;
            };
            (
                EspDatagram {
                    from: SocketAddr::new(src, d.src_port),
                    to_port: d.dst_port,
                    payload: d.payload.to_vec(),
                },
                tx,
            )
        };
        let (dgram, tx) = delivered;
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
