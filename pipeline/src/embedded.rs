//! Embedded mode assembled: data directory, partition tasks, view feeder, simulator, API backend.
//!
//! `twinline run`, `twinline replay` and the end-to-end tests all start the pipeline through
//! [`EmbeddedPipeline::start`], so there is one code path.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use parking_lot::Mutex;
use tracing::info;
use twinline_queries::api::{ApiBackend, DetectHub, IngestAck};
use twinline_queries::views::Views;
use twinline_schemas::{Payload, Topic};
use twinline_sinks::cassandra::{CassandraConfig, CassandraSink};
use twinline_sinks::history::{HistoryStore, HistoryWriter};

use crate::config::Config;
use crate::runtime::cassandrafeed::CassandraFeeder;
use crate::runtime::historyfeed::HistoryFeeder;
use crate::runtime::ingest::Ingestor;
use crate::runtime::metrics::Metrics;
use crate::runtime::served::ServedPoller;
use crate::runtime::viewfeed::ViewFeeder;
use crate::runtime::{self, Control, ModelStatus, ProcessorFactory, TaskRunnerArgs};
use crate::store::Store;

/// How the simulator is driven inside `twinline run --simulate`.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub config: twinline_sim::SimConfig,
    /// Pace event time to wall time (1 s of event time per second).
    pub realtime: bool,
    /// Event-time speed-up when `realtime` is set (1.0 = real time).
    pub speed: f64,
    /// Events per append; `None` = 256 when paced, 4096 otherwise.
    pub ingest_batch: Option<usize>,
}

pub struct StartOptions {
    pub simulate: Option<SimOptions>,
    /// Tasks stop once producers are done and everything is processed.
    pub until_caught_up: bool,
    /// Override the processors (tests); defaults to [`runtime::default_processors`].
    pub factory: Option<ProcessorFactory>,
    /// Fold the log into the views (off for replay and pure processing runs).
    pub views: bool,
    /// Run the sinks: the Parquet history (when `[history] enabled`) and the Cassandra served
    /// state (when `distributed.scylla` is set). Off for replay.
    pub history: bool,
}

pub struct EmbeddedPipeline {
    pub store: Arc<Store>,
    pub control: Arc<Control>,
    pub metrics: Arc<Metrics>,
    pub views: Arc<Views>,
    pub ingestor: Arc<Mutex<Ingestor>>,
    pub views_caught_up: Arc<AtomicBool>,
    view_applied: Arc<std::sync::atomic::AtomicU64>,
    view_applied_inputs: Arc<std::sync::atomic::AtomicU64>,
    feeder_stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Result<()>>>,
    feeder: Option<JoinHandle<Result<()>>>,
    /// The Parquet history, when written (its tables are registered on the API's engine).
    pub history: Option<Arc<HistoryStore>>,
    history_stop: Arc<AtomicBool>,
    history_caught_up: Arc<AtomicBool>,
    history_feeder: Option<JoinHandle<Result<()>>>,
    cassandra_caught_up: Arc<AtomicBool>,
    /// The Cassandra feeder; in an API-only instance, the served-state poller.
    cassandra_feeder: Option<JoinHandle<Result<()>>>,
    producer: Option<JoinHandle<Result<()>>>,
    lag_stop: Arc<AtomicBool>,
    lag: Option<JoinHandle<()>>,
    /// Which model-backed processors run (default processors only; empty with a test factory).
    pub models: ModelStatus,
    /// Uploads waiting for their defect; fed by the view feeder.
    detect: Arc<DetectHub>,
}

impl EmbeddedPipeline {
    pub fn start(cfg: &Config, dir: &Path, opts: StartOptions) -> Result<EmbeddedPipeline> {
        let store = Arc::new(Store::open(dir, cfg)?);
        let mut cfg = cfg.clone();
        if store.kafka.is_some() {
            // On Kafka a checkpoint is a transaction commit: its interval is the latency of
            // derived events for read_committed readers. (The sequencer runs in the process of
            // the task group that owns the last task slot.)
            cfg.runtime.checkpoint_interval_ms = cfg.distributed.commit_interval_ms.max(10);
        }
        let cfg = &cfg;
        let api_only = cfg.distributed.api_only;
        if api_only {
            if store.kafka.is_none() {
                anyhow::bail!(
                    "--api-only (distributed.api_only) needs --kafka: writes to the API go to Kafka"
                );
            }
            if cfg.distributed.scylla.is_empty() {
                anyhow::bail!(
                    "--api-only (distributed.api_only) needs --scylla: the API serves from Cassandra"
                );
            }
        }
        // Connect to Cassandra before anything runs: a wrong address fails the start.
        let cassandra = if (opts.history || api_only) && !cfg.distributed.scylla.is_empty() {
            Some(connect_cassandra(cfg)?)
        } else {
            None
        };
        let metrics = Arc::new(Metrics::new());
        let control = runtime::new_control(runtime::task_count(cfg, store.partitions));
        // An API-only instance keeps no views: its API model is loaded from Cassandra.
        let views = Arc::new(if api_only {
            Views::served(crate::commands::view_config(cfg))
        } else {
            Views::new(crate::commands::view_config(cfg))
        });
        let ingestor = Arc::new(Mutex::new(Ingestor::new(
            store.log_dyn(),
            store.codec.clone(),
            metrics.clone(),
        )));
        if opts.simulate.is_none() && opts.until_caught_up {
            match &store.kafka {
                // On Kafka the inputs present are those the sequencer has given origins to.
                Some(kafka) => {
                    let (kafka, control) = (kafka.clone(), control.clone());
                    std::thread::Builder::new()
                        .name("kafka-inputs-done".into())
                        .spawn(move || {
                            wait_sequenced(&kafka);
                            control.producers_done.store(true, Ordering::Release);
                        })
                        .context("spawning a thread")?;
                }
                None => control.producers_done.store(true, Ordering::Release),
            }
        }
        let (factory, models) = match opts.factory {
            Some(f) => (f, ModelStatus::default()),
            None => runtime::default_processors_with_status(cfg),
        };
        let detect = Arc::new(DetectHub::new());
        let tasks = if api_only {
            Vec::new()
        } else {
            runtime::spawn_tasks(
                TaskRunnerArgs {
                    log: store.log_dyn(),
                    codec: store.codec.clone(),
                    metrics: metrics.clone(),
                    control: control.clone(),
                    cfg: cfg.clone(),
                    checkpoint_dir: store.checkpoint_dir(),
                    factory,
                    partitions: store.partitions,
                },
                opts.until_caught_up,
            )?
        };
        let feeder_stop = Arc::new(AtomicBool::new(false));
        let views_caught_up = Arc::new(AtomicBool::new(false));
        let view_applied = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let view_applied_inputs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let feeder = if api_only {
            // Only `defects`, from now on: uploads are answered by the pipeline instances'
            // vision processors through Kafka.
            let mut f = ViewFeeder::tail(
                store.log_dyn(),
                store.codec.clone(),
                views.clone(),
                &[Topic::Defects],
            )?;
            f.detect = Some(detect.clone());
            let stop = feeder_stop.clone();
            let tailed = Arc::new(AtomicBool::new(false));
            Some(
                std::thread::Builder::new()
                    .name("defects-tail".into())
                    .spawn(move || f.run(stop, tailed))?,
            )
        } else if opts.views {
            let mut f = ViewFeeder::new(store.log_dyn(), store.codec.clone(), views.clone())?;
            f.applied = view_applied.clone();
            f.applied_inputs = view_applied_inputs.clone();
            f.detect = Some(detect.clone());
            let (stop, cu) = (feeder_stop.clone(), views_caught_up.clone());
            Some(
                std::thread::Builder::new()
                    .name("view-feeder".into())
                    .spawn(move || f.run(stop, cu))?,
            )
        } else {
            views_caught_up.store(true, Ordering::Release);
            None
        };
        let history_stop = Arc::new(AtomicBool::new(false));
        let history_caught_up = Arc::new(AtomicBool::new(false));
        let (history, history_feeder) = if opts.history && cfg.history.enabled && !api_only {
            let hcfg = cfg.history.resolve(dir);
            let hstore = open_history(&hcfg.path)?;
            let writer =
                HistoryWriter::open(hstore.clone(), hcfg).context("opening the Parquet history")?;
            let f = HistoryFeeder::new(store.log_dyn(), store.codec.clone(), writer)?;
            let (stop, cu) = (history_stop.clone(), history_caught_up.clone());
            let h = std::thread::Builder::new()
                .name("history".into())
                .spawn(move || f.run(stop, cu))?;
            (Some(hstore), Some(h))
        } else {
            (None, None)
        };
        let cassandra_caught_up = Arc::new(AtomicBool::new(false));
        let cassandra_feeder = match cassandra {
            // The API-only instance's reader of the served state; ready after its first read.
            Some((sink, rt)) if api_only => {
                let interval = Duration::from_millis(cfg.distributed.served_poll_ms.max(10));
                let poller = ServedPoller::new(sink, rt, views.clone(), interval);
                let (stop, ready) = (history_stop.clone(), views_caught_up.clone());
                Some(
                    std::thread::Builder::new()
                        .name("served".into())
                        .spawn(move || poller.run(stop, ready))?,
                )
            }
            Some((sink, rt)) => {
                let f = CassandraFeeder::new(store.log_dyn(), store.codec.clone(), sink, rt)?;
                let (stop, cu) = (history_stop.clone(), cassandra_caught_up.clone());
                Some(
                    std::thread::Builder::new()
                        .name("cassandra".into())
                        .spawn(move || f.run(stop, cu))?,
                )
            }
            None => None,
        };
        let resume = match &opts.simulate {
            Some(sim) => simulator_resume_point(&store, &sim.config)?,
            None => 0,
        };
        let producer = opts.simulate.map(|sim| {
            let (ing, ctl, kafka) = (ingestor.clone(), control.clone(), store.kafka.clone());
            std::thread::Builder::new()
                .name("simulator".into())
                .spawn(move || {
                    let r = run_simulator(sim, resume, &ing, &ctl);
                    if let Some(k) = kafka {
                        wait_sequenced(&k);
                    }
                    ctl.producers_done.store(true, Ordering::Release);
                    r
                })
                .expect("spawning the simulator thread")
        });
        let lag_stop = Arc::new(AtomicBool::new(false));
        let lag = {
            let (log, m, stop, ctl) = (
                store.log_dyn(),
                metrics.clone(),
                lag_stop.clone(),
                control.clone(),
            );
            Some(
                std::thread::Builder::new()
                    .name("lag".into())
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            let positions = ctl.positions.lock().clone();
                            let v = positions
                                .into_iter()
                                .map(|((t, p), pos)| {
                                    (t, p, pos, log.end_offset(t.name(), p).unwrap_or(pos))
                                })
                                .collect();
                            m.set_lag(v);
                            std::thread::sleep(Duration::from_millis(500));
                        }
                    })?,
            )
        };
        Ok(EmbeddedPipeline {
            store,
            control,
            metrics,
            views,
            ingestor,
            views_caught_up,
            view_applied,
            view_applied_inputs,
            feeder_stop,
            tasks,
            feeder,
            history,
            history_stop,
            history_caught_up,
            history_feeder,
            cassandra_caught_up,
            cassandra_feeder,
            producer,
            lag_stop,
            lag,
            models,
            detect,
        })
    }

    pub fn backend(&self) -> Arc<dyn ApiBackend> {
        Arc::new(Backend {
            ingestor: self.ingestor.clone(),
            metrics: self.metrics.clone(),
            control: self.control.clone(),
            views_caught_up: self.views_caught_up.clone(),
            // Uploads are answered through the view feeder, so both must be running.
            detect: (self.models.vision.is_some() && self.feeder.is_some())
                .then(|| self.detect.clone()),
        })
    }

    /// Input records consumed by the partition tasks so far.
    pub fn metrics_in_total(&self) -> u64 {
        Topic::ALL
            .into_iter()
            .filter(|t| t.is_input())
            .map(|t| self.metrics.events_in(t))
            .sum()
    }

    /// Records (inputs and derived) applied to the views so far.
    pub fn view_applied(&self) -> u64 {
        self.view_applied.load(Ordering::Relaxed)
    }

    /// Input records applied to the views so far (images have no view and are not counted).
    pub fn view_applied_inputs(&self) -> u64 {
        self.view_applied_inputs.load(Ordering::Relaxed)
    }

    /// Wait for the tasks to finish (with `until_caught_up`), then stop the rest.
    pub fn wait(mut self) -> Result<()> {
        if let Some(p) = self.producer.take() {
            p.join()
                .map_err(|_| anyhow::anyhow!("simulator panicked"))??;
        }
        let tasks = std::mem::take(&mut self.tasks);
        runtime::join_all(tasks)?;
        self.stop_background()
    }

    /// Signal shutdown: tasks take a final checkpoint and stop; everything is joined.
    pub fn shutdown(mut self) -> Result<()> {
        self.control.shutdown.store(true, Ordering::Release);
        if let Some(p) = self.producer.take() {
            let _ = p.join();
        }
        let tasks = std::mem::take(&mut self.tasks);
        runtime::join_all(tasks)?;
        self.stop_background()
    }

    /// Whether the history writer has found nothing new at least once (or is not running).
    pub fn history_caught_up(&self) -> bool {
        self.history_feeder.is_none() || self.history_caught_up.load(Ordering::Acquire)
    }

    fn stop_background(&mut self) -> Result<()> {
        self.feeder_stop.store(true, Ordering::Release);
        self.lag_stop.store(true, Ordering::Release);
        // The history catches up with the log and flushes before it stops.
        self.history_stop.store(true, Ordering::Release);
        if let Some(f) = self.feeder.take() {
            f.join()
                .map_err(|_| anyhow::anyhow!("view feeder panicked"))??;
        }
        if let Some(h) = self.history_feeder.take() {
            h.join()
                .map_err(|_| anyhow::anyhow!("history writer panicked"))??;
        }
        if let Some(c) = self.cassandra_feeder.take() {
            c.join()
                .map_err(|_| anyhow::anyhow!("Cassandra feeder panicked"))??;
        }
        if let Some(l) = self.lag.take() {
            let _ = l.join();
        }
        Ok(())
    }

    /// Whether the Cassandra feeder has found nothing new at least once (or is not running).
    pub fn cassandra_caught_up(&self) -> bool {
        self.cassandra_feeder.is_none() || self.cassandra_caught_up.load(Ordering::Acquire)
    }
}

/// Waits until every input record committed to Kafka so far has an origin (retrying on broker
/// errors: the pipeline recovers from a broker restart by itself).
fn wait_sequenced(kafka: &twinline_kafka::KafkaLog) {
    let mut backoff = std::time::Duration::from_millis(200);
    while let Err(e) = kafka.wait_inputs_sequenced() {
        tracing::warn!(error = %e, "waiting for the inputs to be sequenced; retrying");
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
    }
}

/// Connects the Cassandra sink of `distributed.scylla` (creating its keyspace and tables), with
/// the runtime its feeder thread drives it on.
fn connect_cassandra(cfg: &Config) -> Result<(CassandraSink, tokio::runtime::Runtime)> {
    let mut c = CassandraConfig::new(&cfg.distributed.scylla, &cfg.api.factory_id);
    c.keyspace = cfg.distributed.scylla_keyspace.clone();
    c.replication = cfg.distributed.replication.max(1) as u32;
    c.concurrency = cfg.distributed.scylla_concurrency.max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Cassandra sink's runtime")?;
    let sink = rt
        .block_on(CassandraSink::connect(c))
        .context("connecting the Cassandra sink (distributed.scylla)")?;
    Ok((sink, rt))
}

/// Opens the history at `location` (a directory or an object-store URL).
pub fn open_history(location: &str) -> Result<Arc<HistoryStore>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(HistoryStore::open(location))
        .with_context(|| format!("opening the Parquet history at {location}"))
}

/// File in the data directory recording the simulator settings that fed it.
const SIM_MARKER: &str = "simulator.json";

/// How many simulator events the log already holds, so a restarted `run --simulate` continues
/// the same plant instead of starting it over. The simulator is deterministic, so skipping that
/// many events reproduces the rest of the sequence. Its settings are recorded in the data
/// directory on first use; another plant (any setting but the duration differs) is refused,
/// since it would interleave two histories in one log.
fn simulator_resume_point(store: &Store, config: &twinline_sim::SimConfig) -> Result<u64> {
    let marker = store.dir.join(SIM_MARKER);
    let comparable = |c: &twinline_sim::SimConfig| -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(c)?;
        if let Some(o) = v.as_object_mut() {
            o.remove("duration_ms"); // extending or shortening the run is the same plant
        }
        Ok(v)
    };
    let mut held = 0u64;
    for t in Topic::ALL.iter().filter(|t| t.is_input()) {
        for p in 0..store.log.partitions(t.name())? {
            held += store.log.end_offset(t.name(), p)?;
        }
    }
    match std::fs::read(&marker) {
        Ok(bytes) => {
            let recorded: twinline_sim::SimConfig = serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", marker.display()))?;
            if comparable(&recorded)? != comparable(config)? {
                anyhow::bail!(
                    "{} was fed by a simulator with other settings ({}); use a fresh --data \
                     directory or the same simulator settings",
                    store.dir.display(),
                    marker.display()
                );
            }
            if held > 0 {
                info!(
                    events = held,
                    "simulator resumes after the events already in the log"
                );
            }
            Ok(held)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if held > 0 {
                anyhow::bail!(
                    "{} already holds {held} input events not written by `run --simulate`; \
                     simulate into a fresh --data directory",
                    store.dir.display()
                );
            }
            let tmp = marker.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(config)?)?;
            std::fs::rename(&tmp, &marker)?;
            Ok(0)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", marker.display())),
    }
}

fn run_simulator(
    opts: SimOptions,
    resume: u64,
    ingestor: &Mutex<Ingestor>,
    control: &Control,
) -> Result<()> {
    let mut sim = twinline_sim::Simulator::new(opts.config.clone()).context("simulator config")?;
    let mut buf: Vec<Payload> = Vec::with_capacity(4096);
    // Regenerate and drop what the log already holds.
    let mut skipped = 0u64;
    let mut more = true;
    let mut carry: Vec<Payload> = Vec::new();
    while skipped < resume && more {
        buf.clear();
        more = sim.next_batch(4096, &mut buf);
        let left = (resume - skipped) as usize;
        if buf.len() > left {
            carry.extend(buf.drain(left..));
        }
        skipped += buf.len() as u64;
    }
    // Pacing counts from the first event this run appends.
    let mut start_event_time = carry.first().map(Payload::event_time);
    let wall_start = Instant::now();
    let mut total = 0u64;
    if !carry.is_empty() {
        ingestor.lock().ingest(&carry).context("simulator append")?;
        total += carry.len() as u64;
    }
    while more {
        if control.shutdown.load(Ordering::Relaxed) {
            break;
        }
        buf.clear();
        let per_append = opts
            .ingest_batch
            .unwrap_or(if opts.realtime { 256 } else { 4096 })
            .max(1);
        more = sim.next_batch(per_append, &mut buf);
        let base = *start_event_time.get_or_insert_with(|| {
            buf.first()
                .map_or(opts.config.start_time_ms, Payload::event_time)
        });
        if let (true, Some(last)) = (opts.realtime, buf.last()) {
            let due = Duration::from_secs_f64(
                ((last.event_time() - base).max(0) as f64 / 1000.0) / opts.speed.max(1e-6),
            );
            let elapsed = wall_start.elapsed();
            if due > elapsed {
                // Sleep in short steps so shutdown stays responsive.
                let mut left = due - elapsed;
                while left > Duration::ZERO && !control.shutdown.load(Ordering::Relaxed) {
                    let step = left.min(Duration::from_millis(100));
                    std::thread::sleep(step);
                    left = left.saturating_sub(step);
                }
            }
        }
        if !buf.is_empty() {
            ingestor.lock().ingest(&buf).context("simulator append")?;
            total += buf.len() as u64;
        }
    }
    info!(events = total, "simulator finished");
    Ok(())
}

struct Backend {
    ingestor: Arc<Mutex<Ingestor>>,
    metrics: Arc<Metrics>,
    control: Arc<Control>,
    views_caught_up: Arc<AtomicBool>,
    detect: Option<Arc<DetectHub>>,
}

impl ApiBackend for Backend {
    fn detect_hub(&self) -> Option<Arc<DetectHub>> {
        self.detect.clone()
    }

    fn validate_image(&self, data: &[u8]) -> Result<(), String> {
        twinline_models::vision::decode_grey(data)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn ingest(&self, topic: Topic, payload: Payload) -> Result<IngestAck, String> {
        if payload.topic() != topic {
            return Err(format!(
                "payload is a {} event, not {}",
                payload.topic().name(),
                topic.name()
            ));
        }
        let landed = self
            .ingestor
            .lock()
            .ingest(std::slice::from_ref(&payload))
            .map_err(|e| e.to_string())?;
        let l = landed
            .first()
            .ok_or_else(|| "nothing was appended".to_string())?;
        Ok(IngestAck {
            topic: l.topic,
            partition: l.partition,
            offset: l.offset,
        })
    }

    fn metrics_text(&self) -> String {
        self.metrics.render()
    }

    fn ready(&self) -> bool {
        self.views_caught_up.load(Ordering::Acquire)
    }

    fn checkpoint(&self) -> Result<(), String> {
        runtime::request_checkpoint(&self.control, Duration::from_secs(30))
    }
}
