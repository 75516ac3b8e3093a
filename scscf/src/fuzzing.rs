//! Entry points for `cargo fuzz` (targets `scscf_user_data`, `scscf_register` in `/fuzz`) and
//! for the corpus replay in this crate's tests. Each takes arbitrary bytes and must never
//! panic.

use std::time::{Duration, Instant, SystemTime};

use imslab_sip::Message;
use imslab_types::Realm;

use crate::ifc::{ImsSubscription, RequestFacts};
use crate::registrar::{Now, Registrar, ReqId, Settings};

/// Parses bytes as Cx User-Data (an IMSSubscription document from the HSS) and, when they
/// parse, evaluates every iFC against a REGISTER and an INVITE. The parser keeps no document
/// to re-encode, so this checks robustness and bounds, not a round trip.
pub fn user_data(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(sub) = ImsSubscription::parse(&text) else {
        return;
    };
    let headers = |name: &str| vec![format!("{name}-value")];
    for method in ["REGISTER", "INVITE"] {
        let facts = RequestFacts {
            method,
            request_uri: "sip:alice@ims.example",
            headers: &headers,
            sdp: "v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
            session_case: 0,
            registration_type: Some(0),
            registered: true,
        };
        for p in &sub.profiles {
            let _ = p.matching(&facts);
        }
    }
    let _ = sub.identities().count();
}

fn settings() -> Option<Settings> {
    let realm = Realm::new("ims.mnc001.mcc001.3gppnetwork.org").ok()?;
    Settings::from_config(
        &imslab_config::ScscfConfig::default(),
        &realm,
        "hss.ims.mnc001.mcc001.3gppnetwork.org",
    )
    .ok()
}

/// Feeds bytes that parse as a SIP message to a fresh registrar as a REGISTER, a SUBSCRIBE
/// and another request, drains every output, and fires the timers: whatever the UE sends,
/// the core answers or asks the HSS, and never panics.
pub fn register(data: &[u8]) {
    let Ok(msg) = Message::parse(data.to_vec()) else {
        return;
    };
    let Some(s) = settings() else { return };
    let mut n = 0u8;
    let mut r = Registrar::new(
        s,
        Box::new(move || {
            n = n.wrapping_add(1);
            [n; 16]
        }),
        0,
    );
    let now = Now {
        at: Instant::now(),
        wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000),
    };
    r.handle_register(now, ReqId(1), msg.clone(), None);
    r.handle_subscribe(now, ReqId(2), msg.clone());
    r.handle_request(now, ReqId(3), msg, false);
    while r.poll_output().is_some() {}
    r.handle_timeout(now.after(Duration::from_secs(700_000)));
    while r.poll_output().is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(name);
        let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
            .collect();
        assert!(!out.is_empty(), "corpus {name} is empty");
        out.sort();
        out
    }

    /// Deterministic pseudo-random mutations of the seeds (xorshift), so CI exercises more
    /// than the seeds without a fuzzer.
    fn mutations(seeds: &[Vec<u8>], rounds: usize) -> Vec<Vec<u8>> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::new();
        for s in seeds {
            for _ in 0..rounds {
                let mut m = s.clone();
                let edits = 1 + (next() % 8) as usize;
                for _ in 0..edits {
                    if m.is_empty() {
                        break;
                    }
                    let i = (next() as usize) % m.len();
                    match next() % 3 {
                        0 => m[i] = next() as u8,
                        1 => {
                            m.remove(i);
                        }
                        _ => {
                            let j = (next() as usize) % m.len();
                            let b = m[j];
                            m.insert(i, b);
                        }
                    }
                }
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn user_data_corpus_and_mutations_never_panic() {
        let seeds = corpus("scscf_user_data");
        assert!(
            seeds
                .iter()
                .any(|s| ImsSubscription::parse(&String::from_utf8_lossy(s)).is_ok()),
            "the corpus holds a valid document"
        );
        for s in seeds.iter().chain(mutations(&seeds, 200).iter()) {
            user_data(s);
        }
    }

    #[test]
    fn register_corpus_and_mutations_never_panic() {
        let seeds = corpus("scscf_register");
        for s in seeds.iter().chain(mutations(&seeds, 100).iter()) {
            register(s);
        }
    }
}
