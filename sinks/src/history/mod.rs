//! The Parquet history: every topic's records (images without their pixels) as typed Parquet
//! files partitioned by topic, event date and machine
//! (`<topic>/date=<YYYY-MM-DD>/machine=<id>/<n>.parquet`) under a local directory or an
//! object-store path, listed by one manifest; the `history` schema of SQL tables over them; and
//! point-in-time table functions (`twin_state_at`) answered from the history and the log.

mod at;
pub mod bench;
mod rows;
mod store;
mod table;
mod writer;

use std::time::Duration;

pub use at::{cut_origin, TwinStateAt};
pub use rows::{history_schema, machine_of, table_name, LOG_COLUMNS, PLANT};
pub use store::{FileEntry, HistoryStore, Manifest, MANIFEST};
pub use table::{register, HistorySchema, HistoryTable};
pub use writer::{date_of, path_segment, HistoryWriter, WriteStats};

/// Settings of the history (`[history]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Write the history at all.
    pub enabled: bool,
    /// Where: empty = `<data dir>/history`; a directory; or a URL (`file:///…`,
    /// `s3://bucket/prefix` with the `AWS_*` environment variables).
    pub path: String,
    /// Buffered rows that trigger a flush.
    pub flush_rows: usize,
    /// Longest a buffered row waits for its flush (wall time; file boundaries never change what
    /// a query returns).
    pub flush_interval: Duration,
    /// A (topic, date, machine) group with this many small files is merged into one.
    pub compact_min_files: usize,
    /// Files with at least this many rows are not merged again.
    pub compact_target_rows: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Dates older than this many days before the newest event time are dropped (0 = keep all).
    pub retention_days: u32,
    /// How long replaced files stay readable for queries that planned before the change.
    pub delete_grace: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            path: String::new(),
            flush_rows: 1_000_000,
            flush_interval: Duration::from_secs(10),
            compact_min_files: 8,
            compact_target_rows: 2_000_000,
            row_group_rows: 256 * 1024,
            retention_days: 0,
            delete_grace: Duration::from_secs(60),
        }
    }
}

/// Why the history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history configuration: {0}")]
    Config(String),
    #[error("history storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("history file: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("history rows: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("history manifest: {0}")]
    Manifest(String),
    #[error("history log access: {0}")]
    Log(#[from] twinline_log::LogError),
    #[error("history: {0}")]
    Io(String),
}
