use bytes::Bytes;

use super::*;
use crate::{Host, Uri};

fn msg(b: &'static [u8]) -> Message {
    Message::parse(Bytes::from_static(b)).unwrap_or_else(|e| panic!("{e}"))
}

fn ok<T>(r: Result<T, Error>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

const REGISTER: &[u8] = include_bytes!("../../testdata/ims/register.sip");
const UNAUTHORIZED: &[u8] = include_bytes!("../../testdata/ims/unauthorized.sip");
const OK: &[u8] = include_bytes!("../../testdata/ims/ok.sip");
const INVITE: &[u8] = include_bytes!("../../testdata/ims/invite.sip");

#[test]
fn via_branch_received_and_rport_are_typed() {
    let m = msg(REGISTER);
    let vias: Vec<Via<'_>> = m.vias().map(ok).collect();
    let [top, second] = vias.as_slice() else {
        panic!("two vias")
    };
    assert_eq!(top.transport, Transport::Udp);
    assert_eq!(top.branch(), Some("z9hG4bK3727906593"));
    assert!(top.has_rfc3261_branch());
    assert_eq!(top.rport(), Some(None));
    assert_eq!(top.port, Some(5060));
    assert_eq!(second.received(), Some("10.45.0.9".parse().unwrap()));
    assert_eq!(second.rport(), Some(Some(5062)));
    assert_eq!(
        top.to_string(),
        "SIP/2.0/UDP 10.45.0.2:5060;branch=z9hG4bK3727906593;rport"
    );
}

#[test]
fn via_with_lws_everywhere_parses() {
    let v = ok(Via::parse_value(
        "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        "Via",
    ));
    assert_eq!(v.transport, Transport::Tcp);
    assert_eq!(v.host, Host::Name("spindle.example.com".into()));
    assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
    let mut v = ok(Via::parse_value(
        "SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKa;rport",
        "Via",
    ));
    v.set_received("2001:db8::1".parse().unwrap());
    v.set_rport(5071);
    assert_eq!(
        v.to_string(),
        "SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKa;rport=5071;received=2001:db8::1"
    );
    assert!(Via::parse_value("SIP/2.0/UDP 192.0.2.15;;,;,,", "Via").is_err());
    assert!(!ok(Via::parse_value("SIP/2.0/UDP h;branch=z9hG4bK", "Via")).has_rfc3261_branch());
}

#[test]
fn ims_aka_authorization_keeps_every_parameter_including_empty_response() {
    let m = msg(REGISTER);
    let a: Auth<'_> = ok(m.required(&HeaderName::AUTHORIZATION));
    assert!(a.is_digest());
    assert_eq!(
        a.username(),
        Some("001010000000001@ims.mnc001.mcc001.3gppnetwork.org")
    );
    assert_eq!(a.response(), Some(""));
    assert_eq!(a.algorithm(), Some(Algorithm::AkaV1Md5));
    assert_eq!(a.auts(), Some("r4bJ8xGOXdK7bY0lTBE="));
    assert_eq!(a.integrity_protected(), Some("no"));
    assert_eq!(a.nc(), Ok(Some(0xff)));
    assert_eq!(a.qop(), Some("auth"));
    assert_eq!(a.cnonce(), Some("0a4f113b"));
    assert_eq!(a.params.len(), 11);
    let printed = a.to_string();
    assert!(printed.contains("response=\"\""), "{printed}");
    assert!(printed.contains("nc=000000ff"), "{printed}");
    let again: Auth<'_> = ok(Auth::parse_value(&printed, "Authorization"));
    assert_eq!(again, a);
}

#[test]
fn challenge_carries_ck_and_ik_and_debug_hides_them() {
    let m = msg(UNAUTHORIZED);
    let c: Auth<'_> = ok(m.required(&HeaderName::WWW_AUTHENTICATE));
    assert_eq!(c.ck(), Some("b40ba9a3c58b2a05bbf0d987b21bf8cb"));
    assert_eq!(c.ik(), Some("f769bcd751044604127672711c6d3441"));
    assert_eq!(c.qop(), Some("auth"));
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("b40ba9a3") && !dbg.contains("f769bcd7"),
        "{dbg}"
    );
    let mut built = Auth::digest();
    built.set("realm", "ims.example");
    built.set("nonce", "bm9uY2U=");
    built.set("algorithm", "AKAv1-MD5");
    built.set_quoted("qop", "auth");
    built.set_nc(1);
    assert_eq!(
        built.to_string(),
        "Digest realm=\"ims.example\", nonce=\"bm9uY2U=\", algorithm=AKAv1-MD5, qop=\"auth\", nc=00000001"
    );
}

#[test]
fn unknown_auth_scheme_and_bad_nc_are_handled() {
    let a = ok(Auth::parse_value(
        "NoOneKnowsThisScheme opaque-data=here",
        "Authorization",
    ));
    assert!(!a.is_digest());
    assert_eq!(a.get("opaque-data"), Some("here"));
    let a = ok(Auth::parse_value("Digest nc=255", "Authorization"));
    assert!(a.nc().is_err());
    assert!(Auth::parse_value("Digest realm=\"unterminated", "Authorization").is_err());
}

#[test]
fn security_client_mechanisms_and_3gpp_parameters_are_typed() {
    let m = msg(REGISTER);
    let mechs: Vec<SecurityMechanism<'_>> =
        m.typed_all(&HeaderName::SECURITY_CLIENT).map(ok).collect();
    assert_eq!(mechs.len(), 2);
    let first = mechs.first().unwrap_or_else(|| panic!("mechanism"));
    assert_eq!(first.mechanism, "ipsec-3gpp");
    assert_eq!(first.alg(), Some("hmac-sha-1-96"));
    assert_eq!(first.ealg(), Some("aes-cbc"));
    assert_eq!(
        (first.spi_c(), first.spi_s()),
        (Some(1_111_111), Some(2_222_222))
    );
    assert_eq!((first.port_c(), first.port_s()), (Some(5062), Some(5064)));
    assert_eq!((first.prot(), first.mode()), (Some("esp"), Some("trans")));
    let unauthorized = msg(UNAUTHORIZED);
    let s: SecurityMechanism<'_> = ok(unauthorized.required(&HeaderName::SECURITY_SERVER));
    assert_eq!(s.q(), Some(QValue::from_thousandths(100)));
    assert!(
        SecurityMechanism::parse_value("ipsec-3gpp;spi-c=notanumber", "Security-Client").is_err()
    );
    let built = SecurityMechanism::new("ipsec-3gpp")
        .with("q", "0.1")
        .with("spi-c", "3333");
    assert_eq!(built.to_string(), "ipsec-3gpp;q=0.1;spi-c=3333");
}

#[test]
fn contact_registration_parameters_are_typed() {
    let m = msg(REGISTER);
    let c: Contact<'_> = ok(m.required(&HeaderName::CONTACT));
    assert_eq!(c.instance(), Some("urn:gsma:imei:35876505-133788-0"));
    assert_eq!(c.reg_id(), Ok(Some(1)));
    assert_eq!(c.expires(), Ok(Some(600_000)));
    let tags: Vec<&str> = c.feature_tags().map(crate::Param::name).collect();
    assert_eq!(tags, vec!["+g.3gpp.icsi-ref", "+g.3gpp.smsip"]);
    assert_eq!(
        ok(Contact::parse_value(" * ", "Contact")),
        Contact::Wildcard
    );
    let q = ok(Contact::parse_value(
        "\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n newvalue ; secondparam ; q = 0.33",
        "Contact",
    ));
    assert_eq!(q.q(), Ok(Some(QValue::from_thousandths(330))));
    assert_eq!(
        q.addr()
            .and_then(NameAddr::display_name_unescaped)
            .as_deref(),
        Some("Quoted string \"\"")
    );
    assert!(
        ok(Contact::parse_value(
            "<sip:u@h>;expires=280297596632815",
            "Contact"
        ))
        .expires()
        .is_err()
    );
}

#[test]
fn name_addr_forms_follow_rfc3261_bracket_rules() {
    let a = ok(NameAddr::parse_header(
        "sip:+19725552222@gw1.example.net;unknownparam",
        "Contact",
    ));
    assert!(
        a.params.contains("unknownparam"),
        "addr-spec parameters belong to the header"
    );
    let b = ok(NameAddr::parse_header(
        "<sip:+19725552222@gw1.example.net;unknownparam>",
        "Contact",
    ));
    assert!(b.params.is_empty());
    assert!(
        b.uri
            .as_sip()
            .is_some_and(|u| u.params.contains("unknownparam"))
    );
    let c = ok(NameAddr::parse_header(
        "caller<sip:caller@example.com>;tag=323",
        "From",
    ));
    assert_eq!(c.display_name.as_deref(), Some("caller"));
    assert_eq!(c.tag(), Some("323"));
    assert_eq!(c.to_string(), "caller <sip:caller@example.com>;tag=323");
    for bad in [
        "\"Mr. J. User <sip:j.user@example.com>",
        "\"Watson, Thomas\" < sip:t.watson@example.org >",
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
    ] {
        assert!(NameAddr::parse_header(bad, "To").is_err(), "{bad}");
    }
    let ok_headers = ok(NameAddr::parse_header(
        "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
        "Contact",
    ));
    assert!(ok_headers.uri.as_sip().is_some_and(|u| u.headers.is_some()));
}

#[test]
fn path_service_route_and_p_associated_uri_are_name_addr_lists() {
    let m = msg(OK);
    let path: NameAddr<'_> = ok(m.required(&HeaderName::PATH));
    assert!(path.uri.as_sip().is_some_and(|u| u.is_loose_route()));
    let sr: NameAddr<'_> = ok(m.required(&HeaderName::SERVICE_ROUTE));
    assert_eq!(sr.uri.as_sip().and_then(|u| u.port), Some(6060));
    let pau: Vec<NameAddr<'_>> = m.typed_all(&HeaderName::P_ASSOCIATED_URI).map(ok).collect();
    assert_eq!(pau.len(), 3);
    assert!(matches!(pau.get(1).map(|a| &a.uri), Some(Uri::Tel(t)) if t.number == "+15551234567"));
    assert_eq!(
        pau.get(2).map(ToString::to_string).as_deref(),
        Some("<sip:+15551234567@ims.mnc001.mcc001.3gppnetwork.org;user=phone>")
    );
}

#[test]
fn invite_ims_headers_are_typed() {
    let m = msg(INVITE);
    let ppi: NameAddr<'_> = ok(m.required(&HeaderName::P_PREFERRED_IDENTITY));
    assert_eq!(
        ppi.uri.as_sip().and_then(|u| u.user.as_deref()),
        Some("001010000000001")
    );
    let pani: PAccessNetworkInfo<'_> = ok(m.required(&HeaderName::P_ACCESS_NETWORK_INFO));
    assert_eq!(pani.access_type, "3GPP-E-UTRAN-FDD");
    assert_eq!(pani.cell_id(), Some("00101000100019"));
    let se: SessionExpires<'_> = ok(m.required(&HeaderName::SESSION_EXPIRES));
    assert_eq!((se.delta, se.refresher()), (1800, Some("uac")));
    let accept: Vec<MediaType<'_>> = m.typed_all(&HeaderName::ACCEPT).map(ok).collect();
    assert!(accept.first().is_some_and(|a| a.is("application", "sdp")));
    let allow: Vec<crate::Method> = m.typed_all(&HeaderName::ALLOW).map(ok).collect();
    assert!(allow.contains(&crate::Method::Prack));
    let req: Vec<String> = m
        .option_tags(&HeaderName::SUPPORTED)
        .map(|t| ok(t).to_string())
        .collect();
    assert_eq!(req, vec!["100rel", "timer", "precondition"]);
    let routes: Vec<NameAddr<'_>> = m.routes().map(ok).collect();
    assert_eq!(routes.len(), 2);
    assert_eq!(ok(m.cseq()).to_string(), "1 INVITE");
    assert_eq!(ok(m.max_forwards()), Some(70));
    assert!(matches!(ok(m.to_header()).uri, Uri::Tel(_)));
}

#[test]
fn p_headers_and_event_headers_parse_and_print_back() {
    let pcv = ok(PChargingVector::parse_value(
        "icid-value=1234bc9876e; icid-generated-at=192.0.6.8; orig-ioi=home1.net",
        "P-Charging-Vector",
    ));
    assert_eq!(pcv.icid_value(), Some("1234bc9876e"));
    assert_eq!(pcv.orig_ioi(), Some("home1.net"));
    assert_eq!(
        pcv.to_string(),
        "icid-value=1234bc9876e;icid-generated-at=192.0.6.8;orig-ioi=home1.net"
    );
    assert!(PChargingVector::parse_value("orig-ioi=x", "P-Charging-Vector").is_err());
    let vn = ok(PVisitedNetworkId::parse_value(
        "\"Visited network number 1\"",
        "P-Visited-Network-ID",
    ));
    assert_eq!(
        (vn.value.as_ref(), vn.quoted),
        ("Visited network number 1", true)
    );
    let vn = ok(PVisitedNetworkId::parse_value(
        "other.net;x=1",
        "P-Visited-Network-ID",
    ));
    assert_eq!(vn.to_string(), "other.net;x=1");
    let ev = ok(Event::parse_value("reg;id=7", "Event"));
    assert_eq!((ev.package.as_ref(), ev.id()), ("reg", Some("7")));
    let ss = ok(SubscriptionState::parse_value(
        "terminated;reason=timeout;retry-after=30",
        "Subscription-State",
    ));
    assert_eq!(
        (ss.state.as_ref(), ss.reason(), ss.retry_after()),
        ("terminated", Some("timeout"), Ok(Some(30)))
    );
    let pai = ok(NameAddr::parse_header(
        "\"Alice\" <sip:alice@ims.example>",
        "P-Asserted-Identity",
    ));
    assert_eq!(pai.to_string(), "\"Alice\" <sip:alice@ims.example>");
    let cpi = ok(NameAddr::parse_header(
        "<sip:+15557654321@ims.example;user=phone>",
        "P-Called-Party-ID",
    ));
    assert!(
        cpi.uri
            .as_sip()
            .is_some_and(|u| u.params.value("user") == Some("phone"))
    );
}

#[test]
fn cseq_and_numeric_headers_enforce_ranges() {
    assert!(matches!(
        CSeq::parse_value("36893488147419103232 REGISTER", "CSeq"),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        CSeq::parse_value("2147483648 INVITE", "CSeq"),
        Err(Error::OutOfRange { .. })
    ));
    assert_eq!(ok(CSeq::parse_value("0009\r\n  INVITE", "CSeq")).seq, 9);
    assert!(CSeq::parse_value("1 INVITE junk", "CSeq").is_err());
    assert_eq!(QValue::parse("1.000").map(QValue::thousandths), Ok(1000));
    assert!(QValue::parse("1.5").is_err());
    assert_eq!(QValue::from_thousandths(330).to_string(), "0.33");
}

#[test]
fn typed_values_can_outlive_the_message() {
    let owned: Via<'static> = {
        let m = msg(REGISTER);
        ok(m.top_via()).into_owned()
    };
    assert_eq!(owned.branch(), Some("z9hG4bK3727906593"));
}
