//! The UDP transport (RFC 3261 §18.1.1, §18.2.1): one task per socket, one message per
//! datagram.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use imslab_sip::Message;
use tokio::net::UdpSocket;

use crate::transport::Shared;
use crate::{Error, Event, FlowId, Payload, Received, TransportKind};

/// Largest UDP payload over IPv4 (65535 − 20 − 8).
pub(crate) const MAX_DATAGRAM: usize = 65_507;

/// Whether a datagram is only CR and LF: a keep-alive some phones send over UDP, dropped
/// silently (RFC 5626 §3.5.1 defines CRLF keep-alives for streams; RFC 3261 §7.5 lets a
/// receiver ignore CRLF before a start line).
pub(crate) fn is_keepalive(data: &[u8]) -> bool {
    !data.is_empty() && data.iter().all(|&b| b == b'\r' || b == b'\n')
}

/// Receives datagrams until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, socket: Arc<UdpSocket>, id: u64, local: SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    let limits = shared.config.limits;
    loop {
        let (n, source) = tokio::select! {
            () = shared.token.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(%local, error = %e, "UDP receive error");
                    tokio::task::yield_now().await;
                    continue;
                }
            },
        };
        let Some(data) = buf.get(..n) else {
            continue;
        };
        if is_keepalive(data) {
            tracing::trace!(%local, %source, "UDP CRLF keep-alive");
            continue;
        }
        shared.record(TransportKind::Udp, source, local, data);
        let raw = Bytes::copy_from_slice(data);
        let payload = match Message::parse_with(raw.clone(), &limits) {
            Ok(m) => Payload::Message(m),
            Err(error) => {
                tracing::debug!(%local, %source, %error, "undecodable UDP datagram");
                Payload::Invalid {
                    raw,
                    parsed: None,
                    error,
                }
            }
        };
        let event = Event::Received(Box::new(Received {
            payload,
            source,
            local,
            transport: TransportKind::Udp,
            flow: FlowId::datagram(id, source),
        }));
        if !shared.emit(event).await {
            return;
        }
    }
}

/// Sends one datagram and records it.
pub(crate) async fn send(
    shared: &Shared,
    socket: &UdpSocket,
    local: SocketAddr,
    remote: SocketAddr,
    bytes: &Bytes,
) -> Result<(), Error> {
    let limit = MAX_DATAGRAM.min(shared.config.limits.max_message);
    if bytes.len() > limit {
        return Err(Error::TooLarge {
            transport: TransportKind::Udp,
            len: bytes.len(),
            limit,
        });
    }
    socket
        .send_to(bytes, remote)
        .await
        .map_err(|source| Error::UdpSend { remote, source })?;
    shared.record(TransportKind::Udp, local, remote, bytes);
    Ok(())
}
