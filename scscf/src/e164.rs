//! ENUM (RFC 6116): the domain name of an E.164 number and the SIP URI its NAPTR records
//! give (RFC 3402 §3.2 substitution expression). Pure functions; the driver does the DNS
//! query toward `scscf.enum_server`.

use regex::Regex;

/// Longest regexp field accepted from a NAPTR record.
const MAX_REGEXP: usize = 1024;

/// A NAPTR record as DNS returns it (RFC 3403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    /// Order: lower first.
    pub order: u16,
    /// Preference among equal orders: lower first.
    pub preference: u16,
    /// Flags (`u`: the result is a URI, RFC 6116 §2.4.1).
    pub flags: String,
    /// Services, e.g. `E2U+sip`.
    pub services: String,
    /// The substitution expression, e.g. `!^.*$!sip:bob@example.net!`.
    pub regexp: String,
    /// Replacement domain (unused by terminal `u` rules).
    pub replacement: String,
}

/// The ENUM domain of `number` (`+15550012` → `2.1.0.0.5.5.5.1.e164.arpa`, RFC 6116
/// §2.4): its digits reversed, dot-separated, under `suffix`. `None` without digits.
pub fn enum_domain(number: &str, suffix: &str) -> Option<String> {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut name: String = digits.iter().rev().flat_map(|d| [*d, '.']).collect();
    name.push_str(suffix.trim_matches('.'));
    Some(name)
}

/// Whether a services field names a SIP enumservice (`E2U+sip`, RFC 3764; also
/// `E2U+voice:sip` style).
fn is_sip_service(services: &str) -> bool {
    let s = services.to_ascii_lowercase();
    let Some(rest) = s.strip_prefix("e2u+") else {
        return false;
    };
    rest.split(['+', ':']).any(|p| p == "sip")
}

/// Applies a `delim pattern delim replacement delim flags` expression to `aus`.
fn substitute(expr: &str, aus: &str) -> Option<String> {
    if expr.len() > MAX_REGEXP {
        return None;
    }
    let delim = expr.chars().next()?;
    let parts: Vec<&str> = expr[delim.len_utf8()..].split(delim).collect();
    let (pattern, replacement) = match parts.as_slice() {
        [p, r, flags] if flags.is_empty() || flags.eq_ignore_ascii_case("i") => (*p, *r),
        _ => return None,
    };
    let re = Regex::new(pattern).ok()?;
    let caps = re.captures(aus)?;
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let i = d.to_digit(10).map_or(0, |v| v as usize);
                    out.push_str(caps.get(i).map_or("", |m| m.as_str()));
                }
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The SIP URI for `number` from its NAPTR records: the terminal (`u`) SIP enumservice
/// record of lowest order, then preference, whose expression applies (RFC 6116 §3.2).
pub fn sip_uri_of(number: &str, records: &[NaptrRecord]) -> Option<String> {
    let aus: String = std::iter::once('+')
        .chain(number.chars().filter(char::is_ascii_digit))
        .collect();
    let mut usable: Vec<&NaptrRecord> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("u") && is_sip_service(&r.services))
        .collect();
    usable.sort_by_key(|r| (r.order, r.preference));
    usable
        .into_iter()
        .filter_map(|r| substitute(&r.regexp, &aus))
        .find(|u| {
            let l = u.to_ascii_lowercase();
            l.starts_with("sip:") || l.starts_with("sips:")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naptr(order: u16, pref: u16, flags: &str, services: &str, regexp: &str) -> NaptrRecord {
        NaptrRecord {
            order,
            preference: pref,
            flags: flags.into(),
            services: services.into(),
            regexp: regexp.into(),
            replacement: ".".into(),
        }
    }

    #[test]
    fn enum_domain_reverses_the_digits_under_e164_arpa() {
        assert_eq!(
            enum_domain("+1-555-0012", "e164.arpa.").as_deref(),
            Some("2.1.0.0.5.5.5.1.e164.arpa")
        );
        assert_eq!(enum_domain("+", "e164.arpa"), None);
        assert_eq!(enum_domain("+1234567890123456", "e164.arpa"), None);
    }

    #[test]
    fn lowest_order_sip_record_wins_and_back_references_are_substituted() {
        let records = [
            naptr(20, 10, "u", "E2U+sip", "!^.*$!sip:late@example.net!"),
            naptr(
                10,
                20,
                "u",
                "E2U+sip",
                "!^\\+(.*)$!sip:\\1@ims.example;user=phone!",
            ),
            naptr(
                10,
                10,
                "u",
                "E2U+email:mailto",
                "!^.*$!mailto:x@example.net!",
            ),
            naptr(10, 5, "", "E2U+sip", "!^.*$!sip:nonterminal@example.net!"),
        ];
        assert_eq!(
            sip_uri_of("+15550012", &records).as_deref(),
            Some("sip:15550012@ims.example;user=phone")
        );
    }

    #[test]
    fn broken_or_foreign_expressions_give_no_uri() {
        let records = [
            naptr(10, 10, "u", "E2U+sip", "!^(.*$!sip:x@y!"),
            naptr(10, 11, "u", "E2U+sip", "!^1.*$!sip:x@y!"),
            naptr(10, 12, "u", "E2U+sip", "!^.*$!tel:+1!"),
            naptr(10, 13, "u", "E2U+sip", "no delimiters"),
        ];
        assert_eq!(sip_uri_of("+15550012", &records), None);
        assert_eq!(sip_uri_of("+15550012", &[]), None);
    }
}
