//! The Postgres wire-protocol endpoint: serves the engine's read-only views to psql, Grafana and
//! any Postgres driver (simple and extended query protocol), with token auth, a per-statement
//! time limit, cancel requests, and the catalog fixes those clients need.
//!
//! Built on `datafusion-postgres`: its `DfSessionService` parses (with its Postgres
//! compatibility rewrites) and runs the hook chain
//! `[read-only guard, cursors, SET/SHOW, transactions, executor]`. Our two hooks own the policy:
//! the guard refuses every statement that is not a read or a session statement (SQLSTATE 25006)
//! and plans queries itself so the plan can be verified (`SELECT ... INTO` hides a write); the
//! executor runs queries under the time limit and the connection's cancel signal. The extended
//! protocol's Execute is served by `PgService` directly, because a hook does not see the
//! portal's result formats (binary columns).
//!
//! Read-only is enforced twice: the statement allow-list (`crate::sql::check_sql_statement`)
//! and the plan check (`crate::sql::read_only`), exactly as on the HTTP SQL endpoint.
//! `SET` only ever changes the connection's own settings (kept in the pgwire client metadata);
//! `SET datafusion.*` would change the server-wide session and is refused.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, BooleanArray, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{
    lit, ColumnarValue, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Expr, Set, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider, StartupHandler,
};
use datafusion_postgres::pgwire::api::cancel::CancelHandler;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionGuard, ConnectionHandle, ConnectionManager,
    ErrorHandler, PgWireConnectionState, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type, METADATA_DATABASE, METADATA_USER,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::cancel::CancelRequest;
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::messages::response::TransactionStatus;
use datafusion_postgres::pgwire::messages::startup::{Authentication, SecretKey};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::{DfSessionService, Parser as DfParser, QueryHook};
use futures::sink::{Sink, SinkExt};
use futures::stream::{self, Stream, StreamExt};
use tracing::{debug, info, warn, Instrument};

use crate::api::{constant_time_eq, ApiToken, Role};
use crate::sql::{check_sql_statement, default_catalog, read_only, QueryEngine, QueryError};

/// The parsed statement `datafusion-postgres` keeps per prepared statement: the SQL text and,
/// unless it was empty, the statement and its plan.
type PgStatement = (String, Option<(Statement, LogicalPlan)>);

/// The version we announce. psql and drivers branch on the major version of the catalog they
/// query; the catalog tables of `datafusion-pg-catalog` follow Postgres 16.
const SERVER_VERSION: &str = "16.6";
const SERVER_VERSION_NUM: &str = "160006";

/// The pgwire client metadata key under which `datafusion-postgres` keeps a client's
/// `SET statement_timeout`, in milliseconds (its own constant is private).
const METADATA_STATEMENT_TIMEOUT: &str = "statement_timeout_ms";
/// Likewise for `SET TIME ZONE`.
const METADATA_TIMEZONE: &str = "timezone";

/// Settings of the Postgres endpoint.
#[derive(Debug, Clone, Default)]
pub struct PgConfig {
    /// The API's tokens; any of them is a valid password (every role may read).
    pub tokens: Vec<ApiToken>,
    /// When false, clients are trusted and no password is asked; when true, the server asks for
    /// a cleartext password that must equal one of `tokens` (the user name is only logged).
    pub read_requires_token: bool,
}

/// A running Postgres endpoint. Dropping it (or [`PgServer::shutdown`]) stops accepting and
/// closes the open connections.
#[derive(Debug)]
pub struct PgServer {
    local_addr: SocketAddr,
    /// Dropped with the server: the accept loop and every connection task watch it and end.
    _shutdown: tokio::sync::watch::Sender<()>,
}

impl PgServer {
    /// Serves the engine's views on `listener` (already bound; may be port 0). Connections run on
    /// `engine.runtime_handle()` (the query runtime), never on the caller's runtime.
    pub fn spawn(
        listener: std::net::TcpListener,
        engine: &QueryEngine,
        config: PgConfig,
    ) -> std::io::Result<PgServer> {
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = engine.runtime_handle();
        let handlers = Arc::new(PgHandlers::new(engine, config)?);
        let listener = {
            // Registering the socket with a reactor needs that runtime's context.
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (shutdown, stop) = tokio::sync::watch::channel(());
        runtime.spawn(
            accept_loop(listener, handlers, stop)
                .instrument(tracing::info_span!("pg_server", addr = %local_addr)),
        );
        info!(addr = %local_addr, "postgres endpoint listening");
        Ok(PgServer {
            local_addr,
            _shutdown: shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes the open connections (the same as dropping the server).
    pub fn shutdown(self) {}
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    handlers: Arc<PgHandlers>,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            // Err: the server was dropped (nothing is ever sent).
            _ = stop.changed() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                let handlers = handlers.clone();
                let mut stop = stop.clone();
                let span = tracing::info_span!(
                    "pg_connection",
                    %peer,
                    user = tracing::field::Empty
                );
                tokio::spawn(
                    async move {
                        tokio::select! {
                            result = datafusion_postgres::pgwire::tokio::process_socket(
                                socket, None, handlers,
                            ) => {
                                if let Err(e) = result {
                                    debug!(error = %e, "postgres connection ended with an error");
                                }
                            }
                            _ = stop.changed() => debug!("postgres endpoint shut down"),
                        }
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "postgres endpoint cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    debug!("postgres endpoint stopped accepting");
}

// ------------------------------------------------------------------------------------------
// Handlers

struct PgHandlers {
    service: Arc<PgService>,
    startup: Arc<PgStartup>,
    cancel: Arc<PgCancel>,
}

impl PgHandlers {
    fn new(engine: &QueryEngine, config: PgConfig) -> std::io::Result<Self> {
        let ctx = Arc::new(pg_context(engine).map_err(std::io::Error::other)?);
        let shared = Arc::new(Shared {
            ctx: ctx.clone(),
            timeout: engine.config().timeout,
            rewrites: ClientRewrites::new(),
        });
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(ReadOnlyGuard {
                shared: shared.clone(),
            }),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
            Arc::new(Executor {
                shared: shared.clone(),
            }),
        ];
        let inner = Arc::new(DfSessionService::new_with_hooks(ctx, hooks));
        let parser = Arc::new(PgParser {
            inner: ExtendedQueryHandler::query_parser(inner.as_ref()),
            shared: shared.clone(),
        });
        let manager = Arc::new(ConnectionManager::new());
        let cancels = Arc::new(CancelRegistry::default());
        let mut params = DefaultServerParameterProvider::default();
        params.server_version = SERVER_VERSION.to_string();
        params.default_transaction_read_only = true;
        params.is_superuser = false;
        let tokens = config.read_requires_token.then_some(config.tokens);
        Ok(PgHandlers {
            service: Arc::new(PgService {
                inner,
                parser,
                shared,
            }),
            startup: Arc::new(PgStartup {
                tokens,
                params,
                pids: RandomPidSecretKeyGenerator::default(),
                manager: manager.clone(),
                cancels: cancels.clone(),
            }),
            cancel: Arc::new(PgCancel { manager, cancels }),
        })
    }
}

impl PgWireServerHandlers for PgHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.service.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(PgErrors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// The session all connections of one server share: the engine's views, schemas and functions,
/// plus `pg_catalog` and the few functions clients call that DataFusion lacks.
fn pg_context(engine: &QueryEngine) -> Result<SessionContext, QueryError> {
    let ctx = engine.new_context()?;
    let catalog = default_catalog(&ctx);
    setup_pg_catalog(&ctx, &catalog, EmptyContextProvider)
        .map_err(|e| QueryError::Internal(format!("cannot set up pg_catalog: {e}")))?;
    ctx.register_udf(version_udf());
    ctx.register_udf(ScalarUDF::from(CurrentSetting::new(
        engine.config().timeout,
    )));
    ctx.register_udf(pg_type_name_udf());
    Ok(ctx)
}

/// What the hooks and the service share.
struct Shared {
    /// The session `DfSessionService` also holds (hooks get it as an argument).
    ctx: Arc<SessionContext>,
    /// The engine's limit; a client's `SET statement_timeout` may only lower it.
    timeout: Duration,
    rewrites: ClientRewrites,
}

// ------------------------------------------------------------------------------------------
// Statement classes

/// What the read-only policy makes of a statement.
enum Class {
    /// A read (SELECT, WITH, EXPLAIN, SHOW TABLES/COLUMNS, DESCRIBE): planned, verified, run.
    Query,
    /// `SHOW <setting>` answered from our own settings (see [`show_value`]).
    Show(String, String),
    /// Session statements left to `datafusion-postgres`'s hooks: the client-local `SET`s,
    /// other `SHOW`s, BEGIN/COMMIT/ROLLBACK, DECLARE/FETCH/CLOSE.
    Session,
    /// A `SET` of something we do not keep (`client_encoding`, `SET SESSION ...`):
    /// acknowledged and ignored, as it changes nothing a read depends on.
    IgnoredSet,
    /// Everything else: SQLSTATE 25006.
    Refused(String),
}

/// The `SET`s `datafusion-postgres`'s SET hook keeps in the client's metadata (any other form
/// would fall through to DataFusion's `SET`, which changes the server-wide session).
fn client_local_set(set: &Set) -> bool {
    match set {
        Set::SingleAssignment {
            scope: None,
            hivevar: false,
            variable,
            values,
        } => {
            let var = variable.to_string().to_ascii_lowercase();
            var == "statement_timeout"
                || (matches!(
                    var.as_str(),
                    "datestyle"
                        | "bytea_output"
                        | "intervalstyle"
                        | "application_name"
                        | "extra_float_digits"
                        | "search_path"
                ) && matches!(values.first(), Some(Expr::Value(_))))
        }
        Set::SetTimeZone { local: false, .. } => true,
        _ => false,
    }
}

fn set_variable(set: &Set) -> Option<String> {
    match set {
        Set::SingleAssignment { variable, .. } => Some(variable.to_string().to_ascii_lowercase()),
        Set::MultipleAssignments { assignments } => assignments
            .iter()
            .map(|a| a.name.to_string().to_ascii_lowercase())
            .find(|n| n.starts_with("datafusion.")),
        _ => None,
    }
}

fn classify(stmt: &Statement, client: &(impl ClientInfo + ?Sized), timeout: Duration) -> Class {
    match stmt {
        Statement::Set(set) => {
            if let Some(var) = set_variable(set).filter(|v| v.starts_with("datafusion.")) {
                Class::Refused(format!(
                    "SET {var} is not allowed: it would change the server's shared session \
                     (this endpoint is read-only)"
                ))
            } else if client_local_set(set) {
                Class::Session
            } else {
                Class::IgnoredSet
            }
        }
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|v| v.value.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            match show_value(&name, client, timeout) {
                Some((column, value)) => Class::Show(column, value),
                None => Class::Session,
            }
        }
        Statement::ShowStatus { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. } => Class::Session,
        // A cursor's query is checked when it is declared (see `ReadOnlyGuard`).
        Statement::Declare { .. } => Class::Session,
        other => match check_sql_statement(other) {
            Ok(()) => Class::Query,
            Err(QueryError::Refused(msg)) => Class::Refused(msg),
            Err(e) => Class::Refused(e.to_string()),
        },
    }
}

/// `SHOW` of the settings `datafusion-postgres` does not answer, or answers differently from
/// what this server does: the time zone under its lower-case name, the effective time limit,
/// and the read-only and version settings. `None`: left to its SHOW hook.
fn show_value(
    name: &str,
    client: &(impl ClientInfo + ?Sized),
    timeout: Duration,
) -> Option<(String, String)> {
    match name {
        "timezone" | "time zone" => Some((
            "TimeZone".to_string(),
            client
                .metadata()
                .get(METADATA_TIMEZONE)
                .cloned()
                .unwrap_or_else(|| "UTC".to_string()),
        )),
        "statement_timeout" => Some((
            name.to_string(),
            format!(
                "{}ms",
                statement_limit(client.metadata(), timeout).as_millis()
            ),
        )),
        "server_version"
        | "server_version_num"
        | "transaction_read_only"
        | "default_transaction_read_only"
        | "transaction_isolation"
        | "transaction isolation level"
        | "server_encoding"
        | "client_encoding"
        | "standard_conforming_strings"
        | "integer_datetimes"
        | "max_identifier_length" => {
            let key = match name {
                "transaction isolation level" => "transaction_isolation",
                n => n,
            };
            let value = static_setting(key, timeout)?;
            Some((key.to_string(), value))
        }
        _ => None,
    }
}

/// The server's fixed settings, for `current_setting()` and `SHOW`.
fn static_setting(name: &str, timeout: Duration) -> Option<String> {
    let value = match name {
        "server_version" => SERVER_VERSION,
        "server_version_num" => SERVER_VERSION_NUM,
        "server_encoding" | "client_encoding" => "UTF8",
        // DataFusion resolves unqualified names in `public` only, whatever a client SETs.
        "search_path" => "public",
        "transaction_read_only" | "default_transaction_read_only" => "on",
        "transaction_isolation" | "default_transaction_isolation" => "read committed",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "is_superuser" => "off",
        "max_identifier_length" => "63",
        "timezone" => "UTC",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "lc_collate" | "lc_ctype" | "lc_messages" => "C",
        "application_name" => "",
        "statement_timeout" => return Some(format!("{}ms", timeout.as_millis())),
        _ => return None,
    };
    Some(value.to_string())
}

/// The time limit of the client's next statement: its `SET statement_timeout` when smaller than
/// the engine's limit, else (unset, 0, or larger) the engine's limit.
fn statement_limit(metadata: &HashMap<String, String>, engine: Duration) -> Duration {
    match metadata
        .get(METADATA_STATEMENT_TIMEOUT)
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        Some(ms) if ms > 0 => Duration::from_millis(ms).min(engine),
        _ => engine,
    }
}

fn read_only_error(message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        "25006".to_string(),
        message.into(),
    )))
}

fn api_error(e: DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

/// Plans a read and verifies that the plan writes nothing (`SELECT ... INTO` plans to a
/// `CREATE TABLE`).
async fn plan_query(ctx: &SessionContext, stmt: &Statement) -> PgWireResult<LogicalPlan> {
    let plan = ctx
        .state()
        .statement_to_plan(DfStatement::Statement(Box::new(stmt.clone())))
        .await
        .map_err(api_error)?;
    read_only().verify_plan(&plan).map_err(|e| {
        read_only_error(format!(
            "{} is not allowed: this endpoint is read-only ({})",
            statement_name(stmt),
            e.strip_backtrace()
        ))
    })?;
    Ok(plan)
}

/// `SHOW x` as a one-row query, so both protocols run it like any read.
fn show_plan(column: &str, value: &str) -> PgWireResult<LogicalPlan> {
    LogicalPlanBuilder::empty(true)
        .project(vec![lit(value.to_string()).alias(column)])
        .and_then(|b| b.build())
        .map_err(api_error)
}

/// The statement's leading keyword(s), for messages.
fn statement_name(stmt: &Statement) -> String {
    let text = stmt.to_string();
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or_default().to_ascii_uppercase();
    if first == "SELECT" && text.to_ascii_uppercase().contains(" INTO ") {
        "SELECT ... INTO".to_string()
    } else {
        first
    }
}

// ------------------------------------------------------------------------------------------
// Hooks

/// First in the chain: refuses writes (25006), answers our own SHOWs and ignored SETs, and in
/// the extended protocol plans and verifies every read at Parse.
struct ReadOnlyGuard {
    shared: Arc<Shared>,
}

impl ReadOnlyGuard {
    async fn check_cursor(&self, stmt: &Statement, ctx: &SessionContext) -> PgWireResult<()> {
        if let Statement::Declare { stmts } = stmt {
            for declare in stmts {
                if let Some(query) = &declare.for_query {
                    let inner = Statement::Query(query.clone());
                    match classify_statement_only(&inner) {
                        Some(msg) => return Err(read_only_error(msg)),
                        None => {
                            plan_query(ctx, &inner).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn respond(
        &self,
        stmt: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match classify(stmt, &*client, self.shared.timeout) {
            // Logged once, by `PgErrors`.
            Class::Refused(msg) => Some(Err(read_only_error(msg))),
            Class::IgnoredSet => {
                debug!(statement = %stmt, "SET acknowledged and ignored");
                Some(Ok(Response::Execution(Tag::new("SET"))))
            }
            Class::Show(column, value) => {
                let limits = Limits::start(&*client, self.shared.timeout);
                let plan = match show_plan(&column, &value) {
                    Ok(plan) => plan,
                    Err(e) => return Some(Err(e)),
                };
                let format = FormatOptions::from_client_metadata(client.metadata());
                Some(run_plan(ctx, plan, &Format::UnifiedText, format, limits, stmt).await)
            }
            Class::Session => match self.check_cursor(stmt, ctx).await {
                Ok(()) => None,
                Err(e) => Some(Err(e)),
            },
            Class::Query => None,
        }
    }
}

/// The allow-list alone, without a client (a cursor's query).
fn classify_statement_only(stmt: &Statement) -> Option<String> {
    match check_sql_statement(stmt) {
        Ok(()) => None,
        Err(e) => Some(match e {
            QueryError::Refused(msg) => msg,
            other => other.to_string(),
        }),
    }
}

#[async_trait]
impl QueryHook for ReadOnlyGuard {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.respond(statement, session_context, client).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match classify(statement, client, self.shared.timeout) {
            Class::Refused(msg) => Some(Err(read_only_error(msg))),
            Class::IgnoredSet => Some(
                show_plan_empty().map_err(api_error), // no columns: the client sees NoData
            ),
            Class::Show(column, value) => Some(show_plan(&column, &value)),
            Class::Session => match self.check_cursor(statement, session_context).await {
                Ok(()) => None,
                Err(e) => Some(Err(e)),
            },
            Class::Query => {
                let planning = plan_query(session_context, statement);
                Some(
                    match tokio::time::timeout(self.shared.timeout, planning).await {
                        Ok(planned) => planned,
                        Err(_) => Err(timeout_error()),
                    },
                )
            }
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // Reads never get here (`PgService` runs them); refusals failed at Parse already.
        self.respond(statement, session_context, client).await
    }
}

fn show_plan_empty() -> datafusion::error::Result<LogicalPlan> {
    LogicalPlanBuilder::empty(true).build()
}

/// Last in the chain: runs the reads of the simple protocol. Anything else reaching it (nothing
/// should) is refused rather than left to `datafusion-postgres`'s unrestricted fallback.
struct Executor {
    shared: Arc<Shared>,
}

#[async_trait]
impl QueryHook for Executor {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(msg) = classify_statement_only(statement) {
            return Some(Err(read_only_error(msg)));
        }
        let mut limits = Limits::start(&*client, self.shared.timeout);
        let plan = match limits.run(plan_query(session_context, statement)).await {
            Ok(Ok(plan)) => plan,
            Ok(Err(e)) | Err(e) => return Some(Err(e)),
        };
        let format = FormatOptions::from_client_metadata(client.metadata());
        Some(
            run_plan(
                session_context,
                plan,
                &Format::UnifiedText,
                format,
                limits,
                statement,
            )
            .await,
        )
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Some(Err(read_only_error(format!(
            "{} is not allowed: this endpoint is read-only",
            statement_name(statement)
        ))))
    }
}

// ------------------------------------------------------------------------------------------
// Running a plan under the statement's limits

/// The time limit and the cancel signal of one statement, from its start to its last row.
struct Limits {
    limit: Duration,
    started: Instant,
    deadline: Pin<Box<tokio::time::Sleep>>,
    cancelled: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Limits {
    fn start(client: &(impl ClientInfo + ?Sized), engine_timeout: Duration) -> Limits {
        let limit = statement_limit(client.metadata(), engine_timeout);
        let cancelled: Pin<Box<dyn Future<Output = ()> + Send>> =
            match client.session_extensions().get::<ConnectionCancel>() {
                Some(connection) => {
                    // Subscribing marks the current value seen: only a cancel request that
                    // arrives from now on ends this statement.
                    let mut rx = connection.signal.subscribe();
                    Box::pin(async move {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    })
                }
                None => Box::pin(std::future::pending()),
            };
        Limits {
            limit,
            started: Instant::now(),
            deadline: Box::pin(tokio::time::sleep(limit)),
            cancelled,
        }
    }

    /// Runs `work` unless the statement is cancelled or its time is up first. Never call again
    /// after an `Err`: the cancel future has completed.
    async fn run<F: Future>(&mut self, work: F) -> PgWireResult<F::Output> {
        tokio::select! {
            biased;
            () = &mut self.cancelled => Err(PgWireError::QueryCanceled),
            () = &mut self.deadline => {
                debug!(limit_ms = self.limit.as_millis() as u64, "statement timed out");
                Err(timeout_error())
            }
            out = work => Ok(out),
        }
    }
}

fn timeout_error() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        "57014".to_string(),
        "canceling statement due to statement timeout".to_string(),
    )))
}

/// Starts `plan` and answers with its rows as they come, every batch under `limits`.
async fn run_plan(
    ctx: &SessionContext,
    plan: LogicalPlan,
    format: &Format,
    format_options: FormatOptions,
    mut limits: Limits,
    stmt: &Statement,
) -> PgWireResult<Response> {
    let span = tracing::debug_span!("pg_statement", statement = %statement_name(stmt));
    async move {
        debug!(sql = %stmt, "postgres statement");
        let df = limits
            .run(ctx.execute_logical_plan(plan))
            .await?
            .map_err(api_error)?;
        let fields = Arc::new(arrow_schema_to_pg_fields(
            df.schema().as_arrow(),
            format,
            Some(Arc::new(format_options)),
        )?);
        let batches = limits.run(df.execute_stream()).await?.map_err(api_error)?;
        let rows = row_stream(batches, fields.clone(), limits, tracing::Span::current());
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }
    .instrument(span)
    .await
}

type RowIter = Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send>;

fn row_stream(
    batches: SendableRecordBatchStream,
    fields: Arc<Vec<FieldInfo>>,
    limits: Limits,
    span: tracing::Span,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    stream::unfold(Some((batches, limits, span)), |state| async move {
        let (mut batches, mut limits, span) = state?;
        match limits.run(batches.next()).await {
            Ok(Some(Ok(batch))) => Some((Ok(batch), Some((batches, limits, span)))),
            Ok(Some(Err(e))) => Some((Err(api_error(e)), None)),
            Ok(None) => {
                span.in_scope(|| {
                    debug!(
                        elapsed_ms = limits.started.elapsed().as_millis() as u64,
                        "postgres statement finished"
                    )
                });
                None
            }
            // The batches stream is dropped here: that stops the plan's tasks.
            Err(e) => Some((Err(e), None)),
        }
    })
    .flat_map(move |batch| {
        let rows: RowIter = match batch {
            Ok(batch) => Box::new(encode_recordbatch(fields.clone(), batch)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        stream::iter(rows)
    })
}

// ------------------------------------------------------------------------------------------
// The query handlers

/// `datafusion-postgres`'s service with two changes: client SQL goes through
/// [`ClientRewrites`] first, and the extended protocol's reads are executed here, with the
/// portal's result formats and under the statement's limits.
struct PgService {
    inner: Arc<DfSessionService>,
    parser: Arc<PgParser>,
    shared: Arc<Shared>,
}

#[async_trait]
impl SimpleQueryHandler for PgService {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let query = self.shared.rewrites.apply(query);
        SimpleQueryHandler::do_query(self.inner.as_ref(), client, &query).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgService {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (_, Some((stmt, plan))) = &portal.statement.statement else {
            return ExtendedQueryHandler::do_query(self.inner.as_ref(), client, portal, max_rows)
                .await;
        };
        let read = matches!(
            classify(stmt, &*client, self.shared.timeout),
            Class::Query | Class::Show(..)
        );
        if !read {
            return ExtendedQueryHandler::do_query(self.inner.as_ref(), client, portal, max_rows)
                .await;
        }
        if client.transaction_status() == TransactionStatus::Error {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".to_string(),
                "25P01".to_string(),
                "current transaction is aborted, commands ignored until end of transaction block"
                    .to_string(),
            ))));
        }
        let limits = Limits::start(&*client, self.shared.timeout);
        let plan = bind_parameters(&self.parser, portal, plan)?;
        let format = FormatOptions::from_client_metadata(client.metadata());
        run_plan(
            &self.shared.ctx,
            plan,
            &portal.result_column_format,
            format,
            limits,
            stmt,
        )
        .await
    }
}

/// Replaces the plan's placeholders with the portal's bound values, decoded with the types the
/// client was told in ParameterDescription.
fn bind_parameters(
    parser: &PgParser,
    portal: &Portal<PgStatement>,
    plan: &LogicalPlan,
) -> PgWireResult<LogicalPlan> {
    let wire_types = parser.get_parameter_types(&portal.statement.statement)?;
    if wire_types.is_empty() {
        return Ok(plan.clone());
    }
    let inferred = plan.get_parameter_types().map_err(api_error)?;
    let mut inferred: Vec<(u32, Option<DataType>)> = inferred
        .into_iter()
        .map(|(id, t)| {
            (
                id.trim_start_matches('$')
                    .parse::<u32>()
                    .unwrap_or(u32::MAX),
                t,
            )
        })
        .collect();
    inferred.sort_by_key(|(id, _)| *id);
    let inferred: Vec<Option<&DataType>> = inferred.iter().map(|(_, t)| t.as_ref()).collect();
    let wire: Vec<Option<&Type>> = wire_types.iter().map(Some).collect();
    let values = deserialize_parameters_with_server_types(portal, &inferred, &wire)?;
    plan.clone()
        .replace_params_with_values(&values)
        .map_err(api_error)
}

/// `datafusion-postgres`'s parser, after [`ClientRewrites`].
struct PgParser {
    inner: Arc<DfParser>,
    shared: Arc<Shared>,
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let sql = self.shared.rewrites.apply(sql);
        self.inner.parse_sql(client, &sql, types).await
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &PgStatement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.inner.get_result_schema(stmt, column_format)
    }
}

// ------------------------------------------------------------------------------------------
// Client SQL rewrites

/// Whole fragments of known client queries that DataFusion cannot run as sent, replaced before
/// `datafusion-postgres` parses them (its own table of such fragments runs after, and would
/// otherwise turn the Grafana one into an always-false test). Matching is on tokens, so
/// whitespace and keyword case do not matter.
const CLIENT_REWRITES: &[(&str, &str)] = &[
    // Grafana's schema constraint (table list, column list): the search path as a table of
    // array elements, which DataFusion cannot plan (a scalar function in FROM). Unqualified
    // names resolve in `public` only, so that is the whole search path.
    (
        r#"quote_ident(table_schema) IN (
            SELECT
              CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
            FROM
              generate_series(
                array_lower(string_to_array(current_setting('search_path'),','),1),
                array_upper(string_to_array(current_setting('search_path'),','),1)
              ) as i,
              string_to_array(current_setting('search_path'),',') s
            )"#,
        "quote_ident(table_schema) IN ('public')",
    ),
    // Grafana's column list: information_schema names Arrow types (`Float64`); Grafana wants
    // Postgres' names (`double precision`) to recognise time and numeric columns.
    (
        r#"data_type AS "type" FROM information_schema.columns"#,
        r#"twinline_pg_type_name(data_type) AS "type" FROM information_schema.columns"#,
    ),
    // psql's `\dt` lists relkind 'r' and 'p' only; every relation here is a view ('v'), so
    // `\dt` would never list anything. It lists the views too (their type still says "view").
    ("c.relkind IN ('r','p','')", "c.relkind IN ('r','p','v','')"),
];

struct ClientRewrites {
    rules: Vec<(Vec<Token>, String)>,
}

fn significant_tokens(sql: &str) -> Option<Vec<Token>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    Some(
        tokens
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect(),
    )
}

/// Token equality with unquoted words compared case-insensitively.
fn same_token(a: &Token, b: &Token) -> bool {
    match (a, b) {
        (Token::Word(x), Token::Word(y)) => {
            x.quote_style == y.quote_style
                && if x.quote_style.is_none() {
                    x.value.eq_ignore_ascii_case(&y.value)
                } else {
                    x.value == y.value
                }
        }
        _ => a == b,
    }
}

impl ClientRewrites {
    fn new() -> Self {
        let rules = CLIENT_REWRITES
            .iter()
            .map(|(from, to)| {
                let from = significant_tokens(from).expect("client rewrite patterns tokenize");
                (from, (*to).to_string())
            })
            .collect();
        ClientRewrites { rules }
    }

    /// `sql` with every known fragment replaced. Everything else is copied from `sql` as it
    /// is (tokens do not print back verbatim: quotes inside literals would be lost).
    fn apply<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
            return Cow::Borrowed(sql);
        };
        let significant: Vec<&TokenWithSpan> = tokens
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .collect();
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut out = String::new();
        let mut copied = 0; // bytes of `sql` already in `out`
        let mut changed = false;
        let mut s = 0;
        while s < significant.len() {
            let matched = self.rules.iter().find(|(from, _)| {
                s + from.len() <= significant.len()
                    && from
                        .iter()
                        .zip(&significant[s..])
                        .all(|(p, t)| same_token(p, &t.token))
            });
            match matched {
                Some((from, to)) => {
                    let start = byte_offset(sql, &line_starts, significant[s].span.start);
                    let end =
                        byte_offset(sql, &line_starts, significant[s + from.len() - 1].span.end);
                    out.push_str(&sql[copied..start]);
                    out.push_str(to);
                    copied = end;
                    s += from.len();
                    changed = true;
                }
                None => s += 1,
            }
        }
        if !changed {
            return Cow::Borrowed(sql);
        }
        out.push_str(&sql[copied..]);
        Cow::Owned(out)
    }
}

/// The byte offset of a tokenizer location (1-based line, 1-based column in characters).
fn byte_offset(sql: &str, line_starts: &[usize], at: Location) -> usize {
    let line = (at.line as usize).saturating_sub(1);
    let Some(&line_start) = line_starts.get(line) else {
        return sql.len();
    };
    sql[line_start..]
        .char_indices()
        .nth((at.column as usize).saturating_sub(1))
        .map_or(sql.len(), |(i, _)| line_start + i)
}

// ------------------------------------------------------------------------------------------
// Functions clients call

/// `version()` in the form clients parse (`PostgreSQL <major>.<minor> ...`).
fn version_udf() -> ScalarUDF {
    let version = format!(
        "PostgreSQL {SERVER_VERSION} (twinline read-only views; Apache DataFusion {})",
        datafusion::DATAFUSION_VERSION
    );
    datafusion::logical_expr::create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(
                datafusion::scalar::ScalarValue::Utf8(Some(version.clone())),
            ))
        }),
    )
}

/// `twinline_pg_type_name(arrow_type)`: the SQL name Postgres' information_schema gives the
/// column type that Arrow type is sent as (`Float64` -> `double precision`); unknown names pass
/// through unchanged.
fn pg_type_name_udf() -> ScalarUDF {
    datafusion::logical_expr::create_udf(
        "twinline_pg_type_name",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = string_array(&arrays[0])?;
            let out: StringArray = names.iter().map(|name| name.map(pg_type_name)).collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

fn pg_type_name(arrow_type: &str) -> String {
    let Ok(data_type) = arrow_type.parse::<DataType>() else {
        return arrow_type.to_string();
    };
    let Ok(pg) = datafusion_postgres::arrow_pg::datatypes::into_pg_type(&data_type) else {
        return arrow_type.to_string();
    };
    let names = [
        (Type::BOOL, "boolean"),
        (Type::INT2, "smallint"),
        (Type::INT4, "integer"),
        (Type::INT8, "bigint"),
        (Type::FLOAT4, "real"),
        (Type::FLOAT8, "double precision"),
        (Type::NUMERIC, "numeric"),
        (Type::TEXT, "text"),
        (Type::VARCHAR, "character varying"),
        (Type::BPCHAR, "character"),
        (Type::BYTEA, "bytea"),
        (Type::DATE, "date"),
        (Type::TIME, "time without time zone"),
        (Type::TIMESTAMP, "timestamp without time zone"),
        (Type::TIMESTAMPTZ, "timestamp with time zone"),
        (Type::INTERVAL, "interval"),
        (Type::JSON, "json"),
        (Type::JSONB, "jsonb"),
        (Type::UUID, "uuid"),
    ];
    match names.iter().find(|(t, _)| *t == pg) {
        Some((_, name)) => (*name).to_string(),
        // Arrays and the rest: Postgres' own short name (`_text`).
        None => pg.name().to_string(),
    }
}

/// `current_setting(name [, missing_ok])` over the server's fixed settings (Grafana asks for
/// `server_version_num` and `search_path`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
    timeout_ms: u128,
}

impl CurrentSetting {
    fn new(timeout: Duration) -> Self {
        CurrentSetting {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
                ],
                Volatility::Stable,
            ),
            timeout_ms: timeout.as_millis(),
        }
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = string_array(&arrays[0])?;
        let missing_ok = match arrays.get(1) {
            Some(a) => Some(
                a.as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| {
                        DataFusionError::Internal("current_setting: missing_ok type".into())
                    })?
                    .clone(),
            ),
            None => None,
        };
        let timeout = Duration::from_millis(self.timeout_ms.min(u64::MAX as u128) as u64);
        let mut out = StringBuilder::with_capacity(names.len(), names.len() * 8);
        for row in 0..names.len() {
            if names.is_null(row) {
                out.append_null();
                continue;
            }
            let name = names.value(row).to_ascii_lowercase();
            match static_setting(&name, timeout) {
                Some(value) => out.append_value(value),
                None if missing_ok.as_ref().is_some_and(|m| m.value(row)) => out.append_null(),
                None => {
                    return Err(DataFusionError::Execution(format!(
                        "unrecognized configuration parameter \"{name}\""
                    )))
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

fn string_array(array: &ArrayRef) -> datafusion::error::Result<StringArray> {
    let cast = arrow::compute::cast(array, &DataType::Utf8)?;
    cast.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("current_setting: name type".into()))
}

// ------------------------------------------------------------------------------------------
// Startup, auth and cancel

/// Trust, or a cleartext password that must be one of the API's tokens.
struct PgStartup {
    /// `None`: trust (no password asked).
    tokens: Option<Vec<ApiToken>>,
    params: DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
    manager: Arc<ConnectionManager>,
    cancels: Arc<CancelRegistry>,
}

impl PgStartup {
    /// The role of the token equal to `password`. Compares against every token, each in
    /// constant time, so neither a token's bytes nor its position leak through timing.
    fn role_of(&self, password: &str) -> Option<Role> {
        let tokens = self.tokens.as_deref().unwrap_or_default();
        tokens.iter().fold(None, |found, t| {
            if constant_time_eq(t.token.as_bytes(), password.as_bytes()) {
                Some(t.role)
            } else {
                found
            }
        })
    }

    async fn accept<C>(&self, client: &mut C, auth: &'static str) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, secret_key) = self.pids.generate(&*client);
        client.set_pid_and_secret_key(pid, secret_key.clone());
        // What pgwire's own startup handlers do (its `register_connection` is crate-private):
        // the handle lets a cancel request interrupt the statement being planned.
        let (handle, guard) = self.manager.register(pid, secret_key.clone());
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert::<ConnectionGuard>(guard);
        // Ours reaches the rows still streaming after pgwire's handle has been disarmed.
        client
            .session_extensions()
            .insert(self.cancels.register(pid, &secret_key));
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_default();
        let database = client
            .metadata()
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_default();
        tracing::Span::current().record("user", user.as_str());
        info!(%user, %database, auth, pid, "postgres client connected");
        finish_authentication(client, &self.params).await
    }
}

#[async_trait]
impl StartupHandler for PgStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.tokens.is_some() {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::CleartextPassword,
                        ))
                        .await?;
                } else {
                    self.accept(client, "trust").await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(password)
                if self.tokens.is_some()
                    && matches!(
                        client.state(),
                        PgWireConnectionState::AuthenticationInProgress
                    ) =>
            {
                let password = password.into_password()?;
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                match self.role_of(&password.password) {
                    Some(role) => {
                        debug!(%user, ?role, "postgres password is a valid token");
                        self.accept(client, "token").await?;
                    }
                    None => {
                        warn!(%user, "postgres login refused: the password is not a valid token");
                        return Err(PgWireError::InvalidPassword(user));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A connection's `(pid, secret key)`, the key as bytes (protocol 3.0 sends an `i32`, 3.2 bytes).
type BackendKey = (i32, Vec<u8>);
/// Bumped by each cancel request of the connection.
type CancelSignal = Arc<tokio::sync::watch::Sender<u64>>;

/// Cancel signals of the open connections.
#[derive(Default)]
struct CancelRegistry {
    live: parking_lot::Mutex<HashMap<BackendKey, CancelSignal>>,
}

impl CancelRegistry {
    fn register(self: &Arc<Self>, pid: i32, secret_key: &SecretKey) -> ConnectionCancel {
        let key = (pid, secret_key.to_bytes().to_vec());
        let signal = Arc::new(tokio::sync::watch::channel(0u64).0);
        self.live.lock().insert(key.clone(), signal.clone());
        ConnectionCancel {
            key,
            signal,
            registry: self.clone(),
        }
    }

    fn cancel(&self, pid: i32, secret_key: &SecretKey) -> bool {
        let key = (pid, secret_key.to_bytes().to_vec());
        let signal = self.live.lock().get(&key).cloned();
        match signal {
            Some(signal) => {
                signal.send_modify(|generation| *generation += 1);
                true
            }
            None => false,
        }
    }
}

/// A connection's cancel signal, kept in its session extensions; unregisters when the
/// connection ends.
struct ConnectionCancel {
    key: BackendKey,
    signal: CancelSignal,
    registry: Arc<CancelRegistry>,
}

impl Drop for ConnectionCancel {
    fn drop(&mut self) {
        self.registry.live.lock().remove(&self.key);
    }
}

struct PgCancel {
    manager: Arc<ConnectionManager>,
    cancels: Arc<CancelRegistry>,
}

#[async_trait]
impl CancelHandler for PgCancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let planning = self.manager.cancel(request.pid, &request.secret_key).await;
        let known = self.cancels.cancel(request.pid, &request.secret_key);
        debug!(
            pid = request.pid,
            known = planning || known,
            "postgres cancel request"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Errors

/// Gives DataFusion's errors their SQLSTATE (pgwire would answer XX000 for all of them) and
/// logs each failed statement once.
struct PgErrors;

impl ErrorHandler for PgErrors {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::ApiError(inner) = error {
            let classified = if let Some(e) = inner.downcast_ref::<DataFusionError>() {
                Some((sqlstate(e), e.find_root().strip_backtrace()))
            } else {
                // `datafusion-postgres` parses with sqlparser directly.
                inner
                    .downcast_ref::<ParserError>()
                    .map(|e| ("42601", e.to_string()))
            };
            if let Some((code, message)) = classified {
                *error = PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".to_string(),
                    code.to_string(),
                    message,
                )));
            }
        }
        match error {
            PgWireError::UserError(info) if !info.code.starts_with("XX") => {
                debug!(code = %info.code, message = %info.message, "postgres statement failed")
            }
            PgWireError::InvalidPassword(_) | PgWireError::QueryCanceled => {
                debug!(error = %error, "postgres request failed")
            }
            other => warn!(error = %other, "postgres request failed"),
        }
    }
}

fn sqlstate(e: &DataFusionError) -> &'static str {
    match e.find_root() {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::SchemaError(..) => "42703",
        DataFusionError::Plan(msg) if msg.contains("not found") => "42P01",
        DataFusionError::Plan(_) => "42000",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ResourcesExhausted(_) => "53000",
        DataFusionError::Execution(_) | DataFusionError::ArrowError(..) => "22000",
        _ => "XX000",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_match_tokens_not_text() {
        let r = ClientRewrites::new();
        let sql = "SELECT c.relname FROM pg_class c WHERE C.RELKIND in ( 'r' , 'p' , '' ) AND x = 'it''s'";
        let out = r.apply(sql);
        assert!(out.contains("'v'"), "{out}");
        assert!(out.contains("'it''s'"), "literals survive: {out}");
        assert!(matches!(r.apply("SELECT 1"), Cow::Borrowed(_)));
        // Positions count characters per line.
        let sql = "SELECT 'é\n' AS x,\n  c.relkind\tIN ('r','p','') -- ü\nFROM pg_class c";
        assert_eq!(
            r.apply(sql),
            "SELECT 'é\n' AS x,\n  c.relkind IN ('r','p','v','') -- ü\nFROM pg_class c"
        );
    }

    #[test]
    fn arrow_type_names_become_postgres_names() {
        use arrow::datatypes::TimeUnit;
        for (dt, name) in [
            (DataType::Float64, "double precision"),
            (DataType::Utf8, "text"),
            (DataType::Int32, "integer"),
            (DataType::Int64, "bigint"),
            (DataType::Boolean, "boolean"),
            (
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                "timestamp with time zone",
            ),
        ] {
            assert_eq!(pg_type_name(&dt.to_string()), name, "{dt}");
        }
        assert_eq!(pg_type_name("not a type"), "not a type");
    }

    #[test]
    fn client_timeout_only_lowers_the_engine_limit() {
        let engine = Duration::from_secs(10);
        let mut m = HashMap::new();
        assert_eq!(statement_limit(&m, engine), engine);
        m.insert(METADATA_STATEMENT_TIMEOUT.to_string(), "250".to_string());
        assert_eq!(statement_limit(&m, engine), Duration::from_millis(250));
        m.insert(METADATA_STATEMENT_TIMEOUT.to_string(), "60000".to_string());
        assert_eq!(statement_limit(&m, engine), engine);
        m.insert(METADATA_STATEMENT_TIMEOUT.to_string(), "0".to_string());
        assert_eq!(statement_limit(&m, engine), engine);
    }
}
