//! Requests of one Call-ID are decided in arrival order: a slow decision for the ACK of a 2xx
//! keeps the BYE right behind it waiting, while another call is decided meanwhile.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imslab_sip::transaction::TimerConfig;
use imslab_sip::{Message, Method};
use imslab_sip_io::TransportKind;
use imslab_sip_node::{
    Decision, Handler, Incoming, Listen, NodeConfig, NodeHandle, Peer, SipNode, Target,
};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// How long the handler takes over an ACK.
const SLOW: Duration = Duration::from_millis(300);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Forwards every request to `next`; takes [`SLOW`] over an ACK. Logs `start`/`end` of each
/// decision as `"<event> <method> <Call-ID>"`.
struct SlowAck {
    next: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl SlowAck {
    fn note(&self, event: &str, request: &Message) {
        let method = request
            .method()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let call = request
            .call_id()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        self.log
            .lock()
            .expect("lock")
            .push(format!("{event} {method} {call}"));
    }
}

impl Handler for SlowAck {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        self.note("start", &incoming.request);
        if incoming.request.method() == Some(&Method::Ack) {
            tokio::time::sleep(SLOW).await;
        }
        self.note("end", &incoming.request);
        Decision::forward(
            incoming.request,
            Target::next_hop().via(Peer::new(TransportKind::Udp.to_sip(), self.next)),
        )
    }
}

fn request(method: &str, call_id: &str, cseq: u32, branch: &str, proxy: SocketAddr) -> String {
    format!(
        "{method} sip:bob@{proxy} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@ims.example>;tag=a1\r\n\
         To: <sip:bob@ims.example>;tag=b1\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn a_bye_does_not_overtake_the_slow_decision_for_the_ack_before_it_but_another_call_does() {
    let downstream = UdpSocket::bind(loopback()).await.expect("bind downstream");
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut cfg = NodeConfig::new(Listen::udp_tcp(loopback()));
    cfg.timers = TimerConfig {
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        t4: Duration::from_secs(5),
        timer_d: Duration::from_millis(100),
    };
    let node = SipNode::bind(cfg).await.expect("bind");
    let proxy = node.local_addrs()[0].1;
    let stop = CancellationToken::new();
    let handler = SlowAck {
        next: downstream.local_addr().expect("downstream address"),
        log: Arc::clone(&log),
    };
    let task = tokio::spawn(node.run(handler, stop.clone()));

    // The caller's ACK for the 2xx and its BYE, back to back; then another call's MESSAGE.
    let caller = UdpSocket::bind(loopback()).await.expect("bind caller");
    for text in [
        request("ACK", "call-a", 1, "ack1", proxy),
        request("BYE", "call-a", 2, "bye2", proxy),
        request("MESSAGE", "call-b", 1, "msg1", proxy),
    ] {
        caller.send_to(text.as_bytes(), proxy).await.expect("send");
    }

    // What the next hop receives, first copies only (a BYE or MESSAGE may be retransmitted).
    let mut seen: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 65536];
    while seen.len() < 3 {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), downstream.recv_from(&mut buf))
            .await
            .expect("three requests forwarded within 5 s")
            .expect("recv");
        let msg = Message::parse(buf[..n].to_vec()).expect("forwarded request parses");
        let line = format!(
            "{} {}",
            msg.method()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            msg.call_id().expect("Call-ID").as_str()
        );
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    assert_eq!(seen, ["MESSAGE call-b", "ACK call-a", "BYE call-a"]);

    let log = log.lock().expect("lock").clone();
    let at = |entry: &str| {
        log.iter()
            .position(|l| l == entry)
            .unwrap_or_else(|| panic!("{entry:?} in the handler log {log:?}"))
    };
    // The BYE reached the handler only after the ACK's decision; the other call's MESSAGE was
    // decided while the ACK's decision was pending.
    assert!(at("start BYE call-a") > at("end ACK call-a"), "{log:?}");
    assert!(at("end MESSAGE call-b") < at("end ACK call-a"), "{log:?}");

    stop.cancel();
    task.await.expect("join").expect("run");
}
