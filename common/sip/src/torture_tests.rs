//! The RFC 4475 torture messages (testdata/rfc4475, named by section): what a parser and a UAS or
//! proxy must do with each.

use bytes::Bytes;

use crate::header::{Auth, Transport};
use crate::validate::{check_request, check_response};
use crate::{Error, HeaderName, Message, Method, StatusCode, Uri};

macro_rules! rfc4475 {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/rfc4475/", $name, ".dat"))
    };
}

fn parse(b: &'static [u8]) -> Message {
    Message::parse(Bytes::from_static(b)).unwrap_or_else(|e| panic!("must parse: {e}"))
}

fn valid_request(b: &'static [u8]) -> Message {
    let m = parse(b);
    assert_eq!(check_request(&m), Ok(()));
    assert_eq!(&m.to_bytes()[..], b, "reserialises byte-exact");
    m
}

fn rejected_with(b: &'static [u8], status: u16) {
    let outcome = Message::parse(Bytes::from_static(b))
        .map_err(|e| e.status_code())
        .and_then(|m| check_request(&m).map_err(|r| r.status));
    assert_eq!(outcome.map_err(|s| s.as_u16()), Err(status));
}

// ---- §3.1.1 valid messages: they parse and pass validation ----

#[test]
fn s3_1_1_1_short_tortuous_invite_is_well_formed() {
    let m = valid_request(rfc4475!("3.1.1.1-wsinv"));
    assert_eq!(
        m.request_uri_str(),
        Some("sip:vivekg@chair-dnrc.example.com;unknownparam")
    );
    let to = m.to_header().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(to.tag(), Some("1918181833n"));
    let from = m.from_header().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        from.display_name_unescaped().as_deref(),
        Some("J Rosenberg \\\"")
    );
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(m.max_forwards(), Ok(Some(68)));
    assert_eq!(m.cseq().map(|c| (c.seq, c.method)), Ok((9, Method::Invite)));
    let vias: Vec<_> = m
        .vias()
        .map(|v| v.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        vias.iter()
            .map(|v| v.branch().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    );
    assert_eq!(vias.get(1).map(|v| &v.transport), Some(&Transport::Tcp));
    let contact = m
        .contacts()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("contact"));
    assert_eq!(
        contact.q().ok().flatten().map(|q| q.thousandths()),
        Some(330)
    );
    assert_eq!(
        contact.addr().map(|a| a.params.value("newparam")),
        Some(Some("newvalue"))
    );
    let unusual = HeaderName::new("UnknownHeaderWithUnusualValue").unwrap_or(HeaderName::SUBJECT);
    assert_eq!(m.header(&unusual), Some(&b";;,,;;,;"[..]));
    assert_eq!(m.header(&HeaderName::SUBJECT), Some(&b""[..]));
    let route = m
        .routes()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("route"));
    assert!(
        route
            .uri
            .as_sip()
            .is_some_and(|u| u.is_loose_route() && u.params.get("unknown-no-value") == Some(None))
    );
    assert_eq!(m.body().len(), 150);
}

#[test]
fn s3_1_1_2_wide_range_of_valid_characters() {
    let m = valid_request(rfc4475!("3.1.1.2-intmeth"));
    assert_eq!(
        m.method().map(Method::as_str),
        Some("!interesting-Method0123456789_*+`.%indeed'~")
    );
    let to = m.to_header().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        to.display_name.as_deref(),
        Some("BEL:\\\x07 NUL:\\\0 DEL:\\\x7f")
    );
    let from = m.from_header().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        from.display_name.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.params.value("fromParam''~+*_!.-%"), Some("работающий"));
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        m.call_id().map(|c| c.to_string()).as_deref(),
        Ok("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    let ext = HeaderName::new("extensionHeader-!.%*+_`'~").unwrap_or(HeaderName::SUBJECT);
    assert_eq!(
        m.header_str(&ext).and_then(Result::ok),
        Some("\u{feff}大停電")
    );
}

#[test]
fn s3_1_1_3_escaped_uri_parts_decode_in_the_application() {
    let m = valid_request(rfc4475!("3.1.1.3-esc01"));
    let Ok(Uri::Sip(ruri)) = Uri::parse(m.request_uri_str().unwrap_or("")) else {
        panic!("R-URI")
    };
    assert_eq!(
        ruri.user_unescaped().as_deref(),
        Some("sips:user@example.com")
    );
    let to = m.to_header().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        to.uri.as_sip().and_then(|u| u.user_unescaped()).as_deref(),
        Some("user")
    );
    let contact = m
        .contacts()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("contact"));
    let uri = contact
        .addr()
        .and_then(|a| a.uri.as_sip())
        .unwrap_or_else(|| panic!("sip contact"));
    assert_eq!(uri.params.value("n%61me"), Some("v%61lue%25%34%31"));
}

#[test]
fn s3_1_1_4_escaped_nulls_are_accepted() {
    let m = valid_request(rfc4475!("3.1.1.4-escnull"));
    assert_eq!(m.contacts().count(), 2);
    let to = m.to_header().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        to.uri.as_sip().and_then(|u| u.user_unescaped()).as_deref(),
        Some("null-\0-null")
    );
}

#[test]
fn s3_1_1_5_percent_that_is_not_an_escape_is_literal() {
    let m = valid_request(rfc4475!("3.1.1.5-esc02"));
    assert!(matches!(m.method(), Some(Method::Other(s)) if &**s == "RE%47IST%45R"));
    assert_eq!(
        m.contacts().count(),
        2,
        "C%6Fntact is an unknown header, not Contact"
    );
    assert_eq!(
        m.top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_owned))
            .as_deref(),
        Some("z9hG4bK209%fzsnel234")
    );
}

#[test]
fn s3_1_1_6_no_space_between_display_name_and_angle_bracket() {
    let m = valid_request(rfc4475!("3.1.1.6-lwsdisp"));
    assert_eq!(
        m.from_header()
            .ok()
            .and_then(|f| f.display_name.map(|d| d.into_owned()))
            .as_deref(),
        Some("caller")
    );
}

#[test]
fn s3_1_1_7_long_values_parse() {
    let m = valid_request(rfc4475!("3.1.1.7-longreq"));
    assert_eq!(m.vias().filter(Result::is_ok).count(), 34);
    assert_eq!(
        m.top_via().map(|v| v.host.to_string()).as_deref(),
        Ok("sip33.example.com")
    );
}

#[test]
fn s3_1_1_8_trailing_datagram_octets_are_discarded() {
    let raw = rfc4475!("3.1.1.8-dblreq");
    let m = parse(raw);
    assert_eq!(check_request(&m), Ok(()));
    assert!(m.body().is_empty());
    let out = m.to_bytes();
    assert!(
        out.len() < raw.len() && !out.windows(6).any(|w| w == b"INVITE"),
        "forwarded request excludes the noise"
    );
}

#[test]
fn s3_1_1_9_semicolon_in_uri_user_part() {
    let m = valid_request(rfc4475!("3.1.1.9-semiuri"));
    let Ok(Uri::Sip(u)) = Uri::parse(m.request_uri_str().unwrap_or("")) else {
        panic!("R-URI")
    };
    assert_eq!(
        u.user_unescaped().as_deref(),
        Some("user;par=u@example.net")
    );
    assert_eq!(m.values(&HeaderName::ACCEPT).count(), 6);
}

#[test]
fn s3_1_1_10_varied_and_unknown_transports() {
    let m = valid_request(rfc4475!("3.1.1.10-transports"));
    let t: Vec<Transport> = m
        .vias()
        .filter_map(Result::ok)
        .map(|v| v.transport)
        .collect();
    assert_eq!(
        t,
        [
            Transport::Udp,
            Transport::Sctp,
            Transport::Tls,
            Transport::Other("UNKNOWN".into()),
            Transport::Tcp
        ]
    );
}

#[test]
fn s3_1_1_11_multipart_body_with_binary_is_framed_by_content_length() {
    let m = valid_request(rfc4475!("3.1.1.11-mpart01"));
    assert_eq!(m.body().len(), 553);
    assert!(m.body().contains(&0));
}

#[test]
fn s3_1_1_12_and_13_unusual_and_empty_reason_phrases() {
    let m = parse(rfc4475!("3.1.1.12-unreason"));
    assert_eq!(check_response(&m), Ok(()));
    let reason = std::str::from_utf8(m.reason_phrase().unwrap_or_default()).unwrap_or("");
    assert_eq!(reason, "= 2**3 * 5**2 но сто девяносто девять - простое");
    let m = parse(rfc4475!("3.1.1.13-noreason"));
    assert_eq!(check_response(&m), Ok(()));
    assert_eq!(m.status(), Some(StatusCode::TRYING));
    assert_eq!(m.reason_phrase(), Some(&b""[..]));
}

// ---- §3.1.2 invalid messages: refused by the parser, or answered 400/505 ----

#[test]
fn s3_1_2_1_extraneous_separators_get_400() {
    rejected_with(rfc4475!("3.1.2.1-badinv01"), 400);
}

#[test]
fn s3_1_2_2_content_length_larger_than_message_gets_400() {
    let r = Message::parse(Bytes::from_static(rfc4475!("3.1.2.2-clerr")));
    assert!(matches!(
        r,
        Err(Error::BodyTruncated { declared: 9999, .. })
    ));
    rejected_with(rfc4475!("3.1.2.2-clerr"), 400);
}

#[test]
fn s3_1_2_3_negative_content_length_gets_400() {
    assert_eq!(
        Message::parse(Bytes::from_static(rfc4475!("3.1.2.3-ncl"))).err(),
        Some(Error::ContentLength)
    );
    rejected_with(rfc4475!("3.1.2.3-ncl"), 400);
}

#[test]
fn s3_1_2_4_overlarge_request_scalars_get_400() {
    rejected_with(rfc4475!("3.1.2.4-scalar02"), 400);
    let m = parse(rfc4475!("3.1.2.4-scalar02"));
    assert!(matches!(m.max_forwards(), Err(Error::OutOfRange { .. })));
    assert!(matches!(m.expires(), Err(Error::OutOfRange { .. })));
}

#[test]
fn s3_1_2_5_overlarge_response_scalars_are_dropped() {
    let m = parse(rfc4475!("3.1.2.5-scalarlg"));
    assert!(matches!(
        check_response(&m),
        Err(Error::OutOfRange { header: "CSeq" })
    ));
}

#[test]
fn s3_1_2_6_to_15_malformed_headers_and_request_lines_get_400() {
    for raw in [
        &rfc4475!("3.1.2.6-quotbal")[..],
        rfc4475!("3.1.2.7-ltgtruri"),
        rfc4475!("3.1.2.8-lwsruri"),
        rfc4475!("3.1.2.9-lwsstart"),
        rfc4475!("3.1.2.10-trws"),
        rfc4475!("3.1.2.11-escruri"),
        rfc4475!("3.1.2.12-baddate"),
        rfc4475!("3.1.2.13-regbadct"),
        rfc4475!("3.1.2.14-badaspec"),
        rfc4475!("3.1.2.15-baddn"),
    ] {
        let outcome = Message::parse(Bytes::from_static(raw))
            .map_err(|e| e.status_code())
            .and_then(|m| check_request(&m).map_err(|r| r.status));
        assert_eq!(
            outcome,
            Err(StatusCode::BAD_REQUEST),
            "{}",
            String::from_utf8_lossy(raw.get(..40).unwrap_or_default())
        );
    }
}

#[test]
fn s3_1_2_7_to_10_request_line_errors_are_caught_by_the_parser() {
    for raw in [
        &rfc4475!("3.1.2.7-ltgtruri")[..],
        rfc4475!("3.1.2.8-lwsruri"),
        rfc4475!("3.1.2.9-lwsstart"),
        rfc4475!("3.1.2.10-trws"),
    ] {
        assert_eq!(
            Message::parse(Bytes::from_static(raw)).err(),
            Some(Error::StartLine)
        );
    }
}

#[test]
fn s3_1_2_16_unknown_version_gets_505() {
    rejected_with(rfc4475!("3.1.2.16-badvers"), 505);
}

#[test]
fn s3_1_2_17_and_18_cseq_method_mismatch_gets_400() {
    rejected_with(rfc4475!("3.1.2.17-mismatch01"), 400);
    rejected_with(rfc4475!("3.1.2.18-mismatch02"), 400);
}

#[test]
fn s3_1_2_19_overlarge_status_code_is_refused() {
    assert_eq!(
        Message::parse(Bytes::from_static(rfc4475!("3.1.2.19-bigcode"))).err(),
        Some(Error::StatusCode)
    );
}

// ---- §3.2 transaction layer, §3.3 application layer, §3.4 backwards compatibility ----

#[test]
fn s3_2_1_bare_magic_cookie_is_not_an_rfc3261_branch() {
    let m = valid_request(rfc4475!("3.2.1-badbranch"));
    assert_eq!(m.top_via().map(|v| v.has_rfc3261_branch()), Ok(false));
}

#[test]
fn s3_3_1_missing_required_headers_get_400() {
    let m = parse(rfc4475!("3.3.1-insuf"));
    assert!(matches!(
        check_request(&m).map_err(|r| (r.status, r.error)),
        Err((StatusCode::BAD_REQUEST, Error::MissingHeader(_)))
    ));
}

#[test]
fn s3_3_2_and_3_unknown_request_uri_schemes_get_416() {
    rejected_with(rfc4475!("3.3.2-unkscm"), 416);
    rejected_with(rfc4475!("3.3.3-novelsc"), 416);
}

#[test]
fn s3_3_4_unknown_schemes_in_headers_parse() {
    let m = valid_request(rfc4475!("3.3.4-unksm2"));
    assert!(matches!(m.to_header().map(|t| t.uri), Ok(Uri::Other(_))));
}

#[test]
fn s3_3_5_to_7_application_level_extensions_parse() {
    let m = valid_request(rfc4475!("3.3.5-bext01"));
    let tags: Vec<String> = m
        .option_tags(&HeaderName::PROXY_REQUIRE)
        .filter_map(Result::ok)
        .map(|t| t.to_string())
        .collect();
    assert_eq!(tags, ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]);
    valid_request(rfc4475!("3.3.6-invut"));
    let m = valid_request(rfc4475!("3.3.7-regaut01"));
    let auth: Option<Auth<'_>> = m.typed(&HeaderName::AUTHORIZATION).and_then(Result::ok);
    assert!(auth.is_some_and(|a| !a.is_digest()));
}

#[test]
fn s3_3_8_multiple_values_in_single_value_headers_get_400() {
    // The RFC's own message declares l: 154 for a 152-octet body, which alone gets a 400.
    rejected_with(rfc4475!("3.3.8-multi01"), 400);
    let raw = rfc4475!("3.3.8-multi01");
    let fixed = String::from_utf8_lossy(raw).replace("l: 154", "l: 152");
    let m = Message::parse(fixed.into_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        check_request(&m).map_err(|r| r.error),
        Err(Error::DuplicateHeader(_))
    ));
}

#[test]
fn s3_3_9_multiple_content_lengths_get_400() {
    assert_eq!(
        Message::parse(Bytes::from_static(rfc4475!("3.3.9-mcl01"))).err(),
        Some(Error::ContentLength)
    );
}

#[test]
fn s3_3_10_to_15_parse() {
    let m = parse(rfc4475!("3.3.10-bcast"));
    assert_eq!(check_response(&m), Ok(()));
    let m = valid_request(rfc4475!("3.3.11-zeromf"));
    assert_eq!(m.max_forwards(), Ok(Some(0)));
    let m = valid_request(rfc4475!("3.3.12-cparam01"));
    let c = m
        .contacts()
        .next()
        .and_then(Result::ok)
        .and_then(|c| c.addr().cloned())
        .unwrap_or_else(|| panic!("contact"));
    assert!(c.params.contains("unknownparam"));
    let m = valid_request(rfc4475!("3.3.13-cparam02"));
    let c = m
        .contacts()
        .next()
        .and_then(Result::ok)
        .and_then(|c| c.addr().cloned())
        .unwrap_or_else(|| panic!("contact"));
    assert!(
        c.params.is_empty()
            && c.uri
                .as_sip()
                .is_some_and(|u| u.params.contains("unknownparam"))
    );
    let m = valid_request(rfc4475!("3.3.14-regescrt"));
    assert!(
        m.contacts()
            .next()
            .and_then(Result::ok)
            .and_then(|c| c
                .addr()
                .and_then(|a| a.uri.as_sip().map(|u| u.headers.is_some())))
            .unwrap_or(false)
    );
    valid_request(rfc4475!("3.3.15-sdp01"));
}

#[test]
fn s3_4_1_rfc2543_invite_without_content_length_max_forwards_or_branch_parses() {
    let m = valid_request(rfc4475!("3.4.1-inv2543"));
    assert_eq!(m.max_forwards(), Ok(None));
    assert_eq!(m.top_via().map(|v| v.branch().is_none()), Ok(true));
    assert!(m.body().ends_with(b"m=audio 49217 RTP/AVP 0\r\n"));
}
