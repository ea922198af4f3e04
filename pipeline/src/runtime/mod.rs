//! The runtime: partition tasks on their own threads, the view feeder, producers, shutdown.
//!
//! The runtime owns every piece of I/O: it reads the log, hands events to processors, appends
//! what they emit, checkpoints, restarts a failed task from its checkpoint with backoff, and feeds
//! the DataFusion views. Processors never see any of this (see `twinline_processors::Processor`).

pub mod cassandrafeed;
pub mod checkpoint;
pub mod historyfeed;
pub mod ingest;
pub mod metrics;
pub mod served;
pub mod task;
#[cfg(test)]
mod testlog;
pub mod viewfeed;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tracing::{error, info, info_span, warn};
use twinline_log::EventLog;
use twinline_processors::Processor;
use twinline_schemas::{Codec, Topic};

use crate::config::Config;
use metrics::Metrics;
use task::{Frontiers, InputSpec, Task, TaskSpec};

/// Shared switches between the runtime's threads.
#[derive(Default)]
pub struct Control {
    /// Stop as soon as possible (after a final checkpoint).
    pub shutdown: AtomicBool,
    /// Producers running in this process have finished (so "caught up" means done).
    pub producers_done: AtomicBool,
    /// Bumped to ask every task for a checkpoint now; each task stores the generation it served.
    pub checkpoint_request: AtomicU64,
    pub checkpoint_served: Vec<AtomicU64>,
    /// Tasks that have processed everything visible since producers finished.
    pub tasks_caught_up: AtomicU64,
    /// Every task this process ran has stopped (with a task group: it left the group).
    pub tasks_done: AtomicBool,
    /// The tasks are shared with other processes through a task group: which tasks run here
    /// changes, and only `tasks_done` says this process is done.
    pub grouped: AtomicBool,
    /// Next offset to process per input partition, published by the tasks (for lag).
    pub positions: parking_lot::Mutex<std::collections::BTreeMap<(Topic, u32), u64>>,
}

/// Builds the processors of partition task `p`. Called again after a failure, so it must build
/// fresh instances (state comes back from the checkpoint).
pub type ProcessorFactory = Arc<dyn Fn(u32) -> Vec<Box<dyn Processor>> + Send + Sync>;

/// Which model-backed processors the default factory includes.
#[derive(Debug, Clone, Default)]
pub struct ModelStatus {
    /// Name and version of the loaded defect model; `None` = no vision processor.
    pub vision: Option<(String, String)>,
    pub predictive: bool,
}

pub fn default_processors(cfg: &Config) -> ProcessorFactory {
    default_processors_with_status(cfg).0
}

/// The production processors of a partition task (vision, twin, predictive; a model-backed one is
/// left out with a warning when its model or ONNX Runtime cannot be loaded), and what was loaded.
pub fn default_processors_with_status(cfg: &Config) -> (ProcessorFactory, ModelStatus) {
    let twin = cfg.twin.clone();
    let predictive = cfg.predictive.clone();
    let models_dir = cfg.models.dir.join("predictive");
    let lib = cfg.models.library();
    let vision_dir = cfg.models.dir.join("vision");
    let vision_variant = cfg.vision.variant.clone();
    let vision_batch = cfg.vision.max_batch;
    let vision_opts = cfg.models.vision_options().unwrap_or_default();
    // Probe once so a missing model is reported once, not per task.
    let predictive_ok = match twinline_models::predictive::OnnxFailureModel::load_with_library(
        &models_dir,
        lib.as_deref(),
    ) {
        Ok(_) => true,
        Err(e) => {
            warn!(error = %e, dir = %models_dir.display(), "predictive maintenance disabled: its models cannot be loaded");
            false
        }
    };
    let load_vision = move || {
        twinline_models::vision::OnnxDefectModel::load_variant(
            &vision_dir,
            &vision_variant,
            &vision_opts,
        )
    };
    let vision = match load_vision() {
        Ok(m) => {
            use twinline_models::vision::DefectModel;
            info!(
                model = m.name(),
                version = m.version(),
                "vision defect model loaded"
            );
            Some((m.name().to_string(), m.version().to_string()))
        }
        Err(e) => {
            warn!(error = %e, "vision disabled: the defect model cannot be loaded (images are not inspected)");
            None
        }
    };
    let status = ModelStatus {
        vision: vision.clone(),
        predictive: predictive_ok,
    };
    let vision_ok = vision.is_some();
    let factory: ProcessorFactory = Arc::new(move |_p| {
        let mut v: Vec<Box<dyn Processor>> = Vec::new();
        if vision_ok {
            match load_vision() {
                Ok(m) => v.push(Box::new(twinline_processors::vision::VisionProcessor::new(
                    Box::new(m),
                    vision_batch,
                ))),
                Err(e) => error!(error = %e, "vision processor could not be built"),
            }
        }
        v.push(Box::new(twinline_processors::scheduler::JobEventValidator));
        // The config was validated when it was loaded, so construction cannot fail here.
        let twin = twinline_processors::twin::TwinProcessor::new(twin.clone())
            .expect("twin config validated at load");
        v.push(Box::new(twin));
        if predictive_ok {
            let built = twinline_models::predictive::OnnxFailureModel::load_with_library(
                &models_dir,
                lib.as_deref(),
            )
            .map_err(|e| e.to_string())
            .and_then(|m| {
                twinline_processors::predictive::PredictiveProcessor::new(
                    predictive.clone(),
                    Box::new(m),
                )
                .map_err(|e| e.to_string())
            });
            match built {
                Ok(p) => v.push(Box::new(p) as Box<dyn Processor>),
                Err(e) => error!(error = %e, "predictive processor could not be built"),
            }
        }
        v
    });
    (factory, status)
}

/// Per-machine inputs of partition task `p`, in a fixed order. job-events are merged only to be
/// validated (dead-lettered) here; the plant-wide scheduler reads them itself.
pub fn partition_inputs(p: u32) -> Vec<InputSpec> {
    [
        Topic::SensorReadings,
        Topic::Images,
        Topic::MachineEvents,
        Topic::JobEvents,
    ]
    .into_iter()
    .map(|topic| InputSpec {
        topic,
        partition: p,
        owns_dead_letters: true,
    })
    .collect()
}

pub fn partition_outputs(p: u32) -> Vec<(Topic, u32)> {
    [
        Topic::Defects,
        Topic::TwinState,
        Topic::FailurePredictions,
        Topic::MaintenanceRequests,
        Topic::DeadLetters,
    ]
    .into_iter()
    .map(|t| (t, p))
    .collect()
}

/// Inputs of the scheduler task: every partition of `job-events`, `maintenance-requests` and
/// `twin-state`; it dead-letters nothing (the partition tasks own that).
pub fn scheduler_inputs(partitions: u32) -> Vec<InputSpec> {
    (0..partitions)
        .flat_map(|p| {
            [
                Topic::JobEvents,
                Topic::MaintenanceRequests,
                Topic::TwinState,
            ]
            .into_iter()
            .map(move |topic| InputSpec {
                topic,
                partition: p,
                owns_dead_letters: false,
            })
        })
        .collect()
}

/// The runtime's tasks: one per partition, plus the plant-wide scheduler when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskId {
    Partition(u32),
    Scheduler,
}

/// Number of tasks (and of checkpoint slots in [`Control`]) for `partitions` and `cfg`.
pub fn task_count(cfg: &Config, partitions: u32) -> u32 {
    partitions + u32::from(cfg.scheduling.enabled)
}

pub struct TaskRunnerArgs {
    pub log: Arc<dyn EventLog>,
    pub codec: Arc<Codec>,
    pub metrics: Arc<Metrics>,
    pub control: Arc<Control>,
    pub cfg: Config,
    pub checkpoint_dir: std::path::PathBuf,
    pub factory: ProcessorFactory,
    pub partitions: u32,
}

/// Spawn one thread per task this process runs. Each returns when shut down or, with
/// `until_caught_up`, when producers are done and it has processed everything; both end with a
/// final checkpoint.
///
/// On a log shared by several processes (Kafka), the task slots (partition tasks, then the
/// scheduler) are shared through [`EventLog::join_task_group`]: this process runs the slots it is
/// assigned, stops a slot's task when it is revoked (so its next owner starts from its final
/// checkpoint), and the one returned handle is the group's supervisor, which leaves the group
/// on shutdown or once its tasks are done. Frontiers committed by tasks of any process reach
/// this process's scheduler through [`EventLog::watch_frontiers`].
pub fn spawn_tasks(
    args: TaskRunnerArgs,
    until_caught_up: bool,
) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<()>>>> {
    let frontiers = Arc::new(Frontiers::new(args.partitions));
    let slots = task_count(&args.cfg, args.partitions);
    let log = args.log.clone();
    let control = args.control.clone();
    let runner = Arc::new(Runner {
        args: Arc::new(args),
        frontiers: frontiers.clone(),
        until_caught_up,
        running: parking_lot::Mutex::new(std::collections::BTreeMap::new()),
        finished: parking_lot::Mutex::new(Vec::new()),
    });
    {
        let f = frontiers.clone();
        log.watch_frontiers(Arc::new(move |task, bytes| f.apply_committed(task, bytes)))?;
    }
    let handler: twinline_log::GroupHandler = {
        let r = runner.clone();
        Arc::new(move |ev| match ev {
            twinline_log::GroupEvent::Assigned(s) => s.iter().for_each(|&slot| r.start(slot)),
            twinline_log::GroupEvent::Revoked(s) => r.stop(s),
        })
    };
    let Some(group) = log.join_task_group(slots, handler)? else {
        // The only process: every slot, one thread each.
        for slot in 0..slots {
            runner.start(slot);
        }
        let mut running = runner.running.lock();
        return Ok(std::mem::take(&mut *running)
            .into_values()
            .map(|t| t.handle)
            .collect());
    };
    control.grouped.store(true, Ordering::Release);
    let supervisor = std::thread::Builder::new()
        .name("task-group".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(50));
                if control.shutdown.load(Ordering::Acquire) {
                    break;
                }
                if until_caught_up && runner.all_done() {
                    info!("every task of this process is done: leaving the task group");
                    break;
                }
            }
            group.leave();
            control.tasks_done.store(true, Ordering::Release);
            let mut handles: Vec<_> = std::mem::take(&mut *runner.running.lock())
                .into_values()
                .map(|t| t.handle)
                .collect();
            handles.append(&mut runner.finished.lock());
            join_all(handles)
        })
        .context("spawning the task group supervisor")?;
    Ok(vec![supervisor])
}

struct RunningTask {
    stop: Arc<AtomicBool>,
    /// Set when the task finished by catching up (not when stopped or revoked).
    done: Arc<AtomicBool>,
    handle: JoinHandle<anyhow::Result<()>>,
}

/// The task threads of this process, by slot.
struct Runner {
    args: Arc<TaskRunnerArgs>,
    frontiers: Arc<Frontiers>,
    until_caught_up: bool,
    running: parking_lot::Mutex<std::collections::BTreeMap<u32, RunningTask>>,
    /// Threads of slots revoked since (joined when the runner ends).
    finished: parking_lot::Mutex<Vec<JoinHandle<anyhow::Result<()>>>>,
}

impl Runner {
    fn slot_id(&self, slot: u32) -> TaskId {
        if slot < self.args.partitions {
            TaskId::Partition(slot)
        } else {
            TaskId::Scheduler
        }
    }

    fn start(&self, slot: u32) {
        let mut running = self.running.lock();
        if running.contains_key(&slot) {
            return;
        }
        let id = self.slot_id(slot);
        let (a, f, until) = (
            self.args.clone(),
            self.frontiers.clone(),
            self.until_caught_up,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (flag, finished) = (stop.clone(), done.clone());
        let name = match id {
            TaskId::Partition(p) => format!("task-p{p}"),
            TaskId::Scheduler => "task-scheduler".to_string(),
        };
        let h = std::thread::Builder::new()
            .name(name)
            .spawn(move || run_task(&a, &f, id, until, &flag, &finished))
            .expect("spawning a task thread");
        running.insert(
            slot,
            RunningTask {
                stop,
                done,
                handle: h,
            },
        );
    }

    /// Stops the tasks of `slots` (final checkpoints) and waits for them. Every task is told
    /// before any is waited for: a task that fails while an earlier one is being waited for
    /// must already know that its slot is gone, or it would restart in a slot it no longer owns.
    fn stop(&self, slots: &[u32]) {
        let stopping: Vec<RunningTask> = {
            let mut running = self.running.lock();
            slots.iter().filter_map(|s| running.remove(s)).collect()
        };
        for t in &stopping {
            t.stop.store(true, Ordering::Release);
        }
        for t in stopping {
            while !t.handle.is_finished() {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.finished.lock().push(t.handle);
        }
    }

    /// This process runs tasks and every one of them has caught up and finished (a task stopped
    /// because its slot was revoked does not count: its slot may come back, or another process
    /// finishes it).
    fn all_done(&self) -> bool {
        let running = self.running.lock();
        !running.is_empty()
            && running
                .values()
                .all(|t| t.done.load(Ordering::Acquire) && t.handle.is_finished())
    }
}

fn open_task(a: &TaskRunnerArgs, f: &Arc<Frontiers>, id: TaskId) -> Result<Task, task::TaskError> {
    let spec = match id {
        TaskId::Partition(p) => TaskSpec {
            name: format!("partition-{p}"),
            inputs: partition_inputs(p),
            processors: (a.factory)(p),
            outputs: partition_outputs(p),
            checkpoint_path: a.checkpoint_dir.join(format!("partition-{p}.ckpt")),
            watermark_tick_ms: a.cfg.runtime.watermark_tick_ms,
            read_batch_bytes: a.cfg.runtime.read_batch_bytes,
            batch_max_wait: Duration::from_millis(a.cfg.vision.max_wait_ms),
            publish_frontier: Some((f.clone(), p)),
            gate: None,
        },
        TaskId::Scheduler => {
            let mut scheduler =
                twinline_processors::scheduler::SchedulerProcessor::new(a.cfg.scheduling.clone())
                    .map_err(|e| task::TaskError::Processor {
                    processor: "scheduler",
                    message: e,
                })?;
            if a.cfg.scheduling.quick_plan {
                // One intra-op thread and greedy decoding: the quick plans are a function of the
                // log, as replays require.
                let dir = a.cfg.models.policy_dir();
                match twinline_processors::dispatch::PolicyScorer::load(
                    &dir,
                    a.cfg.models.library().as_deref(),
                    1,
                ) {
                    Ok(p) => {
                        let label = format!("{} {}", p.meta().name, p.meta().version);
                        scheduler = scheduler.with_policy(Box::new(p), label);
                    }
                    Err(e) => tracing::warn!(
                        dir = %dir.display(), error = %e,
                        "no dispatching policy: disruptions are planned by the solver alone"
                    ),
                }
            }
            TaskSpec {
                name: "scheduler".into(),
                inputs: scheduler_inputs(a.partitions),
                processors: vec![Box::new(scheduler)],
                outputs: vec![(Topic::ScheduleChanges, 0)],
                checkpoint_path: a.checkpoint_dir.join("scheduler.ckpt"),
                watermark_tick_ms: a.cfg.runtime.watermark_tick_ms,
                read_batch_bytes: a.cfg.runtime.read_batch_bytes,
                batch_max_wait: Duration::ZERO,
                publish_frontier: None,
                gate: Some(f.clone()),
            }
        }
    };
    Task::open(spec, a.log.clone(), a.codec.clone(), a.metrics.clone())
}

fn run_task(
    a: &TaskRunnerArgs,
    f: &Arc<Frontiers>,
    id: TaskId,
    until_caught_up: bool,
    stop: &AtomicBool,
    done: &AtomicBool,
) -> anyhow::Result<()> {
    let span = match id {
        TaskId::Partition(p) => info_span!("task", partition = p),
        TaskId::Scheduler => info_span!("task", name = "scheduler"),
    };
    let _g = span.enter();
    let mut backoff = Duration::from_millis(100);
    loop {
        match drive_task(a, f, id, until_caught_up, stop, done) {
            Ok(()) => return Ok(()),
            Err(e) => {
                if stop.load(Ordering::Acquire) {
                    // Its slot went to another process, which fenced this one's writer.
                    warn!(error = %e, "task stopped (its slot was revoked)");
                    return Ok(());
                }
                a.metrics.task_restarts.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, "task failed; restarting from its checkpoint");
                if a.control.shutdown.load(Ordering::Relaxed) {
                    return Err(e.into());
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

fn drive_task(
    a: &TaskRunnerArgs,
    f: &Arc<Frontiers>,
    id: TaskId,
    until_caught_up: bool,
    stop: &AtomicBool,
    done: &AtomicBool,
) -> Result<(), task::TaskError> {
    let mut task = open_task(a, f, id)?;
    // Checkpoint slot in `Control`: partitions first, then the scheduler.
    let p = match id {
        TaskId::Partition(p) => p,
        TaskId::Scheduler => a.partitions,
    };
    let ckpt_every = Duration::from_millis(a.cfg.runtime.checkpoint_interval_ms.max(10));
    let mut last_ckpt = Instant::now();
    let mut idle = Duration::from_micros(200);
    let mut counted_caught_up = false;
    loop {
        // Sampled before the round: only a round that began after the producers finished has
        // seen all their events (sampling after it lets a last append slip past `caught_up`).
        let producers_done = a.control.producers_done.load(Ordering::Acquire);
        let started = Instant::now();
        let r = task.run_round()?;
        if r.processed > 0 {
            a.metrics
                .record_round_latency_us(started.elapsed().as_micros() as u64);
            let mut pos = a.control.positions.lock();
            for (t, part, off) in task.input_positions() {
                pos.insert((t, part), off);
            }
        }
        let revoked = stop.load(Ordering::Acquire);
        let shutdown = a.control.shutdown.load(Ordering::Relaxed) || revoked;
        let requested = a.control.checkpoint_request.load(Ordering::Relaxed);
        let served = a
            .control
            .checkpoint_served
            .get(p as usize)
            .map(|s| s.load(Ordering::Relaxed))
            .unwrap_or(0);
        if shutdown || last_ckpt.elapsed() >= ckpt_every || requested > served {
            task.checkpoint()?;
            a.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
            last_ckpt = Instant::now();
            if let Some(s) = a.control.checkpoint_served.get(p as usize) {
                s.store(requested, Ordering::Relaxed);
            }
        }
        if shutdown {
            if !revoked {
                task.finish_frontier();
            }
            info!("task stopped after a final checkpoint");
            return Ok(());
        }
        if r.processed == 0 {
            if until_caught_up && r.caught_up && producers_done {
                // Producers finished before this round began and nothing is left: done.
                task.checkpoint()?;
                a.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
                if !counted_caught_up {
                    a.control.tasks_caught_up.fetch_add(1, Ordering::AcqRel);
                }
                // Nothing more comes from this task in this run: the scheduler must not wait.
                task.finish_frontier();
                info!("caught up; final checkpoint written");
                done.store(true, Ordering::Release);
                return Ok(());
            }
            if r.caught_up && producers_done && !counted_caught_up {
                counted_caught_up = true;
                a.control.tasks_caught_up.fetch_add(1, Ordering::AcqRel);
            }
            if r.waiting {
                // A micro-batch is waiting for more events: look again soon.
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            std::thread::sleep(idle);
            idle = (idle * 2).min(Duration::from_millis(20));
        } else {
            idle = Duration::from_micros(200);
        }
    }
}

/// Ask every task for a checkpoint and wait (bounded) until all have written one.
pub fn request_checkpoint(control: &Control, timeout: Duration) -> Result<(), String> {
    let generation = control.checkpoint_request.fetch_add(1, Ordering::AcqRel) + 1;
    let deadline = Instant::now() + timeout;
    while control
        .checkpoint_served
        .iter()
        .any(|s| s.load(Ordering::Acquire) < generation)
    {
        if Instant::now() > deadline {
            return Err("tasks did not checkpoint in time".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

pub fn new_control(partitions: u32) -> Arc<Control> {
    Arc::new(Control {
        checkpoint_served: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
        ..Default::default()
    })
}

/// Log a warning once if a thread panicked instead of returning.
pub fn join_all(handles: Vec<JoinHandle<anyhow::Result<()>>>) -> anyhow::Result<()> {
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "thread ended with an error");
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(anyhow::anyhow!("a runtime thread panicked"));
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// For the sinks that tail the log from their own positions: reads `topic/p` from `from`
/// (clamped to the first retained offset) into `batch`. False when there is nothing to read,
/// which includes a log that ends below `from` after a task truncated its outputs on recovery:
/// those records are re-derived byte for byte, so the sink waits until the log is past them.
pub fn read_new(
    log: &dyn EventLog,
    topic: Topic,
    p: u32,
    from: u64,
    max_bytes: usize,
    batch: &mut twinline_log::ReadBatch,
) -> twinline_log::Result<bool> {
    log.read_tail(topic.name(), p, from, max_bytes, batch)
}

/// Whether `e` is the log's environment failing (a broker away, an I/O error): a feeder retries
/// its pass with backoff instead of stopping (its positions have not moved past what it wrote).
pub fn transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<twinline_log::LogError>()
            .is_some_and(|l| l.class() == twinline_log::ErrorClass::External)
    })
}

/// Backoff between retries of a failed pass: 200 ms doubling to 5 s, back to 200 ms on success.
pub struct RetryBackoff(Duration);

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff(Duration::from_millis(200))
    }
}

impl RetryBackoff {
    /// Logs the failure and waits before the retry.
    pub fn failed(&mut self, what: &str, e: &anyhow::Error) {
        warn!(error = %format!("{e:#}"), retry_in_ms = self.0.as_millis() as u64, "{what} failed; retrying");
        std::thread::sleep(self.0);
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }

    pub fn ok(&mut self) {
        self.0 = Duration::from_millis(200);
    }
}

/// The sleep of a tailing loop that found nothing: from 1 ms, doubling up to 50 ms.
pub struct IdleBackoff(Duration);

impl Default for IdleBackoff {
    fn default() -> Self {
        IdleBackoff(Duration::from_millis(1))
    }
}

impl IdleBackoff {
    pub fn idle(&mut self) {
        std::thread::sleep(self.0);
        self.0 = (self.0 * 2).min(Duration::from_millis(50));
    }

    pub fn busy(&mut self) {
        self.0 = Duration::from_millis(1);
    }
}

#[cfg(test)]
mod tests {
    //! When a task may call itself done.

    use twinline_log::NewRecord;
    use twinline_schemas::{Payload, SensorKind, SensorReading};

    use super::testlog::{embedded, HookedLog, Recorder};
    use super::*;

    /// The producer appends its last event and finishes while a round is between reading a
    /// partition's end and reporting "caught up": the task must still process that event
    /// before it stops (the embedded replay test once lost 37 twin states this way).
    #[test]
    fn a_task_does_not_stop_before_an_append_that_raced_its_round() {
        let dir = tempfile::tempdir().unwrap();
        let (inner, codec) = embedded(dir.path(), 1);
        let control = new_control(1);
        let mut log = HookedLog::new(inner);
        let (c, ctl, fired) = (codec.clone(), control.clone(), AtomicBool::new(false));
        log.on_end = Some(Box::new(move |inner, topic, partition, _end| {
            if topic != Topic::SensorReadings.name()
                || partition != 0
                || fired.swap(true, Ordering::AcqRel)
            {
                return;
            }
            let reading = SensorReading {
                machine_id: "M1".into(),
                sensor: SensorKind::Temperature,
                value: 70.0,
                unit: "C".into(),
                event_time: 1_000,
            };
            let value = c
                .encode_to_vec(&Payload::SensorReading(reading))
                .expect("encodes");
            let rec = NewRecord {
                key: b"M1",
                value: &value,
                timestamp: 1_000,
                origin: None,
                headers: &[],
            };
            inner.append(topic, partition, &[rec]).expect("appends");
            ctl.producers_done.store(true, Ordering::Release);
        }));
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut cfg = Config::load_with_env(None, false).unwrap();
        cfg.scheduling.enabled = false;
        let args = TaskRunnerArgs {
            log: Arc::new(log),
            codec,
            metrics: Arc::new(Metrics::new()),
            control: control.clone(),
            cfg,
            checkpoint_dir: dir.path().join("ckpt"),
            factory: Arc::new(move |_| {
                vec![Box::new(Recorder {
                    input: &[Topic::SensorReadings],
                    seen: s.clone(),
                }) as Box<dyn Processor>]
            }),
            partitions: 1,
        };
        std::fs::create_dir_all(&args.checkpoint_dir).unwrap();
        let (stop, done) = (AtomicBool::new(false), AtomicBool::new(false));
        let frontiers = Arc::new(Frontiers::new(1));
        drive_task(&args, &frontiers, TaskId::Partition(0), true, &stop, &done).unwrap();
        assert!(
            done.load(Ordering::Acquire),
            "the task did not finish by catching up"
        );
        assert!(control.producers_done.load(Ordering::Acquire));
        assert_eq!(
            seen.lock().len(),
            1,
            "the task stopped without processing the producer's last event"
        );
    }
}
