//! The S-CSCF (TS 24.229 §5.4, TS 23.228): registrar and authenticator of the lab's phones,
//! notifier of the reg event package, Cx client and RTR/PPR server, third-party registration
//! toward application servers, and delivery of requests to registered contacts.
//!
//! # Layers
//!
//! - [`registrar::Registrar`]: the whole behaviour as a pure state machine on a virtual clock
//!   (`handle_register`, `handle_subscribe`, `handle_request`, `handle_cx_answer`,
//!   `handle_rtr`, `handle_ppr`, `handle_sent`, `handle_timeout`; outputs drained with
//!   `poll_output`). Its module documentation is the calling contract.
//! - [`auth`]: schemes, the challenge built from an MAA (AKAv1-MD5, AKAv2-MD5, SIP Digest) and
//!   the response check. [`ifc`]: the IMSSubscription User-Data and iFC evaluation.
//!   [`reg_event`]: the reginfo document (RFC 3680).
//! - [`Server`]: the tokio driver. One engine task owns the core; the SIP element
//!   (`imslab-sip-node`) hands it requests; a `DiameterNode` connects to the HSS and serves
//!   the HSS's RTR and PPR on the same connection; a writer task applies store writes in
//!   order; per-UE events go to the caller's sink.
//!
//! # Wiring (for the `imslab` binary)
//!
//! ```no_run
//! # async fn demo(config: imslab_config::Config, store: imslab_store::Store,
//! #     events: std::sync::Arc<dyn imslab_types::UeEventSink>) -> Result<(), imslab_scscf::Error> {
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let scscf = imslab_scscf::Server::bind(&config, store, events, std::path::Path::new("data")).await?;
//! println!("S-CSCF on {:?}", scscf.local_addrs());
//! scscf.run(shutdown).await?; // returns within about a second of cancellation
//! # Ok(()) }
//! ```
//!
//! `bind` reads `config.scscf`, `config.network.domain` (SIP home domain and Diameter realm)
//! and `config.hss.origin_host`; binds UDP and TCP on `scscf.listen` (an error names the
//! address); restores the registrations, bindings and reg-event subscriptions this S-CSCF
//! (named by `scscf.uri`) left in the store; and starts connecting to `scscf.hss`.
//!
//! # Behaviour in brief
//!
//! - REGISTER (§5.4.1.2): the scheme comes from the Authorization `algorithm` (none: MAR with
//!   `Unknown`, then `scscf.default_auth_scheme` if the HSS refuses). The 401 carries the
//!   nonce, algorithm, `qop="auth"` and, for AKA, `ck`/`ik` for the P-CSCF. A right response
//!   leads to SAR (REGISTRATION, RE_REGISTRATION, USER_DEREGISTRATION) and a 200 with every
//!   Contact and its expiry, Path echoed, Service-Route `<sip:orig@host:port;lr>`,
//!   P-Associated-URI (non-barred implicit set) and P-Charging-Function-Addresses. A wrong
//!   response gets a fresh challenge until `scscf.max_auth_failures`, then 403; an `auts`
//!   triggers a resynchronisation MAR; an empty AKA response (the UE rejected AUTN) gets 403.
//!   A request marked `integrity-protected="yes"` (over the IPsec SA) and a response to a
//!   still-valid nonce with a higher nonce count need no new challenge. Expiry below
//!   `scscf.reg_expires_min` gets 423 with Min-Expires.
//! - Bindings: several per identity, keyed by `+sip.instance`/`reg-id` (RFC 5626) or the
//!   Contact URI; each expires on its own; the last one expiring sends SAR
//!   TIMEOUT_DEREGISTRATION.
//! - reg event (RFC 3680, §5.4.2.1): SUBSCRIBE from an identity of the set, a host on the
//!   Path (the P-CSCF) or an AS of the profile; 200 and an immediate full-state NOTIFY; a
//!   NOTIFY with the next version on every change; terminated NOTIFYs with `unregistered`,
//!   `expired`, `deactivated` or `rejected`.
//! - RTR (§5.4.1.5): bindings removed, NOTIFYs, RTA. PPR: profile and implicit set replaced,
//!   NOTIFY, PPA. iFCs on REGISTER (§5.4.1.7): third-party REGISTER to each matching AS;
//!   an AS failure with DefaultHandling SESSION_TERMINATED de-registers.
//! - Every failure becomes a SIP answer (400, 403, 404, 423, 480, 500, 504) and a per-UE
//!   event (`mar`, `challenge`, `auth-response`, `aka-resync`, `sar`, `registered`,
//!   `re-registered`, `deregistered`, `reg-subscribe`, `reg-notify`, `rtr`, `ppr`,
//!   `third-party-register`, `terminating`).
//!
//! # Not here
//!
//! Originating-side service logic beyond routing (iFCs are evaluated for REGISTER only),
//! charging, emergency registration, and re-selection after an S-CSCF change.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod breakout;
pub mod e164;
mod error;
pub mod fuzzing;
pub mod ifc;
pub mod reg_event;
pub mod registrar;
mod server;

pub use error::Error;
pub use server::Server;
