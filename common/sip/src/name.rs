//! Header names: the known headers with their compact forms, and any other token.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::scan;

macro_rules! std_headers {
    ($($konst:ident $variant:ident $canon:literal $lower:literal $compact:tt $list:literal;)*) => {
        /// Index of a known header.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub(crate) enum Std { $($variant,)* }

        impl Std {
            pub(crate) const fn canonical(self) -> &'static str {
                match self { $(Self::$variant => $canon,)* }
            }

            pub(crate) const fn compact(self) -> Option<u8> {
                match self { $(Self::$variant => std_headers!(@compact $compact),)* }
            }

            pub(crate) const fn is_list(self) -> bool {
                match self { $(Self::$variant => $list,)* }
            }

            /// Every known header with its lower-case long name.
            const ALL: &'static [(Self, &'static [u8])] = &[$((Self::$variant, $lower),)*];
        }

        impl HeaderName {
            $(
                #[doc = concat!("`", $canon, "`")]
                pub const $konst: Self = Self(Repr::Std(Std::$variant));
            )*
        }
    };
    (@compact -) => { None };
    (@compact $c:literal) => { Some($c) };
}

std_headers! {
    ACCEPT Accept "Accept" b"accept" - true;
    ACCEPT_CONTACT AcceptContact "Accept-Contact" b"accept-contact" b'a' true;
    ACCEPT_ENCODING AcceptEncoding "Accept-Encoding" b"accept-encoding" - true;
    ACCEPT_LANGUAGE AcceptLanguage "Accept-Language" b"accept-language" - true;
    ALERT_INFO AlertInfo "Alert-Info" b"alert-info" - true;
    ALLOW Allow "Allow" b"allow" - true;
    ALLOW_EVENTS AllowEvents "Allow-Events" b"allow-events" b'u' true;
    AUTHENTICATION_INFO AuthenticationInfo "Authentication-Info" b"authentication-info" - false;
    AUTHORIZATION Authorization "Authorization" b"authorization" - false;
    CALL_ID CallId "Call-ID" b"call-id" b'i' false;
    CALL_INFO CallInfo "Call-Info" b"call-info" - true;
    CONTACT Contact "Contact" b"contact" b'm' true;
    CONTENT_DISPOSITION ContentDisposition "Content-Disposition" b"content-disposition" - false;
    CONTENT_ENCODING ContentEncoding "Content-Encoding" b"content-encoding" b'e' true;
    CONTENT_LANGUAGE ContentLanguage "Content-Language" b"content-language" - true;
    CONTENT_LENGTH ContentLength "Content-Length" b"content-length" b'l' false;
    CONTENT_TYPE ContentType "Content-Type" b"content-type" b'c' false;
    CSEQ CSeq "CSeq" b"cseq" - false;
    DATE Date "Date" b"date" - false;
    ERROR_INFO ErrorInfo "Error-Info" b"error-info" - true;
    EVENT Event "Event" b"event" b'o' false;
    EXPIRES Expires "Expires" b"expires" - false;
    FEATURE_CAPS FeatureCaps "Feature-Caps" b"feature-caps" - true;
    FROM From "From" b"from" b'f' false;
    HISTORY_INFO HistoryInfo "History-Info" b"history-info" - true;
    IDENTITY Identity "Identity" b"identity" b'y' false;
    IDENTITY_INFO IdentityInfo "Identity-Info" b"identity-info" b'n' false;
    IN_REPLY_TO InReplyTo "In-Reply-To" b"in-reply-to" - true;
    MAX_FORWARDS MaxForwards "Max-Forwards" b"max-forwards" - false;
    MIME_VERSION MimeVersion "MIME-Version" b"mime-version" - false;
    MIN_EXPIRES MinExpires "Min-Expires" b"min-expires" - false;
    MIN_SE MinSe "Min-SE" b"min-se" - false;
    ORGANIZATION Organization "Organization" b"organization" - false;
    P_ACCESS_NETWORK_INFO PAccessNetworkInfo "P-Access-Network-Info" b"p-access-network-info" - true;
    P_ASSERTED_IDENTITY PAssertedIdentity "P-Asserted-Identity" b"p-asserted-identity" - true;
    P_ASSOCIATED_URI PAssociatedUri "P-Associated-URI" b"p-associated-uri" - true;
    P_CALLED_PARTY_ID PCalledPartyId "P-Called-Party-ID" b"p-called-party-id" - false;
    P_CHARGING_FUNCTION_ADDRESSES PChargingFunctionAddresses "P-Charging-Function-Addresses" b"p-charging-function-addresses" - false;
    P_CHARGING_VECTOR PChargingVector "P-Charging-Vector" b"p-charging-vector" - false;
    P_PREFERRED_IDENTITY PPreferredIdentity "P-Preferred-Identity" b"p-preferred-identity" - true;
    P_SERVED_USER PServedUser "P-Served-User" b"p-served-user" - false;
    P_VISITED_NETWORK_ID PVisitedNetworkId "P-Visited-Network-ID" b"p-visited-network-id" - true;
    PATH Path "Path" b"path" - true;
    PRIORITY Priority "Priority" b"priority" - false;
    PRIVACY Privacy "Privacy" b"privacy" - false;
    PROXY_AUTHENTICATE ProxyAuthenticate "Proxy-Authenticate" b"proxy-authenticate" - false;
    PROXY_AUTHORIZATION ProxyAuthorization "Proxy-Authorization" b"proxy-authorization" - false;
    PROXY_REQUIRE ProxyRequire "Proxy-Require" b"proxy-require" - true;
    RACK RAck "RAck" b"rack" - false;
    REASON Reason "Reason" b"reason" - true;
    RECORD_ROUTE RecordRoute "Record-Route" b"record-route" - true;
    REFER_TO ReferTo "Refer-To" b"refer-to" b'r' false;
    REFERRED_BY ReferredBy "Referred-By" b"referred-by" b'b' false;
    REJECT_CONTACT RejectContact "Reject-Contact" b"reject-contact" b'j' true;
    REPLY_TO ReplyTo "Reply-To" b"reply-to" - false;
    REQUEST_DISPOSITION RequestDisposition "Request-Disposition" b"request-disposition" b'd' true;
    REQUIRE Require "Require" b"require" - true;
    RETRY_AFTER RetryAfter "Retry-After" b"retry-after" - false;
    ROUTE Route "Route" b"route" - true;
    RSEQ RSeq "RSeq" b"rseq" - false;
    SECURITY_CLIENT SecurityClient "Security-Client" b"security-client" - true;
    SECURITY_SERVER SecurityServer "Security-Server" b"security-server" - true;
    SECURITY_VERIFY SecurityVerify "Security-Verify" b"security-verify" - true;
    SERVER Server "Server" b"server" - false;
    SERVICE_ROUTE ServiceRoute "Service-Route" b"service-route" - true;
    SESSION_EXPIRES SessionExpires "Session-Expires" b"session-expires" b'x' false;
    SUBJECT Subject "Subject" b"subject" b's' false;
    SUBSCRIPTION_STATE SubscriptionState "Subscription-State" b"subscription-state" - false;
    SUPPORTED Supported "Supported" b"supported" b'k' true;
    TIMESTAMP Timestamp "Timestamp" b"timestamp" - false;
    TO To "To" b"to" b't' false;
    UNSUPPORTED Unsupported "Unsupported" b"unsupported" - true;
    USER_AGENT UserAgent "User-Agent" b"user-agent" - false;
    VIA Via "Via" b"via" b'v' true;
    WARNING Warning "Warning" b"warning" - true;
    WWW_AUTHENTICATE WwwAuthenticate "WWW-Authenticate" b"www-authenticate" - false;
}

/// Lookup tables: known headers bucketed by name length, and compact forms by letter.
struct Tables {
    by_len: Vec<Vec<(Std, &'static [u8])>>,
    compact: [Option<Std>; 26],
}

fn tables() -> &'static Tables {
    static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let max = Std::ALL.iter().map(|(_, n)| n.len()).max().unwrap_or(0);
        let mut by_len = vec![Vec::new(); max + 1];
        let mut compact = [None; 26];
        for &(std, name) in Std::ALL {
            if let Some(bucket) = by_len.get_mut(name.len()) {
                bucket.push((std, name));
            }
            if let Some(c) = std.compact()
                && let Some(slot) = compact.get_mut(usize::from(c.wrapping_sub(b'a')))
            {
                *slot = Some(std);
            }
        }
        Tables { by_len, compact }
    })
}

impl Std {
    /// Recognises a header name as it appears on the wire: any case, long or compact form.
    pub(crate) fn lookup(name: &[u8]) -> Option<Self> {
        let t = tables();
        if let [c] = name {
            return t
                .compact
                .get(usize::from(c.to_ascii_lowercase().wrapping_sub(b'a')))
                .copied()
                .flatten();
        }
        let first = name.first()? | 0x20;
        t.by_len
            .get(name.len())?
            .iter()
            .find(|(_, n)| n.first() == Some(&first) && eq_folded(name, n))
            .map(|(s, _)| *s)
    }
}

/// Compares a wire name with a lower-case known name of the same length, eight bytes at a time.
///
/// Setting bit 5 lower-cases ASCII letters and leaves digits and `-` alone; the only other
/// bytes it could turn into a letter, digit or `-` are upper-case letters, control characters
/// 0x10-0x19 (no known name has digits) and CR (which never occurs inside a line). So equality
/// here means the names are equal ignoring ASCII case.
fn eq_folded(name: &[u8], lower: &[u8]) -> bool {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    if name.len() != lower.len() {
        return false;
    }
    let mut a = name.chunks_exact(8);
    let mut b = lower.chunks_exact(8);
    for (x, y) in a.by_ref().zip(b.by_ref()) {
        let x = x.try_into().map_or(0, u64::from_le_bytes);
        let y = y.try_into().map_or(1, u64::from_le_bytes);
        if x | FOLD != y {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(x, y)| x | 0x20 == *y)
}

/// A header field name. Known headers compare by identity, so `Via`, `v` and `VIA` are the same
/// name; other names compare case-insensitively (RFC 3261 §7.3.1).
#[derive(Clone)]
pub struct HeaderName(pub(crate) Repr);

#[derive(Clone)]
pub(crate) enum Repr {
    Std(Std),
    Other(Cow<'static, str>),
}

impl HeaderName {
    /// A name from text: known long or compact forms map to the known header, anything else must
    /// be a token. `None` for an empty or non-token name.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Option<Self> {
        let name = name.into();
        if name.is_empty() || !name.bytes().all(scan::is_token) {
            return None;
        }
        Some(match Std::lookup(name.as_bytes()) {
            Some(s) => Self(Repr::Std(s)),
            None => Self(Repr::Other(name)),
        })
    }

    pub(crate) fn from_wire(name: &[u8], std: Option<Std>) -> Self {
        match std {
            Some(s) => Self(Repr::Std(s)),
            None => Self(Repr::Other(Cow::Owned(
                String::from_utf8_lossy(name).into_owned(),
            ))),
        }
    }

    /// The canonical long form for known headers, the name as given otherwise.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Std(s) => s.canonical(),
            Repr::Other(n) => n,
        }
    }

    /// The compact form (RFC 3261 §7.3.3 and extensions), if the header has one.
    pub fn compact(&self) -> Option<char> {
        match &self.0 {
            Repr::Std(s) => s.compact().map(char::from),
            Repr::Other(_) => None,
        }
    }

    /// Whether the header's grammar is a comma-separated list, so several values may share one
    /// line. Unknown headers are never split.
    pub fn is_list(&self) -> bool {
        match &self.0 {
            Repr::Std(s) => s.is_list(),
            Repr::Other(_) => false,
        }
    }

    /// Whether this is one of the headers the crate knows by name.
    pub fn is_known(&self) -> bool {
        matches!(self.0, Repr::Std(_))
    }

    /// Whether a field with this raw name and recognised identity has this name.
    pub(crate) fn matches(&self, raw: &[u8], std: Option<Std>) -> bool {
        match &self.0 {
            Repr::Std(s) => std == Some(*s),
            Repr::Other(n) => std.is_none() && raw.eq_ignore_ascii_case(n.as_bytes()),
        }
    }

    pub(crate) fn std(&self) -> Option<Std> {
        match self.0 {
            Repr::Std(s) => Some(s),
            Repr::Other(_) => None,
        }
    }

    /// The `&'static str` canonical name for error reports.
    pub(crate) fn static_name(&self) -> &'static str {
        match self.0 {
            Repr::Std(s) => s.canonical(),
            Repr::Other(_) => "extension",
        }
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Std(a), Repr::Std(b)) => a == b,
            (Repr::Other(a), Repr::Other(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl Eq for HeaderName {}

impl Hash for HeaderName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            Repr::Std(s) => s.hash(state),
            Repr::Other(n) => {
                for b in n.bytes() {
                    state.write_u8(b.to_ascii_lowercase());
                }
            }
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_long_forms_in_any_case_are_the_same_name() {
        for raw in ["v", "V", "Via", "VIA", "vIa"] {
            assert_eq!(Std::lookup(raw.as_bytes()), Some(Std::Via), "{raw}");
        }
        let pairs = [
            ("i", "Call-ID"),
            ("m", "Contact"),
            ("e", "Content-Encoding"),
            ("l", "Content-Length"),
            ("f", "From"),
            ("t", "To"),
            ("k", "Supported"),
            ("c", "Content-Type"),
            ("s", "Subject"),
            ("o", "Event"),
            ("u", "Allow-Events"),
            ("r", "Refer-To"),
            ("x", "Session-Expires"),
            ("y", "Identity"),
            ("b", "Referred-By"),
            ("j", "Reject-Contact"),
            ("a", "Accept-Contact"),
            ("d", "Request-Disposition"),
            ("n", "Identity-Info"),
        ];
        for (c, long) in pairs {
            assert_eq!(HeaderName::new(c), HeaderName::new(long), "{c}");
            assert_eq!(
                HeaderName::new(long)
                    .and_then(|h| h.compact())
                    .map(String::from)
                    .as_deref(),
                Some(c)
            );
        }
    }

    #[test]
    fn unknown_names_compare_case_insensitively() {
        let a = HeaderName::new("X-Foo");
        assert_eq!(a, HeaderName::new("x-foo"));
        assert!(a.is_some_and(|a| !a.is_known() && !a.is_list()));
        assert_eq!(HeaderName::new("Bad Name"), None);
        assert_eq!(
            HeaderName::new("C%6Fntact").map(|h| h.is_known()),
            Some(false)
        );
    }
}
