//! Generation throughput of the simulator on one core: events/s and simulated-time speed-up.
//!
//! Run: `cargo bench -p twinline-sim --bench throughput`. Prints one table row per scenario with
//! the target beside it (> 2M sensor readings/s without images, >= 10x real time for 50 machines).

use std::time::Instant;

use twinline_schemas::Payload;
use twinline_sim::{SimConfig, Simulator};

struct Row {
    name: &'static str,
    events: u64,
    readings: u64,
    images: u64,
    secs: f64,
    cpu_secs: f64,
    sim_secs: f64,
}

/// CPU time of this thread in seconds (Linux `schedstat`), so that other processes on a shared
/// machine do not inflate the figure; falls back to `None` elsewhere.
fn thread_cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// The floor: building and dropping the same number of `SensorReading` payloads directly.
fn baseline(n: u64) -> Row {
    use twinline_schemas::{SensorKind, SensorReading};
    let c0 = thread_cpu_secs();
    let t0 = Instant::now();
    let id = String::from("M001");
    let mut buf = Vec::with_capacity(8192);
    let mut sum = 0.0;
    for i in 0..n {
        let sensor = SensorKind::ALL[(i % 4) as usize];
        buf.push(Payload::SensorReading(SensorReading {
            machine_id: id.clone(),
            sensor,
            value: i as f64,
            unit: sensor.default_unit().to_string(),
            event_time: i as i64,
        }));
        if buf.len() == 8192 {
            sum += buf.len() as f64;
            buf.clear();
        }
    }
    std::hint::black_box(sum);
    let secs = t0.elapsed().as_secs_f64();
    Row {
        name: "baseline: build+drop readings only",
        events: n,
        readings: n,
        images: 0,
        secs,
        cpu_secs: c0
            .and_then(|c| Some(thread_cpu_secs()? - c))
            .unwrap_or(secs),
        sim_secs: 0.0,
    }
}

fn measure(name: &'static str, cfg: SimConfig) -> Row {
    let sim_secs = cfg.duration_ms as f64 / 1000.0;
    let c0 = thread_cpu_secs();
    let t0 = Instant::now();
    let mut sim = Simulator::new(cfg).expect("valid config");
    let mut buf = Vec::with_capacity(8192);
    let (mut events, mut readings, mut images) = (0u64, 0u64, 0u64);
    while sim.next_batch(8192, &mut buf) {
        events += buf.len() as u64;
        for p in &buf {
            match p {
                Payload::SensorReading(_) => readings += 1,
                Payload::Image(_) => images += 1,
                _ => {}
            }
        }
        // Dropping the payloads is part of the cost a consumer pays anyway.
        buf.clear();
    }
    let secs = t0.elapsed().as_secs_f64();
    Row {
        name,
        events,
        readings,
        images,
        secs,
        cpu_secs: c0
            .and_then(|c| Some(thread_cpu_secs()? - c))
            .unwrap_or(secs),
        sim_secs,
    }
}

fn main() {
    let hour = 3_600_000;
    let rows = [
        baseline(4_000_000),
        measure(
            "setup only (image pool), 50 machines",
            SimConfig {
                machines: 50,
                duration_ms: 1,
                ..SimConfig::default()
            },
        ),
        measure(
            "50 machines, 6 h, no images",
            SimConfig {
                machines: 50,
                duration_ms: 6 * hour,
                image_every_part: false,
                ..SimConfig::default()
            },
        ),
        measure(
            "50 machines, 6 h, images (pool)",
            SimConfig {
                machines: 50,
                duration_ms: 6 * hour,
                ..SimConfig::default()
            },
        ),
        measure(
            "50 machines, 1 h, images (fresh PNG)",
            SimConfig {
                machines: 50,
                duration_ms: hour,
                image_pool_size: 0,
                ..SimConfig::default()
            },
        ),
        measure(
            "500 machines, 1 h, images (pool)",
            SimConfig {
                machines: 500,
                duration_ms: hour,
                ..SimConfig::default()
            },
        ),
    ];
    println!(
        "{:<40} {:>10} {:>10} {:>7} {:>7} {:>7} {:>12} {:>12} {:>10}",
        "scenario",
        "events",
        "readings",
        "images",
        "wall s",
        "cpu s",
        "events/cpu-s",
        "readings/cpu-s",
        "x realtime"
    );
    for r in &rows {
        println!(
            "{:<40} {:>10} {:>10} {:>7} {:>7.3} {:>7.3} {:>12.0} {:>12.0} {:>10.0}",
            r.name,
            r.events,
            r.readings,
            r.images,
            r.secs,
            r.cpu_secs,
            r.events as f64 / r.cpu_secs,
            r.readings as f64 / r.cpu_secs,
            r.sim_secs / r.cpu_secs
        );
    }
    println!("targets: > 2,000,000 readings/s without images; >= 10x real time for 50 machines");
    println!(
        "x realtime = simulated seconds per CPU second; size_of::<Payload>() = {} bytes",
        std::mem::size_of::<Payload>()
    );
}
