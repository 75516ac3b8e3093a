//! SIP URI comparison (RFC 3261 §19.1.4): reflexive, symmetric, stable under printing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imslab_sip::fuzzing::uri_equivalence(data));
