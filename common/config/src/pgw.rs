use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The P-GW PCO stub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgwConfig {
    /// GTPv2-C listen address (S5/S8-C).
    pub gtpc_listen: SocketAddr,
    /// GTP-U listen address (S5/S8-U).
    pub gtpu_listen: SocketAddr,
}

impl Default for PgwConfig {
    fn default() -> Self {
        Self {
            gtpc_listen: SocketAddr::from(([127, 0, 0, 1], 2123)),
            gtpu_listen: SocketAddr::from(([127, 0, 0, 1], 2152)),
        }
    }
}

pub(crate) const YAML: &str = r#"
# The P-GW PCO stub: GTPv2-C S5/S8 toward an existing MME/SGW (TS 29.274).
pgw:
  # GTPv2-C listen address.
  gtpc_listen: 127.0.0.1:2123
  # GTP-U listen address.
  gtpu_listen: 127.0.0.1:2152
"#;
