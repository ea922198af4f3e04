//! The predictive-maintenance processor: per-machine features, failure predictions at every
//! window close, and maintenance requests for machines predicted to fail soon.
//!
//! Inputs: `sensor-readings`, `defects`, `twin-state`, `machine-events`.
//! Outputs: `failure-predictions` and `maintenance-requests`, key = machine id.
//!
//! # Predictions
//!
//! Every `close_interval_ms` (15 min) of event time, for each machine whose row is ready (see
//! [`features`]), the [`FailureModel`] gets the row and the machine's last K rows and returns
//! `p1d, p3d, p7d` and a RUL estimate. Probabilities are made monotone in the horizon
//! (`p3d = max(p3d, p1d)`, `p7d = max(p7d, p3d)`): a failure within a day is a failure within three.
//!
//! The alert thresholds `τ1, τ3, τ7` (chosen on validation data, shipped with the model) put the
//! time to failure in a band: `[0, 24) h` if `p1d ≥ τ1`, else `[24, 72)` if `p3d ≥ τ3`, else
//! `[72, 168)` if `p7d ≥ τ7`, else `[168, rul cap]`. `time_to_failure_hours` is the RUL estimate
//! clamped into that band (the band midpoint without a RUL model), and the urgency follows from it
//! ([`urgency_for`]: CRITICAL < 24 h ≤ HIGH < 72 h ≤ MEDIUM < 168 h ≤ LOW). So the classifiers
//! (whose precision the thresholds control) decide the urgency and the RUL model refines the
//! estimate inside the band. `failure_probability` is `p3d`, the alert horizon.
//!
//! `top_features` are the `top_features` largest contributions by absolute value (ties: feature
//! order); `recommended_action` names the subsystem of the largest positive sensor contribution.
//!
//! # Maintenance requests
//!
//! A CRITICAL or HIGH prediction for a machine without an open request emits an OPEN request
//! (`request_id = MR-<machine>-<n>`, n counting that machine's requests), with the prediction's
//! event id. At most one request per machine is open. MAINTENANCE_STARTED or MAINTENANCE_FINISHED
//! for the machine emits the matching CLOSE. Predictions stop while a machine is down (FAULT or
//! maintenance) and resume after MAINTENANCE_FINISHED.
//!
//! # Event ids
//!
//! The runtime names derived events `<topic>:<source topic>/<partition>/<offset>/<n>`, n counting
//! per topic what one callback emitted (ARCHITECTURE.md). A prediction emitted from `on_event`
//! therefore has a known id and the request refers to it; one emitted from `on_watermark` (a
//! machine that went quiet) has no visible source, so its request carries `prediction_event_id =
//! null`.

pub mod features;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use twinline_schemas::{
    FailurePrediction, FeatureContribution, MachineEventKind, MaintenanceAction,
    MaintenanceRequest, Payload, Topic, Urgency,
};

pub use features::{FeatureConfig, FeatureError, FeatureRow, FeatureTracker, NUM_FEATURES};
pub use twinline_models::predictive::{FailureModel, FailureOutput};
pub use twinline_models::ModelError;

use crate::{Emitter, Event, EventTime, Position, ProcessError, Processor};

/// Hours bounding the urgency classes.
pub const CRITICAL_HOURS: f64 = 24.0;
pub const HIGH_HOURS: f64 = 72.0;
pub const MEDIUM_HOURS: f64 = 168.0;

/// Urgency for a time to failure: CRITICAL < 24 h ≤ HIGH < 72 h ≤ MEDIUM < 168 h ≤ LOW.
pub fn urgency_for(time_to_failure_hours: f64) -> Urgency {
    if time_to_failure_hours < CRITICAL_HOURS {
        Urgency::Critical
    } else if time_to_failure_hours < HIGH_HOURS {
        Urgency::High
    } else if time_to_failure_hours < MEDIUM_HOURS {
        Urgency::Medium
    } else {
        Urgency::Low
    }
}

/// Monotone probabilities, the time-to-failure estimate and its urgency (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    pub probability_1d: f64,
    pub probability_3d: f64,
    pub probability_7d: f64,
    pub time_to_failure_hours: f64,
    pub urgency: Urgency,
}

/// Combines model outputs with the alert thresholds; `rul_cap_hours` bounds the LOW band.
pub fn assess(out: &FailureOutput, thresholds: [f64; 3], rul_cap_hours: f64) -> Assessment {
    let p1 = out.probability_1d;
    let p3 = out.probability_3d.max(p1);
    let p7 = out.probability_7d.max(p3);
    let cap = rul_cap_hours.max(MEDIUM_HOURS);
    let (lo, hi) = if p1 >= thresholds[0] {
        (0.0, CRITICAL_HOURS)
    } else if p3 >= thresholds[1] {
        (CRITICAL_HOURS, HIGH_HOURS)
    } else if p7 >= thresholds[2] {
        (HIGH_HOURS, MEDIUM_HOURS)
    } else {
        (MEDIUM_HOURS, cap)
    };
    // Stay strictly inside [lo, hi) so the urgency is the band's; the LOW band includes the cap.
    let top = if hi == cap { cap } else { hi - 0.01 };
    let ttf = match out.rul_hours {
        Some(r) if r.is_finite() => r.clamp(lo, top),
        _ => (lo + top) / 2.0,
    };
    Assessment {
        probability_1d: p1,
        probability_3d: p3,
        probability_7d: p7,
        time_to_failure_hours: ttf,
        urgency: urgency_for(ttf),
    }
}

/// Processor settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictiveConfig {
    pub features: FeatureConfig,
    /// Contributions listed per prediction. Default 5.
    pub top_features: usize,
    /// Upper end of the LOW band, hours (RUL estimates are capped here). Default 1440 (60 days).
    pub rul_cap_hours: f64,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        PredictiveConfig {
            features: FeatureConfig::default(),
            top_features: 5,
            rul_cap_hours: 1440.0,
        }
    }
}

/// Why the processor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PredictiveError {
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error("model does not fit the features: {0}")]
    ModelMismatch(String),
}

/// A machine's maintenance-request bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Requests {
    /// The open request: its id and urgency.
    open: Option<(String, Urgency)>,
    /// Requests opened so far (the next id's number).
    opened: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    features: features::TrackerSnapshot,
    requests: BTreeMap<String, Requests>,
}

/// See the module docs.
pub struct PredictiveProcessor {
    cfg: PredictiveConfig,
    tracker: FeatureTracker,
    /// The tracker's feature names, owned separately so they can be read while it is borrowed.
    names: Vec<String>,
    model: Box<dyn FailureModel>,
    requests: BTreeMap<String, Requests>,
    output: FailureOutput,
    /// Scratch for ranking contributions.
    order: Vec<usize>,
}

impl std::fmt::Debug for PredictiveProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictiveProcessor")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl PredictiveProcessor {
    /// Checks that the model reads exactly these features and this history length.
    pub fn new(
        cfg: PredictiveConfig,
        model: Box<dyn FailureModel>,
    ) -> Result<Self, PredictiveError> {
        let mut fcfg = cfg.features.clone();
        let k = model.sequence_len();
        if k > 0 {
            fcfg.history_len = k;
        }
        let tracker = FeatureTracker::new(fcfg)?;
        if model.feature_names() != tracker.feature_names() {
            return Err(PredictiveError::ModelMismatch(format!(
                "model features {:?} != processor features {:?}",
                model.feature_names(),
                tracker.feature_names()
            )));
        }
        if !(cfg.rul_cap_hours.is_finite() && cfg.rul_cap_hours > 0.0) {
            return Err(PredictiveError::Features(FeatureError::Config(
                "rul_cap_hours must be > 0".into(),
            )));
        }
        Ok(PredictiveProcessor {
            cfg,
            names: tracker.feature_names().to_vec(),
            tracker,
            model,
            requests: BTreeMap::new(),
            output: FailureOutput::default(),
            order: Vec::with_capacity(NUM_FEATURES),
        })
    }

    pub fn tracker(&self) -> &FeatureTracker {
        &self.tracker
    }

    fn split<'a>(
        &'a mut self,
        out: &'a mut Emitter,
        position: Option<Position>,
    ) -> (Ctx<'a>, &'a mut FeatureTracker) {
        let ctx = Ctx {
            cfg: &self.cfg,
            model: self.model.as_mut(),
            requests: &mut self.requests,
            output: &mut self.output,
            order: &mut self.order,
            names: &self.names,
            out,
            position,
            predictions: 0,
        };
        (ctx, &mut self.tracker)
    }

    /// The open request of `machine_id`, if any.
    pub fn open_request(&self, machine_id: &str) -> Option<&str> {
        self.requests
            .get(machine_id)
            .and_then(|r| r.open.as_ref())
            .map(|(id, _)| id.as_str())
    }
}

/// What the callbacks need besides the tracker (split so the tracker can be borrowed mutably).
struct Ctx<'a> {
    cfg: &'a PredictiveConfig,
    model: &'a mut dyn FailureModel,
    requests: &'a mut BTreeMap<String, Requests>,
    output: &'a mut FailureOutput,
    order: &'a mut Vec<usize>,
    names: &'a [String],
    out: &'a mut Emitter,
    /// The source position when called from `on_event` (to name the prediction's event id).
    position: Option<Position>,
    predictions: usize,
}

fn internal(e: impl std::fmt::Display) -> ProcessError {
    ProcessError::Internal(e.to_string())
}

impl From<FeatureError> for ProcessError {
    fn from(e: FeatureError) -> Self {
        match e {
            FeatureError::BadInput(m) => ProcessError::BadInput(m),
            FeatureError::Config(m) => ProcessError::Internal(m),
        }
    }
}

fn recommended_action(urgency: Urgency, names: &[String], contributions: &[f64]) -> String {
    // The sensor (or defect rate) with the largest positive contribution names the subsystem.
    let mut best: Option<(usize, f64)> = None;
    for (i, &c) in contributions.iter().enumerate() {
        if c > 0.0 && best.is_none_or(|(_, b)| c > b) {
            best = Some((i, c));
        }
    }
    let subsystem = match best.map(|(i, _)| names[i].as_str()) {
        Some(n) if n.starts_with("vibration") => "inspect the spindle bearing (vibration)",
        Some(n) if n.starts_with("temperature") => "check the cooling system (temperature)",
        Some(n) if n.starts_with("pressure") => "inspect the hydraulics for leaks (pressure)",
        Some(n) if n.starts_with("speed") => "check the drive and cooling (speed)",
        Some(n) if n.starts_with("defect") => "inspect tooling and part quality (defect rate)",
        _ => "inspect the machine (general wear)",
    };
    match urgency {
        Urgency::Critical => format!("stop and maintain now: {subsystem}"),
        Urgency::High => format!("schedule maintenance within 24 h: {subsystem}"),
        Urgency::Medium => format!("plan maintenance this week: {subsystem}"),
        Urgency::Low => "no action: routine monitoring".to_string(),
    }
}

impl Ctx<'_> {
    fn on_row(&mut self, row: FeatureRow<'_>) -> Result<(), ProcessError> {
        self.model
            .predict(row.features, row.history, self.output)
            .map_err(|e| match e {
                ModelError::Input(m) => ProcessError::BadInput(m),
                other => internal(other),
            })?;
        let a = assess(
            self.output,
            self.model.alert_thresholds(),
            self.cfg.rul_cap_hours,
        );
        let contributions = &self.output.contributions;
        self.order.clear();
        if contributions.len() == row.features.len() {
            self.order.extend(0..contributions.len());
            self.order.sort_by(|&i, &j| {
                contributions[j]
                    .abs()
                    .total_cmp(&contributions[i].abs())
                    .then(i.cmp(&j))
            });
            self.order.truncate(self.cfg.top_features);
        }
        let top_features = self
            .order
            .iter()
            .map(|&i| FeatureContribution {
                name: self.names[i].clone(),
                value: row.features[i],
                contribution: contributions[i],
            })
            .collect();
        let action = recommended_action(a.urgency, self.names, contributions);
        let prediction_event_id = self.position.map(|p| {
            format!(
                "{}:{}/{}/{}/{}",
                Topic::FailurePredictions.name(),
                p.topic.name(),
                p.partition,
                p.offset,
                self.predictions
            )
        });
        self.predictions += 1;
        let prediction = FailurePrediction {
            machine_id: row.machine_id.to_string(),
            event_time: row.window_end_ms,
            failure_probability: a.probability_3d,
            time_to_failure_hours: a.time_to_failure_hours,
            urgency: a.urgency,
            probability_1d: a.probability_1d,
            probability_3d: a.probability_3d,
            probability_7d: a.probability_7d,
            rul_hours: self.output.rul_hours,
            recommended_action: action.clone(),
            model_versions: self.model.versions().clone(),
            top_features,
            ..FailurePrediction::default()
        };
        self.out.emit(
            Topic::FailurePredictions,
            row.machine_id,
            Payload::FailurePrediction(prediction),
        );

        if matches!(a.urgency, Urgency::Critical | Urgency::High) {
            let req = self.requests.entry(row.machine_id.to_string()).or_default();
            if req.open.is_none() {
                req.opened += 1;
                let request_id = format!("MR-{}-{}", row.machine_id, req.opened);
                req.open = Some((request_id.clone(), a.urgency));
                let request = MaintenanceRequest {
                    machine_id: row.machine_id.to_string(),
                    event_time: row.window_end_ms,
                    request_id,
                    action: MaintenanceAction::Open,
                    urgency: a.urgency,
                    reason: format!(
                        "predicted failure in {:.1} h (p1d {:.2}, p3d {:.2}): {action}",
                        a.time_to_failure_hours, a.probability_1d, a.probability_3d
                    ),
                    prediction_event_id,
                    ..MaintenanceRequest::default()
                };
                self.out.emit(
                    Topic::MaintenanceRequests,
                    row.machine_id,
                    Payload::MaintenanceRequest(request),
                );
            }
        }
        Ok(())
    }
}

/// Emits the CLOSE of the machine's open request, if it has one.
fn close_request(
    requests: &mut BTreeMap<String, Requests>,
    out: &mut Emitter,
    machine_id: &str,
    kind: MachineEventKind,
    event_time: EventTime,
) {
    let Some(req) = requests.get_mut(machine_id) else {
        return;
    };
    let Some((request_id, urgency)) = req.open.take() else {
        return;
    };
    let reason = match kind {
        MachineEventKind::MaintenanceStarted => "maintenance started",
        _ => "maintenance finished",
    };
    let request = MaintenanceRequest {
        machine_id: machine_id.to_string(),
        event_time,
        request_id,
        action: MaintenanceAction::Close,
        urgency,
        reason: reason.to_string(),
        prediction_event_id: None,
        ..MaintenanceRequest::default()
    };
    out.emit(
        Topic::MaintenanceRequests,
        machine_id,
        Payload::MaintenanceRequest(request),
    );
}

impl Processor for PredictiveProcessor {
    fn name(&self) -> &'static str {
        "predictive"
    }

    fn inputs(&self) -> &'static [Topic] {
        &[
            Topic::SensorReadings,
            Topic::MachineEvents,
            Topic::Defects,
            Topic::TwinState,
        ]
    }

    fn on_event(&mut self, event: &Event<'_>, out: &mut Emitter) -> Result<(), ProcessError> {
        let machine_id = event.payload.key();
        if machine_id != event.key {
            return Err(ProcessError::BadInput(format!(
                "record key {:?} differs from machine id {machine_id:?}",
                event.key
            )));
        }
        let (mut ctx, tracker) = self.split(out, Some(event.position));
        tracker.on_event(event.event_time, event.payload, |row| ctx.on_row(row))?;
        if let Payload::MachineEvent(e) = event.payload {
            if matches!(
                e.kind,
                MachineEventKind::MaintenanceStarted | MachineEventKind::MaintenanceFinished
            ) {
                close_request(
                    ctx.requests,
                    ctx.out,
                    e.machine_id.as_str(),
                    e.kind,
                    event.event_time,
                );
            }
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        out: &mut Emitter,
    ) -> Result<(), ProcessError> {
        let (mut ctx, tracker) = self.split(out, None);
        tracker.on_watermark(watermark, |row| ctx.on_row(row))
    }

    fn snapshot(&self) -> Result<Vec<u8>, ProcessError> {
        let snap = Snapshot {
            features: self.tracker.snapshot(),
            requests: self.requests.clone(),
        };
        serde_json::to_vec(&snap).map_err(internal)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), ProcessError> {
        let snap: Snapshot = serde_json::from_slice(bytes).map_err(internal)?;
        self.tracker.restore(snap.features)?;
        self.requests = snap.requests;
        Ok(())
    }
}
