//! The Via header (RFC 3261 §20.42, §18.2.1; RFC 3581 rport).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use super::{TypedHeader, end};
use crate::params::ValueChars;
use crate::scan::{self, Cursor};
use crate::uri::parse_host;
use crate::{Error, Host, Params};

/// The RFC 3261 branch prefix (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// A transport protocol name as used in Via and the `transport` URI parameter: an open set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// SCTP.
    Sctp,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket (RFC 7118).
    Wss,
    /// Anything else (RFC 4475 §3.1.1.10), upper-cased.
    Other(Box<str>),
}

impl Transport {
    /// Parses a transport token, case-insensitively.
    pub fn from_token(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "UDP" => Self::Udp,
            "TCP" => Self::Tcp,
            "TLS" => Self::Tls,
            "SCTP" => Self::Sctp,
            "WS" => Self::Ws,
            "WSS" => Self::Wss,
            other => Self::Other(other.into()),
        }
    }

    /// The upper-case name used in Via.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Sctp => "SCTP",
            Self::Ws => "WS",
            Self::Wss => "WSS",
            Self::Other(s) => s,
        }
    }

    /// Whether the transport retransmits by itself, which switches off timers A, E and G and
    /// zeroes D, I, J and K (RFC 3261 §17). Unknown transports count as unreliable.
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Self::Udp | Self::Other(_))
    }

    /// Whether the transport is encrypted (TLS, WSS).
    pub fn is_secure(&self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }

    /// The default port: 5061 for TLS, 443 for WSS, 80 for WS, 5060 otherwise.
    pub fn default_port(&self) -> u16 {
        match self {
            Self::Tls => 5061,
            Self::Ws => 80,
            Self::Wss => 443,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...;received=...;rport=...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name, `SIP`.
    pub protocol: Cow<'a, str>,
    /// Protocol version, `2.0`.
    pub version: Cow<'a, str>,
    /// The transport.
    pub transport: Transport,
    /// The sent-by host.
    pub host: Host<'a>,
    /// The sent-by port, when given.
    pub port: Option<u16>,
    /// Parameters: branch, received, rport, maddr, ttl and any others.
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// A `SIP/2.0` Via with a branch.
    pub fn new(
        transport: Transport,
        host: Host<'a>,
        port: Option<u16>,
        branch: impl Into<Cow<'a, str>>,
    ) -> Self {
        let mut params = Params::new();
        params.set("branch", Some(branch.into()));
        Self {
            protocol: Cow::Borrowed("SIP"),
            version: Cow::Borrowed("2.0"),
            transport,
            host,
            port,
            params,
        }
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// Whether the branch starts with the RFC 3261 magic cookie, so transaction matching can
    /// use it (§17.2.3). A bare cookie (RFC 4475 §3.2.1) does not count.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter, if it holds an address.
    pub fn received(&self) -> Option<IpAddr> {
        self.params
            .value("received")
            .and_then(|v| v.trim_start_matches('[').trim_end_matches(']').parse().ok())
    }

    /// `None` without `rport`; `Some(None)` for a bare `rport` (a request, RFC 3581 §3);
    /// `Some(Some(port))` once filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&str> {
        self.params.value("maddr")
    }

    /// The sent-by port, or the transport's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or_else(|| self.transport.default_port())
    }

    /// Sets `received` (RFC 3261 §18.2.1).
    pub fn set_received(&mut self, addr: IpAddr) {
        self.params
            .set("received", Some(Cow::Owned(addr.to_string())));
    }

    /// Fills in `rport` with the source port (RFC 3581 §4).
    pub fn set_rport(&mut self, port: u16) {
        self.params.set("rport", Some(Cow::Owned(port.to_string())));
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> Via<'static> {
        Via {
            protocol: Cow::Owned(self.protocol.into_owned()),
            version: Cow::Owned(self.version.into_owned()),
            transport: self.transport,
            host: self.host.into_owned(),
            port: self.port,
            params: self.params.into_owned(),
        }
    }
}

impl<'a> TypedHeader<'a> for Via<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let mut cur = Cursor::new(value);
        let err = |c: &Cursor<'_>| Error::InvalidHeader {
            header,
            at: c.pos(),
        };
        let protocol = cur.token().ok_or_else(|| err(&cur))?;
        if !cur.eat(b'/') {
            return Err(err(&cur));
        }
        let version = cur.token().ok_or_else(|| err(&cur))?;
        if !cur.eat(b'/') {
            return Err(err(&cur));
        }
        let transport = Transport::from_token(cur.token().ok_or_else(|| err(&cur))?);
        let before = cur.pos();
        cur.skip_ws();
        if cur.pos() == before {
            return Err(err(&cur));
        }
        let host = parse_host(&mut cur).ok_or_else(|| err(&cur))?;
        let port = if cur.eat(b':') {
            cur.skip_ws();
            let digits = cur.take_while(|b| b.is_ascii_digit());
            Some(
                scan::parse_u64(digits.as_bytes())
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| err(&cur))?,
            )
        } else {
            None
        };
        let params = Params::parse(&mut cur, ValueChars::Header, header)?;
        end(&mut cur, header)?;
        Ok(Self {
            protocol: Cow::Borrowed(protocol),
            version: Cow::Borrowed(version),
            transport,
            host,
            port,
            params,
        })
    }
}

impl fmt::Display for Via<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{} {}",
            self.protocol, self.version, self.transport, self.host
        )?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}
