//! URI comparison (RFC 3261 §19.1.4, RFC 3966 §4).

use std::borrow::Cow;

use crate::scan::unescape;
use crate::uri::{AbsoluteUri, SipUri, TelUri, Uri};
use crate::{Param, Params};

/// Parameters that, when present in either SIP URI, must be present in both and match
/// (§19.1.4, fifth rule).
const SIGNIFICANT: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];

impl Uri<'_> {
    /// Whether two URIs are equivalent by the comparison rules of RFC 3261 §19.1.4 (SIP and
    /// SIPS), RFC 3966 §4 (tel), or byte equality with a case-insensitive scheme (others).
    ///
    /// The relation is not transitive (§19.1.4: `;security=on` and `;security=off` both equal a
    /// URI without `security`, not each other), so it is a method and not `PartialEq`.
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => a.equivalent(b),
            (Uri::Tel(a), Uri::Tel(b)) => a.equivalent(b),
            (Uri::Other(a), Uri::Other(b)) => a.equivalent(b),
            _ => false,
        }
    }
}

impl Uri<'_> {
    /// A text form in which URIs equivalent under [`Uri::equivalent`] print alike, except that
    /// parameters outside `user`, `ttl`, `method`, `maddr` and `transport` are left out: the
    /// scheme and host in lower case, user and password unescaped, the significant parameters
    /// and the headers sorted. For hashing (loop detection, §16.3 step 4), not for the wire.
    pub fn comparison_key(&self) -> String {
        use std::fmt::Write as _;
        let mut k = String::new();
        match self {
            Uri::Sip(u) => {
                k.push_str(if u.secure { "sips:" } else { "sip:" });
                if let Some(user) = &u.user {
                    k.push_str(&unescape(user));
                    if let Some(pw) = &u.password {
                        let _ = write!(k, ":{}", unescape(pw));
                    }
                    k.push('@');
                }
                k.push_str(&u.host.to_string().to_ascii_lowercase());
                if let Some(p) = u.port {
                    let _ = write!(k, ":{p}");
                }
                for name in SIGNIFICANT {
                    if let Some(p) = u.params.find(name) {
                        let v = p.value().map(unescape).unwrap_or_default();
                        let _ = write!(k, ";{name}={}", v.to_ascii_lowercase());
                    }
                }
                let mut h = header_pairs(u.headers.as_deref());
                h.sort();
                for (n, v) in h {
                    let _ = write!(k, "?{n}={v}");
                }
            }
            Uri::Tel(t) => {
                let _ = write!(k, "tel:{}", t.digits().to_ascii_lowercase());
                let mut ps: Vec<String> = t
                    .params
                    .iter()
                    .map(|p| {
                        format!(
                            ";{}={}",
                            p.name().to_ascii_lowercase(),
                            p.value()
                                .map(unescape)
                                .unwrap_or_default()
                                .to_ascii_lowercase()
                        )
                    })
                    .collect();
                ps.sort();
                k.extend(ps);
            }
            Uri::Other(o) => {
                let _ = write!(k, "{}:{}", o.scheme.to_ascii_lowercase(), o.rest);
            }
        }
        k
    }
}

impl SipUri<'_> {
    /// RFC 3261 §19.1.4: same scheme; user and password compared case-sensitively after
    /// unescaping; host case-insensitively; ports equal (an absent port differs from an explicit
    /// default); `user`, `ttl`, `method`, `maddr` and `transport` present in both or neither and
    /// equal; other parameters equal where both carry them; every header present in both.
    pub fn equivalent(&self, other: &SipUri<'_>) -> bool {
        self.secure == other.secure
            && opt_eq(self.user.as_deref(), other.user.as_deref(), |a, b| {
                unescape(a) == unescape(b)
            })
            && opt_eq(
                self.password.as_deref(),
                other.password.as_deref(),
                |a, b| unescape(a) == unescape(b),
            )
            && self.host_equivalent(other)
            && self.port == other.port
            && params_equivalent(&self.params, &other.params)
            && headers_equivalent(self.headers.as_deref(), other.headers.as_deref())
    }

    fn host_equivalent(&self, other: &SipUri<'_>) -> bool {
        use crate::Host;
        match (&self.host, &other.host) {
            (Host::Name(a), Host::Name(b)) => unescape(a).eq_ignore_ascii_case(&unescape(b)),
            (a, b) => a.matches(b),
        }
    }
}

impl TelUri<'_> {
    /// RFC 3966 §4: numbers equal once visual separators are removed (hex digits
    /// case-insensitively), and the same parameters in any order, compared case-insensitively.
    pub fn equivalent(&self, other: &TelUri<'_>) -> bool {
        self.digits().eq_ignore_ascii_case(&other.digits())
            && self.params.len() == other.params.len()
            && self.params.iter().all(|p| {
                match (self.params.find(p.name()), other.params.find(p.name())) {
                    (Some(x), Some(y)) => param_value_eq(x, y),
                    _ => false,
                }
            })
            && other
                .params
                .iter()
                .all(|p| self.params.find(p.name()).is_some())
    }
}

impl AbsoluteUri<'_> {
    /// Scheme case-insensitively, the rest byte for byte.
    pub fn equivalent(&self, other: &AbsoluteUri<'_>) -> bool {
        self.scheme.eq_ignore_ascii_case(&other.scheme) && self.rest == other.rest
    }
}

fn opt_eq(a: Option<&str>, b: Option<&str>, eq: impl Fn(&str, &str) -> bool) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => eq(a, b),
        _ => false,
    }
}

fn param_value_eq(a: &Param<'_>, b: &Param<'_>) -> bool {
    opt_eq(a.value(), b.value(), |x, y| {
        unescape(x).eq_ignore_ascii_case(&unescape(y))
    })
}

fn params_equivalent(a: &Params<'_>, b: &Params<'_>) -> bool {
    let significant_ok = SIGNIFICANT
        .iter()
        .all(|name| match (a.find(name), b.find(name)) {
            (None, None) => true,
            (Some(x), Some(y)) => param_value_eq(x, y),
            _ => false,
        });
    // With a repeated name, the first occurrence counts (as `Params::find` reads it).
    significant_ok
        && a.iter()
            .all(|p| match (a.find(p.name()), b.find(p.name())) {
                (Some(x), Some(y)) => param_value_eq(x, y),
                _ => true,
            })
}

/// `hname=hvalue` pairs: names case-insensitive, values unescaped; order does not matter.
fn headers_equivalent(a: Option<&str>, b: Option<&str>) -> bool {
    let (mut a, mut b) = (header_pairs(a), header_pairs(b));
    a.sort();
    b.sort();
    a == b
}

fn header_pairs(h: Option<&str>) -> Vec<(String, Cow<'_, str>)> {
    h.unwrap_or_default()
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (unescape(k).to_ascii_lowercase(), unescape(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLES: &str = include_str!("../testdata/rfc3261_19_1_4.txt");

    fn parse(s: &str) -> Uri<'_> {
        Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn rfc3261_19_1_4_examples_compare_as_the_rfc_says() {
        let mut n = 0;
        for line in EXAMPLES.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split('\t');
            let (Some(kind), Some(a), Some(b)) = (f.next(), f.next(), f.next()) else {
                panic!("bad line {line:?}");
            };
            let (a, b) = (parse(a), parse(b));
            let want = kind == "=";
            assert_eq!(a.equivalent(&b), want, "{a} vs {b}");
            assert_eq!(b.equivalent(&a), want, "symmetry: {b} vs {a}");
            n += 1;
        }
        assert_eq!(n, 13, "every example line was read");
    }

    #[test]
    fn equivalent_examples_share_a_comparison_key_and_differing_ones_do_not() {
        let a = parse("sip:%61lice@atlanta.com;transport=TCP");
        let b = parse("sip:alice@AtLanTa.CoM;Transport=tcp;foo=bar");
        assert_eq!(a.comparison_key(), b.comparison_key());
        let c = parse("sip:alice@atlanta.com:5060;transport=tcp");
        assert_ne!(a.comparison_key(), c.comparison_key());
        let d = parse("sip:a@h?Subject=x&b=%41");
        let e = parse("sip:a@h?b=A&subject=x");
        assert_eq!(d.comparison_key(), e.comparison_key());
    }

    #[test]
    fn sip_and_sips_are_never_equivalent() {
        assert!(!parse("sip:alice@atlanta.com").equivalent(&parse("sips:alice@atlanta.com")));
    }

    #[test]
    fn host_case_and_escaped_param_values_do_not_matter() {
        assert!(
            parse("sip:a@example.com;maddr=%31.2.3.4")
                .equivalent(&parse("sip:a@EXAMPLE.com;maddr=1.2.3.4"))
        );
    }

    #[test]
    fn password_is_compared_case_sensitively() {
        assert!(!parse("sip:a:Pw@h").equivalent(&parse("sip:a:pw@h")));
        assert!(!parse("sip:a:pw@h").equivalent(&parse("sip:a@h")));
    }

    #[test]
    fn tel_uris_ignore_visual_separators_and_parameter_order() {
        assert!(
            parse("tel:+1-201-555-0123;ext=1;isub=X")
                .equivalent(&parse("tel:+1.201.555.0123;isub=x;ext=1"))
        );
        assert!(!parse("tel:+12015550123").equivalent(&parse("tel:+12015550123;ext=1")));
        assert!(!parse("tel:+12015550123").equivalent(&parse("sip:+12015550123@h")));
    }

    #[test]
    fn other_schemes_compare_scheme_case_insensitively_and_rest_exactly() {
        assert!(parse("URN:x:y").equivalent(&parse("urn:x:y")));
        assert!(!parse("urn:x:y").equivalent(&parse("urn:x:Y")));
    }
}
