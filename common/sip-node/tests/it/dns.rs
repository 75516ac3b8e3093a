//! RFC 3263 over real DNS: dnsmasq on loopback serves NAPTR, SRV and A records; the node's
//! resolver follows them, and a request to a host name is forwarded to the server they name.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imslab_sip::header::Transport;
use imslab_sip::locate::Located;
use imslab_sip::{Message, StatusCode};
use imslab_sip_node::{
    Decision, DnsConfig, DnsResolver, Handler, Incoming, Listen, NodeConfig, NodeHandle, SipNode,
    Target,
};
use imslab_test_support::peer;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// dnsmasq on 127.0.0.1 at a free port with the given records; killed on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn dnsmasq(records: &[String]) -> Dnsmasq {
    let port = free_udp_port();
    let child = Command::new(peer("dnsmasq", "dnsmasq"))
        .args(["-k", "-C", "/dev/null", "--no-resolv", "--no-hosts"])
        .args(["--listen-address=127.0.0.1", "--bind-interfaces"])
        .args(["--pid-file=", "--user=root", "--log-facility=-"])
        .arg(format!("--port={port}"))
        .args(records)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Ready when its port is taken.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::UdpSocket::bind(addr).is_ok() {
        assert!(Instant::now() < deadline, "dnsmasq did not bind {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Dnsmasq { child, addr }
}

/// NAPTR → SRV (two servers of different priority) → A, for `ims.test`.
fn zone(first: u16, second: u16) -> Vec<String> {
    vec![
        "--naptr-record=ims.test,10,10,S,SIP+D2U,,_sip._udp.ims.test".into(),
        "--naptr-record=ims.test,20,10,S,SIP+D2T,,_sip._tcp.ims.test".into(),
        format!("--srv-host=_sip._udp.ims.test,pcscf1.ims.test,{first},0,10"),
        format!("--srv-host=_sip._udp.ims.test,pcscf2.ims.test,{second},10,10"),
        format!("--srv-host=_sip._tcp.ims.test,pcscf1.ims.test,{first},0,10"),
        "--host-record=pcscf1.ims.test,127.0.0.1".into(),
        "--host-record=pcscf2.ims.test,127.0.0.2".into(),
    ]
}

#[tokio::test]
async fn naptr_srv_and_a_records_from_dnsmasq_give_targets_in_failover_order() {
    let dns = dnsmasq(&zone(5071, 5072));
    let resolver = DnsResolver::new(&DnsConfig::new([dns.addr]));
    let got = resolver.locate_text("<sip:scscf@ims.test>", 1).await;
    let at = |t: Transport, a: &str| Located {
        transport: t,
        addr: a.parse().expect("addr"),
    };
    assert_eq!(
        got,
        [
            at(Transport::Udp, "127.0.0.1:5071"),
            at(Transport::Udp, "127.0.0.2:5072"),
            at(Transport::Tcp, "127.0.0.1:5071"),
        ]
    );
    let none = resolver.locate_text("sip:nobody@unknown.test", 1).await;
    assert!(none.is_empty(), "{none:?}");
}

/// Answers every request with 200.
struct Answer;

impl Handler for Answer {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        Decision::Respond(
            incoming
                .request
                .response(StatusCode::OK, Some("uas"))
                .expect("response"),
        )
    }
}

/// Forwards to `sip:scscf@ims.test`, with no address: the node must find it in DNS.
struct ToName;

impl Handler for ToName {
    async fn on_request(&self, incoming: Incoming, _node: NodeHandle) -> Decision {
        Decision::forward(incoming.request, Target::uri("sip:scscf@ims.test"))
    }
}

async fn options_exchange(proxy_addr: SocketAddr, branch: &str) -> Message {
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    let me = client.local_addr().expect("addr");
    let options = format!(
        "OPTIONS sip:someone@ims.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@ims.test>;tag=a\r\nTo: <sip:someone@ims.test>\r\n\
         Call-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    client
        .send_to(options.as_bytes(), proxy_addr)
        .await
        .expect("send");
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), client.recv_from(&mut buf))
            .await
            .expect("a response within 10 s")
            .expect("recv");
        let m = Message::parse(buf[..n].to_vec()).expect("parses");
        if m.status().is_some_and(StatusCode::is_final) {
            return m;
        }
    }
}

#[tokio::test]
async fn when_the_first_server_dns_names_is_silent_the_request_fails_over_to_the_next() {
    let uas = SipNode::bind(NodeConfig::new([Listen::Udp(
        "127.0.0.1:0".parse().expect("addr"),
    )]))
    .await
    .expect("bind UAS");
    let uas_addr = uas.local_addrs()[0].1;
    let stop = CancellationToken::new();
    tokio::spawn(uas.run(Answer, stop.clone()));
    // SRV priority 0 names a socket that never answers; priority 10 names the UAS.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("silent socket");
    let silent_port = silent.local_addr().expect("addr").port();
    let dns = dnsmasq(&[
        "--naptr-record=ims.test,10,10,S,SIP+D2U,,_sip._udp.ims.test".into(),
        format!("--srv-host=_sip._udp.ims.test,dead.ims.test,{silent_port},0,10"),
        format!(
            "--srv-host=_sip._udp.ims.test,live.ims.test,{},10,10",
            uas_addr.port()
        ),
        "--host-record=dead.ims.test,127.0.0.1".into(),
        "--host-record=live.ims.test,127.0.0.1".into(),
    ]);

    let mut cfg = NodeConfig::new([Listen::Udp("127.0.0.1:0".parse().expect("addr"))]);
    cfg.dns = Some(DnsConfig::new([dns.addr]));
    cfg.timers = imslab_sip::transaction::TimerConfig {
        t1: Duration::from_millis(10),
        t2: Duration::from_millis(40),
        t4: Duration::from_millis(50),
        timer_d: Duration::from_millis(100),
    };
    let proxy = SipNode::bind(cfg).await.expect("bind proxy");
    let proxy_addr = proxy.local_addrs()[0].1;
    tokio::spawn(proxy.run(ToName, stop.clone()));

    let resp = options_exchange(proxy_addr, "dns2").await;
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(resp.to_header().expect("To").tag(), Some("uas"));
    let mut buf = [0u8; 2048];
    silent.set_nonblocking(true).expect("nonblocking");
    assert!(
        silent.recv_from(&mut buf).is_ok(),
        "the first server was tried first"
    );
    stop.cancel();
}

#[tokio::test]
async fn request_toward_a_host_name_is_forwarded_where_dns_points() {
    let uas = SipNode::bind(NodeConfig::new([Listen::Udp(
        "127.0.0.1:0".parse().expect("addr"),
    )]))
    .await
    .expect("bind UAS");
    let uas_addr = uas.local_addrs()[0].1;
    let stop = CancellationToken::new();
    tokio::spawn(uas.run(Answer, stop.clone()));
    let dns = dnsmasq(&zone(uas_addr.port(), 9));

    let mut cfg = NodeConfig::new([Listen::Udp("127.0.0.1:0".parse().expect("addr"))]);
    cfg.dns = Some(DnsConfig::new([dns.addr]));
    let proxy = SipNode::bind(cfg).await.expect("bind proxy");
    let proxy_addr = proxy.local_addrs()[0].1;
    let handle = proxy.handle();
    tokio::spawn(proxy.run(ToName, stop.clone()));
    assert_eq!(
        handle.locate("sip:ims.test").await.map(|p| p.addr),
        Some(uas_addr)
    );

    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    let me = client.local_addr().expect("addr");
    let options = format!(
        "OPTIONS sip:someone@ims.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bKdns1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@ims.test>;tag=a\r\nTo: <sip:someone@ims.test>\r\n\
         Call-ID: dns1@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    client
        .send_to(options.as_bytes(), proxy_addr)
        .await
        .expect("send");
    let mut buf = vec![0u8; 65536];
    let resp = loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .expect("a response within 5 s")
            .expect("recv");
        let m = Message::parse(buf[..n].to_vec()).expect("parses");
        if m.status().is_some_and(StatusCode::is_final) {
            break m;
        }
    };
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(resp.to_header().expect("To").tag(), Some("uas"));
    stop.cancel();
}
