//! The reg event package document (RFC 3680 §5.3, `application/reginfo+xml`), as far as a
//! phone reads it: per registration its AOR and state, per contact its URI, state and event.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// One `<contact>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactInfo {
    /// `state`: active or terminated.
    pub state: String,
    /// `event`: registered, created, refreshed, shortened, expired, deactivated, probation,
    /// unregistered, rejected.
    pub event: String,
    /// `<uri>`.
    pub uri: String,
}

/// One `<registration>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistrationInfo {
    /// `aor`.
    pub aor: String,
    /// `state`: init, active or terminated.
    pub state: String,
    /// Its contacts.
    pub contacts: Vec<ContactInfo>,
}

/// A whole `<reginfo>` document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegInfo {
    /// `version`.
    pub version: Option<u64>,
    /// `state`: full or partial.
    pub state: String,
    /// The registrations.
    pub registrations: Vec<RegistrationInfo>,
}

impl RegInfo {
    /// The registration of `aor`, if present.
    pub fn registration(&self, aor: &str) -> Option<&RegistrationInfo> {
        self.registrations.iter().find(|r| r.aor == aor)
    }
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Parses a reginfo document; `None` when it is not well-formed XML or has no `<reginfo>`.
pub fn parse(xml: &[u8]) -> Option<RegInfo> {
    let text = std::str::from_utf8(xml).ok()?;
    let mut reader = Reader::from_str(text);
    let mut info: Option<RegInfo> = None;
    let mut in_uri = false;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.local_name();
                match name.as_ref() {
                    "reginfo" => {
                        info = Some(RegInfo {
                            version: attr(&e, "version").and_then(|v| v.parse().ok()),
                            state: attr(&e, "state").unwrap_or_default(),
                            registrations: Vec::new(),
                        });
                    }
                    "registration" => {
                        if let Some(i) = info.as_mut() {
                            i.registrations.push(RegistrationInfo {
                                aor: attr(&e, "aor").unwrap_or_default(),
                                state: attr(&e, "state").unwrap_or_default(),
                                contacts: Vec::new(),
                            });
                        }
                    }
                    "contact" => {
                        if let Some(r) = info.as_mut().and_then(|i| i.registrations.last_mut()) {
                            r.contacts.push(ContactInfo {
                                state: attr(&e, "state").unwrap_or_default(),
                                event: attr(&e, "event").unwrap_or_default(),
                                uri: String::new(),
                            });
                        }
                    }
                    "uri" => in_uri = true,
                    _ => {}
                }
            }
            Event::Text(t) if in_uri => {
                if let Some(c) = info
                    .as_mut()
                    .and_then(|i| i.registrations.last_mut())
                    .and_then(|r| r.contacts.last_mut())
                {
                    c.uri.push_str(t.xml10_content().trim());
                }
            }
            Event::End(e) if e.local_name().as_ref() == "uri" => in_uri = false,
            Event::Eof => break,
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERMINATED: &str = r#"<?xml version="1.0"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="3" state="full">
  <registration aor="sip:alice@ims.example" id="r1" state="terminated">
    <contact id="c1" state="terminated" event="deactivated">
      <uri>sip:alice@127.0.0.2:6100</uri>
    </contact>
  </registration>
</reginfo>"#;

    #[test]
    fn terminated_registration_after_rtr_is_read_with_its_event() {
        let i = parse(TERMINATED.as_bytes()).unwrap();
        assert_eq!(i.version, Some(3));
        assert_eq!(i.state, "full");
        let r = i.registration("sip:alice@ims.example").unwrap();
        assert_eq!(r.state, "terminated");
        assert_eq!(r.contacts[0].event, "deactivated");
        assert_eq!(r.contacts[0].uri, "sip:alice@127.0.0.2:6100");
    }

    #[test]
    fn garbage_is_not_reginfo() {
        assert!(parse(b"<html/>").is_none());
        assert!(parse(b"\xff\xfe").is_none());
    }
}
