//! `pcscf.ipsec.mode: off`: phones without sec-agree, restart safety, the capture.

use std::time::Duration;

use imslab_config::IpsecMode;
use imslab_sip::{HeaderName, StatusCode};

use crate::harness::{DOMAIN, Lab, PlainUe, TestUe, aka_authorization, lab_lock, usim};

#[tokio::test]
async fn with_ipsec_off_a_phone_registers_without_sec_agree_and_is_asserted() {
    let _g = lab_lock().await;
    let lab = Lab::start(IpsecMode::Off).await;
    let mut ue = PlainUe::new(&lab, 1).await;
    assert_eq!(ue.register(600).await.status(), Some(StatusCode::OK));
    let s = lab
        .wait_status("registered", |s| s.registrations == 1)
        .await;
    assert_eq!(s.sa_sets, 0);
    let resp = ue.message().await;
    assert_eq!(resp.status(), Some(StatusCode::OK));
    let fwd = lab.core_log.lock().unwrap().requests[0].clone();
    assert_eq!(
        fwd.header_str(&HeaderName::P_ASSERTED_IDENTITY)
            .unwrap()
            .unwrap(),
        format!("<{}>", ue.impu)
    );
    assert!(
        fwd.header_str(&HeaderName::ROUTE)
            .unwrap()
            .unwrap()
            .contains("orig@")
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rows = lab.store.pcscf(&lab.owner).all().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].impu.as_str(), ue.impu);
}

#[tokio::test]
async fn unregistered_phone_gets_403_and_a_sec_agree_phone_gets_420_when_ipsec_is_off() {
    let _g = lab_lock().await;
    let lab = Lab::start(IpsecMode::Off).await;
    let mut ue = PlainUe::new(&lab, 2).await;
    assert_eq!(ue.message().await.status(), Some(StatusCode::FORBIDDEN));
    assert!(
        lab.events
            .has("forbidden", "Failed", "not a registered phone")
    );
    let mut ipsec_ue = TestUe::new(&lab, 3).await;
    let resp = ipsec_ue.first_register_plain().await;
    assert_eq!(resp.status(), Some(StatusCode::BAD_EXTENSION));
    assert!(lab.events.has("sec-agree", "Failed", "420"));
}

#[tokio::test]
async fn a_restarted_pcscf_keeps_its_registered_phones() {
    let _g = lab_lock().await;
    let mut lab = Lab::start(IpsecMode::Off).await;
    let mut ue = PlainUe::new(&lab, 4).await;
    assert_eq!(ue.register(600).await.status(), Some(StatusCode::OK));
    lab.wait_status("registered", |s| s.registrations == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    lab.restart().await;
    ue.pcscf = lab.pcscf;
    lab.wait_status("restored", |s| s.registrations == 1).await;
    assert_eq!(ue.message().await.status(), Some(StatusCode::OK));
}

#[tokio::test]
async fn the_capture_decodes_in_tshark_and_the_esp_sa_file_lists_every_sa() {
    let _g = lab_lock().await;
    let mut lab = Lab::start_with(IpsecMode::Userspace, |c| c.pcscf.pcap = true).await;
    let mut ue = TestUe::new(&lab, 5).await;
    assert_eq!(ue.register().await.status(), Some(StatusCode::OK));
    let msg = ue.message(None);
    ue.send_protected(&msg).await;
    assert_eq!(ue.recv_protected().await.2.status(), Some(StatusCode::OK));
    let dir = lab.dir.path().to_owned();
    lab.stop().await;
    let pcap = dir.join(imslab_pcscf::PCAP_FILE);
    let port = |p: u16| format!("udp.port=={p},sip");
    let packets = imslab_test_support::tshark_check(
        &pcap,
        &["-d", &port(6100), "-d", &port(5100)],
        &["sip.Method", "sip.Status-Code", "udp.dstport"],
    );
    let methods: Vec<&str> = packets.iter().map(|p| p.fields[0].as_str()).collect();
    assert!(
        methods.iter().filter(|m| **m == "REGISTER").count() >= 4,
        "{methods:?}"
    );
    assert!(methods.contains(&"MESSAGE"));
    assert!(methods.contains(&"SUBSCRIBE"));
    assert!(packets.iter().any(|p| p.fields[1] == "401"));
    // The protected REGISTER arrived at port-s, decrypted into the capture.
    assert!(
        packets
            .iter()
            .any(|p| p.fields[0] == "REGISTER" && p.fields[2] == "6100"),
        "{packets:?}"
    );
    let sa = std::fs::read_to_string(dir.join(imslab_pcscf::ESP_SA_FILE)).unwrap();
    let lines: Vec<&str> = sa.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 4, "{sa}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("AES-CBC") && l.contains("HMAC-SHA-1-96"))
    );
}

#[tokio::test]
async fn websocket_phone_is_aliased_registered_and_reached_over_its_connection() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let _g = lab_lock().await;
    let lab = Lab::start_with(IpsecMode::Off, |c| {
        c.pcscf.ws_listen = Some(std::net::SocketAddr::new(c.pcscf.listen.ip(), 0));
    })
    .await;
    let ws_addr = lab.ws.expect("WS listener");
    let mut req = format!("ws://{ws_addr}/").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let user = "001010000000009";
    let impu = format!("sip:{user}@{DOMAIN}");
    let impi = format!("{user}@{DOMAIN}");
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKws{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <{impu}>;tag=w{cseq}\r\nTo: <{impu}>\r\nCall-ID: ws-reg\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@df7jal23ls0d.invalid;transport=ws>;expires=600\r\n\
             Authorization: {auth}\r\nSupported: path, outbound\r\nContent-Length: 0\r\n\r\n"
        )
    };
    async fn next_sip(
        ws: &mut tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> imslab_sip::Message {
        loop {
            let f = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("a frame")
                .unwrap()
                .unwrap();
            match f {
                Ws::Text(t) => return imslab_sip::Message::parse(t.as_bytes().to_vec()).unwrap(),
                Ws::Binary(b) => return imslab_sip::Message::parse(b).unwrap(),
                _ => {}
            }
        }
    }
    let empty = format!(
        "Digest username=\"{impi}\", realm=\"{DOMAIN}\", nonce=\"\", uri=\"sip:{DOMAIN}\", response=\"\""
    );
    ws.send(Ws::text(register(1, &empty))).await.unwrap();
    let challenge = next_sip(&mut ws).await;
    assert_eq!(challenge.status(), Some(StatusCode::UNAUTHORIZED));
    let auth = aka_authorization(&mut usim(), &impi, &challenge);
    ws.send(Ws::text(register(2, &auth))).await.unwrap();
    let ok = next_sip(&mut ws).await;
    assert_eq!(ok.status(), Some(StatusCode::OK));
    let contact = ok
        .header_str(&HeaderName::CONTACT)
        .unwrap()
        .unwrap()
        .to_owned();
    assert!(
        !contact.contains("alias"),
        "the phone sees its own contact: {contact}"
    );
    // The core saw the aliased contact and the Path with the flow token.
    let (aliased, path) = {
        let log = lab.core_log.lock().unwrap();
        let reg = log.registers.last().unwrap().clone();
        let c = reg
            .contacts()
            .next()
            .unwrap()
            .unwrap()
            .addr()
            .unwrap()
            .uri
            .to_string();
        let p = reg
            .header_str(&HeaderName::PATH)
            .unwrap()
            .unwrap()
            .to_owned();
        (c, p)
    };
    assert!(
        aliased.contains(";alias=") && aliased.ends_with("~5"),
        "{aliased}"
    );
    // A terminating MESSAGE routed by the Path reaches the phone over its WebSocket.
    let message = imslab_sip::Message::parse(
        format!(
            "MESSAGE {aliased} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKterm1\r\n\
             Max-Forwards: 69\r\nRoute: {path}\r\nFrom: <sip:bob@{DOMAIN}>;tag=b\r\nTo: <{impu}>\r\n\
             Call-ID: term-ws\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
            lab.core_addr
        )
        .into_bytes(),
    )
    .unwrap();
    lab.core_sends(message);
    let got = next_sip(&mut ws).await;
    assert_eq!(got.method(), Some(&imslab_sip::Method::Message));
    assert_eq!(
        got.request_uri_str(),
        Some(format!("sip:{user}@df7jal23ls0d.invalid;transport=ws").as_str())
    );
}
