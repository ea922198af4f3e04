//! The read API: `app(state)` builds the axum router (health, metrics, twin state, dashboard,
//! predictive maintenance, SQL, ingest, vision upload, admin, WebSocket stream, OpenAPI, static
//! dashboard).
//! The pipeline implements [`ApiBackend`] to take writes and report readiness.

mod detect;
mod docs;
mod error;
mod metrics;
mod routes;
pub mod scheduling;
mod snapshot;
mod web;
mod ws;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use tower_http::trace::TraceLayer;
use twinline_schemas::{Payload, Topic};

pub use detect::{detect_json, DetectHub, DetectOutcome, DETECT_TIMEOUT, UPLOAD_MACHINE_ID};
pub use error::ApiError;
pub use metrics::{ApiMetrics, DropReason};
pub use routes::{dashboard_stats_json, factory_state_json};

use crate::sql::{QueryConfig, QueryEngine, QueryError};
use crate::views::Views;

/// Where an ingested event landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestAck {
    pub topic: Topic,
    pub partition: u32,
    pub offset: u64,
}

/// What the API needs from the pipeline. Calls may block (disk); the API runs them off the
/// async reactor.
pub trait ApiBackend: Send + Sync + 'static {
    /// Appends one event to an input topic.
    fn ingest(&self, topic: Topic, payload: Payload) -> Result<IngestAck, String>;
    /// The pipeline's own metrics, Prometheus text format 0.0.4.
    fn metrics_text(&self) -> String;
    /// Whether the pipeline has recovered and is processing.
    fn ready(&self) -> bool;
    /// Writes a checkpoint of every task now.
    fn checkpoint(&self) -> Result<(), String>;
    /// Matches uploaded images to their defects; `None` while no defect model is loaded (the
    /// upload endpoint then answers 503).
    fn detect_hub(&self) -> Option<Arc<DetectHub>> {
        None
    }
    /// Checks that `data` is an image the defect model can read (a decodable PNG or JPEG).
    fn validate_image(&self, _data: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// Access level of a token; ordered `Read < Write < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Write,
    Admin,
}

/// A bearer token and what it may do.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub token: String,
    pub role: Role,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach logs.
        f.debug_struct("ApiToken")
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// Settings of the read API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub factory_id: String,
    pub tokens: Vec<ApiToken>,
    /// Whether GET routes (and the WebSocket) need a token too.
    pub read_requires_token: bool,
    pub query_timeout: Duration,
    /// Largest row limit a query may ask for; also the default when it is below 10 000.
    pub query_max_rows: usize,
    /// Minimum time between two pushes to one WebSocket client.
    pub ws_push_interval: Duration,
    /// Messages queued per WebSocket client (at least 5, the greeting); a client whose queue
    /// is full when a push is due is dropped.
    pub ws_queue: usize,
    /// A send to a WebSocket client blocked longer than this drops the client.
    pub ws_send_timeout: Duration,
    /// Dashboard build output (`index.html`, `assets/`); `None` serves a placeholder page.
    pub web_dir: Option<PathBuf>,
    /// Largest request body accepted (ingest of images needs a few MB).
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            factory_id: "factory-1".to_string(),
            tokens: Vec::new(),
            read_requires_token: false,
            query_timeout: Duration::from_secs(10),
            query_max_rows: 10_000,
            ws_push_interval: Duration::from_secs(2),
            ws_queue: 16,
            ws_send_timeout: Duration::from_secs(5),
            web_dir: None,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub views: Arc<Views>,
    pub engine: QueryEngine,
    pub backend: Arc<dyn ApiBackend>,
    pub config: Arc<ApiConfig>,
    pub metrics: Arc<ApiMetrics>,
    /// Rendered documents shared by GETs and WebSocket pushes.
    pub(crate) snapshots: Arc<snapshot::SnapshotCache>,
    /// `POST /api/v1/scheduling/optimize` calls that may run at once (one per core would starve
    /// the pipeline; the rest answer 429).
    pub(crate) solver_slots: Arc<tokio::sync::Semaphore>,
    /// The learned dispatching policy, when loaded (`rl/predict` answers 503 without it).
    pub(crate) dispatch_planner: Option<Arc<dyn scheduling::DispatchPlanner>>,
    /// `rl/predict` calls that may plan at once (the rest answer 429).
    pub(crate) policy_slots: Arc<tokio::sync::Semaphore>,
}

impl ApiState {
    /// Builds the query engine over `views` from the config's query limits.
    pub fn new(
        views: Arc<Views>,
        backend: Arc<dyn ApiBackend>,
        config: ApiConfig,
    ) -> Result<Self, QueryError> {
        let query = QueryConfig {
            timeout: config.query_timeout,
            default_max_rows: config
                .query_max_rows
                .min(QueryConfig::default().default_max_rows),
            max_rows_cap: config.query_max_rows,
            ..QueryConfig::default()
        };
        let engine = QueryEngine::new(views.clone(), query)?;
        let snapshots = Arc::new(snapshot::SnapshotCache::new((config.ws_queue / 2).max(1)));
        Ok(ApiState {
            views,
            engine,
            backend,
            config: Arc::new(config),
            metrics: Arc::new(ApiMetrics::default()),
            snapshots,
            solver_slots: Arc::new(tokio::sync::Semaphore::new(1)),
            dispatch_planner: None,
            policy_slots: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    /// Serves `POST /api/v1/scheduling/rl/predict` with `planner`.
    pub fn with_dispatch_planner(mut self, planner: Arc<dyn scheduling::DispatchPlanner>) -> Self {
        self.dispatch_planner = Some(planner);
        self
    }

    /// Checks the request's bearer token against `needed`. Without a token, read access is
    /// granted unless `read_requires_token`.
    pub fn authorize(&self, headers: &HeaderMap, needed: Role) -> Result<Option<Role>, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            if needed == Role::Read && !self.config.read_requires_token {
                return Ok(None);
            }
            return Err(ApiError::unauthorized(
                "missing_token",
                "this route needs `Authorization: Bearer <token>`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("invalid_token", "expected `Authorization: Bearer <token>`")
            })?;
        let role = self
            .config
            .tokens
            .iter()
            .find(|t| constant_time_eq(t.token.as_bytes(), token.as_bytes()))
            .map(|t| t.role)
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "unknown token"))?;
        if role < needed {
            return Err(ApiError::forbidden(
                "insufficient_role",
                format!("this route needs the {needed:?} role; the token has {role:?}")
                    .to_lowercase(),
            ));
        }
        Ok(Some(role))
    }
}

/// Compares tokens without an early exit on the first differing byte (no timing oracle).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The router. A function of the state so tests can drive it with `oneshot`, no socket.
pub fn app(state: ApiState) -> Router {
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .route("/health", get(routes::health))
        .route("/health/live", get(routes::live))
        .route("/health/ready", get(routes::ready))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/digital-twin/state", get(routes::factory_state))
        .route("/api/v1/digital-twin/machines/{id}", get(routes::machine))
        .route("/api/v1/dashboard/stats", get(routes::dashboard_stats))
        .route("/api/v1/predictive/predictions", get(routes::predictions))
        .route(
            "/api/v1/predictive/machines/{id}",
            get(routes::machine_predictions),
        )
        .route("/api/v1/query", post(routes::query))
        .route("/api/v1/ingest/{topic}", post(routes::ingest))
        .route("/api/v1/vision/detect", post(detect::detect))
        .route("/api/v1/admin/checkpoint", post(routes::checkpoint))
        .route("/api/v1/ws/stream", get(ws::upgrade))
        .route("/api/v1/scheduling/schedule", get(scheduling::schedule))
        .route("/api/v1/scheduling/optimize", post(scheduling::optimize))
        .route(
            "/api/v1/scheduling/rl/predict",
            post(scheduling::rl_predict),
        )
        .route("/openapi.json", get(docs::openapi))
        .route("/docs", get(docs::docs_page))
        .route("/", get(web::index))
        .route("/3d", get(web::index))
        .route("/assets/{*path}", get(web::asset))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track_requests,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
