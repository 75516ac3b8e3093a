//! Deterministic identifiers (tags, branches, Call-IDs, cnonces, SPIs) from a seed, so the UE
//! core stays pure: the driver seeds it from a random source, tests from a constant.

/// A small xorshift64* generator. Not cryptographic: it only has to make identifiers unique.
#[derive(Debug, Clone)]
pub struct Ids {
    state: u64,
}

impl Ids {
    /// A generator from `seed` (zero is replaced, xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A token of 16 hex digits.
    pub fn token(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }

    /// A fresh RFC 3261 branch (§8.1.1.7: starts with the magic cookie).
    pub fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.token())
    }

    /// An SPI in 0x1000_0000..0xefff_ffff: above the reserved range (RFC 4303 §2.1) and far
    /// from the P-CSCF's default allocation start, so tests can tell them apart.
    pub fn spi(&mut self) -> u32 {
        0x1000_0000 + (self.next_u64() % 0xdfff_ffff) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_identifiers_and_branches_carry_the_cookie() {
        let (mut a, mut b) = (Ids::new(7), Ids::new(7));
        assert_eq!(a.token(), b.token());
        let br = a.branch();
        assert!(br.starts_with("z9hG4bK") && br.len() == 23);
        assert_ne!(a.token(), a.token());
        let spi = a.spi();
        assert!((0x1000_0000..0xf000_0000).contains(&spi));
    }
}
