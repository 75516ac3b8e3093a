//! INVITE dialogs the P-CSCF Record-Routed (TS 24.229 §5.2.6.3.3, §5.2.7), kept so a call's
//! life shows in the phone's timeline and the state stays bounded: an entry is created by the
//! initial INVITE, confirmed by a 2xx, and released by BYE, by a failure final response, by a
//! CANCEL's 487, or by its timeout (Timer C for an unanswered INVITE, RFC 3261 §16.6 step 11;
//! the session interval of RFC 4028 when negotiated, else a default, for a confirmed one).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use imslab_sip::Message;

use crate::registrations::RegKey;

/// Timer C: an INVITE with no final response for this long is given up (RFC 3261 §16.6).
pub const TIMER_C: Duration = Duration::from_secs(180);
/// A confirmed dialog with no session timer and no in-dialog request for this long is
/// forgotten (a lost BYE must not keep it forever).
pub const IDLE_DIALOG: Duration = Duration::from_secs(2 * 3600);

/// A dialog: Call-ID, the caller's From tag (forks share them) and the side of the phone
/// (a call between two phones of this P-CSCF passes it twice).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogKey {
    /// Call-ID.
    pub call_id: String,
    /// The From tag of the initial INVITE.
    pub from_tag: String,
    /// Which side of the P-CSCF the phone is on.
    pub side: Side,
}

impl DialogKey {
    /// The dialog a request or response belongs to; `None` without Call-ID or From tag.
    /// `reversed` is for a request the callee sends (its To tag is the caller's From tag).
    pub fn of(msg: &Message, reversed: bool, side: Side) -> Option<Self> {
        let call_id = msg.call_id().ok()?.as_str().to_owned();
        let tag = if reversed {
            msg.to_header().ok()?.tag()?.to_owned()
        } else {
            msg.from_header().ok()?.tag()?.to_owned()
        };
        Some(Self {
            call_id,
            from_tag: tag,
            side,
        })
    }
}

/// Which side of the P-CSCF the phone is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The phone is the caller.
    Originating,
    /// The phone is the callee.
    Terminating,
}

/// Where a dialog is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogState {
    /// INVITE sent, no 2xx yet (provisional responses, PRACK, UPDATE pass).
    Early,
    /// A 2xx arrived.
    Confirmed,
}

/// One tracked dialog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    /// The phone's registration.
    pub phone: RegKey,
    /// Which side it is on.
    pub side: Side,
    /// Where it is.
    pub state: DialogState,
    /// When it is dropped unless something happens.
    pub expires: Instant,
}

/// Why a dialog ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// A BYE passed.
    Bye,
    /// The INVITE failed with this final status (486, 480, 603, 487 after CANCEL...).
    Failed(u16),
    /// Nothing happened for too long.
    TimedOut(DialogState),
}

/// The bounded dialog table.
#[derive(Debug)]
pub struct Dialogs {
    map: HashMap<DialogKey, Dialog>,
    timers: BinaryHeap<Reverse<(Instant, DialogKey)>>,
    cap: usize,
}

impl Dialogs {
    /// An empty table that holds at most `cap` dialogs.
    pub fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            timers: BinaryHeap::new(),
            cap,
        }
    }

    /// Number of dialogs.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A dialog.
    pub fn get(&self, key: &DialogKey) -> Option<&Dialog> {
        self.map.get(key)
    }

    /// Whether one more dialog fits.
    pub fn has_room(&self) -> bool {
        self.map.len() < self.cap
    }

    /// An initial INVITE of `phone` passed: the dialog is early until Timer C. Returns false
    /// (and keeps nothing) when the table is full.
    pub fn start(&mut self, key: DialogKey, phone: RegKey, now: Instant) -> bool {
        if !self.map.contains_key(&key) && !self.has_room() {
            return false;
        }
        let expires = now + TIMER_C;
        let side = key.side;
        self.map.entry(key.clone()).or_insert(Dialog {
            phone,
            side,
            state: DialogState::Early,
            expires,
        });
        self.timers.push(Reverse((expires, key)));
        true
    }

    /// A 2xx to the INVITE (or a refresh: re-INVITE, UPDATE): confirmed for `session`
    /// (the Session-Expires interval) or [`IDLE_DIALOG`]. Returns whether it was early.
    pub fn confirm(&mut self, key: &DialogKey, session: Option<Duration>, now: Instant) -> bool {
        let Some(d) = self.map.get_mut(key) else {
            return false;
        };
        let was_early = d.state == DialogState::Early;
        d.state = DialogState::Confirmed;
        d.expires = now + session.map_or(IDLE_DIALOG, |s| s * 2);
        self.timers.push(Reverse((d.expires, key.clone())));
        was_early
    }

    /// The dialog ended; returns it.
    pub fn end(&mut self, key: &DialogKey) -> Option<Dialog> {
        self.map.remove(key)
    }

    /// Dialogs whose time ran out at `now`.
    pub fn take_expired(&mut self, now: Instant) -> Vec<(DialogKey, Dialog)> {
        let mut out = Vec::new();
        while let Some(Reverse((at, key))) = self.timers.peek().cloned() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.map.get(&key).is_some_and(|d| d.expires <= now)
                && let Some(d) = self.map.remove(&key)
            {
                out.push((key, d));
            }
        }
        // Stale timer entries of ended dialogs must not pile up.
        if self.timers.len() > 4 * self.map.len() + 64 {
            let live: Vec<_> = self
                .map
                .iter()
                .map(|(k, d)| Reverse((d.expires, k.clone())))
                .collect();
            self.timers = live.into();
        }
        out
    }

    /// When [`Dialogs::take_expired`] next has work.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imslab_types::Impu;

    fn phone() -> RegKey {
        RegKey {
            impu: Impu::new("sip:a@ims.example").unwrap(),
            contact: "sip:a@127.0.0.2:5060".into(),
        }
    }

    fn key(n: u32) -> DialogKey {
        DialogKey {
            call_id: format!("c{n}"),
            from_tag: "t".into(),
            side: Side::Originating,
        }
    }

    #[test]
    fn unanswered_invite_times_out_after_timer_c() {
        let t0 = Instant::now();
        let mut d = Dialogs::new(10);
        assert!(d.start(key(1), phone(), t0));
        assert!(
            d.take_expired(t0 + TIMER_C - Duration::from_secs(1))
                .is_empty()
        );
        let gone = d.take_expired(t0 + TIMER_C);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1.state, DialogState::Early);
        assert!(d.is_empty());
    }

    #[test]
    fn confirmed_dialog_lives_for_twice_the_session_interval() {
        let t0 = Instant::now();
        let mut d = Dialogs::new(10);
        d.start(key(1), phone(), t0);
        assert!(d.confirm(&key(1), Some(Duration::from_secs(120)), t0));
        assert!(d.take_expired(t0 + TIMER_C).is_empty());
        assert_eq!(d.take_expired(t0 + Duration::from_secs(240)).len(), 1);
    }

    #[test]
    fn full_table_refuses_a_new_dialog_and_bye_frees_room() {
        let t0 = Instant::now();
        let mut d = Dialogs::new(2);
        assert!(d.start(key(1), phone(), t0));
        assert!(d.start(key(2), phone(), t0));
        assert!(!d.start(key(3), phone(), t0));
        assert!(d.end(&key(1)).is_some());
        assert!(d.start(key(3), phone(), t0));
        assert_eq!(d.len(), 2);
    }
}
