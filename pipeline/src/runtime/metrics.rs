//! Pipeline counters, rendered in the Prometheus text format for `/metrics`.
//!
//! Counters are plain atomics indexed by topic rank, so recording costs one relaxed add and no
//! lock on the hot path. Lag is computed at scrape time from task positions and log ends.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use twinline_schemas::Topic;

const N: usize = 16;

#[derive(Default)]
pub struct Metrics {
    events_in: [AtomicU64; N],
    events_out: [AtomicU64; N],
    dead_letters: [AtomicU64; N],
    ingested: [AtomicU64; N],
    pub task_restarts: AtomicU64,
    pub checkpoints: AtomicU64,
    /// Wall-clock microseconds spent per processing round, as a histogram.
    latency: Mutex<Option<hdrhistogram::Histogram<u64>>>,
    /// (topic, partition, next offset to process, log end) snapshot, refreshed by the runner.
    lag: Mutex<Vec<(Topic, u32, u64, u64)>>,
}

fn idx(t: Topic) -> usize {
    (t.rank() as usize).min(N - 1)
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics::default();
        *m.latency.lock() = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2).ok();
        m
    }
    pub fn record_in(&self, t: Topic, n: u64) {
        self.events_in[idx(t)].fetch_add(n, Ordering::Relaxed);
    }
    pub fn record_out(&self, t: Topic, n: u64) {
        self.events_out[idx(t)].fetch_add(n, Ordering::Relaxed);
    }
    pub fn record_dead_letter(&self, source: Topic) {
        self.dead_letters[idx(source)].fetch_add(1, Ordering::Relaxed);
    }
    pub fn record_ingested(&self, t: Topic, n: u64) {
        self.ingested[idx(t)].fetch_add(n, Ordering::Relaxed);
    }
    pub fn record_round_latency_us(&self, us: u64) {
        if let Some(h) = self.latency.lock().as_mut() {
            let _ = h.record(us.max(1));
        }
    }
    pub fn set_lag(&self, lag: Vec<(Topic, u32, u64, u64)>) {
        *self.lag.lock() = lag;
    }
    pub fn events_in(&self, t: Topic) -> u64 {
        self.events_in[idx(t)].load(Ordering::Relaxed)
    }
    pub fn events_out(&self, t: Topic) -> u64 {
        self.events_out[idx(t)].load(Ordering::Relaxed)
    }

    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let counter = |s: &mut String, name: &str, help: &str, arr: &[AtomicU64; N]| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for t in Topic::ALL {
                let _ = writeln!(
                    s,
                    "{name}{{topic=\"{}\"}} {}",
                    t.name(),
                    arr[idx(t)].load(Ordering::Relaxed)
                );
            }
        };
        counter(
            &mut s,
            "twinline_events_in_total",
            "Records consumed by processing tasks, per topic.",
            &self.events_in,
        );
        counter(
            &mut s,
            "twinline_events_out_total",
            "Derived records appended, per topic.",
            &self.events_out,
        );
        counter(
            &mut s,
            "twinline_errors_total",
            "Records dead-lettered, per source topic.",
            &self.dead_letters,
        );
        counter(
            &mut s,
            "twinline_ingested_total",
            "Records appended by producers (simulator, API), per topic.",
            &self.ingested,
        );
        let _ = writeln!(s, "# HELP twinline_task_restarts_total Task restarts from checkpoint after an internal error.\n# TYPE twinline_task_restarts_total counter\ntwinline_task_restarts_total {}", self.task_restarts.load(Ordering::Relaxed));
        let _ = writeln!(s, "# HELP twinline_checkpoints_total Checkpoints written.\n# TYPE twinline_checkpoints_total counter\ntwinline_checkpoints_total {}", self.checkpoints.load(Ordering::Relaxed));
        let _ = writeln!(s, "# HELP twinline_consumer_lag Records not yet processed, per input partition.\n# TYPE twinline_consumer_lag gauge");
        for (t, p, pos, end) in self.lag.lock().iter() {
            let _ = writeln!(
                s,
                "twinline_consumer_lag{{topic=\"{}\",partition=\"{}\"}} {}",
                t.name(),
                p,
                end.saturating_sub(*pos)
            );
        }
        if let Some(h) = self.latency.lock().as_ref() {
            let _ = writeln!(s, "# HELP twinline_processing_round_seconds Wall time per processing round.\n# TYPE twinline_processing_round_seconds summary");
            for q in [0.5, 0.9, 0.99] {
                let _ = writeln!(
                    s,
                    "twinline_processing_round_seconds{{quantile=\"{q}\"}} {:.6}",
                    h.value_at_quantile(q) as f64 / 1e6
                );
            }
            let _ = writeln!(s, "twinline_processing_round_seconds_count {}", h.len());
        }
        s
    }
}
