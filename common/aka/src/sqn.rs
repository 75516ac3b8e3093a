//! Sequence numbers per TS 33.102 Annex C: SQN = SEQ ‖ IND, the network's generation and
//! the USIM's freshness check with an array of SEQ_MS values, one per IND.

use imslab_types::Sqn;

use crate::{Error, SqnRejection};

/// How SQN is split and checked (TS 33.102 Annex C). Network and UE must agree on `ind_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqnConfig {
    ind_bits: u8,
    delta: u64,
    age_limit: Option<u64>,
}

impl Default for SqnConfig {
    /// IND of 5 bits (the length TS 33.102 Annex C.3.2 recommends, 32 vectors outstanding),
    /// Δ = 2^28, no age limit L.
    fn default() -> Self {
        Self {
            ind_bits: Self::DEFAULT_IND_BITS,
            delta: Self::DEFAULT_DELTA,
            age_limit: None,
        }
    }
}

impl SqnConfig {
    /// The default IND length in bits.
    pub const DEFAULT_IND_BITS: u8 = 5;
    /// The default Δ, the largest jump of SEQ the USIM accepts (Annex C.2.1).
    pub const DEFAULT_DELTA: u64 = 1 << 28;
    /// The largest IND length this crate accepts (a UE keeps 2^ind_bits array entries).
    pub const MAX_IND_BITS: u8 = 10;

    /// A configuration. `ind_bits` at most [`Self::MAX_IND_BITS`]; `delta` and `age_limit`
    /// (L, Annex C.2.2) at least 1.
    pub fn new(ind_bits: u8, delta: u64, age_limit: Option<u64>) -> Result<Self, Error> {
        if ind_bits > Self::MAX_IND_BITS {
            return Err(Error::InvalidSqnConfig {
                what: "IND length above 10 bits",
            });
        }
        if delta == 0 {
            return Err(Error::InvalidSqnConfig {
                what: "delta must be at least 1",
            });
        }
        if age_limit == Some(0) {
            return Err(Error::InvalidSqnConfig {
                what: "L must be at least 1",
            });
        }
        Ok(Self {
            ind_bits,
            delta,
            age_limit,
        })
    }

    /// IND length in bits.
    pub fn ind_bits(&self) -> u8 {
        self.ind_bits
    }

    /// Δ (Annex C.2.1).
    pub fn delta(&self) -> u64 {
        self.delta
    }

    /// L (Annex C.2.2), when used.
    pub fn age_limit(&self) -> Option<u64> {
        self.age_limit
    }

    /// Number of IND values, a = 2^ind_bits.
    pub fn ind_count(&self) -> usize {
        1 << self.ind_bits
    }

    /// The largest SEQ: 2^(48 - ind_bits) - 1.
    pub fn seq_max(&self) -> u64 {
        Sqn::MAX >> self.ind_bits
    }

    /// SEQ of an SQN.
    pub fn seq(&self, sqn: Sqn) -> u64 {
        sqn.value() >> self.ind_bits
    }

    /// IND of an SQN.
    pub fn ind(&self, sqn: Sqn) -> u32 {
        (sqn.value() & ((1 << self.ind_bits) - 1)) as u32
    }

    /// SEQ ‖ IND.
    pub fn compose(&self, seq: u64, ind: u32) -> Result<Sqn, Error> {
        if seq > self.seq_max() {
            return Err(Error::SqnExhausted {
                max: self.seq_max(),
            });
        }
        let ind = u64::from(ind) & ((1 << self.ind_bits) - 1);
        Sqn::new((seq << self.ind_bits) | ind).map_err(|_| Error::SqnExhausted {
            max: self.seq_max(),
        })
    }

    /// The network's next SQN after `last` (TS 33.102 Annex C.1.2 and C.3.2, profile 1 with
    /// cyclic IND allocation): SEQ + 1, and IND + 1 modulo a, so up to a vectors can be
    /// outstanding and used in any order. SQN_HE starts at 0 for a new subscriber.
    pub fn next_sqn(&self, last: Sqn) -> Result<Sqn, Error> {
        let seq = self.seq(last) + 1;
        let ind = (self.ind(last) + 1) % (1 << self.ind_bits);
        self.compose(seq, ind)
    }

    /// Whether a USIM whose highest accepted SQN is `sqn_ms` accepts `sqn`: SEQ above SEQ_MS
    /// by at most Δ (the network's range check of TS 33.102 §6.3.5 step 2).
    pub fn in_range(&self, sqn: Sqn, sqn_ms: Sqn) -> bool {
        let (seq, seq_ms) = (self.seq(sqn), self.seq(sqn_ms));
        seq > seq_ms && seq - seq_ms <= self.delta
    }
}

/// The USIM's sequence number memory (TS 33.102 Annex C.2): SEQ_MS(i) for each IND value i,
/// and SQN_MS, the highest SQN accepted anywhere in the array. Starts at all zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqnArray {
    config: SqnConfig,
    seq_ms: Vec<u64>,
    sqn_ms: Sqn,
}

impl SqnArray {
    /// A fresh card: every SEQ_MS(i) is zero (Annex C.2.2).
    pub fn new(config: SqnConfig) -> Self {
        Self {
            config,
            seq_ms: vec![0; config.ind_count()],
            sqn_ms: Sqn::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SqnConfig {
        &self.config
    }

    /// SQN_MS, the highest accepted sequence number, sent in AUTS.
    pub fn sqn_ms(&self) -> Sqn {
        self.sqn_ms
    }

    /// SEQ_MS(i).
    pub fn seq_ms(&self, ind: u32) -> Option<u64> {
        self.seq_ms.get(ind as usize).copied()
    }

    /// The freshness check of Annex C.2.1 and C.2.2, without changing anything.
    pub fn check(&self, sqn: Sqn) -> Result<(), SqnRejection> {
        let c = &self.config;
        let (seq, ind) = (c.seq(sqn), c.ind(sqn));
        let seq_ms = c.seq(self.sqn_ms);
        if seq > seq_ms && seq - seq_ms > c.delta {
            return Err(SqnRejection::TooFarAhead {
                seq,
                seq_ms,
                delta: c.delta,
            });
        }
        if let Some(limit) = c.age_limit
            && seq_ms >= seq
            && seq_ms - seq >= limit
        {
            return Err(SqnRejection::TooOld { seq, seq_ms, limit });
        }
        let seq_ms_ind = self.seq_ms.get(ind as usize).copied().unwrap_or(u64::MAX);
        if seq <= seq_ms_ind {
            return Err(SqnRejection::NotFresh {
                seq,
                seq_ms_ind,
                ind,
            });
        }
        Ok(())
    }

    /// Records an accepted SQN: SEQ_MS(IND) = SEQ, and SQN_MS if it is the highest.
    /// Call only after [`Self::check`] passed.
    pub fn accept(&mut self, sqn: Sqn) {
        let (seq, ind) = (self.config.seq(sqn), self.config.ind(sqn) as usize);
        if let Some(slot) = self.seq_ms.get_mut(ind) {
            *slot = seq;
        }
        if sqn > self.sqn_ms {
            self.sqn_ms = sqn;
        }
    }

    /// Checks and, if fresh, records (the USIM's whole step).
    pub fn check_and_accept(&mut self, sqn: Sqn) -> Result<(), SqnRejection> {
        self.check(sqn)?;
        self.accept(sqn);
        Ok(())
    }
}
