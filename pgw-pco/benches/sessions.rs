//! Create Session + Delete Session pairs: through the pure core and codec, and over UDP loopback
//! through the tokio driver. One iteration is one pair.
//!
//!     cargo bench -p imslab-pgw --bench sessions

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imslab_config::PgwConfig;
use imslab_pgw::gtpv2::ie::*;
use imslab_pgw::gtpv2::msg::{BearerContextToCreate, CreateSessionRequest, DeleteSessionRequest};
use imslab_pgw::gtpv2::{IeType, Message};
use imslab_pgw::pco::{Container, ContainerId, Direction, Pco};
use imslab_pgw::{Pgw, PgwOptions, Settings};
use imslab_types::Imsi;

fn csr(i: u32) -> CreateSessionRequest {
    let pco = Pco {
        header: 0x80,
        containers: [
            ContainerId::PCSCF_IPV4,
            ContainerId::PCSCF_IPV6,
            ContainerId::DNS_IPV4,
            ContainerId::IPV4_LINK_MTU,
        ]
        .into_iter()
        .map(|id| Container::new(id, vec![]))
        .collect(),
    };
    CreateSessionRequest {
        imsi: Imsi::new(format!("00101{:010}", i % 1000)).unwrap(),
        msisdn: None,
        mei: None,
        serving_network: Some(ServingNetwork {
            mcc: "001".into(),
            mnc: "01".into(),
        }),
        rat_type: RatType(6),
        sender_fteid: Fteid {
            interface_type: 6,
            teid: i,
            ipv4: Some(Ipv4Addr::LOCALHOST),
            ipv6: None,
        },
        apn: Apn("ims".into()),
        selection_mode: Some(SelectionMode(0)),
        pdn_type: Some(PdnType::IPV4V6),
        paa: None,
        apn_ambr: Some(Ambr {
            uplink_kbps: 1000,
            downlink_kbps: 1000,
        }),
        indication: None,
        pco: Some(pco.to_bytes(Direction::MsToNetwork).unwrap()),
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
                interface_type: 4,
                teid: i,
                ipv4: Some(Ipv4Addr::LOCALHOST),
                ipv6: None,
            }),
        }],
        recovery: None,
    }
}

fn pgw_teid(answer: &[u8]) -> u32 {
    let (m, _) = Message::decode(answer).unwrap();
    Fteid::from_ie(m.ie(IeType::F_TEID, 1).expect("accepted"))
        .unwrap()
        .teid
}

fn dsr(teid: u32, seq: u32) -> Vec<u8> {
    DeleteSessionRequest {
        linked_ebi: Some(Ebi(5)),
        indication: None,
        pco: None,
    }
    .to_message(teid, seq)
    .to_bytes()
    .unwrap()
}

fn pure(c: &mut Criterion) {
    let settings = Settings::from_config(&PgwConfig::default()).unwrap();
    let mut pgw = Pgw::new(settings, 1);
    let sgw = SocketAddr::from(([127, 0, 0, 2], 2123));
    let mut i: u32 = 0;
    let mut g = c.benchmark_group("create_delete_pair");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pure_core_and_codec", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let seq = (i * 2) & 0x00ff_ffff;
            let now = Instant::now();
            let req = csr(i).to_message(seq).to_bytes().unwrap();
            let out = pgw.handle_datagram(now, sgw, &req);
            let teid = pgw_teid(&out.transmit[0].bytes);
            let out = pgw.handle_datagram(now, sgw, &dsr(teid, seq + 1));
            black_box(out);
        })
    });
    assert_eq!(pgw.session_count(), 0);
    g.finish();
}

fn udp(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = PgwConfig {
        gtpc_listen: "127.0.0.1:0".parse().unwrap(),
        ..PgwConfig::default()
    };
    let pgw = rt
        .block_on(imslab_pgw::start(&cfg, PgwOptions::new(dir.path())))
        .unwrap();
    let to = pgw.local_addr();
    let sock = rt
        .block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut i: u32 = 0;
    let mut g = c.benchmark_group("create_delete_pair");
    g.throughput(Throughput::Elements(1));
    g.bench_function("udp_loopback_driver", |b| {
        b.iter(|| {
            rt.block_on(async {
                i = i.wrapping_add(1);
                let seq = (i * 2) & 0x00ff_ffff;
                sock.send_to(&csr(i).to_message(seq).to_bytes().unwrap(), to)
                    .await
                    .unwrap();
                let (n, _) = sock.recv_from(&mut buf).await.unwrap();
                let teid = pgw_teid(&buf[..n]);
                sock.send_to(&dsr(teid, seq + 1), to).await.unwrap();
                let (n, _) = sock.recv_from(&mut buf).await.unwrap();
                black_box(n);
            })
        })
    });
    // 64 pairs in flight: 64 Create Session Requests, their answers, then 64 Delete Session
    // Requests and their answers. Reported per pair.
    const WINDOW: u32 = 64;
    g.throughput(Throughput::Elements(u64::from(WINDOW)));
    g.bench_function("udp_loopback_driver_64_in_flight", |b| {
        b.iter(|| {
            rt.block_on(async {
                let base = i;
                i = i.wrapping_add(WINDOW);
                for k in 0..WINDOW {
                    let seq = ((base + k) * 2) & 0x00ff_ffff;
                    sock.send_to(&csr(base + k).to_message(seq).to_bytes().unwrap(), to)
                        .await
                        .unwrap();
                }
                let mut teids = Vec::with_capacity(WINDOW as usize);
                for _ in 0..WINDOW {
                    let (n, _) = sock.recv_from(&mut buf).await.unwrap();
                    let (m, _) = Message::decode(&buf[..n]).unwrap();
                    teids.push((m.header.sequence, pgw_teid(&buf[..n])));
                }
                for (seq, teid) in teids {
                    sock.send_to(&dsr(teid, seq + 1), to).await.unwrap();
                }
                for _ in 0..WINDOW {
                    let (n, _) = sock.recv_from(&mut buf).await.unwrap();
                    black_box(n);
                }
            })
        })
    });
    g.finish();
    assert!(pgw.sessions().is_empty());
    rt.block_on(pgw.shutdown()).unwrap();
}

criterion_group!(benches, pure, udp);
criterion_main!(benches);
