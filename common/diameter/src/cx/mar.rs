//! Multimedia-Auth-Request/Answer (TS 29.229 §6.1.7, §6.1.8): the S-CSCF asks the HSS for
//! authentication vectors, or sends RAND‖AUTS to resynchronise.

use imslab_types::{DiameterIdentity, Impi, Impu, Realm};

use super::{
    AnswerHead, CxResult, RequestHead, SipAuthDataItem, SupportedFeatures, write_answer_head,
    write_features, write_request_head, write_tail,
};
use crate::answer::Origin;
use crate::avp::Avp;
use crate::codes::CommandCode;
use crate::dict;
use crate::error::Error;
use crate::message::Message;
use crate::typed::{Reader, expect_command, impi, impu, push_opt, string, u32v};

/// Multimedia-Auth-Request (TS 29.229 §6.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mar {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host: the S-CSCF.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `[ Destination-Host ]`: the HSS, when known.
    pub destination_host: Option<DiameterIdentity>,
    /// Destination-Realm.
    pub destination_realm: Realm,
    /// User-Name: the private identity.
    pub user_name: Impi,
    /// `*[ Supported-Features ]`.
    pub supported_features: Vec<SupportedFeatures>,
    /// Public-Identity.
    pub public_identity: Impu,
    /// SIP-Auth-Data-Item: the scheme, and RAND‖AUTS for a resynchronisation.
    pub sip_auth_data_item: SipAuthDataItem,
    /// SIP-Number-Auth-Items: how many vectors the S-CSCF wants.
    pub sip_number_auth_items: u32,
    /// Server-Name: the S-CSCF SIP URI.
    pub server_name: String,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `*[ Proxy-Info ]`, kept opaque.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Mar {
    /// Decodes a MAR.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::MULTIMEDIA_AUTH, true, "MAR")?;
        let mut r = Reader::new(&m.avps);
        let h = RequestHead::read(&mut r)?;
        Ok(Self {
            user_name: impi(r.one(&dict::USER_NAME)?)?,
            public_identity: impu(r.one(&dict::PUBLIC_IDENTITY)?)?,
            sip_auth_data_item: SipAuthDataItem::from_avp(r.one(&dict::SIP_AUTH_DATA_ITEM)?)?,
            sip_number_auth_items: u32v(r.one(&dict::SIP_NUMBER_AUTH_ITEMS)?)?,
            server_name: string(r.one(&dict::SERVER_NAME)?)?,
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

    /// Encodes the MAR in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_request_head(
            CommandCode::MULTIMEDIA_AUTH,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
            self.destination_host.as_ref(),
            &self.destination_realm,
        );
        let a = &mut m.avps;
        a.push(Avp::utf8(&dict::USER_NAME, self.user_name.as_str()));
        write_features(a, &self.supported_features);
        a.push(Avp::utf8(
            &dict::PUBLIC_IDENTITY,
            self.public_identity.as_str(),
        ));
        a.push(self.sip_auth_data_item.to_avp());
        a.push(Avp::u32(
            &dict::SIP_NUMBER_AUTH_ITEMS,
            self.sip_number_auth_items,
        ));
        a.push(Avp::utf8(&dict::SERVER_NAME, &self.server_name));
        write_tail(a, &self.extra, None, &self.proxy_info, &self.route_record);
        m
    }
}

/// Multimedia-Auth-Answer (TS 29.229 §6.1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maa {
    /// Session-Id, as in the MAR.
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
    /// `[ Public-Identity ]`.
    pub public_identity: Option<Impu>,
    /// `[ SIP-Number-Auth-Items ]`: how many items follow.
    pub sip_number_auth_items: Option<u32>,
    /// `*[ SIP-Auth-Data-Item ]`: the vectors.
    pub sip_auth_data_items: Vec<SipAuthDataItem>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `[ Failed-AVP ]`, its children.
    pub failed_avp: Option<Vec<Avp>>,
    /// `*[ Proxy-Info ]`.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Maa {
    /// An answer to `mar` from `origin` with `result` and no vectors yet; Session-Id and
    /// Proxy-Info copied, User-Name and Public-Identity echoed.
    pub fn new(mar: &Mar, origin: &Origin, result: CxResult) -> Self {
        Self {
            session_id: mar.session_id.clone(),
            result,
            origin_host: origin.host.clone(),
            origin_realm: origin.realm.clone(),
            user_name: Some(mar.user_name.clone()),
            supported_features: Vec::new(),
            public_identity: Some(mar.public_identity.clone()),
            sip_number_auth_items: None,
            sip_auth_data_items: Vec::new(),
            extra: Vec::new(),
            failed_avp: None,
            proxy_info: mar.proxy_info.clone(),
            route_record: Vec::new(),
        }
    }

    /// Decodes a MAA.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::MULTIMEDIA_AUTH, false, "MAA")?;
        let mut r = Reader::new(&m.avps);
        let h = AnswerHead::read(&mut r)?;
        Ok(Self {
            user_name: r.opt_map(&dict::USER_NAME, impi)?,
            public_identity: r.opt_map(&dict::PUBLIC_IDENTITY, impu)?,
            sip_number_auth_items: r.opt_map(&dict::SIP_NUMBER_AUTH_ITEMS, u32v)?,
            sip_auth_data_items: r
                .many_map(&dict::SIP_AUTH_DATA_ITEM, SipAuthDataItem::from_avp)?,
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

    /// Encodes the MAA in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_answer_head(
            CommandCode::MULTIMEDIA_AUTH,
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
        push_opt(a, self.public_identity.as_ref(), |p| {
            Avp::utf8(&dict::PUBLIC_IDENTITY, p.as_str())
        });
        push_opt(a, self.sip_number_auth_items, |n| {
            Avp::u32(&dict::SIP_NUMBER_AUTH_ITEMS, n)
        });
        a.extend(self.sip_auth_data_items.iter().map(SipAuthDataItem::to_avp));
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
    use bytes::Bytes;
    use imslab_types::{Ck, Ik};

    use super::*;
    use crate::codes::ExperimentalResultCode;
    use crate::cx::test_support::{hss, scscf, wire};

    pub(crate) fn mar() -> Mar {
        let o = scscf();
        Mar {
            session_id: "scscf.ims.example;1;42".into(),
            origin_host: o.host,
            origin_realm: o.realm.clone(),
            destination_host: None,
            destination_realm: o.realm,
            user_name: Impi::new("001010000000001@ims.example").expect("valid"),
            supported_features: vec![],
            public_identity: Impu::new("sip:001010000000001@ims.example").expect("valid"),
            sip_auth_data_item: SipAuthDataItem::with_scheme(SipAuthDataItem::SCHEME_AKAV1_MD5),
            sip_number_auth_items: 1,
            server_name: "sip:scscf.ims.example:6060".into(),
            extra: vec![],
            proxy_info: vec![],
            route_record: vec![],
        }
    }

    #[test]
    fn mar_round_trips_through_the_wire() {
        let m = mar();
        assert_eq!(Mar::decode(&wire(&m.to_message())), Ok(m));
    }

    #[test]
    fn mar_without_sip_number_auth_items_is_missing_avp() {
        let mut msg = mar().to_message();
        msg.avps.retain(|a| !a.is(&dict::SIP_NUMBER_AUTH_ITEMS));
        let err = Mar::decode(&msg).expect_err("missing");
        assert_eq!(
            err,
            Error::MissingAvp {
                def: &dict::SIP_NUMBER_AUTH_ITEMS
            }
        );
        assert_eq!(err.result_code().0, 5005);
    }

    #[test]
    fn mar_with_bad_public_identity_is_invalid_value() {
        let mut msg = mar().to_message();
        for a in &mut msg.avps {
            if a.is(&dict::PUBLIC_IDENTITY) {
                *a = Avp::utf8(&dict::PUBLIC_IDENTITY, "alice");
            }
        }
        assert_eq!(Mar::decode(&msg).map_err(|e| e.result_code().0), Err(5004));
    }

    #[test]
    fn mar_with_two_user_names_is_too_many_times() {
        let mut msg = mar().to_message();
        msg.push(Avp::utf8(&dict::USER_NAME, "bob@ims.example"));
        assert_eq!(Mar::decode(&msg).map_err(|e| e.result_code().0), Err(5009));
    }

    #[test]
    fn maa_with_one_vector_round_trips_and_hides_secrets() {
        let mut maa = Maa::new(&mar(), &hss(), CxResult::SUCCESS);
        maa.sip_number_auth_items = Some(1);
        maa.sip_auth_data_items.push(SipAuthDataItem {
            item_number: Some(1),
            authentication_scheme: Some(SipAuthDataItem::SCHEME_AKAV1_MD5.into()),
            authenticate: Some(Bytes::from(vec![0x23; 32])),
            authorization: Some(Bytes::from(vec![0xa5; 8])),
            confidentiality_key: Some(Ck::from_bytes([0xb4; 16])),
            integrity_key: Some(Ik::from_bytes([0xf7; 16])),
            ..SipAuthDataItem::default()
        });
        let back = Maa::decode(&wire(&maa.to_message())).expect("decodes");
        assert_eq!(back, maa);
        let dbg = format!("{back:?}");
        assert!(
            !dbg.contains("b4b4") && !dbg.contains("180, 180") && !dbg.contains("a5a5"),
            "{dbg}"
        );
    }

    #[test]
    fn maa_carries_experimental_result_user_unknown() {
        let maa = Maa::new(
            &mar(),
            &hss(),
            CxResult::experimental(ExperimentalResultCode::DIAMETER_ERROR_USER_UNKNOWN),
        );
        let msg = maa.to_message();
        let er = msg
            .find(&dict::EXPERIMENTAL_RESULT)
            .expect("Experimental-Result");
        let code = er
            .child(&dict::EXPERIMENTAL_RESULT_CODE)
            .ok()
            .flatten()
            .map(|c| c.as_u32());
        assert_eq!(code, Some(Ok(5001)));
        assert_eq!(Maa::decode(&wire(&msg)).map(|m| m.result), Ok(maa.result));
    }

    #[test]
    fn maa_wrong_size_ck_is_invalid_value() {
        let mut maa = Maa::new(&mar(), &hss(), CxResult::SUCCESS);
        maa.sip_auth_data_items.push(SipAuthDataItem::default());
        let mut msg = maa.to_message();
        for a in &mut msg.avps {
            if a.is(&dict::SIP_AUTH_DATA_ITEM) {
                *a = Avp::grouped(
                    &dict::SIP_AUTH_DATA_ITEM,
                    vec![Avp::octets(&dict::CONFIDENTIALITY_KEY, vec![1, 2, 3])],
                );
            }
        }
        assert_eq!(Maa::decode(&msg).map_err(|e| e.result_code().0), Err(5004));
    }
}
