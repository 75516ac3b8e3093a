//! The running S-CSCF: the [`Registrar`] core driven by one engine task, a SIP element
//! ([`SipNode`]) for Mw/ISC, a Diameter node toward the HSS for Cx (client for MAR/SAR, server
//! for RTR/PPR on the same connection), and a store writer.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imslab_config::Config;
use imslab_diameter::answer::error_answer;
use imslab_diameter::base::{Capabilities, VendorSpecificApplicationId};
use imslab_diameter::cx::{CxRequest, Maa, Saa};
use imslab_diameter::{Origin, VendorId};
use imslab_diameter_io::{DiameterNode, NodeOptions, PeerInfo, PeerOptions};
use imslab_sip::header::Event as SipEvent;
use imslab_sip::{HeaderName, Message, Method, StatusCode};
use imslab_sip_io::TransportKind;
use imslab_sip_node::{
    ContextId, Decided, Decision, Handler, Incoming, Listen, NodeConfig, NodeHandle, SipNode,
};
use imslab_store::Store;
use imslab_types::{DiameterIdentity, UeEventSink};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::registrar::{
    AnswerId, CxOut, CxReply, JobId, Now, Output, Persist, Registrar, ReqId, Settings, TaskId,
};

/// How long shutdown waits for the store writer and the Diameter disconnect.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1000);

enum Input {
    Register {
        msg: Message,
        source: SocketAddr,
        reply: oneshot::Sender<Decided>,
    },
    Subscribe {
        msg: Message,
        reply: oneshot::Sender<Decided>,
    },
    Request {
        msg: Message,
        consumed: Vec<bytes::Bytes>,
        stateless: bool,
        reply: oneshot::Sender<Decided>,
    },
    Cx {
        task: TaskId,
        reply: CxReply,
    },
    Sent {
        job: JobId,
        status: Option<StatusCode>,
    },
    Diameter {
        request: CxRequest,
        reply: oneshot::Sender<imslab_diameter::Message>,
    },
    Enum {
        task: TaskId,
        answer: Result<Vec<crate::e164::NaptrRecord>, String>,
    },
    /// The store writer has applied every write up to this sequence number.
    Durable(u64),
}

/// How many contexts with a fallback decision the handler remembers for
/// [`Handler::on_fallback_applied`] (the oldest are forgotten first).
const MAX_FALLBACK_CONTEXTS: usize = 4096;

/// Contexts whose decision carries a fallback (an AS hand-off with SESSION_CONTINUED), with
/// the served user and the AS, so that the fallback being applied becomes a per-UE event.
#[derive(Default)]
struct FallbackContexts {
    by_ctx: HashMap<ContextId, (Option<imslab_types::Impu>, String)>,
    order: VecDeque<ContextId>,
}

impl FallbackContexts {
    fn insert(&mut self, ctx: ContextId, who: Option<imslab_types::Impu>, target: String) {
        if self.by_ctx.insert(ctx, (who, target)).is_none() {
            self.order.push_back(ctx);
        }
        while self.order.len() > MAX_FALLBACK_CONTEXTS {
            if let Some(old) = self.order.pop_front() {
                self.by_ctx.remove(&old);
            }
        }
    }

    fn take(&mut self, ctx: ContextId) -> Option<(Option<imslab_types::Impu>, String)> {
        let v = self.by_ctx.remove(&ctx)?;
        self.order.retain(|c| *c != ctx);
        Some(v)
    }
}

/// The "AS failed, session continued" event for the served user of a context whose AS
/// hand-off failed with `status` (TS 24.229 §5.4.3.2, DefaultHandling SESSION_CONTINUED).
fn fallback_event(
    who: Option<imslab_types::Impu>,
    target: &str,
    status: StatusCode,
) -> imslab_types::UeEvent {
    imslab_types::UeEvent {
        at: SystemTime::now(),
        function: imslab_types::Function::Scscf,
        ue: imslab_types::UeRef {
            imsi: None,
            impi: None,
            impu: who,
        },
        step: "as",
        outcome: imslab_types::Outcome::Failed,
        reason: Some(format!(
            "AS {target} failed ({}), session continued (default handling SESSION_CONTINUED)",
            status.as_u16()
        )),
    }
}

/// The user a request is served for: its P-Asserted-Identity (originating), else its
/// Request-URI (terminating).
fn served_user(msg: &Message) -> Option<imslab_types::Impu> {
    msg.typed_all::<imslab_sip::NameAddr<'_>>(&HeaderName::P_ASSERTED_IDENTITY)
        .filter_map(Result::ok)
        .find_map(|n| imslab_types::Impu::new(n.uri.to_string()).ok())
        .or_else(|| {
            msg.request_uri_str()
                .and_then(|u| imslab_types::Impu::new(u.to_owned()).ok())
        })
}

struct SipHandler {
    engine: mpsc::UnboundedSender<Input>,
    events: Arc<dyn UeEventSink>,
    fallbacks: std::sync::Mutex<FallbackContexts>,
    /// CSeq offsets of breakout calls whose INVITE was re-sent with credentials.
    dialogs: std::sync::Mutex<crate::dialogs::BreakoutDialogs>,
    trunk_credentials: Option<crate::breakout::TrunkCredentials>,
}

impl Handler for SipHandler {
    async fn on_request(&self, incoming: Incoming, node: NodeHandle) -> Decision {
        self.on_request_with_fallback(incoming, node).await.decision
    }

    fn on_challenge(
        &self,
        ctx: ContextId,
        request: Message,
        challenge: &Message,
    ) -> Option<Message> {
        let creds = self.trunk_credentials.as_ref()?;
        let cnonce = hex::encode(rand::random::<[u8; 8]>());
        let again = crate::breakout::answer_challenge(&request, challenge, creds, &cnonce);
        let mut full = None;
        if let (Some(a), Ok(mut d)) = (&again, self.dialogs.lock())
            && d.challenged(std::time::Instant::now(), ctx, a)
                == crate::dialogs::Tracking::TableFull
        {
            full = Some(d.capacity());
        }
        self.events.emit(crate::dialogs::challenge_event(
            &request,
            challenge,
            again.is_some(),
        ));
        if let Some(capacity) = full {
            tracing::warn!(capacity, "breakout dialog table full: CSeq offset not kept");
            self.events
                .emit(crate::dialogs::untracked_event(&request, capacity));
        }
        again
    }

    fn on_final_response(&self, ctx: ContextId, status: StatusCode) {
        if let Ok(mut d) = self.dialogs.lock() {
            d.final_response(std::time::Instant::now(), ctx, status);
        }
    }

    fn on_fallback_applied(&self, ctx: ContextId, status: StatusCode) {
        let taken = self.fallbacks.lock().ok().and_then(|mut f| f.take(ctx));
        if let Some((who, target)) = taken {
            self.events.emit(fallback_event(who, &target, status));
        }
    }

    async fn on_request_with_fallback(&self, incoming: Incoming, _node: NodeHandle) -> Decided {
        let (reply, rx) = oneshot::channel();
        let ctx = incoming.ctx;
        let msg = incoming.request;
        let fallback = msg
            .response(StatusCode::SERVER_INTERNAL_ERROR, None)
            .unwrap_or_else(|_| Message::new_response(StatusCode::SERVER_INTERNAL_ERROR, None));
        let is_reg_event = || {
            msg.typed::<SipEvent<'_>>(&HeaderName::EVENT)
                .and_then(Result::ok)
                .is_some_and(|e| e.package.eq_ignore_ascii_case("reg"))
        };
        let input = match msg.method() {
            Some(Method::Register) => Input::Register {
                source: incoming.from.addr,
                msg,
                reply,
            },
            Some(Method::Subscribe) if is_reg_event() => Input::Subscribe { msg, reply },
            _ => Input::Request {
                msg,
                consumed: incoming.consumed_routes,
                stateless: incoming.stateless,
                reply,
            },
        };
        if self.engine.send(input).is_err() {
            return Decision::Respond(fallback).into();
        }
        let mut decided = rx
            .await
            .unwrap_or_else(|_| Decision::Respond(fallback).into());
        let mut in_breakout_dialog = false;
        if let Decision::Forward { request, .. } = &mut decided.decision
            && let Ok(mut d) = self.dialogs.lock()
        {
            in_breakout_dialog = d
                .outbound(std::time::Instant::now(), ctx, request)
                .answerable()
                && request.method() != Some(&Method::Ack);
        }
        // The trunk may challenge the caller's requests inside the dialog too (a re-INVITE).
        if in_breakout_dialog && self.trunk_credentials.is_some() {
            decided.answer_challenges = true;
        }
        if let (Some(_), Decision::Forward { request, .. }) = (&decided.fallback, &decided.decision)
        {
            // The AS is the top Route of the hand-off.
            let target = request
                .routes()
                .next()
                .and_then(Result::ok)
                .map_or_else(|| "?".to_owned(), |r| r.uri.to_string());
            if let Ok(mut f) = self.fallbacks.lock() {
                f.insert(ctx, served_user(request), target);
            }
        }
        decided
    }

    fn wants_responses(&self) -> bool {
        false
    }
}

/// The S-CSCF, bound and ready to [`Server::run`].
pub struct Server {
    node: SipNode,
    handle: NodeHandle,
    diameter: DiameterNode,
    registrar: Registrar,
    store: Store,
    owner: String,
    events: Arc<dyn UeEventSink>,
    engine_tx: mpsc::UnboundedSender<Input>,
    engine_rx: mpsc::UnboundedReceiver<Input>,
    hss: SocketAddr,
    enum_server: Option<SocketAddr>,
    /// `scscf.as_timeout`: how long an iFC-triggered AS may stay silent.
    as_timeout: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("owner", &self.owner)
            .field("registrar", &self.registrar)
            .finish_non_exhaustive()
    }
}

fn capabilities(origin: &Origin, boot: u64) -> Capabilities {
    Capabilities {
        origin_host: origin.host.clone(),
        origin_realm: origin.realm.clone(),
        host_ip_addresses: Vec::new(),
        vendor_id: VendorId::TGPP,
        product_name: "imslab-scscf".into(),
        origin_state_id: Some(u32::try_from(boot & 0xffff_ffff).unwrap_or(0)),
        supported_vendor_ids: vec![VendorId::TGPP],
        auth_application_ids: Vec::new(),
        inband_security_ids: Vec::new(),
        acct_application_ids: Vec::new(),
        vendor_specific_application_ids: vec![VendorSpecificApplicationId::CX],
        firmware_revision: None,
    }
}

fn host_of(uri: &str) -> Option<String> {
    let u = imslab_sip::Uri::parse(uri).ok()?;
    Some(u.as_sip()?.host.to_string())
}

impl Server {
    /// Binds the SIP sockets (`scscf.listen`, UDP and TCP; errors name the address), loads
    /// the registrations this S-CSCF (named by `scscf.uri`) left in `store`, and starts the
    /// Diameter client toward `scscf.hss`, which keeps reconnecting until the HSS answers.
    /// Per-UE events go to `events`. `data_dir` is the lab's data directory (nothing is
    /// written there yet).
    pub async fn bind(
        config: &Config,
        store: Store,
        events: Arc<dyn UeEventSink>,
        data_dir: &Path,
    ) -> Result<Self, Error> {
        let _ = data_dir;
        let cfg = &config.scscf;
        let settings = Settings::from_config(cfg, &config.network.domain, &config.hss.origin_host)?;
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut node_cfg = NodeConfig::new(Listen::udp_tcp(cfg.listen));
        if let Some(h) = host_of(&cfg.uri) {
            node_cfg.aliases.push(h);
        }
        for (name, addr) in &cfg.hosts {
            node_cfg = node_cfg.host(name, TransportKind::Udp, *addr);
        }
        node_cfg.seed = rand::random();
        let node = SipNode::bind(node_cfg).await?;
        let handle = node.handle();

        let now = Now::system();
        let owner = settings.uri.clone();
        let mut registrar =
            Registrar::new(settings.clone(), Box::new(rand::random::<[u8; 16]>), boot);
        let regs = store.scscf(&owner).registrations().await?;
        let bindings = store.scscf(&owner).all_bindings().await?;
        let subs = store.reg_subscriptions(&owner).all().await?;
        if !regs.is_empty() {
            tracing::info!(
                registrations = regs.len(),
                bindings = bindings.len(),
                subscriptions = subs.len(),
                "S-CSCF restored its registrations from the store"
            );
        }
        registrar.restore(now, regs, bindings, subs);

        let (engine_tx, engine_rx) = mpsc::unbounded_channel();
        let hss_host =
            DiameterIdentity::new(config.hss.origin_host.clone()).map_err(|e| Error::Config {
                key: "hss.origin_host",
                reason: e.to_string(),
            })?;
        let mut opts = NodeOptions::new(capabilities(&settings.origin, boot));
        opts.peers.push(PeerOptions::connect_tcp(
            hss_host,
            config.network.domain.clone(),
            cfg.hss,
        ));
        opts.request_timeout = Duration::from_secs(5);
        let tx = engine_tx.clone();
        let origin = settings.origin.clone();
        let diameter = DiameterNode::start(
            opts,
            move |msg: imslab_diameter::Message, _peer: PeerInfo| {
                let tx = tx.clone();
                let origin = origin.clone();
                async move {
                    let request = match CxRequest::decode(&msg) {
                        Ok(r @ (CxRequest::Rtr(_) | CxRequest::Ppr(_))) => r,
                        Ok(_) => {
                            return error_answer(
                                &msg.header,
                                &msg.avps,
                                &imslab_diameter::Error::UnsupportedCommand {
                                    code: msg.header.code,
                                    app: msg.header.application_id,
                                },
                                &origin,
                            );
                        }
                        Err(e) => return error_answer(&msg.header, &msg.avps, &e, &origin),
                    };
                    let (reply, rx) = oneshot::channel();
                    if tx.send(Input::Diameter { request, reply }).is_err() {
                        return imslab_diameter::answer::result_answer(
                            &msg.header,
                            &msg.avps,
                            imslab_diameter::ResultCode::DIAMETER_UNABLE_TO_COMPLY,
                            Some("S-CSCF stopping"),
                            None,
                            &origin,
                        );
                    }
                    match rx.await {
                        Ok(a) => a,
                        Err(_) => imslab_diameter::answer::result_answer(
                            &msg.header,
                            &msg.avps,
                            imslab_diameter::ResultCode::DIAMETER_UNABLE_TO_COMPLY,
                            Some("S-CSCF stopping"),
                            None,
                            &origin,
                        ),
                    }
                }
            },
            None,
        )
        .map_err(|source| Error::Diameter {
            hss: cfg.hss,
            source,
        })?;
        Ok(Self {
            node,
            handle,
            diameter,
            registrar,
            store,
            owner,
            events,
            engine_tx,
            engine_rx,
            hss: cfg.hss,
            enum_server: cfg.enum_server,
            as_timeout: Duration::from_secs(u64::from(cfg.as_timeout)),
        })
    }

    /// The bound SIP sockets.
    pub fn local_addrs(&self) -> Vec<(TransportKind, SocketAddr)> {
        self.node.local_addrs()
    }

    /// The Diameter node (peer status for the UI).
    pub fn diameter(&self) -> &DiameterNode {
        &self.diameter
    }

    /// Runs until `shutdown` is cancelled; returns within about a second after it.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let Self {
            node,
            handle,
            diameter,
            mut registrar,
            store,
            owner,
            events,
            engine_tx,
            mut engine_rx,
            hss,
            enum_server,
            as_timeout,
        } = self;
        tracing::info!(addrs = ?node.local_addrs(), %hss, "S-CSCF running");
        let sip_stop = shutdown.child_token();
        let sip = tokio::spawn(node.run(
            SipHandler {
                engine: engine_tx.clone(),
                events: events.clone(),
                fallbacks: std::sync::Mutex::new(FallbackContexts::default()),
                dialogs: std::sync::Mutex::default(),
                trunk_credentials: registrar.settings().breakout_credentials.clone(),
            },
            sip_stop.clone(),
        ));
        let (persist_tx, persist_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(persist_loop(store, owner, persist_rx, engine_tx.clone()));
        let mut engine = Engine {
            registrar: &mut registrar,
            tx: engine_tx,
            handle,
            diameter: diameter.clone(),
            persist: persist_tx,
            written: 0,
            durable: 0,
            held: VecDeque::new(),
            events,
            next: 0,
            pending: HashMap::new(),
            answers: HashMap::new(),
            enum_resolver: enum_server.map(enum_resolver),
            as_timeout,
        };
        loop {
            let deadline = engine
                .registrar
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                input = engine_rx.recv() => {
                    let Some(input) = input else { break };
                    engine.input(input);
                    // Take what is already queued, then look at the timers.
                    for _ in 0..256 {
                        match engine_rx.try_recv() {
                            Ok(i) => engine.input(i),
                            Err(_) => break,
                        }
                    }
                }
                () = sleep_until(deadline) => {}
            }
            if engine
                .registrar
                .poll_timeout()
                .is_some_and(|t| t <= std::time::Instant::now())
            {
                engine.registrar.handle_timeout(Now::system());
                engine.drain();
            }
        }
        sip_stop.cancel();
        drop(engine);
        // The store writer finishes what is queued; the Diameter node says goodbye (DPR).
        let stopped = tokio::time::timeout(SHUTDOWN_GRACE, async {
            let (_, _, sip) = tokio::join!(diameter.shutdown(), writer, sip);
            sip
        })
        .await;
        match stopped {
            Ok(Ok(r)) => r.map_err(Error::from),
            _ => Ok(()),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Feeds the core and carries out its outputs.
struct Engine<'a> {
    registrar: &'a mut Registrar,
    tx: mpsc::UnboundedSender<Input>,
    handle: NodeHandle,
    diameter: DiameterNode,
    persist: mpsc::UnboundedSender<(u64, Persist)>,
    /// Sequence number of the last write handed to the store writer.
    written: u64,
    /// Sequence number of the last write the store writer has applied.
    durable: u64,
    /// Answers waiting for the writes queued before them (a 200 is sent only once the
    /// registration it acknowledges is in the store, so a restart loses nothing
    /// acknowledged), with the sequence number they wait for.
    held: VecDeque<(u64, oneshot::Sender<Decided>, Decided)>,
    events: Arc<dyn UeEventSink>,
    next: u64,
    pending: HashMap<ReqId, oneshot::Sender<Decided>>,
    answers: HashMap<AnswerId, oneshot::Sender<imslab_diameter::Message>>,
    as_timeout: Duration,
    enum_resolver: Option<hickory_resolver::TokioResolver>,
}

impl Engine<'_> {
    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn input(&mut self, input: Input) {
        let now = Now::system();
        match input {
            Input::Register { msg, source, reply } => {
                let req = ReqId(self.id());
                self.pending.insert(req, reply);
                self.registrar.handle_register(now, req, msg, Some(source));
            }
            Input::Subscribe { msg, reply } => {
                let req = ReqId(self.id());
                self.pending.insert(req, reply);
                self.registrar.handle_subscribe(now, req, msg);
            }
            Input::Request {
                msg,
                consumed,
                stateless,
                reply,
            } => {
                let req = ReqId(self.id());
                self.pending.insert(req, reply);
                self.registrar
                    .handle_request_routed(now, req, msg, stateless, &consumed);
            }
            Input::Cx { task, reply } => self.registrar.handle_cx_answer(now, task, reply),
            Input::Sent { job, status } => self.registrar.handle_sent(now, job, status),
            Input::Enum { task, answer } => self.registrar.handle_enum_answer(now, task, answer),
            Input::Durable(seq) => {
                self.durable = self.durable.max(seq);
                while self
                    .held
                    .front()
                    .is_some_and(|(n, _, _)| *n <= self.durable)
                {
                    if let Some((_, reply, decision)) = self.held.pop_front() {
                        let _ = reply.send(decision);
                    }
                }
            }
            Input::Diameter { request, reply } => {
                let id = AnswerId(self.id());
                self.answers.insert(id, reply);
                match request {
                    CxRequest::Rtr(r) => self.registrar.handle_rtr(now, id, *r),
                    CxRequest::Ppr(p) => self.registrar.handle_ppr(now, id, *p),
                    _ => {
                        self.answers.remove(&id);
                    }
                }
            }
        }
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(o) = self.registrar.poll_output() {
            match o {
                Output::Decide { req, decision } => {
                    if let Some(reply) = self.pending.remove(&req) {
                        // An AS hand-off with SESSION_CONTINUED continues without that AS
                        // when it fails (TS 24.229 §5.4.3.2).
                        let decision = self.registrar.decided(decision, self.as_timeout);
                        if self.written > self.durable {
                            self.held.push_back((self.written, reply, decision));
                        } else {
                            let _ = reply.send(decision);
                        }
                    }
                }
                Output::Cx { task, request } => {
                    let diameter = self.diameter.clone();
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        let reply = cx_round_trip(&diameter, &request).await;
                        let _ = tx.send(Input::Cx { task, reply });
                    });
                }
                Output::Send {
                    job,
                    request,
                    next_hop,
                } => {
                    let handle = self.handle.clone();
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        let status = match handle.request_to_uri(request, &next_hop).await {
                            Ok(r) => r.status(),
                            Err(e) => {
                                tracing::debug!(%next_hop, error = %e, "originated request failed");
                                None
                            }
                        };
                        let _ = tx.send(Input::Sent { job, status });
                    });
                }
                Output::Answer { id, answer } => {
                    if let Some(reply) = self.answers.remove(&id) {
                        let _ = reply.send(answer);
                    }
                }
                Output::Persist(p) => {
                    self.written += 1;
                    let _ = self.persist.send((self.written, p));
                }
                Output::Event(e) => self.events.emit(e),
                Output::Enum { task, name } => {
                    let tx = self.tx.clone();
                    let resolver = self.enum_resolver.clone();
                    tokio::spawn(async move {
                        let answer = match resolver {
                            Some(r) => naptr_lookup(&r, &name).await,
                            None => Err("no scscf.enum_server".to_owned()),
                        };
                        let _ = tx.send(Input::Enum { task, answer });
                    });
                }
                Output::Relay {
                    req,
                    request,
                    next_hop,
                } => {
                    let Some(reply) = self.pending.remove(&req) else {
                        continue;
                    };
                    let handle = self.handle.clone();
                    let creds = self.registrar.settings().breakout_credentials.clone();
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        let d = relay(&handle, &request, &next_hop, creds.as_ref(), &*events).await;
                        let _ = reply.send(Decision::Respond(d).into());
                    });
                }
            }
        }
    }
}

/// Relays a standalone request to the breakout trunk as a client, answering one digest
/// challenge ([`crate::breakout`]); the trunk's final answer, or 408/503, for the phone.
async fn relay(
    handle: &NodeHandle,
    original: &Message,
    next_hop: &str,
    creds: Option<&crate::breakout::TrunkCredentials>,
    events: &dyn UeEventSink,
) -> Message {
    use crate::breakout::{answer_challenge, relay_request, relay_response};
    let first = relay_request(original);
    let mut answer = handle.request_to_uri(first.clone(), next_hop).await;
    let mut challenged = false;
    if let (Ok(r), Some(c)) = (&answer, creds) {
        let cnonce = hex::encode(rand::random::<[u8; 8]>());
        if let Some(again) = answer_challenge(&first, r, c, &cnonce) {
            challenged = true;
            answer = handle.request_to_uri(again, next_hop).await;
        }
    }
    let served = original
        .typed_all::<imslab_sip::NameAddr<'_>>(&HeaderName::P_ASSERTED_IDENTITY)
        .filter_map(Result::ok)
        .find_map(|n| imslab_types::Impu::new(n.uri.to_string()).ok());
    let (resp, outcome, reason) = match answer {
        Ok(r) => {
            let status = r.status().map_or(0, |s| s.as_u16());
            let ok = r.status().is_some_and(|s| s.is_success());
            let why = format!(
                "breakout trunk {next_hop} answered {status}{}",
                if challenged {
                    " after a digest challenge"
                } else {
                    ""
                }
            );
            (relay_response(original, &r), ok, why)
        }
        Err(e) => {
            let status = match &e {
                imslab_sip_node::Error::NoResponse { status, .. } => *status,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            let r = original
                .response(status, None)
                .unwrap_or_else(|_| Message::new_response(status, None));
            (
                r,
                false,
                format!("breakout trunk {next_hop} did not answer: {e}"),
            )
        }
    };
    events.emit(imslab_types::UeEvent {
        at: SystemTime::now(),
        function: imslab_types::Function::Scscf,
        ue: imslab_types::UeRef {
            imsi: None,
            impi: None,
            impu: served,
        },
        step: "message",
        outcome: if outcome {
            imslab_types::Outcome::Ok
        } else {
            imslab_types::Outcome::Failed
        },
        reason: Some(reason),
    });
    resp
}

/// A resolver asking only `server` (ENUM), two seconds per query.
fn enum_resolver(server: SocketAddr) -> hickory_resolver::TokioResolver {
    use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
    use hickory_resolver::name_server::TokioConnectionProvider;
    let group = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
    let config = ResolverConfig::from_parts(None, Vec::new(), group);
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    opts.ndots = 0;
    opts.cache_size = 0;
    hickory_resolver::TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        .with_options(opts)
        .build()
}

/// The NAPTR records of `name`: empty for NXDOMAIN or no records, `Err` when the server did
/// not answer.
async fn naptr_lookup(
    r: &hickory_resolver::TokioResolver,
    name: &str,
) -> Result<Vec<crate::e164::NaptrRecord>, String> {
    use hickory_resolver::proto::rr::{RData, RecordType};
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    match r.lookup(fqdn, RecordType::NAPTR).await {
        Ok(l) => Ok(l
            .iter()
            .filter_map(|rd| match rd {
                RData::NAPTR(n) => Some(crate::e164::NaptrRecord {
                    order: n.order(),
                    preference: n.preference(),
                    flags: String::from_utf8_lossy(n.flags()).into_owned(),
                    services: String::from_utf8_lossy(n.services()).into_owned(),
                    regexp: String::from_utf8_lossy(n.regexp()).into_owned(),
                    replacement: n.replacement().to_ascii(),
                }),
                _ => None,
            })
            .collect()),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

async fn cx_round_trip(diameter: &DiameterNode, request: &CxOut) -> CxReply {
    match diameter.request(request.to_message()).await {
        Err(e) => CxReply::Failed(e.to_string()),
        Ok(answer) => match request {
            CxOut::Mar(_) => Maa::decode(&answer).map_or_else(
                |e| CxReply::Failed(format!("undecodable MAA: {e}")),
                |m| CxReply::Maa(Box::new(m)),
            ),
            CxOut::Sar(_) => Saa::decode(&answer).map_or_else(
                |e| CxReply::Failed(format!("undecodable SAA: {e}")),
                |s| CxReply::Saa(Box::new(s)),
            ),
        },
    }
}

/// Most writes one store transaction carries.
const MAX_PERSIST_BATCH: usize = 512;

/// Applies store writes in order and tells the engine how far it got, which releases the
/// answers held for them. Whatever is queued when a batch starts goes into one transaction
/// ([`imslab_store::Scscf::apply`], which ends in the rows applying them one by one would).
/// A failed batch is retried write by write, so one bad write loses only itself; a failed
/// write is logged (and releases its answers too); the in-memory state stays authoritative
/// until the next restart.
async fn persist_loop(
    store: Store,
    owner: String,
    mut rx: mpsc::UnboundedReceiver<(u64, Persist)>,
    engine: mpsc::UnboundedSender<Input>,
) {
    let mut batch = Vec::with_capacity(MAX_PERSIST_BATCH);
    while let Some((first, p)) = rx.recv().await {
        let mut last = first;
        batch.push(p);
        while batch.len() < MAX_PERSIST_BATCH {
            match rx.try_recv() {
                Ok((seq, p)) => {
                    last = seq;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let scscf = store.scscf(&owner);
        if let Err(e) = scscf.apply(&batch, SystemTime::now()).await {
            tracing::warn!(error = %e, writes = batch.len(), "S-CSCF store batch failed; retrying its writes one by one");
            for p in &batch {
                if let Err(e) = scscf
                    .apply(std::slice::from_ref(p), SystemTime::now())
                    .await
                {
                    tracing::warn!(error = %e, "S-CSCF could not write its state to the store");
                }
            }
        }
        batch.clear();
        let _ = engine.send(Input::Durable(last));
    }
}
