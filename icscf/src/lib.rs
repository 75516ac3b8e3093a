//! I-CSCF: S-CSCF selection over Cx (UAR, LIR)
#![forbid(unsafe_code)]
