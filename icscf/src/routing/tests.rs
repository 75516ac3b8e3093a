use imslab_diameter::cx::{Lir, ServerCapabilities, Uaa, Uar};
use imslab_diameter::enums::UserAuthorizationType;
use imslab_diameter::{ExperimentalResultCode as Exp, ResultCode};
use imslab_sip::proxy::Decision;

use super::*;

const DOMAIN: &str = "ims.mnc001.mcc001.3gppnetwork.org";

fn settings() -> Settings {
    let cfg = imslab_config::IcscfConfig {
        scscfs: vec![
            imslab_config::ScscfEntry {
                uri: "sip:scscf1.ims.example:6060".into(),
                address: Some("127.0.0.1:6060".parse().expect("addr")),
                capabilities: vec![1, 2],
            },
            imslab_config::ScscfEntry {
                uri: "sip:scscf2.ims.example:6070".into(),
                address: Some("127.0.0.1:6070".parse().expect("addr")),
                capabilities: vec![1, 2, 3, 4],
            },
            imslab_config::ScscfEntry {
                uri: "sip:127.0.0.1:6080".into(),
                address: None,
                capabilities: vec![5],
            },
        ],
        ..Default::default()
    };
    Settings::from_config(
        &cfg,
        &Realm::new(DOMAIN).expect("realm"),
        "hss.ims.mnc001.mcc001.3gppnetwork.org",
    )
    .expect("settings")
}

fn register(extra: &str, contact: &str) -> Message {
    Message::parse(
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
             Max-Forwards: 69\r\n\
             From: <sip:001010000000001@{DOMAIN}>;tag=1\r\n\
             To: <sip:001010000000001@{DOMAIN}>\r\n\
             Call-ID: c1\r\nCSeq: 1 REGISTER\r\n\
             Contact: {contact}\r\n{extra}Content-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    )
    .expect("parses")
}

fn uar() -> Uar {
    uar_for(
        &register("", "<sip:ue@10.0.0.1>;expires=600"),
        &settings(),
        "s;1".into(),
    )
    .expect("uar")
}

fn uaa(result: CxResult) -> Uaa {
    Uaa::new(&uar(), &settings().origin, result)
}

#[test]
fn uar_carries_identities_visited_network_and_authorization_type() {
    let m = register(
        "Authorization: Digest username=\"001010000000001@ims.mnc001.mcc001.3gppnetwork.org\", realm=\"x\", nonce=\"\", uri=\"sip:x\", response=\"\"\r\n\
         P-Visited-Network-ID: \"visited.example.net\"\r\n",
        "<sip:ue@10.0.0.1>;expires=600",
    );
    let u = uar_for(&m, &settings(), "s;1".into()).expect("uar");
    assert_eq!(u.user_name.as_str(), format!("001010000000001@{DOMAIN}"));
    assert_eq!(
        u.public_identity.as_str(),
        format!("sip:001010000000001@{DOMAIN}")
    );
    assert_eq!(&u.visited_network_identifier[..], b"visited.example.net");
    assert_eq!(
        u.user_authorization_type,
        Some(UserAuthorizationType::REGISTRATION)
    );

    let dereg = register("Expires: 0\r\n", "<sip:ue@10.0.0.1>");
    let u = uar_for(&dereg, &settings(), "s;2".into()).expect("uar");
    assert_eq!(
        u.user_authorization_type,
        Some(UserAuthorizationType::DE_REGISTRATION)
    );
    assert_eq!(
        &u.visited_network_identifier[..],
        DOMAIN.as_bytes(),
        "home by default"
    );
}

#[test]
fn server_name_in_the_uaa_wins() {
    let mut a = uaa(CxResult::experimental(
        Exp::DIAMETER_SUBSEQUENT_REGISTRATION,
    ));
    a.server_name = Some("sip:scscf2.ims.example:6070".into());
    let sel = select_for_register(&a, &settings()).expect("selected");
    assert_eq!(sel.uri, "sip:scscf2.ims.example:6070");
    assert_eq!(
        sel.destination.addr,
        "127.0.0.1:6070".parse().expect("addr")
    );
}

#[test]
fn capabilities_pick_the_s_cscf_with_all_mandatory_and_most_optional() {
    let mut a = uaa(CxResult::experimental(Exp::DIAMETER_FIRST_REGISTRATION));
    a.server_capabilities = Some(ServerCapabilities {
        mandatory: vec![1],
        optional: vec![3, 4],
        ..ServerCapabilities::default()
    });
    let sel = select_for_register(&a, &settings()).expect("selected");
    assert_eq!(sel.uri, "sip:scscf2.ims.example:6070");

    a.server_capabilities = Some(ServerCapabilities {
        mandatory: vec![5],
        ..ServerCapabilities::default()
    });
    let sel = select_for_register(&a, &settings()).expect("selected");
    assert_eq!(
        sel.destination.addr,
        "127.0.0.1:6080".parse().expect("addr"),
        "IP URI"
    );

    a.server_capabilities = Some(ServerCapabilities {
        mandatory: vec![9],
        ..ServerCapabilities::default()
    });
    let r = select_for_register(&a, &settings()).expect_err("nobody qualifies");
    assert_eq!(r.status, StatusCode::BUSY_EVERYWHERE);

    a.server_capabilities = Some(ServerCapabilities {
        mandatory: vec![1],
        server_names: vec!["sip:scscf1.ims.example:6060".into()],
        ..ServerCapabilities::default()
    });
    let sel = select_for_register(&a, &settings()).expect("selected");
    assert_eq!(
        sel.uri, "sip:scscf1.ims.example:6060",
        "a named, qualifying S-CSCF wins"
    );
}

#[test]
fn uaa_refusals_map_to_sip_answers() {
    let cases = [
        (
            CxResult::experimental(Exp::DIAMETER_ERROR_USER_UNKNOWN),
            404,
        ),
        (
            CxResult::experimental(Exp::DIAMETER_ERROR_IDENTITIES_DONT_MATCH),
            403,
        ),
        (
            CxResult::Base(ResultCode::DIAMETER_AUTHORIZATION_REJECTED),
            403,
        ),
        (
            CxResult::experimental(Exp::DIAMETER_ERROR_ROAMING_NOT_ALLOWED),
            403,
        ),
        (
            CxResult::experimental(Exp::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED),
            403,
        ),
        (CxResult::Base(ResultCode::DIAMETER_UNABLE_TO_COMPLY), 500),
        (CxResult::Base(ResultCode::DIAMETER_TOO_BUSY), 480),
    ];
    for (result, code) in cases {
        let r = select_for_register(&uaa(result), &settings()).expect_err("refused");
        assert_eq!(r.status.as_u16(), code, "{result:?}");
        assert!(!r.reason.is_empty());
    }
    assert_eq!(hss_unreachable("UAA", "timeout").status.as_u16(), 480);
}

fn invite(uri: &str, to_tag: bool) -> Message {
    let tag = if to_tag { ";tag=x" } else { "" };
    Message::parse(
        format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK2\r\nMax-Forwards: 70\r\n\
             From: <sip:bob@example.net>;tag=b\r\nTo: <{uri}>{tag}\r\nCall-ID: i1\r\nCSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    )
    .expect("parses")
}

#[test]
fn lir_only_for_initial_requests_to_home_identities() {
    let s = settings();
    let l = lir_for(
        &invite(&format!("sip:alice@{DOMAIN}"), false),
        &s,
        "s;3".into(),
    )
    .expect("an LIR");
    assert_eq!(l.public_identity.as_str(), format!("sip:alice@{DOMAIN}"));
    assert!(lir_for(&invite("tel:+15550001", false), &s, "s;4".into()).is_some());
    assert!(lir_for(&invite("sip:carol@other.example", false), &s, "s;5".into()).is_none());
    assert!(
        lir_for(
            &invite(&format!("sip:alice@{DOMAIN}"), true),
            &s,
            "s;6".into()
        )
        .is_none()
    );
}

fn lia(result: CxResult) -> Lia {
    let l: Lir = lir_for(
        &invite(&format!("sip:alice@{DOMAIN}"), false),
        &settings(),
        "s;7".into(),
    )
    .expect("lir");
    Lia::new(&l, &settings().origin, result)
}

#[test]
fn lia_routes_to_the_serving_s_cscf_or_refuses() {
    let mut a = lia(CxResult::SUCCESS);
    a.server_name = Some("sip:scscf1.ims.example:6060".into());
    let sel = select_for_terminating(&a, &settings()).expect("selected");
    let d = forward(invite(&format!("sip:alice@{DOMAIN}"), false), &sel);
    let Decision::Forward {
        targets, request, ..
    } = d
    else {
        panic!("forward expected");
    };
    assert_eq!(
        targets[0].destination.as_ref().map(|p| p.addr),
        Some("127.0.0.1:6060".parse().expect("addr"))
    );
    assert_eq!(
        request.request_uri_str(),
        Some(format!("sip:alice@{DOMAIN}").as_str())
    );

    let r = select_for_terminating(
        &lia(CxResult::experimental(Exp::DIAMETER_ERROR_USER_UNKNOWN)),
        &settings(),
    )
    .expect_err("refused");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = select_for_terminating(
        &lia(CxResult::experimental(
            Exp::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED,
        )),
        &settings(),
    )
    .expect_err("refused");
    assert_eq!(r.status, StatusCode::TEMPORARILY_UNAVAILABLE);
    let r = select_for_terminating(
        &lia(CxResult::Base(ResultCode::DIAMETER_AUTHORIZATION_REJECTED)),
        &settings(),
    )
    .expect_err("refused");
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.reason.contains("barred"), "{}", r.reason);
    let r = select_for_terminating(
        &lia(CxResult::Base(ResultCode::DIAMETER_UNABLE_TO_COMPLY)),
        &settings(),
    )
    .expect_err("refused");
    assert_eq!(r.status, StatusCode::SERVER_INTERNAL_ERROR);
}

#[test]
fn lia_for_unregistered_services_without_a_name_selects_by_capabilities() {
    let mut a = lia(CxResult::experimental(Exp::DIAMETER_UNREGISTERED_SERVICE));
    a.server_capabilities = Some(ServerCapabilities::default());
    let sel = select_for_terminating(&a, &settings()).expect("selected");
    assert!(sel.how.contains("capabilities"), "{}", sel.how);
}

#[test]
fn unknown_s_cscf_name_without_address_is_a_clear_500() {
    let mut a = uaa(CxResult::experimental(
        Exp::DIAMETER_SUBSEQUENT_REGISTRATION,
    ));
    a.server_name = Some("sip:elsewhere.example".into());
    let r = select_for_register(&a, &settings()).expect_err("no address");
    assert_eq!(r.status, StatusCode::SERVER_INTERNAL_ERROR);
    assert!(r.reason.contains("icscf.scscfs"), "{}", r.reason);
}

#[test]
fn options_to_the_icscf_itself_is_answered_and_others_pass() {
    let local: SocketAddr = "127.0.0.1:4060".parse().expect("addr");
    let opt = Message::parse(
        b"OPTIONS sip:127.0.0.1:4060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK9\r\n\
          Max-Forwards: 70\r\nFrom: <sip:p@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1:4060>\r\n\
          Call-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
    )
    .expect("parses");
    let Some(Decision::Respond(r)) = to_self(&opt, &local, &settings()) else {
        panic!("answered");
    };
    assert_eq!(r.status(), Some(StatusCode::OK));
    assert!(
        to_self(
            &invite(&format!("sip:alice@{DOMAIN}"), false),
            &local,
            &settings()
        )
        .is_none()
    );
    assert!(to_self(&register("", "<sip:ue@10.0.0.1>"), &local, &settings()).is_none());
}

#[test]
fn failover_uar_asks_for_registration_and_capabilities() {
    let msg = register("", "<sip:ue@10.0.0.1>;expires=600");
    let u = uar_for_failover(&msg, &settings(), "s;2".into()).expect("uar");
    assert_eq!(
        u.user_authorization_type,
        Some(UserAuthorizationType::REGISTRATION_AND_CAPABILITIES)
    );
    assert_eq!(u.public_identity, uar().public_identity);
}

#[test]
fn failover_picks_the_best_other_s_cscf_and_never_the_failed_one() {
    let mut a = uaa(CxResult::SUCCESS);
    a.server_capabilities = Some(ServerCapabilities {
        mandatory: vec![1],
        optional: vec![3, 4],
        server_names: vec!["sip:scscf2.ims.example:6070".into()],
        ..ServerCapabilities::default()
    });
    assert!(has_alternative(&settings(), "sip:scscf2.ims.example:6070"));
    let sel = reselect_after_failure(&a, &settings(), "sip:scscf2.ims.example:6070")
        .expect("another one");
    assert_eq!(sel.uri, "sip:scscf1.ims.example:6060");
    assert!(sel.how.contains("fail-over from sip:scscf2"), "{}", sel.how);

    a.server_capabilities = Some(ServerCapabilities {
        mandatory: vec![3],
        ..ServerCapabilities::default()
    });
    let r = reselect_after_failure(&a, &settings(), "sip:scscf2.ims.example:6070")
        .expect_err("only the failed one has capability 3");
    assert_eq!(r.status, StatusCode::SERVER_TIMEOUT);
}

#[test]
fn failover_with_a_single_s_cscf_has_no_alternative_and_hss_refusals_still_map() {
    let one = Settings {
        scscfs: settings().scscfs.into_iter().take(1).collect(),
        ..settings()
    };
    assert!(!has_alternative(&one, "sip:scscf1.ims.example:6060"));
    assert!(has_alternative(&one, "sip:elsewhere.ims.example"));
    let refused = uaa(CxResult::experimental(Exp::DIAMETER_ERROR_USER_UNKNOWN));
    let r = reselect_after_failure(&refused, &settings(), "sip:scscf1.ims.example:6060")
        .expect_err("refused");
    assert_eq!(r.status.as_u16(), 404);
}

#[test]
fn failover_delay_defaults_to_four_seconds_and_follows_icscf_failover_after() {
    assert_eq!(settings().failover_after, FAILOVER_AFTER);
    let cfg = imslab_config::IcscfConfig {
        failover_after: 9,
        ..Default::default()
    };
    let s = Settings::from_config(
        &cfg,
        &Realm::new(DOMAIN).expect("realm"),
        "hss.ims.mnc001.mcc001.3gppnetwork.org",
    )
    .expect("settings");
    assert_eq!(s.failover_after, Duration::from_secs(9));
}
