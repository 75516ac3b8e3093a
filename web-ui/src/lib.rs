//! The web UI and REST API (`/api/v1`), served by axum.
//!
//! Handlers are thin: they parse input into the store's validated provisioning types, call the
//! store, and map every error to an HTTP answer in one place ([`ApiError`]). K, OP and OPc are
//! write-only: no response carries them except `GET /api/v1/subscribers/export?with_keys=true`.
//! When a bearer token is configured every `/api/v1` route except `health` and `openapi.json`
//! requires it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod error;
mod openapi;

use std::sync::Arc;

use axum::Router;
use imslab_store::Store;
use imslab_types::Realm;

pub use error::ApiError;

/// Operations that only the HSS can carry out (it holds the Diameter connection to the serving
/// S-CSCF): network-initiated deregistration (RTR) and profile push (PPR).
pub trait HssCommands: Send + Sync {
    /// Deregisters every identity of `imsi`, or one IMPU (RTR). Returns a human-readable result.
    fn deregister(
        &self,
        identity: String,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
    /// Pushes the current profile of `imsi` to its serving S-CSCF (PPR).
    fn push_profile(
        &self,
        imsi: String,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
}

/// The P-GW's live sessions, for `/api/v1/pgw/sessions` (only the process running the P-GW has
/// them).
pub trait PgwSessions: Send + Sync {
    /// The active sessions as JSON objects (IMSI, APN, addresses, P-CSCFs handed out, TEIDs).
    fn sessions(&self) -> Vec<serde_json::Value>;
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Store,
    pub(crate) home_domain: Realm,
    pub(crate) token: Option<Arc<str>>,
    pub(crate) hss: Option<Arc<dyn HssCommands>>,
    pub(crate) pgw: Option<Arc<dyn PgwSessions>>,
}

impl AppState {
    /// State over `store`; provisioning fills defaults from `home_domain`. With `token`, the API
    /// requires `Authorization: Bearer <token>`.
    pub fn new(store: Store, home_domain: Realm, token: Option<String>) -> Self {
        Self {
            store,
            home_domain,
            token: token.map(Into::into),
            hss: None,
            pgw: None,
        }
    }

    /// Lets the API ask the HSS for RTR and PPR.
    pub fn with_hss(mut self, hss: Arc<dyn HssCommands>) -> Self {
        self.hss = Some(hss);
        self
    }
}

impl AppState {
    /// Lets the API list the P-GW's sessions.
    pub fn with_pgw(mut self, pgw: Arc<dyn PgwSessions>) -> Self {
        self.pgw = Some(pgw);
        self
    }
}

/// The application's routes.
pub fn router(state: AppState) -> Router {
    api::routes(state)
}

#[cfg(test)]
mod tests;
