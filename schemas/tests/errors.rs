//! Decode errors: every way a log value can be bad maps to the right error and dead-letter class.

use std::sync::Arc;

use twinline_schemas::*;

fn setup() -> (Arc<MemoryRegistry>, Codec, Vec<u8>) {
    let registry = Arc::new(MemoryRegistry::new());
    let codec = Codec::new(registry.clone()).unwrap();
    let wire = codec
        .encode_to_vec(&Payload::SensorReading(SensorReading {
            machine_id: "M1".into(),
            sensor: SensorKind::Temperature,
            value: 21.5,
            unit: "C".into(),
            event_time: 1_000,
        }))
        .unwrap();
    (registry, codec, wire)
}

#[test]
fn not_wire_format() {
    let (_, codec, wire) = setup();
    for bad in [
        &b""[..],
        &[0u8, 0, 0, 1][..],
        &b"{\"machine_id\":\"M1\"}"[..],
        &[1u8, 0, 0, 0, 1, 2][..],
    ] {
        let err = codec.decode(Topic::SensorReadings, bad).unwrap_err();
        assert_eq!(err, DecodeError::NotWireFormat, "{bad:?}");
        assert_eq!(err.reason_type(), DeadLetterReason::NotWireFormat);
    }
    // The magic byte alone is not enough either: flip it on a valid value.
    let mut flipped = wire.clone();
    flipped[0] = 1;
    assert_eq!(
        codec.decode(Topic::SensorReadings, &flipped).unwrap_err(),
        DecodeError::NotWireFormat
    );
}

#[test]
fn unknown_schema_id() {
    let (_, codec, wire) = setup();
    let mut bad = wire.clone();
    bad[1..5].copy_from_slice(&9_999u32.to_be_bytes());
    let err = codec.decode(Topic::SensorReadings, &bad).unwrap_err();
    assert_eq!(err, DecodeError::UnknownSchemaId(9_999));
    assert_eq!(err.reason_type(), DeadLetterReason::UnknownSchema);
}

#[test]
fn wrong_subject() {
    let (registry, codec, wire) = setup();
    // A sensor reading read as if it were on the images topic.
    let err = codec.decode(Topic::Images, &wire).unwrap_err();
    assert_eq!(
        err,
        DecodeError::WrongSubject {
            id: codec.schema_id(Topic::SensorReadings),
            expected_topic: Topic::Images
        }
    );
    assert_eq!(err.reason_type(), DeadLetterReason::UnknownSchema);
    // An id of a subject that is no topic's.
    let other = registry
        .register("something-else-value", r#""string""#)
        .unwrap();
    let mut bad = wire.clone();
    bad[1..5].copy_from_slice(&other.to_be_bytes());
    assert_eq!(
        codec.decode(Topic::SensorReadings, &bad).unwrap_err(),
        DecodeError::WrongSubject {
            id: other,
            expected_topic: Topic::SensorReadings
        }
    );
}

#[test]
fn undecodable_bodies() {
    let (_, codec, wire) = setup();
    let mut cases: Vec<Vec<u8>> = Vec::new();
    // Truncated at every length between header and full value.
    for n in 5..wire.len() {
        cases.push(wire[..n].to_vec());
    }
    // Trailing byte.
    let mut trailing = wire.clone();
    trailing.push(0);
    cases.push(trailing);
    // Enum index out of range (the `sensor` field follows the 1-byte length + "M1").
    let mut bad_enum = wire.clone();
    bad_enum[5 + 3] = 0x7e; // zigzag 63
    cases.push(bad_enum);
    // Invalid UTF-8 in machine_id.
    let mut bad_utf8 = wire.clone();
    bad_utf8[5 + 1] = 0xff;
    cases.push(bad_utf8);
    // Huge string length.
    let mut huge = wire[..5].to_vec();
    huge.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
    cases.push(huge);
    for bad in cases {
        let err = codec.decode(Topic::SensorReadings, &bad).unwrap_err();
        assert!(
            matches!(err, DecodeError::Undecodable(_)),
            "{bad:?}: {err:?}"
        );
        assert_eq!(err.reason_type(), DeadLetterReason::Undecodable);
    }
}

#[test]
fn garbage_never_panics() {
    // Deterministic pseudo-random bodies behind a valid header, for every topic.
    let (_, codec, _) = setup();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for topic in Topic::ALL {
        for len in 0..200usize {
            let mut bytes = vec![MAGIC];
            bytes.extend_from_slice(&codec.schema_id(topic).to_be_bytes());
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(x as u8);
            }
            let _ = codec.decode(topic, &bytes);
        }
    }
}
