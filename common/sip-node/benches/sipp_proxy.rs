//! Stateful proxying of REGISTER → 200 over UDP, driven by SIPp 3.6.1 (package sip-tester):
//! SIPp UAC → sip-node with a plain forwarding handler (RFC 3261 §16, one client and one
//! server transaction per request) → SIPp UAS, everything on loopback and sharing the
//! machine's cores. The node runs on a current-thread tokio runtime (one core for the proxy,
//! the other for the two SIPp processes); `WORKERS=2` runs it on a 2-worker runtime instead.
//!
//! `cargo bench -p imslab-sip-node --bench sipp_proxy -- [transactions] [rate] [limit]`
//! (defaults 200000 at up to 40000/s, at most 500 in flight: more in flight only lengthens
//! the queues). The figure is successful transactions divided by the wall time of the SIPp
//! UAC run; the proxy's own CPU time per transaction is printed beside it.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Instant;

use imslab_sip_node::{
    Decision, Handler, Incoming, Listen, NodeConfig, NodeHandle, Peer, SipNode, Target,
};
use imslab_test_support::peer;
use tokio_util::sync::CancellationToken;

const UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register-through-proxy">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:user[call_number]@ims.test>;tag=[call_number]
      To: <sip:user[call_number]@ims.test>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:user[call_number]@[local_ip]:[local_port]>;expires=600
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

const UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="registrar-200">
  <recv request="REGISTER"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]r[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Contact:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#;

struct PlainProxy {
    next: Peer,
}

impl Handler for PlainProxy {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        Decision::forward(incoming.request, Target::next_hop().via(self.next.clone()))
    }
}

fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = u.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn stat(stdout: &str, what: &str) -> u64 {
    imslab_test_support::sipp::stat(stdout, what) as u64
}

/// CPU time this process (the proxy, not the SIPp children) used so far, user and system,
/// from /proc/self/stat in clock ticks of 10 ms.
fn own_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields 14 and 15 of the file; 12 and 13 after the command name and state.
    let tick = |i: usize| f.get(i).copied().unwrap_or(0.0) / 100.0;
    (tick(11), tick(12))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (total, rate, limit) = (arg(0, 200_000), arg(1, 40_000), arg(2, 500));
    let sipp = peer("sipp", "sip-tester");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("uac.xml"), UAC).expect("scenario");
    std::fs::write(dir.path().join("uas.xml"), UAS).expect("scenario");

    let uas_port = free_port();
    let mut uas = Command::new(&sipp)
        .current_dir(dir.path())
        .args(["-sf", "uas.xml", "-t", "u1", "-i", "127.0.0.1"])
        .args([
            "-p",
            &uas_port.to_string(),
            "-buff_size",
            "8388608",
            "-nostdin",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("SIPp UAS starts");
    while std::net::UdpSocket::bind(("127.0.0.1", uas_port)).is_ok() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let rt = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .expect("runtime");
    let stop = CancellationToken::new();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let node_stop = stop.clone();
    // The runtime's own thread drives the node (a current-thread runtime runs only there).
    let node_thread = std::thread::spawn(move || {
        rt.block_on(async {
            let mut cfg = NodeConfig::new([Listen::Udp("127.0.0.1:0".parse().expect("addr"))]);
            cfg.transport.udp_socket_buffer = 8 << 20;
            let node = SipNode::bind(cfg).await.expect("bind");
            let _ = addr_tx.send(node.local_addrs()[0].1);
            let next = Peer::new(
                imslab_sip::header::Transport::Udp,
                SocketAddr::from(([127, 0, 0, 1], uas_port)),
            );
            let _ = node.run(PlainProxy { next }, node_stop).await;
        });
    });
    let proxy_addr: SocketAddr = addr_rx.recv().expect("the node binds");

    let start = Instant::now();
    let cpu0 = own_cpu();
    let out = Command::new(&sipp)
        .current_dir(dir.path())
        .args([
            "-sf",
            "uac.xml",
            "-s",
            "registrar",
            "-t",
            "u1",
            "-i",
            "127.0.0.1",
        ])
        .args(["-p", &free_port().to_string(), "-buff_size", "8388608"])
        .args(["-m", &total.to_string(), "-r", &rate.to_string()])
        .args(["-l", &limit.to_string(), "-nostdin"])
        .args(["-timeout", "300s", "-timeout_error"])
        .arg(proxy_addr.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("SIPp UAC runs");
    let took = start.elapsed();
    let cpu1 = own_cpu();
    stop.cancel();
    let _ = node_thread.join();
    let _ = uas.kill();
    let _ = uas.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (ok, failed) = (
        stat(&stdout, "Successful call"),
        stat(&stdout, "Failed call"),
    );
    let retrans = stat(&stdout, "Retransmissions");
    println!(
        "SIPp REGISTER→200 through the proxy over UDP: {ok} of {total} transactions in {:.2} s = \
         {:.0} transactions/s (asked rate {rate}/s, limit {limit} in flight); {failed} failed; \
         {retrans} retransmissions",
        took.as_secs_f64(),
        ok as f64 / took.as_secs_f64()
    );
    let (user, sys) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    println!(
        "proxy CPU: {user:.2} s user + {sys:.2} s system = {:.1} µs per transaction \
         ({:.0} % of one core)",
        (user + sys) * 1e6 / ok.max(1) as f64,
        (user + sys) * 100.0 / took.as_secs_f64()
    );
    if ok != total {
        println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    }
}
