//! Sinks of the event streams outside the log: the Parquet history (every topic as typed Parquet
//! files under a local directory or an object-store path, with history tables and point-in-time
//! functions for the SQL engine).

pub mod history;
