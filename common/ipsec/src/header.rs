//! Security-Client, Security-Server and Security-Verify header values (RFC 3329 §2.2) and their
//! `ipsec-3gpp` mechanism parameters (TS 33.203 Annex H).
//!
//! This module works on header *values* (the text after `Security-Client:`), so it needs no SIP
//! stack: the caller hands over each header line's value, and one value may hold several
//! comma-separated mechanisms.
//!
//! ```text
//! sec-mechanism  = mechanism-name *(SEMI mech-parameters)
//! mech-parameters = preference / digest-algorithm / digest-qop / digest-verify / extension
//! extension      = generic-param            ; token [ EQUAL (token / host / quoted-string) ]
//! ```
//!
//! [`SecurityMechanism`] is the open, lossless form: every mechanism name and parameter is kept
//! in order, unknown ones included, and printing then parsing gives the same value.
//! [`IpsecMechanism`] is the typed `ipsec-3gpp` view the P-CSCF decides on.

use std::fmt::{self, Write as _};

use crate::alg::{CipherSuite, EncryptionAlg, IntegrityAlg};
use crate::spi::Spi;
use crate::{Error, HeaderError};

/// Longest header value accepted (bytes). Real values are a few hundred bytes.
pub const MAX_VALUE_LEN: usize = 8192;
/// Most mechanisms accepted in one header (all its values together).
pub const MAX_MECHANISMS: usize = 32;
/// Most parameters accepted in one mechanism.
pub const MAX_PARAMS: usize = 32;

/// The mechanism name of IMS IPsec (TS 33.203 Annex H).
pub const IPSEC_3GPP: &str = "ipsec-3gpp";

/// One mechanism parameter: `name` or `name=value`. A quoted value keeps its quotes, so it
/// prints back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MechParam {
    /// The parameter name, as received.
    pub name: String,
    /// The value, as received (quoted strings with their quotes), or `None` for a flag.
    pub value: Option<String>,
}

impl MechParam {
    /// `name=value`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
        }
    }
}

/// One mechanism of a Security-* header: a name and its parameters, in order (RFC 3329 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecurityMechanism {
    /// The mechanism name, for example `ipsec-3gpp`, `digest` or `tls`.
    pub name: String,
    /// The parameters in received order.
    pub params: Vec<MechParam>,
}

impl SecurityMechanism {
    /// The first value of parameter `name` (case-insensitive), with quotes kept.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .and_then(|p| p.value.as_deref())
    }

    /// True when this is an `ipsec-3gpp` mechanism.
    pub fn is_ipsec_3gpp(&self) -> bool {
        self.name.eq_ignore_ascii_case(IPSEC_3GPP)
    }
}

impl fmt::Display for SecurityMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for p in &self.params {
            f.write_char(';')?;
            f.write_str(&p.name)?;
            if let Some(v) = &p.value {
                f.write_char('=')?;
                f.write_str(v)?;
            }
        }
        Ok(())
    }
}

/// Prints mechanisms as one header value, comma-separated.
pub fn print_list(mechs: &[SecurityMechanism]) -> String {
    let mut out = String::new();
    for (i, m) in mechs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{m}");
    }
    out
}

/// Parses one header value (one or more comma-separated mechanisms).
pub fn parse_value(value: &str) -> Result<Vec<SecurityMechanism>, Error> {
    let mut out = Vec::new();
    parse_into(value, &mut out)?;
    Ok(out)
}

/// Parses every value of a header that appeared on several lines, in order.
pub fn parse_values<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<SecurityMechanism>, Error> {
    let mut out = Vec::new();
    for v in values {
        parse_into(v, &mut out)?;
    }
    Ok(out)
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Characters of an unquoted `gen-value`: a token, or a host (IPv6 references use `[`, `]`, `:`).
fn is_value_char(b: u8) -> bool {
    is_token_char(b) || matches!(b, b':' | b'[' | b']')
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or_default()
    }

    fn token(&mut self, what: &'static str) -> Result<String, HeaderError> {
        let t = self.take_while(is_token_char);
        if t.is_empty() {
            return Err(HeaderError::Expected { what, at: self.pos });
        }
        Ok(String::from_utf8_lossy(t).into_owned())
    }

    /// A quoted string (RFC 3261 §25.1), returned with its quotes.
    fn quoted(&mut self) -> Result<String, HeaderError> {
        let start = self.pos;
        self.pos += 1; // opening quote, checked by the caller
        loop {
            match self.peek() {
                None => return Err(HeaderError::UnterminatedQuote { at: start }),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => self.pos += 2,
                Some(_) => self.pos += 1,
            }
        }
        let raw = self
            .s
            .get(start..self.pos)
            .ok_or(HeaderError::UnterminatedQuote { at: start })?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| HeaderError::Expected {
                what: "UTF-8 quoted string",
                at: start,
            })
    }
}

fn parse_into(value: &str, out: &mut Vec<SecurityMechanism>) -> Result<(), Error> {
    if value.len() > MAX_VALUE_LEN {
        return Err(HeaderError::TooLong {
            len: value.len(),
            max: MAX_VALUE_LEN,
        }
        .into());
    }
    let mut c = Cursor {
        s: value.as_bytes(),
        pos: 0,
    };
    c.skip_ws();
    if c.peek().is_none() {
        return Err(HeaderError::Empty.into());
    }
    loop {
        c.skip_ws();
        if out.len() >= MAX_MECHANISMS {
            return Err(HeaderError::TooManyMechanisms {
                max: MAX_MECHANISMS,
            }
            .into());
        }
        let name = c.token("mechanism name")?;
        let mut params = Vec::new();
        loop {
            c.skip_ws();
            match c.peek() {
                Some(b';') => {
                    c.pos += 1;
                    c.skip_ws();
                    if params.len() >= MAX_PARAMS {
                        return Err(HeaderError::TooManyParams { max: MAX_PARAMS }.into());
                    }
                    let pname = c.token("parameter name")?;
                    c.skip_ws();
                    let pvalue = if c.peek() == Some(b'=') {
                        c.pos += 1;
                        c.skip_ws();
                        if c.peek() == Some(b'"') {
                            Some(c.quoted()?)
                        } else {
                            let v = c.take_while(is_value_char);
                            if v.is_empty() {
                                return Err(HeaderError::Expected {
                                    what: "parameter value",
                                    at: c.pos,
                                }
                                .into());
                            }
                            Some(String::from_utf8_lossy(v).into_owned())
                        }
                    } else {
                        None
                    };
                    params.push(MechParam {
                        name: pname,
                        value: pvalue,
                    });
                }
                Some(b',') | None => break,
                Some(_) => {
                    return Err(HeaderError::Expected {
                        what: "';' or ','",
                        at: c.pos,
                    }
                    .into());
                }
            }
        }
        out.push(SecurityMechanism { name, params });
        match c.peek() {
            Some(b',') => c.pos += 1,
            _ => return Ok(()),
        }
    }
}

/// IPsec protocol (`prot`). Only ESP is used in IMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpsecProtocol {
    /// Encapsulating Security Payload (RFC 4303). The default when `prot` is absent.
    Esp,
    /// Authentication Header; syntactically allowed by Annex H, never chosen here.
    Ah,
}

/// IPsec mode (`mod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpsecMode {
    /// Transport mode, the default when `mod` is absent.
    Transport,
    /// Tunnel mode.
    Tunnel,
    /// UDP-encapsulated tunnel mode for NAT traversal (TS 33.203 Annex M).
    UdpEncapTunnel,
}

impl IpsecMode {
    fn token(self) -> &'static str {
        match self {
            Self::Transport => "trans",
            Self::Tunnel => "tun",
            Self::UdpEncapTunnel => "UDP-enc-tun",
        }
    }
}

/// A preference value (`q`), in thousandths: `q=0.1` is 100 (RFC 3329 §2.2, RFC 3261 qvalue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QValue(u16);

impl QValue {
    /// From thousandths, at most 1000.
    pub fn from_thousandths(v: u16) -> Option<Self> {
        (v <= 1000).then_some(Self(v))
    }

    /// The value in thousandths.
    pub fn thousandths(self) -> u16 {
        self.0
    }

    fn parse(s: &str) -> Option<Self> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let whole: u16 = match int {
            "0" => 0,
            "1" => 1000,
            _ => return None,
        };
        let mut f = 0u16;
        for (i, b) in frac.bytes().enumerate() {
            f += u16::from(b - b'0') * [100, 10, 1][i];
        }
        Self::from_thousandths(whole + f)
    }
}

impl fmt::Display for QValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1000 {
            return f.write_str("1");
        }
        let s = format!("0.{:03}", self.0);
        f.write_str(s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// The typed view of one `ipsec-3gpp` mechanism (TS 33.203 Annex H), with defaults applied:
/// absent `prot` is ESP, absent `mod` is transport, absent `ealg` is `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpsecMechanism {
    /// Preference (`q`), if present.
    pub q: Option<QValue>,
    /// Integrity and encryption algorithms (`alg`, `ealg`).
    pub suite: CipherSuite,
    /// Protocol (`prot`).
    pub protocol: IpsecProtocol,
    /// Mode (`mod`).
    pub mode: IpsecMode,
    /// `spi-c`: the SPI of the sender's inbound SA at its protected client port.
    pub spi_c: Spi,
    /// `spi-s`: the SPI of the sender's inbound SA at its protected server port.
    pub spi_s: Spi,
    /// `port-c`: the sender's protected client port.
    pub port_c: u16,
    /// `port-s`: the sender's protected server port.
    pub port_s: u16,
}

/// Why one mechanism cannot be used as an `ipsec-3gpp` offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The mechanism is not `ipsec-3gpp` (for example `digest` or `tls`).
    #[error("mechanism {0:?} is not ipsec-3gpp")]
    OtherMechanism(String),
    /// A mandatory parameter is missing (`alg`, `spi-c`, `spi-s`, `port-c`, `port-s`).
    #[error("missing parameter {0}")]
    MissingParam(&'static str),
    /// A parameter value is malformed (not a number, out of range...).
    #[error("bad value {value:?} for {param}")]
    BadValue {
        /// The parameter name.
        param: &'static str,
        /// The received value.
        value: String,
    },
    /// An `alg` this implementation does not support (for example `aes-gmac`).
    #[error("unsupported alg {0:?}")]
    UnsupportedAlg(String),
    /// An `ealg` this implementation does not support (for example `aes-gcm`).
    #[error("unsupported ealg {0:?}")]
    UnsupportedEalg(String),
    /// `prot` other than `esp`.
    #[error("unsupported prot {0:?}")]
    UnsupportedProtocol(String),
    /// `mod` other than `trans`.
    #[error("unsupported mod {0:?}")]
    UnsupportedMode(String),
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

fn number<T: std::str::FromStr>(
    m: &SecurityMechanism,
    param: &'static str,
) -> Result<T, OfferError> {
    let v = m.param(param).ok_or(OfferError::MissingParam(param))?;
    let t = unquote(v);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OfferError::BadValue {
            param,
            value: v.to_owned(),
        });
    }
    t.parse().map_err(|_| OfferError::BadValue {
        param,
        value: v.to_owned(),
    })
}

impl IpsecMechanism {
    /// The typed view of `m`; fails for other mechanisms and for values this implementation does
    /// not support (transport-mode ESP with the Annex H legacy algorithms only).
    pub fn from_mechanism(m: &SecurityMechanism) -> Result<Self, OfferError> {
        if !m.is_ipsec_3gpp() {
            return Err(OfferError::OtherMechanism(m.name.clone()));
        }
        let alg = m.param("alg").ok_or(OfferError::MissingParam("alg"))?;
        let integrity = unquote(alg)
            .parse::<IntegrityAlg>()
            .map_err(|_| OfferError::UnsupportedAlg(alg.to_owned()))?;
        let encryption = match m.param("ealg") {
            None => EncryptionAlg::Null,
            Some(e) => unquote(e)
                .parse::<EncryptionAlg>()
                .map_err(|_| OfferError::UnsupportedEalg(e.to_owned()))?,
        };
        let protocol = match m.param("prot").map(unquote) {
            None => IpsecProtocol::Esp,
            Some(p) if p.eq_ignore_ascii_case("esp") => IpsecProtocol::Esp,
            Some(p) if p.eq_ignore_ascii_case("ah") => IpsecProtocol::Ah,
            Some(p) => return Err(OfferError::UnsupportedProtocol(p.to_owned())),
        };
        let mode = match m.param("mod").map(unquote) {
            None => IpsecMode::Transport,
            Some(p) if p.eq_ignore_ascii_case("trans") => IpsecMode::Transport,
            Some(p) if p.eq_ignore_ascii_case("tun") => IpsecMode::Tunnel,
            Some(p) if p.eq_ignore_ascii_case("UDP-enc-tun") => IpsecMode::UdpEncapTunnel,
            Some(p) => return Err(OfferError::UnsupportedMode(p.to_owned())),
        };
        let q = match m.param("q") {
            None => None,
            Some(v) => Some(
                QValue::parse(unquote(v)).ok_or_else(|| OfferError::BadValue {
                    param: "q",
                    value: v.to_owned(),
                })?,
            ),
        };
        Ok(Self {
            q,
            suite: CipherSuite::new(integrity, encryption),
            protocol,
            mode,
            spi_c: Spi(number::<u32>(m, "spi-c")?),
            spi_s: Spi(number::<u32>(m, "spi-s")?),
            port_c: number::<u16>(m, "port-c")?,
            port_s: number::<u16>(m, "port-s")?,
        })
    }

    /// True when this offer can be used here: ESP in transport mode.
    pub fn is_usable(&self) -> bool {
        self.protocol == IpsecProtocol::Esp && self.mode == IpsecMode::Transport
    }

    /// The header form, parameters in the order Kamailio's P-CSCF prints them:
    /// `ipsec-3gpp;q=..;prot=esp;mod=trans;spi-c=..;spi-s=..;port-c=..;port-s=..;alg=..;ealg=..`.
    pub fn to_mechanism(&self) -> SecurityMechanism {
        let mut params = Vec::with_capacity(10);
        if let Some(q) = self.q {
            params.push(MechParam::new("q", q.to_string()));
        }
        params.push(MechParam::new(
            "prot",
            match self.protocol {
                IpsecProtocol::Esp => "esp",
                IpsecProtocol::Ah => "ah",
            },
        ));
        params.push(MechParam::new("mod", self.mode.token()));
        params.push(MechParam::new("spi-c", self.spi_c.0.to_string()));
        params.push(MechParam::new("spi-s", self.spi_s.0.to_string()));
        params.push(MechParam::new("port-c", self.port_c.to_string()));
        params.push(MechParam::new("port-s", self.port_s.to_string()));
        params.push(MechParam::new("alg", self.suite.integrity.token()));
        params.push(MechParam::new("ealg", self.suite.encryption.token()));
        SecurityMechanism {
            name: IPSEC_3GPP.to_owned(),
            params,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;prot=esp;mod=trans;spi-c=1111111;spi-s=2222222;port-c=5062;port-s=5064";

    #[test]
    fn security_client_from_vectors_parses_into_typed_offer() {
        let m = parse_value(CLIENT).unwrap();
        assert_eq!(m.len(), 1);
        let t = IpsecMechanism::from_mechanism(&m[0]).unwrap();
        assert_eq!(
            t.suite,
            CipherSuite::new(IntegrityAlg::HmacSha1_96, EncryptionAlg::AesCbc)
        );
        assert_eq!(
            (t.spi_c, t.spi_s, t.port_c, t.port_s),
            (Spi(1111111), Spi(2222222), 5062, 5064)
        );
        assert!(t.is_usable());
    }

    #[test]
    fn printing_keeps_unknown_mechanisms_and_params_in_order() {
        let v = "digest;d-alg=md5;d-qop=auth-int, ipsec-3gpp;alg=hmac-md5-96;x-vendor=\"a, b;c\";flag;spi-c=1;spi-s=2;port-c=3;port-s=4";
        let m = parse_value(v).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(print_list(&m), v);
        assert_eq!(m[1].param("X-VENDOR"), Some("\"a, b;c\""));
        assert_eq!(
            m[1].params[2],
            MechParam {
                name: "flag".into(),
                value: None
            }
        );
    }

    #[test]
    fn whitespace_around_separators_is_accepted() {
        let m =
            parse_value(" ipsec-3gpp ; alg = hmac-md5-96 ;spi-c=1;spi-s=2;port-c=3;port-s=4 ,tls ")
                .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].param("alg"), Some("hmac-md5-96"));
        assert_eq!(m[1].name, "tls");
    }

    #[test]
    fn absent_ealg_prot_and_mod_take_annex_h_defaults() {
        let m =
            parse_value("ipsec-3gpp;alg=hmac-md5-96;spi-c=1;spi-s=2;port-c=3;port-s=4").unwrap();
        let t = IpsecMechanism::from_mechanism(&m[0]).unwrap();
        assert_eq!(t.suite.encryption, EncryptionAlg::Null);
        assert_eq!(
            (t.protocol, t.mode),
            (IpsecProtocol::Esp, IpsecMode::Transport)
        );
    }

    #[test]
    fn malformed_values_are_rejected_with_a_position() {
        assert!(matches!(
            parse_value(""),
            Err(Error::Header(HeaderError::Empty))
        ));
        assert!(matches!(
            parse_value("ipsec-3gpp;alg="),
            Err(Error::Header(HeaderError::Expected {
                what: "parameter value",
                ..
            }))
        ));
        assert!(matches!(
            parse_value("ipsec-3gpp;x=\"open"),
            Err(Error::Header(HeaderError::UnterminatedQuote { at: 13 }))
        ));
        assert!(matches!(
            parse_value("ipsec-3gpp alg"),
            Err(Error::Header(HeaderError::Expected { .. }))
        ));
        assert!(parse_value("a,").is_err());
        let long = "a;".repeat(MAX_PARAMS + 1) + "b";
        assert!(matches!(
            parse_value(&format!("m;{long}")),
            Err(Error::Header(HeaderError::TooManyParams { .. }))
        ));
    }

    #[test]
    fn typed_view_rejects_unsupported_and_malformed_offers() {
        let check = |v: &str| IpsecMechanism::from_mechanism(&parse_value(v).unwrap()[0]);
        assert_eq!(
            check("ipsec-3gpp;alg=aes-gmac;spi-c=1;spi-s=2;port-c=3;port-s=4"),
            Err(OfferError::UnsupportedAlg("aes-gmac".into()))
        );
        assert_eq!(
            check("ipsec-3gpp;alg=hmac-md5-96;ealg=aes-gcm;spi-c=1;spi-s=2;port-c=3;port-s=4"),
            Err(OfferError::UnsupportedEalg("aes-gcm".into()))
        );
        assert_eq!(
            check("ipsec-3gpp;alg=hmac-md5-96;spi-c=1;port-c=3;port-s=4"),
            Err(OfferError::MissingParam("spi-s"))
        );
        assert_eq!(
            check("ipsec-3gpp;alg=hmac-md5-96;spi-c=4294967296;spi-s=2;port-c=3;port-s=4"),
            Err(OfferError::BadValue {
                param: "spi-c",
                value: "4294967296".into()
            })
        );
        assert_eq!(
            check("ipsec-3gpp;alg=hmac-md5-96;spi-c=1;spi-s=2;port-c=-3;port-s=4"),
            Err(OfferError::BadValue {
                param: "port-c",
                value: "-3".into()
            })
        );
        assert_eq!(
            check("digest;d-alg=md5"),
            Err(OfferError::OtherMechanism("digest".into()))
        );
        let tun =
            check("ipsec-3gpp;alg=hmac-md5-96;mod=tun;spi-c=1;spi-s=2;port-c=3;port-s=4").unwrap();
        assert!(!tun.is_usable());
    }

    #[test]
    fn qvalues_parse_and_print_in_rfc_3261_form() {
        for (text, th, printed) in [
            ("0.1", 100, "0.1"),
            ("1", 1000, "1"),
            ("0.125", 125, "0.125"),
            ("0", 0, "0"),
            ("1.000", 1000, "1"),
        ] {
            let q = QValue::parse(text).unwrap();
            assert_eq!(q.thousandths(), th);
            assert_eq!(q.to_string(), printed);
        }
        assert!(QValue::parse("1.5").is_none());
        assert!(QValue::parse("0.1234").is_none());
        assert!(QValue::parse("2").is_none());
    }

    #[test]
    fn typed_mechanism_prints_and_reparses_identically() {
        let m = parse_value(CLIENT).unwrap();
        let mut t = IpsecMechanism::from_mechanism(&m[0]).unwrap();
        t.q = QValue::from_thousandths(100);
        let printed = t.to_mechanism().to_string();
        assert_eq!(
            printed,
            "ipsec-3gpp;q=0.1;prot=esp;mod=trans;spi-c=1111111;spi-s=2222222;port-c=5062;port-s=5064;alg=hmac-sha-1-96;ealg=aes-cbc"
        );
        let again = IpsecMechanism::from_mechanism(&parse_value(&printed).unwrap()[0]).unwrap();
        assert_eq!(again, t);
    }
}
