use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The Serving CSCF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScscfConfig {
    /// SIP listen address (UDP and TCP).
    pub listen: SocketAddr,
    /// The S-CSCF's own SIP URI (Server-Name in SAR, Service-Route).
    pub uri: String,
    /// The S-CSCF's Diameter identity (Origin-Host toward the HSS); its realm is
    /// `network.domain`.
    pub origin_host: String,
    /// The HSS's Diameter address.
    pub hss: SocketAddr,
    /// Shortest registration the registrar accepts, seconds (423 below it, RFC 3261 §10.3).
    pub reg_expires_min: u32,
    /// Longest registration granted, seconds.
    pub reg_expires_max: u32,
    /// Registration time granted when a REGISTER names none, seconds (RFC 3261 §10.2.1.1).
    pub reg_expires_default: u32,
    /// Authentication vectors asked per MAR.
    pub auth_vectors: u32,
    /// Failed authentication attempts before 403.
    pub max_auth_failures: u32,
    /// The scheme asked for in MAR when the REGISTER names no algorithm and the HSS refuses
    /// `Unknown` (TS 29.229 §6.3.2 names: Digest-AKAv1-MD5, Digest-AKAv2-MD5, SIP Digest).
    pub default_auth_scheme: String,
    /// Longest reg-event subscription granted, seconds (TS 24.229 §5.4.2.1.1).
    pub reg_event_expires_max: u32,
    /// Static SIP name resolution: host names in Path, Route or AS URIs that are not IP
    /// literals, mapped to their address (UDP; URIs with `transport=tcp` use TCP).
    pub hosts: BTreeMap<String, SocketAddr>,
    /// The I-CSCF URI that originating requests for the home domain go to (TS 24.229
    /// §5.4.3.2), or null: `imslab up` then uses its own I-CSCF, and an S-CSCF run alone
    /// serves a callee registered here directly.
    pub icscf: Option<String>,
    /// The breakout SIP trunk URI for numbers and domains outside the lab, or null.
    pub breakout: Option<String>,
    /// Digest user name for the breakout trunk's 401/407 challenges, or null.
    pub breakout_username: Option<String>,
    /// Digest password for the breakout trunk, or null.
    pub breakout_password: Option<crate::Secret>,
    /// DNS server for ENUM lookups of numbers no phone here holds (RFC 6116), or null for
    /// no ENUM.
    pub enum_server: Option<SocketAddr>,
    /// The ENUM domain under which numbers are looked up.
    pub enum_domain: String,
    /// How long a nonce (an authentication vector) may be answered, seconds; a right answer
    /// to an older one gets 401 with `stale=TRUE` (RFC 2617 §3.2.1). Capped by
    /// `reg_expires_max`.
    pub nonce_lifetime: u32,
    /// How long an application server triggered by an iFC may stay silent (no final and no
    /// provisional response above 100) before its DefaultHandling applies, seconds
    /// (TS 24.229 §5.4.3.2 leaves the timer to the operator).
    pub as_timeout: u32,
}

impl Default for ScscfConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 6060)),
            uri: "sip:scscf.ims.mnc001.mcc001.3gppnetwork.org:6060".into(),
            origin_host: "scscf.ims.mnc001.mcc001.3gppnetwork.org".into(),
            hss: SocketAddr::from(([127, 0, 0, 1], 3868)),
            reg_expires_min: 60,
            reg_expires_max: 600_000,
            reg_expires_default: 3600,
            auth_vectors: 1,
            max_auth_failures: 3,
            default_auth_scheme: "Digest-AKAv1-MD5".into(),
            reg_event_expires_max: 600_000,
            hosts: BTreeMap::new(),
            icscf: None,
            breakout: None,
            breakout_username: None,
            breakout_password: None,
            enum_server: None,
            enum_domain: "e164.arpa".into(),
            nonce_lifetime: 300,
            as_timeout: 4,
        }
    }
}

pub(crate) const YAML: &str = r#"
# The Serving CSCF: registrar, authentication, reg-event, iFC, session routing.
scscf:
  # SIP listen address, UDP and TCP.
  listen: 127.0.0.1:6060
  # Its own SIP URI: Server-Name toward the HSS and the Service-Route it returns.
  uri: sip:scscf.ims.mnc001.mcc001.3gppnetwork.org:6060
  # Its Diameter identity (Origin-Host) toward the HSS; the realm is network.domain.
  origin_host: scscf.ims.mnc001.mcc001.3gppnetwork.org
  # The HSS's Diameter address.
  hss: 127.0.0.1:3868
  # Shortest registration accepted, seconds (423 Interval Too Brief below it).
  reg_expires_min: 60
  # Longest registration granted, seconds.
  reg_expires_max: 600000
  # Registration time granted when the REGISTER names none, seconds.
  reg_expires_default: 3600
  # Authentication vectors requested per MAR (SIP-Number-Auth-Items).
  auth_vectors: 1
  # Failed authentication responses before the registration is refused with 403.
  max_auth_failures: 3
  # MAR scheme when the REGISTER names no algorithm and the HSS refuses "Unknown":
  # Digest-AKAv1-MD5, Digest-AKAv2-MD5 or "SIP Digest".
  default_auth_scheme: Digest-AKAv1-MD5
  # Longest reg-event subscription granted, seconds.
  reg_event_expires_max: 600000
  # Static SIP name resolution for Path, Route and AS URIs that are not IP literals,
  # for example {pcscf.ims.mnc001.mcc001.3gppnetwork.org: 127.0.0.1:5060}.
  hosts: {}
  # Where originating requests for home-domain callees go: the I-CSCF's SIP URI, e.g.
  # sip:127.0.0.1:4060. null: under `imslab up` the lab's own I-CSCF (icscf.listen); an
  # S-CSCF run alone then serves a callee registered here directly.
  icscf: null
  # Breakout SIP trunk URI for numbers and domains outside the lab, or null for none.
  breakout: null
  # Digest credentials the S-CSCF answers the trunk's 401/407 challenges with, or null.
  breakout_username: null
  breakout_password: null
  # DNS server (address:port) for ENUM NAPTR lookups of numbers no registered phone holds
  # (RFC 6116), or null for no ENUM; and the ENUM domain.
  enum_server: null
  enum_domain: e164.arpa
  # How long a nonce may be answered, seconds (a right answer to an older one gets 401
  # stale=TRUE and a fresh challenge); capped by reg_expires_max.
  nonce_lifetime: 300
  # Seconds an iFC-triggered application server may stay silent (no final response and no
  # provisional above 100) before its DefaultHandling applies.
  as_timeout: 4
"#;
