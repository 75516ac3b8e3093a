//! CPU cost of one soft-UE registration (IMS AKA + sec-agree + SA derivation, two REGISTER
//! round trips) against the scripted network of the tests, no sockets:
//! `cargo bench -p imslab-scenarios --bench ue_register`.

#[path = "../tests/it/fake.rs"]
#[allow(dead_code, unreachable_pub)]
mod fake;

use std::net::SocketAddr;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use imslab_scenarios::ue::{
    AuthHint, Credentials, Event, IpsecSettings, Link, OperatorKey, Output, Profile, UeConfig,
    UeCore, UePorts, UeTransport,
};
use imslab_sip::Message;
use imslab_sip::header::Transport;
use imslab_sip::transaction::Peer;
use imslab_types::{Impi, Impu, Imsi, K, Opc, Realm};

use fake::{DOMAIN, FakeNet, IMSI, K_HEX, NetOut, OPC_HEX};

fn config() -> UeConfig {
    UeConfig {
        name: "bench".into(),
        imsi: Some(Imsi::new(IMSI).unwrap()),
        impi: Impi::new(format!("{IMSI}@{DOMAIN}")).unwrap(),
        impu: Impu::new(format!("sip:{IMSI}@{DOMAIN}")).unwrap(),
        domain: Realm::new(DOMAIN).unwrap(),
        credentials: Credentials {
            aka: Some((
                K::from_hex(K_HEX).unwrap(),
                OperatorKey::Opc(Opc::from_hex(OPC_HEX).unwrap()),
            )),
            ..Credentials::default()
        },
        profile: Profile::samsung(),
        auth_hint: AuthHint::None,
        transport: UeTransport::Udp,
        ipsec: Some(IpsecSettings {
            offers: Vec::new(),
            ports: UePorts {
                port_c: 31000,
                port_c_alt: 31001,
                port_s: 31002,
            },
        }),
        local_ip: "127.0.0.2".parse().unwrap(),
        local_port: 5070,
        pcscf: "127.0.0.1:5060".parse().unwrap(),
        expires: Some(600),
        ignore_mac_failure: false,
        auto_refresh: false,
        serial: 1,
    }
}

/// One full registration; returns whether it succeeded.
fn register(seed: u64) -> bool {
    let pcscf: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let mut ue = UeCore::new(config(), seed);
    let mut net = FakeNet::new(pcscf);
    let now = Instant::now();
    ue.register(now, None).unwrap();
    let mut ok = false;
    while let Some(o) = ue.poll_output() {
        match o {
            Output::Transmit { link, to, bytes } => {
                let msg = Message::parse(bytes).unwrap();
                let (protected, src) = match link {
                    Link::Protected { src_port, .. } => (true, src_port),
                    Link::Plain { .. } => (false, 5070),
                };
                let from = SocketAddr::new("127.0.0.2".parse().unwrap(), src);
                for out in net.handle(&msg, from, protected) {
                    if let NetOut::Respond(r) = out {
                        let peer = if protected {
                            Link::protected_peer(to, src, Transport::Udp)
                        } else {
                            Peer::new(Transport::Udp, pcscf)
                        };
                        ue.handle_message(now, r, peer);
                    }
                }
            }
            Output::Event(Event::Registered { .. }) => ok = true,
            _ => {}
        }
    }
    ok
}

fn bench(c: &mut Criterion) {
    assert!(register(1));
    let mut seed = 0;
    c.bench_function("ue_aka_ipsec_registration", |b| {
        b.iter(|| {
            seed += 1;
            assert!(register(seed));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
