//! The P-CSCF core's settings, checked and typed from the `pcscf:` configuration section.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use imslab_config::{IpsecMode, NetworkConfig, PcscfConfig};
use imslab_ipsec::{EncryptionAlg, IntegrityAlg, Preference, ProtectedPorts, SaTableConfig};
use imslab_sip::transaction::TimerConfig;

use crate::Error;
use crate::flow::FlowKey;

/// Everything the pure core needs to know. Build with [`Settings::from_config`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Unprotected SIP address (UDP and TCP): Gm for unprotected phones, and Mw.
    pub listen: SocketAddr,
    /// SIP over WebSocket address, if any.
    pub ws_listen: Option<SocketAddr>,
    /// The protected ports (TS 33.203 §7.1).
    pub ports: ProtectedPorts,
    /// Where REGISTER requests go.
    pub icscf: SocketAddr,
    /// Names resolved without DNS, lower-case.
    pub hosts: HashMap<String, SocketAddr>,
    /// The sec-agree backend, or off.
    pub mode: IpsecMode,
    /// Algorithm preference for the chosen Security-Client offer.
    pub preference: Preference,
    /// SA table settings (SPI range, lifetimes).
    pub sa_table: SaTableConfig,
    /// P-Visited-Network-ID value.
    pub visited_network_id: String,
    /// Subscribe to the reg event of registered users.
    pub reg_event: bool,
    /// Expires of that subscription.
    pub reg_event_expires: u32,
    /// Key for flow tokens.
    pub flow_key: FlowKey,
    /// This run's number: connection flow tokens of earlier runs are refused.
    pub boot: u32,
    /// SIP transaction timers.
    pub timers: TimerConfig,
}

impl Settings {
    /// Checks the configuration: algorithm names, the SPI range.
    pub fn from_config(
        cfg: &PcscfConfig,
        network: &NetworkConfig,
        flow_key: FlowKey,
        boot: u32,
    ) -> Result<Self, Error> {
        let algs = cfg
            .ipsec
            .algorithms
            .iter()
            .map(|a| {
                a.parse::<IntegrityAlg>().map_err(|_| Error::Config {
                    field: "pcscf.ipsec.algorithms",
                    reason: format!("unknown integrity algorithm {a:?}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ealgs = cfg
            .ipsec
            .encryption
            .iter()
            .map(|a| {
                a.parse::<EncryptionAlg>().map_err(|_| Error::Config {
                    field: "pcscf.ipsec.encryption",
                    reason: format!("unknown encryption algorithm {a:?}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let preference = Preference::from_lists(&algs, &ealgs);
        if cfg.ipsec.mode != IpsecMode::Off && preference.suites().is_empty() {
            return Err(Error::Config {
                field: "pcscf.ipsec.algorithms",
                reason: "no algorithm to offer while IPsec is on".into(),
            });
        }
        if cfg.ipsec.spi_min >= cfg.ipsec.spi_max {
            return Err(Error::Config {
                field: "pcscf.ipsec.spi_min",
                reason: "must be below spi_max".into(),
            });
        }
        let ports = ProtectedPorts {
            port_c: cfg.port_c,
            port_s: cfg.port_s,
        };
        Ok(Self {
            listen: cfg.listen,
            ws_listen: cfg.ws_listen,
            ports,
            icscf: cfg.icscf,
            hosts: cfg
                .hosts
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.addr))
                .collect(),
            mode: cfg.ipsec.mode,
            preference,
            sa_table: SaTableConfig {
                spi_range: cfg.ipsec.spi_min..=cfg.ipsec.spi_max,
                ports,
                temporary_lifetime: Duration::from_secs(u64::from(cfg.ipsec.temporary_lifetime)),
                grace: Duration::from_secs(30),
            },
            visited_network_id: cfg
                .visited_network_id
                .clone()
                .unwrap_or_else(|| network.domain.as_str().to_owned()),
            reg_event: cfg.reg_event,
            reg_event_expires: cfg.reg_event_expires,
            flow_key,
            boot,
            timers: TimerConfig::default(),
        })
    }

    /// Whether sec-agree is required (`pcscf.ipsec.mode` is not `off`).
    pub fn ipsec(&self) -> bool {
        self.mode != IpsecMode::Off
    }

    /// The P-CSCF's own SIP URI host and port, as written in Path, Record-Route and the
    /// reg-event Contact.
    pub fn host_port(&self) -> String {
        match self.listen {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        }
    }

    /// The P-CSCF's SIP URI (`sip:pcscf@host:port`): From, Contact and P-Asserted-Identity of
    /// its reg-event SUBSCRIBE, and the owner of its rows in the store.
    pub fn uri(&self) -> String {
        format!("sip:pcscf@{}", self.host_port())
    }
}
