//! `twinline registry` against a real Kafka broker and a third-party client: twinline registers
//! its schemas there at startup (schema_registry_converter), writes records with the registry's
//! ids, the Confluent Python client reads and writes the same wire format, incompatible changes
//! are refused with a clear error, the state survives a restart and two instances on one topic
//! hand out distinct ids.

use serde_json::Value;
use twinline_schemas::{SensorKind, SensorReading, Topic};
use twinline_tests::{
    dump_topic, free_port, http_get_json, http_request, kafka, python, repo_root, twinline,
    unique_name, Server,
};

fn registry(kafka: &str, topic: &str) -> (Server, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let server = Server::start_probe(
        &[
            "registry", "--kafka", kafka, "--listen", &listen, "--topic", topic,
        ],
        &[],
        &listen,
        "/subjects",
    );
    (server, listen)
}

fn post(listen: &str, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = http_request(
        listen,
        "POST",
        path,
        &[("Content-Type", "application/vnd.schemaregistry.v1+json")],
        body.to_string().as_bytes(),
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn third_party_clients_and_twinline_share_one_registry_kept_in_kafka() {
    let _broker = twinline_tests::kafka_shared();
    let kafka = kafka();
    let topic = unique_name("_schemas-it");
    let (server, listen) = registry(&kafka, &topic);
    let url = format!("http://{listen}");

    // 1. twinline registers every schema there at startup and writes records with its ids.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    twinline(&[
        "simulate",
        "--data",
        data_s,
        "--machines",
        "2",
        "--duration",
        "10m",
        "--seed",
        "7",
        "--schema-registry",
        &url,
    ]);
    let subjects = http_get_json(&listen, "/subjects");
    for t in Topic::ALL {
        let subject = format!("{}-value", t.name());
        assert!(
            subjects
                .as_array()
                .unwrap()
                .contains(&Value::String(subject.clone())),
            "{subject} not registered: {subjects}"
        );
    }
    let sensor = http_get_json(&listen, "/subjects/sensor-readings-value/versions/latest");
    let sensor_id = sensor["id"].as_u64().unwrap() as u32;
    assert_eq!(sensor["version"], 1);
    let records = dump_topic(&data, "sensor-readings");
    assert!(!records.is_empty());
    for (_, r) in &records {
        assert_eq!(r.value[0], 0, "magic byte");
        assert_eq!(
            u32::from_be_bytes(r.value[1..5].try_into().unwrap()),
            sensor_id
        );
    }

    // 2. The processors read those records (ids resolved through the registry) and derive from
    //    them; the derived records carry the registry's ids too.
    twinline(&[
        "run",
        "--data",
        data_s,
        "--until-caught-up",
        "--schema-registry",
        &url,
    ]);
    let twin_id = http_get_json(&listen, "/subjects/twin-state-value/versions/latest")["id"]
        .as_u64()
        .unwrap() as u32;
    let twin = dump_topic(&data, "twin-state");
    assert!(!twin.is_empty(), "no twin state derived");
    assert!(twin
        .iter()
        .all(|(_, r)| u32::from_be_bytes(r.value[1..5].try_into().unwrap()) == twin_id));
    // Read-only tools find the registry the directory was written with.
    let out = twinline(&[
        "query",
        "--data",
        data_s,
        "SELECT count(*) AS n FROM twin_state",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains('2'),
        "{out:?}"
    );

    // 3. The Confluent Python client: decodes twinline's bytes, writes its own, evolves the
    //    subject compatibly and is refused an incompatible change.
    let codec = twinline_tests::registry_codec(&url);
    assert_eq!(codec.schema_id(Topic::SensorReadings), sensor_id);
    let ours = SensorReading {
        machine_id: "M-RS-1".into(),
        sensor: SensorKind::Temperature,
        value: 61.5,
        unit: "C".into(),
        event_time: 1_767_225_600_000,
    };
    let mut bytes = Vec::new();
    codec.encode_record(&ours, &mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let py = std::process::Command::new(python())
        .arg(repo_root().join("tests/e2e/py/registry_client.py"))
        .args([&url, &hex])
        .output()
        .expect("running python");
    assert!(
        py.status.success(),
        "registry_client.py failed:\n{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let out: Value = serde_json::from_slice(&py.stdout).expect("one JSON object");
    assert_eq!(out["latest"]["id"], sensor_id);
    assert_eq!(out["decoded"]["machine_id"], "M-RS-1");
    assert_eq!(out["decoded"]["sensor"], "TEMPERATURE");
    assert_eq!(out["decoded"]["value"], 61.5);
    let theirs = SensorReading {
        machine_id: "M-PY-1".into(),
        sensor: SensorKind::Vibration,
        value: 4.25,
        unit: "mm/s".into(),
        event_time: 1_767_225_600_123,
    };
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let v1 = unhex(out["encoded_hex"].as_str().unwrap());
    assert_eq!(v1[0], 0);
    assert_eq!(u32::from_be_bytes(v1[1..5].try_into().unwrap()), sensor_id);
    assert_eq!(codec.decode_record::<SensorReading>(&v1).unwrap(), theirs);
    let inc = &out["incompatible"];
    assert_eq!(inc["status"], 409, "{out}");
    assert_eq!(inc["code"], 409, "{out}");
    assert!(
        inc["message"]
            .as_str()
            .unwrap()
            .contains("sensor-readings-value"),
        "{inc}"
    );
    assert_eq!(out["evolved"]["version"], 2, "{out}");
    let v2_id = out["evolved"]["id"].as_u64().unwrap() as u32;
    assert!(v2_id > sensor_id);
    assert_eq!(out["lookup_id"], sensor_id);
    // A record written with version 2 is read by twinline with its own version 1 schema.
    let v2 = unhex(out["encoded_v2_hex"].as_str().unwrap());
    assert_eq!(u32::from_be_bytes(v2[1..5].try_into().unwrap()), v2_id);
    assert_eq!(codec.decode_record::<SensorReading>(&v2).unwrap(), theirs);

    // 4. The REST API's errors are Confluent's.
    let (status, body) = post(
        &listen,
        "/subjects/x-value/versions",
        &serde_json::json!({"schema": "{not json"}),
    );
    assert_eq!(
        (status, body["error_code"].as_u64()),
        (422, Some(42201)),
        "{body}"
    );
    let (status, body) = http_request(&listen, "GET", "/subjects/nope-value/versions/1", &[], &[]);
    assert_eq!(status, 404);
    assert!(body.contains("40401"), "{body}");
    let (status, body) = http_request(
        &listen,
        "GET",
        "/subjects/sensor-readings-value/versions/9",
        &[],
        &[],
    );
    assert_eq!(status, 404);
    assert!(body.contains("40402"), "{body}");
    let (status, body) = http_request(&listen, "GET", "/schemas/ids/999999", &[], &[]);
    assert_eq!(status, 404);
    assert!(body.contains("40403"), "{body}");
    let compat = post(
        &listen,
        "/compatibility/subjects/sensor-readings-value/versions/latest",
        &serde_json::json!({"schema": r#"{"type":"record","name":"SensorReading","namespace":"io.twinline","fields":[{"name":"site","type":"string"}]}"#}),
    );
    assert_eq!(compat.0, 200);
    assert_eq!(compat.1["is_compatible"], false, "{:?}", compat.1);

    // 5. The state is the topic: a restarted registry serves the same ids.
    let before = http_get_json(&listen, "/subjects");
    server.stop();
    let (server, listen) = registry(&kafka, &topic);
    assert_eq!(http_get_json(&listen, "/subjects"), before);
    assert_eq!(
        http_get_json(&listen, &format!("/schemas/ids/{v2_id}/versions")),
        serde_json::json!([{"subject": "sensor-readings-value", "version": 2}])
    );

    // 6. Two instances on one topic, registering at the same time, never hand out one id twice.
    let (second, listen2) = registry(&kafka, &topic);
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let target = if i % 2 == 0 {
                listen.clone()
            } else {
                listen2.clone()
            };
            std::thread::spawn(move || {
                let schema = format!(
                    r#"{{"type":"record","name":"R{i}","fields":[{{"name":"f","type":"long"}}]}}"#
                );
                let (status, body) = post(
                    &target,
                    &format!("/subjects/race-{i}-value/versions"),
                    &serde_json::json!({ "schema": schema }),
                );
                assert_eq!(status, 200, "{body}");
                body["id"].as_u64().unwrap()
            })
        })
        .collect();
    let mut ids: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, id) in ids.iter().enumerate() {
        for l in [&listen, &listen2] {
            let v = http_get_json(l, &format!("/schemas/ids/{id}/versions"));
            assert_eq!(v[0]["subject"], format!("race-{i}-value"), "id {id} on {l}");
        }
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 16, "an id was handed out twice");
    drop(second);
    drop(server);
}

#[test]
fn twinline_refuses_to_start_against_an_incompatible_registered_schema() {
    let _broker = twinline_tests::kafka_shared();
    let kafka = kafka();
    let topic = unique_name("_schemas-incompat");
    let (_server, listen) = registry(&kafka, &topic);
    // Someone registered a twin-state schema that twinline's cannot read: a field without a
    // default that twinline's schema does not know is fine, but twinline's required fields are
    // missing from the old data.
    let (status, body) = post(
        &listen,
        "/subjects/twin-state-value/versions",
        &serde_json::json!({"schema": r#"{"type":"record","name":"TwinState","namespace":"io.twinline","fields":[{"name":"legacy","type":"string"}]}"#}),
    );
    assert_eq!(status, 200, "{body}");
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(twinline_tests::twinline_bin())
        .args([
            "simulate",
            "--data",
            dir.path().join("d").to_str().unwrap(),
            "--duration",
            "1m",
            "--schema-registry",
            &format!("http://{listen}"),
        ])
        .env("TWINLINE_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "twinline started against an incompatible schema"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("twin-state-value"), "{err}");
    assert!(
        err.contains("incompatible") || err.contains("not backward compatible"),
        "{err}"
    );
}
