//! twinline's read side: incremental DataFusion views over the event streams, a read-only SQL
//! engine over them, and the axum read API (HTTP, WebSocket, SQL) that serves the dashboard.
//!
//! Data flow: the runtime calls [`views::Views::apply`] with batches of decoded events; views
//! append to Arrow builders and keep the small in-memory model the API needs; queries snapshot
//! the views (finished batches are shared, only the open builder is copied). Nothing here ever
//! re-reads the log: full history lives in Parquet (the sinks crate), the views keep a bounded
//! recent window.

// The OpenAPI document is one large `serde_json::json!` literal; the macro recurses per token.
#![recursion_limit = "512"]

pub mod api;
pub mod flight;
mod functions;
pub mod pg;
pub mod sql;
pub mod time;
pub mod views;

pub use api::{app, ApiBackend, ApiConfig, ApiState, ApiToken, IngestAck, Role};
pub use sql::{QueryConfig, QueryEngine, QueryError, QueryResult};
pub use views::{View, ViewConfig, ViewEvent, Views};
