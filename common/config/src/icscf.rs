use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// An S-CSCF the I-CSCF may select (TS 29.228 §6.7: Server-Capabilities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScscfEntry {
    /// The S-CSCF's SIP URI, as the HSS stores it in Server-Name.
    pub uri: String,
    /// Capabilities it offers (matched against Mandatory/Optional-Capability).
    #[serde(default)]
    pub capabilities: Vec<u32>,
}

/// The Interrogating CSCF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IcscfConfig {
    /// SIP listen address (UDP and TCP).
    pub listen: SocketAddr,
    /// The HSS's Diameter address.
    pub hss: SocketAddr,
    /// S-CSCFs to choose from when the HSS answers with Server-Capabilities.
    pub scscfs: Vec<ScscfEntry>,
}

impl Default for IcscfConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4060)),
            hss: SocketAddr::from(([127, 0, 0, 1], 3868)),
            scscfs: vec![ScscfEntry {
                uri: "sip:scscf.ims.mnc001.mcc001.3gppnetwork.org:6060".into(),
                capabilities: vec![],
            }],
        }
    }
}

pub(crate) const YAML: &str = r#"
# The Interrogating CSCF: UAR/LIR toward the HSS, S-CSCF selection.
icscf:
  # SIP listen address, UDP and TCP.
  listen: 127.0.0.1:4060
  # The HSS's Diameter address.
  hss: 127.0.0.1:3868
  # S-CSCFs to choose from when the HSS returns Server-Capabilities (TS 29.228 §6.7).
  scscfs:
    - uri: sip:scscf.ims.mnc001.mcc001.3gppnetwork.org:6060
      # Capability numbers this S-CSCF offers.
      capabilities: []
"#;
