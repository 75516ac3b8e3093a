//! What the Cx handlers need from the configuration, validated once.

use imslab_aka::SqnConfig;
use imslab_config::HssConfig;
use imslab_diameter::Origin;
use imslab_diameter::cx::{ChargingInformation, ServerCapabilities};
use imslab_diameter::types::DiameterUri;
use imslab_types::{DiameterIdentity, Realm};

use crate::Error;

/// The HSS's Cx behaviour settings (from the `hss:` section and `network.domain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CxSettings {
    /// Origin-Host and Origin-Realm of everything the HSS sends.
    pub origin: Origin,
    /// Most vectors in one MAA (caps SIP-Number-Auth-Items).
    pub max_auth_items: u32,
    /// SQN layout (IND bits) for AKA.
    pub sqn: SqnConfig,
    /// Digest-QoP offered for SIP Digest.
    pub digest_qop: String,
    /// Visited networks a UAR may come from; empty allows all.
    pub allowed_visited_networks: Vec<String>,
    /// Server-Capabilities for UAA/LIA when no S-CSCF is assigned.
    pub capabilities: ServerCapabilities,
    /// Charging-Information for subscribers without their own.
    pub default_charging: ChargingInformation,
}

fn uri(key: &'static str, v: &Option<String>) -> Result<Option<DiameterUri>, Error> {
    v.as_deref()
        .map(|s| {
            DiameterUri::parse(s).map_err(|e| Error::Config {
                key,
                reason: format!("{s:?} is not a Diameter URI (aaa://host[:port]): {e:?}"),
            })
        })
        .transpose()
}

impl CxSettings {
    /// Builds the settings from the `hss:` section and the home domain (the Diameter realm).
    pub fn from_config(cfg: &HssConfig, realm: &Realm) -> Result<Self, Error> {
        let host = DiameterIdentity::new(cfg.origin_host.as_str()).map_err(|e| Error::Config {
            key: "hss.origin_host",
            reason: e.to_string(),
        })?;
        let sqn =
            SqnConfig::new(cfg.sqn_ind_bits, SqnConfig::DEFAULT_DELTA, None).map_err(|e| {
                Error::Config {
                    key: "hss.sqn_ind_bits",
                    reason: e.to_string(),
                }
            })?;
        if cfg.max_auth_items == 0 {
            return Err(Error::Config {
                key: "hss.max_auth_items",
                reason: "must be at least 1".into(),
            });
        }
        let qop_ok = cfg
            .digest_qop
            .split(',')
            .all(|q| matches!(q.trim(), "auth" | "auth-int"));
        if !qop_ok {
            return Err(Error::Config {
                key: "hss.digest_qop",
                reason: format!(
                    "{:?}: use auth, auth-int or \"auth,auth-int\"",
                    cfg.digest_qop
                ),
            });
        }
        let c = &cfg.charging;
        Ok(Self {
            origin: Origin {
                host,
                realm: realm.clone(),
            },
            max_auth_items: cfg.max_auth_items,
            sqn,
            digest_qop: cfg.digest_qop.clone(),
            allowed_visited_networks: cfg.allowed_visited_networks.clone(),
            capabilities: ServerCapabilities {
                mandatory: cfg.mandatory_capabilities.clone(),
                optional: cfg.optional_capabilities.clone(),
                server_names: cfg.capability_server_names.clone(),
                extra: Vec::new(),
            },
            default_charging: ChargingInformation {
                primary_event_charging_function_name: uri(
                    "hss.charging.ecf_primary",
                    &c.ecf_primary,
                )?,
                secondary_event_charging_function_name: uri(
                    "hss.charging.ecf_secondary",
                    &c.ecf_secondary,
                )?,
                primary_charging_collection_function_name: uri(
                    "hss.charging.ccf_primary",
                    &c.ccf_primary,
                )?,
                secondary_charging_collection_function_name: uri(
                    "hss.charging.ccf_secondary",
                    &c.ccf_secondary,
                )?,
                extra: Vec::new(),
            },
        })
    }
}
