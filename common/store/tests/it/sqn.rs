//! The SQN handout: never twice, under concurrency and across SIGKILL.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imslab_store::{Error, Store, StoreOptions, SubscriberKey};
use imslab_types::{Impi, Imsi, Sqn};

use crate::{new_subscriber, on_both, t0};

const IMSI: &str = "001010000000001";
const IND_BITS: u8 = 5;

fn impi() -> Impi {
    Impi::new(format!("{IMSI}@ims.mnc001.mcc001.3gppnetwork.org")).unwrap()
}

fn seq(s: u64) -> u64 {
    s >> IND_BITS
}

async fn next_sqns_follow_seq_and_ind(store: Store) {
    store
        .subscribers()
        .insert(&new_subscriber(IMSI, None), t0())
        .await
        .unwrap();
    let a = store
        .subscribers()
        .next_sqns(&impi(), 1, IND_BITS)
        .await
        .unwrap();
    assert_eq!(a, [Sqn::new((1 << 5) | 1).unwrap()]);
    let b = store
        .subscribers()
        .next_sqns(&impi(), 3, IND_BITS)
        .await
        .unwrap();
    let got: Vec<u64> = b.iter().map(|s| s.value()).collect();
    assert_eq!(got, [(2 << 5) | 2, (3 << 5) | 3, (4 << 5) | 4]);
    let stored = store
        .subscribers()
        .require(&SubscriberKey::Impi(impi()))
        .await
        .unwrap()
        .sqn;
    assert_eq!(stored, *b.last().unwrap());
    // Resync moves the counter to SQN_MS; the next SQN follows it.
    let ms = Sqn::new((1000 << 5) | 7).unwrap();
    assert!(store.subscribers().set_sqn(&impi(), ms).await.unwrap());
    let c = store
        .subscribers()
        .next_sqns(&impi(), 1, IND_BITS)
        .await
        .unwrap();
    assert_eq!(c[0].value(), (1001 << 5) | 8);
}
on_both!(next_sqns_follow_seq_and_ind, next_sqns_follow_seq_and_ind);

async fn next_sqns_for_unknown_impi_is_not_found_and_exhaustion_is_refused(store: Store) {
    let unknown = Impi::new("nobody@ims.example").unwrap();
    assert!(matches!(
        store.subscribers().next_sqns(&unknown, 1, IND_BITS).await,
        Err(Error::NotFound { .. })
    ));
    store
        .subscribers()
        .insert(&new_subscriber(IMSI, None), t0())
        .await
        .unwrap();
    store
        .subscribers()
        .set_sqn(&impi(), Sqn::new(Sqn::MAX).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        store.subscribers().next_sqns(&impi(), 1, IND_BITS).await,
        Err(Error::SqnExhausted { .. })
    ));
}
on_both!(
    next_sqns_for_unknown_impi_is_not_found_and_exhaustion_is_refused,
    next_sqns_for_unknown_impi_is_not_found_and_exhaustion_is_refused
);

async fn concurrent_handouts_never_repeat(store: Store) {
    store
        .subscribers()
        .insert(&new_subscriber(IMSI, None), t0())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..32u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..60u32 {
                let n = 1 + (t + i) % 3;
                got.extend(
                    store
                        .subscribers()
                        .next_sqns(&impi(), n, IND_BITS)
                        .await
                        .unwrap(),
                );
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<u64> = all.iter().map(|s| s.value()).collect();
    assert_eq!(unique.len(), all.len(), "an SQN was handed out twice");
    let seqs: HashSet<u64> = all.iter().map(|s| seq(s.value())).collect();
    assert_eq!(seqs.len(), all.len(), "a SEQ was handed out twice");
    let stored = store
        .subscribers()
        .require(&SubscriberKey::Impi(impi()))
        .await
        .unwrap()
        .sqn;
    assert_eq!(seq(stored.value()), all.len() as u64);
}
on_both!(
    concurrent_handouts_never_repeat,
    concurrent_handouts_never_repeat
);

/// A second store on the same SQLite file (the CLI next to a running HSS) hands out SQNs
/// concurrently with the first; the file lock and busy timeout serialise them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_views_of_one_sqlite_file_never_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::sqlite_file(&dir.path().join("imslab.db"));
    let a = Store::open(&opts).await.unwrap();
    let b = Store::open(&opts).await.unwrap();
    a.subscribers()
        .insert(&new_subscriber(IMSI, None), t0())
        .await
        .unwrap();
    let run = |s: Store| {
        tokio::spawn(async move {
            let mut v = Vec::new();
            for _ in 0..300 {
                v.extend(
                    s.subscribers()
                        .next_sqns(&impi(), 1, IND_BITS)
                        .await
                        .unwrap(),
                );
            }
            v
        })
    };
    let (x, y) = (run(a.clone()), run(b.clone()));
    let mut all = x.await.unwrap();
    all.extend(y.await.unwrap());
    let unique: HashSet<u64> = all.iter().map(|s| s.value()).collect();
    assert_eq!(unique.len(), 600);
}

// ---- SIGKILL ----

const CHILD_URL: &str = "IMSLAB_SQN_CHILD_URL";
const CHILD_LOG: &str = "IMSLAB_SQN_CHILD_LOG";

/// The child: hammers next_sqns from 16 tasks (half through the batching [`SqnAllocator`], as
/// the HSS does), appending each SQN it received to the log with one write(2) per batch, until
/// killed.
async fn hammer(url: &str, log: &Path) -> ! {
    let store = Store::open(&StoreOptions::new(url)).await.unwrap();
    let file = std::sync::Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
            .unwrap(),
    ));
    for t in 0..16u32 {
        let store = store.clone();
        let file = file.clone();
        tokio::spawn(async move {
            let mut i = 0u32;
            loop {
                i += 1;
                let n = 1 + (t + i) % 3;
                let sqns = store
                    .subscribers()
                    .next_sqns(&impi(), n, IND_BITS)
                    .await
                    .unwrap();
                let line: String = sqns.iter().map(|s| format!("{}\n", s.value())).collect();
                let mut f = file.lock().unwrap();
                f.write_all(line.as_bytes()).unwrap();
            }
        });
    }
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

fn logged(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

fn spawn_child(test: &str, url: &str, log: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_URL, url)
        .env(CHILD_LOG, log)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn wait_for_lines(child: &mut Child, log: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while logged(log).len() < n {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the SQN child exited early with {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the SQN child logged fewer than {n} SQNs in 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parent: start the child, SIGKILL it mid-load, restart it, SIGKILL again, then check that the
/// persisted record of every SQN any process received has no repeat, and that the store's
/// counter is beyond all of them.
async fn sqn_never_repeats_across_sigkill(store: Store, url: String, test: &str) {
    if let (Ok(url), Ok(log)) = (std::env::var(CHILD_URL), std::env::var(CHILD_LOG)) {
        hammer(&url, Path::new(&log)).await;
    }
    store
        .subscribers()
        .insert(&new_subscriber(IMSI, None), t0())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("handed-out.log");
    let mut target = 0;
    for round in 0..3 {
        let mut child = spawn_child(test, &url, &log);
        target += 3000;
        wait_for_lines(&mut child, &log, target);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the child was not killed");
        target = logged(&log).len();
    }
    let all = logged(&log);
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "an SQN was handed out twice across SIGKILL"
    );
    let max = all.iter().copied().max().unwrap();
    let stored = store
        .subscribers()
        .require(&SubscriberKey::Imsi(Imsi::new(IMSI).unwrap()))
        .await
        .unwrap();
    assert!(
        seq(stored.sqn.value()) >= seq(max),
        "the store forgot a handed-out SQN"
    );
    let next = store
        .subscribers()
        .next_sqns(&impi(), 1, IND_BITS)
        .await
        .unwrap()[0];
    assert!(seq(next.value()) > seq(max));
}

mod sqn_never_repeats_across_sigkill {
    fn test_name(backend: &str) -> String {
        let path = module_path!();
        let path = path.split_once("::").map_or(path, |(_, rest)| rest);
        format!("{path}::{backend}")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imslab.db");
        let url = std::env::var(super::CHILD_URL)
            .unwrap_or_else(|_| format!("sqlite://{}", path.display()));
        let store = imslab_store::Store::open(&imslab_store::StoreOptions::new(url.clone()))
            .await
            .unwrap();
        super::sqn_never_repeats_across_sigkill(store, url, &test_name("sqlite")).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Ok(url) = std::env::var(super::CHILD_URL) {
            let store = imslab_store::Store::open(&imslab_store::StoreOptions::new(url.clone()))
                .await
                .unwrap();
            super::sqn_never_repeats_across_sigkill(store, url, "").await;
        }
        let db = imslab_store::testing::PgDatabase::create("sigkill").await;
        let store = db.store().await;
        super::sqn_never_repeats_across_sigkill(store, db.url.clone(), &test_name("postgres"))
            .await;
    }
}

async fn batched_handouts_never_repeat_and_match_the_direct_path(store: Store) {
    for i in 1..=3u32 {
        store
            .subscribers()
            .insert(&new_subscriber(&format!("00101000000000{i}"), None), t0())
            .await
            .unwrap();
    }
    let impi_of = |i: u32| {
        Impi::new(format!(
            "00101000000000{i}@ims.mnc001.mcc001.3gppnetwork.org"
        ))
        .unwrap()
    };
    let alloc = imslab_store::SqnAllocator::spawn(store.clone(), IND_BITS);
    let mut tasks = Vec::new();
    for t in 0..48u32 {
        let alloc = alloc.clone();
        let store = store.clone();
        let impi = impi_of(t % 3 + 1);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..20u32 {
                let n = 1 + (t + i) % 3;
                // Mix the batched and the direct path on the same rows.
                let v = if i % 5 == 0 {
                    store
                        .subscribers()
                        .next_sqns(&impi, n, IND_BITS)
                        .await
                        .unwrap()
                } else {
                    alloc.next_sqns(&impi, n).await.unwrap()
                };
                assert_eq!(v.len(), n as usize);
                assert!(
                    v.windows(2).all(|w| w[0] < w[1]),
                    "a requester's SQNs are consecutive"
                );
                got.extend(v.into_iter().map(|s| (impi.clone(), s.value())));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<(Impi, u64)> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "an SQN was handed out twice");
    for i in 1..=3u32 {
        let handed = all.iter().filter(|(m, _)| *m == impi_of(i)).count() as u64;
        let stored = store
            .subscribers()
            .require(&SubscriberKey::Impi(impi_of(i)))
            .await
            .unwrap()
            .sqn;
        assert_eq!(
            seq(stored.value()),
            handed,
            "the counter advanced by exactly what was handed out"
        );
    }
    let unknown = Impi::new("nobody@ims.example").unwrap();
    assert!(matches!(
        alloc.next_sqns(&unknown, 1).await,
        Err(Error::NotFound { .. })
    ));
    store
        .subscribers()
        .set_sqn(&impi_of(1), Sqn::new(Sqn::MAX).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        alloc.next_sqns(&impi_of(1), 1).await,
        Err(Error::SqnExhausted { .. })
    ));
}
on_both!(
    batched_handouts_never_repeat_and_match_the_direct_path,
    batched_handouts_never_repeat_and_match_the_direct_path
);
