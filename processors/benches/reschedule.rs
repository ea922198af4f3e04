//! Rescheduling latency: time from a maintenance request (or its close) reaching the scheduler
//! to the new plan being emitted, with 200 open jobs on 20 machines; prints a table.
//!
//! `cargo bench -p twinline-processors --bench reschedule [-- --jobs 200 --machines 20 --ops 5
//!  --requests 40 --iterations N --threads N]`
//!
//! The plant: every job has `--ops` operations, each eligible on 1 to 3 machines (seeded), 1 to 10
//! minutes long. All jobs are submitted and planned first; then each request opens CRITICAL on a
//! machine (the machine is blocked from now for 2 h, its planned work must move) and closes one
//! simulated minute later. Each open and each close is one measured replan.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinline_processors::scheduler::{SchedulerConfig, SchedulerProcessor};
use twinline_processors::{Emitter, Event, Position, Processor};
use twinline_schemas::{
    EligibleMachine, JobEvent, JobEventKind, MaintenanceAction, MaintenanceRequest, Operation,
    Payload, Urgency,
};

const T0: i64 = 1_790_000_000_000;
const MIN: i64 = 60_000;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn feed(p: &mut SchedulerProcessor, payload: &Payload, offset: &mut u64) -> (f64, usize, usize) {
    let key = payload.key().to_string();
    let ev = Event {
        position: Position {
            topic: payload.topic(),
            partition: 0,
            offset: *offset,
            origin: *offset,
        },
        event_time: payload.event_time(),
        key: &key,
        payload,
    };
    *offset += 1;
    let mut out = Emitter::new();
    let t = Instant::now();
    p.on_event(&ev, &mut out).expect("processed");
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let moves = out
        .as_slice()
        .iter()
        .map(|e| match &e.payload {
            // Operations that changed machine (time shifts are counted apart).
            Payload::ScheduleChange(c) => c
                .moves
                .iter()
                .filter(|m| m.previous_machine_id.as_deref() != Some(m.machine_id.as_str()))
                .count(),
            _ => 0,
        })
        .sum();
    (ms, out.len(), moves)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let jobs = arg("--jobs", 200) as usize;
    let machines = arg("--machines", 20) as usize;
    let ops = arg("--ops", 5) as usize;
    let requests = arg("--requests", 40) as usize;
    let defaults = SchedulerConfig::default();
    let cfg = SchedulerConfig {
        max_iterations: arg("--iterations", defaults.max_iterations),
        threads: arg("--threads", defaults.threads as u64) as usize,
        ..defaults
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut p = SchedulerProcessor::new(cfg.clone()).expect("config");
    let mut offset = 0;
    let mid = |m: usize| format!("M{:03}", m + 1);
    for j in 0..jobs {
        let mut e = JobEvent::new(format!("J{j:05}"), JobEventKind::Submitted, T0);
        e.release_time = Some(T0);
        e.due_date = Some(T0 + 8 * 60 * MIN);
        e.priority = rng.gen_range(1..=5);
        e.operations = (0..ops)
            .map(|_| {
                let n = rng.gen_range(1..=3usize).min(machines);
                let first = rng.gen_range(0..machines);
                Operation {
                    eligible: (0..n)
                        .map(|k| EligibleMachine {
                            machine_id: mid((first + k * 7) % machines),
                            duration_ms: rng.gen_range(1..=10) * MIN,
                        })
                        .collect(),
                }
            })
            .collect();
        feed(&mut p, &Payload::JobEvent(e), &mut offset);
    }
    // Plan everything once (the routine replan after the submissions), then measure requests.
    let mut setup = Emitter::new();
    let t = Instant::now();
    p.on_watermark(T0 + 5 * MIN, &mut setup).expect("plan");
    let setup_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(p.open_jobs(), jobs);
    let planned = p.plan().len();
    let mut lat = Vec::new();
    let mut moved = Vec::new();
    let mut emitted = 0;
    for r in 0..requests {
        let t = T0 + (6 + 2 * r as i64) * MIN;
        let m = mid(rng.gen_range(0..machines));
        for (action, at) in [
            (MaintenanceAction::Open, t),
            (MaintenanceAction::Close, t + MIN),
        ] {
            let req = Payload::MaintenanceRequest(MaintenanceRequest {
                machine_id: m.clone(),
                event_time: at,
                request_id: format!("R{r}"),
                action,
                urgency: Urgency::Critical,
                ..Default::default()
            });
            let (ms, n, mv) = feed(&mut p, &req, &mut offset);
            lat.push(ms);
            emitted += n;
            if action == MaintenanceAction::Open {
                moved.push(mv);
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    let mean_moves = moved.iter().sum::<usize>() as f64 / moved.len().max(1) as f64;
    println!("# reschedule latency: {jobs} open jobs x {ops} operations on {machines} machines ({planned} planned operations)");
    println!(
        "# scheduler: max_iterations {} per replan, threads {}, objective makespan; initial plan {setup_ms:.1} ms",
        cfg.max_iterations, cfg.threads
    );
    println!("| replans | changes emitted | operations moved to another machine per request (mean) | mean ms | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {emitted} | {mean_moves:.1} | {mean:.1} | {:.1} | {:.1} | {:.1} |",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
}
