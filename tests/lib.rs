//! Helpers shared by the end-to-end scenarios: locating and driving the `twinline` binary,
//! comparing logs record by record.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use twinline_log::{EmbeddedLog, EventLog, ReadBatch};

/// The `twinline` binary built next to this test binary (`cargo build --bins` first).
pub fn twinline_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TWINLINE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/twinline
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("twinline");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p twinline --bins` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Run `twinline <args>` to completion; panics with its output on failure.
pub fn twinline(args: &[&str]) -> Output {
    let out = Command::new(twinline_bin())
        .args(args)
        .env("TWINLINE_LOG", "warn")
        .output()
        .expect("spawning twinline");
    assert!(
        out.status.success(),
        "twinline {:?} failed: {}\nstdout: {}\nstderr: {}",
        args,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One record as stored, for byte-for-byte comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: u64,
    pub timestamp: i64,
    pub origin: u64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Every record of `topic` (all partitions), in partition then offset order.
pub fn dump_topic(data: &Path, topic: &str) -> Vec<(u32, StoredRecord)> {
    let log = EmbeddedLog::open_read_only(&data.join("log")).expect("open log");
    let mut out = Vec::new();
    let mut batch = ReadBatch::new();
    for p in 0..log.partitions(topic).expect("partitions") {
        let mut off = log.start_offset(topic, p).expect("start");
        let end = log.end_offset(topic, p).expect("end");
        while off < end {
            log.read(topic, p, off, 1 << 20, &mut batch).expect("read");
            if batch.is_empty() {
                break;
            }
            for r in batch.iter() {
                off = r.offset + 1;
                out.push((
                    p,
                    StoredRecord {
                        offset: r.offset,
                        timestamp: r.timestamp,
                        origin: r.origin,
                        key: r.key.to_vec(),
                        value: r.value.to_vec(),
                    },
                ));
            }
        }
    }
    out
}

pub const DERIVED: [&str; 6] = [
    "defects",
    "twin-state",
    "failure-predictions",
    "maintenance-requests",
    "schedule-changes",
    "dead-letters",
];

/// Assert two data directories hold byte-identical derived topics.
pub fn assert_same_derived(a: &Path, b: &Path) {
    for t in DERIVED {
        let (x, y) = (dump_topic(a, t), dump_topic(b, t));
        assert_eq!(
            x.len(),
            y.len(),
            "topic {t}: {} vs {} records",
            x.len(),
            y.len()
        );
        for (i, (r1, r2)) in x.iter().zip(&y).enumerate() {
            assert_eq!(r1, r2, "topic {t}: record {i} differs");
        }
    }
}
