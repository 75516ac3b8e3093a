//! AKA values that are not in `imslab_types`: RES, AK, MAC-A/MAC-S, AUTN and AUTS
//! (TS 33.102 §6.3.2 and §6.3.3).

use std::fmt;

use base64::Engine as _;
use imslab_types::{Amf, Sqn};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;

/// Standard base64 with padding, as RFC 3310 uses for `nonce` and `auts`; decoding accepts
/// missing padding too.
pub(crate) const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The response RES (UE side) or expected response XRES (network side), 32 to 128 bits
/// (TS 33.102 §6.3.7). Milenage's f2 gives 64 bits. A secret: `Debug` prints `Res(..)`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Res {
    bytes: [u8; 16],
    len: u8,
}

impl Res {
    /// Wraps 4 to 16 bytes (a RES or XRES received from elsewhere, e.g. a Cx SIP-Authorization AVP).
    pub fn from_slice(b: &[u8]) -> Result<Self, Error> {
        if !(4..=16).contains(&b.len()) {
            return Err(Error::InvalidResLength { len: b.len() });
        }
        let mut bytes = [0u8; 16];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Self {
            bytes,
            len: b.len() as u8,
        })
    }

    pub(crate) fn from_f2(b: [u8; 8]) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&b);
        Self { bytes, len: 8 }
    }

    /// The bytes. Call only to compute a digest or to send XRES over Cx, never to log.
    pub fn expose(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Lowercase hex, for explicit exports only.
    pub fn expose_hex(&self) -> String {
        hex::encode(self.expose())
    }
}

impl PartialEq for Res {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        crate::ct_eq(self.expose(), other.expose())
    }
}
impl Eq for Res {}

impl fmt::Debug for Res {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Res(..)")
    }
}

/// The anonymity key AK = f5(RAND) or AK* = f5*(RAND) (TS 33.102 §6.3.2, §6.3.3).
/// A secret: it hides SQN on the air.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Ak([u8; 6]);

impl Ak {
    pub(crate) fn new(b: [u8; 6]) -> Self {
        Self(b)
    }

    /// The bytes, for the cipher only.
    pub fn expose(&self) -> &[u8; 6] {
        &self.0
    }

    /// `sqn ⊕ AK`, as carried in AUTN and AUTS.
    pub fn conceal(&self, sqn: Sqn) -> [u8; 6] {
        xor6(sqn.to_bytes(), self.0)
    }

    /// Recovers SQN from `SQN ⊕ AK`.
    pub fn reveal(&self, concealed: [u8; 6]) -> Sqn {
        Sqn::from_bytes(xor6(concealed, self.0))
    }
}

impl fmt::Debug for Ak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ak(..)")
    }
}

fn xor6(a: [u8; 6], b: [u8; 6]) -> [u8; 6] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

macro_rules! public_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Size in bytes.
            pub const LEN: usize = $len;

            /// Parses exactly the right number of hex digits.
            pub fn from_hex(s: &str) -> Result<Self, Error> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s.trim(), &mut out)
                    .map_err(|_| Error::InvalidHex { what: stringify!($name), expected: 2 * $len })?;
                Ok(Self(out))
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
    /// MAC-A = f1(K, SQN, RAND, AMF), the network authentication code in AUTN (TS 33.102 §6.3.2).
    MacA,
    8
);
public_bytes!(
    /// MAC-S = f1*(K, SQN_MS, RAND, AMF), the resynchronisation code in AUTS (TS 33.102 §6.3.3).
    MacS,
    8
);
public_bytes!(
    /// The authentication token AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A (TS 33.102 §6.3.2).
    Autn,
    16
);
public_bytes!(
    /// The resynchronisation token AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S (TS 33.102 §6.3.3).
    Auts,
    14
);

impl Autn {
    /// Assembles AUTN from its three fields.
    pub fn new(sqn_xor_ak: [u8; 6], amf: Amf, mac_a: MacA) -> Self {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&sqn_xor_ak);
        b[6..8].copy_from_slice(&amf.0);
        b[8..].copy_from_slice(&mac_a.0);
        Self(b)
    }

    /// SQN ⊕ AK.
    pub fn sqn_xor_ak(&self) -> [u8; 6] {
        std::array::from_fn(|i| self.0[i])
    }

    /// The AMF field.
    pub fn amf(&self) -> Amf {
        Amf([self.0[6], self.0[7]])
    }

    /// MAC-A.
    pub fn mac_a(&self) -> MacA {
        MacA(std::array::from_fn(|i| self.0[8 + i]))
    }
}

impl Auts {
    /// Assembles AUTS from its two fields.
    pub fn new(sqn_ms_xor_ak_star: [u8; 6], mac_s: MacS) -> Self {
        let mut b = [0u8; 14];
        b[..6].copy_from_slice(&sqn_ms_xor_ak_star);
        b[6..].copy_from_slice(&mac_s.0);
        Self(b)
    }

    /// SQN_MS ⊕ AK*.
    pub fn sqn_ms_xor_ak_star(&self) -> [u8; 6] {
        std::array::from_fn(|i| self.0[i])
    }

    /// MAC-S.
    pub fn mac_s(&self) -> MacS {
        MacS(std::array::from_fn(|i| self.0[6 + i]))
    }

    /// The `auts` digest parameter: base64 of the 14 bytes (RFC 3310 §3.4).
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Parses the `auts` digest parameter (at most 64 characters).
    pub fn from_base64(s: &str) -> Result<Self, Error> {
        if s.len() > 64 {
            return Err(Error::MalformedAuts {
                what: "longer than 64 characters",
            });
        }
        let v = BASE64
            .decode(s.trim())
            .map_err(|_| Error::MalformedAuts { what: "not base64" })?;
        let b: [u8; 14] = v.try_into().map_err(|_| Error::MalformedAuts {
            what: "not 14 bytes",
        })?;
        Ok(Self(b))
    }
}
