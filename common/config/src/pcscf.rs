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
    /// Seconds a temporary SA set (created with the 401) waits for the protected REGISTER
    /// (reg-await-auth, TS 24.229 table 7.7.1).
    pub temporary_lifetime: u32,
}

impl Default for IpsecConfig {
    fn default() -> Self {
        Self {
            mode: IpsecMode::Userspace,
            algorithms: vec!["hmac-sha-1-96".into(), "hmac-md5-96".into()],
            encryption: vec!["aes-cbc".into(), "des-ede3-cbc".into(), "null".into()],
            spi_min: 0x1000,
            spi_max: 0xffff_fff0,
            temporary_lifetime: 240,
        }
    }
}

/// A host name the P-CSCF resolves without DNS (the hosts of Service-Route URIs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// The host name as it appears in SIP URIs.
    pub name: String,
    /// Its address; the port is used when the URI names none.
    pub addr: SocketAddr,
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
    /// Names resolved without DNS: hosts of Service-Route URIs (the S-CSCF).
    pub hosts: Vec<HostEntry>,
    /// P-Visited-Network-ID put in REGISTER (TS 24.229 §5.2.2.1); null means the home domain.
    pub visited_network_id: Option<String>,
    /// Subscribe to the reg event of every registered user (TS 24.229 §5.2.3).
    pub reg_event: bool,
    /// Expires asked for in that SUBSCRIBE, seconds.
    pub reg_event_expires: u32,
    /// Write `pcscf.pcap` (every SIP message) and `pcscf.esp_sa` (Wireshark's ESP SA table) in
    /// the data directory.
    pub pcap: bool,
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
            hosts: vec![
                HostEntry {
                    name: "scscf.ims.mnc001.mcc001.3gppnetwork.org".into(),
                    addr: SocketAddr::from(([127, 0, 0, 1], 6060)),
                },
                HostEntry {
                    name: "icscf.ims.mnc001.mcc001.3gppnetwork.org".into(),
                    addr: SocketAddr::from(([127, 0, 0, 1], 4060)),
                },
            ],
            visited_network_id: None,
            reg_event: true,
            reg_event_expires: 600_000,
            pcap: false,
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
  # Host names resolved without DNS: the hosts of Service-Route URIs (the S-CSCF).
  hosts:
    - name: scscf.ims.mnc001.mcc001.3gppnetwork.org
      addr: 127.0.0.1:6060
    - name: icscf.ims.mnc001.mcc001.3gppnetwork.org
      addr: 127.0.0.1:4060
  # P-Visited-Network-ID added to REGISTER (TS 24.229 §5.2.2.1); null: the home domain.
  visited_network_id: null
  # Subscribe to the reg event of each registered user (TS 24.229 §5.2.3), and its Expires.
  reg_event: true
  reg_event_expires: 600000
  # Write pcscf.pcap and pcscf.esp_sa (Wireshark ESP SA table, holds keys) in data_dir.
  pcap: false
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
    # Seconds a temporary SA set waits for the protected REGISTER (reg-await-auth).
    temporary_lifetime: 240
"#;
