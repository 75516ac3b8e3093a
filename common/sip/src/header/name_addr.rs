//! `name-addr / addr-spec` values: From, To, Route, Record-Route, Path, Service-Route,
//! P-Asserted-Identity, P-Preferred-Identity, P-Associated-URI, P-Called-Party-ID and Contact.

use std::borrow::Cow;
use std::fmt;

use super::{QValue, TypedHeader, delta_seconds, end};
use crate::params::ValueChars;
use crate::scan::{self, Cursor};
use crate::{Error, Params, Uri};

/// An address with optional display name and header parameters (RFC 3261 §20.10, §25.1).
///
/// In the `addr-spec` form (no angle brackets) every `;` parameter belongs to the header, not the
/// URI, and the URI may not contain `?` (RFC 4475 §3.1.2.13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written: quoted-string content with escapes kept, or the tokens.
    pub display_name: Option<Cow<'a, str>>,
    /// Whether the display name is a quoted string.
    pub display_quoted: bool,
    /// The URI.
    pub uri: Uri<'a>,
    /// Header parameters (`tag`, `expires`, `q`, `+sip.instance`, `lr` is a URI parameter).
    pub params: Params<'a>,
    /// Whether the URI was written in angle brackets; printing always uses them when there is
    /// a display name or parameters could be mistaken for URI parameters.
    pub bracketed: bool,
}

impl<'a> NameAddr<'a> {
    /// An address `<uri>` with no display name or parameters.
    pub fn new(uri: Uri<'a>) -> Self {
        Self {
            display_name: None,
            display_quoted: false,
            uri,
            params: Params::new(),
            bracketed: true,
        }
    }

    /// Sets a display name, quoting and escaping it.
    pub fn with_display_name(mut self, name: &str) -> Self {
        let escaped: String = name
            .chars()
            .flat_map(|c| {
                (matches!(c, '"' | '\\').then_some('\\'))
                    .into_iter()
                    .chain([c])
            })
            .collect();
        self.display_name = Some(Cow::Owned(escaped));
        self.display_quoted = true;
        self
    }

    /// Parses one value; `header` names the header in errors.
    pub fn parse_header(s: &'a str, header: &'static str) -> Result<Self, Error> {
        let err = |at: usize| Error::InvalidHeader { header, at };
        let mut cur = Cursor::new(s);
        cur.skip_ws();
        let mut display_name = None;
        let mut display_quoted = false;
        let bracketed;
        let uri_text;
        if cur.peek() == Some(b'"') {
            display_name = Some(Cow::Borrowed(cur.quoted().ok_or_else(|| err(cur.pos()))?));
            display_quoted = true;
            cur.skip_ws();
            if !cur.eat_exact(b'<') {
                return Err(err(cur.pos()));
            }
            uri_text = angle_uri(&mut cur).ok_or_else(|| err(cur.pos()))?;
            bracketed = true;
        } else if let Some(lt) = cur.rest().find('<').filter(|&lt| {
            cur.rest()
                .get(..lt)
                .is_some_and(|d| !d.contains([';', '"']))
        }) {
            let display = scan::trim_str(cur.rest().get(..lt).unwrap_or_default());
            if !display
                .bytes()
                .all(|b| scan::is_token(b) || scan::is_lws(b))
            {
                return Err(err(cur.pos()));
            }
            if !display.is_empty() {
                display_name = Some(Cow::Borrowed(display));
            }
            cur.set_pos(cur.pos() + lt + 1);
            uri_text = angle_uri(&mut cur).ok_or_else(|| err(cur.pos()))?;
            bracketed = true;
        } else {
            uri_text = cur.take_while(|b| !scan::is_lws(b) && b != b';');
            if uri_text.contains(['?', ',', '>']) {
                return Err(err(cur.pos()));
            }
            bracketed = false;
        }
        let uri = Uri::parse(uri_text).map_err(|_| err(cur.pos()))?;
        let params = Params::parse(&mut cur, ValueChars::Header, header)?;
        end(&mut cur, header)?;
        Ok(Self {
            display_name,
            display_quoted,
            uri,
            params,
            bracketed,
        })
    }

    /// The `tag` parameter (From/To, RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    /// Sets the `tag` parameter.
    pub fn set_tag(&mut self, tag: impl Into<Cow<'a, str>>) {
        self.params.set("tag", Some(tag.into()));
    }

    /// The display name with quoted-pair escapes removed.
    pub fn display_name_unescaped(&self) -> Option<Cow<'_, str>> {
        let d = self.display_name.as_deref()?;
        if !self.display_quoted || !d.contains('\\') {
            return Some(Cow::Borrowed(d));
        }
        let mut out = String::with_capacity(d.len());
        let mut chars = d.chars();
        while let Some(c) = chars.next() {
            out.push(if c == '\\' {
                chars.next().unwrap_or('\\')
            } else {
                c
            });
        }
        Some(Cow::Owned(out))
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> NameAddr<'static> {
        NameAddr {
            display_name: self.display_name.map(|d| Cow::Owned(d.into_owned())),
            display_quoted: self.display_quoted,
            uri: self.uri.into_owned(),
            params: self.params.into_owned(),
            bracketed: self.bracketed,
        }
    }
}

/// The URI between `<` and `>`: no white space may follow `<` or precede `>` (RFC 4475 §3.1.2.14).
fn angle_uri<'a>(cur: &mut Cursor<'a>) -> Option<&'a str> {
    let uri = cur.take_while(|b| b != b'>' && !scan::is_lws(b));
    cur.eat_exact(b'>').then_some(uri).filter(|u| !u.is_empty())
}

impl<'a> TypedHeader<'a> for NameAddr<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        Self::parse_header(value, header)
    }
}

impl fmt::Display for NameAddr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.display_name, self.display_quoted) {
            (Some(d), true) => write!(f, "\"{d}\" ")?,
            (Some(d), false) => write!(f, "{d} ")?,
            (None, _) => {}
        }
        let brackets =
            self.bracketed || self.display_name.is_some() || uri_needs_brackets(&self.uri);
        if brackets {
            write!(f, "<{}>{}", self.uri, self.params)
        } else {
            write!(f, "{}{}", self.uri, self.params)
        }
    }
}

fn uri_needs_brackets(uri: &Uri<'_>) -> bool {
    match uri {
        Uri::Sip(u) => {
            !u.params.is_empty()
                || u.headers.is_some()
                || u.user
                    .as_deref()
                    .is_some_and(|s| s.contains([';', '?', ',']))
        }
        Uri::Tel(t) => !t.params.is_empty(),
        Uri::Other(_) => true,
    }
}

/// A Contact value (RFC 3261 §20.10): `*` or an address with its registration parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (remove all bindings, §10.2.2).
    Wildcard,
    /// An address.
    Addr(NameAddr<'a>),
}

/// RFC 3840 §9 base feature tags, which appear in Contact without the `+` prefix.
const BASE_FEATURE_TAGS: &[&str] = &[
    "audio",
    "automata",
    "class",
    "duplex",
    "data",
    "control",
    "mobility",
    "description",
    "events",
    "priority",
    "methods",
    "schemes",
    "application",
    "video",
    "language",
    "type",
    "isfocus",
    "actor",
    "text",
    "extensions",
];

impl<'a> Contact<'a> {
    /// The address, unless this is `*`.
    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Self::Addr(a) => Some(a),
            Self::Wildcard => None,
        }
    }

    fn params(&self) -> Option<&Params<'a>> {
        self.addr().map(|a| &a.params)
    }

    /// The `expires` parameter (RFC 3261 §10.2.1.1); `Err` when out of range (RFC 4475 §3.1.2.4).
    pub fn expires(&self) -> Result<Option<u32>, Error> {
        self.params()
            .and_then(|p| p.value("expires"))
            .map(|v| delta_seconds(v.as_bytes(), "Contact"))
            .transpose()
    }

    /// The `q` parameter.
    pub fn q(&self) -> Result<Option<QValue>, Error> {
        self.params()
            .and_then(|p| p.value("q"))
            .map(QValue::parse)
            .transpose()
    }

    /// The `+sip.instance` parameter without its quotes and angle brackets (RFC 5626 §4.1),
    /// e.g. `urn:gsma:imei:35876505-133788-0`.
    pub fn instance(&self) -> Option<&str> {
        let v = self.params()?.value("+sip.instance")?;
        Some(v.trim_start_matches('<').trim_end_matches('>'))
    }

    /// The `reg-id` parameter (RFC 5626 §4.2).
    pub fn reg_id(&self) -> Result<Option<u32>, Error> {
        self.params()
            .and_then(|p| p.value("reg-id"))
            .map(|v| delta_seconds(v.as_bytes(), "Contact"))
            .transpose()
    }

    /// The feature tags (RFC 3840): `+`-prefixed parameters and the base tags, such as
    /// `+g.3gpp.icsi-ref`, `+g.3gpp.smsip`, `video`.
    pub fn feature_tags(&self) -> impl Iterator<Item = &crate::Param<'a>> {
        self.params()
            .into_iter()
            .flat_map(Params::iter)
            .filter(|p| {
                (p.name().starts_with('+') && !p.name().eq_ignore_ascii_case("+sip.instance"))
                    || BASE_FEATURE_TAGS
                        .iter()
                        .any(|t| p.name().eq_ignore_ascii_case(t))
            })
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> Contact<'static> {
        match self {
            Self::Wildcard => Contact::Wildcard,
            Self::Addr(a) => Contact::Addr(a.into_owned()),
        }
    }
}

impl<'a> TypedHeader<'a> for Contact<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        if scan::trim_str(value) == "*" {
            return Ok(Self::Wildcard);
        }
        NameAddr::parse_header(value, header).map(Self::Addr)
    }
}

impl fmt::Display for Contact<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wildcard => f.write_str("*"),
            Self::Addr(a) => a.fmt(f),
        }
    }
}
