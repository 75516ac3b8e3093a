//! A whole lab in the test process, wired as `imslab up` wires it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use imslab_config::{Config, ScscfEntry};
use imslab_hss::Hss;
use imslab_hss::cx::ppr::PprContent;
use imslab_hss::cx::rtr::RtrScope;
use imslab_scenarios::Lab;
use imslab_store::provision::{ProvisionDefaults, import_csv};
use imslab_store::{Store, SubscriberKey};
use imslab_types::{Imsi, UeEvent, UeEventSink};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub(crate) struct Events(Mutex<Vec<UeEvent>>);

impl UeEventSink for Events {
    fn emit(&self, e: UeEvent) {
        self.0.lock().unwrap().push(e);
    }
}

async fn free_port() -> u16 {
    let (low, high) = unassigned_ports();
    loop {
        let port = rand::random_range(low..high);
        let Ok(_udp) = UdpSocket::bind(("127.0.0.1", port)).await else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).await.is_ok() {
            return port;
        }
    }
}

/// Ports the kernel never hands out for port 0: below its ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32768 by default). A server binds its port some time after
/// [`free_port`] probed it; an ephemeral port could be taken by any socket meanwhile (this
/// process's or another test run's), one from here only by a deliberate bind.
fn unassigned_ports() -> (u16, u16) {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    assert!(
        low > 12_000,
        "ip_local_port_range starts at {low}: the lab needs free ports below it"
    );
    (10_000, low)
}

/// The REST API's view of the HSS. PPR pushes the user data only: with `Both`, this HSS
/// refuses subscribers that have no SIP Digest secret (AKA-only ones).
struct Admin(Arc<Hss>);

impl imslab_web::HssCommands for Admin {
    fn deregister(
        &self,
        identity: String,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            let imsi = Imsi::new(identity).map_err(|e| e.to_string())?;
            let done = self
                .0
                .deregister(
                    &SubscriberKey::Imsi(imsi),
                    RtrScope::Subscriber,
                    imslab_diameter::enums::ReasonCode::PERMANENT_TERMINATION,
                    Some("deregistered by the scenario".into()),
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("deregistered {}", done.len()))
        })
    }

    fn push_profile(
        &self,
        imsi: String,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            let imsi = Imsi::new(imsi).map_err(|e| e.to_string())?;
            self.0
                .push_profile(&SubscriberKey::Imsi(imsi), PprContent::UserData)
                .await
                .map_err(|e| e.to_string())?;
            Ok("pushed".into())
        })
    }
}

pub(crate) struct TestLab {
    pub(crate) lab: Lab,
    pub(crate) store: Store,
    events: Arc<Events>,
    hss: Arc<Hss>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    _dirs: Vec<tempfile::TempDir>,
}

pub(crate) fn load_subscribers(n: u32) -> String {
    load_subscribers_from(n, 10_000)
}

/// `load-subscribers.sh N FIRST`: N subscribers from IMSI 0010100000<FIRST>.
pub(crate) fn load_subscribers_from(n: u32, first: u32) -> String {
    let mut s = String::from("imsi,k,opc,amf,impus\n");
    for i in 0..n {
        let imsi = format!("0010100000{:05}", first + i);
        s.push_str(&format!(
            "{imsi},465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf,8000,\
             sip:{imsi}@ims.mnc001.mcc001.3gppnetwork.org\n"
        ));
    }
    s
}

impl TestLab {
    pub(crate) async fn start(configure: impl FnOnce(&mut Config)) -> Self {
        let (store, db) = imslab_store::testing::sqlite_store().await;
        let data = tempfile::tempdir().unwrap();
        let events = Arc::new(Events::default());
        let mut c = Config {
            data_dir: data.path().to_owned(),
            ..Config::default()
        };
        let hss_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        c.hss.listen = hss_listener.local_addr().unwrap();
        c.hss.request_timeout_ms = 3000;
        let scscf_port = free_port().await;
        c.scscf.listen = SocketAddr::from(([127, 0, 0, 1], scscf_port));
        c.scscf.uri = format!("sip:127.0.0.1:{scscf_port}");
        c.scscf.hss = c.hss.listen;
        c.icscf.listen = SocketAddr::from(([127, 0, 0, 1], free_port().await));
        // Originating requests for the home domain go through the I-CSCF (LIR) to the
        // terminating S-CSCF (TS 24.229 §5.4.3.2), the chain of issue 10.
        c.scscf.icscf = Some(format!("sip:{}", c.icscf.listen));
        c.icscf.hss = c.hss.listen;
        c.icscf.scscfs = vec![ScscfEntry {
            uri: c.scscf.uri.clone(),
            address: None,
            capabilities: vec![],
        }];
        c.pcscf.listen = SocketAddr::from(([127, 0, 0, 1], free_port().await));
        c.pcscf.icscf = c.icscf.listen;
        // Protected ports are virtual with userspace ESP; keep them apart from other tests.
        let base = 40_000 + (free_port().await % 10_000);
        c.pcscf.port_c = base;
        c.pcscf.port_s = base + 1;
        // Every P-CSCF on 127.0.0.1 sees every ESP packet to it: parallel labs get their own
        // SPI ranges, so none tries another's keys.
        c.pcscf.ipsec.spi_min = 0x10_0000 * u32::from(base % 2000 + 1);
        c.pcscf.ipsec.spi_max = c.pcscf.ipsec.spi_min + 0xf_ffff;
        let web_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        c.web.listen = web_listener.local_addr().unwrap();
        configure(&mut c);

        let hss = Arc::new(
            Hss::start(
                &c.hss,
                &c.network.domain,
                store.clone(),
                hss_listener,
                events.clone(),
            )
            .expect("HSS starts"),
        );
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let sink: Arc<dyn UeEventSink> = events.clone();
        let icscf = imslab_icscf::Server::bind(&c, store.clone(), sink.clone(), &c.data_dir)
            .await
            .expect("I-CSCF binds");
        icscf
            .diameter()
            .wait_peer_up(&c.hss.origin_host, Duration::from_secs(10))
            .await
            .expect("I-CSCF reaches the HSS");
        let s = stop.clone();
        tasks.push(tokio::spawn(async move {
            icscf.run(s).await.expect("I-CSCF runs");
        }));
        let scscf = imslab_scscf::Server::bind(&c, store.clone(), sink.clone(), &c.data_dir)
            .await
            .expect("S-CSCF binds");
        scscf
            .diameter()
            .wait_peer_up(&c.hss.origin_host, Duration::from_secs(10))
            .await
            .expect("S-CSCF reaches the HSS");
        let s = stop.clone();
        tasks.push(tokio::spawn(async move {
            scscf.run(s).await.expect("S-CSCF runs");
        }));
        let pcscf = imslab_pcscf::Server::bind(
            &c,
            imslab_pcscf::Deps {
                store: store.clone(),
                events: sink.clone(),
                data_dir: c.data_dir.clone(),
            },
        )
        .await
        .expect("P-CSCF binds (userspace ESP needs CAP_NET_RAW)");
        let s = stop.clone();
        tasks.push(tokio::spawn(async move {
            pcscf.run(s).await.expect("P-CSCF runs");
        }));
        let state = imslab_web::AppState::new(store.clone(), c.network.domain.clone(), None)
            .with_hss(Arc::new(Admin(hss.clone())));
        let app = imslab_web::router(state);
        let s = stop.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(web_listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        }));
        let lab = Self {
            lab: Lab::from_config(&c),
            store,
            events,
            hss,
            stop,
            tasks,
            _dirs: vec![db, data],
        };
        let csv = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("library/subscribers.csv"),
        )
        .unwrap();
        lab.import(&csv).await;
        lab
    }

    pub(crate) async fn import(&self, csv: &str) {
        let defaults = ProvisionDefaults::new(self.lab.domain.clone());
        import_csv(&self.store, csv, &defaults, SystemTime::now())
            .await
            .expect("subscribers import");
    }

    pub(crate) fn events_text(&self) -> String {
        self.events
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{:?} {} {:?} {}",
                    e.function,
                    e.step,
                    e.outcome,
                    e.reason.clone().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The functions' data directory (`pcscf.pcap` when `pcscf.pcap` is on).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self._dirs[1].path().to_owned()
    }

    /// Stops every function; the store and data directories live as long as the returned
    /// guards (so captures can be read after everything is flushed and closed).
    pub(crate) async fn stop(self) -> Vec<tempfile::TempDir> {
        self.stop.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
        if let Ok(hss) = Arc::try_unwrap(self.hss) {
            hss.shutdown().await;
        }
        self._dirs
    }
}
