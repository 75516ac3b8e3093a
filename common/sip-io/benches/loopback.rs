//! Message throughput through two transports on loopback: batches of OPTIONS sent by one
//! transport and received, parsed, as events by the other.

use std::net::SocketAddr;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imslab_sip::Message;
use imslab_sip_io::{Config, Event, SipTransport, Target, TransportKind};
use tokio::net::{TcpListener, UdpSocket};
use tokio::runtime::Runtime;
use tokio::sync::mpsc::Receiver;

const BATCH: usize = 256;
const WINDOW: usize = 32;

fn options(sent_by: SocketAddr, transport: &str) -> Message {
    let text = format!(
        "OPTIONS sip:pcscf.ims.example.com SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {sent_by};branch=z9hG4bK-bench;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org>;tag=b1\r\n\
         To: <sip:pcscf.ims.example.com>\r\n\
         Call-ID: bench@imslab\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Message::parse(Bytes::from(text)).expect("valid OPTIONS")
}

async fn pair(kind: TransportKind) -> (SipTransport, Receiver<Event>, SipTransport, Target) {
    let (server, rx) = SipTransport::new(Config::default());
    let (client, _client_rx) = SipTransport::new(Config::default());
    let addr = match kind {
        TransportKind::Udp => {
            client
                .add_udp(UdpSocket::bind("127.0.0.1:0").await.expect("bind"))
                .expect("udp");
            server.add_udp(UdpSocket::bind("127.0.0.1:0").await.expect("bind"))
        }
        _ => server.add_tcp(TcpListener::bind("127.0.0.1:0").await.expect("bind")),
    }
    .expect("listen");
    (server, rx, client, Target::address(kind, addr))
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("loopback");
    group.throughput(Throughput::Elements(BATCH as u64));
    for kind in [TransportKind::Udp, TransportKind::Tcp] {
        let (_server, mut rx, client, target) = rt.block_on(pair(kind));
        let msg = options("127.0.0.1:5060".parse().expect("addr"), kind.via_token());
        group.bench_function(format!("{kind}_options_batch_{BATCH}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    // Windows of 32 in flight, so UDP never overruns the socket buffer.
                    for _ in 0..BATCH / WINDOW {
                        for _ in 0..WINDOW {
                            client.send(&target, msg.clone()).await.expect("send");
                        }
                        let mut received = 0;
                        while received < WINDOW {
                            match rx.recv().await {
                                Some(Event::Received(_)) => received += 1,
                                Some(_) => {}
                                None => panic!("transport stopped"),
                            }
                        }
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
