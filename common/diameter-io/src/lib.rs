//! Tokio drivers for Diameter peers: TCP, TLS and (feature) SCTP transports
#![forbid(unsafe_code)]
