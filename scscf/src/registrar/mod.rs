//! The S-CSCF core as a pure state machine: registrar (TS 24.229 §5.4.1), authentication,
//! reg-event notifier (§5.4.2.1), Cx client logic (MAR, SAR) and server logic (RTR, PPR),
//! third-party registration (§5.4.1.7) and terminating routing.
//!
//! # Driving it
//!
//! [`Registrar`] never does I/O. The driver feeds it with `handle_*` calls, always passing the
//! current [`Now`], and drains [`Output`]s with [`Registrar::poll_output`] after each call:
//!
//! - [`Output::Decide`] answers the SIP request the driver passed in with that [`ReqId`];
//! - [`Output::Cx`] is a MAR or SAR to send to the HSS; its answer (or the failure to get one)
//!   comes back through [`Registrar::handle_cx_answer`] with the same [`TaskId`];
//! - [`Output::Send`] is a request to originate (NOTIFY, third-party REGISTER); its outcome
//!   goes back through [`Registrar::handle_sent`];
//! - [`Output::Answer`] is the RTA or PPA for a request given to [`Registrar::handle_rtr`] /
//!   [`Registrar::handle_ppr`];
//! - [`Output::Persist`] is a store write, in order; [`Output::Event`] a per-UE event.
//!
//! Binding and subscription expiry are timers: call [`Registrar::handle_timeout`] when the
//! clock reaches [`Registrar::poll_timeout`]. [`Registrar::restore`] rebuilds the state from
//! the store after a restart.
//!
//! Authentication challenges live in memory only: after a restart a UE answering an old
//! challenge is simply challenged again.

mod hss;
mod notify;
mod register;
pub mod routing;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use imslab_diameter::Origin;
use imslab_diameter::cx::{Maa, Mar, Saa, Sar, SipAuthDataItem};
use imslab_sip::Message;
use imslab_sip::proxy::Decision;
use imslab_store::{Binding, ChargingInfo, RegSubscription, ScscfRegistration};
use imslab_types::{DiameterIdentity, Function, Impi, Impu, Outcome, Realm, UeEvent, UeRef};

use crate::Error;
use crate::auth::{Challenge, Scheme};
use crate::ifc::ImsSubscription;
use crate::reg_event::ContactEvent;

pub use register::Registration;

/// Default nonce lifetime ([`Settings::challenge_lifetime`], `scscf.nonce_lifetime`): five
/// minutes, as Kamailio's `nonce_expire`; a phone re-registering later answers one more 401
/// (`stale=TRUE`).
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// The current time, monotonic (timers) and wall-clock (what the store records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time.
    pub at: Instant,
    /// Wall-clock time.
    pub wall: SystemTime,
}

impl Now {
    /// The real clock.
    pub fn system() -> Self {
        Self {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// `d` later (tests drive a virtual clock this way).
    #[must_use]
    pub fn after(self, d: Duration) -> Self {
        Self {
            at: self.at + d,
            wall: self.wall + d,
        }
    }

    fn wall_in(&self, at: Instant) -> SystemTime {
        self.wall + at.saturating_duration_since(self.at)
    }

    fn instant_of(&self, wall: SystemTime) -> Instant {
        self.at + wall.duration_since(self.wall).unwrap_or_default()
    }
}

/// The S-CSCF's settings, validated ([`Settings::from_config`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Its SIP URI (Server-Name in MAR and SAR), e.g. `sip:scscf.ims.example:6060`.
    pub uri: String,
    /// The Service-Route value returned in the 200 to REGISTER (TS 24.229 §5.4.1.2.2):
    /// its URI with user part `orig` and `lr`.
    pub service_route: String,
    /// Origin-Host and Origin-Realm toward the HSS.
    pub origin: Origin,
    /// Destination-Realm of MAR and SAR.
    pub hss_realm: Realm,
    /// Destination-Host of MAR and SAR, if known.
    pub hss_host: Option<DiameterIdentity>,
    /// The realm of AKA challenges: the home domain.
    pub home_realm: String,
    /// Shortest registration accepted (423 below), seconds.
    pub expires_min: u32,
    /// Longest registration granted, seconds.
    pub expires_max: u32,
    /// Registration granted when the REGISTER names none, seconds.
    pub expires_default: u32,
    /// SIP-Number-Auth-Items asked per MAR.
    pub auth_vectors: u32,
    /// Wrong responses in a row before 403.
    pub max_auth_failures: u32,
    /// MAR scheme when the REGISTER names no algorithm and the HSS refuses `Unknown`.
    pub default_scheme: Scheme,
    /// Longest reg-event subscription, seconds.
    pub reg_event_expires_max: u32,
    /// The nonce lifetime: how long a challenge stays answerable, counted from its 401 (a
    /// nonce also serves re-registrations within this time, with growing nonce counts). A
    /// right answer to an older nonce gets a fresh 401 with `stale=TRUE` (RFC 2617 §3.2.1).
    /// `scscf.nonce_lifetime` (default [`NONCE_LIFETIME`]), at most `scscf.reg_expires_max`.
    pub challenge_lifetime: Duration,
    /// Where originating requests for the home domain go (`scscf.icscf`): the I-CSCF's URI.
    /// `None`: a callee registered here is served at once (terminating case), others get 404.
    pub icscf: Option<String>,
    /// The breakout SIP trunk for numbers and domains outside the lab (`scscf.breakout`).
    pub breakout: Option<String>,
    /// Digest credentials for the trunk's challenges (`scscf.breakout_username`/`_password`).
    pub breakout_credentials: Option<crate::breakout::TrunkCredentials>,
    /// The ENUM domain suffix when ENUM is configured (`scscf.enum_server` set), e.g.
    /// `e164.arpa`.
    pub enum_domain: Option<String>,
    /// Host names the S-CSCF can send to (`scscf.hosts`, lower case): an iFC AS named
    /// otherwise (and not by IP) counts as failed and its DefaultHandling applies.
    pub known_hosts: std::collections::HashSet<String>,
}

impl Settings {
    /// From the `scscf:` section, the home domain and the HSS's Diameter identity.
    pub fn from_config(
        cfg: &imslab_config::ScscfConfig,
        domain: &Realm,
        hss_host: &str,
    ) -> Result<Self, Error> {
        let uri = imslab_sip::Uri::parse(&cfg.uri).map_err(|_| Error::Config {
            key: "scscf.uri",
            reason: format!("{:?} is not a SIP URI", cfg.uri),
        })?;
        let sip = uri.as_sip().ok_or_else(|| Error::Config {
            key: "scscf.uri",
            reason: format!("{:?} is not a sip: URI", cfg.uri),
        })?;
        let hostport = match sip.port {
            Some(p) => format!("{}:{p}", sip.host),
            None => sip.host.to_string(),
        };
        let origin_host =
            DiameterIdentity::new(cfg.origin_host.clone()).map_err(|e| Error::Config {
                key: "scscf.origin_host",
                reason: e.to_string(),
            })?;
        let default_scheme =
            Scheme::from_cx(&cfg.default_auth_scheme).ok_or_else(|| Error::Config {
                key: "scscf.default_auth_scheme",
                reason: format!(
                    "{:?} is none of Digest-AKAv1-MD5, Digest-AKAv2-MD5, SIP Digest",
                    cfg.default_auth_scheme
                ),
            })?;
        if cfg.reg_expires_min > cfg.reg_expires_max {
            return Err(Error::Config {
                key: "scscf.reg_expires_min",
                reason: "larger than reg_expires_max".into(),
            });
        }
        Ok(Self {
            uri: cfg.uri.clone(),
            service_route: format!("<sip:orig@{hostport};lr>"),
            origin: Origin {
                host: origin_host,
                realm: domain.clone(),
            },
            hss_realm: domain.clone(),
            hss_host: DiameterIdentity::new(hss_host.to_owned()).ok(),
            home_realm: domain.to_string(),
            expires_min: cfg.reg_expires_min,
            expires_max: cfg.reg_expires_max.max(1),
            expires_default: cfg
                .reg_expires_default
                .clamp(cfg.reg_expires_min.max(1), cfg.reg_expires_max.max(1)),
            auth_vectors: cfg.auth_vectors.max(1),
            max_auth_failures: cfg.max_auth_failures.max(1),
            default_scheme,
            reg_event_expires_max: cfg.reg_event_expires_max.max(1),
            challenge_lifetime: Duration::from_secs(u64::from(cfg.nonce_lifetime.max(1)))
                .min(Duration::from_secs(u64::from(cfg.reg_expires_max.max(60)))),
            icscf: cfg.icscf.clone().filter(|s| !s.trim().is_empty()),
            breakout: cfg.breakout.clone().filter(|s| !s.trim().is_empty()),
            enum_domain: cfg.enum_server.map(|_| cfg.enum_domain.clone()),
            known_hosts: cfg.hosts.keys().map(|h| h.to_ascii_lowercase()).collect(),
            breakout_credentials: match (&cfg.breakout_username, &cfg.breakout_password) {
                (Some(u), Some(p)) => Some(crate::breakout::TrunkCredentials::new(u, p)),
                _ => None,
            },
        })
    }
}

/// Identifies a SIP request handed to the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReqId(pub u64);

/// Identifies a Cx request the core asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u64);

/// Identifies a request the core originates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// Identifies a Diameter request (RTR, PPR) handed to the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnswerId(pub u64);

/// A Cx request to send.
#[derive(Debug, Clone)]
pub enum CxOut {
    /// Multimedia-Auth-Request.
    Mar(Box<Mar>),
    /// Server-Assignment-Request.
    Sar(Box<Sar>),
}

impl CxOut {
    /// The Diameter message.
    pub fn to_message(&self) -> imslab_diameter::Message {
        match self {
            Self::Mar(m) => m.to_message(),
            Self::Sar(s) => s.to_message(),
        }
    }
}

/// The answer to a [`CxOut`].
#[derive(Debug, Clone)]
pub enum CxReply {
    /// The MAA.
    Maa(Box<Maa>),
    /// The SAA.
    Saa(Box<Saa>),
    /// No usable answer: timeout, no route to the HSS, or an undecodable answer.
    Failed(String),
}

/// A store write, to apply in order: the store's [`imslab_store::ScscfWrite`], which the
/// server's writer applies in batches ([`imslab_store::Scscf::apply`]).
pub use imslab_store::ScscfWrite as Persist;

/// What a request the core originates is for, to act on its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// A NOTIFY of the subscription (Call-ID, our tag).
    Notify(String, String),
    /// A third-party REGISTER to an AS, for this registration.
    ThirdParty {
        /// The registered identity.
        impu: Impu,
        /// DefaultHandling of the iFC: 1 means de-register when the AS fails.
        default_handling: i64,
        /// The AS.
        server: String,
    },
}

/// What the driver must do.
#[derive(Debug)]
pub enum Output {
    /// Answer or forward the SIP request `req`.
    Decide {
        /// The request.
        req: ReqId,
        /// What to do with it.
        decision: Decision,
    },
    /// Send a Cx request; feed the answer to [`Registrar::handle_cx_answer`].
    Cx {
        /// The task.
        task: TaskId,
        /// The request.
        request: CxOut,
    },
    /// Originate a SIP request to `next_hop` (a URI to resolve); report the final status to
    /// [`Registrar::handle_sent`].
    Send {
        /// The job.
        job: JobId,
        /// The request, without Via.
        request: Message,
        /// The URI whose host and port to send to.
        next_hop: String,
    },
    /// The Diameter answer to an RTR or PPR.
    Answer {
        /// Which request.
        id: AnswerId,
        /// The answer.
        answer: imslab_diameter::Message,
    },
    /// A store write.
    Persist(Persist),
    /// A per-UE event.
    Event(UeEvent),
    /// Look up the NAPTR records of `name` (ENUM) at `scscf.enum_server`; feed them to
    /// [`Registrar::handle_enum_answer`].
    Enum {
        /// The task.
        task: TaskId,
        /// The domain name, e.g. `2.1.0.0.5.5.5.1.e164.arpa`.
        name: String,
    },
    /// Relay the standalone request `req` to the breakout trunk `next_hop` as a client
    /// ([`crate::breakout`]): send [`crate::breakout::relay_request`], answer one 401/407
    /// with [`crate::breakout::answer_challenge`] and the settings' credentials, and answer
    /// `req` with [`crate::breakout::relay_response`] (408/503 when the trunk is silent).
    Relay {
        /// The request to answer.
        req: ReqId,
        /// The request, Route to the trunk added.
        request: Message,
        /// The trunk URI.
        next_hop: String,
    },
}

/// A contact binding of a registration.
#[derive(Debug, Clone)]
struct Contact {
    binding: Binding,
    expires: Instant,
    /// When it was last registered or refreshed (restored ones: when restored).
    registered: Instant,
}

/// A registration: the registered IMPU, its implicit set, profile and contacts.
#[derive(Debug, Clone)]
struct Aor {
    impi: Impi,
    impu: Impu,
    /// The implicit registration set (default identity first) with barring.
    implicit: Vec<(Impu, bool)>,
    user_data: Option<String>,
    profile: Option<ImsSubscription>,
    charging: Option<ChargingInfo>,
    contacts: Vec<Contact>,
    /// When its binding timer is armed (one live timer entry per registration).
    timer_at: Option<Instant>,
}

impl Aor {
    fn record(&self) -> ScscfRegistration {
        ScscfRegistration {
            impu: self.impu.clone(),
            impi: self.impi.clone(),
            state: imslab_store::RegState::Registered,
            implicit_set: self.implicit.iter().map(|(i, _)| i.clone()).collect(),
            user_data: self.user_data.clone(),
            charging: self.charging.clone(),
        }
    }

    /// Non-barred identities of the implicit set, the registered one first if it is there.
    fn associated(&self) -> Vec<Impu> {
        let mut out: Vec<Impu> = self
            .implicit
            .iter()
            .filter(|(_, barred)| !barred)
            .map(|(i, _)| i.clone())
            .collect();
        if out.is_empty() {
            out.push(self.impu.clone());
        }
        out
    }
}

/// Authentication state of one private identity.
#[derive(Debug, Default)]
struct AuthState {
    challenges: VecDeque<Challenge>,
    spare: VecDeque<SipAuthDataItem>,
    failures: u32,
}

/// A reg-event subscription (notifier side).
#[derive(Debug, Clone)]
struct Sub {
    rs: RegSubscription,
    expires: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Aor(Impu),
    Sub(String, String),
}

#[derive(Debug)]
enum Task {
    Mar {
        reg: Box<register::PendingRegister>,
        scheme: Option<Scheme>,
        resync: bool,
    },
    Sar {
        kind: register::SarKind,
        reg: Option<Box<register::PendingRegister>>,
        impu: Impu,
        impi: Impi,
    },
    /// An ENUM query for an originating request's number.
    Enum {
        req: ReqId,
        msg: Box<Message>,
        served: Impu,
        number: String,
    },
    /// SAR UNREGISTERED_USER for a terminating request to an identity not registered here.
    SarUnregistered {
        req: ReqId,
        msg: Box<Message>,
        impu: Impu,
        called: String,
    },
}

/// The S-CSCF core. See the module documentation.
pub struct Registrar {
    s: Settings,
    rand: Box<dyn FnMut() -> [u8; 16] + Send>,
    aors: HashMap<Impu, Aor>,
    /// Every identity of an implicit set → the registered identity keying its [`Aor`].
    alias: HashMap<Impu, Impu>,
    auth: HashMap<Impi, AuthState>,
    tasks: HashMap<TaskId, Task>,
    jobs: HashMap<JobId, JobKind>,
    subs: HashMap<(String, String), Sub>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    out: VecDeque<Output>,
    next_id: u64,
    session_prefix: String,
    /// Requests handed to an AS, awaited back (see [`routing`]).
    legs: HashMap<routing::LegKey, routing::Leg>,
    /// The hand-offs by expiry, oldest first: (expires, key, hand-off number).
    leg_order: VecDeque<(Instant, routing::LegKey, u64)>,
    /// Profiles of unregistered identities with services (SAR UNREGISTERED_USER), oldest
    /// first, at most [`routing::MAX_UNREGISTERED`].
    unregistered: VecDeque<(Impu, std::sync::Arc<ImsSubscription>)>,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("registrations", &self.aors.len())
            .field("subscriptions", &self.subs.len())
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

/// FNV-1a, for ids that stay the same across restarts.
fn stable_id(prefix: char, s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{prefix}{h:016x}")
}

impl Registrar {
    /// A core with no state. `rand` gives 16 random bytes for nonces, tags and Call-IDs (pass a
    /// CSPRNG; tests pass a seeded source). `boot` makes Diameter Session-Ids unique across
    /// restarts (RFC 6733 §8.8).
    pub fn new(settings: Settings, rand: Box<dyn FnMut() -> [u8; 16] + Send>, boot: u64) -> Self {
        let session_prefix = format!("{};{boot}", settings.origin.host);
        Self {
            s: settings,
            rand,
            aors: HashMap::new(),
            alias: HashMap::new(),
            auth: HashMap::new(),
            tasks: HashMap::new(),
            jobs: HashMap::new(),
            subs: HashMap::new(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            next_id: 1,
            session_prefix,
            legs: HashMap::new(),
            leg_order: VecDeque::new(),
            unregistered: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Number of registrations held.
    pub fn registration_count(&self) -> usize {
        self.aors.len()
    }

    /// Number of reg-event subscriptions held.
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// The registration holding `impu` (any identity of its implicit set).
    pub fn registration(&self, impu: &Impu) -> Option<Registration> {
        let key = self.alias.get(impu)?;
        self.aors.get(key).map(Registration::of)
    }

    /// Every registration.
    pub fn registrations(&self) -> Vec<Registration> {
        let mut v: Vec<Registration> = self.aors.values().map(Registration::of).collect();
        v.sort_by(|a, b| a.impu.as_str().cmp(b.impu.as_str()));
        v
    }

    /// The earliest instant at which [`Registrar::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Fires due timers: expired bindings (timeout de-registration, RFC 3261 §10.2.1.1,
    /// TS 24.229 §5.4.1.6) and expired subscriptions (RFC 6665 §4.2.2).
    pub fn handle_timeout(&mut self, now: Now) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now.at {
                break;
            }
            let Some(Reverse((at, key))) = self.timers.pop() else {
                break;
            };
            match key {
                TimerKey::Aor(impu) => {
                    // Only the entry the registration armed last counts; refreshed bindings
                    // leave earlier entries behind.
                    let live = self
                        .aors
                        .get_mut(&impu)
                        .is_some_and(|a| a.timer_at == Some(at) && a.timer_at.take().is_some());
                    if live {
                        self.expire_contacts(now, &impu);
                    }
                }
                TimerKey::Sub(call_id, tag) => self.expire_subscription(now, &call_id, &tag),
            }
        }
    }

    /// Rebuilds the state from the store (registrations, bindings, notifier subscriptions)
    /// after a restart. Bindings already expired expire at the first timeout.
    pub fn restore(
        &mut self,
        now: Now,
        registrations: Vec<ScscfRegistration>,
        bindings: Vec<Binding>,
        subscriptions: Vec<RegSubscription>,
    ) {
        for r in registrations {
            let profile = r
                .user_data
                .as_deref()
                .and_then(|x| ImsSubscription::parse(x).ok());
            let barred = |i: &Impu| {
                profile.as_ref().is_some_and(|p| {
                    p.identities()
                        .any(|x| x.barred && x.identity.eq_ignore_ascii_case(i.as_str()))
                })
            };
            let implicit: Vec<(Impu, bool)> = r
                .implicit_set
                .iter()
                .map(|i| (i.clone(), barred(i)))
                .collect();
            let aor = Aor {
                impi: r.impi,
                impu: r.impu.clone(),
                implicit,
                user_data: r.user_data,
                profile: profile.and_then(ImsSubscription::with_ifcs),
                charging: r.charging,
                contacts: Vec::new(),
                timer_at: None,
            };
            self.index(&aor);
            self.aors.insert(r.impu, aor);
        }
        for b in bindings {
            let Some(aor) = self.aors.get_mut(&b.impu) else {
                continue;
            };
            let expires = now.instant_of(b.expires_at);
            aor.contacts.push(Contact {
                binding: b,
                expires,
                registered: now.at,
            });
        }
        let keys: Vec<Impu> = self.aors.keys().cloned().collect();
        for k in keys {
            // A registration without contacts ends at the first timeout.
            self.schedule(now, &k);
        }
        for rs in subscriptions {
            if rs.role != imslab_store::SubscriptionRole::Notifier {
                continue;
            }
            let expires = now.instant_of(rs.expires_at);
            let key = (rs.call_id.clone(), rs.local_tag.clone());
            self.timers.push(Reverse((
                expires,
                TimerKey::Sub(key.0.clone(), key.1.clone()),
            )));
            self.subs.insert(key, Sub { rs, expires });
        }
    }

    fn index(&mut self, aor: &Aor) {
        self.alias.insert(aor.impu.clone(), aor.impu.clone());
        for (i, _) in &aor.implicit {
            self.alias.insert(i.clone(), aor.impu.clone());
        }
    }

    /// [`Self::index`] from the registration's record (its implicit set).
    fn index_record(&mut self, r: &ScscfRegistration) {
        self.alias.insert(r.impu.clone(), r.impu.clone());
        for i in &r.implicit_set {
            self.alias.insert(i.clone(), r.impu.clone());
        }
    }

    fn unindex(&mut self, aor: &Aor) {
        for (i, _) in &aor.implicit {
            if self.alias.get(i) == Some(&aor.impu) {
                self.alias.remove(i);
            }
        }
        if self.alias.get(&aor.impu) == Some(&aor.impu) {
            self.alias.remove(&aor.impu);
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn token(&mut self) -> String {
        let b = (self.rand)();
        hex::encode(&b[..8])
    }

    fn session_id(&mut self) -> String {
        let n = self.id();
        format!("{};{n}", self.session_prefix)
    }

    fn event(
        &mut self,
        now: Now,
        impi: Option<&Impi>,
        impu: Option<&Impu>,
        step: &'static str,
        outcome: Outcome,
        reason: Option<String>,
    ) {
        self.out.push_back(Output::Event(UeEvent {
            at: now.wall,
            function: Function::Scscf,
            ue: UeRef {
                imsi: None,
                impi: impi.cloned(),
                impu: impu.cloned(),
            },
            step,
            outcome,
            reason,
        }));
    }

    fn persist(&mut self, p: Persist) {
        self.out.push_back(Output::Persist(p));
    }

    fn decide(&mut self, req: ReqId, decision: Decision) {
        self.out.push_back(Output::Decide { req, decision });
    }

    fn send(&mut self, kind: JobKind, request: Message, next_hop: String) {
        let job = JobId(self.id());
        self.jobs.insert(job, kind);
        self.out.push_back(Output::Send {
            job,
            request,
            next_hop,
        });
    }

    fn cx(&mut self, task: Task, request: CxOut) {
        let id = TaskId(self.id());
        self.tasks.insert(id, task);
        self.out.push_back(Output::Cx { task: id, request });
    }

    /// Arms the binding timer of `impu`'s registration for its earliest expiry (now when it
    /// has no contact), unless an earlier one is armed.
    pub(super) fn schedule(&mut self, now: Now, impu: &Impu) {
        let Some(aor) = self.aors.get_mut(impu) else {
            return;
        };
        let at = aor
            .contacts
            .iter()
            .map(|c| c.expires)
            .min()
            .unwrap_or(now.at);
        if aor.timer_at.is_none_or(|t| at < t) {
            aor.timer_at = Some(at);
            self.timers.push(Reverse((at, TimerKey::Aor(impu.clone()))));
        }
    }

    /// Removes contacts of `impu`'s registration that have expired; when none is left, the
    /// registration ends with a timeout de-registration (SAR type 4) and terminated NOTIFYs.
    fn expire_contacts(&mut self, now: Now, impu: &Impu) {
        let Some(aor) = self.aors.get_mut(impu) else {
            return;
        };
        let (gone, kept): (Vec<Contact>, Vec<Contact>) = std::mem::take(&mut aor.contacts)
            .into_iter()
            .partition(|c| c.expires <= now.at);
        aor.contacts = kept;
        let next = aor.contacts.iter().map(|c| c.expires).min();
        let impi = aor.impi.clone();
        if next.is_some() {
            self.schedule(now, impu);
        }
        if gone.is_empty() && next.is_some() {
            return;
        }
        for c in &gone {
            let key = c.binding.key();
            self.persist(Persist::RemoveBinding {
                impu: impu.clone(),
                key,
            });
        }
        let terminated: Vec<(Contact, ContactEvent)> = gone
            .into_iter()
            .map(|c| (c, ContactEvent::Expired))
            .collect();
        if next.is_some() {
            self.event(
                now,
                Some(&impi),
                Some(impu),
                "binding-expired",
                Outcome::Info,
                Some(format!("{} contact(s) expired", terminated.len())),
            );
            self.notify_all(now, impu, &terminated, None);
            return;
        }
        self.event(
            now,
            Some(&impi),
            Some(impu),
            "deregistered",
            Outcome::Info,
            Some("registration expired: timeout de-registration".into()),
        );
        if let Some(a) = self.aors.get(impu).cloned() {
            self.third_party(now, &a, None, 2, 0);
        }
        self.end_registration(now, impu, &terminated, None);
        self.start_sar(
            now,
            register::SarKind::TimeoutDeregistration,
            None,
            Some(impu.clone()),
            Some(impi),
        );
    }
}
