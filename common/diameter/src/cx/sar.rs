//! Server-Assignment-Request/Answer (TS 29.229 §6.1.3, §6.1.4): the S-CSCF tells the HSS it
//! serves (or stops serving) a user and fetches the user profile.

use bytes::Bytes;
use imslab_types::{DiameterIdentity, Impi, Impu, Realm};

use super::{
    AnswerHead, ChargingInformation, CxResult, RequestHead, SupportedFeatures, user_names,
    user_names_avp, write_answer_head, write_features, write_request_head, write_tail,
};
use crate::answer::Origin;
use crate::avp::Avp;
use crate::codes::CommandCode;
use crate::dict;
use crate::enums::{
    LooseRouteIndication, MultipleRegistrationIndication, PriviledgedSenderIndication,
    ServerAssignmentType, SessionPriority, UserDataAlreadyAvailable,
};
use crate::error::Error;
use crate::message::Message;
use crate::typed::{Reader, expect_command, impi, impu, octets, push_opt, string, u32v};

/// Server-Assignment-Request (TS 29.229 §6.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sar {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host: the S-CSCF.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `[ Destination-Host ]`.
    pub destination_host: Option<DiameterIdentity>,
    /// Destination-Realm.
    pub destination_realm: Realm,
    /// `[ User-Name ]`.
    pub user_name: Option<Impi>,
    /// `*[ Supported-Features ]`.
    pub supported_features: Vec<SupportedFeatures>,
    /// `*[ Public-Identity ]`.
    pub public_identities: Vec<Impu>,
    /// `[ Wildcarded-Public-Identity ]`.
    pub wildcarded_public_identity: Option<String>,
    /// Server-Name: the S-CSCF SIP URI.
    pub server_name: String,
    /// Server-Assignment-Type.
    pub server_assignment_type: ServerAssignmentType,
    /// User-Data-Already-Available.
    pub user_data_already_available: UserDataAlreadyAvailable,
    /// `[ SCSCF-Restoration-Info ]`, kept as the Grouped AVP.
    pub scscf_restoration_info: Option<Avp>,
    /// `[ Multiple-Registration-Indication ]`.
    pub multiple_registration_indication: Option<MultipleRegistrationIndication>,
    /// `[ Session-Priority ]`.
    pub session_priority: Option<SessionPriority>,
    /// `[ SAR-Flags ]`.
    pub sar_flags: Option<u32>,
    /// `[ Failed-PCSCF ]`, kept as the Grouped AVP.
    pub failed_pcscf: Option<Avp>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `*[ Proxy-Info ]`.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Sar {
    /// Decodes a SAR.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::SERVER_ASSIGNMENT, true, "SAR")?;
        let mut r = Reader::new(&m.avps);
        let h = RequestHead::read(&mut r)?;
        Ok(Self {
            user_name: r.opt_map(&dict::USER_NAME, impi)?,
            public_identities: r.many_map(&dict::PUBLIC_IDENTITY, impu)?,
            wildcarded_public_identity: r.opt_map(&dict::WILDCARDED_PUBLIC_IDENTITY, string)?,
            server_name: string(r.one(&dict::SERVER_NAME)?)?,
            server_assignment_type: ServerAssignmentType(
                r.one(&dict::SERVER_ASSIGNMENT_TYPE)?.as_i32()?,
            ),
            user_data_already_available: UserDataAlreadyAvailable(
                r.one(&dict::USER_DATA_ALREADY_AVAILABLE)?.as_i32()?,
            ),
            scscf_restoration_info: r.opt(&dict::SCSCF_RESTORATION_INFO)?.cloned(),
            multiple_registration_indication: r
                .opt_map(&dict::MULTIPLE_REGISTRATION_INDICATION, |a| {
                    a.as_i32().map(MultipleRegistrationIndication)
                })?,
            session_priority: r
                .opt_map(&dict::SESSION_PRIORITY, |a| a.as_i32().map(SessionPriority))?,
            sar_flags: r.opt_map(&dict::SAR_FLAGS, u32v)?,
            failed_pcscf: r.opt(&dict::FAILED_PCSCF)?.cloned(),
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
            destination_host: h.destination_host,
            destination_realm: h.destination_realm,
            supported_features: h.supported_features,
            proxy_info: h.proxy_info,
            route_record: h.route_record,
            extra: r.rest(),
        })
    }

    /// Encodes the SAR in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_request_head(
            CommandCode::SERVER_ASSIGNMENT,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
            self.destination_host.as_ref(),
            &self.destination_realm,
        );
        let a = &mut m.avps;
        push_opt(a, self.user_name.as_ref(), |u| {
            Avp::utf8(&dict::USER_NAME, u.as_str())
        });
        write_features(a, &self.supported_features);
        a.extend(
            self.public_identities
                .iter()
                .map(|p| Avp::utf8(&dict::PUBLIC_IDENTITY, p.as_str())),
        );
        push_opt(a, self.wildcarded_public_identity.as_deref(), |w| {
            Avp::utf8(&dict::WILDCARDED_PUBLIC_IDENTITY, w)
        });
        a.push(Avp::utf8(&dict::SERVER_NAME, &self.server_name));
        a.push(Avp::i32(
            &dict::SERVER_ASSIGNMENT_TYPE,
            self.server_assignment_type.0,
        ));
        a.push(Avp::i32(
            &dict::USER_DATA_ALREADY_AVAILABLE,
            self.user_data_already_available.0,
        ));
        push_opt(a, self.scscf_restoration_info.clone(), |x| x);
        push_opt(a, self.multiple_registration_indication, |v| {
            Avp::i32(&dict::MULTIPLE_REGISTRATION_INDICATION, v.0)
        });
        push_opt(a, self.session_priority, |p| {
            Avp::i32(&dict::SESSION_PRIORITY, p.0)
        });
        push_opt(a, self.sar_flags, |f| Avp::u32(&dict::SAR_FLAGS, f));
        push_opt(a, self.failed_pcscf.clone(), |x| x);
        write_tail(a, &self.extra, None, &self.proxy_info, &self.route_record);
        m
    }
}

/// Server-Assignment-Answer (TS 29.229 §6.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saa {
    /// Session-Id.
    pub session_id: String,
    /// Result-Code or Experimental-Result.
    pub result: CxResult,
    /// Origin-Host: the HSS.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `[ User-Name ]`.
    pub user_name: Option<Impi>,
    /// `*[ Supported-Features ]`.
    pub supported_features: Vec<SupportedFeatures>,
    /// `[ User-Data ]`: the IMS subscription XML (TS 29.228 Annex D).
    pub user_data: Option<Bytes>,
    /// `[ Charging-Information ]`.
    pub charging_information: Option<ChargingInformation>,
    /// `[ Associated-Identities ]`: the private identities of the subscription.
    pub associated_identities: Option<Vec<Impi>>,
    /// `[ Loose-Route-Indication ]`.
    pub loose_route_indication: Option<LooseRouteIndication>,
    /// `*[ SCSCF-Restoration-Info ]`, kept as Grouped AVPs.
    pub scscf_restoration_info: Vec<Avp>,
    /// `[ Associated-Registered-Identities ]`.
    pub associated_registered_identities: Option<Vec<Impi>>,
    /// `[ Server-Name ]`.
    pub server_name: Option<String>,
    /// `[ Wildcarded-Public-Identity ]`.
    pub wildcarded_public_identity: Option<String>,
    /// `[ Priviledged-Sender-Indication ]`.
    pub priviledged_sender_indication: Option<PriviledgedSenderIndication>,
    /// `[ Allowed-WAF-WWSF-Identities ]`, kept as the Grouped AVP.
    pub allowed_waf_wwsf_identities: Option<Avp>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `[ Failed-AVP ]`.
    pub failed_avp: Option<Vec<Avp>>,
    /// `*[ Proxy-Info ]`.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Saa {
    /// An answer to `sar` from `origin` with `result`; Session-Id, Proxy-Info and User-Name
    /// copied.
    pub fn new(sar: &Sar, origin: &Origin, result: CxResult) -> Self {
        Self {
            session_id: sar.session_id.clone(),
            result,
            origin_host: origin.host.clone(),
            origin_realm: origin.realm.clone(),
            user_name: sar.user_name.clone(),
            supported_features: Vec::new(),
            user_data: None,
            charging_information: None,
            associated_identities: None,
            loose_route_indication: None,
            scscf_restoration_info: Vec::new(),
            associated_registered_identities: None,
            server_name: None,
            wildcarded_public_identity: None,
            priviledged_sender_indication: None,
            allowed_waf_wwsf_identities: None,
            extra: Vec::new(),
            failed_avp: None,
            proxy_info: sar.proxy_info.clone(),
            route_record: Vec::new(),
        }
    }

    /// Decodes a SAA.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::SERVER_ASSIGNMENT, false, "SAA")?;
        let mut r = Reader::new(&m.avps);
        let h = AnswerHead::read(&mut r)?;
        Ok(Self {
            user_name: r.opt_map(&dict::USER_NAME, impi)?,
            user_data: r.opt_map(&dict::USER_DATA, octets)?,
            charging_information: r
                .opt_map(&dict::CHARGING_INFORMATION, ChargingInformation::from_avp)?,
            associated_identities: r.opt_map(&dict::ASSOCIATED_IDENTITIES, user_names)?,
            loose_route_indication: r.opt_map(&dict::LOOSE_ROUTE_INDICATION, |a| {
                a.as_i32().map(LooseRouteIndication)
            })?,
            scscf_restoration_info: r
                .many(&dict::SCSCF_RESTORATION_INFO)
                .into_iter()
                .cloned()
                .collect(),
            associated_registered_identities: r
                .opt_map(&dict::ASSOCIATED_REGISTERED_IDENTITIES, user_names)?,
            server_name: r.opt_map(&dict::SERVER_NAME, string)?,
            wildcarded_public_identity: r.opt_map(&dict::WILDCARDED_PUBLIC_IDENTITY, string)?,
            priviledged_sender_indication: r
                .opt_map(&dict::PRIVILEDGED_SENDER_INDICATION, |a| {
                    a.as_i32().map(PriviledgedSenderIndication)
                })?,
            allowed_waf_wwsf_identities: r.opt(&dict::ALLOWED_WAF_WWSF_IDENTITIES)?.cloned(),
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

    /// Encodes the SAA in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_answer_head(
            CommandCode::SERVER_ASSIGNMENT,
            &self.session_id,
            &self.result,
            &self.origin_host,
            &self.origin_realm,
        );
        let a = &mut m.avps;
        push_opt(a, self.user_name.as_ref(), |u| {
            Avp::utf8(&dict::USER_NAME, u.as_str())
        });
        write_features(a, &self.supported_features);
        push_opt(a, self.user_data.clone(), |d| {
            Avp::octets(&dict::USER_DATA, d)
        });
        push_opt(
            a,
            self.charging_information.as_ref(),
            ChargingInformation::to_avp,
        );
        push_opt(a, self.associated_identities.as_deref(), |n| {
            user_names_avp(&dict::ASSOCIATED_IDENTITIES, n)
        });
        push_opt(a, self.loose_route_indication, |l| {
            Avp::i32(&dict::LOOSE_ROUTE_INDICATION, l.0)
        });
        a.extend(self.scscf_restoration_info.iter().cloned());
        push_opt(a, self.associated_registered_identities.as_deref(), |n| {
            user_names_avp(&dict::ASSOCIATED_REGISTERED_IDENTITIES, n)
        });
        push_opt(a, self.server_name.as_deref(), |s| {
            Avp::utf8(&dict::SERVER_NAME, s)
        });
        push_opt(a, self.wildcarded_public_identity.as_deref(), |w| {
            Avp::utf8(&dict::WILDCARDED_PUBLIC_IDENTITY, w)
        });
        push_opt(a, self.priviledged_sender_indication, |p| {
            Avp::i32(&dict::PRIVILEDGED_SENDER_INDICATION, p.0)
        });
        push_opt(a, self.allowed_waf_wwsf_identities.clone(), |x| x);
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
    use crate::types::DiameterUri;

    fn sar() -> Sar {
        let o = scscf();
        Sar {
            session_id: "scscf;3".into(),
            origin_host: o.host,
            origin_realm: o.realm.clone(),
            destination_host: Some(DiameterIdentity::new("hss.ims.example").expect("valid")),
            destination_realm: o.realm,
            user_name: Some(Impi::new("alice@ims.example").expect("valid")),
            supported_features: vec![],
            public_identities: vec![Impu::new("sip:alice@ims.example").expect("valid")],
            wildcarded_public_identity: None,
            server_name: "sip:scscf.ims.example:6060".into(),
            server_assignment_type: ServerAssignmentType::REGISTRATION,
            user_data_already_available: UserDataAlreadyAvailable::USER_DATA_NOT_AVAILABLE,
            scscf_restoration_info: None,
            multiple_registration_indication: None,
            session_priority: None,
            sar_flags: None,
            failed_pcscf: None,
            extra: vec![],
            proxy_info: vec![],
            route_record: vec![],
        }
    }

    #[test]
    fn sar_round_trips() {
        let s = sar();
        assert_eq!(Sar::decode(&wire(&s.to_message())), Ok(s));
    }

    #[test]
    fn sar_without_server_assignment_type_is_missing_avp() {
        let mut m = sar().to_message();
        m.avps.retain(|a| !a.is(&dict::SERVER_ASSIGNMENT_TYPE));
        assert_eq!(
            Sar::decode(&m),
            Err(Error::MissingAvp {
                def: &dict::SERVER_ASSIGNMENT_TYPE
            })
        );
    }

    #[test]
    fn saa_with_profile_and_charging_round_trips() {
        let mut saa = Saa::new(&sar(), &hss(), CxResult::SUCCESS);
        saa.user_data = Some(Bytes::from_static(b"<IMSSubscription/>"));
        saa.charging_information = Some(ChargingInformation {
            primary_charging_collection_function_name: Some(
                DiameterUri::parse("aaa://ccf.ims.example:3868;transport=tcp").expect("uri"),
            ),
            ..ChargingInformation::default()
        });
        saa.associated_identities = Some(vec![Impi::new("alice2@ims.example").expect("valid")]);
        assert_eq!(Saa::decode(&wire(&saa.to_message())), Ok(saa));
    }
}
