use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The Home Subscriber Server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HssConfig {
    /// Diameter listen address (TCP).
    pub listen: SocketAddr,
}

impl Default for HssConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3868)),
        }
    }
}

pub(crate) const YAML: &str = r#"
# The Home Subscriber Server (Diameter Cx, TS 29.228/29.229).
hss:
  # Diameter listen address, TCP.
  listen: 127.0.0.1:3868
"#;
