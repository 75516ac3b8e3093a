//! Identities, secrets and per-UE diagnosis events shared by every imslab function.
//!
//! Everything here is a value type validated on construction: once a handler holds an [`Imsi`]
//! or an [`Impu`], it is well-formed. Secrets ([`K`], [`Op`], [`Opc`], [`Ck`], [`Ik`]) print as
//! `K(..)` in `Debug`, have no `Display`, and are zeroized on drop, so they cannot reach a log line
//! by accident.
//!
//! This crate does no I/O.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod event;
mod identity;
mod secret;

pub use error::Error;
pub use event::{Function, Outcome, UeEvent, UeEventSink, UeRef};
pub use identity::{DiameterIdentity, Impi, Impu, Imsi, Msisdn, Realm};
pub use secret::{Amf, Ck, Ik, K, Op, Opc, Rand, Sqn};
