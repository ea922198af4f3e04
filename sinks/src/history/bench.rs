//! The history's write and compaction throughput measurement, shared by `cargo bench -p
//! twinline-sinks --bench history` and `twinline bench --history`: sensor readings through the
//! writer (a flush encodes, writes Parquet and commits the manifest), then the compaction of
//! the files they made.

use std::path::Path;
use std::time::{Duration, Instant};

use twinline_schemas::{Payload, SensorKind, SensorReading, Topic};

use super::{HistoryConfig, HistoryError, HistoryStore, HistoryWriter, WriteStats};

/// What one measurement saw.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub rows: usize,
    pub machines: usize,
    pub flushes: usize,
    /// Time spent appending rows into the writer's Arrow builders.
    pub append: Duration,
    /// Time spent in flushes (encode, write, manifest), and what they wrote.
    pub flush: Duration,
    pub flush_bytes: u64,
    pub files_before_compaction: usize,
    pub files_after_compaction: usize,
    pub compaction: WriteStats,
}

/// Writes `rows` sensor readings of `machines` machines into a history at `dir` in `flushes`
/// flushes, then compacts every (topic, date, machine) group into one file.
pub fn throughput(
    dir: &Path,
    rows: usize,
    machines: usize,
    flushes: usize,
) -> Result<Throughput, HistoryError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HistoryError::Io(format!("runtime: {e}")))?;
    let location = dir
        .to_str()
        .ok_or_else(|| HistoryError::Config(format!("not UTF-8: {}", dir.display())))?;
    let store = rt.block_on(HistoryStore::open(location))?;
    let config = HistoryConfig {
        flush_rows: usize::MAX,
        flush_interval: Duration::from_secs(3600),
        // Compaction runs separately below, once every flush is written.
        compact_min_files: usize::MAX,
        compact_target_rows: usize::MAX,
        ..HistoryConfig::default()
    };
    let mut w = HistoryWriter::open(store.clone(), config)?;
    let kinds = [
        SensorKind::Temperature,
        SensorKind::Vibration,
        SensorKind::Pressure,
        SensorKind::Speed,
    ];
    let ids: Vec<String> = (0..machines).map(|m| format!("M{:03}", m + 1)).collect();
    let t0 = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
    let per_flush = rows / flushes.max(1);
    let (mut append, mut flush, mut flush_bytes, mut n) = (Duration::ZERO, Duration::ZERO, 0, 0);
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
            w.append(
                Topic::SensorReadings,
                (n % 4) as u32,
                n as u64,
                n as u64,
                &payload,
            );
            n += 1;
        }
        append += started.elapsed();
        let s = w.flush()?;
        flush += s.elapsed;
        flush_bytes += s.bytes;
    }
    let files_before_compaction = store.manifest().files.len();
    let mut w = HistoryWriter::open(
        store.clone(),
        HistoryConfig {
            compact_min_files: 2,
            compact_target_rows: usize::MAX,
            ..HistoryConfig::default()
        },
    )?;
    let compaction = w.compact()?;
    Ok(Throughput {
        rows: n,
        machines,
        flushes,
        append,
        flush,
        flush_bytes,
        files_before_compaction,
        files_after_compaction: store.manifest().files.len(),
        compaction,
    })
}

impl Throughput {
    /// The Markdown table both entry points print.
    pub fn table(&self) -> String {
        let mb = |b: u64| b as f64 / 1e6;
        let per_s = |rows: f64, d: Duration| rows / d.as_secs_f64().max(1e-9);
        let c = &self.compaction;
        let mut out = format!(
            "history throughput, {} sensor readings, {} machines, {} flushes\n",
            self.rows, self.machines, self.flushes
        );
        out += "| step | rows | files | time (s) | rows/s | MB/s written |\n|---|---|---|---|---|---|\n";
        out += &format!(
            "| append (rows into Arrow builders) | {} | - | {:.2} | {:.0} | - |\n",
            self.rows,
            self.append.as_secs_f64(),
            per_s(self.rows as f64, self.append)
        );
        out += &format!(
            "| flush (Parquet zstd-1 encode + write + manifest) | {} | {} | {:.2} | {:.0} | {:.1} |\n",
            self.rows,
            self.files_before_compaction,
            self.flush.as_secs_f64(),
            per_s(self.rows as f64, self.flush),
            mb(self.flush_bytes) / self.flush.as_secs_f64().max(1e-9)
        );
        out += &format!(
            "| compaction (read + merge + write, {} -> {} files) | {} | {} | {:.2} | {:.0} | {:.1} |\n",
            self.files_before_compaction,
            self.files_after_compaction,
            c.rows,
            c.files,
            c.elapsed.as_secs_f64(),
            per_s(c.rows as f64, c.elapsed),
            mb(c.bytes) / c.elapsed.as_secs_f64().max(1e-9)
        );
        out
    }
}
