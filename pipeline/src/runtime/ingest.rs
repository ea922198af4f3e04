//! Producers' path into the log: encode payloads in the wire format and append them, batched per
//! partition, with the partition chosen from the key exactly as Kafka's default partitioner does.
//! One call is one ordered append: the records' origins follow the order of the events handed in,
//! across partitions, so what is derived does not depend on how a producer batches.

use std::collections::BTreeMap;
use std::sync::Arc;

use twinline_log::{EventLog, NewRecord, OrderedGroup};
use twinline_schemas::{Codec, Payload, Topic};

use super::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0} is a derived topic; only input topics accept events from producers")]
    DerivedTopic(&'static str),
    #[error("encode: {0}")]
    Encode(String),
    #[error("log: {0}")]
    Log(#[from] twinline_log::LogError),
}

/// Where an ingested record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Landed {
    pub topic: Topic,
    pub partition: u32,
    pub offset: u64,
}

/// Encoded records of one partition: the bytes, per record (key start, value start, value end,
/// timestamp), and per record its index in the ingested batch.
type Scratch = (Vec<u8>, Vec<(usize, usize, usize, i64)>, Vec<u64>);

pub struct Ingestor {
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    metrics: Arc<Metrics>,
    /// Reused buffers per (topic, partition).
    scratch: BTreeMap<(Topic, u32), Scratch>,
}

impl Ingestor {
    pub fn new(log: Arc<dyn EventLog>, codec: Arc<Codec>, metrics: Arc<Metrics>) -> Self {
        Ingestor {
            log,
            codec,
            metrics,
            scratch: BTreeMap::new(),
        }
    }

    /// Append a batch of input events. Order is kept within each partition. Returns where the
    /// first event of each partition's batch landed when `want_positions`; otherwise empty.
    pub fn ingest(&mut self, events: &[Payload]) -> Result<Vec<Landed>, IngestError> {
        for buf in self.scratch.values_mut() {
            buf.0.clear();
            buf.1.clear();
            buf.2.clear();
        }
        for (i, e) in events.iter().enumerate() {
            let topic = e.topic();
            if !topic.is_input() {
                return Err(IngestError::DerivedTopic(topic.name()));
            }
            let key = e.key();
            let partition = self.log.partition_for(topic.name(), key.as_bytes())?;
            let (data, recs, seq) = self.scratch.entry((topic, partition)).or_default();
            let k0 = data.len();
            data.extend_from_slice(key.as_bytes());
            let v0 = data.len();
            self.codec
                .encode(e, data)
                .map_err(|err| IngestError::Encode(err.to_string()))?;
            recs.push((k0, v0, data.len(), e.event_time()));
            seq.push(i as u64);
        }
        let used: Vec<(&(Topic, u32), &Scratch)> = self
            .scratch
            .iter()
            .filter(|(_, (_, recs, _))| !recs.is_empty())
            .collect();
        let batches: Vec<Vec<NewRecord<'_>>> = used
            .iter()
            .map(|(_, (data, recs, _))| {
                recs.iter()
                    .map(|&(k0, v0, v1, ts)| NewRecord {
                        key: &data[k0..v0],
                        value: &data[v0..v1],
                        timestamp: ts,
                        origin: None,
                        headers: &[],
                    })
                    .collect()
            })
            .collect();
        let groups: Vec<OrderedGroup<'_>> = used
            .iter()
            .zip(&batches)
            .map(|(((topic, partition), (_, _, seq)), batch)| OrderedGroup {
                topic: topic.name(),
                partition: *partition,
                records: batch,
                seq,
            })
            .collect();
        let results = self.log.append_ordered(&groups)?;
        let mut landed = Vec::with_capacity(results.len());
        for (((topic, partition), _), r) in used.iter().zip(&results) {
            self.metrics
                .record_ingested(*topic, r.last_offset - r.base_offset + 1);
            landed.push(Landed {
                topic: *topic,
                partition: *partition,
                offset: r.base_offset,
            });
        }
        Ok(landed)
    }
}
