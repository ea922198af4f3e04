//! The in-memory model behind the API's JSON: current twin state and recent history per
//! machine, the latest failure prediction and recent predictions per machine, open maintenance
//! requests. Updated per event; the JSON documents are computed from it in O(machines).
//!
//! "Latest" means last applied: a machine's events share one partition (the record key is the
//! machine id), so arrival order is the log's order for that machine.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use twinline_schemas::{
    FailurePrediction, FeatureContribution, MaintenanceAction, MaintenanceRequest, Payload,
    ScheduleChange, TwinState, Urgency,
};

use super::tables::ALL_STATUSES;
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
            status: s.status.symbol(),
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

impl HistoryEntry {
    fn from_twin(s: &TwinState) -> Self {
        HistoryEntry {
            event_id: s.event_id.clone(),
            event_time: rfc3339_ms(s.event_time),
            status: s.status.symbol(),
            health_score: s.health_score,
            cycles: s.cycles,
            defects: s.defects,
            reason: s.reason.clone(),
        }
    }
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

/// One failure prediction as the API shows it. Field names are the `failure-predictions`
/// record's own, with two exceptions: `event_time` is shown as `predicted_at` (RFC 3339), and
/// `source` is left out (`event_id` leads to it, e.g. through `twinline audit`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub event_id: String,
    pub machine_id: String,
    pub failure_probability: f64,
    pub time_to_failure_hours: f64,
    /// The Avro symbol (`"CRITICAL"`, ...), like `status` in the twin-state documents.
    pub urgency: Urgency,
    pub probability_1d: f64,
    pub probability_3d: f64,
    pub probability_7d: f64,
    pub rul_hours: Option<f64>,
    pub recommended_action: String,
    pub predicted_at: String,
    pub model_versions: BTreeMap<String, String>,
    pub top_features: Vec<FeatureContribution>,
}

impl Prediction {
    fn from_record(p: &FailurePrediction) -> Self {
        Prediction {
            event_id: p.event_id.clone(),
            machine_id: p.machine_id.clone(),
            failure_probability: p.failure_probability,
            time_to_failure_hours: p.time_to_failure_hours,
            urgency: p.urgency,
            probability_1d: p.probability_1d,
            probability_3d: p.probability_3d,
            probability_7d: p.probability_7d,
            rul_hours: p.rul_hours,
            recommended_action: p.recommended_action.clone(),
            predicted_at: rfc3339_ms(p.event_time),
            model_versions: p.model_versions.clone(),
            top_features: p.top_features.clone(),
        }
    }
}

/// A machine's latest prediction plus whether it has an open maintenance request now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatestPrediction {
    #[serde(flatten)]
    pub prediction: Prediction,
    pub maintenance_request_open: bool,
}

/// `GET /api/v1/predictive/predictions`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionList {
    pub timestamp: String,
    /// Machines matching the filter, before `limit`.
    pub total: usize,
    /// Critical first, then by `failure_probability` (highest first), then by machine id.
    pub predictions: Vec<LatestPrediction>,
}

/// An open maintenance request: the OPEN record's fields, `event_time` shown as `opened_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenRequest {
    pub request_id: String,
    pub event_id: String,
    pub machine_id: String,
    pub urgency: Urgency,
    pub reason: String,
    pub opened_at: String,
    pub prediction_event_id: Option<String>,
    /// For choosing the newest of several open requests of one machine.
    #[serde(skip)]
    event_time: i64,
}

impl OpenRequest {
    fn from_record(m: &MaintenanceRequest) -> Self {
        OpenRequest {
            request_id: m.request_id.clone(),
            event_id: m.event_id.clone(),
            machine_id: m.machine_id.clone(),
            urgency: m.urgency,
            reason: m.reason.clone(),
            opened_at: rfc3339_ms(m.event_time),
            prediction_event_id: m.prediction_event_id.clone(),
            event_time: m.event_time,
        }
    }
}

/// `GET /api/v1/predictive/machines/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachinePredictions {
    pub machine_id: String,
    pub latest: Option<LatestPrediction>,
    /// Newest first, at most `history_per_machine` entries.
    pub history: Vec<Prediction>,
    /// The newest open request of the machine (the predictive processor keeps one at a time).
    pub open_request: Option<OpenRequest>,
}

struct PredictionEntry {
    latest: Prediction,
    /// Newest last (the response reverses it).
    history: VecDeque<Prediction>,
}

struct MachineEntry {
    state: TwinState,
    history: VecDeque<HistoryEntry>,
}

/// See the module doc. Not a table: only [`super::Views`] touches it, under one lock per batch.
pub(crate) struct Model {
    history_per_machine: usize,
    machines: BTreeMap<String, MachineEntry>,
    predictions: BTreeMap<String, PredictionEntry>,
    /// Open requests by machine, then by request id.
    open_by_machine: BTreeMap<String, BTreeMap<String, OpenRequest>>,
    /// Request id -> machine id of every open request: a CLOSE is matched by request id alone.
    open_requests: BTreeMap<String, String>,
    /// The newest plan.
    pub(crate) schedule: Option<std::sync::Arc<ScheduleChange>>,
    /// Bumped by every failure prediction (so pushes resend the predictions list only then).
    pub(crate) predictions_seq: u64,
}

impl Model {
    pub(crate) fn new(history_per_machine: usize) -> Self {
        Model {
            history_per_machine,
            machines: BTreeMap::new(),
            predictions: BTreeMap::new(),
            open_by_machine: BTreeMap::new(),
            open_requests: BTreeMap::new(),
            schedule: None,
            predictions_seq: 0,
        }
    }

    /// The model of a served state (see [`super::ServedState`]).
    pub(crate) fn from_served(history_per_machine: usize, served: &super::ServedState) -> Self {
        let mut model = Model::new(history_per_machine);
        let keep = |n: usize| n.saturating_sub(history_per_machine);
        for (current, history) in &served.machines {
            let history = history[keep(history.len())..]
                .iter()
                .map(HistoryEntry::from_twin)
                .collect();
            model.machines.insert(
                current.machine_id.clone(),
                MachineEntry {
                    state: current.clone(),
                    history,
                },
            );
        }
        for (latest, history) in &served.predictions {
            model.predictions.insert(
                latest.machine_id.clone(),
                PredictionEntry {
                    latest: Prediction::from_record(latest),
                    history: history[keep(history.len())..]
                        .iter()
                        .map(Prediction::from_record)
                        .collect(),
                },
            );
        }
        let mut open: Vec<&MaintenanceRequest> = served.open_requests.iter().collect();
        open.sort_by(|a, b| (a.event_time, &a.request_id).cmp(&(b.event_time, &b.request_id)));
        for m in open {
            model.open_request(m);
        }
        model.schedule = served.schedule.clone().map(std::sync::Arc::new);
        model
    }

    /// Event ids of the latest predictions (to tell whether a served state changed them).
    pub(crate) fn prediction_ids(&self) -> Vec<&str> {
        self.predictions
            .values()
            .map(|e| e.latest.event_id.as_str())
            .collect()
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
                        entry.history.push_back(HistoryEntry::from_twin(s));
                    }
                    changed = true;
                }
                Payload::FailurePrediction(p) => {
                    self.apply_prediction(p);
                    self.predictions_seq += 1;
                    changed = true;
                }
                Payload::ScheduleChange(c) => {
                    self.schedule = Some(std::sync::Arc::new(c.clone()));
                    changed = true;
                }
                Payload::MaintenanceRequest(m) => {
                    match m.action {
                        MaintenanceAction::Open => self.open_request(m),
                        MaintenanceAction::Close => self.close_request(&m.request_id),
                    }
                    changed = true;
                }
                _ => {}
            }
        }
        changed
    }

    fn apply_prediction(&mut self, p: &FailurePrediction) {
        let latest = Prediction::from_record(p);
        let bound = self.history_per_machine;
        match self.predictions.get_mut(&p.machine_id) {
            Some(entry) => {
                if bound > 0 {
                    if entry.history.len() >= bound {
                        entry.history.pop_front();
                    }
                    entry.history.push_back(latest.clone());
                }
                entry.latest = latest;
            }
            None => {
                let mut history = VecDeque::new();
                if bound > 0 {
                    history.push_back(latest.clone());
                }
                self.predictions
                    .insert(p.machine_id.clone(), PredictionEntry { latest, history });
            }
        }
    }

    /// A repeated OPEN of a request id replaces the first (and moves it if the machine differs).
    fn open_request(&mut self, m: &MaintenanceRequest) {
        if let Some(previous) = self
            .open_requests
            .insert(m.request_id.clone(), m.machine_id.clone())
        {
            if previous != m.machine_id {
                self.remove_open(&previous, &m.request_id);
            }
        }
        self.open_by_machine
            .entry(m.machine_id.clone())
            .or_default()
            .insert(m.request_id.clone(), OpenRequest::from_record(m));
    }

    /// A CLOSE of a request that is not open (closed twice, or opened before the views' start)
    /// changes nothing.
    fn close_request(&mut self, request_id: &str) {
        if let Some(machine_id) = self.open_requests.remove(request_id) {
            self.remove_open(&machine_id, request_id);
        }
    }

    fn remove_open(&mut self, machine_id: &str, request_id: &str) {
        if let Some(open) = self.open_by_machine.get_mut(machine_id) {
            open.remove(request_id);
            if open.is_empty() {
                self.open_by_machine.remove(machine_id);
            }
        }
    }

    fn newest_open_request(&self, machine_id: &str) -> Option<&OpenRequest> {
        self.open_by_machine
            .get(machine_id)?
            .values()
            .max_by(|a, b| (a.event_time, &a.request_id).cmp(&(b.event_time, &b.request_id)))
    }

    fn latest_prediction(&self, entry: &PredictionEntry) -> LatestPrediction {
        LatestPrediction {
            prediction: entry.latest.clone(),
            maintenance_request_open: self.open_by_machine.contains_key(&entry.latest.machine_id),
        }
    }

    /// The latest prediction of every machine (of one urgency, if given), most urgent first.
    pub(crate) fn predictions(
        &self,
        timestamp: String,
        urgency: Option<Urgency>,
        limit: Option<usize>,
    ) -> PredictionList {
        let mut matching: Vec<&PredictionEntry> = self
            .predictions
            .values()
            .filter(|e| urgency.is_none_or(|u| e.latest.urgency == u))
            .collect();
        // `Urgency`'s order is the schema's: CRITICAL < HIGH < MEDIUM < LOW.
        matching.sort_by(|a, b| {
            let (a, b) = (&a.latest, &b.latest);
            a.urgency
                .cmp(&b.urgency)
                .then(b.failure_probability.total_cmp(&a.failure_probability))
                .then_with(|| a.machine_id.cmp(&b.machine_id))
        });
        let total = matching.len();
        let predictions = matching
            .into_iter()
            .take(limit.unwrap_or(usize::MAX))
            .map(|e| self.latest_prediction(e))
            .collect();
        PredictionList {
            timestamp,
            total,
            predictions,
        }
    }

    /// `None` when nothing (twin state, prediction, open request) is known of the machine.
    pub(crate) fn machine_predictions(&self, id: &str) -> Option<MachinePredictions> {
        let entry = self.predictions.get(id);
        let open_request = self.newest_open_request(id).cloned();
        if entry.is_none() && open_request.is_none() && !self.machines.contains_key(id) {
            return None;
        }
        Some(MachinePredictions {
            machine_id: id.to_string(),
            latest: entry.map(|e| self.latest_prediction(e)),
            history: entry
                .map(|e| e.history.iter().rev().cloned().collect())
                .unwrap_or_default(),
            open_request,
        })
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
        let mut status_counts: BTreeMap<&'static str, u64> =
            ALL_STATUSES.iter().map(|s| (s.symbol(), 0)).collect();
        let (mut health, mut cycles, mut defects, mut parts) = (0.0, 0i64, 0i64, 0i64);
        for e in self.machines.values() {
            *status_counts.entry(e.state.status.symbol()).or_insert(0) += 1;
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
        for e in self.predictions.values() {
            match e.latest.urgency {
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
