//! S-CSCF: registrar, authentication, reg-event, iFC and session routing
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
mod error;
pub mod ifc;
pub mod reg_event;
pub mod registrar;
mod server;

pub use error::Error;
pub use server::Server;
