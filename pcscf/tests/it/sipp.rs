//! SIPp 3.6.1 (package sip-tester) with its own IMS AKA registering through the P-CSCF
//! (`pcscf.ipsec.mode: off`) to the real I-CSCF, S-CSCF and HSS; the P-CSCF's capture decodes in
//! tshark.
//!
//! SIPp 3.6.1 cuts RES at its first 0x00 byte (peers.md), so about 3 % of its answers are
//! wrong and the S-CSCF refuses them: the failed calls must be exactly the challenges whose
//! RES (recomputed with MILENAGE from the nonce in SIPp's trace) has a 0x00 byte.

use std::process::{Command, Stdio};
use std::time::SystemTime;

use imslab_aka::{Milenage, Nonce};
use imslab_config::IpsecMode;
use imslab_store::provision::{ImpuInput, NewSubscriber, ProvisionDefaults, SubscriberInput};
use imslab_test_support::{peer, tshark_check};
use imslab_types::{K, Op};

use crate::chain::start_core;
use crate::harness::{DOMAIN, K_HEX, Lab, ip, lab_lock};

/// TS 35.208 test set 1 OP and an AMF without 0x00 bytes (SIPp takes them as text).
const OP_HEX: &str = "cdc202d5123e20f62b6d676ac72cb318";
const AMF_HEX: &str = "b9b9";
const USERS: u32 = 20;
const CALLS: usize = 100;

fn imsi(n: u32) -> String {
    format!("00101{n:010}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_registers_through_the_pcscf_with_ipsec_off_and_only_its_nul_byte_res_answers_fail() {
    let sipp = peer("sipp", "sip-tester");
    let _g = lab_lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::unlaunched(IpsecMode::Off).await;
    let defaults = ProvisionDefaults::new(imslab_types::Realm::new(DOMAIN).unwrap());
    let news: Vec<NewSubscriber> = (100..100 + USERS)
        .map(|n| {
            let input = SubscriberInput {
                imsi: imsi(n),
                k: K_HEX.into(),
                op: Some(OP_HEX.into()),
                amf: Some(AMF_HEX.into()),
                impus: vec![ImpuInput::Uri(format!("sip:{}@{DOMAIN}", imsi(n)))],
                ..SubscriberInput::default()
            };
            NewSubscriber::from_input(&input, &defaults).unwrap()
        })
        .collect();
    lab.store
        .subscribers()
        .insert_all(&news, SystemTime::now())
        .await
        .unwrap();
    let events: std::sync::Arc<dyn imslab_types::UeEventSink> = lab.events.clone();
    let core = start_core(lab.net, lab.store.clone(), &mut lab.cfg, events).await;
    lab.cfg.pcscf.icscf = lab.cfg.icscf.listen;
    lab.cfg.pcscf.pcap = true;
    lab.launch().await.unwrap();

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
    std::fs::write(dir.path().join("users.csv"), csv).unwrap();
    std::fs::write(
        dir.path().join("reg.xml"),
        imslab_test_support::sipp::aka_register_scenario(
            DOMAIN,
            &imslab_test_support::sipp::AkaRegister {
                extra_headers: &["Supported: path"],
                ..Default::default()
            },
        ),
    )
    .unwrap();
    let ue_ip = ip(lab.net, 2).to_string();
    let port = std::net::UdpSocket::bind((ip(lab.net, 2), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        let target = lab.pcscf.to_string();
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
                    &ue_ip,
                ])
                .args(["-p", &port.to_string()])
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
    .unwrap();
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
    let m = Milenage::with_op(&K::from_hex(K_HEX).unwrap(), &Op::from_hex(OP_HEX).unwrap());
    let nonces = imslab_test_support::sipp::answered_nonces(dir.path());
    assert_eq!(nonces.len(), CALLS, "one answered challenge per call");
    let nul = nonces
        .iter()
        .filter(|n| m.f2(&Nonce::parse(n).unwrap().rand).expose().contains(&0))
        .count();
    eprintln!("SIPp via the P-CSCF: {ok} registered, {failed} failed; {nul} RES with a 0x00 byte");
    assert_eq!(
        failed, nul,
        "the failed calls are exactly SIPp's NUL-byte RES answers"
    );
    assert!(ok >= CALLS * 9 / 10, "{ok} of {CALLS} registered");
    let s = lab
        .wait_status("registered phones", |s| s.registrations > 0)
        .await;
    assert!(s.registrations <= USERS as usize);
    assert!(lab.events.has("challenge", "Info", "ck/ik removed"));
    lab.stop().await;
    core.stop.cancel();
    core.hss.shutdown().await;
    // Every message the P-CSCF sent and received decodes in tshark, without expert errors.
    let pcap = lab.dir.path().join(imslab_pcscf::PCAP_FILE);
    let packets = tshark_check(&pcap, &[], &["sip.Method", "sip.Status-Code"]);
    let registers = packets.iter().filter(|p| p.fields[0] == "REGISTER").count();
    assert!(
        registers >= 4 * CALLS,
        "REGISTER in and out for both rounds: {registers}"
    );
    assert!(packets.iter().any(|p| p.fields[1] == "401"));
    assert!(packets.iter().any(|p| p.fields[0] == "SUBSCRIBE"));
}
