//! Test-only event log: an embedded log with hooks around reads and end queries, to stage the
//! interleavings (short re-reads, appends racing a round) that real logs produce by chance.

use std::path::Path;
use std::sync::Arc;

use twinline_log::{AppendResult, EmbeddedLog, EventLog, LogConfig, NewRecord, ReadBatch};
use twinline_processors::{Emitter, Event, ProcessError, Processor};
use twinline_schemas::{Codec, MemoryRegistry, Topic};

/// An embedded log in `dir` with every topic created with `partitions`, and a codec.
pub fn embedded(dir: &Path, partitions: u32) -> (EmbeddedLog, Arc<Codec>) {
    let log = EmbeddedLog::open(&dir.join("log"), LogConfig::default()).unwrap();
    for t in Topic::ALL {
        log.create_topic(t.name(), partitions).unwrap();
    }
    let codec = Arc::new(Codec::new(Arc::new(MemoryRegistry::new())).unwrap());
    (log, codec)
}

/// A processor of `input` that notes the origin of every event it is handed.
pub struct Recorder {
    pub input: &'static [Topic],
    pub seen: Arc<parking_lot::Mutex<Vec<u64>>>,
}

impl Processor for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn inputs(&self) -> &'static [Topic] {
        self.input
    }
    fn on_event(&mut self, e: &Event<'_>, _out: &mut Emitter) -> Result<(), ProcessError> {
        self.seen.lock().push(e.position.origin);
        Ok(())
    }
    fn snapshot(&self) -> Result<Vec<u8>, ProcessError> {
        Ok(Vec::new())
    }
    fn restore(&mut self, _bytes: &[u8]) -> Result<(), ProcessError> {
        Ok(())
    }
}

/// Returns the `max_bytes` to use for a read of (topic, partition), given the one asked for.
pub type ReadHook = Box<dyn Fn(&str, u32, usize) -> usize + Send + Sync>;
/// Called after an end-offset query of (topic, partition) with its answer, before it is returned.
pub type EndHook = Box<dyn Fn(&EmbeddedLog, &str, u32, u64) + Send + Sync>;

/// Delegates to an [`EmbeddedLog`], except where a hook or `committed_origin` says otherwise.
pub struct HookedLog {
    pub inner: EmbeddedLog,
    pub on_read: Option<ReadHook>,
    pub on_end: Option<EndHook>,
    /// Overrides the log's committed origin when set.
    pub committed_origin: Option<u64>,
}

impl HookedLog {
    pub fn new(inner: EmbeddedLog) -> Self {
        Self {
            inner,
            on_read: None,
            on_end: None,
            committed_origin: None,
        }
    }
}

impl EventLog for HookedLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> twinline_log::Result<()> {
        self.inner.create_topic(topic, partitions)
    }
    fn partitions(&self, topic: &str) -> twinline_log::Result<u32> {
        self.inner.partitions(topic)
    }
    fn topics(&self) -> Vec<(String, u32)> {
        self.inner.topics()
    }
    fn partition_for(&self, topic: &str, key: &[u8]) -> twinline_log::Result<u32> {
        self.inner.partition_for(topic, key)
    }
    fn append(
        &self,
        topic: &str,
        partition: u32,
        records: &[NewRecord<'_>],
    ) -> twinline_log::Result<AppendResult> {
        self.inner.append(topic, partition, records)
    }
    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max_bytes: usize,
        batch: &mut ReadBatch,
    ) -> twinline_log::Result<()> {
        let max_bytes = match &self.on_read {
            Some(h) => h(topic, partition, max_bytes),
            None => max_bytes,
        };
        self.inner.read(topic, partition, from, max_bytes, batch)
    }
    fn start_offset(&self, topic: &str, partition: u32) -> twinline_log::Result<u64> {
        self.inner.start_offset(topic, partition)
    }
    fn end_offset(&self, topic: &str, partition: u32) -> twinline_log::Result<u64> {
        let end = self.inner.end_offset(topic, partition)?;
        if let Some(h) = &self.on_end {
            h(&self.inner, topic, partition, end);
        }
        Ok(end)
    }
    fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: u32,
        ts: i64,
    ) -> twinline_log::Result<Option<u64>> {
        self.inner.offset_for_timestamp(topic, partition, ts)
    }
    fn commit_position(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> twinline_log::Result<()> {
        self.inner.commit_position(group, topic, partition, offset)
    }
    fn position(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> twinline_log::Result<Option<u64>> {
        self.inner.position(group, topic, partition)
    }
    fn truncate(&self, topic: &str, partition: u32, end: u64) -> twinline_log::Result<()> {
        self.inner.truncate(topic, partition, end)
    }
    fn sync(&self, topic: &str, partition: u32) -> twinline_log::Result<()> {
        self.inner.sync(topic, partition)
    }
    fn committed_origin(&self) -> u64 {
        self.committed_origin
            .unwrap_or_else(|| self.inner.committed_origin())
    }
}
