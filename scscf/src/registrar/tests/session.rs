//! Session routing on the virtual clock: originating and terminating cases, iFC hand-offs,
//! unregistered callees, normalisation, breakout and the bounds of the hand-off table.

use imslab_sip::Method;
use imslab_sip::proxy::{Decision, RecordRoute};

use super::*;
use crate::registrar::routing::{LEG_LIFETIME, MAX_LEGS};

const ICSCF: &str = "sip:127.0.0.1:4060";
const TRUNK: &str = "sip:trunk.example.net:5060";
const PCSCF_VIA: &str = "127.0.0.1:5060";
const ICSCF_VIA: &str = "127.0.0.1:4060";
const AS_VIA: &str = "127.0.0.1:5070";

fn lab_with(icscf: bool, breakout: bool) -> Lab {
    let mut s = settings();
    s.icscf = icscf.then(|| ICSCF.to_owned());
    s.breakout = breakout.then(|| TRUNK.to_owned());
    Lab::with(Registrar::new(s, counter_rand(), 1))
}

fn ifc(priority: u32, spts: &str, server: &str, handling: u32) -> String {
    format!(
        "<InitialFilterCriteria><Priority>{priority}</Priority><TriggerPoint>\
         <ConditionTypeCNF>1</ConditionTypeCNF>{spts}</TriggerPoint><ApplicationServer>\
         <ServerName>{server}</ServerName><DefaultHandling>{handling}</DefaultHandling>\
         </ApplicationServer></InitialFilterCriteria>"
    )
}

fn spt(group: u32, inner: &str) -> String {
    format!("<SPT><ConditionNegated>0</ConditionNegated><Group>{group}</Group>{inner}</SPT>")
}

/// An initial request with `via` as the previous hop (the P-CSCF, the I-CSCF or an AS).
fn request(method: &str, ruri: &str, via: &str, pai: &str, extra: &str, body: &str) -> Message {
    let text = format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via};branch=z9hG4bKhop{method}\r\n\
         Via: SIP/2.0/UDP 10.45.0.2:5060;branch=z9hG4bKue;rport\r\n\
         Max-Forwards: 68\r\n\
         From: <{pai}>;tag=caller\r\n\
         To: <{ruri}>\r\n\
         Call-ID: call-1@ue\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:caller@10.45.0.9:5060>\r\n\
         P-Asserted-Identity: <{pai}>\r\n\
         {extra}Content-Length: {len}\r\n\r\n{body}",
        len = body.len()
    );
    Message::parse(text.into_bytes()).expect("parses")
}

fn route(lab: &mut Lab, msg: Message) -> Decision {
    let req = lab.req_id();
    lab.r.handle_request(lab.now, req, msg, false);
    lab.pump();
    let (got, d) = lab.responses.pop().expect("decided");
    assert_eq!(got, req);
    d
}

fn forwarded(d: Decision) -> (Message, Vec<imslab_sip::proxy::Target>, Option<RecordRoute>) {
    match d {
        Decision::Forward {
            request,
            targets,
            record_route,
            ..
        } => (request, targets, record_route),
        Decision::Respond(r) => panic!("expected a forward, got {:?}", r.status()),
    }
}

fn refused(d: Decision) -> StatusCode {
    match d {
        Decision::Respond(r) => r.status().expect("status"),
        Decision::Forward { request, .. } => {
            panic!(
                "expected an answer, got a forward to {:?}",
                request.request_uri_str()
            )
        }
    }
}

fn last_event(lab: &Lab, step: &str) -> (Outcome, String) {
    let e = lab
        .events
        .iter()
        .rev()
        .find(|e| e.step == step)
        .unwrap_or_else(|| panic!("no {step} event in {:?}", lab.steps()));
    (e.outcome, e.reason.clone().unwrap_or_default())
}

fn registered(lab: &mut Lab) {
    assert_eq!(
        lab.aka_register("<sip:ue@10.45.0.2:5060>", 600).status(),
        Some(StatusCode::OK)
    );
}

#[test]
fn originating_invite_from_the_path_pcscf_goes_to_the_icscf_with_record_route() {
    let mut lab = lab_with(true, false);
    registered(&mut lab);
    let callee = format!("sip:bob@{DOMAIN}");
    let d = route(
        &mut lab,
        request(
            "INVITE",
            &callee,
            PCSCF_VIA,
            IMPU,
            "Session-Expires: 1800\r\n",
            "",
        ),
    );
    let (req, targets, rr) = forwarded(d);
    assert_eq!(header(&req, &HeaderName::ROUTE), [format!("<{ICSCF};lr>")]);
    assert_eq!(req.request_uri_str(), Some(callee.as_str()));
    assert_eq!(header(&req, &HeaderName::SESSION_EXPIRES), ["1800"]);
    assert_eq!(targets.len(), 1);
    assert_eq!(rr.and_then(|r| r.user).as_deref(), Some("orig"));
    let (outcome, why) = last_event(&lab, "call");
    assert_eq!(outcome, Outcome::Ok);
    assert!(why.contains("originating: to the I-CSCF"), "{why}");
}

#[test]
fn terminating_invite_from_the_icscf_gets_p_called_party_id_and_follows_the_path() {
    let mut lab = lab_with(true, false);
    registered(&mut lab);
    let d = route(
        &mut lab,
        request(
            "INVITE",
            TEL,
            ICSCF_VIA,
            "sip:bob@elsewhere.example",
            "",
            "",
        ),
    );
    let (req, targets, rr) = forwarded(d);
    assert_eq!(header(&req, &HeaderName::ROUTE), [PATH]);
    assert_eq!(
        header(&req, &HeaderName::P_CALLED_PARTY_ID),
        [format!("<{TEL}>")]
    );
    assert_eq!(
        targets[0].uri.as_deref(),
        Some(&b"sip:ue@10.45.0.2:5060"[..])
    );
    assert_eq!(rr.and_then(|r| r.user).as_deref(), Some("term"));
    assert!(last_event(&lab, "call").1.contains("forked to 1 contact"));
}

#[test]
fn without_an_icscf_a_callee_served_here_is_reached_in_one_pass() {
    let mut lab = lab_with(false, false);
    registered(&mut lab);
    // The phone calls itself by its number, dialled as local digits.
    let dialled = format!("sip:15550001@{DOMAIN};user=phone");
    let d = route(
        &mut lab,
        request("INVITE", &dialled, PCSCF_VIA, IMPU, "", ""),
    );
    let (req, targets, _) = forwarded(d);
    assert_eq!(header(&req, &HeaderName::ROUTE), [PATH]);
    assert_eq!(
        header(&req, &HeaderName::P_CALLED_PARTY_ID),
        [format!("<{TEL}>")]
    );
    assert_eq!(targets.len(), 1);
    assert!(lab.events.iter().any(|e| {
        e.step == "call"
            && e.reason
                .as_deref()
                .is_some_and(|r| r.contains("served here"))
    }));
}

#[test]
fn a_number_outside_the_lab_goes_to_the_breakout_trunk_or_is_refused_without_one() {
    let mut lab = lab_with(true, true);
    registered(&mut lab);
    let d = route(
        &mut lab,
        request("INVITE", "tel:+4930123456", PCSCF_VIA, IMPU, "", ""),
    );
    let (req, _, rr) = forwarded(d);
    assert_eq!(header(&req, &HeaderName::ROUTE), [format!("<{TRUNK};lr>")]);
    assert!(rr.is_some());
    assert!(last_event(&lab, "call").1.contains("breakout"));

    let mut lab = lab_with(false, false);
    registered(&mut lab);
    let d = route(
        &mut lab,
        request("MESSAGE", "tel:+4930123456", PCSCF_VIA, IMPU, "", ""),
    );
    assert_eq!(refused(d), StatusCode::NOT_FOUND);
    let (outcome, why) = last_event(&lab, "message");
    assert_eq!(outcome, Outcome::Failed);
    assert!(why.contains("no scscf.breakout"), "{why}");
}

#[test]
fn with_trunk_credentials_a_message_is_relayed_by_the_scscf_and_an_invite_proxied() {
    let mut s = settings();
    s.breakout = Some(TRUNK.to_owned());
    s.breakout_credentials = Some(crate::breakout::TrunkCredentials::new("lab", "pw"));
    let mut lab = Lab::with(Registrar::new(s, counter_rand(), 1));
    registered(&mut lab);
    let req = lab.req_id();
    let m = request("MESSAGE", "tel:+4930123456", PCSCF_VIA, IMPU, "", "");
    lab.r.handle_request(lab.now, req, m, false);
    lab.pump();
    assert!(lab.responses.is_empty(), "answered later, by the relay");
    let (got, relayed, hop) = lab.relayed.pop().expect("relayed");
    assert_eq!(got, req);
    assert_eq!(hop, TRUNK);
    assert_eq!(
        header(&relayed, &HeaderName::ROUTE),
        [format!("<{TRUNK};lr>")]
    );
    assert!(
        last_event(&lab, "message")
            .1
            .contains("relayed with trunk credentials")
    );

    let d = route(
        &mut lab,
        request("INVITE", "tel:+4930123456", PCSCF_VIA, IMPU, "", ""),
    );
    let (req, _, _) = forwarded(d);
    assert_eq!(header(&req, &HeaderName::ROUTE), [format!("<{TRUNK};lr>")]);
}

#[test]
fn a_barred_identity_cannot_originate() {
    let mut lab = lab_with(true, false);
    registered(&mut lab);
    let barred = format!("sip:barred@{DOMAIN}");
    let d = route(&mut lab, request("INVITE", TEL, PCSCF_VIA, &barred, "", ""));
    assert_eq!(refused(d), StatusCode::FORBIDDEN);
    assert!(last_event(&lab, "call").1.contains("barred"));
}

#[test]
fn originating_ifc_hands_the_invite_to_the_as_and_the_returning_request_continues() {
    let mut lab = lab_with(true, false);
    let ifcs = ifc(
        0,
        &(spt(0, "<SessionCase>0</SessionCase>") + &spt(1, "<Method>INVITE</Method>")),
        "sip:127.0.0.1:5070",
        0,
    );
    lab.hss.user_data = user_data(&ifcs);
    registered(&mut lab);
    let callee = format!("sip:bob@{DOMAIN}");
    let d = route(
        &mut lab,
        request("INVITE", &callee, PCSCF_VIA, IMPU, "", ""),
    );
    let (req, _, rr) = forwarded(d);
    let routes = header(&req, &HeaderName::ROUTE);
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert_eq!(routes[0], "<sip:127.0.0.1:5070;lr>");
    assert!(
        routes[1].starts_with("<sip:odi-") && routes[1].ends_with(";lr>"),
        "{routes:?}"
    );
    assert!(
        rr.is_none(),
        "the S-CSCF records its route on the last hop only"
    );
    assert_eq!(lab.r.pending_as_legs(), 1);
    assert!(
        last_event(&lab, "call")
            .1
            .contains("originating iFC matched")
    );

    // The AS proxies it back (its Via on top, the S-CSCF's Route consumed by the proxy core).
    let d = route(&mut lab, request("INVITE", &callee, AS_VIA, IMPU, "", ""));
    let (req, _, rr) = forwarded(d);
    assert_eq!(header(&req, &HeaderName::ROUTE), [format!("<{ICSCF};lr>")]);
    assert!(rr.is_some());
    assert_eq!(lab.r.pending_as_legs(), 0);
}

#[test]
fn terminating_ifc_sends_sms_over_ip_to_the_smsc_but_not_plain_text() {
    let mut lab = lab_with(true, false);
    let ifcs = ifc(
        0,
        &(spt(0, "<SessionCase>1</SessionCase>")
            + &spt(1, "<Method>MESSAGE</Method>")
            + &spt(
                2,
                "<SIPHeader><Header>Content-Type</Header>\
                 <Content>application/vnd\\.3gpp\\.sms</Content></SIPHeader>",
            )),
        "sip:smsc@127.0.0.1:5070",
        1,
    );
    lab.hss.user_data = user_data(&ifcs);
    registered(&mut lab);
    let sms = "Content-Type: application/vnd.3gpp.sms\r\n";
    let d = route(
        &mut lab,
        request(
            "MESSAGE",
            IMPU,
            ICSCF_VIA,
            "sip:x@elsewhere.example",
            sms,
            "\u{2}\u{7}",
        ),
    );
    let (req, _, rr) = forwarded(d);
    assert_eq!(
        header(&req, &HeaderName::ROUTE)[0],
        "<sip:smsc@127.0.0.1:5070;lr>"
    );
    assert!(rr.is_none());
    let (_, why) = last_event(&lab, "message");
    assert!(
        why.contains("terminating iFC matched") && why.contains("SESSION_TERMINATED"),
        "{why}"
    );

    let text = "Content-Type: text/plain\r\n";
    let mut m = request(
        "MESSAGE",
        IMPU,
        ICSCF_VIA,
        "sip:x@elsewhere.example",
        text,
        "hi",
    );
    m.set_header(HeaderName::CALL_ID, "call-2@ue")
        .expect("Call-ID");
    let (req, _, _) = forwarded(route(&mut lab, m));
    assert_eq!(header(&req, &HeaderName::ROUTE), [PATH]);
}

#[test]
fn unregistered_callee_with_services_is_assigned_by_sar_and_goes_to_its_as() {
    let mut lab = lab_with(true, false);
    lab.hss.user_data = user_data(&ifc(
        0,
        &(spt(0, "<SessionCase>2</SessionCase>") + &spt(1, "<Method>INVITE</Method>")),
        "sip:vm@127.0.0.1:5070",
        0,
    ));
    let d = route(
        &mut lab,
        request("INVITE", IMPU, ICSCF_VIA, "sip:x@elsewhere.example", "", ""),
    );
    assert_eq!(
        lab.hss.sars.last(),
        Some(&ServerAssignmentType::UNREGISTERED_USER)
    );
    let (req, _, _) = forwarded(d);
    assert_eq!(
        header(&req, &HeaderName::ROUTE)[0],
        "<sip:vm@127.0.0.1:5070;lr>"
    );

    // A MESSAGE matches no unregistered service: 480, and no second SAR.
    let sars = lab.hss.sars.len();
    let mut m = request(
        "MESSAGE",
        IMPU,
        ICSCF_VIA,
        "sip:x@elsewhere.example",
        "",
        "",
    );
    m.set_header(HeaderName::CALL_ID, "call-2@ue")
        .expect("Call-ID");
    assert_eq!(
        refused(route(&mut lab, m)),
        StatusCode::TEMPORARILY_UNAVAILABLE
    );
    assert_eq!(lab.hss.sars.len(), sars);
    let (outcome, why) = last_event(&lab, "message");
    assert_eq!(outcome, Outcome::Failed);
    assert!(why.contains("callee not registered"), "{why}");
}

#[test]
fn unknown_home_identity_is_404_and_an_unusable_profile_480() {
    let mut lab = lab_with(true, false);
    registered(&mut lab);
    let nobody = format!("sip:nobody@{DOMAIN}");
    let peer = "sip:x@elsewhere.example";
    let d = route(
        &mut lab,
        request("INVITE", &nobody, ICSCF_VIA, peer, "", ""),
    );
    assert_eq!(
        refused(d),
        StatusCode::NOT_FOUND,
        "the HSS does not know it"
    );

    // Known to the HSS, but its profile cannot be read: the callee cannot be served.
    lab.hss.user_data = format!("<Identity>{nobody}</Identity> not a document");
    let mut m = request("INVITE", &nobody, ICSCF_VIA, peer, "", "");
    m.set_header(HeaderName::CALL_ID, "call-2@ue")
        .expect("Call-ID");
    assert_eq!(
        refused(route(&mut lab, m)),
        StatusCode::TEMPORARILY_UNAVAILABLE
    );
    let (outcome, why) = last_event(&lab, "call");
    assert_eq!(outcome, Outcome::Failed);
    assert!(why.contains("no profile"), "{why}");
}

#[test]
fn in_dialog_requests_acks_and_cancels_follow_their_route() {
    let mut lab = lab_with(true, false);
    registered(&mut lab);
    let text = format!(
        "BYE sip:ue@10.45.0.2:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {ICSCF_VIA};branch=z9hG4bKbye\r\n\
         Max-Forwards: 69\r\nRoute: {PATH}\r\nFrom: <sip:bob@{DOMAIN}>;tag=b\r\n\
         To: <{IMPU}>;tag=a\r\nCall-ID: call-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let (req, targets, rr) = forwarded(route(
        &mut lab,
        Message::parse(text.into_bytes()).expect("parses"),
    ));
    assert_eq!(header(&req, &HeaderName::ROUTE), [PATH]);
    assert_eq!(targets[0].uri, None);
    assert!(rr.is_none());
    let text = format!(
        "CANCEL {TEL} SIP/2.0\r\nVia: SIP/2.0/UDP {ICSCF_VIA};branch=z9hG4bKinv\r\n\
         Max-Forwards: 69\r\nFrom: <sip:bob@{DOMAIN}>;tag=b\r\n\
         To: <{TEL}>\r\nCall-ID: call-9\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
    );
    let m = Message::parse(text.into_bytes()).expect("parses");
    assert_eq!(m.method(), Some(&Method::Cancel));
    let (req, _, _) = forwarded(route(&mut lab, m));
    assert!(header(&req, &HeaderName::P_CALLED_PARTY_ID).is_empty());
}

#[test]
fn as_hand_offs_are_forgotten_after_timer_c_and_bounded_in_number() {
    let mut lab = lab_with(true, false);
    lab.hss.user_data = user_data(&ifc(
        0,
        &spt(0, "<SessionCase>0</SessionCase>"),
        "sip:127.0.0.1:5070",
        0,
    ));
    registered(&mut lab);
    let callee = format!("sip:bob@{DOMAIN}");
    for n in 0..(MAX_LEGS + 10) {
        let mut m = request("MESSAGE", &callee, PCSCF_VIA, IMPU, "", "");
        m.set_header(HeaderName::CALL_ID, format!("m{n}@ue"))
            .expect("Call-ID");
        let _ = forwarded(route(&mut lab, m));
        lab.responses.clear();
        lab.events.clear();
    }
    assert!(
        lab.r.pending_as_legs() <= MAX_LEGS + 1,
        "{}",
        lab.r.pending_as_legs()
    );
    // Hand-offs that came back leave nothing behind beyond the bound either.
    for n in 0..(2 * MAX_LEGS + 10) {
        let mut m = request("MESSAGE", &callee, PCSCF_VIA, IMPU, "", "");
        m.set_header(HeaderName::CALL_ID, format!("r{n}@ue"))
            .expect("Call-ID");
        let _ = forwarded(route(&mut lab, m));
        let mut back = request("MESSAGE", &callee, AS_VIA, IMPU, "", "");
        back.set_header(HeaderName::CALL_ID, format!("r{n}@ue"))
            .expect("Call-ID");
        let _ = forwarded(route(&mut lab, back));
        lab.responses.clear();
        lab.events.clear();
    }
    assert!(
        lab.r.as_leg_queue_len() <= 2 * MAX_LEGS + 1,
        "{}",
        lab.r.as_leg_queue_len()
    );
    lab.advance(LEG_LIFETIME + Duration::from_secs(1));
    let mut m = request("MESSAGE", &callee, PCSCF_VIA, IMPU, "", "");
    m.set_header(HeaderName::CALL_ID, "late@ue")
        .expect("Call-ID");
    let _ = forwarded(route(&mut lab, m));
    assert_eq!(
        lab.r.pending_as_legs(),
        1,
        "only the newest hand-off is left"
    );
}

#[test]
fn a_number_no_phone_holds_is_looked_up_in_enum_and_routed_as_its_naptr_says() {
    let mut s = settings();
    s.icscf = Some(ICSCF.to_owned());
    s.breakout = Some(TRUNK.to_owned());
    s.enum_domain = Some("e164.arpa".to_owned());
    let mut lab = Lab::with(Registrar::new(s, counter_rand(), 1));
    registered(&mut lab);
    let req = lab.req_id();
    let m = request("INVITE", "tel:+15559999", PCSCF_VIA, IMPU, "", "");
    lab.r.handle_request(lab.now, req, m, false);
    lab.pump();
    assert!(lab.responses.is_empty(), "waits for ENUM");
    let (task, name) = lab.enum_queries.pop().expect("an ENUM query");
    assert_eq!(name, "9.9.9.9.5.5.5.1.e164.arpa");
    let naptr = crate::e164::NaptrRecord {
        order: 10,
        preference: 10,
        flags: "u".into(),
        services: "E2U+sip".into(),
        regexp: format!("!^.*$!sip:bob@{DOMAIN}!"),
        replacement: ".".into(),
    };
    lab.r.handle_enum_answer(lab.now, task, Ok(vec![naptr]));
    lab.pump();
    let (_, d) = lab.responses.pop().expect("decided");
    let (req, _, _) = forwarded(d);
    assert_eq!(
        req.request_uri_str(),
        Some(format!("sip:bob@{DOMAIN}").as_str())
    );
    assert_eq!(header(&req, &HeaderName::ROUTE), [format!("<{ICSCF};lr>")]);
    assert!(lab.events.iter().any(|e| {
        e.reason
            .as_deref()
            .is_some_and(|r| r.contains("ENUM: +15559999 is sip:bob@"))
    }));

    // Without a usable answer the number goes to the trunk.
    let mut m = request("INVITE", "tel:+15559999", PCSCF_VIA, IMPU, "", "");
    m.set_header(HeaderName::CALL_ID, "call-2@ue")
        .expect("Call-ID");
    let req = lab.req_id();
    lab.r.handle_request(lab.now, req, m, false);
    lab.pump();
    let (task, _) = lab.enum_queries.pop().expect("an ENUM query");
    lab.r
        .handle_enum_answer(lab.now, task, Err("timed out".into()));
    lab.pump();
    let (_, d) = lab.responses.pop().expect("decided");
    let (req, _, _) = forwarded(d);
    assert_eq!(header(&req, &HeaderName::ROUTE), [format!("<{TRUNK};lr>")]);
}

#[test]
fn a_terminating_invite_forks_to_every_contact_sharing_the_latest_path() {
    let mut lab = lab_with(true, false);
    registered(&mut lab);
    assert_eq!(
        lab.aka_register("<sip:ue-tablet@10.45.0.3:5060>", 600)
            .status(),
        Some(StatusCode::OK)
    );
    let d = route(
        &mut lab,
        request("INVITE", IMPU, ICSCF_VIA, "sip:x@elsewhere.example", "", ""),
    );
    let (req, targets, rr) = forwarded(d);
    let mut uris: Vec<String> = targets
        .iter()
        .filter_map(|t| t.uri.as_deref())
        .map(|u| String::from_utf8_lossy(u).into_owned())
        .collect();
    uris.sort();
    assert_eq!(
        uris,
        ["sip:ue-tablet@10.45.0.3:5060", "sip:ue@10.45.0.2:5060"]
    );
    assert_eq!(header(&req, &HeaderName::ROUTE), [PATH]);
    assert!(rr.is_some());
    assert!(
        last_event(&lab, "call")
            .1
            .contains("forked to 2 contact(s)")
    );
}

#[test]
fn an_as_without_address_is_skipped_when_session_continued_and_fails_the_call_when_terminated() {
    let mut lab = lab_with(true, false);
    let ifcs = ifc(
        0,
        &spt(0, "<SessionCase>0</SessionCase>"),
        "sip:as.nowhere.example",
        0,
    ) + &ifc(
        1,
        &(spt(0, "<SessionCase>0</SessionCase>") + &spt(1, "<Method>MESSAGE</Method>")),
        "sip:smsc.nowhere.example",
        1,
    );
    lab.hss.user_data = user_data(&ifcs);
    registered(&mut lab);
    let callee = format!("sip:bob@{DOMAIN}");
    let (req, _, _) = forwarded(route(
        &mut lab,
        request("INVITE", &callee, PCSCF_VIA, IMPU, "", ""),
    ));
    assert_eq!(header(&req, &HeaderName::ROUTE), [format!("<{ICSCF};lr>")]);
    assert!(lab.events.iter().any(|e| {
        e.reason
            .as_deref()
            .is_some_and(|r| r.contains("SESSION_CONTINUED without it"))
    }));
    let mut m = request("MESSAGE", &callee, PCSCF_VIA, IMPU, "", "");
    m.set_header(HeaderName::CALL_ID, "call-2@ue")
        .expect("Call-ID");
    assert_eq!(
        refused(route(&mut lab, m)),
        StatusCode::SERVER_INTERNAL_ERROR
    );
    let (outcome, why) = last_event(&lab, "message");
    assert_eq!(outcome, Outcome::Failed);
    assert!(
        why.contains("iFC AS failed") && why.contains("SESSION_TERMINATED"),
        "{why}"
    );
}

/// [`route`] with the Route values naming the S-CSCF that the proxy core removed.
fn route_with(lab: &mut Lab, msg: Message, consumed: &[&str]) -> Decision {
    let req = lab.req_id();
    let consumed: Vec<&[u8]> = consumed.iter().map(|c| c.as_bytes()).collect();
    lab.r
        .handle_request_routed(lab.now, req, msg, false, &consumed);
    lab.pump();
    let (got, d) = lab.responses.pop().expect("decided");
    assert_eq!(got, req);
    d
}

const ORIG_ROUTE: &str = "<sip:orig@scscf.ims.mnc001.mcc001.3gppnetwork.org:6060;lr>";

#[test]
fn the_orig_route_makes_the_originating_case_whatever_the_previous_hop() {
    let mut lab = lab_with(true, false);
    registered(&mut lab);
    let callee = format!("sip:bob@{DOMAIN}");
    // The previous hop is not the Path P-CSCF: only the consumed orig Route tells.
    let msg = request("MESSAGE", &callee, ICSCF_VIA, IMPU, "", "");
    let (req, _, _) = forwarded(route_with(&mut lab, msg.clone(), &[ORIG_ROUTE]));
    assert_eq!(header(&req, &HeaderName::ROUTE), [format!("<{ICSCF};lr>")]);
    assert!(last_event(&lab, "message").1.contains("originating"));
    // Without it (and not from the Path P-CSCF) the request is terminating: bob is unknown.
    assert_eq!(refused(route(&mut lab, msg)), StatusCode::NOT_FOUND);
}

#[test]
fn an_orig_parameter_on_the_consumed_route_also_marks_the_originating_case() {
    let mut lab = lab_with(true, false);
    registered(&mut lab);
    let callee = format!("sip:bob@{DOMAIN}");
    let msg = request("MESSAGE", &callee, ICSCF_VIA, IMPU, "", "");
    let (req, _, _) = forwarded(route_with(
        &mut lab,
        msg,
        &["<sip:scscf.ims.mnc001.mcc001.3gppnetwork.org:6060;lr;orig>"],
    ));
    assert_eq!(header(&req, &HeaderName::ROUTE), [format!("<{ICSCF};lr>")]);
}

/// Registers a phone whose originating INVITEs go to an AS; returns the ODI Route value of
/// the hand-off.
fn handed_to_as(lab: &mut Lab, callee: &str) -> String {
    let ifcs = ifc(
        0,
        &(spt(0, "<SessionCase>0</SessionCase>") + &spt(1, "<Method>INVITE</Method>")),
        "sip:127.0.0.1:5070",
        0,
    );
    lab.hss.user_data = user_data(&ifcs);
    registered(lab);
    let msg = request("INVITE", callee, PCSCF_VIA, IMPU, "", "");
    let (req, _, _) = forwarded(route_with(lab, msg, &[ORIG_ROUTE]));
    let routes = header(&req, &HeaderName::ROUTE);
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert_eq!(lab.r.pending_as_legs(), 1);
    routes[1].clone()
}

#[test]
fn the_odi_token_matches_the_hand_off_even_when_the_as_changes_the_dialog_identifiers() {
    let mut lab = lab_with(true, false);
    let callee = format!("sip:bob@{DOMAIN}");
    let odi = handed_to_as(&mut lab, &callee);
    // A B2BUA AS: new Call-ID and From tag, the ODI Route back.
    let mut back = request("INVITE", &callee, AS_VIA, IMPU, "", "");
    back.set_header(HeaderName::CALL_ID, "b2bua-leg@as")
        .expect("Call-ID");
    back.set_header(HeaderName::FROM, format!("<{IMPU}>;tag=as-side"))
        .expect("From");
    let (req, _, rr) = forwarded(route_with(&mut lab, back, &[odi.as_str()]));
    assert_eq!(header(&req, &HeaderName::ROUTE), [format!("<{ICSCF};lr>")]);
    assert!(rr.is_some());
    assert_eq!(lab.r.pending_as_legs(), 0);
}

#[test]
fn an_unknown_odi_token_does_not_take_another_pending_hand_off() {
    let mut lab = lab_with(true, false);
    let callee = format!("sip:bob@{DOMAIN}");
    handed_to_as(&mut lab, &callee);
    // Same dialog identifiers as the pending hand-off, but another token.
    let back = request("INVITE", &callee, AS_VIA, IMPU, "", "");
    let forged = "<sip:odi-notours@scscf.ims.mnc001.mcc001.3gppnetwork.org:6060;lr>";
    let _ = route_with(&mut lab, back, &[forged]);
    assert_eq!(lab.r.pending_as_legs(), 1);
}

/// Registers a phone with originating INVITE iFCs toward `servers` (address, DefaultHandling)
/// and sends an INVITE; returns the request handed to the first AS.
fn invite_through(lab: &mut Lab, servers: &[(&str, u32)]) -> Message {
    let ifcs: String = servers
        .iter()
        .enumerate()
        .map(|(i, (server, handling))| {
            ifc(
                i as u32,
                &(spt(0, "<SessionCase>0</SessionCase>") + &spt(1, "<Method>INVITE</Method>")),
                server,
                *handling,
            )
        })
        .collect();
    lab.hss.user_data = user_data(&ifcs);
    registered(lab);
    let callee = format!("sip:bob@{DOMAIN}");
    let msg = request("INVITE", &callee, PCSCF_VIA, IMPU, "", "");
    let (req, _, _) = forwarded(route_with(lab, msg, &[ORIG_ROUTE]));
    assert_eq!(header(&req, &HeaderName::ROUTE).len(), 2);
    req
}

#[test]
fn an_as_with_session_continued_gets_the_continuation_without_it_as_fallback() {
    let mut lab = lab_with(true, false);
    let to_as = invite_through(&mut lab, &[("sip:127.0.0.1:5070", 0)]);
    let events = lab.events.len();
    let fallback = lab.r.take_as_fallback(&to_as).expect("a fallback");
    let (req, targets, rr) = forwarded(fallback);
    assert_eq!(header(&req, &HeaderName::ROUTE), [format!("<{ICSCF};lr>")]);
    assert_eq!(targets.len(), 1);
    assert_eq!(rr.and_then(|r| r.user).as_deref(), Some("orig"));
    // The trial left no decision, event or hand-off behind; the hand-off still waits.
    lab.pump();
    assert!(lab.responses.is_empty());
    assert_eq!(lab.events.len(), events);
    assert_eq!(lab.r.pending_as_legs(), 1);
    assert!(lab.r.take_as_fallback(&to_as).is_none(), "taken once");
}

#[test]
fn an_as_with_session_terminated_gets_no_fallback() {
    let mut lab = lab_with(true, false);
    let to_as = invite_through(&mut lab, &[("sip:127.0.0.1:5070", 1)]);
    assert!(lab.r.take_as_fallback(&to_as).is_none());
    assert_eq!(lab.r.pending_as_legs(), 1);
}

#[test]
fn a_continuation_through_another_as_is_not_prepared_and_leaves_no_trace() {
    let mut lab = lab_with(true, false);
    let to_as = invite_through(
        &mut lab,
        &[("sip:127.0.0.1:5070", 0), ("sip:127.0.0.1:5071", 0)],
    );
    let routes = header(&to_as, &HeaderName::ROUTE);
    assert_eq!(routes[0], "<sip:127.0.0.1:5070;lr>");
    assert!(lab.r.take_as_fallback(&to_as).is_none());
    assert_eq!(lab.r.pending_as_legs(), 1);
    assert_eq!(lab.r.as_leg_queue_len(), 1);
    // The AS returns it: the next AS follows as usual.
    let callee = format!("sip:bob@{DOMAIN}");
    let back = request("INVITE", &callee, AS_VIA, IMPU, "", "");
    let (req, _, _) = forwarded(route_with(&mut lab, back, &[routes[1].as_str()]));
    assert_eq!(
        header(&req, &HeaderName::ROUTE)[0],
        "<sip:127.0.0.1:5071;lr>"
    );
}

/// The S-CSCF's decisions applied by the pure proxy core, on the virtual clock.
fn scscf_proxy() -> imslab_sip::proxy::Proxy {
    use imslab_sip::header::Transport;
    use imslab_sip::proxy::{Interface, Proxy, ProxyConfig};
    let mut cfg = ProxyConfig::new(Interface {
        transport: Transport::Udp,
        addr: "127.0.0.1:6060".parse().expect("address"),
        advertise: None,
    });
    cfg.aliases
        .push("scscf.ims.mnc001.mcc001.3gppnetwork.org".into());
    Proxy::new(cfg, imslab_sip::transaction::TimerConfig::default(), 7)
}

fn transmitted_to(ev: &[imslab_sip::proxy::ProxyEvent], addr: &str) -> Vec<Message> {
    ev.iter()
        .filter_map(|e| match e {
            imslab_sip::proxy::ProxyEvent::Transmit { to, bytes, .. }
                if to.addr == addr.parse().expect("address") =>
            {
                Some(Message::parse(bytes.clone()).expect("parses"))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn an_as_with_session_continued_that_never_answers_is_passed_over_by_the_proxy_core() {
    use imslab_sip::header::Transport;
    use imslab_sip::proxy::{InterfaceId, ProxyEvent};
    use imslab_sip::transaction::Peer;
    let mut lab = lab_with(true, false);
    let ifcs = ifc(
        0,
        &(spt(0, "<SessionCase>0</SessionCase>") + &spt(1, "<Method>INVITE</Method>")),
        "sip:127.0.0.1:5070",
        0,
    );
    lab.hss.user_data = user_data(&ifcs);
    registered(&mut lab);
    let mut p = scscf_proxy();
    let t0 = lab.now.at;
    let callee = format!("sip:bob@{DOMAIN}");
    let invite = request(
        "INVITE",
        &callee,
        PCSCF_VIA,
        IMPU,
        &format!("Route: {ORIG_ROUTE}\r\n"),
        "",
    );
    let from = Peer::new(Transport::Udp, PCSCF_VIA.parse().expect("address"));
    let ev = p.handle_message(t0, invite, from, InterfaceId(0));
    let (ctx, incoming) = ev
        .iter()
        .find_map(|e| match e {
            ProxyEvent::Request { ctx, request, .. } => Some((*ctx, request.clone())),
            _ => None,
        })
        .expect("a new request");
    let consumed = p.consumed_routes(ctx).to_vec();
    let req = lab.req_id();
    lab.r
        .handle_request_routed(lab.now, req, incoming, false, &consumed);
    lab.pump();
    let (_, decision) = lab.responses.pop().expect("decided");
    let to_as = match &decision {
        Decision::Forward { request, .. } => request.clone(),
        Decision::Respond(r) => panic!("expected the AS hand-off, got {:?}", r.status()),
    };
    let fallback = lab.r.take_as_fallback(&to_as).expect("SESSION_CONTINUED");
    let ev = p
        .decide_with_fallback(t0, ctx, decision, fallback)
        .expect("decided");
    assert_eq!(transmitted_to(&ev, "127.0.0.1:5070").len(), 1, "to the AS");
    // The AS stays silent: after Timer B the INVITE continues to the I-CSCF without it.
    let mut at = t0;
    let mut onward = Vec::new();
    while onward.is_empty() && at < t0 + Duration::from_secs(40) {
        at += Duration::from_secs(1);
        let ev = p.handle_timeout(at);
        assert!(
            !ev.iter().any(|e| matches!(e, ProxyEvent::Response { .. })),
            "no failure goes upstream"
        );
        onward = transmitted_to(&ev, "127.0.0.1:4060");
    }
    assert_eq!(onward.len(), 1, "continued to the I-CSCF");
    assert_eq!(
        header(&onward[0], &HeaderName::ROUTE),
        [format!("<{ICSCF};lr>")]
    );
    assert!(header(&onward[0], &HeaderName::RECORD_ROUTE)[0].contains("orig@"));
}

#[test]
fn a_terminating_as_with_session_continued_gets_the_fork_to_the_contacts_as_fallback() {
    let mut lab = lab_with(true, false);
    let ifcs = ifc(
        0,
        &(spt(0, "<SessionCase>1</SessionCase>") + &spt(1, "<Method>INVITE</Method>")),
        "sip:127.0.0.1:5070",
        0,
    );
    lab.hss.user_data = user_data(&ifcs);
    registered(&mut lab);
    let msg = request(
        "INVITE",
        TEL,
        ICSCF_VIA,
        "sip:bob@elsewhere.example",
        "",
        "",
    );
    let (to_as, _, _) = forwarded(route(&mut lab, msg));
    let routes = header(&to_as, &HeaderName::ROUTE);
    assert_eq!(routes[0], "<sip:127.0.0.1:5070;lr>");
    let (req, targets, rr) = forwarded(lab.r.take_as_fallback(&to_as).expect("a fallback"));
    assert_eq!(header(&req, &HeaderName::ROUTE), [PATH]);
    assert_eq!(
        header(&req, &HeaderName::P_CALLED_PARTY_ID),
        [format!("<{TEL}>")]
    );
    assert_eq!(
        targets[0].uri.as_deref(),
        Some(&b"sip:ue@10.45.0.2:5060"[..])
    );
    assert_eq!(rr.and_then(|r| r.user).as_deref(), Some("term"));
    assert_eq!(lab.r.pending_as_legs(), 1);
}

#[test]
fn a_continuation_coming_back_terminating_is_not_taken_for_the_failed_as_returning() {
    let mut lab = lab_with(true, false);
    let to_as = invite_through(&mut lab, &[("sip:127.0.0.1:5070", 0)]);
    assert!(lab.r.take_as_fallback(&to_as).is_some());
    // The proxy core applied the fallback; the request comes back from the I-CSCF for a
    // callee served here, with the same Call-ID, From tag and CSeq and no ODI token.
    let back = request("INVITE", IMPU, ICSCF_VIA, IMPU, "", "");
    let (_, _, rr) = forwarded(route_with(&mut lab, back, &[]));
    assert_eq!(
        rr.and_then(|r| r.user).as_deref(),
        Some("term"),
        "the terminating case, not the originating continuation again"
    );
    assert_eq!(lab.r.pending_as_legs(), 1, "the hand-off still waits");
}

#[test]
fn without_an_icscf_a_known_unregistered_callee_gets_480_and_an_unknown_one_404() {
    let mut lab = lab_with(false, false);
    registered(&mut lab);
    let carol = format!("sip:carol@{DOMAIN}");
    // The HSS knows carol (a profile without services for the unregistered state).
    lab.hss.user_data = user_data("").replace(IMPU, &carol);
    let d = route(&mut lab, request("INVITE", &carol, PCSCF_VIA, IMPU, "", ""));
    assert_eq!(refused(d), StatusCode::TEMPORARILY_UNAVAILABLE);
    assert_eq!(
        lab.hss.sars.last(),
        Some(&ServerAssignmentType::UNREGISTERED_USER)
    );
    let nobody = format!("sip:nobody@{DOMAIN}");
    let d = route(
        &mut lab,
        request("MESSAGE", &nobody, PCSCF_VIA, IMPU, "", ""),
    );
    assert_eq!(refused(d), StatusCode::NOT_FOUND);
}
