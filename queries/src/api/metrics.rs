//! The API's own counters (requests by route and status, WebSocket clients and drops) and the
//! `/metrics` handler that joins them with the pipeline's metrics, Prometheus text format 0.0.4.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

use super::{ApiError, ApiState, Role};

/// Why a WebSocket client was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its outgoing queue was full when a push was due.
    QueueFull,
    /// One send blocked past `ws_send_timeout`.
    SendTimeout,
}

impl DropReason {
    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::SendTimeout => "send_timeout",
        }
    }
}

#[derive(Debug, Default)]
pub struct ApiMetrics {
    /// (route template, method, status) -> count. Route templates, not raw paths, keep the
    /// label set bounded.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    pub(crate) ws_clients: AtomicI64,
    pub(crate) ws_messages: AtomicU64,
    pub(crate) ws_dropped_queue_full: AtomicU64,
    pub(crate) ws_dropped_send_timeout: AtomicU64,
}

impl ApiMetrics {
    pub fn record_request(&self, route: &str, method: &str, status: u16) {
        *self
            .requests
            .lock()
            .entry((route.to_string(), method.to_string(), status))
            .or_insert(0) += 1;
    }

    pub fn record_drop(&self, reason: DropReason) {
        match reason {
            DropReason::QueueFull => &self.ws_dropped_queue_full,
            DropReason::SendTimeout => &self.ws_dropped_send_timeout,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// WebSocket clients dropped for being too slow, all reasons.
    pub fn ws_dropped(&self) -> u64 {
        self.ws_dropped_queue_full.load(Ordering::Relaxed)
            + self.ws_dropped_send_timeout.load(Ordering::Relaxed)
    }

    pub fn ws_clients(&self) -> i64 {
        self.ws_clients.load(Ordering::Relaxed)
    }

    /// Requests seen for (route template, status).
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        self.requests
            .lock()
            .iter()
            .filter(|((r, _, s), _)| r == route && *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    /// The API's metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        // Writing to a String cannot fail; results are ignored on purpose.
        let _ = writeln!(
            out,
            "# HELP twinline_api_requests_total HTTP requests served by the read API."
        );
        let _ = writeln!(out, "# TYPE twinline_api_requests_total counter");
        for ((route, method, status), n) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "twinline_api_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape_label(route),
                escape_label(method)
            );
        }
        let _ = writeln!(
            out,
            "# HELP twinline_api_ws_clients Connected WebSocket clients."
        );
        let _ = writeln!(out, "# TYPE twinline_api_ws_clients gauge");
        let _ = writeln!(out, "twinline_api_ws_clients {}", self.ws_clients());
        let _ = writeln!(
            out,
            "# HELP twinline_api_ws_messages_total WebSocket messages sent."
        );
        let _ = writeln!(out, "# TYPE twinline_api_ws_messages_total counter");
        let _ = writeln!(
            out,
            "twinline_api_ws_messages_total {}",
            self.ws_messages.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP twinline_api_ws_dropped_total WebSocket clients dropped for being too slow."
        );
        let _ = writeln!(out, "# TYPE twinline_api_ws_dropped_total counter");
        for reason in [DropReason::QueueFull, DropReason::SendTimeout] {
            let n = match reason {
                DropReason::QueueFull => &self.ws_dropped_queue_full,
                DropReason::SendTimeout => &self.ws_dropped_send_timeout,
            }
            .load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "twinline_api_ws_dropped_total{{reason=\"{}\"}} {n}",
                reason.label()
            );
        }
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counts every response by route template and status.
pub async fn track_requests(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    state
        .metrics
        .record_request(&route, &method, response.status().as_u16());
    response
}

/// `GET /metrics`.
pub async fn metrics(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Role::Read)?;
    let backend = state.backend.clone();
    let mut text = tokio::task::spawn_blocking(move || backend.metrics_text())
        .await
        .map_err(|e| ApiError::internal("internal", format!("metrics task failed: {e}")))?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    state.metrics.render(&mut text);
    let counters = state.views.counters();
    let _ = writeln!(
        text,
        "# HELP twinline_views_events_total Events applied to the views, by topic."
    );
    let _ = writeln!(text, "# TYPE twinline_views_events_total counter");
    for (topic, n) in &counters.events_by_topic {
        let _ = writeln!(text, "twinline_views_events_total{{topic=\"{topic}\"}} {n}");
    }
    let _ = writeln!(
        text,
        "# HELP twinline_views_ignored_total Events of topics no view reads."
    );
    let _ = writeln!(text, "# TYPE twinline_views_ignored_total counter");
    let _ = writeln!(text, "twinline_views_ignored_total {}", counters.ignored);
    let _ = writeln!(
        text,
        "# HELP twinline_views_rows Rows held by each view table."
    );
    let _ = writeln!(text, "# TYPE twinline_views_rows gauge");
    for (table, n) in &counters.rows_by_table {
        let _ = writeln!(
            text,
            "twinline_views_rows{{table=\"{}\"}} {n}",
            escape_label(table)
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
