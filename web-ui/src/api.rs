//! `/api/v1` handlers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use imslab_store::provision::{
    self, NewSubscriber, ProvisionDefaults, SubscriberInput, SubscriberUpdate, SubscriberView,
    UpdateInput,
};
use imslab_store::{EventFilter, StoredUeEvent, SubscriberKey};
use imslab_types::{Impi, Impu, Imsi};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// Largest page of a listing.
const MAX_PAGE: i64 = 10_000;

pub(crate) fn routes(state: AppState) -> Router {
    let protected = Router::new()
        .route("/api/v1/subscribers", get(list).post(create))
        .route("/api/v1/subscribers/import", post(import))
        .route("/api/v1/subscribers/export", get(export))
        .route(
            "/api/v1/subscribers/{imsi}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/subscribers/{imsi}/deregister", post(deregister))
        .route(
            "/api/v1/subscribers/{imsi}/push-profile",
            post(push_profile),
        )
        .route("/api/v1/registrations", get(registrations))
        .route("/api/v1/ue-events", get(ue_events))
        .route("/api/v1/pgw/sessions", get(pgw_sessions))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(protected)
        .fallback(not_found)
        .with_state(state)
}

async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Constant-time enough for a lab token: compare full lengths and every byte.
        let ok = given.is_some_and(|g| {
            g.len() == token.len()
                && g.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if !ok {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such API route".into())
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::DOCUMENT,
    )
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Invalid {
        message: format!("invalid JSON body: {e}"),
        details: Vec::new(),
    })
}

fn imsi(s: &str) -> Result<Imsi, ApiError> {
    Imsi::new(s).map_err(|e| ApiError::Invalid {
        message: format!("imsi: {e}"),
        details: vec![format!("imsi: {e}")],
    })
}

async fn view(state: &AppState, imsi: &Imsi) -> Result<SubscriberView, ApiError> {
    let s = state
        .store
        .subscribers()
        .get(&SubscriberKey::Imsi(imsi.clone()))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no subscriber with IMSI {imsi}")))?;
    Ok(SubscriberView::from_subscriber(&s, false))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let offset = page.offset.unwrap_or(0).max(0);
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let repo = state.store.subscribers();
    let subs = repo.list(offset, limit).await?;
    let total = repo.count().await?;
    let items: Vec<SubscriberView> = subs
        .iter()
        .map(|s| SubscriberView::from_subscriber(s, false))
        .collect();
    Ok(Json(
        json!({ "total": total, "offset": offset, "items": items }),
    ))
}

async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let input: SubscriberInput = json_body(&body)?;
    let defaults = ProvisionDefaults::new(state.home_domain.clone());
    let new = NewSubscriber::from_input(&input, &defaults)?;
    state
        .store
        .subscribers()
        .insert(&new, SystemTime::now())
        .await?;
    let v = view(&state, &new.imsi).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SubscriberView>, ApiError> {
    Ok(Json(view(&state, &imsi(&id)?).await?))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<SubscriberView>, ApiError> {
    let imsi = imsi(&id)?;
    let input: UpdateInput = json_body(&body)?;
    let current = state
        .store
        .subscribers()
        .get(&SubscriberKey::Imsi(imsi.clone()))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no subscriber with IMSI {imsi}")))?;
    let update = SubscriberUpdate::from_input(&input, &current)?;
    state
        .store
        .subscribers()
        .update(&imsi, &update, SystemTime::now())
        .await?;
    Ok(Json(view(&state, &imsi).await?))
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let imsi = imsi(&id)?;
    if state.store.subscribers().delete(&imsi).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no subscriber with IMSI {imsi}"
        )))
    }
}

async fn import(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::Invalid {
        message: "the CSV body is not UTF-8".into(),
        details: Vec::new(),
    })?;
    let defaults = ProvisionDefaults::new(state.home_domain.clone());
    let report = provision::import_csv(&state.store, text, &defaults, SystemTime::now()).await?;
    Ok(Json(json!({
        "imported": report.imported,
        "format": format!("{:?}", report.format),
        "ignored_columns": report.ignored_columns,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    #[serde(default)]
    with_keys: bool,
}

async fn export(
    State(state): State<AppState>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let subs = state.store.subscribers().list(0, i64::MAX).await?;
    let csv = provision::export_csv(&subs, q.with_keys);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

async fn deregister(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let hss = state.hss.as_ref().ok_or_else(hss_unavailable)?;
    let result = hss.deregister(id).await.map_err(ApiError::Failed)?;
    Ok(Json(json!({ "result": result })))
}

async fn push_profile(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let imsi = imsi(&id)?;
    let hss = state.hss.as_ref().ok_or_else(hss_unavailable)?;
    let result = hss
        .push_profile(imsi.to_string())
        .await
        .map_err(ApiError::Failed)?;
    Ok(Json(json!({ "result": result })))
}

fn hss_unavailable() -> ApiError {
    ApiError::Unavailable(
        "the HSS is not running in this process, so RTR and PPR cannot be sent".into(),
    )
}

async fn pgw_sessions(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let pgw = state
        .pgw
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("the P-GW is not running in this process".into()))?;
    Ok(Json(json!({ "items": pgw.sessions() })))
}

async fn registrations(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let regs = state.store.hss_state().registrations().await?;
    Ok(Json(json!({ "items": regs })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    #[serde(default)]
    imsi: Option<String>,
    #[serde(default)]
    impi: Option<String>,
    #[serde(default)]
    impu: Option<String>,
    /// Only events at or after this Unix time in milliseconds.
    #[serde(default)]
    since_ms: Option<u64>,
    #[serde(default)]
    limit: Option<i64>,
}

fn bad(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Invalid {
        message: format!("{field}: {e}"),
        details: vec![format!("{field}: {e}")],
    }
}

async fn ue_events(
    State(state): State<AppState>,
    Query(q): Query<EventQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = EventFilter {
        imsi: q
            .imsi
            .map(|s| Imsi::new(s).map_err(|e| bad("imsi", e)))
            .transpose()?,
        impi: q
            .impi
            .map(|s| Impi::new(s).map_err(|e| bad("impi", e)))
            .transpose()?,
        impu: q
            .impu
            .map(|s| Impu::new(s).map_err(|e| bad("impu", e)))
            .transpose()?,
        since: q.since_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
        limit: Some(q.limit.unwrap_or(200).clamp(1, MAX_PAGE)),
    };
    let events = state.store.ue_events().query(&filter).await?;
    let items: Vec<Value> = events.iter().map(event_json).collect();
    Ok(Json(json!({ "items": items })))
}

fn event_json(e: &StoredUeEvent) -> Value {
    let ms =
        e.at.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
    json!({
        "id": e.id,
        "at_ms": ms,
        "at": rfc3339(ms),
        "function": e.function,
        "imsi": e.ue.imsi,
        "impi": e.ue.impi,
        "impu": e.ue.impu,
        "step": e.step,
        "outcome": e.outcome,
        "reason": e.reason,
    })
}

/// UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ` (civil-from-days, proleptic Gregorian).
fn rfc3339(ms: u128) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
pub(crate) fn rfc3339_for_test(ms: u128) -> String {
    rfc3339(ms)
}
