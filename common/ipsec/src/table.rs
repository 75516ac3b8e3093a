//! The P-CSCF's table of SA sets and their life cycle (TS 33.203 §7.4, TS 24.229 §5.2.2).
//!
//! Pure code driven by `now`: every call returns [`SaAction`]s (install / remove a set) for the
//! backend (kernel XFRM or userspace ESP) to carry out. The table also owns the SPI allocator,
//! so a removed set's SPIs go back to the pool and a set can never leak them.
//!
//! A UE's sets move through these states:
//!
//! - **Temporary**: created when the P-CSCF sends the 401 with Security-Server. Lives for
//!   `temporary_lifetime` (the reg-await-auth timer, 4 minutes by default: TS 24.229 table
//!   7.8.1, 7.7.1 in releases before 18) unless the protected REGISTER authenticates. A new
//!   challenge replaces an older temporary set (TS 24.229 §5.2.2.1).
//! - **Established**: the protected REGISTER succeeded ([`SaTable::authenticated`]). Lifetime is
//!   the registration's expiry + 30 s, never shorter than the set it replaces.
//! - **Old**: the previous established set after an authenticated re-registration. It is kept
//!   until the UE sends something over the new set ([`SaTable::inbound_used`]), then removed
//!   (TS 33.203 §7.4); it also dies at its own expiry. At most one old set is kept.
//!   TS 24.229 (§5.1.1 for the UE, which the P-CSCF mirrors) deletes the old set only "after
//!   all SIP transactions that use the old set of security associations are completed": this
//!   table does not know the transactions, so the caller delays applying that `Remove` while
//!   any are running.
//!
//! Sets are also removed on deregistration, network-initiated deregistration (RTR), expiry and
//! shutdown.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use crate::Error;
use crate::keys::EspKeys;
use crate::negotiate::{LocalParams, ProtectedPorts};
use crate::sa::{Direction, Endpoint, SaBundle, SaRole, SecurityAssociation};
use crate::spi::{Spi, SpiAllocator};

/// Identifies one SA set in a [`SaTable`]. Increasing, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaSetId(pub u64);

impl fmt::Display for SaSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sa-set-{}", self.0)
    }
}

/// Where a set is in its life (TS 33.203 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaState {
    /// Created with the 401; waiting for the protected REGISTER.
    Temporary,
    /// Authenticated and in use.
    Established,
    /// Replaced by a newer established set; kept until the UE uses the new one.
    Old,
}

/// Why a set was removed; goes into the UE's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RemovalReason {
    /// A newer challenge replaced this temporary set.
    Replaced,
    /// The UE used the newer established set, so this old one went (TS 33.203 §7.4).
    Superseded,
    /// Authentication failed or the registration was abandoned ([`SaTable::discard`]).
    Discarded,
    /// The UE deregistered.
    Deregistered,
    /// The network deregistered the UE (RTR, or administrative).
    NetworkDeregistered,
    /// The set's lifetime ran out.
    Expired,
    /// The P-CSCF is shutting down.
    Shutdown,
}

impl fmt::Display for RemovalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Replaced => "replaced by a newer challenge",
            Self::Superseded => "superseded: UE uses the new SAs",
            Self::Discarded => "discarded: registration not completed",
            Self::Deregistered => "UE deregistered",
            Self::NetworkDeregistered => "network deregistered the UE",
            Self::Expired => "lifetime expired",
            Self::Shutdown => "P-CSCF shutdown",
        })
    }
}

/// What the backend must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaAction {
    /// Install the four SAs (and, for XFRM, their policies) of a set.
    Install {
        /// The set.
        id: SaSetId,
        /// Its SAs and keys.
        bundle: SaBundle,
    },
    /// Remove them.
    Remove {
        /// The set.
        id: SaSetId,
        /// Its SAs.
        bundle: SaBundle,
        /// Why.
        reason: RemovalReason,
    },
}

/// One SA set of one UE.
#[derive(Debug, Clone)]
pub struct SaSet<K> {
    /// Its id.
    pub id: SaSetId,
    /// The UE it belongs to (the caller's key: IMPI, contact, ...).
    pub ue: K,
    /// The four SAs and keys.
    pub bundle: SaBundle,
    /// Where it is in its life.
    pub state: SaState,
    /// When it is removed unless renewed.
    pub expires: Instant,
}

/// Table settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaTableConfig {
    /// SPIs the P-CSCF allocates from.
    pub spi_range: RangeInclusive<u32>,
    /// The P-CSCF's protected ports.
    pub ports: ProtectedPorts,
    /// Lifetime of a temporary set: reg-await-auth, 4 minutes (TS 24.229 table 7.8.1).
    pub temporary_lifetime: Duration,
    /// Added to the registration's expiry for an established set.
    pub grace: Duration,
}

impl Default for SaTableConfig {
    /// SPIs 0x1000..=0xffff_fff0 (the configuration's default), ports 5100/6100,
    /// 240 s temporary lifetime, 30 s grace.
    fn default() -> Self {
        Self {
            spi_range: 0x1000..=0xffff_fff0,
            ports: ProtectedPorts::default(),
            temporary_lifetime: Duration::from_secs(240),
            grace: Duration::from_secs(30),
        }
    }
}

/// The result of [`SaTable::create_temporary`].
#[derive(Debug, Clone)]
pub struct Created {
    /// The new set.
    pub id: SaSetId,
    /// The P-CSCF's SPIs and ports: build Security-Server from these.
    pub local: LocalParams,
    /// Remove any replaced temporary set, then install the new one.
    pub actions: Vec<SaAction>,
}

/// All SA sets of all UEs, keyed by the caller's UE key `K`. See the module docs.
#[derive(Debug)]
pub struct SaTable<K> {
    cfg: SaTableConfig,
    spis: SpiAllocator,
    sets: BTreeMap<SaSetId, SaSet<K>>,
    by_spi: HashMap<Spi, SaSetId>,
    by_ue: HashMap<K, Vec<SaSetId>>,
    /// Sets per UE protected server address (IP, port-s): requests there go over the SAs.
    by_port_s: HashMap<SocketAddr, usize>,
    next_id: u64,
}

impl<K: Clone + Eq + Hash> SaTable<K> {
    /// An empty table.
    pub fn new(cfg: SaTableConfig) -> Result<Self, Error> {
        let spis = SpiAllocator::new(cfg.spi_range.clone())?;
        Ok(Self {
            cfg,
            spis,
            sets: BTreeMap::new(),
            by_spi: HashMap::new(),
            by_ue: HashMap::new(),
            by_port_s: HashMap::new(),
            next_id: 1,
        })
    }

    /// The settings.
    pub fn config(&self) -> &SaTableConfig {
        &self.cfg
    }

    /// Number of sets.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// True when there are no sets.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Number of allocated local SPIs (two per set).
    pub fn spis_in_use(&self) -> usize {
        self.spis.in_use()
    }

    /// A set by id.
    pub fn get(&self, id: SaSetId) -> Option<&SaSet<K>> {
        self.sets.get(&id)
    }

    /// Every set.
    pub fn iter(&self) -> impl Iterator<Item = &SaSet<K>> {
        self.sets.values()
    }

    /// The sets of one UE, oldest first.
    pub fn sets_of<'a>(&'a self, ue: &K) -> impl Iterator<Item = &'a SaSet<K>> + 'a {
        self.by_ue
            .get(ue)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sets.get(id))
    }

    /// The UE's established set, if any.
    pub fn established(&self, ue: &K) -> Option<&SaSet<K>> {
        self.sets_of(ue).find(|s| s.state == SaState::Established)
    }

    /// The SA the P-CSCF sends its own requests to the UE over (its port-c → the UE's port-s),
    /// from the established set, or the old one while no established set exists.
    pub fn request_sa(&self, ue: &K) -> Option<SecurityAssociation> {
        self.established(ue)
            .or_else(|| self.sets_of(ue).find(|s| s.state == SaState::Old))
            .map(|s| s.bundle.sa(SaRole::OutboundFromClient))
    }

    /// Whether `addr` is the protected server port (port-s) of a UE with a set: every request
    /// to it must go from the P-CSCF's port-c over the SAs (TS 33.203 §7.1).
    pub fn protects(&self, addr: SocketAddr) -> bool {
        self.by_port_s.contains_key(&addr)
    }

    /// The set and SA an inbound SPI belongs to.
    pub fn by_inbound_spi(&self, spi: Spi) -> Option<(&SaSet<K>, SecurityAssociation)> {
        let set = self.sets.get(self.by_spi.get(&spi)?)?;
        let sa = set
            .bundle
            .sas()
            .into_iter()
            .find(|sa| sa.direction() == Direction::Inbound && sa.spi == spi)?;
        Some((set, sa))
    }

    /// The set and inbound SA whose selectors match a packet `src` → `dst` (for the kernel
    /// backend, where the P-CSCF sees decrypted UDP/TCP, not SPIs). Prefers the newest set.
    pub fn by_inbound_flow(
        &self,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Option<(&SaSet<K>, SecurityAssociation)> {
        self.sets.values().rev().find_map(|set| {
            set.bundle
                .sas()
                .into_iter()
                .find(|sa| sa.direction() == Direction::Inbound && sa.src == src && sa.dst == dst)
                .map(|sa| (set, sa))
        })
    }

    /// Creates a temporary set when the P-CSCF challenges a REGISTER that asked for
    /// sec-agree: allocates the P-CSCF's two SPIs and installs the four SAs with the UE's chosen
    /// offer (TS 33.203 §7.2). Any earlier temporary set of the UE is removed first.
    pub fn create_temporary(
        &mut self,
        ue: K,
        local_ip: IpAddr,
        remote: Endpoint,
        keys: EspKeys,
        now: Instant,
    ) -> Result<Created, Error> {
        let (spi_c, spi_s) = self.spis.allocate_pair()?;
        let mut actions = Vec::new();
        let stale: Vec<SaSetId> = self
            .sets_of(&ue)
            .filter(|s| s.state == SaState::Temporary)
            .map(|s| s.id)
            .collect();
        for id in stale {
            actions.extend(self.remove(id, RemovalReason::Replaced));
        }
        let local = LocalParams {
            spi_c,
            spi_s,
            ports: self.cfg.ports,
        };
        let bundle = SaBundle::new(Endpoint::local(local_ip, &local), remote, keys);
        let id = SaSetId(self.next_id);
        self.next_id += 1;
        self.by_spi.insert(spi_c, id);
        self.by_spi.insert(spi_s, id);
        self.by_ue.entry(ue.clone()).or_default().push(id);
        *self
            .by_port_s
            .entry(SocketAddr::new(bundle.remote.ip, bundle.remote.port_s))
            .or_default() += 1;
        self.sets.insert(
            id,
            SaSet {
                id,
                ue,
                bundle: bundle.clone(),
                state: SaState::Temporary,
                expires: now + self.cfg.temporary_lifetime,
            },
        );
        actions.push(SaAction::Install { id, bundle });
        Ok(Created { id, local, actions })
    }

    /// Puts back an established set kept in the store before a restart (userspace ESP): its
    /// local SPIs are reserved again and it lives until `expires`. Returns its id and the
    /// `Install` to apply.
    pub fn restore(
        &mut self,
        ue: K,
        bundle: SaBundle,
        expires: Instant,
    ) -> Result<(SaSetId, Vec<SaAction>), Error> {
        let (spi_c, spi_s) = (bundle.local.spi_c, bundle.local.spi_s);
        self.spis.reserve(spi_c)?;
        if let Err(e) = self.spis.reserve(spi_s) {
            self.spis.release(spi_c);
            return Err(e);
        }
        let id = SaSetId(self.next_id);
        self.next_id += 1;
        self.by_spi.insert(spi_c, id);
        self.by_spi.insert(spi_s, id);
        self.by_ue.entry(ue.clone()).or_default().push(id);
        *self
            .by_port_s
            .entry(SocketAddr::new(bundle.remote.ip, bundle.remote.port_s))
            .or_default() += 1;
        self.sets.insert(
            id,
            SaSet {
                id,
                ue,
                bundle: bundle.clone(),
                state: SaState::Established,
                expires,
            },
        );
        Ok((id, vec![SaAction::Install { id, bundle }]))
    }

    /// The protected REGISTER over temporary set `id` authenticated and its 200 OK is sent:
    /// the set becomes established with lifetime `registration_expires` + grace (never shorter
    /// than the set it replaces); the previous established set becomes old; an older old set
    /// is removed.
    pub fn authenticated(
        &mut self,
        id: SaSetId,
        registration_expires: Duration,
        now: Instant,
    ) -> Result<Vec<SaAction>, Error> {
        let set = self.sets.get(&id).ok_or(Error::UnknownSaSet(id))?;
        if set.state != SaState::Temporary {
            return Err(Error::SaSetState {
                id,
                state: set.state,
                expected: SaState::Temporary,
            });
        }
        let ue = set.ue.clone();
        let mut actions = Vec::new();
        let mut floor = now + registration_expires + self.cfg.grace;
        let others: Vec<(SaSetId, SaState)> = self
            .sets_of(&ue)
            .filter(|s| s.id != id)
            .map(|s| (s.id, s.state))
            .collect();
        for (other, state) in others {
            match state {
                SaState::Old => actions.extend(self.remove(other, RemovalReason::Superseded)),
                SaState::Established => {
                    if let Some(s) = self.sets.get_mut(&other) {
                        floor = floor.max(s.expires);
                        s.state = SaState::Old;
                    }
                }
                SaState::Temporary => {}
            }
        }
        if let Some(s) = self.sets.get_mut(&id) {
            s.state = SaState::Established;
            s.expires = floor;
        }
        Ok(actions)
    }

    /// A re-registration that the S-CSCF accepted without a new challenge: the established
    /// set's lifetime becomes at least `registration_expires` + grace.
    pub fn extend(
        &mut self,
        id: SaSetId,
        registration_expires: Duration,
        now: Instant,
    ) -> Result<(), Error> {
        let grace = self.cfg.grace;
        let set = self.sets.get_mut(&id).ok_or(Error::UnknownSaSet(id))?;
        if set.state != SaState::Established {
            return Err(Error::SaSetState {
                id,
                state: set.state,
                expected: SaState::Established,
            });
        }
        set.expires = set.expires.max(now + registration_expires + grace);
        Ok(())
    }

    /// A packet arrived protected by inbound SA `spi`. When that SA belongs to an established
    /// set, the UE has switched to it, so its old set is removed (TS 33.203 §7.4). Apply the
    /// returned `Remove` once the SIP transactions over the old set have completed (TS 24.229,
    /// see the module docs): the responses of those still running go back over it.
    pub fn inbound_used(&mut self, spi: Spi) -> Vec<SaAction> {
        let Some(set) = self.by_spi.get(&spi).and_then(|id| self.sets.get(id)) else {
            return Vec::new();
        };
        if set.state != SaState::Established {
            return Vec::new();
        }
        let old: Vec<SaSetId> = self
            .sets_of(&set.ue)
            .filter(|s| s.state == SaState::Old)
            .map(|s| s.id)
            .collect();
        old.into_iter()
            .flat_map(|id| self.remove(id, RemovalReason::Superseded))
            .collect()
    }

    /// Removes one set (failed authentication, abandoned registration).
    pub fn discard(&mut self, id: SaSetId) -> Vec<SaAction> {
        self.remove(id, RemovalReason::Discarded)
            .into_iter()
            .collect()
    }

    /// Removes one set for `reason` (a set kept a little longer after a network
    /// de-registration, so the S-CSCF's NOTIFY still reaches the UE). Nothing when it is gone.
    pub fn remove_set(&mut self, id: SaSetId, reason: RemovalReason) -> Vec<SaAction> {
        self.remove(id, reason).into_iter().collect()
    }

    /// Removes every set of `ue` (after the 200 OK to a de-REGISTER: `Deregistered`; after an
    /// RTR: `NetworkDeregistered`).
    pub fn remove_ue(&mut self, ue: &K, reason: RemovalReason) -> Vec<SaAction> {
        let ids = self.by_ue.get(ue).cloned().unwrap_or_default();
        ids.into_iter()
            .flat_map(|id| self.remove(id, reason))
            .collect()
    }

    /// Removes every set whose lifetime ended at or before `now`.
    pub fn poll_expired(&mut self, now: Instant) -> Vec<SaAction> {
        let due: Vec<SaSetId> = self
            .sets
            .values()
            .filter(|s| s.expires <= now)
            .map(|s| s.id)
            .collect();
        due.into_iter()
            .flat_map(|id| self.remove(id, RemovalReason::Expired))
            .collect()
    }

    /// When [`SaTable::poll_expired`] next has work.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.sets.values().map(|s| s.expires).min()
    }

    /// Removes everything (P-CSCF shutdown).
    pub fn shutdown(&mut self) -> Vec<SaAction> {
        let ids: Vec<SaSetId> = self.sets.keys().copied().collect();
        ids.into_iter()
            .flat_map(|id| self.remove(id, RemovalReason::Shutdown))
            .collect()
    }

    fn remove(&mut self, id: SaSetId, reason: RemovalReason) -> Option<SaAction> {
        let set = self.sets.remove(&id)?;
        let port_s = SocketAddr::new(set.bundle.remote.ip, set.bundle.remote.port_s);
        if let Some(n) = self.by_port_s.get_mut(&port_s) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_port_s.remove(&port_s);
            }
        }
        let local = &set.bundle.local;
        for spi in [local.spi_c, local.spi_s] {
            self.by_spi.remove(&spi);
            self.spis.release(spi);
        }
        if let Some(ids) = self.by_ue.get_mut(&set.ue) {
            ids.retain(|x| *x != id);
            if ids.is_empty() {
                self.by_ue.remove(&set.ue);
            }
        }
        Some(SaAction::Remove {
            id,
            bundle: set.bundle,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::{CipherSuite, EncryptionAlg, IntegrityAlg};

    fn keys() -> EspKeys {
        let suite = CipherSuite::new(IntegrityAlg::HmacSha1_96, EncryptionAlg::AesCbc);
        EspKeys::from_raw(suite, &[7; 20], &[9; 16]).unwrap()
    }

    fn ue_endpoint(port_c: u16, spi: u32) -> Endpoint {
        Endpoint {
            ip: "127.0.0.2".parse().unwrap(),
            spi_c: Spi(spi),
            spi_s: Spi(spi + 1),
            port_c,
            port_s: port_c + 2,
        }
    }

    fn table() -> SaTable<&'static str> {
        SaTable::new(SaTableConfig {
            spi_range: 5000..=5099,
            ..SaTableConfig::default()
        })
        .unwrap()
    }

    fn pcscf() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    fn removed(actions: &[SaAction]) -> Vec<(SaSetId, RemovalReason)> {
        actions
            .iter()
            .filter_map(|a| match a {
                SaAction::Remove { id, reason, .. } => Some((*id, *reason)),
                SaAction::Install { .. } => None,
            })
            .collect()
    }

    #[test]
    fn challenge_creates_temporary_set_with_fresh_local_spis_and_ports() {
        let mut t = table();
        let now = Instant::now();
        let c = t
            .create_temporary("alice", pcscf(), ue_endpoint(5062, 1111), keys(), now)
            .unwrap();
        assert_eq!(
            c.local.ports,
            ProtectedPorts {
                port_c: 5100,
                port_s: 6100
            }
        );
        assert_ne!(c.local.spi_c, c.local.spi_s);
        assert!(matches!(c.actions.as_slice(), [SaAction::Install { .. }]));
        assert_eq!(t.get(c.id).unwrap().state, SaState::Temporary);
        assert_eq!(t.next_expiry(), Some(now + Duration::from_secs(240)));
        let (set, sa) = t.by_inbound_spi(c.local.spi_s).unwrap();
        assert_eq!((set.id, sa.role), (c.id, SaRole::InboundToServer));
    }

    #[test]
    fn restored_set_is_established_reserves_its_spis_and_refuses_a_taken_one() {
        let mut t = table();
        let now = Instant::now();
        let c = t
            .create_temporary("alice", pcscf(), ue_endpoint(5062, 1111), keys(), now)
            .unwrap();
        let bundle = t.get(c.id).unwrap().bundle.clone();
        let mut fresh = table();
        let (id, acts) = fresh
            .restore("alice", bundle.clone(), now + Duration::from_secs(600))
            .unwrap();
        assert!(matches!(acts.as_slice(), [SaAction::Install { .. }]));
        assert_eq!(fresh.established(&"alice").unwrap().id, id);
        assert_eq!(fresh.spis_in_use(), 2);
        assert_eq!(fresh.by_inbound_spi(bundle.local.spi_s).unwrap().0.id, id);
        // The next allocation does not hand out a restored SPI.
        let d = fresh
            .create_temporary("bob", pcscf(), ue_endpoint(5072, 2222), keys(), now)
            .unwrap();
        assert!(d.local.spi_c != bundle.local.spi_c && d.local.spi_c != bundle.local.spi_s);
        assert!(matches!(
            fresh.restore("carol", bundle, now),
            Err(Error::SpiUnavailable { .. })
        ));
        assert_eq!(fresh.spis_in_use(), 4);
    }

    #[test]
    fn protects_names_a_ue_port_s_while_any_of_its_sets_remains() {
        let mut t = table();
        let now = Instant::now();
        let port_s: SocketAddr = "127.0.0.2:5064".parse().unwrap();
        assert!(!t.protects(port_s));
        let first = t
            .create_temporary("alice", pcscf(), ue_endpoint(5062, 1111), keys(), now)
            .unwrap();
        // Two contacts behind the same address and ports: two sets, one port-s.
        let second = t
            .create_temporary("alice2", pcscf(), ue_endpoint(5062, 3333), keys(), now)
            .unwrap();
        assert!(t.protects(port_s));
        assert!(
            !t.protects("127.0.0.2:5062".parse().unwrap()),
            "port-c is not it"
        );
        t.remove_set(first.id, RemovalReason::NetworkDeregistered);
        assert!(t.protects(port_s), "the other set still protects it");
        t.remove_set(second.id, RemovalReason::NetworkDeregistered);
        assert!(!t.protects(port_s));
    }

    #[test]
    fn unauthenticated_temporary_set_expires_and_frees_its_spis() {
        let mut t = table();
        let now = Instant::now();
        let c = t
            .create_temporary("alice", pcscf(), ue_endpoint(5062, 1111), keys(), now)
            .unwrap();
        assert!(t.poll_expired(now + Duration::from_secs(239)).is_empty());
        let a = t.poll_expired(now + Duration::from_secs(240));
        assert_eq!(removed(&a), [(c.id, RemovalReason::Expired)]);
        assert!(t.is_empty());
        assert_eq!(t.spis_in_use(), 0);
    }

    #[test]
    fn second_challenge_replaces_the_temporary_set() {
        let mut t = table();
        let now = Instant::now();
        let a = t
            .create_temporary("alice", pcscf(), ue_endpoint(5062, 1111), keys(), now)
            .unwrap();
        let b = t
            .create_temporary("alice", pcscf(), ue_endpoint(5072, 2222), keys(), now)
            .unwrap();
        assert_eq!(removed(&b.actions), [(a.id, RemovalReason::Replaced)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.spis_in_use(), 2);
    }

    #[test]
    fn authenticated_set_lives_for_registration_plus_grace() {
        let mut t = table();
        let now = Instant::now();
        let c = t
            .create_temporary("alice", pcscf(), ue_endpoint(5062, 1111), keys(), now)
            .unwrap();
        assert!(
            t.authenticated(c.id, Duration::from_secs(600), now)
                .unwrap()
                .is_empty()
        );
        let s = t.get(c.id).unwrap();
        assert_eq!(
            (s.state, s.expires),
            (SaState::Established, now + Duration::from_secs(630))
        );
        assert!(matches!(
            t.authenticated(c.id, Duration::from_secs(600), now),
            Err(Error::SaSetState { .. })
        ));
        assert_eq!(t.request_sa(&"alice").unwrap().dst.port(), 5064);
    }

    #[test]
    fn reregistration_keeps_old_set_until_ue_uses_the_new_one() {
        let mut t = table();
        let t0 = Instant::now();
        let first = t
            .create_temporary("alice", pcscf(), ue_endpoint(5062, 1111), keys(), t0)
            .unwrap();
        t.authenticated(first.id, Duration::from_secs(600), t0)
            .unwrap();

        let t1 = t0 + Duration::from_secs(300);
        let second = t
            .create_temporary("alice", pcscf(), ue_endpoint(5072, 2222), keys(), t1)
            .unwrap();
        // The protected re-REGISTER arrives over the temporary set: nothing is removed yet.
        assert!(t.inbound_used(second.local.spi_s).is_empty());
        assert!(
            t.authenticated(second.id, Duration::from_secs(600), t1)
                .unwrap()
                .is_empty()
        );
        assert_eq!(t.get(first.id).unwrap().state, SaState::Old);
        assert_eq!(t.established(&"alice").unwrap().id, second.id);
        // The UE still using the old set removes nothing.
        assert!(t.inbound_used(first.local.spi_s).is_empty());
        // Its next message over the new set retires the old one and frees its SPIs.
        let a = t.inbound_used(second.local.spi_c);
        assert_eq!(removed(&a), [(first.id, RemovalReason::Superseded)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.spis_in_use(), 2);
        assert!(t.by_inbound_spi(first.local.spi_s).is_none());
    }

    #[test]
    fn new_established_set_never_expires_before_the_one_it_replaces() {
        let mut t = table();
        let t0 = Instant::now();
        let first = t
            .create_temporary("alice", pcscf(), ue_endpoint(5062, 1111), keys(), t0)
            .unwrap();
        t.authenticated(first.id, Duration::from_secs(3600), t0)
            .unwrap();
        let second = t
            .create_temporary("alice", pcscf(), ue_endpoint(5072, 2222), keys(), t0)
            .unwrap();
        t.authenticated(second.id, Duration::from_secs(60), t0)
            .unwrap();
        assert_eq!(
            t.get(second.id).unwrap().expires,
            t0 + Duration::from_secs(3630)
        );
    }

    #[test]
    fn third_registration_removes_the_oldest_set_at_once() {
        let mut t = table();
        let now = Instant::now();
        let ids: Vec<SaSetId> = (0..3)
            .map(|i| {
                let c = t
                    .create_temporary(
                        "alice",
                        pcscf(),
                        ue_endpoint(5062 + 10 * i, 1000 * u32::from(i + 1)),
                        keys(),
                        now,
                    )
                    .unwrap();
                let a = t
                    .authenticated(c.id, Duration::from_secs(600), now)
                    .unwrap();
                if i == 2 {
                    assert_eq!(removed(&a).len(), 1);
                }
                c.id
            })
            .collect();
        assert!(t.get(ids[0]).is_none());
        assert_eq!(t.get(ids[1]).unwrap().state, SaState::Old);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn deregistration_removes_every_set_of_that_ue_only() {
        let mut t = table();
        let now = Instant::now();
        let a = t
            .create_temporary("alice", pcscf(), ue_endpoint(5062, 1111), keys(), now)
            .unwrap();
        t.authenticated(a.id, Duration::from_secs(600), now)
            .unwrap();
        t.create_temporary("alice", pcscf(), ue_endpoint(5072, 2222), keys(), now)
            .unwrap();
        let b = t
            .create_temporary("bob", pcscf(), ue_endpoint(5062, 3333), keys(), now)
            .unwrap();
        let out = t.remove_ue(&"alice", RemovalReason::Deregistered);
        assert_eq!(out.len(), 2);
        assert!(
            removed(&out)
                .iter()
                .all(|(_, r)| *r == RemovalReason::Deregistered)
        );
        assert_eq!(t.len(), 1);
        assert!(t.get(b.id).is_some());
        assert_eq!(t.sets_of(&"alice").count(), 0);
    }

    #[test]
    fn shutdown_removes_everything_and_releases_all_spis() {
        let mut t = table();
        let now = Instant::now();
        for (ue, spi) in [("a", 1), ("b", 3), ("c", 5)] {
            t.create_temporary(ue, pcscf(), ue_endpoint(5062, spi), keys(), now)
                .unwrap();
        }
        assert_eq!(t.shutdown().len(), 3);
        assert_eq!((t.len(), t.spis_in_use()), (0, 0));
    }

    #[test]
    fn exhausted_spi_range_is_an_error_not_a_reuse() {
        let mut t: SaTable<u32> = SaTable::new(SaTableConfig {
            spi_range: 5000..=5003,
            ..SaTableConfig::default()
        })
        .unwrap();
        let now = Instant::now();
        t.create_temporary(1, pcscf(), ue_endpoint(5062, 1), keys(), now)
            .unwrap();
        t.create_temporary(2, pcscf(), ue_endpoint(5062, 1), keys(), now)
            .unwrap();
        assert!(matches!(
            t.create_temporary(3, pcscf(), ue_endpoint(5062, 1), keys(), now),
            Err(Error::SpisExhausted { .. })
        ));
    }

    #[test]
    fn inbound_flow_lookup_finds_the_set_for_kernel_decrypted_packets() {
        let mut t = table();
        let now = Instant::now();
        let c = t
            .create_temporary("alice", pcscf(), ue_endpoint(5062, 1111), keys(), now)
            .unwrap();
        let src: SocketAddr = "127.0.0.2:5062".parse().unwrap();
        let dst: SocketAddr = "127.0.0.1:6100".parse().unwrap();
        let (set, sa) = t.by_inbound_flow(src, dst).unwrap();
        assert_eq!((set.id, sa.role), (c.id, SaRole::InboundToServer));
        assert!(
            t.by_inbound_flow(src, "127.0.0.1:5060".parse().unwrap())
                .is_none()
        );
    }

    #[test]
    fn thousand_register_deregister_cycles_leave_nothing_behind() {
        let mut t: SaTable<u32> = SaTable::new(SaTableConfig {
            spi_range: 5000..=5099,
            ..SaTableConfig::default()
        })
        .unwrap();
        let mut now = Instant::now();
        for i in 0..1000u32 {
            let c = t.create_temporary(i % 7, pcscf(), ue_endpoint(5062, i), keys(), now);
            let c = c.unwrap();
            t.authenticated(c.id, Duration::from_secs(600), now)
                .unwrap();
            t.remove_ue(&(i % 7), RemovalReason::Deregistered);
            now += Duration::from_millis(10);
        }
        assert_eq!((t.len(), t.spis_in_use()), (0, 0));
        assert!(t.by_ue.is_empty() && t.by_spi.is_empty());
    }
}
