//! The scenario library (`scenarios/library/*.yaml`, read, not copied) replayed by the soft UE
//! against a whole lab in this process: HSS (SQLite), I-CSCF, S-CSCF, this P-CSCF with
//! userspace ESP on 127.0.0.1, and the REST API for RTR, wired as `imslab up` wires them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use imslab_config::{Config, ScscfEntry};
use imslab_hss::Hss;
use imslab_hss::cx::ppr::PprContent;
use imslab_hss::cx::rtr::RtrScope;
use imslab_scenarios::{Lab, ReplayOptions, ReplayReport, replay};
use imslab_store::provision::{ProvisionDefaults, import_csv};
use imslab_store::{Store, SubscriberKey};
use imslab_types::{Imsi, UeEvent, UeEventSink};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::harness::lab_lock_exclusive;

#[derive(Default)]
struct Events(Mutex<Vec<UeEvent>>);

impl UeEventSink for Events {
    fn emit(&self, e: UeEvent) {
        self.0.lock().unwrap().push(e);
    }
}

async fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).await.is_ok() {
            return port;
        }
    }
}

/// The REST API's view of the HSS (RTR and PPR).
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

struct LibraryLab {
    lab: Lab,
    store: Store,
    events: Arc<Events>,
    pcscf: imslab_pcscf::StatusHandle,
    hss: Arc<Hss>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    _dirs: Vec<tempfile::TempDir>,
}

fn library(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/library")
        .join(name)
}

impl LibraryLab {
    async fn start(configure: impl FnOnce(&mut Config)) -> Self {
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
        c.icscf.hss = c.hss.listen;
        c.icscf.scscfs = vec![ScscfEntry {
            uri: c.scscf.uri.clone(),
            address: None,
            capabilities: vec![],
        }];
        c.pcscf.listen = SocketAddr::from(([127, 0, 0, 1], free_port().await));
        c.pcscf.icscf = c.icscf.listen;
        let base = 40_000 + (free_port().await % 10_000);
        c.pcscf.port_c = base;
        c.pcscf.port_s = base + 1;
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
        let status = pcscf.status();
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
            pcscf: status,
            hss,
            stop,
            tasks,
            _dirs: vec![db, data],
        };
        let csv = std::fs::read_to_string(library("subscribers.csv")).unwrap();
        let defaults = ProvisionDefaults::new(lab.lab.domain.clone());
        import_csv(&lab.store, &csv, &defaults, SystemTime::now())
            .await
            .expect("subscribers import");
        lab
    }

    fn events_text(&self) -> String {
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

    async fn run(&self, file: &str) -> ReplayReport {
        let opts = ReplayOptions {
            scenario: library(file),
            lab: self.lab.clone(),
            store: Some(self.store.clone()),
            junit: None,
            pcap: std::env::var_os("PCSCF_LIBRARY_PCAP").map(PathBuf::from),
            load: None,
            print_log: false,
        };
        let report = tokio::time::timeout(Duration::from_secs(120), replay(opts))
            .await
            .unwrap_or_else(|_| panic!("{file} did not finish within 120 s"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            report.passed(),
            "{file} failed: {:?}\n{}\nP-CSCF: {:?}\nUE events of the lab:\n{}",
            report.failure,
            report.log.join("\n"),
            self.pcscf.get(),
            self.events_text()
        );
        report
    }

    async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
        if let Ok(hss) = Arc::try_unwrap(self.hss) {
            hss.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_two_ues_on_one_impu_each_keep_their_own_sas() {
    let _g = lab_lock_exclusive().await;
    let lab = LibraryLab::start(|_| {}).await;
    lab.run("two-ues-one-impu.yaml").await;
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_rtr_notify_reaches_the_phone_before_its_sas_go() {
    let _g = lab_lock_exclusive().await;
    let lab = LibraryLab::start(|_| {}).await;
    lab.run("reg-event-rtr.yaml").await;
    lab.stop().await;
}
