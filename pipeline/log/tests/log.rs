//! Behavioural tests of `EmbeddedLog` through the `EventLog` trait: round trips, recovery from
//! damaged files, truncation, retention, positions, concurrency and the origin guarantees.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use twinline_log::murmur2::murmur2;
use twinline_log::{
    EmbeddedLog, EventLog, FsyncPolicy, LogConfig, LogError, NewRecord, OrderedGroup, ReadBatch,
};

/// An owned record, the oracle side of every comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    timestamp: i64,
    origin: u64,
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

fn small_config() -> LogConfig {
    LogConfig {
        fsync: FsyncPolicy::Never,
        segment_bytes: 4096,
        ..LogConfig::default()
    }
}

/// Deterministic pseudo-random generator (xorshift), so failures reproduce.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// key, value, timestamp, headers.
type Owned = (Vec<u8>, Vec<u8>, i64, Vec<(String, Vec<u8>)>);

/// Appends `batches` random batches to `topic/p`; returns what was written (origins as the log
/// reported them back on read are checked separately against the counter).
fn append_random(log: &EmbeddedLog, topic: &str, p: u32, g: &mut Gen, batches: usize) -> Vec<Rec> {
    let mut out = Vec::new();
    for _ in 0..batches {
        let n = 1 + g.below(40) as usize;
        let owned: Vec<Owned> = (0..n)
            .map(|_| {
                let key = format!("m-{:03}", g.below(100)).into_bytes();
                let value: Vec<u8> = (0..g.below(300)).map(|_| g.next() as u8).collect();
                let ts = 1_700_000_000_000 + g.below(100_000) as i64;
                let headers = if g.below(4) == 0 {
                    vec![("inference-us".to_string(), g.next().to_le_bytes().to_vec())]
                } else {
                    vec![]
                };
                (key, value, ts, headers)
            })
            .collect();
        let header_refs: Vec<Vec<(&str, &[u8])>> = owned
            .iter()
            .map(|(_, _, _, h)| h.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect())
            .collect();
        let recs: Vec<NewRecord<'_>> = owned
            .iter()
            .zip(&header_refs)
            .map(|((k, v, ts, _), h)| NewRecord::new(k, v, *ts).with_headers(h))
            .collect();
        let end_before = log.end_offset(topic, p).unwrap();
        let res = log.append(topic, p, &recs).unwrap();
        assert_eq!(res.base_offset, end_before);
        assert_eq!(res.last_offset, end_before + n as u64 - 1);
        for (i, (k, v, ts, h)) in owned.into_iter().enumerate() {
            out.push(Rec {
                offset: res.base_offset + i as u64,
                timestamp: ts,
                origin: 0, // filled from the read side; checked by origin-specific tests
                key: k,
                value: v,
                headers: h,
            });
        }
    }
    out
}

/// Reads the whole partition from `from` with reads of `max_bytes`; offsets must be
/// consecutive.
fn read_all(log: &dyn EventLog, topic: &str, p: u32, from: u64, max_bytes: usize) -> Vec<Rec> {
    read_records(log, topic, p, from, max_bytes, true)
}

/// [`read_all`] where offsets need only ascend (`append_at` may have skipped some).
fn read_sparse(log: &dyn EventLog, topic: &str, p: u32, from: u64, max_bytes: usize) -> Vec<Rec> {
    read_records(log, topic, p, from, max_bytes, false)
}

fn read_records(
    log: &dyn EventLog,
    topic: &str,
    p: u32,
    from: u64,
    max_bytes: usize,
    consecutive: bool,
) -> Vec<Rec> {
    let mut batch = ReadBatch::new();
    let mut out = Vec::new();
    let mut next = from;
    loop {
        log.read(topic, p, next, max_bytes, &mut batch).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(
            batch.len() == 1 || batch.byte_len() <= max_bytes,
            "batch of {} bytes exceeds max_bytes {max_bytes}",
            batch.byte_len()
        );
        for r in batch.iter() {
            if consecutive {
                assert_eq!(
                    r.offset, next,
                    "records must come in offset order without gaps"
                );
            } else {
                assert!(
                    r.offset >= next,
                    "offsets must ascend: {} after {next}",
                    r.offset
                );
            }
            next = r.offset + 1;
            out.push(Rec {
                offset: r.offset,
                timestamp: r.timestamp,
                origin: r.origin,
                key: r.key.to_vec(),
                value: r.value.to_vec(),
                headers: r
                    .headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_vec()))
                    .collect(),
            });
        }
        assert_eq!(batch.next_offset(), Some(next));
    }
    assert_eq!(next, log.end_offset(topic, p).unwrap());
    out
}

fn without_origin(mut v: Vec<Rec>) -> Vec<Rec> {
    for r in &mut v {
        r.origin = 0;
    }
    v
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn round_trip_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    log.create_topic("sensor-readings", 3).unwrap();
    let mut g = Gen(0x1234_5678);
    let written = append_random(&log, "sensor-readings", 1, &mut g, 60);
    assert!(
        segment_files(&dir.path().join("sensor-readings/1")).len() > 5,
        "segments should roll"
    );
    for max_bytes in [1, 100, 4096, 1 << 20] {
        let read = read_all(&log, "sensor-readings", 1, 0, max_bytes);
        assert_eq!(without_origin(read.clone()), written);
        // Origins were stamped 1..=n in append order (only this partition was written).
        let origins: Vec<u64> = read.iter().map(|r| r.origin).collect();
        assert_eq!(origins, (1..=written.len() as u64).collect::<Vec<_>>());
    }
    assert_eq!(log.committed_origin(), written.len() as u64);
    // Untouched partitions stay empty.
    assert_eq!(log.end_offset("sensor-readings", 0).unwrap(), 0);
    assert!(read_all(&log, "sensor-readings", 0, 0, 1000).is_empty());
}

#[test]
fn read_from_any_offset_starts_exactly_there() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    log.create_topic("t", 1).unwrap();
    let written = append_random(&log, "t", 0, &mut Gen(99), 30);
    let mut batch = ReadBatch::new();
    for from in 0..written.len() as u64 {
        log.read("t", 0, from, 700, &mut batch).unwrap();
        let first = batch.get(0).expect("non-empty below the end");
        assert_eq!(first.offset, from);
        assert_eq!(first.value, &written[from as usize].value[..]);
    }
    let end = written.len() as u64;
    log.read("t", 0, end, 700, &mut batch).unwrap();
    assert!(batch.is_empty());
    assert!(matches!(
        log.read("t", 0, end + 1, 700, &mut batch),
        Err(LogError::OffsetOutOfRange { requested, start: 0, end: e, .. }) if requested == end + 1 && e == end
    ));
}

#[test]
fn large_records_are_returned_whole_even_above_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    log.create_topic("images", 1).unwrap();
    let big: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
    let small = b"x".to_vec();
    for v in [&small, &big, &small, &big, &big] {
        log.append("images", 0, &[NewRecord::new(b"cam", v, 1)])
            .unwrap();
    }
    let read = read_all(&log, "images", 0, 0, 10);
    let lens: Vec<usize> = read.iter().map(|r| r.value.len()).collect();
    assert_eq!(lens, vec![1, 50_000, 1, 50_000, 50_000]);
    assert_eq!(read[4].value, big);
    // Reading from an offset after a big record must skip it correctly.
    let mut batch = ReadBatch::new();
    log.read("images", 0, 2, 10, &mut batch).unwrap();
    assert_eq!(batch.first_offset(), Some(2));
}

#[test]
fn offset_for_timestamp_matches_brute_force_with_unordered_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    log.create_topic("t", 1).unwrap();
    let mut g = Gen(7);
    // Mostly increasing with jitter and some late records, across many segments.
    let mut stamps = Vec::new();
    for i in 0..3000i64 {
        let jitter = g.below(50) as i64 - 25;
        let late = if g.below(20) == 0 {
            -(g.below(500) as i64)
        } else {
            0
        };
        stamps.push(i * 10 + jitter + late);
    }
    for chunk in stamps.chunks(37) {
        let recs: Vec<NewRecord<'_>> = chunk
            .iter()
            .map(|ts| NewRecord::new(b"k", b"value-bytes-value-bytes", *ts))
            .collect();
        log.append("t", 0, &recs).unwrap();
    }
    let brute = |ts: i64| stamps.iter().position(|s| *s >= ts).map(|i| i as u64);
    let lo = stamps.iter().min().copied().unwrap() - 5;
    let hi = stamps.iter().max().copied().unwrap() + 5;
    let mut ts = lo;
    while ts <= hi {
        assert_eq!(
            log.offset_for_timestamp("t", 0, ts).unwrap(),
            brute(ts),
            "ts {ts}"
        );
        ts += 7;
    }
    assert_eq!(log.offset_for_timestamp("t", 0, i64::MIN).unwrap(), Some(0));
    assert_eq!(log.offset_for_timestamp("t", 0, i64::MAX).unwrap(), None);
}

#[test]
fn reopen_gives_same_data_and_counter() {
    let dir = tempfile::tempdir().unwrap();
    let (before, committed) = {
        let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
        log.create_topic("a", 2).unwrap();
        log.create_topic("b", 1).unwrap();
        append_random(&log, "a", 0, &mut Gen(1), 10);
        append_random(&log, "a", 1, &mut Gen(2), 10);
        // A derived record keeps its origin; the counter must move above it.
        log.append("b", 0, &[NewRecord::new(b"k", b"v", 5).with_origin(10_000)])
            .unwrap();
        let before: Vec<Vec<Rec>> = vec![
            read_all(&log, "a", 0, 0, 4096),
            read_all(&log, "a", 1, 0, 4096),
            read_all(&log, "b", 0, 0, 4096),
        ];
        assert_eq!(before[2][0].origin, 10_000);
        (before, log.committed_origin())
    };
    assert_eq!(committed, 10_000);
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(
        log.topics(),
        vec![("a".to_string(), 2), ("b".to_string(), 1)]
    );
    let after = vec![
        read_all(&log, "a", 0, 0, 4096),
        read_all(&log, "a", 1, 0, 4096),
        read_all(&log, "b", 0, 0, 4096),
    ];
    assert_eq!(before, after);
    assert_eq!(log.committed_origin(), committed);
    log.append("a", 0, &[NewRecord::new(b"k", b"v", 6)])
        .unwrap();
    let last = read_all(&log, "a", 0, 0, 4096).pop().unwrap();
    assert_eq!(
        last.origin, 10_001,
        "counter restored from the max origin in the data"
    );
}

#[test]
fn index_files_are_used_and_a_stale_index_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t/0");
    let written = {
        let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
        log.create_topic("t", 1).unwrap();
        append_random(&log, "t", 0, &mut Gen(5), 40)
    };
    let indexes: Vec<PathBuf> = fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "index"))
        .collect();
    assert_eq!(
        indexes.len(),
        segment_files(&pdir).len() - 1,
        "every sealed segment has an index"
    );
    // Damage one index: it must be detected (CRC) and rebuilt from the segment.
    let mut bytes = fs::read(&indexes[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&indexes[0], &bytes).unwrap();
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(without_origin(read_all(&log, "t", 0, 0, 999)), written);
    for ts in [1_700_000_000_000i64, 1_700_000_050_000] {
        let brute = written
            .iter()
            .position(|r| r.timestamp >= ts)
            .map(|i| i as u64);
        assert_eq!(log.offset_for_timestamp("t", 0, ts).unwrap(), brute);
    }
}

/// Writes `n` records of 100-byte values (timestamp == offset) into one partition; returns them.
fn fill(root: &Path, n: u64, config: LogConfig) -> Vec<Rec> {
    let log = EmbeddedLog::open(root, config).unwrap();
    log.create_topic("t", 1).unwrap();
    let expected: Vec<Rec> = (0..n)
        .map(|i| Rec {
            offset: i,
            timestamp: i as i64,
            origin: i + 1,
            key: b"key".to_vec(),
            value: vec![i as u8; 100],
            headers: vec![],
        })
        .collect();
    for r in &expected {
        log.append("t", 0, &[NewRecord::new(&r.key, &r.value, r.timestamp)])
            .unwrap();
    }
    let start = log.start_offset("t", 0).unwrap();
    assert_eq!(
        read_all(&log, "t", 0, start, 1 << 20),
        expected[start as usize..].to_vec()
    );
    expected
}

#[test]
fn garbage_after_the_last_record_is_truncated_and_nothing_before_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let written = fill(dir.path(), 50, config.clone());
    let seg = segment_files(&dir.path().join("t/0")).pop().unwrap();
    let good_len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&[
            0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
        ])
        .unwrap();
    let log = EmbeddedLog::open(dir.path(), config).unwrap();
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        good_len,
        "garbage tail cut off"
    );
    assert_eq!(read_all(&log, "t", 0, 0, 4096), written);
    // The log keeps working after recovery.
    let res = log
        .append("t", 0, &[NewRecord::new(b"key", b"after", 99)])
        .unwrap();
    assert_eq!(res.base_offset, 50);
    assert_eq!(read_all(&log, "t", 0, 49, 4096).len(), 2);
}

#[test]
fn half_written_record_is_truncated_and_nothing_before_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let written = fill(dir.path(), 50, config.clone());
    let seg = segment_files(&dir.path().join("t/0")).pop().unwrap();
    let full = fs::metadata(&seg).unwrap().len();
    let record = full / 50; // all records have the same size
                            // Cut the last record in half, as a crash in the middle of a write would.
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(full - record / 2)
        .unwrap();
    let log = EmbeddedLog::open(dir.path(), config.clone()).unwrap();
    assert_eq!(log.end_offset("t", 0).unwrap(), 49);
    assert_eq!(read_all(&log, "t", 0, 0, 4096), written[..49].to_vec());
    assert_eq!(fs::metadata(&seg).unwrap().len(), full - record);
    drop(log);

    // A corrupted byte in the middle of the active segment: everything before it is kept.
    let mut bytes = fs::read(&seg).unwrap();
    let at = (20 * record + 60) as usize; // inside record 20's value
    bytes[at] ^= 0x01;
    fs::write(&seg, &bytes).unwrap();
    let log = EmbeddedLog::open(dir.path(), config).unwrap();
    assert_eq!(read_all(&log, "t", 0, 0, 4096), written[..20].to_vec());
    assert_eq!(log.committed_origin(), 20);
}

#[test]
fn corrupt_sealed_segment_without_index_cuts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(); // 4 KiB segments: 50 records of ~150 B span several
    let written = fill(dir.path(), 100, config.clone());
    let pdir = dir.path().join("t/0");
    let segs = segment_files(&pdir);
    assert!(segs.len() >= 3);
    // Damage the second segment and remove its index, so recovery must scan it.
    fs::remove_file(segs[1].with_extension("index")).unwrap();
    let mut bytes = fs::read(&segs[1]).unwrap();
    let first_of_seg1: u64 = segs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let record = bytes.len() as u64 / (segment_count_records(&written, &segs, 1));
    let bad_rec = 3u64;
    bytes[(bad_rec * record + 50) as usize] ^= 0x80;
    fs::write(&segs[1], &bytes).unwrap();
    let log = EmbeddedLog::open(dir.path(), config).unwrap();
    let keep = (first_of_seg1 + bad_rec) as usize;
    assert_eq!(read_all(&log, "t", 0, 0, 4096), written[..keep].to_vec());
    assert_eq!(segment_files(&pdir).len(), 2, "later segments deleted");
    log.append("t", 0, &[NewRecord::new(b"k", b"v", 0)])
        .unwrap();
    assert_eq!(log.end_offset("t", 0).unwrap(), keep as u64 + 1);
}

/// Number of records in segment `i` (from the base offsets in the file names).
fn segment_count_records(written: &[Rec], segs: &[PathBuf], i: usize) -> u64 {
    let base = |p: &PathBuf| -> u64 { p.file_stem().unwrap().to_str().unwrap().parse().unwrap() };
    let end = segs.get(i + 1).map(base).unwrap_or(written.len() as u64);
    end - base(&segs[i])
}

#[test]
fn read_only_ignores_a_torn_tail_without_touching_it_and_follows_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let written = fill(dir.path(), 10, config.clone());
    let seg = segment_files(&dir.path().join("t/0")).pop().unwrap();
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&[7u8; 30])
        .unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    let ro = EmbeddedLog::open_read_only(dir.path()).unwrap();
    assert_eq!(read_all(&ro, "t", 0, 0, 4096), written);
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        len,
        "read-only must not truncate"
    );
    assert!(matches!(
        ro.append("t", 0, &[NewRecord::new(b"k", b"v", 0)]),
        Err(LogError::ReadOnly)
    ));

    // A writer opens (recovers), then appends; the reader sees the new records, and new topics.
    let log = EmbeddedLog::open(dir.path(), config).unwrap();
    log.append("t", 0, &[NewRecord::new(b"k", b"new", 11)])
        .unwrap();
    log.create_topic("later", 2).unwrap();
    log.append("later", 1, &[NewRecord::new(b"k", b"x", 12)])
        .unwrap();
    let seen = read_all(&ro, "t", 0, 0, 4096);
    assert_eq!(seen.len(), 11);
    assert_eq!(seen[10].value, b"new");
    assert_eq!(ro.end_offset("later", 1).unwrap(), 1);
}

#[test]
fn second_writer_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    let err = EmbeddedLog::open(dir.path(), small_config()).unwrap_err();
    assert!(matches!(err, LogError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("locked by another writer"));
    drop(_log);
    EmbeddedLog::open(dir.path(), small_config()).expect("lock released on drop");
}

#[test]
fn truncate_drops_the_tail_across_segments_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let written = fill(dir.path(), 120, small_config());
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    let segs_before = segment_files(&dir.path().join("t/0")).len();
    log.truncate("t", 0, 33).unwrap();
    assert_eq!(log.end_offset("t", 0).unwrap(), 33);
    assert!(segment_files(&dir.path().join("t/0")).len() < segs_before);
    assert_eq!(read_all(&log, "t", 0, 0, 4096), written[..33].to_vec());
    let res = log
        .append("t", 0, &[NewRecord::new(b"key", b"again", 1)])
        .unwrap();
    assert_eq!(res.base_offset, 33);
    assert!(matches!(
        log.truncate("t", 0, 35),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    log.truncate("t", 0, 34).unwrap(); // no-op at the end
                                       // Time lookups see only what remains.
    assert_eq!(log.offset_for_timestamp("t", 0, 50).unwrap(), None);
    drop(log);
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    let after = read_all(&log, "t", 0, 0, 4096);
    assert_eq!(after[..33].to_vec(), written[..33].to_vec());
    assert_eq!(after[33].value, b"again");
    log.truncate("t", 0, 0).unwrap();
    assert_eq!(log.end_offset("t", 0).unwrap(), 0);
    assert!(read_all(&log, "t", 0, 0, 4096).is_empty());
}

#[test]
fn retention_by_size_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(10_000),
        ..small_config()
    };
    let written = fill(dir.path(), 400, config.clone());
    let log = EmbeddedLog::open(dir.path(), config).unwrap();
    let start = log.start_offset("t", 0).unwrap();
    assert!(start > 0, "old segments must be gone");
    let pdir = dir.path().join("t/0");
    let total: u64 = segment_files(&pdir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        (10_000..10_000 + 4096 + 200).contains(&total),
        "kept {total} bytes"
    );
    // The first retained segment starts exactly at start_offset.
    let first: u64 = segment_files(&pdir)[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(first, start);
    assert_eq!(
        read_all(&log, "t", 0, start, 4096),
        written[start as usize..].to_vec()
    );
    let mut batch = ReadBatch::new();
    assert!(matches!(
        log.read("t", 0, start - 1, 100, &mut batch),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_time_uses_record_timestamps_and_keeps_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(100),
        ..small_config()
    };
    // fill() uses timestamp == offset: records older than newest-100 are eligible.
    let written = fill(dir.path(), 400, config.clone());
    let log = EmbeddedLog::open(dir.path(), config.clone()).unwrap();
    let start = log.start_offset("t", 0).unwrap();
    // Every deleted segment's records are all older than 399 - 100; the first kept segment has a
    // record at or after 299 (else it would have been deleted too).
    let pdir = dir.path().join("t/0");
    let segs = segment_files(&pdir);
    let second: u64 = segs.get(1).map_or(400, |p| {
        p.file_stem().unwrap().to_str().unwrap().parse().unwrap()
    });
    assert!(
        start <= 299 && second > 299,
        "start {start}, second segment {second}"
    );
    assert!(start > 150);
    assert_eq!(
        read_all(&log, "t", 0, start, 4096),
        written[start as usize..].to_vec()
    );
    assert_eq!(log.offset_for_timestamp("t", 0, 0).unwrap(), Some(start));
    // A single huge gap in time: everything but the active segment goes, never the active one.
    log.append("t", 0, &[NewRecord::new(b"key", &[0u8; 5000], 1_000_000)])
        .unwrap();
    log.append("t", 0, &[NewRecord::new(b"key", b"x", 1_000_001)])
        .unwrap();
    let start = log.start_offset("t", 0).unwrap();
    assert_eq!(
        start, 400,
        "only the segment holding the new records is left"
    );
    assert_eq!(read_all(&log, "t", 0, start, 4096).len(), 2);
}

#[test]
fn positions_are_durable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
        log.create_topic("t", 2).unwrap();
        assert_eq!(log.position("task-0", "t", 1).unwrap(), None);
        log.commit_position("task-0", "t", 1, 17).unwrap();
        log.commit_position("task-0", "t", 1, 42).unwrap();
        log.commit_position("weird/group name", "t", 0, 7).unwrap();
        assert!(matches!(
            log.commit_position("g", "t", 2, 1),
            Err(LogError::UnknownPartition { .. })
        ));
        assert!(matches!(
            log.commit_position("", "t", 0, 1),
            Err(LogError::InvalidName { .. })
        ));
    }
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.position("task-0", "t", 1).unwrap(), Some(42));
    assert_eq!(log.position("task-0", "t", 0).unwrap(), None);
    assert_eq!(log.position("weird/group name", "t", 0).unwrap(), Some(7));
    assert_eq!(log.position("weird/group", "t", 0).unwrap(), None);
}

#[test]
fn topic_metadata_rules() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    log.create_topic("twin-state", 4).unwrap();
    log.create_topic("twin-state", 4).unwrap();
    assert!(matches!(
        log.create_topic("twin-state", 5),
        Err(LogError::PartitionCountMismatch {
            existing: 4,
            requested: 5,
            ..
        })
    ));
    for bad in ["", "_positions", "a/b", "..", "topics.json"] {
        assert!(
            matches!(log.create_topic(bad, 1), Err(LogError::InvalidName { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        log.create_topic("x", 0),
        Err(LogError::InvalidArgument(_))
    ));
    assert!(matches!(
        log.end_offset("nope", 0),
        Err(LogError::UnknownTopic(_))
    ));
    assert!(matches!(
        log.end_offset("twin-state", 4),
        Err(LogError::UnknownPartition { .. })
    ));
    assert!(matches!(
        log.append("twin-state", 0, &[]),
        Err(LogError::InvalidArgument(_))
    ));
    for key in [&b"machine-01"[..], b"plant", b"", b"job-000123"] {
        let expected = (murmur2(key) & 0x7fff_ffff) % 4;
        assert_eq!(log.partition_for("twin-state", key).unwrap(), expected);
    }
    let big = vec![0u8; 200];
    let small_limit = LogConfig {
        max_record_bytes: 100,
        ..small_config()
    };
    drop(log);
    let log = EmbeddedLog::open(dir.path(), small_limit).unwrap();
    assert!(matches!(
        log.append("twin-state", 0, &[NewRecord::new(b"k", &big, 0)]),
        Err(LogError::RecordTooLarge { .. })
    ));
}

/// Value content as a function of (partition, offset), so a reader can check every byte.
fn expected_value(p: u32, offset: u64) -> Vec<u8> {
    let len = 10 + (offset % 97) as usize;
    (0..len)
        .map(|i| (offset as usize * 31 + i * 7 + p as usize) as u8)
        .collect()
}

#[test]
fn concurrent_appenders_and_reader_never_see_partial_records_or_origin_holes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        ..small_config()
    };
    let log = Arc::new(EmbeddedLog::open(dir.path(), config).unwrap());
    log.create_topic("in", 2).unwrap();
    const PER_PARTITION: u64 = 20_000;
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u32)
        .map(|p| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut offset = 0u64;
                while offset < PER_PARTITION {
                    let n = (1 + (offset % 50)).min(PER_PARTITION - offset);
                    let values: Vec<Vec<u8>> =
                        (offset..offset + n).map(|o| expected_value(p, o)).collect();
                    let recs: Vec<NewRecord<'_>> = values
                        .iter()
                        .map(|v| NewRecord::new(b"k", v, offset as i64))
                        .collect();
                    let res = log.append("in", p, &recs).unwrap();
                    assert_eq!(res.base_offset, offset);
                    offset += n;
                }
            })
        })
        .collect();
    let reader = {
        let log = log.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut batch = ReadBatch::new();
            let mut next = [0u64; 2];
            let mut origins: Vec<u64> = Vec::new();
            let mut rounds = 0u64;
            loop {
                let finished = done.load(Ordering::Acquire);
                // Read C first, then everything visible: every origin <= C must be present.
                let c = log.committed_origin();
                for p in 0..2u32 {
                    loop {
                        log.read("in", p, next[p as usize], 3000, &mut batch)
                            .unwrap();
                        if batch.is_empty() {
                            break;
                        }
                        for r in batch.iter() {
                            assert_eq!(r.offset, next[p as usize]);
                            assert_eq!(r.value, &expected_value(p, r.offset)[..], "torn record");
                            next[p as usize] += 1;
                            origins.push(r.origin);
                        }
                    }
                }
                origins.sort_unstable();
                let below: usize = origins.partition_point(|o| *o <= c);
                assert_eq!(
                    below as u64, c,
                    "an origin <= committed_origin ({c}) was not visible"
                );
                rounds += 1;
                if finished {
                    break;
                }
            }
            (next, origins.len() as u64, rounds)
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let (next, seen, rounds) = reader.join().unwrap();
    assert_eq!(next, [PER_PARTITION, PER_PARTITION]);
    assert_eq!(seen, 2 * PER_PARTITION);
    assert_eq!(log.committed_origin(), 2 * PER_PARTITION);
    assert!(rounds > 1);
}

#[test]
fn fsync_policies_and_sync_work() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::IntervalMs(5),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            fsync,
            ..small_config()
        };
        let written = {
            let log = EmbeddedLog::open(dir.path(), config.clone()).unwrap();
            log.create_topic("t", 1).unwrap();
            let w = append_random(&log, "t", 0, &mut Gen(3), 5);
            std::thread::sleep(std::time::Duration::from_millis(20));
            log.sync("t", 0).unwrap();
            w
        };
        let log = EmbeddedLog::open(dir.path(), config).unwrap();
        assert_eq!(without_origin(read_all(&log, "t", 0, 0, 1000)), written);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_batches_read_back_identically(
        batches in prop::collection::vec(
            prop::collection::vec(
                (
                    prop::collection::vec(any::<u8>(), 0..20),
                    prop::collection::vec(any::<u8>(), 0..600),
                    any::<i64>(),
                    prop::option::of(0u64..1_000_000),
                    prop::collection::vec(("[a-z]{0,8}", prop::collection::vec(any::<u8>(), 0..16)), 0..3),
                ),
                1..30,
            ),
            1..20,
        ),
        segment_bytes in 1024u64..16384,
        max_bytes in 1usize..5000,
        reopen in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes, ..small_config() };
        let mut expected = Vec::new();
        {
            let log = EmbeddedLog::open(dir.path(), config.clone()).unwrap();
            log.create_topic("p", 1).unwrap();
            let mut counter = 1u64;
            for batch in &batches {
                let headers: Vec<Vec<(&str, &[u8])>> = batch
                    .iter()
                    .map(|(_, _, _, _, h)| h.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect())
                    .collect();
                let recs: Vec<NewRecord<'_>> = batch
                    .iter()
                    .zip(&headers)
                    .map(|((k, v, ts, o, _), h)| NewRecord { key: k, value: v, timestamp: *ts, origin: *o, headers: h })
                    .collect();
                let res = log.append("p", 0, &recs).unwrap();
                for (i, (k, v, ts, o, h)) in batch.iter().enumerate() {
                    // The counter model: explicit origins are kept and push the counter above them.
                    let origin = match o {
                        Some(o) => { counter = counter.max(o + 1); *o }
                        None => { counter += 1; counter - 1 }
                    };
                    expected.push(Rec {
                        offset: res.base_offset + i as u64,
                        timestamp: *ts,
                        origin,
                        key: k.clone(),
                        value: v.clone(),
                        headers: h.clone(),
                    });
                }
            }
            prop_assert_eq!(log.committed_origin(), counter - 1);
            if !reopen {
                prop_assert_eq!(read_all(&log, "p", 0, 0, max_bytes), expected.clone());
            }
        }
        if reopen {
            let log = EmbeddedLog::open(dir.path(), config).unwrap();
            prop_assert_eq!(read_all(&log, "p", 0, 0, max_bytes), expected);
        }
    }
}

fn rec(key: &[u8]) -> NewRecord<'_> {
    NewRecord {
        key,
        value: key,
        timestamp: 0,
        origin: None,
        headers: &[],
    }
}

fn group<'a>(
    topic: &'a str,
    partition: u32,
    records: &'a [NewRecord<'a>],
    seq: &'a [u64],
) -> OrderedGroup<'a> {
    OrderedGroup {
        topic,
        partition,
        records,
        seq,
    }
}

#[test]
fn append_ordered_stamps_origins_in_the_callers_order_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    log.create_topic("a", 2).unwrap();
    log.create_topic("b", 1).unwrap();
    // Something before, so the reserved range does not start at 0.
    log.append("b", 0, &[rec(b"first")]).unwrap();
    let before = log.committed_origin();
    // Caller's order: x0 (a/0), x1 (b/0), x2 (a/1), x3 (a/0), x4 (b/0), x5 (a/1).
    let a0 = [rec(b"x0"), rec(b"x3")];
    let a1 = [rec(b"x2"), rec(b"x5")];
    let b0 = [rec(b"x1"), rec(b"x4")];
    let groups = [
        group("a", 1, &a1, &[2, 5]),
        group("a", 0, &a0, &[0, 3]),
        group("b", 0, &b0, &[1, 4]),
    ];
    let results = log.append_ordered(&groups).unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!((results[2].base_offset, results[2].last_offset), (1, 2));
    assert_eq!(log.committed_origin(), before + 6);
    // Merged by origin, the records come back in the caller's order.
    let mut all: Vec<Rec> = Vec::new();
    for (t, p) in [("a", 0), ("a", 1), ("b", 0)] {
        all.extend(read_all(&log, t, p, 0, 1 << 20));
    }
    all.sort_by_key(|r| r.origin);
    let keys: Vec<&[u8]> = all.iter().map(|r| r.key.as_slice()).collect();
    assert_eq!(
        keys,
        vec![&b"first"[..], b"x0", b"x1", b"x2", b"x3", b"x4", b"x5"]
    );
    // The counter moved past the range: a later append gets the next origin.
    log.append("a", 0, &[rec(b"after")]).unwrap();
    assert_eq!(read_all(&log, "a", 0, 2, 1 << 20)[0].origin, before + 7);
    // Reopened, the counter restarts past everything.
    drop(log);
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    log.append("b", 0, &[rec(b"reopened")]).unwrap();
    assert_eq!(read_all(&log, "b", 0, 3, 1 << 20)[0].origin, before + 8);
}

#[test]
fn append_ordered_refuses_bad_sequences_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    log.create_topic("a", 2).unwrap();
    let r = [rec(b"k")];
    let explicit = [NewRecord {
        origin: Some(7),
        ..rec(b"k")
    }];
    let two = [rec(b"k"), rec(b"l")];
    let cases: Vec<Vec<OrderedGroup<'_>>> = vec![
        vec![group("a", 0, &two, &[1, 0])], // decreasing within a partition
        vec![group("a", 0, &r, &[0]), group("a", 1, &r, &[0])], // seq 0 twice
        vec![group("a", 0, &r, &[1])],      // out of range
        vec![group("a", 0, &r, &[0]), group("a", 0, &r, &[1])], // same partition twice
        vec![group("a", 0, &explicit, &[0])], // explicit origin
        vec![group("a", 0, &r, &[])],       // seq length
    ];
    for bad in &cases {
        assert!(matches!(
            log.append_ordered(bad),
            Err(LogError::InvalidArgument(_))
        ));
    }
    assert_eq!(log.end_offset("a", 0).unwrap(), 0);
    assert_eq!(log.end_offset("a", 1).unwrap(), 0);
}

#[test]
fn append_at_keeps_offsets_without_records_through_rolls_reopen_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t/0");
    let mut g = Gen(0xfeed);
    let mut written: Vec<Rec> = Vec::new();
    {
        let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
        log.create_topic("t", 1).unwrap();
        // The first record is not at offset 0, and most batches start after a skip.
        let mut next = 3u64;
        for b in 0..60u64 {
            let n = 1 + g.below(8) as usize;
            let mut offsets = Vec::new();
            let owned: Vec<(Vec<u8>, Vec<u8>, i64)> = (0..n)
                .map(|i| {
                    offsets.push(next);
                    next += 1 + g.below(4);
                    let value = vec![(b as u8).wrapping_add(i as u8); 90 + g.below(40) as usize];
                    (
                        format!("k{b}").into_bytes(),
                        value,
                        1_000 + g.below(500) as i64,
                    )
                })
                .collect();
            let recs: Vec<NewRecord<'_>> = owned
                .iter()
                .map(|(k, v, ts)| NewRecord::new(k, v, *ts).with_origin(b * 100 + 7))
                .collect();
            let r = log.append_at("t", 0, &offsets, &recs).unwrap();
            assert_eq!(
                (r.base_offset, r.last_offset),
                (offsets[0], *offsets.last().unwrap())
            );
            for ((k, v, ts), o) in owned.into_iter().zip(offsets) {
                written.push(Rec {
                    offset: o,
                    timestamp: ts,
                    origin: b * 100 + 7,
                    key: k,
                    value: v,
                    headers: Vec::new(),
                });
            }
            next += g.below(3);
        }
        assert!(segment_files(&pdir).len() > 5, "segments should roll");
        let end = written.last().unwrap().offset + 1;
        assert_eq!(log.end_offset("t", 0).unwrap(), end);
        assert_eq!(log.start_offset("t", 0).unwrap(), 0);
        for max_bytes in [1, 300, 4096] {
            assert_eq!(read_sparse(&log, "t", 0, 0, max_bytes), written);
        }
        // A read from any offset, a skipped one included, starts at the first record at or
        // after it.
        let mut batch = ReadBatch::new();
        for from in 0..end {
            log.read("t", 0, from, 200, &mut batch).unwrap();
            let want = written.iter().find(|r| r.offset >= from).unwrap();
            assert_eq!(
                batch.get(0).map(|r| r.offset),
                Some(want.offset),
                "from {from}"
            );
        }
        for ts in [999i64, 1_100, 1_250, 1_499, 1_500] {
            let brute = written.iter().find(|r| r.timestamp >= ts).map(|r| r.offset);
            assert_eq!(
                log.offset_for_timestamp("t", 0, ts).unwrap(),
                brute,
                "ts {ts}"
            );
        }
        // Offsets at or below the end, not ascending, or not one per record are refused, and
        // nothing is written.
        let one = [NewRecord::new(b"k", b"v", 1)];
        let two = [NewRecord::new(b"k", b"v", 1), NewRecord::new(b"k", b"w", 1)];
        for (offsets, recs) in [
            (vec![end - 1], &one[..]),
            (vec![end + 5, end + 5], &two[..]),
            (vec![end + 6, end + 5], &two[..]),
            (vec![end], &two[..]),
            (vec![end + u64::from(u32::MAX)], &one[..]),
        ] {
            assert!(
                matches!(
                    log.append_at("t", 0, &offsets, recs),
                    Err(LogError::InvalidArgument(_))
                ),
                "{offsets:?} accepted"
            );
        }
        assert_eq!(log.end_offset("t", 0).unwrap(), end);
        // A plain append continues at the end.
        let r = log
            .append("t", 0, &[NewRecord::new(b"k", b"last", 2_000)])
            .unwrap();
        assert_eq!(r.base_offset, end);
        written.push(Rec {
            offset: end,
            timestamp: 2_000,
            origin: read_sparse(&log, "t", 0, end, 100)[0].origin,
            key: b"k".to_vec(),
            value: b"last".to_vec(),
            headers: Vec::new(),
        });
    }
    // Read-only, a reopened writer (sealed segments from their index files), and one that has
    // to scan every segment (index files removed) all see the same records at the same offsets.
    let ro = EmbeddedLog::open_read_only(dir.path()).unwrap();
    assert_eq!(read_sparse(&ro, "t", 0, 0, 4096), written);
    drop(ro);
    {
        let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(read_sparse(&log, "t", 0, 0, 777), written);
    }
    for f in fs::read_dir(&pdir).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_some_and(|e| e == "index") {
            fs::remove_file(path).unwrap();
        }
    }
    let log = EmbeddedLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(read_sparse(&log, "t", 0, 0, 4096), written);
    // Truncating at a record keeps everything before it.
    let cut = written[written.len() / 2].offset;
    log.truncate("t", 0, cut)
        .unwrap_or_else(|e| panic!("truncate at {cut}: {e}"));
    let kept: Vec<Rec> = written.iter().filter(|r| r.offset < cut).cloned().collect();
    assert_eq!(read_sparse(&log, "t", 0, 0, 4096), kept);
    // The end is one past the last record kept (below `cut` where a skip precedes it).
    assert_eq!(
        log.end_offset("t", 0).unwrap(),
        kept.last().unwrap().offset + 1
    );
    // Truncating at an offset that holds no record drops the records after it; the end is one
    // past the last record kept.
    let skipped = (1..kept.len())
        .find(|&i| kept[i].offset > kept[i - 1].offset + 1)
        .expect("a skip among the kept records");
    let at = kept[skipped].offset - 1;
    log.truncate("t", 0, at)
        .unwrap_or_else(|e| panic!("truncate at {at}: {e}"));
    assert_eq!(read_sparse(&log, "t", 0, 0, 4096), kept[..skipped].to_vec());
    assert_eq!(
        log.end_offset("t", 0).unwrap(),
        kept[skipped - 1].offset + 1
    );
}
