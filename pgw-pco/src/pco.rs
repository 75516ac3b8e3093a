//! Protocol Configuration Options (TS 24.008 §10.5.6.3), as carried in GTPv2-C PCO (IE 78),
//! APCO (IE 163) and ePCO (IE 197, TS 24.301 §9.9.4.26 from octet 4).
//!
//! [`Pco`] is the value from the configuration-protocol octet on: that octet, then containers
//! `{ id (2 octets), length, contents }`. The same container ID means different things per
//! [`Direction`], and a few IDs have a 2-octet length in one direction (`pco.json`).
//! [`answer`] builds the network's reply to a phone's requests.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::cursor::Cursor;
use crate::{Error, Result};

/// Most containers accepted in one PCO.
pub const MAX_CONTAINERS: usize = 128;
/// Largest PCO value that still fits the NAS PCO IE (253 octets with IEI and length).
pub const MAX_NAS_PCO_LEN: usize = 251;

/// Which way a PCO travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the phone (requests).
    MsToNetwork,
    /// To the phone (answers).
    NetworkToMs,
}

/// A container or protocol identifier. Unknown values are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(pub u16);

impl ContainerId {
    /// P-CSCF IPv6 Address (Request).
    pub const PCSCF_IPV6: Self = Self(0x0001);
    /// IM CN Subsystem Signalling Flag.
    pub const IM_CN_SIGNALLING_FLAG: Self = Self(0x0002);
    /// DNS Server IPv6 Address (Request).
    pub const DNS_IPV6: Self = Self(0x0003);
    /// MS Support of Network Requested Bearer Control indicator / Selected Bearer Control Mode.
    pub const BEARER_CONTROL_MODE: Self = Self(0x0005);
    /// IP address allocation via NAS signalling (MS to network only).
    pub const IP_ALLOC_VIA_NAS: Self = Self(0x000A);
    /// IPv4 address allocation via DHCPv4 (MS to network only).
    pub const IPV4_ALLOC_VIA_DHCP: Self = Self(0x000B);
    /// P-CSCF IPv4 Address (Request).
    pub const PCSCF_IPV4: Self = Self(0x000C);
    /// DNS Server IPv4 Address (Request).
    pub const DNS_IPV4: Self = Self(0x000D);
    /// MSISDN (Request).
    pub const MSISDN: Self = Self(0x000E);
    /// IPv4 Link MTU (Request).
    pub const IPV4_LINK_MTU: Self = Self(0x0010);
    /// P-CSCF Re-selection support (MS to network only).
    pub const PCSCF_RESELECTION: Self = Self(0x0012);
    /// IPCP (RFC 1332, DNS options RFC 1877).
    pub const IPCP: Self = Self(0x8021);
    /// LCP.
    pub const LCP: Self = Self(0xC021);
    /// PAP (RFC 1334).
    pub const PAP: Self = Self(0xC023);
    /// CHAP (RFC 1994).
    pub const CHAP: Self = Self(0xC223);

    /// True when this container has a 2-octet length field in `dir` (TS 24.008 Rel-15+;
    /// `pco.json`).
    pub fn has_long_length(self, dir: Direction) -> bool {
        match dir {
            Direction::NetworkToMs => {
                matches!(self.0, 0x0023 | 0x0024 | 0x0030 | 0x0031 | 0x0032 | 0x0041)
            }
            Direction::MsToNetwork => self.0 == 0x0041,
        }
    }

    /// True for the PPP configuration protocols, whose contents may hold credentials.
    fn is_auth(self) -> bool {
        self == Self::PAP || self == Self::CHAP
    }
}

impl fmt::Debug for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X}", self.0)
    }
}

/// One container: identifier and contents.
#[derive(Clone, PartialEq, Eq)]
pub struct Container {
    /// The identifier.
    pub id: ContainerId,
    /// The contents.
    pub contents: Vec<u8>,
}

impl fmt::Debug for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Container");
        d.field("id", &self.id);
        // PAP and CHAP carry user names and passwords: never print them.
        if self.id.is_auth() {
            d.field(
                "contents",
                &format_args!("({} octets)", self.contents.len()),
            );
        } else {
            d.field("contents", &format_args!("{:02x?}", self.contents));
        }
        d.finish()
    }
}

impl Container {
    /// A container with contents.
    pub fn new(id: ContainerId, contents: Vec<u8>) -> Self {
        Self { id, contents }
    }
}

/// A PCO value: the configuration-protocol octet and the containers, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pco {
    /// Octet 3: ext bit and configuration protocol (0x80 = PPP), kept as received.
    pub header: u8,
    /// The containers.
    pub containers: Vec<Container>,
}

impl Default for Pco {
    fn default() -> Self {
        Self {
            header: 0x80,
            containers: Vec::new(),
        }
    }
}

impl Pco {
    /// Decodes a PCO value.
    pub fn decode(buf: &[u8], dir: Direction) -> Result<Self> {
        let mut cur = Cursor::new(buf);
        let header = cur.u8("PCO header").map_err(|_| Error::BadPco("empty"))?;
        let mut containers = Vec::new();
        while !cur.is_empty() {
            if containers.len() == MAX_CONTAINERS {
                return Err(Error::Limit {
                    what: "PCO containers",
                    max: MAX_CONTAINERS,
                });
            }
            let id = ContainerId(cur.u16("PCO container id")?);
            let len = if id.has_long_length(dir) {
                usize::from(cur.u16("PCO container length")?)
            } else {
                usize::from(cur.u8("PCO container length")?)
            };
            let contents = cur.take(len, "PCO container contents")?.to_vec();
            containers.push(Container { id, contents });
        }
        Ok(Self { header, containers })
    }

    /// Appends the encoded value.
    pub fn encode(&self, dir: Direction, out: &mut Vec<u8>) -> Result<()> {
        out.push(self.header);
        for c in &self.containers {
            out.extend_from_slice(&c.id.0.to_be_bytes());
            let len = c.contents.len();
            if c.id.has_long_length(dir) {
                let l = u16::try_from(len).map_err(|_| Error::TooLong {
                    what: "PCO container",
                    len,
                })?;
                out.extend_from_slice(&l.to_be_bytes());
            } else {
                let l = u8::try_from(len).map_err(|_| Error::TooLong {
                    what: "PCO container",
                    len,
                })?;
                out.push(l);
            }
            out.extend_from_slice(&c.contents);
        }
        Ok(())
    }

    /// The encoded value.
    pub fn to_bytes(&self, dir: Direction) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64);
        self.encode(dir, &mut out)?;
        Ok(out)
    }

    /// True when a container with this id is present.
    pub fn has(&self, id: ContainerId) -> bool {
        self.containers.iter().any(|c| c.id == id)
    }

    /// The contents of every container with this id.
    pub fn all(&self, id: ContainerId) -> impl Iterator<Item = &[u8]> {
        self.containers
            .iter()
            .filter(move |c| c.id == id)
            .map(|c| c.contents.as_slice())
    }
}

/// What the P-GW hands out in answers, for one APN.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PcoSettings {
    /// P-CSCF IPv4 addresses, in configured order.
    pub pcscf_v4: Vec<Ipv4Addr>,
    /// P-CSCF IPv6 addresses, in configured order.
    pub pcscf_v6: Vec<Ipv6Addr>,
    /// How many P-CSCFs per family one answer carries; 0 = all.
    pub pcscf_per_answer: usize,
    /// DNS IPv4 servers.
    pub dns_v4: Vec<Ipv4Addr>,
    /// DNS IPv6 servers.
    pub dns_v6: Vec<Ipv6Addr>,
    /// IPv4 link MTU; `None` sends none.
    pub mtu: Option<u16>,
    /// Echo the IM CN Subsystem Signalling Flag.
    pub im_cn_signalling_flag: bool,
}

/// What a phone asked for in its PCO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PcoRequests {
    /// P-CSCF IPv4 Address Request (0x000C).
    pub pcscf_v4: bool,
    /// P-CSCF IPv6 Address Request (0x0001).
    pub pcscf_v6: bool,
    /// DNS Server IPv4 Address Request (0x000D).
    pub dns_v4: bool,
    /// DNS Server IPv6 Address Request (0x0003).
    pub dns_v6: bool,
    /// IPv4 Link MTU Request (0x0010).
    pub mtu: bool,
    /// IP address allocation via NAS signalling (0x000A).
    pub ip_alloc_via_nas: bool,
    /// P-CSCF Re-selection support (0x0012).
    pub pcscf_reselection: bool,
    /// IM CN Subsystem Signalling Flag (0x0002).
    pub im_cn_flag: bool,
    /// IPCP Configure-Request present.
    pub ipcp: bool,
    /// PAP Authenticate-Request present.
    pub pap: bool,
    /// CHAP Response present.
    pub chap: bool,
}

/// The answer to one PCO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcoAnswer {
    /// The PCO to send to the phone.
    pub pco: Pco,
    /// What the phone asked for.
    pub requests: PcoRequests,
    /// The P-CSCF addresses handed out, in order.
    pub pcscf: Vec<IpAddr>,
    /// Containers left out because the answer would not fit the NAS PCO.
    pub dropped: usize,
}

fn rotate<T: Clone>(list: &[T], start: usize, count: usize) -> Vec<T> {
    if list.is_empty() {
        return Vec::new();
    }
    let n = if count == 0 {
        list.len()
    } else {
        count.min(list.len())
    };
    (0..n)
        .filter_map(|i| list.get((start + i) % list.len()).cloned())
        .collect()
}

/// IPCP options (RFC 1332 §3, RFC 1877 §1): Primary DNS 129, Secondary DNS 131.
const IPCP_PRIMARY_DNS: u8 = 129;
const IPCP_SECONDARY_DNS: u8 = 131;

/// Answers an IPCP Configure-Request: a Configure-Nak with our DNS servers for the DNS options
/// (as deployed P-GWs do), or a Configure-Ack when the phone already has them. DNS options we
/// have no server for are Configure-Rejected verbatim (RFC 1661 §5.4: a Reject takes precedence
/// over a Nak). Other options are left unanswered.
fn answer_ipcp(req: &[u8], dns: &[Ipv4Addr]) -> Option<Vec<u8>> {
    let mut cur = Cursor::new(req);
    let code = cur.u8("IPCP code").ok()?;
    let id = cur.u8("IPCP id").ok()?;
    let len = usize::from(cur.u16("IPCP length").ok()?);
    if code != 1 || len < 4 {
        return None;
    }
    let mut opts = Cursor::new(cur.take(len - 4, "IPCP options").ok()?);
    let mut reply = Vec::new();
    let mut rejected = Vec::new();
    let mut all_match = true;
    while !opts.is_empty() {
        let t = opts.u8("IPCP option").ok()?;
        let l = usize::from(opts.u8("IPCP option length").ok()?);
        let v = opts.take(l.checked_sub(2)?, "IPCP option value").ok()?;
        let server = match t {
            IPCP_PRIMARY_DNS => dns.first(),
            IPCP_SECONDARY_DNS => dns.get(1).or_else(|| dns.first()),
            _ => continue,
        };
        if let Some(server) = server {
            all_match &= v == server.octets();
            reply.push(t);
            reply.push(6);
            reply.extend_from_slice(&server.octets());
        } else {
            rejected.push(t);
            rejected.push(u8::try_from(l).ok()?);
            rejected.extend_from_slice(v);
        }
    }
    // Code 2 Configure-Ack, 3 Configure-Nak, 4 Configure-Reject.
    let (code, options) = if !rejected.is_empty() {
        (4, rejected)
    } else if reply.is_empty() {
        return None;
    } else if all_match {
        (2, reply)
    } else {
        (3, reply)
    };
    let total = u16::try_from(options.len() + 4).ok()?;
    let mut out = vec![code, id];
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&options);
    Some(out)
}

/// PAP Authenticate-Request (code 1) → Authenticate-Ack (code 2, empty message), RFC 1334
/// §2.2. The stub accepts any credentials.
fn answer_pap(req: &[u8]) -> Option<Vec<u8>> {
    match req {
        [1, id, ..] => Some(vec![2, *id, 0, 5, 0]),
        _ => None,
    }
}

/// CHAP: the phone sends its Challenge and Response; the network answers Success (code 3)
/// with the Response's identifier, RFC 1994 §4.3. Any response is accepted.
fn answer_chap(containers: &[&[u8]]) -> Option<Vec<u8>> {
    containers.iter().find_map(|c| match c {
        [2, id, ..] => Some(vec![3, *id, 0, 4]),
        _ => None,
    })
}

/// Builds the network's answer to the phone's PCO `req`, starting the P-CSCF lists at
/// `start` (round-robin counter or IMSI hash). Answers are ordered P-CSCF first, so that when
/// the NAS limit ([`MAX_NAS_PCO_LEN`], when `limit` is set) cuts containers, the P-CSCFs stay.
pub fn answer(req: &Pco, settings: &PcoSettings, start: usize, limit: bool) -> PcoAnswer {
    let mut r = PcoRequests::default();
    let mut chap = Vec::new();
    let mut out: Vec<Container> = Vec::new();
    let mut ipcp_reply = None;
    let mut pap_reply = None;
    for c in &req.containers {
        match c.id {
            ContainerId::PCSCF_IPV4 => r.pcscf_v4 = true,
            ContainerId::PCSCF_IPV6 => r.pcscf_v6 = true,
            ContainerId::DNS_IPV4 => r.dns_v4 = true,
            ContainerId::DNS_IPV6 => r.dns_v6 = true,
            ContainerId::IPV4_LINK_MTU => r.mtu = true,
            ContainerId::IP_ALLOC_VIA_NAS => r.ip_alloc_via_nas = true,
            ContainerId::PCSCF_RESELECTION => r.pcscf_reselection = true,
            ContainerId::IM_CN_SIGNALLING_FLAG => r.im_cn_flag = true,
            ContainerId::IPCP => {
                r.ipcp = true;
                if ipcp_reply.is_none() {
                    ipcp_reply = answer_ipcp(&c.contents, &settings.dns_v4);
                }
            }
            ContainerId::PAP => {
                r.pap = true;
                pap_reply = answer_pap(&c.contents);
            }
            ContainerId::CHAP => {
                r.chap = true;
                chap.push(c.contents.as_slice());
            }
            _ => {}
        }
    }
    let v4 = if r.pcscf_v4 {
        rotate(&settings.pcscf_v4, start, settings.pcscf_per_answer)
    } else {
        Vec::new()
    };
    let v6 = if r.pcscf_v6 {
        rotate(&settings.pcscf_v6, start, settings.pcscf_per_answer)
    } else {
        Vec::new()
    };
    for a in &v4 {
        out.push(Container::new(ContainerId::PCSCF_IPV4, a.octets().to_vec()));
    }
    for a in &v6 {
        out.push(Container::new(ContainerId::PCSCF_IPV6, a.octets().to_vec()));
    }
    if let Some(p) = pap_reply {
        out.push(Container::new(ContainerId::PAP, p));
    }
    if let Some(c) = answer_chap(&chap) {
        out.push(Container::new(ContainerId::CHAP, c));
    }
    if r.im_cn_flag && settings.im_cn_signalling_flag {
        out.push(Container::new(
            ContainerId::IM_CN_SIGNALLING_FLAG,
            Vec::new(),
        ));
    }
    if let (true, Some(mtu)) = (r.mtu, settings.mtu) {
        out.push(Container::new(
            ContainerId::IPV4_LINK_MTU,
            mtu.to_be_bytes().to_vec(),
        ));
    }
    if r.dns_v4 {
        out.extend(
            settings
                .dns_v4
                .iter()
                .map(|a| Container::new(ContainerId::DNS_IPV4, a.octets().to_vec())),
        );
    }
    if r.dns_v6 {
        out.extend(
            settings
                .dns_v6
                .iter()
                .map(|a| Container::new(ContainerId::DNS_IPV6, a.octets().to_vec())),
        );
    }
    if let Some(i) = ipcp_reply {
        out.push(Container::new(ContainerId::IPCP, i));
    }
    let mut dropped = 0;
    if limit {
        // 1 header octet + 3 per container + contents.
        let mut size = 1;
        let mut keep = 0;
        for c in &out {
            size += 3 + c.contents.len();
            if size > MAX_NAS_PCO_LEN {
                break;
            }
            keep += 1;
        }
        dropped = out.len() - keep;
        out.truncate(keep);
    }
    let pcscf = out
        .iter()
        .filter_map(|c| match (c.id, c.contents.as_slice()) {
            (ContainerId::PCSCF_IPV4, b) => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
            (ContainerId::PCSCF_IPV6, b) => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
            _ => None,
        })
        .collect();
    PcoAnswer {
        pco: Pco {
            header: 0x80 | (req.header & 0x07),
            containers: out,
        },
        requests: r,
        pcscf,
        dropped,
    }
}

#[cfg(test)]
mod tests;
