//! The HSS server: the Cx handlers on a [`DiameterNode`], over the store.
//!
//! For each request: decode ([`CxRequest`]), load the identities from the store ([`Lookup`]),
//! decide ([`crate::cx`]), apply the state changes in one transaction, emit the per-UE events,
//! answer. A store failure is answered with DIAMETER_UNABLE_TO_COMPLY and logged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imslab_config::HssConfig;
use imslab_diameter::answer::{error_answer, result_answer};
use imslab_diameter::base::{Capabilities, VendorSpecificApplicationId};
use imslab_diameter::cx::{CxRequest, Lir, Mar, Ppa, Rta, Sar, Uar};
use imslab_diameter::enums::ReasonCode;
use imslab_diameter::{Message, ResultCode, VendorId};
use imslab_diameter_io::{DiameterNode, NodeOptions, PeerInfo};
use imslab_store::{
    HssStateWriter, Revision, SqnAllocator, SqnGrant, Store, Subscriber, SubscriberKey,
    SubscriberLoader, Subscription,
};
use imslab_types::{Impi, Impu, Realm, UeEvent, UeEventSink};
use tokio::net::TcpListener;

use crate::cx::mar::MarStep;
use crate::cx::ppr::PprContent;
use crate::cx::rtr::RtrScope;
use crate::cx::{Lookup, lir, mar, ppr, rtr, sar, uar};
use crate::{CxSettings, Error};

/// Most subscribers the MAR cache holds; it is emptied when full.
const AUTH_CACHE_MAX: usize = 100_000;

/// Subscribers as MAR last read them, by private identity, with their [`Revision`].
///
/// An entry is only a guess: a MAR decided on it uses the result only when the statement that
/// reserves its SQNs returns the same revision, i.e. when nothing MAR reads (keys, schemes,
/// identities, serving S-CSCF) changed since, whoever changed it (a SAR here, the provisioning
/// CLI in another process). The entry's SQN and its identities' registration states are stale
/// by design (the revision does not follow them): resynchronisation, the only step that reads
/// the SQN, never uses the cache, and MAR does not read registration states. So a SAR, which
/// sets them, leaves the entry current for the next registration's MAR unless it moved the
/// subscriber to another S-CSCF. A hit costs one statement per MAR instead of two.
#[derive(Default)]
struct AuthCache {
    map: std::sync::Mutex<HashMap<Impi, (Subscriber, Revision)>>,
}

impl AuthCache {
    fn get(&self, impi: &Impi) -> Option<(Subscriber, Revision)> {
        self.map.lock().ok()?.get(impi).cloned()
    }

    fn put(&self, sub: &Subscriber, revision: Revision) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= AUTH_CACHE_MAX && !m.contains_key(&sub.impi) {
                m.clear();
            }
            m.insert(sub.impi.clone(), (sub.clone(), revision));
        }
    }

    fn forget(&self, impi: &Impi) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(impi);
        }
    }
}

struct Inner {
    store: Store,
    sqns: SqnAllocator,
    loader: SubscriberLoader,
    writer: HssStateWriter,
    auth_cache: AuthCache,
    settings: CxSettings,
    events: Arc<dyn UeEventSink>,
    request_timeout: Duration,
    sessions: AtomicU64,
    boot: u64,
}

/// A running HSS. Cheap to clone.
#[derive(Clone)]
pub struct Hss {
    node: DiameterNode,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hss")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Whether a lookup needs the service profiles (SAR, LIR) or only the subscriber (UAR, MAR).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    Subscriber,
    WithProfiles,
}

async fn load(
    store: &Store,
    loader: &SubscriberLoader,
    impi: Option<&Impi>,
    impus: &[Impu],
    depth: Depth,
) -> Result<Lookup, imslab_store::Error> {
    let key = match (impi, impus.first()) {
        (Some(i), _) => SubscriberKey::Impi(i.clone()),
        (None, Some(u)) => SubscriberKey::Impu(u.clone()),
        (None, None) => return Ok(Lookup::default()),
    };
    // By private identity: batched with the other lookups in flight.
    let subscriber = match &key {
        SubscriberKey::Impi(i) => loader.by_impi(i).await?,
        other => store.subscribers().get(other).await?,
    };
    let subscription = match (subscriber, depth) {
        (None, _) => None,
        (Some(subscriber), Depth::Subscriber) => Some(Subscription {
            subscriber,
            profiles: Vec::new(),
        }),
        (Some(subscriber), Depth::WithProfiles) => {
            Some(store.subscribers().with_profiles(subscriber).await?)
        }
    };
    let mut foreign = Vec::new();
    for impu in impus {
        let owned = subscription
            .as_ref()
            .is_some_and(|s| s.subscriber.public_identity(impu).is_some());
        if !owned {
            foreign.push((impu.clone(), store.subscribers().owner_of(impu).await?));
        }
    }
    Ok(Lookup {
        subscription,
        foreign,
    })
}

impl Inner {
    fn emit(&self, events: Vec<UeEvent>) {
        for e in events {
            self.events.emit(e);
        }
    }

    async fn apply(
        &self,
        id: Option<i64>,
        changes: &[imslab_store::HssChange],
    ) -> Result<(), Error> {
        if let Some(id) = id
            && !changes.is_empty()
        {
            // Batched with the other requests' changes (group commit).
            self.writer.apply(id, changes.to_vec()).await?;
        }
        Ok(())
    }

    fn session_id(&self) -> String {
        let n = self.sessions.fetch_add(1, Ordering::Relaxed);
        format!("{};{};{}", self.settings.origin.host, self.boot, n)
    }

    async fn dispatch(&self, msg: Message) -> Message {
        let req = match CxRequest::decode(&msg) {
            Ok(r) => r,
            Err(e) => return error_answer(&msg.header, &msg.avps, &e, &self.settings.origin),
        };
        let result = match &req {
            CxRequest::Uar(r) => self.uar(r).await,
            CxRequest::Mar(r) => self.mar(r).await,
            CxRequest::Sar(r) => self.sar(r).await,
            CxRequest::Lir(r) => self.lir(r).await,
            CxRequest::Rtr(_) | CxRequest::Ppr(_) => {
                let e = imslab_diameter::Error::UnsupportedCommand {
                    code: msg.header.code,
                    app: msg.header.application_id,
                };
                return error_answer(&msg.header, &msg.avps, &e, &self.settings.origin);
            }
        };
        match result {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(error = %e, command = %msg.header.code, "Cx request failed in the HSS");
                let sid: Vec<_> = msg
                    .find(&imslab_diameter::dict::SESSION_ID)
                    .cloned()
                    .into_iter()
                    .collect();
                result_answer(
                    &msg.header,
                    &sid,
                    ResultCode::DIAMETER_UNABLE_TO_COMPLY,
                    Some(&e.to_string()),
                    None,
                    &self.settings.origin,
                )
            }
        }
    }

    async fn uar(&self, r: &Uar) -> Result<Message, Error> {
        let lookup = load(
            &self.store,
            &self.loader,
            Some(&r.user_name),
            std::slice::from_ref(&r.public_identity),
            Depth::Subscriber,
        )
        .await?;
        let out = uar::handle(r, &lookup, &self.settings, SystemTime::now());
        self.apply(out.subscriber_id, &out.changes).await?;
        self.emit(out.events);
        Ok(out.answer.to_message())
    }

    /// MAR, first from the cache ([`AuthCache`]): one statement (the SQN reservation, which
    /// also confirms the cached subscriber) when it holds the subscriber and nothing changed.
    async fn mar(&self, r: &Mar) -> Result<Message, Error> {
        let resync = r
            .sip_auth_data_item
            .authorization
            .as_ref()
            .is_some_and(|a| !a.is_empty());
        let cached = if resync {
            None
        } else {
            self.auth_cache.get(&r.user_name)
        };
        let Some((subscriber, revision)) = cached else {
            return self.mar_loaded(r, None).await;
        };
        if subscriber.public_identity(&r.public_identity).is_none() {
            return self.mar_loaded(r, None).await;
        }
        let lookup = Lookup::found(Subscription {
            subscriber,
            profiles: Vec::new(),
        });
        // Answers without vectors (refusals, SIP Digest) are decided on fresh data only.
        let MarStep::NeedVectors(plan) = mar::check(r, &lookup, &self.settings, SystemTime::now())
        else {
            return self.mar_loaded(r, None).await;
        };
        let grant = match self.sqns.grant(&r.user_name, plan.count).await {
            Ok(g) if g.revision == Some(revision) => g,
            Ok(g) => {
                self.auth_cache.forget(&r.user_name);
                return self.mar_loaded(r, Some(g)).await;
            }
            Err(_) => {
                self.auth_cache.forget(&r.user_name);
                return self.mar_loaded(r, None).await;
            }
        };
        let Some(sub) = lookup.subscription.as_ref() else {
            return self.mar_loaded(r, Some(grant)).await;
        };
        let out = self.mar_vectors(r, sub, plan, &grant.sqns);
        self.apply(out.subscriber_id, &out.changes).await?;
        self.emit(out.events);
        Ok(out.answer.to_message())
    }

    /// The subscriber of a MAR from the store (batched), with its revision.
    async fn mar_lookup(&self, r: &Mar) -> Result<(Lookup, Option<Revision>), Error> {
        let found = self.loader.by_impi_with_revision(&r.user_name).await?;
        let (subscription, revision) = match found {
            Some((subscriber, rev)) => (
                Some(Subscription {
                    subscriber,
                    profiles: Vec::new(),
                }),
                Some(rev),
            ),
            None => (None, None),
        };
        let owned = subscription
            .as_ref()
            .is_some_and(|s| s.subscriber.public_identity(&r.public_identity).is_some());
        let mut foreign = Vec::new();
        if !owned {
            let owner = self
                .store
                .subscribers()
                .owner_of(&r.public_identity)
                .await?;
            foreign.push((r.public_identity.clone(), owner));
        }
        Ok((
            Lookup {
                subscription,
                foreign,
            },
            revision,
        ))
    }

    /// MAR on a fresh read of the subscriber. `reserved`: SQNs already taken for this MAR (on a
    /// stale cache entry); they are used when the fresh decision asks for as many and no
    /// resynchronisation, and are otherwise skipped (never handed out, so never reused).
    async fn mar_loaded(&self, r: &Mar, reserved: Option<SqnGrant>) -> Result<Message, Error> {
        let (lookup, revision) = self.mar_lookup(r).await?;
        let out = match mar::check(r, &lookup, &self.settings, SystemTime::now()) {
            MarStep::Done(out) => *out,
            MarStep::NeedVectors(plan) => {
                let Some(sub) = lookup.subscription.as_ref() else {
                    return Err(Error::Store(imslab_store::Error::NotFound {
                        what: "subscriber",
                        key: r.user_name.to_string(),
                    }));
                };
                let impi = &sub.subscriber.impi;
                let reusable = reserved
                    .filter(|g| plan.reset_sqn.is_none() && g.sqns.len() == plan.count as usize);
                let grant = match (reusable, plan.reset_sqn) {
                    (Some(g), _) => g,
                    (None, reset) => {
                        if let Some(sqn) = reset {
                            self.store.subscribers().set_sqn(impi, sqn).await?;
                        }
                        // Batched with the other MARs in flight (group commit).
                        self.sqns.grant(impi, plan.count).await?
                    }
                };
                if let Some(rev) = revision
                    && grant.revision == Some(rev)
                {
                    self.auth_cache.put(&sub.subscriber, rev);
                }
                self.mar_vectors(r, sub, plan, &grant.sqns)
            }
        };
        self.apply(out.subscriber_id, &out.changes).await?;
        self.emit(out.events);
        Ok(out.answer.to_message())
    }

    fn mar_vectors(
        &self,
        r: &Mar,
        sub: &Subscription,
        plan: mar::VectorPlan,
        sqns: &[imslab_types::Sqn],
    ) -> crate::cx::CxOutcome<imslab_diameter::cx::Maa> {
        let mut rng = rand::rng();
        let mut rand_source = || rand::Rng::random::<[u8; 16]>(&mut rng);
        mar::vectors(
            r,
            sub,
            plan,
            sqns,
            &mut rand_source,
            &self.settings,
            SystemTime::now(),
        )
    }

    async fn sar(&self, r: &Sar) -> Result<Message, Error> {
        let lookup = load(
            &self.store,
            &self.loader,
            r.user_name.as_ref(),
            &r.public_identities,
            Depth::WithProfiles,
        )
        .await?;
        let out = sar::handle(r, &lookup, &self.settings, SystemTime::now());
        // A re-registration changes nothing: no write.
        let changes = match &lookup.subscription {
            Some(s) => crate::cx::effective_changes(&out.changes, &s.subscriber),
            None => out.changes.clone(),
        };
        self.apply(out.subscriber_id, &changes).await?;
        self.emit(out.events);
        Ok(out.answer.to_message())
    }

    async fn lir(&self, r: &Lir) -> Result<Message, Error> {
        let lookup = load(
            &self.store,
            &self.loader,
            None,
            std::slice::from_ref(&r.public_identity),
            Depth::WithProfiles,
        )
        .await?;
        let out = lir::handle(r, &lookup, &self.settings, SystemTime::now());
        self.apply(out.subscriber_id, &out.changes).await?;
        self.emit(out.events);
        Ok(out.answer.to_message())
    }
}

/// The capabilities the HSS announces in CER/CEA: Cx (TS 29.229 §5.1).
fn capabilities(settings: &CxSettings, boot: u64) -> Capabilities {
    Capabilities {
        origin_host: settings.origin.host.clone(),
        origin_realm: settings.origin.realm.clone(),
        host_ip_addresses: Vec::new(),
        vendor_id: VendorId::TGPP,
        product_name: "imslab-hss".into(),
        origin_state_id: Some(u32::try_from(boot & 0xffff_ffff).unwrap_or(0)),
        supported_vendor_ids: vec![VendorId::TGPP],
        auth_application_ids: Vec::new(),
        inband_security_ids: Vec::new(),
        acct_application_ids: Vec::new(),
        vendor_specific_application_ids: vec![VendorSpecificApplicationId::CX],
        firmware_revision: None,
    }
}

impl Hss {
    /// Starts the HSS on `listener` with the `hss:` configuration, the home domain (Diameter
    /// realm) and the store. Every S-CSCF/I-CSCF may connect (unknown peers are accepted).
    /// Per-UE events go to `events`.
    pub fn start(
        cfg: &HssConfig,
        realm: &Realm,
        store: Store,
        listener: TcpListener,
        events: Arc<dyn UeEventSink>,
    ) -> Result<Self, Error> {
        let settings = CxSettings::from_config(cfg, realm)?;
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut opts = NodeOptions::new(capabilities(&settings, boot));
        opts.accept_unknown_peers = true;
        opts.request_timeout = Duration::from_millis(cfg.request_timeout_ms.max(1));
        let sqns = SqnAllocator::spawn(store.clone(), settings.sqn.ind_bits());
        let loader = SubscriberLoader::spawn(store.clone());
        let writer = HssStateWriter::spawn(store.clone());
        let inner = Arc::new(Inner {
            store,
            sqns,
            loader,
            writer,
            auth_cache: AuthCache::default(),
            settings,
            events,
            request_timeout: opts.request_timeout,
            sessions: AtomicU64::new(1),
            boot,
        });
        let handler_inner = inner.clone();
        let node = DiameterNode::start(
            opts,
            move |msg: Message, _peer: PeerInfo| {
                let inner = handler_inner.clone();
                async move { inner.dispatch(msg).await }
            },
            Some(listener),
        )
        .map_err(|e| Error::Io {
            what: "starting the Diameter node".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Self { node, inner })
    }

    /// The address the HSS listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.node.local_addr()
    }

    /// The Diameter node (peer status, for the UI).
    pub fn node(&self) -> &DiameterNode {
        &self.node
    }

    async fn subscription(&self, key: &SubscriberKey) -> Result<Subscription, Error> {
        self.inner
            .store
            .subscribers()
            .subscription(key)
            .await?
            .ok_or_else(|| {
                Error::Store(imslab_store::Error::NotFound {
                    what: "subscriber",
                    key: format!("{key:?}"),
                })
            })
    }

    /// Network-initiated de-registration (TS 29.228 §6.1.3): sends an RTR to the serving
    /// S-CSCF and, once it confirms, marks the identities not registered. Returns the identities
    /// de-registered; a refusal, a timeout or an unreachable S-CSCF is an error and changes
    /// nothing.
    pub async fn deregister(
        &self,
        key: &SubscriberKey,
        scope: RtrScope,
        reason: ReasonCode,
        reason_info: Option<String>,
    ) -> Result<Vec<Impu>, Error> {
        let sub = self.subscription(key).await?;
        let plan = rtr::request(
            &sub,
            &scope,
            reason,
            reason_info,
            &self.inner.settings,
            self.inner.session_id(),
        )?;
        let answer = self
            .node
            .request_with_timeout(plan.request.to_message(), self.inner.request_timeout)
            .await;
        let rta = answer.as_ref().ok().and_then(|m| Rta::decode(m).ok());
        let done = rtr::on_answer(&plan, &sub, rta.as_ref(), SystemTime::now());
        self.inner
            .apply(Some(plan.subscriber_id), &done.changes)
            .await?;
        self.inner.emit(done.events);
        match (done.failure, answer) {
            (None, _) => Ok(plan.impus),
            (Some(why), Err(e)) => Err(Error::Initiate {
                command: "RTR",
                subscriber: plan.imsi,
                reason: format!("{why}: {e}"),
            }),
            (Some(why), Ok(_)) => Err(Error::Refused {
                command: "RTA",
                subscriber: plan.imsi,
                peer: plan.request.destination_host.to_string(),
                result: why,
            }),
        }
    }

    /// Pushes the current profile and/or SIP Digest data to the serving S-CSCF (TS 29.228
    /// §6.2.2). A refusal, a timeout or an unreachable S-CSCF is an error.
    pub async fn push_profile(
        &self,
        key: &SubscriberKey,
        content: PprContent,
    ) -> Result<(), Error> {
        let sub = self.subscription(key).await?;
        let plan = ppr::request(&sub, content, &self.inner.settings, self.inner.session_id())?;
        let peer = plan.request.destination_host.to_string();
        let answer = self
            .node
            .request_with_timeout(plan.request.to_message(), self.inner.request_timeout)
            .await;
        let ppa = answer.as_ref().ok().and_then(|m| Ppa::decode(m).ok());
        let done = ppr::on_answer(&sub, ppa.as_ref(), SystemTime::now());
        self.inner.emit(done.events);
        match (done.failure, answer) {
            (None, _) => Ok(()),
            (Some(why), Err(e)) => Err(Error::Initiate {
                command: "PPR",
                subscriber: sub.subscriber.imsi.to_string(),
                reason: format!("{why}: {e}"),
            }),
            (Some(why), Ok(_)) => Err(Error::Refused {
                command: "PPA",
                subscriber: sub.subscriber.imsi.to_string(),
                peer,
                result: why,
            }),
        }
    }

    /// Disconnects every peer (DPR) and stops.
    pub async fn shutdown(&self) {
        self.node.shutdown().await;
    }
}
