//! The scenario library against a real lab in this process: the HSS (SQLite store), I-CSCF,
//! S-CSCF and P-CSCF (userspace ESP on 127.0.0.1) on free loopback ports, and the REST API
//! for RTR/PPR, exactly as `imslab up` wires them. Each test imports
//! `library/subscribers.csv` into a fresh store and replays library files with the binary's
//! entry point (`imslab_scenarios::replay`).

mod pcaps;
mod sipp;
mod sipp_calls;
mod support;

use std::path::Path;
use std::time::Duration;

use imslab_scenarios::{LoadSettings, ReplayOptions, replay};
use imslab_test_support::tshark_check;

use support::TestLab;

fn library(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("library")
        .join(name)
}

async fn run(lab: &TestLab, file: &str) -> imslab_scenarios::ReplayReport {
    let opts = ReplayOptions {
        scenario: library(file),
        lab: lab.lab.clone(),
        store: Some(lab.store.clone()),
        junit: None,
        pcap: None,
        load: None,
        print_log: false,
    };
    let report = tokio::time::timeout(Duration::from_secs(120), replay(opts))
        .await
        .unwrap_or_else(|_| panic!("{file} did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(
        report.passed(),
        "{file} failed: {:?}\n{}\nUE events of the lab:\n{}",
        report.failure,
        report.log.join("\n"),
        lab.events_text()
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aka_with_ipsec_registers_for_every_alg_and_ealg_pair() {
    let lab = TestLab::start(|_| {}).await;
    for alg in ["sha1", "md5"] {
        for ealg in ["null", "aes-cbc", "des-ede3-cbc"] {
            run(&lab, &format!("aka-ipsec-{alg}-{ealg}.yaml")).await;
        }
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_library_passes_against_the_lab() {
    let lab = TestLab::start(|_| {}).await;
    for f in [
        "akav2.yaml",
        "sqn-resync.yaml",
        "wrong-k.yaml",
        "barred-impu.yaml",
        "reregistration.yaml",
        "deregistration.yaml",
        "handsets-parallel.yaml",
        "two-ues-one-impu.yaml",
        "cx-uar-lir.yaml",
        "raw-options.yaml",
    ] {
        run(&lab, f).await;
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtr_through_the_rest_api_reaches_the_phone_as_a_terminated_notify() {
    let lab = TestLab::start(|_| {}).await;
    run(&lab, "reg-event-rtr.yaml").await;
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ppr_through_the_rest_api_keeps_the_registration_usable() {
    let lab = TestLab::start(|_| {}).await;
    run(&lab, "ppr.yaml").await;
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ipsec_aka_and_md5_register_over_udp_and_tcp() {
    let lab = TestLab::start(|c| c.pcscf.ipsec.mode = imslab_config::IpsecMode::Off).await;
    for f in [
        "aka-no-ipsec.yaml",
        "aka-no-ipsec-tcp.yaml",
        "md5-digest.yaml",
        "wrong-k-res.yaml",
    ] {
        run(&lab, f).await;
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_registration_is_gone_from_the_hss_and_a_new_one_works() {
    let lab = TestLab::start(|c| c.scscf.reg_expires_min = 1).await;
    // The library file asks for 60 s; the same flow with a 3 s registration.
    let text = std::fs::read_to_string(library("expiry.yaml"))
        .unwrap()
        .replace("short: 60", "short: 3")
        .replace("within: 90s", "within: 15s");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("expiry-short.yaml");
    std::fs::write(&file, text).unwrap();
    let opts = ReplayOptions {
        scenario: file,
        lab: lab.lab.clone(),
        store: Some(lab.store.clone()),
        junit: None,
        pcap: None,
        load: None,
        print_log: false,
    };
    let report = replay(opts).await.unwrap();
    assert!(
        report.passed(),
        "{:?}\n{}\nUE events of the lab:\n{}",
        report.failure,
        report.log.join("\n"),
        lab.events_text()
    );
    lab.stop().await;
}

/// The call and SMS library (issue 10): every file once against a lab with IPsec (userspace
/// ESP) and once against one without; the UEs follow `${ipsec}`.
const CALLS: &[&str] = &[
    "call-basic.yaml",
    "call-preconditions.yaml",
    "call-session-timer.yaml",
    "call-cancel.yaml",
    "call-busy.yaml",
    "call-declined.yaml",
    "call-no-answer.yaml",
    "call-unregistered.yaml",
    "call-unknown.yaml",
    "message-text.yaml",
    "sms-ue-to-ue.yaml",
    "call-forking.yaml",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_messages_cross_the_chain_with_ipsec() {
    let lab = TestLab::start(|_| {}).await;
    for f in CALLS {
        run(&lab, f).await;
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_messages_cross_the_chain_without_ipsec() {
    let lab = TestLab::start(|c| c.pcscf.ipsec.mode = imslab_config::IpsecMode::Off).await;
    for f in CALLS {
        run(&lab, f).await;
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_mode_registers_many_ues_and_reports_percentiles() {
    let lab = TestLab::start(|_| {}).await;
    lab.import(&support::load_subscribers(40)).await;
    let opts = ReplayOptions {
        scenario: library("load-registration.yaml"),
        lab: lab.lab.clone(),
        store: Some(lab.store.clone()),
        junit: None,
        pcap: None,
        load: Some(LoadSettings {
            ues: 10,
            rate: 20.0,
            duration: Duration::from_secs(2),
        }),
        print_log: false,
    };
    let report = replay(opts).await.unwrap();
    let load = report.load.clone().expect("load report");
    assert!(load.attempts >= 20, "{load:?}");
    assert_eq!(load.successes, load.attempts, "{}", load.table());
    assert_eq!(load.latency.len(), 2, "{load:?}");
    assert!(
        load.latency
            .iter()
            .all(|l| l.p50_ms <= l.p90_ms && l.p90_ms <= l.p99_ms)
    );
    let json = serde_json::to_value(&load).unwrap();
    assert!(json["latency"][0]["p99_ms"].is_number());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_mode_runs_caller_and_callee_groups_making_calls() {
    // Without IPsec: calls over IPsec have their own test above.
    let lab = TestLab::start(|c| c.pcscf.ipsec.mode = imslab_config::IpsecMode::Off).await;
    lab.import(&support::load_subscribers_from(20, 20_000))
        .await;
    lab.import(&support::load_subscribers_from(20, 30_000))
        .await;
    let text = std::fs::read_to_string(library("load-calls.yaml"))
        .unwrap()
        .replace("calls: 10", "calls: 2")
        .replace("subscribers: 200", "subscribers: 20");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("load-calls.yaml");
    std::fs::write(&file, text).unwrap();
    let opts = ReplayOptions {
        scenario: file,
        lab: lab.lab.clone(),
        store: Some(lab.store.clone()),
        junit: None,
        pcap: None,
        load: Some(LoadSettings {
            ues: 4,
            rate: 4.0,
            duration: Duration::from_secs(2),
        }),
        print_log: false,
    };
    let report = replay(opts).await.unwrap();
    let load = report.load.clone().expect("load report");
    assert!(load.attempts >= 4, "{load:?}");
    assert_eq!(
        load.successes,
        load.attempts,
        "{}\nUE events of the lab:\n{}",
        load.table(),
        lab.events_text()
    );
    for step in ["call", "answer", "hangup"] {
        assert!(
            load.latency.iter().any(|l| l.step.contains(step)),
            "{step} latency in {}",
            load.table()
        );
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_of_a_library_run_decodes_in_tshark_with_the_expected_sequence() {
    let lab = TestLab::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("reg.pcap");
    let opts = ReplayOptions {
        scenario: library("aka-ipsec-sha1-aes-cbc.yaml"),
        lab: lab.lab.clone(),
        store: Some(lab.store.clone()),
        junit: None,
        pcap: Some(pcap.clone()),
        load: None,
        print_log: false,
    };
    let report = replay(opts).await.unwrap();
    assert!(report.passed(), "{:?}", report.log);
    let packets = tshark_check(&pcap, &[], &["sip.Method", "sip.Status-Code", "esp.spi"]);
    let sip: Vec<String> = packets
        .iter()
        .filter_map(|p| {
            let (m, s) = (&p.fields[0], &p.fields[1]);
            (!m.is_empty() || !s.is_empty()).then(|| format!("{m}{s}"))
        })
        .collect();
    let want = ["REGISTER", "401", "REGISTER", "200"];
    assert_eq!(&sip[..4], &want, "{sip:?}");
    assert!(
        packets.iter().any(|p| !p.fields[2].is_empty()),
        "ESP in the capture"
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_over_tcp_inside_userspace_esp_registers_calls_and_carries_a_large_message() {
    let lab = TestLab::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("tcp.pcap");
    let opts = ReplayOptions {
        scenario: library("call-ipsec-tcp.yaml"),
        lab: lab.lab.clone(),
        store: Some(lab.store.clone()),
        junit: None,
        pcap: Some(pcap.clone()),
        load: None,
        print_log: false,
    };
    let report = tokio::time::timeout(Duration::from_secs(120), replay(opts))
        .await
        .expect("call-ipsec-tcp within 120 s")
        .unwrap();
    assert!(
        report.passed(),
        "{:?}\n{}\nUE events of the lab:\n{}",
        report.failure,
        report.log.join("\n"),
        lab.events_text()
    );
    // tshark decrypts the ESP with the SA table beside the capture (aes-cbc and null) and
    // decodes the inner TCP and the SIP it carries.
    let keys = std::fs::read_to_string(report.esp_keys.clone().expect("ESP keys file")).unwrap();
    assert!(keys.contains("AES-CBC") && keys.contains("NULL"), "{keys}");
    let mut extra: Vec<String> = vec![
        "-o".into(),
        "esp.enable_encryption_decode:TRUE".into(),
        "--enable-heuristic".into(),
        "sip_tcp".into(),
    ];
    for line in keys
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        extra.push("-o".into());
        extra.push(format!("uat:esp_sa:{line}"));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let packets = tshark_check(
        &pcap,
        &extra,
        &[
            "esp.spi",
            "tcp.srcport",
            "sip.Method",
            "sip.Status-Code",
            "tcp.len",
            "ip.src",
            "ip.dst",
        ],
    );
    // Each UE's first REGISTER goes over plain TCP from its own address, where the P-CSCF
    // then binds its SAs (127.0.0.2 and 127.0.0.3 → the P-CSCF on 127.0.0.1).
    for ue in ["127.0.0.2", "127.0.0.3"] {
        let first = packets
            .iter()
            .find(|p| p.fields[2] == "REGISTER" && p.fields[5] == ue)
            .unwrap_or_else(|| panic!("no REGISTER from {ue}"));
        assert!(
            first.fields[0].is_empty() && !first.fields[1].is_empty(),
            "{ue}'s first REGISTER is plain TCP: {:?}",
            first.fields
        );
        assert_eq!(first.fields[6], "127.0.0.1", "to the P-CSCF");
    }
    let inner_tcp: Vec<_> = packets
        .iter()
        .filter(|p| !p.fields[0].is_empty() && !p.fields[1].is_empty())
        .collect();
    assert!(
        inner_tcp.len() >= 20,
        "ESP packets with inner TCP: {}",
        inner_tcp.len()
    );
    let methods: Vec<&str> = inner_tcp
        .iter()
        .map(|p| p.fields[2].as_str())
        .filter(|m| !m.is_empty())
        .collect();
    for m in ["REGISTER", "INVITE", "ACK", "BYE", "MESSAGE"] {
        assert!(
            methods.contains(&m),
            "{m} not decoded inside ESP/TCP: {methods:?}"
        );
    }
    // The MESSAGE above 1300 bytes took more than one full segment.
    let full = inner_tcp
        .iter()
        .filter(|p| p.fields[4].parse::<usize>().unwrap_or(0) > 1000)
        .count();
    assert!(full >= 2, "large segments inside ESP: {full}");
    lab.stop().await;
}
