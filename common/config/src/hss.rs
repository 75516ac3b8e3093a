use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Charging function addresses returned in SAA Charging-Information (TS 29.229 §6.3.19) for
/// subscribers that have none of their own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HssChargingConfig {
    /// Primary-Charging-Collection-Function-Name (a Diameter URI), or null.
    pub ccf_primary: Option<String>,
    /// Secondary-Charging-Collection-Function-Name, or null.
    pub ccf_secondary: Option<String>,
    /// Primary-Event-Charging-Function-Name, or null.
    pub ecf_primary: Option<String>,
    /// Secondary-Event-Charging-Function-Name, or null.
    pub ecf_secondary: Option<String>,
}

/// The Home Subscriber Server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HssConfig {
    /// Diameter listen address (TCP).
    pub listen: SocketAddr,
    /// The HSS's Diameter identity (Origin-Host); its realm is `network.domain`.
    pub origin_host: String,
    /// Most authentication vectors returned by one MAA, whatever SIP-Number-Auth-Items asks.
    pub max_auth_items: u32,
    /// IND bits in the SQN (TS 33.102 Annex C.3.2); 0 makes the SQN a plain counter.
    pub sqn_ind_bits: u8,
    /// QoP offered in SIP-Digest-Authenticate (`auth`, `auth-int`, or `auth,auth-int`).
    pub digest_qop: String,
    /// Visited-Network-Identifiers a UAR may come from; empty allows every network
    /// (ERROR_ROAMING_NOT_ALLOWED 5004 otherwise).
    pub allowed_visited_networks: Vec<String>,
    /// Mandatory-Capability values in UAA/LIA Server-Capabilities.
    pub mandatory_capabilities: Vec<u32>,
    /// Optional-Capability values in UAA/LIA Server-Capabilities.
    pub optional_capabilities: Vec<u32>,
    /// Server-Name values in UAA/LIA Server-Capabilities (preferred S-CSCFs).
    pub capability_server_names: Vec<String>,
    /// Charging-Information defaults.
    pub charging: HssChargingConfig,
    /// How long to wait for an RTA or PPA, milliseconds.
    pub request_timeout_ms: u64,
}

impl Default for HssConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3868)),
            origin_host: "hss.ims.mnc001.mcc001.3gppnetwork.org".into(),
            max_auth_items: 8,
            sqn_ind_bits: 5,
            digest_qop: "auth".into(),
            allowed_visited_networks: Vec::new(),
            mandatory_capabilities: Vec::new(),
            optional_capabilities: Vec::new(),
            capability_server_names: Vec::new(),
            charging: HssChargingConfig::default(),
            request_timeout_ms: 5000,
        }
    }
}

pub(crate) const YAML: &str = r#"
# The Home Subscriber Server (Diameter Cx, TS 29.228/29.229).
hss:
  # Diameter listen address, TCP.
  listen: 127.0.0.1:3868
  # Diameter identity (Origin-Host); the realm is network.domain.
  origin_host: hss.ims.mnc001.mcc001.3gppnetwork.org
  # Most authentication vectors in one MAA, whatever SIP-Number-Auth-Items asks for.
  max_auth_items: 8
  # IND bits in each SQN (TS 33.102 Annex C.3.2); 0 makes the SQN a plain counter.
  sqn_ind_bits: 5
  # QoP offered for SIP Digest: auth, auth-int or "auth,auth-int".
  digest_qop: auth
  # Visited-Network-Identifiers allowed in UAR; empty allows all (else 5004 roaming not allowed).
  allowed_visited_networks: []
  # Server-Capabilities returned when no S-CSCF is assigned (TS 29.228 §6.7): capability
  # numbers the S-CSCF must / may have, and preferred S-CSCF names.
  mandatory_capabilities: []
  optional_capabilities: []
  capability_server_names: []
  # Charging-Information in SAA for subscribers without their own (Diameter URIs or null).
  charging:
    ccf_primary: null
    ccf_secondary: null
    ecf_primary: null
    ecf_secondary: null
  # How long to wait for the S-CSCF's RTA or PPA, milliseconds.
  request_timeout_ms: 5000
"#;
