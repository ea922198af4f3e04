//! Shared fixtures: seeded event generators, a test double of the pipeline backend, and state
//! and router builders.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinline_queries::{
    ApiBackend, ApiConfig, ApiState, ApiToken, IngestAck, Role, ViewConfig, ViewEvent, Views,
};
use twinline_schemas::*;

/// This package's directory: cargo's value at run time, which stays right when the binary was built
/// from another checkout sharing the target directory; the compile-time value otherwise.
pub fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

pub const T0: i64 = 1_700_000_000_000;

pub fn machine(i: usize) -> String {
    format!("m-{i:03}")
}

pub fn sensor(machine_id: &str, kind: SensorKind, value: f64, t: i64) -> Payload {
    Payload::SensorReading(SensorReading {
        machine_id: machine_id.to_string(),
        sensor: kind,
        value,
        unit: kind.default_unit().to_string(),
        event_time: t,
    })
}

pub fn twin(machine_id: &str, n: i64, status: MachineStatus, health: f64, t: i64) -> Payload {
    Payload::TwinState(TwinState {
        event_id: format!("twin-state:sensor-readings/0/{n}/0"),
        source: Source {
            topic: "sensor-readings".into(),
            partition: 0,
            offset: n,
        },
        machine_id: machine_id.to_string(),
        event_time: t,
        status,
        previous_status: Some(MachineStatus::Idle),
        health_score: health,
        cycles: n,
        defects: n / 10,
        parts_inspected: n / 2,
        defect_rate: if n / 2 == 0 {
            0.0
        } else {
            (n / 10) as f64 / (n / 2) as f64
        },
        temperature: Some(60.0 + health / 10.0),
        vibration: if n % 3 == 0 { None } else { Some(2.5) },
        pressure: Some(5.0),
        speed: None,
        last_seen: t,
        reason: format!("update {n}"),
    })
}

pub fn prediction(machine_id: &str, urgency: Urgency, t: i64) -> Payload {
    Payload::FailurePrediction(FailurePrediction {
        event_id: format!("failure-predictions:twin-state/0/{t}/0"),
        source: Source {
            topic: "twin-state".into(),
            partition: 0,
            offset: 1,
        },
        machine_id: machine_id.to_string(),
        event_time: t,
        failure_probability: 0.5,
        time_to_failure_hours: 12.0,
        urgency,
        probability_1d: 0.1,
        probability_3d: 0.3,
        probability_7d: 0.5,
        rul_hours: Some(40.0),
        recommended_action: "inspect".into(),
        model_versions: [("rul".to_string(), "1".to_string())].into_iter().collect(),
        top_features: vec![FeatureContribution {
            name: "vib".into(),
            value: 3.0,
            contribution: 0.2,
        }],
    })
}

pub fn maintenance(
    machine_id: &str,
    request_id: &str,
    action: MaintenanceAction,
    t: i64,
) -> Payload {
    Payload::MaintenanceRequest(MaintenanceRequest {
        event_id: format!("maintenance-requests:x/0/{t}/0"),
        source: Source {
            topic: "failure-predictions".into(),
            partition: 0,
            offset: 2,
        },
        machine_id: machine_id.to_string(),
        event_time: t,
        request_id: request_id.to_string(),
        action,
        urgency: Urgency::High,
        reason: "wear".into(),
        prediction_event_id: None,
    })
}

/// A seeded mix of every topic: mostly sensor readings, some twin states, defects, dead
/// letters, predictions, maintenance requests, schedule changes, and images (read by no view).
pub fn mixed_events(seed: u64, n: usize, machines: usize) -> Vec<(Topic, u32, u64, Payload)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut offsets = [0u64; 10];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let m = machine(rng.gen_range(0..machines));
        let t = T0 + i as i64 * 10;
        let roll: u32 = rng.gen_range(0..100);
        let payload = match roll {
            0..=69 => {
                let kind = SensorKind::ALL[rng.gen_range(0..4)];
                sensor(&m, kind, rng.gen_range(0.0..100.0), t)
            }
            70..=81 => {
                let status = [
                    MachineStatus::Running,
                    MachineStatus::Warning,
                    MachineStatus::Error,
                    MachineStatus::Idle,
                ][rng.gen_range(0..4)];
                twin(&m, i as i64, status, rng.gen_range(0.0..100.0), t)
            }
            82..=86 => Payload::Defect(Defect {
                event_id: format!("defects:images/0/{i}/0"),
                source: Source {
                    topic: "images".into(),
                    partition: 0,
                    offset: i as i64,
                },
                machine_id: m.clone(),
                part_id: format!("p-{i}"),
                event_time: t,
                defect_detected: rng.gen_bool(0.3),
                defect_type: "scratch".into(),
                confidence: rng.gen_range(0.0..1.0),
                bbox: rng.gen_bool(0.5).then_some(BoundingBox {
                    x: 0.1,
                    y: 0.2,
                    width: 0.3,
                    height: 0.4,
                }),
                model_name: "vision".into(),
                model_version: "1".into(),
                request_id: None,
            }),
            87..=88 => Payload::DeadLetter(DeadLetter {
                event_id: format!("dead-letters:sensor-readings/0/{i}/0"),
                source: Source {
                    topic: "sensor-readings".into(),
                    partition: 0,
                    offset: i as i64,
                },
                event_time: t,
                reason_type: DeadLetterReason::Undecodable,
                reason: "bad bytes".into(),
                processor: None,
                key: m.clone().into_bytes(),
                payload: vec![0, 0, 0, 0, 7, 1, 2, 3],
            }),
            89..=91 => prediction(
                &m,
                [
                    Urgency::Critical,
                    Urgency::High,
                    Urgency::Medium,
                    Urgency::Low,
                ][rng.gen_range(0..4)],
                t,
            ),
            92..=93 => maintenance(
                &m,
                &format!("r-{}", rng.gen_range(0..5)),
                if rng.gen_bool(0.6) {
                    MaintenanceAction::Open
                } else {
                    MaintenanceAction::Close
                },
                t,
            ),
            94..=95 => Payload::ScheduleChange(ScheduleChange {
                event_id: format!("schedule-changes:job-events/0/{i}/0"),
                source: Source {
                    topic: "job-events".into(),
                    partition: 0,
                    offset: i as i64,
                },
                event_time: t,
                plan_version: i as i64,
                reason: "replan".into(),
                makespan_ms: 1000,
                objective: 1.5,
                moves: (0..rng.gen_range(0..3))
                    .map(|k| OperationMove {
                        job_id: format!("j-{k}"),
                        operation_index: k,
                        machine_id: m.clone(),
                        start: t,
                        end: t + 100,
                        previous_machine_id: None,
                        previous_start: Some(t - 5),
                    })
                    .collect(),
                plan: (0..rng.gen_range(0..3))
                    .map(|k| PlannedOperation {
                        job_id: format!("j-{k}"),
                        operation_index: k,
                        machine_id: m.clone(),
                        start: t,
                        end: t + 100,
                        started: k == 0,
                    })
                    .collect(),
            }),
            _ => Payload::Image(Image {
                machine_id: m.clone(),
                part_id: format!("p-{i}"),
                media_type: "image/png".into(),
                data: vec![1, 2, 3],
                event_time: t,
                request_id: None,
            }),
        };
        let topic = payload.topic();
        let slot = &mut offsets[usize::from(topic.rank())];
        out.push((topic, 0, *slot, payload));
        *slot += 1;
    }
    out
}

pub fn as_view_events(events: &[(Topic, u32, u64, Payload)]) -> Vec<ViewEvent<'_>> {
    events
        .iter()
        .map(|(topic, partition, offset, payload)| ViewEvent {
            topic: *topic,
            partition: *partition,
            offset: *offset,
            payload,
        })
        .collect()
}

pub fn apply_all(views: &Views, payloads: &[Payload]) {
    let events: Vec<ViewEvent<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| ViewEvent {
            topic: p.topic(),
            partition: 0,
            offset: i as u64,
            payload: p,
        })
        .collect();
    views.apply(&events);
}

/// Test double of the pipeline.
#[derive(Default)]
pub struct FakeBackend {
    pub ingested: Mutex<Vec<(Topic, Payload)>>,
    pub not_ready: AtomicBool,
    pub checkpoints: AtomicU64,
    pub fail_ingest: AtomicBool,
}

impl ApiBackend for FakeBackend {
    fn ingest(&self, topic: Topic, payload: Payload) -> Result<IngestAck, String> {
        if self.fail_ingest.load(Ordering::SeqCst) {
            return Err("log is closed".into());
        }
        let mut log = self.ingested.lock();
        log.push((topic, payload));
        Ok(IngestAck {
            topic,
            partition: 3,
            offset: log.len() as u64 - 1,
        })
    }

    fn metrics_text(&self) -> String {
        "# TYPE twinline_pipeline_events_total counter\ntwinline_pipeline_events_total 42\n".into()
    }

    fn ready(&self) -> bool {
        !self.not_ready.load(Ordering::SeqCst)
    }

    fn checkpoint(&self) -> Result<(), String> {
        self.checkpoints.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

pub fn tokens() -> Vec<ApiToken> {
    vec![
        ApiToken {
            token: "read-token".into(),
            role: Role::Read,
        },
        ApiToken {
            token: "write-token".into(),
            role: Role::Write,
        },
        ApiToken {
            token: "admin-token".into(),
            role: Role::Admin,
        },
    ]
}

pub fn state_with(config: ApiConfig) -> (ApiState, Arc<Views>, Arc<FakeBackend>) {
    let views = Arc::new(Views::new(ViewConfig::default()));
    let backend = Arc::new(FakeBackend::default());
    let state = ApiState::new(views.clone(), backend.clone(), config).expect("api state");
    (state, views, backend)
}

pub fn test_config() -> ApiConfig {
    ApiConfig {
        factory_id: "plant-7".into(),
        tokens: tokens(),
        ..ApiConfig::default()
    }
}
