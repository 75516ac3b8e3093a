use serde::{Deserialize, Serialize};

use imslab_types::Realm;

/// The lab's PLMN and IMS home domain (TS 23.003 §13.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Mobile country code, three digits.
    pub mcc: String,
    /// Mobile network code, two or three digits.
    pub mnc: String,
    /// The IMS home domain; the SIP and Diameter realm.
    pub domain: Realm,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            mcc: "001".into(),
            mnc: "01".into(),
            domain: Realm::new("ims.mnc001.mcc001.3gppnetwork.org").expect("valid default realm"),
        }
    }
}

pub(crate) const YAML: &str = r#"
# The lab's PLMN and IMS home domain (TS 23.003 §13.2). Phones derive the home domain from
# their IMSI: ims.mnc<MNC padded to 3>.mcc<MCC>.3gppnetwork.org.
network:
  # Mobile country code (001 is the test network).
  mcc: "001"
  # Mobile network code.
  mnc: "01"
  # IMS home domain: the SIP domain of every IMPU/IMPI and the Diameter realm.
  domain: ims.mnc001.mcc001.3gppnetwork.org
"#;
