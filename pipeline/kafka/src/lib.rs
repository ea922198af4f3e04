//! The Kafka backend of the event log ([`KafkaLog`]): the same `EventLog` contract the runtime
//! uses on the embedded log, on Apache Kafka, so the processors and the runtime run unchanged.
//!
//! # How the embedded log's guarantees are kept on Kafka
//!
//! - **Origins.** The runtime merges partitions by origin, a total order over every input
//!   record, and needs `committed_origin`. Kafka has no such counter, so one sequencer (a thread
//!   of one `twinline run`; a second one is fenced by its transactional id) reads the input
//!   topics `read_committed` and writes markers to the single-partition `_twinline-origins` topic,
//!   each assigning the next origins to ranges of input offsets ([`origins`]). Every instance
//!   tails that topic into an index: input records are returned by `read` only once sequenced,
//!   with their origin; `committed_origin` is the last marker's end. The order is decided once and
//!   recorded in the log, so every reader, restart and replay of the same topics sees the same
//!   one. Third-party producers need nothing special.
//! - **Exactly once.** A task writes through a [`TaskWriter`] (`writer.rs`): a transactional
//!   producer (`transactional.id` = the task's name) whose transaction holds the task's derived
//!   records, its checkpoint (compacted `_twinline-checkpoints` topic, key = task) and its input
//!   offsets (`send_offsets_to_transaction`, group `twinline-task-<task>`). A crash aborts the
//!   open transaction; the restarted task loads the last committed checkpoint, so derived topics
//!   read `read_committed` have no gap and no duplicate.
//! - **Offsets of derived topics.** Transaction markers take Kafka offsets, at times that depend
//!   on when transactions commit. Derived records therefore carry their logical offset (their
//!   place among the partition's committed records, header `twinline-seq`), and `read` of a
//!   derived topic returns those, so provenance (`source.offset`, event ids) is the same as on
//!   the embedded log and the same in every run. Input topics keep Kafka's offsets.
//!
//! Every read is `read_committed`. Each thread that reads gets its own consumer (readers at
//! different positions of one partition never disturb each other) with one queue per partition.

mod frontiers;
mod group;
mod guard;
mod origins;
mod reader;
mod sequencer;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};
use twinline_log::{
    murmur2, AppendResult, EventLog, LogError, NewRecord, ReadBatch, Result, TaskWriter,
};

pub use group::TASKS_TOPIC;
pub use origins::{Marker, OriginIndex, Range};

/// Header carrying a derived record's origin (`u64` big-endian).
pub const ORIGIN_HEADER: &str = "twinline-origin";
/// Header carrying a derived record's logical offset (`u64` big-endian).
pub const SEQ_HEADER: &str = "twinline-seq";
/// Topic of the sequencer's origin markers (after the prefix).
pub const ORIGINS_TOPIC: &str = "_twinline-origins";
/// Compacted topic of the tasks' checkpoints (after the prefix).
pub const CHECKPOINTS_TOPIC: &str = "_twinline-checkpoints";
/// Compacted topic of the tasks' frontiers (after the prefix), committed with their checkpoints.
pub const FRONTIERS_TOPIC: &str = "_twinline-frontiers";

/// Settings of a [`KafkaLog`].
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// Prepended to every topic, transactional id and group this log uses (isolates test runs
    /// and several pipelines on one cluster). Empty by default.
    pub prefix: String,
    /// Replication factor of the topics created.
    pub replication: i32,
    /// The external input topics, in rank order: the sequencer assigns origins to these. Every
    /// other topic is derived (written by tasks through transactions).
    pub input_topics: Vec<String>,
    /// Timeout of blocking broker calls (metadata, commits, transactions).
    pub timeout: Duration,
    /// Session timeout of the task group: how long a process may be silent (killed, cut off)
    /// before its task slots go to the others.
    pub session_timeout_ms: u32,
    /// Static membership in the task group (`group.instance.id`); empty = dynamic.
    pub instance_id: String,
    /// `transaction.timeout.ms` of the task and sequencer producers: how long the broker lets
    /// a transaction stay open before it aborts it, and (librdkafka derives them from it) how
    /// long a queued message or a transactional request may wait for a broker that is away.
    pub transaction_timeout_ms: u32,
    /// How long a transactional call of a task or of the sequencer may stay unanswered while
    /// the broker answers metadata requests, before the producer is abandoned and its owner
    /// restarts from its last commit with a new one (see the `guard` module).
    pub stalled_call: Duration,
    /// Extra librdkafka properties given to every client this log creates (security, `debug`);
    /// the settings the log needs for correctness are set after them.
    pub properties: Vec<(String, String)>,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>, input_topics: Vec<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            prefix: String::new(),
            replication: 1,
            input_topics,
            timeout: Duration::from_secs(30),
            session_timeout_ms: 6000,
            instance_id: String::new(),
            transaction_timeout_ms: 60_000,
            stalled_call: Duration::from_secs(3),
            properties: Vec::new(),
        }
    }
}

pub(crate) fn broker(op: impl Into<String>, e: impl std::fmt::Display) -> LogError {
    LogError::Broker {
        op: op.into(),
        reason: e.to_string(),
    }
}

/// What the log's threads and handles share.
pub(crate) struct Inner {
    pub(crate) cfg: KafkaConfig,
    pub(crate) index: RwLock<OriginIndex>,
    /// Kafka offset up to which the index has read the origins topic.
    pub(crate) index_pos: AtomicI64,
    stop: AtomicBool,
}

impl Inner {
    pub(crate) fn topic(&self, name: &str) -> String {
        format!("{}{}", self.cfg.prefix, name)
    }

    /// Rank of an input topic (by its name without prefix), `None` for derived topics.
    pub(crate) fn input_rank(&self, name: &str) -> Option<u16> {
        self.cfg
            .input_topics
            .iter()
            .position(|t| t == name)
            .map(|i| i as u16)
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.cfg.properties {
            c.set(k, v);
        }
        c.set("bootstrap.servers", &self.cfg.brokers)
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "2000");
        c
    }

    /// A transactional producer's settings (the task writers' and the sequencer's): the id
    /// `id` under the prefix, idempotence, `acks=all`, the configured `transaction.timeout.ms`.
    pub(crate) fn transactional_config(&self, id: &str) -> ClientConfig {
        let mut c = self.client_config();
        c.set("transactional.id", self.topic(id))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "transaction.timeout.ms",
                self.cfg.transaction_timeout_ms.to_string(),
            )
            // Back-to-back transactions: the next one's first send meets the previous one's
            // markers still being written (CONCURRENT_TRANSACTIONS) and is retried after this.
            .set("retry.backoff.ms", "5")
            .set("retry.backoff.max.ms", "50");
        c
    }

    pub(crate) fn reader_config(&self, group: &str) -> ClientConfig {
        let mut c = self.client_config();
        c.set("group.id", format!("{}{}", self.cfg.prefix, group))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "10")
            .set("fetch.max.bytes", "67108864")
            .set("max.partition.fetch.bytes", "8388608");
        c
    }

    /// The end of a partition as a `read_committed` reader sees it (the last stable offset).
    /// Retried for up to `timeout` while the broker cannot answer (restarting, leader moving).
    pub(crate) fn watermarks(&self, c: &BaseConsumer, topic: &str, p: u32) -> Result<(i64, i64)> {
        let deadline = Instant::now() + self.cfg.timeout;
        loop {
            match c.fetch_watermarks(topic, p as i32, self.cfg.timeout) {
                Ok(w) => return Ok(w),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, topic, p, "reading a partition's end; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(broker(format!("reading the end of {topic}/{p}"), e)),
            }
        }
    }
}

/// The Kafka backend of [`EventLog`]. See the crate docs.
pub struct KafkaLog {
    inner: Arc<Inner>,
    admin: AdminClient<DefaultClientContext>,
    producer: FutureProducer,
    meta: BaseConsumer,
    partitions: RwLock<HashMap<String, u32>>,
    readers: Mutex<HashMap<ThreadId, Arc<Mutex<reader::Reader>>>>,
    groups: Mutex<HashMap<String, Arc<BaseConsumer>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("brokers", &self.inner.cfg.brokers)
            .field("prefix", &self.inner.cfg.prefix)
            .finish()
    }
}

impl KafkaLog {
    /// Connects, creates the internal topics, and reads the origin markers to their end (so
    /// `committed_origin` is current when this returns).
    pub fn open(cfg: KafkaConfig) -> Result<KafkaLog> {
        let inner = Arc::new(Inner {
            cfg,
            index: RwLock::new(OriginIndex::new()),
            index_pos: AtomicI64::new(0),
            stop: AtomicBool::new(false),
        });
        let admin: AdminClient<DefaultClientContext> = inner
            .client_config()
            .create()
            .map_err(|e| broker("creating the admin client", e))?;
        let producer: FutureProducer = inner
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("compression.type", "lz4")
            .set("message.max.bytes", "67108864")
            .set("message.timeout.ms", "120000")
            .create()
            .map_err(|e| broker("creating the producer", e))?;
        let meta: BaseConsumer = inner
            .reader_config("twinline-meta")
            .create()
            .map_err(|e| broker("creating the metadata client", e))?;
        let log = KafkaLog {
            inner: inner.clone(),
            admin,
            producer,
            meta,
            partitions: RwLock::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        };
        log.create(
            ORIGINS_TOPIC,
            1,
            &[("retention.ms", "-1"), ("retention.bytes", "-1")],
        )?;
        log.create(
            CHECKPOINTS_TOPIC,
            1,
            &[
                ("cleanup.policy", "compact"),
                ("max.message.bytes", "67108864"),
                ("segment.ms", "60000"),
                ("min.cleanable.dirty.ratio", "0.1"),
                ("delete.retention.ms", "60000"),
            ],
        )?;
        log.create(
            FRONTIERS_TOPIC,
            1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.ms", "60000"),
                ("min.cleanable.dirty.ratio", "0.1"),
                ("delete.retention.ms", "60000"),
            ],
        )?;
        let tail = sequencer::spawn_index_tail(inner.clone())?;
        log.threads.lock().push(tail);
        log.wait_index_caught_up()?;
        info!(brokers = %inner.cfg.brokers, prefix = %inner.cfg.prefix,
            committed_origin = log.committed_origin(), "kafka event log open");
        Ok(log)
    }

    /// Waits until the index has read every committed origin marker.
    pub(crate) fn wait_index_caught_up(&self) -> Result<()> {
        wait_index(&self.inner, &self.meta)
    }

    /// Blocks until every input record committed before the call has an origin, given by the
    /// sequencer of whichever process runs it. Logs every 10 s while it waits.
    pub fn wait_inputs_sequenced(&self) -> Result<()> {
        let c: BaseConsumer = self
            .inner
            .reader_config("twinline-meta")
            .create()
            .map_err(|e| broker("creating a reader", e))?;
        let started = Instant::now();
        let mut logged = Instant::now();
        for (rank, name) in self.inner.cfg.input_topics.iter().enumerate() {
            let full = self.inner.topic(name);
            for p in 0..self.partitions(name)? {
                let (_, high) = self.inner.watermarks(&c, &full, p)?;
                let sequenced = || self.inner.index.read().sequenced_end(rank as u16, p);
                if high <= sequenced() as i64 {
                    continue;
                }
                // Committed records end below `high` (a transaction marker takes an offset too):
                // the target is one past the last record before it.
                let mut target = sequenced();
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&full, p as i32, Offset::Offset(target as i64))
                    .map_err(|e| broker("assigning", e))?;
                c.assign(&tpl).map_err(|e| broker("assigning", e))?;
                let deadline = Instant::now() + self.inner.cfg.timeout;
                loop {
                    match c.poll(Duration::from_millis(20)) {
                        Some(Ok(m)) => target = target.max(m.offset() as u64 + 1),
                        Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                        Some(Err(e)) => return Err(broker(format!("reading {full}/{p}"), e)),
                    }
                    if position_of(&c, &full, p).is_some_and(|o| o >= high) {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(broker(
                            format!("reading {full}/{p} up to {high}"),
                            "timed out",
                        ));
                    }
                }
                while sequenced() < target {
                    if logged.elapsed() > Duration::from_secs(10) {
                        info!(topic = %full, partition = p, sequenced = sequenced(), target,
                            waited_s = started.elapsed().as_secs(),
                            "waiting for the sequencer (it runs in the process owning the last task slot)");
                        logged = Instant::now();
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        Ok(())
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.inner.cfg
    }

    /// Deletes every topic whose name starts with this log's prefix (internal topics included)
    /// and returns how many. For benchmarks and tests that give each run its own prefix, so a
    /// long-lived broker does not gather their partitions. Refused without a prefix: that would
    /// be every topic of the cluster.
    pub fn delete_prefixed_topics(&self) -> Result<usize> {
        let prefix = &self.inner.cfg.prefix;
        if prefix.is_empty() {
            return Err(broker(
                "deleting topics",
                "this log has no topic prefix; refusing to delete every topic of the cluster",
            ));
        }
        let md = self
            .meta
            .fetch_metadata(None, self.inner.cfg.timeout)
            .map_err(|e| broker("listing topics", e))?;
        let names: Vec<String> = md
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .filter(|n| n.starts_with(prefix.as_str()))
            .collect();
        if names.is_empty() {
            return Ok(0);
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let opts = AdminOptions::new().operation_timeout(Some(self.inner.cfg.timeout));
        let res = futures::executor::block_on(self.admin.delete_topics(&refs, &opts))
            .map_err(|e| broker(format!("deleting the topics under {prefix}"), e))?;
        let mut deleted = 0;
        for r in res {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => deleted += 1,
                Err((name, code)) => return Err(broker(format!("deleting topic {name}"), code)),
            }
        }
        self.partitions.write().clear();
        Ok(deleted)
    }

    fn create(&self, name: &str, partitions: u32, config: &[(&str, &str)]) -> Result<()> {
        let full = self.inner.topic(name);
        // A topic that exists needs no CreateTopics round (which the broker answers slowly).
        if self.has_partitions(name, partitions)? {
            return Ok(());
        }
        let mut t = NewTopic::new(
            &full,
            partitions as i32,
            TopicReplication::Fixed(self.inner.cfg.replication),
        );
        for (k, v) in config {
            t = t.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(self.inner.cfg.timeout));
        let deadline = Instant::now() + self.inner.cfg.timeout;
        loop {
            let res = futures::executor::block_on(self.admin.create_topics([&t], &opts))
                .map_err(|e| broker(format!("creating topic {full}"), e))?;
            match res.into_iter().next() {
                Some(Ok(_)) => {
                    info!(topic = %full, partitions, "kafka topic created");
                    break;
                }
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => break,
                Some(Err((_, code))) if Instant::now() < deadline => {
                    warn!(topic = %full, %code, "creating a topic failed; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Some(Err((_, code))) => return Err(broker(format!("creating topic {full}"), code)),
            }
        }
        // Metadata can lag the creation for a moment.
        let deadline = Instant::now() + self.inner.cfg.timeout;
        loop {
            match self.has_partitions(name, partitions)? {
                true => return Ok(()),
                false if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                false => {
                    return Err(broker(
                        format!("topic {full}"),
                        "not in the metadata after creation",
                    ))
                }
            }
        }
    }

    /// Whether topic `name` exists with `partitions` partitions (false: it does not exist; an
    /// error when it has another count).
    fn has_partitions(&self, name: &str, partitions: u32) -> Result<bool> {
        match self.fetch_partitions(name)? {
            Some(n) if n == partitions => Ok(true),
            Some(n) => Err(LogError::PartitionCountMismatch {
                topic: self.inner.topic(name),
                existing: n,
                requested: partitions,
            }),
            None => Ok(false),
        }
    }

    fn fetch_partitions(&self, name: &str) -> Result<Option<u32>> {
        let full = self.inner.topic(name);
        let md = self
            .meta
            .fetch_metadata(Some(&full), self.inner.cfg.timeout)
            .map_err(|e| broker(format!("metadata of {full}"), e))?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == full && t.error().is_none())
            .map(|t| t.partitions().len() as u32)
            .filter(|&n| n > 0);
        if let Some(n) = n {
            self.partitions.write().insert(name.to_string(), n);
        }
        Ok(n)
    }

    fn reader(&self) -> Result<Arc<Mutex<reader::Reader>>> {
        let id = std::thread::current().id();
        if let Some(r) = self.readers.lock().get(&id) {
            return Ok(r.clone());
        }
        let r = Arc::new(Mutex::new(reader::Reader::new(self.inner.clone())?));
        self.readers.lock().insert(id, r.clone());
        Ok(r)
    }

    fn group(&self, group: &str) -> Result<Arc<BaseConsumer>> {
        if let Some(c) = self.groups.lock().get(group) {
            return Ok(c.clone());
        }
        let c: BaseConsumer = self
            .inner
            .reader_config(group)
            .create()
            .map_err(|e| broker(format!("creating a client of group {group}"), e))?;
        let c = Arc::new(c);
        self.groups.lock().insert(group.to_string(), c.clone());
        Ok(c)
    }
}

/// Serves `producer`'s delivery reports until nothing is in flight (or `timeout` passes), in
/// 1 ms polls. Called before `commit_transaction`: the flush that commit does itself (rdkafka's
/// `BaseProducer::flush`) polls in 100 ms steps that always run to their end, which made every
/// transaction (and so every derived record's visibility) about 100 ms late.
pub(crate) fn drain_deliveries(producer: &rdkafka::producer::BaseProducer, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(1));
    }
}

pub(crate) fn wait_index(inner: &Inner, c: &BaseConsumer) -> Result<()> {
    let topic = inner.topic(ORIGINS_TOPIC);
    let (_, high) = inner.watermarks(c, &topic, 0)?;
    let deadline = Instant::now() + inner.cfg.timeout.max(Duration::from_secs(60));
    while inner.index_pos.load(Ordering::Acquire) < high {
        if Instant::now() > deadline {
            return Err(broker(
                "reading the origin markers",
                format!(
                    "timed out at offset {} of {high}",
                    inner.index_pos.load(Ordering::Acquire)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

impl Drop for KafkaLog {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        for h in self.threads.lock().drain(..) {
            let _ = h.join();
        }
        let _ = self.producer.flush(Duration::from_secs(10));
    }
}

impl EventLog for KafkaLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        if partitions == 0 {
            return Err(LogError::InvalidArgument(
                "a topic needs at least one partition".into(),
            ));
        }
        // Kafka's time retention compares record timestamps (event times here, which may be
        // long past) with the wall clock: keep everything, as the embedded log does by default.
        self.create(
            topic,
            partitions,
            &[("max.message.bytes", "67108864"), ("retention.ms", "-1")],
        )
    }

    fn partitions(&self, topic: &str) -> Result<u32> {
        if let Some(&n) = self.partitions.read().get(topic) {
            return Ok(n);
        }
        self.fetch_partitions(topic)?
            .ok_or_else(|| LogError::UnknownTopic(topic.to_string()))
    }

    fn topics(&self) -> Vec<(String, u32)> {
        let Ok(md) = self.meta.fetch_metadata(None, self.inner.cfg.timeout) else {
            return Vec::new();
        };
        let prefix = &self.inner.cfg.prefix;
        let mut v: Vec<(String, u32)> = md
            .topics()
            .iter()
            .filter_map(|t| {
                let name = t.name().strip_prefix(prefix.as_str())?;
                (!name.starts_with('_')).then(|| (name.to_string(), t.partitions().len() as u32))
            })
            .collect();
        v.sort();
        v
    }

    fn partition_for(&self, topic: &str, key: &[u8]) -> Result<u32> {
        let n = self.partitions(topic)?;
        Ok(murmur2::partition_for_key(key, n))
    }

    fn append(
        &self,
        topic: &str,
        partition: u32,
        records: &[NewRecord<'_>],
    ) -> Result<AppendResult> {
        if records.is_empty() {
            return Err(LogError::InvalidArgument("empty batch".into()));
        }
        let n = self.partitions(topic)?;
        if partition >= n {
            return Err(LogError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions: n,
            });
        }
        let full = self.inner.topic(topic);
        let mut futures = Vec::with_capacity(records.len());
        for r in records {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len() + 1);
            for (name, value) in r.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(*value),
                });
            }
            let origin;
            if let Some(o) = r.origin {
                origin = o.to_be_bytes();
                headers = headers.insert(Header {
                    key: ORIGIN_HEADER,
                    value: Some(&origin[..]),
                });
            }
            let mut rec = FutureRecord::to(&full)
                .partition(partition as i32)
                .key(r.key)
                .payload(r.value)
                .timestamp(r.timestamp)
                .headers(headers);
            loop {
                match self.producer.send_result(rec) {
                    Ok(f) => {
                        futures.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        self.producer.poll(Duration::from_millis(10));
                        rec = back;
                    }
                    Err((e, _)) => {
                        return Err(broker(format!("producing to {full}/{partition}"), e))
                    }
                }
            }
        }
        let mut first = None;
        let mut last = 0u64;
        for f in futures {
            match futures::executor::block_on(f) {
                Ok(Ok(d)) => {
                    let o = d.offset as u64;
                    first.get_or_insert(o);
                    last = last.max(o);
                }
                Ok(Err((e, _))) => {
                    return Err(broker(format!("producing to {full}/{partition}"), e))
                }
                Err(_) => {
                    return Err(broker(
                        format!("producing to {full}/{partition}"),
                        "producer gone",
                    ))
                }
            }
        }
        Ok(AppendResult {
            base_offset: first.unwrap_or(0),
            last_offset: last,
        })
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_bytes: usize,
        batch: &mut ReadBatch,
    ) -> Result<()> {
        let r = self.reader()?;
        let mut r = r.lock();
        r.read(topic, partition, from_offset, max_bytes, batch)
    }

    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        let r = self.reader()?;
        let mut r = r.lock();
        r.start_offset(topic, partition)
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        if let Some(rank) = self.inner.input_rank(topic) {
            return Ok(self.inner.index.read().sequenced_end(rank, partition));
        }
        let r = self.reader()?;
        let mut r = r.lock();
        r.derived_end(topic, partition)
    }

    fn offset_for_timestamp(&self, topic: &str, partition: u32, ts: i64) -> Result<Option<u64>> {
        let r = self.reader()?;
        let mut r = r.lock();
        r.offset_for_timestamp(topic, partition, ts)
    }

    fn commit_position(&self, group: &str, topic: &str, partition: u32, offset: u64) -> Result<()> {
        let c = self.group(group)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &self.inner.topic(topic),
            partition as i32,
            Offset::Offset(offset as i64),
        )
        .map_err(|e| broker("committing a position", e))?;
        c.commit(&tpl, CommitMode::Sync).map_err(|e| {
            broker(
                format!("committing the position of group {group} on {topic}/{partition}"),
                e,
            )
        })
    }

    fn position(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>> {
        let c = self.group(group)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.inner.topic(topic), partition as i32);
        let got = c
            .committed_offsets(tpl, self.inner.cfg.timeout)
            .map_err(|e| broker(format!("reading the position of group {group}"), e))?;
        Ok(got.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(o as u64),
            _ => None,
        }))
    }

    fn truncate(&self, _topic: &str, _partition: u32, _end_offset: u64) -> Result<()> {
        Err(LogError::Unsupported(
            "Kafka topics cannot be truncated; tasks write through transactions instead",
        ))
    }

    fn sync(&self, _topic: &str, _partition: u32) -> Result<()> {
        self.producer
            .flush(self.inner.cfg.timeout)
            .map_err(|e| broker("flushing the producer", e))
    }

    fn task_writer(&self, task: &str) -> Result<Option<Box<dyn TaskWriter>>> {
        Ok(Some(Box::new(writer::KafkaTaskWriter::open(
            self.inner.clone(),
            task,
        )?)))
    }

    /// One read: a partition's ends on Kafka cost broker round trips (a derived partition's end
    /// even a scan of its tail), and reading from the position answers the same question.
    fn read_tail(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max_bytes: usize,
        batch: &mut ReadBatch,
    ) -> Result<bool> {
        self.read(topic, partition, from, max_bytes, batch)?;
        Ok(!batch.is_empty())
    }

    fn join_task_group(
        &self,
        slots: u32,
        handler: twinline_log::GroupHandler,
    ) -> Result<Option<Box<dyn twinline_log::TaskGroup>>> {
        self.create(TASKS_TOPIC, slots, &[])?;
        Ok(Some(Box::new(group::KafkaTaskGroup::join(
            self.inner.clone(),
            slots,
            handler,
        )?)))
    }

    fn watch_frontiers(&self, handler: twinline_log::FrontierHandler) -> Result<()> {
        let h = frontiers::spawn_frontier_tail(self.inner.clone(), handler)?;
        self.threads.lock().push(h);
        Ok(())
    }

    fn committed_origin(&self) -> u64 {
        self.inner.index.read().committed()
    }
}

/// A consumer's position in `topic/p` (it steps over transaction markers), if known.
pub(crate) fn position_of(c: &BaseConsumer, topic: &str, p: u32) -> Option<i64> {
    match c.position().ok()?.find_partition(topic, p as i32)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// Reads a `u64` big-endian header value.
pub(crate) fn header_u64<M: Message>(m: &M, name: &str) -> Option<u64> {
    use rdkafka::message::Headers;
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner(cfg: KafkaConfig) -> Inner {
        Inner {
            cfg,
            index: RwLock::new(OriginIndex::new()),
            index_pos: AtomicI64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    #[test]
    fn extra_properties_reach_every_client_but_do_not_override_exactly_once_settings() {
        let mut cfg = KafkaConfig::new("127.0.0.1:1", vec!["sensor-readings".into()]);
        cfg.properties = vec![
            ("debug".into(), "eos,broker".into()),
            ("security.protocol".into(), "SASL_SSL".into()),
            ("isolation.level".into(), "read_uncommitted".into()),
        ];
        let inner = inner(cfg);
        let c = inner.reader_config("g");
        assert_eq!(c.get("debug"), Some("eos,broker"));
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:1"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
        assert_eq!(inner.client_config().get("debug"), Some("eos,broker"));
    }

    #[test]
    fn task_producers_take_the_configured_transaction_timeout() {
        let mut cfg = KafkaConfig::new("127.0.0.1:1", vec!["sensor-readings".into()]);
        assert_eq!(cfg.transaction_timeout_ms, 60_000);
        cfg.prefix = "p.".into();
        cfg.transaction_timeout_ms = 15_000;
        // A value among the extra properties does not replace the setting.
        cfg.properties = vec![("transaction.timeout.ms".into(), "900000".into())];
        let c = writer::producer_config(&inner(cfg), "partition-2");
        assert_eq!(c.get("transaction.timeout.ms"), Some("15000"));
        assert_eq!(
            c.get("transactional.id"),
            Some("p.twinline-task-partition-2")
        );
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("linger.ms"), Some("5"));
        let s = inner(KafkaConfig {
            transaction_timeout_ms: 20_000,
            ..KafkaConfig::new("127.0.0.1:1", vec![])
        })
        .transactional_config("twinline-sequencer");
        assert_eq!(s.get("transaction.timeout.ms"), Some("20000"));
        assert_eq!(s.get("transactional.id"), Some("twinline-sequencer"));
        assert_eq!(s.get("acks"), Some("all"));
    }
}
