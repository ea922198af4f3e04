//! The Parquet history and point-in-time queries, end to end: a run writes every topic to the
//! history (with many small flushes and compactions), the history tables hold exactly the log's
//! records, and `twin_state_at(t)` equals the `twin_state` of `twinline replay --until t`,
//! whether the answer comes from the history, the log beyond it, or both.

use std::path::Path;

use serde_json::Value;
use twinline_tests::{twinline, twinline_env};

/// Small flushes and eager compaction, so a short run exercises both.
const SMALL_FLUSHES: [(&str, &str); 3] = [
    ("TWINLINE_HISTORY__FLUSH_ROWS", "3000"),
    ("TWINLINE_HISTORY__COMPACT_MIN_FILES", "3"),
    ("TWINLINE_HISTORY__COMPACT_TARGET_ROWS", "20000"),
];

fn query(data: &Path, sql: &str) -> Vec<Value> {
    let out = twinline(&[
        "query",
        "--data",
        data.to_str().unwrap(),
        "--format",
        "json",
        "--max-rows",
        "100000",
        sql,
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{sql}: {e}: {text}"))
}

fn count(data: &Path, sql: &str) -> i64 {
    let rows = query(data, sql);
    rows[0]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("{sql}: no count in {rows:?}"))
}

fn manifest(data: &Path) -> Value {
    let bytes = std::fs::read(data.join("history").join("_manifest.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `twinline run --simulate --fast --until-caught-up` of a plant of `machines` machines for
/// `duration` of plant time, with extra environment.
fn simulate(data: &str, machines: &str, duration: &str, seed: &str, env: &[(&str, &str)]) {
    twinline_env(
        &[
            "run",
            "--data",
            data,
            "--simulate",
            "--fast",
            "--machines",
            machines,
            "--duration",
            duration,
            "--seed",
            seed,
            "--until-caught-up",
        ],
        env,
    );
}

fn replay_twin_state(data: &Path, out: &Path, until: &str) -> Vec<Value> {
    twinline(&[
        "replay",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--until",
        until,
    ]);
    query(out, "SELECT * FROM twin_state ORDER BY machine_id")
}

#[test]
fn history_holds_every_record_and_point_in_time_equals_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    // 4 hours of plant time with the history on, then 2 more with it off: the history reaches
    // the first part, only the log holds the second.
    simulate(d, "6", "4h", "3", &SMALL_FLUSHES);
    let m = manifest(&data);
    let files = m["files"].as_array().unwrap();
    assert!(files.len() > 10, "only {} history files", files.len());
    assert!(
        files.iter().all(|f| f["path"]
            .as_str()
            .unwrap()
            .contains("/date=2026-01-01/machine=")),
        "files are partitioned by topic, date and machine: {files:?}"
    );
    assert!(
        files.iter().any(|f| f["rows"].as_u64().unwrap() > 3000),
        "no file was compacted beyond one flush"
    );
    // Every record of the log is in the history exactly once (views hold the same records).
    for (history, view) in [
        ("history.sensor_readings", "sensor_readings"),
        ("history.twin_state", "twin_state_history"),
        ("history.defects", "defects"),
        ("history.failure_predictions", "failure_predictions"),
        ("history.maintenance_requests", "maintenance_requests"),
        ("history.schedule_changes", "schedule_changes"),
    ] {
        let h = count(&data, &format!("SELECT count(*) AS n FROM {history}"));
        let v = count(&data, &format!("SELECT count(*) AS n FROM {view}"));
        assert_eq!(h, v, "{history} has {h} rows, the view {view} {v}");
        if history == "history.sensor_readings" {
            assert!(h > 10_000, "only {h} sensor readings");
        }
    }
    // No duplicates: (partition, offset) is a key of the history.
    let dup = count(
        &data,
        "SELECT count(*) AS n FROM (SELECT log_partition, log_offset FROM history.sensor_readings \
         GROUP BY log_partition, log_offset HAVING count(*) > 1)",
    );
    assert_eq!(dup, 0);
    // Filters that prune files give the same rows as a full scan.
    let pruned = count(
        &data,
        "SELECT count(*) AS n FROM history.sensor_readings WHERE machine_id = 'M002' \
         AND event_time BETWEEN '2026-01-01T01:00:00Z' AND '2026-01-01T02:00:00Z'",
    );
    let full = count(
        &data,
        "SELECT count(*) AS n FROM (SELECT * FROM history.sensor_readings ORDER BY log_origin) \
         WHERE machine_id = 'M002' AND event_time >= TIMESTAMP '2026-01-01T01:00:00Z' \
         AND event_time <= TIMESTAMP '2026-01-01T02:00:00Z'",
    );
    assert!(pruned > 0);
    assert_eq!(pruned, full);

    simulate(d, "6", "6h", "3", &[("TWINLINE_HISTORY__ENABLED", "false")]);
    let tail = count(&data, "SELECT count(*) AS n FROM twin_state_history")
        - count(&data, "SELECT count(*) AS n FROM history.twin_state");
    assert!(
        tail > 0,
        "the second run should leave twin states only in the log"
    );

    // Point in time: from the history alone, from history and log, from the log's tail, and
    // before anything happened.
    for (i, t) in [
        "2026-01-01T01:30:00Z",
        "2026-01-01T03:59:59.500Z",
        "2026-01-01T05:10:00Z",
        "2025-12-31T23:00:00Z",
    ]
    .into_iter()
    .enumerate()
    {
        let at = query(
            &data,
            &format!("SELECT * FROM twin_state_at('{t}') ORDER BY machine_id"),
        );
        let replayed = replay_twin_state(&data, &tmp.path().join(format!("replay{i}")), t);
        assert_eq!(
            at, replayed,
            "twin_state_at('{t}') differs from replay --until {t}"
        );
        if i < 3 {
            assert_eq!(at.len(), 6, "every machine has a state at {t}");
        } else {
            assert!(at.is_empty());
        }
    }
}

#[test]
fn interrupted_flush_leaves_no_trace_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    simulate(d, "3", "1h", "8", &SMALL_FLUSHES);
    // A file a crashed flush wrote but never committed.
    let orphan_dir = data
        .join("history")
        .join("sensor-readings")
        .join("date=2026-01-01")
        .join("machine=M001");
    std::fs::create_dir_all(&orphan_dir).unwrap();
    let orphan = orphan_dir.join("9999999999.parquet");
    std::fs::write(&orphan, b"PAR1 not really").unwrap();
    let before = count(&data, "SELECT count(*) AS n FROM history.sensor_readings");
    simulate(d, "3", "2h", "8", &SMALL_FLUSHES);
    assert!(!orphan.exists(), "the uncommitted file was not cleaned up");
    let after = count(&data, "SELECT count(*) AS n FROM history.sensor_readings");
    let view = count(&data, "SELECT count(*) AS n FROM sensor_readings");
    assert!(after > before);
    assert_eq!(after, view, "resumed history is exactly the log");
}

/// Kills the S3 server when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn history_in_an_s3_compatible_object_store() {
    let port = twinline_tests::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let py = twinline_tests::python();
    // moto's S3 server: a real S3 HTTP API on localhost.
    let _server = Child(
        std::process::Command::new(&py)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting moto's S3 server"),
    );
    let aws = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let create = format!(
        "import boto3,time\n\
         for i in range(100):\n\
         \x20   try:\n\
         \x20       boto3.client('s3', endpoint_url='{endpoint}').create_bucket(Bucket='plant'); break\n\
         \x20   except Exception as e:\n\
         \x20       time.sleep(0.1)\n\
         else:\n\
         \x20   raise SystemExit('no S3 server')\n"
    );
    let out = std::process::Command::new(&py)
        .args(["-c", &create])
        .envs(aws.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let mut env: Vec<(&str, &str)> = aws.to_vec();
    env.extend(SMALL_FLUSHES);
    env.push(("TWINLINE_HISTORY__PATH", "s3://plant/twinline/history"));
    simulate(d, "3", "1h", "4", &env);
    assert!(
        !data.join("history").exists(),
        "the history went to the local directory, not the object store"
    );
    let q = |sql: &str| -> Vec<Value> {
        let out = twinline_env(&["query", "--data", d, "--format", "json", sql], &env);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let h = q("SELECT count(*) AS n FROM history.sensor_readings");
    let v = q("SELECT count(*) AS n FROM sensor_readings");
    assert!(h[0]["n"].as_i64().unwrap() > 1000);
    assert_eq!(h, v);
    // The files are in the bucket, under the prefix.
    let list = format!(
        "import boto3\n\
         keys=[o['Key'] for o in boto3.client('s3', endpoint_url='{endpoint}').list_objects_v2(Bucket='plant', Prefix='twinline/history/')['Contents']]\n\
         print(sum(k.endswith('.parquet') for k in keys), sum(k.endswith('_manifest.json') for k in keys))\n"
    );
    let out = std::process::Command::new(&py)
        .args(["-c", &list])
        .envs(aws.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(nums[0] > 3, "parquet objects in the bucket: {text}");
    assert_eq!(nums[1], 1, "one manifest: {text}");
}
