//! The 20-byte Diameter header (RFC 6733 §3).

use std::fmt;

use crate::codes::{ApplicationId, CommandCode};
use crate::error::Error;

/// Size of the header.
pub const HEADER_LEN: usize = 20;
/// The only Diameter version (RFC 6733 §3).
pub const VERSION: u8 = 1;

/// Command flags (RFC 6733 §3). Reserved bits are kept as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CommandFlags(pub u8);

impl CommandFlags {
    /// R: the message is a request.
    pub const REQUEST: u8 = 0x80;
    /// P: the message may be proxied, relayed or redirected.
    pub const PROXIABLE: u8 = 0x40;
    /// E: the answer carries a protocol error (3xxx).
    pub const ERROR: u8 = 0x20;
    /// T: potentially retransmitted after a link failover (RFC 6733 §5.5.4).
    pub const RETRANSMIT: u8 = 0x10;
    /// Reserved bits, must be zero.
    pub const RESERVED: u8 = 0x0f;

    /// The R bit.
    pub fn request(self) -> bool {
        self.0 & Self::REQUEST != 0
    }

    /// The P bit.
    pub fn proxiable(self) -> bool {
        self.0 & Self::PROXIABLE != 0
    }

    /// The E bit.
    pub fn error(self) -> bool {
        self.0 & Self::ERROR != 0
    }

    /// The T bit.
    pub fn retransmit(self) -> bool {
        self.0 & Self::RETRANSMIT != 0
    }

    /// Returns the flags with `bit` set or cleared.
    #[must_use]
    pub fn with(self, bit: u8, on: bool) -> Self {
        if on {
            Self(self.0 | bit)
        } else {
            Self(self.0 & !bit)
        }
    }
}

impl fmt::Debug for CommandFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [
            (Self::REQUEST, 'R'),
            (Self::PROXIABLE, 'P'),
            (Self::ERROR, 'E'),
            (Self::RETRANSMIT, 'T'),
        ] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        if self.0 & Self::RESERVED != 0 {
            write!(f, "+{:#04x}", self.0 & Self::RESERVED)?;
        }
        Ok(())
    }
}

/// The Diameter header without the version and length fields: the version is always 1 and the
/// length is computed on encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// R, P, E, T and reserved bits.
    pub flags: CommandFlags,
    /// The command code (24 bits on the wire).
    pub code: CommandCode,
    /// The application id.
    pub application_id: ApplicationId,
    /// Hop-by-Hop Identifier: matches answers to requests on one connection (RFC 6733 §3).
    pub hop_by_hop: u32,
    /// End-to-End Identifier: detects duplicates; unique per originator (RFC 6733 §3).
    pub end_to_end: u32,
}

impl Header {
    /// A request header with the R bit, and P when `proxiable`.
    pub fn request(code: CommandCode, application_id: ApplicationId, proxiable: bool) -> Self {
        let flags = CommandFlags(CommandFlags::REQUEST).with(CommandFlags::PROXIABLE, proxiable);
        Self {
            flags,
            code,
            application_id,
            hop_by_hop: 0,
            end_to_end: 0,
        }
    }

    /// The header of the answer to this request: same code, application and identifiers, R, E
    /// and T cleared, P kept (RFC 6733 §6.2).
    pub fn answer(&self) -> Self {
        Self {
            flags: CommandFlags(self.flags.0 & CommandFlags::PROXIABLE),
            ..*self
        }
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        self.flags.request()
    }

    /// Reads a header and the Message Length field from the start of `buf`. Checks the version;
    /// the length is returned as is.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), Error> {
        let (version, header, len) = Self::peek(buf).ok_or(Error::InvalidMessageLength {
            len: buf.len(),
            reason: "shorter than the 20-byte header",
        })?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        Ok((header, len))
    }

    /// Reads version, header and Message Length without checking anything; `None` when `buf` is
    /// shorter than a header.
    pub fn peek(buf: &[u8]) -> Option<(u8, Self, usize)> {
        let h = buf.first_chunk::<HEADER_LEN>()?;
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let word = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let header = Self {
            flags: CommandFlags(h[4]),
            code: CommandCode(word(4) & 0x00ff_ffff),
            application_id: ApplicationId(word(8)),
            hop_by_hop: word(12),
            end_to_end: word(16),
        };
        Some((h[0], header, len))
    }

    /// Writes the header with the given total message length.
    pub(crate) fn encode(&self, len: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(
            &((u32::from(VERSION) << 24) | (len as u32 & 0x00ff_ffff)).to_be_bytes(),
        );
        out.extend_from_slice(
            &((u32::from(self.flags.0) << 24) | (self.code.0 & 0x00ff_ffff)).to_be_bytes(),
        );
        out.extend_from_slice(&self.application_id.0.to_be_bytes());
        out.extend_from_slice(&self.hop_by_hop.to_be_bytes());
        out.extend_from_slice(&self.end_to_end.to_be_bytes());
    }
}
