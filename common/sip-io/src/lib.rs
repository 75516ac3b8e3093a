//! The SIP transports of imslab on tokio: UDP, TCP, TLS, WebSocket and secure WebSocket.
//!
//! A [`SipTransport`] owns the sockets its caller binds and hands in, cuts the byte streams
//! into SIP messages with `imslab_sip`'s framer, and reports each one as an [`Event`] carrying
//! the parsed [`Message`](imslab_sip::Message) (or the raw bytes when they do not parse), the
//! source and local addresses, the [`TransportKind`] and the [`FlowId`] it arrived on. Sending
//! takes a [`Target`]: a flow (the connection a request came in on, RFC 3261 §18.2.2) or a
//! transport and address.
//!
//! ```no_run
//! # async fn cscf() -> Result<(), imslab_sip_io::Error> {
//! use imslab_sip_io::{Config, Event, Payload, SipTransport};
//! use tokio::net::{TcpListener, UdpSocket};
//!
//! let (transport, mut events) = SipTransport::new(Config::default());
//! transport.add_udp(UdpSocket::bind("127.0.0.1:5060").await.unwrap())?;
//! transport.add_tcp(TcpListener::bind("127.0.0.1:5060").await.unwrap())?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Received(rx) = event {
//!         if let Payload::Message(request) = &rx.payload {
//!             if let Ok(ok) = request.response(imslab_sip::StatusCode::OK, Some("t1")) {
//!                 transport.send(&rx.reply_target(), ok).await?;
//!             }
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # What each transport does
//!
//! - **UDP** ([`SipTransport::add_udp`]): one message per datagram, enlarged socket buffers, bare
//!   CRLF datagrams dropped as keep-alives. A request larger than
//!   [`Config::udp_request_limit`] (1300 bytes) goes over TCP to the same address, with the
//!   top Via rewritten to TCP (RFC 3261 §18.1.1). A transaction layer that applies that rule
//!   itself (`TransactionLayer::set_udp_size_rule`, as sip-node's proxy does) sends with
//!   [`SipTransport::send_bytes_as_is`] so its UDP retry after a refused connection stays UDP.
//! - **TCP and TLS** ([`SipTransport::add_tcp`], [`SipTransport::add_tls`]): Content-Length
//!   framing (RFC 3261 §18.3), CRLFCRLF ping answered with CRLF (RFC 5626 §3.5.1), idle and
//!   write timeouts, a connection limit, a per-connection send queue limit. Bytes that are not
//!   SIP, or a message above the size limit, close that connection only, with a log line. A
//!   message without Content-Length is handed up as [`Payload::Invalid`] with the parsed
//!   message, and a message framed by Content-Length that does not parse as
//!   [`Payload::Invalid`] with its raw bytes (answer with
//!   `imslab_sip::validate::answer_unparseable`); the connection stays open, so the owner can
//!   answer 400. TLS uses rustls (ring); [`tls::TlsIdentity`] loads
//!   PEM files or generates a self-signed pair in the data directory.
//! - **WS and WSS** ([`SipTransport::add_ws`], [`SipTransport::add_wss`]): RFC 7118. The
//!   upgrade needs `Sec-WebSocket-Protocol: sip` (refused with 400 otherwise), every WebSocket
//!   message is one SIP message, text and binary are accepted and replies use the peer's last
//!   frame type.
//! - **Connection reuse**: every connection is reachable by its [`FlowId`] and by its peer
//!   address; [`SipTransport::alias`] adds addresses (RFC 5923 style), so requests back to a
//!   registered UE go over the UE's own connection. Outgoing connections are opened on demand,
//!   from the IP of a bound socket when it is not a wildcard (the transport's own listener
//!   first, then the others; an ephemeral port), so a peer sees the address the element is
//!   reachable at (RFC 3261 §18.1.1).
//! - **Transaction layer**: [`Received::peer`] gives the `imslab_sip::transaction::Peer` to feed
//!   `TransactionLayer::handle_message` / `Proxy::handle_message`; each `Output::Transmit { to,
//!   bytes, .. }` goes out with [`SipTransport::send_to_peer`]; a send error is the layer's
//!   transport error. [`FlowId::transaction_flow`] is the number both sides share.
//! - **Capture**: [`Config::pcap`] records every message sent and received (see [`PcapTap`]
//!   for what is and is not reproduced).
//!
//! # What this crate is not
//!
//! It does not resolve names (RFC 3263), add `received`/`rport` to Via (the proxy core does,
//! with [`Received::source`]), retransmit (the transaction layer does) or answer anything by
//! itself except CRLF keep-alives.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod connect;
mod error;
mod listener;
mod stream;
pub mod tls;
mod transport;
mod types;
mod udp;
mod ws;

pub use config::{Config, PcapTap, TlsClient, pcap_tap};
pub use error::Error;
pub use transport::SipTransport;
pub use types::{
    CloseReason, Event, FlowId, FlowInfo, Payload, Received, Sent, Target, TransportKind,
};
