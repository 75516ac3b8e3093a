//! WebSocket and secure WebSocket (RFC 7118) with a tokio-tungstenite client.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use imslab_sip::header::Transport;
use imslab_sip::{Message, StatusCode};
use imslab_sip_io::tls::{self, TlsIdentity};
use imslab_sip_io::{Config, SipTransport, Target, TlsClient, TransportKind};
use imslab_test_support::tshark_check;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

use crate::support::*;

async fn ws_client<S>(
    io: S,
    url: &str,
    offer_sip: bool,
) -> Result<WebSocketStream<S>, tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = url.into_client_request().unwrap();
    if offer_sip {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    }
    let (ws, resp) = tokio_tungstenite::client_async(req, io).await?;
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "sip",
        "RFC 7118 §4.1: the 101 names sip"
    );
    Ok(ws)
}

async fn next_frame<S>(ws: &mut WebSocketStream<S>) -> WsMessage
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a frame within 5 s")
        .expect("open")
        .expect("valid frame")
}

fn sip_of(frame: &WsMessage) -> Message {
    let bytes = match frame {
        WsMessage::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
        WsMessage::Binary(b) => b.clone(),
        other => panic!("expected a data frame, got {other:?}"),
    };
    Message::parse(bytes).unwrap()
}

/// Sends a request in a text or binary frame and checks the reply comes in the same type.
async fn round_trip<S>(
    server: &SipTransport,
    rx: &mut tokio::sync::mpsc::Receiver<imslab_sip_io::Event>,
    ws: &mut WebSocketStream<S>,
    kind: TransportKind,
    binary: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let text = request_text(
        "REGISTER",
        kind.via_token(),
        "127.0.0.1:1".parse().unwrap(),
        "",
    );
    let text = text.replace("127.0.0.1:1", "df7jal23ls0d.invalid");
    let frame = if binary {
        WsMessage::Binary(Bytes::from(text.clone()))
    } else {
        WsMessage::Text(text.clone().into())
    };
    ws.send(frame).await.unwrap();
    let got = next_received(rx).await;
    assert_eq!(got.transport, kind);
    let m = parsed(&got);
    assert_eq!(m.to_bytes().as_ref(), text.as_bytes());
    assert_eq!(
        Some(kind),
        TransportKind::from_sip(&m.top_via().unwrap().transport)
    );
    let ok = m.response(StatusCode::OK, Some("w")).unwrap();
    server.send(&got.reply_target(), ok).await.unwrap();
    let reply = next_frame(ws).await;
    assert_eq!(
        matches!(reply, WsMessage::Binary(_)),
        binary,
        "reply in the frame type of the request"
    );
    assert_eq!(sip_of(&reply).status(), Some(StatusCode::OK));
}

#[tokio::test]
async fn ws_round_trips_with_text_and_binary_frames_and_crlf_keepalive() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("ws.pcap");
    let tap = tap(&pcap);
    let (server, mut rx) = SipTransport::new(Config {
        pcap: Some(tap.clone()),
        ..Config::default()
    });
    let addr = server
        .add_ws(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut ws = ws_client(tcp, &format!("ws://{addr}/"), true)
        .await
        .unwrap();

    round_trip(&server, &mut rx, &mut ws, TransportKind::Ws, false).await;
    round_trip(&server, &mut rx, &mut ws, TransportKind::Ws, true).await;

    // RFC 5626 CRLF keep-alive inside WebSocket messages: the pong has the ping's type.
    ws.send(WsMessage::Text("\r\n\r\n".into())).await.unwrap();
    match next_frame(&mut ws).await {
        WsMessage::Text(t) => assert_eq!(t.as_str(), "\r\n"),
        other => panic!("expected a CRLF pong, got {other:?}"),
    }
    ws.send(WsMessage::Binary(Bytes::from_static(b"\r\n\r\n")))
        .await
        .unwrap();
    match next_frame(&mut ws).await {
        WsMessage::Binary(b) => assert_eq!(b.as_ref(), b"\r\n"),
        other => panic!("expected a CRLF pong, got {other:?}"),
    }

    flush(&tap);
    let port = format!("tcp.port=={},sip", addr.port());
    let packets = tshark_check(&pcap, &["-d", &port], &["sip.Method", "sip.Status-Code"]);
    let sip: Vec<_> = packets
        .iter()
        .filter(|p| p.fields.iter().any(|f| !f.is_empty()))
        .map(|p| p.fields.clone())
        .collect();
    assert_eq!(
        sip,
        [["REGISTER", ""], ["", "200"], ["REGISTER", ""], ["", "200"]]
    );
}

#[tokio::test]
async fn ws_upgrade_without_the_sip_subprotocol_is_refused() {
    let (_server, _rx) = SipTransport::new(Config::default());
    let addr = _server
        .add_ws(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    match ws_client(tcp, &format!("ws://{addr}/"), false).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 400),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("upgrade without sip accepted"),
    }
}

#[tokio::test]
async fn wss_round_trip_with_a_tungstenite_client_and_between_two_transports() {
    let dir = tempfile::tempdir().unwrap();
    let identity = TlsIdentity::load_or_generate(dir.path(), &["127.0.0.1"]).unwrap();
    let (server, mut rx) = SipTransport::new(Config::default());
    let addr = server
        .add_wss(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            identity.server_config().unwrap(),
        )
        .unwrap();

    let connector = tokio_rustls::TlsConnector::from(tls::client_config(identity.chain()).unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let mut ws = ws_client(stream, &format!("wss://{addr}/"), true)
        .await
        .unwrap();
    round_trip(&server, &mut rx, &mut ws, TransportKind::Wss, false).await;
    round_trip(&server, &mut rx, &mut ws, TransportKind::Wss, true).await;

    // The crate's own client side: a soft UE connecting over WSS.
    let (ue, mut ue_rx) = SipTransport::new(Config {
        tls_client: Some(TlsClient {
            config: tls::client_config(identity.chain()).unwrap(),
            server_name: None,
        }),
        ..Config::default()
    });
    let req = request("REGISTER", "WSS", "127.0.0.1:1".parse().unwrap(), "");
    let sent = ue
        .send(&Target::address(TransportKind::Wss, addr), req)
        .await
        .unwrap();
    let got = next_received(&mut rx).await;
    assert_eq!(got.transport, TransportKind::Wss);
    assert_eq!(got.source, sent.local);
    assert_eq!(parsed(&got).top_via().unwrap().transport, Transport::Wss);
    let ok = parsed(&got).response(StatusCode::OK, Some("u")).unwrap();
    server.send(&got.reply_target(), ok).await.unwrap();
    let answer = next_received(&mut ue_rx).await;
    assert_eq!(answer.flow, sent.flow);
    assert_eq!(answer.transport, TransportKind::Wss);

    // And the plain WS client side against a plain WS listener.
    let ws_addr = server
        .add_ws(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let sent = ue
        .send(
            &Target::address(TransportKind::Ws, ws_addr),
            request("OPTIONS", "WS", "127.0.0.1:1".parse().unwrap(), ""),
        )
        .await
        .unwrap();
    let got = next_received(&mut rx).await;
    assert_eq!(got.transport, TransportKind::Ws);
    let ok = parsed(&got).response(StatusCode::OK, Some("v")).unwrap();
    server.send(&got.reply_target(), ok).await.unwrap();
    assert_eq!(next_received(&mut ue_rx).await.flow, sent.flow);
}
