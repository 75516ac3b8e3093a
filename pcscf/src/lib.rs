//! The P-CSCF: the phones' first hop (Gm) toward the IMS core (Mw), with security agreement
//! and IPsec (TS 24.229 §5.2, TS 33.203 §7).
//!
//! # Shape
//!
//! - [`Pcscf`] is the whole P-CSCF as pure, deterministic code: the RFC 3261 §16 proxy core of
//!   `imslab-sip` plus the P-CSCF's decisions. It never opens a socket or reads a clock: feed it
//!   messages ([`Pcscf::handle_message`] with an [`Ingress`]) and time
//!   ([`Pcscf::handle_timeout`]), and carry out the [`Output`]s in order (send, install or remove
//!   SAs, write the store, record per-UE events). Tests run whole registrations through it on a
//!   virtual clock.
//! - [`Server`] is the tokio driver: UDP/TCP (and WS) through `imslab-sip-io`, userspace ESP
//!   through `imslab-ipsec`'s `EspSocket`, the store, the event sink, timers and shutdown.
//!
//! # What the P-CSCF does
//!
//! - REGISTER (TS 24.229 §5.2.2.1): security agreement ([`sec_agree`]: 421/494/420 as RFC 3329
//!   says, the offer chosen by `pcscf.ipsec` preference), Path with a flow token ([`flow`]),
//!   `Require: path`, P-Visited-Network-ID, P-Charging-Vector, `integrity-protected`; `ck` and
//!   `ik` taken out of the 401 to derive the ESP keys (TS 33.203 Annex I) and create the four
//!   SAs, Security-Server added; Security-Verify checked on the protected REGISTER (bid-down
//!   protection); on the 200 OK the registration is kept ([`registrations`]) and stored, SAs
//!   switch per TS 33.203 §7.4, and the P-CSCF subscribes to the reg event ([`reg_event`]).
//! - Requests from phones ([`routing`]): only from registered phones (403 otherwise), only on
//!   their SAs when they registered with IPsec; P-Asserted-Identity from P-Preferred-Identity
//!   or the default identity; the Service-Route enforced on initial requests.
//! - Requests to phones: to the flow named by the Path token on the Route, or by the registered
//!   contact (NAT aliases as Kamailio's `add_contact_alias`/`handle_ruri_alias`), over the
//!   SAs from port-c to the phone's port-s.
//! - A reg-event NOTIFY saying terminated drops the registration; its SAs stay 64×T1 longer
//!   so the S-CSCF's NOTIFY to the phone still crosses them (TS 24.229 §5.2.3).
//! - Calls ([`dialogs`]): initial INVITEs open a bounded dialog entry (released on BYE, on a
//!   failure final response, on Timer C or the session interval), Record-Route carries the
//!   phone's flow token (toward an IPsec phone with a port-s twin, and Via on port-c), so
//!   in-dialog requests both ways follow the route; 183/100rel/PRACK/UPDATE and CANCEL pass
//!   through the proxy core.
//! - TS 33.203 §7.4: an old SA set goes once the phone used the new one *and* the
//!   transactions opened over the old one completed (at most 64×T1).
//!
//! # Wiring
//!
//! ```text
//! let server = Server::bind(&config, Deps { store, events, data_dir }).await?; // binds, or names the address
//! server.local_addrs();   // [("P-CSCF SIP (UDP)", 127.0.0.1:5060), ...] for the banner
//! server.status();        // a StatusHandle: registrations, SA sets, ESP counters
//! server.run(shutdown).await?;   // returns within about a second of cancellation
//! ```
//!
//! Registrations and reg-event subscriptions are written to the store (owner
//! `sip:pcscf@<listen>`) and reloaded by [`Server::bind`]. With `pcscf.pcap` the server writes
//! `pcscf.pcap` (every SIP message, the protected ones decrypted, on their protected ports) and
//! `pcscf.esp_sa` (Wireshark's ESP SA table of every SA installed) in the data directory.
//!
//! # What it is not
//!
//! No Rx/PCRF, no emergency registration, no SigComp, no GRUU handling, no IPsec UDP
//! encapsulation for NATed IPsec phones. Over userspace ESP both UDP and TCP are carried: a
//! phone may connect from its port-c to port-s inside the SAs, and requests toward a phone go
//! over TCP from port-c to its port-s when they exceed 1,300 bytes (RFC 3261 §18.1.1) or the
//! phone speaks TCP over those SAs (connections capped per phone and in all, reset when idle
//! or when their SAs go; a refused one is an `esp` event in the phone's timeline). With XFRM
//! such requests stay on UDP over the SAs. With userspace ESP the SA sets are kept in the store (keys, SPIs, ports) and restored at start,
//! outbound sequence numbers jumping 2^24 ahead of the previous run; with XFRM the kernel SAs
//! of restored registrations are kept (re-installed from the store when missing, outbound
//! sequence numbers continuing after that base) and only the others are removed at start.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod core;
pub mod dialogs;
mod error;
pub mod flow;
pub mod fuzzing;
pub mod reg_event;
pub mod register;
pub mod registrations;
pub mod routing;
pub mod sec_agree;
mod server;
mod settings;

pub use crate::core::{Ingress, MAX_DIALOGS, Output, Pcscf, Protection, Stats, StoreOp};
pub use error::Error;
pub use server::{Deps, ESP_SA_FILE, FLOW_KEY_FILE, PCAP_FILE, Server, Status, StatusHandle};
pub use settings::Settings;

#[cfg(test)]
mod tests;
