//! The HSS: the Cx server (TS 29.228/29.229) over the subscriber store.
//!
//! - [`cx`]: the Cx procedures as pure functions (UAR, MAR, SAR, LIR; HSS-initiated RTR, PPR).
//! - [`user_data`]: the IMSSubscription XML (TS 29.228 Annex B/E) sent in SAA and PPR.
//! - [`CxSettings`]: the `hss:` configuration, validated.
//! - [`Hss`]: the running server ([`Hss::start`]), with HSS-initiated [`Hss::deregister`] (RTR)
//!   and [`Hss::push_profile`] (PPR).
//!
//! The HSS decides; the store persists. Every decision about a phone is reported as an
//! [`imslab_types::UeEvent`] in the outcome, for the diagnosis timeline.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cx;
mod error;
pub mod server;
mod settings;
pub mod user_data;

pub use error::Error;
pub use server::Hss;
pub use settings::CxSettings;
