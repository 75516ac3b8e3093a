//! P-GW PCO stub: GTPv2-C S5/S8 that hands P-CSCF addresses to attaching phones.
//!
//! A phone attached through an eNodeB sends no SIP REGISTER unless the P-GW puts P-CSCF
//! addresses in the Protocol Configuration Options of its IMS PDN connection. This crate is a
//! P-GW that an existing MME/SGW (Open5GS, for example) uses over S5/S8:
//!
//! - [`gtpv2`]: the GTPv2-C codec (TS 29.274), generic and byte-exact, with typed views;
//! - [`pco`]: PCO / APCO / ePCO (TS 24.008 §10.5.6.3) and the answer to a phone's requests;
//! - [`session`]: the P-GW itself as pure code: datagram in, datagrams and events out;
//! - [`gtpu`]: GTP-U (TS 29.281) and the pure user-plane forwarding table;
//! - [`driver`] and [`user_plane`]: the thin tokio drivers (UDP 2123, UDP 2152 and TUN).
//!
//! It is not a full P-GW: no PCRF (Gx), no charging (Gy/Gz), no dedicated bearers.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cursor;
pub mod driver;
mod error;
pub mod fuzzing;
pub mod gtpu;
pub mod gtpv2;
pub mod pco;
pub mod session;
pub mod settings;
pub mod user_plane;

pub use driver::{PgwHandle, PgwOptions, start};
pub use error::{Error, Result};
pub use session::{Pgw, SessionInfo};
pub use settings::Settings;
