//! The Arrow Flight SQL front end: serves the read-only SQL views to Flight SQL clients (ADBC,
//! JDBC, pyarrow) with the API's tokens, the engine's time limit and the same read-only checks as
//! the HTTP SQL endpoint. It runs on the query runtime, never on the caller's.
//!
//! Tickets are the client's own command (`CommandStatementQuery`, `CommandGetTables`, ...): the
//! server keeps no per-query state, and `do_get` plans the statement again. Only prepared
//! statements live on the server (their SQL and bound parameters), at most 1024 of them; the
//! oldest is forgotten first.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::{DictionaryHandling, FlightDataEncoderBuilder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementSubstraitPlan, CommandStatementUpdate, DoPutPreparedStatementResult, SqlInfo,
    SqlSupportedTransaction,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
// `bytes` is not a direct dependency; tonic re-exports the type its messages use.
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{visit_expressions_mut, Expr as SqlExpr, Value};
use futures::{Stream, StreamExt, TryStreamExt};
use parking_lot::Mutex;
use tokio::time::Instant;
use tonic::codegen::Bytes;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::api::{constant_time_eq, ApiToken};
use crate::sql::{self, QueryEngine, QueryError};

/// Prepared statements kept at once; a client that never closes its statements cannot grow the
/// server without bound.
const MAX_PREPARED: usize = 1024;
/// Parameter rows one `DoPut` may bind (each row runs the statement once).
const MAX_PARAMETER_ROWS: usize = 1024;
/// Record batches buffered between a running query and a slow client.
const STREAM_BUFFER: usize = 2;

type FlightStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Who may call the Flight SQL endpoint.
#[derive(Debug, Clone, Default)]
pub struct FlightConfig {
    /// The read API's tokens; every role may read.
    pub tokens: Vec<ApiToken>,
    /// Whether a call needs a token at all (as for the read API's GET routes).
    pub read_requires_token: bool,
}

/// A running Flight SQL server; dropping it stops the server (calls in flight finish first,
/// and a query cannot outlive its time limit).
pub struct FlightServer {
    local_addr: SocketAddr,
    /// Its receiver is the server's shutdown signal: dropping this sender ends the serve loop.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for FlightServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl FlightServer {
    /// Serves Flight SQL over the engine's views on `listener` (already bound; may be port 0).
    /// The server runs on `engine.runtime_handle()` (the query runtime), never on the caller's
    /// runtime.
    pub fn spawn(
        listener: std::net::TcpListener,
        engine: &QueryEngine,
        config: FlightConfig,
    ) -> std::io::Result<FlightServer> {
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = engine.runtime_handle();
        let listener = {
            // Registering the socket needs the reactor of the runtime that will poll it.
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let ctx = engine
            .new_context()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let service = FlightSqlEndpoint {
            engine: engine.clone(),
            ctx,
            sql_info: sql_info(engine.config().timeout),
            prepared: Mutex::new(PreparedStatements::default()),
        };
        let auth = Auth {
            tokens: config.tokens.into(),
            read_requires_token: config.read_requires_token,
        };
        let service =
            FlightServiceServer::with_interceptor(service, move |req: Request<()>| auth.check(req));
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            let served = Server::builder()
                .trace_fn(|req| tracing::info_span!("flight_sql", method = %req.uri().path()))
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the Flight SQL server stopped");
            }
        });
        tracing::info!(%local_addr, "Flight SQL server listening");
        Ok(FlightServer {
            local_addr,
            _shutdown: shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

/// Checks every call's `authorization` metadata before any handler runs, the handshake
/// included: `Bearer <token>`, or `Basic <user:token>` (what Flight clients send to the
/// handshake, which answers with the bearer header to use afterwards).
#[derive(Clone)]
struct Auth {
    tokens: Arc<[ApiToken]>,
    read_requires_token: bool,
}

impl Auth {
    #[allow(clippy::result_large_err)] // tonic's interceptor signature
    fn check(&self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(value) = req.metadata().get("authorization") else {
            if self.read_requires_token {
                tracing::info!("Flight SQL call without credentials refused");
                return Err(Status::unauthenticated(
                    "this server needs `authorization: Bearer <token>`, or a handshake with \
                     HTTP Basic credentials whose password is a token",
                ));
            }
            return Ok(req);
        };
        // As in the HTTP API: credentials that are sent must be valid, needed or not.
        let token = credential(value)?;
        if !self
            .tokens
            .iter()
            .any(|t| constant_time_eq(t.token.as_bytes(), token.as_bytes()))
        {
            tracing::info!("Flight SQL call with an unknown token refused");
            return Err(Status::unauthenticated("unknown token"));
        }
        Ok(req)
    }
}

/// The token in an `authorization` value: `Bearer <token>` or `Basic base64(<user>:<token>)`.
#[allow(clippy::result_large_err)]
fn credential(value: &MetadataValue<Ascii>) -> Result<String, Status> {
    let bad = || {
        Status::unauthenticated("expected `authorization: Bearer <token>` or `Basic <credentials>`")
    };
    let value = value.to_str().map_err(|_| bad())?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or_else(bad)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest.trim()).ok_or_else(bad)?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        // The user name is free; the password is the token.
        let (_user, password) = decoded.split_once(':').ok_or_else(bad)?;
        return Ok(password.to_string());
    }
    Err(bad())
}

/// Standard base64 with optional padding (HTTP Basic credentials); `None` if malformed.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The gRPC status of a failed query; logged here, once per failed call.
fn query_status(e: QueryError) -> Status {
    tracing::info!(error = %e, "Flight SQL query failed");
    match e {
        QueryError::Refused(m) => Status::permission_denied(m),
        QueryError::Invalid(m) | QueryError::Execution(m) => Status::invalid_argument(m),
        QueryError::Timeout(limit) => {
            Status::deadline_exceeded(format!("query exceeded the time limit of {limit:?}"))
        }
        QueryError::Internal(m) => Status::internal(m),
    }
}

fn write_refused(what: &str) -> Status {
    tracing::info!(what, "Flight SQL write refused");
    Status::permission_denied(format!(
        "{what} is not allowed: this endpoint is read-only (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE)"
    ))
}

fn no_transactions() -> Status {
    Status::invalid_argument("transactions are not supported: this endpoint is read-only")
}

#[allow(clippy::result_large_err)]
fn arrow_status(e: arrow::error::ArrowError) -> Status {
    Status::internal(e.to_string())
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

struct FlightSqlEndpoint {
    /// Held so the query runtime (which serves us) lives as long as the server.
    engine: QueryEngine,
    /// Our own session over the engine's tables; statements that could change it are refused.
    ctx: SessionContext,
    sql_info: SqlInfoData,
    prepared: Mutex<PreparedStatements>,
}

/// A prepared statement: its text and the parameter rows bound by `DoPut`.
#[derive(Clone)]
struct Prepared {
    sql: String,
    params: Vec<Vec<ScalarValue>>,
}

#[derive(Default)]
struct PreparedStatements {
    next: u64,
    by_handle: HashMap<Bytes, Prepared>,
    /// Creation order, for evicting the oldest.
    order: VecDeque<Bytes>,
}

impl PreparedStatements {
    fn insert(&mut self, sql: String) -> Bytes {
        self.next += 1;
        // Not guessable, so one client cannot rebind another's statement.
        let salt = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let handle = Bytes::from(format!("{}-{salt:016x}", self.next));
        while self.by_handle.len() >= MAX_PREPARED {
            match self.order.pop_front() {
                Some(old) => {
                    self.by_handle.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(handle.clone());
        self.by_handle.insert(
            handle.clone(),
            Prepared {
                sql,
                params: Vec::new(),
            },
        );
        handle
    }

    fn remove(&mut self, handle: &[u8]) {
        if self.by_handle.remove(handle).is_some() {
            self.order.retain(|h| h != handle);
        }
    }
}

fn sql_info(timeout: Duration) -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "twinline");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    // The Arrow format version (Schema.fbs), as the Flight SQL spec asks.
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    b.append(
        SqlInfo::FlightSqlServerStatementTimeout,
        i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX),
    );
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.build()
        .expect("the SqlInfo values above have the types the spec gives them")
}

/// `?` placeholders (JDBC, ADBC) become `$1`, `$2`, ... in the order they are written, the
/// positional form DataFusion binds.
fn number_placeholders(stmt: &mut DfStatement) {
    let DfStatement::Statement(s) = stmt else {
        return;
    };
    let mut n = 0;
    let _ = visit_expressions_mut(s.as_mut(), |expr| {
        if let SqlExpr::Value(v) = expr {
            if let Value::Placeholder(p) = &mut v.value {
                if p == "?" {
                    n += 1;
                    *p = format!("${n}");
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The positional parameters of a plan (`$1`, `$2`, ...) with the types DataFusion inferred.
fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>, QueryError> {
    let types = plan.get_parameter_types().map_err(sql::invalid)?;
    let mut numbered = Vec::with_capacity(types.len());
    for (name, ty) in types {
        let n = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                QueryError::Invalid(format!(
                    "placeholder {name}: use `?` or `$1`, `$2`, ... (named ones are not supported)"
                ))
            })?;
        numbered.push((n, ty));
    }
    numbered.sort_by_key(|(n, _)| *n);
    if numbered.iter().enumerate().any(|(i, (n, _))| *n != i + 1) {
        return Err(QueryError::Invalid(
            "placeholders must be numbered $1, $2, ... without gaps".into(),
        ));
    }
    Ok(numbered.into_iter().map(|(_, ty)| ty).collect())
}

fn schema_bytes(schema: &Schema) -> Result<Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(arrow_status)?;
    Ok(bytes)
}

/// The answer to `GetFlightInfo`: one endpoint on this server whose ticket is `cmd` itself.
#[allow(clippy::result_large_err)]
fn flight_info(schema: &Schema, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    let ticket = Ticket::new(descriptor.cmd.clone());
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(arrow_status)?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor))
}

/// A finished metadata batch as a `DoGet` stream.
fn batch_stream(
    schema: SchemaRef,
    batch: Result<RecordBatch, FlightError>,
) -> FlightStream<arrow_flight::FlightData> {
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async move { batch }))
            .map_err(Status::from),
    )
}

fn table_type_name(t: TableType) -> &'static str {
    match t {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// Aborts the query task when the client stops reading (the response stream is dropped).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One table as the metadata commands list it.
struct TableEntry {
    catalog: String,
    schema: String,
    table: String,
    table_type: &'static str,
    arrow_schema: SchemaRef,
}

impl FlightSqlEndpoint {
    fn timeout(&self) -> Duration {
        self.engine.config().timeout
    }

    /// Parses, checks and plans one read-only statement (`?` placeholders numbered).
    async fn plan(&self, sql: &str) -> Result<LogicalPlan, QueryError> {
        let state = self.ctx.state();
        let mut stmt = sql::parse_read_only(&state, sql)?;
        number_placeholders(&mut stmt);
        sql::plan_read_only(&state, stmt).await
    }

    /// The plans to run for a statement: one without parameters, or one per bound row.
    async fn plans(
        &self,
        sql: &str,
        params: &[Vec<ScalarValue>],
    ) -> Result<Vec<LogicalPlan>, QueryError> {
        let plan = self.plan(sql).await?;
        let types = parameter_types(&plan)?;
        if types.is_empty() && params.is_empty() {
            return Ok(vec![plan]);
        }
        if params.is_empty() {
            return Err(QueryError::Invalid(format!(
                "the statement has {} parameter(s): bind them with DoPut first",
                types.len()
            )));
        }
        params
            .iter()
            .map(|row| {
                if row.len() != types.len() {
                    return Err(QueryError::Invalid(format!(
                        "the statement has {} parameter(s), {} were bound",
                        types.len(),
                        row.len()
                    )));
                }
                // Clients send the types they have (Int64 for a Python int); DataFusion wants
                // the ones it inferred.
                let values = row
                    .iter()
                    .zip(&types)
                    .map(|(v, ty)| match ty {
                        Some(ty) if v.data_type() != *ty => v.cast_to(ty).map_err(sql::invalid),
                        _ => Ok(v.clone()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                plan.clone().with_param_values(values).map_err(sql::invalid)
            })
            .collect()
    }

    async fn plans_in_time(
        &self,
        sql: &str,
        params: &[Vec<ScalarValue>],
        deadline: Instant,
    ) -> Result<Vec<LogicalPlan>, Status> {
        match tokio::time::timeout_at(deadline, self.plans(sql, params)).await {
            Ok(plans) => plans.map_err(query_status),
            Err(_) => Err(query_status(QueryError::Timeout(self.timeout()))),
        }
    }

    async fn info_for(
        &self,
        sql: &str,
        params: &[Vec<ScalarValue>],
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let deadline = Instant::now() + self.timeout();
        let plans = self.plans_in_time(sql, params, deadline).await?;
        let schema = plans[0].schema().as_arrow().clone();
        Ok(Response::new(flight_info(&schema, descriptor)?))
    }

    /// Runs the statement on the query runtime and streams its batches. The time limit counts
    /// from this call (planning included) to the last batch; at expiry the query is cancelled
    /// and the stream ends with `DEADLINE_EXCEEDED`.
    async fn stream(
        &self,
        sql: &str,
        params: &[Vec<ScalarValue>],
    ) -> Result<Response<FlightStream<arrow_flight::FlightData>>, Status> {
        let limit = self.timeout();
        let deadline = Instant::now() + limit;
        let plans = self.plans_in_time(sql, params, deadline).await?;
        let schema = Arc::new(plans[0].schema().as_arrow().clone());
        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<RecordBatch, FlightError>>(STREAM_BUFFER);
        let ctx = self.ctx.clone();
        let producer = tokio::spawn(
            async move {
                let run = async {
                    for plan in plans {
                        let df = ctx.execute_logical_plan(plan).await.map_err(sql::invalid)?;
                        let mut batches = df.execute_stream().await.map_err(sql::exec_error)?;
                        while let Some(batch) = batches.next().await {
                            let batch = batch.map_err(sql::exec_error)?;
                            if tx.send(Ok(batch)).await.is_err() {
                                return Ok(()); // the client went away
                            }
                        }
                    }
                    Ok::<(), QueryError>(())
                };
                let failure = match tokio::time::timeout_at(deadline, run).await {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e,
                    Err(_) => QueryError::Timeout(limit),
                };
                let status = query_status(failure);
                let _ = tx.send(Err(FlightError::Tonic(Box::new(status)))).await;
            }
            .in_current_span(),
        );
        let guard = AbortOnDrop(producer.abort_handle());
        let batches = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
            rx.recv().await.map(|item| (item, (rx, guard)))
        });
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            // Keeps dictionary types as planned, so the stream matches the FlightInfo schema.
            .with_dictionary_handling(DictionaryHandling::Resend)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight)))
    }

    fn prepared(&self, handle: &[u8]) -> Result<Prepared, Status> {
        self.prepared
            .lock()
            .by_handle
            .get(handle)
            .cloned()
            .ok_or_else(|| Status::not_found("no such prepared statement (closed or expired)"))
    }

    /// Every catalog's schemas, `information_schema` included, sorted.
    fn schemas(&self) -> Vec<(String, String, Arc<dyn SchemaProvider>)> {
        let state = self.ctx.state();
        let info_schema = state.config().information_schema().then(|| {
            Arc::new(InformationSchemaProvider::new(state.catalog_list().clone()))
                as Arc<dyn SchemaProvider>
        });
        let mut out = Vec::new();
        for catalog_name in self.ctx.catalog_names() {
            let Some(catalog) = self.ctx.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                if let Some(schema) = catalog.schema(&schema_name) {
                    out.push((catalog_name.clone(), schema_name, schema));
                }
            }
            if let Some(info) = &info_schema {
                out.push((
                    catalog_name.clone(),
                    "information_schema".into(),
                    info.clone(),
                ));
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    async fn tables(&self) -> Result<Vec<TableEntry>, Status> {
        let mut out = Vec::new();
        for (catalog, schema_name, schema) in self.schemas() {
            let mut names = schema.table_names();
            names.sort();
            for table in names {
                let provider: Option<Arc<dyn TableProvider>> = schema
                    .table(&table)
                    .await
                    .map_err(|e| query_status(sql::exec_error(e)))?;
                if let Some(provider) = provider {
                    out.push(TableEntry {
                        catalog: catalog.clone(),
                        schema: schema_name.clone(),
                        table,
                        table_type: table_type_name(provider.table_type()),
                        arrow_schema: provider.schema(),
                    });
                }
            }
        }
        Ok(out)
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlEndpoint {
    type FlightService = FlightSqlEndpoint;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<FlightStream<HandshakeResponse>>, Status> {
        // The interceptor has checked the credentials; hand back the bearer form to use.
        let token = match request.metadata().get("authorization") {
            Some(value) => Some(credential(value)?),
            None => None,
        };
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().unwrap_or_default().into(),
        };
        let mut response: Response<FlightStream<HandshakeResponse>> =
            Response::new(Box::pin(futures::stream::iter([Ok::<_, Status>(reply)])));
        if let Some(token) = token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::unauthenticated("the token is not valid header text"))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    // --- statements -------------------------------------------------------------------------

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        if query.transaction_id.is_some() {
            return Err(no_transactions());
        }
        self.info_for(&query.query, &[], request.into_inner()).await
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        // Our statement tickets are the `CommandStatementQuery` itself.
        match message.unpack::<CommandStatementQuery>() {
            Ok(Some(query)) => self.stream(&query.query, &[]).await,
            _ => Err(Status::invalid_argument(format!(
                "unknown ticket type {}",
                message.type_url
            ))),
        }
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        if query.transaction_id.is_some() {
            return Err(no_transactions());
        }
        let deadline = Instant::now() + self.timeout();
        let plan = match tokio::time::timeout_at(deadline, self.plan(&query.query)).await {
            Ok(plan) => plan.map_err(query_status)?,
            Err(_) => return Err(query_status(QueryError::Timeout(self.timeout()))),
        };
        let types = parameter_types(&plan).map_err(query_status)?;
        let parameter_schema = if types.is_empty() {
            Bytes::new()
        } else {
            let fields: Vec<Field> = types
                .iter()
                .enumerate()
                .map(|(i, ty)| {
                    Field::new(
                        format!("${}", i + 1),
                        ty.clone().unwrap_or(DataType::Null),
                        true,
                    )
                })
                .collect();
            schema_bytes(&Schema::new(fields))?
        };
        let dataset_schema = schema_bytes(plan.schema().as_arrow())?;
        let handle = self.prepared.lock().insert(query.query);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle,
            dataset_schema,
            parameter_schema,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let handle = query.prepared_statement_handle;
        self.prepared(&handle)?;
        let data = request.into_inner().map_err(FlightError::from);
        let mut batches = FlightRecordBatchStream::new_from_flight_data(data);
        let mut rows: Vec<Vec<ScalarValue>> = Vec::new();
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(Status::from)?;
            if rows.len() + batch.num_rows() > MAX_PARAMETER_ROWS {
                return Err(Status::invalid_argument(format!(
                    "at most {MAX_PARAMETER_ROWS} parameter rows may be bound"
                )));
            }
            for row in 0..batch.num_rows() {
                let values = batch
                    .columns()
                    .iter()
                    .map(|col| ScalarValue::try_from_array(col, row))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| query_status(sql::invalid(e)))?;
                rows.push(values);
            }
        }
        match self.prepared.lock().by_handle.get_mut(&handle) {
            Some(p) => p.params = rows,
            None => {
                return Err(Status::not_found(
                    "no such prepared statement (closed or expired)",
                ))
            }
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let p = self.prepared(&query.prepared_statement_handle)?;
        self.info_for(&p.sql, &p.params, request.into_inner()).await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let p = self.prepared(&query.prepared_statement_handle)?;
        self.stream(&p.sql, &p.params).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        self.prepared
            .lock()
            .remove(&query.prepared_statement_handle);
        Ok(())
    }

    // --- writes: all refused ----------------------------------------------------------------

    async fn do_put_statement_update(
        &self,
        ticket: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        // Name the statement as the HTTP endpoint does when it can; a read sent as an update
        // is refused too (an update must report a row count).
        match sql::parse_read_only(&self.ctx.state(), &ticket.query) {
            Err(e @ QueryError::Refused(_)) => Err(query_status(e)),
            _ => Err(write_refused("an update (CommandStatementUpdate)")),
        }
    }

    async fn do_put_statement_ingest(
        &self,
        ticket: CommandStatementIngest,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(write_refused(&format!(
            "bulk ingestion into {}",
            ticket.table
        )))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(write_refused("a prepared update"))
    }

    async fn do_put_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(write_refused("a Substrait plan update"))
    }

    // --- metadata ---------------------------------------------------------------------------

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(flight_info(&schema, request.into_inner())?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        let mut names = self.ctx.catalog_names();
        names.sort();
        for name in names {
            builder.append(name);
        }
        let schema = builder.schema();
        Ok(Response::new(batch_stream(schema, builder.build())))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(flight_info(&schema, request.into_inner())?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        // The builder applies the catalog and schema-pattern filters itself.
        let mut builder = query.into_builder();
        for (catalog, schema, _) in self.schemas() {
            builder.append(catalog, schema);
        }
        let schema = builder.schema();
        Ok(Response::new(batch_stream(schema, builder.build())))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(flight_info(&schema, request.into_inner())?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        // The builder applies the filters (catalog, patterns, table types) itself.
        let mut builder = query.into_builder();
        for t in self.tables().await? {
            builder
                .append(
                    &t.catalog,
                    &t.schema,
                    &t.table,
                    t.table_type,
                    &t.arrow_schema,
                )
                .map_err(Status::from)?;
        }
        let schema = builder.schema();
        Ok(Response::new(batch_stream(schema, builder.build())))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(flight_info(&schema, request.into_inner())?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for t in [TableType::Base, TableType::View, TableType::Temporary] {
            builder.append(table_type_name(t));
        }
        let schema = builder.schema();
        Ok(Response::new(batch_stream(schema, builder.build())))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder(&self.sql_info).schema();
        Ok(Response::new(flight_info(&schema, request.into_inner())?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let builder = query.into_builder(&self.sql_info);
        let schema = builder.schema();
        Ok(Response::new(batch_stream(schema, builder.build())))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_basic_credentials() {
        assert_eq!(
            base64_decode("dXNlcjpyZWFkLXRva2Vu").unwrap(),
            b"user:read-token"
        );
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("Y").is_none());
        assert!(base64_decode("a b!").is_none());
    }

    #[test]
    fn credentials_take_the_password_or_the_bearer_token() {
        let basic: MetadataValue<Ascii> = "Basic dXNlcjpyZWFkLXRva2Vu".parse().unwrap();
        assert_eq!(credential(&basic).unwrap(), "read-token");
        let bearer: MetadataValue<Ascii> = "Bearer abc".parse().unwrap();
        assert_eq!(credential(&bearer).unwrap(), "abc");
        let other: MetadataValue<Ascii> = "Digest abc".parse().unwrap();
        assert!(credential(&other).is_err());
    }
}
