//! Building validated subscribers and updates from user input.

use std::collections::HashSet;
use std::fmt;

use imslab_types::{Amf, Impi, Impu, Imsi, K, Msisdn, Op, Opc, Realm, Sqn};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::model::{
    AuthScheme, AuthSchemes, ChargingInfo, DigestSecret, OperatorKey, RegState, Subscriber,
};

/// One invalid field, with a message fit for the command line: `k: must be 32 hex digits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field (CLI option / JSON key / CSV column) name.
    pub field: &'static str,
    /// What is wrong. Never contains a secret's value.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Values that fill what the input leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionDefaults {
    /// The IMS home domain: default IMPI `<imsi>@<domain>` and IMPUs `sip:<imsi>@<domain>`.
    pub home_domain: Realm,
    /// AMF when none is given.
    pub amf: Amf,
}

impl ProvisionDefaults {
    /// Defaults for `home_domain` with AMF `8000`.
    pub fn new(home_domain: Realm) -> Self {
        Self {
            home_domain,
            amf: Amf([0x80, 0x00]),
        }
    }
}

/// A public identity as given: just a URI (in implicit set 1, the first one default), or with
/// its attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImpuInput {
    /// A `sip:`/`tel:` URI.
    Uri(String),
    /// A URI with attributes.
    Detailed {
        /// The URI.
        uri: String,
        /// Implicit registration set number (default 1).
        #[serde(default)]
        irs: Option<i64>,
        /// Default identity of its set (default: the first of the set).
        #[serde(default)]
        default: Option<bool>,
        /// Barred (default false).
        #[serde(default)]
        barred: Option<bool>,
        /// Service profile name (default: the subscriber's `profile`).
        #[serde(default)]
        profile: Option<String>,
    },
}

/// A subscriber as typed on the command line, posted as JSON or read from a CSV line. Every field
/// is a string; [`NewSubscriber::from_input`] validates them all and reports every problem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberInput {
    /// IMSI, 6 to 15 digits.
    pub imsi: String,
    /// Private identity; default `<imsi>@<home domain>`.
    #[serde(default)]
    pub impi: Option<String>,
    /// MSISDN, digits with an optional leading `+`.
    #[serde(default)]
    pub msisdn: Option<String>,
    /// K, 32 hex digits.
    pub k: String,
    /// OP, 32 hex digits (exactly one of `op` and `opc`).
    #[serde(default)]
    pub op: Option<String>,
    /// OPc, 32 hex digits.
    #[serde(default)]
    pub opc: Option<String>,
    /// AMF, 4 hex digits; default from [`ProvisionDefaults`].
    #[serde(default)]
    pub amf: Option<String>,
    /// Initial SQN (the last one used), decimal, or hex with `0x`; default 0.
    #[serde(default)]
    pub sqn: Option<String>,
    /// Allowed schemes; default AKAv1 and AKAv2, plus SIP Digest when a password or HA1 is given.
    #[serde(default)]
    pub auth_schemes: Option<Vec<String>>,
    /// SIP Digest password.
    #[serde(default)]
    pub password: Option<String>,
    /// SIP Digest HA1, 32 hex digits (instead of a password).
    #[serde(default)]
    pub ha1: Option<String>,
    /// SIP Digest realm; default the IMPI's realm.
    #[serde(default)]
    pub digest_realm: Option<String>,
    /// Public identities; default `sip:<msisdn>@<domain>`, `tel:+<msisdn>` (with an MSISDN) and
    /// `sip:<imsi>@<domain>`, one implicit set, the first default.
    #[serde(default)]
    pub impus: Vec<ImpuInput>,
    /// Service profile of identities that do not name one.
    #[serde(default)]
    pub profile: Option<String>,
    /// A fixed S-CSCF SIP URI.
    #[serde(default)]
    pub fixed_scscf: Option<String>,
    /// Charging addresses.
    #[serde(default)]
    pub charging: Option<ChargingInfo>,
}

/// A public identity to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPublicIdentity {
    /// The IMPU.
    pub impu: Impu,
    /// Implicit registration set number.
    pub irs: i64,
    /// Default identity of its set.
    pub is_default: bool,
    /// Barred.
    pub barred: bool,
    /// Service profile name.
    pub profile: Option<String>,
}

/// A validated subscriber, ready for [`crate::Subscribers::insert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscriber {
    /// IMSI.
    pub imsi: Imsi,
    /// IMPI.
    pub impi: Impi,
    /// MSISDN.
    pub msisdn: Option<Msisdn>,
    /// K.
    pub k: K,
    /// OP or OPc.
    pub operator_key: OperatorKey,
    /// AMF.
    pub amf: Amf,
    /// The last SQN used; the first vector gets the next one.
    pub sqn: Sqn,
    /// Allowed schemes.
    pub auth_schemes: AuthSchemes,
    /// SIP Digest realm.
    pub digest_realm: Option<String>,
    /// SIP Digest secret.
    pub digest: Option<DigestSecret>,
    /// Fixed S-CSCF.
    pub fixed_scscf: Option<String>,
    /// Charging addresses.
    pub charging: ChargingInfo,
    /// Public identities (at least one).
    pub impus: Vec<NewPublicIdentity>,
}

struct Collector {
    errors: Vec<FieldError>,
}

impl Collector {
    fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field,
            message: message.into(),
        });
    }

    fn take<T, E: fmt::Display>(&mut self, field: &'static str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(field, e.to_string());
                None
            }
        }
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn hex_message(expected: usize, s: &str) -> String {
    let s = s.trim();
    if s.len() != expected {
        format!("must be {expected} hex digits, got {} characters", s.len())
    } else {
        format!("must be {expected} hex digits, found a non-hex character")
    }
}

fn parse_sqn(s: &str) -> Result<Sqn, String> {
    let s = s.trim();
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse::<u64>(),
    }
    .map_err(|_| format!("must be a decimal number (or hex with 0x), got {s:?}"))?;
    Sqn::new(v).map_err(|_| format!("must be below 2^48, got {v}"))
}

fn parse_ha1(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(hex_message(32, s))
    }
}

fn parse_scscf(s: &str) -> Result<String, String> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    if (lower.starts_with("sip:") || lower.starts_with("sips:")) && s.len() > 5 && !s.contains(' ')
    {
        Ok(s.to_owned())
    } else {
        Err(format!("must be a sip: URI, got {s:?}"))
    }
}

fn check_charging(c: &mut Collector, info: Option<&ChargingInfo>) {
    let Some(info) = info else { return };
    for v in [
        &info.ccf_primary,
        &info.ccf_secondary,
        &info.ecf_primary,
        &info.ecf_secondary,
    ]
    .into_iter()
    .flatten()
    {
        let l = v.to_ascii_lowercase();
        if !(l.starts_with("aaa://") || l.starts_with("aaas://")) || v.contains(' ') {
            c.push(
                "charging",
                format!("{v:?} is not a Diameter URI (aaa://host[:port])"),
            );
        }
    }
}

fn parse_schemes(c: &mut Collector, list: &[String]) -> Option<AuthSchemes> {
    let mut out = Vec::new();
    for s in list
        .iter()
        .flat_map(|s| s.split(['|', ',']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match AuthScheme::parse(s) {
            Some(a) => out.push(a),
            None => {
                c.push(
                    "auth_schemes",
                    format!(
                        "unknown scheme {s:?}: use Digest-AKAv1-MD5, Digest-AKAv2-MD5 or SIP Digest"
                    ),
                );
                return None;
            }
        }
    }
    if out.is_empty() {
        c.push("auth_schemes", "at least one scheme is required");
        return None;
    }
    Some(AuthSchemes::of(&out))
}

fn digits(m: &Msisdn) -> &str {
    m.as_str().trim_start_matches('+')
}

fn default_impus(imsi: &Imsi, msisdn: Option<&Msisdn>, domain: &Realm) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(m) = msisdn {
        v.push(format!("sip:{}@{domain}", m.as_str()));
        v.push(format!("tel:+{}", digits(m)));
    }
    v.push(imsi.default_impu(domain).to_string());
    v
}

fn parse_impus(
    c: &mut Collector,
    given: &[ImpuInput],
    fallback: Vec<String>,
    profile: Option<&str>,
) -> Vec<NewPublicIdentity> {
    let inputs: Vec<ImpuInput> = if given.is_empty() {
        fallback.into_iter().map(ImpuInput::Uri).collect()
    } else {
        given.to_vec()
    };
    let mut out: Vec<NewPublicIdentity> = Vec::new();
    let mut explicit_default: HashSet<i64> = HashSet::new();
    for input in inputs {
        let (uri, irs, default, barred, prof) = match input {
            ImpuInput::Uri(u) => (u, None, None, None, None),
            ImpuInput::Detailed {
                uri,
                irs,
                default,
                barred,
                profile,
            } => (uri, irs, default, barred, profile),
        };
        let Some(impu) = c.take("impus", Impu::new(uri.trim())) else {
            continue;
        };
        if out.iter().any(|p| p.impu == impu) {
            c.push("impus", format!("{impu} is listed twice"));
            continue;
        }
        let irs = irs.unwrap_or(1);
        if irs < 0 {
            c.push(
                "impus",
                format!("implicit set of {impu} must be 0 or more, got {irs}"),
            );
        }
        if default == Some(true) && !explicit_default.insert(irs) {
            c.push(
                "impus",
                format!("implicit set {irs} has more than one default identity"),
            );
        }
        out.push(NewPublicIdentity {
            impu,
            irs,
            is_default: default == Some(true),
            barred: barred.unwrap_or(false),
            profile: prof.or_else(|| profile.map(str::to_owned)),
        });
    }
    // The first identity of each set without an explicit default becomes its default.
    let mut seen: HashSet<i64> = HashSet::new();
    for p in &mut out {
        if !explicit_default.contains(&p.irs) && seen.insert(p.irs) {
            p.is_default = true;
        }
    }
    out
}

impl NewSubscriber {
    /// Validates `input`, filling omitted values from `defaults`. Every problem is reported.
    pub fn from_input(
        input: &SubscriberInput,
        defaults: &ProvisionDefaults,
    ) -> Result<Self, Error> {
        let mut c = Collector { errors: Vec::new() };
        let imsi = c.take("imsi", Imsi::new(input.imsi.trim()));
        let impi = match non_empty(&input.impi) {
            Some(s) => c.take("impi", Impi::new(s)),
            None => imsi.as_ref().map(|i| i.default_impi(&defaults.home_domain)),
        };
        let msisdn = non_empty(&input.msisdn).and_then(|s| c.take("msisdn", Msisdn::new(s)));
        let k = match K::from_hex(&input.k) {
            Ok(k) => Some(k),
            Err(_) => {
                c.push("k", hex_message(32, &input.k));
                None
            }
        };
        let operator_key = match (non_empty(&input.op), non_empty(&input.opc)) {
            (Some(_), Some(_)) => {
                c.push("opc", "give either op or opc, not both");
                None
            }
            (None, None) => {
                c.push("opc", "one of op or opc is required");
                None
            }
            (Some(op), None) => match Op::from_hex(op) {
                Ok(v) => Some(OperatorKey::Op(v)),
                Err(_) => {
                    c.push("op", hex_message(32, op));
                    None
                }
            },
            (None, Some(opc)) => match Opc::from_hex(opc) {
                Ok(v) => Some(OperatorKey::Opc(v)),
                Err(_) => {
                    c.push("opc", hex_message(32, opc));
                    None
                }
            },
        };
        let amf = match non_empty(&input.amf) {
            Some(a) => match Amf::from_hex(a) {
                Ok(v) => Some(v),
                Err(_) => {
                    c.push("amf", hex_message(4, a));
                    None
                }
            },
            None => Some(defaults.amf),
        };
        let sqn = match non_empty(&input.sqn) {
            Some(s) => c.take("sqn", parse_sqn(s)),
            None => Some(Sqn::default()),
        };
        let digest = match (non_empty(&input.password), non_empty(&input.ha1)) {
            (Some(_), Some(_)) => {
                c.push("ha1", "give either password or ha1, not both");
                None
            }
            (Some(_), None) => input.password.clone().map(DigestSecret::Password),
            (None, Some(h)) => c.take("ha1", parse_ha1(h)).map(DigestSecret::Ha1),
            (None, None) => None,
        };
        let auth_schemes = match &input.auth_schemes {
            Some(list) => parse_schemes(&mut c, list),
            None => {
                let mut v = vec![AuthScheme::AkaV1Md5, AuthScheme::AkaV2Md5];
                if digest.is_some() {
                    v.push(AuthScheme::SipDigest);
                }
                Some(AuthSchemes::of(&v))
            }
        };
        if let Some(s) = auth_schemes
            && s.contains(AuthScheme::SipDigest)
            && digest.is_none()
        {
            c.push("password", "SIP Digest needs a password or an ha1");
        }
        let digest_realm = non_empty(&input.digest_realm)
            .and_then(|r| c.take("digest_realm", Realm::new(r)).map(|r| r.to_string()));
        let fixed_scscf =
            non_empty(&input.fixed_scscf).and_then(|s| c.take("fixed_scscf", parse_scscf(s)));
        check_charging(&mut c, input.charging.as_ref());
        let profile = non_empty(&input.profile);
        let impus = match &imsi {
            Some(i) => parse_impus(
                &mut c,
                &input.impus,
                default_impus(i, msisdn.as_ref(), &defaults.home_domain),
                profile,
            ),
            None => Vec::new(),
        };
        match (imsi, impi, k, operator_key, amf, sqn, auth_schemes) {
            (
                Some(imsi),
                Some(impi),
                Some(k),
                Some(operator_key),
                Some(amf),
                Some(sqn),
                Some(s),
            ) if c.errors.is_empty() => {
                let new = Self {
                    imsi,
                    impi,
                    msisdn,
                    k,
                    operator_key,
                    amf,
                    sqn,
                    auth_schemes: s,
                    digest_realm,
                    digest,
                    fixed_scscf,
                    charging: input.charging.clone().unwrap_or_default(),
                    impus,
                };
                new.check()?;
                Ok(new)
            }
            _ => Err(Error::InvalidSubscriber { errors: c.errors }),
        }
    }

    /// Checks the invariants a hand-built value could break: at least one identity, no
    /// duplicates, exactly one default per implicit set, SIP Digest only with a secret.
    pub fn check(&self) -> Result<(), Error> {
        let mut c = Collector { errors: Vec::new() };
        if self.impus.is_empty() {
            c.push("impus", "at least one public identity is required");
        }
        let mut seen = HashSet::new();
        for p in &self.impus {
            if !seen.insert(&p.impu) {
                c.push("impus", format!("{} is listed twice", p.impu));
            }
        }
        let sets: HashSet<i64> = self.impus.iter().map(|p| p.irs).collect();
        let mut sets: Vec<i64> = sets.into_iter().collect();
        sets.sort_unstable();
        for irs in sets {
            let n = self
                .impus
                .iter()
                .filter(|p| p.irs == irs && p.is_default)
                .count();
            if n != 1 {
                c.push(
                    "impus",
                    format!("implicit set {irs} has {n} default identities, needs 1"),
                );
            }
        }
        if self.auth_schemes.is_empty() {
            c.push("auth_schemes", "at least one scheme is required");
        }
        if self.auth_schemes.contains(AuthScheme::SipDigest) && self.digest.is_none() {
            c.push("password", "SIP Digest needs a password or an ha1");
        }
        if c.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidSubscriber { errors: c.errors })
        }
    }
}

/// Changes to an existing subscriber, as strings; `None` leaves a field alone, an empty string
/// clears an optional one (msisdn, password, fixed_scscf, digest_realm).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {
    /// New MSISDN, or "" to clear.
    #[serde(default)]
    pub msisdn: Option<String>,
    /// New K.
    #[serde(default)]
    pub k: Option<String>,
    /// New OP (replaces OPc).
    #[serde(default)]
    pub op: Option<String>,
    /// New OPc (replaces OP).
    #[serde(default)]
    pub opc: Option<String>,
    /// New AMF.
    #[serde(default)]
    pub amf: Option<String>,
    /// New last-used SQN.
    #[serde(default)]
    pub sqn: Option<String>,
    /// New scheme list.
    #[serde(default)]
    pub auth_schemes: Option<Vec<String>>,
    /// New SIP Digest password, or "" to remove the digest secret.
    #[serde(default)]
    pub password: Option<String>,
    /// New SIP Digest HA1.
    #[serde(default)]
    pub ha1: Option<String>,
    /// New digest realm, or "" for the IMPI's realm.
    #[serde(default)]
    pub digest_realm: Option<String>,
    /// New identity list (replaces the old one; kept identities keep their state).
    #[serde(default)]
    pub impus: Option<Vec<ImpuInput>>,
    /// Profile for identities in `impus` that name none.
    #[serde(default)]
    pub profile: Option<String>,
    /// New fixed S-CSCF, or "" to clear.
    #[serde(default)]
    pub fixed_scscf: Option<String>,
    /// New charging addresses.
    #[serde(default)]
    pub charging: Option<ChargingInfo>,
}

/// A validated update for [`crate::Subscribers::update`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriberUpdate {
    /// `Some(None)` clears.
    pub msisdn: Option<Option<Msisdn>>,
    /// New K.
    pub k: Option<K>,
    /// New OP or OPc.
    pub operator_key: Option<OperatorKey>,
    /// New AMF.
    pub amf: Option<Amf>,
    /// New last-used SQN.
    pub sqn: Option<Sqn>,
    /// New schemes.
    pub auth_schemes: Option<AuthSchemes>,
    /// `Some(None)` removes the digest secret.
    pub digest: Option<Option<DigestSecret>>,
    /// `Some(None)` reverts to the IMPI's realm.
    pub digest_realm: Option<Option<String>>,
    /// New identity list.
    pub impus: Option<Vec<NewPublicIdentity>>,
    /// `Some(None)` clears.
    pub fixed_scscf: Option<Option<String>>,
    /// New charging addresses.
    pub charging: Option<ChargingInfo>,
}

impl SubscriberUpdate {
    /// Validates `input` against the current `subscriber`; the result keeps the invariants of
    /// [`NewSubscriber::check`].
    pub fn from_input(input: &UpdateInput, current: &Subscriber) -> Result<Self, Error> {
        let mut c = Collector { errors: Vec::new() };
        let mut u = Self::default();
        if let Some(m) = &input.msisdn {
            u.msisdn = if m.trim().is_empty() {
                Some(None)
            } else {
                c.take("msisdn", Msisdn::new(m.trim())).map(Some)
            };
        }
        if let Some(k) = &input.k {
            match K::from_hex(k) {
                Ok(k) => u.k = Some(k),
                Err(_) => c.push("k", hex_message(32, k)),
            }
        }
        match (&input.op, &input.opc) {
            (Some(_), Some(_)) => c.push("opc", "give either op or opc, not both"),
            (Some(op), None) => match Op::from_hex(op) {
                Ok(v) => u.operator_key = Some(OperatorKey::Op(v)),
                Err(_) => c.push("op", hex_message(32, op)),
            },
            (None, Some(opc)) => match Opc::from_hex(opc) {
                Ok(v) => u.operator_key = Some(OperatorKey::Opc(v)),
                Err(_) => c.push("opc", hex_message(32, opc)),
            },
            (None, None) => {}
        }
        if let Some(a) = &input.amf {
            match Amf::from_hex(a) {
                Ok(v) => u.amf = Some(v),
                Err(_) => c.push("amf", hex_message(4, a)),
            }
        }
        if let Some(s) = &input.sqn {
            u.sqn = c.take("sqn", parse_sqn(s));
        }
        if let Some(list) = &input.auth_schemes {
            u.auth_schemes = parse_schemes(&mut c, list);
        }
        match (&input.password, &input.ha1) {
            (Some(_), Some(_)) => c.push("ha1", "give either password or ha1, not both"),
            (Some(p), None) if p.is_empty() => u.digest = Some(None),
            (Some(p), None) => u.digest = Some(Some(DigestSecret::Password(p.clone()))),
            (None, Some(h)) => {
                u.digest = c
                    .take("ha1", parse_ha1(h))
                    .map(|h| Some(DigestSecret::Ha1(h)));
            }
            (None, None) => {}
        }
        if let Some(r) = &input.digest_realm {
            u.digest_realm = if r.trim().is_empty() {
                Some(None)
            } else {
                c.take("digest_realm", Realm::new(r.trim()))
                    .map(|r| Some(r.to_string()))
            };
        }
        if let Some(f) = &input.fixed_scscf {
            u.fixed_scscf = if f.trim().is_empty() {
                Some(None)
            } else {
                c.take("fixed_scscf", parse_scscf(f)).map(Some)
            };
        }
        if let Some(list) = &input.impus {
            if list.is_empty() {
                c.push("impus", "at least one public identity is required");
            } else {
                u.impus = Some(parse_impus(
                    &mut c,
                    list,
                    Vec::new(),
                    non_empty(&input.profile),
                ));
            }
        }
        check_charging(&mut c, input.charging.as_ref());
        u.charging = input.charging.clone();
        // The digest invariant over the result.
        let schemes = u.auth_schemes.unwrap_or(current.auth_schemes);
        let has_digest = match &u.digest {
            Some(d) => d.is_some(),
            None => current.digest.is_some(),
        };
        if schemes.contains(AuthScheme::SipDigest) && !has_digest {
            c.push("password", "SIP Digest needs a password or an ha1");
        }
        if c.errors.is_empty() {
            Ok(u)
        } else {
            Err(Error::InvalidSubscriber { errors: c.errors })
        }
    }
}

/// A subscriber as shown by listings, `show`, and the REST API: secrets are left out unless
/// explicitly requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriberView {
    /// IMSI.
    pub imsi: String,
    /// IMPI.
    pub impi: String,
    /// MSISDN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msisdn: Option<String>,
    /// K (only with `include_secrets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
    /// OP (only with `include_secrets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// OPc (only with `include_secrets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opc: Option<String>,
    /// `op` or `opc`: which one is provisioned (always shown).
    pub operator_key: &'static str,
    /// AMF.
    pub amf: String,
    /// The last SQN handed out.
    pub sqn: u64,
    /// Allowed schemes (Cx names).
    pub auth_schemes: Vec<&'static str>,
    /// `password`, `ha1` or absent: which digest secret is provisioned (never the secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<&'static str>,
    /// SIP Digest realm.
    pub digest_realm: String,
    /// Fixed S-CSCF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_scscf: Option<String>,
    /// Serving S-CSCF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scscf: Option<String>,
    /// Charging addresses.
    #[serde(skip_serializing_if = "ChargingInfo::is_empty")]
    pub charging: ChargingInfo,
    /// Public identities.
    pub impus: Vec<ImpuView>,
}

/// A public identity in a [`SubscriberView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImpuView {
    /// The URI.
    pub uri: String,
    /// Implicit set.
    pub irs: i64,
    /// Default of its set.
    pub default: bool,
    /// Barred.
    pub barred: bool,
    /// Service profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Registration state.
    pub state: RegState,
}

impl SubscriberView {
    /// The view of `s`; K/OP/OPc are included only when `include_secrets` is true.
    pub fn from_subscriber(s: &Subscriber, include_secrets: bool) -> Self {
        let (op, opc, kind) = match &s.operator_key {
            OperatorKey::Op(op) => (include_secrets.then(|| op.expose_hex()), None, "op"),
            OperatorKey::Opc(opc) => (None, include_secrets.then(|| opc.expose_hex()), "opc"),
        };
        Self {
            imsi: s.imsi.to_string(),
            impi: s.impi.to_string(),
            msisdn: s.msisdn.as_ref().map(ToString::to_string),
            k: include_secrets.then(|| s.k.expose_hex()),
            op,
            opc,
            operator_key: kind,
            amf: s.amf.to_hex(),
            sqn: s.sqn.value(),
            auth_schemes: s.auth_schemes.iter().map(AuthScheme::cx_name).collect(),
            digest: s.digest.as_ref().map(|d| match d {
                DigestSecret::Password(_) => "password",
                DigestSecret::Ha1(_) => "ha1",
            }),
            digest_realm: s.digest_realm().to_owned(),
            fixed_scscf: s.fixed_scscf.clone(),
            scscf: s.scscf.as_ref().map(|x| x.name.clone()),
            charging: s.charging.clone(),
            impus: s
                .impus
                .iter()
                .map(|p| ImpuView {
                    uri: p.impu.to_string(),
                    irs: p.irs,
                    default: p.is_default,
                    barred: p.barred,
                    profile: p.profile.clone(),
                    state: p.reg_state,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ProvisionDefaults {
        ProvisionDefaults::new(Realm::new("ims.mnc001.mcc001.3gppnetwork.org").unwrap())
    }

    fn input() -> SubscriberInput {
        SubscriberInput {
            imsi: "001010000000001".into(),
            msisdn: Some("15550001".into()),
            k: "465b5ce8b199b49faa5f0a2ee238a6bc".into(),
            opc: Some("cd63cb71954a9f4e48a5994e37a02baf".into()),
            ..SubscriberInput::default()
        }
    }

    fn messages(e: Error) -> Vec<String> {
        match e {
            Error::InvalidSubscriber { errors } => errors.iter().map(ToString::to_string).collect(),
            other => panic!("expected InvalidSubscriber, got {other}"),
        }
    }

    #[test]
    fn minimal_input_gets_default_impi_impus_amf_and_schemes() {
        let s = NewSubscriber::from_input(&input(), &defaults()).unwrap();
        assert_eq!(
            s.impi.as_str(),
            "001010000000001@ims.mnc001.mcc001.3gppnetwork.org"
        );
        let uris: Vec<&str> = s.impus.iter().map(|p| p.impu.as_str()).collect();
        assert_eq!(
            uris,
            [
                "sip:15550001@ims.mnc001.mcc001.3gppnetwork.org",
                "tel:+15550001",
                "sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org"
            ]
        );
        assert!(s.impus[0].is_default && !s.impus[1].is_default && !s.impus[2].is_default);
        assert_eq!(s.amf, Amf([0x80, 0]));
        assert_eq!(s.sqn.value(), 0);
        assert!(s.auth_schemes.contains(AuthScheme::AkaV1Md5));
        assert!(!s.auth_schemes.contains(AuthScheme::SipDigest));
    }

    #[test]
    fn bad_fields_are_all_reported_without_echoing_secrets() {
        let bad = SubscriberInput {
            imsi: "00101".into(),
            k: "465b5ce8b199b49faa5f0a2ee238a6".into(),
            opc: Some("zz63cb71954a9f4e48a5994e37a02baf".into()),
            amf: Some("80000".into()),
            ..SubscriberInput::default()
        };
        let m = messages(NewSubscriber::from_input(&bad, &defaults()).unwrap_err());
        assert_eq!(
            m,
            [
                "imsi: IMSI must be 6 to 15 decimal digits, got 5 characters",
                "k: must be 32 hex digits, got 30 characters",
                "opc: must be 32 hex digits, found a non-hex character",
                "amf: must be 4 hex digits, got 5 characters",
            ]
        );
        assert!(!m.concat().contains("465b5ce8"));
    }

    #[test]
    fn op_and_opc_are_mutually_exclusive_and_one_is_required() {
        let mut both = input();
        both.op = Some("cdc202d5123e20f62b6d676ac72cb318".into());
        assert_eq!(
            messages(NewSubscriber::from_input(&both, &defaults()).unwrap_err()),
            ["opc: give either op or opc, not both"]
        );
        let mut none = input();
        none.opc = None;
        assert_eq!(
            messages(NewSubscriber::from_input(&none, &defaults()).unwrap_err()),
            ["opc: one of op or opc is required"]
        );
    }

    #[test]
    fn password_enables_sip_digest_and_digest_without_secret_is_refused() {
        let mut with_pw = input();
        with_pw.password = Some("secret".into());
        let s = NewSubscriber::from_input(&with_pw, &defaults()).unwrap();
        assert!(s.auth_schemes.contains(AuthScheme::SipDigest));
        let mut digest_only = input();
        digest_only.auth_schemes = Some(vec!["SIP Digest".into()]);
        assert_eq!(
            messages(NewSubscriber::from_input(&digest_only, &defaults()).unwrap_err()),
            ["password: SIP Digest needs a password or an ha1"]
        );
    }

    #[test]
    fn explicit_impus_with_sets_get_one_default_each() {
        let mut i = input();
        i.impus = vec![
            ImpuInput::Uri("sip:alice@ims.example".into()),
            ImpuInput::Detailed {
                uri: "tel:+15550009".into(),
                irs: Some(2),
                default: None,
                barred: Some(true),
                profile: None,
            },
            ImpuInput::Detailed {
                uri: "sip:bob@ims.example".into(),
                irs: Some(2),
                default: Some(true),
                barred: None,
                profile: Some("mmtel".into()),
            },
        ];
        let s = NewSubscriber::from_input(&i, &defaults()).unwrap();
        let d: Vec<(i64, bool, bool)> = s
            .impus
            .iter()
            .map(|p| (p.irs, p.is_default, p.barred))
            .collect();
        assert_eq!(d, [(1, true, false), (2, false, true), (2, true, false)]);
        assert_eq!(s.impus[2].profile.as_deref(), Some("mmtel"));
    }

    #[test]
    fn duplicate_impu_and_two_defaults_are_refused() {
        let mut i = input();
        i.impus = vec![
            ImpuInput::Detailed {
                uri: "sip:a@ims.example".into(),
                irs: None,
                default: Some(true),
                barred: None,
                profile: None,
            },
            ImpuInput::Detailed {
                uri: "sip:b@ims.example".into(),
                irs: None,
                default: Some(true),
                barred: None,
                profile: None,
            },
            ImpuInput::Uri("sip:a@ims.example".into()),
        ];
        assert_eq!(
            messages(NewSubscriber::from_input(&i, &defaults()).unwrap_err()),
            [
                "impus: implicit set 1 has more than one default identity",
                "impus: sip:a@ims.example is listed twice"
            ]
        );
    }

    #[test]
    fn charging_addresses_must_be_diameter_uris() {
        let mut i = input();
        i.charging = Some(ChargingInfo {
            ccf_primary: Some("aaa://ccf.ims.example:3868".into()),
            ecf_primary: Some("ccf.ims.example".into()),
            ..ChargingInfo::default()
        });
        assert_eq!(
            messages(NewSubscriber::from_input(&i, &defaults()).unwrap_err()),
            ["charging: \"ccf.ims.example\" is not a Diameter URI (aaa://host[:port])"]
        );
    }

    #[test]
    fn sqn_accepts_decimal_and_hex_below_2_pow_48() {
        assert_eq!(parse_sqn("32").unwrap().value(), 32);
        assert_eq!(
            parse_sqn("0xff9bb4d0b607").unwrap().value(),
            0xff9b_b4d0_b607
        );
        assert_eq!(
            parse_sqn("281474976710656").unwrap_err(),
            "must be below 2^48, got 281474976710656"
        );
        assert!(parse_sqn("-1").is_err());
    }

    #[test]
    fn view_hides_secrets_unless_asked() {
        let new = NewSubscriber::from_input(&input(), &defaults()).unwrap();
        let s = Subscriber {
            id: 1,
            imsi: new.imsi.clone(),
            impi: new.impi.clone(),
            msisdn: new.msisdn.clone(),
            k: new.k.clone(),
            operator_key: new.operator_key.clone(),
            amf: new.amf,
            sqn: new.sqn,
            auth_schemes: new.auth_schemes,
            digest_realm: None,
            digest: Some(DigestSecret::Password("pw".into())),
            fixed_scscf: None,
            scscf: None,
            charging: ChargingInfo::default(),
            impus: Vec::new(),
        };
        let hidden = serde_json::to_string(&SubscriberView::from_subscriber(&s, false)).unwrap();
        assert!(
            !hidden.contains("465b5ce8")
                && !hidden.contains("cd63cb71")
                && !hidden.contains("\"pw\"")
        );
        assert!(hidden.contains("\"operator_key\":\"opc\""));
        let shown = serde_json::to_string(&SubscriberView::from_subscriber(&s, true)).unwrap();
        assert!(shown.contains("465b5ce8b199b49faa5f0a2ee238a6bc"));
        assert!(shown.contains("cd63cb71954a9f4e48a5994e37a02baf"));
    }
}
