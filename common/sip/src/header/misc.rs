//! The smaller typed headers: Call-ID, CSeq, option tags, Allow, Accept/Content-Type, Event,
//! Subscription-State, Session-Expires, and the IMS P-headers (RFC 7315, RFC 7913).

use std::borrow::Cow;
use std::fmt;

use super::{TypedHeader, delta_seconds, end, value_with_params};
use crate::params::ValueChars;
use crate::scan::{self, Cursor};
use crate::{Error, Method, Params};

/// Call-ID (RFC 3261 §20.8): `word ["@" word]`, compared byte-exact.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallId<'a>(pub Cow<'a, str>);

impl CallId<'_> {
    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> CallId<'static> {
        CallId(Cow::Owned(self.0.into_owned()))
    }
}

impl<'a> TypedHeader<'a> for CallId<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let v = scan::trim_str(value);
        if v.is_empty() || v.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Error::InvalidHeader { header, at: 0 });
        }
        Ok(Self(Cow::Borrowed(v)))
    }
}

impl fmt::Display for CallId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// CSeq (RFC 3261 §20.16): a sequence number below 2³¹ and the method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CSeq {
    /// The sequence number.
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl TypedHeader<'_> for CSeq {
    fn parse_value(value: &str, header: &'static str) -> Result<Self, Error> {
        let mut cur = Cursor::new(value);
        cur.skip_ws();
        let digits = cur.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return Err(Error::InvalidHeader {
                header,
                at: cur.pos(),
            });
        }
        let seq = scan::parse_u64(digits.as_bytes())
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n < 1 << 31)
            .ok_or(Error::OutOfRange { header })?;
        let method = cur
            .token()
            .and_then(|t| Method::from_token(t.as_bytes()))
            .ok_or_else(|| Error::InvalidHeader {
                header,
                at: cur.pos(),
            })?;
        end(&mut cur, header)?;
        Ok(Self { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// An option tag in Require, Proxy-Require, Supported or Unsupported (RFC 3261 §19.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OptionTag<'a>(pub Cow<'a, str>);

impl OptionTag<'_> {
    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'a> TypedHeader<'a> for OptionTag<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let v = scan::trim_str(value);
        if v.is_empty() || !v.bytes().all(scan::is_token) {
            return Err(Error::InvalidHeader { header, at: 0 });
        }
        Ok(Self(Cow::Borrowed(v)))
    }
}

impl fmt::Display for OptionTag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Allow lists methods.
impl TypedHeader<'_> for Method {
    fn parse_value(value: &str, header: &'static str) -> Result<Self, Error> {
        Self::from_token(scan::trim_str(value).as_bytes())
            .ok_or(Error::InvalidHeader { header, at: 0 })
    }
}

/// A media type in Content-Type or a media range in Accept (RFC 3261 §20.1, §20.15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// `application`, `multipart`, `*`...
    pub top: Cow<'a, str>,
    /// `sdp`, `mixed`, `*`...
    pub sub: Cow<'a, str>,
    /// Parameters (`boundary`, `charset`, `q`...).
    pub params: Params<'a>,
}

impl MediaType<'_> {
    /// Whether type and subtype equal these (case-insensitive).
    pub fn is(&self, top: &str, sub: &str) -> bool {
        self.top.eq_ignore_ascii_case(top) && self.sub.eq_ignore_ascii_case(sub)
    }
}

impl<'a> TypedHeader<'a> for MediaType<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let mut cur = Cursor::new(value);
        let err = |c: &Cursor<'_>| Error::InvalidHeader {
            header,
            at: c.pos(),
        };
        let top = cur.token().ok_or_else(|| err(&cur))?;
        if !cur.eat(b'/') {
            return Err(err(&cur));
        }
        let sub = cur.token().ok_or_else(|| err(&cur))?;
        let params = Params::parse(&mut cur, ValueChars::Header, header)?;
        end(&mut cur, header)?;
        Ok(Self {
            top: Cow::Borrowed(top),
            sub: Cow::Borrowed(sub),
            params,
        })
    }
}

impl fmt::Display for MediaType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.top, self.sub, self.params)
    }
}

/// Event (RFC 6665 §8.2.1): a package such as `reg` or `presence` and parameters (`id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// The event package (with template suffixes, e.g. `presence.winfo`).
    pub package: Cow<'a, str>,
    /// Parameters.
    pub params: Params<'a>,
}

impl Event<'_> {
    /// The `id` parameter.
    pub fn id(&self) -> Option<&str> {
        self.params.value("id")
    }
}

impl<'a> TypedHeader<'a> for Event<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let (package, params) = value_with_params(value, header, scan::is_token)?;
        Ok(Self { package, params })
    }
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.package, self.params)
    }
}

/// Subscription-State (RFC 6665 §8.2.3): `active`, `pending` or `terminated` with `expires`,
/// `reason` and `retry-after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionState<'a> {
    /// The state.
    pub state: Cow<'a, str>,
    /// Parameters.
    pub params: Params<'a>,
}

impl SubscriptionState<'_> {
    /// The `expires` parameter.
    pub fn expires(&self) -> Result<Option<u32>, Error> {
        self.params
            .value("expires")
            .map(|v| delta_seconds(v.as_bytes(), "Subscription-State"))
            .transpose()
    }
    /// The `reason` parameter.
    pub fn reason(&self) -> Option<&str> {
        self.params.value("reason")
    }
    /// The `retry-after` parameter.
    pub fn retry_after(&self) -> Result<Option<u32>, Error> {
        self.params
            .value("retry-after")
            .map(|v| delta_seconds(v.as_bytes(), "Subscription-State"))
            .transpose()
    }
}

impl<'a> TypedHeader<'a> for SubscriptionState<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let (state, params) = value_with_params(value, header, scan::is_token)?;
        Ok(Self { state, params })
    }
}

impl fmt::Display for SubscriptionState<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.state, self.params)
    }
}

/// Session-Expires (RFC 4028 §4): the interval and `refresher=uac|uas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionExpires<'a> {
    /// Seconds.
    pub delta: u32,
    /// Parameters.
    pub params: Params<'a>,
}

impl SessionExpires<'_> {
    /// The `refresher` parameter.
    pub fn refresher(&self) -> Option<&str> {
        self.params.value("refresher")
    }
}

impl<'a> TypedHeader<'a> for SessionExpires<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let (v, params) = value_with_params(value, header, |b| b.is_ascii_digit())?;
        Ok(Self {
            delta: delta_seconds(v.as_bytes(), header)?,
            params,
        })
    }
}

impl fmt::Display for SessionExpires<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.delta, self.params)
    }
}

/// P-Visited-Network-ID (RFC 7315 §4.3): a token or quoted string naming the visited network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PVisitedNetworkId<'a> {
    /// The network identifier (quoted-string content with escapes kept, or the token).
    pub value: Cow<'a, str>,
    /// Whether it was a quoted string.
    pub quoted: bool,
    /// Parameters.
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for PVisitedNetworkId<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let mut cur = Cursor::new(value);
        cur.skip_ws();
        let (v, quoted) = if cur.peek() == Some(b'"') {
            (
                cur.quoted().ok_or_else(|| Error::InvalidHeader {
                    header,
                    at: cur.pos(),
                })?,
                true,
            )
        } else {
            (
                cur.token().ok_or_else(|| Error::InvalidHeader {
                    header,
                    at: cur.pos(),
                })?,
                false,
            )
        };
        let params = Params::parse(&mut cur, ValueChars::Header, header)?;
        end(&mut cur, header)?;
        Ok(Self {
            value: Cow::Borrowed(v),
            quoted,
            params,
        })
    }
}

impl fmt::Display for PVisitedNetworkId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quoted {
            write!(f, "\"{}\"{}", self.value, self.params)
        } else {
            write!(f, "{}{}", self.value, self.params)
        }
    }
}

/// P-Access-Network-Info (RFC 7315 §4.4, RFC 7913): the access type, e.g. `3GPP-E-UTRAN-FDD`,
/// and parameters such as `utran-cell-id-3gpp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PAccessNetworkInfo<'a> {
    /// The access type.
    pub access_type: Cow<'a, str>,
    /// The access-info parameters.
    pub params: Params<'a>,
}

impl PAccessNetworkInfo<'_> {
    /// The cell identity: `utran-cell-id-3gpp`, `cgi-3gpp` or `ci-3gpp2`, whichever is present.
    pub fn cell_id(&self) -> Option<&str> {
        [
            "utran-cell-id-3gpp",
            "cgi-3gpp",
            "ci-3gpp2",
            "ci-3gpp2-femto",
        ]
        .iter()
        .find_map(|n| self.params.value(n))
    }

    /// Whether the `network-provided` flag is present (RFC 7913).
    pub fn network_provided(&self) -> bool {
        self.params.contains("network-provided")
    }
}

impl<'a> TypedHeader<'a> for PAccessNetworkInfo<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let (access_type, params) = value_with_params(value, header, scan::is_token)?;
        Ok(Self {
            access_type,
            params,
        })
    }
}

impl fmt::Display for PAccessNetworkInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access_type, self.params)
    }
}

/// P-Charging-Vector (RFC 7315 §4.6): `icid-value` and the IOIs, all as parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PChargingVector<'a> {
    /// All parameters, `icid-value` first.
    pub params: Params<'a>,
}

impl PChargingVector<'_> {
    /// `icid-value`.
    pub fn icid_value(&self) -> Option<&str> {
        self.params.value("icid-value")
    }
    /// `icid-generated-at`.
    pub fn icid_generated_at(&self) -> Option<&str> {
        self.params.value("icid-generated-at")
    }
    /// `orig-ioi`.
    pub fn orig_ioi(&self) -> Option<&str> {
        self.params.value("orig-ioi")
    }
    /// `term-ioi`.
    pub fn term_ioi(&self) -> Option<&str> {
        self.params.value("term-ioi")
    }
}

impl<'a> TypedHeader<'a> for PChargingVector<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let mut cur = Cursor::new(value);
        cur.skip_ws();
        // The grammar is `icid-value *(SEMI charge-params)`: parse it as a parameter list whose
        // first separator is implicit.
        let start = cur.pos();
        let name = cur
            .token()
            .ok_or(Error::InvalidHeader { header, at: start })?;
        if !name.eq_ignore_ascii_case("icid-value") {
            return Err(Error::InvalidHeader { header, at: start });
        }
        cur.set_pos(start);
        let mut shifted = String::with_capacity(value.len() + 1);
        shifted.push(';');
        shifted.push_str(cur.rest());
        let mut c2 = Cursor::new(shifted.as_str());
        let parsed = Params::parse(&mut c2, ValueChars::Header, header)?;
        end(&mut c2, header)?;
        Ok(Self {
            params: parsed.into_owned(),
        })
    }
}

impl fmt::Display for PChargingVector<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// A q-value (RFC 3261 §20.10): 0 to 1 with up to three decimals, stored in thousandths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QValue(u16);

impl QValue {
    /// From thousandths, capped at 1000.
    pub fn from_thousandths(v: u16) -> Self {
        Self(v.min(1000))
    }

    /// Thousandths.
    pub fn thousandths(self) -> u16 {
        self.0
    }

    /// Parses `0[.ddd]` or `1[.000]`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = Error::InvalidHeader { header: "q", at: 0 };
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad);
        }
        let mut thousandths: u16 = 0;
        for (i, b) in frac.bytes().enumerate() {
            thousandths += u16::from(b - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
        }
        match int {
            "0" => Ok(Self(thousandths)),
            "1" if thousandths == 0 => Ok(Self(1000)),
            _ => Err(bad),
        }
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
