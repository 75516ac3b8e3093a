//! The crate's one error type.

use std::net::SocketAddr;

/// What can go wrong starting or running the S-CSCF.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is unusable.
    #[error("{key}: {reason}")]
    Config {
        /// The key, e.g. `scscf.uri`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The SIP element could not start (a socket could not be bound: the message names the
    /// address).
    #[error("S-CSCF SIP: {0}")]
    Sip(#[from] imslab_sip_node::Error),
    /// The Diameter client toward the HSS could not start.
    #[error("S-CSCF Diameter toward the HSS at {hss}: {source}")]
    Diameter {
        /// The HSS address.
        hss: SocketAddr,
        /// The cause.
        #[source]
        source: imslab_diameter_io::Error,
    },
    /// The stored registrations could not be loaded.
    #[error("S-CSCF: loading the registrations from the store: {0}")]
    Store(#[from] imslab_store::Error),
}
