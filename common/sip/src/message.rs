//! The zero-copy message model: parsing, header store, editing and serialisation.
//!
//! A [`Message`] keeps the buffer it was parsed from and refers to its start line, header fields
//! and body by byte ranges. Nothing is copied or decoded until asked for. Edits replace or add
//! individual fields; every field that was not touched is written back exactly as received,
//! including its name's case, compact form, line folding and spacing.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memchr;

use crate::name::Std;
use crate::scan::{self, ListIter};
use crate::{Error, HeaderName, Method, StatusCode};

/// Hard limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted message, head and body together. Default 64 KiB: the largest UDP
    /// payload, and ample for IMS signalling (a REGISTER with AKA and sec-agree is about 1.3 KB).
    pub max_message: usize,
    /// Most header fields (lines) accepted in one message. Default 256.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: 64 * 1024,
            max_headers: 256,
        }
    }
}

/// Bytes of a message part: a range of the parse buffer, or bytes supplied by an edit.
#[derive(Clone, Debug)]
pub(crate) enum Text {
    Span(u32, u32),
    /// Boxed so a field stays small: owned values only come from edits.
    Owned(Box<Bytes>),
}

impl Text {
    pub(crate) fn get<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        match self {
            Self::Span(s, e) => buf.get(*s as usize..*e as usize).unwrap_or_default(),
            Self::Owned(b) => b,
        }
    }

    pub(crate) fn owned(b: Bytes) -> Self {
        Self::Owned(Box::new(b))
    }

    /// The bytes as a `Bytes` sharing the parse buffer.
    fn to_bytes(&self, buf: &Bytes) -> Bytes {
        match self {
            Self::Span(s, e) if (*e as usize) <= buf.len() && s <= e => {
                buf.slice(*s as usize..*e as usize)
            }
            Self::Span(..) => Bytes::new(),
            Self::Owned(b) => Bytes::clone(b),
        }
    }
}

/// One header field line (with its folded continuation lines).
#[derive(Clone, Debug)]
pub(crate) struct Field {
    pub(crate) std: Option<Std>,
    pub(crate) name: Text,
    pub(crate) value: Text,
    /// The whole original line without its final CRLF; `None` once edited, so the field is
    /// regenerated as `name: value`.
    pub(crate) line: Option<(u32, u32)>,
}

#[derive(Clone, Debug)]
enum Start {
    Request {
        method: Method,
        uri: Text,
        line: Option<Text>,
    },
    Response {
        code: StatusCode,
        reason: Text,
        line: Option<Text>,
    },
}

/// A SIP request or response (RFC 3261 §7).
///
/// Parse with [`Message::parse`] (one datagram or WebSocket frame) or through
/// [`crate::StreamFramer`] (TCP/TLS). Read raw header values with [`Message::header`] and
/// [`Message::values`], typed ones through the accessors in [`crate::header`]. Edit with the
/// `push_header`/`prepend_header`/`remove_header`/`pop_first_value`/`set_request_uri` family and
/// write out with [`Message::to_bytes`]; an unedited message is returned as the received bytes.
#[derive(Clone)]
pub struct Message {
    buf: Bytes,
    start: Start,
    fields: Vec<Field>,
    body: Text,
    /// Range of the message in `buf` (leading CRLFs and trailing datagram octets excluded).
    span: (u32, u32),
    edited: bool,
}

/// A read-only view of one header field.
#[derive(Clone, Copy)]
pub struct HeaderField<'a> {
    std: Option<Std>,
    raw_name: &'a [u8],
    value: &'a [u8],
}

impl<'a> HeaderField<'a> {
    /// The name: a known header (whatever form it was sent in) or the raw token.
    pub fn name(&self) -> HeaderName {
        HeaderName::from_wire(self.raw_name, self.std)
    }

    /// The name exactly as received (`v`, `VIA`, `Via`...).
    pub fn raw_name(&self) -> &'a [u8] {
        self.raw_name
    }

    /// The value with surrounding white space removed; folding inside is kept.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// The value as UTF-8 text.
    pub fn value_str(&self) -> Result<&'a str, Error> {
        std::str::from_utf8(self.value).map_err(|e| Error::InvalidHeader {
            header: self.static_name(),
            at: e.valid_up_to(),
        })
    }

    /// Whether the field has this name.
    pub fn is(&self, name: &HeaderName) -> bool {
        name.matches(self.raw_name, self.std)
    }

    fn static_name(&self) -> &'static str {
        self.std.map_or("extension", Std::canonical)
    }
}

impl fmt::Debug for HeaderField<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            String::from_utf8_lossy(self.raw_name),
            String::from_utf8_lossy(self.value)
        )
    }
}

impl Message {
    /// Parses one complete message from a datagram or WebSocket frame with the default
    /// [`Limits`].
    ///
    /// Framing follows RFC 3261 §18.3: with a Content-Length the body is that many octets and any
    /// further octets are discarded (RFC 4475 §3.1.1.8); a Content-Length larger than what is
    /// present is an error (§3.1.2.2); without one, the body is the rest of the datagram.
    /// Header values are not validated here; see [`crate::validate`].
    pub fn parse(buf: impl Into<Bytes>) -> Result<Self, Error> {
        Self::parse_with(buf.into(), &Limits::default())
    }

    /// Like [`Message::parse`] with explicit limits.
    pub fn parse_with(buf: Bytes, limits: &Limits) -> Result<Self, Error> {
        if buf.len() > limits.max_message {
            return Err(Error::TooLarge {
                len: buf.len(),
                limit: limits.max_message,
            });
        }
        let bytes: &[u8] = &buf;
        let begin = skip_leading_crlf(bytes);
        let head = Head::parse(bytes, begin, limits)?;
        let body_start = head.body_start;
        let available = bytes.len().saturating_sub(body_start);
        let body_len = match head.content_length {
            Some(declared) if declared > available => {
                return Err(Error::BodyTruncated {
                    declared,
                    available,
                });
            }
            Some(declared) => declared,
            None => available,
        };
        let end = body_start + body_len;
        Ok(Self {
            start: head.start,
            fields: head.fields,
            body: Text::Span(pos32(body_start), pos32(end)),
            span: (pos32(begin), pos32(end)),
            edited: false,
            buf,
        })
    }

    /// A new request with only a start line; add headers with [`Message::push_header`].
    pub fn new_request(method: Method, uri: impl Into<Bytes>) -> Self {
        Self::from_start(Start::Request {
            method,
            uri: Text::owned(uri.into()),
            line: None,
        })
    }

    /// A new response with only a status line. `reason` defaults to the RFC phrase.
    pub fn new_response(code: StatusCode, reason: Option<&str>) -> Self {
        let reason =
            Bytes::copy_from_slice(reason.unwrap_or_else(|| code.reason_phrase()).as_bytes());
        Self::from_start(Start::Response {
            code,
            reason: Text::owned(reason),
            line: None,
        })
    }

    fn from_start(start: Start) -> Self {
        Self {
            buf: Bytes::new(),
            start,
            fields: Vec::new(),
            body: Text::owned(Bytes::new()),
            span: (0, 0),
            edited: true,
        }
    }

    // ---- start line ----

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }

    /// The request method; `None` for a response.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI as received; `None` for a response.
    pub fn request_uri_raw(&self) -> Option<&[u8]> {
        match &self.start {
            Start::Request { uri, .. } => Some(uri.get(&self.buf)),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI text; `None` for a response.
    pub fn request_uri_str(&self) -> Option<&str> {
        self.request_uri_raw()
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The status code; `None` for a request.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.start {
            Start::Response { code, .. } => Some(*code),
            Start::Request { .. } => None,
        }
    }

    /// The reason phrase as received (may be empty or non-ASCII UTF-8); `None` for a request.
    pub fn reason_phrase(&self) -> Option<&[u8]> {
        match &self.start {
            Start::Response { reason, .. } => Some(reason.get(&self.buf)),
            Start::Request { .. } => None,
        }
    }

    // ---- headers ----

    /// All header fields in order.
    pub fn fields(&self) -> impl Iterator<Item = HeaderField<'_>> {
        self.fields.iter().map(|f| self.view(f))
    }

    /// Number of header fields (lines).
    pub fn field_count(&self) -> usize {
        self.fields.len()
    }

    /// The field at `index`.
    pub fn field(&self, index: usize) -> Option<HeaderField<'_>> {
        self.fields.get(index).map(|f| self.view(f))
    }

    fn view<'a>(&'a self, f: &'a Field) -> HeaderField<'a> {
        HeaderField {
            std: f.std,
            raw_name: f.name.get(&self.buf),
            value: f.value.get(&self.buf),
        }
    }

    /// The value of the first field with this name.
    pub fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.fields_named(name).next().map(|f| f.value)
    }

    /// The first value as text.
    pub fn header_str(&self, name: &HeaderName) -> Option<Result<&str, Error>> {
        self.fields_named(name).next().map(|f| f.value_str())
    }

    /// Whether at least one field has this name.
    pub fn has_header(&self, name: &HeaderName) -> bool {
        self.fields_named(name).next().is_some()
    }

    /// Every field with this name, in order.
    pub fn fields_named<'a>(
        &'a self,
        name: &HeaderName,
    ) -> impl Iterator<Item = HeaderField<'a>> + use<'a> {
        let name = name.clone();
        let std = name.std();
        self.fields
            .iter()
            .filter(move |f| match std {
                Some(s) => f.std == Some(s),
                None => f.std.is_none() && name.matches(f.name.get(&self.buf), None),
            })
            .map(|f| self.view(f))
    }

    /// Every value of the header: for list headers (Via, Route, Contact, Supported...) each
    /// comma-separated element of each field, otherwise each field's value. Commas inside quoted
    /// strings and `<...>` do not split.
    pub fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let list = name.is_list();
        self.fields_named(name).flat_map(move |f| {
            let (split, whole) = if list {
                (Some(ListIter::new(f.value)), None)
            } else {
                (None, Some(f.value))
            };
            split.into_iter().flatten().chain(whole)
        })
    }

    // ---- body ----

    /// The body (may be binary).
    pub fn body(&self) -> &[u8] {
        self.body.get(&self.buf)
    }

    /// The body as `Bytes` sharing the message buffer.
    pub fn body_bytes(&self) -> Bytes {
        self.body.to_bytes(&self.buf)
    }

    // ---- editing ----

    /// Appends a field at the end of the header section.
    pub fn push_header(&mut self, name: HeaderName, value: impl Into<Bytes>) -> Result<(), Error> {
        let f = new_field(&name, value.into())?;
        self.fields.push(f);
        self.edited = true;
        Ok(())
    }

    /// Inserts a field before the first field of the same name, or as the first field if there
    /// is none: how a proxy adds its Via (RFC 3261 §16.6 step 8) or Record-Route (step 4).
    pub fn prepend_header(
        &mut self,
        name: HeaderName,
        value: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let at = self.position(&name).unwrap_or(0);
        self.insert_header(at, name, value)
    }

    /// Inserts a field at position `index` (clamped to the end).
    pub fn insert_header(
        &mut self,
        index: usize,
        name: HeaderName,
        value: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let f = new_field(&name, value.into())?;
        self.fields.insert(index.min(self.fields.len()), f);
        self.edited = true;
        Ok(())
    }

    /// Replaces all fields of this name by one field with `value`, at the place of the first
    /// (or at the end if there was none).
    pub fn set_header(&mut self, name: HeaderName, value: impl Into<Bytes>) -> Result<(), Error> {
        let f = new_field(&name, value.into())?;
        match self.position(&name) {
            Some(i) => {
                self.remove_header(&name);
                self.fields.insert(i, f);
            }
            None => self.fields.push(f),
        }
        self.edited = true;
        Ok(())
    }

    /// Removes every field with this name; returns how many were removed.
    pub fn remove_header(&mut self, name: &HeaderName) -> usize {
        let before = self.fields.len();
        let buf = &self.buf;
        self.fields
            .retain(|f| !name.matches(f.name.get(buf), f.std));
        let removed = before - self.fields.len();
        self.edited |= removed > 0;
        removed
    }

    /// Removes the field at `index`.
    pub fn remove_field(&mut self, index: usize) -> bool {
        if index < self.fields.len() {
            self.fields.remove(index);
            self.edited = true;
            true
        } else {
            false
        }
    }

    /// Removes the first value of a list header and returns it: the topmost Via when forwarding
    /// a response (§16.7 step 3), the topmost Route when it names this proxy (§16.4). A field
    /// holding several comma-separated values keeps the others.
    pub fn pop_first_value(&mut self, name: &HeaderName) -> Option<Bytes> {
        let buf = &self.buf;
        let idx = self.fields.iter().position(|f| {
            name.matches(f.name.get(buf), f.std) && ListIter::new(f.value.get(buf)).next().is_some()
        })?;
        let field = self.fields.get(idx)?;
        let value = field.value.get(&self.buf);
        let first = ListIter::new(value).next()?;
        let first_off = (first.as_ptr() as usize).saturating_sub(value.as_ptr() as usize);
        let first_end = first_off + first.len();
        let first_bytes = match &field.value {
            Text::Span(s, _) => {
                let start = *s as usize + first_off;
                Text::Span(pos32(start), pos32(start + first.len())).to_bytes(&self.buf)
            }
            Text::Owned(b) => b.slice_ref(first),
        };
        // Whatever follows the comma after the first element, if it holds another element.
        let rest = value.get(first_end..).unwrap_or_default();
        let rest_start = first_comma(rest).map(|c| first_end + c + 1).filter(|&r| {
            ListIter::new(value.get(r..).unwrap_or_default())
                .next()
                .is_some()
        });
        match rest_start {
            None => {
                self.fields.remove(idx);
            }
            Some(r) => {
                let lead = value
                    .get(r..)
                    .map_or(0, |t| t.iter().take_while(|&&b| scan::is_lws(b)).count());
                let new_value = match &field.value {
                    Text::Span(s, e) => Text::Span(pos32(*s as usize + r + lead), *e),
                    Text::Owned(b) => Text::owned(b.slice((r + lead).min(b.len())..)),
                };
                if let Some(f) = self.fields.get_mut(idx) {
                    f.value = new_value;
                    f.line = None;
                }
            }
        }
        self.edited = true;
        Some(first_bytes)
    }

    /// Removes the last value of a list header and returns it: the strict-router fix-up takes
    /// the last Route value as the Request-URI (§16.4).
    pub fn pop_last_value(&mut self, name: &HeaderName) -> Option<Bytes> {
        let buf = &self.buf;
        let idx = self.fields.iter().rposition(|f| {
            name.matches(f.name.get(buf), f.std) && ListIter::new(f.value.get(buf)).next().is_some()
        })?;
        let field = self.fields.get(idx)?;
        let value = field.value.get(&self.buf);
        let last = ListIter::new(value).last()?;
        let last_off = (last.as_ptr() as usize).saturating_sub(value.as_ptr() as usize);
        let last_bytes = match &field.value {
            Text::Span(s, _) => {
                let start = *s as usize + last_off;
                Text::Span(pos32(start), pos32(start + last.len())).to_bytes(&self.buf)
            }
            Text::Owned(b) => b.slice_ref(last),
        };
        // Keep everything before the comma that precedes the last element.
        let head = value.get(..last_off).unwrap_or_default();
        let keep = last_comma(head).filter(|&c| {
            ListIter::new(head.get(..c).unwrap_or_default())
                .next()
                .is_some()
        });
        match keep {
            None => {
                self.fields.remove(idx);
            }
            Some(c) => {
                let new_value = match &field.value {
                    Text::Span(s, _) => Text::Span(*s, pos32(*s as usize + c)),
                    Text::Owned(b) => Text::owned(b.slice(..c.min(b.len()))),
                };
                if let Some(f) = self.fields.get_mut(idx) {
                    f.value = new_value;
                    f.line = None;
                }
            }
        }
        self.edited = true;
        Some(last_bytes)
    }

    /// Replaces the Request-URI (for example with the next hop in strict routing, §16.4, or a
    /// registered contact, §16.5).
    pub fn set_request_uri(&mut self, uri: impl Into<Bytes>) -> Result<(), Error> {
        let uri = uri.into();
        if uri.is_empty() || uri.iter().any(|&b| b <= b' ' || b == 0x7f) {
            return Err(Error::ValueInjection);
        }
        match &mut self.start {
            Start::Request { uri: u, line, .. } => {
                *u = Text::owned(uri);
                *line = None;
                self.edited = true;
                Ok(())
            }
            Start::Response { .. } => Err(Error::WrongKind {
                expected: "request",
            }),
        }
    }

    /// Replaces the body and sets Content-Length to its length; sets Content-Type when given.
    pub fn set_body(
        &mut self,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let body = body.into();
        if let Some(ct) = content_type {
            self.set_header(
                HeaderName::CONTENT_TYPE,
                Bytes::copy_from_slice(ct.as_bytes()),
            )?;
        }
        self.set_header(HeaderName::CONTENT_LENGTH, body.len().to_string())?;
        self.body = Text::owned(body);
        self.edited = true;
        Ok(())
    }

    /// Adds `Content-Length` with the body's length if the message has none, as a stream
    /// transport needs (RFC 3261 §18.3).
    pub fn ensure_content_length(&mut self) -> Result<(), Error> {
        if !self.has_header(&HeaderName::CONTENT_LENGTH) {
            let len = self.body().len().to_string();
            self.push_header(HeaderName::CONTENT_LENGTH, len)?;
        }
        Ok(())
    }

    fn position(&self, name: &HeaderName) -> Option<usize> {
        self.fields
            .iter()
            .position(|f| name.matches(f.name.get(&self.buf), f.std))
    }

    // ---- responses ----

    /// Builds a response to this request per RFC 3261 §8.2.6: Via (all values, in order), From,
    /// To, Call-ID and CSeq are copied byte-exact, a 100 also copies Timestamp (§8.2.6.1), and
    /// `to_tag` is added to To unless the code is 100 or To already has a tag. Content-Length is
    /// 0. Add further headers with [`Message::push_header`].
    pub fn response(&self, code: StatusCode, to_tag: Option<&str>) -> Result<Self, Error> {
        if !self.is_request() {
            return Err(Error::WrongKind {
                expected: "request",
            });
        }
        let mut resp = Self::new_response(code, None);
        for f in &self.fields {
            let copy = match f.std {
                Some(Std::Via | Std::From | Std::CallId | Std::CSeq) => true,
                Some(Std::Timestamp) => code == StatusCode::TRYING,
                Some(Std::To) => {
                    let tag = to_tag.filter(|_| code != StatusCode::TRYING);
                    // A To that does not parse is copied as it is (the response is then
                    // usually the 400 for it).
                    match tag {
                        Some(tag) if !self.to_has_tag(f).unwrap_or(true) => {
                            if !tag.bytes().all(scan::is_token) || tag.is_empty() {
                                return Err(Error::ValueInjection);
                            }
                            let mut v = BytesMut::from(f.value.get(&self.buf));
                            v.put_slice(b";tag=");
                            v.put_slice(tag.as_bytes());
                            resp.fields.push(Field {
                                std: f.std,
                                name: Text::owned(f.name.to_bytes(&self.buf)),
                                value: Text::owned(v.freeze()),
                                line: None,
                            });
                            false
                        }
                        _ => true,
                    }
                }
                _ => false,
            };
            if copy {
                resp.fields.push(Field {
                    std: f.std,
                    name: Text::owned(f.name.to_bytes(&self.buf)),
                    value: Text::owned(f.value.to_bytes(&self.buf)),
                    line: None,
                });
            }
        }
        resp.push_header(HeaderName::CONTENT_LENGTH, "0")?;
        Ok(resp)
    }

    fn to_has_tag(&self, f: &Field) -> Result<bool, Error> {
        let v = std::str::from_utf8(f.value.get(&self.buf)).map_err(|_| Error::InvalidHeader {
            header: "To",
            at: 0,
        })?;
        Ok(crate::NameAddr::parse_header(v, "To")?.tag().is_some())
    }

    // ---- output ----

    /// Whether the message was changed since it was parsed.
    pub fn is_edited(&self) -> bool {
        self.edited
    }

    /// The wire form. An unedited parsed message is its received bytes (a cheap slice);
    /// otherwise the message is rebuilt, copying unchanged fields byte for byte.
    pub fn to_bytes(&self) -> Bytes {
        if !self.edited {
            return Text::Span(self.span.0, self.span.1).to_bytes(&self.buf);
        }
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.write_to(&mut out);
        out.freeze()
    }

    /// The length [`Message::to_bytes`] produces.
    pub fn encoded_len(&self) -> usize {
        if !self.edited {
            return (self.span.1 - self.span.0) as usize;
        }
        let start = match &self.start {
            Start::Request { line: Some(l), .. } | Start::Response { line: Some(l), .. } => {
                l.get(&self.buf).len()
            }
            Start::Request { method, uri, .. } => {
                method.as_str().len() + uri.get(&self.buf).len() + 9
            }
            Start::Response { reason, .. } => 12 + reason.get(&self.buf).len(),
        };
        let fields: usize = self
            .fields
            .iter()
            .map(|f| match f.line {
                Some((s, e)) => (e - s) as usize + 2,
                None => f.name.get(&self.buf).len() + f.value.get(&self.buf).len() + 4,
            })
            .sum();
        start + 2 + fields + 2 + self.body().len()
    }

    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut BytesMut) {
        if !self.edited {
            out.put_slice(
                self.buf
                    .get(self.span.0 as usize..self.span.1 as usize)
                    .unwrap_or_default(),
            );
            return;
        }
        let buf = &self.buf;
        match &self.start {
            Start::Request { line: Some(l), .. } | Start::Response { line: Some(l), .. } => {
                out.put_slice(l.get(buf))
            }
            Start::Request { method, uri, .. } => {
                out.put_slice(method.as_str().as_bytes());
                out.put_u8(b' ');
                out.put_slice(uri.get(buf));
                out.put_slice(b" SIP/2.0");
            }
            Start::Response { code, reason, .. } => {
                out.put_slice(b"SIP/2.0 ");
                out.put_slice(code.to_string().as_bytes());
                out.put_u8(b' ');
                out.put_slice(reason.get(buf));
            }
        }
        out.put_slice(b"\r\n");
        for f in &self.fields {
            match f.line {
                Some((s, e)) => out.put_slice(buf.get(s as usize..e as usize).unwrap_or_default()),
                None => {
                    out.put_slice(f.name.get(buf));
                    out.put_slice(b": ");
                    out.put_slice(f.value.get(buf));
                }
            }
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.put_slice(self.body());
    }
}

impl fmt::Debug for Message {
    /// Prints the start line and the header names only: header values may carry keys
    /// (`ck`/`ik` in WWW-Authenticate between CSCFs) and must not reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        match &self.start {
            Start::Request { method, uri, .. } => {
                d.field("method", method)
                    .field("uri", &String::from_utf8_lossy(uri.get(&self.buf)));
            }
            Start::Response { code, .. } => {
                d.field("status", code);
            }
        }
        let names: Vec<String> = self
            .fields()
            .map(|h| String::from_utf8_lossy(h.raw_name()).into_owned())
            .collect();
        d.field("headers", &names)
            .field("body_len", &self.body().len())
            .finish()
    }
}

fn new_field(name: &HeaderName, value: Bytes) -> Result<Field, Error> {
    check_value(&value)?;
    let name_bytes = match &name.0 {
        crate::name::Repr::Std(s) => Bytes::from_static(s.canonical().as_bytes()),
        crate::name::Repr::Other(std::borrow::Cow::Borrowed(s)) => Bytes::from_static(s.as_bytes()),
        crate::name::Repr::Other(std::borrow::Cow::Owned(s)) => {
            Bytes::copy_from_slice(s.as_bytes())
        }
    };
    Ok(Field {
        std: name.std(),
        name: Text::owned(name_bytes),
        value: Text::owned(scan_trimmed(value)),
        line: None,
    })
}

fn scan_trimmed(v: Bytes) -> Bytes {
    let t = scan::trim(&v);
    if t.len() == v.len() {
        v
    } else {
        v.slice_ref(t)
    }
}

/// A value may contain CRLF only as line folding (followed by SP or HT), and never NUL.
fn check_value(v: &[u8]) -> Result<(), Error> {
    let mut i = 0;
    while let Some(&b) = v.get(i) {
        match b {
            0 | b'\n' => return Err(Error::ValueInjection),
            b'\r' => {
                if v.get(i + 1) != Some(&b'\n') || !matches!(v.get(i + 2), Some(b' ' | b'\t')) {
                    return Err(Error::ValueInjection);
                }
                i += 2;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Offset of the first comma that separates list elements.
fn first_comma(value: &[u8]) -> Option<usize> {
    scan::next_comma(value)
}

/// Offset of the last comma that separates list elements.
fn last_comma(value: &[u8]) -> Option<usize> {
    let mut at = None;
    let mut from = 0;
    while let Some(c) = value.get(from..).and_then(first_comma) {
        at = Some(from + c);
        from += c + 1;
    }
    at
}

pub(crate) fn skip_leading_crlf(bytes: &[u8]) -> usize {
    let mut i = 0;
    while bytes.get(i..i + 2) == Some(b"\r\n") {
        i += 2;
    }
    i
}

/// Offsets fit in u32 because messages are bounded by [`Limits::max_message`].
fn pos32(p: usize) -> u32 {
    u32::try_from(p).unwrap_or(u32::MAX)
}

/// The parsed header section.
struct Head {
    start: Start,
    fields: Vec<Field>,
    content_length: Option<usize>,
    body_start: usize,
}

impl Head {
    /// Parses the head starting at `begin`, up to and including the empty line.
    ///
    /// One pass per line: `memchr2` finds the CR (or stray LF) that ends it, the name is
    /// scanned with the token table up to the colon.
    fn parse(bytes: &[u8], begin: usize, limits: &Limits) -> Result<Self, Error> {
        let (ls, le) = line_at(bytes, begin)?;
        let start = parse_start_line(bytes.get(ls..le).unwrap_or_default(), ls, le)?;
        let mut pos = le + 2;
        let mut fields: Vec<Field> = Vec::with_capacity(32);
        let mut content_length: Option<usize> = None;
        let body_start = loop {
            if bytes.get(pos..pos + 2) == Some(b"\r\n") {
                break pos + 2;
            }
            let (ls, le) = line_at(bytes, pos)?;
            let line = bytes.get(ls..le).unwrap_or_default();
            pos = le + 2;
            if matches!(line.first(), Some(b' ' | b'\t')) {
                // Continuation of the previous field (line folding, §7.3.1).
                let f = fields.last_mut().ok_or(Error::HeaderLine { at: ls })?;
                let content = trim_sp(line);
                if !content.is_empty()
                    && let Text::Span(vs, ve) = &mut f.value
                {
                    let lead = line.len()
                        - line
                            .iter()
                            .skip_while(|&&b| b == b' ' || b == b'\t')
                            .count();
                    if *vs == *ve {
                        // The value starts on this continuation line.
                        *vs = pos32(ls + lead);
                    }
                    *ve = pos32(ls + lead + content.len());
                }
                if let Some((_, line_end)) = &mut f.line {
                    *line_end = pos32(le);
                }
                continue;
            }
            if fields.len() >= limits.max_headers {
                return Err(Error::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            let name_len = line
                .iter()
                .position(|&b| !scan::is_token(b))
                .unwrap_or(line.len());
            let mut i = name_len;
            while matches!(line.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            if name_len == 0 || line.get(i) != Some(&b':') {
                return Err(Error::HeaderLine { at: ls });
            }
            let value = trim_sp(line.get(i + 1..).unwrap_or_default());
            let vs = value.as_ptr() as usize - bytes.as_ptr() as usize;
            let name = line.get(..name_len).unwrap_or_default();
            let std = Std::lookup(name);
            if std == Some(Std::ContentLength) {
                let n = scan::parse_u64(value)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or(Error::ContentLength)?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(Error::ContentLength);
                }
                content_length = Some(n);
            }
            fields.push(Field {
                std,
                name: Text::Span(pos32(ls), pos32(ls + name_len)),
                value: Text::Span(pos32(vs), pos32(vs + value.len())),
                line: Some((pos32(ls), pos32(le))),
            });
        };
        // Content-Length folded over several lines is rare; re-check it from the final span.
        if content_length.is_some() {
            content_length = None;
            for f in fields.iter().filter(|f| f.std == Some(Std::ContentLength)) {
                let v = scan::trim(f.value.get(bytes));
                let n = scan::parse_u64(v)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or(Error::ContentLength)?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(Error::ContentLength);
                }
                content_length = Some(n);
            }
        }
        Ok(Self {
            start,
            fields,
            content_length,
            body_start,
        })
    }
}

/// Trims spaces and tabs at both ends of a line's content.
fn trim_sp(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// The line starting at `pos` as `(start, end)` without its CRLF. A CR not followed by LF, or an
/// LF not preceded by CR, is an error; no line end at all means the head never ends.
fn line_at(bytes: &[u8], pos: usize) -> Result<(usize, usize), Error> {
    let rest = bytes.get(pos..).unwrap_or_default();
    let end = memchr::memchr2(b'\r', b'\n', rest).ok_or(Error::UnterminatedHead)?;
    match (rest.get(end), rest.get(end + 1)) {
        (Some(b'\r'), Some(b'\n')) => Ok((pos, pos + end)),
        (Some(b'\r'), None) => Err(Error::UnterminatedHead),
        _ => Err(Error::HeaderLine { at: pos + end }),
    }
}

fn parse_start_line(line: &[u8], ls: usize, le: usize) -> Result<Start, Error> {
    let raw = Some(Text::Span(pos32(ls), pos32(le)));
    if line.len() >= 4
        && line
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = memchr(b' ', line).ok_or(Error::StartLine)?;
        check_version(line.get(..sp).unwrap_or_default())?;
        let rest = line.get(sp + 1..).unwrap_or_default();
        let code_bytes = rest.get(..3).ok_or(Error::StartLine)?;
        match rest.get(3) {
            None | Some(b' ') => {}
            Some(b) if b.is_ascii_digit() => return Err(Error::StatusCode),
            Some(_) => return Err(Error::StartLine),
        }
        let code = scan::parse_u64(code_bytes).ok_or(Error::StartLine)?;
        let code = u16::try_from(code)
            .ok()
            .and_then(StatusCode::new)
            .ok_or(Error::StatusCode)?;
        let reason_start = (ls + sp + 1 + 4).min(le);
        Ok(Start::Response {
            code,
            reason: Text::Span(pos32(reason_start), pos32(le)),
            line: raw,
        })
    } else {
        // Request-Line = Method SP Request-URI SP SIP-Version
        let sp1 = memchr(b' ', line).ok_or(Error::StartLine)?;
        let method =
            Method::from_token(line.get(..sp1).unwrap_or_default()).ok_or(Error::StartLine)?;
        let rest = line.get(sp1 + 1..).unwrap_or_default();
        let sp2 = memchr(b' ', rest).ok_or(Error::StartLine)?;
        let uri = rest.get(..sp2).unwrap_or_default();
        let version = rest.get(sp2 + 1..).unwrap_or_default();
        if uri.is_empty() || uri.iter().any(|&b| b <= b' ' || b == 0x7f) || !has_uri_scheme(uri) {
            return Err(Error::StartLine);
        }
        check_version(version)?;
        let us = ls + sp1 + 1;
        Ok(Start::Request {
            method,
            uri: Text::Span(pos32(us), pos32(us + sp2)),
            line: raw,
        })
    }
}

/// SIP-Version is case-insensitive (§7.1); only 2.0 is supported (§8.2.2.1 answers 505).
fn check_version(v: &[u8]) -> Result<(), Error> {
    if v.eq_ignore_ascii_case(b"SIP/2.0") {
        return Ok(());
    }
    let well_formed = v.len() > 4
        && v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
        && v.get(4..).is_some_and(|n| {
            let mut parts = n.split(|&b| b == b'.');
            let ok = |p: Option<&[u8]>| {
                p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
            };
            ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
        });
    Err(if well_formed {
        Error::Version
    } else {
        Error::StartLine
    })
}

/// `scheme ":"` with scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1).
fn has_uri_scheme(uri: &[u8]) -> bool {
    let Some(colon) = memchr(b':', uri) else {
        return false;
    };
    let scheme = uri.get(..colon).unwrap_or_default();
    scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

#[cfg(test)]
mod tests;
