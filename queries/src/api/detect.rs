//! `POST /api/v1/vision/detect`: an uploaded image is published to `images` like a camera's, and
//! the answer is the `defects` event the pipeline derives from it, matched by request id through
//! the [`DetectHub`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Multipart, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use twinline_schemas::{Defect, Image, Payload, Topic};

use super::{ApiError, ApiState, Role};

/// Machine id of uploads that name none (the twin does not track it).
pub const UPLOAD_MACHINE_ID: &str = "upload";
/// How long an upload waits for its defect before answering 504.
pub const DETECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The pipeline's answer to one upload.
#[derive(Debug, Clone)]
pub struct DetectOutcome {
    pub defect: Defect,
    /// Measured processing time of the image in the vision processor, from the record header.
    pub processing_time_us: Option<u64>,
}

/// Uploads waiting for their defect, by request id. The pipeline calls [`DetectHub::complete`]
/// for every `defects` record that carries a request id.
#[derive(Default)]
pub struct DetectHub {
    pending: Mutex<HashMap<String, oneshot::Sender<DetectOutcome>>>,
    waiting: AtomicU64,
}

impl std::fmt::Debug for DetectHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectHub")
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish()
    }
}

impl DetectHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether any upload is waiting (lets the caller skip looking at defects otherwise).
    pub fn any_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    fn register(&self, request_id: &str) -> oneshot::Receiver<DetectOutcome> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(request_id.to_string(), tx);
        self.waiting.fetch_add(1, Ordering::AcqRel);
        rx
    }

    fn cancel(&self, request_id: &str) {
        if self.pending.lock().remove(request_id).is_some() {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Hands `outcome` to the upload waiting for `request_id`; false if none waits (a replayed
    /// or timed-out request).
    pub fn complete(&self, request_id: &str, outcome: DetectOutcome) -> bool {
        let Some(tx) = self.pending.lock().remove(request_id) else {
            return false;
        };
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        tx.send(outcome).is_ok()
    }
}

/// Removes an upload's waiter when the request ends without its answer (timeout, error, or the
/// client went away and axum dropped the handler), so the hub never keeps dead entries.
struct Registration<'a> {
    hub: &'a DetectHub,
    request_id: &'a str,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.hub.cancel(self.request_id);
    }
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

/// A request id unique within this process and across restarts (wall-clock nanoseconds + counter).
fn new_request_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seq = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    format!("det-{nanos:x}-{seq}")
}

/// The media type of an uploaded part: the part's declared type when it is PNG or JPEG, else the
/// type its bytes start with when it declared none (or a generic binary type).
fn media_type(declared: Option<&str>, data: &[u8]) -> Result<&'static str, ApiError> {
    let sniffed = if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else {
        None
    };
    let declared = declared.map(|d| {
        d.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match declared.as_deref() {
        Some("image/png") => Ok("image/png"),
        Some("image/jpeg" | "image/jpg") => Ok("image/jpeg"),
        None | Some("" | "application/octet-stream") => sniffed.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the file is neither PNG nor JPEG",
            )
        }),
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("file type {other} is not supported (image/png or image/jpeg)"),
        )),
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "payload_too_large", e.body_text())
    } else {
        ApiError::bad_request("invalid_multipart", e.body_text())
    }
}

/// The JSON answer for one outcome (also printed by `twinline detect`).
pub fn detect_json(defect: &Defect, processing_time_ms: Option<f64>) -> Value {
    json!({
        "defect_detected": defect.defect_detected,
        "confidence": defect.confidence,
        "defect_type": defect.defect_type,
        "bbox": defect.bbox.as_ref().map(|b| json!({
            "x": b.x, "y": b.y, "width": b.width, "height": b.height,
        })),
        "processing_time_ms": processing_time_ms,
        "model_name": defect.model_name,
        "model_version": defect.model_version,
    })
}

pub async fn detect(
    State(state): State<ApiState>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.authorize(&headers, Role::Write)?;
    let Some(hub) = state.backend.detect_hub() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "model_unavailable",
            "no defect model is loaded (see the server log for why)",
        ));
    };
    let mut multipart = multipart.map_err(|e| {
        let is_multipart = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        if is_multipart {
            ApiError::bad_request("invalid_multipart", e.body_text())
        } else {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the image as multipart/form-data with a `file` field",
            )
        }
    })?;
    let mut file: Option<(Option<String>, Vec<u8>)> = None;
    let mut machine_id: Option<String> = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("file") => {
                let declared = field.content_type().map(str::to_string);
                let data = field.bytes().await.map_err(multipart_error)?;
                file = Some((declared, data.to_vec()));
            }
            Some("machine_id") => {
                let text = field.text().await.map_err(multipart_error)?;
                let text = text.trim();
                if !text.is_empty() {
                    machine_id = Some(text.to_string());
                }
            }
            // Unknown fields are drained and ignored, as HTML forms add their own.
            _ => {
                field.bytes().await.map_err(multipart_error)?;
            }
        }
    }
    let Some((declared, data)) = file else {
        return Err(ApiError::bad_request(
            "missing_file",
            "the multipart body has no `file` field",
        ));
    };
    if data.is_empty() {
        return Err(ApiError::bad_request("invalid_image", "the file is empty"));
    }
    let media_type = media_type(declared.as_deref(), &data)?;
    if let Some(m) = &machine_id {
        if m.len() > 128 || m.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "machine_id must be at most 128 printable characters",
            ));
        }
    }
    let backend = state.backend.clone();
    let (data, checked) = tokio::task::spawn_blocking(move || {
        let r = backend.validate_image(&data);
        (data, r)
    })
    .await
    .map_err(|e| ApiError::internal("internal", format!("image check failed: {e}")))?;
    checked.map_err(|e| ApiError::bad_request("invalid_image", e))?;

    let request_id = new_request_id();
    let machine_id = machine_id.unwrap_or_else(|| UPLOAD_MACHINE_ID.to_string());
    // Stamped with the plant's clock (the newest event time the views have seen), so an upload
    // to a simulated or replayed plant does not jump its event time to today; the wall clock
    // only when nothing has been seen yet.
    let event_time = state
        .views
        .latest_event_time()
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let image = Image {
        machine_id,
        part_id: request_id.clone(),
        media_type: media_type.to_string(),
        data,
        event_time,
        request_id: Some(request_id.clone()),
    };
    let started = Instant::now();
    let rx = hub.register(&request_id);
    let _registration = Registration {
        hub: &hub,
        request_id: &request_id,
    };
    let backend = state.backend.clone();
    let ack =
        tokio::task::spawn_blocking(move || backend.ingest(Topic::Images, Payload::Image(image)))
            .await
            .map_err(|e| ApiError::internal("internal", format!("ingest task failed: {e}")));
    let ack = match ack {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ingest_failed",
                e,
            ));
        }
        Err(e) => return Err(e),
    };
    let outcome = match tokio::time::timeout(DETECT_TIMEOUT, rx).await {
        Ok(Ok(o)) => o,
        _ => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "detect_timeout",
                format!(
                    "no defect for request {request_id} within {} s (image at {}/{}/{})",
                    DETECT_TIMEOUT.as_secs(),
                    ack.topic,
                    ack.partition,
                    ack.offset
                ),
            ));
        }
    };
    let mut body = detect_json(
        &outcome.defect,
        outcome.processing_time_us.map(|us| us as f64 / 1000.0),
    );
    if let Value::Object(m) = &mut body {
        m.insert("request_id".into(), json!(request_id));
        m.insert("machine_id".into(), json!(outcome.defect.machine_id));
        m.insert("event_id".into(), json!(outcome.defect.event_id));
        m.insert(
            "image".into(),
            json!({"topic": ack.topic, "partition": ack.partition, "offset": ack.offset}),
        );
        m.insert(
            "latency_ms".into(),
            json!(started.elapsed().as_secs_f64() * 1000.0),
        );
    }
    Ok((StatusCode::OK, Json(body)))
}
