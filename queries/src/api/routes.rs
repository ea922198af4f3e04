//! Handlers of the JSON routes: health, twin state, dashboard, predictive maintenance, SQL,
//! ingest, admin, fallbacks.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use twinline_schemas::{Payload, Topic};

use super::{ApiError, ApiState, Role};
use crate::sql::QueryResult;
use crate::time::rfc3339_ms;
use crate::views::tables::{parse_urgency, ALL_URGENCIES};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

pub async fn health(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Role::Read)?;
    Ok(Json(json!({
        "status": "healthy",
        "version": VERSION,
        "timestamp": state.views.latest_event_time().map(rfc3339_ms),
    })))
}

/// Liveness needs no token: orchestrators probe it without credentials.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

pub async fn ready(State(state): State<ApiState>) -> Response {
    let backend = state.backend.clone();
    let ready = tokio::task::spawn_blocking(move || backend.ready())
        .await
        .unwrap_or(false);
    if ready {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "not_ready",
                "detail": "the pipeline is recovering or not running",
            })),
        )
            .into_response()
    }
}

/// `GET /api/v1/digital-twin/state`: the JSON body, shared with the WebSocket push.
pub fn factory_state_json(state: &ApiState) -> Value {
    let mut doc = state.views.factory_state();
    doc.factory_id.clone_from(&state.config.factory_id);
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

pub fn dashboard_stats_json(state: &ApiState) -> Value {
    serde_json::to_value(state.views.dashboard_stats()).unwrap_or(Value::Null)
}

/// A cached JSON document as a response.
fn json_bytes(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Served from the shared rendering: one render per view change, not per request.
pub async fn factory_state(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Role::Read)?;
    Ok(json_bytes(super::snapshot::current(&state).state.clone()))
}

pub async fn machine(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Role::Read)?;
    let detail = state.views.machine(&id).ok_or_else(|| {
        ApiError::not_found(
            "unknown_machine",
            format!("no twin state for machine {id:?}"),
        )
    })?;
    serde_json::to_value(detail)
        .map(Json)
        .map_err(|e| ApiError::internal("internal", e.to_string()))
}

pub async fn dashboard_stats(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Role::Read)?;
    Ok(json_bytes(super::snapshot::current(&state).stats.clone()))
}

/// Largest `limit` of `GET /api/v1/predictive/predictions`.
pub const PREDICTIONS_MAX_LIMIT: usize = 10_000;

/// Query string of `GET /api/v1/predictive/predictions`. Strings, so that a bad value answers
/// our `invalid_parameter` body rather than axum's plain-text rejection; unknown keys are ignored.
#[derive(Debug, Deserialize)]
pub struct PredictionParams {
    urgency: Option<String>,
    limit: Option<String>,
}

fn invalid_parameter(detail: String) -> ApiError {
    ApiError::bad_request("invalid_parameter", detail)
}

pub async fn predictions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Result<Query<PredictionParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Role::Read)?;
    // Malformed query strings (e.g. a repeated key) are the client's fault too.
    let Query(params) = params.map_err(|e| invalid_parameter(e.body_text()))?;
    let urgency = params
        .urgency
        .as_deref()
        .map(|u| {
            parse_urgency(u).ok_or_else(|| {
                let known: Vec<&str> = ALL_URGENCIES.iter().map(|u| u.symbol()).collect();
                invalid_parameter(format!(
                    "urgency must be one of {} (any case), got {u:?}",
                    known.join(", ")
                ))
            })
        })
        .transpose()?;
    let limit = params
        .limit
        .as_deref()
        .map(|l| {
            l.parse::<usize>()
                .ok()
                .filter(|n| (1..=PREDICTIONS_MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    invalid_parameter(format!(
                        "limit must be an integer from 1 to {PREDICTIONS_MAX_LIMIT}, got {l:?}"
                    ))
                })
        })
        .transpose()?;
    serde_json::to_value(state.views.predictions(urgency, limit))
        .map(Json)
        .map_err(|e| ApiError::internal("internal", e.to_string()))
}

pub async fn machine_predictions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Role::Read)?;
    let detail = state.views.machine_predictions(&id).ok_or_else(|| {
        ApiError::not_found(
            "unknown_machine",
            format!("no twin state or failure prediction for machine {id:?}"),
        )
    })?;
    serde_json::to_value(detail)
        .map(Json)
        .map_err(|e| ApiError::internal("internal", e.to_string()))
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected Content-Type: application/json, got {ct:?}"),
        ))
    }
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "payload_too_large", e.body_text())
        } else {
            ApiError::new(status, "invalid_request", e.body_text())
        }
    })
}

/// JSON syntax errors are 400; well-formed JSON of the wrong shape is 422 (axum's convention).
fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::bad_request("invalid_json", format!("request body is not JSON: {e}"))
        } else {
            ApiError::unprocessable("invalid_request", format!("unexpected request body: {e}"))
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    #[serde(default)]
    pub max_rows: Option<usize>,
}

pub async fn query(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Role::Read)?;
    require_json(&headers)?;
    let body = body_bytes(body)?;
    let request: QueryRequest = parse_json(&body)?;
    let result = state.engine.query(&request.sql, request.max_rows).await?;
    let wants_arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM));
    if wants_arrow {
        arrow_stream_response(&result)
    } else {
        json_response(&result)
    }
}

fn arrow_stream_response(result: &QueryResult) -> Result<Response, ApiError> {
    let internal = |e: arrow::error::ArrowError| ApiError::internal("internal", e.to_string());
    let mut writer =
        arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &result.schema).map_err(internal)?;
    for batch in &result.batches {
        writer.write(batch).map_err(internal)?;
    }
    writer.finish().map_err(internal)?;
    let bytes = writer.into_inner().map_err(internal)?;
    Response::builder()
        .header(header::CONTENT_TYPE, ARROW_STREAM)
        .header("x-twinline-truncated", result.truncated.to_string())
        .header("x-twinline-row-count", result.row_count.to_string())
        .body(Body::from(bytes))
        .map_err(|e| ApiError::internal("internal", e.to_string()))
}

/// Rows are written by Arrow's JSON writer straight into the response (no `Value` tree per
/// cell); nulls are explicit so every row object has every column.
fn json_response(result: &QueryResult) -> Result<Response, ApiError> {
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
        .collect();
    let mut out = Vec::with_capacity(256 + result.row_count * 64);
    out.extend_from_slice(b"{\"columns\":");
    serde_json::to_writer(&mut out, &columns)
        .map_err(|e| ApiError::internal("internal", e.to_string()))?;
    out.extend_from_slice(b",\"rows\":");
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(&mut out);
    let batches: Vec<_> = result.batches.iter().collect();
    writer
        .write_batches(&batches)
        .and_then(|()| writer.finish())
        .map_err(|e| ApiError::internal("internal", format!("cannot encode rows: {e}")))?;
    drop(writer);
    let tail = json!({
        "row_count": result.row_count,
        "truncated": result.truncated,
        "elapsed_ms": result.elapsed.as_secs_f64() * 1000.0,
    });
    // Splice the tail object's members after the rows: `,"row_count":..}`.
    let tail = tail.to_string();
    out.push(b',');
    out.extend_from_slice(&tail.as_bytes()[1..]);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(out))
        .map_err(|e| ApiError::internal("internal", e.to_string()))
}

pub async fn ingest(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(topic): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Role::Write)?;
    let topic: Topic = topic
        .parse()
        .map_err(|_| ApiError::not_found("unknown_topic", format!("no topic named {topic:?}")))?;
    if !topic.is_input() {
        return Err(ApiError::forbidden(
            "derived_topic",
            format!("{topic} is derived by the pipeline; only input topics accept events"),
        ));
    }
    require_json(&headers)?;
    let body = body_bytes(body)?;
    let value: Value = parse_json(&body)?;
    let payload = Payload::from_json(topic, value)
        .map_err(|e| ApiError::unprocessable("invalid_payload", e.to_string()))?;
    let backend = state.backend.clone();
    let ack = tokio::task::spawn_blocking(move || backend.ingest(topic, payload))
        .await
        .map_err(|e| ApiError::internal("internal", format!("ingest task failed: {e}")))?
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ingest_failed", e))?;
    Ok((StatusCode::ACCEPTED, Json(ack)).into_response())
}

pub async fn checkpoint(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Role::Admin)?;
    let backend = state.backend.clone();
    tokio::task::spawn_blocking(move || backend.checkpoint())
        .await
        .map_err(|e| ApiError::internal("internal", format!("checkpoint task failed: {e}")))?
        .map_err(|e| ApiError::internal("checkpoint_failed", e))?;
    Ok(Json(json!({ "status": "checkpointed" })))
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found("not_found", format!("no route for {}", uri.path()))
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
