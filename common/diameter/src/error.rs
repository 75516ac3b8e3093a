//! The crate's one error type, and its mapping to Result-Code and Failed-AVP (RFC 6733 §7).

use crate::avp::Avp;
use crate::codes::{ApplicationId, CommandCode, ResultCode};
use crate::dict::{AvpCode, AvpDef};

/// Everything that can go wrong decoding, validating or encoding Diameter.
///
/// Errors found in a received request turn into an answer through [`Error::result_code`] and
/// [`Error::failed_avp`]; [`crate::answer::error_answer`] builds that answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Message Length field is impossible or disagrees with the bytes (answer 5015).
    #[error("invalid message length {len}: {reason}")]
    InvalidMessageLength {
        /// The length found.
        len: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The Message Length exceeds the configured limit; the connection must close.
    #[error("message length {len} exceeds the limit of {max} bytes")]
    MessageTooLong {
        /// The length announced.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The version field is not 1 (answer 5011).
    #[error("unsupported Diameter version {0}")]
    UnsupportedVersion(u8),
    /// Header flags invalid for the command (answer 3008).
    #[error("invalid header bits {flags:#04x} on command {code}: {reason}")]
    InvalidHeaderBits {
        /// The command.
        code: CommandCode,
        /// The flags byte received.
        flags: u8,
        /// What is wrong.
        reason: &'static str,
    },
    /// A reserved header bit is set (answer 5013).
    #[error("reserved header bit set on command {code}: flags {flags:#04x}")]
    InvalidBitInHeader {
        /// The command.
        code: CommandCode,
        /// The flags byte received.
        flags: u8,
    },
    /// An AVP length is impossible, or wrong for its type (answer 5014).
    #[error("{} has an invalid length: {reason}", .failed.label())]
    InvalidAvpLength {
        /// The offending AVP (header plus zero payload when it could not be read).
        failed: Box<Avp>,
        /// What is wrong.
        reason: &'static str,
    },
    /// AVP flags inconsistent with the AVP's definition (answer 3009).
    #[error("{} has invalid flag bits: {reason}", .failed.label())]
    InvalidAvpBits {
        /// The offending AVP.
        failed: Box<Avp>,
        /// What is wrong.
        reason: &'static str,
    },
    /// An AVP value is not valid for its type or command (answer 5004).
    #[error("{} has an invalid value: {reason}", .failed.label())]
    InvalidAvpValue {
        /// The offending AVP.
        failed: Box<Avp>,
        /// What is wrong.
        reason: &'static str,
    },
    /// A required AVP is absent (answer 5005).
    #[error("required AVP {} ({}) is missing", .def.name, .def.code.0)]
    MissingAvp {
        /// The missing AVP's definition.
        def: &'static AvpDef,
    },
    /// An AVP with the M bit is not understood (answer 5001).
    #[error("{} has the M bit and is not supported", .failed.label())]
    UnsupportedAvp {
        /// The offending AVP.
        failed: Box<Avp>,
    },
    /// An AVP occurs more often than the command's ABNF allows (answer 5009).
    #[error("{} occurs more often than allowed", .failed.label())]
    AvpOccursTooManyTimes {
        /// The first surplus occurrence.
        failed: Box<Avp>,
    },
    /// Grouped AVPs nest deeper than the limit (answer 5004).
    #[error("{} nests Grouped AVPs deeper than {max} levels", .failed.label())]
    NestingTooDeep {
        /// The AVP at which the limit was hit.
        failed: Box<Avp>,
        /// The limit.
        max: usize,
    },
    /// More AVPs than the limit (answer 5006).
    #[error("more than {max} AVPs in one message")]
    TooManyAvps {
        /// The limit.
        max: usize,
    },
    /// The application is not supported by this node (answer 3007).
    #[error("application {0} is not supported")]
    UnsupportedApplication(ApplicationId),
    /// The command is not supported in its application (answer 3001).
    #[error("command {code} is not supported in application {app}")]
    UnsupportedCommand {
        /// The command.
        code: CommandCode,
        /// Its application.
        app: ApplicationId,
    },
    /// A typed decoder was handed a different command (a caller bug; answer 3001 if sent).
    #[error("expected {expected}, got command {code} (request: {request})")]
    UnexpectedCommand {
        /// What the decoder handles, e.g. `MAR`.
        expected: &'static str,
        /// What it got.
        code: CommandCode,
        /// The R bit of what it got.
        request: bool,
    },
    /// An AVP too long for the 24-bit length field.
    #[error("AVP {code} is too long to encode ({len} bytes)")]
    AvpTooLong {
        /// The AVP code.
        code: AvpCode,
        /// Its size.
        len: usize,
    },
    /// The peer cannot take requests now (not open, or not answering watchdogs).
    #[error("peer {peer} cannot take requests in state {state}")]
    PeerUnavailable {
        /// The peer's host, or `?` before the capability exchange.
        peer: String,
        /// Its state.
        state: &'static str,
    },
    /// No usable peer serves the destination (answer 3002).
    #[error("no usable peer for destination {destination}")]
    NoRoute {
        /// The Destination-Host or Destination-Realm looked up.
        destination: String,
    },
    /// A message too long for the 24-bit length field.
    #[error("message is too long to encode ({len} bytes)")]
    MessageTooLongToEncode {
        /// Its size.
        len: usize,
    },
}

impl Error {
    /// The Result-Code an answer to the failed request carries (RFC 6733 §7.1).
    pub fn result_code(&self) -> ResultCode {
        match self {
            Self::InvalidMessageLength { .. } | Self::MessageTooLong { .. } => {
                ResultCode::DIAMETER_INVALID_MESSAGE_LENGTH
            }
            Self::UnsupportedVersion(_) => ResultCode::DIAMETER_UNSUPPORTED_VERSION,
            Self::InvalidHeaderBits { .. } => ResultCode::DIAMETER_INVALID_HDR_BITS,
            Self::InvalidBitInHeader { .. } => ResultCode::DIAMETER_INVALID_BIT_IN_HEADER,
            Self::InvalidAvpLength { .. } => ResultCode::DIAMETER_INVALID_AVP_LENGTH,
            Self::InvalidAvpBits { .. } => ResultCode::DIAMETER_INVALID_AVP_BITS,
            Self::InvalidAvpValue { .. } | Self::NestingTooDeep { .. } => {
                ResultCode::DIAMETER_INVALID_AVP_VALUE
            }
            Self::MissingAvp { .. } => ResultCode::DIAMETER_MISSING_AVP,
            Self::UnsupportedAvp { .. } => ResultCode::DIAMETER_AVP_UNSUPPORTED,
            Self::AvpOccursTooManyTimes { .. } => ResultCode::DIAMETER_AVP_OCCURS_TOO_MANY_TIMES,
            Self::TooManyAvps { .. } => ResultCode::DIAMETER_RESOURCES_EXCEEDED,
            Self::UnsupportedApplication(_) => ResultCode::DIAMETER_APPLICATION_UNSUPPORTED,
            Self::UnsupportedCommand { .. } | Self::UnexpectedCommand { .. } => {
                ResultCode::DIAMETER_COMMAND_UNSUPPORTED
            }
            Self::PeerUnavailable { .. } | Self::NoRoute { .. } => {
                ResultCode::DIAMETER_UNABLE_TO_DELIVER
            }
            Self::AvpTooLong { .. } | Self::MessageTooLongToEncode { .. } => {
                ResultCode::DIAMETER_UNABLE_TO_COMPLY
            }
        }
    }

    /// The Failed-AVP content: the offending AVP, or for a missing AVP an example with a
    /// zero-filled payload of the minimum length (RFC 6733 §7.5).
    pub fn failed_avp(&self) -> Option<Avp> {
        match self {
            Self::InvalidAvpLength { failed, .. }
            | Self::InvalidAvpBits { failed, .. }
            | Self::InvalidAvpValue { failed, .. }
            | Self::UnsupportedAvp { failed }
            | Self::AvpOccursTooManyTimes { failed }
            | Self::NestingTooDeep { failed, .. } => Some((**failed).clone()),
            Self::MissingAvp { def } => Some(crate::avp::missing_example(def)),
            _ => None,
        }
    }

    /// Whether framing on a stream is lost, so the connection must be closed rather than
    /// answered.
    pub fn closes_connection(&self) -> bool {
        matches!(self, Self::MessageTooLong { .. })
            || matches!(self, Self::InvalidMessageLength { len, .. } if *len < 20 || !len.is_multiple_of(4))
    }
}
