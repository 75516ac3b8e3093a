//! Integration tests of the Diameter driver: our client against our server on loopback, bad
//! peers, and real freeDiameter peers.

mod bad_peers;
mod freediameter;
mod loopback;
mod support;
