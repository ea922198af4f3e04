//! `EmbeddedLog`: the durable local backend of `EventLog` (topic metadata, writer lock, origin
//! clock, background fsync, positions); per-partition work lives in `partition`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::error::{LogError, Result};
use crate::murmur2::partition_for_key;
use crate::partition::{OriginClock, Origins, Partition};
use crate::positions;
use crate::record::{NewRecord, ReadBatch, MAX_FRAME};
use crate::{AppendResult, EventLog, FsyncPolicy, LogConfig, OrderedGroup};

const TOPICS_FILE: &str = "topics.json";
const LOCK_FILE: &str = ".lock";
/// Upper bound on partitions per topic: each partition holds open files.
const MAX_PARTITIONS: u32 = 4096;

#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TopicsFile {
    version: u32,
    topics: BTreeMap<String, TopicMeta>,
}

#[derive(Debug, Serialize, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct TopicMeta {
    partitions: u32,
}

#[derive(Debug)]
struct Topic {
    partitions: Vec<Arc<Partition>>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    config: LogConfig,
    read_only: bool,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises topic creation and `topics.json` rewrites.
    topics_write: Mutex<()>,
    clock: OriginClock,
    /// Held (flock) for the life of a writer; released when the file closes.
    _lock: Option<File>,
}

/// Stops the background flusher and waits for it.
#[derive(Debug)]
struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

/// The embedded durable event log. Share it with `Arc`; every method takes `&self`.
///
/// See the crate docs for the on-disk FORMAT and the recovery rules.
#[derive(Debug)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
    flusher: Option<Flusher>,
}

/// Topic names become directory names; Kafka's character set, minus names we use ourselves.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(LogError::InvalidName {
            kind: "topic",
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 249 {
        return bad("longer than 249 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    if name.starts_with('_') || name.starts_with('.') {
        return bad("names starting with '_' or '.' are reserved");
    }
    if name == TOPICS_FILE {
        return bad("reserved");
    }
    Ok(())
}

fn read_topics_file(root: &Path) -> Result<TopicsFile> {
    let path = root.join(TOPICS_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(TopicsFile {
                version: 1,
                topics: BTreeMap::new(),
            })
        }
        Err(e) => return Err(LogError::io("reading", &path, e)),
    };
    let file: TopicsFile = serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
        path: path.clone(),
        position: 0,
        reason: e.to_string(),
    })?;
    if file.version != 1 {
        return Err(LogError::Corrupt {
            path,
            position: 0,
            reason: format!("unsupported topics.json version {}", file.version),
        });
    }
    for (name, meta) in &file.topics {
        validate_topic_name(name)?;
        if meta.partitions == 0 || meta.partitions > MAX_PARTITIONS {
            return Err(LogError::Corrupt {
                path,
                position: 0,
                reason: format!("topic {name:?} has {} partitions", meta.partitions),
            });
        }
    }
    Ok(file)
}

fn write_topics_file(root: &Path, file: &TopicsFile) -> Result<()> {
    let path = root.join(TOPICS_FILE);
    let tmp = root.join("topics.json.tmp");
    let bytes = serde_json::to_vec_pretty(file)
        .map_err(|e| LogError::InvalidArgument(format!("serializing topics: {e}")))?;
    let mut f = File::create(&tmp).map_err(|e| LogError::io("creating", &tmp, e))?;
    f.write_all(&bytes)
        .and_then(|_| f.sync_data())
        .map_err(|e| LogError::io("writing", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| LogError::io("renaming", &tmp, e))?;
    File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("syncing directory", root, e))
}

impl EmbeddedLog {
    /// Opens (creating if needed) a log directory for writing: takes the exclusive writer lock,
    /// loads topics, recovers every partition (truncating torn or invalid tails, with a warning),
    /// restores the origin counter from the data and applies retention.
    pub fn open(root: &Path, config: LogConfig) -> Result<EmbeddedLog> {
        config.validate()?;
        fs::create_dir_all(root).map_err(|e| LogError::io("creating", root, e))?;
        let lock_path = root.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LogError::io("opening", &lock_path, e))?;
        if let Err(e) = fs2::FileExt::try_lock_exclusive(&lock) {
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
            {
                return Err(LogError::Locked {
                    path: root.to_owned(),
                    lock_file: lock_path,
                });
            }
            return Err(LogError::io("locking", &lock_path, e));
        }
        Self::load(root, config, false, Some(lock))
    }

    /// Opens a directory that another process may be writing, for reading only: no lock, no
    /// recovery (an incomplete or invalid tail is ignored, never cut), and reads pick up records
    /// the writer appends later. Mutating calls return `LogError::ReadOnly`.
    ///
    /// Caveat: the writer's retention and truncation are not tracked live; a read-only log keeps
    /// serving segments it opened before they were deleted, and `truncate` by the writer is only
    /// seen after reopening.
    pub fn open_read_only(root: &Path) -> Result<EmbeddedLog> {
        if !root.is_dir() {
            return Err(LogError::io(
                "opening",
                root,
                std::io::Error::new(std::io::ErrorKind::NotFound, "log directory not found"),
            ));
        }
        Self::load(root, LogConfig::default(), true, None)
    }

    fn load(root: &Path, config: LogConfig, read_only: bool, lock: Option<File>) -> Result<Self> {
        let file = read_topics_file(root)?;
        let mut topics = BTreeMap::new();
        let mut max_origin: Option<u64> = None;
        for (name, meta) in &file.topics {
            let mut partitions = Vec::with_capacity(meta.partitions as usize);
            for p in 0..meta.partitions {
                let dir = root.join(name).join(p.to_string());
                let part = Partition::load(name, p, dir, !read_only)?;
                if let Some(o) = part.max_origin() {
                    max_origin = Some(max_origin.map_or(o, |m| m.max(o)));
                }
                if !read_only {
                    part.enforce_retention(&config)?;
                }
                partitions.push(Arc::new(part));
            }
            topics.insert(name.clone(), Arc::new(Topic { partitions }));
        }
        let next = max_origin.map_or(1, |o| o.saturating_add(1));
        let inner = Arc::new(Inner {
            root: root.to_owned(),
            config,
            read_only,
            topics: RwLock::new(topics),
            topics_write: Mutex::new(()),
            clock: OriginClock {
                next: Mutex::new(next),
                committed: std::sync::atomic::AtomicU64::new(next - 1),
            },
            _lock: lock,
        });
        let flusher = match (read_only, inner.config.fsync) {
            (false, FsyncPolicy::IntervalMs(ms)) => Some(spawn_flusher(Arc::downgrade(&inner), ms)),
            _ => None,
        };
        Ok(EmbeddedLog { inner, flusher })
    }

    /// Root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Configuration in use (defaults for a read-only log).
    pub fn config(&self) -> &LogConfig {
        &self.inner.config
    }

    /// True for `open_read_only`.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Applies retention to every partition now (it also runs on open and when a segment rolls).
    pub fn enforce_retention(&self) -> Result<()> {
        for part in self.all_partitions() {
            part.enforce_retention(&self.inner.config)?;
        }
        Ok(())
    }

    /// Syncs every partition that has unsynced data.
    pub fn sync_all(&self) -> Result<()> {
        if self.inner.read_only {
            return Err(LogError::ReadOnly);
        }
        for part in self.all_partitions() {
            part.sync_if_dirty()?;
        }
        Ok(())
    }

    fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.inner
            .topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    fn topic(&self, topic: &str) -> Result<Arc<Topic>> {
        if let Some(t) = self.inner.topics.read().get(topic) {
            return Ok(t.clone());
        }
        if self.inner.read_only {
            // The writer may have created it since we opened.
            self.reload_topics()?;
            if let Some(t) = self.inner.topics.read().get(topic) {
                return Ok(t.clone());
            }
        }
        Err(LogError::UnknownTopic(topic.to_owned()))
    }

    fn reload_topics(&self) -> Result<()> {
        let _g = self.inner.topics_write.lock();
        let file = read_topics_file(&self.inner.root)?;
        for (name, meta) in &file.topics {
            if self.inner.topics.read().contains_key(name) {
                continue;
            }
            let mut partitions = Vec::new();
            for p in 0..meta.partitions {
                let dir = self.inner.root.join(name).join(p.to_string());
                partitions.push(Arc::new(Partition::load(name, p, dir, false)?));
            }
            self.inner
                .topics
                .write()
                .insert(name.clone(), Arc::new(Topic { partitions }));
        }
        Ok(())
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        let t = self.topic(topic)?;
        let part = t
            .partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| LogError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions: t.partitions.len() as u32,
            })?;
        if self.inner.read_only {
            if let Some(o) = part.refresh()? {
                self.inner.clock.committed.fetch_max(o, Ordering::AcqRel);
            }
        }
        Ok(part)
    }
}

fn spawn_flusher(inner: Weak<Inner>, interval_ms: u64) -> Flusher {
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let stop2 = stop.clone();
    let tick = Duration::from_millis(interval_ms.clamp(1, 1000));
    let handle = std::thread::Builder::new()
        .name("twinline-log-flush".into())
        .spawn(move || loop {
            {
                let (lock, cvar) = &*stop2;
                let mut stopped = lock.lock();
                if !*stopped {
                    cvar.wait_for(&mut stopped, tick);
                }
                if *stopped {
                    return;
                }
            }
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let parts: Vec<Arc<Partition>> = inner
                .topics
                .read()
                .values()
                .flat_map(|t| t.partitions.iter().cloned())
                .collect();
            for part in parts {
                if let Err(e) = part.flush_if_due(interval_ms) {
                    tracing::warn!(topic = %part.topic, partition = part.id, error = %e, "background fsync failed");
                }
            }
        })
        .ok();
    if handle.is_none() {
        tracing::warn!("could not start the fsync thread; syncing only on append and close");
    }
    Flusher { stop, handle }
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        if let Some(f) = &mut self.flusher {
            *f.stop.0.lock() = true;
            f.stop.1.notify_all();
            if let Some(h) = f.handle.take() {
                let _ = h.join();
            }
        }
        if !self.inner.read_only && self.inner.config.fsync != FsyncPolicy::Never {
            for part in self.all_partitions() {
                if let Err(e) = part.sync_if_dirty() {
                    tracing::warn!(topic = %part.topic, partition = part.id, error = %e, "fsync on close failed");
                }
            }
        }
    }
}

impl EventLog for EmbeddedLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        validate_topic_name(topic)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(LogError::InvalidArgument(format!(
                "partition count {partitions} not in 1..={MAX_PARTITIONS}"
            )));
        }
        if let Some(t) = self.inner.topics.read().get(topic) {
            return check_count(topic, t, partitions);
        }
        if self.inner.read_only {
            return Err(LogError::ReadOnly);
        }
        let _g = self.inner.topics_write.lock();
        if let Some(t) = self.inner.topics.read().get(topic) {
            return check_count(topic, t, partitions);
        }
        let mut parts = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let dir = self.inner.root.join(topic).join(p.to_string());
            parts.push(Arc::new(Partition::load(topic, p, dir, true)?));
        }
        let mut file = read_topics_file(&self.inner.root)?;
        file.version = 1;
        file.topics
            .insert(topic.to_owned(), TopicMeta { partitions });
        write_topics_file(&self.inner.root, &file)?;
        self.inner
            .topics
            .write()
            .insert(topic.to_owned(), Arc::new(Topic { partitions: parts }));
        tracing::info!(topic, partitions, "created topic");
        Ok(())
    }

    fn partitions(&self, topic: &str) -> Result<u32> {
        Ok(self.topic(topic)?.partitions.len() as u32)
    }

    fn topics(&self) -> Vec<(String, u32)> {
        if self.inner.read_only {
            if let Err(e) = self.reload_topics() {
                tracing::warn!(error = %e, "could not reload topics.json");
            }
        }
        self.inner
            .topics
            .read()
            .iter()
            .map(|(n, t)| (n.clone(), t.partitions.len() as u32))
            .collect()
    }

    fn partition_for(&self, topic: &str, key: &[u8]) -> Result<u32> {
        let n = self.partitions(topic)?;
        Ok(partition_for_key(key, n))
    }

    fn append(
        &self,
        topic: &str,
        partition: u32,
        records: &[NewRecord<'_>],
    ) -> Result<AppendResult> {
        if self.inner.read_only {
            return Err(LogError::ReadOnly);
        }
        let part = self.partition(topic, partition)?;
        part.append(&self.inner.clock, &self.inner.config, records, None)
    }

    fn append_at(
        &self,
        topic: &str,
        partition: u32,
        offsets: &[u64],
        records: &[NewRecord<'_>],
    ) -> Result<AppendResult> {
        if self.inner.read_only {
            return Err(LogError::ReadOnly);
        }
        let part = self.partition(topic, partition)?;
        part.append(
            &self.inner.clock,
            &self.inner.config,
            records,
            Some(offsets),
        )
    }

    fn append_ordered(&self, groups: &[OrderedGroup<'_>]) -> Result<Vec<AppendResult>> {
        if self.inner.read_only {
            return Err(LogError::ReadOnly);
        }
        let total: usize = groups.iter().map(|g| g.records.len()).sum();
        if total == 0 {
            return Ok(Vec::new());
        }
        let mut seen = vec![false; total];
        for g in groups {
            if g.seq.len() != g.records.len() {
                return Err(LogError::InvalidArgument(format!(
                    "{}/{}: {} records but {} sequence numbers",
                    g.topic,
                    g.partition,
                    g.records.len(),
                    g.seq.len()
                )));
            }
            if g.records.iter().any(|r| r.origin.is_some()) {
                return Err(LogError::InvalidArgument(
                    "append_ordered assigns origins itself; a record carries one".into(),
                ));
            }
            if g.seq.windows(2).any(|w| w[0] >= w[1]) {
                return Err(LogError::InvalidArgument(format!(
                    "{}/{}: sequence numbers must increase within a partition (origins do)",
                    g.topic, g.partition
                )));
            }
            for &q in g.seq {
                match seen.get_mut(q as usize) {
                    Some(slot) if !*slot => *slot = true,
                    _ => {
                        return Err(LogError::InvalidArgument(format!(
                            "sequence numbers must be 0..{total}, each once; got {q} twice or out of range"
                        )))
                    }
                }
            }
        }
        let parts = groups
            .iter()
            .map(|g| self.partition(g.topic, g.partition))
            .collect::<Result<Vec<_>>>()?;
        // Writers are locked in (topic, partition) order, then the clock. A single-partition
        // append holds one writer and then takes the clock, so no cycle can form.
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by(|&a, &b| {
            (groups[a].topic, groups[a].partition).cmp(&(groups[b].topic, groups[b].partition))
        });
        if order.windows(2).any(|w| {
            (groups[w[0]].topic, groups[w[0]].partition)
                == (groups[w[1]].topic, groups[w[1]].partition)
        }) {
            return Err(LogError::InvalidArgument(
                "append_ordered groups must name distinct partitions".into(),
            ));
        }
        let mut guards: Vec<Option<parking_lot::MutexGuard<'_, _>>> =
            (0..groups.len()).map(|_| None).collect();
        for &i in &order {
            guards[i] = Some(parts[i].writer.lock());
        }
        let mut prepared = Vec::with_capacity(groups.len());
        for (i, g) in groups.iter().enumerate() {
            let w = guards[i].as_mut().expect("locked above");
            prepared.push(parts[i].prepare_append(w, &self.inner.config, g.records, None)?);
        }
        let mut results = Vec::with_capacity(groups.len());
        let mut failure = None;
        {
            let clock = &self.inner.clock;
            let mut next = clock.next.lock();
            let base = *next;
            for (i, g) in groups.iter().enumerate() {
                let w = guards[i].as_mut().expect("locked above");
                match parts[i].write_stamped(
                    w,
                    &prepared[i].0,
                    g.records,
                    None,
                    Origins::Reserved { base, seq: g.seq },
                ) {
                    Ok(r) => results.push(r),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            // Also after a failure: the groups already written are published with origins in
            // the reserved range, so the committed origin covers it and it is never reused.
            let end = base + total as u64;
            *next = end;
            clock.committed.store(end - 1, Ordering::Release);
        }
        // Fsync what was written while the writers are held; retention (which locks a writer
        // again) only after every writer is released, so the lock order stays sorted.
        let mut sync_failure = None;
        for (i, guard) in guards.iter_mut().enumerate().take(results.len()) {
            let w = guard.as_mut().expect("locked above");
            if let Err(e) = Partition::sync_if_due(w, &prepared[i].0, &self.inner.config) {
                sync_failure.get_or_insert(e);
            }
        }
        drop(guards);
        for (part, (_, rolled)) in parts.iter().zip(&prepared) {
            if *rolled {
                part.enforce_retention(&self.inner.config)?;
            }
        }
        if let Some(e) = failure.or(sync_failure) {
            return Err(e);
        }
        Ok(results)
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_bytes: usize,
        batch: &mut ReadBatch,
    ) -> Result<()> {
        self.partition(topic, partition)?
            .read(from_offset, max_bytes, batch)
    }

    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        Ok(self.partition(topic, partition)?.bounds().0)
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        Ok(self.partition(topic, partition)?.bounds().1)
    }

    fn offset_for_timestamp(&self, topic: &str, partition: u32, ts: i64) -> Result<Option<u64>> {
        self.partition(topic, partition)?.offset_for_timestamp(ts)
    }

    fn commit_position(&self, group: &str, topic: &str, partition: u32, offset: u64) -> Result<()> {
        if self.inner.read_only {
            return Err(LogError::ReadOnly);
        }
        self.partition(topic, partition)?;
        let path = positions::position_path(&self.inner.root, group, topic, partition)?;
        positions::write(&path, offset)
    }

    fn position(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>> {
        self.partition(topic, partition)?;
        let path = positions::position_path(&self.inner.root, group, topic, partition)?;
        positions::read(&path)
    }

    fn truncate(&self, topic: &str, partition: u32, end_offset: u64) -> Result<()> {
        if self.inner.read_only {
            return Err(LogError::ReadOnly);
        }
        self.partition(topic, partition)?.truncate(end_offset)
    }

    fn sync(&self, topic: &str, partition: u32) -> Result<()> {
        if self.inner.read_only {
            return Err(LogError::ReadOnly);
        }
        self.partition(topic, partition)?.sync()
    }

    fn committed_origin(&self) -> u64 {
        self.inner.clock.committed.load(Ordering::Acquire)
    }
}

fn check_count(topic: &str, t: &Topic, requested: u32) -> Result<()> {
    let existing = t.partitions.len() as u32;
    if existing == requested {
        Ok(())
    } else {
        Err(LogError::PartitionCountMismatch {
            topic: topic.to_owned(),
            existing,
            requested,
        })
    }
}

impl LogConfig {
    /// Rejects settings the log cannot honour.
    pub fn validate(&self) -> Result<()> {
        if self.segment_bytes < 1024 {
            return Err(LogError::InvalidArgument(format!(
                "segment_bytes {} is below 1024",
                self.segment_bytes
            )));
        }
        if self.max_record_bytes < crate::record::MIN_FRAME || self.max_record_bytes > MAX_FRAME {
            return Err(LogError::InvalidArgument(format!(
                "max_record_bytes {} not in {}..={MAX_FRAME}",
                self.max_record_bytes,
                crate::record::MIN_FRAME
            )));
        }
        if self.retention_ms.is_some_and(|ms| ms < 0) {
            return Err(LogError::InvalidArgument("retention_ms is negative".into()));
        }
        if let FsyncPolicy::IntervalMs(0) = self.fsync {
            return Err(LogError::InvalidArgument(
                "fsync interval 0: use FsyncPolicy::Always".into(),
            ));
        }
        Ok(())
    }
}
