/// Why a value could not be turned into one of this crate's types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An IMSI must be 6 to 15 decimal digits (TS 23.003 §2.2).
    #[error("IMSI must be 6 to 15 decimal digits, got {len} characters")]
    InvalidImsi {
        /// Length of the rejected input.
        len: usize,
    },
    /// An MSISDN must be 1 to 15 decimal digits, optionally with a leading `+` (E.164).
    #[error("MSISDN must be 1 to 15 decimal digits with an optional leading '+'")]
    InvalidMsisdn,
    /// A private identity has the NAI form `user@realm` (TS 23.003 §13.3).
    #[error("private identity must have the form user@realm: {0:?}")]
    InvalidImpi(String),
    /// A public identity is a `sip:`, `sips:` or `tel:` URI (TS 23.003 §13.4).
    #[error("public identity must be a sip:, sips: or tel: URI: {0:?}")]
    InvalidImpu(String),
    /// A realm or Diameter identity is a non-empty DNS name.
    #[error("not a valid DNS name: {0:?}")]
    InvalidDnsName(String),
    /// A key or other fixed-size value had the wrong hex form or length.
    #[error("{what} must be {expected} hex digits")]
    InvalidHex {
        /// Which value (K, OPc, AMF...).
        what: &'static str,
        /// Expected number of hex digits.
        expected: usize,
    },
    /// A sequence number must fit in 48 bits (TS 33.102 §6.3.2).
    #[error("SQN must be below 2^48, got {0}")]
    SqnOutOfRange(u64),
}
