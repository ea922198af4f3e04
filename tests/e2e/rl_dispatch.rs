//! The learned dispatching policy from the outside: `twinline schedule --method rl` and the rule
//! methods print the solver's JSON document with a verified plan, and
//! `POST /api/v1/scheduling/rl/predict` plans waiting jobs on the machines as they are (down
//! machines get nothing, busy ones nothing before they are free), answers 422 for impossible or
//! inconsistent requests (a machine listed twice, an unknown status or machine) and 503 when no
//! policy is loaded.

use serde_json::{json, Value};
use twinline_tests::{
    free_port, http_request, ort_library, repo_root, twinline_with_models, Server,
};

/// A 10 x 5 job shop in the OR-Library format (each job visits every machine once).
fn instance_text() -> String {
    let mut s = String::from("10 5\n");
    for j in 0..10usize {
        let row: Vec<String> = (0..5usize)
            .map(|k| {
                let m = (j + 2 * k) % 5;
                let d = 3 + (7 * j + 11 * k) % 17;
                format!("{m} {d}")
            })
            .collect();
        s.push_str(&row.join(" "));
        s.push('\n');
    }
    s
}

/// Checks `starts` against the instance: job order and no overlap on a machine; returns the
/// makespan.
fn check_plan(text: &str, starts: &Value) -> i64 {
    let rows: Vec<Vec<i64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .collect();
    let mut busy: Vec<Vec<(i64, i64)>> = vec![Vec::new(); 5];
    let mut makespan = 0;
    for (j, row) in rows.iter().enumerate() {
        let mut ready = 0;
        for k in 0..row.len() / 2 {
            let (m, d) = (row[2 * k] as usize, row[2 * k + 1]);
            let s = starts[j][k].as_i64().unwrap();
            assert!(
                s >= ready,
                "job {j} op {k} starts before its predecessor ends"
            );
            ready = s + d;
            makespan = makespan.max(ready);
            busy[m].push((s, s + d));
        }
    }
    for iv in &mut busy {
        iv.sort();
        assert!(
            iv.windows(2).all(|w| w[0].1 <= w[1].0),
            "overlap on a machine: {iv:?}"
        );
    }
    makespan
}

#[test]
fn schedule_methods_print_verified_plans() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("inst.txt");
    let text = instance_text();
    std::fs::write(&file, &text).unwrap();
    let solver = twinline_with_models(&[
        "schedule",
        "--instance",
        file.to_str().unwrap(),
        "--time-limit",
        "1",
        "--max-iterations",
        "2000",
    ]);
    assert!(
        solver.status.success(),
        "{}",
        String::from_utf8_lossy(&solver.stderr)
    );
    let solver: Value = serde_json::from_slice(&solver.stdout).unwrap();
    let keys: Vec<&String> = solver.as_object().unwrap().keys().collect();
    let mut rl_makespans = Vec::new();
    for (method, extra) in [
        ("rl", vec!["--rollouts", "1"]),
        ("rl", vec!["--rollouts", "32", "--seed", "3"]),
        ("spt", vec![]),
        ("mwkr", vec![]),
        ("mopnr", vec![]),
        ("fdd-mwkr", vec![]),
    ] {
        let mut args = vec![
            "schedule",
            "--instance",
            file.to_str().unwrap(),
            "--method",
            method,
        ];
        args.extend(extra.iter().copied());
        let out = twinline_with_models(&args);
        assert!(
            out.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        for k in &keys {
            assert!(
                v.get(k.as_str()).is_some(),
                "{method}: key {k} missing in {v}"
            );
        }
        let mk = check_plan(&text, &v["starts"]);
        assert_eq!(v["makespan"].as_i64(), Some(mk), "{method}");
        assert!(mk >= v["lower_bound"].as_i64().unwrap());
        if method == "rl" {
            assert_eq!(v["model"], "twinline-dispatch-ppo");
            rl_makespans.push(mk);
        }
    }
    assert!(
        rl_makespans[1] <= rl_makespans[0],
        "the best of 32 rollouts includes the greedy one"
    );
    // The same seed gives the same plan.
    let again = twinline_with_models(&[
        "schedule",
        "--instance",
        file.to_str().unwrap(),
        "--method",
        "rl",
        "--rollouts",
        "32",
        "--seed",
        "3",
    ]);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["makespan"].as_i64(), Some(rl_makespans[1]));
    let bad = twinline_with_models(&[
        "schedule",
        "--instance",
        file.to_str().unwrap(),
        "--method",
        "lifo",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("methods: solver, rl"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

fn post(listen: &str, body: &Value) -> (u16, Value) {
    let (status, text) = http_request(
        listen,
        "POST",
        "/api/v1/scheduling/rl/predict",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn server(models: &std::path::Path, tmp: &std::path::Path) -> (Server, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let data = tmp.join(format!("data-{}", free_port()));
    let ort = ort_library();
    let server = Server::start(
        &["run", "--data", data.to_str().unwrap(), "--listen", &listen],
        &[
            ("TWINLINE_MODELS__DIR", models.to_str().unwrap()),
            ("ORT_DYLIB_PATH", ort.to_str().unwrap()),
        ],
        &listen,
    );
    (server, listen)
}

#[test]
fn rl_predict_plans_on_the_machines_as_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, listen) = server(&repo_root().join("models"), tmp.path());
    let jobs: Vec<Value> = (0..6)
        .map(|j| {
            json!({"job_id": format!("J{j}"), "operations": [
                {"eligible": [{"machine_id": "M1", "processing_time": 10 + j}, {"machine_id": "M2", "processing_time": 12 + j}]},
                {"eligible": [{"machine_id": "M2", "processing_time": 5}, {"machine_id": "M3", "processing_time": 6}]},
                {"eligible": [{"machine_id": "M3", "processing_time": 4 + j % 3}, {"machine_id": "M1", "processing_time": 9}]}
            ]})
        })
        .collect();
    let body = json!({
        "now": 100,
        "machines": [
            {"machine_id": "M1", "status": "MAINTENANCE"},
            {"machine_id": "M2", "status": "RUNNING", "available_at": 130},
            "M3"
        ],
        "jobs": jobs,
    });
    let (status, v) = post(&listen, &body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["method"], "rl");
    assert_eq!(v["model"]["name"], "twinline-dispatch-ppo");
    assert_eq!(v["rollouts"], 1);
    let schedule = v["schedule"].as_array().unwrap();
    assert_eq!(schedule.len(), 18, "every operation is planned");
    for o in schedule {
        assert_ne!(o["machine_id"], "M1", "M1 is in maintenance: {o}");
        let s = o["start"].as_i64().unwrap();
        assert!(s >= 100, "nothing starts before now: {o}");
        if o["machine_id"] == "M2" {
            assert!(s >= 130, "M2 is busy until 130: {o}");
        }
    }
    let makespan = schedule
        .iter()
        .map(|o| o["end"].as_i64().unwrap())
        .max()
        .unwrap();
    assert_eq!(v["makespan"].as_i64(), Some(makespan));
    assert!(makespan >= v["lower_bound"].as_i64().unwrap());
    // One recommendation per machine that has work: its first operation in the plan.
    let assignments = v["assignments"].as_array().unwrap();
    assert_eq!(assignments.len(), 2, "{assignments:?}");
    for a in assignments {
        let first = schedule
            .iter()
            .filter(|o| o["machine_id"] == a["machine_id"])
            .min_by_key(|o| o["start"].as_i64().unwrap())
            .unwrap();
        assert_eq!(first["start"], a["start"]);
        assert_eq!(first["job_id"], a["job_id"]);
    }
    // More rollouts never make the plan longer (the first rollout is the greedy one).
    let mut more = body.clone();
    more["rollouts"] = json!(16);
    let (status, m) = post(&listen, &more);
    assert_eq!(status, 200, "{m}");
    assert!(m["makespan"].as_i64().unwrap() <= makespan);
    // Impossible or malformed requests: 422 with the reason.
    let pinned = json!({"machines": [{"machine_id": "M1", "status": "ERROR"}, "M2"],
        "jobs": [{"job_id": "X", "processing_time": 5, "machine_id": "M1"}]});
    let (status, e) = post(&listen, &pinned);
    assert_eq!(status, 422, "{e}");
    assert!(e.to_string().contains("machine M1 is ERROR"), "{e}");
    let (status, e) = post(
        &listen,
        &json!({"jobs": jobs, "machines": ["M1", "M2", "M3"], "rollouts": 1000}),
    );
    assert_eq!(status, 422, "{e}");
    for (body, says) in [
        (
            json!({"jobs": jobs, "machines": ["M1", "M2", {"machine_id": "M1", "status": "OFFLINE"}, "M3"]}),
            "twice",
        ),
        (
            json!({"jobs": jobs, "machines": [{"machine_id": "M1", "status": "OFLINE"}, "M2", "M3"]}),
            "is not one of",
        ),
        (
            json!({"jobs": jobs, "machines": ["M1", "M2"]}),
            "machine M3 is not among the machines",
        ),
    ] {
        let (status, e) = post(&listen, &body);
        assert_eq!(status, 422, "{e}");
        assert!(e.to_string().contains(says), "{says}: {e}");
    }
    let (status, e) = post(&listen, &json!({"jobs": "nope"}));
    assert_eq!(status, 422, "{e}");
    srv.stop();

    // Without a policy the endpoint says so.
    let empty = tmp.path().join("no-models");
    std::fs::create_dir_all(&empty).unwrap();
    let (srv, listen) = server(&empty, tmp.path());
    let (status, e) = post(&listen, &body);
    assert_eq!(status, 503, "{e}");
    assert!(e.to_string().contains("no_model"), "{e}");
    srv.stop();
}
