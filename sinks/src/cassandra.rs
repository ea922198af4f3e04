//! The Scylla/Cassandra sink: served state (current twin state, current failure predictions, the
//! current schedule) and a day-bucketed twin-state history, through the `scylla` driver with
//! prepared statements and bounded concurrency. Keyspace and tables are created on connect.
//!
//! # Idempotence
//!
//! Every row is keyed by what it describes, never by when or how often it was written, and the
//! runtime hands batches in log order and writes one batch at a time:
//!
//! - `twin_state`, `failure_predictions`: `((factory_id), machine_id)`, the latest record of the
//!   batch per machine (a later batch overwrites an earlier one: log order is kept);
//! - `twin_state_history`: `((factory_id, machine_id, day), event_time, event_id)`, one row per
//!   twin-state record;
//! - `maintenance_open`: `((factory_id), request_id)`, the open maintenance requests (an OPEN
//!   record inserts the row, its CLOSE deletes it; a batch keeps only each request's last action);
//! - `served_history`: `((factory_id, machine_id, stream, segment), log_offset DESC)`, every
//!   twin state (`stream` = `twin`) and failure prediction (`prediction`) of a machine in log
//!   order: `log_offset` is the record's offset in its derived partition (one partition per
//!   machine) and `segment` is `log_offset >> 16`, which bounds a Cassandra partition;
//! - `served_segments`: `((factory_id, machine_id, stream), segment DESC)`, the segments a
//!   machine has rows in, so a reader finds its newest records without scanning;
//! - `schedule`: `((factory_id, plan_version), job_id, operation_index)`, every plan, written
//!   before `schedule_current` (`(factory_id)` → the newest `plan_version`) points at it, so a
//!   reader never sees a plan half written.
//!
//! A batch retried after a failure, or the whole log replayed into an empty keyspace, therefore
//! leaves exactly the rows a single clean pass leaves.
//!
//! # Serving from the tables
//!
//! Every row that the read API shows carries `record`, the derived record itself in its lossless
//! JSON form ([`Payload::to_json`]). [`CassandraSink::read_served`] and
//! [`CassandraSink::read_recent`] rebuild from the current-state tables and `served_history`
//! exactly what the pipeline's own views hold (recent histories in log order, not event-time
//! order: a twin state caused by a late defect is newer than the reading before it), so API
//! instances can serve from Cassandra and keep no state of their own. Each batch writes the
//! history tables first and the current-state tables last: a reader that sees a new current row
//! finds its history row too.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use std::collections::BTreeSet;
use tracing::info;

use twinline_schemas::{
    FailurePrediction, MaintenanceAction, MaintenanceRequest, Payload, ScheduleChange, Topic,
    TwinState,
};

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct CassandraConfig {
    /// Contact points, `host:port`.
    pub hosts: Vec<String>,
    pub keyspace: String,
    /// Replication factor of the keyspace when it is created (SimpleStrategy).
    pub replication: u32,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// Partition key of every table: the plant these rows belong to.
    pub factory_id: String,
    /// Connection and request timeout.
    pub timeout: Duration,
}

impl CassandraConfig {
    pub fn new(hosts: &str, factory_id: &str) -> Self {
        CassandraConfig {
            hosts: hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(String::from)
                .collect(),
            keyspace: "twinline".into(),
            replication: 1,
            concurrency: 64,
            factory_id: factory_id.into(),
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CassandraError {
    #[error("invalid Cassandra settings: {0}")]
    Config(String),
    #[error("connecting to Cassandra at {hosts}: {reason}")]
    Connect { hosts: String, reason: String },
    #[error("Cassandra schema setup ({what}): {reason}")]
    Schema { what: String, reason: String },
    #[error("Cassandra write to {table}: {reason}")]
    Write { table: &'static str, reason: String },
    #[error("Cassandra read of {table}: {reason}")]
    Read { table: &'static str, reason: String },
}

/// Bits of `log_offset` below a `served_history` segment.
pub const SEGMENT_BITS: u32 = 16;

/// A history stream of [`CassandraSink::read_recent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HistoryStream {
    /// `twin-state` records.
    Twin,
    /// `failure-predictions` records.
    Prediction,
}

impl HistoryStream {
    /// The `stream` column of `served_history`.
    pub fn name(self) -> &'static str {
        match self {
            HistoryStream::Twin => "twin",
            HistoryStream::Prediction => "prediction",
        }
    }
}

/// The records of a stretch of the derived topics, coalesced to what the tables keep.
#[derive(Debug, Default, Clone)]
pub struct SinkBatch {
    twin_latest: BTreeMap<String, (TwinState, String)>,
    twin_history: Vec<TwinState>,
    predictions_latest: BTreeMap<String, (FailurePrediction, String)>,
    /// `(machine_id, stream, log_offset, record)` of every twin state and prediction.
    served: Vec<(String, &'static str, u64, String)>,
    /// Request id -> the OPEN record and its JSON while open, `None` once closed.
    requests: BTreeMap<String, Option<(MaintenanceRequest, String)>>,
    /// `(machine_id, stream, segment)` of every `served` row.
    segments: BTreeSet<(String, &'static str, i64)>,
    schedules: Vec<ScheduleChange>,
    records: usize,
}

/// The lossless JSON form of a record, as the `record` columns keep it.
fn record_json(payload: &Payload) -> String {
    payload.to_json().to_string()
}

impl SinkBatch {
    /// Adds one decoded record at `log_offset` in its partition (in log order per partition);
    /// other topics are ignored.
    pub fn push(&mut self, payload: &Payload, log_offset: u64) {
        match payload {
            Payload::TwinState(t) => {
                let json = record_json(payload);
                self.serve(&t.machine_id, HistoryStream::Twin, log_offset, &json);
                self.twin_latest
                    .insert(t.machine_id.clone(), (t.clone(), json));
                self.twin_history.push(t.clone());
            }
            Payload::FailurePrediction(p) => {
                let json = record_json(payload);
                self.serve(&p.machine_id, HistoryStream::Prediction, log_offset, &json);
                self.predictions_latest
                    .insert(p.machine_id.clone(), (p.clone(), json));
            }
            Payload::MaintenanceRequest(m) => {
                let state = match m.action {
                    MaintenanceAction::Open => Some((m.clone(), record_json(payload))),
                    MaintenanceAction::Close => None,
                };
                self.requests.insert(m.request_id.clone(), state);
            }
            Payload::ScheduleChange(s) => self.schedules.push(s.clone()),
            _ => return,
        }
        self.records += 1;
    }

    fn serve(&mut self, machine: &str, stream: HistoryStream, log_offset: u64, json: &str) {
        let segment = (log_offset >> SEGMENT_BITS) as i64;
        self.segments
            .insert((machine.to_string(), stream.name(), segment));
        self.served.push((
            machine.to_string(),
            stream.name(),
            log_offset,
            json.to_string(),
        ));
    }

    /// Records pushed.
    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

/// Rows written by one [`CassandraSink::write`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub rows: usize,
}

/// One `twin_state` row (17 values: more than the driver's tuples take), bound by name.
#[derive(scylla::SerializeRow)]
struct TwinRow<'a> {
    factory_id: &'a str,
    machine_id: &'a str,
    event_time: CqlTimestamp,
    status: String,
    previous_status: Option<String>,
    health_score: f64,
    cycles: i64,
    defects: i64,
    parts_inspected: i64,
    defect_rate: f64,
    temperature: Option<f64>,
    vibration: Option<f64>,
    pressure: Option<f64>,
    speed: Option<f64>,
    last_seen: CqlTimestamp,
    reason: &'a str,
    event_id: &'a str,
    record: &'a str,
}

/// One `twin_state_history` row, bound by name.
#[derive(scylla::SerializeRow)]
struct TwinHistoryRow<'a> {
    factory_id: &'a str,
    machine_id: &'a str,
    day: String,
    event_time: CqlTimestamp,
    event_id: &'a str,
    status: String,
    health_score: f64,
    cycles: i64,
    defects: i64,
    parts_inspected: i64,
    defect_rate: f64,
    temperature: Option<f64>,
    vibration: Option<f64>,
    pressure: Option<f64>,
    speed: Option<f64>,
    reason: &'a str,
}

struct Statements {
    twin: PreparedStatement,
    twin_history: PreparedStatement,
    prediction: PreparedStatement,
    served: PreparedStatement,
    request_open: PreparedStatement,
    request_close: PreparedStatement,
    segment: PreparedStatement,
    schedule_op: PreparedStatement,
    schedule_current: PreparedStatement,
    read_twins: PreparedStatement,
    read_predictions: PreparedStatement,
    read_requests: PreparedStatement,
    read_schedule: PreparedStatement,
    read_segments: PreparedStatement,
    read_served: PreparedStatement,
}

/// A connected sink; see the module docs.
pub struct CassandraSink {
    session: Session,
    stmts: Statements,
    cfg: CassandraConfig,
}

/// The tables, in the order they are created (`{ks}` is the keyspace).
pub const TABLES: &[(&str, &str)] = &[
    (
        "twin_state",
        "CREATE TABLE IF NOT EXISTS {ks}.twin_state (
            factory_id text, machine_id text, event_time timestamp, status text,
            previous_status text, health_score double, cycles bigint, defects bigint,
            parts_inspected bigint, defect_rate double, temperature double, vibration double,
            pressure double, speed double, last_seen timestamp, reason text, event_id text,
            record text,
            PRIMARY KEY ((factory_id), machine_id))",
    ),
    (
        "twin_state_history",
        "CREATE TABLE IF NOT EXISTS {ks}.twin_state_history (
            factory_id text, machine_id text, day text, event_time timestamp, event_id text,
            status text, health_score double, cycles bigint, defects bigint,
            parts_inspected bigint, defect_rate double, temperature double, vibration double,
            pressure double, speed double, reason text,
            PRIMARY KEY ((factory_id, machine_id, day), event_time, event_id))
            WITH CLUSTERING ORDER BY (event_time ASC, event_id ASC)",
    ),
    (
        "failure_predictions",
        "CREATE TABLE IF NOT EXISTS {ks}.failure_predictions (
            factory_id text, machine_id text, event_time timestamp, failure_probability double,
            time_to_failure_hours double, urgency text, probability_1d double,
            probability_3d double, probability_7d double, rul_hours double,
            recommended_action text, model_versions map<text, text>, event_id text,
            record text,
            PRIMARY KEY ((factory_id), machine_id))",
    ),
    (
        "maintenance_open",
        "CREATE TABLE IF NOT EXISTS {ks}.maintenance_open (
            factory_id text, request_id text, machine_id text, event_time timestamp,
            urgency text, reason text, event_id text, record text,
            PRIMARY KEY ((factory_id), request_id))",
    ),
    (
        "served_history",
        "CREATE TABLE IF NOT EXISTS {ks}.served_history (
            factory_id text, machine_id text, stream text, segment bigint, log_offset bigint,
            record text,
            PRIMARY KEY ((factory_id, machine_id, stream, segment), log_offset))
            WITH CLUSTERING ORDER BY (log_offset DESC)",
    ),
    (
        "served_segments",
        "CREATE TABLE IF NOT EXISTS {ks}.served_segments (
            factory_id text, machine_id text, stream text, segment bigint,
            PRIMARY KEY ((factory_id, machine_id, stream), segment))
            WITH CLUSTERING ORDER BY (segment DESC)",
    ),
    (
        "schedule",
        "CREATE TABLE IF NOT EXISTS {ks}.schedule (
            factory_id text, plan_version bigint, job_id text, operation_index int,
            machine_id text, start timestamp, end timestamp, started boolean,
            PRIMARY KEY ((factory_id, plan_version), job_id, operation_index))",
    ),
    (
        "schedule_current",
        "CREATE TABLE IF NOT EXISTS {ks}.schedule_current (
            factory_id text, plan_version bigint, event_time timestamp, reason text,
            makespan_ms bigint, objective double, operations int, event_id text, record text,
            PRIMARY KEY ((factory_id)))",
    ),
];

/// Columns added to tables after their first release: added to a keyspace created before them.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("twin_state", "record", "text"),
    ("failure_predictions", "record", "text"),
    ("schedule_current", "record", "text"),
];

fn valid_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// `YYYY-MM-DD` (UTC) of a Unix-ms time: the history's bucket.
pub fn day_bucket(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "invalid".into())
}

fn status_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

impl CassandraSink {
    /// Connects, creates the keyspace and tables if needed, and prepares the statements.
    pub async fn connect(cfg: CassandraConfig) -> Result<CassandraSink, CassandraError> {
        if cfg.hosts.is_empty() {
            return Err(CassandraError::Config("no contact points".into()));
        }
        if !valid_identifier(&cfg.keyspace) {
            return Err(CassandraError::Config(format!(
                "keyspace {:?} is not a plain CQL identifier (letters, digits, _; at most 48)",
                cfg.keyspace
            )));
        }
        let session = SessionBuilder::new()
            .known_nodes(&cfg.hosts)
            .connection_timeout(cfg.timeout)
            .build()
            .await
            .map_err(|e| CassandraError::Connect {
                hosts: cfg.hosts.join(","),
                reason: e.to_string(),
            })?;
        let ks = &cfg.keyspace;
        let schema = |what: &str, e: String| CassandraError::Schema {
            what: what.to_string(),
            reason: e,
        };
        session
            .query_unpaged(
                format!(
                    "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = \
                     {{'class': 'SimpleStrategy', 'replication_factor': {}}}",
                    cfg.replication
                ),
                (),
            )
            .await
            .map_err(|e| schema("keyspace", e.to_string()))?;
        for (name, ddl) in TABLES {
            session
                .query_unpaged(ddl.replace("{ks}", ks), ())
                .await
                .map_err(|e| schema(name, e.to_string()))?;
        }
        for (table, column, kind) in ADDED_COLUMNS {
            let present = session
                .query_unpaged(
                    "SELECT column_name FROM system_schema.columns \
                     WHERE keyspace_name = ? AND table_name = ?",
                    (ks.as_str(), *table),
                )
                .await
                .map_err(|e| schema(table, e.to_string()))?
                .into_rows_result()
                .map_err(|e| schema(table, e.to_string()))?
                .rows::<(String,)>()
                .map_err(|e| schema(table, e.to_string()))?
                .filter_map(Result::ok)
                .any(|(c,)| c == *column);
            if !present {
                info!(
                    table,
                    column, "adding a column to a table created by an older twinline"
                );
                session
                    .query_unpaged(format!("ALTER TABLE {ks}.{table} ADD {column} {kind}"), ())
                    .await
                    .map_err(|e| schema(table, e.to_string()))?;
            }
        }
        session
            .await_schema_agreement()
            .await
            .map_err(|e| schema("agreement", e.to_string()))?;
        let prep = |cql: String| {
            let session = &session;
            async move {
                session
                    .prepare(cql.clone())
                    .await
                    .map_err(|e| schema(&cql, e.to_string()))
            }
        };
        // Every current row of one factory in a table.
        let read_all = |table: &str| {
            prep(format!(
                "SELECT record FROM {ks}.{table} WHERE factory_id = ?"
            ))
        };
        let stmts = Statements {
            twin: prep(format!(
                "INSERT INTO {ks}.twin_state (factory_id, machine_id, event_time, status, \
                 previous_status, health_score, cycles, defects, parts_inspected, defect_rate, \
                 temperature, vibration, pressure, speed, last_seen, reason, event_id, record) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            twin_history: prep(format!(
                "INSERT INTO {ks}.twin_state_history (factory_id, machine_id, day, event_time, \
                 event_id, status, health_score, cycles, defects, parts_inspected, defect_rate, \
                 temperature, vibration, pressure, speed, reason) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            prediction: prep(format!(
                "INSERT INTO {ks}.failure_predictions (factory_id, machine_id, event_time, \
                 failure_probability, time_to_failure_hours, urgency, probability_1d, \
                 probability_3d, probability_7d, rul_hours, recommended_action, model_versions, \
                 event_id, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            served: prep(format!(
                "INSERT INTO {ks}.served_history (factory_id, machine_id, stream, segment, \
                 log_offset, record) VALUES (?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            request_open: prep(format!(
                "INSERT INTO {ks}.maintenance_open (factory_id, request_id, machine_id, \
                 event_time, urgency, reason, event_id, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            request_close: prep(format!(
                "DELETE FROM {ks}.maintenance_open WHERE factory_id = ? AND request_id = ?"
            ))
            .await?,
            segment: prep(format!(
                "INSERT INTO {ks}.served_segments (factory_id, machine_id, stream, segment) \
                 VALUES (?, ?, ?, ?)"
            ))
            .await?,
            read_twins: read_all("twin_state").await?,
            read_predictions: read_all("failure_predictions").await?,
            read_requests: read_all("maintenance_open").await?,
            read_schedule: read_all("schedule_current").await?,
            read_segments: prep(format!(
                "SELECT segment FROM {ks}.served_segments \
                 WHERE factory_id = ? AND machine_id = ? AND stream = ?"
            ))
            .await?,
            read_served: prep(format!(
                "SELECT log_offset, record FROM {ks}.served_history \
                 WHERE factory_id = ? AND machine_id = ? AND stream = ? AND segment = ? LIMIT ?"
            ))
            .await?,
            schedule_op: prep(format!(
                "INSERT INTO {ks}.schedule (factory_id, plan_version, job_id, operation_index, \
                 machine_id, start, end, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            schedule_current: prep(format!(
                "INSERT INTO {ks}.schedule_current (factory_id, plan_version, event_time, \
                 reason, makespan_ms, objective, operations, event_id, record) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
        };
        info!(hosts = %cfg.hosts.join(","), keyspace = %cfg.keyspace, "Cassandra sink connected");
        Ok(CassandraSink {
            session,
            stmts,
            cfg,
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn config(&self) -> &CassandraConfig {
        &self.cfg
    }

    /// Writes a batch (see the module docs for what each table keeps). On an error some rows may
    /// be written: writing the same batch again is safe.
    pub async fn write(&self, batch: &SinkBatch) -> Result<WriteStats, CassandraError> {
        let f = self.cfg.factory_id.as_str();
        let n = self.cfg.concurrency.max(1);
        let mut rows = 0;

        // History first, current state last (see "Serving from the tables").
        let segments = stream::iter(batch.segments.iter().map(|(machine, stream, segment)| {
            self.session.execute_unpaged(
                &self.stmts.segment,
                (f, machine.as_str(), *stream, *segment),
            )
        }))
        .buffer_unordered(n);
        rows += run(segments, "served_segments").await?;

        let served = stream::iter(batch.served.iter().map(|(machine, stream, offset, json)| {
            self.session.execute_unpaged(
                &self.stmts.served,
                (
                    f,
                    machine.as_str(),
                    *stream,
                    (*offset >> SEGMENT_BITS) as i64,
                    *offset as i64,
                    json.as_str(),
                ),
            )
        }))
        .buffer_unordered(n);
        rows += run(served, "served_history").await?;

        let history = stream::iter(batch.twin_history.iter().map(|t| {
            self.session.execute_unpaged(
                &self.stmts.twin_history,
                TwinHistoryRow {
                    factory_id: f,
                    machine_id: t.machine_id.as_str(),
                    day: day_bucket(t.event_time),
                    event_time: CqlTimestamp(t.event_time),
                    event_id: t.event_id.as_str(),
                    status: status_name(&t.status),
                    health_score: t.health_score,
                    cycles: t.cycles,
                    defects: t.defects,
                    parts_inspected: t.parts_inspected,
                    defect_rate: t.defect_rate,
                    temperature: t.temperature,
                    vibration: t.vibration,
                    pressure: t.pressure,
                    speed: t.speed,
                    reason: t.reason.as_str(),
                },
            )
        }))
        .buffer_unordered(n);
        rows += run(history, "twin_state_history").await?;

        let twins = stream::iter(batch.twin_latest.values().map(|(t, json)| {
            self.session.execute_unpaged(
                &self.stmts.twin,
                TwinRow {
                    factory_id: f,
                    machine_id: t.machine_id.as_str(),
                    event_time: CqlTimestamp(t.event_time),
                    status: status_name(&t.status),
                    previous_status: t.previous_status.as_ref().map(status_name),
                    health_score: t.health_score,
                    cycles: t.cycles,
                    defects: t.defects,
                    parts_inspected: t.parts_inspected,
                    defect_rate: t.defect_rate,
                    temperature: t.temperature,
                    vibration: t.vibration,
                    pressure: t.pressure,
                    speed: t.speed,
                    last_seen: CqlTimestamp(t.last_seen),
                    reason: t.reason.as_str(),
                    event_id: t.event_id.as_str(),
                    record: json.as_str(),
                },
            )
        }))
        .buffer_unordered(n);
        rows += run(twins, "twin_state").await?;

        let predictions = stream::iter(batch.predictions_latest.values().map(|(p, json)| {
            self.session.execute_unpaged(
                &self.stmts.prediction,
                (
                    f,
                    p.machine_id.as_str(),
                    CqlTimestamp(p.event_time),
                    p.failure_probability,
                    p.time_to_failure_hours,
                    status_name(&p.urgency),
                    p.probability_1d,
                    p.probability_3d,
                    p.probability_7d,
                    p.rul_hours,
                    p.recommended_action.as_str(),
                    &p.model_versions,
                    p.event_id.as_str(),
                    json.as_str(),
                ),
            )
        }))
        .buffer_unordered(n);
        rows += run(predictions, "failure_predictions").await?;

        let requests = stream::iter(batch.requests.iter().map(|(id, open)| async move {
            match open {
                Some((m, json)) => {
                    self.session
                        .execute_unpaged(
                            &self.stmts.request_open,
                            (
                                f,
                                id.as_str(),
                                m.machine_id.as_str(),
                                CqlTimestamp(m.event_time),
                                status_name(&m.urgency),
                                m.reason.as_str(),
                                m.event_id.as_str(),
                                json.as_str(),
                            ),
                        )
                        .await
                }
                None => {
                    self.session
                        .execute_unpaged(&self.stmts.request_close, (f, id.as_str()))
                        .await
                }
            }
        }))
        .buffer_unordered(n);
        rows += run(requests, "maintenance_open").await?;

        if let Some(latest) = batch.schedules.iter().max_by_key(|s| s.plan_version) {
            let ops = stream::iter(batch.schedules.iter().flat_map(|s| {
                s.plan.iter().map(move |o| {
                    self.session.execute_unpaged(
                        &self.stmts.schedule_op,
                        (
                            f,
                            s.plan_version,
                            o.job_id.as_str(),
                            o.operation_index,
                            o.machine_id.as_str(),
                            CqlTimestamp(o.start),
                            CqlTimestamp(o.end),
                            o.started,
                        ),
                    )
                })
            }))
            .buffer_unordered(n);
            rows += run(ops, "schedule").await?;
            let s = latest;
            let json = record_json(&Payload::ScheduleChange(s.clone()));
            self.session
                .execute_unpaged(
                    &self.stmts.schedule_current,
                    (
                        f,
                        s.plan_version,
                        CqlTimestamp(s.event_time),
                        s.reason.as_str(),
                        s.makespan_ms,
                        s.objective,
                        s.plan.len() as i32,
                        s.event_id.as_str(),
                        json.as_str(),
                    ),
                )
                .await
                .map_err(|e| CassandraError::Write {
                    table: "schedule_current",
                    reason: e.to_string(),
                })?;
            rows += 1;
        }
        Ok(WriteStats { rows })
    }

    /// The current rows of the served tables: every machine's twin state and latest failure
    /// prediction, the open maintenance requests and the newest plan (rows written by a
    /// twinline older than the `record` column are skipped).
    pub async fn read_served(&self) -> Result<ServedRows, CassandraError> {
        let f = self.cfg.factory_id.as_str();
        let twins = self.read_records(&self.stmts.read_twins, (f,), "twin_state", Topic::TwinState);
        let predictions = self.read_records(
            &self.stmts.read_predictions,
            (f,),
            "failure_predictions",
            Topic::FailurePredictions,
        );
        let requests = self.read_records(
            &self.stmts.read_requests,
            (f,),
            "maintenance_open",
            Topic::MaintenanceRequests,
        );
        let schedule = self.read_records(
            &self.stmts.read_schedule,
            (f,),
            "schedule_current",
            Topic::ScheduleChanges,
        );
        let (twins, predictions, requests, schedule) =
            futures::try_join!(twins, predictions, requests, schedule)?;
        let mut rows = ServedRows::default();
        for p in twins {
            if let Payload::TwinState(t) = p {
                rows.twins.push(t);
            }
        }
        for p in predictions {
            if let Payload::FailurePrediction(x) = p {
                rows.predictions.push(x);
            }
        }
        for p in requests {
            if let Payload::MaintenanceRequest(m) = p {
                rows.open_requests.push(m);
            }
        }
        rows.schedule = schedule.into_iter().find_map(|p| match p {
            Payload::ScheduleChange(s) => Some(s),
            _ => None,
        });
        Ok(rows)
    }

    async fn read_records(
        &self,
        stmt: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
        table: &'static str,
        topic: Topic,
    ) -> Result<Vec<Payload>, CassandraError> {
        let err = |reason: String| CassandraError::Read { table, reason };
        let result = self
            .session
            .execute_unpaged(stmt, values)
            .await
            .map_err(|e| err(e.to_string()))?
            .into_rows_result()
            .map_err(|e| err(e.to_string()))?;
        let mut out = Vec::new();
        for row in result
            .rows::<(Option<String>,)>()
            .map_err(|e| err(e.to_string()))?
        {
            let (record,) = row.map_err(|e| err(e.to_string()))?;
            if let Some(json) = record {
                out.push(decode_record(topic, &json).map_err(err)?);
            }
        }
        Ok(out)
    }

    /// The newest `n` records of one machine's `stream`, oldest first (log order).
    pub async fn read_recent(
        &self,
        stream: HistoryStream,
        machine_id: &str,
        n: usize,
    ) -> Result<Vec<Payload>, CassandraError> {
        let f = self.cfg.factory_id.as_str();
        let err = |reason: String| CassandraError::Read {
            table: "served_history",
            reason,
        };
        // Newest segment first (the clustering order).
        let segments: Vec<i64> = self
            .session
            .execute_unpaged(&self.stmts.read_segments, (f, machine_id, stream.name()))
            .await
            .map_err(|e| err(e.to_string()))?
            .into_rows_result()
            .map_err(|e| err(e.to_string()))?
            .rows::<(i64,)>()
            .map_err(|e| err(e.to_string()))?
            .map(|r| r.map(|(s,)| s))
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
        let topic = match stream {
            HistoryStream::Twin => Topic::TwinState,
            HistoryStream::Prediction => Topic::FailurePredictions,
        };
        let mut newest_first: Vec<Payload> = Vec::new();
        for segment in segments {
            if newest_first.len() >= n {
                break;
            }
            let limit = (n - newest_first.len()).min(i32::MAX as usize) as i32;
            let result = self
                .session
                .execute_unpaged(
                    &self.stmts.read_served,
                    (f, machine_id, stream.name(), segment, limit),
                )
                .await
                .map_err(|e| err(e.to_string()))?
                .into_rows_result()
                .map_err(|e| err(e.to_string()))?;
            for row in result
                .rows::<(i64, Option<String>)>()
                .map_err(|e| err(e.to_string()))?
            {
                let (_, json) = row.map_err(|e| err(e.to_string()))?;
                if let Some(json) = json {
                    newest_first.push(decode_record(topic, &json).map_err(err)?);
                }
            }
        }
        newest_first.reverse();
        Ok(newest_first)
    }
}

/// What [`CassandraSink::read_served`] returns.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ServedRows {
    pub twins: Vec<TwinState>,
    pub predictions: Vec<FailurePrediction>,
    pub open_requests: Vec<MaintenanceRequest>,
    pub schedule: Option<ScheduleChange>,
}

fn decode_record(topic: Topic, json: &str) -> Result<Payload, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("record is not JSON: {e}"))?;
    Payload::from_json(topic, value).map_err(|e| e.to_string())
}

async fn run<S, T, E>(s: S, table: &'static str) -> Result<usize, CassandraError>
where
    S: futures::Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    s.map_err(|e| CassandraError::Write {
        table,
        reason: e.to_string(),
    })
    .try_fold(0usize, |n, _| async move { Ok(n + 1) })
    .await
}
