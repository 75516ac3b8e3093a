//! A TCP or TLS connection: Content-Length framing (RFC 3261 §18.3), CRLF keep-alive
//! (RFC 5626 §3.5.1), idle and write timeouts.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use imslab_sip::{Frame, HeaderName, Message, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use crate::transport::{Conn, Outbound};
use crate::{CloseReason, Event, Payload, Received};

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;
/// How long a closing connection may take to say goodbye (TLS close_notify, FIN).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Queued messages written together, up to about this many bytes.
const WRITE_BATCH: usize = 64 * 1024;

/// Runs a connection until it closes.
pub(crate) async fn run<S>(conn: Conn, mut io: S, mut rx: mpsc::UnboundedReceiver<Outbound>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cfg = &conn.shared.config;
    let mut framer = StreamFramer::new(cfg.limits);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let idle = tokio::time::sleep(cfg.idle_timeout);
    tokio::pin!(idle);
    let reason = loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            () = conn.shared.token.cancelled() => break CloseReason::Shutdown,
            () = &mut idle => break CloseReason::IdleTimeout,
            read = io.read_buf(&mut buf) => {
                match read {
                    Ok(0) => break CloseReason::PeerClosed,
                    Ok(_) => {}
                    Err(e) => break CloseReason::Io(e.kind()),
                }
                idle.as_mut().reset(Instant::now() + cfg.idle_timeout);
                if let Some(reason) = drain(&conn, &mut framer, &mut buf, &mut io).await {
                    break reason;
                }
            }
            out = rx.recv() => {
                let Some(first) = out else { break CloseReason::Local };
                // Whatever is already queued goes out in the same write.
                let mut chunks: Vec<Bytes> = Vec::new();
                let mut size = 0;
                let mut close = false;
                let mut next = Some(first);
                while let Some(item) = next.take() {
                    match item {
                        Outbound::Message(b) => {
                            size += b.len();
                            chunks.push(b);
                        }
                        Outbound::Ping => {
                            framer.ping_sent();
                            chunks.push(Bytes::from_static(b"\r\n\r\n"));
                        }
                        Outbound::Close => {
                            close = true;
                            break;
                        }
                    }
                    if size >= WRITE_BATCH {
                        break;
                    }
                    next = rx.try_recv().ok();
                }
                // Recorded before the write, so no answer can be captured ahead of it.
                for chunk in chunks.iter().filter(|c| c.as_ref() != b"\r\n\r\n") {
                    record_out(&conn, chunk);
                }
                let result = match chunks.as_slice() {
                    [] => None,
                    [one] => write(&conn, &mut io, one).await,
                    many => write(&conn, &mut io, &many.concat()).await,
                };
                conn.queued.fetch_sub(size, std::sync::atomic::Ordering::AcqRel);
                if let Some(reason) = result {
                    break reason;
                }
                if close {
                    break CloseReason::Local;
                }
                idle.as_mut().reset(Instant::now() + cfg.idle_timeout);
            }
        }
    };
    let _ = timeout(CLOSE_GRACE, io.shutdown()).await;
    conn.finish(reason).await;
}

fn record_out(conn: &Conn, bytes: &Bytes) {
    conn.shared.record(
        conn.info.transport,
        conn.info.local,
        conn.info.remote,
        bytes,
    );
}

/// Writes and flushes within the write timeout; `Some` closes the connection.
async fn write<S: AsyncWrite + Unpin>(
    conn: &Conn,
    io: &mut S,
    bytes: &[u8],
) -> Option<CloseReason> {
    let io_result = timeout(conn.shared.config.write_timeout, async {
        io.write_all(bytes).await?;
        io.flush().await
    })
    .await;
    match io_result {
        Err(_) => Some(CloseReason::WriteTimeout),
        Ok(Err(e)) => Some(CloseReason::Io(e.kind())),
        Ok(Ok(())) => None,
    }
}

/// Hands up every complete frame in `buf`; `Some` closes the connection.
async fn drain<S: AsyncWrite + Unpin>(
    conn: &Conn,
    framer: &mut StreamFramer,
    buf: &mut BytesMut,
    io: &mut S,
) -> Option<CloseReason> {
    loop {
        match framer.decode(buf) {
            Ok(None) => return None,
            Ok(Some(Frame::Ping)) => {
                tracing::trace!(flow = conn.id, "CRLF ping, answering pong");
                if let Some(reason) = write(conn, io, b"\r\n").await {
                    return Some(reason);
                }
            }
            Ok(Some(Frame::Pong)) => {
                if !conn.shared.emit(Event::Pong { flow: conn.flow() }).await {
                    return Some(CloseReason::Shutdown);
                }
            }
            Ok(Some(Frame::Message(m))) => {
                if !deliver(conn, m).await {
                    return Some(CloseReason::Shutdown);
                }
            }
            Ok(Some(Frame::Invalid { raw, error })) => {
                // Framed by Content-Length, so the stream is still in sync: hand it up (the
                // owner answers 400 with `imslab_sip::validate::answer_unparseable`) and go on.
                tracing::debug!(flow = conn.id, remote = %conn.info.remote, %error,
                    "undecodable stream message");
                conn.shared
                    .record(conn.info.transport, conn.info.remote, conn.info.local, &raw);
                let ev = Event::Received(Box::new(Received {
                    payload: Payload::Invalid {
                        raw,
                        parsed: None,
                        error,
                    },
                    source: conn.info.remote,
                    local: conn.info.local,
                    transport: conn.info.transport,
                    flow: conn.flow(),
                }));
                if !conn.shared.emit(ev).await {
                    return Some(CloseReason::Shutdown);
                }
            }
            Err(e) => return Some(CloseReason::Framing(e)),
        }
    }
}

async fn deliver(conn: &Conn, m: Message) -> bool {
    let raw = m.to_bytes();
    conn.shared
        .record(conn.info.transport, conn.info.remote, conn.info.local, &raw);
    let payload = if m.has_header(&HeaderName::CONTENT_LENGTH) {
        Payload::Message(m)
    } else {
        // RFC 3261 §18.3: Content-Length is mandatory on streams. The framer read it as 0;
        // the owner decides (400 for a request).
        tracing::debug!(flow = conn.id, remote = %conn.info.remote,
            "stream message without Content-Length");
        Payload::Invalid {
            raw,
            parsed: Some(m),
            error: imslab_sip::Error::MissingHeader("Content-Length"),
        }
    };
    conn.shared
        .emit(Event::Received(Box::new(Received {
            payload,
            source: conn.info.remote,
            local: conn.info.local,
            transport: conn.info.transport,
            flow: conn.flow(),
        })))
        .await
}
