//! `imslab replay FILE`: runs a YAML scenario against a running lab, or against one started for
//! the run with `--spawn` (a child `imslab up` with the same configuration).

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use imslab_config::Config;
use imslab_scenarios::{Lab, LoadSettings, ReplayOptions};

/// What the command line asked for.
pub(crate) struct Args {
    pub(crate) file: PathBuf,
    pub(crate) spawn: bool,
    pub(crate) config: Option<PathBuf>,
    pub(crate) junit: Option<PathBuf>,
    pub(crate) pcap: Option<PathBuf>,
    pub(crate) load: Option<LoadSettings>,
    pub(crate) json: bool,
}

pub(crate) fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let mut lab = if args.spawn {
        Some(spawn_lab(cfg, args.config.as_deref())?)
    } else {
        None
    };
    let result = replay(cfg, &args);
    if let Some(child) = lab.as_mut() {
        stop(child);
    }
    result
}

fn replay(cfg: &Config, args: &Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let store = crate::subscriber::open_store(cfg).await?;
        let outcome = imslab_scenarios::replay(ReplayOptions {
            scenario: args.file.clone(),
            lab: Lab::from_config(cfg),
            store: Some(store.clone()),
            junit: args.junit.clone(),
            pcap: args.pcap.clone(),
            load: args.load,
            print_log: !args.json,
        })
        .await;
        store.close().await;
        match outcome {
            Ok(report) => {
                if let (true, Some(load)) = (args.json, &report.load) {
                    println!("{}", serde_json::to_string_pretty(load)?);
                }
                Ok(ExitCode::from(report.exit_code()))
            }
            Err(e) => {
                eprintln!("imslab replay: {e}");
                Ok(ExitCode::from(2))
            }
        }
    })
}

/// Starts `imslab up` with the same configuration and waits until its web API answers.
fn spawn_lab(cfg: &Config, config: Option<&std::path::Path>) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the imslab executable")?;
    let mut cmd = Command::new(exe);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let mut child = cmd
        .arg("up")
        .env("IMSLAB_DATA_DIR", &cfg.data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start the lab")?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the lab exited during startup ({status}); see its messages above");
        }
        if std::net::TcpStream::connect_timeout(&cfg.web.listen, Duration::from_millis(100)).is_ok()
        {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(&mut child);
    anyhow::bail!(
        "the lab did not start listening on {} within 15 s",
        cfg.web.listen
    )
}

/// SIGTERM, then SIGKILL if it has not exited after five seconds.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
