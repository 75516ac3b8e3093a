//! SCTP: a runtime probe, and (feature `sctp`) one-to-one SCTP sockets used like TCP streams.
//!
//! Diameter over SCTP (RFC 6733 §2.1) needs kernel SCTP. The probe opens
//! `socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)` with socket2, which reports the kernel's own
//! error (EPROTONOSUPPORT when SCTP is absent), unlike higher-level crates that misreport it.

use std::io;

use crate::Error;

/// IPPROTO_SCTP.
const IPPROTO_SCTP: i32 = 132;

/// Checks whether the kernel supports SCTP. The error says so plainly when it does not.
pub fn probe() -> Result<(), Error> {
    match socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::from(IPPROTO_SCTP)),
    ) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::SctpUnavailable(explain(&e))),
    }
}

fn explain(e: &io::Error) -> String {
    match e.raw_os_error() {
        // EPROTONOSUPPORT, ESOCKTNOSUPPORT
        Some(93 | 94) => format!(
            "this kernel has no SCTP ({e}); load the sctp module (modprobe sctp) or use TCP"
        ),
        _ => format!("cannot open an SCTP socket: {e}"),
    }
}

/// Connects a one-to-one SCTP socket and returns it as a tokio stream (feature `sctp`).
#[cfg(feature = "sctp")]
pub async fn connect(addr: std::net::SocketAddr) -> Result<tokio::net::TcpStream, Error> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(
        domain,
        socket2::Type::STREAM,
        Some(socket2::Protocol::from(IPPROTO_SCTP)),
    )
    .map_err(|e| Error::SctpUnavailable(explain(&e)))?;
    s.set_nonblocking(true).map_err(|source| Error::Io {
        what: "SCTP set_nonblocking",
        source,
    })?;
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(115) => {} // EINPROGRESS
        Err(source) => return Err(Error::Connect { addr, source }),
    }
    let std: std::net::TcpStream = s.into();
    let stream = tokio::net::TcpStream::from_std(std).map_err(|source| Error::Io {
        what: "SCTP register",
        source,
    })?;
    stream
        .writable()
        .await
        .map_err(|source| Error::Connect { addr, source })?;
    if let Some(source) = stream
        .take_error()
        .map_err(|source| Error::Connect { addr, source })?
    {
        return Err(Error::Connect { addr, source });
    }
    Ok(stream)
}

/// Binds a one-to-one SCTP listener usable as a tokio listener (feature `sctp`).
#[cfg(feature = "sctp")]
pub fn listen(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(
        domain,
        socket2::Type::STREAM,
        Some(socket2::Protocol::from(IPPROTO_SCTP)),
    )
    .map_err(|e| Error::SctpUnavailable(explain(&e)))?;
    s.set_reuse_address(true).map_err(|source| Error::Io {
        what: "SCTP SO_REUSEADDR",
        source,
    })?;
    s.bind(&addr.into()).map_err(|source| Error::Io {
        what: "SCTP bind",
        source,
    })?;
    s.listen(128).map_err(|source| Error::Io {
        what: "SCTP listen",
        source,
    })?;
    s.set_nonblocking(true).map_err(|source| Error::Io {
        what: "SCTP set_nonblocking",
        source,
    })?;
    let std: std::net::TcpListener = s.into();
    tokio::net::TcpListener::from_std(std).map_err(|source| Error::Io {
        what: "SCTP register",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_says_plainly_whether_the_kernel_has_sctp() {
        match probe() {
            Ok(()) => {
                // A kernel with SCTP: the socket type really exists.
                let s = socket2::Socket::new(
                    socket2::Domain::IPV4,
                    socket2::Type::STREAM,
                    Some(socket2::Protocol::from(IPPROTO_SCTP)),
                );
                assert!(s.is_ok());
            }
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("SCTP"), "{text}");
                assert!(
                    text.contains("no SCTP") || text.contains("cannot open"),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn eprotonosupport_is_explained_as_missing_kernel_support() {
        let text = explain(&io::Error::from_raw_os_error(93));
        assert!(text.contains("this kernel has no SCTP"), "{text}");
    }
}
