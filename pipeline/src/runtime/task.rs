//! A task: merges its input partitions in origin order, runs its processors, appends what they
//! emit, dead-letters bad records, and checkpoints state + offsets + output ends atomically.
//!
//! The merge never waits for an idle partition: it snapshots the log's committed origin, reads its
//! inputs, and processes every buffered record whose origin is known to be complete (see
//! ARCHITECTURE.md, "Determinism: the origin order"). Recovery truncates the outputs the task owns
//! back to the checkpoint, so a restart after kill -9 derives the lost tail again, byte for byte.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use twinline_log::{EventLog, NewRecord, ReadBatch, TaskWriter};
use twinline_processors::{Emitted, Emitter, Event, Position, ProcessError, Processor};
use twinline_schemas::{Codec, DeadLetter, DeadLetterReason, Payload, Source, Topic};

use super::checkpoint::{Checkpoint, CheckpointHeader, TopicPartitionOffset};
use super::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("log: {0}")]
    Log(#[from] twinline_log::LogError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] super::checkpoint::CheckpointError),
    #[error("processor {processor}: {message}")]
    Processor {
        processor: &'static str,
        message: String,
    },
    #[error("encode: {0}")]
    Encode(String),
    #[error("checkpoint of task {task} does not match its processors: {reason}")]
    Mismatch { task: String, reason: String },
    #[error("output {topic}/{partition}: expected offset {expected}, log appended at {actual} (another writer?)")]
    NotSoleWriter {
        topic: String,
        partition: u32,
        expected: u64,
        actual: u64,
    },
}

/// How far each partition task has derived: slot `p` holds an origin `F` and, for each output
/// partition of task `p`, its end `E` when `F` was reached: every record partition task `p`
/// derives from inputs with origin `<= F` is at an offset below `E`, and everything below `E` was
/// written (appended, or committed in a transaction). A task that reads derived topics (the
/// scheduler) processes a derived partition only up to its frontier, and only once it has read
/// that partition up to `E`, so its merge order is the origin order no matter how far ahead or
/// behind the partition tasks are, and no matter when written records become visible to readers
/// (Kafka answers a transaction's commit before its markers make the records readable).
#[derive(Debug)]
pub struct Frontiers {
    slots: Vec<parking_lot::Mutex<Frontier>>,
    /// Bumped when a partition task (re)opens, before it truncates its outputs: a reader whose
    /// round saw a bump discards that round's bound (it may have read records being rewritten).
    resets: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct Frontier {
    origin: u64,
    /// The end of each output partition `(topic, p)` of the task, at `origin`.
    ends: Vec<(Topic, u64)>,
}

impl Frontiers {
    pub fn new(partitions: u32) -> Self {
        Frontiers {
            slots: (0..partitions)
                .map(|_| parking_lot::Mutex::new(Frontier::default()))
                .collect(),
            resets: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn publish(&self, p: u32, origin: u64, ends: impl Iterator<Item = (Topic, u64)>) {
        if let Some(slot) = self.slots.get(p as usize) {
            let mut slot = slot.lock();
            slot.origin = origin;
            slot.ends.clear();
            slot.ends.extend(ends);
        }
    }

    /// Publishes unless slot `p` already holds a later frontier: frontiers committed through a
    /// transactional writer come both from this process and from the log, in any order, and a
    /// committed frontier never stops being true (nothing is truncated).
    fn publish_max(&self, p: u32, origin: u64, ends: impl Iterator<Item = (Topic, u64)>) {
        if let Some(slot) = self.slots.get(p as usize) {
            let mut slot = slot.lock();
            if origin >= slot.origin {
                slot.origin = origin;
                slot.ends.clear();
                slot.ends.extend(ends);
            }
        }
    }

    /// A frontier as committed with a checkpoint: origin, then (topic name length, name, end)
    /// per output partition; integers big-endian.
    fn encode(origin: u64, ends: impl Iterator<Item = (Topic, u64)>) -> Vec<u8> {
        let mut out = origin.to_be_bytes().to_vec();
        for (t, end) in ends {
            out.push(t.name().len() as u8);
            out.extend_from_slice(t.name().as_bytes());
            out.extend_from_slice(&end.to_be_bytes());
        }
        out
    }

    /// Applies a frontier committed by task `task` (in any process); others are ignored.
    pub fn apply_committed(&self, task: &str, bytes: &[u8]) {
        let Some(p) = task
            .strip_prefix("partition-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            return;
        };
        let Some((origin, mut rest)) = bytes
            .split_first_chunk::<8>()
            .map(|(o, r)| (u64::from_be_bytes(*o), r))
        else {
            warn!(task, "unreadable frontier ignored");
            return;
        };
        let mut ends = Vec::new();
        while let Some((&n, r)) = rest.split_first() {
            let n = n as usize;
            let (Some(name), Some(end)) = (
                r.get(..n).and_then(|b| std::str::from_utf8(b).ok()),
                r.get(n..n + 8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes),
            ) else {
                warn!(task, "unreadable frontier ignored");
                return;
            };
            if let Some(t) = Topic::from_name(name) {
                ends.push((t, end));
            }
            rest = &r[n + 8..];
        }
        self.publish_max(p, origin, ends.into_iter());
    }

    fn reset(&self, p: u32) {
        self.resets
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.publish(p, 0, std::iter::empty());
    }

    fn resets(&self) -> u64 {
        self.resets.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Frontier `p` and the end of `topic` at it (both 0 when nothing was published).
    fn get(&self, p: u32, topic: Topic) -> (u64, u64) {
        self.slots
            .get(p as usize)
            .and_then(|s| {
                let s = s.lock();
                let end = s.ends.iter().find(|(t, _)| *t == topic)?.1;
                Some((s.origin, end))
            })
            .unwrap_or((0, 0))
    }
}

/// One input partition of a task.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub topic: Topic,
    pub partition: u32,
    /// This task dead-letters undecodable records of this partition (exactly one task does).
    pub owns_dead_letters: bool,
}

pub struct TaskSpec {
    pub name: String,
    pub inputs: Vec<InputSpec>,
    pub processors: Vec<Box<dyn Processor>>,
    /// Output partitions this task is the sole writer of (truncated to the checkpoint on start).
    pub outputs: Vec<(Topic, u32)>,
    pub checkpoint_path: PathBuf,
    pub watermark_tick_ms: i64,
    pub read_batch_bytes: usize,
    /// How long a batching processor's partial batch may wait for more events (0 = never).
    pub batch_max_wait: Duration,
    /// A partition task publishes its frontier here, in slot `.1`.
    pub publish_frontier: Option<(Arc<Frontiers>, u32)>,
    /// A task reading derived topics processes derived partition `p` only up to frontier `p`.
    pub gate: Option<Arc<Frontiers>>,
}

struct Input {
    spec: InputSpec,
    batch: ReadBatch,
    /// Index of the next unprocessed record in `batch`.
    cursor: usize,
    /// Offset of the next record to read from the log (after what is buffered).
    next_read: u64,
    /// Offset of the next record to process.
    next_process: u64,
    /// Largest origin buffered or processed so far.
    last_origin: u64,
    /// At the last read, everything visible after the origin snapshot was buffered.
    reached_end: bool,
    /// Records below this offset were handed to the batching processors' `prepare`.
    prepared_upto: u64,
}

impl Input {
    /// Replaces the buffer with what the log holds from `from` on (cursor back to its start),
    /// and notes how far it got and whether that was the partition's end.
    fn fill(
        &mut self,
        log: &dyn EventLog,
        from: u64,
        max_bytes: usize,
    ) -> Result<(), twinline_log::LogError> {
        self.read_from(log, from, max_bytes)?;
        // A read capped by `max_bytes` may leave records behind.
        let (topic, partition) = (self.spec.topic.name(), self.spec.partition);
        self.reached_end = self.next_read >= log.end_offset(topic, partition)?;
        Ok(())
    }

    /// Replaces the buffer with what the log holds from `from` on (cursor back to its start).
    fn read_from(
        &mut self,
        log: &dyn EventLog,
        from: u64,
        max_bytes: usize,
    ) -> Result<(), twinline_log::LogError> {
        let (topic, partition) = (self.spec.topic.name(), self.spec.partition);
        self.cursor = 0;
        self.next_read = from;
        log.read(topic, partition, from, max_bytes, &mut self.batch)?;
        if let Some(last) = self.batch.iter().last() {
            self.next_read = last.offset + 1;
            self.last_origin = self.last_origin.max(last.origin);
        }
        if let Some(next) = self.batch.next_offset() {
            // Offsets holding no record (Kafka's transaction markers) were stepped over.
            self.next_read = self.next_read.max(next);
        }
        Ok(())
    }
}

/// Encoded output records waiting to be appended, per output partition.
#[derive(Default)]
struct PendingPartition {
    data: Vec<u8>,
    /// (key range, value range, timestamp, origin, header ranges)
    records: Vec<PendingRecord>,
    /// The offset the next record appended to this partition will get.
    next_offset: u64,
    /// The offset the next record buffered here will get once appended.
    next_assigned: u64,
}

struct PendingRecord {
    key: (usize, usize),
    value: (usize, usize),
    timestamp: i64,
    origin: u64,
    headers: Vec<(String, (usize, usize))>,
}

/// Why a record is dead-lettered, with its original bytes.
struct Rejected<'a> {
    reason_type: DeadLetterReason,
    reason: String,
    processor: Option<String>,
    key: &'a [u8],
    payload: &'a [u8],
}

/// A derived event handed to the next stage in memory, with its log position.
struct Handoff {
    position: Position,
    event_time: i64,
    key: String,
    payload: Payload,
    from_stage: usize,
}

pub struct Task {
    name: String,
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    metrics: Arc<Metrics>,
    inputs: Vec<Input>,
    processors: Vec<Box<dyn Processor>>,
    /// For each topic (by rank), the stages that consume it.
    routes: Vec<Vec<usize>>,
    outputs: BTreeMap<(Topic, u32), PendingPartition>,
    checkpoint_path: PathBuf,
    watermark: i64,
    last_tick: i64,
    tick_ms: i64,
    read_batch_bytes: usize,
    events_processed: u64,
    emitter: Emitter,
    handoffs: VecDeque<Handoff>,
    /// Per (source position, output topic) emission counter, reset per source event.
    emission_counts: Vec<(Topic, u32)>,
    partitions: BTreeMap<Topic, u32>,
    /// For each topic (by rank), the stages that consume it in batches (`batch_limit() > 0`).
    batch_routes: Vec<Vec<usize>>,
    batch_max_wait: Duration,
    /// When the partial batch at the head of a batched input started waiting for more events.
    batch_wait_since: Option<Instant>,
    /// Decoded events of the batch being prepared (reused).
    prep: Vec<(Position, i64, String, Payload)>,
    publish_frontier: Option<(Arc<Frontiers>, u32)>,
    gate: Option<Arc<Frontiers>>,
    /// On a transactional backend (Kafka): outputs go into the open transaction, and the
    /// checkpoint commits it. `None`: appends, checkpoint files and truncation on recovery.
    writer: Option<Box<dyn TaskWriter>>,
    /// With a writer, the frontier reached by the last round; published once committed.
    pending_frontier: Option<u64>,
}

/// What one call to [`Task::run_round`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundResult {
    pub processed: usize,
    /// Every input was read to its end and everything buffered was processed.
    pub caught_up: bool,
    /// The round ended early: a batching processor's partial batch is waiting for more events.
    pub waiting: bool,
}

impl Task {
    /// Build the task, restoring its checkpoint and truncating its outputs to it.
    pub fn open(
        spec: TaskSpec,
        log: Arc<dyn EventLog>,
        codec: Arc<Codec>,
        metrics: Arc<Metrics>,
    ) -> Result<Task, TaskError> {
        let mut routes: Vec<Vec<usize>> = vec![Vec::new(); 256];
        let mut batch_routes: Vec<Vec<usize>> = vec![Vec::new(); 256];
        for (i, p) in spec.processors.iter().enumerate() {
            for t in p.inputs() {
                routes[t.rank() as usize].push(i);
                if p.batch_limit() > 0 {
                    batch_routes[t.rank() as usize].push(i);
                }
            }
        }
        let mut partitions = BTreeMap::new();
        for t in Topic::ALL {
            partitions.insert(t, log.partitions(t.name())?);
        }
        let writer = log.task_writer(&spec.name)?;
        let mut task = Task {
            name: spec.name,
            log,
            codec,
            metrics,
            inputs: spec
                .inputs
                .into_iter()
                .map(|s| Input {
                    spec: s,
                    batch: ReadBatch::new(),
                    cursor: 0,
                    next_read: 0,
                    next_process: 0,
                    last_origin: 0,
                    reached_end: false,
                    prepared_upto: 0,
                })
                .collect(),
            processors: spec.processors,
            routes,
            outputs: spec
                .outputs
                .into_iter()
                .map(|k| (k, PendingPartition::default()))
                .collect(),
            checkpoint_path: spec.checkpoint_path,
            watermark: i64::MIN,
            last_tick: i64::MIN,
            tick_ms: spec.watermark_tick_ms.max(1),
            read_batch_bytes: spec.read_batch_bytes.max(4096),
            events_processed: 0,
            emitter: Emitter::new(),
            handoffs: VecDeque::new(),
            emission_counts: Vec::new(),
            partitions,
            batch_routes,
            batch_max_wait: spec.batch_max_wait,
            batch_wait_since: None,
            prep: Vec::new(),
            publish_frontier: spec.publish_frontier,
            gate: spec.gate,
            writer,
            pending_frontier: None,
        };
        if let (Some((f, p)), None) = (&task.publish_frontier, &task.writer) {
            // Before truncating: readers must not trust what they saw of the old tail.
            f.reset(*p);
        }
        task.recover()?;
        Ok(task)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Next offset to process per input partition (for lag metrics).
    pub fn input_positions(&self) -> Vec<(Topic, u32, u64)> {
        self.inputs
            .iter()
            .map(|i| (i.spec.topic, i.spec.partition, i.next_process))
            .collect()
    }

    fn recover(&mut self) -> Result<(), TaskError> {
        let ckpt = match &mut self.writer {
            Some(w) => match w.load_checkpoint()? {
                Some(bytes) => Some(Checkpoint::decode(&bytes, &self.checkpoint_path)?),
                None => None,
            },
            None => Checkpoint::read(&self.checkpoint_path)?,
        };
        let names: Vec<String> = self
            .processors
            .iter()
            .map(|p| p.name().to_string())
            .collect();
        let mut output_ends: BTreeMap<(String, u32), u64> = BTreeMap::new();
        if let Some(c) = &ckpt {
            // States are matched by processor name. A processor added since the checkpoint (a
            // model that loads now and did not then) starts empty at the checkpointed offsets;
            // one that no longer runs has its state dropped. Both are logged: what is derived
            // from here on differs from a run that had the same processors throughout.
            for (p, name) in self.processors.iter_mut().zip(&names) {
                match c.header.processors.iter().position(|n| n == name) {
                    Some(k) => {
                        let state = c.states.get(k).ok_or_else(|| TaskError::Mismatch {
                            task: self.name.clone(),
                            reason: format!("no state for {name}"),
                        })?;
                        p.restore(state).map_err(|e| TaskError::Processor {
                            processor: p.name(),
                            message: e.to_string(),
                        })?;
                    }
                    None => warn!(task = %self.name, processor = %name,
                        "processor not in the checkpoint: it starts empty from the checkpointed offsets"),
                }
            }
            for name in c.header.processors.iter().filter(|n| !names.contains(n)) {
                warn!(task = %self.name, processor = %name,
                    "processor in the checkpoint is not running now: its state is dropped");
            }
            for input in &mut self.inputs {
                if let Some(o) = c.header.inputs.iter().find(|o| {
                    o.topic == input.spec.topic.name() && o.partition == input.spec.partition
                }) {
                    input.next_read = o.offset;
                    input.next_process = o.offset;
                }
            }
            for o in &c.header.outputs {
                output_ends.insert((o.topic.clone(), o.partition), o.offset);
            }
            self.watermark = c.header.watermark;
            self.last_tick = c.header.last_tick;
            self.events_processed = c.header.events_processed;
        }
        for ((topic, partition), pending) in self.outputs.iter_mut() {
            let end = output_ends
                .get(&(topic.name().to_string(), *partition))
                .copied()
                .unwrap_or(0);
            let current = self.log.end_offset(topic.name(), *partition)?;
            if self.writer.is_some() {
                // Transactional: what was derived after the checkpoint was never committed, so
                // readers never see it; the next records take the checkpoint's logical offsets.
                let end = if ckpt.is_some() { end } else { current };
                if ckpt.is_none() && current > 0 {
                    warn!(task = %self.name, topic = topic.name(), partition, end = current,
                        "output holds records but the task has no checkpoint; numbering goes on from its end");
                }
                pending.next_offset = end;
                pending.next_assigned = end;
                continue;
            }
            if current > end {
                info!(task = %self.name, topic = topic.name(), partition, from = current, to = end,
                    "truncating output derived after the last checkpoint");
                self.log.truncate(topic.name(), *partition, end)?;
            } else if current < end {
                // The log lost records that the checkpoint says were written: it was synced before
                // the checkpoint, so this means the data directory was tampered with.
                warn!(task = %self.name, topic = topic.name(), partition, log_end = current, checkpoint_end = end,
                    "output shorter than the checkpoint says; continuing from the log's end");
            }
            let end = self.log.end_offset(topic.name(), *partition)?;
            pending.next_offset = end;
            pending.next_assigned = end;
        }
        for input in &mut self.inputs {
            // Inputs may have been trimmed by retention below the checkpointed offset.
            let start = self
                .log
                .start_offset(input.spec.topic.name(), input.spec.partition)?;
            if input.next_read < start {
                warn!(task = %self.name, topic = input.spec.topic.name(), partition = input.spec.partition,
                    from = input.next_read, to = start, "input retention passed the checkpoint; skipping ahead");
                input.next_read = start;
                input.next_process = start;
            }
        }
        info!(task = %self.name, restored = ckpt.is_some(), "task ready");
        Ok(())
    }

    /// Read what is visible and process everything whose order is settled.
    pub fn run_round(&mut self) -> Result<RoundResult, TaskError> {
        let committed = self.log.committed_origin();
        // Derived partitions are complete only up to their writer's frontier (read before the
        // inputs, like `committed`).
        let gate_resets = self.gate.as_ref().map(|g| g.resets());
        let mut gated_behind = false;
        // Everything with origin <= bound is buffered or processed, on every input.
        let mut bound = u64::MAX;
        for input in &mut self.inputs {
            if let Some(g) = self.gate.as_ref().filter(|_| !input.spec.topic.is_input()) {
                // Derived partition: everything with origin <= `frontier` is below `end`. It may
                // hold several records of one origin, and a read capped by `read_batch_bytes`
                // may end inside such a group, or records below `end` may not be readable yet:
                // re-read from the next record to process every round, and count complete up to
                // the frontier only once the read got to `end`, else only below the last origin
                // read.
                let (frontier, end) = g.get(input.spec.partition, input.spec.topic);
                let f = frontier.min(committed);
                gated_behind |= f < committed;
                let from = input.next_process;
                if from >= end {
                    input.batch.clear();
                    input.cursor = 0;
                    input.next_read = from;
                } else {
                    input.read_from(&*self.log, from, self.read_batch_bytes)?;
                }
                input.reached_end = input.next_read >= end;
                let complete = if input.reached_end {
                    f
                } else {
                    gated_behind = true;
                    // Only what this read returned counts: a re-read may return less than an
                    // earlier one did (on Kafka, a seek drops what the consumer had fetched),
                    // so the largest origin ever read (`last_origin`) may lie past a record
                    // that is not buffered now. Origins do not decrease along a partition.
                    let read_upto = input.batch.iter().last().map_or(0, |r| r.origin);
                    f.min(read_upto.saturating_sub(1))
                };
                bound = bound.min(complete);
                continue;
            }
            let complete = if input.cursor < input.batch.len() {
                // Not re-read this round: only what is buffered is known. Origins increase within
                // a partition, so nothing unread can be below the last buffered origin.
                input.last_origin
            } else {
                let from = input.next_read;
                input.fill(&*self.log, from, self.read_batch_bytes)?;
                // Read after the snapshot and reached the end: every record with origin <= the
                // snapshot was visible before the read began, so it is buffered.
                if input.reached_end {
                    committed.max(input.last_origin)
                } else {
                    input.last_origin
                }
            };
            bound = bound.min(complete);
        }
        if let (Some(g), Some(before)) = (&self.gate, gate_resets) {
            if g.resets() != before {
                // A writer reopened during the reads: decide nothing on them this round.
                bound = 0;
                gated_behind = true;
            }
        }
        let mut processed = 0usize;
        let mut waiting = false;
        loop {
            // Pick the head with the smallest (origin, topic rank, offset) not above the bound.
            let mut best: Option<(u64, u8, u64, usize)> = None;
            for (i, input) in self.inputs.iter().enumerate() {
                if let Some(r) = input.batch.get(input.cursor) {
                    if r.origin <= bound {
                        let k = (r.origin, input.spec.topic.rank(), r.offset, i);
                        if best.is_none_or(|b| (k.0, k.1, k.2) < (b.0, b.1, b.2)) {
                            best = Some(k);
                        }
                    }
                }
            }
            let Some((_, _, _, i)) = best else { break };
            if !self.ensure_prepared(i)? {
                waiting = true;
                break;
            }
            self.process_input(i)?;
            processed += 1;
        }
        self.flush_outputs()?;
        if let Some((f, p)) = &self.publish_frontier {
            if !waiting {
                // Everything up to `bound` was processed and its outputs appended (with a
                // transactional writer: appended to the open transaction, so published when
                // `checkpoint` commits it).
                let frontier = bound.min(committed.max(self.max_buffered_origin()));
                if self.writer.is_some() {
                    self.pending_frontier = Some(frontier);
                } else {
                    f.publish(*p, frontier, self.output_ends());
                }
            }
        }
        let caught_up = !waiting
            && !gated_behind
            && self
                .inputs
                .iter()
                .all(|i| i.reached_end && i.cursor >= i.batch.len());
        Ok(RoundResult {
            processed,
            caught_up,
            waiting,
        })
    }

    /// A partition task that stops for good says so: readers gated on it need not wait for
    /// anything more from it in this run.
    pub fn finish_frontier(&self) {
        if let Some((f, p)) = &self.publish_frontier {
            f.publish(*p, u64::MAX, self.output_ends());
        }
    }

    /// The end of every output partition: what was written so far (with a transactional
    /// writer, what the open transaction holds).
    fn output_ends(&self) -> impl Iterator<Item = (Topic, u64)> + '_ {
        self.outputs.iter().map(|((t, _), o)| (*t, o.next_offset))
    }

    /// The largest origin any input has buffered or processed.
    fn max_buffered_origin(&self) -> u64 {
        self.inputs.iter().map(|i| i.last_origin).max().unwrap_or(0)
    }

    /// Before the record at input `i`'s cursor is processed: if batching processors consume its
    /// topic and it has not been prepared yet, hand them the next run of buffered records (up to
    /// the largest `batch_limit`). A run shorter than the limit may wait up to `batch_max_wait`
    /// for more records to arrive; returns `false` while it waits (the round then ends early).
    ///
    /// Preparing ignores the origin bound: the records of one partition are processed in offset
    /// order anyway, and preparing never changes what is emitted, only when the work is done.
    fn ensure_prepared(&mut self, i: usize) -> Result<bool, TaskError> {
        let rank = self.inputs[i].spec.topic.rank() as usize;
        if self.batch_routes[rank].is_empty() {
            return Ok(true);
        }
        let limit = self.batch_routes[rank]
            .iter()
            .map(|&s| self.processors[s].batch_limit())
            .max()
            .unwrap_or(1);
        let input = &self.inputs[i];
        let Some(head) = input.batch.get(input.cursor) else {
            return Ok(true);
        };
        let head_offset = head.offset;
        if head_offset < input.prepared_upto {
            return Ok(true);
        }
        let topic = input.spec.topic;
        let partition = input.spec.partition;
        let mut available = input.batch.len() - input.cursor;
        if available < limit && !self.batch_max_wait.is_zero() {
            // Records appended since the last read can join this batch: re-read from the head.
            if self.log.end_offset(topic.name(), partition)? > input.next_read {
                let input = &mut self.inputs[i];
                input.fill(&*self.log, head_offset, self.read_batch_bytes)?;
                available = input.batch.len();
            }
            // Waiting helps only when the buffer holds everything there is; a read capped by
            // `read_batch_bytes` gets no fuller by waiting.
            if available < limit && self.inputs[i].reached_end {
                let now = Instant::now();
                let since = *self.batch_wait_since.get_or_insert(now);
                if now.duration_since(since) < self.batch_max_wait {
                    return Ok(false);
                }
            }
        }
        self.batch_wait_since = None;
        let n = available.min(limit);
        let batch = std::mem::take(&mut self.inputs[i].batch);
        let cursor = self.inputs[i].cursor;
        self.prep.clear();
        let mut next = head_offset;
        for k in 0..n {
            let Some(r) = batch.get(cursor + k) else {
                break;
            };
            next = r.offset + 1;
            // Records with a bad key or value are dead-lettered when they are processed.
            let Ok(key) = std::str::from_utf8(r.key) else {
                continue;
            };
            if key.is_empty() {
                continue;
            }
            if let Ok(p) = self.codec.decode(topic, r.value) {
                let position = Position {
                    topic,
                    partition,
                    offset: r.offset,
                    origin: r.origin,
                };
                self.prep
                    .push((position, p.event_time(), key.to_string(), p));
            }
        }
        self.inputs[i].batch = batch;
        self.inputs[i].prepared_upto = next;
        let events: Vec<Event<'_>> = self
            .prep
            .iter()
            .map(|(position, event_time, key, payload)| Event {
                position: *position,
                event_time: *event_time,
                key,
                payload,
            })
            .collect();
        for &s in &self.batch_routes[rank] {
            let p = &mut self.processors[s];
            p.prepare(&events).map_err(|e| TaskError::Processor {
                processor: p.name(),
                message: e.to_string(),
            })?;
        }
        Ok(true)
    }

    fn process_input(&mut self, i: usize) -> Result<(), TaskError> {
        // Take the batch out so the record can be borrowed while processors run (no copies).
        let batch = std::mem::take(&mut self.inputs[i].batch);
        let cursor = self.inputs[i].cursor;
        let res = match batch.get(cursor) {
            Some(rec) => {
                self.inputs[i].cursor += 1;
                self.inputs[i].next_process = rec.offset + 1;
                self.process_record(i, &rec)
            }
            None => Ok(()),
        };
        self.inputs[i].batch = batch;
        res
    }

    fn process_record(
        &mut self,
        i: usize,
        rec: &twinline_log::RecordRef<'_>,
    ) -> Result<(), TaskError> {
        let spec = &self.inputs[i].spec;
        let topic = spec.topic;
        let position = Position {
            topic,
            partition: spec.partition,
            offset: rec.offset,
            origin: rec.origin,
        };
        let owns_dlq = spec.owns_dead_letters;
        self.events_processed += 1;
        self.metrics.record_in(topic, 1);

        let key = match std::str::from_utf8(rec.key) {
            Ok(k) if !k.is_empty() => k,
            _ => {
                if owns_dlq {
                    let rejected = Rejected {
                        reason_type: DeadLetterReason::InvalidKey,
                        reason: "record key is empty or not UTF-8".into(),
                        processor: None,
                        key: rec.key,
                        payload: rec.value,
                    };
                    self.dead_letter(position, rec.timestamp, rejected)?;
                }
                return Ok(());
            }
        };
        // A producer that does not use Kafka's default partitioner (murmur2 of the key) can put
        // a machine's record in another machine's partition: this task could not own what it
        // derives from it, so it is dead-lettered rather than derived.
        if owns_dlq && topic != Topic::JobEvents {
            let n = self.partitions.get(&topic).copied().unwrap_or(1);
            let expected = if n <= 1 {
                0
            } else {
                twinline_log::murmur2::partition_for_key(key.as_bytes(), n)
            };
            if expected != position.partition {
                let rejected = Rejected {
                    reason_type: DeadLetterReason::InvalidKey,
                    reason: format!(
                        "key {key:?} belongs in partition {expected} of {} (Kafka's default \
                         partitioner, murmur2), not {}",
                        topic.name(),
                        position.partition
                    ),
                    processor: None,
                    key: key.as_bytes(),
                    payload: rec.value,
                };
                self.dead_letter(position, rec.timestamp, rejected)?;
                return Ok(());
            }
        }
        let payload = match self.codec.decode(topic, rec.value) {
            Ok(p) => p,
            Err(e) => {
                if owns_dlq {
                    let rejected = Rejected {
                        reason_type: e.reason_type(),
                        reason: e.to_string(),
                        processor: None,
                        key: key.as_bytes(),
                        payload: rec.value,
                    };
                    self.dead_letter(position, rec.timestamp, rejected)?;
                }
                return Ok(());
            }
        };
        let event_time = payload.event_time();
        let r = topic.rank() as usize;
        for k in 0..self.routes[r].len() {
            let s = self.routes[r][k];
            self.run_stage(s, position, event_time, key, &payload)?;
        }
        self.drain_handoffs()?;
        if event_time > self.watermark {
            self.watermark = event_time;
            let tick = event_time.div_euclid(self.tick_ms);
            if tick > self.last_tick {
                self.last_tick = tick;
                let wm = tick * self.tick_ms;
                for s in 0..self.processors.len() {
                    let p = &mut self.processors[s];
                    let res = p.on_watermark(wm, &mut self.emitter);
                    let name = p.name();
                    if let Err(e) = res {
                        self.emitter.drain().for_each(drop);
                        self.handle_error(name, e, position, event_time, key, &payload)?;
                        continue;
                    }
                    self.collect(s, position)?;
                }
                self.drain_handoffs()?;
            }
        }
        Ok(())
    }

    fn run_stage(
        &mut self,
        stage: usize,
        position: Position,
        event_time: i64,
        key: &str,
        payload: &Payload,
    ) -> Result<(), TaskError> {
        let event = Event {
            position,
            event_time,
            key,
            payload,
        };
        let p = &mut self.processors[stage];
        let name = p.name();
        match p.on_event(&event, &mut self.emitter) {
            Ok(()) => self.collect(stage, position),
            Err(e) => {
                self.emitter.drain().for_each(drop);
                self.handle_error(name, e, position, event_time, key, payload)
            }
        }
    }

    fn handle_error(
        &mut self,
        processor: &'static str,
        e: ProcessError,
        position: Position,
        event_time: i64,
        key: &str,
        payload: &Payload,
    ) -> Result<(), TaskError> {
        match e {
            ProcessError::BadInput(reason) => {
                let mut value = Vec::new();
                self.codec
                    .encode(payload, &mut value)
                    .map_err(|e| TaskError::Encode(e.to_string()))?;
                let rejected = Rejected {
                    reason_type: DeadLetterReason::InvalidEvent,
                    reason,
                    processor: Some(processor.to_string()),
                    key: key.as_bytes(),
                    payload: &value,
                };
                self.dead_letter(position, event_time, rejected)
            }
            other => Err(TaskError::Processor {
                processor,
                message: other.to_string(),
            }),
        }
    }

    /// Move what the emitter holds into the outputs, filling provenance, and queue in-memory
    /// handoffs to downstream stages.
    fn collect(&mut self, stage: usize, source: Position) -> Result<(), TaskError> {
        if self.emitter.is_empty() {
            return Ok(());
        }
        let emitted: Vec<Emitted> = self.emitter.drain().collect();
        self.emission_counts.clear();
        for mut e in emitted {
            let n = match self.emission_counts.iter_mut().find(|(t, _)| *t == e.topic) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    self.emission_counts.push((e.topic, 0));
                    0
                }
            };
            let event_id = format!(
                "{}:{}/{}/{}/{}",
                e.topic.name(),
                source.topic.name(),
                source.partition,
                source.offset,
                n
            );
            e.payload.set_provenance(
                event_id,
                Source {
                    topic: source.topic.name().to_string(),
                    partition: source.partition as i32,
                    offset: source.offset as i64,
                },
            );
            let position = self.buffer_output(&e, source.origin)?;
            if !self.routes[e.topic.rank() as usize].is_empty() {
                self.handoffs.push_back(Handoff {
                    position,
                    event_time: e.payload.event_time(),
                    key: e.key,
                    payload: e.payload,
                    from_stage: stage,
                });
            }
        }
        Ok(())
    }

    fn drain_handoffs(&mut self) -> Result<(), TaskError> {
        while let Some(h) = self.handoffs.pop_front() {
            let r = h.position.topic.rank() as usize;
            for k in 0..self.routes[r].len() {
                let s = self.routes[r][k];
                if s != h.from_stage {
                    self.run_stage(s, h.position, h.event_time, &h.key, &h.payload)?;
                }
            }
        }
        Ok(())
    }

    fn dead_letter(
        &mut self,
        source: Position,
        event_time: i64,
        rejected: Rejected<'_>,
    ) -> Result<(), TaskError> {
        let Rejected {
            reason_type,
            reason,
            processor,
            key,
            payload,
        } = rejected;
        debug!(task = %self.name, topic = source.topic.name(), partition = source.partition,
            offset = source.offset, %reason, "dead-lettering record");
        self.metrics.record_dead_letter(source.topic);
        let dl = DeadLetter {
            event_id: format!(
                "dead-letters:{}/{}/{}/0",
                source.topic.name(),
                source.partition,
                source.offset
            ),
            source: Source {
                topic: source.topic.name().to_string(),
                partition: source.partition as i32,
                offset: source.offset as i64,
            },
            event_time,
            reason_type,
            reason,
            processor,
            key: key.to_vec(),
            payload: payload.to_vec(),
        };
        // Dead letters go to the partition number of their source (this task owns it).
        let e = Emitted {
            topic: Topic::DeadLetters,
            key: String::from_utf8_lossy(key).into_owned(),
            payload: Payload::DeadLetter(dl),
            headers: Vec::new(),
        };
        self.buffer_output_to(&e, source.origin, source.partition, key)?;
        Ok(())
    }

    fn buffer_output(&mut self, e: &Emitted, origin: u64) -> Result<Position, TaskError> {
        let n = self.partitions.get(&e.topic).copied().unwrap_or(1);
        let partition = if n <= 1 {
            0
        } else {
            self.log.partition_for(e.topic.name(), e.key.as_bytes())?
        };
        self.buffer_output_to(e, origin, partition, e.key.as_bytes())
    }

    fn buffer_output_to(
        &mut self,
        e: &Emitted,
        origin: u64,
        partition: u32,
        key: &[u8],
    ) -> Result<Position, TaskError> {
        let Some(p) = self.outputs.get_mut(&(e.topic, partition)) else {
            return Err(TaskError::Processor {
                processor: "runtime",
                message: format!(
                    "task {} emitted to {}/{} which it does not own (key {:?}); topics must be co-partitioned",
                    self.name,
                    e.topic.name(),
                    partition,
                    e.key
                ),
            });
        };
        let k0 = p.data.len();
        p.data.extend_from_slice(key);
        let v0 = p.data.len();
        self.codec
            .encode(&e.payload, &mut p.data)
            .map_err(|err| TaskError::Encode(err.to_string()))?;
        let v1 = p.data.len();
        let mut headers = Vec::with_capacity(e.headers.len());
        for (name, value) in &e.headers {
            let h0 = p.data.len();
            p.data.extend_from_slice(value);
            headers.push((name.clone(), (h0, p.data.len())));
        }
        p.records.push(PendingRecord {
            key: (k0, v0),
            value: (v0, v1),
            timestamp: e.payload.event_time(),
            origin,
            headers,
        });
        let offset = p.next_assigned;
        p.next_assigned += 1;
        Ok(Position {
            topic: e.topic,
            partition,
            offset,
            origin,
        })
    }

    fn flush_outputs(&mut self) -> Result<(), TaskError> {
        for ((topic, partition), p) in self.outputs.iter_mut() {
            if p.records.is_empty() {
                continue;
            }
            let header_refs: Vec<Vec<(&str, &[u8])>> = p
                .records
                .iter()
                .map(|r| {
                    r.headers
                        .iter()
                        .map(|(n, (a, b))| (n.as_str(), &p.data[*a..*b]))
                        .collect()
                })
                .collect();
            let recs: Vec<NewRecord<'_>> = p
                .records
                .iter()
                .zip(&header_refs)
                .map(|(r, h)| NewRecord {
                    key: &p.data[r.key.0..r.key.1],
                    value: &p.data[r.value.0..r.value.1],
                    timestamp: r.timestamp,
                    origin: Some(r.origin),
                    headers: h,
                })
                .collect();
            if let Some(w) = &mut self.writer {
                w.append(topic.name(), *partition, p.next_offset, &recs)?;
                self.metrics.record_out(*topic, recs.len() as u64);
                p.next_offset += recs.len() as u64;
                drop(recs);
                drop(header_refs);
                p.records.clear();
                p.data.clear();
                continue;
            }
            let res = self.log.append(topic.name(), *partition, &recs)?;
            if res.base_offset != p.next_offset {
                return Err(TaskError::NotSoleWriter {
                    topic: topic.name().into(),
                    partition: *partition,
                    expected: p.next_offset,
                    actual: res.base_offset,
                });
            }
            self.metrics.record_out(*topic, recs.len() as u64);
            drop(recs);
            drop(header_refs);
            p.next_offset = res.last_offset + 1;
            p.records.clear();
            p.data.clear();
        }
        Ok(())
    }

    /// Sync the outputs and write a checkpoint. Call between rounds only.
    pub fn checkpoint(&mut self) -> Result<(), TaskError> {
        self.flush_outputs()?;
        if self.writer.is_none() {
            for (topic, partition) in self.outputs.keys() {
                self.log.sync(topic.name(), *partition)?;
            }
        }
        let mut states = Vec::with_capacity(self.processors.len());
        for p in &self.processors {
            states.push(p.snapshot().map_err(|e| TaskError::Processor {
                processor: p.name(),
                message: e.to_string(),
            })?);
        }
        let header = CheckpointHeader {
            version: 1,
            task: self.name.clone(),
            inputs: self
                .inputs
                .iter()
                .map(|i| TopicPartitionOffset {
                    topic: i.spec.topic.name().into(),
                    partition: i.spec.partition,
                    offset: i.next_process,
                })
                .collect(),
            outputs: self
                .outputs
                .iter()
                .map(|((t, p), o)| TopicPartitionOffset {
                    topic: t.name().into(),
                    partition: *p,
                    offset: o.next_offset,
                })
                .collect(),
            watermark: self.watermark,
            last_tick: self.last_tick,
            events_processed: self.events_processed,
            processors: self
                .processors
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
        };
        let ckpt = Checkpoint { header, states };
        let frontier = match (&self.publish_frontier, self.pending_frontier.take()) {
            (Some(_), Some(origin)) if self.writer.is_some() => {
                Some((origin, Frontiers::encode(origin, self.output_ends())))
            }
            _ => None,
        };
        match &mut self.writer {
            Some(w) => {
                let inputs: Vec<(String, u32, u64)> = ckpt
                    .header
                    .inputs
                    .iter()
                    .map(|o| (o.topic.clone(), o.partition, o.offset))
                    .collect();
                w.commit(&ckpt.encode(), &inputs, frontier.as_ref().map(|f| &f.1[..]))?;
                if let (Some((f, p)), Some((origin, _))) = (&self.publish_frontier, frontier) {
                    f.publish_max(*p, origin, self.output_ends());
                }
            }
            None => ckpt.write(&self.checkpoint_path)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The gate of a task that reads derived partitions (the scheduler), against a log whose
    //! re-reads may return less than earlier reads did (as Kafka's do after a seek).

    use std::sync::atomic::{AtomicUsize, Ordering};

    use twinline_schemas::TwinState;

    use super::super::testlog::{embedded, HookedLog, Recorder};
    use super::*;

    #[test]
    fn a_shorter_reread_of_a_gated_partition_does_not_let_later_origins_through() {
        let dir = tempfile::tempdir().unwrap();
        let (inner, codec) = embedded(dir.path(), 2);
        // The second read of twin-state/1 returns one record only; every input origin counts
        // as committed.
        let mut log = HookedLog::new(inner);
        let reads = AtomicUsize::new(0);
        log.on_read = Some(Box::new(move |topic, partition, max_bytes| {
            let short = topic == Topic::TwinState.name()
                && partition == 1
                && reads.fetch_add(1, Ordering::Relaxed) == 1;
            if short {
                1
            } else {
                max_bytes
            }
        }));
        log.committed_origin = Some(1000);
        let log = Arc::new(log);
        // twin-state/0 holds origins 10, 20, 30, 40 and twin-state/1 holds 15, 25, 35.
        for (p, origins) in [(0u32, vec![10u64, 20, 30, 40]), (1, vec![15, 25, 35])] {
            for o in origins {
                let state = TwinState {
                    machine_id: format!("M{p}"),
                    event_time: o as i64,
                    ..TwinState::default()
                };
                let value = codec
                    .encode_to_vec(&Payload::TwinState(state))
                    .expect("encodes");
                let rec = NewRecord {
                    key: b"M",
                    value: &value,
                    timestamp: o as i64,
                    origin: Some(o),
                    headers: &[],
                };
                log.append(Topic::TwinState.name(), p, &[rec]).unwrap();
            }
        }
        let gate = Arc::new(Frontiers::new(2));
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let spec = TaskSpec {
            name: "gated".into(),
            inputs: (0..2)
                .map(|partition| InputSpec {
                    topic: Topic::TwinState,
                    partition,
                    owns_dead_letters: false,
                })
                .collect(),
            processors: vec![Box::new(Recorder {
                input: &[Topic::TwinState],
                seen: seen.clone(),
            })],
            outputs: Vec::new(),
            checkpoint_path: dir.path().join("gated.ckpt"),
            watermark_tick_ms: 1000,
            read_batch_bytes: 1 << 20,
            batch_max_wait: Duration::ZERO,
            publish_frontier: None,
            gate: Some(gate.clone()),
        };
        let mut task = Task::open(spec, log, codec, Arc::new(Metrics::new())).unwrap();
        // Round 1: partition 0 is complete up to origin 12 only, partition 1 is read whole.
        gate.publish(0, 12, [(Topic::TwinState, 1)].into_iter());
        gate.publish(1, 100, [(Topic::TwinState, 3)].into_iter());
        task.run_round().unwrap();
        assert_eq!(*seen.lock(), vec![10]);
        // Round 2: partition 0 is complete; the re-read of partition 1 returns origin 15 only,
        // so nothing past it may be processed (25 is not buffered).
        gate.publish(0, 100, [(Topic::TwinState, 4)].into_iter());
        task.run_round().unwrap();
        let after_short = seen.lock().clone();
        assert!(
            after_short.iter().all(|&o| o < 25),
            "processed {after_short:?} while origin 25 was not buffered"
        );
        for _ in 0..3 {
            task.run_round().unwrap();
        }
        assert_eq!(*seen.lock(), vec![10, 15, 20, 25, 30, 35, 40]);
    }
}
