//! Edits the P-CSCF makes to REGISTER requests and their responses (TS 24.229 §5.2.2.1), as
//! pure functions over [`Message`].

use imslab_sip::header::Auth;
use imslab_sip::{Contact, HeaderName, Message, NameAddr};
use imslab_types::{Ck, Ik, Impi, Impu};

use crate::sec_agree;

/// Default registration lifetime when neither the 200 OK's Contact nor Expires gives one
/// (RFC 3261 §10.2.1.1).
pub const DEFAULT_EXPIRES: u32 = 3600;

/// The identities and contact of a REGISTER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterParts {
    /// To: the public identity being registered.
    pub impu: Impu,
    /// Authorization username, the private identity.
    pub impi: Option<Impi>,
    /// The first Contact URI; `None` for a query (no Contact) or `Contact: *`.
    pub contact: Option<String>,
    /// `Contact: *`: remove every binding.
    pub wildcard: bool,
    /// The expiry the phone asked for (Contact `expires`, else Expires).
    pub expires: Option<u32>,
}

/// Reads To, Authorization and Contact. `None` when To is not a valid public identity.
pub fn parts(req: &Message) -> Option<RegisterParts> {
    let to = req.to_header().ok()?;
    let impu = Impu::new(to.uri.to_string()).ok()?;
    let impi = req
        .typed::<Auth<'_>>(&HeaderName::AUTHORIZATION)
        .and_then(Result::ok)
        .and_then(|a| a.username().and_then(|u| Impi::new(u).ok()));
    let mut contact = None;
    let mut wildcard = false;
    let mut expires = None;
    for c in req.contacts().filter_map(Result::ok) {
        match &c {
            Contact::Wildcard => wildcard = true,
            Contact::Addr(a) => {
                if contact.is_none() {
                    contact = Some(a.uri.to_string());
                    expires = c.expires().ok().flatten();
                }
            }
        }
    }
    let expires = expires.or_else(|| req.expires().ok().flatten());
    Some(RegisterParts {
        impu,
        impi,
        contact,
        wildcard,
        expires,
    })
}

/// Sets `integrity-protected` in every Authorization header (TS 24.229 §5.2.2.1): `no` for an
/// unprotected REGISTER, `yes` for one received over the IPsec SAs.
pub fn set_integrity_protected(req: &mut Message, value: &str) {
    let auths: Vec<String> = req
        .typed_all::<Auth<'_>>(&HeaderName::AUTHORIZATION)
        .filter_map(Result::ok)
        .map(|mut a| {
            a.set_token("integrity-protected", value.to_owned());
            a.to_string()
        })
        .collect();
    if auths.is_empty() {
        return;
    }
    req.remove_header(&HeaderName::AUTHORIZATION);
    for a in auths {
        let _ = req.push_header(HeaderName::AUTHORIZATION, a);
    }
}

/// Adds the P-CSCF's Path entry on top (RFC 3327 §5, TS 24.229 §5.2.2.1), with the flow
/// token as user part, and makes Supported and Require name `path`.
pub fn add_path(req: &mut Message, token: &str, host_port: &str) {
    let _ = req.prepend_header(HeaderName::PATH, format!("<sip:{token}@{host_port};lr>"));
    sec_agree::add_option_tag(req, &HeaderName::SUPPORTED, "path");
    sec_agree::add_option_tag(req, &HeaderName::REQUIRE, "path");
}

/// Sets P-Visited-Network-ID (RFC 7315 §4.3), quoted unless it is a token.
pub fn set_visited_network(req: &mut Message, id: &str) {
    let token = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    let value = if token {
        id.to_owned()
    } else {
        format!("\"{}\"", id.replace(['"', '\\'], ""))
    };
    let _ = req.set_header(HeaderName::P_VISITED_NETWORK_ID, value);
}

/// Sets P-Charging-Vector with a fresh icid (RFC 7315 §4.6, TS 24.229 §5.2.2.1); whatever the
/// phone sent is replaced.
pub fn set_charging_vector(req: &mut Message, icid: &str, generated_at: &str) {
    let _ = req.set_header(
        HeaderName::P_CHARGING_VECTOR,
        format!("icid-value={icid};icid-generated-at={generated_at}"),
    );
}

/// Removes `ck` and `ik` from every WWW-Authenticate (TS 24.229 §5.2.2.1: they must not reach
/// the phone) and returns the first pair found.
pub fn take_ck_ik(resp: &mut Message) -> Option<(Ck, Ik)> {
    let mut keys = None;
    let mut changed = false;
    let mut values = Vec::new();
    for a in resp
        .typed_all::<Auth<'_>>(&HeaderName::WWW_AUTHENTICATE)
        .filter_map(Result::ok)
    {
        let mut a = a.into_owned();
        let ck = a.ck().map(str::to_owned);
        let ik = a.ik().map(str::to_owned);
        if ck.is_some() || ik.is_some() {
            changed = true;
            a.remove("ck");
            a.remove("ik");
        }
        if keys.is_none()
            && let (Some(ck), Some(ik)) = (ck, ik)
            && let (Ok(ck), Ok(ik)) = (Ck::from_hex(&ck), Ik::from_hex(&ik))
        {
            keys = Some((ck, ik));
        }
        values.push(a.to_string());
    }
    if changed {
        resp.remove_header(&HeaderName::WWW_AUTHENTICATE);
        for v in values {
            let _ = resp.push_header(HeaderName::WWW_AUTHENTICATE, v);
        }
    }
    keys
}

/// The expiry granted to `contact` by a 200 OK to REGISTER: its Contact `expires`, else the
/// Expires header, else `requested`, else [`DEFAULT_EXPIRES`]. `None` when the 200 OK does not
/// list the contact (it is not registered, RFC 3261 §10.2.4).
pub fn granted_expiry(
    resp: &Message,
    contact: &str,
    alias: Option<&str>,
    requested: Option<u32>,
) -> Option<u32> {
    let mine = |uri: &str| {
        crate::registrations::same_identity(uri, contact)
            || alias.is_some_and(|a| crate::registrations::same_identity(uri, a))
    };
    let c = resp
        .contacts()
        .filter_map(Result::ok)
        .find(|c| c.addr().is_some_and(|a| mine(&a.uri.to_string())))?;
    Some(
        c.expires()
            .ok()
            .flatten()
            .or_else(|| resp.expires().ok().flatten())
            .or(requested)
            .unwrap_or(DEFAULT_EXPIRES),
    )
}

/// Service-Route values of a 200 OK, in order, as name-addr text.
pub fn service_route(resp: &Message) -> Vec<String> {
    resp.typed_all::<NameAddr<'_>>(&HeaderName::SERVICE_ROUTE)
        .filter_map(Result::ok)
        .map(|n| n.to_string())
        .collect()
}

/// P-Associated-URI values of a 200 OK: the URIs, default identity first.
pub fn associated_uris(resp: &Message) -> Vec<String> {
    resp.typed_all::<NameAddr<'_>>(&HeaderName::P_ASSOCIATED_URI)
        .filter_map(Result::ok)
        .map(|n| n.uri.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE: &str = "SIP/2.0 401 Unauthorized\r\n\
        Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK1\r\n\
        From: <sip:alice@ims.example>;tag=1\r\nTo: <sip:alice@ims.example>;tag=2\r\n\
        Call-ID: c\r\nCSeq: 1 REGISTER\r\n\
        WWW-Authenticate: Digest realm=\"ims.example\", nonce=\"bm9uY2U=\", algorithm=AKAv1-MD5, \
        qop=\"auth\", ck=\"00112233445566778899aabbccddeeff\", ik=\"ffeeddccbbaa99887766554433221100\"\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn ck_and_ik_are_taken_out_of_the_401_and_returned() {
        let mut m = Message::parse(CHALLENGE.as_bytes()).unwrap();
        let (ck, ik) = take_ck_ik(&mut m).unwrap();
        assert_eq!(ck.expose_hex(), "00112233445566778899aabbccddeeff");
        assert_eq!(ik.expose_hex(), "ffeeddccbbaa99887766554433221100");
        let out = String::from_utf8(m.to_bytes().to_vec()).unwrap();
        assert!(!out.contains("ck=") && !out.contains("ik="), "{out}");
        assert!(out.contains("nonce=\"bm9uY2U=\""), "{out}");
        assert!(out.contains("qop=\"auth\""), "{out}");
    }

    #[test]
    fn path_carries_the_token_and_requires_path() {
        let mut m = Message::parse(
            &b"REGISTER sip:ims.example SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:a@ims.example>;tag=1\r\nTo: <sip:a@ims.example>\r\nCall-ID: c\r\n\
            CSeq: 1 REGISTER\r\nSupported: gruu\r\nContent-Length: 0\r\n\r\n"[..],
        )
        .unwrap();
        add_path(&mut m, "0abc", "127.0.0.1:5060");
        assert_eq!(
            m.header_str(&HeaderName::PATH).unwrap().unwrap(),
            "<sip:0abc@127.0.0.1:5060;lr>"
        );
        assert!(sec_agree::has_option_tag(&m, &HeaderName::REQUIRE, "path"));
        assert!(sec_agree::has_option_tag(
            &m,
            &HeaderName::SUPPORTED,
            "path"
        ));
        assert!(sec_agree::has_option_tag(
            &m,
            &HeaderName::SUPPORTED,
            "gruu"
        ));
    }
}
