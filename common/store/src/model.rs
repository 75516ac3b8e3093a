//! The subscriber data model: what the HSS knows about a subscriber (TS 29.228 Annex B, TS 23.008
//! §5) and the service profiles with their initial filter criteria.

use std::fmt;

use imslab_types::{Amf, Impi, Impu, Imsi, K, Msisdn, Op, Opc, Sqn};
use serde::{Deserialize, Serialize};

/// Registration state of one public identity in the HSS (TS 29.228 §6.1.2, TS 23.008 §5.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegState {
    /// No S-CSCF holds this identity.
    NotRegistered,
    /// Registered by a UE.
    Registered,
    /// Not registered by a UE, but an S-CSCF keeps the profile to serve unregistered services.
    Unregistered,
}

impl RegState {
    pub(crate) fn to_db(self) -> i64 {
        match self {
            Self::NotRegistered => 0,
            Self::Registered => 1,
            Self::Unregistered => 2,
        }
    }

    pub(crate) fn from_db(v: i64) -> Option<Self> {
        match v {
            0 => Some(Self::NotRegistered),
            1 => Some(Self::Registered),
            2 => Some(Self::Unregistered),
            _ => None,
        }
    }

    /// The name used in listings: `not-registered`, `registered`, `unregistered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRegistered => "not-registered",
            Self::Registered => "registered",
            Self::Unregistered => "unregistered",
        }
    }
}

/// An authentication scheme a subscriber may use (TS 29.228 §6.3, SIP-Authentication-Scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthScheme {
    /// IMS AKA, `Digest-AKAv1-MD5` (RFC 3310, TS 33.203).
    AkaV1Md5,
    /// `Digest-AKAv2-MD5` (RFC 4169).
    AkaV2Md5,
    /// SIP Digest (`SIP Digest` in Cx, RFC 2617 MD5), TS 33.203 Annex N.
    SipDigest,
}

impl AuthScheme {
    /// Every scheme, in bit order.
    pub const ALL: [Self; 3] = [Self::AkaV1Md5, Self::AkaV2Md5, Self::SipDigest];

    fn bit(self) -> i64 {
        match self {
            Self::AkaV1Md5 => 1,
            Self::AkaV2Md5 => 2,
            Self::SipDigest => 4,
        }
    }

    /// The SIP-Authentication-Scheme value on Cx (TS 29.229 §6.3.9).
    pub fn cx_name(self) -> &'static str {
        match self {
            Self::AkaV1Md5 => "Digest-AKAv1-MD5",
            Self::AkaV2Md5 => "Digest-AKAv2-MD5",
            Self::SipDigest => "SIP Digest",
        }
    }

    /// Parses a Cx or provisioning name, case-insensitively: `Digest-AKAv1-MD5`, `aka-v1-md5`,
    /// `akav1`, `Digest-AKAv2-MD5`, `aka-v2-md5`, `akav2`, `SIP Digest`, `Digest-MD5`, `digest`,
    /// `md5`, `sip-digest`.
    pub fn parse(s: &str) -> Option<Self> {
        let l = s.trim().to_ascii_lowercase();
        match l.as_str() {
            "digest-akav1-md5" | "aka-v1-md5" | "akav1" | "akav1-md5" | "aka" => {
                Some(Self::AkaV1Md5)
            }
            "digest-akav2-md5" | "aka-v2-md5" | "akav2" | "akav2-md5" => Some(Self::AkaV2Md5),
            "sip digest" | "sip-digest" | "digest" | "digest-md5" | "md5" => Some(Self::SipDigest),
            _ => None,
        }
    }
}

/// A set of [`AuthScheme`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AuthSchemes(i64);

impl AuthSchemes {
    /// No scheme.
    pub const NONE: Self = Self(0);

    /// The set with the given schemes.
    pub fn of(schemes: &[AuthScheme]) -> Self {
        Self(schemes.iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// True when `s` is in the set.
    pub fn contains(self, s: AuthScheme) -> bool {
        self.0 & s.bit() != 0
    }

    /// True when the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 & 7 == 0
    }

    /// The schemes in the set, in [`AuthScheme::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = AuthScheme> {
        AuthScheme::ALL
            .into_iter()
            .filter(move |s| self.contains(*s))
    }

    /// The first scheme of the set: the one used when a MAR says `Unknown`.
    pub fn preferred(self) -> Option<AuthScheme> {
        self.iter().next()
    }

    pub(crate) fn to_db(self) -> i64 {
        self.0
    }

    pub(crate) fn from_db(v: i64) -> Self {
        Self(v & 7)
    }
}

impl fmt::Debug for AuthSchemes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for AuthSchemes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for AuthSchemes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<AuthScheme>::deserialize(d)?;
        Ok(Self::of(&v))
    }
}

/// The operator key: OP, from which OPc is derived per subscriber, or OPc itself (TS 35.206 §4.1).
#[derive(Clone, PartialEq, Eq)]
pub enum OperatorKey {
    /// OP; the HSS derives OPc = E_K(OP) ⊕ OP.
    Op(Op),
    /// OPc, as programmed on the card.
    Opc(Opc),
}

impl fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Op(_) => f.write_str("Op(..)"),
            Self::Opc(_) => f.write_str("Opc(..)"),
        }
    }
}

/// The SIP Digest secret (TS 33.203 Annex N, RFC 2617 §3.2.2.2): a cleartext password or the
/// precomputed H(A1) = MD5(username ":" realm ":" password). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub enum DigestSecret {
    /// The cleartext password; HA1 is computed with the digest realm.
    Password(String),
    /// HA1 as 32 lowercase hex digits.
    Ha1(String),
}

impl fmt::Debug for DigestSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password(_) => f.write_str("Password(..)"),
            Self::Ha1(_) => f.write_str("Ha1(..)"),
        }
    }
}

/// The S-CSCF serving a subscriber, as the HSS learnt it from MAR/SAR (TS 29.228 §6.1.2, §6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingScscf {
    /// The S-CSCF's SIP URI (Server-Name AVP).
    pub name: String,
    /// The Diameter Origin-Host the SAR came from: where RTR/PPR are sent.
    pub origin_host: Option<String>,
    /// The Diameter Origin-Realm the SAR came from.
    pub origin_realm: Option<String>,
}

/// Charging addresses returned in SAA Charging-Information (TS 29.229 §6.3.19).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargingInfo {
    /// Primary-Charging-Collection-Function-Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ccf_primary: Option<String>,
    /// Secondary-Charging-Collection-Function-Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ccf_secondary: Option<String>,
    /// Primary-Event-Charging-Function-Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecf_primary: Option<String>,
    /// Secondary-Event-Charging-Function-Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecf_secondary: Option<String>,
}

impl ChargingInfo {
    /// True when no address is set.
    pub fn is_empty(&self) -> bool {
        self.ccf_primary.is_none()
            && self.ccf_secondary.is_none()
            && self.ecf_primary.is_none()
            && self.ecf_secondary.is_none()
    }
}

/// One public user identity of a subscriber (TS 23.008 §3.1.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicIdentity {
    /// The IMPU.
    pub impu: Impu,
    /// The implicit registration set it belongs to (TS 23.228 §4.3.3.3); identities sharing a
    /// number are registered and deregistered together.
    pub irs: i64,
    /// The default identity of its implicit registration set (first in P-Associated-URI).
    pub is_default: bool,
    /// Barred (TS 29.228 Annex B BarringIndication): usable only for registration alongside
    /// non-barred identities of its set.
    pub barred: bool,
    /// The name of its service profile, if any.
    pub profile: Option<String>,
    /// Its registration state in the HSS.
    pub reg_state: RegState,
}

/// A subscriber's revision: a new value whenever anything [`Subscriber`] holds changes, except
/// the SQN and the identities' [`PublicIdentity::reg_state`] (database triggers, migrations 0002
/// and 0003). Values are never reused, even across deletion: a subscriber read at revision R is
/// still current, but for those two, while its row is at revision R.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Revision(pub(crate) i64);

/// A subscriber as the HSS stores it. Holds secrets: never log it except through `Debug`, which
/// redacts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// Row id; stable for the subscriber's life.
    pub id: i64,
    /// IMSI.
    pub imsi: Imsi,
    /// The IMS private identity.
    pub impi: Impi,
    /// MSISDN, if any.
    pub msisdn: Option<Msisdn>,
    /// The subscriber key K.
    pub k: K,
    /// OP or OPc.
    pub operator_key: OperatorKey,
    /// AMF used in vectors.
    pub amf: Amf,
    /// The last SQN handed out.
    pub sqn: Sqn,
    /// Schemes this subscriber may authenticate with.
    pub auth_schemes: AuthSchemes,
    /// Realm for SIP Digest; the IMPI's realm when `None`.
    pub digest_realm: Option<String>,
    /// SIP Digest secret, when SIP Digest is provisioned.
    pub digest: Option<DigestSecret>,
    /// An S-CSCF this subscriber is always sent to (UAA Server-Name instead of capabilities).
    pub fixed_scscf: Option<String>,
    /// The S-CSCF currently assigned, if any.
    pub scscf: Option<ServingScscf>,
    /// Charging addresses; the HSS configuration's defaults apply where unset.
    pub charging: ChargingInfo,
    /// The public identities, in provisioning order.
    pub impus: Vec<PublicIdentity>,
}

impl Subscriber {
    /// The public identity `impu`, if it belongs to this subscriber.
    pub fn public_identity(&self, impu: &Impu) -> Option<&PublicIdentity> {
        self.impus.iter().find(|p| &p.impu == impu)
    }

    /// The identities of the implicit registration set of `impu` (itself included), default first.
    pub fn implicit_set(&self, impu: &Impu) -> Vec<&PublicIdentity> {
        let Some(irs) = self.public_identity(impu).map(|p| p.irs) else {
            return Vec::new();
        };
        let mut set: Vec<&PublicIdentity> = self.impus.iter().filter(|p| p.irs == irs).collect();
        set.sort_by_key(|p| !p.is_default);
        set
    }

    /// The SIP Digest realm: the configured one or the IMPI's realm.
    pub fn digest_realm(&self) -> &str {
        self.digest_realm
            .as_deref()
            .unwrap_or_else(|| self.impi.realm())
    }
}

/// A subscriber and the service profiles its public identities use: everything SAA User-Data
/// needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscriber.
    pub subscriber: Subscriber,
    /// The profiles referenced by its identities, by name.
    pub profiles: Vec<ServiceProfile>,
}

impl Subscription {
    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<&ServiceProfile> {
        self.profiles.iter().find(|p| p.name == name)
    }
}

/// A service profile: named, shared by any number of public identities (TS 29.228 Annex B.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceProfile {
    /// Unique name, for example `mmtel`.
    pub name: String,
    /// CoreNetworkServicesAuthorization/SubscribedMediaProfileId, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed_media_profile_id: Option<i64>,
    /// The initial filter criteria, evaluated in ascending priority.
    #[serde(default)]
    pub ifcs: Vec<InitialFilterCriteria>,
}

/// What the S-CSCF does when the AS cannot be reached (TS 29.228 Annex B, DefaultHandling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefaultHandling {
    /// SESSION_CONTINUED (0).
    #[default]
    SessionContinued,
    /// SESSION_TERMINATED (1).
    SessionTerminated,
}

impl DefaultHandling {
    /// The tDefaultHandling value.
    pub fn code(self) -> i64 {
        match self {
            Self::SessionContinued => 0,
            Self::SessionTerminated => 1,
        }
    }

    pub(crate) fn from_code(v: i64) -> Option<Self> {
        match v {
            0 => Some(Self::SessionContinued),
            1 => Some(Self::SessionTerminated),
            _ => None,
        }
    }
}

/// Which part of the profile an iFC applies to (TS 29.228 Annex B ProfilePartIndicator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfilePartIndicator {
    /// REGISTERED (0).
    Registered,
    /// UNREGISTERED (1).
    Unregistered,
}

impl ProfilePartIndicator {
    /// The tProfilePartIndicator value.
    pub fn code(self) -> i64 {
        match self {
            Self::Registered => 0,
            Self::Unregistered => 1,
        }
    }

    pub(crate) fn from_code(v: i64) -> Option<Self> {
        match v {
            0 => Some(Self::Registered),
            1 => Some(Self::Unregistered),
            _ => None,
        }
    }
}

/// The application server of an iFC (TS 29.228 Annex B tApplicationServer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationServer {
    /// ServerName: the AS's SIP URI.
    pub server_name: String,
    /// DefaultHandling.
    #[serde(default)]
    pub default_handling: DefaultHandling,
    /// ServiceInfo, copied into third-party REGISTER bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_info: Option<String>,
    /// IncludeRegisterRequest extension (TS 29.228 Annex B).
    #[serde(default)]
    pub include_register_request: bool,
    /// IncludeRegisterResponse extension.
    #[serde(default)]
    pub include_register_response: bool,
}

/// One initial filter criterion (TS 29.228 Annex B tInitialFilterCriteria).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialFilterCriteria {
    /// Priority; lower is evaluated first. Unique within a profile.
    pub priority: i64,
    /// The trigger point; `None` matches every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_point: Option<TriggerPoint>,
    /// The AS to contact.
    pub application_server: ApplicationServer,
    /// ProfilePartIndicator, if restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_part_indicator: Option<ProfilePartIndicator>,
}

/// A trigger point: service point triggers combined in conjunctive (CNF) or disjunctive (DNF)
/// normal form over their groups (TS 29.228 Annex B.2.2, tTrigger).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerPoint {
    /// ConditionTypeCNF: true for CNF (AND of ORed groups), false for DNF (OR of ANDed groups).
    pub condition_type_cnf: bool,
    /// The SPTs.
    pub spts: Vec<ServicePointTrigger>,
}

/// A service point trigger (TS 29.228 Annex B tSePoTri).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePointTrigger {
    /// ConditionNegated.
    #[serde(default)]
    pub condition_negated: bool,
    /// Group numbers this SPT belongs to (at least one).
    pub groups: Vec<i64>,
    /// What it matches.
    pub kind: SptKind,
    /// RegistrationType extension for a `REGISTER` method SPT: 0 initial, 1 re-, 2 de-registration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registration_types: Vec<i64>,
}

/// The condition of an SPT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum SptKind {
    /// RequestURI, a regular expression.
    RequestUri(String),
    /// Method, for example `INVITE`.
    Method(String),
    /// SIPHeader: a header name, optionally with a regular expression on its content.
    SipHeader {
        /// Header name.
        header: String,
        /// Content regex; presence alone matches when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
    },
    /// SessionCase.
    SessionCase(SessionCase),
    /// SessionDescription: an SDP line type (`m`, `a`...) and a content regex.
    SessionDescription {
        /// The SDP line type.
        line: String,
        /// Content regex.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
    },
}

/// The direction an SPT applies to (TS 29.228 Annex B tDirectionOfRequest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionCase {
    /// ORIGINATING_REGISTERED (0).
    OriginatingRegistered,
    /// TERMINATING_REGISTERED (1).
    TerminatingRegistered,
    /// TERMINATING_UNREGISTERED (2).
    TerminatingUnregistered,
    /// ORIGINATING_UNREGISTERED (3).
    OriginatingUnregistered,
    /// ORIGINATING_CDIV (4).
    OriginatingCdiv,
}

impl SessionCase {
    /// The tDirectionOfRequest value.
    pub fn code(self) -> i64 {
        match self {
            Self::OriginatingRegistered => 0,
            Self::TerminatingRegistered => 1,
            Self::TerminatingUnregistered => 2,
            Self::OriginatingUnregistered => 3,
            Self::OriginatingCdiv => 4,
        }
    }
}

/// A change to the HSS's view of a subscriber's registration, produced by the Cx handlers and
/// applied atomically by [`crate::HssState::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HssChange {
    /// Assign (Some) or clear (None) the serving S-CSCF.
    SetScscf(Option<ServingScscf>),
    /// Set the registration state of these identities.
    SetRegState {
        /// The identities.
        impus: Vec<Impu>,
        /// The new state.
        state: RegState,
    },
    /// Resynchronise: the next SQN handed out follows `sqn` (TS 33.102 §6.3.5).
    SetSqn(Sqn),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_scheme_names_parse_case_insensitively() {
        assert_eq!(
            AuthScheme::parse("Digest-AKAv1-MD5"),
            Some(AuthScheme::AkaV1Md5)
        );
        assert_eq!(
            AuthScheme::parse("digest-akav2-md5"),
            Some(AuthScheme::AkaV2Md5)
        );
        assert_eq!(AuthScheme::parse("SIP Digest"), Some(AuthScheme::SipDigest));
        assert_eq!(AuthScheme::parse("md5"), Some(AuthScheme::SipDigest));
        assert_eq!(AuthScheme::parse("NASS-Bundled"), None);
    }

    #[test]
    fn auth_schemes_set_keeps_order_and_membership() {
        let s = AuthSchemes::of(&[AuthScheme::SipDigest, AuthScheme::AkaV1Md5]);
        assert!(s.contains(AuthScheme::AkaV1Md5));
        assert!(!s.contains(AuthScheme::AkaV2Md5));
        assert_eq!(s.preferred(), Some(AuthScheme::AkaV1Md5));
        assert_eq!(AuthSchemes::from_db(s.to_db()), s);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let shown = format!(
            "{:?} {:?}",
            DigestSecret::Password("hunter2".into()),
            OperatorKey::Opc(Opc::from_bytes([7; 16]))
        );
        assert!(!shown.contains("hunter2"));
        assert_eq!(shown, "Password(..) Opc(..)");
    }
}
