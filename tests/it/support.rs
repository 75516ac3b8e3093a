//! Running the real binary in a scratch directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_imslab");

/// A scratch directory with the binary's environment cleared of imslab overrides.
pub(crate) struct Lab {
    pub(crate) dir: tempfile::TempDir,
}

impl Lab {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.path())
            .env_remove("IMSLAB_CONFIG")
            .env_remove("IMSLAB_DATA_DIR")
            .env_remove("IMSLAB_LOG");
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("imslab runs")
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }

    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("imslab starts")
    }
}

/// Addresses of a lab whose every port was free a moment ago.
pub(crate) struct Ports {
    pub(crate) web: SocketAddr,
    pub(crate) gtpc: SocketAddr,
    pub(crate) hss: SocketAddr,
    pub(crate) icscf: SocketAddr,
    pub(crate) scscf: SocketAddr,
    pub(crate) pcscf: SocketAddr,
}

impl Ports {
    pub(crate) fn new() -> Self {
        let at = |p| SocketAddr::from(([127, 0, 0, 1], p));
        Self {
            web: at(free_port()),
            gtpc: at(free_udp_port()),
            hss: at(free_port()),
            icscf: at(free_sip_port()),
            scscf: at(free_sip_port()),
            pcscf: at(free_sip_port()),
        }
    }

    /// A configuration putting every function on these ports, and pointing each at the others.
    pub(crate) fn yaml(&self) -> String {
        let domain = "ims.mnc001.mcc001.3gppnetwork.org";
        let scscf_uri = format!("sip:scscf.{domain}:{}", self.scscf.port());
        format!(
            "web:\n  listen: {web}\n\
             pgw:\n  gtpc_listen: {gtpc}\n  gtpu_listen: 127.0.0.1:{gtpu}\n\
             hss:\n  listen: {hss}\n\
             icscf:\n  listen: {icscf}\n  hss: {hss}\n  scscfs:\n    - uri: {scscf_uri}\n      address: {scscf}\n\
             scscf:\n  listen: {scscf}\n  uri: {scscf_uri}\n  hss: {hss}\n\
             pcscf:\n  listen: {pcscf}\n  port_c: {port_c}\n  port_s: {port_s}\n  icscf: {icscf}\n\
             \x20 hosts:\n    - name: scscf.{domain}\n      addr: {scscf}\n\
             \x20   - name: icscf.{domain}\n      addr: {icscf}\n",
            web = self.web,
            gtpc = self.gtpc,
            gtpu = free_udp_port(),
            hss = self.hss,
            icscf = self.icscf,
            scscf = self.scscf,
            pcscf = self.pcscf,
            port_c = free_sip_port(),
            port_s = free_sip_port(),
        )
    }
}

/// A loopback port free for both UDP and TCP a moment ago (SIP listens on both).
pub(crate) fn free_sip_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A loopback UDP port that was free a moment ago.
pub(crate) fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts TCP connections on `addr`; returns how long it took.
pub(crate) fn wait_listening(addr: SocketAddr, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Sends SIGTERM to a child.
pub(crate) fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -TERM failed");
}

/// Waits for a child to exit, killing it after `limit`.
pub(crate) fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().ok();
    child.wait().ok();
    None
}

/// Sends SIGTERM and asserts the lab exits with status 0 within five seconds; on failure the
/// message carries the lab's stderr. Returns that stderr.
pub(crate) fn stop_cleanly(child: &mut Child) -> String {
    terminate(child);
    let status = wait_exit(child, Duration::from_secs(5));
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).ok();
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "imslab did not stop cleanly ({status:?}); its stderr:\n{err}"
    );
    err
}

/// One HTTP/1.1 request; returns the status code and the body.
pub(crate) fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
