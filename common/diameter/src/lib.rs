//! Diameter base protocol (RFC 6733) and the Cx application (TS 29.229): codec, dictionary,
//! typed Cx commands and the peer state machine.
//!
//! This crate is pure: no sockets, clocks, tasks or randomness. Time and random values come in as
//! arguments, and state machines return what to send instead of sending. The tokio driver,
//! `imslab_diameter_io::DiameterNode`, runs it over TCP, TLS or SCTP.
//!
//! It is not a Diameter agent: it does not relay or redirect requests for other nodes, and it
//! has no accounting or authorization-session state machines (Cx is stateless).
//!
//! # Layers
//!
//! - **Codec**: [`Message`] (a [`Header`] plus [`Avp`]s) with [`Message::decode`] and
//!   [`Message::encode`]; [`Framer`] splits a TCP stream into messages. Decoding never panics, is
//!   bounded by [`Limits`], and keeps unknown AVPs so they re-encode byte-exact. Every RFC 6733
//!   data type has a constructor and an accessor on [`Avp`] (`Avp::u32`/`as_u32`,
//!   `Avp::address`/`as_address`, `as_time`, `as_uri`, `as_identity`, ...).
//! - **Dictionary**: [`dict`] names every base and Cx AVP as an [`AvpDef`] (`dict::PUBLIC_IDENTITY`)
//!   and an [`AvpCode`] const. Command codes, application ids, vendor ids, Result-Codes and
//!   Experimental-Result-Codes are open newtypes in [`codes`]; enumerated values in [`enums`].
//! - **Typed commands**: [`cx`] has one struct per Cx request and answer ([`cx::Uar`]/[`cx::Uaa`],
//!   [`cx::Sar`]/[`cx::Saa`], [`cx::Lir`]/[`cx::Lia`], [`cx::Mar`]/[`cx::Maa`],
//!   [`cx::Rtr`]/[`cx::Rta`], [`cx::Ppr`]/[`cx::Ppa`]) with `decode(&Message)` and
//!   `to_message()`; [`cx::CxRequest::decode`] dispatches any Cx request. [`base`] has CER/CEA,
//!   DWR/DWA and DPR/DPA.
//! - **Errors to answers**: [`Error`] is the one error type ([`CxError`] is the same type). A
//!   request that fails decoding or validation is answered by [`answer::error_answer`], the one
//!   place where errors become Result-Codes: missing AVP 5005 and unknown M-bit AVP 5001 with
//!   Failed-AVP, invalid value 5004, bad header bits 3008, bad AVP bits 3009, bad AVP length
//!   5014, bad message length 5015, unknown application 3007, unknown command 3001.
//! - **Peers**: [`peer::Peer`] is the RFC 6733 §5.6 state machine of one peer (capability
//!   exchange, election, RFC 3539 watchdog, DPR/DPA, reconnection); [`peer::PeerTable`] holds all
//!   peers of a node with realm routing, fail-over, request deadlines and duplicate detection.
//!   Both are driven by `handle_*(now, ..)` calls and drained with `poll_transmit`, `poll_event`
//!   and `poll_timeout`.
//! - **Fuzzing**: [`fuzzing`] holds the entry points of the cargo-fuzz targets.
//!
//! # An HSS answering a MAR
//!
//! ```
//! use imslab_diameter::cx::{CxRequest, CxResult, Maa, SipAuthDataItem};
//! use imslab_diameter::answer::error_answer;
//! use imslab_diameter::{ExperimentalResultCode, Message, Origin};
//!
//! fn answer(req: &Message, origin: &Origin) -> Message {
//!     let mar = match CxRequest::decode(req) {
//!         Ok(CxRequest::Mar(mar)) => mar,
//!         // Another Cx command, or a malformed MAR (missing AVP, bad IMPU...): the error
//!         // carries its Result-Code and Failed-AVP.
//!         Ok(_) => return error_answer(&req.header, &req.avps, &imslab_diameter::Error::UnsupportedCommand {
//!             code: req.header.code, app: req.header.application_id }, origin),
//!         Err(e) => return error_answer(&req.header, &req.avps, &e, origin),
//!     };
//!     if mar.user_name.user() != "001010000000001" {
//!         let unknown = CxResult::experimental(ExperimentalResultCode::DIAMETER_ERROR_USER_UNKNOWN);
//!         return Maa::new(&mar, origin, unknown).to_message();
//!     }
//!     let mut maa = Maa::new(&mar, origin, CxResult::SUCCESS);
//!     maa.sip_number_auth_items = Some(1);
//!     maa.sip_auth_data_items.push(SipAuthDataItem {
//!         authentication_scheme: Some(SipAuthDataItem::SCHEME_AKAV1_MD5.into()),
//!         // RAND || AUTN, XRES, CK and IK from imslab-aka go here.
//!         ..SipAuthDataItem::default()
//!     });
//!     maa.to_message() // the node copies the request's header identifiers into it
//! }
//! # let _ = answer;
//! ```
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
