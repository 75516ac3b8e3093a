//! The I-CSCF's decisions as pure functions (TS 24.229 §5.3.1 and §5.3.2, TS 29.228 §6.1.1,
//! §6.1.4, §6.7): the UAR for a REGISTER, the LIR for a terminating request, the choice of
//! S-CSCF from Server-Name or Server-Capabilities, and the SIP answer for each HSS refusal.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use imslab_diameter::cx::{CxResult, Lia, Lir, ServerCapabilities, Uaa, Uar};
use imslab_diameter::enums::UserAuthorizationType;
use imslab_diameter::{ExperimentalResultCode as Exp, Origin, ResultCode};
use imslab_sip::header::{Auth, Contact, PVisitedNetworkId};
use imslab_sip::proxy::{Decision, Target};
use imslab_sip::transaction::Peer;
use imslab_sip::{HeaderName, Message, Method, StatusCode, Uri};
use imslab_sip_io::TransportKind;
use imslab_sip_node::resolve_uri;
use imslab_types::{DiameterIdentity, Impi, Impu, Realm};

use crate::Error;

/// An S-CSCF the I-CSCF may choose (`icscf.scscfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScscfEntry {
    /// Its SIP URI, as the HSS names it in Server-Name.
    pub uri: String,
    /// Its capabilities.
    pub capabilities: Vec<u32>,
}

/// The I-CSCF's settings, validated ([`Settings::from_config`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Origin-Host and Origin-Realm toward the HSS.
    pub origin: Origin,
    /// Destination-Realm of UAR and LIR.
    pub hss_realm: Realm,
    /// Destination-Host of UAR and LIR, if known.
    pub hss_host: Option<DiameterIdentity>,
    /// The home domain: the Visited-Network-Identifier when a REGISTER carries no
    /// P-Visited-Network-ID, and the domain whose identities get an LIR.
    pub home_domain: String,
    /// The S-CSCF table, in preference order.
    pub scscfs: Vec<ScscfEntry>,
    /// Static name resolution for S-CSCF URIs (host name → address).
    pub hosts: HashMap<String, Peer>,
    /// How long a REGISTER waits for the chosen S-CSCF's answer before the I-CSCF fails
    /// over to another one (`icscf.failover_after`, default [`FAILOVER_AFTER`]); used only
    /// when the table has another.
    pub failover_after: Duration,
}

/// Default [`Settings::failover_after`]: well inside the phone's 32 s transaction (Timer F),
/// after its fourth retransmission over UDP.
pub const FAILOVER_AFTER: Duration = Duration::from_secs(4);

impl Settings {
    /// From the `icscf:` section, the home domain and the HSS's Diameter identity.
    pub fn from_config(
        cfg: &imslab_config::IcscfConfig,
        domain: &Realm,
        hss_host: &str,
    ) -> Result<Self, Error> {
        let origin_host =
            DiameterIdentity::new(cfg.origin_host.clone()).map_err(|e| Error::Config {
                key: "icscf.origin_host",
                reason: e.to_string(),
            })?;
        let mut hosts = HashMap::new();
        let mut scscfs = Vec::new();
        for e in &cfg.scscfs {
            let uri = Uri::parse(&e.uri).map_err(|_| Error::Config {
                key: "icscf.scscfs.uri",
                reason: format!("{:?} is not a SIP URI", e.uri),
            })?;
            let sip = uri.as_sip().ok_or_else(|| Error::Config {
                key: "icscf.scscfs.uri",
                reason: format!("{:?} is not a sip: URI", e.uri),
            })?;
            if let Some(addr) = e.address {
                hosts.insert(
                    sip.host.to_string().to_ascii_lowercase(),
                    Peer::new(TransportKind::Udp.to_sip(), addr),
                );
            }
            scscfs.push(ScscfEntry {
                uri: e.uri.clone(),
                capabilities: e.capabilities.clone(),
            });
        }
        Ok(Self {
            origin: Origin {
                host: origin_host,
                realm: domain.clone(),
            },
            hss_realm: domain.clone(),
            hss_host: DiameterIdentity::new(hss_host.to_owned()).ok(),
            home_domain: domain.to_string(),
            scscfs,
            hosts,
            failover_after: Duration::from_secs(u64::from(cfg.failover_after.max(1))),
        })
    }

    /// Adds an address for an S-CSCF host name.
    pub fn with_host(mut self, host: &str, addr: SocketAddr) -> Self {
        self.hosts.insert(
            host.to_ascii_lowercase(),
            Peer::new(TransportKind::Udp.to_sip(), addr),
        );
        self
    }
}

/// A SIP refusal with the reason for the per-UE timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The status to answer.
    pub status: StatusCode,
    /// The reason phrase.
    pub phrase: &'static str,
    /// Why, for the timeline.
    pub reason: String,
}

impl Refusal {
    fn new(status: StatusCode, phrase: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            phrase,
            reason: reason.into(),
        }
    }

    /// The response to `request`.
    pub fn response(&self, request: &Message) -> Message {
        let mut r = Message::new_response(self.status, Some(self.phrase));
        if let Ok(base) = request.response(self.status, None) {
            for f in base.fields() {
                let _ = r.push_header(f.name(), Bytes::copy_from_slice(f.value()));
            }
        }
        r
    }
}

/// The S-CSCF chosen and where to send to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Its URI.
    pub uri: String,
    /// Its transport address.
    pub destination: Peer,
    /// How it was chosen, for the timeline.
    pub how: String,
}

/// The AOR of a URI: scheme, user and host (no port or parameters).
pub fn aor_of(uri: &Uri<'_>) -> Option<Impu> {
    let text = match uri {
        Uri::Sip(s) => {
            let scheme = if s.secure { "sips" } else { "sip" };
            match &s.user {
                Some(u) => format!("{scheme}:{u}@{}", s.host),
                None => format!("{scheme}:{}", s.host),
            }
        }
        Uri::Tel(t) => format!("tel:{}", t.number),
        Uri::Other(_) => return None,
    };
    Impu::new(text).ok()
}

fn derived_impi(impu: &Impu) -> Option<Impi> {
    let rest = impu.as_str().strip_prefix("sip:")?;
    let (user, host) = rest.split_once('@')?;
    Impi::new(format!("{user}@{host}")).ok()
}

/// Whether a REGISTER de-registers (every Contact with expires 0, or `*`): UAR
/// User-Authorization-Type DE_REGISTRATION (TS 29.228 §6.1.1).
fn is_deregistration(msg: &Message) -> bool {
    let header = msg.expires().ok().flatten();
    let mut any = false;
    for c in msg.contacts() {
        let Ok(c) = c else { return false };
        any = true;
        match c {
            Contact::Wildcard => {}
            Contact::Addr(a) => {
                let e = a
                    .params
                    .value("expires")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .or_else(|| header.map(u64::from));
                if e != Some(0) {
                    return false;
                }
            }
        }
    }
    any
}

/// The UAR for a REGISTER (TS 24.229 §5.3.1.2, TS 29.228 §6.1.1): Public-Identity from To,
/// User-Name from the Authorization username (else derived from the public identity),
/// Visited-Network-Identifier from P-Visited-Network-ID (else the home domain).
pub fn uar_for(msg: &Message, s: &Settings, session_id: String) -> Result<Uar, Refusal> {
    let bad = |why: &str| Refusal::new(StatusCode::BAD_REQUEST, "Bad Request", why);
    let to = msg
        .to_header()
        .map_err(|_| bad("To missing or malformed"))?;
    let impu = aor_of(&to.uri).ok_or_else(|| bad("To is not a SIP or tel URI"))?;
    let username = msg
        .typed::<Auth<'_>>(&HeaderName::AUTHORIZATION)
        .and_then(Result::ok)
        .and_then(|a| a.username().map(str::to_owned));
    let impi = match username {
        Some(u) => Impi::new(u).map_err(|_| bad("username is not a private identity"))?,
        None => derived_impi(&impu).ok_or_else(|| {
            Refusal::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "no private identity: the REGISTER has no Authorization username",
            )
        })?,
    };
    let visited = msg
        .typed::<PVisitedNetworkId<'_>>(&HeaderName::P_VISITED_NETWORK_ID)
        .and_then(Result::ok)
        .map(|v| v.value.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| s.home_domain.clone());
    Ok(Uar {
        session_id,
        origin_host: s.origin.host.clone(),
        origin_realm: s.origin.realm.clone(),
        destination_host: s.hss_host.clone(),
        destination_realm: s.hss_realm.clone(),
        user_name: impi,
        supported_features: Vec::new(),
        public_identity: impu,
        visited_network_identifier: Bytes::from(visited),
        user_authorization_type: Some(if is_deregistration(msg) {
            UserAuthorizationType::DE_REGISTRATION
        } else {
            UserAuthorizationType::REGISTRATION
        }),
        uar_flags: None,
        extra: Vec::new(),
        proxy_info: Vec::new(),
        route_record: Vec::new(),
    })
}

/// The LIR for a request that should reach a served user (TS 24.229 §5.3.2.1): an initial
/// request (no To tag, no Route left) other than REGISTER, ACK and CANCEL, for a tel URI or a
/// SIP URI of the home domain. `None`: the request just follows its route.
pub fn lir_for(msg: &Message, s: &Settings, session_id: String) -> Option<Lir> {
    let method = msg.method()?;
    if matches!(method, Method::Register | Method::Ack | Method::Cancel) {
        return None;
    }
    if msg.to_header().ok().is_none_or(|t| t.tag().is_some()) || msg.routes().next().is_some() {
        return None;
    }
    let uri = Uri::parse(msg.request_uri_str()?).ok()?;
    let home = match &uri {
        Uri::Sip(u) => u.host.to_string().eq_ignore_ascii_case(&s.home_domain),
        Uri::Tel(_) => true,
        Uri::Other(_) => false,
    };
    if !home {
        return None;
    }
    let impu = aor_of(&uri)?;
    Some(Lir {
        session_id,
        origin_host: s.origin.host.clone(),
        origin_realm: s.origin.realm.clone(),
        destination_host: s.hss_host.clone(),
        destination_realm: s.hss_realm.clone(),
        originating_request: None,
        supported_features: Vec::new(),
        public_identity: impu,
        user_authorization_type: None,
        session_priority: None,
        extra: Vec::new(),
        proxy_info: Vec::new(),
        route_record: Vec::new(),
    })
}

fn result_text(r: &CxResult) -> String {
    match r {
        CxResult::Base(c) => format!("Result-Code {}", c.0),
        CxResult::Experimental { code, .. } => format!("Experimental-Result-Code {}", code.0),
    }
}

/// The SIP answer for a refused UAR (TS 24.229 §5.3.1.2): 404 for an unknown user, 403 for
/// identities that do not match, a barred identity (5003), roaming not allowed and a
/// de-registration of an unregistered identity, 500 otherwise.
pub fn uar_refusal(r: &CxResult) -> Refusal {
    let text = result_text(r);
    match r {
        CxResult::Experimental { code, .. } => match *code {
            Exp::DIAMETER_ERROR_USER_UNKNOWN => Refusal::new(
                StatusCode::NOT_FOUND,
                "Not Found",
                format!("UAR: user unknown in the HSS ({text})"),
            ),
            Exp::DIAMETER_ERROR_IDENTITIES_DONT_MATCH => Refusal::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("UAR: private and public identity do not belong together ({text})"),
            ),
            Exp::DIAMETER_ERROR_ROAMING_NOT_ALLOWED => Refusal::new(
                StatusCode::FORBIDDEN,
                "Roaming Not Allowed",
                format!("UAR: roaming not allowed from this visited network ({text})"),
            ),
            Exp::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED => Refusal::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("UAR: identity not registered ({text})"),
            ),
            _ => Refusal::new(
                StatusCode::SERVER_INTERNAL_ERROR,
                "Server Internal Error",
                format!("UAR refused ({text})"),
            ),
        },
        CxResult::Base(c) => match *c {
            ResultCode::DIAMETER_AUTHORIZATION_REJECTED => Refusal::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("UAR: authorization rejected, the identity is barred ({text})"),
            ),
            ResultCode::DIAMETER_TOO_BUSY => Refusal::new(
                StatusCode::TEMPORARILY_UNAVAILABLE,
                "HSS Busy",
                format!("UAR: the HSS is too busy ({text})"),
            ),
            _ => Refusal::new(
                StatusCode::SERVER_INTERNAL_ERROR,
                "Server Internal Error",
                format!("UAR refused ({text})"),
            ),
        },
    }
}

/// The SIP answer for a refused LIR (TS 24.229 §5.3.2.1): 404 for an unknown user, 480 for an
/// identity not registered (and without unregistered services) or a busy HSS, 403 when the
/// HSS rejects the authorization (a barred identity), 500 otherwise.
pub fn lir_refusal(r: &CxResult) -> Refusal {
    let text = result_text(r);
    match r {
        CxResult::Experimental { code, .. } if *code == Exp::DIAMETER_ERROR_USER_UNKNOWN => {
            Refusal::new(
                StatusCode::NOT_FOUND,
                "Not Found",
                format!("LIR: user unknown ({text})"),
            )
        }
        CxResult::Experimental { code, .. }
            if *code == Exp::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED =>
        {
            Refusal::new(
                StatusCode::TEMPORARILY_UNAVAILABLE,
                "Temporarily Unavailable",
                format!("LIR: the user is not registered ({text})"),
            )
        }
        CxResult::Base(c) if *c == ResultCode::DIAMETER_TOO_BUSY => Refusal::new(
            StatusCode::TEMPORARILY_UNAVAILABLE,
            "HSS Busy",
            format!("LIR: the HSS is too busy ({text})"),
        ),
        CxResult::Base(c) if *c == ResultCode::DIAMETER_AUTHORIZATION_REJECTED => Refusal::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("LIR: authorization rejected, the identity is barred ({text})"),
        ),
        _ => Refusal::new(
            StatusCode::SERVER_INTERNAL_ERROR,
            "Server Internal Error",
            format!("LIR refused ({text})"),
        ),
    }
}

/// The HSS could not be asked (timeout, no connection).
pub fn hss_unreachable(command: &str, why: &str) -> Refusal {
    Refusal::new(
        StatusCode::TEMPORARILY_UNAVAILABLE,
        "HSS Unreachable",
        format!("no {command} answer from the HSS: {why}"),
    )
}

fn locate(uri: &str, s: &Settings, how: String) -> Result<Selected, Refusal> {
    let destination = resolve_uri(uri, &s.hosts).ok_or_else(|| {
        Refusal::new(
            StatusCode::SERVER_INTERNAL_ERROR,
            "S-CSCF Address Unknown",
            format!("no address for the S-CSCF {uri}: add it to icscf.scscfs with an address"),
        )
    })?;
    Ok(Selected {
        uri: uri.to_owned(),
        destination,
        how,
    })
}

fn same_uri(a: &str, b: &str) -> bool {
    a.trim()
        .trim_matches(['<', '>'])
        .eq_ignore_ascii_case(b.trim().trim_matches(['<', '>']))
}

/// Picks an S-CSCF from Server-Capabilities and the table (TS 29.228 §6.7, TS 23.228
/// §5.4.1.1): only S-CSCFs with every mandatory capability qualify; a qualifying S-CSCF named
/// in Server-Name wins; otherwise the one with the most optional capabilities, the first in
/// the table on a tie. With no qualifying S-CSCF a named one is taken as is. None: 600.
pub fn by_capabilities(caps: &ServerCapabilities, s: &Settings) -> Result<Selected, Refusal> {
    let qualified: Vec<&ScscfEntry> = s
        .scscfs
        .iter()
        .filter(|e| caps.mandatory.iter().all(|m| e.capabilities.contains(m)))
        .collect();
    if let Some(e) = caps
        .server_names
        .iter()
        .find_map(|n| qualified.iter().find(|e| same_uri(&e.uri, n)))
    {
        return locate(&e.uri, s, "named in Server-Capabilities".into());
    }
    let best = qualified.iter().enumerate().max_by(|(ia, a), (ib, b)| {
        let score = |e: &ScscfEntry| {
            caps.optional
                .iter()
                .filter(|o| e.capabilities.contains(o))
                .count()
        };
        score(a).cmp(&score(b)).then(ib.cmp(ia))
    });
    if let Some((_, e)) = best {
        return locate(
            &e.uri,
            s,
            format!(
                "chosen by capabilities (mandatory {:?}, optional {:?})",
                caps.mandatory, caps.optional
            ),
        );
    }
    if let Some(n) = caps.server_names.first() {
        return locate(n, s, "named in Server-Capabilities".into());
    }
    Err(Refusal::new(
        StatusCode::BUSY_EVERYWHERE,
        "No S-CSCF Available",
        format!(
            "no configured S-CSCF has the mandatory capabilities {:?}",
            caps.mandatory
        ),
    ))
}

/// The S-CSCF for a REGISTER from the UAA: Server-Name when the HSS names one (the user is
/// registered or being registered there), else chosen from Server-Capabilities.
pub fn select_for_register(uaa: &Uaa, s: &Settings) -> Result<Selected, Refusal> {
    if !uaa.result.is_success() {
        return Err(uar_refusal(&uaa.result));
    }
    if let Some(name) = uaa.server_name.as_deref().filter(|n| !n.is_empty()) {
        return locate(name, s, format!("Server-Name {name} from the HSS"));
    }
    by_capabilities(&uaa.server_capabilities.clone().unwrap_or_default(), s)
}

/// Whether the table holds an S-CSCF other than `uri` to fail over to (TS 24.229 §5.3.1.3).
pub fn has_alternative(s: &Settings, uri: &str) -> bool {
    s.scscfs.iter().any(|e| !same_uri(&e.uri, uri))
}

/// The UAR asking the HSS for capabilities anew after the chosen S-CSCF did not answer a
/// REGISTER (TS 24.229 §5.3.1.3, TS 29.228 §6.1.1): User-Authorization-Type
/// REGISTRATION_AND_CAPABILITIES.
pub fn uar_for_failover(msg: &Message, s: &Settings, session_id: String) -> Result<Uar, Refusal> {
    let mut uar = uar_for(msg, s, session_id)?;
    uar.user_authorization_type = Some(UserAuthorizationType::REGISTRATION_AND_CAPABILITIES);
    Ok(uar)
}

/// The S-CSCF to retry a REGISTER with after `failed` timed out, answered 503 or could not
/// be reached (TS 24.229 §5.3.1.3): chosen from the Server-Capabilities of the
/// REGISTRATION_AND_CAPABILITIES UAA among the table's other S-CSCFs, as
/// [`by_capabilities`] does. None left: 504 (Server Time-out).
pub fn reselect_after_failure(uaa: &Uaa, s: &Settings, failed: &str) -> Result<Selected, Refusal> {
    if !uaa.result.is_success() {
        return Err(uar_refusal(&uaa.result));
    }
    let mut caps = uaa.server_capabilities.clone().unwrap_or_default();
    caps.server_names.retain(|n| !same_uri(n, failed));
    let others = Settings {
        scscfs: s
            .scscfs
            .iter()
            .filter(|e| !same_uri(&e.uri, failed))
            .cloned()
            .collect(),
        ..s.clone()
    };
    let no_other = || {
        Refusal::new(
            StatusCode::SERVER_TIMEOUT,
            "S-CSCF Unreachable",
            format!("the S-CSCF {failed} did not answer and no other S-CSCF qualifies"),
        )
    };
    match by_capabilities(&caps, &others) {
        Ok(sel) if !same_uri(&sel.uri, failed) => Ok(Selected {
            how: format!("fail-over from {failed}: {}", sel.how),
            ..sel
        }),
        Ok(_) => Err(no_other()),
        Err(r) if r.status == StatusCode::BUSY_EVERYWHERE => Err(no_other()),
        Err(r) => Err(r),
    }
}

/// The S-CSCF for a terminating request from the LIA.
pub fn select_for_terminating(lia: &Lia, s: &Settings) -> Result<Selected, Refusal> {
    if !lia.result.is_success() {
        return Err(lir_refusal(&lia.result));
    }
    if let Some(name) = lia.server_name.as_deref().filter(|n| !n.is_empty()) {
        return locate(name, s, format!("Server-Name {name} from the HSS"));
    }
    match &lia.server_capabilities {
        Some(c) => by_capabilities(c, s),
        None => Err(Refusal::new(
            StatusCode::SERVER_INTERNAL_ERROR,
            "Server Internal Error",
            "LIA has neither Server-Name nor Server-Capabilities",
        )),
    }
}

/// The answer to a request addressed to the I-CSCF itself (Request-URI without user part
/// naming its address, or its Diameter host name, and no Route left): 200 to OPTIONS (a
/// keep-alive probe, RFC 3261 §11), 404 to anything else. `None` for other requests.
pub fn to_self(request: &Message, local: &SocketAddr, s: &Settings) -> Option<Decision> {
    if matches!(request.method(), Some(Method::Register | Method::Ack))
        || request.routes().next().is_some()
    {
        return None;
    }
    let uri = Uri::parse(request.request_uri_str()?).ok()?;
    let sip = uri.as_sip()?;
    if sip.user.is_some() {
        return None;
    }
    let host = sip.host.to_string();
    let ours = (sip.host.ip() == Some(local.ip()) && sip.port_or_default() == local.port())
        || host.eq_ignore_ascii_case(s.origin.host.as_str());
    if !ours {
        return None;
    }
    Some(Decision::Respond(
        if request.method() == Some(&Method::Options) {
            Refusal::new(StatusCode::OK, "OK", "").response(request)
        } else {
            Refusal::new(StatusCode::NOT_FOUND, "Not Found", "").response(request)
        },
    ))
}

/// Forwards `request` to the selected S-CSCF, the Request-URI unchanged.
pub fn forward(request: Message, sel: &Selected) -> Decision {
    Decision::forward(request, Target::next_hop().via(sel.destination.clone()))
}

#[cfg(test)]
mod tests;
