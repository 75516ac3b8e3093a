//! Integration tests of imslab-ipsec against the real kernel and real peers: raw ESP sockets
//! on loopback, XFRM netlink in network namespaces the tests create, iproute2 via strace, and
//! tshark decrypting our ESP.

mod esp_socket;
mod flow;
mod support;
mod wireshark;
mod xfrm;
