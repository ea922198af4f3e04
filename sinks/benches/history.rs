//! History write and compaction throughput: sensor readings through the writer (a flush encodes,
//! writes Parquet and commits the manifest) and the compaction of the files they made. Prints
//! a table. `cargo bench -p twinline-sinks --bench history [-- ROWS]`.

use std::time::{Duration, Instant};

use twinline_schemas::{Payload, SensorKind, SensorReading, Topic};
use twinline_sinks::history::{HistoryConfig, HistoryStore, HistoryWriter};

fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(4_000_000);
    let machines = 50usize;
    let flushes = 16usize;
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt
        .block_on(HistoryStore::open(tmp.path().to_str().unwrap()))
        .unwrap();
    let config = HistoryConfig {
        flush_rows: usize::MAX,
        flush_interval: Duration::from_secs(3600),
        // Compaction is run explicitly below, once every flush is written.
        compact_min_files: usize::MAX,
        compact_target_rows: usize::MAX,
        ..HistoryConfig::default()
    };
    let mut w = HistoryWriter::open(store.clone(), config).unwrap();
    let kinds = [
        SensorKind::Temperature,
        SensorKind::Vibration,
        SensorKind::Pressure,
        SensorKind::Speed,
    ];
    let ids: Vec<String> = (0..machines).map(|m| format!("M{:03}", m + 1)).collect();
    let t0 = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
    let per_flush = rows / flushes;
    let mut append = Duration::ZERO;
    let mut flush = Duration::ZERO;
    let mut bytes = 0u64;
    let mut n = 0usize;
    let mut payload = Payload::SensorReading(SensorReading {
        machine_id: String::new(),
        sensor: SensorKind::Temperature,
        value: 0.0,
        unit: "C".into(),
        event_time: t0,
    });
    for _ in 0..flushes {
        let started = Instant::now();
        for _ in 0..per_flush {
            if let Payload::SensorReading(r) = &mut payload {
                r.machine_id.clone_from(&ids[n % machines]);
                r.sensor = kinds[(n / machines) % kinds.len()];
                r.value = 50.0 + ((n * 7919) % 1000) as f64 / 100.0;
                r.event_time = t0 + (n as i64) * 10;
            }
            let p = (n % 4) as u32;
            w.append(Topic::SensorReadings, p, n as u64, n as u64, &payload);
            n += 1;
        }
        append += started.elapsed();
        let s = w.flush().unwrap();
        flush += s.elapsed;
        bytes += s.bytes;
    }
    let files_before = store.manifest().files.len();
    let mut w = HistoryWriter::open(
        store.clone(),
        HistoryConfig {
            compact_min_files: 2,
            compact_target_rows: usize::MAX,
            ..HistoryConfig::default()
        },
    )
    .unwrap();
    let c = w.compact().unwrap();
    let files_after = store.manifest().files.len();
    let mb = |b: u64| b as f64 / 1e6;
    println!("history throughput, {n} sensor readings, {machines} machines, {flushes} flushes");
    println!("| step | rows | files | time (s) | rows/s | MB/s written |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| append (decode-free: rows into Arrow builders) | {n} | - | {:.2} | {:.0} | - |",
        append.as_secs_f64(),
        n as f64 / append.as_secs_f64()
    );
    println!(
        "| flush (Parquet zstd-1 encode + write + manifest) | {n} | {files_before} | {:.2} | {:.0} | {:.1} |",
        flush.as_secs_f64(),
        n as f64 / flush.as_secs_f64(),
        mb(bytes) / flush.as_secs_f64()
    );
    println!(
        "| compaction (read + merge + write, {files_before} -> {files_after} files) | {} | {} | {:.2} | {:.0} | {:.1} |",
        c.rows,
        c.files,
        c.elapsed.as_secs_f64(),
        c.rows as f64 / c.elapsed.as_secs_f64(),
        mb(c.bytes) / c.elapsed.as_secs_f64()
    );
}
