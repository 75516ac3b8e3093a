//! The four transaction state machines of RFC 3261 §17, with the RFC 6026 Accepted state.
//!
//! Each machine is fed with `handle_*(now, input)` and returns [`Action`]s; `poll_timeout` gives
//! the next instant its timers need `handle_timeout`. Nothing here sends, sleeps or reads a clock.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{State, TimerConfig, build_ack};
use crate::{Error, Message};

/// What a state machine asks its owner to do.
#[derive(Debug)]
pub enum Action {
    /// Send these bytes to the transaction's peer.
    Transmit(Bytes),
    /// Give this response (client) to the transaction user.
    PassUp(Message),
    /// Timer B or F fired: the request timed out (§17.1.1.2, §17.1.2.2).
    Timeout,
    /// Timer H fired: the ACK never came (§17.2.1).
    AckTimeout,
    /// The transport reported a failure (§17.1.4, §17.2.4).
    TransportError,
}

/// A deadline and, for retransmission timers, the interval that produced it.
#[derive(Clone, Copy, Debug)]
struct Timer {
    at: Instant,
    interval: Duration,
}

impl Timer {
    fn after(now: Instant, interval: Duration) -> Self {
        Self {
            at: now + interval,
            interval,
        }
    }

    fn due(t: Option<Self>, now: Instant) -> bool {
        t.is_some_and(|t| t.at <= now)
    }
}

fn earliest(timers: &[Option<Timer>]) -> Option<Instant> {
    timers.iter().flatten().map(|t| t.at).min()
}

/// Client INVITE transaction (§17.1.1, Figure 5; RFC 6026 §8.4).
///
/// Calling → (1xx) Proceeding → (300-699) Completed → (Timer D) Terminated; a 2xx goes to
/// Accepted, where further 2xx are passed up until Timer M. Timers A (retransmit, unreliable only),
/// B (timeout), D (wait for response retransmissions), M.
#[derive(Debug)]
pub struct ClientInvite {
    state: State,
    request: Message,
    wire: Bytes,
    reliable: bool,
    cfg: TimerConfig,
    ack: Option<Bytes>,
    timer_a: Option<Timer>,
    timer_b: Option<Timer>,
    timer_d: Option<Timer>,
    timer_m: Option<Timer>,
}

impl ClientInvite {
    /// Starts the transaction: the request is sent at once.
    pub fn new(
        now: Instant,
        request: Message,
        reliable: bool,
        cfg: TimerConfig,
    ) -> (Self, Vec<Action>) {
        let wire = request.to_bytes();
        let tx = Self {
            state: State::Calling,
            request,
            wire: wire.clone(),
            reliable,
            cfg,
            ack: None,
            timer_a: (!reliable).then(|| Timer::after(now, cfg.t1)),
            timer_b: Some(Timer::after(now, cfg.t1 * 64)),
            timer_d: None,
            timer_m: None,
        };
        (tx, vec![Action::Transmit(wire)])
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The request this transaction sends.
    pub fn request(&self) -> &Message {
        &self.request
    }

    /// The next timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.timer_a, self.timer_b, self.timer_d, self.timer_m])
    }

    /// A response matched to this transaction (§17.1.3).
    pub fn handle_response(&mut self, now: Instant, response: Message) -> Vec<Action> {
        let Some(code) = response.status() else {
            return Vec::new();
        };
        match (self.state, code.class()) {
            (State::Calling | State::Proceeding, 1) => {
                self.state = State::Proceeding;
                self.timer_a = None;
                self.timer_b = None;
                vec![Action::PassUp(response)]
            }
            (State::Calling | State::Proceeding, 2) => {
                self.state = State::Accepted;
                self.timer_a = None;
                self.timer_b = None;
                self.timer_m = Some(Timer::after(now, self.cfg.t1 * 64));
                vec![Action::PassUp(response)]
            }
            (State::Calling | State::Proceeding, _) => {
                self.timer_a = None;
                self.timer_b = None;
                let ack = build_ack(&self.request, &response)
                    .map(|a| a.to_bytes())
                    .ok();
                self.ack.clone_from(&ack);
                if self.reliable {
                    self.state = State::Terminated;
                } else {
                    self.state = State::Completed;
                    self.timer_d = Some(Timer::after(now, self.cfg.timer_d));
                }
                ack.map(Action::Transmit)
                    .into_iter()
                    .chain([Action::PassUp(response)])
                    .collect()
            }
            (State::Completed, 3..=6) => {
                self.ack.clone().map(Action::Transmit).into_iter().collect()
            }
            (State::Accepted, 2) => vec![Action::PassUp(response)],
            _ => Vec::new(),
        }
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Calling && Timer::due(self.timer_b, now) {
            self.terminate();
            out.push(Action::Timeout);
            return out;
        }
        if self.state == State::Calling
            && let Some(a) = self.timer_a.filter(|a| a.at <= now)
        {
            out.push(Action::Transmit(self.wire.clone()));
            self.timer_a = Some(Timer::after(now, a.interval * 2));
        }
        if (self.state == State::Completed && Timer::due(self.timer_d, now))
            || (self.state == State::Accepted && Timer::due(self.timer_m, now))
        {
            self.terminate();
        }
        out
    }

    /// The transport failed to send.
    pub fn handle_transport_error(&mut self) -> Vec<Action> {
        let was_active = matches!(self.state, State::Calling | State::Proceeding);
        self.terminate();
        if was_active {
            vec![Action::TransportError]
        } else {
            Vec::new()
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
    }
}

/// Client non-INVITE transaction (§17.1.2, Figure 6).
///
/// Trying → (1xx) Proceeding → (final) Completed → (Timer K) Terminated. Timers E (retransmit,
/// unreliable only, capped at T2), F (timeout), K.
#[derive(Debug)]
pub struct ClientNonInvite {
    state: State,
    wire: Bytes,
    reliable: bool,
    cfg: TimerConfig,
    timer_e: Option<Timer>,
    timer_f: Option<Timer>,
    timer_k: Option<Timer>,
}

impl ClientNonInvite {
    /// Starts the transaction: the request is sent at once.
    pub fn new(
        now: Instant,
        request: &Message,
        reliable: bool,
        cfg: TimerConfig,
    ) -> (Self, Vec<Action>) {
        let wire = request.to_bytes();
        let tx = Self {
            state: State::Trying,
            wire: wire.clone(),
            reliable,
            cfg,
            timer_e: (!reliable).then(|| Timer::after(now, cfg.t1)),
            timer_f: Some(Timer::after(now, cfg.t1 * 64)),
            timer_k: None,
        };
        (tx, vec![Action::Transmit(wire)])
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The next timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.timer_e, self.timer_f, self.timer_k])
    }

    /// A response matched to this transaction.
    pub fn handle_response(&mut self, now: Instant, response: Message) -> Vec<Action> {
        let Some(code) = response.status() else {
            return Vec::new();
        };
        match self.state {
            State::Trying | State::Proceeding if code.is_provisional() => {
                self.state = State::Proceeding;
                vec![Action::PassUp(response)]
            }
            State::Trying | State::Proceeding => {
                self.timer_e = None;
                self.timer_f = None;
                if self.reliable {
                    self.state = State::Terminated;
                } else {
                    self.state = State::Completed;
                    self.timer_k = Some(Timer::after(now, self.cfg.t4));
                }
                vec![Action::PassUp(response)]
            }
            _ => Vec::new(),
        }
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let active = matches!(self.state, State::Trying | State::Proceeding);
        if active && Timer::due(self.timer_f, now) {
            self.terminate();
            return vec![Action::Timeout];
        }
        let mut out = Vec::new();
        if active && let Some(e) = self.timer_e.filter(|e| e.at <= now) {
            out.push(Action::Transmit(self.wire.clone()));
            let next = if self.state == State::Trying {
                (e.interval * 2).min(self.cfg.t2)
            } else {
                self.cfg.t2
            };
            self.timer_e = Some(Timer::after(now, next));
        }
        if self.state == State::Completed && Timer::due(self.timer_k, now) {
            self.terminate();
        }
        out
    }

    /// The transport failed to send.
    pub fn handle_transport_error(&mut self) -> Vec<Action> {
        let was_active = matches!(self.state, State::Trying | State::Proceeding);
        self.terminate();
        if was_active {
            vec![Action::TransportError]
        } else {
            Vec::new()
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
    }
}

/// Server INVITE transaction (§17.2.1, Figure 7; RFC 6026 §8.5–8.7).
///
/// Proceeding → (TU 300-699) Completed → (ACK) Confirmed → (Timer I) Terminated; a TU 2xx goes to
/// Accepted, where INVITE retransmissions are absorbed and further 2xx are sent, until Timer L.
/// Timers G (retransmit the final response, unreliable only), H (wait for ACK), I, L.
#[derive(Debug)]
pub struct ServerInvite {
    state: State,
    reliable: bool,
    cfg: TimerConfig,
    last_provisional: Option<Bytes>,
    last_final: Option<Bytes>,
    timer_g: Option<Timer>,
    timer_h: Option<Timer>,
    timer_i: Option<Timer>,
    timer_l: Option<Timer>,
}

impl ServerInvite {
    /// Creates the transaction for a received INVITE, which the owner passes to the TU.
    pub fn new(reliable: bool, cfg: TimerConfig) -> Self {
        Self {
            state: State::Proceeding,
            reliable,
            cfg,
            last_provisional: None,
            last_final: None,
            timer_g: None,
            timer_h: None,
            timer_i: None,
            timer_l: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The next timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.timer_g, self.timer_h, self.timer_i, self.timer_l])
    }

    /// A retransmission of the INVITE.
    pub fn handle_request(&mut self) -> Vec<Action> {
        match self.state {
            State::Proceeding => self
                .last_provisional
                .clone()
                .map(Action::Transmit)
                .into_iter()
                .collect(),
            State::Completed => self
                .last_final
                .clone()
                .map(Action::Transmit)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// An ACK matched to this transaction (non-2xx ACK, §17.2.3); absorbed.
    pub fn handle_ack(&mut self, now: Instant) -> Vec<Action> {
        if self.state == State::Completed {
            self.timer_g = None;
            self.timer_h = None;
            if self.reliable {
                self.state = State::Terminated;
            } else {
                self.state = State::Confirmed;
                self.timer_i = Some(Timer::after(now, self.cfg.t4));
            }
        }
        Vec::new()
    }

    /// The TU sends a response.
    pub fn send_response(
        &mut self,
        now: Instant,
        response: &Message,
    ) -> Result<Vec<Action>, Error> {
        let code = response.status().ok_or(Error::WrongKind {
            expected: "response",
        })?;
        let wire = response.to_bytes();
        match (self.state, code.class()) {
            (State::Proceeding, 1) => {
                self.last_provisional = Some(wire.clone());
            }
            (State::Proceeding | State::Accepted, 2) => {
                self.state = State::Accepted;
                if self.timer_l.is_none() {
                    self.timer_l = Some(Timer::after(now, self.cfg.t1 * 64));
                }
            }
            (State::Proceeding, _) => {
                self.state = State::Completed;
                self.last_final = Some(wire.clone());
                self.timer_g = (!self.reliable).then(|| Timer::after(now, self.cfg.t1));
                self.timer_h = Some(Timer::after(now, self.cfg.t1 * 64));
            }
            (state, _) => {
                return Err(Error::TransactionState {
                    state: state.as_str(),
                });
            }
        }
        Ok(vec![Action::Transmit(wire)])
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            State::Completed if Timer::due(self.timer_h, now) => {
                self.terminate();
                out.push(Action::AckTimeout);
            }
            State::Completed => {
                if let Some(g) = self.timer_g.filter(|g| g.at <= now) {
                    out.extend(self.last_final.clone().map(Action::Transmit));
                    self.timer_g = Some(Timer::after(now, (g.interval * 2).min(self.cfg.t2)));
                }
            }
            State::Confirmed if Timer::due(self.timer_i, now) => self.terminate(),
            State::Accepted if Timer::due(self.timer_l, now) => self.terminate(),
            _ => {}
        }
        out
    }

    /// The transport failed to send.
    pub fn handle_transport_error(&mut self) -> Vec<Action> {
        let was_active = !matches!(self.state, State::Terminated);
        self.terminate();
        if was_active {
            vec![Action::TransportError]
        } else {
            Vec::new()
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
    }
}

/// Server non-INVITE transaction (§17.2.2, Figure 8).
///
/// Trying → (TU 1xx) Proceeding → (TU final) Completed → (Timer J) Terminated.
#[derive(Debug)]
pub struct ServerNonInvite {
    state: State,
    reliable: bool,
    cfg: TimerConfig,
    last: Option<Bytes>,
    timer_j: Option<Timer>,
}

impl ServerNonInvite {
    /// Creates the transaction for a received request, which the owner passes to the TU.
    pub fn new(reliable: bool, cfg: TimerConfig) -> Self {
        Self {
            state: State::Trying,
            reliable,
            cfg,
            last: None,
            timer_j: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The next timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer_j.map(|t| t.at)
    }

    /// A retransmission of the request: absorbed in Trying, answered with the last response after.
    pub fn handle_request(&mut self) -> Vec<Action> {
        match self.state {
            State::Proceeding | State::Completed => self
                .last
                .clone()
                .map(Action::Transmit)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The TU sends a response.
    pub fn send_response(
        &mut self,
        now: Instant,
        response: &Message,
    ) -> Result<Vec<Action>, Error> {
        let code = response.status().ok_or(Error::WrongKind {
            expected: "response",
        })?;
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return Err(Error::TransactionState {
                state: self.state.as_str(),
            });
        }
        let wire = response.to_bytes();
        self.last = Some(wire.clone());
        if code.is_provisional() {
            self.state = State::Proceeding;
        } else if self.reliable {
            self.state = State::Terminated;
        } else {
            self.state = State::Completed;
            self.timer_j = Some(Timer::after(now, self.cfg.t1 * 64));
        }
        Ok(vec![Action::Transmit(wire)])
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        if self.state == State::Completed && Timer::due(self.timer_j, now) {
            self.state = State::Terminated;
            self.timer_j = None;
        }
        Vec::new()
    }

    /// The transport failed to send.
    pub fn handle_transport_error(&mut self) -> Vec<Action> {
        let was_active = !matches!(self.state, State::Terminated);
        self.state = State::Terminated;
        self.timer_j = None;
        if was_active {
            vec![Action::TransportError]
        } else {
            Vec::new()
        }
    }
}
