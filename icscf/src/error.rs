//! The crate's one error type.

use std::net::SocketAddr;

/// What can go wrong starting or running the I-CSCF.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is unusable.
    #[error("{key}: {reason}")]
    Config {
        /// The key, e.g. `icscf.origin_host`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The SIP element could not start (a socket could not be bound: the message names the
    /// address).
    #[error("I-CSCF SIP: {0}")]
    Sip(#[from] imslab_sip_node::Error),
    /// The Diameter client toward the HSS could not start.
    #[error("I-CSCF Diameter toward the HSS at {hss}: {source}")]
    Diameter {
        /// The HSS address.
        hss: SocketAddr,
        /// The cause.
        #[source]
        source: imslab_diameter_io::Error,
    },
}
