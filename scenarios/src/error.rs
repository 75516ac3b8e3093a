//! The crate's error type.

use std::path::PathBuf;

/// Why a scenario could not be loaded or run, or a UE could not act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A message the UE built did not parse (a bug, or a bad raw template).
    #[error("cannot build SIP message: {source}")]
    BuildMessage {
        /// The parser's error.
        source: imslab_sip::Error,
    },
    /// No call with that Call-ID.
    #[error("no call {call_id}")]
    NoSuchCall {
        /// The Call-ID.
        call_id: String,
    },
    /// The scenario file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The scenario is invalid; the message names the line.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file (or `<string>`).
        path: PathBuf,
        /// 1-based line, 0 when unknown.
        line: u32,
        /// What is wrong.
        message: String,
    },
    /// A socket could not be opened or used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// IPsec setup failed.
    #[error("IPsec: {0}")]
    Ipsec(#[from] imslab_ipsec::Error),
    /// SIP over TCP inside ESP could not be sent (connection limit, queue full, closed).
    #[error("TCP inside ESP: {0}")]
    EspTcp(#[from] imslab_ipsec::tcp::TcpError),
    /// The SIP transport failed.
    #[error("SIP transport: {0}")]
    Transport(#[from] imslab_sip_io::Error),
    /// The store could not be read.
    #[error("store: {0}")]
    Store(#[from] imslab_store::Error),
    /// A subscriber named by IMSI is not in the store.
    #[error("subscriber {imsi} is not in the store")]
    UnknownSubscriber {
        /// The IMSI.
        imsi: String,
    },
    /// A step failed its expectation; the run stops.
    #[error("step {step} failed: {message}")]
    StepFailed {
        /// The step's label.
        step: String,
        /// Expected vs received.
        message: String,
    },
    /// A report file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
