//! Proxy core cost of the S-CSCF's breakout INVITE whose trunk challenges it: INVITE in,
//! forwarded with challenge answering, 407 held (ACKed by the client transaction), the
//! INVITE re-sent with CSeq + 1 (`Proxy::retry`), 200 forwarded upstream with the caller's
//! CSeq; and of a terminating INVITE forked to two contacts with a Route set each, one
//! answering 200, the other cancelled and answering 487.
//!
//! `cargo bench -p imslab-sip --bench proxy_challenge`

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imslab_sip::header::Transport;
use imslab_sip::proxy::{
    DecideOptions, Decision, ForkMode, Interface, InterfaceId, Proxy, ProxyConfig, ProxyEvent,
    RecordRoute, Target,
};
use imslab_sip::transaction::{Peer, TimerConfig};
use imslab_sip::{HeaderName, Message, StatusCode};

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

fn invite(n: u64) -> Message {
    let text = format!(
        "INVITE tel:+4930123456 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@ims.example>;tag=a{n}\r\n\
         To: <tel:+4930123456>\r\n\
         Call-ID: {n}@bench\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Message::parse(text.into_bytes()).expect("parses")
}

fn sent_to(ev: &[ProxyEvent], to: &Peer) -> Option<Message> {
    ev.iter().find_map(|e| match e {
        ProxyEvent::Transmit { to: t, bytes, .. }
            if t.addr == to.addr && !bytes.starts_with(b"ACK") =>
        {
            Message::parse(bytes.clone()).ok()
        }
        _ => None,
    })
}

fn answer(to: &Message, code: StatusCode) -> Option<Message> {
    Message::parse(to.response(code, Some("t")).ok()?.to_bytes()).ok()
}

fn new_request(ev: &[ProxyEvent]) -> Option<(imslab_sip::proxy::ContextId, Message)> {
    ev.iter().find_map(|e| match e {
        ProxyEvent::Request { ctx, request, .. } => Some((*ctx, request.clone())),
        _ => None,
    })
}

/// One challenged call set-up; returns the CSeq number of the 200 sent upstream.
fn challenged(p: &mut Proxy, now: Instant, n: u64) -> Option<u32> {
    let (uac, trunk) = (peer("192.0.2.1:5060"), peer("192.0.2.30:5060"));
    let ev = p.handle_message(now, invite(n), uac.clone(), InterfaceId(0));
    let (ctx, req) = new_request(&ev)?;
    let ev = p
        .decide_with(
            now,
            ctx,
            Decision::forward(req, Target::next_hop().via(trunk.clone())),
            DecideOptions::default().answer_challenges(true),
        )
        .ok()?;
    let first = sent_to(&ev, &trunk)?;
    let ev = p.handle_message(
        now,
        answer(&first, StatusCode::PROXY_AUTHENTICATION_REQUIRED)?,
        trunk.clone(),
        InterfaceId(0),
    );
    black_box(&ev);
    let mut again = p.challenge_pending(ctx)?;
    again.set_header(HeaderName::CSEQ, "2 INVITE").ok()?;
    again
        .push_header(HeaderName::PROXY_AUTHORIZATION, "Digest username=\"lab\"")
        .ok()?;
    let ev = p.retry(now, ctx, again).ok()?;
    let second = sent_to(&ev, &trunk)?;
    let ev = p.handle_message(now, answer(&second, StatusCode::OK)?, trunk, InterfaceId(0));
    let ok = ev.into_iter().find_map(|e| match e {
        ProxyEvent::Response { response, .. } => Some(response),
        _ => None,
    })?;
    let ev = p.forward_response(now, ctx, ok).ok()?;
    sent_to(&ev, &uac)?.cseq().ok().map(|c| c.seq)
}

/// One terminating fork to two contacts with their own Route set; returns the status sent
/// upstream.
fn forked(p: &mut Proxy, now: Instant, n: u64) -> Option<StatusCode> {
    let (uac, p1, p2) = (
        peer("192.0.2.1:5060"),
        peer("192.0.2.41:5060"),
        peer("192.0.2.42:5060"),
    );
    let ev = p.handle_message(now, invite(n), uac.clone(), InterfaceId(0));
    let (ctx, req) = new_request(&ev)?;
    let decision = Decision::Forward {
        request: req,
        targets: vec![
            Target::uri("sip:ue@10.45.0.2:5060"),
            Target::uri("sip:ue@10.45.0.3:5060"),
        ],
        mode: ForkMode::Parallel,
        record_route: Some(RecordRoute::default()),
    };
    let routes = vec![
        Some(vec![Bytes::from_static(b"<sip:tokA@192.0.2.41:5060;lr>")]),
        Some(vec![Bytes::from_static(b"<sip:tokB@192.0.2.42:5060;lr>")]),
    ];
    let ev = p
        .decide_with(now, ctx, decision, DecideOptions::default().routes(routes))
        .ok()?;
    let (a, b) = (sent_to(&ev, &p1)?, sent_to(&ev, &p2)?);
    p.handle_message(
        now,
        answer(&a, StatusCode::RINGING)?,
        p1.clone(),
        InterfaceId(0),
    );
    p.handle_message(
        now,
        answer(&b, StatusCode::RINGING)?,
        p2.clone(),
        InterfaceId(0),
    );
    let ev = p.handle_message(now, answer(&b, StatusCode::OK)?, p2, InterfaceId(0));
    let ok = ev.into_iter().find_map(|e| match e {
        ProxyEvent::Response { response, .. } => Some(response),
        _ => None,
    })?;
    let ev = p.forward_response(now, ctx, ok).ok()?;
    let status = sent_to(&ev, &uac)?.status();
    black_box(p.handle_message(
        now,
        answer(&a, StatusCode::REQUEST_TERMINATED)?,
        p1,
        InterfaceId(0),
    ));
    status
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("proxy_challenge");
    g.throughput(Throughput::Elements(1));
    let now = Instant::now();
    let mut p = proxy();
    let mut n = 0u64;
    assert_eq!(
        challenged(&mut p, now, 0),
        Some(1),
        "the caller's CSeq upstream"
    );
    assert_eq!(forked(&mut p, now, 1), Some(StatusCode::OK));
    g.bench_function("invite_407_retry_200", |b| {
        b.iter(|| {
            n += 2;
            black_box(challenged(&mut p, now, n))
        });
    });
    let mut p = proxy();
    g.bench_function("invite_fork_two_routes_200_cancel", |b| {
        b.iter(|| {
            n += 2;
            black_box(forked(&mut p, now, n))
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
