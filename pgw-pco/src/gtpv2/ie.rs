//! Typed values of the IEs this P-GW reads and writes (TS 29.274 §8).
//!
//! Each type decodes from and encodes to the value octets of one IE. Decoding reads what the
//! clause defines and ignores octets appended by later releases (§8.2.1: "octets beyond those
//! defined shall be ignored"); the generic [`Ie`] keeps them for byte-exact relaying.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use imslab_types::{Imsi, Msisdn};

use super::{Ie, IeType};
use crate::cursor::Cursor;
use crate::{Error, Result};

/// A typed IE value.
pub trait IeCodec: Sized {
    /// The IE type this value is carried in.
    const TYPE: IeType;

    /// Decodes the value octets.
    fn decode_value(value: &[u8]) -> Result<Self>;

    /// Appends the value octets.
    fn encode_value(&self, out: &mut Vec<u8>);

    /// Builds the IE with the given instance.
    fn to_ie(&self, instance: u8) -> Ie {
        let mut v = Vec::with_capacity(16);
        self.encode_value(&mut v);
        Ie::raw(Self::TYPE, instance, v)
    }

    /// Decodes a raw IE of this type.
    fn from_ie(ie: &Ie) -> Result<Self> {
        match ie.raw_value() {
            Some(v) if ie.ie_type == Self::TYPE => Self::decode_value(v),
            _ => Err(Error::BadIeValue {
                ie_type: ie.ie_type,
                reason: "unexpected IE form",
            }),
        }
    }
}

fn bad(ie_type: IeType, reason: &'static str) -> Error {
    Error::BadIeValue { ie_type, reason }
}

/// Decodes TBCD digits (TS 29.274 §8.3: low nibble first, 0xF filler).
fn tbcd_decode(ie_type: IeType, value: &[u8]) -> Result<String> {
    let mut s = String::with_capacity(value.len() * 2);
    for (i, b) in value.iter().enumerate() {
        for (n, nibble) in [b & 0x0f, b >> 4].into_iter().enumerate() {
            match nibble {
                0..=9 => s.push(char::from(b'0' + nibble)),
                0x0f if i + 1 == value.len() && n == 1 => {}
                _ => return Err(bad(ie_type, "not TBCD digits")),
            }
        }
    }
    Ok(s)
}

fn tbcd_encode(digits: &str, out: &mut Vec<u8>) {
    let d: Vec<u8> = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|c| c - b'0')
        .collect();
    for pair in d.chunks(2) {
        let lo = pair.first().copied().unwrap_or(0x0f);
        let hi = pair.get(1).copied().unwrap_or(0x0f);
        out.push((hi << 4) | lo);
    }
}

impl IeCodec for Imsi {
    const TYPE: IeType = IeType::IMSI;
    fn decode_value(value: &[u8]) -> Result<Self> {
        let digits = tbcd_decode(Self::TYPE, value)?;
        Self::new(digits).map_err(|_| bad(Self::TYPE, "IMSI must be 6 to 15 digits"))
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        tbcd_encode(self.as_str(), out);
    }
}

impl IeCodec for Msisdn {
    const TYPE: IeType = IeType::MSISDN;
    fn decode_value(value: &[u8]) -> Result<Self> {
        let digits = tbcd_decode(Self::TYPE, value)?;
        Self::new(digits).map_err(|_| bad(Self::TYPE, "MSISDN must be 1 to 15 digits"))
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        tbcd_encode(self.as_str(), out);
    }
}

/// Mobile Equipment Identity: IMEI or IMEISV digits (§8.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mei(pub String);

impl IeCodec for Mei {
    const TYPE: IeType = IeType::MEI;
    fn decode_value(value: &[u8]) -> Result<Self> {
        tbcd_decode(Self::TYPE, value).map(Self)
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        tbcd_encode(&self.0, out);
    }
}

/// Access Point Name in dotted form (§8.6, encoded as DNS labels per TS 23.003 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apn(pub String);

impl Apn {
    /// The network identifier: the APN without an operator identifier suffix
    /// (`.mncXXX.mccYYY.gprs`, TS 23.003 §9.1.2).
    pub fn network_identifier(&self) -> &str {
        let lower = self.0.to_ascii_lowercase();
        let digits = |s: &str, prefix: &str| {
            s.strip_prefix(prefix)
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        };
        if let Some(stripped) = lower.strip_suffix(".gprs")
            && let Some(i) = stripped.rfind(".mnc")
            && let Some((mnc, mcc)) = stripped.get(i + 1..).and_then(|t| t.split_once('.'))
            && digits(mnc, "mnc")
            && digits(mcc, "mcc")
        {
            return self.0.get(..i).unwrap_or(&self.0);
        }
        &self.0
    }
}

impl IeCodec for Apn {
    const TYPE: IeType = IeType::APN;
    fn decode_value(value: &[u8]) -> Result<Self> {
        let mut cur = Cursor::new(value);
        let mut s = String::new();
        while !cur.is_empty() {
            let n = usize::from(cur.u8("APN label length")?);
            let label = cur
                .take(n, "APN label")
                .map_err(|_| bad(Self::TYPE, "label overflow"))?;
            if label.is_empty()
                || !label
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            {
                return Err(bad(Self::TYPE, "APN label must be letters, digits or '-'"));
            }
            if !s.is_empty() {
                s.push('.');
            }
            s.extend(label.iter().map(|&b| char::from(b)));
        }
        if s.is_empty() {
            return Err(bad(Self::TYPE, "empty APN"));
        }
        Ok(Self(s))
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        for label in self.0.split('.') {
            let label = &label.as_bytes()[..label.len().min(63)];
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
    }
}

macro_rules! octet_ie {
    ($(#[$doc:meta])* $name:ident, $ty:expr, $mask:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub u8);

        impl IeCodec for $name {
            const TYPE: IeType = $ty;
            fn decode_value(value: &[u8]) -> Result<Self> {
                match value.first() {
                    Some(b) => Ok(Self(b & $mask)),
                    None => Err(bad(Self::TYPE, "empty value")),
                }
            }
            fn encode_value(&self, out: &mut Vec<u8>) {
                out.push(self.0 & $mask);
            }
        }
    };
}

octet_ie!(
    /// RAT Type (§8.17): 6 = EUTRAN, 3 = WLAN, 1 = UTRAN...
    RatType,
    IeType::RAT_TYPE,
    0xff
);
octet_ie!(
    /// Recovery: the sender's restart counter (§8.5).
    Recovery,
    IeType::RECOVERY,
    0xff
);
octet_ie!(
    /// EPS Bearer ID, 4 bits (§8.8).
    Ebi,
    IeType::EBI,
    0x0f
);
octet_ie!(
    /// PDN Type (§8.34): 1 IPv4, 2 IPv6, 3 IPv4v6, 4 non-IP, 5 Ethernet.
    PdnType,
    IeType::PDN_TYPE,
    0x07
);
octet_ie!(
    /// Selection Mode, 2 bits (§8.58).
    SelectionMode,
    IeType::SELECTION_MODE,
    0x03
);
octet_ie!(
    /// APN Restriction (§8.57): 0 = no restriction.
    ApnRestriction,
    IeType::APN_RESTRICTION,
    0xff
);

impl PdnType {
    /// IPv4.
    pub const IPV4: Self = Self(1);
    /// IPv6.
    pub const IPV6: Self = Self(2);
    /// IPv4 and IPv6.
    pub const IPV4V6: Self = Self(3);
    /// Non-IP.
    pub const NON_IP: Self = Self(4);

    /// True when the type asks for an IPv4 address.
    pub fn wants_ipv4(self) -> bool {
        self == Self::IPV4 || self == Self::IPV4V6
    }

    /// True when the type asks for an IPv6 prefix.
    pub fn wants_ipv6(self) -> bool {
        self == Self::IPV6 || self == Self::IPV4V6
    }
}

impl fmt::Display for PdnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4 => f.write_str("IPv4"),
            Self::IPV6 => f.write_str("IPv6"),
            Self::IPV4V6 => f.write_str("IPv4v6"),
            Self::NON_IP => f.write_str("non-IP"),
            Self(n) => write!(f, "PDN type {n}"),
        }
    }
}

/// Charging ID (§8.29).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChargingId(pub u32);

impl IeCodec for ChargingId {
    const TYPE: IeType = IeType::CHARGING_ID;
    fn decode_value(value: &[u8]) -> Result<Self> {
        Cursor::new(value).u32("Charging ID").map(Self)
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
    }
}

/// Serving Network: MCC and MNC (§8.18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingNetwork {
    /// Mobile country code, 3 digits.
    pub mcc: String,
    /// Mobile network code, 2 or 3 digits.
    pub mnc: String,
}

impl IeCodec for ServingNetwork {
    const TYPE: IeType = IeType::SERVING_NETWORK;
    fn decode_value(value: &[u8]) -> Result<Self> {
        let [a, b, c] = Cursor::new(value).array::<3>("Serving Network")?;
        let digit = |n: u8| -> Result<char> {
            if n <= 9 {
                Ok(char::from(b'0' + n))
            } else {
                Err(bad(Self::TYPE, "not BCD"))
            }
        };
        let mcc = [digit(a & 0x0f)?, digit(a >> 4)?, digit(b & 0x0f)?]
            .iter()
            .collect();
        let mut mnc: String = [digit(c & 0x0f)?, digit(c >> 4)?].iter().collect();
        if b >> 4 != 0x0f {
            mnc.push(digit(b >> 4)?);
        }
        Ok(Self { mcc, mnc })
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        let d = |s: &str, i: usize| {
            s.as_bytes()
                .get(i)
                .map_or(0x0f, |c| c.wrapping_sub(b'0') & 0x0f)
        };
        out.push((d(&self.mcc, 1) << 4) | d(&self.mcc, 0));
        out.push((d(&self.mnc, 2) << 4) | d(&self.mcc, 2));
        out.push((d(&self.mnc, 1) << 4) | d(&self.mnc, 0));
    }
}

/// Interface types of an F-TEID (§8.22, Table 8.22-1) used by this P-GW.
pub mod interface {
    /// S1-U eNodeB GTP-U.
    pub const S1U_ENB_GTPU: u8 = 0;
    /// S1-U SGW GTP-U.
    pub const S1U_SGW_GTPU: u8 = 1;
    /// S5/S8 SGW GTP-U.
    pub const S5S8_SGW_GTPU: u8 = 4;
    /// S5/S8 PGW GTP-U.
    pub const S5S8_PGW_GTPU: u8 = 5;
    /// S5/S8 SGW GTP-C.
    pub const S5S8_SGW_GTPC: u8 = 6;
    /// S5/S8 PGW GTP-C.
    pub const S5S8_PGW_GTPC: u8 = 7;
    /// S11 MME GTP-C.
    pub const S11_MME_GTPC: u8 = 10;
    /// S11/S4 SGW GTP-C.
    pub const S11_SGW_GTPC: u8 = 11;
}

/// Fully Qualified TEID (§8.22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fteid {
    /// Interface type, 6 bits ([`interface`]).
    pub interface_type: u8,
    /// The TEID or GRE key.
    pub teid: u32,
    /// IPv4 address (V4 flag).
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address (V6 flag).
    pub ipv6: Option<Ipv6Addr>,
}

impl IeCodec for Fteid {
    const TYPE: IeType = IeType::F_TEID;
    fn decode_value(value: &[u8]) -> Result<Self> {
        let mut cur = Cursor::new(value);
        let flags = cur.u8("F-TEID flags")?;
        let teid = cur.u32("F-TEID TEID")?;
        let ipv4 = if flags & 0x80 != 0 {
            Some(Ipv4Addr::from(cur.array::<4>("F-TEID IPv4")?))
        } else {
            None
        };
        let ipv6 = if flags & 0x40 != 0 {
            Some(Ipv6Addr::from(cur.array::<16>("F-TEID IPv6")?))
        } else {
            None
        };
        if ipv4.is_none() && ipv6.is_none() {
            return Err(bad(Self::TYPE, "F-TEID without an address"));
        }
        Ok(Self {
            interface_type: flags & 0x3f,
            teid,
            ipv4,
            ipv6,
        })
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        out.push(
            (u8::from(self.ipv4.is_some()) << 7)
                | (u8::from(self.ipv6.is_some()) << 6)
                | (self.interface_type & 0x3f),
        );
        out.extend_from_slice(&self.teid.to_be_bytes());
        if let Some(a) = self.ipv4 {
            out.extend_from_slice(&a.octets());
        }
        if let Some(a) = self.ipv6 {
            out.extend_from_slice(&a.octets());
        }
    }
}

/// PDN Address Allocation (§8.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paa {
    /// The PDN type.
    pub pdn_type: PdnType,
    /// The IPv4 address (IPv4, IPv4v6).
    pub ipv4: Option<Ipv4Addr>,
    /// The IPv6 prefix length and address (IPv6, IPv4v6).
    pub ipv6: Option<(u8, Ipv6Addr)>,
}

impl IeCodec for Paa {
    const TYPE: IeType = IeType::PAA;
    fn decode_value(value: &[u8]) -> Result<Self> {
        let mut cur = Cursor::new(value);
        let pdn_type = PdnType(cur.u8("PAA PDN type")? & 0x07);
        let v6 = |cur: &mut Cursor<'_>| -> Result<(u8, Ipv6Addr)> {
            let len = cur.u8("PAA prefix length")?;
            Ok((len, Ipv6Addr::from(cur.array::<16>("PAA IPv6")?)))
        };
        let v4 = |cur: &mut Cursor<'_>| -> Result<Ipv4Addr> {
            Ok(Ipv4Addr::from(cur.array::<4>("PAA IPv4")?))
        };
        Ok(match pdn_type {
            PdnType::IPV4 => Self {
                pdn_type,
                ipv4: Some(v4(&mut cur)?),
                ipv6: None,
            },
            PdnType::IPV6 => Self {
                pdn_type,
                ipv4: None,
                ipv6: Some(v6(&mut cur)?),
            },
            PdnType::IPV4V6 => {
                let ipv6 = Some(v6(&mut cur)?);
                Self {
                    pdn_type,
                    ipv4: Some(v4(&mut cur)?),
                    ipv6,
                }
            }
            _ => Self {
                pdn_type,
                ipv4: None,
                ipv6: None,
            },
        })
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        out.push(self.pdn_type.0 & 0x07);
        let v6 = self.ipv6.unwrap_or((64, Ipv6Addr::UNSPECIFIED));
        let v4 = self.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED);
        match self.pdn_type {
            PdnType::IPV4 => out.extend_from_slice(&v4.octets()),
            PdnType::IPV6 => {
                out.push(v6.0);
                out.extend_from_slice(&v6.1.octets());
            }
            PdnType::IPV4V6 => {
                out.push(v6.0);
                out.extend_from_slice(&v6.1.octets());
                out.extend_from_slice(&v4.octets());
            }
            _ => {}
        }
    }
}

/// Bearer Level Quality of Service (§8.15); bit rates in kbit/s, 40 bits each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BearerQos {
    /// Octet 5: PCI, PL (priority level) and PVI flags.
    pub arp: u8,
    /// QoS class identifier.
    pub qci: u8,
    /// Maximum bit rate uplink.
    pub mbr_ul: u64,
    /// Maximum bit rate downlink.
    pub mbr_dl: u64,
    /// Guaranteed bit rate uplink.
    pub gbr_ul: u64,
    /// Guaranteed bit rate downlink.
    pub gbr_dl: u64,
}

impl IeCodec for BearerQos {
    const TYPE: IeType = IeType::BEARER_QOS;
    fn decode_value(value: &[u8]) -> Result<Self> {
        let mut cur = Cursor::new(value);
        let arp = cur.u8("Bearer QoS ARP")?;
        let qci = cur.u8("Bearer QoS QCI")?;
        let mut rate = |what| -> Result<u64> {
            let [a, b, c, d, e] = cur.array::<5>(what)?;
            Ok(u64::from_be_bytes([0, 0, 0, a, b, c, d, e]))
        };
        Ok(Self {
            arp,
            qci,
            mbr_ul: rate("MBR UL")?,
            mbr_dl: rate("MBR DL")?,
            gbr_ul: rate("GBR UL")?,
            gbr_dl: rate("GBR DL")?,
        })
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        out.push(self.arp);
        out.push(self.qci);
        for r in [self.mbr_ul, self.mbr_dl, self.gbr_ul, self.gbr_dl] {
            out.extend_from_slice(&r.to_be_bytes()[3..]);
        }
    }
}

/// Aggregate Maximum Bit Rate, in kbit/s (§8.7); carries the APN-AMBR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ambr {
    /// Uplink.
    pub uplink_kbps: u32,
    /// Downlink.
    pub downlink_kbps: u32,
}

impl IeCodec for Ambr {
    const TYPE: IeType = IeType::AMBR;
    fn decode_value(value: &[u8]) -> Result<Self> {
        let mut cur = Cursor::new(value);
        Ok(Self {
            uplink_kbps: cur.u32("AMBR uplink")?,
            downlink_kbps: cur.u32("AMBR downlink")?,
        })
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.uplink_kbps.to_be_bytes());
        out.extend_from_slice(&self.downlink_kbps.to_be_bytes());
    }
}

/// A GTPv2-C cause value (§8.4, Table 8.4-1). Unknown values are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CauseValue(pub u8);

impl CauseValue {
    /// Reactivation requested (a request cause: reconnect later).
    pub const REACTIVATION_REQUESTED: Self = Self(11);
    /// Request accepted.
    pub const REQUEST_ACCEPTED: Self = Self(16);
    /// New PDN type due to network preference.
    pub const NEW_PDN_TYPE_NETWORK_PREFERENCE: Self = Self(18);
    /// New PDN type due to single address bearer only.
    pub const NEW_PDN_TYPE_SINGLE_ADDRESS: Self = Self(19);
    /// Context not found.
    pub const CONTEXT_NOT_FOUND: Self = Self(64);
    /// Invalid message format.
    pub const INVALID_MESSAGE_FORMAT: Self = Self(65);
    /// Invalid length.
    pub const INVALID_LENGTH: Self = Self(67);
    /// Service not supported.
    pub const SERVICE_NOT_SUPPORTED: Self = Self(68);
    /// Mandatory IE incorrect.
    pub const MANDATORY_IE_INCORRECT: Self = Self(69);
    /// Mandatory IE missing.
    pub const MANDATORY_IE_MISSING: Self = Self(70);
    /// System failure.
    pub const SYSTEM_FAILURE: Self = Self(72);
    /// Missing or unknown APN.
    pub const MISSING_OR_UNKNOWN_APN: Self = Self(78);
    /// Preferred PDN type not supported.
    pub const PREFERRED_PDN_TYPE_NOT_SUPPORTED: Self = Self(83);
    /// All dynamic addresses are occupied.
    pub const ALL_DYNAMIC_ADDRESSES_OCCUPIED: Self = Self(84);
    /// Request rejected (reason not specified).
    pub const REQUEST_REJECTED: Self = Self(94);

    /// True for the "accepted" range 16..=63 (§8.4).
    pub fn is_accepted(self) -> bool {
        (16..=63).contains(&self.0)
    }

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::REACTIVATION_REQUESTED => "Reactivation requested",
            Self::REQUEST_ACCEPTED => "Request accepted",
            Self::NEW_PDN_TYPE_NETWORK_PREFERENCE => "New PDN type due to network preference",
            Self::NEW_PDN_TYPE_SINGLE_ADDRESS => "New PDN type due to single address bearer only",
            Self::CONTEXT_NOT_FOUND => "Context not found",
            Self::INVALID_MESSAGE_FORMAT => "Invalid message format",
            Self::INVALID_LENGTH => "Invalid length",
            Self::SERVICE_NOT_SUPPORTED => "Service not supported",
            Self::MANDATORY_IE_INCORRECT => "Mandatory IE incorrect",
            Self::MANDATORY_IE_MISSING => "Mandatory IE missing",
            Self::SYSTEM_FAILURE => "System failure",
            Self::MISSING_OR_UNKNOWN_APN => "Missing or unknown APN",
            Self::PREFERRED_PDN_TYPE_NOT_SUPPORTED => "Preferred PDN type not supported",
            Self::ALL_DYNAMIC_ADDRESSES_OCCUPIED => "All dynamic addresses are occupied",
            Self::REQUEST_REJECTED => "Request rejected",
            _ => return None,
        })
    }
}

impl fmt::Display for CauseValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "cause {}", self.0),
        }
    }
}

impl fmt::Debug for CauseValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Type and instance of the IE a rejection is about (§8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffendingIe {
    /// Its type.
    pub ie_type: IeType,
    /// Its instance.
    pub instance: u8,
}

/// Cause (§8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause {
    /// The cause value.
    pub value: CauseValue,
    /// Octet 6 flags: PCE (bit 3), BCE (bit 2), CS (bit 1).
    pub flags: u8,
    /// The offending IE, for rejections about one IE.
    pub offending: Option<OffendingIe>,
}

impl Cause {
    /// A cause with no flags and no offending IE.
    pub fn new(value: CauseValue) -> Self {
        Self {
            value,
            flags: 0,
            offending: None,
        }
    }
}

impl IeCodec for Cause {
    const TYPE: IeType = IeType::CAUSE;
    fn decode_value(value: &[u8]) -> Result<Self> {
        let mut cur = Cursor::new(value);
        let v = CauseValue(cur.u8("cause value")?);
        let flags = cur.u8("cause flags")? & 0x07;
        let offending = if cur.remaining() >= 4 {
            let t = IeType(cur.u8("offending IE type")?);
            let _len = cur.u16("offending IE length")?;
            let instance = cur.u8("offending IE instance")? & 0x0f;
            Some(OffendingIe {
                ie_type: t,
                instance,
            })
        } else {
            None
        };
        Ok(Self {
            value: v,
            flags,
            offending,
        })
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        out.push(self.value.0);
        out.push(self.flags & 0x07);
        if let Some(o) = self.offending {
            out.extend_from_slice(&[o.ie_type.0, 0, 0, o.instance & 0x0f]);
        }
    }
}

/// Indication flags (§8.12), kept as octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indication(pub Vec<u8>);

impl IeCodec for Indication {
    const TYPE: IeType = IeType::INDICATION;
    fn decode_value(value: &[u8]) -> Result<Self> {
        Ok(Self(value.to_vec()))
    }
    fn encode_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}
