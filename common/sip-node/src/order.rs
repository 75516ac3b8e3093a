//! [`DecisionOrder`]: requests that belong together are decided one at a time, in arrival
//! order. Pure bookkeeping (no clock, no tasks); the node drives it.
//!
//! Requests are grouped by Call-ID: a dialog is Call-ID plus the two tags (RFC 3261 §12), so
//! the Call-ID alone is a safe superset of it. An ACK for a 2xx and the BYE right behind it are
//! then decided in the order they came, and a REGISTER refresh waits for the previous REGISTER
//! of the same Call-ID (RFC 3261 §10.2.4, §10.3 step 7: CSeq ordering). Different Call-IDs are
//! decided concurrently.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Requests of one key that may wait behind the one being decided. Beyond it a request is
/// refused ([`Admit::Full`]).
pub(crate) const MAX_WAITING_PER_KEY: usize = 32;

/// What to do with a request that just arrived.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit<T> {
    /// Nothing of its key is being decided: hand it to the handler now.
    Start(T),
    /// It waits; [`DecisionOrder::decided`] hands it out later.
    Queued,
    /// Its key's queue is full: refuse it.
    Full(T),
}

/// Per key, the request being decided and those waiting behind it, in arrival order.
#[derive(Debug)]
pub(crate) struct DecisionOrder<I, K, T> {
    /// Requests being decided, with their key.
    running: HashMap<I, K>,
    /// Keys with a request being decided, and what waits behind it.
    waiting: HashMap<K, VecDeque<(I, T)>>,
    bound: usize,
}

impl<I, K, T> DecisionOrder<I, K, T>
where
    I: Copy + Eq + Hash,
    K: Clone + Eq + Hash,
{
    /// An empty order with at most `bound` requests waiting per key.
    pub(crate) fn new(bound: usize) -> Self {
        Self {
            running: HashMap::new(),
            waiting: HashMap::new(),
            bound,
        }
    }

    /// A request `id` arrived. Without a key it is independent of every other request.
    pub(crate) fn admit(&mut self, id: I, key: Option<K>, item: T) -> Admit<T> {
        let Some(key) = key else {
            return Admit::Start(item);
        };
        match self.waiting.get_mut(&key) {
            Some(queue) if queue.len() >= self.bound => Admit::Full(item),
            Some(queue) => {
                queue.push_back((id, item));
                Admit::Queued
            }
            None => {
                self.waiting.insert(key.clone(), VecDeque::new());
                self.running.insert(id, key);
                Admit::Start(item)
            }
        }
    }

    /// The request `id` has been decided (or its decision was abandoned): the next request of
    /// its key, if any, to hand to the handler now. Unknown ids (keyless requests) yield none.
    pub(crate) fn decided(&mut self, id: I) -> Option<(I, T)> {
        let key = self.running.remove(&id)?;
        let queue = self.waiting.get_mut(&key)?;
        match queue.pop_front() {
            Some((next, item)) => {
                self.running.insert(next, key);
                Some((next, item))
            }
            None => {
                self.waiting.remove(&key);
                None
            }
        }
    }

    /// Keys with a request being decided.
    #[cfg(test)]
    fn busy_keys(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Order = DecisionOrder<u32, &'static str, &'static str>;

    #[test]
    fn first_request_of_a_key_starts_at_once() {
        let mut o = Order::new(4);
        assert_eq!(o.admit(1, Some("call-a"), "INVITE"), Admit::Start("INVITE"));
    }

    #[test]
    fn later_requests_of_a_key_wait_and_start_in_arrival_order() {
        let mut o = Order::new(4);
        assert_eq!(o.admit(1, Some("call-a"), "INVITE"), Admit::Start("INVITE"));
        assert_eq!(o.admit(2, Some("call-a"), "ACK"), Admit::Queued);
        assert_eq!(o.admit(3, Some("call-a"), "BYE"), Admit::Queued);
        assert_eq!(o.decided(1), Some((2, "ACK")));
        // The BYE still waits for the ACK's decision.
        assert_eq!(o.decided(1), None);
        assert_eq!(o.decided(2), Some((3, "BYE")));
        assert_eq!(o.decided(3), None);
        assert_eq!(o.busy_keys(), 0);
    }

    #[test]
    fn other_keys_are_not_held_up() {
        let mut o = Order::new(4);
        assert_eq!(o.admit(1, Some("call-a"), "INVITE"), Admit::Start("INVITE"));
        assert_eq!(o.admit(2, Some("call-a"), "ACK"), Admit::Queued);
        assert_eq!(o.admit(3, Some("call-b"), "INVITE"), Admit::Start("INVITE"));
        assert_eq!(o.decided(3), None);
        assert_eq!(o.decided(1), Some((2, "ACK")));
    }

    #[test]
    fn a_request_without_key_always_starts_and_is_not_tracked() {
        let mut o = Order::new(4);
        assert_eq!(o.admit(1, None, "OPTIONS"), Admit::Start("OPTIONS"));
        assert_eq!(o.admit(2, None, "OPTIONS"), Admit::Start("OPTIONS"));
        assert_eq!(o.decided(1), None);
        assert_eq!(o.busy_keys(), 0);
    }

    #[test]
    fn beyond_the_bound_a_request_is_refused_and_the_queue_is_unchanged() {
        let mut o = Order::new(2);
        assert_eq!(
            o.admit(1, Some("call-a"), "REGISTER 1"),
            Admit::Start("REGISTER 1")
        );
        assert_eq!(o.admit(2, Some("call-a"), "REGISTER 2"), Admit::Queued);
        assert_eq!(o.admit(3, Some("call-a"), "REGISTER 3"), Admit::Queued);
        assert_eq!(
            o.admit(4, Some("call-a"), "REGISTER 4"),
            Admit::Full("REGISTER 4")
        );
        assert_eq!(o.decided(1), Some((2, "REGISTER 2")));
        // One slot freed: the next one queues again.
        assert_eq!(o.admit(5, Some("call-a"), "REGISTER 5"), Admit::Queued);
        assert_eq!(o.decided(2), Some((3, "REGISTER 3")));
        assert_eq!(o.decided(3), Some((5, "REGISTER 5")));
        assert_eq!(o.decided(5), None);
    }

    #[test]
    fn a_key_is_free_again_once_its_queue_drains() {
        let mut o = Order::new(4);
        assert_eq!(
            o.admit(1, Some("call-a"), "REGISTER 1"),
            Admit::Start("REGISTER 1")
        );
        assert_eq!(o.decided(1), None);
        assert_eq!(
            o.admit(2, Some("call-a"), "REGISTER 2"),
            Admit::Start("REGISTER 2")
        );
        assert_eq!(o.busy_keys(), 1);
    }

    #[test]
    fn a_decision_reported_twice_does_not_release_the_next_request_twice() {
        let mut o = Order::new(4);
        assert_eq!(o.admit(1, Some("call-a"), "INVITE"), Admit::Start("INVITE"));
        assert_eq!(o.admit(2, Some("call-a"), "ACK"), Admit::Queued);
        assert_eq!(o.admit(3, Some("call-a"), "BYE"), Admit::Queued);
        assert_eq!(o.decided(1), Some((2, "ACK")));
        assert_eq!(o.decided(1), None);
        assert_eq!(o.decided(99), None);
        assert_eq!(o.decided(2), Some((3, "BYE")));
    }

    #[test]
    fn a_virtual_interleaving_of_two_calls_keeps_each_call_in_order() {
        // Arrivals and decisions interleaved as a node would see them; each call's requests
        // must come out in arrival order, whatever the other call does.
        let mut o = DecisionOrder::<u32, &str, u32>::new(8);
        let mut started: Vec<(u32, &str)> = Vec::new();
        let arrivals = [(1, "a"), (2, "b"), (3, "a"), (4, "a"), (5, "b"), (6, "a")];
        for (id, key) in arrivals {
            if let Admit::Start(id) = o.admit(id, Some(key), id) {
                started.push((id, key));
            }
        }
        // Decide whatever runs, newest call first, until nothing is left.
        let mut running: Vec<(u32, &str)> = started.clone();
        while let Some((id, key)) = running.pop() {
            if let Some((next, _)) = o.decided(id) {
                running.push((next, key));
                started.push((next, key));
            }
        }
        let order = |k: &str| -> Vec<u32> {
            started
                .iter()
                .filter(|(_, key)| *key == k)
                .map(|(id, _)| *id)
                .collect()
        };
        assert_eq!(order("a"), vec![1, 3, 4, 6]);
        assert_eq!(order("b"), vec![2, 5]);
        assert_eq!(o.busy_keys(), 0);
    }
}
