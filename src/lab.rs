//! Runs one or all functions: bind every socket first (failing fast with the address named),
//! print the banner, serve until Ctrl-C or SIGTERM, then stop everything within two seconds.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use imslab_config::Config;
use imslab_hss::cx::ppr::PprContent;
use imslab_hss::cx::rtr::RtrScope;
use imslab_store::{EventRecorder, RecorderOptions, Store, SubscriberKey};
use imslab_types::{Impu, Imsi, UeEventSink};
use tokio_util::sync::CancellationToken;

/// How long the functions get to stop after a signal.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1800);

/// Which functions to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Every function (`imslab up`).
    All,
    /// The web UI and REST API only.
    Web,
    /// The P-GW PCO stub only.
    Pgw,
    /// The HSS only.
    Hss,
    /// The I-CSCF only.
    Icscf,
    /// The S-CSCF only.
    Scscf,
    /// The P-CSCF only.
    Pcscf,
}

/// Services every function shares: the store and the per-UE event timeline (kept in it).
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) events: Arc<dyn UeEventSink>,
    /// The running P-GW, for the API's session listing.
    pub(crate) pgw: Option<Arc<PgwView>>,
    /// The running HSS, for the API's RTR and PPR.
    pub(crate) hss: Option<Arc<imslab_hss::Hss>>,
}

/// The API's view of a running HSS: RTR and PPR on request.
struct HssAdmin(Arc<imslab_hss::Hss>);

impl HssAdmin {
    fn key(identity: &str) -> Result<SubscriberKey, String> {
        if let Ok(imsi) = Imsi::new(identity) {
            return Ok(SubscriberKey::Imsi(imsi));
        }
        Impu::new(identity)
            .map(SubscriberKey::Impu)
            .map_err(|_| format!("{identity:?} is neither an IMSI nor a public identity"))
    }
}

impl imslab_web::HssCommands for HssAdmin {
    fn deregister(
        &self,
        identity: String,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            let key = Self::key(&identity)?;
            let scope = match &key {
                SubscriberKey::Impu(impu) => RtrScope::Impu(impu.clone()),
                _ => RtrScope::Subscriber,
            };
            let reason = imslab_diameter::enums::ReasonCode::PERMANENT_TERMINATION;
            let done = self
                .0
                .deregister(
                    &key,
                    scope,
                    reason,
                    Some("deregistered by the operator".into()),
                )
                .await
                .map_err(|e| e.to_string())?;
            let list: Vec<String> = done.iter().map(ToString::to_string).collect();
            Ok(format!("deregistered {}", list.join(", ")))
        })
    }

    fn push_profile(
        &self,
        imsi: String,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            let key = Self::key(&imsi)?;
            self.0
                .push_profile(&key, PprContent::UserData)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("profile of {imsi} pushed to its S-CSCF"))
        })
    }
}

/// Read access to a running P-GW's sessions; the handle is taken out at shutdown.
pub(crate) struct PgwView(std::sync::Mutex<Option<imslab_pgw::PgwHandle>>);

impl imslab_web::PgwSessions for PgwView {
    fn sessions(&self) -> Vec<serde_json::Value> {
        let guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard
            .as_ref()
            .map(|h| {
                h.sessions()
                    .iter()
                    .filter_map(|s| serde_json::to_value(s).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// An address a function listens on, for the banner.
pub(crate) struct Endpoint {
    pub(crate) what: &'static str,
    pub(crate) addr: SocketAddr,
}

type Serve = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A function with its sockets bound, ready to serve until the shutdown token is cancelled.
pub(crate) struct Started {
    pub(crate) name: &'static str,
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) serve: Serve,
}

/// Binds a TCP listener, naming the function and address when it fails.
pub(crate) async fn tcp_listener(
    addr: SocketAddr,
    what: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what}"))
}

pub(crate) fn run(cfg: Config, selection: Selection) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("imslab")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(cfg, selection))
}

async fn serve(cfg: Config, selection: Selection) -> anyhow::Result<ExitCode> {
    let mut signals = StopSignals::install()?;
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            cfg.data_dir.display()
        )
    })?;
    let store = crate::subscriber::open_store(&cfg).await?;
    let (recorder, recorder_task) =
        EventRecorder::spawn(store.clone(), RecorderOptions::from_config(&cfg.store));
    let mut shared = Shared {
        store: store.clone(),
        events: Arc::new(recorder),
        pgw: None,
        hss: None,
    };
    // One token per function: they stop in reverse start order (web and phones' side first,
    // the HSS last), so the CSCFs' DPRs reach an HSS that is still open (RFC 6733 §5.4).
    let mut tokens = Vec::new();
    let mut token = || {
        let t = CancellationToken::new();
        tokens.push(t.clone());
        t
    };
    let mut started = Vec::new();
    if matches!(selection, Selection::All | Selection::Hss) {
        started.push(hss(&cfg, &mut shared, token()).await?);
    }
    if matches!(selection, Selection::All | Selection::Scscf) {
        started.push(scscf(&cfg, &shared, token()).await?);
    }
    if matches!(selection, Selection::All | Selection::Icscf) {
        started.push(icscf(&cfg, &shared, token()).await?);
    }
    if matches!(selection, Selection::All | Selection::Pcscf) {
        started.push(pcscf(&cfg, &shared, token()).await?);
    }
    if matches!(selection, Selection::All | Selection::Pgw) {
        started.push(pgw(&cfg, &mut shared, token()).await?);
    }
    if matches!(selection, Selection::All | Selection::Web) {
        started.push(web(&cfg, &shared, token()).await?);
    }
    drop(shared);
    banner(&cfg, &started);

    let (ended_tx, mut ended_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for s in started {
        let name = s.name;
        let ended = ended_tx.clone();
        let task = tokio::spawn(async move {
            let result = s.serve.await;
            let _ = ended.send(name);
            result
        });
        tasks.push((name, task));
    }
    drop(ended_tx);
    let mut failed = false;
    tokio::select! {
        signal = signals.recv() => {
            tracing::info!("{signal} received, stopping");
        }
        Some(name) = ended_rx.recv() => {
            // A function stopped on its own: that is a failure of the lab.
            tracing::error!(function = name, "stopped unexpectedly");
            failed = true;
        }
    }
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    for ((name, task), token) in tasks.into_iter().rev().zip(tokens.into_iter().rev()) {
        token.cancel();
        let abort = task.abort_handle();
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::warn!(function = name, "error while stopping: {e:#}");
            }
            Ok(Err(e)) => {
                tracing::error!(function = name, "panicked: {e}");
                failed = true;
            }
            Err(_) => {
                tracing::warn!(
                    function = name,
                    "did not stop within {SHUTDOWN_GRACE:?}; aborted"
                );
                abort.abort();
            }
        }
    }
    // Every recorder clone is gone with the functions: the writer flushes the last events.
    if tokio::time::timeout(Duration::from_millis(150), recorder_task)
        .await
        .is_err()
    {
        tracing::warn!("the event timeline did not flush in time");
    }
    store.close().await;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Ctrl-C and SIGTERM, installed before any socket is bound so that a signal arriving during
/// startup still stops the lab cleanly instead of killing it.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())
                .context("cannot install the SIGINT handler")?,
            terminate: signal(SignalKind::terminate())
                .context("cannot install the SIGTERM handler")?,
        })
    }

    /// Waits for either and names it.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

fn banner(cfg: &Config, started: &[Started]) {
    let mut out = format!(
        "imslab {} — home domain {}, data in {}\n",
        env!("CARGO_PKG_VERSION"),
        cfg.network.domain,
        cfg.data_dir.display()
    );
    for s in started {
        for e in &s.endpoints {
            out.push_str(&format!("  {:<6} {:<36} {}\n", s.name, e.what, e.addr));
        }
    }
    out.push_str(&format!(
        "Add a first subscriber:\n  imslab subscriber add --imsi 001010000000001 \
         --k <32 hex> --opc <32 hex>\nWeb UI: http://{}/  — stop with Ctrl-C\n",
        cfg.web.listen
    ));
    eprint!("{out}");
}

fn sip_what(kind: imslab_sip_io::TransportKind) -> &'static str {
    use imslab_sip_io::TransportKind as K;
    match kind {
        K::Udp => "SIP (UDP)",
        K::Tcp => "SIP (TCP)",
        K::Tls => "SIP (TLS)",
        K::Ws => "SIP (WebSocket)",
        K::Wss => "SIP (secure WebSocket)",
    }
}

async fn hss(
    cfg: &Config,
    shared: &mut Shared,
    shutdown: CancellationToken,
) -> anyhow::Result<Started> {
    let listener = tcp_listener(cfg.hss.listen, "the HSS (Diameter Cx)").await?;
    let addr = listener.local_addr()?;
    let hss = imslab_hss::Hss::start(
        &cfg.hss,
        &cfg.network.domain,
        shared.store.clone(),
        listener,
        shared.events.clone(),
    )
    .context("cannot start the HSS")?;
    let hss = Arc::new(hss);
    shared.hss = Some(hss.clone());
    let serve = async move {
        shutdown.cancelled().await;
        hss.shutdown().await;
        Ok(())
    };
    Ok(Started {
        name: "hss",
        endpoints: vec![Endpoint {
            what: "Diameter Cx (TCP)",
            addr,
        }],
        serve: Box::pin(serve),
    })
}

async fn scscf(
    cfg: &Config,
    shared: &Shared,
    shutdown: CancellationToken,
) -> anyhow::Result<Started> {
    // In the one-process lab, home callees go through the lab's own I-CSCF (LIR) unless the
    // configuration names another (TS 24.229 §5.4.3.2).
    let mut cfg = cfg.clone();
    if cfg.scscf.icscf.is_none() {
        cfg.scscf.icscf = Some(format!("sip:{}", cfg.icscf.listen));
    }
    let cfg = &cfg;
    let server = imslab_scscf::Server::bind(
        cfg,
        shared.store.clone(),
        shared.events.clone(),
        &cfg.data_dir,
    )
    .await
    .with_context(|| format!("cannot start the S-CSCF on {}", cfg.scscf.listen))?;
    let endpoints = server
        .local_addrs()
        .into_iter()
        .map(|(kind, addr)| Endpoint {
            what: sip_what(kind),
            addr,
        })
        .collect();
    let serve = async move { server.run(shutdown).await.context("S-CSCF") };
    Ok(Started {
        name: "scscf",
        endpoints,
        serve: Box::pin(serve),
    })
}

async fn icscf(
    cfg: &Config,
    shared: &Shared,
    shutdown: CancellationToken,
) -> anyhow::Result<Started> {
    let server = imslab_icscf::Server::bind(
        cfg,
        shared.store.clone(),
        shared.events.clone(),
        &cfg.data_dir,
    )
    .await
    .with_context(|| format!("cannot start the I-CSCF on {}", cfg.icscf.listen))?;
    let endpoints = server
        .local_addrs()
        .into_iter()
        .map(|(kind, addr)| Endpoint {
            what: sip_what(kind),
            addr,
        })
        .collect();
    let serve = async move { server.run(shutdown).await.context("I-CSCF") };
    Ok(Started {
        name: "icscf",
        endpoints,
        serve: Box::pin(serve),
    })
}

async fn pcscf(
    cfg: &Config,
    shared: &Shared,
    shutdown: CancellationToken,
) -> anyhow::Result<Started> {
    let deps = imslab_pcscf::Deps {
        store: shared.store.clone(),
        events: shared.events.clone(),
        data_dir: cfg.data_dir.clone(),
    };
    let server = imslab_pcscf::Server::bind(cfg, deps)
        .await
        .with_context(|| {
            let hint = match cfg.pcscf.ipsec.mode {
                imslab_config::IpsecMode::Userspace => {
                    " (pcscf.ipsec.mode userspace needs root or CAP_NET_RAW; \
                     `pcscf: {ipsec: {mode: off}}` runs without IPsec)"
                }
                imslab_config::IpsecMode::Xfrm => {
                    " (pcscf.ipsec.mode xfrm needs CAP_NET_ADMIN and a kernel with ESP)"
                }
                imslab_config::IpsecMode::Off => "",
            };
            format!("cannot start the P-CSCF on {}{hint}", cfg.pcscf.listen)
        })?;
    let endpoints = server
        .local_addrs()
        .into_iter()
        .map(|(what, addr)| Endpoint { what, addr })
        .collect();
    let serve = async move { server.run(shutdown).await.context("P-CSCF") };
    Ok(Started {
        name: "pcscf",
        endpoints,
        serve: Box::pin(serve),
    })
}

async fn pgw(
    cfg: &Config,
    shared: &mut Shared,
    shutdown: CancellationToken,
) -> anyhow::Result<Started> {
    let mut opts = imslab_pgw::PgwOptions::new(&cfg.data_dir);
    opts.events = Some(shared.events.clone());
    let handle = imslab_pgw::start(&cfg.pgw, opts)
        .await
        .with_context(|| format!("cannot start the P-GW on {}", cfg.pgw.gtpc_listen))?;
    let mut endpoints = vec![Endpoint {
        what: "GTPv2-C S5/S8 (UDP)",
        addr: handle.local_addr(),
    }];
    if let Some(addr) = handle.gtpu_addr() {
        endpoints.push(Endpoint {
            what: "GTP-U S5/S8 (UDP)",
            addr,
        });
    }
    let view = Arc::new(PgwView(std::sync::Mutex::new(Some(handle))));
    shared.pgw = Some(view.clone());
    let serve = async move {
        shutdown.cancelled().await;
        let handle = view
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match handle {
            Some(h) => h.shutdown().await.context("P-GW shutdown"),
            None => Ok(()),
        }
    };
    Ok(Started {
        name: "pgw",
        endpoints,
        serve: Box::pin(serve),
    })
}

async fn web(
    cfg: &Config,
    shared: &Shared,
    shutdown: CancellationToken,
) -> anyhow::Result<Started> {
    if cfg.web.token.is_none() && !cfg.web.listen.ip().is_loopback() {
        anyhow::bail!(
            "web.listen {} is not a loopback address: set web.token so the API is not open \
             to the network",
            cfg.web.listen
        );
    }
    let listener = tcp_listener(cfg.web.listen, "the web UI and REST API").await?;
    let addr = listener.local_addr()?;
    let state = imslab_web::AppState::new(
        shared.store.clone(),
        cfg.network.domain.clone(),
        cfg.web.token.as_ref().map(String::from),
    );
    let state = match &shared.hss {
        Some(hss) => state.with_hss(Arc::new(HssAdmin(hss.clone()))),
        None => state,
    };
    let state = match &shared.pgw {
        Some(view) => state.with_pgw(view.clone()),
        None => state,
    };
    let app = imslab_web::router(state);
    let serve = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .context("web server failed")
    };
    Ok(Started {
        name: "web",
        endpoints: vec![Endpoint {
            what: "HTTP (UI, /api/v1)",
            addr,
        }],
        serve: Box::pin(serve),
    })
}
