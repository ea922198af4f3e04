//! The data directory: embedded log, schema registry, codec and checkpoints, opened together.
//!
//! Layout under `--data DIR`: `log/` (topics, partitions, segments), `registry/` (schema ids),
//! `checkpoints/` (one file per task).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use twinline_log::{EmbeddedLog, EventLog, FsyncPolicy, LogConfig};
use twinline_schemas::{Codec, EmbeddedRegistry, SchemaRegistry, Topic};

use crate::config::{Config, FsyncMode};

pub struct Store {
    pub dir: PathBuf,
    pub log: Arc<EmbeddedLog>,
    pub registry: Arc<EmbeddedRegistry>,
    pub codec: Arc<Codec>,
    pub partitions: u32,
}

/// Partition count of a topic: per-machine topics (and job-events) share one count so they are
/// co-partitioned; the plant-wide schedule has one partition.
pub fn topic_partitions(topic: Topic, partitions: u32) -> u32 {
    match topic {
        Topic::ScheduleChanges => 1,
        _ => partitions,
    }
}

pub fn log_config(cfg: &Config) -> LogConfig {
    LogConfig {
        fsync: match cfg.log.fsync {
            FsyncMode::Never => FsyncPolicy::Never,
            FsyncMode::Always => FsyncPolicy::Always,
            FsyncMode::Interval => FsyncPolicy::IntervalMs(cfg.log.fsync_interval_ms),
        },
        segment_bytes: cfg.log.segment_bytes,
        retention_bytes: (cfg.log.retention_bytes > 0).then_some(cfg.log.retention_bytes),
        retention_ms: (cfg.log.retention_hours > 0)
            .then_some(cfg.log.retention_hours as i64 * 3_600_000),
        ..LogConfig::default()
    }
}

impl Store {
    /// Open (creating if needed) for writing; takes the directory's writer lock.
    pub fn open(dir: &Path, cfg: &Config) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        let log = Arc::new(
            EmbeddedLog::open(&dir.join("log"), log_config(cfg))
                .with_context(|| format!("opening the event log in {}", dir.display()))?,
        );
        let registry = Arc::new(
            EmbeddedRegistry::open(&dir.join("registry"))
                .with_context(|| format!("opening the schema registry in {}", dir.display()))?,
        );
        let codec = Arc::new(
            Codec::new(registry.clone() as Arc<dyn SchemaRegistry>)
                .context("registering schemas")?,
        );
        let existing = log.partitions(Topic::SensorReadings.name()).ok();
        let partitions = match existing {
            Some(n) if n != cfg.log.partitions => {
                tracing::warn!(
                    configured = cfg.log.partitions,
                    existing = n,
                    "data directory already has a partition count; keeping it"
                );
                n
            }
            Some(n) => n,
            None => cfg.log.partitions,
        };
        for t in Topic::ALL {
            log.create_topic(t.name(), topic_partitions(t, partitions))
                .with_context(|| format!("creating topic {}", t.name()))?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            log,
            registry,
            codec,
            partitions,
        })
    }

    /// Open a directory that another process may be writing, without taking its lock.
    pub fn open_read_only(dir: &Path) -> Result<Store> {
        if !dir.join("log").exists() {
            bail!(
                "{} is not a twinline data directory (no log/ inside)",
                dir.display()
            );
        }
        let log = Arc::new(
            EmbeddedLog::open_read_only(&dir.join("log"))
                .with_context(|| format!("opening {}", dir.display()))?,
        );
        let registry = Arc::new(
            EmbeddedRegistry::open(&dir.join("registry")).context("opening the schema registry")?,
        );
        let codec = Arc::new(
            Codec::new(registry.clone() as Arc<dyn SchemaRegistry>).context("loading schemas")?,
        );
        let partitions = log
            .partitions(Topic::SensorReadings.name())
            .context("reading topic metadata")?;
        Ok(Store {
            dir: dir.to_path_buf(),
            log,
            registry,
            codec,
            partitions,
        })
    }

    pub fn checkpoint_dir(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    pub fn log_dyn(&self) -> Arc<dyn EventLog> {
        self.log.clone()
    }
}
