//! Tokio drivers for Diameter: [`DiameterNode`] runs the pure peer table of `imslab-diameter`
//! over TCP, TLS (rustls) or, with the `sctp` feature, SCTP.
//!
//! # Use
//!
//! A server (HSS) binds a listener, starts a node with a [`RequestHandler`] and answers Cx
//! requests with the typed commands of `imslab_diameter::cx`:
//!
//! ```no_run
//! # async fn demo(caps: imslab_diameter::base::Capabilities) -> Result<(), imslab_diameter_io::Error> {
//! use imslab_diameter::cx::{CxRequest, CxResult, Maa};
//! use imslab_diameter::answer::error_answer;
//! use imslab_diameter_io::{DiameterNode, NodeOptions, PeerInfo};
//!
//! let origin = imslab_diameter::Origin { host: caps.origin_host.clone(), realm: caps.origin_realm.clone() };
//! let mut opts = NodeOptions::new(caps);
//! opts.accept_unknown_peers = true;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3868").await.expect("bind");
//! let node = DiameterNode::start(opts, move |req: imslab_diameter::Message, _peer: PeerInfo| {
//!     let origin = origin.clone();
//!     async move {
//!         match CxRequest::decode(&req) {
//!             Ok(CxRequest::Mar(mar)) => Maa::new(&mar, &origin, CxResult::SUCCESS).to_message(),
//!             Ok(_) => error_answer(&req.header, &req.avps, &imslab_diameter::Error::UnsupportedCommand { code: req.header.code, app: req.header.application_id }, &origin),
//!             Err(e) => error_answer(&req.header, &req.avps, &e, &origin),
//!         }
//!     }
//! }, Some(listener))?;
//! # node.shutdown().await; Ok(()) }
//! ```
//!
//! A client (S-CSCF, I-CSCF) configures its peers in [`NodeOptions::peers`] and calls
//! [`DiameterNode::request`] with a typed request's `to_message()`; routing follows
//! Destination-Host, then Destination-Realm, with fail-over between peers of a realm.
//!
//! The node sets the answer header from the request, so handlers only build AVPs. Received
//! requests that are malformed or fail the dictionary checks are answered by the node itself
//! and never reach the handler. A misbehaving peer costs only its connection, closed with a
//! `tracing` line saying why. [`NodeOptions::tap`] sees every message (see [`PcapTap`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conn;
mod error;
mod node;
mod options;
pub mod sctp;
pub mod tap;
pub mod tls;

pub use error::Error;
pub use node::{DiameterNode, PeerInfo, PeerStatus, RefuseRequests, RequestHandler};
pub use options::{NodeOptions, PeerOptions, Transport};
pub use tap::{Direction, PcapTap, Tap};
