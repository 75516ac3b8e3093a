//! The I-CSCF (TS 24.229 §5.3, TS 23.228): the entry point of the home network. It asks the
//! HSS where a user is served and forwards there.
//!
//! - REGISTER (§5.3.1.2): a UAR (User-Authorization-Type REGISTRATION, or DE_REGISTRATION
//!   when every Contact expires; Visited-Network-Identifier from P-Visited-Network-ID), then
//!   the REGISTER goes unchanged to the S-CSCF the UAA names in Server-Name, or to the one
//!   [`routing::by_capabilities`] picks from Server-Capabilities and `icscf.scscfs`.
//! - S-CSCF fail-over (§5.3.1.3): when the table has another S-CSCF, the I-CSCF sends the
//!   REGISTER itself (a client transaction); if the chosen S-CSCF does not answer within
//!   `icscf.failover_after` (default [`routing::FAILOVER_AFTER`]), answers 503 or cannot be reached, a UAR
//!   REGISTRATION_AND_CAPABILITIES and [`routing::reselect_after_failure`] pick another
//!   capable one and the REGISTER is forwarded once more (504 when none qualifies); per-UE
//!   event `scscf-failover`.
//! - Terminating initial requests for home identities (§5.3.2.1): an LIR, then the request
//!   goes to the serving S-CSCF (or, for an unregistered callee with services, the one the
//!   LIA names or [`routing::by_capabilities`] picks; that S-CSCF then assigns itself with
//!   SAR UNREGISTERED_USER).
//! - HSS refusals become SIP answers ([`routing::uar_refusal`], [`routing::lir_refusal`]):
//!   404 for an unknown user; 403 for identities that do not match, a barred identity (UAR
//!   and LIR) and roaming not allowed; 480 for an unregistered callee without services for
//!   the unregistered state, a busy or unreachable HSS; 600 when no
//!   configured S-CSCF has the capabilities; 500 otherwise. Each decision is a per-UE event
//!   (`uar`, `lir`).
//!
//! [`routing`] holds these decisions as pure functions; [`Server`] runs them on a SIP element
//! (`imslab-sip-node`) with a Diameter client toward the HSS. The I-CSCF keeps no state.
//!
//! # Wiring (for the `imslab` binary)
//!
//! ```no_run
//! # async fn demo(config: imslab_config::Config, store: imslab_store::Store,
//! #     events: std::sync::Arc<dyn imslab_types::UeEventSink>) -> Result<(), imslab_icscf::Error> {
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let icscf = imslab_icscf::Server::bind(&config, store, events, std::path::Path::new("data")).await?;
//! icscf.run(shutdown).await?; // returns within about a second of cancellation
//! # Ok(()) }
//! ```
//!
//! S-CSCF URIs whose host is a name need an `address` in `icscf.scscfs` (the lab has no DNS).
//!
//! # Not here
//!
//! Fail-over for terminating requests (LIR; they fail with the proxy core's 408/503), THIG
//! topology hiding, and the SLF.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod routing;
mod server;

pub use error::Error;
pub use server::Server;
