//! AVPs (RFC 6733 §4): header with V/M/P flags and optional vendor id, payload, 32-bit padding.

use std::fmt;

use bytes::{BufMut, Bytes};

use crate::codes::VendorId;
use crate::dict::{self, AvpCode, AvpDef, AvpType};
use crate::error::Error;
use crate::types::{Address, AddressError, DiameterUri, Time};

/// Payloads up to this size are stored inline, without a heap buffer or reference count.
const INLINE: usize = 30;

/// AVP payload bytes. Short payloads (most Unsigned32, Enumerated, keys, short strings) are held
/// inline; longer ones share the received buffer without copying. Dereferences to `[u8]`.
#[derive(Clone)]
pub struct Octets(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Shared(Bytes),
}

impl Octets {
    /// Copies `b` (inline when short).
    pub fn copy_from_slice(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            Self(Repr::Inline {
                len: b.len() as u8,
                buf,
            })
        } else {
            Self(Repr::Shared(Bytes::copy_from_slice(b)))
        }
    }

    /// A part of a shared buffer (copied inline when short).
    fn from_shared(data: &Bytes, range: std::ops::Range<usize>) -> Self {
        let len = range.len();
        if len > INLINE {
            return Self(Repr::Shared(data.slice(range)));
        }
        // Copy a whole fixed-size window when the buffer has one: a constant-size copy lets the
        // CPU forward the stores when the AVP is moved (a variable-length copy stalls it). The
        // bytes past `len` are never exposed.
        let mut buf = [0u8; INLINE];
        match data.get(range.start..range.start + INLINE) {
            Some(window) => buf.copy_from_slice(window),
            None => {
                let b = data.get(range).unwrap_or_default();
                buf[..b.len()].copy_from_slice(b);
            }
        }
        Self(Repr::Inline {
            len: len as u8,
            buf,
        })
    }

    /// The bytes as a `Bytes` (shared when long, copied when inline).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self),
            Repr::Shared(b) => b.clone(),
        }
    }
}

impl std::ops::Deref for Octets {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            Repr::Shared(b) => b,
        }
    }
}

impl PartialEq for Octets {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Octets {}

impl std::hash::Hash for Octets {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl fmt::Debug for Octets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Hex(self))
    }
}

impl From<Bytes> for Octets {
    fn from(b: Bytes) -> Self {
        if b.len() <= INLINE {
            Self::copy_from_slice(&b)
        } else {
            Self(Repr::Shared(b))
        }
    }
}

impl From<Vec<u8>> for Octets {
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= INLINE {
            Self::copy_from_slice(&v)
        } else {
            Self(Repr::Shared(Bytes::from(v)))
        }
    }
}

impl From<&[u8]> for Octets {
    fn from(b: &[u8]) -> Self {
        Self::copy_from_slice(b)
    }
}

impl<const N: usize> From<&[u8; N]> for Octets {
    fn from(b: &[u8; N]) -> Self {
        Self::copy_from_slice(b)
    }
}

impl From<String> for Octets {
    fn from(s: String) -> Self {
        Self::from(s.into_bytes())
    }
}

/// AVP header flags (RFC 6733 §4.1). The V bit is not stored here: it follows from whether the
/// AVP has a vendor id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AvpFlags(pub u8);

impl AvpFlags {
    /// V: a Vendor-ID field is present.
    pub const VENDOR: u8 = 0x80;
    /// M: the receiver must understand the AVP or reject the message.
    pub const MANDATORY: u8 = 0x40;
    /// P: reserved for end-to-end security (deprecated by RFC 6733, kept as received).
    pub const PROTECTED: u8 = 0x20;
    /// Reserved bits: sent as zero, ignored on receipt, kept for byte-exact re-encoding.
    pub const RESERVED: u8 = 0x1f;

    /// Only the M bit.
    pub const M: Self = Self(Self::MANDATORY);
    /// No bit.
    pub const NONE: Self = Self(0);

    /// The M bit.
    pub fn mandatory(self) -> bool {
        self.0 & Self::MANDATORY != 0
    }

    /// The P bit.
    pub fn protected(self) -> bool {
        self.0 & Self::PROTECTED != 0
    }
}

impl fmt::Debug for AvpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = if self.mandatory() { "M" } else { "" };
        let p = if self.protected() { "P" } else { "" };
        write!(f, "{m}{p}")?;
        if self.0 & Self::RESERVED != 0 {
            write!(f, "+{:#04x}", self.0 & Self::RESERVED)?;
        }
        Ok(())
    }
}

/// An AVP payload: opaque bytes, or the decoded children of a Grouped AVP.
///
/// The decoder produces `Grouped` only for AVPs the dictionary knows as Grouped; every other
/// payload stays as the exact bytes received (padding excluded).
#[derive(Clone, PartialEq, Eq)]
pub enum AvpData {
    /// The payload bytes.
    Octets(Octets),
    /// The AVPs inside a Grouped AVP (RFC 6733 §4.4).
    Grouped(Vec<Avp>),
}

/// One AVP.
#[derive(Clone, PartialEq, Eq)]
pub struct Avp {
    code: AvpCode,
    flags: AvpFlags,
    vendor: Option<VendorId>,
    data: AvpData,
}

/// Size of an AVP header without / with the Vendor-ID field.
pub(crate) const AVP_HEADER: usize = 8;
pub(crate) const AVP_HEADER_VENDOR: usize = 12;
/// The AVP Length field is 24 bits.
pub(crate) const MAX_AVP_LEN: usize = 0x00ff_ffff;

pub(crate) fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

impl Avp {
    /// An AVP from raw parts. The V bit in `flags` is ignored: it is set exactly when `vendor` is
    /// `Some`.
    pub fn new(code: AvpCode, vendor: Option<VendorId>, flags: AvpFlags, data: AvpData) -> Self {
        Self {
            code,
            flags: AvpFlags(flags.0 & !AvpFlags::VENDOR),
            vendor,
            data,
        }
    }

    /// An AVP for a dictionary entry, with the M bit set as the entry says.
    pub fn with_def(def: &AvpDef, data: AvpData) -> Self {
        let flags = if def.m == dict::FlagRule::Must {
            AvpFlags::M
        } else {
            AvpFlags::NONE
        };
        Self {
            code: def.code,
            flags,
            vendor: def.vendor_id(),
            data,
        }
    }

    /// An OctetString (or any opaque) AVP.
    pub fn octets(def: &AvpDef, v: impl Into<Octets>) -> Self {
        Self::with_def(def, AvpData::Octets(v.into()))
    }

    /// A UTF8String, DiameterIdentity or text AVP.
    pub fn utf8(def: &AvpDef, v: &str) -> Self {
        Self::octets(def, Octets::copy_from_slice(v.as_bytes()))
    }

    /// An Unsigned32 AVP.
    pub fn u32(def: &AvpDef, v: u32) -> Self {
        Self::octets(def, &v.to_be_bytes())
    }

    /// An Unsigned64 AVP.
    pub fn u64(def: &AvpDef, v: u64) -> Self {
        Self::octets(def, &v.to_be_bytes())
    }

    /// An Integer32 or Enumerated AVP.
    pub fn i32(def: &AvpDef, v: i32) -> Self {
        Self::octets(def, &v.to_be_bytes())
    }

    /// An Integer64 AVP.
    pub fn i64(def: &AvpDef, v: i64) -> Self {
        Self::octets(def, &v.to_be_bytes())
    }

    /// A Float32 AVP.
    pub fn f32(def: &AvpDef, v: f32) -> Self {
        Self::octets(def, &v.to_be_bytes())
    }

    /// A Float64 AVP.
    pub fn f64(def: &AvpDef, v: f64) -> Self {
        Self::octets(def, &v.to_be_bytes())
    }

    /// An Address AVP.
    pub fn address(def: &AvpDef, v: &Address) -> Self {
        Self::octets(def, v.encode())
    }

    /// A Time AVP.
    pub fn time(def: &AvpDef, v: Time) -> Self {
        Self::u32(def, v.0)
    }

    /// A DiameterURI AVP.
    pub fn uri(def: &AvpDef, v: &DiameterUri) -> Self {
        Self::octets(def, v.to_string())
    }

    /// A Grouped AVP.
    pub fn grouped(def: &AvpDef, children: Vec<Self>) -> Self {
        Self::with_def(def, AvpData::Grouped(children))
    }

    /// The AVP code.
    pub fn code(&self) -> AvpCode {
        self.code
    }

    /// The vendor id, when the V bit is set.
    pub fn vendor(&self) -> Option<VendorId> {
        self.vendor
    }

    /// The flags (the V bit excluded).
    pub fn flags(&self) -> AvpFlags {
        self.flags
    }

    /// The flags byte as it goes on the wire.
    pub fn wire_flags(&self) -> u8 {
        self.flags.0
            | if self.vendor.is_some() {
                AvpFlags::VENDOR
            } else {
                0
            }
    }

    /// Whether the M bit is set.
    pub fn is_mandatory(&self) -> bool {
        self.flags.mandatory()
    }

    /// Sets or clears the M bit.
    pub fn set_mandatory(&mut self, m: bool) {
        if m {
            self.flags.0 |= AvpFlags::MANDATORY;
        } else {
            self.flags.0 &= !AvpFlags::MANDATORY;
        }
    }

    /// The payload.
    pub fn data(&self) -> &AvpData {
        &self.data
    }

    /// The dictionary entry for this AVP, if it is known.
    pub fn def(&self) -> Option<&'static AvpDef> {
        dict::lookup(self.code, self.vendor.unwrap_or(VendorId::IETF))
    }

    /// Whether this AVP is the one `def` describes (same code and vendor).
    pub fn is(&self, def: &AvpDef) -> bool {
        self.code == def.code && self.vendor.unwrap_or(VendorId::IETF) == def.vendor
    }

    /// The spec name when known, else `AVP <code>` with its vendor.
    pub fn label(&self) -> AvpLabel {
        AvpLabel {
            code: self.code,
            vendor: self.vendor,
        }
    }

    fn invalid_length(&self, reason: &'static str) -> Error {
        Error::InvalidAvpLength {
            failed: Box::new(self.clone()),
            reason,
        }
    }

    fn invalid_value(&self, reason: &'static str) -> Error {
        Error::InvalidAvpValue {
            failed: Box::new(self.clone()),
            reason,
        }
    }

    /// The payload bytes; an error for a decoded Grouped AVP.
    pub fn as_octets(&self) -> Result<&Octets, Error> {
        match &self.data {
            AvpData::Octets(b) => Ok(b),
            AvpData::Grouped(_) => {
                Err(self.invalid_value("expected a plain value, got a Grouped AVP"))
            }
        }
    }

    /// The children of a Grouped AVP.
    pub fn children(&self) -> Result<&[Self], Error> {
        match &self.data {
            AvpData::Grouped(c) => Ok(c),
            AvpData::Octets(_) => Err(self.invalid_value("expected a Grouped AVP")),
        }
    }

    fn fixed<const N: usize>(&self) -> Result<[u8; N], Error> {
        let b = self.as_octets()?;
        <[u8; N]>::try_from(&b[..])
            .map_err(|_| self.invalid_length("wrong size for a fixed-size type"))
    }

    /// An Unsigned32 value.
    pub fn as_u32(&self) -> Result<u32, Error> {
        self.fixed::<4>().map(u32::from_be_bytes)
    }

    /// An Unsigned64 value.
    pub fn as_u64(&self) -> Result<u64, Error> {
        self.fixed::<8>().map(u64::from_be_bytes)
    }

    /// An Integer32 or Enumerated value.
    pub fn as_i32(&self) -> Result<i32, Error> {
        self.fixed::<4>().map(i32::from_be_bytes)
    }

    /// An Integer64 value.
    pub fn as_i64(&self) -> Result<i64, Error> {
        self.fixed::<8>().map(i64::from_be_bytes)
    }

    /// A Float32 value.
    pub fn as_f32(&self) -> Result<f32, Error> {
        self.fixed::<4>().map(f32::from_be_bytes)
    }

    /// A Float64 value.
    pub fn as_f64(&self) -> Result<f64, Error> {
        self.fixed::<8>().map(f64::from_be_bytes)
    }

    /// A Time value.
    pub fn as_time(&self) -> Result<Time, Error> {
        self.as_u32().map(Time)
    }

    /// A UTF8String (or DiameterIdentity) value.
    pub fn as_utf8(&self) -> Result<&str, Error> {
        std::str::from_utf8(self.as_octets()?).map_err(|_| self.invalid_value("not valid UTF-8"))
    }

    /// An Address value.
    pub fn as_address(&self) -> Result<Address, Error> {
        Address::decode(self.as_octets()?).map_err(|e| match e {
            AddressError::TooShort => self.invalid_length("Address shorter than its family field"),
            AddressError::WrongLength => {
                self.invalid_length("address length does not match family")
            }
        })
    }

    /// A DiameterURI value.
    pub fn as_uri(&self) -> Result<DiameterUri, Error> {
        DiameterUri::parse(self.as_utf8()?).map_err(|_| self.invalid_value("not a DiameterURI"))
    }

    /// A DiameterIdentity value, validated as an FQDN.
    pub fn as_identity(&self) -> Result<imslab_types::DiameterIdentity, Error> {
        imslab_types::DiameterIdentity::new(self.as_utf8()?)
            .map_err(|_| self.invalid_value("not a valid DiameterIdentity (FQDN)"))
    }

    /// A DiameterIdentity value naming a realm.
    pub fn as_realm(&self) -> Result<imslab_types::Realm, Error> {
        imslab_types::Realm::new(self.as_utf8()?)
            .map_err(|_| self.invalid_value("not a valid realm (FQDN)"))
    }

    /// The first child matching `def`.
    pub fn child(&self, def: &AvpDef) -> Result<Option<&Self>, Error> {
        Ok(self.children()?.iter().find(|a| a.is(def)))
    }

    /// The size on the wire, padding included.
    pub fn encoded_len(&self) -> usize {
        let header = if self.vendor.is_some() {
            AVP_HEADER_VENDOR
        } else {
            AVP_HEADER
        };
        header
            + match &self.data {
                AvpData::Octets(b) => pad4(b.len()),
                AvpData::Grouped(c) => c.iter().map(Self::encoded_len).sum(),
            }
    }

    /// Appends the wire form, padding included.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        out.put_u32(self.code.0);
        out.put_u32(0); // flags and length, patched below
        if let Some(v) = self.vendor {
            out.put_u32(v.0);
        }
        match &self.data {
            AvpData::Octets(b) => out.put_slice(b),
            AvpData::Grouped(children) => {
                for c in children {
                    c.encode_into(out)?;
                }
            }
        }
        let len = out.len() - start;
        if len > MAX_AVP_LEN {
            out.truncate(start);
            return Err(Error::AvpTooLong {
                code: self.code,
                len,
            });
        }
        let word = (u32::from(self.wire_flags()) << 24) | len as u32;
        out[start + 4..start + 8].copy_from_slice(&word.to_be_bytes());
        out.resize(start + pad4(len), 0);
        Ok(())
    }
}

/// Decoding limits for untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, in bytes (default 1 MiB; the 24-bit field allows 16 MiB).
    pub max_message_len: usize,
    /// Deepest nesting of Grouped AVPs (default 16; top-level AVPs are depth 1).
    pub max_depth: usize,
    /// Most AVPs in one message, nested ones included (default 4096).
    pub max_avps: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_len: 1 << 20,
            max_depth: 16,
            max_avps: 4096,
        }
    }
}

/// Decodes the padded AVPs filling `data[range]` exactly.
pub(crate) fn decode_avps(
    data: &Bytes,
    range: std::ops::Range<usize>,
    depth: usize,
    limits: &Limits,
    count: &mut usize,
) -> Result<Vec<Avp>, Error> {
    let mut avps = Vec::with_capacity(count_avps(data, &range));
    let mut off = range.start;
    while off < range.end {
        off = decode_one(data, off, range.end, depth, limits, count, &mut avps)?;
    }
    Ok(avps)
}

/// How many AVPs `data[range]` holds, judging by their length fields alone (exact for valid
/// input; a bound on allocation otherwise, since each AVP takes at least 8 bytes).
fn count_avps(data: &Bytes, range: &std::ops::Range<usize>) -> usize {
    let (mut off, mut n) = (range.start, 0);
    while let Some(l) = data.get(off + 5..off + 8).filter(|_| off < range.end) {
        let len = u32::from_be_bytes([0, l[0], l[1], l[2]]) as usize;
        off += pad4(len.max(AVP_HEADER));
        n += 1;
    }
    n.min(range.len() / AVP_HEADER + 1)
}

/// Decodes the AVP at `off`, which must end (padding included) by `end`, appends it to `out`
/// (built in place: returning it by value costs more than the parsing) and returns the offset
/// after it.
pub(crate) fn decode_one(
    data: &Bytes,
    off: usize,
    end: usize,
    depth: usize,
    limits: &Limits,
    count: &mut usize,
    out: &mut Vec<Avp>,
) -> Result<usize, Error> {
    let rest = data.get(off..end).unwrap_or_default();
    let Some(head) = rest.first_chunk::<8>() else {
        // Not even a full AVP header: report it zero-padded (RFC 6733 §7.5).
        let mut h = [0u8; 8];
        h[..rest.len()].copy_from_slice(rest);
        return Err(truncated_header_error(&h));
    };
    *count += 1;
    if *count > limits.max_avps {
        return Err(Error::TooManyAvps {
            max: limits.max_avps,
        });
    }
    let code = AvpCode(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let has_vendor = flags & AvpFlags::VENDOR != 0;
    let (vendor, hdr) = if has_vendor {
        match rest.get(8..12) {
            Some(v) => (
                Some(VendorId(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
                12,
            ),
            None => {
                return Err(Error::InvalidAvpLength {
                    failed: Box::new(example(code, None, flags)),
                    reason: "AVP header truncated before the Vendor-ID",
                });
            }
        }
    } else {
        (None, AVP_HEADER)
    };
    let padded = pad4(len);
    if len < hdr || padded > rest.len() {
        let reason = if len < hdr {
            "AVP length smaller than its header"
        } else {
            "AVP length runs past the end of the enclosing data"
        };
        return Err(Error::InvalidAvpLength {
            failed: Box::new(example(code, vendor, flags)),
            reason,
        });
    }
    let payload = off + hdr..off + len;
    let avp_data = if is_grouped(code, vendor) {
        if depth >= limits.max_depth {
            return Err(Error::NestingTooDeep {
                failed: Box::new(example(code, vendor, flags)),
                max: limits.max_depth,
            });
        }
        AvpData::Grouped(decode_avps(data, payload, depth + 1, limits, count)?)
    } else {
        AvpData::Octets(Octets::from_shared(data, payload))
    };
    out.push(Avp {
        code,
        flags: AvpFlags(flags & !AvpFlags::VENDOR),
        vendor,
        data: avp_data,
    });
    Ok(off + padded)
}

/// Whether the dictionary knows `(vendor, code)` as Grouped (a short match on the hot path).
fn is_grouped(code: AvpCode, vendor: Option<VendorId>) -> bool {
    match vendor.map_or(0, |v| v.0) {
        0 => matches!(code.0, 260 | 279 | 284 | 297),
        10_415 => dict::lookup(code, VendorId::TGPP).is_some_and(|d| d.ty == AvpType::Grouped),
        _ => false,
    }
}

fn truncated_header_error(h: &[u8; 8]) -> Error {
    let code = AvpCode(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
    Error::InvalidAvpLength {
        failed: Box::new(example(code, None, h[4] & !AvpFlags::VENDOR)),
        reason: "data ends inside an AVP header",
    }
}

/// The stand-in for an AVP that could not be decoded: its header and a zero-filled payload of the
/// type's minimum length (RFC 6733 §7.5).
pub(crate) fn example(code: AvpCode, vendor: Option<VendorId>, flags: u8) -> Avp {
    let def = dict::lookup(code, vendor.unwrap_or(VendorId::IETF));
    let data = match def.map(|d| d.ty) {
        Some(AvpType::Grouped) => AvpData::Grouped(Vec::new()),
        Some(t) => AvpData::Octets(Octets::from(vec![0u8; t.min_len()])),
        None => AvpData::Octets(Octets::from(Vec::new())),
    };
    Avp {
        code,
        flags: AvpFlags(flags & !AvpFlags::VENDOR),
        vendor,
        data,
    }
}

/// The example AVP for a missing dictionary entry (RFC 6733 §7.5).
pub(crate) fn missing_example(def: &AvpDef) -> Avp {
    let data = match def.ty {
        AvpType::Grouped => AvpData::Grouped(Vec::new()),
        t => AvpData::Octets(Octets::from(vec![0u8; t.min_len()])),
    };
    Avp::with_def(def, data)
}

/// Display helper naming an AVP: `Session-Id (263)` or `AVP 9999 vendor 10415`.
#[derive(Clone, Copy)]
pub struct AvpLabel {
    code: AvpCode,
    vendor: Option<VendorId>,
}

impl fmt::Display for AvpLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match dict::lookup(self.code, self.vendor.unwrap_or(VendorId::IETF)) {
            Some(d) => write!(f, "{} ({})", d.name, self.code.0),
            None => match self.vendor {
                Some(v) => write!(f, "AVP {} vendor {}", self.code.0, v.0),
                None => write!(f, "AVP {}", self.code.0),
            },
        }
    }
}

impl fmt::Debug for Avp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{:?}]", self.label(), self.flags)?;
        let def = self.def();
        match &self.data {
            AvpData::Grouped(children) => f.debug_list().entries(children).finish(),
            AvpData::Octets(b) => match def {
                Some(d) if d.secret => write!(f, " <secret, {} bytes>", b.len()),
                Some(d) => match d.ty {
                    AvpType::Utf8String | AvpType::DiameterIdentity | AvpType::DiameterUri => {
                        match std::str::from_utf8(b) {
                            Ok(s) => write!(f, " {s:?}"),
                            Err(_) => write!(f, " {}", Hex(b)),
                        }
                    }
                    AvpType::Unsigned32 | AvpType::Time => match self.as_u32() {
                        Ok(v) => write!(f, " {v}"),
                        Err(_) => write!(f, " {}", Hex(b)),
                    },
                    AvpType::Integer32 | AvpType::Enumerated => match self.as_i32() {
                        Ok(v) => write!(f, " {v}"),
                        Err(_) => write!(f, " {}", Hex(b)),
                    },
                    AvpType::Unsigned64 => match self.as_u64() {
                        Ok(v) => write!(f, " {v}"),
                        Err(_) => write!(f, " {}", Hex(b)),
                    },
                    AvpType::Address => match self.as_address() {
                        Ok(a) => write!(f, " {a:?}"),
                        Err(_) => write!(f, " {}", Hex(b)),
                    },
                    _ => write!(f, " {}", Hex(b)),
                },
                None => write!(f, " {}", Hex(b)),
            },
        }
    }
}

/// Hex dump, shortened after 64 bytes.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.0.iter().take(64) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > 64 {
            write!(f, "..({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Avp>, Error> {
        decode_avps(
            &Bytes::copy_from_slice(bytes),
            0..bytes.len(),
            1,
            &Limits::default(),
            &mut 0,
        )
    }

    fn encode(avp: &Avp) -> Vec<u8> {
        let mut v = Vec::new();
        avp.encode_into(&mut v).expect("encodes");
        v
    }

    #[test]
    fn utf8_avp_is_padded_and_length_excludes_padding() {
        let a = Avp::utf8(&dict::SESSION_ID, "abcde");
        let wire = encode(&a);
        assert_eq!(
            wire,
            [
                0, 0, 1, 7, 0x40, 0, 0, 13, b'a', b'b', b'c', b'd', b'e', 0, 0, 0
            ]
        );
        assert_eq!(a.encoded_len(), 16);
        assert_eq!(decode_all(&wire), Ok(vec![a]));
    }

    #[test]
    fn vendor_avp_carries_v_bit_and_vendor_id() {
        let a = Avp::u32(&dict::SIP_NUMBER_AUTH_ITEMS, 1);
        let wire = encode(&a);
        assert_eq!(
            wire,
            [0, 0, 2, 95, 0xc0, 0, 0, 16, 0, 0, 0x28, 0xaf, 0, 0, 0, 1]
        );
        let back = decode_all(&wire).expect("decodes");
        assert_eq!(back[0].vendor(), Some(VendorId::TGPP));
        assert_eq!(back[0].as_u32(), Ok(1));
    }

    #[test]
    fn every_basic_type_reads_back_what_was_written() {
        let d = &dict::USER_NAME; // the type accessors do not look at the dictionary type
        assert_eq!(Avp::u32(d, 7).as_u32(), Ok(7));
        assert_eq!(Avp::u64(d, u64::MAX).as_u64(), Ok(u64::MAX));
        assert_eq!(Avp::i32(d, -5).as_i32(), Ok(-5));
        assert_eq!(Avp::i64(d, i64::MIN).as_i64(), Ok(i64::MIN));
        assert_eq!(Avp::f32(d, 1.5).as_f32(), Ok(1.5));
        assert_eq!(Avp::f64(d, -2.25).as_f64(), Ok(-2.25));
        assert_eq!(Avp::time(d, Time(42)).as_time(), Ok(Time(42)));
        assert_eq!(Avp::utf8(d, "héllo").as_utf8(), Ok("héllo"));
        let ip = Address::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(Avp::address(d, &ip).as_address(), Ok(ip));
        let uri = DiameterUri::parse("aaa://cdf.example:3868").expect("uri");
        assert_eq!(Avp::uri(d, &uri).as_uri(), Ok(uri));
        assert_eq!(
            Avp::utf8(d, "hss.example")
                .as_identity()
                .map(|i| i.to_string()),
            Ok("hss.example".to_owned())
        );
    }

    #[test]
    fn wrong_size_for_fixed_type_is_an_invalid_length() {
        let a = Avp::octets(&dict::RESULT_CODE, vec![0, 0, 7]);
        assert!(matches!(a.as_u32(), Err(Error::InvalidAvpLength { .. })));
    }

    #[test]
    fn grouped_avps_nest_and_round_trip() {
        let g = Avp::grouped(
            &dict::VENDOR_SPECIFIC_APPLICATION_ID,
            vec![
                Avp::u32(&dict::VENDOR_ID, 10415),
                Avp::u32(&dict::AUTH_APPLICATION_ID, 16_777_216),
            ],
        );
        let wire = encode(&g);
        assert_eq!(wire.len(), 8 + 12 + 12);
        let back = decode_all(&wire).expect("decodes");
        assert_eq!(back, vec![g]);
        assert_eq!(
            back[0]
                .child(&dict::VENDOR_ID)
                .ok()
                .flatten()
                .map(|a| a.as_u32()),
            Some(Ok(10415))
        );
    }

    #[test]
    fn unknown_avp_keeps_its_bytes_flags_and_vendor() {
        // code 9999, V+M+P and a reserved bit, vendor 4242, 3 bytes of payload, padding.
        let wire = [
            0, 0, 0x27, 0x0f, 0xe1, 0, 0, 15, 0, 0, 0x10, 0x92, 1, 2, 3, 0,
        ];
        let avps = decode_all(&wire).expect("unknown AVPs decode");
        assert_eq!(avps[0].def(), None);
        assert_eq!(encode(&avps[0]), wire);
    }

    #[test]
    fn avp_length_smaller_than_header_is_rejected_with_failed_avp_example() {
        let wire = [0, 0, 1, 7, 0x40, 0, 0, 4];
        let Err(Error::InvalidAvpLength { failed, .. }) = decode_all(&wire) else {
            panic!("expected InvalidAvpLength");
        };
        assert_eq!(failed.code(), AvpCode::SESSION_ID);
    }

    #[test]
    fn avp_running_past_the_end_is_rejected() {
        let wire = [0, 0, 1, 12, 0x40, 0, 0, 200, 0, 0, 0, 1];
        assert!(matches!(
            decode_all(&wire),
            Err(Error::InvalidAvpLength { .. })
        ));
        // Truncated inside the header.
        assert!(matches!(
            decode_all(&[0, 0, 1]),
            Err(Error::InvalidAvpLength { .. })
        ));
        // V bit but no room for the vendor id.
        assert!(matches!(
            decode_all(&[0, 0, 2, 95, 0x80, 0, 0, 8]),
            Err(Error::InvalidAvpLength { .. })
        ));
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_rejected() {
        let mut a = Avp::u32(&dict::RESULT_CODE, 2001);
        for _ in 0..20 {
            a = Avp::grouped(&dict::FAILED_AVP, vec![a]);
        }
        let wire = encode(&a);
        let limits = Limits::default();
        let n = wire.len();
        let r = decode_avps(&Bytes::from(wire), 0..n, 1, &limits, &mut 0);
        assert!(matches!(r, Err(Error::NestingTooDeep { max: 16, .. })));
    }

    #[test]
    fn too_many_avps_are_rejected() {
        let mut wire = Vec::new();
        for _ in 0..10 {
            Avp::u32(&dict::VENDOR_ID, 1)
                .encode_into(&mut wire)
                .expect("encodes");
        }
        let limits = Limits {
            max_avps: 5,
            ..Limits::default()
        };
        let n = wire.len();
        let r = decode_avps(&Bytes::from(wire), 0..n, 1, &limits, &mut 0);
        assert_eq!(r, Err(Error::TooManyAvps { max: 5 }));
    }

    #[test]
    fn is_grouped_agrees_with_the_dictionary() {
        for def in dict::ALL {
            assert_eq!(
                is_grouped(def.code, def.vendor_id()),
                def.ty == AvpType::Grouped,
                "{}",
                def.name
            );
        }
        assert!(!is_grouped(AvpCode(260), Some(VendorId(99))));
    }

    #[test]
    fn short_payloads_are_inline_and_long_ones_shared() {
        let short = Octets::copy_from_slice(&[1; 30]);
        let long = Octets::copy_from_slice(&[2; 31]);
        assert!(matches!(short.0, Repr::Inline { len: 30, .. }));
        assert!(matches!(long.0, Repr::Shared(_)));
        assert_eq!(&short[..], &[1; 30]);
        assert_eq!(long.to_bytes(), Bytes::from(vec![2; 31]));
        assert_eq!(Octets::from(vec![3; 5]), Octets::copy_from_slice(&[3; 5]));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let a = Avp::octets(&dict::CONFIDENTIALITY_KEY, vec![0xab; 16]);
        let s = format!("{a:?}");
        assert!(s.contains("<secret, 16 bytes>"), "{s}");
        assert!(!s.contains("abab"), "{s}");
    }
}
