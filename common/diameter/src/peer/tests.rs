//! Peer and table behaviour on a virtual clock: nodes are [`PeerTable`]s joined by an in-memory
//! network that can drop traffic, refuse connections, and record every message.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use imslab_types::{DiameterIdentity, Impi, Impu, Realm};

use super::table::MAX_LEARNED_PEERS;
use super::*;
use crate::answer::Origin;
use crate::base::{Capabilities, VendorSpecificApplicationId};
use crate::codes::{ApplicationId, CommandCode, ResultCode, VendorId};
use crate::cx::Uar;
use crate::header::CommandFlags;
use crate::types::Address;
use crate::{Avp, AvpCode, AvpData, AvpFlags, Message, dict};

const TW: Duration = Duration::from_secs(30);

fn caps(host: &str, realm: &str, cx: bool) -> Capabilities {
    Capabilities {
        origin_host: DiameterIdentity::new(host).expect("valid"),
        origin_realm: Realm::new(realm).expect("valid"),
        host_ip_addresses: vec![Address::V4(Ipv4Addr::LOCALHOST)],
        vendor_id: VendorId(0),
        product_name: "imslab".into(),
        origin_state_id: Some(1),
        supported_vendor_ids: vec![VendorId::TGPP],
        auth_application_ids: vec![],
        inband_security_ids: vec![],
        acct_application_ids: vec![],
        vendor_specific_application_ids: if cx {
            vec![VendorSpecificApplicationId::CX]
        } else {
            vec![]
        },
        firmware_revision: None,
    }
}

/// What a node does with application requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answering {
    Success,
    Never,
}

struct Node {
    table: PeerTable,
    answering: Answering,
    /// Where each peer's Connect goes: another node, or nowhere (refused).
    targets: HashMap<PeerId, usize>,
    requests: Vec<Message>,
    answers: Vec<(RequestId, Message)>,
    failures: Vec<(RequestId, FailReason)>,
    closes: Vec<(Instant, ConnId, CloseReason)>,
    connects: Vec<(Instant, PeerId)>,
    ups: Vec<(Instant, PeerId)>,
    downs: Vec<(Instant, PeerId)>,
}

struct Net {
    now: Instant,
    t0: Instant,
    nodes: Vec<Node>,
    links: HashMap<ConnId, (usize, ConnId)>,
    next_conn: u64,
    /// Traffic sent by these nodes is dropped.
    mute: Vec<bool>,
    /// Nodes that refuse connections.
    down: Vec<bool>,
    /// Every delivered message: (time, from node, to node, message).
    log: Vec<(Instant, usize, usize, Message)>,
}

impl Net {
    fn new() -> Self {
        let t0 = Instant::now();
        Self {
            now: t0,
            t0,
            nodes: vec![],
            links: HashMap::new(),
            next_conn: 1,
            mute: vec![],
            down: vec![],
            log: vec![],
        }
    }

    fn node(&mut self, host: &str, cx: bool, accept_unknown: bool) -> usize {
        let mut cfg = NodeConfig::new(
            caps(host, "ims.example", cx),
            self.nodes.len() as u64 + 7,
            1_700_000_000,
        );
        cfg.accept_unknown_peers = accept_unknown;
        cfg.timers.tw = TW;
        self.nodes.push(Node {
            table: PeerTable::new(cfg),
            answering: Answering::Success,
            targets: HashMap::new(),
            requests: vec![],
            answers: vec![],
            failures: vec![],
            closes: vec![],
            connects: vec![],
            ups: vec![],
            downs: vec![],
        });
        self.mute.push(false);
        self.down.push(false);
        self.nodes.len() - 1
    }

    /// `from` knows `to` as a peer; `initiate` makes `from` connect to it.
    fn peer(&mut self, from: usize, to: usize, initiate: bool) -> PeerId {
        let host = self.nodes[to].table.origin().host.clone();
        let id = self.nodes[from].table.add_peer(PeerSpec {
            host,
            realm: Realm::new("ims.example").expect("valid"),
            initiate,
        });
        self.nodes[from].targets.insert(id, to);
        id
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Delivers everything until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for n in 0..self.nodes.len() {
                while let Some(t) = self.nodes[n].table.poll_transmit() {
                    moved = true;
                    let Some(&(dst, dst_conn)) = self.links.get(&t.conn) else {
                        continue;
                    };
                    if self.mute[n] {
                        continue;
                    }
                    let msg = Message::decode(t.bytes.clone())
                        .expect("our stack sends decodable messages");
                    self.log.push((self.now, n, dst, msg));
                    self.nodes[dst]
                        .table
                        .handle_frame(self.now, dst_conn, t.bytes);
                }
                while let Some(ev) = self.nodes[n].table.poll_event() {
                    moved = true;
                    self.event(n, ev);
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn event(&mut self, n: usize, ev: NodeEvent) {
        let now = self.now;
        match ev {
            NodeEvent::Connect { peer, attempt } => {
                self.nodes[n].connects.push((now, peer));
                let target = self.nodes[n].targets.get(&peer).copied();
                match target {
                    Some(t) if !self.down[t] => {
                        let (a, b) = (ConnId(self.next_conn), ConnId(self.next_conn + 1));
                        self.next_conn += 2;
                        self.links.insert(a, (t, b));
                        self.links.insert(b, (n, a));
                        self.nodes[t].table.handle_accepted(now, b);
                        self.nodes[n].table.handle_connected(now, peer, attempt, a);
                    }
                    _ => self.nodes[n]
                        .table
                        .handle_connect_failed(now, peer, attempt),
                }
            }
            NodeEvent::Close { conn, reason, .. } => {
                self.nodes[n].closes.push((now, conn, reason));
                if let Some((other, oc)) = self.links.remove(&conn) {
                    self.links.remove(&oc);
                    self.nodes[other].table.handle_closed(now, oc);
                }
            }
            NodeEvent::PeerUp { peer } => self.nodes[n].ups.push((now, peer)),
            NodeEvent::PeerDown { peer, .. } => self.nodes[n].downs.push((now, peer)),
            NodeEvent::Request { peer, msg } => {
                self.nodes[n].requests.push(msg.clone());
                if self.nodes[n].answering == Answering::Success {
                    let origin = self.nodes[n].table.origin().clone();
                    let mut ans = Message::answer_to(&msg);
                    ans.push(Avp::utf8(&dict::ORIGIN_HOST, origin.host.as_str()));
                    ans.push(Avp::utf8(&dict::ORIGIN_REALM, origin.realm.as_str()));
                    ans.push(Avp::u32(&dict::RESULT_CODE, 2001));
                    self.nodes[n]
                        .table
                        .send_answer(now, peer, &ans)
                        .expect("answer sent");
                }
            }
            NodeEvent::Answer { id, msg } => self.nodes[n].answers.push((id, msg)),
            NodeEvent::RequestFailed { id, reason } => self.nodes[n].failures.push((id, reason)),
            NodeEvent::Rejected { .. } => {}
        }
    }

    fn start(&mut self) {
        for n in 0..self.nodes.len() {
            self.nodes[n].table.start(self.now);
        }
        self.settle();
    }

    /// Runs the virtual clock forward by `d`, firing timers in order.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.settle();
        loop {
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.table.poll_timeout())
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for n in 0..self.nodes.len() {
                        if self.nodes[n]
                            .table
                            .poll_timeout()
                            .is_some_and(|x| x <= self.now)
                        {
                            self.nodes[n].table.handle_timeout(self.now);
                        }
                    }
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn sent(&self, from: usize, code: CommandCode, request: bool) -> Vec<&Message> {
        self.log
            .iter()
            .filter(|(_, f, _, m)| *f == from && m.header.code == code && m.is_request() == request)
            .map(|(_, _, _, m)| m)
            .collect()
    }

    fn state(&self, n: usize, p: PeerId) -> PeerState {
        self.nodes[n].table.peer(p).expect("peer").state()
    }

    fn available(&self, n: usize, p: PeerId) -> bool {
        self.nodes[n].table.peer(p).expect("peer").is_available()
    }
}

fn uar(to_realm: &str) -> Message {
    Uar {
        session_id: "icscf.ims.example;1;1".into(),
        origin_host: DiameterIdentity::new("icscf.ims.example").expect("valid"),
        origin_realm: Realm::new("ims.example").expect("valid"),
        destination_host: None,
        destination_realm: Realm::new(to_realm).expect("valid"),
        user_name: Impi::new("alice@ims.example").expect("valid"),
        supported_features: vec![],
        public_identity: Impu::new("sip:alice@ims.example").expect("valid"),
        visited_network_identifier: Bytes::from_static(b"ims.example"),
        user_authorization_type: None,
        uar_flags: None,
        extra: vec![],
        proxy_info: vec![],
        route_record: vec![],
    }
    .to_message()
}

fn result_code(m: &Message) -> Option<u32> {
    m.find(&dict::RESULT_CODE).and_then(|a| a.as_u32().ok())
}

/// Client `a` connects to server `b`.
fn client_server() -> (Net, usize, usize, PeerId, PeerId) {
    let mut net = Net::new();
    let a = net.node("icscf.ims.example", true, false);
    let b = net.node("hss.ims.example", true, false);
    let pa = net.peer(a, b, true);
    let pb = net.peer(b, a, false);
    let realm = Realm::new("ims.example").expect("valid");
    net.nodes[a].table.add_route(realm, vec![pa]);
    (net, a, b, pa, pb)
}

#[test]
fn cer_cea_opens_both_sides_and_peers_come_up() {
    let (mut net, a, b, pa, pb) = client_server();
    net.start();
    assert_eq!(net.state(a, pa), PeerState::IOpen);
    assert_eq!(net.state(b, pb), PeerState::ROpen);
    assert!(net.available(a, pa) && net.available(b, pb));
    let cer = net.sent(a, CommandCode::CAPABILITIES_EXCHANGE, true);
    let cea = net.sent(b, CommandCode::CAPABILITIES_EXCHANGE, false);
    assert_eq!((cer.len(), cea.len()), (1, 1));
    assert_eq!(result_code(cea[0]), Some(2001));
    assert_eq!(cea[0].header.hop_by_hop, cer[0].header.hop_by_hop);
    let remote = net.nodes[a]
        .table
        .peer(pa)
        .and_then(|p| p.remote())
        .expect("exchanged");
    assert_eq!(
        remote.vendor_specific_application_ids,
        vec![VendorSpecificApplicationId::CX]
    );
}

#[test]
fn no_common_application_is_answered_5010_and_the_client_backs_off() {
    let mut net = Net::new();
    let a = net.node("icscf.ims.example", true, false);
    let b = net.node("hss.ims.example", false, false);
    let pa = net.peer(a, b, true);
    net.peer(b, a, false);
    net.start();
    let cea = net.sent(b, CommandCode::CAPABILITIES_EXCHANGE, false);
    assert_eq!(result_code(cea[0]), Some(5010));
    assert_eq!(net.state(a, pa), PeerState::Closed);
    assert!(net.nodes[a].closes.iter().any(
        |(_, _, r)| *r == CloseReason::CeaRejected(ResultCode::DIAMETER_NO_COMMON_APPLICATION)
    ));
    assert!(
        net.nodes[b]
            .closes
            .iter()
            .any(|(_, _, r)| *r == CloseReason::NoCommonApplication)
    );
    net.run_for(Duration::from_secs(100));
    let times: Vec<u64> = net.nodes[a]
        .connects
        .iter()
        .map(|(t, _)| (*t - net.t0).as_secs())
        .collect();
    assert_eq!(
        &times[..7],
        &[0, 1, 3, 7, 15, 31, 61],
        "exponential back-off capped at Tc = 30 s"
    );
}

#[test]
fn refused_connections_are_retried_with_back_off() {
    let (mut net, a, b, pa, _) = client_server();
    net.down[b] = true;
    net.start();
    net.run_for(Duration::from_secs(40));
    assert_eq!(net.state(a, pa), PeerState::Closed);
    net.down[b] = false;
    net.run_for(Duration::from_secs(40));
    assert_eq!(net.state(a, pa), PeerState::IOpen);
    assert!(net.nodes[a].connects.len() >= 6);
}

#[test]
fn idle_connection_exchanges_dwr_dwa_every_tw_and_stays_up() {
    let (mut net, a, b, pa, pb) = client_server();
    net.start();
    net.run_for(Duration::from_secs(125));
    let dwrs = net.sent(a, CommandCode::DEVICE_WATCHDOG, true).len()
        + net.sent(b, CommandCode::DEVICE_WATCHDOG, true).len();
    let dwas = net.sent(a, CommandCode::DEVICE_WATCHDOG, false).len()
        + net.sent(b, CommandCode::DEVICE_WATCHDOG, false).len();
    assert!(dwrs >= 4, "{dwrs} DWRs in 125 s");
    assert_eq!(dwrs, dwas);
    assert!(net.available(a, pa) && net.available(b, pb));
    // Tw is 30 s +/- 2 s: no DWR before 28 s.
    let first = net
        .log
        .iter()
        .find(|(_, _, _, m)| m.header.code == CommandCode::DEVICE_WATCHDOG)
        .expect("a DWR");
    assert!(first.0 - net.t0 >= Duration::from_secs(28));
}

#[test]
fn silent_peer_is_suspected_then_closed_then_reopened_after_three_dwas() {
    let (mut net, a, b, pa, _) = client_server();
    net.start();
    net.mute[b] = true;
    net.run_for(Duration::from_secs(64));
    // DWR at ~Tw, SUSPECT at ~2 Tw.
    assert!(!net.available(a, pa));
    assert_eq!(net.nodes[a].downs.len(), 1);
    let down_at = net.nodes[a].downs[0].0 - net.t0;
    assert!(
        down_at >= Duration::from_secs(56) && down_at <= Duration::from_secs(64),
        "{down_at:?}"
    );
    net.run_for(Duration::from_secs(32));
    assert!(
        net.nodes[a]
            .closes
            .iter()
            .any(|(_, _, r)| *r == CloseReason::WatchdogExpired)
    );
    net.mute[b] = false;
    for _ in 0..30 {
        if net.state(a, pa) == PeerState::IOpen {
            break;
        }
        net.run_for(Duration::from_secs(1));
    }
    assert_eq!(net.state(a, pa), PeerState::IOpen, "reconnected");
    assert!(
        !net.available(a, pa),
        "REOPEN: not usable before three DWAs"
    );
    let reopened = net.now;
    net.run_for(Duration::from_secs(100));
    assert!(net.available(a, pa));
    let up = net.nodes[a].ups.last().expect("up again").0;
    assert!(
        up - reopened >= Duration::from_secs(50),
        "three watchdog rounds: {:?}",
        up - reopened
    );
}

#[test]
fn stop_sends_dpr_the_peer_answers_dpa_and_nobody_reconnects() {
    let (mut net, a, b, pa, pb) = client_server();
    net.start();
    net.nodes[a].table.stop(net.now);
    net.settle();
    assert_eq!(net.sent(a, CommandCode::DISCONNECT_PEER, true).len(), 1);
    assert_eq!(net.sent(b, CommandCode::DISCONNECT_PEER, false).len(), 1);
    assert_eq!(net.state(a, pa), PeerState::Closed);
    assert_eq!(net.state(b, pb), PeerState::Closed);
    assert!(
        net.nodes[b]
            .closes
            .iter()
            .any(|(_, _, r)| matches!(r, CloseReason::DisconnectRequested(_)))
    );
    net.run_for(Duration::from_secs(120));
    assert_eq!(net.nodes[a].connects.len(), 1, "no reconnection after stop");
}

#[test]
fn answers_are_matched_by_hop_by_hop_id() {
    let (mut net, a, b, _, _) = client_server();
    net.start();
    let id1 = net.nodes[a]
        .table
        .send_request(net.now, uar("ims.example"), None)
        .expect("routed");
    let id2 = net.nodes[a]
        .table
        .send_request(net.now, uar("ims.example"), None)
        .expect("routed");
    net.settle();
    assert_eq!(net.nodes[b].requests.len(), 2);
    let answers = &net.nodes[a].answers;
    assert_eq!(
        answers.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![id1, id2]
    );
    let reqs = net.sent(a, CommandCode::USER_AUTHORIZATION, true);
    for ((_, ans), req) in answers.iter().zip(reqs) {
        assert_eq!(ans.header.hop_by_hop, req.header.hop_by_hop);
        assert_eq!(ans.header.end_to_end, req.header.end_to_end);
    }
    assert_eq!(net.nodes[a].table.outstanding(), 0);
}

#[test]
fn request_without_answer_fails_at_its_deadline() {
    let (mut net, a, b, _, _) = client_server();
    net.nodes[b].answering = Answering::Never;
    net.start();
    let id = net.nodes[a]
        .table
        .send_request(net.now, uar("ims.example"), Some(Duration::from_secs(3)))
        .expect("routed");
    net.run_for(Duration::from_secs(2));
    assert!(net.nodes[a].failures.is_empty());
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.nodes[a].failures, vec![(id, FailReason::Timeout)]);
    assert_eq!(net.nodes[a].table.outstanding(), 0);
}

#[test]
fn request_for_an_unserved_realm_has_no_route() {
    let (mut net, a, _, _, _) = client_server();
    net.start();
    let err = net.nodes[a]
        .table
        .send_request(net.now, uar("elsewhere.example"), None)
        .expect_err("no route");
    assert!(matches!(err, crate::Error::NoRoute { .. }));
    assert_eq!(err.result_code(), ResultCode::DIAMETER_UNABLE_TO_DELIVER);
}

#[test]
fn failover_resends_to_the_next_peer_with_t_flag_and_same_end_to_end_id() {
    let mut net = Net::new();
    let a = net.node("icscf.ims.example", true, false);
    let b1 = net.node("hss1.ims.example", true, true);
    let b2 = net.node("hss2.ims.example", true, true);
    let p1 = net.peer(a, b1, true);
    let p2 = net.peer(a, b2, true);
    net.nodes[a]
        .table
        .add_route(Realm::new("ims.example").expect("valid"), vec![p1, p2]);
    net.start();
    net.mute[b1] = true;
    let id = net.nodes[a]
        .table
        .send_request(net.now, uar("ims.example"), Some(Duration::from_secs(120)))
        .expect("routed");
    net.run_for(Duration::from_secs(70));
    assert_eq!(net.nodes[b1].requests.len(), 1);
    assert_eq!(net.nodes[b2].requests.len(), 1);
    let first = &net.nodes[b1].requests[0];
    let retry = &net.nodes[b2].requests[0];
    assert!(!first.header.flags.retransmit());
    assert!(retry.header.flags.retransmit());
    assert_eq!(first.header.end_to_end, retry.header.end_to_end);
    assert_eq!(
        net.nodes[a]
            .answers
            .iter()
            .map(|(i, _)| *i)
            .collect::<Vec<_>>(),
        vec![id]
    );
    assert!(net.nodes[a].failures.is_empty());
}

#[test]
fn duplicate_request_is_answered_from_the_cache() {
    let (mut net, a, b, _, _) = client_server();
    net.start();
    net.nodes[a]
        .table
        .send_request(net.now, uar("ims.example"), None)
        .expect("routed");
    net.settle();
    let (_, _, _, first) = net
        .log
        .iter()
        .find(|(_, f, _, m)| *f == a && m.header.code == CommandCode::USER_AUTHORIZATION)
        .cloned()
        .expect("sent");
    // The same request again, as after a failover: T bit, same End-to-End id, new Hop-by-Hop id.
    let mut dup = first.clone();
    dup.header.flags = dup.header.flags.with(CommandFlags::RETRANSMIT, true);
    dup.header.hop_by_hop = first.header.hop_by_hop.wrapping_add(1000);
    let conn = *net
        .links
        .keys()
        .find(|c| net.nodes[b].table.owner(**c).is_some())
        .expect("b's conn");
    net.nodes[b]
        .table
        .handle_frame(net.now, conn, dup.encode().expect("encodes"));
    net.settle();
    assert_eq!(
        net.nodes[b].requests.len(),
        1,
        "the application saw the request once"
    );
    let answers: Vec<_> = net
        .log
        .iter()
        .filter(|(_, f, _, m)| *f == b && m.header.code == CommandCode::USER_AUTHORIZATION)
        .map(|(_, _, _, m)| m)
        .collect();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[1].header.hop_by_hop, dup.header.hop_by_hop);
    assert_eq!(answers[1].avps, answers[0].avps);
}

#[test]
fn answered_requests_leave_no_duplicate_bookkeeping_behind() {
    let (mut net, a, b, _, _) = client_server();
    net.start();
    for _ in 0..200 {
        net.nodes[a]
            .table
            .send_request(net.now, uar("ims.example"), None)
            .expect("routed");
        net.settle();
    }
    assert_eq!(net.nodes[a].answers.len(), 200);
    let (awaiting, records) = net.nodes[b].table.awaiting_bookkeeping();
    assert_eq!(awaiting, 0, "every request was answered");
    assert!(
        records <= 1,
        "{records} records kept for 200 answered requests"
    );
}

#[test]
fn unknown_peer_is_refused_with_3010() {
    let mut net = Net::new();
    let a = net.node("stranger.ims.example", true, false);
    let b = net.node("hss.ims.example", true, false);
    net.peer(a, b, true);
    net.start();
    let cea = net.sent(b, CommandCode::CAPABILITIES_EXCHANGE, false);
    assert_eq!(result_code(cea[0]), Some(3010));
    assert!(cea[0].header.flags.error());
    assert!(
        net.nodes[b].closes.iter().any(
            |(_, _, r)| matches!(r, CloseReason::UnknownPeer(h) if h == "stranger.ims.example")
        )
    );
}

#[test]
fn hosts_learned_from_unknown_cers_are_bounded() {
    // With accept_unknown_peers every new Origin-Host becomes a peer; a client inventing hosts
    // must not grow the table without bound.
    let mut net = Net::new();
    let b = net.node("hss.ims.example", true, true);
    net.start();
    let table = &mut net.nodes[b].table;
    for i in 0..(MAX_LEARNED_PEERS as u64 + 50) {
        let conn = ConnId(1_000 + i);
        let cer = crate::base::Cer {
            capabilities: caps(&format!("client{i}.ims.example"), "ims.example", true),
            extra: vec![],
        };
        table.handle_accepted(net.now, conn);
        table.handle_frame(net.now, conn, cer.to_message().encode().expect("encodes"));
        table.handle_closed(net.now, conn);
    }
    assert_eq!(table.peer_ids().count(), MAX_LEARNED_PEERS);
    let refused = std::iter::from_fn(|| table.poll_event())
        .filter(|e| {
            matches!(
                e,
                NodeEvent::Close {
                    reason: CloseReason::UnknownPeer(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(refused, 50);
}

#[test]
fn simultaneous_connections_are_resolved_by_election() {
    let mut net = Net::new();
    let a = net.node("aaa.ims.example", true, false);
    let b = net.node("bbb.ims.example", true, false);
    let pa = net.peer(a, b, true);
    let pb = net.peer(b, a, true);
    net.start();
    net.settle();
    assert!(net.state(a, pa).is_open() && net.state(b, pb).is_open());
    // bbb has the higher Origin-Host: it keeps the connection it accepted (R-Open), and aaa keeps
    // the one it initiated (I-Open).
    assert_eq!(net.state(b, pb), PeerState::ROpen);
    assert_eq!(net.state(a, pa), PeerState::IOpen);
    assert_eq!(net.links.len(), 2, "one connection left (two ends)");
    assert!(
        net.nodes[b]
            .closes
            .iter()
            .any(|(_, _, r)| *r == CloseReason::ElectionLost)
    );
    // And it works.
    net.nodes[a]
        .table
        .add_route(Realm::new("ims.example").expect("valid"), vec![pa]);
    net.nodes[a]
        .table
        .send_request(net.now, uar("ims.example"), None)
        .expect("routed");
    net.settle();
    assert_eq!(net.nodes[a].answers.len(), 1);
}

#[test]
fn accepted_connection_without_cer_is_closed_after_the_timeout() {
    let (mut net, _, b, _, _) = client_server();
    net.nodes[b].table.handle_accepted(net.now, ConnId(999));
    net.run_for(Duration::from_secs(9));
    assert!(net.nodes[b].closes.is_empty());
    net.run_for(Duration::from_secs(2));
    assert_eq!(
        net.nodes[b]
            .closes
            .iter()
            .map(|(_, c, r)| (*c, r.clone()))
            .collect::<Vec<_>>(),
        vec![(ConnId(999), CloseReason::CerTimeout)]
    );
}

#[test]
fn first_message_other_than_cer_closes_the_connection() {
    let (mut net, _, b, _, _) = client_server();
    net.nodes[b].table.handle_accepted(net.now, ConnId(999));
    net.nodes[b].table.handle_frame(
        net.now,
        ConnId(999),
        uar("ims.example").encode().expect("encodes"),
    );
    net.settle();
    assert_eq!(
        net.nodes[b].closes.last().map(|(_, c, r)| (*c, r.clone())),
        Some((ConnId(999), CloseReason::NotCer))
    );
}

#[test]
fn cea_timeout_closes_and_retries() {
    let (mut net, a, b, pa, _) = client_server();
    net.mute[b] = true;
    net.start();
    assert_eq!(net.state(a, pa), PeerState::WaitICea);
    net.run_for(Duration::from_secs(11));
    assert!(
        net.nodes[a]
            .closes
            .iter()
            .any(|(_, _, r)| *r == CloseReason::CeaTimeout)
    );
    assert!(net.nodes[a].connects.len() >= 2);
}

#[test]
fn invalid_requests_are_answered_by_the_table_not_the_application() {
    let (mut net, a, b, _, _) = client_server();
    net.start();
    let mut req = uar("ims.example");
    req.push(Avp::new(
        AvpCode(4242),
        None,
        AvpFlags::M,
        AvpData::Octets(b"?".into()),
    ));
    let id = net.nodes[a]
        .table
        .send_request(net.now, req, None)
        .expect("routed");
    net.settle();
    assert!(net.nodes[b].requests.is_empty());
    let (got, ans) = net.nodes[a].answers.last().expect("answered");
    assert_eq!(*got, id);
    assert_eq!(result_code(ans), Some(5001));
}

#[test]
fn answer_with_unknown_hop_by_hop_is_dropped() {
    let (mut net, a, _, pa, _) = client_server();
    net.start();
    let conn = net.nodes[a]
        .table
        .peer(pa)
        .and_then(Peer::open_conn)
        .expect("open");
    let mut stray = Message::request(CommandCode::USER_AUTHORIZATION, ApplicationId::CX, true);
    stray.header = stray.header.answer();
    stray.header.hop_by_hop = 0xdead_beef;
    net.nodes[a]
        .table
        .handle_frame(net.now, conn, stray.encode().expect("encodes"));
    net.settle();
    assert!(net.nodes[a].answers.is_empty());
}

#[test]
fn origin_in_answers_is_the_answering_node() {
    let (mut net, a, _, _, _) = client_server();
    net.start();
    net.nodes[a]
        .table
        .send_request(net.now, uar("ims.example"), None)
        .expect("routed");
    net.settle();
    let origin = Origin {
        host: DiameterIdentity::new("hss.ims.example").expect("valid"),
        realm: Realm::new("ims.example").expect("valid"),
    };
    let (_, ans) = &net.nodes[a].answers[0];
    assert_eq!(
        ans.find(&dict::ORIGIN_HOST).and_then(|x| x.as_utf8().ok()),
        Some(origin.host.as_str())
    );
    assert!(net.elapsed() < Duration::from_secs(1));
}
