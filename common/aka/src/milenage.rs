//! MILENAGE f1, f1*, f2, f3, f4, f5, f5* and OPc derivation (TS 35.206 §4).
//!
//! Written here on `aes` 0.9 rather than taken from the `milenage` crate (which the tests use as
//! an independent oracle), because:
//! - the AES key schedule is expanded once per subscriber and reused for every vector, and
//!   OUT1..OUT4 are encrypted as one 4-block batch (AES-NI pipelines them): vector generation
//!   is several times faster than building a cipher per function call;
//! - K never sits in a plain field: the expanded key and OPc are zeroized on drop and `Debug`
//!   prints nothing secret (`milenage` 0.3.1 derives `Debug` over K and keeps outputs cached
//!   behind `&mut self`);
//! - f1..f5* take the typed values of `imslab_types` directly.

use std::fmt;

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use imslab_types::{Amf, Ck, Ik, K, Op, Opc, Rand, Sqn};
use zeroize::Zeroize;

use crate::values::{Ak, MacA, MacS, Res};

// TS 35.206 §4.1: rotation amounts r1..r5 (bits) and constants c1..c5.
const R1: u32 = 64;
const R2: u32 = 0;
const R3: u32 = 32;
const R4: u32 = 64;
const R5: u32 = 96;
const C1: u128 = 0;
const C2: u128 = 1;
const C3: u128 = 2;
const C4: u128 = 4;
const C5: u128 = 8;

/// A MILENAGE instance keyed for one subscriber: K's AES key schedule plus OPc.
///
/// Build it once per subscriber (HSS: when loading the subscriber; soft UE: in the USIM) and
/// reuse it; every function is `&self`.
pub struct Milenage {
    aes: Aes128,
    opc: u128,
}

impl Drop for Milenage {
    fn drop(&mut self) {
        // The AES key schedule zeroizes itself (aes `zeroize` feature).
        self.opc.zeroize();
    }
}

impl fmt::Debug for Milenage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Milenage(..)")
    }
}

/// The outputs of f2, f3, f4 and f5 for one RAND.
#[derive(Debug, Clone)]
pub struct F2345 {
    /// f2: RES / XRES (64 bits).
    pub res: Res,
    /// f3: the cipher key.
    pub ck: Ck,
    /// f4: the integrity key.
    pub ik: Ik,
    /// f5: the anonymity key.
    pub ak: Ak,
}

impl Milenage {
    /// Keys an instance with K and OPc (the usual case: OPc is what cards and HSSs store).
    pub fn new(k: &K, opc: &Opc) -> Self {
        Self {
            aes: Aes128::new(&(*k.expose()).into()),
            opc: u128::from_be_bytes(*opc.expose()),
        }
    }

    /// Keys an instance with K and OP, deriving OPc (TS 35.206 §4.1).
    pub fn with_op(k: &K, op: &Op) -> Self {
        let aes = Aes128::new(&(*k.expose()).into());
        let op = u128::from_be_bytes(*op.expose());
        let opc = encrypt(&aes, op) ^ op;
        Self { aes, opc }
    }

    /// OPc = OP ⊕ E_K(OP) (TS 35.206 §4.1).
    pub fn derive_opc(k: &K, op: &Op) -> Opc {
        Self::with_op(k, op).opc()
    }

    /// The OPc in use.
    pub fn opc(&self) -> Opc {
        Opc::from_bytes(self.opc.to_be_bytes())
    }

    /// TEMP = E_K(RAND ⊕ OPc).
    fn temp(&self, rand: &Rand) -> u128 {
        encrypt(&self.aes, u128::from_be_bytes(rand.0) ^ self.opc)
    }

    /// The input block of OUT1 before encryption: TEMP ⊕ rot(IN1 ⊕ OPc, r1) ⊕ c1.
    fn in1_block(&self, temp: u128, sqn: Sqn, amf: Amf) -> u128 {
        let half = (sqn.value() << 16) | u64::from(u16::from_be_bytes(amf.0));
        let in1 = (u128::from(half) << 64) | u128::from(half);
        temp ^ (in1 ^ self.opc).rotate_left(R1) ^ C1
    }

    /// The input block of OUTn (n = 2..5) before encryption: rot(TEMP ⊕ OPc, rn) ⊕ cn.
    fn outn_block(&self, temp: u128, r: u32, c: u128) -> u128 {
        (temp ^ self.opc).rotate_left(r) ^ c
    }

    /// OUT1 = E_K(TEMP ⊕ rot(IN1 ⊕ OPc, r1) ⊕ c1) ⊕ OPc; f1 is its top half, f1* its bottom.
    fn out1(&self, temp: u128, sqn: Sqn, amf: Amf) -> u128 {
        encrypt(&self.aes, self.in1_block(temp, sqn, amf)) ^ self.opc
    }

    /// f1: MAC-A (TS 35.206 §4.1).
    pub fn f1(&self, rand: &Rand, sqn: Sqn, amf: Amf) -> MacA {
        MacA(high64(self.out1(self.temp(rand), sqn, amf)))
    }

    /// f1*: MAC-S (TS 35.206 §4.1).
    pub fn f1_star(&self, rand: &Rand, sqn: Sqn, amf: Amf) -> MacS {
        MacS(low64(self.out1(self.temp(rand), sqn, amf)))
    }

    /// f2, f3, f4 and f5 together, sharing TEMP and one 3-block AES batch.
    pub fn f2345(&self, rand: &Rand) -> F2345 {
        self.ue_outputs(rand).1
    }

    /// f2: RES (TS 35.206 §4.1).
    pub fn f2(&self, rand: &Rand) -> Res {
        Res::from_f2(low64(self.out_n(rand, R2, C2)))
    }

    /// f3: CK.
    pub fn f3(&self, rand: &Rand) -> Ck {
        Ck::from_bytes(self.out_n(rand, R3, C3).to_be_bytes())
    }

    /// f4: IK.
    pub fn f4(&self, rand: &Rand) -> Ik {
        Ik::from_bytes(self.out_n(rand, R4, C4).to_be_bytes())
    }

    /// f5: AK.
    pub fn f5(&self, rand: &Rand) -> Ak {
        Ak::new(high48(self.out_n(rand, R2, C2)))
    }

    /// f5*: AK for resynchronisation (TS 35.206 §4.1).
    pub fn f5_star(&self, rand: &Rand) -> Ak {
        Ak::new(high48(self.out_n(rand, R5, C5)))
    }

    fn out_n(&self, rand: &Rand, r: u32, c: u128) -> u128 {
        encrypt(&self.aes, self.outn_block(self.temp(rand), r, c)) ^ self.opc
    }

    /// Everything a vector needs: MAC-A and f2..f5 from one TEMP and one 4-block batch.
    pub(crate) fn vector_outputs(&self, rand: &Rand, sqn: Sqn, amf: Amf) -> (MacA, F2345) {
        let temp = self.temp(rand);
        let [out1, out2, out3, out4] = encrypt_n(
            &self.aes,
            [
                self.in1_block(temp, sqn, amf),
                self.outn_block(temp, R2, C2),
                self.outn_block(temp, R3, C3),
                self.outn_block(temp, R4, C4),
            ],
        )
        .map(|o| o ^ self.opc);
        (MacA(high64(out1)), f2345_from(out2, out3, out4))
    }

    /// The USIM's path (TS 33.102 §6.3.3): AK first (to recover SQN), then MAC-A.
    /// Returns TEMP too so that the caller does not encrypt RAND twice.
    pub(crate) fn ue_outputs(&self, rand: &Rand) -> (u128, F2345) {
        let temp = self.temp(rand);
        let [out2, out3, out4] = encrypt_n(
            &self.aes,
            [
                self.outn_block(temp, R2, C2),
                self.outn_block(temp, R3, C3),
                self.outn_block(temp, R4, C4),
            ],
        )
        .map(|o| o ^ self.opc);
        (temp, f2345_from(out2, out3, out4))
    }

    /// f1 from a TEMP computed by [`Self::ue_outputs`].
    pub(crate) fn f1_with_temp(&self, temp: u128, sqn: Sqn, amf: Amf) -> MacA {
        MacA(high64(self.out1(temp, sqn, amf)))
    }
}

fn f2345_from(out2: u128, out3: u128, out4: u128) -> F2345 {
    F2345 {
        res: Res::from_f2(low64(out2)),
        ck: Ck::from_bytes(out3.to_be_bytes()),
        ik: Ik::from_bytes(out4.to_be_bytes()),
        ak: Ak::new(high48(out2)),
    }
}

fn encrypt(aes: &Aes128, x: u128) -> u128 {
    let mut block = aes::Block::from(x.to_be_bytes());
    aes.encrypt_block(&mut block);
    u128::from_be_bytes(block.into())
}

fn encrypt_n<const N: usize>(aes: &Aes128, xs: [u128; N]) -> [u128; N] {
    let mut blocks: [aes::Block; N] = xs.map(|x| aes::Block::from(x.to_be_bytes()));
    aes.encrypt_blocks(&mut blocks);
    blocks.map(|b| u128::from_be_bytes(b.into()))
}

fn high64(x: u128) -> [u8; 8] {
    ((x >> 64) as u64).to_be_bytes()
}

fn low64(x: u128) -> [u8; 8] {
    (x as u64).to_be_bytes()
}

fn high48(x: u128) -> [u8; 6] {
    let b = x.to_be_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}
