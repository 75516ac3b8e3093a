//! Calls and messages between two registered phones through the S-CSCF (originating and
//! terminating session cases), the I-CSCF and the real HSS. Each test client plays a phone
//! and its P-CSCF: it sends along the Service-Route and receives along its Path.

use std::net::SocketAddr;
use std::time::Duration;

use imslab_sip::{HeaderName, Message, Method, StatusCode};

use crate::support::*;

/// An initial request from `ue` (as its P-CSCF forwards it) to `to`, along the Service-Route.
pub(crate) fn initial(
    ue: &Ue,
    lab: &Lab,
    method: &str,
    to: &str,
    call_id: &str,
    extra: &str,
    body: &str,
) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else if method == "MESSAGE" {
        "Content-Type: text/plain\r\n".to_owned()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "{method} {to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {a};branch=z9hG4bK{call_id}x1;rport\r\n\
         Max-Forwards: 69\r\n\
         Route: <sip:orig@127.0.0.1:{sp};lr>\r\n\
         Record-Route: <sip:pcscf@{a};lr>\r\n\
         From: <{me}>;tag=from-{call_id}\r\n\
         To: <{to}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: {contact}\r\n\
         P-Asserted-Identity: <{me}>\r\n\
         Session-Expires: 1800\r\n\
         Min-SE: 90\r\n\
         {extra}{ct}Content-Length: {len}\r\n\r\n{body}",
        a = ue.addr,
        sp = lab.scscf.port(),
        me = impu(ue.n),
        contact = ue.contact(),
        len = body.len(),
    )
}

/// The callee's response to `req` with a To tag, and its Contact.
fn answer(callee: &Ue, req: &Message, status: StatusCode) -> Message {
    let mut r = req.response(status, None).expect("response");
    if req.to_header().ok().is_some_and(|t| t.tag().is_none()) {
        let to = String::from_utf8_lossy(req.header(&HeaderName::TO).expect("To")).into_owned();
        r.set_header(HeaderName::TO, format!("{to};tag=callee{}", callee.n))
            .expect("To");
    }
    if status.is_success() || status.as_u16() == 180 {
        let _ = r.push_header(HeaderName::CONTACT, callee.contact());
    }
    r
}

pub(crate) const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// An in-dialog request along the route set the caller learned from the 200's Record-Route.
fn in_dialog(caller: &Ue, ok: &Message, method: &str, cseq: u32, call_id: &str) -> String {
    let rr: Vec<String> = values(ok, &HeaderName::RECORD_ROUTE)
        .into_iter()
        .flat_map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    // The caller's own P-CSCF entry is the last one; the phone's P-CSCF pops it itself.
    let routes: Vec<String> = rr.into_iter().rev().skip(1).collect();
    let to = String::from_utf8_lossy(ok.header(&HeaderName::TO).expect("To")).into_owned();
    let contact = values(ok, &HeaderName::CONTACT)[0].clone();
    let target = contact.trim_matches(['<', '>']).to_owned();
    let route_lines: String = routes.iter().map(|r| format!("Route: {r}\r\n")).collect();
    format!(
        "{method} {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {a};branch=z9hG4bK{call_id}{method}{cseq};rport\r\n\
         Max-Forwards: 69\r\n\
         {route_lines}\
         From: <{me}>;tag=from-{call_id}\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n",
        a = caller.addr,
        me = impu(caller.n),
    )
}

pub(crate) async fn two_registered(lab: &Lab, dir: &std::path::Path) -> (Ue, Ue) {
    provision(&lab.store, 11, None, None).await;
    provision(&lab.store, 12, None, None).await;
    let mut a = Ue::new(11, dir, K_HEX).await;
    let mut b = Ue::new(12, dir, K_HEX).await;
    for ue in [&mut a, &mut b] {
        let ok = crate::register_aka(lab, ue).await;
        assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");
    }
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_between_two_registered_phones_is_answered_acked_and_hung_up() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let (mut a, mut b) = two_registered(&lab, dir.path()).await;
    let scscf: SocketAddr = lab.scscf;

    let text = initial(&a, &lab, "INVITE", &impu(12), "call-ab", "", SDP);
    a.send_text(scscf, &text).await;
    let (inv, from) = b.next_request(&Method::Invite).await;
    assert_eq!(
        inv.request_uri_str(),
        Some(format!("sip:ue12@{}", b.addr).as_str())
    );
    assert_eq!(values(&inv, &HeaderName::ROUTE), [b.path()]);
    assert_eq!(
        values(&inv, &HeaderName::P_CALLED_PARTY_ID),
        [format!("<{}>", impu(12))]
    );
    assert_eq!(values(&inv, &HeaderName::SESSION_EXPIRES), ["1800"]);
    assert_eq!(values(&inv, &HeaderName::MIN_SE), ["90"]);
    assert_eq!(
        values(&inv, &HeaderName::P_ASSERTED_IDENTITY),
        [format!("<{}>", impu(11))]
    );
    let ringing = answer(&b, &inv, StatusCode::RINGING);
    b.send_msg(from, &ringing).await;
    let ok = answer(&b, &inv, StatusCode::OK);
    b.send_msg(from, &ok).await;
    let ok = a.next_final().await;
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");

    let ack = in_dialog(&a, &ok, "ACK", 1, "call-ab");
    a.send_text(scscf, &ack).await;
    let (ack, _) = b.next_request(&Method::Ack).await;
    assert_eq!(
        ack.request_uri_str(),
        Some(format!("sip:ue12@{}", b.addr).as_str())
    );
    let bye = in_dialog(&a, &ok, "BYE", 2, "call-ab");
    a.send_text(scscf, &bye).await;
    let (bye, from) = b.next_request(&Method::Bye).await;
    b.send_msg(from, &bye.response(StatusCode::OK, None).expect("200"))
        .await;
    let done = a.next_final().await;
    assert_eq!(done.status(), Some(StatusCode::OK));
    assert!(lab.events.has("call", "originating: to the I-CSCF"));
    assert!(lab.events.has("call", "terminating"));
    assert!(lab.events.has("lir", ""));
    tokio::time::sleep(Duration::from_millis(50)).await;
    tshark_calls(&mut b, &lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_both_ways_and_a_tel_uri_reaches_the_phone_holding_the_number() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let (mut a, mut b) = two_registered(&lab, dir.path()).await;
    let scscf = lab.scscf;

    let text = initial(&a, &lab, "MESSAGE", &impu(12), "msg-ab", "", "hello bob");
    a.send_text(scscf, &text).await;
    let (m, from) = b.next_request(&Method::Message).await;
    assert_eq!(body(&m), "hello bob");
    assert!(
        values(&m, &HeaderName::RECORD_ROUTE)
            .iter()
            .all(|r| !r.contains("term@127.0.0.1"))
    );
    b.send_msg(from, &answer(&b, &m, StatusCode::OK)).await;
    assert_eq!(a.next_final().await.status(), Some(StatusCode::OK));

    // Back, addressed by number (the MSISDN in the implicit set), as SMS over IP.
    // RP-ACK (MS to network, reference 7; TS 24.011 §7.3.3): two bytes.
    let sms = "\u{2}\u{7}";
    let text = initial(&b, &lab, "MESSAGE", "tel:+155500011", "msg-ba", "", sms)
        .replace("text/plain", "application/vnd.3gpp.sms");
    b.send_text(scscf, &text).await;
    let (m, from) = a.next_request(&Method::Message).await;
    // The callee learns which identity of its set was called.
    assert_eq!(
        values(&m, &HeaderName::P_CALLED_PARTY_ID),
        ["<tel:+155500011>"]
    );
    assert_eq!(
        values(&m, &HeaderName::CONTENT_TYPE),
        ["application/vnd.3gpp.sms"]
    );
    a.send_msg(from, &answer(&a, &m, StatusCode::OK)).await;
    assert_eq!(b.next_final().await.status(), Some(StatusCode::OK));
    assert!(lab.events.has("message", "terminating"));
    tshark_calls(&mut a, &lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_callee_486_reaches_the_caller_and_unknown_or_unregistered_callees_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let (mut a, mut b) = two_registered(&lab, dir.path()).await;
    let scscf = lab.scscf;

    let text = initial(&a, &lab, "INVITE", &impu(12), "call-busy", "", SDP);
    a.send_text(scscf, &text).await;
    let (inv, from) = b.next_request(&Method::Invite).await;
    b.send_msg(from, &answer(&b, &inv, StatusCode::BUSY_HERE))
        .await;
    let busy = a.next_final().await;
    assert_eq!(busy.status(), Some(StatusCode::BUSY_HERE));

    // Provisioned but not registered: the HSS answers the LIR "not registered", 480.
    provision(&lab.store, 13, None, None).await;
    let text = initial(&a, &lab, "INVITE", &impu(13), "call-unreg", "", SDP);
    a.send_text(scscf, &text).await;
    let r = a.next_final().await;
    assert_eq!(
        r.status(),
        Some(StatusCode::TEMPORARILY_UNAVAILABLE),
        "{r:?}"
    );

    // Unknown in the HSS: 404.
    let nobody = format!("sip:nobody@{DOMAIN}");
    let text = initial(&a, &lab, "INVITE", &nobody, "call-unknown", "", SDP);
    a.send_text(scscf, &text).await;
    let r = a.next_final().await;
    assert_eq!(r.status(), Some(StatusCode::NOT_FOUND), "{r:?}");
    tshark_calls(&mut a, &lab);
    lab.stop().await;
}

/// Every message the phone saw decodes as SIP in tshark.
fn tshark_calls(ue: &mut Ue, lab: &Lab) {
    ue.finish_pcap();
    let decode: Vec<String> = [ue.addr.port(), lab.icscf.port(), lab.scscf.port()]
        .iter()
        .map(|p| format!("udp.port=={p},sip"))
        .collect();
    let mut args = Vec::new();
    for d in &decode {
        args.push("-d");
        args.push(d.as_str());
    }
    let packets =
        imslab_test_support::tshark_check(&ue.pcap_path, &args, &["sip.Method", "sip.Status-Code"]);
    assert!(!packets.is_empty());
    assert!(
        packets
            .iter()
            .all(|p| p.fields.iter().any(|f| !f.is_empty())),
        "every packet decodes as SIP: {packets:?}"
    );
}

const SMSC_UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="smsc-as">
  <recv request="MESSAGE" />
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=smsc[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]>
  </send>
</scenario>
"#;

/// A subscriber whose originating SMS over IP goes to the SMSC by iFC.
async fn provision_with_smsc_ifc(lab: &Lab, n: u32, smsc: &str) {
    use imslab_store::model::{SessionCase, SptKind};
    provision_with_ifc(
        lab,
        n,
        "smsc",
        vec![
            SptKind::SessionCase(SessionCase::OriginatingRegistered),
            SptKind::Method("MESSAGE".into()),
            SptKind::SipHeader {
                header: "Content-Type".into(),
                content: Some("application/vnd\\.3gpp\\.sms".into()),
            },
        ],
        smsc,
    )
    .await;
}

/// A subscriber with service profile `name`: one iFC whose SPTs (one group each, CNF) send
/// to `server` with SESSION_TERMINATED.
async fn provision_with_ifc(
    lab: &Lab,
    n: u32,
    name: &str,
    spts: Vec<imslab_store::model::SptKind>,
    server: &str,
) {
    provision_with_ifc_handling(
        lab,
        n,
        name,
        spts,
        server,
        imslab_store::model::DefaultHandling::SessionTerminated,
    )
    .await;
}

/// [`provision_with_ifc`] with the AS's DefaultHandling.
async fn provision_with_ifc_handling(
    lab: &Lab,
    n: u32,
    name: &str,
    spts: Vec<imslab_store::model::SptKind>,
    server: &str,
    default_handling: imslab_store::model::DefaultHandling,
) {
    use imslab_store::model::{
        ApplicationServer, InitialFilterCriteria, ServicePointTrigger, ServiceProfile, TriggerPoint,
    };
    use imslab_store::provision::{ImpuInput, NewSubscriber, ProvisionDefaults, SubscriberInput};
    let profile = ServiceProfile {
        name: name.into(),
        subscribed_media_profile_id: None,
        ifcs: vec![InitialFilterCriteria {
            priority: 0,
            trigger_point: Some(TriggerPoint {
                condition_type_cnf: true,
                spts: spts
                    .into_iter()
                    .enumerate()
                    .map(|(g, kind)| ServicePointTrigger {
                        condition_negated: false,
                        groups: vec![i64::try_from(g).unwrap_or(0)],
                        kind,
                        registration_types: Vec::new(),
                    })
                    .collect(),
            }),
            application_server: ApplicationServer {
                server_name: server.to_owned(),
                default_handling,
                ..ApplicationServer::default()
            },
            profile_part_indicator: None,
        }],
    };
    lab.store
        .profiles()
        .put(&profile, std::time::SystemTime::now())
        .await
        .expect("profile");
    let defaults = ProvisionDefaults::new(imslab_types::Realm::new(DOMAIN).expect("realm"));
    let input = SubscriberInput {
        imsi: imsi(n),
        k: K_HEX.into(),
        opc: Some(OPC_HEX.into()),
        impus: vec![ImpuInput::Uri(impu(n))],
        profile: Some(name.into()),
        ..SubscriberInput::default()
    };
    let new = NewSubscriber::from_input(&input, &defaults).expect("valid subscriber");
    lab.store
        .subscribers()
        .insert_all(&[new], std::time::SystemTime::now())
        .await
        .expect("provisioned");
}

/// SIPp answering one MESSAGE with 200 on `port` (an AS).
fn sipp_as(dir: &std::path::Path, port: u16) -> std::process::Child {
    let sipp = imslab_test_support::peer("sipp", "sip-tester");
    std::fs::write(dir.join("smsc.xml"), SMSC_UAS).expect("xml");
    std::process::Command::new(sipp)
        .current_dir(dir)
        .args([
            "-sf",
            "smsc.xml",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sipp starts")
}

fn free_udp_port() -> u16 {
    let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    u.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_to_an_unregistered_callee_with_services_reaches_its_as_through_lir_and_sar() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let port = free_udp_port();
    {
        use imslab_store::model::{SessionCase, SptKind};
        provision_with_ifc(
            &lab,
            52,
            "voicemail",
            vec![
                SptKind::SessionCase(SessionCase::TerminatingUnregistered),
                SptKind::Method("MESSAGE".into()),
            ],
            &format!("sip:vm@127.0.0.1:{port}"),
        )
        .await;
    }
    provision(&lab.store, 51, None, None).await;
    let mut a = Ue::new(51, dir.path(), K_HEX).await;
    assert_eq!(
        crate::register_aka(&lab, &mut a).await.status(),
        Some(StatusCode::OK)
    );
    let vm = sipp_as(dir.path(), port);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = initial(&a, &lab, "MESSAGE", &impu(52), "vm-1", "", "call me");
    a.send_text(lab.scscf, &text).await;
    let ok = a.next_final().await;
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");
    let out = tokio::task::spawn_blocking(move || vm.wait_with_output())
        .await
        .expect("join")
        .expect("sipp exits");
    assert!(
        out.status.success(),
        "SIPp AS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lab.events.has("message", "terminating iFC matched"));
    // The HSS saw the LIR for unregistered services and the S-CSCF's SAR UNREGISTERED_USER.
    assert!(lab.events.has("lir", "unregistered services"));
    assert!(lab.events.has("sar", "unregistered, served by"));
    tshark_calls(&mut a, &lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_to_the_smsc_psi_goes_to_the_sipp_smsc_named_by_the_originating_ifc() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let port = free_udp_port();
    provision_with_smsc_ifc(&lab, 21, &format!("sip:smsc@127.0.0.1:{port}")).await;
    let mut a = Ue::new(21, dir.path(), K_HEX).await;
    assert_eq!(
        crate::register_aka(&lab, &mut a).await.status(),
        Some(StatusCode::OK)
    );
    let smsc = sipp_as(dir.path(), port);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let psi = format!("sip:smsc@{DOMAIN}");
    let text = initial(&a, &lab, "MESSAGE", &psi, "sms-1", "", "\u{2}\u{7}")
        .replace("text/plain", "application/vnd.3gpp.sms");
    a.send_text(lab.scscf, &text).await;
    let ok = a.next_final().await;
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");
    assert!(
        values(&ok, &HeaderName::TO)[0].contains("tag=smsc"),
        "answered by the SMSC"
    );
    let out = tokio::task::spawn_blocking(move || smsc.wait_with_output())
        .await
        .expect("join")
        .expect("sipp exits");
    assert!(
        out.status.success(),
        "SIPp SMSC: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lab.events.has("message", "originating iFC matched"));
    tshark_calls(&mut a, &lab);
    lab.stop().await;
}

/// The trunk challenges the first MESSAGE with 407 and accepts the second; the test checks
/// the credentials in SIPp's message trace.
const TRUNK_UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="breakout-trunk">
  <recv request="MESSAGE" />
  <send>
    <![CDATA[
SIP/2.0 407 Proxy Authentication Required
[last_Via:]
[last_From:]
[last_To:];tag=trunk[call_number]
[last_Call-ID:]
[last_CSeq:]
Proxy-Authenticate: Digest realm="trunk.example.net", nonce="4f1e2d3c", qop="auth", algorithm=MD5
Content-Length: 0

]]>
  </send>
  <recv request="MESSAGE" />
  <send>
    <![CDATA[
SIP/2.0 202 Accepted
[last_Via:]
[last_From:]
[last_To:];tag=trunk[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]>
  </send>
</scenario>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_to_a_number_outside_the_lab_passes_the_sipp_trunks_407_with_configured_credentials()
 {
    let sipp = imslab_test_support::peer("sipp", "sip-tester");
    let dir = tempfile::tempdir().expect("dir");
    let port = {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        u.local_addr().expect("addr").port()
    };
    let lab = Lab::start_with(|c| {
        c.scscf.breakout = Some(format!("sip:127.0.0.1:{port}"));
        c.scscf.breakout_username = Some("lab-trunk".into());
        c.scscf.breakout_password = Some("tr0nk".into());
    })
    .await;
    provision(&lab.store, 31, None, None).await;
    let mut a = Ue::new(31, dir.path(), K_HEX).await;
    assert_eq!(
        crate::register_aka(&lab, &mut a).await.status(),
        Some(StatusCode::OK)
    );
    std::fs::write(dir.path().join("trunk.xml"), TRUNK_UAS).expect("xml");
    let trunk = std::process::Command::new(sipp)
        .current_dir(dir.path())
        .args([
            "-sf",
            "trunk.xml",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error"])
        .args(["-trace_msg"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sipp starts");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = initial(&a, &lab, "MESSAGE", "tel:+4930123456", "brk-1", "", "hallo");
    a.send_text(lab.scscf, &text).await;
    let r = a.next_final().await;
    let out = tokio::task::spawn_blocking(move || trunk.wait_with_output())
        .await
        .expect("join")
        .expect("sipp exits");
    assert_eq!(r.status(), Some(StatusCode::ACCEPTED), "{r:?}");
    assert!(
        out.status.success(),
        "SIPp trunk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        lab.events
            .has("message", "answered 202 after a digest challenge")
    );
    tshark_calls(&mut a, &lab);
    lab.stop().await;
}

/// dnsmasq on 127.0.0.1 at a free port serving `records`; killed on drop.
struct Dnsmasq {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dnsmasq(records: &[String]) -> Dnsmasq {
    let port = {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        u.local_addr().expect("addr").port()
    };
    let child = std::process::Command::new(imslab_test_support::peer("dnsmasq", "dnsmasq"))
        .args(["-k", "-C", "/dev/null", "--no-resolv", "--no-hosts"])
        .args(["--listen-address=127.0.0.1", "--bind-interfaces"])
        .args(["--pid-file=", "--user=root", "--log-facility=-"])
        .arg(format!("--port={port}"))
        .args(records)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dnsmasq starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::UdpSocket::bind(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "dnsmasq did not bind {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Dnsmasq { child, addr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ported_number_is_found_in_enum_served_by_dnsmasq_and_reaches_its_phone() {
    // +4930555 is no lab MSISDN; ENUM says it is now phone 42's SIP identity.
    let dns = dnsmasq(&[format!(
        "--naptr-record=5.5.5.0.3.9.4.e164.arpa,10,10,u,E2U+sip,!^.*$!{}!",
        impu(42)
    )]);
    let lab = Lab::start_with(|c| c.scscf.enum_server = Some(dns.addr)).await;
    let dir = tempfile::tempdir().expect("dir");
    provision(&lab.store, 41, None, None).await;
    provision(&lab.store, 42, None, None).await;
    let mut a = Ue::new(41, dir.path(), K_HEX).await;
    let mut b = Ue::new(42, dir.path(), K_HEX).await;
    for ue in [&mut a, &mut b] {
        let ok = crate::register_aka(&lab, ue).await;
        assert_eq!(ok.status(), Some(StatusCode::OK));
    }
    let text = initial(&a, &lab, "MESSAGE", "tel:+4930555", "enum-1", "", "hi");
    a.send_text(lab.scscf, &text).await;
    let (m, from) = b.next_request(&Method::Message).await;
    assert_eq!(
        values(&m, &HeaderName::P_CALLED_PARTY_ID),
        [format!("<{}>", impu(42))]
    );
    b.send_msg(from, &answer(&b, &m, StatusCode::OK)).await;
    assert_eq!(a.next_final().await.status(), Some(StatusCode::OK));
    assert!(lab.events.has("message", "ENUM: +4930555 is"));

    // A number ENUM does not know, with no trunk configured: 404.
    let text = initial(&a, &lab, "MESSAGE", "tel:+4930666", "enum-2", "", "hi");
    a.send_text(lab.scscf, &text).await;
    assert_eq!(a.next_final().await.status(), Some(StatusCode::NOT_FOUND));
    assert!(lab.events.has("message", "ENUM: no SIP URI for +4930666"));
    tshark_calls(&mut a, &lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_reaches_the_callee_as_cancel_and_the_caller_gets_487() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let (mut a, mut b) = two_registered(&lab, dir.path()).await;
    let text = initial(&a, &lab, "INVITE", &impu(12), "call-cancel", "", SDP);
    a.send_text(lab.scscf, &text).await;
    let (inv, from) = b.next_request(&Method::Invite).await;
    b.send_msg(from, &answer(&b, &inv, StatusCode::RINGING))
        .await;
    // The caller's P-CSCF cancels its INVITE (same Via branch, RFC 3261 §9.1).
    let cancel = text
        .replacen("INVITE ", "CANCEL ", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace("Content-Type: application/sdp\r\n", "")
        .replace(
            &format!("Content-Length: {}\r\n\r\n{SDP}", SDP.len()),
            "Content-Length: 0\r\n\r\n",
        );
    a.send_text(lab.scscf, &cancel).await;
    let (c, from) = b.next_request(&Method::Cancel).await;
    b.send_msg(from, &c.response(StatusCode::OK, None).expect("200"))
        .await;
    b.send_msg(from, &answer(&b, &inv, StatusCode::REQUEST_TERMINATED))
        .await;
    let mut finals = Vec::new();
    while finals.len() < 2 {
        finals.push(a.next_final().await);
    }
    let statuses: Vec<Option<StatusCode>> = finals.iter().map(Message::status).collect();
    assert!(statuses.contains(&Some(StatusCode::OK)), "{statuses:?}");
    assert!(
        statuses.contains(&Some(StatusCode::REQUEST_TERMINATED)),
        "{statuses:?}"
    );
    tshark_calls(&mut b, &lab);
    lab.stop().await;
}

/// An AS acting as a proxy (TS 24.229 §5.7.4) on `sock`: it takes one request, removes its
/// own Route, adds its Via and sends it back along the ODI Route to the S-CSCF, then relays
/// the final response. Returns the request as it arrived.
async fn proxy_as_once(sock: tokio::net::UdpSocket, scscf: SocketAddr) -> Message {
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
        .await
        .expect("the AS gets the request")
        .expect("recv");
    let got = Message::parse(buf[..n].to_vec()).expect("valid SIP");
    let mut fwd = got.clone();
    fwd.pop_first_value(&HeaderName::ROUTE);
    let me = sock.local_addr().expect("addr");
    fwd.prepend_header(
        HeaderName::VIA,
        format!(
            "SIP/2.0/UDP {me};branch=z9hG4bKas{}",
            got.cseq().expect("cseq").seq
        ),
    )
    .expect("Via");
    sock.send_to(&fwd.to_bytes(), scscf).await.expect("send");
    loop {
        let (n, from) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
            .await
            .expect("the AS gets the response")
            .expect("recv");
        let mut r = Message::parse(buf[..n].to_vec()).expect("valid SIP");
        if r.status().is_some_and(|s| s.is_provisional()) {
            continue;
        }
        r.pop_first_value(&HeaderName::VIA);
        sock.send_to(&r.to_bytes(), from).await.expect("send");
        return got;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originating_ifc_as_proxies_the_message_back_and_the_scscf_continues_to_the_callee() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let as_sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let as_addr = as_sock.local_addr().expect("addr");
    {
        use imslab_store::model::{SessionCase, SptKind};
        provision_with_ifc(
            &lab,
            61,
            "orig-as",
            vec![
                SptKind::SessionCase(SessionCase::OriginatingRegistered),
                SptKind::Method("MESSAGE".into()),
            ],
            &format!("sip:{as_addr}"),
        )
        .await;
    }
    provision(&lab.store, 62, None, None).await;
    let mut a = Ue::new(61, dir.path(), K_HEX).await;
    let mut b = Ue::new(62, dir.path(), K_HEX).await;
    for ue in [&mut a, &mut b] {
        assert_eq!(
            crate::register_aka(&lab, ue).await.status(),
            Some(StatusCode::OK)
        );
    }
    let as_task = tokio::spawn(proxy_as_once(as_sock, lab.scscf));
    let text = initial(&a, &lab, "MESSAGE", &impu(62), "as-1", "", "hi via AS");
    a.send_text(lab.scscf, &text).await;
    let (m, from) = b.next_request(&Method::Message).await;
    assert_eq!(body(&m), "hi via AS");
    let vias = values(&m, &HeaderName::VIA);
    assert!(
        vias.iter().any(|v| v.contains(&as_addr.to_string())),
        "the request went through the AS: {vias:?}"
    );
    b.send_msg(from, &answer(&b, &m, StatusCode::OK)).await;
    assert_eq!(a.next_final().await.status(), Some(StatusCode::OK));
    let at_as = as_task.await.expect("AS task");
    let routes = values(&at_as, &HeaderName::ROUTE);
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert!(routes[1].contains("odi-"), "{routes:?}");
    assert!(lab.events.has("message", "originating iFC matched"));
    assert!(lab.events.has("message", "originating: to the I-CSCF"));
    tshark_calls(&mut b, &lab);
    lab.stop().await;
}

/// An AS that fails: every request it gets is answered 503 (ACKs are dropped). Counts the
/// session requests (third-party REGISTERs match the same iFC).
fn failing_as(sock: tokio::net::UdpSocket) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let Ok(m) = Message::parse(buf[..n].to_vec()) else {
                continue;
            };
            match m.method() {
                None | Some(Method::Ack) => continue,
                Some(Method::Register) => {}
                Some(_) => {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            if let Ok(r) = m.response(StatusCode::SERVICE_UNAVAILABLE, None) {
                let _ = sock.send_to(&r.to_bytes(), from).await;
            }
        }
    });
    seen
}

/// Caller `caller` with an originating iFC (session case plus `method`, if given) to a
/// failing AS with `handling`, and callee `caller + 1`, both registered.
async fn with_failing_originating_as(
    lab: &Lab,
    dir: &std::path::Path,
    handling: imslab_store::model::DefaultHandling,
    caller: u32,
    method: Option<&str>,
) -> (Ue, Ue, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    with_originating_as(lab, dir, handling, caller, method, failing_as).await
}

/// [`with_failing_originating_as`] with the AS played by `play`.
async fn with_originating_as(
    lab: &Lab,
    dir: &std::path::Path,
    handling: imslab_store::model::DefaultHandling,
    caller: u32,
    method: Option<&str>,
    play: fn(tokio::net::UdpSocket) -> std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> (Ue, Ue, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use imslab_store::model::{SessionCase, SptKind};
    let mut spts = vec![SptKind::SessionCase(SessionCase::OriginatingRegistered)];
    spts.extend(method.map(|m| SptKind::Method(m.into())));
    let as_sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let as_addr = as_sock.local_addr().expect("addr");
    provision_with_ifc_handling(
        lab,
        caller,
        &format!("failing-as-{caller}"),
        spts,
        &format!("sip:{as_addr}"),
        handling,
    )
    .await;
    provision(&lab.store, caller + 1, None, None).await;
    let mut a = Ue::new(caller, dir, K_HEX).await;
    let mut b = Ue::new(caller + 1, dir, K_HEX).await;
    for ue in [&mut a, &mut b] {
        assert_eq!(
            crate::register_aka(lab, ue).await.status(),
            Some(StatusCode::OK)
        );
    }
    (a, b, play(as_sock))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_originating_as_with_session_continued_still_delivers_message_and_invite() {
    use imslab_store::model::DefaultHandling;
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let (mut a, mut b, seen) = with_failing_originating_as(
        &lab,
        dir.path(),
        DefaultHandling::SessionContinued,
        71,
        None,
    )
    .await;

    let text = initial(
        &a,
        &lab,
        "MESSAGE",
        &impu(72),
        "dead-as-m",
        "",
        "still here",
    );
    a.send_text(lab.scscf, &text).await;
    let (m, from) = b.next_request(&Method::Message).await;
    assert_eq!(body(&m), "still here");
    b.send_msg(from, &answer(&b, &m, StatusCode::OK)).await;
    assert_eq!(a.next_final().await.status(), Some(StatusCode::OK));

    let text = initial(&a, &lab, "INVITE", &impu(72), "dead-as-i", "", SDP);
    a.send_text(lab.scscf, &text).await;
    let (inv, from) = b.next_request(&Method::Invite).await;
    assert_eq!(values(&inv, &HeaderName::ROUTE), [b.path()]);
    b.send_msg(from, &answer(&b, &inv, StatusCode::BUSY_HERE))
        .await;
    assert_eq!(a.next_final().await.status(), Some(StatusCode::BUSY_HERE));

    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the AS was tried for both"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        lab.events.has("as", "session continued"),
        "the fallback is reported per UE"
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_originating_as_with_session_terminated_ends_the_message() {
    use imslab_store::model::DefaultHandling;
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let (mut a, mut b, seen) = with_failing_originating_as(
        &lab,
        dir.path(),
        DefaultHandling::SessionTerminated,
        73,
        Some("MESSAGE"),
    )
    .await;

    let text = initial(&a, &lab, "MESSAGE", &impu(74), "dead-as-t", "", "lost");
    a.send_text(lab.scscf, &text).await;
    let r = a.next_final().await;
    let status = r.status().expect("a response");
    assert!(status.as_u16() >= 500, "the AS failure ends it: {r:?}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    let delivered =
        tokio::time::timeout(Duration::from_millis(500), b.next_request(&Method::Message)).await;
    assert!(delivered.is_err(), "the callee got nothing: {delivered:?}");
    assert!(!lab.events.has("as", "session continued"));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_originating_as_with_session_continued_still_delivers_the_message() {
    // Over TCP the connection is refused at once.
    message_past_a_dead_as(";transport=tcp", 75).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_udp_as_is_given_up_on_the_icmp_error_not_at_timer_f() {
    // Over UDP the kernel's ICMP port unreachable fails the branch (503) at once, before the
    // AS timeout (which would be a 408) and Timer F (32 s).
    message_past_a_dead_as("", 79).await;
}

/// An originating iFC for MESSAGE to an AS where nothing listens (`transport` param),
/// SESSION_CONTINUED: the MESSAGE reaches the callee `caller + 1` and the per-UE `as` event
/// says the AS failed with 503.
async fn message_past_a_dead_as(transport: &str, caller: u32) {
    use imslab_store::model::{DefaultHandling, SessionCase, SptKind};
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let dead = if transport.is_empty() {
        free_udp_port()
    } else {
        free_port().await
    };
    provision_with_ifc_handling(
        &lab,
        caller,
        "dead-as",
        vec![
            SptKind::SessionCase(SessionCase::OriginatingRegistered),
            SptKind::Method("MESSAGE".into()),
        ],
        &format!("sip:127.0.0.1:{dead}{transport}"),
        DefaultHandling::SessionContinued,
    )
    .await;
    provision(&lab.store, caller + 1, None, None).await;
    let mut a = Ue::new(caller, dir.path(), K_HEX).await;
    let mut b = Ue::new(caller + 1, dir.path(), K_HEX).await;
    for ue in [&mut a, &mut b] {
        assert_eq!(
            crate::register_aka(&lab, ue).await.status(),
            Some(StatusCode::OK)
        );
    }
    let text = initial(
        &a,
        &lab,
        "MESSAGE",
        &impu(caller + 1),
        "closed-as",
        "",
        "AS down",
    );
    a.send_text(lab.scscf, &text).await;
    let (m, from) = b.next_request(&Method::Message).await;
    assert_eq!(body(&m), "AS down");
    b.send_msg(from, &answer(&b, &m, StatusCode::OK)).await;
    assert_eq!(a.next_final().await.status(), Some(StatusCode::OK));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        lab.events.has("as", "failed (503), session continued"),
        "a transport failure, not the AS timeout"
    );
    lab.stop().await;
}

/// A breakout trunk that challenges the INVITE (CHALLENGE), checks the credentials of the
/// INVITE sent again (CHECK: SIPp's `verifyauth`, or the header's presence where SIPp 3.6.1's
/// `verifyauth` does not look: Proxy-Authorization), with CSeq 2, rings, answers, and takes
/// the ACK (CSeq 2) and the BYE (CSeq 3): the caller's CSeq numbers 1 and 2 as the trunk sees
/// them.
const TRUNK_INVITE_UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="breakout-trunk-invite">
  <recv request="INVITE">
    <action>
      <ereg regexp="^ *1 INVITE" search_in="hdr" header="CSeq:" check_it="true" assign_to="c1" />
    </action>
  </recv>
  <send>
    <![CDATA[
CHALLENGE
Content-Length: 0

]]>
  </send>
  <recv request="ACK" />
  <recv request="INVITE">
    <action>
      <ereg regexp="^ *2 INVITE" search_in="hdr" header="CSeq:" check_it="true" assign_to="c2" />
      CHECK
    </action>
  </recv>
  <nop test="authvalid" next="good" />
  <send>
    <![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=trunk[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]>
  </send>
  <recv request="ACK" next="end" />
  <label id="good" />
  <send>
    <![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=trunk[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:trunk@[local_ip]:[local_port]>
Content-Length: 0

]]>
  </send>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=trunk[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:trunk@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=trunk 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio 41000 RTP/AVP 0
a=rtpmap:0 PCMU/8000

]]>
  </send>
  <recv request="ACK">
    <action>
      <ereg regexp="^ *2 ACK" search_in="hdr" header="CSeq:" check_it="true" assign_to="c3" />
    </action>
  </recv>
  <recv request="BYE">
    <action>
      <ereg regexp="^ *3 BYE" search_in="hdr" header="CSeq:" check_it="true" assign_to="c4" />
    </action>
  </recv>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]>
  </send>
  <label id="end" />
  <Reference variables="c1,c2,c3,c4" />
</scenario>
"#;

/// SIPp as the trunk on a free UDP port with `scenario`, tracing its messages into `dir`.
fn sipp_trunk(dir: &std::path::Path, scenario: &str, port: u16) -> std::process::Child {
    let sipp = imslab_test_support::peer("sipp", "sip-tester");
    std::fs::write(dir.join("trunk.xml"), scenario).expect("xml");
    std::process::Command::new(sipp)
        .current_dir(dir)
        .args([
            "-sf",
            "trunk.xml",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error"])
        .args(["-trace_msg", "-message_file", "trunk_messages.log"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sipp starts")
}

/// The SIP messages SIPp logged as received or sent, in order.
fn sipp_messages(log: &str) -> Vec<(bool, Message)> {
    log.split("----------------------------------------------- ")
        .filter_map(|chunk| {
            let received = chunk.contains("message received");
            let start = chunk.find("\n\n")? + 2;
            let text = chunk[start..].trim_start_matches(['\r', '\n']);
            let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
            let text = match text.find("\r\n\r\n") {
                Some(i) => {
                    let (head, body) = text.split_at(i + 4);
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            (name.eq_ignore_ascii_case("content-length")
                                || name.eq_ignore_ascii_case("l"))
                            .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    format!("{head}{}", &body[..len.min(body.len())])
                }
                None => text,
            };
            Message::parse(text.into_bytes())
                .ok()
                .map(|m| (received, m))
        })
        .collect()
}

/// How the SIPp trunk challenges the INVITE.
#[derive(Clone, Copy)]
enum TrunkChallenge {
    /// 401 with WWW-Authenticate; SIPp's `verifyauth` checks the Authorization.
    Www,
    /// 407 with Proxy-Authenticate and `qop="auth"`; the test checks the digest.
    Proxy,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breakout_invite_challenged_401_by_the_sipp_trunk_is_answered_by_the_scscf_with_cseq_straight_both_ways()
 {
    breakout_invite_through_a_challenging_trunk(TrunkChallenge::Www).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breakout_invite_challenged_407_by_the_sipp_trunk_is_answered_by_the_scscf_with_cseq_straight_both_ways()
 {
    breakout_invite_through_a_challenging_trunk(TrunkChallenge::Proxy).await;
}

async fn breakout_invite_through_a_challenging_trunk(kind: TrunkChallenge) {
    let (challenge, check, answer_header, qop) = match kind {
        TrunkChallenge::Www => (
            "SIP/2.0 401 Unauthorized\n[last_Via:]\n[last_From:]\n[last_To:];tag=trunk[call_number]\n\
             [last_Call-ID:]\n[last_CSeq:]\n\
             WWW-Authenticate: Digest realm=\"trunk.example.net\", nonce=\"5e7a1b2c\", algorithm=MD5",
            r#"<verifyauth assign_to="authvalid" username="lab-trunk" password="tr0nk" />"#,
            HeaderName::AUTHORIZATION,
            false,
        ),
        TrunkChallenge::Proxy => (
            "SIP/2.0 407 Proxy Authentication Required\n[last_Via:]\n[last_From:]\n\
             [last_To:];tag=trunk[call_number]\n[last_Call-ID:]\n[last_CSeq:]\n\
             Proxy-Authenticate: Digest realm=\"trunk.example.net\", nonce=\"5e7a1b2c\", \
             qop=\"auth\", algorithm=MD5",
            r#"<ereg regexp="Digest" search_in="hdr" header="Proxy-Authorization:" assign_to="authvalid" />"#,
            HeaderName::PROXY_AUTHORIZATION,
            true,
        ),
    };
    let scenario = TRUNK_INVITE_UAS
        .replace("CHALLENGE", challenge)
        .replace("CHECK", check);
    let dir = tempfile::tempdir().expect("dir");
    let port = free_udp_port();
    let lab = Lab::start_with(|c| {
        c.scscf.breakout = Some(format!("sip:127.0.0.1:{port}"));
        c.scscf.breakout_username = Some("lab-trunk".into());
        c.scscf.breakout_password = Some("tr0nk".into());
    })
    .await;
    provision(&lab.store, 33, None, None).await;
    let mut a = Ue::new(33, dir.path(), K_HEX).await;
    assert_eq!(
        crate::register_aka(&lab, &mut a).await.status(),
        Some(StatusCode::OK)
    );
    let trunk = sipp_trunk(dir.path(), &scenario, port);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = initial(&a, &lab, "INVITE", "tel:+4930123456", "brk-inv", "", SDP);
    a.send_text(lab.scscf, &text).await;
    let mut ringing = None;
    let ok = loop {
        let (m, _) = a.next_message().await;
        match m.status() {
            Some(s) if s.as_u16() == 180 => ringing = Some(m),
            Some(s) if s.is_final() => break m,
            _ => {}
        }
    };
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");
    let ringing = ringing.expect("the 180 reached the caller");
    for r in [&ringing, &ok] {
        assert_eq!(
            values(r, &HeaderName::CSEQ),
            ["1 INVITE"],
            "the caller's CSeq"
        );
    }
    assert!(
        values(&ok, &HeaderName::RECORD_ROUTE)
            .iter()
            .any(|v| v.contains(&format!("127.0.0.1:{}", lab.scscf.port()))),
        "the S-CSCF Record-Routes the breakout call: {:?}",
        values(&ok, &HeaderName::RECORD_ROUTE)
    );
    let ack = in_dialog(&a, &ok, "ACK", 1, "brk-inv");
    a.send_text(lab.scscf, &ack).await;
    // Back to back: the node decides requests of one Call-ID in arrival order.
    let bye = in_dialog(&a, &ok, "BYE", 2, "brk-inv");
    a.send_text(lab.scscf, &bye).await;
    let done = a.next_final().await;
    assert_eq!(done.status(), Some(StatusCode::OK), "{done:?}");
    assert_eq!(values(&done, &HeaderName::CSEQ), ["2 BYE"]);

    let out = tokio::task::spawn_blocking(move || trunk.wait_with_output())
        .await
        .expect("join")
        .expect("sipp exits");
    let log = std::fs::read_to_string(dir.path().join("trunk_messages.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "SIPp trunk (CSeq checks, verifyauth): {}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The trunk's side, from its own trace: the CSeq numbers and the digest.
    let msgs = sipp_messages(&log);
    let got: Vec<String> = msgs
        .iter()
        .filter(|(rx, _)| *rx)
        .map(|(_, m)| values(m, &HeaderName::CSEQ).join(","))
        .collect();
    assert_eq!(
        got,
        ["1 INVITE", "1 ACK", "2 INVITE", "2 ACK", "3 BYE"],
        "{log}"
    );
    let (_, again) = msgs
        .iter()
        .find(|(rx, m)| {
            *rx && m
                .cseq()
                .is_ok_and(|c| c.seq == 2 && c.method == Method::Invite)
        })
        .expect("the INVITE sent again");
    let first = &msgs[0].1;
    assert_eq!(
        again.call_id().expect("Call-ID"),
        first.call_id().expect("Call-ID")
    );
    assert_eq!(
        again.from_header().expect("From").tag(),
        first.from_header().expect("From").tag()
    );
    assert_ne!(
        again.top_via().expect("Via").branch(),
        first.top_via().expect("Via").branch()
    );
    let auth = values(again, &answer_header).join(",");
    let auth = <imslab_sip::header::Auth<'_> as imslab_sip::TypedHeader>::parse_value(
        &auth,
        if qop {
            "Proxy-Authorization"
        } else {
            "Authorization"
        },
    )
    .expect("parses");
    let uri = again.request_uri_str().expect("R-URI");
    imslab_aka::digest::verify(
        &imslab_aka::Ha1::new("lab-trunk", "trunk.example.net", b"tr0nk"),
        &imslab_aka::DigestRequest {
            nonce: "5e7a1b2c",
            method: "INVITE",
            uri,
            qop: qop.then(|| imslab_aka::QopParams {
                qop: imslab_aka::Qop::Auth,
                nc: imslab_aka::NonceCount::new(1),
                cnonce: auth.get("cnonce").unwrap_or_default(),
            }),
            body: again.body(),
        },
        auth.get("response").expect("response"),
    )
    .expect("the digest is right for the trunk's credentials");
    assert!(
        lab.events
            .has("call", "sent again with the trunk credentials")
    );
    tshark_calls(&mut a, &lab);
    tshark_sipp_trace(dir.path(), &msgs, port, lab.scscf);
    lab.stop().await;
}

/// Writes the trunk's side of the exchange from SIPp's trace into a pcap (S-CSCF ↔ trunk)
/// and decodes it with tshark: no malformed packet, every one SIP.
fn tshark_sipp_trace(
    dir: &std::path::Path,
    msgs: &[(bool, Message)],
    port: u16,
    scscf: SocketAddr,
) {
    let path = dir.join("trunk.pcap");
    let trunk: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut w = imslab_pcap::PcapWriter::new(std::fs::File::create(&path).expect("pcap"))
        .expect("pcap header");
    for (rx, m) in msgs {
        let (src, dst) = if *rx { (scscf, trunk) } else { (trunk, scscf) };
        w.udp(std::time::SystemTime::now(), src, dst, &m.to_bytes())
            .expect("pcap");
    }
    w.flush().expect("flush");
    drop(w);
    let d = format!("udp.port=={port},sip");
    let packets = imslab_test_support::tshark_check(
        &path,
        &["-d", &d],
        &["sip.Method", "sip.Status-Code", "sip.CSeq"],
    );
    assert_eq!(packets.len(), msgs.len());
    assert!(
        packets
            .iter()
            .all(|p| p.fields.iter().any(|f| !f.is_empty())),
        "every packet decodes as SIP: {packets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_contacts_behind_two_pcscf_paths_both_ring_along_their_own_path_and_the_unanswered_one_is_cancelled()
 {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    provision(&lab.store, 41, None, None).await;
    provision(&lab.store, 42, None, None).await;
    let mut a = Ue::new(41, dir.path(), K_HEX).await;
    let mut phone = Ue::new(42, dir.path(), K_HEX).await;
    let tablet_dir = dir.path().join("tablet");
    std::fs::create_dir(&tablet_dir).expect("dir");
    let mut tablet = Ue::new(42, &tablet_dir, K_HEX).await;
    for ue in [&mut a, &mut phone, &mut tablet] {
        let ok = crate::register_aka(&lab, ue).await;
        assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");
    }
    assert_ne!(phone.path(), tablet.path());

    let text = initial(&a, &lab, "INVITE", &impu(42), "call-fork", "", SDP);
    a.send_text(lab.scscf, &text).await;
    let (inv_p, from_p) = phone.next_request(&Method::Invite).await;
    let (inv_t, from_t) = tablet.next_request(&Method::Invite).await;
    for (inv, ue) in [(&inv_p, &phone), (&inv_t, &tablet)] {
        assert_eq!(
            values(inv, &HeaderName::ROUTE),
            [ue.path()],
            "each copy carries its own binding's Path"
        );
        assert_eq!(
            inv.request_uri_str(),
            Some(format!("sip:ue42@{}", ue.addr).as_str())
        );
    }
    assert_ne!(
        inv_p.top_via().expect("Via").branch(),
        inv_t.top_via().expect("Via").branch()
    );
    phone
        .send_msg(from_p, &answer(&phone, &inv_p, StatusCode::RINGING))
        .await;
    tablet
        .send_msg(from_t, &answer(&tablet, &inv_t, StatusCode::RINGING))
        .await;
    tablet
        .send_msg(from_t, &answer(&tablet, &inv_t, StatusCode::OK))
        .await;
    let ok = a.next_final().await;
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");
    let (cancel, from) = phone.next_request(&Method::Cancel).await;
    assert_eq!(
        cancel.top_via().expect("Via").branch(),
        inv_p.top_via().expect("Via").branch()
    );
    assert_eq!(values(&cancel, &HeaderName::ROUTE), [phone.path()]);
    phone
        .send_msg(from, &cancel.response(StatusCode::OK, None).expect("200"))
        .await;
    phone
        .send_msg(
            from,
            &answer(&phone, &inv_p, StatusCode::REQUEST_TERMINATED),
        )
        .await;
    assert!(lab.events.has("call", "forked to 2 contact(s)"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    tshark_calls(&mut phone, &lab);
    tshark_calls(&mut tablet, &lab);
    lab.stop().await;
}

/// An AS that answers an INVITE with 100 Trying and then says nothing more (it died);
/// counts the INVITEs and, separately, the CANCELs it gets (in the thousands).
fn trying_then_dead_as(
    sock: tokio::net::UdpSocket,
) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let Ok(m) = Message::parse(buf[..n].to_vec()) else {
                continue;
            };
            match m.method() {
                Some(Method::Invite) => {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if let Ok(r) = m.response(StatusCode::TRYING, None) {
                        let _ = sock.send_to(&r.to_bytes(), from).await;
                    }
                }
                Some(Method::Cancel) => {
                    count.fetch_add(1000, std::sync::atomic::Ordering::SeqCst);
                }
                _ => {}
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_as_that_sends_100_and_dies_is_passed_over_at_the_as_timeout_not_timer_c() {
    use imslab_store::model::DefaultHandling;
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let (mut a, mut b, seen) = with_originating_as(
        &lab,
        dir.path(),
        DefaultHandling::SessionContinued,
        77,
        Some("INVITE"),
        trying_then_dead_as,
    )
    .await;
    let text = initial(&a, &lab, "INVITE", &impu(78), "dead-as-100", "", SDP);
    let sent = std::time::Instant::now();
    a.send_text(lab.scscf, &text).await;
    // The callee's helper waits 10 s at most: the AS timeout (4 s), not Timer C (180 s).
    let (inv, from) = b.next_request(&Method::Invite).await;
    let waited = sent.elapsed();
    assert!(
        waited >= imslab_scscf::registrar::routing::AS_TIMEOUT,
        "not before the AS timeout: {waited:?}"
    );
    assert_eq!(values(&inv, &HeaderName::ROUTE), [b.path()]);
    b.send_msg(from, &answer(&b, &inv, StatusCode::OK)).await;
    assert_eq!(a.next_final().await.status(), Some(StatusCode::OK));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        1001,
        "one INVITE to the AS, then its CANCEL"
    );
    assert!(lab.events.has("as", "failed (408), session continued"));
    lab.stop().await;
}

/// A trunk that challenges the INVITE with 401, rings on the authenticated one, and then gets
/// the caller's CANCEL, which must name the re-sent INVITE (CSeq 2, its branch).
const TRUNK_CANCEL_UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="breakout-trunk-cancel">
  <recv request="INVITE" />
  <send>
    <![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=trunk[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="trunk.example.net", nonce="77aa11bb", algorithm=MD5
Content-Length: 0

]]>
  </send>
  <recv request="ACK" />
  <recv request="INVITE">
    <action>
      <ereg regexp="branch=([^;,]*)" search_in="hdr" header="Via:" check_it="true" assign_to="v,br" />
    </action>
  </recv>
  <send>
    <![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=trunk[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:trunk@[local_ip]:[local_port]>
Content-Length: 0

]]>
  </send>
  <recv request="CANCEL">
    <action>
      <ereg regexp="^ *2 CANCEL" search_in="hdr" header="CSeq:" check_it="true" assign_to="c1" />
      <ereg regexp="branch=([^;,]*)" search_in="hdr" header="Via:" check_it="true" assign_to="v2,br2" />
    </action>
  </recv>
  <nop>
    <action>
      <strcmp assign_to="same" variable="br" variable2="br2" />
      <test assign_to="samebranch" variable="same" compare="equal" value="0" />
    </action>
  </nop>
  <nop test="samebranch" next="ok" />
  <send>
    <![CDATA[
SIP/2.0 481 Call/Transaction Does Not Exist
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]>
  </send>
  <label id="ok" />
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]>
  </send>
  <send>
    <![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=trunk[call_number]
[last_Call-ID:]
CSeq: 2 INVITE
Content-Length: 0

]]>
  </send>
  <recv request="ACK" />
  <Reference variables="v,v2,c1,same" />
</scenario>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_cancel_of_a_challenged_breakout_invite_cancels_the_resent_transaction() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_udp_port();
    let lab = Lab::start_with(|c| {
        c.scscf.breakout = Some(format!("sip:127.0.0.1:{port}"));
        c.scscf.breakout_username = Some("lab-trunk".into());
        c.scscf.breakout_password = Some("tr0nk".into());
    })
    .await;
    provision(&lab.store, 35, None, None).await;
    let mut a = Ue::new(35, dir.path(), K_HEX).await;
    assert_eq!(
        crate::register_aka(&lab, &mut a).await.status(),
        Some(StatusCode::OK)
    );
    let trunk = sipp_trunk(dir.path(), TRUNK_CANCEL_UAS, port);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = initial(&a, &lab, "INVITE", "tel:+4930123456", "brk-can", "", SDP);
    a.send_text(lab.scscf, &text).await;
    loop {
        let (m, _) = a.next_message().await;
        if m.status().is_some_and(|s| s.as_u16() == 180) {
            assert_eq!(values(&m, &HeaderName::CSEQ), ["1 INVITE"]);
            break;
        }
    }
    let invite = Message::parse(text.into_bytes()).expect("parses");
    let cancel = imslab_sip::transaction::build_cancel(&invite).expect("CANCEL");
    a.send_msg(lab.scscf, &cancel).await;
    let mut finals = Vec::new();
    while finals.len() < 2 {
        let m = a.next_final().await;
        finals.push((
            m.status().map_or(0, |s| s.as_u16()),
            values(&m, &HeaderName::CSEQ).join(","),
        ));
    }
    finals.sort();
    assert_eq!(
        finals,
        [(200, "1 CANCEL".to_owned()), (487, "1 INVITE".to_owned())]
    );
    let out = tokio::task::spawn_blocking(move || trunk.wait_with_output())
        .await
        .expect("join")
        .expect("sipp exits");
    let log = std::fs::read_to_string(dir.path().join("trunk_messages.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "SIPp trunk (CANCEL CSeq and branch): {}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = sipp_messages(&log);
    let cancel_status: Vec<u16> = msgs
        .iter()
        .filter(|(rx, m)| !*rx && m.cseq().is_ok_and(|c| c.method == Method::Cancel))
        .filter_map(|(_, m)| m.status().map(|s| s.as_u16()))
        .collect();
    assert_eq!(
        cancel_status,
        [200],
        "the CANCEL matched the re-sent INVITE"
    );
    tshark_calls(&mut a, &lab);
    tshark_sipp_trace(dir.path(), &msgs, port, lab.scscf);
    lab.stop().await;
}
