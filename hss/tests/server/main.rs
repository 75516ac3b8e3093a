//! The HSS server end to end: over TCP, on SQLite and on a real PostgreSQL server, with an
//! independent Python Cx client and with a Rust S-CSCF node for HSS-initiated RTR/PPR.

mod initiated;
mod python_peer;
mod support;
mod vectors;
