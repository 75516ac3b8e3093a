//! SIP stream framing: chunked feeding yields the same frames as feeding at once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imslab_sip::fuzzing::stream(data));
