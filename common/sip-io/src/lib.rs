//! Tokio SIP transports: UDP, TCP, TLS, WebSocket and WSS
#![forbid(unsafe_code)]
