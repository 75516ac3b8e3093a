//! The crate's one error type.

use std::net::SocketAddr;

use imslab_sip::StatusCode;
use imslab_sip_io::TransportKind;

/// What can go wrong running a SIP element.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket could not be bound.
    #[error("cannot bind SIP {transport} on {addr}: {source}")]
    Bind {
        /// The transport.
        transport: TransportKind,
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration has no listen address.
    #[error("a SIP element needs at least one listen address")]
    NoListener,
    /// The transport layer refused an operation.
    #[error(transparent)]
    Transport(#[from] imslab_sip_io::Error),
    /// The SIP layer refused a message or an operation.
    #[error(transparent)]
    Sip(#[from] imslab_sip::Error),
    /// A request this element sent got no final response: Timer F fired (408) or the
    /// transport failed (503).
    #[error("request failed without a response: {status}")]
    NoResponse {
        /// 408 or 503, as RFC 3261 §8.1.3.1 has the UAC treat it.
        status: StatusCode,
    },
    /// No address is known for the next hop of a request this element sends.
    #[error("no address for the next hop {uri}")]
    Unresolvable {
        /// The URI that could not be resolved.
        uri: String,
    },
    /// The element has stopped.
    #[error("the SIP element has stopped")]
    Stopped,
}
