//! The router through `oneshot`: every route, status codes, error bodies, token roles.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use twinline_queries::{app, ApiConfig};
use twinline_schemas::*;

use crate::common::*;

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Every error answer has the same three string fields.
    fn error_type(&self) -> String {
        let v = self.json();
        assert!(
            v["error"].is_string() && v["detail"].is_string(),
            "error body {v}"
        );
        v["type"].as_str().expect("type").to_string()
    }
}

async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(router: &Router, uri: &str) -> Reply {
    send(router, Method::GET, uri, None, None).await
}

#[tokio::test]
async fn health_routes() {
    let (state, views, backend) = state_with(test_config());
    let r = app(state);
    let h = get(&r, "/health").await;
    assert_eq!(h.status, 200);
    assert_eq!(
        h.json(),
        json!({"status": "healthy", "version": "0.1.0", "timestamp": null})
    );
    apply_all(
        &views,
        &[sensor("m-1", SensorKind::Speed, 1.0, 1_700_000_000_123)],
    );
    assert_eq!(
        get(&r, "/health").await.json()["timestamp"],
        "2023-11-14T22:13:20.123Z"
    );
    let l = get(&r, "/health/live").await;
    assert_eq!(
        (l.status, l.json()),
        (StatusCode::OK, json!({"status": "alive"}))
    );
    assert_eq!(
        get(&r, "/health/ready").await.json(),
        json!({"status": "ready"})
    );
    backend.not_ready.store(true, Ordering::SeqCst);
    let nr = get(&r, "/health/ready").await;
    assert_eq!(nr.status, 503);
    assert_eq!(nr.json()["status"], "not_ready");
    assert!(nr.json()["detail"].is_string());
}

#[tokio::test]
async fn state_machine_and_stats() {
    let (state, views, _) = state_with(test_config());
    let r = app(state);
    let empty = get(&r, "/api/v1/digital-twin/state").await.json();
    assert_eq!(empty["factory_id"], "plant-7");
    assert_eq!(empty["machines"], json!([]));
    assert_eq!(
        empty["statistics"]["status_counts"]
            .as_object()
            .unwrap()
            .len(),
        6
    );

    apply_all(
        &views,
        &[
            twin("m-2", 4, MachineStatus::Warning, 50.0, T0 + 4),
            twin("m-1", 10, MachineStatus::Running, 90.0, T0 + 5),
            twin("m-1", 12, MachineStatus::Error, 20.0, T0 + 6),
            prediction("m-1", Urgency::Critical, T0 + 7),
        ],
    );
    let s = get(&r, "/api/v1/digital-twin/state").await;
    assert_eq!(s.status, 200);
    let s = s.json();
    assert_eq!(s["timestamp"], twinline_queries::time::rfc3339_ms(T0 + 7));
    let machines = s["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 2);
    assert_eq!(machines[0]["machine_id"], "m-1");
    assert_eq!(machines[0]["status"], "ERROR");
    assert_eq!(machines[0]["cycles"], 12);
    assert_eq!(
        machines[0]["updated_at"],
        twinline_queries::time::rfc3339_ms(T0 + 6)
    );
    for key in [
        "health_score",
        "defects",
        "parts_inspected",
        "defect_rate",
        "temperature",
        "vibration",
        "pressure",
        "speed",
        "last_seen",
        "reason",
    ] {
        assert!(machines[0].get(key).is_some(), "missing {key}");
    }
    let st = &s["statistics"];
    assert_eq!(st["total_machines"], 2);
    assert_eq!(st["status_counts"]["ERROR"], 1);
    assert_eq!(st["status_counts"]["WARNING"], 1);
    assert_eq!(st["status_counts"]["IDLE"], 0);
    assert_eq!(st["total_cycles"], 16);
    assert_eq!(st["average_health"], 35.0);

    let m = get(&r, "/api/v1/digital-twin/machines/m-1").await.json();
    assert_eq!(m["machine_id"], "m-1");
    let hist = m["history"].as_array().unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[1]["cycles"], 12, "newest last");
    assert_eq!(hist[1]["status"], "ERROR");
    let missing = get(&r, "/api/v1/digital-twin/machines/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_type(), "unknown_machine");

    let d = get(&r, "/api/v1/dashboard/stats").await.json();
    assert_eq!(d["total_machines"], 2);
    assert_eq!(d["overall_health"], 35.0);
    assert_eq!(d["status_breakdown"]["ERROR"], 1);
    assert_eq!(
        d["maintenance_alerts"],
        json!({"critical": 1, "high": 0, "medium": 0, "low": 0, "open_requests": 0})
    );
}

#[tokio::test]
async fn query_route_json_arrow_and_errors() {
    let (state, views, _) = state_with(test_config());
    let r = app(state);
    apply_all(
        &views,
        &[
            twin("m-1", 3, MachineStatus::Running, 80.0, T0),
            twin("m-2", 3, MachineStatus::Idle, 70.0, T0),
        ],
    );
    let ok = send(&r, Method::POST, "/api/v1/query", None, Some(json!({"sql": "SELECT machine_id, health_score, speed, event_time FROM twin_state ORDER BY machine_id"}))).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let v = ok.json();
    assert_eq!(
        v["columns"][0],
        json!({"name": "machine_id", "type": "Utf8"})
    );
    assert_eq!(v["rows"][1]["machine_id"], "m-2");
    assert_eq!(v["rows"][0]["health_score"], 80.0);
    assert_eq!(v["rows"][0]["speed"], Value::Null);
    assert!(v["rows"][0]["event_time"]
        .as_str()
        .unwrap()
        .starts_with("2023-11-14T22:13:20"));
    assert_eq!(
        (v["row_count"].clone(), v["truncated"].clone()),
        (json!(2), json!(false))
    );
    assert!(v["elapsed_ms"].is_number());

    let t = send(
        &r,
        Method::POST,
        "/api/v1/query",
        None,
        Some(json!({"sql": "SELECT * FROM generate_series(1, 100)", "max_rows": 10})),
    )
    .await
    .json();
    assert_eq!(
        (t["row_count"].clone(), t["truncated"].clone()),
        (json!(10), json!(true))
    );
    assert_eq!(t["rows"].as_array().unwrap().len(), 10);

    // Arrow IPC stream on request.
    let req = Request::post("/api/v1/query")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/vnd.apache.arrow.stream")
        .body(Body::from(
            json!({"sql": "SELECT machine_id FROM twin_state ORDER BY machine_id"}).to_string(),
        ))
        .unwrap();
    let resp = r.clone().oneshot(req).await.unwrap();
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None)
            .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 2);

    for (sql, status, kind) in [
        ("DROP TABLE twin_state", 400, "sql_refused"),
        ("CREATE TABLE x (a INT)", 400, "sql_refused"),
        ("SELEC 1", 400, "invalid_sql"),
    ] {
        let e = send(
            &r,
            Method::POST,
            "/api/v1/query",
            None,
            Some(json!({ "sql": sql })),
        )
        .await;
        assert_eq!(e.status, status, "{sql}");
        assert_eq!(e.error_type(), kind, "{sql}");
    }
    let bad = send(
        &r,
        Method::POST,
        "/api/v1/query",
        None,
        Some(json!({"query": "SELECT 1"})),
    )
    .await;
    assert_eq!(bad.status, 422);
    let req = Request::post("/api/v1/query")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("SELECT 1"))
        .unwrap();
    let resp = r.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 415);
    let req = Request::post("/api/v1/query")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    assert_eq!(r.clone().oneshot(req).await.unwrap().status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_route_times_out_with_408() {
    let (state, _, _) = state_with(ApiConfig {
        query_timeout: std::time::Duration::from_millis(300),
        ..test_config()
    });
    let r = app(state);
    let e = send(&r, Method::POST, "/api/v1/query", None, Some(json!({"sql": "SELECT max(a.value + b.value) FROM generate_series(1, 1000000) a CROSS JOIN generate_series(1, 1000000) b"}))).await;
    assert_eq!(e.status, 408);
    assert_eq!(e.error_type(), "query_timeout");
}

#[tokio::test]
async fn ingest_and_checkpoint_need_roles() {
    let (state, _, backend) = state_with(test_config());
    let r = app(state);
    let reading = json!({"machine_id": "m-1", "sensor": "TEMPERATURE", "value": 71.5, "unit": "C", "event_time": T0});
    let uri = "/api/v1/ingest/sensor-readings";
    for (token, status, kind) in [
        (None, 401, Some("missing_token")),
        (Some("bogus"), 401, Some("invalid_token")),
        (Some("read-token"), 403, Some("insufficient_role")),
        (Some("write-token"), 202, None),
        (Some("admin-token"), 202, None),
    ] {
        let reply = send(&r, Method::POST, uri, token, Some(reading.clone())).await;
        assert_eq!(reply.status, status, "{token:?}");
        match kind {
            Some(k) => {
                assert_eq!(reply.error_type(), k);
                if status == 401 {
                    assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Bearer");
                }
            }
            None => assert_eq!(reply.json()["topic"], "sensor-readings"),
        }
    }
    let log = backend.ingested.lock().clone();
    assert_eq!(
        log.len(),
        2,
        "only the write and admin requests reached the backend"
    );
    assert_eq!(log[0].1, sensor("m-1", SensorKind::Temperature, 71.5, T0));
    assert_eq!(
        send(
            &r,
            Method::POST,
            uri,
            Some("write-token"),
            Some(reading.clone())
        )
        .await
        .json(),
        json!({"topic": "sensor-readings", "partition": 3, "offset": 2})
    );

    let unknown = send(
        &r,
        Method::POST,
        "/api/v1/ingest/nope",
        Some("write-token"),
        Some(reading.clone()),
    )
    .await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.error_type()),
        (404, "unknown_topic".to_string())
    );
    let derived = send(
        &r,
        Method::POST,
        "/api/v1/ingest/twin-state",
        Some("write-token"),
        Some(reading.clone()),
    )
    .await;
    assert_eq!(
        (derived.status.as_u16(), derived.error_type()),
        (403, "derived_topic".to_string())
    );
    let invalid = send(
        &r,
        Method::POST,
        uri,
        Some("write-token"),
        Some(json!({"machine_id": "m-1"})),
    )
    .await;
    assert_eq!(
        (invalid.status.as_u16(), invalid.error_type()),
        (422, "invalid_payload".to_string())
    );
    backend.fail_ingest.store(true, Ordering::SeqCst);
    let failed = send(&r, Method::POST, uri, Some("write-token"), Some(reading)).await;
    assert_eq!(failed.status, 503);

    let cp = "/api/v1/admin/checkpoint";
    for (token, status) in [
        (None, 401),
        (Some("read-token"), 403),
        (Some("write-token"), 403),
        (Some("admin-token"), 200),
    ] {
        assert_eq!(
            send(&r, Method::POST, cp, token, None).await.status,
            status,
            "{token:?}"
        );
    }
    assert_eq!(backend.checkpoints.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn read_routes_can_require_a_token() {
    let (state, _, _) = state_with(ApiConfig {
        read_requires_token: true,
        ..test_config()
    });
    let r = app(state);
    let none = get(&r, "/api/v1/digital-twin/state").await;
    assert_eq!(none.status, 401);
    assert_eq!(none.error_type(), "missing_token");
    for t in ["read-token", "write-token", "admin-token"] {
        assert_eq!(
            send(&r, Method::GET, "/api/v1/dashboard/stats", Some(t), None)
                .await
                .status,
            200,
            "{t}"
        );
    }
    // Probes stay open for orchestrators.
    assert_eq!(get(&r, "/health/live").await.status, 200);
}

#[tokio::test]
async fn errors_404_405_413_and_metrics() {
    let (state, _, _) = state_with(ApiConfig {
        max_body_bytes: 1024,
        ..test_config()
    });
    let r = app(state);
    let nf = get(&r, "/api/v1/nothing").await;
    assert_eq!(
        (nf.status.as_u16(), nf.error_type()),
        (404, "not_found".to_string())
    );
    let na = send(&r, Method::DELETE, "/api/v1/digital-twin/state", None, None).await;
    assert_eq!(
        (na.status.as_u16(), na.error_type()),
        (405, "method_not_allowed".to_string())
    );
    let big = json!({"sql": "x".repeat(4096)});
    let tl = send(&r, Method::POST, "/api/v1/query", None, Some(big)).await;
    assert_eq!(
        (tl.status.as_u16(), tl.error_type()),
        (413, "payload_too_large".to_string())
    );
    let ws = get(&r, "/api/v1/ws/stream").await;
    assert!(ws.status.is_client_error());
    assert!(ws.json()["type"].is_string());

    let m = get(&r, "/metrics").await;
    assert_eq!(m.status, 200);
    assert_eq!(m.headers[header::CONTENT_TYPE], "text/plain; version=0.0.4");
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("twinline_pipeline_events_total 42"),
        "backend metrics included"
    );
    assert!(text.contains("twinline_api_requests_total{route=\"/api/v1/digital-twin/state\",method=\"DELETE\",status=\"405\"} 1"), "{text}");
    assert!(
        text.contains(
            "twinline_api_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1"
        ) || text.contains("status=\"404\"} 1"),
        "{text}"
    );
    assert!(text.contains("twinline_api_ws_clients 0"));
    assert!(text.contains("twinline_api_ws_dropped_total{reason=\"queue_full\"} 0"));
    assert!(text.contains("twinline_views_rows{table=\"sensor_readings\"} 0"));
    // Every sample line is `name{labels} value` with a numeric value.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
}

#[tokio::test]
async fn openapi_docs_and_static_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _, _) = state_with(test_config());
    let r = app(state);
    let doc = get(&r, "/openapi.json").await.json();
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/api/v1/digital-twin/state",
        "/api/v1/digital-twin/machines/{id}",
        "/api/v1/dashboard/stats",
        "/api/v1/query",
        "/api/v1/ingest/{topic}",
        "/api/v1/admin/checkpoint",
        "/api/v1/ws/stream",
        "/openapi.json",
        "/docs",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    let docs = get(&r, "/docs").await;
    assert_eq!(docs.status, 200);
    let html = String::from_utf8(docs.body).unwrap();
    assert!(
        html.contains("/openapi.json") && !html.contains("https://"),
        "self-contained page"
    );
    let root = get(&r, "/").await;
    assert_eq!(root.status, 200);
    assert!(String::from_utf8(root.body).unwrap().contains("not built"));
    assert_eq!(get(&r, "/assets/app.js").await.status, 404);

    std::fs::create_dir_all(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>dashboard</html>").unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "console.log(1)").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
    let (state, _, _) = state_with(ApiConfig {
        web_dir: Some(dir.path().to_path_buf()),
        ..test_config()
    });
    let r = app(state);
    for p in ["/", "/3d"] {
        assert_eq!(get(&r, p).await.body, b"<html>dashboard</html>");
    }
    let js = get(&r, "/assets/app.js").await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(get(&r, "/assets/..%2Fsecret.txt").await.status, 404);
    assert_eq!(get(&r, "/assets/../secret.txt").await.status, 404);
}
