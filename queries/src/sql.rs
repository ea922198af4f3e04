//! Read-only SQL over the views: DataFusion with every view as a table, `information_schema` on,
//! and only SELECT / WITH / EXPLAIN / SHOW / DESCRIBE admitted. Each query runs under a time
//! limit and a row limit and reports whether its result was truncated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, TableFunctionImpl};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::StreamExt;

use crate::views::Views;

/// Limits of the query engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryConfig {
    /// Wall-clock limit of one query, planning included.
    pub timeout: Duration,
    /// Rows returned when the caller asks for no particular limit.
    pub default_max_rows: usize,
    /// Largest row limit a caller may ask for.
    pub max_rows_cap: usize,
    /// DataFusion's parallelism per query. Small by default: queries share the machine with
    /// the pipeline, which must keep up with its input.
    pub target_partitions: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout: Duration::from_secs(10),
            default_max_rows: 10_000,
            max_rows_cap: 100_000,
            target_partitions: 2,
        }
    }
}

/// Why a query produced no result.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Not a read-only statement (DDL, DML, COPY, SET, ...): the caller's fault, not retryable.
    #[error("statement refused: {0}")]
    Refused(String),
    /// Does not parse or plan (syntax, unknown table or column, type error).
    #[error("invalid SQL: {0}")]
    Invalid(String),
    /// Ran past the time limit and was cancelled.
    #[error("query exceeded the time limit of {0:?}")]
    Timeout(Duration),
    /// Failed while running (for example a cast error on a value).
    #[error("query failed: {0}")]
    Execution(String),
    /// A fault of this service, not of the query.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Rows of a query, at most the row limit.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub row_count: usize,
    /// More rows existed than the row limit allowed.
    pub truncated: bool,
    pub elapsed: Duration,
}

/// Wraps every inner operator's output in a `CooperativeExec`. DataFusion only makes leaves
/// spend the tokio task budget, but a cross join emits millions of batches from one input
/// batch without polling a leaf; without a yield there, an aborted query spins on its worker
/// until it finishes (hours), and the time limit could not stop it.
#[derive(Debug)]
struct YieldEverywhere;

impl PhysicalOptimizerRule for YieldEverywhere {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.children().is_empty() || node.name() == "CooperativeExec" {
                Ok(Transformed::no(node))
            } else {
                Ok(Transformed::yes(
                    Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>
                ))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "yield_everywhere"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Queries execute on their own small runtime: a CPU-bound query can then never starve the API's
/// reactor (and its timers: the time limit must fire while a query spins).
struct QueryRuntime {
    handle: tokio::runtime::Handle,
    /// Dropped with the engine: ends the thread that owns the runtime, which then shuts it down
    /// outside any async context (dropping a runtime inside one panics).
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl QueryRuntime {
    fn start(workers: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("twinline-query")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("twinline-query-rt".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stop.await;
                });
                // Queries still spinning are abandoned, not waited for.
                runtime.shutdown_background();
            })?;
        Ok(QueryRuntime {
            handle,
            _shutdown: shutdown,
        })
    }
}

/// The read-only SQL engine. Cheap to share (`Arc` it or clone: the session is shared).
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
    config: QueryConfig,
    runtime: Arc<QueryRuntime>,
    /// Schemas and table functions registered after construction (history tables, point-in-time
    /// functions); replayed onto every context made by [`QueryEngine::new_context`].
    extensions: Arc<parking_lot::RwLock<Extensions>>,
    views: Arc<Views>,
}

#[derive(Default)]
struct Extensions {
    schemas: Vec<(String, Arc<dyn SchemaProvider>)>,
    functions: Vec<(String, Arc<dyn TableFunctionImpl>)>,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub(crate) fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// The statement's leading keywords, for refusal messages (`CREATE TABLE`, `INSERT`, ...).
fn statement_label(text: &str) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter(|w| !w.is_empty())
        .take(3)
        .collect();
    let n = match words.first().map(|w| w.to_ascii_uppercase()) {
        Some(w) if w == "CREATE" => {
            // CREATE EXTERNAL TABLE / CREATE OR REPLACE ... / CREATE TABLE
            if words
                .get(1)
                .is_some_and(|w| w.eq_ignore_ascii_case("external"))
            {
                3
            } else {
                2
            }
        }
        Some(w) if w == "DROP" || w == "ALTER" => 2,
        _ => 1,
    };
    words
        .iter()
        .take(n)
        .map(|w| w.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(" ")
}

fn refuse(what: &str) -> QueryError {
    QueryError::Refused(format!(
        "{what} is not allowed: this endpoint is read-only (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE)"
    ))
}

/// Our own allow-list over the parsed statement; `verify_plan` then checks the plan as well
/// (it catches what hides inside an admitted statement, such as `SELECT ... INTO`).
pub fn check_statement(stmt: &DfStatement) -> Result<(), QueryError> {
    match stmt {
        DfStatement::Statement(s) => check_sql_statement(s),
        DfStatement::Explain(e) => check_statement(&e.statement),
        DfStatement::CreateExternalTable(_) => Err(refuse("CREATE EXTERNAL TABLE")),
        DfStatement::CopyTo(_) => Err(refuse("COPY")),
        DfStatement::Reset(_) => Err(refuse("RESET")),
    }
}

/// The read-only allow-list for one SQL statement (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE).
pub fn check_sql_statement(s: &SqlStatement) -> Result<(), QueryError> {
    match s {
        SqlStatement::Query(_)
        | SqlStatement::ShowTables { .. }
        | SqlStatement::ShowColumns { .. }
        | SqlStatement::ShowVariable { .. }
        | SqlStatement::ShowFunctions { .. }
        | SqlStatement::ExplainTable { .. } => Ok(()),
        SqlStatement::Explain { statement, .. } => check_sql_statement(statement),
        other => Err(refuse(&statement_label(&other.to_string()))),
    }
}

pub(crate) fn invalid(e: DataFusionError) -> QueryError {
    QueryError::Invalid(e.strip_backtrace().to_string())
}

pub(crate) fn exec_error(e: DataFusionError) -> QueryError {
    match e {
        DataFusionError::Internal(_) => QueryError::Internal(e.strip_backtrace().to_string()),
        // Errors of planning that surface only at execution (e.g. a function's argument check)
        // are still the query's fault.
        other => QueryError::Execution(other.strip_backtrace().to_string()),
    }
}

impl QueryEngine {
    /// An engine whose tables are the views' tables (including ones registered later).
    pub fn new(views: Arc<Views>, config: QueryConfig) -> Result<Self, QueryError> {
        let ctx = base_context(&views, &config)?;
        let runtime = QueryRuntime::start(config.target_partitions)
            .map_err(|e| QueryError::Internal(format!("cannot start the query runtime: {e}")))?;
        Ok(QueryEngine {
            ctx,
            config,
            runtime: Arc::new(runtime),
            extensions: Arc::default(),
            views,
        })
    }

    /// A fresh session over the same tables, schemas and functions (the Postgres and Flight
    /// SQL front ends each keep their own, since they add catalog tables of their own).
    pub fn new_context(&self) -> Result<SessionContext, QueryError> {
        let ctx = base_context(&self.views, &self.config)?;
        let ext = self.extensions.read();
        for (name, schema) in &ext.schemas {
            register_schema(&ctx, name, schema.clone())?;
        }
        for (name, f) in &ext.functions {
            ctx.register_udtf(name, f.clone());
        }
        Ok(ctx)
    }

    /// Adds a schema (for example `history`) to this engine and every context made later.
    pub fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<(), QueryError> {
        register_schema(&self.ctx, name, schema.clone())?;
        self.extensions
            .write()
            .schemas
            .push((name.to_string(), schema));
        Ok(())
    }

    /// Adds a table function (for example `twin_state_at`) to this engine and every context
    /// made later.
    pub fn register_udtf(&self, name: &str, f: Arc<dyn TableFunctionImpl>) {
        self.ctx.register_udtf(name, f.clone());
        self.extensions
            .write()
            .functions
            .push((name.to_string(), f));
    }

    /// The runtime queries run on. Front ends that execute queries themselves (Postgres wire,
    /// Flight SQL) serve their connections here, never on the API's reactor.
    pub fn runtime_handle(&self) -> tokio::runtime::Handle {
        self.runtime.handle.clone()
    }
    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// The row limit for a request: the default when none asked, never above the cap.
    pub fn row_limit(&self, requested: Option<usize>) -> usize {
        requested
            .unwrap_or(self.config.default_max_rows)
            .min(self.config.max_rows_cap)
    }

    /// Runs one read-only statement. `max_rows` is capped by [`QueryConfig::max_rows_cap`].
    pub async fn query(
        &self,
        sql: &str,
        max_rows: Option<usize>,
    ) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let limit = self.row_limit(max_rows);
        let ctx = self.ctx.clone();
        let sql = sql.to_string();
        // On the query runtime, so the timeout below (on the caller's runtime) fires on time
        // even when an operator runs for long between yields; abort stops it at its next yield.
        let mut task = self
            .runtime
            .handle
            .spawn(async move { run(ctx, &sql, limit).await });
        match tokio::time::timeout(self.config.timeout, &mut task).await {
            Ok(Ok(result)) => {
                let (schema, batches, row_count, truncated) = result?;
                Ok(QueryResult {
                    schema,
                    batches,
                    row_count,
                    truncated,
                    elapsed: started.elapsed(),
                })
            }
            Ok(Err(join)) => Err(QueryError::Internal(format!("query task failed: {join}"))),
            Err(_) => {
                task.abort();
                Err(QueryError::Timeout(self.config.timeout))
            }
        }
    }
}

/// A session with the engine's settings and the views as the default schema.
fn base_context(views: &Arc<Views>, config: &QueryConfig) -> Result<SessionContext, QueryError> {
    let session = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(config.target_partitions.max(1));
    let state = SessionStateBuilder::new()
        .with_config(session)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(YieldEverywhere))
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_udf(crate::functions::date_trunc_udf());
    let schema_name = ctx
        .state()
        .config()
        .options()
        .catalog
        .default_schema
        .clone();
    register_schema(&ctx, &schema_name, views.schema_provider())?;
    Ok(ctx)
}

/// The session's default catalog (`datafusion` unless configured).
pub(crate) fn default_catalog(ctx: &SessionContext) -> String {
    ctx.state()
        .config()
        .options()
        .catalog
        .default_catalog
        .clone()
}

fn register_schema(
    ctx: &SessionContext,
    name: &str,
    schema: Arc<dyn SchemaProvider>,
) -> Result<(), QueryError> {
    let catalog_name = default_catalog(ctx);
    let catalog = ctx
        .catalog(&catalog_name)
        .ok_or_else(|| QueryError::Internal(format!("no default catalog {catalog_name}")))?;
    catalog
        .register_schema(name, schema)
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    Ok(())
}

type Collected = (SchemaRef, Vec<RecordBatch>, usize, bool);

/// Parses `sql` as exactly one statement and checks it against the read-only allow-list.
pub(crate) fn parse_read_only(state: &SessionState, sql: &str) -> Result<DfStatement, QueryError> {
    let dialect = &state.config().options().sql_parser.dialect;
    let stmt = state.sql_to_statement(sql, dialect).map_err(invalid)?;
    check_statement(&stmt)?;
    Ok(stmt)
}

/// Plans a statement that passed [`parse_read_only`] and verifies that the plan reads only
/// (this catches what hides inside an admitted statement, such as `SELECT ... INTO`).
pub(crate) async fn plan_read_only(
    state: &SessionState,
    stmt: DfStatement,
) -> Result<LogicalPlan, QueryError> {
    let plan = state.statement_to_plan(stmt).await.map_err(invalid)?;
    read_only()
        .verify_plan(&plan)
        .map_err(|e| QueryError::Refused(e.strip_backtrace().to_string()))?;
    Ok(plan)
}

async fn run(ctx: SessionContext, sql: &str, limit: usize) -> Result<Collected, QueryError> {
    let state = ctx.state();
    let stmt = parse_read_only(&state, sql)?;
    let is_query =
        matches!(&stmt, DfStatement::Statement(s) if matches!(s.as_ref(), SqlStatement::Query(_)));
    let plan = plan_read_only(&state, stmt).await?;
    let mut df = ctx.execute_logical_plan(plan).await.map_err(invalid)?;
    if is_query {
        // One row past the limit tells "exactly limit rows" from "truncated", and lets the
        // optimizer stop scans and sorts early (TopK).
        df = df
            .limit(0, Some(limit.saturating_add(1)))
            .map_err(invalid)?;
    }
    let mut stream = df.execute_stream().await.map_err(exec_error)?;
    let schema = stream.schema();
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(exec_error)?;
        if rows + batch.num_rows() > limit {
            let keep = limit - rows;
            if keep > 0 {
                batches.push(batch.slice(0, keep));
            }
            rows = limit;
            truncated = true;
            break;
        }
        rows += batch.num_rows();
        if batch.num_rows() > 0 {
            batches.push(batch);
        }
    }
    Ok((schema, batches, rows, truncated))
}

#[cfg(test)]
mod tests {
    use super::statement_label;

    #[test]
    fn labels_name_the_statement() {
        assert_eq!(statement_label("create table t (a int)"), "CREATE TABLE");
        assert_eq!(
            statement_label("CREATE EXTERNAL TABLE t STORED AS CSV"),
            "CREATE EXTERNAL TABLE"
        );
        assert_eq!(statement_label("insert into t values (1)"), "INSERT");
        assert_eq!(statement_label("DROP TABLE t"), "DROP TABLE");
        assert_eq!(statement_label("SET x = 1"), "SET");
    }
}
