//! Round trips through the `Codec` (Avro wire format) and the JSON form, for every record type,
//! plus a cross-check of the fast encoder's bytes against apache-avro's.

mod common;

use std::sync::Arc;

use proptest::prelude::*;
use twinline_schemas::*;

fn codec() -> Codec {
    Codec::new(Arc::new(MemoryRegistry::new())).expect("codec over an empty registry")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// encode then decode gives the same payload; the header is magic + the topic's current id.
    #[test]
    fn codec_round_trip_every_topic(p in common::payload()) {
        let codec = codec();
        let mut wire = vec![0xAA]; // encode appends: what was there stays
        codec.encode(&p, &mut wire).unwrap();
        prop_assert_eq!(wire[0], 0xAA);
        let wire = &wire[1..];
        prop_assert_eq!(wire[0], MAGIC);
        let (id, _) = split_wire(wire).unwrap();
        prop_assert_eq!(id, codec.schema_id(p.topic()));
        let back = codec.decode(p.topic(), wire).unwrap();
        prop_assert_eq!(back, p);
    }

    /// The fast encoder writes exactly the bytes the reference implementation writes (apache-avro,
    /// which also validates the value against the `.avsc`), and the fast decoder reads the
    /// reference bytes back to the same value.
    #[test]
    fn fast_bytes_equal_apache_avro_bytes(p in common::payload()) {
        let codec = codec();
        let wire = codec.encode_to_vec(&p).unwrap();
        let schema = codec.avro_schema(p.topic());
        let reference = match &p {
            Payload::SensorReading(r) => codec::encode_with_apache_avro(schema, r),
            Payload::Image(r) => codec::encode_with_apache_avro(schema, r),
            Payload::JobEvent(r) => codec::encode_with_apache_avro(schema, r),
            Payload::MachineEvent(r) => codec::encode_with_apache_avro(schema, r),
            Payload::Defect(r) => codec::encode_with_apache_avro(schema, r),
            Payload::TwinState(r) => codec::encode_with_apache_avro(schema, r),
            Payload::FailurePrediction(r) => codec::encode_with_apache_avro(schema, r),
            Payload::MaintenanceRequest(r) => codec::encode_with_apache_avro(schema, r),
            Payload::ScheduleChange(r) => codec::encode_with_apache_avro(schema, r),
            Payload::DeadLetter(r) => codec::encode_with_apache_avro(schema, r),
        }
        .unwrap();
        // apache-avro keeps maps in a HashMap, so with 2+ entries its byte order is random;
        // ours is sorted (BTreeMap). Both are valid Avro: compare decoded values then.
        let unordered_map = matches!(&p, Payload::FailurePrediction(f) if f.model_versions.len() > 1);
        if !unordered_map {
            prop_assert_eq!(&wire[HEADER_LEN..], &reference[..]);
        }
        let mut reference_wire = wire[..HEADER_LEN].to_vec();
        reference_wire.extend_from_slice(&reference);
        prop_assert_eq!(codec.decode(p.topic(), &reference_wire).unwrap(), p);
    }

    /// JSON form round trips (bytes as base64, enums as symbols, times as integers).
    #[test]
    fn json_round_trip_every_topic(p in common::payload()) {
        let json = p.to_json();
        let back = Payload::from_json(p.topic(), json.clone()).unwrap();
        prop_assert_eq!(back, p);
    }

    /// Typed decode agrees with the Payload decode.
    #[test]
    fn typed_decode_matches(r in common::sensor_reading()) {
        let codec = codec();
        let mut wire = Vec::new();
        codec.encode_record(&r, &mut wire).unwrap();
        prop_assert_eq!(codec.decode_sensor_reading(&wire).unwrap(), r.clone());
        prop_assert_eq!(codec.decode(Topic::SensorReadings, &wire).unwrap(), Payload::SensorReading(r));
    }
}

#[test]
fn json_shape_is_documented_one() {
    let p = Payload::DeadLetter(DeadLetter {
        event_id: "dead-letters:sensor-readings/0/7/0".into(),
        source: Source {
            topic: "sensor-readings".into(),
            partition: 0,
            offset: 7,
        },
        event_time: 1_700_000_000_123,
        reason_type: DeadLetterReason::NotWireFormat,
        reason: "bad".into(),
        processor: None,
        key: b"M1".to_vec(),
        payload: vec![0xff, 0x00, 0x01],
    });
    let json = p.to_json();
    assert_eq!(json["reason_type"], "NOT_WIRE_FORMAT");
    assert_eq!(json["event_time"], 1_700_000_000_123i64);
    assert_eq!(json["key"], "TTE=");
    assert_eq!(json["payload"], "/wAB");
    assert_eq!(json["processor"], serde_json::Value::Null);
    assert_eq!(json["source"]["offset"], 7);
    let summary = p.to_json_summary();
    assert_eq!(summary["payload"], serde_json::json!({"len": 3}));
    assert_eq!(p.key(), "M1");
    assert_eq!(p.key_bytes(), b"M1");
}

#[test]
fn json_input_may_omit_optional_fields_and_gets_defaults() {
    let p = Payload::from_json(
        Topic::JobEvents,
        serde_json::json!({"job_id": "J1", "kind": "CANCELLED", "event_time": 5}),
    )
    .unwrap();
    assert_eq!(
        p,
        Payload::JobEvent(JobEvent::new("J1", JobEventKind::Cancelled, 5))
    );
    let Payload::JobEvent(j) = &p else {
        unreachable!()
    };
    assert_eq!(j.priority, 1, "Avro default of priority");

    let err = Payload::from_json(
        Topic::SensorReadings,
        serde_json::json!({"machine_id": "M1", "sensor": "HUMIDITY", "value": 1.0, "unit": "%", "event_time": 1}),
    )
    .unwrap_err();
    assert_eq!(err.topic, Topic::SensorReadings);
    assert!(err.reason.contains("HUMIDITY"), "{}", err.reason);

    let err = Payload::from_json(
        Topic::Images,
        serde_json::json!({"machine_id": "M1", "part_id": "P", "media_type": "image/png", "data": "***", "event_time": 1}),
    )
    .unwrap_err();
    assert!(err.reason.contains("base64"), "{}", err.reason);
}

#[test]
fn encoding_a_non_finite_float_works_but_json_refuses_it() {
    // Avro carries NaN; JSON cannot. Documented in the payload module.
    let codec = codec();
    let r = SensorReading {
        machine_id: "M1".into(),
        sensor: SensorKind::Speed,
        value: f64::NAN,
        unit: "rpm".into(),
        event_time: 0,
    };
    let wire = codec
        .encode_to_vec(&Payload::SensorReading(r.clone()))
        .unwrap();
    let back = codec.decode_sensor_reading(&wire).unwrap();
    assert!(back.value.is_nan());
    let json = Payload::SensorReading(r).to_json();
    assert!(Payload::from_json(Topic::SensorReadings, json).is_err());
}

#[test]
fn provenance_is_set_on_derived_and_ignored_on_inputs() {
    let src = Source {
        topic: "images".into(),
        partition: 3,
        offset: 42,
    };
    let mut d = Payload::Defect(Defect::default());
    d.set_provenance("defects:images/3/42/0".into(), src.clone());
    assert_eq!(d.event_id(), Some("defects:images/3/42/0"));
    assert_eq!(d.source(), Some(&src));

    let mut s = Payload::MachineEvent(MachineEvent::new("M1", MachineEventKind::Heartbeat, 9));
    let before = s.clone();
    s.set_provenance("x".into(), src);
    assert_eq!(s, before);
    assert_eq!(s.event_id(), None);
    assert_eq!(s.source(), None);
    assert_eq!(s.key(), "M1");
    assert_eq!(s.event_time(), 9);
    assert_eq!(
        Payload::ScheduleChange(ScheduleChange::default()).key(),
        "plant"
    );
}

#[test]
fn hand_written_sensor_codec_is_in_use() {
    // Fails when sensor-readings.avsc changes without src/sensor_fast.rs being updated (the
    // codec then silently uses the generic path, which is correct but slower).
    let c = codec();
    assert!(
        c.sensor_fast_path(),
        "canonical form now: {}",
        c.avro_schema(Topic::SensorReadings).canonical_form()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The hand-written SensorReading codec writes the same bytes as serde_avro_fast and reads
    /// them back the same.
    #[test]
    fn hand_written_sensor_codec_equals_generic(r in common::sensor_reading()) {
        let codec = codec();
        let (mut hand, mut generic) = (Vec::new(), Vec::new());
        codec.encode_record(&r, &mut hand).unwrap();
        codec.encode_record_generic(&r, &mut generic).unwrap();
        prop_assert_eq!(&hand, &generic);
        prop_assert_eq!(codec.decode_record::<SensorReading>(&hand).unwrap(), r.clone());
        prop_assert_eq!(codec.decode_record_generic::<SensorReading>(&hand).unwrap(), r);
    }

    /// On arbitrary (mostly invalid) bodies both decoders accept and refuse the same inputs,
    /// with the same value when they accept.
    #[test]
    fn hand_written_sensor_decoder_agrees_on_garbage(
        body in proptest::collection::vec(any::<u8>(), 0..40),
        r in common::sensor_reading(),
        cut in 0usize..64,
    ) {
        let codec = codec();
        let mut valid = Vec::new();
        codec.encode_record(&r, &mut valid).unwrap();
        let mut mangled = valid[..HEADER_LEN].to_vec();
        mangled.extend_from_slice(&body);
        let truncated = &valid[..valid.len().min(HEADER_LEN + cut)];
        for bytes in [&mangled[..], truncated] {
            let hand = codec.decode_record::<SensorReading>(bytes);
            let generic = codec.decode_record_generic::<SensorReading>(bytes);
            match (&hand, &generic) {
                (Ok(a), Ok(b)) => prop_assert!(a == b || (a.value.is_nan() && b.value.is_nan())),
                (Err(DecodeError::Undecodable(_)), Err(DecodeError::Undecodable(_))) => {}
                _ => prop_assert!(false, "hand {:?} vs generic {:?}", hand, generic),
            }
        }
    }
}
