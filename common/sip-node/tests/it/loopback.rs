//! The node on loopback with trivial handlers: answering, forwarding, editing responses,
//! originating requests, TCP flows and shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use imslab_sip::transaction::TimerConfig;
use imslab_sip::{HeaderName, Message, Method, StatusCode};
use imslab_sip_io::TransportKind;
use imslab_sip_node::{
    Decided, Decision, Error, Handler, Incoming, Listen, NodeConfig, NodeHandle, Outgoing, Peer,
    SipNode, Target,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn fast_timers() -> TimerConfig {
    TimerConfig {
        t1: Duration::from_millis(10),
        t2: Duration::from_millis(40),
        t4: Duration::from_millis(50),
        timer_d: Duration::from_millis(100),
    }
}

/// Answers every request with 200 and a `X-Answered-By` header.
struct Answer(&'static str);

impl Handler for Answer {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        let mut ok = incoming
            .request
            .response(StatusCode::OK, Some("uas"))
            .expect("response");
        ok.push_header(
            HeaderName::new("X-Answered-By").expect("header name"),
            self.0,
        )
        .expect("header");
        Decision::Respond(ok)
    }
}

/// Answers 200 saying in `X-Arrived-Over` which transport the request came over.
struct AnswerTransport;

impl Handler for AnswerTransport {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        let mut ok = incoming
            .request
            .response(StatusCode::OK, Some("uas"))
            .expect("response");
        ok.push_header(
            HeaderName::new("X-Arrived-Over").expect("header name"),
            incoming.from.transport.as_str().to_owned(),
        )
        .expect("header");
        Decision::Respond(ok)
    }
}

/// Forwards every request to `next` and marks forwarded responses.
struct Forward {
    next: SocketAddr,
}

impl Handler for Forward {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        Decision::forward(
            incoming.request,
            Target::next_hop().via(Peer::new(TransportKind::Udp.to_sip(), self.next)),
        )
    }

    async fn on_response(&self, outgoing: Outgoing) -> Message {
        let mut r = outgoing.response;
        r.push_header(
            HeaderName::new("X-Seen-By-Proxy").expect("header name"),
            "yes",
        )
        .expect("header");
        r
    }
}

struct Running {
    addr: SocketAddr,
    handle: NodeHandle,
    stop: CancellationToken,
    task: JoinHandle<Result<(), Error>>,
}

async fn start<H: Handler>(handler: H) -> Running {
    let mut cfg = NodeConfig::new(Listen::udp_tcp(loopback()));
    cfg.timers = fast_timers();
    let node = SipNode::bind(cfg).await.expect("bind");
    let addr = node.local_addrs()[0].1;
    let handle = node.handle();
    let stop = CancellationToken::new();
    let task = tokio::spawn(node.run(handler, stop.clone()));
    Running {
        addr,
        handle,
        stop,
        task,
    }
}

fn options(to: SocketAddr, branch: &str) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@ims.example>;tag=a1\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: {branch}@test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

async fn udp_exchange(to: SocketAddr, text: &str) -> Message {
    let sock = UdpSocket::bind(loopback()).await.expect("bind client");
    sock.send_to(text.as_bytes(), to).await.expect("send");
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("a response within 5 s")
            .expect("recv");
        let msg = Message::parse(buf[..n].to_vec()).expect("parses");
        if msg.status() != Some(StatusCode::TRYING) {
            return msg;
        }
    }
}

fn header(m: &Message, name: &'static str) -> Option<String> {
    m.header(&HeaderName::new(name).expect("header name"))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[tokio::test]
async fn handler_answer_reaches_the_udp_client_through_the_transaction() {
    let uas = start(Answer("uas")).await;
    let resp = udp_exchange(uas.addr, &options(uas.addr, "1")).await;
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(header(&resp, "X-Answered-By").as_deref(), Some("uas"));
    assert_eq!(resp.to_header().expect("To").tag(), Some("uas"));
    uas.stop.cancel();
}

#[tokio::test]
async fn forwarded_request_comes_back_as_an_edited_response_without_the_proxy_via() {
    let uas = start(Answer("uas")).await;
    let proxy = start(Forward { next: uas.addr }).await;
    let resp = udp_exchange(proxy.addr, &options(uas.addr, "2")).await;
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(header(&resp, "X-Answered-By").as_deref(), Some("uas"));
    assert_eq!(header(&resp, "X-Seen-By-Proxy").as_deref(), Some("yes"));
    let vias: Vec<_> = resp.vias().collect();
    assert_eq!(vias.len(), 1, "only the client's Via is left");
    uas.stop.cancel();
    proxy.stop.cancel();
}

/// An OPTIONS padded past 1300 bytes, too large for UDP (RFC 3261 §18.1.1).
fn large_options(to: SocketAddr, branch: &str) -> String {
    options(to, branch).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nX-Pad: {}\r\n", "p".repeat(1400)),
    )
}

#[tokio::test]
async fn large_request_toward_a_udp_next_hop_goes_over_tcp_and_is_answered() {
    let uas = start(AnswerTransport).await;
    let proxy = start(Forward { next: uas.addr }).await;
    let resp = udp_exchange(proxy.addr, &large_options(uas.addr, "big1")).await;
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(header(&resp, "X-Seen-By-Proxy").as_deref(), Some("yes"));
    assert_eq!(
        header(&resp, "X-Arrived-Over").as_deref(),
        Some("TCP"),
        "the proxy connected to the UAS over TCP"
    );
    uas.stop.cancel();
    proxy.stop.cancel();
}

#[tokio::test]
async fn large_request_falls_back_to_udp_when_the_next_hop_refuses_tcp() {
    // A next hop with only a UDP socket: connecting over TCP to its port is refused.
    let next = UdpSocket::bind(loopback()).await.expect("bind next hop");
    let next_addr = next.local_addr().expect("addr");
    let proxy = start(Forward { next: next_addr }).await;
    let client = UdpSocket::bind(loopback()).await.expect("bind client");
    client
        .send_to(large_options(next_addr, "big2").as_bytes(), proxy.addr)
        .await
        .expect("send");
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), next.recv_from(&mut buf))
        .await
        .expect("the request arrives over UDP after all")
        .expect("recv");
    let fwd = Message::parse(buf[..n].to_vec()).expect("parses");
    assert!(fwd.encoded_len() > 1300);
    let via = fwd.top_via().expect("Via");
    assert_eq!(via.transport, imslab_sip::header::Transport::Udp);
    assert_eq!(fwd.vias().count(), 2);
    proxy.stop.cancel();
}

fn originated(to: SocketAddr) -> Message {
    let mut m = Message::new_request(Method::Notify, format!("sip:ue@{to}"));
    for (n, v) in [
        (HeaderName::MAX_FORWARDS, "70".to_owned()),
        (
            HeaderName::FROM,
            "<sip:scscf@ims.example>;tag=n1".to_owned(),
        ),
        (HeaderName::TO, "<sip:ue@ims.example>;tag=u1".to_owned()),
        (HeaderName::CALL_ID, "notify-1@test".to_owned()),
        (HeaderName::CSEQ, "1 NOTIFY".to_owned()),
        (HeaderName::EVENT, "reg".to_owned()),
    ] {
        m.push_header(n, v).expect("header");
    }
    m
}

#[tokio::test]
async fn originated_request_returns_the_final_response() {
    let uas = start(Answer("uas")).await;
    let origin = start(Answer("origin")).await;
    let resp = origin
        .handle
        .request(
            originated(uas.addr),
            Peer::new(TransportKind::Udp.to_sip(), uas.addr),
        )
        .await
        .expect("a response");
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(header(&resp, "X-Answered-By").as_deref(), Some("uas"));
    uas.stop.cancel();
    origin.stop.cancel();
}

#[tokio::test]
async fn originated_request_to_a_silent_peer_fails_with_408() {
    let silent = UdpSocket::bind(loopback()).await.expect("bind");
    let to = silent.local_addr().expect("addr");
    let origin = start(Answer("origin")).await;
    let err = origin
        .handle
        .request(originated(to), Peer::new(TransportKind::Udp.to_sip(), to))
        .await
        .expect_err("no response");
    assert!(
        matches!(err, Error::NoResponse { status } if status == StatusCode::REQUEST_TIMEOUT),
        "{err}"
    );
    origin.stop.cancel();
}

#[tokio::test]
async fn request_over_tcp_is_answered_on_the_same_connection() {
    let uas = start(Answer("uas")).await;
    let tcp_addr = uas
        .handle
        .local_addr(TransportKind::Tcp)
        .expect("a TCP listener");
    assert_eq!(
        tcp_addr.port(),
        uas.addr.port(),
        "UDP and TCP share the port"
    );
    let mut conn = TcpStream::connect(tcp_addr).await.expect("connect");
    let req = options(tcp_addr, "3").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    conn.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let resp = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("data within 5 s")
            .expect("read");
        assert!(n > 0, "connection closed before a response");
        got.extend_from_slice(&buf[..n]);
        if let Ok(m) = Message::parse(got.clone())
            && m.status().is_some_and(|s| s.is_final())
        {
            break m;
        }
    };
    assert_eq!(resp.status(), Some(StatusCode::OK));
    uas.stop.cancel();
}

/// Reads whole messages from a stream until `want` of them arrived.
async fn read_messages(conn: &mut TcpStream, want: usize) -> Vec<Message> {
    let mut framer = imslab_sip::StreamFramer::default();
    let mut buf = bytes::BytesMut::new();
    let mut out = Vec::new();
    while out.len() < want {
        while let Some(f) = framer.decode(&mut buf).expect("framing") {
            if let imslab_sip::Frame::Message(m) = f {
                out.push(m);
            }
        }
        if out.len() >= want {
            break;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read_buf(&mut buf))
            .await
            .expect("data within 5 s")
            .expect("read");
        assert!(n > 0, "connection closed after {} messages", out.len());
    }
    out
}

#[tokio::test]
async fn unparseable_request_on_tcp_gets_400_and_the_connection_serves_the_next_one() {
    let uas = start(Answer("uas")).await;
    let tcp_addr = uas.handle.local_addr(TransportKind::Tcp).expect("TCP");
    let mut conn = TcpStream::connect(tcp_addr).await.expect("connect");
    let broken = options(tcp_addr, "4")
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace("Max-Forwards: 70\r\n", "Max-Forwards 70\r\n");
    let good = options(tcp_addr, "5").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    conn.write_all(format!("{broken}{good}").as_bytes())
        .await
        .expect("write");
    let answers = read_messages(&mut conn, 2).await;
    let codes: Vec<_> = answers.iter().map(|m| m.status()).collect();
    assert_eq!(
        codes,
        [Some(StatusCode::BAD_REQUEST), Some(StatusCode::OK)],
        "400 for the broken request, then 200 on the same connection"
    );
    assert_eq!(
        answers[0].header(&HeaderName::CALL_ID),
        Some(&b"4@test"[..])
    );
    uas.stop.cancel();
}

#[tokio::test]
async fn unparseable_request_on_websocket_gets_400_and_the_connection_serves_the_next_one() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let mut cfg = NodeConfig::new([Listen::Ws(loopback())]);
    cfg.timers = fast_timers();
    let node = SipNode::bind(cfg).await.expect("bind");
    let addr = node.local_addrs()[0].1;
    let stop = CancellationToken::new();
    tokio::spawn(node.run(Answer("ws"), stop.clone()));
    let mut req = format!("ws://{addr}/")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().expect("value"));
    let io = TcpStream::connect(addr).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(req, io)
        .await
        .expect("handshake");
    let broken = options(addr, "ws1")
        .replace("SIP/2.0/UDP", "SIP/2.0/WS")
        .replace("Max-Forwards: 70\r\n", "Max-Forwards 70\r\n");
    let good = options(addr, "ws2").replace("SIP/2.0/UDP", "SIP/2.0/WS");
    ws.send(Ws::text(broken)).await.expect("send");
    ws.send(Ws::text(good)).await.expect("send");
    let mut codes = Vec::new();
    while codes.len() < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("open")
            .expect("frame");
        let Ws::Text(t) = frame else { continue };
        let m = Message::parse(t.as_bytes().to_vec()).expect("parses");
        codes.push(m.status());
    }
    assert_eq!(codes, [Some(StatusCode::BAD_REQUEST), Some(StatusCode::OK)]);
    stop.cancel();
}

#[tokio::test]
async fn uri_and_resolve_name_this_element() {
    let mut cfg = NodeConfig::new(Listen::udp_tcp(loopback())).host(
        "pcscf.ims.example",
        TransportKind::Tcp,
        "127.0.0.1:5060".parse().expect("addr"),
    );
    cfg.advertise = None;
    let node = SipNode::bind(cfg).await.expect("bind");
    let h = node.handle();
    let port = node.local_addrs()[0].1.port();
    assert_eq!(
        h.uri(TransportKind::Udp),
        Some(format!("sip:127.0.0.1:{port}"))
    );
    assert_eq!(
        h.uri(TransportKind::Tcp),
        Some(format!("sip:127.0.0.1:{port};transport=tcp"))
    );
    let p = h
        .resolve("<sip:term@pcscf.ims.example:5070;lr>")
        .expect("resolves");
    assert_eq!(
        p.addr,
        "127.0.0.1:5070".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(p.transport, TransportKind::Tcp.to_sip());
    let p = h
        .resolve("sip:10.0.0.1;transport=tcp;lr")
        .expect("IP literal");
    assert_eq!(p.addr, "10.0.0.1:5060".parse::<SocketAddr>().expect("addr"));
    assert!(h.resolve("sip:unknown.example").is_none());
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let taken = UdpSocket::bind(loopback()).await.expect("bind");
    let addr = taken.local_addr().expect("addr");
    let err = SipNode::bind(NodeConfig::new([Listen::Udp(addr)]))
        .await
        .expect_err("port in use");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn run_returns_promptly_after_cancellation() {
    let node = start(Answer("uas")).await;
    node.stop.cancel();
    let done = tokio::time::timeout(Duration::from_millis(1500), node.task)
        .await
        .expect("returns within 1.5 s")
        .expect("task");
    assert!(done.is_ok());
    let err = node
        .handle
        .request(
            originated(node.addr),
            Peer::new(TransportKind::Udp.to_sip(), node.addr),
        )
        .await
        .expect_err("stopped");
    assert!(matches!(err, Error::Stopped), "{err}");
}

/// Answers 200 listing, in `X-Consumed`, the Route values naming the node that it removed.
struct EchoConsumed;

impl Handler for EchoConsumed {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        let list: Vec<String> = incoming
            .consumed_routes
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        let mut ok = incoming
            .request
            .response(StatusCode::OK, Some("uas"))
            .expect("response");
        ok.push_header(
            HeaderName::new("X-Consumed").expect("header name"),
            list.join(" | "),
        )
        .expect("header");
        Decision::Respond(ok)
    }
}

#[tokio::test]
async fn handler_sees_the_route_values_naming_the_node_that_the_core_removed() {
    let node = start(EchoConsumed).await;
    let a = node.addr;
    let elsewhere = SocketAddr::from(([127, 0, 0, 1], 9));
    let text = options(elsewhere, "cr1").replace(
        "Max-Forwards",
        &format!("Route: <sip:orig@{a};lr>\r\nRoute: <sip:odi-t1@{a};lr>\r\nMax-Forwards"),
    );
    let resp = udp_exchange(a, &text).await;
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(
        header(&resp, "X-Consumed"),
        Some(format!("<sip:orig@{a};lr> | <sip:odi-t1@{a};lr>"))
    );
    node.stop.cancel();
}

/// Answers every request with one status.
struct Refuse(StatusCode);

impl Handler for Refuse {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        Decision::Respond(
            incoming
                .request
                .response(self.0, Some("refused"))
                .expect("response"),
        )
    }
}

/// Forwards to `primary`, falling back to `fallback` when that branch fails; counts the
/// fallbacks applied.
struct ForwardOrContinue {
    primary: SocketAddr,
    fallback: SocketAddr,
    applied: std::sync::Arc<std::sync::Mutex<Vec<StatusCode>>>,
}

impl ForwardOrContinue {
    fn to(&self, req: Message, addr: SocketAddr) -> Decision {
        Decision::forward(
            req,
            Target::next_hop().via(Peer::new(TransportKind::Udp.to_sip(), addr)),
        )
    }
}

impl Handler for ForwardOrContinue {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        self.to(incoming.request, self.primary)
    }

    async fn on_request_with_fallback(&self, incoming: Incoming, _node: NodeHandle) -> Decided {
        let req = incoming.request;
        Decided::from(self.to(req.clone(), self.primary))
            .with_fallback(Some(self.to(req, self.fallback)))
    }

    fn on_fallback_applied(&self, _ctx: imslab_sip_node::ContextId, status: StatusCode) {
        self.applied.lock().expect("lock").push(status);
    }
}

#[tokio::test]
async fn when_the_first_branch_answers_503_the_fallback_decision_answers() {
    let refusing = start(Refuse(StatusCode::SERVICE_UNAVAILABLE)).await;
    let uas = start(Answer("fallback")).await;
    let applied = std::sync::Arc::default();
    let proxy = start(ForwardOrContinue {
        primary: refusing.addr,
        fallback: uas.addr,
        applied: std::sync::Arc::clone(&applied),
    })
    .await;
    let resp = udp_exchange(proxy.addr, &options(uas.addr, "fb1")).await;
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(header(&resp, "X-Answered-By").as_deref(), Some("fallback"));
    assert_eq!(
        *applied.lock().expect("lock"),
        [StatusCode::SERVICE_UNAVAILABLE]
    );
    for n in [refusing, uas, proxy] {
        n.stop.cancel();
    }
}

#[tokio::test]
async fn when_the_first_branch_answers_403_it_goes_upstream_and_the_fallback_is_unused() {
    let refusing = start(Refuse(StatusCode::FORBIDDEN)).await;
    let uas = start(Answer("fallback")).await;
    let applied = std::sync::Arc::default();
    let proxy = start(ForwardOrContinue {
        primary: refusing.addr,
        fallback: uas.addr,
        applied: std::sync::Arc::clone(&applied),
    })
    .await;
    let resp = udp_exchange(proxy.addr, &options(uas.addr, "fb2")).await;
    assert_eq!(resp.status(), Some(StatusCode::FORBIDDEN));
    assert!(applied.lock().expect("lock").is_empty());
    for n in [refusing, uas, proxy] {
        n.stop.cancel();
    }
}

/// Answers 401 to a request without Authorization, else 200 saying in `X-Seen-CSeq` the CSeq
/// number it got.
struct ChallengeOnce;

impl Handler for ChallengeOnce {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        let req = incoming.request;
        if !req.has_header(&HeaderName::AUTHORIZATION) {
            let mut r = req
                .response(StatusCode::UNAUTHORIZED, Some("uas"))
                .expect("response");
            r.push_header(
                HeaderName::WWW_AUTHENTICATE,
                "Digest realm=\"t\", nonce=\"n\"",
            )
            .expect("header");
            return Decision::Respond(r);
        }
        let mut ok = req.response(StatusCode::OK, Some("uas")).expect("response");
        let seq = req.cseq().expect("CSeq").seq;
        ok.push_header(
            HeaderName::new("X-Seen-CSeq").expect("header name"),
            seq.to_string(),
        )
        .expect("header");
        Decision::Respond(ok)
    }
}

/// Forwards to `next` and answers its challenges with the next CSeq and an Authorization.
struct AnswerChallenges {
    next: SocketAddr,
}

impl Handler for AnswerChallenges {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        Decision::forward(
            incoming.request,
            Target::next_hop().via(Peer::new(TransportKind::Udp.to_sip(), self.next)),
        )
    }

    async fn on_request_with_fallback(&self, incoming: Incoming, node: NodeHandle) -> Decided {
        Decided::from(self.on_request(incoming, node).await).with_answer_challenges(true)
    }

    fn on_challenge(
        &self,
        _ctx: imslab_sip_node::ContextId,
        mut request: Message,
        challenge: &Message,
    ) -> Option<Message> {
        assert_eq!(challenge.status(), Some(StatusCode::UNAUTHORIZED));
        let cseq = request.cseq().ok()?;
        let next = format!("{} {}", cseq.seq + 1, cseq.method.as_str());
        request.set_header(HeaderName::CSEQ, next).ok()?;
        request
            .push_header(HeaderName::AUTHORIZATION, "Digest username=\"lab\"")
            .ok()?;
        Some(request)
    }

    fn wants_responses(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn the_handler_answers_a_challenge_and_the_answer_goes_upstream_with_the_callers_cseq() {
    let uas = start(ChallengeOnce).await;
    let proxy = start(AnswerChallenges { next: uas.addr }).await;
    let resp = udp_exchange(proxy.addr, &options(uas.addr, "ch1")).await;
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(header(&resp, "X-Seen-CSeq").as_deref(), Some("2"));
    assert_eq!(resp.cseq().expect("CSeq").seq, 1, "the caller's CSeq");
    for n in [uas, proxy] {
        n.stop.cancel();
    }
}

#[tokio::test]
async fn a_udp_peer_whose_port_is_closed_fails_on_the_icmp_error_and_the_fallback_answers() {
    let closed = {
        let s = std::net::UdpSocket::bind(loopback()).expect("bind");
        s.local_addr().expect("addr")
    };
    let uas = start(Answer("fallback")).await;
    let applied = std::sync::Arc::default();
    let proxy = start(ForwardOrContinue {
        primary: closed,
        fallback: uas.addr,
        applied: std::sync::Arc::clone(&applied),
    })
    .await;
    let resp = udp_exchange(proxy.addr, &options(uas.addr, "icmp1")).await;
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(
        *applied.lock().expect("lock"),
        [StatusCode::SERVICE_UNAVAILABLE],
        "a transport failure (ICMP), not a timeout (408)"
    );
    for n in [uas, proxy] {
        n.stop.cancel();
    }
}
