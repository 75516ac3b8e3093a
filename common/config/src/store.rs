use serde::{Deserialize, Serialize};

/// The subscriber and registration store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://...`; null means `imslab.db` in the data directory.
    pub url: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { url: None }
    }
}

pub(crate) const YAML: &str = r#"
# The subscriber and registration store (SQL through sqlx).
store:
  # sqlite://PATH or postgres://user:pass@host/db. null: SQLite file imslab.db in data_dir.
  url: null
"#;
