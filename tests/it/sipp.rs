//! SIPp 3.6.1, an independent client with its own IMS AKA, registering through `imslab up`:
//! P-CSCF (sec-agree off) → I-CSCF → S-CSCF → HSS.
//!
//! SIPp 3.6.1 cuts RES at its first 0x00 byte (about 3 % of challenges), so a correct S-CSCF
//! refuses those answers. The test recomputes RES for every challenge SIPp answered and
//! requires the failures to be exactly those.

use std::process::Stdio;
use std::time::Duration;

use imslab_aka::{Milenage, Nonce};
use imslab_test_support::{peer, sipp};
use imslab_types::{K, Op};

use crate::support::{Lab, Ports, free_udp_port, http, stop_cleanly, wait_listening};

const DOMAIN: &str = "ims.mnc001.mcc001.3gppnetwork.org";
const K_HEX: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
/// TS 35.208 set 1 OP; SIPp cannot take keys with a 0x00 byte.
const OP_HEX: &str = "cdc202d5123e20f62b6d676ac72cb318";
const AMF_HEX: &str = "b9b9";
const USERS: usize = 10;
const CALLS: usize = 40;

#[test]
fn sipp_registers_with_ims_aka_through_the_whole_chain() {
    let sipp_bin = peer("sipp", "sip-tester");
    let lab = Lab::new();
    let ports = Ports::new();
    let yaml = ports
        .yaml()
        .replacen("pcscf:\n", "pcscf:\n  ipsec: {mode: off}\n", 1);
    lab.write("lab.yaml", &yaml);
    let mut csv = String::from("SEQUENTIAL\n");
    for n in 0..USERS {
        let imsi = format!("00101000000{n:04}");
        let impu = format!("sip:{imsi}@{DOMAIN}");
        let add = lab.run(&[
            "--config",
            "lab.yaml",
            "subscriber",
            "add",
            "--imsi",
            &imsi,
            "--k",
            K_HEX,
            "--op",
            OP_HEX,
            "--amf",
            AMF_HEX,
            "--impu",
            &impu,
        ]);
        assert!(
            add.status.success(),
            "{}",
            String::from_utf8_lossy(&add.stderr)
        );
        csv.push_str(&format!(
            "{imsi};[authentication username={imsi}@{DOMAIN} aka_K={} aka_OP={} aka_AMF={}]\n",
            sipp::escaped(K_HEX),
            sipp::escaped(OP_HEX),
            sipp::escaped(AMF_HEX)
        ));
    }
    lab.write("users.csv", &csv);
    lab.write(
        "reg.xml",
        &sipp::aka_register_scenario(DOMAIN, &Default::default()),
    );
    let mut child = lab.spawn(&["--config", "lab.yaml", "up"]);
    assert!(
        wait_listening(ports.web, Duration::from_secs(10)).is_some(),
        "lab started"
    );

    let out = std::process::Command::new(sipp_bin)
        .current_dir(lab.path())
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
        .args(["-p", &free_udp_port().to_string(), "-m", &CALLS.to_string()])
        .args([
            "-r",
            "50",
            "-l",
            "5",
            "-nostdin",
            "-trace_msg",
            "-timeout",
            "60s",
        ])
        .arg("-timeout_error")
        .arg(ports.pcscf.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("sipp runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ok = sipp::stat(&stdout, "Successful call");
    let failed = sipp::stat(&stdout, "Failed call");
    assert_eq!(ok + failed, CALLS, "SIPp ran every call:\n{stdout}");

    let m = Milenage::with_op(&K::from_hex(K_HEX).unwrap(), &Op::from_hex(OP_HEX).unwrap());
    let nonces = sipp::answered_nonces(lab.path());
    assert_eq!(nonces.len(), CALLS, "one answered challenge per call");
    let nul = nonces
        .iter()
        .filter(|n| {
            m.f2(&Nonce::parse(n).expect("an AKA nonce").rand)
                .expose()
                .contains(&0)
        })
        .count();
    assert_eq!(
        failed, nul,
        "failures are exactly SIPp's NUL-byte RES answers ({ok} ok)"
    );

    let (_, regs) = http(ports.web, "GET", "/api/v1/registrations", "");
    assert!(regs.contains("\"state\":\"registered\""), "{regs}");

    // Network-initiated deregistration from the CLI: the HSS sends RTR to the S-CSCF.
    let registered = |imsi: &str| {
        let (_, regs) = http(ports.web, "GET", "/api/v1/registrations", "");
        let v: serde_json::Value = serde_json::from_str(&regs).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["imsi"] == imsi && r["state"] == "registered")
    };
    let imsi = "001010000000000";
    assert!(registered(imsi), "{imsi} registered before the RTR");
    let out = lab.run(&["--config", "lab.yaml", "subscriber", "deregister", imsi]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deregistered"));
    assert!(!registered(imsi), "{imsi} still registered after the RTR");
    // And a profile push (PPR) to the S-CSCF serving another subscriber.
    let out = lab.run(&[
        "--config",
        "lab.yaml",
        "subscriber",
        "push-profile",
        "001010000000001",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop_cleanly(&mut child);
}
