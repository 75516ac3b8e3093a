//! I-CSCF: S-CSCF selection over Cx (UAR, LIR)
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod routing;
mod server;

pub use error::Error;
pub use server::Server;
