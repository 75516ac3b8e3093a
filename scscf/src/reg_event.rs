//! The reg event package (RFC 3680, TS 24.229 §5.4.2.1): the reginfo document and the
//! values of its states and events.
//!
//! The S-CSCF always sends full state (`state="full"`): one `<registration>` per public
//! identity of the implicit registration set, each with every contact of the registration
//! (TS 24.229 §5.4.2.1.2).

use std::fmt::{self, Write as _};

/// `application/reginfo+xml` (RFC 3680 §5.2).
pub const CONTENT_TYPE: &str = "application/reginfo+xml";

/// The state of a `<registration>` (RFC 3680 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// No active contact yet.
    Init,
    /// At least one active contact.
    Active,
    /// No active contact any more.
    Terminated,
}

impl RegistrationState {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Active => "active",
            Self::Terminated => "terminated",
        }
    }
}

/// What happened to a contact (RFC 3680 §5.3 `event` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactEvent {
    /// Registered by a REGISTER.
    Registered,
    /// Created administratively.
    Created,
    /// Refreshed by a REGISTER.
    Refreshed,
    /// Its expiry was shortened by the registrar.
    Shortened,
    /// Expired.
    Expired,
    /// Deactivated by the network: the UE should register again (TS 24.229 §5.4.1.5).
    Deactivated,
    /// Deactivated with a retry later.
    Probation,
    /// Removed by the UE's de-registration.
    Unregistered,
    /// Removed by the network, without coming back (TS 24.229 §5.4.1.5).
    Rejected,
}

impl ContactEvent {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Created => "created",
            Self::Refreshed => "refreshed",
            Self::Shortened => "shortened",
            Self::Expired => "expired",
            Self::Deactivated => "deactivated",
            Self::Probation => "probation",
            Self::Unregistered => "unregistered",
            Self::Rejected => "rejected",
        }
    }

    /// Whether a contact with this event is terminated.
    pub fn terminates(self) -> bool {
        matches!(
            self,
            Self::Expired
                | Self::Deactivated
                | Self::Probation
                | Self::Unregistered
                | Self::Rejected
        )
    }
}

impl fmt::Display for ContactEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `<contact>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInfo {
    /// A stable id, unique within the document.
    pub id: String,
    /// The contact URI.
    pub uri: String,
    /// The last event; its [`ContactEvent::terminates`] gives the state.
    pub event: ContactEvent,
    /// Seconds left, for active contacts.
    pub expires: Option<u64>,
    /// Contact parameters (`+sip.instance`, `reg-id`, feature tags) as `unknown-param`
    /// elements (RFC 3680 §5.3, TS 24.229 §5.4.2.1.2): name and optional value.
    pub params: Vec<(String, Option<String>)>,
}

/// One `<registration>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationInfo {
    /// The address of record (the public identity).
    pub aor: String,
    /// A stable id.
    pub id: String,
    /// The state.
    pub state: RegistrationState,
    /// The contacts.
    pub contacts: Vec<ContactInfo>,
}

fn esc(out: &mut String, s: &str) {
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
}

/// The full-state reginfo document with this `version` (RFC 3680 §5.3, §5.4: the version
/// starts at 0 and grows by one with every NOTIFY of a subscription).
pub fn reginfo(version: u64, registrations: &[RegistrationInfo]) -> String {
    let mut out = String::with_capacity(256 + 256 * registrations.len());
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"{version}\" state=\"full\">\n"
    );
    for r in registrations {
        out.push_str("  <registration aor=\"");
        esc(&mut out, &r.aor);
        out.push_str("\" id=\"");
        esc(&mut out, &r.id);
        let _ = writeln!(out, "\" state=\"{}\">", r.state.as_str());
        for c in &r.contacts {
            let state = if c.event.terminates() {
                "terminated"
            } else {
                "active"
            };
            out.push_str("    <contact id=\"");
            esc(&mut out, &c.id);
            let _ = write!(out, "\" state=\"{state}\" event=\"{}\"", c.event);
            if let (Some(e), false) = (c.expires, c.event.terminates()) {
                let _ = write!(out, " expires=\"{e}\"");
            }
            out.push_str(">\n      <uri>");
            esc(&mut out, &c.uri);
            out.push_str("</uri>\n");
            for (name, value) in &c.params {
                out.push_str("      <unknown-param name=\"");
                esc(&mut out, name);
                out.push_str("\">");
                if let Some(v) = value {
                    esc(&mut out, v.trim_matches('"'));
                }
                out.push_str("</unknown-param>\n");
            }
            out.push_str("    </contact>\n");
        }
        out.push_str("  </registration>\n");
    }
    out.push_str("</reginfo>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_follows_the_rfc_3680_shape() {
        let doc = reginfo(
            3,
            &[RegistrationInfo {
                aor: "sip:alice@ims.example".into(),
                id: "r1".into(),
                state: RegistrationState::Active,
                contacts: vec![
                    ContactInfo {
                        id: "c1".into(),
                        uri: "sip:alice@10.0.0.1:5060".into(),
                        event: ContactEvent::Registered,
                        expires: Some(600),
                        params: vec![(
                            "+sip.instance".into(),
                            Some("\"<urn:gsma:imei:1>\"".into()),
                        )],
                    },
                    ContactInfo {
                        id: "c2".into(),
                        uri: "sip:alice@10.0.0.2:5060;a=b&c".into(),
                        event: ContactEvent::Expired,
                        expires: Some(0),
                        params: Vec::new(),
                    },
                ],
            }],
        );
        assert!(doc.contains("version=\"3\" state=\"full\""));
        assert!(
            doc.contains(
                "<contact id=\"c1\" state=\"active\" event=\"registered\" expires=\"600\">"
            )
        );
        assert!(doc.contains("<contact id=\"c2\" state=\"terminated\" event=\"expired\">"));
        assert!(doc.contains("a=b&amp;c"));
        assert!(doc.contains(
            "<unknown-param name=\"+sip.instance\">&lt;urn:gsma:imei:1&gt;</unknown-param>"
        ));
    }
}
