//! End-to-end tests against the real `imslab` binary. One integration binary (matklad's layout):
//! each module covers one area.

mod api;
mod cli;
mod pgw;
mod replay;
mod sipp;
mod subscriber;
mod support;
