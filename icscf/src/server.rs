//! The running I-CSCF: a SIP element whose handler asks the HSS (UAR, LIR) and forwards to
//! the chosen S-CSCF.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imslab_config::Config;
use imslab_diameter::base::{Capabilities, VendorSpecificApplicationId};
use imslab_diameter::cx::Uar;
use imslab_diameter::cx::{Lia, Uaa};
use imslab_diameter::{Origin, VendorId};
use imslab_diameter_io::{DiameterNode, NodeOptions, PeerOptions, RefuseRequests};
use imslab_sip::{HeaderName, Message, Method, StatusCode};
use imslab_sip_io::TransportKind;
use imslab_sip_node::{
    Decision, Handler, Incoming, Listen, NodeConfig, NodeHandle, SipNode, Target,
};
use imslab_store::Store;
use imslab_types::{DiameterIdentity, Function, Impi, Impu, Outcome, UeEvent, UeEventSink, UeRef};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::routing::{
    Refusal, Selected, Settings, forward, has_alternative, hss_unreachable, lir_for,
    reselect_after_failure, select_for_register, select_for_terminating, uar_for, uar_for_failover,
};

const SHUTDOWN_GRACE: Duration = Duration::from_millis(600);

struct Inner {
    settings: Settings,
    diameter: DiameterNode,
    events: Arc<dyn UeEventSink>,
    sessions: AtomicU64,
    session_prefix: String,
}

impl Inner {
    fn session_id(&self) -> String {
        let n = self.sessions.fetch_add(1, Ordering::Relaxed);
        format!("{};{n}", self.session_prefix)
    }

    fn event(
        &self,
        impi: Option<&Impi>,
        impu: Option<&Impu>,
        step: &'static str,
        outcome: Outcome,
        reason: String,
    ) {
        self.events.emit(UeEvent {
            at: SystemTime::now(),
            function: Function::Icscf,
            ue: UeRef {
                imsi: None,
                impi: impi.cloned(),
                impu: impu.cloned(),
            },
            step,
            outcome,
            reason: Some(reason),
        });
    }

    /// Sends a UAR and decodes its answer; a refusal when the HSS cannot be asked.
    async fn ask(&self, uar: &Uar) -> Result<Uaa, Refusal> {
        match self
            .diameter
            .request(uar.to_message())
            .await
            .map(|a| Uaa::decode(&a))
        {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(hss_unreachable("UAA", &format!("undecodable answer: {e}"))),
            Err(e) => Err(hss_unreachable("UAA", &e.to_string())),
        }
    }

    async fn register(&self, incoming: Incoming, node: &NodeHandle) -> Decision {
        let msg = incoming.request;
        let uar = match uar_for(&msg, &self.settings, self.session_id()) {
            Ok(u) => u,
            Err(r) => {
                self.event(None, None, "uar", Outcome::Failed, r.reason.clone());
                return Decision::Respond(r.response(&msg));
            }
        };
        let (impi, impu) = (uar.user_name.clone(), uar.public_identity.clone());
        let uaa = match self.ask(&uar).await {
            Ok(a) => a,
            Err(r) => return self.refuse(&msg, &impi, &impu, "uar", &r),
        };
        match select_for_register(&uaa, &self.settings) {
            Ok(sel) => {
                self.event(
                    Some(&impi),
                    Some(&impu),
                    "uar",
                    Outcome::Ok,
                    format!("REGISTER to {} ({})", sel.uri, sel.how),
                );
                if has_alternative(&self.settings, &sel.uri) {
                    self.forward_with_failover(msg, sel, node, &impi, &impu)
                        .await
                } else {
                    forward(msg, &sel)
                }
            }
            Err(r) => self.refuse(&msg, &impi, &impu, "uar", &r),
        }
    }

    /// TS 24.229 §5.3.1.3: sends the REGISTER to `sel` through a client transaction of its
    /// own; when that S-CSCF does not answer within `failover_after`, answers 503 or cannot
    /// be reached, asks the HSS again (UAR REGISTRATION_AND_CAPABILITIES) and forwards the
    /// REGISTER once more, to another capable S-CSCF of the table.
    async fn forward_with_failover(
        &self,
        msg: Message,
        sel: Selected,
        node: &NodeHandle,
        impi: &Impi,
        impu: &Impu,
    ) -> Decision {
        let mut out = msg.clone();
        let hops = msg.max_forwards().ok().flatten().unwrap_or(70);
        let _ = out.set_header(HeaderName::MAX_FORWARDS, hops.saturating_sub(1).to_string());
        let wait = self.settings.failover_after;
        let why = match tokio::time::timeout(wait, node.request(out, sel.destination.clone())).await
        {
            Ok(Ok(mut response)) if response.status() != Some(StatusCode::SERVICE_UNAVAILABLE) => {
                // The I-CSCF's own Via: the rest is the phone's path, as a proxy answers.
                response.pop_first_value(&HeaderName::VIA);
                return Decision::Respond(response);
            }
            Ok(Ok(_)) => "it answered 503".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", wait.as_millis()),
        };
        self.event(
            Some(impi),
            Some(impu),
            "scscf-failover",
            Outcome::Info,
            format!(
                "S-CSCF {} did not take the REGISTER ({why}): asking the HSS for capabilities",
                sel.uri
            ),
        );
        let next = match uar_for_failover(&msg, &self.settings, self.session_id()) {
            Ok(uar) => match self.ask(&uar).await {
                Ok(uaa) => reselect_after_failure(&uaa, &self.settings, &sel.uri),
                Err(r) => Err(r),
            },
            Err(r) => Err(r),
        };
        match next {
            Ok(next) => {
                self.event(
                    Some(impi),
                    Some(impu),
                    "scscf-failover",
                    Outcome::Ok,
                    format!("REGISTER to {} ({})", next.uri, next.how),
                );
                forward(msg, &next)
            }
            Err(r) => self.refuse(&msg, impi, impu, "scscf-failover", &r),
        }
    }

    async fn terminating(&self, incoming: Incoming) -> Decision {
        let msg = incoming.request;
        let Some(lir) = lir_for(&msg, &self.settings, self.session_id()) else {
            return Decision::forward(msg, Target::next_hop());
        };
        let impu = lir.public_identity.clone();
        let answer = self.diameter.request(lir.to_message()).await;
        let lia = match answer.map(|a| Lia::decode(&a)) {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                let r = hss_unreachable("LIA", &format!("undecodable answer: {e}"));
                self.event(None, Some(&impu), "lir", Outcome::Failed, r.reason.clone());
                return Decision::Respond(r.response(&msg));
            }
            Err(e) => {
                let r = hss_unreachable("LIA", &e.to_string());
                self.event(None, Some(&impu), "lir", Outcome::Failed, r.reason.clone());
                return Decision::Respond(r.response(&msg));
            }
        };
        match select_for_terminating(&lia, &self.settings) {
            Ok(sel) => {
                self.event(
                    None,
                    Some(&impu),
                    "lir",
                    Outcome::Ok,
                    format!(
                        "{} to {} ({})",
                        msg.method().map_or("request", Method::as_str),
                        sel.uri,
                        sel.how
                    ),
                );
                forward(msg, &sel)
            }
            Err(r) => {
                self.event(None, Some(&impu), "lir", Outcome::Failed, r.reason.clone());
                Decision::Respond(r.response(&msg))
            }
        }
    }

    fn refuse(
        &self,
        msg: &Message,
        impi: &Impi,
        impu: &Impu,
        step: &'static str,
        r: &Refusal,
    ) -> Decision {
        self.event(
            Some(impi),
            Some(impu),
            step,
            Outcome::Failed,
            r.reason.clone(),
        );
        Decision::Respond(r.response(msg))
    }
}

struct SipHandler(Arc<Inner>);

impl Handler for SipHandler {
    async fn on_request(&self, incoming: Incoming, node: NodeHandle) -> Decision {
        if let Some(d) = crate::routing::to_self(
            &incoming.request,
            &incoming.interface.addr,
            &self.0.settings,
        ) {
            return d;
        }
        if incoming.request.method() == Some(&Method::Register) {
            self.0.register(incoming, &node).await
        } else {
            self.0.terminating(incoming).await
        }
    }

    fn wants_responses(&self) -> bool {
        false
    }
}

/// The I-CSCF, bound and ready to [`Server::run`].
pub struct Server {
    node: SipNode,
    inner: Arc<Inner>,
    hss: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.node.local_addrs())
            .finish_non_exhaustive()
    }
}

fn capabilities(origin: &Origin, boot: u64) -> Capabilities {
    Capabilities {
        origin_host: origin.host.clone(),
        origin_realm: origin.realm.clone(),
        host_ip_addresses: Vec::new(),
        vendor_id: VendorId::TGPP,
        product_name: "imslab-icscf".into(),
        origin_state_id: Some(u32::try_from(boot & 0xffff_ffff).unwrap_or(0)),
        supported_vendor_ids: vec![VendorId::TGPP],
        auth_application_ids: Vec::new(),
        inband_security_ids: Vec::new(),
        acct_application_ids: Vec::new(),
        vendor_specific_application_ids: vec![VendorSpecificApplicationId::CX],
        firmware_revision: None,
    }
}

impl Server {
    /// Binds the SIP sockets (`icscf.listen`, UDP and TCP; errors name the address) and starts
    /// the Diameter client toward `icscf.hss`, which keeps reconnecting until the HSS
    /// answers. The I-CSCF keeps no state: `store` and `data_dir` are taken for a uniform
    /// wiring and not used. Per-UE events go to `events`.
    pub async fn bind(
        config: &Config,
        store: Store,
        events: Arc<dyn UeEventSink>,
        data_dir: &Path,
    ) -> Result<Self, Error> {
        let _ = (store, data_dir);
        let cfg = &config.icscf;
        let settings = Settings::from_config(cfg, &config.network.domain, &config.hss.origin_host)?;
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut node_cfg = NodeConfig::new(Listen::udp_tcp(cfg.listen));
        node_cfg.hosts.clone_from(&settings.hosts);
        node_cfg.aliases.push(cfg.origin_host.clone());
        node_cfg.seed = rand::random();
        let node = SipNode::bind(node_cfg).await?;
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
        let diameter = DiameterNode::start(opts, RefuseRequests(settings.origin.clone()), None)
            .map_err(|source| Error::Diameter {
                hss: cfg.hss,
                source,
            })?;
        let session_prefix = format!("{};{boot}", settings.origin.host);
        Ok(Self {
            node,
            inner: Arc::new(Inner {
                settings,
                diameter,
                events,
                sessions: AtomicU64::new(1),
                session_prefix,
            }),
            hss: cfg.hss,
        })
    }

    /// The bound SIP sockets.
    pub fn local_addrs(&self) -> Vec<(TransportKind, SocketAddr)> {
        self.node.local_addrs()
    }

    /// The Diameter node (peer status for the UI).
    pub fn diameter(&self) -> &DiameterNode {
        &self.inner.diameter
    }

    /// Runs until `shutdown` is cancelled; returns within about a second after it.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        tracing::info!(addrs = ?self.node.local_addrs(), hss = %self.hss, "I-CSCF running");
        let diameter = self.inner.diameter.clone();
        let result = self
            .node
            .run(SipHandler(Arc::clone(&self.inner)), shutdown)
            .await;
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, diameter.shutdown()).await;
        result.map_err(Error::from)
    }
}
