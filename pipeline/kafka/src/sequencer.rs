//! The two threads behind origins: the index tail (every instance: reads `_twinline-origins`
//! into the [`OriginIndex`]) and the sequencer (one instance: reads the input topics
//! `read_committed` and writes the next marker in a transaction with its input offsets).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};
use twinline_log::Result;

use crate::origins::{Marker, Range};
use crate::{broker, wait_index, Inner, ORIGINS_TOPIC};

/// Reads the origin markers from the beginning and keeps the index current until stopped.
pub(crate) fn spawn_index_tail(inner: Arc<Inner>) -> Result<JoinHandle<()>> {
    let consumer: BaseConsumer = inner
        .reader_config("twinline-origins-index")
        .create()
        .map_err(|e| broker("creating the origin index reader", e))?;
    let topic = inner.topic(ORIGINS_TOPIC);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .map_err(|e| broker("assigning the origins topic", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| broker("assigning the origins topic", e))?;
    Ok(std::thread::Builder::new()
        .name("kafka-origins".into())
        .spawn(move || {
            while !inner.stop.load(Ordering::Acquire) {
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        let next = m.offset() + 1;
                        match m.payload().map(Marker::decode) {
                            Some(Ok(marker)) if !inner.index.write().apply(&marker) => {
                                warn!(offset = m.offset(), base = marker.base,
                                    "origin marker does not follow the index; skipped");
                            }
                            Some(Err(e)) => warn!(offset = m.offset(), error = %e, "unreadable origin marker skipped"),
                            _ => {}
                        }
                        inner.index_pos.fetch_max(next, Ordering::AcqRel);
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) | None => {
                        // Transaction markers take offsets without yielding records.
                        if let Some(o) = crate::position_of(&consumer, &topic, 0) {
                            inner.index_pos.fetch_max(o, Ordering::AcqRel);
                        }
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "reading origin markers");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .expect("spawning the origin index thread"))
}

/// Runs sequencer sessions (restarted with backoff on errors) until `stop` or the log stops.
pub(crate) fn spawn_sequencer(inner: Arc<Inner>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("kafka-sequencer".into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(100);
            let stopped = || inner.stop.load(Ordering::Acquire) || stop.load(Ordering::Acquire);
            while !stopped() {
                match sequence(&inner, &stopped) {
                    Ok(()) => return,
                    Err(e) => {
                        warn!(error = %e, "sequencer failed; restarting with backoff");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
        .expect("spawning the sequencer thread")
}

/// One sequencer session: fence older sequencers, start where the committed markers end, and
/// write a marker per round of newly committed input records.
fn sequence(inner: &Arc<Inner>, stopped: &dyn Fn() -> bool) -> Result<()> {
    let timeout = inner.cfg.timeout;
    let origins = inner.topic(ORIGINS_TOPIC);
    let producer: BaseProducer = inner
        .client_config()
        .set("transactional.id", inner.topic("twinline-sequencer"))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("transaction.timeout.ms", "60000")
        .create()
        .map_err(|e| broker("creating the sequencer's producer", e))?;
    producer
        .init_transactions(timeout)
        .map_err(|e| broker("starting the sequencer's transactions", e))?;
    let consumer: BaseConsumer = inner
        .reader_config("twinline-sequencer")
        .set("fetch.wait.max.ms", "5")
        .create()
        .map_err(|e| broker("creating the sequencer's consumer", e))?;
    // Any marker an older sequencer committed is in the index before we go on.
    wait_index(inner, &consumer)?;
    let mut next: BTreeMap<(u16, u32), u64> = BTreeMap::new();
    let mut base;
    {
        let ix = inner.index.read();
        base = ix.end();
        let mut tpl = TopicPartitionList::new();
        for (rank, name) in inner.cfg.input_topics.iter().enumerate() {
            let full = inner.topic(name);
            let md = consumer
                .fetch_metadata(Some(&full), timeout)
                .map_err(|e| broker(format!("metadata of {full}"), e))?;
            let n = md
                .topics()
                .iter()
                .find(|t| t.name() == full)
                .map_or(0, |t| t.partitions().len() as u32);
            for p in 0..n {
                let from = ix.sequenced_end(rank as u16, p);
                next.insert((rank as u16, p), from);
                tpl.add_partition_offset(&full, p as i32, Offset::Offset(from as i64))
                    .map_err(|e| broker("assigning", e))?;
            }
        }
        consumer
            .assign(&tpl)
            .map_err(|e| broker("assigning the input topics", e))?;
    }
    let cgm = consumer
        .group_metadata()
        .ok_or_else(|| broker("sequencer", "no consumer group metadata"))?;
    let names: Vec<String> = inner
        .cfg
        .input_topics
        .iter()
        .map(|t| inner.topic(t))
        .collect();
    info!(base, partitions = next.len(), "sequencer started");
    let mut markers = 0u64;
    while !stopped() {
        // Gather one round: what is there now, up to 20 ms or 50,000 records.
        let mut ends: BTreeMap<(u16, u32), u64> = BTreeMap::new();
        let started = Instant::now();
        let mut wait = Duration::from_millis(50);
        let mut n = 0usize;
        loop {
            match consumer.poll(wait) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => return Err(broker("sequencer reading the inputs", e)),
                Some(Ok(m)) => {
                    let Some(rank) = names.iter().position(|t| t == m.topic()) else {
                        continue;
                    };
                    ends.insert((rank as u16, m.partition() as u32), m.offset() as u64 + 1);
                    n += 1;
                }
            }
            wait = Duration::ZERO;
            if n >= 50_000 || started.elapsed() > Duration::from_millis(20) {
                break;
            }
        }
        if ends.is_empty() {
            continue;
        }
        let ranges: Vec<Range> = ends
            .iter()
            .map(|(&(topic, partition), &to)| Range {
                topic,
                partition,
                from: next.get(&(topic, partition)).copied().unwrap_or(0),
                to,
            })
            .collect();
        let marker = Marker { base, ranges };
        let value = marker.encode();
        producer
            .begin_transaction()
            .map_err(|e| broker("sequencer beginning a transaction", e))?;
        let mut offsets = TopicPartitionList::new();
        for (&(rank, p), &to) in &ends {
            offsets
                .add_partition_offset(&names[rank as usize], p as i32, Offset::Offset(to as i64))
                .map_err(|e| broker("sequencer offsets", e))?;
        }
        let committed = (|| -> std::result::Result<(), KafkaError> {
            let rec: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&origins).partition(0).payload(&value[..]);
            producer.send(rec).map_err(|(e, _)| e)?;
            producer.send_offsets_to_transaction(&offsets, &cgm, timeout)?;
            producer.commit_transaction(timeout)
        })();
        if let Err(e) = committed {
            let _ = producer.abort_transaction(timeout);
            return Err(broker("sequencer committing a marker", e));
        }
        base = marker.end();
        for (k, to) in ends {
            next.insert(k, to);
        }
        markers += 1;
        if markers.is_multiple_of(1000) {
            tracing::debug!(markers, base, "sequencer progress");
        }
    }
    Ok(())
}
