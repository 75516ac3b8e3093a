//! Entry points for the cargo-fuzz targets `esp_packet`, `sec_agree_header` and `esp_tcp`
//! (`/work/main/fuzz`). Each decodes arbitrary bytes, and whatever decodes is re-encoded and
//! decoded again, asserting equality. Anything else must return an error, never panic. The unit
//! tests replay the committed seed corpus through the same functions.

use crate::alg::{CipherSuite, EncryptionAlg, IntegrityAlg};
use crate::esp::{InboundSa, OutboundSa};
use crate::header::{self, IpsecMechanism};
use crate::inner;
use crate::keys::EspKeys;
use crate::negotiate::{self, Preference};
use crate::spi::Spi;

/// The SPI of the fixed fuzzing SA.
pub const FUZZ_SPI: Spi = Spi(0x1000);

/// The fuzzing SA's keys for `suite`: fixed, so seed packets made with them decrypt.
pub fn fuzz_keys(suite: CipherSuite) -> EspKeys {
    let ik: Vec<u8> = (0..suite.integrity.key_len())
        .map(|i| i as u8 ^ 0x36)
        .collect();
    let ck: Vec<u8> = (0..suite.encryption.key_len())
        .map(|i| i as u8 ^ 0x5c)
        .collect();
    // Lengths come from the suite itself, so this cannot fail.
    EspKeys::from_raw(suite, &ik, &ck).unwrap_or_else(|_| unreachable!())
}

/// The suite a fuzz input selects with its first byte.
pub fn fuzz_suite(selector: u8) -> CipherSuite {
    let i = if selector & 1 == 0 {
        IntegrityAlg::HmacSha1_96
    } else {
        IntegrityAlg::HmacMd5_96
    };
    let e = match (selector >> 1) % 3 {
        0 => EncryptionAlg::AesCbc,
        1 => EncryptionAlg::DesEde3Cbc,
        _ => EncryptionAlg::Null,
    };
    CipherSuite::new(i, e)
}

/// Byte 0 selects the suite; the rest is (1) unprotected as an ESP packet of the fixed SA, and
/// if it passes, re-protected with the same IV and sequence number and unprotected again with
/// equal result; (2) protected as a payload and unprotected back; (3) parsed as inner UDP/TCP
/// and IPv4, with round trips of what parses.
pub fn esp_packet(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let suite = fuzz_suite(sel);
    let keys = fuzz_keys(suite);
    let (Ok(mut rx), Ok(mut tx)) = (
        InboundSa::new(FUZZ_SPI, &keys),
        OutboundSa::new(FUZZ_SPI, &keys),
    ) else {
        return;
    };

    // (1) decode -> encode -> decode.
    let mut packet = rest.to_vec();
    if let Ok(u) = rx.unprotect(&mut packet) {
        let (seq, nh, payload) = (u.seq, u.next_header, u.payload.to_vec());
        let iv_len = suite.encryption.iv_len();
        let iv = rest.get(8..8 + iv_len).unwrap_or_default().to_vec();
        let mut again = OutboundSa::new(FUZZ_SPI, &keys).unwrap_or_else(|_| unreachable!());
        again.set_next_seq_for_tests(seq);
        let mut out = Vec::new();
        let used = again.protect(nh, &payload, |b| b.copy_from_slice(&iv), &mut out);
        assert_eq!(used.ok(), Some(seq));
        let mut rx2 = InboundSa::new(FUZZ_SPI, &keys).unwrap_or_else(|_| unreachable!());
        let u2 = rx2
            .unprotect(&mut out)
            .unwrap_or_else(|e| panic!("re-protected packet dropped: {e}"));
        assert_eq!(
            (u2.seq, u2.next_header, u2.payload),
            (seq, nh, payload.as_slice())
        );
    }

    // (2) encode -> decode.
    let mut out = Vec::new();
    if tx.protect(17, rest, |b| b.fill(0xa5), &mut out).is_ok() {
        let mut rx3 = InboundSa::new(FUZZ_SPI, &keys).unwrap_or_else(|_| unreachable!());
        let u = rx3
            .unprotect(&mut out)
            .unwrap_or_else(|e| panic!("own packet dropped: {e}"));
        assert_eq!(u.payload, rest);
    }

    // (3) inner and outer headers.
    let src = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    let dst = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    if let Ok(t) = inner::parse_tcp(src, dst, rest) {
        let mut built = Vec::new();
        if inner::build_tcp(src, dst, &t, &mut built).is_ok() {
            assert_eq!(inner::parse_tcp(src, dst, &built).ok(), Some(t));
        }
    }
    if let Ok(u) = inner::parse_udp(src, dst, rest) {
        let mut built = Vec::new();
        inner::build_udp(
            (src, u.src_port).into(),
            (dst, u.dst_port).into(),
            u.payload,
            &mut built,
        );
        let again = inner::parse_udp(src, dst, &built);
        assert_eq!(
            again.map(|a| (a.src_port, a.dst_port, a.payload)),
            Ok((u.src_port, u.dst_port, u.payload))
        );
    }
    let _ = inner::parse_ipv4(rest);
}

/// Parses the input as a Security-Client/Server/Verify value; what parses prints and re-parses
/// to the same mechanisms, typed `ipsec-3gpp` views print and re-parse to the same view, and
/// choosing and verifying never panic.
pub fn sec_agree_header(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mechs) = header::parse_value(text) else {
        return;
    };
    let printed = header::print_list(&mechs);
    let again = header::parse_value(&printed)
        .unwrap_or_else(|e| panic!("printed value {printed:?} does not parse: {e}"));
    assert_eq!(again, mechs);
    for m in &mechs {
        if let Ok(t) = IpsecMechanism::from_mechanism(m) {
            let back = IpsecMechanism::from_mechanism(&t.to_mechanism());
            assert_eq!(back, Ok(t));
            assert!(negotiate::same_mechanism(m, &t.to_mechanism()));
        }
    }
    assert_eq!(negotiate::check_security_verify(&mechs, &again), Ok(()));
    let _ = negotiate::choose(&mechs, &Preference::default());
}

/// Drives a [`crate::tcp::EspTcp`] (listening on 6100 of 127.0.0.1, small limits) with
/// operations read from the input: byte 0 of each picks one. `0`/`1`: a segment from
/// 127.0.0.2 (port 5062 + 0..3) built from the next 13 bytes (seq, ack, flags, window) and a
/// payload of the length in the 14th, with a correct checksum; `2`: time advances (next byte
/// × 10 ms) and the timer fires; `3`: bytes are sent on the first connection, or a connection
/// is opened from 5100 to 127.0.0.2:5064. Every segment it emits must parse with a valid
/// checksum over its addresses and rebuild byte for byte; the limits must hold.
pub fn esp_tcp(data: &[u8]) {
    use crate::tcp::{EspTcp, EspTcpConfig, TcpEvent};
    use std::net::{IpAddr, SocketAddr};
    use std::time::{Duration, Instant};
    let local: IpAddr = [127, 0, 0, 1].into();
    let peer: IpAddr = [127, 0, 0, 2].into();
    let cfg = EspTcpConfig {
        max_per_peer: 2,
        max_total: 3,
        ..EspTcpConfig::default()
    };
    let mut now = Instant::now();
    let mut t = EspTcp::new(local, cfg, 1, now);
    t.listen(6100);
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 4 {
            0 | 1 => {
                let Some((h, tail)) = rest.split_first_chunk::<14>() else {
                    return;
                };
                let len = usize::from(h[13]).min(tail.len());
                let (payload, tail) = tail.split_at(len);
                rest = tail;
                let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
                let seg = inner::TcpSegment {
                    src_port: 5062 + u16::from(h[0] % 4),
                    dst_port: 6100,
                    seq: be32(1),
                    ack: be32(5),
                    flags: u16::from_be_bytes([h[9], h[10]]) & 0x0fff,
                    window: u16::from_be_bytes([h[11], h[12]]),
                    urgent: 0,
                    options: &[],
                    payload,
                };
                let mut bytes = Vec::new();
                if inner::build_tcp(peer, local, &seg, &mut bytes).is_ok() {
                    let from = SocketAddr::new(peer, seg.src_port);
                    let to = SocketAddr::new(local, 6100);
                    assert!(t.handle_segment(now, from, to, &bytes).is_ok());
                }
            }
            2 => {
                let Some((&d, tail)) = rest.split_first() else {
                    return;
                };
                rest = tail;
                now += Duration::from_millis(u64::from(d) * 10);
                t.handle_timeout(now);
            }
            _ => {
                let first = t.connections().map(|(id, _, _)| id).min();
                let r = match first {
                    Some(c) => t.send(now, c, b"OPTIONS sip:x SIP/2.0\r\n\r\n"),
                    None => t
                        .connect(now, 5100, SocketAddr::new(peer, 5064))
                        .map(|_| ()),
                };
                let _ = r;
            }
        }
        assert!(t.len() <= cfg.max_total);
        for ev in t.take_events() {
            if let TcpEvent::Segment { from, to, segment } = ev {
                let parsed = inner::parse_tcp(from.ip(), to.ip(), &segment)
                    .unwrap_or_else(|e| panic!("emitted segment does not parse: {e}"));
                let mut again = Vec::new();
                assert!(inner::build_tcp(from.ip(), to.ip(), &parsed, &mut again).is_ok());
                assert_eq!(again, segment);
            }
        }
    }
}

/// Seed inputs for `esp_tcp`: a SYN, a SYN and a timer, an own connection with data.
pub fn esp_tcp_seeds() -> Vec<(String, Vec<u8>)> {
    // op 0, port selector, seq, ack, flags (SYN), window, payload length.
    let syn = |port: u8| vec![0, port, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0x02, 0xff, 0xff, 0];
    let mut two = syn(0);
    two.extend(syn(1));
    two.extend(syn(2));
    let mut timed = syn(0);
    timed.extend([2, 100, 2, 250]);
    vec![
        ("syn".into(), syn(0)),
        ("three-syns".into(), two),
        ("syn-timer".into(), timed),
        ("connect-send-timer".into(), vec![3, 3, 2, 20, 3, 2, 200]),
    ]
}

/// Seed inputs for `esp_packet`: valid packets of every suite and edge-case lengths.
pub fn esp_packet_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for sel in 0u8..6 {
        let suite = fuzz_suite(sel);
        let keys = fuzz_keys(suite);
        let Ok(mut tx) = OutboundSa::new(FUZZ_SPI, &keys) else {
            continue;
        };
        for (name, payload) in [
            ("empty", Vec::new()),
            ("sip", b"OPTIONS sip:x SIP/2.0\r\n\r\n".to_vec()),
            ("block", vec![7u8; 14]),
        ] {
            let mut udp = Vec::new();
            inner::build_udp(
                std::net::SocketAddr::from(([127, 0, 0, 2], 5062)),
                std::net::SocketAddr::from(([127, 0, 0, 1], 6100)),
                &payload,
                &mut udp,
            );
            let mut p = vec![sel];
            if tx.protect(17, &udp, |b| b.fill(0x3c), &mut p).is_ok() {
                seeds.push((format!("{}-{name}", suite.to_string().replace('/', "_")), p));
            }
        }
    }
    seeds.push(("short".into(), vec![0, 0, 0, 0x10, 0]));
    seeds
}

/// Seed inputs for `sec_agree_header`.
pub fn sec_agree_header_seeds() -> Vec<(String, Vec<u8>)> {
    [
        ("client-sha1-aes", "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;prot=esp;mod=trans;spi-c=1111111;spi-s=2222222;port-c=5062;port-s=5064"),
        ("client-two", "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=1;spi-s=2;port-c=5062;port-s=5064, ipsec-3gpp;alg=hmac-md5-96;ealg=null;spi-c=1;spi-s=2;port-c=5062;port-s=5064"),
        ("server-q", "ipsec-3gpp;q=0.1;prot=esp;mod=trans;spi-c=3333333;spi-s=4444444;port-c=5100;port-s=6100;alg=hmac-sha-1-96;ealg=des-ede3-cbc"),
        ("digest-quoted", "digest;d-alg=md5;d-verify=\"0123456789abcdef0123456789abcdef\";d-qop=auth"),
        ("tls-flag", "tls;q=0.2;x-flag"),
        ("ipv6-value", "ipsec-3gpp;alg=hmac-md5-96;x-host=[2001:db8::1];spi-c=1;spi-s=2;port-c=3;port-s=4"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.as_bytes().to_vec()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn corpus(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(name)
    }

    /// Replays the committed corpus; `IMSLAB_WRITE_CORPUS=1` (re)writes the seeds first.
    fn replay(name: &str, seeds: Vec<(String, Vec<u8>)>, f: fn(&[u8])) {
        let dir = corpus(name);
        if std::env::var_os("IMSLAB_WRITE_CORPUS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            for (n, bytes) in &seeds {
                std::fs::write(dir.join(n), bytes).unwrap();
            }
        }
        let mut count = 0;
        for entry in
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {dir:?} missing: {e}"))
        {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            f(&data);
            count += 1;
        }
        assert!(
            count >= seeds.len(),
            "corpus {name} has {count} files, fewer than its {} seeds",
            seeds.len()
        );
        for (_, s) in seeds {
            f(&s);
        }
    }

    #[test]
    fn esp_packet_corpus_replays_without_failure() {
        replay("esp_packet", esp_packet_seeds(), esp_packet);
    }

    #[test]
    fn esp_tcp_corpus_replays_without_failure() {
        replay("esp_tcp", esp_tcp_seeds(), esp_tcp);
    }

    #[test]
    fn sec_agree_header_corpus_replays_without_failure() {
        replay(
            "sec_agree_header",
            sec_agree_header_seeds(),
            sec_agree_header,
        );
    }

    #[test]
    fn valid_seed_packets_really_decrypt() {
        for (name, data) in esp_packet_seeds().into_iter().filter(|(n, _)| n != "short") {
            let keys = fuzz_keys(fuzz_suite(data[0]));
            let mut rx = InboundSa::new(FUZZ_SPI, &keys).unwrap();
            let mut p = data[1..].to_vec();
            assert!(rx.unprotect(&mut p).is_ok(), "{name}");
        }
    }

    proptest! {
        #[test]
        fn protect_then_unprotect_returns_the_payload(sel in 0u8..6, payload in proptest::collection::vec(any::<u8>(), 0..1500), iv in any::<u8>(), nh in any::<u8>(), seqs in 1usize..4) {
            let keys = fuzz_keys(fuzz_suite(sel));
            let mut tx = OutboundSa::new(FUZZ_SPI, &keys).unwrap();
            let mut rx = InboundSa::new(FUZZ_SPI, &keys).unwrap();
            for n in 1..=seqs {
                let mut p = Vec::new();
                tx.protect(nh, &payload, |b| b.fill(iv), &mut p).unwrap();
                let u = rx.unprotect(&mut p).unwrap();
                prop_assert_eq!((u.seq, u.next_header, u.payload), (n as u32, nh, payload.as_slice()));
            }
        }

        #[test]
        fn arbitrary_operations_never_panic_the_tcp_endpoint(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            esp_tcp(&data);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_esp_and_header_entry_points(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            esp_packet(&data);
            sec_agree_header(&data);
        }

        #[test]
        fn generated_mechanisms_print_and_parse_back(
            names in proptest::collection::vec("[a-z][a-z0-9.-]{0,10}", 1..4),
            params in proptest::collection::vec(("[a-zA-Z][a-zA-Z0-9-]{0,8}", proptest::option::of("[a-zA-Z0-9.]{1,8}|\"[^\"\\\\]{0,12}\"")), 0..6),
        ) {
            let mechs: Vec<header::SecurityMechanism> = names.iter().map(|n| header::SecurityMechanism {
                name: n.clone(),
                params: params.iter().map(|(k, v)| header::MechParam { name: k.clone(), value: v.clone() }).collect(),
            }).collect();
            let printed = header::print_list(&mechs);
            prop_assert_eq!(header::parse_value(&printed).unwrap(), mechs);
            sec_agree_header(printed.as_bytes());
        }

        #[test]
        fn replay_window_matches_a_set_model(seqs in proptest::collection::vec(1u32..300, 1..200)) {
            let mut w = crate::esp::ReplayWindow::default();
            let mut seen = std::collections::BTreeSet::new();
            for s in seqs {
                let top = seen.iter().next_back().copied().unwrap_or(0);
                let model_ok = !seen.contains(&s) && (s > top || top - s < 64);
                prop_assert_eq!(w.check(s), model_ok, "seq {} top {}", s, top);
                if model_ok {
                    w.update(s);
                    seen.insert(s);
                }
            }
        }
    }
}
