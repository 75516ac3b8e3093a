//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) and other absolute URIs.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use memchr::memchr;

use crate::params::ValueChars;
use crate::scan::{self, Cursor};
use crate::{Error, Params};

/// A URI as found in a Request-URI or a name-addr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:` (RFC 3966).
    Tel(TelUri<'a>),
    /// Any other scheme, kept opaque (RFC 4475 §3.3.2–3.3.4).
    Other(AbsoluteUri<'a>),
}

/// A `sip:` or `sips:` URI: `sip:user:password@host:port;params?headers` (RFC 3261 §19.1.1).
///
/// User and password keep their `%` escapes (see [`SipUri::user_unescaped`]); headers are kept
/// as the raw text after `?`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, escapes kept.
    pub user: Option<Cow<'a, str>>,
    /// The password, escapes kept.
    pub password: Option<Cow<'a, str>>,
    /// The host.
    pub host: Host<'a>,
    /// The port, when given.
    pub port: Option<u16>,
    /// `uri-parameters` (transport, lr, maddr, user, ob, gr...).
    pub params: Params<'a>,
    /// The raw `headers` component after `?`.
    pub headers: Option<Cow<'a, str>>,
}

/// A host: a name or an IP address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A domain name, compared case-insensitively.
    Name(Cow<'a, str>),
    /// An IPv4 or IPv6 address (IPv6 is bracketed on the wire).
    Ip(IpAddr),
}

/// A `tel:` URI (RFC 3966): the number and its parameters (`phone-context`, `ext`, `isub`...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// The number with visual separators kept, e.g. `+1-201-555-0123`.
    pub number: Cow<'a, str>,
    /// The parameters.
    pub params: Params<'a>,
}

/// A URI with a scheme this crate does not interpret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbsoluteUri<'a> {
    /// The scheme as written.
    pub scheme: Cow<'a, str>,
    /// Everything after the colon.
    pub rest: Cow<'a, str>,
}

impl<'a> Uri<'a> {
    /// Parses a complete URI.
    pub fn parse(s: &'a str) -> Result<Self, Error> {
        let colon = memchr(b':', s.as_bytes()).ok_or(Error::InvalidUri { at: 0 })?;
        let scheme = s.get(..colon).unwrap_or_default();
        let rest = s.get(colon + 1..).unwrap_or_default();
        let valid_scheme = scheme
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(Error::InvalidUri { at: 0 });
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_rest(rest, scheme.len() == 4, colon + 1).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse_rest(rest, colon + 1).map(Uri::Tel)
        } else {
            if rest.is_empty()
                || rest
                    .bytes()
                    .any(|b| b <= b' ' || b == 0x7f || b == b'<' || b == b'>' || b == b'"')
            {
                return Err(Error::InvalidUri { at: colon + 1 });
            }
            Ok(Uri::Other(AbsoluteUri {
                scheme: Cow::Borrowed(scheme),
                rest: Cow::Borrowed(rest),
            }))
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Self::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// Whether the scheme is `sip`, `sips` or `tel`.
    pub fn is_supported_scheme(&self) -> bool {
        !matches!(self, Self::Other(_))
    }

    /// Detaches the URI from the buffer it was parsed from.
    pub fn into_owned(self) -> Uri<'static> {
        match self {
            Self::Sip(u) => Uri::Sip(u.into_owned()),
            Self::Tel(t) => Uri::Tel(TelUri {
                number: Cow::Owned(t.number.into_owned()),
                params: t.params.into_owned(),
            }),
            Self::Other(o) => Uri::Other(AbsoluteUri {
                scheme: Cow::Owned(o.scheme.into_owned()),
                rest: Cow::Owned(o.rest.into_owned()),
            }),
        }
    }
}

fn is_user_char(b: u8) -> bool {
    scan::is(b, scan::USER)
}

fn is_password_char(b: u8) -> bool {
    scan::is(b, scan::PASSWORD)
}

fn is_header_char(b: u8) -> bool {
    scan::is(b, scan::UHEADER)
}

impl<'a> SipUri<'a> {
    /// A `sip:` URI for a host, without user, port or parameters.
    pub fn new(host: Host<'a>) -> Self {
        Self {
            secure: false,
            user: None,
            password: None,
            host,
            port: None,
            params: Params::new(),
            headers: None,
        }
    }

    /// Parses a complete `sip:`/`sips:` URI.
    pub fn parse(s: &'a str) -> Result<Self, Error> {
        match Uri::parse(s)? {
            Uri::Sip(u) => Ok(u),
            _ => Err(Error::InvalidUri { at: 0 }),
        }
    }

    fn parse_rest(rest: &'a str, secure: bool, offset: usize) -> Result<Self, Error> {
        let err = |at: usize| Error::InvalidUri { at: offset + at };
        let (user, password, hostpart, host_off) = match memchr(b'@', rest.as_bytes()) {
            Some(at) => {
                let userinfo = rest.get(..at).unwrap_or_default();
                let (user, password) = match memchr(b':', userinfo.as_bytes()) {
                    Some(c) => (
                        userinfo.get(..c).unwrap_or_default(),
                        Some(userinfo.get(c + 1..).unwrap_or_default()),
                    ),
                    None => (userinfo, None),
                };
                if user.is_empty() || !user.bytes().all(is_user_char) {
                    return Err(err(0));
                }
                if password.is_some_and(|p| !p.bytes().all(is_password_char)) {
                    return Err(err(user.len() + 1));
                }
                (
                    Some(Cow::Borrowed(user)),
                    password.map(Cow::Borrowed),
                    rest.get(at + 1..).unwrap_or_default(),
                    at + 1,
                )
            }
            None => (None, None, rest, 0),
        };
        let mut cur = Cursor::new(hostpart);
        let host = parse_host(&mut cur).ok_or_else(|| err(host_off))?;
        let port = if cur.eat_exact(b':') {
            let digits = cur.take_while(|b| b.is_ascii_digit());
            let p = scan::parse_u64(digits.as_bytes())
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| err(host_off + cur.pos()))?;
            Some(p)
        } else {
            None
        };
        let params = Params::parse(&mut cur, ValueChars::Uri, "URI")
            .map_err(|_| err(host_off + cur.pos()))?;
        let headers = if cur.eat_exact(b'?') {
            let h = cur.take_while(is_header_char);
            if h.is_empty() {
                return Err(err(host_off + cur.pos()));
            }
            Some(Cow::Borrowed(h))
        } else {
            None
        };
        if !cur.is_empty() {
            return Err(err(host_off + cur.pos()));
        }
        Ok(Self {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The user part with `%` escapes decoded (RFC 4475 §3.1.1.3: `%75se%72` is `user`).
    pub fn user_unescaped(&self) -> Option<Cow<'_, str>> {
        self.user.as_deref().map(scan::unescape)
    }

    /// The port, or the default for the scheme and transport (5060, or 5061 for `sips:` and
    /// TLS, RFC 3261 §19.1.2).
    pub fn port_or_default(&self) -> u16 {
        let tls = self.secure
            || self
                .transport()
                .is_some_and(|t| t.eq_ignore_ascii_case("tls"));
        self.port.unwrap_or(if tls { 5061 } else { 5060 })
    }

    /// The `transport` parameter.
    pub fn transport(&self) -> Option<&str> {
        self.params.value("transport")
    }

    /// Whether the `lr` parameter is present (a loose router, RFC 3261 §16.4).
    pub fn is_loose_route(&self) -> bool {
        self.params.contains("lr")
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&str> {
        self.params.value("maddr")
    }

    /// Detaches the URI from the buffer it was parsed from.
    pub fn into_owned(self) -> SipUri<'static> {
        SipUri {
            secure: self.secure,
            user: self.user.map(|u| Cow::Owned(u.into_owned())),
            password: self.password.map(|p| Cow::Owned(p.into_owned())),
            host: self.host.into_owned(),
            port: self.port,
            params: self.params.into_owned(),
            headers: self.headers.map(|h| Cow::Owned(h.into_owned())),
        }
    }
}

/// `host = hostname / IPv4address / IPv6reference`.
pub(crate) fn parse_host<'a>(cur: &mut Cursor<'a>) -> Option<Host<'a>> {
    if cur.eat_exact(b'[') {
        let inner = cur.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !cur.eat_exact(b']') {
            return None;
        }
        return inner
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| Host::Ip(IpAddr::V6(a)));
    }
    let name = cur.take_class(scan::HOST);
    if name.is_empty() {
        return None;
    }
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && let Ok(a) = name.parse::<Ipv4Addr>()
    {
        return Some(Host::Ip(IpAddr::V4(a)));
    }
    Some(Host::Name(Cow::Borrowed(name)))
}

impl Host<'_> {
    /// Detaches the host from the buffer it was parsed from.
    pub fn into_owned(self) -> Host<'static> {
        match self {
            Host::Name(n) => Host::Name(Cow::Owned(n.into_owned())),
            Host::Ip(a) => Host::Ip(a),
        }
    }

    /// Compares hosts as RFC 3261 §19.1.4 does: names case-insensitively, addresses by value.
    pub fn matches(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            (Host::Ip(a), Host::Ip(b)) => a == b,
            _ => false,
        }
    }

    /// The IP address, for an address host.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(a) => Some(*a),
            Host::Name(_) => None,
        }
    }
}

impl From<IpAddr> for Host<'static> {
    fn from(a: IpAddr) -> Self {
        Host::Ip(a)
    }
}

impl<'a> TelUri<'a> {
    fn parse_rest(rest: &'a str, offset: usize) -> Result<Self, Error> {
        let mut cur = Cursor::new(rest);
        let number = cur.take_while(|b| {
            b.is_ascii_hexdigit() || matches!(b, b'+' | b'*' | b'#' | b'-' | b'.' | b'(' | b')')
        });
        if number.is_empty() || number.bytes().skip(1).any(|b| b == b'+') {
            return Err(Error::InvalidUri { at: offset });
        }
        let params =
            Params::parse(&mut cur, ValueChars::Uri, "URI").map_err(|_| Error::InvalidUri {
                at: offset + cur.pos(),
            })?;
        if !cur.is_empty() {
            return Err(Error::InvalidUri {
                at: offset + cur.pos(),
            });
        }
        Ok(Self {
            number: Cow::Borrowed(number),
            params,
        })
    }

    /// Whether the number is global (starts with `+`, RFC 3966 §5.1.4).
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }

    /// The number without visual separators (`-`, `.`, `(`, `)`).
    pub fn digits(&self) -> String {
        self.number
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
            .collect()
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sip(u) => u.fmt(f),
            Self::Tel(t) => t.fmt(f),
            Self::Other(o) => write!(f, "{}:{}", o.scheme, o.rest),
        }
    }
}

impl fmt::Display for SipUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TelUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}{}", self.number, self.params)
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s) {
            Ok(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn sip_uri_components_are_split_per_rfc3261() {
        let u =
            sip("sips:alice:secret@[2001:db8::1]:5071;transport=tcp;lr?subject=x&priority=urgent");
        assert!(u.secure);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(
            u.host,
            Host::Ip(
                "2001:db8::1"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            )
        );
        assert_eq!(u.port, Some(5071));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.is_loose_route());
        assert_eq!(u.headers.as_deref(), Some("subject=x&priority=urgent"));
        assert_eq!(
            u.to_string(),
            "sips:alice:secret@[2001:db8::1]:5071;transport=tcp;lr?subject=x&priority=urgent"
        );
    }

    #[test]
    fn unusual_but_legal_user_and_password_characters_parse() {
        let u = sip(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        );
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password.as_deref(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(u.host, Host::Name("example.com".into()));
    }

    #[test]
    fn escaped_user_parts_decode_on_request() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(
            u.user_unescaped().as_deref(),
            Some("user;par=u@example.net")
        );
        let u = sip("sip:null-%00-null@example.com");
        assert_eq!(u.user_unescaped().as_deref(), Some("null-\0-null"));
    }

    #[test]
    fn tel_uris_keep_number_and_parameters() {
        let Ok(Uri::Tel(t)) = Uri::parse("tel:+1-201-555-0123;ext=1234") else {
            panic!("tel")
        };
        assert!(t.is_global());
        assert_eq!(t.digits(), "+12015550123");
        assert_eq!(t.params.value("ext"), Some("1234"));
        let Ok(Uri::Tel(t)) = Uri::parse("tel:7042;phone-context=example.com") else {
            panic!("local tel")
        };
        assert_eq!(t.params.value("phone-context"), Some("example.com"));
        assert!(Uri::parse("tel:").is_err());
    }

    #[test]
    fn unknown_schemes_are_opaque_and_malformed_uris_fail() {
        assert!(matches!(
            Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent"),
            Ok(Uri::Other(_))
        ));
        assert!(matches!(
            Uri::parse("soap.beep://192.0.2.103:3002"),
            Ok(Uri::Other(_))
        ));
        assert!(Uri::parse("<sip:user@example.com>").is_err());
        assert!(Uri::parse("sip:user@example.com; lr").is_err());
        assert!(Uri::parse("sip:user@").is_err());
        assert!(Uri::parse("sip:host:99999").is_err());
        assert!(Uri::parse("sip:a@b@c").is_err());
    }

    #[test]
    fn default_port_follows_scheme_and_transport() {
        assert_eq!(sip("sip:h").port_or_default(), 5060);
        assert_eq!(sip("sips:h").port_or_default(), 5061);
        assert_eq!(sip("sip:h;transport=TLS").port_or_default(), 5061);
        assert_eq!(sip("sip:h:5080").port_or_default(), 5080);
    }
}
