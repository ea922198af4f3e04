//! The data directory and the event log (embedded, or Kafka with `distributed.kafka`), schema
//! registry, codec and checkpoints, opened together.
//!
//! Layout under `--data DIR`: `log/` (topics, partitions, segments; embedded only), `registry/`
//! (schema ids, or `registry/remote-url` naming the Confluent-compatible registry the directory's
//! records were written against), `checkpoints/` (one file per task; embedded only: on Kafka the
//! checkpoints live in the `_twinline-checkpoints` topic).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use twinline_kafka::{KafkaConfig, KafkaLog};
use twinline_log::{EmbeddedLog, EventLog, FsyncPolicy, LogConfig};
use twinline_registry::RemoteRegistry;
use twinline_schemas::{Codec, EmbeddedRegistry, SchemaRegistry, Topic};

use crate::config::{Config, FsyncMode};

pub struct Store {
    pub dir: PathBuf,
    pub log: Arc<dyn EventLog>,
    /// The Kafka backend, when the log is Kafka (`distributed.kafka`).
    pub kafka: Option<Arc<KafkaLog>>,
    pub registry: Arc<dyn SchemaRegistry>,
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

/// Name of the file in `<data>/registry/` that records the remote registry in use.
const REMOTE_URL_FILE: &str = "remote-url";
const REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn registry_name(dir: &Path, url: &str) -> String {
    if url.is_empty() {
        format!("the registry in {}", dir.join("registry").display())
    } else {
        format!("the schema registry at {url}")
    }
}

/// The remote registry URL the data directory records, if any.
fn recorded_registry(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("registry").join(REMOTE_URL_FILE))
        .map(|u| u.trim().to_string())
        .ok()
        .filter(|u| !u.is_empty())
}

/// The data directory's own registry, or the remote one at `url` (recorded in the directory, so
/// read-only tools resolve the same ids). A directory that has used one registry refuses the
/// other: its records carry that registry's ids.
fn open_registry(dir: &Path, url: &str) -> Result<Arc<dyn SchemaRegistry>> {
    let reg_dir = dir.join("registry");
    let marker = reg_dir.join(REMOTE_URL_FILE);
    let recorded = recorded_registry(dir);
    let has_local = reg_dir.join("registry.json").exists();
    if url.is_empty() {
        if let Some(r) = recorded {
            bail!(
                "{} was written with schema ids of the registry at {r}: pass --schema-registry {r}",
                dir.display()
            );
        }
        return Ok(Arc::new(EmbeddedRegistry::open(&reg_dir).with_context(
            || format!("opening the schema registry in {}", dir.display()),
        )?));
    }
    if has_local {
        bail!(
            "{} already holds records with its own schema ids (registry/registry.json): use a \
             fresh --data directory with --schema-registry",
            dir.display()
        );
    }
    if let Some(r) = recorded.filter(|r| r != url) {
        tracing::warn!(recorded = %r, now = %url, "the data directory used another registry URL before; ids must be the same registry's");
    }
    std::fs::create_dir_all(&reg_dir).with_context(|| format!("creating {}", reg_dir.display()))?;
    std::fs::write(&marker, format!("{url}\n"))
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(Arc::new(RemoteRegistry::new(url, REMOTE_TIMEOUT)?))
}

impl Store {
    /// Open (creating if needed) for writing; takes the directory's writer lock.
    pub fn open(dir: &Path, cfg: &Config) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        let kafka = open_kafka(cfg)?;
        let log: Arc<dyn EventLog> = match &kafka {
            Some(k) => k.clone(),
            None => Arc::new(
                EmbeddedLog::open(&dir.join("log"), log_config(cfg))
                    .with_context(|| format!("opening the event log in {}", dir.display()))?,
            ),
        };
        let registry = open_registry(dir, &cfg.distributed.schema_registry)?;
        let codec = Arc::new(Codec::new(registry.clone()).with_context(|| {
            format!(
                "registering twinline's schemas with {}",
                registry_name(dir, &cfg.distributed.schema_registry)
            )
        })?);
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
            kafka,
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
        let registry: Arc<dyn SchemaRegistry> = match recorded_registry(dir) {
            None => Arc::new(
                EmbeddedRegistry::open(&dir.join("registry"))
                    .context("opening the schema registry")?,
            ),
            Some(remote) => Arc::new(RemoteRegistry::new(&remote, REMOTE_TIMEOUT)?),
        };
        let codec = Arc::new(Codec::new(registry.clone()).context("loading schemas")?);
        let partitions = log
            .partitions(Topic::SensorReadings.name())
            .context("reading topic metadata")?;
        Ok(Store {
            dir: dir.to_path_buf(),
            log,
            kafka: None,
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

/// The Kafka log when `distributed.kafka` is set. Kafka mode needs a shared schema registry:
/// every instance and every producer must agree on the ids in the records.
pub fn open_kafka(cfg: &Config) -> Result<Option<Arc<KafkaLog>>> {
    let d = &cfg.distributed;
    if d.kafka.is_empty() {
        return Ok(None);
    }
    if d.schema_registry.is_empty() {
        bail!(
            "Kafka mode needs a shared schema registry: pass --schema-registry <url> (for example \
             `twinline registry --kafka {}`), or set distributed.schema_registry",
            d.kafka
        );
    }
    let inputs = Topic::ALL
        .iter()
        .filter(|t| t.is_input())
        .map(|t| t.name().to_string())
        .collect();
    let mut kc = KafkaConfig::new(d.kafka.clone(), inputs);
    kc.prefix = d.topic_prefix.clone();
    kc.replication = d.replication.max(1);
    kc.session_timeout_ms = d.session_timeout_ms;
    kc.instance_id = d.instance_id.clone();
    kc.transaction_timeout_ms = d.transaction_timeout_ms;
    kc.stalled_call = std::time::Duration::from_millis(d.stalled_call_ms);
    kc.properties = d.librdkafka.clone().into_iter().collect();
    let log = KafkaLog::open(kc).with_context(|| format!("connecting to Kafka at {}", d.kafka))?;
    Ok(Some(Arc::new(log)))
}
