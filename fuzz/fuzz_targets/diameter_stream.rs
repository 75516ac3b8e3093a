//! A Diameter byte stream through the framer in chunks, each frame as a message
//! (`imslab_diameter::fuzzing::stream`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    imslab_diameter::fuzzing::stream(data);
});
