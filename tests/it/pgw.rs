//! The P-GW PCO stub inside `imslab up`, from outside the process.

use std::net::UdpSocket;
use std::time::Duration;

use crate::support::{Lab, Ports, stop_cleanly, wait_listening};

/// GTPv2-C Echo Request (TS 29.274 §7.1.1) with sequence number 1 and a Recovery IE.
const ECHO_REQUEST: [u8; 13] = [
    0x40, 0x01, 0x00, 0x09, 0x00, 0x00, 0x01, 0x00, 0x03, 0x00, 0x01, 0x00, 0x05,
];

/// Sends an Echo Request, retransmitting like an SGW (T3 2 s, N3 3, TS 29.274 §7.6), and
/// returns the Recovery restart counter of the Echo Response.
fn echo(sock: &UdpSocket, to: std::net::SocketAddr) -> u8 {
    let mut buf = [0u8; 512];
    let mut got = None;
    for _ in 0..3 {
        sock.send_to(&ECHO_REQUEST, to).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            got = Some(n);
            break;
        }
    }
    let n = got.expect("an Echo Response within 3 tries");
    let resp = &buf[..n];
    assert_eq!(resp[1], 0x02, "message type Echo Response: {resp:02x?}");
    assert_eq!(&resp[4..7], &[0, 0, 1], "same sequence number");
    // The first IE is Recovery (type 3, length 1).
    assert_eq!(&resp[8..11], &[0x03, 0x00, 0x01], "{resp:02x?}");
    resp[12]
}

#[test]
fn pgw_answers_echo_and_its_restart_counter_survives_restarts() {
    let lab = Lab::new();
    let ports = Ports::new();
    lab.write("lab.yaml", &ports.yaml());
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut counters = Vec::new();
    for _ in 0..2 {
        let mut child = lab.spawn(&["--config", "lab.yaml", "up"]);
        assert!(
            wait_listening(ports.web, Duration::from_secs(10)).is_some(),
            "lab started"
        );
        counters.push(echo(&sock, ports.gtpc));
        stop_cleanly(&mut child);
    }
    assert_eq!(
        counters[1],
        counters[0].wrapping_add(1),
        "Recovery is bumped at each start"
    );
}

/// An SGW stand-in built on PyPI's pycrate (pgw-pco/tests/peer) creates an IMS session; the
/// CLI lists it with the P-CSCF addresses the phone was given.
#[test]
fn pgw_sessions_lists_a_session_created_by_an_independent_client() {
    let lab = Lab::new();
    let ports = Ports::new();
    lab.write("lab.yaml", &ports.yaml());
    let mut child = lab.spawn(&["--config", "lab.yaml", "up"]);
    assert!(
        wait_listening(ports.web, Duration::from_secs(10)).is_some(),
        "lab started"
    );
    let client = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pgw-pco/tests/peer/gtpv2_client.py"
    );
    let out = std::process::Command::new(imslab_test_support::peer("python3", "python3"))
        .arg(client)
        .args([
            "--pgw",
            &ports.gtpc.to_string(),
            "--apn",
            "ims",
            "--imsi",
            "001010000000042",
        ])
        .args([
            "--pcscf4",
            "10.46.0.1",
            "--pcscf6",
            "2001:db8:46::1",
            "--mtu",
            "1400",
        ])
        .arg("--keep-session")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pycrate client (pip install pycrate): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let list = lab.run(&["--config", "lab.yaml", "pgw", "sessions"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("001010000000042"))
        .unwrap_or_else(|| {
            panic!("session not listed:\n{text}");
        });
    assert!(line.contains("ims") && line.contains("10.46.0.1"), "{line}");
    assert!(line.contains("2001:db8:46::1"), "{line}");
    stop_cleanly(&mut child);
}
