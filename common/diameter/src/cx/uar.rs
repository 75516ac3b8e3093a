//! User-Authorization-Request/Answer (TS 29.229 §6.1.1, §6.1.2): the I-CSCF asks the HSS
//! whether a user may register and which S-CSCF serves it.

use bytes::Bytes;
use imslab_types::{DiameterIdentity, Impi, Impu, Realm};

use super::{
    AnswerHead, CxResult, RequestHead, ServerCapabilities, SupportedFeatures, write_answer_head,
    write_features, write_request_head, write_tail,
};
use crate::answer::Origin;
use crate::avp::Avp;
use crate::codes::CommandCode;
use crate::dict;
use crate::enums::UserAuthorizationType;
use crate::error::Error;
use crate::message::Message;
use crate::typed::{Reader, expect_command, impi, impu, octets, push_opt, string, u32v};

/// User-Authorization-Request (TS 29.229 §6.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uar {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host: the I-CSCF.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `[ Destination-Host ]`.
    pub destination_host: Option<DiameterIdentity>,
    /// Destination-Realm.
    pub destination_realm: Realm,
    /// User-Name: the private identity.
    pub user_name: Impi,
    /// `*[ Supported-Features ]`.
    pub supported_features: Vec<SupportedFeatures>,
    /// Public-Identity.
    pub public_identity: Impu,
    /// Visited-Network-Identifier (OctetString, usually the visited domain name).
    pub visited_network_identifier: Bytes,
    /// `[ User-Authorization-Type ]`.
    pub user_authorization_type: Option<UserAuthorizationType>,
    /// `[ UAR-Flags ]`: bit 0 is IMS emergency registration.
    pub uar_flags: Option<u32>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `*[ Proxy-Info ]`.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Uar {
    /// Decodes a UAR.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::USER_AUTHORIZATION, true, "UAR")?;
        let mut r = Reader::new(&m.avps);
        let h = RequestHead::read(&mut r)?;
        Ok(Self {
            user_name: impi(r.one(&dict::USER_NAME)?)?,
            public_identity: impu(r.one(&dict::PUBLIC_IDENTITY)?)?,
            visited_network_identifier: octets(r.one(&dict::VISITED_NETWORK_IDENTIFIER)?)?,
            user_authorization_type: r.opt_map(&dict::USER_AUTHORIZATION_TYPE, |a| {
                a.as_i32().map(UserAuthorizationType)
            })?,
            uar_flags: r.opt_map(&dict::UAR_FLAGS, u32v)?,
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

    /// Encodes the UAR in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_request_head(
            CommandCode::USER_AUTHORIZATION,
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
        a.push(Avp::octets(
            &dict::VISITED_NETWORK_IDENTIFIER,
            self.visited_network_identifier.clone(),
        ));
        push_opt(a, self.user_authorization_type, |t| {
            Avp::i32(&dict::USER_AUTHORIZATION_TYPE, t.0)
        });
        push_opt(a, self.uar_flags, |f| Avp::u32(&dict::UAR_FLAGS, f));
        write_tail(a, &self.extra, None, &self.proxy_info, &self.route_record);
        m
    }
}

/// User-Authorization-Answer (TS 29.229 §6.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uaa {
    /// Session-Id.
    pub session_id: String,
    /// Result-Code or Experimental-Result (FIRST_REGISTRATION, SUBSEQUENT_REGISTRATION...).
    pub result: CxResult,
    /// Origin-Host: the HSS.
    pub origin_host: DiameterIdentity,
    /// Origin-Realm.
    pub origin_realm: Realm,
    /// `*[ Supported-Features ]`.
    pub supported_features: Vec<SupportedFeatures>,
    /// `[ Server-Name ]`: the assigned S-CSCF.
    pub server_name: Option<String>,
    /// `[ Server-Capabilities ]`: for picking an S-CSCF.
    pub server_capabilities: Option<ServerCapabilities>,
    /// `*[ AVP ]`.
    pub extra: Vec<Avp>,
    /// `[ Failed-AVP ]`.
    pub failed_avp: Option<Vec<Avp>>,
    /// `*[ Proxy-Info ]`.
    pub proxy_info: Vec<Avp>,
    /// `*[ Route-Record ]`.
    pub route_record: Vec<DiameterIdentity>,
}

impl Uaa {
    /// An answer to `uar` from `origin` with `result`; Session-Id and Proxy-Info copied.
    pub fn new(uar: &Uar, origin: &Origin, result: CxResult) -> Self {
        Self {
            session_id: uar.session_id.clone(),
            result,
            origin_host: origin.host.clone(),
            origin_realm: origin.realm.clone(),
            supported_features: Vec::new(),
            server_name: None,
            server_capabilities: None,
            extra: Vec::new(),
            failed_avp: None,
            proxy_info: uar.proxy_info.clone(),
            route_record: Vec::new(),
        }
    }

    /// Decodes a UAA.
    pub fn decode(m: &Message) -> Result<Self, Error> {
        expect_command(m, CommandCode::USER_AUTHORIZATION, false, "UAA")?;
        let mut r = Reader::new(&m.avps);
        let h = AnswerHead::read(&mut r)?;
        Ok(Self {
            server_name: r.opt_map(&dict::SERVER_NAME, string)?,
            server_capabilities: r
                .opt_map(&dict::SERVER_CAPABILITIES, ServerCapabilities::from_avp)?,
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

    /// Encodes the UAA in ABNF order.
    pub fn to_message(&self) -> Message {
        let mut m = write_answer_head(
            CommandCode::USER_AUTHORIZATION,
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
    use crate::codes::ExperimentalResultCode;
    use crate::cx::test_support::{hss, scscf, wire};

    fn uar() -> Uar {
        let o = scscf();
        Uar {
            session_id: "icscf;1".into(),
            origin_host: o.host,
            origin_realm: o.realm.clone(),
            destination_host: None,
            destination_realm: o.realm,
            user_name: Impi::new("alice@ims.example").expect("valid"),
            supported_features: vec![],
            public_identity: Impu::new("sip:alice@ims.example").expect("valid"),
            visited_network_identifier: Bytes::from_static(b"ims.example"),
            user_authorization_type: Some(UserAuthorizationType::REGISTRATION),
            uar_flags: None,
            extra: vec![],
            proxy_info: vec![],
            route_record: vec![],
        }
    }

    #[test]
    fn uar_round_trips() {
        let u = uar();
        assert_eq!(Uar::decode(&wire(&u.to_message())), Ok(u));
    }

    #[test]
    fn uar_without_visited_network_is_missing_avp() {
        let mut m = uar().to_message();
        m.avps.retain(|a| !a.is(&dict::VISITED_NETWORK_IDENTIFIER));
        assert_eq!(
            Uar::decode(&m),
            Err(Error::MissingAvp {
                def: &dict::VISITED_NETWORK_IDENTIFIER
            })
        );
    }

    #[test]
    fn uaa_first_registration_with_capabilities_round_trips() {
        let mut uaa = Uaa::new(
            &uar(),
            &hss(),
            CxResult::experimental(ExperimentalResultCode::DIAMETER_FIRST_REGISTRATION),
        );
        uaa.server_capabilities = Some(ServerCapabilities {
            mandatory: vec![1],
            optional: vec![2, 3],
            server_names: vec![],
            extra: vec![],
        });
        assert_eq!(Uaa::decode(&wire(&uaa.to_message())), Ok(uaa));
    }
}
