//! SIPp as a real peer: UAC and UAS scenarios over UDP and TCP, captured with the pcap tap and
//! checked with tshark.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use imslab_sip::{HeaderName, Message, Method, StatusCode};
use imslab_sip_io::{Config, Event, Payload, PcapTap, SipTransport, Target, TransportKind};
use imslab_test_support::{peer, tshark_check};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc::Receiver;

use crate::support::*;

const SDP: &str = "v=0\r\n\
o=imslab 1 1 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

fn sipp_mode(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Udp => "u1",
        TransportKind::Tcp => "t1",
        other => panic!("SIPp 3.6.1 here has no {other}"),
    }
}

fn sipp_command(
    scenario: &str,
    kind: TransportKind,
    port: u16,
    calls: usize,
    dir: &Path,
) -> Command {
    let mut cmd = Command::new(peer("sipp", "sip-tester"));
    cmd.current_dir(dir)
        .args(["-sn", scenario, "-t", sipp_mode(kind), "-i", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-mp", &free_port().to_string()])
        .args(["-m", &calls.to_string(), "-r", "50", "-nostdin"])
        .args(["-timeout", "30s", "-timeout_error"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Asserts SIPp exited 0 (every call succeeded) and counted `calls` successful calls.
fn assert_sipp_succeeded(out: &Output, calls: usize) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SIPp failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let successful = stdout
        .lines()
        .rev()
        .find(|l| l.contains("Successful call"))
        .and_then(|l| l.split('|').next_back())
        .and_then(|n| n.trim().parse::<usize>().ok());
    assert_eq!(successful, Some(calls), "SIPp statistics:\n{stdout}");
}

/// Answers every request but ACK with 200 OK built by imslab-sip.
async fn echo_uas(transport: SipTransport, mut rx: Receiver<Event>, contact: String) {
    while let Some(event) = rx.recv().await {
        let Event::Received(r) = event else { continue };
        let Payload::Message(m) = &r.payload else {
            panic!("SIPp sent something undecodable: {:?}", r.payload)
        };
        if !m.is_request() || m.method() == Some(&Method::Ack) {
            continue;
        }
        let mut ok = m.response(StatusCode::OK, Some("echo")).unwrap();
        if m.method() == Some(&Method::Invite) {
            ok.push_header(HeaderName::CONTACT, contact.clone())
                .unwrap();
        }
        transport.send(&r.reply_target(), ok).await.unwrap();
    }
}

/// Counts (requests by method, responses by code) in a checked capture.
fn sip_counts(pcap: &Path, tap: &PcapTap, decode_as: &str) -> (Vec<String>, Vec<String>) {
    flush(tap);
    let packets = tshark_check(pcap, &["-d", decode_as], &["sip.Method", "sip.Status-Code"]);
    let methods = packets
        .iter()
        .map(|p| p.fields[0].clone())
        .filter(|m| !m.is_empty())
        .collect();
    let codes = packets
        .iter()
        .map(|p| p.fields[1].clone())
        .filter(|c| !c.is_empty())
        .collect();
    (methods, codes)
}

fn count(items: &[String], what: &str) -> usize {
    items.iter().filter(|i| i.as_str() == what).count()
}

async fn sipp_uac_against_echo_uas(kind: TransportKind) {
    const CALLS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("uac.pcap");
    let tap = tap(&pcap);
    let (uas, rx) = SipTransport::new(Config {
        pcap: Some(tap.clone()),
        ..Config::default()
    });
    let addr = match kind {
        TransportKind::Udp => uas.add_udp(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
        _ => uas.add_tcp(TcpListener::bind("127.0.0.1:0").await.unwrap()),
    }
    .unwrap();
    let contact = format!(
        "<sip:echo@{addr};transport={}>",
        kind.via_token().to_lowercase()
    );
    tokio::spawn(echo_uas(uas.clone(), rx, contact));

    let mut cmd = sipp_command("uac", kind, free_port(), CALLS, dir.path());
    cmd.arg(addr.to_string());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("sipp runs"))
        .await
        .unwrap();
    assert_sipp_succeeded(&out, CALLS);

    let proto = if kind == TransportKind::Udp {
        "udp"
    } else {
        "tcp"
    };
    let (methods, codes) = sip_counts(&pcap, &tap, &format!("{proto}.port=={},sip", addr.port()));
    assert_eq!(count(&methods, "INVITE"), CALLS);
    assert_eq!(count(&methods, "ACK"), CALLS);
    assert_eq!(count(&methods, "BYE"), CALLS);
    assert_eq!(count(&codes, "200"), 2 * CALLS);
}

#[tokio::test]
async fn sipp_uac_over_udp_completes_every_call_with_an_echo_uas() {
    sipp_uac_against_echo_uas(TransportKind::Udp).await;
}

#[tokio::test]
async fn sipp_uac_over_tcp_completes_every_call_with_an_echo_uas() {
    sipp_uac_against_echo_uas(TransportKind::Tcp).await;
}

fn sip_request(text: String) -> Message {
    Message::parse(Bytes::from(text)).unwrap()
}

/// Waits for the final response to `method`, skipping provisional ones.
async fn final_response(rx: &mut Receiver<Event>, method: &Method) -> Message {
    loop {
        let r = next_received(rx).await;
        let m = parsed(&r).clone();
        let Some(status) = m.status() else { continue };
        if m.cseq().unwrap().method == *method && !status.is_provisional() {
            return m;
        }
    }
}

/// One INVITE, ACK, BYE call from our transport to SIPp's UAS.
async fn call(
    client: &SipTransport,
    rx: &mut Receiver<Event>,
    kind: TransportKind,
    sipp: SocketAddr,
    sent_by: SocketAddr,
    n: usize,
) {
    let t = kind.via_token();
    let target = Target::address(kind, sipp);
    let common = |branch: &str, cseq: &str, to: &str| {
        format!(
            "Via: SIP/2.0/{t} {sent_by};branch=z9hG4bK-{branch}{n};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:imslab@127.0.0.1>;tag=c{n}\r\n\
             To: {to}\r\n\
             Call-ID: sipp-uas-{n}-{}@imslab.test\r\n\
             CSeq: {cseq}\r\n\
             Contact: <sip:imslab@{sent_by};transport={}>\r\n",
            std::process::id(),
            t.to_lowercase()
        )
    };
    let ruri = format!("sip:service@{sipp}");
    let to = format!("<{ruri}>");
    let invite = format!(
        "INVITE {ruri} SIP/2.0\r\n{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        common("inv", "1 INVITE", &to),
        SDP.len()
    );
    client.send(&target, sip_request(invite)).await.unwrap();
    let ok = final_response(rx, &Method::Invite).await;
    assert_eq!(ok.status(), Some(StatusCode::OK));
    let to = ok.header_str(&HeaderName::TO).unwrap().unwrap().to_owned();
    let ack = format!(
        "ACK {ruri} SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
        common("ack", "1 ACK", &to)
    );
    client.send(&target, sip_request(ack)).await.unwrap();
    let bye = format!(
        "BYE {ruri} SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
        common("bye", "2 BYE", &to)
    );
    client.send(&target, sip_request(bye)).await.unwrap();
    let ok = final_response(rx, &Method::Bye).await;
    assert_eq!(ok.status(), Some(StatusCode::OK));
}

/// Waits until SIPp has bound its port.
async fn wait_bound(kind: TransportKind, port: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let busy = match kind {
            TransportKind::Udp => std::net::UdpSocket::bind(("127.0.0.1", port)).is_err(),
            _ => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        };
        if busy {
            return;
        }
        assert!(Instant::now() < deadline, "SIPp did not bind port {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn client_against_sipp_uas(kind: TransportKind) {
    const CALLS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("uas.pcap");
    let tap = tap(&pcap);
    let port = free_port();
    let sipp = SocketAddr::from(([127, 0, 0, 1], port));
    let child = sipp_command("uas", kind, port, CALLS, dir.path())
        .spawn()
        .expect("sipp starts");
    wait_bound(kind, port).await;

    let (client, mut rx) = SipTransport::new(Config {
        pcap: Some(tap.clone()),
        ..Config::default()
    });
    let (udp, tcp) = udp_and_tcp().await;
    let sent_by = client.add_udp(udp).unwrap();
    client.add_tcp(tcp).unwrap();
    for n in 0..CALLS {
        call(&client, &mut rx, kind, sipp, sent_by, n).await;
    }
    if kind == TransportKind::Tcp {
        assert_eq!(
            client.connection_count(),
            1,
            "every call reused one connection"
        );
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("sipp ends"))
        .await
        .unwrap();
    assert_sipp_succeeded(&out, CALLS);

    let proto = if kind == TransportKind::Udp {
        "udp"
    } else {
        "tcp"
    };
    let (methods, codes) = sip_counts(&pcap, &tap, &format!("{proto}.port=={port},sip"));
    assert_eq!(count(&methods, "INVITE"), CALLS);
    assert_eq!(count(&methods, "BYE"), CALLS);
    assert_eq!(count(&codes, "180"), CALLS);
    assert_eq!(count(&codes, "200"), 2 * CALLS);
}

#[tokio::test]
async fn client_completes_calls_with_a_sipp_uas_over_udp() {
    client_against_sipp_uas(TransportKind::Udp).await;
}

#[tokio::test]
async fn client_completes_calls_with_a_sipp_uas_over_tcp() {
    client_against_sipp_uas(TransportKind::Tcp).await;
}
