//! Distributed mode on a real Apache Kafka: the same processors and runtime on the Kafka backend
//! of the event log, with a schema registry that `twinline registry` serves from Kafka.
//!
//! - A third-party producer (the Confluent Python client, AvroSerializer with the registry's
//!   schema) writes sensor readings to Kafka; `twinline run --kafka` derives the twin state and
//!   the read API serves it; the poison records it also wrote (bytes not in the wire format, an
//!   unknown schema id) reach `dead-letters` with their reason and original bytes.
//! - Exactly once: `twinline run --kafka` killed with -9 again and again over inputs already in
//!   Kafka, then finished. A read_committed reader of every derived topic sees consecutive
//!   logical offsets (no gap, no duplicate), and every derived record equals, byte for byte, an
//!   embedded replay of the same input topics (`twinline replay --kafka`), and the Cassandra
//!   rows equal those of the replay.
//! - Broker restart: the broker is stopped mid-run and started again 30 s later; the run
//!   recovers by itself (tasks give up producers whose calls hang after the outage) and its
//!   derived topics equal the replay.
//! - Scale-out: two instances in one task group split the task slots; one is killed with -9;
//!   the other takes its slots over, and the derived topics end up equal to the replay.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use twinline_kafka::{KafkaConfig, KafkaLog};
use twinline_log::{EventLog, ReadBatch};
use twinline_schemas::{DeadLetterReason, Payload, Topic};
use twinline_tests::{
    dump_topic, free_port, http_request, kafka, ort_library, python, repo_root, twinline,
    twinline_bin, unique_name, Server, DERIVED,
};

pub(crate) fn registry(kafka: &str) -> (Server, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let topic = unique_name("_schemas-kafka-it");
    let server = Server::start_probe(
        &[
            "registry",
            "--kafka",
            kafka,
            "--listen",
            &listen,
            "--topic",
            &topic,
            "--register-builtin",
        ],
        &[],
        &listen,
        "/subjects",
    );
    (server, format!("http://{listen}"))
}

pub(crate) fn open_kafka(brokers: &str, prefix: &str) -> KafkaLog {
    let inputs = Topic::ALL
        .iter()
        .filter(|t| t.is_input())
        .map(|t| t.name().to_string())
        .collect();
    let mut cfg = KafkaConfig::new(brokers, inputs);
    cfg.prefix = prefix.to_string();
    KafkaLog::open(cfg).expect("open kafka log")
}

/// One derived record as a read_committed reader sees it: (logical offset, origin, key, value).
type Rec = (u64, u64, Vec<u8>, Vec<u8>);

/// Every committed record of `topic`, per partition.
pub(crate) fn read_all(log: &KafkaLog, topic: &str) -> BTreeMap<u32, Vec<Rec>> {
    let mut out = BTreeMap::new();
    let mut batch = ReadBatch::new();
    for p in 0..log.partitions(topic).expect("partitions") {
        let end = log.end_offset(topic, p).expect("end");
        let mut off = 0u64;
        let mut v = Vec::new();
        // The end of a derived partition that ends in transaction markers may be reported one
        // too high while a pipeline is still writing (KafkaLog::end_offset, "at least one
        // more"): stop after 3 s without a new record. Callers compare counts and contents with
        // a replay, so a record missing here still fails them.
        let mut last_new = Instant::now();
        while off < end {
            log.read(topic, p, off, 1 << 20, &mut batch).expect("read");
            if batch.is_empty() {
                if last_new.elapsed() > Duration::from_secs(3) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            last_new = Instant::now();
            for r in batch.iter() {
                off = r.offset + 1;
                v.push((r.offset, r.origin, r.key.to_vec(), r.value.to_vec()));
            }
        }
        out.insert(p, v);
    }
    out
}

/// Runs `tests/e2e/py/kafka_producer.py` (the Confluent Python client) against
/// `<prefix>sensor-readings` with `args` after the brokers, topic and registry; asserts it
/// succeeded and returns its stdout (a JSON summary).
fn python_producer(kafka: &str, prefix: &str, url: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(python())
        .arg(repo_root().join("tests/e2e/py/kafka_producer.py"))
        .args([kafka, &format!("{prefix}sensor-readings"), url])
        .args(args)
        .output()
        .expect("running the Python producer");
    assert!(
        out.status.success(),
        "producer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `twinline replay --kafka` of the pipeline `common` names (brokers, prefix, registry) into
/// `out`, with the repository's models; asserts it succeeded and returns its stderr.
fn replay_kafka(common: &[&str], out: &std::path::Path) -> String {
    let mut args = vec!["replay", "--out", out.to_str().unwrap()];
    args.extend(common);
    let res = Command::new(twinline_bin())
        .args(&args)
        .env("TWINLINE_MODELS__DIR", repo_root().join("models"))
        .env("ORT_DYLIB_PATH", ort_library())
        .env("TWINLINE_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr).into_owned();
    assert!(res.status.success(), "replay failed: {stderr}");
    stderr
}

/// Whether every derived topic, read `read_committed`, has consecutive logical offsets and equals
/// the embedded replay in `replay` record for record (offset, origin, key, value). Returns the
/// number of records compared, or what differs.
fn same_as_replay(log: &KafkaLog, replay: &std::path::Path) -> Result<usize, String> {
    let mut total = 0;
    for topic in DERIVED {
        let got = read_all(log, topic);
        let mut want_by_p: BTreeMap<u32, Vec<Rec>> = BTreeMap::new();
        for (p, r) in dump_topic(replay, topic) {
            want_by_p
                .entry(p)
                .or_default()
                .push((r.offset, r.origin, r.key, r.value));
        }
        for (p, recs) in &got {
            for (i, r) in recs.iter().enumerate() {
                if r.0 != i as u64 {
                    return Err(format!("{topic}/{p}: gap or duplicate at {i}"));
                }
            }
            let want = want_by_p.remove(p).unwrap_or_default();
            if recs.len() != want.len() {
                return Err(format!(
                    "{topic}/{p}: {} records in Kafka, {} in the replay",
                    recs.len(),
                    want.len()
                ));
            }
            if let Some(i) = recs.iter().zip(&want).position(|(a, b)| a != b) {
                let show = |r: &Rec| {
                    format!(
                        "offset {} origin {} key {:?} value {} bytes {:?}",
                        r.0,
                        r.1,
                        String::from_utf8_lossy(&r.2),
                        r.3.len(),
                        String::from_utf8_lossy(&r.3[r.3.len().min(5)..])
                    )
                };
                return Err(format!(
                    "{topic}/{p}: record {i} differs from the replay\n  kafka:  {}\n  replay: {}",
                    show(&recs[i]),
                    show(&want[i])
                ));
            }
            total += recs.len();
        }
        if !want_by_p.values().all(Vec::is_empty) {
            return Err(format!("{topic}: partitions only in the replay"));
        }
    }
    Ok(total)
}

#[test]
fn third_party_producer_to_twin_state_in_the_api_and_poison_to_dead_letters() {
    let _broker = twinline_tests::kafka_shared();
    let kafka = kafka();
    let (_registry, url) = registry(&kafka);
    let prefix = format!("{}.", unique_name("tp"));
    let _topics = twinline_tests::DeleteTopicsOnDrop::new(&kafka, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port());
    let server = Server::start(
        &[
            "run",
            "--kafka",
            &kafka,
            "--topic-prefix",
            &prefix,
            "--schema-registry",
            &url,
            "--data",
            data.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &[],
        &listen,
    );

    let machine = "EXT-7";
    let out = python_producer(&kafka, &prefix, &url, &[machine, "30", "1767225600000"]);
    let produced: serde_json::Value = serde_json::from_slice(&out).unwrap();

    // The twin state of the machine the third party wrote appears in the API.
    let deadline = Instant::now() + Duration::from_secs(90);
    let state = loop {
        let (status, body) = http_request(
            &listen,
            "GET",
            &format!("/api/v1/digital-twin/machines/{machine}"),
            &[],
            b"",
        );
        if status == 200 {
            break serde_json::from_str::<serde_json::Value>(&body).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no twin state for {machine} in the API: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Derived from the first reading the third party wrote (61.5 °C at 2026-01-01T00:00:00Z).
    assert_eq!(state["machine_id"], machine, "{state}");
    assert_eq!(state["status"], "IDLE", "{state}");
    assert_eq!(state["temperature"], 61.5, "{state}");
    assert_eq!(state["last_seen"], "2026-01-01T00:00:00.000Z", "{state}");
    assert!(
        state["history"][0]["event_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("twin-state:sensor-readings/") && id.ends_with("/0/0")),
        "provenance names the third party's first record: {state}"
    );

    // The poison records are in dead-letters, with the reason and the original bytes.
    let log = open_kafka(&kafka, &prefix);
    let codec = twinline_tests::registry_codec(&url);
    let poison: Vec<Vec<u8>> = produced["poison"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let s = h.as_str().unwrap();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut found = Vec::new();
        for (_, recs) in read_all(&log, "dead-letters") {
            for (_, _, _, value) in recs {
                let Payload::DeadLetter(dl) = codec.decode(Topic::DeadLetters, &value).unwrap()
                else {
                    panic!("not a dead letter")
                };
                found.push(dl);
            }
        }
        let not_wire = found
            .iter()
            .find(|d| d.payload == poison[0] && d.reason_type == DeadLetterReason::NotWireFormat);
        let unknown = found
            .iter()
            .find(|d| d.payload == poison[1] && d.reason_type == DeadLetterReason::UnknownSchema);
        if let (Some(a), Some(b)) = (not_wire, unknown) {
            assert!(!a.reason.is_empty() && !b.reason.is_empty());
            assert_eq!(a.key, machine.as_bytes());
            assert_eq!(a.source.topic, "sensor-readings");
            assert!(
                b.reason.contains("1000000") || b.reason.to_lowercase().contains("schema"),
                "reason names the schema problem: {}",
                b.reason
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "poison records not dead-lettered; found {found:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    server.stop();
}

#[test]
fn killed_with_minus_9_no_gap_no_duplicate_and_equal_to_an_embedded_replay() {
    let _broker = twinline_tests::kafka_shared();
    let kafka = kafka();
    let (_registry, url) = registry(&kafka);
    let host = twinline_tests::cassandra();
    let prefix = format!("{}.", unique_name("eos"));
    let _topics = twinline_tests::DeleteTopicsOnDrop::new(&kafka, &prefix);
    let (kafka_ks, clean_ks) = (
        unique_name("eos_kafka").replace('-', "_"),
        unique_name("eos_clean").replace('-', "_"),
    );
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let data = dir.path().join("data");
    let replay = dir.path().join("replay");
    let common = [
        "--kafka",
        kafka.as_str(),
        "--topic-prefix",
        prefix.as_str(),
        "--schema-registry",
        url.as_str(),
    ];
    // The inputs, in Kafka before processing starts.
    let mut args = vec!["simulate", "--data", sim.to_str().unwrap()];
    args.extend(common);
    args.extend(["--machines", "3", "--duration", "40m", "--seed", "11"]);
    twinline(&args);

    let models = repo_root().join("models");
    let ort = ort_library();
    let run_log = |i: usize| dir.path().join(format!("run-{i}.log"));
    let run = |until_done: bool, i: usize| {
        let mut args = vec!["run", "--until-caught-up", "--data", data.to_str().unwrap()];
        args.extend(common);
        args.extend(["--listen", "127.0.0.1:0", "--scylla", host.as_str()]);
        // The same member of the task group at every restart: its slots come back at once.
        args.extend(["--instance-id", "eos-1"]);
        let mut c = Command::new(twinline_bin());
        c.args(&args)
            .env("TWINLINE_DISTRIBUTED__SCYLLA_KEYSPACE", &kafka_ks)
            .env("TWINLINE_MODELS__DIR", &models)
            .env("ORT_DYLIB_PATH", &ort)
            .env("TWINLINE_LOG", "warn")
            .env("TWINLINE_DISTRIBUTED__COMMIT_INTERVAL_MS", "100");
        if !until_done {
            c.stdout(Stdio::null())
                .stderr(std::fs::File::create(run_log(i)).unwrap());
        }
        c
    };
    // What the killed runs logged (warnings and errors), for a failure message.
    let run_logs = || {
        (0..5)
            .map(|i| {
                let text = std::fs::read_to_string(run_log(i)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                format!("--- run {i} ---\n{tail}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut killed = 0;
    for (i, ms) in [1500u64, 2500, 3500, 2000, 4500].into_iter().enumerate() {
        let mut child = run(false, i).spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        let status = child.wait().unwrap();
        eprintln!("run {i}: {status} after {ms} ms");
    }
    assert!(killed >= 3, "only {killed} runs were killed mid-way");
    let out = run(true, 5).output().expect("final run");
    assert!(
        out.status.success(),
        "final run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The embedded re-derivation of the same input topics.
    replay_kafka(&common, &replay);

    let log = open_kafka(&kafka, &prefix);
    let total = same_as_replay(&log, &replay).unwrap_or_else(|e| {
        panic!(
            "{e}\nfinal run:\n{}\nkilled runs:\n{}",
            String::from_utf8_lossy(&out.stderr),
            run_logs()
        )
    });
    let twin: usize = read_all(&log, "twin-state").values().map(Vec::len).sum();
    let defects: usize = read_all(&log, "defects").values().map(Vec::len).sum();
    assert!(
        twin > 100 && defects > 0,
        "derived too little: {twin} twin states, {defects} defects"
    );
    eprintln!("{total} derived records equal the replay's; {killed} runs killed");

    // Cassandra: the rows the killed runs left equal those of the clean replay, served by an
    // embedded run over the replay's log.
    let out = Command::new(twinline_bin())
        .args([
            "run",
            "--until-caught-up",
            "--data",
            replay.to_str().unwrap(),
        ])
        .args(["--listen", "127.0.0.1:0", "--scylla", host.as_str()])
        .args(["--schema-registry", url.as_str()])
        .env("TWINLINE_DISTRIBUTED__SCYLLA_KEYSPACE", &clean_ks)
        .env("TWINLINE_MODELS__DIR", &models)
        .env("ORT_DYLIB_PATH", &ort)
        .env("TWINLINE_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "serving the replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(crate::cassandra::session(&host));
    let got = rt.block_on(crate::cassandra::dump(&s, &kafka_ks));
    let want = rt.block_on(crate::cassandra::dump(&s, &clean_ks));
    assert!(
        got["twin_state"].len() == 3 && got["twin_state_history"].len() == twin,
        "Cassandra: {} twin_state rows, {} history rows for {twin} twin states",
        got["twin_state"].len(),
        got["twin_state_history"].len()
    );
    for t in crate::cassandra::TABLES {
        assert_eq!(got[t].len(), want[t].len(), "{t}: row counts differ");
        assert_eq!(got[t], want[t], "{t}: rows differ from the clean replay's");
    }
    for ks in [&kafka_ks, &clean_ks] {
        rt.block_on(s.query_unpaged(format!("DROP KEYSPACE {ks}"), ()))
            .unwrap();
    }
}

/// The task slots named in an instance's "task slots assigned" / "revoked" log lines.
fn slot_events(log: &str, what: &str) -> Vec<Vec<u32>> {
    log.lines()
        .filter(|l| l.contains(&format!("task slots {what}")))
        .filter_map(|l| {
            let list = l.split("slots=[").nth(1)?.split(']').next()?;
            Some(
                list.split(',')
                    .filter_map(|x| x.trim().parse().ok())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn two_instances_split_the_task_slots_and_one_takes_over_when_the_other_is_killed() {
    let _broker = twinline_tests::kafka_shared();
    let kafka = kafka();
    let (_registry, url) = registry(&kafka);
    let prefix = format!("{}.", unique_name("group"));
    let _topics = twinline_tests::DeleteTopicsOnDrop::new(&kafka, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "--kafka",
        kafka.as_str(),
        "--topic-prefix",
        prefix.as_str(),
        "--schema-registry",
        url.as_str(),
    ];
    let sim = dir.path().join("sim");
    let mut args = vec!["simulate", "--data", sim.to_str().unwrap()];
    args.extend(common);
    args.extend(["--machines", "6", "--duration", "4h", "--seed", "5"]);
    twinline(&args);
    let models = repo_root().join("models");
    let ort = ort_library();

    // Two instances in one task group, each logging to a file.
    let start = |name: &str| {
        let data = dir.path().join(format!("data-{name}"));
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
        let mut args = vec!["run", "--data", data.to_str().unwrap()];
        args.extend(common);
        args.extend(["--listen", "127.0.0.1:0", "--instance-id", name]);
        Command::new(twinline_bin())
            .args(&args)
            .env("TWINLINE_MODELS__DIR", &models)
            .env("ORT_DYLIB_PATH", &ort)
            .env("TWINLINE_LOG", "info")
            .env("TWINLINE_DISTRIBUTED__COMMIT_INTERVAL_MS", "100")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn")
    };
    let read_log = |name: &str| {
        std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default()
    };
    let mut a = start("a");
    let mut b = start("b");
    // Both get slots: the group splits them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (la, lb) = (read_log("a"), read_log("b"));
        let owned = |l: &str| {
            let mut s: std::collections::BTreeSet<u32> = Default::default();
            for v in slot_events(l, "assigned") {
                s.extend(v);
            }
            for v in slot_events(l, "revoked") {
                for x in v {
                    s.remove(&x);
                }
            }
            s
        };
        let (oa, ob) = (owned(&la), owned(&lb));
        if !oa.is_empty() && !ob.is_empty() && oa.len() + ob.len() == 5 {
            assert!(oa.is_disjoint(&ob), "a owns {oa:?}, b owns {ob:?}");
            eprintln!("a owns {oa:?}, b owns {ob:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slots were not split: a owns {oa:?}, b owns {ob:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let both work, then kill a mid-run.
    std::thread::sleep(Duration::from_millis(1500));
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();

    // What the pipeline must derive: the embedded replay of the inputs, with the origins the
    // group's sequencer gave them (a's, then b's once it holds the last slot).
    let replay = dir.path().join("replay");
    let stderr = replay_kafka(&common, &replay);
    assert!(!stderr.contains("warning"), "replay warned: {stderr}");

    // b takes a's slots (after the session timeout) and derives the rest.
    let log = open_kafka(&kafka, &prefix);
    let deadline = Instant::now() + Duration::from_secs(180);
    let total = loop {
        match same_as_replay(&log, &replay) {
            Ok(n) => break n,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                let _ = b.kill();
                panic!(
                    "b did not finish a's work: {e}\n--- b's log:\n{}",
                    read_log("b")
                );
            }
        }
    };
    let lb = read_log("b");
    let mut b_slots: std::collections::BTreeSet<u32> = Default::default();
    for v in slot_events(&lb, "assigned") {
        b_slots.extend(v);
    }
    b.kill().unwrap();
    b.wait().unwrap();
    assert_eq!(
        b_slots.len(),
        5,
        "b ran only slots {b_slots:?}; a's were never taken over"
    );
    let twin: usize = read_all(&log, "twin-state").values().map(Vec::len).sum();
    assert!(twin > 1000, "derived too little: {twin} twin states");
    eprintln!("{total} derived records equal the replay's after the takeover");
}

/// Committed records in every partition of `topic` (the sum of the logical ends).
fn committed_records(log: &KafkaLog, topic: &str) -> u64 {
    (0..log.partitions(topic).expect("partitions"))
        .map(|p| log.end_offset(topic, p).unwrap_or(0))
        .sum()
}

#[test]
fn broker_restart_mid_run_the_pipeline_recovers_by_itself_and_loses_nothing() {
    // No other Kafka test runs while the broker is away.
    let _broker = twinline_tests::kafka_exclusive();
    let kafka = kafka();
    let restart = repo_root().join("docker/local/restart-kafka");
    let (_registry, url) = registry(&kafka);
    let prefix = format!("{}.", unique_name("restart"));
    let _topics = twinline_tests::DeleteTopicsOnDrop::new(&kafka, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "--kafka",
        kafka.as_str(),
        "--topic-prefix",
        prefix.as_str(),
        "--schema-registry",
        url.as_str(),
    ];
    let sim = dir.path().join("sim");
    let mut args = vec!["simulate", "--data", sim.to_str().unwrap()];
    args.extend(common);
    args.extend(["--machines", "6", "--duration", "4h", "--seed", "9"]);
    twinline(&args);
    let models = repo_root().join("models");
    let ort = ort_library();
    let data = dir.path().join("data");
    let log_path = dir.path().join("run.log");
    let mut args = vec!["run", "--until-caught-up", "--data", data.to_str().unwrap()];
    args.extend(common);
    args.extend(["--listen", "127.0.0.1:0", "--instance-id", "restart-1"]);
    let mut child = Command::new(twinline_bin())
        .args(&args)
        .env("TWINLINE_MODELS__DIR", &models)
        .env("ORT_DYLIB_PATH", &ort)
        .env("TWINLINE_LOG", "info")
        .env("TWINLINE_DISTRIBUTED__COMMIT_INTERVAL_MS", "100")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("spawn");
    let run_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !run_log().contains("task slots assigned") {
        assert!(
            Instant::now() < deadline,
            "no slots assigned:\n{}",
            run_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run finished before the broker restarted: give it more input"
    );

    // Stop the broker, keep it away 30 s, start it again (same data): the run is left to
    // recover by itself. An outage this long leaves a task's transactional call (its offsets,
    // or the abort after them) hanging on a dead connection after the broker is back, which
    // the task must give up (abandoning the producer) instead of waiting out its timeout.
    let out = Command::new(&restart)
        .args(["--down", "30"])
        .output()
        .expect("docker/local/restart-kafka");
    assert!(
        out.status.success(),
        "docker/local/restart-kafka failed (the test needs the broker docker/local/up started): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = Instant::now();
    let log = open_kafka(&kafka, &prefix);
    let before = committed_records(&log, "twin-state");
    let mut progressed = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if progressed.is_none() && committed_records(&log, "twin-state") > before {
            progressed = Some(back.elapsed());
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the run did not finish after the broker restart:\n{}",
                run_log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the run failed:\n{}", run_log());
    let recovered = run_log()
        .lines()
        .filter(|l| l.contains("restarting"))
        .count();
    assert!(
        progressed.is_some(),
        "no new twin state was committed after the broker came back"
    );
    let abandoned = run_log()
        .lines()
        .filter(|l| l.contains("abandoning the producer"))
        .count();
    assert!(
        abandoned > 0,
        "no task gave up a hanging call after the outage (the path this test is for):\n{}",
        run_log()
    );
    eprintln!(
        "broker back; first new twin state committed {:?} later; run finished {:?} after; \
         {recovered} component restarts logged, {abandoned} producers abandoned",
        progressed,
        back.elapsed()
    );

    // Nothing lost, nothing twice: equal to the embedded replay of the same inputs.
    let replay = dir.path().join("replay");
    replay_kafka(&common, &replay);
    let total = same_as_replay(&log, &replay).unwrap_or_else(|e| panic!("{e}"));
    assert!(total > 1000, "derived too little: {total}");
    eprintln!("{total} derived records equal the replay's after the broker restart");
}

#[test]
fn transactional_third_party_producer_committed_records_only_and_the_run_ends_replay_keeps_the_offsets(
) {
    let _broker = twinline_tests::kafka_shared();
    let kafka = kafka();
    let (_registry, url) = registry(&kafka);
    let prefix = format!("{}.", unique_name("txp"));
    let _topics = twinline_tests::DeleteTopicsOnDrop::new(&kafka, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "--kafka",
        kafka.as_str(),
        "--topic-prefix",
        prefix.as_str(),
        "--schema-registry",
        url.as_str(),
    ];
    // Create the topics (twinline's partition count) before the third party writes.
    let sim = dir.path().join("sim");
    let mut args = vec!["simulate", "--data", sim.to_str().unwrap()];
    args.extend(common);
    args.extend(["--machines", "1", "--duration", "1m", "--seed", "3"]);
    twinline(&args);
    // A transactional producer: one committed transaction, then one aborted, so transaction
    // markers sit among the records and at the end of the partitions.
    python_producer(
        &kafka,
        &prefix,
        &url,
        &["TX-1", "40", "1767225600000", "transactional"],
    );
    // Plain records of the same machine after the transactions: its partition now has a gap
    // (the markers and the aborted records) between records, not only at its end.
    python_producer(&kafka, &prefix, &url, &["TX-1", "5", "1767225660000"]);
    // `--until-caught-up` ends although the partitions end with markers, not records.
    let data = dir.path().join("data");
    let mut args = vec!["run", "--until-caught-up", "--data", data.to_str().unwrap()];
    args.extend(common);
    args.extend(["--listen", "127.0.0.1:0"]);
    let mut child = Command::new(twinline_bin())
        .args(&args)
        .env("TWINLINE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("run --until-caught-up did not end over transactional input");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "run failed");
    // The committed readings were processed, the aborted ones never.
    let log = open_kafka(&kafka, &prefix);
    let codec = twinline_tests::registry_codec(&url);
    let mut tx1 = 0;
    for (_, recs) in read_all(&log, "twin-state") {
        for r in recs {
            if let Ok(Payload::TwinState(t)) = codec.decode(Topic::TwinState, &r.3) {
                assert_ne!(
                    t.machine_id, "TX-1-ABORTED",
                    "a twin state from aborted records"
                );
                if t.machine_id == "TX-1" {
                    tx1 += 1;
                }
            }
        }
    }
    assert!(tx1 > 0, "no twin state for the committed readings");
    // The embedded replay keeps Kafka's input offsets, offsets without records included
    // (`EventLog::append_at`), so provenance and every derived record equal the run's.
    let replay = dir.path().join("replay");
    replay_kafka(&common, &replay);
    let mut gaps = 0;
    let mut inputs = 0;
    for (p, recs) in read_all(&log, "sensor-readings") {
        let kafka_offsets: Vec<u64> = recs.iter().map(|r| r.0).collect();
        let replay_offsets: Vec<u64> = dump_topic(&replay, "sensor-readings")
            .into_iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, r)| r.offset)
            .collect();
        assert_eq!(
            kafka_offsets, replay_offsets,
            "sensor-readings/{p}: the replay's input offsets differ from Kafka's"
        );
        gaps += kafka_offsets
            .windows(2)
            .filter(|w| w[1] != w[0] + 1)
            .count();
        inputs += kafka_offsets.len();
    }
    assert!(
        gaps > 0,
        "no input partition has offsets without records between records: the test no longer \
         covers replaying them"
    );
    let total = same_as_replay(&log, &replay).unwrap_or_else(|e| panic!("{e}"));
    assert!(total > 0, "nothing derived");
    eprintln!(
        "{inputs} input records with {gaps} gaps replayed at their Kafka offsets; {total} derived \
         records equal the replay's"
    );
}
