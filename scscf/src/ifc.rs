//! The Cx User-Data (the IMSSubscription document of TS 29.228 Annex B/E) as the S-CSCF reads
//! it, and initial filter criteria evaluation (TS 29.228 Annex B.2.2, TS 24.229 §5.4.3.2).
//!
//! [`ImsSubscription::parse`] keeps what the S-CSCF uses: the public identities of each service
//! profile (with barring), and the iFCs with their trigger points compiled once. Elements it
//! does not use are skipped. [`ServiceProfile::matching`] returns the iFCs a request triggers,
//! in priority order.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::Event;
use regex::Regex;

/// Largest User-Data accepted.
pub const MAX_USER_DATA: usize = 256 * 1024;
/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 32;

/// Why User-Data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserDataError {
    /// Not well-formed XML.
    #[error("User-Data is not well-formed XML: {0}")]
    Xml(String),
    /// Well-formed, but not an IMSSubscription the S-CSCF can use.
    #[error("User-Data is not a usable IMSSubscription: {0}")]
    Content(&'static str),
    /// Longer than [`MAX_USER_DATA`].
    #[error("User-Data is {0} bytes, more than the 256 KiB accepted")]
    TooLarge(usize),
}

/// A public identity of a service profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIdentity {
    /// The IMPU (`Identity`).
    pub identity: String,
    /// `BarringIndication` 1: the identity may not be used (TS 29.228 §6.2).
    pub barred: bool,
}

/// A service point trigger.
#[derive(Debug, Clone)]
pub struct Spt {
    /// `ConditionNegated`.
    pub negated: bool,
    /// `Group` numbers.
    pub groups: Vec<i64>,
    /// What it matches.
    pub kind: SptKind,
    /// `RegistrationType` values for a REGISTER method SPT: 0 initial, 1 re-, 2 de-registration.
    pub registration_types: Vec<i64>,
}

/// The condition of an SPT.
#[derive(Debug, Clone)]
pub enum SptKind {
    /// `RequestURI`: a regular expression on the Request-URI.
    RequestUri(Option<Regex>),
    /// `Method`.
    Method(String),
    /// `SIPHeader`: present, and when `content` is given a value matches it.
    Header {
        /// Header name.
        header: String,
        /// Regular expression on a value.
        content: Option<Regex>,
    },
    /// `SessionCase`: 0 originating, 1 terminating registered, 2 terminating unregistered,
    /// 3 originating unregistered, 4 originating CDIV.
    SessionCase(i64),
    /// `SessionDescription`: an SDP line type and a regular expression on its content.
    SessionDescription {
        /// Line type (`m`, `a`...).
        line: String,
        /// Regular expression on the content.
        content: Option<Regex>,
    },
    /// An SPT this S-CSCF cannot evaluate (unknown element or a bad regular expression): it
    /// never matches.
    Unusable,
}

/// A trigger point in conjunctive or disjunctive normal form.
#[derive(Debug, Clone, Default)]
pub struct TriggerPoint {
    /// `ConditionTypeCNF`.
    pub cnf: bool,
    /// The SPTs.
    pub spts: Vec<Spt>,
}

/// The AS an iFC names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplicationServer {
    /// `ServerName`: the AS's SIP URI.
    pub server_name: String,
    /// `DefaultHandling`: 0 SESSION_CONTINUED, 1 SESSION_TERMINATED.
    pub default_handling: i64,
    /// `ServiceInfo`, for the third-party REGISTER body.
    pub service_info: Option<String>,
    /// `IncludeRegisterRequest`.
    pub include_register_request: bool,
    /// `IncludeRegisterResponse`.
    pub include_register_response: bool,
}

/// One initial filter criterion.
#[derive(Debug, Clone, Default)]
pub struct Ifc {
    /// `Priority`.
    pub priority: i64,
    /// `TriggerPoint`; absent matches everything.
    pub trigger: Option<TriggerPoint>,
    /// `ApplicationServer`.
    pub application_server: ApplicationServer,
    /// `ProfilePartIndicator`: 0 registered, 1 unregistered; absent means both.
    pub profile_part: Option<i64>,
}

/// One `ServiceProfile`.
#[derive(Debug, Clone, Default)]
pub struct ServiceProfile {
    /// Its public identities, in document order.
    pub public_identities: Vec<PublicIdentity>,
    /// Its iFCs, sorted by priority.
    pub ifcs: Vec<Ifc>,
}

/// The parts of an IMSSubscription the S-CSCF uses.
#[derive(Debug, Clone, Default)]
pub struct ImsSubscription {
    /// `PrivateID`.
    pub private_id: String,
    /// The service profiles.
    pub profiles: Vec<ServiceProfile>,
}

/// What an iFC is evaluated against.
#[derive(Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The method.
    pub method: &'a str,
    /// The Request-URI.
    pub request_uri: &'a str,
    /// Header lookup: every value of a header, by name.
    pub headers: &'a dyn Fn(&str) -> Vec<String>,
    /// The SDP body, if any.
    pub sdp: &'a str,
    /// The session case (see [`SptKind::SessionCase`]).
    pub session_case: i64,
    /// For REGISTER: 0 initial, 1 re-, 2 de-registration.
    pub registration_type: Option<i64>,
    /// Whether the served identity is registered (selects the profile part).
    pub registered: bool,
}

impl Spt {
    fn matches(&self, f: &RequestFacts<'_>) -> bool {
        let hit = match &self.kind {
            SptKind::RequestUri(re) => re.as_ref().is_some_and(|r| r.is_match(f.request_uri)),
            SptKind::Method(m) => {
                m.eq_ignore_ascii_case(f.method)
                    && (self.registration_types.is_empty()
                        || !m.eq_ignore_ascii_case("REGISTER")
                        || f.registration_type
                            .is_some_and(|t| self.registration_types.contains(&t)))
            }
            SptKind::Header { header, content } => {
                let values = (f.headers)(header);
                match content {
                    None => !values.is_empty(),
                    Some(re) => values.iter().any(|v| re.is_match(v)),
                }
            }
            SptKind::SessionCase(c) => *c == f.session_case,
            SptKind::SessionDescription { line, content } => f.sdp.lines().any(|l| {
                l.strip_prefix(line.as_str())
                    .and_then(|rest| rest.strip_prefix('='))
                    .is_some_and(|rest| content.as_ref().is_none_or(|re| re.is_match(rest)))
            }),
            SptKind::Unusable => return false,
        };
        hit != self.negated
    }
}

impl TriggerPoint {
    /// TS 29.228 Annex B.2.2: CNF is the AND of groups, each the OR of its SPTs; DNF is the OR
    /// of groups, each the AND of its SPTs. An SPT may belong to several groups.
    pub fn matches(&self, f: &RequestFacts<'_>) -> bool {
        let mut groups: Vec<i64> = self.spts.iter().flat_map(|s| s.groups.clone()).collect();
        groups.sort_unstable();
        groups.dedup();
        if groups.is_empty() {
            return true;
        }
        let in_group = |g: i64| self.spts.iter().filter(move |s| s.groups.contains(&g));
        if self.cnf {
            groups.iter().all(|&g| in_group(g).any(|s| s.matches(f)))
        } else {
            groups.iter().any(|&g| in_group(g).all(|s| s.matches(f)))
        }
    }
}

impl ServiceProfile {
    /// The iFCs `facts` trigger, lowest priority value first (TS 24.229 §5.4.3.2).
    pub fn matching<'a>(&'a self, facts: &RequestFacts<'_>) -> Vec<&'a Ifc> {
        self.ifcs
            .iter()
            .filter(|i| match i.profile_part {
                Some(0) => facts.registered,
                Some(1) => !facts.registered,
                _ => true,
            })
            .filter(|i| i.trigger.as_ref().is_none_or(|t| t.matches(facts)))
            .collect()
    }
}

impl ServiceProfile {
    /// The first iFC at position `from` or later (in priority order) that `facts` trigger,
    /// with its position: the S-CSCF continues from the next one when the request comes back
    /// from the AS (TS 24.229 §5.4.3.2 step 4).
    pub fn next_match(&self, facts: &RequestFacts<'_>, from: usize) -> Option<(usize, &Ifc)> {
        self.ifcs.iter().enumerate().skip(from).find(|(_, i)| {
            (match i.profile_part {
                Some(0) => facts.registered,
                Some(1) => !facts.registered,
                _ => true,
            }) && i.trigger.as_ref().is_none_or(|t| t.matches(facts))
        })
    }
}

impl ImsSubscription {
    /// The profile holding `impu` (compared case-insensitively).
    pub fn profile_of(&self, impu: &str) -> Option<&ServiceProfile> {
        self.profiles.iter().find(|p| {
            p.public_identities
                .iter()
                .any(|i| i.identity.eq_ignore_ascii_case(impu))
        })
    }

    /// The document when it has initial filter criteria, else `None`: what the registrar keeps
    /// (the identities live in the registration already).
    pub fn with_ifcs(self) -> Option<Self> {
        self.profiles
            .iter()
            .any(|p| !p.ifcs.is_empty())
            .then_some(self)
    }

    /// Every public identity of the document, in order: the implicit registration set the HSS
    /// sent (TS 29.228 §6.1.2, default identity first).
    pub fn identities(&self) -> impl Iterator<Item = &PublicIdentity> {
        self.profiles
            .iter()
            .flat_map(|p| p.public_identities.iter())
    }

    /// Parses the document. Unknown elements are skipped; regular expressions that do not
    /// compile make their SPT unusable (never matching) rather than failing the document.
    pub fn parse(xml: &str) -> Result<Self, UserDataError> {
        if xml.len() > MAX_USER_DATA {
            return Err(UserDataError::TooLarge(xml.len()));
        }
        let mut reader = Reader::from_str(xml);
        let mut stack: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut sub = Self::default();
        let mut profile: Option<ServiceProfile> = None;
        let mut identity: Option<PublicIdentity> = None;
        let mut ifc: Option<Ifc> = None;
        let mut trigger: Option<TriggerPoint> = None;
        let mut spt: Option<RawSpt> = None;
        let mut seen_root = false;
        loop {
            let ev = reader
                .read_event()
                .map_err(|e| UserDataError::Xml(e.to_string()))?;
            match ev {
                Event::Start(e) => {
                    let name = e.local_name().as_ref().to_owned();
                    if stack.is_empty() {
                        if name != "IMSSubscription" {
                            return Err(UserDataError::Content("the root is not IMSSubscription"));
                        }
                        seen_root = true;
                    }
                    if stack.len() >= MAX_DEPTH {
                        return Err(UserDataError::Content("nested too deeply"));
                    }
                    match name.as_str() {
                        "ServiceProfile" => profile = Some(ServiceProfile::default()),
                        "PublicIdentity" => {
                            identity = Some(PublicIdentity {
                                identity: String::new(),
                                barred: false,
                            });
                        }
                        "InitialFilterCriteria" => ifc = Some(Ifc::default()),
                        "TriggerPoint" => trigger = Some(TriggerPoint::default()),
                        "SPT" => spt = Some(RawSpt::default()),
                        _ => {}
                    }
                    stack.push(name);
                    text.clear();
                }
                Event::Empty(e) => {
                    let name = e.local_name();
                    match (name.as_ref(), ifc.as_mut()) {
                        ("IncludeRegisterRequest", Some(i)) => {
                            i.application_server.include_register_request = true;
                        }
                        ("IncludeRegisterResponse", Some(i)) => {
                            i.application_server.include_register_response = true;
                        }
                        _ => {}
                    }
                }
                Event::Text(t) => text.push_str(&t.xml10_content()),
                Event::CData(c) => text.push_str(&c.xml10_content()),
                Event::GeneralRef(r) => {
                    let s: Cow<'_, str> = match r.resolve_char_ref() {
                        Ok(Some(c)) => Cow::Owned(c.to_string()),
                        _ => match r.as_ref() {
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "amp" => "&".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            _ => {
                                return Err(UserDataError::Xml(
                                    "unknown entity reference".to_owned(),
                                ));
                            }
                        },
                    };
                    text.push_str(&s);
                }
                Event::End(_) => {
                    let Some(name) = stack.pop() else {
                        return Err(UserDataError::Xml("unbalanced end tag".to_owned()));
                    };
                    let parent = stack.last().map(String::as_str).unwrap_or_default();
                    let value = text.trim().to_owned();
                    text.clear();
                    end_element(
                        &name,
                        parent,
                        value,
                        &mut sub,
                        &mut profile,
                        &mut identity,
                        &mut ifc,
                        &mut trigger,
                        &mut spt,
                    );
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !seen_root || !stack.is_empty() {
            return Err(UserDataError::Content(
                "no complete IMSSubscription element",
            ));
        }
        if sub.profiles.is_empty() {
            return Err(UserDataError::Content("no ServiceProfile"));
        }
        Ok(sub)
    }
}

#[derive(Default)]
struct RawSpt {
    negated: bool,
    groups: Vec<i64>,
    kind: Option<SptKind>,
    registration_types: Vec<i64>,
    header: Option<String>,
    content: Option<String>,
    line: Option<String>,
}

fn compile(re: &str) -> Option<Regex> {
    match Regex::new(re) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(regex = re, error = %e, "iFC regular expression does not compile; SPT never matches");
            None
        }
    }
}

fn flag(v: &str) -> bool {
    v == "1" || v.eq_ignore_ascii_case("true")
}

#[allow(clippy::too_many_arguments)]
fn end_element(
    name: &str,
    parent: &str,
    value: String,
    sub: &mut ImsSubscription,
    profile: &mut Option<ServiceProfile>,
    identity: &mut Option<PublicIdentity>,
    ifc: &mut Option<Ifc>,
    trigger: &mut Option<TriggerPoint>,
    spt: &mut Option<RawSpt>,
) {
    match (name, parent) {
        ("PrivateID", _) => sub.private_id = value,
        ("Identity", "PublicIdentity") => {
            if let Some(i) = identity.as_mut() {
                i.identity = value;
            }
        }
        ("BarringIndication", "PublicIdentity") => {
            if let Some(i) = identity.as_mut() {
                i.barred = flag(&value);
            }
        }
        ("PublicIdentity", _) => {
            if let (Some(i), Some(p)) = (identity.take(), profile.as_mut())
                && !i.identity.is_empty()
            {
                p.public_identities.push(i);
            }
        }
        ("Priority", "InitialFilterCriteria") => {
            if let Some(i) = ifc.as_mut() {
                i.priority = value.parse().unwrap_or(i64::MAX);
            }
        }
        ("ProfilePartIndicator", "InitialFilterCriteria") => {
            if let Some(i) = ifc.as_mut() {
                i.profile_part = value.parse().ok();
            }
        }
        ("ServerName", "ApplicationServer") => {
            if let Some(i) = ifc.as_mut() {
                i.application_server.server_name = value;
            }
        }
        ("DefaultHandling", "ApplicationServer") => {
            if let Some(i) = ifc.as_mut() {
                i.application_server.default_handling = value.parse().unwrap_or(0);
            }
        }
        ("ServiceInfo", "ApplicationServer") => {
            if let Some(i) = ifc.as_mut() {
                i.application_server.service_info = Some(value);
            }
        }
        ("ConditionTypeCNF", "TriggerPoint") => {
            if let Some(t) = trigger.as_mut() {
                t.cnf = flag(&value);
            }
        }
        ("ConditionNegated", "SPT") => {
            if let Some(s) = spt.as_mut() {
                s.negated = flag(&value);
            }
        }
        ("Group", "SPT") => {
            if let (Some(s), Ok(g)) = (spt.as_mut(), value.parse()) {
                s.groups.push(g);
            }
        }
        ("RequestURI", "SPT") => {
            if let Some(s) = spt.as_mut() {
                s.kind = Some(SptKind::RequestUri(compile(&value)));
            }
        }
        ("Method", "SPT") => {
            if let Some(s) = spt.as_mut() {
                s.kind = Some(SptKind::Method(value));
            }
        }
        ("SessionCase", "SPT") => {
            if let Some(s) = spt.as_mut() {
                s.kind = Some(
                    value
                        .parse()
                        .map_or(SptKind::Unusable, SptKind::SessionCase),
                );
            }
        }
        ("RegistrationType", _) => {
            if let (Some(s), Ok(t)) = (spt.as_mut(), value.parse()) {
                s.registration_types.push(t);
            }
        }
        ("Header", "SIPHeader") => {
            if let Some(s) = spt.as_mut() {
                s.header = Some(value);
            }
        }
        ("Content", "SIPHeader" | "SessionDescription") => {
            if let Some(s) = spt.as_mut() {
                s.content = Some(value);
            }
        }
        ("Line", "SessionDescription") => {
            if let Some(s) = spt.as_mut() {
                s.line = Some(value);
            }
        }
        ("SIPHeader", "SPT") => {
            if let Some(s) = spt.as_mut() {
                s.kind = Some(match s.header.take() {
                    Some(header) => SptKind::Header {
                        header,
                        content: match s.content.take() {
                            Some(c) => match compile(&c) {
                                Some(r) => Some(r),
                                None => {
                                    s.kind = Some(SptKind::Unusable);
                                    return;
                                }
                            },
                            None => None,
                        },
                    },
                    None => SptKind::Unusable,
                });
            }
        }
        ("SessionDescription", "SPT") => {
            if let Some(s) = spt.as_mut() {
                s.kind = Some(match s.line.take() {
                    Some(line) => SptKind::SessionDescription {
                        line,
                        content: s.content.take().and_then(|c| compile(&c)),
                    },
                    None => SptKind::Unusable,
                });
            }
        }
        ("SPT", _) => {
            if let (Some(s), Some(t)) = (spt.take(), trigger.as_mut()) {
                t.spts.push(Spt {
                    negated: s.negated,
                    groups: s.groups,
                    kind: s.kind.unwrap_or(SptKind::Unusable),
                    registration_types: s.registration_types,
                });
            }
        }
        ("TriggerPoint", _) => {
            if let (Some(t), Some(i)) = (trigger.take(), ifc.as_mut()) {
                i.trigger = Some(t);
            }
        }
        ("InitialFilterCriteria", _) => {
            if let (Some(i), Some(p)) = (ifc.take(), profile.as_mut()) {
                p.ifcs.push(i);
            }
        }
        ("ServiceProfile", _) => {
            if let Some(mut p) = profile.take() {
                p.ifcs.sort_by_key(|i| i.priority);
                sub.profiles.push(p);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = include_str!("../testdata/ims_subscription.xml");

    fn facts<'a>(
        method: &'a str,
        reg_type: Option<i64>,
        headers: &'a dyn Fn(&str) -> Vec<String>,
    ) -> RequestFacts<'a> {
        RequestFacts {
            method,
            request_uri: "sip:ims.mnc001.mcc001.3gppnetwork.org",
            headers,
            sdp: "",
            session_case: 0,
            registration_type: reg_type,
            registered: true,
        }
    }

    #[test]
    fn parses_identities_barring_and_ifcs_in_priority_order() {
        let s = ImsSubscription::parse(DOC).expect("parses");
        assert_eq!(
            s.private_id,
            "001010000000001@ims.mnc001.mcc001.3gppnetwork.org"
        );
        let ids: Vec<_> = s
            .identities()
            .map(|i| (i.identity.as_str(), i.barred))
            .collect();
        assert_eq!(
            ids,
            [
                (
                    "sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org",
                    false
                ),
                ("tel:+15550001", false),
                ("sip:barred@ims.mnc001.mcc001.3gppnetwork.org", true),
            ]
        );
        let p = s.profile_of("tel:+15550001").expect("profile");
        let prios: Vec<i64> = p.ifcs.iter().map(|i| i.priority).collect();
        assert_eq!(prios, [0, 10]);
        assert_eq!(
            p.ifcs[0].application_server.server_name,
            "sip:127.0.0.1:5090"
        );
        assert_eq!(
            p.ifcs[0].application_server.service_info.as_deref(),
            Some("mmtel & more")
        );
        assert!(p.ifcs[0].application_server.include_register_request);
    }

    #[test]
    fn register_trigger_honours_registration_type() {
        let s = ImsSubscription::parse(DOC).expect("parses");
        let p = &s.profiles[0];
        let none = |_: &str| Vec::new();
        let initial = p.matching(&facts("REGISTER", Some(0), &none));
        assert_eq!(initial.len(), 1, "only the REGISTER iFC triggers");
        assert_eq!(initial[0].priority, 0);
        let dereg = p.matching(&facts("REGISTER", Some(2), &none));
        assert!(
            dereg.is_empty(),
            "de-registration is not in its RegistrationType list"
        );
        assert!(p.matching(&facts("INVITE", None, &none)).is_empty());
    }

    #[test]
    fn header_trigger_with_negation_in_cnf() {
        let s = ImsSubscription::parse(DOC).expect("parses");
        let p = &s.profiles[0];
        let with = |h: &str| {
            if h.eq_ignore_ascii_case("Accept-Contact") {
                vec!["*;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\"".into()]
            } else {
                Vec::new()
            }
        };
        let m = p.matching(&facts("MESSAGE", None, &with));
        assert_eq!(m.iter().map(|i| i.priority).collect::<Vec<_>>(), [10]);
        let without = |_: &str| Vec::new();
        assert!(p.matching(&facts("MESSAGE", None, &without)).is_empty());
    }

    #[test]
    fn refuses_other_roots_and_broken_xml() {
        assert!(matches!(
            ImsSubscription::parse("<reginfo/>"),
            Err(UserDataError::Content(_))
        ));
        assert!(ImsSubscription::parse("<IMSSubscription><ServiceProfile>").is_err());
        assert!(matches!(
            ImsSubscription::parse("<IMSSubscription><PrivateID>x</Wrong></IMSSubscription>"),
            Err(UserDataError::Xml(_))
        ));
    }

    #[test]
    fn bad_regex_never_matches() {
        let doc = DOC.replace("mmtel", "mmtel(");
        let s = ImsSubscription::parse(&doc).expect("parses");
        let with = |_: &str| vec!["anything".to_owned()];
        assert!(
            s.profiles[0]
                .matching(&facts("MESSAGE", None, &with))
                .is_empty()
        );
    }
}
