//! P-CSCF: the phones' first hop, security agreement and IPsec
#![forbid(unsafe_code)]
