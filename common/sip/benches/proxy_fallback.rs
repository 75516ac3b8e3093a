//! Proxy core cost of one MESSAGE transaction whose only branch fails with 503: answered
//! upstream as 500 (`decide`), or continued by a fallback decision to a second server
//! (`decide_with_fallback`, the S-CSCF's SESSION_CONTINUED toward an AS). Own Route values
//! are consumed on the way in (`consumed_routes`).
//!
//! `cargo bench -p imslab-sip --bench proxy_fallback`

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imslab_sip::header::Transport;
use imslab_sip::proxy::{Decision, Interface, InterfaceId, Proxy, ProxyConfig, ProxyEvent, Target};
use imslab_sip::transaction::{Peer, TimerConfig};
use imslab_sip::{Message, StatusCode};

fn peer(addr: &str) -> Peer {
    Peer::new(Transport::Udp, addr.parse().expect("address"))
}

fn proxy() -> Proxy {
    let cfg = ProxyConfig::new(Interface {
        transport: Transport::Udp,
        addr: "10.0.0.1:5060".parse().expect("address"),
        advertise: None,
    });
    Proxy::new(cfg, TimerConfig::default(), 1)
}

fn message(n: u64) -> Message {
    let text = format!(
        "MESSAGE sip:bob@ims.example SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{n}\r\n\
         Route: <sip:orig@10.0.0.1:5060;lr>\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@ims.example>;tag=a{n}\r\n\
         To: <sip:bob@ims.example>\r\n\
         Call-ID: {n}@bench\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Message::parse(text.into_bytes()).expect("parses")
}

fn sent_to(ev: &[ProxyEvent], to: &Peer) -> Option<Message> {
    ev.iter().find_map(|e| match e {
        ProxyEvent::Transmit { to: t, bytes, .. } if t.addr == to.addr => {
            Message::parse(bytes.clone()).ok()
        }
        _ => None,
    })
}

/// One transaction; returns the status answered upstream.
fn run(p: &mut Proxy, now: Instant, n: u64, with_fallback: bool) -> Option<StatusCode> {
    let (uac, a, b) = (
        peer("192.0.2.1:5060"),
        peer("192.0.2.20:5060"),
        peer("192.0.2.21:5060"),
    );
    let ev = p.handle_message(now, message(n), uac, InterfaceId(0));
    let (ctx, req) = ev.iter().find_map(|e| match e {
        ProxyEvent::Request { ctx, request, .. } => Some((*ctx, request.clone())),
        _ => None,
    })?;
    let consumed = p.consumed_routes(ctx).len();
    let first = Decision::forward(req.clone(), Target::next_hop().via(a.clone()));
    let ev = if with_fallback {
        let other = Decision::forward(req, Target::next_hop().via(b.clone()));
        p.decide_with_fallback(now, ctx, first, other).ok()?
    } else {
        p.decide(now, ctx, first).ok()?
    };
    let to_a = sent_to(&ev, &a)?;
    let refused = to_a
        .response(StatusCode::SERVICE_UNAVAILABLE, Some("a"))
        .ok()?;
    let mut ev = p.handle_message(
        now,
        Message::parse(refused.to_bytes()).ok()?,
        a,
        InterfaceId(0),
    );
    if with_fallback {
        let to_b = sent_to(&ev, &b)?;
        let ok = to_b.response(StatusCode::OK, Some("b")).ok()?;
        ev = p.handle_message(now, Message::parse(ok.to_bytes()).ok()?, b, InterfaceId(0));
    }
    let resp = ev.into_iter().find_map(|e| match e {
        ProxyEvent::Response { response, .. } => Some(response),
        _ => None,
    })?;
    let status = resp.status();
    p.forward_response(now, ctx, resp).ok()?;
    black_box(consumed);
    status
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("proxy");
    g.throughput(Throughput::Elements(1));
    let now = Instant::now();
    assert_eq!(
        run(&mut proxy(), now, 0, false),
        Some(StatusCode::SERVER_INTERNAL_ERROR),
        "§16.7 step 6: a 503 goes upstream as 500"
    );
    assert_eq!(run(&mut proxy(), now, 0, true), Some(StatusCode::OK));
    for (name, fallback) in [
        ("branch_503_upstream_500", false),
        ("branch_503_fallback_200", true),
    ] {
        let mut p = proxy();
        let mut n = 0u64;
        g.bench_function(name, |bch| {
            bch.iter(|| {
                n += 1;
                run(&mut p, now, n, fallback)
            })
        });
        let _ = p.handle_timeout(now + std::time::Duration::from_secs(64));
        assert!(
            p.context_count() < 16,
            "contexts finish: {}",
            p.context_count()
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
