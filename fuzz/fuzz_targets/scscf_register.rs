//! S-CSCF: arbitrary SIP messages as REGISTER, SUBSCRIBE and other requests into the registrar.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imslab_scscf::fuzzing::register(data));
