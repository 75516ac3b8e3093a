use std::net::IpAddr;

use crate::negotiate::{ListMismatch, NoAcceptableMechanism};
use crate::spi::Spi;
use crate::table::{SaSetId, SaState};

/// Why a Security-* header value could not be parsed (RFC 3329 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The value is empty.
    #[error("empty header value")]
    Empty,
    /// Something else was found where `what` was expected.
    #[error("expected {what} at byte {at}")]
    Expected {
        /// What was expected.
        what: &'static str,
        /// Byte offset in the value.
        at: usize,
    },
    /// A quoted string has no closing quote.
    #[error("unterminated quoted string starting at byte {at}")]
    UnterminatedQuote {
        /// Byte offset of the opening quote.
        at: usize,
    },
    /// The value is longer than the limit.
    #[error("header value of {len} bytes exceeds {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More mechanisms than the limit.
    #[error("more than {max} mechanisms")]
    TooManyMechanisms {
        /// The limit.
        max: usize,
    },
    /// More parameters in one mechanism than the limit.
    #[error("more than {max} parameters in one mechanism")]
    TooManyParams {
        /// The limit.
        max: usize,
    },
}

/// Why an ESP packet was dropped (RFC 4303 §3.4). The P-CSCF counts these and reports them
/// as per-UE events ([`crate::Diagnosis`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum EspDrop {
    /// No inbound SA has this SPI (§3.4.2).
    #[error("unknown SPI {spi}")]
    UnknownSpi {
        /// The SPI in the packet.
        spi: Spi,
    },
    /// The ICV did not verify (§3.4.4): wrong key, tampering, or a corrupted packet.
    #[error("bad ICV on SPI {spi}, sequence {seq}")]
    BadIcv {
        /// The SPI.
        spi: Spi,
        /// The (unauthenticated) sequence number.
        seq: u32,
    },
    /// The sequence number was already received or is left of the 64-packet window (§3.4.3).
    #[error("replayed sequence {seq} on SPI {spi}")]
    Replay {
        /// The SPI.
        spi: Spi,
        /// The sequence number.
        seq: u32,
    },
    /// After decryption the padding or pad length is inconsistent (§2.4): the peer uses a
    /// wrong cipher key or a broken implementation.
    #[error("bad padding on SPI {spi}, sequence {seq}")]
    BadPadding {
        /// The SPI.
        spi: Spi,
        /// The sequence number.
        seq: u32,
    },
    /// The packet is too short, or its ciphertext is not a whole number of blocks.
    #[error("malformed ESP packet of {len} bytes on SPI {spi}")]
    Malformed {
        /// The SPI (0 if the packet is shorter than the header).
        spi: Spi,
        /// The packet length.
        len: usize,
    },
    /// The packet decrypted, but its outer source address or inner ports are not the SA's
    /// selectors (RFC 4301 §5.2): for example a UE request that did not come from its
    /// protected client port.
    #[error("packet on SPI {spi} outside the SA's addresses and ports")]
    PolicyMismatch {
        /// The SPI.
        spi: Spi,
    },
    /// The decrypted UDP or TCP packet is malformed or its checksum is wrong.
    #[error("bad inner {what} on SPI {spi}")]
    BadInner {
        /// The SPI.
        spi: Spi,
        /// What was wrong.
        what: &'static str,
    },
}

impl EspDrop {
    /// The SPI of the dropped packet.
    pub fn spi(&self) -> Spi {
        match *self {
            Self::UnknownSpi { spi }
            | Self::BadIcv { spi, .. }
            | Self::Replay { spi, .. }
            | Self::BadPadding { spi, .. }
            | Self::Malformed { spi, .. }
            | Self::PolicyMismatch { spi }
            | Self::BadInner { spi, .. } => spi,
        }
    }
}

/// Everything that can fail in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Security-* header value is malformed.
    #[error("Security header: {0}")]
    Header(#[from] HeaderError),
    /// An algorithm token is not one of Annex H's.
    #[error("unknown {param} {value:?}")]
    UnknownAlgorithm {
        /// `alg` or `ealg`.
        param: &'static str,
        /// The token.
        value: String,
    },
    /// Security-Client offers nothing acceptable: answer 494.
    #[error("{0}")]
    NoAcceptableMechanism(NoAcceptableMechanism),
    /// Security-Verify differs from the Security-Server sent (bid-down).
    #[error("Security-Verify mismatch: {0}")]
    VerifyMismatch(ListMismatch),
    /// The configured SPI range is empty or includes reserved values.
    #[error("SPI range {min}..={max} is empty or below 256")]
    BadSpiRange {
        /// Lower bound.
        min: u32,
        /// Upper bound.
        max: u32,
    },
    /// A restored SA set names an SPI outside the range or already in use.
    #[error("SPI {spi} cannot be restored: outside the range or in use")]
    SpiUnavailable {
        /// The SPI.
        spi: Spi,
    },
    /// Every SPI of the range is in use.
    #[error("all SPIs in use ({in_use})")]
    SpisExhausted {
        /// How many are allocated.
        in_use: usize,
    },
    /// A key has the wrong length for its algorithm.
    #[error("{what} must be {expected} bytes, got {got}")]
    BadKeyLength {
        /// Which key.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// No such SA set.
    #[error("no SA set {0}")]
    UnknownSaSet(SaSetId),
    /// The SA set is in the wrong state for the call.
    #[error("SA set {id} is {state:?}, expected {expected:?}")]
    SaSetState {
        /// The set.
        id: SaSetId,
        /// Its state.
        state: SaState,
        /// The state the call needs.
        expected: SaState,
    },
    /// An ESP packet was dropped.
    #[error("ESP packet dropped: {0}")]
    Esp(#[from] EspDrop),
    /// The outbound sequence number would wrap: the SA must be replaced (RFC 4303 §3.3.3).
    #[error("sequence numbers of SPI {spi} exhausted")]
    SequenceExhausted {
        /// The SA.
        spi: Spi,
    },
    /// The payload does not fit in one IP packet.
    #[error("payload of {len} bytes too large for one ESP packet")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
    },
    /// No outbound SA matches the flow.
    #[error("no outbound SA from port {src_port} to {dst}")]
    NoOutboundSa {
        /// Local port.
        src_port: u16,
        /// Destination.
        dst: std::net::SocketAddr,
    },
    /// Address families differ (an IPv6 destination on an IPv4 socket...).
    #[error("address family mismatch: {0} on this socket")]
    AddressFamily(IpAddr),
    /// A bundle for another local address was given to an [`crate::socket::EspSocket`].
    #[error("SA bundle for local address {bundle} given to the ESP socket bound to {socket}")]
    WrongLocalAddress {
        /// The bundle's local address.
        bundle: IpAddr,
        /// The socket's address.
        socket: IpAddr,
    },
    /// An inner UDP/TCP packet could not be built.
    #[error("inner packet: {0}")]
    InnerPacket(#[from] crate::inner::PacketError),
    /// The kernel has no ESP: SAs cannot be installed (XFRM returned EPROTONOSUPPORT).
    #[error("kernel has no ESP (EPROTONOSUPPORT): XFRM SAs are unavailable on this host")]
    KernelEspUnavailable,
    /// A netlink request failed.
    #[error("XFRM {op}: {detail}")]
    Netlink {
        /// The operation.
        op: &'static str,
        /// The kernel's or the library's error.
        detail: String,
        /// The errno, when the kernel answered with one.
        errno: Option<i32>,
    },
    /// A socket operation failed.
    #[error("{op}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}
