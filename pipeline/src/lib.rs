//! twinline's pipeline: configuration, the data directory, the runtime and the CLI commands.

pub mod commands;
pub mod config;
pub mod dispatch;
pub mod embedded;
pub mod runtime;
pub mod store;
pub mod telemetry;
