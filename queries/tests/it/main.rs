//! twinline-queries integration tests: one binary (datafusion links once), a module per area.

mod api;
mod common;
mod sql;
mod views;
mod ws;
