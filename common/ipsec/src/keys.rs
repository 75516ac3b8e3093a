//! ESP keys from the IMS AKA keys (TS 33.203 Annex I).
//!
//! - `hmac-md5-96`: IK_ESP = IK_IM (128 bits).
//! - `hmac-sha-1-96`: IK_ESP = IK_IM || 32 zero bits (160 bits).
//! - `aes-cbc`: CK_ESP = CK_IM (128 bits).
//! - `des-ede3-cbc`: CK_IM = CK_IM1 || CK_IM2 (64 bits each); CK_ESP = CK_IM1 || CK_IM2 || CK_IM1.
//! - `null`: no key.
//!
//! IK_IM and CK_IM are the IK and CK of the AKA run, which the P-CSCF takes from the `ik=` and
//! `ck=` parameters of the S-CSCF's 401 (TS 24.229 §5.2.2.1) and the UE computes itself.

use std::fmt;

use imslab_types::{Ck, Ik};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;
use crate::alg::{CipherSuite, EncryptionAlg, IntegrityAlg};

/// A secret key of variable length (at most 24 bytes). `Debug` hides the bytes; zeroized on
/// drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
struct KeyBytes {
    buf: [u8; 24],
    len: u8,
}

impl KeyBytes {
    fn new(bytes: &[u8]) -> Self {
        let mut buf = [0u8; 24];
        let len = bytes.len().min(24);
        buf[..len].copy_from_slice(&bytes[..len]);
        Self {
            buf,
            len: len as u8,
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// IK_ESP: the ESP integrity key.
#[derive(Clone, PartialEq, Eq)]
pub struct IntegrityKey(KeyBytes);

/// CK_ESP: the ESP encryption key (empty for `null`).
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey(KeyBytes);

impl IntegrityKey {
    /// The key bytes. Call only where the key is used: the cipher, XFRM, a Wireshark key file.
    pub fn expose(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl EncryptionKey {
    /// The key bytes. Call only where the key is used: the cipher, XFRM, a Wireshark key file.
    pub fn expose(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IntegrityKey(..)")
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(..)")
    }
}

/// The keys of one SA set, for an agreed suite. All four SAs of a UE share them
/// (TS 33.203 §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspKeys {
    suite: CipherSuite,
    integrity: IntegrityKey,
    encryption: EncryptionKey,
}

impl EspKeys {
    /// Derives IK_ESP and CK_ESP from IK and CK for `suite` (TS 33.203 Annex I).
    pub fn derive(suite: CipherSuite, ik: &Ik, ck: &Ck) -> Self {
        let ik = ik.expose();
        let ck = ck.expose();
        let mut ik_esp = [0u8; 20];
        ik_esp[..16].copy_from_slice(ik);
        let integrity = match suite.integrity {
            IntegrityAlg::HmacMd5_96 => KeyBytes::new(&ik_esp[..16]),
            IntegrityAlg::HmacSha1_96 => KeyBytes::new(&ik_esp),
        };
        ik_esp.zeroize();
        let mut ck_esp = [0u8; 24];
        ck_esp[..16].copy_from_slice(ck);
        ck_esp[16..].copy_from_slice(&ck[..8]);
        let encryption = match suite.encryption {
            EncryptionAlg::Null => KeyBytes::new(&[]),
            EncryptionAlg::AesCbc => KeyBytes::new(&ck_esp[..16]),
            EncryptionAlg::DesEde3Cbc => KeyBytes::new(&ck_esp),
        };
        ck_esp.zeroize();
        Self {
            suite,
            integrity: IntegrityKey(integrity),
            encryption: EncryptionKey(encryption),
        }
    }

    /// Keys given directly (for tests and tools), checked against the suite's key lengths.
    pub fn from_raw(
        suite: CipherSuite,
        integrity: &[u8],
        encryption: &[u8],
    ) -> Result<Self, Error> {
        if integrity.len() != suite.integrity.key_len() {
            return Err(Error::BadKeyLength {
                what: "IK_ESP",
                expected: suite.integrity.key_len(),
                got: integrity.len(),
            });
        }
        if encryption.len() != suite.encryption.key_len() {
            return Err(Error::BadKeyLength {
                what: "CK_ESP",
                expected: suite.encryption.key_len(),
                got: encryption.len(),
            });
        }
        Ok(Self {
            suite,
            integrity: IntegrityKey(KeyBytes::new(integrity)),
            encryption: EncryptionKey(KeyBytes::new(encryption)),
        })
    }

    /// The suite these keys are for.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// IK_ESP.
    pub fn integrity(&self) -> &IntegrityKey {
        &self.integrity
    }

    /// CK_ESP.
    pub fn encryption(&self) -> &EncryptionKey {
        &self.encryption
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Example {
        case: String,
        ik: Ik,
        ck: Ck,
        expected: Vec<(CipherSuite, String, String)>,
    }

    /// The worked examples of `../shared/vectors/ims_aka_ipsec.json`, copied to testdata.
    fn examples() -> Vec<Example> {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/ims_aka_ipsec.json")).unwrap();
        let s = |x: &serde_json::Value| x.as_str().unwrap().to_owned();
        v["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let iks = &e["IK_ESP"];
                let cks = &e["CK_ESP"];
                let ik_for = |a: IntegrityAlg| match a {
                    IntegrityAlg::HmacMd5_96 => s(&iks["hmac-md5-96 (128 bit)"]),
                    IntegrityAlg::HmacSha1_96 => s(&iks["hmac-sha-1-96 (160 bit)"]),
                };
                let ck_for = |a: EncryptionAlg| match a {
                    EncryptionAlg::Null => s(&cks["null"]),
                    EncryptionAlg::AesCbc => s(&cks["aes-cbc (128 bit)"]),
                    EncryptionAlg::DesEde3Cbc => s(&cks["des-ede3-cbc (192 bit)"]),
                };
                Example {
                    case: s(&e["from_case"]),
                    ik: Ik::from_hex(e["IK"].as_str().unwrap()).unwrap(),
                    ck: Ck::from_hex(e["CK"].as_str().unwrap()).unwrap(),
                    expected: CipherSuite::all()
                        .map(|suite| (suite, ik_for(suite.integrity), ck_for(suite.encryption)))
                        .collect(),
                }
            })
            .collect()
    }

    #[test]
    fn derived_keys_match_every_worked_example_of_annex_i() {
        let ex = examples();
        assert_eq!(ex.len(), 4);
        for e in ex {
            for (suite, ik_esp, ck_esp) in &e.expected {
                let k = EspKeys::derive(*suite, &e.ik, &e.ck);
                assert_eq!(
                    hex::encode(k.integrity().expose()),
                    *ik_esp,
                    "{} {suite}",
                    e.case
                );
                assert_eq!(
                    hex::encode(k.encryption().expose()),
                    *ck_esp,
                    "{} {suite}",
                    e.case
                );
            }
        }
    }

    #[test]
    fn key_lengths_follow_the_suite() {
        let ik = Ik::from_bytes([1; 16]);
        let ck = Ck::from_bytes([2; 16]);
        for suite in CipherSuite::all() {
            let k = EspKeys::derive(suite, &ik, &ck);
            assert_eq!(k.integrity().expose().len(), suite.integrity.key_len());
            assert_eq!(k.encryption().expose().len(), suite.encryption.key_len());
        }
    }

    #[test]
    fn raw_keys_of_wrong_length_are_rejected() {
        let suite = CipherSuite::new(IntegrityAlg::HmacSha1_96, EncryptionAlg::AesCbc);
        assert!(EspKeys::from_raw(suite, &[0; 20], &[0; 16]).is_ok());
        assert!(matches!(
            EspKeys::from_raw(suite, &[0; 16], &[0; 16]),
            Err(Error::BadKeyLength {
                what: "IK_ESP",
                expected: 20,
                got: 16
            })
        ));
        assert!(EspKeys::from_raw(suite, &[0; 20], &[0; 24]).is_err());
    }

    #[test]
    fn keys_never_show_their_bytes_in_debug() {
        let k = EspKeys::derive(
            CipherSuite::new(IntegrityAlg::HmacSha1_96, EncryptionAlg::AesCbc),
            &Ik::from_bytes([0xab; 16]),
            &Ck::from_bytes([0xcd; 16]),
        );
        let shown = format!("{k:?}");
        assert!(shown.contains("IntegrityKey(..)") && shown.contains("EncryptionKey(..)"));
        assert!(!shown.contains("ab") && !shown.contains("cd") && !shown.contains("171"));
    }
}
