use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use imslab_store::{Store, StoreOptions};
use imslab_types::{Function, Imsi, Outcome, Realm, UeEvent, UeRef};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

const K: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
const OPC: &str = "cd63cb71954a9f4e48a5994e37a02baf";

async fn app(token: Option<&str>) -> (Router, Store) {
    let store = Store::open(&StoreOptions::new("sqlite::memory:"))
        .await
        .unwrap();
    let domain = Realm::new("ims.mnc001.mcc001.3gppnetwork.org").unwrap();
    let state = AppState::new(store.clone(), domain, token.map(str::to_owned));
    (router(state), store)
}

async fn call(app: &Router, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, String) {
    call_with(app, method, uri, body, None).await
}

async fn call_with(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Body::from(body.unwrap_or("").to_owned())).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    call(app, Method::GET, uri, None).await
}

async fn delete(app: &Router, uri: &str) -> (StatusCode, String) {
    call(app, Method::DELETE, uri, None).await
}

async fn post(app: &Router, uri: &str, body: &str) -> (StatusCode, String) {
    call(app, Method::POST, uri, Some(body)).await
}

async fn patch(app: &Router, uri: &str, body: &str) -> (StatusCode, String) {
    call(app, Method::PATCH, uri, Some(body)).await
}

fn new_subscriber(imsi: &str) -> String {
    json!({ "imsi": imsi, "msisdn": "15550001", "k": K, "opc": OPC }).to_string()
}

#[tokio::test]
async fn created_subscriber_is_served_without_keys() {
    let (app, _) = app(None).await;
    let (st, body) = post(
        &app,
        "/api/v1/subscribers",
        &new_subscriber("001010000000001"),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert!(
        !body.contains(K) && !body.contains(OPC),
        "keys leaked: {body}"
    );
    let (st, body) = get(&app, "/api/v1/subscribers/001010000000001").await;
    assert_eq!(st, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["msisdn"], "15550001");
    assert_eq!(v["operator_key"], "opc");
    let (_, list) = get(&app, "/api/v1/subscribers").await;
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["total"], 1);
    assert!(!list.to_string().contains(K));
}

#[tokio::test]
async fn invalid_subscriber_gets_400_listing_every_field() {
    let (app, _) = app(None).await;
    let body = json!({ "imsi": "12", "k": "zz", "opc": OPC }).to_string();
    let (st, body) = post(&app, "/api/v1/subscribers", &body).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_str(&body).unwrap();
    let details = v["details"].as_array().unwrap();
    assert!(
        details
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("imsi:")),
        "{v}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("k:")),
        "{v}"
    );
}

#[tokio::test]
async fn malformed_json_and_unknown_fields_get_400() {
    let (app, _) = app(None).await;
    let (st, _) = post(&app, "/api/v1/subscribers", "{not json").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let body = json!({ "imsi": "001010000000001", "k": K, "opc": OPC, "kk": 1 }).to_string();
    let (st, body) = post(&app, "/api/v1/subscribers", &body).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("kk"), "{body}");
}

#[tokio::test]
async fn duplicate_is_409_and_missing_is_404() {
    let (app, _) = app(None).await;
    let body = new_subscriber("001010000000001");
    post(&app, "/api/v1/subscribers", &body).await;
    let (st, _) = post(&app, "/api/v1/subscribers", &body).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = get(&app, "/api/v1/subscribers/001010000000009").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = delete(&app, "/api/v1/subscribers/001010000000009").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = get(&app, "/api/v1/subscribers/12").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn patch_changes_fields_and_delete_removes() {
    let (app, _) = app(None).await;
    post(
        &app,
        "/api/v1/subscribers",
        &new_subscriber("001010000000001"),
    )
    .await;
    let change = json!({ "msisdn": "15559999" }).to_string();
    let (st, body) = patch(&app, "/api/v1/subscribers/001010000000001", &change).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body.contains("15559999"));
    let (st, _) = delete(&app, "/api/v1/subscribers/001010000000001").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = get(&app, "/api/v1/subscribers/001010000000001").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn import_is_all_or_nothing_and_export_hides_keys_unless_asked() {
    let (app, _) = app(None).await;
    let bad = format!("imsi,k,opc\n001010000000002,{K},{OPC}\n001010000000003,xx,{OPC}\n");
    let (st, body) = post(&app, "/api/v1/subscribers/import", &bad).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("line 3"), "{body}");
    let (_, list) = get(&app, "/api/v1/subscribers").await;
    assert!(list.contains("\"total\":0"), "{list}");
    let good = format!("imsi,k,opc\n001010000000002,{K},{OPC}\n");
    let (st, body) = post(&app, "/api/v1/subscribers/import", &good).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, csv) = get(&app, "/api/v1/subscribers/export").await;
    assert!(csv.contains("001010000000002") && !csv.contains(K));
    let (_, csv) = get(&app, "/api/v1/subscribers/export?with_keys=true").await;
    assert!(csv.contains(K) && csv.contains(OPC));
}

#[tokio::test]
async fn token_is_required_when_configured() {
    let (app, _) = app(Some("s3cret")).await;
    let (st, _) = get(&app, "/api/v1/subscribers").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    for (token, status) in [
        ("wrong", StatusCode::UNAUTHORIZED),
        ("s3cret", StatusCode::OK),
    ] {
        let (st, _) = call_with(&app, Method::GET, "/api/v1/subscribers", None, Some(token)).await;
        assert_eq!(st, status, "token {token}");
    }
    let (st, _) = get(&app, "/api/v1/health").await;
    assert_eq!(st, StatusCode::OK, "health stays open");
}

#[tokio::test]
async fn deregister_without_an_hss_says_so() {
    let (app, _) = app(None).await;
    let (st, body) = call(
        &app,
        Method::POST,
        "/api/v1/subscribers/001010000000001/deregister",
        None,
    )
    .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("HSS"), "{body}");
}

#[tokio::test]
async fn timeline_returns_a_phones_events_newest_first() {
    let (app, store) = app(None).await;
    let imsi = Imsi::new("001010000000001").unwrap();
    let ev = |step: &'static str, outcome, reason: Option<&str>| UeEvent {
        at: std::time::SystemTime::now(),
        function: Function::Scscf,
        ue: UeRef::imsi(imsi.clone()),
        step,
        outcome,
        reason: reason.map(str::to_owned),
    };
    store
        .ue_events()
        .insert(&[
            ev("challenge", Outcome::Ok, None),
            ev("auth", Outcome::Failed, Some("AUTN rejected")),
        ])
        .await
        .unwrap();
    let (st, body) = get(&app, "/api/v1/ue-events?imsi=001010000000001").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["step"], "auth");
    assert_eq!(items[0]["reason"], "AUTN rejected");
    assert_eq!(items[0]["function"], "scscf");
    let (st, _) = get(&app, "/api/v1/ue-events?imsi=abc").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let (app, _) = app(None).await;
    let (st, body) = get(&app, "/api/v1/openapi.json").await;
    assert_eq!(st, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/health",
        "/api/v1/subscribers",
        "/api/v1/subscribers/import",
        "/api/v1/subscribers/export",
        "/api/v1/subscribers/{imsi}",
        "/api/v1/subscribers/{imsi}/deregister",
        "/api/v1/subscribers/{imsi}/push-profile",
        "/api/v1/registrations",
        "/api/v1/ue-events",
        "/api/v1/pgw/sessions",
    ] {
        assert!(paths.contains_key(p), "OpenAPI lacks {p}");
    }
}

#[test]
fn timestamps_are_rfc3339_utc() {
    assert_eq!(api::rfc3339_for_test(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        api::rfc3339_for_test(1_700_000_000_123),
        "2023-11-14T22:13:20.123Z"
    );
    assert_eq!(
        api::rfc3339_for_test(951_782_400_000),
        "2000-02-29T00:00:00.000Z"
    );
}

struct FakePgw;

impl PgwSessions for FakePgw {
    fn sessions(&self) -> Vec<Value> {
        vec![json!({ "imsi": "001010000000001", "apn": "ims", "pcscf": ["10.46.0.1"] })]
    }
}

#[tokio::test]
async fn pgw_sessions_are_listed_when_the_pgw_runs_here() {
    let (app, _) = app(None).await;
    let (st, _) = get(&app, "/api/v1/pgw/sessions").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    let store = Store::open(&StoreOptions::new("sqlite::memory:"))
        .await
        .unwrap();
    let domain = Realm::new("ims.example").unwrap();
    let app = router(AppState::new(store, domain, None).with_pgw(Arc::new(FakePgw)));
    let (st, body) = get(&app, "/api/v1/pgw/sessions").await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        body.contains("10.46.0.1") && body.contains("\"apn\":\"ims\""),
        "{body}"
    );
}
