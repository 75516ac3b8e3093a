//! Push-Profile-Request/Answer (TS 29.229 §6.1.11, §6.1.12): the HSS pushes a changed profile
//! or charging information to the S-CSCF.

use bytes::Bytes;
use imslab_types::{DiameterIdentity, Impi, Realm};

use super::{
    AnswerHead, ChargingInformation, CxResult, RequestHead, SipAuthDataItem, SupportedFeatures,
    write_answer_head, write_features, write_request_head, write_tail,
};
use crate::answer::Origin;
use crate::avp::Avp;
use crate::codes::CommandCode;
use crate::dict;
use crate::error::Error;
use crate::message::Message;
use crate::typed::{Reader, expect_command, impi, octets, push_opt};

/// Push-Profile-Request (TS 29.229 §6.1.11). Destination-Host is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ppr {
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
    /// `*[ Supported-Features ]`.
    pub supported_features: Vec<SupportedFeatures>,
    /// `[ User-Data ]`: the new profile XML.
    pub user_data: Option<Bytes>,
    /// `[ Charging-Information ]`.
    pub charging_information: Option<ChargingInformation>,
    /// `[ SIP-Auth-Data-Item ]`.
    pub sip_auth_data_item: Option<SipAuthDataItem>,
    /// `[ Allowed-WAF-WWSF-Identities ]`, kept as the Grouped AVP.
    pub allowed_waf_wwsf_identities: Option<Avp>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `*[ Proxy-Info ]`.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Ppr {
    /// Decodes a PPR.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::PUSH_PROFILE, true, "PPR")?;
        let mut r = Reader::new(&m.avps);
        let h = RequestHead::read(&mut r)?;
        let destination_host = h.destination_host.ok_or(Error::MissingAvp {
            def: &dict::DESTINATION_HOST,
        })?;
        Ok(Self {
            user_name: impi(r.one(&dict::USER_NAME)?)?,
            user_data: r.opt_map(&dict::USER_DATA, octets)?,
            charging_information: r
                .opt_map(&dict::CHARGING_INFORMATION, ChargingInformation::from_avp)?,
            sip_auth_data_item: r.opt_map(&dict::SIP_AUTH_DATA_ITEM, SipAuthDataItem::from_avp)?,
            allowed_waf_wwsf_identities: r.opt(&dict::ALLOWED_WAF_WWSF_IDENTITIES)?.cloned(),
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

    /// Encodes the PPR in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_request_head(
            CommandCode::PUSH_PROFILE,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
            Some(&self.destination_host),
            &self.destination_realm,
        );
        let a = &mut m.avps;
        a.push(Avp::utf8(&dict::USER_NAME, self.user_name.as_str()));
        write_features(a, &self.supported_features);
        push_opt(a, self.user_data.clone(), |d| {
            Avp::octets(&dict::USER_DATA, d)
        });
        push_opt(
            a,
            self.charging_information.as_ref(),
            ChargingInformation::to_avp,
        );
        push_opt(a, self.sip_auth_data_item.as_ref(), SipAuthDataItem::to_avp);
        push_opt(a, self.allowed_waf_wwsf_identities.clone(), |x| x);
        write_tail(a, &self.extra, None, &self.proxy_info, &self.route_record);
        m
    }
}

/// Push-Profile-Answer (TS 29.229 §6.1.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ppa {
    /// Session-Id.
    pub session_id: String,
    /// Result-Code or Experimental-Result.
    pub result: CxResult,
    /// Origin-Host: the S-CSCF.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `*[ Supported-Features ]`.
    pub supported_features: Vec<SupportedFeatures>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `[ Failed-AVP ]`.
    pub failed_avp: Option<Vec<Avp>>,
    /// `*[ Proxy-Info ]`.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Ppa {
    /// An answer to `ppr` from `origin` with `result`; Session-Id and Proxy-Info copied.
    pub fn new(ppr: &Ppr, origin: &Origin, result: CxResult) -> Self {
        Self {
            session_id: ppr.session_id.clone(),
            result,
            origin_host: origin.host.clone(),
            origin_realm: origin.realm.clone(),
            supported_features: Vec::new(),
            extra: Vec::new(),
            failed_avp: None,
            proxy_info: ppr.proxy_info.clone(),
            route_record: Vec::new(),
        }
    }

    /// Decodes a PPA.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::PUSH_PROFILE, false, "PPA")?;
        let mut r = Reader::new(&m.avps);
        let h = AnswerHead::read(&mut r)?;
        Ok(Self {
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

    /// Encodes the PPA in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_answer_head(
            CommandCode::PUSH_PROFILE,
            &self.session_id,
            &self.result,
            &self.origin_host,
            &self.origin_realm,
        );
        let a = &mut m.avps;
        write_features(a, &self.supported_features);
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
    use crate::cx::CxRequest;
    use crate::cx::test_support::{hss, scscf, wire};

    fn ppr() -> Ppr {
        let o = hss();
        Ppr {
            session_id: "hss;5".into(),
            origin_host: o.host,
            origin_realm: o.realm.clone(),
            destination_host: scscf().host,
            destination_realm: o.realm,
            user_name: Impi::new("alice@ims.example").expect("valid"),
            supported_features: vec![],
            user_data: Some(Bytes::from_static(b"<IMSSubscription/>")),
            charging_information: None,
            sip_auth_data_item: None,
            allowed_waf_wwsf_identities: None,
            extra: vec![],
            proxy_info: vec![],
            route_record: vec![],
        }
    }

    #[test]
    fn ppr_and_ppa_round_trip_and_dispatch() {
        let p = ppr();
        let msg = wire(&p.to_message());
        assert_eq!(
            CxRequest::decode(&msg),
            Ok(CxRequest::Ppr(Box::new(p.clone())))
        );
        let ppa = Ppa::new(&p, &scscf(), CxResult::SUCCESS);
        assert_eq!(Ppa::decode(&wire(&ppa.to_message())), Ok(ppa));
    }

    #[test]
    fn unknown_avps_are_kept_in_extra_and_sent_back() {
        let mut msg = ppr().to_message();
        let odd = Avp::new(
            crate::AvpCode(7777),
            Some(crate::VendorId(99)),
            crate::AvpFlags::NONE,
            crate::AvpData::Octets(b"opaque".into()),
        );
        msg.avps.insert(6, odd.clone());
        let p = Ppr::decode(&msg).expect("decodes");
        assert_eq!(p.extra, vec![odd.clone()]);
        assert!(p.to_message().avps.contains(&odd));
    }
}
