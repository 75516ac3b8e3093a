//! IMS security agreement and IPsec ESP between the UE and the P-CSCF (RFC 3329, TS 33.203 §7
//! and Annexes H and I, TS 24.229 §5.2.2), with two backends: ESP in userspace over raw sockets,
//! and kernel SAs through XFRM netlink.
//!
//! # What this crate is, and is not
//!
//! It is the reusable core the P-CSCF (and the scenario runner's soft UE) builds on: pure
//! sec-agree logic, the SA life cycle as a pure state machine driven by `now`, a pure ESP codec,
//! and two thin drivers. It does **not** parse SIP: callers hand it the *values* of the
//! Security-Client, Security-Server and Security-Verify headers and put its output back into
//! their messages. For SIP over TCP inside userspace ESP it has [`tcp::EspTcp`], a pure TCP
//! endpoint on smoltcp whose segments the driver protects like UDP datagrams. It runs no IKE,
//! and no tunnel or UDP-encapsulated mode (TS 33.203 Annex M).
//!
//! # The P-CSCF, step by step (TS 24.229 §5.2.2)
//!
//! 1. At start: build a [`SaTable`] ([`SaTableConfig`]: SPI range, protected ports 5100/6100,
//!    lifetimes) and a [`Preference`] from `pcscf.ipsec.algorithms`/`encryption`
//!    ([`Preference::from_lists`]). Open the backend chosen by `pcscf.ipsec.mode`:
//!    - `userspace`: [`socket::EspSocket::bind`] on the P-CSCF's address (needs `CAP_NET_RAW`);
//!    - `xfrm`: [`xfrm::XfrmBackend::connect`], then [`xfrm::XfrmBackend::reconcile`] with
//!      the SA sets restored from the store (keeps theirs, removes what else a crashed run
//!      left; [`xfrm::XfrmBackend::remove_stale`] removes all) and
//!      [`xfrm::XfrmBackend::probe_esp`]: on a kernel
//!      without ESP it answers [`xfrm::EspSupport::Unavailable`]; say so plainly and refuse
//!      (or fall back to `userspace`), never pretend;
//!    - `off`: none of this crate.
//! 2. Unprotected REGISTER with `Require: sec-agree`: [`header::parse_values`] on all
//!    Security-Client values, then [`negotiate::choose`]. `Err(NoAcceptableMechanism)` → answer
//!    494 ([`NoAcceptableMechanism::STATUS`]) and report [`Diagnosis::from`] it. Keep the client
//!    list: the protected REGISTER must repeat it ([`negotiate::check_security_client_unchanged`]).
//! 3. The S-CSCF's 401 with `ik`/`ck`: [`EspKeys::derive`] (Annex I), then
//!    [`SaTable::create_temporary`] with [`Endpoint::from_offer`]; apply the returned
//!    [`SaAction`]s to the backend ([`socket::EspSocket::apply`] /
//!    [`xfrm::XfrmBackend::apply`]); build the header with [`negotiate::security_server`] from
//!    [`table::Created::local`], print it with [`header::print_list`], remember it, and strip
//!    `ik`/`ck` from the 401 before sending it.
//! 4. Every protected request: [`negotiate::check_security_verify`] against the remembered
//!    Security-Server; a [`ListMismatch`] is a bid-down: reject it and report it. With the
//!    userspace backend, [`socket::EspSocket::recv`] returns the SPI and ports; feed the SPI to
//!    [`SaTable::inbound_used`] (with XFRM use [`SaTable::by_inbound_flow`] on the UDP/TCP source
//!    and destination): once the UE uses a new set, the old set comes back as a `Remove` action.
//!    Accept the UE's requests only from its port-c to the P-CSCF's port-s (the userspace
//!    socket already drops anything outside an SA's selectors as
//!    [`EspDrop::PolicyMismatch`]).
//! 5. 200 OK to the protected REGISTER: [`SaTable::authenticated`] with the registration's
//!    expiry. Requests to the UE go over [`SaTable::request_sa`] (P-CSCF port-c → UE port-s);
//!    responses go back over the reverse of the SA the request came on ([`SaRole::reverse`]).
//! 6. De-REGISTER answered, or RTR: [`SaTable::remove_ue`]. Timer: [`SaTable::next_expiry`] /
//!    [`SaTable::poll_expired`]. Shutdown: [`SaTable::shutdown`]. Apply every returned action.
//! 7. Dropped ESP ([`socket::Incoming::Dropped`]: unknown SPI, bad ICV, replay, bad padding...)
//!    is counted in [`socket::EspSocket::stats`]; map `reason.spi()` to the UE with
//!    [`SaTable::by_inbound_spi`] and report [`Diagnosis::from`] it.
//! 8. Wireshark: [`wireshark::esp_sa_file`] over the live bundles, next to the pcap.
//!
//! The soft UE uses the same pieces the other way round: it parses Security-Server with
//! [`IpsecMechanism::from_mechanism`], builds its [`SaBundle`] with itself as `local`
//! ([`SaBundle::mirrored`] of the P-CSCF's is the same thing), and sends over its own
//! [`socket::EspSocket`].
//!
//! # Modules
//!
//! - [`header`]: Security-* values (RFC 3329 §2.2), lossless, and the typed `ipsec-3gpp` view.
//! - [`negotiate`]: choosing, Security-Server, the Security-Verify and Security-Client checks.
//! - [`keys`]: IK_ESP / CK_ESP (Annex I). [`spi`]: SPIs and their allocator.
//! - [`sa`]: the four SAs (TS 33.203 §7.1). [`table`]: SA sets and their life cycle (§7.4).
//! - [`esp`]: the ESP codec (RFC 4303). [`inner`]: UDP/TCP/IP framing and checksums.
//! - [`socket`]: the userspace driver. [`tcp`]: TCP inside userspace ESP. [`xfrm`]: the
//!   kernel driver.
//! - [`wireshark`]: the `esp_sa` key file. [`diag`]: per-UE events. [`fuzzing`]: fuzz entry points.
//!
//! Only hmac-md5-96, hmac-sha-1-96, null, aes-cbc (AES-128) and des-ede3-cbc are implemented
//! (the Annex H set of legacy releases; aes-gmac and aes-gcm of newer releases are not).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alg;
pub mod diag;
mod error;
pub mod esp;
pub mod fuzzing;
pub mod header;
pub mod inner;
pub mod keys;
pub mod negotiate;
pub mod sa;
pub mod socket;
pub mod spi;
pub mod table;
pub mod tcp;
pub mod wireshark;
pub mod xfrm;

pub use alg::{CipherSuite, EncryptionAlg, IntegrityAlg};
pub use diag::Diagnosis;
pub use error::{Error, EspDrop, HeaderError};
pub use header::{IpsecMechanism, SecurityMechanism};
pub use keys::EspKeys;
pub use negotiate::{
    Advertise, Chosen, ListMismatch, LocalParams, NoAcceptableMechanism, Preference, ProtectedPorts,
};
pub use sa::{Direction, Endpoint, SaBundle, SaRole, SecurityAssociation};
pub use spi::{Spi, SpiAllocator};
pub use table::{RemovalReason, SaAction, SaSet, SaSetId, SaState, SaTable, SaTableConfig};
