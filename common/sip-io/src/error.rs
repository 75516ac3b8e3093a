//! The crate's error type.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{FlowId, TransportKind};

/// Everything that can go wrong when binding, sending or loading TLS material.
///
/// Problems with what a peer sends never surface here: they become
/// [`Payload::Invalid`](crate::Payload::Invalid) or close the peer's connection with a
/// [`CloseReason`](crate::CloseReason).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket or listener passed in has no usable local address.
    #[error("cannot read the local address of a {transport} socket: {source}")]
    LocalAddr {
        /// The transport being added.
        transport: TransportKind,
        /// The OS error.
        source: io::Error,
    },
    /// No UDP socket is bound for the address family of the destination.
    #[error("no UDP socket bound for {remote}")]
    NoUdpSocket {
        /// The destination.
        remote: SocketAddr,
    },
    /// The transport named is not one this crate runs (SCTP, or an unknown token).
    #[error("unsupported transport {transport}")]
    UnsupportedTransport {
        /// The transport.
        transport: imslab_sip::header::Transport,
    },
    /// No UDP socket is bound at this local address.
    #[error("no UDP socket bound at {local}")]
    UnknownUdpSocket {
        /// The local address.
        local: SocketAddr,
    },
    /// Sending a datagram failed.
    #[error("UDP send to {remote} failed: {source}")]
    UdpSend {
        /// The destination.
        remote: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A connection-oriented flow is not (or no longer) open (RFC 3261 §18.2.2: a response then
    /// goes to the Via sent-by address).
    #[error("flow {0} is closed")]
    FlowClosed(FlowId),
    /// Opening a connection failed.
    #[error("{transport} connection to {remote} failed: {source}")]
    Connect {
        /// The transport.
        transport: TransportKind,
        /// The destination.
        remote: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Opening a connection (TCP, TLS or WebSocket handshake included) took too long.
    #[error("{transport} connection to {remote} timed out")]
    ConnectTimeout {
        /// The transport.
        transport: TransportKind,
        /// The destination.
        remote: SocketAddr,
    },
    /// The WebSocket handshake with a server failed.
    #[error("WebSocket handshake with {remote} failed: {source}")]
    WebSocketHandshake {
        /// The server.
        remote: SocketAddr,
        /// tungstenite's error.
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The WebSocket server did not confirm the `sip` subprotocol in its 101 response
    /// (RFC 7118 §4.1).
    #[error("WebSocket server {remote} did not accept the sip subprotocol")]
    WebSocketSubprotocol {
        /// The server.
        remote: SocketAddr,
    },
    /// A TLS or WSS connection was requested without a client TLS configuration.
    #[error("no TLS client configuration for an outgoing {transport} connection")]
    NoTlsClient {
        /// The transport.
        transport: TransportKind,
    },
    /// The configured number of connections is reached.
    #[error("connection limit of {limit} reached")]
    TooManyConnections {
        /// The configured limit.
        limit: usize,
    },
    /// The connection's send queue holds more than the configured number of bytes: the peer does
    /// not read.
    #[error("send queue of flow {flow} is full ({limit} bytes)")]
    QueueFull {
        /// The flow.
        flow: FlowId,
        /// The configured limit.
        limit: usize,
    },
    /// The message does not fit the transport (a UDP datagram, or the configured size limit).
    #[error("message of {len} bytes exceeds the {limit} byte limit of {transport}")]
    TooLarge {
        /// The transport.
        transport: TransportKind,
        /// The message length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The message could not be prepared for sending (for example an unparsable top Via when the
    /// transport has to be rewritten, RFC 3261 §18.1.1).
    #[error("message cannot be sent: {0}")]
    Message(#[from] imslab_sip::Error),
    /// Reading or writing a certificate or key file failed.
    #[error("TLS file {path}: {source}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A PEM file holds no certificate or no private key.
    #[error("TLS file {path} holds no {what}")]
    TlsPem {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
    },
    /// Only one of the certificate and key files exists in the data directory; refusing to
    /// overwrite it.
    #[error("found {present} without {missing}; remove it or restore the pair")]
    TlsPairIncomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// Generating the self-signed certificate failed.
    #[error("self-signed certificate generation failed: {0}")]
    CertificateGeneration(#[from] rcgen::Error),
    /// rustls refused the certificate, key or configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The transport was shut down.
    #[error("the transport is shut down")]
    Shutdown,
}
