//! The tokio driver: GTPv2-C over UDP (port 2123 by default), the persisted restart counter,
//! the optional pcap tap and the optional user plane.
//!
//! All protocol decisions are in [`Pgw`]; this module only moves datagrams, stamps events with
//! the wall clock and hands tunnel updates to the user plane.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use imslab_config::PgwConfig;
use imslab_pcap::PcapWriter;
use imslab_types::UeEventSink;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::session::{Output, Pgw, SessionInfo};
use crate::settings::Settings;
use crate::user_plane::{UserPlane, UserPlaneSettings};
use crate::{Error, Result};

/// Name of the restart-counter file in the data directory.
pub const RECOVERY_FILE: &str = "pgw-recovery";

/// Reads the restart counter from `dir`, increments it (modulo 256, TS 23.007 §18) and
/// writes it back before the P-GW answers anything. A missing file means a first start (1).
pub fn next_recovery(dir: &Path) -> Result<u8> {
    let path = dir.join(RECOVERY_FILE);
    let old = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().parse::<u8>().map_err(|_| {
            Error::Config(format!("{} does not hold a number 0..255", path.display()))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            return Err(Error::Io {
                context: format!("reading {}", path.display()),
                source: e,
            });
        }
    };
    let new = old.wrapping_add(1);
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        context: format!("creating {}", dir.display()),
        source: e,
    })?;
    let tmp = dir.join(format!("{RECOVERY_FILE}.tmp"));
    std::fs::write(&tmp, format!("{new}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Error::Io {
            context: format!("writing {}", path.display()),
            source: e,
        })?;
    Ok(new)
}

/// What the caller passes besides the configuration.
pub struct PgwOptions {
    /// The data directory (the restart counter lives there).
    pub data_dir: PathBuf,
    /// Where per-UE events go.
    pub events: Option<Arc<dyn UeEventSink>>,
    /// A pcap file for the GTPv2-C traffic.
    pub pcap: Option<Box<dyn Write + Send>>,
}

impl PgwOptions {
    /// Options with only a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            events: None,
            pcap: None,
        }
    }
}

type Pcap = Arc<Mutex<PcapWriter<Box<dyn Write + Send>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running P-GW.
pub struct PgwHandle {
    core: Arc<Mutex<Pgw>>,
    local: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<()>>,
    user_plane: Option<UserPlane>,
    pcap: Option<Pcap>,
}

impl PgwHandle {
    /// The GTPv2-C socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The GTP-U socket's address, when the user plane runs.
    pub fn gtpu_addr(&self) -> Option<SocketAddr> {
        self.user_plane.as_ref().map(UserPlane::local_addr)
    }

    /// This run's restart counter.
    pub fn recovery(&self) -> u8 {
        lock(&self.core).recovery()
    }

    /// The active sessions.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        lock(&self.core).sessions()
    }

    /// Sends Delete Bearer Requests for every session (when configured), waits for the answers
    /// (at most T3 × N3), then stops.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let r = match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(Error::Io {
                context: "P-GW task".into(),
                source: std::io::Error::other(e),
            }),
        };
        if let Some(up) = self.user_plane.take() {
            up.stop().await;
        }
        if let Some(p) = &self.pcap {
            let _ = lock(p).flush();
        }
        r
    }
}

impl Drop for PgwHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the P-GW: reads and bumps the restart counter, binds GTPv2-C, and starts the user
/// plane when `user_plane: tun`.
pub async fn start(cfg: &PgwConfig, opts: PgwOptions) -> Result<PgwHandle> {
    let settings = Settings::from_config(cfg)?;
    let user_plane = if cfg.user_plane.is_tun() {
        let ups = UserPlaneSettings::from_settings(&settings, cfg)?;
        Some(crate::user_plane::start(ups).await?)
    } else {
        None
    };
    let recovery = next_recovery(&opts.data_dir)?;
    let sock = UdpSocket::bind(cfg.gtpc_listen)
        .await
        .map_err(|e| Error::Io {
            context: format!("binding GTPv2-C {}", cfg.gtpc_listen),
            source: e,
        })?;
    let local = sock.local_addr().map_err(|e| Error::Io {
        context: "GTPv2-C address".into(),
        source: e,
    })?;
    let delete_on_shutdown = cfg.delete_bearers_on_shutdown;
    let pcap = match opts.pcap {
        Some(w) => Some(Arc::new(Mutex::new(PcapWriter::new(w).map_err(|e| {
            Error::Io {
                context: "pcap header".into(),
                source: e,
            }
        })?))),
        None => None,
    };
    // The address recorded in the pcap for our side.
    let pcap_local = SocketAddr::new(settings.gtpc_address, local.port());
    let core = Arc::new(Mutex::new(Pgw::new(settings, recovery)));
    let (stop_tx, stop_rx) = oneshot::channel();
    let ctx = Ctx {
        core: core.clone(),
        sock,
        events: opts.events,
        pcap: pcap.clone(),
        pcap_local,
        tunnels: user_plane.as_ref().map(UserPlane::updates),
    };
    let task = tokio::spawn(run(ctx, stop_rx, delete_on_shutdown));
    tracing::info!(%local, recovery, "P-GW GTPv2-C listening");
    Ok(PgwHandle {
        core,
        local,
        stop: Some(stop_tx),
        task,
        user_plane,
        pcap,
    })
}

struct Ctx {
    core: Arc<Mutex<Pgw>>,
    sock: UdpSocket,
    events: Option<Arc<dyn UeEventSink>>,
    pcap: Option<Pcap>,
    pcap_local: SocketAddr,
    tunnels: Option<mpsc::UnboundedSender<crate::session::TunnelUpdate>>,
}

impl Ctx {
    async fn dispatch(&self, out: Output) {
        for t in &out.transmit {
            if let Err(e) = self.sock.send_to(&t.bytes, t.to).await {
                tracing::warn!(to = %t.to, error = %e, "GTPv2-C send failed");
            }
            if let Some(p) = &self.pcap {
                let _ = lock(p).udp(SystemTime::now(), self.pcap_local, t.to, &t.bytes);
            }
        }
        let now = SystemTime::now();
        for ev in out.events {
            tracing::info!(imsi = ?ev.imsi.as_ref().map(|i| i.as_str().to_owned()), step = ev.step, outcome = ?ev.outcome, reason = ev.reason.as_deref().unwrap_or(""), "pgw");
            if let Some(sink) = &self.events {
                sink.emit(ev.into_ue_event(now));
            }
        }
        if let Some(tx) = &self.tunnels {
            for u in out.tunnels {
                let _ = tx.send(u);
            }
        }
    }
}

async fn run(ctx: Ctx, mut stop: oneshot::Receiver<()>, delete_on_shutdown: bool) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    let mut stopping = false;
    loop {
        if stopping && lock(&ctx.core).pending_requests() == 0 {
            return Ok(());
        }
        let deadline = lock(&ctx.core).next_deadline();
        let sleep = tokio::time::sleep_until(deadline.map_or_else(
            || tokio::time::Instant::now() + std::time::Duration::from_secs(3600),
            tokio::time::Instant::from_std,
        ));
        tokio::select! {
            r = ctx.sock.recv_from(&mut buf) => {
                let (n, from) = match r {
                    Ok(v) => v,
                    // ICMP port unreachable from an earlier send surfaces here on Linux.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(Error::Io { context: "GTPv2-C receive".into(), source: e }),
                };
                let data = buf.get(..n).unwrap_or_default();
                if let Some(p) = &ctx.pcap {
                    let _ = lock(p).udp(SystemTime::now(), from, ctx.pcap_local, data);
                }
                let out = lock(&ctx.core).handle_datagram(Instant::now(), from, data);
                ctx.dispatch(out).await;
            }
            () = sleep, if deadline.is_some() => {
                let out = lock(&ctx.core).poll(Instant::now());
                ctx.dispatch(out).await;
            }
            _ = &mut stop, if !stopping => {
                stopping = true;
                if delete_on_shutdown {
                    let out = lock(&ctx.core).shutdown(Instant::now());
                    ctx.dispatch(out).await;
                }
            }
        }
    }
}
