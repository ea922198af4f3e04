//! The history writer: buffers decoded records by (topic, event date, machine), writes each
//! group as one Parquet file when the buffer is full or old enough, then commits the manifest
//! with the new files and log positions. Compaction merges a group's small files into one;
//! retention drops whole dates older than the configured number of days before the newest
//! event time. Files are written before the manifest names them, so a crash loses only
//! unreferenced files (deleted at the next start) and the writer resumes from the manifest's
//! positions: every record is in the history exactly once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore as _, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tracing::{debug, info, warn};
use twinline_queries::views::ViewEvent;
use twinline_schemas::{Payload, Topic};

use super::rows::{machine_of, new_rows, TopicRows};
use super::store::{position_key, FileEntry, HistoryStore, Manifest, MANIFEST};
use super::{HistoryConfig, HistoryError};

const DAY_MS: i64 = 86_400_000;

/// The UTC date of an event time, `YYYY-MM-DD`.
pub fn date_of(event_time_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(event_time_ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "invalid".to_string())
}

/// A machine id as a path segment: `[A-Za-z0-9_.-]` kept, anything else percent-encoded.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() || out == "." || out == ".." {
        out = format!("%{}", out.len());
    }
    out
}

struct Group {
    rows: Box<dyn TopicRows>,
    count: u64,
    min_time: i64,
    max_time: i64,
    min_origin: u64,
    max_origin: u64,
    min_offset: u64,
    max_offset: u64,
}

/// What one flush or compaction did.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteStats {
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Writes the history. One per history; driven by one thread (the runtime's history task).
pub struct HistoryWriter {
    store: Arc<HistoryStore>,
    config: HistoryConfig,
    /// Buffered rows by (topic, UTC day number) and machine: looked up without allocating.
    groups: HashMap<(Topic, i64), HashMap<String, Group>>,
    buffered_rows: usize,
    /// Read positions (`<topic>/<partition>` → next offset) of everything buffered.
    positions: BTreeMap<String, u64>,
    newest_event_time: Option<i64>,
    oldest_buffered: Option<Instant>,
    /// Files to delete once their grace period is over.
    deletes: Vec<(String, Instant)>,
    rt: tokio::runtime::Runtime,
}

impl HistoryWriter {
    /// Opens the writer on `store`: deletes files left over by an interrupted write and files
    /// a previous run replaced, then resumes from the manifest's positions.
    pub fn open(store: Arc<HistoryStore>, config: HistoryConfig) -> Result<Self, HistoryError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HistoryError::Io(format!("history runtime: {e}")))?;
        let manifest = store.manifest();
        let mut w = HistoryWriter {
            positions: manifest.positions.clone(),
            newest_event_time: manifest.newest_event_time,
            store,
            config,
            groups: HashMap::new(),
            buffered_rows: 0,
            oldest_buffered: None,
            deletes: Vec::new(),
            rt,
        };
        w.clean_leftovers()?;
        Ok(w)
    }

    /// The first offset of `topic`/`partition` the writer has not yet seen.
    pub fn position(&self, topic: Topic, partition: u32) -> u64 {
        self.positions
            .get(&position_key(topic, partition))
            .copied()
            .unwrap_or(0)
    }

    /// Records that everything of `topic`/`partition` before `next_offset` was handed over
    /// (including records that had no rows, such as undecodable ones).
    pub fn advance(&mut self, topic: Topic, partition: u32, next_offset: u64) {
        let e = self
            .positions
            .entry(position_key(topic, partition))
            .or_insert(0);
        *e = (*e).max(next_offset);
    }

    /// Buffers one record.
    pub fn append(
        &mut self,
        topic: Topic,
        partition: u32,
        offset: u64,
        origin: u64,
        payload: &Payload,
    ) {
        let t = payload.event_time();
        let machine = machine_of(payload);
        let cap = self.config.flush_rows.clamp(1, 64 * 1024);
        let by_machine = self
            .groups
            .entry((topic, t.div_euclid(DAY_MS)))
            .or_default();
        if !by_machine.contains_key(machine) {
            by_machine.insert(
                machine.to_string(),
                Group {
                    rows: new_rows(topic, cap.min(4096)),
                    count: 0,
                    min_time: i64::MAX,
                    max_time: i64::MIN,
                    min_origin: u64::MAX,
                    max_origin: 0,
                    min_offset: u64::MAX,
                    max_offset: 0,
                },
            );
        }
        let Some(group) = by_machine.get_mut(machine) else {
            return;
        };
        let event = ViewEvent {
            topic,
            partition,
            offset,
            payload,
        };
        let n = group.rows.append(&event, origin);
        if n == 0 {
            return;
        }
        group.count += n as u64;
        group.min_time = group.min_time.min(t);
        group.max_time = group.max_time.max(t);
        group.min_origin = group.min_origin.min(origin);
        group.max_origin = group.max_origin.max(origin);
        group.min_offset = group.min_offset.min(offset);
        group.max_offset = group.max_offset.max(offset);
        self.buffered_rows += n;
        self.newest_event_time = Some(self.newest_event_time.map_or(t, |m| m.max(t)));
        self.oldest_buffered.get_or_insert_with(Instant::now);
    }

    pub fn buffered_rows(&self) -> usize {
        self.buffered_rows
    }

    /// Whether the buffer is due for a flush (full, or holding rows older than the interval).
    pub fn flush_due(&self) -> bool {
        self.buffered_rows >= self.config.flush_rows
            || self
                .oldest_buffered
                .is_some_and(|t| t.elapsed() >= self.config.flush_interval)
    }

    /// Writes every buffered group and commits the manifest; then compacts, applies retention
    /// and deletes files whose grace period is over.
    ///
    /// On failure the writer forgets what it buffered and goes back to the manifest's positions
    /// (the caller re-reads those records from the log): nothing is lost or written twice.
    pub fn flush(&mut self) -> Result<WriteStats, HistoryError> {
        match self.flush_inner() {
            Ok(s) => Ok(s),
            Err(e) => {
                let manifest = self.store.manifest();
                self.groups.clear();
                self.buffered_rows = 0;
                self.oldest_buffered = None;
                self.positions = manifest.positions.clone();
                self.newest_event_time = manifest.newest_event_time;
                Err(e)
            }
        }
    }

    fn flush_inner(&mut self) -> Result<WriteStats, HistoryError> {
        let started = Instant::now();
        let mut manifest = (*self.store.manifest()).clone();
        let moved = manifest.positions != self.positions;
        if self.groups.is_empty() && !moved {
            self.oldest_buffered = None;
            return Ok(WriteStats::default());
        }
        let mut stats = WriteStats::default();
        let mut groups: Vec<_> = self
            .groups
            .drain()
            .flat_map(|((topic, day), machines)| {
                let date = date_of(day * DAY_MS);
                machines
                    .into_iter()
                    .map(move |(machine, g)| ((topic, date.clone(), machine), g))
            })
            .collect();
        // Deterministic file numbering for the same buffer content.
        groups.sort_by(|a, b| {
            (a.0 .0.name(), &a.0 .1, &a.0 .2).cmp(&(b.0 .0.name(), &b.0 .1, &b.0 .2))
        });
        for ((topic, date, machine), mut g) in groups {
            if g.count == 0 {
                continue;
            }
            let batch = g.rows.finish()?;
            let n = manifest.next_file;
            manifest.next_file += 1;
            let path = format!(
                "{}/date={date}/machine={}/{n:010}.parquet",
                topic.name(),
                path_segment(&machine)
            );
            let bytes = self.encode(&[batch])?;
            let len = bytes.len() as u64;
            self.put(&path, bytes)?;
            stats.files += 1;
            stats.rows += g.count;
            stats.bytes += len;
            manifest.files.push(FileEntry {
                path,
                topic: topic.name().to_string(),
                date,
                machine,
                rows: g.count,
                bytes: len,
                min_time: g.min_time,
                max_time: g.max_time,
                min_origin: g.min_origin,
                max_origin: g.max_origin,
                min_offset: g.min_offset,
                max_offset: g.max_offset,
            });
        }
        manifest.positions = self.positions.clone();
        manifest.newest_event_time = self.newest_event_time;
        self.store_commit(manifest)?;
        self.buffered_rows = 0;
        self.oldest_buffered = None;
        stats.elapsed = started.elapsed();
        debug!(
            files = stats.files,
            rows = stats.rows,
            bytes = stats.bytes,
            "history flushed"
        );
        self.compact()?;
        self.apply_retention()?;
        self.delete_expired(false)?;
        Ok(stats)
    }

    /// Merges the small files of each (topic, date, machine) group once it has
    /// `compact_min_files` of them. Returns what was written.
    pub fn compact(&mut self) -> Result<WriteStats, HistoryError> {
        let started = Instant::now();
        let manifest = self.store.manifest();
        let target = self.config.compact_target_rows as u64;
        let mut by_group: BTreeMap<(&str, &str, &str), Vec<&FileEntry>> = BTreeMap::new();
        for f in manifest.files.iter().filter(|f| f.rows < target) {
            by_group
                .entry((&f.topic, &f.date, &f.machine))
                .or_default()
                .push(f);
        }
        let mut stats = WriteStats::default();
        let mut next = (*manifest).clone();
        let mut replaced: HashSet<String> = HashSet::new();
        for ((topic, date, machine), mut files) in by_group {
            if files.len() < self.config.compact_min_files.max(2) {
                continue;
            }
            // In log order (the order they were written in); a group spans one partition
            // except plant-wide ones, whose merged order stays file order.
            files.sort_by_key(|f| (f.min_origin, f.min_offset, f.path.clone()));
            let mut batches = Vec::new();
            for f in &files {
                let bytes = self.get(&f.path)?;
                let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
                    .with_batch_size(64 * 1024)
                    .build()?;
                for b in reader {
                    batches.push(b?);
                }
            }
            let n = next.next_file;
            next.next_file += 1;
            let path = format!(
                "{topic}/date={date}/machine={}/{n:010}.parquet",
                path_segment(machine)
            );
            let bytes = self.encode(&batches)?;
            let len = bytes.len() as u64;
            self.put(&path, bytes)?;
            let rows: u64 = files.iter().map(|f| f.rows).sum();
            next.files.push(FileEntry {
                path,
                topic: topic.to_string(),
                date: date.to_string(),
                machine: machine.to_string(),
                rows,
                bytes: len,
                min_time: files.iter().map(|f| f.min_time).min().unwrap_or(0),
                max_time: files.iter().map(|f| f.max_time).max().unwrap_or(0),
                min_origin: files.iter().map(|f| f.min_origin).min().unwrap_or(0),
                max_origin: files.iter().map(|f| f.max_origin).max().unwrap_or(0),
                min_offset: files.iter().map(|f| f.min_offset).min().unwrap_or(0),
                max_offset: files.iter().map(|f| f.max_offset).max().unwrap_or(0),
            });
            stats.files += 1;
            stats.rows += rows;
            stats.bytes += len;
            for f in files {
                replaced.insert(f.path.clone());
            }
        }
        if stats.files == 0 {
            return Ok(stats);
        }
        self.retire(next, replaced)?;
        stats.elapsed = started.elapsed();
        info!(
            files = stats.files,
            rows = stats.rows,
            bytes = stats.bytes,
            ms = stats.elapsed.as_millis() as u64,
            "history compacted"
        );
        Ok(stats)
    }

    /// Drops dates older than `retention_days` before the newest event time.
    fn apply_retention(&mut self) -> Result<(), HistoryError> {
        let (Some(days), Some(newest)) = (
            (self.config.retention_days > 0).then_some(self.config.retention_days),
            self.newest_event_time,
        ) else {
            return Ok(());
        };
        let cutoff = date_of(newest.saturating_sub(i64::from(days) * DAY_MS));
        let manifest = self.store.manifest();
        let dropped: Vec<String> = manifest
            .files
            .iter()
            .filter(|f| f.date < cutoff)
            .map(|f| f.path.clone())
            .collect();
        if dropped.is_empty() {
            return Ok(());
        }
        let files = dropped.len();
        self.retire((*manifest).clone(), dropped.into_iter().collect())?;
        info!(files, before = %cutoff, "history retention dropped old dates");
        Ok(())
    }

    /// Commits `next` without the `retired` files and schedules their deletion after the grace
    /// period (recorded in the manifest too, so a restart still deletes them).
    fn retire(&mut self, mut next: Manifest, retired: HashSet<String>) -> Result<(), HistoryError> {
        next.files.retain(|f| !retired.contains(&f.path));
        next.pending_deletes.extend(retired.iter().cloned());
        self.store_commit(next)?;
        let deadline = Instant::now() + self.config.delete_grace;
        self.deletes
            .extend(retired.into_iter().map(|p| (p, deadline)));
        Ok(())
    }

    /// Deletes replaced files whose grace period is over (`all`: every one, at shutdown of a
    /// test or at start).
    pub fn delete_expired(&mut self, all: bool) -> Result<(), HistoryError> {
        let now = Instant::now();
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deletes)
            .into_iter()
            .partition(|(_, t)| all || *t <= now);
        self.deletes = keep;
        if due.is_empty() {
            return Ok(());
        }
        for (p, _) in &due {
            self.delete(p)?;
        }
        let done: HashSet<&String> = due.iter().map(|(p, _)| p).collect();
        let mut next = (*self.store.manifest()).clone();
        next.pending_deletes.retain(|p| !done.contains(p));
        self.store_commit(next)
    }

    /// Deletes files that no manifest references (an interrupted flush or compaction) and the
    /// replaced files a previous run had not deleted yet.
    fn clean_leftovers(&mut self) -> Result<(), HistoryError> {
        let manifest = self.store.manifest();
        let live: HashSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        let store = self.store.object_store();
        let listed: Vec<object_store::ObjectMeta> = self
            .rt
            .block_on(async { store.list(None).try_collect().await })?;
        let mut removed = 0;
        for meta in listed {
            let p = meta.location.to_string();
            if p == MANIFEST || live.contains(p.as_str()) || !p.ends_with(".parquet") {
                continue;
            }
            self.delete(&p)?;
            removed += 1;
        }
        if !manifest.pending_deletes.is_empty() {
            let mut next = (*manifest).clone();
            next.pending_deletes.clear();
            self.store_commit(next)?;
        }
        if removed > 0 {
            warn!(
                files = removed,
                "deleted history files no manifest referenced"
            );
        }
        Ok(())
    }

    fn encode(&self, batches: &[RecordBatch]) -> Result<Bytes, HistoryError> {
        let Some(first) = batches.first() else {
            return Err(HistoryError::Io("nothing to encode".into()));
        };
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .set_max_row_group_row_count(Some(self.config.row_group_rows.max(1024)))
            .build();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, first.schema(), Some(props))?;
        for b in batches {
            w.write(b)?;
        }
        w.close()?;
        Ok(Bytes::from(buf))
    }

    fn put(&self, path: &str, bytes: Bytes) -> Result<(), HistoryError> {
        let store = self.store.object_store();
        let p = ObjectPath::from(path);
        self.rt
            .block_on(async { store.put(&p, PutPayload::from(bytes)).await })?;
        Ok(())
    }

    fn get(&self, path: &str) -> Result<Bytes, HistoryError> {
        let store = self.store.object_store();
        let p = ObjectPath::from(path);
        Ok(self
            .rt
            .block_on(async { store.get(&p).await?.bytes().await })?)
    }

    fn delete(&self, path: &str) -> Result<(), HistoryError> {
        let store = self.store.object_store();
        let p = ObjectPath::from(path);
        match self.rt.block_on(async { store.delete(&p).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn store_commit(&self, manifest: Manifest) -> Result<(), HistoryError> {
        let store = self.store.clone();
        self.rt.block_on(async { store.commit(manifest).await })
    }
}
