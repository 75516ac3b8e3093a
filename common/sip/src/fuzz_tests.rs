//! Replays the committed cargo-fuzz seed corpora and random or mutated inputs through the
//! [`crate::fuzzing`] entry points, so CI exercises the fuzz properties without nightly.

use std::path::PathBuf;

use proptest::prelude::*;

use crate::fuzzing;

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {} missing: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "seed corpus {} is empty", dir.display());
    files
}

#[test]
fn sip_message_seed_corpus_holds_the_fuzz_properties() {
    for (name, data) in corpus("sip_message") {
        let r = std::panic::catch_unwind(|| fuzzing::message(&data));
        assert!(r.is_ok(), "corpus file {name}");
    }
}

#[test]
fn sip_stream_seed_corpus_holds_the_fuzz_properties() {
    for (name, data) in corpus("sip_stream") {
        let r = std::panic::catch_unwind(|| fuzzing::stream(&data));
        assert!(r.is_ok(), "corpus file {name}");
    }
}

#[test]
fn sip_uri_seed_corpus_holds_the_fuzz_properties() {
    for (name, data) in corpus("sip_uri") {
        let r = std::panic::catch_unwind(|| fuzzing::uri_equivalence(&data));
        assert!(r.is_ok(), "corpus file {name}");
    }
}

proptest! {
    #[test]
    fn random_uri_pairs_hold_the_equivalence_properties(
        a in "(sip|sips|SIP|tel):[a-zA-Z0-9%.@:;=?&+-]{1,40}",
        b in "(sip|sips|SIP|tel):[a-zA-Z0-9%.@:;=?&+-]{1,40}",
    ) {
        fuzzing::uri_equivalence(format!("{a}\n{b}").as_bytes());
        fuzzing::uri_equivalence(format!("{a}\n{a}").as_bytes());
    }
}

const SEEDS: &[&[u8]] = &[
    include_bytes!("../testdata/ims/register.sip"),
    include_bytes!("../testdata/ims/unauthorized.sip"),
    include_bytes!("../testdata/ims/ok.sip"),
    include_bytes!("../testdata/ims/invite.sip"),
    include_bytes!("../testdata/rfc4475/3.1.1.1-wsinv.dat"),
    include_bytes!("../testdata/rfc4475/3.1.1.2-intmeth.dat"),
];

/// A mutation in the style of the dependency evaluation's fuzz run: byte flips, truncation,
/// inserted separators, deletions and duplications.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Delete(usize, usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = prop::sample::select(b";,:<>\"=@\\ \r\n%[]/?".to_vec());
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), special).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..20).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(mut data: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if data.is_empty() {
            break;
        }
        let len = data.len();
        match *m {
            Mutation::Flip(i, b) => {
                if let Some(x) = data.get_mut(i % len) {
                    *x ^= b;
                }
            }
            Mutation::Truncate(i) => data.truncate(i % len),
            Mutation::Insert(i, b) => data.insert(i % len, b),
            Mutation::Delete(i, n) => {
                let s = i % len;
                data.drain(s..(s + n).min(len));
            }
            Mutation::Duplicate(i, n) => {
                let s = i % len;
                let chunk: Vec<u8> = data.get(s..(s + n).min(len)).unwrap_or_default().to_vec();
                data.splice(s..s, chunk);
            }
        }
    }
    data
}

proptest! {
    // SIP_FUZZ_CASES raises the count for a longer local run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("SIP_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_ims_messages_never_break_the_parser(seed in 0..SEEDS.len(), muts in prop::collection::vec(mutation(), 1..6)) {
        let data = apply(SEEDS.get(seed).copied().unwrap_or_default().to_vec(), &muts);
        fuzzing::message(&data);
        fuzzing::stream(&data);
    }

    #[test]
    fn random_bytes_never_break_the_parser(data in prop::collection::vec(any::<u8>(), 0..600)) {
        fuzzing::message(&data);
        fuzzing::stream(&data);
    }
}
