//! Throughput of the twin processor on the hot path: sensor readings over 50 machines, fed with a
//! watermark per event like the runtime does. Seeded data; reports events/s.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use twinline_processors::twin::TwinProcessor;
use twinline_processors::{Emitter, Event, Position, Processor};
use twinline_schemas::{Payload, SensorKind, SensorReading, Topic};

const MACHINES: usize = 50;
const EVENTS: usize = 100_000;

/// Seeded noise in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// Steady noisy readings, round-robin over machines and sensors, 1 ms apart per machine round.
fn readings(start: i64, n: usize, rng: &mut Lcg) -> Vec<Payload> {
    let sensors = [
        (SensorKind::Temperature, 60.0, 0.5),
        (SensorKind::Vibration, 2.0, 0.1),
        (SensorKind::Pressure, 6.0, 0.05),
        (SensorKind::Speed, 1500.0, 5.0),
    ];
    (0..n)
        .map(|i| {
            let m = i % MACHINES;
            let (sensor, base, sd) = sensors[(i / MACHINES) % 4];
            Payload::SensorReading(SensorReading {
                machine_id: format!("machine-{m:02}"),
                sensor,
                value: base + sd * rng.next(),
                unit: String::new(),
                event_time: start + (i / MACHINES) as i64,
            })
        })
        .collect()
}

fn run(
    twin: &mut TwinProcessor,
    events: &[Payload],
    watermark: &mut i64,
    out: &mut Emitter,
    offset: &mut u64,
) {
    for p in events {
        let Payload::SensorReading(r) = p else {
            unreachable!()
        };
        let ev = Event {
            position: Position {
                topic: Topic::SensorReadings,
                partition: 0,
                offset: *offset,
                origin: *offset,
            },
            event_time: r.event_time,
            key: &r.machine_id,
            payload: p,
        };
        *offset += 1;
        twin.on_event(&ev, out).expect("valid reading");
        if r.event_time > *watermark {
            *watermark = r.event_time;
            twin.on_watermark(r.event_time, out).expect("watermark");
        }
    }
    out.drain().for_each(|e| {
        black_box(e);
    });
}

fn bench_readings(c: &mut Criterion) {
    let mut rng = Lcg(0x7717);
    // past every baseline (300 per sensor per machine), so the bench measures the steady state
    let warmup = readings(0, MACHINES * 4 * 400, &mut rng);
    let t0 = (MACHINES * 4 * 400 / MACHINES) as i64;
    let events = readings(t0, EVENTS, &mut rng);

    let mut twin = TwinProcessor::default();
    let mut out = Emitter::new();
    let (mut watermark, mut offset) = (i64::MIN, 0u64);
    run(&mut twin, &warmup, &mut watermark, &mut out, &mut offset);

    let mut group = c.benchmark_group("twin");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("sensor_readings_50_machines", |b| {
        b.iter(|| {
            // replaying the same window keeps event time constant: the watermark does not advance,
            // so add a cheap watermark call per event to keep the runtime's cost in the number
            for p in &events {
                let Payload::SensorReading(r) = p else {
                    unreachable!()
                };
                let ev = Event {
                    position: Position {
                        topic: Topic::SensorReadings,
                        partition: 0,
                        offset,
                        origin: offset,
                    },
                    event_time: r.event_time,
                    key: &r.machine_id,
                    payload: p,
                };
                offset += 1;
                twin.on_event(&ev, &mut out).expect("valid reading");
                twin.on_watermark(black_box(r.event_time), &mut out)
                    .expect("watermark");
            }
            black_box(out.len());
            out.drain().for_each(|e| {
                black_box(e);
            });
        })
    });
    group.finish();
}

criterion_group!(benches, bench_readings);
criterion_main!(benches);
