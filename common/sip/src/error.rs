//! The crate's error type and its mapping to SIP status codes.

use crate::StatusCode;

/// Everything that can go wrong in this crate.
///
/// Decoding errors are small and carry context as plain values (no allocation). Each error maps to
/// the status code a UAS or proxy answers with through [`Error::status_code`], the one place where
/// protocol failures become protocol answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message exceeds the configured size limit.
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Bytes seen so far (a lower bound on streams).
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A datagram without the empty line that ends the header section.
    #[error("header section is not terminated by an empty line")]
    UnterminatedHead,
    /// The request or status line does not follow RFC 3261 §7.1/§7.2.
    #[error("malformed start line")]
    StartLine,
    /// A SIP version other than 2.0 (RFC 3261 §8.2.2.1 answers 505).
    #[error("unsupported SIP version")]
    Version,
    /// A status code outside 100..=699.
    #[error("status code out of range")]
    StatusCode,
    /// A header line without a colon, with an invalid name, or with a stray CR or LF.
    #[error("malformed header line at byte {at}")]
    HeaderLine {
        /// Offset of the line in the message.
        at: usize,
    },
    /// More header fields than the configured limit.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// A Content-Length that is not a decimal number, or several that disagree (RFC 4475 §3.3.9).
    #[error("invalid Content-Length")]
    ContentLength,
    /// The body is shorter than Content-Length says (RFC 3261 §18.3, RFC 4475 §3.1.2.2).
    #[error("Content-Length {declared} exceeds the {available} body bytes present")]
    BodyTruncated {
        /// The Content-Length value.
        declared: usize,
        /// Body bytes actually present.
        available: usize,
    },
    /// A header value does not match the grammar of its header.
    #[error("invalid {header} value at byte {at} of the value")]
    InvalidHeader {
        /// Canonical name of the header.
        header: &'static str,
        /// Offset inside the value where parsing stopped.
        at: usize,
    },
    /// A header a message must carry is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A single-valued header occurs more than once (RFC 4475 §3.3.8).
    #[error("{0} header occurs more than once")]
    DuplicateHeader(&'static str),
    /// A number is larger than its header allows (RFC 4475 §3.1.2.4).
    #[error("{header} value out of range")]
    OutOfRange {
        /// Canonical name of the header.
        header: &'static str,
    },
    /// A URI that does not match RFC 3261 §25.1 or RFC 3966.
    #[error("invalid URI at byte {at}")]
    InvalidUri {
        /// Offset inside the URI where parsing stopped.
        at: usize,
    },
    /// The Request-URI has a scheme this element does not handle (RFC 3261 §8.2.2.1: 416).
    #[error("unsupported URI scheme")]
    UnsupportedUriScheme,
    /// The CSeq method differs from the request method (RFC 4475 §3.1.2.17).
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// A header value to be inserted contains CR, LF or NUL.
    #[error("header value contains a line break or NUL")]
    ValueInjection,
    /// The operation needs a request but the message is a response, or the reverse.
    #[error("operation needs a {expected}")]
    WrongKind {
        /// "request" or "response".
        expected: &'static str,
    },
    /// No transaction with this identifier exists (any more).
    #[error("no such transaction")]
    UnknownTransaction,
    /// The transaction is in a state where this input is not allowed (API misuse by the TU).
    #[error("input not allowed in transaction state {state}")]
    TransactionState {
        /// The state's RFC 3261 name.
        state: &'static str,
    },
    /// No proxy context with this identifier exists (any more).
    #[error("no such proxy context")]
    UnknownContext,
}

impl Error {
    /// The status code a UAS or proxy answers a request with when this error is found in it
    /// (RFC 3261 §8.2, §16.3). Responses with errors are dropped instead (§18.1.2).
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::MESSAGE_TOO_LARGE,
            Self::Version => StatusCode::VERSION_NOT_SUPPORTED,
            Self::UnsupportedUriScheme => StatusCode::UNSUPPORTED_URI_SCHEME,
            Self::UnknownTransaction
            | Self::TransactionState { .. }
            | Self::UnknownContext
            | Self::ValueInjection
            | Self::WrongKind { .. } => StatusCode::SERVER_INTERNAL_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_input_maps_to_400_and_version_to_505() {
        assert_eq!(Error::StartLine.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(Error::ContentLength.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(
            Error::InvalidHeader {
                header: "Via",
                at: 3
            }
            .status_code(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            Error::Version.status_code(),
            StatusCode::VERSION_NOT_SUPPORTED
        );
        assert_eq!(Error::UnsupportedUriScheme.status_code().as_u16(), 416);
        assert_eq!(
            Error::TooLarge { len: 1, limit: 0 }.status_code().as_u16(),
            513
        );
    }
}
