//! SIPp caller and callee, each registered through the chain with SIPp's own IMS AKA
//! (`pcscf.ipsec.mode: off`), call each other: INVITE, 100, 180, 200, ACK, BYE, 200 through
//! P-CSCF, S-CSCF, I-CSCF, S-CSCF, P-CSCF; the P-CSCF's capture decodes cleanly in tshark.

use std::path::Path;
use std::time::Duration;

use imslab_config::IpsecMode;
use imslab_test_support::peer;
use imslab_test_support::sipp::stat;

use crate::pcaps::{in_order, sip_sequence};
use crate::sipp::{SippFiles, subscribers};
use crate::support::TestLab;

const CALLER_IP: &str = "127.0.0.5";
const CALLEE_IP: &str = "127.0.0.6";

fn free_udp_port(ip: &str) -> u16 {
    loop {
        let port = std::net::UdpSocket::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // SIPp also takes port + 2 for media.
        if port < 65_000 && std::net::UdpSocket::bind((ip, port + 2)).is_ok() {
            return port;
        }
    }
}

/// Registers one SIPp user from `ip:port`, again when SIPp's NUL-byte RES bug fails it.
async fn register_one(
    sipp: &Path,
    files: &SippFiles,
    users: &str,
    ip: &str,
    port: u16,
    pcscf: &str,
) {
    let mut last = String::new();
    for _ in 0..6 {
        let (sipp, dir_users, ip2, pcscf2) = (
            sipp.to_owned(),
            users.to_owned(),
            ip.to_owned(),
            pcscf.to_owned(),
        );
        let files2 = SippFiles::reuse(&files.dir);
        let (ok, _, out) = tokio::task::spawn_blocking(move || {
            files2.register(&sipp, &dir_users, 1, 10, &ip2, port, &pcscf2)
        })
        .await
        .unwrap();
        if ok == 1 {
            return;
        }
        last = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    panic!("SIPp user of {users} did not register in 6 tries:\n{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_caller_and_callee_registered_with_their_own_aka_call_each_other() {
    let sipp = peer("sipp", "sip-tester");
    let lab = TestLab::start(|c| {
        c.pcscf.ipsec.mode = IpsecMode::Off;
        c.pcscf.pcap = true;
    })
    .await;
    let domain = lab.lab.domain.as_str().to_owned();
    lab.import(&subscribers(0..2, &domain)).await;
    let dir = tempfile::tempdir().unwrap();
    let files = SippFiles::new(dir.path(), &domain);
    files.users("caller.csv", &[0]);
    files.users("callee.csv", &[1]);
    files.pairs("pairs.csv", &[(0, 1)]);
    files.pairs("back.csv", &[(1, 0)]);
    let pcscf = lab.lab.pcscf.to_string();
    let (caller_port, callee_port) = (free_udp_port(CALLER_IP), free_udp_port(CALLEE_IP));

    register_one(&sipp, &files, "callee.csv", CALLEE_IP, callee_port, &pcscf).await;
    register_one(&sipp, &files, "caller.csv", CALLER_IP, caller_port, &pcscf).await;

    // Each calls the other: the callee answers first, then the roles swap.
    for (uas_ip, uas_port, uac_ip, uac_port, pairs) in [
        (CALLEE_IP, callee_port, CALLER_IP, caller_port, "pairs.csv"),
        (CALLER_IP, caller_port, CALLEE_IP, callee_port, "back.csv"),
    ] {
        let uas = files.uas(&sipp, 1, uas_ip, uas_port);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let uac = tokio::task::spawn_blocking({
            let (sipp, files, pcscf) = (sipp.clone(), SippFiles::reuse(dir.path()), pcscf.clone());
            move || files.uac(&sipp, pairs, 1, 1, 1, uac_ip, uac_port, &pcscf)
        })
        .await
        .unwrap();
        let uas = tokio::task::spawn_blocking(move || uas.wait_with_output().expect("UAS ends"))
            .await
            .unwrap();
        let (uac_out, uas_out) = (
            String::from_utf8_lossy(&uac.stdout).into_owned(),
            String::from_utf8_lossy(&uas.stdout).into_owned(),
        );
        assert_eq!(
            stat(&uac_out, "Successful call"),
            1,
            "SIPp UAC on {uac_ip}:\n{uac_out}\n{}\nSIPp UAS:\n{uas_out}\nUE events of the lab:\n{}",
            String::from_utf8_lossy(&uac.stderr),
            lab.events_text()
        );
        assert_eq!(stat(&uas_out, "Successful call"), 1, "SIPp UAS:\n{uas_out}");
    }

    let pcap = lab.data_dir().join(imslab_pcscf::PCAP_FILE);
    let _dirs = lab.stop().await;
    let got = sip_sequence(&pcap);
    let want = [
        "REGISTER", "401", "REGISTER", "200", "INVITE", "100", "180", "200", "ACK", "BYE", "200",
    ];
    assert!(in_order(&got, &want), "{got:?} lacks {want:?}");
    // Both legs of the call are in the capture: phone ↔ P-CSCF and P-CSCF ↔ core.
    assert!(
        got.iter().filter(|m| *m == "INVITE").count() >= 2,
        "{got:?}"
    );
    assert!(got.iter().filter(|m| *m == "BYE").count() >= 2, "{got:?}");
}
