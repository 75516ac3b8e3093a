//! Security-Client, Security-Server and Security-Verify (RFC 3329 §2.2; TS 33.203 Annex H adds
//! the `ipsec-3gpp` parameters `alg`, `ealg`, `spi-c`, `spi-s`, `port-c`, `port-s`, `prot`, `mod`).

use std::borrow::Cow;
use std::fmt;

use super::{QValue, TypedHeader, value_with_params};
use crate::scan;
use crate::{Error, Params};

/// One security mechanism with its parameters, e.g.
/// `ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=1111;spi-s=2222;port-c=5062;port-s=5064`.
///
/// Numeric parameters are checked when parsed, so the getters return plain options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityMechanism<'a> {
    /// `ipsec-3gpp`, `tls`, `digest`, `ipsec-ike`, `ipsec-man` or another token.
    pub mechanism: Cow<'a, str>,
    /// The parameters in order.
    pub params: Params<'a>,
}

impl<'a> SecurityMechanism<'a> {
    /// A mechanism without parameters.
    pub fn new(mechanism: impl Into<Cow<'a, str>>) -> Self {
        Self {
            mechanism: mechanism.into(),
            params: Params::new(),
        }
    }

    /// Adds or replaces a parameter (builder style).
    pub fn with(mut self, name: &'a str, value: impl Into<Cow<'a, str>>) -> Self {
        self.params.set(name, Some(value.into()));
        self
    }

    /// The preference `q`.
    pub fn q(&self) -> Option<QValue> {
        self.params.value("q").and_then(|v| QValue::parse(v).ok())
    }
    /// Integrity algorithm `alg` (`hmac-sha-1-96`, `hmac-md5-96`, `aes-gmac`, `null`).
    pub fn alg(&self) -> Option<&str> {
        self.params.value("alg")
    }
    /// Encryption algorithm `ealg` (`aes-cbc`, `des-ede3-cbc`, `null`, `aes-gcm`).
    pub fn ealg(&self) -> Option<&str> {
        self.params.value("ealg")
    }
    /// `spi-c`.
    pub fn spi_c(&self) -> Option<u32> {
        self.params.value("spi-c").and_then(|v| v.parse().ok())
    }
    /// `spi-s`.
    pub fn spi_s(&self) -> Option<u32> {
        self.params.value("spi-s").and_then(|v| v.parse().ok())
    }
    /// `port-c`.
    pub fn port_c(&self) -> Option<u16> {
        self.params.value("port-c").and_then(|v| v.parse().ok())
    }
    /// `port-s`.
    pub fn port_s(&self) -> Option<u16> {
        self.params.value("port-s").and_then(|v| v.parse().ok())
    }
    /// `prot` (`esp`, `ah`).
    pub fn prot(&self) -> Option<&str> {
        self.params.value("prot")
    }
    /// `mod` (`trans`, `tun`, `UDP-enc-tun`).
    pub fn mode(&self) -> Option<&str> {
        self.params.value("mod")
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> SecurityMechanism<'static> {
        SecurityMechanism {
            mechanism: Cow::Owned(self.mechanism.into_owned()),
            params: self.params.into_owned(),
        }
    }
}

impl<'a> TypedHeader<'a> for SecurityMechanism<'a> {
    fn parse_value(value: &'a str, header: &'static str) -> Result<Self, Error> {
        let (mechanism, params) = value_with_params(value, header, scan::is_token)?;
        let bad = || Error::InvalidHeader { header, at: 0 };
        for name in ["spi-c", "spi-s"] {
            if params
                .value(name)
                .is_some_and(|v| v.parse::<u32>().is_err())
            {
                return Err(bad());
            }
        }
        for name in ["port-c", "port-s"] {
            if params
                .value(name)
                .is_some_and(|v| v.parse::<u16>().is_err())
            {
                return Err(bad());
            }
        }
        if let Some(q) = params.value("q") {
            QValue::parse(q).map_err(|_| bad())?;
        }
        Ok(Self { mechanism, params })
    }
}

impl fmt::Display for SecurityMechanism<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.mechanism, self.params)
    }
}
