//! Handset profiles: the header sets common phones put in their IMS requests.
//!
//! Each profile reproduces what one family of phones sends when it registers and calls
//! (TS 24.229 §5.1.1.2, GSMA PRD IR.92 §2.2): the Contact feature tags (ICSI for MMTel, SMS over
//! IP, accesstype, SRVCC tags), `+sip.instance` with the IMEI URN (RFC 7254), User-Agent, the
//! Security-Client offers in the phone's order, and the Supported/Require option tags. They
//! were put together from public captures and vendor documentation; they are representative,
//! not byte-for-byte copies of any firmware.
//!
//! | profile      | User-Agent                               | Security-Client (alg/ealg, in order)                                  | REGISTER Supported       |
//! |--------------|------------------------------------------|-----------------------------------------------------------------------|--------------------------|
//! | `samsung-s23`| `SM-S911B-S911BXXU3BWK5 Samsung IMS 6.0` | sha1/aes, sha1/3des, sha1/null, md5/aes, md5/3des, md5/null           | `path, gruu, sec-agree`  |
//! | `pixel-7`    | `Pixel 7 TQ3A.230805.001 IMS`            | sha1/aes, md5/aes, sha1/null, md5/null                                | `path, sec-agree`        |
//! | `iphone-14`  | `iOS/16.6 iPhone`                        | sha1/null, md5/null, sha1/aes, md5/aes                                | `path, sec-agree`        |
//! | `generic`    | `imslab-ue/0.1`                          | sha1/aes, md5/aes, sha1/3des, sha1/null                               | `path, sec-agree`        |
//!
//! All three phones tag their Contact with `+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"`,
//! `+g.3gpp.smsip`, `audio` and `+sip.instance`; Samsung and iPhone add `video` and the SRVCC tags
//! (`+g.3gpp.mid-call`, `+g.3gpp.srvcc-alerting`, `+g.3gpp.ps2cs-srvcc-orig-pre-alerting`);
//! Samsung adds `+g.3gpp.accesstype="cellular2"`. INVITEs carry `Supported: 100rel,
//! precondition, timer` (Samsung and Pixel also `replaces`), P-Access-Network-Info with an
//! E-UTRAN cell and P-Preferred-Service for MMTel.

use imslab_ipsec::{CipherSuite, EncryptionAlg, IntegrityAlg};

/// One handset's header set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Profile name, as written in scenarios.
    pub name: &'static str,
    /// User-Agent.
    pub user_agent: &'static str,
    /// Contact parameters after the URI (feature tags), without `+sip.instance` and `expires`.
    pub contact_params: &'static str,
    /// Supported on REGISTER.
    pub register_supported: &'static str,
    /// Supported on INVITE and other dialog requests.
    pub invite_supported: &'static str,
    /// Allow.
    pub allow: &'static str,
    /// The Security-Client offers, in order.
    pub security_offers: Vec<CipherSuite>,
    /// P-Access-Network-Info.
    pub access_network_info: &'static str,
    /// Registration expiry asked for, seconds.
    pub register_expires: u32,
    /// The first 8 digits of the IMEI (the TAC) used in `+sip.instance`.
    pub tac: &'static str,
}

const SHA1: IntegrityAlg = IntegrityAlg::HmacSha1_96;
const MD5: IntegrityAlg = IntegrityAlg::HmacMd5_96;

fn suite(i: IntegrityAlg, e: EncryptionAlg) -> CipherSuite {
    CipherSuite::new(i, e)
}

const ALLOW: &str =
    "INVITE, ACK, OPTIONS, CANCEL, BYE, UPDATE, INFO, REFER, NOTIFY, MESSAGE, PRACK";
const MMTEL: &str = "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\"";
const CELL: &str = "3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=001010001000019B";

impl Profile {
    /// The names [`Profile::by_name`] knows.
    pub const NAMES: [&'static str; 4] = ["samsung-s23", "pixel-7", "iphone-14", "generic"];

    /// A Samsung Galaxy S23 (Samsung IMS stack).
    pub fn samsung() -> Self {
        use EncryptionAlg::*;
        Self {
            name: "samsung-s23",
            user_agent: "SM-S911B-S911BXXU3BWK5 Samsung IMS 6.0",
            contact_params: "+g.3gpp.accesstype=\"cellular2\";audio;video;\
                +g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\";+g.3gpp.smsip;\
                +g.3gpp.mid-call;+g.3gpp.srvcc-alerting;+g.3gpp.ps2cs-srvcc-orig-pre-alerting",
            register_supported: "path, gruu, sec-agree",
            invite_supported: "100rel, replaces, timer, precondition, sec-agree",
            allow: ALLOW,
            security_offers: vec![
                suite(SHA1, AesCbc),
                suite(SHA1, DesEde3Cbc),
                suite(SHA1, Null),
                suite(MD5, AesCbc),
                suite(MD5, DesEde3Cbc),
                suite(MD5, Null),
            ],
            access_network_info: CELL,
            register_expires: 600_000,
            tac: "35622311",
        }
    }

    /// A Google Pixel 7.
    pub fn pixel() -> Self {
        use EncryptionAlg::*;
        Self {
            name: "pixel-7",
            user_agent: "Pixel 7 TQ3A.230805.001 IMS",
            contact_params: "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\";\
                +g.3gpp.smsip;audio",
            register_supported: "path, sec-agree",
            invite_supported: "100rel, replaces, timer, precondition",
            allow: "INVITE, ACK, OPTIONS, CANCEL, BYE, UPDATE, INFO, NOTIFY, MESSAGE, PRACK",
            security_offers: vec![
                suite(SHA1, AesCbc),
                suite(MD5, AesCbc),
                suite(SHA1, Null),
                suite(MD5, Null),
            ],
            access_network_info: CELL,
            register_expires: 3600,
            tac: "35391811",
        }
    }

    /// An Apple iPhone 14.
    pub fn iphone() -> Self {
        use EncryptionAlg::*;
        Self {
            name: "iphone-14",
            user_agent: "iOS/16.6 iPhone",
            contact_params: "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\";\
                +g.3gpp.smsip;audio;video;+g.3gpp.mid-call;+g.3gpp.srvcc-alerting;\
                +g.3gpp.ps2cs-srvcc-orig-pre-alerting",
            register_supported: "path, sec-agree",
            invite_supported: "100rel, timer, precondition",
            allow: "INVITE, ACK, CANCEL, BYE, UPDATE, PRACK, MESSAGE, REFER, NOTIFY, INFO, OPTIONS",
            security_offers: vec![
                suite(SHA1, Null),
                suite(MD5, Null),
                suite(SHA1, AesCbc),
                suite(MD5, AesCbc),
            ],
            access_network_info: CELL,
            register_expires: 600_000,
            tac: "35467211",
        }
    }

    /// A minimal standards-following UE.
    pub fn generic() -> Self {
        use EncryptionAlg::*;
        Self {
            name: "generic",
            user_agent: "imslab-ue/0.1",
            contact_params: MMTEL,
            register_supported: "path, sec-agree",
            invite_supported: "100rel, precondition",
            allow: ALLOW,
            security_offers: vec![
                suite(SHA1, AesCbc),
                suite(MD5, AesCbc),
                suite(SHA1, DesEde3Cbc),
                suite(SHA1, Null),
            ],
            access_network_info: CELL,
            register_expires: 3600,
            tac: "01234567",
        }
    }

    /// The profile named `name` (see [`Profile::NAMES`]).
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "samsung-s23" | "samsung" => Some(Self::samsung()),
            "pixel-7" | "pixel" => Some(Self::pixel()),
            "iphone-14" | "iphone" => Some(Self::iphone()),
            "generic" => Some(Self::generic()),
            _ => None,
        }
    }

    /// `+sip.instance` for a phone with this serial number (RFC 7254 IMEI URN:
    /// TAC-SNR-0, with the 6-digit serial number).
    pub fn instance(&self, serial: u32) -> String {
        format!(
            "\"<urn:gsma:imei:{}-{:06}-0>\"",
            self.tac,
            serial % 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_profile_resolves_and_offers_ipsec() {
        for n in Profile::NAMES {
            let p = Profile::by_name(n).unwrap();
            assert_eq!(p.name, n);
            assert!(!p.security_offers.is_empty());
            assert!(p.contact_params.contains("mmtel"));
        }
        assert!(Profile::by_name("nokia-3310").is_none());
    }

    #[test]
    fn instance_is_an_imei_urn() {
        assert_eq!(
            Profile::iphone().instance(42),
            "\"<urn:gsma:imei:35467211-000042-0>\""
        );
    }
}
