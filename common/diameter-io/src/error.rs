//! The crate's one error type.

use std::net::SocketAddr;

use imslab_diameter::peer::FailReason;

/// What can go wrong running a Diameter node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting to a peer failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The peer's address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// TLS material could not be loaded or a handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The Diameter layer refused the message (for example no route).
    #[error(transparent)]
    Diameter(#[from] imslab_diameter::Error),
    /// The request got no answer.
    #[error("request failed: {0:?}")]
    RequestFailed(FailReason),
    /// The node task has stopped.
    #[error("the Diameter node has stopped")]
    Stopped,
    /// The kernel has no SCTP.
    #[error("SCTP is not available: {0}")]
    SctpUnavailable(String),
    /// The configuration names a peer twice, or routes to an unknown peer.
    #[error("invalid configuration: {0}")]
    Config(String),
}
