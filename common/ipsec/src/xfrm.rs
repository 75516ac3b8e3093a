//! The kernel backend: the four SAs and their policies in transport mode through XFRM netlink
//! (the `pcscf.ipsec.mode: xfrm` of issue 8).
//!
//! Message building is pure ([`sa_add_message`], [`policy_add_message`], ...): the bytes are
//! the same as iproute2's for the same parameters (the integration tests compare them with
//! `strace` of `ip xfrm state add` / `ip xfrm policy add`). [`XfrmBackend`] sends them over a
//! netlink socket (needs `CAP_NET_ADMIN`).
//!
//! Layout per SA set (TS 33.203 §7.1 selectors):
//! - four ESP states, transport mode, selector = the two addresses (any protocol), each with
//!   its own `reqid` so the kernel binds every policy to exactly one SA;
//! - eight policies, one per SA and transport protocol (UDP and TCP), selector = addresses,
//!   protocol and both ports, direction `out` for outbound SAs and `in` for inbound ones,
//!   template ESP transport with the SA's `reqid`.
//!
//! Every `reqid` carries a marker in its top byte ([`XfrmConfig::reqid_marker`]), so
//! [`XfrmBackend::remove_stale`] can find and delete what a crashed run left behind without
//! touching anyone else's IPsec, and [`XfrmBackend::reconcile`] ([`reconcile_plan`]) can keep
//! the SAs of the registrations a restarted P-CSCF restores from its store and remove only the
//! others.
//!
//! Kernels built without `CONFIG_INET_ESP` (this project's CI machine among them) accept
//! policies but refuse ESP states with `EPROTONOSUPPORT`; the backend reports that as
//! [`Error::KernelEspUnavailable`] and [`XfrmBackend::probe_esp`] says so up front.

use std::net::IpAddr;

use futures_util::StreamExt;
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_xfrm::{
    Address, Alg, AlgAuth, IPPROTO_ESP, LifetimeConfig, ReplayEsn, UserTemplate,
    XFRM_ALG_AUTH_NAME_LEN, XFRM_ALG_NAME_LEN, XFRM_MODE_TRANSPORT, XFRM_POLICY_ALLOW,
    XFRM_POLICY_IN, XFRM_POLICY_OUT, XfrmAttrs, XfrmMessage, policy, state,
};

use crate::Error;
use crate::keys::EspKeys;
use crate::sa::{Direction, SaBundle, SaRole, SecurityAssociation};
use crate::spi::Spi;
use crate::table::{SaAction, SaSetId};

/// The transport protocols each SA carries, as policy selectors (TS 33.203 §7.1).
pub const TRANSPORTS: [u8; 2] = [17, 6];

const EPROTONOSUPPORT: i32 = 93;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;

/// Backend settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XfrmConfig {
    /// Top byte of every `reqid` this backend installs; identifies our states and policies.
    pub reqid_marker: u8,
    /// Policy priority (lower wins).
    pub priority: u32,
    /// Anti-replay window of the kernel SAs, in packets (64, as in the userspace backend).
    pub replay_window: u32,
}

impl Default for XfrmConfig {
    /// Marker 0x1b, priority 1024, replay window 64.
    fn default() -> Self {
        Self {
            reqid_marker: 0x1b,
            priority: 1024,
            replay_window: 64,
        }
    }
}

impl XfrmConfig {
    /// The `reqid` of one SA of a set: marker, 22 bits of the set id, 2 bits of role.
    pub fn reqid(&self, id: SaSetId, role: SaRole) -> u32 {
        let r = match role {
            SaRole::InboundToServer => 0,
            SaRole::OutboundFromServer => 1,
            SaRole::OutboundFromClient => 2,
            SaRole::InboundToClient => 3,
        };
        (u32::from(self.reqid_marker) << 24) | (((id.0 as u32) & 0x003f_ffff) << 2) | r
    }

    /// True when `reqid` carries this configuration's marker.
    pub fn is_ours(&self, reqid: u32) -> bool {
        reqid >> 24 == u32::from(self.reqid_marker)
    }
}

fn prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn name<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(s.bytes().take(N - 1)) {
        *o = b;
    }
    out
}

fn request(msg: XfrmMessage, flags: u16) -> NetlinkMessage<XfrmMessage> {
    let mut m = NetlinkMessage::from(msg);
    m.header.flags = flags;
    m.finalize();
    m
}

/// `XFRM_MSG_NEWSA` for one SA: ESP, transport mode, `auth-trunc` HMAC-96 and `enc`
/// (`ecb(cipher_null)` with an empty key for `null`), selector = the SA's two addresses.
/// Same bytes as `ip xfrm state add src S dst D proto esp spi X reqid R mode transport
/// replay-window W auth-trunc 'hmac(..)' 0xIK 96 enc '..' 0xCK sel src S/32 dst D/32`.
pub fn sa_add_message(
    sa: &SecurityAssociation,
    keys: &EspKeys,
    reqid: u32,
    replay_window: u32,
) -> NetlinkMessage<XfrmMessage> {
    sa_add_message_resumed(sa, keys, reqid, replay_window, 0)
}

/// [`sa_add_message`] for an SA that continues after outbound sequence number `oseq` (an SA
/// re-installed after a restart: the peer's replay window has seen lower numbers), as
/// iproute2's `... replay-window W replay-oseq N ...` (for windows above 32 packets).
pub fn sa_add_message_resumed(
    sa: &SecurityAssociation,
    keys: &EspKeys,
    reqid: u32,
    replay_window: u32,
    oseq: u32,
) -> NetlinkMessage<XfrmMessage> {
    let (src, dst) = (sa.src.ip(), sa.dst.ip());
    let mut m = state::ModifyMessage::default();
    let info = &mut m.user_sa_info;
    info.source(&src);
    info.destination(&dst);
    info.selector.source_prefix(&src, prefix(src));
    info.selector.destination_prefix(&dst, prefix(dst));
    info.id.proto = IPPROTO_ESP;
    info.id.spi = sa.spi.0;
    info.reqid = reqid;
    info.mode = XFRM_MODE_TRANSPORT;
    let suite = keys.suite();
    let ik = keys.integrity().expose().to_vec();
    let ck = keys.encryption().expose().to_vec();
    m.nlas.push(XfrmAttrs::AuthenticationAlgTrunc(AlgAuth {
        alg_name: name::<XFRM_ALG_AUTH_NAME_LEN>(suite.integrity.xfrm_name()),
        alg_key_len: (ik.len() * 8) as u32,
        alg_trunc_len: 96,
        alg_key: ik,
    }));
    m.nlas.push(XfrmAttrs::EncryptionAlg(Alg {
        alg_name: name::<XFRM_ALG_NAME_LEN>(suite.encryption.xfrm_name()),
        alg_key_len: (ck.len() * 8) as u32,
        alg_key: ck,
    }));
    // iproute2: windows above 32 packets go in XFRMA_REPLAY_ESN_VAL, smaller ones in the header.
    if replay_window > 32 {
        m.nlas.push(XfrmAttrs::ReplayStateEsn(ReplayEsn {
            bmp_len: replay_window.div_ceil(32),
            oseq,
            seq: 0,
            oseq_hi: 0,
            seq_hi: 0,
            replay_window,
            bmp: Vec::new(),
        }));
    } else {
        m.user_sa_info.replay_window = replay_window as u8;
    }
    request(XfrmMessage::AddSa(m), NLM_F_REQUEST | NLM_F_ACK)
}

/// `XFRM_MSG_DELSA` for one SA, as `ip xfrm state delete src S dst D proto esp spi X`.
pub fn sa_delete_message(src: IpAddr, dst: IpAddr, spi: Spi) -> NetlinkMessage<XfrmMessage> {
    let mut m = state::DelGetMessage::default();
    m.user_sa_id.destination(&dst);
    m.user_sa_id.spi = spi.0;
    m.user_sa_id.proto = IPPROTO_ESP;
    m.nlas.push(XfrmAttrs::SrcAddr(Address::from_ip(&src)));
    request(XfrmMessage::DeleteSa(m), NLM_F_REQUEST | NLM_F_ACK)
}

fn policy_selector(sa: &SecurityAssociation, transport: u8) -> netlink_packet_xfrm::Selector {
    let (src, dst) = (sa.src.ip(), sa.dst.ip());
    let mut s = netlink_packet_xfrm::Selector::default();
    s.source_prefix(&src, prefix(src));
    s.destination_prefix(&dst, prefix(dst));
    s.proto = transport;
    s.sport = sa.src.port();
    s.sport_mask = u16::MAX;
    s.dport = sa.dst.port();
    s.dport_mask = u16::MAX;
    s
}

fn policy_dir(sa: &SecurityAssociation) -> u8 {
    match sa.direction() {
        Direction::Inbound => XFRM_POLICY_IN,
        Direction::Outbound => XFRM_POLICY_OUT,
    }
}

/// `XFRM_MSG_NEWPOLICY` binding one transport protocol's traffic of `sa` to it, as
/// `ip xfrm policy add src S/32 dst D/32 proto udp sport P dport Q dir out|in priority N
/// tmpl src S dst D proto esp reqid R mode transport`.
pub fn policy_add_message(
    sa: &SecurityAssociation,
    transport: u8,
    reqid: u32,
    priority: u32,
) -> NetlinkMessage<XfrmMessage> {
    let mut m = policy::ModifyMessage::default();
    m.user_policy_info.selector = policy_selector(sa, transport);
    m.user_policy_info.priority = priority;
    m.user_policy_info.direction = policy_dir(sa);
    m.user_policy_info.action = XFRM_POLICY_ALLOW;
    let mut t = UserTemplate::default();
    t.source(&sa.src.ip());
    t.destination(&sa.dst.ip());
    t.protocol(IPPROTO_ESP);
    t.mode(XFRM_MODE_TRANSPORT);
    t.reqid(reqid);
    m.nlas.push(XfrmAttrs::Template(vec![t]));
    request(XfrmMessage::AddPolicy(m), NLM_F_REQUEST | NLM_F_ACK)
}

/// `XFRM_MSG_DELPOLICY` by selector, as `ip xfrm policy delete src S/32 dst D/32 proto udp
/// sport P dport Q dir out|in`.
pub fn policy_delete_message(
    sa: &SecurityAssociation,
    transport: u8,
) -> NetlinkMessage<XfrmMessage> {
    let mut m = policy::DelGetMessage::default();
    m.user_policy_id.selector = policy_selector(sa, transport);
    m.user_policy_id.direction = policy_dir(sa);
    request(XfrmMessage::DeletePolicy(m), NLM_F_REQUEST | NLM_F_ACK)
}

/// `XFRM_MSG_DELPOLICY` by kernel index, as `ip xfrm policy delete index N dir out|in`.
pub fn policy_delete_by_index_message(index: u32, direction: u8) -> NetlinkMessage<XfrmMessage> {
    let mut m = policy::DelGetMessage::default();
    m.user_policy_id.index = index;
    m.user_policy_id.direction = direction;
    // As iproute2: the (unused) selector names AF_INET; the kernel goes by the index.
    m.user_policy_id.selector.family = 2;
    request(XfrmMessage::DeletePolicy(m), NLM_F_REQUEST | NLM_F_ACK)
}

/// An SA set kept in the store that must stay in the kernel after a restart.
#[derive(Debug, Clone)]
pub struct StoredSet {
    /// Its id in the restored SA table (gives the `reqid`s).
    pub id: SaSetId,
    /// Its SAs and keys, as the P-CSCF sees them.
    pub bundle: SaBundle,
    /// Outbound sequence number a re-installed outbound SA continues after.
    pub resume_oseq: u32,
}

/// What [`reconcile_plan`] keeps, installs and removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReconcileReport {
    /// Kernel states of stored sets left as they are (they survived the crash).
    pub states_kept: usize,
    /// States of stored sets (re-)installed from the store.
    pub states_installed: usize,
    /// Our states not in the store, removed.
    pub states_removed: usize,
    /// Policies of stored sets left as they are.
    pub policies_kept: usize,
    /// Policies of stored sets (re-)installed.
    pub policies_installed: usize,
    /// Our policies not in the store, removed.
    pub policies_removed: usize,
}

/// The messages that make the kernel hold exactly the `stored` sets, given a dump of our
/// `states` and `policies` (TS 33.203 §7.4: a restarted P-CSCF keeps the SAs of registered
/// phones; kernel SAs survive a process crash). A state is kept when the kernel has its
/// addresses, SPI and the `reqid` the restored set gives it; otherwise it is (deleted and)
/// installed again from the stored keys. Policies likewise, by direction, protocol, ports
/// and `reqid`. What is ours but not stored goes. Order: stale policies, stale states, new
/// states, new policies.
pub fn reconcile_plan(
    cfg: &XfrmConfig,
    stored: &[StoredSet],
    states: &[StateInfo],
    policies: &[PolicyInfo],
) -> (Vec<NetlinkMessage<XfrmMessage>>, ReconcileReport) {
    let mut report = ReconcileReport::default();
    let mut want_states = Vec::new();
    let mut want_policies = Vec::new();
    for set in stored {
        for sa in set.bundle.sas() {
            let reqid = cfg.reqid(set.id, sa.role);
            want_states.push((set, sa, reqid));
            for t in TRANSPORTS {
                want_policies.push((sa, t, reqid));
            }
        }
    }
    let state_kept = |s: &StateInfo| {
        want_states.iter().any(|(_, sa, reqid)| {
            (sa.src.ip(), sa.dst.ip(), sa.spi, *reqid) == (s.src, s.dst, s.spi, s.reqid)
        })
    };
    let policy_key = |sa: &SecurityAssociation, t: u8, reqid: u32| {
        (policy_dir(sa), t, sa.src.port(), sa.dst.port(), reqid)
    };
    let policy_kept = |p: &PolicyInfo| {
        want_policies.iter().any(|(sa, t, reqid)| {
            policy_key(sa, *t, *reqid) == (p.direction, p.transport, p.sport, p.dport, p.reqid)
        })
    };
    let mut out = Vec::new();
    for p in policies.iter().filter(|p| !policy_kept(p)) {
        out.push(policy_delete_by_index_message(p.index, p.direction));
        report.policies_removed += 1;
    }
    for s in states.iter().filter(|s| !state_kept(s)) {
        out.push(sa_delete_message(s.src, s.dst, s.spi));
        report.states_removed += 1;
    }
    for (set, sa, reqid) in &want_states {
        let present = states
            .iter()
            .any(|s| (s.src, s.dst, s.spi, s.reqid) == (sa.src.ip(), sa.dst.ip(), sa.spi, *reqid));
        if present {
            report.states_kept += 1;
            continue;
        }
        let oseq = match sa.direction() {
            Direction::Outbound => set.resume_oseq,
            Direction::Inbound => 0,
        };
        out.push(sa_add_message_resumed(
            sa,
            &set.bundle.keys,
            *reqid,
            cfg.replay_window,
            oseq,
        ));
        report.states_installed += 1;
    }
    for (sa, t, reqid) in &want_policies {
        let key = policy_key(sa, *t, *reqid);
        let present = policies
            .iter()
            .any(|p| (p.direction, p.transport, p.sport, p.dport, p.reqid) == key);
        if present {
            report.policies_kept += 1;
            continue;
        }
        out.push(policy_add_message(sa, *t, *reqid, cfg.priority));
        report.policies_installed += 1;
    }
    (out, report)
}

/// `XFRM_MSG_ALLOCSPI`: the kernel picks an unused SPI in `range` and creates a larval state.
pub fn alloc_spi_message(
    src: IpAddr,
    dst: IpAddr,
    range: std::ops::RangeInclusive<u32>,
    reqid: u32,
) -> NetlinkMessage<XfrmMessage> {
    let mut m = state::AllocSpiMessage::default();
    m.spi_info.info.source(&src);
    m.spi_info.info.destination(&dst);
    m.spi_info.info.mode = XFRM_MODE_TRANSPORT;
    m.spi_info.info.reqid = reqid;
    // iproute2 leaves the larval state's lifetime configuration zeroed.
    m.spi_info.info.lifetime_cfg = LifetimeConfig {
        soft_byte_limit: 0,
        hard_byte_limit: 0,
        soft_packet_limit: 0,
        hard_packet_limit: 0,
        soft_add_expires_seconds: 0,
        hard_add_expires_seconds: 0,
        soft_use_expires_seconds: 0,
        hard_use_expires_seconds: 0,
    };
    m.spi_info.protocol(IPPROTO_ESP);
    m.spi_info.spi_range(*range.start(), *range.end());
    request(XfrmMessage::AllocSpi(m), NLM_F_REQUEST)
}

/// The wire bytes of a message (header included).
pub fn to_bytes(msg: &NetlinkMessage<XfrmMessage>) -> Vec<u8> {
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// What [`XfrmBackend::probe_esp`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EspSupport {
    /// The kernel accepted (and the probe deleted) an ESP state.
    Available,
    /// The kernel has no ESP: adding an ESP state fails with `EPROTONOSUPPORT`.
    Unavailable,
}

/// One of our states found by a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateInfo {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// SPI.
    pub spi: Spi,
    /// reqid.
    pub reqid: u32,
}

/// One of our policies found by a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyInfo {
    /// Kernel index.
    pub index: u32,
    /// 0 in, 1 out, 2 fwd.
    pub direction: u8,
    /// Selector transport protocol.
    pub transport: u8,
    /// Selector source port.
    pub sport: u16,
    /// Selector destination port.
    pub dport: u16,
    /// The template's reqid.
    pub reqid: u32,
}

/// What [`XfrmBackend::remove_stale`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StaleCleanup {
    /// States removed.
    pub states: usize,
    /// Policies removed.
    pub policies: usize,
}

fn ip_of(a: &Address, family: u16) -> IpAddr {
    if family == 10 {
        IpAddr::V6(a.to_ipv6())
    } else {
        IpAddr::V4(a.to_ipv4())
    }
}

/// Kernel SAs and policies over a netlink socket in the current network namespace.
#[derive(Debug, Clone)]
pub struct XfrmBackend {
    handle: xfrmnetlink::Handle,
    cfg: XfrmConfig,
}

impl XfrmBackend {
    /// Opens the netlink connection and spawns its driver on the current tokio runtime.
    pub fn connect(cfg: XfrmConfig) -> Result<Self, Error> {
        let (conn, handle, _events) =
            xfrmnetlink::new_connection().map_err(|source| Error::Io {
                op: "open XFRM netlink socket",
                source,
            })?;
        tokio::spawn(conn);
        Ok(Self { handle, cfg })
    }

    /// The settings.
    pub fn config(&self) -> &XfrmConfig {
        &self.cfg
    }

    /// Sends a request and waits for its acknowledgment.
    async fn ack(&self, op: &'static str, msg: NetlinkMessage<XfrmMessage>) -> Result<(), Error> {
        let mut h = self.handle.clone();
        let mut responses = h.request(msg).map_err(|e| Error::Netlink {
            op,
            detail: e.to_string(),
            errno: None,
        })?;
        while let Some(m) = responses.next().await {
            if let NetlinkPayload::Error(e) = m.payload {
                let code = e.raw_code();
                if code != 0 {
                    return Err(Error::Netlink {
                        op,
                        detail: e.to_io().to_string(),
                        errno: Some(-code),
                    });
                }
            }
        }
        Ok(())
    }

    async fn dump(&self, op: &'static str, msg: XfrmMessage) -> Result<Vec<XfrmMessage>, Error> {
        let mut h = self.handle.clone();
        let mut responses = h
            .request(request(msg, NLM_F_REQUEST | NLM_F_DUMP))
            .map_err(|e| Error::Netlink {
                op,
                detail: e.to_string(),
                errno: None,
            })?;
        let mut out = Vec::new();
        while let Some(m) = responses.next().await {
            match m.payload {
                NetlinkPayload::InnerMessage(i) => out.push(i),
                NetlinkPayload::Error(e) if e.raw_code() != 0 => {
                    return Err(Error::Netlink {
                        op,
                        detail: e.to_io().to_string(),
                        errno: Some(-e.raw_code()),
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Adds one SA; `EPROTONOSUPPORT` becomes [`Error::KernelEspUnavailable`].
    pub async fn add_sa(
        &self,
        sa: &SecurityAssociation,
        keys: &EspKeys,
        reqid: u32,
    ) -> Result<(), Error> {
        match self
            .ack(
                "add SA",
                sa_add_message(sa, keys, reqid, self.cfg.replay_window),
            )
            .await
        {
            Err(Error::Netlink {
                errno: Some(EPROTONOSUPPORT),
                ..
            }) => Err(Error::KernelEspUnavailable),
            other => other,
        }
    }

    /// Deletes one SA; a missing one is not an error.
    pub async fn delete_sa(&self, src: IpAddr, dst: IpAddr, spi: Spi) -> Result<(), Error> {
        match self
            .ack("delete SA", sa_delete_message(src, dst, spi))
            .await
        {
            Err(Error::Netlink {
                errno: Some(ENOENT | ESRCH),
                ..
            }) => Ok(()),
            other => other,
        }
    }

    /// Adds the eight policies of a set (UDP and TCP for each SA). On failure the ones added
    /// are removed again.
    pub async fn install_policies(&self, id: SaSetId, bundle: &SaBundle) -> Result<(), Error> {
        let mut done: Vec<(SecurityAssociation, u8)> = Vec::new();
        for sa in bundle.sas() {
            for t in TRANSPORTS {
                let msg =
                    policy_add_message(&sa, t, self.cfg.reqid(id, sa.role), self.cfg.priority);
                if let Err(e) = self.ack("add policy", msg).await {
                    for (sa, t) in done {
                        let _ = self
                            .ack("delete policy", policy_delete_message(&sa, t))
                            .await;
                    }
                    return Err(e);
                }
                done.push((sa, t));
            }
        }
        Ok(())
    }

    /// Deletes the eight policies of a set; missing ones are skipped.
    pub async fn remove_policies(&self, bundle: &SaBundle) -> Result<(), Error> {
        for sa in bundle.sas() {
            for t in TRANSPORTS {
                match self
                    .ack("delete policy", policy_delete_message(&sa, t))
                    .await
                {
                    Ok(())
                    | Err(Error::Netlink {
                        errno: Some(ENOENT | ESRCH),
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Installs a set: four SAs, then eight policies. Nothing is left half-installed: on
    /// failure everything added is removed. On a kernel without ESP this returns
    /// [`Error::KernelEspUnavailable`] with nothing installed.
    pub async fn install(&self, id: SaSetId, bundle: &SaBundle) -> Result<(), Error> {
        let mut added = Vec::new();
        for sa in bundle.sas() {
            if let Err(e) = self
                .add_sa(&sa, &bundle.keys, self.cfg.reqid(id, sa.role))
                .await
            {
                for s in added {
                    let _ = self.delete_sa(sa_src(&s), sa_dst(&s), s.spi).await;
                }
                return Err(e);
            }
            added.push(sa);
        }
        if let Err(e) = self.install_policies(id, bundle).await {
            for s in added {
                let _ = self.delete_sa(sa_src(&s), sa_dst(&s), s.spi).await;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Removes a set: policies first, then SAs.
    pub async fn remove(&self, bundle: &SaBundle) -> Result<(), Error> {
        self.remove_policies(bundle).await?;
        for sa in bundle.sas() {
            self.delete_sa(sa_src(&sa), sa_dst(&sa), sa.spi).await?;
        }
        Ok(())
    }

    /// Carries out a table action.
    pub async fn apply(&self, action: &SaAction) -> Result<(), Error> {
        match action {
            SaAction::Install { id, bundle } => self.install(*id, bundle).await,
            SaAction::Remove { bundle, .. } => self.remove(bundle).await,
        }
    }

    /// Asks the kernel for an unused SPI in `range` (`XFRM_MSG_ALLOCSPI`); it creates a larval
    /// state that carries `reqid` until it is deleted or expires.
    pub async fn alloc_spi(
        &self,
        src: IpAddr,
        dst: IpAddr,
        range: std::ops::RangeInclusive<u32>,
        reqid: u32,
    ) -> Result<Spi, Error> {
        let op = "allocate SPI";
        let mut h = self.handle.clone();
        let mut responses = h
            .request(alloc_spi_message(src, dst, range, reqid))
            .map_err(|e| Error::Netlink {
                op,
                detail: e.to_string(),
                errno: None,
            })?;
        while let Some(m) = responses.next().await {
            match m.payload {
                NetlinkPayload::InnerMessage(XfrmMessage::AddSa(s)) => {
                    return Ok(Spi(s.user_sa_info.id.spi));
                }
                NetlinkPayload::Error(e) if e.raw_code() != 0 => {
                    return Err(Error::Netlink {
                        op,
                        detail: e.to_io().to_string(),
                        errno: Some(-e.raw_code()),
                    });
                }
                _ => {}
            }
        }
        Err(Error::Netlink {
            op,
            detail: "no answer".into(),
            errno: None,
        })
    }

    /// Tries to add (and then deletes) a null-cipher ESP state between two TEST-NET-1
    /// addresses (RFC 5737) to learn whether the kernel has ESP.
    pub async fn probe_esp(&self) -> Result<EspSupport, Error> {
        let (src, dst): (IpAddr, IpAddr) = ([192, 0, 2, 1].into(), [192, 0, 2, 2].into());
        let suite =
            crate::CipherSuite::new(crate::IntegrityAlg::HmacMd5_96, crate::EncryptionAlg::Null);
        let keys = EspKeys::from_raw(suite, &[0x5a; 16], &[])?;
        let sa = SecurityAssociation {
            role: SaRole::OutboundFromClient,
            spi: Spi(0x00ff_fff0),
            src: (src, 0).into(),
            dst: (dst, 0).into(),
        };
        let reqid = (u32::from(self.cfg.reqid_marker) << 24) | 0x00ff_ffff;
        match self.add_sa(&sa, &keys, reqid).await {
            Ok(()) => {
                self.delete_sa(src, dst, sa.spi).await?;
                Ok(EspSupport::Available)
            }
            Err(Error::KernelEspUnavailable) => Ok(EspSupport::Unavailable),
            Err(e) => Err(e),
        }
    }

    /// Our states (reqid with our marker) in this namespace.
    pub async fn our_states(&self) -> Result<Vec<StateInfo>, Error> {
        let msgs = self
            .dump(
                "dump SAs",
                XfrmMessage::GetDumpSa(state::GetDumpMessage::default()),
            )
            .await?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                XfrmMessage::AddSa(s) if self.cfg.is_ours(s.user_sa_info.reqid) => {
                    let i = &s.user_sa_info;
                    Some(StateInfo {
                        src: ip_of(&i.saddr, i.family),
                        dst: ip_of(&i.id.daddr, i.family),
                        spi: Spi(i.id.spi),
                        reqid: i.reqid,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Our policies (a template reqid with our marker) in this namespace.
    pub async fn our_policies(&self) -> Result<Vec<PolicyInfo>, Error> {
        let msgs = self
            .dump(
                "dump policies",
                XfrmMessage::GetPolicy(policy::DelGetMessage::default()),
            )
            .await?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                XfrmMessage::AddPolicy(p) => {
                    let reqid = p.nlas.iter().find_map(|a| match a {
                        XfrmAttrs::Template(ts) => {
                            ts.iter().map(|t| t.reqid).find(|r| self.cfg.is_ours(*r))
                        }
                        _ => None,
                    })?;
                    let i = &p.user_policy_info;
                    Some(PolicyInfo {
                        index: i.index,
                        direction: i.direction,
                        transport: i.selector.proto,
                        sport: i.selector.sport,
                        dport: i.selector.dport,
                        reqid,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// After a restart: keeps (or re-installs from the store) the kernel SAs and policies of
    /// the `stored` sets and removes every other one of ours ([`reconcile_plan`] on a dump).
    /// On a kernel without ESP a needed installation fails with
    /// [`Error::KernelEspUnavailable`].
    pub async fn reconcile(&self, stored: &[StoredSet]) -> Result<ReconcileReport, Error> {
        let states = self.our_states().await?;
        let policies = self.our_policies().await?;
        let (messages, report) = reconcile_plan(&self.cfg, stored, &states, &policies);
        for m in messages {
            let deleting = matches!(
                m.payload,
                NetlinkPayload::InnerMessage(
                    XfrmMessage::DeleteSa(_) | XfrmMessage::DeletePolicy(_)
                )
            );
            match self.ack("reconcile", m).await {
                Ok(()) => {}
                Err(Error::Netlink {
                    errno: Some(ENOENT | ESRCH),
                    ..
                }) if deleting => {}
                Err(Error::Netlink {
                    errno: Some(EPROTONOSUPPORT),
                    ..
                }) => return Err(Error::KernelEspUnavailable),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Deletes every state and policy a previous (crashed) run left behind: those whose reqid
    /// carries our marker. Call once at start, before installing anything.
    pub async fn remove_stale(&self) -> Result<StaleCleanup, Error> {
        let mut done = StaleCleanup::default();
        for p in self.our_policies().await? {
            match self
                .ack(
                    "delete stale policy",
                    policy_delete_by_index_message(p.index, p.direction),
                )
                .await
            {
                Ok(()) => done.policies += 1,
                Err(Error::Netlink {
                    errno: Some(ENOENT | ESRCH),
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        for s in self.our_states().await? {
            self.delete_sa(s.src, s.dst, s.spi).await?;
            done.states += 1;
        }
        Ok(done)
    }
}

fn sa_src(sa: &SecurityAssociation) -> IpAddr {
    sa.src.ip()
}

fn sa_dst(sa: &SecurityAssociation) -> IpAddr {
    sa.dst.ip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::{CipherSuite, EncryptionAlg, IntegrityAlg};
    use crate::sa::Endpoint;

    fn bundle() -> SaBundle {
        let suite = CipherSuite::new(IntegrityAlg::HmacSha1_96, EncryptionAlg::AesCbc);
        let keys = EspKeys::from_raw(suite, &[1; 20], &[2; 16]).unwrap();
        let l = Endpoint {
            ip: "127.0.0.1".parse().unwrap(),
            spi_c: Spi(0x1000),
            spi_s: Spi(0x1001),
            port_c: 5100,
            port_s: 6100,
        };
        let r = Endpoint {
            ip: "127.0.0.2".parse().unwrap(),
            spi_c: Spi(0x2000),
            spi_s: Spi(0x2001),
            port_c: 5062,
            port_s: 5064,
        };
        SaBundle::new(l, r, keys)
    }

    #[test]
    fn reqids_are_marked_and_distinct_per_sa_and_set() {
        let cfg = XfrmConfig::default();
        let mut seen = std::collections::HashSet::new();
        for id in [SaSetId(1), SaSetId(2), SaSetId(0x40_0001)] {
            for r in SaRole::ALL {
                let q = cfg.reqid(id, r);
                assert!(cfg.is_ours(q));
                assert!(q != 0);
                seen.insert(q);
            }
        }
        // Set ids wrap after 2^22; 0x40_0001 collides with 1 by design (never both alive).
        assert_eq!(seen.len(), 8);
        assert!(!cfg.is_ours(7));
    }

    #[test]
    fn sa_add_message_carries_spi_keys_and_algorithm_names() {
        let b = bundle();
        let sa = b.sa(SaRole::OutboundFromServer);
        let bytes = to_bytes(&sa_add_message(&sa, &b.keys, 0x1b00_0001, 64));
        assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 16); // XFRM_MSG_NEWSA
        let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(find(&0x2000u32.to_be_bytes()));
        assert!(find(b"hmac(sha1)\0") && find(b"cbc(aes)\0"));
        assert!(find(&[1; 20]) && find(&[2; 16]));
        assert_eq!(
            bytes.len(),
            u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
        );
    }

    #[test]
    fn policies_point_out_for_outbound_and_in_for_inbound_sas() {
        let b = bundle();
        for sa in b.sas() {
            for t in TRANSPORTS {
                let m = policy_add_message(&sa, t, 1, 1024);
                let XfrmMessage::AddPolicy(p) = m.payload_inner() else {
                    panic!("not a policy")
                };
                let want = if sa.direction() == Direction::Outbound {
                    XFRM_POLICY_OUT
                } else {
                    XFRM_POLICY_IN
                };
                assert_eq!(p.user_policy_info.direction, want);
                assert_eq!(
                    (
                        p.user_policy_info.selector.sport,
                        p.user_policy_info.selector.dport
                    ),
                    (sa.src.port(), sa.dst.port())
                );
                assert_eq!(p.user_policy_info.selector.proto, t);
            }
        }
    }

    trait Inner {
        fn payload_inner(&self) -> &XfrmMessage;
    }

    impl Inner for NetlinkMessage<XfrmMessage> {
        fn payload_inner(&self) -> &XfrmMessage {
            match &self.payload {
                NetlinkPayload::InnerMessage(m) => m,
                _ => panic!("no inner message"),
            }
        }
    }
}
