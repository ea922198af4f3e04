//! Ground truth the event stream does not carry: wear trajectories, failure modes, maintenance
//! and silence intervals, part defect labels. Training and evaluation read it; processors never do.

use serde::Serialize;

use crate::images::DefectLabel;
use crate::physics::{Baseline, FailureMode};

/// Why a maintenance happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceKind {
    /// After a FAULT.
    Repair,
    /// Planned, on the preventive interval.
    Preventive,
}

impl MaintenanceKind {
    /// The `detail` of MAINTENANCE_STARTED / MAINTENANCE_FINISHED events starts with this word.
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceKind::Repair => "repair",
            MaintenanceKind::Preventive => "preventive",
        }
    }
}

/// How a wear trajectory ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "end")]
pub enum TrajectoryEnd {
    /// Failed in its mode (wear crossed 1 or the hazard draw fired): an uncensored run to failure.
    WearFailure,
    /// A random fault (`fault_code`) stopped it; censored for wear purposes.
    RandomFault { fault_code: &'static str },
    /// Preventive maintenance reset it; censored.
    Preventive,
    /// Still running when the simulation ended (or now); censored.
    Open,
}

/// One run of a machine from a reset (simulation start or end of a maintenance) to its end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trajectory {
    pub start_ms: i64,
    /// Time of the FAULT or of MAINTENANCE_STARTED (preventive); `None` while open.
    pub end_ms: Option<i64>,
    pub mode: FailureMode,
    pub end: TrajectoryEnd,
    pub wear_at_start: f64,
    /// Wear at `end_ms` (the current wear while open is `Simulator::wear`).
    pub wear_at_end: Option<f64>,
}

impl Trajectory {
    /// Remaining useful life at `t_ms` when this trajectory ends in a wear failure.
    pub fn rul_ms(&self, t_ms: i64) -> Option<i64> {
        match (self.end, self.end_ms) {
            (TrajectoryEnd::WearFailure, Some(end)) if t_ms >= self.start_ms && t_ms <= end => {
                Some(end - t_ms)
            }
            _ => None,
        }
    }
}

/// A FAULT machine event, with the truth behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureRecord {
    pub time_ms: i64,
    pub fault_code: &'static str,
    /// `Some` for wear failures, `None` for random faults.
    pub mode: Option<FailureMode>,
    pub wear: f64,
}

/// One maintenance, `[start_ms, end_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaintenanceRecord {
    pub start_ms: i64,
    /// `None` while still in progress.
    pub end_ms: Option<i64>,
    pub kind: MaintenanceKind,
    pub wear_before: f64,
    pub wear_after: Option<f64>,
}

/// A span `[start_ms, end_ms)`; `end_ms` is `None` while still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Interval {
    pub start_ms: i64,
    pub end_ms: Option<i64>,
}

impl Interval {
    pub fn contains(&self, t_ms: i64) -> bool {
        t_ms >= self.start_ms && self.end_ms.is_none_or(|e| t_ms < e)
    }
}

/// Everything about one machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineTruth {
    pub machine_id: String,
    pub baseline: Baseline,
    pub cycle_time_base_ms: u64,
    /// Hours at load 1.0 from wear 0 to 1 (drawn from `WearParams::life_hours`).
    pub life_hours: f64,
    pub trajectories: Vec<Trajectory>,
    pub failures: Vec<FailureRecord>,
    pub maintenance: Vec<MaintenanceRecord>,
    /// Gateway silences: no heartbeats and no sensor readings inside them.
    pub silences: Vec<Interval>,
}

impl MachineTruth {
    /// The trajectory the machine was on at `t_ms` (none while failed or in maintenance).
    pub fn trajectory_at(&self, t_ms: i64) -> Option<&Trajectory> {
        self.trajectories
            .iter()
            .find(|tr| t_ms >= tr.start_ms && tr.end_ms.is_none_or(|e| t_ms < e))
    }

    /// Whether the machine was in maintenance at `t_ms` (no sensor readings then).
    pub fn in_maintenance(&self, t_ms: i64) -> bool {
        self.maintenance.iter().any(|m| {
            Interval {
                start_ms: m.start_ms,
                end_ms: m.end_ms,
            }
            .contains(t_ms)
        })
    }

    /// Whether the gateway was silent at `t_ms`.
    pub fn silent(&self, t_ms: i64) -> bool {
        self.silences.iter().any(|s| s.contains(t_ms))
    }
}

/// The true content of one part image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartTruth {
    pub part_id: String,
    /// Index into `GroundTruth::machines`.
    pub machine: usize,
    pub time_ms: i64,
    pub defect: Option<DefectLabel>,
}

/// All ground truth of a run so far.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct GroundTruth {
    pub machines: Vec<MachineTruth>,
    /// One entry per part that got an image (`image_every_part`).
    pub parts: Vec<PartTruth>,
}
