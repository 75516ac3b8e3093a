//! S-CSCF: registrar, authentication, reg-event, iFC and session routing
#![forbid(unsafe_code)]
