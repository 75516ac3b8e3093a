//! imslab-sip-node integration tests: the node on loopback with trivial handlers, and SIPp as a
//! real peer through the proxy core.

mod dns;
mod loopback;
mod order;
mod sipp;
