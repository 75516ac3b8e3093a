use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The web UI and REST API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// HTTP listen address of the UI and `/api/v1`.
    pub listen: SocketAddr,
    /// Bearer token for the API. Required when `listen` is not a loopback address.
    pub token: Option<crate::Secret>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
        }
    }
}

pub(crate) const YAML: &str = r#"
# The web UI and REST API (/api/v1, OpenAPI at /api/v1/openapi.json).
web:
  # HTTP listen address.
  listen: 127.0.0.1:8080
  # Bearer token the API requires ("Authorization: Bearer <token>"). May be left out (null)
  # only when listening on loopback.
  token: null
"#;
