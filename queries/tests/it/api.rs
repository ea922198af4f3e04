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
        "/api/v1/predictive/predictions",
        "/api/v1/predictive/machines/{id}",
        "/api/v1/query",
        "/api/v1/ingest/{topic}",
        "/api/v1/admin/checkpoint",
        "/api/v1/ws/stream",
        "/api/v1/scheduling/schedule",
        "/api/v1/scheduling/optimize",
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

/// A prediction with its own probability (the shared fixture fixes 0.5).
fn prediction_p(machine_id: &str, urgency: Urgency, p: f64, t: i64) -> Payload {
    let mut payload = prediction(machine_id, urgency, t);
    if let Payload::FailurePrediction(f) = &mut payload {
        f.failure_probability = p;
    }
    payload
}

fn ids(list: &Value) -> Vec<String> {
    list["predictions"]
        .as_array()
        .expect("predictions array")
        .iter()
        .map(|p| p["machine_id"].as_str().expect("machine_id").to_string())
        .collect()
}

#[tokio::test]
async fn predictions_route_latest_per_machine_most_urgent_first() {
    let (state, views, _) = state_with(test_config());
    let r = app(state);
    let uri = "/api/v1/predictive/predictions";
    let empty = get(&r, uri).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json()["total"], 0);
    assert_eq!(empty.json()["predictions"], json!([]));

    apply_all(
        &views,
        &[
            prediction_p("m-1", Urgency::Critical, 0.99, T0 + 1),
            prediction_p("m-3", Urgency::Low, 0.05, T0 + 2),
            prediction_p("m-2", Urgency::High, 0.9, T0 + 3),
            prediction_p("m-5", Urgency::High, 0.6, T0 + 4),
            prediction_p("m-4", Urgency::Critical, 0.8, T0 + 5),
            prediction_p("m-6", Urgency::High, 0.6, T0 + 6), // ties with m-5: machine id decides
            prediction_p("m-7", Urgency::Medium, 0.3, T0 + 7),
            // The latest prediction per machine wins: m-1 drops from CRITICAL to HIGH.
            prediction_p("m-1", Urgency::High, 0.7, T0 + 8),
            maintenance("m-2", "MR-m-2-1", MaintenanceAction::Open, T0 + 9),
        ],
    );
    let all = get(&r, uri).await;
    assert_eq!(all.status, 200);
    let all = all.json();
    assert_eq!(all["timestamp"], twinline_queries::time::rfc3339_ms(T0 + 9));
    assert_eq!(all["total"], 7);
    assert_eq!(
        ids(&all),
        ["m-4", "m-2", "m-1", "m-5", "m-6", "m-7", "m-3"],
        "urgency, then failure_probability descending, then machine id"
    );
    let urgencies: Vec<&str> = all["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["urgency"].as_str().unwrap())
        .collect();
    assert_eq!(
        urgencies,
        ["CRITICAL", "HIGH", "HIGH", "HIGH", "HIGH", "MEDIUM", "LOW"]
    );
    // The whole object, field for field.
    assert_eq!(
        all["predictions"][1],
        json!({
            "event_id": format!("failure-predictions:twin-state/0/{}/0", T0 + 3),
            "machine_id": "m-2",
            "failure_probability": 0.9,
            "time_to_failure_hours": 12.0,
            "urgency": "HIGH",
            "probability_1d": 0.1,
            "probability_3d": 0.3,
            "probability_7d": 0.5,
            "rul_hours": 40.0,
            "recommended_action": "inspect",
            "predicted_at": twinline_queries::time::rfc3339_ms(T0 + 3),
            "model_versions": {"rul": "1"},
            "top_features": [{"name": "vib", "value": 3.0, "contribution": 0.2}],
            "maintenance_request_open": true
        })
    );
    assert_eq!(all["predictions"][2]["failure_probability"], 0.7);
    assert_eq!(
        all["predictions"][2]["predicted_at"],
        twinline_queries::time::rfc3339_ms(T0 + 8)
    );
    let open: Vec<bool> = all["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["maintenance_request_open"].as_bool().unwrap())
        .collect();
    assert_eq!(open, [false, true, false, false, false, false, false]);

    // Filter (any case), limit, both.
    let high = get(&r, &format!("{uri}?urgency=high")).await.json();
    assert_eq!(
        (high["total"].clone(), ids(&high)),
        (
            json!(4),
            vec!["m-2".to_string(), "m-1".into(), "m-5".into(), "m-6".into()]
        )
    );
    let critical = get(&r, &format!("{uri}?urgency=CRITICAL")).await.json();
    assert_eq!(ids(&critical), ["m-4"]);
    let medium = get(&r, &format!("{uri}?urgency=Medium")).await.json();
    assert_eq!(ids(&medium), ["m-7"]);
    let top2 = get(&r, &format!("{uri}?limit=2")).await.json();
    assert_eq!(
        (top2["total"].clone(), ids(&top2)),
        (json!(7), vec!["m-4".to_string(), "m-2".into()]),
        "total counts every match, limit cuts the list"
    );
    let both = get(&r, &format!("{uri}?urgency=high&limit=1")).await.json();
    assert_eq!(
        (both["total"].clone(), ids(&both)),
        (json!(4), vec!["m-2".to_string()])
    );
    let big = get(&r, &format!("{uri}?limit=10000")).await.json();
    assert_eq!(ids(&big).len(), 7);
    assert_eq!(
        all,
        get(&r, &format!("{uri}?unrelated=1")).await.json(),
        "unknown keys are ignored"
    );

    for query in [
        "urgency=urgent",
        "urgency=",
        "urgency=critical&urgency=low",
        "limit=0",
        "limit=10001",
        "limit=-1",
        "limit=ten",
        "limit=",
        "limit=2.5",
    ] {
        let bad = get(&r, &format!("{uri}?{query}")).await;
        assert_eq!(bad.status, 400, "{query}");
        let body = bad.json();
        assert_eq!(body["error"], "bad_request", "{query}");
        assert_eq!(body["type"], "invalid_parameter", "{query}");
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{query}");
        assert_eq!(body.as_object().unwrap().len(), 3, "{query}: {body}");
    }
    let detail = get(&r, &format!("{uri}?urgency=urgent")).await.json();
    assert!(
        detail["detail"]
            .as_str()
            .unwrap()
            .contains("CRITICAL, HIGH, MEDIUM, LOW"),
        "{detail}"
    );
}

#[tokio::test]
async fn machine_predictions_route_history_open_request_and_404() {
    // A small history bound, so the test sees it cut.
    let views = std::sync::Arc::new(twinline_queries::Views::new(twinline_queries::ViewConfig {
        history_per_machine: 3,
        ..twinline_queries::ViewConfig::default()
    }));
    let backend = std::sync::Arc::new(FakeBackend::default());
    let state = twinline_queries::ApiState::new(views.clone(), backend, test_config()).unwrap();
    let r = app(state);

    let missing = get(&r, "/api/v1/predictive/machines/m-1").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_type(), "unknown_machine");
    assert_eq!(missing.json()["error"], "not_found");

    // A machine with a twin state but no prediction yet is known.
    apply_all(&views, &[twin("m-9", 1, MachineStatus::Running, 90.0, T0)]);
    let quiet = get(&r, "/api/v1/predictive/machines/m-9").await;
    assert_eq!(quiet.status, 200);
    assert_eq!(
        quiet.json(),
        json!({"machine_id": "m-9", "latest": null, "history": [], "open_request": null})
    );

    let urgencies = [
        Urgency::Low,
        Urgency::Medium,
        Urgency::High,
        Urgency::Critical,
        Urgency::High,
    ];
    let batch: Vec<Payload> = urgencies
        .iter()
        .enumerate()
        .map(|(i, u)| prediction_p("m-1", *u, 0.1 * (i + 1) as f64, T0 + 10 * (i as i64 + 1)))
        .chain([prediction("m-2", Urgency::Low, T0 + 60)])
        .collect();
    apply_all(&views, &batch);
    let open = Payload::MaintenanceRequest(MaintenanceRequest {
        event_id: "maintenance-requests:failure-predictions/0/4/0".into(),
        source: Source {
            topic: "failure-predictions".into(),
            partition: 0,
            offset: 4,
        },
        machine_id: "m-1".into(),
        event_time: T0 + 40,
        request_id: "MR-m-1-1".into(),
        action: MaintenanceAction::Open,
        urgency: Urgency::Critical,
        reason: "predicted failure in 12.0 h".into(),
        prediction_event_id: Some(format!("failure-predictions:twin-state/0/{}/0", T0 + 40)),
    });
    apply_all(&views, &[open]);

    let m = get(&r, "/api/v1/predictive/machines/m-1").await;
    assert_eq!(m.status, 200);
    let m = m.json();
    assert_eq!(m["machine_id"], "m-1");
    let times: Vec<String> = m["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["predicted_at"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        times,
        [T0 + 50, T0 + 40, T0 + 30].map(twinline_queries::time::rfc3339_ms),
        "newest first, bounded by history_per_machine"
    );
    let hist_urgency: Vec<&str> = m["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["urgency"].as_str().unwrap())
        .collect();
    assert_eq!(hist_urgency, ["HIGH", "CRITICAL", "HIGH"]);
    assert!(m["history"][0].get("maintenance_request_open").is_none());
    // `latest` is the newest history entry plus the live request flag.
    let mut latest = m["latest"].clone();
    assert_eq!(latest["maintenance_request_open"], true);
    latest
        .as_object_mut()
        .unwrap()
        .remove("maintenance_request_open");
    assert_eq!(latest, m["history"][0]);
    assert_eq!(latest["failure_probability"], 0.5);
    assert_eq!(
        m["open_request"],
        json!({
            "request_id": "MR-m-1-1",
            "event_id": "maintenance-requests:failure-predictions/0/4/0",
            "machine_id": "m-1",
            "urgency": "CRITICAL",
            "reason": "predicted failure in 12.0 h",
            "opened_at": twinline_queries::time::rfc3339_ms(T0 + 40),
            "prediction_event_id": format!("failure-predictions:twin-state/0/{}/0", T0 + 40)
        })
    );
    // Another machine's request is not this one's.
    let m2 = get(&r, "/api/v1/predictive/machines/m-2").await.json();
    assert_eq!(m2["open_request"], Value::Null);
    assert_eq!(m2["latest"]["maintenance_request_open"], false);
    assert_eq!(m2["history"].as_array().unwrap().len(), 1);
    let stats = get(&r, "/api/v1/dashboard/stats").await.json();
    assert_eq!(
        stats["maintenance_alerts"],
        json!({"critical": 0, "high": 1, "medium": 0, "low": 1, "open_requests": 1})
    );

    // The CLOSE clears it everywhere.
    apply_all(
        &views,
        &[maintenance(
            "m-1",
            "MR-m-1-1",
            MaintenanceAction::Close,
            T0 + 70,
        )],
    );
    let closed = get(&r, "/api/v1/predictive/machines/m-1").await.json();
    assert_eq!(closed["open_request"], Value::Null);
    assert_eq!(closed["latest"]["maintenance_request_open"], false);
    assert_eq!(closed["history"], m["history"], "history is untouched");
    let list = get(&r, "/api/v1/predictive/predictions").await.json();
    assert_eq!(ids(&list), ["m-1", "m-2"]);
    assert_eq!(list["predictions"][0]["maintenance_request_open"], false);
    assert_eq!(
        get(&r, "/api/v1/dashboard/stats").await.json()["maintenance_alerts"]["open_requests"],
        0
    );
    assert_eq!(
        get(&r, "/api/v1/predictive/machines/m-404").await.status,
        404
    );
}

#[tokio::test]
async fn predictive_routes_need_a_read_token_when_configured() {
    let (state, views, _) = state_with(ApiConfig {
        read_requires_token: true,
        ..test_config()
    });
    let r = app(state);
    apply_all(&views, &[prediction("m-1", Urgency::High, T0)]);
    for uri in [
        "/api/v1/predictive/predictions",
        "/api/v1/predictive/predictions?urgency=nope",
        "/api/v1/predictive/machines/m-1",
    ] {
        let none = get(&r, uri).await;
        assert_eq!(
            (none.status.as_u16(), none.error_type()),
            (401, "missing_token".to_string()),
            "{uri}: the token is checked before the parameters"
        );
        assert_eq!(none.headers[header::WWW_AUTHENTICATE], "Bearer");
        let bogus = send(&r, Method::GET, uri, Some("bogus"), None).await;
        assert_eq!(
            (bogus.status.as_u16(), bogus.error_type()),
            (401, "invalid_token".to_string()),
            "{uri}"
        );
    }
    for t in ["read-token", "write-token", "admin-token"] {
        let list = send(
            &r,
            Method::GET,
            "/api/v1/predictive/predictions",
            Some(t),
            None,
        )
        .await;
        assert_eq!(list.status, 200, "{t}");
        assert_eq!(ids(&list.json()), ["m-1"]);
        let one = send(
            &r,
            Method::GET,
            "/api/v1/predictive/machines/m-1",
            Some(t),
            None,
        )
        .await;
        assert_eq!(one.status, 200, "{t}");
        assert_eq!(one.json()["latest"]["urgency"], "HIGH");
    }
    // With a valid token the parameters are checked.
    let bad = send(
        &r,
        Method::GET,
        "/api/v1/predictive/predictions?urgency=nope",
        Some("read-token"),
        None,
    )
    .await;
    assert_eq!(
        (bad.status.as_u16(), bad.error_type()),
        (400, "invalid_parameter".to_string())
    );

    // Without `read_requires_token` no token is needed.
    let (state, _, _) = state_with(test_config());
    assert_eq!(
        get(&app(state), "/api/v1/predictive/predictions")
            .await
            .status,
        200
    );
}
