//! Flows: how the P-CSCF reaches a phone again, and the flow token it puts in Path.
//!
//! The P-CSCF records the flow each REGISTER arrived on (RFC 5626 §3.1: the UDP source address
//! and port, the connection, or the phone's IPsec SAs) and encodes it, authenticated with an
//! HMAC, in the user part of its Path URI (RFC 5626 §5.2, TS 24.229 §5.2.2.1). The S-CSCF
//! routes terminating requests through that Path, so the token on the Route tells the P-CSCF
//! which phone and which connection the request is for, without a lookup and across restarts
//! (the key lives in the data directory; connection flows carry the process's boot number
//! and are refused after a restart, when the connection is gone).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, KeyInit as _, Mac as _};
use imslab_sip::header::Transport;
use imslab_sip::transaction::{FlowId, Peer};
use sha2::Sha256;

/// Flow id the transport driver reads as "send from the P-CSCF's protected server port
/// (port-s) over the phone's SAs": responses to the phone's protected requests.
pub const PROTECTED_SERVER: FlowId = FlowId(u64::MAX);
/// Flow id for "send from the protected client port (port-c) over the phone's SAs": requests
/// to the phone (TS 33.203 §7.1).
pub const PROTECTED_CLIENT: FlowId = FlowId(u64::MAX - 1);

/// True for the two flow ids reserved for IPsec-protected sends.
pub fn is_protected(flow: Option<FlowId>) -> bool {
    matches!(flow, Some(f) if f == PROTECTED_SERVER || f == PROTECTED_CLIENT)
}

/// The connection transports a flow can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnTransport {
    /// TCP.
    Tcp,
    /// TLS.
    Tls,
    /// WebSocket.
    Ws,
    /// Secure WebSocket.
    Wss,
}

impl ConnTransport {
    /// The SIP transport.
    pub fn to_sip(self) -> Transport {
        match self {
            Self::Tcp => Transport::Tcp,
            Self::Tls => Transport::Tls,
            Self::Ws => Transport::Ws,
            Self::Wss => Transport::Wss,
        }
    }

    /// From a SIP transport; `None` for UDP and others.
    pub fn from_sip(t: &Transport) -> Option<Self> {
        match t {
            Transport::Tcp => Some(Self::Tcp),
            Transport::Tls => Some(Self::Tls),
            Transport::Ws => Some(Self::Ws),
            Transport::Wss => Some(Self::Wss),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Tcp => 2,
            Self::Tls => 3,
            Self::Ws => 4,
            Self::Wss => 5,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            2 => Some(Self::Tcp),
            3 => Some(Self::Tls),
            4 => Some(Self::Ws),
            5 => Some(Self::Wss),
            _ => None,
        }
    }
}

/// How to reach a phone (RFC 5626 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    /// UDP to the phone's source address and port (after NAT: `received`/`rport`).
    Udp {
        /// The phone's address.
        remote: SocketAddr,
    },
    /// A connection the transport driver knows by number.
    Connection {
        /// Its transport.
        transport: ConnTransport,
        /// The phone's address.
        remote: SocketAddr,
        /// The driver's flow id.
        id: u64,
    },
    /// IPsec: requests go from the P-CSCF's port-c to the phone's protected server port
    /// (TS 33.203 §7.1).
    Protected {
        /// The phone's address and protected server port (port-s).
        ue: SocketAddr,
    },
}

impl Flow {
    /// The flow a message arrived on, from its transport, source and driver flow id.
    pub fn from_arrival(transport: &Transport, source: SocketAddr, flow: Option<FlowId>) -> Self {
        match (ConnTransport::from_sip(transport), flow) {
            (Some(t), Some(id)) => Self::Connection {
                transport: t,
                remote: source,
                id: id.0,
            },
            _ => Self::Udp { remote: source },
        }
    }

    /// The phone's address on this flow.
    pub fn remote(&self) -> SocketAddr {
        match self {
            Self::Udp { remote } | Self::Connection { remote, .. } => *remote,
            Self::Protected { ue } => *ue,
        }
    }

    /// Where the proxy core sends a request to the phone.
    pub fn peer(&self) -> Peer {
        match *self {
            Self::Udp { remote } => Peer::new(Transport::Udp, remote),
            Self::Connection {
                transport,
                remote,
                id,
            } => Peer {
                transport: transport.to_sip(),
                addr: remote,
                flow: Some(FlowId(id)),
            },
            Self::Protected { ue } => Peer {
                transport: Transport::Udp,
                addr: ue,
                flow: Some(PROTECTED_CLIENT),
            },
        }
    }

    /// The transport name, for logs and diagnosis.
    pub fn describe(&self) -> String {
        match self {
            Self::Udp { remote } => format!("UDP {remote}"),
            Self::Connection {
                transport,
                remote,
                id,
            } => format!("{} {remote} (connection {id})", transport.to_sip()),
            Self::Protected { ue } => format!("IPsec {ue}"),
        }
    }
}

/// The secret that authenticates flow tokens (RFC 5626 §5.2), kept in the data directory so
/// tokens stay valid across restarts.
#[derive(Clone)]
pub struct FlowKey([u8; 32]);

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlowKey(..)")
    }
}

/// Bytes of HMAC kept in a token.
const MAC_LEN: usize = 8;
const VERSION: u8 = 1;
const UDP: u8 = 1;
const PROTECTED: u8 = 6;

impl FlowKey {
    /// A key from 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key bytes (to store it).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        if let Ok(mut m) = <Hmac<Sha256>>::new_from_slice(&self.0) {
            m.update(data);
            let full = m.finalize().into_bytes();
            for (o, b) in out.iter_mut().zip(full.iter()) {
                *o = *b;
            }
        }
        out
    }

    /// The token for `flow`: lower-case hex, usable as a SIP URI user part. `boot` ties
    /// connection flows to this run of the P-CSCF.
    pub fn encode(&self, flow: &Flow, boot: u32) -> String {
        let mut b = Vec::with_capacity(40);
        b.push(VERSION);
        let (kind, remote, conn) = match *flow {
            Flow::Udp { remote } => (UDP, remote, None),
            Flow::Connection {
                transport,
                remote,
                id,
            } => (transport.code(), remote, Some(id)),
            Flow::Protected { ue } => (PROTECTED, ue, None),
        };
        b.push(kind);
        match remote.ip() {
            IpAddr::V4(v4) => {
                b.push(4);
                b.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                b.push(6);
                b.extend_from_slice(&v6.octets());
            }
        }
        b.extend_from_slice(&remote.port().to_be_bytes());
        if let Some(id) = conn {
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&boot.to_be_bytes());
        }
        let mac = self.mac(&b);
        b.extend_from_slice(&mac);
        let mut s = String::with_capacity(b.len() * 2);
        for byte in b {
            let _ = write!(s, "{byte:02x}");
        }
        s
    }

    /// Decodes a token made by [`FlowKey::encode`] with this key. `None` when it is not one, its
    /// HMAC is wrong, or it names a connection of another run (`boot` differs).
    pub fn decode(&self, token: &str, boot: u32) -> Option<Flow> {
        if token.len() > 128 || !token.len().is_multiple_of(2) {
            return None;
        }
        let bytes = hex::decode(token).ok()?;
        let body_len = bytes.len().checked_sub(MAC_LEN)?;
        let (body, mac) = bytes.split_at(body_len);
        let expected = self.mac(body);
        // Constant-time enough for an 8-byte tag: compare every byte.
        let diff = expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 || mac.len() != MAC_LEN {
            return None;
        }
        let mut cur = body.iter().copied();
        if cur.next()? != VERSION {
            return None;
        }
        let kind = cur.next()?;
        let ip = match cur.next()? {
            4 => {
                let o: Vec<u8> = cur.by_ref().take(4).collect();
                IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(o.as_slice()).ok()?))
            }
            6 => {
                let o: Vec<u8> = cur.by_ref().take(16).collect();
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(o.as_slice()).ok()?))
            }
            _ => return None,
        };
        let port = u16::from_be_bytes([cur.next()?, cur.next()?]);
        let remote = SocketAddr::new(ip, port);
        let flow = match kind {
            UDP => Flow::Udp { remote },
            PROTECTED => Flow::Protected { ue: remote },
            c => {
                let transport = ConnTransport::from_code(c)?;
                let id: Vec<u8> = cur.by_ref().take(8).collect();
                let id = u64::from_be_bytes(<[u8; 8]>::try_from(id.as_slice()).ok()?);
                let b: Vec<u8> = cur.by_ref().take(4).collect();
                let token_boot = u32::from_be_bytes(<[u8; 4]>::try_from(b.as_slice()).ok()?);
                if token_boot != boot {
                    return None;
                }
                Flow::Connection {
                    transport,
                    remote,
                    id,
                }
            }
        };
        if cur.next().is_some() {
            return None;
        }
        Some(flow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FlowKey {
        FlowKey::new([7u8; 32])
    }

    #[test]
    fn every_flow_kind_round_trips_through_its_token() {
        let flows = [
            Flow::Udp {
                remote: "10.45.0.2:5060".parse().unwrap(),
            },
            Flow::Connection {
                transport: ConnTransport::Ws,
                remote: "[2001:db8::5]:40000".parse().unwrap(),
                id: 99,
            },
            Flow::Protected {
                ue: "127.0.0.2:6200".parse().unwrap(),
            },
        ];
        for f in flows {
            let t = key().encode(&f, 5);
            assert!(t.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
            assert_eq!(key().decode(&t, 5), Some(f));
        }
    }

    #[test]
    fn token_with_a_flipped_bit_or_another_key_is_refused() {
        let f = Flow::Udp {
            remote: "10.45.0.2:5060".parse().unwrap(),
        };
        let t = key().encode(&f, 1);
        let mut bad = t.clone().into_bytes();
        bad[6] = if bad[6] == b'0' { b'1' } else { b'0' };
        assert_eq!(key().decode(std::str::from_utf8(&bad).unwrap(), 1), None);
        assert_eq!(FlowKey::new([8u8; 32]).decode(&t, 1), None);
        assert_eq!(key().decode("term", 1), None);
    }

    #[test]
    fn connection_token_of_a_previous_run_is_refused_but_udp_survives() {
        let conn = Flow::Connection {
            transport: ConnTransport::Tcp,
            remote: "10.45.0.2:40000".parse().unwrap(),
            id: 3,
        };
        let udp = Flow::Udp {
            remote: "10.45.0.2:5060".parse().unwrap(),
        };
        assert_eq!(key().decode(&key().encode(&conn, 1), 2), None);
        assert_eq!(key().decode(&key().encode(&udp, 1), 2), Some(udp));
    }
}
