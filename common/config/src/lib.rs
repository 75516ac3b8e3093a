//! The imslab configuration: one YAML file with a section per function.
//!
//! Every struct rejects unknown keys and fills missing ones from its documented default, so a
//! file needs only the keys that differ (`pcscf: {ipsec: {mode: off}}` is a complete file).
//! With no file at all, the defaults make a working lab on 127.0.0.1.
//!
//! Only the binary reads files: library crates receive their section as a typed value.
//! [`Config::default_yaml`] is the commented default file that `imslab config default` prints;
//! a test keeps it equal to [`Config::default`] and checks that it documents every key.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod hss;
mod icscf;
mod log;
mod network;
mod pcscf;
mod pgw;
mod scscf;
mod secret;
mod store;
mod web;

pub use hss::{HssChargingConfig, HssConfig};
pub use icscf::{IcscfConfig, ScscfEntry};
pub use log::{LogConfig, LogFormat};
pub use network::NetworkConfig;
pub use pcscf::{HostEntry, IpsecConfig, IpsecMode, PcscfConfig};
pub use pgw::{ApnConfig, PcscfSelection, PgwConfig, StaticAddress, UserPlaneMode};
pub use scscf::ScscfConfig;
pub use secret::Secret;
pub use store::{SqliteSynchronous, StoreConfig};
pub use web::WebConfig;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key, a wrong type or a bad value. The message names
    /// the line, column and key.
    #[error("{path}: {message}")]
    Invalid {
        /// The file (or `<string>`).
        path: PathBuf,
        /// The parser's message, with location and snippet.
        message: String,
    },
    /// The file parsed, but values contradict each other.
    #[error("{path}: {message}")]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory for the SQLite store, TLS material, pcaps and persistent counters.
    pub data_dir: PathBuf,
    /// The PLMN and home domain of the lab.
    pub network: NetworkConfig,
    /// The subscriber store.
    pub store: StoreConfig,
    /// The Home Subscriber Server (Cx).
    pub hss: HssConfig,
    /// The Interrogating CSCF.
    pub icscf: IcscfConfig,
    /// The Serving CSCF.
    pub scscf: ScscfConfig,
    /// The Proxy CSCF.
    pub pcscf: PcscfConfig,
    /// The P-GW PCO stub (GTPv2-C S5/S8).
    pub pgw: PgwConfig,
    /// The web UI and REST API.
    pub web: WebConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("imslab-data"),
            network: NetworkConfig::default(),
            store: StoreConfig::default(),
            hss: HssConfig::default(),
            icscf: IcscfConfig::default(),
            scscf: ScscfConfig::default(),
            pcscf: PcscfConfig::default(),
            pgw: PgwConfig::default(),
            web: WebConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// Parses YAML text; `origin` names the source in error messages.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Self, Error> {
        // An empty file (or one holding only comments) means "all defaults".
        let cfg = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            Self::default()
        } else {
            serde_saphyr::from_str::<Self>(text).map_err(|e| Error::Invalid {
                path: origin.to_owned(),
                message: e.to_string(),
            })?
        };
        cfg.validate().map_err(|message| Error::Inconsistent {
            path: origin.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// The complete default configuration as commented YAML.
    pub fn default_yaml() -> String {
        let mut out = String::from(concat!(
            "# imslab configuration. Every key is optional: a file needs only what differs from\n",
            "# these defaults. Unknown keys are refused.\n\n",
            "# Directory for the SQLite store, TLS material, pcaps and persistent counters\n",
            "# (relative to the working directory; IMSLAB_DATA_DIR overrides it).\n",
            "data_dir: imslab-data\n\n",
        ));
        for section in [
            network::YAML,
            store::YAML,
            hss::YAML,
            icscf::YAML,
            scscf::YAML,
            pcscf::YAML,
            pgw::YAML,
            web::YAML,
            log::YAML,
        ] {
            out.push_str(section.trim_end());
            out.push_str("\n\n");
        }
        out.pop();
        out
    }

    /// Cross-field checks that types cannot express.
    fn validate(&self) -> Result<(), String> {
        let p = &self.pcscf;
        if p.port_c == p.port_s {
            return Err("pcscf.port_c and pcscf.port_s must differ".into());
        }
        if p.ipsec.spi_min >= p.ipsec.spi_max {
            return Err("pcscf.ipsec.spi_min must be below pcscf.ipsec.spi_max".into());
        }
        if self.scscf.reg_expires_min > self.scscf.reg_expires_max {
            return Err("scscf.reg_expires_min must not exceed scscf.reg_expires_max".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
