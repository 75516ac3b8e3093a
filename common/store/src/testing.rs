//! Test support: a throwaway PostgreSQL cluster and a fresh database per test, so store tests run
//! against a real server.
//!
//! With `IMSLAB_TEST_PG_URL` set (a URL whose user may `CREATE DATABASE`), databases are created
//! there. Otherwise the first caller starts a private cluster from the Debian `postgresql`
//! package's binaries (`initdb`, `pg_ctl` under `/usr/lib/postgresql/<version>/bin`) in a
//! temporary directory, on a free loopback port, running as user `postgres` when the tests run as
//! root. The cluster stops when the last [`PgDatabase`] is dropped, and a watchdog stops it if the
//! test process dies first. A missing PostgreSQL installation is a test failure, never a skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::{Store, StoreOptions};

/// The PostgreSQL test cluster this process started.
#[derive(Debug)]
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start() -> Self {
        let bin = find_pg_bin().unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed: the store tests need a real server. Install the \
                 Debian package `postgresql` (initdb and pg_ctl under /usr/lib/postgresql/*/bin), \
                 or set IMSLAB_TEST_PG_URL to a server where the user may CREATE DATABASE."
            )
        });
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("imslab-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for PostgreSQL: {e}"));
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).unwrap_or_else(|e| panic!("cannot create {sock:?}: {e}"));
        if as_postgres {
            let (uid, gid) = postgres_ids();
            for p in [dir.path(), sock.as_path()] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("cannot chown {p:?} to postgres: {e}"));
            }
        }
        let run = |args: &[&str]| {
            let mut cmd = if as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]);
                c.arg(bin.join(args[0]));
                c
            } else {
                Command::new(bin.join(args[0]))
            };
            let out = cmd
                .args(&args[1..])
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]));
            assert!(
                out.status.success(),
                "{} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let data_s = data.to_string_lossy().into_owned();
        run(&[
            "initdb",
            "-D",
            &data_s,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        // A free port: bind :0, read it, release it; pg_ctl retries are not needed in practice.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free loopback port for PostgreSQL: {e}"));
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            sock.display()
        );
        let log = dir
            .path()
            .join("postgres.log")
            .to_string_lossy()
            .into_owned();
        run(&[
            "pg_ctl", "-D", &data_s, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
        ]);
        let cluster = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        cluster.spawn_watchdog();
        cluster
    }

    /// Stops the cluster if this process dies without dropping it (a panic in a static, abort).
    fn spawn_watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} -D {} -m immediate stop",
                pg_ctl.display(),
                data.display()
            )
        } else {
            format!(
                "{} -D {} -m immediate stop",
                pg_ctl.display(),
                data.display()
            )
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             if [ -f {data}/postmaster.pid ]; then {stop} >/dev/null 2>&1; rm -rf {dir}; fi",
            pid = std::process::id(),
            data = data.display(),
            dir = self.dir.path().display(),
        );
        // Detached: it outlives us only until it has cleaned up.
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .arg("-D")
            .arg(&data)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run `id postgres`: {e}"));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!(
                    "running as root needs the `postgres` system user (created by the Debian \
                 `postgresql` package) to run initdb"
                )
            })
    };
    (id("-u"), id("-g"))
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`, or those on PATH.
fn find_pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

static CLUSTER: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
static NEXT_DB: AtomicU64 = AtomicU64::new(0);

fn shared_cluster() -> Arc<Cluster> {
    let mut guard = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = guard.upgrade() {
        return c;
    }
    let c = Arc::new(Cluster::start());
    *guard = Arc::downgrade(&c);
    c
}

/// A fresh, empty database on a real PostgreSQL server, for one test.
#[derive(Debug)]
pub struct PgDatabase {
    /// The database's URL.
    pub url: String,
    _cluster: Option<Arc<Cluster>>,
}

impl PgDatabase {
    /// Creates a database named after `test` (plus a counter) on `IMSLAB_TEST_PG_URL` or the
    /// private cluster. Panics with a clear message when PostgreSQL is unavailable.
    pub async fn create(test: &str) -> Self {
        let (admin, cluster) = match std::env::var("IMSLAB_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let c = tokio::task::spawn_blocking(shared_cluster)
                    .await
                    .unwrap_or_else(|e| panic!("starting PostgreSQL panicked: {e}"));
                (c.admin_url(), Some(c))
            }
        };
        let clean: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!(
            "t_{}_{}_{}",
            clean,
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {admin}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
        let _ = conn.close().await;
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => format!("{admin}/{name}"),
        };
        Self {
            url,
            _cluster: cluster,
        }
    }

    /// Opens a migrated store on this database.
    pub async fn store(&self) -> Store {
        Store::open(&StoreOptions::new(self.url.clone()))
            .await
            .unwrap_or_else(|e| panic!("cannot open the PostgreSQL store: {e}"))
    }
}

/// A fresh SQLite store in a temporary directory (kept alive by the returned guard).
pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let store = Store::open(&StoreOptions::sqlite_file(&dir.path().join("imslab.db")))
        .await
        .unwrap_or_else(|e| panic!("cannot open the SQLite store: {e}"));
    (store, dir)
}

/// Where the SQLite file of [`sqlite_store`] lives.
pub fn sqlite_path(dir: &Path) -> PathBuf {
    dir.join("imslab.db")
}
