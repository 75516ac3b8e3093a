//! The web UI and REST API (`/api/v1`), served by axum. Handlers are thin: they parse into
//! domain types, call the store or the functions, and map errors to HTTP answers in one place.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use axum::{Json, Router, routing::get};
use serde::Serialize;

/// Shared state of the handlers.
#[derive(Debug, Clone, Default)]
pub struct AppState {}

impl AppState {
    /// State with no backing services.
    pub fn new() -> Self {
        Self {}
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// The application's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .with_state(state)
}
