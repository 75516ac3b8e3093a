use std::time::Duration;

use imslab_config::PgwConfig;

use super::*;
use crate::gtpv2::ie::{Ambr, Apn, RatType};
use crate::gtpv2::msg::BearerContextToCreate;
use crate::pco::{Container, ContainerId};

const SGW: &str = "127.0.0.2:2123";

fn settings() -> Settings {
    Settings::from_config(&PgwConfig::default()).unwrap()
}

fn pgw() -> Pgw {
    Pgw::new(settings(), 7)
}

fn sgw() -> SocketAddr {
    SGW.parse().unwrap()
}

fn pco_request(ids: &[ContainerId]) -> Vec<u8> {
    let p = Pco {
        header: 0x80,
        containers: ids.iter().map(|i| Container::new(*i, vec![])).collect(),
    };
    p.to_bytes(Direction::MsToNetwork).unwrap()
}

fn csr(imsi: &str, apn: &str, pdn: PdnType) -> CreateSessionRequest {
    CreateSessionRequest {
        imsi: Imsi::new(imsi).unwrap(),
        msisdn: Some(Msisdn::new("15550001").unwrap()),
        mei: None,
        serving_network: None,
        rat_type: RatType(6),
        sender_fteid: Fteid {
            interface_type: interface::S5S8_SGW_GTPC,
            teid: 0xabc,
            ipv4: Some(Ipv4Addr::new(127, 0, 0, 2)),
            ipv6: None,
        },
        apn: Apn(apn.into()),
        selection_mode: None,
        pdn_type: Some(pdn),
        paa: None,
        apn_ambr: Some(Ambr {
            uplink_kbps: 5000,
            downlink_kbps: 10000,
        }),
        indication: None,
        pco: Some(pco_request(&[
            ContainerId::PCSCF_IPV4,
            ContainerId::PCSCF_IPV6,
            ContainerId::DNS_IPV4,
            ContainerId::IPV4_LINK_MTU,
        ])),
        apco: None,
        epco: None,
        bearer_contexts: vec![BearerContextToCreate {
            ebi: Ebi(5),
            qos: BearerQos {
                arp: 0x24,
                qci: 5,
                mbr_ul: 0,
                mbr_dl: 0,
                gbr_ul: 0,
                gbr_dl: 0,
            },
            sgw_u: Some(Fteid {
                interface_type: interface::S5S8_SGW_GTPU,
                teid: 0xdef,
                ipv4: Some(Ipv4Addr::new(127, 0, 0, 2)),
                ipv6: None,
            }),
        }],
        recovery: None,
    }
}

fn send(p: &mut Pgw, now: Instant, m: &Message) -> (Message, Output) {
    let out = p.handle_datagram(now, sgw(), &m.to_bytes().unwrap());
    assert_eq!(out.transmit.len(), 1, "expected one answer: {out:?}");
    let (reply, _) = Message::decode(&out.transmit[0].bytes).unwrap();
    (reply, out)
}

fn create(
    p: &mut Pgw,
    now: Instant,
    req: &CreateSessionRequest,
    seq: u32,
) -> (CreateSessionResponse, Output) {
    let (m, out) = send(p, now, &req.to_message(seq));
    assert_eq!(m.header.message_type, MessageType::CREATE_SESSION_RESPONSE);
    assert_eq!(m.header.sequence, seq);
    (CreateSessionResponse::from_message(&m).unwrap(), out)
}

fn cause_of(m: &Message) -> Cause {
    Cause::from_ie(m.ie(IeType::CAUSE, 0).unwrap()).unwrap()
}

#[test]
fn create_session_on_ims_hands_out_pcscf_v4_and_v6_in_the_pco() {
    let mut p = pgw();
    let (r, out) = create(
        &mut p,
        Instant::now(),
        &csr("001010000000001", "ims", PdnType::IPV4V6),
        1,
    );
    assert_eq!(r.cause.value, CauseValue::REQUEST_ACCEPTED);
    let pco = Pco::decode(r.pco.as_ref().unwrap(), Direction::NetworkToMs).unwrap();
    assert_eq!(
        pco.all(ContainerId::PCSCF_IPV4).collect::<Vec<_>>(),
        vec![&[10, 46, 0, 1][..]]
    );
    let v6: Ipv6Addr = "2001:db8:46::1".parse().unwrap();
    assert_eq!(
        pco.all(ContainerId::PCSCF_IPV6).collect::<Vec<_>>(),
        vec![&v6.octets()[..]]
    );
    assert_eq!(
        pco.all(ContainerId::IPV4_LINK_MTU).next().unwrap(),
        1400u16.to_be_bytes()
    );
    let ev = out.events.iter().find(|e| e.step == "pco").unwrap();
    assert_eq!(ev.outcome, Outcome::Ok);
    assert!(ev.reason.as_ref().unwrap().contains("10.46.0.1"), "{ev:?}");
    let s = &p.sessions()[0];
    assert_eq!(s.pcscf, vec![IpAddr::from([10, 46, 0, 1]), IpAddr::V6(v6)]);
    assert_eq!(s.apn, "ims");
}

#[test]
fn create_session_allocates_ipv4v6_teids_charging_id_and_echoes_qos() {
    let mut p = pgw();
    let req = csr("001010000000001", "ims", PdnType::IPV4V6);
    let (r, out) = create(&mut p, Instant::now(), &req, 1);
    let paa = r.paa.unwrap();
    assert_eq!(paa.pdn_type, PdnType::IPV4V6);
    assert_eq!(paa.ipv4, Some(Ipv4Addr::new(10, 46, 0, 2)));
    let (plen, v6) = paa.ipv6.unwrap();
    assert_eq!(plen, 64);
    assert_eq!(v6, "2001:db8:46:1::1".parse::<Ipv6Addr>().unwrap());
    let c = r.pgw_fteid.unwrap();
    assert_eq!(
        (c.interface_type, c.ipv4),
        (interface::S5S8_PGW_GTPC, Some(Ipv4Addr::LOCALHOST))
    );
    let bc = &r.bearer_contexts[0];
    assert_eq!(bc.ebi, Ebi(5));
    assert_eq!(bc.qos, Some(req.bearer_contexts[0].qos));
    assert_eq!(bc.pgw_u.unwrap().interface_type, interface::S5S8_PGW_GTPU);
    assert_ne!(bc.pgw_u.unwrap().teid, c.teid);
    assert!(bc.charging_id.is_some());
    assert_eq!(r.apn_ambr, req.apn_ambr);
    assert_eq!(r.recovery, Some(Recovery(7)));
    assert_eq!(
        out.tunnels,
        vec![TunnelUpdate::Up {
            pgw_teid: bc.pgw_u.unwrap().teid,
            sgw: req.bearer_contexts[0].sgw_u.unwrap(),
            ipv4: paa.ipv4,
            ipv6_prefix: Some("2001:db8:46:1::".parse().unwrap()),
        }]
    );
}

#[test]
fn answer_goes_to_the_sgw_teid_from_its_sender_fteid() {
    let mut p = pgw();
    let (m, _) = send(
        &mut p,
        Instant::now(),
        &csr("001010000000001", "ims", PdnType::IPV4).to_message(3),
    );
    assert_eq!(m.header.teid, Some(0xabc));
}

#[test]
fn missing_imsi_is_rejected_with_cause_70_naming_the_imsi() {
    let mut p = pgw();
    let mut m = csr("001010000000001", "ims", PdnType::IPV4).to_message(1);
    m.ies.retain(|ie| ie.ie_type != IeType::IMSI);
    let (reply, out) = send(&mut p, Instant::now(), &m);
    let c = cause_of(&reply);
    assert_eq!(c.value, CauseValue::MANDATORY_IE_MISSING);
    assert_eq!(
        c.offending,
        Some(OffendingIe {
            ie_type: IeType::IMSI,
            instance: 0
        })
    );
    assert_eq!(out.events[0].outcome, Outcome::Failed);
    assert_eq!(p.session_count(), 0);
}

#[test]
fn undecodable_imsi_is_rejected_with_cause_69() {
    let mut p = pgw();
    let mut m = csr("001010000000001", "ims", PdnType::IPV4).to_message(1);
    for ie in &mut m.ies {
        if ie.ie_type == IeType::IMSI {
            ie.value = crate::gtpv2::IeValue::Raw(vec![0xaa]);
        }
    }
    let (reply, _) = send(&mut p, Instant::now(), &m);
    assert_eq!(cause_of(&reply).value, CauseValue::MANDATORY_IE_INCORRECT);
}

#[test]
fn unknown_apn_is_rejected_with_cause_78_and_a_failed_pco_event() {
    let mut p = pgw();
    let (r, out) = create(
        &mut p,
        Instant::now(),
        &csr("001010000000001", "corporate", PdnType::IPV4),
        1,
    );
    assert_eq!(r.cause.value, CauseValue::MISSING_OR_UNKNOWN_APN);
    let ev = out.events.iter().find(|e| e.step == "pco").unwrap();
    assert_eq!(ev.outcome, Outcome::Failed);
    assert!(ev.reason.as_ref().unwrap().contains("unknown APN"));
}

#[test]
fn apn_with_operator_identifier_matches_the_configured_apn() {
    let mut p = pgw();
    let (r, _) = create(
        &mut p,
        Instant::now(),
        &csr("001010000000001", "IMS.mnc001.mcc001.gprs", PdnType::IPV4),
        1,
    );
    assert_eq!(r.cause.value, CauseValue::REQUEST_ACCEPTED);
}

#[test]
fn exhausted_pool_is_rejected_with_cause_84() {
    let mut s = settings();
    s.apns[0].ipv4_pool = Some((Ipv4Addr::new(10, 9, 0, 0), 30));
    let mut p = Pgw::new(s, 1);
    let now = Instant::now();
    let (r, _) = create(
        &mut p,
        now,
        &csr("001010000000001", "ims", PdnType::IPV4),
        1,
    );
    assert_eq!(r.paa.unwrap().ipv4, Some(Ipv4Addr::new(10, 9, 0, 2)));
    let (r, _) = create(
        &mut p,
        now,
        &csr("001010000000002", "ims", PdnType::IPV4),
        2,
    );
    assert_eq!(r.cause.value, CauseValue::ALL_DYNAMIC_ADDRESSES_OCCUPIED);
}

#[test]
fn deleted_session_frees_its_address() {
    let mut s = settings();
    s.apns[0].ipv4_pool = Some((Ipv4Addr::new(10, 9, 0, 0), 30));
    let mut p = Pgw::new(s, 1);
    let now = Instant::now();
    let (r, _) = create(
        &mut p,
        now,
        &csr("001010000000001", "ims", PdnType::IPV4),
        1,
    );
    let teid = r.pgw_fteid.unwrap().teid;
    let dsr = DeleteSessionRequest {
        linked_ebi: Some(Ebi(5)),
        indication: None,
        pco: None,
    };
    let (reply, out) = send(&mut p, now, &dsr.to_message(teid, 2));
    assert_eq!(
        reply.header.message_type,
        MessageType::DELETE_SESSION_RESPONSE
    );
    assert_eq!(reply.header.teid, Some(0xabc));
    assert_eq!(cause_of(&reply).value, CauseValue::REQUEST_ACCEPTED);
    assert!(matches!(out.tunnels[0], TunnelUpdate::Down { .. }));
    assert_eq!(p.session_count(), 0);
    let (r, _) = create(
        &mut p,
        now,
        &csr("001010000000002", "ims", PdnType::IPV4),
        3,
    );
    assert_eq!(r.paa.unwrap().ipv4, Some(Ipv4Addr::new(10, 9, 0, 2)));
}

#[test]
fn delete_or_modify_of_unknown_teid_is_context_not_found_with_teid_zero() {
    let mut p = pgw();
    let dsr = DeleteSessionRequest {
        linked_ebi: None,
        indication: None,
        pco: None,
    };
    let (reply, _) = send(&mut p, Instant::now(), &dsr.to_message(0x4242, 1));
    assert_eq!(cause_of(&reply).value, CauseValue::CONTEXT_NOT_FOUND);
    assert_eq!(reply.header.teid, Some(0));
    let mbr = Message::new(Header::new(
        MessageType::MODIFY_BEARER_REQUEST,
        Some(0x4242),
        2,
    ));
    let (reply, _) = send(&mut p, Instant::now(), &mbr);
    assert_eq!(
        reply.header.message_type,
        MessageType::MODIFY_BEARER_RESPONSE
    );
    assert_eq!(cause_of(&reply).value, CauseValue::CONTEXT_NOT_FOUND);
}

#[test]
fn retransmitted_create_session_is_answered_from_the_cache_not_processed_twice() {
    let mut p = pgw();
    let now = Instant::now();
    let wire = csr("001010000000001", "ims", PdnType::IPV4)
        .to_message(77)
        .to_bytes()
        .unwrap();
    let first = p.handle_datagram(now, sgw(), &wire);
    let again = p.handle_datagram(now + Duration::from_secs(3), sgw(), &wire);
    assert_eq!(first.transmit, again.transmit);
    assert!(again.events.is_empty() && again.tunnels.is_empty());
    assert_eq!(p.session_count(), 1);
    // After the cache lifetime the same sequence number is a new request.
    let later = p.handle_datagram(now + Duration::from_secs(31), sgw(), &wire);
    assert!(!later.events.is_empty());
}

#[test]
fn retransmission_cache_is_bounded() {
    let mut s = settings();
    s.retransmit_cache_size = 4;
    let mut p = Pgw::new(s, 1);
    let now = Instant::now();
    for seq in 0..20 {
        let wire = msg::echo(MessageType::ECHO_REQUEST, seq, Recovery(1))
            .to_bytes()
            .unwrap();
        p.handle_datagram(now, sgw(), &wire);
    }
    assert_eq!(p.cached_answers(), 4);
}

#[test]
fn echo_response_carries_our_restart_counter() {
    let mut p = pgw();
    let (reply, _) = send(
        &mut p,
        Instant::now(),
        &msg::echo(MessageType::ECHO_REQUEST, 9, Recovery(200)),
    );
    assert_eq!(reply.header.message_type, MessageType::ECHO_RESPONSE);
    assert_eq!(reply.header.teid, None);
    assert_eq!(
        Recovery::from_ie(reply.ie(IeType::RECOVERY, 0).unwrap()).unwrap(),
        Recovery(7)
    );
}

#[test]
fn static_address_is_given_to_its_imsi_and_never_to_others() {
    let mut s = settings();
    s.apns[0].ipv4_pool = Some((Ipv4Addr::new(10, 9, 0, 0), 29));
    let fixed = Ipv4Addr::new(10, 9, 0, 2);
    s.apns[0]
        .statics
        .insert(Imsi::new("001010000000009").unwrap(), (Some(fixed), None));
    let mut p = Pgw::new(s, 1);
    let now = Instant::now();
    let (r, _) = create(
        &mut p,
        now,
        &csr("001010000000001", "ims", PdnType::IPV4),
        1,
    );
    assert_eq!(r.paa.unwrap().ipv4, Some(Ipv4Addr::new(10, 9, 0, 3)));
    let (r, _) = create(
        &mut p,
        now,
        &csr("001010000000009", "ims", PdnType::IPV4),
        2,
    );
    assert_eq!(r.paa.unwrap().ipv4, Some(fixed));
}

#[test]
fn round_robin_rotates_and_imsi_hash_is_stable() {
    let mut s = settings();
    s.apns[0].pco.pcscf_v4 = vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
    s.apns[0].pco.pcscf_per_answer = 1;
    let mut p = Pgw::new(s.clone(), 1);
    let now = Instant::now();
    let firsts: Vec<IpAddr> = (1..=3)
        .map(|i| {
            create(
                &mut p,
                now,
                &csr(&format!("00101000000000{i}"), "ims", PdnType::IPV4),
                i,
            );
            p.sessions()
                .into_iter()
                .find(|x| x.imsi.as_str().ends_with(&i.to_string()))
                .unwrap()
                .pcscf[0]
        })
        .collect();
    assert_eq!(
        firsts,
        vec![
            IpAddr::from([10, 0, 0, 1]),
            IpAddr::from([10, 0, 0, 2]),
            IpAddr::from([10, 0, 0, 1])
        ]
    );
    s.apns[0].selection = Selection::ImsiHash;
    let mut p = Pgw::new(s, 1);
    let pick = |p: &mut Pgw, seq| {
        create(p, now, &csr("001010000000005", "ims", PdnType::IPV4), seq);
        p.sessions()[0].pcscf.clone()
    };
    let a = pick(&mut p, 1);
    let b = pick(&mut p, 2);
    assert_eq!(a, b);
    assert_eq!(
        p.session_count(),
        1,
        "the second request replaced the first session"
    );
}

#[test]
fn request_without_pcscf_containers_gives_an_info_event() {
    let mut p = pgw();
    let mut req = csr("001010000000001", "internet", PdnType::IPV4);
    req.pco = Some(pco_request(&[ContainerId::DNS_IPV4]));
    let (_, out) = create(&mut p, Instant::now(), &req, 1);
    let ev = out.events.iter().find(|e| e.step == "pco").unwrap();
    assert_eq!(ev.outcome, Outcome::Info);
    assert_eq!(
        ev.reason.as_deref(),
        Some("no P-CSCF requested in PCO (APN internet)")
    );
}

#[test]
fn pcscf_request_on_an_apn_without_pcscf_is_a_failed_pco_event() {
    let mut p = pgw();
    let (_, out) = create(
        &mut p,
        Instant::now(),
        &csr("001010000000001", "internet", PdnType::IPV4),
        1,
    );
    let ev = out.events.iter().find(|e| e.step == "pco").unwrap();
    assert_eq!(ev.outcome, Outcome::Failed);
}

#[test]
fn epco_is_answered_in_epco() {
    let mut p = pgw();
    let mut req = csr("001010000000001", "ims", PdnType::IPV4);
    req.epco = req.pco.take();
    let (r, _) = create(&mut p, Instant::now(), &req, 1);
    assert!(r.pco.is_none());
    let e = Pco::decode(r.epco.as_ref().unwrap(), Direction::NetworkToMs).unwrap();
    assert!(e.has(ContainerId::PCSCF_IPV4));
}

#[test]
fn ipv6_request_on_an_ipv4_only_apn_is_refused_with_cause_83() {
    let mut s = settings();
    s.apns[0].ipv6_pool = None;
    let mut p = Pgw::new(s, 1);
    let (r, _) = create(
        &mut p,
        Instant::now(),
        &csr("001010000000001", "ims", PdnType::IPV6),
        1,
    );
    assert_eq!(r.cause.value, CauseValue::PREFERRED_PDN_TYPE_NOT_SUPPORTED);
    let (r, _) = create(
        &mut p,
        Instant::now(),
        &csr("001010000000001", "ims", PdnType::IPV4V6),
        2,
    );
    assert_eq!(r.cause.value, CauseValue::NEW_PDN_TYPE_NETWORK_PREFERENCE);
    assert_eq!(r.paa.unwrap().pdn_type, PdnType::IPV4);
}

#[test]
fn modify_bearer_moves_the_tunnel_to_the_new_sgw_u() {
    let mut p = pgw();
    let now = Instant::now();
    let (r, _) = create(
        &mut p,
        now,
        &csr("001010000000001", "ims", PdnType::IPV4),
        1,
    );
    let teid = r.pgw_fteid.unwrap().teid;
    let new_u = Fteid {
        interface_type: interface::S5S8_SGW_GTPU,
        teid: 0x999,
        ipv4: Some(Ipv4Addr::new(127, 0, 0, 3)),
        ipv6: None,
    };
    let mut m = Message::new(Header::new(
        MessageType::MODIFY_BEARER_REQUEST,
        Some(teid),
        2,
    ));
    m.ies.push(crate::gtpv2::Ie::grouped(
        IeType::BEARER_CONTEXT,
        0,
        vec![Ebi(5).to_ie(0), new_u.to_ie(1)],
    ));
    let (reply, out) = send(&mut p, now, &m);
    assert_eq!(cause_of(&reply).value, CauseValue::REQUEST_ACCEPTED);
    assert!(matches!(out.tunnels[0], TunnelUpdate::Up { sgw, .. } if sgw == new_u));
    assert_eq!(p.sessions()[0].bearers[0].sgw_u_teid, Some(0x999));
}

#[test]
fn shutdown_sends_delete_bearer_and_the_answer_removes_the_session() {
    let mut p = pgw();
    let now = Instant::now();
    create(
        &mut p,
        now,
        &csr("001010000000001", "ims", PdnType::IPV4),
        1,
    );
    let out = p.shutdown(now);
    assert_eq!(out.transmit.len(), 1);
    assert_eq!(out.transmit[0].to, sgw());
    let (dbr, _) = Message::decode(&out.transmit[0].bytes).unwrap();
    assert_eq!(dbr.header.message_type, MessageType::DELETE_BEARER_REQUEST);
    assert_eq!(dbr.header.teid, Some(0xabc));
    assert_eq!(
        Ebi::from_ie(dbr.ie(IeType::EBI, 0).unwrap()).unwrap(),
        Ebi(5)
    );
    let resp = DeleteBearerResponse {
        cause: Cause::new(CauseValue::REQUEST_ACCEPTED),
        linked_ebi: Some(Ebi(5)),
    };
    let out = p.handle_datagram(
        now,
        sgw(),
        &resp.to_message(0, dbr.header.sequence).to_bytes().unwrap(),
    );
    assert!(out.transmit.is_empty());
    assert_eq!(p.session_count(), 0);
    assert_eq!(p.pending_requests(), 0);
}

#[test]
fn unanswered_delete_bearer_is_resent_n3_times_then_dropped() {
    let mut p = pgw();
    let now = Instant::now();
    create(
        &mut p,
        now,
        &csr("001010000000001", "ims", PdnType::IPV4),
        1,
    );
    let first = p.shutdown(now);
    let t3 = p.settings().t3;
    let mut resent = 0;
    let mut t = now;
    while p.pending_requests() > 0 {
        t = p.next_deadline().unwrap();
        let out = p.poll(t);
        resent += out.transmit.len();
        for tx in &out.transmit {
            assert_eq!(tx.bytes, first.transmit[0].bytes);
        }
    }
    assert_eq!(resent, 2, "N3 = 3 sends in all");
    assert_eq!(t, now + t3 * 3);
    assert_eq!(p.session_count(), 0);
}

#[test]
fn request_with_overflowing_length_is_answered_invalid_length() {
    let mut p = pgw();
    let mut wire = csr("001010000000001", "ims", PdnType::IPV4)
        .to_message(5)
        .to_bytes()
        .unwrap();
    wire.truncate(wire.len() - 3);
    let out = p.handle_datagram(Instant::now(), sgw(), &wire);
    let (reply, _) = Message::decode(&out.transmit[0].bytes).unwrap();
    assert_eq!(
        reply.header.message_type,
        MessageType::CREATE_SESSION_RESPONSE
    );
    assert_eq!(reply.header.sequence, 5);
    assert_eq!(cause_of(&reply).value, CauseValue::INVALID_LENGTH);
}

#[test]
fn gtp_version_1_gets_version_not_supported() {
    let mut p = pgw();
    let out = p.handle_datagram(
        Instant::now(),
        sgw(),
        &[0x32, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(out.transmit[0].bytes[..2], [0x40, 3]);
}

#[test]
fn events_become_ue_events_of_the_pgw() {
    let mut p = pgw();
    let (_, out) = create(
        &mut p,
        Instant::now(),
        &csr("001010000000001", "ims", PdnType::IPV4),
        1,
    );
    let ev = out.events[0]
        .clone()
        .into_ue_event(std::time::SystemTime::UNIX_EPOCH);
    assert_eq!(ev.function, Function::Pgw);
    assert_eq!(ev.ue.imsi.unwrap().as_str(), "001010000000001");
}
