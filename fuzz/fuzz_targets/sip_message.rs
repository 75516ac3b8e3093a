//! SIP datagram parsing: decode → encode → decode, typed header round trips, proxy edits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imslab_sip::fuzzing::message(data));
