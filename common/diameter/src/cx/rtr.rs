//! Registration-Termination-Request/Answer (TS 29.229 §6.1.9, §6.1.10): the HSS tells the
//! S-CSCF to de-register identities.

use imslab_types::{DiameterIdentity, Impi, Impu, Realm};

use super::{
    AnswerHead, CxResult, DeregistrationReason, IdentityWithEmergencyRegistration, RequestHead,
    SupportedFeatures, user_names, user_names_avp, write_answer_head, write_features,
    write_request_head, write_tail,
};
use crate::answer::Origin;
use crate::avp::Avp;
use crate::codes::CommandCode;
use crate::dict;
use crate::error::Error;
use crate::message::Message;
use crate::typed::{Reader, expect_command, impi, impu, push_opt, u32v};

/// Registration-Termination-Request (TS 29.229 §6.1.9). Destination-Host is required: the HSS
/// addresses the serving S-CSCF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtr {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host: the HSS.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// Destination-Host: the S-CSCF.
    pub destination_host: DiameterIdentity,
    /// Destination-Realm.
    pub destination_realm: Realm,
    /// User-Name.
    pub user_name: Impi,
    /// `[ Associated-Identities ]`.
    pub associated_identities: Option<Vec<Impi>>,
    /// `*[ Supported-Features ]`.
    pub supported_features: Vec<SupportedFeatures>,
    /// `*[ Public-Identity ]`: empty means all of the user's identities.
    pub public_identities: Vec<Impu>,
    /// Deregistration-Reason.
    pub deregistration_reason: DeregistrationReason,
    /// `[ RTR-Flags ]`.
    pub rtr_flags: Option<u32>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `*[ Proxy-Info ]`.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Rtr {
    /// Decodes a RTR.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::REGISTRATION_TERMINATION, true, "RTR")?;
        let mut r = Reader::new(&m.avps);
        let h = RequestHead::read(&mut r)?;
        let destination_host = h.destination_host.ok_or(Error::MissingAvp {
            def: &dict::DESTINATION_HOST,
        })?;
        Ok(Self {
            user_name: impi(r.one(&dict::USER_NAME)?)?,
            associated_identities: r.opt_map(&dict::ASSOCIATED_IDENTITIES, user_names)?,
            public_identities: r.many_map(&dict::PUBLIC_IDENTITY, impu)?,
            deregistration_reason: DeregistrationReason::from_avp(
                r.one(&dict::DEREGISTRATION_REASON)?,
            )?,
            rtr_flags: r.opt_map(&dict::RTR_FLAGS, u32v)?,
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
            destination_host,
            destination_realm: h.destination_realm,
            supported_features: h.supported_features,
            proxy_info: h.proxy_info,
            route_record: h.route_record,
            extra: r.rest(),
        })
    }

    /// Encodes the RTR in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_request_head(
            CommandCode::REGISTRATION_TERMINATION,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
            Some(&self.destination_host),
            &self.destination_realm,
        );
        let a = &mut m.avps;
        a.push(Avp::utf8(&dict::USER_NAME, self.user_name.as_str()));
        push_opt(a, self.associated_identities.as_deref(), |n| {
            user_names_avp(&dict::ASSOCIATED_IDENTITIES, n)
        });
        write_features(a, &self.supported_features);
        a.extend(
            self.public_identities
                .iter()
                .map(|p| Avp::utf8(&dict::PUBLIC_IDENTITY, p.as_str())),
        );
        a.push(self.deregistration_reason.to_avp());
        push_opt(a, self.rtr_flags, |f| Avp::u32(&dict::RTR_FLAGS, f));
        write_tail(a, &self.extra, None, &self.proxy_info, &self.route_record);
        m
    }
}

/// Registration-Termination-Answer (TS 29.229 §6.1.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rta {
    /// Session-Id.
    pub session_id: String,
    /// Result-Code or Experimental-Result.
    pub result: CxResult,
    /// Origin-Host: the S-CSCF.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `[ Associated-Identities ]`.
    pub associated_identities: Option<Vec<Impi>>,
    /// `*[ Supported-Features ]`.
    pub supported_features: Vec<SupportedFeatures>,
    /// `*[ Identity-with-Emergency-Registration ]`.
    pub identity_with_emergency_registration: Vec<IdentityWithEmergencyRegistration>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `[ Failed-AVP ]`.
    pub failed_avp: Option<Vec<Avp>>,
    /// `*[ Proxy-Info ]`.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Rta {
    /// An answer to `rtr` from `origin` with `result`; Session-Id and Proxy-Info copied.
    pub fn new(rtr: &Rtr, origin: &Origin, result: CxResult) -> Self {
        Self {
            session_id: rtr.session_id.clone(),
            result,
            origin_host: origin.host.clone(),
            origin_realm: origin.realm.clone(),
            associated_identities: None,
            supported_features: Vec::new(),
            identity_with_emergency_registration: Vec::new(),
            extra: Vec::new(),
            failed_avp: None,
            proxy_info: rtr.proxy_info.clone(),
            route_record: Vec::new(),
        }
    }

    /// Decodes a RTA.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::REGISTRATION_TERMINATION, false, "RTA")?;
        let mut r = Reader::new(&m.avps);
        let h = AnswerHead::read(&mut r)?;
        Ok(Self {
            associated_identities: r.opt_map(&dict::ASSOCIATED_IDENTITIES, user_names)?,
            identity_with_emergency_registration: r.many_map(
                &dict::IDENTITY_WITH_EMERGENCY_REGISTRATION,
                IdentityWithEmergencyRegistration::from_avp,
            )?,
            session_id: h.session_id,
            result: h.result,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
            supported_features: h.supported_features,
            failed_avp: h.failed_avp,
            proxy_info: h.proxy_info,
            route_record: h.route_record,
            extra: r.rest(),
        })
    }

    /// Encodes the RTA in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_answer_head(
            CommandCode::REGISTRATION_TERMINATION,
            &self.session_id,
            &self.result,
            &self.origin_host,
            &self.origin_realm,
        );
        let a = &mut m.avps;
        push_opt(a, self.associated_identities.as_deref(), |n| {
            user_names_avp(&dict::ASSOCIATED_IDENTITIES, n)
        });
        write_features(a, &self.supported_features);
        a.extend(
            self.identity_with_emergency_registration
                .iter()
                .map(IdentityWithEmergencyRegistration::to_avp),
        );
        write_tail(
            a,
            &self.extra,
            self.failed_avp.as_ref(),
            &self.proxy_info,
            &self.route_record,
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cx::test_support::{hss, scscf, wire};
    use crate::enums::ReasonCode;

    fn rtr() -> Rtr {
        let o = hss();
        Rtr {
            session_id: "hss;4".into(),
            origin_host: o.host,
            origin_realm: o.realm.clone(),
            destination_host: scscf().host,
            destination_realm: o.realm,
            user_name: Impi::new("alice@ims.example").expect("valid"),
            associated_identities: None,
            supported_features: vec![],
            public_identities: vec![Impu::new("sip:alice@ims.example").expect("valid")],
            deregistration_reason: DeregistrationReason {
                reason_code: ReasonCode::PERMANENT_TERMINATION,
                reason_info: Some("bye".into()),
                extra: vec![],
            },
            rtr_flags: None,
            extra: vec![],
            proxy_info: vec![],
            route_record: vec![],
        }
    }

    #[test]
    fn rtr_and_rta_round_trip() {
        let r = rtr();
        assert_eq!(Rtr::decode(&wire(&r.to_message())), Ok(r.clone()));
        let mut rta = Rta::new(&r, &scscf(), CxResult::SUCCESS);
        rta.identity_with_emergency_registration
            .push(IdentityWithEmergencyRegistration {
                user_name: r.user_name.clone(),
                public_identity: r.public_identities[0].clone(),
            });
        assert_eq!(Rta::decode(&wire(&rta.to_message())), Ok(rta));
    }

    #[test]
    fn rtr_without_destination_host_is_missing_avp() {
        let mut m = rtr().to_message();
        m.avps.retain(|a| !a.is(&dict::DESTINATION_HOST));
        assert_eq!(
            Rtr::decode(&m),
            Err(Error::MissingAvp {
                def: &dict::DESTINATION_HOST
            })
        );
    }
}
