//! The packets ESP carries in transport mode: UDP (RFC 768) and TCP (RFC 9293) with correct
//! checksums, and the outer IPv4/IPv6 headers for raw sockets and captures.
//!
//! In transport mode the inner checksum's pseudo-header uses the outer IP addresses
//! (RFC 4303 §3.1.1: the upper-layer header follows ESP directly), so builders and parsers take
//! the addresses of the IP packet that carries the ESP packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::esp::next_header;

/// Why an inner or outer packet could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// Shorter than its header or its length field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A length or offset field is inconsistent.
    #[error("bad length in {0}")]
    BadLength(&'static str),
    /// The checksum does not verify.
    #[error("bad {0} checksum")]
    BadChecksum(&'static str),
    /// Not the expected IP version or protocol.
    #[error("unexpected {0}")]
    Unexpected(&'static str),
}

/// Ones-complement sum of `data` (RFC 1071), folded later.
fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The transport checksum over the pseudo-header (RFC 768, RFC 9293 §3.1, RFC 8200 §8.1)
/// and `segment` (with its checksum field as it is).
pub fn transport_checksum(src: IpAddr, dst: IpAddr, protocol: u8, segment: &[u8]) -> u16 {
    let mut acc = 0u32;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum(acc, &s.octets());
            acc = sum(acc, &d.octets());
        }
        (s, d) => {
            acc = sum(acc, &to_v6(s).octets());
            acc = sum(acc, &to_v6(d).octets());
        }
    }
    acc += u32::from(protocol);
    acc += segment.len() as u32 & 0xffff;
    acc += (segment.len() as u32) >> 16;
    fold(sum(acc, segment))
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Appends a UDP datagram `src` → `dst` with a correct checksum.
pub fn build_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let len = (8 + payload.len()) as u16;
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let mut c = transport_checksum(src.ip(), dst.ip(), next_header::UDP, &out[start..]);
    if c == 0 {
        c = 0xffff; // RFC 768: a computed zero is sent as all ones.
    }
    out[start + 6..start + 8].copy_from_slice(&c.to_be_bytes());
}

/// A parsed UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The payload.
    pub payload: &'a [u8],
}

/// Parses and checks a UDP datagram carried between `src` and `dst`. A zero checksum (none) is
/// accepted for IPv4 only (RFC 768, RFC 8200 §8.1).
pub fn parse_udp(src: IpAddr, dst: IpAddr, data: &[u8]) -> Result<Udp<'_>, PacketError> {
    let h = data.get(..8).ok_or(PacketError::Truncated("UDP header"))?;
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if len < 8 || len > data.len() {
        return Err(PacketError::BadLength("UDP"));
    }
    let dgram = &data[..len];
    let checksum = u16::from_be_bytes([h[6], h[7]]);
    let none_allowed = checksum == 0 && src.is_ipv4();
    if !none_allowed && transport_checksum(src, dst, next_header::UDP, dgram) != 0 {
        return Err(PacketError::BadChecksum("UDP"));
    }
    Ok(Udp {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        payload: &dgram[8..],
    })
}

/// A TCP segment. `flags` holds the 12 bits after the data offset (reserved bits and
/// flags), so every segment re-encodes byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Reserved bits and flags (low 12 bits of bytes 12–13).
    pub flags: u16,
    /// Window.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Options, a multiple of 4 bytes, at most 40.
    pub options: &'a [u8],
    /// The data.
    pub payload: &'a [u8],
}

/// TCP flag bits for [`TcpSegment::flags`].
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u16 = 0x001;
    /// SYN.
    pub const SYN: u16 = 0x002;
    /// RST.
    pub const RST: u16 = 0x004;
    /// PSH.
    pub const PSH: u16 = 0x008;
    /// ACK.
    pub const ACK: u16 = 0x010;
}

/// Appends a TCP segment carried `src` → `dst` with a correct checksum. Options beyond 40
/// bytes or not a multiple of 4 are rejected.
pub fn build_tcp(
    src: IpAddr,
    dst: IpAddr,
    seg: &TcpSegment<'_>,
    out: &mut Vec<u8>,
) -> Result<(), PacketError> {
    if seg.options.len() > 40 || !seg.options.len().is_multiple_of(4) {
        return Err(PacketError::BadLength("TCP options"));
    }
    let start = out.len();
    let offset = (20 + seg.options.len()) / 4;
    out.extend_from_slice(&seg.src_port.to_be_bytes());
    out.extend_from_slice(&seg.dst_port.to_be_bytes());
    out.extend_from_slice(&seg.seq.to_be_bytes());
    out.extend_from_slice(&seg.ack.to_be_bytes());
    out.extend_from_slice(&(((offset as u16) << 12) | (seg.flags & 0x0fff)).to_be_bytes());
    out.extend_from_slice(&seg.window.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&seg.urgent.to_be_bytes());
    out.extend_from_slice(seg.options);
    out.extend_from_slice(seg.payload);
    let c = transport_checksum(src, dst, next_header::TCP, &out[start..]);
    out[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Parses and checks a TCP segment carried between `src` and `dst`.
pub fn parse_tcp(src: IpAddr, dst: IpAddr, data: &[u8]) -> Result<TcpSegment<'_>, PacketError> {
    let h = data.get(..20).ok_or(PacketError::Truncated("TCP header"))?;
    let word = u16::from_be_bytes([h[12], h[13]]);
    let hlen = usize::from(word >> 12) * 4;
    if hlen < 20 || hlen > data.len() {
        return Err(PacketError::BadLength("TCP data offset"));
    }
    if transport_checksum(src, dst, next_header::TCP, data) != 0 {
        return Err(PacketError::BadChecksum("TCP"));
    }
    let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    Ok(TcpSegment {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        seq: be32(4),
        ack: be32(8),
        flags: word & 0x0fff,
        window: u16::from_be_bytes([h[14], h[15]]),
        urgent: u16::from_be_bytes([h[18], h[19]]),
        options: &data[20..hlen],
        payload: &data[hlen..],
    })
}

/// The outer IPv4 header of a received packet (raw IPv4 sockets deliver it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol (50 for ESP).
    pub protocol: u8,
    /// Header length in bytes.
    pub header_len: usize,
    /// Total length from the header, at most the buffer length.
    pub total_len: usize,
}

/// Parses an IPv4 header (RFC 791). The header checksum is not checked: the kernel already did.
pub fn parse_ipv4(data: &[u8]) -> Result<Ipv4Header, PacketError> {
    let h = data
        .get(..20)
        .ok_or(PacketError::Truncated("IPv4 header"))?;
    if h[0] >> 4 != 4 {
        return Err(PacketError::Unexpected("IP version"));
    }
    let header_len = usize::from(h[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if header_len < 20 || total_len < header_len || total_len > data.len() {
        return Err(PacketError::BadLength("IPv4"));
    }
    Ok(Ipv4Header {
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
        protocol: h[9],
        header_len,
        total_len,
    })
}

/// Prepends nothing: appends an outer IP header (IPv4 with checksum, or IPv6) for a packet of
/// `payload_len` bytes of `protocol`, for captures and tests. Raw sockets build their own.
pub fn build_ip_header(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    payload_len: usize,
    out: &mut Vec<u8>,
) {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let start = out.len();
            let total = (20 + payload_len) as u16;
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let c = fold(sum(0, &out[start..]));
            out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
        }
        (s, d) => {
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
            out.extend_from_slice(&[protocol, 64]);
            out.extend_from_slice(&to_v6(s).octets());
            out.extend_from_slice(&to_v6(d).octets());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn udp_checksum_matches_a_known_datagram() {
        // 127.0.0.2:5062 -> 127.0.0.1:6100, payload "OPTIONS": checksum computed by hand
        // (pseudo-header sum 0x7f00+0x0002+0x7f00+0x0001+0x0011+0x000f, then the header/data).
        let mut out = Vec::new();
        build_udp(
            v4("127.0.0.2:5062"),
            v4("127.0.0.1:6100"),
            b"OPTIONS",
            &mut out,
        );
        assert_eq!(&out[..6], &[0x13, 0xc6, 0x17, 0xd4, 0x00, 0x0f]);
        assert_eq!(
            transport_checksum(v4("127.0.0.2:0").ip(), v4("127.0.0.1:0").ip(), 17, &out),
            0
        );
        let mut manual = 0x7f00u32 + 0x0002 + 0x7f00 + 0x0001 + 0x0011 + 0x000f;
        manual = sum(manual, &[0x13, 0xc6, 0x17, 0xd4, 0x00, 0x0f, 0, 0]);
        manual = sum(manual, b"OPTIONS");
        assert_eq!(u16::from_be_bytes([out[6], out[7]]), fold(manual));
    }

    #[test]
    fn udp_round_trips_over_ipv4_and_ipv6_and_detects_corruption() {
        for (s, d) in [
            ("127.0.0.2:5062", "127.0.0.1:6100"),
            ("[fd00::2]:5062", "[fd00::1]:6100"),
        ] {
            let (s, d) = (v4(s), v4(d));
            let mut out = Vec::new();
            build_udp(s, d, b"SIP/2.0 200 OK\r\n\r\n", &mut out);
            let u = parse_udp(s.ip(), d.ip(), &out).unwrap();
            assert_eq!(
                (u.src_port, u.dst_port, u.payload),
                (5062, 6100, &b"SIP/2.0 200 OK\r\n\r\n"[..])
            );
            out[12] ^= 1;
            assert_eq!(
                parse_udp(s.ip(), d.ip(), &out),
                Err(PacketError::BadChecksum("UDP"))
            );
            // The pseudo-header binds the outer addresses.
            out[12] ^= 1;
            assert!(parse_udp(d.ip(), d.ip(), &out).is_err());
        }
    }

    #[test]
    fn udp_without_checksum_is_accepted_on_ipv4_only() {
        let mut out = Vec::new();
        build_udp(v4("127.0.0.2:1"), v4("127.0.0.1:2"), b"x", &mut out);
        out[6..8].fill(0);
        assert!(parse_udp(v4("127.0.0.2:1").ip(), v4("127.0.0.1:2").ip(), &out).is_ok());
        let (s, d) = (v4("[::1]:1").ip(), v4("[::2]:2").ip());
        let mut out6 = Vec::new();
        build_udp(
            SocketAddr::new(s, 1),
            SocketAddr::new(d, 2),
            b"x",
            &mut out6,
        );
        out6[6..8].fill(0);
        assert!(parse_udp(s, d, &out6).is_err());
    }

    #[test]
    fn udp_length_field_is_checked() {
        let (s, d) = (v4("127.0.0.2:1").ip(), v4("127.0.0.1:2").ip());
        assert_eq!(
            parse_udp(s, d, &[0; 7]),
            Err(PacketError::Truncated("UDP header"))
        );
        assert_eq!(
            parse_udp(s, d, &[0, 1, 0, 2, 0, 30, 0, 0]),
            Err(PacketError::BadLength("UDP"))
        );
        assert_eq!(
            parse_udp(s, d, &[0, 1, 0, 2, 0, 3, 0, 0]),
            Err(PacketError::BadLength("UDP"))
        );
    }

    #[test]
    fn tcp_segment_round_trips_with_options_and_checksum() {
        let (s, d) = (v4("127.0.0.2:0").ip(), v4("127.0.0.1:0").ip());
        let seg = TcpSegment {
            src_port: 5062,
            dst_port: 6100,
            seq: 0x0102_0304,
            ack: 0x0a0b_0c0d,
            flags: tcp_flags::PSH | tcp_flags::ACK,
            window: 65535,
            urgent: 0,
            options: &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
            payload: b"INVITE sip:bob@ims.example SIP/2.0\r\n",
        };
        let mut out = Vec::new();
        build_tcp(s, d, &seg, &mut out).unwrap();
        assert_eq!(out[12] >> 4, 8);
        assert_eq!(parse_tcp(s, d, &out).unwrap(), seg);
        out[30] ^= 0x80;
        assert_eq!(parse_tcp(s, d, &out), Err(PacketError::BadChecksum("TCP")));
        assert!(
            build_tcp(
                s,
                d,
                &TcpSegment {
                    options: &[1, 1, 1],
                    ..seg
                },
                &mut Vec::new()
            )
            .is_err()
        );
    }

    #[test]
    fn ipv4_header_parses_and_builds_with_valid_checksum() {
        let mut out = Vec::new();
        build_ip_header(
            v4("127.0.0.2:0").ip(),
            v4("127.0.0.1:0").ip(),
            50,
            100,
            &mut out,
        );
        out.resize(120, 0);
        assert_eq!(fold(sum(0, &out[..20])), 0);
        let h = parse_ipv4(&out).unwrap();
        assert_eq!(
            (h.src, h.dst, h.protocol, h.header_len, h.total_len),
            (
                Ipv4Addr::new(127, 0, 0, 2),
                Ipv4Addr::new(127, 0, 0, 1),
                50,
                20,
                120
            )
        );
        assert!(parse_ipv4(&out[..119]).is_err());
        assert!(parse_ipv4(&[0x65; 20]).is_err());
    }
}
