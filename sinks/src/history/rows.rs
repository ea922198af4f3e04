//! Row buffers of the history: one Arrow column set per topic (the views' column sets, so a
//! history table has the same columns as its view) plus the record's place in the log
//! (`log_partition`, `log_offset`, `log_origin`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, Int64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use twinline_queries::views::columns::ColumnSet;
use twinline_queries::views::tables::{
    DeadLetterColumns, DefectColumns, FailurePredictionColumns, ImageColumns, JobEventColumns,
    MachineEventColumns, MaintenanceRequestColumns, ScheduleColumns, SensorReadingColumns,
    TwinStateColumns,
};
use twinline_queries::views::{AppendRows, ViewEvent};
use twinline_schemas::{Payload, Topic};

/// The log columns every history table ends with.
pub const LOG_COLUMNS: [&str; 3] = ["log_partition", "log_offset", "log_origin"];

/// Rows of one topic waiting to be written.
pub trait TopicRows: Send {
    /// Appends the rows of one record; returns how many (list-valued events give several).
    fn append(&mut self, event: &ViewEvent<'_>, origin: u64) -> usize;
    /// Moves the rows out as one batch (the buffer is empty afterwards).
    fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError>;
}

struct Rows<C: AppendRows> {
    cols: C,
    partition: Int32Builder,
    offset: Int64Builder,
    origin: Int64Builder,
    schema: SchemaRef,
}

impl<C: AppendRows> TopicRows for Rows<C> {
    fn append(&mut self, event: &ViewEvent<'_>, origin: u64) -> usize {
        let n = self.cols.append(event);
        let p = i32::try_from(event.partition).unwrap_or(i32::MAX);
        let o = i64::try_from(event.offset).unwrap_or(i64::MAX);
        let g = i64::try_from(origin).unwrap_or(i64::MAX);
        for _ in 0..n {
            self.partition.append_value(p);
            self.offset.append_value(o);
            self.origin.append_value(g);
        }
        n
    }

    fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut arrays: Vec<ArrayRef> = self.cols.finish_all();
        arrays.push(Arc::new(self.partition.finish()));
        arrays.push(Arc::new(self.offset.finish()));
        arrays.push(Arc::new(self.origin.finish()));
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

fn with_log_columns(base: SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(LOG_COLUMNS[0], DataType::Int32, false));
    fields.push(Field::new(LOG_COLUMNS[1], DataType::Int64, false));
    fields.push(Field::new(LOG_COLUMNS[2], DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

fn rows<C: AppendRows>(capacity: usize) -> Box<dyn TopicRows> {
    Box::new(Rows::<C> {
        cols: C::with_capacity(capacity),
        partition: Int32Builder::with_capacity(capacity),
        offset: Int64Builder::with_capacity(capacity),
        origin: Int64Builder::with_capacity(capacity),
        schema: with_log_columns(C::schema()),
    })
}

/// A new row buffer for `topic`.
pub fn new_rows(topic: Topic, capacity: usize) -> Box<dyn TopicRows> {
    match topic {
        Topic::SensorReadings => rows::<SensorReadingColumns>(capacity),
        Topic::Images => rows::<ImageColumns>(capacity),
        Topic::JobEvents => rows::<JobEventColumns>(capacity),
        Topic::MachineEvents => rows::<MachineEventColumns>(capacity),
        Topic::Defects => rows::<DefectColumns>(capacity),
        Topic::TwinState => rows::<TwinStateColumns>(capacity),
        Topic::FailurePredictions => rows::<FailurePredictionColumns>(capacity),
        Topic::MaintenanceRequests => rows::<MaintenanceRequestColumns>(capacity),
        Topic::ScheduleChanges => rows::<ScheduleColumns>(capacity),
        Topic::DeadLetters => rows::<DeadLetterColumns>(capacity),
    }
}

/// The schema of `topic`'s history table (its column set, then the log columns).
pub fn history_schema(topic: Topic) -> SchemaRef {
    let base = match topic {
        Topic::SensorReadings => SensorReadingColumns::schema(),
        Topic::Images => ImageColumns::schema(),
        Topic::JobEvents => JobEventColumns::schema(),
        Topic::MachineEvents => MachineEventColumns::schema(),
        Topic::Defects => DefectColumns::schema(),
        Topic::TwinState => TwinStateColumns::schema(),
        Topic::FailurePredictions => FailurePredictionColumns::schema(),
        Topic::MaintenanceRequests => MaintenanceRequestColumns::schema(),
        Topic::ScheduleChanges => ScheduleColumns::schema(),
        Topic::DeadLetters => DeadLetterColumns::schema(),
    };
    with_log_columns(base)
}

/// The history table of `topic`: its name with underscores (`sensor_readings`, `twin_state`).
pub fn table_name(topic: Topic) -> String {
    topic.name().replace('-', "_")
}

/// The machine a record is filed under: its machine for per-machine topics, `_plant` for
/// plant-wide ones (job events, schedule changes, dead letters).
pub fn machine_of(payload: &Payload) -> &str {
    match payload {
        Payload::SensorReading(r) => &r.machine_id,
        Payload::Image(r) => &r.machine_id,
        Payload::MachineEvent(r) => &r.machine_id,
        Payload::Defect(r) => &r.machine_id,
        Payload::TwinState(r) => &r.machine_id,
        Payload::FailurePrediction(r) => &r.machine_id,
        Payload::MaintenanceRequest(r) => &r.machine_id,
        Payload::JobEvent(_) | Payload::ScheduleChange(_) | Payload::DeadLetter(_) => PLANT,
    }
}

/// Directory value of plant-wide records.
pub const PLANT: &str = "_plant";
