//! Scenario files: the YAML model ([`model`]) and the loader with line-numbered errors
//! ([`load`]).

pub mod load;
pub mod model;

pub use load::{load, parse, substitute};
pub use model::{Scenario, Step, UeSpec};

/// The event names `expect: {event: ...}` knows.
pub const EVENTS: [&str; 7] = [
    "registered",
    "deregistered",
    "registration-failed",
    "call-ringing",
    "call-confirmed",
    "call-terminated",
    "sms",
];

#[cfg(test)]
mod tests;
