//! Entry points for the cargo-fuzz targets `pcscf_flow_token` and `pcscf_reginfo`
//! (`/work/main/fuzz`). Each decodes arbitrary bytes; whatever decodes is re-encoded and decoded
//! again, asserting equality; anything else must return `None` or an error, never panic. The
//! unit tests replay the committed seed corpus through the same functions.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::flow::{ConnTransport, Flow, FlowKey};
use crate::reg_event::parse_reginfo;
use crate::routing::{alias_value, parse_alias};

/// The fixed key of the fuzzing tokens, so seed tokens made with it decode.
pub fn fuzz_key() -> FlowKey {
    FlowKey::new([0x42; 32])
}

/// Boot number of the fuzzing tokens.
pub const FUZZ_BOOT: u32 = 7;

/// The input is (1) decoded as a Path flow token with the fuzzing key, a decoded flow
/// re-encoded and decoded to itself; (2) read as a NAT `alias` value, round-tripped likewise;
/// (3) used as the description of a flow (kind, address, port, connection id), which must
/// survive encode → decode.
pub fn flow_token(data: &[u8]) {
    let key = fuzz_key();
    let text = String::from_utf8_lossy(data);
    if let Some(flow) = key.decode(&text, FUZZ_BOOT) {
        let again = key.encode(&flow, FUZZ_BOOT);
        assert_eq!(key.decode(&again, FUZZ_BOOT), Some(flow));
    }
    if let Some((addr, t)) = parse_alias(&text) {
        assert_eq!(parse_alias(&alias_value(addr, &t)), Some((addr, t)));
    }
    if let Some(flow) = flow_of(data) {
        let token = key.encode(&flow, FUZZ_BOOT);
        assert_eq!(key.decode(&token, FUZZ_BOOT), Some(flow));
        assert_eq!(
            key.decode(&token, FUZZ_BOOT.wrapping_add(1)).is_some(),
            !matches!(flow, Flow::Connection { .. })
        );
    }
}

fn flow_of(data: &[u8]) -> Option<Flow> {
    let (&kind, rest) = data.split_first()?;
    let (ip, rest): (IpAddr, &[u8]) = if kind & 0x80 == 0 {
        let b = rest.get(..4)?;
        (Ipv4Addr::new(b[0], b[1], b[2], b[3]).into(), rest.get(4..)?)
    } else {
        let b: [u8; 16] = rest.get(..16)?.try_into().ok()?;
        (Ipv6Addr::from(b).into(), rest.get(16..)?)
    };
    let port = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    let remote = SocketAddr::new(ip, port);
    Some(match kind & 0x07 {
        0 => Flow::Udp { remote },
        1 => Flow::Protected { ue: remote },
        k => {
            let id = u64::from_be_bytes(rest.get(2..10)?.try_into().ok()?);
            let transport = match k {
                2 => ConnTransport::Tcp,
                3 => ConnTransport::Tls,
                4 => ConnTransport::Ws,
                _ => ConnTransport::Wss,
            };
            Flow::Connection {
                transport,
                remote,
                id,
            }
        }
    })
}

/// The input is parsed as a reginfo document; what parses is rendered back to XML and must
/// parse to the same document.
pub fn reginfo(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(info) = parse_reginfo(text) {
        let again = parse_reginfo(&info.to_xml())
            .unwrap_or_else(|e| panic!("rendered reginfo does not parse: {e}: {}", info.to_xml()));
        assert_eq!(again, info);
    }
}

/// The committed seeds of `pcscf_flow_token`.
pub fn flow_token_seeds() -> Vec<(String, Vec<u8>)> {
    let key = fuzz_key();
    let flows = [
        Flow::Udp {
            remote: "10.45.0.2:5060".parse().unwrap_or_else(|_| unreachable!()),
        },
        Flow::Protected {
            ue: "[2001:db8::7]:6200"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        },
        Flow::Connection {
            transport: ConnTransport::Tcp,
            remote: "192.0.2.9:40123".parse().unwrap_or_else(|_| unreachable!()),
            id: 42,
        },
    ];
    let mut seeds: Vec<(String, Vec<u8>)> = flows
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("token{i}"), key.encode(f, FUZZ_BOOT).into_bytes()))
        .collect();
    seeds.push(("alias".into(), b"198.51.100.9~40000~1".to_vec()));
    seeds.push(("alias6".into(), b"[2001:db8::1]~5060~5".to_vec()));
    seeds.push((
        "flow_v4".into(),
        vec![0x02, 127, 0, 0, 1, 0x13, 0xc4, 0, 0, 0, 0, 0, 0, 0, 9],
    ));
    seeds.push(("term".into(), b"term".to_vec()));
    seeds
}

/// The committed seeds of `pcscf_reginfo`.
pub fn reginfo_seeds() -> Vec<(String, Vec<u8>)> {
    let full = "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" \
        version=\"0\" state=\"full\"><registration aor=\"sip:alice@ims.example\" id=\"a\" \
        state=\"active\"><contact id=\"c\" state=\"active\" event=\"registered\" expires=\"600\">\
        <uri>sip:alice@10.45.0.2:5060;transport=udp</uri></contact></registration></reginfo>";
    let terminated = "<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"4\" \
        state=\"partial\"><registration aor=\"tel:+15550100\" state=\"terminated\">\
        <contact state=\"terminated\" event=\"deactivated\"><uri>sip:a@h&amp;x</uri></contact>\
        </registration><registration aor=\"sip:b@x\" state=\"init\"/></reginfo>";
    vec![
        ("full".into(), full.as_bytes().to_vec()),
        ("terminated".into(), terminated.as_bytes().to_vec()),
        ("not_reginfo".into(), b"<presence/>".to_vec()),
        (
            "truncated".into(),
            b"<reginfo><registration aor=\"x\"".to_vec(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;

    fn corpus(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
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
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {dir:?}: {e}")) {
            f(&std::fs::read(entry.unwrap().path()).unwrap());
            count += 1;
        }
        assert!(
            count >= seeds.len(),
            "corpus {name}: {count} files, {} seeds",
            seeds.len()
        );
        for (_, s) in seeds {
            f(&s);
        }
    }

    #[test]
    fn flow_token_corpus_replays_without_failure() {
        replay("pcscf_flow_token", flow_token_seeds(), flow_token);
    }

    #[test]
    fn reginfo_corpus_replays_without_failure() {
        replay("pcscf_reginfo", reginfo_seeds(), reginfo);
    }

    #[test]
    fn seed_tokens_really_decode() {
        for (name, t) in flow_token_seeds()
            .into_iter()
            .filter(|(n, _)| n.starts_with("token"))
        {
            let t = String::from_utf8(t).unwrap();
            assert!(fuzz_key().decode(&t, FUZZ_BOOT).is_some(), "{name}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_flow_token_decoder(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            flow_token(&data);
        }

        #[test]
        fn random_hex_tokens_never_panic(s in "[0-9a-f]{0,100}") {
            flow_token(s.as_bytes());
        }

        #[test]
        fn mutated_reginfo_never_panics(idx in 0usize..400, b in any::<u8>()) {
            for (_, mut seed) in reginfo_seeds() {
                let at = idx % seed.len().max(1);
                if let Some(x) = seed.get_mut(at) {
                    *x = b;
                }
                reginfo(&seed);
            }
        }
    }
}
