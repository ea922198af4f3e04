//! The one typed configuration: embedded defaults, an optional file, environment overrides.
//!
//! Precedence (later wins): `default.toml` compiled into the binary, the file given with
//! `--config`, environment variables `TWINLINE_<SECTION>__<KEY>`, then command-line flags applied
//! by the command itself. Unknown keys anywhere are an error, so a typo never silently does nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

const DEFAULTS: &str = include_str!("default.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data: DataConfig,
    pub log: LogSection,
    pub runtime: RuntimeConfig,
    pub api: ApiSection,
    #[serde(default)]
    pub twin: twinline_processors::twin::TwinConfig,
    #[serde(default)]
    pub simulator: twinline_sim::SimConfig,
    #[serde(default)]
    pub predictive: twinline_processors::predictive::PredictiveConfig,
    pub models: ModelsConfig,
    pub vision: VisionSection,
    #[serde(default)]
    pub scheduling: twinline_processors::scheduler::SchedulerConfig,
    pub history: HistorySection,
    pub sql: SqlSection,
    pub distributed: DistributedSection,
}

/// Distributed mode's servers (empty = the embedded equivalent). See docker/README.md.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DistributedSection {
    /// Apache Kafka bootstrap servers.
    pub kafka: String,
    /// URL of a Confluent-compatible schema registry.
    pub schema_registry: String,
    /// Scylla/Cassandra contact points, comma-separated.
    pub scylla: String,
    /// Keyspace of the served state (created with `replication` if missing).
    pub scylla_keyspace: String,
    /// Cassandra writes in flight at once.
    pub scylla_concurrency: usize,
    /// The compacted topic `twinline registry` keeps the schemas in.
    pub registry_topic: String,
    /// Replication factor of the topics twinline creates in Kafka.
    pub replication: i32,
    /// Prepended to every Kafka topic, transactional id and group (several pipelines or test
    /// runs on one cluster).
    pub topic_prefix: String,
    /// On Kafka, how often each task commits its transaction (derived records, checkpoint and
    /// input offsets): the latency a `read_committed` reader sees. Replaces
    /// `runtime.checkpoint_interval_ms` there.
    pub commit_interval_ms: u64,
    /// On Kafka, how long a `twinline run` may be silent (killed, cut off) before the task
    /// group gives its task slots to the other instances.
    pub session_timeout_ms: u32,
    /// On Kafka, `transaction.timeout.ms` of the transactional producers: the broker aborts a
    /// transaction open this long, and librdkafka gives up a request to a broker that is away
    /// after it (default 60 000; the trade-off after broker restarts is in default.toml).
    pub transaction_timeout_ms: u32,
    /// On Kafka, how long a transactional call of a task or of the sequencer (handing over input
    /// offsets, committing, aborting) may stay unanswered while the broker answers other
    /// requests, before the producer is abandoned and its owner restarts from its last commit
    /// with a new one.
    pub stalled_call_ms: u64,
    /// On Kafka, this instance's stable name in the task group (Kafka static membership,
    /// `group.instance.id`): restarted under the same name, it gets its task slots back at once
    /// instead of after `session_timeout_ms`. Empty: a new member at every start.
    pub instance_id: String,
    /// `run --api-only`: serve the read API from the Cassandra tables of `scylla` and run no
    /// processors and no views (needs `kafka` for writes and `scylla`).
    pub api_only: bool,
    /// How often an API-only instance reads the served state from Cassandra.
    pub served_poll_ms: u64,
    /// Extra librdkafka properties for every Kafka client of the pipeline (security settings,
    /// `debug`, `client.rack`, ...). The settings twinline needs for exactly-once (isolation
    /// level, idempotence, transactional ids, acks) are set after these and win.
    pub librdkafka: BTreeMap<String, String>,
}

/// The Parquet history (`twinline_sinks::history`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySection {
    pub enabled: bool,
    /// Empty = `<data dir>/history`; a directory; or a URL (`file:///…`, `s3://bucket/prefix`).
    pub path: String,
    pub flush_rows: usize,
    pub flush_interval_ms: u64,
    pub compact_min_files: usize,
    pub compact_target_rows: usize,
    pub row_group_rows: usize,
    pub retention_days: u32,
}

impl HistorySection {
    /// The history's settings, its location resolved against the data directory.
    pub fn resolve(&self, data_dir: &Path) -> twinline_sinks::history::HistoryConfig {
        twinline_sinks::history::HistoryConfig {
            enabled: self.enabled,
            path: if self.path.is_empty() {
                data_dir.join("history").display().to_string()
            } else {
                self.path.clone()
            },
            flush_rows: self.flush_rows.max(1),
            flush_interval: std::time::Duration::from_millis(self.flush_interval_ms),
            compact_min_files: self.compact_min_files,
            compact_target_rows: self.compact_target_rows,
            row_group_rows: self.row_group_rows,
            retention_days: self.retention_days,
            ..Default::default()
        }
    }
}

/// SQL front ends for existing tools (read-only, same views and tokens as the API).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSection {
    /// Postgres wire protocol address (`--pg-listen`); empty = off.
    pub pg_listen: String,
    /// Arrow Flight SQL address (`--flight-listen`); empty = off.
    pub flight_listen: String,
}

/// The vision processor (images -> defects).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VisionSection {
    /// `int8` or `fp32`: `<models.dir>/vision/defect_<variant>.onnx`.
    pub variant: String,
    /// Most images per inference call.
    pub max_batch: usize,
    /// How long a partial batch may wait for more images, milliseconds (0 = never wait).
    pub max_wait_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// Folder holding the `predictive/` and `vision/` ONNX models.
    pub dir: PathBuf,
    /// ONNX Runtime shared library; empty = `ORT_DYLIB_PATH`.
    pub ort_library: String,
    /// `cpu`, `cuda` or `tensorrt` (the last two need a GPU build of ONNX Runtime).
    pub execution_provider: String,
}

impl ModelsConfig {
    /// The dispatching policy's folder, `<dir>/rl`.
    pub fn policy_dir(&self) -> PathBuf {
        self.dir.join("rl")
    }

    /// The configured library path, if any.
    pub fn library(&self) -> Option<PathBuf> {
        (!self.ort_library.is_empty()).then(|| PathBuf::from(&self.ort_library))
    }

    /// Options for opening the vision model (one intra-op thread: batch-independent outputs).
    pub fn vision_options(
        &self,
    ) -> Result<twinline_models::vision::VisionModelOptions, ConfigError> {
        Ok(twinline_models::vision::VisionModelOptions {
            library: self.library(),
            provider: self
                .execution_provider
                .parse()
                .map_err(|e: twinline_models::ModelError| ConfigError::Invalid(e.to_string()))?,
            intra_threads: 1,
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    Never,
    Always,
    Interval,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub partitions: u32,
    pub fsync: FsyncMode,
    pub fsync_interval_ms: u64,
    pub segment_bytes: u64,
    pub retention_bytes: u64,
    pub retention_hours: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    pub checkpoint_interval_ms: u64,
    pub watermark_tick_ms: i64,
    pub read_batch_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    pub listen: SocketAddr,
    pub factory_id: String,
    pub read_requires_token: bool,
    pub query_timeout_ms: u64,
    pub query_max_rows: usize,
    pub ws_push_interval_ms: u64,
    pub ws_queue: usize,
    pub tokens: Vec<TokenEntry>,
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub token: String,
    pub role: String,
}

/// Tokens are secrets: never print them.
impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then `file` (if any), then `TWINLINE_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, true)
    }

    /// Defaults and file only; used by tests so the caller's environment cannot leak in.
    pub fn load_with_env(file: Option<&Path>, env: bool) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        if env {
            // Only double-underscore keys are configuration (TWINLINE_API__LISTEN); single-level
            // TWINLINE_FOO variables belong to scripts and tests and are ignored here.
            fig = fig.merge(
                Env::prefixed("TWINLINE_")
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            );
        }
        let cfg: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.log.partitions == 0 || self.log.partitions > 1024 {
            return Err(ConfigError::Invalid(
                "log.partitions must be in 1..=1024".into(),
            ));
        }
        if self.runtime.watermark_tick_ms <= 0 {
            return Err(ConfigError::Invalid(
                "runtime.watermark_tick_ms must be > 0".into(),
            ));
        }
        self.models.vision_options()?;
        twinline_models::vision::variant_file(&self.vision.variant)
            .map_err(|e| ConfigError::Invalid(format!("vision.variant: {e}")))?;
        if self.vision.max_batch == 0 || self.vision.max_batch > 4096 {
            return Err(ConfigError::Invalid(
                "vision.max_batch must be in 1..=4096".into(),
            ));
        }
        let d = &self.distributed;
        if u64::from(d.transaction_timeout_ms) <= d.commit_interval_ms.saturating_mul(2)
            || d.transaction_timeout_ms < 1000
        {
            return Err(ConfigError::Invalid(format!(
                "distributed.transaction_timeout_ms ({}) must be at least 1000 and more than twice \
                 distributed.commit_interval_ms ({}): a transaction stays open for a commit \
                 interval and a batch",
                d.transaction_timeout_ms, d.commit_interval_ms
            )));
        }
        if d.stalled_call_ms < 500 || d.stalled_call_ms >= u64::from(d.transaction_timeout_ms) {
            return Err(ConfigError::Invalid(format!(
                "distributed.stalled_call_ms ({}) must be at least 500 and less than \
                 distributed.transaction_timeout_ms ({})",
                d.stalled_call_ms, d.transaction_timeout_ms
            )));
        }
        self.scheduling
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("scheduling: {e}")))?;
        self.twin
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("twin: {e}")))?;
        for t in &self.api.tokens {
            if !matches!(t.role.as_str(), "read" | "write" | "admin") {
                return Err(ConfigError::Invalid(format!(
                    "api.tokens: role `{}` is not one of read, write, admin",
                    t.role
                )));
            }
            if t.token.len() < 8 {
                return Err(ConfigError::Invalid(
                    "api.tokens: a token must have at least 8 characters".into(),
                ));
            }
        }
        Ok(())
    }

    /// The configuration as TOML with secrets redacted (for `twinline config`).
    pub fn redacted_toml(&self) -> String {
        let mut c = self.clone();
        for t in &mut c.api.tokens {
            t.token = "<redacted>".into();
        }
        toml::to_string_pretty(&c).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Loads a config file with `body` (no environment).
    fn load_file(body: &str) -> Result<Config, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "{body}").unwrap();
        Config::load_with_env(Some(f.path()), false)
    }

    #[test]
    fn defaults_load() {
        let c = Config::load_with_env(None, false).unwrap();
        assert_eq!(c.log.partitions, 4);
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn unknown_key_rejected() {
        let err = load_file("[api]\nlisten_typo = \"1.2.3.4:1\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_typo"), "{err}");
    }

    #[test]
    fn file_overrides_and_bad_role() {
        let err = load_file(
            "[log]\npartitions = 8\n[api]\ntokens = [{ token = \"abcdefgh1\", role = \"root\" }]",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("root"), "{err}");
    }

    #[test]
    fn transaction_timeout_must_outlast_the_commit_interval() {
        let err =
            load_file("[distributed]\ncommit_interval_ms = 5000\ntransaction_timeout_ms = 8000")
                .unwrap_err()
                .to_string();
        assert!(err.contains("transaction_timeout_ms (8000)"), "{err}");
        let c = Config::load_with_env(None, false).unwrap();
        assert_eq!(c.distributed.transaction_timeout_ms, 60_000);
    }

    #[test]
    fn stalled_call_must_be_shorter_than_the_transaction_timeout() {
        for (body, ok) in [
            (
                "transaction_timeout_ms = 10000\nstalled_call_ms = 10000",
                false,
            ),
            ("stalled_call_ms = 100", false),
            (
                "transaction_timeout_ms = 10000\nstalled_call_ms = 9999",
                true,
            ),
        ] {
            match (load_file(&format!("[distributed]\n{body}")), ok) {
                (Ok(c), true) => assert_eq!(c.distributed.stalled_call_ms, 9999),
                (Err(e), false) => assert!(e.to_string().contains("stalled_call_ms"), "{e}"),
                (r, _) => panic!("{body}: {:?}", r.map(|c| c.distributed.stalled_call_ms)),
            }
        }
        let c = Config::load_with_env(None, false).unwrap();
        assert_eq!(c.distributed.stalled_call_ms, 3000);
    }

    #[test]
    fn tokens_are_redacted() {
        let mut c = Config::load_with_env(None, false).unwrap();
        c.api.tokens.push(TokenEntry {
            token: "supersecret".into(),
            role: "admin".into(),
        });
        assert!(!c.redacted_toml().contains("supersecret"));
        assert!(!format!("{c:?}").contains("supersecret"));
    }
}
