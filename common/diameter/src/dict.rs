//! The dictionary: base protocol AVPs (RFC 6733 §4.5) and Cx AVPs (TS 29.229 §6.3), with their
//! data types and M-bit rules, keyed by (vendor id, code).
//!
//! Each entry is both an [`AvpCode`] associated const (`AvpCode::SESSION_ID`) and an [`AvpDef`]
//! (`dict::SESSION_ID`) that the typed commands use to build and find AVPs. Numeric codes collide
//! across vendors (621 is OC-Supported-Features for vendor 0 and Primary-Charging-Collection-
//! Function-Name for 3GPP), so lookups always take the vendor.
//!
//! M-bit rules follow the spec tables; where Wireshark's dictionary disagrees (it marks several
//! 3GPP "must not" AVPs as mandatory), the spec wins. AVPs absent from this table are unknown: they
//! decode as opaque bytes and re-encode byte-exact; an unknown AVP with the M bit in a request is
//! answered with DIAMETER_AVP_UNSUPPORTED (RFC 6733 §4.1).

use crate::codes::VendorId;

/// An AVP code (RFC 6733 §4.1). Meaningful only together with the vendor id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AvpCode(pub u32);

impl std::fmt::Debug for AvpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AvpCode({})", self.0)
    }
}

impl std::fmt::Display for AvpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The data format of an AVP (RFC 6733 §4.2 basic, §4.3 derived).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AvpType {
    /// Arbitrary bytes (§4.2).
    OctetString,
    /// 32-bit signed, network order (§4.2).
    Integer32,
    /// 64-bit signed (§4.2).
    Integer64,
    /// 32-bit unsigned (§4.2).
    Unsigned32,
    /// 64-bit unsigned (§4.2).
    Unsigned64,
    /// IEEE 754 single precision (§4.2).
    Float32,
    /// IEEE 754 double precision (§4.2).
    Float64,
    /// A sequence of AVPs (§4.4).
    Grouped,
    /// Address family plus address (§4.3.1).
    Address,
    /// NTP seconds (§4.3.1).
    Time,
    /// UTF-8 text (§4.3.1).
    Utf8String,
    /// An FQDN (§4.3.1).
    DiameterIdentity,
    /// An `aaa://` or `aaas://` URI (§4.3.1).
    DiameterUri,
    /// An Integer32 with named values (§4.3.1).
    Enumerated,
}

impl AvpType {
    /// The smallest valid payload, used for the zero-filled example in Failed-AVP
    /// (RFC 6733 §7.5).
    pub fn min_len(self) -> usize {
        match self {
            Self::Integer32 | Self::Unsigned32 | Self::Float32 | Self::Time | Self::Enumerated => 4,
            Self::Integer64 | Self::Unsigned64 | Self::Float64 => 8,
            Self::Address => 6,
            Self::OctetString
            | Self::Grouped
            | Self::Utf8String
            | Self::DiameterIdentity
            | Self::DiameterUri => 0,
        }
    }

    /// The exact payload length for fixed-size types, `None` for variable ones.
    pub fn fixed_len(self) -> Option<usize> {
        match self {
            Self::Integer32 | Self::Unsigned32 | Self::Float32 | Self::Time | Self::Enumerated => {
                Some(4)
            }
            Self::Integer64 | Self::Unsigned64 | Self::Float64 => Some(8),
            _ => None,
        }
    }
}

/// What the spec says about a flag bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlagRule {
    /// The bit MUST be set.
    Must,
    /// The bit MAY be set (we send it clear).
    May,
    /// The bit MUST NOT be set.
    MustNot,
}

/// One dictionary entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AvpDef {
    /// The spec name, e.g. `Session-Id`.
    pub name: &'static str,
    /// The AVP code.
    pub code: AvpCode,
    /// The vendor: [`VendorId::IETF`] means sent without the V bit.
    pub vendor: VendorId,
    /// The data format.
    pub ty: AvpType,
    /// The M-bit rule.
    pub m: FlagRule,
    /// A secret (keys, XRES, HA1): `Debug` prints only its length.
    pub secret: bool,
    /// Where the spec defines it.
    pub clause: &'static str,
}

impl AvpDef {
    /// The vendor id to put in the AVP header, `None` for IETF AVPs.
    pub fn vendor_id(&self) -> Option<VendorId> {
        (self.vendor != VendorId::IETF).then_some(self.vendor)
    }
}

macro_rules! dictionary {
    ($($konst:ident = $code:literal, $vendor:literal, $name:literal, $ty:ident, $m:ident,
       $clause:literal $(, $secret:ident)?;)*) => {
        impl AvpCode {
            $(
                #[doc = concat!($name, " (", $clause, ").")]
                pub const $konst: Self = Self($code);
            )*
        }

        $(
            #[doc = concat!($name, " (", $clause, ").")]
            pub const $konst: AvpDef = AvpDef {
                name: $name,
                code: AvpCode($code),
                vendor: VendorId($vendor),
                ty: AvpType::$ty,
                m: FlagRule::$m,
                secret: dictionary!(@secret $($secret)?),
                clause: $clause,
            };
        )*

        /// Every entry, in table order.
        pub static ALL: &[AvpDef] = &[$($konst),*];

        /// The definition of `(vendor, code)`; vendor 0 for IETF AVPs.
        pub fn lookup(code: AvpCode, vendor: VendorId) -> Option<&'static AvpDef> {
            match (vendor.0, code.0) {
                $(($vendor, $code) => Some(&$konst),)*
                _ => None,
            }
        }
    };
    (@secret secret) => { true };
    (@secret) => { false };
}

dictionary! {
    // RFC 6733 §4.5 base protocol AVPs.
    USER_NAME = 1, 0, "User-Name", Utf8String, Must, "RFC 6733 §8.14";
    CLASS = 25, 0, "Class", OctetString, Must, "RFC 6733 §8.20";
    SESSION_TIMEOUT = 27, 0, "Session-Timeout", Unsigned32, Must, "RFC 6733 §8.13";
    PROXY_STATE = 33, 0, "Proxy-State", OctetString, Must, "RFC 6733 §6.7.4";
    ACCT_SESSION_ID = 44, 0, "Acct-Session-Id", OctetString, Must, "RFC 6733 §9.8.4";
    ACCT_MULTI_SESSION_ID = 50, 0, "Acct-Multi-Session-Id", Utf8String, Must, "RFC 6733 §9.8.5";
    EVENT_TIMESTAMP = 55, 0, "Event-Timestamp", Time, Must, "RFC 6733 §8.21";
    ACCT_INTERIM_INTERVAL = 85, 0, "Acct-Interim-Interval", Unsigned32, Must, "RFC 6733 §9.8.2";
    HOST_IP_ADDRESS = 257, 0, "Host-IP-Address", Address, Must, "RFC 6733 §5.3.5";
    AUTH_APPLICATION_ID = 258, 0, "Auth-Application-Id", Unsigned32, Must, "RFC 6733 §6.8";
    ACCT_APPLICATION_ID = 259, 0, "Acct-Application-Id", Unsigned32, Must, "RFC 6733 §6.9";
    VENDOR_SPECIFIC_APPLICATION_ID = 260, 0, "Vendor-Specific-Application-Id", Grouped, Must,
        "RFC 6733 §6.11";
    REDIRECT_HOST_USAGE = 261, 0, "Redirect-Host-Usage", Enumerated, Must, "RFC 6733 §6.13";
    REDIRECT_MAX_CACHE_TIME = 262, 0, "Redirect-Max-Cache-Time", Unsigned32, Must,
        "RFC 6733 §6.14";
    SESSION_ID = 263, 0, "Session-Id", Utf8String, Must, "RFC 6733 §8.8";
    ORIGIN_HOST = 264, 0, "Origin-Host", DiameterIdentity, Must, "RFC 6733 §6.3";
    SUPPORTED_VENDOR_ID = 265, 0, "Supported-Vendor-Id", Unsigned32, Must, "RFC 6733 §5.3.6";
    VENDOR_ID = 266, 0, "Vendor-Id", Unsigned32, Must, "RFC 6733 §5.3.3";
    FIRMWARE_REVISION = 267, 0, "Firmware-Revision", Unsigned32, MustNot, "RFC 6733 §5.3.4";
    RESULT_CODE = 268, 0, "Result-Code", Unsigned32, Must, "RFC 6733 §7.1";
    PRODUCT_NAME = 269, 0, "Product-Name", Utf8String, MustNot, "RFC 6733 §5.3.7";
    SESSION_BINDING = 270, 0, "Session-Binding", Unsigned32, Must, "RFC 6733 §8.17";
    SESSION_SERVER_FAILOVER = 271, 0, "Session-Server-Failover", Enumerated, Must,
        "RFC 6733 §8.18";
    MULTI_ROUND_TIME_OUT = 272, 0, "Multi-Round-Time-Out", Unsigned32, Must, "RFC 6733 §8.19";
    DISCONNECT_CAUSE = 273, 0, "Disconnect-Cause", Enumerated, Must, "RFC 6733 §5.4.3";
    AUTH_REQUEST_TYPE = 274, 0, "Auth-Request-Type", Enumerated, Must, "RFC 6733 §8.7";
    AUTH_GRACE_PERIOD = 276, 0, "Auth-Grace-Period", Unsigned32, Must, "RFC 6733 §8.10";
    AUTH_SESSION_STATE = 277, 0, "Auth-Session-State", Enumerated, Must, "RFC 6733 §8.11";
    ORIGIN_STATE_ID = 278, 0, "Origin-State-Id", Unsigned32, Must, "RFC 6733 §8.16";
    FAILED_AVP = 279, 0, "Failed-AVP", Grouped, Must, "RFC 6733 §7.5";
    PROXY_HOST = 280, 0, "Proxy-Host", DiameterIdentity, Must, "RFC 6733 §6.7.3";
    ERROR_MESSAGE = 281, 0, "Error-Message", Utf8String, MustNot, "RFC 6733 §7.3";
    ROUTE_RECORD = 282, 0, "Route-Record", DiameterIdentity, Must, "RFC 6733 §6.7.1";
    DESTINATION_REALM = 283, 0, "Destination-Realm", DiameterIdentity, Must, "RFC 6733 §6.6";
    PROXY_INFO = 284, 0, "Proxy-Info", Grouped, Must, "RFC 6733 §6.7.2";
    RE_AUTH_REQUEST_TYPE = 285, 0, "Re-Auth-Request-Type", Enumerated, Must, "RFC 6733 §8.12";
    ACCOUNTING_SUB_SESSION_ID = 287, 0, "Accounting-Sub-Session-Id", Unsigned64, Must,
        "RFC 6733 §9.8.6";
    AUTHORIZATION_LIFETIME = 291, 0, "Authorization-Lifetime", Unsigned32, Must, "RFC 6733 §8.9";
    REDIRECT_HOST = 292, 0, "Redirect-Host", DiameterUri, Must, "RFC 6733 §6.12";
    DESTINATION_HOST = 293, 0, "Destination-Host", DiameterIdentity, Must, "RFC 6733 §6.5";
    ERROR_REPORTING_HOST = 294, 0, "Error-Reporting-Host", DiameterIdentity, MustNot,
        "RFC 6733 §7.4";
    TERMINATION_CAUSE = 295, 0, "Termination-Cause", Enumerated, Must, "RFC 6733 §8.15";
    ORIGIN_REALM = 296, 0, "Origin-Realm", DiameterIdentity, Must, "RFC 6733 §6.4";
    EXPERIMENTAL_RESULT = 297, 0, "Experimental-Result", Grouped, Must, "RFC 6733 §7.6";
    EXPERIMENTAL_RESULT_CODE = 298, 0, "Experimental-Result-Code", Unsigned32, Must,
        "RFC 6733 §7.7";
    INBAND_SECURITY_ID = 299, 0, "Inband-Security-Id", Unsigned32, Must, "RFC 6733 §6.10";
    ACCOUNTING_RECORD_TYPE = 480, 0, "Accounting-Record-Type", Enumerated, Must,
        "RFC 6733 §9.8.1";
    ACCOUNTING_REALTIME_REQUIRED = 483, 0, "Accounting-Realtime-Required", Enumerated, Must,
        "RFC 6733 §9.8.7";
    ACCOUNTING_RECORD_NUMBER = 485, 0, "Accounting-Record-Number", Unsigned32, Must,
        "RFC 6733 §9.8.3";

    // IETF AVPs nested in Cx grouped AVPs (SIP-Auth-Data-Item, SIP-Digest-Authenticate).
    FRAMED_IP_ADDRESS = 8, 0, "Framed-IP-Address", OctetString, Must, "RFC 7155 §4.4.10.5.1";
    FRAMED_INTERFACE_ID = 96, 0, "Framed-Interface-Id", Unsigned64, Must, "RFC 7155 §4.4.10.5.5";
    FRAMED_IPV6_PREFIX = 97, 0, "Framed-IPv6-Prefix", OctetString, Must, "RFC 7155 §4.4.10.5.6";
    DIGEST_REALM = 104, 0, "Digest-Realm", Utf8String, Must, "RFC 4590 §3.2";
    DIGEST_QOP = 110, 0, "Digest-QoP", Utf8String, Must, "RFC 4590 §3.2";
    DIGEST_ALGORITHM = 111, 0, "Digest-Algorithm", Utf8String, Must, "RFC 4590 §3.2";
    DIGEST_HA1 = 121, 0, "Digest-HA1", Utf8String, Must, "RFC 4590 §3.2", secret;
    LINE_IDENTIFIER = 500, 13019, "Line-Identifier", OctetString, May, "ETSI ES 283 034 §7.3.42";

    // TS 29.229 §6.3 Cx AVPs, vendor 10415.
    VISITED_NETWORK_IDENTIFIER = 600, 10415, "Visited-Network-Identifier", OctetString, Must,
        "TS 29.229 §6.3.1";
    PUBLIC_IDENTITY = 601, 10415, "Public-Identity", Utf8String, Must, "TS 29.229 §6.3.2";
    SERVER_NAME = 602, 10415, "Server-Name", Utf8String, Must, "TS 29.229 §6.3.3";
    SERVER_CAPABILITIES = 603, 10415, "Server-Capabilities", Grouped, Must, "TS 29.229 §6.3.4";
    MANDATORY_CAPABILITY = 604, 10415, "Mandatory-Capability", Unsigned32, Must,
        "TS 29.229 §6.3.5";
    OPTIONAL_CAPABILITY = 605, 10415, "Optional-Capability", Unsigned32, Must,
        "TS 29.229 §6.3.6";
    USER_DATA = 606, 10415, "User-Data", OctetString, Must, "TS 29.229 §6.3.7";
    SIP_NUMBER_AUTH_ITEMS = 607, 10415, "SIP-Number-Auth-Items", Unsigned32, Must,
        "TS 29.229 §6.3.8";
    SIP_AUTHENTICATION_SCHEME = 608, 10415, "SIP-Authentication-Scheme", Utf8String, Must,
        "TS 29.229 §6.3.9";
    SIP_AUTHENTICATE = 609, 10415, "SIP-Authenticate", OctetString, Must, "TS 29.229 §6.3.10";
    SIP_AUTHORIZATION = 610, 10415, "SIP-Authorization", OctetString, Must, "TS 29.229 §6.3.11",
        secret;
    SIP_AUTHENTICATION_CONTEXT = 611, 10415, "SIP-Authentication-Context", OctetString, Must,
        "TS 29.229 §6.3.12";
    SIP_AUTH_DATA_ITEM = 612, 10415, "SIP-Auth-Data-Item", Grouped, Must, "TS 29.229 §6.3.13";
    SIP_ITEM_NUMBER = 613, 10415, "SIP-Item-Number", Unsigned32, Must, "TS 29.229 §6.3.14";
    SERVER_ASSIGNMENT_TYPE = 614, 10415, "Server-Assignment-Type", Enumerated, Must,
        "TS 29.229 §6.3.15";
    DEREGISTRATION_REASON = 615, 10415, "Deregistration-Reason", Grouped, Must,
        "TS 29.229 §6.3.16";
    REASON_CODE = 616, 10415, "Reason-Code", Enumerated, Must, "TS 29.229 §6.3.17";
    REASON_INFO = 617, 10415, "Reason-Info", Utf8String, Must, "TS 29.229 §6.3.18";
    CHARGING_INFORMATION = 618, 10415, "Charging-Information", Grouped, Must,
        "TS 29.229 §6.3.19";
    PRIMARY_EVENT_CHARGING_FUNCTION_NAME = 619, 10415, "Primary-Event-Charging-Function-Name",
        DiameterUri, Must, "TS 29.229 §6.3.20";
    SECONDARY_EVENT_CHARGING_FUNCTION_NAME = 620, 10415,
        "Secondary-Event-Charging-Function-Name", DiameterUri, Must, "TS 29.229 §6.3.21";
    PRIMARY_CHARGING_COLLECTION_FUNCTION_NAME = 621, 10415,
        "Primary-Charging-Collection-Function-Name", DiameterUri, Must, "TS 29.229 §6.3.22";
    SECONDARY_CHARGING_COLLECTION_FUNCTION_NAME = 622, 10415,
        "Secondary-Charging-Collection-Function-Name", DiameterUri, Must, "TS 29.229 §6.3.23";
    USER_AUTHORIZATION_TYPE = 623, 10415, "User-Authorization-Type", Enumerated, Must,
        "TS 29.229 §6.3.24";
    USER_DATA_ALREADY_AVAILABLE = 624, 10415, "User-Data-Already-Available", Enumerated, Must,
        "TS 29.229 §6.3.26";
    CONFIDENTIALITY_KEY = 625, 10415, "Confidentiality-Key", OctetString, Must,
        "TS 29.229 §6.3.27", secret;
    INTEGRITY_KEY = 626, 10415, "Integrity-Key", OctetString, Must, "TS 29.229 §6.3.28", secret;
    SUPPORTED_FEATURES = 628, 10415, "Supported-Features", Grouped, May, "TS 29.229 §6.3.29";
    FEATURE_LIST_ID = 629, 10415, "Feature-List-ID", Unsigned32, MustNot, "TS 29.229 §6.3.30";
    FEATURE_LIST = 630, 10415, "Feature-List", Unsigned32, MustNot, "TS 29.229 §6.3.31";
    SUPPORTED_APPLICATIONS = 631, 10415, "Supported-Applications", Grouped, MustNot,
        "TS 29.229 §6.3.32";
    ASSOCIATED_IDENTITIES = 632, 10415, "Associated-Identities", Grouped, MustNot,
        "TS 29.229 §6.3.33";
    ORIGINATING_REQUEST = 633, 10415, "Originating-Request", Enumerated, Must,
        "TS 29.229 §6.3.34";
    WILDCARDED_PUBLIC_IDENTITY = 634, 10415, "Wildcarded-Public-Identity", Utf8String, MustNot,
        "TS 29.229 §6.3.35";
    SIP_DIGEST_AUTHENTICATE = 635, 10415, "SIP-Digest-Authenticate", Grouped, MustNot,
        "TS 29.229 §6.3.36";
    WILDCARDED_IMPU = 636, 10415, "Wildcarded-IMPU", Utf8String, MustNot, "TS 29.229 §6.3.43";
    UAR_FLAGS = 637, 10415, "UAR-Flags", Unsigned32, MustNot, "TS 29.229 §6.3.44";
    LOOSE_ROUTE_INDICATION = 638, 10415, "Loose-Route-Indication", Enumerated, MustNot,
        "TS 29.229 §6.3.45";
    SCSCF_RESTORATION_INFO = 639, 10415, "SCSCF-Restoration-Info", Grouped, MustNot,
        "TS 29.229 §6.3.46";
    PATH = 640, 10415, "Path", OctetString, MustNot, "TS 29.229 §6.3.47";
    CONTACT = 641, 10415, "Contact", OctetString, MustNot, "TS 29.229 §6.3.48";
    SUBSCRIPTION_INFO = 642, 10415, "Subscription-Info", Grouped, MustNot, "TS 29.229 §6.3.49";
    CALL_ID_SIP_HEADER = 643, 10415, "Call-ID-SIP-Header", OctetString, MustNot,
        "TS 29.229 §6.3.49.1";
    FROM_SIP_HEADER = 644, 10415, "From-SIP-Header", OctetString, MustNot, "TS 29.229 §6.3.49.2";
    TO_SIP_HEADER = 645, 10415, "To-SIP-Header", OctetString, MustNot, "TS 29.229 §6.3.49.3";
    RECORD_ROUTE = 646, 10415, "Record-Route", OctetString, MustNot, "TS 29.229 §6.3.49.4";
    ASSOCIATED_REGISTERED_IDENTITIES = 647, 10415, "Associated-Registered-Identities", Grouped,
        MustNot, "TS 29.229 §6.3.50";
    MULTIPLE_REGISTRATION_INDICATION = 648, 10415, "Multiple-Registration-Indication",
        Enumerated, MustNot, "TS 29.229 §6.3.51";
    RESTORATION_INFO = 649, 10415, "Restoration-Info", Grouped, MustNot, "TS 29.229 §6.3.52";
    SESSION_PRIORITY = 650, 10415, "Session-Priority", Enumerated, MustNot, "TS 29.229 §6.3.56";
    IDENTITY_WITH_EMERGENCY_REGISTRATION = 651, 10415, "Identity-with-Emergency-Registration",
        Grouped, MustNot, "TS 29.229 §6.3.57";
    PRIVILEDGED_SENDER_INDICATION = 652, 10415, "Priviledged-Sender-Indication", Enumerated,
        MustNot, "TS 29.229 §6.3.58";
    LIA_FLAGS = 653, 10415, "LIA-Flags", Unsigned32, MustNot, "TS 29.229 §6.3.59";
    INITIAL_CSEQ_SEQUENCE_NUMBER = 654, 10415, "Initial-CSeq-Sequence-Number", Unsigned32,
        MustNot, "TS 29.229 §6.3.62";
    SAR_FLAGS = 655, 10415, "SAR-Flags", Unsigned32, MustNot, "TS 29.229 §6.3.63";
    ALLOWED_WAF_WWSF_IDENTITIES = 656, 10415, "Allowed-WAF-WWSF-Identities", Grouped, MustNot,
        "TS 29.229 §6.3.64";
    WEBRTC_AUTHENTICATION_FUNCTION_NAME = 657, 10415, "WebRTC-Authentication-Function-Name",
        Utf8String, MustNot, "TS 29.229 §6.3.65";
    WEBRTC_WEB_SERVER_FUNCTION_NAME = 658, 10415, "WebRTC-Web-Server-Function-Name", Utf8String,
        MustNot, "TS 29.229 §6.3.66";
    RTR_FLAGS = 659, 10415, "RTR-Flags", Unsigned32, MustNot, "TS 29.229 §6.3.69";
    P_CSCF_SUBSCRIPTION_INFO = 660, 10415, "P-CSCF-Subscription-Info", Grouped, MustNot,
        "TS 29.229 §6.3.70";
    REGISTRATION_TIME_OUT = 661, 10415, "Registration-Time-Out", Time, MustNot,
        "TS 29.229 §6.3.71";
    FAILED_PCSCF = 664, 10415, "Failed-PCSCF", Grouped, MustNot, "TS 29.229 §6.3.74";
    PCSCF_FQDN = 665, 10415, "PCSCF-FQDN", DiameterIdentity, MustNot, "TS 29.229 §6.3.75";
    PCSCF_IP_ADDRESS = 666, 10415, "PCSCF-IP-Address", Address, MustNot, "TS 29.229 §6.3.76";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_keys_on_vendor_and_code() {
        assert_eq!(
            lookup(AvpCode(621), VendorId::TGPP).map(|d| d.name),
            Some("Primary-Charging-Collection-Function-Name")
        );
        // 621 for vendor 0 is OC-Supported-Features (RFC 7683), not in this dictionary.
        assert_eq!(lookup(AvpCode(621), VendorId::IETF), None);
        assert_eq!(
            lookup(AvpCode::SESSION_ID, VendorId::IETF),
            Some(&SESSION_ID)
        );
    }

    #[test]
    fn every_entry_is_found_by_its_own_key() {
        for def in ALL {
            assert_eq!(lookup(def.code, def.vendor), Some(def), "{}", def.name);
        }
    }

    #[test]
    fn cx_dictionary_matches_the_shared_vector_file() {
        let json = include_str!("../testdata/cx_dictionary.json");
        let v: serde_json::Value = serde_json::from_str(json).expect("vector file parses");
        let avps = v["avps"].as_array().expect("avps array");
        let mut checked = 0;
        for a in avps {
            let code = a["code"].as_u64().expect("code") as u32;
            let Some(def) = lookup(AvpCode(code), VendorId::TGPP) else {
                continue;
            };
            checked += 1;
            assert_eq!(
                def.name,
                a["name"].as_str().expect("name"),
                "name of {code}"
            );
            let ty = a["type"].as_str().expect("type");
            let ours = match def.ty {
                AvpType::OctetString => "OctetString",
                AvpType::Utf8String => "UTF8String",
                AvpType::Grouped => "Grouped",
                AvpType::Unsigned32 => "Unsigned32",
                AvpType::Enumerated => "Enumerated",
                AvpType::DiameterUri => "DiameterURI",
                AvpType::DiameterIdentity => "DiameterIdentity",
                AvpType::Time => "Time",
                AvpType::Address => "Address",
                other => panic!("unexpected Cx type {other:?}"),
            };
            assert_eq!(ours, ty, "type of {}", def.name);
            let flags = &a["flags"];
            let has = |list: &str, bit: &str| {
                flags[list]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x == bit))
            };
            let rule = if has("must", "M") {
                FlagRule::Must
            } else if has("must_not", "M") {
                FlagRule::MustNot
            } else {
                FlagRule::May
            };
            assert_eq!(def.m, rule, "M rule of {}", def.name);
            assert!(has("must", "V"), "V bit of {}", def.name);
        }
        assert!(checked >= 60, "only {checked} Cx AVPs checked");
        for b in v["base_avps_rfc6733"].as_array().expect("base avps") {
            let code = b["code"].as_u64().expect("code") as u32;
            let def = lookup(AvpCode(code), VendorId::IETF).expect("base AVP in dictionary");
            assert_eq!(def.name, b["name"].as_str().expect("name"));
            let must = b["M_bit_wireshark"] == "must";
            assert_eq!(def.m == FlagRule::Must, must, "M rule of {}", def.name);
        }
    }
}
