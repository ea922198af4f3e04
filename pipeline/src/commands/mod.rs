//! One module per CLI command. Commands use `anyhow` and add context; libraries below use typed errors.

pub mod audit;
pub mod bench;
pub mod bench_api;
pub mod bench_kafka;
pub mod bench_vision;
pub mod detect;
pub mod logcmd;
pub mod query;
pub mod registry;
pub mod replay;
pub mod run;
pub mod schedule;
pub mod simulate;

use std::time::Duration;

use crate::config::Config;

/// The views' settings from the config.
pub fn view_config(cfg: &Config) -> twinline_queries::views::ViewConfig {
    twinline_queries::views::ViewConfig {
        factory_id: cfg.api.factory_id.clone(),
        ..Default::default()
    }
}

/// The SQL engine's limits from the config.
pub fn query_config(cfg: &Config) -> twinline_queries::sql::QueryConfig {
    twinline_queries::sql::QueryConfig {
        timeout: Duration::from_millis(cfg.api.query_timeout_ms),
        default_max_rows: cfg.api.query_max_rows.min(10_000),
        max_rows_cap: cfg.api.query_max_rows,
        ..Default::default()
    }
}

/// The API's settings from the config.
pub fn api_config(cfg: &Config) -> twinline_queries::api::ApiConfig {
    use twinline_queries::api::{ApiConfig, ApiToken, Role};
    ApiConfig {
        factory_id: cfg.api.factory_id.clone(),
        read_requires_token: cfg.api.read_requires_token,
        query_timeout: Duration::from_millis(cfg.api.query_timeout_ms),
        query_max_rows: cfg.api.query_max_rows,
        ws_push_interval: Duration::from_millis(cfg.api.ws_push_interval_ms),
        ws_queue: cfg.api.ws_queue,
        tokens: cfg
            .api
            .tokens
            .iter()
            .map(|t| ApiToken {
                token: t.token.clone(),
                role: match t.role.as_str() {
                    "admin" => Role::Admin,
                    "write" => Role::Write,
                    _ => Role::Read,
                },
            })
            .collect(),
        ..ApiConfig::default()
    }
}

/// Parse "2h", "90m", "3600s" (humantime).
pub fn parse_duration_ms(s: &str) -> anyhow::Result<i64> {
    let d = humantime::parse_duration(s).map_err(|e| anyhow::anyhow!("bad duration `{s}`: {e}"))?;
    Ok(d.as_millis() as i64)
}

/// Parse an RFC 3339 time into Unix milliseconds.
pub fn parse_time_ms(s: &str) -> anyhow::Result<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| anyhow::anyhow!("bad RFC 3339 time `{s}`: {e}"))?;
    Ok(t.timestamp_millis())
}

pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}
