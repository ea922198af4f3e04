//! One segment: a `.log` file of consecutive record frames, its in-memory sparse index, the recovery
//! scan that rebuilds that index, and the `.index` file written when a segment is sealed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::error::{LogError, Result};
use crate::record::{check_frame, frame_fixed, FrameCheck};

/// A sparse index entry is added at the first record that starts at least this many bytes after the
/// previous entry, so finding an offset or a time reads at most ~this much extra.
pub(crate) const INDEX_INTERVAL: u64 = 4096;

/// Why a frame whose offset is not above its predecessor's is corrupt (recovery and reads).
pub(crate) const OFFSET_BACKWARDS: &str = "record offset not above its predecessor's";

/// Chunk size of the sequential recovery scan.
const SCAN_CHUNK: usize = 1 << 20;

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Offset relative to the segment base.
    pub rel: u32,
    /// Byte position of that record in the segment file.
    pub pos: u64,
    /// Largest timestamp of the records of this segment before this one (`i64::MIN` if none).
    /// Non-decreasing over entries; Kafka's time index idea: every record before `rel` has a
    /// timestamp `<= max_ts_before`, whatever the order of timestamps.
    pub max_ts_before: i64,
}

/// What is published (visible to readers) about a segment. Only the partition's writer mutates it,
/// under the write lock, once the bytes are in the file: readers never look past `size`.
#[derive(Debug, Clone)]
pub(crate) struct SegMeta {
    /// One past the last record's offset (== base when empty).
    pub next_offset: u64,
    /// Bytes of complete records.
    pub size: u64,
    /// Largest record timestamp (`i64::MIN` when empty).
    pub max_ts: i64,
    /// Largest record origin.
    pub max_origin: Option<u64>,
    /// Sparse index, ascending in `rel`, `pos` and `max_ts_before`.
    pub entries: Vec<IndexEntry>,
}

impl SegMeta {
    pub fn empty(base: u64) -> Self {
        SegMeta {
            next_offset: base,
            size: 0,
            max_ts: i64::MIN,
            max_origin: None,
            entries: Vec::new(),
        }
    }

    /// Whether a record starting at `pos` gets an index entry.
    #[inline]
    pub fn wants_entry(entries: &[IndexEntry], pos: u64) -> bool {
        match entries.last() {
            None => true,
            Some(e) => pos >= e.pos + INDEX_INTERVAL,
        }
    }

    /// Accounts for the next record (`offset >= next_offset`: offsets without records may come
    /// before it) that starts at `size`.
    #[inline]
    pub fn observe(&mut self, base: u64, offset: u64, total: u64, ts: i64, origin: u64) {
        if Self::wants_entry(&self.entries, self.size) {
            self.entries.push(IndexEntry {
                rel: (offset - base) as u32,
                pos: self.size,
                max_ts_before: self.max_ts,
            });
        }
        self.max_ts = self.max_ts.max(ts);
        self.max_origin = Some(self.max_origin.map_or(origin, |o| o.max(origin)));
        self.next_offset = offset + 1;
        self.size += total;
    }

    /// `(position, offset)` of the last indexed record at or before `offset`.
    pub fn seek_offset(&self, base: u64, offset: u64) -> (u64, u64) {
        let rel = offset.saturating_sub(base);
        let i = self.entries.partition_point(|e| u64::from(e.rel) <= rel);
        match i.checked_sub(1).map(|i| self.entries[i]) {
            Some(e) => (e.pos, base + u64::from(e.rel)),
            None => (0, base),
        }
    }

    /// `(position, offset)` from which a scan for the first record with timestamp `>= ts` may start:
    /// every record before it has a timestamp `< ts`.
    pub fn seek_time(&self, base: u64, ts: i64) -> (u64, u64) {
        let i = self.entries.partition_point(|e| e.max_ts_before < ts);
        match i.checked_sub(1).map(|i| self.entries[i]) {
            Some(e) => (e.pos, base + u64::from(e.rel)),
            None => (0, base),
        }
    }
}

/// A segment file and its published metadata.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub path: PathBuf,
    pub file: File,
    pub meta: RwLock<SegMeta>,
}

/// `<dir>/<base, 20 digits>.log`: fixed width so lexical order is numeric order.
pub(crate) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// The index file beside a segment.
pub(crate) fn index_path(log: &Path) -> PathBuf {
    log.with_extension("index")
}

/// Parses a segment file name into its base offset.
pub(crate) fn parse_log_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl Segment {
    /// Creates an empty segment file (fails if it exists).
    pub fn create(dir: &Path, base: u64) -> Result<Segment> {
        let path = log_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| LogError::io("creating segment", &path, e))?;
        Ok(Segment {
            base_offset: base,
            path,
            file,
            meta: RwLock::new(SegMeta::empty(base)),
        })
    }

    /// Opens an existing segment file; the caller fills `meta` from the index file or a scan.
    pub fn open(path: PathBuf, base: u64, writable: bool) -> Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .map_err(|e| LogError::io("opening segment", &path, e))?;
        Ok(Segment {
            base_offset: base,
            path,
            file,
            meta: RwLock::new(SegMeta::empty(base)),
        })
    }

    pub fn file_len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| LogError::io("reading metadata of", &self.path, e))
    }

    /// Reads exactly `buf.len()` bytes at `pos`.
    pub fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, pos)
            .map_err(|e| LogError::io("reading segment", &self.path, e))
    }
}

/// Result of scanning a segment file from some starting state.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// Metadata covering every valid record from the start state up to `meta.size`.
    pub meta: SegMeta,
    /// Why the scan stopped before the end of the file, if it did (torn tail, bad CRC, offsets
    /// not ascending).
    pub problem: Option<&'static str>,
}

/// Scans `seg` from the state `start` (whose `size` is where scanning begins and whose
/// `next_offset` is the lowest offset a record there may have) up to `file_len`, validating
/// every frame.
pub(crate) fn scan(seg: &Segment, start: SegMeta, file_len: u64) -> Result<ScanOutcome> {
    let base = seg.base_offset;
    let mut meta = start;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = meta.size;
    let mut p = 0usize;
    let problem = loop {
        let here = buf_start + p as u64;
        if here >= file_len {
            break None;
        }
        match check_frame(&buf[p..]) {
            FrameCheck::Complete { total } => {
                let (offset, ts, origin) = frame_fixed(&buf[p..p + total]);
                // Ascending; a skip is offsets without records (`EventLog::append_at`). The
                // relative offset must fit the index's u32.
                if offset < meta.next_offset {
                    break Some(OFFSET_BACKWARDS);
                }
                if offset - base > u64::from(u32::MAX) {
                    break Some("record offset too far past the segment base");
                }
                meta.observe(base, offset, total as u64, ts, origin);
                p += total;
            }
            FrameCheck::Incomplete { needed } => {
                let available = file_len - here;
                let needed = needed.unwrap_or(4) as u64;
                if needed > available {
                    break Some("incomplete record at the end of the file");
                }
                buf.drain(..p);
                buf_start = here;
                p = 0;
                let want = (needed.max(SCAN_CHUNK as u64)).min(available) as usize;
                let have = buf.len();
                if want > have {
                    buf.resize(want, 0);
                    seg.read_exact_at(&mut buf[have..], buf_start + have as u64)?;
                }
            }
            FrameCheck::Bad(reason) => break Some(reason),
        }
    };
    Ok(ScanOutcome { meta, problem })
}

// ---- index files -------------------------------------------------------------------------------

const INDEX_MAGIC: &[u8; 4] = b"TLIX";
const INDEX_VERSION: u32 = 1;
const INDEX_HEADER: usize = 4 + 4 + 8 + 8 + 8 + 8 + 1 + 8 + 4;
const INDEX_ENTRY: usize = 4 + 8 + 8;

/// Writes `<segment>.index` for a sealed segment: write a temp file, fsync, rename. The caller
/// fsyncs the directory (it does so once for the roll).
pub(crate) fn write_index(seg: &Segment, meta: &SegMeta) -> Result<()> {
    let mut buf = Vec::with_capacity(INDEX_HEADER + meta.entries.len() * INDEX_ENTRY + 4);
    buf.extend_from_slice(INDEX_MAGIC);
    buf.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    buf.extend_from_slice(&seg.base_offset.to_le_bytes());
    buf.extend_from_slice(&meta.size.to_le_bytes());
    buf.extend_from_slice(&meta.next_offset.to_le_bytes());
    buf.extend_from_slice(&meta.max_ts.to_le_bytes());
    buf.push(u8::from(meta.max_origin.is_some()));
    buf.extend_from_slice(&meta.max_origin.unwrap_or(0).to_le_bytes());
    buf.extend_from_slice(&(meta.entries.len() as u32).to_le_bytes());
    for e in &meta.entries {
        buf.extend_from_slice(&e.rel.to_le_bytes());
        buf.extend_from_slice(&e.pos.to_le_bytes());
        buf.extend_from_slice(&e.max_ts_before.to_le_bytes());
    }
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());

    let path = index_path(&seg.path);
    let tmp = path.with_extension("index.tmp");
    let mut f = File::create(&tmp).map_err(|e| LogError::io("creating", &tmp, e))?;
    f.write_all(&buf)
        .and_then(|_| f.sync_data())
        .map_err(|e| LogError::io("writing", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| LogError::io("renaming", &tmp, e))
}

/// Loads `<segment>.index` if it exists, is intact and describes exactly `file_len` bytes of the
/// segment (a segment that grew or shrank after its index was written is rescanned instead).
pub(crate) fn read_index(seg: &Segment, file_len: u64) -> Option<SegMeta> {
    let path = index_path(&seg.path);
    let buf = fs::read(&path).ok()?;
    if buf.len() < INDEX_HEADER + 4 {
        return None;
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return None;
    }
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap_or([0; 8]));
    if &body[..4] != INDEX_MAGIC || u32_at(4) != INDEX_VERSION || u64_at(8) != seg.base_offset {
        return None;
    }
    let size = u64_at(16);
    let next_offset = u64_at(24);
    let max_ts = u64_at(32) as i64;
    let has_origin = body[40] == 1;
    let max_origin = u64_at(41);
    let count = u32_at(49) as usize;
    if size != file_len || body.len() != INDEX_HEADER + count * INDEX_ENTRY {
        return None;
    }
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let at = INDEX_HEADER + i * INDEX_ENTRY;
        entries.push(IndexEntry {
            rel: u32_at(at),
            pos: u64_at(at + 4),
            max_ts_before: u64_at(at + 12) as i64,
        });
    }
    // Cheap consistency checks; anything odd means "rescan".
    let ordered = entries.windows(2).all(|w| {
        w[0].rel < w[1].rel && w[0].pos < w[1].pos && w[0].max_ts_before <= w[1].max_ts_before
    });
    let in_range = entries
        .iter()
        .all(|e| e.pos < size.max(1) && seg.base_offset + u64::from(e.rel) < next_offset.max(1));
    // The first record is at position 0; its offset is the base unless offsets without records
    // came first (`EventLog::append_at`).
    let starts_at_zero = entries.first().is_none_or(|e| e.pos == 0);
    if !ordered || !in_range || !starts_at_zero || (entries.is_empty() != (size == 0)) {
        return None;
    }
    Some(SegMeta {
        next_offset,
        size,
        max_ts,
        max_origin: has_origin.then_some(max_origin),
        entries,
    })
}
