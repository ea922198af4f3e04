//! The Cassandra sink against a real Apache Cassandra: `twinline run --scylla` creates the
//! keyspace and tables, the served state equals what the log says, and a run over the same
//! inputs killed with -9 again and again and then finished leaves exactly the rows of a clean
//! run (idempotent upserts, positions committed only after Cassandra acknowledged).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::value::{CqlValue, Row};
use twinline_schemas::{Payload, Topic};
use twinline_tests::{cassandra, dump_topic, ort_library, twinline_bin, unique_name};

pub(crate) const TABLES: [&str; 8] = [
    "twin_state",
    "twin_state_history",
    "failure_predictions",
    "maintenance_open",
    "served_history",
    "served_segments",
    "schedule",
    "schedule_current",
];

fn run_args<'a>(dir: &'a str, host: &'a str) -> Vec<&'a str> {
    vec!["run", "--data", dir, "--until-caught-up", "--scylla", host]
}

fn command(dir: &str, host: &str, keyspace: &str) -> Command {
    let mut c = Command::new(twinline_bin());
    c.args(run_args(dir, host))
        .env("TWINLINE_LOG", "warn")
        .env("ORT_DYLIB_PATH", ort_library())
        .env(
            "TWINLINE_MODELS__DIR",
            twinline_tests::repo_root().join("models"),
        )
        .env("TWINLINE_DISTRIBUTED__SCYLLA_KEYSPACE", keyspace)
        .env("TWINLINE_RUNTIME__CHECKPOINT_INTERVAL_MS", "200");
    c
}

pub(crate) async fn session(host: &str) -> Session {
    SessionBuilder::new()
        .known_node(host)
        .build()
        .await
        .expect("connecting to Cassandra")
}

/// Every row of every table, rendered and sorted (the tables' contents, order-free).
pub(crate) async fn dump(s: &Session, ks: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        let rows = s
            .query_unpaged(format!("SELECT * FROM {ks}.{t}"), ())
            .await
            .unwrap()
            .into_rows_result()
            .unwrap();
        let mut v: Vec<String> = rows
            .rows::<Row>()
            .unwrap()
            .map(|r| format!("{:?}", r.unwrap().columns))
            .collect();
        v.sort();
        out.insert(t, v);
    }
    out
}

fn text(v: &Option<CqlValue>) -> String {
    match v {
        Some(CqlValue::Text(s)) | Some(CqlValue::Ascii(s)) => s.clone(),
        other => panic!("not text: {other:?}"),
    }
}

#[test]
fn served_state_in_cassandra_survives_kill_dash_nine_and_equals_a_clean_run() {
    let host = cassandra();
    let tmp = tempfile::tempdir().unwrap();
    let (clean_ks, crash_ks) = (
        unique_name("clean").replace('-', "_"),
        unique_name("crash").replace('-', "_"),
    );
    let clean = tmp.path().join("clean");
    let crashed = tmp.path().join("crashed");
    let (clean_s, crashed_s) = (clean.to_str().unwrap(), crashed.to_str().unwrap());
    // The same inputs in two directories.
    twinline_tests::twinline(&[
        "simulate",
        "--data",
        clean_s,
        "--machines",
        "3",
        "--duration",
        "4h",
        "--seed",
        "21",
    ]);
    let cp = Command::new("cp")
        .args(["-a", clean_s, crashed_s])
        .status()
        .unwrap();
    assert!(cp.success());

    // A clean run.
    let out = command(clean_s, &host, &clean_ks).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same inputs, the run killed with -9 several times, then run to the end.
    let mut killed = 0;
    for wait_ms in [700u64, 1000, 1300, 1600] {
        let mut child = command(crashed_s, &host, &crash_ks).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        killed >= 2,
        "only {killed} runs were killed before finishing"
    );
    let out = command(crashed_s, &host, &crash_ks).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(session(&host));
    let a = rt.block_on(dump(&s, &clean_ks));
    let b = rt.block_on(dump(&s, &crash_ks));

    // The rows are what the log says: the last twin state per machine, one history row per
    // twin-state record, the last prediction per machine, the last plan.
    let store = twinline::store::Store::open_read_only(&clean).unwrap();
    let decode = |topic: Topic| -> Vec<Payload> {
        dump_topic(&clean, topic.name())
            .into_iter()
            .filter_map(|(_, r)| store.codec.decode(topic, &r.value).ok())
            .collect()
    };
    let twins = decode(Topic::TwinState);
    assert!(!twins.is_empty());
    assert_eq!(a["twin_state_history"].len(), twins.len());
    let mut last = BTreeMap::new();
    for p in &twins {
        if let Payload::TwinState(t) = p {
            last.insert(t.machine_id.clone(), t.event_id.clone());
        }
    }
    assert_eq!(a["twin_state"].len(), last.len());
    let rows = rt
        .block_on(s.query_unpaged(
            format!("SELECT machine_id, event_id FROM {clean_ks}.twin_state"),
            (),
        ))
        .unwrap()
        .into_rows_result()
        .unwrap();
    for r in rows.rows::<Row>().unwrap() {
        let r = r.unwrap().columns;
        assert_eq!(
            last.get(&text(&r[0])),
            Some(&text(&r[1])),
            "twin_state row {r:?}"
        );
    }
    let predictions = decode(Topic::FailurePredictions);
    let machines_predicted: std::collections::BTreeSet<_> = predictions
        .iter()
        .filter_map(|p| match p {
            Payload::FailurePrediction(f) => Some(f.machine_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(a["failure_predictions"].len(), machines_predicted.len());
    let plans = decode(Topic::ScheduleChanges);
    let mut ops = std::collections::BTreeSet::new();
    for p in &plans {
        if let Payload::ScheduleChange(s) = p {
            for o in &s.plan {
                ops.insert((s.plan_version, o.job_id.clone(), o.operation_index));
            }
        }
    }
    assert_eq!(
        a["schedule"].len(),
        ops.len(),
        "one row per operation of every plan"
    );
    if let Some(Payload::ScheduleChange(latest)) = plans.last() {
        assert_eq!(a["schedule_current"].len(), 1);
        assert!(
            a["schedule_current"][0].contains(&format!("BigInt({})", latest.plan_version)),
            "{:?}",
            a["schedule_current"]
        );
    }

    // And the crashed run left exactly the same rows.
    for t in TABLES {
        assert_eq!(a[t].len(), b[t].len(), "{t}: row counts differ");
        assert_eq!(a[t], b[t], "{t}: rows differ");
    }
    for ks in [&clean_ks, &crash_ks] {
        rt.block_on(s.query_unpaged(format!("DROP KEYSPACE {ks}"), ()))
            .unwrap();
    }
}
