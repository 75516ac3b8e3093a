//! Userspace ESP throughput: protect + unprotect of a 1,000-byte SIP message (issue 8 target:
//! 200,000 packets/s/core with hmac-sha-1-96 and aes-cbc).
//!
//! `cargo bench -p imslab-ipsec --bench esp`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imslab_ipsec::esp::{InboundSa, OutboundSa, next_header};
use imslab_ipsec::inner::build_udp;
use imslab_ipsec::{CipherSuite, EncryptionAlg, EspKeys, IntegrityAlg, Spi};

fn sip_message() -> Vec<u8> {
    let mut m = b"MESSAGE sip:bob@ims.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bK776asdhds\r\nMax-Forwards: 70\r\nTo: <sip:bob@ims.example>\r\nFrom: <sip:alice@ims.example>;tag=1928301774\r\nCall-ID: a84b4c76e66710@127.0.0.2\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n".to_vec();
    let body_len = 1000 - m.len() - "Content-Length: 0000\r\n\r\n".len();
    m.extend_from_slice(format!("Content-Length: {body_len:04}\r\n\r\n").as_bytes());
    m.extend(std::iter::repeat_n(b'x', body_len));
    assert_eq!(m.len(), 1000);
    m
}

fn bench(c: &mut Criterion) {
    let sip = sip_message();
    let mut udp = Vec::new();
    build_udp(
        "127.0.0.2:5062".parse().unwrap(),
        "127.0.0.1:6100".parse().unwrap(),
        &sip,
        &mut udp,
    );
    let mut group = c.benchmark_group("esp_protect_unprotect_1000B_sip");
    group.throughput(Throughput::Elements(1));
    for suite in CipherSuite::all() {
        let ik = vec![0x11; suite.integrity.key_len()];
        let ck = vec![0x22; suite.encryption.key_len()];
        let keys = EspKeys::from_raw(suite, &ik, &ck).unwrap();
        let mut tx = OutboundSa::new(Spi(0x1000), &keys).unwrap();
        let mut rx = InboundSa::new(Spi(0x1000), &keys).unwrap();
        let mut pkt = Vec::with_capacity(1200);
        let mut iv = 0u64;
        group.bench_function(suite.to_string(), |b| {
            b.iter(|| {
                pkt.clear();
                tx.protect(
                    next_header::UDP,
                    black_box(&udp),
                    |buf| {
                        iv += 1;
                        for (i, b) in buf.iter_mut().enumerate() {
                            *b = (iv >> (8 * (i % 8))) as u8;
                        }
                    },
                    &mut pkt,
                )
                .unwrap();
                let u = rx.unprotect(&mut pkt).unwrap();
                black_box(u.payload.len());
            })
        });
    }
    group.finish();
    let _ = (IntegrityAlg::HmacSha1_96, EncryptionAlg::AesCbc);
}

criterion_group!(benches, bench);
criterion_main!(benches);
