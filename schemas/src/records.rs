//! Rust types of every Avro record and enum in `schemas/avro/*.avsc`, field for field.
//!
//! Field order follows the `.avsc` field order, so the fast serializer never has to reorder
//! fields (it would buffer them otherwise). Times are Unix milliseconds (`i64`), Avro
//! `timestamp-millis`. `bytes` fields use `serde_bytes` so both Avro libraries see `bytes`,
//! not an array of ints. Optional fields carry `#[serde(default)]` so the JSON ingest API may
//! omit them; Avro always writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Key of every `schedule-changes` record: the schedule is plant-wide.
pub const PLANT_KEY: &str = "plant";

/// Provenance of a derived event: the log record that caused it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SensorKind {
    Temperature,
    Vibration,
    Pressure,
    Speed,
}

impl SensorKind {
    pub const ALL: [SensorKind; 4] = [
        SensorKind::Temperature,
        SensorKind::Vibration,
        SensorKind::Pressure,
        SensorKind::Speed,
    ];

    /// The Avro symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            SensorKind::Temperature => "TEMPERATURE",
            SensorKind::Vibration => "VIBRATION",
            SensorKind::Pressure => "PRESSURE",
            SensorKind::Speed => "SPEED",
        }
    }

    /// The unit the simulator and the twin use (documented in `sensor-readings.avsc`).
    pub fn default_unit(self) -> &'static str {
        match self {
            SensorKind::Temperature => "C",
            SensorKind::Vibration => "mm/s",
            SensorKind::Pressure => "bar",
            SensorKind::Speed => "rpm",
        }
    }
}

/// `sensor-readings`: one sample of one sensor of one machine.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SensorReading {
    pub machine_id: String,
    pub sensor: SensorKind,
    pub value: f64,
    pub unit: String,
    pub event_time: i64,
}

/// `images`: one camera image of one part.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Image {
    pub machine_id: String,
    pub part_id: String,
    pub media_type: String,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    pub event_time: i64,
    #[serde(default)]
    pub request_id: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobEventKind {
    Submitted,
    Started,
    Completed,
    Cancelled,
}

/// A machine that can run an operation and how long it takes there.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EligibleMachine {
    pub machine_id: String,
    pub duration_ms: i64,
}

/// One operation of a job (flexible job shop: several eligible machines).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Operation {
    pub eligible: Vec<EligibleMachine>,
}

fn default_priority() -> i32 {
    1
}

/// `job-events`: lifecycle of a production job.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JobEvent {
    pub job_id: String,
    pub kind: JobEventKind,
    pub event_time: i64,
    #[serde(default = "default_priority")]
    pub priority: i32,
    #[serde(default)]
    pub due_date: Option<i64>,
    #[serde(default)]
    pub release_time: Option<i64>,
    #[serde(default)]
    pub operations: Vec<Operation>,
    #[serde(default)]
    pub operation_index: Option<i32>,
    #[serde(default)]
    pub machine_id: Option<String>,
}

impl JobEvent {
    /// An event of `kind` with every optional field empty and the schema's default priority.
    pub fn new(job_id: impl Into<String>, kind: JobEventKind, event_time: i64) -> Self {
        JobEvent {
            job_id: job_id.into(),
            kind,
            event_time,
            priority: default_priority(),
            due_date: None,
            release_time: None,
            operations: Vec::new(),
            operation_index: None,
            machine_id: None,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MachineEventKind {
    CycleCompleted,
    Fault,
    MaintenanceStarted,
    MaintenanceFinished,
    Heartbeat,
}

/// `machine-events`: discrete event from a machine controller.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MachineEvent {
    pub machine_id: String,
    pub kind: MachineEventKind,
    pub event_time: i64,
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub part_id: Option<String>,
    #[serde(default)]
    pub cycle_time_ms: Option<i64>,
    #[serde(default)]
    pub fault_code: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub busy: Option<bool>,
}

impl MachineEvent {
    /// An event of `kind` with every optional field empty.
    pub fn new(machine_id: impl Into<String>, kind: MachineEventKind, event_time: i64) -> Self {
        MachineEvent {
            machine_id: machine_id.into(),
            kind,
            event_time,
            job_id: None,
            part_id: None,
            cycle_time_ms: None,
            fault_code: None,
            detail: None,
            busy: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Derived
// ---------------------------------------------------------------------------------------------

/// Box around a defect, normalised to 0..1 of the image; (x, y) is the top-left corner.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct BoundingBox {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// `defects`: result of inspecting one image.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Defect {
    pub event_id: String,
    pub source: Source,
    pub machine_id: String,
    pub part_id: String,
    pub event_time: i64,
    pub defect_detected: bool,
    pub defect_type: String,
    pub confidence: f64,
    #[serde(default)]
    pub bbox: Option<BoundingBox>,
    pub model_name: String,
    pub model_version: String,
    #[serde(default)]
    pub request_id: Option<String>,
}

#[derive(
    Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MachineStatus {
    #[default]
    Idle,
    Running,
    Warning,
    Error,
    Maintenance,
    Offline,
}

impl MachineStatus {
    /// The Avro symbol (also the API's spelling).
    pub fn symbol(self) -> &'static str {
        match self {
            MachineStatus::Idle => "IDLE",
            MachineStatus::Running => "RUNNING",
            MachineStatus::Warning => "WARNING",
            MachineStatus::Error => "ERROR",
            MachineStatus::Maintenance => "MAINTENANCE",
            MachineStatus::Offline => "OFFLINE",
        }
    }
}

/// `twin-state`: snapshot of one machine's digital twin.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct TwinState {
    pub event_id: String,
    pub source: Source,
    pub machine_id: String,
    pub event_time: i64,
    pub status: MachineStatus,
    #[serde(default)]
    pub previous_status: Option<MachineStatus>,
    pub health_score: f64,
    pub cycles: i64,
    pub defects: i64,
    pub parts_inspected: i64,
    pub defect_rate: f64,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub vibration: Option<f64>,
    #[serde(default)]
    pub pressure: Option<f64>,
    #[serde(default)]
    pub speed: Option<f64>,
    pub last_seen: i64,
    pub reason: String,
}

#[derive(
    Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Urgency {
    Critical,
    High,
    Medium,
    #[default]
    Low,
}

impl Urgency {
    /// The Avro symbol (also the API's spelling).
    pub fn symbol(self) -> &'static str {
        match self {
            Urgency::Critical => "CRITICAL",
            Urgency::High => "HIGH",
            Urgency::Medium => "MEDIUM",
            Urgency::Low => "LOW",
        }
    }
}

/// One input feature of a prediction and its signed contribution.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct FeatureContribution {
    pub name: String,
    pub value: f64,
    pub contribution: f64,
}

/// `failure-predictions`: failure risk of one machine.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct FailurePrediction {
    pub event_id: String,
    pub source: Source,
    pub machine_id: String,
    pub event_time: i64,
    pub failure_probability: f64,
    pub time_to_failure_hours: f64,
    pub urgency: Urgency,
    pub probability_1d: f64,
    pub probability_3d: f64,
    pub probability_7d: f64,
    #[serde(default)]
    pub rul_hours: Option<f64>,
    pub recommended_action: String,
    /// A `BTreeMap` so the Avro map is always written in the same order (byte-identical replays).
    pub model_versions: BTreeMap<String, String>,
    pub top_features: Vec<FeatureContribution>,
}

#[derive(
    Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MaintenanceAction {
    #[default]
    Open,
    Close,
}

/// `maintenance-requests`: opens or closes a maintenance request.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct MaintenanceRequest {
    pub event_id: String,
    pub source: Source,
    pub machine_id: String,
    pub event_time: i64,
    pub request_id: String,
    pub action: MaintenanceAction,
    pub urgency: Urgency,
    pub reason: String,
    #[serde(default)]
    pub prediction_event_id: Option<String>,
}

/// Placement of one operation in a new plan, with its previous placement.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct OperationMove {
    pub job_id: String,
    pub operation_index: i32,
    pub machine_id: String,
    pub start: i64,
    pub end: i64,
    #[serde(default)]
    pub previous_machine_id: Option<String>,
    #[serde(default)]
    pub previous_start: Option<i64>,
}

/// `schedule-changes`: a new plan version and the operations it moved.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ScheduleChange {
    pub event_id: String,
    pub source: Source,
    pub event_time: i64,
    pub plan_version: i64,
    pub reason: String,
    pub makespan_ms: i64,
    pub objective: f64,
    pub moves: Vec<OperationMove>,
    /// The complete plan after the change (started and planned operations of open jobs).
    #[serde(default)]
    pub plan: Vec<PlannedOperation>,
}

/// One operation of a complete plan.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PlannedOperation {
    pub job_id: String,
    pub operation_index: i32,
    pub machine_id: String,
    pub start: i64,
    pub end: i64,
    /// Started: machine and start are fixed, `end` is the expected end.
    #[serde(default)]
    pub started: bool,
}

#[derive(
    Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeadLetterReason {
    NotWireFormat,
    UnknownSchema,
    Undecodable,
    InvalidKey,
    InvalidEvent,
    #[default]
    ProcessingError,
}

/// `dead-letters`: a record that could not be processed, with its original bytes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct DeadLetter {
    pub event_id: String,
    pub source: Source,
    pub event_time: i64,
    pub reason_type: DeadLetterReason,
    pub reason: String,
    #[serde(default)]
    pub processor: Option<String>,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}
