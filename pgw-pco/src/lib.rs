//! P-GW PCO stub: GTPv2-C S5/S8 that hands P-CSCF addresses to attaching phones
#![forbid(unsafe_code)]
