//! Proptest strategies for every record type, shared by the integration tests.
#![allow(dead_code)]

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use twinline_schemas::*;

/// Any finite double (NaN breaks `PartialEq`, and JSON has no NaN or infinity).
pub fn finite() -> impl Strategy<Value = f64> {
    use proptest::num::f64::*;
    NORMAL | SUBNORMAL | ZERO | POSITIVE | NEGATIVE
}

/// Arbitrary Unicode, including empty strings and multi-byte characters.
pub fn text() -> impl Strategy<Value = String> {
    ".{0,12}"
}

pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..64)
}

pub fn source() -> impl Strategy<Value = Source> {
    (text(), any::<i32>(), any::<i64>()).prop_map(|(topic, partition, offset)| Source {
        topic,
        partition,
        offset,
    })
}

pub fn sensor_kind() -> impl Strategy<Value = SensorKind> {
    prop::sample::select(SensorKind::ALL.to_vec())
}

pub fn sensor_reading() -> impl Strategy<Value = SensorReading> {
    (text(), sensor_kind(), finite(), text(), any::<i64>()).prop_map(
        |(machine_id, sensor, value, unit, event_time)| SensorReading {
            machine_id,
            sensor,
            value,
            unit,
            event_time,
        },
    )
}

pub fn image() -> impl Strategy<Value = Image> {
    (
        text(),
        text(),
        text(),
        bytes(),
        any::<i64>(),
        option::of(text()),
    )
        .prop_map(
            |(machine_id, part_id, media_type, data, event_time, request_id)| Image {
                machine_id,
                part_id,
                media_type,
                data,
                event_time,
                request_id,
            },
        )
}

pub fn operation() -> impl Strategy<Value = Operation> {
    vec(
        (text(), any::<i64>()).prop_map(|(machine_id, duration_ms)| EligibleMachine {
            machine_id,
            duration_ms,
        }),
        0..4,
    )
    .prop_map(|eligible| Operation { eligible })
}

pub fn job_event() -> impl Strategy<Value = JobEvent> {
    (
        text(),
        prop::sample::select(vec![
            JobEventKind::Submitted,
            JobEventKind::Started,
            JobEventKind::Completed,
            JobEventKind::Cancelled,
        ]),
        any::<i64>(),
        any::<i32>(),
        option::of(any::<i64>()),
        option::of(any::<i64>()),
        vec(operation(), 0..4),
        option::of(any::<i32>()),
        option::of(text()),
    )
        .prop_map(
            |(job_id, kind, event_time, priority, due_date, release_time, operations, oi, m)| {
                JobEvent {
                    job_id,
                    kind,
                    event_time,
                    priority,
                    due_date,
                    release_time,
                    operations,
                    operation_index: oi,
                    machine_id: m,
                }
            },
        )
}

pub fn machine_event() -> impl Strategy<Value = MachineEvent> {
    (
        text(),
        prop::sample::select(vec![
            MachineEventKind::CycleCompleted,
            MachineEventKind::Fault,
            MachineEventKind::MaintenanceStarted,
            MachineEventKind::MaintenanceFinished,
            MachineEventKind::Heartbeat,
        ]),
        any::<i64>(),
        option::of(text()),
        option::of(text()),
        option::of(any::<i64>()),
        option::of(text()),
        option::of(text()),
        option::of(any::<bool>()),
    )
        .prop_map(
            |(
                machine_id,
                kind,
                event_time,
                job_id,
                part_id,
                cycle_time_ms,
                fault_code,
                detail,
                busy,
            )| {
                MachineEvent {
                    machine_id,
                    kind,
                    event_time,
                    job_id,
                    part_id,
                    cycle_time_ms,
                    fault_code,
                    detail,
                    busy,
                }
            },
        )
}

pub fn bbox() -> impl Strategy<Value = BoundingBox> {
    (finite(), finite(), finite(), finite()).prop_map(|(x, y, width, height)| BoundingBox {
        x,
        y,
        width,
        height,
    })
}

pub fn defect() -> impl Strategy<Value = Defect> {
    (
        (text(), source(), text(), text(), any::<i64>()),
        (any::<bool>(), text(), finite(), option::of(bbox())),
        (text(), text(), option::of(text())),
    )
        .prop_map(
            |(
                (event_id, source, machine_id, part_id, event_time),
                (defect_detected, defect_type, confidence, bbox),
                (model_name, model_version, request_id),
            )| Defect {
                event_id,
                source,
                machine_id,
                part_id,
                event_time,
                defect_detected,
                defect_type,
                confidence,
                bbox,
                model_name,
                model_version,
                request_id,
            },
        )
}

pub fn machine_status() -> impl Strategy<Value = MachineStatus> {
    prop::sample::select(vec![
        MachineStatus::Idle,
        MachineStatus::Running,
        MachineStatus::Warning,
        MachineStatus::Error,
        MachineStatus::Maintenance,
        MachineStatus::Offline,
    ])
}

pub fn urgency() -> impl Strategy<Value = Urgency> {
    prop::sample::select(vec![
        Urgency::Critical,
        Urgency::High,
        Urgency::Medium,
        Urgency::Low,
    ])
}

pub fn twin_state() -> impl Strategy<Value = TwinState> {
    (
        (text(), source(), text(), any::<i64>(), machine_status()),
        (
            option::of(machine_status()),
            finite(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            finite(),
        ),
        (
            option::of(finite()),
            option::of(finite()),
            option::of(finite()),
            option::of(finite()),
            any::<i64>(),
            text(),
        ),
    )
        .prop_map(
            |(
                (event_id, source, machine_id, event_time, status),
                (previous_status, health_score, cycles, defects, parts_inspected, defect_rate),
                (temperature, vibration, pressure, speed, last_seen, reason),
            )| TwinState {
                event_id,
                source,
                machine_id,
                event_time,
                status,
                previous_status,
                health_score,
                cycles,
                defects,
                parts_inspected,
                defect_rate,
                temperature,
                vibration,
                pressure,
                speed,
                last_seen,
                reason,
            },
        )
}

pub fn failure_prediction() -> impl Strategy<Value = FailurePrediction> {
    (
        (
            text(),
            source(),
            text(),
            any::<i64>(),
            finite(),
            finite(),
            urgency(),
        ),
        (finite(), finite(), finite(), option::of(finite()), text()),
        (
            btree_map(text(), text(), 0..4),
            vec(
                (text(), finite(), finite()).prop_map(|(name, value, contribution)| {
                    FeatureContribution {
                        name,
                        value,
                        contribution,
                    }
                }),
                0..5,
            ),
        ),
    )
        .prop_map(
            |(
                (event_id, source, machine_id, event_time, p, ttf, urgency),
                (probability_1d, probability_3d, probability_7d, rul_hours, recommended_action),
                (model_versions, top_features),
            )| FailurePrediction {
                event_id,
                source,
                machine_id,
                event_time,
                failure_probability: p,
                time_to_failure_hours: ttf,
                urgency,
                probability_1d,
                probability_3d,
                probability_7d,
                rul_hours,
                recommended_action,
                model_versions,
                top_features,
            },
        )
}

pub fn maintenance_request() -> impl Strategy<Value = MaintenanceRequest> {
    (
        (text(), source(), text(), any::<i64>(), text()),
        (
            prop::sample::select(vec![MaintenanceAction::Open, MaintenanceAction::Close]),
            urgency(),
            text(),
            option::of(text()),
        ),
    )
        .prop_map(
            |(
                (event_id, source, machine_id, event_time, request_id),
                (action, urgency, reason, prediction_event_id),
            )| MaintenanceRequest {
                event_id,
                source,
                machine_id,
                event_time,
                request_id,
                action,
                urgency,
                reason,
                prediction_event_id,
            },
        )
}

pub fn operation_move() -> impl Strategy<Value = OperationMove> {
    (
        text(),
        any::<i32>(),
        text(),
        any::<i64>(),
        any::<i64>(),
        option::of(text()),
        option::of(any::<i64>()),
    )
        .prop_map(
            |(
                job_id,
                operation_index,
                machine_id,
                start,
                end,
                previous_machine_id,
                previous_start,
            )| {
                OperationMove {
                    job_id,
                    operation_index,
                    machine_id,
                    start,
                    end,
                    previous_machine_id,
                    previous_start,
                }
            },
        )
}

pub fn planned_operation() -> impl Strategy<Value = PlannedOperation> {
    (
        text(),
        any::<i32>(),
        text(),
        any::<i64>(),
        any::<i64>(),
        any::<bool>(),
    )
        .prop_map(
            |(job_id, operation_index, machine_id, start, end, started)| PlannedOperation {
                job_id,
                operation_index,
                machine_id,
                start,
                end,
                started,
            },
        )
}

pub fn schedule_change() -> impl Strategy<Value = ScheduleChange> {
    (
        text(),
        source(),
        any::<i64>(),
        any::<i64>(),
        text(),
        any::<i64>(),
        finite(),
        vec(operation_move(), 0..5),
        vec(planned_operation(), 0..5),
    )
        .prop_map(
            |(
                event_id,
                source,
                event_time,
                plan_version,
                reason,
                makespan_ms,
                objective,
                moves,
                plan,
            )| {
                ScheduleChange {
                    event_id,
                    source,
                    event_time,
                    plan_version,
                    reason,
                    makespan_ms,
                    objective,
                    moves,
                    plan,
                }
            },
        )
}

pub fn dead_letter() -> impl Strategy<Value = DeadLetter> {
    (
        text(),
        source(),
        any::<i64>(),
        prop::sample::select(vec![
            DeadLetterReason::NotWireFormat,
            DeadLetterReason::UnknownSchema,
            DeadLetterReason::Undecodable,
            DeadLetterReason::InvalidKey,
            DeadLetterReason::InvalidEvent,
            DeadLetterReason::ProcessingError,
        ]),
        text(),
        option::of(text()),
        bytes(),
        bytes(),
    )
        .prop_map(
            |(event_id, source, event_time, reason_type, reason, processor, key, payload)| {
                DeadLetter {
                    event_id,
                    source,
                    event_time,
                    reason_type,
                    reason,
                    processor,
                    key,
                    payload,
                }
            },
        )
}

/// Any payload of any topic.
pub fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        sensor_reading().prop_map(Payload::from),
        image().prop_map(Payload::from),
        job_event().prop_map(Payload::from),
        machine_event().prop_map(Payload::from),
        defect().prop_map(Payload::from),
        twin_state().prop_map(Payload::from),
        failure_prediction().prop_map(Payload::from),
        maintenance_request().prop_map(Payload::from),
        schedule_change().prop_map(Payload::from),
        dead_letter().prop_map(Payload::from),
    ]
}
