//! The reference captures in `pcaps/`: produced from library scenarios against the lab and
//! checked with tshark (no malformed packet, no expert error, the expected SIP sequence).
//!
//! `IMSLAB_REGEN_PCAPS=1 cargo test -p imslab-scenarios --test lab reference_captures`
//! rewrites `pcaps/*.pcap` (and `.esp_sa`); without it the test makes fresh captures in a
//! temporary directory and checks them and the committed ones alike.

use std::path::{Path, PathBuf};

use imslab_config::IpsecMode;
use imslab_scenarios::{ReplayOptions, replay};
use imslab_test_support::tshark_check;

use crate::support::TestLab;

/// (library file, capture name, SIP messages that must appear in this order).
const CAPTURES: &[(&str, &str, &[&str])] = &[
    (
        "aka-ipsec-sha1-aes-cbc.yaml",
        "aka-ipsec-sha1-aes-cbc",
        &[
            "REGISTER", "401", "REGISTER", "200", "OPTIONS", "REGISTER", "200",
        ],
    ),
    (
        "sqn-resync.yaml",
        "sqn-resync",
        &["REGISTER", "401", "REGISTER", "401", "REGISTER", "200"],
    ),
    (
        "wrong-k.yaml",
        "wrong-k",
        &["REGISTER", "401", "REGISTER", "403"],
    ),
    (
        "deregistration.yaml",
        "deregistration",
        // The SUBSCRIBE's 200 and the first NOTIFY may cross.
        &[
            "REGISTER",
            "401",
            "REGISTER",
            "200",
            "SUBSCRIBE",
            "NOTIFY",
            "200",
            "REGISTER",
            "401",
            "REGISTER",
            "200",
        ],
    ),
];

const PLAIN_CAPTURES: &[(&str, &str, &[&str])] = &[
    (
        "call-basic.yaml",
        "call-basic",
        &["INVITE", "100", "180", "200", "ACK", "BYE", "200"],
    ),
    (
        "sms-ue-to-ue.yaml",
        "sms-ue-to-ue",
        &["MESSAGE", "200", "MESSAGE", "200"],
    ),
    (
        "md5-digest.yaml",
        "md5-digest",
        &[
            "REGISTER", "401", "REGISTER", "200", "REGISTER", "200", "REGISTER", "200",
        ],
    ),
];

/// IPsec captures whose protected SIP is TCP inside ESP (no clear copies): decoded with the
/// `.esp_sa` table beside them.
const ESP_TCP_CAPTURES: &[(&str, &str, &[&str])] = &[(
    "call-ipsec-tcp.yaml",
    "call-ipsec-tcp",
    &[
        "REGISTER", "401", "REGISTER", "200", "INVITE", "180", "200", "ACK", "BYE", "200",
        "MESSAGE", "200", "REGISTER", "200", "OPTIONS", "REGISTER", "200",
    ],
)];

fn pcaps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
}

/// The SIP requests and status codes of a capture, in order.
pub(crate) fn sip_sequence(pcap: &Path) -> Vec<String> {
    sip_sequence_with(pcap, &[])
}

/// No extra tshark options: the capture carries its SIP in the clear.
fn clear(_pcap: &Path) -> Vec<String> {
    Vec::new()
}

/// tshark options for a capture whose SIP is TCP inside ESP: decrypt the ESP with the SA table
/// beside it (`x.esp_sa`, one `uat:esp_sa` entry per line) and decode the inner TCP (the soft
/// UE's hub may emit two segments of one connection from two tasks, so out of order).
fn esp_tcp(pcap: &Path) -> Vec<String> {
    let keys_path = pcap.with_extension("esp_sa");
    let keys = std::fs::read_to_string(&keys_path)
        .unwrap_or_else(|e| panic!("{}: {e}", keys_path.display()));
    let mut args: Vec<String> = vec![
        "-o".into(),
        "esp.enable_encryption_decode:TRUE".into(),
        "-o".into(),
        "tcp.reassemble_out_of_order:TRUE".into(),
        "--enable-heuristic".into(),
        "sip_tcp".into(),
    ];
    for line in keys
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        args.push("-o".into());
        args.push(format!("uat:esp_sa:{line}"));
    }
    args
}

fn sip_sequence_with(pcap: &Path, args: &[&str]) -> Vec<String> {
    tshark_check(
        pcap,
        args,
        &["sip.Method", "sip.Status-Code", "sip.CSeq.method"],
    )
    .into_iter()
    .filter_map(|p| {
        let (m, s) = (p.fields[0].clone(), p.fields[1].clone());
        match (m.is_empty(), s.is_empty()) {
            (false, _) => Some(m),
            (true, false) => Some(s),
            _ => None,
        }
    })
    .collect()
}

/// Checks that every SIP response in a capture comes after a request of its transaction
/// (same Call-ID, CSeq number and method): a capture that records a message after it has
/// left can show the answer first.
fn responses_follow_their_requests(name: &str, pcap: &Path, args: &[&str]) {
    let packets = tshark_check(
        pcap,
        args,
        &[
            "sip.Method",
            "sip.Status-Code",
            "sip.Call-ID",
            "sip.CSeq.seq",
            "sip.CSeq.method",
        ],
    );
    let mut seen = std::collections::HashSet::new();
    for (i, p) in packets.iter().enumerate() {
        // One frame may carry several messages (TCP): tshark joins their values with ','.
        let column =
            |n: usize| -> Vec<&str> { p.fields[n].split(',').filter(|v| !v.is_empty()).collect() };
        let (methods, codes, ids) = (column(0), column(1), column(2));
        let keys = ids
            .iter()
            .zip(column(3))
            .zip(column(4))
            .map(|((id, seq), m)| (id.to_string(), seq.to_owned(), m.to_owned()));
        if codes.is_empty() || methods.len() == ids.len() {
            seen.extend(keys);
        } else if codes.len() == ids.len() {
            for key in keys {
                assert!(
                    seen.contains(&key),
                    "{name}: packet {} is a response to {key:?} ahead of its request",
                    i + 1
                );
            }
        } else {
            // Requests and responses in one frame: their columns cannot be paired.
            seen.extend(keys);
        }
    }
}

/// Whether `want` appears in `got` in order (other messages may come between).
pub(crate) fn in_order(got: &[String], want: &[&str]) -> bool {
    let mut it = got.iter();
    want.iter().all(|w| it.any(|g| g == w))
}

async fn produce(lab: &TestLab, file: &str, out: &Path) {
    let opts = ReplayOptions {
        scenario: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("library")
            .join(file),
        lab: lab.lab.clone(),
        store: Some(lab.store.clone()),
        junit: None,
        pcap: Some(out.to_owned()),
        load: None,
        print_log: false,
    };
    let report = replay(opts).await.unwrap();
    assert!(
        report.passed(),
        "{file}: {:?}\n{}\nUE events of the lab:\n{}",
        report.failure,
        report.log.join("\n"),
        lab.events_text()
    );
}

async fn check_set(
    lab: &TestLab,
    set: &[(&str, &str, &[&str])],
    tshark_args: fn(&Path) -> Vec<String>,
    regen: bool,
    tmp: &Path,
) {
    for (file, name, want) in set {
        let dir = if regen { pcaps_dir() } else { tmp.to_owned() };
        let fresh = dir.join(format!("{name}.pcap"));
        produce(lab, file, &fresh).await;
        let args = tshark_args(&fresh);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        responses_follow_their_requests(name, &fresh, &args);
        let got = sip_sequence_with(&fresh, &args);
        assert!(
            in_order(&got, want),
            "{name} (fresh): {got:?} lacks {want:?}"
        );
        let committed = pcaps_dir().join(format!("{name}.pcap"));
        assert!(
            committed.exists(),
            "{} is missing: run IMSLAB_REGEN_PCAPS=1 cargo test -p imslab-scenarios --test lab reference_captures",
            committed.display()
        );
        let args = tshark_args(&committed);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        responses_follow_their_requests(name, &committed, &args);
        let got = sip_sequence_with(&committed, &args);
        assert!(
            in_order(&got, want),
            "{name} (committed): {got:?} lacks {want:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_captures_decode_cleanly_with_the_expected_sequences() {
    let regen = std::env::var_os("IMSLAB_REGEN_PCAPS").is_some();
    let tmp = tempfile::tempdir().unwrap();
    let lab = TestLab::start(|_| {}).await;
    check_set(&lab, CAPTURES, clear, regen, tmp.path()).await;
    check_set(&lab, ESP_TCP_CAPTURES, esp_tcp, regen, tmp.path()).await;
    lab.stop().await;
    let lab = TestLab::start(|c| c.pcscf.ipsec.mode = IpsecMode::Off).await;
    check_set(&lab, PLAIN_CAPTURES, clear, regen, tmp.path()).await;
    lab.stop().await;
    // The IPsec captures come with their Wireshark keys.
    assert!(pcaps_dir().join("aka-ipsec-sha1-aes-cbc.esp_sa").exists());
    assert!(pcaps_dir().join("call-ipsec-tcp.esp_sa").exists());
}
