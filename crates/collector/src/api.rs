//! The HTTP API: enrollment, push, head, health. Every refusal is a 4xx with a JSON body
//! `{"error": {"code", "message"}}` and changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chartroom_audit::sync::{BatchError, EnrollRequest, PushBatch};
use chartroom_audit::VerifyingKey;
use serde_json::json;
use tokio::sync::Mutex;

use crate::store::{Query, Store, StoreError};

/// Bodies above this are refused before they are parsed (a full batch is ~1 MB).
pub const MAX_BODY: usize = 4 << 20;

#[derive(Clone)]
pub struct App {
    pub store: Store,
    /// One push at a time per device, so a retry never races its original.
    locks: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
}

impl App {
    pub fn new(store: Store) -> App {
        App {
            store,
            locks: Arc::default(),
        }
    }

    async fn device_lock(&self, device: &str) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .await
            .entry(device.to_owned())
            .or_default()
            .clone()
    }
}

pub struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error": {"code": self.1, "message": self.2}})),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::UnknownDevice => {
                ApiError(StatusCode::UNAUTHORIZED, "unknown_device", message)
            }
            StoreError::BadToken => ApiError(StatusCode::UNAUTHORIZED, "bad_token", message),
            StoreError::KeyConflict => ApiError(StatusCode::CONFLICT, "key_conflict", message),
            StoreError::Invalid(_) => {
                ApiError(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            StoreError::Batch(b) => match b {
                BatchError::BadSignature => {
                    ApiError(StatusCode::FORBIDDEN, "bad_signature", message)
                }
                BatchError::Fork { .. } => ApiError(StatusCode::CONFLICT, "fork", message),
                BatchError::Gap { .. } => ApiError(StatusCode::CONFLICT, "gap", message),
                BatchError::SecurityLog { .. } => {
                    ApiError(StatusCode::CONFLICT, "security_log", message)
                }
                BatchError::TooLarge(_) => {
                    ApiError(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
                }
                _ => ApiError(StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch", message),
            },
            StoreError::Db(err) => {
                tracing::error!(error = %err, "storage failed");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage",
                    "The collector could not store the batch; try again.".into(),
                )
            }
        }
    }
}

fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    payload.map(|Json(v)| v).map_err(|rejection| {
        let status = rejection.status();
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError(status, "bad_request", rejection.body_text())
    })
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn enroll(
    State(app): State<App>,
    payload: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let req = body(payload)?;
    let valid_id = !req.device_id.is_empty()
        && req.device_id.len() <= 128
        && req
            .device_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_id {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "device_id must be 1 to 128 letters, digits, - or _".into(),
        ));
    }
    let key = hex::decode(&req.public_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| {
            ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "public_key must be an Ed25519 public key in 64 hex digits".into(),
            )
        })?;
    let label = req
        .label
        .as_deref()
        .map(|l| l.chars().take(100).collect::<String>());
    match app
        .store
        .enroll(&req.token, &req.device_id, &key, label.as_deref())
        .await
    {
        Ok(()) => {
            tracing::info!(device = %req.device_id, "device enrolled");
            Ok((
                StatusCode::CREATED,
                Json(json!({"device_id": req.device_id})),
            ))
        }
        Err(e) => {
            tracing::warn!(device = %req.device_id, error = %e, "enrollment refused");
            Err(e.into())
        }
    }
}

async fn push(
    State(app): State<App>,
    payload: Result<Json<PushBatch>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let batch = body(payload)?;
    let lock = app.device_lock(&batch.device_id).await;
    let _held = lock.lock().await;
    match app.store.push(&batch).await {
        Ok(ack) => {
            tracing::info!(device = %batch.device_id, stored = ack.stored, duplicates = ack.duplicates, head = ack.head.seq, "push");
            Ok(Json(ack))
        }
        Err(e) => {
            tracing::warn!(device = %batch.device_id, error = %e, "push refused");
            Err(e.into())
        }
    }
}

/// Refuses a request without a valid auditor token.
async fn auditor(app: &App, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if token.is_empty() || !app.store.auditor_allowed(token).await? {
        tracing::warn!("auditor request refused: no valid auditor token");
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "An auditor token is required (chartroom-collector token --auditor).".into(),
        ));
    }
    Ok(())
}

async fn alerts(
    State(app): State<App>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    auditor(&app, &headers).await?;
    let list: Vec<serde_json::Value> = app
        .store
        .alerts()
        .await?
        .into_iter()
        .map(|(time, device, summary)| json!({"time": time, "device_id": device, "summary": summary}))
        .collect();
    Ok(Json(json!({"alerts": list})).into_response())
}

async fn audit(
    State(app): State<App>,
    headers: axum::http::HeaderMap,
    query: Result<axum::extract::Query<Query>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    auditor(&app, &headers).await?;
    let axum::extract::Query(q) =
        query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    for t in [&q.since, &q.until].into_iter().flatten() {
        if chartroom_audit::parse_time(t).is_none() {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "since and until are RFC 3339 times, e.g. 2026-03-02T00:00:00Z".into(),
            ));
        }
    }
    let records = app.store.query(&q).await?;
    let events = records.iter().map(chartroom_audit::to_fhir_audit_event);
    if q.format.as_deref() == Some("ndjson") {
        let mut body = String::new();
        for e in events {
            body.push_str(&e.to_string());
            body.push('\n');
        }
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "application/fhir+ndjson")],
            body,
        )
            .into_response());
    }
    let entries: Vec<serde_json::Value> = events.map(|e| json!({"resource": e})).collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "entry": entries,
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/fhir+json")],
        bundle.to_string(),
    )
        .into_response())
}

async fn head(
    State(app): State<App>,
    Path(device): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(app.store.head(&device).await?))
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/enroll", post(enroll))
        .route("/v1/push", post(push))
        .route("/v1/devices/{device}/head", get(head))
        .route("/v1/audit", get(audit))
        .route("/v1/alerts", get(alerts))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}
