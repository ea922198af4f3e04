//! Schema evolution through the registry and the codec: old writers are read with the current
//! reader (defaults applied), newer compatible writers too, incompatible versions are refused.

use std::sync::Arc;

use apache_avro::types::Value;
use twinline_schemas::*;

/// twin-state as it could have been before `previous_status` and `speed` existed.
const TWIN_STATE_V1: &str = r#"{
  "type": "record", "name": "TwinState", "namespace": "io.twinline",
  "fields": [
    {"name": "event_id", "type": "string"},
    {"name": "source", "type": {"type": "record", "name": "Source", "fields": [
      {"name": "topic", "type": "string"}, {"name": "partition", "type": "int"},
      {"name": "offset", "type": "long"}]}},
    {"name": "machine_id", "type": "string"},
    {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "status", "type": {"type": "enum", "name": "MachineStatus",
      "symbols": ["IDLE", "RUNNING", "WARNING", "ERROR", "MAINTENANCE", "OFFLINE"]}},
    {"name": "health_score", "type": "double"},
    {"name": "cycles", "type": "long"},
    {"name": "defects", "type": "long"},
    {"name": "parts_inspected", "type": "long"},
    {"name": "defect_rate", "type": "double"},
    {"name": "temperature", "type": ["null", "double"], "default": null},
    {"name": "vibration", "type": ["null", "double"], "default": null},
    {"name": "pressure", "type": ["null", "double"], "default": null},
    {"name": "last_seen", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "reason", "type": "string"}
  ]}"#;

fn v1_bytes(id: u32) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(TWIN_STATE_V1).unwrap();
    let value = Value::Record(vec![
        (
            "event_id".into(),
            Value::String("twin-state:sensor-readings/2/10/0".into()),
        ),
        (
            "source".into(),
            Value::Record(vec![
                ("topic".into(), Value::String("sensor-readings".into())),
                ("partition".into(), Value::Int(2)),
                ("offset".into(), Value::Long(10)),
            ]),
        ),
        ("machine_id".into(), Value::String("M7".into())),
        (
            "event_time".into(),
            Value::TimestampMillis(1_700_000_000_000),
        ),
        ("status".into(), Value::Enum(2, "WARNING".into())),
        ("health_score".into(), Value::Double(71.5)),
        ("cycles".into(), Value::Long(120)),
        ("defects".into(), Value::Long(3)),
        ("parts_inspected".into(), Value::Long(40)),
        ("defect_rate".into(), Value::Double(0.075)),
        (
            "temperature".into(),
            Value::Union(1, Box::new(Value::Double(64.0))),
        ),
        ("vibration".into(), Value::Union(0, Box::new(Value::Null))),
        (
            "pressure".into(),
            Value::Union(1, Box::new(Value::Double(5.5))),
        ),
        (
            "last_seen".into(),
            Value::TimestampMillis(1_700_000_000_000),
        ),
        (
            "reason".into(),
            Value::String("temperature above 60 C".into()),
        ),
    ]);
    let body = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap();
    let mut wire = vec![MAGIC];
    wire.extend_from_slice(&id.to_be_bytes());
    wire.extend_from_slice(&body);
    wire
}

fn expected_v1_as_current() -> TwinState {
    TwinState {
        event_id: "twin-state:sensor-readings/2/10/0".into(),
        source: Source {
            topic: "sensor-readings".into(),
            partition: 2,
            offset: 10,
        },
        machine_id: "M7".into(),
        event_time: 1_700_000_000_000,
        status: MachineStatus::Warning,
        previous_status: None, // default of the field v1 did not have
        health_score: 71.5,
        cycles: 120,
        defects: 3,
        parts_inspected: 40,
        defect_rate: 0.075,
        temperature: Some(64.0),
        vibration: None,
        pressure: Some(5.5),
        speed: None, // default
        last_seen: 1_700_000_000_000,
        reason: "temperature above 60 C".into(),
    }
}

#[test]
fn old_version_bytes_decode_with_defaults_applied() {
    let registry = Arc::new(MemoryRegistry::new());
    let subject = Topic::TwinState.subject();
    let v1 = registry.register(&subject, TWIN_STATE_V1).unwrap();
    let old = v1_bytes(v1);

    let codec = Codec::new(registry.clone()).unwrap();
    let current = codec.schema_id(Topic::TwinState);
    assert_ne!(current, v1, "the current schema is a new version");
    let versions = registry.versions(&subject).unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.id))
            .collect::<Vec<_>>(),
        vec![(1, v1), (2, current)]
    );
    assert_eq!(registry.latest(&subject).unwrap().unwrap().id, current);

    let decoded = codec.decode(Topic::TwinState, &old).unwrap();
    assert_eq!(decoded, Payload::TwinState(expected_v1_as_current()));
    // Second time through the cached writer schema: same answer.
    assert_eq!(codec.decode(Topic::TwinState, &old).unwrap(), decoded);

    // Trailing garbage after an old-version body is refused, as on the fast path.
    let mut longer = old.clone();
    longer.push(0);
    assert!(matches!(
        codec.decode(Topic::TwinState, &longer),
        Err(DecodeError::Undecodable(_))
    ));
}

#[test]
fn newer_compatible_writer_is_read_by_current_reader() {
    // A v3 with an extra defaulted field; the codec (still on the current schema) must skip it.
    let registry = Arc::new(MemoryRegistry::new());
    let codec = Codec::new(registry.clone()).unwrap();
    let mut v3: serde_json::Value =
        serde_json::from_str(Topic::SensorReadings.schema_json()).unwrap();
    v3["fields"].as_array_mut().unwrap().push(serde_json::json!(
        {"name": "quality", "type": "int", "default": 100, "doc": "signal quality %"}
    ));
    let v3 = v3.to_string();
    let id = registry
        .register(&Topic::SensorReadings.subject(), &v3)
        .unwrap();
    assert_ne!(id, codec.schema_id(Topic::SensorReadings));

    let schema = apache_avro::Schema::parse_str(&v3).unwrap();
    let value = Value::Record(vec![
        ("machine_id".into(), Value::String("M2".into())),
        ("sensor".into(), Value::Enum(3, "SPEED".into())),
        ("value".into(), Value::Double(1450.0)),
        ("unit".into(), Value::String("rpm".into())),
        ("event_time".into(), Value::TimestampMillis(77)),
        ("quality".into(), Value::Int(93)),
    ]);
    let mut wire = vec![MAGIC];
    wire.extend_from_slice(&id.to_be_bytes());
    wire.extend(
        apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap(),
    );
    let r = codec.decode_sensor_reading(&wire).unwrap();
    assert_eq!(
        r,
        SensorReading {
            machine_id: "M2".into(),
            sensor: SensorKind::Speed,
            value: 1450.0,
            unit: "rpm".into(),
            event_time: 77
        }
    );
}

#[test]
fn current_schema_refused_when_it_cannot_read_an_older_version() {
    // An older sensor-readings without `unit`: the current schema adds `unit` with no default,
    // so it cannot read those records and the codec must refuse to start.
    let registry = Arc::new(MemoryRegistry::new());
    let mut old: serde_json::Value =
        serde_json::from_str(Topic::SensorReadings.schema_json()).unwrap();
    old["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "unit");
    registry
        .register(&Topic::SensorReadings.subject(), &old.to_string())
        .unwrap();
    match Codec::new(registry) {
        Err(SchemaError::Incompatible { subject, reason }) => {
            assert_eq!(subject, "sensor-readings-value");
            assert!(reason.contains("unit"), "reason names the field: {reason}");
            assert!(
                reason.contains("version 1"),
                "reason names the version: {reason}"
            );
        }
        other => panic!("expected Incompatible, got {other:?}"),
    }
}

#[test]
fn new_required_field_without_default_is_refused() {
    let registry = MemoryRegistry::new();
    let subject = Topic::MachineEvents.subject();
    let v1 = registry
        .register(&subject, Topic::MachineEvents.schema_json())
        .unwrap();
    let mut v2: serde_json::Value =
        serde_json::from_str(Topic::MachineEvents.schema_json()).unwrap();
    v2["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "shift", "type": "string"}));
    let err = registry.register(&subject, &v2.to_string()).unwrap_err();
    assert!(matches!(err, SchemaError::Incompatible { .. }), "{err}");
    assert!(err.to_string().contains("shift"), "{err}");
    // Nothing was registered.
    assert_eq!(registry.versions(&subject).unwrap().len(), 1);
    assert_eq!(registry.latest(&subject).unwrap().unwrap().id, v1);

    // The same field with a default is fine.
    v2["fields"].as_array_mut().unwrap().last_mut().unwrap()["default"] = serde_json::json!("day");
    let v2_id = registry.register(&subject, &v2.to_string()).unwrap();
    assert!(v2_id > v1);

    // Removing an enum symbol that old data may carry is refused too (partial compatibility).
    let mut v3 = v2.clone();
    let kind = v3["fields"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["name"] == "kind")
        .unwrap();
    kind["type"]["symbols"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s != "HEARTBEAT");
    let err = registry.register(&subject, &v3.to_string()).unwrap_err();
    assert!(matches!(err, SchemaError::Incompatible { .. }), "{err}");
}
