//! Security agreement on the REGISTER (RFC 3329 §2.3.1, TS 33.203 §7.2, TS 24.229 §5.2.2):
//! what the phone asks for, which offer the P-CSCF takes, what it refuses and with which
//! status, and the headers it removes before forwarding.

use imslab_config::IpsecMode;
use imslab_ipsec::header::{self as sec_header, MechParam};
use imslab_ipsec::negotiate::{self, ListMismatch};
use imslab_ipsec::{Chosen, SecurityMechanism};
use imslab_sip::{HeaderName, Message, StatusCode};

use crate::settings::Settings;

/// The option tag of RFC 3329.
pub const SEC_AGREE: &str = "sec-agree";

/// How a request mentions sec-agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// In Require or Proxy-Require: the phone insists on an agreement.
    Required,
    /// Only in Supported.
    Supported,
    /// Not at all.
    None,
}

/// Whether `msg` lists `tag` in header `name`.
pub fn has_option_tag(msg: &Message, name: &HeaderName, tag: &str) -> bool {
    msg.option_tags(name)
        .filter_map(Result::ok)
        .any(|t| t.as_str().eq_ignore_ascii_case(tag))
}

/// How the request asks for sec-agree.
pub fn ask(msg: &Message) -> Ask {
    if has_option_tag(msg, &HeaderName::REQUIRE, SEC_AGREE)
        || has_option_tag(msg, &HeaderName::PROXY_REQUIRE, SEC_AGREE)
    {
        Ask::Required
    } else if has_option_tag(msg, &HeaderName::SUPPORTED, SEC_AGREE) {
        Ask::Supported
    } else {
        Ask::None
    }
}

/// Parses every value of a Security-* header; a malformed value yields an error.
pub fn mechanisms(
    msg: &Message,
    name: &HeaderName,
) -> Result<Vec<SecurityMechanism>, imslab_ipsec::Error> {
    let values: Vec<&str> = msg
        .fields_named(name)
        .filter_map(|f| std::str::from_utf8(f.value()).ok())
        .collect();
    sec_header::parse_values(values)
}

/// Removes `tag` from every field of a list header, dropping fields left empty.
pub fn remove_option_tag(msg: &mut Message, name: &HeaderName, tag: &str) {
    if !has_option_tag(msg, name, tag) {
        return;
    }
    let rest: Vec<String> = msg
        .option_tags(name)
        .filter_map(Result::ok)
        .filter(|t| !t.as_str().eq_ignore_ascii_case(tag))
        .map(|t| t.as_str().to_owned())
        .collect();
    msg.remove_header(name);
    if !rest.is_empty() {
        let _ = msg.push_header(name.clone(), rest.join(", "));
    }
}

/// Adds `tag` to a list header unless it is there.
pub fn add_option_tag(msg: &mut Message, name: &HeaderName, tag: &str) {
    if !has_option_tag(msg, name, tag) {
        let _ = msg.push_header(name.clone(), tag.to_owned());
    }
}

/// Removes what only concerns the phone–P-CSCF hop before a request goes on (TS 24.229
/// §5.2.2.1): Security-Client, Security-Verify and the sec-agree option tag.
pub fn strip_for_forwarding(msg: &mut Message) {
    msg.remove_header(&HeaderName::SECURITY_CLIENT);
    msg.remove_header(&HeaderName::SECURITY_VERIFY);
    remove_option_tag(msg, &HeaderName::REQUIRE, SEC_AGREE);
    remove_option_tag(msg, &HeaderName::PROXY_REQUIRE, SEC_AGREE);
}

/// Why a REGISTER is refused before it is forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// IPsec is required and the phone did not mention sec-agree: 421 Extension Required
    /// (RFC 3329 §2.3.1).
    ExtensionRequired,
    /// IPsec is required and the phone only supports sec-agree, or offered nothing acceptable:
    /// 494 Security Agreement Required (RFC 3329 §2.3.1, TS 24.229 §5.2.2.1).
    AgreementRequired(String),
    /// `pcscf.ipsec.mode` is off and the phone requires sec-agree: 420 Bad Extension with
    /// Unsupported: sec-agree (RFC 3261 §8.2.2.3).
    NotSupported,
    /// Security-Verify differs from the Security-Server sent (bid-down protection, RFC 3329
    /// §2.3.1): 494.
    VerifyMismatch(ListMismatch),
    /// The protected REGISTER's Security-Client differs from the first one (TS 33.203 §7.2):
    /// 494.
    ClientChanged(ListMismatch),
}

impl Refusal {
    /// The status the P-CSCF answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::ExtensionRequired => StatusCode::EXTENSION_REQUIRED,
            Self::NotSupported => StatusCode::BAD_EXTENSION,
            Self::AgreementRequired(_) | Self::VerifyMismatch(_) | Self::ClientChanged(_) => {
                StatusCode::new(494).unwrap_or(StatusCode::FORBIDDEN)
            }
        }
    }

    /// The reason, for the phone's timeline.
    pub fn reason(&self) -> String {
        match self {
            Self::ExtensionRequired => {
                "421: IPsec is required and the REGISTER does not mention sec-agree".into()
            }
            Self::AgreementRequired(why) => format!("494: {why}"),
            Self::NotSupported => {
                "420: the REGISTER requires sec-agree but pcscf.ipsec.mode is off".into()
            }
            Self::VerifyMismatch(m) => {
                format!("494: Security-Verify rejected (bid-down protection): {m}")
            }
            Self::ClientChanged(m) => {
                format!("494: Security-Client differs from the first REGISTER: {m}")
            }
        }
    }

    /// The response: Require: sec-agree and Security-Server with the P-CSCF's capabilities
    /// for 421/494, Unsupported: sec-agree for 420.
    pub fn response(&self, req: &Message, settings: &Settings, tag: &str) -> Option<Message> {
        let mut resp = req.response(self.status(), Some(tag)).ok()?;
        match self {
            Self::NotSupported => {
                resp.push_header(HeaderName::UNSUPPORTED, SEC_AGREE).ok()?;
            }
            _ => {
                resp.push_header(HeaderName::REQUIRE, SEC_AGREE).ok()?;
                let caps = capabilities(settings);
                if !caps.is_empty() {
                    resp.push_header(HeaderName::SECURITY_SERVER, sec_header::print_list(&caps))
                        .ok()?;
                }
            }
        }
        Some(resp)
    }
}

/// The P-CSCF's mechanisms without SPIs, for the Security-Server of a 421 or 494 (RFC 3329
/// §2.3.1: "listing its capabilities").
pub fn capabilities(settings: &Settings) -> Vec<SecurityMechanism> {
    let n = settings.preference.suites().len();
    settings
        .preference
        .suites()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let q = 1000u16
                .saturating_sub(100 * u16::try_from(i).unwrap_or(9))
                .max(1);
            let mut params = Vec::with_capacity(7);
            if n > 1 {
                params.push(MechParam::new("q", format!("{}.{:03}", q / 1000, q % 1000)));
            }
            params.push(MechParam::new("prot", "esp"));
            params.push(MechParam::new("mod", "trans"));
            params.push(MechParam::new("port-c", settings.ports.port_c.to_string()));
            params.push(MechParam::new("port-s", settings.ports.port_s.to_string()));
            params.push(MechParam::new("alg", s.integrity.token()));
            params.push(MechParam::new("ealg", s.encryption.token()));
            SecurityMechanism {
                name: sec_header::IPSEC_3GPP.to_owned(),
                params,
            }
        })
        .collect()
}

/// What the P-CSCF takes from an unprotected REGISTER's Security-Client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The whole Security-Client list, kept to check the protected REGISTER's copy.
    pub client: Vec<SecurityMechanism>,
    /// The chosen mechanism.
    pub chosen: Chosen,
}

/// Decides on an unprotected REGISTER: `Ok(None)` forwards it without security agreement,
/// `Ok(Some(offer))` forwards it and creates SAs when the 401 comes back, `Err` refuses it.
pub fn on_unprotected_register(
    msg: &Message,
    settings: &Settings,
) -> Result<Option<Offer>, Refusal> {
    let ask = ask(msg);
    if settings.mode == IpsecMode::Off {
        return match ask {
            Ask::Required => Err(Refusal::NotSupported),
            Ask::Supported | Ask::None => Ok(None),
        };
    }
    match ask {
        Ask::None => Err(Refusal::ExtensionRequired),
        Ask::Supported => Err(Refusal::AgreementRequired(
            "sec-agree is only in Supported; IPsec is required".into(),
        )),
        Ask::Required => choose(msg, settings).map(Some),
    }
}

/// Chooses from the request's Security-Client by the configured preference (TS 33.203 §7.2).
pub fn choose(msg: &Message, settings: &Settings) -> Result<Offer, Refusal> {
    let client = mechanisms(msg, &HeaderName::SECURITY_CLIENT)
        .map_err(|e| Refusal::AgreementRequired(format!("unreadable Security-Client: {e}")))?;
    let chosen = negotiate::choose(&client, &settings.preference)
        .map_err(|e| Refusal::AgreementRequired(e.to_string()))?;
    Ok(Offer { client, chosen })
}

/// Checks a protected request's Security-Verify against the Security-Server sent
/// (RFC 3329 §2.3.1). `required` is true for REGISTER, which must carry it; other requests may
/// leave it out (TS 24.229 §5.1.2A.1.1), and are checked when they carry it.
pub fn check_verify(
    msg: &Message,
    sent_server: &[SecurityMechanism],
    required: bool,
) -> Result<(), Refusal> {
    if !required && !msg.has_header(&HeaderName::SECURITY_VERIFY) {
        return Ok(());
    }
    let verify = mechanisms(msg, &HeaderName::SECURITY_VERIFY).map_err(|_| {
        Refusal::VerifyMismatch(ListMismatch::MechanismDiffers {
            index: 0,
            expected: sec_header::print_list(sent_server),
            received: "an unreadable Security-Verify".into(),
        })
    })?;
    negotiate::check_security_verify(sent_server, &verify).map_err(Refusal::VerifyMismatch)
}

/// Checks that the protected REGISTER repeats the first REGISTER's Security-Client.
pub fn check_client_unchanged(msg: &Message, first: &[SecurityMechanism]) -> Result<(), Refusal> {
    let now = mechanisms(msg, &HeaderName::SECURITY_CLIENT).map_err(|_| {
        Refusal::ClientChanged(ListMismatch::MechanismDiffers {
            index: 0,
            expected: sec_header::print_list(first),
            received: "an unreadable Security-Client".into(),
        })
    })?;
    negotiate::check_security_client_unchanged(first, &now).map_err(Refusal::ClientChanged)
}
