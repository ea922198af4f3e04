//! Incremental views over the event streams: [`Views`] receives batches of decoded events from
//! the runtime, appends them to Arrow-backed tables (one [`View`] impl per table) and keeps the
//! in-memory model the API serves. Queries snapshot the tables; nothing is recomputed from the log.
//!
//! Retention: the big append-only tables (`sensor_readings`, `twin_state_history`, and the other
//! derived streams) keep the newest `max_rows` rows ([`ViewConfig`]), dropping whole batches,
//! oldest first. Full history is the Parquet sink's job, not this crate's.

mod append;
pub mod columns;
mod model;
mod provider;
pub mod tables;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, TableProvider};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use twinline_schemas::{Payload, Topic, Urgency};

pub use append::{AppendRows, AppendView};
pub use model::{
    DashboardStats, FactoryState, FactoryStatistics, HistoryEntry, LatestPrediction, MachineDetail,
    MachinePredictions, MachineState, MaintenanceAlerts, OpenRequest, Prediction, PredictionList,
};
pub use provider::{ViewTable, ViewsSchema};

use model::Model;
use tables::{
    CurrentScheduleView, CurrentTwinStateView, DeadLetterColumns, DefectColumns,
    FailurePredictionColumns, MaintenanceRequestColumns, ScheduleColumns, SensorReadingColumns,
    TwinStateColumns,
};

/// One decoded log record handed to the views.
#[derive(Debug, Clone, Copy)]
pub struct ViewEvent<'a> {
    pub topic: Topic,
    pub partition: u32,
    pub offset: u64,
    pub payload: &'a Payload,
}

/// Sizes and retention of the views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewConfig {
    /// Reported as `factory_id` in the API's state document.
    pub factory_id: String,
    /// Rows per finished Arrow batch of append-only tables.
    pub batch_rows: usize,
    /// Retention of `sensor_readings`.
    pub sensor_readings_max_rows: usize,
    /// Retention of `twin_state_history`.
    pub twin_state_history_max_rows: usize,
    /// Retention of the other append-only tables (defects, dead letters, predictions, ...).
    pub other_max_rows: usize,
    /// Twin-state changes kept per machine for `GET /api/v1/digital-twin/machines/{id}`, and
    /// failure predictions kept per machine for `GET /api/v1/predictive/machines/{id}`.
    pub history_per_machine: usize,
}

impl Default for ViewConfig {
    fn default() -> Self {
        ViewConfig {
            factory_id: "factory-1".to_string(),
            batch_rows: 64 * 1024,
            // ~60 bytes a row: about 120 MB at the cap.
            sensor_readings_max_rows: 2_000_000,
            twin_state_history_max_rows: 1_000_000,
            other_max_rows: 1_000_000,
            history_per_machine: 200,
        }
    }
}

/// A table over one or more topics, maintained incrementally.
///
/// The runtime's batch reaches [`View::apply`] once (under the view's lock) when it holds at
/// least one event of the view's [`View::topics`]; the view must skip events of other topics.
pub trait View: Send + 'static {
    /// SQL table name.
    fn name(&self) -> &str;
    fn schema(&self) -> SchemaRef;
    /// Topics whose events change this table.
    fn topics(&self) -> &[Topic];
    fn apply(&mut self, events: &[ViewEvent<'_>]);
    /// The table's current rows. `&mut` so a view may cache or seal batches.
    fn snapshot(&mut self) -> Vec<RecordBatch>;
    fn num_rows(&self) -> usize;
}

pub(crate) type SharedView = Arc<Mutex<Box<dyn View>>>;

struct Registered {
    name: String,
    schema: SchemaRef,
    topic_mask: u16,
    view: SharedView,
}

fn topic_bit(topic: Topic) -> u16 {
    1u16 << topic.rank()
}

/// Topics that change the API's model (and so wake WebSocket clients).
const MODEL_TOPICS: [Topic; 4] = [
    Topic::TwinState,
    Topic::FailurePredictions,
    Topic::MaintenanceRequests,
    Topic::ScheduleChanges,
];

/// The API's state read back from where a pipeline served it (the Cassandra tables): what an
/// API instance without views of its own shows. Histories are oldest first, in log order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServedState {
    /// Every machine's current twin state and its recent twin states (the current one last).
    pub machines: Vec<(
        twinline_schemas::TwinState,
        Vec<twinline_schemas::TwinState>,
    )>,
    /// Every machine's latest failure prediction and its recent predictions (the latest last).
    pub predictions: Vec<(
        twinline_schemas::FailurePrediction,
        Vec<twinline_schemas::FailurePrediction>,
    )>,
    /// The open maintenance requests.
    pub open_requests: Vec<twinline_schemas::MaintenanceRequest>,
    /// The newest plan.
    pub schedule: Option<twinline_schemas::ScheduleChange>,
}

impl ServedState {
    /// Largest event time of the state (Unix ms).
    pub fn latest_event_time(&self) -> Option<i64> {
        let twins = self.machines.iter().map(|(t, _)| t.event_time);
        let predictions = self.predictions.iter().map(|(p, _)| p.event_time);
        let requests = self.open_requests.iter().map(|m| m.event_time);
        let schedule = self.schedule.iter().map(|s| s.event_time);
        twins
            .chain(predictions)
            .chain(requests)
            .chain(schedule)
            .max()
    }
}

/// Counts of what the views have seen since start.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ViewCounters {
    /// Events applied, by topic name.
    pub events_by_topic: BTreeMap<&'static str, u64>,
    /// Events of topics that no view or model reads.
    pub ignored: u64,
    /// Rows held, by table name.
    pub rows_by_table: BTreeMap<String, usize>,
}

/// All views plus the API model. `Send + Sync`; share it in an `Arc`.
pub struct Views {
    config: ViewConfig,
    registry: RwLock<Vec<Registered>>,
    model: Mutex<Model>,
    events_by_topic: [AtomicU64; Topic::ALL.len()],
    ignored: AtomicU64,
    /// Largest event time applied, `i64::MIN` before the first event.
    latest_event_time: AtomicI64,
    change_tx: watch::Sender<u64>,
}

impl Views {
    /// Views with every built-in table registered.
    pub fn new(config: ViewConfig) -> Self {
        let views = Views::empty(config);
        let c = views.config.clone();
        let br = c.batch_rows;
        views.register(Box::new(CurrentTwinStateView::default()));
        views.register(Box::new(AppendView::<TwinStateColumns>::new(
            "twin_state_history",
            &[Topic::TwinState],
            br,
            c.twin_state_history_max_rows,
        )));
        views.register(Box::new(AppendView::<SensorReadingColumns>::new(
            "sensor_readings",
            &[Topic::SensorReadings],
            br,
            c.sensor_readings_max_rows,
        )));
        views.register(Box::new(AppendView::<DefectColumns>::new(
            "defects",
            &[Topic::Defects],
            br,
            c.other_max_rows,
        )));
        views.register(Box::new(AppendView::<DeadLetterColumns>::new(
            "dead_letters",
            &[Topic::DeadLetters],
            br,
            c.other_max_rows,
        )));
        views.register(Box::new(AppendView::<FailurePredictionColumns>::new(
            "failure_predictions",
            &[Topic::FailurePredictions],
            br,
            c.other_max_rows,
        )));
        views.register(Box::new(AppendView::<MaintenanceRequestColumns>::new(
            "maintenance_requests",
            &[Topic::MaintenanceRequests],
            br,
            c.other_max_rows,
        )));
        views.register(Box::new(CurrentScheduleView::default()));
        views.register(Box::new(AppendView::<ScheduleColumns>::new(
            "schedule_changes",
            &[Topic::ScheduleChanges],
            br,
            c.other_max_rows,
        )));
        views
    }

    /// The views of an API-only instance: the tables a served state holds exactly (`twin_state`,
    /// the current twin state of every machine, and `schedule`, the newest plan), filled by
    /// [`Views::load_served`] only.
    pub fn served(config: ViewConfig) -> Self {
        let views = Views::empty(config);
        views.register(Box::new(CurrentTwinStateView::default()));
        views.register(Box::new(CurrentScheduleView::default()));
        views
    }

    /// Views with no table registered (the model is still maintained).
    pub fn empty(config: ViewConfig) -> Self {
        let (change_tx, _) = watch::channel(0);
        Views {
            model: Mutex::new(Model::new(config.history_per_machine)),
            config,
            registry: RwLock::new(Vec::new()),
            events_by_topic: std::array::from_fn(|_| AtomicU64::new(0)),
            ignored: AtomicU64::new(0),
            latest_event_time: AtomicI64::new(i64::MIN),
            change_tx,
        }
    }

    pub fn config(&self) -> &ViewConfig {
        &self.config
    }

    /// Adds a table; a table of the same name is replaced. Events applied before registration
    /// are not replayed into it.
    pub fn register(&self, view: Box<dyn View>) {
        let name = view.name().to_string();
        let schema = view.schema();
        let topic_mask = view.topics().iter().fold(0, |m, t| m | topic_bit(*t));
        let entry = Registered {
            name,
            schema,
            topic_mask,
            view: Arc::new(Mutex::new(view)),
        };
        let mut registry = self.registry.write();
        match registry.iter_mut().find(|r| r.name == entry.name) {
            Some(slot) => *slot = entry,
            None => registry.push(entry),
        }
    }

    /// Applies a batch of events: each interested view's lock is taken once, the model's lock
    /// once if the batch holds a model topic; events of topics nobody reads are only counted.
    pub fn apply(&self, events: &[ViewEvent<'_>]) {
        if events.is_empty() {
            return;
        }
        let mut counts = [0u64; Topic::ALL.len()];
        let mut max_time = i64::MIN;
        for e in events {
            counts[usize::from(e.topic.rank())] += 1;
            max_time = max_time.max(e.payload.event_time());
        }
        let batch_mask = Topic::ALL
            .iter()
            .filter(|t| counts[usize::from(t.rank())] > 0)
            .fold(0u16, |m, t| m | topic_bit(*t));

        let mut read_mask = 0u16;
        {
            let registry = self.registry.read();
            for r in registry.iter() {
                read_mask |= r.topic_mask;
                if r.topic_mask & batch_mask != 0 {
                    r.view.lock().apply(events);
                }
            }
        }
        let model_mask = MODEL_TOPICS.iter().fold(0u16, |m, t| m | topic_bit(*t));
        read_mask |= model_mask;
        let changed = batch_mask & model_mask != 0 && self.model.lock().apply(events);

        let mut ignored = 0;
        for (t, n) in Topic::ALL.iter().zip(counts) {
            if n > 0 {
                self.events_by_topic[usize::from(t.rank())].fetch_add(n, Ordering::Relaxed);
                if read_mask & topic_bit(*t) == 0 {
                    ignored += n;
                }
            }
        }
        if ignored > 0 {
            self.ignored.fetch_add(ignored, Ordering::Relaxed);
        }
        self.latest_event_time
            .fetch_max(max_time, Ordering::Relaxed);
        if changed {
            self.change_tx.send_modify(|seq| *seq += 1);
        }
    }

    /// Replaces the API model with a served state read back from Cassandra (an API instance
    /// that keeps no views of its own) and, when registered, the `twin_state` and `schedule`
    /// tables with the served state's; wakes WebSocket clients.
    pub fn load_served(&self, served: &ServedState) {
        let next = Model::from_served(self.config.history_per_machine, served);
        // The current-state tables, rebuilt from the served state and swapped in whole.
        let schedule = served.schedule.clone().map(Payload::ScheduleChange);
        let twins: Vec<Payload> = served
            .machines
            .iter()
            .map(|(t, _)| Payload::TwinState(t.clone()))
            .collect();
        let events: Vec<ViewEvent<'_>> = twins
            .iter()
            .chain(schedule.iter())
            .map(|p| ViewEvent {
                topic: p.topic(),
                partition: 0,
                offset: 0,
                payload: p,
            })
            .collect();
        let names = self.table_names();
        let mut tables: Vec<Box<dyn View>> = vec![
            Box::new(CurrentTwinStateView::default()),
            Box::new(CurrentScheduleView::default()),
        ];
        for table in &mut tables {
            if names.iter().any(|n| n == table.name()) {
                table.apply(&events);
            }
        }
        for table in tables {
            if names.iter().any(|n| n == table.name()) {
                self.register(table);
            }
        }
        {
            let mut model = self.model.lock();
            let predictions_changed = model.prediction_ids() != next.prediction_ids();
            let seq = model.predictions_seq + u64::from(predictions_changed);
            *model = next;
            model.predictions_seq = seq;
        }
        self.latest_event_time.store(
            served.latest_event_time().unwrap_or(i64::MIN),
            Ordering::Relaxed,
        );
        self.change_tx.send_modify(|seq| *seq += 1);
    }

    /// Change sequence number: bumped once per applied batch that changed the API model.
    pub fn change_seq(&self) -> u64 {
        *self.change_tx.borrow()
    }

    /// A receiver that wakes on every change of [`Views::change_seq`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.change_tx.subscribe()
    }

    /// Largest event time applied so far (Unix ms).
    pub fn latest_event_time(&self) -> Option<i64> {
        let t = self.latest_event_time.load(Ordering::Relaxed);
        (t != i64::MIN).then_some(t)
    }

    /// Event time of the newest event as RFC 3339, or the wall clock before any event.
    fn timestamp(&self) -> String {
        match self.latest_event_time() {
            Some(t) => crate::time::rfc3339_ms(t),
            None => crate::time::now_rfc3339(),
        }
    }

    pub fn factory_state(&self) -> FactoryState {
        let ts = self.timestamp();
        self.model.lock().factory_state(&self.config.factory_id, ts)
    }

    pub fn dashboard_stats(&self) -> DashboardStats {
        let ts = self.timestamp();
        self.model.lock().dashboard_stats(ts)
    }

    /// Number of failure predictions applied (0 = none yet); changes whenever the list may have.
    pub fn predictions_seq(&self) -> u64 {
        self.model.lock().predictions_seq
    }

    /// The newest plan (the latest `schedule-changes` event); `None` before the first one.
    pub fn schedule(&self) -> Option<Arc<twinline_schemas::ScheduleChange>> {
        self.model.lock().schedule.clone()
    }

    /// State and recent history of one machine; `None` if no twin state was seen for it.
    pub fn machine(&self, machine_id: &str) -> Option<MachineDetail> {
        self.model.lock().machine(machine_id)
    }

    /// Latest failure prediction of every machine (only those of `urgency`, if given), most
    /// urgent first; at most `limit` of them, `total` counting all that match.
    pub fn predictions(&self, urgency: Option<Urgency>, limit: Option<usize>) -> PredictionList {
        let ts = self.timestamp();
        self.model.lock().predictions(ts, urgency, limit)
    }

    /// Latest prediction, recent predictions (newest first) and open maintenance request of one
    /// machine; `None` if nothing was seen of it (no twin state, prediction or open request).
    pub fn machine_predictions(&self, machine_id: &str) -> Option<MachinePredictions> {
        self.model.lock().machine_predictions(machine_id)
    }

    pub fn counters(&self) -> ViewCounters {
        let events_by_topic = Topic::ALL
            .iter()
            .map(|t| {
                (
                    t.name(),
                    self.events_by_topic[usize::from(t.rank())].load(Ordering::Relaxed),
                )
            })
            .collect();
        let rows_by_table = self
            .registry
            .read()
            .iter()
            .map(|r| (r.name.clone(), r.view.lock().num_rows()))
            .collect();
        ViewCounters {
            events_by_topic,
            ignored: self.ignored.load(Ordering::Relaxed),
            rows_by_table,
        }
    }

    /// Names of the registered tables, in registration order.
    pub fn table_names(&self) -> Vec<String> {
        self.registry
            .read()
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    /// Current rows of a table (shares finished batches; copies the open one).
    pub fn snapshot(&self, table: &str) -> Option<(SchemaRef, Vec<RecordBatch>)> {
        let view = self.shared(table)?;
        let mut guard = view.lock();
        Some((guard.schema(), guard.snapshot()))
    }

    pub(crate) fn shared(&self, table: &str) -> Option<SharedView> {
        self.registry
            .read()
            .iter()
            .find(|r| r.name == table)
            .map(|r| r.view.clone())
    }

    /// A DataFusion table over one view.
    pub fn table_provider(&self, table: &str) -> Option<Arc<dyn TableProvider>> {
        let registry = self.registry.read();
        let r = registry.iter().find(|r| r.name == table)?;
        Some(Arc::new(ViewTable::new(r.schema.clone(), r.view.clone())))
    }

    /// A DataFusion schema whose tables are these views (tables registered later appear too).
    pub fn schema_provider(self: &Arc<Self>) -> Arc<dyn SchemaProvider> {
        Arc::new(ViewsSchema::new(self.clone()))
    }
}

// The runtime shares one `Views` between its tasks and the API.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Views>();
};
