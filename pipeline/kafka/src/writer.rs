//! A task's transactional writer on Kafka: derived records, checkpoint and input offsets in one
//! transaction per commit (see the crate docs, "Exactly once").

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tracing::info;
use twinline_log::{NewRecord, Result, TaskWriter};

use crate::{broker, Inner, CHECKPOINTS_TOPIC, FRONTIERS_TOPIC, ORIGIN_HEADER, SEQ_HEADER};

pub(crate) struct KafkaTaskWriter {
    inner: Arc<Inner>,
    task: String,
    /// Shared with the helper thread of a blocking transactional call (see
    /// [`KafkaTaskWriter::guarded`]), which runs while this writer waits for it.
    producer: Arc<BaseProducer>,
    /// Member of group `twinline-task-<task>`, for `send_offsets_to_transaction` only.
    group: BaseConsumer,
    in_txn: bool,
    /// Set when a call on `producer` was given up while still running on its helper thread:
    /// every later call of this writer fails at once (the task reopens a new writer).
    abandoned: bool,
}

/// The settings of task `task`'s transactional producer.
pub(crate) fn producer_config(inner: &Inner, task: &str) -> ClientConfig {
    let mut c = inner.transactional_config(&format!("twinline-task-{task}"));
    c.set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.max.bytes", "67108864")
        .set("queue.buffering.max.messages", "1000000");
    c
}

impl KafkaTaskWriter {
    /// Creates the producer and fences any earlier writer of the same task (its open
    /// transaction is aborted).
    pub(crate) fn open(inner: Arc<Inner>, task: &str) -> Result<KafkaTaskWriter> {
        let timeout = inner.cfg.timeout;
        let producer: Arc<BaseProducer> = Arc::new(
            producer_config(&inner, task)
                .create()
                .map_err(|e| broker(format!("creating the producer of task {task}"), e))?,
        );
        producer
            .init_transactions(timeout)
            .map_err(|e| broker(format!("starting the transactions of task {task}"), e))?;
        let group: BaseConsumer = inner
            .reader_config(&format!("twinline-task-{task}"))
            .create()
            .map_err(|e| broker(format!("creating the group client of task {task}"), e))?;
        info!(
            task,
            "transactional writer ready (earlier writers of this task fenced)"
        );
        Ok(KafkaTaskWriter {
            inner,
            task: task.to_string(),
            producer,
            group,
            in_txn: false,
            abandoned: false,
        })
    }

    fn begin(&mut self) -> Result<()> {
        if self.abandoned {
            return Err(broker(
                format!("task {}", self.task),
                "this writer's producer was abandoned (a hanging transactional call); reopen \
                 the writer",
            ));
        }
        if !self.in_txn {
            self.producer
                .begin_transaction()
                .map_err(|e| broker(format!("task {} beginning a transaction", self.task), e))?;
            self.in_txn = true;
        }
        Ok(())
    }

    fn send(&self, rec: BaseRecord<'_, [u8], [u8]>) -> Result<()> {
        let mut rec = rec;
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(Duration::from_millis(5));
                    rec = r;
                }
                Err((e, r)) => {
                    return Err(broker(
                        format!("task {} producing to {}", self.task, r.topic),
                        e,
                    ))
                }
            }
        }
    }

    /// Runs a blocking transactional call (`what`) of the producer through the stalled-call
    /// guard ([`crate::guard`]); when the guard gives the producer up, so does this writer.
    fn guarded(
        &mut self,
        what: &'static str,
        call: impl FnOnce(&BaseProducer) -> KafkaResult<()> + Send + 'static,
    ) -> std::result::Result<KafkaResult<()>, twinline_log::LogError> {
        let who = format!("task {}", self.task);
        let r = crate::guard::guarded(&self.inner, &who, &self.producer, what, call);
        if r.is_err() {
            self.abandon();
        }
        r
    }

    /// This writer gives its producer up: a helper thread may still be in a call on it.
    fn abandon(&mut self) {
        self.in_txn = false;
        self.abandoned = true;
    }

    /// Aborts the open transaction (if any) after `e`, and returns `e` as the log's error.
    fn fail(&mut self, op: &str, e: KafkaError) -> twinline_log::LogError {
        if self.in_txn && !self.abandoned {
            let timeout = self.inner.cfg.timeout;
            // A failed abort leaves the transaction to the next writer's fencing.
            match self.guarded("aborting", move |p| p.abort_transaction(timeout)) {
                Ok(Ok(())) => self.in_txn = false,
                Ok(Err(_)) | Err(_) => self.abandon(),
            }
        }
        broker(format!("task {} {op}", self.task), e)
    }
}

impl TaskWriter for KafkaTaskWriter {
    /// The last committed checkpoint of this task. Every transaction of this task is complete
    /// once `open` returned (fencing aborts an open one, and waits for one being committed), so
    /// the checkpoint is below the partition's high watermark. The partition is shared by all
    /// tasks: another task's open transaction holds back the last stable offset (the end a
    /// `read_committed` reader is shown), and a later checkpoint of this task may sit behind
    /// it. So the end to read to is the high watermark, not the last stable offset, and the
    /// read waits until the records before it are settled (committed or aborted).
    fn load_checkpoint(&mut self) -> Result<Option<Vec<u8>>> {
        let topic = self.inner.topic(CHECKPOINTS_TOPIC);
        let c: BaseConsumer = self
            .inner
            .reader_config(&format!("twinline-task-{}", self.task))
            .create()
            .map_err(|e| broker("creating a checkpoint reader", e))?;
        let all: BaseConsumer = self
            .inner
            .reader_config(&format!("twinline-task-{}", self.task))
            .set("isolation.level", "read_uncommitted")
            .create()
            .map_err(|e| broker("creating a checkpoint reader", e))?;
        let (_, high) = self.inner.watermarks(&all, &topic, 0)?;
        drop(all);
        if high <= 0 {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)
            .map_err(|e| broker("assigning", e))?;
        c.assign(&tpl)
            .map_err(|e| broker("assigning the checkpoints", e))?;
        let mut latest: Option<Vec<u8>> = None;
        // Another task's transaction that is never completed is aborted by the broker after
        // its `transaction.timeout.ms` (`KafkaConfig::transaction_timeout_ms`, 60 s by default;
        // the broker looks every 10 s).
        let deadline = Instant::now() + self.inner.cfg.timeout.max(Duration::from_secs(90));
        loop {
            match c.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    if m.key() == Some(self.task.as_bytes()) {
                        latest = m.payload().map(<[u8]>::to_vec);
                    }
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) | None => {
                    if crate::position_of(&c, &topic, 0).is_some_and(|o| o >= high) {
                        break;
                    }
                }
                Some(Err(e)) => return Err(broker("reading the checkpoints", e)),
            }
            if Instant::now() > deadline {
                let at = crate::position_of(&c, &topic, 0).unwrap_or(-1);
                return Err(broker(
                    "reading the checkpoints",
                    format!(
                        "{topic}/0 is readable (read_committed) up to offset {at} only, below its \
                         end {high}: a transaction there stays open (a hanging transaction: \
                         `kafka-transactions.sh find-hanging` finds it, `abort` ends it)"
                    ),
                ));
            }
        }
        Ok(latest)
    }

    fn append(
        &mut self,
        topic: &str,
        partition: u32,
        first_seq: u64,
        records: &[NewRecord<'_>],
    ) -> Result<()> {
        self.begin()?;
        let full = self.inner.topic(topic);
        for (i, r) in records.iter().enumerate() {
            let seq = (first_seq + i as u64).to_be_bytes();
            let origin = r.origin.unwrap_or(0).to_be_bytes();
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len() + 2)
                .insert(Header {
                    key: SEQ_HEADER,
                    value: Some(&seq[..]),
                })
                .insert(Header {
                    key: ORIGIN_HEADER,
                    value: Some(&origin[..]),
                });
            for (name, value) in r.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(*value),
                });
            }
            let rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&full)
                .partition(partition as i32)
                .key(r.key)
                .payload(r.value)
                .timestamp(r.timestamp)
                .headers(headers);
            self.send(rec)?;
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn commit(
        &mut self,
        checkpoint: &[u8],
        inputs: &[(String, u32, u64)],
        frontier: Option<&[u8]>,
    ) -> Result<()> {
        self.begin()?;
        let topic = self.inner.topic(CHECKPOINTS_TOPIC);
        let rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic)
            .partition(0)
            .key(self.task.as_bytes())
            .payload(checkpoint);
        self.send(rec)?;
        if let Some(frontier) = frontier {
            let topic = self.inner.topic(FRONTIERS_TOPIC);
            let rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic)
                .partition(0)
                .key(self.task.as_bytes())
                .payload(frontier);
            self.send(rec)?;
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in inputs {
            tpl.add_partition_offset(&self.inner.topic(t), *p as i32, Offset::Offset(*o as i64))
                .map_err(|e| broker("input offsets", e))?;
        }
        let timeout = self.inner.cfg.timeout;
        let cgm = self
            .group
            .group_metadata()
            .ok_or_else(|| broker("committing", "no consumer group metadata"))?;
        let sent = self.guarded("sending its input offsets", move |p| {
            p.send_offsets_to_transaction(&tpl, &cgm, timeout)
        })?;
        if let Err(e) = sent {
            return Err(self.fail("sending its input offsets", e));
        }
        // Deliveries are waited for here, not under the guard: a large backlog that is being
        // delivered slowly is progress, not a stalled call, and a producer is only given up
        // with nothing of this transaction still on its way to the broker (a produce request
        // of a given-up producer landing late could leave a transaction open on a partition).
        crate::drain_deliveries(&self.producer, timeout);
        if let Err(e) = self.guarded("committing", move |p| p.commit_transaction(timeout))? {
            return Err(self.fail("committing", e));
        }
        self.in_txn = false;
        Ok(())
    }
}
