//! Our client against our server on loopback TCP and TLS.

use std::sync::Arc;
use std::time::Duration;

use imslab_diameter::cx::{CxResult, Uaa};
use imslab_diameter::{ExperimentalResultCode, dict};
use imslab_diameter_io::{
    DiameterNode, NodeOptions, PcapTap, PeerOptions, RefuseRequests, Transport, tls,
};
use imslab_test_support::tshark_check;

use crate::support::{REALM, caps, id, origin, outcome, realm, start_hss, uar};

#[tokio::test]
async fn client_and_server_exchange_capabilities_and_a_uar() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("loopback.pcap");
    let tap = Arc::new(PcapTap::create(&pcap).expect("pcap"));
    let mut sopts = NodeOptions::new(caps("hss.ims.example", REALM));
    sopts
        .peers
        .push(PeerOptions::accept(id("icscf.ims.example"), realm(REALM)));
    sopts.tap = Some(tap.clone());
    let hss = start_hss(sopts).await;
    let addr = hss.local_addr().expect("listening");

    let mut copts = NodeOptions::new(caps("icscf.ims.example", REALM));
    copts.peers.push(PeerOptions::connect_tcp(
        id("hss.ims.example"),
        realm(REALM),
        addr,
    ));
    let icscf = DiameterNode::start(
        copts,
        RefuseRequests(origin("icscf.ims.example", REALM)),
        None,
    )
    .expect("client");
    icscf
        .wait_peer_up("hss.ims.example", Duration::from_secs(5))
        .await
        .expect("CER/CEA done");

    let ans = icscf
        .request(uar("icscf.ims.example", REALM, REALM, "alice").to_message())
        .await
        .expect("answered");
    let uaa = Uaa::decode(&ans).expect("a valid UAA");
    assert_eq!(
        uaa.result,
        CxResult::experimental(ExperimentalResultCode::DIAMETER_FIRST_REGISTRATION)
    );
    assert_eq!(
        uaa.server_name.as_deref(),
        Some("sip:scscf.ims.example:6060")
    );
    assert_eq!(uaa.session_id, "icscf.ims.example;alice;1");

    let ans = icscf
        .request(uar("icscf.ims.example", REALM, REALM, "mallory").to_message())
        .await
        .expect("answered");
    assert_eq!(outcome(&ans), Some(5001));

    icscf.shutdown().await;
    hss.shutdown().await;
    tap.flush().expect("flush");
    let port = addr.port().to_string();
    let decode_as = format!("tcp.port=={port},diameter");
    let packets = tshark_check(
        &pcap,
        &["-d", &decode_as, "-Y", "diameter"],
        &[
            "diameter.cmd.code",
            "diameter.flags.request",
            "diameter.applicationId",
        ],
    );
    let codes: Vec<&str> = packets.iter().map(|p| p.fields[0].as_str()).collect();
    assert_eq!(
        codes,
        ["257", "257", "300", "300", "300", "300", "282", "282"],
        "CER/CEA, 2 UAR/UAA, DPR/DPA"
    );
}

#[tokio::test]
async fn requests_for_an_unconfigured_realm_fail_with_no_route() {
    let opts = NodeOptions::new(caps("icscf.ims.example", REALM));
    let node = DiameterNode::start(
        opts,
        RefuseRequests(origin("icscf.ims.example", REALM)),
        None,
    )
    .expect("node");
    let err = node
        .request(uar("icscf.ims.example", REALM, "nowhere.example", "alice").to_message())
        .await
        .expect_err("no route");
    assert!(err.to_string().contains("no usable peer"), "{err}");
    node.shutdown().await;
}

#[tokio::test]
async fn tls_transport_carries_capability_exchange_and_requests() {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["hss.ims.example".to_owned()]).expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    let server_tls = tls::server_config(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .expect("server config");
    let client_tls = tls::client_config(cert.pem().as_bytes()).expect("client config");

    let mut sopts = NodeOptions::new(caps("hss.ims.example", REALM));
    sopts.accept_unknown_peers = true;
    sopts.tls_server = Some(server_tls);
    let hss = start_hss(sopts).await;
    let addr = hss.local_addr().expect("listening");

    let mut copts = NodeOptions::new(caps("scscf.ims.example", REALM));
    let mut peer = PeerOptions::connect_tcp(id("hss.ims.example"), realm(REALM), addr);
    peer.transport = Transport::Tls {
        config: client_tls,
        server_name: "hss.ims.example".into(),
    };
    copts.peers.push(peer);
    let scscf = DiameterNode::start(
        copts,
        RefuseRequests(origin("scscf.ims.example", REALM)),
        None,
    )
    .expect("client");
    scscf
        .wait_peer_up("hss.ims.example", Duration::from_secs(5))
        .await
        .expect("TLS + CER/CEA");
    let ans = scscf
        .request(uar("scscf.ims.example", REALM, REALM, "alice").to_message())
        .await
        .expect("answered over TLS");
    assert_eq!(outcome(&ans), Some(2001));
    scscf.shutdown().await;
    hss.shutdown().await;
}

#[tokio::test]
async fn requests_fail_over_to_the_second_server_when_the_first_goes_away() {
    let mut s1 = NodeOptions::new(caps("hss1.ims.example", REALM));
    s1.accept_unknown_peers = true;
    let hss1 = start_hss(s1).await;
    let mut s2 = NodeOptions::new(caps("hss2.ims.example", REALM));
    s2.accept_unknown_peers = true;
    let hss2 = start_hss(s2).await;

    let mut copts = NodeOptions::new(caps("icscf.ims.example", REALM));
    copts.peers.push(PeerOptions::connect_tcp(
        id("hss1.ims.example"),
        realm(REALM),
        hss1.local_addr().expect("addr"),
    ));
    copts.peers.push(PeerOptions::connect_tcp(
        id("hss2.ims.example"),
        realm(REALM),
        hss2.local_addr().expect("addr"),
    ));
    let icscf = DiameterNode::start(
        copts,
        RefuseRequests(origin("icscf.ims.example", REALM)),
        None,
    )
    .expect("client");
    icscf
        .wait_peer_up("hss1.ims.example", Duration::from_secs(5))
        .await
        .expect("hss1 up");
    icscf
        .wait_peer_up("hss2.ims.example", Duration::from_secs(5))
        .await
        .expect("hss2 up");
    let first = icscf
        .request(uar("icscf.ims.example", REALM, REALM, "alice").to_message())
        .await
        .expect("answered");
    assert_eq!(
        first
            .find(&dict::ORIGIN_HOST)
            .and_then(|a| a.as_utf8().ok()),
        Some("hss1.ims.example")
    );

    hss1.shutdown().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = icscf
        .request(uar("icscf.ims.example", REALM, REALM, "alice").to_message())
        .await
        .expect("answered");
    assert_eq!(
        second
            .find(&dict::ORIGIN_HOST)
            .and_then(|a| a.as_utf8().ok()),
        Some("hss2.ims.example")
    );
    icscf.shutdown().await;
    hss2.shutdown().await;
}
