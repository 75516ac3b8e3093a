//! Subscriber keys and AKA values (TS 33.102 §6.3, TS 35.206).
//!
//! Keys ([`K`], [`Op`], [`Opc`], [`Ck`], [`Ik`]) are secrets: `Debug` prints only the type name,
//! there is no `Display`, and the bytes are zeroized on drop. Use [`K::expose`] (and friends)
//! where the bytes are genuinely needed: in the cipher, or in the store.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;

fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    let s = s.trim();
    if s.len() != 2 * N {
        return Err(Error::InvalidHex {
            what,
            expected: 2 * N,
        });
    }
    hex::decode_to_slice(s, &mut out).map_err(|_| Error::InvalidHex {
        what,
        expected: 2 * N,
    })?;
    Ok(out)
}

macro_rules! secret {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Size in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            pub fn from_bytes(b: [u8; $len]) -> Self {
                Self(b)
            }

            /// Parses exactly the right number of hex digits (surrounding spaces allowed).
            pub fn from_hex(s: &str) -> Result<Self, Error> {
                parse_hex::<$len>(stringify!($name), s).map(Self)
            }

            /// The secret bytes. Call only where the key is used or stored, never to log it.
            pub fn expose(&self) -> &[u8; $len] {
                &self.0
            }

            /// The secret as lowercase hex, for the store and explicit exports only.
            pub fn expose_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret!(
    /// The subscriber key K, 128 bits (TS 33.102 §6.3.7).
    K,
    16
);
secret!(
    /// The operator variant algorithm configuration field OP (TS 35.206 §2).
    Op,
    16
);
secret!(
    /// OPc, derived from OP and K (TS 35.206 §4.1); stored on the card instead of OP.
    Opc,
    16
);
secret!(
    /// Cipher key CK from f3 (TS 33.102 §6.3.2).
    Ck,
    16
);
secret!(
    /// Integrity key IK from f4 (TS 33.102 §6.3.2).
    Ik,
    16
);

macro_rules! public_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Parses exactly the right number of hex digits.
            pub fn from_hex(s: &str) -> Result<Self, Error> {
                parse_hex::<$len>(stringify!($name), s).map(Self)
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }
    };
}

public_bytes!(
    /// The random challenge RAND, 128 bits (TS 33.102 §6.3.2).
    Rand,
    16
);
public_bytes!(
    /// The authentication management field AMF, 16 bits (TS 33.102 Annex F).
    Amf,
    2
);

impl Amf {
    /// The AMF separation bit (bit 0, the most significant) that marks E-UTRAN vectors
    /// (TS 33.401 §6.1.1); IMS vectors keep it clear.
    pub fn separation_bit(&self) -> bool {
        self.0[0] & 0x80 != 0
    }
}

/// A 48-bit sequence number (TS 33.102 §6.3.2 and Annex C).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Sqn(u64);

impl Sqn {
    /// The largest SQN, 2^48 - 1.
    pub const MAX: u64 = (1 << 48) - 1;

    /// Wraps a value below 2^48.
    pub fn new(v: u64) -> Result<Self, Error> {
        if v <= Self::MAX {
            Ok(Self(v))
        } else {
            Err(Error::SqnOutOfRange(v))
        }
    }

    /// From the 6 big-endian bytes carried in AUTN and AUTS.
    pub fn from_bytes(b: [u8; 6]) -> Self {
        let mut v = [0u8; 8];
        v[2..].copy_from_slice(&b);
        Self(u64::from_be_bytes(v))
    }

    /// The 6 big-endian bytes.
    pub fn to_bytes(self) -> [u8; 6] {
        let b = self.0.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    /// The value.
    pub fn value(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_their_bytes_in_debug() {
        let k = K::from_hex("465b5ce8b199b49faa5f0a2ee238a6bc").unwrap();
        let shown = format!("{k:?} {:?}", Opc::from_bytes([0xab; 16]));
        assert_eq!(shown, "K(..) Opc(..)");
        assert!(!shown.contains("465b"));
    }

    #[test]
    fn key_hex_must_have_exact_length() {
        assert!(K::from_hex("465b5ce8b199b49faa5f0a2ee238a6bc").is_ok());
        assert!(K::from_hex("465b5ce8b199b49faa5f0a2ee238a6").is_err());
        assert!(K::from_hex("zz5b5ce8b199b49faa5f0a2ee238a6bc").is_err());
        assert_eq!(
            K::from_hex("00"),
            Err(Error::InvalidHex {
                what: "K",
                expected: 32
            })
        );
    }

    #[test]
    fn sqn_round_trips_through_six_bytes() {
        let s = Sqn::new(0xff9b_b4d0_b607).unwrap();
        assert_eq!(s.to_bytes(), [0xff, 0x9b, 0xb4, 0xd0, 0xb6, 0x07]);
        assert_eq!(Sqn::from_bytes(s.to_bytes()), s);
        assert!(Sqn::new(1 << 48).is_err());
    }

    #[test]
    fn amf_separation_bit_is_the_top_bit() {
        assert!(Amf([0x80, 0x00]).separation_bit());
        assert!(!Amf([0x00, 0x00]).separation_bit());
    }
}
