//! The RFC 3261 §16 stateful proxy core, as pure code on top of the [`TransactionLayer`].
//!
//! # The seam for the CSCFs
//!
//! The core does what every stateful proxy does — request validation (§16.3), route
//! preprocessing (§16.4), forwarding with Via, Max-Forwards and Record-Route (§16.6), response
//! selection and forwarding (§16.7), CANCEL (§16.10), timers — and leaves the routing policy to
//! its user:
//!
//! 1. Each new request that passes validation comes out as [`ProxyEvent::Request`] with a
//!    [`ContextId`]. The CSCF inspects and edits it (add P-Asserted-Identity, Path, strip
//!    headers...), possibly after asynchronous work (a Diameter LIR, an XFRM call), and then
//!    calls [`Proxy::decide`] exactly once with a [`Decision`]: forward to one or more
//!    [`Target`]s (sequentially or in parallel), or answer with a response of its own.
//! 2. Each response the core selects for forwarding comes out as [`ProxyEvent::Response`],
//!    with this proxy's Via already removed. The CSCF may edit it (the P-CSCF takes `ck`/`ik`
//!    out of a 401) and passes it to [`Proxy::forward_response`].
//! 3. [`ProxyEvent::Transmit`] carries bytes for the transport driver;
//!    [`ProxyEvent::Finished`] says a context is gone.
//!
//! [`Proxy::decide_with`] adds [`DecideOptions`]: a Route set per target (forking to contacts
//! behind different Paths), a no-answer timeout per branch (an AS that sent 100 and died), and
//! challenge answering: a 401/407 for the element to answer with [`Proxy::retry`] (the next
//! CSeq; responses go upstream with the CSeq the request came with).
//!
//! Requests this element sends on its own behalf (a NOTIFY, a network-initiated
//! de-registration) go through [`Proxy::send_request`]; their responses come out as
//! [`ProxyEvent::UacResponse`].
//!
//! The core never resolves names: a [`Target`] carries its destination, or the core derives one
//! from an IP-literal next hop or [`ProxyConfig::hosts`].
//!
//! # Choices where RFC 3261 leaves room
//!
//! - Loop detection (§16.3 step 4, §16.6 step 8) hashes the Request-URI, From and To tags,
//!   Call-ID, CSeq number, Route, Proxy-Require and Proxy-Authorization — not the topmost Via,
//!   which is the previous hop's and differs on every pass of a real loop. A request that comes
//!   back with a different Request-URI or Route (an IMS spiral through an AS) is forwarded.
//! - A CANCEL that matches no INVITE context comes out as an ordinary [`ProxyEvent::Request`]:
//!   forward it (§16.10 forwards it statelessly) or answer 481.
//! - A context ends once its final response is out and every branch has a final response;
//!   later 2xx retransmissions of other forks are forwarded statelessly along their Via.
//! - Max-Forwards 0 is answered 483 for every method, OPTIONS included.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::header::{MAGIC_COOKIE, NameAddr, Transport, Via};
use crate::transaction::{
    ClientId, Output, Peer, ServerId, TimerConfig, TransactionLayer, TxRef, build_cancel,
};
use crate::validate::check_request;
use crate::{Error, HeaderName, Host, Message, Method, StatusCode, Uri};

/// One address this proxy listens on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The transport.
    pub transport: Transport,
    /// The address and port.
    pub addr: SocketAddr,
    /// A host name to use in Via and Record-Route instead of the address.
    pub advertise: Option<String>,
}

/// An index into [`ProxyConfig::interfaces`]: the interface a message arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InterfaceId(pub usize);

/// Proxy configuration.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The interfaces, at least one.
    pub interfaces: Vec<Interface>,
    /// Host names that also mean this proxy in Route headers and Request-URIs
    /// (e.g. `pcscf.ims.mnc001.mcc001.3gppnetwork.org`).
    pub aliases: Vec<String>,
    /// Option tags accepted in Proxy-Require (§16.3 step 5); others get 420. The P-CSCF lists
    /// `sec-agree`.
    pub supported: Vec<String>,
    /// Static name resolution for next hops given by host name.
    pub hosts: HashMap<String, Peer>,
    /// Timer C (§16.6 step 11), more than 3 minutes; default 180 s.
    pub timer_c: Duration,
    /// Answer 482 to looping requests (§16.3 step 4). Default on.
    pub loop_detection: bool,
}

impl ProxyConfig {
    /// A configuration with one interface and the defaults.
    pub fn new(interface: Interface) -> Self {
        Self {
            interfaces: vec![interface],
            aliases: Vec::new(),
            supported: Vec::new(),
            hosts: HashMap::new(),
            timer_c: Duration::from_secs(180),
            loop_detection: true,
        }
    }
}

/// A proxy context: one incoming request and everything done for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextId(u64);

/// Where to forward a request (§16.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// The new Request-URI; `None` keeps the request's own (for example to follow a pre-loaded
    /// Route or a dialog's route set).
    pub uri: Option<Bytes>,
    /// The transport address to send to; `None` derives it from the next hop (top Route, else
    /// the Request-URI) when that is an IP literal or listed in [`ProxyConfig::hosts`].
    pub destination: Option<Peer>,
}

impl Target {
    /// Forward along the request's own next hop.
    pub fn next_hop() -> Self {
        Self::default()
    }

    /// Forward to this Request-URI.
    pub fn uri(uri: impl Into<Bytes>) -> Self {
        Self {
            uri: Some(uri.into()),
            destination: None,
        }
    }

    /// Sets the destination (builder style).
    pub fn via(mut self, destination: Peer) -> Self {
        self.destination = Some(destination);
        self
    }
}

/// How several targets are tried (§16.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkMode {
    /// All at once; the best final response wins.
    Parallel,
    /// One after another until a 2xx or 6xx.
    Sequential,
}

/// Record-Route this proxy (§16.6 step 4) so it stays on the dialog's path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordRoute {
    /// A user part for the Record-Route URI, for the proxy's own use when the dialog's requests
    /// come back (the S-CSCF uses `orig`/`term`-style markers).
    pub user: Option<String>,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// Forward the (possibly edited) request.
    Forward {
        /// The request as it should be forwarded.
        request: Message,
        /// The targets; an empty list means [`Target::next_hop`].
        targets: Vec<Target>,
        /// How to try several targets.
        mode: ForkMode,
        /// Add Record-Route (§16.6 step 4); twice when the request changes interface or
        /// transport (RFC 5658).
        record_route: Option<RecordRoute>,
    },
    /// Answer with this response (built with [`Message::response`]).
    Respond(Message),
}

impl Decision {
    /// Forward to one target with no Record-Route.
    pub fn forward(request: Message, target: Target) -> Self {
        Self::Forward {
            request,
            targets: vec![target],
            mode: ForkMode::Parallel,
            record_route: None,
        }
    }
}

/// Per forward target, in order, a Route set of its own (`None`: the request's), values as
/// on the wire (`<sip:pcscf1;lr>`), first hop first: see [`DecideOptions::routes`].
pub type RouteSets = Vec<Option<Vec<Bytes>>>;

/// What goes with a [`Decision`] beyond its targets: see [`Proxy::decide_with`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct DecideOptions {
    /// RFC 3263 §4.3 failover: per forward target, in order, the other servers for it (its
    /// `destination` being the first); see [`Proxy::decide_with_failover`].
    pub alternates: Vec<Vec<Peer>>,
    /// Applied instead when every branch fails; see [`Proxy::decide_with_fallback`].
    pub fallback: Option<Decision>,
    /// [`DecideOptions::routes`] for the fallback decision's targets.
    pub fallback_routes: RouteSets,
    /// Per forward target, in order, a Route set replacing the request's Route values on that
    /// target's branch only (`None`: the request's own). RFC 3261 §16.6 works on one copy of
    /// the request per target, so each copy may carry its own pre-loaded Route set: the
    /// S-CSCF forks to contacts behind different P-CSCFs, each with its binding's Path as
    /// Route (TS 24.229 §5.4.3.3, RFC 3327 §5.3). Values as they go on the wire
    /// (`<sip:pcscf1;lr>`), first hop first.
    pub routes: RouteSets,
    /// A branch that has neither a final response nor a provisional response other than
    /// 100 after this long is given up as if it had answered 408 (an INVITE branch with a
    /// 100 is also cancelled): the S-CSCF's response timeout toward an application server,
    /// which TS 24.229 §5.4.3.2/§5.4.3.3 leaves to the operator, shorter than Timer C. The
    /// 408 counts for a fallback decision like any other.
    pub no_answer: Option<Duration>,
    /// Hold a 401/407 chosen as the final response (§16.7 step 6) for the element to answer
    /// the challenge itself: it then calls [`Proxy::retry`] with the request carrying the
    /// credentials, or [`Proxy::forward_response`] to pass the challenge on. Once per
    /// context: a second challenge goes upstream (see [`Proxy::challenge_pending`]).
    pub answer_challenges: bool,
}

impl DecideOptions {
    /// Sets [`DecideOptions::alternates`] (builder style).
    #[must_use]
    pub fn alternates(mut self, alternates: Vec<Vec<Peer>>) -> Self {
        self.alternates = alternates;
        self
    }

    /// Sets [`DecideOptions::fallback`] (builder style).
    #[must_use]
    pub fn fallback(mut self, fallback: Option<Decision>) -> Self {
        self.fallback = fallback;
        self
    }

    /// Sets [`DecideOptions::fallback_routes`] (builder style).
    #[must_use]
    pub fn fallback_routes(mut self, routes: RouteSets) -> Self {
        self.fallback_routes = routes;
        self
    }

    /// Sets [`DecideOptions::routes`] (builder style).
    #[must_use]
    pub fn routes(mut self, routes: RouteSets) -> Self {
        self.routes = routes;
        self
    }

    /// Sets [`DecideOptions::no_answer`] (builder style).
    #[must_use]
    pub fn no_answer(mut self, after: Option<Duration>) -> Self {
        self.no_answer = after;
        self
    }

    /// Sets [`DecideOptions::answer_challenges`] (builder style).
    #[must_use]
    pub fn answer_challenges(mut self, on: bool) -> Self {
        self.answer_challenges = on;
        self
    }
}

/// What the proxy asks its driver and its CSCF to do.
#[derive(Debug)]
pub enum ProxyEvent {
    /// Send bytes.
    Transmit {
        /// Destination.
        to: Peer,
        /// The encoded message.
        bytes: Bytes,
        /// The transaction, so a send failure can be reported with
        /// [`Proxy::handle_transport_error`].
        tx: Option<TxRef>,
    },
    /// A new request: call [`Proxy::decide`] for `ctx`. ACKs for 2xx (`stateless` set) are
    /// forwarded without a transaction and cannot be answered.
    Request {
        /// The context.
        ctx: ContextId,
        /// The request after §16.4 preprocessing and with `received`/`rport` set.
        request: Message,
        /// Where it came from.
        from: Peer,
        /// The interface it arrived on.
        iface: InterfaceId,
        /// An ACK forwarded without a transaction.
        stateless: bool,
    },
    /// A response to forward upstream: edit if needed and pass to [`Proxy::forward_response`].
    Response {
        /// The context.
        ctx: ContextId,
        /// The response, this proxy's Via removed.
        response: Message,
    },
    /// A CANCEL arrived for this context (§16.10); pending branches are being cancelled.
    Cancelled {
        /// The context.
        ctx: ContextId,
    },
    /// The core refused a message itself (400, 416, 420, 482, 483, 505...); see
    /// [`ProxyEvent::diagnosis`] for the per-UE record. A request is answered with `status`; a
    /// message without a usable Via or CSeq cannot be answered and is dropped.
    Rejected {
        /// The status the request was (or, when it could not be answered, would have been)
        /// answered with.
        status: StatusCode,
        /// Why.
        error: Error,
    },
    /// A response to a request sent with [`Proxy::send_request`].
    UacResponse {
        /// The client transaction.
        id: ClientId,
        /// The response.
        response: Message,
    },
    /// A request sent with [`Proxy::send_request`] timed out or could not be sent.
    UacFailed {
        /// The client transaction.
        id: ClientId,
        /// 408 or 503.
        status: StatusCode,
    },
    /// The context is finished; its id will not appear again.
    Finished {
        /// The context.
        ctx: ContextId,
    },
}

impl ProxyEvent {
    /// The per-UE diagnosis of a [`ProxyEvent::Rejected`], shaped like
    /// [`imslab_types::UeEvent`]: step name, outcome and reason. The caller adds the UE (known
    /// from the flow the message came on) and emits it.
    pub fn diagnosis(&self) -> Option<(&'static str, imslab_types::Outcome, String)> {
        match self {
            Self::Rejected { status, error, .. } => Some((
                "sip-request",
                imslab_types::Outcome::Failed,
                format!("{} {}: {error}", status.as_u16(), status.reason_phrase()),
            )),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Branch {
    client: Option<ClientId>,
    request: Message,
    peer: Option<Peer>,
    provisional: bool,
    cancel_pending: bool,
    final_status: Option<StatusCode>,
    /// The Route set this branch's copy carries instead of the request's.
    routes: Option<Vec<Bytes>>,
}

#[derive(Debug)]
struct Context {
    server: Option<ServerId>,
    method: Method,
    iface: InterfaceId,
    loop_hash: String,
    decided: bool,
    cancelled: bool,
    final_sent: bool,
    final_forwarded: bool,
    mode: ForkMode,
    record_route: Option<RecordRoute>,
    request: Option<Message>,
    pending: Vec<(Target, Option<Vec<Bytes>>)>,
    branches: Vec<Branch>,
    finals: Vec<Message>,
    /// Route values naming this proxy that §16.4 removed, in order (until the decision).
    consumed_routes: Vec<Bytes>,
    /// What to do instead when every branch fails (see [`Proxy::decide_with_fallback`]),
    /// with its per-target Route sets.
    fallback: Option<Box<(Decision, RouteSets)>>,
    /// The CSeq number as received: responses carry it upstream even when the forwarded
    /// copy had another one.
    cseq: Option<u32>,
    /// The forwarded request's CSeq number differs from the received one.
    cseq_shifted: bool,
    /// [`DecideOptions::no_answer`].
    no_answer: Option<Duration>,
    /// [`DecideOptions::answer_challenges`], until used.
    answer_challenges: bool,
    /// The branch whose 401/407 waits for [`Proxy::retry`] or [`Proxy::forward_response`].
    challenged: Option<usize>,
}

/// The stateful proxy. See the module documentation for the calling contract.
pub struct Proxy {
    cfg: ProxyConfig,
    layer: TransactionLayer,
    next_ctx: u64,
    branch_counter: u64,
    seed: u64,
    contexts: HashMap<ContextId, Context>,
    by_server: HashMap<ServerId, ContextId>,
    by_client: HashMap<ClientId, (ContextId, usize)>,
    cancels: HashMap<ClientId, ()>,
    uac: HashMap<ClientId, ()>,
    timer_c: BinaryHeap<Reverse<(Instant, ClientId)>>,
    timer_c_at: HashMap<ClientId, Instant>,
    /// Finished INVITE contexts forwarded with another CSeq number than received (Call-ID,
    /// CSeq sent, CSeq received), newest last, at most [`MAX_SHIFTED_INVITES`]: their 2xx
    /// retransmissions go upstream statelessly with the received number.
    shifted_invites: std::collections::VecDeque<(Bytes, u32, u32)>,
    /// [`DecideOptions::no_answer`] timers per branch.
    no_answer: BinaryHeap<Reverse<(Instant, ClientId)>>,
    no_answer_at: HashMap<ClientId, Instant>,
    /// RFC 3263 §4.3: where a branch goes next if it times out or gets 503.
    failover: HashMap<ClientId, Vec<Peer>>,
    /// INVITE branches given up by [`DecideOptions::no_answer`] whose transaction still runs,
    /// and whether their CANCEL went out: their responses never go upstream, and a late
    /// provisional response gets the CANCEL that §9.1 held back. Emptied as the transactions
    /// terminate.
    abandoned: HashMap<ClientId, bool>,
    /// Contexts whose fallback decision was applied, and the failure that caused it, until
    /// taken (at most [`MAX_FALLBACK_REPORTS`]).
    fallbacks_applied: Vec<(ContextId, StatusCode)>,
}

/// Most finished INVITE contexts whose CSeq was shifted remembered for their 2xx
/// retransmissions (the oldest go first).
pub const MAX_SHIFTED_INVITES: usize = 1024;

/// Most unread reports of applied fallbacks kept (the oldest go first).
pub const MAX_FALLBACK_REPORTS: usize = 1024;

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("contexts", &self.contexts.len())
            .field("layer", &self.layer)
            .finish()
    }
}

impl Proxy {
    /// A proxy. `seed` makes branch values unique across restarts; pass randomness from the
    /// caller (the core itself is deterministic).
    pub fn new(cfg: ProxyConfig, timers: TimerConfig, seed: u64) -> Self {
        let mut layer = TransactionLayer::new(timers);
        // §18.1.1: with a TCP interface, large requests toward UDP targets go over TCP.
        if cfg.interfaces.iter().any(|i| i.transport == Transport::Tcp) {
            layer.set_udp_size_rule(None);
        }
        Self {
            cfg,
            layer,
            next_ctx: 1,
            branch_counter: 0,
            seed,
            contexts: HashMap::new(),
            by_server: HashMap::new(),
            by_client: HashMap::new(),
            cancels: HashMap::new(),
            uac: HashMap::new(),
            timer_c: BinaryHeap::new(),
            timer_c_at: HashMap::new(),
            no_answer: BinaryHeap::new(),
            no_answer_at: HashMap::new(),
            shifted_invites: std::collections::VecDeque::new(),
            failover: HashMap::new(),
            abandoned: HashMap::new(),
            fallbacks_applied: Vec::new(),
        }
    }

    /// Sets the path MTU toward UDP next hops: requests within 200 bytes of it go over TCP
    /// (RFC 3261 §18.1.1; without it the threshold is 1300 bytes). Needs a TCP interface.
    pub fn set_path_mtu(&mut self, mtu: usize) {
        if self
            .cfg
            .interfaces
            .iter()
            .any(|i| i.transport == Transport::Tcp)
        {
            self.layer.set_udp_size_rule(Some(mtu));
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.cfg
    }

    /// Number of live contexts.
    pub fn context_count(&self) -> usize {
        self.contexts.len()
    }

    /// The transaction layer, for inspection.
    pub fn layer(&self) -> &TransactionLayer {
        &self.layer
    }

    /// The earliest instant at which [`Proxy::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let c = self.timer_c.peek().map(|Reverse((at, _))| *at);
        let n = self.no_answer.peek().map(|Reverse((at, _))| *at);
        [self.layer.poll_timeout(), c, n]
            .into_iter()
            .flatten()
            .min()
    }

    /// Feeds a message received on interface `iface` from `from`.
    pub fn handle_message(
        &mut self,
        now: Instant,
        msg: Message,
        from: Peer,
        iface: InterfaceId,
    ) -> Vec<ProxyEvent> {
        let mut ev = Vec::new();
        match self.layer.handle_message(now, msg, from) {
            Ok(outputs) => self.absorb(now, outputs, iface, &mut ev),
            Err(error) => ev.push(ProxyEvent::Rejected {
                status: error.status_code(),
                error,
            }),
        }
        ev
    }

    /// Fires due timers (transaction timers and Timer C).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<ProxyEvent> {
        let mut ev = Vec::new();
        let outputs = self.layer.handle_timeout(now);
        self.absorb(now, outputs, InterfaceId(0), &mut ev);
        while let Some(Reverse((at, cid))) = self.timer_c.peek().copied() {
            if at > now {
                break;
            }
            self.timer_c.pop();
            if self.timer_c_at.get(&cid) != Some(&at) {
                continue;
            }
            self.timer_c_at.remove(&cid);
            self.fire_timer_c(now, cid, &mut ev);
        }
        while let Some(Reverse((at, cid))) = self.no_answer.peek().copied() {
            if at > now {
                break;
            }
            self.no_answer.pop();
            if self.no_answer_at.get(&cid) != Some(&at) {
                continue;
            }
            self.no_answer_at.remove(&cid);
            self.fire_no_answer(now, cid, &mut ev);
        }
        ev
    }

    /// The transport could not send a message of transaction `tx`.
    pub fn handle_transport_error(&mut self, now: Instant, tx: TxRef) -> Vec<ProxyEvent> {
        let mut ev = Vec::new();
        let outputs = self.layer.handle_send_failure(now, tx);
        self.absorb(now, outputs, InterfaceId(0), &mut ev);
        ev
    }

    /// The peer at `remote` over UDP cannot be reached (an ICMP port or host unreachable came
    /// back for a datagram sent to it): every client transaction toward it fails as if its
    /// send had failed (503 for a branch, so RFC 3263 failover or a fallback decision
    /// applies at once; RFC 3261 §18.4 lets the transport report ICMP errors), instead of at
    /// Timer B/F.
    pub fn handle_unreachable(&mut self, now: Instant, remote: SocketAddr) -> Vec<ProxyEvent> {
        let failed: Vec<ClientId> = self
            .by_client
            .keys()
            .chain(self.uac.keys())
            .chain(self.cancels.keys())
            .copied()
            .filter(|cid| {
                self.layer
                    .client_peer(*cid)
                    .is_some_and(|p| p.transport == Transport::Udp && p.addr == remote)
            })
            .collect();
        let mut ev = Vec::new();
        for cid in failed {
            let outputs = self.layer.handle_send_failure(now, TxRef::Client(cid));
            self.absorb(now, outputs, InterfaceId(0), &mut ev);
        }
        ev
    }

    /// The Route values naming this proxy that §16.4 preprocessing removed from the request of
    /// `ctx`, in their order, as received (`<sip:orig@scscf;lr>`): the S-CSCF tells the
    /// originating case and its AS hand-off returns from them (TS 24.229 §5.4.3.2). Kept until
    /// the decision; empty for an unknown context.
    pub fn consumed_routes(&self, ctx: ContextId) -> &[Bytes] {
        self.contexts
            .get(&ctx)
            .map_or(&[][..], |c| c.consumed_routes.as_slice())
    }

    /// [`Proxy::decide`], with a `fallback` applied instead when the decision's branches all
    /// fail before a final answer worth forwarding: every branch ends in 408 (no answer,
    /// Timer C), a 5xx or a transport error (after any RFC 3263 failover), none in 2xx, 3xx,
    /// 4xx or 6xx. Their answers are then dropped and `fallback` is applied as the decision
    /// (forward elsewhere, or respond). Not after a CANCEL. This is the S-CSCF's
    /// DefaultHandling SESSION_CONTINUED toward an unresponsive AS (TS 24.229 §5.4.3.2 step 4,
    /// §5.4.3.3; TS 29.228 Annex B). A fallback may itself carry none.
    pub fn decide_with_fallback(
        &mut self,
        now: Instant,
        ctx: ContextId,
        decision: Decision,
        fallback: Decision,
    ) -> Result<Vec<ProxyEvent>, Error> {
        self.decide_with_failover_and_fallback(now, ctx, decision, Vec::new(), Some(fallback))
    }

    /// [`Proxy::decide_with_failover`] and [`Proxy::decide_with_fallback`] together: RFC 3263
    /// failover first, the fallback when that too fails. The fallback's own targets get no
    /// failover.
    pub fn decide_with_failover_and_fallback(
        &mut self,
        now: Instant,
        ctx: ContextId,
        decision: Decision,
        alternates: Vec<Vec<Peer>>,
        fallback: Option<Decision>,
    ) -> Result<Vec<ProxyEvent>, Error> {
        let opts = DecideOptions::default()
            .alternates(alternates)
            .fallback(fallback);
        self.decide_with(now, ctx, decision, opts)
    }

    /// [`Proxy::decide`] with [`DecideOptions`]: RFC 3263 failover, a fallback decision,
    /// per-target Route sets, a no-answer timeout per branch and challenge answering, in any
    /// combination.
    pub fn decide_with(
        &mut self,
        now: Instant,
        ctx: ContextId,
        decision: Decision,
        opts: DecideOptions,
    ) -> Result<Vec<ProxyEvent>, Error> {
        let DecideOptions {
            alternates,
            fallback,
            fallback_routes,
            routes,
            no_answer,
            answer_challenges,
        } = opts;
        let c = self.contexts.get_mut(&ctx).ok_or(Error::UnknownContext)?;
        if !c.decided && c.server.is_some() {
            if let Some(f) = fallback {
                c.fallback = Some(Box::new((f, fallback_routes)));
            }
            c.no_answer = no_answer;
            c.answer_challenges = answer_challenges;
        }
        let mut ev = self.apply_decision(now, ctx, decision, routes)?;
        if alternates.iter().all(Vec::is_empty) {
            return Ok(ev);
        }
        let started: Vec<Option<ClientId>> = self
            .contexts
            .get(&ctx)
            .map(|c| c.branches.iter().map(|b| b.client).collect())
            .unwrap_or_default();
        let mut failed_at_once = Vec::new();
        for (cid, alt) in started.into_iter().zip(alternates) {
            if let Some(cid) = cid.filter(|_| !alt.is_empty()) {
                // A branch whose transaction is already gone failed while being sent.
                if self.layer.state(TxRef::Client(cid)).is_none() {
                    failed_at_once.push((cid, alt));
                } else {
                    self.failover.insert(cid, alt);
                }
            }
        }
        for (cid, alt) in failed_at_once {
            if let Some(&(ctx, idx)) = self.by_client.get(&cid) {
                self.try_failover(now, ctx, idx, alt, &mut ev);
            }
        }
        Ok(ev)
    }

    /// The contexts whose fallback decision ([`Proxy::decide_with_fallback`]) was applied
    /// since the last call, each with the failure of its last branch (408, 5xx), for per-UE
    /// diagnosis ("the AS did not answer, the session continued without it").
    pub fn take_fallbacks_applied(&mut self) -> Vec<(ContextId, StatusCode)> {
        std::mem::take(&mut self.fallbacks_applied)
    }

    /// Applies the CSCF's decision for a context announced by [`ProxyEvent::Request`].
    pub fn decide(
        &mut self,
        now: Instant,
        ctx: ContextId,
        decision: Decision,
    ) -> Result<Vec<ProxyEvent>, Error> {
        self.decide_with(now, ctx, decision, DecideOptions::default())
    }

    fn apply_decision(
        &mut self,
        now: Instant,
        ctx: ContextId,
        decision: Decision,
        routes: RouteSets,
    ) -> Result<Vec<ProxyEvent>, Error> {
        let mut ev = Vec::new();
        let c = self.contexts.get_mut(&ctx).ok_or(Error::UnknownContext)?;
        if c.decided {
            return Err(Error::TransactionState { state: "decided" });
        }
        c.decided = true;
        c.consumed_routes = Vec::new();
        let server = c.server;
        if c.final_sent {
            // Cancelled before the decision: 487 was already sent.
            self.maybe_finish(ctx, &mut ev);
            return Ok(ev);
        }
        match decision {
            Decision::Respond(response) => {
                let is_final = response.status().is_some_and(StatusCode::is_final);
                if let Some(c) = self.contexts.get_mut(&ctx) {
                    c.final_sent = is_final;
                    c.final_forwarded = is_final;
                    // A provisional answer leaves the context waiting for a final one.
                    c.decided = is_final;
                }
                if let Some(sid) = server {
                    let out = self.layer.send_response(now, sid, &response)?;
                    self.absorb(now, out, InterfaceId(0), &mut ev);
                }
                self.maybe_finish(ctx, &mut ev);
            }
            Decision::Forward {
                request,
                targets,
                mode,
                record_route,
            } => {
                let targets = if targets.is_empty() {
                    vec![Target::next_hop()]
                } else {
                    targets
                };
                let mut routes = routes.into_iter();
                let targets: Vec<(Target, Option<Vec<Bytes>>)> = targets
                    .into_iter()
                    .map(|t| (t, routes.next().flatten()))
                    .collect();
                let shifted = request.cseq().ok().map(|c| c.seq);
                if let Some(c) = self.contexts.get_mut(&ctx) {
                    c.mode = mode;
                    c.record_route = record_route;
                    c.cseq_shifted = c.cseq.is_some() && shifted != c.cseq;
                    c.request = Some(request);
                }
                if server.is_none() {
                    if let Some(t) = targets.into_iter().next() {
                        self.forward_stateless(ctx, t, &mut ev);
                    }
                    self.contexts.remove(&ctx);
                    ev.push(ProxyEvent::Finished { ctx });
                    return Ok(ev);
                }
                match mode {
                    ForkMode::Parallel => {
                        for (t, r) in targets {
                            self.start_branch(now, ctx, t, r, &mut ev);
                        }
                    }
                    ForkMode::Sequential => {
                        if let Some(c) = self.contexts.get_mut(&ctx) {
                            c.pending = targets;
                        }
                        self.advance_sequential(now, ctx, &mut ev);
                    }
                }
                self.check_complete(now, ctx, &mut ev);
            }
        }
        Ok(ev)
    }

    /// [`Proxy::decide`], with RFC 3263 §4.3 failover: `alternates[i]` lists, in order, the
    /// other servers for the `i`-th forward target (its `destination` being the first). A
    /// branch that times out, cannot be sent or gets 503 is sent again to the next one; only
    /// the last answer counts. Parallel forking: every target; sequential: the first.
    pub fn decide_with_failover(
        &mut self,
        now: Instant,
        ctx: ContextId,
        decision: Decision,
        alternates: Vec<Vec<Peer>>,
    ) -> Result<Vec<ProxyEvent>, Error> {
        let opts = DecideOptions::default().alternates(alternates);
        self.decide_with(now, ctx, decision, opts)
    }

    /// Restarts branch `idx` toward the next of `alternates`; false when there is none or the
    /// context is over.
    fn try_failover(
        &mut self,
        now: Instant,
        ctx: ContextId,
        idx: usize,
        mut alternates: Vec<Peer>,
        ev: &mut Vec<ProxyEvent>,
    ) -> bool {
        if alternates.is_empty() {
            return false;
        }
        let Some(c) = self.contexts.get_mut(&ctx) else {
            return false;
        };
        if c.final_sent || c.cancelled {
            return false;
        }
        let Some(b) = c.branches.get_mut(idx) else {
            return false;
        };
        let ruri = b.request.request_uri_raw().map(Bytes::copy_from_slice);
        let routes = b.routes.clone();
        // This branch is over; its answer is dropped in favour of the next server's.
        b.final_status = Some(StatusCode::SERVICE_UNAVAILABLE);
        let before = c.branches.len();
        let next = alternates.remove(0);
        let target = Target {
            uri: ruri,
            destination: Some(next),
        };
        self.start_branch(now, ctx, target, routes, ev);
        let new_cid = self
            .contexts
            .get(&ctx)
            .and_then(|c| c.branches.get(before))
            .and_then(|b| b.client);
        if let Some(cid) = new_cid
            && !alternates.is_empty()
        {
            self.failover.insert(cid, alternates);
        }
        self.check_complete(now, ctx, ev);
        true
    }

    /// When `ctx` holds a challenge ([`DecideOptions::answer_challenges`]; the 401/407 came as
    /// [`ProxyEvent::Response`]): the decided request with the challenged branch's
    /// Request-URI (and Route set, if it had its own), from which the element computes its
    /// credentials and builds the request for [`Proxy::retry`]. `None` otherwise.
    pub fn challenge_pending(&self, ctx: ContextId) -> Option<Message> {
        let c = self.contexts.get(&ctx)?;
        if c.final_forwarded {
            return None;
        }
        let b = c.branches.get(c.challenged?)?;
        let mut req = c.request.clone()?;
        if let Some(uri) = b.request.request_uri_raw() {
            req.set_request_uri(Bytes::copy_from_slice(uri)).ok()?;
        }
        if let Some(routes) = &b.routes {
            req.remove_header(&HeaderName::ROUTE);
            for r in routes {
                req.push_header(HeaderName::ROUTE, r.clone()).ok()?;
            }
        }
        Some(req)
    }

    /// Answers the challenge `ctx` holds ([`Proxy::challenge_pending`]): `request` (the
    /// decided request with credentials and, as RFC 3261 §22.2 asks, the next CSeq) goes as a
    /// new branch, with a new Via branch, where the challenged branch went; its ACK was sent
    /// by the client transaction (§17.1.1.3). Responses go upstream with the CSeq number the
    /// request was received with, and a CANCEL from upstream cancels the new branch. Like
    /// Kamailio's `uac_auth()` in a failure route.
    pub fn retry(
        &mut self,
        now: Instant,
        ctx: ContextId,
        request: Message,
    ) -> Result<Vec<ProxyEvent>, Error> {
        let mut ev = Vec::new();
        let c = self.contexts.get_mut(&ctx).ok_or(Error::UnknownContext)?;
        if c.final_forwarded {
            return Err(Error::TransactionState { state: "answered" });
        }
        let idx = c.challenged.take().ok_or(Error::TransactionState {
            state: "not challenged",
        })?;
        let b = c.branches.get(idx).ok_or(Error::UnknownContext)?;
        let target = Target {
            uri: b.request.request_uri_raw().map(Bytes::copy_from_slice),
            destination: b.peer.clone(),
        };
        let routes = b.routes.clone();
        c.cseq_shifted = c.cseq.is_some() && request.cseq().ok().map(|s| s.seq) != c.cseq;
        c.request = Some(request);
        c.final_sent = false;
        c.finals.clear();
        self.start_branch(now, ctx, target, routes, &mut ev);
        self.check_complete(now, ctx, &mut ev);
        Ok(ev)
    }

    /// Sends a response announced by [`ProxyEvent::Response`] (possibly edited) upstream.
    pub fn forward_response(
        &mut self,
        now: Instant,
        ctx: ContextId,
        response: Message,
    ) -> Result<Vec<ProxyEvent>, Error> {
        let mut ev = Vec::new();
        let c = self.contexts.get_mut(&ctx).ok_or(Error::UnknownContext)?;
        let sid = c.server.ok_or(Error::UnknownContext)?;
        if response.status().is_some_and(StatusCode::is_final) {
            c.final_forwarded = true;
            c.challenged = None;
        }
        let out = self.layer.send_response(now, sid, &response)?;
        self.absorb(now, out, InterfaceId(0), &mut ev);
        self.maybe_finish(ctx, &mut ev);
        Ok(ev)
    }

    /// Sends a request this element originates (it must carry its own Via with a fresh branch;
    /// see [`Proxy::via_for`]).
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Message,
        to: Peer,
    ) -> Result<(ClientId, Vec<ProxyEvent>), Error> {
        let (id, out) = self.layer.send_request(now, request, to)?;
        self.uac.insert(id, ());
        let mut ev = Vec::new();
        self.absorb(now, out, InterfaceId(0), &mut ev);
        Ok((id, ev))
    }

    /// A Via for a request this element sends to `to`, with a fresh branch.
    pub fn via_for(&mut self, to: &Peer) -> Via<'static> {
        let iface = self.outbound_iface(to);
        let n = self.next_branch();
        let branch = format!("{MAGIC_COOKIE}{:016x}.{n}", self.seed);
        self.via_on(iface, to.transport.clone(), branch)
    }

    // ---- inbound ----

    fn absorb(
        &mut self,
        now: Instant,
        outputs: Vec<Output>,
        iface: InterfaceId,
        ev: &mut Vec<ProxyEvent>,
    ) {
        for o in outputs {
            match o {
                Output::Transmit { to, bytes, tx } => {
                    ev.push(ProxyEvent::Transmit { to, bytes, tx })
                }
                Output::Request {
                    id: Some(sid),
                    request,
                    from,
                    cancels: None,
                } => {
                    self.on_request(now, sid, request, from, iface, ev);
                }
                Output::Request {
                    id: Some(sid),
                    request,
                    cancels: Some(inv),
                    ..
                } => {
                    self.on_cancel(now, sid, &request, inv, ev);
                }
                Output::Request {
                    id: None,
                    request,
                    from,
                    ..
                } => self.on_stateless(request, from, iface, ev),
                Output::Response { id, response } => self.on_response(now, id, response, ev),
                Output::StrayResponse { response, .. } => self.forward_stray(response, ev),
                Output::Timeout { id } => {
                    self.on_branch_failure(now, id, StatusCode::REQUEST_TIMEOUT, ev)
                }
                Output::TransportError {
                    tx: TxRef::Client(id),
                } => {
                    self.on_branch_failure(now, id, StatusCode::SERVICE_UNAVAILABLE, ev);
                }
                Output::TransportError {
                    tx: TxRef::Server(_),
                }
                | Output::AckTimeout { .. } => {}
                Output::Terminated { tx } => self.on_terminated(tx, ev),
            }
        }
    }

    /// Answers a request the core refuses itself; `resp` may carry extra headers.
    fn reject(
        &mut self,
        now: Instant,
        sid: ServerId,
        request: &Message,
        why: Rejection,
        ev: &mut Vec<ProxyEvent>,
    ) {
        let Rejection {
            status,
            error,
            extra,
        } = why;
        if let Ok(mut resp) = request.response(status, Some(&self.tag_for(request))) {
            if let Some((name, value)) = extra {
                let _ = resp.push_header(name, value);
            }
            if let Ok(out) = self.layer.send_response(now, sid, &resp) {
                self.absorb(now, out, InterfaceId(0), ev);
            }
        }
        ev.push(ProxyEvent::Rejected { status, error });
    }

    fn on_request(
        &mut self,
        now: Instant,
        sid: ServerId,
        mut request: Message,
        from: Peer,
        iface: InterfaceId,
        ev: &mut Vec<ProxyEvent>,
    ) {
        // §16.3 steps 1-2: syntax and URI scheme.
        if let Err(r) = check_request(&request) {
            self.reject(
                now,
                sid,
                &request,
                Rejection {
                    status: r.status,
                    error: r.error,
                    extra: None,
                },
                ev,
            );
            return;
        }
        // Step 3: Max-Forwards.
        if request.max_forwards().ok().flatten() == Some(0) {
            self.reject(
                now,
                sid,
                &request,
                Rejection {
                    status: StatusCode::TOO_MANY_HOPS,
                    error: Error::OutOfRange {
                        header: "Max-Forwards",
                    },
                    extra: None,
                },
                ev,
            );
            return;
        }
        // Step 4: loop detection.
        let loop_hash = loop_hash(&request);
        if self.cfg.loop_detection && self.is_loop(&request, &loop_hash) {
            self.reject(
                now,
                sid,
                &request,
                Rejection {
                    status: StatusCode::LOOP_DETECTED,
                    error: Error::InvalidHeader {
                        header: "Via",
                        at: 0,
                    },
                    extra: None,
                },
                ev,
            );
            return;
        }
        // Step 5: Proxy-Require.
        let unsupported: Vec<String> = request
            .option_tags(&HeaderName::PROXY_REQUIRE)
            .filter_map(Result::ok)
            .filter(|t| {
                !self
                    .cfg
                    .supported
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(t.as_str()))
            })
            .map(|t| t.to_string())
            .collect();
        if !unsupported.is_empty() {
            let extra = Some((HeaderName::UNSUPPORTED, unsupported.join(", ")));
            self.reject(
                now,
                sid,
                &request,
                Rejection {
                    status: StatusCode::BAD_EXTENSION,
                    error: Error::InvalidHeader {
                        header: "Proxy-Require",
                        at: 0,
                    },
                    extra,
                },
                ev,
            );
            return;
        }
        stamp_received(&mut request, &from);
        let consumed_routes = self.preprocess_routes(&mut request);
        let cseq = request.cseq().ok().map(|c| c.seq);
        let ctx = ContextId(self.next_ctx);
        self.next_ctx += 1;
        let method = request.method().cloned().unwrap_or(Method::Options);
        self.contexts.insert(
            ctx,
            Context {
                server: Some(sid),
                method,
                iface,
                loop_hash,
                decided: false,
                cancelled: false,
                final_sent: false,
                final_forwarded: false,
                mode: ForkMode::Parallel,
                record_route: None,
                request: None,
                pending: Vec::new(),
                branches: Vec::new(),
                finals: Vec::new(),
                consumed_routes,
                fallback: None,
                cseq,
                cseq_shifted: false,
                no_answer: None,
                answer_challenges: false,
                challenged: None,
            },
        );
        self.by_server.insert(sid, ctx);
        ev.push(ProxyEvent::Request {
            ctx,
            request,
            from,
            iface,
            stateless: false,
        });
    }

    /// An ACK without transaction (the ACK of a 2xx): forwarded statelessly along its route.
    fn on_stateless(
        &mut self,
        mut request: Message,
        from: Peer,
        iface: InterfaceId,
        ev: &mut Vec<ProxyEvent>,
    ) {
        if request.max_forwards().ok().flatten() == Some(0) {
            return;
        }
        stamp_received(&mut request, &from);
        let consumed_routes = self.preprocess_routes(&mut request);
        let cseq = request.cseq().ok().map(|c| c.seq);
        let ctx = ContextId(self.next_ctx);
        self.next_ctx += 1;
        let loop_hash = loop_hash(&request);
        self.contexts.insert(
            ctx,
            Context {
                server: None,
                method: Method::Ack,
                iface,
                loop_hash,
                decided: false,
                cancelled: false,
                final_sent: false,
                final_forwarded: true,
                mode: ForkMode::Parallel,
                record_route: None,
                request: None,
                pending: Vec::new(),
                branches: Vec::new(),
                finals: Vec::new(),
                consumed_routes,
                fallback: None,
                cseq,
                cseq_shifted: false,
                no_answer: None,
                answer_challenges: false,
                challenged: None,
            },
        );
        ev.push(ProxyEvent::Request {
            ctx,
            request,
            from,
            iface,
            stateless: true,
        });
    }

    /// §16.10: answer the CANCEL 200, cancel pending branches, or answer 487 if undecided.
    fn on_cancel(
        &mut self,
        now: Instant,
        sid: ServerId,
        cancel: &Message,
        inv: ServerId,
        ev: &mut Vec<ProxyEvent>,
    ) {
        let tag = self.tag_for(cancel);
        if let Ok(ok) = cancel.response(StatusCode::OK, Some(&tag))
            && let Ok(out) = self.layer.send_response(now, sid, &ok)
        {
            self.absorb(now, out, InterfaceId(0), ev);
        }
        let Some(&ctx) = self.by_server.get(&inv) else {
            return;
        };
        let Some(c) = self.contexts.get_mut(&ctx) else {
            return;
        };
        if c.challenged.is_some() && !c.final_forwarded {
            // A challenge waits for the element: nothing is pending downstream, end it here.
            c.challenged = None;
            c.cancelled = true;
            c.final_forwarded = true;
            ev.push(ProxyEvent::Cancelled { ctx });
            self.terminate_undecided(now, ctx, inv, cancel, ev);
            return;
        }
        if c.final_sent || c.cancelled {
            return;
        }
        c.cancelled = true;
        c.pending.clear();
        let undecided = !c.decided;
        ev.push(ProxyEvent::Cancelled { ctx });
        if undecided {
            if let Some(c) = self.contexts.get_mut(&ctx) {
                c.final_sent = true;
                c.final_forwarded = true;
            }
            self.terminate_undecided(now, ctx, inv, cancel, ev);
            return;
        }
        self.cancel_branches(now, ctx, ev);
    }

    fn terminate_undecided(
        &mut self,
        now: Instant,
        ctx: ContextId,
        inv: ServerId,
        cancel: &Message,
        ev: &mut Vec<ProxyEvent>,
    ) {
        // The CANCEL carries the INVITE's Via, From, To, Call-ID and CSeq number (§9.1), so the
        // 487 is built from it with the method put back to INVITE.
        let Ok(cseq) = cancel.cseq() else { return };
        let Ok(mut resp) =
            cancel.response(StatusCode::REQUEST_TERMINATED, Some(&self.tag_for(cancel)))
        else {
            return;
        };
        let _ = resp.set_header(HeaderName::CSEQ, format!("{} INVITE", cseq.seq));
        if let Ok(out) = self.layer.send_response(now, inv, &resp) {
            self.absorb(now, out, InterfaceId(0), ev);
        }
        self.maybe_finish(ctx, ev);
    }

    fn send_final(
        &mut self,
        now: Instant,
        ctx: ContextId,
        req: &Message,
        status: StatusCode,
        tag: &str,
        ev: &mut Vec<ProxyEvent>,
    ) {
        let Some(sid) = self.contexts.get(&ctx).and_then(|c| c.server) else {
            return;
        };
        if let Ok(resp) = req.response(status, Some(tag))
            && let Ok(out) = self.layer.send_response(now, sid, &resp)
        {
            self.absorb(now, out, InterfaceId(0), ev);
        }
    }

    // ---- forwarding ----

    fn start_branch(
        &mut self,
        now: Instant,
        ctx: ContextId,
        target: Target,
        routes: Option<Vec<Bytes>>,
        ev: &mut Vec<ProxyEvent>,
    ) {
        let Some(c) = self.contexts.get(&ctx) else {
            return;
        };
        let Some(base) = c.request.clone() else {
            return;
        };
        let inbound = c.iface;
        let record_route = c.record_route.clone();
        let is_invite = c.method == Method::Invite;
        let no_answer = c.no_answer;
        let hash = c.loop_hash.clone();
        let n = self.next_branch();
        let branch_value = format!("{MAGIC_COOKIE}{hash}.{:x}{n:x}", self.seed & 0xffff);
        let built = self.prepare(
            base,
            &target,
            routes.as_deref(),
            inbound,
            record_route.as_ref(),
            branch_value,
        );
        let idx = self.contexts.get(&ctx).map_or(0, |c| c.branches.len());
        match built {
            Ok((request, peer)) => {
                match self.layer.send_request(now, request.clone(), peer.clone()) {
                    Ok((cid, out)) => {
                        if let Some(c) = self.contexts.get_mut(&ctx) {
                            c.branches.push(Branch {
                                client: Some(cid),
                                request,
                                peer: Some(peer),
                                provisional: false,
                                cancel_pending: false,
                                final_status: None,
                                routes,
                            });
                        }
                        self.by_client.insert(cid, (ctx, idx));
                        if is_invite {
                            self.arm_timer_c(now, cid);
                        }
                        if let Some(d) = no_answer {
                            let at = now + d;
                            self.no_answer_at.insert(cid, at);
                            self.no_answer.push(Reverse((at, cid)));
                        }
                        self.absorb(now, out, InterfaceId(0), ev);
                    }
                    Err(_) => self.failed_branch(
                        ctx,
                        request,
                        routes,
                        StatusCode::SERVICE_UNAVAILABLE,
                        true,
                    ),
                }
            }
            Err(failed) => {
                let (request, status) = *failed;
                self.failed_branch(ctx, request, routes, status, false);
            }
        }
    }

    /// A branch that could not be started counts as having received `status` (§16.9).
    fn failed_branch(
        &mut self,
        ctx: ContextId,
        request: Message,
        routes: Option<Vec<Bytes>>,
        status: StatusCode,
        has_our_via: bool,
    ) {
        let resp = request.response(status, None).ok();
        if let Some(c) = self.contexts.get_mut(&ctx) {
            c.branches.push(Branch {
                client: None,
                request,
                peer: None,
                provisional: false,
                cancel_pending: false,
                final_status: Some(status),
                routes,
            });
            if let Some(mut r) = resp {
                if has_our_via {
                    r.pop_first_value(&HeaderName::VIA);
                }
                c.finals.push(r);
            }
        }
    }

    /// §16.6 steps 1-9: copy, Request-URI, the target's own Route set if it has one,
    /// Max-Forwards, Record-Route, strict-route fix-up, next hop, Via, Content-Length.
    fn prepare(
        &mut self,
        mut req: Message,
        target: &Target,
        routes: Option<&[Bytes]>,
        inbound: InterfaceId,
        record_route: Option<&RecordRoute>,
        branch: String,
    ) -> Result<(Message, Peer), Box<(Message, StatusCode)>> {
        if let Some(uri) = &target.uri
            && req.set_request_uri(uri.clone()).is_err()
        {
            return Err(Box::new((req, StatusCode::SERVER_INTERNAL_ERROR)));
        }
        if let Some(routes) = routes {
            req.remove_header(&HeaderName::ROUTE);
            for r in routes {
                if req.push_header(HeaderName::ROUTE, r.clone()).is_err() {
                    return Err(Box::new((req, StatusCode::SERVER_INTERNAL_ERROR)));
                }
            }
        }
        let mf = match req.max_forwards() {
            Ok(Some(n)) => n.saturating_sub(1),
            _ => 70,
        };
        let _ = req.set_header(HeaderName::MAX_FORWARDS, mf.to_string());
        let strict = strict_route_fixup(&mut req);
        let Some(peer) = target
            .destination
            .clone()
            .or_else(|| self.resolve_next_hop(&req, strict))
        else {
            return Err(Box::new((req, StatusCode::SERVICE_UNAVAILABLE)));
        };
        // §18.1.1 (a large request toward UDP goes over TCP) is applied by the transaction
        // layer once the Via is on, so the measured size is the size sent.
        let outbound = self.outbound_iface(&peer);
        if let Some(rr) = record_route {
            let user = rr.user.as_deref();
            // RFC 5658: when the request leaves on another interface or transport, record both,
            // the one facing the next hop on top.
            if outbound != inbound {
                let rr_in = self.record_route_uri(inbound, user);
                let _ = req.prepend_header(HeaderName::RECORD_ROUTE, rr_in);
            }
            let rr_out = self.record_route_uri(outbound, user);
            let _ = req.prepend_header(HeaderName::RECORD_ROUTE, rr_out);
        }
        let via = self.via_on(outbound, peer.transport.clone(), branch);
        let _ = req.prepend_typed(HeaderName::VIA, &via);
        let _ = req.ensure_content_length();
        Ok((req, peer))
    }

    fn forward_stateless(
        &mut self,
        ctx: ContextId,
        (target, routes): (Target, Option<Vec<Bytes>>),
        ev: &mut Vec<ProxyEvent>,
    ) {
        let Some(c) = self.contexts.get(&ctx) else {
            return;
        };
        let Some(base) = c.request.clone() else {
            return;
        };
        let inbound = c.iface;
        // A stateless proxy's branch must be the same for retransmissions (§16.11): derive it
        // from the request alone.
        let branch = format!("{MAGIC_COOKIE}{}.ack", c.loop_hash);
        if let Ok((req, peer)) =
            self.prepare(base, &target, routes.as_deref(), inbound, None, branch)
        {
            // §18.1.1 holds for stateless forwarding too (no fallback: there is no transaction).
            let (req, peer, _) = self.layer.apply_size_rule(req, peer);
            let bytes = req.to_bytes();
            ev.push(ProxyEvent::Transmit {
                to: peer,
                bytes,
                tx: None,
            });
        }
    }

    /// §16.6 step 7: the top Route, or the Request-URI when there is none or the request was
    /// reformatted for a strict router.
    fn resolve_next_hop(&self, req: &Message, strict: bool) -> Option<Peer> {
        let route = if strict {
            None
        } else {
            req.routes().next().and_then(Result::ok)
        };
        let uri_text;
        let uri: Uri<'_> = match route {
            Some(r) => r.uri,
            None => {
                uri_text = req.request_uri_str()?;
                Uri::parse(uri_text).ok()?
            }
        };
        let sip = uri.as_sip()?;
        let transport = match sip.transport() {
            Some(t) => Transport::from_token(t),
            None if sip.secure => Transport::Tls,
            None => Transport::Udp,
        };
        let addr = match (
            &sip.maddr().and_then(|m| m.parse::<IpAddr>().ok()),
            &sip.host,
        ) {
            (Some(ip), _) => SocketAddr::new(*ip, sip.port_or_default()),
            (None, Host::Ip(ip)) => SocketAddr::new(*ip, sip.port_or_default()),
            (None, Host::Name(n)) => {
                let p = self.cfg.hosts.get(&n.to_ascii_lowercase())?;
                return Some(match sip.port {
                    Some(port) => Peer {
                        addr: SocketAddr::new(p.addr.ip(), port),
                        ..p.clone()
                    },
                    None => p.clone(),
                });
            }
        };
        Some(Peer::new(transport, addr))
    }

    fn outbound_iface(&self, to: &Peer) -> InterfaceId {
        let family = |a: &SocketAddr| a.is_ipv4();
        let pick = self
            .cfg
            .interfaces
            .iter()
            .position(|i| i.transport == to.transport && family(&i.addr) == family(&to.addr))
            .or_else(|| {
                self.cfg
                    .interfaces
                    .iter()
                    .position(|i| i.transport == to.transport)
            })
            .or_else(|| {
                self.cfg
                    .interfaces
                    .iter()
                    .position(|i| family(&i.addr) == family(&to.addr))
            })
            .unwrap_or(0);
        InterfaceId(pick)
    }

    fn via_on(&self, iface: InterfaceId, transport: Transport, branch: String) -> Via<'static> {
        let (host, port) = self.iface_host_port(iface);
        Via::new(transport, host, Some(port), branch)
    }

    fn iface_host_port(&self, iface: InterfaceId) -> (Host<'static>, u16) {
        match self.cfg.interfaces.get(iface.0) {
            Some(i) => {
                let host = match &i.advertise {
                    Some(name) => Host::Name(name.clone().into()),
                    None => Host::Ip(i.addr.ip()),
                };
                (host, i.addr.port())
            }
            None => (Host::Name("invalid".into()), 5060),
        }
    }

    fn record_route_uri(&self, iface: InterfaceId, user: Option<&str>) -> String {
        let (host, port) = self.iface_host_port(iface);
        let mut s = String::from("<sip:");
        if let Some(u) = user {
            s.push_str(u);
            s.push('@');
        }
        let _ = write!(s, "{host}:{port}");
        match self.cfg.interfaces.get(iface.0).map(|i| &i.transport) {
            Some(Transport::Udp) | None => {}
            Some(t) => {
                let _ = write!(s, ";transport={}", t.as_str().to_ascii_lowercase());
            }
        }
        s.push_str(";lr>");
        s
    }

    /// Whether a URI designates this proxy: one of its interface addresses, or an alias.
    pub fn is_me(&self, uri: &Uri<'_>) -> bool {
        let Some(sip) = uri.as_sip() else {
            return false;
        };
        let port = sip.port_or_default();
        let addr_match = self.cfg.interfaces.iter().any(|i| {
            let host_ok = match (&sip.host, &i.advertise) {
                (Host::Ip(ip), _) => *ip == i.addr.ip(),
                (Host::Name(n), Some(a)) => n.eq_ignore_ascii_case(a),
                (Host::Name(_), None) => false,
            };
            host_ok && port == i.addr.port()
        });
        let alias = match &sip.host {
            Host::Name(n) => {
                self.cfg.aliases.iter().any(|a| a.eq_ignore_ascii_case(n))
                    && (sip.port.is_none()
                        || self.cfg.interfaces.iter().any(|i| i.addr.port() == port))
            }
            Host::Ip(_) => false,
        };
        addr_match || alias || self.is_own_record_route(uri)
    }

    /// Whether `uri` is equivalent (RFC 3261 §19.1.4) to a Record-Route URI this proxy puts in
    /// requests, so a Route copied back from one is recognised byte-differences aside.
    fn is_own_record_route(&self, uri: &Uri<'_>) -> bool {
        (0..self.cfg.interfaces.len()).any(|i| {
            let rr =
                self.record_route_uri(InterfaceId(i), uri.as_sip().and_then(|s| s.user.as_deref()));
            rr.strip_prefix('<')
                .and_then(|r| r.strip_suffix('>'))
                .and_then(|r| Uri::parse(r).ok())
                .is_some_and(|own| own.equivalent(uri))
        })
    }

    /// §16.4: undo a strict router's rewrite, then drop the Route values naming this proxy;
    /// returns the dropped values.
    fn preprocess_routes(&self, req: &mut Message) -> Vec<Bytes> {
        let ruri_is_me = req
            .request_uri_str()
            .and_then(|u| Uri::parse(u).ok())
            .is_some_and(|u| self.is_me(&u));
        if ruri_is_me
            && req.has_header(&HeaderName::ROUTE)
            && let Some(last) = req.pop_last_value(&HeaderName::ROUTE)
            && let Some(uri) = std::str::from_utf8(&last)
                .ok()
                .and_then(|t| NameAddr::parse_header(t, "Route").ok())
                .map(|n| n.uri.to_string())
        {
            let _ = req.set_request_uri(uri);
        }
        let mut consumed = Vec::new();
        loop {
            let top_is_me = req
                .routes()
                .next()
                .and_then(Result::ok)
                .is_some_and(|r| self.is_me(&r.uri));
            if !top_is_me {
                break;
            }
            match req.pop_first_value(&HeaderName::ROUTE) {
                Some(v) => consumed.push(v),
                None => break,
            }
        }
        consumed
    }

    /// §16.3 step 4: a Via of ours whose branch carries this request's hash means a loop
    /// (the same hash in a Via of ours with a different request would be a spiral).
    fn is_loop(&self, req: &Message, hash: &str) -> bool {
        req.vias().filter_map(Result::ok).any(|v| {
            self.via_is_ours(&v)
                && v.branch()
                    .and_then(|b| b.strip_prefix(MAGIC_COOKIE))
                    .and_then(|b| b.split_once('.'))
                    .is_some_and(|(h, _)| h == hash)
        })
    }

    fn via_is_ours(&self, v: &Via<'_>) -> bool {
        self.cfg.interfaces.iter().any(|i| {
            let host_ok = match (&v.host, &i.advertise) {
                (Host::Ip(ip), _) => *ip == i.addr.ip(),
                (Host::Name(n), Some(a)) => n.eq_ignore_ascii_case(a),
                (Host::Name(_), None) => false,
            };
            host_ok && v.port_or_default() == i.addr.port()
        })
    }

    fn next_branch(&mut self) -> u64 {
        self.branch_counter += 1;
        self.branch_counter
    }

    fn tag_for(&self, req: &Message) -> String {
        let mut h = Fnv::new(self.seed);
        h.write(req.header(&HeaderName::CALL_ID).unwrap_or_default());
        h.write(req.header(&HeaderName::CSEQ).unwrap_or_default());
        format!("{:08x}", h.finish() as u32)
    }

    // ---- responses (§16.7) ----

    fn on_response(
        &mut self,
        now: Instant,
        cid: ClientId,
        mut response: Message,
        ev: &mut Vec<ProxyEvent>,
    ) {
        if self.cancels.contains_key(&cid) {
            return;
        }
        if self.uac.contains_key(&cid) {
            ev.push(ProxyEvent::UacResponse { id: cid, response });
            return;
        }
        if let Some(&cancelled) = self.abandoned.get(&cid) {
            self.on_abandoned_response(now, cid, cancelled, &response, ev);
            return;
        }
        let Some(&(ctx, idx)) = self.by_client.get(&cid) else {
            self.forward_stray(response, ev);
            return;
        };
        let Some(code) = response.status() else {
            return;
        };
        // Step 3: remove this proxy's Via.
        response.pop_first_value(&HeaderName::VIA);
        if let Some(c) = self.contexts.get(&ctx)
            && c.cseq_shifted
        {
            restore_cseq(&mut response, c.cseq);
        }
        if code != StatusCode::TRYING {
            self.no_answer_at.remove(&cid);
        }
        if code.is_provisional() {
            let mut send_cancel = false;
            if let Some(b) = self
                .contexts
                .get_mut(&ctx)
                .and_then(|c| c.branches.get_mut(idx))
            {
                b.provisional = true;
                send_cancel = b.cancel_pending;
                b.cancel_pending = false;
            }
            if send_cancel {
                self.cancel_branch(now, ctx, idx, ev);
            } else if self.timer_c_at.contains_key(&cid) && code != StatusCode::TRYING {
                self.arm_timer_c(now, cid);
            }
            let final_sent = self.contexts.get(&ctx).is_none_or(|c| c.final_sent);
            if code != StatusCode::TRYING && !final_sent {
                ev.push(ProxyEvent::Response { ctx, response });
            }
            return;
        }
        self.timer_c_at.remove(&cid);
        let alternates = self.failover.remove(&cid).unwrap_or_default();
        let unreachable =
            code == StatusCode::SERVICE_UNAVAILABLE || code == StatusCode::REQUEST_TIMEOUT;
        let open = self
            .contexts
            .get(&ctx)
            .and_then(|c| c.branches.get(idx))
            .is_some_and(|b| b.final_status.is_none());
        if unreachable && open && self.try_failover(now, ctx, idx, alternates, ev) {
            return;
        }
        let Some(c) = self.contexts.get_mut(&ctx) else {
            return;
        };
        if let Some(b) = c.branches.get_mut(idx) {
            if b.final_status.is_some() && !code.is_success() {
                return;
            }
            b.final_status = Some(code);
        }
        let invite = c.method == Method::Invite;
        if code.is_success() {
            // Steps 5 and 10: a 2xx is forwarded at once (every 2xx of an INVITE); the other
            // branches of an INVITE are cancelled.
            let forward = !c.final_sent || invite;
            c.final_sent = true;
            c.pending.clear();
            if forward {
                ev.push(ProxyEvent::Response { ctx, response });
            }
            if invite {
                self.cancel_branches(now, ctx, ev);
            }
            self.maybe_finish(ctx, ev);
            return;
        }
        c.finals.push(response);
        if code.class() == 6 && invite {
            c.pending.clear();
            self.cancel_branches(now, ctx, ev);
        } else {
            self.advance_sequential(now, ctx, ev);
        }
        self.check_complete(now, ctx, ev);
    }

    /// Sequential forking: when every started branch has failed, start the next target.
    fn advance_sequential(&mut self, now: Instant, ctx: ContextId, ev: &mut Vec<ProxyEvent>) {
        loop {
            let Some(c) = self.contexts.get_mut(&ctx) else {
                return;
            };
            let idle = c.branches.iter().all(|b| b.final_status.is_some());
            if c.mode != ForkMode::Sequential
                || c.cancelled
                || c.final_sent
                || !idle
                || c.pending.is_empty()
            {
                return;
            }
            let (next, routes) = c.pending.remove(0);
            self.start_branch(now, ctx, next, routes, ev);
        }
    }

    /// A branch timed out (408) or its transport failed (503): as if that response arrived.
    fn on_branch_failure(
        &mut self,
        now: Instant,
        cid: ClientId,
        status: StatusCode,
        ev: &mut Vec<ProxyEvent>,
    ) {
        if self.cancels.contains_key(&cid) {
            return;
        }
        if self.uac.contains_key(&cid) {
            ev.push(ProxyEvent::UacFailed { id: cid, status });
            return;
        }
        if self.abandoned.remove(&cid).is_some() {
            self.timer_c_at.remove(&cid);
            return;
        }
        let Some(&(ctx, idx)) = self.by_client.get(&cid) else {
            return;
        };
        let Some(req) = self
            .contexts
            .get(&ctx)
            .and_then(|c| c.branches.get(idx))
            .map(|b| b.request.clone())
        else {
            return;
        };
        if let Ok(resp) = req.response(status, None) {
            self.on_response(now, cid, resp, ev);
        }
    }

    /// When every branch has a final response and nothing is pending, forward the best (§16.7
    /// step 6-8).
    fn check_complete(&mut self, now: Instant, ctx: ContextId, ev: &mut Vec<ProxyEvent>) {
        let Some(c) = self.contexts.get_mut(&ctx) else {
            return;
        };
        if c.final_sent
            || !c.decided
            || !c.pending.is_empty()
            || c.branches.iter().any(|b| b.final_status.is_none())
        {
            return;
        }
        let challenged = c.branches.iter().position(|b| {
            b.final_status
                .is_some_and(|s| matches!(s.as_u16(), 401 | 407))
        });
        let all_fail = c
            .finals
            .iter()
            .all(|f| f.status().is_some_and(|s| s.class() >= 4 && s.class() != 6));
        if c.answer_challenges
            && !c.cancelled
            && all_fail
            && let Some(idx) = challenged
        {
            // Held for the element: it answers the challenge (Proxy::retry) or passes it on
            // (Proxy::forward_response). Once per context.
            c.answer_challenges = false;
            c.challenged = Some(idx);
            c.final_sent = true;
            let finals = std::mem::take(&mut c.finals);
            if let Some(resp) = choose_best(finals) {
                ev.push(ProxyEvent::Response {
                    ctx,
                    response: resp,
                });
            }
            return;
        }
        if !c.cancelled
            && c.fallback.is_some()
            && c.finals
                .iter()
                .all(|f| f.status().is_some_and(is_branch_failure))
        {
            // Every branch failed: the fallback decision replaces this one.
            let fallback = c.fallback.take();
            let answer_challenges = c.answer_challenges;
            let why = c
                .finals
                .last()
                .and_then(Message::status)
                .unwrap_or(StatusCode::REQUEST_TIMEOUT);
            c.finals.clear();
            c.decided = false;
            if self.fallbacks_applied.len() >= MAX_FALLBACK_REPORTS {
                self.fallbacks_applied.remove(0);
            }
            self.fallbacks_applied.push((ctx, why));
            if let Some(f) = fallback {
                let (decision, routes) = *f;
                // The fallback keeps the original decision's challenge answering (if unused).
                let opts = DecideOptions::default()
                    .routes(routes)
                    .answer_challenges(answer_challenges);
                match self.decide_with(now, ctx, decision, opts) {
                    Ok(more) => ev.extend(more),
                    Err(error) => ev.push(ProxyEvent::Rejected {
                        status: StatusCode::SERVER_INTERNAL_ERROR,
                        error,
                    }),
                }
            }
            return;
        }
        c.final_sent = true;
        let finals = std::mem::take(&mut c.finals);
        let best = choose_best(finals);
        match best {
            Some(resp) => ev.push(ProxyEvent::Response {
                ctx,
                response: resp,
            }),
            None => {
                c.final_forwarded = true;
                let req = c.request.clone();
                if let Some(req) = req {
                    let tag = self.tag_for(&req);
                    self.send_final(
                        now,
                        ctx,
                        &req,
                        StatusCode::TEMPORARILY_UNAVAILABLE,
                        &tag,
                        ev,
                    );
                }
                self.maybe_finish(ctx, ev);
            }
        }
    }

    fn cancel_branches(&mut self, now: Instant, ctx: ContextId, ev: &mut Vec<ProxyEvent>) {
        let n = self.contexts.get(&ctx).map_or(0, |c| c.branches.len());
        for idx in 0..n {
            let provisional = match self
                .contexts
                .get_mut(&ctx)
                .and_then(|c| c.branches.get_mut(idx))
            {
                Some(b) if b.final_status.is_none() && b.client.is_some() => {
                    if !b.provisional {
                        // §9.1: no CANCEL before a provisional response; send it when one comes.
                        b.cancel_pending = true;
                    }
                    b.provisional
                }
                _ => false,
            };
            if provisional {
                self.cancel_branch(now, ctx, idx, ev);
            }
        }
    }

    fn cancel_branch(
        &mut self,
        now: Instant,
        ctx: ContextId,
        idx: usize,
        ev: &mut Vec<ProxyEvent>,
    ) {
        let Some(b) = self.contexts.get(&ctx).and_then(|c| c.branches.get(idx)) else {
            return;
        };
        if b.final_status.is_some() {
            return;
        }
        // §9.1: the CANCEL goes where the INVITE went and copies its top Via, which the
        // transaction layer may have moved to TCP (§18.1.1): take both from the transaction.
        let sent = b.client.and_then(|cid| {
            Some((
                self.layer.client_request(cid)?,
                self.layer.client_peer(cid)?.clone(),
            ))
        });
        let (request, peer) = match sent {
            Some((r, p)) => (r, Some(p)),
            None => (&b.request, b.peer.clone()),
        };
        let (Ok(cancel), Some(peer)) = (build_cancel(request), peer) else {
            return;
        };
        if let Some(cid) = b.client {
            self.timer_c_at.remove(&cid);
        }
        if let Ok((id, out)) = self.layer.send_request(now, cancel, peer) {
            self.cancels.insert(id, ());
            self.absorb(now, out, InterfaceId(0), ev);
        }
    }

    fn arm_timer_c(&mut self, now: Instant, cid: ClientId) {
        let at = now + self.cfg.timer_c;
        self.timer_c_at.insert(cid, at);
        self.timer_c.push(Reverse((at, cid)));
    }

    /// Timer C (§16.8): CANCEL a branch that has a provisional response, else treat it as 408.
    fn fire_timer_c(&mut self, now: Instant, cid: ClientId, ev: &mut Vec<ProxyEvent>) {
        if self.abandoned.contains_key(&cid) {
            // Already counted as a 408 and, if it rang, cancelled: end the transaction so a
            // branch that never answers does not stay in Proceeding for ever.
            let out = self.layer.handle_transport_error(TxRef::Client(cid));
            self.absorb(now, out, InterfaceId(0), ev);
            return;
        }
        let Some(&(ctx, idx)) = self.by_client.get(&cid) else {
            return;
        };
        let provisional = self
            .contexts
            .get(&ctx)
            .and_then(|c| c.branches.get(idx))
            .is_some_and(|b| b.provisional);
        if provisional {
            self.cancel_branch(now, ctx, idx, ev);
        } else {
            self.on_branch_failure(now, cid, StatusCode::REQUEST_TIMEOUT, ev);
        }
    }

    /// [`DecideOptions::no_answer`]: a branch without a final or a provisional response other
    /// than 100 is given up as 408. An INVITE branch with a 100 is cancelled too; one without
    /// any provisional response is cancelled when one comes (§9.1, §16.8) and keeps its
    /// Timer C. Either way it becomes `abandoned`: nothing of it goes upstream.
    fn fire_no_answer(&mut self, now: Instant, cid: ClientId, ev: &mut Vec<ProxyEvent>) {
        let Some(&(ctx, idx)) = self.by_client.get(&cid) else {
            return;
        };
        let Some(c) = self.contexts.get(&ctx) else {
            return;
        };
        let Some(b) = c.branches.get(idx) else {
            return;
        };
        if b.final_status.is_some() {
            return;
        }
        let invite = c.method == Method::Invite;
        let provisional = b.provisional;
        if invite && provisional {
            self.cancel_branch(now, ctx, idx, ev);
        }
        let timer_c = self.timer_c_at.remove(&cid);
        self.on_branch_failure(now, cid, StatusCode::REQUEST_TIMEOUT, ev);
        if invite && self.layer.state(TxRef::Client(cid)).is_some() {
            self.abandoned.insert(cid, provisional);
            if let Some(at) = timer_c.filter(|_| !provisional) {
                // The heap entry for `at` is still queued: restoring the deadline revives it.
                self.timer_c_at.insert(cid, at);
            }
        }
    }

    /// A response on an `abandoned` branch. A provisional one gets the held-back
    /// CANCEL (§9.1) and restarts Timer C (§16.8); none goes upstream. A late 2xx is not
    /// forwarded either: the branch already counted as a 408 here (§16.8, "as if the
    /// transaction received a 408"), so the caller has no part in that dialog, and a 2xx
    /// upstream would answer the call twice and cancel the fallback. Its sender, never
    /// ACKed, ends the dialog with a BYE after 64·T1 (§13.3.1.4); the transaction absorbs
    /// its retransmissions meanwhile (RFC 6026 Accepted).
    fn on_abandoned_response(
        &mut self,
        now: Instant,
        cid: ClientId,
        cancelled: bool,
        response: &Message,
        ev: &mut Vec<ProxyEvent>,
    ) {
        let Some(code) = response.status() else {
            return;
        };
        if !code.is_provisional() {
            self.timer_c_at.remove(&cid);
            return;
        }
        if cancelled {
            return;
        }
        self.abandoned.insert(cid, true);
        let sent = self.layer.client_request(cid).and_then(|r| {
            let cancel = build_cancel(r).ok()?;
            Some((cancel, self.layer.client_peer(cid)?.clone()))
        });
        if let Some((cancel, peer)) = sent
            && let Ok((id, out)) = self.layer.send_request(now, cancel, peer)
        {
            self.cancels.insert(id, ());
            self.absorb(now, out, InterfaceId(0), ev);
        }
        self.arm_timer_c(now, cid);
    }

    /// §16.11 / §18.2.2: forward a response that matches no context by its next Via.
    fn forward_stray(&mut self, mut response: Message, ev: &mut Vec<ProxyEvent>) {
        let ours = response
            .top_via()
            .ok()
            .is_some_and(|v| self.via_is_ours(&v));
        if !ours {
            return;
        }
        response.pop_first_value(&HeaderName::VIA);
        if !self.shifted_invites.is_empty()
            && let Ok(cseq) = response.cseq()
            && cseq.method == Method::Invite
            && let Some(call) = response.header(&HeaderName::CALL_ID)
            && let Some(&(_, _, orig)) = self
                .shifted_invites
                .iter()
                .rev()
                .find(|(c, sent, _)| *sent == cseq.seq && c.as_ref() == call)
        {
            restore_cseq(&mut response, Some(orig));
        }
        let Ok(next) = response.top_via() else { return };
        let ip = next.received().or_else(|| next.host.ip());
        let port = next
            .rport()
            .flatten()
            .unwrap_or_else(|| next.port_or_default());
        let Some(ip) =
            ip.filter(|ip| !ip.is_unspecified() && !ip.is_multicast() && !is_broadcast(ip))
        else {
            return;
        };
        let to = Peer::new(next.transport.clone(), SocketAddr::new(ip, port));
        ev.push(ProxyEvent::Transmit {
            to,
            bytes: response.to_bytes(),
            tx: None,
        });
    }

    fn on_terminated(&mut self, tx: TxRef, ev: &mut Vec<ProxyEvent>) {
        match tx {
            TxRef::Client(cid) => {
                self.cancels.remove(&cid);
                self.uac.remove(&cid);
                self.abandoned.remove(&cid);
                self.timer_c_at.remove(&cid);
                self.no_answer_at.remove(&cid);
                if let Some((ctx, idx)) = self.by_client.remove(&cid) {
                    if let Some(b) = self
                        .contexts
                        .get_mut(&ctx)
                        .and_then(|c| c.branches.get_mut(idx))
                    {
                        b.client = None;
                    }
                    self.maybe_finish(ctx, ev);
                }
            }
            TxRef::Server(sid) => {
                if let Some(ctx) = self.by_server.remove(&sid) {
                    if let Some(c) = self.contexts.get_mut(&ctx) {
                        c.server = None;
                        c.final_sent = true;
                        c.final_forwarded = true;
                    }
                    self.maybe_finish(ctx, ev);
                }
            }
        }
    }

    /// Drops a context once the CSCF decided, the final response went out and every branch has
    /// its final response. Late responses (2xx retransmissions of other forks) are then
    /// forwarded statelessly by their Via.
    fn maybe_finish(&mut self, ctx: ContextId, ev: &mut Vec<ProxyEvent>) {
        let Some(c) = self.contexts.get(&ctx) else {
            return;
        };
        if !(c.decided
            && c.final_forwarded
            && c.branches
                .iter()
                .all(|b| b.final_status.is_some() || b.client.is_none()))
        {
            return;
        }
        let Some(c) = self.contexts.remove(&ctx) else {
            return;
        };
        if let Some(s) = c.server {
            self.by_server.remove(&s);
        }
        if c.cseq_shifted
            && c.method == Method::Invite
            && let (Some(orig), Some(req)) = (c.cseq, c.request.as_ref())
            && let (Some(call), Ok(sent)) = (req.header(&HeaderName::CALL_ID), req.cseq())
        {
            if self.shifted_invites.len() >= MAX_SHIFTED_INVITES {
                self.shifted_invites.pop_front();
            }
            self.shifted_invites
                .push_back((Bytes::copy_from_slice(call), sent.seq, orig));
        }
        for b in &c.branches {
            if let Some(cid) = b.client {
                self.by_client.remove(&cid);
                self.timer_c_at.remove(&cid);
                self.no_answer_at.remove(&cid);
            }
        }
        ev.push(ProxyEvent::Finished { ctx });
    }
}

/// A request the core answers itself.
struct Rejection {
    status: StatusCode,
    error: Error,
    extra: Option<(HeaderName, String)>,
}

/// §16.7 step 6: a 6xx if any; else the lowest class, preferring 401, 407, 415, 420 and 484 in
/// 4xx; a chosen 503 becomes 500; 401/407 carry every challenge of all branches (step 7).
fn choose_best(finals: Vec<Message>) -> Option<Message> {
    let class = |m: &Message| m.status().map_or(9, StatusCode::class);
    let idx = finals.iter().position(|m| class(m) == 6).or_else(|| {
        let lowest = finals.iter().map(class).min()?;
        finals
            .iter()
            .position(|m| {
                class(m) == lowest
                    && m.status()
                        .is_some_and(|s| matches!(s.as_u16(), 401 | 407 | 415 | 420 | 484))
            })
            .or_else(|| finals.iter().position(|m| class(m) == lowest))
    })?;
    let challenges: Vec<(HeaderName, Bytes)> = finals
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != idx)
        .flat_map(|(_, m)| {
            [HeaderName::WWW_AUTHENTICATE, HeaderName::PROXY_AUTHENTICATE]
                .into_iter()
                .flat_map(move |n| {
                    m.fields_named(&n)
                        .map(move |f| (n.clone(), Bytes::copy_from_slice(f.value())))
                        .collect::<Vec<_>>()
                })
        })
        .collect();
    let mut best = finals.into_iter().nth(idx)?;
    let code = best.status()?;
    if code == StatusCode::SERVICE_UNAVAILABLE {
        let mut converted = Message::new_response(StatusCode::SERVER_INTERNAL_ERROR, None);
        for f in best.fields() {
            let _ = converted.push_header(f.name(), Bytes::copy_from_slice(f.value()));
        }
        best = converted;
    } else if matches!(code.as_u16(), 401 | 407) {
        for (name, value) in challenges {
            let _ = best.push_header(name, value);
        }
    }
    Some(best)
}

/// Puts the CSeq number `seq` the request was received with back into a response to a copy
/// forwarded with another one.
fn restore_cseq(response: &mut Message, seq: Option<u32>) {
    let (Some(seq), Ok(cseq)) = (seq, response.cseq()) else {
        return;
    };
    if cseq.seq != seq {
        let value = format!("{seq} {}", cseq.method.as_str());
        let _ = response.set_header(HeaderName::CSEQ, value);
    }
}

/// Sets `received` and fills `rport` in the top Via (§18.2.1, RFC 3581 §4).
fn stamp_received(req: &mut Message, from: &Peer) {
    let Ok(via) = req.top_via() else { return };
    let host_differs = via.host.ip() != Some(from.addr.ip());
    let wants_rport = via.rport() == Some(None);
    if !host_differs && !wants_rport {
        return;
    }
    let mut via = via.into_owned();
    via.set_received(from.addr.ip());
    if wants_rport {
        via.set_rport(from.addr.port());
    }
    if req.pop_first_value(&HeaderName::VIA).is_some() {
        let _ = req.prepend_typed(HeaderName::VIA, &via);
    }
}

/// A branch outcome that lets a fallback decision take over: no answer (408) or a server or
/// transport failure (5xx).
fn is_branch_failure(code: StatusCode) -> bool {
    code == StatusCode::REQUEST_TIMEOUT || code.class() == 5
}

/// §16.6 step 6: a top Route without `lr` is a strict router: it becomes the Request-URI and the
/// old Request-URI goes to the end of the Route set.
fn strict_route_fixup(req: &mut Message) -> bool {
    let top = req.routes().next().and_then(Result::ok);
    let Some(top) = top else { return false };
    if top.uri.as_sip().is_none_or(|u| u.is_loose_route()) {
        return false;
    }
    let new_uri = top.uri.to_string();
    let Some(old) = req.request_uri_str().map(str::to_owned) else {
        return false;
    };
    req.pop_first_value(&HeaderName::ROUTE);
    let _ = req.push_header(HeaderName::ROUTE, format!("<{old}>"));
    req.set_request_uri(new_uri).is_ok()
}

/// The loop-detection part of the branch (§16.6 step 8): a hash of the Request-URI as received,
/// From and To tags, Call-ID, CSeq number, Route, Proxy-Require and Proxy-Authorization. The
/// topmost Via is left out: it is the previous hop's and differs on every pass of a loop.
fn loop_hash(req: &Message) -> String {
    let mut h = Fnv::new(0);
    // Equivalent Request-URIs (§19.1.4) hash alike, so a loop is found even when a hop rewrote
    // case or escaping.
    match req.request_uri_str().and_then(|u| Uri::parse(u).ok()) {
        Some(u) => h.write(u.comparison_key().as_bytes()),
        None => h.write(req.request_uri_raw().unwrap_or_default()),
    }
    h.write(
        req.from_header()
            .ok()
            .and_then(|f| f.tag().map(str::to_owned))
            .unwrap_or_default()
            .as_bytes(),
    );
    h.write(
        req.to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .unwrap_or_default()
            .as_bytes(),
    );
    h.write(req.header(&HeaderName::CALL_ID).unwrap_or_default());
    h.write(
        req.cseq()
            .map(|c| c.seq.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    for name in [
        HeaderName::ROUTE,
        HeaderName::PROXY_REQUIRE,
        HeaderName::PROXY_AUTHORIZATION,
    ] {
        for v in req.values(&name) {
            h.write(v);
        }
    }
    format!("{:016x}", h.finish())
}

fn is_broadcast(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

/// FNV-1a, 64 bit: a stable hash (the standard library's may change between releases).
struct Fnv(u64);

impl Fnv {
    fn new(seed: u64) -> Self {
        Self(0xcbf2_9ce4_8422_2325 ^ seed)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().chain([0xffu8].iter()) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests;
