//! SIP message model, parser, typed IMS headers, RFC 3261 transactions and the proxy core
#![forbid(unsafe_code)]
