//! GTPv2-C messages (TS 29.274 §5 header, §8 information elements).
//!
//! The generic layer ([`Message`], [`Ie`]) keeps every IE it does not interpret byte for byte,
//! so unknown IEs and unknown values re-encode exactly. Bearer Context (type 93) is decoded as a
//! grouped IE; a grouped value whose contents do not parse stays raw. Typed views of single IEs
//! live in [`ie`]; typed requests and response builders in [`msg`].
//!
//! Decoding never panics and is bounded: at most [`MAX_IES`] IEs per level and
//! [`MAX_DEPTH`] levels of grouping.

use std::fmt;

use crate::cursor::Cursor;
use crate::{Error, Result};

pub mod ie;
pub mod msg;

/// Most IEs accepted at one level of a message.
pub const MAX_IES: usize = 256;
/// Deepest nesting of grouped IEs accepted.
pub const MAX_DEPTH: usize = 4;
/// Most messages decoded from one datagram (a message plus a piggybacked one, §5.5.1).
pub const MAX_PIGGYBACKED: usize = 2;

/// A GTPv2-C message type (TS 29.274 §6.1, Table 6.1-1). Unknown values are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageType(pub u8);

impl MessageType {
    /// Echo Request.
    pub const ECHO_REQUEST: Self = Self(1);
    /// Echo Response.
    pub const ECHO_RESPONSE: Self = Self(2);
    /// Version Not Supported Indication.
    pub const VERSION_NOT_SUPPORTED: Self = Self(3);
    /// Create Session Request.
    pub const CREATE_SESSION_REQUEST: Self = Self(32);
    /// Create Session Response.
    pub const CREATE_SESSION_RESPONSE: Self = Self(33);
    /// Modify Bearer Request.
    pub const MODIFY_BEARER_REQUEST: Self = Self(34);
    /// Modify Bearer Response.
    pub const MODIFY_BEARER_RESPONSE: Self = Self(35);
    /// Delete Session Request.
    pub const DELETE_SESSION_REQUEST: Self = Self(36);
    /// Delete Session Response.
    pub const DELETE_SESSION_RESPONSE: Self = Self(37);
    /// Delete Bearer Request.
    pub const DELETE_BEARER_REQUEST: Self = Self(99);
    /// Delete Bearer Response.
    pub const DELETE_BEARER_RESPONSE: Self = Self(100);

    /// The response type that answers this request, for the requests this P-GW answers.
    pub fn response(self) -> Option<Self> {
        match self {
            Self::ECHO_REQUEST => Some(Self::ECHO_RESPONSE),
            Self::CREATE_SESSION_REQUEST => Some(Self::CREATE_SESSION_RESPONSE),
            Self::MODIFY_BEARER_REQUEST => Some(Self::MODIFY_BEARER_RESPONSE),
            Self::DELETE_SESSION_REQUEST => Some(Self::DELETE_SESSION_RESPONSE),
            Self::DELETE_BEARER_REQUEST => Some(Self::DELETE_BEARER_RESPONSE),
            _ => None,
        }
    }

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::ECHO_REQUEST => "Echo Request",
            Self::ECHO_RESPONSE => "Echo Response",
            Self::VERSION_NOT_SUPPORTED => "Version Not Supported Indication",
            Self::CREATE_SESSION_REQUEST => "Create Session Request",
            Self::CREATE_SESSION_RESPONSE => "Create Session Response",
            Self::MODIFY_BEARER_REQUEST => "Modify Bearer Request",
            Self::MODIFY_BEARER_RESPONSE => "Modify Bearer Response",
            Self::DELETE_SESSION_REQUEST => "Delete Session Request",
            Self::DELETE_SESSION_RESPONSE => "Delete Session Response",
            Self::DELETE_BEARER_REQUEST => "Delete Bearer Request",
            Self::DELETE_BEARER_RESPONSE => "Delete Bearer Response",
            _ => return None,
        })
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "message type {}", self.0),
        }
    }
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A GTPv2-C IE type (TS 29.274 §8.1, Table 8.1-1). Unknown values are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IeType(pub u8);

impl IeType {
    /// IMSI (§8.3).
    pub const IMSI: Self = Self(1);
    /// Cause (§8.4).
    pub const CAUSE: Self = Self(2);
    /// Recovery (restart counter, §8.5).
    pub const RECOVERY: Self = Self(3);
    /// Access Point Name (§8.6).
    pub const APN: Self = Self(71);
    /// Aggregate Maximum Bit Rate (§8.7).
    pub const AMBR: Self = Self(72);
    /// EPS Bearer ID (§8.8).
    pub const EBI: Self = Self(73);
    /// Mobile Equipment Identity (§8.10).
    pub const MEI: Self = Self(75);
    /// MSISDN (§8.11).
    pub const MSISDN: Self = Self(76);
    /// Indication (§8.12).
    pub const INDICATION: Self = Self(77);
    /// Protocol Configuration Options (§8.13).
    pub const PCO: Self = Self(78);
    /// PDN Address Allocation (§8.14).
    pub const PAA: Self = Self(79);
    /// Bearer Level Quality of Service (§8.15).
    pub const BEARER_QOS: Self = Self(80);
    /// RAT Type (§8.17).
    pub const RAT_TYPE: Self = Self(82);
    /// Serving Network (§8.18).
    pub const SERVING_NETWORK: Self = Self(83);
    /// User Location Information (§8.21).
    pub const ULI: Self = Self(86);
    /// Fully Qualified TEID (§8.22).
    pub const F_TEID: Self = Self(87);
    /// Bearer Context, a grouped IE (§8.28).
    pub const BEARER_CONTEXT: Self = Self(93);
    /// Charging ID (§8.29).
    pub const CHARGING_ID: Self = Self(94);
    /// PDN Type (§8.34).
    pub const PDN_TYPE: Self = Self(99);
    /// APN Restriction (§8.57).
    pub const APN_RESTRICTION: Self = Self(127);
    /// Selection Mode (§8.58).
    pub const SELECTION_MODE: Self = Self(128);
    /// Additional Protocol Configuration Options (§8.68).
    pub const APCO: Self = Self(163);
    /// Extended Protocol Configuration Options (§8.128).
    pub const EPCO: Self = Self(197);
    /// Private Extension (§8.67).
    pub const PRIVATE_EXTENSION: Self = Self(255);

    /// True for the grouped IE types this decoder descends into.
    pub fn is_grouped(self) -> bool {
        self == Self::BEARER_CONTEXT
    }

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::IMSI => "IMSI",
            Self::CAUSE => "Cause",
            Self::RECOVERY => "Recovery",
            Self::APN => "APN",
            Self::AMBR => "AMBR",
            Self::EBI => "EBI",
            Self::MEI => "MEI",
            Self::MSISDN => "MSISDN",
            Self::INDICATION => "Indication",
            Self::PCO => "PCO",
            Self::PAA => "PAA",
            Self::BEARER_QOS => "Bearer QoS",
            Self::RAT_TYPE => "RAT Type",
            Self::SERVING_NETWORK => "Serving Network",
            Self::ULI => "ULI",
            Self::F_TEID => "F-TEID",
            Self::BEARER_CONTEXT => "Bearer Context",
            Self::CHARGING_ID => "Charging ID",
            Self::PDN_TYPE => "PDN Type",
            Self::APN_RESTRICTION => "APN Restriction",
            Self::SELECTION_MODE => "Selection Mode",
            Self::APCO => "APCO",
            Self::EPCO => "ePCO",
            Self::PRIVATE_EXTENSION => "Private Extension",
            _ => return None,
        })
    }
}

impl fmt::Display for IeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "IE type {}", self.0),
        }
    }
}

impl fmt::Debug for IeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The GTPv2-C header (TS 29.274 §5.1, §5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub message_type: MessageType,
    /// The P flag: another message follows in the same datagram (§5.5.1).
    pub piggybacked: bool,
    /// The TEID, present when the T flag is set.
    pub teid: Option<u32>,
    /// The 24-bit sequence number.
    pub sequence: u32,
    /// Octet 1 bits 3..1 (the MP flag and spare bits), kept as received.
    pub low_flags: u8,
    /// The octet after the sequence number (message priority or spare), kept as received.
    pub last_octet: u8,
}

impl Header {
    /// A header with no piggybacking, spare bits zero.
    pub fn new(message_type: MessageType, teid: Option<u32>, sequence: u32) -> Self {
        Self {
            message_type,
            piggybacked: false,
            teid,
            sequence: sequence & 0x00ff_ffff,
            low_flags: 0,
            last_octet: 0,
        }
    }
}

/// The value of one IE: raw octets, or the IEs of a grouped IE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IeValue {
    /// The value octets, exactly as on the wire.
    Raw(Vec<u8>),
    /// The IEs inside a grouped IE (§8.2.1), in wire order.
    Grouped(Vec<Ie>),
}

/// One information element: type, instance and value (TS 29.274 §8.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ie {
    /// The IE type.
    pub ie_type: IeType,
    /// The 4-bit instance.
    pub instance: u8,
    /// The upper 4 bits of octet 4 (CR flag / spare), kept as received.
    pub spare: u8,
    /// The value.
    pub value: IeValue,
}

impl Ie {
    /// A raw IE.
    pub fn raw(ie_type: IeType, instance: u8, value: Vec<u8>) -> Self {
        Self {
            ie_type,
            instance: instance & 0x0f,
            spare: 0,
            value: IeValue::Raw(value),
        }
    }

    /// A grouped IE.
    pub fn grouped(ie_type: IeType, instance: u8, ies: Vec<Self>) -> Self {
        Self {
            ie_type,
            instance: instance & 0x0f,
            spare: 0,
            value: IeValue::Grouped(ies),
        }
    }

    /// The raw value, or `None` for a grouped IE.
    pub fn raw_value(&self) -> Option<&[u8]> {
        match &self.value {
            IeValue::Raw(v) => Some(v),
            IeValue::Grouped(_) => None,
        }
    }

    /// The IEs of a grouped IE, or `None` for a raw one.
    pub fn children(&self) -> Option<&[Self]> {
        match &self.value {
            IeValue::Raw(_) => None,
            IeValue::Grouped(ies) => Some(ies),
        }
    }

    fn decode(cur: &mut Cursor<'_>, depth: usize) -> Result<Self> {
        let ie_type = IeType(cur.u8("IE type")?);
        let len = usize::from(cur.u16("IE length")?);
        let octet4 = cur.u8("IE instance")?;
        let value = cur.take(len, "IE value")?;
        let value = if ie_type.is_grouped() && depth < MAX_DEPTH {
            // A grouped value that does not parse stays raw: it re-encodes exactly and the
            // typed layer reports it as incorrect.
            match decode_ies(value, depth + 1) {
                Ok(children) => IeValue::Grouped(children),
                Err(_) => IeValue::Raw(value.to_vec()),
            }
        } else {
            IeValue::Raw(value.to_vec())
        };
        Ok(Self {
            ie_type,
            instance: octet4 & 0x0f,
            spare: octet4 >> 4,
            value,
        })
    }

    /// Appends the encoded IE to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.push(self.ie_type.0);
        let len_at = out.len();
        out.extend_from_slice(&[0, 0]);
        out.push((self.spare << 4) | (self.instance & 0x0f));
        let start = out.len();
        match &self.value {
            IeValue::Raw(v) => out.extend_from_slice(v),
            IeValue::Grouped(ies) => {
                for ie in ies {
                    ie.encode(out)?;
                }
            }
        }
        let len = out.len() - start;
        let len16 = u16::try_from(len)
            .map_err(|_| Error::TooLong { what: "IE", len })?
            .to_be_bytes();
        out[len_at..len_at + 2].copy_from_slice(&len16);
        Ok(())
    }

    /// The encoded length of the whole IE, header included.
    pub fn encoded_len(&self) -> usize {
        4 + match &self.value {
            IeValue::Raw(v) => v.len(),
            IeValue::Grouped(ies) => ies.iter().map(Self::encoded_len).sum(),
        }
    }
}

fn decode_ies(buf: &[u8], depth: usize) -> Result<Vec<Ie>> {
    let mut cur = Cursor::new(buf);
    let mut ies = Vec::new();
    while !cur.is_empty() {
        if ies.len() == MAX_IES {
            return Err(Error::Limit {
                what: "IEs per level",
                max: MAX_IES,
            });
        }
        ies.push(Ie::decode(&mut cur, depth)?);
    }
    Ok(ies)
}

/// Finds the first IE of a type and instance in a list.
pub fn find(ies: &[Ie], ie_type: IeType, instance: u8) -> Option<&Ie> {
    ies.iter()
        .find(|ie| ie.ie_type == ie_type && ie.instance == instance)
}

/// All IEs of a type and instance in a list, in order.
pub fn find_all(ies: &[Ie], ie_type: IeType, instance: u8) -> impl Iterator<Item = &Ie> {
    ies.iter()
        .filter(move |ie| ie.ie_type == ie_type && ie.instance == instance)
}

/// One GTPv2-C message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The top-level IEs, in wire order.
    pub ies: Vec<Ie>,
}

impl Message {
    /// A message with no IEs.
    pub fn new(header: Header) -> Self {
        Self {
            header,
            ies: Vec::new(),
        }
    }

    /// The whole message length announced by the header at the start of `buf`: `Ok(None)`
    /// when fewer than 4 octets are present.
    pub fn frame_len(buf: &[u8]) -> Result<Option<usize>> {
        let Some(&[octet1, _, hi, lo]) = buf.get(..4) else {
            return Ok(None);
        };
        let version = octet1 >> 5;
        if version != 2 {
            return Err(Error::UnsupportedVersion(version));
        }
        Ok(Some(4 + usize::from(u16::from_be_bytes([hi, lo]))))
    }

    /// Decodes one message from the start of `buf`; returns it and the octets after it.
    pub fn decode(buf: &[u8]) -> Result<(Self, &[u8])> {
        let mut cur = Cursor::new(buf);
        let octet1 = cur.u8("GTPv2-C header")?;
        let version = octet1 >> 5;
        if version != 2 {
            return Err(Error::UnsupportedVersion(version));
        }
        let message_type = MessageType(cur.u8("message type")?);
        let len = usize::from(cur.u16("message length")?);
        let body = cur.take(len, "message body")?;
        let rest = cur.rest();
        let t_flag = octet1 & 0x08 != 0;
        let min = if t_flag { 8 } else { 4 };
        if len < min {
            return Err(Error::InvalidLength {
                what: "GTPv2-C header",
                len,
            });
        }
        let mut b = Cursor::new(body);
        let teid = if t_flag { Some(b.u32("TEID")?) } else { None };
        let sequence = b.u24("sequence number")?;
        let last_octet = b.u8("spare octet")?;
        let header = Header {
            message_type,
            piggybacked: octet1 & 0x10 != 0,
            teid,
            sequence,
            low_flags: octet1 & 0x07,
            last_octet,
        };
        let ies = decode_ies(b.rest(), 0)?;
        Ok((Self { header, ies }, rest))
    }

    /// Decodes every message of a datagram: one, plus one piggybacked when the P flag is set
    /// (§5.5.1). Octets after the last message are ignored.
    pub fn decode_datagram(buf: &[u8]) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        let mut rest = buf;
        loop {
            let (msg, tail) = Self::decode(rest)?;
            let more = msg.header.piggybacked;
            out.push(msg);
            if !more || tail.is_empty() {
                return Ok(out);
            }
            if out.len() == MAX_PIGGYBACKED {
                return Err(Error::Limit {
                    what: "piggybacked messages",
                    max: MAX_PIGGYBACKED,
                });
            }
            rest = tail;
        }
    }

    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let h = &self.header;
        let start = out.len();
        out.push(
            (2 << 5)
                | (u8::from(h.piggybacked) << 4)
                | (u8::from(h.teid.is_some()) << 3)
                | (h.low_flags & 0x07),
        );
        out.push(h.message_type.0);
        out.extend_from_slice(&[0, 0]);
        if let Some(teid) = h.teid {
            out.extend_from_slice(&teid.to_be_bytes());
        }
        out.extend_from_slice(&h.sequence.to_be_bytes()[1..]);
        out.push(h.last_octet);
        for ie in &self.ies {
            ie.encode(out)?;
        }
        let len = out.len() - start - 4;
        let len16 = u16::try_from(len)
            .map_err(|_| Error::TooLong {
                what: "GTPv2-C message",
                len,
            })?
            .to_be_bytes();
        out[start + 2..start + 4].copy_from_slice(&len16);
        Ok(())
    }

    /// The encoded message.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(256);
        self.encode(&mut out)?;
        Ok(out)
    }

    /// The first top-level IE of a type and instance.
    pub fn ie(&self, ie_type: IeType, instance: u8) -> Option<&Ie> {
        find(&self.ies, ie_type, instance)
    }
}

#[cfg(test)]
mod tests;
