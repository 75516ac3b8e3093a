//! Call setup and teardown through the whole chain (issue 10): SIPp UAC and UAS phones, all
//! registered with SIPp's own IMS AKA through the P-CSCF (`pcscf.ipsec.mode: off`), call
//! each other (INVITE, 100, 180, 200, ACK, BYE, 200) through P-CSCF, S-CSCF (orig), I-CSCF
//! (LIR), S-CSCF (term), P-CSCF, all in this process on loopback (HSS on SQLite).
//! `cargo bench -p imslab-scenarios --bench calls -- [CALLS] [RATE] [PAIRS]`
//! (defaults 5000 calls at 1000/s between 50 caller/callee pairs).
//!
//! `cargo bench -p imslab-scenarios --bench calls -- soft [GROUPS] [RATE] [SECONDS] [CALLS] [ipsec]`:
//! the soft UE's load mode instead (`library/load-calls.yaml`; without IPsec unless the last
//! word is `ipsec`): GROUPS caller/callee groups at once, RATE started per second for
//! SECONDS, CALLS calls per group.

#[path = "../tests/lab/support.rs"]
#[allow(dead_code, unreachable_pub)]
mod support;

#[path = "../tests/lab/sipp.rs"]
#[allow(dead_code, unreachable_pub)]
mod sipp;

use std::time::{Duration, Instant};

use imslab_test_support::peer;
use imslab_test_support::sipp::stat;

use sipp::SippFiles;

const CALLER_IP: &str = "127.0.0.5";
const CALLEE_IP: &str = "127.0.0.6";
const CALLER_PORT: u16 = 35_060;
const CALLEE_PORT: u16 = 35_070;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if args.first().is_some_and(|a| a == "soft") {
        soft_ues(&args[1..]);
        return;
    }
    let calls: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let rate: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let pairs: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50);
    let sipp = peer("sipp", "sip-tester");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let lab = support::TestLab::start(|c| {
            c.pcscf.ipsec.mode = imslab_config::IpsecMode::Off;
        })
        .await;
        let domain = lab.lab.domain.as_str().to_owned();
        lab.import(&sipp::subscribers(0..2 * pairs, &domain)).await;
        let dir = tempfile::tempdir().unwrap();
        let files = SippFiles::new(dir.path(), &domain);
        let callers: Vec<u32> = (0..pairs).collect();
        let callees: Vec<u32> = (pairs..2 * pairs).collect();
        files.users("callers.csv", &callers);
        files.users("callees.csv", &callees);
        let list: Vec<(u32, u32)> = callers
            .iter()
            .copied()
            .zip(callees.iter().copied())
            .collect();
        files.pairs("pairs.csv", &list);
        let pcscf = lab.lab.pcscf.to_string();
        let pairs_n = pairs as usize;
        let (sipp2, dir2, pcscf2) = (sipp.clone(), dir.path().to_owned(), pcscf.clone());
        let report = tokio::task::spawn_blocking(move || {
            let files = SippFiles::reuse(&dir2);
            // Three REGISTER passes: SIPp 3.6.1 fails ~3 % of AKA answers (NUL byte in RES);
            // a phone registered by an earlier pass just refreshes.
            let mut reg = Vec::new();
            for (users, ip, port) in [
                ("callees.csv", CALLEE_IP, CALLEE_PORT),
                ("callers.csv", CALLER_IP, CALLER_PORT),
            ] {
                for _ in 0..3 {
                    let (ok, failed, _) =
                        files.register(&sipp2, users, pairs_n, 200, ip, port, &pcscf2);
                    reg.push(format!("{users}: {ok} ok / {failed} failed"));
                }
            }
            let uas = files.uas(&sipp2, calls, CALLEE_IP, CALLEE_PORT);
            std::thread::sleep(Duration::from_millis(300));
            let t0 = Instant::now();
            let uac = files.uac(
                &sipp2,
                "pairs.csv",
                calls,
                rate,
                2000,
                CALLER_IP,
                CALLER_PORT,
                &pcscf2,
            );
            let elapsed = t0.elapsed();
            let uas = uas.wait_with_output().expect("UAS ends");
            (reg, uac, uas, elapsed)
        })
        .await
        .unwrap();
        let (reg, uac, uas, elapsed) = report;
        let uac_out = String::from_utf8_lossy(&uac.stdout);
        let uas_out = String::from_utf8_lossy(&uas.stdout);
        let ok = stat(&uac_out, "Successful call");
        let failed = stat(&uac_out, "Failed call");
        println!(
            "calls: SIPp UAC → chain → SIPp UAS, {pairs} pairs, asked {rate}/s, {calls} calls"
        );
        println!("registration passes: {}", reg.join("; "));
        println!(
            "UAC: {ok} successful, {failed} failed in {:.2} s → {:.0} calls/s (setup+teardown)",
            elapsed.as_secs_f64(),
            ok as f64 / elapsed.as_secs_f64()
        );
        println!(
            "UAS: {} successful, {} failed",
            stat(&uas_out, "Successful call"),
            stat(&uas_out, "Failed call")
        );
        // SIPp's message table: where calls were lost.
        for (who, out) in [("UAC", &uac_out), ("UAS", &uas_out)] {
            let table: Vec<&str> = out
                .lines()
                .filter(|l| l.contains("---------->") || l.contains("<----------"))
                .collect();
            let n = table.len() / 2;
            for l in table.iter().skip(table.len() - n.max(1).min(table.len())) {
                println!("{who} {}", l.trim_end());
            }
        }
        let err = String::from_utf8_lossy(&uac.stderr);
        for l in err
            .lines()
            .filter(|l| l.contains("Aborting") || l.contains("rror"))
            .take(3)
        {
            println!("UAC stderr: {}", l.chars().take(300).collect::<String>());
        }
        let _ = lab.stop().await;
    });
}

/// The soft UE's load mode making calls (`load-calls.yaml`).
fn soft_ues(args: &[String]) {
    let groups: u32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(20);
    let rate: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10.0);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let calls: u32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let ipsec = args.get(4).is_some_and(|a| a == "ipsec");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let lab = support::TestLab::start(|c| {
            if !ipsec {
                c.pcscf.ipsec.mode = imslab_config::IpsecMode::Off;
            }
        })
        .await;
        let subs = ((rate * secs as f64) as u32).clamp(groups, 9_999);
        lab.import(&support::load_subscribers_from(subs, 20_000)).await;
        lab.import(&support::load_subscribers_from(subs, 30_000)).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("load-calls.yaml");
        std::fs::write(
            &file,
            std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("library/load-calls.yaml"),
            )
            .unwrap()
            .replace("calls: 10", &format!("calls: {calls}"))
            .replace("subscribers: 200", &format!("subscribers: {subs}")),
        )
        .unwrap();
        let report = imslab_scenarios::replay(imslab_scenarios::ReplayOptions {
            scenario: file,
            lab: lab.lab.clone(),
            store: Some(lab.store.clone()),
            junit: None,
            pcap: None,
            load: Some(imslab_scenarios::LoadSettings {
                ues: groups,
                rate,
                duration: Duration::from_secs(secs),
            }),
            print_log: false,
        })
        .await
        .unwrap();
        let load = report.load.unwrap();
        println!(
            "soft UE load-calls: {groups} groups at once, {rate}/s for {secs} s, {calls} calls each, {}",
            if ipsec { "IPsec" } else { "no IPsec" }
        );
        print!("{}", load.table());
        println!(
            "≈ {:.0} calls/s (successful groups × {calls} / wall time, registrations included)",
            load.successes as f64 * f64::from(calls) / load.seconds
        );
        let _ = lab.stop().await;
    });
}
