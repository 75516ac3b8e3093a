//! The soft UE: a SIP user agent on the RFC 3261 transaction layer with a USIM, IMS AKA,
//! security agreement and userspace ESP, reg-event, calls, MESSAGE/SMS and OPTIONS.
//!
//! [`UeCore`] is pure (messages and time in, [`Output`]s out); [`driver`] runs it on tokio
//! with UDP/TCP sockets from `imslab-sip-io` and ESP from [`esp`].

pub mod call;
pub mod config;
pub mod core;
pub mod driver;
pub mod esp;
pub mod ids;
pub mod profile;
pub mod reginfo;
mod register;
pub mod sdp;
pub mod sms;

pub use call::{CallOptions, CallState, MIN_SE, Rejection, Role, SessionTimer};
pub use config::{
    AuthHint, Credentials, IpsecSettings, OperatorKey, UeConfig, UePorts, UeTransport,
};
pub use core::{Event, FLOW_PROTECTED, Link, Output, Purpose, UeCore};
pub use driver::UeHandle;
pub use esp::{EspHub, EspHubs};
pub use profile::Profile;
pub use register::SaSet;
