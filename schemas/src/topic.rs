//! The ten topics, their stable rank, registry subject and embedded `.avsc` schema.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A topic of the event log. Serde form: the topic name (`"sensor-readings"`).
///
/// The declaration order is the rank order (inputs first), so the derived `Ord` agrees with
/// [`Topic::rank`]; the runtime's merge order `(origin, rank, offset)` depends on it, so never
/// reorder these variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Topic {
    #[serde(rename = "sensor-readings")]
    SensorReadings,
    #[serde(rename = "images")]
    Images,
    #[serde(rename = "job-events")]
    JobEvents,
    #[serde(rename = "machine-events")]
    MachineEvents,
    #[serde(rename = "defects")]
    Defects,
    #[serde(rename = "twin-state")]
    TwinState,
    #[serde(rename = "failure-predictions")]
    FailurePredictions,
    #[serde(rename = "maintenance-requests")]
    MaintenanceRequests,
    #[serde(rename = "schedule-changes")]
    ScheduleChanges,
    #[serde(rename = "dead-letters")]
    DeadLetters,
}

impl Topic {
    /// Every topic, in rank order.
    pub const ALL: [Topic; 10] = [
        Topic::SensorReadings,
        Topic::Images,
        Topic::JobEvents,
        Topic::MachineEvents,
        Topic::Defects,
        Topic::TwinState,
        Topic::FailurePredictions,
        Topic::MaintenanceRequests,
        Topic::ScheduleChanges,
        Topic::DeadLetters,
    ];

    /// The external inputs: what producers and the simulator append.
    pub const INPUTS: [Topic; 4] = [
        Topic::SensorReadings,
        Topic::Images,
        Topic::JobEvents,
        Topic::MachineEvents,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Topic::SensorReadings => "sensor-readings",
            Topic::Images => "images",
            Topic::JobEvents => "job-events",
            Topic::MachineEvents => "machine-events",
            Topic::Defects => "defects",
            Topic::TwinState => "twin-state",
            Topic::FailurePredictions => "failure-predictions",
            Topic::MaintenanceRequests => "maintenance-requests",
            Topic::ScheduleChanges => "schedule-changes",
            Topic::DeadLetters => "dead-letters",
        }
    }

    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the topic is written by external producers (not derived by a processor).
    pub fn is_input(self) -> bool {
        matches!(
            self,
            Topic::SensorReadings | Topic::Images | Topic::JobEvents | Topic::MachineEvents
        )
    }

    /// Stable index 0..=9 (the position in [`Topic::ALL`]); part of the merge order, never changes.
    pub fn rank(self) -> u8 {
        self as u8
    }

    /// Inverse of [`Topic::rank`].
    pub fn from_rank(rank: u8) -> Option<Topic> {
        Topic::ALL.get(usize::from(rank)).copied()
    }

    /// Registry subject under Confluent's TopicNameStrategy: `<topic>-value`.
    pub fn subject(self) -> String {
        format!("{}-value", self.name())
    }

    /// Inverse of [`Topic::subject`].
    pub fn from_subject(subject: &str) -> Option<Topic> {
        subject.strip_suffix("-value").and_then(Topic::from_name)
    }

    /// The current `.avsc` of the topic's record (the source of truth, embedded at build time).
    pub fn schema_json(self) -> &'static str {
        match self {
            Topic::SensorReadings => include_str!("../avro/sensor-readings.avsc"),
            Topic::Images => include_str!("../avro/images.avsc"),
            Topic::JobEvents => include_str!("../avro/job-events.avsc"),
            Topic::MachineEvents => include_str!("../avro/machine-events.avsc"),
            Topic::Defects => include_str!("../avro/defects.avsc"),
            Topic::TwinState => include_str!("../avro/twin-state.avsc"),
            Topic::FailurePredictions => include_str!("../avro/failure-predictions.avsc"),
            Topic::MaintenanceRequests => include_str!("../avro/maintenance-requests.avsc"),
            Topic::ScheduleChanges => include_str!("../avro/schedule-changes.avsc"),
            Topic::DeadLetters => include_str!("../avro/dead-letters.avsc"),
        }
    }

    /// Name of the Rust type / Avro record carried by the topic.
    pub fn record_name(self) -> &'static str {
        match self {
            Topic::SensorReadings => "SensorReading",
            Topic::Images => "Image",
            Topic::JobEvents => "JobEvent",
            Topic::MachineEvents => "MachineEvent",
            Topic::Defects => "Defect",
            Topic::TwinState => "TwinState",
            Topic::FailurePredictions => "FailurePrediction",
            Topic::MaintenanceRequests => "MaintenanceRequest",
            Topic::ScheduleChanges => "ScheduleChange",
            Topic::DeadLetters => "DeadLetter",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of `"...".parse::<Topic>()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown topic {0:?}")]
pub struct UnknownTopic(pub String);

impl FromStr for Topic {
    type Err = UnknownTopic;

    fn from_str(s: &str) -> Result<Topic, UnknownTopic> {
        Topic::from_name(s).ok_or_else(|| UnknownTopic(s.to_string()))
    }
}
