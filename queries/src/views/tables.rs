//! The built-in tables: one column set and one `append` per table, plus `twin_state` (current
//! state, one row per machine) which is a keyed view rather than an append-only one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use arrow::array::{
    BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use twinline_schemas::{
    DeadLetterReason, JobEventKind, MachineEventKind, MachineStatus, MaintenanceAction, Payload,
    ScheduleChange, SensorKind, Source, Topic, TwinState, Urgency,
};

use super::append::AppendRows;
use super::columns::{columns, ts_type, ColumnSet};
use super::{View, ViewEvent};

/// Every status, in the schema's order.
pub const ALL_STATUSES: [MachineStatus; 6] = [
    MachineStatus::Idle,
    MachineStatus::Running,
    MachineStatus::Warning,
    MachineStatus::Error,
    MachineStatus::Maintenance,
    MachineStatus::Offline,
];

/// Every urgency, most urgent first (the schema's order).
pub const ALL_URGENCIES: [Urgency; 4] = [
    Urgency::Critical,
    Urgency::High,
    Urgency::Medium,
    Urgency::Low,
];

/// The urgency whose Avro symbol is `s`, ignoring ASCII case (`"critical"` or `"CRITICAL"`).
pub fn parse_urgency(s: &str) -> Option<Urgency> {
    ALL_URGENCIES
        .into_iter()
        .find(|u| u.symbol().eq_ignore_ascii_case(s))
}

fn sensor_symbol(s: SensorKind) -> &'static str {
    s.symbol()
}

fn action_symbol(a: MaintenanceAction) -> &'static str {
    match a {
        MaintenanceAction::Open => "OPEN",
        MaintenanceAction::Close => "CLOSE",
    }
}

fn dead_letter_symbol(r: DeadLetterReason) -> &'static str {
    match r {
        DeadLetterReason::NotWireFormat => "NOT_WIRE_FORMAT",
        DeadLetterReason::UnknownSchema => "UNKNOWN_SCHEMA",
        DeadLetterReason::Undecodable => "UNDECODABLE",
        DeadLetterReason::InvalidKey => "INVALID_KEY",
        DeadLetterReason::InvalidEvent => "INVALID_EVENT",
        DeadLetterReason::ProcessingError => "PROCESSING_ERROR",
    }
}

/// Partitions are small non-negative numbers; the clamp only guards a corrupt caller.
fn partition_i32(p: u32) -> i32 {
    i32::try_from(p).unwrap_or(i32::MAX)
}

fn offset_i64(o: u64) -> i64 {
    i64::try_from(o).unwrap_or(i64::MAX)
}

fn append_source(
    topic: &mut StringBuilder,
    partition: &mut Int32Builder,
    offset: &mut Int64Builder,
    source: &Source,
) {
    topic.append_value(&source.topic);
    partition.append_value(source.partition);
    offset.append_value(source.offset);
}

// ------------------------------------------------------------------------------------------
// sensor_readings
// ------------------------------------------------------------------------------------------

columns! {
    pub struct SensorReadingColumns {
        machine_id: StringBuilder => DataType::Utf8, false,
        sensor: StringBuilder => DataType::Utf8, false,
        value: Float64Builder => DataType::Float64, false,
        unit: StringBuilder => DataType::Utf8, false,
        event_time: TimestampMillisecondBuilder => ts_type(), false,
        partition: Int32Builder => DataType::Int32, false,
        offset: Int64Builder => DataType::Int64, false,
    }
}

impl AppendRows for SensorReadingColumns {
    #[inline]
    fn append(&mut self, event: &ViewEvent<'_>) -> usize {
        let Payload::SensorReading(r) = event.payload else {
            return 0;
        };
        self.machine_id.append_value(&r.machine_id);
        self.sensor.append_value(sensor_symbol(r.sensor));
        self.value.append_value(r.value);
        self.unit.append_value(&r.unit);
        self.event_time.append_value(r.event_time);
        self.partition.append_value(partition_i32(event.partition));
        self.offset.append_value(offset_i64(event.offset));
        1
    }
}

// ------------------------------------------------------------------------------------------
// twin_state_history and twin_state
// ------------------------------------------------------------------------------------------

columns! {
    pub struct TwinStateColumns {
        event_id: StringBuilder => DataType::Utf8, false,
        source_topic: StringBuilder => DataType::Utf8, false,
        source_partition: Int32Builder => DataType::Int32, false,
        source_offset: Int64Builder => DataType::Int64, false,
        machine_id: StringBuilder => DataType::Utf8, false,
        event_time: TimestampMillisecondBuilder => ts_type(), false,
        status: StringBuilder => DataType::Utf8, false,
        previous_status: StringBuilder => DataType::Utf8, true,
        health_score: Float64Builder => DataType::Float64, false,
        cycles: Int64Builder => DataType::Int64, false,
        defects: Int64Builder => DataType::Int64, false,
        parts_inspected: Int64Builder => DataType::Int64, false,
        defect_rate: Float64Builder => DataType::Float64, false,
        temperature: Float64Builder => DataType::Float64, true,
        vibration: Float64Builder => DataType::Float64, true,
        pressure: Float64Builder => DataType::Float64, true,
        speed: Float64Builder => DataType::Float64, true,
        last_seen: TimestampMillisecondBuilder => ts_type(), false,
        reason: StringBuilder => DataType::Utf8, false,
    }
}

impl TwinStateColumns {
    fn push(&mut self, s: &TwinState) {
        self.event_id.append_value(&s.event_id);
        append_source(
            &mut self.source_topic,
            &mut self.source_partition,
            &mut self.source_offset,
            &s.source,
        );
        self.machine_id.append_value(&s.machine_id);
        self.event_time.append_value(s.event_time);
        self.status.append_value(s.status.symbol());
        self.previous_status
            .append_option(s.previous_status.map(MachineStatus::symbol));
        self.health_score.append_value(s.health_score);
        self.cycles.append_value(s.cycles);
        self.defects.append_value(s.defects);
        self.parts_inspected.append_value(s.parts_inspected);
        self.defect_rate.append_value(s.defect_rate);
        self.temperature.append_option(s.temperature);
        self.vibration.append_option(s.vibration);
        self.pressure.append_option(s.pressure);
        self.speed.append_option(s.speed);
        self.last_seen.append_value(s.last_seen);
        self.reason.append_value(&s.reason);
    }
}

impl AppendRows for TwinStateColumns {
    fn append(&mut self, event: &ViewEvent<'_>) -> usize {
        let Payload::TwinState(s) = event.payload else {
            return 0;
        };
        self.push(s);
        1
    }
}

/// `twin_state`: the latest `TwinState` of every machine, one row each, ordered by machine id.
/// Updated per event in a map; the Arrow batch is rebuilt only when a query follows a change,
/// and costs O(machines), never O(history).
pub struct CurrentTwinStateView {
    topics: [Topic; 1],
    schema: SchemaRef,
    latest: BTreeMap<String, TwinState>,
    cached: Option<RecordBatch>,
}

impl Default for CurrentTwinStateView {
    fn default() -> Self {
        CurrentTwinStateView {
            topics: [Topic::TwinState],
            schema: TwinStateColumns::schema(),
            latest: BTreeMap::new(),
            cached: None,
        }
    }
}

impl View for CurrentTwinStateView {
    fn name(&self) -> &str {
        "twin_state"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn topics(&self) -> &[Topic] {
        &self.topics
    }

    fn apply(&mut self, events: &[ViewEvent<'_>]) {
        for event in events {
            if let Payload::TwinState(s) = event.payload {
                // get_mut first: the common case (known machine) then needs no key allocation.
                match self.latest.get_mut(&s.machine_id) {
                    Some(slot) => slot.clone_from(s),
                    None => {
                        self.latest.insert(s.machine_id.clone(), s.clone());
                    }
                }
                self.cached = None;
            }
        }
    }

    fn snapshot(&mut self) -> Vec<RecordBatch> {
        if self.cached.is_none() {
            let mut cols = TwinStateColumns::with_capacity(self.latest.len());
            for s in self.latest.values() {
                cols.push(s);
            }
            match RecordBatch::try_new(self.schema.clone(), cols.finish_all()) {
                Ok(batch) => self.cached = Some(batch),
                Err(e) => tracing::error!(error = %e, "cannot build twin_state batch"),
            }
        }
        self.cached.iter().cloned().collect()
    }

    fn num_rows(&self) -> usize {
        self.latest.len()
    }
}

// ------------------------------------------------------------------------------------------
// defects
// ------------------------------------------------------------------------------------------

columns! {
    pub struct DefectColumns {
        event_id: StringBuilder => DataType::Utf8, false,
        source_topic: StringBuilder => DataType::Utf8, false,
        source_partition: Int32Builder => DataType::Int32, false,
        source_offset: Int64Builder => DataType::Int64, false,
        machine_id: StringBuilder => DataType::Utf8, false,
        part_id: StringBuilder => DataType::Utf8, false,
        event_time: TimestampMillisecondBuilder => ts_type(), false,
        defect_detected: BooleanBuilder => DataType::Boolean, false,
        defect_type: StringBuilder => DataType::Utf8, false,
        confidence: Float64Builder => DataType::Float64, false,
        bbox_x: Float64Builder => DataType::Float64, true,
        bbox_y: Float64Builder => DataType::Float64, true,
        bbox_width: Float64Builder => DataType::Float64, true,
        bbox_height: Float64Builder => DataType::Float64, true,
        model_name: StringBuilder => DataType::Utf8, false,
        model_version: StringBuilder => DataType::Utf8, false,
        request_id: StringBuilder => DataType::Utf8, true,
    }
}

impl AppendRows for DefectColumns {
    fn append(&mut self, event: &ViewEvent<'_>) -> usize {
        let Payload::Defect(d) = event.payload else {
            return 0;
        };
        self.event_id.append_value(&d.event_id);
        append_source(
            &mut self.source_topic,
            &mut self.source_partition,
            &mut self.source_offset,
            &d.source,
        );
        self.machine_id.append_value(&d.machine_id);
        self.part_id.append_value(&d.part_id);
        self.event_time.append_value(d.event_time);
        self.defect_detected.append_value(d.defect_detected);
        self.defect_type.append_value(&d.defect_type);
        self.confidence.append_value(d.confidence);
        self.bbox_x.append_option(d.bbox.map(|b| b.x));
        self.bbox_y.append_option(d.bbox.map(|b| b.y));
        self.bbox_width.append_option(d.bbox.map(|b| b.width));
        self.bbox_height.append_option(d.bbox.map(|b| b.height));
        self.model_name.append_value(&d.model_name);
        self.model_version.append_value(&d.model_version);
        self.request_id.append_option(d.request_id.as_deref());
        1
    }
}

// ------------------------------------------------------------------------------------------
// dead_letters
// ------------------------------------------------------------------------------------------

/// Bytes of the original payload shown in `payload_hex_prefix`: enough to recognise a magic
/// byte and schema id, small enough that a dead-letter storm does not fill memory.
pub const DEAD_LETTER_HEX_PREFIX_BYTES: usize = 32;

columns! {
    pub struct DeadLetterColumns {
        event_id: StringBuilder => DataType::Utf8, false,
        source_topic: StringBuilder => DataType::Utf8, false,
        source_partition: Int32Builder => DataType::Int32, false,
        source_offset: Int64Builder => DataType::Int64, false,
        event_time: TimestampMillisecondBuilder => ts_type(), false,
        reason_type: StringBuilder => DataType::Utf8, false,
        reason: StringBuilder => DataType::Utf8, false,
        processor: StringBuilder => DataType::Utf8, true,
        key: StringBuilder => DataType::Utf8, false,
        payload_len: UInt64Builder => DataType::UInt64, false,
        payload_hex_prefix: StringBuilder => DataType::Utf8, false,
    }
}

impl AppendRows for DeadLetterColumns {
    fn append(&mut self, event: &ViewEvent<'_>) -> usize {
        let Payload::DeadLetter(d) = event.payload else {
            return 0;
        };
        self.event_id.append_value(&d.event_id);
        append_source(
            &mut self.source_topic,
            &mut self.source_partition,
            &mut self.source_offset,
            &d.source,
        );
        self.event_time.append_value(d.event_time);
        self.reason_type
            .append_value(dead_letter_symbol(d.reason_type));
        self.reason.append_value(&d.reason);
        self.processor.append_option(d.processor.as_deref());
        self.key.append_value(String::from_utf8_lossy(&d.key));
        self.payload_len.append_value(d.payload.len() as u64);
        let mut hex = String::with_capacity(DEAD_LETTER_HEX_PREFIX_BYTES * 2);
        for b in d.payload.iter().take(DEAD_LETTER_HEX_PREFIX_BYTES) {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
        }
        self.payload_hex_prefix.append_value(hex);
        1
    }
}

// ------------------------------------------------------------------------------------------
// failure_predictions
// ------------------------------------------------------------------------------------------

columns! {
    pub struct FailurePredictionColumns {
        event_id: StringBuilder => DataType::Utf8, false,
        source_topic: StringBuilder => DataType::Utf8, false,
        source_partition: Int32Builder => DataType::Int32, false,
        source_offset: Int64Builder => DataType::Int64, false,
        machine_id: StringBuilder => DataType::Utf8, false,
        event_time: TimestampMillisecondBuilder => ts_type(), false,
        failure_probability: Float64Builder => DataType::Float64, false,
        time_to_failure_hours: Float64Builder => DataType::Float64, false,
        urgency: StringBuilder => DataType::Utf8, false,
        probability_1d: Float64Builder => DataType::Float64, false,
        probability_3d: Float64Builder => DataType::Float64, false,
        probability_7d: Float64Builder => DataType::Float64, false,
        rul_hours: Float64Builder => DataType::Float64, true,
        recommended_action: StringBuilder => DataType::Utf8, false,
        model_versions: StringBuilder => DataType::Utf8, false,
        top_features: StringBuilder => DataType::Utf8, false,
    }
}

impl AppendRows for FailurePredictionColumns {
    fn append(&mut self, event: &ViewEvent<'_>) -> usize {
        let Payload::FailurePrediction(p) = event.payload else {
            return 0;
        };
        self.event_id.append_value(&p.event_id);
        append_source(
            &mut self.source_topic,
            &mut self.source_partition,
            &mut self.source_offset,
            &p.source,
        );
        self.machine_id.append_value(&p.machine_id);
        self.event_time.append_value(p.event_time);
        self.failure_probability.append_value(p.failure_probability);
        self.time_to_failure_hours
            .append_value(p.time_to_failure_hours);
        self.urgency.append_value(p.urgency.symbol());
        self.probability_1d.append_value(p.probability_1d);
        self.probability_3d.append_value(p.probability_3d);
        self.probability_7d.append_value(p.probability_7d);
        self.rul_hours.append_option(p.rul_hours);
        self.recommended_action.append_value(&p.recommended_action);
        // Nested values as JSON text: queryable with string functions, and no nested Arrow types
        // for clients to cope with. Serializing maps/structs of strings and numbers cannot fail.
        self.model_versions
            .append_value(serde_json::to_string(&p.model_versions).unwrap_or_default());
        self.top_features
            .append_value(serde_json::to_string(&p.top_features).unwrap_or_default());
        1
    }
}

// ------------------------------------------------------------------------------------------
// maintenance_requests
// ------------------------------------------------------------------------------------------

columns! {
    pub struct MaintenanceRequestColumns {
        event_id: StringBuilder => DataType::Utf8, false,
        source_topic: StringBuilder => DataType::Utf8, false,
        source_partition: Int32Builder => DataType::Int32, false,
        source_offset: Int64Builder => DataType::Int64, false,
        machine_id: StringBuilder => DataType::Utf8, false,
        event_time: TimestampMillisecondBuilder => ts_type(), false,
        request_id: StringBuilder => DataType::Utf8, false,
        action: StringBuilder => DataType::Utf8, false,
        urgency: StringBuilder => DataType::Utf8, false,
        reason: StringBuilder => DataType::Utf8, false,
        prediction_event_id: StringBuilder => DataType::Utf8, true,
    }
}

impl AppendRows for MaintenanceRequestColumns {
    fn append(&mut self, event: &ViewEvent<'_>) -> usize {
        let Payload::MaintenanceRequest(m) = event.payload else {
            return 0;
        };
        self.event_id.append_value(&m.event_id);
        append_source(
            &mut self.source_topic,
            &mut self.source_partition,
            &mut self.source_offset,
            &m.source,
        );
        self.machine_id.append_value(&m.machine_id);
        self.event_time.append_value(m.event_time);
        self.request_id.append_value(&m.request_id);
        self.action.append_value(action_symbol(m.action));
        self.urgency.append_value(m.urgency.symbol());
        self.reason.append_value(&m.reason);
        self.prediction_event_id
            .append_option(m.prediction_event_id.as_deref());
        1
    }
}

// ------------------------------------------------------------------------------------------
// schedule (the current plan: one row per operation of the latest plan version)
// ------------------------------------------------------------------------------------------

columns! {
    pub struct CurrentScheduleColumns {
        plan_version: Int64Builder => DataType::Int64, false,
        planned_at: TimestampMillisecondBuilder => ts_type(), false,
        reason: StringBuilder => DataType::Utf8, false,
        job_id: StringBuilder => DataType::Utf8, false,
        operation_index: Int32Builder => DataType::Int32, false,
        machine_id: StringBuilder => DataType::Utf8, false,
        start_time: TimestampMillisecondBuilder => ts_type(), false,
        end_time: TimestampMillisecondBuilder => ts_type(), false,
        started: BooleanBuilder => DataType::Boolean, false,
    }
}

/// `schedule`: the operations of the latest plan (from the newest `schedule-changes` event).
pub struct CurrentScheduleView {
    topics: [Topic; 1],
    schema: SchemaRef,
    latest: Option<ScheduleChange>,
    cached: Option<RecordBatch>,
}

impl Default for CurrentScheduleView {
    fn default() -> Self {
        CurrentScheduleView {
            topics: [Topic::ScheduleChanges],
            schema: CurrentScheduleColumns::schema(),
            latest: None,
            cached: None,
        }
    }
}

impl View for CurrentScheduleView {
    fn name(&self) -> &str {
        "schedule"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn topics(&self) -> &[Topic] {
        &self.topics
    }

    fn apply(&mut self, events: &[ViewEvent<'_>]) {
        // Only the newest plan matters: take the last change of the batch.
        if let Some(c) = events.iter().rev().find_map(|e| match e.payload {
            Payload::ScheduleChange(c) => Some(c),
            _ => None,
        }) {
            self.latest = Some(c.clone());
            self.cached = None;
        }
    }

    fn snapshot(&mut self) -> Vec<RecordBatch> {
        if self.cached.is_none() {
            let plan = self.latest.as_ref().map_or(&[][..], |c| c.plan.as_slice());
            let mut cols = CurrentScheduleColumns::with_capacity(plan.len());
            if let Some(c) = &self.latest {
                for p in plan {
                    cols.plan_version.append_value(c.plan_version);
                    cols.planned_at.append_value(c.event_time);
                    cols.reason.append_value(&c.reason);
                    cols.job_id.append_value(&p.job_id);
                    cols.operation_index.append_value(p.operation_index);
                    cols.machine_id.append_value(&p.machine_id);
                    cols.start_time.append_value(p.start);
                    cols.end_time.append_value(p.end);
                    cols.started.append_value(p.started);
                }
            }
            match RecordBatch::try_new(self.schema.clone(), cols.finish_all()) {
                Ok(batch) => self.cached = Some(batch),
                Err(e) => tracing::error!(error = %e, "cannot build schedule batch"),
            }
        }
        self.cached.iter().cloned().collect()
    }

    fn num_rows(&self) -> usize {
        self.latest.as_ref().map_or(0, |c| c.plan.len())
    }
}

// ------------------------------------------------------------------------------------------
// schedule_changes (one row per operation move of every plan version)
// ------------------------------------------------------------------------------------------

columns! {
    pub struct ScheduleColumns {
        event_id: StringBuilder => DataType::Utf8, false,
        source_topic: StringBuilder => DataType::Utf8, false,
        source_partition: Int32Builder => DataType::Int32, false,
        source_offset: Int64Builder => DataType::Int64, false,
        event_time: TimestampMillisecondBuilder => ts_type(), false,
        plan_version: Int64Builder => DataType::Int64, false,
        reason: StringBuilder => DataType::Utf8, false,
        makespan_ms: Int64Builder => DataType::Int64, false,
        objective: Float64Builder => DataType::Float64, false,
        job_id: StringBuilder => DataType::Utf8, false,
        operation_index: Int32Builder => DataType::Int32, false,
        machine_id: StringBuilder => DataType::Utf8, false,
        start_time: TimestampMillisecondBuilder => ts_type(), false,
        end_time: TimestampMillisecondBuilder => ts_type(), false,
        previous_machine_id: StringBuilder => DataType::Utf8, true,
        previous_start_time: TimestampMillisecondBuilder => ts_type(), true,
    }
}

impl AppendRows for ScheduleColumns {
    fn append(&mut self, event: &ViewEvent<'_>) -> usize {
        let Payload::ScheduleChange(c) = event.payload else {
            return 0;
        };
        for m in &c.moves {
            self.event_id.append_value(&c.event_id);
            append_source(
                &mut self.source_topic,
                &mut self.source_partition,
                &mut self.source_offset,
                &c.source,
            );
            self.event_time.append_value(c.event_time);
            self.plan_version.append_value(c.plan_version);
            self.reason.append_value(&c.reason);
            self.makespan_ms.append_value(c.makespan_ms);
            self.objective.append_value(c.objective);
            self.job_id.append_value(&m.job_id);
            self.operation_index.append_value(m.operation_index);
            self.machine_id.append_value(&m.machine_id);
            self.start_time.append_value(m.start);
            self.end_time.append_value(m.end);
            self.previous_machine_id
                .append_option(m.previous_machine_id.as_deref());
            self.previous_start_time.append_option(m.previous_start);
        }
        c.moves.len()
    }
}

// ------------------------------------------------------------------------------------------
// inputs kept only in history: images (metadata, not pixels), machine_events, job_events
// ------------------------------------------------------------------------------------------

fn machine_event_symbol(k: MachineEventKind) -> &'static str {
    match k {
        MachineEventKind::CycleCompleted => "CYCLE_COMPLETED",
        MachineEventKind::Fault => "FAULT",
        MachineEventKind::MaintenanceStarted => "MAINTENANCE_STARTED",
        MachineEventKind::MaintenanceFinished => "MAINTENANCE_FINISHED",
        MachineEventKind::Heartbeat => "HEARTBEAT",
    }
}

fn job_event_symbol(k: JobEventKind) -> &'static str {
    match k {
        JobEventKind::Submitted => "SUBMITTED",
        JobEventKind::Started => "STARTED",
        JobEventKind::Completed => "COMPLETED",
        JobEventKind::Cancelled => "CANCELLED",
    }
}

// `images`: one row per camera image, without the pixels (the log keeps those).
columns! {
    pub struct ImageColumns {
        machine_id: StringBuilder => DataType::Utf8, false,
        part_id: StringBuilder => DataType::Utf8, false,
        media_type: StringBuilder => DataType::Utf8, false,
        bytes: UInt64Builder => DataType::UInt64, false,
        event_time: TimestampMillisecondBuilder => ts_type(), false,
        request_id: StringBuilder => DataType::Utf8, true,
        partition: Int32Builder => DataType::Int32, false,
        offset: Int64Builder => DataType::Int64, false,
    }
}

impl AppendRows for ImageColumns {
    fn append(&mut self, event: &ViewEvent<'_>) -> usize {
        let Payload::Image(i) = event.payload else {
            return 0;
        };
        self.machine_id.append_value(&i.machine_id);
        self.part_id.append_value(&i.part_id);
        self.media_type.append_value(&i.media_type);
        self.bytes.append_value(i.data.len() as u64);
        self.event_time.append_value(i.event_time);
        self.request_id.append_option(i.request_id.as_deref());
        self.partition.append_value(partition_i32(event.partition));
        self.offset.append_value(offset_i64(event.offset));
        1
    }
}

// `machine_events`: one row per controller event.
columns! {
    pub struct MachineEventColumns {
        machine_id: StringBuilder => DataType::Utf8, false,
        kind: StringBuilder => DataType::Utf8, false,
        event_time: TimestampMillisecondBuilder => ts_type(), false,
        job_id: StringBuilder => DataType::Utf8, true,
        part_id: StringBuilder => DataType::Utf8, true,
        cycle_time_ms: Int64Builder => DataType::Int64, true,
        fault_code: StringBuilder => DataType::Utf8, true,
        detail: StringBuilder => DataType::Utf8, true,
        busy: BooleanBuilder => DataType::Boolean, true,
        partition: Int32Builder => DataType::Int32, false,
        offset: Int64Builder => DataType::Int64, false,
    }
}

impl AppendRows for MachineEventColumns {
    fn append(&mut self, event: &ViewEvent<'_>) -> usize {
        let Payload::MachineEvent(m) = event.payload else {
            return 0;
        };
        self.machine_id.append_value(&m.machine_id);
        self.kind.append_value(machine_event_symbol(m.kind));
        self.event_time.append_value(m.event_time);
        self.job_id.append_option(m.job_id.as_deref());
        self.part_id.append_option(m.part_id.as_deref());
        self.cycle_time_ms.append_option(m.cycle_time_ms);
        self.fault_code.append_option(m.fault_code.as_deref());
        self.detail.append_option(m.detail.as_deref());
        self.busy.append_option(m.busy);
        self.partition.append_value(partition_i32(event.partition));
        self.offset.append_value(offset_i64(event.offset));
        1
    }
}

// `job_events`: one row per job event; the operations' eligible machines as JSON.
columns! {
    pub struct JobEventColumns {
        job_id: StringBuilder => DataType::Utf8, false,
        kind: StringBuilder => DataType::Utf8, false,
        event_time: TimestampMillisecondBuilder => ts_type(), false,
        priority: Int32Builder => DataType::Int32, false,
        due_date: TimestampMillisecondBuilder => ts_type(), true,
        release_time: TimestampMillisecondBuilder => ts_type(), true,
        operations: StringBuilder => DataType::Utf8, true,
        operation_index: Int32Builder => DataType::Int32, true,
        machine_id: StringBuilder => DataType::Utf8, true,
        partition: Int32Builder => DataType::Int32, false,
        offset: Int64Builder => DataType::Int64, false,
    }
}

impl AppendRows for JobEventColumns {
    fn append(&mut self, event: &ViewEvent<'_>) -> usize {
        let Payload::JobEvent(j) = event.payload else {
            return 0;
        };
        self.job_id.append_value(&j.job_id);
        self.kind.append_value(job_event_symbol(j.kind));
        self.event_time.append_value(j.event_time);
        self.priority.append_value(j.priority);
        self.due_date.append_option(j.due_date);
        self.release_time.append_option(j.release_time);
        if j.operations.is_empty() {
            self.operations.append_null();
        } else {
            let ops: Vec<Vec<(&str, i64)>> = j
                .operations
                .iter()
                .map(|o| {
                    o.eligible
                        .iter()
                        .map(|e| (e.machine_id.as_str(), e.duration_ms))
                        .collect()
                })
                .collect();
            self.operations
                .append_value(serde_json::to_string(&ops).unwrap_or_default());
        }
        self.operation_index.append_option(j.operation_index);
        self.machine_id.append_option(j.machine_id.as_deref());
        self.partition.append_value(partition_i32(event.partition));
        self.offset.append_value(offset_i64(event.offset));
        1
    }
}
