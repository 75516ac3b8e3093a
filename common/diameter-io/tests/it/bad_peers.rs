//! Misbehaving peers cost one connection, closed with a log line saying why, and never block
//! other peers.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use imslab_diameter::base::Cer;
use imslab_diameter::{Framer, Message};
use imslab_diameter_io::{DiameterNode, NodeOptions, PeerInfo, PeerOptions, RefuseRequests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{LogCapture, REALM, caps, id, origin, outcome, realm, start_hss, uar};

async fn server() -> (DiameterNode, SocketAddr) {
    let mut opts = NodeOptions::new(caps("hss.ims.example", REALM));
    opts.accept_unknown_peers = true;
    opts.timers.cea_timeout = Duration::from_secs(1);
    let hss = start_hss(opts).await;
    let addr = hss.local_addr().expect("listening");
    (hss, addr)
}

/// Reads until the server closes the connection; fails if it stays open for 5 s.
async fn closed_by_server(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server kept the connection open");
}

async fn wait_log(log: &LogCapture, needle: &str) {
    for _ in 0..50 {
        if log.text().contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "no log line containing {needle:?}; log was:\n{}",
        log.text()
    );
}

fn cer_bytes() -> Vec<u8> {
    Cer {
        capabilities: caps("bad.ims.example", REALM),
        extra: vec![],
    }
    .to_message()
    .encode()
    .expect("encodes")
    .to_vec()
}

#[tokio::test]
async fn garbage_closes_the_connection_with_framing_lost() {
    let log = LogCapture::default();
    let _g = log.install();
    let (hss, addr) = server().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: hss\r\n\r\n")
        .await
        .expect("write");
    closed_by_server(&mut s).await;
    wait_log(&log, "closing Diameter connection: framing lost").await;
    hss.shutdown().await;
}

#[tokio::test]
async fn sixteen_mebibyte_length_is_refused_without_waiting_for_the_body() {
    let log = LogCapture::default();
    let _g = log.install();
    let (hss, addr) = server().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut head = vec![1u8, 0xff, 0xff, 0xfc];
    head.extend_from_slice(&[0x80, 0, 1, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    s.write_all(&head).await.expect("write");
    closed_by_server(&mut s).await;
    wait_log(&log, "exceeds the limit of 1048576 bytes").await;
    hss.shutdown().await;
}

#[tokio::test]
async fn truncated_message_then_close_is_logged() {
    let log = LogCapture::default();
    let _g = log.install();
    let (hss, addr) = server().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let cer = cer_bytes();
    s.write_all(&cer[..cer.len() / 2]).await.expect("write");
    s.shutdown().await.expect("half-close");
    closed_by_server(&mut s).await;
    wait_log(&log, "in the middle of a message").await;
    hss.shutdown().await;
}

#[tokio::test]
async fn truncated_message_then_silence_hits_the_cer_timeout() {
    let log = LogCapture::default();
    let _g = log.install();
    let (hss, addr) = server().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let cer = cer_bytes();
    s.write_all(&cer[..cer.len() - 8]).await.expect("write");
    closed_by_server(&mut s).await;
    wait_log(&log, "no CER before the timeout").await;
    hss.shutdown().await;
}

#[tokio::test]
async fn silent_connection_is_closed_after_the_cer_timeout() {
    let log = LogCapture::default();
    let _g = log.install();
    let (hss, addr) = server().await;
    let started = tokio::time::Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    closed_by_server(&mut s).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    wait_log(
        &log,
        "closing Diameter connection: no CER before the timeout",
    )
    .await;
    hss.shutdown().await;
}

#[tokio::test]
async fn first_message_other_than_cer_is_refused() {
    let log = LogCapture::default();
    let _g = log.install();
    let (hss, addr) = server().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let msg = uar("bad.ims.example", REALM, REALM, "alice")
        .to_message()
        .encode()
        .expect("encodes");
    s.write_all(&msg).await.expect("write");
    closed_by_server(&mut s).await;
    wait_log(
        &log,
        "first message on an accepted connection was not a CER",
    )
    .await;
    hss.shutdown().await;
}

#[tokio::test]
async fn bad_peers_do_not_block_a_good_one() {
    let log = LogCapture::default();
    let _g = log.install();
    let (hss, addr) = server().await;
    // Three bad peers: one silent, one sending garbage, one stuck in the middle of a message.
    let silent = TcpStream::connect(addr).await.expect("connect");
    let mut garbage = TcpStream::connect(addr).await.expect("connect");
    garbage.write_all(&[0xde; 64]).await.expect("write");
    let mut stuck = TcpStream::connect(addr).await.expect("connect");
    stuck.write_all(&cer_bytes()[..30]).await.expect("write");

    let mut copts = NodeOptions::new(caps("icscf.ims.example", REALM));
    copts.peers.push(PeerOptions::connect_tcp(
        id("hss.ims.example"),
        realm(REALM),
        addr,
    ));
    let good = DiameterNode::start(
        copts,
        RefuseRequests(origin("icscf.ims.example", REALM)),
        None,
    )
    .expect("client");
    good.wait_peer_up("hss.ims.example", Duration::from_secs(2))
        .await
        .expect("good peer served while bad ones hang");
    let ans = tokio::time::timeout(
        Duration::from_secs(1),
        good.request(uar("icscf.ims.example", REALM, REALM, "alice").to_message()),
    )
    .await
    .expect("answered promptly")
    .expect("answered");
    assert_eq!(outcome(&ans), Some(2001));
    drop(silent);
    good.shutdown().await;
    hss.shutdown().await;
}

/// Reads one whole message; fails after 5 s.
async fn read_message(s: &mut TcpStream, buf: &mut BytesMut) -> Message {
    let framer = Framer::default();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(frame) = framer.next_frame(buf).expect("framed") {
                return Message::decode(frame).expect("decodes");
            }
            assert_ne!(s.read_buf(buf).await.expect("read"), 0, "server closed");
        }
    })
    .await
    .expect("a message within 5 s")
}

#[tokio::test]
async fn requests_beyond_the_handler_limit_are_answered_too_busy() {
    let mut opts = NodeOptions::new(caps("hss.ims.example", REALM));
    opts.accept_unknown_peers = true;
    opts.max_handler_requests = 2;
    // A handler that never answers: every request stays in it.
    let stuck = |_req: Message, _peer: PeerInfo| std::future::pending::<Message>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hss = DiameterNode::start(opts, stuck, Some(listener)).expect("start");
    let addr = hss.local_addr().expect("listening");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut buf = BytesMut::new();
    s.write_all(&cer_bytes()).await.expect("write CER");
    let cea = read_message(&mut s, &mut buf).await;
    assert_eq!(outcome(&cea), Some(2001));
    for n in 1..=5u32 {
        let mut m = uar("bad.ims.example", REALM, REALM, "alice").to_message();
        m.header.hop_by_hop = n;
        m.header.end_to_end = 100 + n;
        s.write_all(&m.encode().expect("encodes"))
            .await
            .expect("write UAR");
    }
    let mut busy = Vec::new();
    for _ in 0..3 {
        let a = read_message(&mut s, &mut buf).await;
        assert_eq!(outcome(&a), Some(3004), "DIAMETER_TOO_BUSY");
        assert!(a.header.flags.error(), "3xxx answers carry the E bit");
        busy.push(a.header.hop_by_hop);
    }
    busy.sort_unstable();
    assert_eq!(
        busy,
        [3, 4, 5],
        "the two first requests stay with the handler"
    );
    drop(s);
    hss.shutdown().await;
}
