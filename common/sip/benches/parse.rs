//! Parsing throughput for a typical IMS REGISTER (compact Via with two values, AKAv1-MD5
//! Authorization, two Security-Client mechanisms, P-Access-Network-Info).
//!
//! `cargo bench -p imslab-sip --bench parse`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imslab_sip::header::{Auth, SecurityMechanism};
use imslab_sip::{HeaderName, Message, StreamFramer};

const REGISTER: &[u8] = include_bytes!("../testdata/ims/register.sip");

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("register");
    g.throughput(Throughput::Elements(1));
    let shared = Bytes::from_static(REGISTER);

    g.bench_function("parse", |b| {
        b.iter(|| Message::parse(black_box(shared.clone())).map(|m| m.field_count()))
    });

    g.bench_function("parse_from_stream", |b| {
        let mut framer = StreamFramer::default();
        b.iter(|| {
            let mut buf = bytes::BytesMut::from(black_box(REGISTER));
            framer.decode(&mut buf).map(|f| f.is_some())
        })
    });

    let msg = Message::parse(shared.clone()).unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("typed_via_auth_security_client", |b| {
        b.iter(|| {
            let m = black_box(&msg);
            let branch_len = m
                .top_via()
                .map(|v| v.branch().map_or(0, str::len))
                .unwrap_or(0);
            let auth: Option<Auth<'_>> = m.typed(&HeaderName::AUTHORIZATION).and_then(Result::ok);
            let mechs = m
                .typed_all::<SecurityMechanism<'_>>(&HeaderName::SECURITY_CLIENT)
                .filter(Result::is_ok)
                .count();
            (branch_len, auth.map(|a| a.params.len()), mechs)
        })
    });

    g.bench_function("parse_and_typed_access", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(shared.clone())).unwrap_or_else(|e| panic!("{e}"));
            let branch_len = m
                .top_via()
                .map(|v| v.branch().map_or(0, str::len))
                .unwrap_or(0);
            let auth = m
                .typed::<Auth<'_>>(&HeaderName::AUTHORIZATION)
                .and_then(Result::ok)
                .map(|a| a.params.len());
            let mechs = m
                .typed_all::<SecurityMechanism<'_>>(&HeaderName::SECURITY_CLIENT)
                .filter(Result::is_ok)
                .count();
            (branch_len, auth, mechs)
        })
    });

    g.bench_function("serialise_after_via_prepend", |b| {
        b.iter(|| {
            let mut m = msg.clone();
            let _ = m.prepend_header(
                HeaderName::VIA,
                "SIP/2.0/UDP 10.45.0.9:5060;branch=z9hG4bKproxy",
            );
            m.to_bytes()
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
