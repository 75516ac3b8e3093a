//! Throughput of the two hot paths: the HSS generating vectors and the S-CSCF verifying an
//! AKAv1-MD5 response. `cargo bench -p imslab-aka --bench aka`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imslab_aka::{
    Auc, DigestAlgorithm, DigestRequest, Ha1, Milenage, NonceCount, Qop, QopParams, Usim, digest,
    generate_vector,
};
use imslab_types::{Amf, K, Opc, Rand, Sqn};

const USER: &str = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org";
const REALM: &str = "ims.mnc001.mcc001.3gppnetwork.org";
const URI: &str = "sip:ims.mnc001.mcc001.3gppnetwork.org";

fn keys() -> (K, Opc) {
    (K::from_bytes([0x46; 16]), Opc::from_bytes([0xcd; 16]))
}

/// A counter-based RAND source: cheap and deterministic, so the bench measures MILENAGE.
fn counter_rand() -> impl FnMut() -> [u8; 16] {
    let mut n = 0u128;
    move || {
        n = n.wrapping_add(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        n.to_be_bytes()
    }
}

fn vectors(c: &mut Criterion) {
    let (k, opc) = keys();
    let m = Milenage::new(&k, &opc);
    let auc = Auc::default();
    let mut g = c.benchmark_group("vector");
    g.throughput(Throughput::Elements(1));
    let mut rand = counter_rand();
    g.bench_function("generate_vector (keyed Milenage, SQN step, RAND)", |b| {
        let mut sqn = Sqn::default();
        b.iter(|| {
            let (v, used) = auc
                .generate_vector(&m, &mut rand, sqn, Amf([0, 0]))
                .unwrap_or_else(|_| {
                    // SQN wrap is 2^43 steps away; restart if a very long run ever gets there.
                    auc.generate_vector(&m, &mut counter_rand(), Sqn::default(), Amf([0, 0]))
                        .expect("fresh SQN")
                });
            sqn = used;
            black_box(v)
        })
    });
    let mut n = 0u128;
    g.bench_function(
        "generate_vector incl. key schedule (Milenage::new per vector)",
        |b| {
            b.iter(|| {
                n += 1;
                let m = Milenage::new(black_box(&k), &opc);
                black_box(generate_vector(
                    &m,
                    Rand(n.to_be_bytes()),
                    Sqn::new(32).expect("small SQN"),
                    Amf([0, 0]),
                ))
            })
        },
    );
    g.bench_function("usim authenticate (f1..f5 + SQN check)", |b| {
        let mut usim = Usim::new(&k, &opc);
        let mut sqn = Sqn::default();
        let mut rand = counter_rand();
        let vs: Vec<_> = (0..4096)
            .map(|_| {
                let (v, used) = auc
                    .generate_vector(&m, &mut rand, sqn, Amf([0, 0]))
                    .expect("SQN");
                sqn = used;
                v
            })
            .collect();
        let mut i = 0;
        b.iter(|| {
            if i == vs.len() {
                usim = Usim::new(&k, &opc);
                i = 0;
            }
            let v = &vs[i];
            i += 1;
            black_box(usim.authenticate(&v.rand, &v.autn).is_ok())
        })
    });
    g.finish();
}

fn digest_verify(c: &mut Criterion) {
    let (k, opc) = keys();
    let m = Milenage::new(&k, &opc);
    let v = generate_vector(
        &m,
        Rand([7; 16]),
        Sqn::new(33).expect("small SQN"),
        Amf([0, 0]),
    );
    let nonce = v.nonce();
    let ha1 = Ha1::for_vector(DigestAlgorithm::AkaV1Md5, USER, REALM, &v).expect("AKA");
    let req = DigestRequest {
        nonce: &nonce,
        method: "REGISTER",
        uri: URI,
        qop: Some(QopParams {
            qop: Qop::Auth,
            nc: NonceCount::new(1),
            cnonce: "0a4f113b9c2d7e51",
        }),
        body: b"",
    };
    let response = digest::response(&ha1, &req).to_hex();
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Elements(1));
    g.bench_function("AKAv1-MD5 verify (HA1 kept per challenge)", |b| {
        b.iter(|| black_box(digest::verify(&ha1, black_box(&req), black_box(&response)).is_ok()))
    });
    g.bench_function("AKAv1-MD5 verify incl. HA1 from XRES", |b| {
        b.iter(|| {
            let ha1 = Ha1::for_vector(DigestAlgorithm::AkaV1Md5, USER, REALM, black_box(&v))
                .expect("AKA");
            black_box(digest::verify(&ha1, black_box(&req), black_box(&response)).is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, vectors, digest_verify);
criterion_main!(benches);
