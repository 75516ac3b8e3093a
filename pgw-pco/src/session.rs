//! The P-GW as pure code: GTPv2-C datagrams in, datagrams, tunnel updates and per-UE events
//! out (TS 29.274 §7; TS 23.401 §5.3.2 PDN connection establishment).
//!
//! [`Pgw`] does no I/O and reads no clock: the driver passes `now` and the peer's address, and
//! sends what [`Output`] lists. Requests answered within the retransmission window are answered
//! again from a bounded cache, not processed twice (TS 29.274 §7.6).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use imslab_types::{Function, Imsi, Msisdn, Outcome, UeEvent, UeRef};
use serde::Serialize;

use crate::Error;
use crate::gtpv2::ie::{
    BearerQos, Cause, CauseValue, ChargingId, Ebi, Fteid, IeCodec, OffendingIe, Paa, PdnType,
    Recovery, interface,
};
use crate::gtpv2::msg::{
    self, BearerContextCreated, CreateSessionRequest, CreateSessionResponse, DeleteBearerResponse,
    DeleteSessionRequest, ModifyBearerRequest,
};
use crate::gtpv2::{Header, IeType, Message, MessageType};
use crate::pco::{self, Direction, Pco};
use crate::settings::{ApnSettings, Pools, Selection, Settings};

/// One datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The encoded GTPv2-C message.
    pub bytes: Vec<u8>,
}

/// A change to the user-plane forwarding table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelUpdate {
    /// Packets to these addresses go to the SGW-U F-TEID; G-PDUs for `pgw_teid` go to the TUN.
    Up {
        /// Our S5/S8-U TEID.
        pgw_teid: u32,
        /// The SGW's S5/S8-U F-TEID.
        sgw: Fteid,
        /// The phone's IPv4 address.
        ipv4: Option<Ipv4Addr>,
        /// The phone's /64.
        ipv6_prefix: Option<Ipv6Addr>,
    },
    /// The tunnel is gone.
    Down {
        /// Our S5/S8-U TEID.
        pgw_teid: u32,
    },
}

/// A per-UE diagnosis event; the caller stamps the time with [`PgwEvent::into_ue_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgwEvent {
    /// The phone, when the request named one.
    pub imsi: Option<Imsi>,
    /// Step name: `create-session`, `pco`, `modify-bearer`, `delete-session`, `delete-bearer`.
    pub step: &'static str,
    /// Outcome.
    pub outcome: Outcome,
    /// Why, in words.
    pub reason: Option<String>,
}

impl PgwEvent {
    /// The event in the common timeline form.
    pub fn into_ue_event(self, at: std::time::SystemTime) -> UeEvent {
        UeEvent {
            at,
            function: Function::Pgw,
            ue: UeRef {
                imsi: self.imsi,
                ..UeRef::default()
            },
            step: self.step,
            outcome: self.outcome,
            reason: self.reason,
        }
    }
}

/// What one call produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Datagrams to send.
    pub transmit: Vec<Transmit>,
    /// Per-UE events.
    pub events: Vec<PgwEvent>,
    /// User-plane changes.
    pub tunnels: Vec<TunnelUpdate>,
}

impl Output {
    fn event(
        &mut self,
        imsi: Option<&Imsi>,
        step: &'static str,
        outcome: Outcome,
        reason: impl Into<Option<String>>,
    ) {
        self.events.push(PgwEvent {
            imsi: imsi.cloned(),
            step,
            outcome,
            reason: reason.into(),
        });
    }
}

/// One bearer of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BearerInfo {
    /// EPS bearer id.
    pub ebi: u8,
    /// Our S5/S8-U TEID.
    pub pgw_u_teid: u32,
    /// The SGW's S5/S8-U TEID and address.
    pub sgw_u_teid: Option<u32>,
    /// The SGW's S5/S8-U address.
    pub sgw_u_address: Option<IpAddr>,
    /// QoS class identifier.
    pub qci: u8,
    /// Charging id.
    pub charging_id: u32,
}

/// A session as listed by `imslab pgw sessions` and `/api/v1/pgw/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The subscriber.
    pub imsi: Imsi,
    /// Its MSISDN.
    pub msisdn: Option<Msisdn>,
    /// The APN.
    pub apn: String,
    /// PDN type granted.
    pub pdn_type: String,
    /// The phone's addresses (IPv4 address, IPv6 /64 prefix).
    pub addresses: Vec<IpAddr>,
    /// P-CSCF addresses handed out, in order.
    pub pcscf: Vec<IpAddr>,
    /// What the phone asked for in its PCO.
    pub pco_requests: pco::PcoRequests,
    /// Our S5/S8-C TEID.
    pub pgw_c_teid: u32,
    /// The SGW's S5/S8-C TEID.
    pub sgw_c_teid: u32,
    /// The bearers.
    pub bearers: Vec<BearerInfo>,
}

#[derive(Debug, Clone)]
struct Bearer {
    ebi: Ebi,
    qos: BearerQos,
    pgw_u_teid: u32,
    sgw_u: Option<Fteid>,
    charging_id: ChargingId,
}

#[derive(Debug, Clone)]
struct Session {
    imsi: Imsi,
    msisdn: Option<Msisdn>,
    apn: usize,
    pdn_type: PdnType,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    sgw_c: Fteid,
    peer: SocketAddr,
    pgw_c_teid: u32,
    bearers: Vec<Bearer>,
    pcscf: Vec<IpAddr>,
    pco_requests: pco::PcoRequests,
}

impl Session {
    fn tunnel_up(&self, b: &Bearer) -> Option<TunnelUpdate> {
        b.sgw_u.map(|sgw| TunnelUpdate::Up {
            pgw_teid: b.pgw_u_teid,
            sgw,
            ipv4: self.ipv4,
            ipv6_prefix: self.ipv6,
        })
    }
}

#[derive(Debug, Clone)]
struct Pending {
    to: SocketAddr,
    bytes: Vec<u8>,
    deadline: Instant,
    sent: u32,
    pgw_c_teid: u32,
}

/// Answered requests, by peer and sequence number, oldest first.
#[derive(Debug, Default)]
struct RetransmitCache {
    entries: HashMap<(SocketAddr, u32), CacheEntry>,
    order: VecDeque<((SocketAddr, u32), u64)>,
    next_id: u64,
}

#[derive(Debug)]
struct CacheEntry {
    id: u64,
    request: MessageType,
    at: Instant,
    answer: Vec<u8>,
}

impl RetransmitCache {
    fn get(
        &self,
        now: Instant,
        key: (SocketAddr, u32),
        t: MessageType,
        ttl: Duration,
    ) -> Option<&[u8]> {
        self.entries
            .get(&key)
            .filter(|e| e.request == t && now.saturating_duration_since(e.at) <= ttl)
            .map(|e| e.answer.as_slice())
    }

    fn insert(
        &mut self,
        now: Instant,
        key: (SocketAddr, u32),
        request: MessageType,
        answer: Vec<u8>,
        cap: usize,
        ttl: Duration,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(
            key,
            CacheEntry {
                id,
                request,
                at: now,
                answer,
            },
        );
        self.order.push_back((key, id));
        // Evict the oldest while over capacity or expired; a key answered again later has a
        // newer id, so only its stale position is dropped.
        while let Some(&(k, id)) = self.order.front() {
            let current = self.entries.get(&k).filter(|e| e.id == id);
            let expired = current.is_none_or(|e| now.saturating_duration_since(e.at) > ttl);
            if !expired && self.entries.len() <= cap {
                break;
            }
            self.order.pop_front();
            if current.is_some() {
                self.entries.remove(&k);
            }
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

struct ApnState {
    pools: Pools,
    rr: usize,
}

/// Hash of an IMSI's digits (FNV-1a): stable across runs, for P-CSCF selection.
fn imsi_hash(imsi: &Imsi) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in imsi.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as usize
}

/// The P-GW: sessions, address pools, TEIDs and the retransmission cache.
pub struct Pgw {
    settings: Settings,
    apns: Vec<ApnState>,
    recovery: Recovery,
    sessions: HashMap<u32, Session>,
    by_imsi_apn: HashMap<(Imsi, usize), u32>,
    next_teid: u32,
    next_charging_id: u32,
    next_seq: u32,
    cache: RetransmitCache,
    pending: BTreeMap<u32, Pending>,
}

impl Pgw {
    /// A P-GW with no sessions. `recovery` is the restart counter the driver persisted
    /// (TS 23.007 §18); TEIDs start from it so a restart does not reuse the last run's.
    pub fn new(settings: Settings, recovery: u8) -> Self {
        let apns = settings
            .apns
            .iter()
            .map(|a| ApnState {
                pools: Pools::new(a),
                rr: 0,
            })
            .collect();
        let base = (u32::from(recovery) << 24) | 1;
        Self {
            settings,
            apns,
            recovery: Recovery(recovery),
            sessions: HashMap::new(),
            by_imsi_apn: HashMap::new(),
            next_teid: base,
            next_charging_id: base,
            next_seq: 1,
            cache: RetransmitCache::default(),
            pending: BTreeMap::new(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Our restart counter.
    pub fn recovery(&self) -> u8 {
        self.recovery.0
    }

    /// Number of sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Number of answers held for retransmitted requests.
    pub fn cached_answers(&self) -> usize {
        self.cache.len()
    }

    /// The sessions, sorted by IMSI then APN.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> = self
            .sessions
            .values()
            .map(|s| SessionInfo {
                imsi: s.imsi.clone(),
                msisdn: s.msisdn.clone(),
                apn: self
                    .settings
                    .apns
                    .get(s.apn)
                    .map(|a| a.name.clone())
                    .unwrap_or_default(),
                pdn_type: s.pdn_type.to_string(),
                addresses: s
                    .ipv4
                    .map(IpAddr::V4)
                    .into_iter()
                    .chain(s.ipv6.map(IpAddr::V6))
                    .collect(),
                pcscf: s.pcscf.clone(),
                pco_requests: s.pco_requests,
                pgw_c_teid: s.pgw_c_teid,
                sgw_c_teid: s.sgw_c.teid,
                bearers: s
                    .bearers
                    .iter()
                    .map(|b| BearerInfo {
                        ebi: b.ebi.0,
                        pgw_u_teid: b.pgw_u_teid,
                        sgw_u_teid: b.sgw_u.map(|f| f.teid),
                        sgw_u_address: b.sgw_u.and_then(|f| {
                            f.ipv4.map(IpAddr::V4).or_else(|| f.ipv6.map(IpAddr::V6))
                        }),
                        qci: b.qos.qci,
                        charging_id: b.charging_id.0,
                    })
                    .collect(),
            })
            .collect();
        v.sort_by(|a, b| (a.imsi.as_str(), &a.apn).cmp(&(b.imsi.as_str(), &b.apn)));
        v
    }

    fn alloc_teid(&mut self) -> u32 {
        loop {
            let t = self.next_teid;
            self.next_teid = self.next_teid.wrapping_add(1);
            if t != 0 && !self.sessions.contains_key(&t) {
                return t;
            }
        }
    }

    /// Handles one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Output {
        let mut out = Output::default();
        let messages = match Message::decode_datagram(data) {
            Ok(m) => m,
            Err(Error::UnsupportedVersion(_)) => {
                // §7.7.1: answer with Version Not Supported Indication, then discard.
                let m = Message::new(Header::new(MessageType::VERSION_NOT_SUPPORTED, None, 0));
                if let Ok(bytes) = m.to_bytes() {
                    out.transmit.push(Transmit { to: from, bytes });
                }
                return out;
            }
            Err(_) => {
                self.answer_invalid_length(from, data, &mut out);
                return out;
            }
        };
        for m in messages {
            self.handle_message(now, from, m, &mut out);
        }
        out
    }

    /// §7.7.3: a request whose length is inconsistent with the datagram, or whose IEs overflow
    /// it, is answered with cause "Invalid length" when its header can be read; anything else
    /// is discarded.
    fn answer_invalid_length(&mut self, from: SocketAddr, data: &[u8], out: &mut Output) {
        let Some(&[octet1, t, ..]) = data.get(..2) else {
            return;
        };
        let t = MessageType(t);
        let Some(resp) = t.response() else { return };
        let (teid_present, seq_at) = if octet1 & 0x08 != 0 {
            (true, 8)
        } else {
            (false, 4)
        };
        let Some(&[a, b, c]) = data.get(seq_at..seq_at + 3) else {
            return;
        };
        let seq = u32::from_be_bytes([0, a, b, c]);
        let teid = if teid_present {
            data.get(4..8)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .map(u32::from_be_bytes)
                .unwrap_or(0)
        } else {
            0
        };
        let sgw_teid = self.sessions.get(&teid).map_or(0, |s| s.sgw_c.teid);
        let cause = Cause::new(CauseValue::INVALID_LENGTH);
        let m = if t == MessageType::ECHO_REQUEST {
            return;
        } else {
            msg::cause_only(resp, sgw_teid, seq, cause, None)
        };
        if let Ok(bytes) = m.to_bytes() {
            out.transmit.push(Transmit { to: from, bytes });
        }
    }

    fn handle_message(&mut self, now: Instant, from: SocketAddr, m: Message, out: &mut Output) {
        let t = m.header.message_type;
        let seq = m.header.sequence;
        if t.response().is_some() {
            let ttl = self.settings.retransmit_cache_ttl;
            if let Some(bytes) = self.cache.get(now, (from, seq), t, ttl) {
                out.transmit.push(Transmit {
                    to: from,
                    bytes: bytes.to_vec(),
                });
                return;
            }
        }
        let reply = match t {
            MessageType::ECHO_REQUEST => {
                Some(msg::echo(MessageType::ECHO_RESPONSE, seq, self.recovery))
            }
            MessageType::CREATE_SESSION_REQUEST => Some(self.create_session(from, &m, out)),
            MessageType::MODIFY_BEARER_REQUEST => Some(self.modify_bearer(&m, out)),
            MessageType::DELETE_SESSION_REQUEST => Some(self.delete_session(&m, out)),
            MessageType::DELETE_BEARER_RESPONSE => {
                self.delete_bearer_response(&m, out);
                None
            }
            // Echo Responses, and messages this stub does not serve, are dropped.
            _ => None,
        };
        if let Some(reply) = reply {
            match reply.to_bytes() {
                Ok(bytes) => {
                    let cap = self.settings.retransmit_cache_size;
                    let ttl = self.settings.retransmit_cache_ttl;
                    self.cache
                        .insert(now, (from, seq), t, bytes.clone(), cap, ttl);
                    out.transmit.push(Transmit { to: from, bytes });
                }
                Err(e) => out.event(
                    None,
                    "gtp",
                    Outcome::Failed,
                    Some(format!("cannot encode answer: {e}")),
                ),
            }
        }
    }

    fn reject(cause: CauseValue, offending: Option<OffendingIe>) -> Cause {
        Cause {
            value: cause,
            flags: 0,
            offending,
        }
    }

    /// Maps a request-decoding error to its cause (TS 29.274 §7.7).
    fn cause_for(e: &Error) -> Cause {
        match e {
            Error::MandatoryIeMissing {
                ie_type, instance, ..
            } => Self::reject(
                CauseValue::MANDATORY_IE_MISSING,
                Some(OffendingIe {
                    ie_type: *ie_type,
                    instance: *instance,
                }),
            ),
            Error::MandatoryIeIncorrect {
                ie_type, instance, ..
            } => Self::reject(
                CauseValue::MANDATORY_IE_INCORRECT,
                Some(OffendingIe {
                    ie_type: *ie_type,
                    instance: *instance,
                }),
            ),
            _ => Self::reject(CauseValue::INVALID_MESSAGE_FORMAT, None),
        }
    }

    fn find_apn(&self, apn: &str) -> Option<usize> {
        let apn = apn.to_ascii_lowercase();
        self.settings.apns.iter().position(|a| a.name == apn)
    }

    fn create_session(&mut self, from: SocketAddr, m: &Message, out: &mut Output) -> Message {
        let seq = m.header.sequence;
        let req = match CreateSessionRequest::from_message(m) {
            Ok(r) => r,
            Err(e) => {
                let imsi = m.ie(IeType::IMSI, 0).and_then(|ie| Imsi::from_ie(ie).ok());
                // Answer to the SGW's TEID if its F-TEID can be read (§5.5.2), else 0.
                let teid = m
                    .ie(IeType::F_TEID, 0)
                    .and_then(|ie| Fteid::from_ie(ie).ok())
                    .map_or(0, |f| f.teid);
                out.event(
                    imsi.as_ref(),
                    "create-session",
                    Outcome::Failed,
                    Some(e.to_string()),
                );
                return CreateSessionResponse::reject(Self::cause_for(&e)).to_message(teid, seq);
            }
        };
        let imsi = req.imsi.clone();
        let sgw_teid = req.sender_fteid.teid;
        let fail =
            |out: &mut Output, cause: CauseValue, offending: Option<OffendingIe>, why: String| {
                out.event(Some(&imsi), "create-session", Outcome::Failed, Some(why));
                CreateSessionResponse::reject(Self::reject(cause, offending))
                    .to_message(sgw_teid, seq)
            };
        let Some(apn_idx) = self.find_apn(req.apn.network_identifier()) else {
            let why = format!("unknown APN {:?}", req.apn.0);
            out.event(Some(&imsi), "pco", Outcome::Failed, Some(why.clone()));
            return fail(out, CauseValue::MISSING_OR_UNKNOWN_APN, None, why);
        };
        // A new PDN connection to the same APN replaces the old one (TS 23.401 §5.3.2.1).
        if let Some(old) = self.by_imsi_apn.get(&(imsi.clone(), apn_idx)).copied() {
            self.remove_session(old, out);
            out.event(
                Some(&imsi),
                "create-session",
                Outcome::Info,
                Some("replaced the phone's previous session on this APN".to_string()),
            );
        }
        let apn: &ApnSettings = &self.settings.apns[apn_idx];
        let state = &mut self.apns[apn_idx];
        let requested = req
            .pdn_type
            .or_else(|| req.paa.map(|p| p.pdn_type))
            .unwrap_or(PdnType::IPV4);
        if !requested.wants_ipv4() && !requested.wants_ipv6() {
            return fail(
                out,
                CauseValue::PREFERRED_PDN_TYPE_NOT_SUPPORTED,
                None,
                format!("{requested} PDN not supported"),
            );
        }
        let (granted, cause) = match (
            requested.wants_ipv4() && state.pools.has_v4(),
            requested.wants_ipv6() && state.pools.has_v6(),
        ) {
            (true, true) => (PdnType::IPV4V6, CauseValue::REQUEST_ACCEPTED),
            (true, false) if requested == PdnType::IPV4 => {
                (PdnType::IPV4, CauseValue::REQUEST_ACCEPTED)
            }
            (false, true) if requested == PdnType::IPV6 => {
                (PdnType::IPV6, CauseValue::REQUEST_ACCEPTED)
            }
            (true, false) => (PdnType::IPV4, CauseValue::NEW_PDN_TYPE_NETWORK_PREFERENCE),
            (false, true) => (PdnType::IPV6, CauseValue::NEW_PDN_TYPE_NETWORK_PREFERENCE),
            (false, false) => {
                return fail(
                    out,
                    CauseValue::PREFERRED_PDN_TYPE_NOT_SUPPORTED,
                    None,
                    format!("APN {} has no {requested} pool", apn.name),
                );
            }
        };
        let (fixed4, fixed6) = apn.statics.get(&imsi).copied().unwrap_or((None, None));
        let ipv4 = if granted.wants_ipv4() {
            match state.pools.take_v4(fixed4) {
                Some(a) => Some(a),
                None => {
                    return fail(
                        out,
                        CauseValue::ALL_DYNAMIC_ADDRESSES_OCCUPIED,
                        None,
                        format!("APN {}: IPv4 pool exhausted", apn.name),
                    );
                }
            }
        } else {
            None
        };
        let ipv6 = if granted.wants_ipv6() {
            match state.pools.take_v6(fixed6) {
                Some(a) => Some(a),
                None => {
                    state.pools.release(ipv4, None);
                    return fail(
                        out,
                        CauseValue::ALL_DYNAMIC_ADDRESSES_OCCUPIED,
                        None,
                        format!("APN {}: IPv6 pool exhausted", apn.name),
                    );
                }
            }
        } else {
            None
        };
        // P-CSCF ordering.
        let start = match apn.selection {
            Selection::RoundRobin => {
                let s = state.rr;
                state.rr = state.rr.wrapping_add(1);
                s
            }
            Selection::ImsiHash => imsi_hash(&imsi),
        };
        let pco_settings = apn.pco.clone();
        let apn_name = apn.name.clone();
        let ambr = apn.ambr.or(req.apn_ambr);
        // PCO, APCO and ePCO are answered alike.
        let mut pcscf = Vec::new();
        let mut requests = pco::PcoRequests::default();
        let mut answers: [Option<Vec<u8>>; 3] = [None, None, None];
        let mut any_pco = false;
        for (i, raw) in [&req.pco, &req.apco, &req.epco].into_iter().enumerate() {
            let Some(raw) = raw else { continue };
            any_pco = true;
            match Pco::decode(raw, Direction::MsToNetwork) {
                Ok(p) => {
                    let a = pco::answer(&p, &pco_settings, start, i != 2);
                    if a.dropped > 0 {
                        out.event(
                            Some(&imsi),
                            "pco",
                            Outcome::Info,
                            Some(format!(
                                "{} containers left out to fit the NAS PCO",
                                a.dropped
                            )),
                        );
                    }
                    merge_requests(&mut requests, &a.requests);
                    for ip in &a.pcscf {
                        if !pcscf.contains(ip) {
                            pcscf.push(*ip);
                        }
                    }
                    answers[i] = a.pco.to_bytes(Direction::NetworkToMs).ok();
                }
                Err(e) => out.event(
                    Some(&imsi),
                    "pco",
                    Outcome::Failed,
                    Some(format!("PCO not understood: {e}")),
                ),
            }
        }
        Self::pco_event(&imsi, &apn_name, any_pco, &requests, &pcscf, out);
        // TEIDs, bearers, charging ids.
        let pgw_c_teid = self.alloc_teid();
        let mut bearers = Vec::new();
        for bc in &req.bearer_contexts {
            let pgw_u_teid = self.alloc_teid();
            let charging_id = ChargingId(self.next_charging_id);
            self.next_charging_id = self.next_charging_id.wrapping_add(1).max(1);
            bearers.push(Bearer {
                ebi: bc.ebi,
                qos: bc.qos,
                pgw_u_teid,
                sgw_u: bc.sgw_u,
                charging_id,
            });
        }
        let gtpc = self.settings.gtpc_address;
        let gtpu = self.settings.gtpu_address;
        let resp = CreateSessionResponse {
            cause: Cause::new(cause),
            pgw_fteid: Some(fteid(interface::S5S8_PGW_GTPC, pgw_c_teid, gtpc)),
            paa: Some(Paa {
                pdn_type: granted,
                ipv4,
                ipv6: ipv6.map(|p| (64, Ipv6Addr::from(u128::from(p) | 1))),
            }),
            apn_restriction: Some(0),
            apn_ambr: ambr,
            pco: answers[0].take(),
            apco: answers[1].take(),
            epco: answers[2].take(),
            bearer_contexts: bearers
                .iter()
                .map(|b| BearerContextCreated {
                    ebi: b.ebi,
                    cause: Cause::new(CauseValue::REQUEST_ACCEPTED),
                    pgw_u: Some(fteid(interface::S5S8_PGW_GTPU, b.pgw_u_teid, gtpu)),
                    qos: Some(b.qos),
                    charging_id: Some(b.charging_id),
                })
                .collect(),
            recovery: Some(self.recovery),
        };
        let session = Session {
            imsi: imsi.clone(),
            msisdn: req.msisdn.clone(),
            apn: apn_idx,
            pdn_type: granted,
            ipv4,
            ipv6,
            sgw_c: req.sender_fteid,
            peer: from,
            pgw_c_teid,
            bearers,
            pcscf,
            pco_requests: requests,
        };
        out.tunnels
            .extend(session.bearers.iter().filter_map(|b| session.tunnel_up(b)));
        let addrs: Vec<String> = session
            .ipv4
            .map(|a| a.to_string())
            .into_iter()
            .chain(session.ipv6.map(|p| format!("{p}/64")))
            .collect();
        out.event(
            Some(&imsi),
            "create-session",
            Outcome::Ok,
            Some(format!(
                "APN {apn_name}: {granted} {} (cause {})",
                addrs.join(" "),
                cause.0
            )),
        );
        self.by_imsi_apn.insert((imsi, apn_idx), pgw_c_teid);
        self.sessions.insert(pgw_c_teid, session);
        resp.to_message(sgw_teid, seq)
    }

    fn pco_event(
        imsi: &Imsi,
        apn: &str,
        any_pco: bool,
        r: &pco::PcoRequests,
        pcscf: &[IpAddr],
        out: &mut Output,
    ) {
        let (outcome, reason) = if !any_pco {
            (
                Outcome::Info,
                format!("no PCO in the request (APN {apn}): no P-CSCF handed out"),
            )
        } else if !r.pcscf_v4 && !r.pcscf_v6 {
            (
                Outcome::Info,
                format!("no P-CSCF requested in PCO (APN {apn})"),
            )
        } else if pcscf.is_empty() {
            let fam = match (r.pcscf_v4, r.pcscf_v6) {
                (true, true) => "IPv4 or IPv6",
                (true, false) => "IPv4",
                _ => "IPv6",
            };
            (
                Outcome::Failed,
                format!("P-CSCF ({fam}) requested but none configured for APN {apn}"),
            )
        } else {
            let list: Vec<String> = pcscf.iter().map(IpAddr::to_string).collect();
            (
                Outcome::Ok,
                format!("P-CSCF {} handed out (APN {apn})", list.join(", ")),
            )
        };
        out.event(Some(imsi), "pco", outcome, Some(reason));
    }

    fn remove_session(&mut self, teid: u32, out: &mut Output) -> Option<Session> {
        let s = self.sessions.remove(&teid)?;
        self.by_imsi_apn.remove(&(s.imsi.clone(), s.apn));
        if let Some(state) = self.apns.get_mut(s.apn) {
            state.pools.release(s.ipv4, s.ipv6);
        }
        out.tunnels
            .extend(s.bearers.iter().map(|b| TunnelUpdate::Down {
                pgw_teid: b.pgw_u_teid,
            }));
        Some(s)
    }

    fn modify_bearer(&mut self, m: &Message, out: &mut Output) -> Message {
        let seq = m.header.sequence;
        let teid = m.header.teid.unwrap_or(0);
        let t = MessageType::MODIFY_BEARER_RESPONSE;
        let Some(s) = self.sessions.get_mut(&teid) else {
            out.event(
                None,
                "modify-bearer",
                Outcome::Failed,
                Some(format!("no session with TEID {teid:#x}")),
            );
            return msg::cause_only(t, 0, seq, Cause::new(CauseValue::CONTEXT_NOT_FOUND), None);
        };
        let req = match ModifyBearerRequest::from_message(m) {
            Ok(r) => r,
            Err(e) => {
                let imsi = s.imsi.clone();
                out.event(
                    Some(&imsi),
                    "modify-bearer",
                    Outcome::Failed,
                    Some(e.to_string()),
                );
                return msg::cause_only(t, s.sgw_c.teid, seq, Self::cause_for(&e), None);
            }
        };
        if let Some(f) = req.sender_fteid {
            s.sgw_c = f;
        }
        let mut modified = Vec::new();
        for bc in &req.bearer_contexts {
            let Some(b) = s.bearers.iter_mut().find(|b| b.ebi == bc.ebi) else {
                continue;
            };
            if let Some(f) = bc.sgw_u {
                b.sgw_u = Some(f);
            }
            modified.push((b.ebi, b.charging_id));
        }
        let ups: Vec<TunnelUpdate> = s
            .bearers
            .iter()
            .filter(|b| modified.iter().any(|(e, _)| *e == b.ebi))
            .filter_map(|b| s.tunnel_up(b))
            .collect();
        out.tunnels.extend(ups);
        let imsi = s.imsi.clone();
        out.event(
            Some(&imsi),
            "modify-bearer",
            Outcome::Ok,
            Some(format!("{} bearer(s) modified", modified.len())),
        );
        msg::modify_bearer_response(
            s.sgw_c.teid,
            seq,
            Cause::new(CauseValue::REQUEST_ACCEPTED),
            s.msisdn.as_ref(),
            &modified,
            Some(self.recovery),
        )
    }

    fn delete_session(&mut self, m: &Message, out: &mut Output) -> Message {
        let seq = m.header.sequence;
        let teid = m.header.teid.unwrap_or(0);
        let t = MessageType::DELETE_SESSION_RESPONSE;
        let Some(s) = self.sessions.get(&teid) else {
            out.event(
                None,
                "delete-session",
                Outcome::Failed,
                Some(format!("no session with TEID {teid:#x}")),
            );
            return msg::cause_only(t, 0, seq, Cause::new(CauseValue::CONTEXT_NOT_FOUND), None);
        };
        let req = DeleteSessionRequest::from_message(m).unwrap_or(DeleteSessionRequest {
            linked_ebi: None,
            indication: None,
            pco: None,
        });
        if let Some(ebi) = req.linked_ebi
            && !s.bearers.iter().any(|b| b.ebi == ebi)
        {
            let sgw = s.sgw_c.teid;
            let imsi = s.imsi.clone();
            out.event(
                Some(&imsi),
                "delete-session",
                Outcome::Failed,
                Some(format!(
                    "linked EBI {} is not a bearer of the session",
                    ebi.0
                )),
            );
            return msg::cause_only(
                t,
                sgw,
                seq,
                Self::reject(
                    CauseValue::MANDATORY_IE_INCORRECT,
                    Some(OffendingIe {
                        ie_type: IeType::EBI,
                        instance: 0,
                    }),
                ),
                None,
            );
        }
        let sgw = s.sgw_c.teid;
        if let Some(s) = self.remove_session(teid, out) {
            out.event(Some(&s.imsi), "delete-session", Outcome::Ok, None);
        }
        msg::cause_only(
            t,
            sgw,
            seq,
            Cause::new(CauseValue::REQUEST_ACCEPTED),
            Some(self.recovery),
        )
    }

    /// Delete Bearer Requests for every session (TS 29.274 §7.2.9.2; cause "Reactivation
    /// requested" so phones reconnect). The sessions are removed when the SGW answers, or when
    /// N3 attempts got no answer.
    pub fn shutdown(&mut self, now: Instant) -> Output {
        let mut out = Output::default();
        let mut teids: Vec<u32> = self.sessions.keys().copied().collect();
        teids.sort_unstable();
        for teid in teids {
            let Some(s) = self.sessions.get(&teid) else {
                continue;
            };
            let Some(default) = s.bearers.first() else {
                continue;
            };
            let seq = self.next_seq;
            self.next_seq = (self.next_seq + 1) & 0x00ff_ffff;
            let m = msg::delete_bearer_request(
                s.sgw_c.teid,
                seq,
                default.ebi,
                Cause::new(CauseValue::REACTIVATION_REQUESTED),
            );
            let Ok(bytes) = m.to_bytes() else { continue };
            let imsi = s.imsi.clone();
            let to = s.peer;
            self.pending.insert(
                seq,
                Pending {
                    to,
                    bytes: bytes.clone(),
                    deadline: now + self.settings.t3,
                    sent: 1,
                    pgw_c_teid: teid,
                },
            );
            out.transmit.push(Transmit { to, bytes });
            out.event(
                Some(&imsi),
                "delete-bearer",
                Outcome::Info,
                Some("P-GW shutting down: Delete Bearer Request sent".into()),
            );
        }
        out
    }

    fn delete_bearer_response(&mut self, m: &Message, out: &mut Output) {
        let Some(p) = self.pending.remove(&m.header.sequence) else {
            return;
        };
        let cause = DeleteBearerResponse::from_message(m).map(|r| r.cause.value);
        if let Some(s) = self.remove_session(p.pgw_c_teid, out) {
            let (outcome, reason) = match cause {
                Ok(c) if c.is_accepted() => (Outcome::Ok, None),
                Ok(c) => (
                    Outcome::Failed,
                    Some(format!("SGW answered {c}; session removed anyway")),
                ),
                Err(e) => (
                    Outcome::Failed,
                    Some(format!("bad Delete Bearer Response: {e}")),
                ),
            };
            out.event(Some(&s.imsi), "delete-bearer", outcome, reason);
        }
    }

    /// Requests we sent that are still unanswered.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// When [`Pgw::poll`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Re-sends unanswered requests after T3, and gives up after N3 attempts (§7.6).
    pub fn poll(&mut self, now: Instant) -> Output {
        let mut out = Output::default();
        let due: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        for seq in due {
            let Some(p) = self.pending.get_mut(&seq) else {
                continue;
            };
            if p.sent >= self.settings.n3 {
                let teid = p.pgw_c_teid;
                self.pending.remove(&seq);
                if let Some(s) = self.remove_session(teid, &mut out) {
                    out.event(
                        Some(&s.imsi),
                        "delete-bearer",
                        Outcome::Failed,
                        Some("no Delete Bearer Response from the SGW; session removed".into()),
                    );
                }
            } else {
                p.sent += 1;
                p.deadline = now + self.settings.t3;
                out.transmit.push(Transmit {
                    to: p.to,
                    bytes: p.bytes.clone(),
                });
            }
        }
        out
    }
}

fn merge_requests(into: &mut pco::PcoRequests, r: &pco::PcoRequests) {
    into.pcscf_v4 |= r.pcscf_v4;
    into.pcscf_v6 |= r.pcscf_v6;
    into.dns_v4 |= r.dns_v4;
    into.dns_v6 |= r.dns_v6;
    into.mtu |= r.mtu;
    into.ip_alloc_via_nas |= r.ip_alloc_via_nas;
    into.pcscf_reselection |= r.pcscf_reselection;
    into.im_cn_flag |= r.im_cn_flag;
    into.ipcp |= r.ipcp;
    into.pap |= r.pap;
    into.chap |= r.chap;
}

fn fteid(interface_type: u8, teid: u32, addr: IpAddr) -> Fteid {
    match addr {
        IpAddr::V4(a) => Fteid {
            interface_type,
            teid,
            ipv4: Some(a),
            ipv6: None,
        },
        IpAddr::V6(a) => Fteid {
            interface_type,
            teid,
            ipv4: None,
            ipv6: Some(a),
        },
    }
}

#[cfg(test)]
mod tests;
