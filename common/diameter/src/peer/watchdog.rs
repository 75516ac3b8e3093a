//! The transport watchdog of RFC 3539 §3.4 as RFC 6733 §5.5 uses it: DWR after Tw of silence,
//! SUSPECT when a DWR goes unanswered, DOWN after another Tw, and REOPEN (three DWAs needed)
//! after a reconnection.

use std::time::{Duration, Instant};

use super::ids::SplitMix64;

/// Watchdog status (RFC 3539 §3.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogState {
    /// No connection yet since start.
    Initial,
    /// The peer answers: usable for routing.
    Okay,
    /// A DWR went unanswered: failed over, not usable.
    Suspect,
    /// Reconnected after a failure: waiting for three DWAs before use.
    Reopen,
    /// No connection.
    Down,
}

/// What the owner must do after a watchdog step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchdogAction {
    /// Nothing.
    None,
    /// Send a DWR.
    SendDwr,
    /// The peer just became usable (OKAY).
    Failback,
    /// The peer just became unusable (SUSPECT): fail pending requests over.
    Failover,
    /// Close the connection (DOWN).
    Close,
}

/// RFC 3539 minimum for Tw.
pub const MIN_TW: Duration = Duration::from_secs(6);
/// Jitter applied to each Tw, plus or minus (RFC 3539 §3.4.1).
const JITTER: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub(crate) struct Watchdog {
    state: WatchdogState,
    pending: bool,
    /// Consecutive DWAs in REOPEN; -1 after a missed one.
    num_dwa: i32,
    tw: Duration,
    deadline: Option<Instant>,
    rng: SplitMix64,
}

impl Watchdog {
    pub(crate) fn new(tw: Duration, seed: u64) -> Self {
        Self {
            state: WatchdogState::Initial,
            pending: false,
            num_dwa: 0,
            tw: tw.max(MIN_TW),
            deadline: None,
            rng: SplitMix64::new(seed),
        }
    }

    pub(crate) fn state(&self) -> WatchdogState {
        self.state
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// SetWatchdog(): Tw plus or minus up to 2 s of jitter.
    fn set(&mut self, now: Instant) {
        let span = 2 * JITTER.as_millis() as u64;
        let offset = Duration::from_millis(self.rng.below(span + 1));
        self.deadline = Some(now + self.tw + offset - JITTER);
    }

    /// The connection came up (capabilities exchanged).
    pub(crate) fn connection_up(&mut self, now: Instant) -> WatchdogAction {
        self.pending = false;
        self.num_dwa = 0;
        if self.state == WatchdogState::Initial {
            self.state = WatchdogState::Okay;
            self.set(now);
            WatchdogAction::Failback
        } else {
            self.state = WatchdogState::Reopen;
            self.pending = true;
            self.set(now);
            WatchdogAction::SendDwr
        }
    }

    /// The connection went down.
    pub(crate) fn connection_down(&mut self) -> WatchdogAction {
        let was_okay = self.state == WatchdogState::Okay;
        if self.state != WatchdogState::Initial {
            self.state = WatchdogState::Down;
        }
        self.pending = false;
        self.deadline = None;
        if was_okay {
            WatchdogAction::Failover
        } else {
            WatchdogAction::None
        }
    }

    /// A DWA arrived.
    pub(crate) fn on_dwa(&mut self, now: Instant) -> WatchdogAction {
        self.pending = false;
        match self.state {
            WatchdogState::Okay => {
                self.set(now);
                WatchdogAction::None
            }
            WatchdogState::Suspect => {
                self.state = WatchdogState::Okay;
                self.set(now);
                WatchdogAction::Failback
            }
            WatchdogState::Reopen => {
                self.num_dwa = self.num_dwa.max(0) + 1;
                if self.num_dwa >= 3 {
                    self.state = WatchdogState::Okay;
                    self.num_dwa = 0;
                    WatchdogAction::Failback
                } else {
                    WatchdogAction::None
                }
            }
            WatchdogState::Initial | WatchdogState::Down => WatchdogAction::None,
        }
    }

    /// Any other message arrived: it proves the peer alive, except in REOPEN where only
    /// watchdog exchanges count.
    pub(crate) fn on_traffic(&mut self, now: Instant) -> WatchdogAction {
        match self.state {
            WatchdogState::Okay => {
                self.pending = false;
                self.set(now);
                WatchdogAction::None
            }
            WatchdogState::Suspect => {
                self.state = WatchdogState::Okay;
                self.pending = false;
                self.set(now);
                WatchdogAction::Failback
            }
            _ => WatchdogAction::None,
        }
    }

    /// The timer expired (call only when `now >= deadline`).
    pub(crate) fn on_timeout(&mut self, now: Instant) -> WatchdogAction {
        if self.deadline.is_none_or(|d| now < d) {
            return WatchdogAction::None;
        }
        match (self.state, self.pending) {
            (WatchdogState::Okay, false) => {
                self.pending = true;
                self.set(now);
                WatchdogAction::SendDwr
            }
            (WatchdogState::Okay, true) => {
                self.state = WatchdogState::Suspect;
                self.set(now);
                WatchdogAction::Failover
            }
            (WatchdogState::Suspect, _) => {
                self.state = WatchdogState::Down;
                self.deadline = None;
                WatchdogAction::Close
            }
            (WatchdogState::Reopen, true) if self.num_dwa < 0 => {
                self.state = WatchdogState::Down;
                self.deadline = None;
                WatchdogAction::Close
            }
            (WatchdogState::Reopen, true) => {
                self.num_dwa = -1;
                self.set(now);
                WatchdogAction::None
            }
            (WatchdogState::Reopen, false) => {
                self.pending = true;
                self.set(now);
                WatchdogAction::SendDwr
            }
            (WatchdogState::Initial | WatchdogState::Down, _) => {
                self.deadline = None;
                WatchdogAction::None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(w: &mut Watchdog) -> WatchdogAction {
        let d = w.deadline().expect("armed");
        w.on_timeout(d)
    }

    #[test]
    fn tw_is_jittered_within_two_seconds_and_never_below_six() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(1), 42);
        w.connection_up(t0);
        let d = w.deadline().expect("armed") - t0;
        assert!(
            d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
            "{d:?}"
        );
        let mut w = Watchdog::new(Duration::from_secs(30), 43);
        for _ in 0..50 {
            w.connection_down();
            w.state = WatchdogState::Initial;
            w.connection_up(t0);
            let d = w.deadline().expect("armed") - t0;
            assert!(
                d >= Duration::from_secs(28) && d <= Duration::from_secs(32),
                "{d:?}"
            );
        }
    }

    #[test]
    fn silence_sends_dwr_then_suspect_then_down() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(30), 1);
        assert_eq!(w.connection_up(t0), WatchdogAction::Failback);
        assert_eq!(fire(&mut w), WatchdogAction::SendDwr);
        assert_eq!(fire(&mut w), WatchdogAction::Failover);
        assert_eq!(w.state(), WatchdogState::Suspect);
        assert_eq!(fire(&mut w), WatchdogAction::Close);
        assert_eq!(w.state(), WatchdogState::Down);
    }

    #[test]
    fn dwa_in_suspect_fails_back() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(30), 1);
        w.connection_up(t0);
        fire(&mut w);
        fire(&mut w);
        assert_eq!(w.on_dwa(t0), WatchdogAction::Failback);
        assert_eq!(w.state(), WatchdogState::Okay);
    }

    #[test]
    fn reopen_needs_three_dwas() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(30), 1);
        w.connection_up(t0);
        w.connection_down();
        assert_eq!(w.connection_up(t0), WatchdogAction::SendDwr);
        assert_eq!(w.state(), WatchdogState::Reopen);
        assert_eq!(w.on_dwa(t0), WatchdogAction::None);
        assert_eq!(fire(&mut w), WatchdogAction::SendDwr);
        assert_eq!(w.on_dwa(t0), WatchdogAction::None);
        assert_eq!(fire(&mut w), WatchdogAction::SendDwr);
        assert_eq!(w.on_dwa(t0), WatchdogAction::Failback);
        assert_eq!(w.state(), WatchdogState::Okay);
    }

    #[test]
    fn reopen_closes_after_two_missed_dwas() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(30), 1);
        w.connection_up(t0);
        w.connection_down();
        w.connection_up(t0);
        assert_eq!(fire(&mut w), WatchdogAction::None);
        assert_eq!(fire(&mut w), WatchdogAction::Close);
    }

    #[test]
    fn traffic_resets_the_timer_in_okay() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_secs(30), 1);
        w.connection_up(t0);
        let later = t0 + Duration::from_secs(20);
        w.on_traffic(later);
        assert!(w.deadline().expect("armed") >= later + Duration::from_secs(28));
    }
}
