use crate::gtpv2::{IeType, MessageType};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before a field was complete.
    #[error("truncated {what}: need {need} more octets, {have} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Octets needed.
        need: usize,
        /// Octets left.
        have: usize,
    },
    /// A GTPv2-C header carries a version other than 2 (TS 29.274 §5.1).
    #[error("GTP version {0} is not supported (only version 2)")]
    UnsupportedVersion(u8),
    /// A length field contradicts the structure around it.
    #[error("invalid length {len} in {what}")]
    InvalidLength {
        /// The structure.
        what: &'static str,
        /// The length found.
        len: usize,
    },
    /// A hard limit of the decoder was exceeded (IE count, nesting, size).
    #[error("limit exceeded: {what} (max {max})")]
    Limit {
        /// What was counted.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A message or IE is too long for its length field.
    #[error("{what} too long to encode: {len} octets")]
    TooLong {
        /// The structure.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A mandatory IE is absent (TS 29.274 §7.7.8, cause 70).
    #[error("mandatory IE {ie_type} instance {instance} missing in {message}")]
    MandatoryIeMissing {
        /// The message.
        message: MessageType,
        /// The missing IE type.
        ie_type: IeType,
        /// Its instance.
        instance: u8,
    },
    /// A mandatory IE is present but its value cannot be decoded (TS 29.274 §7.7.9, cause 69).
    #[error("mandatory IE {ie_type} instance {instance} incorrect: {reason}")]
    MandatoryIeIncorrect {
        /// The IE type.
        ie_type: IeType,
        /// Its instance.
        instance: u8,
        /// Why.
        reason: String,
    },
    /// An IE value has a wrong form.
    #[error("IE {ie_type}: {reason}")]
    BadIeValue {
        /// The IE type.
        ie_type: IeType,
        /// Why.
        reason: &'static str,
    },
    /// A PCO / ePCO value is malformed (TS 24.008 §10.5.6.3).
    #[error("malformed PCO: {0}")]
    BadPco(&'static str),
    /// A GTP-U packet is malformed (TS 29.281 §5).
    #[error("malformed GTP-U packet: {0}")]
    BadGtpu(&'static str),
    /// The `pgw:` configuration is inconsistent.
    #[error("pgw configuration: {0}")]
    Config(String),
    /// Socket, file or device I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A netlink request (TUN address or route) failed.
    #[error("netlink: {0}")]
    Netlink(String),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
