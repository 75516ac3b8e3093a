//! Wireshark's ESP SA table (`esp_sa` UAT), so a capture of protected traffic opens decrypted.
//!
//! Write [`esp_sa_file`] next to the pcap as `esp_sa` in a Wireshark profile directory, or
//! pass each line to tshark with `-o "uat:esp_sa:<line>"`, together with
//! `-o esp.enable_encryption_decode:TRUE` (and `-o esp.enable_authentication_check:TRUE` to
//! have the ICVs verified). One line per SA:
//!
//! ```text
//! "IPv4","127.0.0.2","127.0.0.1","0x0043d11c","AES-CBC [RFC3602]","0x…","HMAC-SHA-1-96 [RFC2404]","0x…"
//! ```
//!
//! The file holds keys: write it only where captures are written, for lab use.

use std::fmt::Write as _;

use crate::sa::{SaBundle, SecurityAssociation};

/// One `esp_sa` record for one SA of `bundle`.
pub fn esp_sa_line(sa: &SecurityAssociation, bundle: &SaBundle) -> String {
    let suite = bundle.suite();
    let proto = if sa.src.is_ipv4() { "IPv4" } else { "IPv6" };
    let ck = bundle.keys.encryption().expose();
    let ck = if ck.is_empty() {
        String::new()
    } else {
        format!("0x{}", hex::encode(ck))
    };
    format!(
        "\"{proto}\",\"{}\",\"{}\",\"{:#010x}\",\"{}\",\"{ck}\",\"{}\",\"0x{}\"",
        sa.src.ip(),
        sa.dst.ip(),
        sa.spi.0,
        suite.encryption.wireshark_name(),
        suite.integrity.wireshark_name(),
        hex::encode(bundle.keys.integrity().expose()),
    )
}

/// A whole `esp_sa` file: the four SAs of every bundle.
pub fn esp_sa_file<'a>(bundles: impl IntoIterator<Item = &'a SaBundle>) -> String {
    let mut out =
        String::from("# Wireshark ESP SAs (esp_sa UAT) written by imslab. Contains keys.\n");
    for b in bundles {
        for sa in b.sas() {
            let _ = writeln!(out, "{}", esp_sa_line(&sa, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::{CipherSuite, EncryptionAlg, IntegrityAlg};
    use crate::keys::EspKeys;
    use crate::sa::{Endpoint, SaRole};
    use crate::spi::Spi;

    #[test]
    fn line_names_algorithms_and_keys_as_wireshark_expects() {
        let suite = CipherSuite::new(IntegrityAlg::HmacMd5_96, EncryptionAlg::Null);
        let keys = EspKeys::from_raw(suite, &[0xab; 16], &[]).unwrap();
        let l = Endpoint {
            ip: "127.0.0.1".parse().unwrap(),
            spi_c: Spi(1),
            spi_s: Spi(0x1000),
            port_c: 5100,
            port_s: 6100,
        };
        let r = Endpoint {
            ip: "127.0.0.2".parse().unwrap(),
            spi_c: Spi(3),
            spi_s: Spi(4),
            port_c: 5062,
            port_s: 5064,
        };
        let b = SaBundle::new(l, r, keys);
        assert_eq!(
            esp_sa_line(&b.sa(SaRole::InboundToServer), &b),
            format!(
                "\"IPv4\",\"127.0.0.2\",\"127.0.0.1\",\"0x00001000\",\"NULL\",\"\",\"HMAC-MD5-96 [RFC2403]\",\"0x{}\"",
                "ab".repeat(16)
            )
        );
        assert_eq!(esp_sa_file([&b]).lines().count(), 5);
    }
}
