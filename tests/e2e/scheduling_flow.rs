//! Scheduling flow: jobs submitted to `job-events` are planned; a machine fault drives the twin
//! into ERROR, the rescheduler moves the work off the machine at once, and the new plan reaches
//! the HTTP API, the SQL views and WebSocket clients. Also the optimize endpoint and a replay.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use twinline_tests::{free_port, http_request, sql_rows, twinline, twinline_env, Server};

const WRITER: &str = "sched-writer";
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const MIN: i64 = 60_000;

fn post(listen: &str, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let (status, text) = http_request(listen, "POST", path, &headers, body.to_string().as_bytes());
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

fn ingest(listen: &str, topic: &str, event: Value) {
    let (status, v) = post(
        listen,
        &format!("/api/v1/ingest/{topic}"),
        &event,
        Some(WRITER),
    );
    assert_eq!(status, 202, "{topic}: {v}");
}

/// Waits for the current plan to satisfy `ok`.
fn plan_where(listen: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, text) = http_request(listen, "GET", "/api/v1/scheduling/schedule", &[], b"");
        if status == 200 {
            let v: Value = serde_json::from_str(&text).unwrap();
            if ok(&v) {
                return v;
            }
        } else {
            assert_eq!(status, 404, "{text}");
        }
        assert!(Instant::now() < deadline, "no plan with {what}: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ms(t: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// Six jobs of two operations; every first operation may run on M1 (fastest) or elsewhere.
fn jobs() -> Vec<Value> {
    (0..6)
        .map(|j| {
            let alt = if j % 2 == 0 { "M2" } else { "M3" };
            json!({
                "job_id": format!("J{j}"), "kind": "SUBMITTED", "event_time": T0,
                "priority": 1 + j % 3, "release_time": T0, "due_date": T0 + 120 * MIN,
                "operations": [
                    {"eligible": [{"machine_id": "M1", "duration_ms": 5 * MIN},
                                  {"machine_id": alt, "duration_ms": 7 * MIN}]},
                    {"eligible": [{"machine_id": alt, "duration_ms": 4 * MIN}]}
                ],
                "operation_index": null, "machine_id": null
            })
        })
        .collect()
}

#[test]
fn fault_moves_planned_work_off_the_machine_and_everyone_sees_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("twinline.toml");
    std::fs::write(
        &config,
        format!("[api]\ntokens = [{{ token = \"{WRITER}\", role = \"write\" }}]\nws_push_interval_ms = 200\n"),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let empty_models = tmp.path().join("models");
    std::fs::create_dir_all(&empty_models).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let server = Server::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "run",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &[("TWINLINE_MODELS__DIR", empty_models.to_str().unwrap())],
        &listen,
    );
    // No plan yet: 404, which the dashboard shows as an empty state.
    let (status, text) = http_request(&listen, "GET", "/api/v1/scheduling/schedule", &[], b"");
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no_plan"), "{text}");

    // A WebSocket client collects every schedule push.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ws_listen = listen.clone();
    let pushes = rt.spawn(async move {
        let mut ws = twinline_tests::WsClient::connect(&ws_listen).await;
        let mut seen: Vec<Value> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while let Some(v) = ws.next_json(deadline).await {
            if v["type"] == "schedule" {
                let done = v["data"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("M1 entered ERROR"));
                seen.push(v["data"].clone());
                if done {
                    break;
                }
            }
        }
        seen
    });

    // 1. Jobs are planned. The first plans at once; the rest are batched until event time passes
    //    the routine interval (a heartbeat 5 minutes later).
    for j in jobs() {
        ingest(&listen, "job-events", j);
    }
    ingest(
        &listen,
        "machine-events",
        json!({"machine_id": "M1", "kind": "HEARTBEAT", "event_time": T0 + 5 * MIN}),
    );
    let before = plan_where(&listen, "all 12 operations", |v| {
        v["operations"].as_array().unwrap().len() == 12
    });
    let ops = before["operations"].as_array().unwrap();
    let on_m1: Vec<&Value> = ops.iter().filter(|o| o["machine_id"] == "M1").collect();
    assert!(on_m1.len() >= 2, "the fast machine is used: {before}");

    // 2. M1 faults: the twin says ERROR, and the plan moves at once.
    let fault_at = T0 + 6 * MIN;
    ingest(
        &listen,
        "machine-events",
        json!({"machine_id": "M1", "kind": "FAULT", "event_time": fault_at, "fault_code": "E-SPINDLE"}),
    );
    let after = plan_where(&listen, "the fault handled", |v| {
        v["reason"]
            .as_str()
            .unwrap_or("")
            .contains("M1 entered ERROR")
    });
    assert!(after["plan_version"].as_i64() > before["plan_version"].as_i64());
    assert_eq!(after["source"]["topic"], "twin-state", "{after}");
    assert_eq!(ms(&after["planned_at"]), fault_at);
    let ops = after["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 12);
    let down_until = fault_at + 60 * MIN; // scheduling.down_estimate_ms
    for o in ops {
        if o["machine_id"] == "M1" {
            assert!(
                ms(&o["start"]) >= down_until,
                "planned on M1 while it is down: {o}"
            );
        }
        assert!(ms(&o["start"]) >= fault_at, "planned in the past: {o}");
    }
    // Job order holds in the new plan.
    let mut by_job: BTreeMap<String, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for o in ops {
        by_job
            .entry(o["job_id"].as_str().unwrap().into())
            .or_default()
            .push((
                o["operation_index"].as_i64().unwrap(),
                ms(&o["start"]),
                ms(&o["end"]),
            ));
    }
    for (j, mut v) in by_job {
        v.sort();
        assert!(v[1].1 >= v[0].2, "job {j} out of order: {v:?}");
    }

    // 3. SQL: the moves say which operations left M1; the current plan has nothing on M1 early.
    let version = after["plan_version"].as_i64().unwrap();
    let moved = sql_rows(
        &listen,
        &format!(
            "SELECT job_id, operation_index, machine_id FROM schedule_changes \
             WHERE plan_version = {version} AND previous_machine_id = 'M1' AND machine_id <> 'M1'"
        ),
    );
    assert!(!moved.is_empty(), "no operation moved off M1");
    let early = sql_rows(
        &listen,
        &format!(
            "SELECT count(*) AS n FROM schedule WHERE machine_id = 'M1' \
             AND start_time < to_timestamp_millis({down_until})"
        ),
    );
    assert_eq!(early[0]["n"], 0, "{early:?}");

    // 4. The WebSocket client got the new plan pushed.
    let seen = rt.block_on(pushes).unwrap();
    let last = seen.last().expect("schedule pushes");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("M1 entered ERROR"),
        "pushes: {:?}",
        seen.iter().map(|s| &s["reason"]).collect::<Vec<_>>()
    );
    assert_eq!(last["plan_version"].as_i64(), Some(version));
    assert!(seen
        .windows(2)
        .all(|w| w[0]["plan_version"].as_i64() < w[1]["plan_version"].as_i64()));

    // 5. The optimize endpoint: the seed's simple form on the twin's machines, the rich form,
    //    and 422 for bad problems.
    let (status, v) = post(
        &listen,
        "/api/v1/scheduling/optimize",
        &json!({"jobs": [{"job_id": "a", "processing_time": 30, "priority": 2},
                         {"job_id": "b", "processing_time": 20, "priority": 1},
                         {"job_id": "c", "processing_time": 10, "priority": 1}],
                "machines": ["X", "Y"], "time_limit_ms": 2000}),
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["makespan"], 30, "{v}");
    assert_eq!(v["optimal"], true, "{v}");
    assert_eq!(v["lower_bound"], 30);
    assert_eq!(v["gap_to_lower_bound"], 0.0);
    assert_eq!(v["schedule"].as_array().unwrap().len(), 3);
    let (status, v) = post(
        &listen,
        "/api/v1/scheduling/optimize",
        &json!({"jobs": [
                  {"job_id": "a", "operations": [
                      {"eligible": [{"machine_id": "X", "processing_time": 3}]},
                      {"eligible": [{"machine_id": "Y", "processing_time": 2}, {"machine_id": "X", "processing_time": 9}]}]},
                  {"job_id": "b", "release_time": 1, "due_date": 6, "operations": [
                      {"eligible": [{"machine_id": "Y", "processing_time": 4}]}]}],
                "unavailability": [{"machine_id": "Y", "start": 0, "end": 1}],
                "objective": "weighted_tardiness", "time_limit_ms": 2000}),
        None,
    );
    assert_eq!(status, 200, "{v}");
    let sched = v["schedule"].as_array().unwrap();
    assert_eq!(sched.len(), 3);
    assert_eq!(v["objective"], "weighted_tardiness");
    assert_eq!(v["objective_value"], 0.0, "b can finish by 6: {v}");
    for (body, kind) in [
        (json!({"jobs": []}), "invalid_problem"),
        (json!({"jobs": [{"job_id": "a"}]}), "invalid_problem"),
        (
            json!({"jobs": [{"job_id": "a", "processing_time": -1, "machine_id": "X"}]}),
            "invalid_problem",
        ),
        (
            json!({"jobs": [{"job_id": "a", "processing_time": 1}], "machines": ["X"], "objective": "fastest"}),
            "invalid_problem",
        ),
        (json!({"jobs": "not a list"}), "malformed_problem"),
        (json!({"jobz": []}), "malformed_problem"),
        (
            json!({"jobs": [{"job_id": "a", "processing_time": 1}], "machines": ["X", "X"]}),
            "invalid_problem",
        ),
    ] {
        let (status, v) = post(&listen, "/api/v1/scheduling/optimize", &body, None);
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(v["type"], kind, "{body}: {v}");
        assert!(!v["detail"].as_str().unwrap().is_empty());
    }
    server.stop();

    // 6. A replay derives the same plans, byte for byte (with the run's models: none, so no
    // dispatching policy, whatever TWINLINE_MODELS__DIR the test itself was started with).
    let replayed = tmp.path().join("replayed");
    let out = twinline_env(
        &[
            "--config",
            config.to_str().unwrap(),
            "replay",
            "--data",
            data.to_str().unwrap(),
            "--out",
            replayed.to_str().unwrap(),
        ],
        &[("TWINLINE_MODELS__DIR", empty_models.to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    twinline_tests::assert_same_derived(&data, &replayed);
}

/// Fisher & Thompson's 6x6 instance (optimum 55), OR-Library format.
const FT06: &str = "6 6
2 1 0 3 1 6 3 7 5 3 4 6
1 8 2 5 4 10 5 10 0 10 3 4
2 5 3 4 5 8 0 9 1 1 4 7
1 5 0 5 2 5 3 3 4 8 5 9
2 9 1 3 4 5 5 4 0 3 3 1
1 3 3 3 5 9 0 10 4 4 2 1
";

#[test]
fn schedule_command_prints_a_verifiable_plan_and_repeats_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ft06.txt");
    std::fs::write(&file, FT06).unwrap();
    let run = || {
        let out = twinline(&[
            "schedule",
            "--instance",
            file.to_str().unwrap(),
            "--time-limit",
            "60",
            "--threads",
            "2",
            "--seed",
            "3",
            "--max-iterations",
            "20000",
            "--format",
            "json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let a = run();
    // Verify the plan from the instance alone: job order, no overlap, the makespan.
    let jobs: Vec<Vec<(usize, i64)>> = FT06
        .lines()
        .skip(1)
        .map(|l| {
            let v: Vec<i64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            v.chunks(2).map(|c| (c[0] as usize, c[1])).collect()
        })
        .collect();
    let starts = a["starts"].as_array().unwrap();
    assert_eq!(starts.len(), 6);
    let mut per_machine: Vec<Vec<(i64, i64)>> = vec![Vec::new(); 6];
    let mut makespan = 0;
    for (ops, st) in jobs.iter().zip(starts) {
        let st: Vec<i64> = st
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        assert_eq!(st.len(), ops.len());
        let mut ready = 0;
        for (&(m, d), s) in ops.iter().zip(st) {
            assert!(s >= ready, "operation starts before its predecessor ends");
            per_machine[m].push((s, s + d));
            ready = s + d;
        }
        makespan = makespan.max(ready);
    }
    for mut iv in per_machine {
        iv.sort();
        assert!(iv.windows(2).all(|w| w[1].0 >= w[0].1), "overlap {iv:?}");
    }
    assert_eq!(a["makespan"].as_i64(), Some(makespan));
    assert_eq!(makespan, 55, "ft06's optimum");
    assert!(a["lower_bound"].as_i64().unwrap() <= 55);
    assert!(a["time_to_best_ms"].as_u64().is_some());
    // An iteration bound makes the plan independent of the machine's speed.
    let b = run();
    assert_eq!(a["starts"], b["starts"]);
}
