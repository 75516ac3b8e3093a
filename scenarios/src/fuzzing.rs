//! Fuzz entry points (cargo-fuzz targets in `fuzz/`, corpora replayed by unit tests): each
//! takes arbitrary bytes and must never panic.

/// SMS RP/TP decoding ([`crate::ue::sms::decode`]); a decoded RP-DATA's text re-encodes and
/// decodes to the same text.
pub fn sms_rp(data: &[u8]) {
    if let Some(m) = crate::ue::sms::decode(data)
        && let Some(text) = m.text
        && m.kind == crate::ue::sms::RpType::DataMsToNetwork
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
    {
        let again = crate::ue::sms::submit(m.reference, "1234", "5678", &text);
        let back = crate::ue::sms::decode(&again).and_then(|b| b.text);
        assert_eq!(back.as_deref(), Some(text.as_str()));
    }
}

/// reginfo XML parsing ([`crate::ue::reginfo::parse`]).
pub fn reginfo(data: &[u8]) {
    let _ = crate::ue::reginfo::parse(data);
}

/// The scenario loader ([`crate::scenario::parse`]) on arbitrary text: errors, never panics.
pub fn scenario(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::scenario::parse(
            text,
            std::path::Path::new("fuzz.yaml"),
            &std::collections::BTreeMap::new(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(name);
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            out.push(std::fs::read(e.unwrap().path()).unwrap());
        }
        assert!(!out.is_empty(), "empty corpus {name}");
        out
    }

    fn mutations(seed: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for i in 0..seed.len().min(64) {
            let mut m = seed.to_vec();
            m[i] ^= 0xa5;
            out.push(m);
            out.push(seed[..i].to_vec());
        }
        out
    }

    #[test]
    fn sms_corpus_and_mutations_never_panic() {
        let mut seeds = corpus("scenarios_sms_rp");
        let encoded = [
            crate::ue::sms::submit(7, "491710000000", "4917612345678", "hello imslab"),
            crate::ue::sms::deliver(8, "491710000000", "4917612345678", "grüße"),
        ];
        for e in &encoded {
            assert!(crate::ue::sms::decode(e).and_then(|m| m.text).is_some());
        }
        seeds.extend(encoded);
        for s in seeds {
            sms_rp(&s);
            for m in mutations(&s) {
                sms_rp(&m);
            }
        }
    }

    #[test]
    fn reginfo_corpus_and_mutations_never_panic() {
        for s in corpus("scenarios_reginfo") {
            reginfo(&s);
            for m in mutations(&s) {
                reginfo(&m);
            }
        }
    }

    #[test]
    fn scenario_corpus_and_mutations_never_panic() {
        for s in corpus("scenarios_yaml") {
            scenario(&s);
            for m in mutations(&s) {
                scenario(&m);
            }
        }
    }
}
