//! Grammar helpers shared by the parsers (RFC 3261 §25.1): character classes, a bounds-checked
//! cursor over header values, and comma-list splitting that respects quotes and angle brackets.

/// Character classes as bit flags in one table, so every predicate is a single lookup.
pub(crate) const TOKEN: u8 = 1;
/// Linear white space inside a header value. CR and LF only occur there as line folding, which
/// the message parser has already validated.
pub(crate) const LWS: u8 = 2;
/// Unquoted header parameter values: `token / host` (token plus `:[]`).
pub(crate) const HVALUE: u8 = 4;
/// URI parameter characters: `paramchar` (unreserved, escaped, `[]/:&+$`).
pub(crate) const UPARAM: u8 = 8;
/// URI user characters: unreserved, escaped, `&=+$,;?/`.
pub(crate) const USER: u8 = 16;
/// URI password characters: unreserved, escaped, `&=+$,`.
pub(crate) const PASSWORD: u8 = 32;
/// Host name characters (alphanumerics, `-`, `.`, `_`).
pub(crate) const HOST: u8 = 64;
/// URI header characters: `paramchar` plus `?` and `=`.
pub(crate) const UHEADER: u8 = 128;

const fn class_of(b: u8) -> u8 {
    let alnum = b.is_ascii_alphanumeric();
    let unreserved = alnum
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        );
    let token = alnum
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        );
    let uparam = unreserved || matches!(b, b'%' | b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$');
    let mut c = 0;
    if token {
        c |= TOKEN | HVALUE;
    }
    if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
        c |= LWS;
    }
    if matches!(b, b':' | b'[' | b']') {
        c |= HVALUE;
    }
    if uparam {
        c |= UPARAM | UHEADER;
    }
    if matches!(b, b'?' | b'=') {
        c |= UHEADER;
    }
    if unreserved || matches!(b, b'%' | b'&' | b'=' | b'+' | b'$' | b',') {
        c |= PASSWORD | USER;
    }
    if matches!(b, b';' | b'?' | b'/') {
        c |= USER;
    }
    if alnum || matches!(b, b'-' | b'.' | b'_') {
        c |= HOST;
    }
    c
}

// A constant index below the array length; `get_mut` is not usable in a const block.
#[allow(clippy::indexing_slicing)]
static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = class_of(i as u8);
        i += 1;
    }
    t
};

/// Whether `b` is in any of the classes in `mask`.
#[inline]
pub(crate) fn is(b: u8, mask: u8) -> bool {
    CLASSES.get(usize::from(b)).is_some_and(|c| c & mask != 0)
}

/// `token` characters: alphanumerics and `-.!%*_+`'~`.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    is(b, TOKEN)
}

/// Linear white space (see [`LWS`]).
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    is(b, LWS)
}

/// Trims LWS at both ends.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_lws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_lws(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// Trims LWS at both ends of a string.
pub(crate) fn trim_str(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8))
}

/// A cursor over a header value. Every read is bounds-checked; failures report the offset.
#[derive(Clone, Copy)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Self { s, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or_default()
    }

    #[inline]
    pub(crate) fn skip_ws(&mut self) {
        let rest = self.s.as_bytes().get(self.pos..).unwrap_or_default();
        self.pos += rest.iter().position(|&b| !is_lws(b)).unwrap_or(rest.len());
    }

    /// Consumes `b` (after optional LWS) if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Consumes `b` without skipping white space first.
    pub(crate) fn eat_exact(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Takes the longest run of bytes matching `pred` (possibly empty).
    #[inline]
    pub(crate) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let rest = self.s.as_bytes().get(self.pos..).unwrap_or_default();
        let n = rest.iter().position(|&b| !pred(b)).unwrap_or(rest.len());
        let start = self.pos;
        self.pos += n;
        // The predicates used only accept ASCII, so both ends are char boundaries; `get`
        // still guards against a non-ASCII predicate.
        self.s.get(start..self.pos).unwrap_or_default()
    }

    /// Takes the longest run of bytes in the classes of `mask`.
    #[inline]
    pub(crate) fn take_class(&mut self, mask: u8) -> &'a str {
        self.take_while(|b| is(b, mask))
    }

    /// Takes a non-empty token after optional LWS.
    pub(crate) fn token(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let t = self.take_class(TOKEN);
        (!t.is_empty()).then_some(t)
    }

    /// Takes a quoted string after optional LWS and returns its inner text with escapes kept.
    /// `None` if the next character is not a quote or the string is unterminated.
    pub(crate) fn quoted(&mut self) -> Option<&'a str> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return None;
        }
        let bytes = self.s.as_bytes();
        let start = self.pos + 1;
        let mut i = start;
        loop {
            i += memchr::memchr2(b'"', b'\\', bytes.get(i..)?)?;
            match bytes.get(i)? {
                b'"' => break,
                _ => i += 2,
            }
        }
        let inner = self.s.get(start..i)?;
        self.pos = i + 1;
        Some(inner)
    }

    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.s.len());
    }
}

/// Splits a comma-separated header value into its elements, ignoring commas inside quoted
/// strings and `<...>` (RFC 3261 §7.3.1). Elements are trimmed; empty elements are skipped, as
/// HTTP's `#rule` allows.
pub(crate) struct ListIter<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> ListIter<'a> {
    pub(crate) fn new(value: &'a [u8]) -> Self {
        let value = trim(value);
        Self {
            rest: (!value.is_empty()).then_some(value),
        }
    }
}

impl<'a> Iterator for ListIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let mut s = self.rest?;
        while let Some(comma) = next_comma(s) {
            let item = trim(s.get(..comma).unwrap_or_default());
            s = s.get(comma + 1..).unwrap_or_default();
            if !item.is_empty() {
                self.rest = Some(s);
                return Some(item);
            }
        }
        self.rest = None;
        let item = trim(s);
        (!item.is_empty()).then_some(item)
    }
}

/// Offset of the first comma in `s` that separates list elements: commas inside quoted strings
/// (with `\` escapes) and inside `<...>` do not count; an unterminated quote or bracket runs to
/// the end. [`ListIter`] and the message editors share this one definition.
pub(crate) fn next_comma(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(hit) = s
        .get(i..)
        .and_then(|r| memchr::memchr3(b',', b'"', b'<', r))
    {
        i += hit;
        match s.get(i) {
            Some(b'"') => {
                i += 1;
                loop {
                    match s.get(i..).and_then(|r| memchr::memchr2(b'"', b'\\', r)) {
                        Some(q) if s.get(i + q) == Some(&b'\\') => i += q + 2,
                        Some(q) => {
                            i += q + 1;
                            break;
                        }
                        None => return None,
                    }
                }
            }
            Some(b'<') => {
                // Quotes cannot occur in a URI, so the next `>` closes it.
                i += s.get(i..).and_then(|r| memchr::memchr(b'>', r))? + 1;
            }
            _ => return Some(i),
        }
    }
    None
}

/// Decodes `%XX` escapes (RFC 3261 §25.1 `escaped`). Invalid escapes are kept literally, as
/// RFC 4475 §3.1.1.5 requires for `%` that is not an escape.
pub(crate) fn unescape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b
                .get(i + 1)
                .and_then(|h| hex_val(*h))
                .zip(b.get(i + 2).and_then(|l| hex_val(*l)));
            if let Some((h, l)) = hex {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses a decimal number of at most `u64` range; `None` on empty input, non-digits or overflow.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<&str> {
        ListIter::new(s.as_bytes())
            .map(|b| std::str::from_utf8(b).unwrap_or("?"))
            .collect()
    }

    #[test]
    fn list_split_respects_quotes_and_angle_brackets() {
        assert_eq!(
            split(r#""a, b" <sip:x@y;p=1,2>;q=1 , <sip:z> ,"\",x""#),
            vec![r#""a, b" <sip:x@y;p=1,2>;q=1"#, "<sip:z>", r#""\",x""#]
        );
        assert!(split("  ").is_empty());
        assert_eq!(split(" ,a,, b ,"), vec!["a", "b"]);
    }

    #[test]
    fn unescape_decodes_valid_escapes_only() {
        assert_eq!(unescape("%75se%72"), "user");
        assert_eq!(unescape("%Z%45"), "%ZE");
        assert_eq!(unescape("a%4"), "a%4");
    }

    #[test]
    fn quoted_string_keeps_escapes_and_fails_unterminated() {
        let mut c = Cursor::new(r#" "J Rosenberg \\\"" <x>"#);
        assert_eq!(c.quoted(), Some(r#"J Rosenberg \\\""#));
        let mut c = Cursor::new(r#""Mr. J. User <sip:j.user@example.com>"#);
        assert_eq!(c.quoted(), None);
    }

    #[test]
    fn decimal_parse_rejects_overflow() {
        assert_eq!(parse_u64(b"0068"), Some(68));
        assert_eq!(parse_u64(b"36893488147419103232"), None);
        assert_eq!(parse_u64(b"-1"), None);
    }
}
