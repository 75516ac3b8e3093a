//! Transport settings.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imslab_pcap::PcapWriter;
use imslab_sip::Limits;
use rustls::pki_types::ServerName;

/// A shared pcap writer. Every message sent and received is recorded with its addresses: UDP as
/// UDP, TCP, TLS, WS and WSS as TCP data (synthesized handshake, see `imslab_pcap`). TLS is
/// recorded decrypted, and WebSocket messages as their SIP payload only: the TLS records, the
/// HTTP upgrade and the WebSocket framing are not reproduced, so tshark decodes the capture as
/// SIP over TCP (add `-d tcp.port==N,sip` for ports other than 5060). CRLF keep-alives are not
/// recorded. An outgoing message is recorded as it is handed to the socket, before the write
/// (so the capture never shows an answer ahead of its request); one whose write then fails is
/// still in the capture.
pub type PcapTap = Arc<Mutex<PcapWriter<Box<dyn Write + Send>>>>;

/// Wraps a writer (a `File`, a `BufWriter`...) into a [`PcapTap`], writing the pcap header.
pub fn pcap_tap(out: impl Write + Send + 'static) -> std::io::Result<PcapTap> {
    let out: Box<dyn Write + Send> = Box::new(out);
    Ok(Arc::new(Mutex::new(PcapWriter::new(out)?)))
}

/// What outgoing TLS and WSS connections use.
#[derive(Clone)]
pub struct TlsClient {
    /// The rustls client configuration, with the roots that verify servers
    /// ([`crate::tls::client_config`]).
    pub config: Arc<rustls::ClientConfig>,
    /// The name checked against the server certificate. `None` uses the destination IP address,
    /// which the self-signed certificates of [`crate::tls::TlsIdentity::load_or_generate`]
    /// contain when given.
    pub server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Transport settings. `Config::default()` documents every default.
#[derive(Clone)]
pub struct Config {
    /// Message size and header count limits, applied to every transport. Default
    /// `Limits::default()` (64 KiB, 256 headers). A stream that exceeds them is closed.
    pub limits: Limits,
    /// A request larger than this many bytes is not sent over UDP but over TCP to the same
    /// address (RFC 3261 §18.1.1: within 200 bytes of the path MTU, 1300 when the MTU is
    /// unknown). Default 1300.
    pub udp_request_limit: usize,
    /// Receive and send buffer requested for UDP sockets (the kernel caps it at
    /// `net.core.rmem_max`). Default 8 MiB.
    pub udp_socket_buffer: usize,
    /// A connection with no traffic in either direction for this long is closed. Default 300 s.
    pub idle_timeout: Duration,
    /// Most open connections, incoming and outgoing together; further ones are refused.
    /// Default 1024.
    pub max_connections: usize,
    /// Limit for connecting an outgoing connection, TLS and WebSocket handshakes included.
    /// Default 5 s.
    pub connect_timeout: Duration,
    /// Limit for the TLS and WebSocket handshakes of an incoming connection. Default 10 s.
    pub handshake_timeout: Duration,
    /// A peer that does not take a message within this time is disconnected. Default 10 s.
    pub write_timeout: Duration,
    /// Bytes queued for one connection beyond which sends fail with
    /// [`Error::QueueFull`](crate::Error::QueueFull). Default 4 MiB.
    pub max_queued_bytes: usize,
    /// Capacity of the event channel. When the owner falls behind, readers wait (UDP datagrams
    /// then queue in the kernel). Default 4096.
    pub event_capacity: usize,
    /// Request path of outgoing WebSocket connections. Default `/`.
    pub ws_path: String,
    /// Client side of outgoing TLS and WSS connections. Default `None`: such sends fail with
    /// [`Error::NoTlsClient`](crate::Error::NoTlsClient).
    pub tls_client: Option<TlsClient>,
    /// Records every message sent and received. Default `None`.
    pub pcap: Option<PcapTap>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            udp_request_limit: 1300,
            udp_socket_buffer: 8 * 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
            max_connections: 1024,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_queued_bytes: 4 * 1024 * 1024,
            event_capacity: 4096,
            ws_path: "/".to_owned(),
            tls_client: None,
            pcap: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("limits", &self.limits)
            .field("udp_request_limit", &self.udp_request_limit)
            .field("udp_socket_buffer", &self.udp_socket_buffer)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .field("event_capacity", &self.event_capacity)
            .field("ws_path", &self.ws_path)
            .field("tls_client", &self.tls_client)
            .field("pcap", &self.pcap.is_some())
            .finish()
    }
}
