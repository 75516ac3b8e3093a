//! The one piece of dialog state the S-CSCF keeps: the CSeq offset of breakout calls whose
//! INVITE it re-sent to the trunk with credentials (RFC 3261 §22.2 asks for the next CSeq).
//!
//! Kamailio does this with `uac_auth()` and the dialog module's "seq update": after the
//! S-CSCF answered the trunk's 401/407, the trunk's view of the caller's CSeq numbers is one
//! (per answered challenge) ahead of the caller's. So every later request from the caller in
//! that dialog (ACK for the 2xx, BYE, re-INVITE, UPDATE, PRACK, INFO...) goes to the trunk
//! with its CSeq, and a PRACK's RAck CSeq, raised by the offset; the proxy core
//! (`imslab_sip::proxy`) puts the caller's number back into the responses. Requests from the
//! trunk keep their own CSeq space and are not touched. A CANCEL never gets here: the proxy
//! core matches it to the INVITE's server transaction and cancels the re-sent branch. The
//! trunk may challenge the caller's requests inside the dialog too ([`Rewrite::answerable`]):
//! each answered challenge adds one to the offset.
//!
//! Losing the offset of a live call breaks it (the ACK no longer matches the 2xx, RFC 3261
//! §17.1.1.3; a BYE or re-INVITE below the trunk's remote CSeq gets a 500, §12.2.2), so the
//! table treats the two kinds of record differently:
//!
//! - an *early* record (INVITE re-sent, no 2xx or ACK yet) is forgotten on a failure answer to
//!   its INVITE, after [`EARLY_LIFETIME`], or to make room for a new call (oldest first);
//! - a *confirmed* record (2xx or ACK seen) is kept until a BYE from either side or a 481/408
//!   answer to one of the caller's requests in the dialog (RFC 3261 §12.2.1.2). It is never
//!   evicted for room; the only timeout, [`CONFIRMED_IDLE_LIFETIME`], is a safety net for a
//!   dialog whose end the S-CSCF never saw.
//!
//! When the table is full of confirmed dialogs, a new challenged INVITE is still answered
//! (the call may well succeed if the caller never sends another request) but its dialog is
//! not tracked ([`Tracking::TableFull`]): the caller logs a warning and emits
//! [`untracked_event`]. A lab engineer reading the per-UE log then sees why that one call's
//! ACK or BYE went wrong, and no call already up is broken to make room.
//!
//! Pure and bounded: [`BreakoutDialogs`] takes the time as an argument and holds at most its
//! capacity ([`MAX_BREAKOUT_DIALOGS`] by default).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use imslab_sip::proxy::ContextId;
use imslab_sip::{HeaderName, Message, Method, StatusCode};
use imslab_types::{Function, Impu, Outcome, UeEvent, UeRef};

/// Default bound on the breakout dialogs with a CSeq offset kept at once (a record is a
/// Call-ID, a tag and a few integers: 64 Ki of them is a few MB).
pub const MAX_BREAKOUT_DIALOGS: usize = 65_536;
/// How long a re-sent INVITE may wait for its final response and the ACK (Timer C plus the
/// 2xx retransmission time, RFC 3261 §16.6 step 11, §13.3.1.4).
pub const EARLY_LIFETIME: Duration = Duration::from_secs(212);
/// How long a confirmed dialog is kept with no request in either direction. Not a session
/// limit but a safety net for a dialog whose BYE took another path or never came (trunk
/// restarted): a day is far longer than any lab call, and a call with session timers
/// (RFC 4028, default Session-Expires 1800 s) refreshes it every half hour whichever side is
/// the refresher, since the trunk's requests count too.
pub const CONFIRMED_IDLE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The caller's requests of one dialog whose final response is watched for a 481/408.
const MAX_PENDING: usize = 8;

/// Call-ID and the caller's From tag.
type Key = (String, String);
/// (expires, key, seq); stale entries (seq no longer the record's) are skipped.
type Queue = VecDeque<(Instant, Key, u64)>;

#[derive(Debug)]
struct Record {
    offset: u32,
    /// The (re-)INVITE's context while its answer is awaited.
    invite: Option<ContextId>,
    /// The caller's other requests awaiting their final response.
    pending: VecDeque<ContextId>,
    confirmed: bool,
    /// Which queue entry is current.
    seq: u64,
}

/// What [`BreakoutDialogs::outbound`] did to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Not a request of a tracked dialog from its caller.
    Untouched,
    /// CSeq (and RAck) raised by this offset.
    Shifted(u32),
    /// The BYE: shifted, and the dialog forgotten.
    Released(u32),
}

impl Rewrite {
    /// Whether the request belongs to a tracked breakout dialog from its caller, so that a
    /// challenge of the trunk to it may be answered as well (which adds to the offset).
    pub fn answerable(self) -> bool {
        !matches!(self, Self::Untouched)
    }
}

/// What [`BreakoutDialogs::challenged`] did with a re-sent request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    /// The dialog is tracked; its offset is now this.
    Tracked(u32),
    /// A new INVITE, but the table is full of confirmed dialogs: not tracked, so the
    /// caller's later requests in that call go out unshifted. Log it and emit
    /// [`untracked_event`].
    TableFull,
    /// A request inside a dialog that is not tracked (a challenged BYE, whose dialog it
    /// already released, or a dialog that never fitted): nothing recorded.
    NotTracked,
}

/// The breakout dialogs with a CSeq offset. See the module documentation.
#[derive(Debug)]
pub struct BreakoutDialogs {
    by_key: HashMap<Key, Record>,
    by_ctx: HashMap<ContextId, Key>,
    /// Early records by [`EARLY_LIFETIME`] expiry, oldest first.
    early: Queue,
    /// Confirmed records by [`CONFIRMED_IDLE_LIFETIME`] expiry.
    idle: Queue,
    next: u64,
    capacity: usize,
}

impl Default for BreakoutDialogs {
    fn default() -> Self {
        Self::with_capacity(MAX_BREAKOUT_DIALOGS)
    }
}

fn key_of(msg: &Message) -> Option<Key> {
    let call = msg.call_id().ok()?.as_str().to_owned();
    let tag = msg.from_header().ok()?.tag()?.to_owned();
    Some((call, tag))
}

fn to_tag(msg: &Message) -> Option<String> {
    msg.to_header().ok()?.tag().map(str::to_owned)
}

/// Drops the queue entries that are no longer their record's current one, once they
/// outnumber the records (refreshes push a new entry each).
fn compact(queue: &mut Queue, by_key: &HashMap<Key, Record>) {
    if queue.len() > 2 * by_key.len() + 64 {
        queue.retain(|(_, k, s)| by_key.get(k).is_some_and(|r| r.seq == *s));
    }
}

impl BreakoutDialogs {
    /// No dialogs, at most [`MAX_BREAKOUT_DIALOGS`].
    pub fn new() -> Self {
        Self::default()
    }

    /// No dialogs, at most `capacity` (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            by_ctx: HashMap::new(),
            early: VecDeque::new(),
            idle: VecDeque::new(),
            next: 0,
            capacity: capacity.max(1),
        }
    }

    /// The most dialogs kept at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of dialogs kept.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The request of context `ctx` was re-sent as `retried` (with credentials, CSeq one
    /// higher, RFC 3261 §22.2). A new INVITE (no To tag) starts an early record with offset 1
    /// if there is room (an early record may be evicted for it, a confirmed one never); a
    /// request of a tracked dialog adds one to its offset; any other request inside a dialog
    /// (a challenged BYE, whose dialog is already released) records nothing.
    pub fn challenged(&mut self, now: Instant, ctx: ContextId, retried: &Message) -> Tracking {
        self.purge(now);
        let Some(key) = key_of(retried) else {
            return Tracking::NotTracked;
        };
        let is_invite = retried.method() == Some(&Method::Invite);
        if let Some(r) = self.by_key.get_mut(&key) {
            r.offset = r.offset.saturating_add(1);
            if is_invite {
                r.invite = Some(ctx);
            } else if !r.pending.contains(&ctx) {
                r.pending.push_back(ctx);
            }
            let offset = r.offset;
            self.by_ctx.insert(ctx, key);
            self.bound_pending(ctx);
            return Tracking::Tracked(offset);
        }
        if !is_invite || to_tag(retried).is_some() {
            return Tracking::NotTracked;
        }
        while self.by_key.len() >= self.capacity {
            if !self.evict_oldest_early() {
                return Tracking::TableFull;
            }
        }
        self.next += 1;
        let seq = self.next;
        self.by_key.insert(
            key.clone(),
            Record {
                offset: 1,
                invite: Some(ctx),
                pending: VecDeque::new(),
                confirmed: false,
                seq,
            },
        );
        self.by_ctx.insert(ctx, key.clone());
        self.early.push_back((now + EARLY_LIFETIME, key, seq));
        compact(&mut self.early, &self.by_key);
        Tracking::Tracked(1)
    }

    /// The final response of context `ctx` goes upstream. A 481 or 408 to any of the
    /// caller's requests ends the dialog (RFC 3261 §12.2.1.2); for an early dialog's INVITE,
    /// a 2xx confirms it and any other failure ends it.
    pub fn final_response(&mut self, now: Instant, ctx: ContextId, status: StatusCode) {
        let Some(key) = self.by_ctx.remove(&ctx) else {
            return;
        };
        let Some(r) = self.by_key.get_mut(&key) else {
            return;
        };
        let was_invite = r.invite == Some(ctx);
        if was_invite {
            r.invite = None;
        }
        r.pending.retain(|c| *c != ctx);
        let code = status.as_u16();
        if code == 481 || code == 408 {
            self.forget(&key);
        } else if was_invite && !r.confirmed {
            if status.is_success() {
                self.refresh(now, key);
            } else if code >= 300 {
                self.forget(&key);
            }
        }
    }

    /// A request the S-CSCF forwards in context `ctx`: when it belongs to a tracked dialog
    /// and comes from its caller, its CSeq number (and a PRACK's RAck CSeq number) is raised
    /// by the dialog's offset. An ACK confirms the dialog, a BYE from either side ends it;
    /// any request in the dialog, from either side, restarts a confirmed dialog's idle time.
    pub fn outbound(&mut self, now: Instant, ctx: ContextId, request: &mut Message) -> Rewrite {
        if self.by_key.is_empty() {
            return Rewrite::Untouched;
        }
        self.purge(now);
        let Some(key) = key_of(request) else {
            return Rewrite::Untouched;
        };
        let method = request.method().cloned();
        let Some(r) = self.by_key.get_mut(&key) else {
            // The trunk's requests name the caller's tag in To.
            if let Some(tag) = to_tag(request) {
                let caller = (key.0, tag);
                if method == Some(Method::Bye) {
                    self.forget(&caller);
                } else if self.by_key.get(&caller).is_some_and(|r| r.confirmed) {
                    self.refresh(now, caller);
                }
            }
            return Rewrite::Untouched;
        };
        if matches!(method, Some(Method::Cancel)) {
            return Rewrite::Untouched;
        }
        let offset = r.offset;
        let Ok(cseq) = request.cseq() else {
            return Rewrite::Untouched;
        };
        let value = format!("{} {}", cseq.seq.wrapping_add(offset), cseq.method.as_str());
        if request.set_header(HeaderName::CSEQ, value).is_err() {
            return Rewrite::Untouched;
        }
        if matches!(method, Some(Method::Prack)) {
            shift_rack(request, offset);
        }
        match method {
            Some(Method::Bye) => {
                self.forget(&key);
                return Rewrite::Released(offset);
            }
            Some(Method::Ack) => r.confirmed = true,
            Some(Method::Invite) => r.invite = Some(ctx),
            _ => r.pending.push_back(ctx),
        }
        let confirmed = r.confirmed;
        if method != Some(Method::Ack) {
            self.by_ctx.insert(ctx, key.clone());
            self.bound_pending(ctx);
        }
        if confirmed {
            self.refresh(now, key);
        }
        Rewrite::Shifted(offset)
    }

    /// Confirms the dialog (if early) and restarts its idle time.
    fn refresh(&mut self, now: Instant, key: Key) {
        let Some(r) = self.by_key.get_mut(&key) else {
            return;
        };
        r.confirmed = true;
        self.next += 1;
        r.seq = self.next;
        self.idle
            .push_back((now + CONFIRMED_IDLE_LIFETIME, key, self.next));
        compact(&mut self.idle, &self.by_key);
    }

    /// Keeps at most [`MAX_PENDING`] watched requests for the dialog of `ctx`.
    fn bound_pending(&mut self, ctx: ContextId) {
        let Some(key) = self.by_ctx.get(&ctx) else {
            return;
        };
        if let Some(r) = self.by_key.get_mut(key) {
            while r.pending.len() > MAX_PENDING {
                if let Some(old) = r.pending.pop_front() {
                    self.by_ctx.remove(&old);
                }
            }
        }
    }

    /// Forgets the oldest early record; false when there is none.
    fn evict_oldest_early(&mut self) -> bool {
        while let Some((_, k, s)) = self.early.pop_front() {
            if self
                .by_key
                .get(&k)
                .is_some_and(|r| r.seq == s && !r.confirmed)
            {
                self.forget(&k);
                return true;
            }
        }
        false
    }

    fn forget(&mut self, key: &Key) {
        if let Some(r) = self.by_key.remove(key) {
            for ctx in r.invite.iter().chain(r.pending.iter()) {
                self.by_ctx.remove(ctx);
            }
        }
    }

    /// Drops the early dialogs past [`EARLY_LIFETIME`] and the confirmed ones idle for
    /// [`CONFIRMED_IDLE_LIFETIME`].
    pub fn purge(&mut self, now: Instant) {
        for confirmed in [false, true] {
            loop {
                let queue = if confirmed {
                    &mut self.idle
                } else {
                    &mut self.early
                };
                if queue.front().is_none_or(|(at, _, _)| *at > now) {
                    break;
                }
                let Some((_, k, s)) = queue.pop_front() else {
                    break;
                };
                if self
                    .by_key
                    .get(&k)
                    .is_some_and(|r| r.seq == s && r.confirmed == confirmed)
                {
                    self.forget(&k);
                }
            }
        }
    }
}

fn caller_of(request: &Message) -> UeRef {
    let impu = request
        .typed_all::<imslab_sip::NameAddr<'_>>(&HeaderName::P_ASSERTED_IDENTITY)
        .filter_map(Result::ok)
        .find_map(|n| Impu::new(n.uri.to_string()).ok());
    UeRef {
        imsi: None,
        impi: None,
        impu,
    }
}

/// The per-UE record of the trunk challenging the caller's INVITE: answered with the trunk
/// credentials (`answered`), or not answerable (not an MD5 digest challenge), so the
/// challenge goes back to the phone.
pub fn challenge_event(request: &Message, challenge: &Message, answered: bool) -> UeEvent {
    let status = challenge.status().map_or(0, StatusCode::as_u16);
    let seq = request.cseq().map_or(0, |c| c.seq);
    let reason = if answered {
        format!(
            "breakout trunk challenged the INVITE ({status}): sent again with the trunk \
             credentials, CSeq {seq} -> {}",
            seq.wrapping_add(1)
        )
    } else {
        format!("breakout trunk challenged the INVITE ({status}) with no usable MD5 digest")
    };
    UeEvent {
        at: std::time::SystemTime::now(),
        function: Function::Scscf,
        ue: caller_of(request),
        step: "call",
        outcome: if answered {
            Outcome::Ok
        } else {
            Outcome::Failed
        },
        reason: Some(reason),
    }
}

/// The per-UE record of a challenged breakout INVITE that was answered but whose dialog is
/// not tracked ([`Tracking::TableFull`]): the caller's ACK, BYE and re-INVITEs in that call
/// reach the trunk with the phone's CSeq, one below what the trunk expects.
pub fn untracked_event(request: &Message, capacity: usize) -> UeEvent {
    UeEvent {
        at: std::time::SystemTime::now(),
        function: Function::Scscf,
        ue: caller_of(request),
        step: "call",
        outcome: Outcome::Failed,
        reason: Some(format!(
            "breakout dialog table full ({capacity} confirmed calls): INVITE sent with the \
             trunk credentials but its CSeq offset is not kept, so the trunk may reject this \
             call's ACK, BYE and re-INVITEs"
        )),
    }
}

/// RAck: response-num CSeq-num Method (RFC 3262 §7.2); the CSeq number is the INVITE's.
fn shift_rack(request: &mut Message, offset: u32) {
    let Some(Ok(rack)) = request.header_str(&HeaderName::RACK) else {
        return;
    };
    let mut parts = rack.split_whitespace();
    let (Some(rseq), Some(cseq), Some(method)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let Ok(n) = cseq.parse::<u32>() else { return };
    let value = format!("{rseq} {} {method}", n.wrapping_add(offset));
    let _ = request.set_header(HeaderName::RACK, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, cseq: u32, from_tag: &str, extra: &str) -> Message {
        Message::parse(
            format!(
                "{method} sip:+4930123@trunk.example.net SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{method}{cseq}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:alice@ims.example>;tag={from_tag}\r\n\
                 To: <tel:+4930123>;tag=trunk1\r\nCall-ID: brk-1@ue\r\n\
                 CSeq: {cseq} {method}\r\n{extra}Content-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        )
        .expect("parses")
    }

    fn cseq(m: &Message) -> u32 {
        m.cseq().expect("cseq").seq
    }

    /// `n` distinct context ids, as the proxy core hands them out.
    fn contexts(t0: Instant, n: usize) -> Vec<ContextId> {
        let mut p = imslab_sip::proxy::Proxy::new(
            imslab_sip::proxy::ProxyConfig::new(imslab_sip::proxy::Interface {
                transport: imslab_sip::header::Transport::Udp,
                addr: "127.0.0.1:6060".parse().expect("addr"),
                advertise: None,
            }),
            imslab_sip::transaction::TimerConfig::default(),
            1,
        );
        (0..n)
            .map(|i| {
                let mut m = req("INVITE", 1, &format!("ctx{i}"), "");
                m.set_header(
                    HeaderName::VIA,
                    format!("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKctx{i}"),
                )
                .expect("Via");
                m.set_header(HeaderName::CALL_ID, format!("ctx{i}"))
                    .expect("Call-ID");
                let ev = p.handle_message(
                    t0,
                    m,
                    imslab_sip::transaction::Peer::new(
                        imslab_sip::header::Transport::Udp,
                        "127.0.0.1:5060".parse().expect("addr"),
                    ),
                    imslab_sip::proxy::InterfaceId(0),
                );
                ev.iter()
                    .find_map(|e| match e {
                        imslab_sip::proxy::ProxyEvent::Request { ctx, .. } => Some(*ctx),
                        _ => None,
                    })
                    .expect("a context")
            })
            .collect()
    }

    /// A new INVITE (no To tag) of call `call` from tag `tag`, as re-sent with CSeq 2.
    fn initial(call: &str, tag: &str) -> Message {
        let mut m = req("INVITE", 2, tag, "");
        m.set_header(HeaderName::CALL_ID, call.to_owned())
            .expect("Call-ID");
        m.set_header(HeaderName::TO, "<tel:+4930123>".to_owned())
            .expect("To");
        m
    }

    fn in_call(method: &str, cseq: u32, call: &str, tag: &str) -> Message {
        let mut m = req(method, cseq, tag, "");
        m.set_header(HeaderName::CALL_ID, call.to_owned())
            .expect("Call-ID");
        m
    }

    fn ctx(table: &mut BreakoutDialogs, t0: Instant) -> ContextId {
        let id = contexts(t0, 1)[0];
        assert_eq!(
            table.challenged(t0, id, &initial("brk-1@ue", "a1")),
            Tracking::Tracked(1)
        );
        id
    }

    #[test]
    fn caller_requests_after_an_answered_challenge_go_one_cseq_ahead_and_bye_releases() {
        let t0 = Instant::now();
        let mut d = BreakoutDialogs::new();
        let c = ctx(&mut d, t0);
        d.final_response(t0, c, StatusCode::OK);
        let mut ack = req("ACK", 1, "a1", "");
        assert_eq!(d.outbound(t0, c, &mut ack), Rewrite::Shifted(1));
        assert_eq!(cseq(&ack), 2, "the ACK carries the re-sent INVITE's CSeq");
        let mut prack = req("PRACK", 2, "a1", "RAck: 1 1 INVITE\r\n");
        d.outbound(t0, c, &mut prack);
        assert_eq!(cseq(&prack), 3);
        assert_eq!(
            prack
                .header_str(&HeaderName::RACK)
                .and_then(Result::ok)
                .expect("RAck"),
            "1 2 INVITE"
        );
        let mut from_trunk = req("INFO", 7, "trunk1", "");
        assert_eq!(d.outbound(t0, c, &mut from_trunk), Rewrite::Untouched);
        assert_eq!(cseq(&from_trunk), 7, "the trunk's own CSeq space");
        let mut bye = req("BYE", 3, "a1", "");
        assert_eq!(d.outbound(t0, c, &mut bye), Rewrite::Released(1));
        assert_eq!(cseq(&bye), 4);
        assert!(d.is_empty());
    }

    #[test]
    fn a_bye_from_the_trunk_releases_the_dialog_untouched() {
        let t0 = Instant::now();
        let mut d = BreakoutDialogs::new();
        let c = ctx(&mut d, t0);
        d.final_response(t0, c, StatusCode::OK);
        let mut bye = Message::parse(
            "BYE sip:alice@127.0.0.1:5062 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKtb\r\nMax-Forwards: 70\r\n\
             From: <tel:+4930123>;tag=trunk1\r\nTo: <sip:alice@ims.example>;tag=a1\r\n\
             Call-ID: brk-1@ue\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n"
                .as_bytes()
                .to_vec(),
        )
        .expect("parses");
        assert_eq!(d.outbound(t0, c, &mut bye), Rewrite::Untouched);
        assert_eq!(cseq(&bye), 9);
        assert!(d.is_empty());
    }

    #[test]
    fn a_challenged_reinvite_adds_to_the_offset_and_its_failure_keeps_the_dialog() {
        let t0 = Instant::now();
        let mut d = BreakoutDialogs::new();
        let c = ctx(&mut d, t0);
        d.final_response(t0, c, StatusCode::OK);
        let mut ack = req("ACK", 1, "a1", "");
        d.outbound(t0, c, &mut ack);
        let mut reinvite = req("INVITE", 2, "a1", "");
        assert!(d.outbound(t0, c, &mut reinvite).answerable());
        assert_eq!(cseq(&reinvite), 3);
        // The trunk challenges it; the S-CSCF sends it again with CSeq 4.
        let mut again = reinvite.clone();
        again
            .set_header(HeaderName::CSEQ, "4 INVITE")
            .expect("CSeq");
        d.challenged(t0, c, &again);
        d.final_response(t0, c, StatusCode::REQUEST_PENDING);
        assert_eq!(d.len(), 1, "a confirmed dialog outlives a failed re-INVITE");
        let mut bye = req("BYE", 3, "a1", "");
        assert_eq!(d.outbound(t0, c, &mut bye), Rewrite::Released(2));
        assert_eq!(cseq(&bye), 5);
    }

    #[test]
    fn a_failed_invite_or_a_missing_ack_forgets_the_dialog() {
        let t0 = Instant::now();
        let mut d = BreakoutDialogs::new();
        let c = ctx(&mut d, t0);
        d.final_response(t0, c, StatusCode::BUSY_HERE);
        assert!(d.is_empty(), "486 after the retry");
        let c = ctx(&mut d, t0);
        assert_eq!(d.len(), 1);
        let mut late = req("BYE", 2, "a1", "");
        assert_eq!(
            d.outbound(t0 + EARLY_LIFETIME, c, &mut late),
            Rewrite::Untouched
        );
        assert!(d.is_empty(), "never ACKed");
    }

    /// Confirms the call `call`/`tag` (challenged INVITE in `c`, 200, ACK).
    fn confirmed(d: &mut BreakoutDialogs, t0: Instant, c: ContextId, call: &str, tag: &str) {
        assert_eq!(
            d.challenged(t0, c, &initial(call, tag)),
            Tracking::Tracked(1)
        );
        d.final_response(t0, c, StatusCode::OK);
        let mut ack = in_call("ACK", 1, call, tag);
        assert_eq!(d.outbound(t0, c, &mut ack), Rewrite::Shifted(1));
    }

    #[test]
    fn a_2xx_confirms_the_dialog_so_the_early_timeout_no_longer_applies() {
        let t0 = Instant::now();
        let mut d = BreakoutDialogs::new();
        let c = ctx(&mut d, t0);
        d.final_response(t0, c, StatusCode::OK);
        d.purge(t0 + 2 * EARLY_LIFETIME);
        assert_eq!(d.len(), 1, "the ACK may be late, the call is up");
        let mut ack = req("ACK", 1, "a1", "");
        assert_eq!(
            d.outbound(t0 + 2 * EARLY_LIFETIME, c, &mut ack),
            Rewrite::Shifted(1)
        );
    }

    #[test]
    fn a_confirmed_dialog_is_kept_while_either_side_sends_requests() {
        let t0 = Instant::now();
        let mut d = BreakoutDialogs::new();
        let c = contexts(t0, 1)[0];
        confirmed(&mut d, t0, c, "long", "a1");
        let hour = Duration::from_secs(3600);
        d.purge(t0 + 23 * hour);
        assert_eq!(d.len(), 1, "hours without a caller request keep the call");
        // The trunk refreshes the session (refresher=uas): its UPDATE names the caller in To.
        let mut update = Message::parse(
            "UPDATE sip:alice@127.0.0.1:5062 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKup\r\nMax-Forwards: 70\r\n\
             From: <tel:+4930123>;tag=trunk1\r\nTo: <sip:alice@ims.example>;tag=a1\r\n\
             Call-ID: long\r\nCSeq: 5 UPDATE\r\nContent-Length: 0\r\n\r\n"
                .as_bytes()
                .to_vec(),
        )
        .expect("parses");
        let refreshed = t0 + 23 * hour;
        assert_eq!(d.outbound(refreshed, c, &mut update), Rewrite::Untouched);
        assert_eq!(cseq(&update), 5, "the trunk's own CSeq space");
        d.purge(refreshed + CONFIRMED_IDLE_LIFETIME - Duration::from_secs(1));
        assert_eq!(d.len(), 1, "the trunk's request restarted the idle time");
        d.purge(refreshed + CONFIRMED_IDLE_LIFETIME);
        assert!(
            d.is_empty(),
            "a day with no request at all: its end was missed"
        );
    }

    #[test]
    fn a_full_table_evicts_the_oldest_early_dialog_never_a_confirmed_one() {
        let t0 = Instant::now();
        let cs = contexts(t0, 5);
        let mut d = BreakoutDialogs::with_capacity(3);
        confirmed(&mut d, t0, cs[0], "up0", "a");
        confirmed(&mut d, t0, cs[1], "up1", "a");
        assert_eq!(
            d.challenged(t0, cs[2], &initial("early", "a")),
            Tracking::Tracked(1)
        );
        assert_eq!(
            d.challenged(t0, cs[3], &initial("new", "a")),
            Tracking::Tracked(1)
        );
        assert_eq!(d.len(), 3);
        let mut old = in_call("ACK", 1, "early", "a");
        assert_eq!(
            d.outbound(t0, cs[2], &mut old),
            Rewrite::Untouched,
            "evicted"
        );
        for call in ["up0", "up1", "new"] {
            let mut r = in_call("INFO", 2, call, "a");
            assert_eq!(d.outbound(t0, cs[4], &mut r), Rewrite::Shifted(1), "{call}");
        }
    }

    #[test]
    fn a_table_full_of_confirmed_dialogs_leaves_a_new_invite_untracked() {
        let t0 = Instant::now();
        let cs = contexts(t0, 3);
        let mut d = BreakoutDialogs::with_capacity(2);
        confirmed(&mut d, t0, cs[0], "up0", "a");
        confirmed(&mut d, t0, cs[1], "up1", "a");
        let invite = initial("late", "a");
        assert_eq!(d.challenged(t0, cs[2], &invite), Tracking::TableFull);
        assert_eq!(d.len(), 2);
        let mut ack = in_call("ACK", 1, "late", "a");
        assert_eq!(d.outbound(t0, cs[2], &mut ack), Rewrite::Untouched);
        for call in ["up0", "up1"] {
            let mut bye = in_call("BYE", 2, call, "a");
            assert_eq!(
                d.outbound(t0, cs[2], &mut bye),
                Rewrite::Released(1),
                "{call}"
            );
        }
        let ev = untracked_event(&invite, d.capacity());
        assert_eq!(ev.outcome, Outcome::Failed);
        assert_eq!(ev.step, "call");
        assert!(
            ev.reason
                .as_deref()
                .is_some_and(|r| r.contains("table full (2")),
            "{:?}",
            ev.reason
        );
    }

    #[test]
    fn a_481_or_408_to_a_caller_request_ends_the_dialog_other_failures_do_not() {
        let t0 = Instant::now();
        let cs = contexts(t0, 6);
        let mut d = BreakoutDialogs::new();
        confirmed(&mut d, t0, cs[0], "c481", "a");
        confirmed(&mut d, t0, cs[1], "c408", "a");
        let mut info = in_call("INFO", 2, "c481", "a");
        d.outbound(t0, cs[2], &mut info);
        d.final_response(t0, cs[2], StatusCode::NOT_ACCEPTABLE_HERE);
        let mut reinvite = in_call("INVITE", 3, "c408", "a");
        d.outbound(t0, cs[3], &mut reinvite);
        d.final_response(t0, cs[3], StatusCode::NOT_ACCEPTABLE_HERE);
        assert_eq!(d.len(), 2, "a 488 leaves the call up");
        let mut info = in_call("INFO", 3, "c481", "a");
        d.outbound(t0, cs[4], &mut info);
        d.final_response(t0, cs[4], StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST);
        assert_eq!(d.len(), 1);
        let mut reinvite = in_call("INVITE", 4, "c408", "a");
        d.outbound(t0, cs[5], &mut reinvite);
        d.final_response(t0, cs[5], StatusCode::REQUEST_TIMEOUT);
        assert!(d.is_empty());
    }

    #[test]
    fn a_challenged_bye_does_not_recreate_the_released_dialog() {
        let t0 = Instant::now();
        let cs = contexts(t0, 2);
        let mut d = BreakoutDialogs::new();
        confirmed(&mut d, t0, cs[0], "gone", "a");
        let mut bye = in_call("BYE", 2, "gone", "a");
        assert!(d.outbound(t0, cs[1], &mut bye).answerable());
        let mut again = bye.clone();
        again.set_header(HeaderName::CSEQ, "4 BYE").expect("CSeq");
        assert_eq!(d.challenged(t0, cs[1], &again), Tracking::NotTracked);
        assert!(d.is_empty());
        d.final_response(t0, cs[1], StatusCode::OK);
        assert!(d.is_empty());
    }

    #[test]
    fn many_refreshes_never_forget_a_live_dialog() {
        let t0 = Instant::now();
        let cs = contexts(t0, 3);
        let mut d = BreakoutDialogs::with_capacity(2);
        confirmed(&mut d, t0, cs[0], "busy", "a");
        confirmed(&mut d, t0, cs[1], "quiet", "a");
        for i in 0..2_000u32 {
            let mut info = in_call("INFO", 2 + i, "busy", "a");
            assert_eq!(d.outbound(t0, cs[2], &mut info), Rewrite::Shifted(1));
            d.final_response(t0, cs[2], StatusCode::OK);
        }
        assert_eq!(d.len(), 2);
        let mut bye = in_call("BYE", 2, "quiet", "a");
        assert_eq!(d.outbound(t0, cs[2], &mut bye), Rewrite::Released(1));
    }
}
