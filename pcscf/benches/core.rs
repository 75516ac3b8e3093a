//! The pure P-CSCF core on a virtual clock: a full IMS AKA registration with security agreement
//! and SA creation (unprotected REGISTER, 401 with ck/ik, protected REGISTER, 200) followed by
//! a de-registration; a registration with IPsec off; one originating MESSAGE.
//!
//! `cargo bench -p imslab-pcscf --bench core`

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use imslab_config::{IpsecMode, NetworkConfig, PcscfConfig};
use imslab_ipsec::Spi;
use imslab_pcscf::flow::FlowKey;
use imslab_pcscf::{Ingress, Output, Pcscf, Protection, Settings};
use imslab_sip::header::Transport;
use imslab_sip::{HeaderName, Message, StatusCode};

const IMPU: &str = "sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org";
const CK: &str = "b40ba9a3c58b2a05bbf0d987b21bf8cb";
const IK: &str = "f769bcd751044604127672711c6d3441";

/// A registration that outlives a whole benchmark run on the virtual clock.
const LONG: u32 = 100_000_000;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn core(mode: IpsecMode) -> (Pcscf, Instant) {
    let mut cfg = PcscfConfig::default();
    cfg.ipsec.mode = mode;
    let s =
        Settings::from_config(&cfg, &NetworkConfig::default(), FlowKey::new([1; 32]), 1).unwrap();
    let now = Instant::now();
    (Pcscf::new(s, 7, now, SystemTime::now()).unwrap(), now)
}

fn register(cseq: u32, expires: u32, extra: &str) -> Message {
    Message::parse(
        format!(
            "REGISTER sip:ims.mnc001.mcc001.3gppnetwork.org SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKb{cseq};rport\r\nMax-Forwards: 70\r\n\
             From: <{IMPU}>;tag=b{cseq}\r\nTo: <{IMPU}>\r\nCall-ID: bench\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:001010000000001@127.0.0.2:5090>;expires={expires}\r\n\
             Authorization: Digest username=\"001010000000001@ims.mnc001.mcc001.3gppnetwork.org\", \
             realm=\"ims.mnc001.mcc001.3gppnetwork.org\", nonce=\"\", \
             uri=\"sip:ims.mnc001.mcc001.3gppnetwork.org\", response=\"\"\r\n{extra}\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    )
    .unwrap()
}

fn sec(verify: Option<&str>) -> String {
    let mut s = "Require: sec-agree\r\nProxy-Require: sec-agree\r\nSecurity-Client: ipsec-3gpp;\
        alg=hmac-sha-1-96;ealg=aes-cbc;prot=esp;mod=trans;spi-c=1111;spi-s=2222;port-c=5080;\
        port-s=5090\r\n"
        .to_owned();
    if let Some(v) = verify {
        s.push_str(&format!("Security-Verify: {v}\r\n"));
    }
    s
}

fn forwarded(outs: &[Output], to: SocketAddr) -> Message {
    outs.iter()
        .find_map(|o| match o {
            Output::Transmit { to: p, bytes, .. } if p.addr == to => {
                Some(Message::parse(bytes.clone()).unwrap())
            }
            _ => None,
        })
        .unwrap()
}

fn answer(fwd: &Message, code: u16, extra: &[(HeaderName, String)]) -> Message {
    let mut r = fwd
        .response(StatusCode::new(code).unwrap(), Some("s"))
        .unwrap();
    for (n, v) in extra {
        r.push_header(n.clone(), v.clone()).unwrap();
    }
    Message::parse(r.to_bytes()).unwrap()
}

fn plain() -> Ingress {
    Ingress::plain(
        Transport::Udp,
        a("127.0.0.2:5080"),
        a("127.0.0.1:5060"),
        None,
    )
}

fn from_icscf() -> Ingress {
    Ingress::plain(
        Transport::Udp,
        a("127.0.0.1:4060"),
        a("127.0.0.1:5060"),
        None,
    )
}

fn protected(spi: u32) -> Ingress {
    Ingress {
        transport: Transport::Udp,
        source: a("127.0.0.2:5080"),
        local: a("127.0.0.1:6100"),
        flow: None,
        protection: Protection::Esp { spi: Spi(spi) },
    }
}

fn ok_headers(fwd: &Message, expires: u32) -> Vec<(HeaderName, String)> {
    vec![
        (
            HeaderName::SERVICE_ROUTE,
            "<sip:orig@127.0.0.1:6060;lr>".into(),
        ),
        (HeaderName::P_ASSOCIATED_URI, format!("<{IMPU}>")),
        (
            HeaderName::PATH,
            fwd.header_str(&HeaderName::PATH)
                .unwrap()
                .unwrap()
                .to_owned(),
        ),
        (
            HeaderName::CONTACT,
            format!("<sip:001010000000001@127.0.0.2:5090>;expires={expires}"),
        ),
    ]
}

/// One registration with IPsec and its de-registration; returns the messages handled.
fn ipsec_cycle(p: &mut Pcscf, now: Instant) -> usize {
    let icscf = a("127.0.0.1:4060");
    let outs = p.handle_message(now, register(1, 600, &sec(None)), plain());
    let fwd = forwarded(&outs, icscf);
    let www = format!(
        "Digest realm=\"ims\", nonce=\"AAAA\", algorithm=AKAv1-MD5, qop=\"auth\", ck=\"{CK}\", ik=\"{IK}\""
    );
    let outs = p.handle_message(
        now,
        answer(&fwd, 401, &[(HeaderName::WWW_AUTHENTICATE, www)]),
        from_icscf(),
    );
    let to_ue = forwarded(&outs, a("127.0.0.2:5080"));
    let ss = to_ue
        .header_str(&HeaderName::SECURITY_SERVER)
        .unwrap()
        .unwrap()
        .to_owned();
    let spi_s: u32 = ss
        .split(';')
        .find_map(|x| x.strip_prefix("spi-s="))
        .unwrap()
        .parse()
        .unwrap();
    let outs = p.handle_message(now, register(2, 600, &sec(Some(&ss))), protected(spi_s));
    let fwd = forwarded(&outs, icscf);
    let ok = answer(&fwd, 200, &ok_headers(&fwd, 600));
    p.handle_message(now, ok, from_icscf());
    let outs = p.handle_message(now, register(3, 0, &sec(Some(&ss))), protected(spi_s));
    let fwd = forwarded(&outs, icscf);
    p.handle_message(now, answer(&fwd, 200, &[]), from_icscf());
    6
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("pcscf_core");
    g.bench_function("ipsec_register_then_deregister", |b| {
        let (mut p, mut now) = core(IpsecMode::Userspace);
        b.iter(|| {
            ipsec_cycle(&mut p, now);
            // Let transaction timers and lingering subscriptions run out between cycles.
            now += Duration::from_secs(40);
            p.handle_timeout(now);
        });
    });
    g.bench_function("register_ipsec_off", |b| {
        let (mut p, mut now) = core(IpsecMode::Off);
        let icscf = a("127.0.0.1:4060");
        b.iter(|| {
            let outs = p.handle_message(now, register(1, 600, ""), plain());
            let fwd = forwarded(&outs, icscf);
            p.handle_message(now, answer(&fwd, 200, &ok_headers(&fwd, 600)), from_icscf());
            now += Duration::from_secs(40);
            p.handle_timeout(now);
        });
    });
    g.bench_function("originating_message", |b| {
        let (mut p, now) = core(IpsecMode::Off);
        let icscf = a("127.0.0.1:4060");
        // Registered for longer than the virtual time a run advances (40 s per 1,000 calls).
        let outs = p.handle_message(now, register(1, LONG, ""), plain());
        let fwd = forwarded(&outs, icscf);
        p.handle_message(
            now,
            answer(&fwd, 200, &ok_headers(&fwd, LONG)),
            from_icscf(),
        );
        let mut n = 0u64;
        let mut t = now;
        b.iter(|| {
            n += 1;
            let m = Message::parse(
                format!(
                    "MESSAGE sip:bob@ims.mnc001.mcc001.3gppnetwork.org SIP/2.0\r\n\
                     Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKm{n}\r\nMax-Forwards: 70\r\n\
                     From: <{IMPU}>;tag=m\r\nTo: <sip:bob@ims.mnc001.mcc001.3gppnetwork.org>\r\n\
                     Call-ID: m{n}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
                )
                .into_bytes(),
            )
            .unwrap();
            let outs = p.handle_message(t, m, plain());
            assert!(
                outs.iter()
                    .any(|o| matches!(o, Output::Transmit { to, .. } if to.addr.port() == 6060)),
                "MESSAGE forwarded, not refused"
            );
            if n.is_multiple_of(1000) {
                t += Duration::from_secs(40);
                p.handle_timeout(t);
            }
            outs.len()
        });
    });
    g.bench_function("originating_call_setup_and_teardown", |b| {
        // INVITE, 180, 200, ACK, BYE, 200 through the caller's P-CSCF (IPsec off).
        let (mut p, now) = core(IpsecMode::Off);
        let icscf = a("127.0.0.1:4060");
        let scscf = a("127.0.0.1:6060");
        let outs = p.handle_message(now, register(1, LONG, ""), plain());
        let fwd = forwarded(&outs, icscf);
        p.handle_message(now, answer(&fwd, 200, &ok_headers(&fwd, LONG)), from_icscf());
        let from_scscf = || Ingress::plain(Transport::Udp, scscf, a("127.0.0.1:5060"), None);
        let mut n = 0u64;
        let mut t = now;
        b.iter(|| {
            n += 1;
            let req = |method: &str, cseq: u32, to_tag: &str, route: &str| {
                Message::parse(
                    format!(
                        "{method} sip:bob@ims.mnc001.mcc001.3gppnetwork.org SIP/2.0\r\n\
                         Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKc{n}{method}\r\n\
                         Max-Forwards: 70\r\n{route}\
                         From: <{IMPU}>;tag=c\r\nTo: <sip:bob@ims.mnc001.mcc001.3gppnetwork.org>{to_tag}\r\n\
                         Call-ID: call{n}\r\nCSeq: {cseq} {method}\r\n\
                         Contact: <sip:001010000000001@127.0.0.2:5090>\r\nContent-Length: 0\r\n\r\n"
                    )
                    .into_bytes(),
                )
                .unwrap()
            };
            let outs = p.handle_message(t, req("INVITE", 1, "", ""), plain());
            let inv = forwarded(&outs, scscf);
            let rr = inv
                .header_str(&HeaderName::RECORD_ROUTE)
                .unwrap()
                .unwrap()
                .to_owned();
            p.handle_message(t, answer(&inv, 180, &[]), from_scscf());
            let ok = answer(&inv, 200, &[(HeaderName::RECORD_ROUTE, rr.clone())]);
            p.handle_message(t, ok, from_scscf());
            let route = format!("Route: {rr}, <sip:orig@127.0.0.1:6060;lr>\r\n");
            p.handle_message(t, req("ACK", 1, ";tag=s", &route), plain());
            let outs = p.handle_message(t, req("BYE", 2, ";tag=s", &route), plain());
            let bye = forwarded(&outs, scscf);
            let outs = p.handle_message(t, answer(&bye, 200, &[]), from_scscf());
            if n.is_multiple_of(1000) {
                t += Duration::from_secs(40);
                p.handle_timeout(t);
            }
            outs.len()
        });
    });
    g.finish();
}

criterion_group!(core_benches, benches);
criterion_main!(core_benches);
