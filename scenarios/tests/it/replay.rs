//! Scenarios run by the replay runner against the scripted P-CSCF on real sockets: UDP,
//! userspace ESP, the step log, JUnit and the capture (checked with tshark).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use imslab_scenarios::runner::{Lab, ReplayOptions, run_scenario};
use imslab_scenarios::scenario::parse;
use imslab_test_support::tshark_check;
use imslab_types::Realm;

use crate::fake::{DOMAIN, IMSI, K_HEX, OPC_HEX};
use crate::fake_server::FakePcscf;

fn lab(pcscf: std::net::SocketAddr, ue: &str) -> Lab {
    Lab {
        domain: Realm::new(DOMAIN).unwrap(),
        pcscf,
        hss: "127.0.0.1:1".parse().unwrap(),
        hss_host: "hss.invalid".into(),
        web: "127.0.0.1:1".parse().unwrap(),
        web_token: None,
        ue_address: ue.parse::<IpAddr>().unwrap(),
        ipsec: true,
    }
}

fn scenario(ipsec: &str, steps: &str) -> String {
    format!(
        "name: fake-pcscf\nues:\n  alice:\n    imsi: \"{IMSI}\"\n    k: {K_HEX}\n    opc: {OPC_HEX}\n    \
         profile: iphone-14\n    ipsec: {ipsec}\n    expires: 600\nsteps:\n{steps}"
    )
}

const STEPS: &str = "  - register: {ue: alice, expect: {headers: {Service-Route: 'scscf'}}}
  - subscribe: {ue: alice}
  - expect: {ue: alice, request: NOTIFY, body_contains: 'state=\"active\"', within: 2s}
  - message: {from: alice, to: 'sip:bob@${domain}', sms: {text: hello}}
  - options: {ue: alice, to: 'sip:bob@${domain}'}
  - reregister: {ue: alice}
  - deregister: {ue: alice}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_over_userspace_esp_passes_writes_junit_and_a_decodable_capture() {
    let fake = FakePcscf::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("run.pcap");
    let junit = dir.path().join("junit.xml");
    let l = lab(fake.addr, "127.0.0.12");
    let text = scenario("{alg: hmac-sha-1-96, ealg: aes-cbc}", STEPS);
    let sc = parse(&text, Path::new("t.yaml"), &l.variables()).unwrap();
    let opts = ReplayOptions {
        scenario: "t.yaml".into(),
        lab: l,
        store: None,
        junit: Some(junit.clone()),
        pcap: Some(pcap.clone()),
        load: None,
        print_log: false,
    };
    let report = run_scenario(&sc, &opts).await.unwrap();
    assert!(report.passed(), "{:#?}", report.log);
    assert_eq!(report.steps.len(), 7);
    assert_eq!(report.exit_code(), 0);
    // The step log names each step and the messages in both directions.
    let log = report.log.join("\n");
    assert!(log.contains("#1 register alice ... ok"), "{log}");
    assert!(log.contains("alice: → REGISTER sip:"), "{log}");
    assert!(log.contains("alice: ← SIP/2.0 401"), "{log}");
    assert!(log.contains("(ESP)"), "{log}");
    let seen = fake.net.lock().unwrap().seen.clone();
    assert_eq!(seen[0], "REGISTER");
    assert!(
        seen[1..].iter().all(|s| s.ends_with("(protected)")),
        "{seen:?}"
    );
    // The P-CSCF side decrypted everything the UE protected.
    let stats = fake.esp.stats();
    assert!(stats.received >= 6, "{stats:?}");
    assert_eq!(
        stats.bad_icv + stats.replay + stats.bad_padding,
        0,
        "{stats:?}"
    );
    // JUnit: one test case per step, none failed.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 7, "{xml}");
    assert!(xml.contains("failures=\"0\""));
    // Capture: SIP in the clear and decrypted, ESP with the keys file beside it.
    let keys = report.esp_keys.clone().expect("ESP keys file");
    let keys_text = std::fs::read_to_string(&keys).unwrap();
    assert!(keys_text.contains("AES-CBC"), "{keys_text}");
    let packets = tshark_check(&pcap, &[], &["sip.Method", "sip.Status-Code", "esp.spi"]);
    let methods: Vec<&str> = packets
        .iter()
        .filter_map(|p| p.fields.first().map(String::as_str))
        .filter(|m| !m.is_empty())
        .collect();
    for m in ["REGISTER", "SUBSCRIBE", "NOTIFY", "MESSAGE", "OPTIONS"] {
        assert!(methods.contains(&m), "{m} missing from {methods:?}");
    }
    let esp = packets.iter().filter(|p| !p.fields[2].is_empty()).count();
    assert!(esp >= 12, "ESP packets in the capture: {esp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_expectation_stops_the_run_and_says_what_came() {
    let fake = FakePcscf::start(|n| n.barred.push(format!("sip:{IMSI}@{DOMAIN}"))).await;
    let l = lab(fake.addr, "127.0.0.13");
    let text = scenario(
        "true",
        "  - register: {ue: alice}\n  - deregister: {ue: alice}\n",
    );
    let sc = parse(&text, Path::new("t.yaml"), &BTreeMap::new()).unwrap();
    let opts = ReplayOptions {
        scenario: "t.yaml".into(),
        lab: l,
        store: None,
        junit: None,
        pcap: None,
        load: None,
        print_log: false,
    };
    let report = run_scenario(&sc, &opts).await.unwrap();
    assert!(!report.passed());
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.steps.len(), 1, "the run stops at the first failure");
    let f = report.failure.unwrap();
    assert!(f.contains("expected REGISTER 200, got 403"), "{f}");
    assert!(f.contains("line 11"), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barred_impu_scenario_expecting_403_passes_without_ipsec() {
    let fake = FakePcscf::start(|n| {
        n.barred.push(format!("sip:{IMSI}@{DOMAIN}"));
        n.ipsec = false;
    })
    .await;
    let l = lab(fake.addr, "127.0.0.14");
    let text = scenario(
        "false",
        "  - register: {ue: alice, expect: {status: 403}}\n",
    );
    let sc = parse(&text, Path::new("t.yaml"), &BTreeMap::new()).unwrap();
    let opts = ReplayOptions {
        scenario: "t.yaml".into(),
        lab: l,
        store: None,
        junit: None,
        pcap: None,
        load: None,
        print_log: false,
    };
    let report = run_scenario(&sc, &opts).await.unwrap();
    assert!(report.passed(), "{:#?}", report.log);
}
