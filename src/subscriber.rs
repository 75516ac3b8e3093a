//! `imslab subscriber …`: provisioning straight into the store, usable while the lab runs (the
//! HSS reads the store on every request, so changes take effect immediately).

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use imslab_config::Config;
use imslab_store::provision::{
    self, ImpuInput, NewSubscriber, ProvisionDefaults, SubscriberInput, SubscriberUpdate,
    SubscriberView, UpdateInput,
};
use imslab_store::{Error as StoreError, Store, StoreOptions, SubscriberKey};
use imslab_types::Imsi;

/// Fields common to `add` and `update`, as typed.
pub(crate) struct Fields {
    pub(crate) imsi: String,
    pub(crate) msisdn: Option<String>,
    pub(crate) k: Option<String>,
    pub(crate) opc: Option<String>,
    pub(crate) op: Option<String>,
    pub(crate) amf: Option<String>,
    pub(crate) sqn: Option<u64>,
    pub(crate) password: Option<String>,
    pub(crate) impus: Vec<String>,
}

/// What to do.
pub(crate) enum Action {
    Add(Fields),
    Update(Fields),
    List,
    Show(String),
    Delete(String),
    Import(std::path::PathBuf),
    Export { with_keys: bool },
}

/// Opens the store the configuration names (the SQLite file in the data directory by default).
pub(crate) async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    if cfg.store.url.is_none() {
        std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                cfg.data_dir.display()
            )
        })?;
    }
    Ok(Store::open(&StoreOptions::from_config(&cfg.store, &cfg.data_dir)).await?)
}

pub(crate) fn run(cfg: &Config, action: Action) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let store = open_store(cfg).await?;
        let result = act(cfg, &store, action).await;
        store.close().await;
        result
    })
}

async fn act(cfg: &Config, store: &Store, action: Action) -> anyhow::Result<ExitCode> {
    let defaults = ProvisionDefaults::new(cfg.network.domain.clone());
    let now = SystemTime::now();
    match action {
        Action::Add(f) => {
            let input = SubscriberInput {
                imsi: f.imsi,
                msisdn: f.msisdn,
                k: f.k.unwrap_or_default(),
                op: f.op,
                opc: f.opc,
                amf: f.amf,
                sqn: f.sqn.map(|s| s.to_string()),
                password: f.password,
                impus: f.impus.into_iter().map(ImpuInput::Uri).collect(),
                ..SubscriberInput::default()
            };
            let new = NewSubscriber::from_input(&input, &defaults).map_err(explain)?;
            store
                .subscribers()
                .insert(&new, now)
                .await
                .map_err(explain)?;
            let view = show_one(store, new.imsi.as_str()).await?;
            println!("added {}", serde_json::to_string_pretty(&view)?);
        }
        Action::Update(f) => {
            let imsi = parse_imsi(&f.imsi)?;
            let current = store
                .subscribers()
                .get(&SubscriberKey::Imsi(imsi.clone()))
                .await?
                .ok_or_else(|| anyhow::anyhow!("no subscriber with IMSI {imsi}"))?;
            let input = UpdateInput {
                msisdn: f.msisdn,
                k: f.k,
                op: f.op,
                opc: f.opc,
                amf: f.amf,
                sqn: f.sqn.map(|s| s.to_string()),
                password: f.password,
                impus: (!f.impus.is_empty())
                    .then(|| f.impus.into_iter().map(ImpuInput::Uri).collect()),
                ..UpdateInput::default()
            };
            let update = SubscriberUpdate::from_input(&input, &current).map_err(explain)?;
            store
                .subscribers()
                .update(&imsi, &update, now)
                .await
                .map_err(explain)?;
            let view = show_one(store, imsi.as_str()).await?;
            println!("updated {}", serde_json::to_string_pretty(&view)?);
        }
        Action::List => {
            let subs = store.subscribers().list(0, i64::MAX).await?;
            println!(
                "{:<16} {:<16} {:<9} {:<8} IMPUs",
                "IMSI", "MSISDN", "KEY", "SQN"
            );
            for s in &subs {
                let v = SubscriberView::from_subscriber(s, false);
                let impus: Vec<String> = v
                    .impus
                    .iter()
                    .map(|i| {
                        let barred = if i.barred { " (barred)" } else { "" };
                        format!("{}{barred}", i.uri)
                    })
                    .collect();
                println!(
                    "{:<16} {:<16} {:<9} {:<8} {}",
                    v.imsi,
                    v.msisdn.as_deref().unwrap_or("-"),
                    v.operator_key,
                    v.sqn,
                    impus.join(", ")
                );
            }
            eprintln!("{} subscriber(s)", subs.len());
        }
        Action::Show(imsi) => {
            let view = show_one(store, &imsi).await?;
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        Action::Delete(imsi) => {
            let imsi = parse_imsi(&imsi)?;
            if !store.subscribers().delete(&imsi).await? {
                anyhow::bail!("no subscriber with IMSI {imsi}");
            }
            println!("deleted {imsi}");
        }
        Action::Import(path) => {
            let text = read(&path)?;
            let report = provision::import_csv(store, &text, &defaults, now)
                .await
                .map_err(explain)?;
            println!(
                "imported {} subscriber(s) from {}",
                report.imported,
                path.display()
            );
            if !report.ignored_columns.is_empty() {
                eprintln!("ignored columns: {}", report.ignored_columns.join(", "));
            }
        }
        Action::Export { with_keys } => {
            let subs = store.subscribers().list(0, i64::MAX).await?;
            print!("{}", provision::export_csv(&subs, with_keys));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_imsi(s: &str) -> anyhow::Result<Imsi> {
    Imsi::new(s.trim()).map_err(|e| anyhow::anyhow!("imsi: {e}"))
}

async fn show_one(store: &Store, imsi: &str) -> anyhow::Result<SubscriberView> {
    let imsi = parse_imsi(imsi)?;
    let s = store
        .subscribers()
        .get(&SubscriberKey::Imsi(imsi.clone()))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no subscriber with IMSI {imsi}"))?;
    Ok(SubscriberView::from_subscriber(&s, false))
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Turns validation errors into one problem per line.
fn explain(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::InvalidSubscriber { errors } => {
            let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
            anyhow::anyhow!("invalid subscriber:\n{}", lines.join("\n"))
        }
        StoreError::InvalidImport { lines } => {
            let lines: Vec<String> = lines.iter().map(|l| format!("  {l}")).collect();
            anyhow::anyhow!("nothing imported; invalid lines:\n{}", lines.join("\n"))
        }
        other => other.into(),
    }
}
