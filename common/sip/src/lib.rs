//! The SIP layer of imslab: a zero-copy message model, typed IMS headers, RFC 3261 §17
//! transactions and the §16 stateful proxy core.
//!
//! This crate contains no networking code and never reads a clock or a random source: time comes
//! in as `now: Instant` arguments and randomness as seeds, and every state machine returns what
//! to send instead of sending it. The tokio transports (`imslab-sip-io`) drive it; tests drive
//! it on a virtual clock.
//!
//! # Layers and when to use them
//!
//! - **Messages** ([`Message`]). [`Message::parse`] takes one datagram or WebSocket frame;
//!   [`StreamFramer`] cuts messages out of a TCP/TLS byte stream (Content-Length framing,
//!   `Ok(None)` = need more bytes, RFC 5626 CRLF keep-alives). Both enforce [`Limits`]
//!   (64 KiB by default). Header values stay raw until read: [`Message::header`] and
//!   [`Message::values`] give bytes (compact forms such as `v`, `i`, `m` map to their canonical
//!   [`HeaderName`]), the [`header`] accessors ([`Message::top_via`], [`Message::typed`],
//!   [`Message::typed_all`]...) parse on demand. Proxies edit with
//!   [`Message::prepend_header`], [`Message::pop_first_value`], [`Message::set_request_uri`]
//!   and friends, then [`Message::to_bytes`]: untouched fields are written back byte for byte,
//!   unknown headers included. [`Message::response`] builds a response per §8.2.6.
//! - **Validation** ([`validate`]). After parsing, a UAS or proxy runs
//!   [`validate::check_request`]; the returned [`validate::Rejection`] carries the status code
//!   (400, 416, 505...). [`Error::status_code`] is the one mapping from errors to answers.
//! - **URIs** ([`Uri`], [`SipUri`], [`TelUri`], [`NameAddr`]).
//! - **Typed headers** ([`header`]): Via, From/To, Call-ID, CSeq, Contact, Route/Record-Route/
//!   Path/Service-Route and the P-identity headers as [`NameAddr`], digest and AKA credentials
//!   and challenges ([`header::Auth`]), sec-agree ([`header::SecurityMechanism`]), option tags,
//!   Event, Subscription-State, Session-Expires and the IMS P-headers. Each prints back with
//!   `Display`.
//! - **Transactions** ([`transaction`]): the four RFC 3261 §17 state machines and a
//!   [`transaction::TransactionLayer`] that matches messages to them.
//! - **Proxy core** ([`proxy`]): the §16 stateful proxy on top of the transaction layer. A CSCF
//!   receives each new request as a [`proxy::ProxyEvent`] and answers with a
//!   [`proxy::Decision`].
//!
//! # What this crate is not
//!
//! It does not resolve names (RFC 3263), open sockets, or decide routing policy. It has no
//! dialog layer: CSCFs are proxies, and the soft UE builds on the transaction layer directly.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

mod error;
mod framing;
pub mod fuzzing;
pub mod header;
mod message;
mod method;
mod name;
mod params;
pub mod proxy;
mod scan;
mod status;
pub mod transaction;
mod uri;
pub mod validate;

pub use error::Error;
pub use framing::{Frame, StreamFramer};
pub use header::{Contact, NameAddr, TypedHeader, Via};
pub use message::{HeaderField, Limits, Message};
pub use method::Method;
pub use name::HeaderName;
pub use params::{Param, Params};
pub use status::StatusCode;
pub use uri::{AbsoluteUri, Host, SipUri, TelUri, Uri};

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod torture_tests;
