//! Where the history lives and what it holds: the object store (a local directory or an
//! S3-compatible path) and the manifest, the one file that says which Parquet files make up the
//! history and how far into each log partition it reaches. The manifest is replaced whole
//! (object stores put atomically), so a reader sees the files before or after a flush or a
//! compaction, never a mix; files not in it are leftovers of an interrupted write.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use twinline_schemas::Topic;

use super::HistoryError;

/// Name of the manifest object at the history's root.
pub const MANIFEST: &str = "_manifest.json";

/// One Parquet file of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the history root: `<topic>/date=<YYYY-MM-DD>/machine=<id>/<n>.parquet`.
    pub path: String,
    pub topic: String,
    pub date: String,
    pub machine: String,
    pub rows: u64,
    pub bytes: u64,
    /// Event-time range of the rows (Unix ms).
    pub min_time: i64,
    pub max_time: i64,
    /// Origin range of the rows (the log's total order over inputs).
    pub min_origin: u64,
    pub max_origin: u64,
    /// Offset range in the rows' log partition (plant-wide groups may mix partitions).
    pub min_offset: u64,
    pub max_offset: u64,
}

/// The history's table of contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Number of the next file written (file names are unique over the history's life).
    pub next_file: u64,
    /// `<topic>/<partition>` → the first offset not yet in the history.
    pub positions: BTreeMap<String, u64>,
    pub files: Vec<FileEntry>,
    /// Files replaced by a compaction or dropped by retention, deleted after a grace period
    /// (queries planned before the change may still read them).
    pub pending_deletes: Vec<String>,
    /// Largest event time written (retention counts back from it).
    pub newest_event_time: Option<i64>,
}

impl Manifest {
    pub fn position(&self, topic: Topic, partition: u32) -> u64 {
        self.positions
            .get(&position_key(topic, partition))
            .copied()
            .unwrap_or(0)
    }

    /// The files of `topic`.
    pub fn files_of(&self, topic: Topic) -> impl Iterator<Item = &FileEntry> {
        let name = topic.name();
        self.files.iter().filter(move |f| f.topic == name)
    }

    pub fn total_rows(&self, topic: Topic) -> u64 {
        self.files_of(topic).map(|f| f.rows).sum()
    }
}

pub fn position_key(topic: Topic, partition: u32) -> String {
    format!("{}/{partition}", topic.name())
}

/// The history's storage and its current manifest, shared by the writer and the tables.
pub struct HistoryStore {
    store: Arc<dyn ObjectStore>,
    /// Where the history is, for messages (`file:///…/history`, `s3://bucket/prefix`).
    location: String,
    manifest: RwLock<Arc<Manifest>>,
}

impl std::fmt::Debug for HistoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl HistoryStore {
    /// The URL DataFusion resolves the history's files under (registered per session).
    pub fn object_store_url() -> ObjectStoreUrl {
        ObjectStoreUrl::parse("twinline-history://store").expect("a valid URL")
    }

    /// Opens the history at `location`: a local directory (created if missing), a `file://`
    /// URL, or an object-store URL such as `s3://bucket/prefix` (credentials and endpoint from
    /// the usual `AWS_*` environment variables). Reads the manifest if there is one.
    pub async fn open(location: &str) -> Result<Arc<HistoryStore>, HistoryError> {
        let (store, shown): (Arc<dyn ObjectStore>, String) = if location.contains("://") {
            let url = url::Url::parse(location)
                .map_err(|e| HistoryError::Config(format!("history path {location}: {e}")))?;
            if url.scheme() == "file" {
                let dir = url.to_file_path().map_err(|()| {
                    HistoryError::Config(format!("history path {location} is not a local path"))
                })?;
                (local(&dir)?, location.to_string())
            } else {
                let env: Vec<(String, String)> = std::env::vars()
                    .filter(|(k, _)| k.starts_with("AWS_"))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect();
                let (store, prefix) = object_store::parse_url_opts(&url, env)
                    .map_err(|e| HistoryError::Config(format!("history store {location}: {e}")))?;
                let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
                    Arc::from(store)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
                };
                (store, location.to_string())
            }
        } else {
            let dir = Path::new(location);
            (local(dir)?, format!("file://{}", dir.display()))
        };
        let manifest = read_manifest(store.as_ref()).await?;
        Ok(Arc::new(HistoryStore {
            store,
            location: shown,
            manifest: RwLock::new(Arc::new(manifest)),
        }))
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// The manifest as of now (cheap: shared).
    pub fn manifest(&self) -> Arc<Manifest> {
        self.manifest.read().clone()
    }

    /// Re-reads the manifest from storage (for processes that read a history another process
    /// writes).
    pub async fn reload(&self) -> Result<Arc<Manifest>, HistoryError> {
        let m = Arc::new(read_manifest(self.store.as_ref()).await?);
        *self.manifest.write() = m.clone();
        Ok(m)
    }

    /// Makes `manifest` the history: stored first, then visible to queries.
    pub(crate) async fn commit(&self, manifest: Manifest) -> Result<(), HistoryError> {
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| HistoryError::Manifest(format!("encoding: {e}")))?;
        self.store
            .put(&ObjectPath::from(MANIFEST), PutPayload::from(bytes))
            .await?;
        *self.manifest.write() = Arc::new(manifest);
        Ok(())
    }
}

fn local(dir: &Path) -> Result<Arc<dyn ObjectStore>, HistoryError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        HistoryError::Config(format!(
            "cannot create history directory {}: {e}",
            dir.display()
        ))
    })?;
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)?;
    Ok(Arc::new(fs))
}

async fn read_manifest(store: &dyn ObjectStore) -> Result<Manifest, HistoryError> {
    match store.get(&ObjectPath::from(MANIFEST)).await {
        Ok(got) => {
            let bytes = got.bytes().await?;
            serde_json::from_slice(&bytes)
                .map_err(|e| HistoryError::Manifest(format!("{MANIFEST} is not readable: {e}")))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(Manifest {
            version: 1,
            ..Manifest::default()
        }),
        Err(e) => Err(e.into()),
    }
}
