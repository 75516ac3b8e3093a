//! GTP-U (TS 29.281) for S5/S8-U and the user-plane forwarding table, as pure code.
//!
//! [`Forwarder`] maps our TEIDs to phones and phone addresses to SGW-U F-TEIDs. The driver
//! ([`crate::user_plane`]) feeds it datagrams from UDP 2152 and packets from the TUN device and
//! sends what it returns.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::cursor::Cursor;
use crate::gtpv2::ie::Fteid;
use crate::session::TunnelUpdate;
use crate::{Error, Result};

/// The GTP-U port (TS 29.281 §4.4.2.3).
pub const GTPU_PORT: u16 = 2152;

/// Echo Request.
pub const ECHO_REQUEST: u8 = 1;
/// Echo Response.
pub const ECHO_RESPONSE: u8 = 2;
/// Error Indication.
pub const ERROR_INDICATION: u8 = 26;
/// End Marker.
pub const END_MARKER: u8 = 254;
/// G-PDU: a user packet.
pub const G_PDU: u8 = 255;

/// Most extension headers followed in one packet.
const MAX_EXT_HEADERS: usize = 16;

/// A decoded GTP-U packet (TS 29.281 §5.1). Extension headers are skipped, not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GtpuPacket<'a> {
    /// Message type.
    pub message_type: u8,
    /// TEID.
    pub teid: u32,
    /// Sequence number, when the S flag is set.
    pub sequence: Option<u16>,
    /// The payload after the header and extension headers (the T-PDU for a G-PDU).
    pub payload: &'a [u8],
}

impl<'a> GtpuPacket<'a> {
    /// Decodes one GTP-U packet.
    pub fn decode(buf: &'a [u8]) -> Result<Self> {
        let mut cur = Cursor::new(buf);
        let flags = cur.u8("GTP-U flags")?;
        if flags >> 5 != 1 || flags & 0x10 == 0 {
            return Err(Error::BadGtpu("not GTPv1-U (version 1, PT 1)"));
        }
        let message_type = cur.u8("GTP-U message type")?;
        let len = usize::from(cur.u16("GTP-U length")?);
        let teid = cur.u32("GTP-U TEID")?;
        let mut body = Cursor::new(cur.take(len, "GTP-U payload")?);
        let mut sequence = None;
        if flags & 0x07 != 0 {
            sequence = (flags & 0x02 != 0).then_some(0);
            let seq = body.u16("GTP-U sequence")?;
            if flags & 0x02 != 0 {
                sequence = Some(seq);
            }
            let _npdu = body.u8("GTP-U N-PDU number")?;
            let mut next = body.u8("GTP-U next extension type")?;
            let mut n = 0;
            while next != 0 {
                n += 1;
                if n > MAX_EXT_HEADERS {
                    return Err(Error::BadGtpu("too many extension headers"));
                }
                let units = usize::from(body.u8("GTP-U extension length")?);
                if units == 0 {
                    return Err(Error::BadGtpu("extension header of length 0"));
                }
                let ext = body.take(units * 4 - 1, "GTP-U extension header")?;
                next = ext.last().copied().unwrap_or(0);
            }
        }
        Ok(Self {
            message_type,
            teid,
            sequence,
            payload: body.rest(),
        })
    }

    /// Encodes a packet with no optional fields (or with a sequence number when given).
    pub fn encode(
        message_type: u8,
        teid: u32,
        sequence: Option<u16>,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let extra = if sequence.is_some() { 4 } else { 0 };
        let len = payload.len() + extra;
        let len16 = u16::try_from(len).map_err(|_| Error::TooLong {
            what: "GTP-U packet",
            len,
        })?;
        out.push(0x30 | if sequence.is_some() { 0x02 } else { 0 });
        out.push(message_type);
        out.extend_from_slice(&len16.to_be_bytes());
        out.extend_from_slice(&teid.to_be_bytes());
        if let Some(s) = sequence {
            out.extend_from_slice(&s.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        out.extend_from_slice(payload);
        Ok(())
    }
}

/// What to do with a datagram from an SGW-U.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromSgw {
    /// Write this IP packet to the TUN device.
    ToTun(Vec<u8>),
    /// Send this GTP-U packet back to the sender (Echo Response, Error Indication).
    Reply(Vec<u8>),
    /// Nothing to do.
    Drop(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Peer {
    addr: SocketAddr,
    teid: u32,
}

/// The forwarding table: TEIDs we accept, and where packets for each phone address go.
#[derive(Debug, Default)]
pub struct Forwarder {
    teids: HashMap<u32, (Option<Ipv4Addr>, Option<Ipv6Addr>)>,
    v4: HashMap<Ipv4Addr, Peer>,
    v6: HashMap<Ipv6Addr, Peer>,
    port: u16,
}

fn sgw_addr(f: &Fteid, port: u16) -> Option<SocketAddr> {
    f.ipv4
        .map(IpAddr::V4)
        .or_else(|| f.ipv6.map(IpAddr::V6))
        .map(|ip| SocketAddr::new(ip, port))
}

impl Forwarder {
    /// An empty table sending to SGW-U port `port` (normally [`GTPU_PORT`]).
    pub fn new(port: u16) -> Self {
        Self {
            port,
            ..Self::default()
        }
    }

    /// Number of tunnels.
    pub fn len(&self) -> usize {
        self.teids.len()
    }

    /// True with no tunnels.
    pub fn is_empty(&self) -> bool {
        self.teids.is_empty()
    }

    /// Applies a change from the control plane.
    pub fn apply(&mut self, u: &TunnelUpdate) {
        match u {
            TunnelUpdate::Up {
                pgw_teid,
                sgw,
                ipv4,
                ipv6_prefix,
            } => {
                self.remove(*pgw_teid);
                let Some(addr) = sgw_addr(sgw, self.port) else {
                    return;
                };
                let peer = Peer {
                    addr,
                    teid: sgw.teid,
                };
                if let Some(a) = ipv4 {
                    self.v4.insert(*a, peer);
                }
                if let Some(p) = ipv6_prefix {
                    self.v6.insert(*p, peer);
                }
                self.teids.insert(*pgw_teid, (*ipv4, *ipv6_prefix));
            }
            TunnelUpdate::Down { pgw_teid } => self.remove(*pgw_teid),
        }
    }

    fn remove(&mut self, teid: u32) {
        if let Some((v4, v6)) = self.teids.remove(&teid) {
            if let Some(a) = v4 {
                self.v4.remove(&a);
            }
            if let Some(p) = v6 {
                self.v6.remove(&p);
            }
        }
    }

    /// Handles a datagram received on S5/S8-U.
    pub fn from_sgw(&self, data: &[u8]) -> FromSgw {
        let Ok(p) = GtpuPacket::decode(data) else {
            return FromSgw::Drop("malformed GTP-U");
        };
        match p.message_type {
            ECHO_REQUEST => {
                // Echo Response: the Recovery IE (type 14) with restart counter 0 (§7.2.2).
                let mut out = Vec::with_capacity(16);
                match GtpuPacket::encode(
                    ECHO_RESPONSE,
                    0,
                    Some(p.sequence.unwrap_or(0)),
                    &[14, 0],
                    &mut out,
                ) {
                    Ok(()) => FromSgw::Reply(out),
                    Err(_) => FromSgw::Drop("cannot encode Echo Response"),
                }
            }
            G_PDU => match self.teids.get(&p.teid) {
                Some(_) if p.payload.is_empty() => FromSgw::Drop("empty G-PDU"),
                Some(_) => FromSgw::ToTun(p.payload.to_vec()),
                None => {
                    // Error Indication: TEID Data I (16) and GTP-U Peer Address (133), §7.3.1.
                    let mut ies = vec![16];
                    ies.extend_from_slice(&p.teid.to_be_bytes());
                    let mut out = Vec::with_capacity(24);
                    match GtpuPacket::encode(ERROR_INDICATION, 0, Some(0), &ies, &mut out) {
                        Ok(()) => FromSgw::Reply(out),
                        Err(_) => FromSgw::Drop("cannot encode Error Indication"),
                    }
                }
            },
            END_MARKER | ECHO_RESPONSE | ERROR_INDICATION => {
                FromSgw::Drop("signalling message ignored")
            }
            _ => FromSgw::Drop("unknown GTP-U message type"),
        }
    }

    /// Handles an IP packet read from the TUN device: encapsulates it toward the SGW-U of the
    /// phone it is addressed to.
    pub fn from_tun(&self, packet: &[u8]) -> Option<(SocketAddr, Vec<u8>)> {
        let peer = match packet.first()? >> 4 {
            4 => {
                let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
                self.v4.get(&Ipv4Addr::from(dst))?
            }
            6 => {
                let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
                let prefix = u128::from_be_bytes(dst) & (u128::MAX << 64);
                self.v6.get(&Ipv6Addr::from(prefix))?
            }
            _ => return None,
        };
        let mut out = Vec::with_capacity(packet.len() + 8);
        GtpuPacket::encode(G_PDU, peer.teid, None, packet, &mut out).ok()?;
        Some((peer.addr, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gtpv2::ie::interface;

    fn up() -> TunnelUpdate {
        TunnelUpdate::Up {
            pgw_teid: 0x100,
            sgw: Fteid {
                interface_type: interface::S5S8_SGW_GTPU,
                teid: 0x200,
                ipv4: Some(Ipv4Addr::new(127, 0, 0, 2)),
                ipv6: None,
            },
            ipv4: Some(Ipv4Addr::new(10, 46, 0, 2)),
            ipv6_prefix: Some("2001:db8:46:1::".parse().unwrap()),
        }
    }

    fn ipv4_packet(dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 46, 0, 1];
        p.extend_from_slice(&dst);
        p
    }

    #[test]
    fn g_pdu_for_a_known_teid_goes_to_the_tun() {
        let mut f = Forwarder::new(GTPU_PORT);
        f.apply(&up());
        let inner = ipv4_packet([10, 46, 0, 1]);
        let mut wire = Vec::new();
        GtpuPacket::encode(G_PDU, 0x100, None, &inner, &mut wire).unwrap();
        assert_eq!(f.from_sgw(&wire), FromSgw::ToTun(inner));
    }

    #[test]
    fn g_pdu_for_an_unknown_teid_gets_an_error_indication() {
        let f = Forwarder::new(GTPU_PORT);
        let mut wire = Vec::new();
        GtpuPacket::encode(G_PDU, 0x999, None, &ipv4_packet([1, 2, 3, 4]), &mut wire).unwrap();
        let FromSgw::Reply(r) = f.from_sgw(&wire) else {
            panic!("no reply")
        };
        let p = GtpuPacket::decode(&r).unwrap();
        assert_eq!(p.message_type, ERROR_INDICATION);
        assert_eq!(&p.payload[..5], [16, 0, 0, 0x09, 0x99]);
    }

    #[test]
    fn packet_from_tun_is_encapsulated_toward_the_sgw_teid() {
        let mut f = Forwarder::new(GTPU_PORT);
        f.apply(&up());
        let pkt = ipv4_packet([10, 46, 0, 2]);
        let (to, wire) = f.from_tun(&pkt).unwrap();
        assert_eq!(to, "127.0.0.2:2152".parse().unwrap());
        let p = GtpuPacket::decode(&wire).unwrap();
        assert_eq!(
            (p.message_type, p.teid, p.payload),
            (G_PDU, 0x200, &pkt[..])
        );
        let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
        v6.extend_from_slice(&[0; 16]);
        v6.extend_from_slice(&"2001:db8:46:1::1".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(f.from_tun(&v6).unwrap().0, to);
        assert!(f.from_tun(&ipv4_packet([10, 46, 0, 3])).is_none());
        f.apply(&TunnelUpdate::Down { pgw_teid: 0x100 });
        assert!(f.from_tun(&pkt).is_none());
        assert!(f.is_empty());
    }

    #[test]
    fn echo_request_is_answered_with_recovery_and_its_sequence() {
        let f = Forwarder::new(GTPU_PORT);
        let mut wire = Vec::new();
        GtpuPacket::encode(ECHO_REQUEST, 0, Some(0x1234), &[], &mut wire).unwrap();
        let FromSgw::Reply(r) = f.from_sgw(&wire) else {
            panic!("no echo response")
        };
        let p = GtpuPacket::decode(&r).unwrap();
        assert_eq!(
            (p.message_type, p.sequence, p.payload),
            (ECHO_RESPONSE, Some(0x1234), &[14u8, 0][..])
        );
    }

    #[test]
    fn extension_headers_are_skipped_and_bounded() {
        // S + E flags, one PDU Session Container (0x85) of 1 unit, then the payload.
        let wire = [
            0x34, 255, 0, 10, 0, 0, 1, 0, 0, 0, 0, 0x85, 1, 0x10, 0, 0, 0xaa, 0xbb,
        ];
        let p = GtpuPacket::decode(&wire[..]).unwrap();
        assert_eq!(p.payload, [0xaa, 0xbb]);
        for n in 0..wire.len() {
            assert!(GtpuPacket::decode(&wire[..n]).is_err());
        }
        assert!(GtpuPacket::decode(&[0x34, 255, 0, 6, 0, 0, 1, 0, 0, 0, 0, 0x85, 0, 0]).is_err());
    }
}
