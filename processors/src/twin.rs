//! The digital-twin processor: per-machine status, health, counters and smoothed sensors, emitted
//! as `twin-state` whenever something a reader cares about changes.
//!
//! Inputs: `sensor-readings`, `machine-events`, `defects` (handed over in memory by vision).
//! Output: `twin-state`, key = machine id, one [`TwinState`] per change.
//!
//! # Status
//!
//! The visible status is derived from three parts of the state: an operational *base* status
//! (IDLE, RUNNING, ERROR, MAINTENANCE) driven by machine events, a *warning* latch driven by health,
//! and an *offline* flag driven by the watermark:
//! `status = OFFLINE if offline, else WARNING if warning and base ∈ {IDLE, RUNNING}, else base`.
//!
//! | event (for machine m) | base before | base after | other effects |
//! |---|---|---|---|
//! | first event ever | — | IDLE | the machine's state is created; emitted with `previous_status = null` |
//! | `CYCLE_COMPLETED` | IDLE, RUNNING | RUNNING | `cycles += 1` |
//! | `CYCLE_COMPLETED` | ERROR, MAINTENANCE | unchanged | `cycles += 1` (the part was made) |
//! | `HEARTBEAT busy=true` | IDLE, RUNNING | RUNNING | |
//! | `HEARTBEAT busy=false` | IDLE, RUNNING | IDLE | |
//! | `HEARTBEAT` (any busy) | ERROR, MAINTENANCE | unchanged | a heartbeat never clears a fault |
//! | `HEARTBEAT busy=null` | any | unchanged | liveness only |
//! | `FAULT` | any | ERROR | stays ERROR until maintenance |
//! | `MAINTENANCE_STARTED` | any | MAINTENANCE | |
//! | `MAINTENANCE_FINISHED` | any | IDLE | baselines and EWMAs forgotten (relearned), defect-rate window emptied, health recomputed (so the warning latch clears); lifetime `defects`/`parts_inspected` kept |
//!
//! | condition | effect on the visible status |
//! |---|---|
//! | health < `warning_health` | warning latch set: IDLE/RUNNING show as WARNING |
//! | health ≥ `warning_health + warning_hysteresis` | warning latch cleared: back to IDLE/RUNNING |
//! | `watermark − last_seen ≥ offline_after_ms` (checked in `on_watermark`) | OFFLINE |
//! | any event for an OFFLINE machine | offline flag cleared: back to the underlying status (the event itself is applied too) |
//!
//! The latch is kept up to date in every base status but only shows in IDLE/RUNNING; ERROR and
//! MAINTENANCE say more than WARNING does. `last_seen` is the largest event time of any event for
//! the machine (readings, machine events, defects): any sign of life counts, and taking the maximum
//! keeps it monotonic when topics interleave out of event-time order.
//!
//! # Health
//!
//! For each sensor `s` (temperature, vibration, pressure, speed), once its baseline is learned:
//!
//! ```text
//! z_s       = dir_s · (ewma_s − mean_s) / max(std_s, max(min_std_absolute, min_std_relative·|mean_s|))
//! excess_s  = clamp(z_s − z_dead_zone, 0, z_clip − z_dead_zone)
//! penalty_s = 1 − exp(−excess_s² / (2 · z_scale²))                  ∈ [0, 1)
//! defect    = min(1, defect_rate / defect_rate_full)
//! health    = clamp(1 − Σ_s w_s · penalty_s − w_defect · defect, 0, 1)
//! ```
//!
//! - `dir_s` is +1 for temperature and vibration (wear makes them rise) and −1 for pressure and
//!   speed (leaks and overheating make them fall); a drift in the harmless direction costs nothing.
//! - `ewma_s = α·x + (1−α)·ewma_s` over the raw readings, so `z` measures how far the smoothed
//!   level has moved in units of raw reading noise. Smoothing divides the noise of the level by
//!   about `sqrt((2−α)/α)` (≈ 6.2 for α = 0.05), and the dead zone of 1 σ then keeps steady noisy
//!   readings from moving health at all.
//! - `mean_s`, `std_s`: Welford over the first `baseline_readings` readings of that sensor after
//!   the machine was first seen or after `MAINTENANCE_FINISHED`, taken only while the base status is
//!   IDLE or RUNNING (a faulted or open machine is not "normal"). Until it is learned the sensor's
//!   penalty is 0: health cannot judge a sensor it has no reference for.
//! - The penalty is Gaussian-shaped: flat near the dead zone (no jitter from noise), steep in
//!   the middle, saturating at 1 so one runaway sensor costs at most its weight.
//! - With the defaults, a vibration level 4 σ above baseline costs 0.5 · 0.39 ≈ 0.20 (health 0.80);
//!   6 σ costs 0.37 (health 0.63, WARNING); a worn machine (vibration and temperature both far
//!   out) ends near 1 − 0.5 − 0.35 = 0.15.
//!
//! # Defect rate
//!
//! Every `Defect` for the machine is one inspected part (`parts_inspected += 1`), and one defect
//! when `defect_detected` (`defects += 1`); both are lifetime counters. `defect_rate` is
//! `defects / parts` over the last `defect_rate_window` inspected parts (0 when none), so it
//! follows the machine's current condition; the window is emptied by `MAINTENANCE_FINISHED`.
//! A defect of an uploaded image (`request_id` set, `POST /api/v1/vision/detect`) counts only for
//! a machine the twin already tracks, so an upload never invents a machine.
//!
//! # Emission
//!
//! After each event (or watermark) the machine's status, cycles, defects, parts inspected and
//! health are compared with the last emitted [`TwinState`]; one is emitted when status, a counter,
//! or health by at least `health_emit_threshold` has changed. `reason` lists what changed, `; `
//! separated, e.g. `status RUNNING->ERROR: fault F_BEARING`, `cycle`, `defect`, `health`.
//! `previous_status` is the status of the previous emitted state. Sensor readings that change
//! none of these emit nothing and allocate nothing. Watermark emissions are in machine-id order.
//!
//! # State and determinism
//!
//! No clock, no randomness; the hash map of machines is never iterated for output. Snapshots are
//! JSON of a `BTreeMap` (deterministic bytes; `serde_json` is built with `float_roundtrip` so
//! every `f64` restores bit for bit).

mod health;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use twinline_schemas::{
    Defect, MachineEvent, MachineEventKind, MachineStatus, Payload, SensorKind, SensorReading,
    Source, Topic, TwinState,
};

use crate::{Emitter, Event, EventTime, ProcessError, Processor};
use health::{HealthParams, SensorState, PRESSURE, SENSORS, SPEED, TEMPERATURE, VIBRATION};

const INPUTS: &[Topic] = &[Topic::SensorReadings, Topic::MachineEvents, Topic::Defects];
const SNAPSHOT_VERSION: u32 = 1;

/// Weights of the health formula (see the module doc). Each is the most health that component
/// can take away on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthWeights {
    /// Default 0.35.
    pub temperature: f64,
    /// Default 0.5: bearing wear shows first and most clearly in vibration.
    pub vibration: f64,
    /// Default 0.25.
    pub pressure: f64,
    /// Default 0.25.
    pub speed: f64,
    /// Default 0.4.
    pub defect_rate: f64,
}

impl Default for HealthWeights {
    fn default() -> Self {
        Self {
            temperature: 0.35,
            vibration: 0.5,
            pressure: 0.25,
            speed: 0.25,
            defect_rate: 0.4,
        }
    }
}

/// Configuration of [`TwinProcessor`]; every field has a default, unknown keys are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwinConfig {
    /// Event-time ms without any event for a machine after which it is OFFLINE. Default 60 000.
    pub offline_after_ms: i64,
    /// Health below this sets WARNING. Default 0.7.
    pub warning_health: f64,
    /// WARNING clears at `warning_health + warning_hysteresis`. Default 0.1: in the middle of a
    /// wear ramp health jitters by a few hundredths, and a narrower band made WARNING flap.
    pub warning_hysteresis: f64,
    /// Readings per sensor used to learn its baseline, after first sight and after maintenance.
    /// Default 300.
    pub baseline_readings: u32,
    /// EWMA smoothing factor for sensor values, in (0, 1]. Default 0.05 (a lag of ~20 readings,
    /// small next to the hours over which wear develops).
    pub ewma_alpha: f64,
    /// z-scores up to this cost nothing. Default 1.0.
    pub z_dead_zone: f64,
    /// Width of the Gaussian-shaped penalty beyond the dead zone. Default 3.0.
    pub z_scale: f64,
    /// z-scores are clipped here (the penalty is flat beyond). Default 10.0.
    pub z_clip: f64,
    /// Floor of the baseline std as a fraction of |mean|. Default 0.01.
    pub min_std_relative: f64,
    /// Absolute floor of the baseline std. Default 1e-6.
    pub min_std_absolute: f64,
    /// Readings with |value| above this are rejected as bad input. Default 1e9.
    pub max_abs_value: f64,
    pub weights: HealthWeights,
    /// Number of most recent inspected parts the defect rate is computed over. Default 100.
    pub defect_rate_window: u32,
    /// Defect rate at which the defect penalty is full. Default 0.2.
    pub defect_rate_full: f64,
    /// Emit when health moved at least this much since the last emitted state. Default 0.01.
    pub health_emit_threshold: f64,
}

impl Default for TwinConfig {
    fn default() -> Self {
        Self {
            offline_after_ms: 60_000,
            warning_health: 0.7,
            warning_hysteresis: 0.1,
            baseline_readings: 300,
            ewma_alpha: 0.05,
            z_dead_zone: 1.0,
            z_scale: 3.0,
            z_clip: 10.0,
            min_std_relative: 0.01,
            min_std_absolute: 1e-6,
            max_abs_value: 1e9,
            weights: HealthWeights::default(),
            defect_rate_window: 100,
            defect_rate_full: 0.2,
            health_emit_threshold: 0.01,
        }
    }
}

/// A [`TwinConfig`] value that makes no sense.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid twin config: {field} {problem}")]
pub struct TwinConfigError {
    pub field: &'static str,
    pub problem: &'static str,
}

impl TwinConfig {
    pub fn validate(&self) -> Result<(), TwinConfigError> {
        fn check(
            ok: bool,
            field: &'static str,
            problem: &'static str,
        ) -> Result<(), TwinConfigError> {
            if ok {
                Ok(())
            } else {
                Err(TwinConfigError { field, problem })
            }
        }
        let finite_nonneg = |x: f64| x.is_finite() && x >= 0.0;
        check(self.offline_after_ms > 0, "offline_after_ms", "must be > 0")?;
        check(
            self.warning_health.is_finite() && (0.0..=1.0).contains(&self.warning_health),
            "warning_health",
            "must be in [0, 1]",
        )?;
        check(
            finite_nonneg(self.warning_hysteresis),
            "warning_hysteresis",
            "must be finite and >= 0",
        )?;
        check(
            self.baseline_readings >= 2,
            "baseline_readings",
            "must be >= 2",
        )?;
        check(
            self.ewma_alpha.is_finite() && self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0,
            "ewma_alpha",
            "must be in (0, 1]",
        )?;
        check(
            finite_nonneg(self.z_dead_zone),
            "z_dead_zone",
            "must be finite and >= 0",
        )?;
        check(
            self.z_scale.is_finite() && self.z_scale > 0.0,
            "z_scale",
            "must be finite and > 0",
        )?;
        check(
            self.z_clip.is_finite() && self.z_clip >= self.z_dead_zone,
            "z_clip",
            "must be >= z_dead_zone",
        )?;
        check(
            finite_nonneg(self.min_std_relative),
            "min_std_relative",
            "must be finite and >= 0",
        )?;
        check(
            self.min_std_absolute.is_finite() && self.min_std_absolute > 0.0,
            "min_std_absolute",
            "must be finite and > 0",
        )?;
        check(
            self.max_abs_value.is_finite() && self.max_abs_value > 0.0,
            "max_abs_value",
            "must be > 0",
        )?;
        let w = &self.weights;
        for (x, name) in [
            (w.temperature, "weights.temperature"),
            (w.vibration, "weights.vibration"),
            (w.pressure, "weights.pressure"),
            (w.speed, "weights.speed"),
            (w.defect_rate, "weights.defect_rate"),
        ] {
            check(finite_nonneg(x), name, "must be finite and >= 0")?;
        }
        check(
            self.defect_rate_window >= 1,
            "defect_rate_window",
            "must be >= 1",
        )?;
        check(
            self.defect_rate_full.is_finite() && self.defect_rate_full > 0.0,
            "defect_rate_full",
            "must be finite and > 0",
        )?;
        check(
            self.health_emit_threshold.is_finite() && self.health_emit_threshold > 0.0,
            "health_emit_threshold",
            "must be finite and > 0",
        )?;
        Ok(())
    }
}

/// The visible status of a machine (mirrors [`MachineStatus`]; kept separate so the snapshot
/// format does not depend on the schema crate's serde attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Idle,
    Running,
    Warning,
    Error,
    Maintenance,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "IDLE",
            Status::Running => "RUNNING",
            Status::Warning => "WARNING",
            Status::Error => "ERROR",
            Status::Maintenance => "MAINTENANCE",
            Status::Offline => "OFFLINE",
        }
    }

    fn to_schema(self) -> MachineStatus {
        match self {
            Status::Idle => MachineStatus::Idle,
            Status::Running => MachineStatus::Running,
            Status::Warning => MachineStatus::Warning,
            Status::Error => MachineStatus::Error,
            Status::Maintenance => MachineStatus::Maintenance,
            Status::Offline => MachineStatus::Offline,
        }
    }
}

/// The operational status driven by machine events alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum BaseStatus {
    Idle,
    Running,
    Error,
    Maintenance,
}

impl BaseStatus {
    fn is_operating(self) -> bool {
        matches!(self, BaseStatus::Idle | BaseStatus::Running)
    }
}

/// The last `capacity` inspection outcomes, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct DefectWindow {
    recent: VecDeque<bool>,
    defects: u32,
}

impl DefectWindow {
    fn push(&mut self, defect: bool, capacity: usize) {
        while self.recent.len() >= capacity {
            if self.recent.pop_front() == Some(true) {
                self.defects -= 1;
            }
        }
        self.recent.push_back(defect);
        if defect {
            self.defects += 1;
        }
    }

    fn rate(&self) -> f64 {
        if self.recent.is_empty() {
            0.0
        } else {
            f64::from(self.defects) / self.recent.len() as f64
        }
    }

    fn clear(&mut self) {
        self.recent.clear();
        self.defects = 0;
    }
}

/// What the last emitted state said, to decide whether the next one is a change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct LastEmitted {
    status: Status,
    cycles: u64,
    defects: u64,
    parts_inspected: u64,
    health: f64,
}

/// Everything the twin knows about one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MachineState {
    base: BaseStatus,
    warning: bool,
    offline: bool,
    health: f64,
    cycles: u64,
    defects: u64,
    parts_inspected: u64,
    window: DefectWindow,
    sensors: [SensorState; SENSORS],
    last_seen: EventTime,
    last_emitted: Option<LastEmitted>,
}

impl MachineState {
    fn new(event_time: EventTime) -> Self {
        Self {
            base: BaseStatus::Idle,
            warning: false,
            offline: false,
            health: 1.0,
            cycles: 0,
            defects: 0,
            parts_inspected: 0,
            window: DefectWindow::default(),
            sensors: Default::default(),
            last_seen: event_time,
            last_emitted: None,
        }
    }

    fn status(&self) -> Status {
        if self.offline {
            return Status::Offline;
        }
        match self.base {
            BaseStatus::Idle | BaseStatus::Running if self.warning => Status::Warning,
            BaseStatus::Idle => Status::Idle,
            BaseStatus::Running => Status::Running,
            BaseStatus::Error => Status::Error,
            BaseStatus::Maintenance => Status::Maintenance,
        }
    }

    /// Recompute health from the cached penalties and move the warning latch.
    #[inline]
    fn refresh_health(&mut self, p: &HealthParams, cfg: &TwinConfig) {
        self.health = p.health(&self.sensors, self.window.rate());
        if self.warning {
            if self.health >= cfg.warning_health + cfg.warning_hysteresis {
                self.warning = false;
            }
        } else if self.health < cfg.warning_health {
            self.warning = true;
        }
    }
}

/// What caused a possible emission; turned into text only when something is emitted.
#[derive(Debug, Clone, Copy)]
enum Cause<'a> {
    Reading,
    Cycle,
    Heartbeat(Option<bool>),
    Fault(Option<&'a str>),
    MaintenanceStarted,
    MaintenanceFinished,
    Defect,
    Offline { silent_ms: i64 },
}

impl Cause<'_> {
    fn describe(&self, out: &mut String) {
        match self {
            Cause::Reading => out.push_str("sensor reading"),
            Cause::Cycle => out.push_str("cycle completed"),
            Cause::Heartbeat(Some(true)) => out.push_str("heartbeat busy"),
            Cause::Heartbeat(Some(false)) => out.push_str("heartbeat idle"),
            Cause::Heartbeat(None) => out.push_str("heartbeat"),
            Cause::Fault(Some(code)) => {
                out.push_str("fault ");
                out.push_str(code);
            }
            Cause::Fault(None) => out.push_str("fault (no code)"),
            Cause::MaintenanceStarted => out.push_str("maintenance started"),
            Cause::MaintenanceFinished => out.push_str("maintenance finished"),
            Cause::Defect => out.push_str("defect inspection"),
            Cause::Offline { silent_ms } => {
                let _ = write!(out, "no event for {silent_ms} ms");
            }
        }
    }
}

/// The digital-twin processor; see the module doc for the model.
pub struct TwinProcessor {
    cfg: TwinConfig,
    params: HealthParams,
    machines: HashMap<String, MachineState>,
    /// A lower bound on the earliest `last_seen + offline_after_ms` over online machines, so that
    /// `on_watermark` (called after nearly every event) scans the machines only when one may
    /// actually have gone silent. Not state: `restore` resets it to "scan at the next watermark".
    next_offline_check: EventTime,
}

impl Default for TwinProcessor {
    fn default() -> Self {
        Self::from_valid(TwinConfig::default())
    }
}

impl std::fmt::Debug for TwinProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwinProcessor")
            .field("cfg", &self.cfg)
            .field("machines", &self.machines.len())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    machines: BTreeMap<&'a str, &'a MachineState>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotOwned {
    version: u32,
    machines: BTreeMap<String, MachineState>,
}

impl TwinProcessor {
    pub fn new(cfg: TwinConfig) -> Result<Self, TwinConfigError> {
        cfg.validate()?;
        Ok(Self::from_valid(cfg))
    }

    fn from_valid(cfg: TwinConfig) -> Self {
        Self {
            params: HealthParams::new(&cfg),
            cfg,
            machines: HashMap::new(),
            next_offline_check: EventTime::MIN,
        }
    }

    pub fn config(&self) -> &TwinConfig {
        &self.cfg
    }

    /// The current visible status of a machine, if it was ever seen.
    pub fn status_of(&self, machine_id: &str) -> Option<Status> {
        self.machines.get(machine_id).map(MachineState::status)
    }

    /// The current health score of a machine, if it was ever seen.
    pub fn health_of(&self, machine_id: &str) -> Option<f64> {
        self.machines.get(machine_id).map(|m| m.health)
    }

    /// Number of machines the twin tracks.
    pub fn machine_count(&self) -> usize {
        self.machines.len()
    }

    fn on_reading(
        &mut self,
        ev: &Event<'_>,
        r: &SensorReading,
        out: &mut Emitter,
    ) -> Result<(), ProcessError> {
        check_machine_id(ev.key, &r.machine_id)?;
        if !r.value.is_finite() || r.value.abs() > self.cfg.max_abs_value {
            return Err(ProcessError::BadInput(format!(
                "sensor reading {:?} of machine {:?} has value {} (must be finite, |value| <= {})",
                r.sensor, r.machine_id, r.value, self.cfg.max_abs_value
            )));
        }
        let sensor = match r.sensor {
            SensorKind::Temperature => TEMPERATURE,
            SensorKind::Vibration => VIBRATION,
            SensorKind::Pressure => PRESSURE,
            SensorKind::Speed => SPEED,
        };
        let (cfg, params) = (&self.cfg, &self.params);
        let t = ev.event_time;
        with_machine(
            &mut self.machines,
            &mut self.next_offline_check,
            cfg,
            &r.machine_id,
            t,
            |m| {
                let learn = m.base.is_operating();
                m.sensors[sensor].observe(sensor, r.value, learn, params);
                m.refresh_health(params, cfg);
                maybe_emit(cfg, &r.machine_id, m, t, Cause::Reading, out);
            },
        );
        Ok(())
    }

    fn on_machine_event(
        &mut self,
        ev: &Event<'_>,
        e: &MachineEvent,
        out: &mut Emitter,
    ) -> Result<(), ProcessError> {
        check_machine_id(ev.key, &e.machine_id)?;
        let (cfg, params) = (&self.cfg, &self.params);
        let t = ev.event_time;
        with_machine(
            &mut self.machines,
            &mut self.next_offline_check,
            cfg,
            &e.machine_id,
            t,
            |m| {
                let cause = match e.kind {
                    MachineEventKind::CycleCompleted => {
                        m.cycles += 1;
                        if m.base.is_operating() {
                            m.base = BaseStatus::Running;
                        }
                        Cause::Cycle
                    }
                    MachineEventKind::Heartbeat => {
                        if m.base.is_operating() {
                            match e.busy {
                                Some(true) => m.base = BaseStatus::Running,
                                Some(false) => m.base = BaseStatus::Idle,
                                None => {}
                            }
                        }
                        Cause::Heartbeat(e.busy)
                    }
                    MachineEventKind::Fault => {
                        m.base = BaseStatus::Error;
                        Cause::Fault(e.fault_code.as_deref())
                    }
                    MachineEventKind::MaintenanceStarted => {
                        m.base = BaseStatus::Maintenance;
                        Cause::MaintenanceStarted
                    }
                    MachineEventKind::MaintenanceFinished => {
                        m.base = BaseStatus::Idle;
                        for s in &mut m.sensors {
                            s.reset();
                        }
                        m.window.clear();
                        m.refresh_health(params, cfg);
                        // A repaired machine starts clean: no latch left over from before.
                        m.warning = m.health < cfg.warning_health;
                        Cause::MaintenanceFinished
                    }
                };
                maybe_emit(cfg, &e.machine_id, m, t, cause, out);
            },
        );
        Ok(())
    }

    fn on_defect(
        &mut self,
        ev: &Event<'_>,
        d: &Defect,
        out: &mut Emitter,
    ) -> Result<(), ProcessError> {
        check_machine_id(ev.key, &d.machine_id)?;
        if d.request_id.is_some() && !self.machines.contains_key(&d.machine_id) {
            return Ok(());
        }
        let (cfg, params) = (&self.cfg, &self.params);
        let t = ev.event_time;
        with_machine(
            &mut self.machines,
            &mut self.next_offline_check,
            cfg,
            &d.machine_id,
            t,
            |m| {
                m.parts_inspected += 1;
                if d.defect_detected {
                    m.defects += 1;
                }
                m.window
                    .push(d.defect_detected, cfg.defect_rate_window as usize);
                m.refresh_health(params, cfg);
                maybe_emit(cfg, &d.machine_id, m, t, Cause::Defect, out);
            },
        );
        Ok(())
    }
}

fn check_machine_id(key: &str, machine_id: &str) -> Result<(), ProcessError> {
    if machine_id.is_empty() {
        return Err(ProcessError::BadInput("empty machine_id".to_owned()));
    }
    if key != machine_id {
        return Err(ProcessError::BadInput(format!(
            "record key {key:?} does not match machine_id {machine_id:?}"
        )));
    }
    Ok(())
}

/// Run `f` on the machine's state, created on first sight, after marking it seen at `event_time`
/// (which brings it back from OFFLINE). One hash lookup; allocates only for a new machine.
#[inline]
fn with_machine<R>(
    machines: &mut HashMap<String, MachineState>,
    next_offline_check: &mut EventTime,
    cfg: &TwinConfig,
    id: &str,
    event_time: EventTime,
    f: impl FnOnce(&mut MachineState) -> R,
) -> R {
    let touch = |m: &mut MachineState, next_offline_check: &mut EventTime| {
        if event_time > m.last_seen {
            m.last_seen = event_time;
        }
        if m.offline {
            m.offline = false;
            *next_offline_check =
                (*next_offline_check).min(m.last_seen.saturating_add(cfg.offline_after_ms));
        }
    };
    if let Some(m) = machines.get_mut(id) {
        touch(m, next_offline_check);
        return f(m);
    }
    let m = machines
        .entry(id.to_owned())
        .or_insert_with(|| MachineState::new(event_time));
    *next_offline_check =
        (*next_offline_check).min(event_time.saturating_add(cfg.offline_after_ms));
    f(m)
}

/// Emit a [`TwinState`] if the machine changed since its last emitted state.
#[inline]
fn maybe_emit(
    cfg: &TwinConfig,
    id: &str,
    m: &mut MachineState,
    event_time: EventTime,
    cause: Cause<'_>,
    out: &mut Emitter,
) {
    let status = m.status();
    if let Some(last) = &m.last_emitted {
        if last.status == status
            && last.cycles == m.cycles
            && last.defects == m.defects
            && last.parts_inspected == m.parts_inspected
            && (m.health - last.health).abs() < cfg.health_emit_threshold
        {
            return;
        }
    }
    emit(cfg, id, m, status, event_time, cause, out);
}

#[cold]
fn emit(
    cfg: &TwinConfig,
    id: &str,
    m: &mut MachineState,
    status: Status,
    event_time: EventTime,
    cause: Cause<'_>,
    out: &mut Emitter,
) {
    let last = m.last_emitted;
    let prev_status = last.map(|l| l.status);
    let mut reason = String::with_capacity(64);
    let sep = |r: &mut String| {
        if !r.is_empty() {
            r.push_str("; ");
        }
    };
    if prev_status != Some(status) {
        let _ = write!(
            reason,
            "status {}->{}: ",
            prev_status.map_or("NONE", Status::as_str),
            status.as_str()
        );
        match (prev_status, status) {
            (None, _) => reason.push_str("first seen"),
            (_, Status::Offline) => cause.describe(&mut reason),
            (Some(Status::Offline), _) => {
                reason.push_str("back online (");
                cause.describe(&mut reason);
                reason.push(')');
            }
            (_, Status::Warning) if matches!(cause, Cause::Reading | Cause::Defect) => {
                let _ = write!(
                    reason,
                    "health {:.3} below {}",
                    m.health, cfg.warning_health
                );
            }
            (Some(Status::Warning), Status::Idle | Status::Running)
                if matches!(cause, Cause::Reading | Cause::Defect) =>
            {
                let _ = write!(reason, "health {:.3} recovered", m.health);
            }
            _ => cause.describe(&mut reason),
        }
    }
    if last.map_or(m.cycles != 0, |l| l.cycles != m.cycles) {
        sep(&mut reason);
        reason.push_str("cycle");
    }
    if last.map_or(m.parts_inspected != 0, |l| {
        l.defects != m.defects || l.parts_inspected != m.parts_inspected
    }) {
        sep(&mut reason);
        reason.push_str("defect");
    }
    if last.is_some_and(|l| (m.health - l.health).abs() >= cfg.health_emit_threshold) {
        sep(&mut reason);
        reason.push_str("health");
    }
    let level = |s: usize| m.sensors[s].ewma;
    let state = TwinState {
        event_id: String::new(),
        source: Source::default(),
        machine_id: id.to_owned(),
        event_time,
        status: status.to_schema(),
        previous_status: prev_status.map(Status::to_schema),
        health_score: m.health,
        cycles: saturating_i64(m.cycles),
        defects: saturating_i64(m.defects),
        parts_inspected: saturating_i64(m.parts_inspected),
        defect_rate: m.window.rate(),
        temperature: level(TEMPERATURE),
        vibration: level(VIBRATION),
        pressure: level(PRESSURE),
        speed: level(SPEED),
        last_seen: m.last_seen,
        reason,
    };
    m.last_emitted = Some(LastEmitted {
        status,
        cycles: m.cycles,
        defects: m.defects,
        parts_inspected: m.parts_inspected,
        health: m.health,
    });
    out.emit(Topic::TwinState, id, Payload::TwinState(state));
}

fn saturating_i64(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

impl Processor for TwinProcessor {
    fn name(&self) -> &'static str {
        "twin"
    }

    fn inputs(&self) -> &'static [Topic] {
        INPUTS
    }

    fn on_event(&mut self, event: &Event<'_>, out: &mut Emitter) -> Result<(), ProcessError> {
        match event.payload {
            Payload::SensorReading(r) => self.on_reading(event, r, out),
            Payload::MachineEvent(e) => self.on_machine_event(event, e, out),
            Payload::Defect(d) => self.on_defect(event, d, out),
            _ => Err(ProcessError::BadInput(format!(
                "twin consumes sensor readings, machine events and defects, got a record on {:?}",
                event.position.topic
            ))),
        }
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        out: &mut Emitter,
    ) -> Result<(), ProcessError> {
        if watermark < self.next_offline_check {
            return Ok(());
        }
        let offline_after = self.cfg.offline_after_ms;
        let mut expired: Vec<&String> = Vec::new();
        let mut next = EventTime::MAX;
        for (id, m) in &self.machines {
            if m.offline {
                continue;
            }
            let deadline = m.last_seen.saturating_add(offline_after);
            if watermark >= deadline {
                expired.push(id);
            } else {
                next = next.min(deadline);
            }
        }
        self.next_offline_check = next;
        if expired.is_empty() {
            return Ok(());
        }
        // Hash-map order is arbitrary; the emitted order must not be.
        expired.sort_unstable();
        let expired: Vec<String> = expired.into_iter().cloned().collect();
        for id in expired {
            let m = self.machines.get_mut(&id).ok_or_else(|| {
                ProcessError::Internal(format!("machine {id:?} vanished during a watermark scan"))
            })?;
            m.offline = true;
            let silent_ms = watermark.saturating_sub(m.last_seen);
            maybe_emit(
                &self.cfg,
                &id,
                m,
                watermark,
                Cause::Offline { silent_ms },
                out,
            );
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Vec<u8>, ProcessError> {
        let snap = SnapshotRef {
            version: SNAPSHOT_VERSION,
            machines: self.machines.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        };
        serde_json::to_vec(&snap)
            .map_err(|e| ProcessError::Internal(format!("twin snapshot failed: {e}")))
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), ProcessError> {
        let snap: SnapshotOwned = serde_json::from_slice(bytes)
            .map_err(|e| ProcessError::Internal(format!("twin snapshot does not decode: {e}")))?;
        if snap.version != SNAPSHOT_VERSION {
            return Err(ProcessError::Internal(format!(
                "twin snapshot version {} (this build reads {SNAPSHOT_VERSION})",
                snap.version
            )));
        }
        for (id, m) in &snap.machines {
            let window_defects = m.window.recent.iter().filter(|&&d| d).count();
            if id.is_empty()
                || !(0.0..=1.0).contains(&m.health)
                || usize::try_from(m.window.defects).ok() != Some(window_defects)
            {
                return Err(ProcessError::Internal(format!(
                    "twin snapshot has an inconsistent machine {id:?}"
                )));
            }
        }
        self.machines = snap.machines.into_iter().collect();
        self.next_offline_check = EventTime::MIN;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_deserializes_from_empty() {
        TwinConfig::default().validate().unwrap();
        let cfg: TwinConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, TwinConfig::default());
        let cfg: TwinConfig =
            serde_json::from_str(r#"{"offline_after_ms": 5000, "weights": {"vibration": 0.9}}"#)
                .unwrap();
        assert_eq!(cfg.offline_after_ms, 5000);
        assert_eq!(cfg.weights.vibration, 0.9);
        assert_eq!(
            cfg.weights.temperature,
            HealthWeights::default().temperature
        );
        assert!(
            serde_json::from_str::<TwinConfig>(r#"{"offline_after": 1}"#).is_err(),
            "unknown keys are rejected"
        );
    }

    #[test]
    fn invalid_config_is_rejected_with_the_field() {
        let err = TwinProcessor::new(TwinConfig {
            ewma_alpha: 0.0,
            ..TwinConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "ewma_alpha");
        let err = TwinProcessor::new(TwinConfig {
            warning_health: f64::NAN,
            ..TwinConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "warning_health");
    }

    #[test]
    fn defect_window_keeps_the_last_n() {
        let mut w = DefectWindow::default();
        for i in 0..10 {
            w.push(i < 5, 4);
        }
        assert_eq!(w.recent.len(), 4);
        assert_eq!(w.defects, 0);
        assert_eq!(w.rate(), 0.0);
        w.push(true, 4);
        assert_eq!(w.rate(), 0.25);
    }
}
