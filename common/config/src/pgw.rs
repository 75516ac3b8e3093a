use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use imslab_types::Imsi;

/// The P-GW PCO stub: GTPv2-C S5/S8 toward an existing SGW (TS 29.274), PCO answers
/// (TS 24.008 §10.5.6.3) and an optional userspace GTP-U user plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgwConfig {
    /// GTPv2-C listen address (S5/S8-C; the standard port is 2123).
    pub gtpc_listen: SocketAddr,
    /// GTP-U listen address (S5/S8-U; the standard port is 2152).
    pub gtpu_listen: SocketAddr,
    /// Address put in our S5/S8-C F-TEID; null means the `gtpc_listen` address, which must then
    /// not be a wildcard.
    pub gtpc_advertise: Option<IpAddr>,
    /// Address put in our S5/S8-U F-TEIDs; null means the `gtpu_listen` address, which must
    /// then not be a wildcard.
    pub gtpu_advertise: Option<IpAddr>,
    /// The user plane: `tun` carries G-PDUs to and from a TUN device (needs CAP_NET_ADMIN),
    /// `off` answers signalling only.
    pub user_plane: UserPlaneMode,
    /// Name of the TUN device when `user_plane` is `tun` (at most 15 characters).
    pub tun_name: String,
    /// The APNs this P-GW serves; Create Session Requests for other APNs get cause 78.
    pub apns: Vec<ApnConfig>,
    /// How many answered requests are kept to answer retransmissions (TS 29.274 §7.6).
    pub retransmit_cache_size: usize,
    /// How long, in seconds, an answered request stays in that cache.
    pub retransmit_cache_secs: u64,
    /// T3-RESPONSE in milliseconds: wait before re-sending a request we sent (TS 29.274 §7.6).
    pub t3_response_ms: u64,
    /// N3-REQUESTS: how many times a request we sent is sent in all.
    pub n3_requests: u32,
    /// On shutdown, send a Delete Bearer Request to the SGW for every session.
    pub delete_bearers_on_shutdown: bool,
}

impl Default for PgwConfig {
    fn default() -> Self {
        Self {
            gtpc_listen: SocketAddr::from(([127, 0, 0, 1], 2123)),
            gtpu_listen: SocketAddr::from(([127, 0, 0, 1], 2152)),
            gtpc_advertise: None,
            gtpu_advertise: None,
            user_plane: UserPlaneMode::Off,
            tun_name: "imslab-pgw0".into(),
            apns: vec![ApnConfig::default_ims(), ApnConfig::default_internet()],
            retransmit_cache_size: 4096,
            retransmit_cache_secs: 30,
            t3_response_ms: 3000,
            n3_requests: 3,
            delete_bearers_on_shutdown: true,
        }
    }
}

/// Whether the P-GW carries user traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserPlaneMode {
    /// GTP-U in userspace, into and out of a TUN device.
    Tun,
    /// Signalling only.
    Off,
}

impl UserPlaneMode {
    /// True for [`UserPlaneMode::Tun`].
    pub fn is_tun(self) -> bool {
        self == Self::Tun
    }
}

/// How the P-CSCF addresses of an APN are ordered for one phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PcscfSelection {
    /// Each new session starts at the next configured P-CSCF.
    RoundRobin,
    /// A phone always starts at the same P-CSCF, chosen by a hash of its IMSI.
    ImsiHash,
}

impl PcscfSelection {
    /// True for [`PcscfSelection::ImsiHash`].
    pub fn is_imsi_hash(self) -> bool {
        self == Self::ImsiHash
    }
}

/// A fixed address for one subscriber on one APN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticAddress {
    /// The subscriber.
    pub imsi: Imsi,
    /// Its IPv4 address, or null for a dynamic one.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// Its IPv6 /64 prefix (the address's last 64 bits are ignored), or null for a dynamic one.
    #[serde(default)]
    pub ipv6_prefix: Option<Ipv6Addr>,
}

/// Settings of one APN (the `ims` APN is the one phones use for IMS signalling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApnConfig {
    /// The APN network identifier (`ims`, `internet`), matched without case; an operator
    /// identifier suffix (`.mnc001.mcc001.gprs`) in a request is ignored.
    pub name: String,
    /// IPv4 pool as `address/prefix-length`; its first host address is the gateway (the TUN
    /// address), the others go to phones. Null: no IPv4 on this APN.
    pub ipv4_pool: Option<String>,
    /// IPv6 pool as `address/prefix-length` (at most /63); each phone gets a /64 of it, the first
    /// /64 holds the gateway. Null: no IPv6 on this APN.
    pub ipv6_pool: Option<String>,
    /// P-CSCF addresses handed out in PCO containers 0x000C (IPv4) and 0x0001 (IPv6).
    pub pcscf: Vec<IpAddr>,
    /// How the P-CSCF list is ordered for each phone.
    pub pcscf_selection: PcscfSelection,
    /// How many P-CSCFs of each family one answer carries; 0 means all of them.
    pub pcscf_per_answer: usize,
    /// DNS servers handed out in PCO containers 0x000D / 0x0003 and IPCP.
    pub dns: Vec<IpAddr>,
    /// IPv4 link MTU for PCO container 0x0010; 0 means none is sent.
    pub mtu: u16,
    /// APN-AMBR uplink in kbit/s; 0 with `ambr_downlink_kbps` 0 echoes the requested APN-AMBR.
    pub ambr_uplink_kbps: u32,
    /// APN-AMBR downlink in kbit/s.
    pub ambr_downlink_kbps: u32,
    /// Return the IM CN Subsystem Signalling Flag (container 0x0002) when a phone sends it.
    pub im_cn_signalling_flag: bool,
    /// Fixed addresses per IMSI; other phones get addresses from the pools.
    pub static_addresses: Vec<StaticAddress>,
}

impl Default for ApnConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            ipv4_pool: None,
            ipv6_pool: None,
            pcscf: Vec::new(),
            pcscf_selection: PcscfSelection::RoundRobin,
            pcscf_per_answer: 0,
            dns: Vec::new(),
            mtu: 1400,
            ambr_uplink_kbps: 0,
            ambr_downlink_kbps: 0,
            im_cn_signalling_flag: false,
            static_addresses: Vec::new(),
        }
    }
}

impl ApnConfig {
    /// The default `ims` APN: the P-CSCF is the gateway address of its pools.
    pub fn default_ims() -> Self {
        Self {
            name: "ims".into(),
            ipv4_pool: Some("10.46.0.0/16".into()),
            ipv6_pool: Some("2001:db8:46::/48".into()),
            pcscf: vec![
                IpAddr::V4(Ipv4Addr::new(10, 46, 0, 1)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x46, 0, 0, 0, 0, 1)),
            ],
            im_cn_signalling_flag: true,
            ..Self::default()
        }
    }

    /// The default `internet` APN: addresses only, no P-CSCF.
    pub fn default_internet() -> Self {
        Self {
            name: "internet".into(),
            ipv4_pool: Some("10.45.0.0/16".into()),
            ipv6_pool: Some("2001:db8:45::/48".into()),
            ..Self::default()
        }
    }
}

pub(crate) const YAML: &str = r#"
# The P-GW PCO stub: GTPv2-C S5/S8 toward an existing MME/SGW (TS 29.274). It hands P-CSCF
# addresses to phones in the PCO of their IMS PDN connection (TS 24.008 §10.5.6.3).
pgw:
  # GTPv2-C listen address (S5/S8-C, standard port 2123). Use an address the SGW can reach.
  gtpc_listen: 127.0.0.1:2123
  # GTP-U listen address (S5/S8-U, standard port 2152).
  gtpu_listen: 127.0.0.1:2152
  # Addresses put in our F-TEIDs; null means the listen address (which must then not be
  # 0.0.0.0 or ::).
  gtpc_advertise: null
  gtpu_advertise: null
  # User plane: tun (GTP-U to a TUN device, needs CAP_NET_ADMIN) or off (signalling only).
  user_plane: off
  # TUN device name when user_plane is tun.
  tun_name: imslab-pgw0
  # Answered requests kept to answer retransmissions, and for how many seconds.
  retransmit_cache_size: 4096
  retransmit_cache_secs: 30
  # Our own requests (Delete Bearer on shutdown): T3-RESPONSE in ms and N3-REQUESTS.
  t3_response_ms: 3000
  n3_requests: 3
  # Send a Delete Bearer Request to the SGW for every session on shutdown.
  delete_bearers_on_shutdown: true
  # The APNs served; others are refused with cause 78 (missing or unknown APN).
  apns:
      # APN name, matched without case (an operator suffix .mncX.mccY.gprs is ignored).
    - name: ims
      # Address pools; the first host of each is the gateway (TUN) address. Null: none.
      ipv4_pool: 10.46.0.0/16
      ipv6_pool: 2001:db8:46::/48
      # P-CSCF addresses handed out in the PCO (0x000C IPv4, 0x0001 IPv6).
      pcscf: [10.46.0.1, "2001:db8:46::1"]
      # round-robin or imsi-hash; how many per family in one answer (0 = all).
      pcscf_selection: round-robin
      pcscf_per_answer: 0
      # DNS servers (PCO 0x000D/0x0003 and IPCP).
      dns: []
      # IPv4 link MTU (PCO 0x0010); 0 = none.
      mtu: 1400
      # APN-AMBR in kbit/s; both 0 echo the requested APN-AMBR.
      ambr_uplink_kbps: 0
      ambr_downlink_kbps: 0
      # Answer the IM CN Subsystem Signalling Flag (0x0002) when the phone sends it.
      im_cn_signalling_flag: true
      # Fixed addresses: - {imsi: "001010000000001", ipv4: 10.46.0.10, ipv6_prefix: null}
      static_addresses: []
    - name: internet
      ipv4_pool: 10.45.0.0/16
      ipv6_pool: 2001:db8:45::/48
      pcscf: []
      pcscf_selection: round-robin
      pcscf_per_answer: 0
      dns: []
      mtu: 1400
      ambr_uplink_kbps: 0
      ambr_downlink_kbps: 0
      im_cn_signalling_flag: false
      static_addresses: []
"#;
