//! Full IMS AKA registrations driven by SIPp 3.6.1 (package sip-tester) over UDP through the
//! I-CSCF and the S-CSCF to the HSS, all three in this process on a 2-worker tokio runtime,
//! with the SQLite store (WAL) and the per-UE event recorder, as `imslab up` runs them.
//! Each registration is two SIP round trips and four Cx transactions (UAR, MAR, UAR, SAR).
//!
//! Each function runs on its own one-worker tokio runtime whose threads carry its name, so
//! the CPU time per registration of the I-CSCF, the S-CSCF, the HSS, the SQLite workers
//! (shared by the HSS and the S-CSCF) and SIPp (a child, from cutime/cstime) is read from
//! /proc (clock ticks of 10 ms) around the SIPp run; that figure, not the wall rate, says
//! whether 2,000 registrations/s fit in two cores (≤ 1 ms CPU per registration in all).
//!
//! `cargo bench -p imslab-scscf --bench sipp_load -- [calls] [rate] [limit]`
//! (defaults 20000 calls at 3000/s, at most 300 in flight); `NO_EVENTS=1` drops the per-UE
//! events instead of recording them, to see what the timeline costs.
//!
//! `SHARED=1` runs the three functions on one two-worker runtime (thread name `lab`), as
//! `imslab up` does: the CPU is then reported for `lab` as a whole, not per function.
//! `USERS=N` provisions N subscribers (default 5,000); with as many registrations as users,
//! each phone registers once, and the process's resident-set growth over the run divided by
//! the registered phones is the memory per registered phone (the HSS, I-CSCF and S-CSCF state,
//! caches and store included; SIPp is another process), e.g. `USERS=100000 cargo bench -p
//! imslab-scscf --bench sipp_load -- 100000 2000 300`.
//!
//! `SETTLE_SECS=N` reads the resident set again after N quiet seconds (past the SIP
//! transactions' Timer J, 32 s), which is the state the phones themselves keep.
//!
//! The bench process uses mimalloc as its global allocator, as the `imslab` binary does.
//!
//! `COUNT_SQL=1` counts the SQL statements sqlx runs (its `sqlx::query` events, by the
//! statement's first words) and prints them per registration attempt; the count, not the
//! timing, is what to read from such a run (the counting costs CPU).
//!
//! SIPp 3.6.1 gets about 3 % of AKA answers wrong (RES with a 0x00 byte, peers.md); those
//! failures are not traced at load (see the `ims` test for that proof); the report
//! compares the failed count with the expected 3.1 %.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use imslab_config::{Config, ScscfEntry};
use imslab_hss::Hss;
use imslab_store::provision::{ImpuInput, NewSubscriber, ProvisionDefaults, SubscriberInput};
use imslab_store::{EventRecorder, RecorderOptions, Store, StoreOptions};
use imslab_test_support::peer;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DOMAIN: &str = "ims.mnc001.mcc001.3gppnetwork.org";
const K_HEX: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
const OP_HEX: &str = "cdc202d5123e20f62b6d676ac72cb318";
const AMF_HEX: &str = "b9b9";
/// Subscribers provisioned (`USERS`, default 5,000); SIPp's registrations cycle through them.
fn users() -> u32 {
    std::env::var("USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}
const HSS_HOST: &str = "hss.ims.mnc001.mcc001.3gppnetwork.org";

fn imsi(n: u32) -> String {
    format!("00101{n:010}")
}

fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = u.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn provision(store: &Store, users: u32) {
    let defaults = ProvisionDefaults::new(imslab_types::Realm::new(DOMAIN).expect("realm"));
    let news: Vec<NewSubscriber> = (1..=users)
        .map(|n| {
            let input = SubscriberInput {
                imsi: imsi(n),
                k: K_HEX.into(),
                op: Some(OP_HEX.into()),
                amf: Some(AMF_HEX.into()),
                impus: vec![ImpuInput::Uri(format!("sip:{}@{DOMAIN}", imsi(n)))],
                ..SubscriberInput::default()
            };
            NewSubscriber::from_input(&input, &defaults).expect("valid")
        })
        .collect();
    store
        .subscribers()
        .insert_all(&news, SystemTime::now())
        .await
        .expect("provisioned");
}

/// CPU seconds (user + system) per thread-name group of this process, from
/// /proc/self/task/*/stat; the last entry is this process's waited-for children (SIPp).
fn cpu_by_group() -> Vec<(String, f64)> {
    const GROUPS: [&str; 5] = ["icscf", "scscf", "hss", "lab", "sqlx-sqlite"];
    let mut sums = vec![0.0; GROUPS.len() + 1];
    let fields = |stat: &str| -> Option<(String, Vec<f64>)> {
        let (head, tail) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        // After the command name: state, ppid, ...; utime is the 14th field of the file.
        let f = tail
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        Some((comm, f))
    };
    let tick = |f: &[f64], i: usize| f.get(i).copied().unwrap_or(0.0) / 100.0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            let Some((comm, f)) = fields(&stat) else {
                continue;
            };
            let cpu = tick(&f, 10) + tick(&f, 11);
            let g = GROUPS
                .iter()
                .position(|g| comm.starts_with(g))
                .unwrap_or(GROUPS.len());
            if let Some(s) = sums.get_mut(g) {
                *s += cpu;
            }
        }
    }
    let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let children = fields(&own).map_or(0.0, |(_, f)| tick(&f, 12) + tick(&f, 13));
    let mut out: Vec<(String, f64)> = GROUPS
        .iter()
        .map(|g| (*g).to_owned())
        .chain(["other threads".to_owned()])
        .zip(sums)
        .collect();
    out.push(("SIPp".to_owned(), children));
    out
}

/// A runtime of `workers` worker threads whose threads (workers and blocking pool) are named
/// `name`.
fn runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("runtime")
}

/// Counts the statements sqlx reports (target `sqlx::query`), by their summary (first words).
#[derive(Default, Clone)]
struct SqlCounter {
    counts: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
}

struct Summary(Option<String>);

impl tracing::field::Visit for Summary {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" && self.0.is_none() {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SqlCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut v = Summary(None);
        event.record(&mut v);
        let key = v.0.unwrap_or_else(|| "?".to_owned());
        let key = key.trim_end_matches(" …").trim_end_matches(',').to_owned();
        if let Ok(mut m) = self.counts.lock() {
            *m.entry(key).or_default() += 1;
        }
    }
}

impl SqlCounter {
    fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        self.counts.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// A sink that drops everything (`NO_EVENTS=1`), to see what the timeline costs.
struct NoEvents;

impl imslab_types::UeEventSink for NoEvents {
    fn emit(&self, _: imslab_types::UeEvent) {}
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (calls, rate, limit) = (arg(0, 20_000), arg(1, 3000), arg(2, 300));
    let sipp = peer("sipp", "sip-tester");
    let users = users();
    let sql = std::env::var_os("COUNT_SQL").map(|_| {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt;
        let counter = SqlCounter::default();
        let subscriber = tracing_subscriber::registry().with(
            counter.clone().with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("sqlx::query", tracing::Level::TRACE),
            ),
        );
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        counter
    });
    let main_rt = runtime("bench", 1);
    let shared = std::env::var_os("SHARED").is_some();
    let own = if shared {
        vec![runtime("lab", 2)]
    } else {
        vec![runtime("hss", 1), runtime("icscf", 1), runtime("scscf", 1)]
    };
    let pick = |i: usize| own.get(i).or_else(|| own.first()).expect("a runtime");
    let (hss_rt, icscf_rt, scscf_rt) = (pick(0), pick(1), pick(2));
    let dir = tempfile::tempdir().expect("dir");
    let (store, recorder, _rec) = main_rt.block_on(async {
        let store = Store::open(&StoreOptions::sqlite_file(&dir.path().join("imslab.db")))
            .await
            .expect("store");
        provision(&store, users).await;
        let (recorder, rec) = EventRecorder::spawn(store.clone(), RecorderOptions::default());
        (store, recorder, rec)
    });
    let events: Arc<dyn imslab_types::UeEventSink> = if std::env::var_os("NO_EVENTS").is_some() {
        Arc::new(NoEvents)
    } else {
        Arc::new(recorder.clone())
    };
    let mut config = Config::default();
    let hss = hss_rt.block_on(async {
        let hss_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("hss");
        config.hss.listen = hss_listener.local_addr().expect("addr");
        Hss::start(
            &config.hss,
            &config.network.domain,
            store.clone(),
            hss_listener,
            events.clone(),
        )
        .expect("HSS")
    });
    let sport = free_port();
    config.scscf.listen = SocketAddr::from(([127, 0, 0, 1], sport));
    config.scscf.uri = format!("sip:127.0.0.1:{sport}");
    config.scscf.hss = config.hss.listen;
    config.icscf.listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    config.icscf.hss = config.hss.listen;
    config.icscf.scscfs = vec![ScscfEntry {
        uri: config.scscf.uri.clone(),
        address: None,
        capabilities: vec![],
    }];
    let stop = CancellationToken::new();
    let scscf = scscf_rt.block_on(async {
        let s = imslab_scscf::Server::bind(&config, store.clone(), events.clone(), dir.path())
            .await
            .expect("S-CSCF");
        s.diameter()
            .wait_peer_up(HSS_HOST, Duration::from_secs(10))
            .await
            .expect("S-CSCF up");
        s
    });
    let icscf = icscf_rt.block_on(async {
        let s = imslab_icscf::Server::bind(&config, store.clone(), events.clone(), dir.path())
            .await
            .expect("I-CSCF");
        s.diameter()
            .wait_peer_up(HSS_HOST, Duration::from_secs(10))
            .await
            .expect("I-CSCF up");
        s
    });
    let s1 = scscf_rt.spawn(scscf.run(stop.clone()));
    let s2 = icscf_rt.spawn(icscf.run(stop.clone()));

    let auth = format!(
        "[authentication username={{user}}@{DOMAIN} aka_K={} aka_OP={} aka_AMF={}]",
        imslab_test_support::sipp::escaped(K_HEX),
        imslab_test_support::sipp::escaped(OP_HEX),
        imslab_test_support::sipp::escaped(AMF_HEX)
    );
    let mut csv = String::from("SEQUENTIAL\n");
    for n in 1..=users {
        csv.push_str(&format!(
            "{};{}\n",
            imsi(n),
            auth.replace("{user}", &imsi(n))
        ));
    }
    std::fs::write(dir.path().join("users.csv"), csv).expect("csv");
    std::fs::write(
        dir.path().join("reg.xml"),
        imslab_test_support::sipp::aka_register_scenario(
            DOMAIN,
            &imslab_test_support::sipp::AkaRegister {
                expires: 600_000,
                ..Default::default()
            },
        ),
    )
    .expect("xml");
    let rss_before = rss_kib();
    let sql_before = sql.as_ref().map(SqlCounter::snapshot);
    let cpu_before = cpu_by_group();
    let start = Instant::now();
    let out = Command::new(sipp)
        .current_dir(dir.path())
        .args([
            "-sf",
            "reg.xml",
            "-inf",
            "users.csv",
            "-t",
            "u1",
            "-i",
            "127.0.0.1",
        ])
        .args(["-p", &free_port().to_string(), "-buff_size", "8388608"])
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
            "-l",
            &limit.to_string(),
        ])
        .args(["-nostdin", "-timeout", "300s", "-timeout_error"])
        .arg(config.icscf.listen.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("sipp runs");
    let took = start.elapsed();
    let cpu_after = cpu_by_group();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let count = |what: &str| -> u64 {
        stdout
            .lines()
            .rev()
            .find(|l| l.contains(what))
            .and_then(|l| l.split('|').next_back())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let (ok, failed) = (count("Successful call"), count("Failed call"));
    let retrans = count("Retransmissions");
    let rss_delta = rss_kib().saturating_sub(rss_before);
    // With no more registrations than users each registered phone registered once; beyond,
    // the last registration of each user counts.
    let phones = u64::from(users).min(ok).max(1);
    println!(
        "SIPp {calls} registrations at {rate}/s (limit {limit}): {ok} registered, {failed} failed \
         ({:.1} %, SIPp's NUL-byte RES bug alone expects 3.1 %), {} retransmissions, \
         {:.2?} wall, {:.0} registrations/s; process RSS +{} MiB for {phones} registered \
         phones of {users} users: {} bytes per registered phone; events dropped: {}",
        100.0 * failed as f64 / (ok + failed).max(1) as f64,
        retrans,
        took,
        ok as f64 / took.as_secs_f64(),
        rss_delta / 1024,
        rss_delta * 1024 / phones,
        recorder.dropped()
    );
    // SIP transactions (Timer J, 32 s over UDP) and challenges hold memory for a while after
    // the load: with SETTLE_SECS=N the resident set is read again after N quiet seconds.
    if let Some(settle) = std::env::var("SETTLE_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_secs(settle));
        let settled = rss_kib().saturating_sub(rss_before);
        println!(
            "after {settle} s quiet: process RSS +{} MiB: {} bytes per registered phone",
            settled / 1024,
            settled * 1024 / phones
        );
    }
    // Every attempt (registered or failed) ran both round trips.
    let attempts = (ok + failed).max(1) as f64;
    let mut total = 0.0;
    println!("CPU per registration attempt (clock ticks of 10 ms over {attempts} attempts):");
    for ((name, after), (_, before)) in cpu_after.iter().zip(&cpu_before) {
        let used = after - before;
        total += used;
        println!(
            "  {name:<14} {:>8.1} µs  ({used:.2} s)",
            1e6 * used / attempts
        );
    }
    println!(
        "  {:<14} {:>8.1} µs  → {:.0} registrations/s would fill two cores",
        "total",
        1e6 * total / attempts,
        2.0 * attempts / total.max(1e-9)
    );
    if let (Some(sql), Some(before)) = (&sql, &sql_before) {
        let after = sql.snapshot();
        let mut all = 0;
        println!("SQL statements per registration attempt (sqlx::query events, by first words):");
        for (what, n) in &after {
            let n = n - before.get(what).copied().unwrap_or(0);
            if n > 0 {
                all += n;
                println!("  {:>7.3}  {what}", n as f64 / attempts);
            }
        }
        println!("  {:>7.3}  in all", all as f64 / attempts);
    }
    if ok == 0 {
        println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    stop.cancel();
    let _ = scscf_rt.block_on(s1);
    let _ = icscf_rt.block_on(s2);
    hss_rt.block_on(hss.shutdown());
    drop(main_rt);
}
