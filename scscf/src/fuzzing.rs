//! Entry points for `cargo fuzz` (targets `scscf_user_data`, `scscf_register` in `/fuzz`) and
//! for the corpus replay in this crate's tests. Each takes arbitrary bytes and must never
//! panic. `register` also routes the message as a session request through a core holding a
//! registration with an iFC, ENUM and a breakout configured.

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
    r.handle_request(now, ReqId(3), msg.clone(), false);
    while r.poll_output().is_some() {}
    r.handle_timeout(now.after(Duration::from_secs(700_000)));
    while r.poll_output().is_some() {}
    route(now, msg);
}

/// Routes `msg` (as an initial or in-dialog request, and with the registered phone's P-CSCF
/// as previous hop) through a core with one registration: every output is drained, ENUM
/// queries get a NAPTR answer built from the message's body.
fn route(now: Now, msg: Message) {
    let domain = "ims.mnc001.mcc001.3gppnetwork.org";
    let Ok(realm) = Realm::new(domain) else {
        return;
    };
    let cfg = imslab_config::ScscfConfig {
        icscf: Some("sip:127.0.0.1:4060".into()),
        breakout: Some("sip:trunk.example.net".into()),
        breakout_username: Some("u".into()),
        breakout_password: Some("p".into()),
        enum_server: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 53))),
        ..Default::default()
    };
    let Ok(s) = Settings::from_config(&cfg, &realm, "hss.ims.mnc001.mcc001.3gppnetwork.org") else {
        return;
    };
    let mut r = Registrar::new(s, Box::new(|| [7; 16]), 0);
    let (Ok(impu), Ok(tel), Ok(impi)) = (
        imslab_types::Impu::new(format!("sip:alice@{domain}")),
        imslab_types::Impu::new("tel:+15550001"),
        imslab_types::Impi::new(format!("alice@{domain}")),
    ) else {
        return;
    };
    let user_data = format!(
        "<IMSSubscription><PrivateID>{impi}</PrivateID><ServiceProfile>\
         <PublicIdentity><Identity>{impu}</Identity></PublicIdentity>\
         <InitialFilterCriteria><Priority>0</Priority><TriggerPoint><ConditionTypeCNF>0\
         </ConditionTypeCNF><SPT><Group>0</Group><Method>MESSAGE</Method></SPT></TriggerPoint>\
         <ApplicationServer><ServerName>sip:127.0.0.1:5070</ServerName></ApplicationServer>\
         </InitialFilterCriteria></ServiceProfile></IMSSubscription>"
    );
    r.restore(
        now,
        vec![imslab_store::ScscfRegistration {
            impu: impu.clone(),
            impi: impi.clone(),
            state: imslab_store::RegState::Registered,
            implicit_set: vec![impu.clone(), tel],
            user_data: Some(user_data),
            charging: None,
        }],
        vec![imslab_store::Binding {
            impu,
            impi,
            contact: "sip:alice@10.45.0.2:5060".into(),
            expires_at: now.wall + Duration::from_secs(600),
            q_milli: None,
            path: vec!["<sip:term@127.0.0.1:5060;lr>".into()],
            instance_id: None,
            reg_id: None,
            call_id: "reg@ue".into(),
            cseq: 1,
            pcscf_flow: None,
            received: None,
            user_agent: None,
            contact_params: None,
        }],
        Vec::new(),
    );
    let mut from_pcscf = msg.clone();
    let _ = from_pcscf.prepend_header(
        imslab_sip::HeaderName::VIA,
        "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfuzz",
    );
    let regexp = String::from_utf8_lossy(msg.body()).into_owned();
    for (i, (m, stateless)) in [
        (msg, false),
        (from_pcscf.clone(), false),
        (from_pcscf, true),
    ]
    .into_iter()
    .enumerate()
    {
        r.handle_request(now, ReqId(10 + i as u64), m, stateless);
        while let Some(o) = r.poll_output() {
            if let crate::registrar::Output::Enum { task, .. } = o {
                let rec = crate::e164::NaptrRecord {
                    order: 1,
                    preference: 1,
                    flags: "u".into(),
                    services: "E2U+sip".into(),
                    regexp: regexp.clone(),
                    replacement: ".".into(),
                };
                r.handle_enum_answer(now, task, Ok(vec![rec]));
            }
        }
    }
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
