//! Parameter lists: `;name=value` after URIs and header values (RFC 3261 §7.3.1, §19.1.1).

use std::borrow::Cow;
use std::fmt;

use crate::Error;
use crate::scan::{self, Cursor};

/// One parameter. Names compare case-insensitively; values keep their case and whether they were
/// quoted, so they print back as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    name: Cow<'a, str>,
    value: Option<Cow<'a, str>>,
    quoted: bool,
}

impl<'a> Param<'a> {
    /// A parameter; `value` is printed as given (quote it with [`Param::quoted`]).
    pub fn new(name: impl Into<Cow<'a, str>>, value: Option<Cow<'a, str>>) -> Self {
        Self {
            name: name.into(),
            value,
            quoted: false,
        }
    }

    /// A parameter whose value is printed as a quoted string. `value` is the inner text with any
    /// `\` escapes already applied.
    pub fn quoted(name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
            quoted: true,
        }
    }

    /// The name as received.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value: for quoted values the text between the quotes, escapes kept.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// Whether the value was (or will be printed) quoted.
    pub fn is_quoted(&self) -> bool {
        self.quoted
    }

    /// Detaches the parameter from the buffer it was parsed from.
    pub fn into_owned(self) -> Param<'static> {
        Param {
            name: Cow::Owned(self.name.into_owned()),
            value: self.value.map(|v| Cow::Owned(v.into_owned())),
            quoted: self.quoted,
        }
    }
}

impl fmt::Display for Param<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match (&self.value, self.quoted) {
            (Some(v), true) => write!(f, "=\"{v}\""),
            (Some(v), false) => write!(f, "={v}"),
            (None, _) => Ok(()),
        }
    }
}

/// An ordered parameter list. Unknown parameters are kept in place.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Params<'a> {
    items: Vec<Param<'a>>,
}

/// Which characters an unquoted value may contain.
#[derive(Clone, Copy)]
pub(crate) enum ValueChars {
    /// Header parameters: `gen-value = token / host / quoted-string`.
    Header,
    /// URI parameters: `paramchar` (unreserved, escaped, `[]/:&+$`).
    Uri,
}

impl ValueChars {
    fn mask(self) -> u8 {
        match self {
            Self::Header => scan::HVALUE,
            Self::Uri => scan::UPARAM,
        }
    }
}

impl<'a> Params<'a> {
    /// An empty list.
    pub fn new() -> Self {
        Self { items: Vec::new() }
    }

    /// Whether the parameter is present (with or without a value).
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// `Some(None)` for a parameter present without value, `Some(Some(v))` with one.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.find(name).map(Param::value)
    }

    /// The value of a parameter that has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    /// The parameter itself.
    pub fn find(&self, name: &str) -> Option<&Param<'a>> {
        self.items
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Sets (replacing in place) or appends a parameter with an unquoted value.
    pub fn set(&mut self, name: impl Into<Cow<'a, str>>, value: Option<Cow<'a, str>>) {
        self.put(Param::new(name, value));
    }

    /// Sets or appends a parameter.
    pub fn put(&mut self, param: Param<'a>) {
        match self
            .items
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(&param.name))
        {
            Some(slot) => *slot = param,
            None => self.items.push(param),
        }
    }

    /// Removes a parameter; returns whether it was present.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.items.len();
        self.items.retain(|p| !p.name.eq_ignore_ascii_case(name));
        before != self.items.len()
    }

    /// The parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = &Param<'a>> {
        self.items.iter()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Detaches the list from the buffer it was parsed from.
    pub fn into_owned(self) -> Params<'static> {
        Params {
            items: self.items.into_iter().map(Param::into_owned).collect(),
        }
    }

    /// Parses `*( ";" name [ "=" value ] )`, allowing LWS around separators when `lws` is set
    /// (header parameters) and not otherwise (URI parameters). Stops before anything else.
    pub(crate) fn parse(
        cur: &mut Cursor<'a>,
        chars: ValueChars,
        header: &'static str,
    ) -> Result<Self, Error> {
        let lws = matches!(chars, ValueChars::Header);
        let err = |c: &Cursor<'_>| Error::InvalidHeader {
            header,
            at: c.pos(),
        };
        // One allocation of the right size: every parameter starts with a `;`.
        let mut items =
            Vec::with_capacity(memchr::memchr_iter(b';', cur.rest().as_bytes()).count());
        loop {
            let semi = if lws {
                cur.eat(b';')
            } else {
                cur.eat_exact(b';')
            };
            if !semi {
                break;
            }
            if lws {
                cur.skip_ws();
            }
            let name = match chars {
                ValueChars::Header => cur.take_class(scan::TOKEN),
                ValueChars::Uri => cur.take_class(scan::UPARAM),
            };
            if name.is_empty() {
                return Err(err(cur));
            }
            let eq = if lws {
                cur.eat(b'=')
            } else {
                cur.eat_exact(b'=')
            };
            let (value, quoted) = if eq {
                if lws {
                    cur.skip_ws();
                }
                if lws && cur.peek() == Some(b'"') {
                    (Some(cur.quoted().ok_or_else(|| err(cur))?), true)
                } else {
                    let v = cur.take_class(chars.mask());
                    if v.is_empty() {
                        return Err(err(cur));
                    }
                    (Some(v), false)
                }
            } else {
                (None, false)
            };
            items.push(Param {
                name: Cow::Borrowed(name),
                value: value.map(Cow::Borrowed),
                quoted,
            });
        }
        Ok(Self { items })
    }
}

impl fmt::Display for Params<'_> {
    /// Prints each parameter as `;name=value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.items {
            write!(f, ";{p}")?;
        }
        Ok(())
    }
}

impl<'a> FromIterator<Param<'a>> for Params<'a> {
    fn from_iter<I: IntoIterator<Item = Param<'a>>>(iter: I) -> Self {
        Self {
            items: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_params_allow_lws_and_keep_quoting() {
        let mut c =
            Cursor::new(" ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33; x=\"a b\"");
        let p = Params::parse(&mut c, ValueChars::Header, "Contact").unwrap_or_default();
        assert_eq!(p.value("NEWPARAM"), Some("newvalue"));
        assert_eq!(p.get("secondparam"), Some(None));
        assert_eq!(p.value("q"), Some("0.33"));
        assert_eq!(p.find("x").map(Param::is_quoted), Some(true));
        assert_eq!(
            p.to_string(),
            ";newparam=newvalue;secondparam;q=0.33;x=\"a b\""
        );
    }

    #[test]
    fn empty_parameter_names_are_rejected() {
        let mut c = Cursor::new(";;,;,,");
        assert!(Params::parse(&mut c, ValueChars::Header, "Via").is_err());
    }

    #[test]
    fn uri_params_stop_at_white_space() {
        let mut c = Cursor::new(";lr;transport=tcp ;x");
        let p = Params::parse(&mut c, ValueChars::Uri, "URI").unwrap_or_default();
        assert_eq!(p.len(), 2);
        assert_eq!(c.rest(), " ;x");
    }
}
