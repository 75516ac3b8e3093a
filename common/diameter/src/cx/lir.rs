//! Location-Info-Request/Answer (TS 29.229 §6.1.5, §6.1.6): the I-CSCF asks which S-CSCF serves
//! a public identity.

use imslab_types::{DiameterIdentity, Impu, Realm};

use super::{
    AnswerHead, CxResult, RequestHead, ServerCapabilities, SupportedFeatures, write_answer_head,
    write_features, write_request_head, write_tail,
};
use crate::answer::Origin;
use crate::avp::Avp;
use crate::codes::CommandCode;
use crate::dict;
use crate::enums::{OriginatingRequest, SessionPriority, UserAuthorizationType};
use crate::error::Error;
use crate::message::Message;
use crate::typed::{Reader, expect_command, impu, push_opt, string, u32v};

/// Location-Info-Request (TS 29.229 §6.1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lir {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `[ Destination-Host ]`.
    pub destination_host: Option<DiameterIdentity>,
    /// Destination-Realm.
    pub destination_realm: Realm,
    /// `[ Originating-Request ]`.
    pub originating_request: Option<OriginatingRequest>,
    /// `*[ Supported-Features ]`.
    pub supported_features: Vec<SupportedFeatures>,
    /// Public-Identity.
    pub public_identity: Impu,
    /// `[ User-Authorization-Type ]`.
    pub user_authorization_type: Option<UserAuthorizationType>,
    /// `[ Session-Priority ]`.
    pub session_priority: Option<SessionPriority>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `*[ Proxy-Info ]`.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Lir {
    /// Decodes a LIR.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::LOCATION_INFO, true, "LIR")?;
        let mut r = Reader::new(&m.avps);
        let h = RequestHead::read(&mut r)?;
        Ok(Self {
            originating_request: r.opt_map(&dict::ORIGINATING_REQUEST, |a| {
                a.as_i32().map(OriginatingRequest)
            })?,
            public_identity: impu(r.one(&dict::PUBLIC_IDENTITY)?)?,
            user_authorization_type: r.opt_map(&dict::USER_AUTHORIZATION_TYPE, |a| {
                a.as_i32().map(UserAuthorizationType)
            })?,
            session_priority: r
                .opt_map(&dict::SESSION_PRIORITY, |a| a.as_i32().map(SessionPriority))?,
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

    /// Encodes the LIR in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_request_head(
            CommandCode::LOCATION_INFO,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
            self.destination_host.as_ref(),
            &self.destination_realm,
        );
        let a = &mut m.avps;
        push_opt(a, self.originating_request, |o| {
            Avp::i32(&dict::ORIGINATING_REQUEST, o.0)
        });
        write_features(a, &self.supported_features);
        a.push(Avp::utf8(
            &dict::PUBLIC_IDENTITY,
            self.public_identity.as_str(),
        ));
        push_opt(a, self.user_authorization_type, |t| {
            Avp::i32(&dict::USER_AUTHORIZATION_TYPE, t.0)
        });
        push_opt(a, self.session_priority, |p| {
            Avp::i32(&dict::SESSION_PRIORITY, p.0)
        });
        write_tail(a, &self.extra, None, &self.proxy_info, &self.route_record);
        m
    }
}

/// Location-Info-Answer (TS 29.229 §6.1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lia {
    /// Session-Id.
    pub session_id: String,
    /// Result-Code or Experimental-Result.
    pub result: CxResult,
    /// Origin-Host.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `*[ Supported-Features ]`.
    pub supported_features: Vec<SupportedFeatures>,
    /// `[ Server-Name ]`: the serving S-CSCF.
    pub server_name: Option<String>,
    /// `[ Server-Capabilities ]`.
    pub server_capabilities: Option<ServerCapabilities>,
    /// `[ Wildcarded-Public-Identity ]`.
    pub wildcarded_public_identity: Option<String>,
    /// `[ LIA-Flags ]`.
    pub lia_flags: Option<u32>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `[ Failed-AVP ]`.
    pub failed_avp: Option<Vec<Avp>>,
    /// `*[ Proxy-Info ]`.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Lia {
    /// An answer to `lir` from `origin` with `result`; Session-Id and Proxy-Info copied.
    pub fn new(lir: &Lir, origin: &Origin, result: CxResult) -> Self {
        Self {
            session_id: lir.session_id.clone(),
            result,
            origin_host: origin.host.clone(),
            origin_realm: origin.realm.clone(),
            supported_features: Vec::new(),
            server_name: None,
            server_capabilities: None,
            wildcarded_public_identity: None,
            lia_flags: None,
            extra: Vec::new(),
            failed_avp: None,
            proxy_info: lir.proxy_info.clone(),
            route_record: Vec::new(),
        }
    }

    /// Decodes a LIA.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::LOCATION_INFO, false, "LIA")?;
        let mut r = Reader::new(&m.avps);
        let h = AnswerHead::read(&mut r)?;
        Ok(Self {
            server_name: r.opt_map(&dict::SERVER_NAME, string)?,
            server_capabilities: r
                .opt_map(&dict::SERVER_CAPABILITIES, ServerCapabilities::from_avp)?,
            wildcarded_public_identity: r.opt_map(&dict::WILDCARDED_PUBLIC_IDENTITY, string)?,
            lia_flags: r.opt_map(&dict::LIA_FLAGS, u32v)?,
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

    /// Encodes the LIA in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_answer_head(
            CommandCode::LOCATION_INFO,
            &self.session_id,
            &self.result,
            &self.origin_host,
            &self.origin_realm,
        );
        let a = &mut m.avps;
        write_features(a, &self.supported_features);
        push_opt(a, self.server_name.as_deref(), |s| {
            Avp::utf8(&dict::SERVER_NAME, s)
        });
        push_opt(
            a,
            self.server_capabilities.as_ref(),
            ServerCapabilities::to_avp,
        );
        push_opt(a, self.wildcarded_public_identity.as_deref(), |w| {
            Avp::utf8(&dict::WILDCARDED_PUBLIC_IDENTITY, w)
        });
        push_opt(a, self.lia_flags, |f| Avp::u32(&dict::LIA_FLAGS, f));
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

    fn lir() -> Lir {
        let o = scscf();
        Lir {
            session_id: "icscf;2".into(),
            origin_host: o.host,
            origin_realm: o.realm.clone(),
            destination_host: None,
            destination_realm: o.realm,
            originating_request: Some(OriginatingRequest::ORIGINATING),
            supported_features: vec![],
            public_identity: Impu::new("tel:+15550001").expect("valid"),
            user_authorization_type: None,
            session_priority: Some(SessionPriority::PRIORITY_2),
            extra: vec![],
            proxy_info: vec![],
            route_record: vec![],
        }
    }

    #[test]
    fn lir_and_lia_round_trip() {
        let l = lir();
        assert_eq!(Lir::decode(&wire(&l.to_message())), Ok(l.clone()));
        let mut lia = Lia::new(&l, &hss(), CxResult::SUCCESS);
        lia.server_name = Some("sip:scscf.ims.example:6060".into());
        lia.lia_flags = Some(1);
        assert_eq!(Lia::decode(&wire(&lia.to_message())), Ok(lia));
    }

    #[test]
    fn lir_without_public_identity_is_missing_avp() {
        let mut m = lir().to_message();
        m.avps.retain(|a| !a.is(&dict::PUBLIC_IDENTITY));
        assert_eq!(
            Lir::decode(&m),
            Err(Error::MissingAvp {
                def: &dict::PUBLIC_IDENTITY
            })
        );
    }
}
