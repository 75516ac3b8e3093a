//! Helpers shared by the transport tests.

use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use imslab_sip::{Frame, Message, StreamFramer};
use imslab_sip_io::{Config, Event, Payload, PcapTap, Received, SipTransport, pcap_tap};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc::Receiver;

/// How long a test waits for something that should happen at once.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

static NEXT: AtomicU32 = AtomicU32::new(1);

/// A request with a fresh branch and Call-ID.
pub(crate) fn request(
    method: &str,
    via_transport: &str,
    sent_by: SocketAddr,
    body: &str,
) -> Message {
    Message::parse(Bytes::from(request_text(
        method,
        via_transport,
        sent_by,
        body,
    )))
    .unwrap()
}

/// The text of [`request`].
pub(crate) fn request_text(
    method: &str,
    via_transport: &str,
    sent_by: SocketAddr,
    body: &str,
) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/{via_transport} {sent_by};branch=z9hG4bK-t{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a{n}\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: c{n}@imslab.test\r\n\
         CSeq: {n} {method}\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The next event, or a failure after [`WAIT`].
pub(crate) async fn next_event(rx: &mut Receiver<Event>) -> Event {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("the transport is running")
}

/// The next received message, skipping pongs and closed flows.
pub(crate) async fn next_received(rx: &mut Receiver<Event>) -> Box<Received> {
    loop {
        if let Event::Received(r) = next_event(rx).await {
            return r;
        }
    }
}

/// The parsed message of a [`Received`].
pub(crate) fn parsed(r: &Received) -> &Message {
    match &r.payload {
        Payload::Message(m) => m,
        Payload::Invalid { error, .. } => panic!("expected a valid message, got {error}"),
    }
}

/// A transport with a UDP socket on loopback.
pub(crate) async fn udp_transport(config: Config) -> (SipTransport, Receiver<Event>, SocketAddr) {
    let (t, rx) = SipTransport::new(config);
    let addr = t
        .add_udp(UdpSocket::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    (t, rx, addr)
}

/// A transport with a TCP listener on loopback.
pub(crate) async fn tcp_transport(config: Config) -> (SipTransport, Receiver<Event>, SocketAddr) {
    let (t, rx) = SipTransport::new(config);
    let addr = t
        .add_tcp(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    (t, rx, addr)
}

/// A UDP socket and a TCP listener on the same loopback port, as a CSCF binds them.
pub(crate) async fn udp_and_tcp() -> (UdpSocket, TcpListener) {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
}

/// A loopback port that is free right now (for peers that bind it themselves).
pub(crate) fn free_port() -> u16 {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    // The same port must be free for TCP too (SIPp binds both for some modes).
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => port,
        Err(_) => free_port(),
    }
}

/// A pcap tap writing to `path`.
pub(crate) fn tap(path: &Path) -> PcapTap {
    pcap_tap(BufWriter::new(File::create(path).unwrap())).unwrap()
}

/// Flushes a tap so tshark can read the file.
pub(crate) fn flush(tap: &PcapTap) {
    tap.lock().unwrap().flush().unwrap();
}

/// Reads one SIP message from a raw stream.
pub(crate) async fn read_message(
    stream: &mut TcpStream,
    framer: &mut StreamFramer,
    buf: &mut BytesMut,
) -> Message {
    tokio::time::timeout(WAIT, async {
        loop {
            match framer.decode(buf).unwrap() {
                Some(Frame::Message(m)) => return m,
                Some(other) => panic!("expected a message, got {other:?}"),
                None => {}
            }
            let n = stream.read_buf(buf).await.unwrap();
            assert!(n > 0, "connection closed before a full message arrived");
        }
    })
    .await
    .expect("a message within 5 s")
}

/// Waits until the peer closes the connection; true if it did.
pub(crate) async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 1024];
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// Holds the tap's lock on another thread (as a busy capture would) until the returned
/// sender is dropped or sent to; returns once the lock is held.
pub(crate) fn hold_tap(
    tap: &PcapTap,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let tap = tap.clone();
    let holder = std::thread::spawn(move || {
        let _guard = tap.lock().unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    held_rx.recv().unwrap();
    (release_tx, holder)
}
