//! A classic pcap writer (LINKTYPE_RAW: every record is an IPv4 or IPv6 packet) for the
//! signalling imslab functions send and receive.
//!
//! The functions do not capture from the wire: their drivers hand each message with its
//! addresses to [`PcapWriter`], which synthesizes the IP and UDP/TCP headers (with correct
//! checksums, so tshark reports no errors). TCP flows get a three-way handshake the first time
//! they are seen and running sequence numbers, so tshark reassembles Diameter and SIP over TCP.
//! ESP packets built by the userspace IPsec backend go in whole through [`PcapWriter::ip_packet`].
//!
//! This crate does no networking; it writes to any `std::io::Write`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

/// LINKTYPE_RAW: the packet starts with an IPv4 or IPv6 header.
const LINKTYPE_RAW: u32 = 101;
/// Largest TCP payload put in one synthesized segment.
const MAX_SEGMENT: usize = 60_000;

/// Writes pcap records for messages with their transport addresses.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    /// Next sequence number per TCP direction (src, dst).
    tcp_seq: HashMap<(SocketAddr, SocketAddr), u32>,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the pcap global header.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65_535u32.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self {
            out,
            tcp_seq: HashMap::new(),
        })
    }

    /// Records a UDP datagram.
    pub fn udp(
        &mut self,
        at: SystemTime,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        let mut udp = Vec::with_capacity(8 + payload.len());
        let len = u16::try_from(8 + payload.len()).map_err(|_| too_big())?;
        udp.extend_from_slice(&src.port().to_be_bytes());
        udp.extend_from_slice(&dst.port().to_be_bytes());
        udp.extend_from_slice(&len.to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(payload);
        let sum = transport_checksum(src.ip(), dst.ip(), 17, &udp)?;
        // RFC 768: a computed zero is sent as all ones.
        let sum = if sum == 0 { 0xffff } else { sum };
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        let packet = ip_wrap(src.ip(), dst.ip(), 17, &udp)?;
        self.record(at, &packet)
    }

    /// Records data sent on a TCP connection from `src` to `dst`. The first time a connection
    /// is seen, a SYN, SYN-ACK, ACK handshake is synthesized with `src` as the client.
    pub fn tcp(
        &mut self,
        at: SystemTime,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        if !self.tcp_seq.contains_key(&(src, dst)) && !self.tcp_seq.contains_key(&(dst, src)) {
            self.tcp_segment(at, src, dst, 0, 0, SYN, &[])?;
            self.tcp_segment(at, dst, src, 0, 1, SYN | ACK, &[])?;
            self.tcp_segment(at, src, dst, 1, 1, ACK, &[])?;
            self.tcp_seq.insert((src, dst), 1);
            self.tcp_seq.insert((dst, src), 1);
        }
        for chunk in payload.chunks(MAX_SEGMENT) {
            let seq = *self.tcp_seq.get(&(src, dst)).unwrap_or(&1);
            let ack = *self.tcp_seq.get(&(dst, src)).unwrap_or(&1);
            self.tcp_segment(at, src, dst, seq, ack, ACK | PSH, chunk)?;
            // Sequence numbers wrap modulo 2^32 (RFC 9293 §3.4).
            let len = u32::try_from(chunk.len()).map_err(|_| too_big())?;
            self.tcp_seq.insert((src, dst), seq.wrapping_add(len));
        }
        Ok(())
    }

    /// Records a complete IP packet (for example ESP built by the userspace IPsec backend).
    pub fn ip_packet(&mut self, at: SystemTime, packet: &[u8]) -> io::Result<()> {
        self.record(at, packet)
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Returns the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp_segment(
        &mut self,
        at: SystemTime,
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> io::Result<()> {
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend_from_slice(&src.port().to_be_bytes());
        tcp.extend_from_slice(&dst.port().to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&(if flags & ACK != 0 { ack } else { 0 }).to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(flags);
        tcp.extend_from_slice(&65_535u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let sum = transport_checksum(src.ip(), dst.ip(), 6, &tcp)?;
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        let packet = ip_wrap(src.ip(), dst.ip(), 6, &tcp)?;
        self.record(at, &packet)
    }

    fn record(&mut self, at: SystemTime, packet: &[u8]) -> io::Result<()> {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let len = u32::try_from(packet.len()).map_err(|_| too_big())?;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(since.as_secs() as u32).to_le_bytes());
        h[4..8].copy_from_slice(&since.subsec_micros().to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(packet)
    }
}

const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

fn too_big() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "packet too large for a pcap record",
    )
}

fn mixed() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "source and destination differ in address family",
    )
}

/// Prepends an IPv4 or IPv6 header.
fn ip_wrap(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> io::Result<Vec<u8>> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(20 + payload.len()).map_err(|_| too_big())?;
            let mut p = Vec::with_capacity(20 + payload.len());
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let sum = !fold(sum16(0, &p[..20]));
            p[10..12].copy_from_slice(&sum.to_be_bytes());
            p.extend_from_slice(payload);
            Ok(p)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u16::try_from(payload.len()).map_err(|_| too_big())?;
            let mut p = Vec::with_capacity(40 + payload.len());
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(&[proto, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(payload);
            Ok(p)
        }
        _ => Err(mixed()),
    }
}

/// The UDP/TCP checksum over the pseudo-header and the segment (RFC 768, RFC 9293, RFC 8200 §8.1).
pub fn transport_checksum(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> io::Result<u16> {
    let len = u32::try_from(segment.len()).map_err(|_| too_big())?;
    let mut acc = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let acc = sum16(0, &s.octets());
            sum16(acc, &d.octets())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let acc = sum16(0, &s.octets());
            sum16(acc, &d.octets())
        }
        _ => return Err(mixed()),
    };
    acc += u64::from(proto) + u64::from(len);
    Ok(!fold(sum16(acc, segment)))
}

fn sum16(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests;
