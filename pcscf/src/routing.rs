//! Routing decisions and edits for requests other than REGISTER (TS 24.229 §5.2.6): the
//! asserted identity of originating requests, the Service-Route, the flow of terminating
//! requests, NAT contact aliases (as Kamailio's nathelper does) and what must not reach a phone.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use imslab_sip::header::Transport;
use imslab_sip::{Contact, HeaderName, Host, Message, Method, NameAddr, Uri};

use crate::flow::{Flow, FlowKey};
use crate::registrations::{Registration, canonical_uri, same_identity};

/// Methods that create a dialog, which the P-CSCF Record-Routes (TS 24.229 §5.2.6.3.3).
pub fn is_dialog_forming(m: &Method) -> bool {
    matches!(m, Method::Invite | Method::Subscribe | Method::Refer)
}

/// Whether the request is inside a dialog (its To has a tag).
pub fn in_dialog(req: &Message) -> bool {
    req.to_header().ok().is_some_and(|t| t.tag().is_some())
}

/// The flow named by the top Route's user part, if that Route is the P-CSCF's own Path entry
/// at `me` (host and port) with a valid token. Call before the proxy core pops the Route.
pub fn route_token(req: &Message, me: SocketAddr, key: &FlowKey, boot: u32) -> Option<Flow> {
    let top = req.routes().next()?.ok()?;
    let sip = top.uri.as_sip()?;
    let at_me =
        matches!(sip.host, Host::Ip(ip) if ip == me.ip()) && sip.port_or_default() == me.port();
    if !at_me {
        return None;
    }
    key.decode(sip.user.as_deref()?, boot)
}

/// The flows named by the tokens of the consecutive top Routes that are the P-CSCF's own
/// (`me`, or its protected ports `other_ports`): a dialog between two phones of this
/// P-CSCF whose other hops did not Record-Route has both phones' entries in a row. Call before
/// the proxy core pops them.
pub fn route_flows(
    req: &Message,
    me: SocketAddr,
    other_ports: [u16; 2],
    key: &FlowKey,
    boot: u32,
) -> Vec<Flow> {
    let mut out = Vec::new();
    for r in req.routes() {
        let Ok(r) = r else { break };
        let Some(sip) = r.uri.as_sip() else { break };
        let port = sip.port_or_default();
        let ours = matches!(sip.host, Host::Ip(ip) if ip == me.ip())
            && (port == me.port() || other_ports.contains(&port));
        if !ours {
            break;
        }
        if let Some(f) = sip.user.as_deref().and_then(|u| key.decode(u, boot))
            && !out.contains(&f)
        {
            out.push(f);
        }
    }
    out
}

/// Sets P-Asserted-Identity on a request from a registered phone (TS 24.229 §5.2.6.3.1): the
/// P-Preferred-Identity when it belongs to the implicit registration set, else the default
/// public identity. P-Preferred-Identity and any P-Asserted-Identity the phone sent are
/// removed. Returns the asserted identity.
pub fn assert_identity(req: &mut Message, reg: &Registration) -> String {
    let preferred = req
        .typed_all::<NameAddr<'_>>(&HeaderName::P_PREFERRED_IDENTITY)
        .filter_map(Result::ok)
        .map(|n| n.uri.to_string())
        .find(|u| reg.owns_identity(u));
    let identity = preferred.unwrap_or_else(|| reg.default_identity().to_owned());
    req.remove_header(&HeaderName::P_PREFERRED_IDENTITY);
    req.remove_header(&HeaderName::P_ASSERTED_IDENTITY);
    let _ = req.push_header(HeaderName::P_ASSERTED_IDENTITY, format!("<{identity}>"));
    identity
}

/// Makes the Route set of an initial request equal the registration's Service-Route
/// (TS 24.229 §5.2.6.3.2: a preloaded route that differs is replaced). The proxy core has
/// already removed the P-CSCF's own entries. Returns whether it changed.
pub fn enforce_service_route(req: &mut Message, reg: &Registration) -> bool {
    let current: Vec<Option<String>> = req
        .routes()
        .map(|r| r.ok().and_then(|n| canonical_uri(&n.uri.to_string())))
        .collect();
    let wanted: Vec<Option<String>> = reg.service_route.iter().map(|r| canonical_uri(r)).collect();
    if current == wanted {
        return false;
    }
    req.remove_header(&HeaderName::ROUTE);
    for r in &reg.service_route {
        let _ = req.push_header(HeaderName::ROUTE, r.clone());
    }
    true
}

/// Removes what stays inside the trust domain before a message reaches a phone (TS 24.229
/// §5.2.6.4): P-Charging-Vector and P-Charging-Function-Addresses.
pub fn strip_toward_phone(msg: &mut Message) {
    msg.remove_header(&HeaderName::P_CHARGING_VECTOR);
    msg.remove_header(&HeaderName::P_CHARGING_FUNCTION_ADDRESSES);
}

/// Requests above this many bytes go over TCP (RFC 3261 §18.1.1).
pub const UDP_SIZE_LIMIT: usize = 1300;

/// Edits a request the proxy core built toward a phone over its SAs (TS 24.229 §5.2.6.3.3,
/// TS 33.203 §7.1): the top Via shows `transport` and the P-CSCF's protected client port (port-c), where the
/// phone answers; a Record-Route entry of the P-CSCF on top (`me`, unprotected) gets a twin
/// with the protected server port (port-s) above it, so the phone's route set names port-s
/// while the core keeps reaching `me`. `None` when nothing needed changing or the bytes do
/// not parse.
pub fn protect_toward_phone(
    bytes: &[u8],
    me: SocketAddr,
    port_c: u16,
    port_s: u16,
    transport: Transport,
) -> Option<Message> {
    use imslab_sip::header::{TypedHeader as _, Via};
    let mut msg = Message::parse(bytes.to_vec()).ok()?;
    if !msg.is_request() {
        return None;
    }
    let mut changed = false;
    let top = msg.header_str(&HeaderName::VIA)?.ok()?.to_owned();
    let first = top.split(',').next()?.trim().to_owned();
    let via = Via::parse_value(&first, "Via").ok()?;
    if via.port_or_default() == me.port() && matches!(via.host, Host::Ip(ip) if ip == me.ip()) {
        let mut v = via.into_owned();
        v.port = Some(port_c);
        v.transport = transport;
        msg.pop_first_value(&HeaderName::VIA)?;
        let _ = msg.prepend_header(HeaderName::VIA, v.to_string());
        changed = true;
    }
    let twin = msg
        .record_routes()
        .next()
        .and_then(Result::ok)
        .and_then(|rr| {
            let sip = rr.uri.as_sip()?;
            let ours = matches!(sip.host, Host::Ip(ip) if ip == me.ip())
                && sip.port_or_default() == me.port();
            if !ours {
                return None;
            }
            let mut twin = rr.clone();
            if let Uri::Sip(u) = &mut twin.uri {
                u.port = Some(port_s);
            }
            Some(twin.to_string())
        });
    if let Some(twin) = twin {
        let _ = msg.prepend_header(HeaderName::RECORD_ROUTE, twin);
        changed = true;
    }
    changed.then_some(msg)
}

/// Kamailio's transport numbers in `alias=ip~port~t`.
fn alias_proto(t: &Transport) -> u8 {
    match t {
        Transport::Tcp => 2,
        Transport::Tls => 3,
        Transport::Sctp => 4,
        Transport::Ws => 5,
        Transport::Wss => 6,
        _ => 1,
    }
}

fn alias_transport(p: &str) -> Option<Transport> {
    Some(match p {
        "1" => Transport::Udp,
        "2" => Transport::Tcp,
        "3" => Transport::Tls,
        "4" => Transport::Sctp,
        "5" => Transport::Ws,
        "6" => Transport::Wss,
        _ => return None,
    })
}

/// The `alias` value for a source address and transport: `ip~port~t`.
pub fn alias_value(source: SocketAddr, transport: &Transport) -> String {
    format!(
        "{}~{}~{}",
        source.ip(),
        source.port(),
        alias_proto(transport)
    )
}

/// Parses an `alias` value.
pub fn parse_alias(v: &str) -> Option<(SocketAddr, Transport)> {
    let mut it = v.split('~');
    let ip: IpAddr = it.next()?.trim_matches(['[', ']']).parse().ok()?;
    let port: u16 = it.next()?.parse().ok()?;
    let t = alias_transport(it.next()?)?;
    Some((SocketAddr::new(ip, port), t))
}

/// Whether a phone's Contact needs a NAT alias: its address is not the one the message came
/// from (NAT), or the phone is on WebSocket, whose Contact host is not reachable (RFC 7118 §5).
pub fn needs_alias(contact: &Uri<'_>, source: SocketAddr, transport: &Transport) -> bool {
    if matches!(transport, Transport::Ws | Transport::Wss) {
        return true;
    }
    let Some(sip) = contact.as_sip() else {
        return false;
    };
    match sip.host {
        Host::Ip(ip) => ip != source.ip() || sip.port_or_default() != source.port(),
        Host::Name(_) => true,
    }
}

/// Adds `;alias=ip~port~t` to every Contact URI that needs one (Kamailio `add_contact_alias`),
/// so requests the core sends back to that contact reach the phone through its NAT binding.
/// Returns `(contact, aliased contact)` for the first one changed.
pub fn add_contact_alias(
    msg: &mut Message,
    source: SocketAddr,
    transport: &Transport,
) -> Option<(String, String)> {
    let contacts: Vec<Contact<'static>> = msg
        .contacts()
        .filter_map(Result::ok)
        .map(Contact::into_owned)
        .collect();
    if contacts.is_empty() {
        return None;
    }
    let alias = alias_value(source, transport);
    let mut first = None;
    let mut out = Vec::with_capacity(contacts.len());
    let mut changed = false;
    for c in contacts {
        match c {
            Contact::Addr(mut a) if needs_alias(&a.uri, source, transport) => {
                let before = a.uri.to_string();
                if let Uri::Sip(u) = &mut a.uri
                    && !u.params.contains("alias")
                {
                    u.params.set("alias", Some(Cow::Owned(alias.clone())));
                    changed = true;
                    if first.is_none() {
                        first = Some((before, a.uri.to_string()));
                    }
                }
                out.push(a.to_string());
            }
            Contact::Addr(a) => out.push(a.to_string()),
            Contact::Wildcard => out.push("*".into()),
        }
    }
    if changed {
        msg.remove_header(&HeaderName::CONTACT);
        for v in out {
            let _ = msg.push_header(HeaderName::CONTACT, v);
        }
    }
    first
}

/// Removes `alias` parameters from every Contact URI (the 200 OK to REGISTER going back to the
/// phone shows its contacts as it sent them).
pub fn strip_contact_aliases(msg: &mut Message) {
    let contacts: Vec<Contact<'static>> = msg
        .contacts()
        .filter_map(Result::ok)
        .map(Contact::into_owned)
        .collect();
    let mut changed = false;
    let out: Vec<String> = contacts
        .into_iter()
        .map(|c| match c {
            Contact::Addr(mut a) => {
                if let Uri::Sip(u) = &mut a.uri {
                    changed |= u.params.remove("alias");
                }
                a.to_string()
            }
            Contact::Wildcard => "*".into(),
        })
        .collect();
    if changed {
        msg.remove_header(&HeaderName::CONTACT);
        for v in out {
            let _ = msg.push_header(HeaderName::CONTACT, v);
        }
    }
}

/// Removes an `alias` parameter from the Request-URI (Kamailio `handle_ruri_alias`); returns
/// the new Request-URI and the aliased address and transport.
pub fn take_ruri_alias(req: &Message) -> Option<(String, SocketAddr, Transport)> {
    let ruri = req.request_uri_str()?;
    let Uri::Sip(mut u) = Uri::parse(ruri).ok()? else {
        return None;
    };
    let (addr, t) = parse_alias(u.params.value("alias")?)?;
    u.params.remove("alias");
    Some((Uri::Sip(u).to_string(), addr, t))
}

/// Whether the request's Request-URI names the phone's contact (with or without alias).
pub fn ruri_is_contact(req: &Message, reg: &Registration) -> bool {
    req.request_uri_str().is_some_and(|u| {
        same_identity(u, &reg.key.contact)
            || reg
                .contact_alias
                .as_deref()
                .is_some_and(|a| same_identity(u, a))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(contact: &str) -> Message {
        Message::parse(
            format!(
                "REGISTER sip:ims.example SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK1\r\n\
                 From: <sip:a@ims.example>;tag=1\r\nTo: <sip:a@ims.example>\r\nCall-ID: c\r\n\
                 CSeq: 1 REGISTER\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn websocket_contact_gets_an_alias_that_round_trips() {
        let mut m = msg("<sip:a@df7jal23ls0d.invalid;transport=ws>;expires=600");
        let src: SocketAddr = "192.0.2.7:53211".parse().unwrap();
        let (before, after) = add_contact_alias(&mut m, src, &Transport::Ws).unwrap();
        assert_eq!(before, "sip:a@df7jal23ls0d.invalid;transport=ws");
        assert!(after.ends_with(";alias=192.0.2.7~53211~5"), "{after}");
        let c = m
            .header_str(&HeaderName::CONTACT)
            .unwrap()
            .unwrap()
            .to_owned();
        assert!(c.contains("alias=192.0.2.7~53211~5>;expires=600"), "{c}");
        strip_contact_aliases(&mut m);
        assert_eq!(
            m.header_str(&HeaderName::CONTACT).unwrap().unwrap(),
            "<sip:a@df7jal23ls0d.invalid;transport=ws>;expires=600"
        );
    }

    #[test]
    fn contact_matching_the_source_gets_no_alias() {
        let mut m = msg("<sip:a@127.0.0.1:5061>");
        let src: SocketAddr = "127.0.0.1:5061".parse().unwrap();
        assert_eq!(add_contact_alias(&mut m, src, &Transport::Udp), None);
    }

    #[test]
    fn ruri_alias_names_the_nat_binding() {
        let m = Message::parse(
            &b"INVITE sip:a@10.0.0.5:5060;alias=198.51.100.9~40000~1 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:6060;branch=z9hG4bK2\r\nFrom: <sip:b@x>;tag=9\r\n\
            To: <sip:a@x>\r\nCall-ID: d\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"[..],
        )
        .unwrap();
        let (ruri, addr, t) = take_ruri_alias(&m).unwrap();
        assert_eq!(ruri, "sip:a@10.0.0.5:5060");
        assert_eq!(addr, "198.51.100.9:40000".parse::<SocketAddr>().unwrap());
        assert_eq!(t, Transport::Udp);
    }
}
