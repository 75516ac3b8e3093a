//! Typed header values, parsed on demand from the raw store (RFC 3261 §20 and the IMS
//! extensions of TS 24.229).
//!
//! Each type borrows from the message (`'a`) and prints back with `Display`; `into_owned`
//! detaches it where a value must outlive the message. Parse any value with
//! [`TypedHeader::parse_value`], or through the [`Message`] accessors below, which also split
//! comma lists.

use std::borrow::Cow;

use crate::scan::{self, Cursor};
use crate::{Error, HeaderName, Message};

mod auth;
mod misc;
mod name_addr;
mod security;
mod via;

pub use auth::{Algorithm, Auth, AuthParam};
pub use misc::{
    CSeq, CallId, Event, MediaType, OptionTag, PAccessNetworkInfo, PChargingVector,
    PVisitedNetworkId, QValue, SessionExpires, SubscriptionState,
};
pub use name_addr::{Contact, NameAddr};
pub use security::SecurityMechanism;
pub use via::{MAGIC_COOKIE, Transport, Via};

/// A header value type.
pub trait TypedHeader<'a>: Sized {
    /// Parses one value (one element of a comma list). `header` names the header in errors.
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error>;
}

fn utf8<'a>(v: &'a [u8], header: &'static str) -> Result<&'a str, Error> {
    std::str::from_utf8(v).map_err(|e| Error::InvalidHeader {
        header,
        at: e.valid_up_to(),
    })
}

impl Message {
    /// The first value of the header, parsed; `None` if absent.
    pub fn typed<'a, T: TypedHeader<'a>>(&'a self, name: &HeaderName) -> Option<Result<T, Error>> {
        let header = name.static_name();
        let first = if name.is_list() {
            self.fields_named(name)
                .next()
                .and_then(|f| scan::ListIter::new(f.value()).next())
        } else {
            self.header(name)
        };
        first.map(|v| utf8(v, header).and_then(|s| T::parse_value(s, header)))
    }

    /// Every value of the header, parsed (list headers are split, see [`Message::values`]).
    pub fn typed_all<'a, T: TypedHeader<'a> + 'a>(
        &'a self,
        name: &HeaderName,
    ) -> impl Iterator<Item = Result<T, Error>> + use<'a, T> {
        let header = name.static_name();
        self.values(name)
            .map(move |v| utf8(v, header).and_then(|s| T::parse_value(s, header)))
    }

    /// Like [`Message::typed`] for a header that must be present.
    pub fn required<'a, T: TypedHeader<'a>>(&'a self, name: &HeaderName) -> Result<T, Error> {
        self.typed(name)
            .unwrap_or(Err(Error::MissingHeader(name.static_name())))
    }

    /// The topmost Via value (RFC 3261 §8.2.6, §17.2.3).
    pub fn top_via(&self) -> Result<Via<'_>, Error> {
        self.required(&HeaderName::VIA)
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, Error>> + use<'_> {
        self.typed_all(&HeaderName::VIA)
    }

    /// The From header.
    pub fn from_header(&self) -> Result<NameAddr<'_>, Error> {
        self.required(&HeaderName::FROM)
    }

    /// The To header.
    pub fn to_header(&self) -> Result<NameAddr<'_>, Error> {
        self.required(&HeaderName::TO)
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<CallId<'_>, Error> {
        self.required(&HeaderName::CALL_ID)
    }

    /// The CSeq.
    pub fn cseq(&self) -> Result<CSeq, Error> {
        self.required(&HeaderName::CSEQ)
    }

    /// Max-Forwards, if present (RFC 3261 §20.22: 0 to 255).
    pub fn max_forwards(&self) -> Result<Option<u8>, Error> {
        let Some(v) = self.header(&HeaderName::MAX_FORWARDS) else {
            return Ok(None);
        };
        let n = scan::parse_u64(scan::trim(v)).ok_or(Error::InvalidHeader {
            header: "Max-Forwards",
            at: 0,
        })?;
        u8::try_from(n).map(Some).map_err(|_| Error::OutOfRange {
            header: "Max-Forwards",
        })
    }

    /// Expires, if present (RFC 3261 §20.19: 0 to 2³²−1).
    pub fn expires(&self) -> Result<Option<u32>, Error> {
        let Some(v) = self.header(&HeaderName::EXPIRES) else {
            return Ok(None);
        };
        delta_seconds(scan::trim(v), "Expires").map(Some)
    }

    /// Every Contact value (`*` is [`Contact::Wildcard`]).
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, Error>> + use<'_> {
        self.typed_all(&HeaderName::CONTACT)
    }

    /// Every Route value, top first.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, Error>> + use<'_> {
        self.typed_all(&HeaderName::ROUTE)
    }

    /// Every Record-Route value, top first.
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, Error>> + use<'_> {
        self.typed_all(&HeaderName::RECORD_ROUTE)
    }

    /// The option tags of Require, Proxy-Require, Supported or Unsupported.
    pub fn option_tags<'a>(
        &'a self,
        name: &HeaderName,
    ) -> impl Iterator<Item = Result<OptionTag<'a>, Error>> + use<'a> {
        self.typed_all(name)
    }

    /// Pushes a typed value, printed with `Display`.
    pub fn push_typed(
        &mut self,
        name: HeaderName,
        value: &impl std::fmt::Display,
    ) -> Result<(), Error> {
        self.push_header(name, value.to_string())
    }

    /// Prepends a typed value (see [`Message::prepend_header`]).
    pub fn prepend_typed(
        &mut self,
        name: HeaderName,
        value: &impl std::fmt::Display,
    ) -> Result<(), Error> {
        self.prepend_header(name, value.to_string())
    }
}

/// `delta-seconds = 1*DIGIT`, at most 2³²−1.
pub(crate) fn delta_seconds(v: &[u8], header: &'static str) -> Result<u32, Error> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(Error::InvalidHeader { header, at: 0 });
    }
    scan::parse_u64(v)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(Error::OutOfRange { header })
}

/// Parses `value *( ";" param )` where the value is a run of `value_char` and the whole input
/// must be consumed.
pub(crate) fn value_with_params<'a>(
    s: &'a str,
    header: &'static str,
    value_char: impl Fn(u8) -> bool,
) -> Result<(Cow<'a, str>, crate::Params<'a>), Error> {
    let mut cur = Cursor::new(s);
    cur.skip_ws();
    let v = cur.take_while(value_char);
    if v.is_empty() {
        return Err(Error::InvalidHeader {
            header,
            at: cur.pos(),
        });
    }
    let params = crate::Params::parse(&mut cur, crate::params::ValueChars::Header, header)?;
    end(&mut cur, header)?;
    Ok((Cow::Borrowed(v), params))
}

/// Requires the cursor to be at the end (after optional LWS).
pub(crate) fn end(cur: &mut Cursor<'_>, header: &'static str) -> Result<(), Error> {
    cur.skip_ws();
    if cur.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidHeader {
            header,
            at: cur.pos(),
        })
    }
}

#[cfg(test)]
mod tests;
