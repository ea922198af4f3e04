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
//! - `schedule`: `((factory_id, plan_version), job_id, operation_index)`, every plan, written
//!   before `schedule_current` (`(factory_id)` → the newest `plan_version`) points at it, so a
//!   reader never sees a plan half written.
//!
//! A batch retried after a failure, or the whole log replayed into an empty keyspace, therefore
//! leaves exactly the rows a single clean pass leaves.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use tracing::info;
use twinline_schemas::{FailurePrediction, Payload, ScheduleChange, TwinState};

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
}

/// The records of a stretch of the derived topics, coalesced to what the tables keep.
#[derive(Debug, Default, Clone)]
pub struct SinkBatch {
    twin_latest: BTreeMap<String, TwinState>,
    twin_history: Vec<TwinState>,
    predictions_latest: BTreeMap<String, FailurePrediction>,
    schedules: Vec<ScheduleChange>,
    records: usize,
}

impl SinkBatch {
    /// Adds one decoded record (in log order per partition); other topics are ignored.
    pub fn push(&mut self, payload: &Payload) {
        match payload {
            Payload::TwinState(t) => {
                self.twin_latest.insert(t.machine_id.clone(), t.clone());
                self.twin_history.push(t.clone());
            }
            Payload::FailurePrediction(p) => {
                self.predictions_latest
                    .insert(p.machine_id.clone(), p.clone());
            }
            Payload::ScheduleChange(s) => self.schedules.push(s.clone()),
            _ => return,
        }
        self.records += 1;
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
}

struct Statements {
    twin: PreparedStatement,
    twin_history: PreparedStatement,
    prediction: PreparedStatement,
    schedule_op: PreparedStatement,
    schedule_current: PreparedStatement,
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
            PRIMARY KEY ((factory_id), machine_id))",
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
            makespan_ms bigint, objective double, operations int, event_id text,
            PRIMARY KEY ((factory_id)))",
    ),
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
        let stmts = Statements {
            twin: prep(format!(
                "INSERT INTO {ks}.twin_state (factory_id, machine_id, event_time, status, \
                 previous_status, health_score, cycles, defects, parts_inspected, defect_rate, \
                 temperature, vibration, pressure, speed, last_seen, reason, event_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
                 event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            schedule_op: prep(format!(
                "INSERT INTO {ks}.schedule (factory_id, plan_version, job_id, operation_index, \
                 machine_id, start, end, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            schedule_current: prep(format!(
                "INSERT INTO {ks}.schedule_current (factory_id, plan_version, event_time, \
                 reason, makespan_ms, objective, operations, event_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
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

        let twins = stream::iter(batch.twin_latest.values().map(|t| {
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
                },
            )
        }))
        .buffer_unordered(n);
        rows += run(twins, "twin_state").await?;

        let history = stream::iter(batch.twin_history.iter().map(|t| {
            self.session.execute_unpaged(
                &self.stmts.twin_history,
                (
                    f,
                    t.machine_id.as_str(),
                    day_bucket(t.event_time),
                    CqlTimestamp(t.event_time),
                    t.event_id.as_str(),
                    status_name(&t.status),
                    t.health_score,
                    t.cycles,
                    t.defects,
                    t.parts_inspected,
                    t.defect_rate,
                    t.temperature,
                    t.vibration,
                    t.pressure,
                    t.speed,
                    t.reason.as_str(),
                ),
            )
        }))
        .buffer_unordered(n);
        rows += run(history, "twin_state_history").await?;

        let predictions = stream::iter(batch.predictions_latest.values().map(|p| {
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
                ),
            )
        }))
        .buffer_unordered(n);
        rows += run(predictions, "failure_predictions").await?;

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
