//! Userspace ESP between two loopback addresses (127.0.0.1 = P-CSCF, 127.0.0.2 = UE) over raw
//! protocol-50 sockets. This kernel has no ESP, so it neither consumes these packets nor
//! answers them with ICMP (guide/peers.md); the sockets see them all.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use imslab_ipsec::esp::{OutboundSa, next_header};
use imslab_ipsec::inner::{self, TcpSegment, tcp_flags};
use imslab_ipsec::socket::{EspSocket, Incoming};
use imslab_ipsec::{CipherSuite, EspDrop, SaRole};

use crate::support::pcscf_bundle;

const PCSCF: &str = "127.0.0.1";
const UE: &str = "127.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn bind(addr: &str) -> EspSocket {
    EspSocket::bind(ip(addr)).unwrap_or_else(|e| {
        panic!("raw ESP socket on {addr} unavailable ({e}): these tests need CAP_NET_RAW")
    })
}

/// Receives the next packet for this test, skipping drops of SPIs not in `mine` (other tests
/// run in parallel on the same addresses and every raw socket sees every ESP packet).
async fn next(sock: &EspSocket, mine: &[u32]) -> Incoming {
    loop {
        let got = tokio::time::timeout(Duration::from_secs(5), sock.recv())
            .await
            .expect("no ESP packet within 5 s")
            .unwrap();
        match &got {
            Incoming::Dropped(d) if !mine.contains(&d.reason.spi().0) => continue,
            _ => return got,
        }
    }
}

fn udp(i: Incoming) -> imslab_ipsec::socket::ReceivedUdp {
    match i {
        Incoming::Udp(u) => u,
        other => panic!("expected UDP, got {other:?}"),
    }
}

/// Distinct SPIs per test so parallel tests never see each other's SAs.
fn bundle_with_spis(suite: CipherSuite, base: u32) -> imslab_ipsec::SaBundle {
    let mut b = pcscf_bundle(ip(PCSCF), ip(UE), suite);
    b.local.spi_c.0 = base;
    b.local.spi_s.0 = base + 1;
    b.remote.spi_c.0 = base + 2;
    b.remote.spi_s.0 = base + 3;
    b
}

#[tokio::test]
async fn sip_over_userspace_esp_flows_both_ways_with_every_suite() {
    let pcscf = bind(PCSCF);
    let ue = bind(UE);
    for (n, suite) in CipherSuite::all().enumerate() {
        let base = 0x10_0000 + 16 * n as u32;
        let b = bundle_with_spis(suite, base);
        let mine: Vec<u32> = (base..base + 4).collect();
        pcscf.install(&b).unwrap();
        ue.install(&b.mirrored()).unwrap();

        // UE request: its port-c -> P-CSCF port-s.
        let register = format!("REGISTER sip:ims.example SIP/2.0\r\nX-Suite: {suite}\r\n\r\n");
        ue.send_udp(5062, SocketAddr::new(ip(PCSCF), 6100), register.as_bytes())
            .await
            .unwrap();
        let got = udp(next(&pcscf, &mine).await);
        assert_eq!(got.payload, register.as_bytes(), "{suite}");
        assert_eq!(
            (got.from, got.to),
            (
                "127.0.0.2:5062".parse().unwrap(),
                "127.0.0.1:6100".parse().unwrap()
            )
        );
        assert_eq!(got.spi, b.sa(SaRole::InboundToServer).spi);

        // Response back: P-CSCF port-s -> UE port-c.
        pcscf
            .send_udp(6100, got.from, b"SIP/2.0 200 OK\r\n\r\n")
            .await
            .unwrap();
        let resp = udp(next(&ue, &mine).await);
        assert_eq!(
            (resp.payload.as_slice(), resp.from.port(), resp.to.port()),
            (&b"SIP/2.0 200 OK\r\n\r\n"[..], 6100, 5062)
        );

        // P-CSCF request: its port-c -> UE port-s, and the UE's answer back.
        let to_ue = b.sa(SaRole::OutboundFromClient);
        pcscf
            .send_udp(
                to_ue.src.port(),
                to_ue.dst,
                b"NOTIFY sip:ue SIP/2.0\r\n\r\n",
            )
            .await
            .unwrap();
        let req = udp(next(&ue, &mine).await);
        assert_eq!((req.from.port(), req.to.port()), (5100, 5064), "{suite}");
        ue.send_udp(5064, req.from, b"SIP/2.0 200 OK\r\n\r\n")
            .await
            .unwrap();
        let ans = udp(next(&pcscf, &mine).await);
        assert_eq!(
            (ans.from.port(), ans.to.port(), ans.spi),
            (5064, 5100, b.local.spi_c),
            "{suite}"
        );

        pcscf.remove(&b);
        ue.remove(&b.mirrored());
    }
    assert_eq!(pcscf.sa_count(), (0, 0));
    assert_eq!(pcscf.stats().bad_icv + pcscf.stats().replay, 0);
}

#[tokio::test]
async fn tcp_segment_over_userspace_esp_keeps_header_and_checksum() {
    let pcscf = bind(PCSCF);
    let ue = bind(UE);
    let suite = CipherSuite::all().nth(1).unwrap();
    let b = bundle_with_spis(suite, 0x20_0000);
    let mine: Vec<u32> = (0x20_0000..0x20_0004).collect();
    pcscf.install(&b).unwrap();
    ue.install(&b.mirrored()).unwrap();
    let seg = TcpSegment {
        src_port: 5062,
        dst_port: 6100,
        seq: 1000,
        ack: 2000,
        flags: tcp_flags::PSH | tcp_flags::ACK,
        window: 4096,
        urgent: 0,
        options: &[],
        payload: b"INVITE sip:bob@ims.example SIP/2.0\r\n\r\n",
    };
    ue.send_tcp(ip(PCSCF), &seg).await.unwrap();
    match next(&pcscf, &mine).await {
        Incoming::Tcp(t) => {
            assert_eq!(
                (t.from.port(), t.to.port(), t.seq, t.ack, t.flags),
                (5062, 6100, 1000, 2000, seg.flags)
            );
            assert_eq!(t.payload, seg.payload);
        }
        other => panic!("expected TCP, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_icv_and_replayed_sequence_are_dropped_and_counted() {
    let pcscf = bind(PCSCF);
    let ue = bind(UE);
    for (n, suite) in CipherSuite::all().enumerate() {
        let base = 0x30_0000 + 16 * n as u32;
        let b = bundle_with_spis(suite, base);
        let mine: Vec<u32> = (base..base + 4).collect();
        pcscf.install(&b).unwrap();
        let before = pcscf.stats();

        // The UE's outbound SA towards the P-CSCF's port-s, driven by hand.
        let sa = b.sa(SaRole::InboundToServer);
        let mut tx = OutboundSa::new(sa.spi, &b.keys).unwrap();
        let mut dgram = Vec::new();
        inner::build_udp(sa.src, sa.dst, b"MESSAGE sip:x SIP/2.0\r\n\r\n", &mut dgram);
        let mut good = Vec::new();
        tx.protect(next_header::UDP, &dgram, |iv| iv.fill(0x5a), &mut good)
            .unwrap();

        let mut tampered = good.clone();
        let last = tampered.len() - 20;
        tampered[last] ^= 0x40;
        ue.send_raw(&tampered, ip(PCSCF)).await.unwrap();
        match next(&pcscf, &mine).await {
            Incoming::Dropped(d) => {
                assert_eq!(
                    d.reason,
                    EspDrop::BadIcv {
                        spi: sa.spi,
                        seq: 1
                    },
                    "{suite}"
                );
                assert_eq!(d.from, ip(UE));
            }
            other => panic!("{suite}: expected a drop, got {other:?}"),
        }
        ue.send_raw(&good, ip(PCSCF)).await.unwrap();
        assert!(
            matches!(next(&pcscf, &mine).await, Incoming::Udp(_)),
            "{suite}"
        );
        ue.send_raw(&good, ip(PCSCF)).await.unwrap();
        match next(&pcscf, &mine).await {
            Incoming::Dropped(d) => assert_eq!(
                d.reason,
                EspDrop::Replay {
                    spi: sa.spi,
                    seq: 1
                }
            ),
            other => panic!("{suite}: expected a replay drop, got {other:?}"),
        }
        let after = pcscf.stats();
        assert_eq!(after.bad_icv - before.bad_icv, 1, "{suite}");
        assert_eq!(after.replay - before.replay, 1, "{suite}");
        pcscf.remove(&b);
    }
}

#[tokio::test]
async fn request_from_an_unprotected_port_is_a_policy_mismatch() {
    let pcscf = bind(PCSCF);
    let ue = bind(UE);
    let suite = CipherSuite::all().next().unwrap();
    let b = bundle_with_spis(suite, 0x40_0000);
    let mine: Vec<u32> = (0x40_0000..0x40_0004).collect();
    pcscf.install(&b).unwrap();
    let sa = b.sa(SaRole::InboundToServer);
    let mut tx = OutboundSa::new(sa.spi, &b.keys).unwrap();
    let mut dgram = Vec::new();
    // Right SA, wrong source port (5060 instead of the UE's port-c 5062).
    inner::build_udp(
        "127.0.0.2:5060".parse().unwrap(),
        sa.dst,
        b"INVITE",
        &mut dgram,
    );
    let mut pkt = Vec::new();
    tx.protect(next_header::UDP, &dgram, |iv| iv.fill(1), &mut pkt)
        .unwrap();
    ue.send_raw(&pkt, ip(PCSCF)).await.unwrap();
    match next(&pcscf, &mine).await {
        Incoming::Dropped(d) => assert_eq!(d.reason, EspDrop::PolicyMismatch { spi: sa.spi }),
        other => panic!("expected a policy drop, got {other:?}"),
    }
}

#[tokio::test]
async fn packet_for_unknown_spi_is_counted() {
    let pcscf = bind(PCSCF);
    let ue = bind(UE);
    let suite = CipherSuite::all().next().unwrap();
    let b = bundle_with_spis(suite, 0x50_0000);
    let sa = b.sa(SaRole::InboundToServer);
    let mut tx = OutboundSa::new(sa.spi, &b.keys).unwrap();
    let mut pkt = Vec::new();
    tx.protect(next_header::UDP, b"x", |iv| iv.fill(1), &mut pkt)
        .unwrap();
    ue.send_raw(&pkt, ip(PCSCF)).await.unwrap();
    match next(&pcscf, &[sa.spi.0]).await {
        Incoming::Dropped(d) => assert_eq!(d.reason, EspDrop::UnknownSpi { spi: sa.spi }),
        other => panic!("expected unknown SPI, got {other:?}"),
    }
    assert!(pcscf.stats().unknown_spi >= 1);
}

#[test]
fn sip_over_userspace_esp_works_over_ipv6_in_a_fresh_namespace() {
    crate::support::in_fresh_netns(
        "esp_socket::sip_over_userspace_esp_works_over_ipv6_in_a_fresh_namespace",
        &[
            &["-6", "addr", "add", "fd00:1::1/128", "dev", "lo", "nodad"],
            &["-6", "addr", "add", "fd00:1::2/128", "dev", "lo", "nodad"],
        ],
        || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (p, u) = (ip("fd00:1::1"), ip("fd00:1::2"));
                let pcscf = EspSocket::bind(p).expect("raw IPv6 ESP socket");
                let ue = EspSocket::bind(u).expect("raw IPv6 ESP socket");
                for suite in CipherSuite::all() {
                    let b = pcscf_bundle(p, u, suite);
                    pcscf.install(&b).unwrap();
                    ue.install(&b.mirrored()).unwrap();
                    ue.send_udp(5062, SocketAddr::new(p, 6100), b"REGISTER v6")
                        .await
                        .unwrap();
                    let mine = [3333333, 4444444, 1111111, 2222222];
                    let got = udp(next(&pcscf, &mine).await);
                    assert_eq!(
                        (got.from, got.payload.as_slice()),
                        (SocketAddr::new(u, 5062), &b"REGISTER v6"[..])
                    );
                    pcscf.send_udp(6100, got.from, b"200 v6").await.unwrap();
                    assert_eq!(udp(next(&ue, &mine).await).payload, b"200 v6");
                    pcscf.remove(&b);
                    ue.remove(&b.mirrored());
                }
            });
        },
    );
}

/// Carries an [`EspTcp`]'s segments over its ESP socket.
async fn flush(tcp: &mut imslab_ipsec::tcp::EspTcp, sock: &EspSocket, got: &mut Vec<u8>) {
    use imslab_ipsec::tcp::TcpEvent;
    for ev in tcp.take_events() {
        match ev {
            TcpEvent::Segment { from, to, segment } => {
                sock.send_tcp_segment(from.port(), to, &segment)
                    .await
                    .unwrap();
            }
            TcpEvent::Data { data, .. } => got.extend(data),
            _ => {}
        }
    }
}

#[tokio::test]
async fn tcp_endpoints_exchange_a_large_sip_message_over_userspace_esp() {
    use imslab_ipsec::tcp::{EspTcp, EspTcpConfig};
    use std::time::Instant;
    let pcscf = bind(PCSCF);
    let ue = bind(UE);
    let base = 0x30_0000;
    let b = bundle_with_spis(CipherSuite::all().next().unwrap(), base);
    let mine: Vec<u32> = (base..base + 4).collect();
    pcscf.install(&b).unwrap();
    ue.install(&b.mirrored()).unwrap();
    let now = Instant::now();
    let mut p = EspTcp::new(ip(PCSCF), EspTcpConfig::default(), 1, now);
    p.listen(6100);
    let mut u = EspTcp::new(ip(UE), EspTcpConfig::default(), 2, now);
    let msg: Vec<u8> = format!(
        "MESSAGE sip:bob@ims.example SIP/2.0\r\nContent-Length: 3000\r\n\r\n{}",
        "y".repeat(3000)
    )
    .into_bytes();
    let c = u
        .connect(now, 5062, SocketAddr::new(ip(PCSCF), 6100))
        .unwrap();
    u.send(now, c, &msg).unwrap();
    let (mut at_p, mut at_u) = (Vec::new(), Vec::new());
    flush(&mut u, &ue, &mut at_u).await;
    while at_p.len() < msg.len() {
        tokio::select! {
            i = next(&pcscf, &mine) => match i {
                Incoming::Tcp(t) => p.handle_received(Instant::now(), &t).unwrap(),
                other => panic!("expected TCP at the P-CSCF, got {other:?}"),
            },
            i = next(&ue, &mine) => match i {
                Incoming::Tcp(t) => u.handle_received(Instant::now(), &t).unwrap(),
                other => panic!("expected TCP at the UE, got {other:?}"),
            },
        }
        flush(&mut p, &pcscf, &mut at_p).await;
        flush(&mut u, &ue, &mut at_u).await;
    }
    assert!(at_p == msg, "got {} bytes", at_p.len());
    assert_eq!(p.len(), 1);
    pcscf.remove(&b);
    ue.remove(&b.mirrored());
}
