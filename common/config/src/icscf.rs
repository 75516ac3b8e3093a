use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// An S-CSCF the I-CSCF may select (TS 29.228 §6.7: Server-Capabilities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScscfEntry {
    /// The S-CSCF's SIP URI, as the HSS stores it in Server-Name.
    pub uri: String,
    /// Where to send its requests when the URI's host is a name (no DNS in the lab); null
    /// means the URI's host is an IP address.
    #[serde(default)]
    pub address: Option<SocketAddr>,
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
    /// The I-CSCF's Diameter identity (Origin-Host toward the HSS); its realm is
    /// `network.domain`.
    pub origin_host: String,
    /// The HSS's Diameter address.
    pub hss: SocketAddr,
    /// S-CSCFs to choose from when the HSS answers with Server-Capabilities.
    pub scscfs: Vec<ScscfEntry>,
    /// Seconds without a response from the chosen S-CSCF before the I-CSCF selects another
    /// capable one and retries the REGISTER (TS 24.229 §5.3.1.2).
    pub failover_after: u32,
}

impl Default for IcscfConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4060)),
            origin_host: "icscf.ims.mnc001.mcc001.3gppnetwork.org".into(),
            hss: SocketAddr::from(([127, 0, 0, 1], 3868)),
            scscfs: vec![ScscfEntry {
                uri: "sip:scscf.ims.mnc001.mcc001.3gppnetwork.org:6060".into(),
                address: Some(SocketAddr::from(([127, 0, 0, 1], 6060))),
                capabilities: vec![],
            }],
            failover_after: 4,
        }
    }
}

pub(crate) const YAML: &str = r#"
# The Interrogating CSCF: UAR/LIR toward the HSS, S-CSCF selection.
icscf:
  # SIP listen address, UDP and TCP.
  listen: 127.0.0.1:4060
  # Its Diameter identity (Origin-Host) toward the HSS; the realm is network.domain.
  origin_host: icscf.ims.mnc001.mcc001.3gppnetwork.org
  # The HSS's Diameter address.
  hss: 127.0.0.1:3868
  # S-CSCFs to choose from when the HSS returns Server-Capabilities (TS 29.228 §6.7).
  scscfs:
    - uri: sip:scscf.ims.mnc001.mcc001.3gppnetwork.org:6060
      # Where to send to it when the URI host is a name (null: the host is an IP address).
      address: 127.0.0.1:6060
      # Capability numbers this S-CSCF offers.
      capabilities: []
  # Seconds without any response from the chosen S-CSCF (or a 503, or an unreachable one)
  # before another capable S-CSCF is selected and the REGISTER retried once.
  failover_after: 4
"#;
