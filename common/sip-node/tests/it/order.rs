//! Requests of one Call-ID are decided in arrival order: a slow decision for the ACK of a 2xx
//! keeps the BYE right behind it waiting while another call is decided meanwhile; a CANCEL
//! never waits; a full per-Call-ID queue refuses with 500 and Retry-After; a decision task that
//! dies releases the next request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imslab_sip::transaction::TimerConfig;
use imslab_sip::{HeaderName, Message, Method, StatusCode};
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

/// Answers 200, but holds the decision for a request with CSeq 1 until the test adds a permit.
struct Gate {
    gate: Arc<tokio::sync::Semaphore>,
}

impl Handler for Gate {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        if incoming.request.cseq().map(|c| c.seq) == Ok(1) {
            let permit = self.gate.acquire().await.expect("gate open");
            permit.forget();
        }
        Decision::Respond(
            incoming
                .request
                .response(StatusCode::OK, Some("uas"))
                .expect("response"),
        )
    }
}

async fn start_gate() -> (SocketAddr, Arc<tokio::sync::Semaphore>, CancellationToken) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let node = SipNode::bind(NodeConfig::new(Listen::udp_tcp(loopback())))
        .await
        .expect("bind");
    let addr = node.local_addrs()[0].1;
    let stop = CancellationToken::new();
    tokio::spawn(node.run(
        Gate {
            gate: Arc::clone(&gate),
        },
        stop.clone(),
    ));
    (addr, gate, stop)
}

/// The next response that is not 100 Trying.
async fn next_answer(sock: &UdpSocket) -> Message {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("a response within 5 s")
            .expect("recv");
        let msg = Message::parse(buf[..n].to_vec()).expect("response parses");
        if msg.status() != Some(StatusCode::TRYING) {
            return msg;
        }
    }
}

#[tokio::test]
async fn a_cancel_is_answered_while_the_decision_for_its_invite_is_pending() {
    let (proxy, gate, stop) = start_gate().await;
    let caller = UdpSocket::bind(loopback()).await.expect("bind caller");
    let invite = request("INVITE", "call-c", 1, "inv1", proxy).replace(";tag=b1", "");
    caller
        .send_to(invite.as_bytes(), proxy)
        .await
        .expect("send");
    // The CANCEL names the INVITE's branch and CSeq number (RFC 3261 §9.1).
    let cancel = invite
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("1 INVITE", "1 CANCEL");
    caller
        .send_to(cancel.as_bytes(), proxy)
        .await
        .expect("send");
    let mut got = [next_answer(&caller).await, next_answer(&caller).await];
    got.sort_by_key(|m| m.status().map(|s| s.as_u16()));
    let seen: Vec<(Option<u16>, String)> = got
        .iter()
        .map(|m| {
            (
                m.status().map(|s| s.as_u16()),
                m.cseq().expect("CSeq").method.as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some(200), "CANCEL".to_owned()),
            (Some(487), "INVITE".to_owned())
        ],
        "answered with the INVITE's decision still held"
    );
    gate.add_permits(1);
    stop.cancel();
}

#[tokio::test]
async fn beyond_32_requests_waiting_on_one_call_id_the_next_is_refused_500_with_retry_after() {
    let (proxy, gate, stop) = start_gate().await;
    let caller = UdpSocket::bind(loopback()).await.expect("bind caller");
    // CSeq 1 is held; 32 wait behind it; the 34th is one too many.
    for cseq in 1..=34 {
        let text = request("OPTIONS", "call-d", cseq, &format!("opt{cseq}"), proxy);
        caller.send_to(text.as_bytes(), proxy).await.expect("send");
    }
    let refused = next_answer(&caller).await;
    assert_eq!(refused.status(), Some(StatusCode::SERVER_INTERNAL_ERROR));
    assert_eq!(refused.cseq().expect("CSeq").seq, 34);
    assert_eq!(
        refused
            .header(&HeaderName::RETRY_AFTER)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .as_deref(),
        Some("1")
    );
    gate.add_permits(1);
    let mut answered = Vec::new();
    for _ in 1..=33 {
        let ok = next_answer(&caller).await;
        assert_eq!(ok.status(), Some(StatusCode::OK));
        answered.push(ok.cseq().expect("CSeq").seq);
    }
    assert_eq!(
        answered,
        (1..=33).collect::<Vec<u32>>(),
        "decided in arrival order"
    );
    stop.cancel();
}

/// Panics over a request with CSeq 1, answers 200 otherwise.
struct PanicsOnFirst;

impl Handler for PanicsOnFirst {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        assert_ne!(
            incoming.request.cseq().map(|c| c.seq),
            Ok(1),
            "this handler gives up on CSeq 1 (the panic is part of the test)"
        );
        Decision::Respond(
            incoming
                .request
                .response(StatusCode::OK, Some("uas"))
                .expect("response"),
        )
    }
}

#[tokio::test]
async fn a_decision_task_that_dies_does_not_hold_up_the_next_request_of_its_call_id() {
    let node = SipNode::bind(NodeConfig::new(Listen::udp_tcp(loopback())))
        .await
        .expect("bind");
    let proxy = node.local_addrs()[0].1;
    let stop = CancellationToken::new();
    tokio::spawn(node.run(PanicsOnFirst, stop.clone()));
    let caller = UdpSocket::bind(loopback()).await.expect("bind caller");
    for cseq in 1..=2 {
        let text = request("OPTIONS", "call-e", cseq, &format!("die{cseq}"), proxy);
        caller.send_to(text.as_bytes(), proxy).await.expect("send");
    }
    let ok = next_answer(&caller).await;
    assert_eq!(ok.status(), Some(StatusCode::OK));
    assert_eq!(ok.cseq().expect("CSeq").seq, 2);
    stop.cancel();
}
