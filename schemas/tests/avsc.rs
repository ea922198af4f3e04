//! The `.avsc` files agree with FIELDS.md (record and field names, order, enum symbols), with the
//! Rust types (field names and order as apache-avro serializes them, values validate), and carry
//! a doc on every field; plus the `Topic` table.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use serde_json::Value as Json;
use twinline_schemas::*;

const FIELDS_MD: &str = include_str!("../FIELDS.md");

/// Splits `s` on commas that are not nested inside (), [], {} or <>.
fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '{' | '[' | '(' | '<' => depth += 1,
            '}' | ']' | ')' | '>' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Record name -> field names, from every `` `Name { a: t, b, ... }` `` in FIELDS.md.
fn fields_md_records() -> BTreeMap<String, Vec<String>> {
    let mut records = BTreeMap::new();
    for (i, segment) in FIELDS_MD.split('`').enumerate() {
        if i % 2 == 0 {
            continue; // outside backticks
        }
        let Some((name, rest)) = segment.split_once(" { ") else {
            continue;
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric()) || !rest.ends_with('}') {
            continue;
        }
        let body = &rest[..rest.len() - 1];
        let fields: Vec<String> = split_top_level(body)
            .iter()
            .map(|t| t.split(':').next().unwrap_or("").trim().to_string())
            .collect();
        if let Some(prev) = records.insert(name.to_string(), fields.clone()) {
            assert_eq!(prev, fields, "{name} is described twice, differently");
        }
    }
    records
}

/// Enum name -> symbols, from every `Name{A,B}` in FIELDS.md.
fn fields_md_enums() -> BTreeMap<String, Vec<String>> {
    let mut enums = BTreeMap::new();
    for (start, _) in FIELDS_MD.match_indices('{') {
        let before = &FIELDS_MD[..start];
        let name: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let Some(end) = FIELDS_MD[start..].find('}') else {
            continue;
        };
        let inner = &FIELDS_MD[start + 1..start + end];
        if name.is_empty()
            || inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c == ',')
        {
            continue;
        }
        enums.insert(name, inner.split(',').map(str::to_string).collect());
    }
    enums
}

/// Every named type defined in any .avsc: name -> definition.
fn avsc_named_types() -> BTreeMap<String, Json> {
    fn walk(v: &Json, out: &mut BTreeMap<String, Json>) {
        match v {
            Json::Object(m) => {
                if let (Some(Json::String(t)), Some(Json::String(n))) =
                    (m.get("type"), m.get("name"))
                {
                    if t == "record" || t == "enum" {
                        if let Some(prev) = out.insert(n.clone(), v.clone()) {
                            let strip = |mut j: Json| {
                                if let Json::Object(m) = &mut j {
                                    m.remove("namespace");
                                }
                                j
                            };
                            assert_eq!(
                                strip(prev),
                                strip(v.clone()),
                                "{n} defined differently in two files"
                            );
                        }
                    }
                }
                m.values().for_each(|c| walk(c, out));
            }
            Json::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for t in Topic::ALL {
        walk(&serde_json::from_str(t.schema_json()).unwrap(), &mut out);
    }
    out
}

#[test]
fn avsc_fields_match_fields_md() {
    let md = fields_md_records();
    let named = avsc_named_types();
    assert_eq!(
        md.len(),
        17,
        "records parsed from FIELDS.md: {:?}",
        md.keys()
    );
    for (record, fields) in &md {
        let def = named
            .get(record)
            .unwrap_or_else(|| panic!("{record} of FIELDS.md has no .avsc definition"));
        let avsc: Vec<&str> = def["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            avsc,
            fields.iter().map(String::as_str).collect::<Vec<_>>(),
            "fields of {record}"
        );
    }
    // Every record of the .avsc files is described in FIELDS.md.
    for (name, def) in &named {
        if def["type"] == "record" {
            assert!(
                md.contains_key(name),
                "{name} is in the .avsc files but not in FIELDS.md"
            );
        }
    }
    let enums = fields_md_enums();
    assert_eq!(enums.len(), 7, "{enums:?}");
    for (name, symbols) in enums {
        let def = &named[&name];
        assert_eq!(def["type"], "enum");
        let avsc: Vec<String> = def["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(avsc, symbols, "symbols of {name}");
    }
}

#[test]
fn every_avsc_is_self_contained_documented_and_namespaced() {
    for t in Topic::ALL {
        let json: Json = serde_json::from_str(t.schema_json()).unwrap();
        assert_eq!(json["name"], t.record_name());
        assert_eq!(json["namespace"], "io.twinline");
        apache_avro::Schema::parse_str(t.schema_json()).unwrap_or_else(|e| panic!("{t}: {e}"));
        let _: serde_avro_fast::Schema = t.schema_json().parse().unwrap();
        fn walk(v: &Json, where_: &str) {
            match v {
                Json::Object(m) => {
                    if matches!(m.get("type"), Some(Json::String(s)) if s == "record" || s == "enum")
                    {
                        let doc = m.get("doc").and_then(Json::as_str).unwrap_or("");
                        assert!(doc.len() > 10, "{where_}: type {} lacks a doc", m["name"]);
                    }
                    if let Some(Json::Array(fields)) = m.get("fields") {
                        for f in fields {
                            let doc = f.get("doc").and_then(Json::as_str).unwrap_or("");
                            assert!(doc.len() > 10, "{where_}: field {} lacks a doc", f["name"]);
                            // Optional fields are ["null", T] with default null.
                            if let Json::Array(branches) = &f["type"] {
                                assert_eq!(branches[0], "null", "{where_}: {}", f["name"]);
                                assert_eq!(
                                    f.get("default"),
                                    Some(&Json::Null),
                                    "{where_}: {}",
                                    f["name"]
                                );
                            }
                            // Times are timestamp-millis.
                            let name = f["name"].as_str().unwrap();
                            if [
                                "event_time",
                                "last_seen",
                                "start",
                                "end",
                                "due_date",
                                "release_time",
                                "previous_start",
                            ]
                            .contains(&name)
                            {
                                let ty = match &f["type"] {
                                    Json::Array(b) => &b[1],
                                    t => t,
                                };
                                assert_eq!(
                                    ty["logicalType"], "timestamp-millis",
                                    "{where_}: {name}"
                                );
                                assert_eq!(ty["type"], "long", "{where_}: {name}");
                            }
                        }
                    }
                    m.values().for_each(|c| walk(c, where_));
                }
                Json::Array(a) => a.iter().for_each(|c| walk(c, where_)),
                _ => {}
            }
        }
        walk(&json, t.name());
    }
}

/// One value per topic with every nested record and optional field present.
fn samples() -> Vec<Payload> {
    let src = Source {
        topic: "images".into(),
        partition: 1,
        offset: 2,
    };
    vec![
        SensorReading {
            machine_id: "M1".into(),
            sensor: SensorKind::Pressure,
            value: 5.0,
            unit: "bar".into(),
            event_time: 1,
        }
        .into(),
        Image {
            machine_id: "M1".into(),
            part_id: "P1".into(),
            media_type: "image/png".into(),
            data: vec![1, 2],
            event_time: 1,
            request_id: Some("r".into()),
        }
        .into(),
        JobEvent {
            operations: vec![Operation {
                eligible: vec![EligibleMachine {
                    machine_id: "M1".into(),
                    duration_ms: 5,
                }],
            }],
            due_date: Some(9),
            release_time: Some(3),
            operation_index: Some(0),
            machine_id: Some("M1".into()),
            ..JobEvent::new("J1", JobEventKind::Submitted, 1)
        }
        .into(),
        MachineEvent {
            job_id: Some("J".into()),
            part_id: Some("P".into()),
            cycle_time_ms: Some(4),
            fault_code: Some("E1".into()),
            detail: Some("d".into()),
            busy: Some(true),
            ..MachineEvent::new("M1", MachineEventKind::Fault, 1)
        }
        .into(),
        Defect {
            event_id: "e".into(),
            source: src.clone(),
            bbox: Some(BoundingBox {
                x: 0.1,
                y: 0.2,
                width: 0.3,
                height: 0.4,
            }),
            request_id: Some("r".into()),
            ..Default::default()
        }
        .into(),
        TwinState {
            source: src.clone(),
            previous_status: Some(MachineStatus::Running),
            temperature: Some(1.0),
            vibration: Some(2.0),
            pressure: Some(3.0),
            speed: Some(4.0),
            ..Default::default()
        }
        .into(),
        FailurePrediction {
            source: src.clone(),
            rul_hours: Some(10.0),
            model_versions: [("rul".to_string(), "1".to_string())].into(),
            top_features: vec![FeatureContribution {
                name: "f".into(),
                value: 1.0,
                contribution: 0.5,
            }],
            ..Default::default()
        }
        .into(),
        MaintenanceRequest {
            source: src.clone(),
            prediction_event_id: Some("p".into()),
            ..Default::default()
        }
        .into(),
        ScheduleChange {
            source: src.clone(),
            moves: vec![OperationMove {
                job_id: "J".into(),
                operation_index: 0,
                machine_id: "M".into(),
                start: 1,
                end: 2,
                previous_machine_id: Some("M0".into()),
                previous_start: Some(0),
            }],
            plan: vec![PlannedOperation {
                job_id: "J".into(),
                operation_index: 0,
                machine_id: "M".into(),
                start: 1,
                end: 2,
                started: true,
            }],
            ..Default::default()
        }
        .into(),
        DeadLetter {
            source: src,
            processor: Some("twin".into()),
            key: b"M1".to_vec(),
            payload: vec![0, 1],
            ..Default::default()
        }
        .into(),
    ]
}

/// Field names of every record inside an apache-avro `Value`, in order, keyed by a path.
fn record_fields(v: &Value, path: &str, out: &mut BTreeMap<String, Vec<String>>) {
    match v {
        Value::Record(fields) => {
            out.insert(
                path.to_string(),
                fields.iter().map(|(n, _)| n.clone()).collect(),
            );
            for (n, f) in fields {
                record_fields(f, &format!("{path}.{n}"), out);
            }
        }
        Value::Union(_, b) => record_fields(b, path, out),
        Value::Array(items) => items
            .iter()
            .for_each(|i| record_fields(i, &format!("{path}[]"), out)),
        _ => {}
    }
}

#[test]
fn rust_types_agree_with_avsc() {
    let samples = samples();
    assert_eq!(
        samples.iter().map(Payload::topic).collect::<Vec<_>>(),
        Topic::ALL.to_vec()
    );
    for p in samples {
        let t = p.topic();
        let schema = apache_avro::Schema::parse_str(t.schema_json()).unwrap();
        let value = match &p {
            Payload::SensorReading(r) => apache_avro::to_value(r),
            Payload::Image(r) => apache_avro::to_value(r),
            Payload::JobEvent(r) => apache_avro::to_value(r),
            Payload::MachineEvent(r) => apache_avro::to_value(r),
            Payload::Defect(r) => apache_avro::to_value(r),
            Payload::TwinState(r) => apache_avro::to_value(r),
            Payload::FailurePrediction(r) => apache_avro::to_value(r),
            Payload::MaintenanceRequest(r) => apache_avro::to_value(r),
            Payload::ScheduleChange(r) => apache_avro::to_value(r),
            Payload::DeadLetter(r) => apache_avro::to_value(r),
        }
        .unwrap();
        let resolved = value
            .clone()
            .resolve(&schema)
            .unwrap_or_else(|e| panic!("{t}: {e}"));
        assert!(
            resolved.validate(&schema),
            "{t}: Rust value does not validate"
        );
        // Field names and order of every (nested) record equal the schema's: compare what the
        // Rust type serializes with what the resolved value (built from the schema) holds.
        let (mut rust, mut avsc) = (BTreeMap::new(), BTreeMap::new());
        record_fields(&value, t.record_name(), &mut rust);
        record_fields(&resolved, t.record_name(), &mut avsc);
        assert_eq!(rust, avsc, "{t}");
        assert!(!rust.is_empty());
    }
}

#[test]
fn topic_table() {
    let names = Topic::ALL.map(Topic::name);
    assert_eq!(
        names,
        [
            "sensor-readings",
            "images",
            "job-events",
            "machine-events",
            "defects",
            "twin-state",
            "failure-predictions",
            "maintenance-requests",
            "schedule-changes",
            "dead-letters"
        ]
    );
    for (i, t) in Topic::ALL.into_iter().enumerate() {
        assert_eq!(usize::from(t.rank()), i);
        assert_eq!(Topic::from_rank(t.rank()), Some(t));
        assert_eq!(Topic::from_name(t.name()), Some(t));
        assert_eq!(t.name().parse::<Topic>().unwrap(), t);
        assert_eq!(t.subject(), format!("{}-value", t.name()));
        assert_eq!(Topic::from_subject(&t.subject()), Some(t));
        assert_eq!(
            serde_json::to_value(t).unwrap(),
            Json::String(t.name().into())
        );
        assert_eq!(
            serde_json::from_value::<Topic>(Json::String(t.name().into())).unwrap(),
            t
        );
        assert_eq!(t.is_input(), i < 4);
        assert_eq!(Topic::INPUTS.contains(&t), t.is_input());
    }
    let mut sorted = Topic::ALL;
    sorted.sort();
    assert_eq!(sorted, Topic::ALL, "Ord follows rank");
    assert_eq!(Topic::from_name("sensor_readings"), None);
    assert_eq!(Topic::from_rank(10), None);
    assert!("nope".parse::<Topic>().is_err());
}
