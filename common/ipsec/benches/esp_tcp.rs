//! TCP inside userspace ESP: one 1,000-byte SIP message from a phone's established connection
//! to the P-CSCF's port-s, through both `EspTcp` endpoints (segments, ACK) with every segment
//! protected and unprotected with hmac-sha-1-96 / aes-cbc on the way.
//!
//! `cargo bench -p imslab-ipsec --bench esp_tcp`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imslab_ipsec::esp::{InboundSa, OutboundSa, next_header};
use imslab_ipsec::tcp::{EspTcp, EspTcpConfig, TcpEvent};
use imslab_ipsec::{CipherSuite, EncryptionAlg, EspKeys, IntegrityAlg, Spi};

/// Moves segments between the two ends through ESP until both are quiet; returns the bytes
/// delivered at the P-CSCF.
fn carry(
    now: Instant,
    ue: &mut EspTcp,
    pcscf: &mut EspTcp,
    sa: &mut (OutboundSa, InboundSa),
    pkt: &mut Vec<u8>,
) -> usize {
    let mut delivered = 0;
    loop {
        let mut quiet = true;
        for (from_ue, evs) in [(true, ue.take_events()), (false, pcscf.take_events())] {
            for ev in evs {
                quiet = false;
                match ev {
                    TcpEvent::Segment { from, to, segment } => {
                        pkt.clear();
                        sa.0.protect(next_header::TCP, &segment, |iv| iv.fill(7), pkt)
                            .unwrap();
                        let u = sa.1.unprotect(pkt).unwrap();
                        let dst = if from_ue { &mut *pcscf } else { &mut *ue };
                        dst.handle_segment(now, from, to, u.payload).unwrap();
                    }
                    TcpEvent::Data { data, .. } => delivered += data.len(),
                    _ => {}
                }
            }
        }
        if quiet {
            return delivered;
        }
    }
}

fn bench(c: &mut Criterion) {
    let suite = CipherSuite::new(IntegrityAlg::HmacSha1_96, EncryptionAlg::AesCbc);
    let keys = EspKeys::from_raw(suite, &[0x11; 20], &[0x22; 16]).unwrap();
    // One SA pair serves both directions here: the cost per packet is the same.
    let mut sa = (
        OutboundSa::new(Spi(0x1000), &keys).unwrap(),
        InboundSa::new(Spi(0x1000), &keys).unwrap(),
    );
    let now = Instant::now();
    let mut pcscf = EspTcp::new(
        "127.0.0.1".parse().unwrap(),
        EspTcpConfig::default(),
        1,
        now,
    );
    pcscf.listen(6100);
    let mut ue = EspTcp::new(
        "127.0.0.2".parse().unwrap(),
        EspTcpConfig::default(),
        2,
        now,
    );
    let pcscf_s: SocketAddr = "127.0.0.1:6100".parse().unwrap();
    let conn = ue.connect(now, 5062, pcscf_s).unwrap();
    let mut pkt = Vec::with_capacity(1600);
    carry(now, &mut ue, &mut pcscf, &mut sa, &mut pkt);
    let msg = vec![b'x'; 1000];
    let mut group = c.benchmark_group("esp_tcp_1000B_message");
    group.throughput(Throughput::Elements(1));
    let mut at = now;
    group.bench_function(suite.to_string(), |b| {
        b.iter(|| {
            ue.send(at, conn, black_box(&msg)).unwrap();
            let n = carry(at, &mut ue, &mut pcscf, &mut sa, &mut pkt);
            assert_eq!(n, 1000);
            // The P-CSCF's delayed ACK (10 ms) goes out.
            at += std::time::Duration::from_millis(11);
            pcscf.handle_timeout(at);
            carry(at, &mut ue, &mut pcscf, &mut sa, &mut pkt);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
