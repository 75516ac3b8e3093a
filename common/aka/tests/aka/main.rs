//! imslab-aka integration tests: spec vectors from `testdata/`, network ↔ UE round trips,
//! resynchronisation, digest against the RFC examples and an independent Python oracle.

mod digest;
mod fuzz_corpus;
mod milenage_vectors;
mod network_ue;

use imslab_aka::Milenage;
use imslab_types::{K, Opc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The tests' only randomness: seeded, so every run sees the same subscribers.
pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A random subscriber's K and OPc.
pub(crate) fn subscriber(rng: &mut StdRng) -> (K, Opc) {
    (K::from_bytes(rng.random()), Opc::from_bytes(rng.random()))
}

pub(crate) fn milenage(k: &K, opc: &Opc) -> Milenage {
    Milenage::new(k, opc)
}

pub(crate) fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let mut b = [0u8; N];
    hex::decode_to_slice(s, &mut b).unwrap_or_else(|e| panic!("bad hex {s:?} for {N} bytes: {e}"));
    b
}
