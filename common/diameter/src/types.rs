//! Derived AVP data formats with structure: Address, Time, DiameterURI (RFC 6733 §4.3.1).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes};

/// An Address AVP value: a 2-octet IANA address family, then the address (RFC 6733 §4.3.1).
///
/// Families other than IPv4 (1) and IPv6 (2) are an open set and kept as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// Family 1.
    V4(Ipv4Addr),
    /// Family 2.
    V6(Ipv6Addr),
    /// Any other family, with its address bytes.
    Other {
        /// The IANA address family number.
        family: u16,
        /// The address bytes as received.
        bytes: Bytes,
    },
}

/// Why an Address payload could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// Shorter than the 2-octet family field.
    TooShort,
    /// The family says IPv4 or IPv6 but the length does not match.
    WrongLength,
}

impl Address {
    /// IANA address family for IPv4.
    pub const FAMILY_IPV4: u16 = 1;
    /// IANA address family for IPv6.
    pub const FAMILY_IPV6: u16 = 2;

    /// Parses an Address payload.
    pub fn decode(data: &[u8]) -> Result<Self, AddressError> {
        let (fam, rest) = data
            .split_first_chunk::<2>()
            .ok_or(AddressError::TooShort)?;
        let family = u16::from_be_bytes(*fam);
        match family {
            Self::FAMILY_IPV4 => {
                let b: [u8; 4] = rest.try_into().map_err(|_| AddressError::WrongLength)?;
                Ok(Self::V4(Ipv4Addr::from(b)))
            }
            Self::FAMILY_IPV6 => {
                let b: [u8; 16] = rest.try_into().map_err(|_| AddressError::WrongLength)?;
                Ok(Self::V6(Ipv6Addr::from(b)))
            }
            _ => Ok(Self::Other {
                family,
                bytes: Bytes::copy_from_slice(rest),
            }),
        }
    }

    /// The payload bytes.
    pub fn encode(&self) -> Bytes {
        let mut v = Vec::with_capacity(18);
        match self {
            Self::V4(a) => {
                v.put_u16(Self::FAMILY_IPV4);
                v.put_slice(&a.octets());
            }
            Self::V6(a) => {
                v.put_u16(Self::FAMILY_IPV6);
                v.put_slice(&a.octets());
            }
            Self::Other { family, bytes } => {
                v.put_u16(*family);
                v.put_slice(bytes);
            }
        }
        Bytes::from(v)
    }

    /// The IP address, for families 1 and 2.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::V4(a) => Some(IpAddr::V4(*a)),
            Self::V6(a) => Some(IpAddr::V6(*a)),
            Self::Other { .. } => None,
        }
    }
}

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::V4(a),
            IpAddr::V6(a) => Self::V6(a),
        }
    }
}

/// A Time AVP value: seconds since 1900-01-01 UTC in NTP format, 32 bits (RFC 6733 §4.3.1).
///
/// The field wraps on 2036-02-07 06:28:16 UTC; as in RFC 5905, values with the top bit clear are
/// read as the era after the wrap, so the range covered is 1968-01-20 to 2104-02-26.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Time(pub u32);

/// Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

impl Time {
    /// The instant this value denotes.
    pub fn to_system_time(self) -> SystemTime {
        let ntp = u64::from(self.0);
        // Top bit clear: era 1 (after 2036-02-07).
        let secs_since_1900 = if self.0 & 0x8000_0000 == 0 {
            ntp + (1 << 32)
        } else {
            ntp
        };
        match secs_since_1900.checked_sub(NTP_UNIX_OFFSET) {
            Some(unix) => SystemTime::UNIX_EPOCH + Duration::from_secs(unix),
            None => SystemTime::UNIX_EPOCH - Duration::from_secs(NTP_UNIX_OFFSET - secs_since_1900),
        }
    }

    /// The Time value for `t`, or `None` before 1970 or after 2104-02-26. Sub-second parts are
    /// dropped.
    pub fn from_system_time(t: SystemTime) -> Option<Self> {
        let unix = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
        let since_1900 = unix + NTP_UNIX_OFFSET;
        let low = u32::try_from(since_1900 & 0xffff_ffff).ok()?;
        let v = Self(low);
        (v.to_system_time() == SystemTime::UNIX_EPOCH + Duration::from_secs(unix)).then_some(v)
    }
}

/// The scheme of a DiameterURI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UriScheme {
    /// `aaa://`: no transport security.
    Aaa,
    /// `aaas://`: transport security used.
    Aaas,
}

/// A DiameterURI (RFC 6733 §4.3.1):
/// `"aaa://" | "aaas://" FQDN [ port ] [ transport ] [ protocol ]`,
/// for example `aaa://host.example.com:3868;transport=tcp;protocol=diameter`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiameterUri {
    /// `aaa` or `aaas`.
    pub scheme: UriScheme,
    /// The FQDN (or address literal) of the node.
    pub fqdn: String,
    /// The port, when given.
    pub port: Option<u16>,
    /// The `transport=` value (`tcp`, `sctp`, `udp`), when given.
    pub transport: Option<String>,
    /// The `protocol=` value (`diameter`, `radius`, `tacacs+`), when given.
    pub protocol: Option<String>,
}

/// Why a DiameterURI did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriError {
    /// Neither `aaa://` nor `aaas://`.
    Scheme,
    /// Empty host.
    Host,
    /// The port is not a number in 0..=65535.
    Port,
    /// A parameter other than `transport=` or `protocol=`, or a repeated one.
    Parameter,
}

impl DiameterUri {
    /// Parses the text form.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(s, "aaas://") {
            (UriScheme::Aaas, r)
        } else if let Some(r) = strip_prefix_ci(s, "aaa://") {
            (UriScheme::Aaa, r)
        } else {
            return Err(UriError::Scheme);
        };
        let mut parts = rest.split(';');
        let authority = parts.next().unwrap_or_default();
        // IPv6 literals are bracketed; the port follows the last ':' outside brackets.
        let (fqdn, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                let port = authority[i + 1..]
                    .parse::<u16>()
                    .map_err(|_| UriError::Port)?;
                (&authority[..i], Some(port))
            }
            _ => (authority, None),
        };
        if fqdn.is_empty() {
            return Err(UriError::Host);
        }
        let mut uri = Self {
            scheme,
            fqdn: fqdn.to_owned(),
            port,
            transport: None,
            protocol: None,
        };
        for p in parts {
            let (k, v) = p.split_once('=').ok_or(UriError::Parameter)?;
            let slot = if k.eq_ignore_ascii_case("transport") {
                &mut uri.transport
            } else if k.eq_ignore_ascii_case("protocol") {
                &mut uri.protocol
            } else {
                return Err(UriError::Parameter);
            };
            if slot.replace(v.to_owned()).is_some() {
                return Err(UriError::Parameter);
            }
        }
        Ok(uri)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

impl fmt::Display for DiameterUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            UriScheme::Aaa => "aaa",
            UriScheme::Aaas => "aaas",
        };
        write!(f, "{scheme}://{}", self.fqdn)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(t) = &self.transport {
            write!(f, ";transport={t}")?;
        }
        if let Some(p) = &self.protocol {
            write!(f, ";protocol={p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_round_trips_ipv4_ipv6_and_unknown_families() {
        let v4 = Address::V4(Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(&v4.encode()[..], &[0, 1, 127, 0, 0, 1]);
        assert_eq!(Address::decode(&v4.encode()), Ok(v4));
        let v6 = Address::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(v6.encode().len(), 18);
        assert_eq!(Address::decode(&v6.encode()), Ok(v6));
        let e164 = Address::decode(&[0, 8, b'1', b'2']).expect("family 8 is kept");
        assert_eq!(&e164.encode()[..], &[0, 8, b'1', b'2']);
        assert_eq!(
            Address::decode(&[0, 1, 1, 2, 3]),
            Err(AddressError::WrongLength)
        );
        assert_eq!(Address::decode(&[0]), Err(AddressError::TooShort));
    }

    #[test]
    fn time_converts_across_the_2036_ntp_wrap() {
        // 2000-01-01T00:00:00Z = NTP 3155673600.
        let y2k = SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800);
        assert_eq!(Time::from_system_time(y2k), Some(Time(3_155_673_600)));
        assert_eq!(Time(3_155_673_600).to_system_time(), y2k);
        // 2040-01-01T00:00:00Z is past the wrap: top bit clear.
        let y2040 = SystemTime::UNIX_EPOCH + Duration::from_secs(2_208_988_800);
        let t = Time::from_system_time(y2040).expect("in range");
        assert_eq!(t.0 & 0x8000_0000, 0);
        assert_eq!(t.to_system_time(), y2040);
        assert_eq!(
            Time::from_system_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40)),
            None
        );
        // The earliest value, 1968-01-20, lies before the Unix epoch.
        assert!(Time(0x8000_0000).to_system_time() < SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn diameter_uri_parses_port_transport_and_protocol() {
        let u = DiameterUri::parse("aaa://hss.ims.example:3868;transport=tcp;protocol=diameter")
            .expect("valid URI");
        assert_eq!(u.scheme, UriScheme::Aaa);
        assert_eq!(u.fqdn, "hss.ims.example");
        assert_eq!(u.port, Some(3868));
        assert_eq!(u.transport.as_deref(), Some("tcp"));
        assert_eq!(
            u.to_string(),
            "aaa://hss.ims.example:3868;transport=tcp;protocol=diameter"
        );
        assert_eq!(
            DiameterUri::parse("aaas://cdf.example").map(|u| u.scheme),
            Ok(UriScheme::Aaas)
        );
        assert_eq!(DiameterUri::parse("http://x"), Err(UriError::Scheme));
        assert_eq!(DiameterUri::parse("aaa://x:99999"), Err(UriError::Port));
        assert_eq!(
            DiameterUri::parse("aaa://x;foo=bar"),
            Err(UriError::Parameter)
        );
        assert_eq!(DiameterUri::parse("aaa://"), Err(UriError::Host));
    }
}
