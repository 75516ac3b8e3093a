//! Identifier generators (RFC 6733 §3) and the small deterministic RNG the state machines use
//! for jitter. Seeds and start times come from the caller.

/// Hop-by-Hop Identifiers: start at a random value, then increase by one (RFC 6733 §3).
#[derive(Debug, Clone)]
pub struct HopByHopIds {
    next: u32,
}

impl HopByHopIds {
    /// Starts at `random`.
    pub fn new(random: u32) -> Self {
        Self { next: random }
    }

    /// The next identifier.
    pub fn next_id(&mut self) -> u32 {
        let v = self.next;
        self.next = self.next.wrapping_add(1);
        v
    }
}

/// End-to-End Identifiers, unique across restarts: the high 12 bits are the low 12 bits of the
/// start time in seconds and the low 20 bits start random, then the value increases by one
/// (RFC 6733 §3).
#[derive(Debug, Clone)]
pub struct EndToEndIds {
    next: u32,
}

impl EndToEndIds {
    /// Seeds from the node's start time (seconds since the Unix epoch) and a random value.
    pub fn new(start_unix_secs: u64, random: u32) -> Self {
        let high = ((start_unix_secs & 0xfff) as u32) << 20;
        Self {
            next: high | (random & 0x000f_ffff),
        }
    }

    /// The next identifier.
    pub fn next_id(&mut self) -> u32 {
        let v = self.next;
        self.next = self.next.wrapping_add(1);
        v
    }
}

/// SplitMix64: a tiny deterministic generator for timer jitter and id seeds. Not for secrets.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`), slightly biased, which is fine for jitter.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_to_end_ids_carry_the_start_time_in_the_high_12_bits() {
        let mut ids = EndToEndIds::new(0x1234_5abc, 0xfff_ffff);
        let first = ids.next_id();
        assert_eq!(first >> 20, 0xabc);
        assert_eq!(first & 0xf_ffff, 0xf_ffff);
        assert_eq!(ids.next_id(), first.wrapping_add(1));
    }

    #[test]
    fn restarts_one_second_apart_start_in_different_ranges() {
        let a = EndToEndIds::new(1000, 5).next_id();
        let b = EndToEndIds::new(1001, 5).next_id();
        assert_ne!(a >> 20, b >> 20);
    }

    #[test]
    fn hop_by_hop_ids_increase_and_wrap() {
        let mut h = HopByHopIds::new(u32::MAX);
        assert_eq!(h.next_id(), u32::MAX);
        assert_eq!(h.next_id(), 0);
    }

    #[test]
    fn splitmix_is_deterministic_per_seed() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        assert!(a.below(10) < 10);
    }
}
