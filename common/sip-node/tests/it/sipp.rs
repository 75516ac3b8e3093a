//! SIPp as a real peer through the proxy core: SIPp UAC → sip-node with a plain stateful proxy
//! handler → SIPp UAS, over UDP and over TCP; the node's capture is checked with tshark.

use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use imslab_sip_io::{PcapTap, TransportKind, pcap_tap};
use imslab_sip_node::{
    Decision, Handler, Incoming, Listen, NodeConfig, NodeHandle, Peer, SipNode, Target,
};
use imslab_test_support::{peer, tshark_check};
use tokio_util::sync::CancellationToken;

/// Forwards every request, ACK and BYE included, to one next hop over one transport: the plain
/// stateful proxy of RFC 3261 §16 with no routing logic of its own.
struct PlainProxy {
    next: Peer,
}

impl Handler for PlainProxy {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        Decision::forward(incoming.request, Target::next_hop().via(self.next.clone()))
    }
}

fn mode(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Udp => "u1",
        _ => "t1",
    }
}

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn sipp(scenario: &str, kind: TransportKind, port: u16, calls: usize, dir: &Path) -> Command {
    let mut cmd = Command::new(peer("sipp", "sip-tester"));
    cmd.current_dir(dir)
        .args(["-sn", scenario, "-t", mode(kind), "-i", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-mp", &free_port().to_string()])
        .args(["-m", &calls.to_string(), "-r", "50", "-nostdin"])
        .args(["-timeout", "30s", "-timeout_error"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn assert_succeeded(out: &Output, calls: usize, who: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SIPp {who} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(
        imslab_test_support::sipp::stat(&stdout, "Successful call"),
        calls,
        "SIPp {who} statistics:\n{stdout}"
    );
}

/// Waits until SIPp has bound its port.
async fn wait_bound(kind: TransportKind, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
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

fn tap(path: &Path) -> PcapTap {
    pcap_tap(BufWriter::new(File::create(path).expect("pcap file"))).expect("tap")
}

/// One event of the capture: a method or a status code, with the packet's Call-ID.
fn events(pcap: &Path, tap: &PcapTap, decode_as: &str) -> Vec<(String, String)> {
    tap.lock().expect("tap").flush().expect("flush");
    tshark_check(
        pcap,
        &["-d", decode_as],
        &["sip.Method", "sip.Status-Code", "sip.Call-ID"],
    )
    .into_iter()
    .filter_map(|p| {
        let what = if p.fields[0].is_empty() {
            p.fields[1].clone()
        } else {
            p.fields[0].clone()
        };
        (!what.is_empty()).then(|| (what, p.fields[2].clone()))
    })
    .collect()
}

async fn sipp_calls_through_the_proxy(kind: TransportKind) {
    const CALLS: usize = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("proxy.pcap");
    let tap = tap(&pcap);

    let uas_port = free_port();
    let uas = sipp("uas", kind, uas_port, CALLS, dir.path())
        .spawn()
        .expect("SIPp UAS starts");
    wait_bound(kind, uas_port).await;

    let listen = match kind {
        TransportKind::Udp => Listen::Udp("127.0.0.1:0".parse().expect("addr")),
        _ => Listen::Tcp("127.0.0.1:0".parse().expect("addr")),
    };
    let mut cfg = NodeConfig::new([listen]);
    cfg.transport.pcap = Some(tap.clone());
    let node = SipNode::bind(cfg).await.expect("bind");
    let proxy_addr = node.local_addrs()[0].1;
    let stop = CancellationToken::new();
    let next = Peer::new(kind.to_sip(), SocketAddr::from(([127, 0, 0, 1], uas_port)));
    let task = tokio::spawn(node.run(PlainProxy { next }, stop.clone()));

    let mut uac = sipp("uac", kind, free_port(), CALLS, dir.path());
    uac.arg(proxy_addr.to_string());
    let uac_out = tokio::task::spawn_blocking(move || uac.output().expect("SIPp UAC runs"))
        .await
        .expect("join");
    assert_succeeded(&uac_out, CALLS, "UAC");
    let uas_out = tokio::task::spawn_blocking(move || uas.wait_with_output().expect("UAS ends"))
        .await
        .expect("join");
    assert_succeeded(&uas_out, CALLS, "UAS");
    stop.cancel();
    task.await.expect("join").expect("node ran");

    let proto = if kind == TransportKind::Udp {
        "udp"
    } else {
        "tcp"
    };
    let seen = events(
        &pcap,
        &tap,
        &format!("{proto}.port=={},sip", proxy_addr.port()),
    );
    let count = |what: &str| seen.iter().filter(|(w, _)| w == what).count();
    // Each message crosses the proxy twice: in from one side, out to the other.
    assert_eq!(count("INVITE"), 2 * CALLS, "{seen:?}");
    assert_eq!(count("ACK"), 2 * CALLS, "{seen:?}");
    assert_eq!(count("BYE"), 2 * CALLS, "{seen:?}");
    assert_eq!(count("180"), 2 * CALLS, "{seen:?}");
    assert_eq!(count("200"), 4 * CALLS, "{seen:?}");
    assert_eq!(count("100"), CALLS, "the proxy's own 100 Trying per INVITE");
    // Every call in a causal order (100 Trying left aside). A response may arrive from the UAS
    // before the proxy has passed the previous one on (180 in, 200 in, 180 out, 200 out), so
    // only what must follow what is checked.
    let mut call_ids: Vec<&str> = seen.iter().map(|(_, c)| c.as_str()).collect();
    call_ids.sort_unstable();
    call_ids.dedup();
    assert_eq!(call_ids.len(), CALLS);
    for id in call_ids {
        let flow: Vec<&str> = seen
            .iter()
            .filter(|(w, c)| c == id && w != "100")
            .map(|(w, _)| w.as_str())
            .collect();
        let n = |what: &str| flow.iter().filter(|w| **w == what).count();
        assert_eq!(
            (n("INVITE"), n("180"), n("200"), n("ACK"), n("BYE")),
            (2, 2, 4, 2, 2),
            "call {id}: {flow:?}"
        );
        let first = |what: &str| flow.iter().position(|w| *w == what);
        let last = |what: &str| flow.iter().rposition(|w| *w == what);
        assert_eq!(&flow[..2], ["INVITE", "INVITE"], "call {id}: {flow:?}");
        assert!(first("180") < first("200"), "call {id}: {flow:?}");
        assert!(last("180") < first("ACK"), "call {id}: {flow:?}");
        assert!(last("ACK") < first("BYE"), "call {id}: {flow:?}");
        // The BYE from the UAC comes first; after it, the forwarded BYE and the UAS's 200 are
        // sent by different processes within microseconds, and a capture on two CPUs may record
        // them in either order.
        let mut tail = flow[flow.len() - 4..].to_vec();
        assert_eq!(tail[0], "BYE", "call {id}: {flow:?}");
        tail.sort_unstable();
        assert_eq!(tail, ["200", "200", "BYE", "BYE"], "call {id}: {flow:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_reaches_sipp_uas_through_the_proxy_over_udp() {
    sipp_calls_through_the_proxy(TransportKind::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_reaches_sipp_uas_through_the_proxy_over_tcp() {
    sipp_calls_through_the_proxy(TransportKind::Tcp).await;
}
