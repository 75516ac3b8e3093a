//! Requests the S-CSCF relays itself to the breakout SIP trunk so that it can answer the
//! trunk's digest challenge (RFC 3261 §22.2 and §22.3, RFC 2617 MD5 with `qop=auth`) with the
//! credentials of `scscf.breakout_username` / `scscf.breakout_password`.
//!
//! Standalone requests (MESSAGE, OPTIONS, INFO outside a dialog...) are relayed: the S-CSCF
//! sends [`relay_request`] as a client, answers one 401/407 with [`answer_challenge`], and
//! returns the trunk's final answer to the phone with [`relay_response`].
//!
//! INVITEs to the trunk ([`is_trunk_invite`]) are proxied with Record-Route and with the
//! proxy core's challenge answering (`imslab_sip::proxy::DecideOptions::answer_challenges`):
//! the core ACKs the 401/407, the S-CSCF builds the INVITE again with [`answer_challenge`]
//! (same Call-ID and From tag, CSeq + 1, Proxy-Authorization/Authorization) and the core
//! sends it on a new branch, the way Kamailio's `uac_auth()` does in a failure route. The
//! dialog's CSeq offset is then kept by [`crate::dialogs::BreakoutDialogs`]. A second
//! challenge goes back to the phone and ends the call.

use bytes::Bytes;
use imslab_aka::{DigestRequest, Ha1, NonceCount, Qop, QopParams};
use imslab_sip::header::Auth;
use imslab_sip::{HeaderName, Message, StatusCode, TypedHeader as _};

/// The trunk's digest credentials. The password never appears in Debug output.
#[derive(Clone)]
pub struct TrunkCredentials {
    username: String,
    password: String,
}

impl std::fmt::Debug for TrunkCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkCredentials")
            .field("username", &self.username)
            .field("password", &"..")
            .finish()
    }
}

impl TrunkCredentials {
    /// Credentials for the trunk.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }
}

/// The request the S-CSCF sends as a client for `original`: its Vias removed (the SIP
/// element adds its own) and Max-Forwards decremented.
pub fn relay_request(original: &Message) -> Message {
    let mut m = original.clone();
    m.remove_header(&HeaderName::VIA);
    let mf = match m.max_forwards() {
        Ok(Some(n)) => n.saturating_sub(1),
        _ => 70,
    };
    let _ = m.set_header(HeaderName::MAX_FORWARDS, mf.to_string());
    m
}

/// `request` again with the next CSeq and an Authorization (401) or Proxy-Authorization
/// (407) answering the challenge of `challenge`. `None` when `challenge` is not a 401/407
/// with a usable MD5 digest challenge.
pub fn answer_challenge(
    request: &Message,
    challenge: &Message,
    creds: &TrunkCredentials,
    cnonce: &str,
) -> Option<Message> {
    let (ask, name, answer) = match challenge.status()? {
        StatusCode::UNAUTHORIZED => (
            HeaderName::WWW_AUTHENTICATE,
            "WWW-Authenticate",
            HeaderName::AUTHORIZATION,
        ),
        StatusCode::PROXY_AUTHENTICATION_REQUIRED => (
            HeaderName::PROXY_AUTHENTICATE,
            "Proxy-Authenticate",
            HeaderName::PROXY_AUTHORIZATION,
        ),
        _ => return None,
    };
    let text = challenge.header_str(&ask)?.ok()?;
    let ch = Auth::parse_value(text, name).ok()?;
    if ch
        .get("algorithm")
        .is_some_and(|a| !a.eq_ignore_ascii_case("MD5"))
    {
        return None;
    }
    let realm = ch.realm()?;
    let nonce = ch.nonce()?;
    let auth_qop = ch
        .qop()
        .is_some_and(|q| q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth")));
    let method = request.method()?.as_str().to_owned();
    let uri = request.request_uri_str()?.to_owned();
    let ha1 = Ha1::new(&creds.username, realm, creds.password.as_bytes());
    let qop = auth_qop.then(|| QopParams {
        qop: Qop::Auth,
        nc: NonceCount::new(1),
        cnonce,
    });
    let resp = imslab_aka::digest::response(
        &ha1,
        &DigestRequest {
            nonce,
            method: &method,
            uri: &uri,
            qop,
            body: request.body(),
        },
    );
    let mut value = format!(
        "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{resp}\", algorithm=MD5",
        creds.username
    );
    if let Some(o) = ch.opaque() {
        value.push_str(&format!(", opaque=\"{o}\""));
    }
    if auth_qop {
        value.push_str(&format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\""));
    }
    let cseq = request.cseq().ok()?;
    let mut again = request.clone();
    let _ = again.set_header(
        HeaderName::CSEQ,
        format!("{} {}", cseq.seq.wrapping_add(1), cseq.method.as_str()),
    );
    again.remove_header(&answer);
    let _ = again.push_header(answer, value);
    Some(again)
}

/// Whether `forwarded` (the request of a forward decision) is an initial INVITE to the
/// breakout trunk `trunk` (`scscf.breakout`): its top Route names the trunk's host and port.
pub fn is_trunk_invite(trunk: &str, forwarded: &Message) -> bool {
    if forwarded.method() != Some(&imslab_sip::Method::Invite)
        || forwarded
            .to_header()
            .ok()
            .is_some_and(|t| t.tag().is_some())
    {
        return false;
    }
    let text = trunk.trim().trim_matches(['<', '>']);
    let Some(want) = imslab_sip::Uri::parse(text).ok().and_then(|u| {
        u.as_sip()
            .map(|s| (s.host.to_string().to_ascii_lowercase(), s.port_or_default()))
    }) else {
        return false;
    };
    forwarded
        .routes()
        .next()
        .and_then(Result::ok)
        .and_then(|r| {
            r.uri
                .as_sip()
                .map(|s| (s.host.to_string().to_ascii_lowercase(), s.port_or_default()))
        })
        .is_some_and(|top| top == want)
}

/// The response to `original` carrying the trunk's final `answer`: its status and reason
/// phrase, the To tag, and the body with its Content-Type.
pub fn relay_response(original: &Message, answer: &Message) -> Message {
    let status = answer.status().unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
    let reason = answer
        .reason_phrase()
        .map(|r| String::from_utf8_lossy(r).into_owned());
    let base = original
        .response(status, None)
        .unwrap_or_else(|_| Message::new_response(status, None));
    let mut r = Message::new_response(status, reason.as_deref());
    for f in base.fields() {
        if f.name() == HeaderName::TO
            && let Some(to) = answer.header(&HeaderName::TO)
        {
            let _ = r.push_header(HeaderName::TO, Bytes::copy_from_slice(to));
            continue;
        }
        if f.name() == HeaderName::CONTENT_LENGTH {
            continue;
        }
        let _ = r.push_header(f.name(), Bytes::copy_from_slice(f.value()));
    }
    let ct = answer
        .header_str(&HeaderName::CONTENT_TYPE)
        .and_then(Result::ok)
        .map(str::to_owned);
    let _ = r.set_body(ct.as_deref(), Bytes::copy_from_slice(answer.body()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "MESSAGE tel:+4930123456 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp1\r\n\
        Max-Forwards: 68\r\nRoute: <sip:trunk.example.net;lr>\r\n\
        From: <sip:alice@ims.example>;tag=a1\r\nTo: <tel:+4930123456>\r\n\
        Call-ID: m1@ue\r\nCSeq: 7 MESSAGE\r\nContent-Type: text/plain\r\n\
        Content-Length: 2\r\n\r\nhi";

    fn challenge(status: u16, header: &str, value: &str) -> Message {
        let reason = if status == 401 {
            "Unauthorized"
        } else {
            "Proxy Authentication Required"
        };
        Message::parse(
            format!(
                "SIP/2.0 {status} {reason}\r\nVia: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bKs1\r\n\
                 From: <sip:alice@ims.example>;tag=a1\r\nTo: <tel:+4930123456>;tag=t1\r\n\
                 Call-ID: m1@ue\r\nCSeq: 7 MESSAGE\r\n{header}: {value}\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        )
        .expect("parses")
    }

    #[test]
    fn a_407_is_answered_with_proxy_authorization_that_the_trunk_can_verify() {
        let req = relay_request(&Message::parse(MESSAGE.as_bytes().to_vec()).expect("parses"));
        assert_eq!(req.vias().count(), 0);
        assert_eq!(req.max_forwards().ok().flatten(), Some(67));
        let ch = challenge(
            407,
            "Proxy-Authenticate",
            "Digest realm=\"trunk\", nonce=\"n0nce\", qop=\"auth\", algorithm=MD5, opaque=\"op\"",
        );
        let creds = TrunkCredentials::new("lab", "s3cret");
        let again = answer_challenge(&req, &ch, &creds, "c0ffee").expect("answered");
        assert_eq!(again.cseq().expect("cseq").seq, 8);
        let v = again
            .header_str(&HeaderName::PROXY_AUTHORIZATION)
            .expect("header")
            .expect("utf-8");
        let auth = Auth::parse_value(v, "Proxy-Authorization").expect("parses");
        assert_eq!(auth.get("opaque"), Some("op"));
        assert_eq!(auth.get("nc"), Some("00000001"));
        let ha1 = Ha1::new("lab", "trunk", b"s3cret");
        imslab_aka::digest::verify(
            &ha1,
            &DigestRequest {
                nonce: "n0nce",
                method: "MESSAGE",
                uri: "tel:+4930123456",
                qop: Some(QopParams {
                    qop: Qop::Auth,
                    nc: NonceCount::new(1),
                    cnonce: "c0ffee",
                }),
                body: b"hi",
            },
            auth.get("response").expect("response"),
        )
        .expect("the trunk's own check accepts it");
        assert!(!format!("{creds:?}").contains("s3cret"));
    }

    #[test]
    fn a_401_without_qop_gets_authorization_and_other_algorithms_are_not_answered() {
        let req = relay_request(&Message::parse(MESSAGE.as_bytes().to_vec()).expect("parses"));
        let creds = TrunkCredentials::new("lab", "s3cret");
        let ch = challenge(
            401,
            "WWW-Authenticate",
            "Digest realm=\"trunk\", nonce=\"n1\"",
        );
        let again = answer_challenge(&req, &ch, &creds, "c").expect("answered");
        let v = again
            .header_str(&HeaderName::AUTHORIZATION)
            .expect("header")
            .expect("utf-8");
        assert!(!v.contains("qop"), "{v}");
        let ch = challenge(
            401,
            "WWW-Authenticate",
            "Digest realm=\"trunk\", nonce=\"n1\", algorithm=SHA-256",
        );
        assert!(answer_challenge(&req, &ch, &creds, "c").is_none());
        let ok = challenge(401, "X-Other", "x");
        assert!(answer_challenge(&req, &ok, &creds, "c").is_none());
    }

    #[test]
    fn only_initial_invites_routed_to_the_trunk_are_trunk_invites() {
        let invite = |route: &str, to_tag: &str| {
            Message::parse(
                MESSAGE
                    .replace("MESSAGE", "INVITE")
                    .replace("<sip:trunk.example.net;lr>", route)
                    .replace(
                        "To: <tel:+4930123456>",
                        &format!("To: <tel:+4930123456>{to_tag}"),
                    )
                    .into_bytes(),
            )
            .expect("parses")
        };
        let trunk = "sip:trunk.example.net";
        assert!(is_trunk_invite(
            trunk,
            &invite("<sip:trunk.example.net;lr>", "")
        ));
        assert!(is_trunk_invite(
            "<sip:TRUNK.example.net:5060;lr>",
            &invite("<sip:trunk.example.net;lr>", "")
        ));
        assert!(!is_trunk_invite(
            trunk,
            &invite("<sip:icscf.example.net;lr>", "")
        ));
        assert!(!is_trunk_invite(
            trunk,
            &invite("<sip:trunk.example.net;lr>", ";tag=t9")
        ));
        let message = Message::parse(MESSAGE.as_bytes().to_vec()).expect("parses");
        assert!(!is_trunk_invite(trunk, &message));
    }

    #[test]
    fn the_trunks_answer_goes_back_with_the_original_via_and_its_to_tag() {
        let original = Message::parse(MESSAGE.as_bytes().to_vec()).expect("parses");
        let mut answer = challenge(401, "X-Other", "x");
        answer = {
            let text = String::from_utf8_lossy(&answer.to_bytes())
                .replace("401 Unauthorized", "202 Accepted");
            Message::parse(text.into_bytes()).expect("parses")
        };
        let r = relay_response(&original, &answer);
        assert_eq!(r.status(), Some(StatusCode::ACCEPTED));
        assert_eq!(
            r.header_str(&HeaderName::VIA).expect("via").expect("utf-8"),
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp1"
        );
        assert!(
            r.header_str(&HeaderName::TO)
                .expect("to")
                .expect("utf-8")
                .contains("tag=t1")
        );
    }
}
