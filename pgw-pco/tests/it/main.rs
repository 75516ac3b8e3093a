//! Integration tests of the P-GW, in one binary: the tokio driver on loopback, the fuzz seed
//! corpus and property tests, real peers (pycrate client, tshark) and the TUN user plane in a
//! network namespace.

mod driver;
mod fuzz_corpus;
mod peers;
mod user_plane;
