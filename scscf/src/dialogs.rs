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
//! Pure and bounded: [`BreakoutDialogs`] takes the time as an argument, holds at most
//! [`MAX_BREAKOUT_DIALOGS`] (the oldest goes first), forgets a dialog on BYE (from either
//! side), on a failure answer to its INVITE, when the INVITE is not ACKed within
//! [`EARLY_LIFETIME`], and after [`IDLE_LIFETIME`] without a request from the caller.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use imslab_sip::proxy::ContextId;
use imslab_sip::{HeaderName, Message, Method, StatusCode};
use imslab_types::{Function, Impu, Outcome, UeEvent, UeRef};

/// Most breakout dialogs with a CSeq offset kept at once.
pub const MAX_BREAKOUT_DIALOGS: usize = 4096;
/// How long a re-sent INVITE may wait for its final response and the ACK (Timer C plus the
/// 2xx retransmission time, RFC 3261 §16.6 step 11, §13.3.1.4).
pub const EARLY_LIFETIME: Duration = Duration::from_secs(212);
/// How long a confirmed dialog is kept without a request from the caller (a session timer
/// refresh, RFC 4028, comes well before).
pub const IDLE_LIFETIME: Duration = Duration::from_secs(3600);

/// Call-ID and the caller's From tag.
type Key = (String, String);

#[derive(Debug)]
struct Record {
    offset: u32,
    /// The INVITE's context while its answer is awaited.
    ctx: Option<ContextId>,
    confirmed: bool,
    expires: Instant,
    /// Which entry of the expiry queue is current.
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

/// The breakout dialogs with a CSeq offset. See the module documentation.
#[derive(Debug, Default)]
pub struct BreakoutDialogs {
    by_key: HashMap<Key, Record>,
    by_ctx: HashMap<ContextId, Key>,
    /// (expires, key, seq), in insertion order; stale entries are skipped.
    order: VecDeque<(Instant, Key, u64)>,
    next: u64,
}

fn key_of(msg: &Message) -> Option<Key> {
    let call = msg.call_id().ok()?.as_str().to_owned();
    let tag = msg.from_header().ok()?.tag()?.to_owned();
    Some((call, tag))
}

impl BreakoutDialogs {
    /// No dialogs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of dialogs kept.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The INVITE of context `ctx` was re-sent as `retried` (with credentials, CSeq one
    /// higher than the caller's): remember the offset for its dialog (added to an earlier one
    /// for a challenged re-INVITE of the same dialog).
    pub fn challenged(&mut self, now: Instant, ctx: ContextId, retried: &Message) {
        self.purge(now);
        let Some(key) = key_of(retried) else { return };
        self.next += 1;
        let seq = self.next;
        let expires = now + EARLY_LIFETIME;
        let r = self.by_key.entry(key.clone()).or_insert(Record {
            offset: 0,
            ctx: None,
            confirmed: false,
            expires,
            seq,
        });
        r.offset = r.offset.saturating_add(1);
        r.ctx = Some(ctx);
        r.expires = r.expires.max(expires);
        r.seq = seq;
        let at = r.expires;
        self.by_ctx.insert(ctx, key.clone());
        self.order.push_back((at, key, seq));
        while self.by_key.len() > MAX_BREAKOUT_DIALOGS {
            let Some((_, k, s)) = self.order.pop_front() else {
                break;
            };
            if self.by_key.get(&k).is_some_and(|r| r.seq == s) {
                self.forget(&k);
            }
        }
    }

    /// The final response of context `ctx` goes upstream: a failure ends the dialog of a
    /// re-sent INVITE (a 2xx keeps it until the ACK confirms it).
    pub fn final_response(&mut self, ctx: ContextId, status: StatusCode) {
        let Some(key) = self.by_ctx.remove(&ctx) else {
            return;
        };
        let confirmed = self.by_key.get(&key).is_some_and(|r| r.confirmed);
        if let Some(r) = self.by_key.get_mut(&key) {
            r.ctx = None;
        }
        if !status.is_success() && !confirmed {
            self.forget(&key);
        }
    }

    /// A request the S-CSCF forwards: when it belongs to a tracked dialog and comes from its
    /// caller, its CSeq number (and a PRACK's RAck CSeq number) is raised by the dialog's
    /// offset. An ACK confirms the dialog, a BYE ends it.
    pub fn outbound(&mut self, now: Instant, request: &mut Message) -> Rewrite {
        if self.by_key.is_empty() {
            return Rewrite::Untouched;
        }
        self.purge(now);
        let Some(key) = key_of(request) else {
            return Rewrite::Untouched;
        };
        let Some(r) = self.by_key.get_mut(&key) else {
            // The trunk hanging up: its BYE names the caller's tag in To.
            if request.method() == Some(&Method::Bye)
                && let Some(tag) = request
                    .to_header()
                    .ok()
                    .and_then(|t| t.tag().map(str::to_owned))
            {
                self.forget(&(key.0, tag));
            }
            return Rewrite::Untouched;
        };
        let method = request.method().cloned();
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
            _ => {}
        }
        if r.confirmed {
            self.next += 1;
            r.seq = self.next;
            r.expires = now + IDLE_LIFETIME;
            self.order.push_back((r.expires, key, r.seq));
        }
        Rewrite::Shifted(offset)
    }

    fn forget(&mut self, key: &Key) {
        if let Some(r) = self.by_key.remove(key)
            && let Some(ctx) = r.ctx
        {
            self.by_ctx.remove(&ctx);
        }
    }

    /// Drops the dialogs whose time is up.
    pub fn purge(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.order.front() {
            if *at > now {
                break;
            }
            let Some((_, k, s)) = self.order.pop_front() else {
                break;
            };
            if self.by_key.get(&k).is_some_and(|r| r.seq == s) {
                self.forget(&k);
            }
        }
        // Stale queue entries of refreshed dialogs are bounded too.
        while self.order.len() > 4 * MAX_BREAKOUT_DIALOGS {
            let Some((_, k, s)) = self.order.pop_front() else {
                break;
            };
            if self.by_key.get(&k).is_some_and(|r| r.seq == s) {
                self.forget(&k);
            }
        }
    }
}

/// The per-UE record of the trunk challenging the caller's INVITE: answered with the trunk
/// credentials (`answered`), or not answerable (not an MD5 digest challenge), so the
/// challenge goes back to the phone.
pub fn challenge_event(request: &Message, challenge: &Message, answered: bool) -> UeEvent {
    let caller = request
        .typed_all::<imslab_sip::NameAddr<'_>>(&HeaderName::P_ASSERTED_IDENTITY)
        .filter_map(Result::ok)
        .find_map(|n| Impu::new(n.uri.to_string()).ok());
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
        ue: UeRef {
            imsi: None,
            impi: None,
            impu: caller,
        },
        step: "call",
        outcome: if answered {
            Outcome::Ok
        } else {
            Outcome::Failed
        },
        reason: Some(reason),
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

    fn ctx(table: &mut BreakoutDialogs, t0: Instant) -> ContextId {
        // A context id as the proxy core hands them out.
        let mut p = imslab_sip::proxy::Proxy::new(
            imslab_sip::proxy::ProxyConfig::new(imslab_sip::proxy::Interface {
                transport: imslab_sip::header::Transport::Udp,
                addr: "127.0.0.1:6060".parse().expect("addr"),
                advertise: None,
            }),
            imslab_sip::transaction::TimerConfig::default(),
            1,
        );
        let ev = p.handle_message(
            t0,
            req("INVITE", 1, "a1", ""),
            imslab_sip::transaction::Peer::new(
                imslab_sip::header::Transport::Udp,
                "127.0.0.1:5060".parse().expect("addr"),
            ),
            imslab_sip::proxy::InterfaceId(0),
        );
        let id = ev
            .iter()
            .find_map(|e| match e {
                imslab_sip::proxy::ProxyEvent::Request { ctx, .. } => Some(*ctx),
                _ => None,
            })
            .expect("a context");
        table.challenged(t0, id, &req("INVITE", 2, "a1", ""));
        id
    }

    #[test]
    fn caller_requests_after_an_answered_challenge_go_one_cseq_ahead_and_bye_releases() {
        let t0 = Instant::now();
        let mut d = BreakoutDialogs::new();
        let c = ctx(&mut d, t0);
        d.final_response(c, StatusCode::OK);
        let mut ack = req("ACK", 1, "a1", "");
        assert_eq!(d.outbound(t0, &mut ack), Rewrite::Shifted(1));
        assert_eq!(cseq(&ack), 2, "the ACK carries the re-sent INVITE's CSeq");
        let mut prack = req("PRACK", 2, "a1", "RAck: 1 1 INVITE\r\n");
        d.outbound(t0, &mut prack);
        assert_eq!(cseq(&prack), 3);
        assert_eq!(
            prack
                .header_str(&HeaderName::RACK)
                .and_then(Result::ok)
                .expect("RAck"),
            "1 2 INVITE"
        );
        let mut from_trunk = req("INFO", 7, "trunk1", "");
        assert_eq!(d.outbound(t0, &mut from_trunk), Rewrite::Untouched);
        assert_eq!(cseq(&from_trunk), 7, "the trunk's own CSeq space");
        let mut bye = req("BYE", 3, "a1", "");
        assert_eq!(d.outbound(t0, &mut bye), Rewrite::Released(1));
        assert_eq!(cseq(&bye), 4);
        assert!(d.is_empty());
    }

    #[test]
    fn a_bye_from_the_trunk_releases_the_dialog_untouched() {
        let t0 = Instant::now();
        let mut d = BreakoutDialogs::new();
        let c = ctx(&mut d, t0);
        d.final_response(c, StatusCode::OK);
        let mut bye = Message::parse(
            "BYE sip:alice@127.0.0.1:5062 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKtb\r\nMax-Forwards: 70\r\n\
             From: <tel:+4930123>;tag=trunk1\r\nTo: <sip:alice@ims.example>;tag=a1\r\n\
             Call-ID: brk-1@ue\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n"
                .as_bytes()
                .to_vec(),
        )
        .expect("parses");
        assert_eq!(d.outbound(t0, &mut bye), Rewrite::Untouched);
        assert_eq!(cseq(&bye), 9);
        assert!(d.is_empty());
    }

    #[test]
    fn a_challenged_reinvite_adds_to_the_offset_and_its_failure_keeps_the_dialog() {
        let t0 = Instant::now();
        let mut d = BreakoutDialogs::new();
        let c = ctx(&mut d, t0);
        d.final_response(c, StatusCode::OK);
        let mut ack = req("ACK", 1, "a1", "");
        d.outbound(t0, &mut ack);
        let mut reinvite = req("INVITE", 2, "a1", "");
        assert!(d.outbound(t0, &mut reinvite).answerable());
        assert_eq!(cseq(&reinvite), 3);
        // The trunk challenges it; the S-CSCF sends it again with CSeq 4.
        let mut again = reinvite.clone();
        again
            .set_header(HeaderName::CSEQ, "4 INVITE")
            .expect("CSeq");
        d.challenged(t0, c, &again);
        d.final_response(c, StatusCode::REQUEST_PENDING);
        assert_eq!(d.len(), 1, "a confirmed dialog outlives a failed re-INVITE");
        let mut bye = req("BYE", 3, "a1", "");
        assert_eq!(d.outbound(t0, &mut bye), Rewrite::Released(2));
        assert_eq!(cseq(&bye), 5);
    }

    #[test]
    fn a_failed_invite_or_a_missing_ack_forgets_the_dialog() {
        let t0 = Instant::now();
        let mut d = BreakoutDialogs::new();
        let c = ctx(&mut d, t0);
        d.final_response(c, StatusCode::BUSY_HERE);
        assert!(d.is_empty(), "486 after the retry");
        let _ = ctx(&mut d, t0);
        assert_eq!(d.len(), 1);
        let mut late = req("BYE", 2, "a1", "");
        assert_eq!(
            d.outbound(t0 + EARLY_LIFETIME, &mut late),
            Rewrite::Untouched
        );
        assert!(d.is_empty(), "never ACKed");
    }

    #[test]
    fn the_table_is_bounded_and_idle_dialogs_expire() {
        let t0 = Instant::now();
        let mut d = BreakoutDialogs::new();
        let c = ctx(&mut d, t0);
        for i in 0..MAX_BREAKOUT_DIALOGS + 10 {
            let mut m = req("INVITE", 2, &format!("x{i}"), "");
            m.set_header(HeaderName::CALL_ID, format!("c{i}"))
                .expect("Call-ID");
            d.challenged(t0, c, &m);
        }
        assert_eq!(d.len(), MAX_BREAKOUT_DIALOGS);
        let mut d = BreakoutDialogs::new();
        let c = ctx(&mut d, t0);
        d.final_response(c, StatusCode::OK);
        let mut ack = req("ACK", 1, "a1", "");
        d.outbound(t0, &mut ack);
        let mut info = req("INFO", 2, "a1", "");
        let later = t0 + IDLE_LIFETIME / 2;
        assert_eq!(d.outbound(later, &mut info), Rewrite::Shifted(1));
        d.purge(later + IDLE_LIFETIME / 2 + Duration::from_secs(1));
        assert_eq!(d.len(), 1, "a request refreshes the idle timer");
        d.purge(later + IDLE_LIFETIME);
        assert!(d.is_empty());
    }
}
