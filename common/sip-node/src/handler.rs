//! The seam between the driver and a CSCF: [`Handler`] and what it receives.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use imslab_sip::proxy::{ContextId, Decision, Interface, InterfaceId};
use imslab_sip::transaction::{FlowId, Peer};
use imslab_sip::{Error as SipError, Message, StatusCode};
use imslab_sip_io::{CloseReason, TransportKind};

use crate::NodeHandle;

/// A new request for the element's logic (RFC 3261 §16.3/§16.4 done).
#[derive(Debug)]
pub struct Incoming {
    /// The proxy context; the returned [`Decision`] applies to it.
    pub ctx: ContextId,
    /// The request, with `received`/`rport` set on its top Via and Route values naming this
    /// element removed.
    pub request: Message,
    /// Those removed Route values naming this element, in order and as received
    /// (`<sip:orig@scscf;lr>`, `<sip:odi-…@scscf;lr>`): the S-CSCF recognises the originating
    /// case and its AS hand-off returns by them (TS 24.229 §5.4.3.2).
    pub consumed_routes: Vec<Bytes>,
    /// Where it came from. `from.flow` names the connection (or UDP socket) it arrived on:
    /// a [`imslab_sip::proxy::Target`] whose destination is this peer goes back over that flow.
    pub from: Peer,
    /// The interface it arrived on.
    pub iface: InterfaceId,
    /// That interface's transport and address.
    pub interface: Interface,
    /// An ACK for a 2xx, forwarded without a transaction: only [`Decision::Forward`] has an
    /// effect, a response is dropped.
    pub stateless: bool,
}

/// A decision with what goes with it ([`imslab_sip::proxy::DecideOptions`]): see
/// [`Handler::on_request_with_fallback`]. Built from a [`Decision`] with `into()` and the
/// `with_*` methods.
#[derive(Debug)]
#[non_exhaustive]
pub struct Decided {
    /// The decision.
    pub decision: Decision,
    /// Applied instead when every branch of `decision` ends in 408, 5xx or a transport error
    /// ([`imslab_sip::proxy::Proxy::decide_with_fallback`]); its targets get no RFC 3263
    /// failover.
    pub fallback: Option<Decision>,
    /// Per forward target, a Route set of its own (RFC 3261 §16.6 on each copy): forking to
    /// contacts behind different Paths.
    pub routes: Vec<Option<Vec<Bytes>>>,
    /// [`Decided::routes`] for the targets of [`Decided::fallback`].
    pub fallback_routes: Vec<Option<Vec<Bytes>>>,
    /// A branch with neither a final response nor a provisional one above 100 after this
    /// long counts as 408 (an AS that answered 100 and died).
    pub no_answer: Option<Duration>,
    /// A 401/407 goes to [`Handler::on_challenge`] (once) before anything else.
    pub answer_challenges: bool,
}

impl From<Decision> for Decided {
    fn from(decision: Decision) -> Self {
        Self {
            decision,
            fallback: None,
            routes: Vec::new(),
            fallback_routes: Vec::new(),
            no_answer: None,
            answer_challenges: false,
        }
    }
}

impl Decided {
    /// Sets [`Decided::fallback`].
    #[must_use]
    pub fn with_fallback(mut self, fallback: Option<Decision>) -> Self {
        self.fallback = fallback;
        self
    }

    /// Sets [`Decided::routes`].
    #[must_use]
    pub fn with_routes(mut self, routes: Vec<Option<Vec<Bytes>>>) -> Self {
        self.routes = routes;
        self
    }

    /// Sets [`Decided::fallback_routes`].
    #[must_use]
    pub fn with_fallback_routes(mut self, routes: Vec<Option<Vec<Bytes>>>) -> Self {
        self.fallback_routes = routes;
        self
    }

    /// Sets [`Decided::no_answer`].
    #[must_use]
    pub fn with_no_answer(mut self, after: Option<Duration>) -> Self {
        self.no_answer = after;
        self
    }

    /// Sets [`Decided::answer_challenges`].
    #[must_use]
    pub fn with_answer_challenges(mut self, on: bool) -> Self {
        self.answer_challenges = on;
        self
    }
}

/// A response the proxy core selected for forwarding upstream (§16.7), this element's Via
/// already removed.
#[derive(Debug)]
pub struct Outgoing {
    /// The proxy context of the request it answers.
    pub ctx: ContextId,
    /// The response.
    pub response: Message,
}

/// A connection closed (RFC 5626 §5.5 flow failure for a registrar or P-CSCF).
#[derive(Debug, Clone)]
pub struct FlowClosed {
    /// The flow id as it appears in [`Peer::flow`].
    pub flow: FlowId,
    /// Its transport.
    pub transport: TransportKind,
    /// The peer.
    pub remote: SocketAddr,
    /// Why it closed.
    pub reason: CloseReason,
}

/// The logic of one SIP element. The node calls it from spawned tasks, so a slow decision
/// (a Diameter round trip, a database write) never holds up other messages.
///
/// Responses of one context are handed to [`Handler::on_response`] one at a time and in
/// arrival order. Requests of one Call-ID are handed to [`Handler::on_request`] one at a time
/// and in arrival order: the next goes once the previous one's decision is applied (a
/// handler must not wait, inside a decision, for another request of the same Call-ID).
/// Requests of different Call-IDs are decided concurrently.
pub trait Handler: Send + Sync + 'static {
    /// Decides what to do with a new request: forward it (edited as needed) to targets, or
    /// answer it. Called exactly once per context.
    fn on_request(
        &self,
        incoming: Incoming,
        node: NodeHandle,
    ) -> impl Future<Output = Decision> + Send;

    /// [`Handler::on_request`] with a fallback decision for when the forwarded branches all
    /// fail (the S-CSCF's DefaultHandling SESSION_CONTINUED toward an AS, TS 24.229 §5.4.3.2).
    /// The node calls this one; the default calls [`Handler::on_request`] without fallback.
    fn on_request_with_fallback(
        &self,
        incoming: Incoming,
        node: NodeHandle,
    ) -> impl Future<Output = Decided> + Send {
        async move { self.on_request(incoming, node).await.into() }
    }

    /// Edits a response before it is forwarded upstream (the P-CSCF removes `ck`/`ik` from a
    /// 401). The default forwards it unchanged.
    fn on_response(&self, outgoing: Outgoing) -> impl Future<Output = Message> + Send {
        std::future::ready(outgoing.response)
    }

    /// Whether [`Handler::on_response`] must see responses. When false (the default is true),
    /// responses are forwarded at once without a task per response.
    fn wants_responses(&self) -> bool {
        true
    }

    /// The proxy core refused a request itself (400, 420, 482, 483...), for per-UE diagnosis.
    fn on_rejected(&self, _status: StatusCode, _error: &SipError) {}

    /// A CANCEL arrived for a context (§16.10); its pending branches are being cancelled.
    fn on_cancelled(&self, _ctx: ContextId) {}

    /// Every branch of a context's decision failed with `status` (408, 5xx) and its fallback
    /// ([`Handler::on_request_with_fallback`]) was applied instead, for per-UE diagnosis.
    fn on_fallback_applied(&self, _ctx: ContextId, _status: StatusCode) {}

    /// A connection closed.
    fn on_flow_closed(&self, _closed: FlowClosed) {}

    /// The downstream challenged a request decided with [`Decided::answer_challenges`]:
    /// return that request again with credentials and the next CSeq (RFC 3261 §22.2, built
    /// from `request`, the decided request as its branch carried it) to send it on a new
    /// branch, or `None` to pass `challenge` upstream. Asked once per context; a second
    /// challenge goes upstream. The default passes it on.
    fn on_challenge(
        &self,
        _ctx: ContextId,
        _request: Message,
        _challenge: &Message,
    ) -> Option<Message> {
        None
    }

    /// A final response of a context is about to be forwarded upstream (before
    /// [`Handler::on_response`]): for dialog bookkeeping.
    fn on_final_response(&self, _ctx: ContextId, _status: StatusCode) {}
}
