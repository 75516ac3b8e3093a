//! MAR→MAA load over TCP: a lean pipelined Diameter client against the running HSS.
//!
//! `cargo bench -p imslab-hss --bench mar_load -- [sqlite|postgres] [seconds] [in-flight] [no-events]`
//!
//! Provisions 1,000 subscribers, starts the HSS (per-UE events recorded in the store), opens 4
//! connections and keeps `in-flight` MARs outstanding (default 64), each asking one AKAv1
//! vector for the next subscriber. After a 2 s warm-up it measures for `seconds` (default 10)
//! and prints answers per second and latency percentiles. Every answer is decoded and must be
//! DIAMETER_SUCCESS with one vector. PostgreSQL is the throwaway cluster of
//! `imslab_store::testing` (fsync off) unless IMSLAB_TEST_PG_URL names another server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use imslab_config::HssConfig;
use imslab_diameter::Address;
use imslab_diameter::base::{Capabilities, Cer, VendorSpecificApplicationId};
use imslab_diameter::cx::{Maa, Mar, SipAuthDataItem};
use imslab_diameter::{Framer, Message, VendorId};
use imslab_hss::Hss;
use imslab_store::provision::{ImpuInput, NewSubscriber, ProvisionDefaults, SubscriberInput};
use imslab_store::{EventRecorder, RecorderOptions, Store};
use imslab_types::{DiameterIdentity, Impi, Impu, Realm};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const REALM: &str = "ims.example";
const SUBSCRIBERS: u32 = 1000;
const CONNECTIONS: usize = 4;

fn imsi(n: u32) -> String {
    format!("00101{n:010}")
}

fn mar_bytes(n: u32) -> Vec<u8> {
    let realm = Realm::new(REALM).unwrap();
    let m = Mar {
        session_id: format!("bench.ims.example;{n}"),
        origin_host: DiameterIdentity::new("bench.ims.example").unwrap(),
        origin_realm: realm.clone(),
        destination_host: None,
        destination_realm: realm,
        user_name: Impi::new(format!("{}@{REALM}", imsi(n))).unwrap(),
        supported_features: vec![],
        public_identity: Impu::new(format!("sip:{}@{REALM}", imsi(n))).unwrap(),
        sip_auth_data_item: SipAuthDataItem::with_scheme(SipAuthDataItem::SCHEME_AKAV1_MD5),
        sip_number_auth_items: 1,
        server_name: "sip:bench.ims.example:6060".into(),
        extra: vec![],
        proxy_info: vec![],
        route_record: vec![],
    };
    m.to_message().encode().unwrap().to_vec()
}

fn cer_bytes() -> Vec<u8> {
    let caps = Capabilities {
        origin_host: DiameterIdentity::new("bench.ims.example").unwrap(),
        origin_realm: Realm::new(REALM).unwrap(),
        host_ip_addresses: vec![Address::from(std::net::IpAddr::from([127, 0, 0, 1]))],
        vendor_id: VendorId(0),
        product_name: "mar_load".into(),
        origin_state_id: Some(1),
        supported_vendor_ids: vec![VendorId::TGPP],
        auth_application_ids: vec![],
        inband_security_ids: vec![],
        acct_application_ids: vec![],
        vendor_specific_application_ids: vec![VendorSpecificApplicationId::CX],
        firmware_revision: None,
    };
    let mut m = Cer {
        capabilities: caps,
        extra: vec![],
    }
    .to_message();
    m.header.hop_by_hop = 1;
    m.header.end_to_end = 1;
    m.encode().unwrap().to_vec()
}

struct NullSink;

impl imslab_types::UeEventSink for NullSink {
    fn emit(&self, _event: imslab_types::UeEvent) {}
}

struct Stats {
    measuring: AtomicBool,
    stop: AtomicBool,
    answers: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

async fn read_frame(
    stream: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
    framer: &Framer,
) -> Option<bytes::Bytes> {
    loop {
        if let Ok(Some(f)) = framer.next_frame(buf) {
            return Some(f);
        }
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

async fn connection(
    addr: std::net::SocketAddr,
    templates: Arc<Vec<Vec<u8>>>,
    in_flight: usize,
    stats: Arc<Stats>,
    next: Arc<AtomicU64>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let framer = Framer::new(1 << 20);
    let mut buf = BytesMut::with_capacity(1 << 16);
    wr.write_all(&cer_bytes()).await.unwrap();
    let cea = read_frame(&mut rd, &mut buf, &framer).await.expect("CEA");
    let cea = Message::decode(cea).unwrap();
    assert_eq!(cea.header.code.0, 257);

    const SLOTS: usize = 4096;
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; SLOTS]));
    let permits = Arc::new(Semaphore::new(in_flight));
    let reader = {
        let sent = sent.clone();
        let permits = permits.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            while let Some(frame) = read_frame(&mut rd, &mut buf, &framer).await {
                let at = Instant::now();
                let msg = Message::decode(frame).unwrap();
                if msg.header.code.0 == 280 || msg.header.code.0 == 282 {
                    continue;
                }
                let slot = msg.header.hop_by_hop as usize % SLOTS;
                let t0 = sent.lock().unwrap()[slot].take();
                let ok = Maa::decode(&msg)
                    .is_ok_and(|a| a.result.is_success() && a.sip_auth_data_items.len() == 1);
                if stats.measuring.load(Ordering::Relaxed) {
                    if ok {
                        stats.answers.fetch_add(1, Ordering::Relaxed);
                        if let Some(t0) = t0 {
                            let us = u32::try_from(at.duration_since(t0).as_micros())
                                .unwrap_or(u32::MAX);
                            stats.latencies.lock().unwrap().push(us);
                        }
                    } else {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                permits.add_permits(1);
            }
        })
    };
    let mut hbh: u32 = 2;
    while !stats.stop.load(Ordering::Relaxed) {
        let permit = permits.acquire().await.unwrap();
        permit.forget();
        let n = next.fetch_add(1, Ordering::Relaxed) as usize % templates.len();
        let mut bytes = templates[n].clone();
        bytes[12..16].copy_from_slice(&hbh.to_be_bytes());
        bytes[16..20].copy_from_slice(&hbh.to_be_bytes());
        sent.lock().unwrap()[hbh as usize % SLOTS] = Some(Instant::now());
        hbh = hbh.wrapping_add(1);
        if wr.write_all(&bytes).await.is_err() {
            break;
        }
    }
    drop(wr);
    reader.abort();
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let backend = args.first().cloned().unwrap_or_else(|| "sqlite".into());
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let in_flight: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    // A fourth argument `no-events` replaces the store-backed timeline with a null sink.
    let record_events = args.get(3).is_none_or(|a| a != "no-events");

    let _dir;
    let _pg;
    let store: Store = match backend.as_str() {
        "sqlite" | "sqlite1" => {
            // `sqlite1`: reads share the writer connection (store.max_connections: 1).
            let d = tempfile::tempdir().unwrap();
            let mut o = imslab_store::StoreOptions::sqlite_file(&d.path().join("imslab.db"));
            if backend == "sqlite1" {
                o.max_connections = 1;
            }
            let s = Store::open(&o).await.unwrap();
            _dir = Some(d);
            s
        }
        "postgres" => {
            let db = imslab_store::testing::PgDatabase::create("mar_load").await;
            let s = db.store().await;
            _pg = Some(db);
            s
        }
        other => panic!("backend must be sqlite or postgres, not {other}"),
    };
    let defaults = ProvisionDefaults::new(Realm::new(REALM).unwrap());
    let news: Vec<NewSubscriber> = (1..=SUBSCRIBERS)
        .map(|i| {
            NewSubscriber::from_input(
                &SubscriberInput {
                    imsi: imsi(i),
                    k: "465b5ce8b199b49faa5f0a2ee238a6bc".into(),
                    opc: Some("cd63cb71954a9f4e48a5994e37a02baf".into()),
                    impus: vec![ImpuInput::Uri(format!("sip:{}@{REALM}", imsi(i)))],
                    ..SubscriberInput::default()
                },
                &defaults,
            )
            .unwrap()
        })
        .collect();
    store
        .subscribers()
        .insert_all(&news, SystemTime::now())
        .await
        .unwrap();
    let (recorder, _task) = EventRecorder::spawn(store.clone(), RecorderOptions::default());
    let cfg = HssConfig {
        origin_host: "hss.ims.example".into(),
        ..HssConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink: Arc<dyn imslab_types::UeEventSink> = if record_events {
        Arc::new(recorder.clone())
    } else {
        Arc::new(NullSink)
    };
    let hss = Hss::start(
        &cfg,
        &Realm::new(REALM).unwrap(),
        store.clone(),
        listener,
        sink,
    )
    .unwrap();
    let addr = hss.local_addr().unwrap();

    let templates = Arc::new((1..=SUBSCRIBERS).map(mar_bytes).collect::<Vec<_>>());
    let stats = Arc::new(Stats {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        answers: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        latencies: Mutex::new(Vec::with_capacity(1 << 20)),
    });
    let next = Arc::new(AtomicU64::new(0));
    let per_conn = in_flight.div_ceil(CONNECTIONS).max(1);
    let conns: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            tokio::spawn(connection(
                addr,
                templates.clone(),
                per_conn,
                stats.clone(),
                next.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stats.measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stats.measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    stats.stop.store(true, Ordering::Relaxed);
    for c in conns {
        c.abort();
    }
    let answers = stats.answers.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    let mut lat = std::mem::take(&mut *stats.latencies.lock().unwrap());
    lat.sort_unstable();
    println!(
        "mar_load backend={backend} events={record_events} in_flight={} connections={CONNECTIONS} subscribers={SUBSCRIBERS} \
         seconds={elapsed:.1}: {:.0} answers/s, errors {errors}, latency ms p50 {:.2} p90 {:.2} \
         p99 {:.2} p99.9 {:.2} max {:.2}, events dropped {}",
        per_conn * CONNECTIONS,
        answers as f64 / elapsed,
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        pct(&lat, 0.999),
        pct(&lat, 1.0),
        recorder.dropped(),
    );
    hss.shutdown().await;
}
