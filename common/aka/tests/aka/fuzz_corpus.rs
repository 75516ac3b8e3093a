//! Replays the committed fuzz seed corpus (fuzz/corpus/aka_nonce) and random inputs through
//! the same entry point as the cargo-fuzz target, so CI exercises it on stable.

use imslab_aka::fuzzing::nonce_round_trip;
use rand::Rng;

use crate::rng;

#[test]
fn fuzz_seed_corpus_replays_through_the_nonce_entry_point() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/aka_nonce");
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("seed corpus {dir}: {e}"));
    let mut n = 0;
    for e in entries {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        nonce_round_trip(&data);
        n += 1;
    }
    assert!(n >= 5, "expected a seed corpus, found {n} files");
}

#[test]
fn random_and_mutated_inputs_never_panic_the_nonce_entry_point() {
    let mut rng = rng(1234);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\" -";
    for _ in 0..20_000 {
        let len = rng.random_range(0..200);
        let s: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        nonce_round_trip(&s);
        let raw: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        nonce_round_trip(&raw);
    }
}
