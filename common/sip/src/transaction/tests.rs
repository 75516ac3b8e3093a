//! Every timer path of the four machines on a virtual clock, and the layer's matching rules.

use std::time::{Duration, Instant};

use super::*;
use crate::StatusCode;

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn udp() -> Peer {
    Peer::new(Transport::Udp, "192.0.2.10:5060".parse().unwrap())
}

fn tcp() -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: "192.0.2.10:5060".parse().unwrap(),
        flow: Some(FlowId(7)),
    }
}

fn request(method: &str, branch: &str, transport: &str) -> Message {
    let raw = format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/{transport} 192.0.2.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:p1.example.com;lr>\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: c1@192.0.2.1\r\n\
         CSeq: 7 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Message::parse(raw.into_bytes()).unwrap()
}

fn response_to(req: &Message, code: u16, tag: Option<&str>) -> Message {
    let r = req.response(StatusCode::new(code).unwrap(), tag).unwrap();
    Message::parse(r.to_bytes()).unwrap()
}

fn transmits(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Transmit { .. }))
        .count()
}

/// Runs the layer's timers from `from` to `to` in 1 ms steps and counts transmissions; stops at
/// the first event matching `stop`.
fn run(
    layer: &mut TransactionLayer,
    from: Instant,
    to: Instant,
    mut stop: impl FnMut(&Output) -> bool,
) -> (usize, Option<Instant>) {
    let mut sent = 0;
    let mut now = from;
    while now <= to {
        if layer.poll_timeout().is_some_and(|t| t <= now) {
            let out = layer.handle_timeout(now);
            sent += transmits(&out);
            if out.iter().any(&mut stop) {
                return (sent, Some(now));
            }
        }
        now += MS;
    }
    (sent, None)
}

// ---- client INVITE ----

#[test]
fn client_invite_retransmits_with_timer_a_doubling_then_timer_b_times_out() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let (id, out) = l
        .send_request(t0, request("INVITE", "z9hG4bKa1", "UDP"), udp())
        .unwrap();
    assert_eq!(transmits(&out), 1);
    assert_eq!(l.state(TxRef::Client(id)), Some(State::Calling));
    let (sent, timeout) = run(&mut l, t0, t0 + 40 * SEC, |o| {
        matches!(o, Output::Timeout { .. })
    });
    // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s; Timer B at 64*T1 = 32 s.
    assert_eq!(sent, 6);
    assert_eq!(timeout, Some(t0 + 32 * SEC));
    assert_eq!(l.state(TxRef::Client(id)), None);
}

#[test]
fn client_invite_on_tcp_is_not_retransmitted() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    l.send_request(t0, request("INVITE", "z9hG4bKa2", "TCP"), tcp())
        .unwrap();
    let (sent, timeout) = run(&mut l, t0, t0 + 40 * SEC, |o| {
        matches!(o, Output::Timeout { .. })
    });
    assert_eq!((sent, timeout), (0, Some(t0 + 32 * SEC)));
}

#[test]
fn client_invite_provisional_stops_timers_a_and_b() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let req = request("INVITE", "z9hG4bKa3", "UDP");
    let (id, _) = l.send_request(t0, req.clone(), udp()).unwrap();
    let out = l
        .handle_message(t0 + 100 * MS, response_to(&req, 180, Some("b1")), udp())
        .unwrap();
    assert!(matches!(out.as_slice(), [Output::Response { .. }]));
    assert_eq!(l.state(TxRef::Client(id)), Some(State::Proceeding));
    assert_eq!(
        l.poll_timeout(),
        Some(t0 + 500 * MS),
        "the old Timer A entry is stale"
    );
    let (sent, event) = run(&mut l, t0, t0 + 200 * SEC, |_| true);
    assert_eq!((sent, event), (0, None));
    assert_eq!(l.state(TxRef::Client(id)), Some(State::Proceeding));
}

#[test]
fn client_invite_non_2xx_is_acked_and_absorbed_until_timer_d() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let req = request("INVITE", "z9hG4bKa4", "UDP");
    let (id, _) = l.send_request(t0, req.clone(), udp()).unwrap();
    let busy = response_to(&req, 486, Some("b2"));
    let out = l.handle_message(t0 + SEC, busy.clone(), udp()).unwrap();
    let ack = out.iter().find_map(|o| match o {
        Output::Transmit { bytes, .. } => Message::parse(bytes.clone()).ok(),
        _ => None,
    });
    let ack = ack.unwrap();
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.request_uri_raw(), req.request_uri_raw());
    assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bKa4"));
    assert_eq!(ack.to_header().unwrap().tag(), Some("b2"));
    assert_eq!(ack.cseq().unwrap().to_string(), "7 ACK");
    assert_eq!(ack.values(&HeaderName::ROUTE).count(), 1);
    assert!(out.iter().any(|o| matches!(o, Output::Response { .. })));
    assert_eq!(l.state(TxRef::Client(id)), Some(State::Completed));
    let again = l.handle_message(t0 + 2 * SEC, busy, udp()).unwrap();
    assert_eq!(transmits(&again), 1, "ACK resent");
    assert!(
        !again.iter().any(|o| matches!(o, Output::Response { .. })),
        "retransmission absorbed"
    );
    let (_, end) = run(&mut l, t0 + SEC, t0 + 40 * SEC, |o| {
        matches!(o, Output::Terminated { .. })
    });
    assert_eq!(
        end,
        Some(t0 + 33 * SEC),
        "Timer D = 32 s after the response"
    );
}

#[test]
fn client_invite_non_2xx_on_reliable_transport_terminates_at_once() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let req = request("INVITE", "z9hG4bKa5", "TCP");
    let (id, _) = l.send_request(t0, req.clone(), tcp()).unwrap();
    let out = l
        .handle_message(t0 + SEC, response_to(&req, 404, Some("b")), tcp())
        .unwrap();
    assert!(out.iter().any(|o| matches!(o, Output::Terminated { .. })));
    assert_eq!(l.state(TxRef::Client(id)), None);
}

#[test]
fn client_invite_2xx_enters_accepted_and_passes_retransmissions_until_timer_m() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let req = request("INVITE", "z9hG4bKa6", "UDP");
    let (id, _) = l.send_request(t0, req.clone(), udp()).unwrap();
    let ok = response_to(&req, 200, Some("b3"));
    let out = l.handle_message(t0 + SEC, ok.clone(), udp()).unwrap();
    assert_eq!(
        transmits(&out),
        0,
        "the TU acknowledges a 2xx, not the transaction"
    );
    assert_eq!(l.state(TxRef::Client(id)), Some(State::Accepted));
    let again = l.handle_message(t0 + 2 * SEC, ok, udp()).unwrap();
    assert!(matches!(again.as_slice(), [Output::Response { .. }]));
    let (_, end) = run(&mut l, t0 + SEC, t0 + 40 * SEC, |o| {
        matches!(o, Output::Terminated { .. })
    });
    assert_eq!(end, Some(t0 + 33 * SEC), "Timer M = 64*T1");
}

// ---- client non-INVITE ----

#[test]
fn client_non_invite_timer_e_doubles_up_to_t2_then_timer_f_times_out() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    l.send_request(t0, request("REGISTER", "z9hG4bKn1", "UDP"), udp())
        .unwrap();
    let (sent, timeout) = run(&mut l, t0, t0 + 40 * SEC, |o| {
        matches!(o, Output::Timeout { .. })
    });
    // 0.5, 1.5, 3.5, 7.5, then every 4 s: 11.5 ... 31.5.
    assert_eq!(sent, 10);
    assert_eq!(timeout, Some(t0 + 32 * SEC));
}

#[test]
fn client_non_invite_in_proceeding_retransmits_every_t2() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let req = request("MESSAGE", "z9hG4bKn2", "UDP");
    let (id, _) = l.send_request(t0, req.clone(), udp()).unwrap();
    l.handle_message(t0 + 100 * MS, response_to(&req, 100, None), udp())
        .unwrap();
    assert_eq!(l.state(TxRef::Client(id)), Some(State::Proceeding));
    let (sent, _) = run(&mut l, t0, t0 + 12 * SEC, |_| false);
    // 0.5 (Timer E as set in Trying), then T2 = 4 s apart: 4.5, 8.5.
    assert_eq!(sent, 3);
}

#[test]
fn client_non_invite_final_response_waits_timer_k_on_udp_only() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let req = request("REGISTER", "z9hG4bKn3", "UDP");
    let (id, _) = l.send_request(t0, req.clone(), udp()).unwrap();
    l.handle_message(t0 + SEC, response_to(&req, 200, Some("x")), udp())
        .unwrap();
    assert_eq!(l.state(TxRef::Client(id)), Some(State::Completed));
    let dup = l
        .handle_message(t0 + 2 * SEC, response_to(&req, 200, Some("x")), udp())
        .unwrap();
    assert!(dup.is_empty(), "absorbed in Completed");
    let (_, end) = run(&mut l, t0 + SEC, t0 + 10 * SEC, |o| {
        matches!(o, Output::Terminated { .. })
    });
    assert_eq!(end, Some(t0 + 6 * SEC), "Timer K = T4");

    let req = request("REGISTER", "z9hG4bKn4", "TCP");
    let (id, _) = l.send_request(t0, req.clone(), tcp()).unwrap();
    l.handle_message(t0 + SEC, response_to(&req, 200, Some("x")), tcp())
        .unwrap();
    assert_eq!(l.state(TxRef::Client(id)), None, "Timer K = 0 on TCP");
}

// ---- server INVITE ----

fn first_request(out: &[Output]) -> ServerId {
    out.iter()
        .find_map(|o| match o {
            Output::Request { id: Some(id), .. } => Some(*id),
            _ => None,
        })
        .unwrap()
}

fn sent_statuses(out: &[Output]) -> Vec<u16> {
    out.iter()
        .filter_map(|o| match o {
            Output::Transmit { bytes, .. } => Message::parse(bytes.clone())
                .ok()
                .and_then(|m| m.status())
                .map(StatusCode::as_u16),
            _ => None,
        })
        .collect()
}

#[test]
fn server_invite_answers_100_and_replays_the_last_provisional() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = request("INVITE", "z9hG4bKs1", "UDP");
    let out = l.handle_message(t0, inv.clone(), udp()).unwrap();
    assert_eq!(sent_statuses(&out), [100]);
    let id = first_request(&out);
    let again = l.handle_message(t0 + 500 * MS, inv.clone(), udp()).unwrap();
    assert_eq!(
        sent_statuses(&again),
        [100],
        "retransmitted INVITE gets the last provisional"
    );
    assert!(!again.iter().any(|o| matches!(o, Output::Request { .. })));
    l.send_response(t0 + SEC, id, &response_to(&inv, 180, Some("s1")))
        .unwrap();
    let again = l.handle_message(t0 + 2 * SEC, inv, udp()).unwrap();
    assert_eq!(sent_statuses(&again), [180]);
}

#[test]
fn server_invite_retransmits_final_with_timer_g_until_ack_then_timer_i() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = request("INVITE", "z9hG4bKs2", "UDP");
    let id = first_request(&l.handle_message(t0, inv.clone(), udp()).unwrap());
    let busy = response_to(&inv, 486, Some("s2"));
    l.send_response(t0, id, &busy).unwrap();
    assert_eq!(l.state(TxRef::Server(id)), Some(State::Completed));
    // Timer G: 0.5, 1.5, 3.5, 7.5, 11.5 s (capped at T2).
    let (sent, _) = run(&mut l, t0, t0 + 12 * SEC, |_| false);
    assert_eq!(sent, 5);
    let ack = build_ack(&inv, &busy).unwrap();
    let out = l
        .handle_message(
            t0 + 12 * SEC,
            Message::parse(ack.to_bytes()).unwrap(),
            udp(),
        )
        .unwrap();
    assert!(out.is_empty(), "the ACK of a non-2xx is absorbed");
    assert_eq!(l.state(TxRef::Server(id)), Some(State::Confirmed));
    let (sent, end) = run(&mut l, t0 + 12 * SEC, t0 + 20 * SEC, |o| {
        matches!(o, Output::Terminated { .. })
    });
    assert_eq!((sent, end), (0, Some(t0 + 17 * SEC)), "Timer I = T4");
}

#[test]
fn server_invite_timer_h_reports_a_missing_ack() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = request("INVITE", "z9hG4bKs3", "TCP");
    let id = first_request(&l.handle_message(t0, inv.clone(), tcp()).unwrap());
    l.send_response(t0, id, &response_to(&inv, 603, Some("s3")))
        .unwrap();
    let (sent, end) = run(&mut l, t0, t0 + 40 * SEC, |o| {
        matches!(o, Output::AckTimeout { .. })
    });
    assert_eq!(
        (sent, end),
        (0, Some(t0 + 32 * SEC)),
        "no Timer G on TCP, Timer H = 64*T1"
    );
    assert_eq!(l.state(TxRef::Server(id)), None);
}

#[test]
fn server_invite_ack_on_reliable_transport_terminates_at_once() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = request("INVITE", "z9hG4bKs4", "TCP");
    let id = first_request(&l.handle_message(t0, inv.clone(), tcp()).unwrap());
    let busy = response_to(&inv, 486, Some("s4"));
    l.send_response(t0, id, &busy).unwrap();
    let ack = Message::parse(build_ack(&inv, &busy).unwrap().to_bytes()).unwrap();
    let out = l.handle_message(t0 + SEC, ack, tcp()).unwrap();
    assert!(
        out.iter().any(|o| matches!(o, Output::Terminated { .. })),
        "Timer I = 0"
    );
}

#[test]
fn server_invite_2xx_enters_accepted_and_absorbs_invite_retransmissions_until_timer_l() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = request("INVITE", "z9hG4bKs5", "UDP");
    let id = first_request(&l.handle_message(t0, inv.clone(), udp()).unwrap());
    let ok = response_to(&inv, 200, Some("s5"));
    assert_eq!(
        sent_statuses(&l.send_response(t0 + SEC, id, &ok).unwrap()),
        [200]
    );
    assert_eq!(l.state(TxRef::Server(id)), Some(State::Accepted));
    assert!(
        l.handle_message(t0 + 2 * SEC, inv, udp())
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        sent_statuses(&l.send_response(t0 + 3 * SEC, id, &ok).unwrap()),
        [200],
        "TU 2xx retransmission passes"
    );
    let (sent, end) = run(&mut l, t0 + SEC, t0 + 40 * SEC, |o| {
        matches!(o, Output::Terminated { .. })
    });
    assert_eq!((sent, end), (0, Some(t0 + 33 * SEC)), "Timer L = 64*T1");
    assert!(matches!(
        l.send_response(t0 + 34 * SEC, id, &ok),
        Err(Error::UnknownTransaction)
    ));
}

// ---- server non-INVITE ----

#[test]
fn server_non_invite_absorbs_in_trying_replays_final_and_ends_with_timer_j() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let reg = request("REGISTER", "z9hG4bKs6", "UDP");
    let out = l.handle_message(t0, reg.clone(), udp()).unwrap();
    assert_eq!(
        sent_statuses(&out),
        Vec::<u16>::new(),
        "no automatic 100 for non-INVITE"
    );
    let id = first_request(&out);
    assert!(
        l.handle_message(t0 + 500 * MS, reg.clone(), udp())
            .unwrap()
            .is_empty()
    );
    l.send_response(t0 + SEC, id, &response_to(&reg, 401, Some("s6")))
        .unwrap();
    assert_eq!(l.state(TxRef::Server(id)), Some(State::Completed));
    assert_eq!(
        sent_statuses(&l.handle_message(t0 + 2 * SEC, reg.clone(), udp()).unwrap()),
        [401]
    );
    assert!(
        l.send_response(t0 + 2 * SEC, id, &response_to(&reg, 200, Some("s6")))
            .is_err(),
        "one final response"
    );
    let (_, end) = run(&mut l, t0 + SEC, t0 + 40 * SEC, |o| {
        matches!(o, Output::Terminated { .. })
    });
    assert_eq!(end, Some(t0 + 33 * SEC), "Timer J = 64*T1");

    let reg = request("REGISTER", "z9hG4bKs7", "TCP");
    let id = first_request(&l.handle_message(t0, reg.clone(), tcp()).unwrap());
    let out = l
        .send_response(t0, id, &response_to(&reg, 200, Some("s7")))
        .unwrap();
    assert!(
        out.iter().any(|o| matches!(o, Output::Terminated { .. })),
        "Timer J = 0 on TCP"
    );
}

#[test]
fn server_non_invite_provisional_is_replayed_in_proceeding() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let msg = request("MESSAGE", "z9hG4bKs8", "UDP");
    let id = first_request(&l.handle_message(t0, msg.clone(), udp()).unwrap());
    l.send_response(t0, id, &response_to(&msg, 100, None))
        .unwrap();
    assert_eq!(l.state(TxRef::Server(id)), Some(State::Proceeding));
    assert_eq!(
        sent_statuses(&l.handle_message(t0 + SEC, msg, udp()).unwrap()),
        [100]
    );
}

// ---- matching ----

#[test]
fn requests_match_on_branch_sent_by_and_method() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    l.handle_message(t0, request("OPTIONS", "z9hG4bKm1", "UDP"), udp())
        .unwrap();
    let other_host = Message::parse(
        String::from_utf8_lossy(&request("OPTIONS", "z9hG4bKm1", "UDP").to_bytes())
            .replace("192.0.2.1:5060", "192.0.2.99:5060")
            .into_bytes(),
    )
    .unwrap();
    let out = l.handle_message(t0, other_host, udp()).unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Request { id: Some(_), .. })),
        "different sent-by: new transaction"
    );
    assert_eq!(l.counts().1, 2);
}

#[test]
fn rfc2543_requests_match_on_call_id_cseq_and_via_and_ack_on_to_tag() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = request("INVITE", "old2543", "UDP");
    let id = first_request(&l.handle_message(t0, inv.clone(), udp()).unwrap());
    assert!(
        !l.handle_message(t0, inv.clone(), udp())
            .unwrap()
            .iter()
            .any(|o| matches!(o, Output::Request { .. }))
    );
    let busy = response_to(&inv, 486, Some("t2543"));
    l.send_response(t0, id, &busy).unwrap();
    let mut wrong = build_ack(&inv, &response_to(&inv, 486, Some("other"))).unwrap();
    wrong = Message::parse(wrong.to_bytes()).unwrap();
    let out = l.handle_message(t0, wrong, udp()).unwrap();
    assert!(
        matches!(out.as_slice(), [Output::Request { id: None, .. }]),
        "To tag differs: not this transaction"
    );
    let ack = Message::parse(build_ack(&inv, &busy).unwrap().to_bytes()).unwrap();
    assert!(l.handle_message(t0, ack, udp()).unwrap().is_empty());
    assert_eq!(l.state(TxRef::Server(id)), Some(State::Confirmed));
}

#[test]
fn cancel_gets_its_own_transaction_and_names_the_invite_it_cancels() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = request("INVITE", "z9hG4bKc1", "UDP");
    let inv_id = first_request(&l.handle_message(t0, inv.clone(), udp()).unwrap());
    let cancel = Message::parse(build_cancel(&inv).unwrap().to_bytes()).unwrap();
    assert_eq!(cancel.top_via().unwrap().branch(), Some("z9hG4bKc1"));
    let out = l.handle_message(t0, cancel, udp()).unwrap();
    let (cancel_id, cancels) = out
        .iter()
        .find_map(|o| match o {
            Output::Request {
                id: Some(id),
                cancels,
                ..
            } => Some((*id, *cancels)),
            _ => None,
        })
        .unwrap();
    assert_ne!(cancel_id, inv_id);
    assert_eq!(cancels, Some(inv_id));
}

#[test]
fn responses_match_on_branch_and_cseq_method() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = request("INVITE", "z9hG4bKr1", "UDP");
    let (inv_id, _) = l.send_request(t0, inv.clone(), udp()).unwrap();
    let cancel = build_cancel(&inv).unwrap();
    let (cancel_id, _) = l.send_request(t0, cancel.clone(), udp()).unwrap();
    let out = l
        .handle_message(
            t0,
            response_to(&Message::parse(cancel.to_bytes()).unwrap(), 200, Some("z")),
            udp(),
        )
        .unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Response { id, .. } if *id == cancel_id))
    );
    let out = l
        .handle_message(t0, response_to(&inv, 487, Some("z")), udp())
        .unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Response { id, .. } if *id == inv_id))
    );
    let stray = response_to(&request("INVITE", "z9hG4bKnone", "UDP"), 200, Some("q"));
    assert!(matches!(
        l.handle_message(t0, stray, udp()).unwrap().as_slice(),
        [Output::StrayResponse { .. }]
    ));
}

#[test]
fn ack_for_2xx_has_no_transaction_and_goes_to_the_tu() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let ack = request("ACK", "z9hG4bKnew", "UDP");
    assert!(matches!(
        l.handle_message(t0, ack.clone(), udp()).unwrap().as_slice(),
        [Output::Request { id: None, .. }]
    ));
    assert!(l.send_request(t0, ack, udp()).is_err());
}

#[test]
fn transport_error_terminates_and_informs_the_tu() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let (id, _) = l
        .send_request(t0, request("OPTIONS", "z9hG4bKe1", "TCP"), tcp())
        .unwrap();
    let out = l.handle_transport_error(TxRef::Client(id));
    assert!(matches!(
        out.as_slice(),
        [Output::TransportError { .. }, Output::Terminated { .. }]
    ));
    assert_eq!(l.counts(), (0, 0));
}

#[test]
fn udp_responses_go_to_rport_or_sent_by_port_and_tcp_to_the_flow() {
    let from = Peer::new(Transport::Udp, "198.51.100.7:40001".parse().unwrap());
    let plain = request("OPTIONS", "z9hG4bKp1", "UDP");
    assert_eq!(
        response_target(&plain, &from).addr,
        "198.51.100.7:5060".parse().unwrap()
    );
    let rport = Message::parse(
        String::from_utf8_lossy(&plain.to_bytes())
            .replace("z9hG4bKp1", "z9hG4bKp1;rport")
            .into_bytes(),
    )
    .unwrap();
    assert_eq!(
        response_target(&rport, &from).addr,
        "198.51.100.7:40001".parse().unwrap()
    );
    assert_eq!(response_target(&plain, &tcp()), tcp());
}

#[test]
fn malformed_requests_cannot_be_matched() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let bad = Message::parse(&b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n"[..]).unwrap();
    assert_eq!(
        l.handle_message(t0, bad, udp()).err(),
        Some(Error::MissingHeader("Via"))
    );
}

// ---- §18.1.1 message size rule ----

fn padded(method: &str, branch: &str, size: usize) -> Message {
    let base = request(method, branch, "UDP").to_bytes();
    let text = String::from_utf8(base.to_vec()).unwrap();
    let pad = size.saturating_sub(base.len() + 14);
    let text = text.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nX-Pad: {}\r\n", "p".repeat(pad)),
        1,
    );
    Message::parse(text.into_bytes()).unwrap()
}

fn sent_to(out: &[Output]) -> Vec<(Peer, Message)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Transmit { to, bytes, .. } => {
                Some((to.clone(), Message::parse(bytes.clone()).unwrap()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn request_over_1300_bytes_toward_udp_goes_over_tcp_without_retransmissions() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    l.set_udp_size_rule(None);
    let req = padded("MESSAGE", "z9hG4bKbig1", 1400);
    assert!(req.encoded_len() > 1300);
    let (id, out) = l.send_request(t0, req, udp()).unwrap();
    let sent = sent_to(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.transport, Transport::Tcp);
    assert_eq!(sent[0].0.addr, udp().addr);
    let via = sent[0].1.top_via().unwrap();
    assert_eq!(via.transport, Transport::Tcp);
    assert_eq!(via.branch(), Some("z9hG4bKbig1"));
    // Reliable transport: no Timer E, only Timer F at 64*T1.
    let (resent, timeout) = run(&mut l, t0, t0 + 40 * SEC, |o| {
        matches!(o, Output::Timeout { .. })
    });
    assert_eq!(resent, 0);
    assert_eq!(timeout, Some(t0 + 32 * SEC));
    assert_eq!(l.state(TxRef::Client(id)), None);
}

#[test]
fn small_requests_and_layers_without_the_rule_stay_on_udp() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    l.set_udp_size_rule(None);
    let (_, out) = l
        .send_request(t0, padded("MESSAGE", "z9hG4bKsm1", 1200), udp())
        .unwrap();
    assert_eq!(sent_to(&out)[0].0.transport, Transport::Udp);
    let mut off = TransactionLayer::new(TimerConfig::default());
    assert_eq!(off.udp_size_limit(), None);
    let (_, out) = off
        .send_request(t0, padded("MESSAGE", "z9hG4bKsm2", 1400), udp())
        .unwrap();
    assert_eq!(sent_to(&out)[0].0.transport, Transport::Udp);
}

#[test]
fn a_large_request_pinned_to_a_udp_flow_stays_on_it_with_retransmissions() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    l.set_udp_size_rule(None);
    let pinned = Peer {
        flow: Some(FlowId(3)),
        ..udp()
    };
    let (_, out) = l
        .send_request(t0, padded("NOTIFY", "z9hG4bKpin1", 1400), pinned.clone())
        .unwrap();
    let sent = sent_to(&out);
    assert_eq!(sent[0].0, pinned);
    assert_eq!(sent[0].1.top_via().unwrap().transport, Transport::Udp);
    // Unreliable transport: Timer E retransmits it.
    let (resent, _) = run(&mut l, t0, t0 + SEC, |o| {
        matches!(o, Output::Timeout { .. })
    });
    assert!(resent > 0);
}

#[test]
fn a_known_path_mtu_moves_requests_within_200_bytes_of_it() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    l.set_udp_size_rule(Some(1000));
    assert_eq!(l.udp_size_limit(), Some(800));
    let (_, out) = l
        .send_request(t0, padded("MESSAGE", "z9hG4bKmtu1", 900), udp())
        .unwrap();
    assert_eq!(sent_to(&out)[0].0.transport, Transport::Tcp);
    let (_, out) = l
        .send_request(t0, padded("MESSAGE", "z9hG4bKmtu2", 700), udp())
        .unwrap();
    assert_eq!(sent_to(&out)[0].0.transport, Transport::Udp);
}

#[test]
fn refused_tcp_connection_retries_the_large_request_over_udp_with_its_udp_via() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    l.set_udp_size_rule(None);
    let req = padded("INVITE", "z9hG4bKfb1", 1400);
    let (id, out) = l.send_request(t0, req.clone(), udp()).unwrap();
    assert_eq!(sent_to(&out)[0].0.transport, Transport::Tcp);
    // The driver could not connect (RST): §18.1.1 says retry over UDP.
    let t1 = t0 + 20 * MS;
    let out = l.handle_send_failure(t1, TxRef::Client(id));
    let sent = sent_to(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, udp());
    assert_eq!(
        sent[0].1.to_bytes(),
        req.to_bytes(),
        "the original, UDP Via"
    );
    assert_eq!(l.state(TxRef::Client(id)), Some(State::Calling));
    // Now unreliable: Timer A retransmits at T1.
    let (resent, _) = run(&mut l, t1, t1 + 600 * MS, |_| false);
    assert_eq!(resent, 1);
    // The answer over UDP matches the same transaction.
    let out = l.handle_message(t1 + SEC, response_to(&req, 180, Some("b")), udp());
    let out = out.unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Response { id: got, .. } if *got == id))
    );
    // A second failure is an ordinary transport error.
    let out = l.handle_send_failure(t1 + 2 * SEC, TxRef::Client(id));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::TransportError { .. } | Output::Terminated { .. }))
    );
}
