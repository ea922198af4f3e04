//! Per-machine predictive-maintenance features over event-time windows, updated incrementally.
//!
//! [`FeatureTracker`] is the only implementation of the features: the predictive processor uses
//! it online and `examples/export_features.rs` uses it to write the training set, so the models
//! see exactly what they were trained on.
//!
//! # Features (F = 37, order = [`FeatureTracker::feature_names`])
//!
//! For each window `w` in (short = 1 h, long = 24 h) and each sensor `s` in (temperature,
//! vibration, pressure, speed): `s_mean_w`, `s_std_w` (population), `s_slope_w` (least-squares
//! slope of value over time, units per hour), `s_max_w`; then `defect_rate_1h`, `defect_rate_24h`
//! (defective / inspected parts from `defects`; 0 when none), `health_score` (last `twin-state`
//! health, 1 before any), `cycles_since_maintenance` (CYCLE_COMPLETED since the last
//! MAINTENANCE_FINISHED or since the machine was first seen) and `hours_since_maintenance`.
//!
//! # Windows
//!
//! Windows close every `close_interval_ms` of event time at multiples of it; the window closing
//! at `T` covers `[T - w, T)` and only readings since the machine's last MAINTENANCE_FINISHED (a
//! maintained machine is a new machine for the models). A machine's windows close when one of
//! its own events at or after `T` arrives (before that event is applied) or when the watermark
//! passes `T + grace`. Closing is deterministic: it depends only on the events applied before it.
//! A row is *ready* (reported) only when the machine is up (no FAULT or MAINTENANCE_STARTED
//! since the last MAINTENANCE_FINISHED) and every sensor has at least `min_readings` readings in
//! the short window.
//!
//! # Incremental state
//!
//! Readings go into fixed event-time buckets (`bucket_ms`, a ring covering the long window). A
//! bucket keeps, per sensor, the count, means of time and value, and the centred second moments
//! `Σ(t-t̄)²`, `Σ(x-x̄)²`, `Σ(t-t̄)(x-x̄)` (Welford updates, O(1) per reading) and the maximum.
//! These are the sums `n, Σx, Σx², Σt, Σtx, Σt²` in centred form: raw power sums lose the
//! variance of a 3000 rpm speed signal with 6 rpm noise to cancellation over a day of readings,
//! centred moments do not. Closing a window merges its buckets with Chan's pairwise formulas,
//! O(buckets), never rescanning readings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use twinline_schemas::{MachineEventKind, Payload, SensorKind};

use crate::EventTime;

const MS_PER_HOUR: f64 = 3_600_000.0;
/// Statistics per sensor per window.
const STATS: [&str; 4] = ["mean", "std", "slope", "max"];
/// Features after the sensor statistics.
const TAIL: usize = 5;

/// Number of features per row.
pub const NUM_FEATURES: usize = 2 * SensorKind::ALL.len() * STATS.len() + TAIL;

/// Window and bucket sizes; all times in event-time milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    /// Bucket width. Default 5 min. Windows and the close interval are multiples of it.
    pub bucket_ms: i64,
    /// Short window. Default 1 h.
    pub short_window_ms: i64,
    /// Long window. Default 24 h.
    pub long_window_ms: i64,
    /// Windows close (and predictions run) every this much event time. Default 15 min.
    pub close_interval_ms: i64,
    /// Minimum readings of every sensor in the short window for a ready row. Default 2.
    pub min_readings: u64,
    /// Rows of history kept for sequence models (K). Default 16.
    pub history_len: usize,
    /// On a watermark, windows of machines without newer events close once the watermark is this
    /// far past the window end. Default 5 min.
    pub watermark_grace_ms: i64,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            bucket_ms: 300_000,
            short_window_ms: 3_600_000,
            long_window_ms: 86_400_000,
            close_interval_ms: 900_000,
            min_readings: 2,
            history_len: 16,
            watermark_grace_ms: 300_000,
        }
    }
}

/// Why a configuration or an event was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    #[error("invalid feature config: {0}")]
    Config(String),
    #[error("{0}")]
    BadInput(String),
}

impl FeatureConfig {
    pub fn validate(&self) -> Result<(), FeatureError> {
        let bad = |why: &str| Err(FeatureError::Config(why.to_string()));
        if self.bucket_ms <= 0 || self.short_window_ms <= 0 || self.close_interval_ms <= 0 {
            return bad("bucket_ms, short_window_ms and close_interval_ms must be > 0");
        }
        if self.short_window_ms > self.long_window_ms {
            return bad("short_window_ms must be <= long_window_ms");
        }
        for (v, name) in [
            (self.short_window_ms, "short_window_ms"),
            (self.long_window_ms, "long_window_ms"),
            (self.close_interval_ms, "close_interval_ms"),
        ] {
            if v % self.bucket_ms != 0 {
                return Err(FeatureError::Config(format!(
                    "{name} must be a multiple of bucket_ms"
                )));
            }
        }
        if self.long_window_ms / self.bucket_ms > 100_000 {
            return bad("long_window_ms / bucket_ms must be <= 100000");
        }
        if self.history_len == 0 || self.watermark_grace_ms < 0 {
            return bad("history_len must be > 0 and watermark_grace_ms >= 0");
        }
        Ok(())
    }

    fn short_buckets(&self) -> i64 {
        self.short_window_ms / self.bucket_ms
    }

    fn long_buckets(&self) -> i64 {
        self.long_window_ms / self.bucket_ms
    }
}

/// Count, means and centred co-moments of (time, value) pairs, plus the maximum value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub n: u64,
    /// Mean time, hours, relative to the owner's reference (bucket start or window end).
    pub mean_t: f64,
    pub mean_x: f64,
    pub m2_t: f64,
    pub m2_x: f64,
    pub c_tx: f64,
    /// Largest value (meaningless when `n == 0`).
    pub max: f64,
}

impl Moments {
    /// Adds one pair (Welford's update, extended to the co-moment).
    #[inline]
    pub fn push(&mut self, t: f64, x: f64) {
        self.n += 1;
        let n = self.n as f64;
        let dt = t - self.mean_t;
        let dx = x - self.mean_x;
        self.mean_t += dt / n;
        self.mean_x += dx / n;
        self.m2_t += dt * (t - self.mean_t);
        self.m2_x += dx * (x - self.mean_x);
        self.c_tx += dt * (x - self.mean_x);
        self.max = if self.n == 1 { x } else { self.max.max(x) };
    }

    /// Merges `other`, whose times are `shift` hours later in this one's reference (Chan et al.).
    #[inline]
    pub fn merge(&mut self, other: &Moments, shift: f64) {
        if other.n == 0 {
            return;
        }
        let ot = other.mean_t + shift;
        if self.n == 0 {
            *self = Moments {
                mean_t: ot,
                ..*other
            };
            return;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let dt = ot - self.mean_t;
        let dx = other.mean_x - self.mean_x;
        let w = na * nb / n;
        self.mean_t += dt * nb / n;
        self.mean_x += dx * nb / n;
        self.m2_t += other.m2_t + dt * dt * w;
        self.m2_x += other.m2_x + dx * dx * w;
        self.c_tx += other.c_tx + dt * dx * w;
        self.max = self.max.max(other.max);
        self.n += other.n;
    }

    /// Population standard deviation of the values (0 when empty).
    pub fn std(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.m2_x.max(0.0) / self.n as f64).sqrt()
        }
    }

    /// Least-squares slope of value over time, per hour (0 with fewer than two distinct times).
    pub fn slope(&self) -> f64 {
        if self.n < 2 || self.m2_t <= 0.0 {
            0.0
        } else {
            self.c_tx / self.m2_t
        }
    }
}

/// One bucket of the ring: `[index * bucket_ms, (index + 1) * bucket_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Bucket {
    index: i64,
    sensors: [Moments; 4],
    parts: u64,
    defects: u64,
}

impl Bucket {
    fn empty(index: i64) -> Self {
        Bucket {
            index,
            sensors: [Moments::default(); 4],
            parts: 0,
            defects: 0,
        }
    }
}

/// Everything the tracker knows about one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MachineFeatures {
    /// Slot `index mod len`; `None` = never used since the last reset.
    buckets: Vec<Option<Bucket>>,
    up: bool,
    /// Lives so far: incremented by every MAINTENANCE_FINISHED.
    life: u64,
    life_start_ms: i64,
    cycles_since_maintenance: u64,
    health: f64,
    next_close_ms: i64,
    /// Largest event time of a reading, to skip closes that cannot be ready.
    last_reading_ms: Option<i64>,
    /// K rows x F, oldest first; empty until the first ready row of this life.
    history: Vec<f64>,
}

/// One ready row, reported when a window closes.
#[derive(Debug, Clone, Copy)]
pub struct FeatureRow<'a> {
    pub machine_id: &'a str,
    /// The window end `T` (exclusive).
    pub window_end_ms: EventTime,
    /// Maintenances finished so far (rows of one life share it; history never crosses lives).
    pub life: u64,
    pub features: &'a [f64],
    /// K x F, oldest first, the last row equal to `features`; rows before the first of this life
    /// repeat the life's first row.
    pub history: &'a [f64],
}

fn sensor_index(s: SensorKind) -> usize {
    match s {
        SensorKind::Temperature => 0,
        SensorKind::Vibration => 1,
        SensorKind::Pressure => 2,
        SensorKind::Speed => 3,
    }
}

fn sensor_name(i: usize) -> &'static str {
    ["temperature", "vibration", "pressure", "speed"][i]
}

/// Feature state of every machine of a partition (see the module docs).
#[derive(Debug, Clone)]
pub struct FeatureTracker {
    cfg: FeatureConfig,
    names: Vec<String>,
    machines: BTreeMap<String, MachineFeatures>,
    /// Scratch for the row being closed (no allocation per close).
    row: Vec<f64>,
}

/// The serialisable part of a [`FeatureTracker`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackerSnapshot {
    machines: BTreeMap<String, MachineFeatures>,
}

fn hours_label(ms: i64) -> String {
    if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else {
        format!("{}m", ms / 60_000)
    }
}

/// Index of the first sensor-statistic feature for window `w` (0 short, 1 long), sensor `s`.
pub fn stat_offset(window: usize, sensor: usize) -> usize {
    (window * SensorKind::ALL.len() + sensor) * STATS.len()
}

impl FeatureTracker {
    pub fn new(cfg: FeatureConfig) -> Result<Self, FeatureError> {
        cfg.validate()?;
        let mut names = Vec::with_capacity(NUM_FEATURES);
        for w in [cfg.short_window_ms, cfg.long_window_ms] {
            let label = hours_label(w);
            for s in 0..SensorKind::ALL.len() {
                for stat in STATS {
                    names.push(format!("{}_{stat}_{label}", sensor_name(s)));
                }
            }
        }
        names.push(format!("defect_rate_{}", hours_label(cfg.short_window_ms)));
        names.push(format!("defect_rate_{}", hours_label(cfg.long_window_ms)));
        names.push("health_score".into());
        names.push("cycles_since_maintenance".into());
        names.push("hours_since_maintenance".into());
        debug_assert_eq!(names.len(), NUM_FEATURES);
        Ok(FeatureTracker {
            cfg,
            names,
            machines: BTreeMap::new(),
            row: vec![0.0; NUM_FEATURES],
        })
    }

    pub fn config(&self) -> &FeatureConfig {
        &self.cfg
    }

    pub fn feature_names(&self) -> &[String] {
        &self.names
    }

    pub fn machine_count(&self) -> usize {
        self.machines.len()
    }

    pub fn snapshot(&self) -> TrackerSnapshot {
        TrackerSnapshot {
            machines: self.machines.clone(),
        }
    }

    pub fn restore(&mut self, snap: TrackerSnapshot) -> Result<(), FeatureError> {
        let slots = self.cfg.long_buckets() as usize;
        let k = self.cfg.history_len * NUM_FEATURES;
        for (id, m) in &snap.machines {
            if m.buckets.len() != slots || !(m.history.is_empty() || m.history.len() == k) {
                return Err(FeatureError::Config(format!(
                    "snapshot of machine {id} was taken with another feature config"
                )));
            }
        }
        self.machines = snap.machines;
        Ok(())
    }

    /// Whether machine `id` is up (see the module docs); `None` if never seen.
    pub fn is_up(&self, id: &str) -> Option<bool> {
        self.machines.get(id).map(|m| m.up)
    }

    /// Closes the machine's windows that end at or before `event_time` (reporting ready rows to
    /// `on_close`), then applies the event. Accepts `sensor-readings`, `machine-events`,
    /// `defects` and `twin-state` payloads.
    pub fn on_event<E: From<FeatureError>>(
        &mut self,
        event_time: EventTime,
        payload: &Payload,
        mut on_close: impl FnMut(FeatureRow<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let machine_id = match payload {
            Payload::SensorReading(r) => &r.machine_id,
            Payload::MachineEvent(e) => &e.machine_id,
            Payload::Defect(d) => &d.machine_id,
            Payload::TwinState(s) => &s.machine_id,
            other => {
                return Err(E::from(FeatureError::BadInput(format!(
                    "features do not use {} events",
                    other.topic().name()
                ))))
            }
        };
        if let Payload::SensorReading(r) = payload {
            if !r.value.is_finite() {
                return Err(E::from(FeatureError::BadInput(format!(
                    "non-finite {} reading for {}",
                    r.sensor.symbol(),
                    r.machine_id
                ))));
            }
        }
        let cfg = &self.cfg;
        if !self.machines.contains_key(machine_id.as_str()) {
            let m = MachineFeatures {
                buckets: vec![None; cfg.long_buckets() as usize],
                up: true,
                life: 0,
                life_start_ms: event_time,
                cycles_since_maintenance: 0,
                health: 1.0,
                next_close_ms: next_multiple_after(event_time, cfg.close_interval_ms),
                last_reading_ms: None,
                history: Vec::new(),
            };
            self.machines.insert(machine_id.clone(), m);
        }
        let Some(m) = self.machines.get_mut(machine_id.as_str()) else {
            return Err(E::from(FeatureError::BadInput(
                "machine state vanished".into(),
            )));
        };
        close_due(cfg, machine_id, m, &mut self.row, event_time, &mut on_close)?;
        apply(cfg, m, event_time, payload);
        Ok(())
    }

    /// Closes, for every machine in id order, the windows ending at or before
    /// `watermark - watermark_grace_ms`.
    pub fn on_watermark<E: From<FeatureError>>(
        &mut self,
        watermark: EventTime,
        mut on_close: impl FnMut(FeatureRow<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let cfg = &self.cfg;
        let limit = watermark.saturating_sub(cfg.watermark_grace_ms);
        for (id, m) in self.machines.iter_mut() {
            close_due(cfg, id, m, &mut self.row, limit, &mut on_close)?;
        }
        Ok(())
    }
}

/// The smallest multiple of `step` strictly greater than `t`.
fn next_multiple_after(t: i64, step: i64) -> i64 {
    (t.div_euclid(step) + 1).saturating_mul(step)
}

fn close_due<E>(
    cfg: &FeatureConfig,
    id: &str,
    m: &mut MachineFeatures,
    row: &mut [f64],
    until: EventTime,
    on_close: &mut impl FnMut(FeatureRow<'_>) -> Result<(), E>,
) -> Result<(), E> {
    while m.next_close_ms <= until {
        let t = m.next_close_ms;
        // Past `last reading + short window` no window can hold a reading: jump over the gap
        // instead of closing (possibly days of) empty windows one by one.
        let can_be_ready = m
            .last_reading_ms
            .is_some_and(|r| t <= r.saturating_add(cfg.short_window_ms));
        if !can_be_ready {
            m.next_close_ms = next_multiple_after(until, cfg.close_interval_ms);
            break;
        }
        m.next_close_ms = t.saturating_add(cfg.close_interval_ms);
        if compute_row(cfg, m, t, row) {
            push_history(&mut m.history, row, cfg.history_len);
            on_close(FeatureRow {
                machine_id: id,
                window_end_ms: t,
                life: m.life,
                features: row,
                history: &m.history,
            })?;
        }
    }
    Ok(())
}

/// Fills `row` for the window ending at `t`; returns whether the row is ready.
fn compute_row(cfg: &FeatureConfig, m: &MachineFeatures, t: i64, row: &mut [f64]) -> bool {
    let end = t.div_euclid(cfg.bucket_ms);
    let short_start = end - cfg.short_buckets();
    let long_start = end - cfg.long_buckets();
    let slots = m.buckets.len() as i64;
    let mut short = [Moments::default(); 4];
    let mut long = [Moments::default(); 4];
    let (mut parts, mut defects) = ([0u64; 2], [0u64; 2]);
    for idx in long_start..end {
        let Some(b) = &m.buckets[idx.rem_euclid(slots) as usize] else {
            continue;
        };
        if b.index != idx {
            continue;
        }
        // Bucket times are hours from the bucket start; windows measure from their end `t`.
        let shift = (idx * cfg.bucket_ms - t) as f64 / MS_PER_HOUR;
        for s in 0..4 {
            long[s].merge(&b.sensors[s], shift);
            if idx >= short_start {
                short[s].merge(&b.sensors[s], shift);
            }
        }
        parts[1] += b.parts;
        defects[1] += b.defects;
        if idx >= short_start {
            parts[0] += b.parts;
            defects[0] += b.defects;
        }
    }
    let ready = m.up && short.iter().all(|s| s.n >= cfg.min_readings);
    if !ready {
        return false;
    }
    for (w, window) in [&short, &long].into_iter().enumerate() {
        for (s, mo) in window.iter().enumerate() {
            let o = stat_offset(w, s);
            let empty = mo.n == 0;
            row[o] = if empty { 0.0 } else { mo.mean_x };
            row[o + 1] = mo.std();
            row[o + 2] = mo.slope();
            row[o + 3] = if empty { 0.0 } else { mo.max };
        }
    }
    let base = stat_offset(2, 0);
    for w in 0..2 {
        row[base + w] = if parts[w] == 0 {
            0.0
        } else {
            defects[w] as f64 / parts[w] as f64
        };
    }
    row[base + 2] = m.health;
    row[base + 3] = m.cycles_since_maintenance as f64;
    row[base + 4] = (t - m.life_start_ms) as f64 / MS_PER_HOUR;
    true
}

fn push_history(history: &mut Vec<f64>, row: &[f64], k: usize) {
    let f = row.len();
    if history.is_empty() {
        history.reserve_exact(k * f);
        for _ in 0..k {
            history.extend_from_slice(row);
        }
    } else {
        history.copy_within(f.., 0);
        let n = history.len();
        history[n - f..].copy_from_slice(row);
    }
}

/// The bucket holding `t`, reset if its slot holds an older bucket; `None` if `t` is older than
/// the ring (later than the long window allows: dropped).
fn bucket_for<'a>(
    cfg: &FeatureConfig,
    m: &'a mut MachineFeatures,
    t: i64,
) -> Option<(&'a mut Bucket, f64)> {
    let idx = t.div_euclid(cfg.bucket_ms);
    let slot = idx.rem_euclid(m.buckets.len() as i64) as usize;
    let entry = &mut m.buckets[slot];
    match entry {
        Some(b) if b.index == idx => {}
        Some(b) if b.index > idx => return None,
        _ => *entry = Some(Bucket::empty(idx)),
    }
    let b = entry.as_mut()?;
    Some((b, (t - idx * cfg.bucket_ms) as f64 / MS_PER_HOUR))
}

fn apply(cfg: &FeatureConfig, m: &mut MachineFeatures, t: i64, payload: &Payload) {
    match payload {
        Payload::SensorReading(r) => {
            m.last_reading_ms = Some(m.last_reading_ms.map_or(t, |l| l.max(t)));
            if let Some((b, th)) = bucket_for(cfg, m, t) {
                b.sensors[sensor_index(r.sensor)].push(th, r.value);
            }
        }
        Payload::Defect(d) => {
            if let Some((b, _)) = bucket_for(cfg, m, t) {
                b.parts += 1;
                b.defects += u64::from(d.defect_detected);
            }
        }
        Payload::TwinState(s) if s.health_score.is_finite() => m.health = s.health_score,
        Payload::MachineEvent(e) => match e.kind {
            MachineEventKind::CycleCompleted => m.cycles_since_maintenance += 1,
            MachineEventKind::Fault | MachineEventKind::MaintenanceStarted => m.up = false,
            MachineEventKind::MaintenanceFinished => {
                m.up = true;
                m.life += 1;
                m.life_start_ms = t;
                m.cycles_since_maintenance = 0;
                m.buckets.iter_mut().for_each(|b| *b = None);
                m.history.clear();
            }
            MachineEventKind::Heartbeat => {}
        },
        _ => {}
    }
}
