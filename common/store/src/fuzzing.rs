//! Fuzz entry points (see `fuzz/fuzz_targets/store_csv.rs`), replayed on the seed corpus by the
//! unit tests.

use crate::provision::{csv_field, parse_csv_records};

/// CSV round trip: whatever parses must print and parse back to the same records. Never panics
/// on any input; a mismatch is a bug and panics.
pub fn csv_records(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(first) = parse_csv_records(text) else {
        return;
    };
    let printed: String = first
        .iter()
        .map(|(_, fields)| {
            let cells: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            cells.join(",") + "\n"
        })
        .collect();
    let second = match parse_csv_records(&printed) {
        Ok(r) => r,
        Err(e) => panic!("printed CSV does not parse: {e}\n{printed:?}"),
    };
    let a: Vec<&Vec<String>> = first.iter().map(|(_, f)| f).collect();
    let b: Vec<&Vec<String>> = second.iter().map(|(_, f)| f).collect();
    assert_eq!(a, b, "CSV round trip changed the records of {text:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/store_csv");
        let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("seed corpus {dir} is missing: {e}"))
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn csv_seed_corpus_round_trips() {
        let seeds = corpus();
        assert!(seeds.len() >= 5, "seed corpus too small");
        for s in &seeds {
            csv_records(s);
        }
    }

    #[test]
    fn csv_random_and_mutated_inputs_never_panic() {
        // A small deterministic generator: no randomness source in unit tests.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"ab,\"\r\n #\t;|x1";
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            csv_records(&data);
        }
        for seed in corpus() {
            for i in 0..seed.len() {
                let mut m = seed.clone();
                m[i] = alphabet[(next() % alphabet.len() as u64) as usize];
                csv_records(&m);
                m.truncate(i);
                csv_records(&m);
            }
        }
    }
}
