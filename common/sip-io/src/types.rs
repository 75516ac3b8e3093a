//! What the transport layer hands up and takes down: transport kinds, flows, targets, events.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use imslab_sip::Message;
use imslab_sip::header::Transport;
use imslab_sip::transaction::Peer;

/// The transports this crate runs (RFC 3261 §18, RFC 7118).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportKind {
    /// UDP datagrams.
    Udp,
    /// TCP with Content-Length framing (RFC 3261 §18.3).
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2).
    Tls,
    /// WebSocket, one SIP message per WebSocket message (RFC 7118).
    Ws,
    /// WebSocket over TLS (RFC 7118).
    Wss,
}

impl TransportKind {
    /// The token in Via (`SIP/2.0/WSS`), RFC 3261 §20.42 and RFC 7118 §5.1.
    pub fn via_token(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Ws => "WS",
            Self::Wss => "WSS",
        }
    }

    /// Whether messages travel over a connection (everything but UDP). Connection transports
    /// are reliable: RFC 3261 §17 timers A, E and G do not run (RFC 7118 §5 for WS).
    pub fn is_connection(self) -> bool {
        self != Self::Udp
    }

    /// Whether the transport is encrypted.
    pub fn is_secure(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }

    /// Whether messages are WebSocket messages.
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }

    /// The transport as imslab-sip names it in Via.
    pub fn to_sip(self) -> Transport {
        match self {
            Self::Udp => Transport::Udp,
            Self::Tcp => Transport::Tcp,
            Self::Tls => Transport::Tls,
            Self::Ws => Transport::Ws,
            Self::Wss => Transport::Wss,
        }
    }

    /// The kind for a Via transport, when this crate runs it.
    pub fn from_sip(t: &Transport) -> Option<Self> {
        match t {
            Transport::Udp => Some(Self::Udp),
            Transport::Tcp => Some(Self::Tcp),
            Transport::Tls => Some(Self::Tls),
            Transport::Ws => Some(Self::Ws),
            Transport::Wss => Some(Self::Wss),
            _ => None,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_token())
    }
}

/// Identifies a flow (RFC 5626 §3.1): one connection for TCP, TLS, WS and WSS, or the pair of
/// a local UDP socket and a remote address for UDP.
///
/// Every received message carries the flow it arrived on. Sending to it reuses the connection
/// (RFC 3261 §18.2.2 for responses, RFC 5923-style reuse for requests back to the peer) or, for
/// UDP, sends from the same local socket. Connections and UDP sockets are numbered from one
/// counter that never repeats while the transport lives; that number is the transaction
/// layer's [`imslab_sip::transaction::FlowId`] ([`FlowId::transaction_flow`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId(pub(crate) FlowRepr);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FlowRepr {
    Datagram { socket: u64, remote: SocketAddr },
    Connection(u64),
}

impl FlowId {
    pub(crate) fn datagram(socket: u64, remote: SocketAddr) -> Self {
        Self(FlowRepr::Datagram { socket, remote })
    }

    pub(crate) fn connection(id: u64) -> Self {
        Self(FlowRepr::Connection(id))
    }

    /// Whether the flow is a connection (TCP, TLS, WS or WSS).
    pub fn is_connection(&self) -> bool {
        matches!(self.0, FlowRepr::Connection(_))
    }

    /// The number the transaction layer knows the connection or UDP socket by (the remote
    /// address of a UDP flow travels separately, in [`Peer::addr`]).
    pub fn transaction_flow(&self) -> imslab_sip::transaction::FlowId {
        match self.0 {
            FlowRepr::Datagram { socket, .. } => imslab_sip::transaction::FlowId(socket),
            FlowRepr::Connection(id) => imslab_sip::transaction::FlowId(id),
        }
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            FlowRepr::Datagram { socket, remote } => write!(f, "udp#{socket}<>{remote}"),
            FlowRepr::Connection(id) => write!(f, "conn#{id}"),
        }
    }
}

impl fmt::Debug for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlowId({self})")
    }
}

/// Where to send a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Over an existing flow: the connection a request arrived on (RFC 3261 §18.2.2), or a
    /// UDP socket and peer. Fails with [`Error::FlowClosed`](crate::Error::FlowClosed) when the
    /// connection is gone.
    Flow(FlowId),
    /// To an address over a transport. UDP sends from the first socket of the address family
    /// (a request larger than [`Config::udp_request_limit`](crate::Config::udp_request_limit)
    /// goes over TCP instead, RFC 3261 §18.1.1). Connection transports reuse an open connection
    /// to (or aliased to) that address and connect otherwise.
    Address {
        /// The transport.
        transport: TransportKind,
        /// The destination.
        remote: SocketAddr,
    },
}

impl Target {
    /// `Target::Address` shorthand.
    pub fn address(transport: TransportKind, remote: SocketAddr) -> Self {
        Self::Address { transport, remote }
    }
}

/// How a message was sent: the transaction layer needs the transport actually used (it may have
/// switched from UDP to TCP) to pick reliable or unreliable timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The flow the message went out on; responses to a request come back on it.
    pub flow: FlowId,
    /// The transport used.
    pub transport: TransportKind,
    /// The local address.
    pub local: SocketAddr,
    /// The remote address.
    pub remote: SocketAddr,
}

impl Sent {
    /// The destination as the transaction layer names it (for `TransactionLayer::send_request`
    /// and friends).
    pub fn peer(&self) -> Peer {
        Peer {
            transport: self.transport.to_sip(),
            addr: self.remote,
            flow: Some(self.flow.transaction_flow()),
        }
    }
}

/// A message (or an undecodable one) received from the network.
#[derive(Clone, Debug)]
pub struct Received {
    /// What arrived.
    pub payload: Payload,
    /// The peer's address: the `received`/`rport` values of RFC 3261 §18.2.1 and RFC 3581.
    pub source: SocketAddr,
    /// The local address it arrived at.
    pub local: SocketAddr,
    /// The transport.
    pub transport: TransportKind,
    /// The flow; send responses to it ([`Received::reply_target`]).
    pub flow: FlowId,
}

impl Received {
    /// The target for a response: the same flow (RFC 3261 §18.2.2: the same connection for
    /// reliable transports; for UDP, the same socket back to the source address and port, which
    /// is what RFC 3581 `rport` asks for).
    pub fn reply_target(&self) -> Target {
        Target::Flow(self.flow)
    }

    /// The source as the transaction layer and proxy core name it
    /// (`TransactionLayer::handle_message`, `Proxy::handle_message`); hand the transaction
    /// layer's `Output::Transmit` back with [`SipTransport::send_to_peer`].
    ///
    /// [`SipTransport::send_to_peer`]: crate::SipTransport::send_to_peer
    pub fn peer(&self) -> Peer {
        Peer {
            transport: self.transport.to_sip(),
            addr: self.source,
            flow: Some(self.flow.transaction_flow()),
        }
    }
}

/// The content of a [`Received`].
#[derive(Clone, Debug)]
pub enum Payload {
    /// A parsed message (header values are not validated yet: see `imslab_sip::validate`).
    Message(Message),
    /// Bytes that are not a usable message. A request among them deserves a 400: from `parsed`
    /// when available ([`imslab_sip::Error::status_code`]), otherwise from the raw lines with
    /// [`imslab_sip::validate::answer_unparseable`] (stream and WebSocket flows stay open after
    /// an invalid message). The transport does not answer itself.
    Invalid {
        /// The datagram, WebSocket message or framed stream message.
        raw: Bytes,
        /// The message, when it parsed but breaks a transport rule (a stream message without
        /// Content-Length, RFC 3261 §18.3).
        parsed: Option<Message>,
        /// What is wrong.
        error: imslab_sip::Error,
    },
}

/// Something the transport reports to its owner.
#[derive(Clone, Debug)]
pub enum Event {
    /// A message arrived (boxed: a message is a few hundred bytes, the other events a few
    /// dozen).
    Received(Box<Received>),
    /// A CRLF pong answered a ping sent with
    /// [`SipTransport::ping`](crate::SipTransport::ping) (RFC 5626 §4.4.1).
    Pong {
        /// The flow.
        flow: FlowId,
    },
    /// A connection closed, or, over UDP, an ICMP error said the peer cannot be reached
    /// ([`CloseReason::Unreachable`]). A registrar treats this as a flow failure (RFC 5626
    /// §5.5); the SIP element fails the client transactions toward that address at once
    /// instead of at Timer B/F.
    FlowClosed {
        /// The flow.
        flow: FlowId,
        /// Its transport.
        transport: TransportKind,
        /// The peer.
        remote: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
}

/// Why a connection closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed it.
    PeerClosed,
    /// Nothing was sent or received for [`Config::idle_timeout`](crate::Config::idle_timeout).
    IdleTimeout,
    /// The peer did not read what was sent within
    /// [`Config::write_timeout`](crate::Config::write_timeout).
    WriteTimeout,
    /// The byte stream is not SIP, or a message broke the size limit; after this the stream
    /// cannot be resynchronised.
    Framing(imslab_sip::Error),
    /// A read or write failed.
    Io(std::io::ErrorKind),
    /// The WebSocket layer failed (protocol violation, oversized frame).
    WebSocket,
    /// [`SipTransport::close`](crate::SipTransport::close) was called.
    Local,
    /// UDP: an ICMP port unreachable (RFC 1122 §4.1.3.3) came back for a
    /// datagram sent to the peer; the `std::io::ErrorKind` the kernel reported. Linux only
    /// (`IP_RECVERR`).
    Unreachable(std::io::ErrorKind),
    /// The transport shut down.
    Shutdown,
}

/// The addresses of an open connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    /// The transport.
    pub transport: TransportKind,
    /// The local address.
    pub local: SocketAddr,
    /// The peer.
    pub remote: SocketAddr,
}
