//! Scenario replay and the soft UE.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod ue;

pub use error::Error;
