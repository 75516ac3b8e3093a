//! Grammar helpers shared by the parsers (RFC 3261 §25.1): character classes, a bounds-checked
//! cursor over header values, and comma-list splitting that respects quotes and angle brackets.

/// `token` characters: alphanumerics and `-.!%*_+`'~`.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Linear white space inside a header value. CR and LF only occur there as line folding, which
/// the message parser has already validated.
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
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

    pub(crate) fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
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
    pub(crate) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        // The predicates used only accept ASCII, so both ends are char boundaries; `get`
        // still guards against a non-ASCII predicate.
        self.s.get(start..self.pos).unwrap_or_default()
    }

    /// Takes a non-empty token after optional LWS.
    pub(crate) fn token(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let t = self.take_while(is_token);
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
            match bytes.get(i)? {
                b'"' => break,
                b'\\' => i += 2,
                _ => i += 1,
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
        let mut in_quote = false;
        let mut in_angle = false;
        let mut i = 0;
        while let Some(&b) = s.get(i) {
            match b {
                b'\\' if in_quote => i += 1,
                b'"' => in_quote = !in_quote,
                b'<' if !in_quote => in_angle = true,
                b'>' if !in_quote => in_angle = false,
                b',' if !in_quote && !in_angle => {
                    let item = trim(s.get(..i).unwrap_or_default());
                    s = s.get(i + 1..).unwrap_or_default();
                    if item.is_empty() {
                        in_angle = false;
                        i = 0;
                        continue;
                    }
                    self.rest = Some(s);
                    return Some(item);
                }
                _ => {}
            }
            i += 1;
        }
        self.rest = None;
        let item = trim(s);
        (!item.is_empty()).then_some(item)
    }
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
