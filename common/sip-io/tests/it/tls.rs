//! TLS: the generated certificate, and a round trip between two transports.

use std::os::unix::fs::PermissionsExt;

use bytes::BytesMut;
use imslab_sip::{StatusCode, StreamFramer};
use imslab_sip_io::tls::{self, CERT_FILE, KEY_FILE, TlsIdentity};
use imslab_sip_io::{Config, SipTransport, Target, TlsClient, TransportKind};
use imslab_test_support::tshark_check;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

#[test]
fn self_signed_pair_is_generated_once_and_reloaded_from_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = TlsIdentity::load_or_generate(dir.path(), &["pcscf.test", "127.0.0.1"]).unwrap();
    let key_mode = std::fs::metadata(dir.path().join(KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        key_mode & 0o777,
        0o600,
        "private key readable by its owner only"
    );
    let again = TlsIdentity::load_or_generate(dir.path(), &["other.name"]).unwrap();
    assert_eq!(first.chain(), again.chain(), "kept, not regenerated");
    assert!(!format!("{first:?}").contains("PRIVATE"));

    std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let err = TlsIdentity::load_or_generate(dir.path(), &["x"]).unwrap_err();
    assert!(
        matches!(err, imslab_sip_io::Error::TlsPairIncomplete { .. }),
        "{err}"
    );
    assert!(dir.path().join(CERT_FILE).exists(), "nothing overwritten");
}

#[test]
fn pem_files_without_a_certificate_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    let key = dir.path().join("k.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let err = TlsIdentity::from_pem_files(&cert, &key).unwrap_err();
    assert!(
        matches!(
            err,
            imslab_sip_io::Error::TlsPem {
                what: "certificate",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn tls_round_trip_with_the_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let identity = TlsIdentity::load_or_generate(dir.path(), &["127.0.0.1"]).unwrap();
    let pcap = dir.path().join("tls.pcap");
    let tap = tap(&pcap);
    let (server, mut server_rx) = SipTransport::new(Config {
        pcap: Some(tap.clone()),
        ..Config::default()
    });
    let server_addr = server
        .add_tls(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            identity.server_config().unwrap(),
        )
        .unwrap();
    // Certificates loaded from the files the server wrote, as a peer would.
    let roots = tls::load_certificates(&dir.path().join(CERT_FILE)).unwrap();
    let (client, mut client_rx) = SipTransport::new(Config {
        tls_client: Some(TlsClient {
            config: tls::client_config(&roots).unwrap(),
            server_name: None,
        }),
        ..Config::default()
    });

    let req = request("REGISTER", "TLS", "127.0.0.1:5061".parse().unwrap(), "");
    let sent = client
        .send(&Target::address(TransportKind::Tls, server_addr), req)
        .await
        .unwrap();
    assert_eq!(sent.transport, TransportKind::Tls);
    let got = next_received(&mut server_rx).await;
    assert_eq!(got.transport, TransportKind::Tls);
    assert_eq!(got.source, sent.local);
    let ok = parsed(&got).response(StatusCode::OK, Some("t")).unwrap();
    server.send(&got.reply_target(), ok).await.unwrap();
    let answer = next_received(&mut client_rx).await;
    assert_eq!(answer.flow, sent.flow);
    assert_eq!(parsed(&answer).status(), Some(StatusCode::OK));

    flush(&tap);
    let port = format!("tcp.port=={},sip", server_addr.port());
    let packets = tshark_check(&pcap, &["-d", &port], &["sip.Method", "sip.Status-Code"]);
    let sip: Vec<_> = packets
        .iter()
        .filter(|p| p.fields.iter().any(|f| !f.is_empty()))
        .map(|p| p.fields.clone())
        .collect();
    assert_eq!(sip, [["REGISTER", ""], ["", "200"]], "recorded decrypted");
}

#[tokio::test]
async fn tls_client_refuses_a_server_it_does_not_trust() {
    let dir = tempfile::tempdir().unwrap();
    let server_identity =
        TlsIdentity::load_or_generate(&dir.path().join("s"), &["127.0.0.1"]).unwrap();
    let other = TlsIdentity::load_or_generate(&dir.path().join("o"), &["127.0.0.1"]).unwrap();
    let (server, _rx) = SipTransport::new(Config::default());
    let addr = server
        .add_tls(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            server_identity.server_config().unwrap(),
        )
        .unwrap();
    let (client, _crx) = SipTransport::new(Config {
        tls_client: Some(TlsClient {
            config: tls::client_config(other.chain()).unwrap(),
            server_name: Some(ServerName::try_from("127.0.0.1").unwrap()),
        }),
        ..Config::default()
    });
    let err = client
        .send(
            &Target::address(TransportKind::Tls, addr),
            request("OPTIONS", "TLS", addr, ""),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, imslab_sip_io::Error::Connect { .. }), "{err}");
}

#[tokio::test]
async fn plain_tcp_bytes_on_a_tls_listener_do_not_disturb_tls_peers() {
    let dir = tempfile::tempdir().unwrap();
    let identity = TlsIdentity::load_or_generate(dir.path(), &["127.0.0.1"]).unwrap();
    let (server, mut rx) = SipTransport::new(Config::default());
    let addr = server
        .add_tls(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            identity.server_config().unwrap(),
        )
        .unwrap();
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(request_text("OPTIONS", "TCP", addr, "").as_bytes())
        .await
        .unwrap();
    assert!(closed_by_peer(&mut plain).await);

    let connector = tokio_rustls::TlsConnector::from(tls::client_config(identity.chain()).unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls_peer = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let local = tls_peer.get_ref().0.local_addr().unwrap();
    tls_peer
        .write_all(request_text("OPTIONS", "TLS", local, "").as_bytes())
        .await
        .unwrap();
    let got = next_received(&mut rx).await;
    assert_eq!(got.source, local);
    let ok = parsed(&got).response(StatusCode::OK, Some("t")).unwrap();
    server.send(&got.reply_target(), ok).await.unwrap();
    let mut framer = StreamFramer::default();
    let mut buf = BytesMut::new();
    let answer = tokio::time::timeout(WAIT, async {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(imslab_sip::Frame::Message(m)) = framer.decode(&mut buf).unwrap() {
                return m;
            }
            assert!(tls_peer.read_buf(&mut buf).await.unwrap() > 0);
        }
    })
    .await
    .unwrap();
    assert_eq!(answer.status(), Some(StatusCode::OK));
}
