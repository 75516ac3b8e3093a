//! The imslab store: subscribers, service profiles, HSS registration state, CSCF state that must
//! survive a restart, and the per-UE diagnosis timeline, on sqlx.
//!
//! SQLite is the default (a file in the data directory, WAL mode, a busy timeout so the CLI can
//! write while the lab runs); PostgreSQL is used when the URL is `postgres://`. The same portable
//! SQL runs on both through runtime queries; each backend has its own migration directory
//! (`migrations/sqlite`, `migrations/postgres`), embedded and applied by [`Store::open`].
//!
//! Entry points:
//! - [`Store::open`] with [`StoreOptions`].
//! - Repositories: [`Store::subscribers`], [`Store::profiles`], [`Store::hss_state`],
//!   [`Store::scscf`], [`Store::pcscf`], [`Store::reg_subscriptions`], [`Store::ue_events`].
//! - [`Subscribers::next_sqns`]: the transactional SQN handout; [`SqnAllocator`] batches it for
//!   servers under load (group commit).
//! - [`provision`]: validated input, CSV import/export for the CLI and REST API.
//! - [`EventRecorder`]: a non-blocking [`imslab_types::UeEventSink`] writing the timeline.
//!
//! This crate is I/O (the database); it makes no protocol decisions.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod error;
pub mod fuzzing;
pub mod model;
pub mod provision;
pub mod repo;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{BackendKind, Store, StoreOptions};
pub use error::Error;
pub use model::{
    AuthScheme, AuthSchemes, ChargingInfo, DigestSecret, HssChange, OperatorKey, PublicIdentity,
    RegState, Revision, ServiceProfile, ServingScscf, Subscriber, Subscription,
};
pub use repo::hss_state::{HssState, Registration};
pub use repo::hss_writer::HssStateWriter;
pub use repo::loader::SubscriberLoader;
pub use repo::pcscf::{Pcscf, PcscfRegistration};
pub use repo::profiles::Profiles;
pub use repo::reg_subscriptions::{RegSubscription, RegSubscriptions, SubscriptionRole};
pub use repo::scscf::{Binding, Scscf, ScscfRegistration};
pub use repo::scscf_batch::ScscfWrite;
pub use repo::sqn_batch::{SqnAllocator, SqnGrant};
pub use repo::subscribers::{SubscriberKey, Subscribers};
pub use repo::ue_events::{
    EventFilter, EventRecorder, RecorderOptions, Retention, StoredUeEvent, UeEvents,
};

impl Store {
    /// Subscribers, their identities and the SQN counter.
    pub fn subscribers(&self) -> Subscribers<'_> {
        Subscribers { store: self }
    }

    /// Service profiles and iFCs.
    pub fn profiles(&self) -> Profiles<'_> {
        Profiles { store: self }
    }

    /// The HSS's registration state (serving S-CSCF, per-identity state).
    pub fn hss_state(&self) -> HssState<'_> {
        HssState { store: self }
    }

    /// The registrar state of the S-CSCF named `owner` (its SIP URI).
    pub fn scscf<'a>(&'a self, owner: &'a str) -> Scscf<'a> {
        Scscf { store: self, owner }
    }

    /// The registrations of the P-CSCF named `owner`.
    pub fn pcscf<'a>(&'a self, owner: &'a str) -> Pcscf<'a> {
        Pcscf { store: self, owner }
    }

    /// The reg event subscriptions of the node named `owner`.
    pub fn reg_subscriptions<'a>(&'a self, owner: &'a str) -> RegSubscriptions<'a> {
        RegSubscriptions { store: self, owner }
    }

    /// The per-UE diagnosis timeline.
    pub fn ue_events(&self) -> UeEvents<'_> {
        UeEvents { store: self }
    }
}
