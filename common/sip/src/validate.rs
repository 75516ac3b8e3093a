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

/// A `400 Bad Request` for a request that does not parse (RFC 3261 §16.3 step 1, §21.4.1), built
/// from its raw Via, From, To, Call-ID and CSeq lines as §8.2.6 copies them; `None` when `raw` is
/// a response, or one of those lines is missing or unreadable, so there is nothing to answer to.
/// Transports call it for [`crate::Frame::Invalid`] on streams.
pub fn answer_unparseable(raw: &[u8]) -> Option<Message> {
    use crate::name::Std;
    let raw = raw.get(crate::message::skip_leading_crlf(raw)..)?;
    let head = raw.get(..memchr::memmem::find(raw, b"\r\n\r\n").unwrap_or(raw.len()))?;
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let start = lines.next()?;
    if start.starts_with(b"SIP/") || !start.contains(&b' ') {
        return None;
    }
    let wanted = [Std::Via, Std::From, Std::To, Std::CallId, Std::CSeq];
    let mut copied: [Vec<u8>; 5] = Default::default();
    let mut current: Option<usize> = None;
    for line in lines {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(slot) = current.and_then(|i| copied.get_mut(i)) {
                slot.extend_from_slice(b" ");
                slot.extend_from_slice(line.trim_ascii_start());
            }
            continue;
        }
        current = memchr::memchr(b':', line)
            .and_then(|c| Std::lookup(line.get(..c)?.trim_ascii()))
            .and_then(|n| wanted.iter().position(|w| *w == n));
        if let Some(slot) = current.and_then(|i| copied.get_mut(i)) {
            if !slot.is_empty() && current != Some(0) {
                // From, To, Call-ID, CSeq occur once; two of them leave nothing safe to copy.
                return None;
            }
            slot.extend_from_slice(line);
            slot.extend_from_slice(b"\r\n");
        }
    }
    if copied.iter().any(Vec::is_empty) {
        return None;
    }
    let mut out = b"SIP/2.0 400 Bad Request\r\n".to_vec();
    for c in &copied {
        out.extend_from_slice(c);
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let mut resp = Message::parse(out).ok()?;
    // The copied lines must themselves be usable to route and match the answer.
    resp.top_via().ok()?;
    resp.cseq().ok()?;
    resp.from_header().ok()?;
    if resp.to_header().ok()?.tag().is_none() {
        // §8.2.6.2: the UAS adds a To tag; derived from the request, so a retransmission gets
        // the same one.
        let tag = raw.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let to = resp.header_str(&HeaderName::TO)?.ok()?.to_owned();
        resp.set_header(HeaderName::TO, format!("{to};tag={tag:x}"))
            .ok()?;
        resp = Message::parse(resp.to_bytes()).ok()?;
    }
    Some(resp)
}

#[cfg(test)]
mod unparseable_tests {
    use super::*;

    const BROKEN: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
        v: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKb1\r\n\
        Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKb0\r\n\
        f: <sip:alice@example.com>;tag=a\r\nt: <sip:bob@example.com>\r\n\
        i: broken-1\r\nCSeq: 7 INVITE\r\nthis line has no colon\r\nl: 0\r\n\r\n";

    #[test]
    fn unparseable_request_with_its_identifying_headers_gets_400_that_copies_them() {
        assert!(Message::parse(BROKEN).is_err());
        let Some(resp) = answer_unparseable(BROKEN) else {
            panic!("no answer")
        };
        assert_eq!(resp.status(), Some(StatusCode::BAD_REQUEST));
        assert_eq!(resp.top_via().unwrap().branch(), Some("z9hG4bKb1"));
        assert_eq!(resp.values(&HeaderName::VIA).count(), 2);
        assert_eq!(resp.header(&HeaderName::CALL_ID), Some(&b"broken-1"[..]));
        assert_eq!(resp.cseq().unwrap().seq, 7);
        let tag = resp.to_header().unwrap().tag().map(str::to_owned);
        assert!(tag.is_some(), "§8.2.6.2: a To tag is added");
        let again = answer_unparseable(BROKEN).unwrap();
        assert_eq!(again.to_header().unwrap().tag().map(str::to_owned), tag);
    }

    #[test]
    fn unparseable_message_without_call_id_or_that_is_a_response_gets_no_answer() {
        let no_call_id = String::from_utf8_lossy(BROKEN).replace("i: broken-1\r\n", "");
        assert!(answer_unparseable(no_call_id.as_bytes()).is_none());
        let response = String::from_utf8_lossy(BROKEN)
            .replace("INVITE sip:bob@example.com SIP/2.0", "SIP/2.0 200 OK");
        assert!(answer_unparseable(response.as_bytes()).is_none());
        assert!(answer_unparseable(b"\x16\x03\x01 garbage").is_none());
    }

    #[test]
    fn a_broken_via_leaves_nothing_to_answer_to() {
        let bad_via = String::from_utf8_lossy(BROKEN).replace(
            "v: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKb1",
            "v: SIP/2.0/TCP ;;;",
        );
        assert!(answer_unparseable(bad_via.as_bytes()).is_none());
    }
}
