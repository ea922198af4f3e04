//! `twinline bench`: the embedded pipeline's figures, printed as a table.
//!
//! - end to end: simulated sensor-heavy events appended, decoded, run through the twin, derived
//!   events appended, views updated; events/s overall and per core (2 processing threads);
//! - replay: re-deriving the same log into a fresh directory, events/s;
//! - freshness: events appended at a fixed rate; wall time from append until the sensor view
//!   holds them, p50/p99.
//!
//! - vision (`--vision`, see `bench_vision`): the defect model, bare ONNX Runtime loop vs the
//!   vision processor, images/s and latency per batch size.
//!
//! - history (`--history`): Parquet history write (flush) and compaction throughput, rows/s
//!   and MB/s (`twinline_sinks::history::bench`, also `cargo bench -p twinline-sinks`).
//!
//! - distributed (`--kafka`, see `bench_kafka`): one instance on a real broker against a bare
//!   rdkafka consumer, event-to-view freshness, recovery after kill -9 and a broker restart.
//!
//! - read API (see `bench_api`): `GET /api/v1/digital-twin/state` requests/s and p99 at 200
//!   connections with `wrk`, and WebSocket fan-out, both against a live plant.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use twinline_schemas::{Payload, Topic};

use crate::config::Config;
use crate::embedded::{EmbeddedPipeline, StartOptions};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Scratch directory (default: a temporary one).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Machines in the simulated plant.
    #[arg(long, default_value_t = 50)]
    pub machines: usize,
    /// Approximate number of input events for the throughput runs.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Freshness run: events per second offered.
    #[arg(long, default_value_t = 100_000)]
    pub fresh_rate: u64,
    /// Freshness run: seconds.
    #[arg(long, default_value_t = 5)]
    pub fresh_secs: u64,
    /// Skip the read-API figures (HTTP load and WebSocket fan-out).
    #[arg(long)]
    pub no_api: bool,
    /// Read API: machines in the live plant behind the API.
    #[arg(long, default_value_t = 200)]
    pub api_machines: usize,
    /// Read API: seconds of HTTP load.
    #[arg(long, default_value_t = 10)]
    pub api_secs: u64,
    /// Read API: concurrent HTTP connections.
    #[arg(long, default_value_t = 200)]
    pub api_connections: usize,
    /// WebSocket fan-out: subscriber counts tried in turn, until one fails to hold.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "250,500,1000,2000,4000,8000"
    )]
    pub ws_steps: Vec<usize>,
    /// WebSocket fan-out: pushes measured per subscriber at each step.
    #[arg(long, default_value_t = 3)]
    pub ws_pushes: usize,
    /// Read API: plant-seconds per wall second of the live plant behind the API (so every 2 s
    /// push has changes to carry).
    #[arg(long, default_value_t = 30.0)]
    pub api_speed: f64,
    /// Only the vision figures (defect model: bare ONNX Runtime loop vs the vision processor).
    #[arg(long)]
    pub vision: bool,
    /// Vision: seconds measured per cell.
    #[arg(long, default_value_t = 3.0)]
    pub vision_seconds: f64,
    /// Vision: batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,8,16,32,64,128")]
    pub vision_batches: Vec<usize>,
    /// Vision: ONNX Runtime intra-op thread counts (the pipeline uses 1 per partition task).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub vision_threads: Vec<usize>,
    /// Only the history figures (Parquet flush and compaction throughput).
    #[arg(long)]
    pub history: bool,
    /// History: sensor readings written (50 machines, 16 flushes, then one compaction).
    #[arg(long, default_value_t = 4_000_000)]
    pub history_rows: usize,
    /// Only the distributed-mode figures, on this Kafka (bootstrap servers): throughput against
    /// a bare rdkafka consumer, freshness, recovery after kill -9 (see `bench_kafka`). Uses
    /// `--machines`, `--events`, `--fresh-rate`, `--fresh-secs`.
    #[arg(long)]
    pub kafka: Option<String>,
    /// With `--kafka`: the schema registry (Confluent-compatible, e.g. `twinline registry`).
    #[arg(long, env = "TWINLINE_SCHEMA_REGISTRY")]
    pub schema_registry: Option<String>,
    /// With `--kafka`: a script that stops and starts the broker (docker/local/restart-kafka);
    /// adds the recovery time after a broker restart.
    #[arg(long)]
    pub restart_broker: Option<PathBuf>,
}

pub fn run(mut cfg: Config, args: BenchArgs) -> Result<()> {
    if args.vision {
        return super::bench_vision::run(
            &cfg,
            &super::bench_vision::VisionBenchArgs {
                seconds: args.vision_seconds,
                batches: args.vision_batches.clone(),
                threads: args.vision_threads.clone(),
            },
        );
    }
    if let Some(brokers) = &args.kafka {
        let Some(registry) = args.schema_registry.clone() else {
            anyhow::bail!("bench --kafka needs --schema-registry (for example `twinline registry --kafka {brokers}`)");
        };
        let tmp = tempfile_dir(args.dir.clone())?;
        super::bench_kafka::run(
            &cfg,
            &super::bench_kafka::KafkaBenchArgs {
                brokers: brokers.clone(),
                schema_registry: registry,
                machines: args.machines,
                events: args.events,
                fresh_rate: args.fresh_rate,
                fresh_secs: args.fresh_secs,
                restart_broker: args.restart_broker.clone(),
                dir: tmp.clone(),
            },
        )?;
        if args.dir.is_none() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        return Ok(());
    }
    if args.history {
        let tmp = tempfile_dir(args.dir.clone())?;
        let t = twinline_sinks::history::bench::throughput(&tmp, args.history_rows, 50, 16)
            .context("history benchmark")?;
        print!("{}", t.table());
        if args.dir.is_none() {
            std::fs::remove_dir_all(&tmp).ok();
        }
        return Ok(());
    }
    let tmp = tempfile_dir(args.dir.clone())?;
    cfg.log.fsync = crate::config::FsyncMode::Interval;
    // Generate the input once, in memory: sensor readings dominate, as in a real plant.
    let mut sim_cfg = cfg.simulator.clone();
    sim_cfg.machines = args.machines;
    // readings per event-second ~= machines * 4 sensors / interval
    let per_sec =
        (args.machines as f64 * 4.0 * 1000.0 / sim_cfg.sensor_interval_ms.max(1) as f64).max(1.0);
    sim_cfg.duration_ms = ((args.events as f64 / per_sec) * 1000.0) as u64;
    let mut sim = twinline_sim::Simulator::new(sim_cfg).context("simulator config")?;
    let mut events: Vec<Payload> = Vec::with_capacity(args.events as usize + 1024);
    while sim.next_batch(8192, &mut events) {}
    let sensors = events
        .iter()
        .filter(|e| e.topic() == Topic::SensorReadings)
        .count();
    eprintln!(
        "generated {} events ({} sensor readings)",
        events.len(),
        sensors
    );

    // End to end. CPU time is measured from here, so input generation is not counted.
    let cpu_before = process_cpu_seconds();
    let live = tmp.join("live");
    let started = Instant::now();
    let pipeline = start_fed_by_bench(&cfg, &live)?;
    {
        let mut ing = pipeline.ingestor.lock();
        for chunk in events.chunks(4096) {
            ing.ingest(chunk)?;
        }
    }
    let appended = started.elapsed();
    let total = events.len() as u64;
    wait_until(
        || pipeline.metrics_in_total() >= total,
        Duration::from_secs(600),
    );
    let processed = started.elapsed();
    let viewable = events.iter().filter(|e| e.topic() != Topic::Images).count() as u64;
    wait_until(
        || pipeline.view_applied_inputs() >= viewable,
        Duration::from_secs(600),
    );
    let viewed = started.elapsed();
    let cpu = process_cpu_seconds() - cpu_before;
    pipeline.shutdown()?;
    let e2e = total as f64 / viewed.as_secs_f64();

    // Replay.
    let rep = tmp.join("replay");
    let stats = super::replay::replay(&cfg, &live, &rep, None, false)?;
    let replay_rate = stats.input_records as f64 / (stats.copy + stats.derive).as_secs_f64();

    // Freshness.
    let fresh_dir = tmp.join("fresh");
    let (p50, p99, n) = freshness(&cfg, &fresh_dir, &events, args.fresh_rate, args.fresh_secs)?;

    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| input events | {total} ({sensors} sensor readings, {} machines) |",
        args.machines
    );
    println!(
        "| append only (encode + log append) | {:.0} events/s |",
        total as f64 / appended.as_secs_f64()
    );
    println!(
        "| end to end, processed (append, decode, twin, derived append) | {:.0} events/s |",
        total as f64 / processed.as_secs_f64()
    );
    println!("| end to end incl. view update | {e2e:.0} events/s |");
    println!(
        "| per core (process CPU time {:.2}s) | {:.0} events/s per CPU-second |",
        cpu,
        total as f64 / cpu.max(1e-9)
    );
    println!(
        "| replay (copy + re-derive) | {replay_rate:.0} events/s ({:.2}s copy, {:.2}s derive) |",
        stats.copy.as_secs_f64(),
        stats.derive.as_secs_f64()
    );
    println!(
        "| replay derive only | {:.0} events/s |",
        stats.input_records as f64 / stats.derive.as_secs_f64()
    );
    println!(
        "| event-to-view freshness at {} events/s ({n} batches) | p50 {:.2} ms, p99 {:.2} ms |",
        args.fresh_rate, p50, p99
    );
    if !args.no_api {
        let api = super::bench_api::measure(
            &cfg,
            &tmp.join("api"),
            &super::bench_api::ApiBenchOptions {
                machines: args.api_machines,
                http_secs: args.api_secs,
                connections: args.api_connections,
                ws_steps: args.ws_steps.clone(),
                ws_pushes: args.ws_pushes,
                speed: args.api_speed,
            },
        )?;
        print_api(&api);
    }
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}

fn print_api(api: &super::bench_api::ApiFigures) {
    match &api.http {
        Ok(h) => println!(
            "| GET /api/v1/digital-twin/state, {} machines at {}x, {} connections (wrk) | {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {} non-2xx{} |",
            api.machines,
            api.speed,
            h.connections,
            h.requests_per_sec,
            h.p50_ms,
            h.p99_ms,
            h.non_2xx,
            if h.errors.is_empty() { String::new() } else { format!(", {}", h.errors) }
        ),
        Err(e) => println!("| GET /api/v1/digital-twin/state | not measured: {e} |"),
    }
    for s in &api.ws {
        println!(
            "| WebSocket fan-out, {} subscribers ({} connected) | {} pushes, lag p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, {} dropped, {} starved: {} |",
            s.subscribers,
            s.connected,
            s.pushes,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.dropped,
            s.starved,
            if s.holds() { "holds" } else { "does not hold" }
        );
    }
    let best = api
        .ws
        .iter()
        .filter(|s| s.holds())
        .map(|s| s.subscribers)
        .max();
    match best {
        Some(n) => println!("| WebSocket subscribers holding 2 s pushes with p99 lag < 100 ms | {n} (largest step tried that held) |"),
        None => println!("| WebSocket subscribers holding 2 s pushes with p99 lag < 100 ms | none of the steps held |"),
    }
}

/// A pipeline with views and no simulator: the bench appends the input itself.
fn start_fed_by_bench(cfg: &Config, dir: &std::path::Path) -> Result<EmbeddedPipeline> {
    EmbeddedPipeline::start(
        cfg,
        dir,
        StartOptions {
            simulate: None,
            until_caught_up: false,
            factory: None,
            views: true,
            history: true,
        },
    )
}

fn tempfile_dir(dir: Option<PathBuf>) -> Result<PathBuf> {
    let d = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("twinline-bench-{}", std::process::id()))
    });
    if d.exists() {
        std::fs::remove_dir_all(&d)?;
    }
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Polls `f` every 200 µs until it holds (true) or `limit` passed (false).
pub(super) fn wait_until(mut f: impl FnMut() -> bool, limit: Duration) -> bool {
    let t = Instant::now();
    while !f() {
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

/// User + system CPU seconds of this process so far.
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Offer sensor readings at `rate`/s in 10 ms batches; for each batch measure the wall time until
/// the views have applied it.
fn freshness(
    cfg: &Config,
    dir: &std::path::Path,
    events: &[Payload],
    rate: u64,
    secs: u64,
) -> Result<(f64, f64, usize)> {
    let pipeline = start_fed_by_bench(cfg, dir)?;
    let per_batch = (rate / 100).max(1) as usize;
    let mut lat = Vec::new();
    let mut sent = 0u64; // records the views will hold (images have no view)
    let start = Instant::now();
    for (i, chunk) in events
        .chunks(per_batch)
        .take((secs * 100) as usize)
        .enumerate()
    {
        let due = start + Duration::from_millis(10 * i as u64);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let t0 = Instant::now();
        pipeline.ingestor.lock().ingest(chunk)?;
        sent += chunk.iter().filter(|e| e.topic() != Topic::Images).count() as u64;
        // Views apply inputs and derived events; inputs alone reach `sent`.
        wait_until(
            || pipeline.view_applied_inputs() >= sent,
            Duration::from_secs(10),
        );
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    pipeline.shutdown()?;
    lat.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok((q(0.5), q(0.99), lat.len()))
}
