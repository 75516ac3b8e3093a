#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    imslab_scenarios::fuzzing::sms_rp(data);
});
