//! The HTTP API: enrollment, push, head, health. Every refusal is a 4xx with a JSON body
//! `{"error": {"code", "message"}}` and changes nothing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chartroom_audit::sync::{validate_enroll, validate_push, BatchError, EnrollRequest, PushBatch};
use chartroom_audit::VerifyingKey;
use serde_json::json;
use tokio::sync::Mutex;

use crate::store::{Query, Store, StoreError};

/// Bodies above this are refused before they are parsed (a full batch is ~1 MB).
pub const MAX_BODY: usize = 4 << 20;
/// A request (body included) that takes longer than this is cut off with 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Per client address, by default: this many requests at once, refilled at
/// `RATE_PER_SECOND`; past it, 429. A desktop catching up sends a batch of 1,000 entries
/// per request, so even a long backlog stays well inside.
pub const RATE_BURST: u32 = 120;
pub const RATE_PER_SECOND: u32 = 20;

/// A per-client rate: `per_second` sustained, `burst` at once.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for Rate {
    fn default() -> Rate {
        Rate {
            per_second: f64::from(RATE_PER_SECOND),
            burst: f64::from(RATE_BURST),
        }
    }
}
/// The most client addresses and device locks remembered; idle ones are forgotten first.
const MAX_TRACKED: usize = 10_000;

#[derive(Clone)]
pub struct App {
    pub store: Store,
    /// One push at a time per device, so a retry never races its original. Only enrolled
    /// devices get one, and the map is pruned of idle locks past MAX_TRACKED.
    locks: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
    /// Token buckets per client address.
    buckets: Arc<std::sync::Mutex<HashMap<IpAddr, (f64, Instant)>>>,
    rate: Rate,
}

impl App {
    pub fn new(store: Store, rate: Rate) -> App {
        App {
            store,
            locks: Arc::default(),
            buckets: Arc::default(),
            rate,
        }
    }

    async fn device_lock(&self, device: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().await;
        if locks.len() >= MAX_TRACKED && !locks.contains_key(device) {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(device.to_owned()).or_default().clone()
    }

    /// Takes one request from the client's bucket; false when it is empty.
    fn admit(&self, client: IpAddr) -> bool {
        let now = Instant::now();
        let Rate { per_second, burst } = self.rate;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&client) {
            // Forget the clients whose buckets have filled up again: they lose nothing.
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * per_second < burst
            });
            if buckets.len() >= MAX_TRACKED {
                return false;
            }
        }
        let (tokens, at) = buckets.entry(client).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }
}

/// Every request: the client's rate limit, then the handler within REQUEST_TIMEOUT.
async fn guard(
    State(app): State<App>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = client {
        if !app.admit(ip) {
            tracing::warn!(client = %ip, "rate limited");
            return ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests from this address; slow down and retry.".into(),
            )
            .into_response();
        }
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "The request took too long and was cut off; retry.".into(),
        )
        .into_response(),
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
                BatchError::EpochStart(_) => ApiError(StatusCode::CONFLICT, "epoch", message),
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
    // Every field's shape and size, before anything is looked up or logged.
    validate_enroll(&req).map_err(invalid)?;
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
    let label = req.label.as_deref().map(|l| {
        l.chars()
            .take(chartroom_audit::sync::limits::LABEL)
            .collect::<String>()
    });
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
    // Shape and size first; then only an enrolled device gets a lock (a stranger's made-up
    // device ids take no memory beyond this request).
    validate_push(&batch).map_err(invalid)?;
    app.store.device_key(&batch.device_id).await?;
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

fn invalid(e: chartroom_audit::sync::ShapeError) -> ApiError {
    ApiError(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
}

/// A device's own head, for the device alone: the request carries its signature over its
/// id and the time (`chartroom_audit::sync::head_request_message`).
async fn head(
    State(app): State<App>,
    Path(device): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    use chartroom_audit::sync::{HEAD_SIGNATURE_HEADER, HEAD_TIME_HEADER};
    if !chartroom_audit::sync::valid_device_id(&device) {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "device_id must be 1 to 128 letters, digits, - or _".into(),
        ));
    }
    let key = app.store.device_key(&device).await?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if !chartroom_audit::sync::check_head_request(
        &device,
        &header(HEAD_TIME_HEADER),
        &header(HEAD_SIGNATURE_HEADER),
        &key,
        chrono::Utc::now(),
    ) {
        tracing::warn!(device = %device, "head request without the device's signature");
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A device's head is told only to the device: sign the request with its key (and check the computer's clock)."
                .into(),
        ));
    }
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
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}
