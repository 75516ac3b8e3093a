//! Diameter base protocol (RFC 6733) and Cx (TS 29.229): codec, dictionary, typed commands, peer state machine
#![forbid(unsafe_code)]
