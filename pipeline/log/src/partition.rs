//! One partition of the embedded log: its segment list, the writer (append, roll, truncate,
//! retention, fsync), recovery on open, and the positional reads readers run concurrently.
//!
//! Concurrency: `writer` serialises everything that mutates the partition. Readers take the
//! `segments` read lock and a segment's `meta` read lock only long enough to copy the published
//! bounds, then `pread` without locks. The writer writes bytes first and publishes the new end
//! (offset, size, index entries) in one `meta` write-lock section afterwards, so a reader can never
//! observe a partial record.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::error::{LogError, Result};
use crate::record::{check_frame, encode_into, frame_fixed, FrameCheck, NewRecord, ReadBatch};
use crate::segment::{
    self, index_path, IndexEntry, SegMeta, Segment, INDEX_INTERVAL, OFFSET_BACKWARDS,
};
use crate::{AppendResult, FsyncPolicy, LogConfig};

/// Extra bytes read before the requested offset: the nearest index entry is at most about
/// `INDEX_INTERVAL` plus one record before it.
const SEEK_SLACK: usize = 2 * INDEX_INTERVAL as usize;

/// The log-wide origin counter, shared by all partitions.
#[derive(Debug)]
pub(crate) struct OriginClock {
    /// Next origin to assign. Held across stamping, writing and publishing so that origins become
    /// visible in counter order (ARCHITECTURE.md "Determinism: the origin order").
    pub next: Mutex<u64>,
    /// Every counter-assigned origin `<= committed` is visible; later appends get larger origins.
    pub committed: AtomicU64,
}

/// How [`Partition::write_stamped`] gives records their origins.
pub(crate) enum Origins<'a> {
    /// `None` origins take the next counter value; explicit ones move the counter past them.
    Counter(&'a mut u64),
    /// Record `i` gets `base + seq[i]` (a range reserved by the caller under the clock lock).
    Reserved { base: u64, seq: &'a [u64] },
}

/// Writer-side state of a partition.
#[derive(Debug)]
pub(crate) struct WriterState {
    scratch: Vec<u8>,
    pending: Vec<IndexEntry>,
    /// Data was written since the last fsync.
    pub dirty: bool,
    pub last_sync: Instant,
    poisoned: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Partition {
    pub topic: String,
    pub id: u32,
    pub dir: PathBuf,
    writable: bool,
    /// Ascending by base offset, contiguous (`segments[i+1].base == segments[i].next_offset`).
    /// In write mode never empty: the last one is the active segment.
    segments: RwLock<Vec<Arc<Segment>>>,
    pub writer: Mutex<WriterState>,
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("syncing directory", dir, e))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("removing", path, e)),
    }
}

/// Segment files of a partition directory, ascending by base offset.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(LogError::io("listing", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("listing", dir, e))?;
        let name = entry.file_name();
        if let Some(base) = name.to_str().and_then(segment::parse_log_name) {
            out.push((base, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(b, _)| *b);
    Ok(out)
}

impl Partition {
    /// Opens (write mode: creates, recovers) a partition directory.
    pub fn load(topic: &str, id: u32, dir: PathBuf, writable: bool) -> Result<Partition> {
        if writable {
            fs::create_dir_all(&dir).map_err(|e| LogError::io("creating", &dir, e))?;
        }
        let segments = load_segments(topic, id, &dir, writable)?;
        let part = Partition {
            topic: topic.to_owned(),
            id,
            dir,
            writable,
            segments: RwLock::new(segments),
            writer: Mutex::new(WriterState {
                scratch: Vec::new(),
                pending: Vec::new(),
                dirty: false,
                last_sync: Instant::now(),
                poisoned: None,
            }),
        };
        if writable && part.segments.read().is_empty() {
            let seg = Segment::create(&part.dir, 0)?;
            sync_dir(&part.dir)?;
            part.segments.write().push(Arc::new(seg));
        }
        Ok(part)
    }

    fn active(&self) -> Option<Arc<Segment>> {
        self.segments.read().last().cloned()
    }

    /// `(start_offset, end_offset)` of what is visible now.
    pub fn bounds(&self) -> (u64, u64) {
        let segs = self.segments.read();
        bounds_of(&segs)
    }

    /// Largest origin stored in the partition.
    pub fn max_origin(&self) -> Option<u64> {
        self.segments
            .read()
            .iter()
            .filter_map(|s| s.meta.read().max_origin)
            .max()
    }

    fn out_of_range(&self, requested: u64, (start, end): (u64, u64)) -> LogError {
        LogError::OffsetOutOfRange {
            topic: self.topic.clone(),
            partition: self.id,
            requested,
            start,
            end,
        }
    }

    fn corrupt(seg: &Segment, position: u64, reason: impl Into<String>) -> LogError {
        LogError::Corrupt {
            path: seg.path.clone(),
            position,
            reason: reason.into(),
        }
    }

    // ---- append ---------------------------------------------------------------------------------

    /// Appends `records`, numbered from the end, or at `offsets` when given (see
    /// `EventLog::append_at`).
    pub fn append(
        &self,
        clock: &OriginClock,
        config: &LogConfig,
        records: &[NewRecord<'_>],
        offsets: Option<&[u64]>,
    ) -> Result<AppendResult> {
        let mut guard = self.writer.lock();
        let (active, rolled) = self.prepare_append(&mut guard, config, records, offsets)?;
        let result = {
            let mut next_origin = clock.next.lock();
            let mut counter = *next_origin;
            let r = self.write_stamped(
                &mut guard,
                &active,
                records,
                offsets,
                Origins::Counter(&mut counter),
            )?;
            *next_origin = counter;
            clock
                .committed
                .store(counter.saturating_sub(1), Ordering::Release);
            r
        };
        self.finish_append(guard, &active, rolled, config)?;
        Ok(result)
    }

    /// Checks a batch (and its offsets, when given) and rolls the active segment when the batch
    /// does not fit. Caller holds `writer` (passed as `w`). Returns the segment to write to and
    /// whether it rolled.
    pub(crate) fn prepare_append(
        &self,
        w: &mut WriterState,
        config: &LogConfig,
        records: &[NewRecord<'_>],
        offsets: Option<&[u64]>,
    ) -> Result<(Arc<Segment>, bool)> {
        if !self.writable {
            return Err(LogError::ReadOnly);
        }
        if records.is_empty() {
            return Err(LogError::InvalidArgument("append of an empty batch".into()));
        }
        let mut batch_bytes: u64 = 0;
        for rec in records {
            rec.check_lengths().map_err(LogError::InvalidArgument)?;
            let size = rec.encoded_len();
            if size > config.max_record_bytes {
                return Err(LogError::RecordTooLarge {
                    size,
                    max: config.max_record_bytes,
                });
            }
            batch_bytes += size as u64;
        }
        if let Some(reason) = &w.poisoned {
            return Err(LogError::Poisoned {
                topic: self.topic.clone(),
                partition: self.id,
                reason: reason.clone(),
            });
        }
        let mut active = self
            .active()
            .ok_or_else(|| LogError::InvalidArgument("partition has no active segment".into()))?;
        let mut rolled = false;
        let (size, next) = {
            let m = active.meta.read();
            (m.size, m.next_offset)
        };
        // One past the batch's last offset.
        let batch_end = match offsets {
            None => next + records.len() as u64,
            Some(offsets) => {
                if offsets.len() != records.len() {
                    return Err(LogError::InvalidArgument(format!(
                        "append_at: {} offsets for {} records",
                        offsets.len(),
                        records.len()
                    )));
                }
                let ascending = offsets.windows(2).all(|w| w[0] < w[1]);
                match (offsets.first(), offsets.last()) {
                    (Some(&first), Some(&last)) if ascending && first >= next => {
                        // A new segment starts at `next`: the batch must fit one from there.
                        if last - next >= u64::from(u32::MAX) {
                            return Err(LogError::InvalidArgument(format!(
                                "append_at: offset {last} is too far past the end {next} (more \
                                 than u32::MAX offsets)"
                            )));
                        }
                        last + 1
                    }
                    _ => {
                        return Err(LogError::InvalidArgument(format!(
                            "append_at: offsets must be strictly ascending and start at or past \
                             the end {next} (first {:?}, last {:?})",
                            offsets.first(),
                            offsets.last()
                        )))
                    }
                }
            }
        };
        // A batch never spans segments; a batch larger than segment_bytes gets its own segment.
        // Relative offsets in the index are u32.
        let too_big = size > 0 && size + batch_bytes > config.segment_bytes;
        let too_many = batch_end - active.base_offset > u64::from(u32::MAX);
        if too_big || too_many {
            active = self.roll()?;
            rolled = true;
        }
        Ok((active, rolled))
    }

    /// Stamps, writes and publishes a batch prepared by [`Partition::prepare_append`]. Caller
    /// holds `writer` and the origin clock's `next` lock (origins become visible in order).
    pub(crate) fn write_stamped(
        &self,
        w: &mut WriterState,
        active: &Segment,
        records: &[NewRecord<'_>],
        offsets: Option<&[u64]>,
        mut origins: Origins<'_>,
    ) -> Result<AppendResult> {
        let base = active.base_offset;
        let (start_size, start_next, mut max_ts, mut max_origin, mut last_entry_pos) = {
            let m = active.meta.read();
            (
                m.size,
                m.next_offset,
                m.max_ts,
                m.max_origin,
                m.entries.last().map(|e| e.pos),
            )
        };
        w.scratch.clear();
        w.pending.clear();
        let first_offset = offsets.map_or(start_next, |o| o[0]);
        let mut offset = start_next;
        for (i, rec) in records.iter().enumerate() {
            if let Some(offsets) = offsets {
                offset = offsets[i];
            }
            let origin = match (&mut origins, rec.origin) {
                (Origins::Counter(counter), Some(o)) => {
                    **counter = (**counter).max(o.saturating_add(1));
                    o
                }
                (Origins::Counter(counter), None) => {
                    let o = **counter;
                    **counter += 1;
                    o
                }
                (Origins::Reserved { base, seq }, _) => *base + seq[i],
            };
            let pos = start_size + w.scratch.len() as u64;
            if last_entry_pos.is_none_or(|p| pos >= p + INDEX_INTERVAL) {
                w.pending.push(IndexEntry {
                    rel: (offset - base) as u32,
                    pos,
                    max_ts_before: max_ts,
                });
                last_entry_pos = Some(pos);
            }
            encode_into(&mut w.scratch, offset, origin, rec);
            max_ts = max_ts.max(rec.timestamp);
            max_origin = Some(max_origin.map_or(origin, |m| m.max(origin)));
            offset += 1;
        }
        if let Err(e) = active.file.write_all_at(&w.scratch, start_size) {
            // Nothing was published and the counter did not move; cut off whatever part of the
            // batch reached the file so a later append cannot leave stale frames behind it.
            if let Err(e2) = active.file.set_len(start_size) {
                w.poisoned = Some(format!("write failed ({e}) and rollback failed ({e2})"));
            }
            return Err(LogError::io("writing segment", &active.path, e));
        }
        {
            let mut m = active.meta.write();
            m.entries.extend_from_slice(&w.pending);
            m.size = start_size + w.scratch.len() as u64;
            m.next_offset = offset;
            m.max_ts = max_ts;
            m.max_origin = max_origin;
        }
        w.dirty = true;
        Ok(AppendResult {
            base_offset: first_offset,
            last_offset: offset - 1,
        })
    }

    /// After a write: fsync when the policy says so, retention after a roll (releases `writer`).
    fn finish_append(
        &self,
        mut guard: parking_lot::MutexGuard<'_, WriterState>,
        active: &Segment,
        rolled: bool,
        config: &LogConfig,
    ) -> Result<()> {
        Self::sync_if_due(&mut guard, active, config)?;
        if rolled {
            drop(guard);
            self.enforce_retention(config)?;
        }
        Ok(())
    }

    /// Fsyncs the active segment when the fsync policy says it is time. Caller holds `writer`.
    pub(crate) fn sync_if_due(
        w: &mut WriterState,
        active: &Segment,
        config: &LogConfig,
    ) -> Result<()> {
        let due = match config.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Never => false,
            FsyncPolicy::IntervalMs(ms) => w.last_sync.elapsed().as_millis() >= u128::from(ms),
        };
        if due {
            Self::sync_segment(w, active)?;
        }
        Ok(())
    }

    fn sync_segment(w: &mut WriterState, seg: &Segment) -> Result<()> {
        seg.file
            .sync_data()
            .map_err(|e| LogError::io("syncing segment", &seg.path, e))?;
        w.dirty = false;
        w.last_sync = Instant::now();
        Ok(())
    }

    /// Seals the active segment (fsync, index file) and starts a new one. Caller holds `writer`.
    fn roll(&self) -> Result<Arc<Segment>> {
        let old = self
            .active()
            .ok_or_else(|| LogError::InvalidArgument("partition has no active segment".into()))?;
        let meta = old.meta.read().clone();
        // Always fsync a sealed segment, whatever the policy: sealing happens once per
        // `segment_bytes`, and `sync()` then only ever needs to flush the active segment.
        old.file
            .sync_data()
            .map_err(|e| LogError::io("syncing segment", &old.path, e))?;
        segment::write_index(&old, &meta)?;
        let new = Arc::new(Segment::create(&self.dir, meta.next_offset)?);
        sync_dir(&self.dir)?;
        self.segments.write().push(new.clone());
        Ok(new)
    }

    /// Makes everything appended so far durable.
    pub fn sync(&self) -> Result<()> {
        if !self.writable {
            return Err(LogError::ReadOnly);
        }
        let mut w = self.writer.lock();
        if let Some(active) = self.active() {
            Self::sync_segment(&mut w, &active)?;
        }
        Ok(())
    }

    /// Background flush for `FsyncPolicy::IntervalMs`: syncs if dirty and the interval passed.
    /// Skips a partition whose writer is busy (the appender checks the interval itself).
    pub fn flush_if_due(&self, interval_ms: u64) -> Result<()> {
        let Some(mut w) = self.writer.try_lock() else {
            return Ok(());
        };
        if w.dirty && w.last_sync.elapsed().as_millis() >= u128::from(interval_ms) {
            if let Some(active) = self.active() {
                Self::sync_segment(&mut w, &active)?;
            }
        }
        Ok(())
    }

    /// Syncs if there is unsynced data (used on close).
    pub fn sync_if_dirty(&self) -> Result<()> {
        let mut w = self.writer.lock();
        if w.dirty {
            if let Some(active) = self.active() {
                Self::sync_segment(&mut w, &active)?;
            }
        }
        Ok(())
    }

    // ---- retention and truncation ---------------------------------------------------------------

    /// Deletes whole sealed segments from the front while the size or time limit says so.
    /// The active segment is never deleted.
    pub fn enforce_retention(&self, config: &LogConfig) -> Result<()> {
        if !self.writable || (config.retention_bytes.is_none() && config.retention_ms.is_none()) {
            return Ok(());
        }
        let _w = self.writer.lock();
        let removed: Vec<Arc<Segment>> = {
            let mut segs = self.segments.write();
            let metas: Vec<(u64, i64)> = segs
                .iter()
                .map(|s| {
                    let m = s.meta.read();
                    (m.size, m.max_ts)
                })
                .collect();
            let mut total: u64 = metas.iter().map(|(size, _)| size).sum();
            let newest = metas.iter().map(|(_, ts)| *ts).max().unwrap_or(i64::MIN);
            let mut k = 0;
            while k + 1 < segs.len() {
                let (size, max_ts) = metas[k];
                // Kafka's rule: drop the oldest segment if what remains still meets the limit.
                let by_size = config.retention_bytes.is_some_and(|r| total - size >= r);
                let by_time = config
                    .retention_ms
                    .is_some_and(|ms| max_ts < newest.saturating_sub(ms));
                if !(by_size || by_time) {
                    break;
                }
                total -= size;
                k += 1;
            }
            segs.drain(..k).collect()
        };
        for seg in &removed {
            tracing::info!(
                topic = %self.topic,
                partition = self.id,
                base_offset = seg.base_offset,
                "retention: deleting segment"
            );
            remove_if_exists(&seg.path)?;
            remove_if_exists(&index_path(&seg.path))?;
        }
        Ok(())
    }

    /// Drops every record at offset `>= end_offset`.
    pub fn truncate(&self, end_offset: u64) -> Result<()> {
        if !self.writable {
            return Err(LogError::ReadOnly);
        }
        let mut w = self.writer.lock();
        let segs = self.segments.read().clone();
        let b = bounds_of(&segs);
        if end_offset == b.1 {
            return Ok(());
        }
        if end_offset < b.0 || end_offset > b.1 {
            return Err(self.out_of_range(end_offset, b));
        }
        let i = segs.partition_point(|s| s.base_offset <= end_offset) - 1;
        let seg = segs[i].clone();
        let cut = if end_offset == seg.base_offset {
            0
        } else {
            let (size, pos, off) = {
                let m = seg.meta.read();
                let (pos, off) = m.seek_offset(seg.base_offset, end_offset);
                (m.size, pos, off)
            };
            let mut found = None;
            for_each_frame(&seg, pos, size, off, |frame_pos, frame| {
                // The record at `end_offset`, or the first after it when that offset holds none.
                if frame_fixed(frame).0 >= end_offset {
                    found = Some(frame_pos);
                    false
                } else {
                    true
                }
            })?;
            found.ok_or_else(|| Self::corrupt(&seg, pos, "offset to truncate at not found"))?
        };
        let rebuilt = segment::scan(&seg, SegMeta::empty(seg.base_offset), cut)?;
        // The new end is `end_offset`, or less where offsets without records precede it.
        if rebuilt.problem.is_some() || rebuilt.meta.next_offset > end_offset {
            return Err(Self::corrupt(&seg, cut, "segment prefix failed validation"));
        }
        // Unpublish first so no reader is directed at bytes about to disappear.
        let dropped: Vec<Arc<Segment>> = {
            let mut segs_w = self.segments.write();
            *seg.meta.write() = rebuilt.meta;
            segs_w.drain(i + 1..).collect()
        };
        seg.file
            .set_len(cut)
            .and_then(|_| seg.file.sync_data())
            .map_err(|e| LogError::io("truncating segment", &seg.path, e))?;
        remove_if_exists(&index_path(&seg.path))?;
        for d in &dropped {
            remove_if_exists(&d.path)?;
            remove_if_exists(&index_path(&d.path))?;
        }
        sync_dir(&self.dir)?;
        w.dirty = false;
        w.last_sync = Instant::now();
        Ok(())
    }

    // ---- reads ----------------------------------------------------------------------------------

    /// Reads whole records from `from`, about `max_bytes` of them (at least one if any).
    pub fn read(&self, from: u64, max_bytes: usize, batch: &mut ReadBatch) -> Result<()> {
        batch.clear();
        let (seg, size, pos, off) = {
            let segs = self.segments.read();
            let b = bounds_of(&segs);
            if from < b.0 || from > b.1 {
                return Err(self.out_of_range(from, b));
            }
            if from == b.1 {
                return Ok(());
            }
            let i = segs.partition_point(|s| s.base_offset <= from) - 1;
            let seg = segs[i].clone();
            let m = seg.meta.read();
            let (pos, off) = m.seek_offset(seg.base_offset, from);
            let size = m.size;
            drop(m);
            (seg, size, pos, off)
        };
        read_frames(&seg, size, pos, off, from, max_bytes.max(1), batch)
    }

    /// First offset whose timestamp is `>= ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<u64>> {
        let segs = self.segments.read().clone();
        for seg in segs {
            let (size, pos, off) = {
                let m = seg.meta.read();
                if m.size == 0 || m.max_ts < ts {
                    continue;
                }
                let (pos, off) = m.seek_time(seg.base_offset, ts);
                (m.size, pos, off)
            };
            let mut found = None;
            for_each_frame(&seg, pos, size, off, |_, frame| {
                let (offset, t, _) = frame_fixed(frame);
                if t >= ts {
                    found = Some(offset);
                    false
                } else {
                    true
                }
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Read-only mode: picks up records and segments the writing process added since the last
    /// look. Returns the largest origin newly seen.
    pub fn refresh(&self) -> Result<Option<u64>> {
        let _w = self.writer.lock();
        if self.segments.read().is_empty() {
            let segs = load_segments(&self.topic, self.id, &self.dir, false)?;
            let max = segs.iter().filter_map(|s| s.meta.read().max_origin).max();
            *self.segments.write() = segs;
            return Ok(max);
        }
        let mut max_seen = None;
        loop {
            let Some(last) = self.active() else {
                break;
            };
            let start = last.meta.read().clone();
            let file_len = last.file_len()?;
            if file_len > start.size {
                let out = segment::scan(&last, start, file_len)?;
                if let Some(o) = out.meta.max_origin {
                    max_seen = Some(max_seen.map_or(o, |m: u64| m.max(o)));
                }
                *last.meta.write() = out.meta;
            }
            let next = last.meta.read().next_offset;
            let path = segment::log_path(&self.dir, next);
            if next == last.base_offset || !path.exists() {
                break;
            }
            let seg = Segment::open(path, next, false)?;
            self.segments.write().push(Arc::new(seg));
        }
        Ok(max_seen)
    }
}

fn bounds_of(segs: &[Arc<Segment>]) -> (u64, u64) {
    match (segs.first(), segs.last()) {
        (Some(first), Some(last)) => (first.base_offset, last.meta.read().next_offset),
        _ => (0, 0),
    }
}

/// Recovery: loads the segments of a directory, verifying what has no clean index and cutting
/// (write mode) or ignoring (read-only mode) everything from the first invalid byte on.
fn load_segments(topic: &str, id: u32, dir: &Path, writable: bool) -> Result<Vec<Arc<Segment>>> {
    let files = list_segments(dir)?;
    let mut out: Vec<Arc<Segment>> = Vec::with_capacity(files.len());
    let mut cut_from: Option<usize> = None;
    for (i, (base, path)) in files.iter().enumerate() {
        if let Some(prev) = out.last() {
            let expected = prev.meta.read().next_offset;
            if *base != expected {
                tracing::warn!(
                    topic,
                    partition = id,
                    expected,
                    found = *base,
                    "segment does not continue its predecessor; ignoring it and later segments"
                );
                cut_from = Some(i);
                break;
            }
        }
        let is_last = i + 1 == files.len();
        let seg = Segment::open(path.clone(), *base, writable)?;
        let file_len = seg.file_len()?;
        let indexed = if is_last {
            None
        } else {
            segment::read_index(&seg, file_len)
        };
        let had_index = indexed.is_some();
        let (meta, problem) = match indexed {
            Some(m) => (m, None),
            None => {
                let outcome = segment::scan(&seg, SegMeta::empty(*base), file_len)?;
                (outcome.meta, outcome.problem)
            }
        };
        let valid = meta.size;
        *seg.meta.write() = meta;
        match problem {
            None => {
                if writable && !is_last && !had_index {
                    segment::write_index(&seg, &seg.meta.read())?;
                }
                out.push(Arc::new(seg));
            }
            Some(reason) => {
                if writable {
                    tracing::warn!(
                        topic, partition = id, segment = %seg.path.display(), valid_bytes = valid,
                        file_bytes = file_len, reason,
                        "recovery: truncating invalid tail of segment"
                    );
                    seg.file
                        .set_len(valid)
                        .and_then(|_| seg.file.sync_data())
                        .map_err(|e| LogError::io("truncating segment", &seg.path, e))?;
                    remove_if_exists(&index_path(&seg.path))?;
                } else {
                    tracing::debug!(topic, partition = id, reason, "read-only: ignoring tail");
                }
                out.push(Arc::new(seg));
                cut_from = Some(i + 1);
                break;
            }
        }
    }
    if let Some(from) = cut_from.filter(|f| *f < files.len()) {
        if writable {
            for (base, path) in &files[from..] {
                tracing::warn!(
                    topic,
                    partition = id,
                    base_offset = *base,
                    "recovery: deleting segment after an invalid or missing predecessor"
                );
                remove_if_exists(path)?;
                remove_if_exists(&index_path(path))?;
            }
            sync_dir(dir)?;
        }
    }
    Ok(out)
}

/// Calls `f(position, frame)` for each frame from `pos` (whose frame has offset `expect` or,
/// after offsets without records, a later one) up to `end`, until `f` returns false. Verifies
/// CRCs and that offsets ascend.
fn for_each_frame(
    seg: &Segment,
    mut pos: u64,
    end: u64,
    mut expect: u64,
    mut f: impl FnMut(u64, &[u8]) -> bool,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut need = 0usize;
    while pos < end {
        let chunk = ((1usize << 16).max(need) as u64).min(end - pos) as usize;
        buf.resize(chunk, 0);
        seg.read_exact_at(&mut buf, pos)?;
        let mut p = 0;
        loop {
            match check_frame(&buf[p..]) {
                FrameCheck::Complete { total } => {
                    let frame = &buf[p..p + total];
                    let offset = frame_fixed(frame).0;
                    if offset < expect {
                        return Err(Partition::corrupt(seg, pos + p as u64, OFFSET_BACKWARDS));
                    }
                    expect = offset + 1;
                    if !f(pos + p as u64, frame) {
                        return Ok(());
                    }
                    p += total;
                }
                FrameCheck::Incomplete { needed } => {
                    need = needed.unwrap_or(4);
                    break;
                }
                FrameCheck::Bad(reason) => {
                    return Err(Partition::corrupt(seg, pos + p as u64, reason));
                }
            }
        }
        if p == 0 && pos + need as u64 > end {
            return Err(Partition::corrupt(
                seg,
                pos,
                "record runs past the committed end",
            ));
        }
        pos += p as u64;
    }
    Ok(())
}

/// The read path: one `pread` (two for records larger than the budget) into the batch buffer,
/// then validation and indexing of each frame in place.
fn read_frames(
    seg: &Segment,
    size: u64,
    mut file_pos: u64,
    mut expect: u64,
    from: u64,
    max_bytes: usize,
    batch: &mut ReadBatch,
) -> Result<()> {
    let mut need = 0usize;
    while file_pos < size {
        let remaining = size - file_pos;
        let chunk =
            ((max_bytes.saturating_add(SEEK_SLACK)).max(need) as u64).min(remaining) as usize;
        batch.buf.clear();
        batch.buf.resize(chunk, 0);
        seg.read_exact_at(&mut batch.buf, file_pos)?;
        let mut p = 0usize;
        let mut full = false;
        loop {
            match check_frame(&batch.buf[p..]) {
                FrameCheck::Complete { total } => {
                    let offset = frame_fixed(&batch.buf[p..p + total]).0;
                    if offset < expect {
                        return Err(Partition::corrupt(
                            seg,
                            file_pos + p as u64,
                            OFFSET_BACKWARDS,
                        ));
                    }
                    expect = offset + 1;
                    if offset >= from {
                        if let Some(&first) = batch.starts.first() {
                            if p + total - first > max_bytes {
                                full = true;
                                break;
                            }
                        }
                        batch.starts.push(p);
                        batch.end = p + total;
                    }
                    p += total;
                }
                FrameCheck::Incomplete { needed } => {
                    need = needed.unwrap_or(4);
                    break;
                }
                FrameCheck::Bad(reason) => {
                    return Err(Partition::corrupt(seg, file_pos + p as u64, reason));
                }
            }
            if p == batch.buf.len() {
                break;
            }
        }
        if full || !batch.starts.is_empty() {
            return Ok(());
        }
        // Only skipped records (or nothing) fit: continue at the first incomplete frame, reading at
        // least the whole of it.
        if p == 0 && need as u64 > remaining {
            return Err(Partition::corrupt(
                seg,
                file_pos,
                "record runs past the committed end",
            ));
        }
        file_pos += p as u64;
    }
    Ok(())
}
