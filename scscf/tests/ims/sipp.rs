//! SIPp 3.6.1 with its own IMS AKA (`[authentication ... aka_K aka_OP aka_AMF]`) registering
//! through the I-CSCF and the S-CSCF to the real HSS.
//!
//! SIPp 3.6.1 cuts RES at its first 0x00 byte (peers.md), so about 3 % of its answers are
//! wrong and a correct S-CSCF refuses them. The test tells those apart from real failures:
//! every REGISTER SIPp answered is looked up in its message trace, RES is recomputed from the
//! nonce with MILENAGE, and the failed calls must be exactly those whose RES has a 0x00 byte.

use std::process::{Command, Stdio};
use std::time::SystemTime;

use imslab_aka::{Milenage, Nonce};
use imslab_store::provision::{ImpuInput, NewSubscriber, ProvisionDefaults, SubscriberInput};
use imslab_test_support::peer;
use imslab_types::{K, Op};

use crate::support::*;

/// TS 35.208 test set 1 OP (no 0x00 byte, which SIPp cannot take).
const OP_HEX: &str = "cdc202d5123e20f62b6d676ac72cb318";
/// An AMF without 0x00 bytes, for the same reason.
const AMF_HEX: &str = "b9b9";
const USERS: u32 = 20;
const CALLS: usize = 160;

async fn provision_op(lab: &Lab, first: u32) {
    let defaults = ProvisionDefaults::new(imslab_types::Realm::new(DOMAIN).expect("realm"));
    let news: Vec<NewSubscriber> = (first..first + USERS)
        .map(|n| {
            let input = SubscriberInput {
                imsi: imsi(n),
                k: K_HEX.into(),
                op: Some(OP_HEX.into()),
                amf: Some(AMF_HEX.into()),
                impus: vec![ImpuInput::Uri(impu(n))],
                ..SubscriberInput::default()
            };
            NewSubscriber::from_input(&input, &defaults).expect("valid")
        })
        .collect();
    lab.store
        .subscribers()
        .insert_all(&news, SystemTime::now())
        .await
        .expect("provisioned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_ims_aka_registers_and_only_its_nul_byte_res_answers_fail() {
    let sipp = peer("sipp", "sip-tester");
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    provision_op(&lab, 100).await;
    let auth = format!(
        "[authentication username={{user}}@{DOMAIN} aka_K={} aka_OP={} aka_AMF={}]",
        imslab_test_support::sipp::escaped(K_HEX),
        imslab_test_support::sipp::escaped(OP_HEX),
        imslab_test_support::sipp::escaped(AMF_HEX)
    );
    let mut csv = String::from("SEQUENTIAL\n");
    for n in 100..100 + USERS {
        csv.push_str(&format!(
            "{};{}\n",
            imsi(n),
            auth.replace("{user}", &imsi(n))
        ));
    }
    std::fs::write(dir.path().join("users.csv"), csv).expect("csv");
    std::fs::write(
        dir.path().join("reg.xml"),
        imslab_test_support::sipp::aka_register_scenario(DOMAIN, &Default::default()),
    )
    .expect("xml");
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        let target = lab.icscf.to_string();
        move || {
            Command::new(sipp)
                .current_dir(&dir)
                .args([
                    "-sf",
                    "reg.xml",
                    "-inf",
                    "users.csv",
                    "-t",
                    "u1",
                    "-i",
                    "127.0.0.1",
                ])
                .args(["-p", &free_std_port().to_string()])
                .args([
                    "-m",
                    &CALLS.to_string(),
                    "-r",
                    "100",
                    "-l",
                    "10",
                    "-nostdin",
                ])
                .args(["-trace_msg", "-timeout", "60s", "-timeout_error"])
                .arg(&target)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .expect("sipp runs")
        }
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let count = |what: &str| -> usize {
        stdout
            .lines()
            .rev()
            .find(|l| l.contains(what))
            .and_then(|l| l.split('|').next_back())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let (ok, failed) = (count("Successful call"), count("Failed call"));
    assert_eq!(
        ok + failed,
        CALLS,
        "SIPp ran every call:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let m = Milenage::with_op(
        &K::from_hex(K_HEX).expect("k"),
        &Op::from_hex(OP_HEX).expect("op"),
    );
    let nonces = imslab_test_support::sipp::answered_nonces(dir.path());
    if std::env::var_os("IMSLAB_KEEP_SIPP").is_some() {
        let keep = dir.path().to_owned();
        std::mem::forget(dir);
        eprintln!("SIPp files kept in {}", keep.display());
    }
    assert_eq!(nonces.len(), CALLS, "one answered challenge per call");
    let nul = nonces
        .iter()
        .filter(|n| {
            let rand = Nonce::parse(n).expect("an AKA nonce").rand;
            m.f2(&rand).expose().contains(&0)
        })
        .count();
    eprintln!("SIPp: {ok} registered, {failed} failed; {nul} challenges had a 0x00 byte in RES");
    assert_eq!(
        failed, nul,
        "the failed calls are exactly SIPp's NUL-byte RES answers ({ok} ok, {failed} failed)"
    );
    assert!(ok >= CALLS * 9 / 10, "{ok} of {CALLS} registered");
    lab.stop().await;
}

fn free_std_port() -> u16 {
    let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    u.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_reregisters_and_deregisters_in_one_call() {
    let sipp = peer("sipp", "sip-tester");
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    provision_op(&lab, 200).await;
    let auth = format!(
        "[authentication username={{user}}@{DOMAIN} aka_K={} aka_OP={} aka_AMF={}]",
        imslab_test_support::sipp::escaped(K_HEX),
        imslab_test_support::sipp::escaped(OP_HEX),
        imslab_test_support::sipp::escaped(AMF_HEX)
    );
    let mut csv = String::from("SEQUENTIAL\n");
    for n in 200..200 + USERS {
        csv.push_str(&format!(
            "{};{}\n",
            imsi(n),
            auth.replace("{user}", &imsi(n))
        ));
    }
    std::fs::write(dir.path().join("users.csv"), csv).expect("csv");
    std::fs::write(
        dir.path().join("rereg.xml"),
        imslab_test_support::sipp::aka_register_scenario(
            DOMAIN,
            &imslab_test_support::sipp::AkaRegister {
                then: &[600, 0],
                ..Default::default()
            },
        ),
    )
    .expect("xml");
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        let target = lab.icscf.to_string();
        move || {
            Command::new(sipp)
                .current_dir(&dir)
                .args([
                    "-sf",
                    "rereg.xml",
                    "-inf",
                    "users.csv",
                    "-t",
                    "u1",
                    "-i",
                    "127.0.0.1",
                ])
                .args(["-p", &free_std_port().to_string()])
                .args(["-m", "20", "-r", "20", "-l", "5", "-nostdin"])
                .args(["-trace_msg", "-timeout", "60s", "-timeout_error"])
                .arg(&target)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .expect("sipp runs")
        }
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (ok, failed) = (
        sipp_count(&stdout, "Successful call"),
        sipp_count(&stdout, "Failed call"),
    );
    assert_eq!(ok + failed, 20, "SIPp ran every call:\n{stdout}");
    let mut nonces = imslab_test_support::sipp::answered_nonces(dir.path());
    nonces.sort();
    nonces.dedup();
    assert_eq!(
        nonces.len(),
        20,
        "one challenge per call, reused for re- and de-registration"
    );
    let m = Milenage::with_op(
        &K::from_hex(K_HEX).expect("k"),
        &Op::from_hex(OP_HEX).expect("op"),
    );
    let nul = nonces
        .iter()
        .filter(|n| {
            m.f2(&Nonce::parse(n).expect("nonce").rand)
                .expose()
                .contains(&0)
        })
        .count();
    assert_eq!(
        failed, nul,
        "only SIPp's NUL-byte RES answers fail:\n{stdout}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let left = lab
        .store
        .scscf(&lab.config.scscf.uri)
        .registrations()
        .await
        .expect("store");
    assert!(
        left.is_empty(),
        "every successful call de-registered: {left:?}"
    );
    lab.stop().await;
}

fn sipp_count(stdout: &str, what: &str) -> usize {
    stdout
        .lines()
        .rev()
        .find(|l| l.contains(what))
        .and_then(|l| l.split('|').next_back())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}
