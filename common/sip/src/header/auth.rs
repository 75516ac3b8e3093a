//! Authorization, Proxy-Authorization, WWW-Authenticate and Proxy-Authenticate (RFC 3261 §25.1,
//! RFC 2617, RFC 3310 AKA, TS 24.229 §7.2A: `ck`, `ik`, `integrity-protected`, `auts`).

use std::borrow::Cow;
use std::fmt;

use super::TypedHeader;
use crate::Error;
use crate::scan::{self, Cursor};

/// A digest `algorithm` value: an open set.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// `MD5` (RFC 2617), the default when absent.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `AKAv1-MD5` (RFC 3310), IMS AKA.
    AkaV1Md5,
    /// `AKAv2-MD5` (RFC 4169).
    AkaV2Md5,
    /// Anything else, as written.
    Other(Box<str>),
}

impl Algorithm {
    /// Parses an algorithm token, case-insensitively.
    pub fn from_token(s: &str) -> Self {
        if s.eq_ignore_ascii_case("MD5") {
            Self::Md5
        } else if s.eq_ignore_ascii_case("MD5-sess") {
            Self::Md5Sess
        } else if s.eq_ignore_ascii_case("AKAv1-MD5") {
            Self::AkaV1Md5
        } else if s.eq_ignore_ascii_case("AKAv2-MD5") {
            Self::AkaV2Md5
        } else {
            Self::Other(s.into())
        }
    }

    /// The token as sent.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::AkaV1Md5 => "AKAv1-MD5",
            Self::AkaV2Md5 => "AKAv2-MD5",
            Self::Other(s) => s,
        }
    }

    /// Whether this is an AKA algorithm.
    pub fn is_aka(&self) -> bool {
        matches!(self, Self::AkaV1Md5 | Self::AkaV2Md5)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `name=value` auth parameter. Quoting is remembered so the value prints back as received;
/// an empty quoted value (`response=""`, sent in every first IMS REGISTER) is a value.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthParam<'a> {
    /// The name as written.
    pub name: Cow<'a, str>,
    /// The value; for a quoted string, the text between the quotes with escapes kept.
    pub value: Cow<'a, str>,
    /// Whether the value is a quoted string.
    pub quoted: bool,
}

impl AuthParam<'_> {
    /// Whether the value is secret key material (`ck`, `ik`) that must not be logged.
    pub fn is_secret(&self) -> bool {
        self.name.eq_ignore_ascii_case("ck") || self.name.eq_ignore_ascii_case("ik")
    }
}

impl fmt::Debug for AuthParam<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_secret() {
            write!(f, "{}=(..)", self.name)
        } else {
            write!(f, "{self}")
        }
    }
}

impl fmt::Display for AuthParam<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quoted {
            write!(f, "{}=\"{}\"", self.name, self.value)
        } else {
            write!(f, "{}={}", self.name, self.value)
        }
    }
}

/// A challenge (WWW-Authenticate, Proxy-Authenticate) or credentials (Authorization,
/// Proxy-Authorization): a scheme and its parameters, all kept in order, unknown ones included.
///
/// `Debug` hides the values of `ck` and `ik`; `Display` prints everything, for the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth<'a> {
    /// The scheme, usually `Digest`.
    pub scheme: Cow<'a, str>,
    /// The parameters in order.
    pub params: Vec<AuthParam<'a>>,
}

/// Parameters whose values are tokens in RFC 2617 / RFC 3310 and are printed unquoted by
/// [`Auth::set`]; everything else is quoted. `qop` is quoted in challenges and a token in
/// credentials, so use [`Auth::set_token`] or [`Auth::set_quoted`] for it explicitly.
const TOKEN_PARAMS: &[&str] = &["algorithm", "stale", "nc"];

impl<'a> Auth<'a> {
    /// An empty `Digest` header to fill with [`Auth::set`].
    pub fn digest() -> Self {
        Self {
            scheme: Cow::Borrowed("Digest"),
            params: Vec::new(),
        }
    }

    /// Whether the scheme is Digest.
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// The value of a parameter (name compared case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| &*p.value)
    }

    /// Sets a parameter, quoting it unless it is one of `algorithm`, `stale`, `nc`.
    pub fn set(&mut self, name: &'a str, value: impl Into<Cow<'a, str>>) {
        let quoted = !TOKEN_PARAMS.iter().any(|t| t.eq_ignore_ascii_case(name));
        self.put(name, value.into(), quoted);
    }

    /// Sets a parameter printed as a quoted string.
    pub fn set_quoted(&mut self, name: &'a str, value: impl Into<Cow<'a, str>>) {
        self.put(name, value.into(), true);
    }

    /// Sets a parameter printed as a bare token.
    pub fn set_token(&mut self, name: &'a str, value: impl Into<Cow<'a, str>>) {
        self.put(name, value.into(), false);
    }

    fn put(&mut self, name: &'a str, value: Cow<'a, str>, quoted: bool) {
        let p = AuthParam {
            name: Cow::Borrowed(name),
            value,
            quoted,
        };
        match self
            .params
            .iter_mut()
            .find(|q| q.name.eq_ignore_ascii_case(name))
        {
            Some(slot) => *slot = p,
            None => self.params.push(p),
        }
    }

    /// Removes a parameter; returns whether it was present.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.params.len();
        self.params.retain(|p| !p.name.eq_ignore_ascii_case(name));
        before != self.params.len()
    }

    /// `username`.
    pub fn username(&self) -> Option<&str> {
        self.get("username")
    }
    /// `realm`.
    pub fn realm(&self) -> Option<&str> {
        self.get("realm")
    }
    /// `nonce` (for AKA: base64 of RAND‖AUTN‖server data, RFC 3310 §3.2).
    pub fn nonce(&self) -> Option<&str> {
        self.get("nonce")
    }
    /// `uri` (digest-uri).
    pub fn uri(&self) -> Option<&str> {
        self.get("uri")
    }
    /// `response`; `Some("")` for the empty response of an initial IMS REGISTER.
    pub fn response(&self) -> Option<&str> {
        self.get("response")
    }
    /// `cnonce`.
    pub fn cnonce(&self) -> Option<&str> {
        self.get("cnonce")
    }
    /// `opaque`.
    pub fn opaque(&self) -> Option<&str> {
        self.get("opaque")
    }
    /// `qop` (a token in credentials, a quoted list in challenges).
    pub fn qop(&self) -> Option<&str> {
        self.get("qop")
    }
    /// `domain`.
    pub fn domain(&self) -> Option<&str> {
        self.get("domain")
    }
    /// `auts`: the resynchronisation token (RFC 3310 §3.4), base64.
    pub fn auts(&self) -> Option<&str> {
        self.get("auts")
    }
    /// `ck`: cipher key, hex, S-CSCF to P-CSCF only (TS 24.229 §7.2A.1). A secret.
    pub fn ck(&self) -> Option<&str> {
        self.get("ck")
    }
    /// `ik`: integrity key, hex (TS 24.229 §7.2A.1). A secret.
    pub fn ik(&self) -> Option<&str> {
        self.get("ik")
    }
    /// `integrity-protected` (TS 24.229 §7.2A.2): `yes`, `no`, `tls-pending`, `tls-yes`,
    /// `ip-assoc-pending`, `ip-assoc-yes`, `auth-done`.
    pub fn integrity_protected(&self) -> Option<&str> {
        self.get("integrity-protected")
    }

    /// `algorithm`; absent means MD5 (RFC 2617 §3.2.1).
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.get("algorithm").map(Algorithm::from_token)
    }

    /// `stale=true` (case-insensitive).
    pub fn stale(&self) -> bool {
        self.get("stale")
            .is_some_and(|s| s.eq_ignore_ascii_case("true"))
    }

    /// `nc`: the nonce count, 8 hex digits (RFC 2617 §3.2.2).
    pub fn nc(&self) -> Result<Option<u32>, Error> {
        self.get("nc")
            .map(|v| {
                if v.len() == 8 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    u32::from_str_radix(v, 16).map_err(|_| Error::InvalidHeader {
                        header: "Authorization",
                        at: 0,
                    })
                } else {
                    Err(Error::InvalidHeader {
                        header: "Authorization",
                        at: 0,
                    })
                }
            })
            .transpose()
    }

    /// Sets `nc` as 8 lower-case hex digits.
    pub fn set_nc(&mut self, nc: u32) {
        self.put("nc", Cow::Owned(format!("{nc:08x}")), false);
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> Auth<'static> {
        Auth {
            scheme: Cow::Owned(self.scheme.into_owned()),
            params: self
                .params
                .into_iter()
                .map(|p| AuthParam {
                    name: Cow::Owned(p.name.into_owned()),
                    value: Cow::Owned(p.value.into_owned()),
                    quoted: p.quoted,
                })
                .collect(),
        }
    }
}

impl<'a> TypedHeader<'a> for Auth<'a> {
    /// `auth-scheme LWS auth-param *(COMMA auth-param)`; an empty parameter list is accepted.
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let mut cur = Cursor::new(value);
        let err = |c: &Cursor<'_>| Error::InvalidHeader {
            header,
            at: c.pos(),
        };
        let scheme = cur.token().ok_or_else(|| err(&cur))?;
        let mut params =
            Vec::with_capacity(memchr::memchr_iter(b',', cur.rest().as_bytes()).count() + 1);
        cur.skip_ws();
        while !cur.is_empty() {
            if !params.is_empty() && !cur.eat(b',') {
                return Err(err(&cur));
            }
            let name = cur.token().ok_or_else(|| err(&cur))?;
            if !cur.eat(b'=') {
                return Err(err(&cur));
            }
            cur.skip_ws();
            let (v, quoted) = if cur.peek() == Some(b'"') {
                (cur.quoted().ok_or_else(|| err(&cur))?, true)
            } else {
                let v = cur.take_while(|b| !scan::is_lws(b) && b != b',' && b != b'"');
                if v.is_empty() {
                    return Err(err(&cur));
                }
                (v, false)
            };
            params.push(AuthParam {
                name: Cow::Borrowed(name),
                value: Cow::Borrowed(v),
                quoted,
            });
            cur.skip_ws();
        }
        Ok(Self {
            scheme: Cow::Borrowed(scheme),
            params,
        })
    }
}

impl fmt::Display for Auth<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        for (i, p) in self.params.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { ", " })?;
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Auth<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("scheme", &self.scheme)
            .field("params", &self.params)
            .finish()
    }
}
