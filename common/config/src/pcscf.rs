use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// How the P-CSCF protects the Gm interface (TS 33.203 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpsecMode {
    /// Kernel ESP SAs and policies through XFRM netlink.
    Xfrm,
    /// ESP in the P-CSCF process over raw sockets; no kernel ESP needed.
    Userspace,
    /// No sec-agree: for phones and tools that do not ask for it.
    Off,
}

/// Security agreement and IPsec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpsecConfig {
    /// The backend, or `off`.
    pub mode: IpsecMode,
    /// Integrity algorithms in order of preference.
    pub algorithms: Vec<String>,
    /// Encryption algorithms in order of preference.
    pub encryption: Vec<String>,
    /// Lowest SPI the P-CSCF allocates.
    pub spi_min: u32,
    /// Highest SPI the P-CSCF allocates.
    pub spi_max: u32,
}

impl Default for IpsecConfig {
    fn default() -> Self {
        Self {
            mode: IpsecMode::Userspace,
            algorithms: vec!["hmac-sha-1-96".into(), "hmac-md5-96".into()],
            encryption: vec!["aes-cbc".into(), "des-ede3-cbc".into(), "null".into()],
            spi_min: 0x1000,
            spi_max: 0xffff_fff0,
        }
    }
}

/// The Proxy CSCF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PcscfConfig {
    /// SIP listen address for phones (UDP and TCP, unprotected).
    pub listen: SocketAddr,
    /// Protected client port (port-c).
    pub port_c: u16,
    /// Protected server port (port-s).
    pub port_s: u16,
    /// SIP over WebSocket listen address (RFC 7118), or null for none.
    pub ws_listen: Option<SocketAddr>,
    /// The I-CSCF that REGISTERs go to.
    pub icscf: SocketAddr,
    /// Security agreement and IPsec.
    pub ipsec: IpsecConfig,
}

impl Default for PcscfConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            port_c: 5100,
            port_s: 6100,
            ws_listen: None,
            icscf: SocketAddr::from(([127, 0, 0, 1], 4060)),
            ipsec: IpsecConfig::default(),
        }
    }
}

pub(crate) const YAML: &str = r#"
# The Proxy CSCF: the phones' first hop (Gm), security agreement and IPsec.
pcscf:
  # SIP listen address for phones, UDP and TCP (unprotected port).
  listen: 127.0.0.1:5060
  # Protected ports (TS 33.203 §7.1): the P-CSCF's port-c and port-s.
  port_c: 5100
  port_s: 6100
  # SIP over WebSocket (RFC 7118) listen address, or null for none.
  ws_listen: null
  # The I-CSCF that REGISTER requests are forwarded to.
  icscf: 127.0.0.1:4060
  ipsec:
    # xfrm: kernel ESP through XFRM netlink; userspace: ESP inside the P-CSCF (no kernel ESP
    # needed); off: no sec-agree, for phones and tools that do not ask for it.
    mode: userspace
    # Integrity algorithms offered, in order of preference (TS 33.203 §7.2).
    algorithms: [hmac-sha-1-96, hmac-md5-96]
    # Encryption algorithms, in order of preference.
    encryption: [aes-cbc, des-ede3-cbc, "null"]
    # The SPI range the P-CSCF allocates from.
    spi_min: 4096
    spi_max: 4294967280
"#;
