//! The §16 proxy behaviours, driven through whole message exchanges on a virtual clock.

use std::time::{Duration, Instant};

use super::*;
use crate::transaction::FlowId;

const SEC: Duration = Duration::from_secs(1);

fn udp(addr: &str) -> Peer {
    Peer::new(Transport::Udp, addr.parse().unwrap())
}

const UAC: &str = "192.0.2.1:5060";
const UAS_A: &str = "192.0.2.20:5080";
const UAS_B: &str = "192.0.2.21:5080";

fn proxy() -> Proxy {
    let mut cfg = ProxyConfig::new(Interface {
        transport: Transport::Udp,
        addr: "10.0.0.1:5060".parse().unwrap(),
        advertise: None,
    });
    cfg.interfaces.push(Interface {
        transport: Transport::Tcp,
        addr: "10.0.0.1:5060".parse().unwrap(),
        advertise: None,
    });
    cfg.aliases.push("proxy.example.com".into());
    cfg.supported.push("sec-agree".into());
    Proxy::new(cfg, TimerConfig::default(), 42)
}

fn request(method: &str, branch: &str, extra: &str) -> Message {
    let raw = format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: 1 {method}\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    );
    Message::parse(raw.into_bytes()).unwrap()
}

fn sent(ev: &[ProxyEvent]) -> Vec<(Peer, Message)> {
    ev.iter()
        .filter_map(|e| match e {
            ProxyEvent::Transmit { to, bytes, .. } => {
                Some((to.clone(), Message::parse(bytes.clone()).unwrap()))
            }
            _ => None,
        })
        .collect()
}

fn new_request(ev: &[ProxyEvent]) -> (ContextId, Message) {
    ev.iter()
        .find_map(|e| match e {
            ProxyEvent::Request { ctx, request, .. } => Some((*ctx, request.clone())),
            _ => None,
        })
        .unwrap()
}

fn responses(ev: &[ProxyEvent]) -> Vec<(ContextId, Message)> {
    ev.iter()
        .filter_map(|e| match e {
            ProxyEvent::Response { ctx, response } => Some((*ctx, response.clone())),
            _ => None,
        })
        .collect()
}

fn status(m: &Message) -> u16 {
    m.status().map_or(0, StatusCode::as_u16)
}

fn reply(to: &Message, code: u16, tag: &str) -> Message {
    Message::parse(
        to.response(StatusCode::new(code).unwrap(), Some(tag))
            .unwrap()
            .to_bytes(),
    )
    .unwrap()
}

/// Sends `req` from the UAC and forwards it to `targets` (parallel); returns context and the
/// requests as they arrived downstream.
fn forward(
    p: &mut Proxy,
    now: Instant,
    req: Message,
    targets: Vec<Target>,
    rr: bool,
) -> (ContextId, Vec<(Peer, Message)>) {
    let ev = p.handle_message(now, req, udp(UAC), InterfaceId(0));
    let (ctx, req) = new_request(&ev);
    let rr = rr.then(RecordRoute::default);
    let ev = p
        .decide(
            now,
            ctx,
            Decision::Forward {
                request: req,
                targets,
                mode: ForkMode::Parallel,
                record_route: rr,
            },
        )
        .unwrap();
    (ctx, sent(&ev))
}

fn to(uri: &str, addr: &str) -> Target {
    Target::uri(uri.to_owned()).via(udp(addr))
}

#[test]
fn invite_is_forwarded_with_fresh_branch_max_forwards_and_record_route_and_answered_100() {
    let t0 = Instant::now();
    let mut p = proxy();
    let ev = p.handle_message(
        t0,
        request("INVITE", "z9hG4bKu1", ""),
        udp(UAC),
        InterfaceId(0),
    );
    let trying = sent(&ev);
    assert_eq!(trying.len(), 1);
    assert_eq!(
        (trying[0].0.addr, status(&trying[0].1)),
        (UAC.parse().unwrap(), 100)
    );
    let (ctx, req) = new_request(&ev);
    let ev = p
        .decide(
            t0,
            ctx,
            Decision::Forward {
                request: req,
                targets: vec![to("sip:bob@192.0.2.20:5080", UAS_A)],
                mode: ForkMode::Parallel,
                record_route: Some(RecordRoute::default()),
            },
        )
        .unwrap();
    let out = sent(&ev);
    let (peer, fwd) = &out[0];
    assert_eq!(peer.addr, UAS_A.parse().unwrap());
    assert_eq!(fwd.request_uri_str(), Some("sip:bob@192.0.2.20:5080"));
    let vias: Vec<Via<'_>> = fwd.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 2);
    assert!(vias[0].has_rfc3261_branch() && vias[0].branch() != Some("z9hG4bKu1"));
    assert_eq!(
        vias[0].to_string().split(';').next(),
        Some("SIP/2.0/UDP 10.0.0.1:5060")
    );
    assert_eq!(fwd.max_forwards(), Ok(Some(69)));
    assert_eq!(
        fwd.header_str(&HeaderName::RECORD_ROUTE)
            .and_then(Result::ok),
        Some("<sip:10.0.0.1:5060;lr>")
    );
}

#[test]
fn responses_lose_our_via_and_go_upstream_and_the_context_finishes() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, out) = forward(
        &mut p,
        t0,
        request("INVITE", "z9hG4bKu2", ""),
        vec![to("sip:bob@192.0.2.20:5080", UAS_A)],
        false,
    );
    let down = &out[0].1;
    let ev = p.handle_message(t0, reply(down, 180, "b"), udp(UAS_A), InterfaceId(0));
    let (c, ringing) = &responses(&ev)[0];
    assert_eq!(*c, ctx);
    assert_eq!(ringing.values(&HeaderName::VIA).count(), 1);
    assert_eq!(ringing.top_via().unwrap().branch(), Some("z9hG4bKu2"));
    let ev = p.forward_response(t0, ctx, ringing.clone()).unwrap();
    assert_eq!(sent(&ev)[0].0.addr, UAC.parse().unwrap());
    let ev = p.handle_message(t0 + SEC, reply(down, 200, "b"), udp(UAS_A), InterfaceId(0));
    let (_, ok) = &responses(&ev)[0];
    let ev = p.forward_response(t0 + SEC, ctx, ok.clone()).unwrap();
    assert_eq!(status(&sent(&ev)[0].1), 200);
    assert!(
        ev.iter()
            .any(|e| matches!(e, ProxyEvent::Finished { ctx: c } if *c == ctx))
    );
    assert_eq!(p.context_count(), 0);
}

#[test]
fn max_forwards_zero_gets_483_and_unknown_proxy_require_gets_420() {
    let t0 = Instant::now();
    let mut p = proxy();
    let zero = Message::parse(
        String::from_utf8_lossy(&request("OPTIONS", "z9hG4bKm0", "").to_bytes())
            .replace("Max-Forwards: 70", "Max-Forwards: 0")
            .into_bytes(),
    )
    .unwrap();
    let ev = p.handle_message(t0, zero, udp(UAC), InterfaceId(0));
    assert_eq!(status(&sent(&ev)[0].1), 483);
    assert!(
        ev.iter()
            .any(|e| matches!(e, ProxyEvent::Rejected { status, .. } if status.as_u16() == 483))
    );
    let ev = p.handle_message(
        t0,
        request(
            "OPTIONS",
            "z9hG4bKm1",
            "Proxy-Require: sec-agree, foo, bar\r\n",
        ),
        udp(UAC),
        InterfaceId(0),
    );
    let (_, resp) = &sent(&ev)[0];
    assert_eq!(status(resp), 420);
    assert_eq!(
        resp.header_str(&HeaderName::UNSUPPORTED)
            .and_then(Result::ok),
        Some("foo, bar")
    );
    let ev = p.handle_message(
        t0,
        request("OPTIONS", "z9hG4bKm2", "Proxy-Require: sec-agree\r\n"),
        udp(UAC),
        InterfaceId(0),
    );
    assert!(
        ev.iter().any(|e| matches!(e, ProxyEvent::Request { .. })),
        "sec-agree is supported"
    );
}

#[test]
fn malformed_requests_and_unknown_schemes_are_refused() {
    let t0 = Instant::now();
    let mut p = proxy();
    let bad = Message::parse(
        String::from_utf8_lossy(&request("OPTIONS", "z9hG4bKx1", "").to_bytes())
            .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
            .into_bytes(),
    )
    .unwrap();
    assert_eq!(
        status(&sent(&p.handle_message(t0, bad, udp(UAC), InterfaceId(0)))[0].1),
        400
    );
    let scheme = Message::parse(
        String::from_utf8_lossy(&request("OPTIONS", "z9hG4bKx2", "").to_bytes())
            .replace(
                "OPTIONS sip:bob@example.com",
                "OPTIONS mailto:bob@example.com",
            )
            .into_bytes(),
    )
    .unwrap();
    assert_eq!(
        status(&sent(&p.handle_message(t0, scheme, udp(UAC), InterfaceId(0)))[0].1),
        416
    );
}

#[test]
fn a_loop_is_found_when_a_hop_rewrote_the_request_uri_into_an_equivalent_form() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (_, out) = forward(
        &mut p,
        t0,
        request("MESSAGE", "z9hG4bKl2", ""),
        vec![Target::next_hop().via(udp(UAS_A))],
        false,
    );
    let mut looped = out[0].1.clone();
    looped
        .prepend_header(
            HeaderName::VIA,
            "SIP/2.0/UDP 192.0.2.20:5080;branch=z9hG4bKhop3",
        )
        .unwrap();
    // §19.1.4: escaping in the user part and case in the host do not make another URI.
    looped.set_request_uri("sip:%62ob@EXAMPLE.com").unwrap();
    let ev = p.handle_message(
        t0,
        Message::parse(looped.to_bytes()).unwrap(),
        udp(UAS_A),
        InterfaceId(0),
    );
    assert_eq!(status(&sent(&ev)[0].1), 482);
}

#[test]
fn a_route_equivalent_to_our_record_route_is_recognised_as_ours() {
    let p = proxy();
    let own = Uri::parse("sip:orig@10.0.0.1:5060;TRANSPORT=TCP;lr;foo=1").unwrap();
    assert!(p.is_me(&own));
    let other_port = Uri::parse("sip:10.0.0.1:5070;lr").unwrap();
    assert!(!p.is_me(&other_port));
}

#[test]
fn loops_get_482_but_spirals_are_forwarded() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (_, out) = forward(
        &mut p,
        t0,
        request("MESSAGE", "z9hG4bKl1", ""),
        vec![Target::next_hop().via(udp(UAS_A))],
        false,
    );
    // The request comes back through another element, which adds its own Via.
    let mut looped = out[0].1.clone();
    looped
        .prepend_header(
            HeaderName::VIA,
            "SIP/2.0/UDP 192.0.2.20:5080;branch=z9hG4bKhop1",
        )
        .unwrap();
    let ev = p.handle_message(
        t0,
        Message::parse(looped.to_bytes()).unwrap(),
        udp(UAS_A),
        InterfaceId(0),
    );
    assert_eq!(status(&sent(&ev)[0].1), 482, "same request back through us");
    let mut spiral = out[0].1.clone();
    spiral
        .prepend_header(
            HeaderName::VIA,
            "SIP/2.0/UDP 192.0.2.20:5080;branch=z9hG4bKhop2",
        )
        .unwrap();
    spiral.set_request_uri("sip:bob@other.example.com").unwrap();
    let spiral = Message::parse(spiral.to_bytes()).unwrap();
    let ev = p.handle_message(t0, spiral, udp(UAS_A), InterfaceId(0));
    assert!(
        ev.iter().any(|e| matches!(e, ProxyEvent::Request { .. })),
        "changed Request-URI: a spiral"
    );
}

#[test]
fn received_and_rport_are_stamped_on_the_top_via() {
    let t0 = Instant::now();
    let mut p = proxy();
    let req = Message::parse(
        String::from_utf8_lossy(&request("OPTIONS", "z9hG4bKr1", "").to_bytes())
            .replace("branch=z9hG4bKr1", "branch=z9hG4bKr1;rport")
            .into_bytes(),
    )
    .unwrap();
    let ev = p.handle_message(t0, req, udp("198.51.100.9:40000"), InterfaceId(0));
    let (_, req) = new_request(&ev);
    let v = req.top_via().unwrap();
    assert_eq!(v.received(), Some("198.51.100.9".parse().unwrap()));
    assert_eq!(v.rport(), Some(Some(40000)));
}

#[test]
fn route_naming_this_proxy_is_removed_and_the_next_loose_route_followed() {
    let t0 = Instant::now();
    let mut p = proxy();
    let req = request(
        "OPTIONS",
        "z9hG4bKt1",
        "Route: <sip:proxy.example.com;lr>, <sip:192.0.2.30:5070;lr>\r\n",
    );
    let ev = p.handle_message(t0, req, udp(UAC), InterfaceId(0));
    let (ctx, req) = new_request(&ev);
    assert_eq!(req.values(&HeaderName::ROUTE).count(), 1);
    let ev = p
        .decide(t0, ctx, Decision::forward(req, Target::next_hop()))
        .unwrap();
    let (peer, fwd) = &sent(&ev)[0];
    assert_eq!(peer.addr, "192.0.2.30:5070".parse().unwrap());
    assert_eq!(fwd.request_uri_str(), Some("sip:bob@example.com"));
}

#[test]
fn strict_router_rewrite_is_undone_from_the_last_route() {
    let t0 = Instant::now();
    let mut p = proxy();
    let req = Message::parse(
        String::from_utf8_lossy(
            &request(
                "BYE",
                "z9hG4bKt2",
                "Route: <sip:192.0.2.40>, <sip:bob@192.0.2.20:5080>\r\n",
            )
            .to_bytes(),
        )
        .replace("BYE sip:bob@example.com", "BYE sip:10.0.0.1:5060;lr")
        .into_bytes(),
    )
    .unwrap();
    let ev = p.handle_message(t0, req, udp(UAC), InterfaceId(0));
    let (_, req) = new_request(&ev);
    assert_eq!(req.request_uri_str(), Some("sip:bob@192.0.2.20:5080"));
    let routes: Vec<&[u8]> = req.values(&HeaderName::ROUTE).collect();
    assert_eq!(routes, [&b"<sip:192.0.2.40>"[..]]);
}

#[test]
fn strict_next_hop_gets_the_request_uri_and_the_old_one_goes_last() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (_, out) = forward(
        &mut p,
        t0,
        request("OPTIONS", "z9hG4bKt3", "Route: <sip:192.0.2.40>\r\n"),
        vec![Target::next_hop()],
        false,
    );
    let (peer, fwd) = &out[0];
    assert_eq!(peer.addr, "192.0.2.40:5060".parse().unwrap());
    assert_eq!(fwd.request_uri_str(), Some("sip:192.0.2.40"));
    let routes: Vec<&[u8]> = fwd.values(&HeaderName::ROUTE).collect();
    assert_eq!(routes, [&b"<sip:bob@example.com>"[..]]);
}

#[test]
fn changing_transport_records_the_route_twice() {
    let t0 = Instant::now();
    let mut p = proxy();
    let tcp_peer = Peer {
        transport: Transport::Tcp,
        addr: UAS_A.parse().unwrap(),
        flow: Some(FlowId(3)),
    };
    let (_, out) = forward(
        &mut p,
        t0,
        request("INVITE", "z9hG4bKd1", ""),
        vec![Target::next_hop().via(tcp_peer)],
        true,
    );
    let fwd = &out[0].1;
    let rr: Vec<&[u8]> = fwd.values(&HeaderName::RECORD_ROUTE).collect();
    assert_eq!(
        rr,
        [
            &b"<sip:10.0.0.1:5060;transport=tcp;lr>"[..],
            &b"<sip:10.0.0.1:5060;lr>"[..]
        ]
    );
    assert_eq!(fwd.top_via().unwrap().transport, Transport::Tcp);
}

#[test]
fn request_too_large_for_udp_goes_over_tcp() {
    let t0 = Instant::now();
    let mut p = proxy();
    let big = format!("X-Padding: {}\r\n", "p".repeat(1400));
    let (_, out) = forward(
        &mut p,
        t0,
        request("MESSAGE", "z9hG4bKb1", &big),
        vec![Target::next_hop().via(udp(UAS_A))],
        false,
    );
    let (peer, fwd) = &out[0];
    assert_eq!(peer.transport, Transport::Tcp);
    assert_eq!(fwd.top_via().unwrap().transport, Transport::Tcp);
}

#[test]
fn refused_tcp_for_a_large_request_falls_back_to_udp_and_cancel_follows_the_invite() {
    let t0 = Instant::now();
    let mut p = proxy();
    let big = format!("X-Padding: {}\r\n", "p".repeat(1400));
    let (ctx, out) = forward(
        &mut p,
        t0,
        request("INVITE", "z9hG4bKb2", &big),
        vec![Target::next_hop().via(udp(UAS_A))],
        false,
    );
    assert_eq!(out[0].0.transport, Transport::Tcp);
    let (cid, _) = p.by_client.iter().next().map(|(k, v)| (*k, *v)).unwrap();
    let ev = p.handle_transport_error(t0, TxRef::Client(cid));
    let again = sent(&ev);
    assert_eq!(again.len(), 1, "retried, not failed");
    assert_eq!(again[0].0, udp(UAS_A));
    assert_eq!(again[0].1.top_via().unwrap().transport, Transport::Udp);
    assert!(responses(&ev).is_empty());
    // The UAS rings, the caller cancels: the CANCEL copies the Via the INVITE now carries.
    let ringing = reply(&again[0].1, 180, "b");
    p.handle_message(t0 + SEC, ringing, udp(UAS_A), InterfaceId(0));
    let cancel = build_cancel(&request("INVITE", "z9hG4bKb2", &big)).unwrap();
    let ev = p.handle_message(t0 + 2 * SEC, cancel, udp(UAC), InterfaceId(0));
    let down = sent(&ev)
        .into_iter()
        .find(|(_, m)| {
            m.method() == Some(&Method::Cancel)
                && m.top_via().unwrap().branch() != Some("z9hG4bKb2")
        })
        .expect("CANCEL forwarded downstream");
    assert_eq!(down.0.transport, Transport::Udp);
    assert_eq!(
        down.1.top_via().unwrap().to_string(),
        again[0].1.top_via().unwrap().to_string()
    );
    let _ = ctx;
}

#[test]
fn a_large_request_forwarded_statelessly_also_goes_over_tcp() {
    let t0 = Instant::now();
    let mut p = proxy();
    let big = format!("X-Padding: {}\r\n", "p".repeat(1400));
    let ack = request("ACK", "z9hG4bKsl1", &big);
    let ev = p.handle_message(t0, ack, udp(UAC), InterfaceId(0));
    let (ctx, req) = new_request(&ev);
    let ev = p
        .decide(
            t0,
            ctx,
            Decision::forward(req, Target::next_hop().via(udp(UAS_A))),
        )
        .unwrap();
    let out = sent(&ev);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.transport, Transport::Tcp);
    assert_eq!(out[0].1.top_via().unwrap().transport, Transport::Tcp);
}

/// Forwards `req` to one target with RFC 3263 alternates; returns the context and what was sent.
fn forward_with_failover(
    p: &mut Proxy,
    now: Instant,
    req: Message,
    first: &str,
    alternates: &[&str],
) -> (ContextId, Vec<(Peer, Message)>) {
    let ev = p.handle_message(now, req, udp(UAC), InterfaceId(0));
    let (ctx, req) = new_request(&ev);
    let ev = p
        .decide_with_failover(
            now,
            ctx,
            Decision::forward(req, Target::uri("sip:svc@example.com").via(udp(first))),
            vec![alternates.iter().map(|a| udp(a)).collect()],
        )
        .unwrap();
    (ctx, sent(&ev))
}

#[test]
fn a_503_moves_the_request_to_the_next_server_and_its_answer_goes_upstream() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, out) = forward_with_failover(
        &mut p,
        t0,
        request("MESSAGE", "z9hG4bKfo1", ""),
        UAS_A,
        &[UAS_B],
    );
    assert_eq!(out[0].0, udp(UAS_A));
    let busy = reply(&out[0].1, 503, "a");
    let ev = p.handle_message(t0 + SEC, busy, udp(UAS_A), InterfaceId(0));
    let again = sent(&ev);
    let to_b = again
        .iter()
        .find(|(peer, m)| *peer == udp(UAS_B) && m.is_request())
        .expect("sent to the next server");
    assert_eq!(to_b.1.request_uri_str(), Some("sip:svc@example.com"));
    assert_ne!(
        to_b.1.top_via().unwrap().branch(),
        out[0].1.top_via().unwrap().branch(),
        "a new branch"
    );
    assert!(responses(&ev).is_empty(), "the 503 is not forwarded");
    let ok = reply(&to_b.1, 200, "b");
    let ev = p.handle_message(t0 + 2 * SEC, ok, udp(UAS_B), InterfaceId(0));
    let (c, r) = &responses(&ev)[0];
    assert_eq!((*c, status(r)), (ctx, 200));
}

#[test]
fn a_timeout_fails_over_and_when_every_server_is_gone_the_caller_gets_an_error() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, _) = forward_with_failover(
        &mut p,
        t0,
        request("MESSAGE", "z9hG4bKfo2", ""),
        UAS_A,
        &[UAS_B],
    );
    // Timer F on the first server (64*T1 = 32 s) restarts the request toward the second.
    let mut sent_to_b = false;
    let mut upstream = Vec::new();
    let mut now = t0;
    while now < t0 + 70 * SEC {
        now += SEC / 2;
        let ev = p.handle_timeout(now);
        sent_to_b |= sent(&ev)
            .iter()
            .any(|(peer, m)| *peer == udp(UAS_B) && m.is_request());
        upstream.extend(responses(&ev));
    }
    assert!(sent_to_b);
    assert_eq!(upstream.len(), 1, "one final answer, after both timed out");
    assert_eq!(upstream[0].0, ctx);
    assert_eq!(status(&upstream[0].1), 408);
}

#[test]
fn parallel_fork_prefers_challenges_and_aggregates_them() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, out) = forward(
        &mut p,
        t0,
        request("MESSAGE", "z9hG4bKf1", ""),
        vec![
            to("sip:a@192.0.2.20:5080", UAS_A),
            to("sip:b@192.0.2.21:5080", UAS_B),
        ],
        false,
    );
    let mut r401 = reply(&out[0].1, 401, "x");
    r401.push_header(
        HeaderName::WWW_AUTHENTICATE,
        "Digest realm=\"a\", nonce=\"1\"",
    )
    .unwrap();
    let mut r407 = reply(&out[1].1, 407, "y");
    r407.push_header(
        HeaderName::PROXY_AUTHENTICATE,
        "Digest realm=\"b\", nonce=\"2\"",
    )
    .unwrap();
    assert!(
        responses(&p.handle_message(t0, r401, udp(UAS_A), InterfaceId(0))).is_empty(),
        "waits for all branches"
    );
    let ev = p.handle_message(t0, r407, udp(UAS_B), InterfaceId(0));
    let (c, best) = &responses(&ev)[0];
    assert_eq!(*c, ctx);
    assert_eq!(status(best), 401);
    assert!(
        best.has_header(&HeaderName::WWW_AUTHENTICATE)
            && best.has_header(&HeaderName::PROXY_AUTHENTICATE)
    );
    assert_eq!(best.values(&HeaderName::VIA).count(), 1);
}

#[test]
fn lowest_class_wins_and_a_lone_503_becomes_500() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (_, out) = forward(
        &mut p,
        t0,
        request("MESSAGE", "z9hG4bKf2", ""),
        vec![
            to("sip:a@192.0.2.20:5080", UAS_A),
            to("sip:b@192.0.2.21:5080", UAS_B),
        ],
        false,
    );
    p.handle_message(t0, reply(&out[0].1, 503, "x"), udp(UAS_A), InterfaceId(0));
    let ev = p.handle_message(t0, reply(&out[1].1, 486, "y"), udp(UAS_B), InterfaceId(0));
    assert_eq!(status(&responses(&ev)[0].1), 486);
    let (_, out) = forward(
        &mut p,
        t0,
        request("MESSAGE", "z9hG4bKf3", ""),
        vec![to("sip:a@192.0.2.20:5080", UAS_A)],
        false,
    );
    let ev = p.handle_message(t0, reply(&out[0].1, 503, "x"), udp(UAS_A), InterfaceId(0));
    assert_eq!(status(&responses(&ev)[0].1), 500);
}

#[test]
fn a_6xx_cancels_the_other_branches_and_wins() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, out) = forward(
        &mut p,
        t0,
        request("INVITE", "z9hG4bKf4", ""),
        vec![
            to("sip:a@192.0.2.20:5080", UAS_A),
            to("sip:b@192.0.2.21:5080", UAS_B),
        ],
        false,
    );
    p.handle_message(t0, reply(&out[0].1, 180, "x"), udp(UAS_A), InterfaceId(0));
    let ev = p.handle_message(t0, reply(&out[1].1, 603, "y"), udp(UAS_B), InterfaceId(0));
    let cancels: Vec<_> = sent(&ev)
        .into_iter()
        .filter(|(_, m)| m.method() == Some(&Method::Cancel))
        .collect();
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].0.addr, UAS_A.parse().unwrap());
    assert!(
        responses(&ev).is_empty(),
        "the 6xx waits for the cancelled branch"
    );
    let ev = p.handle_message(t0, reply(&out[0].1, 487, "x"), udp(UAS_A), InterfaceId(0));
    let (c, best) = &responses(&ev)[0];
    assert_eq!((*c, status(best)), (ctx, 603));
}

#[test]
fn sequential_fork_tries_the_next_target_after_a_failure() {
    let t0 = Instant::now();
    let mut p = proxy();
    let ev = p.handle_message(
        t0,
        request("INVITE", "z9hG4bKs1", ""),
        udp(UAC),
        InterfaceId(0),
    );
    let (ctx, req) = new_request(&ev);
    let ev = p
        .decide(
            t0,
            ctx,
            Decision::Forward {
                request: req,
                targets: vec![
                    to("sip:a@192.0.2.20:5080", UAS_A),
                    to("sip:b@192.0.2.21:5080", UAS_B),
                ],
                mode: ForkMode::Sequential,
                record_route: None,
            },
        )
        .unwrap();
    let first = sent(&ev);
    assert_eq!(first.len(), 1);
    let ev = p.handle_message(t0, reply(&first[0].1, 404, "x"), udp(UAS_A), InterfaceId(0));
    assert!(responses(&ev).is_empty());
    let second: Vec<_> = sent(&ev)
        .into_iter()
        .filter(|(_, m)| m.method() == Some(&Method::Invite))
        .collect();
    assert_eq!(second[0].0.addr, UAS_B.parse().unwrap());
    let ev = p.handle_message(
        t0,
        reply(&second[0].1, 200, "y"),
        udp(UAS_B),
        InterfaceId(0),
    );
    assert_eq!(status(&responses(&ev)[0].1), 200);
}

#[test]
fn a_2xx_is_forwarded_at_once_and_ringing_branches_are_cancelled() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (_, out) = forward(
        &mut p,
        t0,
        request("INVITE", "z9hG4bKf5", ""),
        vec![
            to("sip:a@192.0.2.20:5080", UAS_A),
            to("sip:b@192.0.2.21:5080", UAS_B),
        ],
        false,
    );
    p.handle_message(t0, reply(&out[0].1, 180, "x"), udp(UAS_A), InterfaceId(0));
    let ev = p.handle_message(t0, reply(&out[1].1, 200, "y"), udp(UAS_B), InterfaceId(0));
    assert_eq!(status(&responses(&ev)[0].1), 200);
    assert!(sent(&ev).iter().any(|(to, m)| m.method() == Some(&Method::Cancel) && to.addr == UAS_A.parse().unwrap()));
}

#[test]
fn upstream_cancel_is_answered_and_propagated_and_487_comes_back() {
    let t0 = Instant::now();
    let mut p = proxy();
    let inv = request("INVITE", "z9hG4bKc1", "");
    let (ctx, out) = forward(
        &mut p,
        t0,
        inv.clone(),
        vec![to("sip:a@192.0.2.20:5080", UAS_A)],
        false,
    );
    let down = out[0].1.clone();
    p.handle_message(t0, reply(&down, 180, "x"), udp(UAS_A), InterfaceId(0));
    let cancel = Message::parse(build_cancel(&inv).unwrap().to_bytes()).unwrap();
    let ev = p.handle_message(t0 + SEC, cancel, udp(UAC), InterfaceId(0));
    let out = sent(&ev);
    assert!(
        out.iter()
            .any(|(to, m)| status(m) == 200 && to.addr == UAC.parse().unwrap()),
        "200 to the CANCEL"
    );
    let down_cancel = out
        .iter()
        .find(|(_, m)| m.method() == Some(&Method::Cancel))
        .unwrap();
    assert_eq!(
        down_cancel.1.top_via().unwrap().branch(),
        down.top_via().unwrap().branch(),
        "same branch as the INVITE"
    );
    assert!(ev.iter().any(|e| matches!(e, ProxyEvent::Cancelled { .. })));
    let ev = p.handle_message(t0 + SEC, reply(&down, 487, "x"), udp(UAS_A), InterfaceId(0));
    let (c, r) = &responses(&ev)[0];
    assert_eq!((*c, status(r)), (ctx, 487));
}

#[test]
fn cancel_before_the_decision_answers_487_and_the_late_decision_is_harmless() {
    let t0 = Instant::now();
    let mut p = proxy();
    let inv = request("INVITE", "z9hG4bKc2", "");
    let ev = p.handle_message(t0, inv.clone(), udp(UAC), InterfaceId(0));
    let (ctx, req) = new_request(&ev);
    let cancel = Message::parse(build_cancel(&inv).unwrap().to_bytes()).unwrap();
    let ev = p.handle_message(t0, cancel, udp(UAC), InterfaceId(0));
    let codes: Vec<u16> = sent(&ev).iter().map(|(_, m)| status(m)).collect();
    assert_eq!(codes, [200, 487]);
    let terminated = sent(&ev)
        .into_iter()
        .find(|(_, m)| status(m) == 487)
        .unwrap()
        .1;
    assert_eq!(terminated.cseq().unwrap().to_string(), "1 INVITE");
    let ev = p
        .decide(
            t0,
            ctx,
            Decision::forward(req, to("sip:a@192.0.2.20:5080", UAS_A)),
        )
        .unwrap();
    assert!(sent(&ev).is_empty());
    assert!(ev.iter().any(|e| matches!(e, ProxyEvent::Finished { .. })));
}

#[test]
fn an_unanswered_branch_yields_408_after_timer_b() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, _) = forward(
        &mut p,
        t0,
        request("INVITE", "z9hG4bKo1", ""),
        vec![to("sip:a@192.0.2.20:5080", UAS_A)],
        false,
    );
    let mut now = t0;
    let mut got = None;
    while now < t0 + 40 * SEC && got.is_none() {
        now += Duration::from_millis(100);
        if p.poll_timeout().is_some_and(|t| t <= now) {
            got = responses(&p.handle_timeout(now)).into_iter().next();
        }
    }
    let (c, r) = got.unwrap();
    assert_eq!((c, status(&r)), (ctx, 408));
    assert_eq!(
        r.values(&HeaderName::VIA).count(),
        1,
        "our Via is not in what goes upstream"
    );
}

#[test]
fn timer_c_cancels_a_branch_that_only_rings() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (_, out) = forward(
        &mut p,
        t0,
        request("INVITE", "z9hG4bKo2", ""),
        vec![to("sip:a@192.0.2.20:5080", UAS_A)],
        false,
    );
    p.handle_message(
        t0 + SEC,
        reply(&out[0].1, 180, "x"),
        udp(UAS_A),
        InterfaceId(0),
    );
    let ev = p.handle_timeout(t0 + 180 * SEC);
    assert!(
        sent(&ev)
            .iter()
            .all(|(_, m)| m.method() != Some(&Method::Cancel)),
        "Timer C restarted by the 180"
    );
    let ev = p.handle_timeout(t0 + 181 * SEC);
    assert!(
        sent(&ev)
            .iter()
            .any(|(_, m)| m.method() == Some(&Method::Cancel))
    );
}

#[test]
fn ack_for_2xx_is_forwarded_statelessly_along_its_route() {
    let t0 = Instant::now();
    let mut p = proxy();
    let ack = request(
        "ACK",
        "z9hG4bKa1",
        "Route: <sip:10.0.0.1:5060;lr>, <sip:192.0.2.20:5080;lr>\r\n",
    );
    let ev = p.handle_message(t0, ack, udp(UAC), InterfaceId(0));
    let (ctx, req) = ev
        .iter()
        .find_map(|e| match e {
            ProxyEvent::Request {
                ctx,
                request,
                stateless: true,
                ..
            } => Some((*ctx, request.clone())),
            _ => None,
        })
        .unwrap();
    let ev = p
        .decide(t0, ctx, Decision::forward(req, Target::next_hop()))
        .unwrap();
    let (peer, fwd) = &sent(&ev)[0];
    assert_eq!(peer.addr, UAS_A.parse().unwrap());
    assert_eq!(fwd.values(&HeaderName::VIA).count(), 2);
    assert!(ev.iter().any(|e| matches!(e, ProxyEvent::Finished { .. })));
}

#[test]
fn non_2xx_is_acked_downstream_and_the_upstream_ack_absorbed() {
    let t0 = Instant::now();
    let mut p = proxy();
    let inv = request("INVITE", "z9hG4bKa2", "");
    let (ctx, out) = forward(
        &mut p,
        t0,
        inv.clone(),
        vec![to("sip:a@192.0.2.20:5080", UAS_A)],
        false,
    );
    let busy = reply(&out[0].1, 486, "x");
    let ev = p.handle_message(t0, busy, udp(UAS_A), InterfaceId(0));
    assert!(
        sent(&ev)
            .iter()
            .any(|(to, m)| m.method() == Some(&Method::Ack) && to.addr == UAS_A.parse().unwrap())
    );
    let (_, up) = &responses(&ev)[0];
    let ev = p.forward_response(t0, ctx, up.clone()).unwrap();
    let upstream = sent(&ev)[0].1.clone();
    let ack = Message::parse(
        crate::transaction::build_ack(&inv, &upstream)
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    let ev = p.handle_message(t0, ack, udp(UAC), InterfaceId(0));
    assert!(sent(&ev).is_empty() && !ev.iter().any(|e| matches!(e, ProxyEvent::Request { .. })));
}

#[test]
fn stray_responses_follow_the_next_via_but_never_to_broadcast() {
    let t0 = Instant::now();
    let mut p = proxy();
    let stray = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKgone.1\r\nVia: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKup;received=192.0.2.77\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: s1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let ev = p.handle_message(
        t0,
        Message::parse(stray.as_bytes().to_vec()).unwrap(),
        udp(UAS_A),
        InterfaceId(0),
    );
    let (peer, fwd) = &sent(&ev)[0];
    assert_eq!(peer.addr, "192.0.2.77:5062".parse().unwrap());
    assert_eq!(fwd.values(&HeaderName::VIA).count(), 1);
    let bcast = stray.replace(
        "192.0.2.1:5062;branch=z9hG4bKup;received=192.0.2.77",
        "255.255.255.255;branch=z9hG4bK1saber23",
    );
    assert!(
        sent(&p.handle_message(
            t0,
            Message::parse(bcast.into_bytes()).unwrap(),
            udp(UAS_A),
            InterfaceId(0)
        ))
        .is_empty()
    );
}

#[test]
fn the_cscf_can_answer_a_request_itself() {
    let t0 = Instant::now();
    let mut p = proxy();
    let ev = p.handle_message(
        t0,
        request("REGISTER", "z9hG4bKg1", ""),
        udp(UAC),
        InterfaceId(0),
    );
    let (ctx, req) = new_request(&ev);
    let resp = req.response(StatusCode::UNAUTHORIZED, Some("reg")).unwrap();
    let ev = p.decide(t0, ctx, Decision::Respond(resp)).unwrap();
    assert_eq!(status(&sent(&ev)[0].1), 401);
    assert!(ev.iter().any(|e| matches!(e, ProxyEvent::Finished { .. })));
    assert!(
        p.decide(
            t0,
            ctx,
            Decision::Respond(req.response(StatusCode::OK, None).unwrap())
        )
        .is_err()
    );
}

#[test]
fn a_transport_error_counts_as_503_and_goes_upstream_as_500() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, _) = forward(
        &mut p,
        t0,
        request("MESSAGE", "z9hG4bKe1", ""),
        vec![to("sip:a@192.0.2.20:5080", UAS_A)],
        false,
    );
    let (cid, _) = p.by_client.iter().next().map(|(k, v)| (*k, *v)).unwrap();
    let ev = p.handle_transport_error(t0, TxRef::Client(cid));
    let (c, r) = &responses(&ev)[0];
    assert_eq!((*c, status(r)), (ctx, 500));
}

#[test]
fn targets_named_by_host_use_the_static_table_or_fail_with_503() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, out) = forward(
        &mut p,
        t0,
        request("MESSAGE", "z9hG4bKh1", ""),
        vec![Target::uri("sip:x@unknown.example.net")],
        false,
    );
    assert!(out.is_empty());
    let _ = ctx;
    let mut cfg = p.config().clone();
    cfg.hosts
        .insert("scscf.example.net".into(), udp("192.0.2.50:6060"));
    let mut p = Proxy::new(cfg, TimerConfig::default(), 1);
    let (_, out) = forward(
        &mut p,
        t0,
        request("MESSAGE", "z9hG4bKh2", ""),
        vec![Target::uri("sip:x@scscf.example.net")],
        false,
    );
    assert_eq!(out[0].0.addr, "192.0.2.50:6060".parse().unwrap());
}

#[test]
fn originated_requests_report_their_responses() {
    let t0 = Instant::now();
    let mut p = proxy();
    let dest = udp(UAS_A);
    let via = p.via_for(&dest);
    let mut notify = Message::new_request(Method::Notify, "sip:ue@192.0.2.20:5080");
    notify.push_typed(HeaderName::VIA, &via).unwrap();
    for (n, v) in [
        (HeaderName::FROM, "<sip:scscf@x>;tag=n1"),
        (HeaderName::TO, "<sip:ue@y>;tag=u1"),
        (HeaderName::CALL_ID, "n-1"),
        (HeaderName::CSEQ, "2 NOTIFY"),
        (HeaderName::MAX_FORWARDS, "70"),
    ] {
        notify.push_header(n, v).unwrap();
    }
    let (id, ev) = p.send_request(t0, notify, dest).unwrap();
    let out = sent(&ev);
    let ev = p.handle_message(t0, reply(&out[0].1, 200, "u1"), udp(UAS_A), InterfaceId(0));
    assert!(
        ev.iter()
            .any(|e| matches!(e, ProxyEvent::UacResponse { id: i, .. } if *i == id))
    );
}

/// The shape of a P-CSCF's use of the core: add Path, forward the REGISTER to the I-CSCF by
/// name, take `ck`/`ik` out of the 401 before it reaches the UE.
#[test]
fn ims_register_flows_through_the_seam_with_cscf_edits() {
    use crate::header::Auth;
    let t0 = Instant::now();
    let mut cfg = proxy().config().clone();
    cfg.hosts
        .insert("icscf.ims.example".into(), udp("192.0.2.60:5060"));
    let mut p = Proxy::new(cfg, TimerConfig::default(), 7);
    let reg = Message::parse(&include_bytes!("../../testdata/ims/register.sip")[..]).unwrap();
    let ev = p.handle_message(t0, reg, udp("10.45.0.2:5060"), InterfaceId(0));
    let (ctx, mut req) = new_request(&ev);
    req.prepend_header(HeaderName::PATH, "<sip:term@10.0.0.1:5060;lr>")
        .unwrap();
    let target = Target::uri("sip:ims.mnc001.mcc001.3gppnetwork.org").via(udp("192.0.2.60:5060"));
    let ev = p.decide(t0, ctx, Decision::forward(req, target)).unwrap();
    let (peer, fwd) = &sent(&ev)[0];
    assert_eq!(peer.addr, "192.0.2.60:5060".parse().unwrap());
    assert!(fwd.has_header(&HeaderName::PATH));
    assert_eq!(
        fwd.values(&HeaderName::VIA).count(),
        3,
        "ours on top of the UE's two"
    );
    let ue_via = fwd.vias().nth(1).unwrap().unwrap();
    assert_eq!(
        ue_via.rport(),
        Some(Some(5060)),
        "rport filled in for the UE"
    );

    let mut challenge = fwd.response(StatusCode::UNAUTHORIZED, Some("s1")).unwrap();
    let mut www = Auth::digest();
    www.set("realm", "ims.mnc001.mcc001.3gppnetwork.org");
    www.set("nonce", "bm9uY2U=");
    www.set("algorithm", "AKAv1-MD5");
    www.set("ck", "b40ba9a3c58b2a05bbf0d987b21bf8cb");
    www.set("ik", "f769bcd751044604127672711c6d3441");
    challenge
        .push_typed(HeaderName::WWW_AUTHENTICATE, &www)
        .unwrap();
    let challenge = Message::parse(challenge.to_bytes()).unwrap();
    let ev = p.handle_message(t0, challenge, udp("192.0.2.60:5060"), InterfaceId(0));
    let (c, resp) = responses(&ev).pop().unwrap();
    let mut auth: Auth<'_> = resp.required(&HeaderName::WWW_AUTHENTICATE).unwrap();
    auth.remove("ck");
    auth.remove("ik");
    let mut to_ue = resp.clone();
    to_ue
        .set_header(HeaderName::WWW_AUTHENTICATE, auth.to_string())
        .unwrap();
    let ev = p.forward_response(t0, c, to_ue).unwrap();
    let (peer, out) = &sent(&ev)[0];
    assert_eq!(peer.addr, "10.45.0.2:5060".parse().unwrap());
    let text = String::from_utf8_lossy(&out.to_bytes()).into_owned();
    assert!(
        text.contains("algorithm=AKAv1-MD5") && !text.contains("ck=") && !text.contains("ik="),
        "{text}"
    );
}

#[test]
fn own_route_values_removed_by_preprocessing_are_reported_as_consumed_until_the_decision() {
    let t0 = Instant::now();
    let mut p = proxy();
    let req = request(
        "MESSAGE",
        "z9hG4bKcr1",
        "Route: <sip:orig@10.0.0.1:5060;lr>, <sip:odi-abc@proxy.example.com;lr>\r\n\
         Route: <sip:as@192.0.2.30;lr>\r\n",
    );
    let ev = p.handle_message(t0, req, udp(UAC), InterfaceId(0));
    let (ctx, req) = new_request(&ev);
    let consumed: Vec<&[u8]> = p.consumed_routes(ctx).iter().map(|b| &b[..]).collect();
    assert_eq!(
        consumed,
        vec![
            &b"<sip:orig@10.0.0.1:5060;lr>"[..],
            &b"<sip:odi-abc@proxy.example.com;lr>"[..]
        ]
    );
    let left: Vec<String> = req
        .routes()
        .filter_map(Result::ok)
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(left, vec!["sip:as@192.0.2.30;lr".to_owned()]);
    p.decide(t0, ctx, Decision::forward(req, Target::next_hop()))
        .unwrap();
    assert!(p.consumed_routes(ctx).is_empty());
}

/// Forwards a MESSAGE to `UAS_A` with a fallback toward `UAS_B`; returns the context and
/// what was sent.
fn forward_with_fallback(
    p: &mut Proxy,
    now: Instant,
    branch: &str,
) -> (ContextId, Vec<ProxyEvent>) {
    let ev = p.handle_message(
        now,
        request("MESSAGE", branch, ""),
        udp(UAC),
        InterfaceId(0),
    );
    let (ctx, req) = new_request(&ev);
    let mut fallback = req.clone();
    fallback
        .push_header(HeaderName::new("X-Fallback".to_owned()).unwrap(), "yes")
        .unwrap();
    let ev = p
        .decide_with_fallback(
            now,
            ctx,
            Decision::forward(req, to("sip:as@192.0.2.20:5080", UAS_A)),
            Decision::forward(fallback, to("sip:bob@192.0.2.21:5080", UAS_B)),
        )
        .unwrap();
    (ctx, ev)
}

fn sent_to(ev: &[ProxyEvent], addr: &str) -> Vec<Message> {
    sent(ev)
        .into_iter()
        .filter(|(peer, _)| peer.addr == addr.parse().unwrap())
        .map(|(_, m)| m)
        .collect()
}

#[test]
fn fallback_decision_is_forwarded_when_the_branch_times_out() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, ev) = forward_with_fallback(&mut p, t0, "z9hG4bKfb1");
    assert_eq!(sent_to(&ev, UAS_A).len(), 1);
    let mut at = t0;
    let mut to_b = Vec::new();
    while to_b.is_empty() && at < t0 + 40 * SEC {
        at += SEC;
        let ev = p.handle_timeout(at);
        assert!(responses(&ev).is_empty(), "the 408 must not go upstream");
        to_b = sent_to(&ev, UAS_B);
    }
    assert_eq!(to_b.len(), 1, "fallback sent after Timer F");
    assert!(to_b[0].has_header(&HeaderName::new("X-Fallback".to_owned()).unwrap()));
    let ev = p.handle_message(at, reply(&to_b[0], 200, "b"), udp(UAS_B), InterfaceId(0));
    let r = responses(&ev);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0, status(&r[0].1)), (ctx, 200));
}

#[test]
fn fallback_decision_is_forwarded_after_a_5xx_and_its_answer_wins() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, ev) = forward_with_fallback(&mut p, t0, "z9hG4bKfb2");
    let to_a = sent_to(&ev, UAS_A);
    let ev = p.handle_message(t0, reply(&to_a[0], 500, "a"), udp(UAS_A), InterfaceId(0));
    assert!(responses(&ev).is_empty());
    let to_b = sent_to(&ev, UAS_B);
    assert_eq!(to_b.len(), 1);
    let ev = p.handle_message(t0, reply(&to_b[0], 404, "b"), udp(UAS_B), InterfaceId(0));
    let r = responses(&ev);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0, status(&r[0].1)), (ctx, 404));
    assert_eq!(
        p.take_fallbacks_applied(),
        vec![(ctx, StatusCode::SERVER_INTERNAL_ERROR)]
    );
    assert!(p.take_fallbacks_applied().is_empty());
}

#[test]
fn fallback_is_not_used_when_the_branch_answers_4xx() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, ev) = forward_with_fallback(&mut p, t0, "z9hG4bKfb3");
    let to_a = sent_to(&ev, UAS_A);
    let ev = p.handle_message(t0, reply(&to_a[0], 403, "a"), udp(UAS_A), InterfaceId(0));
    assert!(sent_to(&ev, UAS_B).is_empty());
    let r = responses(&ev);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0, status(&r[0].1)), (ctx, 403));
    assert!(p.take_fallbacks_applied().is_empty());
}

#[test]
fn fallback_decision_is_forwarded_after_a_transport_error() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (_, ev) = forward_with_fallback(&mut p, t0, "z9hG4bKfb4");
    let tx = ev
        .iter()
        .find_map(|e| match e {
            ProxyEvent::Transmit { to, tx, .. } if to.addr == UAS_A.parse().unwrap() => *tx,
            _ => None,
        })
        .expect("the branch's transaction");
    let ev = p.handle_transport_error(t0, tx);
    assert!(responses(&ev).is_empty());
    assert_eq!(sent_to(&ev, UAS_B).len(), 1);
}

fn route_values(m: &Message) -> Vec<String> {
    m.values(&HeaderName::ROUTE)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn each_forked_target_carries_its_own_route_set_and_a_2xx_cancels_the_other_branch() {
    let t0 = Instant::now();
    let mut p = proxy();
    let inv = request(
        "INVITE",
        "z9hG4bKrt1",
        "Route: <sip:proxy.example.com;lr>\r\n",
    );
    let ev = p.handle_message(t0, inv, udp(UAC), InterfaceId(0));
    let (ctx, req) = new_request(&ev);
    let decision = Decision::Forward {
        request: req,
        targets: vec![
            Target::uri("sip:ue1@10.45.0.2:5060"),
            Target::uri("sip:ue2@10.45.0.3:5060"),
        ],
        mode: ForkMode::Parallel,
        record_route: Some(RecordRoute::default()),
    };
    let routes = vec![
        Some(vec![Bytes::from_static(b"<sip:192.0.2.20:5080;lr>")]),
        Some(vec![
            Bytes::from_static(b"<sip:192.0.2.21:5080;lr>"),
            Bytes::from_static(b"<sip:flow7@192.0.2.21:5080;lr>"),
        ]),
    ];
    let ev = p
        .decide_with(t0, ctx, decision, DecideOptions::default().routes(routes))
        .unwrap();
    let a = sent_to(&ev, UAS_A);
    let b = sent_to(&ev, UAS_B);
    assert_eq!(
        (a.len(), b.len()),
        (1, 1),
        "one copy to each route's first hop"
    );
    assert_eq!(route_values(&a[0]), ["<sip:192.0.2.20:5080;lr>"]);
    assert_eq!(a[0].request_uri_str(), Some("sip:ue1@10.45.0.2:5060"));
    assert_eq!(
        route_values(&b[0]),
        ["<sip:192.0.2.21:5080;lr>", "<sip:flow7@192.0.2.21:5080;lr>"]
    );
    assert_eq!(b[0].request_uri_str(), Some("sip:ue2@10.45.0.3:5060"));
    assert!(a[0].has_header(&HeaderName::RECORD_ROUTE));
    p.handle_message(t0, reply(&a[0], 180, "ta"), udp(UAS_A), InterfaceId(0));
    p.handle_message(t0, reply(&b[0], 180, "tb"), udp(UAS_B), InterfaceId(0));
    let ev = p.handle_message(
        t0 + SEC,
        reply(&b[0], 200, "tb"),
        udp(UAS_B),
        InterfaceId(0),
    );
    let r = responses(&ev);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0, status(&r[0].1)), (ctx, 200));
    let cancels: Vec<Message> = sent_to(&ev, UAS_A)
        .into_iter()
        .filter(|m| m.method() == Some(&Method::Cancel))
        .collect();
    assert_eq!(cancels.len(), 1, "the ringing branch is cancelled");
    assert_eq!(
        cancels[0].top_via().unwrap().branch(),
        a[0].top_via().unwrap().branch()
    );
    assert_eq!(route_values(&cancels[0]), route_values(&a[0]));
}

/// An INVITE forwarded with challenge answering; returns the context and the first copy.
fn challenged_invite(p: &mut Proxy, t0: Instant, branch: &str) -> (ContextId, Message, Message) {
    let inv = request("INVITE", branch, "");
    let ev = p.handle_message(t0, inv.clone(), udp(UAC), InterfaceId(0));
    let (ctx, req) = new_request(&ev);
    let ev = p
        .decide_with(
            t0,
            ctx,
            Decision::forward(req, to("sip:+4930123@192.0.2.20:5080", UAS_A)),
            DecideOptions::default().answer_challenges(true),
        )
        .unwrap();
    let first = sent_to(&ev, UAS_A).remove(0);
    (ctx, first, inv)
}

fn with_credentials(p: &Proxy, ctx: ContextId) -> Message {
    let mut again = p.challenge_pending(ctx).expect("a challenge is held");
    let seq = again.cseq().unwrap().seq;
    again
        .set_header(HeaderName::CSEQ, format!("{} INVITE", seq + 1))
        .unwrap();
    again
        .push_header(HeaderName::PROXY_AUTHORIZATION, "Digest username=\"lab\"")
        .unwrap();
    again
}

#[test]
fn a_held_407_is_acked_and_the_retry_goes_out_with_a_new_branch_while_responses_keep_the_received_cseq()
 {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, first, _) = challenged_invite(&mut p, t0, "z9hG4bKch1");
    let ev = p.handle_message(t0, reply(&first, 407, "trunk"), udp(UAS_A), InterfaceId(0));
    let acks = sent_to(&ev, UAS_A);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method(), Some(&Method::Ack), "the 407 is ACKed");
    let r = responses(&ev);
    assert_eq!(status(&r[0].1), 407, "the element sees the challenge");
    assert_eq!(
        p.challenge_pending(ctx).unwrap().request_uri_str(),
        first.request_uri_str()
    );
    let ev = p.retry(t0, ctx, with_credentials(&p, ctx)).unwrap();
    let again = sent_to(&ev, UAS_A).remove(0);
    assert_eq!(again.cseq().unwrap().seq, 2);
    assert_eq!(again.call_id().unwrap(), first.call_id().unwrap());
    assert_eq!(again.max_forwards().unwrap(), first.max_forwards().unwrap());
    assert_ne!(
        again.top_via().unwrap().branch(),
        first.top_via().unwrap().branch()
    );
    assert!(again.has_header(&HeaderName::PROXY_AUTHORIZATION));
    assert!(p.challenge_pending(ctx).is_none());
    for code in [180, 200] {
        let ev = p.handle_message(t0, reply(&again, code, "trunk"), udp(UAS_A), InterfaceId(0));
        let r = responses(&ev);
        assert_eq!(status(&r[0].1), code);
        assert_eq!(r[0].1.cseq().unwrap().seq, 1, "the caller's CSeq on {code}");
        let ev = p.forward_response(t0, ctx, r[0].1.clone()).unwrap();
        let up = sent_to(&ev, UAC);
        assert_eq!(up[0].cseq().unwrap().seq, 1);
    }
}

#[test]
fn a_second_challenge_goes_upstream_and_ends_the_call() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, first, _) = challenged_invite(&mut p, t0, "z9hG4bKch2");
    p.handle_message(t0, reply(&first, 407, "trunk"), udp(UAS_A), InterfaceId(0));
    let ev = p.retry(t0, ctx, with_credentials(&p, ctx)).unwrap();
    let again = sent_to(&ev, UAS_A).remove(0);
    let ev = p.handle_message(t0, reply(&again, 407, "trunk"), udp(UAS_A), InterfaceId(0));
    assert!(p.challenge_pending(ctx).is_none(), "no second retry");
    let r = responses(&ev);
    assert_eq!((status(&r[0].1), r[0].1.cseq().unwrap().seq), (407, 1));
    let ev = p.forward_response(t0, ctx, r[0].1.clone()).unwrap();
    assert_eq!(status(&sent_to(&ev, UAC)[0]), 407);
    assert!(p.retry(t0, ctx, again).is_err());
    assert!(ev.iter().any(|e| matches!(e, ProxyEvent::Finished { .. })));
}

#[test]
fn a_cancel_after_the_retry_cancels_the_new_transaction() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, first, inv) = challenged_invite(&mut p, t0, "z9hG4bKch3");
    p.handle_message(t0, reply(&first, 407, "trunk"), udp(UAS_A), InterfaceId(0));
    let ev = p.retry(t0, ctx, with_credentials(&p, ctx)).unwrap();
    let again = sent_to(&ev, UAS_A).remove(0);
    p.handle_message(t0, reply(&again, 180, "trunk"), udp(UAS_A), InterfaceId(0));
    let cancel = Message::parse(build_cancel(&inv).unwrap().to_bytes()).unwrap();
    let ev = p.handle_message(t0 + SEC, cancel, udp(UAC), InterfaceId(0));
    let down: Vec<Message> = sent_to(&ev, UAS_A);
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].method(), Some(&Method::Cancel));
    assert_eq!(down[0].cseq().unwrap().seq, 2, "the re-sent INVITE's CSeq");
    assert_eq!(
        down[0].top_via().unwrap().branch(),
        again.top_via().unwrap().branch()
    );
    let ev = p.handle_message(
        t0 + SEC,
        reply(&again, 487, "trunk"),
        udp(UAS_A),
        InterfaceId(0),
    );
    let r = responses(&ev);
    assert_eq!((status(&r[0].1), r[0].1.cseq().unwrap().seq), (487, 1));
}

#[test]
fn a_cancel_while_the_challenge_is_held_answers_487_and_no_retry_goes_out() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, first, inv) = challenged_invite(&mut p, t0, "z9hG4bKch4");
    p.handle_message(t0, reply(&first, 407, "trunk"), udp(UAS_A), InterfaceId(0));
    let cancel = Message::parse(build_cancel(&inv).unwrap().to_bytes()).unwrap();
    let ev = p.handle_message(t0, cancel, udp(UAC), InterfaceId(0));
    let up: Vec<u16> = sent_to(&ev, UAC).iter().map(status).collect();
    assert!(up.contains(&200) && up.contains(&487), "{up:?}");
    assert!(p.retry(t0, ctx, first).is_err());
}

/// A MESSAGE or INVITE to an AS with a no-answer timeout of 4 s and a fallback to UAS_B.
fn to_as_with_timeout(p: &mut Proxy, t0: Instant, method: &str) -> (ContextId, Message) {
    let ev = p.handle_message(
        t0,
        request(method, "z9hG4bKna1", ""),
        udp(UAC),
        InterfaceId(0),
    );
    let (ctx, req) = new_request(&ev);
    let opts = DecideOptions::default()
        .no_answer(Some(4 * SEC))
        .fallback(Some(Decision::forward(
            req.clone(),
            to("sip:bob@192.0.2.21:5080", UAS_B),
        )));
    let ev = p
        .decide_with(
            t0,
            ctx,
            Decision::forward(req, to("sip:as@192.0.2.20:5080", UAS_A)),
            opts,
        )
        .unwrap();
    (ctx, sent_to(&ev, UAS_A).remove(0))
}

#[test]
fn an_as_that_sends_100_and_dies_is_cancelled_at_the_no_answer_timeout_and_the_fallback_applies() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, to_as) = to_as_with_timeout(&mut p, t0, "INVITE");
    p.handle_message(t0, reply(&to_as, 100, "as"), udp(UAS_A), InterfaceId(0));
    assert!(p.poll_timeout().unwrap() <= t0 + 4 * SEC);
    let ev = p.handle_timeout(t0 + 3 * SEC);
    assert!(sent_to(&ev, UAS_B).is_empty(), "not before the timeout");
    let ev = p.handle_timeout(t0 + 4 * SEC);
    let cancels = sent_to(&ev, UAS_A);
    assert_eq!(cancels[0].method(), Some(&Method::Cancel));
    assert!(responses(&ev).is_empty(), "the 408 does not go upstream");
    let fallback = sent_to(&ev, UAS_B);
    assert_eq!(fallback.len(), 1, "the fallback goes out at once");
    assert_eq!(
        p.take_fallbacks_applied(),
        [(ctx, StatusCode::REQUEST_TIMEOUT)]
    );
}

fn is_cancel(m: &Message) -> bool {
    m.method() == Some(&Method::Cancel)
}

#[test]
fn a_silent_as_given_up_gets_its_cancel_only_when_a_late_provisional_comes() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (_, to_as) = to_as_with_timeout(&mut p, t0, "INVITE");
    let ev = p.handle_timeout(t0 + 4 * SEC);
    assert!(
        !sent_to(&ev, UAS_A).iter().any(is_cancel),
        "§9.1: no CANCEL before a provisional response"
    );
    assert_eq!(sent_to(&ev, UAS_B).len(), 1, "the fallback goes out");
    let ev = p.handle_message(
        t0 + 6 * SEC,
        reply(&to_as, 180, "as"),
        udp(UAS_A),
        InterfaceId(0),
    );
    let cancels: Vec<Message> = sent_to(&ev, UAS_A);
    assert_eq!(cancels.len(), 1);
    assert!(is_cancel(&cancels[0]));
    assert_eq!(
        cancels[0].top_via().unwrap().branch(),
        to_as.top_via().unwrap().branch(),
        "the CANCEL matches the given-up INVITE"
    );
    assert!(
        responses(&ev).is_empty(),
        "the given-up branch's 180 does not go upstream"
    );
    let ev = p.handle_message(
        t0 + 7 * SEC,
        reply(&to_as, 183, "as"),
        udp(UAS_A),
        InterfaceId(0),
    );
    assert!(sent(&ev).is_empty(), "one CANCEL, nothing upstream");
}

#[test]
fn a_late_2xx_from_a_given_up_as_is_not_forwarded_and_the_fallback_keeps_ringing() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (_, to_as) = to_as_with_timeout(&mut p, t0, "INVITE");
    let ev = p.handle_timeout(t0 + 4 * SEC);
    let fallback = sent_to(&ev, UAS_B).remove(0);
    let ev = p.handle_message(
        t0 + 5 * SEC,
        reply(&fallback, 180, "b"),
        udp(UAS_B),
        InterfaceId(0),
    );
    assert_eq!(responses(&ev).len(), 1, "the fallback's 180 goes upstream");
    let ev = p.handle_message(
        t0 + 6 * SEC,
        reply(&to_as, 200, "as"),
        udp(UAS_A),
        InterfaceId(0),
    );
    assert!(responses(&ev).is_empty(), "the AS's late 2xx stays here");
    assert!(
        sent_to(&ev, UAS_B).is_empty(),
        "the fallback branch is not cancelled"
    );
    let ev = p.handle_message(
        t0 + 7 * SEC,
        reply(&fallback, 200, "b"),
        udp(UAS_B),
        InterfaceId(0),
    );
    assert_eq!(
        responses(&ev)
            .iter()
            .map(|(_, r)| status(r))
            .collect::<Vec<_>>(),
        [200],
        "the fallback answers the call"
    );
}

#[test]
fn a_given_up_as_branch_that_rings_for_ever_ends_at_timer_c() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (_, to_as) = to_as_with_timeout(&mut p, t0, "INVITE");
    let ev = p.handle_timeout(t0 + 4 * SEC);
    let fallback = sent_to(&ev, UAS_B).remove(0);
    p.handle_message(
        t0 + 5 * SEC,
        reply(&fallback, 486, "b"),
        udp(UAS_B),
        InterfaceId(0),
    );
    p.handle_message(
        t0 + 6 * SEC,
        reply(&to_as, 180, "as"),
        udp(UAS_A),
        InterfaceId(0),
    );
    let mut at = t0 + 6 * SEC;
    while at < t0 + 186 * SEC {
        at += SEC;
        let ev = p.handle_timeout(at);
        assert!(responses(&ev).is_empty(), "nothing of the AS goes upstream");
    }
    assert_eq!(
        p.layer().counts().0,
        0,
        "Timer C (§16.8) ended the INVITE the AS never answered, and its CANCEL"
    );
}

#[test]
fn the_fallback_decision_keeps_answering_challenges() {
    let t0 = Instant::now();
    let mut p = proxy();
    let ev = p.handle_message(
        t0,
        request("INVITE", "z9hG4bKna2", ""),
        udp(UAC),
        InterfaceId(0),
    );
    let (ctx, req) = new_request(&ev);
    let opts = DecideOptions::default()
        .no_answer(Some(4 * SEC))
        .answer_challenges(true)
        .fallback(Some(Decision::forward(
            req.clone(),
            to("sip:bob@192.0.2.21:5080", UAS_B),
        )));
    p.decide_with(
        t0,
        ctx,
        Decision::forward(req, to("sip:as@192.0.2.20:5080", UAS_A)),
        opts,
    )
    .unwrap();
    let ev = p.handle_timeout(t0 + 4 * SEC);
    let fallback = sent_to(&ev, UAS_B).remove(0);
    p.handle_message(
        t0 + 5 * SEC,
        reply(&fallback, 407, "trunk"),
        udp(UAS_B),
        InterfaceId(0),
    );
    let held = p
        .challenge_pending(ctx)
        .expect("the trunk's 407 is held for answering");
    assert_eq!(
        held.request_uri_raw(),
        Some(&b"sip:bob@192.0.2.21:5080"[..]),
        "the retry goes where the fallback went"
    );
}

#[test]
fn a_ringing_as_branch_is_not_given_up_at_the_no_answer_timeout() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (_, to_as) = to_as_with_timeout(&mut p, t0, "INVITE");
    p.handle_message(t0, reply(&to_as, 180, "as"), udp(UAS_A), InterfaceId(0));
    let ev = p.handle_timeout(t0 + 5 * SEC);
    assert!(sent(&ev).is_empty(), "nothing happens: the AS is alive");
    assert!(p.take_fallbacks_applied().is_empty());
}

#[test]
fn a_silent_as_for_a_message_fails_at_the_no_answer_timeout_not_timer_f() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, _) = to_as_with_timeout(&mut p, t0, "MESSAGE");
    let ev = p.handle_timeout(t0 + 4 * SEC);
    assert_eq!(sent_to(&ev, UAS_B).len(), 1);
    assert_eq!(
        p.take_fallbacks_applied(),
        [(ctx, StatusCode::REQUEST_TIMEOUT)]
    );
}

#[test]
fn an_unreachable_udp_peer_fails_its_branches_at_once_and_the_fallback_applies() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, ev) = forward_with_fallback(&mut p, t0, "z9hG4bKicmp1");
    assert_eq!(sent_to(&ev, UAS_A).len(), 1);
    let ev = p.handle_unreachable(t0, "192.0.2.99:5080".parse().unwrap());
    assert!(sent(&ev).is_empty(), "another peer: nothing happens");
    let ev = p.handle_unreachable(t0, UAS_A.parse().unwrap());
    assert!(responses(&ev).is_empty(), "the 503 does not go upstream");
    assert_eq!(
        sent_to(&ev, UAS_B).len(),
        1,
        "the fallback goes out at once"
    );
    assert_eq!(
        p.take_fallbacks_applied(),
        [(ctx, StatusCode::SERVICE_UNAVAILABLE)]
    );
}

#[test]
fn a_fallback_fork_carries_its_own_route_sets() {
    let t0 = Instant::now();
    let mut p = proxy();
    let ev = p.handle_message(
        t0,
        request("INVITE", "z9hG4bKfr1", ""),
        udp(UAC),
        InterfaceId(0),
    );
    let (ctx, req) = new_request(&ev);
    let fallback = Decision::Forward {
        request: req.clone(),
        targets: vec![
            Target::uri("sip:ue1@10.45.0.2:5060"),
            Target::uri("sip:ue2@10.45.0.3:5060"),
        ],
        mode: ForkMode::Parallel,
        record_route: None,
    };
    let opts = DecideOptions::default()
        .fallback(Some(fallback))
        .fallback_routes(vec![
            Some(vec![Bytes::from_static(b"<sip:192.0.2.21:5080;lr>")]),
            Some(vec![Bytes::from_static(b"<sip:192.0.2.22:5080;lr>")]),
        ]);
    let ev = p
        .decide_with(
            t0,
            ctx,
            Decision::forward(req, to("sip:as@192.0.2.20:5080", UAS_A)),
            opts,
        )
        .unwrap();
    let to_as = sent_to(&ev, UAS_A).remove(0);
    let ev = p.handle_message(t0, reply(&to_as, 500, "as"), udp(UAS_A), InterfaceId(0));
    let b = sent_to(&ev, UAS_B);
    let c = sent_to(&ev, "192.0.2.22:5080");
    assert_eq!((b.len(), c.len()), (1, 1));
    assert_eq!(route_values(&b[0]), ["<sip:192.0.2.21:5080;lr>"]);
    assert_eq!(route_values(&c[0]), ["<sip:192.0.2.22:5080;lr>"]);
}

#[test]
fn a_2xx_retransmission_after_the_retried_invite_finished_still_carries_the_received_cseq() {
    let t0 = Instant::now();
    let mut p = proxy();
    let (ctx, first, _) = challenged_invite(&mut p, t0, "z9hG4bKch5");
    p.handle_message(t0, reply(&first, 407, "trunk"), udp(UAS_A), InterfaceId(0));
    let ev = p.retry(t0, ctx, with_credentials(&p, ctx)).unwrap();
    let again = sent_to(&ev, UAS_A).remove(0);
    let ok = reply(&again, 200, "trunk");
    let ev = p.handle_message(t0, ok.clone(), udp(UAS_A), InterfaceId(0));
    let r = responses(&ev).remove(0).1;
    let ev = p.forward_response(t0, ctx, r).unwrap();
    assert!(ev.iter().any(|e| matches!(e, ProxyEvent::Finished { .. })));
    let ev = p.handle_message(t0 + SEC, ok, udp(UAS_A), InterfaceId(0));
    let up = sent_to(&ev, UAC);
    assert_eq!(up.len(), 1, "the retransmission goes upstream statelessly");
    assert_eq!((status(&up[0]), up[0].cseq().unwrap().seq), (200, 1));
}
