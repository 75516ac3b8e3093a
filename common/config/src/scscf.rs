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
    /// The HSS's Diameter address.
    pub hss: SocketAddr,
    /// Shortest registration the registrar accepts, seconds (423 below it, RFC 3261 §10.3).
    pub reg_expires_min: u32,
    /// Longest registration granted, seconds.
    pub reg_expires_max: u32,
    /// Authentication vectors asked per MAR.
    pub auth_vectors: u32,
    /// Failed authentication attempts before 403.
    pub max_auth_failures: u32,
}

impl Default for ScscfConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 6060)),
            uri: "sip:scscf.ims.mnc001.mcc001.3gppnetwork.org:6060".into(),
            hss: SocketAddr::from(([127, 0, 0, 1], 3868)),
            reg_expires_min: 60,
            reg_expires_max: 600_000,
            auth_vectors: 1,
            max_auth_failures: 3,
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
  # The HSS's Diameter address.
  hss: 127.0.0.1:3868
  # Shortest registration accepted, seconds (423 Interval Too Brief below it).
  reg_expires_min: 60
  # Longest registration granted, seconds.
  reg_expires_max: 600000
  # Authentication vectors requested per MAR (SIP-Number-Auth-Items).
  auth_vectors: 1
  # Failed authentication responses before the registration is refused with 403.
  max_auth_failures: 3
"#;
