//! Integration tests of imslab-scenarios (one binary).

mod fake;
mod ue_core;
