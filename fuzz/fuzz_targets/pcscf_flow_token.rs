#![no_main]
// P-CSCF Path flow tokens and NAT alias values: imslab-pcscf.
libfuzzer_sys::fuzz_target!(|data: &[u8]| imslab_pcscf::fuzzing::flow_token(data));
