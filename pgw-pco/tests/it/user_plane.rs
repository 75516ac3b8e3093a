//! The user plane through a real TUN device, inside a network namespace this test creates:
//! a test SGW-U socket sends a GTP-U encapsulated packet that comes out of the TUN device to a
//! local socket, and that socket's reply, routed into the TUN device, arrives encapsulated at
//! the test SGW-U socket. Needs root (CAP_NET_ADMIN) and iproute2's `ip`.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use imslab_pgw::gtpu::{ECHO_REQUEST, ECHO_RESPONSE, G_PDU, GTPU_PORT, GtpuPacket};
use imslab_pgw::gtpv2::ie::{Fteid, interface};
use imslab_pgw::session::TunnelUpdate;
use imslab_pgw::user_plane::{UserPlaneSettings, start};
use tokio::net::UdpSocket;

const CHILD_ENV: &str = "IMSLAB_PGW_NETNS_CHILD";
const TEST_NAME: &str =
    "user_plane::gtpu_packet_from_the_sgw_comes_out_of_tun_and_the_reply_goes_back_encapsulated";

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

fn ip(args: &[&str]) {
    let ip = imslab_test_support::peer("ip", "iproute2");
    let st = Command::new(ip).args(args).status().expect("ip runs");
    assert!(
        st.success(),
        "`ip {}` failed (the test needs root / CAP_NET_ADMIN)",
        args.join(" ")
    );
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP packet (UDP checksum 0: none, allowed for IPv4 by RFC 768).
fn udp_packet(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else {
        panic!("IPv4 only")
    };
    let total = (28 + payload.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&s.ip().octets());
    p.extend_from_slice(&d.ip().octets());
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&s.port().to_be_bytes());
    p.extend_from_slice(&d.port().to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

async fn inside_namespace() {
    let pgw_u: SocketAddr = "127.0.0.1:2152".parse().unwrap();
    let up = start(UserPlaneSettings {
        tun_name: "imslabtest0".into(),
        gtpu_listen: pgw_u,
        tun_addresses: vec![(Ipv4Addr::new(10, 46, 0, 1).into(), 24)],
        mtu: 1400,
        sgw_port: GTPU_PORT,
    })
    .await
    .expect("user plane starts (TUN + rtnetlink)");
    up.updates()
        .send(TunnelUpdate::Up {
            pgw_teid: 0x100,
            sgw: Fteid {
                interface_type: interface::S5S8_SGW_GTPU,
                teid: 0x200,
                ipv4: Some(Ipv4Addr::new(127, 0, 0, 2)),
                ipv6: None,
            },
            ipv4: Some(Ipv4Addr::new(10, 46, 0, 2)),
            ipv6_prefix: None,
        })
        .unwrap();
    let pcscf: SocketAddr = "10.46.0.1:5060".parse().unwrap();
    let phone: SocketAddr = "10.46.0.2:40000".parse().unwrap();
    let app = UdpSocket::bind(pcscf)
        .await
        .expect("the TUN address is local");
    let sgw = UdpSocket::bind("127.0.0.2:2152").await.unwrap();

    // GTP-U echo.
    let mut echo = Vec::new();
    GtpuPacket::encode(ECHO_REQUEST, 0, Some(7), &[], &mut echo).unwrap();
    sgw.send_to(&echo, pgw_u).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sgw.recv_from(&mut buf))
        .await
        .expect("echo response")
        .unwrap();
    let e = GtpuPacket::decode(&buf[..n]).unwrap();
    assert_eq!((e.message_type, e.sequence), (ECHO_RESPONSE, Some(7)));

    // Uplink: SGW-U → GTP-U → TUN → local socket.
    let inner = udp_packet(phone, pcscf, b"REGISTER sip:ims.example SIP/2.0");
    let mut gpdu = Vec::new();
    GtpuPacket::encode(G_PDU, 0x100, None, &inner, &mut gpdu).unwrap();
    let mut got = None;
    for _ in 0..25 {
        sgw.send_to(&gpdu, pgw_u).await.unwrap();
        if let Ok(r) =
            tokio::time::timeout(Duration::from_millis(200), app.recv_from(&mut buf)).await
        {
            got = Some(r.unwrap());
            break;
        }
    }
    let (n, from) = got.expect("the decapsulated packet came out of the TUN device");
    assert_eq!(&buf[..n], b"REGISTER sip:ims.example SIP/2.0");
    assert_eq!(from, phone);

    // Downlink: local socket → TUN → GTP-U toward the SGW-U F-TEID.
    app.send_to(b"SIP/2.0 200 OK", phone).await.unwrap();
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), sgw.recv_from(&mut buf))
        .await
        .expect("downlink G-PDU")
        .unwrap();
    assert_eq!(from, pgw_u);
    let g = GtpuPacket::decode(&buf[..n]).unwrap();
    assert_eq!((g.message_type, g.teid), (G_PDU, 0x200));
    assert_eq!(g.payload[9], 17, "UDP inside");
    assert_eq!(g.payload[12..16], [10, 46, 0, 1]);
    assert_eq!(g.payload[16..20], [10, 46, 0, 2]);
    assert_eq!(&g.payload[28..], b"SIP/2.0 200 OK");
    up.stop().await;
}

#[test]
fn gtpu_packet_from_the_sgw_comes_out_of_tun_and_the_reply_goes_back_encapsulated() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(inside_namespace());
        return;
    }
    let name = format!("imslab-pgw-up-{}", std::process::id());
    ip(&["netns", "add", &name]);
    let _guard = Netns(name.clone());
    ip(&["-n", &name, "link", "set", "lo", "up"]);
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(imslab_test_support::peer("ip", "iproute2"))
        .args(["netns", "exec", &name])
        .arg(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("ip netns exec runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "user-plane test inside the namespace failed:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "the namespace run did not run the test:\n{text}"
    );
}
