//! Scenario replay and the soft UE.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod capture;
mod error;
pub mod load;
pub mod runner;
pub mod scenario;
pub mod ue;

pub use error::Error;

pub use load::{LoadReport, LoadSettings};
pub use runner::{Lab, ReplayOptions, ReplayReport, replay};
