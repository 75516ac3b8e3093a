//! The P-CSCF as a sans-IO node: the §16 proxy core of `imslab-sip` plus the P-CSCF's
//! decisions (TS 24.229 §5.2), the SA table (TS 33.203 §7.4), registrations and reg-event
//! subscriptions. Feed it what arrives ([`Pcscf::handle_message`]), the time
//! ([`Pcscf::handle_timeout`] at [`Pcscf::poll_timeout`]) and transport failures; act on the
//! [`Output`]s in order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use imslab_config::IpsecMode;
use imslab_ipsec::negotiate::{Advertise, security_server};
use imslab_ipsec::{
    Diagnosis, EspKeys, RemovalReason, SaAction, SaRole, SaSetId, SaState, SaTable,
    SecurityMechanism, Spi, header as sec_header,
};
use imslab_sip::header::{Event as EventHeader, SubscriptionState, Transport};
use imslab_sip::proxy::{
    ContextId, Decision, ForkMode, Interface, InterfaceId, Proxy, ProxyConfig, ProxyEvent,
    RecordRoute, Target,
};
use imslab_sip::transaction::{ClientId, FlowId, Peer, TxRef};
use imslab_sip::{HeaderName, Host, Message, Method, NameAddr, StatusCode, Uri};
use imslab_store::{PcscfRegistration, RegSubscription, SubscriptionRole};
use imslab_types::{Function, Impu, Outcome, UeEvent, UeRef};

use crate::Error;
use crate::dialogs::{DialogKey, DialogState, Dialogs, Ended, Side};
use crate::flow::{Flow, PROTECTED_CLIENT, PROTECTED_SERVER};
use crate::reg_event::{self, Reginfo, SubState, Subscription};
use crate::register::{self, RegisterParts};
use crate::registrations::{RegKey, Registration, Registrations, same_identity};
use crate::routing;
use crate::sec_agree::{self, Offer, Refusal};
use crate::settings::Settings;

/// How long a subscription is kept after its registration ended, so the S-CSCF's final
/// NOTIFY still matches it (64×T1).
const SUBSCRIPTION_LINGER: Duration = Duration::from_secs(32);

/// How far a restored SA set's outbound sequence numbers jump ahead of the previous run's
/// (which the store does not follow packet by packet): 2^24 packets per set per run.
const SEQ_JUMP: u32 = 1 << 24;

/// Most INVITE dialogs tracked at once; a new call beyond it is refused with 503.
pub const MAX_DIALOGS: usize = 200_000;

/// How long a phone's SA sets outlive a network de-registration or expiry, so the S-CSCF's
/// NOTIFY "terminated" (and the phone's answer) still cross them (64×T1, Timer F).
pub(crate) const SA_LINGER: Duration = Duration::from_secs(32);

/// How a message reached the P-CSCF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Unprotected.
    None,
    /// Userspace ESP: decrypted by the P-CSCF with the inbound SA of this SPI.
    Esp {
        /// The inbound SA's SPI.
        spi: Spi,
    },
    /// Kernel ESP (XFRM): arrived on a protected port, so the kernel's policy checked it.
    Kernel,
}

/// What the transport driver knows about an arriving message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingress {
    /// The transport.
    pub transport: Transport,
    /// The sender's address and port.
    pub source: SocketAddr,
    /// The local address and port it arrived at.
    pub local: SocketAddr,
    /// The driver's connection id (stream transports); `None` for UDP and ESP.
    pub flow: Option<FlowId>,
    /// Whether and how it was protected.
    pub protection: Protection,
}

impl Ingress {
    /// An unprotected message.
    pub fn plain(
        transport: Transport,
        source: SocketAddr,
        local: SocketAddr,
        flow: Option<FlowId>,
    ) -> Self {
        Self {
            transport,
            source,
            local,
            flow,
            protection: Protection::None,
        }
    }
}

/// A change the driver writes to the store (restart safety).
#[derive(Clone, Debug, PartialEq)]
pub enum StoreOp {
    /// Create or replace a registration.
    PutRegistration(Box<PcscfRegistration>),
    /// Remove a registration.
    RemoveRegistration {
        /// Its IMPU.
        impu: Impu,
        /// Its contact.
        contact: String,
    },
    /// Create or replace a reg-event subscription.
    PutSubscription(Box<RegSubscription>),
    /// Remove a reg-event subscription.
    RemoveSubscription {
        /// Dialog Call-ID.
        call_id: String,
        /// Our tag.
        local_tag: String,
    },
}

/// What the driver must do, in order.
#[derive(Debug)]
pub enum Output {
    /// Send bytes. A `to.flow` of [`PROTECTED_SERVER`] or [`PROTECTED_CLIENT`] means: over
    /// the phone's SAs, from the P-CSCF's port-s or port-c. On failure call
    /// [`Pcscf::handle_transport_error`] with `tx`.
    Transmit {
        /// Destination.
        to: Peer,
        /// The message.
        bytes: Bytes,
        /// Its transaction.
        tx: Option<TxRef>,
    },
    /// Install or remove an SA set (userspace ESP socket or XFRM).
    Sa(SaAction),
    /// Write to the store.
    Store(StoreOp),
    /// A step of a phone's timeline.
    Event(UeEvent),
    /// Userspace ESP: the outbound SAs of this (just restored) set continue after sequence
    /// number `last`, above what the phone saw before the restart.
    ResumeEsp {
        /// The restored set.
        bundle: imslab_ipsec::SaBundle,
        /// The sequence number to continue after.
        last: u32,
    },
}

/// Security state the P-CSCF keeps per SA set: what it sent and what the phone offered.
#[derive(Clone, Debug)]
struct SetSecurity {
    key: RegKey,
    sent_server: Vec<SecurityMechanism>,
    client: Vec<SecurityMechanism>,
}

/// A REGISTER forwarded and waiting for its final response.
#[derive(Clone, Debug)]
struct PendingRegister {
    parts: RegisterParts,
    flow: Flow,
    source: SocketAddr,
    offer: Option<Offer>,
    over_set: Option<SaSetId>,
    alias: Option<(String, String)>,
    call_id: Option<String>,
}

/// What `handle_message` learnt before the proxy core saw the message.
#[derive(Clone, Debug)]
struct Arrival {
    ingress: Ingress,
    token: Option<Flow>,
    /// Every flow token on the P-CSCF's own top Routes (see [`routing::route_flows`]).
    route_flows: Vec<Flow>,
}

/// Counters for tests and the status page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests refused with 403 because the phone is not registered (or not on its SAs).
    pub forbidden: u64,
    /// REGISTERs refused for security agreement (420, 421, 494).
    pub sec_agree_refused: u64,
    /// Registrations dropped because a NOTIFY said terminated.
    pub network_deregistered: u64,
}

/// The P-CSCF core. See the module documentation.
pub struct Pcscf {
    s: Settings,
    proxy: Proxy,
    base: (Instant, SystemTime),
    regs: Registrations,
    sas: Option<SaTable<RegKey>>,
    set_sec: HashMap<SaSetId, SetSecurity>,
    pending: HashMap<ContextId, PendingRegister>,
    toward_phone: HashSet<ContextId>,
    subs: HashMap<String, Subscription>,
    subs_by_impu: HashMap<Impu, String>,
    sub_timers: BinaryHeap<Reverse<(Instant, String)>>,
    sa_linger: BinaryHeap<Reverse<(Instant, SaSetId, RemovalReason)>>,
    dialogs: Dialogs,
    dialog_ctx: HashMap<ContextId, DialogKey>,
    ctx_set: HashMap<ContextId, SaSetId>,
    set_open: HashMap<SaSetId, usize>,
    draining: HashMap<SaSetId, (Instant, SaAction)>,
    seq_base: HashMap<SaSetId, u32>,
    tcp_refused: HashSet<SaSetId>,
    /// Userspace ESP: the protected server ports (phone address, port-s) of SA sets over which
    /// the phone spoke TCP; requests to them go over TCP too.
    tcp_phones: HashMap<SaSetId, SocketAddr>,
    uac: HashMap<ClientId, String>,
    arrival: Option<Arrival>,
    counter: u64,
    seed: u64,
    out: Vec<Output>,
    deferred: Vec<Output>,
    stats: Stats,
}

impl std::fmt::Debug for Pcscf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pcscf")
            .field("registrations", &self.regs.len())
            .field("sa_sets", &self.sas.as_ref().map_or(0, SaTable::len))
            .field("subscriptions", &self.subs.len())
            .finish_non_exhaustive()
    }
}

impl Pcscf {
    /// A P-CSCF with no registrations. `seed` makes branches, tags and icids unique across
    /// restarts; `now` and `wall` anchor the virtual clock to wall time (for stored expiries
    /// and event times).
    pub fn new(s: Settings, seed: u64, now: Instant, wall: SystemTime) -> Result<Self, Error> {
        let ip = s.listen.ip();
        let mut interfaces = vec![
            Interface {
                transport: Transport::Udp,
                addr: s.listen,
                advertise: None,
            },
            Interface {
                transport: Transport::Tcp,
                addr: s.listen,
                advertise: None,
            },
        ];
        if let Some(ws) = s.ws_listen {
            interfaces.push(Interface {
                transport: Transport::Ws,
                addr: ws,
                advertise: None,
            });
        }
        if s.ipsec() {
            for port in [s.ports.port_s, s.ports.port_c] {
                for transport in [Transport::Udp, Transport::Tcp] {
                    interfaces.push(Interface {
                        transport,
                        addr: SocketAddr::new(ip, port),
                        advertise: None,
                    });
                }
            }
        }
        let mut cfg = ProxyConfig::new(interfaces.remove(0));
        cfg.interfaces.extend(interfaces);
        if s.ipsec() {
            cfg.supported.push(sec_agree::SEC_AGREE.into());
        }
        cfg.hosts = s
            .hosts
            .iter()
            .map(|(n, a)| (n.clone(), Peer::new(Transport::Udp, *a)))
            .collect();
        let proxy = Proxy::new(cfg, s.timers, seed);
        let sas = if s.ipsec() {
            Some(SaTable::new(s.sa_table.clone())?)
        } else {
            None
        };
        Ok(Self {
            s,
            proxy,
            base: (now, wall),
            regs: Registrations::new(),
            sas,
            set_sec: HashMap::new(),
            pending: HashMap::new(),
            toward_phone: HashSet::new(),
            subs: HashMap::new(),
            subs_by_impu: HashMap::new(),
            sub_timers: BinaryHeap::new(),
            sa_linger: BinaryHeap::new(),
            dialogs: Dialogs::new(MAX_DIALOGS),
            dialog_ctx: HashMap::new(),
            ctx_set: HashMap::new(),
            set_open: HashMap::new(),
            draining: HashMap::new(),
            seq_base: HashMap::new(),
            tcp_refused: HashSet::new(),
            tcp_phones: HashMap::new(),
            uac: HashMap::new(),
            arrival: None,
            counter: 0,
            seed,
            out: Vec::new(),
            deferred: Vec::new(),
            stats: Stats::default(),
        })
    }

    // ---- inspection ----

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// The registrations.
    pub fn registrations(&self) -> &Registrations {
        &self.regs
    }

    /// The SA table (`None` when IPsec is off).
    pub fn sa_table(&self) -> Option<&SaTable<RegKey>> {
        self.sas.as_ref()
    }

    /// The proxy core.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Number of reg-event subscriptions held.
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// The reg-event subscription of `impu`.
    pub fn subscription(&self, impu: &Impu) -> Option<&Subscription> {
        self.subs.get(self.subs_by_impu.get(impu)?)
    }

    /// The INVITE dialogs in progress.
    pub fn dialogs(&self) -> &Dialogs {
        &self.dialogs
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Every SA bundle in the table (for the Wireshark ESP SA file).
    pub fn sa_bundles(&self) -> Vec<imslab_ipsec::SaBundle> {
        self.sas
            .as_ref()
            .map(|t| t.iter().map(|s| s.bundle.clone()).collect())
            .unwrap_or_default()
    }

    /// The wall time of `at` on this core's clock.
    pub fn wall(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.base.0) {
            Some(d) => self.base.1 + d,
            None => self.base.1 - self.base.0.duration_since(at),
        }
    }

    // ---- inputs ----

    /// A message arrived.
    pub fn handle_message(&mut self, now: Instant, msg: Message, ingress: Ingress) -> Vec<Output> {
        let (token, route_flows) = if msg.is_request() {
            (
                routing::route_token(&msg, self.s.listen, &self.s.flow_key, self.s.boot),
                routing::route_flows(
                    &msg,
                    self.s.listen,
                    [self.s.ports.port_c, self.s.ports.port_s],
                    &self.s.flow_key,
                    self.s.boot,
                ),
            )
        } else {
            (None, Vec::new())
        };
        if msg.method() == Some(&Method::Register)
            && !self.s.ipsec()
            && sec_agree::has_option_tag(&msg, &HeaderName::PROXY_REQUIRE, sec_agree::SEC_AGREE)
            && let Some(p) = register::parts(&msg)
        {
            // The proxy core answers 420 itself (§16.3 step 5); record why for the phone.
            self.stats.sec_agree_refused += 1;
            let ue = UeRef {
                imsi: None,
                impi: p.impi,
                impu: Some(p.impu),
            };
            self.event(
                now,
                ue,
                "sec-agree",
                Outcome::Failed,
                Refusal::NotSupported.reason(),
            );
        }
        let spi = match ingress.protection {
            Protection::Esp { spi } => Some(spi),
            Protection::Kernel => self.sas.as_ref().and_then(|t| {
                t.by_inbound_flow(ingress.source, ingress.local)
                    .map(|(_, sa)| sa.spi)
            }),
            Protection::None => None,
        };
        if let Some(spi) = spi
            && let Some(t) = self.sas.as_mut()
        {
            if ingress.transport == Transport::Tcp
                && let Some((set, _)) = t.by_inbound_spi(spi)
            {
                let ue = SocketAddr::new(set.bundle.remote.ip, set.bundle.remote.port_s);
                self.tcp_phones.insert(set.id, ue);
            }
            let acts = t.inbound_used(spi);
            self.retire_old(now, acts);
        }
        let peer = self.peer_of(&ingress);
        let iface = self.iface_of(&ingress);
        self.arrival = Some(Arrival {
            ingress,
            token,
            route_flows,
        });
        let ev = self.proxy.handle_message(now, msg, peer, iface);
        self.absorb(now, ev);
        self.arrival = None;
        self.take_output()
    }

    /// Timers are due (call at [`Pcscf::poll_timeout`]; early calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        let ev = self.proxy.handle_timeout(now);
        self.absorb(now, ev);
        for reg in self.regs.take_expired(now) {
            self.forget_registration(
                now,
                &reg,
                RemovalReason::Expired,
                "registration expired".into(),
            );
        }
        let due: Vec<SaSetId> = self
            .draining
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some((_, a)) = self.draining.remove(&id) {
                self.set_open.remove(&id);
                self.push_sa(now, vec![a], false);
            }
        }
        while let Some(Reverse((at, id, reason))) = self.sa_linger.peek().copied() {
            if at > now {
                break;
            }
            self.sa_linger.pop();
            if let Some(t) = self.sas.as_mut() {
                let acts = t.remove_set(id, reason);
                self.push_sa(now, acts, false);
            }
        }
        if let Some(t) = self.sas.as_mut() {
            let acts = t.poll_expired(now);
            self.push_sa(now, acts, false);
        }
        self.subscription_timers(now);
        for (key, d) in self.dialogs.take_expired(now) {
            let ue = self.ue_of(&d.phone);
            self.event(
                now,
                ue,
                "call",
                Outcome::Info,
                format!(
                    "dialog {} released: {}",
                    key.call_id,
                    describe_end(&Ended::TimedOut(d.state))
                ),
            );
        }
        self.flush_deferred();
        self.take_output()
    }

    /// Sending the message of transaction `tx` failed.
    pub fn handle_transport_error(&mut self, now: Instant, tx: TxRef) -> Vec<Output> {
        let ev = self.proxy.handle_transport_error(now, tx);
        self.absorb(now, ev);
        self.take_output()
    }

    /// Userspace ESP: the TCP endpoint inside the tunnel refused a phone's connection (a SYN
    /// that arrived on inbound SA `spi` from `from`) because of a connection limit (`why`).
    /// The phone's timeline says so once per SA set.
    pub fn handle_esp_tcp_refused(
        &mut self,
        now: Instant,
        spi: Spi,
        from: SocketAddr,
        why: &str,
    ) -> Vec<Output> {
        let found = self
            .sas
            .as_ref()
            .and_then(|t| t.by_inbound_spi(spi))
            .map(|(set, _)| (set.id, set.ue.clone()));
        if let Some((id, key)) = found
            && self.tcp_refused.insert(id)
        {
            let ue = self.ue_of(&key);
            self.event(
                now,
                ue,
                "esp",
                Outcome::Failed,
                format!("TCP connection from {from} over the SAs ({id}) refused: {why}"),
            );
        }
        self.take_output()
    }

    /// When [`Pcscf::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.proxy.poll_timeout(),
            self.regs.next_expiry(),
            self.sas.as_ref().and_then(SaTable::next_expiry),
            self.sub_timers.peek().map(|Reverse((at, _))| *at),
            self.sa_linger.peek().map(|Reverse((at, _, _))| *at),
            self.dialogs.next_expiry(),
            self.draining.values().map(|(at, _)| *at).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The P-CSCF stops: every SA set is removed (TS 33.203 §7.4). Registrations stay in the
    /// store.
    pub fn shutdown(&mut self, now: Instant) -> Vec<Output> {
        let draining: Vec<SaAction> = self.draining.drain().map(|(_, (_, a))| a).collect();
        self.push_sa(now, draining, false);
        if let Some(t) = self.sas.as_mut() {
            let acts = t.shutdown();
            self.push_sa(now, acts, false);
        }
        self.take_output()
    }

    /// Reloads registrations and subscriptions from the store after a restart. `wall` is the
    /// current wall time. Registrations whose flow token no longer decodes (a connection of the
    /// previous run) are dropped; IPsec registrations come back with their SA sets from the
    /// stored `sa_info` (an `Output::Sa` install and an `Output::ResumeEsp` each: userspace ESP
    /// installs them, XFRM reconciles the kernel's with them), or without SAs when nothing
    /// usable was stored, and then the phone must register again.
    pub fn restore(
        &mut self,
        now: Instant,
        wall: SystemTime,
        regs: Vec<PcscfRegistration>,
        subs: Vec<RegSubscription>,
    ) -> Vec<Output> {
        for r in regs {
            let row = r.clone();
            let remaining = r.expires_at.duration_since(wall).unwrap_or_default();
            let flow = r
                .flow
                .as_deref()
                .and_then(|t| self.s.flow_key.decode(t, self.s.boot));
            let ue = UeRef {
                imsi: None,
                impi: r.impi.clone(),
                impu: Some(r.impu.clone()),
            };
            let Some(flow) = flow.filter(|_| !remaining.is_zero()) else {
                self.out.push(Output::Store(StoreOp::RemoveRegistration {
                    impu: r.impu.clone(),
                    contact: r.contact.clone(),
                }));
                self.event(
                    now,
                    ue,
                    "registered",
                    Outcome::Info,
                    "stored registration not restored: expired, or its connection is gone".into(),
                );
                continue;
            };
            let protected = matches!(flow, Flow::Protected { .. });
            let reg = Registration {
                key: RegKey {
                    impu: r.impu,
                    contact: r.contact,
                },
                impi: r.impi,
                flow,
                contact_alias: None,
                service_route: r.service_route,
                associated: r.associated_uris,
                expires: now + remaining,
                protected,
                call_id: r.call_id,
            };
            if protected {
                let restored = match (&row.sa_info, self.s.mode) {
                    (Some(info), IpsecMode::Userspace | IpsecMode::Xfrm) => {
                        self.restore_sas(now, &reg.key, info, remaining)
                    }
                    (None, _) => Err("no SA data stored".into()),
                    (Some(_), IpsecMode::Off) => Err("IPsec is off".into()),
                };
                match restored {
                    Ok(info) => {
                        self.event(
                            now,
                            reg.ue_ref(),
                            "registered",
                            Outcome::Info,
                            "restored after a restart with its IPsec SAs".into(),
                        );
                        self.out
                            .push(Output::Store(StoreOp::PutRegistration(Box::new(
                                PcscfRegistration {
                                    sa_info: Some(info),
                                    ..row.clone()
                                },
                            ))));
                    }
                    Err(why) => self.event(
                        now,
                        reg.ue_ref(),
                        "registered",
                        Outcome::Info,
                        format!(
                            "restored after a restart without its IPsec SAs ({why}): the phone \
                             must register again"
                        ),
                    ),
                }
            }
            self.regs.insert(reg);
        }
        for sub in subs {
            if sub.role != SubscriptionRole::Subscriber {
                continue;
            }
            let remaining = sub.expires_at.duration_since(wall).unwrap_or_default();
            if remaining.is_zero() {
                continue;
            }
            let expires = now + remaining;
            let s = Subscription {
                impu: sub.impu.clone(),
                call_id: sub.call_id.clone(),
                local_tag: sub.local_tag,
                remote_tag: Some(sub.remote_tag).filter(|t| !t.is_empty()),
                local_cseq: u32::try_from(sub.local_cseq).unwrap_or(1),
                remote_cseq: u32::try_from(sub.remote_cseq).ok().filter(|c| *c > 0),
                remote_target: sub.remote_target,
                route_set: sub.route_set,
                expires,
                refresh_at: refresh_time(now, remaining),
                version: u64::try_from(sub.version).ok().filter(|v| *v > 0),
                state: SubState::Active,
            };
            self.sub_timers
                .push(Reverse((s.refresh_at, s.call_id.clone())));
            self.subs_by_impu.insert(sub.impu, sub.call_id.clone());
            self.subs.insert(sub.call_id, s);
        }
        self.take_output()
    }

    // ---- plumbing ----

    fn take_output(&mut self) -> Vec<Output> {
        self.flush_deferred();
        std::mem::take(&mut self.out)
    }

    fn flush_deferred(&mut self) {
        let d = std::mem::take(&mut self.deferred);
        self.out.extend(d);
    }

    fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn unique(&mut self) -> String {
        let n = self.next_id();
        format!("{:x}{n:x}", self.seed & 0xffff_ffff)
    }

    fn event(
        &mut self,
        now: Instant,
        ue: UeRef,
        step: &'static str,
        outcome: Outcome,
        reason: String,
    ) {
        self.out.push(Output::Event(UeEvent {
            at: self.wall(now),
            function: Function::Pcscf,
            ue,
            step,
            outcome,
            reason: Some(reason),
        }));
    }

    /// True when SIP over TCP can be carried inside the phones' SAs (userspace ESP).
    fn esp_tcp(&self) -> bool {
        self.s.mode == IpsecMode::Userspace
    }

    fn peer_of(&self, ingress: &Ingress) -> Peer {
        match ingress.protection {
            Protection::Esp { .. } => Peer {
                transport: ingress.transport.clone(),
                addr: ingress.source,
                flow: Some(if ingress.local.port() == self.s.ports.port_s {
                    PROTECTED_SERVER
                } else {
                    PROTECTED_CLIENT
                }),
            },
            _ => Peer {
                transport: ingress.transport.clone(),
                addr: ingress.source,
                flow: ingress.flow,
            },
        }
    }

    fn iface_of(&self, ingress: &Ingress) -> InterfaceId {
        let ifs = &self.proxy.config().interfaces;
        InterfaceId(
            ifs.iter()
                .position(|i| i.transport == ingress.transport && i.addr == ingress.local)
                .or_else(|| {
                    ifs.iter()
                        .position(|i| i.addr.port() == ingress.local.port())
                })
                .unwrap_or(0),
        )
    }

    /// TS 24.229 §5.2.2 / TS 33.203 §7.4: the phone used its new SAs, so its old set goes, but
    /// only once the SIP transactions it opened over the old set are complete (their responses
    /// still go back over it), at most [`SA_LINGER`] later.
    fn retire_old(&mut self, now: Instant, acts: Vec<SaAction>) {
        let mut at_once = Vec::new();
        for a in acts {
            let id = match &a {
                SaAction::Install { id, .. } | SaAction::Remove { id, .. } => *id,
            };
            let open = self.set_open.get(&id).copied().unwrap_or(0);
            if open == 0 {
                at_once.push(a);
                continue;
            }
            if let Some(key) = self.set_sec.get(&id).map(|s| s.key.clone()) {
                let ue = self.ue_of(&key);
                self.event(
                    now,
                    ue,
                    "ipsec-sa",
                    Outcome::Info,
                    format!("{id} superseded: kept until its {open} open transaction(s) complete"),
                );
            }
            self.draining.insert(id, (now + SA_LINGER, a));
        }
        self.push_sa(now, at_once, false);
    }

    /// A request that arrived over SA set `set` opened proxy context `ctx`.
    fn transaction_opened(&mut self, ctx: ContextId, set: SaSetId) {
        if self.ctx_set.insert(ctx, set).is_none() {
            *self.set_open.entry(set).or_default() += 1;
        }
    }

    /// Context `ctx` is finished: an old set waiting for it may go now.
    fn transaction_done(&mut self, now: Instant, ctx: ContextId) {
        let Some(set) = self.ctx_set.remove(&ctx) else {
            return;
        };
        let left = match self.set_open.get_mut(&set) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        if left == 0 {
            self.set_open.remove(&set);
            if let Some((_, a)) = self.draining.remove(&set) {
                self.push_sa(now, vec![a], true);
            }
        }
    }

    /// Pushes SA actions as outputs (now, or after this call's transmissions), with a timeline
    /// event each, and forgets the security state of removed sets.
    fn push_sa(&mut self, now: Instant, actions: Vec<SaAction>, after_transmit: bool) {
        for a in actions {
            let id = match &a {
                SaAction::Install { id, .. } | SaAction::Remove { id, .. } => *id,
            };
            if matches!(a, SaAction::Remove { .. }) {
                self.tcp_refused.remove(&id);
                self.tcp_phones.remove(&id);
                self.seq_base.remove(&id);
            }
            let key = match &a {
                SaAction::Remove { .. } => self.set_sec.remove(&id).map(|s| s.key),
                SaAction::Install { .. } => self.set_sec.get(&id).map(|s| s.key.clone()),
            }
            .or_else(|| {
                self.sas
                    .as_ref()
                    .and_then(|t| t.get(id).map(|s| s.ue.clone()))
            });
            let d = Diagnosis::from(&a);
            if let Some(key) = key {
                let ev = Output::Event(d.into_event(
                    self.wall(now),
                    Function::Pcscf,
                    UeRef::impu(key.impu),
                ));
                if after_transmit {
                    self.deferred.push(ev);
                } else {
                    self.out.push(ev);
                }
            }
            if after_transmit {
                self.deferred.push(Output::Sa(a));
            } else {
                self.out.push(Output::Sa(a));
            }
        }
    }

    fn absorb(&mut self, now: Instant, events: Vec<ProxyEvent>) {
        let mut queue: std::collections::VecDeque<ProxyEvent> = events.into();
        while let Some(e) = queue.pop_front() {
            match e {
                ProxyEvent::Transmit { mut to, bytes, tx } => {
                    if matches!(to.transport, Transport::Tcp | Transport::Udp)
                        && to.flow.is_none()
                        && self.is_protected_phone(to.addr)
                    {
                        // Every request to a phone with SAs goes from port-c over them
                        // (TS 33.203 §7.1, TS 24.229 §5.2.6.3), whatever route led there; one
                        // moved to TCP for its size (RFC 3261 §18.1.1) stays on the SAs, over
                        // TCP only where the SAs carry TCP (userspace ESP).
                        let transport = if to.transport == Transport::Tcp && self.esp_tcp() {
                            Transport::Tcp
                        } else {
                            Transport::Udp
                        };
                        to = Peer {
                            transport,
                            addr: to.addr,
                            flow: Some(PROTECTED_CLIENT),
                        };
                    }
                    if to.flow == Some(PROTECTED_CLIENT)
                        && to.transport == Transport::Udp
                        && self.esp_tcp()
                        && !bytes.starts_with(b"SIP/2.0 ")
                        && (bytes.len() > routing::UDP_SIZE_LIMIT
                            || self.tcp_phones.values().any(|a| *a == to.addr))
                    {
                        // RFC 3261 §18.1.1: a request over 1300 bytes goes over TCP, and so
                        // does every request to a phone that speaks TCP over its SAs: the
                        // P-CSCF connects from port-c to the phone's port-s inside ESP.
                        to.transport = Transport::Tcp;
                    }
                    let bytes = if to.flow == Some(PROTECTED_CLIENT) {
                        routing::protect_toward_phone(
                            &bytes,
                            self.s.listen,
                            self.s.ports.port_c,
                            self.s.ports.port_s,
                            to.transport.clone(),
                        )
                        .map_or(bytes, |m| m.to_bytes())
                    } else {
                        bytes
                    };
                    self.out.push(Output::Transmit { to, bytes, tx });
                }
                ProxyEvent::Request {
                    ctx,
                    request,
                    from,
                    stateless,
                    ..
                } => {
                    let decision = self.on_request(now, ctx, request, &from, stateless);
                    match self.proxy.decide(now, ctx, decision) {
                        Ok(ev) => queue.extend(ev),
                        Err(e) => tracing::warn!("pcscf: decision for {ctx:?} refused: {e}"),
                    }
                }
                ProxyEvent::Response { ctx, response } => {
                    let response = self.on_response(now, ctx, response);
                    match self.proxy.forward_response(now, ctx, response) {
                        Ok(ev) => queue.extend(ev),
                        Err(e) => tracing::debug!("pcscf: response for {ctx:?} not sent: {e}"),
                    }
                }
                ProxyEvent::UacResponse { id, response } => {
                    self.on_uac_response(now, id, &response);
                }
                ProxyEvent::UacFailed { id, status } => {
                    if let Some(call_id) = self.uac.remove(&id) {
                        self.subscribe_failed(now, &call_id, status);
                    }
                }
                ProxyEvent::Finished { ctx } => {
                    self.dialog_ctx.remove(&ctx);
                    self.transaction_done(now, ctx);
                    self.pending.remove(&ctx);
                    self.toward_phone.remove(&ctx);
                }
                ProxyEvent::Rejected { status, error, .. } => {
                    tracing::debug!("pcscf: proxy core answered {status}: {error}");
                }
                ProxyEvent::Cancelled { .. } => {}
            }
        }
    }

    fn respond(&mut self, req: &Message, status: StatusCode) -> Decision {
        let tag = self.unique();
        match req.response(status, Some(&tag)) {
            Ok(r) => Decision::Respond(r),
            // A request the core accepted always has the headers a response needs.
            Err(_) => Decision::Respond(Message::new_response(status, None)),
        }
    }

    // ---- requests ----

    fn on_request(
        &mut self,
        now: Instant,
        ctx: ContextId,
        req: Message,
        from: &Peer,
        stateless: bool,
    ) -> Decision {
        let arrival = self.arrival.clone().unwrap_or_else(|| Arrival {
            ingress: Ingress::plain(from.transport.clone(), from.addr, self.s.listen, from.flow),
            token: None,
            route_flows: Vec::new(),
        });
        let method = req.method().cloned().unwrap_or(Method::Options);
        if !stateless
            && method != Method::Ack
            && let Protection::Esp { spi } = arrival.ingress.protection
            && let Some(set) = self
                .sas
                .as_ref()
                .and_then(|t| t.by_inbound_spi(spi))
                .map(|(set, _)| set.id)
        {
            self.transaction_opened(ctx, set);
        }
        if method == Method::Register && !stateless {
            return self.on_register(now, ctx, req, &arrival);
        }
        let to_me = req
            .request_uri_str()
            .and_then(|u| Uri::parse(u).ok())
            .is_some_and(|u| self.proxy.is_me(&u));
        if to_me && !stateless {
            return self.uas(now, req, &method);
        }
        // A request from a phone over its SAs.
        if arrival.ingress.protection != Protection::None {
            return match self.protected_origin(&req, &arrival.ingress, &method) {
                Ok(key) => self.originating(now, ctx, req, &key, true),
                Err(reason) => self.forbid(now, &req, reason),
            };
        }
        let arrived = Flow::from_arrival(
            &arrival.ingress.transport,
            arrival.ingress.source,
            arrival.ingress.flow,
        );
        // A Route token naming the flow the request came from is the phone's own in-dialog
        // request through our Record-Route: originating, not terminating.
        if let Some(flow) = arrival.token.filter(|f| *f != arrived) {
            return self.terminating(now, ctx, req, flow);
        }
        let by_flow = self.regs.by_flow(&arrived).next().map(|r| r.key.clone());
        if let Some(key) = by_flow {
            return self.originating(now, ctx, req, &key, false);
        }
        if let Some(flow) = self.contact_flow(&req) {
            return self.terminating(now, ctx, req, flow);
        }
        let reason = if self
            .regs
            .iter()
            .any(|r| r.protected && r.flow.remote().ip() == arrival.ingress.source.ip())
        {
            format!(
                "403: {method} arrived unprotected from {}, but this phone registered with IPsec \
                 and is served only on its SAs",
                arrival.ingress.source
            )
        } else {
            format!(
                "403: {method} from {} which is not a registered phone",
                arrival.ingress.source
            )
        };
        self.forbid(now, &req, reason)
    }

    /// The registration a protected request belongs to.
    fn protected_origin(
        &mut self,
        req: &Message,
        ingress: &Ingress,
        method: &Method,
    ) -> Result<RegKey, String> {
        let spi = match ingress.protection {
            Protection::Esp { spi } => Some(spi),
            Protection::Kernel => self.sas.as_ref().and_then(|t| {
                t.by_inbound_flow(ingress.source, ingress.local)
                    .map(|(_, sa)| sa.spi)
            }),
            Protection::None => None,
        };
        let table = self.sas.as_ref().ok_or("403: IPsec is off")?;
        let (set, sa) = spi
            .and_then(|spi| table.by_inbound_spi(spi))
            .ok_or_else(|| format!("403: {method} on an unknown SA"))?;
        if sa.role != SaRole::InboundToServer {
            return Err(format!("403: {method} sent to the protected client port"));
        }
        if set.state == SaState::Temporary {
            return Err(format!(
                "403: {method} over SAs that are not yet authenticated (only REGISTER is allowed)"
            ));
        }
        let key = set.ue.clone();
        let id = set.id;
        if let Some(sec) = self.set_sec.get(&id)
            && let Err(r) = sec_agree::check_verify(req, &sec.sent_server, false)
        {
            return Err(r.reason());
        }
        Ok(key)
    }

    fn forbid(&mut self, now: Instant, req: &Message, reason: String) -> Decision {
        self.stats.forbidden += 1;
        let ue = req
            .from_header()
            .ok()
            .and_then(|f| Impu::new(f.uri.to_string()).ok())
            .map(UeRef::impu);
        if let Some(ue) = ue {
            self.event(now, ue, "forbidden", Outcome::Failed, reason);
        }
        self.respond(req, StatusCode::FORBIDDEN)
    }

    /// The flow of a request addressed to a registered contact (in-dialog requests, or a core
    /// that does not route by Path), or to a NAT alias.
    fn contact_flow(&self, req: &Message) -> Option<Flow> {
        let ruri = req.request_uri_str()?;
        if let Some(r) = self.regs.by_contact(ruri) {
            return Some(r.flow);
        }
        let (plain, addr, t) = routing::take_ruri_alias(req)?;
        if let Some(r) = self.regs.by_contact(&plain) {
            return Some(r.flow);
        }
        match t {
            Transport::Udp => Some(Flow::Udp { remote: addr }),
            _ => None,
        }
    }

    fn originating(
        &mut self,
        now: Instant,
        ctx: ContextId,
        mut req: Message,
        key: &RegKey,
        protected: bool,
    ) -> Decision {
        let Some(reg) = self.regs.get(key).filter(|r| r.expires > now).cloned() else {
            let method = req.method().cloned().unwrap_or(Method::Options);
            return self.forbid(
                now,
                &req,
                format!("403: {method} from {} which is not registered", key.impu),
            );
        };
        let method = req.method().cloned().unwrap_or(Method::Options);
        sec_agree::strip_for_forwarding(&mut req);
        let identity = routing::assert_identity(&mut req, &reg);
        let initial = !routing::in_dialog(&req);
        if initial {
            routing::enforce_service_route(&mut req, &reg);
            if !req.has_header(&HeaderName::P_CHARGING_VECTOR) {
                let icid = self.unique();
                let at = self.s.listen.ip().to_string();
                register::set_charging_vector(&mut req, &icid, &at);
            }
        }
        if !protected
            && routing::is_dialog_forming(&method)
            && let Some(ingress) = self.arrival.as_ref().map(|a| a.ingress.clone())
        {
            routing::add_contact_alias(&mut req, ingress.source, &ingress.transport);
        }
        if let Some(refused) = self.track_dialog(
            now,
            ctx,
            &req,
            &method,
            initial,
            &reg.key,
            Side::Originating,
        ) {
            return refused;
        }
        let record_route =
            (initial && routing::is_dialog_forming(&method)).then(|| self.record_route(&reg.flow));
        self.toward_phone.insert(ctx);
        // In a dialog with another phone of this P-CSCF whose other hops did not
        // Record-Route, the peer's entry follows ours: straight to that phone's flow.
        // An in-dialog request with no Route left (the peer's 2xx lacked Record-Route)
        // goes to its Request-URI: when that is a phone of this P-CSCF, over that phone's
        // flow (its SAs from port-c, TS 33.203 §7.1), never plain to its protected port.
        let peer_flow = if initial {
            None
        } else {
            self.arrival
                .as_ref()
                .and_then(|a| a.route_flows.iter().find(|f| **f != reg.flow).copied())
                .or_else(|| {
                    (!req.has_header(&HeaderName::ROUTE))
                        .then(|| self.contact_flow(&req))
                        .flatten()
                        .filter(|f| *f != reg.flow)
                })
        };
        if method != Method::Ack {
            self.event(
                now,
                reg.ue_ref(),
                "route",
                Outcome::Ok,
                format!("{method} from the phone, P-Asserted-Identity {identity}"),
            );
        }
        let target = match peer_flow {
            Some(flow) => {
                routing::strip_toward_phone(&mut req);
                Target {
                    uri: routing::take_ruri_alias(&req).map(|(u, _, _)| Bytes::from(u)),
                    destination: Some(flow.peer()),
                }
            }
            None => Target::next_hop(),
        };
        Decision::Forward {
            request: req,
            targets: vec![target],
            mode: ForkMode::Parallel,
            record_route,
        }
    }

    /// Record-Route for a dialog of the phone on `flow`: its user part is the flow token, so
    /// the dialog's requests from the core reach that phone (and its SAs) without a lookup,
    /// even after its registration ended (the S-CSCF's final reg-event NOTIFY).
    fn record_route(&self, flow: &Flow) -> RecordRoute {
        RecordRoute {
            user: Some(self.s.flow_key.encode(flow, self.s.boot)),
        }
    }

    /// Whether `addr` is the protected server port of a phone with SAs.
    fn is_protected_phone(&self, addr: SocketAddr) -> bool {
        self.sas.as_ref().is_some_and(|t| t.protects(addr))
    }

    fn ue_of(&self, key: &RegKey) -> UeRef {
        self.regs
            .get(key)
            .map_or_else(|| UeRef::impu(key.impu.clone()), Registration::ue_ref)
    }

    /// Dialog bookkeeping for a request of the phone `phone` (TS 24.229 §5.2.6.3.3,
    /// §5.2.7): an initial INVITE starts a dialog (503 when the table is full), a BYE ends
    /// it, other in-dialog requests keep a confirmed one alive. `Some` is the refusal.
    #[allow(clippy::too_many_arguments)]
    fn track_dialog(
        &mut self,
        now: Instant,
        ctx: ContextId,
        req: &Message,
        method: &Method,
        initial: bool,
        phone: &RegKey,
        side: Side,
    ) -> Option<Decision> {
        if *method == Method::Invite && initial {
            let key = DialogKey::of(req, false, side)?;
            if !self.dialogs.start(key.clone(), phone.clone(), now) {
                let ue = self.ue_of(phone);
                self.event(
                    now,
                    ue,
                    "call",
                    Outcome::Failed,
                    format!("503: INVITE refused, {MAX_DIALOGS} dialogs in progress"),
                );
                return Some(self.respond(req, StatusCode::SERVICE_UNAVAILABLE));
            }
            self.dialog_ctx.insert(ctx, key);
            return None;
        }
        if initial || *method == Method::Ack {
            return None;
        }
        // The dialog's entries at this P-CSCF: one per phone side, the request's From tag
        // being the caller's or (from the callee) its To tag.
        let keys: Vec<DialogKey> = [Side::Originating, Side::Terminating]
            .into_iter()
            .flat_map(|sd| [false, true].map(|rev| DialogKey::of(req, rev, sd)))
            .flatten()
            .filter(|k| self.dialogs.get(k).is_some())
            .collect();
        for key in keys {
            if *method == Method::Bye {
                if let Some(d) = self.dialogs.end(&key) {
                    let ue = self.ue_of(&d.phone);
                    self.event(
                        now,
                        ue,
                        "call",
                        Outcome::Ok,
                        format!(
                            "dialog {} released: {}",
                            key.call_id,
                            describe_end(&Ended::Bye)
                        ),
                    );
                }
            } else if self
                .dialogs
                .get(&key)
                .is_some_and(|d| d.state == DialogState::Confirmed)
            {
                let session = session_interval(req);
                self.dialogs.confirm(&key, session, now);
            }
        }
        None
    }

    /// The final response to a tracked INVITE: 2xx confirms, failure ends the dialog.
    fn dialog_response(
        &mut self,
        now: Instant,
        ctx: ContextId,
        resp: &Message,
        status: StatusCode,
    ) {
        let Some(key) = self.dialog_ctx.get(&ctx).cloned() else {
            return;
        };
        if status.is_success() {
            let session = session_interval(resp);
            if self.dialogs.confirm(&key, session, now)
                && let Some(d) = self.dialogs.get(&key)
            {
                let ue = self.ue_of(&d.phone.clone());
                self.event(
                    now,
                    ue,
                    "call",
                    Outcome::Ok,
                    format!("dialog {} confirmed: INVITE answered {status}", key.call_id),
                );
            }
        } else if status.is_final() && status.as_u16() >= 300 {
            self.dialog_ctx.remove(&ctx);
            if let Some(d) = self.dialogs.end(&key) {
                let ue = self.ue_of(&d.phone);
                self.event(
                    now,
                    ue,
                    "call",
                    Outcome::Info,
                    format!(
                        "dialog {} released: {}",
                        key.call_id,
                        describe_end(&Ended::Failed(status.as_u16()))
                    ),
                );
            }
        }
    }

    fn terminating(
        &mut self,
        now: Instant,
        ctx: ContextId,
        mut req: Message,
        flow: Flow,
    ) -> Decision {
        let method = req.method().cloned().unwrap_or(Method::Options);
        let uri = routing::take_ruri_alias(&req).map(|(u, _, _)| Bytes::from(u));
        routing::strip_toward_phone(&mut req);
        let initial = !routing::in_dialog(&req);
        let phone = self
            .regs
            .iter()
            .find(|r| r.flow == flow)
            .map(|r| r.key.clone());
        if let Some(phone) = &phone
            && let Some(refused) =
                self.track_dialog(now, ctx, &req, &method, initial, phone, Side::Terminating)
        {
            return refused;
        }
        let record_route =
            (initial && routing::is_dialog_forming(&method)).then(|| self.record_route(&flow));
        if method != Method::Ack {
            let reg = phone
                .as_ref()
                .and_then(|k| self.regs.get(k))
                .map(Registration::ue_ref);
            if let Some(ue) = reg {
                self.event(
                    now,
                    ue,
                    "route",
                    Outcome::Ok,
                    format!("{method} to the phone over {}", flow.describe()),
                );
            }
        }
        Decision::Forward {
            request: req,
            targets: vec![Target {
                uri,
                destination: Some(flow.peer()),
            }],
            mode: ForkMode::Parallel,
            record_route,
        }
    }

    // ---- REGISTER ----

    fn on_register(
        &mut self,
        now: Instant,
        ctx: ContextId,
        mut req: Message,
        arrival: &Arrival,
    ) -> Decision {
        let Some(parts) = register::parts(&req) else {
            return self.respond(&req, StatusCode::BAD_REQUEST);
        };
        let ue = UeRef {
            imsi: None,
            impi: parts.impi.clone(),
            impu: Some(parts.impu.clone()),
        };
        let ingress = arrival.ingress.clone();
        let mut offer = None;
        let mut over_set = None;
        let mut ue_port_s = None;
        let integrity;
        match ingress.protection {
            Protection::None => {
                self.event(
                    now,
                    ue.clone(),
                    "register",
                    Outcome::Info,
                    format!(
                        "REGISTER received unprotected over {} {}",
                        ingress.transport, ingress.source
                    ),
                );
                match sec_agree::on_unprotected_register(&req, &self.s) {
                    Ok(o) => offer = o,
                    Err(r) => return self.refuse_register(now, &req, ue, &r, None),
                }
                if let Some(o) = &offer {
                    ue_port_s = Some(o.chosen.offer.port_s);
                    self.event(
                        now,
                        ue.clone(),
                        "sec-agree",
                        Outcome::Ok,
                        format!(
                            "offer {} chosen: {} (UE spi-c {} spi-s {} port-c {} port-s {})",
                            o.chosen.index,
                            o.chosen.suite(),
                            o.chosen.offer.spi_c,
                            o.chosen.offer.spi_s,
                            o.chosen.offer.port_c,
                            o.chosen.offer.port_s
                        ),
                    );
                } else if !self.s.ipsec() {
                    self.event(
                        now,
                        ue.clone(),
                        "sec-agree",
                        Outcome::Info,
                        "no security agreement: pcscf.ipsec.mode is off".into(),
                    );
                }
                integrity = "no";
            }
            Protection::Esp { .. } | Protection::Kernel => {
                let spi = match ingress.protection {
                    Protection::Esp { spi } => Some(spi),
                    _ => self.sas.as_ref().and_then(|t| {
                        t.by_inbound_flow(ingress.source, ingress.local)
                            .map(|(_, sa)| sa.spi)
                    }),
                };
                let found = spi.and_then(|spi| {
                    self.sas
                        .as_ref()
                        .and_then(|t| t.by_inbound_spi(spi))
                        .map(|(set, sa)| (set.id, set.state, sa.role, set.bundle.remote.port_s))
                });
                let Some((id, state, role, port_s)) = found else {
                    return self.forbid(now, &req, "403: REGISTER on an unknown SA".into());
                };
                if role != SaRole::InboundToServer {
                    return self.forbid(
                        now,
                        &req,
                        "403: REGISTER sent to the protected client port".into(),
                    );
                }
                self.event(
                    now,
                    ue.clone(),
                    "register",
                    Outcome::Info,
                    format!(
                        "REGISTER received over IPsec ({id}, {} SAs) from {}",
                        match state {
                            SaState::Temporary => "new",
                            SaState::Established => "established",
                            SaState::Old => "old",
                        },
                        ingress.source
                    ),
                );
                let sec = self.set_sec.get(&id).cloned();
                if let Some(sec) = &sec {
                    let checked =
                        sec_agree::check_verify(&req, &sec.sent_server, true).and_then(|()| {
                            if state == SaState::Temporary {
                                sec_agree::check_client_unchanged(&req, &sec.client)
                            } else {
                                Ok(())
                            }
                        });
                    if let Err(r) = checked {
                        let discard = (state == SaState::Temporary).then_some(id);
                        return self.refuse_register(now, &req, ue, &r, discard);
                    }
                    self.event(
                        now,
                        ue.clone(),
                        "sec-verify",
                        Outcome::Ok,
                        "Security-Verify matches the Security-Server sent".into(),
                    );
                }
                if state != SaState::Temporary
                    && sec_agree::ask(&req) == sec_agree::Ask::Required
                    && req.has_header(&HeaderName::SECURITY_CLIENT)
                {
                    // Re-registration over established SAs: new SAs if it is challenged.
                    match sec_agree::choose(&req, &self.s) {
                        Ok(o) => {
                            ue_port_s = Some(o.chosen.offer.port_s);
                            offer = Some(o);
                        }
                        Err(r) => self.event(
                            now,
                            ue.clone(),
                            "sec-agree",
                            Outcome::Info,
                            format!(
                                "re-registration offer not usable, keeping the SAs: {}",
                                r.reason()
                            ),
                        ),
                    }
                }
                if ue_port_s.is_none() {
                    ue_port_s = Some(port_s);
                }
                over_set = Some(id);
                integrity = "yes";
            }
        }
        sec_agree::strip_for_forwarding(&mut req);
        register::set_integrity_protected(&mut req, integrity);
        let flow = match ue_port_s {
            Some(port) if offer.is_some() || over_set.is_some() => Flow::Protected {
                ue: SocketAddr::new(ingress.source.ip(), port),
            },
            _ => Flow::from_arrival(&ingress.transport, ingress.source, ingress.flow),
        };
        let alias = if ingress.protection == Protection::None && offer.is_none() {
            routing::add_contact_alias(&mut req, ingress.source, &ingress.transport)
        } else {
            None
        };
        let token = self.s.flow_key.encode(&flow, self.s.boot);
        register::add_path(&mut req, &token, &self.s.host_port());
        register::set_visited_network(&mut req, &self.s.visited_network_id);
        let icid = self.unique();
        register::set_charging_vector(&mut req, &icid, &self.s.listen.ip().to_string());
        let call_id = req.call_id().ok().map(|c| c.as_str().to_owned());
        self.pending.insert(
            ctx,
            PendingRegister {
                parts,
                flow,
                source: ingress.source,
                offer,
                over_set,
                alias,
                call_id,
            },
        );
        self.toward_phone.insert(ctx);
        let icscf = Peer::new(Transport::Udp, self.s.icscf);
        Decision::forward(req, Target::next_hop().via(icscf))
    }

    fn refuse_register(
        &mut self,
        now: Instant,
        req: &Message,
        ue: UeRef,
        r: &Refusal,
        discard: Option<SaSetId>,
    ) -> Decision {
        self.stats.sec_agree_refused += 1;
        let step = match r {
            Refusal::VerifyMismatch(_) | Refusal::ClientChanged(_) => "sec-verify",
            _ => "sec-agree",
        };
        self.event(now, ue, step, Outcome::Failed, r.reason());
        if let (Some(id), Some(t)) = (discard, self.sas.as_mut()) {
            let acts = t.discard(id);
            self.push_sa(now, acts, true);
        }
        let tag = self.unique();
        match r.response(req, &self.s, &tag) {
            Some(resp) => Decision::Respond(resp),
            None => self.respond(req, r.status()),
        }
    }

    // ---- responses ----

    fn on_response(&mut self, now: Instant, ctx: ContextId, mut resp: Message) -> Message {
        let status = resp.status().unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
        let keys = if status == StatusCode::UNAUTHORIZED
            || status == StatusCode::PROXY_AUTHENTICATION_REQUIRED
        {
            register::take_ck_ik(&mut resp)
        } else {
            None
        };
        self.dialog_response(now, ctx, &resp, status);
        if let Some(p) = self.pending.get(&ctx).cloned() {
            let ue = UeRef {
                imsi: None,
                impi: p.parts.impi.clone(),
                impu: Some(p.parts.impu.clone()),
            };
            if status == StatusCode::UNAUTHORIZED {
                self.on_challenge(now, &mut resp, &p, ue, keys);
            } else if status.is_success() {
                self.on_registered(now, ctx, &resp, &p);
                routing::strip_contact_aliases(&mut resp);
            } else if status.is_final() {
                self.event(
                    now,
                    ue,
                    "register",
                    Outcome::Failed,
                    format!("REGISTER answered {status} by the network"),
                );
                if let Some(id) = p.over_set
                    && let Some(t) = self.sas.as_mut()
                    && t.get(id).is_some_and(|s| s.state == SaState::Temporary)
                {
                    let acts = t.discard(id);
                    self.push_sa(now, acts, true);
                }
                // The registration was dropped meanwhile (network de-registration): its SAs
                // were kept for this answer only.
                if let Some(contact) = p.parts.contact.clone() {
                    let key = RegKey {
                        impu: p.parts.impu.clone(),
                        contact,
                    };
                    if self.regs.get(&key).is_none()
                        && let Some(t) = self.sas.as_mut()
                        && t.established(&key).is_some()
                    {
                        let acts = t.remove_ue(&key, RemovalReason::NetworkDeregistered);
                        self.push_sa(now, acts, true);
                    }
                }
            }
        }
        if self.toward_phone.contains(&ctx) {
            routing::strip_toward_phone(&mut resp);
        }
        resp
    }

    fn on_challenge(
        &mut self,
        now: Instant,
        resp: &mut Message,
        p: &PendingRegister,
        ue: UeRef,
        keys: Option<(imslab_types::Ck, imslab_types::Ik)>,
    ) {
        let had_keys = keys.is_some();
        self.event(
            now,
            ue.clone(),
            "challenge",
            Outcome::Info,
            format!(
                "401 relayed to the phone{}",
                if had_keys { ", ck/ik removed" } else { "" }
            ),
        );
        let Some(offer) = &p.offer else { return };
        let Some((ck, ik)) = keys else {
            self.event(
                now,
                ue,
                "sec-agree",
                Outcome::Failed,
                "the 401 carries no ck/ik: no SAs can be created".into(),
            );
            return;
        };
        let Some(contact) = p.parts.contact.clone() else {
            return;
        };
        let key = RegKey {
            impu: p.parts.impu.clone(),
            contact,
        };
        let esp_keys = EspKeys::derive(offer.chosen.suite(), &ik, &ck);
        let remote = imslab_ipsec::Endpoint::from_offer(p.source.ip(), &offer.chosen);
        let local_ip = self.s.listen.ip();
        let Some(table) = self.sas.as_mut() else {
            return;
        };
        let created = match table.create_temporary(key.clone(), local_ip, remote, esp_keys, now) {
            Ok(c) => c,
            Err(e) => {
                self.event(now, ue, "ipsec-sa", Outcome::Failed, format!("no SAs: {e}"));
                return;
            }
        };
        let server = security_server(
            &offer.chosen,
            &created.local,
            &offer.client,
            &self.s.preference,
            Advertise::ChosenOnly,
        );
        let _ = resp.push_header(HeaderName::SECURITY_SERVER, sec_header::print_list(&server));
        self.set_sec.insert(
            created.id,
            SetSecurity {
                key,
                sent_server: server,
                client: offer.client.clone(),
            },
        );
        self.event(
            now,
            ue,
            "sec-agree",
            Outcome::Ok,
            format!(
                "Security-Server sent: {} P-CSCF spi-c {} spi-s {} port-c {} port-s {}",
                offer.chosen.suite(),
                created.local.spi_c,
                created.local.spi_s,
                created.local.ports.port_c,
                created.local.ports.port_s
            ),
        );
        // Installed before the 401 leaves (it goes unprotected, outside the SAs' selectors):
        // a phone answering at once over the new SAs must find them in place.
        self.push_sa(now, created.actions, false);
    }

    fn on_registered(&mut self, now: Instant, ctx: ContextId, resp: &Message, p: &PendingRegister) {
        let ue = UeRef {
            imsi: None,
            impi: p.parts.impi.clone(),
            impu: Some(p.parts.impu.clone()),
        };
        if p.parts.wildcard {
            let keys: Vec<RegKey> = self
                .regs
                .iter()
                .filter(|r| r.key.impu == p.parts.impu)
                .map(|r| r.key.clone())
                .collect();
            for k in keys {
                if let Some(r) = self.regs.get(&k).cloned() {
                    self.forget_registration(
                        now,
                        &r,
                        RemovalReason::Deregistered,
                        "deregistered (Contact: *)".into(),
                    );
                }
            }
            return;
        }
        let Some(contact) = p.parts.contact.clone() else {
            return;
        };
        let key = RegKey {
            impu: p.parts.impu.clone(),
            contact,
        };
        let aliased = p.alias.as_ref().map(|(_, a)| a.as_str());
        let granted = register::granted_expiry(resp, &key.contact, aliased, p.parts.expires);
        let expires = match granted {
            None | Some(0) => {
                match self.regs.get(&key).cloned() {
                    Some(r) => self.forget_registration(
                        now,
                        &r,
                        RemovalReason::Deregistered,
                        "deregistered by the phone".into(),
                    ),
                    None => {
                        self.event(now, ue, "deregistered", Outcome::Ok, "deregistered".into());
                        if let Some(t) = self.sas.as_mut() {
                            let acts = t.remove_ue(&key, RemovalReason::Deregistered);
                            self.push_sa(now, acts, true);
                        }
                    }
                }
                return;
            }
            Some(e) => e,
        };
        let lifetime = Duration::from_secs(u64::from(expires));
        let mut flow = p.flow;
        let mut protected = false;
        if let Some(id) = p.over_set
            && let Some(t) = self.sas.as_mut()
        {
            let state_port = t.get(id).map(|s| (s.state, s.bundle.remote));
            match state_port {
                Some((SaState::Temporary, remote)) => {
                    match t.authenticated(id, lifetime, now) {
                        Ok(acts) => self.push_sa(now, acts, false),
                        Err(e) => tracing::warn!("pcscf: SA set {id}: {e}"),
                    }
                    flow = Flow::Protected {
                        ue: SocketAddr::new(remote.ip, remote.port_s),
                    };
                    protected = true;
                }
                Some((_, remote)) => {
                    // Re-registration over the SAs without a new challenge.
                    let established = t.established(&key).map(|s| s.id).unwrap_or(id);
                    if let Err(e) = t.extend(established, lifetime, now) {
                        tracing::debug!("pcscf: SA set {established}: {e}");
                    }
                    flow = Flow::Protected {
                        ue: SocketAddr::new(remote.ip, remote.port_s),
                    };
                    protected = true;
                }
                None => {}
            }
        }
        let reg = Registration {
            key: key.clone(),
            impi: p.parts.impi.clone(),
            flow,
            contact_alias: p.alias.as_ref().map(|(_, a)| a.clone()),
            service_route: register::service_route(resp),
            associated: register::associated_uris(resp),
            expires: now + lifetime,
            protected,
            call_id: p.call_id.clone(),
        };
        let renewed = self.regs.insert(reg.clone()).is_some();
        let sa_info = p.over_set.and_then(|_| {
            let id = self.sas.as_ref()?.established(&key)?.id;
            self.sa_info(id)
        });
        self.out
            .push(Output::Store(StoreOp::PutRegistration(Box::new(
                PcscfRegistration {
                    impu: key.impu.clone(),
                    impi: reg.impi.clone(),
                    contact: key.contact.clone(),
                    flow: Some(self.s.flow_key.encode(&flow, self.s.boot)),
                    received: Some(p.source.to_string()),
                    service_route: reg.service_route.clone(),
                    associated_uris: reg.associated.clone(),
                    sa_info,
                    call_id: reg.call_id.clone(),
                    expires_at: self.wall(reg.expires),
                },
            ))));
        self.event(
            now,
            reg.ue_ref(),
            "registered",
            Outcome::Ok,
            format!(
                "{} for {expires} s over {}; Service-Route {}; P-Associated-URI {}",
                if renewed {
                    "re-registered"
                } else {
                    "registered"
                },
                flow.describe(),
                if reg.service_route.is_empty() {
                    "none".to_owned()
                } else {
                    reg.service_route.join(", ")
                },
                reg.associated.join(", ")
            ),
        );
        let _ = ctx;
        if self.s.reg_event && !self.subs_by_impu.contains_key(&key.impu) {
            self.subscribe(now, &reg);
        } else if let Some(call_id) = self.subs_by_impu.get(&key.impu).cloned()
            && let Some(s) = self.subs.get_mut(&call_id)
            && matches!(s.state, SubState::Ending { .. })
        {
            s.state = SubState::Active;
        }
    }

    /// What the store keeps of an established SA set so a restarted P-CSCF can put it back
    /// (userspace ESP): SPIs, ports, the ESP keys, what sec-agree exchanged, the sequence base.
    fn sa_info(&self, id: SaSetId) -> Option<String> {
        let set = self.sas.as_ref()?.get(id)?;
        let b = &set.bundle;
        let sec = self.set_sec.get(&id);
        Some(
            serde_json::json!({
                "set": id.0,
                "suite": b.suite().to_string(),
                "alg": b.suite().integrity.token(),
                "ealg": b.suite().encryption.token(),
                "ik_esp": hex::encode(b.keys.integrity().expose()),
                "ck_esp": hex::encode(b.keys.encryption().expose()),
                "seq_base": self.seq_base.get(&id).copied().unwrap_or(0),
                "server": sec.map(|s| sec_header::print_list(&s.sent_server)),
                "client": sec.map(|s| sec_header::print_list(&s.client)),
                "pcscf": {"spi_c": b.local.spi_c.0, "spi_s": b.local.spi_s.0,
                          "port_c": b.local.port_c, "port_s": b.local.port_s},
                "ue": {"ip": b.remote.ip.to_string(), "spi_c": b.remote.spi_c.0,
                       "spi_s": b.remote.spi_s.0, "port_c": b.remote.port_c,
                       "port_s": b.remote.port_s},
            })
            .to_string(),
        )
    }

    /// Puts back the SA set of a restored registration from its stored `sa_info` (userspace
    /// ESP). Returns the new `sa_info` (its sequence base moved on), or why not.
    fn restore_sas(
        &mut self,
        now: Instant,
        key: &RegKey,
        info: &str,
        lifetime: Duration,
    ) -> Result<String, String> {
        let v: serde_json::Value =
            serde_json::from_str(info).map_err(|e| format!("stored SA data unreadable: {e}"))?;
        let text = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
        let num = |o: &str, k: &str| {
            v.get(o)
                .and_then(|x| x.get(k))
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        let missing =
            || "stored SA data lacks keys or SPIs (written before restore existed)".to_owned();
        let alg: imslab_ipsec::IntegrityAlg = text("alg")
            .ok_or_else(missing)?
            .parse()
            .map_err(|_| missing())?;
        let ealg: imslab_ipsec::EncryptionAlg = text("ealg")
            .ok_or_else(missing)?
            .parse()
            .map_err(|_| missing())?;
        let ik = hex::decode(text("ik_esp").ok_or_else(missing)?).map_err(|_| missing())?;
        let ck = hex::decode(text("ck_esp").ok_or_else(missing)?).map_err(|_| missing())?;
        let keys = EspKeys::from_raw(imslab_ipsec::CipherSuite::new(alg, ealg), &ik, &ck)
            .map_err(|e| e.to_string())?;
        let ue_ip: std::net::IpAddr = v
            .get("ue")
            .and_then(|u| u.get("ip"))
            .and_then(serde_json::Value::as_str)
            .and_then(|t| t.parse().ok())
            .ok_or_else(missing)?;
        let endpoint = |o: &str, ip| -> Option<imslab_ipsec::Endpoint> {
            Some(imslab_ipsec::Endpoint {
                ip,
                spi_c: Spi(num(o, "spi_c")?),
                spi_s: Spi(num(o, "spi_s")?),
                port_c: u16::try_from(num(o, "port_c")?).ok()?,
                port_s: u16::try_from(num(o, "port_s")?).ok()?,
            })
        };
        let local = endpoint("pcscf", self.s.listen.ip()).ok_or_else(missing)?;
        let remote = endpoint("ue", ue_ip).ok_or_else(missing)?;
        let base = v
            .get("seq_base")
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        let resume = base
            .checked_add(SEQ_JUMP)
            .ok_or("sequence numbers exhausted")?;
        let bundle = imslab_ipsec::SaBundle::new(local, remote, keys);
        let table = self.sas.as_mut().ok_or("IPsec is off")?;
        let grace = table.config().grace;
        let (id, acts) = table
            .restore(key.clone(), bundle.clone(), now + lifetime + grace)
            .map_err(|e| e.to_string())?;
        let list = |k: &str| {
            text(k)
                .and_then(|t| sec_header::parse_value(t).ok())
                .unwrap_or_default()
        };
        self.set_sec.insert(
            id,
            SetSecurity {
                key: key.clone(),
                sent_server: list("server"),
                client: list("client"),
            },
        );
        self.seq_base.insert(id, resume);
        self.push_sa(now, acts, false);
        self.out.push(Output::ResumeEsp {
            bundle,
            last: resume,
        });
        self.sa_info(id)
            .ok_or_else(|| "restored set vanished".to_owned())
    }

    /// Drops a registration and its SAs (after this call's transmissions), and lets its
    /// subscription end when it was the identity's last one.
    fn forget_registration(
        &mut self,
        now: Instant,
        reg: &Registration,
        reason: RemovalReason,
        why: String,
    ) {
        self.regs.remove(&reg.key);
        self.out.push(Output::Store(StoreOp::RemoveRegistration {
            impu: reg.key.impu.clone(),
            contact: reg.key.contact.clone(),
        }));
        let outcome = match reason {
            RemovalReason::Deregistered => Outcome::Ok,
            _ => Outcome::Info,
        };
        self.event(now, reg.ue_ref(), "deregistered", outcome, why);
        // A REGISTER of this phone is in progress (the S-CSCF's NOTIFY can overtake the 200 OK
        // to a de-REGISTER): its response still goes out over the SAs, which are removed when
        // it is forwarded.
        let awaiting = self.pending.values().any(|p| {
            p.parts.impu == reg.key.impu && p.parts.contact.as_deref() == Some(&reg.key.contact)
        });
        if awaiting && reason == RemovalReason::NetworkDeregistered {
            return self.end_subscription_if_last(now, &reg.key.impu);
        }
        if matches!(
            reason,
            RemovalReason::NetworkDeregistered | RemovalReason::Expired
        ) && let Some(t) = self.sas.as_ref()
        {
            // TS 24.229 §5.2.3: the S-CSCF's NOTIFY to the phone is still forwarded over its
            // SAs; they go once it (and the phone's answer) had time to pass.
            let until = now + SA_LINGER;
            for set in t.sets_of(&reg.key) {
                self.sa_linger.push(Reverse((until, set.id, reason)));
            }
            return self.end_subscription_if_last(now, &reg.key.impu);
        }
        if let Some(t) = self.sas.as_mut() {
            let acts = t.remove_ue(&reg.key, reason);
            self.push_sa(now, acts, true);
        }
        self.end_subscription_if_last(now, &reg.key.impu);
    }

    /// Lets the subscription of `impu` linger and end when no registration of it is left.
    fn end_subscription_if_last(&mut self, now: Instant, impu: &Impu) {
        let others = self.regs.iter().any(|r| &r.key.impu == impu);
        if !others
            && let Some(call_id) = self.subs_by_impu.get(impu).cloned()
            && let Some(s) = self.subs.get_mut(&call_id)
        {
            let until = now + SUBSCRIPTION_LINGER;
            s.state = SubState::Ending { until };
            self.sub_timers.push(Reverse((until, call_id)));
        }
    }

    // ---- requests to the P-CSCF itself ----

    fn uas(&mut self, now: Instant, req: Message, method: &Method) -> Decision {
        match method {
            Method::Notify => self.on_notify(now, &req),
            Method::Options => {
                let tag = self.unique();
                match req.response(StatusCode::OK, Some(&tag)) {
                    Ok(mut r) => {
                        let _ = r.push_header(HeaderName::ALLOW, "OPTIONS, NOTIFY");
                        Decision::Respond(r)
                    }
                    Err(_) => self.respond(&req, StatusCode::OK),
                }
            }
            _ => {
                let tag = self.unique();
                match req.response(StatusCode::METHOD_NOT_ALLOWED, Some(&tag)) {
                    Ok(mut r) => {
                        let _ = r.push_header(HeaderName::ALLOW, "OPTIONS, NOTIFY");
                        Decision::Respond(r)
                    }
                    Err(_) => self.respond(&req, StatusCode::METHOD_NOT_ALLOWED),
                }
            }
        }
    }

    fn on_notify(&mut self, now: Instant, req: &Message) -> Decision {
        let call_id = req.call_id().ok().map(|c| c.as_str().to_owned());
        let to_tag = req
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned));
        let matches = call_id
            .as_ref()
            .and_then(|c| self.subs.get(c))
            .is_some_and(|s| Some(&s.local_tag) == to_tag.as_ref());
        let is_reg = req
            .typed::<EventHeader<'_>>(&HeaderName::EVENT)
            .and_then(Result::ok)
            .is_some_and(|e| e.package.eq_ignore_ascii_case("reg"));
        let (Some(call_id), true, true) = (call_id, matches, is_reg) else {
            return self.respond(req, StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST);
        };
        let from_tag = req
            .from_header()
            .ok()
            .and_then(|f| f.tag().map(str::to_owned));
        let cseq = req.cseq().ok().map(|c| c.seq);
        let contact = req
            .contacts()
            .filter_map(Result::ok)
            .find_map(|c| c.addr().map(|a| a.uri.to_string()));
        let terminated = req
            .typed::<SubscriptionState<'_>>(&HeaderName::SUBSCRIPTION_STATE)
            .and_then(Result::ok)
            .is_some_and(|s| s.state.eq_ignore_ascii_case("terminated"));
        let body = std::str::from_utf8(req.body()).ok().map(str::to_owned);
        let (impu, last_version) = match self.subs.get_mut(&call_id) {
            Some(s) => {
                if s.remote_tag.is_none() {
                    s.remote_tag = from_tag;
                }
                if let Some(c) = cseq {
                    s.remote_cseq = Some(c);
                }
                if let Some(c) = contact {
                    s.remote_target = c;
                }
                (s.impu.clone(), s.version)
            }
            None => return self.respond(req, StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST),
        };
        if let Some(body) = body.filter(|b| !b.trim().is_empty()) {
            match reg_event::parse_reginfo(&body) {
                Ok(info) => {
                    let stale =
                        matches!((info.version, last_version), (Some(v), Some(l)) if v <= l);
                    if !stale {
                        if let Some(s) = self.subs.get_mut(&call_id) {
                            s.version = info.version.or(s.version);
                        }
                        self.apply_reginfo(now, &info);
                    }
                }
                Err(e) => self.event(
                    now,
                    UeRef::impu(impu.clone()),
                    "reg-event",
                    Outcome::Failed,
                    format!("NOTIFY body refused: {e}"),
                ),
            }
        }
        if terminated {
            self.drop_subscription(&call_id);
            self.event(
                now,
                UeRef::impu(impu),
                "reg-event",
                Outcome::Info,
                "subscription terminated by the S-CSCF".into(),
            );
        } else {
            self.store_subscription(&call_id);
        }
        self.respond(req, StatusCode::OK)
    }

    fn apply_reginfo(&mut self, now: Instant, info: &Reginfo) {
        for r in &info.registrations {
            let affected: Vec<Registration> = self
                .regs
                .iter()
                .filter(|reg| {
                    same_identity(reg.key.impu.as_str(), &r.aor)
                        || reg
                            .associated
                            .first()
                            .is_some_and(|d| same_identity(d, &r.aor))
                })
                .cloned()
                .collect();
            for reg in affected {
                let why = if r.state.eq_ignore_ascii_case("terminated") {
                    let ev = r
                        .contacts
                        .iter()
                        .find_map(|c| c.event.clone())
                        .unwrap_or_else(|| "terminated".into());
                    Some(ev)
                } else {
                    r.contacts
                        .iter()
                        .filter(|c| c.state.eq_ignore_ascii_case("terminated"))
                        .find(|c| {
                            same_identity(&c.uri, &reg.key.contact)
                                || reg
                                    .contact_alias
                                    .as_deref()
                                    .is_some_and(|a| same_identity(&c.uri, a))
                        })
                        .map(|c| c.event.clone().unwrap_or_else(|| "terminated".into()))
                };
                if let Some(ev) = why {
                    self.stats.network_deregistered += 1;
                    self.forget_registration(
                        now,
                        &reg,
                        RemovalReason::NetworkDeregistered,
                        format!("reg-event NOTIFY: {} {ev}", r.aor),
                    );
                }
            }
        }
    }

    // ---- reg-event subscriptions ----

    /// Resolves a route or URI text to where the proxy sends it.
    fn resolve(&self, text: &str) -> Option<Peer> {
        let inner = text.trim();
        let na = NameAddr::parse_header(inner, "Route").ok()?;
        let sip = na.uri.as_sip()?;
        let transport = match sip.transport() {
            Some(t) => Transport::from_token(t),
            None => Transport::Udp,
        };
        let addr = match &sip.host {
            Host::Ip(ip) => SocketAddr::new(*ip, sip.port_or_default()),
            Host::Name(n) => {
                let a = self.s.hosts.get(&n.to_ascii_lowercase())?;
                SocketAddr::new(a.ip(), sip.port.unwrap_or_else(|| a.port()))
            }
        };
        Some(Peer::new(transport, addr))
    }

    fn subscribe(&mut self, now: Instant, reg: &Registration) {
        let ue = reg.ue_ref();
        let target = reg
            .service_route
            .first()
            .cloned()
            .unwrap_or_else(|| format!("<{}>", reg.key.impu));
        let Some(peer) = self.resolve(&target) else {
            self.event(
                now,
                ue,
                "reg-event",
                Outcome::Failed,
                format!("cannot SUBSCRIBE: no address for {target} (add it to pcscf.hosts)"),
            );
            return;
        };
        let call_id = format!("{}-reg@{}", self.unique(), self.s.listen.ip());
        let local_tag = self.unique();
        let lifetime = Duration::from_secs(u64::from(self.s.reg_event_expires));
        let sub = Subscription {
            impu: reg.key.impu.clone(),
            call_id: call_id.clone(),
            local_tag,
            remote_tag: None,
            local_cseq: 1,
            remote_cseq: None,
            remote_target: reg.key.impu.to_string(),
            route_set: reg.service_route.clone(),
            expires: now + lifetime,
            refresh_at: refresh_time(now, lifetime),
            version: None,
            state: SubState::Pending,
        };
        let via = self.proxy.via_for(&peer);
        let msg = sub.subscribe(&via, &self.s.uri(), self.s.reg_event_expires);
        match self.proxy.send_request(now, msg, peer) {
            Ok((id, ev)) => {
                self.uac.insert(id, call_id.clone());
                self.subs_by_impu.insert(sub.impu.clone(), call_id.clone());
                self.subs.insert(call_id, sub);
                self.event(
                    now,
                    ue,
                    "reg-event",
                    Outcome::Info,
                    "SUBSCRIBE to the reg event sent to the S-CSCF".into(),
                );
                self.absorb(now, ev);
            }
            Err(e) => self.event(
                now,
                ue,
                "reg-event",
                Outcome::Failed,
                format!("SUBSCRIBE not sent: {e}"),
            ),
        }
    }

    fn refresh(&mut self, now: Instant, call_id: &str) {
        let Some(s) = self.subs.get_mut(call_id) else {
            return;
        };
        s.local_cseq += 1;
        let lifetime = Duration::from_secs(u64::from(self.s.reg_event_expires));
        s.refresh_at = refresh_time(now, lifetime);
        let sub = s.clone();
        let first = sub.route_set.first().cloned();
        let peer = first
            .as_deref()
            .and_then(|r| self.resolve(r))
            .or_else(|| self.resolve(&format!("<{}>", sub.remote_target)));
        let Some(peer) = peer else {
            self.drop_subscription(call_id);
            return;
        };
        let via = self.proxy.via_for(&peer);
        let msg = sub.subscribe(&via, &self.s.uri(), self.s.reg_event_expires);
        if let Ok((id, ev)) = self.proxy.send_request(now, msg, peer) {
            self.uac.insert(id, call_id.to_owned());
            self.absorb(now, ev);
        }
        self.sub_timers
            .push(Reverse((sub.refresh_at, call_id.to_owned())));
    }

    fn on_uac_response(&mut self, now: Instant, id: ClientId, resp: &Message) {
        let Some(status) = resp.status().filter(|s| s.is_final()) else {
            return;
        };
        let Some(call_id) = self.uac.remove(&id) else {
            return;
        };
        if !status.is_success() {
            self.subscribe_failed(now, &call_id, status);
            return;
        }
        let to_tag = resp
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned));
        let contact = resp
            .contacts()
            .filter_map(Result::ok)
            .find_map(|c| c.addr().map(|a| a.uri.to_string()));
        let mut rr: Vec<String> = resp
            .record_routes()
            .filter_map(Result::ok)
            .map(|n| n.to_string())
            .collect();
        rr.reverse();
        let granted = resp.expires().ok().flatten();
        let Some(s) = self.subs.get_mut(&call_id) else {
            return;
        };
        if s.remote_tag.is_none() {
            s.remote_tag = to_tag;
        }
        if let Some(c) = contact {
            s.remote_target = c;
            s.route_set = rr;
        }
        let lifetime = Duration::from_secs(u64::from(granted.unwrap_or(self.s.reg_event_expires)));
        s.expires = now + lifetime;
        s.refresh_at = refresh_time(now, lifetime);
        let first = s.state == SubState::Pending;
        if first {
            s.state = SubState::Active;
        }
        let impu = s.impu.clone();
        let at = s.refresh_at;
        self.sub_timers.push(Reverse((at, call_id.clone())));
        self.store_subscription(&call_id);
        if first {
            self.event(
                now,
                UeRef::impu(impu),
                "reg-event",
                Outcome::Ok,
                format!("subscribed to the reg event for {} s", lifetime.as_secs()),
            );
        }
    }

    fn subscribe_failed(&mut self, now: Instant, call_id: &str, status: StatusCode) {
        let Some(impu) = self.subs.get(call_id).map(|s| s.impu.clone()) else {
            return;
        };
        self.drop_subscription(call_id);
        self.event(
            now,
            UeRef::impu(impu),
            "reg-event",
            Outcome::Failed,
            format!("reg-event SUBSCRIBE failed: {status}"),
        );
    }

    fn drop_subscription(&mut self, call_id: &str) {
        if let Some(s) = self.subs.remove(call_id) {
            if self.subs_by_impu.get(&s.impu).map(String::as_str) == Some(call_id) {
                self.subs_by_impu.remove(&s.impu);
            }
            self.uac.retain(|_, c| c != call_id);
            self.out.push(Output::Store(StoreOp::RemoveSubscription {
                call_id: s.call_id,
                local_tag: s.local_tag,
            }));
        }
    }

    fn store_subscription(&mut self, call_id: &str) {
        let Some(s) = self.subs.get(call_id) else {
            return;
        };
        let row = RegSubscription {
            role: SubscriptionRole::Subscriber,
            impu: s.impu.clone(),
            watcher: self.s.uri(),
            call_id: s.call_id.clone(),
            local_tag: s.local_tag.clone(),
            remote_tag: s.remote_tag.clone().unwrap_or_default(),
            local_cseq: i64::from(s.local_cseq),
            remote_cseq: s.remote_cseq.map_or(0, i64::from),
            remote_target: s.remote_target.clone(),
            route_set: s.route_set.clone(),
            version: s.version.and_then(|v| i64::try_from(v).ok()).unwrap_or(0),
            expires_at: self.wall(s.expires),
        };
        self.out
            .push(Output::Store(StoreOp::PutSubscription(Box::new(row))));
    }

    fn subscription_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, call_id))) = self.sub_timers.peek().cloned() {
            if at > now {
                break;
            }
            self.sub_timers.pop();
            let Some(s) = self.subs.get(&call_id) else {
                continue;
            };
            match s.state {
                SubState::Ending { until } if until <= now => self.drop_subscription(&call_id),
                SubState::Active if s.refresh_at <= now => self.refresh(now, &call_id),
                SubState::Pending | SubState::Active if s.expires <= now => {
                    self.drop_subscription(&call_id);
                }
                _ => {}
            }
        }
    }
}

/// When to refresh a subscription granted `lifetime`: at nine tenths of it, and at least
/// 5 s before it runs out.
fn refresh_time(now: Instant, lifetime: Duration) -> Instant {
    let early = lifetime / 10;
    now + lifetime
        .saturating_sub(early.max(Duration::from_secs(5)))
        .max(Duration::from_secs(1))
}

/// The session interval a request or response asks for (RFC 4028 Session-Expires).
fn session_interval(msg: &Message) -> Option<Duration> {
    let v = msg.header_str(&HeaderName::SESSION_EXPIRES)?.ok()?;
    let secs: u64 = v.split(';').next()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

fn describe_end(e: &Ended) -> String {
    match e {
        Ended::Bye => "BYE".into(),
        Ended::Failed(code) => format!("INVITE failed with {code}"),
        Ended::TimedOut(DialogState::Early) => "no final response within Timer C".into(),
        Ended::TimedOut(DialogState::Confirmed) => {
            "no BYE or refresh within the session interval".into()
        }
    }
}
