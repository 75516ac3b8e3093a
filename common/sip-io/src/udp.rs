//! The UDP transport (RFC 3261 §18.1.1, §18.2.1): one task per socket, one message per
//! datagram.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use imslab_sip::Message;
use tokio::net::UdpSocket;

use crate::transport::Shared;
use crate::{CloseReason, Error, Event, FlowId, Payload, Received, TransportKind};

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
            r = socket.ready(tokio::io::Interest::ERROR) => {
                if r.is_ok() {
                    for (remote, kind) in take_icmp_errors(&socket) {
                        tracing::debug!(%local, %remote, ?kind, "UDP peer unreachable (ICMP)");
                        let event = Event::FlowClosed {
                            flow: FlowId::datagram(id, remote),
                            transport: TransportKind::Udp,
                            remote,
                            reason: CloseReason::Unreachable(kind),
                        };
                        if !shared.emit(event).await {
                            return;
                        }
                    }
                }
                continue;
            }
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
    // Recorded before it leaves: once sent, the answer may be received and recorded by
    // another task first, and the capture would show it before its request.
    shared.record(TransportKind::Udp, local, remote, bytes);
    socket
        .send_to(bytes, remote)
        .await
        .map_err(|source| Error::UdpSend { remote, source })?;
    Ok(())
}

/// Most queued ICMP errors read per wake-up (the queue counts against the receive buffer,
/// so it is emptied rather than left for later).
const MAX_ICMP_ERRORS: usize = 1024;

/// Asks the kernel to queue ICMP errors for datagrams this socket sends, with their
/// destination (`IP_RECVERR`/`IPV6_RECVERR`, Linux): an unconnected UDP socket otherwise
/// never learns that a peer's port is closed, and a request to a dead AS or peer would wait
/// for Timer B/F (32 s). Elsewhere a no-op.
pub(crate) fn report_icmp_errors(socket: &UdpSocket, local: SocketAddr) {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        let r = if local.is_ipv4() {
            setsockopt(socket, sockopt::Ipv4RecvErr, &true)
        } else {
            setsockopt(socket, sockopt::Ipv6RecvErr, &true)
        };
        if let Err(e) = r {
            tracing::warn!(%local, error = %e, "cannot ask for ICMP errors on the UDP socket");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, local);
}

/// The peers an ICMP port unreachable named (see [`is_port_unreachable`]), each once, with
/// the error kind, from at most [`MAX_ICMP_ERRORS`] queued errors per call; clears the
/// socket's pending error and, when the queue is empty, the error readiness.
fn take_icmp_errors(socket: &UdpSocket) -> Vec<(SocketAddr, std::io::ErrorKind)> {
    let mut found = Vec::new();
    let _ = socket.try_io(tokio::io::Interest::ERROR, || {
        // SO_ERROR: the error the ICMP message also left pending on the socket.
        let _ = socket2::SockRef::from(socket).take_error();
        drain_error_queue(socket, &mut found);
        Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
    });
    dedup_peers(found)
}

/// One report per peer and drain, in first-seen order: a burst of errors from one peer
/// (or forged ones) costs the SIP element one scan of its transactions, not one per error.
fn dedup_peers(
    found: Vec<(SocketAddr, std::io::ErrorKind)>,
) -> Vec<(SocketAddr, std::io::ErrorKind)> {
    let mut seen = std::collections::HashSet::with_capacity(found.len());
    found.into_iter().filter(|(r, _)| seen.insert(*r)).collect()
}

/// Whether a queued socket error (`sock_extended_err`) is an ICMP or ICMPv6 port
/// unreachable, the only one reported: the peer's host itself says nothing listens there
/// (RFC 1122 §4.1.3.3), a hard error (RFC 1122 §4.2.3.9). The rest is ignored and left to
/// retransmission and Timer B/F, as RFC 8085 §5.2 and RFC 5927 advise: local errors and
/// frag-needed/packet-too-big (`EMSGSIZE`) say nothing about the peer; TTL exceeded is a
/// routing loop or too low a TTL; host and net unreachable come from routers (a neighbour
/// not resolved yet, a route flapping), RFC 1122 §4.2.3.9 calls them soft errors, and
/// failing every transaction to the peer on one would kill calls a retransmission saves.
#[cfg(target_os = "linux")]
fn is_port_unreachable(origin: u8, errno: u32) -> bool {
    use nix::libc;
    matches!(origin, libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6)
        && i32::try_from(errno) == Ok(libc::ECONNREFUSED)
}

#[cfg(target_os = "linux")]
fn drain_error_queue(socket: &UdpSocket, found: &mut Vec<(SocketAddr, std::io::ErrorKind)>) {
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, recvmsg};
    for _ in 0..MAX_ICMP_ERRORS {
        let mut data = [0u8; 64];
        let mut iov = [std::io::IoSliceMut::new(&mut data)];
        let mut cmsg = nix::cmsg_space!(nix::libc::sock_extended_err, nix::libc::sockaddr_in6);
        let Ok(msg) = recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        ) else {
            return;
        };
        let errno = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::Ipv4RecvErr(e, _) | ControlMessageOwned::Ipv6RecvErr(e, _) => {
                    Some((e.ee_origin, e.ee_errno))
                }
                _ => None,
            })
        });
        let errno = errno
            .filter(|&(origin, errno)| is_port_unreachable(origin, errno))
            .and_then(|(_, errno)| i32::try_from(errno).ok());
        let remote = msg.address.and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from((v4.ip(), v4.port())))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
                })
                .filter(|_| a.len() > 0)
        });
        if let (Some(remote), Some(errno)) = (remote, errno) {
            found.push((remote, std::io::Error::from_raw_os_error(errno).kind()));
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn drain_error_queue(_: &UdpSocket, _: &mut Vec<(SocketAddr, std::io::ErrorKind)>) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::ErrorKind;

    use nix::libc;

    use super::*;

    #[test]
    fn only_an_icmp_port_unreachable_counts() {
        let refused = libc::ECONNREFUSED as u32;
        assert!(is_port_unreachable(libc::SO_EE_ORIGIN_ICMP, refused));
        assert!(is_port_unreachable(libc::SO_EE_ORIGIN_ICMP6, refused));
        for errno in [libc::EMSGSIZE, libc::EHOSTUNREACH, libc::ENETUNREACH] {
            assert!(
                !is_port_unreachable(libc::SO_EE_ORIGIN_ICMP, errno as u32),
                "errno {errno}"
            );
        }
        // TTL exceeded: ICMP type 11 leaves EHOSTUNREACH; a local PMTU error, EMSGSIZE.
        assert!(!is_port_unreachable(
            libc::SO_EE_ORIGIN_LOCAL,
            libc::EMSGSIZE as u32
        ));
        assert!(!is_port_unreachable(libc::SO_EE_ORIGIN_LOCAL, refused));
    }

    #[test]
    fn a_burst_of_errors_reports_each_peer_once_in_order() {
        let a: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let b: SocketAddr = "[::1]:5080".parse().unwrap();
        let found = vec![
            (a, ErrorKind::ConnectionRefused),
            (b, ErrorKind::ConnectionRefused),
            (a, ErrorKind::ConnectionRefused),
            (a, ErrorKind::ConnectionRefused),
        ];
        assert_eq!(
            dedup_peers(found),
            [
                (a, ErrorKind::ConnectionRefused),
                (b, ErrorKind::ConnectionRefused)
            ]
        );
    }
}
