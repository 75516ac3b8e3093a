//! Integration tests of imslab-scenarios (one binary).

mod calls;
mod fake;
mod fake_server;
mod library;
mod replay;
mod ue_core;
