//! Command-line interface.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use imslab_config::{Config, LogFormat};

use crate::{lab, logging, subscriber};

/// imslab: an IMS core network emulator. HSS, I-CSCF, S-CSCF, P-CSCF and a P-GW PCO stub for
/// private VoLTE labs and IMS regression tests.
#[derive(Debug, Parser)]
#[command(
    name = "imslab",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Configuration file (YAML). Without it, built-in defaults make a lab on 127.0.0.1;
    /// `imslab config default` prints them.
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "FILE",
        env = "IMSLAB_CONFIG"
    )]
    config: Option<PathBuf>,

    /// Log format: text for people, json for machines. Overrides `log.format`.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole lab in one process: every function on its own sockets, talking to the
    /// others only over those sockets. Stops cleanly on Ctrl-C or SIGTERM.
    Up,
    /// Run only the HSS (Diameter Cx server).
    Hss,
    /// Run only the I-CSCF.
    Icscf,
    /// Run only the S-CSCF.
    Scscf,
    /// Run only the P-CSCF.
    Pcscf,
    /// Run only the P-GW PCO stub (GTPv2-C S5/S8), or list its sessions.
    Pgw {
        #[command(subcommand)]
        action: Option<PgwCommand>,
    },
    /// Run only the web UI and REST API.
    Web,
    /// Provision subscribers in the store (works while the lab runs).
    #[command(subcommand)]
    Subscriber(SubscriberCommand),
    /// Replay a YAML scenario against a running lab.
    Replay(ReplayArgs),
    /// Print or check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum PgwCommand {
    /// List the active sessions of the running lab's P-GW (IMSI, APN, address, P-CSCFs handed
    /// out), through the lab's REST API.
    Sessions {
        /// Print the JSON the API returns instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the complete default configuration as commented YAML.
    Default,
    /// Validate a configuration file: unknown keys, wrong types and bad addresses are reported
    /// with their line.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum SubscriberCommand {
    /// Add a subscriber.
    Add(SubscriberFields),
    /// List subscribers (keys are never shown).
    List,
    /// Show one subscriber (keys are never shown).
    Show {
        /// The subscriber's IMSI.
        imsi: String,
    },
    /// Change fields of a subscriber.
    Update(SubscriberFields),
    /// Delete a subscriber.
    Delete {
        /// The subscriber's IMSI.
        imsi: String,
    },
    /// Import subscribers from CSV (imslab's format or pySim card data); all or nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Export subscribers as CSV.
    Export {
        /// Include K, OP and OPc in the output.
        #[arg(long)]
        with_keys: bool,
    },
    /// Deregister a subscriber or one public identity (the HSS sends RTR).
    Deregister {
        /// An IMSI or an IMPU.
        identity: String,
    },
    /// Push the current profile to the serving S-CSCF (the HSS sends PPR).
    PushProfile {
        /// The subscriber's IMSI.
        imsi: String,
    },
}

#[derive(Debug, Args)]
struct SubscriberFields {
    /// IMSI, 6 to 15 digits.
    #[arg(long)]
    imsi: String,
    /// MSISDN (E.164 digits).
    #[arg(long)]
    msisdn: Option<String>,
    /// Subscriber key K, 32 hex digits.
    #[arg(long)]
    k: Option<String>,
    /// OPc, 32 hex digits.
    #[arg(long, conflicts_with = "op")]
    opc: Option<String>,
    /// OP, 32 hex digits (OPc is derived from it).
    #[arg(long)]
    op: Option<String>,
    /// Authentication management field, 4 hex digits.
    #[arg(long)]
    amf: Option<String>,
    /// Initial sequence number.
    #[arg(long)]
    sqn: Option<u64>,
    /// Password for SIP digest (MD5) clients such as WebRTC phones.
    #[arg(long)]
    password: Option<String>,
    /// Public identity (sip: or tel: URI); repeat for several.
    #[arg(long = "impu")]
    impus: Vec<String>,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// The scenario file.
    file: PathBuf,
    /// Start a lab for the run instead of using a running one.
    #[arg(long)]
    spawn: bool,
    /// Write a JUnit report.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write every message the UEs sent and received to a pcap (SIP inside ESP also shown
    /// decrypted; the ESP keys for Wireshark go beside it as FILE.esp_sa).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Load mode: at most this many UEs at once (overrides the file's `load`).
    #[arg(long, requires_all = ["rate", "duration"])]
    ues: Option<u32>,
    /// Load mode: UEs started per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Load mode: how long to keep starting UEs, in seconds.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Print the load report as JSON instead of the step log and table.
    #[arg(long)]
    json: bool,
}

impl From<&SubscriberFields> for subscriber::Fields {
    fn from(f: &SubscriberFields) -> Self {
        Self {
            imsi: f.imsi.clone(),
            msisdn: f.msisdn.clone(),
            k: f.k.clone(),
            opc: f.opc.clone(),
            op: f.op.clone(),
            amf: f.amf.clone(),
            sqn: f.sqn,
            password: f.password.clone(),
            impus: f.impus.clone(),
        }
    }
}

/// Loads the configuration named on the command line, or the defaults, then applies the
/// environment overrides (IMSLAB_DATA_DIR, IMSLAB_LOG) and `--log-format`.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut cfg = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = std::env::var_os("IMSLAB_DATA_DIR") {
        cfg.data_dir = PathBuf::from(dir);
    }
    if let Ok(filter) = std::env::var("IMSLAB_LOG") {
        cfg.log.filter = filter;
    }
    if let Some(f) = cli.log_format {
        cfg.log.format = match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    Ok(cfg)
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Config(ConfigCommand::Default) => {
            print!("{}", Config::default_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { file }) => check(file),
        Command::Up => {
            let cfg = load_config(&cli)?;
            logging::init(&cfg.log)?;
            lab::run(cfg, lab::Selection::All)
        }
        Command::Hss => {
            let cfg = load_config(&cli)?;
            logging::init(&cfg.log)?;
            lab::run(cfg, lab::Selection::Hss)
        }
        Command::Icscf => {
            let cfg = load_config(&cli)?;
            logging::init(&cfg.log)?;
            lab::run(cfg, lab::Selection::Icscf)
        }
        Command::Scscf => {
            let cfg = load_config(&cli)?;
            logging::init(&cfg.log)?;
            lab::run(cfg, lab::Selection::Scscf)
        }
        Command::Pcscf => {
            let cfg = load_config(&cli)?;
            logging::init(&cfg.log)?;
            lab::run(cfg, lab::Selection::Pcscf)
        }
        Command::Pgw {
            action: Some(PgwCommand::Sessions { json }),
        } => {
            let cfg = load_config(&cli)?;
            pgw_sessions(&cfg, *json)
        }
        Command::Pgw { action: None } => {
            let cfg = load_config(&cli)?;
            logging::init(&cfg.log)?;
            lab::run(cfg, lab::Selection::Pgw)
        }
        Command::Web => {
            let cfg = load_config(&cli)?;
            logging::init(&cfg.log)?;
            lab::run(cfg, lab::Selection::Web)
        }
        Command::Subscriber(cmd) => {
            let cfg = load_config(&cli)?;
            logging::init(&cfg.log)?;
            let action = match cmd {
                SubscriberCommand::Add(f) => subscriber::Action::Add(f.into()),
                SubscriberCommand::Update(f) => subscriber::Action::Update(f.into()),
                SubscriberCommand::List => subscriber::Action::List,
                SubscriberCommand::Show { imsi } => subscriber::Action::Show(imsi.clone()),
                SubscriberCommand::Delete { imsi } => subscriber::Action::Delete(imsi.clone()),
                SubscriberCommand::Import { file } => subscriber::Action::Import(file.clone()),
                SubscriberCommand::Export { with_keys } => subscriber::Action::Export {
                    with_keys: *with_keys,
                },
                SubscriberCommand::Deregister { identity } => {
                    return hss_action(&cfg, identity, "deregister");
                }
                SubscriberCommand::PushProfile { imsi } => {
                    return hss_action(&cfg, imsi, "push-profile");
                }
            };
            subscriber::run(&cfg, action)
        }
        Command::Replay(r) => {
            let cfg = load_config(&cli)?;
            logging::init(&cfg.log)?;
            let load = match (r.ues, r.rate, r.duration) {
                (Some(ues), Some(rate), Some(secs)) if rate > 0.0 && secs > 0.0 => {
                    Some(imslab_scenarios::LoadSettings {
                        ues,
                        rate,
                        duration: std::time::Duration::from_secs_f64(secs),
                    })
                }
                (None, None, None) => None,
                _ => anyhow::bail!("--ues, --rate and --duration go together, all positive"),
            };
            crate::replay::run(
                &cfg,
                crate::replay::Args {
                    file: r.file.clone(),
                    spawn: r.spawn,
                    config: cli.config.clone(),
                    junit: r.junit.clone(),
                    pcap: r.pcap.clone(),
                    load,
                    json: r.json,
                },
            )
        }
    }
}

/// Asks the running lab's HSS, through the REST API, to send an RTR or a PPR.
fn hss_action(cfg: &Config, identity: &str, action: &str) -> anyhow::Result<ExitCode> {
    let encoded: String = identity
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let path = format!("/api/v1/subscribers/{encoded}/{action}");
    let body = crate::http::post(
        cfg.web.listen,
        &path,
        cfg.web.token.as_ref().map(imslab_config::Secret::expose),
    )?;
    let v: serde_json::Value = serde_json::from_str(&body).context("the API answered non-JSON")?;
    println!("{}", v["result"].as_str().unwrap_or(&body));
    Ok(ExitCode::SUCCESS)
}

fn pgw_sessions(cfg: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let body = crate::http::get(
        cfg.web.listen,
        "/api/v1/pgw/sessions",
        cfg.web.token.as_ref().map(imslab_config::Secret::expose),
    )?;
    if json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let v: serde_json::Value = serde_json::from_str(&body).context("the API answered non-JSON")?;
    let items = v["items"].as_array().cloned().unwrap_or_default();
    println!("{:<16} {:<10} {:<34} P-CSCF", "IMSI", "APN", "ADDRESSES");
    let list = |v: &serde_json::Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    for s in &items {
        println!(
            "{:<16} {:<10} {:<34} {}",
            s["imsi"].as_str().unwrap_or("-"),
            s["apn"].as_str().unwrap_or("-"),
            list(&s["addresses"]),
            list(&s["pcscf"])
        );
    }
    eprintln!("{} session(s)", items.len());
    Ok(ExitCode::SUCCESS)
}

fn check(file: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(file).with_context(|| "configuration is invalid")?;
    println!(
        "{}: valid (home domain {}, data directory {})",
        file.display(),
        cfg.network.domain,
        cfg.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
