//! The kernel backend: our XFRM netlink bytes against iproute2's (captured with strace), and
//! policies, SPI allocation, the ESP probe and stale-state cleanup live in network namespaces
//! the tests create and delete.

use std::net::IpAddr;
use std::process::Command;

use imslab_ipsec::xfrm::{
    self, EspSupport, TRANSPORTS, XfrmBackend, XfrmConfig, alloc_spi_message, policy_add_message,
    policy_delete_message, sa_add_message, sa_delete_message,
};
use imslab_ipsec::{CipherSuite, Error, SaBundle, SaRole, SaSetId};

use crate::support::{Netns, in_fresh_netns, pcscf_bundle};

const XFRM_MSG_NEWSA: u16 = 0x10;
const XFRM_MSG_DELSA: u16 = 0x11;
const XFRM_MSG_NEWPOLICY: u16 = 0x13;
const XFRM_MSG_DELPOLICY: u16 = 0x14;
const XFRM_MSG_ALLOCSPI: u16 = 0x16;

/// Runs `ip <args>` under strace inside `ns` and returns the first netlink message of
/// `msg_type` it sent, from strace's hex dump (`-e write=all`).
fn iproute2_message(ns: &Netns, args: &[String], msg_type: u16) -> Vec<u8> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "strace",
            "-f",
            "-e",
            "trace=sendmsg",
            "-e",
            "write=all",
            "-s",
            "65535",
            "ip",
        ])
        .args(args)
        .output()
        .expect("strace/ip failed to start: this test needs the strace and iproute2 packages");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("bytes in buffer"),
        "strace recorded no sendmsg of ip (packages strace, iproute2 needed): {text}"
    );
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        if line.starts_with(" * ") && line.contains("bytes in buffer") {
            blocks.push(Vec::new());
        } else if let (Some(block), Some(hexpart)) = (blocks.last_mut(), line.strip_prefix(" | ")) {
            let area = hexpart.get(7..56).unwrap_or_default();
            block.extend(
                area.split_whitespace()
                    .map(|h| u8::from_str_radix(h, 16).unwrap()),
            );
        }
    }
    blocks
        .into_iter()
        .find(|b| b.len() >= 16 && u16::from_le_bytes([b[4], b[5]]) == msg_type)
        .unwrap_or_else(|| panic!("ip {args:?} sent no message of type {msg_type:#x}:\n{text}"))
}

/// Compares two netlink messages, ignoring the sequence number and port id.
fn assert_same_message(ours: &[u8], theirs: &[u8], what: &str) {
    let strip = |b: &[u8]| {
        let mut v = b.to_vec();
        v[8..16].fill(0);
        v
    };
    assert_eq!(
        hex::encode(strip(ours)),
        hex::encode(strip(theirs)),
        "{what}: our netlink bytes differ from iproute2's"
    );
}

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn sa_add_args(sa: &imslab_ipsec::SecurityAssociation, b: &SaBundle, reqid: u32) -> Vec<String> {
    let suite = b.suite();
    let plen = if sa.src.is_ipv4() { 32 } else { 128 };
    let ck = b.keys.encryption().expose();
    let mut a = args(&format!(
        "xfrm state add src {} dst {} proto esp spi {:#x} reqid {reqid} mode transport replay-window 64",
        sa.src.ip(),
        sa.dst.ip(),
        sa.spi.0
    ));
    a.extend(["auth-trunc".into(), suite.integrity.xfrm_name().into()]);
    a.push(format!("0x{}", hex::encode(b.keys.integrity().expose())));
    a.push("96".into());
    a.extend(["enc".into(), suite.encryption.xfrm_name().into()]);
    a.push(if ck.is_empty() {
        String::new()
    } else {
        format!("0x{}", hex::encode(ck))
    });
    a.extend(args(&format!(
        "sel src {}/{plen} dst {}/{plen}",
        sa.src.ip(),
        sa.dst.ip()
    )));
    a
}

fn proto_name(t: u8) -> &'static str {
    if t == 17 { "udp" } else { "tcp" }
}

fn policy_args(verb: &str, sa: &imslab_ipsec::SecurityAssociation, t: u8) -> String {
    let plen = if sa.src.is_ipv4() { 32 } else { 128 };
    let dir = if sa.direction() == imslab_ipsec::Direction::Outbound {
        "out"
    } else {
        "in"
    };
    format!(
        "xfrm policy {verb} src {}/{plen} dst {}/{plen} proto {} sport {} dport {} dir {dir}",
        sa.src.ip(),
        sa.dst.ip(),
        proto_name(t),
        sa.src.port(),
        sa.dst.port()
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn sa_messages_are_byte_identical_to_iproute2_for_every_suite() {
    let ns = Netns::create();
    let cfg = XfrmConfig::default();
    let id = SaSetId(5);
    for suite in CipherSuite::all() {
        let b = pcscf_bundle(ip("127.0.0.1"), ip("127.0.0.2"), suite);
        for sa in b.sas() {
            let reqid = cfg.reqid(id, sa.role);
            let ours = xfrm::to_bytes(&sa_add_message(&sa, &b.keys, reqid, cfg.replay_window));
            let theirs = iproute2_message(&ns, &sa_add_args(&sa, &b, reqid), XFRM_MSG_NEWSA);
            assert_same_message(&ours, &theirs, &format!("state add {suite} {:?}", sa.role));
        }
    }
    // IPv6, and the delete message.
    let b = pcscf_bundle(
        ip("fd00::1"),
        ip("fd00::2"),
        CipherSuite::all().next().unwrap(),
    );
    let sa = b.sa(SaRole::InboundToServer);
    let reqid = cfg.reqid(id, sa.role);
    let ours = xfrm::to_bytes(&sa_add_message(&sa, &b.keys, reqid, cfg.replay_window));
    assert_same_message(
        &ours,
        &iproute2_message(&ns, &sa_add_args(&sa, &b, reqid), XFRM_MSG_NEWSA),
        "IPv6 state add",
    );
    let ours = xfrm::to_bytes(&sa_delete_message(sa.src.ip(), sa.dst.ip(), sa.spi));
    let del = args(&format!(
        "xfrm state delete src {} dst {} proto esp spi {:#x}",
        sa.src.ip(),
        sa.dst.ip(),
        sa.spi.0
    ));
    assert_same_message(
        &ours,
        &iproute2_message(&ns, &del, XFRM_MSG_DELSA),
        "state delete",
    );
}

#[test]
fn policy_messages_are_byte_identical_to_iproute2() {
    let ns = Netns::create();
    let cfg = XfrmConfig::default();
    let b = pcscf_bundle(
        ip("127.0.0.1"),
        ip("127.0.0.2"),
        CipherSuite::all().next().unwrap(),
    );
    for sa in b.sas() {
        for t in TRANSPORTS {
            let reqid = cfg.reqid(SaSetId(9), sa.role);
            let ours = xfrm::to_bytes(&policy_add_message(&sa, t, reqid, cfg.priority));
            let add = format!(
                "{} priority {} tmpl src {} dst {} proto esp reqid {reqid} mode transport",
                policy_args("add", &sa, t),
                cfg.priority,
                sa.src.ip(),
                sa.dst.ip()
            );
            assert_same_message(
                &ours,
                &iproute2_message(&ns, &args(&add), XFRM_MSG_NEWPOLICY),
                &add,
            );
            let ours = xfrm::to_bytes(&policy_delete_message(&sa, t));
            let del = policy_args("delete", &sa, t);
            assert_same_message(
                &ours,
                &iproute2_message(&ns, &args(&del), XFRM_MSG_DELPOLICY),
                &del,
            );
        }
    }
    let ours = xfrm::to_bytes(&alloc_spi_message(
        ip("127.0.0.2"),
        ip("127.0.0.1"),
        0x1000..=0x1fff,
        77,
    ));
    let alloc = args(
        "xfrm state allocspi src 127.0.0.2 dst 127.0.0.1 proto esp mode transport reqid 77 min 0x1000 max 0x1fff",
    );
    assert_same_message(
        &ours,
        &iproute2_message(&ns, &alloc, XFRM_MSG_ALLOCSPI),
        "allocspi",
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ip_output(a: &str) -> String {
    let out = Command::new("ip")
        .args(args(a))
        .output()
        .expect("ip (iproute2) missing");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn policies_install_and_delete_live_in_a_fresh_namespace() {
    in_fresh_netns(
        "xfrm::policies_install_and_delete_live_in_a_fresh_namespace",
        &[],
        || {
            runtime().block_on(async {
                let x = XfrmBackend::connect(XfrmConfig::default()).unwrap();
                let b = pcscf_bundle(
                    ip("127.0.0.1"),
                    ip("127.0.0.2"),
                    CipherSuite::all().next().unwrap(),
                );
                x.install_policies(SaSetId(1), &b).await.unwrap();
                let ours = x.our_policies().await.unwrap();
                assert_eq!(ours.len(), 8);
                // iproute2 sees the same eight policies.
                let listed = ip_output("xfrm policy list");
                assert_eq!(listed.matches("proto esp reqid").count(), 8, "{listed}");
                assert!(
                    listed.contains("sport 5062 dport 6100") && listed.contains("dir in"),
                    "{listed}"
                );
                assert!(
                    listed.contains("sport 5100 dport 5064") && listed.contains("dir out"),
                    "{listed}"
                );
                x.remove_policies(&b).await.unwrap();
                assert!(x.our_policies().await.unwrap().is_empty());
                assert_eq!(ip_output("xfrm policy list").matches("dir").count(), 0);
            });
        },
    );
}

#[test]
fn esp_probe_agrees_with_iproute2_and_install_reports_unavailable_without_leftovers() {
    in_fresh_netns(
        "xfrm::esp_probe_agrees_with_iproute2_and_install_reports_unavailable_without_leftovers",
        &[],
        || {
            runtime().block_on(async {
                let x = XfrmBackend::connect(XfrmConfig::default()).unwrap();
                let probe = x.probe_esp().await.unwrap();
                let ip_add = Command::new("ip")
                    .args(args("xfrm state add src 192.0.2.7 dst 192.0.2.8 proto esp spi 0x4242 mode transport auth-trunc hmac(md5) 0x00112233445566778899aabbccddeeff 96 enc ecb(cipher_null)"))
                    .arg("")
                    .output()
                    .expect("ip (iproute2) missing");
                let ip_ok = ip_add.status.success();
                assert_eq!(probe == EspSupport::Available, ip_ok, "probe {probe:?} vs iproute2: {}", String::from_utf8_lossy(&ip_add.stderr));
                let b = pcscf_bundle(ip("127.0.0.1"), ip("127.0.0.2"), CipherSuite::all().next().unwrap());
                let result = x.install(SaSetId(3), &b).await;
                match probe {
                    EspSupport::Unavailable => {
                        println!("kernel has no ESP (EPROTONOSUPPORT): XFRM SA installation unavailable here");
                        assert!(matches!(result, Err(Error::KernelEspUnavailable)), "{result:?}");
                        assert_eq!(result.unwrap_err().to_string(), "kernel has no ESP (EPROTONOSUPPORT): XFRM SAs are unavailable on this host");
                        assert!(x.our_states().await.unwrap().is_empty());
                        assert!(x.our_policies().await.unwrap().is_empty());
                    }
                    EspSupport::Available => {
                        result.unwrap();
                        assert_eq!(x.our_states().await.unwrap().len(), 4);
                        assert_eq!(x.our_policies().await.unwrap().len(), 8);
                        x.remove(&b).await.unwrap();
                        assert!(x.our_states().await.unwrap().is_empty());
                    }
                }
            });
        },
    );
}

#[test]
fn stale_states_and_policies_of_a_crashed_run_are_removed_and_others_kept() {
    in_fresh_netns(
        "xfrm::stale_states_and_policies_of_a_crashed_run_are_removed_and_others_kept",
        &[],
        || {
            runtime().block_on(async {
            let cfg = XfrmConfig::default();
            let x = XfrmBackend::connect(cfg).unwrap();
            // A crashed run left a policy and a larval (ALLOCSPI) state with our reqid...
            let b = pcscf_bundle(ip("127.0.0.1"), ip("127.0.0.2"), CipherSuite::all().next().unwrap());
            let sa = b.sa(SaRole::InboundToServer);
            let ours = cfg.reqid(SaSetId(42), sa.role);
            let spi = x.alloc_spi(sa.src.ip(), sa.dst.ip(), 0x1000..=0x1fff, ours).await.unwrap();
            assert!((0x1000..=0x1fff).contains(&spi.0));
            x.install_policies(SaSetId(42), &b).await.unwrap();
            // ...and someone else has IPsec here too.
            Command::new("ip")
                .args(args("xfrm policy add src 10.9.9.1/32 dst 10.9.9.2/32 dir out tmpl src 10.9.9.1 dst 10.9.9.2 proto esp reqid 7 mode transport"))
                .status()
                .unwrap();
            Command::new("ip")
                .args(args("xfrm state allocspi src 10.9.9.1 dst 10.9.9.2 proto esp mode transport reqid 7"))
                .status()
                .unwrap();
            assert_eq!(x.our_states().await.unwrap().len(), 1);
            assert_eq!(x.our_policies().await.unwrap().len(), 8);

            let cleaned = x.remove_stale().await.unwrap();
            assert_eq!((cleaned.states, cleaned.policies), (1, 8));
            assert!(x.our_states().await.unwrap().is_empty() && x.our_policies().await.unwrap().is_empty());
            let policies = ip_output("xfrm policy list");
            assert!(policies.contains("reqid 7"), "foreign policy must stay: {policies}");
            let states = ip_output("xfrm state list");
            assert!(states.contains("reqid 7"), "foreign state must stay: {states}");
            assert_eq!(x.remove_stale().await.unwrap(), Default::default());
        });
        },
    );
}
