//! Duplicate request detection (RFC 6733 §5.5.4, §6.2): answers sent recently, keyed by the
//! request's Origin-Host and End-to-End Identifier, so a retransmitted request (T bit) gets the
//! same answer instead of being processed twice.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// A bounded cache of recent answers. The oldest entry is evicted when full; entries expire
/// after a time to live.
#[derive(Debug)]
pub struct DuplicateCache {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<(String, u32), (Instant, Bytes)>,
    order: VecDeque<(Instant, String, u32)>,
}

impl DuplicateCache {
    /// A cache holding at most `capacity` answers for `ttl` each.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity,
            ttl,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers the encoded answer to the request (`origin_host`, `end_to_end`).
    pub fn insert(&mut self, now: Instant, origin_host: &str, end_to_end: u32, answer: Bytes) {
        if self.capacity == 0 {
            return;
        }
        self.expire(now);
        // Every insert gets its own record, so a replaced entry still expires and is evicted
        // by the record of its latest insert; older records of that key are stale and skipped.
        while self.entries.len() >= self.capacity || self.order.len() >= 2 * self.capacity {
            let Some(record) = self.order.pop_front() else {
                break;
            };
            self.remove_if_current(record);
        }
        self.entries
            .insert((origin_host.to_owned(), end_to_end), (now, answer));
        self.order
            .push_back((now, origin_host.to_owned(), end_to_end));
    }

    /// Removes the entry a record points at, unless the key was inserted again since.
    fn remove_if_current(&mut self, (t, h, e): (Instant, String, u32)) {
        let key = (h, e);
        if self.entries.get(&key).is_some_and(|(at, _)| *at == t) {
            self.entries.remove(&key);
        }
    }

    /// The cached answer for a duplicate, with its Hop-by-Hop Identifier replaced by that of the
    /// new copy of the request (RFC 6733 §6.2).
    pub fn lookup(
        &mut self,
        now: Instant,
        origin_host: &str,
        end_to_end: u32,
        hop_by_hop: u32,
    ) -> Option<Bytes> {
        self.expire(now);
        let (_, answer) = self.entries.get(&(origin_host.to_owned(), end_to_end))?;
        let mut v = answer.to_vec();
        if let Some(h) = v.get_mut(12..16) {
            h.copy_from_slice(&hop_by_hop.to_be_bytes());
        }
        Some(Bytes::from(v))
    }

    /// How many answers are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((t, _, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < self.ttl {
                break;
            }
            if let Some(record) = self.order.pop_front() {
                self.remove_if_current(record);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(hbh: u32) -> Bytes {
        let mut v = vec![0u8; 20];
        v[12..16].copy_from_slice(&hbh.to_be_bytes());
        Bytes::from(v)
    }

    #[test]
    fn duplicate_gets_the_cached_answer_with_its_own_hop_by_hop() {
        let t0 = Instant::now();
        let mut c = DuplicateCache::new(10, Duration::from_secs(60));
        c.insert(t0, "scscf.example", 77, answer(1));
        let again = c.lookup(t0, "scscf.example", 77, 9).expect("cached");
        assert_eq!(&again[12..16], &9u32.to_be_bytes());
        assert_eq!(c.lookup(t0, "other.example", 77, 9), None);
    }

    #[test]
    fn cache_is_bounded_and_entries_expire() {
        let t0 = Instant::now();
        let mut c = DuplicateCache::new(2, Duration::from_secs(60));
        for e in 0..5 {
            c.insert(t0, "h", e, answer(e));
        }
        assert_eq!(c.len(), 2);
        assert!(c.lookup(t0, "h", 0, 0).is_none());
        assert!(c.lookup(t0, "h", 4, 0).is_some());
        assert!(c.lookup(t0 + Duration::from_secs(61), "h", 4, 0).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn answer_cached_twice_under_one_end_to_end_id_expires_and_never_exceeds_capacity() {
        // Two requests with one End-to-End id, both answered before either answer was cached:
        // the second insert replaces the first, and must expire a TTL after itself.
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut c = DuplicateCache::new(4, ttl);
        c.insert(t0, "h", 7, answer(1));
        c.insert(t0 + Duration::from_secs(1), "h", 7, answer(2));
        assert!(c.lookup(t0 + Duration::from_secs(60), "h", 7, 0).is_some());
        assert!(c.lookup(t0 + Duration::from_secs(61), "h", 7, 0).is_none());
        assert!(c.is_empty());
        // A peer repeating that pattern with fresh ids must not grow the cache past capacity.
        for e in 0..100u32 {
            let t = t0 + Duration::from_secs(100 + 61 * u64::from(e));
            c.insert(t, "h", e, answer(e));
            c.insert(t + Duration::from_secs(1), "h", e, answer(e));
            assert!(c.len() <= 4, "{} entries after round {e}", c.len());
        }
    }
}
