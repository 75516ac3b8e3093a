//! Typed views of the requests this P-GW receives and the messages it sends (TS 29.274 §7).
//!
//! `from_message` checks the IEs the P-GW needs: a missing one is
//! [`Error::MandatoryIeMissing`] (cause 70), one that does not decode is
//! [`Error::MandatoryIeIncorrect`] (cause 69); both name the offending IE. Optional IEs that do
//! not decode are treated as absent (§7.7.9).

use imslab_types::{Imsi, Msisdn};

use super::ie::{
    Ambr, Apn, BearerQos, Cause, ChargingId, Ebi, Fteid, IeCodec, Indication, Mei, Paa, PdnType,
    RatType, Recovery, SelectionMode, ServingNetwork,
};
use super::{Header, Ie, IeType, Message, MessageType, find, find_all};
use crate::{Error, Result};

fn mandatory<T: IeCodec>(message: MessageType, ies: &[Ie], instance: u8) -> Result<T> {
    let ie = find(ies, T::TYPE, instance).ok_or(Error::MandatoryIeMissing {
        message,
        ie_type: T::TYPE,
        instance,
    })?;
    T::from_ie(ie).map_err(|e| Error::MandatoryIeIncorrect {
        ie_type: T::TYPE,
        instance,
        reason: e.to_string(),
    })
}

fn optional<T: IeCodec>(ies: &[Ie], instance: u8) -> Option<T> {
    find(ies, T::TYPE, instance).and_then(|ie| T::from_ie(ie).ok())
}

fn raw(ies: &[Ie], ie_type: IeType, instance: u8) -> Option<Vec<u8>> {
    find(ies, ie_type, instance)
        .and_then(|ie| ie.raw_value())
        .map(<[u8]>::to_vec)
}

/// The children of a grouped Bearer Context IE, or "incorrect" when it did not parse.
fn bearer_children(ie: &Ie) -> Result<&[Ie]> {
    ie.children().ok_or_else(|| Error::MandatoryIeIncorrect {
        ie_type: IeType::BEARER_CONTEXT,
        instance: ie.instance,
        reason: "Bearer Context contents do not parse as IEs".into(),
    })
}

/// A missing or bad IE inside a Bearer Context is reported against the Bearer Context.
fn in_bearer(e: Error, instance: u8) -> Error {
    match e {
        Error::MandatoryIeMissing { message, .. } => Error::MandatoryIeMissing {
            message,
            ie_type: IeType::BEARER_CONTEXT,
            instance,
        },
        Error::MandatoryIeIncorrect { reason, .. } => Error::MandatoryIeIncorrect {
            ie_type: IeType::BEARER_CONTEXT,
            instance,
            reason,
        },
        other => other,
    }
}

/// A Bearer Context to be created (§7.2.1, Table 7.2.1-2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerContextToCreate {
    /// EPS Bearer ID.
    pub ebi: Ebi,
    /// Bearer Level QoS.
    pub qos: BearerQos,
    /// S5/S8-U SGW F-TEID (instance 2).
    pub sgw_u: Option<Fteid>,
}

/// Create Session Request on S5/S8 (§7.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSessionRequest {
    /// The subscriber.
    pub imsi: Imsi,
    /// Its MSISDN.
    pub msisdn: Option<Msisdn>,
    /// Its equipment identity.
    pub mei: Option<Mei>,
    /// The serving PLMN.
    pub serving_network: Option<ServingNetwork>,
    /// The radio access type.
    pub rat_type: RatType,
    /// The SGW's S5/S8-C F-TEID (Sender F-TEID for Control Plane, instance 0).
    pub sender_fteid: Fteid,
    /// The APN.
    pub apn: Apn,
    /// Selection Mode.
    pub selection_mode: Option<SelectionMode>,
    /// Requested PDN Type.
    pub pdn_type: Option<PdnType>,
    /// Requested PAA (a static address request when not all zeros).
    pub paa: Option<Paa>,
    /// Requested APN-AMBR.
    pub apn_ambr: Option<Ambr>,
    /// Indication flags.
    pub indication: Option<Indication>,
    /// PCO value octets (MS to network).
    pub pco: Option<Vec<u8>>,
    /// APCO value octets.
    pub apco: Option<Vec<u8>>,
    /// ePCO value octets.
    pub epco: Option<Vec<u8>>,
    /// Bearer Contexts to be created (at least one).
    pub bearer_contexts: Vec<BearerContextToCreate>,
    /// The SGW's restart counter.
    pub recovery: Option<Recovery>,
}

impl CreateSessionRequest {
    /// Reads a Create Session Request.
    pub fn from_message(m: &Message) -> Result<Self> {
        let t = MessageType::CREATE_SESSION_REQUEST;
        let ies = &m.ies;
        let mut bearer_contexts = Vec::new();
        for bc in find_all(ies, IeType::BEARER_CONTEXT, 0) {
            let children = bearer_children(bc)?;
            let ebi = mandatory(t, children, 0).map_err(|e| in_bearer(e, 0))?;
            let qos = mandatory(t, children, 0).map_err(|e| in_bearer(e, 0))?;
            bearer_contexts.push(BearerContextToCreate {
                ebi,
                qos,
                sgw_u: optional(children, 2),
            });
        }
        let imsi = mandatory(t, ies, 0)?;
        let rat_type = mandatory(t, ies, 0)?;
        let sender_fteid = mandatory(t, ies, 0)?;
        let apn = mandatory(t, ies, 0)?;
        if bearer_contexts.is_empty() {
            return Err(Error::MandatoryIeMissing {
                message: t,
                ie_type: IeType::BEARER_CONTEXT,
                instance: 0,
            });
        }
        Ok(Self {
            imsi,
            msisdn: optional(ies, 0),
            mei: optional(ies, 0),
            serving_network: optional(ies, 0),
            rat_type,
            sender_fteid,
            apn,
            selection_mode: optional(ies, 0),
            pdn_type: optional(ies, 0),
            paa: optional(ies, 0),
            apn_ambr: optional(ies, 0),
            indication: optional(ies, 0),
            pco: raw(ies, IeType::PCO, 0),
            apco: raw(ies, IeType::APCO, 0),
            epco: raw(ies, IeType::EPCO, 0),
            bearer_contexts,
            recovery: optional(ies, 0),
        })
    }

    /// Builds the message (used by tests, benchmarks and the fuzz seed corpus).
    pub fn to_message(&self, sequence: u32) -> Message {
        let mut ies = vec![self.imsi.to_ie(0)];
        if let Some(v) = &self.msisdn {
            ies.push(v.to_ie(0));
        }
        if let Some(v) = &self.mei {
            ies.push(v.to_ie(0));
        }
        if let Some(v) = &self.serving_network {
            ies.push(v.to_ie(0));
        }
        ies.push(self.rat_type.to_ie(0));
        if let Some(v) = &self.indication {
            ies.push(v.to_ie(0));
        }
        ies.push(self.sender_fteid.to_ie(0));
        ies.push(self.apn.to_ie(0));
        if let Some(v) = &self.selection_mode {
            ies.push(v.to_ie(0));
        }
        if let Some(v) = &self.pdn_type {
            ies.push(v.to_ie(0));
        }
        if let Some(v) = &self.paa {
            ies.push(v.to_ie(0));
        }
        if let Some(v) = &self.apn_ambr {
            ies.push(v.to_ie(0));
        }
        for (t, v) in [
            (IeType::PCO, &self.pco),
            (IeType::APCO, &self.apco),
            (IeType::EPCO, &self.epco),
        ] {
            if let Some(v) = v {
                ies.push(Ie::raw(t, 0, v.clone()));
            }
        }
        for bc in &self.bearer_contexts {
            let mut c = vec![bc.ebi.to_ie(0)];
            if let Some(f) = &bc.sgw_u {
                c.push(f.to_ie(2));
            }
            c.push(bc.qos.to_ie(0));
            ies.push(Ie::grouped(IeType::BEARER_CONTEXT, 0, c));
        }
        if let Some(v) = &self.recovery {
            ies.push(v.to_ie(0));
        }
        Message {
            header: Header::new(MessageType::CREATE_SESSION_REQUEST, Some(0), sequence),
            ies,
        }
    }
}

/// A Bearer Context created, as sent in a Create Session Response (§7.2.2, Table 7.2.2-2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerContextCreated {
    /// EPS Bearer ID.
    pub ebi: Ebi,
    /// The bearer's cause.
    pub cause: Cause,
    /// S5/S8-U PGW F-TEID (instance 2).
    pub pgw_u: Option<Fteid>,
    /// Bearer Level QoS.
    pub qos: Option<BearerQos>,
    /// Charging ID.
    pub charging_id: Option<ChargingId>,
}

impl BearerContextCreated {
    fn to_ie(&self) -> Ie {
        let mut c = vec![self.ebi.to_ie(0), self.cause.to_ie(0)];
        if let Some(f) = &self.pgw_u {
            c.push(f.to_ie(2));
        }
        if let Some(q) = &self.qos {
            c.push(q.to_ie(0));
        }
        if let Some(id) = &self.charging_id {
            c.push(id.to_ie(0));
        }
        Ie::grouped(IeType::BEARER_CONTEXT, 0, c)
    }
}

/// Create Session Response (§7.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSessionResponse {
    /// The cause, with the offending IE for rejections.
    pub cause: Cause,
    /// The P-GW's S5/S8-C F-TEID (instance 1: "PGW S5/S8 F-TEID for GTP based control plane").
    pub pgw_fteid: Option<Fteid>,
    /// The allocated addresses.
    pub paa: Option<Paa>,
    /// APN Restriction.
    pub apn_restriction: Option<u8>,
    /// APN-AMBR.
    pub apn_ambr: Option<Ambr>,
    /// PCO value octets (network to MS).
    pub pco: Option<Vec<u8>>,
    /// APCO value octets.
    pub apco: Option<Vec<u8>>,
    /// ePCO value octets.
    pub epco: Option<Vec<u8>>,
    /// Bearer Contexts created.
    pub bearer_contexts: Vec<BearerContextCreated>,
    /// Our restart counter.
    pub recovery: Option<Recovery>,
}

impl CreateSessionResponse {
    /// A rejection carrying only the cause.
    pub fn reject(cause: Cause) -> Self {
        Self {
            cause,
            pgw_fteid: None,
            paa: None,
            apn_restriction: None,
            apn_ambr: None,
            pco: None,
            apco: None,
            epco: None,
            bearer_contexts: Vec::new(),
            recovery: None,
        }
    }

    /// Builds the message; `teid` is the SGW's S5/S8-C TEID (0 when unknown).
    pub fn to_message(&self, teid: u32, sequence: u32) -> Message {
        let mut ies = vec![self.cause.to_ie(0)];
        if let Some(v) = &self.recovery {
            ies.push(v.to_ie(0));
        }
        if let Some(f) = &self.pgw_fteid {
            ies.push(f.to_ie(1));
        }
        if let Some(p) = &self.paa {
            ies.push(p.to_ie(0));
        }
        if let Some(r) = self.apn_restriction {
            ies.push(super::ie::ApnRestriction(r).to_ie(0));
        }
        if let Some(a) = &self.apn_ambr {
            ies.push(a.to_ie(0));
        }
        for (t, v) in [
            (IeType::PCO, &self.pco),
            (IeType::APCO, &self.apco),
            (IeType::EPCO, &self.epco),
        ] {
            if let Some(v) = v {
                ies.push(Ie::raw(t, 0, v.clone()));
            }
        }
        ies.extend(self.bearer_contexts.iter().map(BearerContextCreated::to_ie));
        Message {
            header: Header::new(MessageType::CREATE_SESSION_RESPONSE, Some(teid), sequence),
            ies,
        }
    }

    /// Reads a Create Session Response (the test client's side).
    pub fn from_message(m: &Message) -> Result<Self> {
        let t = MessageType::CREATE_SESSION_RESPONSE;
        let ies = &m.ies;
        let mut bearer_contexts = Vec::new();
        for bc in find_all(ies, IeType::BEARER_CONTEXT, 0) {
            let c = bearer_children(bc)?;
            bearer_contexts.push(BearerContextCreated {
                ebi: mandatory(t, c, 0).map_err(|e| in_bearer(e, 0))?,
                cause: mandatory(t, c, 0).map_err(|e| in_bearer(e, 0))?,
                pgw_u: optional(c, 2),
                qos: optional(c, 0),
                charging_id: optional(c, 0),
            });
        }
        Ok(Self {
            cause: mandatory(t, ies, 0)?,
            pgw_fteid: optional(ies, 1),
            paa: optional(ies, 0),
            apn_restriction: optional::<super::ie::ApnRestriction>(ies, 0).map(|r| r.0),
            apn_ambr: optional(ies, 0),
            pco: raw(ies, IeType::PCO, 0),
            apco: raw(ies, IeType::APCO, 0),
            epco: raw(ies, IeType::EPCO, 0),
            bearer_contexts,
            recovery: optional(ies, 0),
        })
    }
}

/// A Bearer Context to be modified (§7.2.7, Table 7.2.7-2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerContextToModify {
    /// EPS Bearer ID.
    pub ebi: Ebi,
    /// S5/S8-U SGW F-TEID (instance 1).
    pub sgw_u: Option<Fteid>,
}

/// Modify Bearer Request on S5/S8 (§7.2.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyBearerRequest {
    /// A new SGW S5/S8-C F-TEID (SGW relocation).
    pub sender_fteid: Option<Fteid>,
    /// Bearer Contexts to be modified.
    pub bearer_contexts: Vec<BearerContextToModify>,
    /// The SGW's restart counter.
    pub recovery: Option<Recovery>,
}

impl ModifyBearerRequest {
    /// Reads a Modify Bearer Request.
    pub fn from_message(m: &Message) -> Result<Self> {
        let t = MessageType::MODIFY_BEARER_REQUEST;
        let mut bearer_contexts = Vec::new();
        for bc in find_all(&m.ies, IeType::BEARER_CONTEXT, 0) {
            let c = bearer_children(bc)?;
            bearer_contexts.push(BearerContextToModify {
                ebi: mandatory(t, c, 0).map_err(|e| in_bearer(e, 0))?,
                sgw_u: optional(c, 1),
            });
        }
        Ok(Self {
            sender_fteid: optional(&m.ies, 0),
            bearer_contexts,
            recovery: optional(&m.ies, 0),
        })
    }
}

/// Modify Bearer Response (§7.2.8) with the modified bearers' EBI, cause and charging id.
pub fn modify_bearer_response(
    teid: u32,
    sequence: u32,
    cause: Cause,
    msisdn: Option<&Msisdn>,
    bearers: &[(Ebi, ChargingId)],
    recovery: Option<Recovery>,
) -> Message {
    let mut ies = vec![cause.to_ie(0)];
    if let Some(m) = msisdn {
        ies.push(m.to_ie(0));
    }
    for (ebi, charging) in bearers {
        ies.push(Ie::grouped(
            IeType::BEARER_CONTEXT,
            0,
            vec![ebi.to_ie(0), cause.to_ie(0), charging.to_ie(0)],
        ));
    }
    if let Some(r) = recovery {
        ies.push(r.to_ie(0));
    }
    Message {
        header: Header::new(MessageType::MODIFY_BEARER_RESPONSE, Some(teid), sequence),
        ies,
    }
}

/// Delete Session Request (§7.2.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSessionRequest {
    /// Linked EPS Bearer ID (the default bearer).
    pub linked_ebi: Option<Ebi>,
    /// Indication flags.
    pub indication: Option<Indication>,
    /// PCO value octets.
    pub pco: Option<Vec<u8>>,
}

impl DeleteSessionRequest {
    /// Reads a Delete Session Request.
    pub fn from_message(m: &Message) -> Result<Self> {
        Ok(Self {
            linked_ebi: optional(&m.ies, 0),
            indication: optional(&m.ies, 0),
            pco: raw(&m.ies, IeType::PCO, 0),
        })
    }

    /// Builds the message.
    pub fn to_message(&self, teid: u32, sequence: u32) -> Message {
        let mut ies = Vec::new();
        if let Some(e) = &self.linked_ebi {
            ies.push(e.to_ie(0));
        }
        if let Some(i) = &self.indication {
            ies.push(i.to_ie(0));
        }
        if let Some(p) = &self.pco {
            ies.push(Ie::raw(IeType::PCO, 0, p.clone()));
        }
        Message {
            header: Header::new(MessageType::DELETE_SESSION_REQUEST, Some(teid), sequence),
            ies,
        }
    }
}

/// A response that carries only a cause and perhaps Recovery (Delete Session Response §7.2.10,
/// error answers of any type).
pub fn cause_only(
    message_type: MessageType,
    teid: u32,
    sequence: u32,
    cause: Cause,
    recovery: Option<Recovery>,
) -> Message {
    let mut ies = vec![cause.to_ie(0)];
    if let Some(r) = recovery {
        ies.push(r.to_ie(0));
    }
    Message {
        header: Header::new(message_type, Some(teid), sequence),
        ies,
    }
}

/// Echo Request or Response (§7.1.1, §7.1.2): Recovery only, no TEID.
pub fn echo(message_type: MessageType, sequence: u32, recovery: Recovery) -> Message {
    Message {
        header: Header::new(message_type, None, sequence),
        ies: vec![recovery.to_ie(0)],
    }
}

/// Delete Bearer Request (§7.2.9.2) for a whole PDN connection: Linked EBI and a cause.
pub fn delete_bearer_request(teid: u32, sequence: u32, linked_ebi: Ebi, cause: Cause) -> Message {
    Message {
        header: Header::new(MessageType::DELETE_BEARER_REQUEST, Some(teid), sequence),
        ies: vec![linked_ebi.to_ie(0), cause.to_ie(0)],
    }
}

/// Delete Bearer Response (§7.2.10.2), as far as this P-GW reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteBearerResponse {
    /// The cause.
    pub cause: Cause,
    /// Linked EBI, echoed.
    pub linked_ebi: Option<Ebi>,
}

impl DeleteBearerResponse {
    /// Reads a Delete Bearer Response.
    pub fn from_message(m: &Message) -> Result<Self> {
        Ok(Self {
            cause: mandatory(MessageType::DELETE_BEARER_RESPONSE, &m.ies, 0)?,
            linked_ebi: optional(&m.ies, 0),
        })
    }

    /// Builds the message (the test SGW's side).
    pub fn to_message(&self, teid: u32, sequence: u32) -> Message {
        let mut ies = vec![self.cause.to_ie(0)];
        if let Some(e) = &self.linked_ebi {
            ies.push(e.to_ie(0));
        }
        Message {
            header: Header::new(MessageType::DELETE_BEARER_RESPONSE, Some(teid), sequence),
            ies,
        }
    }
}
