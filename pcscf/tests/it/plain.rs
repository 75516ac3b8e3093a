//! `pcscf.ipsec.mode: off`: phones without sec-agree, restart safety, the capture.

use std::time::Duration;

use imslab_config::IpsecMode;
use imslab_sip::{HeaderName, StatusCode};

use crate::harness::{Lab, PlainUe, TestUe, lab_lock};

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
