//! SIP over WebSocket (RFC 7118): subprotocol negotiation, one SIP message per WebSocket
//! message, text or binary.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use imslab_sip::{Limits, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage, Utf8Bytes};

use crate::transport::{Conn, Outbound};
use crate::udp::is_keepalive;
use crate::{CloseReason, Error, Event, Payload, Received};

/// The subprotocol token of RFC 7118 §4.1.
pub(crate) const SUBPROTOCOL: &str = "sip";
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// WebSocket limits matching the SIP limits.
pub(crate) fn ws_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(limits.max_message))
        .max_frame_size(Some(limits.max_message))
}

/// Whether a handshake offers the `sip` subprotocol (comma lists and repeated headers).
pub(crate) fn offers_sip<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> bool {
    values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

/// The server handshake check: accept with `Sec-WebSocket-Protocol: sip`, refuse with 400
/// otherwise (RFC 7118 §4.1).
#[allow(clippy::result_large_err)] // the signature is tungstenite's callback
pub(crate) fn negotiate(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    if offers_sip(req.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL).iter()) {
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        Ok(resp)
    } else {
        let mut refusal = ErrorResponse::new(Some(
            "SIP over WebSocket needs Sec-WebSocket-Protocol: sip (RFC 7118)".to_owned(),
        ));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        Err(refusal)
    }
}

/// The client handshake: a request offering `sip`, and a check that the server chose it.
pub(crate) async fn client_handshake<S>(
    io: S,
    remote: SocketAddr,
    secure: bool,
    path: &str,
    limits: &Limits,
) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let scheme = if secure { "wss" } else { "ws" };
    let handshake_err = |source| Error::WebSocketHandshake {
        remote,
        source: Box::new(source),
    };
    let mut request = format!("{scheme}://{remote}{path}")
        .into_client_request()
        .map_err(handshake_err)?;
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(request, io, Some(ws_config(limits)))
            .await
            .map_err(handshake_err)?;
    if !offers_sip(
        response
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter(),
    ) {
        return Err(Error::WebSocketSubprotocol { remote });
    }
    Ok(ws)
}

/// The WebSocket message for an outgoing SIP message: binary when the peer last sent binary
/// or the bytes are not UTF-8 (RFC 7118 §4.2), text otherwise.
fn frame(bytes: Bytes, binary: bool) -> WsMessage {
    if binary {
        return WsMessage::Binary(bytes);
    }
    match Utf8Bytes::try_from(bytes.clone()) {
        Ok(text) => WsMessage::Text(text),
        Err(_) => WsMessage::Binary(bytes),
    }
}

/// Runs a WebSocket connection until it closes.
pub(crate) async fn run<S>(
    conn: Conn,
    mut ws: WebSocketStream<S>,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cfg = &conn.shared.config;
    // Frame type of the peer's last message, used for what we send (RFC 7118 §4.2).
    let mut binary = false;
    let idle = tokio::time::sleep(cfg.idle_timeout);
    tokio::pin!(idle);
    let reason = loop {
        tokio::select! {
            () = conn.shared.token.cancelled() => break CloseReason::Shutdown,
            () = &mut idle => break CloseReason::IdleTimeout,
            incoming = ws.next() => {
                idle.as_mut().reset(Instant::now() + cfg.idle_timeout);
                let (payload, is_binary) = match incoming {
                    None => break CloseReason::PeerClosed,
                    Some(Err(e)) => break close_reason(&conn, e),
                    Some(Ok(WsMessage::Text(t))) => (Bytes::from(t), false),
                    Some(Ok(WsMessage::Binary(b))) => (b, true),
                    // Ping, Pong and Close are answered by tungstenite.
                    Some(Ok(_)) => continue,
                };
                binary = is_binary;
                match handle(&conn, payload) {
                    Handled::Deliver(event) => {
                        if !conn.shared.emit(event).await {
                            break CloseReason::Shutdown;
                        }
                    }
                    Handled::Pong => {
                        if let Some(reason) = send(&conn, &mut ws, frame(Bytes::from_static(b"\r\n"), binary)).await {
                            break reason;
                        }
                    }
                    Handled::Ignore => {}
                }
            }
            out = rx.recv() => {
                let Some(out) = out else { break CloseReason::Local };
                let result = match out {
                    Outbound::Close => break CloseReason::Local,
                    Outbound::Ping => {
                        send(&conn, &mut ws, frame(Bytes::from_static(b"\r\n\r\n"), binary)).await
                    }
                    Outbound::Message(bytes) => {
                        let len = bytes.len();
                        // Recorded before the write, so no answer can be captured ahead of it.
                        conn.shared.record(conn.info.transport, conn.info.local,
                            conn.info.remote, &bytes);
                        let r = send(&conn, &mut ws, frame(bytes, binary)).await;
                        conn.queued.fetch_sub(len, std::sync::atomic::Ordering::AcqRel);
                        r
                    }
                };
                if let Some(reason) = result {
                    break reason;
                }
                idle.as_mut().reset(Instant::now() + cfg.idle_timeout);
            }
        }
    };
    let _ = timeout(CLOSE_GRACE, ws.close(None)).await;
    conn.finish(reason).await;
}

enum Handled {
    Deliver(Event),
    /// A CRLFCRLF ping: answer CRLF.
    Pong,
    Ignore,
}

/// One WebSocket message: a SIP message, a CRLF keep-alive, or something invalid. Messages are
/// self-delimiting, so an invalid one does not desynchronise the connection: it is handed up.
fn handle(conn: &Conn, payload: Bytes) -> Handled {
    if payload.as_ref() == b"\r\n\r\n" {
        return Handled::Pong;
    }
    if payload.as_ref() == b"\r\n" {
        return Handled::Deliver(Event::Pong { flow: conn.flow() });
    }
    if is_keepalive(&payload) {
        return Handled::Ignore;
    }
    conn.shared.record(
        conn.info.transport,
        conn.info.remote,
        conn.info.local,
        &payload,
    );
    let payload = match Message::parse_with(payload.clone(), &conn.shared.config.limits) {
        Ok(m) => Payload::Message(m),
        Err(error) => {
            tracing::debug!(flow = conn.id, remote = %conn.info.remote, %error,
                "undecodable WebSocket message");
            Payload::Invalid {
                raw: payload,
                parsed: None,
                error,
            }
        }
    };
    Handled::Deliver(Event::Received(Box::new(Received {
        payload,
        source: conn.info.remote,
        local: conn.info.local,
        transport: conn.info.transport,
        flow: conn.flow(),
    })))
}

async fn send<S>(conn: &Conn, ws: &mut WebSocketStream<S>, msg: WsMessage) -> Option<CloseReason>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match timeout(conn.shared.config.write_timeout, ws.send(msg)).await {
        Err(_) => Some(CloseReason::WriteTimeout),
        Ok(Err(e)) => Some(close_reason(conn, e)),
        Ok(Ok(())) => None,
    }
}

fn close_reason(conn: &Conn, e: tungstenite::Error) -> CloseReason {
    match e {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            CloseReason::PeerClosed
        }
        tungstenite::Error::Io(e) => CloseReason::Io(e.kind()),
        e => {
            tracing::info!(flow = conn.id, remote = %conn.info.remote, error = %e,
                "WebSocket error");
            CloseReason::WebSocket
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_is_found_in_a_comma_list_of_subprotocols() {
        let values = [HeaderValue::from_static("chat, sip")];
        assert!(offers_sip(values.iter()));
        let values = [
            HeaderValue::from_static("sipx"),
            HeaderValue::from_static("xmpp"),
        ];
        assert!(!offers_sip(values.iter()));
    }

    #[test]
    fn non_utf8_messages_go_binary_and_text_stays_text() {
        assert!(matches!(
            frame(Bytes::from_static(b"OPTIONS \xff"), false),
            WsMessage::Binary(_)
        ));
        assert!(matches!(
            frame(Bytes::from_static(b"OPTIONS"), false),
            WsMessage::Text(_)
        ));
        assert!(matches!(
            frame(Bytes::from_static(b"OPTIONS"), true),
            WsMessage::Binary(_)
        ));
    }
}
