//! [`KafkaRegistry`]: a schema registry whose state is a compacted, single-partition Kafka topic
//! (`_schemas` by default), so any number of `twinline registry` instances serve the same ids.
//!
//! # Records
//!
//! Confluent's own `_schemas` layout, JSON key and value:
//!
//! ```text
//! key   {"keytype":"SCHEMA","subject":"sensor-readings-value","version":1,"id":1,"magic":1}
//! value {"subject":"sensor-readings-value","version":1,"id":1,"schema":"{...}","deleted":false}
//! ```
//!
//! The key also carries the id (Confluent's does not): two instances that raced for the same
//! subject version write different keys, so compaction can never replace the winner by the loser.
//! Records of other key types (Confluent's `CONFIG`, `NOOP`, ...) are skipped.
//!
//! # Writers
//!
//! No leader: a write is optimistic. The writer reads the topic to its end, decides with
//! [`RegistryBook::plan`], appends the new version (idempotent producer, `acks=all`), reads back
//! up to its own record and checks that it was accepted. The topic has one partition, so every
//! instance reads the same order, and [`RegistryBook::apply`] lets the first record for an id or
//! a subject version win; a writer that lost a race plans again from the new state.

use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use twinline_schemas::{RegisteredSchema, Registration, RegistryBook, SchemaError, SchemaRegistry};

/// Where the registry keeps its state.
#[derive(Debug, Clone)]
pub struct KafkaRegistryConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The compacted topic holding the schemas.
    pub topic: String,
    /// Replication factor used when the topic has to be created.
    pub replication: i32,
    /// Limit of each Kafka round trip (metadata, produce, catching up).
    pub timeout: Duration,
}

impl KafkaRegistryConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaRegistryConfig {
            brokers: brokers.into(),
            topic: "_schemas".to_string(),
            replication: 1,
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SchemaKey {
    keytype: String,
    subject: String,
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u32>,
    magic: u32,
}

#[derive(Serialize, Deserialize)]
struct SchemaValue {
    subject: String,
    version: u32,
    id: u32,
    schema: String,
    #[serde(
        default,
        rename = "schemaType",
        skip_serializing_if = "Option::is_none"
    )]
    schema_type: Option<String>,
    #[serde(default)]
    deleted: bool,
}

struct Reader {
    book: RegistryBook,
    consumer: BaseConsumer,
    /// Next offset to read from the topic's only partition.
    next: i64,
}

/// See the module docs.
pub struct KafkaRegistry {
    cfg: KafkaRegistryConfig,
    reader: Mutex<Reader>,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaRegistry")
            .field("brokers", &self.cfg.brokers)
            .field("topic", &self.cfg.topic)
            .finish()
    }
}

impl KafkaRegistry {
    /// Creates the topic if needed (one partition, `cleanup.policy=compact`), checks it has one
    /// partition, and reads it to the end.
    pub fn open(cfg: KafkaRegistryConfig) -> Result<KafkaRegistry, SchemaError> {
        let remote = |reason: String| SchemaError::Remote {
            registry: format!("kafka {} topic {}", cfg.brokers, cfg.topic),
            reason,
        };
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &cfg.brokers)
            .create()
            .map_err(|e| remote(format!("admin client: {e}")))?;
        let topic = NewTopic::new(&cfg.topic, 1, TopicReplication::Fixed(cfg.replication))
            .set("cleanup.policy", "compact");
        let opts = AdminOptions::new().operation_timeout(Some(cfg.timeout));
        let results = futures::executor::block_on(admin.create_topics([&topic], &opts))
            .map_err(|e| remote(format!("creating the topic: {e}")))?;
        for r in results {
            match r {
                Ok(name) => info!(topic = %name, "schema registry topic created"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(remote(format!("creating topic {name}: {code}"))),
            }
        }
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &cfg.brokers)
            .set("group.id", "twinline-registry-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            // The broker answers a connection's requests in order: with the default 500 ms
            // long-poll fetch, every end-of-topic lookup behind it waited up to 500 ms.
            .set("fetch.wait.max.ms", "10")
            .create()
            .map_err(|e| remote(format!("consumer: {e}")))?;
        // Metadata can lag the topic's creation for a moment (on a broker that just started,
        // for one): wait until the topic shows its partitions.
        let deadline = std::time::Instant::now() + cfg.timeout;
        let partitions = loop {
            let md = consumer
                .fetch_metadata(Some(&cfg.topic), cfg.timeout)
                .map_err(|e| remote(format!("metadata: {e}")))?;
            let n = md
                .topics()
                .iter()
                .find(|t| t.name() == cfg.topic && t.error().is_none())
                .map_or(0, |t| t.partitions().len());
            if n > 0 || std::time::Instant::now() > deadline {
                break n;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if partitions != 1 {
            return Err(remote(format!(
                "the topic has {partitions} partitions; a registry topic needs exactly 1 (its \
                 order decides which of two racing registrations wins)"
            )));
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&cfg.topic, 0, Offset::Beginning)
            .map_err(|e| remote(e.to_string()))?;
        consumer
            .assign(&tpl)
            .map_err(|e| remote(format!("assign: {e}")))?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &cfg.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", cfg.timeout.as_millis().to_string())
            .create()
            .map_err(|e| remote(format!("producer: {e}")))?;
        let registry = KafkaRegistry {
            cfg,
            reader: Mutex::new(Reader {
                book: RegistryBook::new(),
                consumer,
                next: 0,
            }),
            producer,
        };
        {
            let mut r = registry.reader.lock();
            registry.catch_up(&mut r, None)?;
            info!(
                topic = %registry.cfg.topic,
                schemas = r.book.all().len(),
                "schema registry state read"
            );
        }
        Ok(registry)
    }

    pub fn config(&self) -> &KafkaRegistryConfig {
        &self.cfg
    }

    fn remote(&self, reason: String) -> SchemaError {
        SchemaError::Remote {
            registry: format!("kafka {} topic {}", self.cfg.brokers, self.cfg.topic),
            reason,
        }
    }

    /// Reads the topic up to its current end (or at least past `through`).
    fn catch_up(&self, r: &mut Reader, through: Option<i64>) -> Result<(), SchemaError> {
        let (_, high) = r
            .consumer
            .fetch_watermarks(&self.cfg.topic, 0, self.cfg.timeout)
            .map_err(|e| self.remote(format!("reading the topic's end: {e}")))?;
        let target = high.max(through.map_or(0, |t| t + 1));
        let deadline = std::time::Instant::now() + self.cfg.timeout;
        while r.next < target {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(self.remote(format!(
                    "timed out reading the topic at offset {} of {target}",
                    r.next
                )));
            }
            match r.consumer.poll(left.min(Duration::from_millis(200))) {
                None => {
                    // Transaction markers and compacted-away offsets take offsets without
                    // yielding records: the consumer's position tells how far it really is.
                    if let Ok(pos) = r.consumer.position() {
                        if let Some(Offset::Offset(o)) =
                            pos.find_partition(&self.cfg.topic, 0).map(|p| p.offset())
                        {
                            r.next = r.next.max(o);
                        }
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => return Err(self.remote(format!("reading the topic: {e}"))),
                Some(Ok(m)) => {
                    let offset = m.offset();
                    r.next = offset + 1;
                    let (Some(key), Some(value)) = (m.key(), m.payload()) else {
                        continue;
                    };
                    let Ok(key) = serde_json::from_slice::<SchemaKey>(key) else {
                        continue;
                    };
                    if key.keytype != "SCHEMA" {
                        continue;
                    }
                    match serde_json::from_slice::<SchemaValue>(value) {
                        Ok(v) if !v.deleted => {
                            let s = RegisteredSchema {
                                id: v.id,
                                subject: v.subject,
                                version: v.version,
                                schema: v.schema,
                            };
                            let (id, subject, version) = (s.id, s.subject.clone(), s.version);
                            if !r.book.apply(s) {
                                debug!(offset, id, %subject, version, "registration lost a race or is invalid; skipped");
                            }
                        }
                        Ok(_) => {}
                        Err(e) => warn!(offset, error = %e, "unreadable schema record skipped"),
                    }
                }
            }
        }
        Ok(())
    }

    fn append(&self, s: &RegisteredSchema) -> Result<i64, SchemaError> {
        let key = serde_json::to_vec(&SchemaKey {
            keytype: "SCHEMA".into(),
            subject: s.subject.clone(),
            version: s.version,
            id: Some(s.id),
            magic: 1,
        })
        .expect("key serializes");
        let value = serde_json::to_vec(&SchemaValue {
            subject: s.subject.clone(),
            version: s.version,
            id: s.id,
            schema: s.schema.clone(),
            schema_type: None,
            deleted: false,
        })
        .expect("value serializes");
        let record = FutureRecord::to(&self.cfg.topic)
            .partition(0)
            .key(&key)
            .payload(&value);
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| self.remote(format!("producing: {e}")))?;
        match futures::executor::block_on(delivery) {
            Ok(Ok(d)) => Ok(d.offset),
            Ok(Err((e, _))) => Err(self.remote(format!("producing: {e}"))),
            Err(_) => Err(self.remote("the producer went away".into())),
        }
    }
}

impl SchemaRegistry for KafkaRegistry {
    fn register(&self, subject: &str, schema_json: &str) -> Result<u32, SchemaError> {
        let mut r = self.reader.lock();
        for attempt in 0..8 {
            self.catch_up(&mut r, None)?;
            let s = match r.book.plan(subject, schema_json)? {
                Registration::Existing(s) => return Ok(s.id),
                Registration::New(s) => s,
            };
            let offset = self.append(&s)?;
            self.catch_up(&mut r, Some(offset))?;
            if r.book.by_id(s.id).as_ref() == Some(&s) {
                info!(subject, id = s.id, version = s.version, "schema registered");
                return Ok(s.id);
            }
            debug!(
                subject,
                attempt, "another registry instance took the id or version first; planning again"
            );
        }
        Err(self.remote(format!(
            "registering under {subject} kept losing races with other writers"
        )))
    }

    fn schema_by_id(&self, id: u32) -> Result<Option<RegisteredSchema>, SchemaError> {
        let mut r = self.reader.lock();
        if let Some(s) = r.book.by_id(id) {
            return Ok(Some(s));
        }
        self.catch_up(&mut r, None)?;
        Ok(r.book.by_id(id))
    }

    fn latest(&self, subject: &str) -> Result<Option<RegisteredSchema>, SchemaError> {
        let mut r = self.reader.lock();
        self.catch_up(&mut r, None)?;
        Ok(r.book.latest(subject))
    }

    fn subjects(&self) -> Result<Vec<String>, SchemaError> {
        let mut r = self.reader.lock();
        self.catch_up(&mut r, None)?;
        Ok(r.book.subjects())
    }

    fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>, SchemaError> {
        let mut r = self.reader.lock();
        self.catch_up(&mut r, None)?;
        Ok(r.book.versions(subject))
    }
}
