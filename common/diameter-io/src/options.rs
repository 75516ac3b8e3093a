//! How a node is configured: its identity, its peers and routes, timers, TLS and capture.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imslab_diameter::base::Capabilities;
use imslab_diameter::peer::Timers;
use imslab_types::{DiameterIdentity, Realm};

use crate::tap::Tap;

/// How to reach a peer this node connects to.
#[derive(Clone)]
pub enum Transport {
    /// Plain TCP (RFC 6733 §2.1, port 3868 by default).
    Tcp,
    /// TLS from the first byte (RFC 6733 §2.1, port 5658 by default).
    Tls {
        /// Trust anchors and client settings; see [`crate::tls::client_config`].
        config: Arc<rustls::ClientConfig>,
        /// The name the peer's certificate must carry.
        server_name: String,
    },
    /// SCTP one-to-one socket (feature `sctp`; the kernel must support it).
    #[cfg(feature = "sctp")]
    Sctp,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp => f.write_str("Tcp"),
            Self::Tls { server_name, .. } => write!(f, "Tls({server_name})"),
            #[cfg(feature = "sctp")]
            Self::Sctp => f.write_str("Sctp"),
        }
    }
}

/// One configured peer.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Its Origin-Host.
    pub host: DiameterIdentity,
    /// Its realm: requests for this realm are routed to it (in configuration order).
    pub realm: Realm,
    /// Where to connect; `None` when the peer connects to us.
    pub connect: Option<SocketAddr>,
    /// How to connect.
    pub transport: Transport,
}

impl PeerOptions {
    /// A peer this node connects to over TCP.
    pub fn connect_tcp(host: DiameterIdentity, realm: Realm, addr: SocketAddr) -> Self {
        Self {
            host,
            realm,
            connect: Some(addr),
            transport: Transport::Tcp,
        }
    }

    /// A peer that connects to this node.
    pub fn accept(host: DiameterIdentity, realm: Realm) -> Self {
        Self {
            host,
            realm,
            connect: None,
            transport: Transport::Tcp,
        }
    }
}

/// Everything a [`crate::DiameterNode`] needs. Defaults: no peers, unknown peers refused,
/// timers of [`Timers::default`], requests time out after 10 s, messages up to 1 MiB, at most
/// 4096 received requests in the handler at once.
#[derive(Clone)]
pub struct NodeOptions {
    /// What this node announces in CER/CEA. If `host_ip_addresses` is empty, the listener's
    /// address (or 127.0.0.1) is announced.
    pub local: Capabilities,
    /// Configured peers.
    pub peers: Vec<PeerOptions>,
    /// Extra routes: requests for the realm go to these peers, in order, before the peers of
    /// that realm.
    pub routes: Vec<(Realm, Vec<DiameterIdentity>)>,
    /// Peers for requests no route matches.
    pub default_route: Vec<DiameterIdentity>,
    /// Accept CERs from hosts not configured (as responder-only peers).
    pub accept_unknown_peers: bool,
    /// Peer timers (Tw, CEA/CER timeout, reconnection back-off).
    pub timers: Timers,
    /// Default request deadline.
    pub request_timeout: Duration,
    /// Largest message accepted; a longer Message Length closes the connection.
    pub max_message_len: usize,
    /// Most received requests in the [`crate::RequestHandler`] at once. A request beyond it is
    /// answered DIAMETER_TOO_BUSY (RFC 6733 §7.1.3: the sender tries another peer) without
    /// reaching the handler, so a peer flooding requests cannot grow the node without bound.
    pub max_handler_requests: usize,
    /// TLS for accepted connections: the listener speaks TLS from the first byte.
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    /// Sees every message sent and received (pcap capture).
    pub tap: Option<Arc<dyn Tap>>,
}

impl NodeOptions {
    /// Defaults around the node's capabilities.
    pub fn new(local: Capabilities) -> Self {
        Self {
            local,
            peers: Vec::new(),
            routes: Vec::new(),
            default_route: Vec::new(),
            accept_unknown_peers: false,
            timers: Timers::default(),
            request_timeout: Duration::from_secs(10),
            max_message_len: 1 << 20,
            max_handler_requests: 4096,
            tls_server: None,
            tap: None,
        }
    }
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("origin_host", &self.local.origin_host)
            .field("peers", &self.peers)
            .field("routes", &self.routes)
            .field("accept_unknown_peers", &self.accept_unknown_peers)
            .field("tls_server", &self.tls_server.is_some())
            .finish_non_exhaustive()
    }
}
