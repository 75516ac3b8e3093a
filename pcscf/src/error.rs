//! The crate's one error type.

use std::net::SocketAddr;

/// Why the P-CSCF could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is unusable (an unknown algorithm name, an empty preference).
    #[error("pcscf configuration: {field}: {reason}")]
    Config {
        /// The configuration key.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A socket could not be bound.
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        /// What the socket is for.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `pcscf.ipsec.mode: xfrm` on a kernel without ESP (CONFIG_INET_ESP).
    #[error(
        "pcscf.ipsec.mode is xfrm, but this kernel has no ESP support (adding an ESP SA fails with \
         EPROTONOSUPPORT): use mode userspace (ESP inside the P-CSCF) or off"
    )]
    KernelHasNoEsp,
    /// The IPsec layer failed (raw socket, XFRM netlink, SA table).
    #[error("ipsec: {0}")]
    Ipsec(#[from] imslab_ipsec::Error),
    /// The SIP transport failed.
    #[error("sip transport: {0}")]
    Transport(#[from] imslab_sip_io::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] imslab_store::Error),
    /// A file in the data directory could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
