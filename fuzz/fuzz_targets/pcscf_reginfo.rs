#![no_main]
// reginfo documents of reg-event NOTIFYs (RFC 3680) as the P-CSCF reads them: imslab-pcscf.
libfuzzer_sys::fuzz_target!(|data: &[u8]| imslab_pcscf::fuzzing::reginfo(data));
