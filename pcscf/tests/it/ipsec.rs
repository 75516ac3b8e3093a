//! Security agreement and userspace ESP end to end (TS 33.203 §7, TS 24.229 §5.2.2).

use std::time::Duration;

use imslab_config::IpsecMode;
use imslab_ipsec::esp::{OutboundSa, next_header};
use imslab_ipsec::xfrm::{EspSupport, XfrmBackend, XfrmConfig};
use imslab_ipsec::{CipherSuite, EncryptionAlg, IntegrityAlg, SaRole};
use imslab_sip::{HeaderName, StatusCode};

use crate::harness::{Lab, TestUe, lab_lock, lab_lock_exclusive};

#[tokio::test]
async fn registration_with_every_alg_and_ealg_pair_over_userspace_esp() {
    let _g = lab_lock().await;
    let lab = Lab::start(IpsecMode::Userspace).await;
    let mut n = 0;
    for integrity in IntegrityAlg::ALL {
        for encryption in EncryptionAlg::ALL {
            n += 1;
            let mut ue = TestUe::new(&lab, n).await;
            ue.suite = CipherSuite::new(integrity, encryption);
            let ok = ue.register().await;
            assert_eq!(
                ok.status(),
                Some(StatusCode::OK),
                "{integrity:?}/{encryption:?}"
            );
            // Over the new SAs the phone is served: a MESSAGE gets through with its identity.
            let msg = ue.message(None);
            ue.send_protected(&msg).await;
            let (from, to, resp) = ue.recv_protected().await;
            assert_eq!(resp.status(), Some(StatusCode::OK));
            assert_eq!(from.port(), 6100, "responses come from the P-CSCF's port-s");
            assert_eq!(to.port(), ue.port_c);
            let s = lab
                .wait_status("sets", |s| {
                    s.sa_sets == n as usize && s.registrations == n as usize
                })
                .await;
            assert_eq!(s.esp_sas, (2 * n as usize, 2 * n as usize));
        }
    }
    let log = lab.core_log.lock().unwrap();
    assert_eq!(log.requests.len(), 6);
    for m in &log.requests {
        let pai = m
            .header_str(&HeaderName::P_ASSERTED_IDENTITY)
            .unwrap()
            .unwrap();
        assert!(pai.starts_with("<sip:00101"), "{pai}");
    }
    assert!(lab.events.has("ipsec-sa", "Ok", "installed"));
    assert!(lab.events.has("registered", "Ok", "IPsec"));
}

#[tokio::test]
async fn reregistration_switches_to_new_sas_and_retires_the_old_ones() {
    let _g = lab_lock().await;
    let lab = Lab::start(IpsecMode::Userspace).await;
    let mut ue = TestUe::new(&lab, 1).await;
    assert_eq!(ue.register().await.status(), Some(StatusCode::OK));
    let first_spi = ue.bundle.as_ref().unwrap().remote.spi_s;
    assert_eq!(ue.reregister().await.status(), Some(StatusCode::OK));
    assert_ne!(ue.bundle.as_ref().unwrap().remote.spi_s, first_spi);
    lab.wait_status("old and new sets", |s| s.sa_sets == 2)
        .await;
    // The phone uses the new SAs: the old set goes (TS 33.203 §7.4).
    let msg = ue.message(Some("tel:+15550100"));
    ue.send_protected(&msg).await;
    assert_eq!(ue.recv_protected().await.2.status(), Some(StatusCode::OK));
    let s = lab.wait_status("old set removed", |s| s.sa_sets == 1).await;
    assert_eq!(s.spis_in_use, 2);
    assert_eq!(s.esp_sas, (2, 2));
    let log = lab.core_log.lock().unwrap();
    let pai = log.requests[0]
        .header_str(&HeaderName::P_ASSERTED_IDENTITY)
        .unwrap()
        .unwrap()
        .to_owned();
    assert_eq!(pai, "<tel:+15550100>");
    assert!(lab.events.has("ipsec-sa", "Info", "superseded"));
}

#[tokio::test]
async fn wrong_security_verify_is_rejected_and_the_new_sas_dropped() {
    let _g = lab_lock().await;
    let lab = Lab::start(IpsecMode::Userspace).await;
    let mut ue = TestUe::new(&lab, 1).await;
    // Run the first half of the registration by hand, then tamper with Security-Verify.
    ue.reg_until_challenge().await;
    let genuine = ue.security_server.clone().unwrap();
    ue.security_server = Some(genuine.replace("hmac-sha-1-96", "hmac-md5-96"));
    let resp = ue.send_protected_register().await;
    assert_eq!(resp.status().unwrap().as_u16(), 494);
    let s = lab
        .wait_status("temporary set dropped", |s| s.sa_sets == 0)
        .await;
    assert_eq!(s.esp_sas, (0, 0));
    assert_eq!(s.registrations, 0);
    assert!(lab.events.has("sec-verify", "Failed", "bid-down"));
    assert!(lab.core_log.lock().unwrap().requests.is_empty());
}

#[tokio::test]
async fn esp_with_a_bad_icv_or_a_replayed_sequence_number_is_dropped_and_counted() {
    let _g = lab_lock().await;
    let lab = Lab::start(IpsecMode::Userspace).await;
    let mut ue = TestUe::new(&lab, 1).await;
    assert_eq!(ue.register().await.status(), Some(StatusCode::OK));
    let bundle = ue.bundle.clone().unwrap();
    let sa = bundle.sa(SaRole::OutboundFromClient);
    let mut out = OutboundSa::new(sa.spi, &bundle.keys).unwrap();
    out.set_next_seq_for_tests(1000);
    let msg = ue.message(None);
    let mut udp = Vec::new();
    imslab_ipsec::inner::build_udp(sa.src, sa.dst, &msg.to_bytes(), &mut udp);
    let mut packet = Vec::new();
    out.protect(next_header::UDP, &udp, |iv| iv.fill(7), &mut packet)
        .unwrap();
    // The genuine packet is accepted and answered.
    ue.esp.send_raw(&packet, lab.pcscf_ip).await.unwrap();
    assert_eq!(ue.recv_protected().await.2.status(), Some(StatusCode::OK));
    // The same packet again: a replay.
    ue.esp.send_raw(&packet, lab.pcscf_ip).await.unwrap();
    // A fresh sequence number with a corrupted ICV.
    let mut forged = Vec::new();
    out.protect(next_header::UDP, &udp, |iv| iv.fill(9), &mut forged)
        .unwrap();
    if let Some(last) = forged.last_mut() {
        *last ^= 0x01;
    }
    ue.esp.send_raw(&forged, lab.pcscf_ip).await.unwrap();
    let s = lab
        .wait_status("drops counted", |s| {
            s.esp.is_some_and(|e| e.replay >= 1 && e.bad_icv >= 1)
        })
        .await;
    let e = s.esp.unwrap();
    assert_eq!((e.replay, e.bad_icv), (1, 1));
    assert_eq!(
        lab.core_log.lock().unwrap().requests.len(),
        1,
        "only the genuine MESSAGE passed"
    );
    assert!(lab.events.has("esp", "Failed", "replayed sequence 1000"));
    assert!(lab.events.has("esp", "Failed", "ICV"));
}

#[tokio::test]
async fn deregistration_removes_the_registration_and_the_sas() {
    let _g = lab_lock().await;
    let lab = Lab::start(IpsecMode::Userspace).await;
    let mut ue = TestUe::new(&lab, 1).await;
    assert_eq!(ue.register().await.status(), Some(StatusCode::OK));
    lab.wait_status("registered", |s| s.registrations == 1 && s.sa_sets == 1)
        .await;
    assert_eq!(ue.deregister().await.status(), Some(StatusCode::OK));
    let s = lab
        .wait_status("deregistered", |s| s.registrations == 0 && s.sa_sets == 0)
        .await;
    assert_eq!(s.esp_sas, (0, 0));
    assert_eq!(s.spis_in_use, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(lab.store.pcscf(&lab.owner).all().await.unwrap().is_empty());
    assert!(lab.events.has("ipsec-sa", "Info", "UE deregistered"));
}

#[tokio::test]
async fn terminated_reg_event_notify_drops_the_registration_and_its_sas() {
    let _g = lab_lock().await;
    let lab = Lab::start(IpsecMode::Userspace).await;
    let mut ue = TestUe::new(&lab, 1).await;
    assert_eq!(ue.register().await.status(), Some(StatusCode::OK));
    lab.wait_status("subscribed", |s| s.subscriptions == 1 && s.sa_sets == 1)
        .await;
    lab.notify_terminated(&ue.impu, &ue.contact, "deactivated")
        .await;
    // The registration goes at once; its SAs stay for the S-CSCF's NOTIFY to the phone
    // (removed after a linger the unit tests check on a virtual clock).
    let s = lab
        .wait_status("network deregistration", |s| s.registrations == 0)
        .await;
    assert_eq!((s.sa_sets, s.esp_sas), (1, (2, 2)));
    assert_eq!(s.stats.network_deregistered, 1);
    assert_eq!(s.subscriptions, 0);
    assert!(lab.events.has("deregistered", "Info", "deactivated"));
}

#[tokio::test]
async fn shutdown_is_prompt_and_removes_every_sa() {
    let _g = lab_lock().await;
    let mut lab = Lab::start(IpsecMode::Userspace).await;
    let mut ue = TestUe::new(&lab, 1).await;
    assert_eq!(ue.register().await.status(), Some(StatusCode::OK));
    lab.wait_status("registered", |s| s.sa_sets == 1).await;
    let status = lab.status.clone();
    let took = lab.stop().await;
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
    let s = status.get();
    assert_eq!((s.sa_sets, s.esp_sas), (0, (0, 0)));
}

#[tokio::test]
async fn xfrm_mode_refuses_to_start_where_the_kernel_has_no_esp() {
    let _g = lab_lock().await;
    let probe = XfrmBackend::connect(XfrmConfig::default())
        .unwrap()
        .probe_esp()
        .await
        .unwrap();
    let r = Lab::try_start(IpsecMode::Xfrm).await;
    match probe {
        EspSupport::Unavailable => {
            let e = r
                .err()
                .expect("xfrm mode must not start without kernel ESP");
            let text = e.to_string();
            assert!(matches!(e, imslab_pcscf::Error::KernelHasNoEsp));
            assert!(
                text.contains("no ESP support") && text.contains("userspace"),
                "{text}"
            );
        }
        EspSupport::Available => {
            r.expect("xfrm mode starts where the kernel has ESP");
        }
    }
}

#[tokio::test]
async fn no_sa_or_socket_leaks_after_1000_register_deregister_cycles() {
    let _g = lab_lock_exclusive().await;
    let lab = Lab::start(IpsecMode::Userspace).await;
    let mut ue = TestUe::new(&lab, 1).await;
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    // One warm-up cycle opens what is opened once (store connections, the ESP reader...).
    assert_eq!(ue.register().await.status(), Some(StatusCode::OK));
    assert_eq!(ue.deregister().await.status(), Some(StatusCode::OK));
    lab.wait_status("warm-up done", |s| s.sa_sets == 0).await;
    let before = fds();
    for i in 0..1000 {
        let ok = ue.register().await;
        assert_eq!(ok.status(), Some(StatusCode::OK), "cycle {i}");
        let ok = ue.deregister().await;
        assert_eq!(ok.status(), Some(StatusCode::OK), "cycle {i}");
    }
    let s = lab
        .wait_status("all gone", |s| s.registrations == 0 && s.sa_sets == 0)
        .await;
    assert_eq!(s.spis_in_use, 0);
    assert_eq!(s.esp_sas, (0, 0));
    assert_eq!(ue.esp.sa_count(), (0, 0));
    assert!(s.subscriptions <= 1, "{s:?}");
    let after = fds();
    assert!(
        after <= before,
        "file descriptors: {before} before, {after} after"
    );
    let e = s.esp.unwrap();
    assert_eq!(
        e.bad_icv + e.replay + e.unknown_spi + e.malformed,
        0,
        "{e:?}"
    );
}

#[tokio::test]
async fn a_restarted_pcscf_restores_the_sas_and_the_phone_keeps_working_over_ipsec() {
    let _g = lab_lock().await;
    let mut lab = Lab::start(IpsecMode::Userspace).await;
    let mut ue = TestUe::new(&lab, 6).await;
    assert_eq!(ue.register().await.status(), Some(StatusCode::OK));
    let msg = ue.message(None);
    ue.send_protected(&msg).await;
    assert_eq!(ue.recv_protected().await.2.status(), Some(StatusCode::OK));
    lab.wait_status("registered", |s| s.sa_sets == 1).await;
    // Let the store writer persist the registration, then restart.
    tokio::time::sleep(Duration::from_millis(200)).await;
    lab.restart().await;
    let s = lab
        .wait_status("restored with SAs", |s| {
            s.registrations == 1 && s.sa_sets == 1 && s.esp_sas == (2, 2)
        })
        .await;
    assert_eq!(s.stats.forbidden, 0);
    assert!(lab.events.has("registered", "Info", "with its IPsec SAs"));
    // The phone's SAs and sequence numbers continue; the P-CSCF's answer jumps ahead of the
    // numbers the phone saw before the restart, so its replay window accepts it.
    let replays_before = ue.esp.stats().replay;
    let msg = ue.message(None);
    ue.send_protected(&msg).await;
    let (_, _, resp) = ue.recv_protected().await;
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(ue.esp.stats().replay, replays_before);
    assert_eq!(lab.status().stats.forbidden, 0);
}

/// Sends what the UE's TCP endpoint has for the wire over its ESP socket; returns stream data.
async fn ue_tcp_flush(ue: &TestUe, t: &mut imslab_ipsec::tcp::EspTcp, got: &mut Vec<u8>) {
    use imslab_ipsec::tcp::TcpEvent;
    for ev in t.take_events() {
        match ev {
            TcpEvent::Segment { from, to, segment } => ue
                .esp
                .send_tcp_segment(from.port(), to, &segment)
                .await
                .unwrap(),
            TcpEvent::Data { data, .. } => got.extend(data),
            _ => {}
        }
    }
}

#[tokio::test]
async fn phone_tcp_inside_userspace_esp_reaches_the_core_and_ends_with_the_sas() {
    use imslab_ipsec::socket::Incoming;
    use imslab_ipsec::tcp::{EspTcp, EspTcpConfig};
    use std::net::SocketAddr;
    use std::time::Instant;
    let _g = lab_lock().await;
    let mut lab = Lab::start_with(IpsecMode::Userspace, |c| c.pcscf.pcap = true).await;
    let mut ue = TestUe::new(&lab, 3).await;
    assert_eq!(ue.register().await.status(), Some(StatusCode::OK));
    let mut t = EspTcp::new(ue.ip, EspTcpConfig::default(), 7, Instant::now());
    let pcscf_s = SocketAddr::new(lab.pcscf.ip(), 6100);
    let c = t.connect(Instant::now(), ue.port_c, pcscf_s).unwrap();
    let text = String::from_utf8(ue.message(None).to_bytes().to_vec())
        .unwrap()
        .replacen("SIP/2.0/UDP", "SIP/2.0/TCP", 1);
    t.send(Instant::now(), c, text.as_bytes()).unwrap();
    let mut got = Vec::new();
    ue_tcp_flush(&ue, &mut t, &mut got).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while !String::from_utf8_lossy(&got).contains("SIP/2.0 200") {
            if let Incoming::Tcp(seg) = ue.esp.recv().await.unwrap() {
                t.handle_received(Instant::now(), &seg).unwrap();
            }
            ue_tcp_flush(&ue, &mut t, &mut got).await;
        }
    })
    .await
    .expect("the MESSAGE's 200 back over TCP inside ESP");
    let answer = String::from_utf8_lossy(&got).into_owned();
    assert!(answer.contains("Via: SIP/2.0/TCP"), "{answer}");
    let forwarded = lab.core_log.lock().unwrap().requests.clone();
    assert!(
        forwarded
            .iter()
            .any(|m| m.header_str(&HeaderName::P_ASSERTED_IDENTITY).is_some()),
        "the core got the phone's MESSAGE with its asserted identity"
    );
    // A CRLF keep-alive on the connection gets its CRLF pong (RFC 5626 §3.5.1).
    got.clear();
    t.send(Instant::now(), c, b"\r\n\r\n").unwrap();
    ue_tcp_flush(&ue, &mut t, &mut got).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while got.is_empty() {
            if let Incoming::Tcp(seg) = ue.esp.recv().await.unwrap() {
                t.handle_received(Instant::now(), &seg).unwrap();
            }
            ue_tcp_flush(&ue, &mut t, &mut got).await;
        }
    })
    .await
    .expect("the pong over TCP inside ESP");
    assert_eq!(got, b"\r\n");
    let s = lab.wait_status("connected", |s| s.esp_tcp == 1).await;
    assert_eq!(s.esp.unwrap().bad_inner, 0);
    // De-registration removes the SAs, and the connection they carried goes with them.
    assert_eq!(ue.deregister().await.status(), Some(StatusCode::OK));
    lab.wait_status("SAs and connection gone", |s| {
        s.sa_sets == 0 && s.esp_tcp == 0
    })
    .await;
    // The capture holds the connection's segments in the clear: tshark decodes TCP and SIP.
    let dir = lab.dir.path().to_owned();
    lab.stop().await;
    let packets = imslab_test_support::tshark_check(
        &dir.join(imslab_pcscf::PCAP_FILE),
        &["-d", "tcp.port==6100,sip"],
        &[
            "tcp.dstport",
            "sip.Method",
            "sip.Status-Code",
            "tcp.flags.syn",
        ],
    );
    assert!(
        packets
            .iter()
            .any(|p| p.fields[0] == "6100" && p.fields[3] == "1"),
        "SYN to port-s in the capture"
    );
    assert!(
        packets
            .iter()
            .any(|p| p.fields[0] == "6100" && p.fields[1] == "MESSAGE")
    );
    assert!(packets.iter().any(|p| p.fields[2] == "200"));
}
