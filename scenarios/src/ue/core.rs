//! The soft UE as a pure state machine on the RFC 3261 transaction layer: feed it received
//! messages ([`UeCore::handle_message`]), time ([`UeCore::handle_timeout`]) and commands
//! ([`UeCore::register`], [`UeCore::invite`]...), then drain [`UeCore::poll_output`] and carry
//! out each [`Output`]: transmit bytes, install or remove SAs, record events. No sockets, clock
//! or randomness inside (identifiers come from a seed).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use imslab_aka::Usim;
use imslab_ipsec::SaBundle;
use imslab_sip::header::Transport;
use imslab_sip::transaction::{
    ClientId, FlowId, Output as TxOutput, Peer, ServerId, TimerConfig, TransactionLayer,
};
use imslab_sip::{HeaderName, Message, Method, StatusCode};
use imslab_types::Outcome;

use super::call::Call;
use super::config::{UeConfig, UeTransport};
use super::ids::Ids;
use super::register::Registration;
use super::{reginfo, sms};
use crate::Error;

/// Flow ids at or above this mark protected traffic; the low 16 bits are the UE's protected
/// port the message was received on or must be sent from.
pub const FLOW_PROTECTED: u64 = 1 << 40;

/// How a message leaves the UE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Over the plain socket (UDP) or the connection (TCP).
    Plain {
        /// The transport.
        transport: Transport,
        /// The connection, for TCP.
        flow: Option<FlowId>,
    },
    /// Inside ESP, from this protected port of the UE, over UDP or over TCP inside the SAs.
    Protected {
        /// The UE's source port (port-c for requests, port-s for responses to the network's).
        src_port: u16,
        /// UDP or TCP.
        transport: Transport,
    },
}

impl Link {
    /// The link a transaction peer stands for.
    pub fn of_peer(peer: &Peer) -> Self {
        match peer.flow {
            Some(FlowId(f)) if f >= FLOW_PROTECTED => Self::Protected {
                src_port: (f & 0xffff) as u16,
                transport: peer.transport.clone(),
            },
            flow => Self::Plain {
                transport: peer.transport.clone(),
                flow,
            },
        }
    }

    /// The peer for a message received from `from` on a protected port, over `transport`
    /// inside ESP.
    pub fn protected_peer(from: SocketAddr, local_port: u16, transport: Transport) -> Peer {
        Peer {
            transport,
            addr: from,
            flow: Some(FlowId(FLOW_PROTECTED | u64::from(local_port))),
        }
    }
}

/// What a client transaction of the UE is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A REGISTER.
    Register,
    /// The reg-event SUBSCRIBE.
    Subscribe,
    /// An INVITE of the call with this Call-ID.
    Invite(String),
    /// A PRACK in that call.
    Prack(String),
    /// An UPDATE in that call.
    Update(String),
    /// A BYE of that call.
    Bye(String),
    /// A CANCEL of that call.
    Cancel(String),
    /// A MESSAGE.
    Message,
    /// An OPTIONS.
    Options,
    /// A request built from a raw template.
    Raw,
}

/// What the UE reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// A response to one of the UE's requests (provisional and final).
    Response {
        /// What the request was for.
        purpose: Purpose,
        /// The response.
        response: Message,
    },
    /// A request from the network (after the UE answered it).
    Request {
        /// The request.
        request: Message,
    },
    /// The registration succeeded (initial or refresh).
    Registered {
        /// Seconds granted for our contact.
        expires: u32,
    },
    /// The registration ended in a failure.
    RegistrationFailed {
        /// The final status, when one came.
        status: Option<u16>,
        /// Why.
        reason: String,
    },
    /// The registration ended: our de-REGISTER was answered, it expired, or the network
    /// terminated it (reg-event NOTIFY).
    Deregistered {
        /// Why (`unregistered`, `expired`, `deactivated`, `rejected`...).
        reason: String,
    },
    /// A call changed state.
    Call {
        /// Its Call-ID.
        call_id: String,
        /// The new state.
        state: super::call::CallState,
    },
    /// A text or SMS arrived in a MESSAGE.
    Sms {
        /// The text, when decodable.
        text: Option<String>,
        /// The content type.
        content_type: String,
    },
    /// A client transaction timed out or could not be sent.
    Failed {
        /// What it was for.
        purpose: Purpose,
        /// Why.
        reason: String,
    },
    /// A message went out (for the step log): its first line, and whether inside ESP.
    Sent {
        /// Request or status line.
        line: String,
        /// Sent over the SAs.
        protected: bool,
    },
    /// A per-UE diagnosis in the `UeEvent` shape (step, outcome, reason).
    Diagnosis {
        /// The step (`aka`, `resync`, `sec-agree`, `register`...).
        step: &'static str,
        /// The outcome.
        outcome: Outcome,
        /// The reason.
        reason: Option<String>,
    },
}

impl Event {
    /// A [`Event::Diagnosis`] as the lab's per-UE timeline event (function `ue`), for callers
    /// that record the soft UE's view next to the network's.
    pub fn to_ue_event(
        &self,
        at: std::time::SystemTime,
        ue: imslab_types::UeRef,
    ) -> Option<imslab_types::UeEvent> {
        match self {
            Self::Diagnosis {
                step,
                outcome,
                reason,
            } => Some(imslab_types::UeEvent {
                at,
                function: imslab_types::Function::Ue,
                ue,
                step,
                outcome: *outcome,
                reason: reason.clone(),
            }),
            _ => None,
        }
    }
}

/// What the driver must do.
#[derive(Debug)]
pub enum Output {
    /// Send `bytes` to `to` over `link`.
    Transmit {
        /// How.
        link: Link,
        /// Where.
        to: SocketAddr,
        /// The encoded SIP message.
        bytes: Bytes,
    },
    /// Install this SA set (seen from the UE).
    InstallSa(Box<SaBundle>),
    /// Remove this SA set.
    RemoveSa(Box<SaBundle>),
    /// Something to report.
    Event(Event),
}

/// A request under construction, as text: the UE writes its messages the way a phone's stack
/// prints them, then parses them once.
#[derive(Debug)]
pub(crate) struct Draft {
    head: String,
    body: Vec<u8>,
    content_type: Option<String>,
}

impl Draft {
    pub(crate) fn request(method: &str, uri: &str) -> Self {
        Self {
            head: format!("{method} {uri} SIP/2.0\r\n"),
            body: Vec::new(),
            content_type: None,
        }
    }

    pub(crate) fn h(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        use std::fmt::Write as _;
        let _ = write!(self.head, "{name}: {value}\r\n");
        self
    }

    pub(crate) fn opt(self, name: &str, value: Option<impl std::fmt::Display>) -> Self {
        match value {
            Some(v) => self.h(name, v),
            None => self,
        }
    }

    pub(crate) fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = Some(content_type.to_owned());
        self.body = body.into();
        self
    }

    pub(crate) fn build(self) -> Result<Message, Error> {
        let mut text = self.head.into_bytes();
        if let Some(ct) = &self.content_type {
            text.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        text.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        text.extend_from_slice(&self.body);
        Message::parse(text).map_err(|source| Error::BuildMessage { source })
    }
}

/// The soft UE.
pub struct UeCore {
    pub(crate) cfg: UeConfig,
    pub(crate) usim: Option<Usim>,
    pub(crate) layer: TransactionLayer,
    pub(crate) ids: Ids,
    pub(crate) reg: Registration,
    pub(crate) calls: HashMap<String, Call>,
    pub(crate) pending: HashMap<ClientId, Purpose>,
    pub(crate) out: VecDeque<Output>,
    pub(crate) sub: Option<Subscription>,
    pub(crate) sms_ref: u8,
    pub(crate) media_port: u16,
}

/// The reg-event subscription (RFC 3680) of the UE.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub(crate) call_id: String,
    pub(crate) from_tag: String,
    pub(crate) cseq: u32,
    pub(crate) to_tag: Option<String>,
    pub(crate) last: Option<reginfo::RegInfo>,
}

impl std::fmt::Debug for UeCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UeCore")
            .field("name", &self.cfg.name)
            .field("registered", &self.reg.is_registered())
            .finish_non_exhaustive()
    }
}

impl UeCore {
    /// A UE with this configuration; `seed` drives its identifiers.
    pub fn new(cfg: UeConfig, seed: u64) -> Self {
        let usim = cfg.credentials.aka.as_ref().map(|(k, op)| {
            // IMS AKA on the ISIM: the AMF separation bit is an EPS matter (TS 33.401 §6.1.1)
            // and phones do not check it for IMS, so neither does the soft UE.
            let m = match op {
                super::config::OperatorKey::Opc(opc) => imslab_aka::Milenage::new(k, opc),
                super::config::OperatorKey::Op(op) => imslab_aka::Milenage::with_op(k, op),
            };
            let mut u = Usim::with_config(
                m,
                imslab_aka::SqnConfig::default(),
                imslab_aka::AmfPolicy::Any,
            );
            if let Some(sqn) = cfg.credentials.sqn_ms {
                // A card that has seen SEQ at every IND (TS 33.102 Annex C.1.2): any older SEQ
                // from the network fails the freshness check, whatever its IND.
                let mut arr = u.sqn_array().clone();
                let c = *arr.config();
                let seq = c.seq(sqn);
                for ind in 0..c.ind_count() as u32 {
                    if let Ok(s) = c.compose(seq, ind) {
                        arr.accept(s);
                    }
                }
                u.set_sqn_array(arr);
            }
            u
        });
        let mut ids = Ids::new(seed);
        let reg = Registration::new(&mut ids);
        let media_port = 30_000 + (ids.next_u64() % 10_000) as u16 * 2;
        Self {
            cfg,
            usim,
            layer: TransactionLayer::new(TimerConfig::default()),
            ids,
            reg,
            calls: HashMap::new(),
            pending: HashMap::new(),
            out: VecDeque::new(),
            sub: None,
            sms_ref: 0,
            media_port,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &UeConfig {
        &self.cfg
    }

    /// Sets the UE's unprotected port once the driver has bound its socket.
    pub fn set_local_port(&mut self, port: u16) {
        self.cfg.local_port = port;
    }

    /// Whether the UE is registered.
    pub fn is_registered(&self) -> bool {
        self.reg.is_registered()
    }

    /// The established SA set, if any.
    pub fn security_associations(&self) -> Option<&SaBundle> {
        self.reg.sa.as_ref().map(|s| &s.bundle)
    }

    /// The Service-Route learnt at registration.
    pub fn service_route(&self) -> &[String] {
        &self.reg.service_route
    }

    /// The P-Associated-URI learnt at registration.
    pub fn associated_uris(&self) -> &[String] {
        &self.reg.associated
    }

    /// The Call-IDs of live calls.
    pub fn calls(&self) -> impl Iterator<Item = (&String, &Call)> {
        self.calls.iter()
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest instant at which [`UeCore::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.layer.poll_timeout(), self.reg.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires due timers: transactions, re-registration, expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        let outs = self.layer.handle_timeout(now);
        self.tx_outputs(now, outs);
        self.registration_timers(now);
    }

    /// A message arrived from `from`. `from.flow` says how: [`Link::protected_peer`] for ESP.
    pub fn handle_message(&mut self, now: Instant, msg: Message, from: Peer) {
        match self.layer.handle_message(now, msg, from) {
            Ok(outs) => self.tx_outputs(now, outs),
            Err(e) => self.diag(
                "receive",
                Outcome::Failed,
                format!("unmatchable message: {e}"),
            ),
        }
    }

    /// The transport failed to deliver a message of `tx`.
    pub fn handle_transport_error(&mut self, now: Instant, tx: imslab_sip::transaction::TxRef) {
        let outs = self.layer.handle_transport_error(tx);
        self.tx_outputs(now, outs);
    }

    pub(crate) fn emit(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    pub(crate) fn diag(&mut self, step: &'static str, outcome: Outcome, reason: impl Into<String>) {
        let reason = reason.into();
        self.emit(Event::Diagnosis {
            step,
            outcome,
            reason: (!reason.is_empty()).then_some(reason),
        });
    }

    // ---- addressing ----

    pub(crate) fn transport(&self) -> Transport {
        match self.cfg.transport {
            UeTransport::Udp => Transport::Udp,
            UeTransport::Tcp => Transport::Tcp,
        }
    }

    /// Where requests go now: over the established SAs, else in the clear over the UE's
    /// transport. A plain TCP connection leaves from the UE's address (sip-io binds it to the
    /// UDP socket's IP), so with IPsec the P-CSCF ties the SAs to the address the ESP comes
    /// from, as with a phone's first REGISTER over TCP.
    pub(crate) fn request_peer(&self) -> Peer {
        match &self.reg.sa {
            Some(sa) => self.protected_request_peer(sa),
            None => Peer::new(self.transport(), self.cfg.pcscf),
        }
    }

    pub(crate) fn protected_request_peer(&self, sa: &super::register::SaSet) -> Peer {
        let remote = &sa.bundle.remote;
        Link::protected_peer(
            SocketAddr::new(remote.ip, remote.port_s),
            sa.bundle.local.port_c,
            self.transport(),
        )
    }

    /// The Via for a request sent to `peer`.
    pub(crate) fn via(&mut self, peer: &Peer) -> String {
        let branch = self.ids.branch();
        let (t, port) = match Link::of_peer(peer) {
            Link::Protected {
                src_port,
                transport,
            } => (
                if transport == Transport::Tcp {
                    "TCP"
                } else {
                    "UDP"
                },
                src_port,
            ),
            Link::Plain { transport, .. } => (
                if transport == Transport::Tcp {
                    "TCP"
                } else {
                    "UDP"
                },
                self.cfg.local_port,
            ),
        };
        format!(
            "SIP/2.0/{t} {}:{port};branch={branch};rport",
            host(self.cfg.local_ip)
        )
    }

    /// The Contact URI: the protected server port with IPsec (TS 24.229 §5.1.1.2.1).
    pub(crate) fn contact_uri(&self) -> String {
        let user = self.cfg.imsi.as_ref().map_or_else(
            || user_of(self.cfg.impu.as_str()),
            |i| i.as_str().to_owned(),
        );
        let port = match &self.cfg.ipsec {
            Some(s) => s.ports.port_s,
            None => self.cfg.local_port,
        };
        let tp = if self.cfg.ipsec.is_none() && self.cfg.transport == UeTransport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        format!("sip:{user}@{}:{port}{tp}", host(self.cfg.local_ip))
    }

    /// Contact with the handset's feature tags and instance.
    pub(crate) fn contact(&self) -> String {
        format!(
            "<{}>;{};+sip.instance={}",
            self.contact_uri(),
            self.cfg.profile.contact_params,
            self.cfg.profile.instance(self.cfg.serial)
        )
    }

    /// Route for an initial request: the P-CSCF (its protected server port when protected),
    /// then the Service-Route (TS 24.229 §5.1.2A.1.1).
    pub(crate) fn initial_route(&self) -> Vec<String> {
        let first = match &self.reg.sa {
            Some(sa) => format!(
                "<sip:{}:{};lr>",
                host(sa.bundle.remote.ip),
                sa.bundle.remote.port_s
            ),
            None => format!(
                "<sip:{}:{};lr>",
                host(self.cfg.pcscf.ip()),
                self.cfg.pcscf.port()
            ),
        };
        std::iter::once(first)
            .chain(self.reg.service_route.iter().cloned())
            .collect()
    }

    // ---- sending ----

    pub(crate) fn send(&mut self, now: Instant, msg: Message, peer: Peer, purpose: Purpose) {
        match self.layer.send_request(now, msg, peer) {
            Ok((id, outs)) => {
                self.pending.insert(id, purpose);
                self.tx_outputs(now, outs);
            }
            Err(e) => self.emit(Event::Failed {
                purpose,
                reason: format!("cannot send: {e}"),
            }),
        }
    }

    pub(crate) fn send_stateless(&mut self, msg: &Message, peer: Peer) {
        let o = self.layer.send_stateless(msg, peer);
        self.push_tx(o);
    }

    pub(crate) fn respond(&mut self, now: Instant, id: ServerId, resp: &Message) {
        match self.layer.send_response(now, id, resp) {
            Ok(outs) => self.tx_outputs(now, outs),
            Err(e) => self.diag("respond", Outcome::Failed, format!("cannot answer: {e}")),
        }
    }

    /// A response to `req` with our To tag and the given extra headers and body.
    pub(crate) fn response_to(
        &mut self,
        req: &Message,
        code: u16,
        to_tag: Option<&str>,
        extra: &[(&str, String)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Option<Message> {
        let status = StatusCode::new(code)?;
        let mut r = req.response(status, to_tag).ok()?;
        // RFC 3261 §12.1.1: a response that establishes a dialog copies every Record-Route.
        let dialog_creating = matches!(req.method(), Some(Method::Invite | Method::Subscribe));
        if dialog_creating && to_tag.is_some() && (101..300).contains(&code) {
            for rr in req.values(&HeaderName::RECORD_ROUTE) {
                let rr = String::from_utf8_lossy(rr).trim().to_owned();
                r.push_header(HeaderName::RECORD_ROUTE, rr).ok()?;
            }
        }
        for (n, v) in extra {
            let name = HeaderName::new(n.to_string())?;
            r.push_header(name, v.clone()).ok()?;
        }
        if let Some((ct, b)) = body {
            r.set_body(Some(ct), b).ok()?;
        }
        Some(r)
    }

    fn push_tx(&mut self, o: TxOutput) {
        if let TxOutput::Transmit { to, bytes, .. } = o {
            let link = Link::of_peer(&to);
            let dest = match &link {
                Link::Protected { src_port, .. } => self.protected_destination(*src_port, to.addr),
                Link::Plain { .. } => to.addr,
            };
            let line = bytes
                .split(|b| *b == b'\r')
                .next()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .unwrap_or_default();
            let protected = matches!(link, Link::Protected { .. });
            self.out.push_back(Output::Transmit {
                link,
                to: dest,
                bytes,
            });
            self.out
                .push_back(Output::Event(Event::Sent { line, protected }));
        }
    }

    /// TS 33.203 §7.1: what leaves our port-s goes to the P-CSCF's port-c and what leaves our
    /// port-c to its port-s, whatever the Via says (responses to the P-CSCF's requests follow
    /// the SA pair, not the sent-by port).
    fn protected_destination(&self, src_port: u16, fallback: SocketAddr) -> SocketAddr {
        let sets = [self.reg.sa.as_ref(), self.reg.pending_sa.as_ref()];
        for b in sets.into_iter().flatten().map(|s| &s.bundle) {
            if b.local.port_s == src_port {
                return SocketAddr::new(b.remote.ip, b.remote.port_c);
            }
            if b.local.port_c == src_port {
                return SocketAddr::new(b.remote.ip, b.remote.port_s);
            }
        }
        fallback
    }

    pub(crate) fn tx_outputs(&mut self, now: Instant, outs: Vec<TxOutput>) {
        // Transmissions first: a 100 Trying the layer sends for a new INVITE goes out before
        // whatever the TU answers to it.
        let (tx, rest): (Vec<_>, Vec<_>) = outs
            .into_iter()
            .partition(|o| matches!(o, TxOutput::Transmit { .. }));
        for o in tx.into_iter().chain(rest) {
            match o {
                TxOutput::Transmit { .. } => self.push_tx(o),
                TxOutput::Request {
                    id,
                    request,
                    cancels,
                    ..
                } => self.on_request(now, id, request, cancels),
                TxOutput::Response { id, response } => {
                    let purpose = self.pending.get(&id).cloned();
                    if let Some(p) = purpose {
                        self.on_response(now, id, p, response);
                    }
                }
                TxOutput::StrayResponse { response, from } => {
                    self.on_stray_response(now, response, from)
                }
                TxOutput::Timeout { id } => {
                    if let Some(p) = self.pending.remove(&id) {
                        self.on_failure(now, p, "timeout (no final response, timer B/F)");
                    }
                }
                TxOutput::TransportError { tx } => {
                    if let imslab_sip::transaction::TxRef::Client(id) = tx
                        && let Some(p) = self.pending.remove(&id)
                    {
                        self.on_failure(now, p, "transport error");
                    }
                }
                TxOutput::Terminated { tx } => {
                    if let imslab_sip::transaction::TxRef::Client(id) = tx {
                        self.pending.remove(&id);
                    }
                }
                TxOutput::AckTimeout { .. } => {}
            }
        }
    }

    fn on_failure(&mut self, now: Instant, purpose: Purpose, reason: &str) {
        match &purpose {
            Purpose::Register => self.registration_failed(now, None, reason.to_owned()),
            Purpose::Invite(cid) => {
                let cid = cid.clone();
                self.call_failed(&cid, reason);
            }
            _ => {}
        }
        self.emit(Event::Failed {
            purpose,
            reason: reason.to_owned(),
        });
    }

    fn on_response(&mut self, now: Instant, id: ClientId, purpose: Purpose, resp: Message) {
        let is_final = resp.status().is_some_and(StatusCode::is_final);
        if is_final && !matches!(purpose, Purpose::Invite(_)) {
            self.pending.remove(&id);
        }
        self.emit(Event::Response {
            purpose: purpose.clone(),
            response: resp.clone(),
        });
        match purpose {
            Purpose::Register => self.on_register_response(now, resp),
            Purpose::Subscribe => self.on_subscribe_response(&resp),
            Purpose::Invite(cid) => self.on_invite_response(now, &cid, id, resp),
            Purpose::Prack(cid) => self.on_prack_response(now, &cid, &resp),
            Purpose::Update(_)
            | Purpose::Bye(_)
            | Purpose::Cancel(_)
            | Purpose::Message
            | Purpose::Options
            | Purpose::Raw => {}
        }
    }

    fn on_stray_response(&mut self, now: Instant, resp: Message, _from: Peer) {
        // A 2xx retransmission of an INVITE whose transaction is gone: ACK it again.
        if let (Ok(cseq), Ok(cid)) = (resp.cseq(), resp.call_id())
            && cseq.method == Method::Invite
            && resp.status().is_some_and(StatusCode::is_success)
        {
            let cid = cid.as_str().to_owned();
            self.ack_2xx(now, &cid, &resp);
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        id: Option<ServerId>,
        req: Message,
        cancels: Option<ServerId>,
    ) {
        let method = req.method().cloned();
        let Some(id) = id else {
            // An ACK for a 2xx we sent: the call is already confirmed; report it.
            self.emit(Event::Request { request: req });
            return;
        };
        match method {
            Some(Method::Notify) => self.on_notify(now, id, &req),
            Some(Method::Message) => self.on_message(now, id, &req),
            Some(Method::Options) => {
                let extra = [
                    ("Allow", self.cfg.profile.allow.to_owned()),
                    (
                        "Accept",
                        "application/sdp, application/vnd.3gpp.sms".to_owned(),
                    ),
                    ("Supported", self.cfg.profile.invite_supported.to_owned()),
                ];
                if let Some(r) = self.response_to(&req, 200, None, &extra, None) {
                    self.respond(now, id, &r);
                }
            }
            Some(Method::Invite) => self.on_invite(now, id, &req),
            Some(Method::Prack) => self.in_dialog_ok(now, id, &req),
            Some(Method::Update) => self.on_update(now, id, &req),
            Some(Method::Bye) => self.on_bye(now, id, &req),
            Some(Method::Cancel) => self.on_cancel(now, id, &req, cancels),
            Some(Method::Info) => self.in_dialog_ok(now, id, &req),
            _ => {
                let extra = [("Allow", self.cfg.profile.allow.to_owned())];
                if let Some(r) = self.response_to(&req, 501, None, &extra, None) {
                    self.respond(now, id, &r);
                }
            }
        }
        self.emit(Event::Request { request: req });
    }

    pub(crate) fn in_dialog_ok(&mut self, now: Instant, id: ServerId, req: &Message) {
        if let Some(r) = self.response_to(req, 200, None, &[], None) {
            self.respond(now, id, &r);
        }
    }

    // ---- reg event ----

    /// Subscribes to the reg event of the UE's own IMPU (TS 24.229 §5.1.1.3).
    pub fn subscribe_reg(&mut self, now: Instant, expires: u32) -> Result<(), Error> {
        let sub = match self.sub.take() {
            Some(mut s) => {
                s.cseq += 1;
                s
            }
            None => Subscription {
                call_id: format!("{}@{}", self.ids.token(), host(self.cfg.local_ip)),
                from_tag: self.ids.token(),
                cseq: 1,
                to_tag: None,
                last: None,
            },
        };
        let peer = self.request_peer();
        let impu = self.cfg.impu.as_str().to_owned();
        let mut d = Draft::request("SUBSCRIBE", &impu)
            .h("Via", self.via(&peer))
            .h("Max-Forwards", 70);
        for r in self.initial_route() {
            d = d.h("Route", r);
        }
        let to = match &sub.to_tag {
            Some(t) => format!("<{impu}>;tag={t}"),
            None => format!("<{impu}>"),
        };
        let msg = d
            .h("From", format!("<{impu}>;tag={}", sub.from_tag))
            .h("To", to)
            .h("Call-ID", &sub.call_id)
            .h("CSeq", format!("{} SUBSCRIBE", sub.cseq))
            .h("Contact", format!("<{}>", self.contact_uri()))
            .h("Event", "reg")
            .h("Accept", "application/reginfo+xml")
            .h("Expires", expires)
            .h(
                "P-Access-Network-Info",
                self.cfg.profile.access_network_info,
            )
            .h("User-Agent", self.cfg.profile.user_agent)
            .build()?;
        self.sub = Some(sub);
        self.send(now, msg, peer, Purpose::Subscribe);
        Ok(())
    }

    fn on_subscribe_response(&mut self, resp: &Message) {
        if resp.status().is_some_and(StatusCode::is_success)
            && let Some(s) = self.sub.as_mut()
            && s.to_tag.is_none()
        {
            s.to_tag = resp
                .to_header()
                .ok()
                .and_then(|t| t.tag().map(str::to_owned));
        }
    }

    fn on_notify(&mut self, now: Instant, id: ServerId, req: &Message) {
        if let Some(r) = self.response_to(req, 200, None, &[], None) {
            self.respond(now, id, &r);
        }
        let is_reg = req
            .header_str(&HeaderName::EVENT)
            .and_then(Result::ok)
            .is_some_and(|e| e.split(';').next().is_some_and(|p| p.trim() == "reg"));
        if !is_reg {
            return;
        }
        let Some(info) = reginfo::parse(req.body()) else {
            self.diag(
                "reg-event",
                Outcome::Failed,
                "NOTIFY body is not reginfo XML",
            );
            return;
        };
        let impu = self.cfg.impu.as_str().to_owned();
        let contact = self.contact_uri();
        let mut ended = None;
        if let Some(r) = info.registration(&impu) {
            let mine = r.contacts.iter().find(|c| same_contact(&c.uri, &contact));
            match mine {
                Some(c) if c.state == "terminated" => ended = Some(c.event.clone()),
                None if r.state == "terminated" => ended = Some("terminated".to_owned()),
                _ => {}
            }
        }
        let state = req
            .header_str(&HeaderName::SUBSCRIPTION_STATE)
            .and_then(Result::ok)
            .unwrap_or_default()
            .to_owned();
        if let Some(s) = self.sub.as_mut() {
            s.last = Some(info);
            if state.starts_with("terminated") {
                self.sub = None;
            }
        }
        if let Some(event) = ended
            && self.reg.is_registered()
        {
            self.network_deregistered(&event);
        }
    }

    // ---- MESSAGE ----

    /// Sends a MESSAGE to `to` with a text/plain body (RFC 3428).
    pub fn message_text(&mut self, now: Instant, to: &str, text: &str) -> Result<(), Error> {
        self.message(now, to, "text/plain", text.as_bytes().to_vec())
    }

    /// Sends an SMS over IP (TS 24.341 §5.3.1.2): a MESSAGE to the SMSC's PSI `smsc_uri`
    /// carrying RP-DATA with a TP-SUBMIT of `text` to `destination`.
    pub fn message_sms(
        &mut self,
        now: Instant,
        smsc_uri: &str,
        destination: &str,
        text: &str,
    ) -> Result<(), Error> {
        self.sms_ref = self.sms_ref.wrapping_add(1);
        let smsc_digits: String = smsc_uri.chars().filter(char::is_ascii_digit).collect();
        let body = sms::submit(self.sms_ref, &smsc_digits, destination, text);
        self.message(now, smsc_uri, sms::CONTENT_TYPE, body)
    }

    /// Sends a MESSAGE with any body.
    pub fn message(
        &mut self,
        now: Instant,
        to: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(), Error> {
        let peer = self.request_peer();
        let impu = self.cfg.impu.as_str().to_owned();
        let mut d = Draft::request("MESSAGE", to)
            .h("Via", self.via(&peer))
            .h("Max-Forwards", 70);
        for r in self.initial_route() {
            d = d.h("Route", r);
        }
        let msg = d
            .h("From", format!("<{impu}>;tag={}", self.ids.token()))
            .h("To", format!("<{to}>"))
            .h(
                "Call-ID",
                format!("{}@{}", self.ids.token(), host(self.cfg.local_ip)),
            )
            .h("CSeq", "1 MESSAGE")
            .h("P-Preferred-Identity", format!("<{impu}>"))
            .h(
                "P-Access-Network-Info",
                self.cfg.profile.access_network_info,
            )
            .h("Request-Disposition", "no-fork")
            .opt(
                "Accept-Contact",
                (content_type == sms::CONTENT_TYPE).then_some("*;+g.3gpp.smsip"),
            )
            .h("User-Agent", self.cfg.profile.user_agent)
            .body(content_type, body)
            .build()?;
        self.send(now, msg, peer, Purpose::Message);
        Ok(())
    }

    fn on_message(&mut self, now: Instant, id: ServerId, req: &Message) {
        if let Some(r) = self.response_to(req, 200, None, &[], None) {
            self.respond(now, id, &r);
        }
        let ct = req
            .header_str(&HeaderName::CONTENT_TYPE)
            .and_then(Result::ok)
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ct.starts_with(sms::CONTENT_TYPE) {
            let decoded = sms::decode(req.body());
            let text = decoded.as_ref().and_then(|m| m.text.clone());
            if let Some(m) = decoded
                && m.kind == sms::RpType::DataNetworkToMs
            {
                // TS 24.341 §5.3.2.4: acknowledge with RP-ACK in a MESSAGE to the SC.
                let sc = req
                    .from_header()
                    .map(|f| f.uri.to_string())
                    .unwrap_or_default();
                if !sc.is_empty() {
                    let _ = self.message(now, &sc, sms::CONTENT_TYPE, sms::ack(m.reference));
                }
            }
            self.emit(Event::Sms {
                text,
                content_type: ct,
            });
        } else {
            self.emit(Event::Sms {
                text: Some(String::from_utf8_lossy(req.body()).into_owned()),
                content_type: ct,
            });
        }
    }

    // ---- OPTIONS and raw ----

    /// Sends an OPTIONS to `to`.
    pub fn options(&mut self, now: Instant, to: &str) -> Result<(), Error> {
        let peer = self.request_peer();
        let impu = self.cfg.impu.as_str().to_owned();
        let mut d = Draft::request("OPTIONS", to)
            .h("Via", self.via(&peer))
            .h("Max-Forwards", 70);
        for r in self.initial_route() {
            d = d.h("Route", r);
        }
        let msg = d
            .h("From", format!("<{impu}>;tag={}", self.ids.token()))
            .h("To", format!("<{to}>"))
            .h(
                "Call-ID",
                format!("{}@{}", self.ids.token(), host(self.cfg.local_ip)),
            )
            .h("CSeq", "1 OPTIONS")
            .h("Accept", "application/sdp")
            .h("User-Agent", self.cfg.profile.user_agent)
            .build()?;
        self.send(now, msg, peer, Purpose::Options);
        Ok(())
    }

    /// The values a raw template can refer to, for the runner's substitution.
    pub fn template_values(&mut self) -> Vec<(&'static str, String)> {
        let peer = self.request_peer();
        let link = Link::of_peer(&peer);
        let (transport, port) = match link {
            Link::Protected {
                src_port,
                transport,
            } => (transport.as_str().to_owned(), src_port),
            Link::Plain { transport, .. } => (transport.as_str().to_owned(), self.cfg.local_port),
        };
        vec![
            ("branch", self.ids.branch()),
            ("tag", self.ids.token()),
            (
                "call_id",
                format!("{}@{}", self.ids.token(), host(self.cfg.local_ip)),
            ),
            ("local_ip", host(self.cfg.local_ip)),
            ("local_port", port.to_string()),
            ("transport", transport),
            ("impu", self.cfg.impu.as_str().to_owned()),
            ("impi", self.cfg.impi.as_str().to_owned()),
            ("domain", self.cfg.domain.as_str().to_owned()),
            ("contact", format!("<{}>", self.contact_uri())),
            ("route", self.initial_route().join(", ")),
            ("pcscf", peer.addr.to_string()),
            ("user_agent", self.cfg.profile.user_agent.to_owned()),
        ]
    }

    /// Sends a message the scenario wrote by hand, over the current link (ACK statelessly,
    /// other requests through a client transaction).
    pub fn send_raw(&mut self, now: Instant, text: &str) -> Result<(), Error> {
        let normalized = normalize_crlf(text);
        let msg = Message::parse(normalized).map_err(|source| Error::BuildMessage { source })?;
        let peer = self.request_peer();
        if msg.method() == Some(&Method::Ack) || !msg.is_request() {
            self.send_stateless(&msg, peer);
            return Ok(());
        }
        self.send(now, msg, peer, Purpose::Raw);
        Ok(())
    }
}

/// A template's line ends as CRLF, and a final blank line when the template has no body
/// separator (YAML block scalars end with a single LF). Content-Length is fixed up.
pub fn normalize_crlf(text: &str) -> Vec<u8> {
    let unix = text.replace("\r\n", "\n");
    let (head, body) = match unix.split_once("\n\n") {
        Some((h, b)) => (h.to_owned(), b.to_owned()),
        None => (unix.trim_end_matches('\n').to_owned(), String::new()),
    };
    let body = body.replace('\n', "\r\n");
    let mut out = String::with_capacity(head.len() + body.len() + 64);
    for line in head.lines() {
        if line.to_ascii_lowercase().starts_with("content-length:") || line.starts_with("l:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    out.push_str(&body);
    out.into_bytes()
}

/// An IP address as a SIP host (IPv6 in brackets).
pub fn host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The user part of a SIP URI (or the whole tel number).
pub(crate) fn user_of(uri: &str) -> String {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .unwrap_or(uri);
    rest.split(['@', ';']).next().unwrap_or(rest).to_owned()
}

/// The digits of a URI's user part (`sip:+4917612345@x` → `4917612345`), for TP-DA and
/// derived identities.
pub fn user_digits(uri: &str) -> String {
    user_of(uri).chars().filter(char::is_ascii_digit).collect()
}

/// Whether two contact URIs name the same binding: same user, host and port, parameters
/// aside.
pub(crate) fn same_contact(a: &str, b: &str) -> bool {
    let strip = |s: &str| {
        s.trim()
            .trim_start_matches('<')
            .split(['>', ';'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    strip(a) == strip(b)
}

/// A duration in whole seconds, at least one.
pub(crate) fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s.max(1)))
}
