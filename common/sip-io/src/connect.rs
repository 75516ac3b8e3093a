//! Outgoing connections: TCP, TLS, WS and WSS, under
//! [`Config::connect_timeout`](crate::Config::connect_timeout).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::transport::{ConnHandle, Shared};
use crate::{Error, FlowInfo, TransportKind, stream, ws};

/// Opens a connection, registers it and spawns its task.
pub(crate) async fn open(
    shared: &Arc<Shared>,
    transport: TransportKind,
    remote: SocketAddr,
) -> Result<ConnHandle, Error> {
    // UDP has no connections: a caller asking for one wants TCP (RFC 3261 §18.1.1).
    let transport = match transport {
        TransportKind::Udp => TransportKind::Tcp,
        t => t,
    };
    let slot = shared.try_slot().ok_or(Error::TooManyConnections {
        limit: shared.config.max_connections,
    })?;
    let limit = shared.config.connect_timeout;
    let connect = async {
        let connect_err = |source| Error::Connect {
            transport,
            remote,
            source,
        };
        let from = shared.source_ip(transport, remote);
        let tcp = tcp_connect(from, remote).await.map_err(connect_err)?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().map_err(connect_err)?;
        let info = FlowInfo {
            transport,
            local,
            remote,
        };
        let handle = match transport {
            TransportKind::Udp | TransportKind::Tcp => {
                let (conn, handle, rx) = shared.register(info, slot);
                tokio::spawn(stream::run(conn, tcp, rx));
                handle
            }
            TransportKind::Tls => {
                let tls = tls_connect(shared, transport, remote, tcp).await?;
                let (conn, handle, rx) = shared.register(info, slot);
                tokio::spawn(stream::run(conn, tls, rx));
                handle
            }
            TransportKind::Ws => {
                let cfg = &shared.config;
                let socket =
                    ws::client_handshake(tcp, remote, false, &cfg.ws_path, &cfg.limits).await?;
                let (conn, handle, rx) = shared.register(info, slot);
                tokio::spawn(ws::run(conn, socket, rx));
                handle
            }
            TransportKind::Wss => {
                let tls = tls_connect(shared, transport, remote, tcp).await?;
                let cfg = &shared.config;
                let socket =
                    ws::client_handshake(tls, remote, true, &cfg.ws_path, &cfg.limits).await?;
                let (conn, handle, rx) = shared.register(info, slot);
                tokio::spawn(ws::run(conn, socket, rx));
                handle
            }
        };
        Ok(handle)
    };
    timeout(limit, connect)
        .await
        .map_err(|_| Error::ConnectTimeout { transport, remote })?
}

/// Connects from `from` (an ephemeral port) when given, else from the kernel's choice.
async fn tcp_connect(from: Option<IpAddr>, remote: SocketAddr) -> std::io::Result<TcpStream> {
    let Some(ip) = from else {
        return TcpStream::connect(remote).await;
    };
    let socket = match remote {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(remote).await
}

async fn tls_connect(
    shared: &Shared,
    transport: TransportKind,
    remote: SocketAddr,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, Error> {
    let client = shared
        .config
        .tls_client
        .as_ref()
        .ok_or(Error::NoTlsClient { transport })?;
    let name = client
        .server_name
        .clone()
        .unwrap_or_else(|| ServerName::IpAddress(remote.ip().into()));
    TlsConnector::from(Arc::clone(&client.config))
        .connect(name, tcp)
        .await
        .map_err(|source| Error::Connect {
            transport,
            remote,
            source,
        })
}
