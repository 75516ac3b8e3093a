//! Real peer: freeDiameterd (Debian package `freediameter`) on loopback, as a peer of our
//! server, as the server of our client, and as a relay between them. Every message our stack
//! sends or receives is captured through the node's tap and decoded by tshark as Diameter Cx
//! with no malformed packets and no expert errors.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use imslab_diameter::cx::{CxResult, Uaa};
use imslab_diameter::{ExperimentalResultCode, dict};
use imslab_diameter_io::{DiameterNode, NodeOptions, PcapTap, PeerOptions, RefuseRequests};
use imslab_test_support::{Packet, peer, tshark_check};
use tokio::net::TcpListener;

use crate::support::{REALM, caps, hss_handler, id, origin, realm, uar};

const FD_REALM: &str = "relay.example";

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A freeDiameterd process with its own directory, killed on drop.
struct FreeDiameter {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl FreeDiameter {
    /// Starts freeDiameterd as `identity` listening on a free loopback port with watchdog
    /// interval `tw` seconds (at least 6), connecting to `connect` peers (host, port). Accepts
    /// plain TCP peers under `*.ims.example`.
    fn start(identity: &str, tw: u32, connect: &[(&str, u16)]) -> Self {
        let bin = peer("freeDiameterd", "freediameter");
        let ext = Path::new("/usr/lib/freeDiameter/acl_wl.fdx");
        assert!(
            ext.is_file(),
            "freeDiameter extension acl_wl.fdx missing: apt-get install freediameter-extensions"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        // TLS_Cred is mandatory even without TLS peers; the certificate CN must be the Identity.
        let mut params = rcgen::CertificateParams::new(vec![identity.to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, identity);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("certificate");
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        let acl = dir.path().join("acl_wl.conf");
        std::fs::write(&acl, "ALLOW_IPSEC *.ims.example\n").expect("write acl");
        let mut conf = format!(
            "Identity = \"{identity}\";\nRealm = \"{FD_REALM}\";\nPort = {port};\nSecPort = 0;\n\
             ListenOn = \"127.0.0.1\";\nNo_SCTP;\nNo_IPv6;\nTwTimer = {tw};\nTcTimer = 1;\n\
             TLS_Cred = \"{}\", \"{}\";\nTLS_CA = \"{}\";\nLoadExtension = \"{}\" : \"{}\";\n",
            cert_path.display(),
            key_path.display(),
            cert_path.display(),
            ext.display(),
            acl.display()
        );
        for (host, p) in connect {
            conf.push_str(&format!(
                "ConnectPeer = \"{host}\" {{ No_TLS; ConnectTo = \"127.0.0.1\"; Port = {p}; }};\n"
            ));
        }
        let conf_path = dir.path().join("fd.conf");
        std::fs::write(&conf_path, conf).expect("write conf");
        let log = std::fs::File::create(dir.path().join("fd.log")).expect("log file");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("freeDiameterd starts");
        Self { child, dir, port }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fd.log")).unwrap_or_default()
    }

    /// Waits until freeDiameterd listens.
    async fn ready(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr()).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "freeDiameterd did not start listening; its log:\n{}",
            self.log()
        );
    }
}

impl Drop for FreeDiameter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capture(dir: &Path) -> (PathBuf, Arc<PcapTap>) {
    let path = dir.join("diameter.pcap");
    let tap = Arc::new(PcapTap::create(&path).expect("pcap"));
    (path, tap)
}

const FIELDS: [&str; 5] = [
    "tcp.srcport",
    "diameter.cmd.code",
    "diameter.flags.request",
    "diameter.applicationId",
    "diameter.Result-Code",
];

/// Decodes the capture (Diameter on the given ports) and returns (srcport, code, request, app,
/// result) per Diameter message.
fn decode(pcap: &Path, ports: &[u16]) -> Vec<(u16, u32, bool, String, String)> {
    let mut args = Vec::new();
    for p in ports {
        args.push("-d".to_owned());
        args.push(format!("tcp.port=={p},diameter"));
    }
    args.push("-Y".into());
    args.push("diameter".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let packets: Vec<Packet> = tshark_check(pcap, &refs, &FIELDS);
    let mut out = Vec::new();
    for p in packets {
        // One TCP segment carries one message here (the tap records whole messages).
        let f = |i: usize| p.fields.get(i).cloned().unwrap_or_default();
        let request = matches!(f(2).as_str(), "1" | "True" | "true");
        out.push((
            f(0).parse().unwrap_or(0),
            f(1).parse().unwrap_or(0),
            request,
            f(3),
            f(4),
        ));
    }
    out
}

fn count(
    msgs: &[(u16, u32, bool, String, String)],
    from_port: Option<u16>,
    code: u32,
    request: bool,
) -> usize {
    msgs.iter()
        .filter(|m| from_port.is_none_or(|p| m.0 == p) && m.1 == code && m.2 == request)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freediameter_exchanges_cer_cea_and_watchdogs_with_our_server() {
    let work = tempfile::tempdir().expect("tempdir");
    let (pcap, tap) = capture(work.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let our_port = listener.local_addr().expect("addr").port();
    let mut opts = NodeOptions::new(caps("hss.ims.example", REALM));
    opts.peers
        .push(PeerOptions::accept(id("fd.relay.example"), realm(FD_REALM)));
    // Only the side with the shorter Tw sends DWRs (any message resets the other's timer):
    // freeDiameter's Tw is 6 s, ours 30 s, so freeDiameter probes and we answer.
    opts.tap = Some(tap.clone());
    let hss = DiameterNode::start(
        opts,
        hss_handler(origin("hss.ims.example", REALM)),
        Some(listener),
    )
    .expect("node");

    let fd = FreeDiameter::start("fd.relay.example", 6, &[("hss.ims.example", our_port)]);
    if let Err(e) = hss
        .wait_peer_up("fd.relay.example", Duration::from_secs(15))
        .await
    {
        panic!(
            "freeDiameterd never completed CER/CEA with us ({e}); its log:\n{}",
            fd.log()
        );
    }
    // freeDiameter sends a DWR every 6 s.
    tokio::time::sleep(Duration::from_secs(13)).await;
    hss.shutdown().await;
    tap.flush().expect("flush");

    let msgs = decode(&pcap, &[our_port]);
    assert_eq!(
        count(&msgs, None, 257, true),
        1,
        "CER from freeDiameter: {msgs:?}"
    );
    assert_eq!(count(&msgs, Some(our_port), 257, false), 1, "our CEA");
    assert!(
        msgs.iter().any(|m| m.1 == 257 && !m.2 && m.4 == "2001"),
        "CEA success"
    );
    let fd_dwr = msgs
        .iter()
        .filter(|m| m.0 != our_port && m.1 == 280 && m.2)
        .count();
    assert!(fd_dwr >= 1, "freeDiameter's DWRs: {msgs:?}");
    assert_eq!(
        count(&msgs, Some(our_port), 280, false),
        fd_dwr,
        "our DWA to each DWR: {msgs:?}"
    );
    assert!(
        msgs.iter()
            .filter(|m| m.0 == our_port && m.1 == 280 && !m.2)
            .all(|m| m.4 == "2001")
    );
    assert_eq!(
        count(&msgs, Some(our_port), 282, true),
        1,
        "our DPR at shutdown"
    );
    assert!(
        msgs.iter().any(|m| m.0 != our_port && m.1 == 282 && !m.2),
        "freeDiameter's DPA: {msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_exchanges_cer_cea_and_watchdogs_with_freediameter() {
    let fd = FreeDiameter::start("fd.relay.example", 30, &[]);
    fd.ready().await;
    let work = tempfile::tempdir().expect("tempdir");
    let (pcap, tap) = capture(work.path());
    let mut opts = NodeOptions::new(caps("scscf.ims.example", REALM));
    opts.peers.push(PeerOptions::connect_tcp(
        id("fd.relay.example"),
        realm(FD_REALM),
        fd.addr(),
    ));
    // Our Tw is 6 s (plus or minus 2), freeDiameter's 30 s: we probe and it answers.
    opts.timers.tw = Duration::from_secs(6);
    opts.tap = Some(tap.clone());
    let scscf = DiameterNode::start(
        opts,
        RefuseRequests(origin("scscf.ims.example", REALM)),
        None,
    )
    .expect("node");
    if let Err(e) = scscf
        .wait_peer_up("fd.relay.example", Duration::from_secs(15))
        .await
    {
        panic!(
            "no CER/CEA with freeDiameterd ({e}); its log:\n{}",
            fd.log()
        );
    }
    tokio::time::sleep(Duration::from_secs(17)).await;
    let scscf_stayed_up = scscf.peers().iter().all(|p| p.available);
    scscf.shutdown().await;
    tap.flush().expect("flush");

    let msgs = decode(&pcap, &[fd.port]);
    let fdp = fd.port;
    assert_eq!(count(&msgs, None, 257, true), 1, "our CER: {msgs:?}");
    assert!(
        msgs.iter()
            .any(|m| m.0 == fdp && m.1 == 257 && !m.2 && m.4 == "2001"),
        "freeDiameter's CEA success: {msgs:?}"
    );
    let our_dwr = msgs
        .iter()
        .filter(|m| m.0 != fdp && m.1 == 280 && m.2)
        .count();
    assert!(our_dwr >= 2, "our DWRs: {msgs:?}");
    let fd_dwa = msgs
        .iter()
        .filter(|m| m.0 == fdp && m.1 == 280 && !m.2 && m.4 == "2001")
        .count();
    assert_eq!(fd_dwa, our_dwr, "freeDiameter's DWA to each: {msgs:?}");
    assert!(scscf_stayed_up, "the watchdog kept the peer usable");
    assert!(
        msgs.iter().any(|m| m.0 != fdp && m.1 == 282 && m.2),
        "our DPR: {msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.0 == fdp && m.1 == 282 && !m.2),
        "freeDiameter's DPA: {msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freediameter_relays_a_uar_from_our_client_to_our_server_and_the_uaa_back() {
    let work = tempfile::tempdir().expect("tempdir");
    let (pcap, tap) = capture(work.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hss_port = listener.local_addr().expect("addr").port();
    let mut hopts = NodeOptions::new(caps("hss.ims.example", REALM));
    hopts
        .peers
        .push(PeerOptions::accept(id("fd.relay.example"), realm(FD_REALM)));
    hopts.tap = Some(tap.clone());
    let hss = DiameterNode::start(
        hopts,
        hss_handler(origin("hss.ims.example", REALM)),
        Some(listener),
    )
    .expect("hss");

    let fd = FreeDiameter::start("fd.relay.example", 30, &[("hss.ims.example", hss_port)]);
    fd.ready().await;
    if let Err(e) = hss
        .wait_peer_up("fd.relay.example", Duration::from_secs(15))
        .await
    {
        panic!(
            "freeDiameterd never reached our HSS ({e}); its log:\n{}",
            fd.log()
        );
    }

    let mut copts = NodeOptions::new(caps("icscf.ims.example", REALM));
    copts.peers.push(PeerOptions::connect_tcp(
        id("fd.relay.example"),
        realm(FD_REALM),
        fd.addr(),
    ));
    copts.default_route = vec![id("fd.relay.example")];
    copts.tap = Some(tap.clone());
    let icscf = DiameterNode::start(
        copts,
        RefuseRequests(origin("icscf.ims.example", REALM)),
        None,
    )
    .expect("icscf");
    if let Err(e) = icscf
        .wait_peer_up("fd.relay.example", Duration::from_secs(15))
        .await
    {
        panic!(
            "our client never reached freeDiameterd ({e}); its log:\n{}",
            fd.log()
        );
    }

    let ans = match icscf
        .request(uar("icscf.ims.example", REALM, REALM, "alice").to_message())
        .await
    {
        Ok(a) => a,
        Err(e) => panic!(
            "UAR through freeDiameterd failed ({e}); its log:\n{}",
            fd.log()
        ),
    };
    let uaa = Uaa::decode(&ans).unwrap_or_else(|e| panic!("not a valid UAA ({e}): {ans:?}"));
    assert_eq!(
        uaa.result,
        CxResult::experimental(ExperimentalResultCode::DIAMETER_FIRST_REGISTRATION)
    );
    assert_eq!(uaa.origin_host.as_str(), "hss.ims.example");
    assert_eq!(
        uaa.server_name.as_deref(),
        Some("sip:scscf.ims.example:6060")
    );
    assert!(ans.find(&dict::SESSION_ID).is_some());

    icscf.shutdown().await;
    hss.shutdown().await;
    tap.flush().expect("flush");
    let msgs = decode(&pcap, &[hss_port, fd.port]);
    let uars = msgs
        .iter()
        .filter(|m| m.1 == 300 && m.2)
        .collect::<Vec<_>>();
    let uaas = msgs
        .iter()
        .filter(|m| m.1 == 300 && !m.2)
        .collect::<Vec<_>>();
    assert_eq!(
        uars.len(),
        2,
        "UAR sent to freeDiameter and relayed to our HSS: {msgs:?}"
    );
    assert_eq!(uaas.len(), 2, "UAA from our HSS and relayed back: {msgs:?}");
    assert!(
        uars.iter().all(|m| m.3 == "16777216"),
        "Cx application id: {uars:?}"
    );
}
