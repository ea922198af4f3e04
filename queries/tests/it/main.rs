//! twinline-queries integration tests: one binary (datafusion links once), a module per area.

mod api;
mod common;
mod flight;
mod pg;
mod sql;
mod views;
mod ws;
