//! The tokio driver that runs one SIP element (a P-, I- or S-CSCF): it binds the element's
//! sockets with `imslab-sip-io`, owns the RFC 3261 §16 [`Proxy`](imslab_sip::proxy::Proxy) core
//! of `imslab-sip`, fires its timers, sends what it transmits, and hands each new request and
//! each response to forward to the element's [`Handler`].
//!
//! It has no CSCF logic: routing, registration and authentication live in the handler.
//!
//! # Use
//!
//! ```no_run
//! use imslab_sip::StatusCode;
//! use imslab_sip_node::{Decision, Handler, Incoming, Listen, NodeConfig, NodeHandle, SipNode};
//!
//! struct Registrar;
//!
//! impl Handler for Registrar {
//!     async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
//!         // A real registrar checks credentials and stores bindings here.
//!         match incoming.request.response(StatusCode::OK, Some("reg1")) {
//!             Ok(ok) => Decision::Respond(ok),
//!             Err(_) => Decision::Respond(imslab_sip::Message::new_response(
//!                 StatusCode::SERVER_INTERNAL_ERROR, None)),
//!         }
//!     }
//! }
//!
//! # async fn demo() -> Result<(), imslab_sip_node::Error> {
//! let cfg = NodeConfig::new(Listen::udp_tcp("127.0.0.1:5060".parse().unwrap()));
//! let node = SipNode::bind(cfg).await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! node.run(Registrar, shutdown).await?;
//! # Ok(()) }
//! ```
//!
//! # The contract
//!
//! - [`SipNode::bind`] binds every [`Listen`] entry (an error names the address) and builds the
//!   proxy core with one interface per socket. [`SipNode::run`] then loops until its
//!   cancellation token fires, and returns at once after closing the sockets.
//! - Each new request that passes the core's checks (§16.3, §16.4) goes to
//!   [`Handler::on_request`] in its own task (in Call-ID order, below), as an [`Incoming`]
//!   with its source [`Peer`] (whose `flow` names the connection or UDP socket it came on).
//!   The handler returns a [`Decision`]: [`Decision::Respond`] with a response built by
//!   [`Message::response`](imslab_sip::Message::response), or [`Decision::Forward`] to
//!   [`Target`]s (a destination `Peer` with a `flow` goes back over that flow: how a P-CSCF
//!   reaches a phone behind NAT). Requests that the core refuses itself (400, 482, 483...)
//!   are reported to [`Handler::on_rejected`]. [`Incoming::consumed_routes`] holds the Route
//!   values naming this element that the core removed (the S-CSCF's `orig`/`odi-…` markers).
//!   A handler that overrides [`Handler::on_request_with_fallback`] may add a fallback
//!   decision, applied when every branch fails with 408, 5xx or a transport error, and the
//!   other [`Decided`] options: a Route set per target, a no-answer timeout per branch, and
//!   challenge answering ([`Handler::on_challenge`] turns a 401/407 into a retry with
//!   credentials, the proxy core keeps the CSeq numbers straight toward the caller).
//! - Requests of one Call-ID are decided one at a time, in arrival order: while one is with
//!   the handler (and its targets with DNS), later ones of that Call-ID wait, and go to the
//!   handler when its decision has been applied. A dialog is Call-ID plus tags (RFC 3261 §12),
//!   so this keeps an ACK for a 2xx behind the INVITE's decision and a BYE behind the ACK,
//!   and a REGISTER refresh behind the previous REGISTER of the Call-ID (§10.2.4). Other
//!   Call-IDs are decided concurrently. A CANCEL never waits (the core answers one for a
//!   known INVITE itself, §16.10). At most 32 requests wait per Call-ID; beyond that a
//!   request is answered 500 with Retry-After (§21.5.1, as §14.2 does for a request that must
//!   wait for another of its dialog; not 503, which fails the whole server over, RFC 3263
//!   §4.3) and an ACK is dropped.
//! - Each response the core selects for forwarding goes to [`Handler::on_response`] (one at a
//!   time per context, in order) and is forwarded as returned. Handlers that never edit
//!   responses return false from [`Handler::wants_responses`].
//! - [`NodeHandle::request`] originates a request (NOTIFY, third-party REGISTER, network-
//!   initiated NOTIFY/BYE...): the node adds its Via and a client transaction, and the call
//!   returns the final response, or [`Error::NoResponse`] with 408/503 on Timer F or a
//!   transport failure.
//! - Connection closures are reported to [`Handler::on_flow_closed`]. Over UDP an ICMP port
//!   or host unreachable for a datagram sent to a peer (`imslab_sip_io::CloseReason::Unreachable`)
//!   is reported the same way, and the client transactions toward that address fail at once
//!   (`Proxy::handle_unreachable`: 503, so failover or a fallback applies) instead of at
//!   Timer B/F.
//! - Next hops are IP literals, entries of [`NodeConfig::hosts`] ([`resolve_uri`]), or, when
//!   [`NodeConfig::dns`] names servers, located by RFC 3263 (NAPTR → SRV → A/AAAA,
//!   [`DnsResolver`] over the pure `imslab_sip::locate`): forward targets without a
//!   destination go to the first target found, and to the next ones in turn when a server
//!   times out, cannot be reached or answers 503 (§4.3, `Proxy::decide_with_failover`);
//!   [`NodeHandle::request_to_uri`] uses the first ([`NodeHandle::locate`]).
//! - A request that does not parse on a TCP/TLS/WS flow but names Via, From, To, Call-ID and
//!   CSeq is answered 400 (RFC 3261 §16.3, §21.4.1) and the flow stays open.
//!
//! # Not here
//!
//! Dialogs, and anything a CSCF decides.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod dns;
mod error;
mod handler;
mod node;
mod order;

pub use config::{Listen, NodeConfig, resolve_uri};
pub use dns::{DnsConfig, DnsResolver};
pub use error::Error;
pub use handler::{Decided, FlowClosed, Handler, Incoming, Outgoing};
pub use imslab_sip::proxy::{
    ContextId, DecideOptions, Decision, ForkMode, Interface, InterfaceId, RecordRoute, Target,
};
pub use imslab_sip::transaction::{FlowId, Peer};
pub use node::{NodeHandle, SipNode};
