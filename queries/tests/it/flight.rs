//! The Arrow Flight SQL endpoint, driven by real third-party clients (ADBC's Flight SQL driver and
//! pyarrow.flight, run as a Python subprocess: `tests/clients/flight_client.py`) and, for the time
//! limit, by arrow-flight's own Rust client. Expected values come from the events applied here.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::StreamExt;
use serde_json::{json, Value};
use twinline_queries::flight::{FlightConfig, FlightServer};
use twinline_queries::{QueryConfig, QueryEngine, ViewConfig, Views};
use twinline_schemas::*;

use crate::common::*;

/// A client run may not take longer than this (the server never makes them wait that long).
const CLIENT_LIMIT: Duration = Duration::from_secs(180);

fn python() -> PathBuf {
    std::env::var_os("TWINLINE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| package_dir().join("../.venv/bin/python"))
}

/// Runs the client script against `port` and returns the JSON it printed.
fn run_client(port: u16, mode: &str) -> Value {
    let py = python();
    let check = Command::new(&py)
        .args(["-c", "import pyarrow.flight, adbc_driver_flightsql.dbapi"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): these tests need a Python with pyarrow and \
                 adbc_driver_flightsql (the workspace's .venv, or set TWINLINE_PYTHON)",
                py.display()
            )
        });
    assert!(
        check.status.success(),
        "{} lacks pyarrow.flight or adbc_driver_flightsql (set TWINLINE_PYTHON to one that has \
         both): {}",
        py.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    let script = package_dir().join("tests/clients/flight_client.py");
    let child = Command::new(&py)
        .arg(&script)
        .arg(port.to_string())
        .arg(mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", py.display()));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(CLIENT_LIMIT) {
        Ok(output) => output.expect("client output"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("the Flight SQL client ran past {CLIENT_LIMIT:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "client failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    let out: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("client printed no JSON ({e}): {stdout}\nstderr: {stderr}"));
    assert!(
        out.get("crash").is_none(),
        "client crashed: {}",
        out["crash"]
    );
    out
}

fn spawn(engine: &QueryEngine, read_requires_token: bool) -> FlightServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    FlightServer::spawn(
        listener,
        engine,
        FlightConfig {
            tokens: tokens(),
            read_requires_token,
        },
    )
    .unwrap()
}

/// The probe's rows, or a panic that shows the client's error.
fn rows<'a>(out: &'a Value, probe: &str) -> &'a Vec<Value> {
    out[probe]
        .as_array()
        .unwrap_or_else(|| panic!("{probe}: expected rows, got {}", out[probe]))
}

/// The probe's error message, or a panic if it succeeded.
fn error<'a>(out: &'a Value, probe: &str) -> (&'a str, &'a str) {
    match (out[probe]["error"].as_str(), out[probe]["kind"].as_str()) {
        (Some(msg), Some(kind)) => (msg, kind),
        _ => panic!("{probe}: expected an error, got {}", out[probe]),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[derive(Default)]
struct Readings {
    n: u64,
    total: f64,
    peak: f64,
}

#[test]
fn third_party_clients_read_the_views() {
    let events = mixed_events(91, 3_000, 6);
    let views = Arc::new(Views::new(ViewConfig::default()));
    views.apply(&as_view_events(&events));

    // The oracle, from the events themselves.
    let mut latest: BTreeMap<String, TwinState> = BTreeMap::new();
    let mut readings: BTreeMap<String, Readings> = BTreeMap::new();
    let mut hot_temperatures = 0u64;
    for (_, _, _, payload) in &events {
        match payload {
            Payload::TwinState(s) => {
                latest.insert(s.machine_id.clone(), s.clone());
            }
            Payload::SensorReading(r) => {
                let e = readings.entry(r.machine_id.clone()).or_default();
                e.n += 1;
                e.total += r.value;
                e.peak = e.peak.max(r.value);
                if r.sensor == SensorKind::Temperature && r.value > 50.0 {
                    hot_temperatures += 1;
                }
            }
            _ => {}
        }
    }
    let m3 = latest
        .get("m-003")
        .expect("the seed gives m-003 a twin state");
    let m2 = latest
        .get("m-002")
        .expect("the seed gives m-002 a twin state");

    let engine = QueryEngine::new(views.clone(), QueryConfig::default()).unwrap();
    let server = spawn(&engine, true);
    let out = run_client(server.local_addr().port(), "secured");

    assert_eq!(
        out["adbc_info"]["vendor_name"], "twinline",
        "{}",
        out["adbc_info"]
    );

    // Point lookup on the current state.
    let got = rows(&out, "point_lookup");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["machine_id"], "m-003");
    assert_eq!(got[0]["status"], m3.status.symbol());
    assert_eq!(got[0]["cycles"], m3.cycles);
    assert!(close(
        got[0]["health_score"].as_f64().unwrap(),
        m3.health_score
    ));

    // Aggregate over the readings, per machine.
    let got = rows(&out, "aggregate");
    assert_eq!(got.len(), readings.len(), "{got:?}");
    for (row, (machine, want)) in got.iter().zip(&readings) {
        assert_eq!(row["machine_id"], machine.as_str());
        assert_eq!(row["n"], want.n, "{machine}");
        assert!(
            close(row["total"].as_f64().unwrap(), want.total),
            "{machine}: {} vs {}",
            row["total"],
            want.total
        );
        // serde_json's float parsing may be 1 ulp off Python's shortest repr.
        assert!(close(row["peak"].as_f64().unwrap(), want.peak), "{machine}");
    }

    // Parameters bound by ADBC (`?`, a prepared statement and DoPut).
    assert_eq!(
        rows(&out, "param_lookup"),
        &vec![json!({"machine_id": "m-002", "status": m2.status.symbol(), "cycles": m2.cycles})]
    );
    assert_eq!(
        rows(&out, "param_count"),
        &vec![json!({"n": hot_temperatures})]
    );

    // Catalog metadata: every view, with its columns.
    let objects = out["objects"]
        .as_object()
        .unwrap_or_else(|| panic!("objects: {}", out["objects"]));
    let view_names = views.schema_provider().table_names();
    assert_eq!(view_names.len(), 9, "{view_names:?}");
    for name in &view_names {
        let key = format!("datafusion.public.{name}");
        assert_eq!(objects[&key]["type"], "VIEW", "{key}: {objects:?}");
    }
    let twin_columns: Vec<Value> = objects["datafusion.public.twin_state"]["columns"]
        .as_array()
        .unwrap()
        .clone();
    let schema: Vec<Vec<Value>> = serde_json::from_value(out["table_schema"].clone())
        .unwrap_or_else(|_| panic!("table_schema: {}", out["table_schema"]));
    let schema_names: Vec<Value> = schema.iter().map(|f| f[0].clone()).collect();
    assert_eq!(twin_columns, schema_names);
    assert!(
        schema.contains(&vec![json!("machine_id"), json!("string")]),
        "{schema:?}"
    );
    assert!(
        schema.contains(&vec![json!("health_score"), json!("double")]),
        "{schema:?}"
    );
    assert!(
        schema.contains(&vec![json!("event_time"), json!("timestamp[ms, tz=UTC]")]),
        "{schema:?}"
    );
    assert!(objects.contains_key("datafusion.information_schema.tables"));

    // Writes are refused, naming the statement.
    for probe in ["adbc_insert", "adbc_prepared_insert"] {
        let (msg, _) = error(&out, probe);
        assert!(msg.contains("INSERT is not allowed"), "{probe}: {msg}");
        assert!(msg.contains("read-only"), "{probe}: {msg}");
    }
    let (msg, kind) = error(&out, "flight_insert");
    assert!(msg.contains("INSERT is not allowed"), "{msg}");
    assert_eq!(kind, "FlightUnauthorizedError", "PERMISSION_DENIED: {msg}");

    // Credentials: ADBC's user/password handshake works; wrong or missing ones do not.
    assert_eq!(
        rows(&out, "adbc_basic_login"),
        &vec![json!({"n": latest.len()})]
    );
    for probe in ["adbc_wrong_token", "adbc_no_token"] {
        let (msg, _) = error(&out, probe);
        assert!(
            msg.to_lowercase().contains("unauthenticated"),
            "{probe}: {msg}"
        );
    }

    // pyarrow.flight: Basic handshake, then the bearer header it handed back.
    assert_eq!(
        out["flight_handshake"],
        json!(["authorization", "Bearer read-token"])
    );
    assert_eq!(
        out["flight_states"]["schema"],
        json!(["machine_id", "health_score"])
    );
    let got = rows(&out["flight_states"], "rows");
    assert_eq!(got.len(), latest.len());
    for (row, (machine, s)) in got.iter().zip(&latest) {
        assert_eq!(row["machine_id"], machine.as_str());
        assert!(close(row["health_score"].as_f64().unwrap(), s.health_score));
    }
    for probe in ["flight_wrong_password", "flight_no_credentials"] {
        let (msg, kind) = error(&out, probe);
        assert_eq!(kind, "FlightUnauthenticatedError", "{probe}: {msg}");
    }

    // Without `read_requires_token`, no credentials are needed.
    drop(server);
    let open = spawn(&engine, false);
    let out = run_client(open.local_addr().port(), "open");
    assert_eq!(
        rows(&out, "adbc_anonymous"),
        &vec![json!({"n": latest.len()})]
    );
    assert_eq!(rows(&out, "flight_anonymous"), &vec![json!({"answer": 42})]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_cancels_slow_flight_queries() {
    let views = Arc::new(Views::new(ViewConfig::default()));
    apply_all(&views, &[twin("m-1", 1, MachineStatus::Running, 90.0, T0)]);
    let engine = QueryEngine::new(
        views,
        QueryConfig {
            timeout: Duration::from_millis(500),
            ..QueryConfig::default()
        },
    )
    .unwrap();
    let server = spawn(&engine, true);
    let addr = server.local_addr();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_token("write-token".into()); // every role may read

    let started = Instant::now();
    let info = client
        .execute(
            "SELECT max(a.value + b.value) FROM generate_series(1, 1000000) a \
             CROSS JOIN generate_series(1, 1000000) b"
                .into(),
            None,
        )
        .await
        .expect("planning is quick");
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let failure = match client.do_get(ticket).await {
        Err(e) => e.to_string(),
        Ok(mut stream) => loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(FlightError::Tonic(status))) => {
                    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status}");
                    break status.message().to_string();
                }
                Some(Err(other)) => panic!("expected DEADLINE_EXCEEDED, got {other}"),
                None => panic!("the slow query finished within the time limit"),
            }
        },
    };
    assert!(failure.contains("time limit"), "{failure}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    // The server is still usable, and a token is still needed.
    let info = client
        .execute("SELECT 1 AS one".into(), None)
        .await
        .unwrap();
    let mut stream = client
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap();
    let mut n = 0;
    while let Some(batch) = stream.next().await {
        n += batch.unwrap().num_rows();
    }
    assert_eq!(n, 1);
    client.set_token("not-a-token".into());
    let err = client.execute("SELECT 1".into(), None).await.unwrap_err();
    assert!(err.to_string().contains("unknown token"), "{err}");

    // Dropping the server stops it: new connections are refused.
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
