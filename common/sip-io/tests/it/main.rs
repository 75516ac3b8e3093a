//! Integration tests of the SIP transports over loopback, with SIPp and tshark as real peers.

mod sipp;
mod support;
mod tcp;
mod tls;
mod transaction;
mod udp;
mod ws;
