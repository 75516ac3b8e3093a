//! Scenario replay and the soft UE
#![forbid(unsafe_code)]
