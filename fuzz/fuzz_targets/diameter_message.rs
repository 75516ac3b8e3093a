//! One Diameter message: decode, re-encode, typed decoders, error answers
//! (`imslab_diameter::fuzzing::message`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    imslab_diameter::fuzzing::message(data);
});
