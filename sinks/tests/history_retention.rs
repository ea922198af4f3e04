//! History retention: dates older than `retention_days` before the newest event time leave the
//! manifest and the disk; newer dates, and the writer's log positions, stay.

use std::collections::BTreeSet;
use std::time::Duration;

use twinline_schemas::{Payload, SensorKind, SensorReading, Topic};
use twinline_sinks::history::{HistoryConfig, HistoryStore, HistoryWriter};

const DAY_MS: i64 = 86_400_000;
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn reading(machine: &str, t: i64) -> Payload {
    Payload::SensorReading(SensorReading {
        machine_id: machine.into(),
        sensor: SensorKind::Temperature,
        value: 20.0,
        unit: "C".into(),
        event_time: t,
    })
}

fn parquet_files(dir: &std::path::Path) -> BTreeSet<String> {
    walk(dir)
        .into_iter()
        .filter(|p| p.ends_with(".parquet"))
        .map(|p| {
            p.trim_start_matches(dir.to_str().unwrap())
                .trim_start_matches('/')
                .to_string()
        })
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.to_str().unwrap().to_string());
        }
    }
    out
}

#[test]
fn retention_drops_old_dates_in_event_time() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt
        .block_on(HistoryStore::open(tmp.path().to_str().unwrap()))
        .unwrap();
    let config = HistoryConfig {
        retention_days: 2,
        delete_grace: Duration::ZERO,
        compact_min_files: usize::MAX,
        ..HistoryConfig::default()
    };
    let mut w = HistoryWriter::open(store.clone(), config).unwrap();
    let mut offset = 0u64;
    // Six days of plant time, two machines, one flush per day (the newest is 2026-01-06 12:00).
    for day in 0..6i64 {
        for machine in ["M001", "M002"] {
            for k in 0..3 {
                let t = T0 + day * DAY_MS + 12 * 3_600_000 + k;
                w.append(
                    Topic::SensorReadings,
                    0,
                    offset,
                    offset,
                    &reading(machine, t),
                );
                offset += 1;
            }
        }
        w.advance(Topic::SensorReadings, 0, offset);
        w.flush().unwrap();
    }
    w.delete_expired(true).unwrap();

    let manifest = store.manifest();
    let dates: BTreeSet<&str> = manifest.files.iter().map(|f| f.date.as_str()).collect();
    // Cutoff = date of (newest - 2 days) = 2026-01-04: that date and later stay.
    assert_eq!(
        dates,
        BTreeSet::from(["2026-01-04", "2026-01-05", "2026-01-06"]),
        "{manifest:?}"
    );
    assert_eq!(manifest.total_rows(Topic::SensorReadings), 3 * 2 * 3);
    assert!(manifest.pending_deletes.is_empty());
    // The files on disk are exactly the manifest's: the dropped dates are gone.
    let on_disk = parquet_files(tmp.path());
    let listed: BTreeSet<String> = manifest.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(on_disk, listed);
    assert!(on_disk.iter().all(|p| !p.contains("date=2026-01-03")));
    // Retention forgets rows, not the writer's place in the log.
    assert_eq!(manifest.position(Topic::SensorReadings, 0), offset);
    drop(w);
    let reopened = HistoryWriter::open(store.clone(), HistoryConfig::default()).unwrap();
    assert_eq!(reopened.position(Topic::SensorReadings, 0), offset);
}
