//! The S-CSCF core's session routing alone: per call, the originating INVITE (from the
//! caller's P-CSCF, to the I-CSCF), the terminating INVITE (from the I-CSCF, forked along the
//! callee's Path) and the BYE (in-dialog, along its Route), each a decision of the pure core
//! over 10,000 registered phones. Messages are parsed outside the timed part.
//!
//! `cargo bench -p imslab-scscf --bench session`

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BatchSize, Criterion};
use imslab_scscf::registrar::{Now, Output, Registrar, ReqId, Settings};
use imslab_sip::Message;
use imslab_store::{Binding, RegState, ScscfRegistration};
use imslab_types::{Impi, Impu, Realm};

const DOMAIN: &str = "ims.mnc001.mcc001.3gppnetwork.org";
const PHONES: usize = 10_000;
const PATH: &str = "<sip:term@127.0.0.1:5060;lr>";

fn core(now: Now) -> Registrar {
    let cfg = imslab_config::ScscfConfig {
        icscf: Some("sip:127.0.0.1:4060".into()),
        ..Default::default()
    };
    let s = Settings::from_config(
        &cfg,
        &Realm::new(DOMAIN).expect("realm"),
        "hss.ims.mnc001.mcc001.3gppnetwork.org",
    )
    .expect("settings");
    let mut n = 0u8;
    let mut r = Registrar::new(
        s,
        Box::new(move || {
            n = n.wrapping_add(1);
            [n; 16]
        }),
        1,
    );
    let regs: Vec<ScscfRegistration> = (0..PHONES)
        .map(|i| ScscfRegistration {
            impu: Impu::new(format!("sip:u{i}@{DOMAIN}")).expect("impu"),
            impi: Impi::new(format!("u{i}@{DOMAIN}")).expect("impi"),
            state: RegState::Registered,
            implicit_set: vec![
                Impu::new(format!("sip:u{i}@{DOMAIN}")).expect("impu"),
                Impu::new(format!("tel:+1555{i:07}")).expect("tel"),
            ],
            user_data: None,
            charging: None,
        })
        .collect();
    let bindings: Vec<Binding> = (0..PHONES)
        .map(|i| Binding {
            impu: Impu::new(format!("sip:u{i}@{DOMAIN}")).expect("impu"),
            impi: Impi::new(format!("u{i}@{DOMAIN}")).expect("impi"),
            contact: format!("sip:u{i}@10.45.{}.{}:5060", (i >> 8) & 0xff, i & 0xff),
            expires_at: now.wall + Duration::from_secs(600_000),
            q_milli: None,
            path: vec![PATH.to_owned()],
            instance_id: None,
            reg_id: None,
            call_id: format!("reg{i}@ue"),
            cseq: 1,
            pcscf_flow: None,
            received: None,
            user_agent: None,
            contact_params: None,
        })
        .collect();
    r.restore(now, regs, bindings, Vec::new());
    r
}

fn request(text: String) -> Message {
    Message::parse(text.into_bytes()).expect("parses")
}

/// The three requests of call `n`.
fn call(n: usize) -> [Message; 3] {
    let a = n % PHONES;
    let b = (n + 1) % PHONES;
    let invite = |via: &str| {
        format!(
            "INVITE tel:+1555{b:07} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK{n}\r\n\
             Via: SIP/2.0/UDP 10.45.0.9:5060;branch=z9hG4bKue{n};rport\r\nMax-Forwards: 68\r\n\
             From: <sip:u{a}@{DOMAIN}>;tag=f{n}\r\nTo: <tel:+1555{b:07}>\r\nCall-ID: c{n}@ue\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:u{a}@10.45.0.9:5060>\r\n\
             P-Asserted-Identity: <sip:u{a}@{DOMAIN}>\r\nSession-Expires: 1800\r\n\
             Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
        )
    };
    [
        request(invite("127.0.0.1:5060")),
        request(invite("127.0.0.1:4060")),
        request(format!(
            "BYE sip:u{b}@10.45.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb{n}\r\n\
             Max-Forwards: 68\r\nRoute: {PATH}\r\nFrom: <sip:u{a}@{DOMAIN}>;tag=f{n}\r\n\
             To: <tel:+1555{b:07}>;tag=t{n}\r\nCall-ID: c{n}@ue\r\nCSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n"
        )),
    ]
}

fn main() {
    let now = Now {
        at: Instant::now(),
        wall: SystemTime::now(),
    };
    let mut r = core(now);
    let mut c = Criterion::default().configure_from_args();
    let mut n = 0usize;
    let mut id = 0u64;
    c.bench_function("session/call_orig_term_bye", |bch| {
        bch.iter_batched(
            || {
                n += 1;
                call(n)
            },
            |msgs| {
                let mut forwarded = 0;
                for m in msgs {
                    id += 1;
                    r.handle_request(now, ReqId(id), m, false);
                    while let Some(o) = r.poll_output() {
                        if matches!(o, Output::Decide { .. }) {
                            forwarded += 1;
                        }
                        black_box(o);
                    }
                }
                assert_eq!(forwarded, 3);
            },
            BatchSize::SmallInput,
        );
    });
    c.final_summary();
}
