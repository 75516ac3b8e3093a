//! Table-driven Cx conformance tests of the pure handlers (TS 29.228 §6, TS 29.229 §6): every
//! command and every result code the HSS produces, with the state changes and events.

mod common;
mod lir;
mod mar;
mod rtr_ppr;
mod sar;
mod uar;
mod user_data;
