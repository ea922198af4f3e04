//! The processor contract (pure functions of state and event, in event time) and every processor.
//!
//! A processor never sees the log, files or the clock. The runtime (`pipeline/`) feeds it events in
//! origin order, calls [`Processor::on_watermark`] when event time advances, and collects what it
//! emits through an [`Emitter`]. See `ARCHITECTURE.md`.

pub mod dispatch;
pub mod predictive;
pub mod scheduler;
pub mod twin;
pub mod vision;

use twinline_schemas::{Payload, Topic};

/// Event time: Unix milliseconds.
pub type EventTime = i64;

/// Where an event sits in the log; enough for provenance and audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub topic: Topic,
    pub partition: u32,
    pub offset: u64,
    /// The global ingest order of the input record behind this event (see ARCHITECTURE.md).
    pub origin: u64,
}

/// One decoded event handed to a processor.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub position: Position,
    pub event_time: EventTime,
    pub key: &'a str,
    pub payload: &'a Payload,
}

/// Whose fault a processing error is; the runtime acts on the class.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The event is well-formed Avro but makes no sense (dead-lettered, processing continues).
    #[error("bad input: {0}")]
    BadInput(String),
    /// A dependency outside the processor failed (retried with backoff by the runtime).
    #[error("external failure: {0}")]
    External(String),
    /// A bug or corrupt state (the runtime stops the task and restores from its checkpoint).
    #[error("internal error: {0}")]
    Internal(String),
}

/// One event a processor asks the runtime to append to a derived topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub topic: Topic,
    pub key: String,
    pub payload: Payload,
    /// Diagnostics that are not part of the event (for example measured inference time); stored as
    /// record headers, never read back by processors, allowed to differ between runs.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Collects what a processor emits for the event (or watermark) being processed.
#[derive(Debug, Default)]
pub struct Emitter {
    out: Vec<Emitted>,
}

impl Emitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Emit a derived event. Its `event_id` and `source` are filled in by the runtime.
    pub fn emit(&mut self, topic: Topic, key: impl Into<String>, payload: Payload) {
        self.out.push(Emitted {
            topic,
            key: key.into(),
            payload,
            headers: Vec::new(),
        });
    }

    /// Emit with diagnostic headers.
    pub fn emit_with_headers(
        &mut self,
        topic: Topic,
        key: impl Into<String>,
        payload: Payload,
        headers: Vec<(String, Vec<u8>)>,
    ) {
        self.out.push(Emitted {
            topic,
            key: key.into(),
            payload,
            headers,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Take everything emitted so far, leaving the emitter empty (keeps its allocation).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Emitted> {
        self.out.drain(..)
    }

    pub fn as_slice(&self) -> &[Emitted] {
        &self.out
    }
}

/// A deterministic processor: a function of (state, event) in event time.
pub trait Processor: Send {
    /// A stable name, used in checkpoints, metrics, spans and dead letters.
    fn name(&self) -> &'static str;

    /// The topics this processor consumes. Derived topics listed here are handed over in memory
    /// by the task that produces them (see ARCHITECTURE.md).
    fn inputs(&self) -> &'static [Topic];

    fn on_event(&mut self, event: &Event<'_>, out: &mut Emitter) -> Result<(), ProcessError>;

    /// Event time advanced to `watermark` (the largest event time processed by this task).
    fn on_watermark(
        &mut self,
        _watermark: EventTime,
        _out: &mut Emitter,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// The most events this processor wants in one [`Processor::prepare`] call; 0 (the default)
    /// means it does not batch and `prepare` is never called.
    fn batch_limit(&self) -> usize {
        0
    }

    /// Called by the runtime with upcoming events of this processor's input topics, in origin
    /// order, before `on_event` is called for each of them, so that per-batch work (batched model
    /// inference) is done once. It must not change what `on_event` emits: a processor gets the
    /// same events in the same order whether or not, and however, they were prepared.
    fn prepare(&mut self, _events: &[Event<'_>]) -> Result<(), ProcessError> {
        Ok(())
    }

    /// The processor's state at a checkpoint.
    fn snapshot(&self) -> Result<Vec<u8>, ProcessError>;

    /// Replace the state with one taken by [`Processor::snapshot`].
    fn restore(&mut self, bytes: &[u8]) -> Result<(), ProcessError>;
}
