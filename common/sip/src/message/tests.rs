use super::*;

const REGISTER: &[u8] = include_bytes!("../../testdata/ims/register.sip");
const INVITE: &[u8] = include_bytes!("../../testdata/ims/invite.sip");

fn parse(b: &'static [u8]) -> Message {
    match Message::parse(Bytes::from_static(b)) {
        Ok(m) => m,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("<non-utf8>")
}

#[test]
fn ims_register_parses_with_compact_forms_mapped_to_canonical_names() {
    let m = parse(REGISTER);
    assert!(m.is_request());
    assert_eq!(m.method(), Some(&Method::Register));
    assert_eq!(
        m.request_uri_str(),
        Some("sip:ims.mnc001.mcc001.3gppnetwork.org")
    );
    assert_eq!(
        m.header(&HeaderName::CALL_ID).map(text),
        Some("3727906561-1@10.45.0.2")
    );
    assert_eq!(m.header(&HeaderName::CONTENT_LENGTH).map(text), Some("0"));
    let raw_names: Vec<&str> = m.fields().map(|f| text(f.raw_name())).collect();
    assert_eq!(raw_names.first().copied(), Some("v"));
    assert_eq!(
        m.values(&HeaderName::VIA).count(),
        2,
        "one compact line holds two Via values"
    );
    assert_eq!(m.values(&HeaderName::SECURITY_CLIENT).count(), 2);
    assert_eq!(m.values(&HeaderName::ALLOW).count(), 11);
    let auth = m.values(&HeaderName::AUTHORIZATION).count();
    assert_eq!(
        auth, 1,
        "Authorization is not a list header; its commas do not split"
    );
    assert!(m.body().is_empty());
}

#[test]
fn unedited_message_serialises_to_the_received_bytes() {
    let m = parse(REGISTER);
    assert_eq!(&m.to_bytes()[..], REGISTER);
    assert_eq!(m.encoded_len(), REGISTER.len());
}

#[test]
fn edited_message_keeps_untouched_lines_byte_exact() {
    let mut m = parse(REGISTER);
    m.push_header(
        HeaderName::new("X-Test").unwrap_or(HeaderName::SUBJECT),
        "1",
    )
    .unwrap_or_default();
    let out = m.to_bytes();
    let expected = [&REGISTER[..REGISTER.len() - 2], b"X-Test: 1\r\n\r\n"].concat();
    assert_eq!(text(&out), text(&expected));
    assert_eq!(out.len(), m.encoded_len());
}

#[test]
fn prepending_via_goes_before_the_first_via_and_popping_removes_only_the_top_value() {
    let mut m = parse(REGISTER);
    m.prepend_header(
        HeaderName::VIA,
        "SIP/2.0/UDP 10.45.0.9:5060;branch=z9hG4bKproxy",
    )
    .unwrap_or_default();
    let vias: Vec<&str> = m.values(&HeaderName::VIA).map(text).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        vias.first().copied(),
        Some("SIP/2.0/UDP 10.45.0.9:5060;branch=z9hG4bKproxy")
    );
    assert_eq!(
        m.pop_first_value(&HeaderName::VIA).as_deref(),
        Some(&b"SIP/2.0/UDP 10.45.0.9:5060;branch=z9hG4bKproxy"[..])
    );
    assert_eq!(
        m.pop_first_value(&HeaderName::VIA).as_deref(),
        Some(&b"SIP/2.0/UDP 10.45.0.2:5060;branch=z9hG4bK3727906593;rport"[..])
    );
    let rest: Vec<&str> = m.values(&HeaderName::VIA).map(text).collect();
    assert_eq!(
        rest,
        vec!["SIP/2.0/UDP 10.45.0.1:5062;received=10.45.0.9;rport=5062;branch=z9hG4bK.ab12cd"]
    );
    let out = m.to_bytes();
    let reparsed = Message::parse(out.clone()).map(|r| r.values(&HeaderName::VIA).count());
    assert_eq!(reparsed, Ok(1));
    assert!(
        text(&out).contains("\r\nv: SIP/2.0/UDP 10.45.0.1:5062;"),
        "compact name kept: {}",
        text(&out)
    );
}

#[test]
fn route_removal_and_request_uri_change_reserialise() {
    let mut m = parse(INVITE);
    assert_eq!(
        m.pop_first_value(&HeaderName::ROUTE).as_deref(),
        Some(&b"<sip:10.45.0.9:5068;lr>"[..])
    );
    m.set_request_uri("sip:+15557654321@example.net;user=phone")
        .unwrap_or_default();
    assert_eq!(m.remove_header(&HeaderName::SECURITY_VERIFY), 1);
    let out = m.to_bytes();
    let r = Message::parse(out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.request_uri_str(),
        Some("sip:+15557654321@example.net;user=phone")
    );
    assert_eq!(r.values(&HeaderName::ROUTE).count(), 1);
    assert!(!r.has_header(&HeaderName::SECURITY_VERIFY));
    assert_eq!(r.body(), m.body());
}

#[test]
fn response_copies_via_from_to_call_id_cseq_and_adds_to_tag() {
    let req = parse(REGISTER);
    let resp = req
        .response(StatusCode::UNAUTHORIZED, Some("abc123"))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = resp.to_bytes();
    let r = Message::parse(out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(r.reason_phrase().map(text), Some("Unauthorized"));
    assert_eq!(r.values(&HeaderName::VIA).count(), 2);
    assert_eq!(
        r.header(&HeaderName::CALL_ID),
        req.header(&HeaderName::CALL_ID)
    );
    assert_eq!(r.header(&HeaderName::CSEQ), req.header(&HeaderName::CSEQ));
    assert_eq!(r.header(&HeaderName::FROM), req.header(&HeaderName::FROM));
    assert_eq!(
        r.to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .as_deref(),
        Some("abc123")
    );
    assert!(!r.has_header(&HeaderName::SECURITY_CLIENT));
    assert_eq!(r.header(&HeaderName::CONTENT_LENGTH), Some(&b"0"[..]));
}

#[test]
fn trying_response_has_no_to_tag() {
    let req = parse(INVITE);
    let r = req
        .response(StatusCode::TRYING, Some("t1"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.to_header().ok().map(|t| t.tag().is_none()), Some(true));
}

#[test]
fn datagram_body_is_cut_at_content_length_and_short_bodies_are_refused() {
    let m = Message::parse(&b"MESSAGE sip:a@b SIP/2.0\r\nl: 2\r\n\r\nhijunk"[..])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.body(), b"hi");
    assert_eq!(
        &m.to_bytes()[..],
        b"MESSAGE sip:a@b SIP/2.0\r\nl: 2\r\n\r\nhi"
    );
    let short = Message::parse(&b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 9\r\n\r\nhi"[..]);
    assert_eq!(
        short.err(),
        Some(Error::BodyTruncated {
            declared: 9,
            available: 2
        })
    );
    let none =
        Message::parse(&b"MESSAGE sip:a@b SIP/2.0\r\n\r\nall of it"[..]).map(|m| m.body().len());
    assert_eq!(none, Ok(9));
}

#[test]
fn folded_header_values_span_their_continuation_lines() {
    let raw =
        b"OPTIONS sip:a@b SIP/2.0\r\nTO :\r\n sip:x@y ;tag=1\r\nSubject: one\r\n  two  \r\n\r\n";
    let m = Message::parse(&raw[..]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.header(&HeaderName::TO).map(text), Some("sip:x@y ;tag=1"));
    assert_eq!(
        m.header(&HeaderName::SUBJECT).map(text),
        Some("one\r\n  two")
    );
    assert_eq!(&m.to_bytes()[..], &raw[..]);
}

#[test]
fn malformed_start_lines_are_refused() {
    for bad in [
        &b"INVITE  sip:a@b SIP/2.0\r\n\r\n"[..],
        b"INVITE sip:a@b; lr SIP/2.0\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0 \r\n\r\n",
        b"INVITE <sip:a@b> SIP/2.0\r\n\r\n",
        b"INVITE sip:a@b\r\n\r\n",
        b"SIP/2.0 2000 OK\r\n\r\n",
        b"SIP/2.0 099 Low\r\n\r\n",
        b"SIP/2.0 4294967301 big\r\n\r\n",
    ] {
        assert!(Message::parse(bad).is_err(), "{}", text(bad));
    }
    assert_eq!(
        Message::parse(&b"OPTIONS sip:a@b SIP/7.0\r\n\r\n"[..]).err(),
        Some(Error::Version)
    );
}

#[test]
fn bare_line_feeds_and_missing_colons_are_refused() {
    assert!(Message::parse(&b"OPTIONS sip:a@b SIP/2.0\nVia: x\r\n\r\n"[..]).is_err());
    assert!(Message::parse(&b"OPTIONS sip:a@b SIP/2.0\r\nVia x\r\n\r\n"[..]).is_err());
    assert!(Message::parse(&b"OPTIONS sip:a@b SIP/2.0\r\nVia: a\rb\r\n\r\n"[..]).is_err());
    assert!(Message::parse(&b"OPTIONS sip:a@b SIP/2.0\r\n\r"[..]).is_err());
}

#[test]
fn limits_bound_size_and_header_count() {
    let big = vec![b'a'; 70_000];
    assert!(matches!(Message::parse(big), Err(Error::TooLarge { .. })));
    let mut many = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
    for _ in 0..300 {
        many.extend_from_slice(b"X: y\r\n");
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(
        Message::parse(many).err(),
        Some(Error::TooManyHeaders { limit: 256 })
    );
}

#[test]
fn header_values_with_line_breaks_cannot_be_inserted() {
    let mut m = parse(REGISTER);
    assert_eq!(
        m.push_header(HeaderName::SUBJECT, "a\r\nVia: evil"),
        Err(Error::ValueInjection)
    );
    assert_eq!(
        m.push_header(HeaderName::SUBJECT, "a\nb"),
        Err(Error::ValueInjection)
    );
    assert_eq!(
        m.push_header(HeaderName::SUBJECT, "folded\r\n value"),
        Ok(())
    );
    assert_eq!(m.set_request_uri("sip:a b"), Err(Error::ValueInjection));
}

#[test]
fn new_request_builds_a_parseable_message() {
    let mut m = Message::new_request(Method::Options, "sip:pcscf.example.com");
    m.push_header(
        HeaderName::VIA,
        "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx",
    )
    .unwrap_or_default();
    m.set_body(Some("text/plain"), "hello").unwrap_or_default();
    let r = Message::parse(m.to_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.body(), b"hello");
    assert_eq!(
        r.header(&HeaderName::CONTENT_TYPE),
        Some(&b"text/plain"[..])
    );
    assert_eq!(r.header(&HeaderName::CONTENT_LENGTH), Some(&b"5"[..]));
}

#[test]
fn debug_output_does_not_print_header_values() {
    let m = parse(include_bytes!("../../testdata/ims/unauthorized.sip"));
    let d = format!("{m:?}");
    assert!(d.contains("WWW-Authenticate"));
    assert!(!d.contains("b40ba9a3"), "{d}");
}

#[test]
fn popping_the_last_route_value_keeps_the_others() {
    let raw = b"INVITE sip:p@x SIP/2.0\r\nRoute: <sip:a;lr>, <sip:b;lr>\r\nRoute: <sip:c>\r\nRoute: <sip:d>, <sip:e>\r\n\r\n";
    let mut m = Message::parse(&raw[..]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        m.pop_last_value(&HeaderName::ROUTE).as_deref(),
        Some(&b"<sip:e>"[..])
    );
    assert_eq!(
        m.pop_last_value(&HeaderName::ROUTE).as_deref(),
        Some(&b"<sip:d>"[..])
    );
    assert_eq!(
        m.pop_last_value(&HeaderName::ROUTE).as_deref(),
        Some(&b"<sip:c>"[..])
    );
    let left: Vec<&str> = m.values(&HeaderName::ROUTE).map(text).collect();
    assert_eq!(left, ["<sip:a;lr>", "<sip:b;lr>"]);
    let r = Message::parse(m.to_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.values(&HeaderName::ROUTE).count(), 2);
}

#[test]
fn list_editing_agrees_with_list_splitting_on_quotes_inside_brackets() {
    let raw =
        b"SIP/2.0 200 OK\r\nRecord-Route: <sip:a\"b;lr>, <sip:c;lr>\r\nVia: \"x,y\" <z>, w\r\n\r\n";
    let mut m = Message::parse(&raw[..]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.values(&HeaderName::RECORD_ROUTE).count(), 2);
    assert_eq!(
        m.pop_last_value(&HeaderName::RECORD_ROUTE).as_deref(),
        Some(&b"<sip:c;lr>"[..])
    );
    assert_eq!(
        m.values(&HeaderName::RECORD_ROUTE)
            .map(text)
            .collect::<Vec<_>>(),
        ["<sip:a\"b;lr>"]
    );
    assert_eq!(
        m.pop_first_value(&HeaderName::VIA).as_deref(),
        Some(&b"\"x,y\" <z>"[..])
    );
    assert_eq!(
        m.values(&HeaderName::VIA).map(text).collect::<Vec<_>>(),
        ["w"]
    );
}
