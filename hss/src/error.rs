//! The HSS's error type.

/// Why the HSS could not start or complete an operation. Protocol outcomes (an unknown user, a
/// barred identity) are not errors: they are Cx answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is unusable.
    #[error("hss configuration: {key}: {reason}")]
    Config {
        /// The key, for example `hss.origin_host`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] imslab_store::Error),
    /// AKA computation failed (SQN exhausted, invalid SQN configuration).
    #[error("AKA: {0}")]
    Aka(#[from] imslab_aka::Error),
    /// A Diameter message could not be encoded or decoded.
    #[error("Diameter: {0}")]
    Diameter(#[from] imslab_diameter::Error),
    /// An HSS-initiated request (RTR/PPR) could not be sent.
    #[error("{command} for {subscriber}: {reason}")]
    Initiate {
        /// `RTR` or `PPR`.
        command: &'static str,
        /// The subscriber (IMSI).
        subscriber: String,
        /// Why: not registered, no S-CSCF, no connection...
        reason: String,
    },
    /// The peer answered an HSS-initiated request with a failure.
    #[error("{command} for {subscriber} refused by {peer}: {result}")]
    Refused {
        /// `RTA` or `PPA`.
        command: &'static str,
        /// The subscriber (IMSI).
        subscriber: String,
        /// The S-CSCF's Origin-Host.
        peer: String,
        /// The Result-Code or Experimental-Result-Code, with its name.
        result: String,
    },
    /// Socket I/O failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
