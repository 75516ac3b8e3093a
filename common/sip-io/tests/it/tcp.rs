//! TCP: framing, connection reuse, keep-alives, hostile peers, limits.

use std::time::Duration;

use bytes::BytesMut;
use imslab_sip::{Limits, Method, StatusCode, StreamFramer};
use imslab_sip_io::{CloseReason, Config, Event, Payload, SipTransport, Target, TransportKind};
use imslab_test_support::tshark_check;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test]
async fn tcp_framing_handles_split_and_coalesced_messages() {
    let (_server, mut rx, addr) = tcp_transport(Config::default()).await;
    let mut peer = TcpStream::connect(addr).await.unwrap();
    peer.set_nodelay(true).unwrap();
    let local = peer.local_addr().unwrap();
    let first = request_text("MESSAGE", "TCP", local, "one");
    for chunk in first.as_bytes().chunks(7) {
        peer.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let second = request_text("MESSAGE", "TCP", local, "two");
    let third = request_text("MESSAGE", "TCP", local, "three");
    peer.write_all(format!("{second}{third}").as_bytes())
        .await
        .unwrap();

    let mut flows = Vec::new();
    for (text, body) in [(&first, "one"), (&second, "two"), (&third, "three")] {
        let got = next_received(&mut rx).await;
        assert_eq!(got.transport, TransportKind::Tcp);
        assert_eq!(got.source, local);
        assert_eq!(parsed(&got).body(), body.as_bytes());
        assert_eq!(parsed(&got).to_bytes().as_ref(), text.as_bytes());
        flows.push(got.flow);
    }
    assert!(flows.iter().all(|f| *f == flows[0] && f.is_connection()));
}

#[tokio::test]
async fn response_goes_back_over_the_connection_the_request_came_in_on() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("tcp.pcap");
    let tap = tap(&pcap);
    let (server, mut rx, addr) = tcp_transport(Config {
        pcap: Some(tap.clone()),
        ..Config::default()
    })
    .await;
    let mut peer = TcpStream::connect(addr).await.unwrap();
    let local = peer.local_addr().unwrap();
    peer.write_all(request_text("OPTIONS", "TCP", local, "").as_bytes())
        .await
        .unwrap();
    let got = next_received(&mut rx).await;
    let ok = parsed(&got).response(StatusCode::OK, Some("s1")).unwrap();
    let sent = server.send(&got.reply_target(), ok).await.unwrap();
    assert_eq!(sent.flow, got.flow);
    assert_eq!(sent.remote, local);

    let (mut framer, mut buf) = (StreamFramer::default(), BytesMut::new());
    let answer = read_message(&mut peer, &mut framer, &mut buf).await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    assert_eq!(
        server.connection_count(),
        1,
        "no second connection was opened"
    );

    flush(&tap);
    let port = format!("tcp.port=={},sip", addr.port());
    let packets = tshark_check(&pcap, &["-d", &port], &["sip.Method", "sip.Status-Code"]);
    let sip: Vec<_> = packets
        .iter()
        .filter(|p| p.fields.iter().any(|f| !f.is_empty()))
        .map(|p| p.fields.clone())
        .collect();
    assert_eq!(sip, [["OPTIONS", ""], ["", "200"]]);
}

#[tokio::test]
async fn request_to_an_existing_flow_and_to_an_alias_reuses_the_connection() {
    let (server, mut server_rx, server_addr) = tcp_transport(Config::default()).await;
    let (client, mut client_rx, client_addr) = tcp_transport(Config::default()).await;

    let register = request("REGISTER", "TCP", client_addr, "");
    let sent = client
        .send(&Target::address(TransportKind::Tcp, server_addr), register)
        .await
        .unwrap();
    assert_eq!(sent.transport, TransportKind::Tcp);
    let got = next_received(&mut server_rx).await;
    assert_eq!(got.source, sent.local);
    let info = server.flow_info(got.flow).unwrap();
    assert_eq!((info.local, info.remote), (server_addr, sent.local));

    // A request from the server back to the client over the client's connection.
    let notify = request("NOTIFY", "TCP", server_addr, "state");
    let back = server.send(&Target::Flow(got.flow), notify).await.unwrap();
    assert_eq!(back.remote, sent.local);
    let at_client = next_received(&mut client_rx).await;
    assert_eq!(parsed(&at_client).method(), Some(&Method::Notify));
    assert_eq!(
        at_client.flow, sent.flow,
        "arrived on the client's own connection"
    );

    // The client's advertised address as an alias of the flow (RFC 5923 style): nothing
    // listens at the alias, so only reuse can deliver.
    let advertised = "127.0.0.1:9".parse().unwrap();
    server.alias(got.flow, advertised).unwrap();
    let notify = request("NOTIFY", "TCP", server_addr, "again");
    server
        .send(&Target::address(TransportKind::Tcp, advertised), notify)
        .await
        .unwrap();
    let at_client = next_received(&mut client_rx).await;
    assert_eq!(at_client.flow, sent.flow);
    assert_eq!(server.connection_count(), 1);
    assert_eq!(client.connection_count(), 1);

    // A second request to the server's address reuses the client's outgoing connection.
    let again = request("MESSAGE", "TCP", client_addr, "");
    let resent = client
        .send(&Target::address(TransportKind::Tcp, server_addr), again)
        .await
        .unwrap();
    assert_eq!(resent.flow, sent.flow);

    // Closing the flow reports it and makes further sends fail.
    client.close(sent.flow).unwrap();
    loop {
        if let Event::FlowClosed { flow, reason, .. } = next_event(&mut client_rx).await {
            assert_eq!(flow, sent.flow);
            assert_eq!(reason, CloseReason::Local);
            break;
        }
    }
    let err = client
        .send(
            &Target::Flow(sent.flow),
            request("MESSAGE", "TCP", client_addr, ""),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, imslab_sip_io::Error::FlowClosed(_)), "{err}");
}

#[tokio::test]
async fn crlf_ping_is_answered_with_a_pong_and_pongs_are_reported() {
    let (server, mut server_rx, server_addr) = tcp_transport(Config::default()).await;
    let mut peer = TcpStream::connect(server_addr).await.unwrap();
    peer.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(WAIT, peer.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");

    // The other direction: the transport pings and reports the peer's pong.
    let local = peer.local_addr().unwrap();
    peer.write_all(request_text("OPTIONS", "TCP", local, "").as_bytes())
        .await
        .unwrap();
    let got = next_received(&mut server_rx).await;
    server.ping(got.flow).unwrap();
    let mut ping = [0u8; 4];
    tokio::time::timeout(WAIT, peer.read_exact(&mut ping))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&ping, b"\r\n\r\n");
    peer.write_all(b"\r\n").await.unwrap();
    match next_event(&mut server_rx).await {
        Event::Pong { flow } => assert_eq!(flow, got.flow),
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[tokio::test]
async fn message_without_content_length_is_handed_up_for_a_400() {
    let (server, mut rx, addr) = tcp_transport(Config::default()).await;
    let mut peer = TcpStream::connect(addr).await.unwrap();
    let local = peer.local_addr().unwrap();
    let text = request_text("OPTIONS", "TCP", local, "").replace("Content-Length: 0\r\n", "");
    peer.write_all(text.as_bytes()).await.unwrap();
    let got = next_received(&mut rx).await;
    let Payload::Invalid {
        parsed: Some(m),
        error,
        ..
    } = &got.payload
    else {
        panic!("expected an invalid message, got {:?}", got.payload);
    };
    assert_eq!(error.status_code(), StatusCode::BAD_REQUEST);
    let bad = m.response(error.status_code(), None).unwrap();
    server.send(&got.reply_target(), bad).await.unwrap();
    let (mut framer, mut buf) = (StreamFramer::default(), BytesMut::new());
    let answer = read_message(&mut peer, &mut framer, &mut buf).await;
    assert_eq!(answer.status(), Some(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn garbage_and_oversize_peers_are_disconnected_without_affecting_others() {
    let limits = Limits {
        max_message: 4096,
        ..Limits::default()
    };
    let (server, mut rx, addr) = tcp_transport(Config {
        limits,
        ..Config::default()
    })
    .await;
    let mut good = TcpStream::connect(addr).await.unwrap();
    let good_local = good.local_addr().unwrap();

    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"\x16\x03\x01\x02\x00 this is not SIP\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_peer(&mut garbage).await,
        "garbage peer disconnected"
    );

    let mut oversize = TcpStream::connect(addr).await.unwrap();
    let head = format!("MESSAGE sip:x SIP/2.0\r\nX-Filler: {}", "a".repeat(8000));
    let _ = oversize.write_all(head.as_bytes()).await;
    assert!(
        closed_by_peer(&mut oversize).await,
        "oversize peer disconnected"
    );

    let mut reasons = Vec::new();
    while reasons.len() < 2 {
        if let Event::FlowClosed { reason, .. } = next_event(&mut rx).await {
            reasons.push(reason);
        }
    }
    assert!(reasons.iter().all(|r| matches!(r, CloseReason::Framing(_))));
    assert!(reasons.iter().any(|r| matches!(
        r,
        CloseReason::Framing(imslab_sip::Error::TooLarge { limit: 4096, .. })
    )));

    // The well-behaved peer still gets answers.
    good.write_all(request_text("OPTIONS", "TCP", good_local, "").as_bytes())
        .await
        .unwrap();
    let got = next_received(&mut rx).await;
    assert_eq!(got.source, good_local);
    let ok = parsed(&got).response(StatusCode::OK, Some("g")).unwrap();
    server.send(&got.reply_target(), ok).await.unwrap();
    let (mut framer, mut buf) = (StreamFramer::default(), BytesMut::new());
    let answer = read_message(&mut good, &mut framer, &mut buf).await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
}

#[tokio::test]
async fn idle_connections_are_closed_and_the_connection_limit_refuses_extra_peers() {
    let (server, mut rx, addr) = tcp_transport(Config {
        idle_timeout: Duration::from_millis(300),
        max_connections: 1,
        ..Config::default()
    })
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let first_local = first.local_addr().unwrap();
    first
        .write_all(request_text("OPTIONS", "TCP", first_local, "").as_bytes())
        .await
        .unwrap();
    let got = next_received(&mut rx).await;
    assert_eq!(server.connection_count(), 1);

    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(closed_by_peer(&mut second).await, "over the limit: refused");

    assert!(closed_by_peer(&mut first).await, "idle connection closed");
    match next_event(&mut rx).await {
        Event::FlowClosed { flow, reason, .. } => {
            assert_eq!(flow, got.flow);
            assert_eq!(reason, CloseReason::IdleTimeout);
        }
        other => panic!("expected the flow to close, got {other:?}"),
    }
    assert_eq!(server.connection_count(), 0);
    let err = server
        .send(&Target::Flow(got.flow), request("OPTIONS", "TCP", addr, ""))
        .await
        .unwrap_err();
    assert!(matches!(err, imslab_sip_io::Error::FlowClosed(_)));

    // With the slot free again, a new peer is served.
    let mut third = TcpStream::connect(addr).await.unwrap();
    let third_local = third.local_addr().unwrap();
    third
        .write_all(request_text("OPTIONS", "TCP", third_local, "").as_bytes())
        .await
        .unwrap();
    assert_eq!(next_received(&mut rx).await.source, third_local);
}

#[tokio::test]
async fn outgoing_connection_failure_is_an_error_not_a_hang() {
    let (client, _rx) = SipTransport::new(Config::default());
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = client
        .send(
            &Target::address(TransportKind::Tcp, closed),
            request("OPTIONS", "TCP", closed, ""),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, imslab_sip_io::Error::Connect { .. }), "{err}");
    assert_eq!(client.connection_count(), 0);
}

#[tokio::test]
async fn messages_queued_back_to_back_arrive_complete_and_in_order() {
    let (_server, mut server_rx, server_addr) = tcp_transport(Config::default()).await;
    let (client, _client_rx, client_addr) = tcp_transport(Config::default()).await;
    let target = Target::address(TransportKind::Tcp, server_addr);
    let mut call_ids = Vec::new();
    for i in 0..200 {
        let m = request("MESSAGE", "TCP", client_addr, &format!("body {i}"));
        call_ids.push(m.call_id().unwrap().as_str().to_owned());
        client.send(&target, m).await.unwrap();
    }
    for (i, call_id) in call_ids.iter().enumerate() {
        let got = next_received(&mut server_rx).await;
        assert_eq!(parsed(&got).call_id().unwrap().as_str(), call_id);
        assert_eq!(parsed(&got).body(), format!("body {i}").as_bytes());
    }
    assert_eq!(client.connection_count(), 1);
}

#[tokio::test]
async fn framed_but_unparseable_request_is_handed_up_and_the_connection_goes_on() {
    let (_server, mut rx, addr) = tcp_transport(Config::default()).await;
    let mut peer = TcpStream::connect(addr).await.unwrap();
    let local = peer.local_addr().unwrap();
    let broken = request_text("MESSAGE", "TCP", local, "x")
        .replace("Max-Forwards: 70\r\n", "Max-Forwards 70 without colon\r\n");
    let good = request_text("MESSAGE", "TCP", local, "y");
    peer.write_all(format!("{broken}{good}").as_bytes())
        .await
        .unwrap();
    let first = next_received(&mut rx).await;
    let Payload::Invalid {
        raw, parsed: None, ..
    } = &first.payload
    else {
        panic!("expected an unparseable message, got {:?}", first.payload);
    };
    assert_eq!(raw.as_ref(), broken.as_bytes());
    let answer = imslab_sip::validate::answer_unparseable(raw).expect("a 400 for it");
    assert_eq!(answer.status(), Some(StatusCode::BAD_REQUEST));
    let second = next_received(&mut rx).await;
    assert_eq!(parsed(&second).body(), b"y");
    assert_eq!(second.flow, first.flow, "same connection, still open");
}

#[tokio::test]
async fn outgoing_tcp_leaves_from_the_address_of_the_interfaces_own_listener() {
    let (_server, mut server_rx, server_addr) = tcp_transport(Config::default()).await;
    let (client, _client_rx) = SipTransport::new(Config::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let client_addr = client.add_tcp(listener).unwrap();

    let sent = client
        .send(
            &Target::address(TransportKind::Tcp, server_addr),
            request("OPTIONS", "TCP", client_addr, ""),
        )
        .await
        .unwrap();
    assert_eq!(sent.local.ip(), client_addr.ip(), "bound before connecting");
    assert_ne!(sent.local.port(), 0);
    let got = next_received(&mut server_rx).await;
    assert_eq!(got.transport, TransportKind::Tcp);
    assert_eq!(got.source, sent.local, "the peer accepted 127.0.0.2");
}

#[tokio::test]
async fn large_udp_request_moved_to_tcp_leaves_from_the_udp_sockets_address() {
    let (udp, listener) = udp_and_tcp().await;
    let (server, mut server_rx) = SipTransport::new(Config::default());
    server.add_udp(udp).unwrap();
    let server_addr = server.add_tcp(listener).unwrap();
    let (client, _client_rx) = SipTransport::new(Config {
        udp_request_limit: 200,
        ..Config::default()
    });
    let client_addr = client
        .add_udp(tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap())
        .unwrap();

    let big = "x".repeat(400);
    let sent = client
        .send(
            &Target::address(TransportKind::Udp, server_addr),
            request("MESSAGE", "UDP", client_addr, &big),
        )
        .await
        .unwrap();
    assert_eq!(sent.transport, TransportKind::Tcp);
    let got = next_received(&mut server_rx).await;
    assert_eq!(got.transport, TransportKind::Tcp);
    assert_eq!(got.source.ip(), client_addr.ip());
    assert_eq!(parsed(&got).body(), big.as_bytes());
}

#[tokio::test]
async fn outgoing_tcp_from_a_wildcard_listener_lets_the_kernel_pick_the_source() {
    let (_server, mut server_rx, server_addr) = tcp_transport(Config::default()).await;
    let (client, _client_rx) = SipTransport::new(Config::default());
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let client_addr = client.add_tcp(listener).unwrap();

    let sent = client
        .send(
            &Target::address(TransportKind::Tcp, server_addr),
            request("OPTIONS", "TCP", client_addr, ""),
        )
        .await
        .unwrap();
    let got = next_received(&mut server_rx).await;
    assert_eq!(got.source, sent.local);
    assert_eq!(
        got.source.ip(),
        server_addr.ip(),
        "loopback source toward 127.0.0.1"
    );
}
