#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    imslab_scenarios::fuzzing::scenario(data);
});
