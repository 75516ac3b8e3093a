//! The real chain: phone → P-CSCF (userspace ESP) → I-CSCF → S-CSCF → HSS (Cx, SQLite), all
//! on loopback, with the phone's USIM doing IMS AKA.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use imslab_config::{IpsecMode, ScscfEntry};
use imslab_sip::{HeaderName, Method, StatusCode};
use imslab_store::provision::{ImpuInput, NewSubscriber, ProvisionDefaults, SubscriberInput};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::harness::{DOMAIN, K_HEX, Lab, OPC_HEX, TestUe, ip, lab_lock};

const HSS_HOST: &str = "hss.ims.mnc001.mcc001.3gppnetwork.org";

async fn free_port(host: std::net::IpAddr) -> u16 {
    loop {
        let u = UdpSocket::bind(SocketAddr::new(host, 0)).await.unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind((host, port)).await.is_ok() {
            return port;
        }
    }
}

async fn provision(store: &imslab_store::Store, n: u32) {
    let defaults = ProvisionDefaults::new(imslab_types::Realm::new(DOMAIN).unwrap());
    let imsi = format!("00101{n:010}");
    let input = SubscriberInput {
        imsi: imsi.clone(),
        k: K_HEX.into(),
        opc: Some(OPC_HEX.into()),
        amf: Some("0000".into()),
        msisdn: Some(format!("1555000{n}")),
        impus: vec![
            ImpuInput::Uri(format!("sip:{imsi}@{DOMAIN}")),
            ImpuInput::Uri(format!("tel:+1555000{n}")),
        ],
        ..SubscriberInput::default()
    };
    let new = NewSubscriber::from_input(&input, &defaults).unwrap();
    store
        .subscribers()
        .insert_all(&[new], SystemTime::now())
        .await
        .unwrap();
}

/// The I-CSCF, S-CSCF and HSS of a lab, on its network address.
pub(crate) struct Core {
    pub(crate) stop: CancellationToken,
    pub(crate) hss: imslab_hss::Hss,
}

pub(crate) async fn start_core(
    lab_net: u8,
    store: imslab_store::Store,
    cfg: &mut imslab_config::Config,
    events: std::sync::Arc<dyn imslab_types::UeEventSink>,
) -> Core {
    let host = ip(lab_net, 1);
    let hss_listener = TcpListener::bind(SocketAddr::new(host, 0)).await.unwrap();
    cfg.hss.listen = hss_listener.local_addr().unwrap();
    let hss = imslab_hss::Hss::start(
        &cfg.hss,
        &cfg.network.domain,
        store.clone(),
        hss_listener,
        events.clone(),
    )
    .unwrap();
    let scscf_port = free_port(host).await;
    cfg.scscf.listen = SocketAddr::new(host, scscf_port);
    cfg.scscf.uri = format!("sip:{host}:{scscf_port}");
    cfg.scscf.hss = cfg.hss.listen;
    cfg.icscf.listen = SocketAddr::new(host, free_port(host).await);
    cfg.icscf.hss = cfg.hss.listen;
    cfg.icscf.scscfs = vec![ScscfEntry {
        uri: cfg.scscf.uri.clone(),
        address: None,
        capabilities: vec![],
    }];
    let stop = CancellationToken::new();
    let dir = std::path::PathBuf::from(".");
    let scscf = imslab_scscf::Server::bind(cfg, store.clone(), events.clone(), &dir)
        .await
        .unwrap();
    scscf
        .diameter()
        .wait_peer_up(HSS_HOST, Duration::from_secs(10))
        .await
        .unwrap();
    let icscf = imslab_icscf::Server::bind(cfg, store, events, &dir)
        .await
        .unwrap();
    icscf
        .diameter()
        .wait_peer_up(HSS_HOST, Duration::from_secs(10))
        .await
        .unwrap();
    let s = stop.clone();
    tokio::spawn(async move { scscf.run(s).await.unwrap() });
    let s = stop.clone();
    tokio::spawn(async move { icscf.run(s).await.unwrap() });
    Core { stop, hss }
}

#[tokio::test]
async fn ims_aka_registration_through_the_real_icscf_scscf_and_hss_with_ipsec_and_a_call_between_two_phones()
 {
    let _g = lab_lock().await;
    let mut lab = Lab::unlaunched(IpsecMode::Userspace).await;
    provision(&lab.store, 1).await;
    provision(&lab.store, 2).await;
    let events: std::sync::Arc<dyn imslab_types::UeEventSink> = lab.events.clone();
    let core = start_core(lab.net, lab.store.clone(), &mut lab.cfg, events).await;
    lab.cfg.pcscf.icscf = lab.cfg.icscf.listen;
    lab.launch().await.unwrap();
    let mut alice = TestUe::new(&lab, 1).await;
    let mut bob = TestUe::new(&lab, 2).await;
    assert_eq!(alice.register().await.status(), Some(StatusCode::OK));
    assert_eq!(bob.register().await.status(), Some(StatusCode::OK));
    // The P-CSCF subscribed to both reg events and the S-CSCF accepted (with a NOTIFY).
    let s = lab
        .wait_status("registered and subscribed", |s| {
            s.registrations == 2 && s.sa_sets == 2 && s.subscriptions == 2
        })
        .await;
    assert_eq!(s.stats.forbidden, 0);
    assert!(lab.events.has("reg-event", "Ok", "subscribed"));
    // Alice → P-CSCF → S-CSCF (Service-Route) → Path → P-CSCF → Bob over his SAs.
    let msg = alice.message_to(&bob.impu);
    alice.send_protected(&msg).await;
    let (from, to, got) = bob.recv_protected().await;
    assert_eq!(got.method(), Some(&Method::Message));
    assert_eq!(
        from.port(),
        5100,
        "requests to a phone leave from the P-CSCF's port-c"
    );
    assert_eq!(to.port(), bob.port_s, "and reach the phone's port-s");
    assert_eq!(
        got.header_str(&HeaderName::P_ASSERTED_IDENTITY)
            .unwrap()
            .unwrap(),
        format!("<{}>", alice.impu)
    );
    assert!(!got.has_header(&HeaderName::P_CHARGING_VECTOR));
    bob.answer(&got, StatusCode::OK).await;
    let (_, _, resp) = alice.recv_protected().await;
    assert_eq!(resp.status(), Some(StatusCode::OK));
    // Re-registration over the SAs: the S-CSCF needs no new challenge (integrity-protected).
    let ok = alice.refresh().await;
    assert_eq!(ok.status(), Some(StatusCode::OK));
    // De-registration: SAs gone, and the S-CSCF's terminated NOTIFY ends the subscription.
    assert_eq!(alice.deregister().await.status(), Some(StatusCode::OK));
    let s = lab
        .wait_status("alice gone", |s| {
            s.registrations == 1 && s.sa_sets == 1 && s.subscriptions == 1
        })
        .await;
    assert_eq!(s.esp_sas, (2, 2));
    core.stop.cancel();
    core.hss.shutdown().await;
}

/// `req` as text with `from` replaced by `to` (method lines, CSeq, headers).
fn rewrite(m: &imslab_sip::Message, pairs: &[(&str, &str)]) -> imslab_sip::Message {
    let mut text = String::from_utf8(m.to_bytes().to_vec()).unwrap();
    for (a, b) in pairs {
        text = text.replace(a, b);
    }
    imslab_sip::Message::parse(text.into_bytes()).unwrap()
}

/// The next request or response over the SAs for which `pick` holds (others skipped).
async fn recv_until(
    lab: &Lab,
    ue: &TestUe,
    what: &str,
    pick: impl Fn(&imslab_sip::Message) -> bool,
) -> imslab_sip::Message {
    loop {
        let Ok((_, _, m)) = tokio::time::timeout(Duration::from_secs(3), ue.recv_protected()).await
        else {
            panic!("{what} never came; timeline:\n{:#?}", lab.events.steps());
        };
        if pick(&m) {
            return m;
        }
    }
}

#[tokio::test]
async fn a_call_between_two_ipsec_phones_through_the_real_scscf_sets_up_and_tears_down() {
    let _g = lab_lock().await;
    let mut lab = Lab::unlaunched(IpsecMode::Userspace).await;
    provision(&lab.store, 1).await;
    provision(&lab.store, 2).await;
    let events: std::sync::Arc<dyn imslab_types::UeEventSink> = lab.events.clone();
    let core = start_core(lab.net, lab.store.clone(), &mut lab.cfg, events).await;
    lab.cfg.pcscf.icscf = lab.cfg.icscf.listen;
    lab.launch().await.unwrap();
    let mut alice = TestUe::new(&lab, 1).await;
    let mut bob = TestUe::new(&lab, 2).await;
    assert_eq!(alice.register().await.status(), Some(StatusCode::OK));
    assert_eq!(bob.register().await.status(), Some(StatusCode::OK));
    lab.wait_status("registered", |s| s.registrations == 2 && s.sa_sets == 2)
        .await;
    // Alice's INVITE (built from her MESSAGE: same Via, Route and identities).
    let msg = alice.message_to(&bob.impu);
    let contact = format!("Contact: <{}>\r\nContent-Length: 0\r\n\r\n", alice.contact);
    let invite = rewrite(
        &msg,
        &[
            ("MESSAGE sip:", "INVITE sip:"),
            ("1 MESSAGE", "1 INVITE"),
            (
                "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
                &contact,
            ),
        ],
    );
    alice.send_protected(&invite).await;
    let got = recv_until(&lab, &bob, "INVITE at bob", |m| {
        m.method() == Some(&Method::Invite)
    })
    .await;
    let rr: Vec<String> = got
        .record_routes()
        .map(|r| r.unwrap().to_string())
        .collect();
    assert!(
        rr[0].contains(":6100;lr"),
        "the callee's route set starts at the P-CSCF's port-s: {rr:?}"
    );
    assert!(
        got.header_str(&HeaderName::VIA)
            .unwrap()
            .unwrap()
            .contains(":5100;"),
        "the Via toward the phone shows port-c"
    );
    assert_eq!(
        got.header_str(&HeaderName::P_ASSERTED_IDENTITY)
            .unwrap()
            .unwrap(),
        format!("<{}>", alice.impu)
    );
    bob.answer(&got, StatusCode::RINGING).await;
    let mut ok = got.response(StatusCode::OK, Some("ue-answer")).unwrap();
    ok.push_header(HeaderName::CONTACT, format!("<{}>", bob.contact))
        .unwrap();
    // RFC 3261 §12.1.1: the UAS copies Record-Route into the 2xx.
    for r in &rr {
        ok.push_header(HeaderName::RECORD_ROUTE, r.clone()).unwrap();
    }
    bob.esp
        .send_udp(
            bob.port_s,
            SocketAddr::new(lab.pcscf.ip(), 5100),
            &ok.to_bytes(),
        )
        .await
        .unwrap();
    let answered = recv_until(&lab, &alice, "200 at alice", |m| {
        m.status() == Some(StatusCode::OK)
    })
    .await;
    assert_eq!(lab.status().dialogs, 2, "one dialog entry per phone side");
    // Alice hangs up along the route set of the 200 (its Record-Route reversed).
    let mut routes: Vec<String> = answered
        .record_routes()
        .map(|r| r.unwrap().to_string())
        .collect();
    routes.reverse();
    let bye = format!(
        "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {}:{};branch=z9hG4bKbye1\r\nMax-Forwards: 70\r\n\
         Route: {}\r\nFrom: <{}>;tag={}\r\nTo: <{}>;tag=ue-answer\r\nCall-ID: {}\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        bob.contact,
        alice.ip,
        alice.port_c,
        routes.join(", "),
        alice.impu,
        invite.from_header().unwrap().tag().unwrap(),
        bob.impu,
        invite.call_id().unwrap().as_str()
    );
    alice
        .send_protected(&imslab_sip::Message::parse(bye.into_bytes()).unwrap())
        .await;
    let got_bye = recv_until(&lab, &bob, "BYE at bob", |m| {
        m.method() == Some(&Method::Bye)
    })
    .await;
    bob.answer(&got_bye, StatusCode::OK).await;
    let done = recv_until(&lab, &alice, "200 to BYE at alice", |m| {
        m.status() == Some(StatusCode::OK) && m.cseq().is_ok_and(|c| c.method == Method::Bye)
    })
    .await;
    assert_eq!(done.status(), Some(StatusCode::OK));
    lab.wait_status("dialogs released", |s| s.dialogs == 0)
        .await;
    assert!(lab.events.has("call", "Ok", "BYE"));
    core.stop.cancel();
    core.hss.shutdown().await;
}
