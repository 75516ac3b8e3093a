//! The algorithms a P-CSCF and a UE can agree on (TS 33.203 §7.1 and Annex H).
//!
//! Only the legacy Annex H set is implemented: integrity `hmac-md5-96` and `hmac-sha-1-96`,
//! encryption `null`, `aes-cbc` and `des-ede3-cbc`. Other values in a Security-Client header are
//! kept byte-exact by [`crate::header`] and are simply not chosen.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// An ESP integrity algorithm ("alg" in TS 33.203 Annex H; "authentication algorithm" in RFC 4303).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IntegrityAlg {
    /// HMAC-MD5 truncated to 96 bits (RFC 2403); key IK_ESP = IK (TS 33.203 Annex I).
    HmacMd5_96,
    /// HMAC-SHA-1 truncated to 96 bits (RFC 2404); key IK_ESP = IK || 32 zero bits (Annex I).
    HmacSha1_96,
}

impl IntegrityAlg {
    /// Every supported integrity algorithm.
    pub const ALL: [Self; 2] = [Self::HmacSha1_96, Self::HmacMd5_96];

    /// The Annex H token (`hmac-md5-96`, `hmac-sha-1-96`).
    pub fn token(self) -> &'static str {
        match self {
            Self::HmacMd5_96 => "hmac-md5-96",
            Self::HmacSha1_96 => "hmac-sha-1-96",
        }
    }

    /// Length of IK_ESP in bytes: 16 for MD5, 20 for SHA-1.
    pub fn key_len(self) -> usize {
        match self {
            Self::HmacMd5_96 => 16,
            Self::HmacSha1_96 => 20,
        }
    }

    /// Length of the ICV in bytes: 12 (96 bits) for both (RFC 2403 §3, RFC 2404 §3).
    pub fn icv_len(self) -> usize {
        12
    }

    /// The Linux crypto API name used in XFRM (`hmac(md5)`, `hmac(sha1)`).
    pub fn xfrm_name(self) -> &'static str {
        match self {
            Self::HmacMd5_96 => "hmac(md5)",
            Self::HmacSha1_96 => "hmac(sha1)",
        }
    }

    /// The name in Wireshark's ESP SA table (`esp_sa` UAT).
    pub fn wireshark_name(self) -> &'static str {
        match self {
            Self::HmacMd5_96 => "HMAC-MD5-96 [RFC2403]",
            Self::HmacSha1_96 => "HMAC-SHA-1-96 [RFC2404]",
        }
    }
}

impl fmt::Display for IntegrityAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

impl FromStr for IntegrityAlg {
    type Err = Error;

    /// Parses an Annex H token, ignoring ASCII case (SIP tokens are case-insensitive).
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|a| a.token().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownAlgorithm {
                param: "alg",
                value: s.to_owned(),
            })
    }
}

/// An ESP encryption algorithm ("ealg" in TS 33.203 Annex H).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EncryptionAlg {
    /// No encryption (RFC 2410). An absent `ealg` means `null` (Annex H, legacy releases).
    Null,
    /// AES-128 in CBC mode (RFC 3602); key CK_ESP = CK (Annex I).
    AesCbc,
    /// Triple DES (EDE) in CBC mode (RFC 2451); key CK_ESP = CK1 || CK2 || CK1 (Annex I).
    DesEde3Cbc,
}

impl EncryptionAlg {
    /// Every supported encryption algorithm.
    pub const ALL: [Self; 3] = [Self::AesCbc, Self::DesEde3Cbc, Self::Null];

    /// The Annex H token (`null`, `aes-cbc`, `des-ede3-cbc`).
    pub fn token(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::AesCbc => "aes-cbc",
            Self::DesEde3Cbc => "des-ede3-cbc",
        }
    }

    /// Length of CK_ESP in bytes: 0, 16 or 24.
    pub fn key_len(self) -> usize {
        match self {
            Self::Null => 0,
            Self::AesCbc => 16,
            Self::DesEde3Cbc => 24,
        }
    }

    /// Length of the explicit IV carried in each ESP packet (RFC 3602 §3, RFC 2451 §3).
    pub fn iv_len(self) -> usize {
        match self {
            Self::Null => 0,
            Self::AesCbc => 16,
            Self::DesEde3Cbc => 8,
        }
    }

    /// The block size the ESP plaintext is padded to. With no cipher, RFC 4303 §2.4 still
    /// requires the Pad Length and Next Header fields to end on a 4-byte boundary.
    pub fn block_len(self) -> usize {
        match self {
            Self::Null => 4,
            Self::AesCbc => 16,
            Self::DesEde3Cbc => 8,
        }
    }

    /// The Linux crypto API name used in XFRM.
    pub fn xfrm_name(self) -> &'static str {
        match self {
            Self::Null => "ecb(cipher_null)",
            Self::AesCbc => "cbc(aes)",
            Self::DesEde3Cbc => "cbc(des3_ede)",
        }
    }

    /// The name in Wireshark's ESP SA table (`esp_sa` UAT).
    pub fn wireshark_name(self) -> &'static str {
        match self {
            Self::Null => "NULL",
            Self::AesCbc => "AES-CBC [RFC3602]",
            Self::DesEde3Cbc => "TripleDES-CBC [RFC2451]",
        }
    }
}

impl fmt::Display for EncryptionAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

impl FromStr for EncryptionAlg {
    type Err = Error;

    /// Parses an Annex H token, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|a| a.token().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownAlgorithm {
                param: "ealg",
                value: s.to_owned(),
            })
    }
}

/// An integrity and an encryption algorithm: what one ipsec-3gpp mechanism offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CipherSuite {
    /// The integrity algorithm (`alg`).
    pub integrity: IntegrityAlg,
    /// The encryption algorithm (`ealg`).
    pub encryption: EncryptionAlg,
}

impl CipherSuite {
    /// Both algorithms.
    pub fn new(integrity: IntegrityAlg, encryption: EncryptionAlg) -> Self {
        Self {
            integrity,
            encryption,
        }
    }

    /// Every combination of the supported algorithms, integrity-major.
    pub fn all() -> impl Iterator<Item = Self> {
        IntegrityAlg::ALL
            .into_iter()
            .flat_map(|i| EncryptionAlg::ALL.into_iter().map(move |e| Self::new(i, e)))
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.integrity, self.encryption)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_tokens_round_trip_ignoring_case() {
        for a in IntegrityAlg::ALL {
            assert_eq!(
                a.token()
                    .to_ascii_uppercase()
                    .parse::<IntegrityAlg>()
                    .unwrap(),
                a
            );
        }
        for e in EncryptionAlg::ALL {
            assert_eq!(e.token().parse::<EncryptionAlg>().unwrap(), e);
        }
        assert!("aes-gcm".parse::<EncryptionAlg>().is_err());
        assert!("hmac-sha-256".parse::<IntegrityAlg>().is_err());
    }

    #[test]
    fn all_suites_covers_six_pairs() {
        assert_eq!(CipherSuite::all().count(), 6);
    }
}
