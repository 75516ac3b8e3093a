//! UDP: round trip, keep-alives, and the switch to TCP for large requests.

use imslab_sip::header::Transport;
use imslab_sip::{Method, StatusCode};
use std::time::Duration;

use imslab_sip_io::{Config, Payload, SipTransport, Target, TransportKind};
use imslab_test_support::tshark_check;
use tokio::net::UdpSocket;

use crate::support::*;

#[tokio::test]
async fn udp_request_and_response_round_trip_on_the_same_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("udp.pcap");
    let tap = tap(&pcap);
    let (server, mut server_rx, server_addr) = udp_transport(Config {
        pcap: Some(tap.clone()),
        ..Config::default()
    })
    .await;
    let (client, mut client_rx, client_addr) = udp_transport(Config::default()).await;

    let req = request("OPTIONS", "UDP", client_addr, "ping");
    let sent = client
        .send(
            &Target::address(TransportKind::Udp, server_addr),
            req.clone(),
        )
        .await
        .unwrap();
    assert_eq!(sent.transport, TransportKind::Udp);
    assert_eq!(
        sent.flow,
        client.udp_flow(client_addr, server_addr).unwrap()
    );

    let got = next_received(&mut server_rx).await;
    assert_eq!(got.transport, TransportKind::Udp);
    assert_eq!(got.source, client_addr);
    assert_eq!(got.local, server_addr);
    assert_eq!(got.flow, server.udp_flow(server_addr, client_addr).unwrap());
    assert_eq!(parsed(&got).to_bytes(), req.to_bytes());

    let ok = parsed(&got).response(StatusCode::OK, Some("s1")).unwrap();
    server.send(&got.reply_target(), ok).await.unwrap();
    let answer = next_received(&mut client_rx).await;
    assert_eq!(answer.source, server_addr);
    assert_eq!(parsed(&answer).status(), Some(StatusCode::OK));
    assert_eq!(parsed(&answer).call_id().unwrap(), req.call_id().unwrap());

    flush(&tap);
    let port = format!("udp.port=={},sip", server_addr.port());
    let packets = tshark_check(&pcap, &["-d", &port], &["sip.Method", "sip.Status-Code"]);
    assert_eq!(packets.len(), 2, "request and response recorded");
    assert_eq!(packets[0].fields, ["OPTIONS", ""]);
    assert_eq!(packets[1].fields, ["", "200"]);
}

#[tokio::test]
async fn bare_crlf_datagrams_are_keepalives_and_garbage_is_handed_up_invalid() {
    let (_server, mut rx, server_addr) = udp_transport(Config::default()).await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    peer.send_to(b"\r\n\r\n", server_addr).await.unwrap();
    peer.send_to(b"\r\n", server_addr).await.unwrap();
    peer.send_to(b"\x00\x01 not sip", server_addr)
        .await
        .unwrap();
    let text = request_text("MESSAGE", "UDP", peer.local_addr().unwrap(), "hi");
    peer.send_to(text.as_bytes(), server_addr).await.unwrap();

    let first = next_received(&mut rx).await;
    match &first.payload {
        Payload::Invalid { raw, parsed, .. } => {
            assert_eq!(raw.as_ref(), b"\x00\x01 not sip");
            assert!(parsed.is_none());
        }
        Payload::Message(m) => panic!("garbage parsed as {m:?}"),
    }
    let second = next_received(&mut rx).await;
    assert_eq!(parsed(&second).method(), Some(&Method::Message));
}

#[tokio::test]
async fn large_udp_request_goes_over_tcp_with_the_via_rewritten() {
    let (udp, tcp) = udp_and_tcp().await;
    let (server, mut server_rx) = SipTransport::new(Config::default());
    let server_addr = server.add_udp(udp).unwrap();
    server.add_tcp(tcp).unwrap();
    let (client, mut client_rx, client_addr) = udp_transport(Config::default()).await;

    let body = "x".repeat(1400);
    let req = request("MESSAGE", "UDP", client_addr, &body);
    assert!(req.encoded_len() > 1300);
    let sent = client
        .send(&Target::address(TransportKind::Udp, server_addr), req)
        .await
        .unwrap();
    assert_eq!(sent.transport, TransportKind::Tcp, "RFC 3261 §18.1.1");

    let got = next_received(&mut server_rx).await;
    assert_eq!(got.transport, TransportKind::Tcp);
    let m = parsed(&got);
    assert_eq!(m.top_via().unwrap().transport, Transport::Tcp);
    assert_eq!(m.vias().count(), 1);
    assert_eq!(m.body(), body.as_bytes());

    // The response comes back on the TCP connection the client opened.
    let ok = m.response(StatusCode::OK, Some("s1")).unwrap();
    server.send(&got.reply_target(), ok).await.unwrap();
    let answer = next_received(&mut client_rx).await;
    assert_eq!(answer.flow, sent.flow);
    assert_eq!(parsed(&answer).status(), Some(StatusCode::OK));

    // A small request still goes over UDP, and so does a large response (§18.1.1 applies to
    // requests only).
    let small = request("MESSAGE", "UDP", client_addr, "small");
    let sent = client
        .send(&Target::address(TransportKind::Udp, server_addr), small)
        .await
        .unwrap();
    assert_eq!(sent.transport, TransportKind::Udp);
    let got = next_received(&mut server_rx).await;
    assert_eq!(got.transport, TransportKind::Udp);
    let mut big = parsed(&got).response(StatusCode::OK, Some("s2")).unwrap();
    big.set_body(Some("text/plain"), body.clone()).unwrap();
    let sent = server.send(&got.reply_target(), big).await.unwrap();
    assert_eq!(sent.transport, TransportKind::Udp);
    let answer = next_received(&mut client_rx).await;
    assert_eq!(answer.transport, TransportKind::Udp);
    assert_eq!(parsed(&answer).body(), body.as_bytes());
}

#[tokio::test]
async fn large_request_falls_back_to_udp_when_tcp_is_refused() {
    // A UDP-only peer: the TCP port of the same number is closed (RFC 3261 §18.1.1 retry).
    let (udp, tcp) = udp_and_tcp().await;
    drop(tcp);
    let (server, mut server_rx) = SipTransport::new(Config::default());
    let server_addr = server.add_udp(udp).unwrap();
    let (client, _client_rx, client_addr) = udp_transport(Config::default()).await;
    let body = "y".repeat(1400);
    let sent = client
        .send(
            &Target::address(TransportKind::Udp, server_addr),
            request("MESSAGE", "UDP", client_addr, &body),
        )
        .await
        .unwrap();
    assert_eq!(sent.transport, TransportKind::Udp);
    let got = next_received(&mut server_rx).await;
    assert_eq!(got.transport, TransportKind::Udp);
    assert_eq!(parsed(&got).top_via().unwrap().transport, Transport::Udp);
    assert_eq!(parsed(&got).body(), body.as_bytes());
}

#[tokio::test]
async fn a_datagram_to_a_closed_udp_port_is_reported_unreachable_for_that_peer() {
    let (client, mut client_rx, client_addr) = udp_transport(Config::default()).await;
    // A port with nothing bound to it: the kernel answers ICMP port unreachable.
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    // Linux sends ICMP errors within a global budget (net.ipv4.icmp_msgs_per_sec, burst 50) that
    // other tests on the machine share, so one error may be suppressed: send again until the
    // error comes back, for at most 5 s.
    let event = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let req = request("OPTIONS", "UDP", client_addr, "nobody");
            client
                .send(&Target::address(TransportKind::Udp, closed), req)
                .await
                .unwrap();
            let wait = tokio::time::sleep(Duration::from_millis(250));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    ev = client_rx.recv() => match ev.expect("the transport is running") {
                        imslab_sip_io::Event::FlowClosed {
                            flow,
                            transport,
                            remote,
                            reason,
                        } => return (flow, transport, remote, reason),
                        _ => continue,
                    },
                }
            }
        }
    })
    .await
    .expect("the ICMP error is reported");
    assert_eq!(event.0, client.udp_flow(client_addr, closed).unwrap());
    assert_eq!((event.1, event.2), (TransportKind::Udp, closed));
    assert_eq!(
        event.3,
        imslab_sip_io::CloseReason::Unreachable(std::io::ErrorKind::ConnectionRefused)
    );
    // The socket still works afterwards.
    let (_server, mut server_rx, server_addr) = udp_transport(Config::default()).await;
    let req = request("OPTIONS", "UDP", client_addr, "somebody");
    client
        .send(&Target::address(TransportKind::Udp, server_addr), req)
        .await
        .unwrap();
    assert_eq!(next_received(&mut server_rx).await.source, client_addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outgoing_datagram_is_captured_before_it_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("order.pcap");
    let tap = tap(&pcap);
    let (client, _rx) = SipTransport::new(Config {
        pcap: Some(tap.clone()),
        ..Config::default()
    });
    let local = client
        .add_udp(UdpSocket::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = peer.local_addr().unwrap();

    // While the capture is busy nothing leaves: an answer can never be captured ahead of it.
    let (release, holder) = hold_tap(&tap);
    let sending = tokio::spawn(async move {
        let r = client
            .send(
                &Target::address(TransportKind::Udp, to),
                request("OPTIONS", "UDP", local, ""),
            )
            .await;
        (client, r)
    });
    let mut buf = [0u8; 4096];
    let early = tokio::time::timeout(Duration::from_millis(300), peer.recv_from(&mut buf)).await;
    assert!(early.is_err(), "the datagram left before it was captured");
    release.send(()).unwrap();
    holder.join().unwrap();
    let (n, from) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .expect("sent once captured")
        .unwrap();
    assert_eq!(from, local);
    assert!(buf[..n].starts_with(b"OPTIONS "));
    let (_client, sent) = sending.await.unwrap();
    sent.unwrap();
    flush(&tap);
    let methods = tshark_check(&pcap, &[], &["sip.Method"]);
    assert_eq!(methods.len(), 1);
    assert_eq!(methods[0].fields[0], "OPTIONS");
}
