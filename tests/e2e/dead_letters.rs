//! Poison records (not wire format, unknown schema id, undecodable body, bad key) are
//! dead-lettered with the reason, and the run goes on: everything else is derived exactly as it
//! would have been without them.

use twinline_log::{EmbeddedLog, EventLog, LogConfig, NewRecord};
use twinline_tests::{dump_topic, twinline};

#[test]
fn poison_records_are_dead_lettered_and_the_run_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    let dirty = tmp.path().join("dirty");
    for dir in [&clean, &dirty] {
        twinline(&[
            "simulate",
            "--data",
            dir.to_str().unwrap(),
            "--machines",
            "6",
            "--duration",
            "30m",
            "--seed",
            "9",
        ]);
    }
    // Append poison to the dirty copy, after the simulated records.
    let poison: Vec<(&[u8], Vec<u8>, &str)> = vec![
        (b"M001", b"not avro at all".to_vec(), "NOT_WIRE_FORMAT"),
        (
            b"M002",
            vec![0, 0, 0, 0x7f, 0x7f, 1, 2, 3],
            "UNKNOWN_SCHEMA",
        ),
        (b"M003", Vec::new(), "UNDECODABLE"), // header of a real record + a broken body, below
        (b"", vec![0, 0, 0, 0, 1], "INVALID_KEY"),
    ];
    let mut poison = poison;
    {
        let log = EmbeddedLog::open(&dirty.join("log"), LogConfig::default()).unwrap();
        // The wire header (magic + the real sensor-readings schema id) of a valid record, so only
        // the Avro body is broken.
        let header: Vec<u8> = dump_topic_first_value(&log);
        poison[2].1 = [header.as_slice(), &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]].concat();
        for (key, value, _) in &poison {
            let p = log.partition_for("sensor-readings", key).unwrap();
            log.append(
                "sensor-readings",
                p,
                &[NewRecord {
                    key,
                    value,
                    timestamp: 1_767_226_000_000,
                    origin: None,
                    headers: &[],
                }],
            )
            .unwrap();
        }
    }
    for dir in [&clean, &dirty] {
        twinline(&["run", "--data", dir.to_str().unwrap(), "--until-caught-up"]);
    }
    let dump = twinline(&[
        "log",
        "dump",
        "--data",
        dirty.to_str().unwrap(),
        "--topic",
        "dead-letters",
    ])
    .stdout;
    let letters: Vec<serde_json::Value> = String::from_utf8(dump)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), poison.len(), "dead letters: {letters:#?}");
    for (_, _, reason) in &poison {
        let hit = letters
            .iter()
            .find(|l| l["value"]["reason_type"] == *reason);
        let hit =
            hit.unwrap_or_else(|| panic!("no dead letter with reason {reason}: {letters:#?}"));
        assert!(
            !hit["value"]["reason"].as_str().unwrap_or("").is_empty(),
            "empty reason: {hit}"
        );
        assert_eq!(hit["value"]["source"]["topic"], "sensor-readings");
    }
    // The run went on: twin state is exactly what the clean run derived (poison changes nothing).
    assert_eq!(
        dump_topic(&clean, "twin-state"),
        dump_topic(&dirty, "twin-state")
    );
    assert!(dump_topic(&clean, "dead-letters").is_empty());
}

fn dump_topic_first_value(log: &EmbeddedLog) -> Vec<u8> {
    let mut batch = twinline_log::ReadBatch::new();
    for p in 0..log.partitions("sensor-readings").unwrap() {
        log.read("sensor-readings", p, 0, 4096, &mut batch).unwrap();
        if let Some(r) = batch.iter().next() {
            return r.value[..5].to_vec();
        }
    }
    panic!("no sensor reading to copy a header from");
}
