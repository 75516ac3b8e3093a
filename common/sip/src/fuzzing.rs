//! Fuzzing entry points: the cargo-fuzz targets `sip_message` and `sip_stream` call these, and the
//! crate's tests replay the committed seed corpora (`fuzz/corpus/sip_*`) and random inputs through
//! them. Each panics only when a property is violated; malformed input is simply refused.
// Panicking on a violated property is how a fuzz target reports it.
#![allow(clippy::panic)]

use bytes::{Bytes, BytesMut};

use crate::header::{Auth, CSeq, Contact, NameAddr, SecurityMechanism, TypedHeader, Via};
use crate::{Frame, HeaderName, Limits, Message, StreamFramer, validate};

/// Datagram parsing: decode → encode → decode.
///
/// - an accepted message re-encodes to exactly the bytes it was parsed from;
/// - typed Via, From, To, Contact, Route, CSeq, Authorization and Security-Client values that
///   parse print back to text that parses to an equal value;
/// - a proxy edit (prepend Via, pop the top Via and Route and the last Record-Route, change
///   the Request-URI) yields a message that parses again with the expected header counts.
pub fn message(data: &[u8]) {
    let Ok(msg) = Message::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let encoded = msg.to_bytes();
    let again = Message::parse(encoded.clone())
        .unwrap_or_else(|e| panic!("re-encoded message refused: {e}"));
    assert_eq!(again.to_bytes(), encoded);
    assert_eq!(again.field_count(), msg.field_count());
    assert_eq!(again.body(), msg.body());

    let _ = if msg.is_request() {
        validate::check_request(&msg).map_err(|r| r.error)
    } else {
        validate::check_response(&msg)
    };
    round_trip!(msg, HeaderName::VIA, Via<'_>);
    round_trip!(msg, HeaderName::FROM, NameAddr<'_>);
    round_trip!(msg, HeaderName::TO, NameAddr<'_>);
    round_trip!(msg, HeaderName::ROUTE, NameAddr<'_>);
    round_trip!(msg, HeaderName::CONTACT, Contact<'_>);
    round_trip!(msg, HeaderName::CSEQ, CSeq);
    round_trip!(msg, HeaderName::AUTHORIZATION, Auth<'_>);
    round_trip!(msg, HeaderName::SECURITY_CLIENT, SecurityMechanism<'_>);

    let mut edited = msg.clone();
    let vias = msg.values(&HeaderName::VIA).count();
    let routes = msg.values(&HeaderName::ROUTE).count();
    let record_routes = msg.values(&HeaderName::RECORD_ROUTE).count();
    let _ = edited.prepend_header(HeaderName::VIA, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfuzz");
    let _ = edited.pop_first_value(&HeaderName::VIA);
    let _ = edited.pop_first_value(&HeaderName::VIA);
    let _ = edited.pop_first_value(&HeaderName::ROUTE);
    let _ = edited.pop_last_value(&HeaderName::RECORD_ROUTE);
    if msg.is_request() {
        let _ = edited.set_request_uri("sip:next-hop.example.com;lr");
    }
    let out = edited.to_bytes();
    assert_eq!(out.len(), edited.encoded_len());
    let reparsed = Message::parse(out).unwrap_or_else(|e| panic!("edited message refused: {e}"));
    assert_eq!(
        reparsed.values(&HeaderName::VIA).count(),
        vias.saturating_sub(1)
    );
    assert_eq!(
        reparsed.values(&HeaderName::ROUTE).count(),
        routes.saturating_sub(1)
    );
    assert_eq!(
        reparsed.values(&HeaderName::RECORD_ROUTE).count(),
        record_routes.saturating_sub(1)
    );
    assert_eq!(reparsed.body(), msg.body());
}

/// Stream framing: feeding the input in chunks (sizes taken from the input itself) yields the
/// same frames as feeding it at once, and every message frame re-encodes to its bytes.
pub fn stream(data: &[u8]) {
    let limits = Limits {
        max_message: 4096,
        max_headers: 64,
    };
    let whole = frames(data, &[usize::MAX], limits);
    let sizes: Vec<usize> = data
        .iter()
        .take(16)
        .map(|&b| usize::from(b % 61) + 1)
        .collect();
    let chunked = frames(data, &sizes, limits);
    assert_eq!(whole, chunked);
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Message(Bytes),
    Ping,
    Pong,
    Invalid(Bytes),
    Error,
}

fn frames(data: &[u8], sizes: &[usize], limits: Limits) -> Vec<Seen> {
    let mut framer = StreamFramer::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    loop {
        loop {
            match framer.decode(&mut buf) {
                Ok(Some(Frame::Message(m))) => {
                    let b = m.to_bytes();
                    assert!(Message::parse(b.clone()).is_ok());
                    out.push(Seen::Message(b));
                }
                Ok(Some(Frame::Ping)) => out.push(Seen::Ping),
                Ok(Some(Frame::Pong)) => out.push(Seen::Pong),
                Ok(Some(Frame::Invalid { raw, .. })) => {
                    assert!(Message::parse_with(raw.clone(), &limits).is_err());
                    // Answering must never panic either.
                    let _ = validate::answer_unparseable(&raw);
                    out.push(Seen::Invalid(raw));
                }
                Ok(None) => break,
                Err(_) => {
                    out.push(Seen::Error);
                    return out;
                }
            }
        }
        if rest.is_empty() {
            return out;
        }
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(usize::MAX)
            .min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        buf.extend_from_slice(chunk);
        rest = tail;
        i += 1;
    }
}

/// Typed values that parse print back to text that parses to an equal value.
macro_rules! round_trip {
    ($msg:expr, $name:expr, $($t:tt)+) => {
        for value in $msg.typed_all::<$($t)+>(&$name).filter_map(Result::ok) {
            let printed = value.to_string();
            let reparsed = <$($t)+ as TypedHeader<'_>>::parse_value(&printed, "fuzz").unwrap_or_else(|e| {
                panic!("{} printed as {printed:?} does not parse back: {e}", $name)
            });
            assert!(reparsed.normalised_eq(&value), "{}: {value:?} printed as {printed:?} reparsed as {reparsed:?}", $name);
        }
    };
}
use round_trip;

/// Equality up to what printing legitimately normalises (angle brackets around an addr-spec).
trait Normalise {
    fn normalised_eq(&self, other: &Self) -> bool;
}

impl Normalise for NameAddr<'_> {
    fn normalised_eq(&self, other: &Self) -> bool {
        self.display_name == other.display_name
            && self.display_quoted == other.display_quoted
            && self.uri == other.uri
            && self.params == other.params
    }
}

impl Normalise for Contact<'_> {
    fn normalised_eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Contact::Addr(a), Contact::Addr(b)) => a.normalised_eq(b),
            (a, b) => a == b,
        }
    }
}

macro_rules! plain_eq {
    ($($t:ty),*) => {$(
        impl Normalise for $t {
            fn normalised_eq(&self, other: &Self) -> bool {
                self == other
            }
        }
    )*};
}

plain_eq!(Via<'_>, CSeq, Auth<'_>, SecurityMechanism<'_>);

/// URI comparison (RFC 3261 §19.1.4): the input is two URIs separated by a newline. Each URI
/// that parses is equivalent to itself and to its printed form; equivalence is symmetric; two
/// equivalent SIP URIs share a [`crate::Uri::comparison_key`].
pub fn uri_equivalence(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    let (Ok(ua), ub) = (crate::Uri::parse(a), crate::Uri::parse(b)) else {
        return;
    };
    assert!(ua.equivalent(&ua), "reflexive: {a}");
    let printed = ua.to_string();
    if let Ok(again) = crate::Uri::parse(&printed) {
        assert!(ua.equivalent(&again), "{a} vs its print {printed}");
    }
    if let Ok(ub) = ub {
        assert_eq!(
            ua.equivalent(&ub),
            ub.equivalent(&ua),
            "symmetric: {a} / {b}"
        );
        if ua.equivalent(&ub) && matches!(ua, crate::Uri::Sip(_)) {
            assert_eq!(ua.comparison_key(), ub.comparison_key(), "{a} / {b}");
        }
    }
}
