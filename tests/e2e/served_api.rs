//! An API instance with no state of its own (`run --api-only`), on a real Kafka and a real
//! Cassandra: it runs no processors and no views and serves what the pipeline instance wrote to
//! Cassandra.
//!
//! - It is ready before anything was derived (nothing to recover).
//! - Once the pipeline has processed a simulated plant, every document the API shows equals the
//!   pipeline instance's own (twin state, dashboard stats, predictions, each machine's detail
//!   and prediction history, the schedule), and each machine's state is the last twin state in
//!   Kafka.
//! - The write path through it: a reading posted to the API-only instance goes to Kafka, the
//!   pipeline derives the machine's twin state, Cassandra serves it, and the API-only
//!   instance's WebSocket pushes it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use twinline_schemas::{Payload, Topic};
use twinline_tests::{
    cassandra, free_port, http_request, kafka, ort_library, repo_root, sql_rows, twinline_env,
    unique_name, Server,
};

use crate::kafka::{open_kafka, read_all, registry};

const WRITER: &str = "served-writer-0001";

/// `GET path` as JSON, with the status.
fn get(addr: &str, path: &str) -> (u16, Value) {
    let (status, body) = http_request(addr, "GET", path, &[], b"");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The documents an API shows, by route, with the `timestamp` fields left out: a pipeline
/// instance stamps its documents with the newest event time of every topic (sensor readings
/// included), an API-only instance with the newest of the served state.
fn documents(addr: &str, machines: &[String]) -> BTreeMap<String, Value> {
    let mut routes = vec![
        "/api/v1/digital-twin/state".to_string(),
        "/api/v1/dashboard/stats".to_string(),
        "/api/v1/predictive/predictions".to_string(),
        "/api/v1/scheduling/schedule".to_string(),
    ];
    for m in machines {
        routes.push(format!("/api/v1/digital-twin/machines/{m}"));
        routes.push(format!("/api/v1/predictive/machines/{m}"));
    }
    routes
        .into_iter()
        .map(|r| {
            let (status, mut v) = get(addr, &r);
            if let Value::Object(map) = &mut v {
                map.remove("timestamp");
            }
            (r, serde_json::json!({ "status": status, "body": v }))
        })
        .collect()
}

#[test]
fn api_only_instance_serves_from_cassandra_what_the_pipeline_serves() {
    let _broker = twinline_tests::kafka_shared();
    let kafka = kafka();
    let (_registry, url) = registry(&kafka);
    let host = cassandra();
    let prefix = format!("{}.", unique_name("served"));
    let _topics = twinline_tests::DeleteTopicsOnDrop::new(&kafka, &prefix);
    let keyspace = unique_name("served").replace('-', "_");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("twinline.toml");
    std::fs::write(
        &config,
        format!("[api]\ntokens = [{{ token = \"{WRITER}\", role = \"write\" }}]\n"),
    )
    .unwrap();
    let (sim, data, api_data) = (
        dir.path().join("sim"),
        dir.path().join("data"),
        dir.path().join("api"),
    );
    let common = [
        "--kafka",
        kafka.as_str(),
        "--topic-prefix",
        prefix.as_str(),
        "--schema-registry",
        url.as_str(),
        "--scylla",
        host.as_str(),
    ];
    let models = repo_root().join("models");
    let ort = ort_library();
    let env = [
        ("TWINLINE_DISTRIBUTED__SCYLLA_KEYSPACE", keyspace.as_str()),
        ("TWINLINE_MODELS__DIR", models.to_str().unwrap()),
        ("ORT_DYLIB_PATH", ort.to_str().unwrap()),
        ("TWINLINE_SIMULATOR__SENSOR_INTERVAL_MS", "10000"),
        ("TWINLINE_SIMULATOR__HEARTBEAT_INTERVAL_MS", "60000"),
        ("TWINLINE_SIMULATOR__IMAGE_SIZE", "16"),
        ("TWINLINE_SIMULATOR__IMAGE_POOL_SIZE", "2"),
        ("TWINLINE_API__WS_PUSH_INTERVAL_MS", "200"),
        ("TWINLINE_DISTRIBUTED__SERVED_POLL_MS", "100"),
        ("TWINLINE_DISTRIBUTED__COMMIT_INTERVAL_MS", "100"),
    ];

    // A worn plant, in Kafka before anything processes it: several days, so that predictions,
    // maintenance requests and plans exist.
    let mut args = vec!["simulate", "--data", sim.to_str().unwrap()];
    args.extend(&common[..6]);
    args.extend(["--machines", "3", "--duration", "5d", "--seed", "2024"]);
    let out = twinline_env(&args, &env);
    assert!(
        out.status.success(),
        "simulate: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The API-only instance first: ready at once, with nothing derived yet.
    let api = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "run",
        "--api-only",
        "--data",
        api_data.to_str().unwrap(),
        "--listen",
        &api,
        "--config",
        config.to_str().unwrap(),
    ];
    args.extend(common);
    let t0 = Instant::now();
    let api_server = Server::start_probe(&args, &env, &api, "/health/ready");
    let ready_after = t0.elapsed();
    let (status, state) = get(&api, "/api/v1/digital-twin/state");
    assert_eq!(status, 200, "{state}");
    assert_eq!(
        state["machines"].as_array().map(Vec::len),
        Some(0),
        "{state}"
    );
    eprintln!("API-only instance ready after {ready_after:?}");

    // The pipeline instance.
    let pipe = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["run", "--data", data.to_str().unwrap(), "--listen", &pipe];
    args.extend(common);
    args.extend(["--config", config.to_str().unwrap()]);
    let pipe_server = Server::start(&args, &env, &pipe);

    // Both show the same documents once the plant is processed; the pipeline has processed it
    // when each machine's state is the last twin state in Kafka.
    let log = open_kafka(&kafka, &prefix);
    let codec = twinline_tests::registry_codec(&url);
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut differ = String::new();
    let (machines, served) = loop {
        let (_, state) = get(&api, "/api/v1/digital-twin/state");
        let machines: Vec<String> = state["machines"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["machine_id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if machines.len() == 3 {
            let served = documents(&api, &machines);
            let own = documents(&pipe, &machines);
            differ = served
                .iter()
                .filter(|(r, v)| own.get(*r) != Some(*v))
                .map(|(r, v)| {
                    let cut = |v: &Value| v.to_string().chars().take(1500).collect::<String>();
                    format!("\n{r}:\n  served {}\n  own    {}", cut(v), cut(&own[r]))
                })
                .collect();
            if served == own {
                let mut last: BTreeMap<String, String> = BTreeMap::new();
                for recs in read_all(&log, "twin-state").into_values() {
                    for (_, _, _, value) in recs {
                        if let Ok(Payload::TwinState(t)) = codec.decode(Topic::TwinState, &value) {
                            last.insert(t.machine_id, t.event_id);
                        }
                    }
                }
                let shown: BTreeMap<String, String> = state["machines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        let id = m["machine_id"].as_str().unwrap().to_string();
                        let detail = &served[&format!("/api/v1/digital-twin/machines/{id}")];
                        let history = detail["body"]["history"].as_array().unwrap();
                        let newest = history.last().unwrap()["event_id"].as_str().unwrap();
                        (id, newest.to_string())
                    })
                    .collect();
                // The scheduler and the predictive processor may trail the twin: wait for them.
                let complete = served["/api/v1/scheduling/schedule"]["status"] == 200
                    && served["/api/v1/predictive/predictions"]["body"]["total"] == 3;
                if shown == last && complete {
                    break (machines, served);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the API-only instance never showed the pipeline's final documents; differing:{differ}"
        );
        std::thread::sleep(Duration::from_millis(1000));
    };
    // What was compared is not trivial: predictions, open requests or their history, and a plan.
    let predictions = &served["/api/v1/predictive/predictions"]["body"];
    assert!(
        predictions["total"].as_u64().unwrap_or(0) == 3,
        "every machine has a prediction: {predictions}"
    );
    let history_lengths: Vec<usize> = machines
        .iter()
        .map(|m| {
            served[&format!("/api/v1/digital-twin/machines/{m}")]["body"]["history"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert!(
        history_lengths.iter().all(|n| *n > 1),
        "histories: {history_lengths:?}"
    );
    assert_eq!(
        served["/api/v1/scheduling/schedule"]["status"], 200,
        "a plan is served: {}",
        served["/api/v1/scheduling/schedule"]
    );
    let predicted: usize = machines
        .iter()
        .map(|m| {
            served[&format!("/api/v1/predictive/machines/{m}")]["body"]["history"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .sum();
    assert!(predicted > 3, "prediction histories: {predicted} entries");
    // SQL over the current-state tables an API-only instance holds.
    for sql in [
        "SELECT * FROM twin_state ORDER BY machine_id",
        "SELECT * FROM schedule ORDER BY job_id, operation_index",
    ] {
        let (a, b) = (sql_rows(&api, sql), sql_rows(&pipe, sql));
        assert!(!a.is_empty(), "{sql}");
        assert_eq!(a, b, "{sql}");
    }

    // The write path through the API-only instance, seen on its WebSocket.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pushed = rt.block_on(async {
        let mut ws = twinline_tests::WsClient::connect(&api).await;
        let reading = serde_json::json!({
            "machine_id": "API-ONLY-1", "sensor": "TEMPERATURE", "value": 64.25, "unit": "C",
            "event_time": 1_767_225_600_000i64 + 6 * 86_400_000,
        });
        let auth = format!("Bearer {WRITER}");
        let (status, body) = http_request(
            &api,
            "POST",
            "/api/v1/ingest/sensor-readings",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            reading.to_string().as_bytes(),
        );
        assert_eq!(status, 202, "ingest through the API-only instance: {body}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let v = ws
                .expect_json(deadline, "the new machine's twin state within 60 s")
                .await;
            if v["type"] != "twin_state" {
                continue;
            }
            if let Some(m) = v["data"]["machines"]
                .as_array()
                .and_then(|a| a.iter().find(|m| m["machine_id"] == "API-ONLY-1"))
            {
                break m.clone();
            }
        }
    });
    assert_eq!(pushed["temperature"], 64.25, "{pushed}");
    let (status, detail) = get(&api, "/api/v1/digital-twin/machines/API-ONLY-1");
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["temperature"], 64.25, "{detail}");

    pipe_server.stop();
    api_server.stop();
    let s = rt.block_on(crate::cassandra::session(&host));
    rt.block_on(s.query_unpaged(format!("DROP KEYSPACE {keyspace}"), ()))
        .unwrap();
}
