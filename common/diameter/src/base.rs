//! Typed base protocol commands: CER/CEA (RFC 6733 §5.3), DWR/DWA (§5.5), DPR/DPA (§5.4).
//!
//! Requests are decoded strictly (missing AVPs are errors). Answers are decoded leniently
//! beyond Result-Code, Origin-Host and Origin-Realm, because a peer refusing us often omits the
//! rest; what is absent reads as empty.

use imslab_types::{DiameterIdentity, Realm};

use crate::answer::Origin;
use crate::avp::Avp;
use crate::codes::{ApplicationId, CommandCode, ResultCode, VendorId};
use crate::dict;
use crate::enums::DisconnectCause;
use crate::error::Error;
use crate::message::Message;
use crate::typed::{Reader, expect_command, identity, push_opt, realm, string, u32v};
use crate::types::Address;

/// Vendor-Specific-Application-Id (RFC 6733 §6.11): a vendor and one auth or acct application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VendorSpecificApplicationId {
    /// Vendor-Id.
    pub vendor_id: VendorId,
    /// Auth-Application-Id, when the application is an auth one.
    pub auth_application_id: Option<ApplicationId>,
    /// Acct-Application-Id, when the application is an accounting one.
    pub acct_application_id: Option<ApplicationId>,
}

impl VendorSpecificApplicationId {
    /// Cx: vendor 3GPP, auth application 16777216 (TS 29.229 §6.1).
    pub const CX: Self = Self {
        vendor_id: VendorId::TGPP,
        auth_application_id: Some(ApplicationId::CX),
        acct_application_id: None,
    };

    /// The AVP.
    pub fn to_avp(&self) -> Avp {
        let mut c = vec![Avp::u32(&dict::VENDOR_ID, self.vendor_id.0)];
        push_opt(&mut c, self.auth_application_id, |a| {
            Avp::u32(&dict::AUTH_APPLICATION_ID, a.0)
        });
        push_opt(&mut c, self.acct_application_id, |a| {
            Avp::u32(&dict::ACCT_APPLICATION_ID, a.0)
        });
        Avp::grouped(&dict::VENDOR_SPECIFIC_APPLICATION_ID, c)
    }

    /// Reads the AVP.
    pub fn from_avp(a: &Avp) -> Result<Self, Error> {
        let mut r = Reader::new(a.children()?);
        Ok(Self {
            vendor_id: VendorId(u32v(r.one(&dict::VENDOR_ID)?)?),
            auth_application_id: r.opt_map(&dict::AUTH_APPLICATION_ID, |a| {
                a.as_u32().map(ApplicationId)
            })?,
            acct_application_id: r.opt_map(&dict::ACCT_APPLICATION_ID, |a| {
                a.as_u32().map(ApplicationId)
            })?,
        })
    }
}

/// What a node announces in CER and CEA (RFC 6733 §5.3.1, §5.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Origin-Host.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `1* { Host-IP-Address }`.
    pub host_ip_addresses: Vec<Address>,
    /// Vendor-Id of the implementation (0 when unknown).
    pub vendor_id: VendorId,
    /// Product-Name.
    pub product_name: String,
    /// Origin-State-Id: changes each time the node restarts with lost state.
    pub origin_state_id: Option<u32>,
    /// `*[ Supported-Vendor-Id ]`.
    pub supported_vendor_ids: Vec<VendorId>,
    /// `*[ Auth-Application-Id ]`.
    pub auth_application_ids: Vec<ApplicationId>,
    /// `*[ Inband-Security-Id ]` (0 NO_INBAND_SECURITY, 1 TLS).
    pub inband_security_ids: Vec<u32>,
    /// `*[ Acct-Application-Id ]`.
    pub acct_application_ids: Vec<ApplicationId>,
    /// `*[ Vendor-Specific-Application-Id ]`.
    pub vendor_specific_application_ids: Vec<VendorSpecificApplicationId>,
    /// `[ Firmware-Revision ]`.
    pub firmware_revision: Option<u32>,
}

impl Capabilities {
    /// The applications this node supports, plain and vendor-specific, auth and accounting.
    pub fn applications(&self) -> impl Iterator<Item = ApplicationId> + '_ {
        self.auth_application_ids
            .iter()
            .chain(&self.acct_application_ids)
            .copied()
            .chain(self.vendor_specific_application_ids.iter().flat_map(|v| {
                v.auth_application_id
                    .into_iter()
                    .chain(v.acct_application_id)
            }))
    }

    /// The applications both sides support (RFC 6733 §5.3). The relay application matches
    /// everything.
    pub fn common_applications(&self, peer: &Self) -> Vec<ApplicationId> {
        let peer_relay = peer.applications().any(|a| a == ApplicationId::RELAY);
        let mut out: Vec<_> = self
            .applications()
            .filter(|a| {
                peer_relay || *a == ApplicationId::RELAY || peer.applications().any(|p| p == *a)
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn write(&self, out: &mut Vec<Avp>) {
        out.push(Avp::utf8(&dict::ORIGIN_HOST, self.origin_host.as_str()));
        out.push(Avp::utf8(&dict::ORIGIN_REALM, self.origin_realm.as_str()));
        for a in &self.host_ip_addresses {
            out.push(Avp::address(&dict::HOST_IP_ADDRESS, a));
        }
        out.push(Avp::u32(&dict::VENDOR_ID, self.vendor_id.0));
        out.push(Avp::utf8(&dict::PRODUCT_NAME, &self.product_name));
        push_opt(out, self.origin_state_id, |v| {
            Avp::u32(&dict::ORIGIN_STATE_ID, v)
        });
        for v in &self.supported_vendor_ids {
            out.push(Avp::u32(&dict::SUPPORTED_VENDOR_ID, v.0));
        }
        for a in &self.auth_application_ids {
            out.push(Avp::u32(&dict::AUTH_APPLICATION_ID, a.0));
        }
        for i in &self.inband_security_ids {
            out.push(Avp::u32(&dict::INBAND_SECURITY_ID, *i));
        }
        for a in &self.acct_application_ids {
            out.push(Avp::u32(&dict::ACCT_APPLICATION_ID, a.0));
        }
        for v in &self.vendor_specific_application_ids {
            out.push(v.to_avp());
        }
        push_opt(out, self.firmware_revision, |v| {
            Avp::u32(&dict::FIRMWARE_REVISION, v)
        });
    }

    /// Reads capabilities; `strict` requires Host-IP-Address, Vendor-Id and Product-Name.
    fn read(r: &mut Reader<'_>, strict: bool) -> Result<Self, Error> {
        let origin_host = identity(r.one(&dict::ORIGIN_HOST)?)?;
        let origin_realm = realm(r.one(&dict::ORIGIN_REALM)?)?;
        let host_ip_addresses = r.many_map(&dict::HOST_IP_ADDRESS, Avp::as_address)?;
        if strict && host_ip_addresses.is_empty() {
            return Err(Error::MissingAvp {
                def: &dict::HOST_IP_ADDRESS,
            });
        }
        let vendor_id = if strict {
            Some(u32v(r.one(&dict::VENDOR_ID)?)?)
        } else {
            r.opt_map(&dict::VENDOR_ID, u32v)?
        };
        let product_name = if strict {
            Some(string(r.one(&dict::PRODUCT_NAME)?)?)
        } else {
            r.opt_map(&dict::PRODUCT_NAME, string)?
        };
        Ok(Self {
            origin_host,
            origin_realm,
            host_ip_addresses,
            vendor_id: VendorId(vendor_id.unwrap_or(0)),
            product_name: product_name.unwrap_or_default(),
            origin_state_id: r.opt_map(&dict::ORIGIN_STATE_ID, u32v)?,
            supported_vendor_ids: r
                .many_map(&dict::SUPPORTED_VENDOR_ID, |a| a.as_u32().map(VendorId))?,
            auth_application_ids: r.many_map(&dict::AUTH_APPLICATION_ID, |a| {
                a.as_u32().map(ApplicationId)
            })?,
            inband_security_ids: r.many_map(&dict::INBAND_SECURITY_ID, u32v)?,
            acct_application_ids: r.many_map(&dict::ACCT_APPLICATION_ID, |a| {
                a.as_u32().map(ApplicationId)
            })?,
            vendor_specific_application_ids: r.many_map(
                &dict::VENDOR_SPECIFIC_APPLICATION_ID,
                VendorSpecificApplicationId::from_avp,
            )?,
            firmware_revision: r.opt_map(&dict::FIRMWARE_REVISION, u32v)?,
        })
    }
}

/// Capabilities-Exchange-Request (RFC 6733 §5.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cer {
    /// What the sender announces.
    pub capabilities: Capabilities,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
}

impl Cer {
    /// Decodes a CER.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::CAPABILITIES_EXCHANGE, true, "CER")?;
        let mut r = Reader::new(&m.avps);
        let capabilities = Capabilities::read(&mut r, true)?;
        Ok(Self {
            capabilities,
            extra: r.rest(),
        })
    }

    /// Encodes a CER (identifiers zero: the peer assigns them).
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(
            CommandCode::CAPABILITIES_EXCHANGE,
            ApplicationId::COMMON,
            false,
        );
        self.capabilities.write(&mut m.avps);
        m.avps.extend(self.extra.iter().cloned());
        m
    }
}

/// Capabilities-Exchange-Answer (RFC 6733 §5.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cea {
    /// Result-Code: DIAMETER_SUCCESS, or for example DIAMETER_NO_COMMON_APPLICATION.
    pub result_code: ResultCode,
    /// What the answering node announces.
    pub capabilities: Capabilities,
    /// `[ Error-Message ]`.
    pub error_message: Option<String>,
    /// `[ Failed-AVP ]`, its children.
    pub failed_avp: Option<Vec<Avp>>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
}

impl Cea {
    /// Decodes a CEA.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::CAPABILITIES_EXCHANGE, false, "CEA")?;
        let mut r = Reader::new(&m.avps);
        let result_code = ResultCode(u32v(r.one(&dict::RESULT_CODE)?)?);
        let capabilities = Capabilities::read(&mut r, false)?;
        let error_message = r.opt_map(&dict::ERROR_MESSAGE, string)?;
        let failed_avp = r.opt_map(&dict::FAILED_AVP, |a| a.children().map(<[Avp]>::to_vec))?;
        Ok(Self {
            result_code,
            capabilities,
            error_message,
            failed_avp,
            extra: r.rest(),
        })
    }

    /// Encodes a CEA (header identifiers zero: copy them from the CER).
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(
            CommandCode::CAPABILITIES_EXCHANGE,
            ApplicationId::COMMON,
            false,
        );
        m.header = m.header.answer();
        m.push(Avp::u32(&dict::RESULT_CODE, self.result_code.0));
        self.capabilities.write(&mut m.avps);
        push_opt(&mut m.avps, self.error_message.as_deref(), |e| {
            Avp::utf8(&dict::ERROR_MESSAGE, e)
        });
        push_opt(&mut m.avps, self.failed_avp.clone(), |f| {
            Avp::grouped(&dict::FAILED_AVP, f)
        });
        m.avps.extend(self.extra.iter().cloned());
        m
    }
}

/// Device-Watchdog-Request (RFC 6733 §5.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dwr {
    /// Origin-Host.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `[ Origin-State-Id ]`.
    pub origin_state_id: Option<u32>,
}

impl Dwr {
    /// A DWR from `origin`.
    pub fn new(origin: &Origin, origin_state_id: Option<u32>) -> Self {
        Self {
            origin_host: origin.host.clone(),
            origin_realm: origin.realm.clone(),
            origin_state_id,
        }
    }

    /// Decodes a DWR.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::DEVICE_WATCHDOG, true, "DWR")?;
        let mut r = Reader::new(&m.avps);
        Ok(Self {
            origin_host: identity(r.one(&dict::ORIGIN_HOST)?)?,
            origin_realm: realm(r.one(&dict::ORIGIN_REALM)?)?,
            origin_state_id: r.opt_map(&dict::ORIGIN_STATE_ID, u32v)?,
        })
    }

    /// Encodes a DWR.
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(CommandCode::DEVICE_WATCHDOG, ApplicationId::COMMON, false);
        m.push(Avp::utf8(&dict::ORIGIN_HOST, self.origin_host.as_str()));
        m.push(Avp::utf8(&dict::ORIGIN_REALM, self.origin_realm.as_str()));
        push_opt(&mut m.avps, self.origin_state_id, |v| {
            Avp::u32(&dict::ORIGIN_STATE_ID, v)
        });
        m
    }
}

/// Device-Watchdog-Answer (RFC 6733 §5.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dwa {
    /// Result-Code.
    pub result_code: ResultCode,
    /// Origin-Host.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `[ Error-Message ]`.
    pub error_message: Option<String>,
    /// `[ Origin-State-Id ]`.
    pub origin_state_id: Option<u32>,
}

impl Dwa {
    /// A successful DWA from `origin`.
    pub fn success(origin: &Origin, origin_state_id: Option<u32>) -> Self {
        Self {
            result_code: ResultCode::DIAMETER_SUCCESS,
            origin_host: origin.host.clone(),
            origin_realm: origin.realm.clone(),
            error_message: None,
            origin_state_id,
        }
    }

    /// Decodes a DWA.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::DEVICE_WATCHDOG, false, "DWA")?;
        let mut r = Reader::new(&m.avps);
        Ok(Self {
            result_code: ResultCode(u32v(r.one(&dict::RESULT_CODE)?)?),
            origin_host: identity(r.one(&dict::ORIGIN_HOST)?)?,
            origin_realm: realm(r.one(&dict::ORIGIN_REALM)?)?,
            error_message: r.opt_map(&dict::ERROR_MESSAGE, string)?,
            origin_state_id: r.opt_map(&dict::ORIGIN_STATE_ID, u32v)?,
        })
    }

    /// Encodes a DWA (header identifiers zero: copy them from the DWR).
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(CommandCode::DEVICE_WATCHDOG, ApplicationId::COMMON, false);
        m.header = m.header.answer();
        m.push(Avp::u32(&dict::RESULT_CODE, self.result_code.0));
        m.push(Avp::utf8(&dict::ORIGIN_HOST, self.origin_host.as_str()));
        m.push(Avp::utf8(&dict::ORIGIN_REALM, self.origin_realm.as_str()));
        push_opt(&mut m.avps, self.error_message.as_deref(), |e| {
            Avp::utf8(&dict::ERROR_MESSAGE, e)
        });
        push_opt(&mut m.avps, self.origin_state_id, |v| {
            Avp::u32(&dict::ORIGIN_STATE_ID, v)
        });
        m
    }
}

/// Disconnect-Peer-Request (RFC 6733 §5.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dpr {
    /// Origin-Host.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// Disconnect-Cause.
    pub disconnect_cause: DisconnectCause,
}

impl Dpr {
    /// Decodes a DPR.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::DISCONNECT_PEER, true, "DPR")?;
        let mut r = Reader::new(&m.avps);
        Ok(Self {
            origin_host: identity(r.one(&dict::ORIGIN_HOST)?)?,
            origin_realm: realm(r.one(&dict::ORIGIN_REALM)?)?,
            disconnect_cause: DisconnectCause(r.one(&dict::DISCONNECT_CAUSE)?.as_i32()?),
        })
    }

    /// Encodes a DPR.
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(CommandCode::DISCONNECT_PEER, ApplicationId::COMMON, false);
        m.push(Avp::utf8(&dict::ORIGIN_HOST, self.origin_host.as_str()));
        m.push(Avp::utf8(&dict::ORIGIN_REALM, self.origin_realm.as_str()));
        m.push(Avp::i32(&dict::DISCONNECT_CAUSE, self.disconnect_cause.0));
        m
    }
}

/// Disconnect-Peer-Answer (RFC 6733 §5.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dpa {
    /// Result-Code.
    pub result_code: ResultCode,
    /// Origin-Host.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `[ Error-Message ]`.
    pub error_message: Option<String>,
}

impl Dpa {
    /// A successful DPA from `origin`.
    pub fn success(origin: &Origin) -> Self {
        Self {
            result_code: ResultCode::DIAMETER_SUCCESS,
            origin_host: origin.host.clone(),
            origin_realm: origin.realm.clone(),
            error_message: None,
        }
    }

    /// Decodes a DPA.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::DISCONNECT_PEER, false, "DPA")?;
        let mut r = Reader::new(&m.avps);
        Ok(Self {
            result_code: ResultCode(u32v(r.one(&dict::RESULT_CODE)?)?),
            origin_host: identity(r.one(&dict::ORIGIN_HOST)?)?,
            origin_realm: realm(r.one(&dict::ORIGIN_REALM)?)?,
            error_message: r.opt_map(&dict::ERROR_MESSAGE, string)?,
        })
    }

    /// Encodes a DPA (header identifiers zero: copy them from the DPR).
    pub fn to_message(&self) -> Message {
        let mut m = Message::request(CommandCode::DISCONNECT_PEER, ApplicationId::COMMON, false);
        m.header = m.header.answer();
        m.push(Avp::u32(&dict::RESULT_CODE, self.result_code.0));
        m.push(Avp::utf8(&dict::ORIGIN_HOST, self.origin_host.as_str()));
        m.push(Avp::utf8(&dict::ORIGIN_REALM, self.origin_realm.as_str()));
        push_opt(&mut m.avps, self.error_message.as_deref(), |e| {
            Avp::utf8(&dict::ERROR_MESSAGE, e)
        });
        m
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    pub(crate) fn caps(host: &str, apps: &[VendorSpecificApplicationId]) -> Capabilities {
        Capabilities {
            origin_host: DiameterIdentity::new(host).expect("valid"),
            origin_realm: Realm::new("ims.example").expect("valid"),
            host_ip_addresses: vec![Address::V4(Ipv4Addr::LOCALHOST)],
            vendor_id: VendorId(0),
            product_name: "imslab".into(),
            origin_state_id: Some(1),
            supported_vendor_ids: vec![VendorId::TGPP],
            auth_application_ids: vec![],
            inband_security_ids: vec![],
            acct_application_ids: vec![],
            vendor_specific_application_ids: apps.to_vec(),
            firmware_revision: None,
        }
    }

    #[test]
    fn cer_round_trips_with_cx_vendor_specific_application() {
        let cer = Cer {
            capabilities: caps("hss.ims.example", &[VendorSpecificApplicationId::CX]),
            extra: vec![],
        };
        let wire = cer.to_message().encode().expect("encodes");
        let back = Cer::decode(&Message::decode(wire).expect("decodes")).expect("valid CER");
        assert_eq!(back, cer);
    }

    #[test]
    fn cer_without_host_ip_address_is_missing_avp() {
        let mut m = Cer {
            capabilities: caps("a.example", &[]),
            extra: vec![],
        }
        .to_message();
        m.avps.retain(|a| !a.is(&dict::HOST_IP_ADDRESS));
        assert_eq!(
            Cer::decode(&m),
            Err(Error::MissingAvp {
                def: &dict::HOST_IP_ADDRESS
            })
        );
    }

    #[test]
    fn common_applications_match_vendor_specific_and_relay() {
        let cx = caps("a.example", &[VendorSpecificApplicationId::CX]);
        let none = caps("b.example", &[]);
        assert_eq!(cx.common_applications(&cx), vec![ApplicationId::CX]);
        assert!(cx.common_applications(&none).is_empty());
        let mut relay = none.clone();
        relay.auth_application_ids.push(ApplicationId::RELAY);
        assert_eq!(cx.common_applications(&relay), vec![ApplicationId::CX]);
    }

    #[test]
    fn cea_with_failure_and_few_avps_decodes_leniently() {
        let origin = Origin {
            host: DiameterIdentity::new("b.example").expect("valid"),
            realm: Realm::new("example").expect("valid"),
        };
        let mut m = Message::request(
            CommandCode::CAPABILITIES_EXCHANGE,
            ApplicationId::COMMON,
            false,
        );
        m.header = m.header.answer();
        m.push(Avp::u32(&dict::RESULT_CODE, 5010));
        m.push(Avp::utf8(&dict::ORIGIN_HOST, origin.host.as_str()));
        m.push(Avp::utf8(&dict::ORIGIN_REALM, origin.realm.as_str()));
        let cea = Cea::decode(&m).expect("lenient");
        assert_eq!(cea.result_code, ResultCode::DIAMETER_NO_COMMON_APPLICATION);
        assert!(cea.capabilities.host_ip_addresses.is_empty());
    }

    #[test]
    fn watchdog_and_disconnect_round_trip() {
        let origin = Origin {
            host: DiameterIdentity::new("a.example").expect("valid"),
            realm: Realm::new("example").expect("valid"),
        };
        let dwr = Dwr::new(&origin, Some(7));
        assert_eq!(Dwr::decode(&dwr.to_message()), Ok(dwr));
        let dwa = Dwa::success(&origin, None);
        assert_eq!(Dwa::decode(&dwa.to_message()), Ok(dwa));
        let dpr = Dpr {
            origin_host: origin.host.clone(),
            origin_realm: origin.realm.clone(),
            disconnect_cause: DisconnectCause::REBOOTING,
        };
        assert_eq!(Dpr::decode(&dpr.to_message()), Ok(dpr));
        let dpa = Dpa::success(&origin);
        assert_eq!(Dpa::decode(&dpa.to_message()), Ok(dpa));
        assert!(matches!(
            Dpa::decode(&Dwr::new(&origin, None).to_message()),
            Err(Error::UnexpectedCommand { .. })
        ));
    }
}
