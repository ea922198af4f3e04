//! Simulator configuration: every knob of the plant model, its documented default, and validation.
//!
//! All structs deserialize from the `[sim]` table of the twinline TOML config; every field has a
//! default, so an empty table is a valid config. Unknown keys are rejected so that a typo does not
//! silently fall back to a default.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// 2026-01-01T00:00:00Z in Unix milliseconds: the default simulation start.
pub const DEFAULT_START_TIME_MS: i64 = 1_767_225_600_000;

const MS_PER_MINUTE: u64 = 60_000;
const MS_PER_HOUR: u64 = 3_600_000;
const MS_PER_DAY: u64 = 86_400_000;

/// An inclusive range `[min, max]` a value is drawn from uniformly. In TOML: `{ min = 2, max = 6 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span<T> {
    pub min: T,
    pub max: T,
}

impl<T> Span<T> {
    pub const fn new(min: T, max: T) -> Self {
        Self { min, max }
    }
}

impl Span<f64> {
    /// Midpoint, used to derive defaults (for example the auto job inter-arrival time).
    pub fn mean(&self) -> f64 {
        (self.min + self.max) / 2.0
    }
}

impl Span<u64> {
    pub fn mean(&self) -> f64 {
        (self.min as f64 + self.max as f64) / 2.0
    }
}

impl Span<u32> {
    pub fn mean(&self) -> f64 {
        (f64::from(self.min) + f64::from(self.max)) / 2.0
    }
}

/// The whole plant model. Defaults describe a 10-machine plant for one simulated day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Number of machines, ids `M001`, `M002`, ... Default 10.
    pub machines: usize,
    /// Seed of every random draw; same seed and config give the same event sequence. Default 42.
    pub seed: u64,
    /// Event time of the first event, Unix ms. Default 2026-01-01T00:00:00Z.
    pub start_time_ms: i64,
    /// Simulated span; events have `start <= event_time < start + duration`. `0` = never ends.
    /// Default one day.
    pub duration_ms: u64,
    /// Period of the four sensor readings of every machine (also the physics time step). Default 1 s.
    pub sensor_interval_ms: u64,
    /// Period of HEARTBEAT machine events. Default 10 s.
    pub heartbeat_interval_ms: u64,
    /// Per-machine base cycle time, drawn once per machine. Default 20 s to 90 s.
    pub cycle_time_ms: Span<u64>,
    /// Mean of the exponential job inter-arrival time. `None` (default) derives it from
    /// `target_utilization`: mean work per job / (machines x target_utilization).
    pub job_interarrival_mean_ms: Option<u64>,
    /// Plant utilization the automatic inter-arrival time aims at. Default 0.7.
    pub target_utilization: f64,
    /// Operations per job. Default 2 to 6.
    pub ops_per_job: Span<u32>,
    /// Distinct eligible machines per operation (capped at `machines`). Default 1 to 3.
    pub eligible_per_op: Span<u32>,
    /// Work content of an operation as a multiple of the machine's base cycle time. Default 0.5 to 2.0.
    pub op_work: Span<f64>,
    /// Load of an operation (1.0 = nominal); drives wear rate and the busy sensor offsets.
    /// Default 0.6 to 1.4.
    pub op_load: Span<f64>,
    /// Delay from submission to release of a job. Default 0 to 5 min.
    pub release_delay_ms: Span<u64>,
    /// Due date = release + slack x (sum of the shortest eligible durations). Default 1.5 to 4.0.
    pub due_slack: Span<f64>,
    /// Probability that a submitted job is later cancelled. Default 0.02.
    pub cancel_probability: f64,
    /// Emit an `Image` for every part (operation completion). Default true.
    pub image_every_part: bool,
    /// Side of the square grey test images in pixels. Default 64.
    pub image_size: u32,
    /// Pre-encoded PNGs per variant (clean + each defect type); `0` encodes every image afresh.
    /// Default 16.
    pub image_pool_size: usize,
    /// Directory of a labelled image library (`models/vision/simset`: `labels.json` plus the PNGs
    /// it lists); `None` (default) = procedural images. When set, part images are the library's
    /// files served byte for byte, so `image_size` and `image_pool_size` do not apply to them; the
    /// defect draw is the same as for procedural images. A relative path is taken from the
    /// working directory. Omitted from serialized configs while `None`, so that configs recorded
    /// before this field existed still compare equal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_library: Option<PathBuf>,
    /// Part defect probability model.
    pub defects: DefectParams,
    /// Rate of random faults unrelated to wear, per machine per running hour. Default 0.002.
    pub fault_rate_per_hour: f64,
    /// Wait from a FAULT until the repair crew starts (MAINTENANCE_STARTED). Default 10 to 45 min.
    pub repair_delay_ms: Span<u64>,
    /// Duration of a repair. Default 30 min to 3 h.
    pub repair_duration_ms: Span<u64>,
    /// Nominal interval between preventive maintenances of a machine, counted from its last
    /// maintenance and jittered by +-20 %; `0` disables preventive maintenance. Default 10 days.
    pub preventive_interval_ms: u64,
    /// Duration of a preventive maintenance. Default 1 h to 2 h.
    pub preventive_duration_ms: Span<u64>,
    /// Rate at which a machine's gateway goes silent (no heartbeats, no readings), per machine per
    /// day. Default 0.2.
    pub silence_rate_per_day: f64,
    /// Duration of a silence. Default 2 min to 20 min.
    pub silence_duration_ms: Span<u64>,
    /// The degradation model (see the crate docs).
    pub wear: WearParams,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            machines: 10,
            seed: 42,
            start_time_ms: DEFAULT_START_TIME_MS,
            duration_ms: MS_PER_DAY,
            sensor_interval_ms: 1_000,
            heartbeat_interval_ms: 10_000,
            cycle_time_ms: Span::new(20_000, 90_000),
            job_interarrival_mean_ms: None,
            target_utilization: 0.7,
            ops_per_job: Span::new(2, 6),
            eligible_per_op: Span::new(1, 3),
            op_work: Span::new(0.5, 2.0),
            op_load: Span::new(0.6, 1.4),
            release_delay_ms: Span::new(0, 5 * MS_PER_MINUTE),
            due_slack: Span::new(1.5, 4.0),
            cancel_probability: 0.02,
            image_every_part: true,
            image_size: 64,
            image_pool_size: 16,
            image_library: None,
            defects: DefectParams::default(),
            fault_rate_per_hour: 0.002,
            repair_delay_ms: Span::new(10 * MS_PER_MINUTE, 45 * MS_PER_MINUTE),
            repair_duration_ms: Span::new(30 * MS_PER_MINUTE, 3 * MS_PER_HOUR),
            preventive_interval_ms: 10 * MS_PER_DAY,
            preventive_duration_ms: Span::new(MS_PER_HOUR, 2 * MS_PER_HOUR),
            silence_rate_per_day: 0.2,
            silence_duration_ms: Span::new(2 * MS_PER_MINUTE, 20 * MS_PER_MINUTE),
            wear: WearParams::default(),
        }
    }
}

/// Probability that a finished part is defective: `base_rate + wear_gain * w^2`, clamped to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefectParams {
    /// Defect probability of a new machine. Default 0.02.
    pub base_rate: f64,
    /// Extra defect probability at wear 1. Default 0.25.
    pub wear_gain: f64,
}

impl Default for DefectParams {
    fn default() -> Self {
        Self {
            base_rate: 0.02,
            wear_gain: 0.25,
        }
    }
}

/// Relative frequency of the wear failure modes; each run-to-failure trajectory draws one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModeWeights {
    pub bearing_wear: f64,
    pub overheating: f64,
    pub hydraulic_leak: f64,
}

impl Default for ModeWeights {
    fn default() -> Self {
        Self {
            bearing_wear: 0.4,
            overheating: 0.3,
            hydraulic_leak: 0.3,
        }
    }
}

/// The degradation model's parameters. Change the ranges to get a held-out plant for evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WearParams {
    /// Hours of continuous operation at load 1.0 that take wear from 0 to 1; drawn once per
    /// machine. Default 48 h to 240 h.
    pub life_hours: Span<f64>,
    /// Wear rate while idle (spindle turning, no part) relative to load 1.0. Default 0.1.
    pub idle_factor: f64,
    /// Rate of random wear shocks per running hour. Default 0.02.
    pub shock_rate_per_hour: f64,
    /// Mean size of a shock (exponentially distributed wear increment). Default 0.03.
    pub shock_mean: f64,
    /// Wear above which the failure hazard starts. Default 0.85.
    pub hazard_onset: f64,
    /// Failure hazard per hour as wear approaches 1: `max * ((w - onset) / (1 - onset))^exponent`.
    /// Default 1.0.
    pub hazard_max_per_hour: f64,
    /// Shape of the hazard ramp. Default 3.
    pub hazard_exponent: f64,
    /// Maintenance leaves wear uniform in `[0, reset_max]`. Default 0.05.
    pub reset_max: f64,
    /// Cycles slow down by `1 + cycle_slowdown * w`. Default 0.15.
    pub cycle_slowdown: f64,
    /// Which failure mode a trajectory follows.
    pub modes: ModeWeights,
}

impl Default for WearParams {
    fn default() -> Self {
        Self {
            life_hours: Span::new(48.0, 240.0),
            idle_factor: 0.1,
            shock_rate_per_hour: 0.02,
            shock_mean: 0.03,
            hazard_onset: 0.85,
            hazard_max_per_hour: 1.0,
            hazard_exponent: 3.0,
            reset_max: 0.05,
            cycle_slowdown: 0.15,
            modes: ModeWeights::default(),
        }
    }
}

fn check(ok: bool, field: &'static str, why: &str) -> Result<(), SimError> {
    if ok {
        Ok(())
    } else {
        Err(SimError::InvalidConfig {
            field,
            reason: why.to_string(),
        })
    }
}

fn finite_nonneg(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

fn span_f64(s: &Span<f64>, field: &'static str, positive: bool) -> Result<(), SimError> {
    check(
        finite_nonneg(s.min) && s.min <= s.max && s.max.is_finite(),
        field,
        "needs finite 0 <= min <= max",
    )?;
    check(!positive || s.min > 0.0, field, "min must be > 0")
}

fn span_u64(s: &Span<u64>, field: &'static str, positive: bool) -> Result<(), SimError> {
    check(s.min <= s.max, field, "needs min <= max")?;
    check(!positive || s.min > 0, field, "min must be > 0")
}

impl SimConfig {
    /// Checks every field; `Simulator::new` calls it.
    pub fn validate(&self) -> Result<(), SimError> {
        check(self.machines > 0, "machines", "must be > 0")?;
        check(
            self.machines <= u16::MAX as usize,
            "machines",
            "must be <= 65535",
        )?;
        check(
            self.sensor_interval_ms > 0,
            "sensor_interval_ms",
            "must be > 0",
        )?;
        check(
            self.heartbeat_interval_ms > 0,
            "heartbeat_interval_ms",
            "must be > 0",
        )?;
        check(
            i64::try_from(self.duration_ms)
                .ok()
                .and_then(|d| self.start_time_ms.checked_add(d))
                .is_some(),
            "duration_ms",
            "start_time_ms + duration_ms overflows",
        )?;
        span_u64(&self.cycle_time_ms, "cycle_time_ms", true)?;
        if let Some(m) = self.job_interarrival_mean_ms {
            check(m > 0, "job_interarrival_mean_ms", "must be > 0")?;
        }
        check(
            self.target_utilization.is_finite()
                && self.target_utilization > 0.0
                && self.target_utilization <= 1.0,
            "target_utilization",
            "must be in (0, 1]",
        )?;
        check(
            self.ops_per_job.min >= 1 && self.ops_per_job.min <= self.ops_per_job.max,
            "ops_per_job",
            "needs 1 <= min <= max",
        )?;
        check(
            self.eligible_per_op.min >= 1 && self.eligible_per_op.min <= self.eligible_per_op.max,
            "eligible_per_op",
            "needs 1 <= min <= max",
        )?;
        span_f64(&self.op_work, "op_work", true)?;
        span_f64(&self.op_load, "op_load", false)?;
        span_u64(&self.release_delay_ms, "release_delay_ms", false)?;
        span_f64(&self.due_slack, "due_slack", false)?;
        check(
            (0.0..=1.0).contains(&self.cancel_probability),
            "cancel_probability",
            "must be in [0, 1]",
        )?;
        check(
            (8..=4096).contains(&self.image_size),
            "image_size",
            "must be in 8..=4096",
        )?;
        check(
            finite_nonneg(self.defects.base_rate) && finite_nonneg(self.defects.wear_gain),
            "defects",
            "rates must be finite and >= 0",
        )?;
        check(
            finite_nonneg(self.fault_rate_per_hour),
            "fault_rate_per_hour",
            "must be finite and >= 0",
        )?;
        span_u64(&self.repair_delay_ms, "repair_delay_ms", false)?;
        span_u64(&self.repair_duration_ms, "repair_duration_ms", true)?;
        span_u64(&self.preventive_duration_ms, "preventive_duration_ms", true)?;
        check(
            finite_nonneg(self.silence_rate_per_day),
            "silence_rate_per_day",
            "must be finite and >= 0",
        )?;
        span_u64(&self.silence_duration_ms, "silence_duration_ms", true)?;
        self.wear.validate()
    }
}

impl WearParams {
    pub fn validate(&self) -> Result<(), SimError> {
        span_f64(&self.life_hours, "wear.life_hours", true)?;
        check(
            finite_nonneg(self.idle_factor),
            "wear.idle_factor",
            "must be finite and >= 0",
        )?;
        check(
            finite_nonneg(self.shock_rate_per_hour) && finite_nonneg(self.shock_mean),
            "wear.shock_rate_per_hour",
            "shock rate and mean must be finite and >= 0",
        )?;
        check(
            self.hazard_onset.is_finite() && (0.0..1.0).contains(&self.hazard_onset),
            "wear.hazard_onset",
            "must be in [0, 1)",
        )?;
        check(
            finite_nonneg(self.hazard_max_per_hour),
            "wear.hazard_max_per_hour",
            "must be finite and >= 0",
        )?;
        check(
            self.hazard_exponent.is_finite() && self.hazard_exponent > 0.0,
            "wear.hazard_exponent",
            "must be > 0",
        )?;
        check(
            self.reset_max.is_finite() && (0.0..1.0).contains(&self.reset_max),
            "wear.reset_max",
            "must be in [0, 1)",
        )?;
        check(
            finite_nonneg(self.cycle_slowdown),
            "wear.cycle_slowdown",
            "must be finite and >= 0",
        )?;
        let m = &self.modes;
        check(
            finite_nonneg(m.bearing_wear)
                && finite_nonneg(m.overheating)
                && finite_nonneg(m.hydraulic_leak)
                && m.bearing_wear + m.overheating + m.hydraulic_leak > 0.0,
            "wear.modes",
            "weights must be >= 0 with a positive sum",
        )
    }
}
