//! IMS security agreement (RFC 3329, TS 33.203), ESP key derivation, userspace ESP and XFRM netlink
#![forbid(unsafe_code)]
