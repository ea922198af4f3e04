//! `twinline bench --kafka`: the distributed-mode figures on a real broker, printed as a table.
//!
//! - throughput: sensor readings produced to Kafka first; then a bare rdkafka consumer
//!   (`read_committed`, the same broker and topic) reads them all, and one pipeline instance
//!   (sequencer, partition tasks, transactions) processes them all; events/s of each and the
//!   ratio, counted from each side's first event (steady state) and from its start (the
//!   instance's start-up, which on a 1 M-event backlog is a large share of the run, separately);
//! - freshness: sensor readings produced at a fixed rate in 10 ms batches; wall time from the
//!   produce call until the sensor view holds them, p50/p99;
//! - recovery: a `twinline run` child on a backlog is killed with -9 and started again; the time
//!   from the restart until its next derived record is committed. With `--restart-broker`
//!   (docker/local/restart-kafka), the same after the broker is stopped and started again.
//!
//! Every run uses fresh topics (prefix `bench-<pid>-<n>.`), deleted when the bench ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use twinline_log::EventLog;
use twinline_schemas::{Payload, Topic};

use super::bench::wait_until;
use crate::config::Config;
use crate::embedded::{EmbeddedPipeline, StartOptions};
use crate::runtime::ingest::Ingestor;
use crate::runtime::metrics::Metrics;
use crate::store::Store;

pub struct KafkaBenchArgs {
    pub brokers: String,
    pub schema_registry: String,
    pub machines: usize,
    pub events: u64,
    pub fresh_rate: u64,
    pub fresh_secs: u64,
    pub restart_broker: Option<PathBuf>,
    pub dir: PathBuf,
}

fn prefixed(cfg: &Config, a: &KafkaBenchArgs, n: u32) -> Config {
    let mut c = cfg.clone();
    c.distributed.kafka = a.brokers.clone();
    c.distributed.schema_registry = a.schema_registry.clone();
    c.distributed.topic_prefix = format!("bench-{}-{n}.", std::process::id());
    c
}

/// Sensor readings of a simulated plant: about `events` of them.
fn readings(cfg: &Config, machines: usize, events: u64) -> Result<Vec<Payload>> {
    let mut sim_cfg = cfg.simulator.clone();
    sim_cfg.machines = machines;
    let per_sec =
        (machines as f64 * 4.0 * 1000.0 / sim_cfg.sensor_interval_ms.max(1) as f64).max(1.0);
    sim_cfg.duration_ms = ((events as f64 / per_sec) * 1000.0) as u64;
    let mut sim = twinline_sim::Simulator::new(sim_cfg).context("simulator config")?;
    let mut all: Vec<Payload> = Vec::with_capacity(events as usize + 1024);
    while sim.next_batch(8192, &mut all) {}
    all.retain(|e| e.topic() == Topic::SensorReadings);
    Ok(all)
}

/// Produces `events` to the Kafka of `cfg` (through the same ingest path as `simulate --kafka`).
fn produce(cfg: &Config, dir: &Path, events: &[Payload]) -> Result<Duration> {
    let store = Store::open(dir, cfg)?;
    let mut ing = Ingestor::new(
        store.log_dyn(),
        store.codec.clone(),
        Arc::new(Metrics::new()),
    );
    let started = Instant::now();
    for chunk in events.chunks(8192) {
        ing.ingest(chunk)?;
    }
    for p in 0..store.log.partitions(Topic::SensorReadings.name())? {
        store.log.sync(Topic::SensorReadings.name(), p)?;
    }
    Ok(started.elapsed())
}

/// How long reading `count` events took: from the start (assignment, or starting the pipeline) and
/// from the first event read (`steady`, over `count - first_batch` events).
struct Timed {
    total: Duration,
    steady: Duration,
    /// Events already read when the first was seen (the steady part reads the rest).
    first_batch: u64,
}

impl Timed {
    fn rate(&self, count: u64) -> f64 {
        count as f64 / self.total.as_secs_f64()
    }
    fn steady_rate(&self, count: u64) -> f64 {
        (count - self.first_batch) as f64 / self.steady.as_secs_f64()
    }
}

/// A bare rdkafka consumer (`read_committed`) reading every partition of `topic` from the
/// start until it has seen `count` messages.
fn bare_consumer(brokers: &str, topic: &str, partitions: u32, count: u64) -> Result<Timed> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-bare-bench"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        // The same fetch settings as twinline's readers.
        .set("fetch.wait.max.ms", "10")
        .set("fetch.max.bytes", "67108864")
        .set("max.partition.fetch.bytes", "8388608")
        .create()
        .context("creating the bare consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let mut n = 0u64;
    let mut bytes = 0usize;
    while n < count {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
                bytes += m.payload().map_or(0, <[u8]>::len);
            }
            Some(Err(e)) => tracing::debug!(error = %e, "bare consumer"),
            None => {}
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the bare consumer read only {n} of {count} messages in 600 s");
        }
    }
    std::hint::black_box(bytes);
    let end = Instant::now();
    Ok(Timed {
        total: end - started,
        // The first message counts as read at `first`: the steady part is the other count - 1.
        steady: end - first.unwrap_or(started),
        first_batch: 1,
    })
}

fn pipeline(cfg: &Config, dir: &Path, views: bool) -> Result<EmbeddedPipeline> {
    EmbeddedPipeline::start(
        cfg,
        dir,
        StartOptions {
            simulate: None,
            until_caught_up: false,
            factory: None,
            views,
            history: false,
        },
    )
}

/// Committed derived records in every partition of `topic`.
fn committed(log: &dyn EventLog, topic: Topic) -> u64 {
    (0..log.partitions(topic.name()).unwrap_or(0))
        .map(|p| log.end_offset(topic.name(), p).unwrap_or(0))
        .sum()
}

fn spawn_run(cfg: &Config, data: &Path, log: &Path) -> Result<Child> {
    let exe = std::env::current_exe().context("the twinline executable")?;
    Command::new(exe)
        .args(["run", "--until-caught-up", "--listen", "127.0.0.1:0"])
        .arg("--data")
        .arg(data)
        .args(["--kafka", &cfg.distributed.kafka])
        .args(["--topic-prefix", &cfg.distributed.topic_prefix])
        .args(["--schema-registry", &cfg.distributed.schema_registry])
        .args(["--instance-id", "bench-recovery"])
        // The child logs as this process's TWINLINE_LOG says (`warn` when unset), so
        // `TWINLINE_LOG=warn,librdkafka=debug` traces the recovery runs too.
        .env(
            "TWINLINE_LOG",
            std::env::var("TWINLINE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("starting twinline run")
}

/// What a recovery measurement saw.
enum Recovery {
    /// Time from the restart until the committed twin states grew.
    After(Duration),
    /// The child run exited first, with this status.
    Exited(std::process::ExitStatus),
    /// Nothing new was committed within a minute.
    Stalled,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovery::After(d) => write!(f, "{:.2} s", d.as_secs_f64()),
            Recovery::Exited(s) if s.success() => {
                write!(f, "not measured: the run had finished its backlog")
            }
            Recovery::Exited(s) => {
                write!(f, "FAILED: the run exited ({s}) without committing more")
            }
            Recovery::Stalled => write!(f, "FAILED: nothing committed within 60 s"),
        }
    }
}

impl Recovery {
    fn failed(&self) -> bool {
        match self {
            Recovery::After(_) => false,
            Recovery::Exited(s) => !s.success(),
            Recovery::Stalled => true,
        }
    }
}

/// Waits until the committed twin states exceed `from`, the child exits, or a minute passes.
fn until_progress(
    log: &dyn EventLog,
    from: u64,
    child: &mut Child,
    since: Instant,
) -> Result<Recovery> {
    loop {
        if committed(log, Topic::TwinState) > from {
            return Ok(Recovery::After(since.elapsed()));
        }
        if let Some(status) = child.try_wait()? {
            // It may have committed its last records while exiting.
            if committed(log, Topic::TwinState) > from {
                return Ok(Recovery::After(since.elapsed()));
            }
            return Ok(Recovery::Exited(status));
        }
        if since.elapsed() > Duration::from_secs(60) {
            return Ok(Recovery::Stalled);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn run(cfg: &Config, a: &KafkaBenchArgs) -> Result<()> {
    let result = measure(cfg, a);
    // The runs' topics hold millions of records; a broker that keeps them from run to run
    // restarts ever more slowly (the broker-restart figure would measure that).
    for n in 1..=3 {
        let c = prefixed(cfg, a, n);
        match crate::store::open_kafka(&c).map(|log| log.map(|l| l.delete_prefixed_topics())) {
            Ok(Some(Ok(k))) => eprintln!("deleted {k} topics under {}", c.distributed.topic_prefix),
            Ok(Some(Err(e))) => eprintln!(
                "deleting the topics under {}: {e}",
                c.distributed.topic_prefix
            ),
            Ok(None) => {}
            Err(e) => eprintln!(
                "deleting the topics under {}: {e:#}",
                c.distributed.topic_prefix
            ),
        }
    }
    result
}

fn measure(cfg: &Config, a: &KafkaBenchArgs) -> Result<()> {
    let events = readings(cfg, a.machines, a.events)?;
    let total = events.len() as u64;
    eprintln!(
        "generated {total} sensor readings ({} machines)",
        a.machines
    );

    // Throughput: the same topic read by a bare consumer and by one pipeline instance.
    let c1 = prefixed(cfg, a, 1);
    let produced = produce(&c1, &a.dir.join("produce-1"), &events)?;
    eprintln!("produced in {:.2}s", produced.as_secs_f64());
    let topic = format!(
        "{}{}",
        c1.distributed.topic_prefix,
        Topic::SensorReadings.name()
    );
    let bare = bare_consumer(&a.brokers, &topic, c1.log.partitions, total)?;
    let started = Instant::now();
    let p = pipeline(&c1, &a.dir.join("run-1"), false)?;
    let mut first: Option<(Instant, u64)> = None;
    let ok = wait_until(
        || {
            let n = p.metrics_in_total();
            if n > 0 && first.is_none() {
                first = Some((Instant::now(), n));
            }
            n >= total
        },
        Duration::from_secs(900),
    );
    let end = Instant::now();
    let processed = p.metrics_in_total();
    p.shutdown()?;
    if !ok {
        bail!("the pipeline processed {processed} of {total} readings in 900 s");
    }
    let (first_at, first_batch) = first.unwrap_or((started, 0));
    let instance = Timed {
        total: end - started,
        steady: end - first_at,
        first_batch,
    };
    let startup = first_at - started;

    // Freshness: produce at a fixed rate, wait for the sensor view.
    let c2 = prefixed(cfg, a, 2);
    let p = pipeline(&c2, &a.dir.join("run-2"), true)?;
    let per_batch = (a.fresh_rate / 100).max(1) as usize;
    let mut lat = Vec::new();
    let mut sent = 0u64;
    let start = Instant::now();
    for (i, chunk) in events
        .chunks(per_batch)
        .take((a.fresh_secs * 100) as usize)
        .enumerate()
    {
        let due = start + Duration::from_millis(10 * i as u64);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let t0 = Instant::now();
        p.ingestor.lock().ingest(chunk)?;
        sent += chunk.len() as u64;
        if !wait_until(|| p.view_applied_inputs() >= sent, Duration::from_secs(30)) {
            bail!("the sensor view did not receive batch {i} within 30 s");
        }
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    p.shutdown()?;
    lat.sort_by(|x, y| x.total_cmp(y));
    let q = |f: f64| lat[((lat.len() as f64 - 1.0) * f).round() as usize];

    // Recovery: a child run on a backlog (four times the throughput input; eight with a broker
    // restart, so that some is left when the broker comes back), killed with -9 as soon as it
    // has committed, started again.
    let c3 = prefixed(cfg, a, 3);
    let factor = if a.restart_broker.is_some() { 8 } else { 4 };
    let backlog = readings(cfg, a.machines, a.events * factor)?;
    produce(&c3, &a.dir.join("produce-3"), &backlog)?;
    let store = Store::open(&a.dir.join("watch-3"), &c3)?;
    let data = a.dir.join("run-3");
    let logf = a.dir.join("run-3.log");
    let mut child = spawn_run(&c3, &data, &logf)?;
    if !wait_until(
        || committed(&*store.log, Topic::TwinState) > 0,
        Duration::from_secs(120),
    ) {
        let _ = child.kill();
        bail!(
            "the child run committed nothing in 120 s (see {})",
            logf.display()
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    if child.try_wait()?.is_some() {
        bail!("the child run finished before it was killed: use more --events");
    }
    child.kill()?;
    child.wait()?;
    let at_kill = committed(&*store.log, Topic::TwinState);
    let restarted = Instant::now();
    let logf = a.dir.join("run-3-restarted.log");
    let mut child = spawn_run(&c3, &data, &logf)?;
    let kill_recovery = until_progress(&*store.log, at_kill, &mut child, restarted)?;
    let mut broker_recovery = None;
    if let Some(script) = &a.restart_broker {
        if let Some(status) = child.try_wait()? {
            broker_recovery = Some(Recovery::Exited(status));
        } else {
            let out = Command::new(script)
                .output()
                .with_context(|| format!("running {}", script.display()))?;
            if !out.status.success() {
                bail!(
                    "{} failed: {}",
                    script.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let back = Instant::now();
            let at_back = committed(&*store.log, Topic::TwinState);
            broker_recovery = Some(until_progress(&*store.log, at_back, &mut child, back)?);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    if kill_recovery.failed() || broker_recovery.as_ref().is_some_and(Recovery::failed) {
        let text = std::fs::read_to_string(&logf).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!(
            "the restarted run's log (last 40 lines of {}):",
            logf.display()
        );
        tail.iter().rev().for_each(|l| eprintln!("{l}"));
    }

    println!("| figure (Kafka at {}) | value |", a.brokers);
    println!("|---|---|");
    println!(
        "| input | {total} sensor readings, {} machines, {} partitions |",
        a.machines, c1.log.partitions
    );
    println!(
        "| produce (ingest path, idempotent, acks=all) | {:.0} events/s |",
        total as f64 / produced.as_secs_f64()
    );
    let (bare_rate, rate) = (bare.rate(total), instance.rate(total));
    let (bare_steady, steady) = (bare.steady_rate(total), instance.steady_rate(total));
    println!(
        "| bare rdkafka consumer, read_committed | {bare_steady:.0} events/s from its first event ({bare_rate:.0} from assignment) |"
    );
    println!(
        "| one twinline instance (sequencer, tasks, transactions) | {steady:.0} events/s from its first processed events ({} at once) = {:.2} x bare |",
        instance.first_batch,
        steady / bare_steady
    );
    println!(
        "| the same from start (opening the log, joining the group, loading checkpoints: {:.2} s) | {rate:.0} events/s = {:.2} x bare from assignment |",
        startup.as_secs_f64(),
        rate / bare_rate
    );
    println!(
        "| event-to-view freshness at {} events/s ({} batches) | p50 {:.1} ms, p99 {:.1} ms |",
        a.fresh_rate,
        lat.len(),
        q(0.5),
        q(0.99)
    );
    println!("| recovery after kill -9 (restart to next committed twin state) | {kill_recovery} |");
    if let Some(d) = broker_recovery {
        println!(
            "| recovery after a broker restart (broker answering to next committed twin state) | {d} |"
        );
    }
    Ok(())
}
