use serde::{Deserialize, Serialize};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: a level, or per-function directives such as
    /// `info,imslab_scscf=debug`. IMSLAB_LOG overrides it.
    pub filter: String,
    /// `text` or `json`; `--log-format` overrides it.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

pub(crate) const YAML: &str = r#"
# Logging. Keys, OPc, passwords, CK and IK never appear in log lines.
log:
  # A level (error, warn, info, debug, trace) or per-function directives, for example
  # "info,imslab_scscf=debug,imslab_hss=trace". The IMSLAB_LOG variable overrides it.
  filter: info
  # text for people, json for machines (--log-format overrides it).
  format: text
"#;
