//! End-to-end scenarios against the real `twinline` binary and data directories.

mod cassandra;
mod crash_recovery;
mod dead_letters;
mod history;
mod kafka;
mod predictive_flow;
mod registry;
mod replay;
mod rl_dispatch;
mod scheduling_flow;
mod served_api;
mod sim_resume;
mod sql_clients;
mod vision_flow;
