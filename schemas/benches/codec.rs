//! Criterion bench: SensorReading encode/decode: the codec's hand-written fast path, the generic
//! serde_avro_fast path, and apache-avro (Value based) for reference.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use twinline_schemas::{Codec, MemoryRegistry, SensorKind, SensorReading, Topic};

fn reading(i: i64) -> SensorReading {
    SensorReading {
        machine_id: format!("M{:02}", i % 12),
        sensor: SensorKind::Vibration,
        value: 3.25 + i as f64 * 0.001,
        unit: "mm/s".to_string(),
        event_time: 1_767_225_600_000 + i * 100,
    }
}

fn bench(c: &mut Criterion) {
    let codec = Codec::new(Arc::new(MemoryRegistry::new())).expect("codec");
    let r = reading(7);
    let wire = codec
        .encode_to_vec(&twinline_schemas::Payload::SensorReading(r.clone()))
        .expect("encode");
    let schema = codec.avro_schema(Topic::SensorReadings).clone();
    let body = wire[5..].to_vec();

    let mut g = c.benchmark_group("sensor_reading");
    g.bench_function("encode/hand-written (Codec::encode_record)", |b| {
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            out.clear();
            codec
                .encode_record(black_box(&r), &mut out)
                .expect("encode");
            black_box(out.len())
        })
    });
    g.bench_function("decode/hand-written (Codec::decode_sensor_reading)", |b| {
        b.iter(|| {
            black_box(
                codec
                    .decode_sensor_reading(black_box(&wire))
                    .expect("decode"),
            )
        })
    });
    g.bench_function(
        "encode/serde_avro_fast (Codec::encode_record_generic)",
        |b| {
            let mut out = Vec::with_capacity(64);
            b.iter(|| {
                out.clear();
                codec
                    .encode_record_generic(black_box(&r), &mut out)
                    .expect("encode");
                black_box(out.len())
            })
        },
    );
    g.bench_function(
        "decode/serde_avro_fast (Codec::decode_record_generic)",
        |b| {
            b.iter(|| {
                black_box(
                    codec
                        .decode_record_generic::<SensorReading>(black_box(&wire))
                        .expect("decode"),
                )
            })
        },
    );
    g.bench_function("decode/hand-written (Codec::decode -> Payload)", |b| {
        b.iter(|| {
            black_box(
                codec
                    .decode(Topic::SensorReadings, black_box(&wire))
                    .expect("decode"),
            )
        })
    });
    g.bench_function(
        "encode/apache-avro (to_value + resolve + GenericDatumWriter)",
        |b| {
            b.iter(|| {
                black_box(
                    twinline_schemas::codec::encode_with_apache_avro(&schema, black_box(&r))
                        .expect("encode"),
                )
            })
        },
    );
    g.bench_function(
        "decode/apache-avro (GenericDatumReader + from_value)",
        |b| {
            b.iter(|| {
                let mut rd = black_box(&body[..]);
                let v = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
                    .build()
                    .and_then(|r| r.read_value(&mut rd))
                    .expect("decode");
                black_box(apache_avro::from_value::<SensorReading>(&v).expect("from_value"))
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
