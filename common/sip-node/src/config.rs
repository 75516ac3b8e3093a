//! What a node binds and how its proxy core behaves.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use imslab_sip::header::Transport;
use imslab_sip::transaction::{Peer, TimerConfig};
use imslab_sip::{Host, Uri};
use imslab_sip_io::TransportKind;

/// One socket to bind.
#[derive(Clone)]
pub enum Listen {
    /// A UDP socket.
    Udp(SocketAddr),
    /// A TCP listener. Port 0 first tries the port of a UDP socket bound earlier on the same
    /// address, so an element with ephemeral ports still has one port for both.
    Tcp(SocketAddr),
    /// A TLS listener with its server configuration.
    Tls(SocketAddr, Arc<rustls::ServerConfig>),
    /// A WebSocket listener (RFC 7118).
    Ws(SocketAddr),
    /// A secure WebSocket listener.
    Wss(SocketAddr, Arc<rustls::ServerConfig>),
}

impl Listen {
    /// UDP and TCP on the same address, the usual pair for a CSCF (RFC 3261 §18).
    pub fn udp_tcp(addr: SocketAddr) -> [Self; 2] {
        [Self::Udp(addr), Self::Tcp(addr)]
    }

    /// The transport.
    pub fn transport(&self) -> TransportKind {
        match self {
            Self::Udp(_) => TransportKind::Udp,
            Self::Tcp(_) => TransportKind::Tcp,
            Self::Tls(..) => TransportKind::Tls,
            Self::Ws(_) => TransportKind::Ws,
            Self::Wss(..) => TransportKind::Wss,
        }
    }

    /// The address asked for.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Udp(a) | Self::Tcp(a) | Self::Tls(a, _) | Self::Ws(a) | Self::Wss(a, _) => *a,
        }
    }
}

impl fmt::Debug for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport(), self.addr())
    }
}

/// Everything [`crate::SipNode::bind`] needs. [`NodeConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Sockets to bind, at least one. Their order is the interface order of the proxy core:
    /// requests the element originates leave from the first interface of the right transport
    /// and address family.
    pub listen: Vec<Listen>,
    /// Host name written in Via and Record-Route instead of the bound address, if any.
    pub advertise: Option<String>,
    /// Host names that mean this element in Route headers and Request-URIs (§16.4), for example
    /// `scscf.ims.mnc001.mcc001.3gppnetwork.org`.
    pub aliases: Vec<String>,
    /// Option tags accepted in Proxy-Require; others are answered 420 (§16.3 step 5).
    pub supported: Vec<String>,
    /// Static name resolution for next hops given by host name (lower-case names). IP literals
    /// need no entry. Names found here are not looked up in DNS.
    pub hosts: HashMap<String, Peer>,
    /// DNS for next hops given by a host name not in `hosts` (RFC 3263: NAPTR, SRV, A/AAAA).
    /// `None` (the default): such requests fail with 503.
    pub dns: Option<crate::DnsConfig>,
    /// RFC 3261 §17 timer values.
    pub timers: TimerConfig,
    /// Timer C (§16.6 step 11). Default 180 s.
    pub timer_c: Duration,
    /// Answer 482 to looping requests (§16.3 step 4). Default on.
    pub loop_detection: bool,
    /// Transport settings (limits, timeouts, pcap tap, TLS client).
    pub transport: imslab_sip_io::Config,
    /// Makes branch values unique across restarts; pass randomness. Default 0.
    pub seed: u64,
}

impl NodeConfig {
    /// Defaults around these sockets.
    pub fn new(listen: impl IntoIterator<Item = Listen>) -> Self {
        Self {
            listen: listen.into_iter().collect(),
            advertise: None,
            aliases: Vec::new(),
            supported: Vec::new(),
            hosts: HashMap::new(),
            dns: None,
            timers: TimerConfig::default(),
            timer_c: Duration::from_secs(180),
            loop_detection: true,
            transport: imslab_sip_io::Config::default(),
            seed: 0,
        }
    }

    /// Adds a static host entry: `name` resolves to `addr` over `transport`.
    pub fn host(mut self, name: &str, transport: TransportKind, addr: SocketAddr) -> Self {
        self.hosts.insert(
            name.to_ascii_lowercase(),
            Peer::new(transport.to_sip(), addr),
        );
        self
    }
}

/// Where to send a request whose next hop is `uri` (a SIP URI, with or without angle
/// brackets): its `maddr` or IP host with the port (default 5060, 5061 for `sips`), or the
/// `hosts` entry for a host name (the URI's port wins over the entry's). The transport comes
/// from the `transport` parameter, else UDP (TLS for `sips`), as RFC 3263 §4.1 does without
/// NAPTR/SRV.
pub fn resolve_uri(uri: &str, hosts: &HashMap<String, Peer>) -> Option<Peer> {
    let text = uri
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default();
    let parsed = Uri::parse(text).ok()?;
    let sip = parsed.as_sip()?;
    let transport = match sip.transport() {
        Some(t) => Transport::from_token(t),
        None if sip.secure => Transport::Tls,
        None => Transport::Udp,
    };
    let ip = sip
        .maddr()
        .and_then(|m| m.parse::<IpAddr>().ok())
        .or(match &sip.host {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        });
    match (ip, &sip.host) {
        (Some(ip), _) => Some(Peer::new(
            transport,
            SocketAddr::new(ip, sip.port_or_default()),
        )),
        (None, Host::Name(n)) => {
            let p = hosts.get(&n.to_ascii_lowercase())?;
            Some(match sip.port {
                Some(port) => Peer {
                    addr: SocketAddr::new(p.addr.ip(), port),
                    ..p.clone()
                },
                None => p.clone(),
            })
        }
        (None, Host::Ip(_)) => None,
    }
}
