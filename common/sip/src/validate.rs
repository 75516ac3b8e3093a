//! Request and response checks a UAS or proxy runs after parsing, mapped to the status code to
//! answer with (RFC 3261 §8.2, §16.3; RFC 4475 §3.1.2 and §3.3).
//!
//! [`Message::parse`] only frames a message and splits its header lines; header values are read
//! lazily. These functions parse the headers every element depends on, so a request that passes
//! can be routed without further syntax errors surfacing midway.

use crate::header::{CSeq, Contact, NameAddr, Via};
use crate::{Error, HeaderName, Message, StatusCode, Uri};

/// Why a request is refused: the status code to answer with and the underlying error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 400, 416, 505...
    pub status: StatusCode,
    /// What was wrong.
    pub error: Error,
}

impl From<Error> for Rejection {
    fn from(error: Error) -> Self {
        Self {
            status: error.status_code(),
            error,
        }
    }
}

/// Checks a request's mandatory headers and Request-URI (RFC 3261 §8.1.1, §8.2.1, §8.2.2.1):
///
/// - Request-URI parses; a scheme other than sip/sips/tel gives 416 (RFC 4475 §3.3.2); a SIP
///   Request-URI with headers gives 400 (§3.1.2.11);
/// - To, From, Call-ID, CSeq present exactly once and well-formed (§3.3.1, §3.3.8); CSeq below
///   2³¹ and with the request's method (§3.1.2.4, §3.1.2.17); To/From display names are tokens
///   or quoted strings (§3.1.2.6, §3.1.2.15) and `<...>` has no inner spaces (§3.1.2.14);
/// - every Via value parses (§3.1.2.1); Max-Forwards, when present, is one value 0–255;
/// - Contact values parse, with `?` only inside `<...>` (§3.1.2.13), expires in range;
/// - Expires in range; Date, when present, in GMT (§3.1.2.12).
///
/// Max-Forwards may be absent (RFC 2543 peers, RFC 4475 §3.4.1). Require and Proxy-Require are
/// the caller's business (420), as is the method (405/501).
pub fn check_request(msg: &Message) -> Result<(), Rejection> {
    let method = msg.method().ok_or(Error::WrongKind {
        expected: "request",
    })?;
    let uri = msg.request_uri_str().ok_or(Error::StartLine)?;
    match Uri::parse(uri).map_err(|_| Error::StartLine)? {
        Uri::Sip(u) if u.headers.is_some() => return Err(Error::InvalidUri { at: 0 }.into()),
        Uri::Other(_) => return Err(Error::UnsupportedUriScheme.into()),
        _ => {}
    }
    check_common(msg)?;
    let cseq: CSeq = msg.cseq()?;
    if &cseq.method != method
        && !(method == &crate::Method::Ack && cseq.method == crate::Method::Invite)
    {
        return Err(Error::CSeqMethodMismatch.into());
    }
    if msg.fields_named(&HeaderName::MAX_FORWARDS).count() > 1 {
        return Err(Error::DuplicateHeader("Max-Forwards").into());
    }
    msg.max_forwards()?;
    for c in msg.contacts() {
        let c: Contact<'_> = c?;
        c.expires()?;
    }
    msg.expires()?;
    if let Some(date) = msg.header(&HeaderName::DATE)
        && !date.ends_with(b"GMT")
    {
        return Err(Error::InvalidHeader {
            header: "Date",
            at: 0,
        }
        .into());
    }
    Ok(())
}

/// Checks a response's headers that transaction matching and forwarding rely on: Via, From, To,
/// Call-ID and CSeq (RFC 3261 §18.1.2: a malformed response is discarded).
pub fn check_response(msg: &Message) -> Result<(), Error> {
    if msg.is_request() {
        return Err(Error::WrongKind {
            expected: "response",
        });
    }
    check_common(msg)
}

fn check_common(msg: &Message) -> Result<(), Error> {
    for (name, label) in [
        (HeaderName::TO, "To"),
        (HeaderName::FROM, "From"),
        (HeaderName::CALL_ID, "Call-ID"),
        (HeaderName::CSEQ, "CSeq"),
    ] {
        match msg.fields_named(&name).count() {
            0 => return Err(Error::MissingHeader(label)),
            1 => {}
            _ => return Err(Error::DuplicateHeader(label)),
        }
    }
    let _: NameAddr<'_> = msg.to_header()?;
    let _: NameAddr<'_> = msg.from_header()?;
    msg.call_id()?;
    msg.cseq()?;
    let mut vias = 0;
    for v in msg.vias() {
        let _: Via<'_> = v?;
        vias += 1;
    }
    if vias == 0 {
        return Err(Error::MissingHeader("Via"));
    }
    Ok(())
}
