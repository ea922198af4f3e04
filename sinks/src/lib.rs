//! Sinks of the event streams outside the log: the Parquet history (every topic as typed Parquet
//! files under a local directory or an object-store path, with history tables and point-in-time
//! functions for the SQL engine), and the Scylla/Cassandra sink of the served state.

pub mod cassandra;
pub mod history;
