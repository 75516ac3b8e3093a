//! Real peers: an independent GTPv2-C client built on PyPI's pycrate
//! (`tests/peer/gtpv2_client.py`) drives our P-GW over loopback, and tshark decodes the
//! captured requests and responses, PCO P-CSCF containers included, with no malformed packet.
//!
//! Needs `python3` with pycrate (`python3 -m pip install pycrate`) and tshark. Missing peers
//! fail the test with the package to install.

use std::io::Write;
use std::net::IpAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use imslab_config::PgwConfig;
use imslab_pgw::gtpv2::ie::{Cause, CauseValue, Ebi};
use imslab_pgw::gtpv2::msg::DeleteBearerResponse;
use imslab_pgw::{PgwOptions, start};
use imslab_test_support::{peer, tshark_check};

/// A pcap sink the test can read back after the P-GW stops.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn python_with_pycrate() -> std::path::PathBuf {
    let py = peer("python3", "python3");
    let ok = Command::new(&py)
        .args([
            "-c",
            "import pycrate_mobile.TS29274_GTPC, pycrate_mobile.TS24008_IE",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the Python package pycrate is not installed: python3 -m pip install pycrate"
    );
    py
}

/// A Create Session Request built with our codec (only to have a session to tear down), the
/// SGW control F-TEID on 127.0.0.1 and a PCO asking for P-CSCF IPv4.
fn create_session_request() -> Vec<u8> {
    let csr = imslab_pgw::gtpv2::msg::CreateSessionRequest {
        imsi: imslab_types::Imsi::new("001010000000002").unwrap(),
        msisdn: None,
        mei: None,
        serving_network: None,
        rat_type: imslab_pgw::gtpv2::ie::RatType(6),
        sender_fteid: imslab_pgw::gtpv2::ie::Fteid {
            interface_type: 6,
            teid: 1,
            ipv4: Some(std::net::Ipv4Addr::LOCALHOST),
            ipv6: None,
        },
        apn: imslab_pgw::gtpv2::ie::Apn("ims".into()),
        selection_mode: None,
        pdn_type: Some(imslab_pgw::gtpv2::ie::PdnType::IPV4),
        paa: None,
        apn_ambr: None,
        indication: None,
        pco: Some(vec![0x80, 0x00, 0x0c, 0x00]),
        apco: None,
        epco: None,
        bearer_contexts: vec![imslab_pgw::gtpv2::msg::BearerContextToCreate {
            ebi: Ebi(5),
            qos: imslab_pgw::gtpv2::ie::BearerQos {
                arp: 0x24,
                qci: 5,
                mbr_ul: 0,
                mbr_dl: 0,
                gbr_ul: 0,
                gbr_dl: 0,
            },
            sgw_u: None,
        }],
        recovery: None,
    };
    csr.to_message(100).to_bytes().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pycrate_client_gets_pcscf_in_pco_and_tshark_decodes_every_message() {
    let py = python_with_pycrate();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = PgwConfig {
        gtpc_listen: "127.0.0.1:0".parse().unwrap(),
        ..PgwConfig::default()
    };
    let ims = &mut cfg.apns[0];
    ims.pcscf = vec![
        "10.46.0.1".parse().unwrap(),
        "10.46.0.9".parse().unwrap(),
        "2001:db8:46::1".parse().unwrap(),
    ];
    ims.dns = vec![
        "192.0.2.53".parse().unwrap(),
        "2001:db8::53".parse().unwrap(),
    ];
    let pcap = Shared::default();
    let mut opts = PgwOptions::new(dir.path());
    opts.pcap = Some(Box::new(pcap.clone()));
    let pgw = start(&cfg, opts).await.unwrap();
    let addr = pgw.local_addr();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peer/gtpv2_client.py");
    let args: Vec<String> = [
        "--pgw",
        &addr.to_string(),
        "--apn",
        "ims",
        "--pcscf4",
        "10.46.0.1",
        "--pcscf4",
        "10.46.0.9",
        "--pcscf6",
        "2001:db8:46::1",
        "--dns4",
        "192.0.2.53",
        "--dns6",
        "2001:db8::53",
        "--mtu",
        "1400",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || Command::new(py).arg(script).args(args).output())
        .await
        .unwrap()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "pycrate client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        summary["pcscf4"],
        serde_json::json!(["10.46.0.1", "10.46.0.9"])
    );
    assert_eq!(summary["recovery"], serde_json::json!(pgw.recovery()));
    assert!(
        pgw.sessions().is_empty(),
        "Delete Session removed the session"
    );

    // One more session, so that shutdown sends a Delete Bearer Request (our own request).
    let sgw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let csr = imslab_pgw::gtpv2::Message::decode(&create_session_request())
        .unwrap()
        .0;
    sgw.send_to(&csr.to_bytes().unwrap(), addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    sgw.recv_from(&mut buf).await.unwrap();
    let stopping = tokio::spawn(pgw.shutdown());
    let (n, from) = sgw.recv_from(&mut buf).await.unwrap();
    let (dbr, _) = imslab_pgw::gtpv2::Message::decode(&buf[..n]).unwrap();
    let ans = DeleteBearerResponse {
        cause: Cause::new(CauseValue::REQUEST_ACCEPTED),
        linked_ebi: Some(Ebi(5)),
    };
    sgw.send_to(
        &ans.to_message(1, dbr.header.sequence).to_bytes().unwrap(),
        from,
    )
    .await
    .unwrap();
    stopping.await.unwrap().unwrap();

    // tshark: Echo, Create Session, 2 × Delete Session, each with its answer; then a Create
    // Session and the Delete Bearer exchange.
    let file = dir.path().join("gtpv2.pcap");
    std::fs::write(&file, pcap.0.lock().unwrap().as_slice()).unwrap();
    let decode_as = format!("udp.port=={},gtp", addr.port());
    let packets = tshark_check(
        &file,
        &["-d", &decode_as],
        &[
            "gtpv2.message_type",
            "gsm_a.gm.sm.pco.pcscf.ipv4",
            "gsm_a.gm.sm.pco.pcscf.ipv6",
            "gtpv2.cause",
        ],
    );
    let types: Vec<&str> = packets.iter().map(|p| p.fields[0].as_str()).collect();
    assert_eq!(
        types,
        [
            "1", "2", "32", "33", "36", "37", "36", "37", "32", "33", "99", "100"
        ],
        "{packets:?}"
    );
    let csr = &packets[3];
    let v4: Vec<IpAddr> = csr.fields[1]
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(
        v4,
        [
            "10.46.0.1".parse::<IpAddr>().unwrap(),
            "10.46.0.9".parse().unwrap()
        ]
    );
    assert_eq!(
        csr.fields[2].parse::<IpAddr>().unwrap(),
        "2001:db8:46::1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        packets[7].fields[3], "64",
        "second Delete Session: Context not found"
    );
}
