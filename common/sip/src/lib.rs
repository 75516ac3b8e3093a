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
//! - **URIs** ([`Uri`], [`SipUri`], [`TelUri`], [`NameAddr`]); [`Uri::equivalent`] compares them
//!   by RFC 3261 §19.1.4.
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
//! # Example
//!
//! ```
//! use imslab_sip::header::{Auth, SecurityMechanism};
//! use imslab_sip::{HeaderName, Message, StatusCode};
//!
//! let raw = b"REGISTER sip:ims.example SIP/2.0\r\n\
//!     v: SIP/2.0/UDP 10.45.0.2:5060;branch=z9hG4bK1;rport\r\n\
//!     f: <sip:alice@ims.example>;tag=1\r\nt: <sip:alice@ims.example>\r\n\
//!     i: c1\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n\
//!     Authorization: Digest username=\"alice@ims.example\", realm=\"ims.example\", \
//!     nonce=\"\", uri=\"sip:ims.example\", response=\"\", algorithm=AKAv1-MD5\r\n\
//!     Security-Client: ipsec-3gpp;alg=hmac-sha-1-96;spi-c=1;spi-s=2;port-c=5062;port-s=5064\r\n\
//!     l: 0\r\n\r\n";
//! let msg = Message::parse(&raw[..])?;
//! assert_eq!(msg.top_via()?.branch(), Some("z9hG4bK1"));
//! let auth: Auth<'_> = msg.required(&HeaderName::AUTHORIZATION)?;
//! assert_eq!(auth.response(), Some(""));
//! let sec: SecurityMechanism<'_> = msg.required(&HeaderName::SECURITY_CLIENT)?;
//! assert_eq!(sec.port_s(), Some(5064));
//!
//! // A proxy adds its Via; the other lines are written back exactly as received.
//! let mut fwd = msg.clone();
//! fwd.prepend_header(HeaderName::VIA, "SIP/2.0/UDP 10.45.0.9:5060;branch=z9hG4bK2")?;
//! assert!(fwd.to_bytes().ends_with(b"\r\nl: 0\r\n\r\n"));
//!
//! // A registrar answers (RFC 3261 §8.2.6: Via, From, To + tag, Call-ID, CSeq copied).
//! let challenge = msg.response(StatusCode::UNAUTHORIZED, Some("srv1"))?;
//! assert_eq!(challenge.to_header()?.tag(), Some("srv1"));
//! # Ok::<(), imslab_sip::Error>(())
//! ```
//!
//! # For the transport driver
//!
//! One task per endpoint owns a [`proxy::Proxy`] (or a bare [`transaction::TransactionLayer`]
//! for a UA) and loops:
//!
//! 1. a datagram or WebSocket frame arrives: [`Message::parse`]; on a stream, feed the read
//!    buffer to [`StreamFramer::decode`] until `Ok(None)`, answering [`Frame::Ping`] with
//!    `"\r\n"`. Drop what does not parse (there is nothing to answer it with); close a stream
//!    whose framer returned an error;
//! 2. pass the message with its [`transaction::Peer`] (set `flow` for connections, so
//!    responses and requests back to that UE reuse them, RFC 3261 §18.2.2) to `handle_message`;
//! 3. act on the returned events: send `Transmit` bytes (report failures with
//!    `handle_transport_error`), hand requests and responses to the CSCF logic;
//! 4. sleep until `poll_timeout()`, then call `handle_timeout(now)`.
//!
//! The transaction layer moves requests over 1300 bytes (or within 200 bytes of the path MTU)
//! from UDP to TCP (§18.1.1) when a TCP interface is configured; the driver must open or reuse
//! the TCP connection the `Peer` names, and report a refused connection with
//! `handle_transport_error`, which retries over UDP.
//!
//! # What this crate is not
//!
//! It does not query DNS, open sockets, or decide routing policy: [`locate`] is the RFC 3263
//! procedure with the lookups left to the caller. It has no
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
pub mod locate;
mod message;
mod method;
mod name;
mod params;
pub mod proxy;
mod scan;
mod status;
pub mod transaction;
mod uri;
mod uri_eq;
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
