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

use crate::guard::guarded;
use crate::origins::{Marker, Range};
use crate::{broker, wait_index, Inner, ORIGINS_TOPIC};

/// Who the sequencer is in the stalled-call guard's messages.
const WHO: &str = "the sequencer";

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
/// write a marker per round of newly committed input offsets.
///
/// The sequencer reads no record: each round it asks for the last stable offset of every input
/// partition (`read_committed`: every offset below it is decided, committed or aborted) and gives
/// origins to the offsets added since the last marker. Offsets that hold no readable record
/// (transaction markers, aborted records) get origins that no record uses, which is harmless:
/// origins only need to be increasing and shared by every reader.
fn sequence(inner: &Arc<Inner>, stopped: &dyn Fn() -> bool) -> Result<()> {
    let timeout = inner.cfg.timeout;
    let origins = inner.topic(ORIGINS_TOPIC);
    // Shared with the helper thread of a guarded call ([`crate::guard`]).
    let producer: Arc<BaseProducer> = Arc::new(
        inner
            .transactional_config("twinline-sequencer")
            .set("linger.ms", "0")
            .create()
            .map_err(|e| broker("creating the sequencer's producer", e))?,
    );
    producer
        .init_transactions(timeout)
        .map_err(|e| broker("starting the sequencer's transactions", e))?;
    let meta: BaseConsumer = inner
        .reader_config("twinline-sequencer")
        .create()
        .map_err(|e| broker("creating the sequencer's client", e))?;
    // Any marker an older sequencer committed is in the index before we go on.
    wait_index(inner, &meta)?;
    let mut next: BTreeMap<(u16, u32), u64> = BTreeMap::new();
    let mut base;
    let mut parts: Vec<(u16, u32, String)> = Vec::new();
    {
        let ix = inner.index.read();
        base = ix.end();
        for (rank, name) in inner.cfg.input_topics.iter().enumerate() {
            let full = inner.topic(name);
            let md = meta
                .fetch_metadata(Some(&full), timeout)
                .map_err(|e| broker(format!("metadata of {full}"), e))?;
            let n = md
                .topics()
                .iter()
                .find(|t| t.name() == full)
                .map_or(0, |t| t.partitions().len() as u32);
            for p in 0..n {
                next.insert((rank as u16, p), ix.sequenced_end(rank as u16, p));
                parts.push((rank as u16, p, full.clone()));
            }
        }
    }
    // One ListOffsets request per round for every input partition ("latest", which for a
    // read_committed client is the last stable offset).
    let mut latest = TopicPartitionList::new();
    for (_, p, full) in &parts {
        latest
            .add_partition_offset(full, *p as i32, Offset::End)
            .map_err(|e| broker("sequencer offsets", e))?;
    }
    info!(base, partitions = next.len(), "sequencer started");
    let mut markers = 0u64;
    let mut last_round = Instant::now();
    while !stopped() {
        // One round every 10 ms at most.
        if let Some(w) = Duration::from_millis(10).checked_sub(last_round.elapsed()) {
            std::thread::sleep(w);
        }
        last_round = Instant::now();
        let listed_at = last_round;
        let stable_offsets = meta
            .offsets_for_times(latest.clone(), timeout)
            .map_err(|e| broker("sequencer reading the inputs' stable offsets", e))?;
        let mut ranges: Vec<Range> = Vec::new();
        for (rank, p, full) in &parts {
            let stable = match stable_offsets
                .find_partition(full, *p as i32)
                .map(|e| (e.offset(), e.error()))
            {
                Some((Offset::Offset(o), Ok(()))) => o,
                Some((_, Err(e))) => return Err(broker(format!("stable offset of {full}/{p}"), e)),
                _ => continue,
            };
            let from = next.get(&(*rank, *p)).copied().unwrap_or(0);
            if stable > from as i64 {
                ranges.push(Range {
                    topic: *rank,
                    partition: *p,
                    from,
                    to: stable as u64,
                });
            }
        }
        if ranges.is_empty() {
            continue;
        }
        let listed = listed_at.elapsed();
        let marker = Marker { base, ranges };
        let value = marker.encode();
        producer
            .begin_transaction()
            .map_err(|e| broker("sequencer beginning a transaction", e))?;
        let rec: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&origins).partition(0).payload(&value[..]);
        let sent = producer.send(rec).map_err(|(e, _)| e);
        // Commit and abort run under the stalled-call guard (deliveries are waited for first,
        // as in the task writer), and a producer it gives up is left to the next session's
        // fencing (the `?`s).
        let committed = match sent {
            Ok(()) => {
                crate::drain_deliveries(&producer, timeout);
                guarded(inner, WHO, &producer, "committing a marker", move |p| {
                    p.commit_transaction(timeout)
                })?
            }
            Err(e) => Err(e),
        };
        if let Err(e) = committed {
            let _ = guarded(inner, WHO, &producer, "aborting", move |p| {
                p.abort_transaction(timeout)
            })?;
            return Err(broker("sequencer committing a marker", e));
        }
        tracing::trace!(
            list_us = listed.as_micros() as u64,
            round_us = listed_at.elapsed().as_micros() as u64,
            "sequencer marker committed"
        );
        base = marker.end();
        for r in &marker.ranges {
            next.insert((r.topic, r.partition), r.to);
        }
        markers += 1;
        if markers.is_multiple_of(1000) {
            tracing::debug!(markers, base, "sequencer progress");
        }
    }
    Ok(())
}
