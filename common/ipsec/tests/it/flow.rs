//! The whole security agreement as the P-CSCF and a soft UE would drive it, over userspace ESP
//! between 127.0.0.1 (P-CSCF) and 127.0.0.2 (UE): Security-Client → choice → temporary SAs →
//! Security-Server → protected REGISTER with Security-Verify → established SAs →
//! re-registration switching to new SAs → deregistration. No SIP stack: header values only.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use imslab_ipsec::header::{self, IpsecMechanism};
use imslab_ipsec::negotiate::{self, Advertise, Preference};
use imslab_ipsec::socket::{EspSocket, Incoming, ReceivedUdp};
use imslab_ipsec::{
    CipherSuite, Diagnosis, EncryptionAlg, Endpoint, EspDrop, EspKeys, RemovalReason, SaAction,
    SaBundle, SaRole, SaTable, SaTableConfig, Spi,
};
use imslab_types::Outcome;

use crate::support::aka_keys;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn next(sock: &EspSocket, mine: &[Spi]) -> Incoming {
    loop {
        let got = tokio::time::timeout(Duration::from_secs(5), sock.recv())
            .await
            .expect("no ESP packet within 5 s")
            .unwrap();
        match &got {
            Incoming::Dropped(d) if !mine.contains(&d.reason.spi()) => continue,
            _ => return got,
        }
    }
}

fn udp(i: Incoming) -> ReceivedUdp {
    match i {
        Incoming::Udp(u) => u,
        other => panic!("expected UDP, got {other:?}"),
    }
}

fn apply(sock: &EspSocket, actions: &[SaAction]) {
    for a in actions {
        sock.apply(a).unwrap();
    }
}

/// The soft UE's Security-Client: one mechanism per suite, SPIs and ports of its own.
fn security_client(spi_c: u32, port_c: u16) -> String {
    CipherSuite::all()
        .map(|s| {
            format!(
                "ipsec-3gpp;alg={};ealg={};prot=esp;mod=trans;spi-c={spi_c};spi-s={};port-c={port_c};port-s={}",
                s.integrity,
                s.encryption,
                spi_c + 1,
                port_c + 2
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The UE side after the 401: its bundle from the Security-Server it received.
fn ue_bundle(
    server_value: &str,
    ue_ip: IpAddr,
    pcscf_ip: IpAddr,
    spi_c: u32,
    port_c: u16,
) -> SaBundle {
    let server = header::parse_value(server_value).unwrap();
    let first = IpsecMechanism::from_mechanism(&server[0]).unwrap();
    let (ik, ck) = aka_keys();
    let local = Endpoint {
        ip: ue_ip,
        spi_c: Spi(spi_c),
        spi_s: Spi(spi_c + 1),
        port_c,
        port_s: port_c + 2,
    };
    let remote = Endpoint {
        ip: pcscf_ip,
        spi_c: first.spi_c,
        spi_s: first.spi_s,
        port_c: first.port_c,
        port_s: first.port_s,
    };
    SaBundle::new(local, remote, EspKeys::derive(first.suite, &ik, &ck))
}

#[tokio::test]
async fn registration_reregistration_and_deregistration_over_userspace_esp_for_every_suite() {
    let (p_ip, u_ip) = (ip("127.0.0.1"), ip("127.0.0.2"));
    let pcscf = EspSocket::bind(p_ip).expect("raw ESP socket (CAP_NET_RAW)");
    let ue = EspSocket::bind(u_ip).expect("raw ESP socket (CAP_NET_RAW)");
    for (n, suite) in CipherSuite::all().enumerate() {
        let base = 0x60_0000 + 0x1000 * n as u32;
        let cfg = SaTableConfig {
            spi_range: base..=base + 0xff,
            ..SaTableConfig::default()
        };
        let mut table: SaTable<&str> = SaTable::new(cfg).unwrap();
        let pref = Preference::new([suite]);
        let t0 = Instant::now();
        let (ue_spi, ue_port) = (base + 0x800, 5062);

        // 1. Unprotected REGISTER: choose, create temporary SAs, answer 401 with Security-Server.
        let client_value = security_client(ue_spi, ue_port);
        let client = header::parse_value(&client_value).unwrap();
        let chosen = negotiate::choose(&client, &pref).unwrap();
        assert_eq!(chosen.suite(), suite);
        let (ik, ck) = aka_keys();
        let keys = EspKeys::derive(chosen.suite(), &ik, &ck);
        let created = table
            .create_temporary("alice", p_ip, Endpoint::from_offer(u_ip, &chosen), keys, t0)
            .unwrap();
        apply(&pcscf, &created.actions);
        let sent_server = negotiate::security_server(
            &chosen,
            &created.local,
            &client,
            &pref,
            Advertise::ChosenOnly,
        );
        let server_value = header::print_list(&sent_server);

        // 2. The UE builds the same SAs from the 401 and sends the protected REGISTER.
        let ub = ue_bundle(&server_value, u_ip, p_ip, ue_spi, ue_port);
        assert_eq!(
            ub,
            table.get(created.id).unwrap().bundle.mirrored(),
            "{suite}"
        );
        ue.install(&ub).unwrap();
        let mine: Vec<Spi> = ub.sas().iter().map(|s| s.spi).collect();
        let register =
            format!("REGISTER sip:ims.example SIP/2.0\r\nSecurity-Verify: {server_value}\r\n\r\n");
        let to_server = ub.sa(SaRole::OutboundFromClient);
        ue.send_udp(to_server.src.port(), to_server.dst, register.as_bytes())
            .await
            .unwrap();
        let got = udp(next(&pcscf, &mine).await);
        assert_eq!(
            (got.from, got.to.port()),
            (SocketAddr::new(u_ip, ue_port), 6100)
        );
        assert!(table.inbound_used(got.spi).is_empty());
        let verify_line = String::from_utf8(got.payload).unwrap();
        let verify_value = verify_line
            .split("Security-Verify: ")
            .nth(1)
            .unwrap()
            .trim_end();
        let verify = header::parse_value(verify_value).unwrap();
        assert_eq!(
            negotiate::check_security_verify(&sent_server, &verify),
            Ok(()),
            "{suite}"
        );
        assert!(
            table
                .authenticated(created.id, Duration::from_secs(600), t0)
                .unwrap()
                .is_empty()
        );
        pcscf
            .send_udp(6100, got.from, b"SIP/2.0 200 OK\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            udp(next(&ue, &mine).await).payload,
            b"SIP/2.0 200 OK\r\n\r\n"
        );

        // 3. A bid-down attempt: Security-Verify with ealg=null is rejected, with a UE event.
        let weaker = if suite.encryption == EncryptionAlg::Null {
            "aes-cbc"
        } else {
            "null"
        };
        let forged_value = server_value.replace(
            &format!("ealg={}", suite.encryption),
            &format!("ealg={weaker}"),
        );
        let forged = header::parse_value(&forged_value).unwrap();
        let mismatch = negotiate::check_security_verify(&sent_server, &forged).unwrap_err();
        assert_eq!(Diagnosis::from(&mismatch).outcome, Outcome::Failed);

        // 4. Re-registration: new SPIs and ports from the UE, over the old SAs, then the new.
        let (ue_spi2, ue_port2) = (base + 0x900, 5072);
        let client2 = header::parse_value(&security_client(ue_spi2, ue_port2)).unwrap();
        let chosen2 = negotiate::choose(&client2, &pref).unwrap();
        let t1 = t0 + Duration::from_secs(300);
        let created2 = table
            .create_temporary(
                "alice",
                p_ip,
                Endpoint::from_offer(u_ip, &chosen2),
                EspKeys::derive(suite, &ik, &ck),
                t1,
            )
            .unwrap();
        apply(&pcscf, &created2.actions);
        let server2 = negotiate::security_server(
            &chosen2,
            &created2.local,
            &client2,
            &pref,
            Advertise::ChosenOnly,
        );
        let ub2 = ue_bundle(&header::print_list(&server2), u_ip, p_ip, ue_spi2, ue_port2);
        ue.install(&ub2).unwrap();
        let mine2: Vec<Spi> = mine
            .iter()
            .copied()
            .chain(ub2.sas().iter().map(|s| s.spi))
            .collect();
        let to_server2 = ub2.sa(SaRole::OutboundFromClient);
        ue.send_udp(
            to_server2.src.port(),
            to_server2.dst,
            b"REGISTER (protected, new SAs)",
        )
        .await
        .unwrap();
        let got2 = udp(next(&pcscf, &mine2).await);
        assert_eq!(got2.spi, created2.local.spi_s);
        assert!(table.inbound_used(got2.spi).is_empty());
        table
            .authenticated(created2.id, Duration::from_secs(600), t1)
            .unwrap();
        // The old set still works until the UE uses the new one.
        ue.send_udp(to_server.src.port(), to_server.dst, b"MESSAGE over old SAs")
            .await
            .unwrap();
        let old = udp(next(&pcscf, &mine2).await);
        assert!(table.inbound_used(old.spi).is_empty());
        ue.send_udp(
            to_server2.src.port(),
            to_server2.dst,
            b"MESSAGE over new SAs",
        )
        .await
        .unwrap();
        let new = udp(next(&pcscf, &mine2).await);
        let retired = table.inbound_used(new.spi);
        assert!(
            matches!(retired.as_slice(), [SaAction::Remove { id, reason: RemovalReason::Superseded, .. }] if *id == created.id)
        );
        apply(&pcscf, &retired);
        ue.remove(&ub);
        // A late packet on the old SA is now an unknown SPI at the P-CSCF.
        let mut late = imslab_ipsec::esp::OutboundSa::new(to_server.spi, &ub.keys).unwrap();
        let mut dgram = Vec::new();
        imslab_ipsec::inner::build_udp(to_server.src, to_server.dst, b"late", &mut dgram);
        let mut pkt = Vec::new();
        late.protect(17, &dgram, |iv| iv.fill(3), &mut pkt).unwrap();
        ue.send_raw(&pkt, p_ip).await.unwrap();
        match next(&pcscf, &mine2).await {
            Incoming::Dropped(d) => {
                assert_eq!(d.reason, EspDrop::UnknownSpi { spi: to_server.spi })
            }
            other => panic!("{suite}: expected unknown SPI, got {other:?}"),
        }

        // 5. Deregistration removes everything, SPIs included.
        let gone = table.remove_ue(&"alice", RemovalReason::Deregistered);
        assert_eq!(gone.len(), 1);
        apply(&pcscf, &gone);
        ue.remove(&ub2);
        assert_eq!((table.len(), table.spis_in_use()), (0, 0));
        assert_eq!(pcscf.sa_count(), (0, 0), "{suite}");
        assert_eq!(ue.sa_count(), (0, 0), "{suite}");
    }
}

#[tokio::test]
async fn thousand_register_deregister_cycles_leak_no_sas_or_spis() {
    let pcscf = EspSocket::bind(ip("127.0.0.1")).expect("raw ESP socket (CAP_NET_RAW)");
    let cfg = SaTableConfig {
        spi_range: 0x70_0000..=0x70_00ff,
        ..SaTableConfig::default()
    };
    let mut table: SaTable<u32> = SaTable::new(cfg).unwrap();
    let suite = CipherSuite::all().next().unwrap();
    let (ik, ck) = aka_keys();
    let mut now = Instant::now();
    for i in 0..1000u32 {
        let ue = Endpoint {
            ip: ip("127.0.0.2"),
            spi_c: Spi(0x71_0000 + 2 * i),
            spi_s: Spi(0x71_0001 + 2 * i),
            port_c: 5062,
            port_s: 5064,
        };
        let c = table
            .create_temporary(
                i % 10,
                ip("127.0.0.1"),
                ue,
                EspKeys::derive(suite, &ik, &ck),
                now,
            )
            .unwrap();
        apply(&pcscf, &c.actions);
        apply(
            &pcscf,
            &table
                .authenticated(c.id, Duration::from_secs(600), now)
                .unwrap(),
        );
        apply(
            &pcscf,
            &table.remove_ue(&(i % 10), RemovalReason::Deregistered),
        );
        now += Duration::from_millis(5);
    }
    assert_eq!((table.len(), table.spis_in_use()), (0, 0));
    assert_eq!(pcscf.sa_count(), (0, 0));
}
