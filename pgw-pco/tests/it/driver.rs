//! The tokio driver on loopback: Echo with the persisted restart counter, Create Session,
//! the sessions listing, and Delete Bearer Requests on shutdown.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imslab_config::PgwConfig;
use imslab_pgw::gtpv2::ie::*;
use imslab_pgw::gtpv2::msg::*;
use imslab_pgw::gtpv2::{IeType, Message, MessageType};
use imslab_pgw::{PgwOptions, start};
use imslab_types::{Imsi, Outcome, UeEvent, UeEventSink};
use tokio::net::UdpSocket;

fn config() -> PgwConfig {
    PgwConfig {
        gtpc_listen: "127.0.0.1:0".parse().unwrap(),
        ..PgwConfig::default()
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<UeEvent>>);

impl UeEventSink for Events {
    fn emit(&self, event: UeEvent) {
        self.0.lock().unwrap().push(event);
    }
}

async fn ask(sock: &UdpSocket, to: SocketAddr, m: &Message) -> Message {
    sock.send_to(&m.to_bytes().unwrap(), to).await.unwrap();
    let mut buf = vec![0; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("answer within 5 s")
        .unwrap();
    Message::decode(&buf[..n]).unwrap().0
}

fn csr(sgw: SocketAddr) -> CreateSessionRequest {
    let SocketAddr::V4(v4) = sgw else {
        panic!("IPv4 loopback expected")
    };
    CreateSessionRequest {
        imsi: Imsi::new("001010000000042").unwrap(),
        msisdn: None,
        mei: None,
        serving_network: Some(ServingNetwork {
            mcc: "001".into(),
            mnc: "01".into(),
        }),
        rat_type: RatType(6),
        sender_fteid: Fteid {
            interface_type: interface::S5S8_SGW_GTPC,
            teid: 0x77,
            ipv4: Some(*v4.ip()),
            ipv6: None,
        },
        apn: Apn("ims".into()),
        selection_mode: Some(SelectionMode(0)),
        pdn_type: Some(PdnType::IPV4V6),
        paa: None,
        apn_ambr: Some(Ambr {
            uplink_kbps: 1,
            downlink_kbps: 1,
        }),
        indication: None,
        pco: Some(vec![0x80, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x00]),
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
                teid: 0x88,
                ipv4: Some(Ipv4Addr::LOCALHOST),
                ipv6: None,
            }),
        }],
        recovery: None,
    }
}

#[tokio::test]
async fn restart_counter_is_persisted_and_incremented_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let sgw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let pgw = start(&config(), PgwOptions::new(dir.path())).await.unwrap();
        let r = ask(
            &sgw,
            pgw.local_addr(),
            &echo(MessageType::ECHO_REQUEST, 1, Recovery(9)),
        )
        .await;
        assert_eq!(r.header.message_type, MessageType::ECHO_RESPONSE);
        seen.push(
            Recovery::from_ie(r.ie(IeType::RECOVERY, 0).unwrap())
                .unwrap()
                .0,
        );
        assert_eq!(seen.last(), Some(&pgw.recovery()));
        pgw.shutdown().await.unwrap();
    }
    assert_eq!(seen[1], seen[0].wrapping_add(1));
    let stored = std::fs::read_to_string(dir.path().join("pgw-recovery")).unwrap();
    assert_eq!(stored.trim().parse::<u8>().unwrap(), seen[1]);
}

#[tokio::test]
async fn session_is_listed_and_deleted_by_delete_bearer_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Events::default());
    let mut opts = PgwOptions::new(dir.path());
    opts.events = Some(events.clone());
    let pgw = start(&config(), opts).await.unwrap();
    let sgw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let r = ask(
        &sgw,
        pgw.local_addr(),
        &csr(sgw.local_addr().unwrap()).to_message(10),
    )
    .await;
    let resp = CreateSessionResponse::from_message(&r).unwrap();
    assert_eq!(resp.cause.value, CauseValue::REQUEST_ACCEPTED);
    let list = pgw.sessions();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].imsi.as_str(), "001010000000042");
    assert_eq!(list[0].apn, "ims");
    assert_eq!(list[0].pcscf.len(), 2);
    assert_eq!(list[0].sgw_c_teid, 0x77);
    assert!(serde_json::to_string(&list).unwrap().contains("\"pcscf\""));
    let pco = events
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.step == "pco")
        .cloned()
        .unwrap();
    assert_eq!(pco.outcome, Outcome::Ok);

    // Shutdown: the SGW gets a Delete Bearer Request and answers it.
    let stopping = tokio::spawn(pgw.shutdown());
    let mut buf = vec![0; 4096];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), sgw.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let (dbr, _) = Message::decode(&buf[..n]).unwrap();
    assert_eq!(dbr.header.message_type, MessageType::DELETE_BEARER_REQUEST);
    assert_eq!(dbr.header.teid, Some(0x77));
    let ans = DeleteBearerResponse {
        cause: Cause::new(CauseValue::REQUEST_ACCEPTED),
        linked_ebi: Some(Ebi(5)),
    };
    sgw.send_to(
        &ans.to_message(resp.pgw_fteid.unwrap().teid, dbr.header.sequence)
            .to_bytes()
            .unwrap(),
        from,
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        events
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.step == "delete-bearer" && e.outcome == Outcome::Ok)
    );
}

#[tokio::test]
async fn wildcard_listen_without_advertise_address_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PgwConfig {
        gtpc_listen: "0.0.0.0:0".parse().unwrap(),
        ..PgwConfig::default()
    };
    let Err(e) = start(&cfg, PgwOptions::new(dir.path())).await else {
        panic!("started")
    };
    assert!(e.to_string().contains("gtpc_advertise"), "{e}");
}
