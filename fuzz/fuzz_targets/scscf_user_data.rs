//! S-CSCF: Cx User-Data (IMSSubscription XML) parsing and iFC evaluation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imslab_scscf::fuzzing::user_data(data));
