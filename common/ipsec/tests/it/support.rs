//! Shared fixtures: keys, bundles, and network namespaces the tests create and delete.

use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use imslab_ipsec::{CipherSuite, Endpoint, EspKeys, SaBundle, Spi};
use imslab_types::{Ck, Ik};

/// TS 35.208 test set 1 IK/CK (the aka-01 example of ims_aka_ipsec.json).
pub(crate) fn aka_keys() -> (Ik, Ck) {
    (
        Ik::from_hex("f769bcd751044604127672711c6d3441").unwrap(),
        Ck::from_hex("b40ba9a3c58b2a05bbf0d987b21bf8cb").unwrap(),
    )
}

/// The P-CSCF's bundle for a UE, with the vectors file's SPIs and the default ports.
pub(crate) fn pcscf_bundle(pcscf: IpAddr, ue: IpAddr, suite: CipherSuite) -> SaBundle {
    let (ik, ck) = aka_keys();
    let local = Endpoint {
        ip: pcscf,
        spi_c: Spi(3333333),
        spi_s: Spi(4444444),
        port_c: 5100,
        port_s: 6100,
    };
    let remote = Endpoint {
        ip: ue,
        spi_c: Spi(1111111),
        spi_s: Spi(2222222),
        port_c: 5062,
        port_s: 5064,
    };
    SaBundle::new(local, remote, EspKeys::derive(suite, &ik, &ck))
}

/// Set in the child process that runs a test body inside a namespace.
const CHILD_ENV: &str = "IMSLAB_IPSEC_NETNS_CHILD";

/// A network namespace owned by one test: created on construction, deleted on drop.
pub(crate) struct Netns {
    pub(crate) name: String,
}

fn run(cmd: &mut Command) -> std::process::Output {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{shown} failed to start ({e}): these tests need iproute2 (package iproute2)")
    });
    assert!(
        out.status.success(),
        "{shown} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Netns {
    /// A fresh namespace with `lo` up.
    pub(crate) fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "imslab-ipsec-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n <ns> <args>`.
    pub(crate) fn ip(&self, args: &[&str]) -> std::process::Output {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `body` inside a fresh namespace: the parent creates it, applies `setup` (`ip -n`
/// argument lists), re-runs this test binary with only `test` selected inside it, checks that
/// the child passed, and deletes the namespace. In the child, `body` runs directly.
pub(crate) fn in_fresh_netns(test: &str, setup: &[&[&str]], body: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        body();
        return;
    }
    let ns = Netns::create();
    for args in setup {
        ns.ip(args);
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("ip netns exec failed to start: the test needs iproute2");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // What the child printed (shown with --nocapture, or on failure).
    print!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child test {test} in namespace {} failed:\n{stdout}\n{}",
        ns.name,
        String::from_utf8_lossy(&out.stderr)
    );
}
