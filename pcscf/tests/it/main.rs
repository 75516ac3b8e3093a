//! Integration tests of the P-CSCF server on loopback: scripted phones with a USIM and
//! userspace ESP (imslab-ipsec's EspSocket on the phone side too), and a scripted I/S-CSCF.
//! They need CAP_NET_RAW (raw ESP sockets) and use only 127.77.0.0/16.

mod chain;
mod harness;
mod ipsec;
mod plain;
mod sipp;
