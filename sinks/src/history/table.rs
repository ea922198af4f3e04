//! The `history` schema: one SQL table per topic over the manifest's Parquet files. A scan
//! takes the manifest as of its planning (so a concurrent flush or compaction never shows a row
//! twice or not at all), keeps only the files whose machine and event-time range can match the
//! query's filters, and lets DataFusion's Parquet reader prune row groups by the rest.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::TableType;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use twinline_schemas::Topic;

use super::rows::{history_schema, table_name};
use super::store::{FileEntry, HistoryStore};

/// One topic's history as a table.
#[derive(Debug)]
pub struct HistoryTable {
    store: Arc<HistoryStore>,
    topic: Topic,
    schema: SchemaRef,
}

impl HistoryTable {
    pub fn new(store: Arc<HistoryStore>, topic: Topic) -> Self {
        HistoryTable {
            store,
            topic,
            schema: history_schema(topic),
        }
    }
}

/// What the filters say about the rows a scan can return.
#[derive(Debug, Default)]
struct Pruning {
    machines: Option<BTreeSet<String>>,
    min_time: Option<i64>,
    max_time: Option<i64>,
}

impl Pruning {
    fn from_filters(filters: &[Expr]) -> Self {
        let mut p = Pruning::default();
        for f in filters {
            p.visit(f);
        }
        p
    }

    fn visit(&mut self, e: &Expr) {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if *op == Operator::And {
                    self.visit(left);
                    self.visit(right);
                    return;
                }
                let (col, lit, op) = match (column_name(left), literal(right)) {
                    (Some(c), Some(l)) => (c, l, *op),
                    _ => match (literal(left), column_name(right)) {
                        (Some(l), Some(c)) => match op.swap() {
                            Some(o) => (c, l, o),
                            None => return,
                        },
                        _ => return,
                    },
                };
                self.constrain(&col, &lit, op);
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) => {
                if let (Some(c), Some(lo), Some(hi)) =
                    (column_name(expr), literal(low), literal(high))
                {
                    self.constrain(&c, &lo, Operator::GtEq);
                    self.constrain(&c, &hi, Operator::LtEq);
                }
            }
            Expr::InList(list)
                if !list.negated && column_name(&list.expr).as_deref() == Some("machine_id") =>
            {
                let values: Option<BTreeSet<String>> = list
                    .list
                    .iter()
                    .map(|e| literal(e).and_then(|s| string_of(&s)))
                    .collect();
                if let Some(v) = values {
                    self.restrict_machines(v);
                }
            }
            _ => {}
        }
    }

    fn constrain(&mut self, col: &str, lit: &ScalarValue, op: Operator) {
        match col {
            "machine_id" if op == Operator::Eq => {
                if let Some(s) = string_of(lit) {
                    self.restrict_machines(BTreeSet::from([s]));
                }
            }
            "event_time" => {
                let Some(ms) = millis_of(lit) else { return };
                match op {
                    Operator::Eq => {
                        self.min_time = Some(self.min_time.map_or(ms, |m| m.max(ms)));
                        self.max_time = Some(self.max_time.map_or(ms, |m| m.min(ms)));
                    }
                    Operator::Gt | Operator::GtEq => {
                        self.min_time = Some(self.min_time.map_or(ms, |m| m.max(ms)));
                    }
                    Operator::Lt | Operator::LtEq => {
                        self.max_time = Some(self.max_time.map_or(ms, |m| m.min(ms)));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn restrict_machines(&mut self, set: BTreeSet<String>) {
        self.machines = Some(match self.machines.take() {
            Some(old) => old.intersection(&set).cloned().collect(),
            None => set,
        });
    }

    fn keeps(&self, f: &FileEntry) -> bool {
        if let Some(m) = &self.machines {
            // Plant-wide files hold rows of any machine.
            if f.machine != super::rows::PLANT && !m.contains(&f.machine) {
                return false;
            }
        }
        if self.min_time.is_some_and(|t| f.max_time < t) {
            return false;
        }
        if self.max_time.is_some_and(|t| f.min_time > t) {
            return false;
        }
        true
    }
}

fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Literal(v, _) => v.cast_to(c.field.data_type()).ok(),
            _ => None,
        },
        _ => None,
    }
}

fn string_of(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        _ => None,
    }
}

/// An instant as Unix milliseconds: timestamp literals of any unit, or RFC 3339 text.
pub(crate) fn millis_of(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampMillisecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1000),
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(x.div_euclid(1000)),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(x.div_euclid(1_000_000)),
        other => string_of(other).and_then(|s| {
            chrono::DateTime::parse_from_rfc3339(s.trim())
                .ok()
                .map(|t| t.timestamp_millis())
        }),
    }
}

#[async_trait]
impl TableProvider for HistoryTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Used to skip files and row groups; DataFusion still applies every filter.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let manifest = self.store.manifest();
        let pruning = Pruning::from_filters(filters);
        let files: Vec<&FileEntry> = manifest
            .files_of(self.topic)
            .filter(|f| pruning.keeps(f))
            .collect();
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let url = HistoryStore::object_store_url();
        state
            .runtime_env()
            .register_object_store(url.as_ref(), self.store.object_store());
        let mut source = ParquetSource::new(self.schema.clone());
        if let Some(pred) = conjunction(filters.iter().cloned()) {
            let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
            if let Ok(physical) = state.create_physical_expr(pred, &df_schema) {
                source = source.with_predicate(physical);
            }
        }
        let n = state.config().target_partitions().max(1).min(files.len());
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); n];
        for (i, f) in files.iter().enumerate() {
            groups[i % n].push(PartitionedFile::new(f.path.clone(), f.bytes));
        }
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_projection_indices(projection.cloned())?
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// The `history` schema: a table per topic (`history.sensor_readings`, `history.twin_state`,
/// ...).
#[derive(Debug)]
pub struct HistorySchema {
    store: Arc<HistoryStore>,
}

impl HistorySchema {
    pub fn new(store: Arc<HistoryStore>) -> Self {
        HistorySchema { store }
    }
}

#[async_trait]
impl SchemaProvider for HistorySchema {
    fn table_names(&self) -> Vec<String> {
        Topic::ALL.into_iter().map(table_name).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(Topic::ALL
            .into_iter()
            .find(|t| table_name(*t) == name)
            .map(|t| Arc::new(HistoryTable::new(self.store.clone(), t)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        Topic::ALL.into_iter().any(|t| table_name(t) == name)
    }
}

/// Adds the `history` schema and the point-in-time functions to `engine`.
pub fn register(
    engine: &twinline_queries::QueryEngine,
    store: Option<Arc<HistoryStore>>,
    log: Arc<dyn twinline_log::EventLog>,
    codec: Arc<twinline_schemas::Codec>,
) -> Result<(), twinline_queries::QueryError> {
    if let Some(store) = &store {
        engine.register_schema("history", Arc::new(HistorySchema::new(store.clone())))?;
    }
    engine.register_udtf(
        "twin_state_at",
        Arc::new(super::at::TwinStateAt::new(store, log, codec)),
    );
    Ok(())
}
