#![no_main]
// ESP (RFC 4303) unprotect/protect round trips and inner UDP/TCP parsing: imslab-ipsec.
libfuzzer_sys::fuzz_target!(|data: &[u8]| imslab_ipsec::fuzzing::esp_packet(data));
