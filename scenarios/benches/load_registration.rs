//! Load mode as imslab's own registration load generator, against a lab in this process (HSS
//! on SQLite, I-CSCF, S-CSCF, P-CSCF with userspace ESP, all on loopback): full IMS AKA
//! registrations with IPsec and de-registrations.
//! `cargo bench -p imslab-scenarios --bench load_registration -- [UES] [RATE] [SECONDS]`.

#[path = "../tests/lab/support.rs"]
#[allow(dead_code, unreachable_pub)]
mod support;

use std::path::Path;
use std::time::Duration;

use imslab_scenarios::{LoadSettings, ReplayOptions, replay};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let ues: u32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let rate: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200.0);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let lab = support::TestLab::start(|_| {}).await;
        let subs = (rate as u32 * secs as u32).clamp(ues, 20_000);
        lab.import(&support::load_subscribers(subs)).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("load.yaml");
        std::fs::write(
            &file,
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("library/load-registration.yaml"),
            )
            .unwrap()
            .replace("subscribers: 200", &format!("subscribers: {subs}")),
        )
        .unwrap();
        let report = replay(ReplayOptions {
            scenario: file,
            lab: lab.lab.clone(),
            store: Some(lab.store.clone()),
            junit: None,
            pcap: None,
            load: Some(LoadSettings {
                ues,
                rate,
                duration: Duration::from_secs(secs),
            }),
            print_log: false,
        })
        .await
        .unwrap();
        let load = report.load.unwrap();
        println!("load-registration: {ues} concurrent UEs, {rate}/s for {secs} s");
        print!("{}", load.table());
        println!("{}", serde_json::to_string(&load).unwrap());
        lab.stop().await;
    });
}
