//! The S-CSCF (TS 24.229 §5.4, TS 23.228): registrar and authenticator of the lab's phones,
//! notifier of the reg event package, Cx client and RTR/PPR server, third-party registration
//! toward application servers, and session routing of calls and messages (originating and
//! terminating cases, iFCs, ENUM, breakout).
//!
//! # Layers
//!
//! - [`registrar::Registrar`]: the whole behaviour as a pure state machine on a virtual clock
//!   (`handle_register`, `handle_subscribe`, `handle_request`, `handle_cx_answer`,
//!   `handle_rtr`, `handle_ppr`, `handle_sent`, `handle_timeout`; outputs drained with
//!   `poll_output`). Its module documentation is the calling contract.
//! - [`auth`]: schemes, the challenge built from an MAA (AKAv1-MD5, AKAv2-MD5, SIP Digest) and
//!   the response check. [`ifc`]: the IMSSubscription User-Data and iFC evaluation.
//!   [`reg_event`]: the reginfo document (RFC 3680). [`registrar::routing`]: session
//!   routing (its module documentation lists the rules). [`e164`]: ENUM names and NAPTR
//!   rules. [`breakout`]: answering the trunk's digest challenge.
//! - [`Server`]: the tokio driver. One engine task owns the core; the SIP element
//!   (`imslab-sip-node`) hands it requests; a `DiameterNode` connects to the HSS and serves
//!   the HSS's RTR and PPR on the same connection; a writer task applies store writes in
//!   order, and an answer waits for the writes queued before it (a 200 leaves its
//!   registration stored: a crash loses nothing acknowledged); per-UE events go to the
//!   caller's sink.
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
//!   still-valid nonce with a higher nonce count need no new challenge; a nonce lives
//!   [`registrar::NONCE_LIFETIME`] (at most `scscf.reg_expires_max`), after which a right
//!   answer gets a fresh 401 with `stale=TRUE`. Expiry below
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
//! - Sessions (§5.4.3, [`registrar::routing`]): an initial request whose P-Asserted-Identity
//!   is registered here and whose previous hop is that registration's P-CSCF (its first Path
//!   entry) is originating: originating iFCs (the AS gets the request with a Route back here
//!   carrying an `odi-` token), then the callee is normalised (tel URI, `user=phone`, digits →
//!   the implicit-set identity holding that number; otherwise ENUM at `scscf.enum_server`)
//!   and the request goes to `scscf.icscf` (home callee; with no I-CSCF configured the
//!   terminating case runs here at once), `scscf.breakout` (numbers and domains outside the
//!   lab; MESSAGE and other standalone requests are relayed by the S-CSCF, which answers the
//!   trunk's 401/407 with `scscf.breakout_username`/`breakout_password`; an INVITE is proxied
//!   with Record-Route and its 401/407 answered the same way, the INVITE re-sent with CSeq + 1
//!   and [`dialogs`] keeping that offset for the caller's later requests), or its own next
//!   hop. Other initial requests are terminating: terminating iFCs (session case 1, or 2 for
//!   an identity without contacts, assigned by SAR UNREGISTERED_USER), then parallel forking
//!   with P-Called-Party-ID and Record-Route to every contact (one per `+sip.instance`, the
//!   most recently registered): along their shared Path as Route, or, when the contacts sit
//!   behind different one-hop Paths (one P-CSCF flow per phone), each with its own Path as
//!   Route in one forked transaction; otherwise only the contacts on the newest contact's
//!   Path. 480 without contacts or service, 404 unknown or barred. In-dialog requests, 2xx
//!   ACKs and CANCELs follow their route. An iFC-triggered AS that sends nothing but 100
//!   within `scscf.as_timeout` (4 s) has failed for its DefaultHandling. Each decision is a
//!   per-UE event (`call`, `message`, `session`).
//! - Every failure becomes a SIP answer (400, 403, 404, 423, 480, 500, 504) and a per-UE
//!   event (`mar`, `challenge`, `auth-response`, `aka-resync`, `sar`, `registered`,
//!   `re-registered`, `deregistered`, `reg-subscribe`, `reg-notify`, `rtr`, `ppr`,
//!   `third-party-register`, `terminating`).
//!
//! # Not here
//!
//! DefaultHandling SESSION_CONTINUED when the continuation without the AS needs a lookup (a
//! further AS, SAR, ENUM, breakout relay): then an AS that fails gives the caller its
//! 408/5xx; otherwise the continuation is the proxy core's fallback
//! (`imslab_sip_node::Decided::fallback`) and its use is a per-UE `as` event. A trunk's
//! second challenge of one request (it goes back to the phone), charging, emergency
//! sessions, and re-selection after an S-CSCF change.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod breakout;
pub mod dialogs;
pub mod e164;
mod error;
pub mod fuzzing;
pub mod ifc;
pub mod reg_event;
pub mod registrar;
mod server;

pub use error::Error;
pub use server::Server;
