//! A USIM model for the soft UE: verifies AUTN, keeps the SQN array, returns RES/CK/IK or
//! AUTS (TS 33.102 §6.3.3, Annex C.2).

use imslab_types::{Ck, Ik, K, Op, Opc, Rand};

use crate::milenage::Milenage;
use crate::sqn::{SqnArray, SqnConfig};
use crate::values::{Autn, Auts, Res};
use crate::vector::{AmfPolicy, Nonce, generate_auts};
use crate::{Error, ct_eq};

/// What a successful AUTHENTICATE returns (TS 33.102 §6.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkaResult {
    /// RES, the digest password source.
    pub res: Res,
    /// The cipher key.
    pub ck: Ck,
    /// The integrity key.
    pub ik: Ik,
}

/// A USIM: K, OPc, the SQN array, and the AMF policy of the terminal that hosts it.
#[derive(Debug)]
pub struct Usim {
    milenage: Milenage,
    sqn: SqnArray,
    amf_policy: AmfPolicy,
}

impl Usim {
    /// A fresh card (all SEQ_MS zero) with K and OPc, the default SQN layout and IMS AMF policy.
    pub fn new(k: &K, opc: &Opc) -> Self {
        Self::with_config(Milenage::new(k, opc), SqnConfig::default(), AmfPolicy::Ims)
    }

    /// A fresh card configured with OP instead of OPc.
    pub fn with_op(k: &K, op: &Op) -> Self {
        Self::with_config(
            Milenage::with_op(k, op),
            SqnConfig::default(),
            AmfPolicy::Ims,
        )
    }

    /// A fresh card with an explicit SQN layout and AMF policy.
    pub fn with_config(milenage: Milenage, sqn: SqnConfig, amf_policy: AmfPolicy) -> Self {
        Self {
            milenage,
            sqn: SqnArray::new(sqn),
            amf_policy,
        }
    }

    /// The SQN memory, for inspection.
    pub fn sqn_array(&self) -> &SqnArray {
        &self.sqn
    }

    /// Replaces the SQN memory (a card that already saw other networks).
    pub fn set_sqn_array(&mut self, sqn: SqnArray) {
        self.sqn = sqn;
    }

    /// AUTHENTICATE (TS 33.102 §6.3.3), in the order the USIM applies the checks:
    /// 1. AK = f5(RAND), SQN = (SQN ⊕ AK) ⊕ AK;
    /// 2. XMAC = f1(SQN, RAND, AMF) must equal MAC-A, else [`Error::MacFailure`];
    /// 3. the AMF separation bit must match the policy, else [`Error::AmfInvalid`];
    /// 4. SQN must be fresh (Annex C.2), else [`Error::SyncFailure`] with
    ///    AUTS = (SQN_MS ⊕ AK*) ‖ f1*(SQN_MS, RAND, AMF = 0000). A replayed AUTN fails here.
    ///
    /// Only a success changes the SQN array.
    pub fn authenticate(&mut self, rand: &Rand, autn: &Autn) -> Result<AkaResult, Error> {
        let (temp, out) = self.milenage.ue_outputs(rand);
        let sqn = out.ak.reveal(autn.sqn_xor_ak());
        let amf = autn.amf();
        let xmac = self.milenage.f1_with_temp(temp, sqn, amf);
        if !ct_eq(&xmac.0, &autn.mac_a().0) {
            return Err(Error::MacFailure);
        }
        self.amf_policy.check(amf)?;
        if let Err(reason) = self.sqn.check_and_accept(sqn) {
            return Err(Error::SyncFailure {
                auts: self.auts(rand),
                reason,
            });
        }
        Ok(AkaResult {
            res: out.res,
            ck: out.ck,
            ik: out.ik,
        })
    }

    /// AUTHENTICATE on a digest nonce (RFC 3310 §3.2): decodes RAND ‖ AUTN first.
    pub fn authenticate_nonce(&mut self, nonce: &str) -> Result<AkaResult, Error> {
        let n = Nonce::parse(nonce)?;
        self.authenticate(&n.rand, &n.autn)
    }

    /// AUTS for `rand` from the current SQN_MS.
    pub fn auts(&self, rand: &Rand) -> Auts {
        generate_auts(&self.milenage, rand, self.sqn.sqn_ms())
    }
}
