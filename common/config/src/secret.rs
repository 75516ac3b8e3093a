use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret configuration value (a trunk password, an API token). Its Debug output is
/// `"<redacted>"`, so logging a configuration never shows it; [`Secret::expose`] gives the
/// text to the code that uses it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&Secret> for String {
    fn from(s: &Secret) -> Self {
        s.0.clone()
    }
}
