//! The S-CSCF core alone: one full IMS AKA registration (REGISTER → MAR out → MAA in → 401 →
//! REGISTER with the response → digest check → SAR out → SAA in with User-Data → 200), with
//! the MAA, SAA and the UE's answer prepared outside the timed part. Then the core's memory per
//! registered phone, measured as the resident-set growth over 100,000 registrations.
//!
//! `cargo bench -p imslab-scscf --bench registrar`

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{BatchSize, Criterion};
use imslab_aka::{
    AuthVector, DigestAlgorithm, DigestRequest, Ha1, Milenage, NonceCount, Qop, QopParams,
    generate_vector,
};
use imslab_diameter::Origin;
use imslab_diameter::cx::{CxResult, Maa, Saa, SipAuthDataItem};
use imslab_scscf::registrar::{CxOut, CxReply, Now, Output, Registrar, ReqId, Settings};
use imslab_sip::Message;
use imslab_types::{Amf, DiameterIdentity, K, Opc, Rand, Realm, Sqn};

const DOMAIN: &str = "ims.mnc001.mcc001.3gppnetwork.org";
const POOL: usize = 64;

fn settings() -> Settings {
    Settings::from_config(
        &imslab_config::ScscfConfig::default(),
        &Realm::new(DOMAIN).expect("realm"),
        "hss.ims.mnc001.mcc001.3gppnetwork.org",
    )
    .expect("settings")
}

fn hss() -> Origin {
    Origin {
        host: DiameterIdentity::new("hss.ims.mnc001.mcc001.3gppnetwork.org").expect("host"),
        realm: Realm::new(DOMAIN).expect("realm"),
    }
}

fn vectors() -> Vec<AuthVector> {
    let m = Milenage::new(&K::from_bytes([0x46; 16]), &Opc::from_bytes([0xcd; 16]));
    (0..POOL)
        .map(|i| {
            let r = u8::try_from(i).unwrap_or(0);
            generate_vector(
                &m,
                Rand([r; 16]),
                Sqn::new(32 + i as u64).expect("sqn"),
                Amf([0, 0]),
            )
        })
        .collect()
}

struct Prepared {
    first: Message,
    second: Message,
    vector: AuthVector,
    user_data: Bytes,
}

fn register(n: usize, cseq: u32, auth: &str) -> Message {
    Message::parse(
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:4060;branch=z9hG4bKi{n}x{cseq}\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp{n}x{cseq}\r\n\
             Max-Forwards: 68\r\n\
             From: <sip:u{n}@{DOMAIN}>;tag=t{n}\r\n\
             To: <sip:u{n}@{DOMAIN}>\r\n\
             Call-ID: reg{n}@ue\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:u{n}@10.45.{}.{}:5060>;expires=600000\r\n\
             Path: <sip:term@127.0.0.1:5060;lr>\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            (n >> 8) & 0xff,
            n & 0xff
        )
        .into_bytes(),
    )
    .expect("parses")
}

fn prepare(n: usize, pool: &[AuthVector]) -> Prepared {
    let v = pool[n % POOL].clone();
    let impi = format!("u{n}@{DOMAIN}");
    let first = register(
        n,
        1,
        &format!(
            "Authorization: Digest username=\"{impi}\", realm=\"{DOMAIN}\", nonce=\"\", \
             uri=\"sip:{DOMAIN}\", response=\"\", algorithm=AKAv1-MD5\r\n"
        ),
    );
    let nonce = v.nonce();
    let ha1 = Ha1::aka(
        DigestAlgorithm::AkaV1Md5,
        &impi,
        DOMAIN,
        &v.xres,
        &v.ik,
        &v.ck,
    )
    .expect("ha1");
    let resp = imslab_aka::digest::response(
        &ha1,
        &DigestRequest {
            nonce: &nonce,
            method: "REGISTER",
            uri: &format!("sip:{DOMAIN}"),
            qop: Some(QopParams {
                qop: Qop::Auth,
                nc: NonceCount::new(1),
                cnonce: "6b8b4567",
            }),
            body: b"",
        },
    );
    let second = register(
        n,
        2,
        &format!(
            "Authorization: Digest username=\"{impi}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", \
             uri=\"sip:{DOMAIN}\", response=\"{resp}\", algorithm=AKAv1-MD5, qop=auth, \
             nc=00000001, cnonce=\"6b8b4567\"\r\n"
        ),
    );
    let user_data = Bytes::from(format!(
        "<?xml version=\"1.0\"?><IMSSubscription><PrivateID>{impi}</PrivateID><ServiceProfile>\
         <PublicIdentity><Identity>sip:u{n}@{DOMAIN}</Identity></PublicIdentity>\
         <PublicIdentity><Identity>tel:+1555{n:07}</Identity></PublicIdentity>\
         </ServiceProfile></IMSSubscription>"
    ));
    Prepared {
        first,
        second,
        vector: v,
        user_data,
    }
}

/// Runs one registration through the core; returns the final status.
fn run(r: &mut Registrar, now: Now, p: Prepared, next: &mut u64) -> u16 {
    let origin = hss();
    let mut status = 0;
    let mut step = |r: &mut Registrar, msg: Option<Message>| {
        if let Some(m) = msg {
            *next += 1;
            r.handle_register(now, ReqId(*next), m, None);
        }
        while let Some(o) = r.poll_output() {
            match o {
                Output::Cx {
                    task,
                    request: CxOut::Mar(mar),
                } => {
                    let mut a = Maa::new(&mar, &origin, CxResult::SUCCESS);
                    let v = &p.vector;
                    a.sip_auth_data_items = vec![SipAuthDataItem {
                        authentication_scheme: Some(SipAuthDataItem::SCHEME_AKAV1_MD5.into()),
                        authenticate: Some(Bytes::copy_from_slice(&v.sip_authenticate())),
                        authorization: Some(Bytes::copy_from_slice(v.xres.expose())),
                        confidentiality_key: Some(v.ck.clone()),
                        integrity_key: Some(v.ik.clone()),
                        ..SipAuthDataItem::default()
                    }];
                    r.handle_cx_answer(now, task, CxReply::Maa(Box::new(a)));
                }
                Output::Cx {
                    task,
                    request: CxOut::Sar(sar),
                } => {
                    let mut a = Saa::new(&sar, &origin, CxResult::SUCCESS);
                    a.user_data = Some(p.user_data.clone());
                    r.handle_cx_answer(now, task, CxReply::Saa(Box::new(a)));
                }
                Output::Decide { decision, .. } => {
                    if let imslab_sip::proxy::Decision::Respond(m) = decision {
                        status = m.status().map_or(0, |s| s.as_u16());
                        black_box(m.to_bytes());
                    }
                }
                other => {
                    black_box(other);
                }
            }
        }
    };
    step(r, Some(p.first.clone()));
    step(r, Some(p.second.clone()));
    status
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        wall: SystemTime::now(),
    }
}

fn rand_source() -> Box<dyn FnMut() -> [u8; 16] + Send> {
    let mut n = 0u64;
    Box::new(move || {
        n += 1;
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&n.to_le_bytes());
        b
    })
}

fn bench(c: &mut Criterion) {
    let pool = vectors();
    let mut r = Registrar::new(settings(), rand_source(), 1);
    let t = now();
    let mut n = 0usize;
    let mut next = 0u64;
    c.bench_function("full IMS AKA registration through the core", |b| {
        b.iter_batched(
            || {
                n += 1;
                prepare(n, &pool)
            },
            |p| {
                let s = run(&mut r, t, p, &mut next);
                assert_eq!(s, 200);
            },
            BatchSize::SmallInput,
        );
    });
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn memory() {
    const PHONES: usize = 100_000;
    let pool = vectors();
    let mut r = Registrar::new(settings(), rand_source(), 2);
    let t = now();
    let mut next = 0;
    let before = rss_bytes().unwrap_or(0);
    for n in 0..PHONES {
        let p = prepare(1_000_000 + n, &pool);
        assert_eq!(run(&mut r, t, p, &mut next), 200);
    }
    let after = rss_bytes().unwrap_or(0);
    assert_eq!(r.registration_count(), PHONES);
    println!(
        "core memory: {PHONES} registered phones (one contact, two identities, User-Data text kept, \
         challenge kept), resident set +{:.1} MiB = {} bytes per phone",
        after.saturating_sub(before) as f64 / (1024.0 * 1024.0),
        after.saturating_sub(before) / PHONES as u64,
    );
}

fn main() {
    // Memory first, in a fresh process: afterwards the allocator keeps what the timed runs
    // freed and the resident set would not grow.
    memory();
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    bench(&mut c);
    c.final_summary();
}
