//! The `EventLog` trait (what the runtime needs from a partitioned, offset-addressed event log) and
//! `EmbeddedLog`, its durable single-process backend.
//!
//! # Model
//!
//! A log holds topics; a topic holds `n` partitions; a partition is a sequence of records addressed
//! by ascending offsets from `start_offset` (first retained) to `end_offset` (next to write),
//! consecutive except where [`EventLog::append_at`] left offsets without records. A
//! record is `{offset, timestamp, origin, key, value, headers}` (ARCHITECTURE.md "Records and
//! topics"). Keys are mapped to partitions with Kafka's default partitioner ([`murmur2`]).
//!
//! # Origins
//!
//! One `u64` counter per log. `append` stamps records with `origin: None` with the next counter
//! values and keeps `Some(o)` as given (derived records, replay copies) while keeping the counter
//! above `o`. Stamping, writing and publishing happen under one log-wide lock, so origins become
//! visible in counter order. [`EventLog::committed_origin`] is stored after publication:
//! when it returns `C`, every record with a counter-assigned origin `<= C` is already visible in
//! every partition, and any record appended later gets a counter origin `> C`. A merging reader
//! therefore reads `C` first, then its partitions, and may process in origin order every record
//! with origin `<= C`; records it sees with a larger origin wait for the next round. On open the
//! counter restarts at one past the largest origin in the data (so truncating away
//! counter-stamped records lets their origins be assigned again; only derived records, which
//! carry their source's origin, are ever truncated by the runtime).
//!
//! # FORMAT (embedded backend, version 1)
//!
//! ```text
//! <root>/.lock                         flock held by the writer process (fs2)
//! <root>/topics.json                   {"version":1,"topics":{"<name>":{"partitions":N}}}
//!                                      replaced atomically (temp, fsync, rename, fsync dir)
//! <root>/<topic>/<partition>/<base:020>.log    segment: record frames, first at offset >= base
//! <root>/<topic>/<partition>/<base:020>.index  sparse index of a sealed segment (optional)
//! <root>/_positions/<group %-escaped>/<topic>.<partition>   u64 LE offset + CRC32C, atomic
//! ```
//!
//! A segment is a plain concatenation of frames, no file header. Frame (little-endian):
//!
//! ```text
//! u32 len          bytes after this field
//! u32 crc          CRC32C (Castagnoli) of the 4 len bytes followed by the body
//! u64 offset       explicit; ascending within the partition, consecutive except where
//!                  `append_at` skipped offsets (a copied Kafka topic's offsets without records)
//! i64 timestamp    event time, Unix ms
//! u64 origin
//! u32 key_len, u32 value_len, u16 header_count
//! key, value, header_count x (u16 name_len, UTF-8 name, u32 value_len, value)
//! ```
//!
//! Offsets skipped by `append_at` exist only in logs written since it was added (replays of Kafka
//! inputs with such offsets); earlier builds would read the skip as a corrupt frame.
//!
//! The `.index` file (written when a segment is sealed) is: magic `TLIX`, `u32` version 1, `u64`
//! base, `u64` segment size, `u64` next offset, `i64` max timestamp, `u8` has-origin, `u64` max
//! origin, `u32` entry count, entries of (`u32` relative offset, `u64` file position, `i64` largest
//! timestamp of the segment's records before this one), then a CRC32C of all of it. An entry
//! is kept every ~4 KiB of records. The same index lives in memory for every segment.
//!
//! # Durability and recovery
//!
//! - Appends write a whole batch with one positional write, then publish the new end (offset, size,
//!   index entries) under a lock. Readers `pread` only below the published size, so they never see
//!   a partial record. `FsyncPolicy` decides when `fdatasync` runs: after every append, every
//!   `n` ms (checked on append and by a background thread), or only on `sync`, on segment roll and
//!   on close. Sealed segments are always synced before their index is written.
//! - Open (writer): the active (last) segment, and every sealed segment without an index that
//!   matches its size, is scanned and each frame's CRC, lengths and offset (above its
//!   predecessor's) are checked. At the first invalid or incomplete frame the file is truncated
//!   there (with `tracing::warn!`); later
//!   segments, which can no longer follow contiguously, are deleted with a warning. Everything
//!   before the first bad byte is kept.
//! - Open read-only: the same scan, but nothing is modified; an invalid tail is ignored and reads
//!   pick up new complete records as the writer adds them.
//! - Retention deletes whole sealed segments from the front: by size (Kafka's rule: drop the oldest
//!   while the rest is still at least `retention_bytes`) and by time (a segment whose newest
//!   timestamp is more than `retention_ms` older than the newest timestamp in the partition). The
//!   active segment is never deleted.

mod embedded;
mod error;
pub mod murmur2;
mod partition;
mod positions;
mod record;
mod segment;

pub use embedded::{validate_topic_name, EmbeddedLog};
pub use error::{ErrorClass, LogError, Result};
pub use record::{Headers, HeadersIter, NewRecord, ReadBatch, ReadBatchIter, RecordRef};

/// One partition's share of an [`EventLog::append_ordered`] call.
pub struct OrderedGroup<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub records: &'a [NewRecord<'a>],
    /// Per record, its place in the caller's order (see [`EventLog::append_ordered`]).
    pub seq: &'a [u64],
}

/// Offsets assigned to an appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset of the first record of the batch.
    pub base_offset: u64,
    /// Offset of the last record of the batch.
    pub last_offset: u64,
}

/// When appended data is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Only on `sync`, segment roll and close. The OS may lose recent appends on a power failure
    /// (a process crash loses nothing that `append` returned).
    Never,
    /// After every `append`, before it returns.
    Always,
    /// At most this many milliseconds after data was appended.
    IntervalMs(u64),
}

/// Settings of an `EmbeddedLog`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// A segment is sealed and a new one started when the next batch would exceed this size.
    pub segment_bytes: u64,
    /// Keep at most about this many bytes per partition (whole segments are deleted).
    pub retention_bytes: Option<u64>,
    /// Delete segments whose newest record timestamp is older than the partition's newest
    /// timestamp minus this many ms.
    pub retention_ms: Option<i64>,
    /// Largest accepted encoded record (frame included).
    pub max_record_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            fsync: FsyncPolicy::IntervalMs(1000),
            segment_bytes: 128 << 20,
            retention_bytes: None,
            retention_ms: None,
            max_record_bytes: 64 << 20,
        }
    }
}

/// What a task writes through on a backend whose outputs cannot be truncated (Kafka): one open
/// transaction holding the task's derived records, committed together with its checkpoint and
/// input positions, so that after a crash the outputs and the checkpoint agree without truncation.
pub trait TaskWriter: Send {
    /// The checkpoint of the task's last committed transaction, if any.
    fn load_checkpoint(&mut self) -> Result<Option<Vec<u8>>>;

    /// Adds records to the open transaction (beginning one if needed). `first_seq` is the logical
    /// offset of the first record: its position among the partition's committed records, which is
    /// what readers of this backend see as the offset.
    fn append(
        &mut self,
        topic: &str,
        partition: u32,
        first_seq: u64,
        records: &[NewRecord<'_>],
    ) -> Result<()>;

    /// Commits everything appended since the last commit together with `checkpoint`, the next
    /// input offsets `(topic, partition, offset)` and, if given, the task's frontier (published
    /// to every process through [`EventLog::watch_frontiers`]): all of it becomes visible, or
    /// none.
    fn commit(
        &mut self,
        checkpoint: &[u8],
        inputs: &[(String, u32, u64)],
        frontier: Option<&[u8]>,
    ) -> Result<()>;
}

/// A change of the task slots this process owns in a [`EventLog::join_task_group`] group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEvent<'a> {
    /// These slots are now this process's: start their tasks.
    Assigned(&'a [u32]),
    /// These slots are taken away: stop their tasks (final checkpoint) before returning.
    Revoked(&'a [u32]),
}

/// Called by the group's thread on every change, synchronously: another process gets a revoked
/// slot only after the handler returned.
pub type GroupHandler = std::sync::Arc<dyn Fn(GroupEvent<'_>) + Send + Sync>;

/// Called with (task, frontier bytes) for every frontier a task commits, in any process.
pub type FrontierHandler = std::sync::Arc<dyn Fn(&str, &[u8]) + Send + Sync>;

/// Membership of a task group; dropping it (or [`TaskGroup::leave`]) leaves the group, which
/// revokes every slot this process owns first.
pub trait TaskGroup: Send {
    fn leave(self: Box<Self>);
}

/// A partitioned, offset-addressed, durable event log: what the runtime, the CLI and the query
/// layer need from the embedded log or from Kafka.
///
/// All methods take `&self`; implementations are shared between threads with `Arc`.
pub trait EventLog: Send + Sync {
    /// Creates a topic with `partitions` partitions. Idempotent when the topic already exists with
    /// the same count; `LogError::PartitionCountMismatch` when the count differs.
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<()>;

    /// Partition count of a topic.
    fn partitions(&self, topic: &str) -> Result<u32>;

    /// All topics with their partition counts, sorted by name.
    fn topics(&self) -> Vec<(String, u32)>;

    /// The partition Kafka's default partitioner picks for `key`:
    /// `(murmur2(key) & 0x7fffffff) % partitions`.
    fn partition_for(&self, topic: &str, key: &[u8]) -> Result<u32>;

    /// Appends a non-empty batch to one partition, atomically visible to readers (all or none).
    /// Stamps origins (see the crate docs). Returns the offsets assigned.
    fn append(
        &self,
        topic: &str,
        partition: u32,
        records: &[NewRecord<'_>],
    ) -> Result<AppendResult>;

    /// Appends to several partitions as one step whose origins follow the caller's order:
    /// record `i` of a group gets origin `base + seq[i]`, where the `seq` values of all groups
    /// together are exactly `0..total`, so the records are processed as if appended one by one
    /// in `seq` order, however the caller grouped them (the committed origin moves once, after
    /// everything is written). Groups name distinct partitions; records carry no explicit
    /// origin. Producers use this so that the processing order does not depend on how they
    /// batch. On an error, the groups before the failing one (in the order given) may already
    /// be visible. The default appends group by group (origins then follow the groups), for
    /// backends that cannot do better.
    fn append_ordered(&self, groups: &[OrderedGroup<'_>]) -> Result<Vec<AppendResult>> {
        groups
            .iter()
            .map(|g| self.append(g.topic, g.partition, g.records))
            .collect()
    }

    /// Appends a non-empty batch to one partition at the given offsets: strictly ascending, the
    /// first at or past the partition's end. Offsets skipped hold no record, as in a Kafka topic
    /// written by a transactional producer (markers, aborted records) or compacted; reads step
    /// over them. For copying such a topic with its offsets (replay). Origins as in
    /// [`EventLog::append`]. Backends that number records themselves answer
    /// `LogError::Unsupported`.
    fn append_at(
        &self,
        _topic: &str,
        _partition: u32,
        _offsets: &[u64],
        _records: &[NewRecord<'_>],
    ) -> Result<AppendResult> {
        Err(LogError::Unsupported(
            "appending at given offsets (append_at) is not supported by this log",
        ))
    }

    /// Replaces `batch` with whole records from `from_offset` on, at most `max_bytes` of encoded
    /// records but always at least one if any exists. `from_offset == end_offset` gives an empty
    /// batch; outside `[start_offset, end_offset]` is `LogError::OffsetOutOfRange`. A read may
    /// return fewer records than fit (it stops at segment boundaries): read again from
    /// `batch.next_offset()`.
    fn read(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_bytes: usize,
        batch: &mut ReadBatch,
    ) -> Result<()>;

    /// First retained offset.
    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64>;

    /// The offset the next appended record will get.
    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64>;

    /// First offset whose timestamp is `>= ts` (timestamps need not be monotonic), or `None`.
    fn offset_for_timestamp(&self, topic: &str, partition: u32, ts: i64) -> Result<Option<u64>>;

    /// Durably stores a consumer group's position (the next offset it will read).
    fn commit_position(&self, group: &str, topic: &str, partition: u32, offset: u64) -> Result<()>;

    /// The last committed position of a group, if any.
    fn position(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>>;

    /// Drops every record at offset `>= end_offset` (recovery of a task's owned outputs). The
    /// end becomes one past the last record kept: `end_offset`, or less where offsets without
    /// records (`append_at`) come before it.
    /// No reader may be reading the dropped range concurrently. Backends without truncation
    /// (Kafka) return `LogError::Unsupported`.
    fn truncate(&self, topic: &str, partition: u32, end_offset: u64) -> Result<()>;

    /// Makes everything appended to the partition so far durable (fsync).
    fn sync(&self, topic: &str, partition: u32) -> Result<()>;

    /// A transactional writer for task `task`, on backends that cannot truncate (Kafka). `None`
    /// (the default) means the task appends with [`EventLog::append`], checkpoints to a file and
    /// truncates its outputs on recovery.
    fn task_writer(&self, task: &str) -> Result<Option<Box<dyn TaskWriter>>> {
        let _ = task;
        Ok(None)
    }

    /// For readers that tail a partition from their own position: reads what `topic/partition`
    /// holds from `from` on (from its first retained offset when `from` is below it) into
    /// `batch`. False when there is nothing there yet, which includes a partition that ends
    /// below `from` (an embedded task truncated its outputs on recovery; what it truncated is
    /// derived again, byte for byte).
    fn read_tail(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max_bytes: usize,
        batch: &mut ReadBatch,
    ) -> Result<bool> {
        let from = from.max(self.start_offset(topic, partition)?);
        if from >= self.end_offset(topic, partition)? {
            batch.clear();
            return Ok(false);
        }
        self.read(topic, partition, from, max_bytes, batch)?;
        Ok(true)
    }

    /// Shares `slots` task slots among every process that joins with the same log (a consumer
    /// group on Kafka). `None` (the default): this process is the only one and owns every slot.
    fn join_task_group(
        &self,
        slots: u32,
        handler: GroupHandler,
    ) -> Result<Option<Box<dyn TaskGroup>>> {
        let _ = (slots, handler);
        Ok(None)
    }

    /// Calls `handler` with every frontier committed through a [`TaskWriter`] (those committed
    /// before, then new ones as they come), on a thread of the log. The default does nothing:
    /// without task writers, frontiers stay within the process.
    fn watch_frontiers(&self, handler: FrontierHandler) -> Result<()> {
        let _ = handler;
        Ok(())
    }

    /// `C` such that every counter-stamped record with origin `<= C` is visible and every later
    /// append gets a larger counter origin. See the crate docs, "Origins".
    fn committed_origin(&self) -> u64;
}
