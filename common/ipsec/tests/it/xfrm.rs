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

fn dir_name(sa: &imslab_ipsec::SecurityAssociation) -> &'static str {
    if sa.direction() == imslab_ipsec::Direction::Outbound {
        "out"
    } else {
        "in"
    }
}

#[test]
fn restart_keeps_stored_kernel_sas_reinstalls_missing_ones_and_removes_the_rest_like_iproute2() {
    use imslab_ipsec::xfrm::{PolicyInfo, StateInfo, StoredSet, reconcile_plan};
    let ns = Netns::create();
    let cfg = XfrmConfig::default();
    let suites: Vec<CipherSuite> = CipherSuite::all().collect();
    // Stored: one registered phone's set (id 3 in the restored table).
    let kept = pcscf_bundle(ip("127.0.0.1"), ip("127.0.0.2"), suites[1]);
    let stored = [StoredSet {
        id: SaSetId(3),
        bundle: kept.clone(),
        resume_oseq: 0x0100_0005,
    }];
    // Not stored: a set the crashed run had for a phone that de-registered meanwhile.
    let mut gone = pcscf_bundle(ip("127.0.0.1"), ip("127.0.0.3"), suites[0]);
    gone.local.spi_c.0 += 100;
    gone.local.spi_s.0 += 100;
    gone.remote.spi_c.0 += 100;
    gone.remote.spi_s.0 += 100;
    // The kernel dump: all of `gone`; `kept` without its P-CSCF port-c -> UE port-s SA and
    // without that SA's TCP policy.
    let mut states = Vec::new();
    let mut policies = Vec::new();
    let mut index = 0x100;
    for (id, b) in [(SaSetId(3), &kept), (SaSetId(8), &gone)] {
        for sa in b.sas() {
            let reqid = cfg.reqid(id, sa.role);
            if !(id == SaSetId(3) && sa.role == SaRole::OutboundFromClient) {
                states.push(StateInfo {
                    src: sa.src.ip(),
                    dst: sa.dst.ip(),
                    spi: sa.spi,
                    reqid,
                });
            }
            for t in TRANSPORTS {
                index += 8;
                if id == SaSetId(3) && sa.role == SaRole::OutboundFromClient && t == 6 {
                    continue;
                }
                policies.push(PolicyInfo {
                    index,
                    direction: if sa.direction() == imslab_ipsec::Direction::Outbound {
                        1
                    } else {
                        0
                    },
                    transport: t,
                    sport: sa.src.port(),
                    dport: sa.dst.port(),
                    reqid,
                });
            }
        }
    }
    let (messages, report) = reconcile_plan(&cfg, &stored, &states, &policies);
    assert_eq!(
        (
            report.states_kept,
            report.states_installed,
            report.states_removed
        ),
        (3, 1, 4)
    );
    assert_eq!(
        (
            report.policies_kept,
            report.policies_installed,
            report.policies_removed
        ),
        (7, 1, 8)
    );
    // What iproute2 sends for the same operations, in the same order.
    let mut expected: Vec<(Vec<String>, u16)> = Vec::new();
    for p in policies.iter().filter(|p| p.index > 0x100 + 8 * 8) {
        let dir = if p.direction == 1 { "out" } else { "in" };
        expected.push((
            args(&format!("xfrm policy delete index {} dir {dir}", p.index)),
            XFRM_MSG_DELPOLICY,
        ));
    }
    for sa in gone.sas() {
        expected.push((
            args(&format!(
                "xfrm state delete src {} dst {} proto esp spi {:#x}",
                sa.src.ip(),
                sa.dst.ip(),
                sa.spi.0
            )),
            XFRM_MSG_DELSA,
        ));
    }
    let missing = kept.sa(SaRole::OutboundFromClient);
    let reqid = cfg.reqid(SaSetId(3), missing.role);
    let mut add = sa_add_args(&missing, &kept, reqid);
    let at = add.iter().position(|a| a == "64").unwrap() + 1;
    add.splice(at..at, ["replay-oseq".to_owned(), "0x1000005".to_owned()]);
    expected.push((add, XFRM_MSG_NEWSA));
    expected.push((
        args(&format!(
            "{} priority {} tmpl src {} dst {} proto esp reqid {reqid} mode transport",
            policy_args("add", &missing, 6),
            cfg.priority,
            missing.src.ip(),
            missing.dst.ip()
        )),
        XFRM_MSG_NEWPOLICY,
    ));
    assert_eq!(messages.len(), expected.len());
    for (m, (a, ty)) in messages.iter().zip(&expected) {
        assert_same_message(
            &xfrm::to_bytes(m),
            &iproute2_message(&ns, a, *ty),
            &a.join(" "),
        );
    }
    assert_eq!(dir_name(&missing), "out");
    // A second start with everything in place changes nothing.
    let all_states: Vec<StateInfo> = kept
        .sas()
        .iter()
        .map(|sa| StateInfo {
            src: sa.src.ip(),
            dst: sa.dst.ip(),
            spi: sa.spi,
            reqid: cfg.reqid(SaSetId(3), sa.role),
        })
        .collect();
    let all_policies: Vec<PolicyInfo> = kept
        .sas()
        .iter()
        .flat_map(|sa| {
            TRANSPORTS.map(|t| PolicyInfo {
                index: 1,
                direction: if dir_name(sa) == "out" { 1 } else { 0 },
                transport: t,
                sport: sa.src.port(),
                dport: sa.dst.port(),
                reqid: cfg.reqid(SaSetId(3), sa.role),
            })
        })
        .collect();
    let (messages, report) = reconcile_plan(&cfg, &stored, &all_states, &all_policies);
    assert!(messages.is_empty());
    assert_eq!((report.states_kept, report.policies_kept), (4, 8));
}

#[test]
fn restart_with_a_renumbered_set_replaces_its_states_and_policies() {
    use imslab_ipsec::xfrm::{StateInfo, StoredSet, reconcile_plan};
    let cfg = XfrmConfig::default();
    let b = pcscf_bundle(
        ip("127.0.0.1"),
        ip("127.0.0.2"),
        CipherSuite::all().next().unwrap(),
    );
    // The kernel has the set under the crashed run's id 1; the restored table calls it 2.
    let states: Vec<StateInfo> = b
        .sas()
        .iter()
        .map(|sa| StateInfo {
            src: sa.src.ip(),
            dst: sa.dst.ip(),
            spi: sa.spi,
            reqid: cfg.reqid(SaSetId(1), sa.role),
        })
        .collect();
    let stored = [StoredSet {
        id: SaSetId(2),
        bundle: b.clone(),
        resume_oseq: 0,
    }];
    let (messages, report) = reconcile_plan(&cfg, &stored, &states, &[]);
    assert_eq!(
        (
            report.states_removed,
            report.states_installed,
            report.policies_installed
        ),
        (4, 4, 8)
    );
    assert_eq!(messages.len(), 16);
    // Deletions come before the additions that reuse the SPIs.
    let first_add = messages
        .iter()
        .position(|m| xfrm::to_bytes(m)[4] == XFRM_MSG_NEWSA as u8)
        .unwrap();
    assert_eq!(first_add, 4);
}

#[test]
fn reconcile_live_removes_unstored_policies_and_reports_the_missing_kernel_esp() {
    use imslab_ipsec::xfrm::StoredSet;
    in_fresh_netns(
        "xfrm::reconcile_live_removes_unstored_policies_and_reports_the_missing_kernel_esp",
        &[],
        || {
            runtime().block_on(async {
                let cfg = XfrmConfig::default();
                let x = XfrmBackend::connect(cfg).unwrap();
                let suite = CipherSuite::all().next().unwrap();
                let stale = pcscf_bundle(ip("127.0.0.1"), ip("127.0.0.3"), suite);
                x.install_policies(SaSetId(7), &stale).await.unwrap();
                assert_eq!(x.our_policies().await.unwrap().len(), 8);
                // Nothing stored: the crashed run's policies go, nothing else is asked.
                let r = x.reconcile(&[]).await.unwrap();
                assert_eq!(r.policies_removed, 8);
                assert!(x.our_policies().await.unwrap().is_empty());
                // A stored set needs its states installed: this kernel has no ESP.
                let kept = pcscf_bundle(ip("127.0.0.1"), ip("127.0.0.2"), suite);
                let stored = [StoredSet {
                    id: SaSetId(1),
                    bundle: kept,
                    resume_oseq: 1 << 24,
                }];
                match x.probe_esp().await.unwrap() {
                    EspSupport::Unavailable => {
                        assert!(matches!(
                            x.reconcile(&stored).await,
                            Err(Error::KernelEspUnavailable)
                        ));
                    }
                    EspSupport::Available => {
                        let r = x.reconcile(&stored).await.unwrap();
                        assert_eq!((r.states_installed, r.policies_installed), (4, 8));
                        let again = x.reconcile(&stored).await.unwrap();
                        assert_eq!((again.states_kept, again.policies_kept), (4, 8));
                    }
                }
            });
        },
    );
}
