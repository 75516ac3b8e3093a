//! Peers and routing, as pure state machines on a virtual clock.
//!
//! - [`Peer`]: one peer connection per RFC 6733 §5.6 (capability exchange, election, watchdog,
//!   disconnection, reconnection, answer matching).
//! - [`PeerTable`]: every peer of a node, the realm routing table with fail-over, per-request
//!   deadlines, duplicate detection and accepted connections before their CER.
//! - [`DuplicateCache`], [`EndToEndIds`], [`HopByHopIds`]: building blocks.

mod dup;
mod fsm;
mod ids;
mod table;
mod watchdog;

pub use dup::DuplicateCache;
pub use fsm::{
    CloseReason, ConnId, FailReason, Peer, PeerConfig, PeerEvent, PeerState, RequestId, Timers,
    Transmit,
};
pub use ids::{EndToEndIds, HopByHopIds, SplitMix64};
pub use table::{NodeConfig, NodeEvent, PeerId, PeerSpec, PeerTable};
pub use watchdog::{MIN_TW, WatchdogState};

#[cfg(test)]
mod tests;
