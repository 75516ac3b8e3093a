//! Typed Cx commands (TS 29.229 §6.1): one struct per request and answer, following the ABNF.
//!
//! Each struct has `decode(&Message) -> Result<Self, Error>` and `to_message()`. Decoding
//! checks the ABNF: a missing `{ AVP }` is [`Error::MissingAvp`] (answer 5005), a repeated
//! single AVP is [`Error::AvpOccursTooManyTimes`] (5009), a value of the wrong form (an IMPU that
//! is not a SIP or tel URI, an IMPI that is not `user@realm`) is [`Error::InvalidAvpValue`]
//! (5004). AVPs the ABNF does not name land in `extra` (`*[ AVP ]`) and are sent back unchanged.
//!
//! Every Cx message carries Vendor-Specific-Application-Id {10415, 16777216} and
//! Auth-Session-State NO_STATE_MAINTAINED; decoding requires both, encoding always writes them,
//! so the structs do not hold them. Encoded messages have zero hop-by-hop and end-to-end
//! identifiers: the peer layer assigns them to requests and copies them into answers.
//!
//! Answers have a `new(&request, &origin, result)` constructor that copies Session-Id and
//! Proxy-Info from the request, as RFC 6733 §6.2 requires.

mod lir;
mod mar;
mod ppr;
mod rtr;
mod sar;
mod uar;

use std::fmt;

use bytes::Bytes;
use imslab_types::{Ck, DiameterIdentity, Ik, Impi, Impu, Realm};

pub use lir::{Lia, Lir};
pub use mar::{Maa, Mar};
pub use ppr::{Ppa, Ppr};
pub use rtr::{Rta, Rtr};
pub use sar::{Saa, Sar};
pub use uar::{Uaa, Uar};

use crate::avp::Avp;
use crate::base::VendorSpecificApplicationId;
use crate::codes::{ApplicationId, CommandCode, ExperimentalResultCode, ResultCode, VendorId};
use crate::dict;
use crate::enums::{AuthSessionState, ReasonCode};
use crate::error::Error;
use crate::message::Message;
use crate::typed::{Reader, identity, impi, impu, octets, push_opt, realm, string, u32v};
use crate::types::DiameterUri;

/// The outcome in a Cx answer: Result-Code for base protocol outcomes, Experimental-Result for
/// the Cx ones of TS 29.229 §6.2. Exactly one is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CxResult {
    /// Result-Code (RFC 6733 §7.1), e.g. DIAMETER_SUCCESS or DIAMETER_UNABLE_TO_COMPLY.
    Base(ResultCode),
    /// Experimental-Result { Vendor-Id, Experimental-Result-Code }.
    Experimental {
        /// The vendor, 10415 for Cx.
        vendor: VendorId,
        /// The code.
        code: ExperimentalResultCode,
    },
}

impl CxResult {
    /// DIAMETER_SUCCESS.
    pub const SUCCESS: Self = Self::Base(ResultCode::DIAMETER_SUCCESS);

    /// A 3GPP Experimental-Result.
    pub fn experimental(code: ExperimentalResultCode) -> Self {
        Self::Experimental {
            vendor: VendorId::TGPP,
            code,
        }
    }

    /// Whether the code is in the 2xxx class.
    pub fn is_success(&self) -> bool {
        match self {
            Self::Base(c) => c.is_success(),
            Self::Experimental { code, .. } => code.is_success(),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        if let Some(rc) = r.opt(&dict::RESULT_CODE)? {
            return Ok(Self::Base(ResultCode(rc.as_u32()?)));
        }
        let er = r
            .one(&dict::EXPERIMENTAL_RESULT)
            .map_err(|_| Error::MissingAvp {
                def: &dict::RESULT_CODE,
            })?;
        let mut g = Reader::new(er.children()?);
        Ok(Self::Experimental {
            vendor: VendorId(u32v(g.one(&dict::VENDOR_ID)?)?),
            code: ExperimentalResultCode(u32v(g.one(&dict::EXPERIMENTAL_RESULT_CODE)?)?),
        })
    }

    fn write(&self, out: &mut Vec<Avp>) {
        match self {
            Self::Base(c) => out.push(Avp::u32(&dict::RESULT_CODE, c.0)),
            Self::Experimental { vendor, code } => out.push(Avp::grouped(
                &dict::EXPERIMENTAL_RESULT,
                vec![
                    Avp::u32(&dict::VENDOR_ID, vendor.0),
                    Avp::u32(&dict::EXPERIMENTAL_RESULT_CODE, code.0),
                ],
            )),
        }
    }
}

/// Supported-Features (TS 29.229 §6.3.29).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SupportedFeatures {
    /// Vendor-Id.
    pub vendor_id: VendorId,
    /// Feature-List-ID.
    pub feature_list_id: u32,
    /// Feature-List: a bit mask.
    pub feature_list: u32,
}

impl SupportedFeatures {
    fn from_avp(a: &Avp) -> Result<Self, Error> {
        let mut r = Reader::new(a.children()?);
        Ok(Self {
            vendor_id: VendorId(u32v(r.one(&dict::VENDOR_ID)?)?),
            feature_list_id: u32v(r.one(&dict::FEATURE_LIST_ID)?)?,
            feature_list: u32v(r.one(&dict::FEATURE_LIST)?)?,
        })
    }

    fn to_avp(self) -> Avp {
        Avp::grouped(
            &dict::SUPPORTED_FEATURES,
            vec![
                Avp::u32(&dict::VENDOR_ID, self.vendor_id.0),
                Avp::u32(&dict::FEATURE_LIST_ID, self.feature_list_id),
                Avp::u32(&dict::FEATURE_LIST, self.feature_list),
            ],
        )
    }
}

/// SIP-Digest-Authenticate (TS 29.229 §6.3.36). `Debug` hides the HA1.
#[derive(Clone, PartialEq, Eq)]
pub struct SipDigestAuthenticate {
    /// Digest-Realm.
    pub digest_realm: String,
    /// Digest-Algorithm, e.g. `MD5`.
    pub digest_algorithm: Option<String>,
    /// Digest-QoP, e.g. `auth`.
    pub digest_qop: String,
    /// Digest-HA1, hex text: a secret.
    pub digest_ha1: String,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
}

impl fmt::Debug for SipDigestAuthenticate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipDigestAuthenticate")
            .field("digest_realm", &self.digest_realm)
            .field("digest_algorithm", &self.digest_algorithm)
            .field("digest_qop", &self.digest_qop)
            .field("digest_ha1", &"..")
            .finish_non_exhaustive()
    }
}

impl SipDigestAuthenticate {
    fn from_avp(a: &Avp) -> Result<Self, Error> {
        let mut r = Reader::new(a.children()?);
        Ok(Self {
            digest_realm: string(r.one(&dict::DIGEST_REALM)?)?,
            digest_algorithm: r.opt_map(&dict::DIGEST_ALGORITHM, string)?,
            digest_qop: string(r.one(&dict::DIGEST_QOP)?)?,
            digest_ha1: string(r.one(&dict::DIGEST_HA1)?)?,
            extra: r.rest(),
        })
    }

    fn to_avp(&self) -> Avp {
        let mut c = vec![Avp::utf8(&dict::DIGEST_REALM, &self.digest_realm)];
        push_opt(&mut c, self.digest_algorithm.as_deref(), |v| {
            Avp::utf8(&dict::DIGEST_ALGORITHM, v)
        });
        c.push(Avp::utf8(&dict::DIGEST_QOP, &self.digest_qop));
        c.push(Avp::utf8(&dict::DIGEST_HA1, &self.digest_ha1));
        c.extend(self.extra.iter().cloned());
        Avp::grouped(&dict::SIP_DIGEST_AUTHENTICATE, c)
    }
}

/// SIP-Auth-Data-Item (TS 29.229 §6.3.13): one authentication vector or request for one.
///
/// In a MAR it names the scheme and, for a resynchronisation, carries RAND‖AUTS in
/// `authorization`. In a MAA it carries the challenge: RAND‖AUTN in `authenticate`, XRES in
/// `authorization`, and CK and IK. `Debug` hides `authorization` and the keys.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SipAuthDataItem {
    /// SIP-Item-Number.
    pub item_number: Option<u32>,
    /// SIP-Authentication-Scheme, see the `SCHEME_*` consts.
    pub authentication_scheme: Option<String>,
    /// SIP-Authenticate: RAND‖AUTN for AKA (TS 29.229 §6.3.10).
    pub authenticate: Option<Bytes>,
    /// SIP-Authorization: XRES in a MAA, RAND‖AUTS in a resync MAR (TS 29.229 §6.3.11).
    pub authorization: Option<Bytes>,
    /// SIP-Authentication-Context.
    pub authentication_context: Option<Bytes>,
    /// Confidentiality-Key CK (16 octets).
    pub confidentiality_key: Option<Ck>,
    /// Integrity-Key IK (16 octets).
    pub integrity_key: Option<Ik>,
    /// SIP-Digest-Authenticate, for SIP Digest.
    pub digest_authenticate: Option<SipDigestAuthenticate>,
    /// Framed-IP-Address (NASS-Bundled and Early IMS).
    pub framed_ip_address: Option<Bytes>,
    /// Framed-IPv6-Prefix.
    pub framed_ipv6_prefix: Option<Bytes>,
    /// Framed-Interface-Id.
    pub framed_interface_id: Option<u64>,
    /// `*[ Line-Identifier ]`.
    pub line_identifiers: Vec<Bytes>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
}

impl fmt::Debug for SipAuthDataItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipAuthDataItem")
            .field("item_number", &self.item_number)
            .field("authentication_scheme", &self.authentication_scheme)
            .field(
                "authenticate_len",
                &self.authenticate.as_ref().map(Bytes::len),
            )
            .field(
                "authorization_len",
                &self.authorization.as_ref().map(Bytes::len),
            )
            .field("confidentiality_key", &self.confidentiality_key)
            .field("integrity_key", &self.integrity_key)
            .field("digest_authenticate", &self.digest_authenticate)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

impl SipAuthDataItem {
    /// IMS AKA with MD5 digest (TS 33.203, RFC 3310).
    pub const SCHEME_AKAV1_MD5: &'static str = "Digest-AKAv1-MD5";
    /// IMS AKA version 2 (RFC 4169).
    pub const SCHEME_AKAV2_MD5: &'static str = "Digest-AKAv2-MD5";
    /// SIP Digest (TS 29.229 §6.3.9).
    pub const SCHEME_SIP_DIGEST: &'static str = "SIP Digest";
    /// NASS-Bundled authentication (TS 29.229 §6.3.9).
    pub const SCHEME_NASS_BUNDLED: &'static str = "NASS-Bundled";
    /// Early IMS security (TS 33.978).
    pub const SCHEME_EARLY_IMS: &'static str = "Early-IMS-Security";
    /// The S-CSCF lets the HSS choose (TS 29.228 §6.3).
    pub const SCHEME_UNKNOWN: &'static str = "Unknown";

    /// An item naming only the scheme, as an S-CSCF sends in a MAR.
    pub fn with_scheme(scheme: &str) -> Self {
        Self {
            authentication_scheme: Some(scheme.to_owned()),
            ..Self::default()
        }
    }

    fn from_avp(a: &Avp) -> Result<Self, Error> {
        let mut r = Reader::new(a.children()?);
        let key = |a: &Avp| -> Result<[u8; 16], Error> {
            <[u8; 16]>::try_from(&a.as_octets()?[..]).map_err(|_| Error::InvalidAvpValue {
                failed: Box::new(a.clone()),
                reason: "CK and IK are 16 octets",
            })
        };
        Ok(Self {
            item_number: r.opt_map(&dict::SIP_ITEM_NUMBER, u32v)?,
            authentication_scheme: r.opt_map(&dict::SIP_AUTHENTICATION_SCHEME, string)?,
            authenticate: r.opt_map(&dict::SIP_AUTHENTICATE, octets)?,
            authorization: r.opt_map(&dict::SIP_AUTHORIZATION, octets)?,
            authentication_context: r.opt_map(&dict::SIP_AUTHENTICATION_CONTEXT, octets)?,
            confidentiality_key: r
                .opt_map(&dict::CONFIDENTIALITY_KEY, |a| key(a).map(Ck::from_bytes))?,
            integrity_key: r.opt_map(&dict::INTEGRITY_KEY, |a| key(a).map(Ik::from_bytes))?,
            digest_authenticate: r.opt_map(
                &dict::SIP_DIGEST_AUTHENTICATE,
                SipDigestAuthenticate::from_avp,
            )?,
            framed_ip_address: r.opt_map(&dict::FRAMED_IP_ADDRESS, octets)?,
            framed_ipv6_prefix: r.opt_map(&dict::FRAMED_IPV6_PREFIX, octets)?,
            framed_interface_id: r.opt_map(&dict::FRAMED_INTERFACE_ID, Avp::as_u64)?,
            line_identifiers: r.many_map(&dict::LINE_IDENTIFIER, octets)?,
            extra: r.rest(),
        })
    }

    fn to_avp(&self) -> Avp {
        let mut c = Vec::with_capacity(8);
        push_opt(&mut c, self.item_number, |v| {
            Avp::u32(&dict::SIP_ITEM_NUMBER, v)
        });
        push_opt(&mut c, self.authentication_scheme.as_deref(), |v| {
            Avp::utf8(&dict::SIP_AUTHENTICATION_SCHEME, v)
        });
        push_opt(&mut c, self.authenticate.clone(), |v| {
            Avp::octets(&dict::SIP_AUTHENTICATE, v)
        });
        push_opt(&mut c, self.authorization.clone(), |v| {
            Avp::octets(&dict::SIP_AUTHORIZATION, v)
        });
        push_opt(&mut c, self.authentication_context.clone(), |v| {
            Avp::octets(&dict::SIP_AUTHENTICATION_CONTEXT, v)
        });
        push_opt(&mut c, self.confidentiality_key.as_ref(), |k| {
            Avp::octets(
                &dict::CONFIDENTIALITY_KEY,
                Bytes::copy_from_slice(k.expose()),
            )
        });
        push_opt(&mut c, self.integrity_key.as_ref(), |k| {
            Avp::octets(&dict::INTEGRITY_KEY, Bytes::copy_from_slice(k.expose()))
        });
        push_opt(
            &mut c,
            self.digest_authenticate.as_ref(),
            SipDigestAuthenticate::to_avp,
        );
        push_opt(&mut c, self.framed_ip_address.clone(), |v| {
            Avp::octets(&dict::FRAMED_IP_ADDRESS, v)
        });
        push_opt(&mut c, self.framed_ipv6_prefix.clone(), |v| {
            Avp::octets(&dict::FRAMED_IPV6_PREFIX, v)
        });
        push_opt(&mut c, self.framed_interface_id, |v| {
            Avp::u64(&dict::FRAMED_INTERFACE_ID, v)
        });
        for l in &self.line_identifiers {
            c.push(Avp::octets(&dict::LINE_IDENTIFIER, l.clone()));
        }
        c.extend(self.extra.iter().cloned());
        Avp::grouped(&dict::SIP_AUTH_DATA_ITEM, c)
    }
}

/// Server-Capabilities (TS 29.229 §6.3.4): what the I-CSCF needs to pick an S-CSCF.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerCapabilities {
    /// `*[ Mandatory-Capability ]`.
    pub mandatory: Vec<u32>,
    /// `*[ Optional-Capability ]`.
    pub optional: Vec<u32>,
    /// `*[ Server-Name ]`.
    pub server_names: Vec<String>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
}

impl ServerCapabilities {
    fn from_avp(a: &Avp) -> Result<Self, Error> {
        let mut r = Reader::new(a.children()?);
        Ok(Self {
            mandatory: r.many_map(&dict::MANDATORY_CAPABILITY, u32v)?,
            optional: r.many_map(&dict::OPTIONAL_CAPABILITY, u32v)?,
            server_names: r.many_map(&dict::SERVER_NAME, string)?,
            extra: r.rest(),
        })
    }

    fn to_avp(&self) -> Avp {
        let mut c = Vec::new();
        c.extend(
            self.mandatory
                .iter()
                .map(|v| Avp::u32(&dict::MANDATORY_CAPABILITY, *v)),
        );
        c.extend(
            self.optional
                .iter()
                .map(|v| Avp::u32(&dict::OPTIONAL_CAPABILITY, *v)),
        );
        c.extend(
            self.server_names
                .iter()
                .map(|v| Avp::utf8(&dict::SERVER_NAME, v)),
        );
        c.extend(self.extra.iter().cloned());
        Avp::grouped(&dict::SERVER_CAPABILITIES, c)
    }
}

/// Charging-Information (TS 29.229 §6.3.19).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChargingInformation {
    /// Primary-Event-Charging-Function-Name.
    pub primary_event_charging_function_name: Option<DiameterUri>,
    /// Secondary-Event-Charging-Function-Name.
    pub secondary_event_charging_function_name: Option<DiameterUri>,
    /// Primary-Charging-Collection-Function-Name.
    pub primary_charging_collection_function_name: Option<DiameterUri>,
    /// Secondary-Charging-Collection-Function-Name.
    pub secondary_charging_collection_function_name: Option<DiameterUri>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
}

impl ChargingInformation {
    fn from_avp(a: &Avp) -> Result<Self, Error> {
        let mut r = Reader::new(a.children()?);
        Ok(Self {
            primary_event_charging_function_name: r
                .opt_map(&dict::PRIMARY_EVENT_CHARGING_FUNCTION_NAME, Avp::as_uri)?,
            secondary_event_charging_function_name: r
                .opt_map(&dict::SECONDARY_EVENT_CHARGING_FUNCTION_NAME, Avp::as_uri)?,
            primary_charging_collection_function_name: r.opt_map(
                &dict::PRIMARY_CHARGING_COLLECTION_FUNCTION_NAME,
                Avp::as_uri,
            )?,
            secondary_charging_collection_function_name: r.opt_map(
                &dict::SECONDARY_CHARGING_COLLECTION_FUNCTION_NAME,
                Avp::as_uri,
            )?,
            extra: r.rest(),
        })
    }

    fn to_avp(&self) -> Avp {
        let mut c = Vec::new();
        for (def, v) in [
            (
                &dict::PRIMARY_EVENT_CHARGING_FUNCTION_NAME,
                &self.primary_event_charging_function_name,
            ),
            (
                &dict::SECONDARY_EVENT_CHARGING_FUNCTION_NAME,
                &self.secondary_event_charging_function_name,
            ),
            (
                &dict::PRIMARY_CHARGING_COLLECTION_FUNCTION_NAME,
                &self.primary_charging_collection_function_name,
            ),
            (
                &dict::SECONDARY_CHARGING_COLLECTION_FUNCTION_NAME,
                &self.secondary_charging_collection_function_name,
            ),
        ] {
            push_opt(&mut c, v.as_ref(), |u| Avp::uri(def, u));
        }
        c.extend(self.extra.iter().cloned());
        Avp::grouped(&dict::CHARGING_INFORMATION, c)
    }
}

/// Deregistration-Reason (TS 29.229 §6.3.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeregistrationReason {
    /// Reason-Code.
    pub reason_code: ReasonCode,
    /// Reason-Info: text for the user.
    pub reason_info: Option<String>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
}

impl DeregistrationReason {
    fn from_avp(a: &Avp) -> Result<Self, Error> {
        let mut r = Reader::new(a.children()?);
        Ok(Self {
            reason_code: ReasonCode(r.one(&dict::REASON_CODE)?.as_i32()?),
            reason_info: r.opt_map(&dict::REASON_INFO, string)?,
            extra: r.rest(),
        })
    }

    fn to_avp(&self) -> Avp {
        let mut c = vec![Avp::i32(&dict::REASON_CODE, self.reason_code.0)];
        push_opt(&mut c, self.reason_info.as_deref(), |v| {
            Avp::utf8(&dict::REASON_INFO, v)
        });
        c.extend(self.extra.iter().cloned());
        Avp::grouped(&dict::DEREGISTRATION_REASON, c)
    }
}

/// Identity-with-Emergency-Registration in RTA (TS 29.229 §6.3.57).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityWithEmergencyRegistration {
    /// User-Name.
    pub user_name: Impi,
    /// Public-Identity.
    pub public_identity: Impu,
}

impl IdentityWithEmergencyRegistration {
    fn from_avp(a: &Avp) -> Result<Self, Error> {
        let mut r = Reader::new(a.children()?);
        Ok(Self {
            user_name: impi(r.one(&dict::USER_NAME)?)?,
            public_identity: impu(r.one(&dict::PUBLIC_IDENTITY)?)?,
        })
    }

    fn to_avp(&self) -> Avp {
        Avp::grouped(
            &dict::IDENTITY_WITH_EMERGENCY_REGISTRATION,
            vec![
                Avp::utf8(&dict::USER_NAME, self.user_name.as_str()),
                Avp::utf8(&dict::PUBLIC_IDENTITY, self.public_identity.as_str()),
            ],
        )
    }
}

/// Reads the User-Names of Associated-Identities or Associated-Registered-Identities.
fn user_names(a: &Avp) -> Result<Vec<Impi>, Error> {
    let mut r = Reader::new(a.children()?);
    r.many_map(&dict::USER_NAME, impi)
}

fn user_names_avp(def: &dict::AvpDef, names: &[Impi]) -> Avp {
    Avp::grouped(
        def,
        names
            .iter()
            .map(|n| Avp::utf8(&dict::USER_NAME, n.as_str()))
            .collect(),
    )
}

/// The AVPs opening every Cx request, and their trailing repeated ones.
struct RequestHead {
    session_id: String,
    origin_host: DiameterIdentity,
    origin_realm: Realm,
    destination_host: Option<DiameterIdentity>,
    destination_realm: Realm,
    supported_features: Vec<SupportedFeatures>,
    proxy_info: Vec<Avp>,
    route_record: Vec<DiameterIdentity>,
}

fn read_cx_fixed(r: &mut Reader<'_>) -> Result<(), Error> {
    VendorSpecificApplicationId::from_avp(r.one(&dict::VENDOR_SPECIFIC_APPLICATION_ID)?)?;
    r.one(&dict::AUTH_SESSION_STATE)?.as_i32()?;
    Ok(())
}

impl RequestHead {
    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        let session_id = string(r.one(&dict::SESSION_ID)?)?;
        read_cx_fixed(r)?;
        Ok(Self {
            session_id,
            origin_host: identity(r.one(&dict::ORIGIN_HOST)?)?,
            origin_realm: realm(r.one(&dict::ORIGIN_REALM)?)?,
            destination_host: r.opt_map(&dict::DESTINATION_HOST, identity)?,
            destination_realm: realm(r.one(&dict::DESTINATION_REALM)?)?,
            supported_features: r
                .many_map(&dict::SUPPORTED_FEATURES, SupportedFeatures::from_avp)?,
            proxy_info: r.many(&dict::PROXY_INFO).into_iter().cloned().collect(),
            route_record: r.many_map(&dict::ROUTE_RECORD, identity)?,
        })
    }
}

/// Writes Session-Id, Vendor-Specific-Application-Id, Auth-Session-State, Origin-Host,
/// Origin-Realm, [Destination-Host], Destination-Realm.
fn write_request_head(
    code: CommandCode,
    session_id: &str,
    origin_host: &DiameterIdentity,
    origin_realm: &Realm,
    destination_host: Option<&DiameterIdentity>,
    destination_realm: &Realm,
) -> Message {
    let mut m = Message::request(code, ApplicationId::CX, true);
    m.avps.reserve(16);
    m.push(Avp::utf8(&dict::SESSION_ID, session_id));
    m.push(VendorSpecificApplicationId::CX.to_avp());
    m.push(Avp::i32(
        &dict::AUTH_SESSION_STATE,
        AuthSessionState::NO_STATE_MAINTAINED.0,
    ));
    m.push(Avp::utf8(&dict::ORIGIN_HOST, origin_host.as_str()));
    m.push(Avp::utf8(&dict::ORIGIN_REALM, origin_realm.as_str()));
    push_opt(&mut m.avps, destination_host, |h| {
        Avp::utf8(&dict::DESTINATION_HOST, h.as_str())
    });
    m.push(Avp::utf8(
        &dict::DESTINATION_REALM,
        destination_realm.as_str(),
    ));
    m
}

/// The AVPs every Cx answer carries, and its trailing ones.
struct AnswerHead {
    session_id: String,
    result: CxResult,
    origin_host: DiameterIdentity,
    origin_realm: Realm,
    supported_features: Vec<SupportedFeatures>,
    failed_avp: Option<Vec<Avp>>,
    proxy_info: Vec<Avp>,
    route_record: Vec<DiameterIdentity>,
}

impl AnswerHead {
    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        let session_id = string(r.one(&dict::SESSION_ID)?)?;
        read_cx_fixed(r)?;
        Ok(Self {
            session_id,
            result: CxResult::read(r)?,
            origin_host: identity(r.one(&dict::ORIGIN_HOST)?)?,
            origin_realm: realm(r.one(&dict::ORIGIN_REALM)?)?,
            supported_features: r
                .many_map(&dict::SUPPORTED_FEATURES, SupportedFeatures::from_avp)?,
            failed_avp: r.opt_map(&dict::FAILED_AVP, |a| a.children().map(<[Avp]>::to_vec))?,
            proxy_info: r.many(&dict::PROXY_INFO).into_iter().cloned().collect(),
            route_record: r.many_map(&dict::ROUTE_RECORD, identity)?,
        })
    }
}

/// Writes Session-Id, Vendor-Specific-Application-Id, the result, Auth-Session-State,
/// Origin-Host, Origin-Realm.
fn write_answer_head(
    code: CommandCode,
    session_id: &str,
    result: &CxResult,
    origin_host: &DiameterIdentity,
    origin_realm: &Realm,
) -> Message {
    let mut m = Message::request(code, ApplicationId::CX, true);
    m.header = m.header.answer();
    m.avps.reserve(16);
    m.push(Avp::utf8(&dict::SESSION_ID, session_id));
    m.push(VendorSpecificApplicationId::CX.to_avp());
    result.write(&mut m.avps);
    m.push(Avp::i32(
        &dict::AUTH_SESSION_STATE,
        AuthSessionState::NO_STATE_MAINTAINED.0,
    ));
    m.push(Avp::utf8(&dict::ORIGIN_HOST, origin_host.as_str()));
    m.push(Avp::utf8(&dict::ORIGIN_REALM, origin_realm.as_str()));
    m
}

/// Writes `*[ Supported-Features ]`.
fn write_features(out: &mut Vec<Avp>, f: &[SupportedFeatures]) {
    out.extend(f.iter().map(|f| f.to_avp()));
}

/// Writes `*[ AVP ]`, `[ Failed-AVP ]` (answers), `*[ Proxy-Info ]`, `*[ Route-Record ]`.
fn write_tail(
    out: &mut Vec<Avp>,
    extra: &[Avp],
    failed_avp: Option<&Vec<Avp>>,
    proxy_info: &[Avp],
    route_record: &[DiameterIdentity],
) {
    out.extend(extra.iter().cloned());
    push_opt(out, failed_avp, |f| {
        Avp::grouped(&dict::FAILED_AVP, f.clone())
    });
    out.extend(proxy_info.iter().cloned());
    out.extend(
        route_record
            .iter()
            .map(|r| Avp::utf8(&dict::ROUTE_RECORD, r.as_str())),
    );
}

/// Any Cx request, for dispatch in a server (boxed: the structs are large).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CxRequest {
    /// User-Authorization-Request.
    Uar(Box<Uar>),
    /// Server-Assignment-Request.
    Sar(Box<Sar>),
    /// Location-Info-Request.
    Lir(Box<Lir>),
    /// Multimedia-Auth-Request.
    Mar(Box<Mar>),
    /// Registration-Termination-Request.
    Rtr(Box<Rtr>),
    /// Push-Profile-Request.
    Ppr(Box<Ppr>),
}

impl CxRequest {
    /// Decodes any Cx request. Another application is [`Error::UnsupportedApplication`] (3007),
    /// another command [`Error::UnsupportedCommand`] (3001).
    pub fn decode(m: &Message) -> Result<Self, Error> {
        if m.header.application_id != ApplicationId::CX {
            return Err(Error::UnsupportedApplication(m.header.application_id));
        }
        match m.header.code {
            CommandCode::USER_AUTHORIZATION => Uar::decode(m).map(|x| Self::Uar(Box::new(x))),
            CommandCode::SERVER_ASSIGNMENT => Sar::decode(m).map(|x| Self::Sar(Box::new(x))),
            CommandCode::LOCATION_INFO => Lir::decode(m).map(|x| Self::Lir(Box::new(x))),
            CommandCode::MULTIMEDIA_AUTH => Mar::decode(m).map(|x| Self::Mar(Box::new(x))),
            CommandCode::REGISTRATION_TERMINATION => Rtr::decode(m).map(|x| Self::Rtr(Box::new(x))),
            CommandCode::PUSH_PROFILE => Ppr::decode(m).map(|x| Self::Ppr(Box::new(x))),
            code => Err(Error::UnsupportedCommand {
                code,
                app: ApplicationId::CX,
            }),
        }
    }

    /// The Session-Id.
    pub fn session_id(&self) -> &str {
        match self {
            Self::Uar(r) => &r.session_id,
            Self::Sar(r) => &r.session_id,
            Self::Lir(r) => &r.session_id,
            Self::Mar(r) => &r.session_id,
            Self::Rtr(r) => &r.session_id,
            Self::Ppr(r) => &r.session_id,
        }
    }
}

/// Any Cx answer, for a client that sent several kinds (boxed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CxAnswer {
    /// User-Authorization-Answer.
    Uaa(Box<Uaa>),
    /// Server-Assignment-Answer.
    Saa(Box<Saa>),
    /// Location-Info-Answer.
    Lia(Box<Lia>),
    /// Multimedia-Auth-Answer.
    Maa(Box<Maa>),
    /// Registration-Termination-Answer.
    Rta(Box<Rta>),
    /// Push-Profile-Answer.
    Ppa(Box<Ppa>),
}

impl CxAnswer {
    /// Decodes any Cx answer.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        if m.header.application_id != ApplicationId::CX {
            return Err(Error::UnsupportedApplication(m.header.application_id));
        }
        match m.header.code {
            CommandCode::USER_AUTHORIZATION => Uaa::decode(m).map(|x| Self::Uaa(Box::new(x))),
            CommandCode::SERVER_ASSIGNMENT => Saa::decode(m).map(|x| Self::Saa(Box::new(x))),
            CommandCode::LOCATION_INFO => Lia::decode(m).map(|x| Self::Lia(Box::new(x))),
            CommandCode::MULTIMEDIA_AUTH => Maa::decode(m).map(|x| Self::Maa(Box::new(x))),
            CommandCode::REGISTRATION_TERMINATION => Rta::decode(m).map(|x| Self::Rta(Box::new(x))),
            CommandCode::PUSH_PROFILE => Ppa::decode(m).map(|x| Self::Ppa(Box::new(x))),
            code => Err(Error::UnsupportedCommand {
                code,
                app: ApplicationId::CX,
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use imslab_types::{DiameterIdentity, Realm};

    use crate::answer::Origin;

    pub(crate) fn scscf() -> Origin {
        Origin {
            host: DiameterIdentity::new("scscf.ims.example").expect("valid"),
            realm: Realm::new("ims.example").expect("valid"),
        }
    }

    pub(crate) fn hss() -> Origin {
        Origin {
            host: DiameterIdentity::new("hss.ims.example").expect("valid"),
            realm: Realm::new("ims.example").expect("valid"),
        }
    }

    /// Encodes, decodes from bytes, and returns the message.
    pub(crate) fn wire(m: &crate::Message) -> crate::Message {
        crate::Message::decode(m.encode().expect("encodes")).expect("decodes")
    }
}
