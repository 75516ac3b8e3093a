//! The reg event package on the P-CSCF side (RFC 3680, TS 24.229 §5.2.3): the subscription the
//! P-CSCF holds for each registered public identity, the SUBSCRIBE requests it sends, and the
//! reginfo documents (RFC 3680 §5.3) of the NOTIFYs it receives.
//!
//! A NOTIFY whose registration or contact state is `terminated` makes the P-CSCF drop the
//! phone's registration and SAs (the S-CSCF deregistered it: expiry, RTR, administrative).

use std::time::Instant;

use bytes::Bytes;
use imslab_sip::{HeaderName, Message, Method, Via};
use imslab_types::Impu;
use quick_xml::events::Event;

/// Largest reginfo body parsed.
pub const MAX_BODY: usize = 256 * 1024;
/// Most `<registration>` plus `<contact>` elements read from one document.
pub const MAX_ELEMENTS: usize = 4096;

/// Why a reginfo body was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReginfoError {
    /// The body exceeds [`MAX_BODY`] or holds more than [`MAX_ELEMENTS`] elements.
    #[error("reginfo document too large")]
    TooLarge,
    /// The XML is malformed.
    #[error("malformed reginfo XML: {0}")]
    Xml(String),
    /// The root element is not `reginfo`.
    #[error("root element is not reginfo")]
    NotReginfo,
}

/// A `<contact>` element.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactInfo {
    /// Its `<uri>`.
    pub uri: String,
    /// `active` or `terminated`.
    pub state: String,
    /// `registered`, `expired`, `deactivated`, `unregistered`, `rejected`...
    pub event: Option<String>,
}

/// A `<registration>` element: one address of record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrationInfo {
    /// The `aor` attribute.
    pub aor: String,
    /// `init`, `active` or `terminated`.
    pub state: String,
    /// Its contacts.
    pub contacts: Vec<ContactInfo>,
}

/// A parsed `application/reginfo+xml` document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reginfo {
    /// The `version` attribute (RFC 3680 §5.4.3).
    pub version: Option<u64>,
    /// `state="full"` rather than `partial`.
    pub full: bool,
    /// The registrations.
    pub registrations: Vec<RegistrationInfo>,
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .filter_map(Result::ok)
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Parses a reginfo document, bounded by [`MAX_BODY`] and [`MAX_ELEMENTS`]. Unknown elements
/// and attributes are ignored.
pub fn parse_reginfo(xml: &str) -> Result<Reginfo, ReginfoError> {
    if xml.len() > MAX_BODY {
        return Err(ReginfoError::TooLarge);
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut info: Option<Reginfo> = None;
    let mut reg: Option<RegistrationInfo> = None;
    let mut contact: Option<ContactInfo> = None;
    let mut in_uri = false;
    let mut elements = 0usize;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| ReginfoError::Xml(e.to_string()))?;
        let ev_kind = match &ev {
            Event::Empty(_) => Kind::Empty,
            _ => Kind::Other,
        };
        match ev {
            Event::Start(e) | Event::Empty(e) => {
                let empty = matches!(ev_kind, Kind::Empty);
                let name = e.local_name().as_ref().to_owned();
                match name.as_str() {
                    "reginfo" => {
                        info = Some(Reginfo {
                            version: attr(&e, "version").and_then(|v| v.parse().ok()),
                            full: attr(&e, "state").is_some_and(|s| s == "full"),
                            registrations: Vec::new(),
                        });
                    }
                    "registration" if info.is_some() => {
                        elements += 1;
                        let r = RegistrationInfo {
                            aor: attr(&e, "aor").unwrap_or_default(),
                            state: attr(&e, "state").unwrap_or_default(),
                            contacts: Vec::new(),
                        };
                        if empty {
                            if let Some(i) = info.as_mut() {
                                i.registrations.push(r);
                            }
                        } else {
                            reg = Some(r);
                        }
                    }
                    "contact" if reg.is_some() => {
                        elements += 1;
                        let c = ContactInfo {
                            uri: String::new(),
                            state: attr(&e, "state").unwrap_or_default(),
                            event: attr(&e, "event"),
                        };
                        if empty {
                            if let Some(r) = reg.as_mut() {
                                r.contacts.push(c);
                            }
                        } else {
                            contact = Some(c);
                        }
                    }
                    "uri" if contact.is_some() && !empty => in_uri = true,
                    _ if info.is_none() => return Err(ReginfoError::NotReginfo),
                    _ => {}
                }
                if elements > MAX_ELEMENTS {
                    return Err(ReginfoError::TooLarge);
                }
            }
            Event::Text(t) if in_uri => {
                if let Some(c) = contact.as_mut() {
                    c.uri.push_str(t.trim());
                }
            }
            Event::GeneralRef(r) if in_uri => {
                if let Some(c) = contact.as_mut() {
                    let s = match &*r {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "",
                    };
                    c.uri.push_str(s);
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                "uri" => in_uri = false,
                "contact" => {
                    if let (Some(c), Some(r)) = (contact.take(), reg.as_mut()) {
                        r.contacts.push(c);
                    }
                }
                "registration" => {
                    if let (Some(r), Some(i)) = (reg.take(), info.as_mut()) {
                        i.registrations.push(r);
                    }
                }
                _ => {}
            },
            Event::Eof => {
                if reg.is_some() || contact.is_some() || in_uri {
                    return Err(ReginfoError::Xml("document ends inside an element".into()));
                }
                break;
            }
            _ => {}
        }
    }
    info.ok_or(ReginfoError::NotReginfo)
}

enum Kind {
    Empty,
    Other,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

impl Reginfo {
    /// The document as XML (RFC 3680 §5.3): what [`parse_reginfo`] reads back.
    pub fn to_xml(&self) -> String {
        let mut out = String::from(
            "<?xml version=\"1.0\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\"",
        );
        if let Some(v) = self.version {
            out.push_str(&format!(" version=\"{v}\""));
        }
        out.push_str(if self.full {
            " state=\"full\">"
        } else {
            " state=\"partial\">"
        });
        for r in &self.registrations {
            out.push_str(&format!(
                "<registration aor=\"{}\" state=\"{}\">",
                escape(&r.aor),
                escape(&r.state)
            ));
            for c in &r.contacts {
                out.push_str(&format!("<contact state=\"{}\"", escape(&c.state)));
                if let Some(e) = &c.event {
                    out.push_str(&format!(" event=\"{}\"", escape(e)));
                }
                out.push_str(&format!("><uri>{}</uri></contact>", escape(&c.uri)));
            }
            out.push_str("</registration>");
        }
        out.push_str("</reginfo>");
        out
    }
}

/// Where a subscription is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubState {
    /// SUBSCRIBE sent, no 2xx yet.
    Pending,
    /// Accepted.
    Active,
    /// The registration it watched is gone; kept until `until` so a late NOTIFY still matches.
    Ending {
        /// When it is forgotten.
        until: Instant,
    },
}

/// The P-CSCF's subscription dialog for one public identity (RFC 6665 §4.1 subscriber side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The watched identity.
    pub impu: Impu,
    /// Dialog Call-ID.
    pub call_id: String,
    /// Our From tag.
    pub local_tag: String,
    /// The notifier's tag (from the 2xx or the first NOTIFY).
    pub remote_tag: Option<String>,
    /// Our last CSeq.
    pub local_cseq: u32,
    /// The notifier's last CSeq.
    pub remote_cseq: Option<u32>,
    /// The notifier's Contact, or the initial Request-URI.
    pub remote_target: String,
    /// Route set: the Service-Route first, then the 2xx's Record-Route reversed.
    pub route_set: Vec<String>,
    /// When it runs out unless refreshed.
    pub expires: Instant,
    /// When the P-CSCF refreshes it (a SUBSCRIBE in the dialog).
    pub refresh_at: Instant,
    /// The last reginfo version seen.
    pub version: Option<u64>,
    /// Its state.
    pub state: SubState,
}

impl Subscription {
    /// The SUBSCRIBE for this dialog with `expires` (0 ends it), our Via `via` and the P-CSCF's
    /// URI `me` (From, Contact, P-Asserted-Identity), per TS 24.229 §5.2.3.
    pub fn subscribe(&self, via: &Via<'_>, me: &str, expires: u32) -> Message {
        let mut m =
            Message::new_request(Method::Subscribe, Bytes::from(self.remote_target.clone()));
        let _ = m.push_header(HeaderName::VIA, via.to_string());
        let _ = m.push_header(HeaderName::MAX_FORWARDS, "70");
        for r in &self.route_set {
            let _ = m.push_header(HeaderName::ROUTE, r.clone());
        }
        let _ = m.push_header(HeaderName::FROM, format!("<{me}>;tag={}", self.local_tag));
        let to = match &self.remote_tag {
            Some(t) => format!("<{}>;tag={t}", self.impu),
            None => format!("<{}>", self.impu),
        };
        let _ = m.push_header(HeaderName::TO, to);
        let _ = m.push_header(HeaderName::CALL_ID, self.call_id.clone());
        let _ = m.push_header(HeaderName::CSEQ, format!("{} SUBSCRIBE", self.local_cseq));
        let _ = m.push_header(HeaderName::EVENT, "reg");
        let _ = m.push_header(HeaderName::EXPIRES, expires.to_string());
        let _ = m.push_header(HeaderName::ACCEPT, "application/reginfo+xml");
        let _ = m.push_header(HeaderName::CONTACT, format!("<{me}>"));
        let _ = m.push_header(HeaderName::P_ASSERTED_IDENTITY, format!("<{me}>"));
        let _ = m.push_header(HeaderName::CONTENT_LENGTH, "0");
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERMINATED: &str = r#"<?xml version="1.0"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="3" state="full">
  <registration aor="sip:alice@ims.example" id="a7" state="terminated">
    <contact id="c1" state="terminated" event="deactivated" expires="0">
      <uri>sip:alice@10.45.0.2:5060;transport=udp&amp;x</uri>
    </contact>
  </registration>
  <registration aor="tel:+15550100" id="a8" state="active"/>
</reginfo>"#;

    #[test]
    fn terminated_registration_and_contact_are_read_with_their_event() {
        let r = parse_reginfo(TERMINATED).unwrap();
        assert_eq!(r.version, Some(3));
        assert!(r.full);
        assert_eq!(r.registrations.len(), 2);
        let a = &r.registrations[0];
        assert_eq!(
            (a.aor.as_str(), a.state.as_str()),
            ("sip:alice@ims.example", "terminated")
        );
        assert_eq!(
            a.contacts[0].uri,
            "sip:alice@10.45.0.2:5060;transport=udp&x"
        );
        assert_eq!(a.contacts[0].event.as_deref(), Some("deactivated"));
        assert_eq!(r.registrations[1].state, "active");
    }

    #[test]
    fn document_that_is_not_reginfo_is_refused() {
        assert_eq!(parse_reginfo("<presence/>"), Err(ReginfoError::NotReginfo));
        assert!(parse_reginfo("<reginfo><registration").is_err());
    }
}
