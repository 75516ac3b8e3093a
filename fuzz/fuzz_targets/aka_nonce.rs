#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    imslab_aka::fuzzing::nonce_round_trip(data);
});
