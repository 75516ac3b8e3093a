//! Encode plus decode of a typical Multimedia-Auth-Answer with one SIP-Auth-Data-Item (IMS AKA
//! vector: RAND‖AUTN, XRES, CK, IK), the message an HSS sends for every registration.
//!
//! `codec`: `Message::encode` then `Message::decode` (what a relay or the node core does).
//! `typed`: `Maa::to_message().encode()` then `Message::decode` and `Maa::decode` (what the HSS
//! and S-CSCF do).
//!
//! Each case runs twice: `maa_wall` measures wall-clock time (criterion's default), `maa_cpu`
//! measures the benchmark thread's on-CPU time (`CLOCK_THREAD_CPUTIME_ID`), which gives the
//! per-core figure even when other processes share the cores.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imslab_diameter::Message;
use imslab_diameter::answer::Origin;
use imslab_diameter::cx::{CxResult, Maa, Mar, SipAuthDataItem};
use imslab_types::{Ck, DiameterIdentity, Ik, Impi, Impu, Realm};

fn typical_maa() -> Maa {
    let realm = Realm::new("ims.mnc001.mcc001.3gppnetwork.org").expect("realm");
    let mar = Mar {
        session_id: "scscf.ims.mnc001.mcc001.3gppnetwork.org;1700000000;42".into(),
        origin_host: DiameterIdentity::new("scscf.ims.mnc001.mcc001.3gppnetwork.org").expect("id"),
        origin_realm: realm.clone(),
        destination_host: None,
        destination_realm: realm.clone(),
        user_name: Impi::new("001010000000001@ims.mnc001.mcc001.3gppnetwork.org").expect("impi"),
        supported_features: vec![],
        public_identity: Impu::new("sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org")
            .expect("impu"),
        sip_auth_data_item: SipAuthDataItem::with_scheme(SipAuthDataItem::SCHEME_AKAV1_MD5),
        sip_number_auth_items: 1,
        server_name: "sip:scscf.ims.mnc001.mcc001.3gppnetwork.org:6060".into(),
        extra: vec![],
        proxy_info: vec![],
        route_record: vec![],
    };
    let hss = Origin {
        host: DiameterIdentity::new("hss.ims.mnc001.mcc001.3gppnetwork.org").expect("id"),
        realm,
    };
    let mut maa = Maa::new(&mar, &hss, CxResult::SUCCESS);
    maa.sip_number_auth_items = Some(1);
    maa.sip_auth_data_items.push(SipAuthDataItem {
        item_number: Some(1),
        authentication_scheme: Some(SipAuthDataItem::SCHEME_AKAV1_MD5.into()),
        authenticate: Some(Bytes::from(vec![0x23; 32])),
        authorization: Some(Bytes::from(vec![0xa5; 8])),
        confidentiality_key: Some(Ck::from_bytes([0xb4; 16])),
        integrity_key: Some(Ik::from_bytes([0xf7; 16])),
        ..SipAuthDataItem::default()
    });
    maa
}

/// On-CPU time of the current thread.
struct ThreadCpu;

static WALL: WallTime = WallTime;

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns().saturating_sub(start))
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn wall(c: &mut Criterion) {
    cases(c, "maa_wall");
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    cases(c, "maa_cpu");
}

fn cases<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let maa = typical_maa();
    let msg = maa.to_message();
    let wire = msg.encode().expect("encodes");
    let mut g = c.benchmark_group(format!("{name}_{}_bytes", wire.len()));
    g.throughput(Throughput::Elements(1));
    g.bench_function("codec_encode_plus_decode", |b| {
        b.iter(|| {
            let w = black_box(&msg).encode().expect("encodes");
            Message::decode(w).expect("decodes")
        });
    });
    g.bench_function("typed_encode_plus_decode", |b| {
        b.iter(|| {
            let w = black_box(&maa).to_message().encode().expect("encodes");
            Maa::decode(&Message::decode(w).expect("decodes")).expect("valid MAA")
        });
    });
    g.bench_function("codec_decode", |b| {
        b.iter(|| Message::decode(black_box(wire.clone())).expect("decodes"))
    });
    g.bench_function("codec_encode", |b| {
        b.iter(|| black_box(&msg).encode().expect("encodes"))
    });
    g.finish();
}

criterion_group!(wall_clock, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = cpu
}
criterion_main!(wall_clock, cpu_time);
