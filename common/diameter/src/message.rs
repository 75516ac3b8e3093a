//! Whole messages: header plus AVPs (RFC 6733 §3).

use bytes::Bytes;

use crate::avp::{self, Avp, Limits};
use crate::codes::{ApplicationId, CommandCode};
use crate::dict::{self, AvpDef};
use crate::error::Error;
use crate::header::{HEADER_LEN, Header};

/// Largest value of the 24-bit Message Length field.
pub const MAX_MESSAGE_LEN: usize = 0x00ff_ffff;

/// A decoded Diameter message. Every AVP is kept in order, known or not, so a message decodes and
/// re-encodes byte-exact (zero padding assumed, as RFC 6733 §4 requires).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The top-level AVPs, in wire order.
    pub avps: Vec<Avp>,
}

impl Message {
    /// A request with no AVPs yet (identifiers zero: the peer assigns them when sending).
    pub fn request(code: CommandCode, application_id: ApplicationId, proxiable: bool) -> Self {
        Self {
            header: Header::request(code, application_id, proxiable),
            avps: Vec::new(),
        }
    }

    /// An answer skeleton for `request`: same code, application and identifiers; Session-Id
    /// copied when present (RFC 6733 §8.8).
    pub fn answer_to(request: &Self) -> Self {
        let mut avps = Vec::with_capacity(16);
        if let Some(sid) = request.find(&dict::SESSION_ID) {
            avps.push(sid.clone());
        }
        Self {
            header: request.header.answer(),
            avps,
        }
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        self.header.flags.request()
    }

    /// Decodes one whole message with the default [`Limits`].
    pub fn decode(buf: Bytes) -> Result<Self, Error> {
        Self::decode_with(buf, &Limits::default())
    }

    /// Decodes one whole message. `buf` must hold exactly one message, as a framer yields it.
    pub fn decode_with(buf: Bytes, limits: &Limits) -> Result<Self, Error> {
        let (header, len) = Header::decode(&buf)?;
        if len > limits.max_message_len {
            return Err(Error::MessageTooLong {
                len,
                max: limits.max_message_len,
            });
        }
        if len != buf.len() {
            return Err(Error::InvalidMessageLength {
                len,
                reason: "Message Length does not match the bytes received",
            });
        }
        if !len.is_multiple_of(4) {
            return Err(Error::InvalidMessageLength {
                len,
                reason: "not a multiple of 4",
            });
        }
        let avps = avp::decode_avps(&buf, HEADER_LEN..len, 1, limits, &mut 0)?;
        Ok(Self { header, avps })
    }

    /// The size on the wire.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.avps.iter().map(Avp::encoded_len).sum::<usize>()
    }

    /// Encodes to a new buffer.
    pub fn encode(&self) -> Result<Bytes, Error> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out)?;
        Ok(Bytes::from(out))
    }

    /// Appends the wire form to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        self.header.encode(0, out);
        for a in &self.avps {
            a.encode_into(out)?;
        }
        let len = out.len() - start;
        if len > MAX_MESSAGE_LEN {
            out.truncate(start);
            return Err(Error::MessageTooLongToEncode { len });
        }
        out[start + 1..start + 4].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        Ok(())
    }

    /// The first top-level AVP matching `def`.
    pub fn find(&self, def: &AvpDef) -> Option<&Avp> {
        self.avps.iter().find(|a| a.is(def))
    }

    /// Every top-level AVP matching `def`.
    pub fn find_all<'a>(&'a self, def: &'a AvpDef) -> impl Iterator<Item = &'a Avp> + 'a {
        self.avps.iter().filter(move |a| a.is(def))
    }

    /// Appends an AVP.
    pub fn push(&mut self, avp: Avp) {
        self.avps.push(avp);
    }

    /// The Session-Id text, when present and valid UTF-8.
    pub fn session_id(&self) -> Option<&str> {
        self.find(&dict::SESSION_ID).and_then(|a| a.as_utf8().ok())
    }

    /// A short description for logs: `MAR 303 R app 16777216 hbh 0x.. e2e 0x..`; no AVP values.
    pub fn summary(&self) -> String {
        let h = &self.header;
        format!(
            "{} {:?} app {} hbh {:#010x} e2e {:#010x}",
            h.code, h.flags, h.application_id.0, h.hop_by_hop, h.end_to_end
        )
    }

    /// Best effort for error answers: the header (whatever the version) and the top-level AVPs
    /// that decode before the first error. `None` when not even the header can be read.
    pub fn decode_partial(buf: &[u8]) -> Option<(Header, Vec<Avp>)> {
        let (_, header, _) = Header::peek(buf)?;
        let body = Bytes::copy_from_slice(buf.get(HEADER_LEN..).unwrap_or_default());
        let limits = Limits::default();
        let (mut off, mut count, mut avps) = (0, 0, Vec::new());
        while off < body.len() {
            match avp::decode_one(&body, off, body.len(), 1, &limits, &mut count, &mut avps) {
                Ok(next) => off = next,
                Err(_) => break,
            }
        }
        Some((header, avps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::CommandFlags;

    fn dwr() -> Message {
        let mut m = Message::request(CommandCode::DEVICE_WATCHDOG, ApplicationId::COMMON, false);
        m.header.hop_by_hop = 0x1122_3344;
        m.header.end_to_end = 0x5566_7788;
        m.push(Avp::utf8(&dict::ORIGIN_HOST, "a.example"));
        m.push(Avp::utf8(&dict::ORIGIN_REALM, "example"));
        m
    }

    #[test]
    fn header_fields_are_laid_out_as_rfc6733_section_3() {
        let wire = dwr().encode().expect("encodes");
        assert_eq!(wire[0], 1, "version");
        assert_eq!(
            u32::from_be_bytes([0, wire[1], wire[2], wire[3]]) as usize,
            wire.len()
        );
        assert_eq!(wire[4], CommandFlags::REQUEST);
        assert_eq!(&wire[5..8], &[0, 1, 24], "command 280");
        assert_eq!(&wire[8..12], &[0, 0, 0, 0]);
        assert_eq!(&wire[12..16], &[0x11, 0x22, 0x33, 0x44]);
        assert_eq!(&wire[16..20], &[0x55, 0x66, 0x77, 0x88]);
    }

    #[test]
    fn message_round_trips() {
        let m = dwr();
        let wire = m.encode().expect("encodes");
        assert_eq!(Message::decode(wire.clone()), Ok(m));
        assert_eq!(
            Message::decode(wire.clone()).and_then(|m| m.encode()),
            Ok(wire)
        );
    }

    #[test]
    fn wrong_version_is_unsupported() {
        let mut wire = dwr().encode().expect("encodes").to_vec();
        wire[0] = 2;
        assert_eq!(
            Message::decode(Bytes::from(wire)),
            Err(Error::UnsupportedVersion(2))
        );
    }

    #[test]
    fn length_field_must_match_the_buffer() {
        let wire = dwr().encode().expect("encodes");
        let short = wire.slice(..wire.len() - 4);
        assert!(matches!(
            Message::decode(short),
            Err(Error::InvalidMessageLength { .. })
        ));
        assert!(matches!(
            Message::decode(Bytes::from_static(&[1, 0, 0])),
            Err(Error::InvalidMessageLength { .. })
        ));
    }

    #[test]
    fn answer_header_keeps_ids_and_p_bit_and_clears_r() {
        let mut req = Message::request(CommandCode::MULTIMEDIA_AUTH, ApplicationId::CX, true);
        req.header.flags = req.header.flags.with(CommandFlags::RETRANSMIT, true);
        req.header.hop_by_hop = 7;
        req.push(Avp::utf8(&dict::SESSION_ID, "s;1"));
        let ans = Message::answer_to(&req);
        assert_eq!(ans.header.flags, CommandFlags(CommandFlags::PROXIABLE));
        assert_eq!(ans.header.hop_by_hop, 7);
        assert_eq!(ans.session_id(), Some("s;1"));
    }

    #[test]
    fn partial_decode_keeps_avps_before_the_broken_one() {
        let mut wire = dwr().encode().expect("encodes").to_vec();
        // Append a broken AVP: length 200, past the end.
        wire.extend_from_slice(&[0, 0, 1, 12, 0x40, 0, 0, 200]);
        let n = wire.len() as u32;
        wire[1..4].copy_from_slice(&n.to_be_bytes()[1..]);
        let (h, avps) = Message::decode_partial(&wire).expect("header decodes");
        assert_eq!(h.code, CommandCode::DEVICE_WATCHDOG);
        assert_eq!(avps.len(), 2);
    }
}
