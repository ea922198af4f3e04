//! Benchmarks of the views' hot path and of a point query.
//!
//! `apply_sensor_readings`: 1M seeded sensor readings applied in batches of 1024 (the
//! runtime's batch size); throughput is reported in events/s. The target is well above
//! 500k events/s, i.e. well under 2 µs per event for the whole pipeline and < 200 ns here.
//! `twin_state_point_lookup`: `SELECT ... FROM twin_state WHERE machine_id = ...` over 100
//! machines, end to end through the `QueryEngine` (parse, plan, snapshot, execute).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinline_queries::{QueryConfig, QueryEngine, ViewConfig, ViewEvent, Views};
use twinline_schemas::{
    MachineStatus, Payload, SensorKind, SensorReading, Source, Topic, TwinState,
};

const EVENTS: usize = 1_000_000;
const BATCH: usize = 1024;

fn readings() -> Vec<Payload> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    (0..EVENTS)
        .map(|i| {
            let kind = SensorKind::ALL[i % 4];
            Payload::SensorReading(SensorReading {
                machine_id: format!("m-{:03}", rng.gen_range(0..100)),
                sensor: kind,
                value: rng.gen_range(0.0..100.0),
                unit: kind.default_unit().to_string(),
                event_time: 1_700_000_000_000 + i as i64,
            })
        })
        .collect()
}

fn bench_apply(c: &mut Criterion) {
    let payloads = readings();
    let events: Vec<ViewEvent<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| ViewEvent {
            topic: Topic::SensorReadings,
            partition: (i % 8) as u32,
            offset: i as u64,
            payload: p,
        })
        .collect();
    let mut group = c.benchmark_group("views");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.bench_function("apply_sensor_readings_1M_batches_1024", |b| {
        b.iter_batched(
            // Retention above 1M so the measurement is appends, not drops; default batch size.
            || {
                Views::new(ViewConfig {
                    sensor_readings_max_rows: 2 * EVENTS,
                    ..ViewConfig::default()
                })
            },
            |views| {
                for chunk in events.chunks(BATCH) {
                    views.apply(chunk);
                }
                views
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn bench_point_lookup(c: &mut Criterion) {
    let views = Arc::new(Views::new(ViewConfig::default()));
    let states: Vec<Payload> = (0..100)
        .map(|m| {
            Payload::TwinState(TwinState {
                event_id: format!("twin-state:sensor-readings/0/{m}/0"),
                source: Source {
                    topic: "sensor-readings".into(),
                    partition: 0,
                    offset: m,
                },
                machine_id: format!("m-{m:03}"),
                event_time: 1_700_000_000_000 + m,
                status: MachineStatus::Running,
                health_score: 90.0,
                last_seen: 1_700_000_000_000 + m,
                ..TwinState::default()
            })
        })
        .collect();
    let events: Vec<ViewEvent<'_>> = states
        .iter()
        .enumerate()
        .map(|(i, p)| ViewEvent {
            topic: Topic::TwinState,
            partition: 0,
            offset: i as u64,
            payload: p,
        })
        .collect();
    views.apply(&events);
    let engine = QueryEngine::new(views, QueryConfig::default()).expect("engine");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    c.bench_function("twin_state_point_lookup", |b| {
        b.iter(|| {
            let r = rt
                .block_on(engine.query("SELECT machine_id, status, health_score FROM twin_state WHERE machine_id = 'm-042'", None))
                .expect("query");
            assert_eq!(r.row_count, 1);
        })
    });
}

criterion_group!(benches, bench_apply, bench_point_lookup);
criterion_main!(benches);
