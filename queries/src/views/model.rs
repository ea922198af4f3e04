//! The in-memory model behind the API's JSON: current twin state and recent history per
//! machine, latest failure-prediction urgency per machine, open maintenance requests. Updated
//! per event; the JSON documents are computed from it in O(machines).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;
use twinline_schemas::{MaintenanceAction, Payload, TwinState, Urgency};

use super::tables::{status_symbol, ALL_STATUSES};
use super::ViewEvent;
use crate::time::rfc3339_ms;

/// One machine in `GET /api/v1/digital-twin/state`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineState {
    pub machine_id: String,
    pub status: &'static str,
    pub health_score: f64,
    pub cycles: i64,
    pub defects: i64,
    pub parts_inspected: i64,
    pub defect_rate: f64,
    pub temperature: Option<f64>,
    pub vibration: Option<f64>,
    pub pressure: Option<f64>,
    pub speed: Option<f64>,
    pub last_seen: String,
    pub updated_at: String,
    pub reason: String,
}

impl MachineState {
    fn from_twin(s: &TwinState) -> Self {
        MachineState {
            machine_id: s.machine_id.clone(),
            status: status_symbol(s.status),
            health_score: s.health_score,
            cycles: s.cycles,
            defects: s.defects,
            parts_inspected: s.parts_inspected,
            defect_rate: s.defect_rate,
            temperature: s.temperature,
            vibration: s.vibration,
            pressure: s.pressure,
            speed: s.speed,
            last_seen: rfc3339_ms(s.last_seen),
            updated_at: rfc3339_ms(s.event_time),
            reason: s.reason.clone(),
        }
    }
}

/// One twin-state change in a machine's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub event_id: String,
    pub event_time: String,
    pub status: &'static str,
    pub health_score: f64,
    pub cycles: i64,
    pub defects: i64,
    pub reason: String,
}

/// `GET /api/v1/digital-twin/machines/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineDetail {
    #[serde(flatten)]
    pub state: MachineState,
    /// Newest last.
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactoryStatistics {
    pub total_machines: usize,
    pub status_counts: BTreeMap<&'static str, u64>,
    pub average_health: f64,
    pub total_cycles: i64,
    pub total_defects: i64,
    pub parts_inspected: i64,
    pub defect_rate: f64,
}

/// `GET /api/v1/digital-twin/state`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactoryState {
    pub factory_id: String,
    pub timestamp: String,
    pub machines: Vec<MachineState>,
    pub statistics: FactoryStatistics,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct MaintenanceAlerts {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub open_requests: u64,
}

/// `GET /api/v1/dashboard/stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DashboardStats {
    pub timestamp: String,
    pub overall_health: f64,
    pub total_machines: usize,
    pub status_breakdown: BTreeMap<&'static str, u64>,
    pub total_cycles: i64,
    pub total_defects: i64,
    pub parts_inspected: i64,
    pub defect_rate: f64,
    pub maintenance_alerts: MaintenanceAlerts,
}

struct MachineEntry {
    state: TwinState,
    history: VecDeque<HistoryEntry>,
}

/// See the module doc. Not a table: only [`super::Views`] touches it, under one lock per batch.
pub(crate) struct Model {
    history_per_machine: usize,
    machines: BTreeMap<String, MachineEntry>,
    latest_urgency: BTreeMap<String, Urgency>,
    open_requests: BTreeSet<String>,
}

impl Model {
    pub(crate) fn new(history_per_machine: usize) -> Self {
        Model {
            history_per_machine,
            machines: BTreeMap::new(),
            latest_urgency: BTreeMap::new(),
            open_requests: BTreeSet::new(),
        }
    }

    /// Returns whether anything the API shows changed.
    pub(crate) fn apply(&mut self, events: &[ViewEvent<'_>]) -> bool {
        let mut changed = false;
        for event in events {
            match event.payload {
                Payload::TwinState(s) => {
                    let entry = self
                        .machines
                        .entry(s.machine_id.clone())
                        .or_insert_with(|| MachineEntry {
                            state: s.clone(),
                            history: VecDeque::new(),
                        });
                    entry.state.clone_from(s);
                    if self.history_per_machine > 0 {
                        if entry.history.len() == self.history_per_machine {
                            entry.history.pop_front();
                        }
                        entry.history.push_back(HistoryEntry {
                            event_id: s.event_id.clone(),
                            event_time: rfc3339_ms(s.event_time),
                            status: status_symbol(s.status),
                            health_score: s.health_score,
                            cycles: s.cycles,
                            defects: s.defects,
                            reason: s.reason.clone(),
                        });
                    }
                    changed = true;
                }
                Payload::FailurePrediction(p) => {
                    self.latest_urgency.insert(p.machine_id.clone(), p.urgency);
                    changed = true;
                }
                Payload::MaintenanceRequest(m) => {
                    match m.action {
                        MaintenanceAction::Open => {
                            self.open_requests.insert(m.request_id.clone());
                        }
                        MaintenanceAction::Close => {
                            self.open_requests.remove(&m.request_id);
                        }
                    }
                    changed = true;
                }
                _ => {}
            }
        }
        changed
    }

    pub(crate) fn machine(&self, id: &str) -> Option<MachineDetail> {
        self.machines.get(id).map(|e| MachineDetail {
            state: MachineState::from_twin(&e.state),
            history: e.history.iter().cloned().collect(),
        })
    }

    pub(crate) fn factory_state(&self, factory_id: &str, timestamp: String) -> FactoryState {
        FactoryState {
            factory_id: factory_id.to_string(),
            timestamp,
            machines: self
                .machines
                .values()
                .map(|e| MachineState::from_twin(&e.state))
                .collect(),
            statistics: self.statistics(),
        }
    }

    fn statistics(&self) -> FactoryStatistics {
        let mut status_counts: BTreeMap<&'static str, u64> = ALL_STATUSES
            .iter()
            .map(|s| (status_symbol(*s), 0))
            .collect();
        let (mut health, mut cycles, mut defects, mut parts) = (0.0, 0i64, 0i64, 0i64);
        for e in self.machines.values() {
            *status_counts
                .entry(status_symbol(e.state.status))
                .or_insert(0) += 1;
            health += e.state.health_score;
            cycles = cycles.saturating_add(e.state.cycles);
            defects = defects.saturating_add(e.state.defects);
            parts = parts.saturating_add(e.state.parts_inspected);
        }
        let n = self.machines.len();
        FactoryStatistics {
            total_machines: n,
            status_counts,
            average_health: if n == 0 { 0.0 } else { health / n as f64 },
            total_cycles: cycles,
            total_defects: defects,
            parts_inspected: parts,
            defect_rate: if parts == 0 {
                0.0
            } else {
                defects as f64 / parts as f64
            },
        }
    }

    pub(crate) fn dashboard_stats(&self, timestamp: String) -> DashboardStats {
        let s = self.statistics();
        let mut alerts = MaintenanceAlerts {
            open_requests: self.open_requests.len() as u64,
            ..MaintenanceAlerts::default()
        };
        for u in self.latest_urgency.values() {
            match u {
                Urgency::Critical => alerts.critical += 1,
                Urgency::High => alerts.high += 1,
                Urgency::Medium => alerts.medium += 1,
                Urgency::Low => alerts.low += 1,
            }
        }
        DashboardStats {
            timestamp,
            overall_health: s.average_health,
            total_machines: s.total_machines,
            status_breakdown: s.status_counts,
            total_cycles: s.total_cycles,
            total_defects: s.total_defects,
            parts_inspected: s.parts_inspected,
            defect_rate: s.defect_rate,
            maintenance_alerts: alerts,
        }
    }
}
