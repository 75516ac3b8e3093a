//! Diameter base protocol (RFC 6733) and the Cx application (TS 29.229): codec, dictionary,
//! typed Cx commands and the peer state machine.
//!
//! This crate is pure: no sockets, clocks, tasks or randomness. Time and random values come in as
//! arguments, and state machines return what to send instead of sending. The tokio drivers live
//! in `imslab-diameter-io`.
//!
//! # Layers
//!
//! - **Codec**: [`Message`] (a [`Header`] plus [`Avp`]s) with [`Message::decode`] and
//!   [`Message::encode`]; [`Framer`] splits a TCP stream into messages. Decoding never panics, is
//!   bounded by [`Limits`], and keeps unknown AVPs so they re-encode byte-exact.
//! - **Dictionary**: [`dict`] names every base and Cx AVP as an [`AvpDef`] (`dict::PUBLIC_IDENTITY`)
//!   and an [`AvpCode`] const. Command codes, application ids, vendor ids and result codes are
//!   open newtypes in [`codes`].
//! - **Typed commands**: [`cx`] has one struct per Cx request and answer (`cx::Mar`,
//!   `cx::Maa`, ...) with `decode(&Message)` and `to_message()`; [`base`] has CER/CEA, DWR/DWA
//!   and DPR/DPA.
//! - **Errors to answers**: [`Error`] is the one error type. A request that fails decoding or
//!   validation is answered by [`answer::error_answer`], the one place where errors become
//!   Result-Codes (5005 with Failed-AVP for a missing AVP, 3008 for bad header bits, ...).
//! - **Peers**: [`peer::Peer`] is the RFC 6733 §5.6 state machine of one peer (capability
//!   exchange, election, RFC 3539 watchdog, DPR/DPA, reconnection); [`peer::PeerTable`] holds all
//!   peers of a node with realm routing, fail-over, request deadlines and duplicate detection.
//!   Both are driven by `handle_*(now, ..)` calls and drained with `poll_transmit`, `poll_event`
//!   and `poll_timeout`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod macros;

pub mod answer;
pub mod avp;
pub mod base;
pub mod codes;
pub mod cx;
pub mod dict;
pub mod enums;
mod error;
pub mod framer;
pub mod fuzzing;
pub mod header;
pub mod message;
pub mod peer;
mod typed;
pub mod types;

pub use answer::Origin;
pub use avp::{Avp, AvpData, AvpFlags, Limits, Octets};
pub use codes::{ApplicationId, CommandCode, ExperimentalResultCode, ResultCode, VendorId};
pub use dict::{AvpCode, AvpDef, AvpType};
pub use error::Error;
/// The error typed Cx decoding returns: the crate's one error type.
pub type CxError = Error;
pub use framer::Framer;
pub use header::{CommandFlags, Header};
pub use message::Message;
pub use types::{Address, DiameterUri, Time};
