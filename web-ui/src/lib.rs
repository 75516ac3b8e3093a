//! Web UI and REST API
#![forbid(unsafe_code)]
