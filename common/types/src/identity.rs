//! Subscriber and node identities (TS 23.003 §2, §13; RFC 6733 §4.3).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, Error> {
                let s = s.into();
                $check(&s)?;
                Ok(Self(s))
            }

            /// The identity as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn check_imsi(s: &str) -> Result<(), Error> {
    if (6..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::InvalidImsi { len: s.len() })
    }
}

fn check_msisdn(s: &str) -> Result<(), Error> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::InvalidMsisdn)
    }
}

/// A DNS name as used for realms and Diameter identities: labels of letters, digits and `-`,
/// separated by dots, at most 255 octets.
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn check_dns(s: &str) -> Result<(), Error> {
    if is_dns_name(s) {
        Ok(())
    } else {
        Err(Error::InvalidDnsName(s.to_owned()))
    }
}

fn check_impi(s: &str) -> Result<(), Error> {
    match s.rsplit_once('@') {
        Some((user, realm))
            if !user.is_empty()
                && is_dns_name(realm)
                && !user
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) =>
        {
            Ok(())
        }
        _ => Err(Error::InvalidImpi(s.to_owned())),
    }
}

fn check_impu(s: &str) -> Result<(), Error> {
    let lower = s.get(..5).map(str::to_ascii_lowercase).unwrap_or_default();
    let rest = if lower.starts_with("sip:") {
        &s[4..]
    } else if lower.starts_with("sips:") || lower.starts_with("tel:") {
        &s[s.find(':').map_or(0, |i| i + 1)..]
    } else {
        return Err(Error::InvalidImpu(s.to_owned()));
    };
    if rest.is_empty()
        || rest
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(Error::InvalidImpu(s.to_owned()));
    }
    Ok(())
}

string_newtype!(
    /// International Mobile Subscriber Identity: 6 to 15 digits (TS 23.003 §2.2).
    Imsi,
    check_imsi
);
string_newtype!(
    /// An E.164 number, with or without the leading `+`.
    Msisdn,
    check_msisdn
);
string_newtype!(
    /// IMS private user identity, an NAI `user@realm` (TS 23.003 §13.3).
    Impi,
    check_impi
);
string_newtype!(
    /// IMS public user identity: a `sip:`, `sips:` or `tel:` URI (TS 23.003 §13.4).
    Impu,
    check_impu
);
string_newtype!(
    /// A Diameter or SIP realm / home domain, such as `ims.mnc001.mcc001.3gppnetwork.org`.
    Realm,
    check_dns
);
string_newtype!(
    /// A Diameter node's identity, its FQDN (RFC 6733 §4.3 DiameterIdentity).
    DiameterIdentity,
    check_dns
);

impl Imsi {
    /// The MCC: the first three digits.
    pub fn mcc(&self) -> &str {
        &self.0[..3]
    }

    /// The IMS home domain derived from the IMSI with a given MNC length (TS 23.003 §13.2):
    /// `ims.mnc<MNC>.mcc<MCC>.3gppnetwork.org`, the MNC zero-padded to three digits.
    pub fn home_domain(&self, mnc_digits: usize) -> Option<Realm> {
        let mnc = self.0.get(3..3 + mnc_digits)?;
        Realm::new(format!(
            "ims.mnc{:0>3}.mcc{}.3gppnetwork.org",
            mnc,
            self.mcc()
        ))
        .ok()
    }

    /// The default private identity `<imsi>@<domain>` (TS 23.003 §13.3).
    pub fn default_impi(&self, domain: &Realm) -> Impi {
        Impi(format!("{}@{}", self.0, domain))
    }

    /// The temporary public identity `sip:<imsi>@<domain>` (TS 23.003 §13.4B).
    pub fn default_impu(&self, domain: &Realm) -> Impu {
        Impu(format!("sip:{}@{}", self.0, domain))
    }
}

impl Impi {
    /// The user part before the last `@`.
    pub fn user(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(u, _)| u)
    }

    /// The realm after the last `@`.
    pub fn realm(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, r)| r)
    }
}

impl Impu {
    /// True for a `tel:` URI.
    pub fn is_tel(&self) -> bool {
        self.0.len() >= 4 && self.0[..4].eq_ignore_ascii_case("tel:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imsi_accepts_6_to_15_digits_only() {
        assert!(Imsi::new("001010000000001").is_ok());
        assert!(Imsi::new("001010").is_ok());
        assert!(Imsi::new("00101").is_err());
        assert!(Imsi::new("0010100000000012").is_err());
        assert!(Imsi::new("00101000000000a").is_err());
    }

    #[test]
    fn home_domain_pads_two_digit_mnc() {
        let imsi = Imsi::new("001010000000001").unwrap();
        assert_eq!(
            imsi.home_domain(2).unwrap().as_str(),
            "ims.mnc001.mcc001.3gppnetwork.org"
        );
        let d = imsi.home_domain(2).unwrap();
        assert_eq!(
            imsi.default_impi(&d).as_str(),
            "001010000000001@ims.mnc001.mcc001.3gppnetwork.org"
        );
    }

    #[test]
    fn impu_accepts_sip_and_tel_and_rejects_others() {
        assert!(Impu::new("sip:alice@ims.example").is_ok());
        assert!(Impu::new("tel:+15550001").is_ok());
        assert!(Impu::new("SIP:alice@ims.example").is_ok());
        assert!(Impu::new("mailto:alice@example").is_err());
        assert!(Impu::new("sip:").is_err());
        assert!(Impu::new("sip:a b@x").is_err());
        assert!(Impu::new("tel:+1555").unwrap().is_tel());
    }

    #[test]
    fn impi_needs_user_and_realm() {
        let i = Impi::new("alice@ims.example").unwrap();
        assert_eq!((i.user(), i.realm()), ("alice", "ims.example"));
        assert!(Impi::new("alice").is_err());
        assert!(Impi::new("@ims.example").is_err());
        assert!(Impi::new("alice@").is_err());
    }

    #[test]
    fn realm_rejects_empty_labels() {
        assert!(Realm::new("ims.example").is_ok());
        assert!(Realm::new("ims..example").is_err());
        assert!(Realm::new("").is_err());
    }

    #[test]
    fn identities_deserialize_with_validation() {
        let ok: Result<Imsi, _> = serde_json::from_str("\"001010000000001\"");
        assert!(ok.is_ok());
        let bad: Result<Imsi, _> = serde_json::from_str("\"12\"");
        assert!(bad.is_err());
    }
}
