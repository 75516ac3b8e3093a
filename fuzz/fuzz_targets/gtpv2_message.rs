//! GTPv2-C datagrams: byte-exact decode → encode → decode, PCO round trips, typed views and the
//! whole P-GW core (retransmissions answered from the cache).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imslab_pgw::fuzzing::gtpv2_message(data));
