//! Accept loops for TCP, TLS, WS and WSS listeners. Handshakes run in their own tasks under
//! [`Config::handshake_timeout`](crate::Config::handshake_timeout), so a slow or hostile
//! client never holds up the others.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use crate::transport::{Shared, Slot};
use crate::{FlowInfo, TransportKind, stream, ws};

/// What a listener speaks.
pub(crate) enum Mode {
    Tcp,
    Tls(TlsAcceptor),
    Ws,
    Wss(TlsAcceptor),
}

impl Mode {
    pub(crate) fn transport(&self) -> TransportKind {
        match self {
            Self::Tcp => TransportKind::Tcp,
            Self::Tls(_) => TransportKind::Tls,
            Self::Ws => TransportKind::Ws,
            Self::Wss(_) => TransportKind::Wss,
        }
    }
}

/// Accepts until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, listener: TcpListener, mode: Mode) {
    let transport = mode.transport();
    loop {
        let (tcp, remote) = tokio::select! {
            () = shared.token.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(%transport, error = %e, "accept failed");
                    tokio::select! {
                        () = shared.token.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let Some(slot) = shared.try_slot() else {
            tracing::warn!(%transport, %remote, limit = shared.config.max_connections,
                "connection limit reached, refusing connection");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let Ok(local) = tcp.local_addr() else {
            continue;
        };
        let info = FlowInfo {
            transport,
            local,
            remote,
        };
        match &mode {
            Mode::Tcp => start_stream(&shared, info, slot, tcp),
            Mode::Tls(acceptor) => {
                let acceptor = acceptor.clone();
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let limit = shared.config.handshake_timeout;
                    match timeout(limit, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => start_stream(&shared, info, slot, tls),
                        Ok(Err(e)) => {
                            tracing::info!(%remote, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::info!(%remote, "TLS handshake timed out"),
                    }
                });
            }
            Mode::Ws => {
                tokio::spawn(accept_ws(Arc::clone(&shared), info, slot, tcp));
            }
            Mode::Wss(acceptor) => {
                let acceptor = acceptor.clone();
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let limit = shared.config.handshake_timeout;
                    match timeout(limit, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => accept_ws(shared, info, slot, tls).await,
                        Ok(Err(e)) => {
                            tracing::info!(%remote, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::info!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// Registers a TCP or TLS connection and spawns its task.
pub(crate) fn start_stream<S>(shared: &Arc<Shared>, info: FlowInfo, slot: Slot, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (conn, _, rx) = shared.register(info, slot);
    tokio::spawn(stream::run(conn, io, rx));
}

async fn accept_ws<S>(shared: Arc<Shared>, info: FlowInfo, slot: Slot, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = ws::ws_config(&shared.config.limits);
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(io, ws::negotiate, Some(config));
    match timeout(shared.config.handshake_timeout, handshake).await {
        Ok(Ok(socket)) => {
            let (conn, _, rx) = shared.register(info, slot);
            ws::run(conn, socket, rx).await;
        }
        Ok(Err(e)) => tracing::info!(remote = %info.remote, error = %e,
            "WebSocket handshake refused or failed"),
        Err(_) => tracing::info!(remote = %info.remote, "WebSocket handshake timed out"),
    }
}
