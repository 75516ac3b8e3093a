#![no_main]
// Security-Client/Server/Verify values (RFC 3329, TS 33.203 Annex H): imslab-ipsec.
libfuzzer_sys::fuzz_target!(|data: &[u8]| imslab_ipsec::fuzzing::sec_agree_header(data));
