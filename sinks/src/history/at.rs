//! Point-in-time queries: `twin_state_at('<RFC 3339 time>')` is the `twin_state` view as it
//! was at that event time, equal to the `twin_state` of `twinline replay --until <time>`.
//!
//! Replay cuts the inputs at the smallest origin of any input record later than the time and
//! re-derives from the rest; derived records carry their input's origin, so the twin states the
//! replay derives are exactly the records with origin below the cut. This function finds the
//! cut from the log's time index, then takes each machine's last twin state below the cut from
//! the newest history file that can hold it plus the log records the history has not reached
//! yet: no replay, and no scan of the whole history.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, DataFusionError, Result as DfResult};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use twinline_log::{EventLog, ReadBatch};
use twinline_queries::views::columns::ColumnSet;
use twinline_queries::views::tables::TwinStateColumns;
use twinline_queries::views::{AppendRows, ViewEvent};
use twinline_schemas::{Codec, Payload, Topic};

use super::store::HistoryStore;
use super::HistoryError;

/// The smallest origin of any input record with event time `>= t` (`u64::MAX` when none):
/// replay keeps the input records below it.
pub fn cut_origin(log: &dyn EventLog, t: i64) -> Result<u64, twinline_log::LogError> {
    let mut cut = u64::MAX;
    let mut batch = ReadBatch::new();
    for topic in Topic::ALL.into_iter().filter(|t| t.is_input()) {
        for p in 0..log.partitions(topic.name())? {
            // The time index gives the first offset whose running-max timestamp reaches t;
            // timestamps before it are all < t, and origins grow with offsets.
            let Some(mut off) = log.offset_for_timestamp(topic.name(), p, t)? else {
                continue;
            };
            let end = log.end_offset(topic.name(), p)?;
            'scan: while off < end {
                log.read(topic.name(), p, off, 1 << 20, &mut batch)?;
                if batch.is_empty() {
                    break;
                }
                for r in batch.iter() {
                    off = r.offset + 1;
                    if r.timestamp >= t {
                        cut = cut.min(r.origin);
                        break 'scan;
                    }
                }
            }
        }
    }
    Ok(cut)
}

/// The `twin_state_at(time)` table function.
#[derive(Clone)]
pub struct TwinStateAt {
    store: Option<Arc<HistoryStore>>,
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
}

impl std::fmt::Debug for TwinStateAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwinStateAt").finish_non_exhaustive()
    }
}

impl TwinStateAt {
    pub fn new(
        store: Option<Arc<HistoryStore>>,
        log: Arc<dyn EventLog>,
        codec: Arc<Codec>,
    ) -> Self {
        TwinStateAt { store, log, codec }
    }

    /// Every machine's twin state as of event time `t` (ms), ordered by machine id: the rows
    /// `SELECT * FROM twin_state` gives after `twinline replay --until t`.
    pub fn compute(&self, t: i64) -> Result<RecordBatch, HistoryError> {
        let schema = TwinStateColumns::schema();
        let cut = cut_origin(self.log.as_ref(), t.saturating_add(1))?;
        // Newest row below the cut per machine, from history (batch slice) or from the log.
        let mut from_history: BTreeMap<String, RecordBatch> = BTreeMap::new();
        let mut positions: Vec<u64> = Vec::new();
        let partitions = self.log.partitions(Topic::TwinState.name())?;
        match &self.store {
            Some(store) => {
                let manifest = store.manifest();
                for p in 0..partitions {
                    positions.push(manifest.position(Topic::TwinState, p));
                }
                // A machine's rows are one log partition in origin order; its files rarely
                // overlap in origin (only when event dates interleave). Read its files from the
                // one reaching highest below the cut, and stop once no further file can hold a
                // later row than the best found.
                let mut by_machine: BTreeMap<&str, Vec<&super::FileEntry>> = BTreeMap::new();
                for f in manifest
                    .files_of(Topic::TwinState)
                    .filter(|f| f.min_origin < cut)
                {
                    by_machine.entry(f.machine.as_str()).or_default().push(f);
                }
                let handle = tokio::runtime::Handle::try_current().ok();
                for (machine, mut files) in by_machine {
                    let reach = |f: &super::FileEntry| f.max_origin.min(cut - 1);
                    files.sort_by_key(|f| std::cmp::Reverse((reach(f), f.max_offset)));
                    let mut best: Option<((i64, i64), RecordBatch)> = None;
                    for f in files {
                        if let Some(((o, _), _)) = &best {
                            if (reach(f) as i64) < *o {
                                break;
                            }
                        }
                        let bytes = read_object(store, &f.path, handle.as_ref())?;
                        if let Some((k, row)) = last_below(bytes, cut, &schema)? {
                            if best.as_ref().is_none_or(|(bk, _)| k > *bk) {
                                best = Some((k, row));
                            }
                        }
                    }
                    if let Some((_, row)) = best {
                        from_history.insert(machine.to_string(), row);
                    }
                }
            }
            None => positions.resize(partitions as usize, 0),
        }
        // The log beyond the history: later records of a machine replace its history row.
        let mut from_log: BTreeMap<String, (u32, u64, Payload)> = BTreeMap::new();
        let mut batch = ReadBatch::new();
        for (p, &pos) in positions.iter().enumerate() {
            let p = p as u32;
            let mut off = pos.max(self.log.start_offset(Topic::TwinState.name(), p)?);
            let end = self.log.end_offset(Topic::TwinState.name(), p)?;
            'part: while off < end {
                self.log
                    .read(Topic::TwinState.name(), p, off, 4 << 20, &mut batch)?;
                if batch.is_empty() {
                    break;
                }
                for r in batch.iter() {
                    off = r.offset + 1;
                    if r.origin >= cut {
                        break 'part;
                    }
                    if let Ok(payload @ Payload::TwinState(_)) =
                        self.codec.decode(Topic::TwinState, r.value)
                    {
                        let Payload::TwinState(s) = &payload else {
                            continue;
                        };
                        from_log.insert(s.machine_id.clone(), (p, r.offset, payload));
                    }
                }
            }
        }
        let mut parts: Vec<RecordBatch> = Vec::new();
        if !from_log.is_empty() {
            let mut cols = TwinStateColumns::with_capacity(from_log.len());
            for (p, offset, payload) in from_log.values() {
                cols.append(&ViewEvent {
                    topic: Topic::TwinState,
                    partition: *p,
                    offset: *offset,
                    payload,
                });
            }
            parts.push(RecordBatch::try_new(schema.clone(), cols.finish_all())?);
        }
        for (machine, row) in from_history {
            if !from_log.contains_key(&machine) {
                parts.push(row);
            }
        }
        let all = concat_batches(&schema, &parts)?;
        sort_by_machine(all)
    }
}

fn read_object(
    store: &HistoryStore,
    path: &str,
    handle: Option<&tokio::runtime::Handle>,
) -> Result<bytes::Bytes, HistoryError> {
    let os = store.object_store();
    let p = ObjectPath::from(path);
    let fut = async move { os.get(&p).await?.bytes().await };
    let got = match handle {
        // Called from a blocking thread of a runtime.
        Some(h) => h.block_on(fut),
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HistoryError::Io(e.to_string()))?
            .block_on(fut),
    };
    Ok(got?)
}

/// A row and its (origin, offset).
type RowAt = ((i64, i64), RecordBatch);

/// The row with the largest (origin, offset) below `cut`, without the log columns.
fn last_below(
    bytes: bytes::Bytes,
    cut: u64,
    schema: &SchemaRef,
) -> Result<Option<RowAt>, HistoryError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
        .with_batch_size(64 * 1024)
        .build()?;
    let mut best: Option<((i64, i64), RecordBatch, usize)> = None;
    for b in reader {
        let b = b?;
        let origin = int64(&b, "log_origin")?;
        let offset = int64(&b, "log_offset")?;
        for i in 0..b.num_rows() {
            let o = origin.value(i);
            if (o as u64) >= cut {
                continue;
            }
            let k = (o, offset.value(i));
            if best.as_ref().is_none_or(|(bk, _, _)| k > *bk) {
                best = Some((k, b.clone(), i));
            }
        }
    }
    let Some((k, b, i)) = best else {
        return Ok(None);
    };
    let keep: Vec<usize> = (0..schema.fields().len()).collect();
    let row = b.project(&keep)?.slice(i, 1);
    // The file's schema equals the view's column for column; rebuild with the view's schema
    // so nullability and metadata match exactly.
    Ok(Some((
        k,
        RecordBatch::try_new(schema.clone(), row.columns().to_vec())?,
    )))
}

fn int64<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Int64Array, HistoryError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| HistoryError::Manifest(format!("history file lacks column {name}")))
}

fn sort_by_machine(batch: RecordBatch) -> Result<RecordBatch, HistoryError> {
    if batch.num_rows() < 2 {
        return Ok(batch);
    }
    let machines = batch
        .column_by_name("machine_id")
        .ok_or_else(|| HistoryError::Manifest("no machine_id column".into()))?;
    let idx = sort_to_indices(machines.as_ref(), None, None)?;
    Ok(take_record_batch(&batch, &idx)?)
}

fn parse_time(args: &[Expr]) -> DfResult<i64> {
    let [arg] = args else {
        return plan_err!(
            "twin_state_at takes one argument: a time such as '2026-11-20T10:00:00Z'"
        );
    };
    let value = match arg {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Literal(v, _) => Some(v.clone()),
            _ => None,
        },
        _ => None,
    };
    match value.as_ref().and_then(super::table::millis_of) {
        Some(t) => Ok(t),
        None => match value {
            Some(datafusion::common::ScalarValue::Int64(Some(ms))) => Ok(ms),
            _ => plan_err!(
                "twin_state_at needs a literal time (RFC 3339 text such as '2026-11-20T10:00:00Z', a timestamp, or Unix milliseconds), got {arg}"
            ),
        },
    }
}

impl TableFunctionImpl for TwinStateAt {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let t = parse_time(args.exprs())?;
        Ok(Arc::new(TwinStateAtTable {
            f: self.clone(),
            t,
            schema: TwinStateColumns::schema(),
        }))
    }
}

#[derive(Debug)]
struct TwinStateAtTable {
    f: TwinStateAt,
    t: i64,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for TwinStateAtTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let f = self.f.clone();
        let t = self.t;
        // Log reads are blocking file I/O: off the reactor.
        let batch = tokio::task::spawn_blocking(move || f.compute(t))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}
