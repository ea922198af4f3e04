//! Append and sequential-read throughput of `EmbeddedLog` for small records: a bench binary
//! (`harness = false`) that prints a table. Data is deterministic; the log lives in a temp dir.
//!
//! Run: `cargo bench -p twinline-log --bench log` (optionally `-- <records>`).

use std::time::Instant;

use twinline_log::{EmbeddedLog, EventLog, FsyncPolicy, LogConfig, NewRecord, ReadBatch};

const BATCH: usize = 1000;

fn main() {
    let total: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    // ~60-byte records: 8-byte key, 52-byte value.
    let keys: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| format!("m-{:06}", i % 64).into_bytes())
        .collect();
    let values: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| (0..52).map(|j| (i * 31 + j) as u8).collect())
        .collect();
    let frame = NewRecord::new(&keys[0], &values[0], 0).encoded_len();
    println!("records: {total}, batch: {BATCH}, payload: 60 B, frame on disk: {frame} B");
    println!("{:<44} {:>14} {:>10}", "case", "records/s", "MB/s");

    for (name, fsync) in [
        ("append, fsync Never", FsyncPolicy::Never),
        (
            "append, fsync IntervalMs(1000)",
            FsyncPolicy::IntervalMs(1000),
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EmbeddedLog::open(
            dir.path(),
            LogConfig {
                fsync,
                ..LogConfig::default()
            },
        )
        .expect("open");
        log.create_topic("bench", 1).expect("topic");
        let start = Instant::now();
        let mut ts = 1_700_000_000_000i64;
        let mut recs: Vec<NewRecord<'_>> = Vec::with_capacity(BATCH);
        for _ in 0..total / BATCH {
            recs.clear();
            for i in 0..BATCH {
                recs.push(NewRecord::new(&keys[i], &values[i], ts));
                ts += 1;
            }
            log.append("bench", 0, &recs).expect("append");
        }
        let secs = start.elapsed().as_secs_f64();
        report(name, total, frame, secs);

        if fsync == FsyncPolicy::Never {
            for max_bytes in [64 << 10, 1 << 20] {
                let mut batch = ReadBatch::with_capacity(max_bytes + (16 << 10));
                let start = Instant::now();
                let mut next = 0u64;
                let mut checksum = 0u64;
                let mut n = 0usize;
                loop {
                    log.read("bench", 0, next, max_bytes, &mut batch)
                        .expect("read");
                    if batch.is_empty() {
                        break;
                    }
                    for r in batch.iter() {
                        checksum = checksum.wrapping_add(r.value.len() as u64 + r.key[0] as u64);
                        n += 1;
                    }
                    next = batch.next_offset().expect("non-empty");
                }
                let secs = start.elapsed().as_secs_f64();
                assert_eq!(n, total);
                std::hint::black_box(checksum);
                report(
                    &format!("sequential read, max_bytes {} KiB", max_bytes >> 10),
                    n,
                    frame,
                    secs,
                );
            }
            // Reopen = recovery scan of the active segment (no index for it).
            drop(log);
            let start = Instant::now();
            let log = EmbeddedLog::open(dir.path(), LogConfig::default()).expect("reopen");
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(log.end_offset("bench", 0).expect("end"), total as u64);
            report("reopen (recovery scan)", total, frame, secs);
        }
    }
}

fn report(name: &str, records: usize, frame: usize, secs: f64) {
    let rps = records as f64 / secs;
    println!(
        "{:<44} {:>14.0} {:>10.1}",
        name,
        rps,
        rps * frame as f64 / 1e6
    );
}
