#![no_main]
// The userspace TCP endpoint inside ESP (imslab-ipsec::tcp): arbitrary segments, timers and
// sends never panic, emitted segments are valid and re-encode byte for byte.
libfuzzer_sys::fuzz_target!(|data: &[u8]| imslab_ipsec::fuzzing::esp_tcp(data));
